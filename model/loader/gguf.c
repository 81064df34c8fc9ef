/* model/loader/gguf.c - GGUF v3 header parser (no I/O) and mmap reader (the writer is
 * gguf_write.c).
 * Format: see gguf.h. ref: ggml-org/ggml:src/gguf.cpp (gguf_init_from_file_impl) for the
 * checks a reader owes a file it did not write. */
#include "model/loader/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/loader/mapfile.h"
#include "model/kernels/quant.h"

/* ---- types ------------------------------------------------------------------------------- */

static const uint8_t scalar_size[EM_GGUF_TYPE_COUNT] = {
    [EM_GGUF_U8] = 1,  [EM_GGUF_I8] = 1,  [EM_GGUF_U16] = 2, [EM_GGUF_I16] = 2,
    [EM_GGUF_U32] = 4, [EM_GGUF_I32] = 4, [EM_GGUF_F32] = 4, [EM_GGUF_BOOL] = 1,
    [EM_GGUF_U64] = 8, [EM_GGUF_I64] = 8, [EM_GGUF_F64] = 8,
};

static int is_scalar(uint32_t t) { return t < EM_GGUF_TYPE_COUNT && scalar_size[t] != 0; }

size_t em_gguf_type_size(int type)
{
    return type >= 0 && is_scalar((uint32_t)type) ? scalar_size[type] : 0;
}

int em_gguf_ggml_to_wtype(uint32_t t)
{
    switch (t) {
    case EM_GGML_F32: return EM_WT_F32;
    case EM_GGML_F16: return EM_WT_F16;
    case EM_GGML_BF16: return EM_WT_BF16;
    case EM_GGML_Q8_0: return EM_WT_Q8_0;
    case EM_GGML_Q4_0: return EM_WT_Q4_0;
    default: return -1;
    }
}

int em_gguf_wtype_to_ggml(int w)
{
    switch (w) {
    case EM_WT_F32: return EM_GGML_F32;
    case EM_WT_F16: return EM_GGML_F16;
    case EM_WT_BF16: return EM_GGML_BF16;
    case EM_WT_Q8_0: return EM_GGML_Q8_0;
    case EM_WT_Q4_0: return EM_GGML_Q4_0;
    default: return -1;
    }
}

static uint64_t le_get(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Fills the widened fields of v from a scalar of type t at p. */
static void widen_scalar(struct em_gguf_value *v, uint32_t t, const uint8_t *p)
{
    uint64_t raw = le_get(p, scalar_size[t]);
    switch (t) {
    case EM_GGUF_I8: v->i = (int8_t)raw; break;
    case EM_GGUF_I16: v->i = (int16_t)raw; break;
    case EM_GGUF_I32: v->i = (int32_t)raw; break;
    case EM_GGUF_I64: memcpy(&v->i, &raw, 8); break;
    case EM_GGUF_F32: {
        uint32_t u = (uint32_t)raw;
        float f;
        memcpy(&f, &u, 4);
        v->f = f;
        return;
    }
    case EM_GGUF_F64: memcpy(&v->f, &raw, 8); return;
    default: /* unsigned, bool */
        v->u = raw;
        v->i = raw > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)raw;
        return;
    }
    v->u = v->i < 0 ? 0 : (uint64_t)v->i;
}

/* ---- parsed file ------------------------------------------------------------------------- */

struct kv {
    char *key;
    struct em_gguf_value v;
    struct em_gguf_str *strs; /* owned copy of v.strs */
};

struct em_gguf {
    void *map; /* em_gguf_open's mapping, or NULL */
    size_t map_len;
    uint32_t version, alignment;
    struct kv *kv;
    size_t n_kv;
    size_t *kv_sorted;
    struct em_gguf_tensor *t;
    char **names;
    size_t n_t;
    size_t *t_sorted;
};

void em_gguf_close(struct em_gguf *g)
{
    if (!g) return;
    for (size_t i = 0; i < g->n_kv; i++) {
        free(g->kv[i].key);
        free(g->kv[i].strs);
    }
    for (size_t i = 0; i < g->n_t; i++) free(g->names[i]);
    free(g->kv);
    free(g->kv_sorted);
    free(g->t);
    free(g->names);
    free(g->t_sorted);
    em_unmap_file(g->map, g->map_len);
    free(g);
}

struct rd {
    const uint8_t *p;
    size_t len, off;
    const char *file;
    struct em_errbuf *eb;
};

static em_err trunc_err(struct rd *r, const char *what)
{
    return em_errf(r->eb, EM_E_MODEL, "%s: truncated at byte %zu of %zu reading %s", r->file,
                   r->off, r->len, what);
}

static em_err rd_int(struct rd *r, int n, uint64_t *v, const char *what)
{
    *v = 0;
    if ((size_t)n > r->len - r->off) return trunc_err(r, what);
    *v = le_get(r->p + r->off, n);
    r->off += (size_t)n;
    return EM_OK;
}

static em_err rd_str(struct rd *r, uint64_t max, struct em_gguf_str *s, const char *what)
{
    uint64_t n = 0;
    em_err rc = rd_int(r, 8, &n, what);
    if (rc != EM_OK) return rc;
    if (n > max)
        return em_errf(r->eb, EM_E_MODEL, "%s: %s at byte %zu has length %llu (limit %llu)",
                       r->file, what, r->off - 8, (unsigned long long)n, (unsigned long long)max);
    if (n > r->len - r->off)
        return em_errf(r->eb, EM_E_MODEL, "%s: %s at byte %zu has length %llu, past the end of "
                       "the %zu-byte file", r->file, what, r->off - 8, (unsigned long long)n,
                       r->len);
    s->s = (const char *)r->p + r->off;
    s->len = n;
    r->off += (size_t)n;
    return EM_OK;
}

static char *dup_str(struct em_gguf_str s)
{
    char *c = malloc((size_t)s.len + 1);
    if (!c) return NULL;
    memcpy(c, s.s, (size_t)s.len);
    c[s.len] = 0;
    return c;
}

static em_err parse_value(struct rd *r, struct kv *e, uint32_t type)
{
    struct em_gguf_value *v = &e->v;
    em_err rc;
    v->type = (int)type;
    if (is_scalar(type)) {
        if (scalar_size[type] > r->len - r->off) return trunc_err(r, e->key);
        widen_scalar(v, type, r->p + r->off);
        r->off += scalar_size[type];
        return EM_OK;
    }
    if (type == EM_GGUF_STR) return rd_str(r, EM_GGUF_MAX_STRING, &v->str, e->key);
    if (type != EM_GGUF_ARR)
        return em_errf(r->eb, EM_E_MODEL, "%s: key '%s' has unknown value type %u", r->file,
                       e->key, type);
    uint64_t et = 0, n = 0;
    if ((rc = rd_int(r, 4, &et, e->key)) != EM_OK || (rc = rd_int(r, 8, &n, e->key)) != EM_OK)
        return rc;
    if (n > EM_GGUF_MAX_ARRAY)
        return em_errf(r->eb, EM_E_MODEL, "%s: key '%s': array of %llu elements (limit %u)",
                       r->file, e->key, (unsigned long long)n, EM_GGUF_MAX_ARRAY);
    v->arr_type = (int)et;
    v->n = n;
    if (is_scalar((uint32_t)et)) {
        size_t sz = scalar_size[et];
        if (n > (r->len - r->off) / sz)
            return em_errf(r->eb, EM_E_MODEL, "%s: key '%s': array of %llu elements runs past "
                           "the end of the file", r->file, e->key, (unsigned long long)n);
        v->arr = r->p + r->off;
        r->off += (size_t)n * sz;
        return EM_OK;
    }
    if (et != EM_GGUF_STR)
        return em_errf(r->eb, EM_E_MODEL, "%s: key '%s': array element type %llu is not "
                       "supported (nested arrays are refused)", r->file, e->key,
                       (unsigned long long)et);
    if (n > (r->len - r->off) / 8) /* every string takes at least its u64 length */
        return em_errf(r->eb, EM_E_MODEL, "%s: key '%s': array of %llu strings runs past the "
                       "end of the file", r->file, e->key, (unsigned long long)n);
    if (!(e->strs = malloc((n ? (size_t)n : 1) * sizeof *e->strs))) return EM_E_NOMEM;
    for (uint64_t i = 0; i < n; i++)
        if ((rc = rd_str(r, EM_GGUF_MAX_STRING, &e->strs[i], e->key)) != EM_OK) return rc;
    v->strs = e->strs;
    return EM_OK;
}

static em_err parse_kvs(struct em_gguf *g, struct rd *r, uint64_t n_kv)
{
    em_err rc;
    if (!(g->kv = calloc(n_kv ? (size_t)n_kv : 1, sizeof *g->kv))) return EM_E_NOMEM;
    for (uint64_t i = 0; i < n_kv; i++) {
        struct em_gguf_str k;
        uint64_t type = 0;
        if ((rc = rd_str(r, EM_GGUF_MAX_KEY, &k, "a metadata key")) != EM_OK) return rc;
        if (k.len == 0 || memchr(k.s, 0, (size_t)k.len))
            return em_errf(r->eb, EM_E_MODEL, "%s: metadata key %llu is empty or holds a NUL",
                           r->file, (unsigned long long)i);
        struct kv *e = &g->kv[g->n_kv++];
        if (!(e->key = dup_str(k))) return EM_E_NOMEM;
        if ((rc = rd_int(r, 4, &type, e->key)) != EM_OK) return rc;
        if ((rc = parse_value(r, e, (uint32_t)type)) != EM_OK) return rc;
    }
    return EM_OK;
}

/* Bytes of a tensor of ggml type t and dims ne; 0 with *why set when invalid. */
static uint64_t tensor_bytes(uint32_t t, int nd, const int64_t *ne, const char **why)
{
    uint64_t blk, per;
    switch (t) {
    case EM_GGML_F32: blk = 1, per = 4; break;
    case EM_GGML_F16:
    case EM_GGML_BF16: blk = 1, per = 2; break;
    case EM_GGML_Q8_0: blk = EM_QK, per = sizeof(struct em_block_q8_0); break;
    case EM_GGML_Q4_0: blk = EM_QK, per = sizeof(struct em_block_q4_0); break;
    default: *why = "type is not F32, F16, BF16, Q8_0 or Q4_0"; return 0;
    }
    if ((uint64_t)ne[0] % blk) {
        *why = "ne[0] is not a multiple of the 32-weight block";
        return 0;
    }
    uint64_t n = (uint64_t)ne[0] / blk * per;
    for (int d = 1; d < nd; d++) {
        if ((uint64_t)ne[d] > (uint64_t)INT64_MAX / n) {
            *why = "size overflows";
            return 0;
        }
        n *= (uint64_t)ne[d];
    }
    return n;
}

uint64_t em_gguf_tensor_nbytes(uint32_t ggml_type, int ndim, const int64_t *ne)
{
    const char *why;
    if (ndim < 1 || ndim > EM_GGUF_MAX_DIMS) return 0;
    for (int d = 0; d < ndim; d++)
        if (ne[d] < 1) return 0;
    return tensor_bytes(ggml_type, ndim, ne, &why);
}

static em_err parse_tinfo(struct em_gguf *g, struct rd *r, uint64_t i)
{
    struct em_gguf_tensor *t = &g->t[i];
    struct em_gguf_str name;
    uint64_t nd = 0, v = 0;
    em_err rc;
    if ((rc = rd_str(r, EM_GGUF_MAX_NAME - 1, &name, "a tensor name")) != EM_OK) return rc;
    if (name.len == 0 || memchr(name.s, 0, (size_t)name.len))
        return em_errf(r->eb, EM_E_MODEL, "%s: tensor %llu: name is empty or holds a NUL",
                       r->file, (unsigned long long)i);
    if (!(g->names[i] = dup_str(name))) return EM_E_NOMEM;
    g->n_t = (size_t)i + 1;
    t->name = g->names[i];
    if ((rc = rd_int(r, 4, &nd, t->name)) != EM_OK) return rc;
    if (nd < 1 || nd > EM_GGUF_MAX_DIMS)
        return em_errf(r->eb, EM_E_MODEL, "%s: tensor '%s': %llu dims (1..%d)", r->file, t->name,
                       (unsigned long long)nd, EM_GGUF_MAX_DIMS);
    t->ndim = (int)nd;
    for (int d = 0; d < t->ndim; d++) {
        if ((rc = rd_int(r, 8, &v, t->name)) != EM_OK) return rc;
        if (v < 1 || v > (uint64_t)INT64_MAX)
            return em_errf(r->eb, EM_E_MODEL, "%s: tensor '%s': ne[%d] = %llu", r->file,
                           t->name, d, (unsigned long long)v);
        t->ne[d] = (int64_t)v;
    }
    if ((rc = rd_int(r, 4, &v, t->name)) != EM_OK) return rc;
    t->ggml_type = (uint32_t)v;
    if ((rc = rd_int(r, 8, &t->offset, t->name)) != EM_OK) return rc;
    const char *why = NULL;
    if (!(t->nbytes = tensor_bytes(t->ggml_type, t->ndim, t->ne, &why)))
        return em_errf(r->eb, EM_E_MODEL, "%s: tensor '%s' (ggml type %u): %s", r->file, t->name,
                       t->ggml_type, why);
    return EM_OK;
}

static int cmp_kv(const void *a, const void *b, void *ctx)
{
    const struct em_gguf *g = ctx;
    return strcmp(g->kv[*(const size_t *)a].key, g->kv[*(const size_t *)b].key);
}
static int cmp_t(const void *a, const void *b, void *ctx)
{
    const struct em_gguf *g = ctx;
    return strcmp(g->t[*(const size_t *)a].name, g->t[*(const size_t *)b].name);
}
static int cmp_off(const void *a, const void *b, void *ctx)
{
    const struct em_gguf *g = ctx;
    uint64_t x = g->t[*(const size_t *)a].offset, y = g->t[*(const size_t *)b].offset;
    return x < y ? -1 : x > y;
}

static size_t *sorted_index(size_t n, int (*cmp)(const void *, const void *, void *),
                            struct em_gguf *g)
{
    size_t *ix = malloc((n ? n : 1) * sizeof *ix);
    if (!ix) return NULL;
    for (size_t i = 0; i < n; i++) ix[i] = i;
    qsort_r(ix, n, sizeof *ix, cmp, g);
    return ix;
}

static em_err check_alignment(struct em_gguf *g, const char *file, struct em_errbuf *eb)
{
    g->alignment = EM_GGUF_DEFAULT_ALIGNMENT;
    const struct em_gguf_value *a = em_gguf_find(g, "general.alignment");
    if (!a) return EM_OK;
    if (a->type != EM_GGUF_U32 || a->u == 0 || (a->u & (a->u - 1)) || a->u > EM_GGUF_MAX_ALIGNMENT)
        return em_errf(eb, EM_E_MODEL, "%s: general.alignment must be a u32 power of two up to "
                       "%u", file, EM_GGUF_MAX_ALIGNMENT);
    g->alignment = (uint32_t)a->u;
    return EM_OK;
}

/* Places every tensor in the data section: aligned, inside, no two overlapping. */
static em_err place_tensors(struct em_gguf *g, const uint8_t *buf, size_t len, size_t info_end,
                            const char *file, struct em_errbuf *eb)
{
    size_t a = g->alignment, start = info_end;
    if (g->n_t == 0) return EM_OK; /* no data section: the padding may be absent */
    if (start % a) {
        if (a - start % a > len - start)
            return em_errf(eb, EM_E_MODEL, "%s: truncated in the padding before the data "
                           "section (%zu bytes)", file, len);
        start += a - start % a;
    }
    uint64_t size = len - start;
    for (size_t i = 0; i < g->n_t; i++) {
        struct em_gguf_tensor *t = &g->t[i];
        if (t->offset % a)
            return em_errf(eb, EM_E_MODEL, "%s: tensor '%s': offset %llu is not a multiple of "
                           "the alignment %zu", file, t->name, (unsigned long long)t->offset, a);
        if (t->offset > size || t->nbytes > size - t->offset)
            return em_errf(eb, EM_E_MODEL, "%s: tensor '%s': data [%llu, +%llu) outside the "
                           "%llu-byte data section (truncated file?)", file, t->name,
                           (unsigned long long)t->offset, (unsigned long long)t->nbytes,
                           (unsigned long long)size);
        t->data = buf + start + t->offset;
    }
    size_t *ord = sorted_index(g->n_t, cmp_off, g);
    if (!ord) return EM_E_NOMEM;
    em_err rc = EM_OK;
    for (size_t i = 1; i < g->n_t && rc == EM_OK; i++) {
        const struct em_gguf_tensor *p = &g->t[ord[i - 1]], *q = &g->t[ord[i]];
        if (q->offset < p->offset + p->nbytes)
            rc = em_errf(eb, EM_E_MODEL, "%s: tensors '%s' and '%s' overlap", file, p->name,
                         q->name);
    }
    free(ord);
    return rc;
}

static em_err build_indices(struct em_gguf *g, const char *file, struct em_errbuf *eb)
{
    if (!(g->kv_sorted = sorted_index(g->n_kv, cmp_kv, g))) return EM_E_NOMEM;
    for (size_t i = 1; i < g->n_kv; i++)
        if (strcmp(g->kv[g->kv_sorted[i - 1]].key, g->kv[g->kv_sorted[i]].key) == 0)
            return em_errf(eb, EM_E_MODEL, "%s: duplicate key '%s'", file,
                           g->kv[g->kv_sorted[i]].key);
    if (!(g->t_sorted = sorted_index(g->n_t, cmp_t, g))) return EM_E_NOMEM;
    for (size_t i = 1; i < g->n_t; i++)
        if (strcmp(g->t[g->t_sorted[i - 1]].name, g->t[g->t_sorted[i]].name) == 0)
            return em_errf(eb, EM_E_MODEL, "%s: duplicate tensor '%s'", file,
                           g->t[g->t_sorted[i]].name);
    return EM_OK;
}

em_err em_gguf_parse(const uint8_t *buf, size_t len, const char *file, struct em_gguf **out,
                     struct em_errbuf *eb)
{
    *out = NULL;
    struct rd r = {buf, len, 0, file, eb};
    uint64_t ver = 0, n_t = 0, n_kv = 0;
    em_err rc;
    if (len < 4 || memcmp(buf, EM_GGUF_MAGIC, 4) != 0)
        return em_errf(eb, EM_E_MODEL, "%s: not a GGUF file (bad magic)", file);
    r.off = 4;
    if ((rc = rd_int(&r, 4, &ver, "the version")) != EM_OK) return rc;
    if (ver != EM_GGUF_VERSION)
        return em_errf(eb, EM_E_MODEL, "%s: GGUF version %llu (earmark reads version %d)", file,
                       (unsigned long long)ver, EM_GGUF_VERSION);
    if ((rc = rd_int(&r, 8, &n_t, "the tensor count")) != EM_OK ||
        (rc = rd_int(&r, 8, &n_kv, "the metadata count")) != EM_OK)
        return rc;
    /* each pair takes >= 13 bytes (key length, type, one byte), each tensor info >= 32 */
    if (n_t > EM_GGUF_MAX_TENSORS || n_t > (len - r.off) / 32)
        return em_errf(eb, EM_E_MODEL, "%s: %llu tensors (limit %d, or more than the file can "
                       "hold)", file, (unsigned long long)n_t, EM_GGUF_MAX_TENSORS);
    if (n_kv > EM_GGUF_MAX_KV || n_kv > (len - r.off) / 13)
        return em_errf(eb, EM_E_MODEL, "%s: %llu metadata pairs (limit %d, or more than the file "
                       "can hold)", file, (unsigned long long)n_kv, EM_GGUF_MAX_KV);
    struct em_gguf *g = calloc(1, sizeof *g);
    if (!g) return EM_E_NOMEM;
    rc = EM_E_NOMEM;
    g->version = (uint32_t)ver;
    if ((rc = parse_kvs(g, &r, n_kv)) != EM_OK) goto fail;
    rc = EM_E_NOMEM;
    g->t = calloc(n_t ? (size_t)n_t : 1, sizeof *g->t);
    g->names = calloc(n_t ? (size_t)n_t : 1, sizeof *g->names);
    if (!g->t || !g->names) goto fail;
    for (uint64_t i = 0; i < n_t; i++)
        if ((rc = parse_tinfo(g, &r, i)) != EM_OK) goto fail;
    g->n_t = (size_t)n_t;
    if ((rc = build_indices(g, file, eb)) != EM_OK) goto fail;
    if ((rc = check_alignment(g, file, eb)) != EM_OK) goto fail;
    if ((rc = place_tensors(g, buf, len, r.off, file, eb)) != EM_OK) goto fail;
    *out = g;
    return EM_OK;
fail:
    em_gguf_close(g);
    return rc;
}

em_err em_gguf_open(const char *path, struct em_gguf **out, struct em_errbuf *eb)
{
    *out = NULL;
    void *m = NULL;
    size_t len = 0;
    em_err rc = em_map_file(path, 24, "a GGUF header", &m, &len, eb);
    if (rc != EM_OK) return rc == EM_E_NOTFOUND ? EM_E_IO : rc; /* as before: a missing file is I/O */
    if ((rc = em_gguf_parse(m, len, path, out, eb)) != EM_OK) {
        em_unmap_file(m, len);
        return rc;
    }
    (*out)->map = m;
    (*out)->map_len = len;
    return EM_OK;
}

/* ---- accessors --------------------------------------------------------------------------- */

uint32_t em_gguf_version(const struct em_gguf *g) { return g->version; }
uint32_t em_gguf_alignment(const struct em_gguf *g) { return g->alignment; }
size_t em_gguf_n_kv(const struct em_gguf *g) { return g->n_kv; }
const char *em_gguf_key(const struct em_gguf *g, size_t i) { return g->kv[i].key; }
const struct em_gguf_value *em_gguf_value(const struct em_gguf *g, size_t i) { return &g->kv[i].v; }
size_t em_gguf_n_tensors(const struct em_gguf *g) { return g->n_t; }
const struct em_gguf_tensor *em_gguf_tensor_at(const struct em_gguf *g, size_t i) { return &g->t[i]; }

const struct em_gguf_value *em_gguf_find(const struct em_gguf *g, const char *key)
{
    size_t lo = 0, hi = g->n_kv;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(key, g->kv[g->kv_sorted[mid]].key);
        if (c == 0) return &g->kv[g->kv_sorted[mid]].v;
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

const struct em_gguf_tensor *em_gguf_find_tensor(const struct em_gguf *g, const char *name)
{
    size_t lo = 0, hi = g->n_t;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, g->t[g->t_sorted[mid]].name);
        if (c == 0) return &g->t[g->t_sorted[mid]];
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

static int is_int_type(int t)
{
    return t == EM_GGUF_U8 || t == EM_GGUF_I8 || t == EM_GGUF_U16 || t == EM_GGUF_I16 ||
           t == EM_GGUF_U32 || t == EM_GGUF_I32 || t == EM_GGUF_U64 || t == EM_GGUF_I64;
}

static em_err lookup(const struct em_gguf *g, const char *key, const struct em_gguf_value **v,
                     struct em_errbuf *eb)
{
    if ((*v = em_gguf_find(g, key))) return EM_OK;
    return em_errf(eb, EM_E_NOTFOUND, "gguf: no key '%s'", key);
}

em_err em_gguf_get_int(const struct em_gguf *g, const char *key, int64_t lo, int64_t hi,
                       int64_t *out, struct em_errbuf *eb)
{
    const struct em_gguf_value *v;
    em_err rc = lookup(g, key, &v, eb);
    if (rc != EM_OK) return rc;
    int neg_ok = v->type == EM_GGUF_I8 || v->type == EM_GGUF_I16 || v->type == EM_GGUF_I32 ||
                 v->type == EM_GGUF_I64;
    if (!is_int_type(v->type) || (!neg_ok && v->u > (uint64_t)INT64_MAX) || v->i < lo || v->i > hi)
        return em_errf(eb, EM_E_MODEL, "gguf: key '%s' must be an integer in [%lld, %lld]", key,
                       (long long)lo, (long long)hi);
    *out = v->i;
    return EM_OK;
}

em_err em_gguf_get_f64(const struct em_gguf *g, const char *key, double *out,
                       struct em_errbuf *eb)
{
    const struct em_gguf_value *v;
    em_err rc = lookup(g, key, &v, eb);
    if (rc != EM_OK) return rc;
    if (v->type != EM_GGUF_F32 && v->type != EM_GGUF_F64)
        return em_errf(eb, EM_E_MODEL, "gguf: key '%s' must be a float", key);
    *out = v->f;
    return EM_OK;
}

em_err em_gguf_get_bool(const struct em_gguf *g, const char *key, int *out, struct em_errbuf *eb)
{
    const struct em_gguf_value *v;
    em_err rc = lookup(g, key, &v, eb);
    if (rc != EM_OK) return rc;
    if (v->type != EM_GGUF_BOOL || v->u > 1)
        return em_errf(eb, EM_E_MODEL, "gguf: key '%s' must be a bool", key);
    *out = (int)v->u;
    return EM_OK;
}

em_err em_gguf_get_str(const struct em_gguf *g, const char *key, struct em_gguf_str *out,
                       struct em_errbuf *eb)
{
    const struct em_gguf_value *v;
    em_err rc = lookup(g, key, &v, eb);
    if (rc != EM_OK) return rc;
    if (v->type != EM_GGUF_STR) return em_errf(eb, EM_E_MODEL, "gguf: key '%s' must be a string", key);
    *out = v->str;
    return EM_OK;
}

int64_t em_gguf_arr_int(const struct em_gguf_value *v, uint64_t i)
{
    if (v->type != EM_GGUF_ARR || !is_int_type(v->arr_type) || i >= v->n) return 0;
    struct em_gguf_value e = {0};
    widen_scalar(&e, (uint32_t)v->arr_type, v->arr + i * scalar_size[v->arr_type]);
    return e.i;
}

double em_gguf_arr_f64(const struct em_gguf_value *v, uint64_t i)
{
    if (v->type != EM_GGUF_ARR || (v->arr_type != EM_GGUF_F32 && v->arr_type != EM_GGUF_F64) ||
        i >= v->n)
        return 0;
    struct em_gguf_value e = {0};
    widen_scalar(&e, (uint32_t)v->arr_type, v->arr + i * scalar_size[v->arr_type]);
    return e.f;
}

void em_gguf_tensor_view(const struct em_gguf_tensor *gt, struct em_tensor *t)
{
    memset(t, 0, sizeof *t);
    t->name = gt->name;
    t->dtype = em_gguf_ggml_to_wtype(gt->ggml_type);
    t->ndim = gt->ndim;
    for (int d = 0; d < gt->ndim; d++) t->shape[d] = gt->ne[gt->ndim - 1 - d];
    t->data = gt->data;
    t->nbytes = (size_t)gt->nbytes;
}
