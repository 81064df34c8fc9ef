/* coordinator/batch.c - batch cache (prompts and settings parsed once per batch), completion:
 * when done + failed (+ cancelled) reaches total, <out>/manifest.jsonl (one line per item:
 * id, source, status, output) is written through storage - retried with backoff until it
 * succeeds - and only then is the batch marked complete (or cancelled), its keys given the
 * retention TTL. A cancel request drops the batch's held jobs (a running task's late result
 * changes nothing) and settles the rest "cancelled". Streams are trimmed every
 * cfg.trim_every_ms. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "coordinator/coord.h"
#include "storage/storage.h"

#define CACHE_TTL_MS 60000 /* an unused batch leaves the cache after this */
#define MANIFEST_PAGE 1000 /* rows read per Redis round trip */

static void cbatch_free(struct em_cbatch *b)
{
    if (!b) return;
    for (size_t i = 0; i < b->n_prompts; i++) {
        free(b->prompts[i]->name);
        free(b->prompts[i]->text);
        free(b->prompts[i]);
    }
    free(b->prompts);
    em_batch_info_clear(&b->info);
    free(b);
}

/* prompts JSON [{name, text}] -> Prompt messages; gen JSON -> Generation. */
static em_err parse_settings(struct em_cbatch *b, struct em_errbuf *eb)
{
    json_t *p = json_loads(b->info.prompts_json, 0, NULL);
    if (!json_is_array(p) || json_array_size(p) == 0 || json_array_size(p) > 256) {
        json_decref(p);
        return em_errf(eb, EM_E_FORMAT, "batch %s: prompts are not a non-empty JSON array",
                       b->info.id);
    }
    b->prompts = calloc(json_array_size(p), sizeof *b->prompts);
    em_err rc = b->prompts ? EM_OK : EM_E_NOMEM;
    for (size_t i = 0; rc == EM_OK && i < json_array_size(p); i++) {
        json_t *e = json_array_get(p, i);
        const char *name = json_string_value(json_object_get(e, "name"));
        const char *text = json_string_value(json_object_get(e, "text"));
        Earmark__Prompt *m = calloc(1, sizeof *m);
        if (!m) {
            rc = EM_E_NOMEM;
            break;
        }
        earmark__prompt__init(m);
        m->name = strdup(name ? name : "");
        m->text = strdup(text ? text : "");
        b->prompts[b->n_prompts++] = m;
        if (!m->name || !m->text) rc = EM_E_NOMEM;
    }
    json_decref(p);
    if (rc != EM_OK) return em_errf(eb, rc, "batch %s: out of memory", b->info.id);
    earmark__generation__init(&b->gen);
    json_t *g = b->info.gen_json ? json_loads(b->info.gen_json, 0, NULL) : NULL;
    if (json_is_object(g)) {
        json_int_t mx = json_integer_value(json_object_get(g, "max_new_tokens"));
        json_int_t tk = json_integer_value(json_object_get(g, "top_k"));
        json_int_t sd = json_integer_value(json_object_get(g, "seed"));
        b->gen.max_new_tokens = mx > 0 && mx < 100000 ? (uint32_t)mx : 256;
        b->gen.temperature = (float)json_number_value(json_object_get(g, "temperature"));
        b->gen.top_k = tk > 0 && tk < 100000 ? (uint32_t)tk : 0;
        b->gen.top_p = (float)json_number_value(json_object_get(g, "top_p"));
        b->gen.repetition_penalty =
            (float)json_number_value(json_object_get(g, "repetition_penalty"));
        b->gen.seed = sd > 0 ? (uint64_t)sd : 0;
        b->gen.greedy = json_is_true(json_object_get(g, "greedy"));
        b->gen.strict_audio = json_is_true(json_object_get(g, "strict_audio"));
    } else {
        b->gen.max_new_tokens = 256;
        b->gen.greedy = 1;
    }
    json_decref(g);
    return EM_OK;
}

em_err em_coord_batch(struct em_coord *c, const char *id, struct em_cbatch **out,
                      struct em_errbuf *eb)
{
    *out = NULL;
    for (size_t i = 0; i < c->nbatches; i++)
        if (strcmp(c->batches[i]->info.id, id) == 0) {
            *out = c->batches[i];
            return EM_OK;
        }
    if (c->nbatches == c->capbatches) {
        size_t nc = c->capbatches ? c->capbatches * 2 : 16;
        struct em_cbatch **v = realloc(c->batches, nc * sizeof *v);
        if (!v) return em_errf(eb, EM_E_NOMEM, "batch cache: out of memory");
        c->batches = v;
        c->capbatches = nc;
    }
    struct em_cbatch *b = calloc(1, sizeof *b);
    if (!b) return em_errf(eb, EM_E_NOMEM, "batch cache: out of memory");
    em_err rc = em_queue_batch_get(c->q, id, &b->info, eb);
    if (rc == EM_OK) rc = parse_settings(b, eb);
    if (rc != EM_OK) {
        cbatch_free(b);
        return rc;
    }
    if (b->info.max_attempts == 0) b->info.max_attempts = 3;
    em_coord_batch_needs(b);
    b->waiting = b->info.waiting != NULL; /* as Redis has it (a restart may have left it) */
    b->loaded_ms = em_now_ms();
    c->batches[c->nbatches++] = b;
    *out = b;
    return EM_OK;
}

/* Appends one manifest line per row to buf. */
static int append_rows(json_t *line, const struct em_batch_info *bi, struct em_queue_row *r,
                       size_t n, char **buf, size_t *len, size_t *cap)
{
    for (size_t i = 0; i < n; i++) {
        char name[EM_QUEUE_MAX_ITEM_ID + 8];
        snprintf(name, sizeof name, "%s.json", r[i].item);
        char *def = r[i].output[0] ? NULL : em_storage_join(bi->out, name);
        json_object_clear(line);
        json_object_set_new(line, "id", json_string(r[i].item));
        json_object_set_new(line, "source", json_string(r[i].source));
        json_object_set_new(line, "status", json_string(r[i].status[0] ? r[i].status : "pending"));
        int none = strcmp(r[i].status, "cancelled") == 0; /* no record was written */
        json_object_set_new(line, "output", none ? json_null()
                                                 : json_string(r[i].output[0] ? r[i].output : def));
        free(def);
        char *s = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!s) return -1;
        size_t sl = strlen(s);
        if (*len + sl + 2 > *cap) {
            size_t nc = (*cap + sl + 2) * 2;
            char *nb = realloc(*buf, nc);
            if (!nb) {
                free(s);
                return -1;
            }
            *buf = nb;
            *cap = nc;
        }
        memcpy(*buf + *len, s, sl);
        *len += sl;
        (*buf)[(*len)++] = '\n';
        free(s);
    }
    return 0;
}

static em_err write_manifest(struct em_coord *c, const struct em_batch_info *bi,
                             struct em_errbuf *eb)
{
    char *buf = NULL, *uri = NULL;
    size_t len = 0, cap = 0;
    em_err rc = EM_OK;
    json_t *line = json_object();
    if (!line) return em_errf(eb, EM_E_NOMEM, "manifest: out of memory");
    for (size_t start = 0;; start += MANIFEST_PAGE) {
        struct em_queue_row *rows = NULL;
        size_t n = 0;
        if ((rc = em_queue_rows(c->q, bi->id, start, MANIFEST_PAGE, &rows, &n, eb)) != EM_OK) break;
        int bad = append_rows(line, bi, rows, n, &buf, &len, &cap);
        em_queue_rows_free(rows, n);
        if (bad) {
            rc = em_errf(eb, EM_E_NOMEM, "manifest: out of memory");
            break;
        }
        if (n < MANIFEST_PAGE) break;
    }
    json_decref(line);
    if (rc == EM_OK && !(uri = em_storage_join(bi->out, "manifest.jsonl")))
        rc = em_errf(eb, EM_E_NOMEM, "manifest: out of memory");
    if (rc == EM_OK)
        rc = em_storage_put(c->st, uri, buf ? buf : "", len, "application/x-ndjson", eb);
    free(uri);
    free(buf);
    return rc;
}

static struct em_cbatch *cached(struct em_coord *c, const char *id)
{
    for (size_t i = 0; i < c->nbatches; i++)
        if (strcmp(c->batches[i]->info.id, id) == 0) return c->batches[i];
    return NULL;
}

/* `earmark cancel`: held jobs of the batch are dropped (entries acked; a running task's
 * late result settles nothing: the item is "cancelled" by then) and every unsettled item is
 * settled "cancelled". Returns how many were, or -1 on a Redis failure (tried again). */
static long long cancel_batch(struct em_coord *c, const char *id)
{
    uint64_t n = 0;
    struct em_errbuf eb = {{0}};
    if (em_queue_cancel_rest(c->q, id, &n, &eb) != EM_OK) return -1;
    for (size_t i = 0; i < c->njobs;) {
        struct em_job *j = c->jobs[i];
        if (strcmp(j->e.batch, id) != 0) {
            i++;
            continue;
        }
        em_queue_ack(c->q, j->e.stream_id, &eb);
        em_coord_job_drop(c, j); /* the array changed: i stays */
    }
    em_info("batch=%s msg=\"cancelled\" items_cancelled=%llu", id, (unsigned long long)n);
    return (long long)n;
}

void em_coord_batch_check(struct em_coord *c, const char *id)
{
    struct em_batch_info bi;
    struct em_errbuf eb = {{0}};
    struct em_cbatch *cb = cached(c, id);
    int64_t now = em_now_ms();
    if (cb && cb->next_check_ms > now) return;
    em_err rc = em_queue_batch_get(c->q, id, &bi, &eb);
    if (rc != EM_OK) {
        if (rc == EM_E_NOTFOUND) {
            struct em_errbuf e2;
            em_queue_batch_complete(c->q, id, &e2); /* drop a dangling active entry */
        }
        return;
    }
    if (strcmp(bi.state, "open") == 0 && bi.cancel) {
        long long n = cancel_batch(c, id);
        if (n > 0) bi.cancelled += (uint64_t)n;
    }
    if (strcmp(bi.state, "open") == 0 && bi.done + bi.failed + bi.cancelled >= bi.total) {
        rc = write_manifest(c, &bi, &eb);
        if (rc != EM_OK && !em_err_retryable(rc)) {
            /* refused for good (403, bad key): retrying forever would leave the batch open */
            char q[300];
            em_error("batch=%s err=%s msg=\"manifest.jsonl refused by storage; the batch "
                     "completes without it\" detail=\"%s\"",
                     id, em_err_name(rc), em_log_q(q, sizeof q, em_errbuf_msg(&eb, rc)));
            rc = EM_OK;
        }
        if (rc == EM_OK)
            rc = em_queue_batch_finish(c->q, id, bi.cancel ? "cancelled" : "complete",
                                       c->cfg.retention_ms, &eb);
        if (rc == EM_OK) {
            em_info("batch=%s msg=\"batch %s\" total=%llu done=%llu failed=%llu cancelled=%llu",
                    id, bi.cancel ? "cancelled" : "complete", (unsigned long long)bi.total,
                    (unsigned long long)bi.done, (unsigned long long)bi.failed,
                    (unsigned long long)bi.cancelled);
            if (cb && cb->stall_count) em_coord_unstall(c, cb);
            if (cb) {
                cb->manifest_failures = 0;
                snprintf(cb->info.state, sizeof cb->info.state, "%s",
                         bi.cancel ? "cancelled" : "complete"); /* lost.c skips finished ones */
            }
        } else {
            char q[300];
            em_warn(
                "batch=%s err=%s msg=\"manifest.jsonl not written yet; will retry\" detail=\"%s\"",
                id, em_err_name(rc), em_log_q(q, sizeof q, em_errbuf_msg(&eb, rc)));
            if (cb) {
                cb->manifest_failures++;
                cb->next_check_ms = now + em_coord_backoff_ms(c, cb->manifest_failures);
            }
        }
    }
    em_batch_info_clear(&bi);
}

static void publish_in_flight(struct em_coord *c)
{
    for (size_t i = 0; i < c->nbatches; i++) {
        uint64_t n = 0;
        for (size_t k = 0; k < c->njobs; k++)
            if (c->jobs[k]->b == c->batches[i] && c->jobs[k]->state == EM_JOB_RUNNING) n++;
        struct em_errbuf eb;
        em_queue_inflight_set(c->q, c->batches[i]->info.id, c->cfg.id, n, &eb);
    }
}

static void expire_cache(struct em_coord *c, int64_t now)
{
    for (size_t i = 0; i < c->nbatches;) {
        struct em_cbatch *b = c->batches[i];
        int used = 0;
        for (size_t k = 0; k < c->njobs && !used; k++)
            used = c->jobs[k]->b == b;
        if (!used && now - b->loaded_ms > CACHE_TTL_MS && b->next_check_ms <= now) {
            c->batches[i] = c->batches[--c->nbatches];
            cbatch_free(b);
        } else {
            i++;
        }
    }
}

/* Waiting items of batches past their deadline (submit --deadline) fail now, with what
 * held them up (a stall) in the message. */
static void expire_deadlines(struct em_coord *c)
{
    for (size_t i = 0; i < c->njobs;) {
        struct em_job *j = c->jobs[i];
        if (j->state != EM_JOB_WAITING || !em_coord_past_deadline(j->b)) {
            i++;
            continue;
        }
        char why[256];
        snprintf(why, sizeof why, "the batch's deadline passed%s%.180s",
                 j->b->stall_count ? " while its output was stalled: " : "",
                 j->b->stall_count ? j->b->stall_reason : "");
        em_coord_job_failed_final(c, j, "EM_E_TIMEOUT", why); /* settles or finalizes j */
        i = 0; /* the array changed */
    }
}

void em_coord_batches_tick(struct em_coord *c, int64_t now_ms)
{
    expire_deadlines(c);
    char **ids = NULL;
    size_t n = 0;
    struct em_errbuf eb;
    if (em_queue_active(c->q, &ids, &n, &eb) == EM_OK) {
        for (size_t i = 0; i < n; i++)
            em_coord_batch_check(c, ids[i]);
        em_queue_strv_free(ids, n);
    }
    publish_in_flight(c);
    expire_cache(c, now_ms);
    if (now_ms >= c->next_trim_ms) {
        uint64_t trimmed = 0;
        if (em_queue_trim(c->q, &trimmed, &eb) == EM_OK && trimmed)
            em_info("msg=\"items stream trimmed\" entries=%llu", (unsigned long long)trimmed);
        c->next_trim_ms = now_ms + c->cfg.trim_every_ms;
    }
    long long lag = -1;
    if (em_queue_lag(c->q, &lag, &eb) == EM_OK && lag >= 0)
        atomic_store(&c->m->queue_depth, lag + (long long)em_coord_count_jobs(c, EM_JOB_WAITING));
}

void em_coord_batches_free(struct em_coord *c)
{
    for (size_t i = 0; i < c->nbatches; i++)
        cbatch_free(c->batches[i]);
    free(c->batches);
    c->batches = NULL;
    c->nbatches = c->capbatches = 0;
}

void em_coord_batch_forget(struct em_coord *c, const char *id)
{
    for (size_t i = 0; i < c->nbatches; i++)
        if (strcmp(c->batches[i]->info.id, id) == 0) {
            struct em_cbatch *b = c->batches[i];
            c->batches[i] = c->batches[--c->nbatches];
            cbatch_free(b);
            return;
        }
}
