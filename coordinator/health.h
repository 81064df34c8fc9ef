/* coordinator/health.h - whether the coordinator can work, and how each batch is doing:
 * GET /healthz (200 while the poll loop turns; 503 when it has not ticked for
 * EM_CHEALTH_STUCK_MS), GET /readyz (200 while Redis answers, else 503 with the error),
 * and GET /metrics = the counters of coordinator/metrics.h followed by
 *   earmark_redis_up, earmark_dead_letters (XLEN earmark:dead),
 *   earmark_batch_items{batch,state=total|done|failed} for every open batch, and
 *   earmark_batch_stalled{batch,reason} = 1 when a batch with items left has settled none
 *   for the stall time (EARMARK_STALL_MS, default 300000), with the reason the coordinator
 *   sees: no_workers (none connected), storage (error records cannot be stored), running
 *   (tasks out, no results: slow or hung workers), retry_backoff (every held item waits
 *   for its retry), waiting (items not dispatched: no free worker credit); 0 with
 *   reason "none" otherwise.
 * Threads: em_chealth_tick runs in the poll loop (it talks to Redis); the HTTP thread reads
 * a snapshot under a mutex. At most EM_CHEALTH_MAX_BATCHES batches are exported (the first
 * that Redis lists); earmark_batches_open counts them all. */
#ifndef EM_CHEALTH_H
#define EM_CHEALTH_H

#include <stdint.h>

#include "common/err.h"
#include "coordinator/coord.h"

#define EM_CHEALTH_MAX_BATCHES 64
#define EM_CHEALTH_STUCK_MS 60000     /* /healthz fails when the loop is stuck this long */
#define EM_CHEALTH_DEFAULT_STALL_MS 300000

struct em_chealth;
struct em_httpd;

/* stall_ms: no settled item for this long with items left = stalled. m is borrowed and
 * must outlive the health object. Errors: EM_E_NOMEM. */
em_err em_chealth_new(struct em_metrics *m, int64_t stall_ms, struct em_chealth **out);
void em_chealth_free(struct em_chealth *h); /* after em_httpd_free of the server */

/* Poll loop, about once a second: Redis reachability, dead letters, batch progress, stalls. */
void em_chealth_tick(struct em_chealth *h, struct em_coord *c, int64_t now_ms);

/* Routes /metrics, /healthz and /readyz of h on web (before em_httpd_start).
 * Errors: EM_E_ARG (from em_httpd_route). */
em_err em_chealth_routes(struct em_chealth *h, struct em_httpd *web, struct em_errbuf *eb);

#endif
