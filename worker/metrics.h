/* worker/metrics.h - what a worker has done, for Prometheus, and whether it can work:
 * GET /metrics (text format 0.0.4), /healthz (the process serves: always 200) and /readyz
 * (200 when welcomed by a coordinator with the model loaded, else 503 and the reason),
 * served by common/httpd on `earmark worker --metrics HOST:PORT`.
 *
 * Families (all prefixed earmark_worker_): info{worker,model,backend,version},
 * clips_total{status=ok|failed|retry}, audio_seconds_total, busy_seconds_total,
 * stage_seconds_total{stage=fetch|decode|encode|prefill|generate|store},
 * generated_tokens_total, tokens_per_second and real_time_factor (the last clip),
 * errors_total{class=retryable|permanent,code}, queue_wait_seconds (histogram: accepted ->
 * started), connected, ready, tasks_held, capacity, threads.
 *
 * Threads: the loop thread records (em_wmetrics_*); the HTTP thread renders. Counters are
 * atomics; the error table and the last-clip gauges are under a mutex. Every function
 * accepts m == NULL and does nothing, so the loop calls them unconditionally. */
#ifndef EM_WMETRICS_H
#define EM_WMETRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "worker/pipeline.h"

#define EM_WMETRICS_NBUCKETS 10 /* queue-wait histogram buckets, seconds (metrics.c) */

struct em_wmetrics_info {
    const char *worker_id, *backend; /* copied; backend until a model says its own */
    unsigned threads, capacity;
    bool wants_model; /* --model given: not ready before em_wmetrics_model_loaded (a worker
                         without one is ready once connected: signal facts only) */
};

struct em_wmetrics;
struct em_httpd;

/* Errors: EM_E_NOMEM. On EM_OK the caller owns *out (em_wmetrics_free). */
em_err em_wmetrics_new(const struct em_wmetrics_info *info, struct em_wmetrics **out);
void em_wmetrics_free(struct em_wmetrics *m); /* after em_httpd_free of its server */

/* The model is loaded; its identity and backend (copied) go into earmark_worker_info. */
void em_wmetrics_model_loaded(struct em_wmetrics *m, const char *identity, const char *backend);
/* The coordinator welcomed us (true) or the connection dropped (false). */
void em_wmetrics_connected(struct em_wmetrics *m, bool welcomed);
/* Tasks held now (queued + running + done but unanswered). */
void em_wmetrics_held(struct em_wmetrics *m, unsigned held);
/* One finished task: its result and the seconds it waited in the worker before starting. */
void em_wmetrics_task(struct em_wmetrics *m, const struct em_pipe_result *r, double wait_s);

/* Writes the exposition text into out (cap bytes, NUL-terminated); returns its length, or
 * cap when it did not fit (the caller then has a cut text and should fail the scrape). */
size_t em_wmetrics_render(struct em_wmetrics *m, char *out, size_t cap);

/* Serves /metrics, /healthz and /readyz of m on hostport ("0.0.0.0:9200"; port 0: any).
 * m must outlive the server. On EM_OK the caller owns *out (em_httpd_free before
 * em_wmetrics_free). Errors: EM_E_NOMEM, EM_E_ARG (bad address), EM_E_IO (bind). */
em_err em_wmetrics_serve(struct em_wmetrics *m, const char *hostport, struct em_httpd **out,
                         struct em_errbuf *eb);

#endif
