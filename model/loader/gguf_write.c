/* model/loader/gguf_write.c - the GGUF v3 writer of gguf.h: metadata pairs and tensor infos
 * are serialized into memory as they are added; em_gguf_writer_write streams header, pairs,
 * infos, padding and each tensor's data (asked from the caller, chunk by chunk) to a
 * temporary file and renames it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/loader/gguf.h"

static void le_put(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

struct wbuf {
    uint8_t *p;
    size_t len, cap;
};

struct em_gguf_writer {
    uint32_t alignment;
    struct wbuf kv, ti;   /* serialized metadata pairs and tensor infos */
    char **keys, **names; /* for the uniqueness checks */
    size_t n_kv, n_t, cap_kv, cap_t;
    uint64_t *off, *nbytes; /* per tensor, from the data section start */
    uint64_t data_end;
};

static em_err wb_put(struct wbuf *b, const void *p, size_t n)
{
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2) return EM_E_NOMEM;
            cap *= 2;
        }
        uint8_t *q = realloc(b->p, cap);
        if (!q) return EM_E_NOMEM;
        b->p = q;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, p, n);
    b->len += n;
    return EM_OK;
}

static em_err wb_int(struct wbuf *b, uint64_t v, int n)
{
    uint8_t tmp[8];
    le_put(tmp, v, n);
    return wb_put(b, tmp, (size_t)n);
}

static em_err wb_str(struct wbuf *b, const char *s, uint64_t n)
{
    em_err rc = wb_int(b, n, 8);
    return rc == EM_OK ? wb_put(b, s, (size_t)n) : rc;
}

em_err em_gguf_writer_new(uint32_t alignment, struct em_gguf_writer **out)
{
    *out = NULL;
    if (alignment == 0 || (alignment & (alignment - 1)) || alignment > EM_GGUF_MAX_ALIGNMENT)
        return EM_E_ARG;
    struct em_gguf_writer *w = calloc(1, sizeof *w);
    if (!w) return EM_E_NOMEM;
    w->alignment = alignment;
    em_err rc = em_gguf_set_u32(w, "general.alignment", alignment);
    if (rc != EM_OK) {
        em_gguf_writer_free(w);
        return rc;
    }
    *out = w;
    return EM_OK;
}

void em_gguf_writer_free(struct em_gguf_writer *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
    for (size_t i = 0; i < w->n_t; i++) free(w->names[i]);
    free(w->keys);
    free(w->names);
    free(w->off);
    free(w->nbytes);
    free(w->kv.p);
    free(w->ti.p);
    free(w);
}

size_t em_gguf_writer_n_tensors(const struct em_gguf_writer *w) { return w->n_t; }
uint64_t em_gguf_writer_tensor_bytes(const struct em_gguf_writer *w, size_t i) { return w->nbytes[i]; }

/* Registers a new unique name in list (growing it). */
static em_err add_name(char ***list, size_t *n, size_t *cap, const char *name, size_t max)
{
    size_t len = strlen(name);
    if (len == 0 || len >= max) return EM_E_ARG;
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*list)[i], name) == 0) return EM_E_ARG;
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        char **l = realloc(*list, c * sizeof *l);
        if (!l) return EM_E_NOMEM;
        *list = l;
        *cap = c;
    }
    if (!((*list)[*n] = strdup(name))) return EM_E_NOMEM;
    (*n)++;
    return EM_OK;
}

/* Key and type header of a new pair. */
static em_err kv_begin(struct em_gguf_writer *w, const char *key, int type)
{
    if (w->n_kv >= EM_GGUF_MAX_KV) return EM_E_ARG;
    em_err rc = add_name(&w->keys, &w->n_kv, &w->cap_kv, key, EM_GGUF_MAX_KEY + 1);
    if (rc == EM_OK) rc = wb_str(&w->kv, key, strlen(key));
    if (rc == EM_OK) rc = wb_int(&w->kv, (uint64_t)type, 4);
    return rc;
}

em_err em_gguf_set_scalar(struct em_gguf_writer *w, const char *key, int type, const void *le)
{
    if (type < 0 || !em_gguf_type_size(type)) return EM_E_ARG;
    em_err rc = kv_begin(w, key, type);
    return rc == EM_OK ? wb_put(&w->kv, le, em_gguf_type_size(type)) : rc;
}

static em_err set_int(struct em_gguf_writer *w, const char *key, int type, uint64_t v)
{
    uint8_t tmp[8];
    le_put(tmp, v, em_gguf_type_size(type));
    return em_gguf_set_scalar(w, key, type, tmp);
}

em_err em_gguf_set_u32(struct em_gguf_writer *w, const char *key, uint32_t v)
{
    return set_int(w, key, EM_GGUF_U32, v);
}
em_err em_gguf_set_i32(struct em_gguf_writer *w, const char *key, int32_t v)
{
    return set_int(w, key, EM_GGUF_I32, (uint32_t)v);
}
em_err em_gguf_set_u64(struct em_gguf_writer *w, const char *key, uint64_t v)
{
    return set_int(w, key, EM_GGUF_U64, v);
}
em_err em_gguf_set_bool(struct em_gguf_writer *w, const char *key, int v)
{
    return set_int(w, key, EM_GGUF_BOOL, v ? 1 : 0);
}
em_err em_gguf_set_f32(struct em_gguf_writer *w, const char *key, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    return set_int(w, key, EM_GGUF_F32, u);
}
em_err em_gguf_set_f64(struct em_gguf_writer *w, const char *key, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    return set_int(w, key, EM_GGUF_F64, u);
}

em_err em_gguf_set_str(struct em_gguf_writer *w, const char *key, const char *s, size_t len)
{
    if (len > EM_GGUF_MAX_STRING) return EM_E_ARG;
    em_err rc = kv_begin(w, key, EM_GGUF_STR);
    return rc == EM_OK ? wb_str(&w->kv, s, len) : rc;
}

em_err em_gguf_set_arr(struct em_gguf_writer *w, const char *key, int elem_type,
                       const void *data, uint64_t n)
{
    if (elem_type < 0 || !em_gguf_type_size(elem_type) || n > EM_GGUF_MAX_ARRAY) return EM_E_ARG;
    em_err rc = kv_begin(w, key, EM_GGUF_ARR);
    if (rc == EM_OK) rc = wb_int(&w->kv, (uint64_t)elem_type, 4);
    if (rc == EM_OK) rc = wb_int(&w->kv, n, 8);
    if (rc == EM_OK) rc = wb_put(&w->kv, data, (size_t)n * em_gguf_type_size(elem_type));
    return rc;
}

em_err em_gguf_set_arr_str(struct em_gguf_writer *w, const char *key,
                           const struct em_gguf_str *strs, uint64_t n)
{
    if (n > EM_GGUF_MAX_ARRAY) return EM_E_ARG;
    for (uint64_t i = 0; i < n; i++)
        if (strs[i].len > EM_GGUF_MAX_STRING) return EM_E_ARG;
    em_err rc = kv_begin(w, key, EM_GGUF_ARR);
    if (rc == EM_OK) rc = wb_int(&w->kv, EM_GGUF_STR, 4);
    if (rc == EM_OK) rc = wb_int(&w->kv, n, 8);
    for (uint64_t i = 0; i < n && rc == EM_OK; i++) rc = wb_str(&w->kv, strs[i].s, strs[i].len);
    return rc;
}

em_err em_gguf_add_tensor(struct em_gguf_writer *w, const char *name, uint32_t ggml_type,
                          int ndim, const int64_t *shape)
{
    if (ndim < 1 || ndim > EM_GGUF_MAX_DIMS || w->n_t >= EM_GGUF_MAX_TENSORS) return EM_E_ARG;
    int64_t ne[EM_GGUF_MAX_DIMS];
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 1) return EM_E_ARG;
        ne[d] = shape[ndim - 1 - d];
    }
    uint64_t nb = em_gguf_tensor_nbytes(ggml_type, ndim, ne);
    if (!nb) return EM_E_ARG;
    size_t cap = w->cap_t;
    em_err rc = add_name(&w->names, &w->n_t, &w->cap_t, name, EM_GGUF_MAX_NAME);
    if (rc != EM_OK) return rc;
    if (w->cap_t != cap) {
        uint64_t *o = realloc(w->off, w->cap_t * sizeof *o);
        if (o) w->off = o;
        uint64_t *b = o ? realloc(w->nbytes, w->cap_t * sizeof *b) : NULL;
        if (b) w->nbytes = b;
        if (!o || !b) {
            free(w->names[--w->n_t]);
            w->cap_t = cap; /* the arrays keep their old size; the list may be larger */
            return EM_E_NOMEM;
        }
    }
    uint64_t a = w->alignment, off = (w->data_end + a - 1) / a * a;
    w->off[w->n_t - 1] = off;
    w->nbytes[w->n_t - 1] = nb;
    w->data_end = off + nb;
    rc = wb_str(&w->ti, name, strlen(name));
    if (rc == EM_OK) rc = wb_int(&w->ti, (uint64_t)ndim, 4);
    for (int d = 0; d < ndim && rc == EM_OK; d++) rc = wb_int(&w->ti, (uint64_t)ne[d], 8);
    if (rc == EM_OK) rc = wb_int(&w->ti, ggml_type, 4);
    if (rc == EM_OK) rc = wb_int(&w->ti, off, 8);
    return rc;
}

static em_err put(FILE *f, const void *p, size_t n, const char *path, struct em_errbuf *eb)
{
    if (n && fwrite(p, 1, n, f) != n)
        return em_errf(eb, EM_E_IO, "%s: write: %s", path, strerror(errno));
    return EM_OK;
}

static em_err pad(FILE *f, uint64_t *pos, uint64_t to, const char *path, struct em_errbuf *eb)
{
    static const uint8_t zeros[4096];
    while (*pos < to) {
        size_t n = to - *pos > sizeof zeros ? sizeof zeros : (size_t)(to - *pos);
        em_err rc = put(f, zeros, n, path, eb);
        if (rc != EM_OK) return rc;
        *pos += n;
    }
    return EM_OK;
}

struct em_gguf_sink {
    FILE *f;
    const char *path;
    uint64_t left; /* bytes the current tensor still owes */
    const char *name;
    struct em_errbuf *eb;
};

em_err em_gguf_sink_write(struct em_gguf_sink *s, const void *data, size_t n)
{
    if (n > s->left)
        return em_errf(s->eb, EM_E_ARG, "%s: tensor '%s': %zu bytes written past its size",
                       s->path, s->name, n);
    s->left -= n;
    return put(s->f, data, n, s->path, s->eb);
}

static em_err write_all(struct em_gguf_writer *w, FILE *f, const char *tmp, em_gguf_data_fn data,
                        void *ctx, struct em_errbuf *eb)
{
    uint8_t hdr[24];
    memcpy(hdr, EM_GGUF_MAGIC, 4);
    le_put(hdr + 4, EM_GGUF_VERSION, 4);
    le_put(hdr + 8, w->n_t, 8);
    le_put(hdr + 16, w->n_kv, 8);
    em_err rc = put(f, hdr, sizeof hdr, tmp, eb);
    if (rc == EM_OK) rc = put(f, w->kv.p, w->kv.len, tmp, eb);
    if (rc == EM_OK) rc = put(f, w->ti.p, w->ti.len, tmp, eb);
    uint64_t pos = sizeof hdr + w->kv.len + w->ti.len, a = w->alignment;
    uint64_t start = (pos + a - 1) / a * a;
    if (rc == EM_OK) rc = pad(f, &pos, start, tmp, eb);
    for (size_t i = 0; i < w->n_t && rc == EM_OK; i++) {
        struct em_gguf_sink s = {f, tmp, w->nbytes[i], w->names[i], eb};
        if ((rc = pad(f, &pos, start + w->off[i], tmp, eb)) != EM_OK) break;
        if ((rc = data(ctx, i, &s, eb)) != EM_OK) break;
        if (s.left)
            rc = em_errf(eb, EM_E_INTERNAL, "%s: tensor '%s': %llu of %llu bytes missing", tmp,
                         w->names[i], (unsigned long long)s.left,
                         (unsigned long long)w->nbytes[i]);
        pos += w->nbytes[i];
    }
    return rc;
}

em_err em_gguf_writer_write(struct em_gguf_writer *w, const char *path, em_gguf_data_fn data,
                            void *ctx, struct em_errbuf *eb)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return em_errf(eb, EM_E_ARG, "%.64s...: path too long", path);
    if (w->kv.len > SIZE_MAX - w->ti.len) return EM_E_NOMEM;
    FILE *f = fopen(tmp, "wbx");
    if (!f) return em_errf(eb, EM_E_IO, "%s: %s", tmp, strerror(errno));
    em_err rc = write_all(w, f, tmp, data, ctx, eb);
    if (rc == EM_OK && (fflush(f) != 0 || fsync(fileno(f)) != 0))
        rc = em_errf(eb, EM_E_IO, "%s: %s", tmp, strerror(errno));
    if (fclose(f) != 0 && rc == EM_OK) rc = em_errf(eb, EM_E_IO, "%s: close: %s", tmp, strerror(errno));
    if (rc == EM_OK && rename(tmp, path) != 0)
        rc = em_errf(eb, EM_E_IO, "%s: rename to %s: %s", tmp, path, strerror(errno));
    if (rc != EM_OK) unlink(tmp);
    return rc;
}
