/* coordinator/metrics.h - coordinator counters and their Prometheus text (format 0.0.4).
 * Counters are C11 atomics: the poll loop updates them, the HTTP thread (common/httpd)
 * reads them through em_metrics_http. */
#ifndef EM_METRICS_H
#define EM_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/httpd.h"

#define EM_METRICS_NBUCKETS 12

enum em_drop_reason { EM_DROP_MALFORMED, EM_DROP_FRAMES, EM_DROP_UNEXPECTED, EM_DROP_COUNT };

struct em_metrics {
    atomic_uint_fast64_t done, failed, retried, lost_workers, stale_results;
    atomic_uint_fast64_t dropped[EM_DROP_COUNT];
    atomic_int_fast64_t workers, in_flight, queue_depth;
    /* item latency (dispatch -> result), seconds; bucket i counts <= em_metrics_bounds[i] */
    atomic_uint_fast64_t lat_bucket[EM_METRICS_NBUCKETS];
    atomic_uint_fast64_t lat_count;
    atomic_uint_fast64_t lat_sum_us;
};

extern const double em_metrics_bounds[EM_METRICS_NBUCKETS];

void em_metrics_observe_latency(struct em_metrics *m, double seconds);
/* Writes the exposition text into out (cap bytes); returns its length (truncated at cap-1). */
size_t em_metrics_render(const struct em_metrics *m, char *out, size_t cap);

/* The GET /metrics handler for common/httpd; arg is the struct em_metrics. */
int em_metrics_http(void *arg, const char *path, struct em_http_reply *r);

#endif
