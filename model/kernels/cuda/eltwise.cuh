/* model/kernels/cuda/eltwise.cuh - the element-wise and gather slots: exact GELU (erff),
 * SiLU * mul, residual add, AvgPool1d(2, 2), the conv stem's im2col, the embedding gather
 * (any weight dtype, dequantized per element) and the per-row argmax (first index of the
 * largest, NaN never wins). Grid-stride loops of 256 threads; argmax one block per row. */
#ifndef EM_CUDA_ELTWISE_CUH
#define EM_CUDA_ELTWISE_CUH

#include "model/kernels/cuda/common.cuh"

em_err em_cuda_gelu(void *ctx, float *x, size_t n);
em_err em_cuda_silu_mul(void *ctx, float *g, const float *u, size_t n);
em_err em_cuda_add(void *ctx, float *h, const float *a, size_t n);
em_err em_cuda_avgpool2(void *ctx, float *y, const float *x, int n_out, int d);
em_err em_cuda_im2col3(void *ctx, const struct em_im2col_args *a);
em_err em_cuda_embed(void *ctx, float *x, const struct em_tensor *table, const int32_t *ids, int n);
em_err em_cuda_argmax(void *ctx, const float *logits, int n, int V, int32_t *out);

#endif
