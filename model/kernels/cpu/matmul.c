/* model/kernels/cpu/matmul.c - the CPU backend: y[n, out] = x[n, in] @ W[out, in]^T + b.
 * An aligned f32 W goes straight to OpenBLAS cblas_sgemm; otherwise W is widened one tile
 * of rows at a time into f32 scratch (a cache-sized tile for small n, where the widening
 * dominates) and each tile is handed to cblas_sgemm (OpenBLAS' own threads). */
#include <cblas.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/kernels/backend.h"

static em_err check(int n, int in, int out, const struct em_tensor *w,
                    const struct em_tensor *bias)
{
    if (n < 0 || in <= 0 || out <= 0 || !w || w->ndim < 1 || w->shape[0] != out ||
        em_tensor_numel(w) != (int64_t)in * out)
        return EM_E_ARG;
    if (em_dtype_size(w->dtype) == 0) return EM_E_UNSUPPORTED;
    if (bias && (em_tensor_numel(bias) != out || em_dtype_size(bias->dtype) == 0)) return EM_E_ARG;
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

static em_err matmul_blas(float *y, const float *x, int n, int in, int out,
                          const struct em_tensor *w)
{
    int aligned_f32 = w->dtype == EM_DT_F32 && ((uintptr_t)w->data % sizeof(float)) == 0;
    if (aligned_f32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x, in,
                    (const float *)w->data, in, 0.0f, y, out);
        return EM_OK;
    }
    /* few input rows: a cache-sized tile (sgemv-like, bound by the widening); many rows:
     * big tiles so sgemm amortises packing */
    size_t cap = n < EM_MM_SMALL_N ? EM_MM_TILE_SMALL : EM_MM_TILE_BYTES;
    size_t rows = cap / ((size_t)in * sizeof(float));
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

static em_err cpu_matmul(void *ctx, float *y, const float *x, int n, int in, int out,
                         const struct em_tensor *w, const struct em_tensor *bias)
{
    (void)ctx;
    em_err rc = check(n, in, out, w, bias);
    if (rc != EM_OK || n == 0) return rc;
    if ((rc = matmul_blas(y, x, n, in, out, w)) != EM_OK) return rc;
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
    for (int i = 0; i < n; i++)
        for (int j = 0; j < out; j++) {
            double s = 0;
            for (int k = 0; k < in; k++) {
                float wv;
                em_tensor_read_f32(w, (size_t)j * in + k, 1, &wv);
                s += (double)x[(size_t)i * in + k] * wv;
            }
            if (bias) {
                float bv;
                em_tensor_read_f32(bias, (size_t)j, 1, &bv);
                s += bv;
            }
            y[(size_t)i * out + j] = (float)s;
        }
    return EM_OK;
}
