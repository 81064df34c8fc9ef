/* model/qwen2audio/projector.c - the audio-to-text Linear (ref: transformers
 * Qwen2AudioMultiModalProjector: nn.Linear(d_model, hidden, bias=True)), one matmul slot of
 * the backend table: rows uploaded, multiplied on the device, downloaded. */
#include "model/qwen2audio/projector.h"

em_err em_projector_init(const struct em_ckpt *ck, struct em_projector *p, struct em_errbuf *eb)
{
    return em_projector_init_be(ck, NULL, p, eb);
}

em_err em_projector_init_be(const struct em_ckpt *ck, const struct em_backend *be,
                            struct em_projector *p, struct em_errbuf *eb)
{
    struct em_tensor w, b;
    *p = (struct em_projector){.be = be ? be : em_backend_cpu()};
    em_err rc = em_ckpt_tensor(ck, "multi_modal_projector.linear.weight", &w, eb);
    if (rc == EM_OK) rc = em_ckpt_tensor(ck, "multi_modal_projector.linear.bias", &b, eb);
    if (rc != EM_OK) return rc;
    if (w.ndim != 2 || b.ndim != 1 || b.shape[0] != w.shape[0])
        return em_errf(eb, EM_E_MODEL, "multi_modal_projector.linear: weight and bias disagree");
    p->out = (int)w.shape[0];
    p->in = (int)w.shape[1];
    if ((rc = p->be->ops->weight(p->be->ctx, &w, &p->w)) != EM_OK) goto fail;
    if ((rc = p->be->ops->weight(p->be->ctx, &b, &p->b)) != EM_OK) goto fail;
    return EM_OK;
fail:
    em_projector_free(p);
    return em_errf(eb, rc, "multi_modal_projector.linear: cannot be made resident on the %s "
                   "backend (%s)", p->be->ops->name, em_err_name(rc));
}

void em_projector_free(struct em_projector *p)
{
    if (!p || !p->be) return;
    if (p->w.data) p->be->ops->weight_free(p->be->ctx, &p->w);
    if (p->b.data) p->be->ops->weight_free(p->be->ctx, &p->b);
    p->w.data = p->b.data = NULL;
}

em_err em_projector_run(const struct em_projector *p, const float *x, int n, float *y)
{
    const struct em_backend *be = p->be;
    if (n < 1) return n == 0 ? EM_OK : EM_E_ARG;
    if (be->ops->unified) /* host memory is device memory: no staging */
        return be->ops->matmul(be->ctx, y, x, n, p->in, p->out, &p->w, &p->b);
    float *dx = em_be_upload_floats(be, x, (size_t)n * p->in);
    float *dy = em_be_floats(be, (size_t)n * p->out);
    em_err rc = dx && dy ? EM_OK : EM_E_NOMEM;
    if (rc == EM_OK) rc = be->ops->matmul(be->ctx, dy, dx, n, p->in, p->out, &p->w, &p->b);
    if (rc == EM_OK) rc = be->ops->download(be->ctx, y, dy, (size_t)n * p->out * sizeof *y);
    if (rc == EM_OK) rc = be->ops->sync(be->ctx);
    if (dx) be->ops->free(be->ctx, dx);
    if (dy) be->ops->free(be->ctx, dy);
    return rc;
}
