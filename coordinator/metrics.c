/* coordinator/metrics.c - Prometheus text for the coordinator, served from one thread. */
#include "coordinator/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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
    gauge(out, cap, &n, "earmark_outputs_stalled",
          "Batches whose dispatch is paused by an infrastructure fault.", LI(m->stalled));
    counter(out, cap, &n, "earmark_infra_faults_total",
            "Attempts failed by the infrastructure (not counted against items).",
            LD(m->infra_faults));
    return n;
}

struct em_metrics_server {
    int fd;
    int stop_pipe[2];
    pthread_t th;
    struct em_metrics *m;
};

static void serve_one(struct em_metrics_server *s, int c)
{
    char req[EM_METRICS_MAX_REQ + 1];
    size_t n = 0;
    struct pollfd p = {c, POLLIN, 0};
    while (n < EM_METRICS_MAX_REQ && !memmem(req, n, "\r\n\r\n", 4)) {
        if (poll(&p, 1, 2000) <= 0) return; /* slow or silent client */
        ssize_t r = read(c, req + n, EM_METRICS_MAX_REQ - n);
        if (r <= 0) return;
        n += (size_t)r;
    }
    req[n] = 0;
    static char body[16384];
    const char *status = "200 OK";
    size_t bl;
    if (strncmp(req, "GET /metrics ", 13) == 0 || strncmp(req, "GET /metrics?", 13) == 0) {
        bl = em_metrics_render(s->m, body, sizeof body);
    } else {
        status = "404 Not Found";
        bl = (size_t)snprintf(body, sizeof body, "not found: GET /metrics\n");
    }
    char head[256];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 %s\r\nContent-Type: text/plain; version=0.0.4\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                      status, bl);
    if (write(c, head, (size_t)hl) == hl) {
        ssize_t w = write(c, body, bl);
        (void)w;
    }
}

static void *serve(void *arg)
{
    struct em_metrics_server *s = arg;
    for (;;) {
        struct pollfd p[2] = {{s->fd, POLLIN, 0}, {s->stop_pipe[0], POLLIN, 0}};
        if (poll(p, 2, -1) < 0 && errno != EINTR) break;
        if (p[1].revents) break;
        if (!(p[0].revents & POLLIN)) continue;
        int c = accept(s->fd, NULL, NULL);
        if (c < 0) continue;
        serve_one(s, c);
        close(c);
    }
    return NULL;
}

em_err em_metrics_serve(const char *hostport, struct em_metrics *m, struct em_metrics_server **out,
                        struct em_errbuf *eb)
{
    *out = NULL;
    const char *colon = strrchr(hostport, ':');
    if (!colon || !colon[1])
        return em_errf(eb, EM_E_ARG, "--metrics '%s': want HOST:PORT", hostport);
    char host[256];
    size_t hl = (size_t)(colon - hostport);
    if (hl >= sizeof host) return em_errf(eb, EM_E_ARG, "--metrics: host too long");
    memcpy(host, hostport, hl);
    host[hl] = 0;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                    *ai = NULL;
    if (getaddrinfo(hl ? host : NULL, colon + 1, &hints, &ai) != 0 || !ai)
        return em_errf(eb, EM_E_ARG, "--metrics '%s': cannot resolve", hostport);
    struct em_metrics_server *s = calloc(1, sizeof *s);
    em_err rc = EM_E_NOMEM;
    if (!s) goto fail;
    s->m = m;
    s->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (s->fd < 0 || setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(s->fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(s->fd, 16) != 0) {
        rc = em_errf(eb, EM_E_IO, "--metrics %s: %s", hostport, strerror(errno));
        goto fail;
    }
    if (pipe(s->stop_pipe) != 0) {
        rc = em_errf(eb, EM_E_IO, "metrics: pipe: %s", strerror(errno));
        goto fail;
    }
    if (pthread_create(&s->th, NULL, serve, s) != 0) {
        rc = em_errf(eb, EM_E_IO, "metrics: cannot start thread");
        close(s->stop_pipe[0]);
        close(s->stop_pipe[1]);
        goto fail;
    }
    freeaddrinfo(ai);
    *out = s;
    return EM_OK;
fail:
    if (s && s->fd >= 0) close(s->fd);
    free(s);
    freeaddrinfo(ai);
    return rc;
}

void em_metrics_stop(struct em_metrics_server *s)
{
    if (!s) return;
    ssize_t w = write(s->stop_pipe[1], "x", 1);
    (void)w;
    pthread_join(s->th, NULL);
    close(s->stop_pipe[0]);
    close(s->stop_pipe[1]);
    close(s->fd);
    free(s);
}
