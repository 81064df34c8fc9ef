/* model/kernels/cuda/eltwise.cu - element-wise passes, gathers and argmax (eltwise.cuh). */
#include "model/kernels/cuda/eltwise.cuh"

#include <math.h>
#include <stdlib.h>

#define NT 256
#define GRID_LOOP(i, n) \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

__global__ void k_gelu(float *x, size_t n)
{
    GRID_LOOP(i, n) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

__global__ void k_silu_mul(float *g, const float *u, size_t n)
{
    GRID_LOOP(i, n) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

__global__ void k_add(float *h, const float *a, size_t n)
{
    GRID_LOOP(i, n) h[i] += a[i];
}

__global__ void k_avgpool2(float *y, const float *x, int d, size_t n)
{
    GRID_LOOP(i, n)
    {
        const size_t j = i / d, c = i % d;
        y[i] = (x[2 * j * d + c] + x[(2 * j + 1) * d + c]) * 0.5f;
    }
}

__global__ void k_im2col3(struct em_im2col_args a, size_t n)
{
    GRID_LOOP(idx, n)
    {
        const size_t K = (size_t)a.ch * 3, t = idx / K, r = idx % K, i = r / 3, k = r % 3;
        const long f = (long)a.stride * (long)t + (long)k - 1;
        a.dst[idx] = f >= 0 && f < a.frames ? a.src[(size_t)f * a.fstride + i * a.cstride] : 0.0f;
    }
}

__global__ void k_embed(float *x, const uint8_t *table, int dtype, int d, const int32_t *ids,
                        size_t n)
{
    const size_t rb = em_cuda_row_bytes(dtype, d);
    GRID_LOOP(i, n)
    {
        const size_t t = i / d, c = i % d;
        x[i] = em_cuda_load_w(table + (size_t)ids[t] * rb, dtype, (int64_t)c);
    }
}

/* (v, i) beats (bv, bi): larger, or equal and earlier; NaN never beats a number. */
__device__ __forceinline__ bool better(float v, int i, float bv, int bi)
{
    if (isnan(v)) return false;
    if (isnan(bv)) return true;
    return v > bv || (v == bv && i < bi);
}

__global__ void k_argmax(const float *logits, int V, int32_t *out)
{
    __shared__ float sv[NT];
    __shared__ int si[NT];
    const float *x = logits + (size_t)blockIdx.x * V;
    float bv = NAN;
    int bi = 0x7fffffff;
    for (int j = threadIdx.x; j < V; j += NT)
        if (better(x[j], j, bv, bi)) bv = x[j], bi = j;
    sv[threadIdx.x] = bv;
    si[threadIdx.x] = bi;
    __syncthreads();
    for (int s = NT / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s && better(sv[threadIdx.x + s], si[threadIdx.x + s], sv[threadIdx.x],
                                      si[threadIdx.x]))
            sv[threadIdx.x] = sv[threadIdx.x + s], si[threadIdx.x] = si[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = si[0] == 0x7fffffff ? 0 : si[0];
}

#define CTX_C struct em_cuda_ctx *c = (struct em_cuda_ctx *)ctx

em_err em_cuda_gelu(void *ctx, float *x, size_t n)
{
    CTX_C;
    EM_CUDA_ENTER(c);
    if (!n) return EM_OK;
    k_gelu<<<em_cuda_blocks(n, NT), NT, 0, c->stream>>>(x, n);
    LAUNCH_CHECK();
    return EM_OK;
}

em_err em_cuda_silu_mul(void *ctx, float *g, const float *u, size_t n)
{
    CTX_C;
    EM_CUDA_ENTER(c);
    if (!n) return EM_OK;
    k_silu_mul<<<em_cuda_blocks(n, NT), NT, 0, c->stream>>>(g, u, n);
    LAUNCH_CHECK();
    return EM_OK;
}

em_err em_cuda_add(void *ctx, float *h, const float *a, size_t n)
{
    CTX_C;
    EM_CUDA_ENTER(c);
    if (!n) return EM_OK;
    k_add<<<em_cuda_blocks(n, NT), NT, 0, c->stream>>>(h, a, n);
    LAUNCH_CHECK();
    return EM_OK;
}

em_err em_cuda_avgpool2(void *ctx, float *y, const float *x, int n_out, int d)
{
    CTX_C;
    EM_CUDA_ENTER(c);
    if (n_out < 0 || d < 1) return EM_E_ARG;
    const size_t n = (size_t)n_out * d;
    if (!n) return EM_OK;
    k_avgpool2<<<em_cuda_blocks(n, NT), NT, 0, c->stream>>>(y, x, d, n);
    LAUNCH_CHECK();
    return EM_OK;
}

em_err em_cuda_im2col3(void *ctx, const struct em_im2col_args *a)
{
    CTX_C;
    EM_CUDA_ENTER(c);
    if (!a || a->rows < 0 || a->ch < 1 || a->stride < 1 || a->frames < 0) return EM_E_ARG;
    const size_t n = (size_t)a->rows * a->ch * 3;
    if (!n) return EM_OK;
    k_im2col3<<<em_cuda_blocks(n, NT), NT, 0, c->stream>>>(*a, n);
    LAUNCH_CHECK();
    return EM_OK;
}

em_err em_cuda_embed(void *ctx, float *x, const struct em_tensor *table, const int32_t *ids, int n)
{
    CTX_C;
    EM_CUDA_ENTER(c);
    if (n < 0 || !table || table->ndim != 2) return EM_E_ARG;
    for (int t = 0; t < n; t++)
        if (ids[t] < 0 || ids[t] >= table->shape[0]) return EM_E_ARG;
    if (!n) return EM_OK;
    void *dids = NULL;
    em_err rc = em_cuda_stage(c, ids, (size_t)n * sizeof *ids, &dids);
    if (rc != EM_OK) return rc;
    const int d = (int)table->shape[1];
    const size_t total = (size_t)n * d;
    k_embed<<<em_cuda_blocks(total, NT), NT, 0, c->stream>>>(
        x, (const uint8_t *)table->data, table->dtype, d, (const int32_t *)dids, total);
    LAUNCH_CHECK();
    return EM_OK;
}

em_err em_cuda_argmax(void *ctx, const float *logits, int n, int V, int32_t *out)
{
    CTX_C;
    EM_CUDA_ENTER(c);
    if (n < 0 || V < 1) return EM_E_ARG;
    if (!n) return EM_OK;
    void *dout = NULL;
    em_err rc = em_cuda_scratch(c, EM_CUDA_WS_CONV, (size_t)n * sizeof *out, &dout);
    if (rc != EM_OK) return rc;
    k_argmax<<<n, NT, 0, c->stream>>>(logits, V, (int32_t *)dout);
    LAUNCH_CHECK();
    CUDA_CHECK(cudaMemcpyAsync(out, dout, (size_t)n * sizeof *out, cudaMemcpyDeviceToHost, c->stream));
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
    return EM_OK;
}
