/* model/kvcache.c - see kvcache.h. */
#include "model/kvcache.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct em_kv {
    int n_layers, kv_dim, cap, len;
    float *k, *v; /* [n_layers][cap][kv_dim] */
};

em_err em_kv_new(int n_layers, int kv_dim, int cap, struct em_kv **out, struct em_errbuf *eb)
{
    *out = NULL;
    if (n_layers <= 0 || kv_dim <= 0 || cap <= 0)
        return em_errf(eb, EM_E_ARG, "kvcache: layers %d, kv_dim %d, cap %d", n_layers, kv_dim, cap);
    uint64_t n = (uint64_t)n_layers * (uint64_t)kv_dim * (uint64_t)cap;
    if (n * 2 * sizeof(float) > EM_KV_MAX_BYTES)
        return em_errf(eb, EM_E_TOO_LONG, "kvcache: %llu bytes for %d positions, limit %llu",
                       (unsigned long long)(n * 8), cap, (unsigned long long)EM_KV_MAX_BYTES);
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
    *out = kv;
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

void em_kv_truncate(struct em_kv *kv, int n)
{
    if (n >= 0 && n < kv->len) kv->len = n;
}

em_err em_kv_copy_prefix(struct em_kv *dst, const struct em_kv *src, int n)
{
    if (dst->n_layers != src->n_layers || dst->kv_dim != src->kv_dim || n < 0 || n > src->len ||
        n > dst->cap)
        return EM_E_ARG;
    size_t row = (size_t)src->kv_dim * sizeof(float);
    for (int l = 0; l < src->n_layers; l++) {
        size_t so = (size_t)l * (size_t)src->cap * (size_t)src->kv_dim;
        size_t d_o = (size_t)l * (size_t)dst->cap * (size_t)dst->kv_dim;
        memcpy(dst->k + d_o, src->k + so, (size_t)n * row);
        memcpy(dst->v + d_o, src->v + so, (size_t)n * row);
    }
    dst->len = n;
    return EM_OK;
}

static size_t at(const struct em_kv *kv, int l, int p)
{
    assert(l >= 0 && l < kv->n_layers && p >= 0 && p < kv->cap);
    return ((size_t)l * (size_t)kv->cap + (size_t)p) * (size_t)kv->kv_dim;
}

float *em_kv_k(struct em_kv *kv, int l, int p) { return kv->k + at(kv, l, p); }
float *em_kv_v(struct em_kv *kv, int l, int p) { return kv->v + at(kv, l, p); }

void em_kv_advance(struct em_kv *kv, int t)
{
    assert(t >= 0 && kv->len + t <= kv->cap);
    kv->len += t;
}
