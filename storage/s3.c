/* storage/s3.c - S3 objects through libcurl, signed by CURLOPT_AWS_SIGV4.
 *
 * libcurl 7.88 (Debian 12) signs exactly the request it is handed, so this file gives it a
 * request whose canonical form is already right:
 *   - the key is percent-encoded canonically (uri.c em_uri_encode), since libcurl signs
 *     the path as written;
 *   - x-amz-content-sha256 carries the hex SHA-256 of the body (libcurl would hash an
 *     empty body for an upload read through a callback);
 *   - "aws:amz:<region>:s3" always names region and service (libcurl guesses them from the
 *     host name otherwise, which fails for 127.0.0.1);
 *   - x-amz-security-token when a session token is set (signed like any header given);
 *   - no query strings are used (libcurl 7.88 would sign them unsorted);
 *   - its own easy handle, never shared with unsigned http requests.
 * tests/unit/test_sigv4.c checks the Authorization header libcurl produced against the
 * independent computation in sigv4.c. */
#include "storage/s3.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/id.h"
#include "storage/impl.h"
#include "storage/uri.h"
#include "storage/xfer.h"

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

em_err em_s3_url(const char *endpoint, const char *region, int path_style, const char *bucket,
                 const char *key, char *out, size_t cap, struct em_errbuf *eb)
{
    char aws[160];
    if (!bucket || !key || !out) return em_errf(eb, EM_E_ARG, "s3 url: NULL argument");
    if (!endpoint) {
        if ((size_t)snprintf(aws, sizeof aws, "https://s3.%s.amazonaws.com",
                             region && *region ? region : "us-east-1") >= sizeof aws)
            return em_errf(eb, EM_E_ARG, "s3 url: region too long");
        endpoint = aws;
        if (path_style < 0) path_style = 0;
    } else if (path_style < 0) {
        path_style = 1;
    }
    const char *hs = strstr(endpoint, "://");
    int https = strncmp(endpoint, "https://", 8) == 0;
    if (!hs || (!https && strncmp(endpoint, "http://", 7) != 0))
        return em_errf(eb, EM_E_ARG, "s3 endpoint '%.80s': must start with http:// or https://",
                       endpoint);
    const char *host = hs + 3;
    size_t hn = strcspn(host, "/?#@");
    if (hn == 0 || host[hn] == '@' || host[hn] == '?' || host[hn] == '#' ||
        (host[hn] == '/' && host[hn + 1] != 0))
        return em_errf(eb, EM_E_ARG,
                       "s3 endpoint '%.80s': must be scheme://host[:port] without a path",
                       endpoint);
    if (!path_style && https && strchr(bucket, '.')) path_style = 1;

    char ekey[3 * EM_S3_KEY_MAX + 1];
    size_t kn;
    if (em_uri_encode(key, strlen(key), 1, ekey, sizeof ekey, &kn) != EM_OK)
        return em_errf(eb, EM_E_ARG, "s3 url: key longer than %d bytes", EM_S3_KEY_MAX);
    int n;
    if (path_style)
        n = snprintf(out, cap, "%s://%.*s/%s/%s", https ? "https" : "http", (int)hn, host,
                     bucket, ekey);
    else
        n = snprintf(out, cap, "%s://%s.%.*s/%s", https ? "https" : "http", bucket, (int)hn,
                     host, ekey);
    if (n < 0 || (size_t)n >= cap) return em_errf(eb, EM_E_TOO_LONG, "s3 url: exceeds %zu bytes", cap);
    return EM_OK;
}

struct req {
    char url[EM_S3_URL_MAX];
    char what[256];
    char sigv4[128];
    struct curl_slist *headers;
};

static em_err add_header(struct req *q, const char *fmt, const char *v, struct em_errbuf *eb)
{
    char line[2048];
    if ((size_t)snprintf(line, sizeof line, fmt, v) >= sizeof line)
        return em_errf(eb, EM_E_ARG, "%s: header too long", q->what);
    struct curl_slist *n = curl_slist_append(q->headers, line);
    if (!n) return em_errf(eb, EM_E_NOMEM, "%s: out of memory", q->what);
    q->headers = n;
    return EM_OK;
}

/* Builds URL and headers for one request; on error q->headers may hold a partial list,
 * freed by the caller with curl_slist_free_all. */
static em_err prepare(struct em_storage *st, const struct em_uri *u, const char *method,
                      const void *body, size_t len, const char *ctype, struct req *q,
                      struct em_errbuf *eb)
{
    snprintf(q->what, sizeof q->what, "s3 %s s3://%s/%.120s", method, u->bucket, u->path);
    if (!st->access_key || !st->secret_key)
        return em_errf(eb, EM_E_AUTH,
                       "%s: no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
                       q->what);
    if (strpbrk(st->region, ":\r\n") || strlen(st->region) > 64)
        return em_errf(eb, EM_E_ARG, "%s: region '%.64s' is malformed", q->what, st->region);
    if (st->session_token && strpbrk(st->session_token, "\r\n"))
        return em_errf(eb, EM_E_ARG, "%s: session token has a line break", q->what);
    em_err rc = em_s3_url(st->endpoint, st->region, st->o.path_style, u->bucket, u->path, q->url,
                          sizeof q->url, eb);
    if (rc != EM_OK) return rc;
    snprintf(q->sigv4, sizeof q->sigv4, "aws:amz:%s:s3", st->region);

    char hash[65];
    if (body)
        em_sha256_hex(body, len, hash);
    else
        memcpy(hash, EMPTY_SHA256, sizeof hash);
    if ((rc = add_header(q, "x-amz-content-sha256: %s", hash, eb)) != EM_OK) return rc;
    if (st->session_token &&
        (rc = add_header(q, "x-amz-security-token: %s", st->session_token, eb)) != EM_OK)
        return rc;
    if (body) {
        if ((rc = add_header(q, "Content-Type: %s", ctype ? ctype : "application/octet-stream",
                             eb)) != EM_OK)
            return rc;
        /* No "Expect:" header to suppress 100-continue: libcurl 7.88 would sign the empty
         * header it then does not send, and every server would refuse the signature
         * (tests/unit/test_sigv4.c curl_put_signature_matches caught this). The Expect
         * header libcurl adds itself for large bodies is not signed, so it is harmless. */
    }
    return EM_OK;
}

/* One signed request; on EM_OK *r holds the reply (the caller frees r->data). */
static em_err s3_do(struct em_storage *st, const struct em_uri *u, const char *method,
                    const void *body, size_t len, const char *ctype, struct req *q,
                    struct em_xfer *x, struct em_xfer_resp *r, struct em_errbuf *eb)
{
    memset(r, 0, sizeof *r);
    if (!st->s3 && !(st->s3 = curl_easy_init()))
        return em_errf(eb, EM_E_NOMEM, "s3: curl_easy_init failed");
    em_err rc = prepare(st, u, method, body, len, ctype, q, eb);
    if (rc != EM_OK) return rc;
    *x = (struct em_xfer){.method = method, .url = q->url, .headers = q->headers, .body = body,
                          .body_len = len, .max_bytes = st->o.max_bytes, .sigv4 = q->sigv4,
                          .user = st->access_key, .pass = st->secret_key, .what = q->what};
    return em_xfer_run(st, st->s3, x, r, eb);
}

/* One signed request: EM_OK when the reply's status is one of ok (0-terminated), else the
 * status mapped by em_xfer_status_err. With data, the body is handed over on EM_OK (never
 * NULL: an empty body is a 1-byte allocation); without, it is dropped. */
static em_err s3_call(struct em_storage *st, const struct em_uri *u, const char *method,
                      const void *body, size_t len, const char *ctype, const long *ok,
                      uint8_t **data, size_t *data_len, struct em_errbuf *eb)
{
    struct req *q = calloc(1, sizeof *q);
    if (!q) return em_errf(eb, EM_E_NOMEM, "s3: out of memory");
    struct em_xfer x;
    struct em_xfer_resp r;
    em_err rc = s3_do(st, u, method, body, len, ctype, q, &x, &r, eb);
    if (rc == EM_OK) {
        int good = 0;
        for (const long *s = ok; *s && !good; s++) good = r.status == *s;
        if (!good) rc = em_xfer_status_err(&x, &r, eb);
    }
    if (rc == EM_OK && data) {
        if (!r.data && !(r.data = calloc(1, 1))) {
            rc = em_errf(eb, EM_E_NOMEM, "%s: out of memory", q->what);
        } else {
            *data = r.data;
            *data_len = r.len;
            r.data = NULL;
        }
    }
    free(r.data);
    curl_slist_free_all(q->headers);
    free(q);
    return rc;
}

static const long ok_200[] = {200, 0};

static em_err s3_get(struct em_storage *st, const struct em_uri *u, uint8_t **data,
                     size_t *len, struct em_errbuf *eb)
{
    return s3_call(st, u, "GET", NULL, 0, NULL, ok_200, data, len, eb);
}

static em_err s3_put(struct em_storage *st, const struct em_uri *u, const void *data,
                     size_t len, const char *content_type, struct em_errbuf *eb)
{
    return s3_call(st, u, "PUT", data, len, content_type, ok_200, NULL, NULL, eb);
}

static em_err s3_exists(struct em_storage *st, const struct em_uri *u, struct em_errbuf *eb)
{
    return s3_call(st, u, "HEAD", NULL, 0, NULL, ok_200, NULL, NULL, eb);
}

static em_err s3_del(struct em_storage *st, const struct em_uri *u, struct em_errbuf *eb)
{
    /* S3 answers 204 whether or not the key existed; some servers say 404 */
    static const long ok[] = {204, 200, 404, 0};
    return s3_call(st, u, "DELETE", NULL, 0, NULL, ok, NULL, NULL, eb);
}

const struct em_storage_ops em_storage_s3_ops = {
    .name = "s3",
    .get = s3_get,
    .put = s3_put,
    .exists = s3_exists,
    .del = s3_del,
};
