/* coordinator/metrics.c - Prometheus text for the coordinator (served through common/httpd). */
#include "coordinator/metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double em_metrics_bounds[EM_METRICS_NBUCKETS] = {0.05, 0.1, 0.25, 0.5, 1,   2.5,
                                                       5,    10,  30,   60,  300, 1800};

void em_metrics_observe_latency(struct em_metrics *m, double s)
{
    if (s < 0) s = 0;
    for (int i = 0; i < EM_METRICS_NBUCKETS; i++)
        if (s <= em_metrics_bounds[i]) atomic_fetch_add(&m->lat_bucket[i], 1);
    atomic_fetch_add(&m->lat_count, 1);
    atomic_fetch_add(&m->lat_sum_us, (uint_fast64_t)(s * 1e6));
}

#define LD(x) ((unsigned long long)atomic_load(&(x)))
#define LI(x) ((long long)atomic_load(&(x)))

static void app(char *out, size_t cap, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void app(char *out, size_t cap, size_t *n, const char *fmt, ...)
{
    if (cap == 0 || *n >= cap - 1) return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(out + *n, cap - *n, fmt, ap);
    va_end(ap);
    if (w > 0) *n = (size_t)w >= cap - *n ? cap - 1 : *n + (size_t)w;
}

/* The HELP and TYPE lines of the metric family name: each name is written once, here. */
static void family(char *out, size_t cap, size_t *n, const char *name, const char *type,
                   const char *help)
{
    app(out, cap, n, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(char *out, size_t cap, size_t *n, const char *name, const char *help,
                    unsigned long long v)
{
    family(out, cap, n, name, "counter", help);
    app(out, cap, n, "%s %llu\n", name, v);
}

static void gauge(char *out, size_t cap, size_t *n, const char *name, const char *help,
                  long long v)
{
    family(out, cap, n, name, "gauge", help);
    app(out, cap, n, "%s %lld\n", name, v);
}

size_t em_metrics_render(const struct em_metrics *m0, char *out, size_t cap)
{
    struct em_metrics *m = (struct em_metrics *)m0; /* atomic_load wants non-const in C11 */
    static const char *reasons[EM_DROP_COUNT] = {"malformed", "frames", "unexpected"};
    static const char *drops = "earmark_frames_dropped_total";
    static const char *lat = "earmark_item_latency_seconds";
    size_t n = 0;
    counter(out, cap, &n, "earmark_items_done_total", "Items settled ok.", LD(m->done));
    counter(out, cap, &n, "earmark_items_failed_total", "Items settled failed.", LD(m->failed));
    counter(out, cap, &n, "earmark_items_retried_total", "Retries scheduled.", LD(m->retried));
    counter(out, cap, &n, "earmark_workers_lost_total", "Workers declared lost.",
            LD(m->lost_workers));
    counter(out, cap, &n, "earmark_results_stale_total",
            "Results for tasks no longer outstanding.", LD(m->stale_results));
    gauge(out, cap, &n, "earmark_workers", "Connected workers.", LI(m->workers));
    gauge(out, cap, &n, "earmark_in_flight", "Tasks dispatched and not settled.",
          LI(m->in_flight));
    gauge(out, cap, &n, "earmark_queue_depth",
          "Items waiting (stream lag plus held, not dispatched).", LI(m->queue_depth));
    family(out, cap, &n, drops, "counter", "Frames dropped, by reason.");
    for (int i = 0; i < EM_DROP_COUNT; i++)
        app(out, cap, &n, "%s{reason=\"%s\"} %llu\n", drops, reasons[i], LD(m->dropped[i]));
    family(out, cap, &n, lat, "histogram", "Dispatch to result.");
    for (int i = 0; i < EM_METRICS_NBUCKETS; i++)
        app(out, cap, &n, "%s_bucket{le=\"%g\"} %llu\n", lat, em_metrics_bounds[i],
            LD(m->lat_bucket[i]));
    app(out, cap, &n, "%s_bucket{le=\"+Inf\"} %llu\n", lat, LD(m->lat_count));
    app(out, cap, &n, "%s_sum %.6f\n", lat, (double)LD(m->lat_sum_us) / 1e6);
    app(out, cap, &n, "%s_count %llu\n", lat, LD(m->lat_count));
    return n;
}

int em_metrics_http(void *arg, const char *path, struct em_http_reply *r)
{
    (void)path;
    enum { CAP = 64 << 10 };
    char *body = malloc(CAP);
    if (!body) {
        em_http_printf(r, "out of memory\n");
        return 500;
    }
    size_t n = em_metrics_render(arg, body, CAP);
    em_http_type(r, "text/plain; version=0.0.4; charset=utf-8");
    em_http_write(r, body, n);
    free(body);
    return 200;
}
