/* coordinator/coord.h - the coordinator's in-memory state, shared by its files (internal).
 *
 *   Redis stream entry --read--> job (waiting) --Task--> worker (running)
 *      --Result ok / permanent failure--> settle + XACK (job gone)
 *      --retryable failure / worker lost--> waiting again after backoff, until the batch's
 *        max attempts; then the coordinator writes the error record (finalizing, retried
 *        until storage takes it), settles failed, XACKs and dead-letters.
 * Jobs and workers are small arrays scanned linearly: the number held is bounded by the
 * workers' credits plus items waiting for a retry. Single-threaded (the poll loop); only
 * struct em_metrics is read by another thread. */
#ifndef EM_COORD_H
#define EM_COORD_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "coordinator/metrics.h"
#include "coordinator/page.h"
#include "coordinator/queue.h"
#include "proto/earmark.pb-c.h"

#define EM_COORD_MAX_RID 255 /* bytes of a ZeroMQ routing id */
#define EM_COORD_LEASE_HEX 32 /* hex digits of a lease token (16 random bytes) */
#define EM_COORD_LOST_RING 64 /* batches remembered as lost, so each is reported once */
/* "<batch>/<item>/<attempt>" */
#define EM_COORD_MAX_TASK_ID (EM_QUEUE_MAX_BATCH_ID + EM_QUEUE_MAX_ITEM_ID + 12)

enum em_job_state { EM_JOB_WAITING, EM_JOB_RUNNING, EM_JOB_FINALIZING };

struct em_cbatch {
    struct em_batch_info info;
    Earmark__Prompt **prompts; /* [n_prompts], owned */
    size_t n_prompts;
    Earmark__Generation gen;
    int64_t loaded_ms;     /* monotonic; the cache entry is refreshed after a while */
    int64_t next_check_ms; /* next completion check */
    unsigned manifest_failures;
    /* infrastructure fault on this batch's output: nothing is dispatched before
     * stall_until_ms (monotonic); stall_count drives the backoff; cleared by a success */
    int64_t stall_until_ms;
    unsigned stall_count;
    char stall_reason[256]; /* "EM_E_NAME: detail" of the fault that began the stall */
    /* route.c: what a worker needs to take this batch's items */
    unsigned need_tasks; /* EM_ROUTE_* bits of its built-in prompts */
    int need_free;       /* it has free-text prompts */
    int waiting;         /* "waiting for a worker with ..." is set in Redis */
    int has_waiting;     /* scratch of em_coord_route_check: it has items to dispatch */
};

struct em_job {
    struct em_queue_entry e; /* owned strings */
    struct em_cbatch *b;     /* borrowed from the batch cache */
    enum em_job_state state;
    unsigned attempts, fails, lost; /* as in batch:<B>:tries */
    unsigned finalize_tries;        /* error record writes that failed (storage down) */
    char err_class[40], err_msg[256];
    int64_t not_before_ms; /* monotonic: waiting/finalizing job is not touched before */
    uint8_t rid[EM_COORD_MAX_RID];
    size_t rid_len; /* worker running it */
    char task_id[EM_COORD_MAX_TASK_ID + 1];
    char lease[EM_QUEUE_MAX_LEASE + 1]; /* token of the live dispatch; "" when none */
    int64_t dispatched_ms; /* monotonic */
    int64_t deadline_wall_ms;
    char ran_on[64], ran_model[128]; /* worker id and model of the last dispatch; "" unknown */
};

struct em_worker {
    uint8_t rid[EM_COORD_MAX_RID];
    size_t rid_len;
    char id[64];       /* printable (Hello.worker_id or routing id) */
    unsigned capacity; /* from Hello; 0 when unknown (met after a restart) */
    unsigned credits;
    unsigned running;
    int reset_credits; /* a Welcome was sent: the next Ready is absolute */
    int64_t last_seen_ms;
    int hello;   /* said Hello on this connection: id is its worker id */
    int refused; /* claimed the id of a live worker: nothing it sends is taken */
    int leaving; /* said Goodbye (draining): nothing more is dispatched to it */
    char model[128]; /* Hello.model; "" before a Hello */
    /* route.c, from Hello: family "" (caps 0) is a worker without a model, or one from
     * before routing; it is sent any batch that names no model */
    char family[32];
    unsigned tasks; /* EM_ROUTE_* bits */
    int free_text;
    int caps;
};

struct em_coord_cfg {
    const char *id; /* consumer name */
    unsigned heartbeat_ms, lease_ms;
    int64_t retry_base_ms, retry_max_ms, task_timeout_ms, drain_ms;
    int64_t retention_ms; /* TTL of a finished batch's keys; 0: kept */
    int64_t trim_every_ms; /* streams trimmed this often */
};

struct em_chealth;
struct em_coord {
    struct em_coord_cfg cfg;
    struct em_queue *q;
    struct em_storage *st;
    void *zsock;
    struct em_metrics *m;
    struct em_job **jobs;
    size_t njobs, capjobs;
    struct em_worker **workers;
    size_t nworkers, capworkers;
    struct em_cbatch **batches;
    size_t nbatches, capbatches;
    int stopping;
    int64_t grace_until_ms; /* no dispatch before: after a start, workers re-announce */
    char lost[EM_COORD_LOST_RING][EM_QUEUE_MAX_BATCH_ID + 1]; /* lost.c: reported lost */
    size_t nlost;
    int64_t next_trim_ms;   /* streams are trimmed about once a minute */
    struct em_chealth *health; /* coordinator/health.h; NULL without --metrics */
    struct em_page *page;   /* live status page (page.h), NULL without --metrics */
};

/* batch.c */
/* Cached batch, loading it from Redis when needed. EM_E_NOTFOUND when it does not exist. */
em_err em_coord_batch(struct em_coord *c, const char *id, struct em_cbatch **out,
                      struct em_errbuf *eb);
/* Checks a batch for completion now (after a first settle) or when due; writes
 * manifest.jsonl and marks it complete when every item is settled. */
void em_coord_batch_check(struct em_coord *c, const char *id);
/* Periodic: active batches' completion, in-flight counts, cache expiry. */
void em_coord_batches_tick(struct em_coord *c, int64_t now_ms);
void em_coord_batches_free(struct em_coord *c);
/* Drops a batch from the cache (no job may still point at it). */
void em_coord_batch_forget(struct em_coord *c, const char *id);

/* route.c: which worker may take which batch's items (Hello.family/tasks, submit --model) */
#define EM_ROUTE_CAPTION 1u
#define EM_ROUTE_TRANSCRIPT 2u
#define EM_ROUTE_EVENTS 4u
#define EM_ROUTE_MAX_TASKS 16 /* Hello.tasks read; more are ignored */
/* Records what w's Hello says it can do. */
void em_coord_worker_caps(struct em_worker *w, const Earmark__Hello *h);
/* Fills b's need_tasks/need_free from its prompts (after they are parsed). */
void em_coord_batch_needs(struct em_cbatch *b);
/* 1 when w may take items of b: it runs the model b asks for (submit --model: the family
 * name, the identity, or the identity's name before '@') and answers every prompt of b. */
int em_coord_can_serve(const struct em_worker *w, const struct em_cbatch *b);
/* Sets or clears each cached batch's "waiting for a worker with ..." field (status shows
 * it) when no connected worker can serve a batch that has items to dispatch. */
void em_coord_route_check(struct em_coord *c);

/* retry.c */
int64_t em_coord_backoff_ms(const struct em_coord *c, unsigned fails);
/* A failed attempt of a held job: retry later or finalize. Removes the job when settled.
 * An infrastructure fault (em_err_infra) spends no attempt: the job waits and dispatch to
 * its batch's output pauses with backoff (stalled) until an attempt succeeds. */
void em_coord_job_failed(struct em_coord *c, struct em_job *j, int lost, const char *err_class,
                         const char *err_msg);
/* Writes the error record, settles failed, acks, dead-letters; on storage failure keeps the
 * job (finalizing) for a later try. Removes the job when done. */
void em_coord_job_finalize(struct em_coord *c, struct em_job *j);
/* A permanent failure with no record stored (the worker's put was refused): the
 * coordinator writes the error record itself, or settles without one if storage refuses
 * it too. Removes the job when settled. */
void em_coord_job_failed_final(struct em_coord *c, struct em_job *j, const char *err_class,
                               const char *err_msg);
/* Notes which worker (and model) a job was sent to, for the records the coordinator writes. */
void em_coord_job_ran_on(struct em_job *j, const struct em_worker *w);
/* Settles a held job (ok or permanent failure reported by a worker) and removes it. */
void em_coord_job_settle(struct em_coord *c, struct em_job *j, int ok);
/* 1 when the batch's deadline (submit --deadline) has passed. */
int em_coord_past_deadline(const struct em_cbatch *b);
/* Ends the stall of b after a success (status and metric follow). */
void em_coord_unstall(struct em_coord *c, struct em_cbatch *b);
/* Removes and frees a job. */
void em_coord_job_drop(struct em_coord *c, struct em_job *j);

/* lease.c */
/* Writes a new random lease token (EM_COORD_LEASE_HEX digits + NUL). -1 if getrandom fails. */
int em_coord_lease_new(char out[EM_COORD_LEASE_HEX + 1]);
/* A Result from w: accepted only from the peer the task was sent to, with its token, while
 * the lease is live; else dropped by reason (see lease.c). */
void em_coord_on_result(struct em_coord *c, struct em_worker *w, const Earmark__Result *r);
/* Adopts waiting jobs w proves (task id + token) to hold from before a restart. */
void em_coord_on_heartbeat(struct em_coord *c, struct em_worker *w, const Earmark__Heartbeat *h);

/* lost.c */
/* After a Redis error eb: when it is NOGROUP (Redis lost the stream or its consumer group:
 * restarted empty, or flushed), makes the group again, drops every held job whose batch is
 * gone (each such batch logged once and counted in earmark_batches_lost_total) and returns
 * 1; the caller's work is retried on its next round. 0 for any other error. */
int em_coord_recover_nogroup(struct em_coord *c, const struct em_errbuf *eb);
/* batch is gone from Redis (a settle found no batch hash): drops its held jobs and its
 * cache entry; logs and counts it once. */
void em_coord_batch_lost(struct em_coord *c, const char *batch);

/* dispatch.c */
/* Handles every message waiting on the ROUTER socket. */
void em_coord_recv_all(struct em_coord *c);
/* Sends waiting jobs to workers with credits. */
void em_coord_dispatch(struct em_coord *c, int64_t now_ms);
/* Declares silent workers lost, times out overdue tasks. */
void em_coord_check_leases(struct em_coord *c, int64_t now_ms);
/* Free credits over all workers. */
unsigned em_coord_free_credits(const struct em_coord *c);
size_t em_coord_count_jobs(const struct em_coord *c, enum em_job_state s);

#endif
