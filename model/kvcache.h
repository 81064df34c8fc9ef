/* model/kvcache.h - the decoder's key/value cache: for every layer, the rotated keys and the
 * values of positions 0..len-1, f32, layout [layer][position][kv_dim] (kv_dim = kv heads x
 * head_dim), so one position of one layer is a contiguous row.
 *
 * Prefill appends T positions, each decode step one. Several prompts that share their first
 * positions (the audio) can start from one prefill: either copy that cache up to the prefix
 * (em_kv_copy_prefix), or lay a new cache over it (em_kv_new_over), which reads the prefix
 * rows from the base in place and stores only its own positions (no copy; at 7B size the
 * audio prefix of a window is ~750 MB, per prompt). Not thread-safe: one cache per
 * generation (several overlays may read one base at once; nothing writes a base's prefix). */
#ifndef EM_KVCACHE_H
#define EM_KVCACHE_H

#include <stddef.h>

#include "common/err.h"

#define EM_KV_MAX_BYTES (64ull << 30) /* refuse caches larger than this */

struct em_kv;

/* A cache for n_layers layers of kv_dim floats per position, room for cap positions.
 * On EM_OK the caller owns *out (em_kv_free). Errors: EM_E_ARG (non-positive sizes),
 * EM_E_TOO_LONG (over EM_KV_MAX_BYTES), EM_E_NOMEM. */
em_err em_kv_new(int n_layers, int kv_dim, int cap, struct em_kv **out, struct em_errbuf *eb);
void em_kv_free(struct em_kv *kv); /* NULL ok */

/* A cache of cap positions whose first n are base's (borrowed: base must outlive the new
 * cache and keep its first n positions unchanged; reading them is all the overlay does to
 * base). Starts with len n; stores only positions n..cap-1 (its own memory). Same geometry
 * as base. On EM_OK the caller owns *out (em_kv_free, which leaves base alone).
 * Errors: EM_E_ARG (n < 0, n > base's len, cap <= n), EM_E_TOO_LONG, EM_E_NOMEM. */
em_err em_kv_new_over(const struct em_kv *base, int n, int cap, struct em_kv **out,
                      struct em_errbuf *eb);

int em_kv_len(const struct em_kv *kv); /* positions held */
int em_kv_cap(const struct em_kv *kv);
int em_kv_layers(const struct em_kv *kv);
int em_kv_dim(const struct em_kv *kv); /* floats per position and layer (kv_dim) */
/* Forgets positions >= n (n <= len; an overlay never forgets its base's positions). */
void em_kv_truncate(struct em_kv *kv, int n);
/* Makes dst hold the first n positions of src (same geometry, n <= src len, n <= dst cap;
 * src may be an overlay, dst may not). Errors: EM_E_ARG. */
em_err em_kv_copy_prefix(struct em_kv *dst, const struct em_kv *src, int n);

/* Row pointers for layer l, position p (p < cap); valid until em_kv_free. Used by the
 * decoder, which writes positions len..len+T-1 and then calls em_kv_advance. An overlay's
 * rows below its base prefix are the base's: read them only. */
float *em_kv_k(struct em_kv *kv, int l, int p);
float *em_kv_v(struct em_kv *kv, int l, int p);
void em_kv_advance(struct em_kv *kv, int t); /* len += t (len + t <= cap) */

#endif
