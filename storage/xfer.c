/* storage/xfer.c - libcurl request with capped reply body and retries (see xfer.h).
 * Each attempt starts from curl_easy_reset() so no option leaks from a previous request;
 * the handle's connection cache survives the reset. */
#include "storage/xfer.h"

#include <stdlib.h>
#include <string.h>

#include "common/clock.h"

struct sink {
    CURL *h;
    struct em_xfer_resp *r;
    size_t max_bytes;
    int too_long;
    em_err nomem;
};

struct source {
    const uint8_t *p;
    size_t left;
};

static size_t on_write(char *p, size_t size, size_t n, void *ud)
{
    struct sink *s = ud;
    size_t add = size * n;
    long status = 0;
    curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &status);
    size_t cap = (status >= 200 && status < 300) ? s->max_bytes : EM_XFER_MAX_ERROR_BODY;
    if (add > cap - s->r->len) {
        if (status >= 200 && status < 300) {
            s->too_long = 1;
            return 0; /* aborts the transfer */
        }
        add = cap - s->r->len; /* error bodies are only read for their <Code> */
    }
    uint8_t *nd = realloc(s->r->data, s->r->len + add + 1);
    if (!nd) {
        s->nomem = EM_E_NOMEM;
        return 0;
    }
    memcpy(nd + s->r->len, p, add);
    s->r->data = nd;
    s->r->len += add;
    nd[s->r->len] = 0;
    return size * n;
}

static size_t on_read(char *buf, size_t size, size_t n, void *ud)
{
    struct source *s = ud;
    size_t k = size * n < s->left ? size * n : s->left;
    memcpy(buf, s->p, k);
    s->p += k;
    s->left -= k;
    return k;
}

static int retryable_curl(CURLcode c)
{
    switch (c) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
        return 1;
    default:
        return 0;
    }
}

static void backoff(struct em_storage *st, int attempt)
{
    int64_t d = EM_XFER_BACKOFF_START_MS;
    for (int i = 0; i < attempt && d < EM_XFER_BACKOFF_CAP_MS; i++) d *= 2;
    if (d > EM_XFER_BACKOFF_CAP_MS) d = EM_XFER_BACKOFF_CAP_MS;
    /* xorshift32 jitter: sleep between d/2 and d so that clients spread out */
    uint32_t x = st->rng ? st->rng : 0x9e3779b9u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    st->rng = x;
    em_sleep_ms(d / 2 + (int64_t)(x % (uint32_t)(d / 2 + 1)));
}

static void setup(CURL *h, const struct em_xfer *x, struct em_storage *st, struct sink *sk,
                  struct source *src, char *errbuf)
{
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, x->url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)st->o.timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(st->o.timeout_ms < 10000 ? st->o.timeout_ms : 10000));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, sk);
    if (x->headers) curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->headers);
    if (x->follow_redirects) {
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(h, CURLOPT_MAXREDIRS, (long)EM_XFER_MAX_REDIRECTS);
        curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    }
    if (x->sigv4) {
        curl_easy_setopt(h, CURLOPT_AWS_SIGV4, x->sigv4);
        curl_easy_setopt(h, CURLOPT_USERNAME, x->user);
        curl_easy_setopt(h, CURLOPT_PASSWORD, x->pass);
    }
    if (strcmp(x->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(x->method, "PUT") == 0) {
        src->p = x->body;
        src->left = x->body_len;
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, src);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)x->body_len);
        /* servers that ignore "Expect: 100-continue" cost this much per large PUT */
        curl_easy_setopt(h, CURLOPT_EXPECT_100_TIMEOUT_MS, 300L);
    } else if (strcmp(x->method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, x->method);
    }
}

em_err em_xfer_run(struct em_storage *st, CURL *h, const struct em_xfer *x,
                   struct em_xfer_resp *r, struct em_errbuf *eb)
{
    char errbuf[CURL_ERROR_SIZE];
    memset(r, 0, sizeof *r);
    for (int attempt = 0;; attempt++) {
        struct sink sk = {.h = h, .r = r, .max_bytes = x->max_bytes};
        struct source src = {0};
        free(r->data);
        r->data = NULL;
        r->len = 0;
        r->status = 0;
        errbuf[0] = 0;
        setup(h, x, st, &sk, &src, errbuf);
        CURLcode c = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
        if (sk.nomem) return em_errf(eb, EM_E_NOMEM, "%s: out of memory reading reply", x->what);
        if (sk.too_long)
            return em_errf(eb, EM_E_TOO_LONG, "%s: object larger than the limit of %zu bytes",
                           x->what, x->max_bytes);
        int last = attempt >= st->o.retries;
        if (c == CURLE_OK) {
            if ((r->status >= 500 || r->status == 429) && !last) {
                backoff(st, attempt);
                continue;
            }
            return EM_OK;
        }
        if (retryable_curl(c) && !last) {
            backoff(st, attempt);
            continue;
        }
        const char *why = errbuf[0] ? errbuf : curl_easy_strerror(c);
        if (c == CURLE_URL_MALFORMAT || c == CURLE_UNSUPPORTED_PROTOCOL)
            return em_errf(eb, EM_E_ARG, "%s: %s", x->what, why);
        if (c == CURLE_OPERATION_TIMEDOUT)
            return em_errf(eb, EM_E_TIMEOUT, "%s: %s (after %d attempts)", x->what, why,
                           attempt + 1);
        if (c == CURLE_COULDNT_CONNECT || c == CURLE_COULDNT_RESOLVE_HOST)
            return em_errf(eb, EM_E_STORAGE_DOWN, "%s: %s (after %d attempts)", x->what, why,
                           attempt + 1);
        return em_errf(eb, EM_E_IO, "%s: %s (after %d attempts)", x->what, why, attempt + 1);
    }
}

/* Copies the text of <tag>...</tag> from an XML body into out, or "" when absent. Only
 * A-Z a-z 0-9 . _ - are kept, so nothing odd from a reply reaches a log line. */
static void xml_field(const struct em_xfer_resp *r, const char *tag, char *out, size_t cap)
{
    char open[32];
    out[0] = 0;
    if (!r->data || cap == 0) return;
    snprintf(open, sizeof open, "<%s>", tag);
    const char *p = strstr((const char *)r->data, open);
    if (!p) return;
    p += strlen(open);
    size_t o = 0;
    for (; *p && *p != '<' && o + 1 < cap; p++) {
        char c = *p;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '.' || c == '_' || c == '-')
            out[o++] = c;
    }
    out[o] = 0;
}

em_err em_xfer_status_err(const struct em_xfer *x, const struct em_xfer_resp *r,
                          struct em_errbuf *eb)
{
    char code[64];
    xml_field(r, "Code", code, sizeof code);
    em_err e = r->status == 404                       ? EM_E_NOTFOUND
               : (r->status == 401 || r->status == 403) ? EM_E_AUTH
               : r->status == 507                       ? EM_E_STORAGE_FULL
                                                        : EM_E_STORAGE;
    return em_errf(eb, e, "%s: HTTP %ld%s%s", x->what, r->status, code[0] ? " " : "", code);
}
