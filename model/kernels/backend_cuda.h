/* model/kernels/backend_cuda.h - the entry points of the CUDA backend (model/kernels/cuda/,
 * built with make CUDA=1; model/kernels/cuda_stub.c otherwise). Model code reaches them only
 * through em_backend_open (backend.h). */
#ifndef EM_BACKEND_CUDA_H
#define EM_BACKEND_CUDA_H

#include "common/err.h"
#include "model/kernels/backend.h"

/* Device scratch of one dequantized BF16 tile of whole W rows (Q8_0 / Q4_0 matmul with more
 * rows than the GEMV takes): a W of more than EM_CUDA_TILE_BYTES / (in * 2) rows is
 * multiplied one tile at a time. */
#define EM_CUDA_TILE_BYTES (256u << 20)

/* 1 in a CUDA=1 build, 0 in the stub. */
int em_cuda_built(void);
/* A backend on CUDA device `device` (its own stream and cuBLAS handle). On EM_OK the caller
 * owns *out (em_cuda_close). Errors, one line in eb: EM_E_UNSUPPORTED (no CUDA in this build,
 * no usable device, device out of range: the line names the device count and the driver's
 * words), EM_E_NOMEM, EM_E_INTERNAL (a CUDA or cuBLAS call failed: file:line and its name). */
em_err em_cuda_open(int device, struct em_backend **out, struct em_errbuf *eb);
void em_cuda_close(struct em_backend *be); /* NULL ok */
/* The last failed CUDA / cuBLAS call of a backend from em_cuda_open ("file:line: call:
 * words"; "" while none has failed), for the error lines of tests, benches and tools: a slot
 * returns only EM_E_INTERNAL / EM_E_NOMEM. NULL when be is not a CUDA backend (the CPU's, or
 * any backend in a build without CUDA). Owned by be; valid until em_cuda_close. */
const char *em_cuda_last_error(const struct em_backend *be);

#endif
