/* model/kernels/cpu/eltwise.c - the element-wise f32 passes the audio encoder and the Whisper
 * decoder share: exact-erf GELU, softmax rows, residual add, LayerNorm. AVX2 + FMA where
 * em_cpu_level() allows, else plain C with the same formulas. */
#include "model/kernels/cpu/eltwise.h"

#include <math.h>
#include <stdlib.h>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define EF_X86 1
#include <immintrin.h>
#else
#define EF_X86 0
#endif

#include "model/kernels/cpu/cpufeat.h"
#include "model/kernels/cpu/vecmath.h"

/* ---- element-wise f32 ops: AVX2 + FMA where em_cpu_level() allows, else plain C --------
 * Both paths use the same formulas (exp: Cephes expf range reduction + degree-6 polynomial,
 * about 1 ulp; erfc: Numerical Recipes' Chebyshev fit, relative error < 1.2e-7 everywhere),
 * so they agree up to FMA rounding. Statistics accumulate in f32 (8 partial sums). */

/* x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), through erfc(|x| / sqrt 2) (no cancellation
 * for x < 0). */
static inline float gelu_f(float x)
{
    float z = fabsf(x) * (float)M_SQRT1_2;
    float t = 1.0f / (1.0f + 0.5f * z);
    float p = 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    float half_erfc = 0.5f * t * em_exp_f(p - z * z);
    return x * (x >= 0 ? 1.0f - half_erfc : half_erfc);
}

static void gelu_c(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = gelu_f(x[i]);
}

/* Row i of s[rows, n]: s = exp(s - max); inv[i] = 1 / sum (the caller scales later). */
static void softmax_c(float *s, float *inv, int rows, int n)
{
    for (int i = 0; i < rows; i++) inv[i] = 1.0f / em_exp_shift_row(s + (size_t)i * n, n);
}

/* y[d] = LayerNorm(x[d]) * w + b (biased variance, two passes). */
static void layer_norm_row_c(float *y, const float *x, int d, const float *w, const float *b,
                             float eps)
{
    float mean = 0, var = 0;
    for (int j = 0; j < d; j++) mean += x[j];
    mean /= (float)d;
    for (int j = 0; j < d; j++) var += (x[j] - mean) * (x[j] - mean);
    float inv = 1.0f / sqrtf(var / (float)d + eps);
    for (int j = 0; j < d; j++) y[j] = (x[j] - mean) * inv * w[j] + b[j];
}

static void add_c(float *restrict h, const float *restrict a, size_t n)
{
    for (size_t i = 0; i < n; i++) h[i] += a[i];
}

#if EF_X86
#define EF_AVX2 __attribute__((target("avx2,fma")))

EF_AVX2 static void gelu_avx2(float *x, size_t n)
{
    const __m256 sign = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f),
                 half = _mm256_set1_ps(0.5f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 z = _mm256_mul_ps(_mm256_andnot_ps(sign, v), _mm256_set1_ps((float)M_SQRT1_2));
        __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(half, z, one));
        __m256 p = _mm256_set1_ps(0.17087277f);
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.82215223f));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.48851587f));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.13520398f));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.27886807f));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.18628806f));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.09678418f));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.37409196f));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.00002368f));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.26551223f));
        __m256 he = _mm256_mul_ps(_mm256_mul_ps(half, t), em_exp8(_mm256_fnmadd_ps(z, z, p)));
        __m256 pos = _mm256_sub_ps(one, he);
        __m256 phi = _mm256_blendv_ps(pos, he, v); /* sign bit of x set: half_erfc */
        _mm256_storeu_ps(x + i, _mm256_mul_ps(v, phi));
    }
    for (; i < n; i++) x[i] = gelu_f(x[i]);
}

EF_AVX2 static void softmax_avx2(float *s, float *inv, int rows, int n)
{
    for (int i = 0; i < rows; i++) inv[i] = 1.0f / em_exp_shift_row8(s + (size_t)i * n, n);
}

EF_AVX2 static void layer_norm_row_avx2(float *y, const float *x, int d, const float *w,
                                        const float *b, float eps)
{
    __m256 s8 = _mm256_setzero_ps();
    int j = 0;
    for (; j + 8 <= d; j += 8) s8 = _mm256_add_ps(s8, _mm256_loadu_ps(x + j));
    float mean = em_hsum8(s8);
    for (; j < d; j++) mean += x[j];
    mean /= (float)d;
    __m256 m8 = _mm256_set1_ps(mean);
    s8 = _mm256_setzero_ps();
    for (j = 0; j + 8 <= d; j += 8) {
        __m256 c = _mm256_sub_ps(_mm256_loadu_ps(x + j), m8);
        s8 = _mm256_fmadd_ps(c, c, s8);
    }
    float var = em_hsum8(s8);
    for (; j < d; j++) var += (x[j] - mean) * (x[j] - mean);
    float inv = 1.0f / sqrtf(var / (float)d + eps);
    __m256 i8 = _mm256_set1_ps(inv);
    for (j = 0; j + 8 <= d; j += 8) {
        __m256 c = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), m8), i8);
        _mm256_storeu_ps(y + j, _mm256_fmadd_ps(c, _mm256_loadu_ps(w + j),
                                                _mm256_loadu_ps(b + j)));
    }
    for (; j < d; j++) y[j] = (x[j] - mean) * inv * w[j] + b[j];
}

EF_AVX2 static void add_avx2(float *restrict h, const float *restrict a, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(h + i, _mm256_add_ps(_mm256_loadu_ps(h + i), _mm256_loadu_ps(a + i)));
    for (; i < n; i++) h[i] += a[i];
}
#endif

static int use_avx2(void)
{
#if EF_X86
    return em_cpu_level() >= EM_CPU_AVX2;
#else
    return 0;
#endif
}

void em_gelu(float *x, size_t n)
{
#if EF_X86
    if (use_avx2()) {
        gelu_avx2(x, n);
        return;
    }
#endif
    gelu_c(x, n);
}

void em_softmax_rows(float *s, float *inv, int rows, int n)
{
#if EF_X86
    if (use_avx2()) {
        softmax_avx2(s, inv, rows, n);
        return;
    }
#endif
    softmax_c(s, inv, rows, n);
}

/* h[i] += a[i] */
void em_add_into(float *restrict h, const float *restrict a, size_t n)
{
#if EF_X86
    if (use_avx2()) {
        add_avx2(h, a, n);
        return;
    }
#endif
    add_c(h, a, n);
}

/* y[n, d] = LayerNorm(x) * w + b per row. */
void em_layer_norm(float *y, const float *x, int n, int d, const float *w, const float *b,
                   float eps)
{
    int v = use_avx2();
    for (int i = 0; i < n; i++) {
        const float *xr = x + (size_t)i * d;
        float *yr = y + (size_t)i * d;
#if EF_X86
        if (v) {
            layer_norm_row_avx2(yr, xr, d, w, b, eps);
            continue;
        }
#endif
        (void)v;
        layer_norm_row_c(yr, xr, d, w, b, eps);
    }
}

void em_f16_narrow(uint16_t *h, const float *x, size_t n)
{
#if EM_VM_X86
    if (em_cpu_level() >= EM_CPU_AVX2) {
        em_f16_store8(h, x, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) h[i] = em_quant_f32_to_f16(em_f16_clamp(x[i]));
}
