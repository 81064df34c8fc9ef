/* model/kernels/cuda/norm.cu - RMSNorm (ref: Qwen2RMSNorm) and LayerNorm (biased variance,
 * two passes) per row. */
#include "model/kernels/cuda/norm.cuh"

#define NT 256

/* Sum of v over the block (all threads get it). */
__device__ float block_sum(float v, float *sh)
{
    v = em_cuda_warp_sum(v);
    const int w = threadIdx.x / 32, lane = threadIdx.x % 32;
    __syncthreads(); /* sh may still be read from a previous call */
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < NT / 32 ? sh[lane] : 0.0f;
    return em_cuda_warp_sum(v);
}

__global__ void k_rmsnorm(float *y, const float *x, const float *w, int d, float eps)
{
    __shared__ float sh[NT / 32];
    const float *xr = x + (size_t)blockIdx.x * d;
    float *yr = y + (size_t)blockIdx.x * d;
    float s = 0.0f;
    for (int i = threadIdx.x; i < d; i += NT) s += xr[i] * xr[i];
    s = block_sum(s, sh);
    const float r = rsqrtf(s / (float)d + eps);
    for (int i = threadIdx.x; i < d; i += NT) yr[i] = w[i] * (xr[i] * r);
}

__global__ void k_layernorm(float *y, const float *x, const float *w, const float *b, int d,
                            float eps)
{
    __shared__ float sh[NT / 32];
    const float *xr = x + (size_t)blockIdx.x * d;
    float *yr = y + (size_t)blockIdx.x * d;
    float s = 0.0f;
    for (int i = threadIdx.x; i < d; i += NT) s += xr[i];
    const float mean = block_sum(s, sh) / (float)d;
    float v = 0.0f;
    for (int i = threadIdx.x; i < d; i += NT) v += (xr[i] - mean) * (xr[i] - mean);
    const float r = rsqrtf(block_sum(v, sh) / (float)d + eps);
    for (int i = threadIdx.x; i < d; i += NT) yr[i] = (xr[i] - mean) * r * w[i] + b[i];
}

em_err em_cuda_rmsnorm(void *ctx, float *y, const float *x, const float *w, int n, int d, float eps)
{
    struct em_cuda_ctx *c = (struct em_cuda_ctx *)ctx;
    EM_CUDA_ENTER(c);
    if (n < 0 || d < 1) return EM_E_ARG;
    if (n == 0) return EM_OK;
    k_rmsnorm<<<n, NT, 0, c->stream>>>(y, x, w, d, eps);
    LAUNCH_CHECK();
    return EM_OK;
}

em_err em_cuda_layernorm(void *ctx, float *y, const float *x, const float *w, const float *b,
                         int n, int d, float eps)
{
    struct em_cuda_ctx *c = (struct em_cuda_ctx *)ctx;
    EM_CUDA_ENTER(c);
    if (n < 0 || d < 1) return EM_E_ARG;
    if (n == 0) return EM_OK;
    k_layernorm<<<n, NT, 0, c->stream>>>(y, x, w, b, d, eps);
    LAUNCH_CHECK();
    return EM_OK;
}
