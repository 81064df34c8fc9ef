/* coordinator/metrics.h - coordinator counters and their Prometheus text (format 0.0.4).
 * Counters are C11 atomics: the poll loop updates them, the HTTP thread (common/httpd)
 * reads them through the /metrics route of coordinator/health.h. */
#ifndef EM_METRICS_H
#define EM_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/httpd.h"

#define EM_METRICS_NBUCKETS 12

/* wrong_peer: a Result from a peer the task was not dispatched to; bad_token: from that peer
 * but without the dispatch's lease token; no_lease: for a task with no live lease (settled,
 * waiting for a retry, replayed); id_clash: from a peer refused for claiming a live worker's
 * id. */
enum em_drop_reason {
    EM_DROP_MALFORMED, EM_DROP_FRAMES, EM_DROP_UNEXPECTED,
    EM_DROP_WRONG_PEER, EM_DROP_BAD_TOKEN, EM_DROP_NO_LEASE, EM_DROP_ID_CLASH,
    EM_DROP_COUNT
};

struct em_metrics {
    atomic_uint_fast64_t done, failed, retried, lost_workers, stale_results;
    atomic_uint_fast64_t dropped[EM_DROP_COUNT];
    atomic_int_fast64_t workers, in_flight, queue_depth;
    /* item latency (dispatch -> result), seconds; bucket i counts <= em_metrics_bounds[i] */
    atomic_uint_fast64_t lat_bucket[EM_METRICS_NBUCKETS];
    atomic_uint_fast64_t lat_count;
    atomic_uint_fast64_t lat_sum_us;
    atomic_uint_fast64_t auth_refused; /* handshakes refused (coordinator/zap.h) */
    atomic_uint_fast64_t goodbyes;     /* workers that said Goodbye (draining) */
    atomic_uint_fast64_t batches_lost; /* batches Redis lost while items were held */
    atomic_int_fast64_t stalled; /* batches whose output is paused by an infrastructure fault */
    atomic_uint_fast64_t infra_faults; /* attempts that failed on the infrastructure */
};

extern const double em_metrics_bounds[EM_METRICS_NBUCKETS];

void em_metrics_observe_latency(struct em_metrics *m, double seconds);
/* Writes the exposition text into out (cap bytes, NUL-terminated, common/prom.h); returns its
 * length, or cap when it did not fit. */
size_t em_metrics_render(const struct em_metrics *m, char *out, size_t cap);

#endif
