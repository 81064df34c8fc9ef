/* storage/sigv4.c - SigV4 canonical request, string to sign and signature (see sigv4.h).
 * Headers: (name, value) -> lower-case name, value trimmed with inner runs of spaces
 * collapsed, sorted by name, repeated names joined with ','. */
#include "storage/sigv4.h"

#include "common/hex.h"
#include "common/id.h"

#include <openssl/hmac.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_QUERY_PARTS 64

struct hdr {
    char name[128];
    char value[1024];
};

/* Appends a formatted string to out at *o. EM_E_TOO_LONG when it does not fit. */
__attribute__((format(printf, 4, 5))) static em_err app(char *out, size_t cap, size_t *o,
                                                         const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + *o, cap - *o, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap - *o) return EM_E_TOO_LONG;
    *o += (size_t)n;
    return EM_OK;
}

static void hmac(const void *key, size_t klen, const char *msg, unsigned char out[32])
{
    unsigned int olen = 32;
    HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), out, &olen);
}

static em_err parse_hdr(const char *line, struct hdr *h)
{
    const char *c = strchr(line, ':');
    if (!c || c == line || (size_t)(c - line) >= sizeof h->name) return EM_E_ARG;
    size_t n = (size_t)(c - line);
    for (size_t i = 0; i < n; i++) {
        char ch = line[i];
        h->name[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
    }
    h->name[n] = 0;
    const char *v = c + 1;
    size_t o = 0;
    int space = 0;
    while (*v == ' ' || *v == '\t') v++;
    for (; *v; v++) {
        if (*v == ' ' || *v == '\t') {
            space = 1;
            continue;
        }
        if (space && o + 1 < sizeof h->value) h->value[o++] = ' ';
        space = 0;
        if (o + 1 >= sizeof h->value) return EM_E_TOO_LONG;
        h->value[o++] = *v;
    }
    h->value[o] = 0;
    return EM_OK;
}

static int cmp_hdr(const void *a, const void *b)
{
    return strcmp(((const struct hdr *)a)->name, ((const struct hdr *)b)->name);
}

static int cmp_part(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    size_t xn = strcspn(x, "="), yn = strcspn(y, "=");
    size_t m = xn < yn ? xn : yn;
    int c = memcmp(x, y, m);
    if (c) return c;
    if (xn != yn) return xn < yn ? -1 : 1;
    return strcmp(x + xn, y + yn);
}

em_err em_sigv4_canonical_query(const char *query, char *out, size_t cap)
{
    if (cap == 0) return EM_E_TOO_LONG;
    out[0] = 0;
    if (!query || !*query) return EM_OK;
    char *copy = strdup(query);
    if (!copy) return EM_E_NOMEM;
    char *parts[MAX_QUERY_PARTS];
    size_t np = 0;
    em_err rc = EM_OK;
    for (char *p = copy; p;) {
        char *amp = strchr(p, '&');
        if (amp) *amp = 0;
        if (*p) {
            if (np == MAX_QUERY_PARTS) {
                rc = EM_E_ARG;
                goto done;
            }
            parts[np++] = p;
        }
        p = amp ? amp + 1 : NULL;
    }
    qsort(parts, np, sizeof *parts, cmp_part);
    size_t o = 0;
    for (size_t i = 0; i < np && rc == EM_OK; i++)
        rc = app(out, cap, &o, "%s%s%s", i ? "&" : "", parts[i], strchr(parts[i], '=') ? "" : "=");
done:
    free(copy);
    return rc;
}

static em_err canonical_headers(const struct em_sigv4_req *r, struct em_sigv4_out *out,
                                size_t *o, struct em_errbuf *eb)
{
    struct hdr *h = calloc(r->nheaders ? r->nheaders : 1, sizeof *h);
    if (!h) return EM_E_NOMEM;
    em_err rc = EM_OK;
    for (size_t i = 0; i < r->nheaders && rc == EM_OK; i++)
        if ((rc = parse_hdr(r->headers[i], &h[i])) != EM_OK)
            em_errf(eb, rc, "sigv4: header %zu is malformed or too long", i);
    if (rc != EM_OK) goto done;
    qsort(h, r->nheaders, sizeof *h, cmp_hdr);
    size_t so = 0;
    for (size_t i = 0; i < r->nheaders && rc == EM_OK; i++) {
        int same = i > 0 && strcmp(h[i].name, h[i - 1].name) == 0;
        if (same) {
            /* replace the previous "\n" by ",value\n" */
            (*o)--;
            rc = app(out->canonical_request, sizeof out->canonical_request, o, ",%s\n",
                     h[i].value);
            continue;
        }
        rc = app(out->canonical_request, sizeof out->canonical_request, o, "%s:%s\n",
                 h[i].name, h[i].value);
        if (rc == EM_OK)
            rc = app(out->signed_headers, sizeof out->signed_headers, &so, "%s%s",
                     so ? ";" : "", h[i].name);
    }
    if (rc != EM_OK) em_errf(eb, rc, "sigv4: canonical headers exceed their buffer");
done:
    free(h);
    return rc;
}

em_err em_sigv4_sign(const struct em_sigv4_req *r, struct em_sigv4_out *out,
                     struct em_errbuf *eb)
{
    if (!r || !out || !r->method || !r->path || !r->payload_hash || !r->amz_date ||
        !r->region || !r->service || !r->access_key || !r->secret_key ||
        (r->nheaders && !r->headers))
        return em_errf(eb, EM_E_ARG, "sigv4: a required field is NULL");
    if (r->nheaders > EM_SIGV4_MAX_HEADERS)
        return em_errf(eb, EM_E_ARG, "sigv4: %zu headers, limit %d", r->nheaders,
                       EM_SIGV4_MAX_HEADERS);
    if (strlen(r->amz_date) != 16 || r->amz_date[8] != 'T')
        return em_errf(eb, EM_E_ARG, "sigv4: amz date '%.20s' is not YYYYMMDDTHHMMSSZ",
                       r->amz_date);
    memset(out, 0, sizeof *out);
    char query[4096];
    em_err rc = em_sigv4_canonical_query(r->query, query, sizeof query);
    if (rc != EM_OK) return em_errf(eb, rc, "sigv4: query string too long or too many parts");

    size_t o = 0;
    if (app(out->canonical_request, sizeof out->canonical_request, &o, "%s\n%s\n%s\n",
            r->method, r->path, query) != EM_OK)
        return em_errf(eb, EM_E_TOO_LONG, "sigv4: canonical request exceeds its buffer");
    if ((rc = canonical_headers(r, out, &o, eb)) != EM_OK) return rc;
    if (app(out->canonical_request, sizeof out->canonical_request, &o, "\n%s\n%s",
            out->signed_headers, r->payload_hash) != EM_OK)
        return em_errf(eb, EM_E_TOO_LONG, "sigv4: canonical request exceeds its buffer");

    char creq_hash[65], date[9];
    em_sha256_hex(out->canonical_request, o, creq_hash);
    memcpy(date, r->amz_date, 8);
    date[8] = 0;
    size_t so = 0;
    if (app(out->string_to_sign, sizeof out->string_to_sign, &so,
            "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s", r->amz_date, date, r->region,
            r->service, creq_hash) != EM_OK)
        return em_errf(eb, EM_E_TOO_LONG, "sigv4: region or service too long");

    char kbuf[256];
    if ((size_t)snprintf(kbuf, sizeof kbuf, "AWS4%s", r->secret_key) >= sizeof kbuf)
        return em_errf(eb, EM_E_ARG, "sigv4: secret key too long");
    unsigned char k1[32], k2[32], k3[32], k4[32], sig[32];
    hmac(kbuf, strlen(kbuf), date, k1);
    hmac(k1, 32, r->region, k2);
    hmac(k2, 32, r->service, k3);
    hmac(k3, 32, "aws4_request", k4);
    hmac(k4, 32, out->string_to_sign, sig);
    em_hex_lower(sig, 32, out->signature);
    memset(kbuf, 0, sizeof kbuf);

    size_t ao = 0;
    if (app(out->authorization, sizeof out->authorization, &ao,
            "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=%s, "
            "Signature=%s",
            r->access_key, date, r->region, r->service, out->signed_headers,
            out->signature) != EM_OK)
        return em_errf(eb, EM_E_TOO_LONG, "sigv4: authorization header exceeds its buffer");
    return EM_OK;
}
