/* model/kernels/cuda/norm.cuh - RMSNorm and LayerNorm slots: one block of 256 threads per
 * row, sums in f32 (block reduction), the formulas of backend.h. */
#ifndef EM_CUDA_NORM_CUH
#define EM_CUDA_NORM_CUH

#include "model/kernels/cuda/common.cuh"

em_err em_cuda_rmsnorm(void *ctx, float *y, const float *x, const float *w, int n, int d, float eps);
em_err em_cuda_layernorm(void *ctx, float *y, const float *x, const float *w, const float *b,
                         int n, int d, float eps);

#endif
