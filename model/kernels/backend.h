/* model/kernels/backend.h - the compute ops model code calls; nothing else crosses it.
 *
 * What crosses: one table (struct em_backend_ops + its ctx) per backend, chosen once by name
 * (em_backend_open: "cpu", "cuda[:N]", EARMARK_DEVICE). Memory slots (alloc / free, upload /
 * download / copy, weight / weight_free, sync) and the layer primitives the encoder, the
 * projector and the decoder are made of (matmul in every weight type, RMSNorm, LayerNorm,
 * RoPE with the KV-cache row writes, full / causal attention and decode attention over
 * row-pointer (paged) caches, GELU, SiLU x mul, residual add, avg-pool, the conv stem's
 * im2col, embedding gather, argmax). The model code holds the network's structure and calls
 * only these; it never tests which backend it has (only the `unified` and `host_visible`
 * capabilities).
 * Pointers: activations and cache rows are "device" memory (from alloc; the CPU's is host
 * memory); weights are em_tensor views returned by the weight slot; small index arrays
 * (token ids, row-pointer tables, per-sequence lengths) are host arrays the backend reads
 * during the call (it copies them if it needs them later). Slots may run asynchronously in
 * call order (CUDA: one stream); download + sync is where results reach the host.
 * Ownership: alloc'd memory until free; resident weights until weight_free; the backend
 * until em_backend_close (the CPU backend is static).
 * Errors: EM_E_ARG (shapes, NULL pointers), EM_E_UNSUPPORTED (dtype, device), EM_E_NOMEM,
 * EM_E_INTERNAL (a device call failed; the CUDA backend keeps its file:line). No slot prints
 * or exits.
 * Threads: the CPU backend's slots may be called from several threads (below); a CUDA
 * backend (one stream) from one thread at a time.
 *
 * Matmul contract (PyTorch Linear): y[n, out] = x[n, in] @ W[out, in]^T (+ bias[out]).
 * W is an em_tensor in F32, F16, BF16 (as stored in a checkpoint mapping) or Q8_0 / Q4_0
 * (GGUF blocks, model/kernels/quant.h; then in must be a multiple of 32); it is read as a 2-D matrix
 * [shape[0], numel / shape[0]] (so a Conv1d weight [out, in, k] is the matrix [out, in * k]
 * with column index i * k + j, ready for im2col). bias may be NULL, or a 1-D tensor of length
 * out in any of the same dtypes. x and y are f32, row-major, must not overlap. Accumulation
 * is f32.
 *
 * CPU backend dispatch on n (the number of activation rows):
 *   n <= EM_MM_QMM_MAX_N (decode; batched decode of up to 8 prompts): em_qmatmul
 *       (model/kernels/cpu/qmatmul.h) for every dtype: W is streamed once in its stored
 *       dtype, split by rows over the qmatmul pool (one thread per online CPU). Quantized W
 *       dots int8-quantized x (per 32-block scale, as ggml does); f32/f16 rows use f32 x and
 *       FMA; bf16 rows see EM_MM_BF16_EXACT below. Bias added afterwards in f32.
 *   n >  EM_MM_QMM_MAX_N, W in Q8_0 / Q4_0 and em_cpu_level() == EM_CPU_AVX512 (VNNI):
 *       em_igemm (model/kernels/cpu/igemm.h), an int8 GEMM on the qmatmul pool: x is
 *       quantized per 32-block exactly as on the small-n path and the same sum of
 *       dw * dx * integer block dots is computed, so prefill and decode see one definition.
 *   n >  EM_MM_QMM_MAX_N otherwise (prefill, encoder, conv stem): an aligned f32 W goes to
 *       OpenBLAS cblas_sgemm in place; otherwise W is widened (f16/bf16) or dequantized
 *       (q8_0/q4_0 below AVX512) to f32 one tile of whole rows at a time (EM_MM_TILE_BYTES
 *       of scratch) and each tile is multiplied with cblas_sgemm.
 *
 * Threads (no oversubscription by construction): one em_matmul call runs on exactly one of
 * the two pools, never both, and both pools are sized to the online CPUs (the first sgemm
 * caps openblas_set_num_threads at em_qmm_threads() if OpenBLAS was started with more).
 * Idle threads of either pool spin only briefly: the qmatmul pool for a few thousand pause
 * loops (tens of microseconds) before it sleeps; OpenBLAS' idle workers spin with
 * sched_yield for 2^OPENBLAS_THREAD_TIMEOUT cycles (default 2^28, about 0.1 s) after an
 * sgemm, which only matters at the one prefill -> decode switch per generation (they yield
 * to the runnable qmatmul threads). OpenBLAS reads that variable when the library loads, so
 * it cannot be set from here; a deployment that alternates prefill and decode at a high rate
 * may export OPENBLAS_THREAD_TIMEOUT=4 (the minimum). OPENBLAS_CORETYPE is never changed.
 * Two threads calling em_matmul at once share the CPUs (each pool serves one call at a time;
 * a qmatmul call finding its pool busy runs on its own thread).
 *
 * Thread-safety: em_matmul may be called from several threads; each call allocates its own
 * scratch (at most EM_MM_TILE_BYTES, or one row of W if that is larger; the small-n path:
 * n * in bytes of quantized activations; the int8 GEMM: about n * in * 33 / 32 bytes of
 * activations plus 40 * in bytes per pool thread, em_igemm_scratch_bytes). */
#ifndef EM_BACKEND_H
#define EM_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "model/loader/tensor.h"

#define EM_MM_QMM_MAX_N 8 /* n at or below this: em_qmatmul; above: em_igemm or sgemm */
#define EM_MM_TILE_BYTES (8u << 20)     /* f32 scratch per widened tile (sgemm path) */

/* 1: on the small-n path bf16 rows are widened and dotted with f32 FMA (em_qmm_opts.bf16_exact) even
 * where AVX512_BF16 exists, so x is not rounded to bf16 and the result matches the f32
 * reference to accumulation order; 0: vdpbf16ps on bf16-rounded x (faster in compute, about
 * 2^-9 relative error per product). Set to 1: see docs/bench-model.md. */
#ifndef EM_MM_BF16_EXACT
#define EM_MM_BF16_EXACT 1
#endif

/* ---- the layer primitives' arguments -------------------------------------------------- */

/* Multi-head attention (encoder: full; decoder prefill: causal over a cache):
 *   o[i, h*hd + c] = sum_j p_h[i, j] v_j[g*hd + c],   g = h / (heads / kv_heads)
 *   p_h[i, :] = softmax_{j < valid(i)}(scale * sum_c q[i, h*hd + c] k_j[g*hd + c])
 * for query rows i < T, keys j < n, valid(i) = n (full) or p0 + i + 1 (causal: query i sits at
 * position p0 + i of a sequence whose keys are positions 0 .. n - 1, n = p0 + T).
 * q [T, ldq] and o [T, ldo] are device memory; key / value row j is k[j] / v[j]: a host array
 * of n device pointers (a paged cache: each row may live in another page; f32 rows through
 * k / v, IEEE-half rows through k16 / v16, the other pair NULL). */
struct em_attn_args {
    float *o;
    int ldo;
    const float *q;
    int ldq;
    const float *const *k, *const *v; /* n row pointers each (f32 rows) */
    const uint16_t *const *k16, *const *v16; /* or these (f16 rows); the other pair NULL */
    int T, n, p0;                      /* full: n == T, p0 == 0; causal: n == p0 + T */
    bool causal;
    int heads, kv_heads, hd;           /* heads a multiple of kv_heads */
    float scale;
};

/* Decode attention: B single query rows, row b of its own sequence at position n[b] - 1 (its
 * K/V row written), attending to that sequence's keys 0 .. n[b] - 1 (same formula as above,
 * T = 1, causal). q[b], o[b]: device rows of heads * hd floats (host array of B pointers);
 * k[b] / v[b]: host arrays of n[b] device row pointers of kv_heads * hd elements, f32 or (f16
 * == 1) IEEE halves. Sequences may share rows (prompts over one audio prefix): a backend may
 * read a shared row once for all of them. Each row's result must not depend on B or on the
 * other sequences. */
struct em_attn_decode_args {
    int B;
    float *const *o;
    const float *const *q;
    const void *const *const *k, *const *const *v;
    const int *n;
    int f16;
    int heads, kv_heads, hd;
    float scale;
};

/* Rotate-half RoPE on q [T, heads * hd] and k [T, kv_heads * hd] (in place), then row t of k
 * and v [T, kv_heads * hd] stored at krow[t] / vrow[t] (host array of T device pointers to
 * cache rows; f32, or f16 == 1: IEEE halves, rounded to nearest even, saturated at +-65504,
 * NaN kept). cs, sn [T, hd / 2]: cos and sin of position(t) * inv_freq[i] (device).
 *   x[i] = a * cs[i] - b * sn[i], x[i + hd/2] = b * cs[i] + a * sn[i]   (a = x[i], b = x[i + hd/2])
 * ref: transformers apply_rotary_pos_emb (rotate_half). */
struct em_rope_kv_args {
    float *q, *k;
    const float *v;
    int T, heads, kv_heads, hd;
    const float *cs, *sn;
    void *const *krow, *const *vrow;
    int f16;
};

/* Im2col of a kernel-3, padding-1 Conv1d: dst[t, i * 3 + j] = src(s * t + j - 1, i) for t <
 * rows, channel i < ch, j < 3, where src(f, i) = src[f * fstride + i * cstride] for 0 <= f <
 * frames and 0 outside. dst [rows, ch * 3] and src on the device. */
struct em_im2col_args {
    float *dst;
    const float *src;
    int rows, ch, stride, frames;
    size_t fstride, cstride;
};

/* What a device is and can do at most (benches report against these). 0 where unknown. */
struct em_backend_info {
    char device[128];        /* e.g. "NVIDIA H100 80GB HBM3 (cuda:0, sm_90)" */
    double peak_bf16_tflops; /* dense BF16 tensor throughput */
    double peak_gbps;        /* memory bandwidth, GB/s */
    size_t mem_bytes;        /* device memory */
};

/* ---- the table ------------------------------------------------------------------------- */

struct em_backend_ops {
    const char *name; /* "cpu", "cuda" */
    /* 1: device memory is host memory (the CPU): callers may hand host buffers to the slots
     * directly and skip the staging copies; 0: only pointers from alloc / weight. */
    int unified;
    /* See the contract above. Errors: EM_E_ARG (shapes: w not [out, in], bias length or
     * dtype, n < 0, in % 32 != 0 for Q8_0 / Q4_0), EM_E_UNSUPPORTED (dtype), EM_E_NOMEM.
     * x, y device memory; w, bias as returned by the weight slot. */
    em_err (*matmul)(void *ctx, float *y, const float *x, int n, int in, int out,
                     const struct em_tensor *w, const struct em_tensor *bias);

    /* -- memory: "device" pointers are the backend's (the CPU's are host pointers) -- */
    /* *out = bytes (> 0) of device memory, 64-byte aligned, contents undefined. EM_E_NOMEM. */
    em_err (*alloc)(void *ctx, size_t bytes, void **out);
    void (*free)(void *ctx, void *p); /* NULL ok */
    /* host -> device, device -> host, device -> device; ordered after earlier calls. */
    em_err (*upload)(void *ctx, void *dst, const void *src, size_t bytes);
    em_err (*download)(void *ctx, void *dst, const void *src, size_t bytes);
    em_err (*copy)(void *ctx, void *dst, const void *src, size_t bytes);
    /* A weight made resident once: *dev describes the same tensor (name, shape) in the
     * dtype the backend computes with (the CPU: the host view itself, no copy; CUDA: F32 and
     * BF16 / F16 as stored, Q8_0 / Q4_0 kept as blocks and dequantized on the fly). Free
     * with weight_free; host->data must stay valid until then (the CPU's view borrows it). Errors: EM_E_UNSUPPORTED (dtype), EM_E_NOMEM. */
    em_err (*weight)(void *ctx, const struct em_tensor *host, struct em_tensor *dev);
    void (*weight_free)(void *ctx, struct em_tensor *dev);
    /* Waits for every call made so far (a download's data is valid after it returns). */
    em_err (*sync)(void *ctx);
    /* Rows a batched decode step should carry per call at most (the decoder's
     * em_dec_max_batch): the CPU EM_MM_QMM_MAX_N, the small-n matmul path whose rows do not
     * depend on how many it takes (a sequence's tokens do not depend on its batch); CUDA 64,
     * one weight pass of a GEMM for 64 sequences. */
    int decode_rows;
    /* Optional (NULL: unknown): the device and its peaks. */
    em_err (*info)(void *ctx, struct em_backend_info *out);

    /* -- layer primitives: every pointer device memory unless said otherwise -- */
    /* y[n, d] = x / sqrt(mean(x^2) + eps) * w per row (ref: Qwen2RMSNorm); y may equal x. */
    em_err (*rmsnorm)(void *ctx, float *y, const float *x, const float *w, int n, int d, float eps);
    /* y[n, d] = (x - mean) / sqrt(var + eps) * w + b per row (biased variance); y may equal x. */
    em_err (*layernorm)(void *ctx, float *y, const float *x, const float *w, const float *b,
                        int n, int d, float eps);
    em_err (*gelu)(void *ctx, float *x, size_t n);                     /* exact (erf) GELU */
    em_err (*silu_mul)(void *ctx, float *g, const float *u, size_t n); /* g = silu(g) * u */
    em_err (*add)(void *ctx, float *h, const float *a, size_t n);      /* h += a (residual) */
    /* y[j, :] = (x[2j, :] + x[2j + 1, :]) / 2, j < n_out (AvgPool1d(2, 2) over time). */
    em_err (*avgpool2)(void *ctx, float *y, const float *x, int n_out, int d);
    em_err (*im2col3)(void *ctx, const struct em_im2col_args *a);
    /* x[t, :] = row ids[t] of table [V, d] (a weight), t < n; ids is a host array, each in
     * [0, V) (the caller checks). */
    em_err (*embed)(void *ctx, float *x, const struct em_tensor *table, const int32_t *ids, int n);
    em_err (*rope_kv)(void *ctx, const struct em_rope_kv_args *a);
    em_err (*attn)(void *ctx, const struct em_attn_args *a);
    em_err (*attn_decode)(void *ctx, const struct em_attn_decode_args *a);
    /* out[r] (host) = the first index of the largest of logits[r, 0 .. V) (NaN never wins). */
    em_err (*argmax)(void *ctx, const float *logits, int n, int V, int32_t *out);
};

struct em_backend {
    const struct em_backend_ops *ops;
    void *ctx;
};

#define EM_BACKEND_MAX_DEVICE 64 /* highest N of "cuda:N" */

/* The CPU backend (static; never freed). */
const struct em_backend *em_backend_cpu(void);

/* The backend named by dev: "cpu", "cuda" (device 0) or "cuda:N"; NULL or "" reads the
 * environment variable EARMARK_DEVICE, and "cpu" when that is unset. On EM_OK *out is the
 * backend (em_backend_close it; the CPU backend's close is a no-op). Errors (one line in eb):
 * EM_E_ARG (an unknown name, N out of range), EM_E_UNSUPPORTED (a build without CUDA, or no
 * usable CUDA device: the line says which), EM_E_NOMEM. */
em_err em_backend_open(const char *dev, const struct em_backend **out, struct em_errbuf *eb);
void em_backend_close(const struct em_backend *be); /* NULL ok */
/* em_backend_open then em_backend_close: whether dev names a backend this process can use
 * (commands check their --device once, before any work). Same errors. */
em_err em_backend_check(const char *dev, struct em_errbuf *eb);
/* 1 when this build has the CUDA backend (make CUDA=1). */
int em_backend_have_cuda(void);

/* Convenience: em_backend_cpu()->ops->matmul(...). in and out must equal the matrix view
 * of w (numel / shape[0] and shape[0]); they are passed so callers state the shapes. */
em_err em_matmul(float *y, const float *x, int n, int in, int out, const struct em_tensor *w,
                 const struct em_tensor *bias);

/* One device buffer of n floats: be->ops->alloc, NULL when n is 0 or on failure. */
float *em_be_floats(const struct em_backend *be, size_t n);
/* A host vector of n floats as a new device buffer (alloc + upload); NULL on failure. */
float *em_be_upload_floats(const struct em_backend *be, const float *src, size_t n);
/* The tensor t (numel n) widened to f32 into a new device buffer; NULL on failure. */
float *em_be_upload_tensor_f32(const struct em_backend *be, const struct em_tensor *t, size_t n);

/* The plain reference: same contract, single-threaded, no BLAS, no SIMD kernels: each row of
 * W widened / dequantized with em_tensor_read_f32 and accumulated in double. Used by tests to
 * check the fast paths on odd sizes. */
em_err em_matmul_ref(float *y, const float *x, int n, int in, int out,
                     const struct em_tensor *w, const struct em_tensor *bias);

#endif
