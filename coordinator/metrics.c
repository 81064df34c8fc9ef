/* coordinator/metrics.c - Prometheus text for the coordinator (served through common/httpd). */
#include "coordinator/metrics.h"

#include "common/prom.h"

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
#define LI(x) ((double)atomic_load(&(x)))

size_t em_metrics_render(const struct em_metrics *m0, char *out, size_t cap)
{
    struct em_metrics *m = (struct em_metrics *)m0; /* atomic_load wants non-const in C11 */
    static const char *reasons[EM_DROP_COUNT] = {"malformed",  "frames",    "unexpected",
                                                 "wrong_peer", "bad_token", "no_lease",
                                                 "id_clash"};
    static const char *drops = "earmark_frames_dropped_total";
    static const char *lat = "earmark_item_latency_seconds";
    struct em_prom p;
    em_prom_init(&p, out, cap);
    em_prom_counter(&p, "earmark_items_done_total", "Items settled ok.", LD(m->done));
    em_prom_counter(&p, "earmark_items_failed_total", "Items settled failed.", LD(m->failed));
    em_prom_counter(&p, "earmark_items_retried_total", "Retries scheduled.", LD(m->retried));
    em_prom_counter(&p, "earmark_workers_lost_total", "Workers declared lost.",
                    LD(m->lost_workers));
    em_prom_counter(&p, "earmark_results_stale_total",
                    "Results for tasks no longer outstanding.", LD(m->stale_results));
    em_prom_gauge(&p, "earmark_workers", "Connected workers.", LI(m->workers));
    em_prom_gauge(&p, "earmark_in_flight", "Tasks dispatched and not settled.", LI(m->in_flight));
    em_prom_gauge(&p, "earmark_queue_depth",
                  "Items waiting (stream lag plus held, not dispatched).", LI(m->queue_depth));
    em_prom_family(&p, drops, "counter", "Frames dropped, by reason.");
    for (int i = 0; i < EM_DROP_COUNT; i++)
        em_prom_printf(&p, "%s{reason=\"%s\"} %llu\n", drops, reasons[i], LD(m->dropped[i]));
    em_prom_family(&p, lat, "histogram", "Dispatch to result.");
    for (int i = 0; i < EM_METRICS_NBUCKETS; i++)
        em_prom_printf(&p, "%s_bucket{le=\"%g\"} %llu\n", lat, em_metrics_bounds[i],
                       LD(m->lat_bucket[i]));
    em_prom_printf(&p, "%s_bucket{le=\"+Inf\"} %llu\n", lat, LD(m->lat_count));
    em_prom_printf(&p, "%s_sum %.6f\n", lat, (double)LD(m->lat_sum_us) / 1e6);
    em_prom_printf(&p, "%s_count %llu\n", lat, LD(m->lat_count));
    em_prom_counter(&p, "earmark_auth_refused_total",
                    "Handshakes refused: key not allowed, no CURVE, or broken.", LD(m->auth_refused));
    em_prom_counter(&p, "earmark_worker_goodbyes_total", "Workers that said goodbye.",
                    LD(m->goodbyes));
    em_prom_counter(&p, "earmark_batches_lost_total",
                    "Batches Redis lost (restarted empty, flushed) while the coordinator held items.",
                    LD(m->batches_lost));
    em_prom_gauge(&p, "earmark_outputs_stalled",
                  "Batches whose dispatch is paused by an infrastructure fault.", LI(m->stalled));
    em_prom_counter(&p, "earmark_infra_faults_total",
                    "Attempts failed by the infrastructure (not counted against items).",
                    LD(m->infra_faults));
    return em_prom_end(&p);
}
