/* model/kernels/cpu/matmul.c - the CPU backend: y[n, out] = x[n, in] @ W[out, in]^T + b.
 *
 * Two paths (the policy is in backend.h):
 *   n <= EM_MM_QMM_MAX_N   em_qmatmul (model/kernels/cpu/qmatmul.h): SIMD row kernels reading
 *                          W once, in its stored dtype, on the qmatmul thread pool;
 *   n >  EM_MM_QMM_MAX_N   an aligned f32 W goes straight to OpenBLAS cblas_sgemm; otherwise
 *                          W is widened / dequantized one tile of rows at a time into f32
 *                          scratch and each tile is handed to cblas_sgemm (OpenBLAS' threads). */
#include <cblas.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/kernels/backend.h"
#include "model/kernels/cpu/cpufeat.h"
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
        em_tensor_read_f32(w, r0 * (size_t)in, tr * (size_t)in, tile);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, (int)tr, in, 1.0f, x, in, tile,
                    in, 0.0f, y + r0, out);
    }
    free(tile);
    return EM_OK;
}

/* The SIMD level for float rows on the small-n path: see EM_MM_BF16_EXACT in backend.h. */
static int small_level(int dtype)
{
    int level = em_cpu_level();
    if (EM_MM_BF16_EXACT && dtype == EM_DT_BF16 && level == EM_CPU_AVX512 &&
        em_cpu_has_avx512bf16())
        level = EM_CPU_AVX2; /* widen + f32 FMA instead of vdpbf16ps on bf16-rounded x */
    return level;
}

static em_err cpu_matmul(void *ctx, float *y, const float *x, int n, int in, int out,
                         const struct em_tensor *w, const struct em_tensor *bias)
{
    (void)ctx;
    em_err rc = check(n, in, out, w, bias);
    if (rc != EM_OK || n == 0) return rc;
    if (n <= EM_MM_QMM_MAX_N) {
        struct em_qmm_opts o = em_qmm_opts_default();
        o.level = small_level(w->dtype);
        rc = em_qmatmul_ex(&o, y, x, n, in, out, w->dtype, w->data, NULL);
    } else {
        rc = matmul_blas(y, x, n, in, out, w);
    }
    if (rc != EM_OK) return rc;
    return add_bias(y, n, out, bias);
}

static const struct em_backend_ops cpu_ops = {
    .name = "cpu",
    .matmul = cpu_matmul,
};
static const struct em_backend cpu_backend = {.ops = &cpu_ops, .ctx = NULL};

const struct em_backend *em_backend_cpu(void) { return &cpu_backend; }

em_err em_matmul(float *y, const float *x, int n, int in, int out, const struct em_tensor *w,
                 const struct em_tensor *bias)
{
    return cpu_matmul(NULL, y, x, n, in, out, w, bias);
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
