/* model/kernels/cuda_stub.c - the CUDA entry points of a build without CUDA (make without
 * CUDA=1): every open says so in one line. The Makefile leaves this file out under CUDA=1. */
#include "model/kernels/backend_cuda.h"

int em_cuda_built(void) { return 0; }

em_err em_cuda_open(int device, struct em_backend **out, struct em_errbuf *eb)
{
    *out = NULL;
    return em_errf(eb, EM_E_UNSUPPORTED,
                   "device cuda:%d: this build has no CUDA backend (rebuild with make CUDA=1)",
                   device);
}

void em_cuda_close(struct em_backend *be) { (void)be; }

const char *em_cuda_last_error(const struct em_backend *be)
{
    (void)be;
    return NULL;
}
