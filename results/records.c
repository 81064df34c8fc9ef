/* results/records.c - listing and reading the records of an output prefix (records.h):
 * manifest.jsonl's "output" column, else a file:// directory's *.json; each record read
 * through storage/, checked for the schema name and the fields every tool relies on. */
#include "results/records.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "coordinator/queue.h"
#include "storage/storage.h"
#include "storage/uri.h"

#define SCHEMA_NAME "earmark.annotation/v1"

void em_recs_strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

em_err em_recs_resolve(const char *arg, const char *redis_url, char **out, struct em_errbuf *eb)
{
    *out = NULL;
    struct stat sb;
    if (strstr(arg, "://") || arg[0] == '/' || arg[0] == '.' || stat(arg, &sb) == 0) {
        *out = strdup(arg);
        return *out ? EM_OK : em_errf(eb, EM_E_NOMEM, "out of memory");
    }
    if (!redis_url)
        return em_errf(eb, EM_E_ARG,
                       "'%s' is not a URI; a batch id needs --redis URL (or EARMARK_REDIS_URL)",
                       arg);
    struct em_queue *q = NULL;
    struct em_batch_info b = {0};
    em_err rc = em_queue_open(redis_url, &q, eb);
    if (rc == EM_OK) rc = em_queue_batch_get(q, arg, &b, eb);
    em_queue_close(q);
    if (rc == EM_OK && (!b.out || !*b.out))
        rc = em_errf(eb, EM_E_FORMAT, "batch %s has no output prefix", arg);
    if (rc == EM_OK && !(*out = strdup(b.out))) rc = em_errf(eb, EM_E_NOMEM, "out of memory");
    em_batch_info_clear(&b);
    return rc;
}

struct strv {
    char **v;
    size_t n, cap;
};

static int strv_push(struct strv *s, char *str)
{
    if (!str) return -1;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        char **v = realloc(s->v, cap * sizeof *v);
        if (!v) {
            free(str);
            return -1;
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = str;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The "output" of every manifest.jsonl line, in order; lines without one are skipped. */
static em_err list_manifest(const uint8_t *data, size_t len, struct strv *s, struct em_errbuf *eb)
{
    const char *p = (const char *)data, *end = p + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        json_t *o = e > p ? json_loadb(p, (size_t)(e - p), 0, NULL) : NULL;
        const char *u = json_string_value(json_object_get(o, "output"));
        int bad = u && *u && (s->n >= EM_RECS_MAX_ITEMS || strv_push(s, strdup(u)) != 0);
        json_decref(o);
        if (bad)
            return s->n >= EM_RECS_MAX_ITEMS
                       ? em_errf(eb, EM_E_TOO_LONG, "manifest.jsonl lists more than %u records",
                                 EM_RECS_MAX_ITEMS)
                       : em_errf(eb, EM_E_NOMEM, "out of memory");
        p = nl ? nl + 1 : end;
    }
    return EM_OK;
}

/* *.json directly in a local directory, sorted by name. */
static em_err list_dir(const char *out, const char *path, struct strv *s, struct em_errbuf *eb)
{
    DIR *d = opendir(path);
    if (!d)
        return em_errf(eb, EM_E_NOTFOUND, "%s: no manifest.jsonl and not a readable directory",
                       out);
    em_err rc = EM_OK;
    for (struct dirent *de; rc == EM_OK && (de = readdir(d));) {
        size_t n = strlen(de->d_name);
        if (n < 6 || strcmp(de->d_name + n - 5, ".json") != 0 || de->d_name[0] == '.') continue;
        if (s->n >= EM_RECS_MAX_ITEMS)
            rc = em_errf(eb, EM_E_TOO_LONG, "%s holds more than %u records", out,
                         EM_RECS_MAX_ITEMS);
        else if (strv_push(s, em_storage_join(out, de->d_name)) != 0)
            rc = em_errf(eb, EM_E_NOMEM, "out of memory");
    }
    closedir(d);
    if (rc == EM_OK && s->n) qsort(s->v, s->n, sizeof *s->v, cmp_str);
    return rc;
}

em_err em_recs_list(struct em_storage *st, const char *out, char ***uris, size_t *n,
                    struct em_errbuf *eb)
{
    *uris = NULL;
    *n = 0;
    struct strv s = {0};
    struct em_uri u;
    em_err rc = em_uri_parse(out, &u, eb);
    if (rc != EM_OK) return rc;
    char *mu = em_storage_join(out, "manifest.jsonl");
    if (!mu) return em_errf(eb, EM_E_NOMEM, "out of memory");
    uint8_t *data = NULL;
    size_t len = 0;
    struct em_errbuf meb = {{0}};
    rc = em_storage_get(st, mu, &data, &len, &meb);
    free(mu);
    if (rc == EM_OK) {
        rc = list_manifest(data, len, &s, eb);
    } else if (rc == EM_E_NOTFOUND && u.scheme == EM_URI_FILE) {
        rc = list_dir(out, u.path, &s, eb);
    } else if (rc == EM_E_NOTFOUND) {
        rc = em_errf(eb, EM_E_NOTFOUND,
                     "%s: no manifest.jsonl (the batch is not complete; only file:// prefixes "
                     "can be listed without it)", out);
    } else {
        rc = em_errf(eb, rc, "%s/manifest.jsonl: %s", out, em_errbuf_msg(&meb, rc));
    }
    free(data);
    if (rc != EM_OK) {
        em_recs_strv_free(s.v, s.n);
        return rc;
    }
    *uris = s.v;
    *n = s.n;
    return EM_OK;
}

em_err em_recs_parse(const uint8_t *data, size_t len, json_t **rec, struct em_errbuf *eb)
{
    *rec = NULL;
    json_error_t je;
    json_t *o = json_loadb((const char *)data, len, 0, &je);
    if (!o) return em_errf(eb, EM_E_FORMAT, "not JSON (line %d: %s)", je.line, je.text);
    const char *why = NULL;
    const char *schema = json_string_value(json_object_get(o, "schema"));
    const char *status = json_string_value(json_object_get(o, "status"));
    if (!json_is_object(o))
        why = "not a JSON object";
    else if (!schema || strcmp(schema, SCHEMA_NAME) != 0)
        why = "schema is not " SCHEMA_NAME;
    else if (!json_string_value(json_object_get(o, "id")) || !json_object_get(o, "source"))
        why = "no id or source";
    else if (!status || (strcmp(status, "ok") != 0 && strcmp(status, "failed") != 0))
        why = "status is neither ok nor failed";
    if (why) {
        json_decref(o);
        return em_errf(eb, EM_E_FORMAT, "%s", why);
    }
    *rec = o;
    return EM_OK;
}

em_err em_recs_each(struct em_storage *st, const char *out, const char *who, em_recs_fn fn,
                    void *ud, size_t *bad, struct em_errbuf *eb)
{
    char **uris = NULL;
    size_t n = 0;
    *bad = 0;
    em_err rc = em_recs_list(st, out, &uris, &n, eb);
    if (rc != EM_OK) return rc;
    for (size_t i = 0; rc == EM_OK && i < n; i++) {
        uint8_t *data = NULL;
        size_t len = 0;
        json_t *rec = NULL;
        struct em_errbuf reb = {{0}};
        em_err r = em_storage_get(st, uris[i], &data, &len, &reb);
        if (r == EM_OK && len > EM_RECS_MAX_RECORD)
            r = em_errf(&reb, EM_E_TOO_LONG, "record of %zu bytes (limit %u)", len,
                        EM_RECS_MAX_RECORD);
        if (r == EM_OK) r = em_recs_parse(data, len, &rec, &reb);
        if (r == EM_E_NOMEM) {
            rc = em_errf(eb, r, "%s: out of memory", uris[i]);
        } else if (r != EM_OK) {
            fprintf(stderr, "earmark %s: %s: %s\n", who, uris[i], em_errbuf_msg(&reb, r));
            (*bad)++;
        } else if (fn(ud, uris[i], data, len, rec) != 0) {
            rc = em_errf(eb, EM_E_CANCELLED, "stopped at %s", uris[i]);
        }
        json_decref(rec);
        free(data);
    }
    em_recs_strv_free(uris, n);
    return rc;
}

static int push_rec(void *ud, const char *uri, const uint8_t *data, size_t len, json_t *rec)
{
    (void)data;
    (void)len;
    struct em_recs *r = ud;
    if (r->n == 0 || (r->n >= 16 && (r->n & (r->n - 1)) == 0)) { /* 16, 32, 64, ... */
        size_t cap = r->n ? r->n * 2 : 16;
        struct em_rec *v = realloc(r->v, cap * sizeof *v);
        if (!v) return 1;
        r->v = v;
    }
    char *u = strdup(uri);
    if (!u) return 1;
    json_t *m = json_object_get(rec, "meta");
    json_t *ref = json_object_get(m, "ref");
    r->v[r->n++] = (struct em_rec){u, json_incref(rec), json_is_object(ref) ? json_incref(ref) : NULL};
    return 0;
}

em_err em_recs_load(struct em_storage *st, const char *out, const char *who, struct em_recs *r,
                    struct em_errbuf *eb)
{
    memset(r, 0, sizeof *r);
    if (!(r->out = strdup(out))) return em_errf(eb, EM_E_NOMEM, "out of memory");
    em_err rc = em_recs_each(st, out, who, push_rec, r, &r->bad, eb);
    if (rc == EM_E_CANCELLED) rc = em_errf(eb, EM_E_NOMEM, "out of memory reading %s", out);
    if (rc != EM_OK) em_recs_free(r);
    return rc;
}

void em_recs_free(struct em_recs *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n; i++) {
        free(r->v[i].uri);
        json_decref(r->v[i].rec);
        json_decref(r->v[i].ref);
    }
    free(r->v);
    free(r->out);
    memset(r, 0, sizeof *r);
}

em_err em_recs_refs_load(struct em_recs *r, const uint8_t *data, size_t len,
                         struct em_errbuf *eb)
{
    json_t *map = json_object(); /* source -> ref */
    if (!map) return em_errf(eb, EM_E_NOMEM, "out of memory");
    const char *p = (const char *)data, *end = p + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        json_t *o = e > p ? json_loadb(p, (size_t)(e - p), 0, NULL) : NULL;
        const char *u = json_string_value(json_object_get(o, "uri"));
        json_t *ref = json_object_get(o, "ref");
        if (!json_is_object(ref)) ref = json_object_get(json_object_get(o, "meta"), "ref");
        if (u && json_is_object(ref)) json_object_set(map, u, ref);
        json_decref(o);
        p = nl ? nl + 1 : end;
    }
    for (size_t i = 0; i < r->n; i++) {
        const char *src = json_string_value(json_object_get(r->v[i].rec, "source"));
        json_t *ref = src ? json_object_get(map, src) : NULL;
        if (!ref) continue;
        json_decref(r->v[i].ref);
        r->v[i].ref = json_incref(ref);
    }
    json_decref(map);
    return EM_OK;
}

static const json_t *field(const json_t *rec, const char *a, const char *b)
{
    const json_t *v = json_object_get(rec, a);
    return b ? json_object_get(v, b) : v;
}

const char *em_rec_str(const json_t *rec, const char *a, const char *b)
{
    return json_string_value(field(rec, a, b));
}

const json_t *em_rec_transcript(const json_t *rec)
{
    const json_t *t = json_object_get(rec, "transcript");
    if (json_is_object(t)) t = json_object_get(t, "text");
    return json_is_string(t) ? t : NULL;
}

double em_rec_num(const json_t *rec, const char *a, const char *b)
{
    const json_t *v = field(rec, a, b);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

int64_t em_rec_created_ms(const json_t *rec)
{
    const char *s = em_rec_str(rec, "created_at", NULL);
    struct tm tm = {0};
    const char *rest = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (!rest) return -1;
    int64_t ms = 0;
    if (*rest == '.') {
        int64_t scale = 100;
        for (rest++; *rest >= '0' && *rest <= '9'; rest++, scale /= 10) ms += (*rest - '0') * scale;
    }
    if (*rest != 'Z' || rest[1]) return -1;
    time_t t = timegm(&tm);
    return t < 0 ? -1 : (int64_t)t * 1000 + ms;
}
