/* model/qwen2audio/projector.c - the audio-to-text Linear (ref: transformers
 * Qwen2AudioMultiModalProjector: nn.Linear(d_model, hidden, bias=True)). */
#include "model/qwen2audio/projector.h"

#include "model/kernels/backend.h"

em_err em_projector_init(const struct em_ckpt *ck, struct em_projector *p, struct em_errbuf *eb)
{
    em_err rc = em_ckpt_tensor(ck, "multi_modal_projector.linear.weight", &p->w, eb);
    if (rc == EM_OK) rc = em_ckpt_tensor(ck, "multi_modal_projector.linear.bias", &p->b, eb);
    if (rc != EM_OK) return rc;
    if (p->w.ndim != 2 || p->b.ndim != 1 || p->b.shape[0] != p->w.shape[0])
        return em_errf(eb, EM_E_MODEL, "multi_modal_projector.linear: weight and bias disagree");
    p->out = (int)p->w.shape[0];
    p->in = (int)p->w.shape[1];
    return EM_OK;
}

em_err em_projector_run(const struct em_projector *p, const float *x, int n, float *y)
{
    return em_matmul(y, x, n, p->in, p->out, &p->w, &p->b);
}
