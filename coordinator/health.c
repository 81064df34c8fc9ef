/* coordinator/health.c - readiness, liveness and per-batch progress (health.h). */
#include "coordinator/health.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/httpd.h"
#include "common/prom.h"

#define RENDER_CAP (256u << 10) /* bytes of one /metrics reply: 64 batches x 4 rows fit */

struct brow {
    char id[EM_QUEUE_MAX_BATCH_ID + 1];
    unsigned long long total, done, failed;
    int64_t changed_ms; /* monotonic: when done + failed last moved */
    const char *reason; /* static; "none" when not stalled */
};

struct em_chealth {
    struct em_metrics *m;
    int64_t stall_ms;
    atomic_int_fast64_t last_tick_ms;
    pthread_mutex_t mu; /* everything below */
    bool redis_up;
    char redis_err[200];
    long long dead, open;
    struct brow rows[EM_CHEALTH_MAX_BATCHES];
    size_t nrows;
};

em_err em_chealth_new(struct em_metrics *m, int64_t stall_ms, struct em_chealth **out)
{
    struct em_chealth *h = calloc(1, sizeof *h);
    if (!h) return EM_E_NOMEM;
    h->m = m;
    h->stall_ms = stall_ms;
    h->redis_up = true; /* the coordinator starts serving only once Redis answered */
    atomic_store(&h->last_tick_ms, em_now_ms());
    pthread_mutex_init(&h->mu, NULL);
    *out = h;
    return EM_OK;
}

void em_chealth_free(struct em_chealth *h)
{
    if (!h) return;
    pthread_mutex_destroy(&h->mu);
    free(h);
}

/* Why a batch with items left settles nothing, from what this coordinator holds of it. */
static const char *stall_reason(const struct em_coord *c, const char *batch, int64_t now)
{
    if (c->nworkers == 0) return "no_workers";
    size_t running = 0, backoff = 0, finalizing = 0, held = 0;
    for (size_t i = 0; i < c->njobs; i++) {
        const struct em_job *j = c->jobs[i];
        if (strcmp(j->e.batch, batch) != 0) continue;
        held++;
        if (j->state == EM_JOB_RUNNING) running++;
        else if (j->state == EM_JOB_FINALIZING) finalizing++;
        else if (j->not_before_ms > now) backoff++;
    }
    if (finalizing) return "storage";
    if (running) return "running";
    if (held && backoff == held) return "retry_backoff";
    return "waiting";
}

static const struct brow *find(const struct brow *rows, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(rows[i].id, id) == 0) return &rows[i];
    return NULL;
}

void em_chealth_tick(struct em_chealth *h, struct em_coord *c, int64_t now)
{
    struct em_errbuf eb = {{0}};
    static struct brow rows[EM_CHEALTH_MAX_BATCHES]; /* poll-loop only */
    size_t n = 0;
    long long dead = 0;
    char **ids = NULL;
    size_t nids = 0;
    atomic_store(&h->last_tick_ms, now);
    em_err rc = em_queue_active(c->q, &ids, &nids, &eb);
    if (rc == EM_OK) rc = em_queue_dead_len(c->q, &dead, &eb);
    for (size_t i = 0; rc == EM_OK && i < nids && n < EM_CHEALTH_MAX_BATCHES; i++) {
        struct em_batch_info bi;
        struct em_errbuf beb;
        if (em_queue_batch_get(c->q, ids[i], &bi, &beb) != EM_OK) continue;
        if (strcmp(bi.state, "open") == 0) {
            struct brow *r = &rows[n++];
            snprintf(r->id, sizeof r->id, "%s", bi.id);
            r->total = bi.total;
            r->done = bi.done;
            r->failed = bi.failed;
            pthread_mutex_lock(&h->mu);
            const struct brow *old = find(h->rows, h->nrows, r->id);
            bool moved = !old || old->done + old->failed != r->done + r->failed;
            r->changed_ms = moved ? now : old->changed_ms;
            pthread_mutex_unlock(&h->mu);
            bool left = r->done + r->failed < r->total;
            r->reason = left && now - r->changed_ms >= h->stall_ms ? stall_reason(c, r->id, now)
                                                                   : "none";
        }
        em_batch_info_clear(&bi);
    }
    em_queue_strv_free(ids, nids);
    pthread_mutex_lock(&h->mu);
    h->redis_up = rc == EM_OK;
    if (rc == EM_OK) {
        h->redis_err[0] = 0;
        h->dead = dead;
        h->open = (long long)nids;
        memcpy(h->rows, rows, n * sizeof *rows);
        h->nrows = n;
    } else {
        snprintf(h->redis_err, sizeof h->redis_err, "%s", em_errbuf_msg(&eb, rc));
    }
    pthread_mutex_unlock(&h->mu);
}

static void render_batches(struct em_chealth *h, struct em_prom *p)
{
    static const char *items = "earmark_batch_items", *stalled = "earmark_batch_stalled";
    em_prom_gauge(p, "earmark_redis_up", "1 while Redis answers the coordinator.", h->redis_up);
    em_prom_gauge(p, "earmark_dead_letters", "Entries in the dead-letter stream (earmark:dead).",
                  (double)h->dead);
    em_prom_gauge(p, "earmark_batches_open", "Open batches.", (double)h->open);
    em_prom_family(p, items, "gauge", "Items of an open batch: total, done, failed.");
    for (size_t i = 0; i < h->nrows; i++) {
        const struct brow *r = &h->rows[i];
        const unsigned long long v[3] = {r->total, r->done, r->failed};
        static const char *st[3] = {"total", "done", "failed"};
        for (int k = 0; k < 3; k++) {
            em_prom_printf(p, "%s{batch=\"", items);
            em_prom_label(p, r->id);
            em_prom_printf(p, "\",state=\"%s\"} %llu\n", st[k], v[k]);
        }
    }
    em_prom_family(p, stalled, "gauge",
                   "1 when a batch with items left settled none for the stall time, by reason.");
    for (size_t i = 0; i < h->nrows; i++) {
        const struct brow *r = &h->rows[i];
        em_prom_printf(p, "%s{batch=\"", stalled);
        em_prom_label(p, r->id);
        em_prom_printf(p, "\",reason=\"%s\"} %d\n", r->reason, strcmp(r->reason, "none") != 0);
    }
}

static int on_metrics(void *arg, const char *path, struct em_http_reply *r)
{
    (void)path;
    struct em_chealth *h = arg;
    char *body = malloc(RENDER_CAP);
    if (!body) {
        em_http_printf(r, "out of memory\n");
        return 500;
    }
    size_t n = em_metrics_render(h->m, body, RENDER_CAP);
    struct em_prom p;
    em_prom_init(&p, body + n, RENDER_CAP - n);
    pthread_mutex_lock(&h->mu);
    render_batches(h, &p);
    pthread_mutex_unlock(&h->mu);
    size_t m = em_prom_end(&p);
    int status = 200;
    if (n >= RENDER_CAP || m >= RENDER_CAP - n) { /* never serve a cut exposition */
        em_http_printf(r, "metrics exceed %u bytes\n", RENDER_CAP);
        status = 500;
    } else {
        em_http_type(r, EM_PROM_CONTENT_TYPE);
        em_http_write(r, body, n + m);
    }
    free(body);
    return status;
}

static int on_healthz(void *arg, const char *path, struct em_http_reply *r)
{
    (void)path;
    struct em_chealth *h = arg;
    int64_t idle = em_now_ms() - (int64_t)atomic_load(&h->last_tick_ms);
    if (idle >= EM_CHEALTH_STUCK_MS) {
        em_http_printf(r, "poll loop stuck for %lld ms\n", (long long)idle);
        return 503;
    }
    em_http_printf(r, "ok\n");
    return 200;
}

static int on_readyz(void *arg, const char *path, struct em_http_reply *r)
{
    (void)path;
    struct em_chealth *h = arg;
    pthread_mutex_lock(&h->mu);
    bool up = h->redis_up;
    if (up) em_http_printf(r, "ready: Redis answers\n");
    else em_http_printf(r, "not ready: Redis: %s\n", h->redis_err);
    pthread_mutex_unlock(&h->mu);
    return up ? 200 : 503;
}

em_err em_chealth_routes(struct em_chealth *h, struct em_httpd *web, struct em_errbuf *eb)
{
    em_err rc;
    if ((rc = em_httpd_route(web, "/metrics", on_metrics, h, eb)) != EM_OK ||
        (rc = em_httpd_route(web, "/healthz", on_healthz, h, eb)) != EM_OK ||
        (rc = em_httpd_route(web, "/readyz", on_readyz, h, eb)) != EM_OK)
        return rc;
    return EM_OK;
}
