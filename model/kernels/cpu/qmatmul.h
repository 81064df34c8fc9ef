/* model/kernels/cpu/qmatmul.h - y[n, out] = x[n, in] @ W[out, in]^T (+ bias[out]) for W in
 * any enum em_wtype (model/kernels/quant.h): Q8_0, Q4_0 (GGUF blocks), BF16, F16, F32 rows.
 *
 * Built for decoding: n small (1..8 prompts decoded together). Every weight row is read once
 * for all n activation rows (n > EM_QDOT_MAX_N = 8 is processed in groups of 8, each group
 * reading W again). For quantized W, x is quantized per 32-block to int8 with an f32 scale
 * (like ggml's q8_0 activations) and dotted in integers; float rows use f32 x (AVX-512 with
 * BF16 rounds x to bf16 for vdpbf16ps, as a bf16 model does anyway).
 *
 * The SIMD level comes from em_cpu_level() (model/kernels/cpu/cpufeat.h; EARMARK_CPU caps
 * it). The `out` rows are split across a small persistent pthread pool (one thread per online
 * CPU, the caller included) in chunks taken dynamically; small products run on the caller's
 * thread only. Call it from outside any other thread pool (no OpenBLAS inside).
 *
 * Memory: W is a borrowed view of out rows of em_wtype_row_size(wtype, in) bytes each,
 * contiguous, any alignment (e.g. a file mapping). x [n, in] and y [n, out] are f32
 * row-major, any 4-byte alignment, must not overlap. bias [out] f32 or NULL.
 * Thread-safety: may be called from several threads at once; a call that finds the pool busy
 * runs on its own thread. */
#ifndef EM_QMATMUL_H
#define EM_QMATMUL_H

#include "common/err.h"

#define EM_QMM_MAX_THREADS 64             /* pool size cap */
#define EM_QMM_MIN_PAR_BYTES (256u << 10) /* smaller W run on the caller's thread only */

struct em_qmm_opts {
    int level;   /* enum em_cpu_level to run; -1: em_cpu_level() */
    int threads; /* 0: the whole pool; 1: caller's thread only; k: at most k threads */
    int bf16_exact; /* BF16 rows at AVX-512 on a CPU with AVX512_BF16: 0 vdpbf16ps on x
                       rounded to bf16; 1 widened to f32 and multiplied with f32 FMA (exact
                       products, as below AVX-512). No effect on other rows or levels. */
};
struct em_qmm_opts em_qmm_opts_default(void); /* {-1, 0, 0} */

/* Errors: EM_E_ARG (n < 0, in <= 0, out < 0, in not a multiple of 32 for Q8_0 / Q4_0, NULL
 * y, x or w with n, out > 0), EM_E_UNSUPPORTED (unknown wtype, or opts->level above
 * em_cpu_level_supported()), EM_E_NOMEM (activation scratch). n == 0 or out == 0: EM_OK,
 * nothing written. */
em_err em_qmatmul(float *y, const float *x, int n, int in, int out, int wtype, const void *w,
                  const float *bias);
em_err em_qmatmul_ex(const struct em_qmm_opts *opts, float *y, const float *x, int n, int in,
                     int out, int wtype, const void *w, const float *bias);

/* Threads the pool runs (caller included); starts the pool if needed. */
int em_qmm_threads(void);

/* Generic tasks on the same pool (used by the int8 GEMM, igemm.h, so that one matmul call
 * never runs on two pools): calls fn(ctx, task, slot) once for every task in [0, ntasks),
 * on up to `threads` threads (0: the whole pool; never more threads than tasks), the caller
 * included; tasks are claimed dynamically from a shared counter, so their order is not
 * fixed. slot is in [0, em_qmm_threads()) and no two threads of this call share a slot at
 * the same time (index per-thread scratch with it). Returns when every task has finished.
 * A call that finds the pool busy runs all tasks on the caller's thread (slot 0). fn must not
 * call em_qmm_parallel or em_qmatmul itself (it would run them on its own thread). */
void em_qmm_parallel(void (*fn)(void *ctx, int task, int slot), void *ctx, int ntasks,
                     int threads);

#endif
