/* coordinator/lease.c - results bound to dispatches.
 *
 * Every dispatch gets a random lease token (16 bytes from getrandom, 32 hex), sent in the
 * Task and stored with the attempt in batch:<B>:tries ("<item>:lease"). A Result settles or
 * retries an item only when all of these hold, otherwise it is dropped and counted in
 * earmark_frames_dropped_total{reason}:
 *   - it names the task the item is running as, and comes from the routing id (connection)
 *     the task was sent to                                            else wrong_peer
 *   - it carries that dispatch's token                               else bad_token
 *   - the lease is live: the item is running, or (after a coordinator restart, before the
 *     worker's Heartbeat adopted it) the token is the one Redis holds for the last attempt,
 *     which a failed attempt deletes                                 else no_lease
 * So a peer that was never sent the task, a replay of an answered attempt and a result for
 * an item waiting for a retry settle nothing. Heartbeats adopt a task only with its token. */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "common/clock.h"
#include "common/hex.h"
#include "common/log.h"
#include "coordinator/coord.h"
#include "proto/wire.h"

int em_coord_lease_new(char out[EM_COORD_LEASE_HEX + 1])
{
    unsigned char r[EM_COORD_LEASE_HEX / 2];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) return -1;
    em_hex_lower(r, sizeof r, out);
    return 0;
}

/* Constant time in the token's length: a peer learns nothing from how fast it is refused. */
static int lease_eq(const char *held, const char *given)
{
    size_t n = strlen(held);
    if (n == 0 || !given || strlen(given) != n) return 0;
    unsigned char d = 0;
    for (size_t i = 0; i < n; i++) d |= (unsigned char)(held[i] ^ given[i]);
    return d == 0;
}

static int same_peer(const struct em_job *j, const struct em_worker *w)
{
    return j->rid_len == w->rid_len && memcmp(j->rid, w->rid, w->rid_len) == 0;
}

static struct em_job *job_by_item(struct em_coord *c, const char *batch, const char *item)
{
    for (size_t i = 0; i < c->njobs; i++)
        if (strcmp(c->jobs[i]->e.item, item) == 0 && strcmp(c->jobs[i]->e.batch, batch) == 0)
            return c->jobs[i];
    return NULL;
}

static void drop(struct em_coord *c, const struct em_worker *w, enum em_drop_reason why,
                 const char *reason, const char *task_id)
{
    char q[200];
    atomic_fetch_add(&c->m->dropped[why], 1);
    em_warn("worker=%s task=\"%s\" msg=\"result refused\" reason=%s", w->id,
            em_log_q(q, sizeof q, task_id), reason);
}

/* A waiting job whose last dispatch (by an earlier coordinator run) w proves to hold: it
 * runs on w from now on. */
static void adopt(struct em_coord *c, struct em_job *j, const struct em_worker *w,
                  const char *task_id)
{
    j->state = EM_JOB_RUNNING;
    memcpy(j->rid, w->rid, w->rid_len);
    j->rid_len = w->rid_len;
    snprintf(j->task_id, sizeof j->task_id, "%s", task_id);
    j->dispatched_ms = em_now_ms();
    j->deadline_wall_ms = em_wall_ms() + c->cfg.task_timeout_ms;
    em_coord_job_ran_on(j, w);
    atomic_fetch_add(&c->m->in_flight, 1);
    em_info("worker=%s batch=%s item=%s attempt=%u msg=\"adopted a task the worker holds\"",
            w->id, j->e.batch, j->e.item, j->attempts);
}

static void settle_running(struct em_coord *c, struct em_worker *w, struct em_job *j,
                           const Earmark__Result *r)
{
    em_metrics_observe_latency(c->m, (double)(em_now_ms() - j->dispatched_ms) / 1000.0);
    char q[300];
    if (r->ok) {
        em_info("worker=%s batch=%s item=%s attempt=%u msg=\"done\" elapsed_s=%.3f", w->id,
                j->e.batch, j->e.item, j->attempts, r->elapsed_s);
        em_coord_job_settle(c, j, 1);
    } else if (!r->retryable) {
        em_info("worker=%s batch=%s item=%s attempt=%u err=%s msg=\"failed permanently\" "
                "detail=\"%s\"",
                w->id, j->e.batch, j->e.item, j->attempts,
                em_err_name(em_err_from_name(r->error_class)),
                em_log_q(q, sizeof q, r->error_message));
        if (r->output_uri[0])
            em_coord_job_settle(c, j, 0);
        else /* no record stored (its put was refused): the coordinator writes one */
            em_coord_job_failed_final(c, j, r->error_class, r->error_message);
    } else {
        em_coord_job_failed(c, j, 0, r->error_class[0] ? r->error_class : "EM_E_INTERNAL",
                            r->error_message);
    }
}

/* A result for a task we do not hold running: only the restart case above can be live. */
static void on_unheld_result(struct em_coord *c, struct em_worker *w, const Earmark__Result *r)
{
    char batch[EM_QUEUE_MAX_BATCH_ID + 1], item[EM_QUEUE_MAX_ITEM_ID + 1];
    unsigned attempt = 0;
    atomic_fetch_add(&c->m->stale_results, 1);
    if (strlen(r->task_id) >= sizeof c->jobs[0]->task_id ||
        em_wire_task_id_parse(r->task_id, batch, sizeof batch, item, sizeof item, &attempt) !=
            EM_OK ||
        !em_queue_id_ok(batch, EM_QUEUE_MAX_BATCH_ID) ||
        !em_queue_id_ok(item, EM_QUEUE_MAX_ITEM_ID)) {
        atomic_fetch_add(&c->m->dropped[EM_DROP_UNEXPECTED], 1);
        return;
    }
    struct em_job *j = job_by_item(c, batch, item);
    if (j) {
        if (j->state != EM_JOB_WAITING || attempt != j->attempts ||
            !lease_eq(j->lease, r->lease_token)) {
            drop(c, w, EM_DROP_NO_LEASE, "no_lease", r->task_id);
            return;
        }
        adopt(c, j, w, r->task_id);
        settle_running(c, w, j, r);
        return;
    }
    struct em_queue_tries t;
    struct em_errbuf eb = {{0}};
    if (em_queue_tries_get(c->q, batch, item, &t, &eb) != EM_OK || attempt != t.attempts ||
        !lease_eq(t.lease, r->lease_token)) {
        drop(c, w, EM_DROP_NO_LEASE, "no_lease", r->task_id);
        return;
    }
    em_info("worker=%s batch=%s item=%s task=%s ok=%d msg=\"result for a task not held\"", w->id,
            batch, item, r->task_id, r->ok ? 1 : 0);
    if (!r->ok && r->retryable) return; /* the entry is still pending: it is re-read */
    struct em_cbatch *b;
    if (em_coord_batch(c, batch, &b, &eb) != EM_OK) return; /* unknown batch: ignore */
    int first = 0;
    if (em_queue_settle(c->q, batch, item, r->ok ? 1 : 0, NULL, &first, &eb) == EM_OK && first) {
        atomic_fetch_add(r->ok ? &c->m->done : &c->m->failed, 1);
        em_coord_batch_check(c, batch);
    }
}

void em_coord_on_result(struct em_coord *c, struct em_worker *w, const Earmark__Result *r)
{
    struct em_job *j = NULL;
    for (size_t i = 0; i < c->njobs && !j; i++)
        if (c->jobs[i]->state == EM_JOB_RUNNING && strcmp(c->jobs[i]->task_id, r->task_id) == 0)
            j = c->jobs[i];
    if (!j)
        on_unheld_result(c, w, r);
    else if (!same_peer(j, w))
        drop(c, w, EM_DROP_WRONG_PEER, "wrong_peer", r->task_id);
    else if (!lease_eq(j->lease, r->lease_token))
        drop(c, w, EM_DROP_BAD_TOKEN, "bad_token", r->task_id);
    else
        settle_running(c, w, j, r);
}

void em_coord_on_heartbeat(struct em_coord *c, struct em_worker *w, const Earmark__Heartbeat *h)
{
    if (h->n_lease_tokens != h->n_task_ids) return; /* adopts nothing without tokens */
    for (size_t i = 0; i < h->n_task_ids && i < 4096; i++) {
        const char *tid = h->task_ids[i];
        char batch[EM_QUEUE_MAX_BATCH_ID + 1], item[EM_QUEUE_MAX_ITEM_ID + 1];
        unsigned attempt;
        if (strlen(tid) >= sizeof c->jobs[0]->task_id ||
            em_wire_task_id_parse(tid, batch, sizeof batch, item, sizeof item, &attempt) != EM_OK)
            continue;
        struct em_job *j = job_by_item(c, batch, item);
        /* only the attempt dispatched last, and only by whoever holds its token */
        if (!j || j->state != EM_JOB_WAITING || attempt != j->attempts ||
            !lease_eq(j->lease, h->lease_tokens[i]))
            continue;
        adopt(c, j, w, tid);
    }
}
