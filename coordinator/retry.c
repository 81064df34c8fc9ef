/* coordinator/retry.c - what happens to an item after an attempt: settle, retry with
 * backoff (base * 2^(fails-1), capped), or - attempts exhausted - the error record the
 * coordinator writes itself, then settle failed + XACK + dead letter. An item whose every
 * failure was a lost worker is quarantined as EM_E_CRASH: the input that kills workers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "coordinator/coord.h"
#include "storage/storage.h"
#include "worker/annotation.h"

int64_t em_coord_backoff_ms(const struct em_coord *c, unsigned fails)
{
    int64_t d = c->cfg.retry_base_ms;
    for (unsigned i = 1; i < fails && d < c->cfg.retry_max_ms; i++)
        d *= 2;
    return d > c->cfg.retry_max_ms ? c->cfg.retry_max_ms : d;
}

void em_coord_job_drop(struct em_coord *c, struct em_job *j)
{
    for (size_t i = 0; i < c->njobs; i++)
        if (c->jobs[i] == j) {
            c->jobs[i] = c->jobs[--c->njobs];
            break;
        }
    if (j->state == EM_JOB_RUNNING) atomic_fetch_sub(&c->m->in_flight, 1);
    free(j->e.source);
    free(j->e.meta_json);
    free(j->e.ref);
    free(j);
}

static void log_err(const struct em_job *j, const char *what, em_err rc, const struct em_errbuf *eb)
{
    char q[300];
    em_warn("batch=%s item=%s err=%s msg=\"%s\" detail=\"%s\"", j->e.batch, j->e.item,
            em_err_name(rc), what, em_log_q(q, sizeof q, em_errbuf_msg(eb, rc)));
}

/* Drops a settled job; when the settle was the item's first, checks whether its batch is
 * now complete (the batch id is copied first: dropping frees j). */
static void drop_settled(struct em_coord *c, struct em_job *j, int first)
{
    char batch[EM_QUEUE_MAX_BATCH_ID + 1];
    snprintf(batch, sizeof batch, "%s", j->e.batch);
    em_coord_job_drop(c, j);
    if (first) em_coord_batch_check(c, batch);
}

int em_coord_past_deadline(const struct em_cbatch *b)
{
    return b->info.deadline_ms > 0 && em_wall_ms() > b->info.deadline_ms;
}

void em_coord_unstall(struct em_coord *c, struct em_cbatch *b)
{
    if (!b->stall_count) return;
    b->stall_count = 0;
    b->stall_until_ms = 0;
    atomic_fetch_sub(&c->m->stalled, 1);
    struct em_errbuf eb = {{0}};
    em_queue_batch_stalled(c->q, b->info.id, NULL, &eb);
    em_info("batch=%s msg=\"output reachable again; dispatch resumed\"", b->info.id);
}

/* An infrastructure fault: the job waits, its attempt unspent, and the whole batch's output
 * pauses; the pause grows with backoff while probes keep failing. */
static void stall(struct em_coord *c, struct em_job *j, const char *err_class, const char *msg)
{
    struct em_cbatch *b = j->b;
    int64_t now = em_now_ms();
    atomic_fetch_add(&c->m->infra_faults, 1);
    if (now >= b->stall_until_ms) { /* the first fault, or a probe after the pause failed */
        if (!b->stall_count) atomic_fetch_add(&c->m->stalled, 1);
        b->stall_count++;
        b->stall_until_ms = now + em_coord_backoff_ms(c, b->stall_count);
        char q[300];
        snprintf(b->stall_reason, sizeof b->stall_reason, "%s: %s", err_class, msg ? msg : "");
        struct em_errbuf eb = {{0}};
        em_queue_batch_stalled(c->q, b->info.id, b->stall_reason, &eb);
        em_warn("batch=%s err=%s msg=\"output stalled; dispatch paused\" pause_ms=%lld "
                "detail=\"%s\"",
                b->info.id, err_class, (long long)(b->stall_until_ms - now),
                em_log_q(q, sizeof q, msg ? msg : ""));
    }
    j->not_before_ms = b->stall_until_ms;
}

void em_coord_job_settle(struct em_coord *c, struct em_job *j, int ok)
{
    em_coord_unstall(c, j->b);
    struct em_errbuf eb = {{0}};
    int first = 0;
    em_err rc = em_queue_settle(c->q, j->e.batch, j->e.item, ok, j->e.stream_id, &first, &eb);
    if (rc == EM_E_NOTFOUND) {
        em_coord_batch_lost(c, j->e.batch); /* drops j */
        return;
    }
    if (rc != EM_OK) {
        /* Not recorded: keep the entry pending; it is re-read and re-dispatched (the
         * output key is idempotent), never lost. */
        log_err(j, "settle failed; item stays pending", rc, &eb);
        em_coord_job_drop(c, j);
        return;
    }
    if (first) atomic_fetch_add(ok ? &c->m->done : &c->m->failed, 1);
    drop_settled(c, j, first);
}

void em_coord_job_failed(struct em_coord *c, struct em_job *j, int lost, const char *err_class,
                         const char *err_msg)
{
    struct em_errbuf eb = {{0}};
    if (em_coord_past_deadline(j->b)) { /* no more tries: the batch's time is up */
        char why[256];
        snprintf(why, sizeof why, "the batch's deadline passed; last error %s: %.160s",
                 err_class ? err_class : "?", err_msg ? err_msg : "");
        em_coord_job_failed_final(c, j, "EM_E_TIMEOUT", why);
        return;
    }
    if (j->state == EM_JOB_RUNNING) atomic_fetch_sub(&c->m->in_flight, 1);
    j->state = EM_JOB_WAITING;
    j->rid_len = 0;
    j->lease[0] = 0; /* the attempt's lease ends: a late result for it settles nothing */
    if (!lost && em_err_infra(em_err_from_name(err_class))) {
        stall(c, j, err_class, err_msg);
        return;
    }
    j->fails++;
    j->lost += lost ? 1 : 0;
    snprintf(j->err_class, sizeof j->err_class, "%s", err_class ? err_class : "EM_E_INTERNAL");
    snprintf(j->err_msg, sizeof j->err_msg, "%s", err_msg ? err_msg : "");
    em_err rc =
        em_queue_tries_fail(c->q, j->e.batch, j->e.item, lost, j->err_class, j->err_msg, &eb);
    if (rc != EM_OK) log_err(j, "could not record the failed attempt", rc, &eb);
    if (j->fails < j->b->info.max_attempts) {
        int64_t d = em_coord_backoff_ms(c, j->fails);
        j->not_before_ms = em_now_ms() + d;
        atomic_fetch_add(&c->m->retried, 1);
        char q[300];
        em_info("batch=%s item=%s attempt=%u err=%s msg=\"retrying in %lld ms\" detail=\"%s\"",
                j->e.batch, j->e.item, j->attempts, j->err_class, (long long)d,
                em_log_q(q, sizeof q, j->err_msg));
        return;
    }
    em_coord_job_finalize(c, j);
}

void em_coord_job_ran_on(struct em_job *j, const struct em_worker *w)
{
    snprintf(j->ran_on, sizeof j->ran_on, "%s", w->id);
    snprintf(j->ran_model, sizeof j->ran_model, "%s", w->model);
}

void em_coord_job_failed_final(struct em_coord *c, struct em_job *j, const char *err_class,
                               const char *err_msg)
{
    if (j->state == EM_JOB_RUNNING) atomic_fetch_sub(&c->m->in_flight, 1);
    j->state = EM_JOB_WAITING;
    j->rid_len = 0;
    j->fails++;
    snprintf(j->err_class, sizeof j->err_class, "%s", err_class ? err_class : "EM_E_INTERNAL");
    snprintf(j->err_msg, sizeof j->err_msg, "%s", err_msg ? err_msg : "");
    struct em_errbuf eb = {{0}};
    em_err rc = em_queue_tries_fail(c->q, j->e.batch, j->e.item, 0, j->err_class, j->err_msg, &eb);
    if (rc != EM_OK) log_err(j, "could not record the failed attempt", rc, &eb);
    em_coord_job_finalize(c, j);
}

/* Settles a finalizing job failed (first settle: counted and dead-lettered) and drops it;
 * on a Redis failure keeps it for a later try. */
static void settle_failed(struct em_coord *c, struct em_job *j, em_err code, const char *msg)
{
    struct em_errbuf eb = {{0}};
    int first = 0;
    em_err rc = em_queue_settle(c->q, j->e.batch, j->e.item, 0, j->e.stream_id, &first, &eb);
    if (rc == EM_E_NOTFOUND) {
        em_coord_batch_lost(c, j->e.batch); /* drops j */
        return;
    }
    if (rc != EM_OK) {
        log_err(j, "settle failed; item stays pending", rc, &eb);
        j->finalize_tries++;
        j->not_before_ms = em_now_ms() + em_coord_backoff_ms(c, j->finalize_tries);
        return;
    }
    if (first) {
        atomic_fetch_add(&c->m->failed, 1);
        if (em_queue_dead(c->q, j->e.batch, j->e.item, j->e.source, j->attempts, em_err_name(code),
                          msg, &eb) != EM_OK)
            log_err(j, "dead letter not written", EM_E_REDIS, &eb);
    }
    drop_settled(c, j, first);
}

void em_coord_job_finalize(struct em_coord *c, struct em_job *j)
{
    struct em_errbuf eb = {{0}};
    char msg[300];
    em_err code = em_err_from_name(j->err_class);
    if (j->fails > 0 && j->lost == j->fails) {
        code = EM_E_CRASH;
        snprintf(msg, sizeof msg, "worker lost %u times while processing this item; quarantined",
                 j->lost);
    } else {
        if (code == EM_OK) code = EM_E_INTERNAL;
        snprintf(msg, sizeof msg, "%s (after %u attempts)",
                 j->err_msg[0] ? j->err_msg : em_err_str(code), j->fails);
    }
    j->state = EM_JOB_FINALIZING;
    struct em_annot_in in = {
        .item_id = j->e.item,
        .batch_id = j->e.batch,
        .source = j->e.source,
        .worker_id = NULL, /* "coordinator"; the worker of the last attempt goes beside */
        .last_worker = j->ran_on[0] ? j->ran_on : NULL,
        .producer_hash = j->b->info.producer_hash,
        .model = j->ran_model[0] ? j->ran_model : "unknown",
        .meta_json = j->e.meta_json,
        .attempt = j->attempts,
        .err = code,
        .err_msg = msg,
    };
    size_t len = 0;
    char *rec = em_annot_build(&in, &len);
    char name[EM_QUEUE_MAX_ITEM_ID + 8];
    snprintf(name, sizeof name, "%s.json", j->e.item);
    char *uri = em_storage_join(j->b->info.out, name);
    em_err rc = (!rec || !uri) ? em_errf(&eb, EM_E_NOMEM, "error record: out of memory")
                               : em_storage_put(c->st, uri, rec, len, "application/json", &eb);
    free(rec);
    free(uri);
    if (rc != EM_OK && em_err_retryable(rc) && !em_coord_past_deadline(j->b)) {
        /* Storage is down: the item stays held (and its entry pending) until it is written,
         * or until the batch's deadline. */
        j->finalize_tries++;
        j->not_before_ms = em_now_ms() + em_coord_backoff_ms(c, j->finalize_tries);
        log_err(j, "error record not written yet; will retry", rc, &eb);
        return;
    }
    if (rc != EM_OK) /* refused for good (403, bad key), or the deadline passed: the item ends */
        log_err(j, "error record not stored; the item is settled failed without one", rc, &eb);
    em_warn("batch=%s item=%s err=%s attempts=%u msg=\"item failed\" detail=\"%s\"", j->e.batch,
            j->e.item, em_err_name(code), j->attempts, msg);
    settle_failed(c, j, code, msg);
}
