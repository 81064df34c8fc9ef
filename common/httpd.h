/* common/httpd.h - the read-only HTTP endpoint of a process (/metrics, /healthz, /readyz,
 * status pages), served by libmicrohttpd rather than by hand.
 *
 * What crosses the boundary: GET and HEAD requests from anyone who can reach the bound
 * address. No request body is read (any other method gets 405), request heads are bounded
 * by EM_HTTPD_MEM, a reply body by EM_HTTPD_MAX_BODY.
 * Threads: one libmicrohttpd polling thread of its own serves every connection without
 * blocking on any of them, so a slow or idle client never delays another client or the
 * caller's loop. Connections are capped (EM_HTTPD_MAX_CONN in all, EM_HTTPD_MAX_PER_IP per
 * address) and one that stays silent for EM_HTTPD_TIMEOUT_S is closed.
 * Handlers run on that thread: whatever they read must be safe to read from it (atomics,
 * or data under the caller's own lock).
 *
 * Use: em_httpd_new, em_httpd_route (any number), em_httpd_start, ..., em_httpd_free.
 * Routes are fixed once started. A route "/x" matches the path "/x" only; a route ending
 * in '/' ("/batches/") matches every path below it. The query string is not part of the
 * path. Unmatched paths get 404. */
#ifndef EM_HTTPD_H
#define EM_HTTPD_H

#include <stddef.h>

#include "common/err.h"

#define EM_HTTPD_MAX_ROUTES 16
#define EM_HTTPD_MAX_BODY (8u << 20)  /* bytes of one reply body */
#define EM_HTTPD_MAX_CONN 128         /* open connections in all */
#define EM_HTTPD_MAX_PER_IP 32        /* open connections from one address */
#define EM_HTTPD_TIMEOUT_S 5          /* an idle or trickling connection is closed after this */
#define EM_HTTPD_MEM (32u << 10)      /* bytes of request head per connection */

/* A reply being written by a handler. The body grows up to EM_HTTPD_MAX_BODY; past that it
 * is cut and the reply becomes a 500 naming the cap (never a silent truncation). */
struct em_http_reply;
void em_http_printf(struct em_http_reply *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void em_http_write(struct em_http_reply *r, const char *s, size_t n);
/* Content-Type of the reply; default "text/plain; charset=utf-8". s must be static. */
void em_http_type(struct em_http_reply *r, const char *s);
/* Adds a response header; name and value must be static strings. At most 4. */
void em_http_header(struct em_http_reply *r, const char *name, const char *value);

/* The value of query argument key ("?key=value", decoded), or NULL when absent. Valid
 * while the handler runs. */
const char *em_http_query(struct em_http_reply *r, const char *key);

/* A handler writes the body and returns the HTTP status (200, 404, 503, ...). path is the
 * decoded request path without the query. */
typedef int (*em_httpd_fn)(void *arg, const char *path, struct em_http_reply *r);

struct em_httpd;
/* Errors: EM_E_NOMEM. On EM_OK the caller owns *out (em_httpd_free). */
em_err em_httpd_new(struct em_httpd **out);
/* Adds a route. Errors: EM_E_ARG (after start, bad path, too many routes). */
em_err em_httpd_route(struct em_httpd *h, const char *path, em_httpd_fn fn, void *arg,
                      struct em_errbuf *eb);
/* Binds hostport ("127.0.0.1:9100", "[::1]:9100", ":9100" = all interfaces, port 0 = any
 * free port) and starts serving. flag names the option in messages ("--metrics").
 * Errors: EM_E_ARG (bad address), EM_E_IO (cannot bind or start). */
em_err em_httpd_start(struct em_httpd *h, const char *flag, const char *hostport,
                      struct em_errbuf *eb);
/* The bound port once started, else 0. */
int em_httpd_port(const struct em_httpd *h);
/* Stops serving (waits for the thread) and frees. NULL is a no-op. */
void em_httpd_free(struct em_httpd *h);

#endif
