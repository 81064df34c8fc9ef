/* model/qwen2audio/projector.h - multi_modal_projector.linear: audio_embeds[N, text hidden] =
 * encoder_out[N, d_model] @ W^T + b (a single Linear with bias, no activation; spec §3.4).
 * Thread-safety: read-only after em_projector_init. */
#ifndef EM_PROJECTOR_H
#define EM_PROJECTOR_H

#include "common/err.h"
#include "model/loader/safetensors.h"

struct em_projector {
    struct em_tensor w; /* [hidden, d_model], borrowed from the checkpoint */
    struct em_tensor b; /* [hidden] */
    int in, out;        /* d_model, hidden */
};

/* Binds the weights of ck (borrowed). Errors: EM_E_NOTFOUND, EM_E_MODEL. */
em_err em_projector_init(const struct em_ckpt *ck, struct em_projector *p, struct em_errbuf *eb);

/* y[n, out] = x[n, in] @ W^T + b. y is caller-owned. Errors: from em_matmul. */
em_err em_projector_run(const struct em_projector *p, const float *x, int n, float *y);

#endif
