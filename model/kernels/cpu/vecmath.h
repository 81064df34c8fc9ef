/* model/kernels/cpu/vecmath.h - float exp for the model's element-wise passes (softmax,
 * GELU, SiLU), shared by model/audio/encoder.c and model/qwen2audio/decoder.c: a plain C version and an
 * AVX2 + FMA one of the same formula (Cephes expf range reduction + degree-6 polynomial,
 * about 1 ulp), so the two agree up to FMA rounding, plus AVX2 horizontal sum and max;
 * and the decoder's decode-attention dot / axpy rows and SwiGLU product (C and AVX2).
 * The AVX2 functions may only run where em_cpu_level() >= EM_CPU_AVX2 (cpufeat.h); they
 * exist when EM_VM_X86 is 1. Static inline, no state: thread-safe. */
#ifndef EM_VECMATH_H
#define EM_VECMATH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "model/kernels/quant.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define EM_VM_X86 1
#include <immintrin.h>
#else
#define EM_VM_X86 0
#endif

/* The constants of em_exp_f / em_exp8 (and attn_avx512.c's 16-lane copy): clamp range,
 * log2(e), ln 2 in two parts (Cody-Waite), the degree-6 polynomial's coefficients. */
#define EM_EXP_HI 88.3762626647949f
#define EM_EXP_LO -87.3365478515625f
#define EM_EXP_LOG2E 1.44269504088896341f
#define EM_EXP_LN2_HI 0.693359375f
#define EM_EXP_LN2_LO -2.12194440e-4f
#define EM_EXP_P0 1.9875691500e-4f
#define EM_EXP_P1 1.3981999507e-3f
#define EM_EXP_P2 8.3334519073e-3f
#define EM_EXP_P3 4.1665795894e-2f
#define EM_EXP_P4 1.6666665459e-1f
#define EM_EXP_P5 5.0000001201e-1f

/* exp(x) for x in [-87.3, 88.3], clamped outside (the softmax passes x <= 0, where the
 * clamp only touches weights below 1e-38 next to a weight of 1; erfc's argument <= -1.2
 * clamps only where erfc is below 1e-38); NaN in, NaN out. */
static inline float em_exp_f(float x)
{
    if (x != x) return x; /* NaN stays NaN (and (int)NaN below would be undefined) */
    x = x > EM_EXP_HI ? EM_EXP_HI : x;
    x = x < EM_EXP_LO ? EM_EXP_LO : x;
    float n = rintf(x * EM_EXP_LOG2E);
    float r = x - n * EM_EXP_LN2_HI;
    r = r - n * EM_EXP_LN2_LO;
    float p = EM_EXP_P0;
    p = p * r + EM_EXP_P1;
    p = p * r + EM_EXP_P2;
    p = p * r + EM_EXP_P3;
    p = p * r + EM_EXP_P4;
    p = p * r + EM_EXP_P5;
    p = p * (r * r) + r + 1.0f;
    return ldexpf(p, (int)n);
}

/* x[0 .. n) = exp(x - max(x)) in place (n >= 1); returns the float sum. A softmax row is
 * this times 1 / sum; callers apply that factor where it is cheapest. */
static inline float em_exp_shift_row(float *x, int n)
{
    float mx = -INFINITY;
    for (int j = 0; j < n; j++) mx = x[j] > mx ? x[j] : mx;
    float sum = 0;
    for (int j = 0; j < n; j++) sum += (x[j] = em_exp_f(x[j] - mx));
    return sum;
}

/* ---- decode attention and SwiGLU helpers (model/qwen2audio/decoder.c) ----
 * em_dots_t / em_dots8: s[i] = scale * dot(q, k + i * ld) over hd elements, for i < rows
 * (rows <= 4): one accumulator per row over the head dimension, so a row's score has the
 * same bits whatever rows is (batched and single decode steps agree).
 * em_axpys_t / em_axpys8: o[c] = p[i] * v[i * ld + c] + o[c] for i < rows in order (fused
 * in the AVX2 version): the same bits as one row at a time.
 * The _t forms take rows of floats (h == 0) or IEEE halves (h == 1, widened exactly); the
 * F16C forms are em_dots8 / em_axpys8 (floats) and em_dots8_h / em_axpys8_h (halves).
 * em_silu_mul / em_silu_mul8: g[i] = g[i] / (1 + exp(-g[i])) * u[i] (expf / em_exp8). */

/* Element i of a row of floats (h == 0) or IEEE halves (h == 1). */
static inline float em_elt(const void *r, size_t i, int h)
{
    return h ? em_quant_f16_to_f32(((const uint16_t *)r)[i]) : ((const float *)r)[i];
}

static inline void em_dots_t(const float *q, const void *k, size_t ld, int rows, int hd,
                             float scale, float *s, int h)
{
    for (int i = 0; i < rows; i++) {
        float acc = 0;
        for (int c = 0; c < hd; c++) acc += q[c] * em_elt(k, (size_t)i * ld + (size_t)c, h);
        s[i] = scale * acc;
    }
}

static inline void em_axpys_t(float *o, const float *p, const void *v, size_t ld, int rows,
                              int hd, int h)
{
    for (int i = 0; i < rows; i++)
        for (int c = 0; c < hd; c++) o[c] += p[i] * em_elt(v, (size_t)i * ld + (size_t)c, h);
}

static inline void em_silu_mul(float *g, const float *u, size_t n)
{
    for (size_t i = 0; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* ---- f16 rows (the decoder's KV cache, model/gen/kvcache.h) ----
 * Storing x as f16: em_quant_f32_to_f16(em_f16_clamp(x)) (model/kernels/quant.h): rounded to nearest
 * even, values beyond the f16 range (infinities too) saturated at +-65504, NaN stays NaN.
 * Reading: em_quant_f16_to_f32 (exact). em_f16_store8 / em_f16_load8 do the same for a row
 * with F16C, to the same bits (NaN payloads aside). */
#define EM_F16_MAX 65504.0f

static inline float em_f16_clamp(float x)
{
    return x > EM_F16_MAX ? EM_F16_MAX : x < -EM_F16_MAX ? -EM_F16_MAX : x; /* NaN passes */
}

#if EM_VM_X86
#define EM_VM_AVX2 __attribute__((target("avx2,fma")))
#define EM_VM_F16C __attribute__((target("avx2,fma,f16c")))

EM_VM_F16C static inline void em_f16_store8(uint16_t *h, const float *x, size_t n)
{
    const __m256 hi = _mm256_set1_ps(EM_F16_MAX), lo = _mm256_set1_ps(-EM_F16_MAX);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) { /* x second in max / min: NaN passes */
        const __m256 v = _mm256_min_ps(hi, _mm256_max_ps(lo, _mm256_loadu_ps(x + i)));
        _mm_storeu_si128((__m128i *)(h + i), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; i++) h[i] = em_quant_f32_to_f16(em_f16_clamp(x[i]));
}

EM_VM_F16C static inline void em_f16_load8(float *x, const uint16_t *h, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
    for (; i < n; i++) x[i] = em_quant_f16_to_f32(h[i]);
}

EM_VM_AVX2 static inline __m256 em_exp8(__m256 x)
{
    /* clamp with x second: min/max return the second operand when one is NaN, so NaN
     * reaches the polynomial and stays NaN */
    x = _mm256_min_ps(_mm256_set1_ps(EM_EXP_HI), x);
    x = _mm256_max_ps(_mm256_set1_ps(EM_EXP_LO), x);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(EM_EXP_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EM_EXP_LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EM_EXP_LN2_LO), r);
    __m256 p = _mm256_set1_ps(EM_EXP_P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EM_EXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EM_EXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EM_EXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EM_EXP_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EM_EXP_P5));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(
        _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

EM_VM_AVX2 static inline float em_hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

EM_VM_AVX2 static inline float em_hmax8(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* em_exp_shift_row with 8 lanes (the same max, exp and sum). */
EM_VM_AVX2 static inline float em_exp_shift_row8(float *x, int n)
{
    int j = 0;
    __m256 m8 = _mm256_set1_ps(-INFINITY);
    for (; j + 8 <= n; j += 8) m8 = _mm256_max_ps(m8, _mm256_loadu_ps(x + j));
    float mx = em_hmax8(m8);
    for (; j < n; j++) mx = x[j] > mx ? x[j] : mx;
    __m256 mxv = _mm256_set1_ps(mx), s8 = _mm256_setzero_ps();
    for (j = 0; j + 8 <= n; j += 8) {
        __m256 ev = em_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j), mxv));
        _mm256_storeu_ps(x + j, ev);
        s8 = _mm256_add_ps(s8, ev);
    }
    float sum = em_hsum8(s8);
    for (; j < n; j++) sum += (x[j] = em_exp_f(x[j] - mx));
    return sum;
}
/* 8 elements of a row of floats (h == 0) or halves (h == 1) from element i, as floats. */
EM_VM_F16C static inline __m256 em_ld8(const void *r, size_t i, int h)
{
    return h ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)r + i)))
             : _mm256_loadu_ps((const float *)r + i);
}

#define EM_VM_INLINE __attribute__((always_inline)) static inline

/* s[i] = scale * q . row i (i < rows) of k with rows ld elements apart (the row's element
 * type by h, a constant where this is inlined). */
EM_VM_F16C EM_VM_INLINE void em_dots8_t(const float *q, const void *k, size_t ld, int rows,
                                        int hd, float scale, float *s, int h)
{
    const int h8 = hd & ~7;
    for (int i = 0; i < rows;) {
        if (rows - i >= 4) { /* four rows per pass: four independent FMA chains */
            const size_t r0 = (size_t)i * ld;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int c = 0; c < h8; c += 8) {
                const __m256 qv = _mm256_loadu_ps(q + c);
                a0 = _mm256_fmadd_ps(qv, em_ld8(k, r0 + (size_t)c, h), a0);
                a1 = _mm256_fmadd_ps(qv, em_ld8(k, r0 + ld + (size_t)c, h), a1);
                a2 = _mm256_fmadd_ps(qv, em_ld8(k, r0 + 2 * ld + (size_t)c, h), a2);
                a3 = _mm256_fmadd_ps(qv, em_ld8(k, r0 + 3 * ld + (size_t)c, h), a3);
            }
            const float acc[4] = {em_hsum8(a0), em_hsum8(a1), em_hsum8(a2), em_hsum8(a3)};
            for (int j = 0; j < 4; j++) {
                float t = acc[j];
                for (int c = h8; c < hd; c++) t += q[c] * em_elt(k, r0 + (size_t)j * ld + (size_t)c, h);
                s[i + j] = scale * t;
            }
            i += 4;
            continue;
        }
        const size_t r0 = (size_t)i * ld;
        __m256 a = _mm256_setzero_ps();
        for (int c = 0; c < h8; c += 8)
            a = _mm256_fmadd_ps(_mm256_loadu_ps(q + c), em_ld8(k, r0 + (size_t)c, h), a);
        float t = em_hsum8(a);
        for (int c = h8; c < hd; c++) t += q[c] * em_elt(k, r0 + (size_t)c, h);
        s[i++] = scale * t;
    }
}

/* o[c] = fma(p[i], row i of v, o[c]) for i < rows in order (v's element type by h). */
EM_VM_F16C EM_VM_INLINE void em_axpys8_t(float *o, const float *p, const void *v, size_t ld,
                                         int rows, int hd, int h)
{
    const int h8 = hd & ~7;
    for (int c = 0; c < h8; c += 8) {
        __m256 a = _mm256_loadu_ps(o + c);
        for (int i = 0; i < rows; i++)
            a = _mm256_fmadd_ps(_mm256_set1_ps(p[i]), em_ld8(v, (size_t)i * ld + (size_t)c, h), a);
        _mm256_storeu_ps(o + c, a);
    }
    for (int c = h8; c < hd; c++)
        for (int i = 0; i < rows; i++) o[c] = fmaf(p[i], em_elt(v, (size_t)i * ld + (size_t)c, h), o[c]);
}

EM_VM_F16C static inline void em_dots8(const float *q, const float *k, size_t ld, int rows,
                                       int hd, float scale, float *s)
{
    em_dots8_t(q, k, ld, rows, hd, scale, s, 0);
}

EM_VM_F16C static inline void em_axpys8(float *o, const float *p, const float *v, size_t ld,
                                        int rows, int hd)
{
    em_axpys8_t(o, p, v, ld, rows, hd, 0);
}

/* em_dots8 / em_axpys8 over f16 rows (F16C widening on load; the same operation order). */
EM_VM_F16C static inline void em_dots8_h(const float *q, const uint16_t *k, size_t ld, int rows,
                                         int hd, float scale, float *s)
{
    em_dots8_t(q, k, ld, rows, hd, scale, s, 1);
}

EM_VM_F16C static inline void em_axpys8_h(float *o, const float *p, const uint16_t *v, size_t ld,
                                          int rows, int hd)
{
    em_axpys8_t(o, p, v, ld, rows, hd, 1);
}

EM_VM_AVX2 static inline void em_silu_mul8(float *g, const float *u, size_t n)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(g + i);
        const __m256 e = em_exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_div_ps(x, _mm256_add_ps(one, e)),
                                              _mm256_loadu_ps(u + i)));
    }
    for (; i < n; i++) g[i] = g[i] / (1.0f + em_exp_f(-g[i])) * u[i];
}
#endif

#endif
