/* model/kernels/cuda/backend.cu - the CUDA backend: one device, one non-blocking stream, one
 * cuBLAS handle bound to it; the table of backend.h over the op files (matmul.cu, norm.cu,
 * rope.cu, attn.cu, eltwise.cu). Every slot enqueues on the stream and returns (host work of
 * the caller overlaps the GPU); download + sync is where the host waits. Host tables (row
 * pointers, ids) are staged through one growable device buffer; the stream orders every
 * reuse after the kernels that read it. Every slot first makes the backend's device current
 * on the calling thread (EM_CUDA_ENTER), so any one thread at a time may call it.
 * Weights: 2-D tensors uploaded once in their stored dtype (F32, F16, BF16, Q8_0 / Q4_0
 * blocks), 1-D ones (biases) widened to F32. Several workers on a host pin one GPU each
 * (--device cuda:N). */
#include <stdlib.h>
#include <string.h>

#include "model/kernels/cuda/attn.cuh"
#include "model/kernels/cuda/eltwise.cuh"
#include "model/kernels/cuda/matmul.cuh"
#include "model/kernels/cuda/norm.cuh"
#include "model/kernels/cuda/rope.cuh"

extern "C" {
#include "model/kernels/backend_cuda.h"
}

em_err em_cuda_scratch(struct em_cuda_ctx *c, int i, size_t bytes, void **out)
{
    struct em_cuda_scratch *s = &c->ws[i];
    if (s->bytes < bytes) {
        CUDA_CHECK(cudaStreamSynchronize(c->stream)); /* no queued kernel still reads it */
        if (s->p) CUDA_CHECK(cudaFree(s->p));
        s->p = NULL;
        s->bytes = 0;
        size_t want = bytes + bytes / 4;
        CUDA_CHECK(cudaMalloc(&s->p, want));
        s->bytes = want;
    }
    *out = s->p;
    return EM_OK;
}

em_err em_cuda_stage(struct em_cuda_ctx *c, const void *host, size_t bytes, void **out)
{
    em_err rc = em_cuda_scratch(c, EM_CUDA_WS_TAB, bytes, out);
    if (rc != EM_OK) return rc;
    /* pageable source: returns once the bytes are staged, so the caller may free host */
    CUDA_CHECK(cudaMemcpyAsync(*out, host, bytes, cudaMemcpyHostToDevice, c->stream));
    return EM_OK;
}

#define CTX_C struct em_cuda_ctx *c = (struct em_cuda_ctx *)ctx

static em_err cu_alloc(void *ctx, size_t bytes, void **out)
{
    CTX_C;
    *out = NULL;
    EM_CUDA_ENTER(c);
    if (bytes == 0) return EM_E_ARG;
    CUDA_CHECK(cudaMalloc(out, bytes)); /* 256-byte aligned */
    return EM_OK;
}

static void cu_free(void *ctx, void *p)
{
    CTX_C;
    if (!p) return;
    CUDA_IGNORE(cudaSetDevice(c->device));
    CUDA_IGNORE(cudaStreamSynchronize(c->stream)); /* no queued kernel still uses it */
    CUDA_IGNORE(cudaFree(p)); /* nothing to report to: a failed free leaves the memory held */
}

static em_err cu_copy_kind(struct em_cuda_ctx *c, void *dst, const void *src, size_t bytes,
                           cudaMemcpyKind kind)
{
    EM_CUDA_ENTER(c);
    if (!bytes) return EM_OK;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, c->stream));
    return EM_OK;
}

static em_err cu_upload(void *ctx, void *dst, const void *src, size_t bytes)
{
    return cu_copy_kind((struct em_cuda_ctx *)ctx, dst, src, bytes, cudaMemcpyHostToDevice);
}

static em_err cu_download(void *ctx, void *dst, const void *src, size_t bytes)
{
    return cu_copy_kind((struct em_cuda_ctx *)ctx, dst, src, bytes, cudaMemcpyDeviceToHost);
}

static em_err cu_copy(void *ctx, void *dst, const void *src, size_t bytes)
{
    return cu_copy_kind((struct em_cuda_ctx *)ctx, dst, src, bytes, cudaMemcpyDeviceToDevice);
}

static em_err cu_sync(void *ctx)
{
    CTX_C;
    EM_CUDA_ENTER(c);
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
    return EM_OK;
}

/* Dense BF16 FLOPs per SM per clock: Hopper 4096, Ampere / Ada 2048 (A100: 312 TFLOPS at 108
 * SMs x 1.41 GHz), Blackwell 8192; else 1024. */
static double bf16_per_sm_clock(int major)
{
    return major == 9 ? 4096 : major == 8 ? 2048 : major >= 10 ? 8192 : 1024;
}

static em_err cu_info(void *ctx, struct em_backend_info *o)
{
    CTX_C;
    memset(o, 0, sizeof *o);
    EM_CUDA_ENTER(c);
    cudaDeviceProp prop;
    int major = 0, minor = 0, sms = 0, clk = 0, mclk = 0, bus = 0;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, c->device));
    const char *name = prop.name;
    CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, c->device));
    CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, c->device));
    CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, c->device));
    /* optional: a runtime without these attributes leaves the peaks 0 (unknown) */
    if (cudaDeviceGetAttribute(&clk, cudaDevAttrClockRate, c->device) != cudaSuccess) clk = 0;
    if (cudaDeviceGetAttribute(&mclk, cudaDevAttrMemoryClockRate, c->device) != cudaSuccess) mclk = 0;
    if (cudaDeviceGetAttribute(&bus, cudaDevAttrGlobalMemoryBusWidth, c->device) != cudaSuccess) bus = 0;
    (void)cudaGetLastError(); /* a refused query must not fail the next launch */
    size_t free_b = 0, total_b = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    snprintf(o->device, sizeof o->device, "%.80s (cuda:%d, sm_%d%d)", name, c->device, major, minor);
    o->peak_bf16_tflops = (double)sms * clk * 1e3 * bf16_per_sm_clock(major) / 1e12;
    o->peak_gbps = 2.0 * mclk * 1e3 * (bus / 8.0) / 1e9;
    o->mem_bytes = total_b;
    return EM_OK;
}

/* bytes of host into a new device buffer *out, on the backend's stream, waited for: a plain
 * cudaMemcpy runs on the legacy default stream, which the non-blocking stream does not wait
 * for, and from pageable memory it may return before the DMA has landed, so a kernel queued
 * next could read the weight half written. */
static em_err upload_new(struct em_cuda_ctx *c, const struct em_tensor *t, const void *host,
                         size_t bytes, void **out)
{
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e == cudaSuccess && bytes) e = cudaMemcpyAsync(p, host, bytes, cudaMemcpyHostToDevice, c->stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(c->stream);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        if (p) CUDA_IGNORE(cudaFree(p));
        EM_CUDA_ERR(c, "weight %s: %s", t->name ? t->name : "?", cudaGetErrorString(e));
        return e == cudaErrorMemoryAllocation ? EM_E_NOMEM : EM_E_INTERNAL;
    }
    *out = p;
    return EM_OK;
}

static em_err cu_weight(void *ctx, const struct em_tensor *host, struct em_tensor *dev)
{
    CTX_C;
    *dev = *host;
    dev->data = NULL;
    EM_CUDA_ENTER(c);
    if (host->dtype < 0 || host->dtype >= EM_WT_COUNT) return EM_E_UNSUPPORTED;
    const int64_t numel = em_tensor_numel(host);
    void *p = NULL;
    em_err rc;
    if (host->ndim <= 1) { /* biases and vectors: f32 on the device */
        const size_t bytes = (size_t)numel * sizeof(float);
        float *w = (float *)malloc(bytes + 1);
        if (!w) return EM_E_NOMEM;
        em_tensor_read_f32(host, 0, (size_t)numel, w);
        rc = upload_new(c, host, w, bytes, &p);
        free(w);
        if (rc != EM_OK) return rc;
        dev->dtype = EM_WT_F32;
        dev->nbytes = bytes;
        dev->data = p;
        return EM_OK;
    }
    const size_t bytes = em_dtype_nbytes(host->dtype, numel);
    if (!bytes || !host->data) return EM_E_ARG;
    if ((rc = upload_new(c, host, host->data, bytes, &p)) != EM_OK) return rc;
    dev->data = p;
    dev->nbytes = bytes;
    return EM_OK;
}

static void cu_weight_free(void *ctx, struct em_tensor *dev)
{
    CTX_C;
    CUDA_IGNORE(cudaSetDevice(c->device));
    CUDA_IGNORE(cudaStreamSynchronize(c->stream)); /* no queued kernel still reads it */
    if (dev && dev->data) CUDA_IGNORE(cudaFree((void *)dev->data)); /* nothing to report to */
    if (dev) dev->data = NULL;
}

static const struct em_backend_ops cuda_ops = {
    /* .name */ "cuda",
    /* .unified */ 0,
    /* .matmul */ em_cuda_matmul,
    /* .alloc */ cu_alloc,
    /* .free */ cu_free,
    /* .upload */ cu_upload,
    /* .download */ cu_download,
    /* .copy */ cu_copy,
    /* .weight */ cu_weight,
    /* .weight_free */ cu_weight_free,
    /* .sync */ cu_sync,
    /* .decode_rows */ 64,
    /* .info */ cu_info,
    /* .rmsnorm */ em_cuda_rmsnorm,
    /* .layernorm */ em_cuda_layernorm,
    /* .gelu */ em_cuda_gelu,
    /* .silu_mul */ em_cuda_silu_mul,
    /* .add */ em_cuda_add,
    /* .avgpool2 */ em_cuda_avgpool2,
    /* .im2col3 */ em_cuda_im2col3,
    /* .embed */ em_cuda_embed,
    /* .rope_kv */ em_cuda_rope_kv,
    /* .attn */ em_cuda_attn,
    /* .attn_decode */ em_cuda_attn_decode,
    /* .argmax */ em_cuda_argmax,
};

#define EM_CUDA_MIN_MAJOR 8 /* sm_80: Makefile CUDA_ARCH, BF16 tensor cores */

int em_cuda_built(void) { return 1; }

void em_cuda_close(struct em_backend *be)
{
    if (!be) return;
    struct em_cuda_ctx *c = (struct em_cuda_ctx *)be->ctx;
    cudaSetDevice(c->device);
    if (c->stream) cudaStreamSynchronize(c->stream);
    for (int i = 0; i < EM_CUDA_WS_N; i++)
        if (c->ws[i].p) cudaFree(c->ws[i].p);
    if (c->blas) cublasDestroy(c->blas);
    if (c->stream) cudaStreamDestroy(c->stream);
    free(c);
}

const char *em_cuda_last_error(const struct em_backend *be)
{
    if (!be || be->ops != &cuda_ops) return NULL;
    return ((const struct em_cuda_ctx *)be->ctx)->err;
}

em_err em_cuda_open(int device, struct em_backend **out, struct em_errbuf *eb)
{
    *out = NULL;
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) (void)cudaGetLastError();
    if (e != cudaSuccess || count == 0)
        return em_errf(eb, EM_E_UNSUPPORTED, "device cuda:%d: no usable CUDA device (%s)", device,
                       e != cudaSuccess ? cudaGetErrorString(e) : "the driver reports 0 devices");
    if (device < 0 || device >= count)
        return em_errf(eb, EM_E_UNSUPPORTED, "device cuda:%d: this host has %d CUDA device%s "
                       "(cuda:0 .. cuda:%d)", device, count, count == 1 ? "" : "s", count - 1);
    /* the kernels are built for sm_80 and sm_90 (+ PTX): older cards have no image, and the
     * BF16 GEMMs need sm_80; refuse here in one line instead of at the first launch */
    int major = 0, minor = 0;
    if ((e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device)) ==
        cudaSuccess)
        e = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return em_errf(eb, EM_E_UNSUPPORTED, "device cuda:%d: %s", device, cudaGetErrorString(e));
    }
    if (major < EM_CUDA_MIN_MAJOR)
        return em_errf(eb, EM_E_UNSUPPORTED, "device cuda:%d: compute capability %d.%d; the "
                       "cuda backend needs %d.0 or newer", device, major, minor,
                       EM_CUDA_MIN_MAJOR);
    struct em_cuda_ctx *c = (struct em_cuda_ctx *)calloc(1, sizeof *c);
    if (!c) return em_errf(eb, EM_E_NOMEM, "device cuda:%d: out of host memory", device);
    c->device = device;
    c->be.ops = &cuda_ops;
    c->be.ctx = c;
    const char *what = "cudaSetDevice";
    if ((e = cudaSetDevice(device)) == cudaSuccess) {
        what = "cudaStreamCreateWithFlags";
        e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking);
    }
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        em_cuda_close(&c->be);
        return em_errf(eb, EM_E_UNSUPPORTED, "device cuda:%d: %s: %s", device, what,
                       cudaGetErrorString(e));
    }
    cublasStatus_t s = cublasCreate(&c->blas);
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetStream(c->blas, c->stream);
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH);
    if (s != CUBLAS_STATUS_SUCCESS) {
        em_cuda_close(&c->be);
        return em_errf(eb, EM_E_UNSUPPORTED, "device cuda:%d: cuBLAS initialisation failed "
                       "(status %d)", device, (int)s);
    }
    *out = &c->be;
    return EM_OK;
}
