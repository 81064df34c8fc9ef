/* model/gen/kvcache.c - see kvcache.h. */
#include "model/gen/kvcache.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/gen/kvpool.h"
#include "model/kernels/backend.h"
#include "model/kernels/cpu/cpufeat.h"
#include "model/kernels/cpu/eltwise.h"
#include "model/kernels/cpu/vecmath.h"

struct em_kv {
    const struct em_backend *be; /* where the rows live (borrowed) */
    int n_layers, kv_dim, cap, len;
    enum em_kv_type type;
    size_t esz;               /* bytes per element */
    const struct em_kv *base; /* overlay: positions < n_base are base's */
    int n_base;               /* 0 for a plain cache */
    unsigned char *k, *v;     /* [n_layers][cap - n_base][kv_dim]: positions n_base.. */
    /* paged (em_kv_new_paged; k and v NULL): own position n_base + i lives in page
     * i / EM_KVPOOL_PAGE_POS, row i % EM_KVPOOL_PAGE_POS of its K block (layer-major, the
     * page's first half) and V block (second half) */
    struct em_kvpool *pool;
    unsigned char **pages;
    size_t n_pages;
};

const char *em_kv_type_name(int type)
{
    return type == EM_KV_F32 ? "f32" : type == EM_KV_F16 ? "f16" : NULL;
}

int em_kv_type_parse(const char *s)
{
    if (!s) return -1;
    if (strcmp(s, "f32") == 0) return EM_KV_F32;
    if (strcmp(s, "f16") == 0) return EM_KV_F16;
    return -1;
}

static em_err alloc(const struct em_backend *be, int n_layers, int kv_dim, int cap, int n_base,
                    enum em_kv_type type, struct em_kv **out, struct em_errbuf *eb)
{
    const size_t esz = type == EM_KV_F16 ? 2 : 4;
    uint64_t n = (uint64_t)n_layers * (uint64_t)kv_dim * (uint64_t)(cap - n_base);
    if (n * 2 * esz > EM_KV_MAX_BYTES)
        return em_errf(eb, EM_E_TOO_LONG, "kvcache: %llu bytes for %d positions, limit %llu",
                       (unsigned long long)(n * 2 * esz), cap - n_base,
                       (unsigned long long)EM_KV_MAX_BYTES);
    struct em_kv *kv = calloc(1, sizeof *kv);
    if (!kv) return EM_E_NOMEM;
    kv->be = be;
    void *k = NULL, *v = NULL;
    if (be->ops->alloc(be->ctx, n * esz, &k) != EM_OK ||
        be->ops->alloc(be->ctx, n * esz, &v) != EM_OK) {
        kv->k = k;
        kv->v = v;
        em_kv_free(kv);
        return em_errf(eb, EM_E_NOMEM, "kvcache: out of %s memory for %d positions (%.1f MiB)",
                       be->ops->name, cap - n_base, (double)(n * 2 * esz) / (1 << 20));
    }
    kv->k = k;
    kv->v = v;
    kv->n_layers = n_layers;
    kv->kv_dim = kv_dim;
    kv->cap = cap;
    kv->n_base = n_base;
    kv->type = type;
    kv->esz = esz;
    *out = kv;
    return EM_OK;
}

em_err em_kv_new(const struct em_backend *be, int n_layers, int kv_dim, int cap,
                 enum em_kv_type type, struct em_kv **out, struct em_errbuf *eb)
{
    *out = NULL;
    if (n_layers <= 0 || kv_dim <= 0 || cap <= 0 || !em_kv_type_name((int)type))
        return em_errf(eb, EM_E_ARG, "kvcache: layers %d, kv_dim %d, cap %d, type %d", n_layers,
                       kv_dim, cap, (int)type);
    return alloc(be ? be : em_backend_cpu(), n_layers, kv_dim, cap, 0, type, out, eb);
}

em_err em_kv_new_over(const struct em_kv *base, int n, int cap, struct em_kv **out,
                      struct em_errbuf *eb)
{
    *out = NULL;
    if (!base || n < 0 || n > base->len || cap <= n)
        return em_errf(eb, EM_E_ARG, "kvcache: overlay of %d positions (base holds %d), cap %d", n,
                       base ? base->len : 0, cap);
    em_err rc = alloc(base->be, base->n_layers, base->kv_dim, cap, n, base->type, out, eb);
    if (rc != EM_OK) return rc;
    (*out)->base = n ? base : NULL;
    (*out)->len = n;
    return EM_OK;
}

em_err em_kv_new_paged(struct em_kvpool *pool, int n_layers, int kv_dim, enum em_kv_type type,
                       const struct em_kv *base, int n, int cap, struct em_kv **out,
                       struct em_errbuf *eb)
{
    *out = NULL;
    const size_t esz = type == EM_KV_F16 ? 2 : 4;
    if (!pool || n_layers <= 0 || kv_dim <= 0 || !em_kv_type_name((int)type) || n < 0 ||
        cap <= n || (n > 0 && (!base || n > base->len)) ||
        (base && (base->n_layers != n_layers || base->kv_dim != kv_dim || base->type != type ||
                  base->be != em_kvpool_backend(pool))) ||
        em_kvpool_page_bytes(pool) != 2 * (size_t)n_layers * EM_KVPOOL_PAGE_POS * (size_t)kv_dim * esz)
        return em_errf(eb, EM_E_ARG, "kvcache: paged cache of %d x %d (type %d) over %d of %d "
                       "positions, cap %d, does not fit its pool or base", n_layers, kv_dim,
                       (int)type, n, base ? base->len : 0, cap);
    struct em_kv *kv = calloc(1, sizeof *kv);
    if (!kv) return EM_E_NOMEM;
    kv->n_layers = n_layers;
    kv->kv_dim = kv_dim;
    kv->cap = cap;
    kv->n_base = n;
    kv->len = n;
    kv->base = n ? base : NULL;
    kv->type = type;
    kv->esz = esz;
    kv->pool = pool;
    kv->be = em_kvpool_backend(pool);
    const size_t np = em_kvpool_pages_for(n, cap);
    if (!(kv->pages = calloc(np, sizeof *kv->pages))) goto nomem;
    for (; kv->n_pages < np; kv->n_pages++)
        if (!(kv->pages[kv->n_pages] = em_kvpool_page_get(pool))) goto nomem;
    *out = kv;
    return EM_OK;
nomem:
    em_kv_free(kv);
    return EM_E_NOMEM;
}

void em_kv_free(struct em_kv *kv)
{
    if (!kv) return;
    for (size_t i = 0; i < kv->n_pages; i++) em_kvpool_page_put(kv->pool, kv->pages[i]);
    free(kv->pages);
    kv->be->ops->free(kv->be->ctx, kv->k); /* NULL for a paged cache */
    kv->be->ops->free(kv->be->ctx, kv->v);
    free(kv);
}

int em_kv_len(const struct em_kv *kv) { return kv->len; }
int em_kv_cap(const struct em_kv *kv) { return kv->cap; }
int em_kv_layers(const struct em_kv *kv) { return kv->n_layers; }
int em_kv_dim(const struct em_kv *kv) { return kv->kv_dim; }
enum em_kv_type em_kv_type(const struct em_kv *kv) { return kv->type; }
const struct em_backend *em_kv_backend(const struct em_kv *kv) { return kv->be; }
size_t em_kv_elem_bytes(const struct em_kv *kv) { return kv->esz; }

void em_kv_truncate(struct em_kv *kv, int n)
{
    if (n < kv->n_base) n = kv->n_base;
    if (n >= 0 && n < kv->len) kv->len = n;
}

/* K row (v = 0) or V row (v = 1) of layer l, position p in the cache's own rows */
static unsigned char *at(const struct em_kv *kv, int l, int p, int v)
{
    assert(l >= 0 && l < kv->n_layers && p >= kv->n_base && p < kv->cap);
    const size_t row = (size_t)kv->kv_dim * kv->esz, i = (size_t)(p - kv->n_base);
    if (!kv->pool)
        return (v ? kv->v : kv->k) + ((size_t)l * (size_t)(kv->cap - kv->n_base) + i) * row;
    const size_t block = (size_t)kv->n_layers * EM_KVPOOL_PAGE_POS * row;
    return kv->pages[i / EM_KVPOOL_PAGE_POS] + (v ? block : 0) +
           ((size_t)l * EM_KVPOOL_PAGE_POS + i % EM_KVPOOL_PAGE_POS) * row;
}

const void *em_kv_k(const struct em_kv *kv, int l, int p)
{
    return p < kv->n_base ? em_kv_k(kv->base, l, p) : at(kv, l, p, 0);
}

const void *em_kv_v(const struct em_kv *kv, int l, int p)
{
    return p < kv->n_base ? em_kv_v(kv->base, l, p) : at(kv, l, p, 1);
}

static void narrow(int type, const float *src, void *dst, size_t n)
{
    if (type == EM_KV_F32)
        memcpy(dst, src, n * sizeof(float));
    else
        em_f16_narrow(dst, src, n);
}

void em_kv_widen(int type, const void *src, float *dst, size_t n)
{
    if (type == EM_KV_F32) {
        memcpy(dst, src, n * sizeof(float));
        return;
    }
    const uint16_t *h = src;
#if EM_VM_X86
    if (em_cpu_level() >= EM_CPU_AVX2) {
        em_f16_load8(dst, h, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = em_quant_f16_to_f32(h[i]);
}

em_err em_kv_store(struct em_kv *kv, int l, int p, const float *k, const float *v)
{
    const size_t n = (size_t)kv->kv_dim;
    const struct em_backend_ops *o = kv->be->ops;
    if (o->unified) {
        narrow(kv->type, k, at(kv, l, p, 0), n);
        narrow(kv->type, v, at(kv, l, p, 1), n);
        return EM_OK;
    }
    unsigned char *tmp = malloc(2 * n * kv->esz); /* narrowed on the host, then uploaded */
    if (!tmp) return EM_E_NOMEM;
    narrow(kv->type, k, tmp, n);
    narrow(kv->type, v, tmp + n * kv->esz, n);
    em_err rc = o->upload(kv->be->ctx, at(kv, l, p, 0), tmp, n * kv->esz);
    if (rc == EM_OK) rc = o->upload(kv->be->ctx, at(kv, l, p, 1), tmp + n * kv->esz, n * kv->esz);
    if (rc == EM_OK) rc = o->sync(kv->be->ctx); /* tmp is freed next */
    free(tmp);
    return rc;
}

em_err em_kv_copy_prefix(struct em_kv *dst, const struct em_kv *src, int n)
{
    if (dst->n_layers != src->n_layers || dst->kv_dim != src->kv_dim || dst->type != src->type ||
        n < 0 || n > src->len || n > dst->cap || dst->n_base != 0 || dst->pool || dst->be != src->be)
        return EM_E_ARG;
    const size_t row = (size_t)src->kv_dim * src->esz;
    const struct em_backend_ops *o = dst->be->ops;
    void *ctx = dst->be->ctx;
    em_err rc = EM_OK;
    for (int l = 0; l < src->n_layers && rc == EM_OK; l++) {
        const size_t d_o = (size_t)l * (size_t)dst->cap * row;
        /* runs of rows consecutive in src (a plain cache: the layer; paged: a page) */
        for (int p = 0, m; p < n && rc == EM_OK; p += m) {
            const unsigned char *k0 = em_kv_k(src, l, p), *v0 = em_kv_v(src, l, p);
            for (m = 1; p + m < n && (const unsigned char *)em_kv_k(src, l, p + m) == k0 + (size_t)m * row &&
                        (const unsigned char *)em_kv_v(src, l, p + m) == v0 + (size_t)m * row;)
                m++;
            rc = o->copy(ctx, dst->k + d_o + (size_t)p * row, k0, (size_t)m * row);
            if (rc == EM_OK) rc = o->copy(ctx, dst->v + d_o + (size_t)p * row, v0, (size_t)m * row);
        }
    }
    if (rc != EM_OK) return rc;
    dst->len = n;
    return EM_OK;
}

void em_kv_advance(struct em_kv *kv, int t)
{
    assert(t >= 0 && kv->len + t <= kv->cap);
    kv->len += t;
}
