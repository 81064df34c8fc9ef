/* model/kernels/cpu/attn.h - multi-head attention in f32 on the qmatmul thread pool
 * (qmatmul.h: em_qmm_parallel): the audio encoder's full attention and the decoder's causal
 * prefill over a KV cache.
 *
 *   o[i, h*hd + c] = sum_j p_h[i, j] v_j[g*hd + c],   g = h / (heads / kv_heads)
 *   p_h[i, :] = softmax_{j < valid(i)}(scale * sum_c q[i, h*hd + c] k_j[g*hd + c])
 *
 * for query rows i < T, keys j < n, valid(i) = n (full) or p0 + i + 1 (causal: query i sits at
 * position p0 + i of a sequence whose keys are positions 0 .. n - 1, n = p0 + T).
 *
 * Why: as two sgemm per head with a single-threaded softmax between them (and, causal, the
 * full T x n score matrix computed then masked), attention took as long as a layer's int8
 * projections. Here each task is one (query head, block of 48 query rows): scores for the
 * block in 8 x 32 AVX-512 FMA tiles against k_g transposed (causal: only the columns the
 * block can see), the block's softmax rows, then p v_g in 6 x 64 tiles, all in a per-thread
 * L2-sized buffer, both cores busy throughout. Results equal the sgemm path up to f32
 * summation order (the softmax's 1 / sum is applied to the output row, as there).
 *
 * Memory: q [T, ldq] and o [T, ldo] f32 row-major; key / value row j is k[j] / v[j] (row
 * pointers, so a cache whose rows live in several buffers, e.g. an overlay on a shared
 * prefix, needs no copy; each row holds kv_heads * hd floats, or IEEE halves through k16 /
 * v16 instead, widened exactly in the repack). o must not overlap q or any
 * k / v row. Per call k and v are repacked per kv head (k_g transposed, v_g padded to 64
 * columns): about 4 * kv_heads * n * (hd + 64) bytes, plus 4 * (48 * n + 8 * hd) bytes per
 * pool thread; freed before return. Thread-safety: several calls may run at once (a call
 * that finds the pool busy runs on its own thread). Must not be called from inside
 * em_qmm_parallel. */
#ifndef EM_ATTN_H
#define EM_ATTN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "model/kernels/backend.h"

/* struct em_attn_args: model/kernels/backend.h (the backend table's attention slot). */

/* Errors: EM_E_ARG (T < 1, n < T, causal with n != p0 + T, full with n != T, heads or hd < 1,
 * heads not a multiple of kv_heads, ldq / ldo < heads * hd, NULL pointers, not exactly one
 * of the pairs k / v and k16 / v16), EM_E_UNSUPPORTED
 * (the CPU level is below EM_CPU_AVX512: callers keep their own path), EM_E_NOMEM. */
em_err em_attn(const struct em_attn_args *a);

/* The encoder's case: full attention, q, k, v, o all [T, ld] with heads == kv_heads. */
em_err em_attn_full(float *o, const float *q, const float *k, const float *v, int T, int heads,
                    int hd, int ld, float scale);

/* ---- internal to model/kernels/cpu (attn.c <-> attn_avx512.c) ---- */

#define EM_ATTN_QB 48 /* query rows per task (a multiple of the 8- and 6-row tiles) */

/* One task: qb <= EM_ATTN_QB query rows at q (row stride ldq, the head's first column) against
 * the first ncols keys; row r attends to min(ncols, valid0 + r * step) of them. kt [hd, tp]
 * is k_g transposed, zero past the keys (tp: n rounded up to 32, >= ncols rounded up to 32);
 * vp [n, hdp] is v_g with zero columns past hd (hdp: hd rounded up to 64); s is
 * EM_ATTN_QB * tp + 8 * hd floats of scratch (any contents); kt, vp and s are 64-byte
 * aligned; o (row stride ldo) is the head's first output column. AVX-512 (call only at level
 * EM_CPU_AVX512). */
void em_attn_block_avx512(const float *q, int ldq, int hd, int qb, int ncols, int valid0,
                          int step, int tp, const float *kt, const float *vp, int hdp,
                          float scale, float *s, float *o, int ldo);

/* kt[c * tp + j] = k row j's element off + c (c < hd) for the rows j < return value: every
 * whole 16 rows of n when hd is a multiple of 16 (16 x 16 register transposes), else none;
 * the caller packs the rest. Rows from k (f32) or, when k16 is not NULL, k16 (f16, widened
 * exactly). kt 64-byte aligned, tp a multiple of 16. AVX-512 only. */
int em_attn_pack_kt_avx512(const float *const *k, const uint16_t *const *k16, size_t off,
                           int n, int hd, int tp, float *kt);

/* The block's softmax pass: x[0 .. n) = exp(x - max), returns their sum; the bits of
 * em_exp_shift_row8 (vecmath.h) with 16-lane max and exp. AVX-512 only (tests compare). */
float em_attn_exp_shift_row_avx512(float *x, int n);

#endif
