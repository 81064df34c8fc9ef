/* model/whisper/decoder.c - the Whisper text decoder, one token per call, f32.
 *
 *   x[d] = token_embedding[id] + positional_embedding[pos]
 *   per layer:  x += out(self_attn(LN1(x)))   q, k, v = LN1(x) W^T + b; k, v cached at pos;
 *                                              attends positions 0..pos (causal by construction)
 *               x += out(cross_attn(LN2(x)))  keys / values of the window's encoder output,
 *                                              computed once per window (wh_state_set_audio)
 *               x += fc2(GELU(fc1(LN3(x))))
 *   logits[n_vocab] = LN_final(x) @ token_embedding^T   (tied output projection)
 *   attention per head h: softmax(q_h k_h^T / sqrt(hd)) v_h, as two cblas_sgemv.
 * ref: openai/whisper model.py TextDecoder, ResidualAttentionBlock (cross_attention=True);
 *      CTranslate2 layers/transformer.cc TransformerDecoderLayer (pre-norm) */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/kernels/backend.h"
#include "model/kernels/cpu/eltwise.h"
#include "model/whisper/whisper_impl.h"

void wh_state_free(struct wh_state *st)
{
    free(st->self_k);
    free(st->self_v);
    if (!st->cross_borrowed) {
        free(st->cross_k);
        free(st->cross_v);
    }
    free(st->s);
    memset(st, 0, sizeof *st);
}

static em_err state_alloc(const struct em_whisper *w, struct wh_state *st, const struct wh_state *share)
{
    memset(st, 0, sizeof *st);
    const size_t d = (size_t)w->d, L = (size_t)w->n_layers;
    st->self_k = malloc(sizeof(float) * L * (size_t)w->n_ctx * d);
    st->self_v = malloc(sizeof(float) * L * (size_t)w->n_ctx * d);
    if (share) {
        st->cross_borrowed = true;
        st->cross_k = share->cross_k;
        st->cross_v = share->cross_v;
    } else {
        st->cross_k = malloc(sizeof(float) * L * EM_WHISPER_AUDIO_CTX * d);
        st->cross_v = malloc(sizeof(float) * L * EM_WHISPER_AUDIO_CTX * d);
    }
    st->s = malloc(sizeof(float) * EM_WHISPER_AUDIO_CTX);
    if (!st->self_k || !st->self_v || !st->cross_k || !st->cross_v || !st->s) {
        wh_state_free(st);
        return EM_E_NOMEM;
    }
    return EM_OK;
}

em_err wh_state_new(const struct em_whisper *w, struct wh_state *st) { return state_alloc(w, st, NULL); }

em_err wh_state_new_shared(const struct em_whisper *w, struct wh_state *st,
                           const struct wh_state *share)
{
    return state_alloc(w, st, share);
}

void wh_state_copy_self(const struct em_whisper *w, struct wh_state *dst, const struct wh_state *src)
{
    const size_t per = (size_t)w->n_ctx * (size_t)w->d, used = (size_t)src->pos * (size_t)w->d;
    for (int i = 0; i < w->n_layers; i++) {
        memcpy(dst->self_k + i * per, src->self_k + i * per, sizeof(float) * used);
        memcpy(dst->self_v + i * per, src->self_v + i * per, sizeof(float) * used);
    }
    dst->pos = src->pos;
}

em_err wh_state_set_audio(const struct em_whisper *w, struct wh_state *st, const float *enc)
{
    const size_t per = (size_t)EM_WHISPER_AUDIO_CTX * (size_t)w->d;
    em_err rc = EM_OK;
    for (int i = 0; rc == EM_OK && i < w->n_layers; i++) {
        const struct wh_layer *l = &w->l[i];
        rc = em_matmul(st->cross_k + i * per, enc, EM_WHISPER_AUDIO_CTX, w->d, w->d, &l->ck_w,
                       l->ck_b.data ? &l->ck_b : NULL);
        if (rc == EM_OK)
            rc = em_matmul(st->cross_v + i * per, enc, EM_WHISPER_AUDIO_CTX, w->d, w->d, &l->cv_w, &l->cv_b);
    }
    st->pos = 0;
    return rc;
}

/* o[d] = concat_h softmax(q_h K_h^T * scale) V_h over n rows of K, V ([n, d] each). */
static void attend(const struct em_whisper *w, const float *q, const float *K, const float *V,
                   int n, float *s, float *o)
{
    const int d = w->d, hd = w->hd;
    const float scale = 1.0f / sqrtf((float)hd);
    for (int h = 0; h < w->heads; h++) {
        float inv;
        cblas_sgemv(CblasRowMajor, CblasNoTrans, n, hd, scale, K + h * hd, d, q + h * hd, 1, 0.0f, s, 1);
        em_softmax_rows(s, &inv, 1, n);
        cblas_sgemv(CblasRowMajor, CblasTrans, n, hd, inv, V + h * hd, d, s, 1, 0.0f, o + h * hd, 1);
    }
}

em_err wh_step_batch(const struct em_whisper *w, struct wh_state *const *sts,
                     const int32_t *ids, int n, float *logits)
{
    const int d = w->d;
    const size_t nd = (size_t)n * d;
    for (int r = 0; r < n; r++) {
        if (sts[r]->pos >= w->n_ctx) return EM_E_TOO_LONG;
        if (ids[r] < 0 || ids[r] >= w->n_vocab) return EM_E_ARG;
    }
    em_err rc = EM_E_NOMEM;
    float *x = malloc(sizeof(float) * nd), *a = calloc(nd, sizeof(float));
    float *qkv = malloc(sizeof(float) * 3 * nd), *att = malloc(sizeof(float) * nd);
    float *f = malloc(sizeof(float) * (size_t)n * w->ffn);
    if (!x || !a || !qkv || !att || !f) goto done;
    for (int r = 0; r < n; r++) {
        em_tensor_read_f32(&w->emb, (size_t)ids[r] * d, (size_t)d, x + (size_t)r * d);
        em_tensor_read_f32(&w->pos, (size_t)sts[r]->pos * d, (size_t)d, a + (size_t)r * d);
    }
    em_add_into(x, a, nd);
    const size_t self_per = (size_t)w->n_ctx * d, cross_per = (size_t)EM_WHISPER_AUDIO_CTX * d;
    for (int i = 0; i < w->n_layers; i++) {
        const struct wh_layer *l = &w->l[i];
        float *q = qkv, *k = qkv + nd, *v = qkv + 2 * nd;
        em_layer_norm(a, x, n, d, l->ln1_w, l->ln1_b, 1e-5f);
        if ((rc = em_matmul(q, a, n, d, d, &l->sq_w, &l->sq_b)) != EM_OK ||
            (rc = em_matmul(k, a, n, d, d, &l->sk_w, l->sk_b.data ? &l->sk_b : NULL)) != EM_OK ||
            (rc = em_matmul(v, a, n, d, d, &l->sv_w, &l->sv_b)) != EM_OK)
            goto done;
        for (int r = 0; r < n; r++) {
            struct wh_state *st = sts[r];
            float *K = st->self_k + i * self_per, *V = st->self_v + i * self_per;
            memcpy(K + (size_t)st->pos * d, k + (size_t)r * d, sizeof(float) * (size_t)d);
            memcpy(V + (size_t)st->pos * d, v + (size_t)r * d, sizeof(float) * (size_t)d);
            attend(w, q + (size_t)r * d, K, V, st->pos + 1, st->s, att + (size_t)r * d);
        }
        if ((rc = em_matmul(a, att, n, d, d, &l->so_w, &l->so_b)) != EM_OK) goto done;
        em_add_into(x, a, nd);

        em_layer_norm(a, x, n, d, l->ln2_w, l->ln2_b, 1e-5f);
        if ((rc = em_matmul(qkv, a, n, d, d, &l->cq_w, &l->cq_b)) != EM_OK) goto done;
        for (int r = 0; r < n; r++)
            attend(w, qkv + (size_t)r * d, sts[r]->cross_k + i * cross_per,
                   sts[r]->cross_v + i * cross_per, EM_WHISPER_AUDIO_CTX, sts[r]->s, att + (size_t)r * d);
        if ((rc = em_matmul(a, att, n, d, d, &l->co_w, &l->co_b)) != EM_OK) goto done;
        em_add_into(x, a, nd);

        em_layer_norm(a, x, n, d, l->ln3_w, l->ln3_b, 1e-5f);
        if ((rc = em_matmul(f, a, n, d, w->ffn, &l->fc1_w, &l->fc1_b)) != EM_OK) goto done;
        em_gelu(f, (size_t)n * w->ffn);
        if ((rc = em_matmul(a, f, n, w->ffn, d, &l->fc2_w, &l->fc2_b)) != EM_OK) goto done;
        em_add_into(x, a, nd);
    }
    for (int r = 0; r < n; r++) sts[r]->pos++;
    rc = EM_OK;
    if (logits) {
        em_layer_norm(a, x, n, d, w->lnf_w, w->lnf_b, 1e-5f);
        rc = em_matmul(logits, a, n, d, w->n_vocab, &w->emb, NULL);
    }
done:
    free(x);
    free(a);
    free(qkv);
    free(att);
    free(f);
    return rc;
}

em_err wh_step(const struct em_whisper *w, struct wh_state *st, int32_t id, float *logits)
{
    return wh_step_batch(w, &st, &id, 1, logits);
}
