/* model/kernels/cuda/common.cuh - what every CUDA op file shares: the backend context (one
 * device, one stream, one cuBLAS handle, growable device scratch), the checked-call macros
 * (every CUDA and cuBLAS call: on failure the file:line and the runtime's words go into
 * ctx->err and the op returns EM_E_INTERNAL; nothing exits), and the per-dtype weight loads
 * the kernels share. Included only by .cu files. */
#ifndef EM_CUDA_COMMON_CUH
#define EM_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>

extern "C" {
#include "common/err.h"
#include "model/kernels/backend.h"
}

struct em_cuda_scratch {
    void *p;
    size_t bytes;
};

enum { EM_CUDA_WS_CONV, EM_CUDA_WS_TILE, EM_CUDA_WS_TAB, EM_CUDA_WS_N };

struct em_cuda_ctx {
    struct em_backend be; /* be.ctx points back here */
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    struct em_cuda_scratch ws[EM_CUDA_WS_N]; /* conversions, dequantized tiles, host tables */
    char err[256];                           /* the last failure: file:line call: words */
};

#define EM_CUDA_ERR(c, fmt, ...) \
    snprintf((c)->err, sizeof (c)->err, "%s:%d: " fmt, __FILE__, __LINE__, __VA_ARGS__)

/* In a function returning em_err with a struct em_cuda_ctx *c in scope. A failed call also
 * clears the runtime's per-thread "last error" (cudaGetLastError): a refused cudaMalloc
 * (EM_E_NOMEM, which a caller may wait out and retry) must not make the next kernel launch's
 * LAUNCH_CHECK report that old failure. Sticky errors (a faulted context) stay. */
#define CUDA_CHECK(call)                                                       \
    do {                                                                       \
        cudaError_t e_ = (call);                                               \
        if (e_ != cudaSuccess) {                                               \
            (void)cudaGetLastError();                                          \
            EM_CUDA_ERR(c, "%s: %s", #call, cudaGetErrorString(e_));           \
            return e_ == cudaErrorMemoryAllocation ? EM_E_NOMEM : EM_E_INTERNAL; \
        }                                                                      \
    } while (0)

/* A call whose failure has no one to report to (free, optional queries): its error is
 * dropped and cleared so that it cannot surface in a later LAUNCH_CHECK. */
#define CUDA_IGNORE(call)                                                      \
    do {                                                                       \
        if ((call) != cudaSuccess) (void)cudaGetLastError();                   \
    } while (0)

#define CUBLAS_CHECK(call)                                                     \
    do {                                                                       \
        cublasStatus_t s_ = (call);                                            \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                     \
            (void)cudaGetLastError();                                          \
            EM_CUDA_ERR(c, "%s: cuBLAS status %d", #call, (int)s_);            \
            return s_ == CUBLAS_STATUS_ALLOC_FAILED ? EM_E_NOMEM : EM_E_INTERNAL; \
        }                                                                      \
    } while (0)

/* First statement of every slot: binds the calling thread to the backend's device (the
 * runtime's current device is per host thread, and a worker opens the backend on one thread
 * and steps the model on another; cuda:N with N > 0 would otherwise allocate on and launch
 * into device 0). Cheap when the device is already current. */
#define EM_CUDA_ENTER(c) CUDA_CHECK(cudaSetDevice((c)->device))

/* After a kernel launch. */
#define LAUNCH_CHECK() CUDA_CHECK(cudaGetLastError())

/* At least bytes of scratch slot i (contents undefined; reallocation synchronizes). */
em_err em_cuda_scratch(struct em_cuda_ctx *c, int i, size_t bytes, void **out);
/* bytes of host data (row-pointer tables, ids) copied into scratch slot EM_CUDA_WS_TAB, at
 * its start (a slot stages one blob, laying its tables out in it); *out the device address.
 * The copy is queued on the stream from pageable memory, which returns once the bytes are
 * staged, so the caller may free host at once; the stream orders the next stage after the
 * kernels that read this one. */
em_err em_cuda_stage(struct em_cuda_ctx *c, const void *host, size_t bytes, void **out);

static inline unsigned em_cuda_blocks(size_t n, unsigned threads)
{
    size_t b = (n + threads - 1) / threads;
    return (unsigned)(b < 65535u * 32u ? b : 65535u * 32u);
}

/* Element i of row (a weight row of em_dtype dtype) as f32: the decodings of quant.h. */
__device__ __forceinline__ float em_cuda_load_w(const void *row, int dtype, int64_t i)
{
    switch (dtype) {
    case EM_WT_F32: return ((const float *)row)[i];
    case EM_WT_F16: return __half2float(((const __half *)row)[i]);
    case EM_WT_BF16: return __bfloat162float(((const __nv_bfloat16 *)row)[i]);
    case EM_WT_Q8_0: {
        const struct em_block_q8_0 *b = (const struct em_block_q8_0 *)row + i / EM_QK;
        __half_raw h;
        h.x = b->d;
        return __half2float(__half(h)) * (float)b->qs[i % EM_QK];
    }
    default: { /* EM_WT_Q4_0 */
        const struct em_block_q4_0 *b = (const struct em_block_q4_0 *)row + i / EM_QK;
        const int j = (int)(i % EM_QK);
        const int q = j < EM_QK / 2 ? (b->qs[j] & 15) : (b->qs[j - EM_QK / 2] >> 4);
        __half_raw h;
        h.x = b->d;
        return __half2float(__half(h)) * (float)(q - 8);
    }
    }
}

/* Bytes of one row of k elements of dtype (quant.h em_wtype_row_size, device side). */
__host__ __device__ __forceinline__ size_t em_cuda_row_bytes(int dtype, int64_t k)
{
    switch (dtype) {
    case EM_WT_F32: return (size_t)k * 4;
    case EM_WT_F16:
    case EM_WT_BF16: return (size_t)k * 2;
    case EM_WT_Q8_0: return (size_t)(k / EM_QK) * sizeof(struct em_block_q8_0);
    default: return (size_t)(k / EM_QK) * sizeof(struct em_block_q4_0);
    }
}

__device__ __forceinline__ float em_cuda_warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

#endif
