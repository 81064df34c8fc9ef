/* common/httpd.c - routes over libmicrohttpd (see httpd.h for the contract).
 * One internal polling thread (MHD_USE_INTERNAL_POLLING_THREAD with poll()): libmicrohttpd
 * reads request heads incrementally, so a client that trickles bytes holds only its own
 * connection slot until the timeout closes it. */
#include "common/httpd.h"

#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"

struct route {
    char path[128];
    bool prefix; /* path ends in '/': matches everything below it */
    em_httpd_fn fn;
    void *arg;
};

struct em_httpd {
    struct route routes[EM_HTTPD_MAX_ROUTES];
    int nroutes;
    struct MHD_Daemon *d;
    int port;
};

struct em_http_reply {
    struct MHD_Connection *conn;
    char *buf;
    size_t len, cap;
    bool overflow;
    const char *type;
    const char *hname[4], *hval[4];
    int nh;
};

void em_http_write(struct em_http_reply *r, const char *s, size_t n)
{
    if (r->overflow || n == 0) return;
    if (n > EM_HTTPD_MAX_BODY - r->len) {
        r->overflow = true;
        return;
    }
    if (r->len + n > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + n) cap *= 2;
        if (cap > EM_HTTPD_MAX_BODY) cap = EM_HTTPD_MAX_BODY;
        char *nb = realloc(r->buf, cap);
        if (!nb) {
            r->overflow = true;
            return;
        }
        r->buf = nb;
        r->cap = cap;
    }
    memcpy(r->buf + r->len, s, n);
    r->len += n;
}

void em_http_printf(struct em_http_reply *r, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (w < 0) return;
    if ((size_t)w < sizeof small) {
        em_http_write(r, small, (size_t)w);
        return;
    }
    char *big = malloc((size_t)w + 1);
    if (!big) {
        r->overflow = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)w + 1, fmt, ap);
    va_end(ap);
    em_http_write(r, big, (size_t)w);
    free(big);
}

void em_http_type(struct em_http_reply *r, const char *s) { r->type = s; }

void em_http_header(struct em_http_reply *r, const char *name, const char *value)
{
    if (r->nh < 4) {
        r->hname[r->nh] = name;
        r->hval[r->nh++] = value;
    }
}

const char *em_http_query(struct em_http_reply *r, const char *key)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

em_err em_httpd_new(struct em_httpd **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? EM_OK : EM_E_NOMEM;
}

em_err em_httpd_route(struct em_httpd *h, const char *path, em_httpd_fn fn, void *arg,
                      struct em_errbuf *eb)
{
    size_t n = path ? strlen(path) : 0;
    if (h->d) return em_errf(eb, EM_E_ARG, "httpd: route %s added after start", path);
    if (n == 0 || path[0] != '/' || n >= sizeof h->routes[0].path || !fn)
        return em_errf(eb, EM_E_ARG, "httpd: bad route '%s'", path ? path : "");
    if (h->nroutes == EM_HTTPD_MAX_ROUTES)
        return em_errf(eb, EM_E_ARG, "httpd: more than %d routes", EM_HTTPD_MAX_ROUTES);
    struct route *r = &h->routes[h->nroutes++];
    memcpy(r->path, path, n + 1);
    r->prefix = n > 1 && path[n - 1] == '/';
    r->fn = fn;
    r->arg = arg;
    return EM_OK;
}

static const struct route *find(const struct em_httpd *h, const char *url)
{
    for (int i = 0; i < h->nroutes; i++) {
        const struct route *r = &h->routes[i];
        if (r->prefix ? strncmp(url, r->path, strlen(r->path)) == 0 : strcmp(url, r->path) == 0)
            return r;
    }
    return NULL;
}

static enum MHD_Result queue(struct MHD_Connection *conn, int status, struct em_http_reply *r)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(r->len, r->buf, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(r->buf);
        return MHD_NO;
    }
    r->buf = NULL;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            r->type ? r->type : "text/plain; charset=utf-8");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    for (int i = 0; i < r->nh; i++) MHD_add_response_header(resp, r->hname[i], r->hval[i]);
    enum MHD_Result ok = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    const struct em_httpd *h = cls;
    struct em_http_reply r = {.conn = conn};
    int status;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        em_http_printf(&r, "method %s not allowed: this endpoint is read-only (GET)\n", method);
        em_http_header(&r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
        status = MHD_HTTP_METHOD_NOT_ALLOWED;
    } else {
        const struct route *rt = find(h, url);
        if (rt) {
            status = rt->fn(rt->arg, url, &r);
        } else {
            em_http_printf(&r, "not found: %s\n", url);
            status = MHD_HTTP_NOT_FOUND;
        }
        if (r.overflow) {
            r.len = 0;
            r.overflow = false;
            r.type = NULL;
            em_http_printf(&r, "reply for %s exceeds %u bytes\n", url, EM_HTTPD_MAX_BODY);
            status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    return queue(conn, status, &r);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[256];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '"')) msg[--n] = 0;
    em_debug("msg=\"httpd: %s\"", msg);
}

em_err em_httpd_start(struct em_httpd *h, const char *flag, const char *hostport,
                      struct em_errbuf *eb)
{
    if (h->d) return em_errf(eb, EM_E_ARG, "%s: already started", flag);
    const char *colon = hostport ? strrchr(hostport, ':') : NULL;
    if (!colon || !colon[1])
        return em_errf(eb, EM_E_ARG, "%s '%s': want HOST:PORT", flag, hostport ? hostport : "");
    char host[256];
    size_t hl = (size_t)(colon - hostport);
    if (hl >= sizeof host) return em_errf(eb, EM_E_ARG, "%s: host too long", flag);
    memcpy(host, hostport, hl);
    host[hl] = 0;
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') { /* [::1]:9100 */
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = 0;
        hl -= 2;
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return em_errf(eb, EM_E_ARG, "%s '%s': bad port", flag, hostport);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                    *ai = NULL;
    if (getaddrinfo(hl ? host : NULL, colon + 1, &hints, &ai) != 0 || !ai)
        return em_errf(eb, EM_E_ARG, "%s '%s': cannot resolve", flag, hostport);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    h->d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, h,
                            MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)EM_HTTPD_MAX_CONN,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)EM_HTTPD_MAX_PER_IP,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)EM_HTTPD_TIMEOUT_S,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)EM_HTTPD_MEM,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!h->d) return em_errf(eb, EM_E_IO, "%s %s: cannot listen (address in use?)", flag, hostport);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : (int)port;
    return EM_OK;
}

int em_httpd_port(const struct em_httpd *h) { return h && h->d ? h->port : 0; }

void em_httpd_free(struct em_httpd *h)
{
    if (!h) return;
    if (h->d) MHD_stop_daemon(h->d);
    free(h);
}
