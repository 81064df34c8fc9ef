/* model/loader/ct2.c - CTranslate2 model.bin parser (format in ct2.h) and its file mapping.
 * A cursor walks the buffer; every read checks the bytes left first (len > size - off, never
 * off + len > size), so a hostile count or length cannot overflow or overrun. */
#include "model/loader/ct2.h"

#include <stdlib.h>
#include <string.h>

#include "model/loader/mapfile.h"

struct ct2_alias {
    const char *name, *target;
    size_t var; /* index of the target variable */
};

struct name_idx {
    const char *name;
    size_t var;
};

struct em_ct2 {
    uint32_t version, revision;
    const char *spec;
    struct em_ct2_var *v;
    size_t n;
    struct ct2_alias *a;
    size_t na;
    struct name_idx *by_name; /* [n] sorted by name */
    void *map;       /* em_ct2_open's mapping, or NULL */
    size_t map_len;
};

struct cursor {
    const uint8_t *p;
    size_t len, off;
    const char *file;
    struct em_errbuf *eb;
};

static em_err truncated(struct cursor *c, const char *what)
{
    return em_errf(c->eb, EM_E_MODEL, "%s: truncated at byte %zu reading %s (file is %zu bytes)",
                   c->file, c->off, what, c->len);
}

static em_err take(struct cursor *c, size_t n, const uint8_t **out, const char *what)
{
    if (n > c->len - c->off) return truncated(c, what);
    *out = c->p + c->off;
    c->off += n;
    return EM_OK;
}

static em_err take_u8(struct cursor *c, uint32_t *v, const char *what)
{
    const uint8_t *b = NULL;
    em_err rc = take(c, 1, &b, what);
    if (rc == EM_OK) *v = b[0];
    return rc;
}

static em_err take_u16(struct cursor *c, uint32_t *v, const char *what)
{
    const uint8_t *b = NULL;
    em_err rc = take(c, 2, &b, what);
    if (rc == EM_OK) *v = (uint32_t)b[0] | (uint32_t)b[1] << 8;
    return rc;
}

static em_err take_u32(struct cursor *c, uint32_t *v, const char *what)
{
    const uint8_t *b = NULL;
    em_err rc = take(c, 4, &b, what);
    if (rc == EM_OK)
        *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return rc;
}

/* A str: u16 length including the NUL, then the bytes; the last must be the only NUL. */
static em_err take_str(struct cursor *c, const char **out, const char *what)
{
    uint32_t n;
    const uint8_t *b = NULL;
    em_err rc;
    if ((rc = take_u16(c, &n, what)) != EM_OK) return rc;
    if (n == 0) return em_errf(c->eb, EM_E_MODEL, "%s: %s at byte %zu has length 0", c->file, what, c->off - 2);
    if ((rc = take(c, n, &b, what)) != EM_OK) return rc;
    if (b[n - 1] != 0 || memchr(b, 0, n - 1))
        return em_errf(c->eb, EM_E_MODEL, "%s: %s at byte %zu is not one NUL-terminated string",
                       c->file, what, c->off - n);
    *out = (const char *)b;
    return EM_OK;
}

static size_t dtype_size(uint32_t dt)
{
    switch (dt) {
    case EM_CT2_F32: case EM_CT2_I32: return 4;
    case EM_CT2_I16: case EM_CT2_F16: case EM_CT2_BF16: return 2;
    case EM_CT2_I8: return 1;
    default: return 0;
    }
}

const char *em_ct2_dtype_name(int dtype)
{
    static const char *names[] = {"float32", "int8", "int16", "int32", "float16", "bfloat16"};
    return dtype >= 0 && dtype <= EM_CT2_BF16 ? names[dtype] : "?";
}

static em_err take_var(struct cursor *c, struct em_ct2_var *v)
{
    em_err rc;
    uint32_t rank, dt, nb, dim;
    if ((rc = take_str(c, &v->name, "a variable name")) != EM_OK) return rc;
    if ((rc = take_u8(c, &rank, "a rank")) != EM_OK) return rc;
    if (rank > EM_CT2_MAX_RANK)
        return em_errf(c->eb, EM_E_MODEL, "%s: variable '%s' has rank %u (at most %d)", c->file,
                       v->name, rank, EM_CT2_MAX_RANK);
    v->ndim = (int)rank;
    uint64_t numel = 1;
    for (uint32_t i = 0; i < rank; i++) {
        if ((rc = take_u32(c, &dim, "a dimension")) != EM_OK) return rc;
        v->shape[i] = dim;
        numel *= dim; /* numel <= 2^32 - 1 before, so no u64 overflow */
        if (numel > UINT32_MAX)
            return em_errf(c->eb, EM_E_MODEL, "%s: variable '%s' has more than 2^32 elements",
                           c->file, v->name);
    }
    for (int i = v->ndim; i < EM_CT2_MAX_RANK; i++) v->shape[i] = 0;
    if ((rc = take_u8(c, &dt, "a dtype")) != EM_OK) return rc;
    size_t es = dtype_size(dt);
    if (!es)
        return em_errf(c->eb, EM_E_MODEL, "%s: variable '%s' has unknown dtype id %u", c->file,
                       v->name, dt);
    v->dtype = (int)dt;
    if ((rc = take_u32(c, &nb, "a byte count")) != EM_OK) return rc;
    if ((uint64_t)nb != numel * es)
        return em_errf(c->eb, EM_E_MODEL, "%s: variable '%s' has %u bytes, its shape and %s need %llu",
                       c->file, v->name, nb, em_ct2_dtype_name(v->dtype),
                       (unsigned long long)(numel * es));
    const uint8_t *d = NULL;
    if ((rc = take(c, nb, &d, v->name)) != EM_OK) return rc;
    v->data = d;
    v->nbytes = nb;
    return EM_OK;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const struct name_idx *)a)->name, ((const struct name_idx *)b)->name);
}

/* Index of the variable named name, or (size_t)-1. */
static size_t lookup(const struct em_ct2 *c, const char *name)
{
    struct name_idx key = {name, 0};
    const struct name_idx *hit = c->n ? bsearch(&key, c->by_name, c->n, sizeof key, cmp_name) : NULL;
    return hit ? hit->var : (size_t)-1;
}

void em_ct2_free(struct em_ct2 *c)
{
    if (!c) return;
    free(c->v);
    free(c->a);
    free(c->by_name);
    em_unmap_file(c->map, c->map_len);
    free(c);
}

static em_err parse_body(struct em_ct2 *c, struct cursor *cur)
{
    em_err rc;
    uint32_t n, na;
    if ((rc = take_u32(cur, &c->version, "the binary version")) != EM_OK) return rc;
    if (c->version < EM_CT2_VERSION_MIN || c->version > EM_CT2_VERSION_MAX)
        return em_errf(cur->eb, EM_E_MODEL, "%s: CTranslate2 binary version %u, this reader knows %d..%d",
                       cur->file, c->version, EM_CT2_VERSION_MIN, EM_CT2_VERSION_MAX);
    if ((rc = take_str(cur, &c->spec, "the spec name")) != EM_OK) return rc;
    if ((rc = take_u32(cur, &c->revision, "the spec revision")) != EM_OK) return rc;
    if ((rc = take_u32(cur, &n, "the variable count")) != EM_OK) return rc;
    if (n > EM_CT2_MAX_VARS)
        return em_errf(cur->eb, EM_E_MODEL, "%s: %u variables (at most %d)", cur->file, n, EM_CT2_MAX_VARS);
    /* each variable takes at least 2 + 1 + 1 + 1 + 4 bytes: a count the file cannot hold is
     * refused before anything is allocated for it */
    if ((size_t)n > (cur->len - cur->off) / 9) return truncated(cur, "the variables");
    if (!(c->v = calloc(n ? n : 1, sizeof *c->v)) || !(c->by_name = calloc(n ? n : 1, sizeof *c->by_name)))
        return em_errf(cur->eb, EM_E_NOMEM, "%s: out of memory for %u variables", cur->file, n);
    for (c->n = 0; c->n < n; c->n++)
        if ((rc = take_var(cur, &c->v[c->n])) != EM_OK) return rc;
    for (size_t i = 0; i < c->n; i++) c->by_name[i] = (struct name_idx){c->v[i].name, i};
    if (c->n) qsort(c->by_name, c->n, sizeof *c->by_name, cmp_name);
    for (size_t i = 1; i < c->n; i++)
        if (!strcmp(c->by_name[i - 1].name, c->by_name[i].name))
            return em_errf(cur->eb, EM_E_MODEL, "%s: variable '%s' appears twice", cur->file,
                           c->by_name[i].name);
    if ((rc = take_u32(cur, &na, "the alias count")) != EM_OK) return rc;
    if (na > EM_CT2_MAX_ALIASES)
        return em_errf(cur->eb, EM_E_MODEL, "%s: %u aliases (at most %d)", cur->file, na, EM_CT2_MAX_ALIASES);
    if ((size_t)na > (cur->len - cur->off) / 6) return truncated(cur, "the aliases");
    if (!(c->a = calloc(na ? na : 1, sizeof *c->a)))
        return em_errf(cur->eb, EM_E_NOMEM, "%s: out of memory for %u aliases", cur->file, na);
    for (c->na = 0; c->na < na; c->na++) {
        struct ct2_alias *a = &c->a[c->na];
        if ((rc = take_str(cur, &a->name, "an alias name")) != EM_OK ||
            (rc = take_str(cur, &a->target, "an alias target")) != EM_OK)
            return rc;
        if ((a->var = lookup(c, a->target)) == (size_t)-1)
            return em_errf(cur->eb, EM_E_MODEL, "%s: alias '%s' names a missing variable '%s'",
                           cur->file, a->name, a->target);
        if (lookup(c, a->name) != (size_t)-1)
            return em_errf(cur->eb, EM_E_MODEL, "%s: alias '%s' shadows a variable", cur->file, a->name);
    }
    if (cur->off != cur->len)
        return em_errf(cur->eb, EM_E_MODEL, "%s: %zu bytes after the aliases", cur->file,
                       cur->len - cur->off);
    return EM_OK;
}

em_err em_ct2_parse(const uint8_t *buf, size_t len, const char *file, struct em_ct2 **out,
                    struct em_errbuf *eb)
{
    *out = NULL;
    struct em_ct2 *c = calloc(1, sizeof *c);
    if (!c) return em_errf(eb, EM_E_NOMEM, "%s: out of memory", file);
    struct cursor cur = {buf, buf ? len : 0, 0, file, eb};
    em_err rc = parse_body(c, &cur);
    if (rc != EM_OK) {
        em_ct2_free(c);
        return rc;
    }
    *out = c;
    return EM_OK;
}

em_err em_ct2_open(const char *path, struct em_ct2 **out, struct em_errbuf *eb)
{
    *out = NULL;
    void *m = NULL;
    size_t len = 0;
    em_err rc = em_map_file(path, 1, "a CTranslate2 model", &m, &len, eb);
    if (rc != EM_OK) return rc;
    if ((rc = em_ct2_parse(m, len, path, out, eb)) != EM_OK) {
        em_unmap_file(m, len);
        return rc;
    }
    (*out)->map = m;
    (*out)->map_len = len;
    return EM_OK;
}

const char *em_ct2_spec(const struct em_ct2 *c) { return c->spec; }
uint32_t em_ct2_version(const struct em_ct2 *c) { return c->version; }
uint32_t em_ct2_revision(const struct em_ct2 *c) { return c->revision; }
size_t em_ct2_count(const struct em_ct2 *c) { return c->n; }
void em_ct2_get(const struct em_ct2 *c, size_t i, struct em_ct2_var *v) { *v = c->v[i]; }
size_t em_ct2_alias_count(const struct em_ct2 *c) { return c->na; }

em_err em_ct2_find(const struct em_ct2 *c, const char *name, struct em_ct2_var *v)
{
    size_t i = lookup(c, name);
    if (i == (size_t)-1)
        for (size_t k = 0; k < c->na; k++)
            if (!strcmp(c->a[k].name, name)) {
                i = c->a[k].var;
                break;
            }
    if (i == (size_t)-1) return EM_E_NOTFOUND;
    *v = c->v[i];
    return EM_OK;
}

em_err em_ct2_tensor(const struct em_ct2 *c, const char *name, int ndim, struct em_tensor *t,
                     struct em_errbuf *eb)
{
    struct em_ct2_var v;
    if (em_ct2_find(c, name, &v) != EM_OK)
        return em_errf(eb, EM_E_NOTFOUND, "model.bin: variable '%s' is missing", name);
    int dt = v.dtype == EM_CT2_F32 ? EM_DT_F32 : v.dtype == EM_CT2_F16 ? EM_DT_F16
           : v.dtype == EM_CT2_BF16 ? EM_DT_BF16 : -1;
    if (dt < 0)
        return em_errf(eb, EM_E_MODEL, "model.bin: variable '%s' is %s, a float type is needed "
                       "(int8-quantized files are not supported)", name, em_ct2_dtype_name(v.dtype));
    if (ndim >= 0 && v.ndim != ndim)
        return em_errf(eb, EM_E_MODEL, "model.bin: variable '%s' has %d dimensions, expected %d",
                       name, v.ndim, ndim);
    memset(t, 0, sizeof *t);
    t->name = v.name;
    t->dtype = dt;
    t->ndim = v.ndim;
    for (int i = 0; i < v.ndim; i++) t->shape[i] = v.shape[i];
    t->data = v.data;
    t->nbytes = v.nbytes;
    return EM_OK;
}

em_err em_ct2_int(const struct em_ct2 *c, const char *name, long *out, struct em_errbuf *eb)
{
    struct em_ct2_var v;
    if (em_ct2_find(c, name, &v) != EM_OK)
        return em_errf(eb, EM_E_NOTFOUND, "model.bin: variable '%s' is missing", name);
    const uint8_t *p = v.data;
    if (v.ndim != 0 || (v.dtype != EM_CT2_I8 && v.dtype != EM_CT2_I16 && v.dtype != EM_CT2_I32))
        return em_errf(eb, EM_E_MODEL, "model.bin: variable '%s' is not an integer scalar", name);
    if (v.dtype == EM_CT2_I8) *out = (int8_t)p[0];
    else if (v.dtype == EM_CT2_I16) *out = (int16_t)(uint16_t)(p[0] | p[1] << 8);
    else *out = (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
    return EM_OK;
}
