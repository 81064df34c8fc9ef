/* model/kernels/cuda/attn.cuh - the attention slots over row-pointer (paged) caches:
 * full / causal attention (encoder, prefill) and the decode step's single query rows.
 * One warp per (query row, head): the warp dots the query with each visible key (each lane
 * holds hd / 32 columns), keeps an online softmax (running max and sum, f32) and the
 * weighted sum of the value rows, and writes o = acc / sum once. Keys and values are read
 * through the staged row tables, f32 or f16. hd <= EM_CUDA_ATTN_MAX_HD. */
#ifndef EM_CUDA_ATTN_CUH
#define EM_CUDA_ATTN_CUH

#include "model/kernels/cuda/common.cuh"

#define EM_CUDA_ATTN_MAX_HD 256

em_err em_cuda_attn(void *ctx, const struct em_attn_args *a);
em_err em_cuda_attn_decode(void *ctx, const struct em_attn_decode_args *a);

#endif
