/* model/kernels/cpu/qdot_avx2.c - AVX2 + FMA + F16C row kernels.
 * Compiled with -mavx2 -mfma -mf16c; only reached through em_qdot_avx2() after
 * em_cpu_level() >= EM_CPU_AVX2.
 *
 * q8_0 / q4_0, one 32-block per ymm: activations are int8 codes (em_qdot_quantize_x, same
 * codes as generic). vpmaddubsw multiplies u8 x s8, so the sign moves onto x:
 *   s_j = sum |w| * sign(x_j, w)   (vpsignb, vpmaddubsw, vpmaddwd; |w|, x <= 128 / 127 so the
 *                                   16-bit pair sums cannot saturate: 2 * 128 * 127 < 32767)
 *   acc_j += float(s_j) * (dw * dx_j)
 * f32 / f16 / bf16 rows: widen 8 at a time (vcvtph2ps; bf16 by a 16-bit shift) and FMA with
 * f32 x; tails scalar. */
#include <immintrin.h>
#include <string.h>

#include "model/kernels/cpu/qdot.h"
#include "model/kernels/quant.h"

#define INLINE static inline __attribute__((always_inline))

static size_t y_scratch_size(int wtype, int n, int in)
{
    if (wtype != EM_WT_Q8_0 && wtype != EM_WT_Q4_0) return 0;
    return (size_t)n * in + (size_t)n * (in / EM_QK) * sizeof(float);
}

/* Same codes and scales as em_qdot_quantize_x (RNE conversion, saturating packs). */
static void quantize_x(const float *x, int n, int in, int8_t *q, float *d)
{
    const int nb = in / EM_QK;
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int j = 0; j < n; j++) {
        for (int b = 0; b < nb; b++) {
            const float *xb = x + (size_t)j * in + (size_t)b * EM_QK;
            __m256 v[4], m = _mm256_setzero_ps();
            for (int k = 0; k < 4; k++) {
                v[k] = _mm256_loadu_ps(xb + 8 * k);
                m = _mm256_max_ps(m, _mm256_and_ps(v[k], absmask));
            }
            __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
            h = _mm_max_ps(h, _mm_movehl_ps(h, h));
            h = _mm_max_ss(h, _mm_movehdup_ps(h));
            const float amax = _mm_cvtss_f32(h);
            const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
            const __m256 vid = _mm256_set1_ps(id);
            __m256i i32[4];
            for (int k = 0; k < 4; k++) i32[k] = _mm256_cvtps_epi32(_mm256_mul_ps(v[k], vid));
            const __m256i p01 = _mm256_packs_epi32(i32[0], i32[1]);
            const __m256i p23 = _mm256_packs_epi32(i32[2], i32[3]);
            const __m256i p = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p01, p23), perm);
            _mm256_storeu_si256((__m256i *)(q + (size_t)j * in + (size_t)b * EM_QK), p);
            d[(size_t)j * nb + b] = amax / 127.0f;
        }
    }
}

static void y_prep(int wtype, const float *x, int n, int in, void *scratch, struct em_qact *a)
{
    em_qdot_prep_int8(wtype, x, n, in, scratch, a, quantize_x);
}

INLINE __m256i load_w(const uint8_t *blk, int q4)
{
    if (!q4) return _mm256_loadu_si256((const __m256i *)(blk + 2));
    const __m128i q = _mm_loadu_si128((const __m128i *)(blk + 2));
    const __m128i lo4 = _mm_set1_epi8(15);
    const __m256i t = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), lo4),
                                       _mm_and_si128(q, lo4));
    return _mm256_sub_epi8(t, _mm256_set1_epi8(8));
}

INLINE float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

INLINE void q_rows_body(const int N, const int q4, const struct em_qact *a, const uint8_t *w,
                        size_t rs, int r0, int r1, float *y, size_t ldy)
{
    const int in = a->in, nb = in / EM_QK;
    const size_t bs = q4 ? sizeof(struct em_block_q4_0) : sizeof(struct em_block_q8_0);
    const __m256i ones = _mm256_set1_epi16(1);
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = w + (size_t)r * rs;
        __m256 acc[EM_QDOT_MAX_N];
#pragma GCC unroll 8
        for (int j = 0; j < N; j++) acc[j] = _mm256_setzero_ps();
        for (int b = 0; b < nb; b++) {
            const uint8_t *blk = row + (size_t)b * bs;
            const __m256i wv = load_w(blk, q4);
            const __m256i aw = _mm256_sign_epi8(wv, wv);
            uint16_t h;
            memcpy(&h, blk, 2);
            const float dw = _cvtsh_ss(h);
#pragma GCC unroll 8
            for (int j = 0; j < N; j++) {
                const __m256i xv = _mm256_loadu_si256(
                    (const __m256i *)(a->q + (size_t)j * in + (size_t)b * EM_QK));
                const __m256i p16 = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(xv, wv));
                const __m256 s = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));
                const __m256 sc = _mm256_set1_ps(dw * a->d[(size_t)j * nb + b]);
                acc[j] = _mm256_fmadd_ps(s, sc, acc[j]);
            }
        }
#pragma GCC unroll 8
        for (int j = 0; j < N; j++) y[(size_t)j * ldy + r] = hsum8(acc[j]);
    }
}

INLINE __m256 widen8(const uint8_t *p, int wtype)
{
    if (wtype == EM_WT_F32) return _mm256_loadu_ps((const float *)p);
    const __m128i h = _mm_loadu_si128((const __m128i *)p);
    if (wtype == EM_WT_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

INLINE float widen1(const uint8_t *p, int wtype)
{
    float f;
    uint16_t h;
    if (wtype == EM_WT_F32) {
        memcpy(&f, p, 4);
        return f;
    }
    memcpy(&h, p, 2);
    return wtype == EM_WT_F16 ? _cvtsh_ss(h) : em_quant_bf16_to_f32(h);
}

INLINE void f_rows_body(const int N, const int wtype, const struct em_qact *a,
                        const uint8_t *w, size_t rs, int r0, int r1, float *y, size_t ldy)
{
    const int in = a->in;
    const size_t es = wtype == EM_WT_F32 ? 4 : 2;
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = w + (size_t)r * rs;
        __m256 acc0[EM_QDOT_MAX_N], acc1[EM_QDOT_MAX_N];
#pragma GCC unroll 8
        for (int j = 0; j < N; j++) acc0[j] = acc1[j] = _mm256_setzero_ps();
        int i = 0;
        for (; i + 16 <= in; i += 16) {
            const __m256 w0 = widen8(row + i * es, wtype);
            const __m256 w1 = widen8(row + (i + 8) * es, wtype);
#pragma GCC unroll 8
            for (int j = 0; j < N; j++) {
                const float *xj = a->x + (size_t)j * in + i;
                acc0[j] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xj), acc0[j]);
                acc1[j] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xj + 8), acc1[j]);
            }
        }
        float tail[EM_QDOT_MAX_N] = {0};
        for (; i < in; i++) {
            const float wi = widen1(row + i * es, wtype);
            for (int j = 0; j < N; j++) tail[j] += wi * a->x[(size_t)j * in + i];
        }
#pragma GCC unroll 8
        for (int j = 0; j < N; j++)
            y[(size_t)j * ldy + r] = hsum8(_mm256_add_ps(acc0[j], acc1[j])) + tail[j];
    }
}

#define EM_Y_ROWS(N)                                                                           \
    static void y_rows_##N(int wtype, const struct em_qact *a, const uint8_t *w, size_t rs,   \
                           int r0, int r1, float *y, size_t ldy)                               \
    {                                                                                          \
        switch (wtype) {                                                                       \
        case EM_WT_Q8_0: q_rows_body(N, 0, a, w, rs, r0, r1, y, ldy); break;                   \
        case EM_WT_Q4_0: q_rows_body(N, 1, a, w, rs, r0, r1, y, ldy); break;                   \
        case EM_WT_F32: f_rows_body(N, EM_WT_F32, a, w, rs, r0, r1, y, ldy); break;            \
        case EM_WT_F16: f_rows_body(N, EM_WT_F16, a, w, rs, r0, r1, y, ldy); break;            \
        case EM_WT_BF16: f_rows_body(N, EM_WT_BF16, a, w, rs, r0, r1, y, ldy); break;          \
        default: break;                                                                        \
        }                                                                                      \
    }
EM_Y_ROWS(1)
EM_Y_ROWS(2)
EM_Y_ROWS(3)
EM_Y_ROWS(4)
EM_Y_ROWS(5)
EM_Y_ROWS(6)
EM_Y_ROWS(7)
EM_Y_ROWS(8)

typedef void (*y_rows_fn)(int, const struct em_qact *, const uint8_t *, size_t, int, int,
                          float *, size_t);
static const y_rows_fn y_rows_n[EM_QDOT_MAX_N + 1] = {
    NULL, y_rows_1, y_rows_2, y_rows_3, y_rows_4, y_rows_5, y_rows_6, y_rows_7, y_rows_8,
};

static void y_rows(int wtype, const struct em_qact *a, const uint8_t *w, size_t rs, int r0,
                   int r1, float *y, size_t ldy)
{
    y_rows_n[a->n](wtype, a, w, rs, r0, r1, y, ldy);
}

static const struct em_qdot_ops avx2_ops = {
    .name = "avx2",
    .scratch_size = y_scratch_size,
    .prep = y_prep,
    .rows = y_rows,
};

const struct em_qdot_ops *em_qdot_avx2(void)
{
    return &avx2_ops;
}
