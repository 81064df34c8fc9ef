/* model/kernels/cuda/rope.cuh - the rope_kv slot: one block per row, rotate-half RoPE on the
 * row's query and key heads in place, then its key and value stored through the row-pointer
 * tables (f32, or f16: round to nearest even, saturated at +-65504, NaN kept). */
#ifndef EM_CUDA_ROPE_CUH
#define EM_CUDA_ROPE_CUH

#include "model/kernels/cuda/common.cuh"

em_err em_cuda_rope_kv(void *ctx, const struct em_rope_kv_args *a);

#endif
