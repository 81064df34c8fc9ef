/* model/kernels/cpu/qdot_avx512.c - AVX-512 (F/BW/VL/DQ + VNNI, optional BF16) row kernels.
 * Compiled with -mavx512*; only reached through em_qdot_avx512() after em_cpu_level() says so.
 *
 * q8_0 / q4_0 (two 32-blocks per zmm, lanes 0-7 block b, lanes 8-15 block b+1):
 *   activations are stored as u8 = q + 128 so vpdpbusd (u8 x s8) can take them; per block
 *   sum((q + 128) * w) = sum(q * w) + 128 * sum(w), and the 128 * sum(w) term is computed once
 *   per weight block (vpdpbusd with 0x80 bytes) and shared by all n activations:
 *     s_j  = vpdpbusd(-128 * sum_w, xu_j, w)          int32 per lane, exact
 *     acc_j += float(s_j) * (dw * dx_j)                 f32 per lane, reduced at row end
 *   q4_0 nibbles are unpacked to s8 (q - 8) first; the rest is the same kernel.
 * bf16 rows: vdpbf16ps on x rounded to bf16 (if the CPU has AVX512_BF16), else widened + FMA.
 * f16 rows: vcvtph2ps + FMA; f32 rows: FMA. Row ends use masked loads (no over-read). */
#include <immintrin.h>
#include <string.h>

#include "model/kernels/cpu/qdot.h"
#include "model/quant.h"

#define INLINE static inline __attribute__((always_inline))

/* ---- activation prep ---- */

static size_t z_scratch_size(int wtype, int n, int in)
{
    if (wtype == EM_WT_Q8_0 || wtype == EM_WT_Q4_0)
        return (size_t)n * in + (size_t)n * (in / EM_QK) * 8 * sizeof(float);
    if (wtype == EM_WT_BF16) return (size_t)n * in * sizeof(uint16_t);
    return 0;
}

static void quantize_x(const float *x, int n, int in, uint8_t *q, float *dexp)
{
    const int nb = in / EM_QK;
    const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF));
    for (int j = 0; j < n; j++) {
        for (int b = 0; b < nb; b++) {
            const float *xb = x + (size_t)j * in + (size_t)b * EM_QK;
            const __m512 v0 = _mm512_loadu_ps(xb), v1 = _mm512_loadu_ps(xb + 16);
            const __m512 m = _mm512_max_ps(_mm512_and_ps(v0, absmask), _mm512_and_ps(v1, absmask));
            const float amax = _mm512_reduce_max_ps(m);
            const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
            const __m512 vid = _mm512_set1_ps(id);
            const __m128i sign = _mm_set1_epi8((char)0x80);
            const __m128i q0 = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v0, vid)));
            const __m128i q1 = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v1, vid)));
            uint8_t *qb = q + (size_t)j * in + (size_t)b * EM_QK;
            _mm_storeu_si128((__m128i *)qb, _mm_xor_si128(q0, sign));
            _mm_storeu_si128((__m128i *)(qb + 16), _mm_xor_si128(q1, sign));
            _mm256_storeu_ps(dexp + ((size_t)j * nb + b) * 8, _mm256_set1_ps(amax / 127.0f));
        }
    }
}

static void z_prep(int wtype, const float *x, int n, int in, void *scratch, struct em_qact *a)
{
    memset(a, 0, sizeof *a);
    a->n = n;
    a->in = in;
    a->x = x;
    if (wtype == EM_WT_Q8_0 || wtype == EM_WT_Q4_0) {
        uint8_t *q = scratch;
        float *d = (float *)(q + (size_t)n * in);
        quantize_x(x, n, in, q, d);
        a->q = q;
        a->d = d;
    } else if (wtype == EM_WT_BF16 && scratch) {
        uint16_t *xb = scratch;
        const size_t total = (size_t)n * in;
        size_t i = 0;
        for (; i + 16 <= total; i += 16)
            _mm256_storeu_si256((__m256i *)(xb + i),
                                (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + i)));
        for (; i < total; i++) xb[i] = em_quant_f32_to_bf16(x[i]);
        a->xb = xb;
    }
}

/* ---- q8_0 / q4_0 ---- */

INLINE __m512i load_w_pair(const uint8_t *b0, const uint8_t *b1, int q4, int one)
{
    if (!q4) {
        const __m256i lo = _mm256_loadu_si256((const __m256i *)(b0 + 2));
        if (one) return _mm512_zextsi256_si512(lo);
        return _mm512_inserti64x4(_mm512_castsi256_si512(lo),
                                  _mm256_loadu_si256((const __m256i *)(b1 + 2)), 1);
    }
    /* [qs0, qs0, qs1, qs1] >> [0, 4, 0, 4] & 15, minus 8: elements 0..15 then 16..31 */
    const __m128i q0 = _mm_loadu_si128((const __m128i *)(b0 + 2));
    const __m256i t0 = _mm256_set_m128i(q0, q0);
    __m512i t = _mm512_castsi256_si512(t0);
    if (!one) {
        const __m128i q1 = _mm_loadu_si128((const __m128i *)(b1 + 2));
        t = _mm512_inserti64x4(t, _mm256_set_m128i(q1, q1), 1);
    }
    const __m512i sh = _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0);
    t = _mm512_and_si512(_mm512_srlv_epi64(t, sh), _mm512_set1_epi8(15));
    t = _mm512_sub_epi8(t, _mm512_set1_epi8(8));
    if (one) t = _mm512_maskz_mov_epi32(0x00FF, t);
    return t;
}

INLINE __m512 load_d_pair(const uint8_t *b0, const uint8_t *b1, int one)
{
    uint16_t h0, h1 = 0;
    memcpy(&h0, b0, 2);
    if (!one) memcpy(&h1, b1, 2);
    return _mm512_cvtph_ps(_mm256_set_m128i(_mm_set1_epi16((short)h1), _mm_set1_epi16((short)h0)));
}

INLINE void q_rows_body(const int N, const int q4, const struct em_qact *a, const uint8_t *w,
                        size_t rs, int r0, int r1, float *y, size_t ldy)
{
    const int in = a->in, nb = in / EM_QK;
    const size_t bs = q4 ? sizeof(struct em_block_q4_0) : sizeof(struct em_block_q8_0);
    const __m512i c128 = _mm512_set1_epi8((char)0x80);
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = w + (size_t)r * rs;
        __m512 acc[EM_QDOT_MAX_N];
#pragma GCC unroll 8
        for (int j = 0; j < N; j++) acc[j] = _mm512_setzero_ps();
        for (int b = 0; b < nb; b += 2) {
            const int one = b + 1 == nb;
            const uint8_t *b0 = row + (size_t)b * bs, *b1 = b0 + bs;
            const __m512i wv = load_w_pair(b0, b1, q4, one);
            const __m512 dw = load_d_pair(b0, b1, one);
            const __m512i corr = _mm512_sub_epi32(
                _mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), c128, wv));
            const __mmask16 m = one ? 0x00FF : 0xFFFF;
#pragma GCC unroll 8
            for (int j = 0; j < N; j++) {
                const uint8_t *xq = a->q + (size_t)j * in + (size_t)b * EM_QK;
                const float *xd = a->d + ((size_t)j * nb + b) * 8;
                const __m512i xv = _mm512_maskz_loadu_epi32(m, xq);
                const __m512i s = _mm512_dpbusd_epi32(corr, xv, wv);
                const __m512 sc = _mm512_mul_ps(dw, _mm512_maskz_loadu_ps(m, xd));
                acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), sc, acc[j]);
            }
        }
#pragma GCC unroll 8
        for (int j = 0; j < N; j++) y[(size_t)j * ldy + r] = _mm512_reduce_add_ps(acc[j]);
    }
}

/* ---- f32 / f16 / bf16 rows: 32 weights per step, two accumulators per activation ---- */

INLINE __m512 widen16(const uint8_t *p, int wtype, __mmask16 m)
{
    if (wtype == EM_WT_F32) return _mm512_maskz_loadu_ps(m, p);
    const __m256i h = _mm256_maskz_loadu_epi16(m, p);
    if (wtype == EM_WT_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

INLINE void f_rows_body(const int N, const int wtype, const struct em_qact *a,
                        const uint8_t *w, size_t rs, int r0, int r1, float *y, size_t ldy)
{
    const int in = a->in;
    const size_t es = wtype == EM_WT_F32 ? 4 : 2;
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = w + (size_t)r * rs;
        __m512 acc0[EM_QDOT_MAX_N], acc1[EM_QDOT_MAX_N];
#pragma GCC unroll 8
        for (int j = 0; j < N; j++) acc0[j] = acc1[j] = _mm512_setzero_ps();
        int i = 0;
        for (; i + 32 <= in; i += 32) {
            const __m512 w0 = widen16(row + i * es, wtype, 0xFFFF);
            const __m512 w1 = widen16(row + (i + 16) * es, wtype, 0xFFFF);
#pragma GCC unroll 8
            for (int j = 0; j < N; j++) {
                const float *xj = a->x + (size_t)j * in + i;
                acc0[j] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xj), acc0[j]);
                acc1[j] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xj + 16), acc1[j]);
            }
        }
        for (; i < in; i += 16) {
            const __mmask16 m = in - i >= 16 ? 0xFFFF : (__mmask16)((1u << (in - i)) - 1);
            const __m512 w0 = widen16(row + i * es, wtype, m);
#pragma GCC unroll 8
            for (int j = 0; j < N; j++)
                acc0[j] = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(m, a->x + (size_t)j * in + i),
                                          acc0[j]);
        }
#pragma GCC unroll 8
        for (int j = 0; j < N; j++)
            y[(size_t)j * ldy + r] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[j], acc1[j]));
    }
}

INLINE void bf16dp_rows_body(const int N, const struct em_qact *a, const uint8_t *w,
                             size_t rs, int r0, int r1, float *y, size_t ldy)
{
    const int in = a->in;
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = w + (size_t)r * rs;
        __m512 acc0[EM_QDOT_MAX_N], acc1[EM_QDOT_MAX_N];
#pragma GCC unroll 8
        for (int j = 0; j < N; j++) acc0[j] = acc1[j] = _mm512_setzero_ps();
        int i = 0;
        for (; i + 64 <= in; i += 64) {
            const __m512bh w0 = (__m512bh)_mm512_loadu_si512(row + 2 * i);
            const __m512bh w1 = (__m512bh)_mm512_loadu_si512(row + 2 * i + 64);
#pragma GCC unroll 8
            for (int j = 0; j < N; j++) {
                const uint16_t *xj = a->xb + (size_t)j * in + i;
                acc0[j] = _mm512_dpbf16_ps(acc0[j], (__m512bh)_mm512_loadu_si512(xj), w0);
                acc1[j] = _mm512_dpbf16_ps(acc1[j], (__m512bh)_mm512_loadu_si512(xj + 32), w1);
            }
        }
        for (; i < in; i += 32) {
            const __mmask32 m = in - i >= 32 ? 0xFFFFFFFFu : (__mmask32)((1u << (in - i)) - 1);
            const __m512bh w0 = (__m512bh)_mm512_maskz_loadu_epi16(m, row + 2 * i);
#pragma GCC unroll 8
            for (int j = 0; j < N; j++) {
                const __m512i xv = _mm512_maskz_loadu_epi16(m, a->xb + (size_t)j * in + i);
                acc0[j] = _mm512_dpbf16_ps(acc0[j], (__m512bh)xv, w0);
            }
        }
#pragma GCC unroll 8
        for (int j = 0; j < N; j++)
            y[(size_t)j * ldy + r] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[j], acc1[j]));
    }
}

/* One instance per (n, type) so accumulators stay in registers. */
#define EM_Z_ROWS(N)                                                                           \
    static void z_rows_##N(int wtype, const struct em_qact *a, const uint8_t *w, size_t rs,   \
                           int r0, int r1, float *y, size_t ldy, int bf16dp)                   \
    {                                                                                          \
        switch (wtype) {                                                                       \
        case EM_WT_Q8_0: q_rows_body(N, 0, a, w, rs, r0, r1, y, ldy); break;                   \
        case EM_WT_Q4_0: q_rows_body(N, 1, a, w, rs, r0, r1, y, ldy); break;                   \
        case EM_WT_F32: f_rows_body(N, EM_WT_F32, a, w, rs, r0, r1, y, ldy); break;            \
        case EM_WT_F16: f_rows_body(N, EM_WT_F16, a, w, rs, r0, r1, y, ldy); break;            \
        case EM_WT_BF16:                                                                       \
            if (bf16dp)                                                                        \
                bf16dp_rows_body(N, a, w, rs, r0, r1, y, ldy);                                 \
            else                                                                               \
                f_rows_body(N, EM_WT_BF16, a, w, rs, r0, r1, y, ldy);                          \
            break;                                                                             \
        default: break;                                                                        \
        }                                                                                      \
    }
EM_Z_ROWS(1)
EM_Z_ROWS(2)
EM_Z_ROWS(3)
EM_Z_ROWS(4)
EM_Z_ROWS(5)
EM_Z_ROWS(6)
EM_Z_ROWS(7)
EM_Z_ROWS(8)

typedef void (*z_rows_fn)(int, const struct em_qact *, const uint8_t *, size_t, int, int,
                          float *, size_t, int);
static const z_rows_fn z_rows_n[EM_QDOT_MAX_N + 1] = {
    NULL, z_rows_1, z_rows_2, z_rows_3, z_rows_4, z_rows_5, z_rows_6, z_rows_7, z_rows_8,
};

static void z_rows(int wtype, const struct em_qact *a, const uint8_t *w, size_t rs, int r0,
                   int r1, float *y, size_t ldy)
{
    z_rows_n[a->n](wtype, a, w, rs, r0, r1, y, ldy, a->xb != NULL);
}

static size_t z_scratch_size_nobf16(int wtype, int n, int in)
{
    return wtype == EM_WT_BF16 ? 0 : z_scratch_size(wtype, n, in);
}

static const struct em_qdot_ops avx512_bf16_ops = {
    .name = "avx512",
    .scratch_size = z_scratch_size,
    .prep = z_prep,
    .rows = z_rows,
};

static const struct em_qdot_ops avx512_ops = {
    .name = "avx512",
    .scratch_size = z_scratch_size_nobf16,
    .prep = z_prep,
    .rows = z_rows,
};

const struct em_qdot_ops *em_qdot_avx512(bool bf16)
{
    return bf16 ? &avx512_bf16_ops : &avx512_ops;
}
