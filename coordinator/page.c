/* coordinator/page.c - live status pages (page.h): a mutex-guarded snapshot of workers and
 * failures written by the poll loop, and HTML rendered on the HTTP thread from it and from
 * Redis (batch hashes, as `earmark status` reads them). */
#include "coordinator/page.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "coordinator/cli.h"
#include "coordinator/coord.h"
#include "coordinator/queue.h"

struct pworker {
    char id[64], model[128], backend[16];
    unsigned capacity, running;
    uint64_t done, failed;
    int64_t since_ms; /* wall clock, first seen */
    int connected;
};

struct pfail {
    int64_t wall_ms;
    char worker[64], batch[EM_QUEUE_MAX_BATCH_ID + 1], item[EM_QUEUE_MAX_ITEM_ID + 1];
    char source[256], cls[40], msg[256];
};

struct em_page {
    pthread_mutex_t mu;
    struct pworker w[EM_PAGE_MAX_WORKERS];
    size_t nw, extra_workers;
    struct pfail f[EM_PAGE_RECENT_FAILS]; /* ring; nf kept, head = next slot */
    size_t nf, head;
    char *redis_url, *redis_ca; /* what the coordinator was given (the CA may be NULL) */
    struct em_queue *q; /* HTTP thread only */
};

em_err em_page_new(const char *redis_url, const char *redis_ca, struct em_page **out,
                   struct em_errbuf *eb)
{
    struct em_page *p = calloc(1, sizeof *p);
    if (!p || !(p->redis_url = strdup(redis_url ? redis_url : "")) ||
        (redis_ca && !(p->redis_ca = strdup(redis_ca)))) {
        if (p) free(p->redis_url);
        free(p);
        return em_errf(eb, EM_E_NOMEM, "status page: out of memory");
    }
    pthread_mutex_init(&p->mu, NULL);
    *out = p;
    return EM_OK;
}

void em_page_free(struct em_page *p)
{
    if (!p) return;
    em_queue_close(p->q);
    pthread_mutex_destroy(&p->mu);
    if (p->redis_url) memset(p->redis_url, 0, strlen(p->redis_url)); /* may hold a password */
    free(p->redis_url);
    free(p->redis_ca);
    free(p);
}

/* The snapshot entry of worker id, added when absent; NULL when the table is full. */
static struct pworker *find(struct em_page *p, const char *id)
{
    for (size_t i = 0; i < p->nw; i++)
        if (strcmp(p->w[i].id, id) == 0) return &p->w[i];
    if (p->nw == EM_PAGE_MAX_WORKERS) return NULL;
    struct pworker *w = &p->w[p->nw++];
    memset(w, 0, sizeof *w);
    snprintf(w->id, sizeof w->id, "%s", id);
    snprintf(w->model, sizeof w->model, "?");
    snprintf(w->backend, sizeof w->backend, "?");
    w->since_ms = em_wall_ms();
    w->connected = 1;
    return w;
}

void em_page_hello(struct em_page *p, const char *worker, const char *model, const char *backend)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    struct pworker *w = find(p, worker);
    if (w) {
        snprintf(w->model, sizeof w->model, "%s", model && *model ? model : "?");
        snprintf(w->backend, sizeof w->backend, "%s", backend && *backend ? backend : "?");
        w->since_ms = em_wall_ms();
        w->done = w->failed = 0;
    }
    pthread_mutex_unlock(&p->mu);
}

void em_page_result(struct em_page *p, const char *worker, const char *batch, const char *item,
                    const char *source, int ok, const char *cls, const char *msg)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    struct pworker *w = find(p, worker);
    if (w && ok) w->done++;
    if (w && !ok) w->failed++;
    if (!ok) {
        struct pfail *f = &p->f[p->head];
        f->wall_ms = em_wall_ms();
        snprintf(f->worker, sizeof f->worker, "%s", worker);
        snprintf(f->batch, sizeof f->batch, "%s", batch);
        snprintf(f->item, sizeof f->item, "%s", item);
        snprintf(f->source, sizeof f->source, "%s", source ? source : "");
        snprintf(f->cls, sizeof f->cls, "%s", cls && *cls ? cls : "EM_E_INTERNAL");
        snprintf(f->msg, sizeof f->msg, "%s", msg ? msg : "");
        p->head = (p->head + 1) % EM_PAGE_RECENT_FAILS;
        if (p->nf < EM_PAGE_RECENT_FAILS) p->nf++;
    }
    pthread_mutex_unlock(&p->mu);
}

void em_page_workers(struct em_page *p, struct em_worker *const *w, size_t n)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->nw; i++) p->w[i].connected = 0;
    p->extra_workers = 0;
    for (size_t i = 0; i < n; i++) {
        struct pworker *s = find(p, w[i]->id);
        if (!s) {
            p->extra_workers++;
            continue;
        }
        s->connected = 1;
        s->capacity = w[i]->capacity;
        s->running = w[i]->running;
    }
    /* forget the disconnected ones (they say Hello again when they come back) */
    size_t k = 0;
    for (size_t i = 0; i < p->nw; i++)
        if (p->w[i].connected) p->w[k++] = p->w[i];
    p->nw = k;
    pthread_mutex_unlock(&p->mu);
}

/* ---- rendering (HTTP thread) ---- */

static void esc(struct em_http_reply *r, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': em_http_write(r, "&amp;", 5); break;
        case '<': em_http_write(r, "&lt;", 4); break;
        case '>': em_http_write(r, "&gt;", 4); break;
        case '"': em_http_write(r, "&quot;", 6); break;
        case '\'': em_http_write(r, "&#39;", 5); break;
        default: em_http_write(r, s, 1);
        }
    }
}

static const char css[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:20px auto;max-width:1100px;color:#222}"
    "h1{font-size:20px}h2{font-size:16px;margin-top:24px;border-bottom:1px solid #ddd}"
    "table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:left}"
    "td.n{text-align:right;font-variant-numeric:tabular-nums}"
    ".bar{width:220px;height:14px;background:#eee;border-radius:3px;overflow:hidden;display:flex}"
    ".ok{background:#3b7dd8}.bad{background:#d8553b}.muted{color:#777}code{font-size:12px}";

static void head(struct em_http_reply *r, const char *title)
{
    em_http_type(r, "text/html; charset=utf-8");
    em_http_header(r, "Cache-Control", "no-store");
    em_http_printf(r, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                      "<meta http-equiv=\"refresh\" content=\"%d\"><title>", EM_PAGE_REFRESH_S);
    esc(r, title);
    em_http_printf(r, "</title><style>%s</style></head><body><h1>", css);
    esc(r, title);
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%SZ", gmtime_r(&now, &tm));
    em_http_printf(r, "</h1><p class=\"muted\">earmark %s &middot; %s &middot; refreshes every "
                      "%d s &middot; <a href=\"/\">all batches</a> &middot; <a href=\"/metrics\">"
                      "metrics</a></p>\n", EM_VERSION, when, EM_PAGE_REFRESH_S);
}

/* One batch's row: id, state, bar, counts, rate, ETA. 0, 1 when there is no such batch,
 * -1 when Redis failed. */
static int batch_row(struct em_page *p, struct em_http_reply *r, const char *id)
{
    struct em_batch_info b = {0};
    uint64_t infl = 0;
    struct em_errbuf eb = {{0}};
    em_err rc = em_queue_batch_get(p->q, id, &b, &eb);
    if (rc == EM_OK) rc = em_queue_inflight_sum(p->q, id, &infl, &eb);
    if (rc != EM_OK) {
        em_http_printf(r, "<tr><td><code>");
        esc(r, id);
        em_http_printf(r, "</code></td><td colspan=\"8\">");
        esc(r, em_errbuf_msg(&eb, rc));
        em_http_printf(r, "</td></tr>");
        em_batch_info_clear(&b);
        return rc == EM_E_NOTFOUND ? 1 : -1;
    }
    struct em_progress pr;
    em_progress_of(&b, infl, b.dead, em_wall_ms(), &pr);
    double total = pr.total ? (double)pr.total : 1;
    em_http_printf(r, "<tr class=\"batch\" data-batch=\"");
    esc(r, id);
    em_http_printf(r, "\" data-total=\"%llu\" data-done=\"%llu\" data-failed=\"%llu\" data-state=\"",
                   (unsigned long long)pr.total, (unsigned long long)pr.done,
                   (unsigned long long)pr.failed);
    esc(r, b.state);
    em_http_printf(r, "\"><td><a href=\"/batches/");
    esc(r, id);
    em_http_printf(r, "\"><code>");
    esc(r, id);
    em_http_printf(r, "</code></a></td><td>");
    esc(r, b.state);
    em_http_printf(r, "</td><td><div class=\"bar\" title=\"%.1f %%\"><div class=\"ok\" style=\"width:%.2f%%\">"
                      "</div><div class=\"bad\" style=\"width:%.2f%%\"></div></div></td>",
                   100.0 * (double)(pr.done + pr.failed) / total, 100.0 * (double)pr.done / total,
                   100.0 * (double)pr.failed / total);
    em_http_printf(r, "<td class=\"n\">%llu / %llu</td><td class=\"n\">%llu</td><td class=\"n\">%llu</td>"
                      "<td class=\"n\">%llu</td><td class=\"n\">%.2f/s</td><td class=\"n\">",
                   (unsigned long long)pr.done, (unsigned long long)pr.total,
                   (unsigned long long)pr.failed, (unsigned long long)pr.pending,
                   (unsigned long long)pr.in_flight, pr.rate);
    if (pr.complete)
        em_http_printf(r, "done");
    else if (pr.eta_s < 0)
        em_http_printf(r, "&ndash;");
    else
        em_http_printf(r, "%.0f s", pr.eta_s);
    em_http_printf(r, "</td></tr>\n");
    em_batch_info_clear(&b);
    return 0;
}

static void batch_table_head(struct em_http_reply *r)
{
    em_http_printf(r, "<table id=\"batches\"><tr><th>batch</th><th>state</th><th>progress</th>"
                      "<th>done</th><th>failed</th><th>pending</th><th>in flight</th><th>rate</th>"
                      "<th>ETA</th></tr>\n");
}

static void workers_table(struct em_page *p, struct em_http_reply *r)
{
    int64_t now = em_wall_ms();
    pthread_mutex_lock(&p->mu);
    em_http_printf(r, "<h2>Workers (%zu)</h2><table id=\"workers\"><tr><th>worker</th><th>model</th>"
                      "<th>backend</th><th>capacity</th><th>running</th><th>done</th><th>failed</th>"
                      "<th>items/min</th></tr>\n", p->nw + p->extra_workers);
    for (size_t i = 0; i < p->nw; i++) {
        const struct pworker *w = &p->w[i];
        double mins = (double)(now - w->since_ms) / 60000.0;
        em_http_printf(r, "<tr class=\"worker\" data-worker=\"");
        esc(r, w->id);
        em_http_printf(r, "\" data-done=\"%llu\"><td><code>", (unsigned long long)w->done);
        esc(r, w->id);
        em_http_printf(r, "</code></td><td><code>");
        esc(r, w->model);
        em_http_printf(r, "</code></td><td>");
        esc(r, w->backend);
        em_http_printf(r, "</td><td class=\"n\">%u</td><td class=\"n\">%u</td><td class=\"n\">%llu</td>"
                          "<td class=\"n\">%llu</td><td class=\"n\">%.1f</td></tr>\n",
                       w->capacity, w->running, (unsigned long long)w->done,
                       (unsigned long long)w->failed, mins > 0 ? (double)w->done / mins : 0.0);
    }
    if (p->extra_workers)
        em_http_printf(r, "<tr><td colspan=\"8\">and %zu more</td></tr>", p->extra_workers);
    em_http_printf(r, "</table>\n");
    pthread_mutex_unlock(&p->mu);
}

/* Recent failures, newest first; only those of batch when not NULL. */
static void failures_table(struct em_page *p, struct em_http_reply *r, const char *batch)
{
    pthread_mutex_lock(&p->mu);
    em_http_printf(r, "<h2>Recent failures</h2><table id=\"failures\"><tr><th>when</th><th>batch</th>"
                      "<th>source</th><th>worker</th><th>class</th><th>message</th></tr>\n");
    size_t shown = 0;
    for (size_t k = 0; k < p->nf; k++) {
        const struct pfail *f = &p->f[(p->head + EM_PAGE_RECENT_FAILS - 1 - k) % EM_PAGE_RECENT_FAILS];
        if (batch && strcmp(batch, f->batch) != 0) continue;
        char when[32];
        time_t t = (time_t)(f->wall_ms / 1000);
        struct tm tm;
        strftime(when, sizeof when, "%H:%M:%S", gmtime_r(&t, &tm));
        em_http_printf(r, "<tr class=\"failure\" data-class=\"");
        esc(r, f->cls);
        em_http_printf(r, "\"><td>%s</td><td><code>", when);
        esc(r, f->batch);
        em_http_printf(r, "</code></td><td><code>");
        esc(r, f->source[0] ? f->source : f->item);
        em_http_printf(r, "</code></td><td><code>");
        esc(r, f->worker);
        em_http_printf(r, "</code></td><td><code>");
        esc(r, f->cls);
        em_http_printf(r, "</code></td><td>");
        esc(r, f->msg);
        em_http_printf(r, "</td></tr>\n");
        shown++;
    }
    if (!shown) em_http_printf(r, "<tr><td colspan=\"6\" class=\"muted\">none</td></tr>");
    em_http_printf(r, "</table>\n");
    pthread_mutex_unlock(&p->mu);
}

static int id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > EM_QUEUE_MAX_BATCH_ID) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return 0;
    return 1;
}

int em_page_http(void *arg, const char *path, struct em_http_reply *r)
{
    struct em_page *p = arg;
    const char *id = NULL;
    if (strncmp(path, "/batches/", 9) == 0) {
        id = path + 9;
        if (!id_ok(id)) {
            em_http_printf(r, "no such batch\n");
            return 404;
        }
    } else if (strcmp(path, "/") != 0) {
        em_http_printf(r, "not found\n");
        return 404;
    }
    struct em_errbuf eb = {{0}};
    if (!p->q && em_queue_open_tls(p->redis_url, p->redis_ca, &p->q, &eb) != EM_OK) {
        em_http_printf(r, "redis: %s\n", eb.msg);
        return 503;
    }
    if (id) {
        char title[EM_QUEUE_MAX_BATCH_ID + 16];
        snprintf(title, sizeof title, "batch %s", id);
        head(r, title);
        batch_table_head(r);
        int bad = batch_row(p, r, id);
        em_http_printf(r, "</table>\n");
        failures_table(p, r, id);
        em_http_printf(r, "</body></html>\n");
        return bad < 0 ? 503 : bad ? 404 : 200;
    }
    head(r, "earmark coordinator");
    char **ids = NULL;
    size_t n = 0;
    em_err rc = em_queue_active(p->q, &ids, &n, &eb);
    em_http_printf(r, "<h2>Active batches (%zu)</h2>", rc == EM_OK ? n : 0);
    batch_table_head(r);
    int bad = rc != EM_OK;
    for (size_t i = 0; rc == EM_OK && i < n && i < EM_PAGE_MAX_BATCHES; i++)
        bad |= batch_row(p, r, ids[i]) < 0; /* one that completed meanwhile: its row says so */
    if (rc == EM_OK && n > EM_PAGE_MAX_BATCHES)
        em_http_printf(r, "<tr><td colspan=\"9\">and %zu more</td></tr>", n - EM_PAGE_MAX_BATCHES);
    if (rc != EM_OK) {
        em_http_printf(r, "<tr><td colspan=\"9\">redis: ");
        esc(r, eb.msg);
        em_http_printf(r, "</td></tr>");
    }
    em_http_printf(r, "</table>\n");
    em_queue_strv_free(ids, n);
    workers_table(p, r);
    failures_table(p, r, NULL);
    em_http_printf(r, "</body></html>\n");
    return bad ? 503 : 200;
}
