/* worker/metrics.c - worker counters, their exposition and the HTTP routes (metrics.h). */
#include "worker/metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/httpd.h"
#include "common/prom.h"

#define RENDER_CAP (64u << 10) /* bytes of one /metrics reply; the families fit in ~8 KiB */
#define NAME_MAX_LEN 256       /* bytes kept of the worker id and model identity */

static const double wait_bounds[EM_WMETRICS_NBUCKETS] = {0.01, 0.05, 0.1, 0.5, 1,
                                                         5,    10,   30,  60,  300};

enum stage { ST_FETCH, ST_DECODE, ST_ENCODE, ST_PREFILL, ST_GENERATE, ST_STORE, ST_COUNT };
static const char *const stage_names[ST_COUNT] = {"fetch",   "decode",   "encode",
                                                  "prefill", "generate", "store"};
enum status { S_OK, S_FAILED, S_RETRY, S_COUNT };
static const char *const status_names[S_COUNT] = {"ok", "failed", "retry"};

struct em_wmetrics {
    char worker[NAME_MAX_LEN], model[NAME_MAX_LEN], backend[32];
    unsigned threads, capacity;
    bool wants_model;
    atomic_bool connected;
    atomic_uint held;
    atomic_uint_fast64_t clips[S_COUNT], tokens;
    atomic_uint_fast64_t errors[EM_ERR_COUNT];
    /* seconds as integer microseconds, so they can be atomics */
    atomic_uint_fast64_t audio_us, busy_us, stage_us[ST_COUNT];
    atomic_uint_fast64_t wait_bucket[EM_WMETRICS_NBUCKETS], wait_count, wait_sum_us;
    pthread_mutex_t mu; /* model, backend, model_loaded and the last-clip gauges */
    bool model_loaded;
    double last_tps, last_rtf;
};

static void copy(char *dst, size_t cap, const char *s)
{
    size_t n = strnlen(s ? s : "", cap - 1);
    memcpy(dst, s ? s : "", n);
    dst[n] = 0;
}

em_err em_wmetrics_new(const struct em_wmetrics_info *info, struct em_wmetrics **out)
{
    struct em_wmetrics *m = calloc(1, sizeof *m);
    if (!m) return EM_E_NOMEM;
    copy(m->worker, sizeof m->worker, info->worker_id);
    copy(m->model, sizeof m->model, "none");
    copy(m->backend, sizeof m->backend, info->backend ? info->backend : "cpu");
    m->threads = info->threads;
    m->capacity = info->capacity;
    m->wants_model = info->wants_model;
    pthread_mutex_init(&m->mu, NULL);
    *out = m;
    return EM_OK;
}

void em_wmetrics_free(struct em_wmetrics *m)
{
    if (!m) return;
    pthread_mutex_destroy(&m->mu);
    free(m);
}

void em_wmetrics_model_loaded(struct em_wmetrics *m, const char *identity, const char *backend)
{
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    copy(m->model, sizeof m->model, identity);
    copy(m->backend, sizeof m->backend, backend);
    m->model_loaded = true;
    pthread_mutex_unlock(&m->mu);
}

void em_wmetrics_connected(struct em_wmetrics *m, bool welcomed)
{
    if (m) atomic_store(&m->connected, welcomed);
}

void em_wmetrics_held(struct em_wmetrics *m, unsigned held)
{
    if (m) atomic_store(&m->held, held);
}

static uint_fast64_t us(double s) { return s > 0 ? (uint_fast64_t)(s * 1e6 + 0.5) : 0; }

void em_wmetrics_task(struct em_wmetrics *m, const struct em_pipe_result *r, double wait_s)
{
    if (!m) return;
    enum status st = r->err == EM_OK ? S_OK : r->retryable ? S_RETRY : S_FAILED;
    atomic_fetch_add(&m->clips[st], 1);
    if (r->err != EM_OK && (unsigned)r->err < EM_ERR_COUNT) atomic_fetch_add(&m->errors[r->err], 1);
    atomic_fetch_add(&m->audio_us, us(r->duration_s));
    atomic_fetch_add(&m->busy_us, us(r->elapsed_s));
    const double stage_s[ST_COUNT] = {r->fetch_s,   r->decode_s,   r->encode_s,
                                      r->prefill_s, r->generate_s, r->store_s};
    for (int i = 0; i < ST_COUNT; i++) atomic_fetch_add(&m->stage_us[i], us(stage_s[i]));
    atomic_fetch_add(&m->tokens, r->new_tokens);
    if (wait_s < 0) wait_s = 0;
    for (int i = 0; i < EM_WMETRICS_NBUCKETS; i++)
        if (wait_s <= wait_bounds[i]) atomic_fetch_add(&m->wait_bucket[i], 1);
    atomic_fetch_add(&m->wait_count, 1);
    atomic_fetch_add(&m->wait_sum_us, us(wait_s));
    if (r->err == EM_OK && r->duration_s > 0) {
        pthread_mutex_lock(&m->mu);
        m->last_rtf = r->elapsed_s / r->duration_s;
        if (r->generate_s > 0) m->last_tps = (double)r->new_tokens / r->generate_s;
        pthread_mutex_unlock(&m->mu);
    }
}

#define LD(x) ((unsigned long long)atomic_load(&(x)))
#define SECS(x) ((double)atomic_load(&(x)) / 1e6)

static bool is_ready(struct em_wmetrics *m, const char **why)
{
    pthread_mutex_lock(&m->mu);
    bool loaded = m->model_loaded;
    pthread_mutex_unlock(&m->mu);
    if (m->wants_model && !loaded) {
        *why = "model not loaded yet";
        return false;
    }
    if (!atomic_load(&m->connected)) {
        *why = "not connected to a coordinator";
        return false;
    }
    *why = loaded ? "connected, model loaded" : "connected, no model (signal facts only)";
    return true;
}

static void render_counters(struct em_wmetrics *m, struct em_prom *p)
{
    em_prom_family(p, "earmark_worker_clips_total", "counter", "Tasks finished, by outcome.");
    for (int i = 0; i < S_COUNT; i++)
        em_prom_printf(p, "earmark_worker_clips_total{status=\"%s\"} %llu\n", status_names[i],
                       LD(m->clips[i]));
    em_prom_family(p, "earmark_worker_audio_seconds_total", "counter",
                   "Seconds of decoded audio in finished tasks.");
    em_prom_printf(p, "earmark_worker_audio_seconds_total %.6f\n", SECS(m->audio_us));
    em_prom_family(p, "earmark_worker_busy_seconds_total", "counter",
                   "Wall seconds pipeline threads spent on tasks.");
    em_prom_printf(p, "earmark_worker_busy_seconds_total %.6f\n", SECS(m->busy_us));
    em_prom_family(p, "earmark_worker_stage_seconds_total", "counter",
                   "Wall seconds spent per pipeline stage.");
    for (int i = 0; i < ST_COUNT; i++)
        em_prom_printf(p, "earmark_worker_stage_seconds_total{stage=\"%s\"} %.6f\n",
                       stage_names[i], SECS(m->stage_us[i]));
    em_prom_counter(p, "earmark_worker_generated_tokens_total", "Tokens generated by the model.",
                    LD(m->tokens));
    em_prom_family(p, "earmark_worker_errors_total", "counter", "Failed tasks by error code.");
    for (int e = 1; e < EM_ERR_COUNT; e++) {
        unsigned long long v = LD(m->errors[e]);
        if (!v) continue;
        em_prom_printf(p, "earmark_worker_errors_total{class=\"%s\",code=\"%s\"} %llu\n",
                       em_err_retryable((em_err)e) ? "retryable" : "permanent",
                       em_err_name((em_err)e), v);
    }
    static const char *h = "earmark_worker_queue_wait_seconds";
    em_prom_family(p, h, "histogram", "Seconds a task waited in the worker before it started.");
    for (int i = 0; i < EM_WMETRICS_NBUCKETS; i++)
        em_prom_printf(p, "%s_bucket{le=\"%g\"} %llu\n", h, wait_bounds[i], LD(m->wait_bucket[i]));
    em_prom_printf(p, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", h,
                   LD(m->wait_count), h, SECS(m->wait_sum_us), h, LD(m->wait_count));
}

size_t em_wmetrics_render(struct em_wmetrics *m, char *out, size_t cap)
{
    struct em_prom p;
    em_prom_init(&p, out, cap);
    const char *why;
    char model[NAME_MAX_LEN], backend[sizeof m->backend];
    pthread_mutex_lock(&m->mu);
    memcpy(model, m->model, sizeof model);
    memcpy(backend, m->backend, sizeof backend);
    pthread_mutex_unlock(&m->mu);
    em_prom_family(&p, "earmark_worker_info", "gauge", "The worker's identity (always 1).");
    em_prom_printf(&p, "earmark_worker_info{worker=\"");
    em_prom_label(&p, m->worker);
    em_prom_printf(&p, "\",model=\"");
    em_prom_label(&p, model);
    em_prom_printf(&p, "\",backend=\"");
    em_prom_label(&p, backend);
    em_prom_printf(&p, "\",version=\"%s\"} 1\n", EM_VERSION);
    em_prom_gauge(&p, "earmark_worker_connected", "1 while welcomed by a coordinator.",
                  atomic_load(&m->connected));
    em_prom_gauge(&p, "earmark_worker_ready", "1 when connected with its model loaded (/readyz).",
                  is_ready(m, &why));
    em_prom_gauge(&p, "earmark_worker_tasks_held", "Tasks held (queued, running, unanswered).",
                  atomic_load(&m->held));
    em_prom_gauge(&p, "earmark_worker_capacity", "Tasks the worker takes at once.", m->capacity);
    em_prom_gauge(&p, "earmark_worker_threads", "Pipeline threads.", m->threads);
    render_counters(m, &p);
    pthread_mutex_lock(&m->mu);
    double tps = m->last_tps, rtf = m->last_rtf;
    pthread_mutex_unlock(&m->mu);
    em_prom_gauge(&p, "earmark_worker_tokens_per_second",
                  "Generated tokens per second of generation, last clip.", tps);
    em_prom_gauge(&p, "earmark_worker_real_time_factor",
                  "Processing seconds per second of audio, last clip (below 1: faster).",
                  rtf);
    return em_prom_end(&p);
}

static int on_metrics(void *arg, const char *path, struct em_http_reply *r)
{
    (void)path;
    char *body = malloc(RENDER_CAP);
    if (!body) {
        em_http_printf(r, "out of memory\n");
        return 500;
    }
    size_t n = em_wmetrics_render(arg, body, RENDER_CAP);
    int status = 200;
    if (n >= RENDER_CAP) { /* never serve a cut exposition as if whole */
        em_http_printf(r, "metrics exceed %u bytes\n", RENDER_CAP);
        status = 500;
    } else {
        em_http_type(r, EM_PROM_CONTENT_TYPE);
        em_http_write(r, body, n);
    }
    free(body);
    return status;
}

static int on_healthz(void *arg, const char *path, struct em_http_reply *r)
{
    (void)arg;
    (void)path;
    em_http_printf(r, "ok\n");
    return 200;
}

static int on_readyz(void *arg, const char *path, struct em_http_reply *r)
{
    (void)path;
    const char *why;
    bool ok = is_ready(arg, &why);
    em_http_printf(r, "%s: %s\n", ok ? "ready" : "not ready", why);
    return ok ? 200 : 503;
}

em_err em_wmetrics_serve(struct em_wmetrics *m, const char *hostport, struct em_httpd **out,
                         struct em_errbuf *eb)
{
    struct em_httpd *h = NULL;
    em_err rc = em_httpd_new(&h);
    if (rc != EM_OK) return em_errf(eb, rc, "--metrics: out of memory");
    if ((rc = em_httpd_route(h, "/metrics", on_metrics, m, eb)) != EM_OK ||
        (rc = em_httpd_route(h, "/healthz", on_healthz, m, eb)) != EM_OK ||
        (rc = em_httpd_route(h, "/readyz", on_readyz, m, eb)) != EM_OK ||
        (rc = em_httpd_start(h, "--metrics", hostport, eb)) != EM_OK) {
        em_httpd_free(h);
        return rc;
    }
    *out = h;
    return EM_OK;
}
