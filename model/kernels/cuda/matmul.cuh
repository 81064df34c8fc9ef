/* model/kernels/cuda/matmul.cuh - the CUDA matmul slot (backend.h contract):
 *   F32 W            cublasGemmEx, f32 in / out, CUBLAS_COMPUTE_32F (no TF32: the f32
 *                    conformance bound is 1e-3 relative on the logits);
 *   F16 / BF16 W     x rounded to W's type, cublasGemmEx with f32 output and f32
 *                    accumulation (CUBLAS_COMPUTE_32F: tensor cores); for F16 each row of x
 *                    is first scaled by a power of two that keeps it inside the f16 range
 *                    and y's row scaled back (k_to_f16_rows; a no-op for ordinary rows);
 *   Q8_0 / Q4_0 W    weight-only int8 / int4: n <= EM_CUDA_QGEMV_MAX_N (decode) a warp per
 *                    output row dequantizes the blocks on the fly against f32 x (weights read
 *                    once, bandwidth-bound); larger n dequantizes tiles of whole rows to BF16
 *                    (EM_CUDA_TILE_BYTES of scratch) and runs the BF16 GEMM per tile.
 * bias: F32 (the weight slot widens every 1-D tensor). */
#ifndef EM_CUDA_MATMUL_CUH
#define EM_CUDA_MATMUL_CUH

#include "model/kernels/cuda/common.cuh"

extern "C" {
#include "model/kernels/backend_cuda.h"
}

#define EM_CUDA_QGEMV_MAX_N 8 /* EM_CUDA_TILE_BYTES: backend_cuda.h (the tests read it) */

em_err em_cuda_matmul(void *ctx, float *y, const float *x, int n, int in, int out,
                      const struct em_tensor *w, const struct em_tensor *bias);

#endif
