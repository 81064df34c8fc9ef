/* model/kvcache.c - see kvcache.h. */
#include "model/kvcache.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct em_kv {
    int n_layers, kv_dim, cap, len;
    const struct em_kv *base; /* overlay: positions < n_base are base's */
    int n_base;               /* 0 for a plain cache */
    float *k, *v;             /* [n_layers][cap - n_base][kv_dim]: positions n_base.. */
};

static em_err alloc(int n_layers, int kv_dim, int cap, int n_base, struct em_kv **out,
                    struct em_errbuf *eb)
{
    uint64_t n = (uint64_t)n_layers * (uint64_t)kv_dim * (uint64_t)(cap - n_base);
    if (n * 2 * sizeof(float) > EM_KV_MAX_BYTES)
        return em_errf(eb, EM_E_TOO_LONG, "kvcache: %llu bytes for %d positions, limit %llu",
                       (unsigned long long)(n * 8), cap - n_base, (unsigned long long)EM_KV_MAX_BYTES);
    struct em_kv *kv = calloc(1, sizeof *kv);
    if (!kv) return EM_E_NOMEM;
    kv->k = malloc(n * sizeof(float));
    kv->v = malloc(n * sizeof(float));
    if (!kv->k || !kv->v) {
        em_kv_free(kv);
        return EM_E_NOMEM;
    }
    kv->n_layers = n_layers;
    kv->kv_dim = kv_dim;
    kv->cap = cap;
    kv->n_base = n_base;
    *out = kv;
    return EM_OK;
}

em_err em_kv_new(int n_layers, int kv_dim, int cap, struct em_kv **out, struct em_errbuf *eb)
{
    *out = NULL;
    if (n_layers <= 0 || kv_dim <= 0 || cap <= 0)
        return em_errf(eb, EM_E_ARG, "kvcache: layers %d, kv_dim %d, cap %d", n_layers, kv_dim, cap);
    return alloc(n_layers, kv_dim, cap, 0, out, eb);
}

em_err em_kv_new_over(const struct em_kv *base, int n, int cap, struct em_kv **out,
                      struct em_errbuf *eb)
{
    *out = NULL;
    if (!base || n < 0 || n > base->len || cap <= n)
        return em_errf(eb, EM_E_ARG, "kvcache: overlay of %d positions (base holds %d), cap %d", n,
                       base ? base->len : 0, cap);
    em_err rc = alloc(base->n_layers, base->kv_dim, cap, n, out, eb);
    if (rc != EM_OK) return rc;
    (*out)->base = n ? base : NULL;
    (*out)->len = n;
    return EM_OK;
}

void em_kv_free(struct em_kv *kv)
{
    if (!kv) return;
    free(kv->k);
    free(kv->v);
    free(kv);
}

int em_kv_len(const struct em_kv *kv) { return kv->len; }
int em_kv_cap(const struct em_kv *kv) { return kv->cap; }
int em_kv_layers(const struct em_kv *kv) { return kv->n_layers; }
int em_kv_dim(const struct em_kv *kv) { return kv->kv_dim; }

void em_kv_truncate(struct em_kv *kv, int n)
{
    if (n < kv->n_base) n = kv->n_base;
    if (n >= 0 && n < kv->len) kv->len = n;
}

static size_t at(const struct em_kv *kv, int l, int p)
{
    assert(l >= 0 && l < kv->n_layers && p >= kv->n_base && p < kv->cap);
    return ((size_t)l * (size_t)(kv->cap - kv->n_base) + (size_t)(p - kv->n_base)) *
           (size_t)kv->kv_dim;
}

/* The base's rows are only read through these (see kvcache.h); the cast keeps one accessor
 * pair for the decoder, which writes only positions >= len >= n_base. */
float *em_kv_k(struct em_kv *kv, int l, int p)
{
    return p < kv->n_base ? em_kv_k((struct em_kv *)kv->base, l, p) : kv->k + at(kv, l, p);
}

float *em_kv_v(struct em_kv *kv, int l, int p)
{
    return p < kv->n_base ? em_kv_v((struct em_kv *)kv->base, l, p) : kv->v + at(kv, l, p);
}

em_err em_kv_copy_prefix(struct em_kv *dst, const struct em_kv *src, int n)
{
    if (dst->n_layers != src->n_layers || dst->kv_dim != src->kv_dim || n < 0 || n > src->len ||
        n > dst->cap || dst->n_base != 0)
        return EM_E_ARG;
    size_t row = (size_t)src->kv_dim * sizeof(float);
    for (int l = 0; l < src->n_layers; l++) {
        size_t d_o = (size_t)l * (size_t)dst->cap * (size_t)dst->kv_dim;
        if (src->n_base == 0) {
            size_t so = (size_t)l * (size_t)src->cap * (size_t)src->kv_dim;
            memcpy(dst->k + d_o, src->k + so, (size_t)n * row);
            memcpy(dst->v + d_o, src->v + so, (size_t)n * row);
            continue;
        }
        struct em_kv *s = (struct em_kv *)src; /* read only */
        for (int p = 0; p < n; p++) {
            memcpy(dst->k + d_o + (size_t)p * src->kv_dim, em_kv_k(s, l, p), row);
            memcpy(dst->v + d_o + (size_t)p * src->kv_dim, em_kv_v(s, l, p), row);
        }
    }
    dst->len = n;
    return EM_OK;
}

void em_kv_advance(struct em_kv *kv, int t)
{
    assert(t >= 0 && kv->len + t <= kv->cap);
    kv->len += t;
}
