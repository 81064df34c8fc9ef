/* model/kernels/cpu/qdot_generic.c - the reference row kernels, plain C, always built.
 * Per row r and activation j:
 *   q8_0 / q4_0:  y = sum_b f16(W_r.d[b]) * dx_j[b] * sum_i w_q[b, i] * xq_j[b, i]
 *                 (w_q = qs for q8_0, nibble - 8 for q4_0; xq, dx from em_qdot_quantize_x)
 *   f32/f16/bf16: y = sum_i f32(W_r[i]) * x_j[i]   (x in f32, exact widening of W)
 * The SIMD files compute the same integers and differ only in float summation order
 * (and, for AVX-512 BF16 rows, in rounding x to bf16). */
#include <math.h>
#include <string.h>

#include "model/kernels/cpu/qdot.h"
#include "model/kernels/quant.h"

void em_qdot_quantize_x(const float *x, int n, int in, int8_t *q, float *d)
{
    const int nb = in / EM_QK;
    for (int j = 0; j < n; j++) {
        for (int b = 0; b < nb; b++) {
            const float *xb = x + (size_t)j * in + (size_t)b * EM_QK;
            int8_t *qb = q + (size_t)j * in + (size_t)b * EM_QK;
            float amax = 0.0f;
            for (int i = 0; i < EM_QK; i++) amax = fmaxf(amax, fabsf(xb[i]));
            const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
            d[(size_t)j * nb + b] = amax / 127.0f;
            for (int i = 0; i < EM_QK; i++) {
                long v = lrintf(xb[i] * id); /* current mode: nearest even, as cvtps2dq */
                qb[i] = (int8_t)(v > 127 ? 127 : v < -128 ? -128 : v);
            }
        }
    }
}

static size_t g_scratch_size(int wtype, int n, int in)
{
    if (wtype != EM_WT_Q8_0 && wtype != EM_WT_Q4_0) return 0;
    return (size_t)n * in + (size_t)n * (in / EM_QK) * sizeof(float);
}

static void g_prep(int wtype, const float *x, int n, int in, void *scratch, struct em_qact *a)
{
    em_qdot_prep_int8(wtype, x, n, in, scratch, a, em_qdot_quantize_x);
}

static inline float half_at(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return em_quant_f16_to_f32(h);
}

static void row_q(int wtype, const struct em_qact *a, const uint8_t *row, float *acc)
{
    const int nb = a->in / EM_QK;
    const size_t bs = wtype == EM_WT_Q8_0 ? sizeof(struct em_block_q8_0)
                                          : sizeof(struct em_block_q4_0);
    for (int b = 0; b < nb; b++) {
        const uint8_t *blk = row + (size_t)b * bs;
        const float dw = half_at(blk);
        int wq[EM_QK];
        if (wtype == EM_WT_Q8_0) {
            for (int i = 0; i < EM_QK; i++) wq[i] = (int8_t)blk[2 + i];
        } else {
            for (int i = 0; i < EM_QK / 2; i++) {
                wq[i] = (blk[2 + i] & 15) - 8;
                wq[i + EM_QK / 2] = (blk[2 + i] >> 4) - 8;
            }
        }
        for (int j = 0; j < a->n; j++) {
            const int8_t *xq = (const int8_t *)a->q + (size_t)j * a->in + (size_t)b * EM_QK;
            int s = 0;
            for (int i = 0; i < EM_QK; i++) s += wq[i] * xq[i];
            acc[j] += dw * a->d[(size_t)j * nb + b] * (float)s;
        }
    }
}

static void row_f(int wtype, const struct em_qact *a, const uint8_t *row, float *acc)
{
    for (int i = 0; i < a->in; i++) {
        float w;
        if (wtype == EM_WT_F32) {
            memcpy(&w, row + 4 * (size_t)i, 4);
        } else {
            uint16_t h;
            memcpy(&h, row + 2 * (size_t)i, 2);
            w = wtype == EM_WT_BF16 ? em_quant_bf16_to_f32(h) : em_quant_f16_to_f32(h);
        }
        for (int j = 0; j < a->n; j++) acc[j] += w * a->x[(size_t)j * a->in + i];
    }
}

static void g_rows(int wtype, const struct em_qact *a, const uint8_t *w, size_t row_bytes,
                   int r0, int r1, float *y, size_t ldy)
{
    for (int r = r0; r < r1; r++) {
        float acc[EM_QDOT_MAX_N] = {0};
        const uint8_t *row = w + (size_t)r * row_bytes;
        if (wtype == EM_WT_Q8_0 || wtype == EM_WT_Q4_0)
            row_q(wtype, a, row, acc);
        else
            row_f(wtype, a, row, acc);
        for (int j = 0; j < a->n; j++) y[(size_t)j * ldy + r] = acc[j];
    }
}

static const struct em_qdot_ops generic_ops = {
    .name = "generic",
    .scratch_size = g_scratch_size,
    .prep = g_prep,
    .rows = g_rows,
};

const struct em_qdot_ops *em_qdot_generic(void)
{
    return &generic_ops;
}
