/* model/kernels/cpu/qdot.h - internal to model/kernels/cpu: the per-ISA row-dot kernels
 * behind em_qmatmul (qmatmul.h is the public entry point).
 *
 * One call of em_qmatmul handles x in groups of up to EM_QDOT_MAX_N activation rows:
 *   prep:  x[n, in] f32 -> struct em_qact (activations quantized / converted once, in the
 *          encoding this ISA's row kernels want; int8 per 32-block with an f32 scale)
 *   rows:  for r in [r0, r1): y[j * ldy + r] = dot(x_j, W_r), j < n, every W row read once
 *          for all n activations (the batched-decode win: weight bytes dominate).
 * W row r starts at w + r * row_bytes (any alignment). rows may run concurrently on
 * disjoint [r0, r1) ranges with the same em_qact (read-only after prep).
 * Each ISA exposes one ops table; wtypes are enum em_wtype (model/kernels/quant.h). */
#ifndef EM_QDOT_H
#define EM_QDOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "model/kernels/quant.h"

#define EM_QDOT_MAX_N 8 /* activation rows per prep/rows pass */

/* Prepared activations; every pointer points into the caller's scratch or at x. */
struct em_qact {
    int n, in;
    const float *x;    /* [n, in] the caller's f32 rows (f32 / f16 weight rows) */
    const uint8_t *q;  /* [n, in] int8 codes; AVX-512 instead stores its own records here
                          (per row and group of 8 blocks: codes + 128 and scales, laid out
                          for its kernels; see qdot_avx512.c) and leaves d and s NULL */
    const float *d;    /* [n, in / 32] block scales, x ~= d * q */
    const int32_t *s;  /* unused (NULL) */
    const uint16_t *xb; /* [n, in] x rounded to bf16 (AVX-512 vdpbf16ps BF16 rows only) */
    const float *xp;    /* [n, in] x with each whole 32-element chunk stored as its 16 even
                           elements, then its 16 odd ones (AVX-512 exact BF16 rows only; the
                           tail past the last whole chunk is read from x) */
};

struct em_qdot_ops {
    const char *name;
    /* Scratch bytes prep needs for (wtype, n, in); 0 if none. */
    size_t (*scratch_size)(int wtype, int n, int in);
    /* Fills *a from x[n, in]; scratch is 64-byte aligned, scratch_size bytes. in is a
     * multiple of 32 for block types (the caller checks). */
    void (*prep)(int wtype, const float *x, int n, int in, void *scratch, struct em_qact *a);
    /* See above. 1 <= a->n <= EM_QDOT_MAX_N. */
    void (*rows)(int wtype, const struct em_qact *a, const uint8_t *w, size_t row_bytes,
                 int r0, int r1, float *y, size_t ldy);
};

const struct em_qdot_ops *em_qdot_generic(void);
/* Call only when em_cpu_level() >= EM_CPU_AVX2 (resp. AVX512; bf16 selects vdpbf16ps
 * for BF16 rows and needs em_cpu_has_avx512bf16(); without it BF16 rows are widened to f32
 * exactly and multiplied with f32 FMA against f32 x). */
const struct em_qdot_ops *em_qdot_avx2(void);
const struct em_qdot_ops *em_qdot_avx512(bool bf16);

/* Shared by the generic and AVX2 prep: x[n, in] -> int8 codes q[n, in] and scales
 * d[n, in / 32] with d = amax / 127, q = round-to-nearest-even(x * (127 / amax)), 0 for an
 * all-zero block. The AVX-512 prep computes the same codes and scales bit for bit. */
void em_qdot_quantize_x(const float *x, int n, int in, int8_t *q, float *d);

/* The generic and AVX2 prep: a = {n, in, x}; for q8_0 / q4_0 rows also the codes and
 * scales that quantize (em_qdot_quantize_x or its AVX2 twin) writes into scratch: [n, in]
 * codes, then [n, in / 32] scales (scratch_size = n * in + n * in / 32 * sizeof(float)). */
static inline void em_qdot_prep_int8(int wtype, const float *x, int n, int in, void *scratch,
                                     struct em_qact *a,
                                     void (*quantize)(const float *, int, int, int8_t *, float *))
{
    memset(a, 0, sizeof *a);
    a->n = n;
    a->in = in;
    a->x = x;
    if (wtype != EM_WT_Q8_0 && wtype != EM_WT_Q4_0) return;
    int8_t *q = scratch;
    float *d = (float *)((uint8_t *)scratch + (size_t)n * in);
    quantize(x, n, in, q, d);
    a->q = (const uint8_t *)q;
    a->d = d;
}

#endif
