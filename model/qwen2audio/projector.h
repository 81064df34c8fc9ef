/* model/qwen2audio/projector.h - multi_modal_projector.linear: audio_embeds[N, text hidden] =
 * encoder_out[N, d_model] @ W^T + b (a single Linear with bias, no activation; spec §3.4).
 * Thread-safety: read-only after em_projector_init. */
#ifndef EM_PROJECTOR_H
#define EM_PROJECTOR_H

#include "common/err.h"
#include "model/kernels/backend.h"
#include "model/loader/safetensors.h"

struct em_projector {
    const struct em_backend *be; /* borrowed */
    struct em_tensor w; /* [hidden, d_model], resident on be (the CPU: a view into ck) */
    struct em_tensor b; /* [hidden] */
    int in, out;        /* d_model, hidden */
};

/* Binds the weights of ck (borrowed) on the CPU backend. Errors: EM_E_NOTFOUND, EM_E_MODEL. */
em_err em_projector_init(const struct em_ckpt *ck, struct em_projector *p, struct em_errbuf *eb);
/* The same on backend be (NULL: the CPU; must outlive p), weights made resident there;
 * release with em_projector_free (a no-op for the CPU's views). Errors: also the backend's. */
em_err em_projector_init_be(const struct em_ckpt *ck, const struct em_backend *be,
                            struct em_projector *p, struct em_errbuf *eb);
void em_projector_free(struct em_projector *p); /* NULL and repeated calls ok */

/* y[n, out] = x[n, in] @ W^T + b, x and y host memory (caller-owned). Errors: the backend's
 * matmul, EM_E_NOMEM. */
em_err em_projector_run(const struct em_projector *p, const float *x, int n, float *y);

#endif
