/* storage/http.c - read-only http(s) objects: GET (size-capped, at most EM_XFER_MAX_REDIRECTS
 * redirects, http/https only) and HEAD, retried by xfer.c. Never signed, so it has its own
 * easy handle (see impl.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/impl.h"
#include "storage/xfer.h"

static em_err http_handle(struct em_storage *st, struct em_errbuf *eb)
{
    if (!st->http && !(st->http = curl_easy_init()))
        return em_errf(eb, EM_E_NOMEM, "http: curl_easy_init failed");
    return EM_OK;
}

/* "http GET https://host/path" for messages. The query is left out: a presigned URL
 * carries its signature there. The URL has no user info (uri.c refuses it). */
static void what(char *out, size_t cap, const char *method, const char *url)
{
    int n = (int)strcspn(url, "?#");
    snprintf(out, cap, "http %s %.*s%s", method, n < 160 ? n : 160, url, url[n] ? "?..." : "");
}

/* A request (redirects followed) whose reply must be 2xx. On EM_OK *r holds the reply (the
 * caller frees r->data); otherwise nothing is left to free. w receives the request's name. */
static em_err http_fetch(struct em_storage *st, const struct em_uri *u, const char *method,
                         char w[192], struct em_xfer_resp *r, struct em_errbuf *eb)
{
    em_err rc = http_handle(st, eb);
    if (rc != EM_OK) return rc;
    what(w, 192, method, u->path);
    struct em_xfer x = {.method = method, .url = u->path, .max_bytes = st->o.max_bytes,
                        .follow_redirects = 1, .what = w};
    rc = em_xfer_run(st, st->http, &x, r, eb);
    if (rc == EM_OK && (r->status < 200 || r->status >= 300)) rc = em_xfer_status_err(&x, r, eb);
    if (rc != EM_OK) free(r->data);
    return rc;
}

static em_err http_get(struct em_storage *st, const struct em_uri *u, uint8_t **data,
                       size_t *len, struct em_errbuf *eb)
{
    char w[192];
    struct em_xfer_resp r;
    em_err rc = http_fetch(st, u, "GET", w, &r, eb);
    if (rc != EM_OK) return rc;
    if (!r.data && !(r.data = calloc(1, 1))) return em_errf(eb, EM_E_NOMEM, "%s: out of memory", w);
    *data = r.data;
    *len = r.len;
    return EM_OK;
}

static em_err http_exists(struct em_storage *st, const struct em_uri *u, struct em_errbuf *eb)
{
    char w[192];
    struct em_xfer_resp r;
    em_err rc = http_fetch(st, u, "HEAD", w, &r, eb);
    if (rc == EM_OK) free(r.data);
    return rc;
}

/* http(s) storage is read-only: what PUT and DELETE answer. */
static em_err http_read_only(const struct em_uri *u, const char *method, struct em_errbuf *eb)
{
    char w[192];
    what(w, sizeof w, method, u->path);
    return em_errf(eb, EM_E_UNSUPPORTED, "%s: http(s) URIs are read-only", w);
}

static em_err http_put(struct em_storage *st, const struct em_uri *u, const void *data,
                       size_t len, const char *content_type, struct em_errbuf *eb)
{
    (void)st, (void)data, (void)len, (void)content_type;
    return http_read_only(u, "PUT", eb);
}

static em_err http_del(struct em_storage *st, const struct em_uri *u, struct em_errbuf *eb)
{
    (void)st;
    return http_read_only(u, "DELETE", eb);
}

const struct em_storage_ops em_storage_http_ops = {
    .name = "http",
    .get = http_get,
    .put = http_put,
    .exists = http_exists,
    .del = http_del,
};
