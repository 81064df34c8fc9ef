/* coordinator/manifest.c - manifest bytes -> items (id, uri, ref, meta), bad lines reported.
 * One pass over the lines; a string set (open addressing, FNV-1a) finds duplicate ids. */
#include "coordinator/manifest.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/id.h"

struct em_manifest {
    struct em_manifest_item *items;
    size_t n, cap;
    size_t bad;
    size_t *slots; /* hash set of item index + 1 (0 = empty), power-of-two sized */
    size_t nslots;
};

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Returns the index of an item with this id, or (size_t)-1. */
static size_t set_find(const struct em_manifest *m, const char *id, size_t *slot)
{
    size_t mask = m->nslots - 1, i = (size_t)fnv1a(id) & mask;
    while (m->slots[i]) {
        size_t k = m->slots[i] - 1;
        if (strcmp(m->items[k].id, id) == 0) {
            *slot = i;
            return k;
        }
        i = (i + 1) & mask;
    }
    *slot = i;
    return (size_t)-1;
}

static int set_grow(struct em_manifest *m)
{
    size_t ns = m->nslots ? m->nslots * 2 : 1024;
    size_t *s = calloc(ns, sizeof *s);
    if (!s) return -1;
    free(m->slots);
    m->slots = s;
    m->nslots = ns;
    for (size_t k = 0; k < m->n; k++) {
        size_t slot;
        set_find(m, m->items[k].id, &slot);
        m->slots[slot] = k + 1;
    }
    return 0;
}

int em_manifest_text_ok(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            if ((c < 0x20 && c != '\t') || c == 0x7f) return 0;
            i++;
            continue;
        }
        size_t k;
        uint32_t cp;
        if ((c & 0xe0) == 0xc0)
            k = 1, cp = c & 0x1f;
        else if ((c & 0xf0) == 0xe0)
            k = 2, cp = c & 0x0f;
        else if ((c & 0xf8) == 0xf0)
            k = 3, cp = c & 0x07;
        else
            return 0;
        if (k > n - i - 1) return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        /* overlong forms, surrogates and out-of-range code points */
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += k + 1;
    }
    return 1;
}

static void report(struct em_manifest *m, em_manifest_bad_fn bad, void *ud, unsigned line,
                   em_err code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void report(struct em_manifest *m, em_manifest_bad_fn bad, void *ud, unsigned line,
                   em_err code, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    m->bad++;
    if (bad) bad(ud, line, code, why);
}

static char *dupn(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

/* Extracts uri/ref/meta from a JSON line. Returns EM_OK, EM_E_NOMEM, or another code with
 * why filled (a bad line). */
static em_err parse_json(const char *s, size_t n, char **uri, char **ref, char **meta, char *why,
                         size_t wcap)
{
    json_error_t je;
    json_t *o = json_loadb(s, n, JSON_REJECT_DUPLICATES, &je);
    em_err rc = EM_E_FORMAT;
    if (!o) {
        snprintf(why, wcap, "invalid JSON at column %d: %s", je.column, je.text);
        return EM_E_FORMAT;
    }
    json_t *u = json_object_get(o, "uri"), *id = json_object_get(o, "id");
    json_t *mt = json_object_get(o, "meta");
    if (!json_is_object(o)) {
        snprintf(why, wcap, "JSON line is not an object");
    } else if (!json_is_string(u) || json_string_length(u) == 0) {
        snprintf(why, wcap, "JSON line has no \"uri\" string");
    } else if (id && (!json_is_string(id) || !em_id_valid(json_string_value(id)))) {
        snprintf(why, wcap, "\"id\" must be a string of 1..%d characters [A-Za-z0-9._-]",
                 EM_ID_MAX);
    } else if (json_string_length(u) > EM_MANIFEST_MAX_URI) {
        snprintf(why, wcap, "uri of %zu bytes exceeds the %u-byte limit", json_string_length(u),
                 EM_MANIFEST_MAX_URI);
        rc = EM_E_TOO_LONG;
    } else if (!em_manifest_text_ok((const uint8_t *)json_string_value(u), json_string_length(u))) {
        snprintf(why, wcap, "uri contains NUL or control characters");
    } else {
        rc = EM_E_NOMEM;
        *uri = dupn(json_string_value(u), json_string_length(u));
        *ref = id ? strdup(json_string_value(id)) : NULL;
        *meta = (mt && !json_is_null(mt)) ? json_dumps(mt, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        if (*uri && (!id || *ref) && (!mt || json_is_null(mt) || *meta)) rc = EM_OK;
    }
    json_decref(o);
    return rc;
}

static em_err add_item(struct em_manifest *m, char *id, char *uri, char *ref, char *meta,
                       unsigned line)
{
    if (m->n == m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 64;
        struct em_manifest_item *it = realloc(m->items, nc * sizeof *it);
        if (!it) return EM_E_NOMEM;
        m->items = it;
        m->cap = nc;
    }
    if ((m->n + 1) * 2 > m->nslots && set_grow(m) != 0) return EM_E_NOMEM;
    size_t slot;
    set_find(m, id, &slot);
    m->items[m->n] = (struct em_manifest_item){id, uri, ref, meta, line};
    m->slots[slot] = ++m->n;
    return EM_OK;
}

/* Handles one line (without its newline). Returns EM_OK unless memory or the item cap
 * runs out; bad lines are reported, not returned. */
static em_err do_line(struct em_manifest *m, const char *s, size_t n, unsigned line,
                      em_manifest_bad_fn bad, void *ud, struct em_errbuf *eb)
{
    if (n > EM_MANIFEST_MAX_LINE) {
        report(m, bad, ud, line, EM_E_TOO_LONG, "line of %zu bytes exceeds the %u-byte limit", n,
               EM_MANIFEST_MAX_LINE);
        return EM_OK;
    }
    if (n && s[n - 1] == '\r') n--;
    while (n && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n == 0 || *s == '#') return EM_OK;
    if (!em_manifest_text_ok((const uint8_t *)s, n)) {
        report(m, bad, ud, line, EM_E_FORMAT, "invalid UTF-8, NUL or control characters");
        return EM_OK;
    }
    char *uri = NULL, *ref = NULL, *meta = NULL, *id = NULL, why[200];
    if (*s == '{') {
        em_err rc = parse_json(s, n, &uri, &ref, &meta, why, sizeof why);
        if (rc == EM_E_NOMEM) goto nomem;
        if (rc != EM_OK) {
            report(m, bad, ud, line, rc, "%s", why);
            return EM_OK;
        }
    } else {
        if (n > EM_MANIFEST_MAX_URI) {
            report(m, bad, ud, line, EM_E_TOO_LONG, "uri of %zu bytes exceeds the %u-byte limit", n,
                   EM_MANIFEST_MAX_URI);
            return EM_OK;
        }
        if (!(uri = dupn(s, n))) goto nomem;
    }
    if (!em_manifest_uri_ok(uri, why, sizeof why)) {
        report(m, bad, ud, line, EM_E_ARG, "%s", why);
        goto drop;
    }
    if (ref) {
        id = ref;
    } else {
        if (!(id = malloc(EM_ID_LEN + 1))) goto nomem;
        em_id_item(uri, id);
    }
    size_t slot, prev = m->nslots ? set_find(m, id, &slot) : (size_t)-1;
    if (prev != (size_t)-1) {
        report(m, bad, ud, line, EM_E_ARG, "duplicate of line %u (id %s, %s), skipped",
               m->items[prev].line, m->items[prev].id, m->items[prev].uri);
        goto drop;
    }
    if (m->n >= EM_MANIFEST_MAX_ITEMS) {
        em_errf(eb, EM_E_TOO_LONG, "line %u: more than %u items", line, EM_MANIFEST_MAX_ITEMS);
        goto drop_fail;
    }
    if (add_item(m, id, uri, ref, meta, line) == EM_OK) return EM_OK;
nomem:
    if (id != ref) free(id);
    free(uri);
    free(ref);
    free(meta);
    return em_errf(eb, EM_E_NOMEM, "line %u: out of memory", line);
drop:
drop_fail:
    if (id != ref) free(id);
    free(uri);
    free(ref);
    free(meta);
    return m->n >= EM_MANIFEST_MAX_ITEMS ? EM_E_TOO_LONG : EM_OK;
}

em_err em_manifest_parse(const uint8_t *data, size_t len, em_manifest_bad_fn bad, void *ud,
                         struct em_manifest **out, struct em_errbuf *eb)
{
    em_err rc = EM_E_NOMEM;
    struct em_manifest *m = calloc(1, sizeof *m);
    *out = NULL;
    if (!m) return em_errf(eb, EM_E_NOMEM, "manifest: out of memory");
    const char *p = (const char *)data, *end = p + len;
    unsigned line = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        if (line < 0xffffffffu) line++;
        if ((rc = do_line(m, p, (size_t)(e - p), line, bad, ud, eb)) != EM_OK) goto fail;
        p = nl ? nl + 1 : end;
    }
    *out = m;
    return EM_OK;
fail:
    em_manifest_free(m);
    return rc;
}

void em_manifest_free(struct em_manifest *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->n; i++) {
        if (m->items[i].id != m->items[i].ref) free((char *)m->items[i].id);
        free((char *)m->items[i].uri);
        free((char *)m->items[i].ref);
        free((char *)m->items[i].meta_json);
    }
    free(m->items);
    free(m->slots);
    free(m);
}

size_t em_manifest_count(const struct em_manifest *m) { return m ? m->n : 0; }
size_t em_manifest_bad_count(const struct em_manifest *m) { return m ? m->bad : 0; }

const struct em_manifest_item *em_manifest_at(const struct em_manifest *m, size_t i)
{
    return (m && i < m->n) ? &m->items[i] : NULL;
}

int em_manifest_uri_ok(const char *uri, char *why, size_t cap)
{
    static const char *const schemes[] = {"file:///", "file://localhost/", "s3://", "http://",
                                          "https://"};
    for (size_t i = 0; i < sizeof schemes / sizeof *schemes; i++)
        if (strncmp(uri, schemes[i], strlen(schemes[i])) == 0) return 1;
    if (uri[0] == '/')
        snprintf(why, cap, "source '%.120s' has no scheme: write file://%.120s", uri, uri);
    else if (strstr(uri, "://"))
        snprintf(why, cap, "source '%.120s': unknown scheme (file:///, s3://, http(s)://)", uri);
    else
        snprintf(why, cap, "source '%.120s' is relative: sources are absolute file:/// or s3:// "
                           "or http(s):// URIs", uri);
    return 0;
}
