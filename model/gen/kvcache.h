/* model/gen/kvcache.h - the decoder's key/value cache: for every layer, the rotated keys and the
 * values of positions 0..len-1, layout [layer][position][kv_dim] (kv_dim = kv heads x
 * head_dim), so one position of one layer is a contiguous row of kv_dim elements.
 *
 * Element type (enum em_kv_type): f32, or IEEE half (f16), which halves the bytes a decode
 * step's attention reads (at 7B and 800 positions, 27 MB per layer in f32: 12 % of a q8_0
 * layer's weight bytes) and the cache's memory. Rows are written from f32 through
 * em_kv_store, which rounds to nearest even and saturates values beyond the f16 range
 * (infinities too) at +-65504, so no stored key or value is infinite; NaN stays NaN.
 *
 * Prefill appends T positions, each decode step one. Several prompts that share their first
 * positions (the audio) can start from one prefill: either copy that cache up to the prefix
 * (em_kv_copy_prefix), or lay a new cache over it (em_kv_new_over), which reads the prefix
 * rows from the base in place and stores only its own positions (no copy; at 7B size the
 * audio prefix of a window is ~750 MB, per prompt). Not thread-safe: one cache per
 * generation (several overlays may read one base at once; nothing writes a base's prefix).
 *
 * Memory: a cache's rows live in the memory of the backend it was made for
 * (model/kernels/backend.h: be->ops->alloc; the GPU's memory for the CUDA backend, host
 * memory for the CPU), where the decoder's RoPE / attention slots write and read them
 * through row pointers; an overlay lives on its base's backend, a paged cache on its pool's.
 * em_kv_k / em_kv_v return such device pointers: dereference them on the host only when the
 * backend is `unified` (the CPU). */
#ifndef EM_KVCACHE_H
#define EM_KVCACHE_H

#include <stddef.h>

#include "common/err.h"

#define EM_KV_MAX_BYTES (64ull << 30) /* refuse caches larger than this */

struct em_kv;
struct em_backend;

enum em_kv_type {
    EM_KV_F32 = 0,
    EM_KV_F16 = 1, /* IEEE half, stored as uint16_t */
};

/* "f32" / "f16"; NULL for a value outside the enum. */
const char *em_kv_type_name(int type);
/* The type named s ("f32" / "f16"), or -1. */
int em_kv_type_parse(const char *s);

/* A cache for n_layers layers of kv_dim elements of the given type per position, room for
 * cap positions, in be's memory (NULL: the CPU's; borrowed, must outlive the cache). On
 * EM_OK the caller owns *out (em_kv_free). Errors: EM_E_ARG (non-positive sizes, unknown
 * type), EM_E_TOO_LONG (over EM_KV_MAX_BYTES), EM_E_NOMEM (the message names the device). */
em_err em_kv_new(const struct em_backend *be, int n_layers, int kv_dim, int cap,
                 enum em_kv_type type, struct em_kv **out, struct em_errbuf *eb);
void em_kv_free(struct em_kv *kv); /* NULL ok */

/* A cache of cap positions whose first n are base's (borrowed: base must outlive the new
 * cache and keep its first n positions unchanged; reading them is all the overlay does to
 * base). Starts with len n; stores only positions n..cap-1 (its own memory). Same geometry
 * and element type as base. On EM_OK the caller owns *out (em_kv_free, which leaves base alone).
 * Errors: EM_E_ARG (n < 0, n > base's len, cap <= n), EM_E_TOO_LONG, EM_E_NOMEM. */
em_err em_kv_new_over(const struct em_kv *base, int n, int cap, struct em_kv **out,
                      struct em_errbuf *eb);

struct em_kvpool;

/* A cache whose own positions (n..cap-1) live in pages of pool (model/gen/kvpool.h; its
 * geometry and element size must match): as em_kv_new (n = 0, base NULL) or em_kv_new_over
 * (base borrowed as there; it must live on the pool's backend). Within a page a layer's positions are consecutive rows; across
 * pages they are not (readers use em_kv_k / em_kv_v per position, as for an overlay). The
 * caller must have reserved em_kvpool_pages_for(n, cap) pages (em_kvpool_reserve);
 * em_kv_free returns them to the pool (not the reservation). Errors: EM_E_ARG (geometry,
 * type, n, cap or base do not fit), EM_E_NOMEM. */
em_err em_kv_new_paged(struct em_kvpool *pool, int n_layers, int kv_dim, enum em_kv_type type,
                       const struct em_kv *base, int n, int cap, struct em_kv **out,
                       struct em_errbuf *eb);

int em_kv_len(const struct em_kv *kv); /* positions held */
int em_kv_cap(const struct em_kv *kv);
int em_kv_layers(const struct em_kv *kv);
int em_kv_dim(const struct em_kv *kv); /* elements per position and layer (kv_dim) */
enum em_kv_type em_kv_type(const struct em_kv *kv);
const struct em_backend *em_kv_backend(const struct em_kv *kv); /* where its rows live */
size_t em_kv_elem_bytes(const struct em_kv *kv); /* 4 (f32) or 2 (f16) */
/* Forgets positions >= n (n <= len; an overlay never forgets its base's positions). */
void em_kv_truncate(struct em_kv *kv, int n);
/* Makes dst hold the first n positions of src (same geometry, element type and backend, n <=
 * src len, n <= dst cap; src may be an overlay or paged, dst may be neither), one device copy
 * per run of consecutive rows. Errors: EM_E_ARG, or the backend's copy error. */
em_err em_kv_copy_prefix(struct em_kv *dst, const struct em_kv *src, int n);

/* Row pointers for layer l, position p (p < cap): kv_dim elements of em_kv_type (float or
 * uint16_t) in the backend's memory; valid until em_kv_free. Positions of one cache are em_kv_elem_bytes * kv_dim
 * bytes apart within a layer. An overlay's rows below its base prefix are the base's: read
 * them only. */
const void *em_kv_k(const struct em_kv *kv, int l, int p);
const void *em_kv_v(const struct em_kv *kv, int l, int p);
/* Writes layer l, position p (n_base <= p < cap: the cache's own rows) from kv_dim floats
 * each (host memory), converted to the cache's type (and uploaded, on a device backend,
 * before it returns). The decoder writes its rows through the backend's rope_kv slot instead;
 * this is for tools and tests. Errors: EM_E_NOMEM, the backend's upload error. */
em_err em_kv_store(struct em_kv *kv, int l, int p, const float *k, const float *v);
/* n elements of type at src (host memory) as floats into dst (f16: exact widening). */
void em_kv_widen(int type, const void *src, float *dst, size_t n);
void em_kv_advance(struct em_kv *kv, int t); /* len += t (len + t <= cap) */

#endif
