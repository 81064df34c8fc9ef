/* coordinator/queue.h - the Redis layout of batches and items (hiredis), and every command
 * submit, status and the coordinator send.
 *
 * Layout (all keys prefixed "earmark:"):
 *   batch:<B>           HASH   prompts (JSON [{name,text}]), gen (JSON), out (prefix URI),
 *                              max_attempts, model, producer_hash, total, created (wall ms),
 *                              state ("submitting" -> "open" -> "complete"), completed (ms),
 *                              done, failed (counters, bumped only by a first settle),
 *                              skipped (items settled by submit --skip-done),
 *                              dead (items dead-lettered)
 *   batch:<B>:items     LIST   "<item>\t<source>" per item, manifest order (manifest.jsonl)
 *   batch:<B>:status    HASH   item -> "ok" | "failed"; set once (HSETNX), so an item counts
 *                              once whatever arrives twice
 *   batch:<B>:output    HASH   item -> output URI, only where it is not <out>/<item>.json
 *                              (--skip-done items keep an older record)
 *   batch:<B>:inflight  HASH   coordinator id -> tasks of this batch it has out now
 *                              (refreshed about once a second; for status only)
 *   batch:<B>:tries     HASH   item -> attempts dispatched; "<item>:fails" -> failed attempts
 *                              (the retry budget counts these); "<item>:lost" -> failures
 *                              that were a lost worker; "<item>:err" -> "<EM_E_NAME>\t<msg>"
 *                              the last error; "<item>:lease" -> token of the dispatch
 *                              whose result is awaited (deleted when that attempt fails)
 *   items               STREAM one entry per item (and per re-queue by a later submit):
 *                              batch, item, source, meta (JSON text or ""), ref, attempt;
 *                              consumer group "coordinators"
 *   dead                STREAM dead letters: batch, item, source, attempts, class, message
 *   batches:active      SET    batches not complete yet
 * Lifecycle (queue_life.c): `cancel` sets the hash's "cancel" = 1; the coordinator then
 * settles every unsettled item "cancelled" (counted in "cancelled") and ends the batch in
 * state "cancelled". A finished batch's six keys get a TTL (coordinator --retention);
 * `delete` removes them (only once complete or cancelled); the items stream is trimmed
 * below the group's oldest pending / last delivered entry, the dead stream to about
 * EM_QUEUE_DEAD_MAX entries.
 *
 * Crash safety: an entry is XACKed in the same Lua script that settles its item (status +
 * counter), so a coordinator killed at any moment leaves either an unsettled pending entry
 * (re-read with XREADGROUP 0 by the same consumer, or XAUTOCLAIMed by another after the
 * lease) or a settled, acknowledged one. Nothing is deleted from the stream here.
 *
 * A handle wraps one hiredis connection: not thread-safe. Every call reconnects once when
 * the connection was lost. Errors: EM_E_REDIS (connection, or an error reply; the detail
 * has Redis's text), EM_E_NOTFOUND, EM_E_FORMAT (a reply of an unexpected shape),
 * EM_E_NOMEM. */
#ifndef EM_QUEUE_H
#define EM_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/id.h"

#define EM_QUEUE_STREAM "earmark:items"
#define EM_QUEUE_GROUP "coordinators"
#define EM_QUEUE_DEAD "earmark:dead"
#define EM_QUEUE_ACTIVE "earmark:batches:active"
#define EM_QUEUE_TIMEOUT_MS 5000 /* per command */
#define EM_QUEUE_MAX_BATCH_ID 64 /* bytes, ids read back from Redis are checked */
#define EM_QUEUE_MAX_LEASE 64    /* bytes of a lease token */
#define EM_QUEUE_MAX_ITEM_ID EM_ID_MAX /* manifest ids (common/id.h) */
#define EM_QUEUE_DEAD_MAX 100000u       /* dead letters kept (approximately) */

struct em_queue;

/* A parsed Redis URL: redis[s]://[[user]:password@]host[:port][/db] or host[:port].
 * rediss:// is TLS (coordinator/tls_relay.h). The userinfo ends at the last '@' (so a
 * password may contain '@'); user and password are percent-decoded (%40 is '@'). */
struct em_redis_url {
    int tls;
    char host[256];
    int port, db;
    char user[128], password[256];
};
/* Errors (EM_E_ARG) name the part that is wrong and never echo the URL or the password. */
em_err em_redis_url_parse(const char *url, struct em_redis_url *u, struct em_errbuf *eb);

/* url as above; ACL users authenticate with AUTH user password. For rediss://, ca_file is
 * the CA that signed the server's certificate (NULL: the system's trust store). Copies what
 * it needs. On EM_OK the caller owns *out (em_queue_close). */
em_err em_queue_open_tls(const char *url, const char *ca_file, struct em_queue **out,
                         struct em_errbuf *eb);
/* em_queue_open_tls with ca_file from $EARMARK_REDIS_CA (unset: system trust store). */
em_err em_queue_open(const char *url, struct em_queue **out, struct em_errbuf *eb);
void em_queue_close(struct em_queue *q); /* NULL is a no-op */

/* ---- batches ---- */
struct em_batch_info {
    char id[EM_QUEUE_MAX_BATCH_ID + 1];
    char *prompts_json, *gen_json, *out, *model, *producer_hash; /* owned, malloc'd */
    unsigned max_attempts;
    uint64_t total, done, failed, skipped, dead;
    uint64_t cancelled; /* items settled "cancelled" */
    int cancel;         /* `earmark cancel` asked for it */
    int64_t created_ms, completed_ms;
    int64_t deadline_ms; /* wall ms after which unsettled items fail (submit --deadline); 0 none */
    char *stalled;       /* owned: "EM_E_NAME: detail" while dispatch is paused, else NULL */
    char *want;          /* owned: submit --model when given (routing), else NULL */
    char *waiting;       /* owned: "waiting for a worker with ..." while none can serve */
    char state[16];
};
void em_batch_info_clear(struct em_batch_info *b); /* frees the strings, zeroes */

/* Writes the batch hash with state "submitting" (fields from b; done/failed 0). */
em_err em_queue_batch_create(struct em_queue *q, const struct em_batch_info *b,
                             struct em_errbuf *eb);
/* Sets (msg non-NULL) or clears the batch's "waiting" field, shown by status. */
em_err em_queue_batch_waiting(struct em_queue *q, const char *batch, const char *msg,
                              struct em_errbuf *eb);
/* state "open" and SADD batches:active: every item is in. */
em_err em_queue_batch_open(struct em_queue *q, const char *batch, struct em_errbuf *eb);
/* Reads the batch hash into *b (caller clears). EM_E_NOTFOUND if absent. */
em_err em_queue_batch_get(struct em_queue *q, const char *batch, struct em_batch_info *b,
                          struct em_errbuf *eb);
/* Sets (reason non-NULL) or clears the batch's "stalled" field, shown by status. */
em_err em_queue_batch_stalled(struct em_queue *q, const char *batch, const char *reason,
                              struct em_errbuf *eb);
/* ---- lifecycle (queue_life.c) ---- */
/* Asks for a batch to be cancelled (the coordinator does the rest). *requested is 0 when it
 * had finished already. EM_E_NOTFOUND when there is no such batch. */
em_err em_queue_batch_cancel(struct em_queue *q, const char *batch, int *requested,
                             struct em_errbuf *eb);
/* Settles every unsettled item of batch "cancelled"; *n how many. */
em_err em_queue_cancel_rest(struct em_queue *q, const char *batch, uint64_t *n,
                            struct em_errbuf *eb);
/* Deletes the batch's keys. EM_E_ARG while it is running (not complete or cancelled) unless
 * force; EM_E_NOTFOUND when absent. */
em_err em_queue_batch_delete(struct em_queue *q, const char *batch, int force,
                             struct em_errbuf *eb);
/* state = state ("complete" or "cancelled"), completed = now, stall cleared, SREM active,
 * and with retention_ms > 0 a TTL of retention_ms on each of the batch's keys. */
em_err em_queue_batch_finish(struct em_queue *q, const char *batch, const char *state,
                             int64_t retention_ms, struct em_errbuf *eb);
/* Every batch id (SCAN); *ids as for em_queue_active. */
em_err em_queue_batch_ids(struct em_queue *q, char ***ids, size_t *n, struct em_errbuf *eb);
/* Trims the items stream (settled entries) and the dead stream; *n items entries removed. */
em_err em_queue_trim(struct em_queue *q, uint64_t *n, struct em_errbuf *eb);

/* state "complete", completed = now, SREM batches:active. */
em_err em_queue_batch_complete(struct em_queue *q, const char *batch, struct em_errbuf *eb);
/* Active batch ids: *ids is a malloc'd array of malloc'd strings (em_queue_strv_free). */
em_err em_queue_active(struct em_queue *q, char ***ids, size_t *n, struct em_errbuf *eb);
void em_queue_strv_free(char **v, size_t n);

/* ---- submit side ---- */
struct em_queue_item {
    const char *item_id, *source;
    const char *meta_json; /* NULL: none */
    const char *ref;       /* NULL: none */
};
/* Appends n items (list + stream, pipelined). */
em_err em_queue_add_items(struct em_queue *q, const char *batch, const struct em_queue_item *it,
                          size_t n, struct em_errbuf *eb);
/* Lists an item as already done (ok, counted in done and skipped) without a stream entry;
 * output is the record that stands for it. */
em_err em_queue_add_skipped(struct em_queue *q, const char *batch, const char *item_id,
                            const char *source, const char *output, struct em_errbuf *eb);

/* ---- coordinator side ---- */
struct em_queue_entry {
    char stream_id[48];
    char batch[EM_QUEUE_MAX_BATCH_ID + 1];
    char item[EM_QUEUE_MAX_ITEM_ID + 1];
    char *source, *meta_json, *ref; /* owned; meta/ref "" when none */
};
void em_queue_entries_free(struct em_queue_entry *e, size_t n);

/* 1 if s is a usable batch or item id: 1..max bytes that pass em_id_valid ([A-Za-z0-9._-],
 * not "." or ".."; they end up in keys and object paths, so nothing else is accepted from
 * the stream or the wire). */
int em_queue_id_ok(const char *s, size_t max);

/* XGROUP CREATE ... $ MKSTREAM unless it exists. */
em_err em_queue_ensure_group(struct em_queue *q, struct em_errbuf *eb);
/* XREADGROUP (no BLOCK): new entries (after = NULL, id ">") or this consumer's own pending
 * entries with ids greater than after ("0" for all of them; page with the last id seen).
 * *out: malloc'd array of *n entries (em_queue_entries_free). Malformed entries (missing
 * fields, ids too long) are acknowledged, written to the dead stream and left out;
 * *bad counts them (may be NULL). */
em_err em_queue_read(struct em_queue *q, const char *consumer, const char *after, size_t count,
                     struct em_queue_entry **out, size_t *n, size_t *bad, struct em_errbuf *eb);
/* XAUTOCLAIM entries idle at least min_idle_ms, at most count of them. Same ownership. */
em_err em_queue_autoclaim(struct em_queue *q, const char *consumer, int64_t min_idle_ms,
                          size_t count, struct em_queue_entry **out, size_t *n, size_t *bad,
                          struct em_errbuf *eb);
/* XCLAIM ids to consumer with min-idle 0 JUSTID: resets their idle time (lease renewal). */
em_err em_queue_touch(struct em_queue *q, const char *consumer, char *const *ids, size_t n,
                      struct em_errbuf *eb);
/* Settles an item once (status + counter) and XACKs stream_id (NULL/"": no ack) in one
 * script. *first (may be NULL) is 1 if this call set the status. EM_E_NOTFOUND (nothing
 * written) when the batch hash is gone (Redis lost its data, or the batch was deleted). */
em_err em_queue_settle(struct em_queue *q, const char *batch, const char *item, int ok,
                       const char *stream_id, int *first, struct em_errbuf *eb);
em_err em_queue_ack(struct em_queue *q, const char *stream_id, struct em_errbuf *eb);
/* Status of an item: writes "ok"/"failed" into out; EM_E_NOTFOUND while unsettled. */
em_err em_queue_item_status(struct em_queue *q, const char *batch, const char *item, char out[16],
                            struct em_errbuf *eb);

struct em_queue_tries {
    unsigned attempts, fails, lost;
    char err_class[40];
    char err_msg[256];
    char lease[EM_QUEUE_MAX_LEASE + 1]; /* token of the live dispatch; "" when none */
};
em_err em_queue_tries_get(struct em_queue *q, const char *batch, const char *item,
                          struct em_queue_tries *t, struct em_errbuf *eb);
/* Records a dispatch: attempts, and lease (its token; "<item>:lease") in one HSET. */
em_err em_queue_tries_set(struct em_queue *q, const char *batch, const char *item,
                          unsigned attempts, const char *lease, struct em_errbuf *eb);
/* Records a failed attempt: last error, fails += 1, and lost += 1 when lost; the attempt's
 * lease ends (its token is deleted). */
em_err em_queue_tries_fail(struct em_queue *q, const char *batch, const char *item, int lost,
                           const char *err_class, const char *err_msg, struct em_errbuf *eb);
/* XADD earmark:dead, and batch dead += 1 when batch is non-empty. */
em_err em_queue_dead(struct em_queue *q, const char *batch, const char *item, const char *source,
                     unsigned attempts, const char *err_class, const char *err_msg,
                     struct em_errbuf *eb);

/* Items of a batch in manifest order, from index start, at most count. Each row is
 * filled: item, source, status ("" while unsettled), output override ("" for default).
 * Caller frees with em_queue_rows_free. */
struct em_queue_row {
    char *item, *source, *status, *output;
};
em_err em_queue_rows(struct em_queue *q, const char *batch, size_t start, size_t count,
                     struct em_queue_row **rows, size_t *n, struct em_errbuf *eb);
void em_queue_rows_free(struct em_queue_row *r, size_t n);

/* In-flight bookkeeping for status: this coordinator has n tasks of batch out. */
em_err em_queue_inflight_set(struct em_queue *q, const char *batch, const char *consumer,
                             uint64_t n, struct em_errbuf *eb);
/* Sum over coordinators. */
em_err em_queue_inflight_sum(struct em_queue *q, const char *batch, uint64_t *n,
                             struct em_errbuf *eb);

/* Entries of the group not yet delivered (XINFO GROUPS lag; -1 when Redis cannot say). */
em_err em_queue_lag(struct em_queue *q, long long *lag, struct em_errbuf *eb);

/* Entries in the dead-letter stream (XLEN earmark:dead; 0 when it does not exist). */
em_err em_queue_dead_len(struct em_queue *q, long long *n, struct em_errbuf *eb);

#endif
