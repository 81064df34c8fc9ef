/* model/kernels/cuda/matmul.cu - y[n, out] = x[n, in] @ W[out, in]^T + b on the device (the
 * policy is in matmul.cuh). cuBLAS is column-major: y^T [out, n] = W [in, out]^T x^T [in, n],
 * so A = W (op T, lda in), B = x (op N, ldb in), C = y (ldc out). */
#include "model/kernels/cuda/matmul.cuh"

__global__ void k_to_bf16(__nv_bfloat16 *dst, const float *src, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __float2bfloat16_rn(src[i]);
}

/* Row r of x [n, in] as f16 times 2^-e (scale[r] = 2^e), e >= 0 the least that brings
 * max |x_r| to 2^15 or below: a power of two, so exact, and activations beyond the f16 range
 * (65504; the CPU computes F16 weights against f32 x) do not become infinities. Nearly every
 * row has e = 0, which is the plain rounding. One block of 256 threads per row. */
__global__ void k_to_f16_rows(__half *dst, float *scale, const float *x, int in)
{
    __shared__ float sh[8];
    const float *xr = x + (size_t)blockIdx.x * in;
    __half *dr = dst + (size_t)blockIdx.x * in;
    float m = 0.0f;
    for (int i = threadIdx.x; i < in; i += 256) m = fmaxf(m, fabsf(xr[i]));
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    if (threadIdx.x % 32 == 0) sh[threadIdx.x / 32] = m;
    __syncthreads();
    for (int w = 0; w < 8; w++) m = fmaxf(m, sh[w]);
    int e = 0;
    if (isfinite(m)) {
        (void)frexpf(m, &e); /* m < 2^e */
        e = e > 15 ? e - 15 : 0;
    }
    const float inv = ldexpf(1.0f, -e);
    for (int i = threadIdx.x; i < in; i += 256) dr[i] = __float2half_rn(xr[i] * inv);
    if (threadIdx.x == 0) scale[blockIdx.x] = ldexpf(1.0f, e);
}

/* rows r0 .. r0 + rows - 1 of a block-type W as BF16 [rows, in] */
__global__ void k_dequant_bf16(__nv_bfloat16 *dst, const uint8_t *w, int dtype, int in, int r0,
                               int rows)
{
    const size_t rb = em_cuda_row_bytes(dtype, in), n = (size_t)rows * in;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const size_t r = i / in, k = i % in;
        dst[i] = __float2bfloat16_rn(em_cuda_load_w(w + (r0 + r) * rb, dtype, (int64_t)k));
    }
}

/* One warp per output row o: y[r, o] = sum_k W[o, k] x[r, k] for the n (<= 8) rows of x.
 * The loops over r run to the constant bound with a guard, fully unrolled, so acc[] stays in
 * registers (indexed by a runtime bound it would live in local memory). */
__global__ void k_qgemv(float *y, const float *x, const uint8_t *w, int dtype, int n, int in,
                        int out)
{
    const int o = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (o >= out) return;
    const uint8_t *row = w + (size_t)o * em_cuda_row_bytes(dtype, in);
    float acc[EM_CUDA_QGEMV_MAX_N];
#pragma unroll
    for (int r = 0; r < EM_CUDA_QGEMV_MAX_N; r++) acc[r] = 0.0f;
    for (int k = lane; k < in; k += 32) {
        const float wk = em_cuda_load_w(row, dtype, k);
#pragma unroll
        for (int r = 0; r < EM_CUDA_QGEMV_MAX_N; r++)
            if (r < n) acc[r] += wk * x[(size_t)r * in + k];
    }
#pragma unroll
    for (int r = 0; r < EM_CUDA_QGEMV_MAX_N; r++) {
        if (r >= n) break; /* n is the same for the whole warp: the shuffles stay converged */
        const float s = em_cuda_warp_sum(acc[r]);
        if (lane == 0) y[(size_t)r * out + o] = s;
    }
}

/* y[r, o] = y[r, o] * scale[r] + b[o]; either may be NULL. */
__global__ void k_epilogue(float *y, const float *scale, const float *b, int n, int out)
{
    const size_t total = (size_t)n * out;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        float v = y[i];
        if (scale) v *= scale[i / out];
        if (b) v += b[i % out];
        y[i] = v;
    }
}

static em_err gemm(struct em_cuda_ctx *c, float *y, const void *x, cudaDataType xt, int n, int in,
                   int out, const void *w, cudaDataType wt, int ldy)
{
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &one, w, wt, in, x, xt,
                              in, &zero, y, CUDA_R_32F, ldy, CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT));
    return EM_OK;
}

static em_err check(int n, int in, int out, const struct em_tensor *w, const struct em_tensor *bias)
{
    if (n < 0 || in <= 0 || out <= 0 || !w || !w->data || w->ndim < 1 || w->shape[0] != out ||
        em_tensor_numel(w) != (int64_t)in * out)
        return EM_E_ARG;
    if (w->dtype < 0 || w->dtype >= EM_WT_COUNT) return EM_E_UNSUPPORTED;
    if ((w->dtype == EM_WT_Q8_0 || w->dtype == EM_WT_Q4_0) && in % EM_QK) return EM_E_ARG;
    if (bias && (em_tensor_numel(bias) != out || bias->dtype != EM_WT_F32)) return EM_E_ARG;
    return EM_OK;
}

em_err em_cuda_matmul(void *ctx, float *y, const float *x, int n, int in, int out,
                      const struct em_tensor *w, const struct em_tensor *bias)
{
    struct em_cuda_ctx *c = (struct em_cuda_ctx *)ctx;
    EM_CUDA_ENTER(c);
    em_err rc = check(n, in, out, w, bias);
    if (rc != EM_OK || n == 0) return rc;
    const size_t nx = (size_t)n * in;
    void *conv = NULL;
    float *scale = NULL; /* F16: per-row powers of two (k_to_f16_rows) */
    switch (w->dtype) {
    case EM_WT_F32:
        rc = gemm(c, y, x, CUDA_R_32F, n, in, out, w->data, CUDA_R_32F, out);
        break;
    case EM_WT_BF16:
    case EM_WT_F16: {
        const size_t off = (nx * 2 + 255) & ~(size_t)255; /* the F16 row scales after x */
        if ((rc = em_cuda_scratch(c, EM_CUDA_WS_CONV, off + (size_t)n * sizeof(float), &conv)) !=
            EM_OK)
            return rc;
        const bool bf = w->dtype == EM_WT_BF16;
        if (bf) {
            k_to_bf16<<<em_cuda_blocks(nx, 256), 256, 0, c->stream>>>((__nv_bfloat16 *)conv, x, nx);
        } else {
            scale = (float *)((char *)conv + off);
            k_to_f16_rows<<<n, 256, 0, c->stream>>>((__half *)conv, scale, x, in);
        }
        LAUNCH_CHECK();
        const cudaDataType t = bf ? CUDA_R_16BF : CUDA_R_16F;
        rc = gemm(c, y, conv, t, n, in, out, w->data, t, out);
        break;
    }
    default: /* Q8_0, Q4_0 */
        if (n <= EM_CUDA_QGEMV_MAX_N) {
            const int warps = 8;
            k_qgemv<<<(out + warps - 1) / warps, warps * 32, 0, c->stream>>>(
                y, x, (const uint8_t *)w->data, w->dtype, n, in, out);
            LAUNCH_CHECK();
            break;
        }
        if ((rc = em_cuda_scratch(c, EM_CUDA_WS_CONV, nx * 2, &conv)) != EM_OK) return rc;
        k_to_bf16<<<em_cuda_blocks(nx, 256), 256, 0, c->stream>>>((__nv_bfloat16 *)conv, x, nx);
        LAUNCH_CHECK();
        int rows = (int)(EM_CUDA_TILE_BYTES / ((size_t)in * 2));
        if (rows < 1) rows = 1;
        if (rows > out) rows = out;
        void *tile = NULL;
        if ((rc = em_cuda_scratch(c, EM_CUDA_WS_TILE, (size_t)rows * in * 2, &tile)) != EM_OK)
            return rc;
        for (int r0 = 0; r0 < out && rc == EM_OK; r0 += rows) {
            const int tr = out - r0 < rows ? out - r0 : rows;
            k_dequant_bf16<<<em_cuda_blocks((size_t)tr * in, 256), 256, 0, c->stream>>>(
                (__nv_bfloat16 *)tile, (const uint8_t *)w->data, w->dtype, in, r0, tr);
            LAUNCH_CHECK();
            rc = gemm(c, y + r0, conv, CUDA_R_16BF, n, in, tr, tile, CUDA_R_16BF, out);
        }
    }
    if (rc != EM_OK || (!bias && !scale)) return rc;
    const size_t ny = (size_t)n * out;
    k_epilogue<<<em_cuda_blocks(ny, 256), 256, 0, c->stream>>>(
        y, scale, bias ? (const float *)bias->data : NULL, n, out);
    LAUNCH_CHECK();
    return EM_OK;
}
