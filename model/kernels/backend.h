/* model/kernels/backend.h - the compute ops model code calls; nothing else crosses it.
 *
 * Matmul contract (PyTorch Linear): y[n, out] = x[n, in] @ W[out, in]^T (+ bias[out]).
 * W is an em_tensor in F32, BF16 or F16 as stored in the checkpoint mapping; it is read as
 * a 2-D matrix [shape[0], numel / shape[0]] (so a Conv1d weight [out, in, k] is the matrix
 * [out, in * k] with column index i * k + j, ready for im2col). bias may be NULL, or a 1-D
 * tensor of length out in any of the same dtypes. x and y are f32, row-major, must not
 * overlap. Accumulation is f32.
 *
 * CPU backend: W is widened to f32 one tile of rows at a time (EM_MM_TILE_SMALL bytes when
 * n < EM_MM_SMALL_N, i.e. decoding, else EM_MM_TILE_BYTES) and multiplied with OpenBLAS
 * cblas_sgemm (OpenBLAS' own threads, one per core); an aligned f32 W is used in place.
 * No threads are added on top.
 * Thread-safety: em_matmul may be called from several threads; each call allocates its own
 * tile scratch (at most EM_MM_TILE_BYTES, or one row of W if that is larger). */
#ifndef EM_BACKEND_H
#define EM_BACKEND_H

#include <stddef.h>

#include "common/err.h"
#include "model/loader/tensor.h"

#define EM_MM_SMALL_N 16                /* below this many input rows, small tiles */
#define EM_MM_TILE_SMALL (256u << 10)   /* f32 scratch per widened tile, small n */
#define EM_MM_TILE_BYTES (8u << 20)     /* f32 scratch per widened tile, large n */

struct em_backend_ops {
    const char *name; /* "cpu" */
    /* See the contract above. Errors: EM_E_ARG (shapes: w not [out, in], bias length,
     * n < 0), EM_E_UNSUPPORTED (dtype), EM_E_NOMEM. */
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

/* The plain reference: same contract, single-threaded, no BLAS. Used by tests to check
 * the fast paths on odd sizes. */
em_err em_matmul_ref(float *y, const float *x, int n, int in, int out,
                     const struct em_tensor *w, const struct em_tensor *bias);

#endif
