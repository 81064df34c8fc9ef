/* model/kernels/cpu/attn.h - full (bidirectional, unmasked) multi-head attention in f32 for
 * the audio encoder, on the qmatmul thread pool (qmatmul.h: em_qmm_parallel).
 *
 *   o[i, h*hd + c] = sum_j p_h[i, j] v[j, h*hd + c],
 *   p_h[i, :] = softmax_j(scale * sum_c q[i, h*hd + c] k[j, h*hd + c])
 *
 * for i, j < T, h < heads, c < hd. q, k, v and o are [T, ld] f32 row-major (ld >= heads * hd;
 * columns beyond heads * hd of o are not written); o must not overlap q, k or v.
 *
 * Why: the encoder's attention at T = 1500 (20 heads of 64) is about 11.5 GFLOP per layer;
 * as 2 sgemm per head with a single-threaded softmax between them it took as long as the
 * layer's int8 projections. Here each task is one (head, block of 48 query rows): scores
 * for the block (8 x 32 AVX-512 FMA tiles against k_h transposed), the block's softmax rows,
 * then p v_h (6 x 64 tiles), all in a per-thread L2-sized buffer, both cores busy throughout.
 * The result equals the sgemm path up to f32 summation order (the softmax's 1 / sum is
 * applied to the output row, as the sgemm path does).
 *
 * Memory: per call k and v are repacked per head (k_h transposed, v_h padded to 64 columns):
 * about 4 * heads * T * (hd + 64) bytes, plus 4 * (48 * T + 8 * hd) bytes per pool thread; freed
 * before return. Thread-safety: several calls may run at once (a call that finds the pool busy
 * runs on its own thread). Must not be called from inside em_qmm_parallel. */
#ifndef EM_ATTN_H
#define EM_ATTN_H

#include "common/err.h"

/* Errors: EM_E_ARG (T < 1, heads < 1, hd < 1, ld < heads * hd), EM_E_UNSUPPORTED (the CPU
 * level is below EM_CPU_AVX512: callers keep their own path), EM_E_NOMEM. */
em_err em_attn_full(float *o, const float *q, const float *k, const float *v, int T, int heads,
                    int hd, int ld, float scale);

/* ---- internal to model/kernels/cpu (attn.c <-> attn_avx512.c) ---- */

#define EM_ATTN_QB 48 /* query rows per task (a multiple of the 8- and 6-row tiles) */

/* One task: query rows [i0, i0 + qb) of one head (qb <= EM_ATTN_QB). q points at the head's
 * first column (row stride ld); kt [hd, tp] is k_h transposed, zero beyond T (tp: T rounded
 * up to 32); vp [T, hdp] is v_h with zero columns beyond hd (hdp: hd rounded up to 64);
 * s is EM_ATTN_QB * tp + 8 * hd floats of scratch (any contents); kt, vp and s are 64-byte aligned;
 * o points at the head's first output column (row stride ld). AVX-512 (call only at level
 * EM_CPU_AVX512). */
void em_attn_block_avx512(const float *q, int ld, int hd, int i0, int qb, int T, int tp,
                          const float *kt, const float *vp, int hdp, float scale, float *s,
                          float *o);

#endif
