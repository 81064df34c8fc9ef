/* model/kernels/cpu/matmul.c - the CPU backend: y[n, out] = x[n, in] @ W[out, in]^T + b.
 *
 * Three paths (the policy is in backend.h):
 *   n <= EM_MM_QMM_MAX_N   em_qmatmul (model/kernels/cpu/qmatmul.h): SIMD row kernels reading
 *                          W once, in its stored dtype, on the qmatmul thread pool;
 *   n >  EM_MM_QMM_MAX_N, Q8_0 / Q4_0 W, em_cpu_level() at AVX512 (VNNI)
 *                          em_igemm (model/kernels/cpu/igemm.h): int8 activations x int8
 *                          weights with vpdpbusd, on the qmatmul pool;
 *   n >  EM_MM_QMM_MAX_N   otherwise: an aligned f32 W goes straight to OpenBLAS cblas_sgemm;
 *                          else W is widened / dequantized one tile of rows at a time into
 *                          f32 scratch and each tile is handed to cblas_sgemm (OpenBLAS'
 *                          threads). */
#include <cblas.h>
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/kernels/backend.h"
#include "model/kernels/cpu/cpufeat.h"
#include "model/kernels/cpu/igemm.h"
#include "model/kernels/cpu/ops.h"
#include "model/kernels/cpu/qmatmul.h"

static em_err check(int n, int in, int out, const struct em_tensor *w,
                    const struct em_tensor *bias)
{
    if (n < 0 || in <= 0 || out <= 0 || !w || w->ndim < 1 || w->shape[0] != out ||
        em_tensor_numel(w) != (int64_t)in * out)
        return EM_E_ARG;
    if (w->dtype < 0 || w->dtype >= EM_WT_COUNT) return EM_E_UNSUPPORTED;
    if (em_dtype_nbytes(w->dtype, in) == 0) return EM_E_ARG; /* block type, in % 32 != 0 */
    if (bias && (em_tensor_numel(bias) != out || em_dtype_nbytes(bias->dtype, out) == 0))
        return EM_E_ARG;
    return EM_OK;
}

static em_err add_bias(float *y, int n, int out, const struct em_tensor *bias)
{
    if (!bias) return EM_OK;
    float *b = malloc((size_t)out * sizeof *b);
    if (!b) return EM_E_NOMEM;
    em_tensor_read_f32(bias, 0, (size_t)out, b);
    for (int i = 0; i < n; i++) {
        float *yr = y + (size_t)i * out;
        for (int j = 0; j < out; j++) yr[j] += b[j];
    }
    free(b);
    return EM_OK;
}

/* OpenBLAS threads: see the policy in backend.h. Applied once, before the first sgemm. */
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void blas_setup(void)
{
    int q = em_qmm_threads(); /* one per online CPU */
    if (openblas_get_num_threads() > q) openblas_set_num_threads(q);
}

/* ---- widening W tiles for sgemm ----------------------------------------------------------
 * The sgemm path widens every weight once per call, so for a short prefill (a 24-token prompt
 * tail) the widening is most of the time: AVX2 loops here (about 4x the scalar
 * em_tensor_read_f32), the portable one elsewhere. Whole rows only, so block types decode
 * whole blocks. */

#if defined(__x86_64__)
__attribute__((target("avx2,fma,f16c"))) static void widen_avx2(int dtype, const uint8_t *p,
                                                                size_t n, float *dst)
{
    size_t i = 0;
    switch (dtype) {
    case EM_DT_BF16:
        for (; i + 8 <= n; i += 8) {
            __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p + 2 * i)));
            _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
        }
        for (; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = em_bf16_to_f32(h);
        }
        break;
    case EM_DT_F16:
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(dst + i,
                             _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 2 * i))));
        for (; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = em_f16_to_f32(h);
        }
        break;
    case EM_DT_Q8_0:
        for (size_t b = 0; b < n / EM_QK; b++, p += sizeof(struct em_block_q8_0), dst += EM_QK) {
            uint16_t h;
            memcpy(&h, p, 2);
            const __m256 d = _mm256_set1_ps(em_f16_to_f32(h));
            for (int k = 0; k < EM_QK; k += 8) {
                __m128i q = _mm_loadl_epi64((const __m128i *)(p + 2 + k));
                __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
                _mm256_storeu_ps(dst + k, _mm256_mul_ps(f, d));
            }
        }
        break;
    case EM_DT_Q4_0: {
        const __m128i lo = _mm_set1_epi8(15), eight = _mm_set1_epi8(8);
        for (size_t b = 0; b < n / EM_QK; b++, p += sizeof(struct em_block_q4_0), dst += EM_QK) {
            uint16_t h;
            memcpy(&h, p, 2);
            const __m256 d = _mm256_set1_ps(em_f16_to_f32(h));
            const __m128i q = _mm_loadu_si128((const __m128i *)(p + 2));
            const __m128i a = _mm_sub_epi8(_mm_and_si128(q, lo), eight);                    /* 0..15 */
            const __m128i c = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(q, 4), lo), eight); /* 16.. */
            _mm256_storeu_ps(dst, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(a)), d));
            _mm256_storeu_ps(dst + 8, _mm256_mul_ps(
                _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(a, 8))), d));
            _mm256_storeu_ps(dst + 16, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(c)), d));
            _mm256_storeu_ps(dst + 24, _mm256_mul_ps(
                _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(c, 8))), d));
        }
        break;
    }
    default: memcpy(dst, p, n * sizeof *dst); /* F32 */
    }
}
#endif

/* dst[rows * in] = rows r0 .. r0 + rows - 1 of w as f32. */
static void widen_rows(const struct em_tensor *w, size_t r0, size_t rows, size_t in, float *dst)
{
#if defined(__x86_64__)
    if (em_cpu_level() >= EM_CPU_AVX2) {
        const size_t rs = em_dtype_nbytes(w->dtype, (int64_t)in);
        widen_avx2(w->dtype, (const uint8_t *)w->data + r0 * rs, rows * in, dst);
        return;
    }
#endif
    em_tensor_read_f32(w, r0 * in, rows * in, dst);
}

static em_err matmul_blas(float *y, const float *x, int n, int in, int out,
                          const struct em_tensor *w)
{
    pthread_once(&blas_once, blas_setup);
    int aligned_f32 = w->dtype == EM_DT_F32 && ((uintptr_t)w->data % sizeof(float)) == 0;
    if (aligned_f32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x, in,
                    (const float *)w->data, in, 0.0f, y, out);
        return EM_OK;
    }
    /* big tiles so sgemm amortises its packing; every tile is whole rows, so a block type
     * dequantizes whole blocks */
    size_t rows = EM_MM_TILE_BYTES / ((size_t)in * sizeof(float));
    if (rows < 1) rows = 1;
    if (rows > (size_t)out) rows = (size_t)out;
    float *tile = malloc(rows * (size_t)in * sizeof *tile);
    if (!tile) return EM_E_NOMEM;
    for (size_t r0 = 0; r0 < (size_t)out; r0 += rows) {
        size_t tr = (size_t)out - r0 < rows ? (size_t)out - r0 : rows;
        widen_rows(w, r0, tr, (size_t)in, tile);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, (int)tr, in, 1.0f, x, in, tile,
                    in, 0.0f, y + r0, out);
    }
    free(tile);
    return EM_OK;
}

em_err em_cpu_matmul(void *ctx, float *y, const float *x, int n, int in, int out,
                         const struct em_tensor *w, const struct em_tensor *bias)
{
    (void)ctx;
    em_err rc = check(n, in, out, w, bias);
    if (rc != EM_OK || n == 0) return rc;
    if (n <= EM_MM_QMM_MAX_N) {
        struct em_qmm_opts o = em_qmm_opts_default();
        o.bf16_exact = EM_MM_BF16_EXACT; /* see backend.h */
        rc = em_qmatmul_ex(&o, y, x, n, in, out, w->dtype, w->data, NULL);
    } else if ((w->dtype == EM_DT_Q8_0 || w->dtype == EM_DT_Q4_0) &&
               em_igemm_available(em_cpu_level())) {
        rc = em_igemm(y, x, n, in, out, w->dtype, w->data, 0);
    } else {
        rc = matmul_blas(y, x, n, in, out, w);
    }
    if (rc != EM_OK) return rc;
    return add_bias(y, n, out, bias);
}

em_err em_matmul(float *y, const float *x, int n, int in, int out, const struct em_tensor *w,
                 const struct em_tensor *bias)
{
    return em_cpu_matmul(NULL, y, x, n, in, out, w, bias);
}

em_err em_matmul_ref(float *y, const float *x, int n, int in, int out,
                     const struct em_tensor *w, const struct em_tensor *bias)
{
    em_err rc = check(n, in, out, w, bias);
    if (rc != EM_OK) return rc;
    float *row = malloc((size_t)in * sizeof *row), *b = NULL;
    if (!row) return EM_E_NOMEM;
    if (bias && !(b = malloc((size_t)out * sizeof *b))) {
        free(row);
        return EM_E_NOMEM;
    }
    if (b) em_tensor_read_f32(bias, 0, (size_t)out, b);
    for (int j = 0; j < out; j++) {
        em_tensor_read_f32(w, (size_t)j * in, (size_t)in, row);
        for (int i = 0; i < n; i++) {
            double s = 0;
            for (int k = 0; k < in; k++) s += (double)x[(size_t)i * in + k] * row[k];
            if (b) s += b[j];
            y[(size_t)i * out + j] = (float)s;
        }
    }
    free(row);
    free(b);
    return EM_OK;
}
