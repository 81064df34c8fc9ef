/* coordinator/page.h - the coordinator's live status pages on its HTTP endpoint (the one
 * that serves /metrics, common/httpd):
 *   GET /               active batches (progress bar, done/failed/pending/in flight, rate,
 *                       ETA), connected workers (model, backend, capacity, running, items
 *                       done, items/min since connected), recent failures
 *   GET /batches/<id>   one batch (active or not) and its recent failures
 * Read-only HTML, no script; the page reloads itself every EM_PAGE_REFRESH_S seconds.
 *
 * Threads: the poll loop reports what it sees (em_page_hello / _result / _workers); the HTTP
 * thread renders. The shared part is a snapshot under the page's mutex. Batch progress is
 * read from Redis on the HTTP thread through the page's own connection (not the loop's), so
 * a page view never blocks dispatch. Every em_page_* function accepts a NULL page and then
 * does nothing, so callers need no test. */
#ifndef EM_PAGE_H
#define EM_PAGE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/httpd.h"

#define EM_PAGE_REFRESH_S 2
#define EM_PAGE_MAX_WORKERS 256   /* workers listed; more are counted */
#define EM_PAGE_RECENT_FAILS 20   /* failures kept (newest first) */
#define EM_PAGE_MAX_BATCHES 100   /* active batches listed */

struct em_page;
struct em_worker; /* coordinator/coord.h */

/* redis_url is copied; the connection opens on the first page view. Errors: EM_E_NOMEM. */
em_err em_page_new(const char *redis_url, const char *redis_ca, struct em_page **out,
                   struct em_errbuf *eb);
void em_page_free(struct em_page *p); /* NULL is a no-op; after the HTTP server stopped */

/* A worker said Hello with this model identity and backend. */
void em_page_hello(struct em_page *p, const char *worker, const char *model, const char *backend);
/* A result arrived from worker for batch/item (source); ok, or failed with cls/msg. */
void em_page_result(struct em_page *p, const char *worker, const char *batch, const char *item,
                    const char *source, int ok, const char *cls, const char *msg);
/* The connected workers now (the loop's array): ids, capacities, running counts. Workers
 * not in it are no longer listed. */
void em_page_workers(struct em_page *p, struct em_worker *const *w, size_t n);

/* common/httpd handler for "/" and "/batches/"; arg is the struct em_page. */
int em_page_http(void *arg, const char *path, struct em_http_reply *r);

#endif
