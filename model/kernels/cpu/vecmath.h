/* model/kernels/cpu/vecmath.h - float exp for the model's element-wise passes (softmax,
 * GELU, SiLU), shared by model/encoder.c and model/decoder.c: a plain C version and an
 * AVX2 + FMA one of the same formula (Cephes expf range reduction + degree-6 polynomial,
 * about 1 ulp), so the two agree up to FMA rounding, plus AVX2 horizontal sum and max.
 * The AVX2 functions may only run where em_cpu_level() >= EM_CPU_AVX2 (cpufeat.h); they
 * exist when EM_VM_X86 is 1. Static inline, no state: thread-safe. */
#ifndef EM_VECMATH_H
#define EM_VECMATH_H

#include <math.h>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define EM_VM_X86 1
#include <immintrin.h>
#else
#define EM_VM_X86 0
#endif

/* exp(x) for x in [-87.3, 88.3], clamped outside (the softmax passes x <= 0, where the
 * clamp only touches weights below 1e-38 next to a weight of 1; erfc's argument <= -1.2
 * clamps only where erfc is below 1e-38); NaN in, NaN out. */
static inline float em_exp_f(float x)
{
    if (x != x) return x; /* NaN stays NaN (and (int)NaN below would be undefined) */
    x = x > 88.3762626647949f ? 88.3762626647949f : x;
    x = x < -87.3365478515625f ? -87.3365478515625f : x;
    float n = rintf(x * 1.44269504088896341f);
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
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

#if EM_VM_X86
#define EM_VM_AVX2 __attribute__((target("avx2,fma")))

EM_VM_AVX2 static inline __m256 em_exp8(__m256 x)
{
    /* clamp with x second: min/max return the second operand when one is NaN, so NaN
     * reaches the polynomial and stays NaN */
    x = _mm256_min_ps(_mm256_set1_ps(88.3762626647949f), x);
    x = _mm256_max_ps(_mm256_set1_ps(-87.3365478515625f), x);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
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
#endif

#endif
