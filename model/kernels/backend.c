/* model/kernels/backend.c - choosing a backend by name ("cpu", "cuda[:N]", EARMARK_DEVICE)
 * and the small device-buffer helpers model code shares. */
#include "model/kernels/backend.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "model/kernels/backend_cuda.h"

int em_backend_have_cuda(void) { return em_cuda_built(); }

em_err em_backend_open(const char *dev, const struct em_backend **out, struct em_errbuf *eb)
{
    *out = NULL;
    if (!dev || !*dev) dev = getenv("EARMARK_DEVICE");
    if (!dev || !*dev || strcmp(dev, "cpu") == 0) {
        *out = em_backend_cpu();
        return EM_OK;
    }
    if (strncmp(dev, "cuda", 4) != 0 || (dev[4] != '\0' && dev[4] != ':'))
        return em_errf(eb, EM_E_ARG, "device '%s': expected cpu, cuda or cuda:N", dev);
    long n = 0;
    if (dev[4] == ':') {
        char *end;
        errno = 0;
        n = strtol(dev + 5, &end, 10);
        if (errno || end == dev + 5 || *end || n < 0 || n > EM_BACKEND_MAX_DEVICE)
            return em_errf(eb, EM_E_ARG, "device '%s': N must be 0..%d", dev,
                           EM_BACKEND_MAX_DEVICE);
    }
    struct em_backend *be = NULL;
    em_err rc = em_cuda_open((int)n, &be, eb);
    if (rc == EM_OK) *out = be;
    return rc;
}

void em_backend_close(const struct em_backend *be)
{
    if (!be || be == em_backend_cpu()) return;
    em_cuda_close((struct em_backend *)be);
}

em_err em_backend_check(const char *dev, struct em_errbuf *eb)
{
    const struct em_backend *be = NULL;
    em_err rc = em_backend_open(dev, &be, eb);
    em_backend_close(be);
    return rc;
}

float *em_be_floats(const struct em_backend *be, size_t n)
{
    void *p = NULL;
    if (n == 0 || n > SIZE_MAX / sizeof(float)) return NULL;
    if (be->ops->alloc(be->ctx, n * sizeof(float), &p) != EM_OK) return NULL;
    return p;
}

float *em_be_upload_floats(const struct em_backend *be, const float *src, size_t n)
{
    float *p = em_be_floats(be, n);
    if (p && be->ops->upload(be->ctx, p, src, n * sizeof(float)) != EM_OK) {
        be->ops->free(be->ctx, p);
        p = NULL;
    }
    return p;
}

float *em_be_upload_tensor_f32(const struct em_backend *be, const struct em_tensor *t, size_t n)
{
    float *host = malloc(n * sizeof *host);
    if (!host || (size_t)em_tensor_numel(t) < n) {
        free(host);
        return NULL;
    }
    em_tensor_read_f32(t, 0, n, host);
    float *p = em_be_upload_floats(be, host, n);
    free(host);
    return p;
}
