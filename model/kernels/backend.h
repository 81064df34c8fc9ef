/* model/kernels/backend.h - the compute ops model code calls; nothing else crosses it.
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

#include <stddef.h>

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

struct em_backend_ops {
    const char *name; /* "cpu" */
    /* See the contract above. Errors: EM_E_ARG (shapes: w not [out, in], bias length or
     * dtype, n < 0, in % 32 != 0 for Q8_0 / Q4_0), EM_E_UNSUPPORTED (dtype), EM_E_NOMEM. */
    em_err (*matmul)(void *ctx, float *y, const float *x, int n, int in, int out,
                     const struct em_tensor *w, const struct em_tensor *bias);
};

struct em_backend {
    const struct em_backend_ops *ops;
    void *ctx;
};

/* The CPU backend (static; never freed). */
const struct em_backend *em_backend_cpu(void);

/* Convenience: em_backend_cpu()->ops->matmul(...). in and out must equal the matrix view
 * of w (numel / shape[0] and shape[0]); they are passed so callers state the shapes. */
em_err em_matmul(float *y, const float *x, int n, int in, int out, const struct em_tensor *w,
                 const struct em_tensor *bias);

/* The plain reference: same contract, single-threaded, no BLAS, no SIMD kernels: each row of
 * W widened / dequantized with em_tensor_read_f32 and accumulated in double. Used by tests to
 * check the fast paths on odd sizes. */
em_err em_matmul_ref(float *y, const float *x, int n, int in, int out,
                     const struct em_tensor *w, const struct em_tensor *bias);

#endif
