/* storage/uri.c - storage URI parsing and canonical checks; see uri.h for the grammar. */
#include "storage/uri.h"

#include <stdlib.h>
#include <string.h>

static int has_prefix(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

static int has_ctl(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f) return 1;
    return 0;
}

/* Strict UTF-8 (no overlongs, no surrogates, at most U+10FFFF). */
static int utf8_ok(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t n;
        unsigned min, cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1, min = 0x80, cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2, min = 0x800, cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3, min = 0x10000, cp = c & 0x07;
        } else {
            return 0;
        }
        if (n > len - i - 1) return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        i += n + 1;
    }
    return 1;
}

/* 1 if some '/'-separated segment of s is "." or "..". */
static int has_dot_segment(const char *s)
{
    const char *p = s;
    for (;;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) return 1;
        if (!e) return 0;
        p = e + 1;
    }
}

static int bucket_ok(const char *b, size_t n)
{
    if (n < 3 || n > EM_S3_BUCKET_MAX) return 0;
    int dots = 0, digits_only = 1;
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && c != '-' && c != '.') return 0;
        if (c == '.') {
            dots++;
            if (i > 0 && b[i - 1] == '.') return 0;
        } else if (!(c >= '0' && c <= '9')) {
            digits_only = 0;
        }
    }
    char first = b[0], last = b[n - 1];
    if (first == '-' || first == '.' || last == '-' || last == '.') return 0;
    if (dots == 3 && digits_only) return 0; /* looks like an IPv4 address */
    return 1;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static em_err parse_s3(const char *s, struct em_uri *out, struct em_errbuf *eb)
{
    const char *b = s + 5;
    const char *slash = strchr(b, '/');
    size_t bn = slash ? (size_t)(slash - b) : strlen(b);
    if (!bucket_ok(b, bn))
        return em_errf(eb, EM_E_ARG,
                       "s3 URI: bucket '%.*s' is not a valid name (3-63 of a-z 0-9 . -)",
                       (int)(bn > 64 ? 64 : bn), b);
    if (!slash || !slash[1])
        return em_errf(eb, EM_E_ARG, "s3 URI: no object key after the bucket");
    const char *key = slash + 1;
    size_t kn = strlen(key);
    if (kn > EM_S3_KEY_MAX)
        return em_errf(eb, EM_E_ARG, "s3 URI: key is %zu bytes, limit %d", kn, EM_S3_KEY_MAX);
    if (!utf8_ok((const unsigned char *)key, kn))
        return em_errf(eb, EM_E_ARG, "s3 URI: key is not valid UTF-8");
    if (has_dot_segment(key))
        return em_errf(eb, EM_E_ARG, "s3 URI: key has a '.' or '..' segment");
    out->scheme = EM_URI_S3;
    memcpy(out->bucket, b, bn);
    out->bucket[bn] = 0;
    memcpy(out->path, key, kn + 1);
    return EM_OK;
}

static em_err parse_file(const char *s, struct em_uri *out, struct em_errbuf *eb)
{
    const char *p = s + 7;
    if (has_prefix(p, "localhost/")) p += 9;
    if (*p != '/')
        return em_errf(eb, EM_E_ARG, "file URI: needs an absolute path (file:///path)");
    size_t o = 0;
    for (size_t i = 0; p[i]; i++) {
        char c = p[i];
        if (c == '?' || c == '#')
            return em_errf(eb, EM_E_ARG, "file URI: query or fragment not allowed");
        if (c == '%') {
            int hi = hexval(p[i + 1]), lo = hi < 0 ? -1 : hexval(p[i + 2]);
            if (hi < 0 || lo < 0)
                return em_errf(eb, EM_E_ARG, "file URI: bad percent-escape at byte %zu", i);
            c = (char)(hi * 16 + lo);
            if (c == 0 || (unsigned char)c < 0x20)
                return em_errf(eb, EM_E_ARG, "file URI: escape decodes to a control byte");
            i += 2;
        }
        out->path[o++] = c; /* o <= strlen(s) <= EM_URI_MAX */
    }
    out->path[o] = 0;
    if (has_dot_segment(out->path))
        return em_errf(eb, EM_E_ARG, "file URI: path has a '.' or '..' segment");
    out->scheme = EM_URI_FILE;
    out->bucket[0] = 0;
    return EM_OK;
}

static em_err parse_http(const char *s, struct em_uri *out, struct em_errbuf *eb)
{
    const char *h = strstr(s, "://") + 3;
    size_t hn = strcspn(h, "/?#");
    if (hn == 0) return em_errf(eb, EM_E_ARG, "http URI: no host");
    if (strchr(s, ' ')) return em_errf(eb, EM_E_ARG, "http URI: spaces must be encoded");
    for (size_t i = 0; i < hn; i++)
        if (h[i] == '@')
            return em_errf(eb, EM_E_ARG, "http URI: user info in URLs is not allowed");
    out->scheme = EM_URI_HTTP;
    out->bucket[0] = 0;
    memcpy(out->path, s, strlen(s) + 1);
    return EM_OK;
}

em_err em_uri_parse(const char *s, struct em_uri *out, struct em_errbuf *eb)
{
    if (!s || !out) return em_errf(eb, EM_E_ARG, "URI: NULL");
    size_t n = strnlen(s, EM_URI_MAX + 1);
    if (n == 0) return em_errf(eb, EM_E_ARG, "URI: empty");
    if (n > EM_URI_MAX) return em_errf(eb, EM_E_ARG, "URI: longer than %d bytes", EM_URI_MAX);
    if (has_ctl(s, n)) return em_errf(eb, EM_E_ARG, "URI: contains a control character");
    if (has_prefix(s, "s3://")) return parse_s3(s, out, eb);
    if (has_prefix(s, "file://")) return parse_file(s, out, eb);
    if (has_prefix(s, "http://") || has_prefix(s, "https://")) return parse_http(s, out, eb);
    const char *colon = strstr(s, "://");
    if (colon && colon > s && (size_t)(colon - s) < 16 && !memchr(s, '/', (size_t)(colon - s)))
        return em_errf(eb, EM_E_ARG, "URI: unknown scheme '%.*s'", (int)(colon - s), s);
    out->scheme = EM_URI_FILE;
    out->bucket[0] = 0;
    memcpy(out->path, s, n + 1);
    return EM_OK;
}

em_err em_uri_encode(const char *s, size_t len, int keep_slash, char *out, size_t cap,
                     size_t *n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        int keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/');
        size_t need = keep ? 1 : 3;
        if (cap == 0 || need >= cap - o) {
            if (cap) out[0] = 0;
            return EM_E_TOO_LONG;
        }
        if (keep) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    if (cap == 0) return EM_E_TOO_LONG;
    out[o] = 0;
    if (n) *n = o;
    return EM_OK;
}

char *em_uri_join(const char *prefix, const char *name)
{
    if (!prefix || !name) return NULL;
    size_t pn = strlen(prefix);
    while (pn > 0 && prefix[pn - 1] == '/') pn--;
    /* keep "s3://" or "file://" intact when the prefix is only a scheme */
    if (pn > 0 && prefix[pn - 1] == ':') pn = strlen(prefix);
    while (*name == '/') name++;
    size_t nn = strlen(name);
    int sep = prefix[0] && !(pn > 0 && prefix[pn - 1] == '/');
    char *r = malloc(pn + (size_t)sep + nn + 1);
    if (!r) return NULL;
    memcpy(r, prefix, pn);
    if (sep) r[pn] = '/';
    memcpy(r + pn + (size_t)sep, name, nn + 1);
    return r;
}
