/* model/kernels/cpu/igemm.h - internal to model/kernels: the int8 GEMM for quantized weights
 * at many activation rows (prefill, encoder): y[n, out] = x[n, in] @ W[out, in]^T, W in Q8_0
 * or Q4_0 (GGUF blocks, model/kernels/quant.h), on AVX-512 VNNI (vpdpbusd).
 *
 * Numerics: the same definition as the decode kernels (qdot.h, qdot_generic.c):
 *   x is quantized per 32-block exactly as em_qdot_quantize_x does (dx = amax / 127,
 *   xq = round-to-nearest-even(x * 127 / amax), 0 for an all-zero block), then
 *   y[t, r] = sum_b (dw[r, b] * dx[t, b]) * (float)(integer dot of the 32 codes of block b),
 *   accumulated in f32 in block order. Only the float rounding of the accumulation can differ
 *   from a plain C loop (fma instead of mul + add).
 *
 * How: activations are quantized once per call (s8 codes, grouped by EM_IGEMM_TN tokens,
 * with each (token, block)'s f32 scale and correction -128 * sum(codes), the int32
 * accumulator's start value); W is repacked one tile of EM_IGEMM_TR rows at a time (the
 * whole `in`) into per-thread scratch, 16 rows per zmm with 4 consecutive k-bytes per row
 * (unsigned codes + 128; q4_0 nibbles become nibble - 8 first), with the per-(row, block)
 * f32 scale; a register-blocked kernel then
 * runs 2 x 16 rows by EM_IGEMM_TN tokens over the tile for every token group. Row tiles are
 * split over the qmatmul pool (em_qmm_parallel, qmatmul.h): one pool per call, no OpenBLAS.
 *
 * Memory: W is a borrowed view of out rows of em_wtype_row_size(wtype, in) bytes each,
 * contiguous, any alignment (a read-only file mapping is fine); nothing outside it is read.
 * Per call the GEMM allocates em_igemm_scratch_bytes(n, in) bytes: the activation codes,
 * scales and corrections (about n * in * 34 / 32 bytes, n rounded up to EM_IGEMM_TN) plus
 * one repacked tile per pool thread (EM_IGEMM_TR * in * 36 / 32 bytes each, 144 KiB at
 * in = 4096).
 * x [n, in] and y [n, out] are f32 row-major, 4-byte aligned, must not overlap.
 * Thread-safety: may be called from several threads at once (a call finding the pool busy
 * runs on its own thread). */
#ifndef EM_IGEMM_H
#define EM_IGEMM_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define EM_IGEMM_TR 32 /* weight rows per repacked tile (2 zmm groups of 16) */
#define EM_IGEMM_TN 6  /* tokens per microkernel step */

/* 1 when em_igemm can run at this enum em_cpu_level (cpufeat.h): EM_CPU_AVX512 (F, BW, VL,
 * DQ and VNNI are part of that level). */
int em_igemm_available(int level);

/* y = x @ W^T (no bias). threads: 0 the whole qmatmul pool, k at most k threads.
 * Errors: EM_E_ARG (n < 0, in <= 0 or not a multiple of 32, out < 0, NULL pointers with
 * n, out > 0), EM_E_UNSUPPORTED (wtype not Q8_0 / Q4_0, or em_cpu_level() below
 * EM_CPU_AVX512), EM_E_NOMEM (scratch). n == 0 or out == 0: EM_OK, nothing written. */
em_err em_igemm(float *y, const float *x, int n, int in, int out, int wtype, const void *w,
                int threads);

/* Bytes em_igemm allocates for (n, in) on this machine's pool (see Memory above). */
size_t em_igemm_scratch_bytes(int n, int in);

/* Exposed for tests: the AVX-512 activation quantizer em_igemm uses, in the plain layout of
 * em_qdot_quantize_x (codes q[n, in] as int8, scales d[n, in / 32]); bit-identical to it.
 * Call only when em_igemm_available(em_cpu_level()). in % 32 == 0. */
void em_igemm_quantize_x_avx512(const float *x, int n, int in, int8_t *q, float *d);

/* Internal: the AVX-512 body of em_igemm after its checks (igemm_avx512.c). */
em_err em_igemm_avx512(float *y, const float *x, int n, int in, int out, int wtype,
                       const uint8_t *w, int threads);

#endif
