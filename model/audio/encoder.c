/* model/audio/encoder.c - Qwen2-Audio audio tower, f32 (spec §3).
 *
 *   mel[128, 3000], L valid frames; T = feat_len = (L - 1) / 2 + 1 positions computed
 *   conv1: im2col x1[2T, 128 * 3] @ W1[d, 384]^T + b1 -> GELU -> c1[2T, d]
 *   conv2: im2col x2[T, d * 3] (stride 2, frames 2t-1..2t+1) @ W2[d, 3d]^T + b2 -> GELU
 *   h[T, d] += embed_positions[0..T)
 *   per layer: h += out_proj(attn(LN1(h)));  h += fc2(GELU(fc1(LN2(h))))
 *     attn: q = (a Wq^T + bq), k = a Wk^T (no bias), v = a Wv^T + bv; per head
 *           softmax(q k^T * hd^-0.5) v over the T valid keys
 *   pool: p[j] = (h[2j] + h[2j+1]) / 2, j < N; out = LN_final(p)   (pool BEFORE the LN)
 * Every step is a slot of the backend table (model/kernels/backend.h), on the backend's
 * device: weights made resident once at bind time (the CPU: views, no copy), activations in
 * device buffers, mel uploaded and the output downloaded once per call. The CPU backend's
 * choices (int8 GEMM or sgemm, fused AVX-512 attention, single-threaded element-wise passes)
 * are described in model/kernels/cpu/backend_cpu.c and backend.h.
 * ref: transformers Qwen2AudioEncoder.forward, Qwen2AudioEncoderLayer.forward */
#include "model/audio/encoder.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/audio/mel.h"
#include "model/kernels/backend.h"

/* Weights are the backend's resident copies (be->ops->weight; the CPU's are views of the
 * checkpoint), vectors device buffers, all owned by the encoder. */
enum { LW_Q, LW_QB, LW_K, LW_KB, LW_V, LW_VB, LW_O, LW_OB, LW_FC1, LW_FC1B, LW_FC2, LW_FC2B, LW_N };

struct enc_layer {
    float *ln1_w, *ln1_b, *ln2_w, *ln2_b; /* [d] */
    struct em_tensor w[LW_N];             /* [d, d] / [d], fc1 [ffn, d], fc2 [d, ffn] */
    int has_k_b;
};

struct em_encoder {
    const struct em_backend *be;
    int n_mels, d, heads, hd, ffn, nlayers, npos, pool;
    float eps;
    struct em_tensor conv1_w, conv1_b, conv2_w, conv2_b;
    float *pos;          /* [npos, d] */
    float *lnf_w, *lnf_b;
    struct enc_layer *l;
};

static void free_vec(const struct em_encoder *e, float *p)
{
    if (p) e->be->ops->free(e->be->ctx, p);
}

static void free_w(const struct em_encoder *e, struct em_tensor *t)
{
    if (t->data) e->be->ops->weight_free(e->be->ctx, t);
}

void em_encoder_free(struct em_encoder *e)
{
    if (!e) return;
    for (int i = 0; e->l && i < e->nlayers; i++) {
        free_vec(e, e->l[i].ln1_w);
        free_vec(e, e->l[i].ln1_b);
        free_vec(e, e->l[i].ln2_w);
        free_vec(e, e->l[i].ln2_b);
        for (int j = 0; j < LW_N; j++) free_w(e, &e->l[i].w[j]);
    }
    free(e->l);
    free_w(e, &e->conv1_w);
    free_w(e, &e->conv1_b);
    free_w(e, &e->conv2_w);
    free_w(e, &e->conv2_b);
    free_vec(e, e->pos);
    free_vec(e, e->lnf_w);
    free_vec(e, e->lnf_b);
    free(e);
}

int em_encoder_dim(const struct em_encoder *e) { return e->d; }

int em_encoder_tokens(int mel_len)
{
    if (mel_len <= 0) return 0;
    int feat_len = (mel_len - 1) / 2 + 1;
    return feat_len / 2; /* = (feat_len - 2) // 2 + 1 with Python's floor division */
}

int em_encoder_out_len(const struct em_encoder *e, int mel_len)
{
    if (e->pool) return em_encoder_tokens(mel_len);
    return mel_len <= 0 ? 0 : (mel_len - 1) / 2 + 1;
}

/* A 1-D tensor of length d widened into a new device buffer. */
static em_err widen_vec(const struct em_backend *be, const struct em_tensor *t, int d,
                        float **out, struct em_errbuf *eb)
{
    if (em_tensor_numel(t) != d)
        return em_errf(eb, EM_E_MODEL, "%s: expected %d values", t->name ? t->name : "vector", d);
    if (!(*out = em_be_upload_tensor_f32(be, t, (size_t)d))) return EM_E_NOMEM;
    return EM_OK;
}

/* The backend's resident copy of a weight (a view on the CPU). */
static em_err bind_w(const struct em_backend *be, const struct em_tensor *t, struct em_tensor *out,
                     struct em_errbuf *eb)
{
    em_err rc = be->ops->weight(be->ctx, t, out);
    if (rc != EM_OK)
        return em_errf(eb, rc, "%s: cannot be made resident on the %s backend (%s)",
                       t->name ? t->name : "weight", be->ops->name, em_err_name(rc));
    return EM_OK;
}

/* Checks a Linear weight [out, in] and its bias [out] (bias may be NULL). */
static em_err check_linear(const struct em_tensor *w, const struct em_tensor *b, int out, int in,
                           struct em_errbuf *eb)
{
    if (w->ndim != 2 || w->shape[0] != out || w->shape[1] != in)
        return em_errf(eb, EM_E_MODEL, "%s: expected [%d, %d]", w->name ? w->name : "weight", out, in);
    if (b && em_tensor_numel(b) != out)
        return em_errf(eb, EM_E_MODEL, "%s: expected %d values", b->name ? b->name : "bias", out);
    return EM_OK;
}

static em_err bind_layer(const struct em_backend *be, const struct em_encoder_layer_desc *s,
                         struct enc_layer *l, int d, int ffn, struct em_errbuf *eb)
{
    em_err rc;
    if ((rc = widen_vec(be, &s->ln1_w, d, &l->ln1_w, eb)) != EM_OK ||
        (rc = widen_vec(be, &s->ln1_b, d, &l->ln1_b, eb)) != EM_OK ||
        (rc = widen_vec(be, &s->ln2_w, d, &l->ln2_w, eb)) != EM_OK ||
        (rc = widen_vec(be, &s->ln2_b, d, &l->ln2_b, eb)) != EM_OK)
        return rc;
    l->has_k_b = s->k_b.data != NULL;
    if ((rc = check_linear(&s->q_w, &s->q_b, d, d, eb)) != EM_OK ||
        (rc = check_linear(&s->k_w, l->has_k_b ? &s->k_b : NULL, d, d, eb)) != EM_OK ||
        (rc = check_linear(&s->v_w, &s->v_b, d, d, eb)) != EM_OK ||
        (rc = check_linear(&s->o_w, &s->o_b, d, d, eb)) != EM_OK ||
        (rc = check_linear(&s->fc1_w, &s->fc1_b, ffn, d, eb)) != EM_OK ||
        (rc = check_linear(&s->fc2_w, &s->fc2_b, d, ffn, eb)) != EM_OK)
        return rc;
    const struct em_tensor *src[LW_N] = {
        [LW_Q] = &s->q_w, [LW_QB] = &s->q_b, [LW_K] = &s->k_w, [LW_KB] = &s->k_b,
        [LW_V] = &s->v_w, [LW_VB] = &s->v_b, [LW_O] = &s->o_w, [LW_OB] = &s->o_b,
        [LW_FC1] = &s->fc1_w, [LW_FC1B] = &s->fc1_b, [LW_FC2] = &s->fc2_w, [LW_FC2B] = &s->fc2_b,
    };
    for (int j = 0; j < LW_N; j++)
        if ((j != LW_KB || l->has_k_b) && (rc = bind_w(be, src[j], &l->w[j], eb)) != EM_OK)
            return rc;
    return EM_OK;
}

em_err em_encoder_new_desc(const struct em_encoder_desc *s, struct em_encoder **out,
                           struct em_errbuf *eb)
{
    *out = NULL;
    if ((s->n_mels != 80 && s->n_mels != 128) || s->npos * 2 != EM_MEL_FRAMES)
        return em_errf(eb, EM_E_MODEL, "audio encoder: num_mel_bins %d / max_source_positions %d, "
                       "the front end needs 80 or 128 / %d", s->n_mels, s->npos, EM_MEL_FRAMES / 2);
    if (s->d <= 0 || s->heads <= 0 || s->d % s->heads || s->ffn <= 0 || s->nlayers <= 0 ||
        s->nlayers > EM_ENCODER_MAX_LAYERS)
        return em_errf(eb, EM_E_MODEL, "audio encoder: d_model %d, heads %d, ffn %d, layers %d "
                       "are inconsistent", s->d, s->heads, s->ffn, s->nlayers);
    em_err rc = EM_E_NOMEM;
    struct em_encoder *e = calloc(1, sizeof *e);
    if (!e) goto fail;
    e->be = s->be ? s->be : em_backend_cpu();
    e->n_mels = s->n_mels;
    e->d = s->d;
    e->heads = s->heads;
    e->hd = e->d / e->heads;
    e->ffn = s->ffn;
    e->npos = s->npos;
    e->eps = s->eps;
    e->pool = s->pool;
    e->l = calloc((size_t)s->nlayers, sizeof *e->l);
    if (!e->l) goto fail;
    e->nlayers = s->nlayers;
    if (em_tensor_numel(&s->conv1_w) != (int64_t)e->d * e->n_mels * 3 ||
        em_tensor_numel(&s->conv2_w) != (int64_t)e->d * e->d * 3 ||
        em_tensor_numel(&s->pos) < (int64_t)e->npos * e->d) {
        rc = em_errf(eb, EM_E_MODEL, "audio encoder: conv or position shapes do not match "
                     "d_model %d and %d mel bins", e->d, e->n_mels);
        goto fail;
    }
    if ((rc = bind_w(e->be, &s->conv1_w, &e->conv1_w, eb)) != EM_OK ||
        (rc = bind_w(e->be, &s->conv1_b, &e->conv1_b, eb)) != EM_OK ||
        (rc = bind_w(e->be, &s->conv2_w, &e->conv2_w, eb)) != EM_OK ||
        (rc = bind_w(e->be, &s->conv2_b, &e->conv2_b, eb)) != EM_OK ||
        (rc = widen_vec(e->be, &s->lnf_w, e->d, &e->lnf_w, eb)) != EM_OK ||
        (rc = widen_vec(e->be, &s->lnf_b, e->d, &e->lnf_b, eb)) != EM_OK)
        goto fail;
    rc = EM_E_NOMEM;
    if (!(e->pos = em_be_upload_tensor_f32(e->be, &s->pos, (size_t)e->npos * e->d))) goto fail;
    for (int i = 0; i < e->nlayers; i++)
        if ((rc = bind_layer(e->be, &s->layers[i], &e->l[i], e->d, e->ffn, eb)) != EM_OK)
            goto fail;
    *out = e;
    return EM_OK;
fail:
    em_encoder_free(e);
    return rc;
}

/* The Qwen2-Audio checkpoint's audio_tower.* tensors as a descriptor. */
static em_err ckpt_layer(const struct em_ckpt *ck, int i, struct em_encoder_layer_desc *l,
                         struct em_errbuf *eb)
{
#define TEN(field, suffix)                                                      \
    if ((rc = em_ckpt_tensorf(ck, &l->field, eb, "audio_tower.layers.%d.%s", i, suffix)) != EM_OK) \
        return rc;
    em_err rc;
    TEN(ln1_w, "self_attn_layer_norm.weight")
    TEN(ln1_b, "self_attn_layer_norm.bias")
    TEN(ln2_w, "final_layer_norm.weight")
    TEN(ln2_b, "final_layer_norm.bias")
    TEN(q_w, "self_attn.q_proj.weight")
    TEN(q_b, "self_attn.q_proj.bias")
    TEN(k_w, "self_attn.k_proj.weight")
    TEN(v_w, "self_attn.v_proj.weight")
    TEN(v_b, "self_attn.v_proj.bias")
    TEN(o_w, "self_attn.out_proj.weight")
    TEN(o_b, "self_attn.out_proj.bias")
    TEN(fc1_w, "fc1.weight")
    TEN(fc1_b, "fc1.bias")
    TEN(fc2_w, "fc2.weight")
    TEN(fc2_b, "fc2.bias")
#undef TEN
    return EM_OK;
}

em_err em_encoder_new(const struct em_ckpt *ck, struct em_encoder **out, struct em_errbuf *eb)
{
    return em_encoder_new_be(ck, NULL, out, eb);
}

em_err em_encoder_new_be(const struct em_ckpt *ck, const struct em_backend *be,
                         struct em_encoder **out, struct em_errbuf *eb)
{
    *out = NULL;
    const struct em_qa_audio_config *a = &em_ckpt_config(ck)->audio;
    if (a->num_mel_bins != EM_MEL_BINS || a->max_source_positions * 2 != EM_MEL_FRAMES)
        return em_errf(eb, EM_E_MODEL, "audio_config: num_mel_bins %d / max_source_positions %d, "
                       "the front end needs %d / %d", a->num_mel_bins, a->max_source_positions,
                       EM_MEL_BINS, EM_MEL_FRAMES / 2);
    if (a->encoder_layers <= 0 || a->encoder_layers > EM_ENCODER_MAX_LAYERS)
        return em_errf(eb, EM_E_MODEL, "audio_config: encoder_layers %d", a->encoder_layers);
    struct em_encoder_desc s = {
        .n_mels = a->num_mel_bins, .d = a->d_model, .heads = a->encoder_attention_heads,
        .ffn = a->encoder_ffn_dim, .nlayers = a->encoder_layers,
        .npos = a->max_source_positions, .eps = a->layer_norm_eps, .pool = 1, .be = be,
    };
    em_err rc;
    struct em_encoder_layer_desc *layers = calloc((size_t)s.nlayers, sizeof *layers);
    if (!layers) return EM_E_NOMEM;
    s.layers = layers;
    if ((rc = em_ckpt_tensor(ck, "audio_tower.conv1.weight", &s.conv1_w, eb)) != EM_OK ||
        (rc = em_ckpt_tensor(ck, "audio_tower.conv1.bias", &s.conv1_b, eb)) != EM_OK ||
        (rc = em_ckpt_tensor(ck, "audio_tower.conv2.weight", &s.conv2_w, eb)) != EM_OK ||
        (rc = em_ckpt_tensor(ck, "audio_tower.conv2.bias", &s.conv2_b, eb)) != EM_OK ||
        (rc = em_ckpt_tensor(ck, "audio_tower.embed_positions.weight", &s.pos, eb)) != EM_OK ||
        (rc = em_ckpt_tensor(ck, "audio_tower.layer_norm.weight", &s.lnf_w, eb)) != EM_OK ||
        (rc = em_ckpt_tensor(ck, "audio_tower.layer_norm.bias", &s.lnf_b, eb)) != EM_OK)
        goto done;
    for (int i = 0; i < s.nlayers; i++)
        if ((rc = ckpt_layer(ck, i, &layers[i], eb)) != EM_OK) goto done;
    rc = em_encoder_new_desc(&s, out, eb);
done:
    free(layers);
    return rc;
}

/* Device buffers of one call, and the host table of key / value row pointers. */
struct scratch {
    float *mel, *h, *a, *q, *k, *v, *o, *f, *x1, *c1, *x2;
    const float **rows; /* host: [2T] */
    int own_mel;        /* mel is a device copy (not the caller's buffer) */
};

#define OPS(e) (e)->be->ops
#define CTX(e) (e)->be->ctx

static em_err mm(const struct em_encoder *e, float *y, const float *x, int n, int in, int out,
                 const struct em_tensor *w, const struct em_tensor *b)
{
    return OPS(e)->matmul(CTX(e), y, x, n, in, out, w, b);
}

static em_err run_layer(const struct em_encoder *e, const struct enc_layer *l, float *h, int T,
                        struct scratch *w)
{
    const int d = e->d;
    const struct em_tensor *W = l->w;
    em_err rc;
    if ((rc = OPS(e)->layernorm(CTX(e), w->a, h, l->ln1_w, l->ln1_b, T, d, e->eps)) ||
        (rc = mm(e, w->q, w->a, T, d, d, &W[LW_Q], &W[LW_QB])) ||
        (rc = mm(e, w->k, w->a, T, d, d, &W[LW_K], l->has_k_b ? &W[LW_KB] : NULL)) ||
        (rc = mm(e, w->v, w->a, T, d, d, &W[LW_V], &W[LW_VB])))
        return rc;
    const struct em_attn_args at = {.o = w->o, .ldo = d, .q = w->q, .ldq = d, .k = w->rows,
                                    .v = w->rows + T, .T = T, .n = T, .heads = e->heads,
                                    .kv_heads = e->heads, .hd = e->hd,
                                    .scale = 1.0f / sqrtf((float)e->hd)};
    if ((rc = OPS(e)->attn(CTX(e), &at)) ||
        (rc = mm(e, w->a, w->o, T, d, d, &W[LW_O], &W[LW_OB])) ||
        (rc = OPS(e)->add(CTX(e), h, w->a, (size_t)T * d)) ||
        (rc = OPS(e)->layernorm(CTX(e), w->a, h, l->ln2_w, l->ln2_b, T, d, e->eps)) ||
        (rc = mm(e, w->f, w->a, T, d, e->ffn, &W[LW_FC1], &W[LW_FC1B])) ||
        (rc = OPS(e)->gelu(CTX(e), w->f, (size_t)T * e->ffn)) ||
        (rc = mm(e, w->a, w->f, T, e->ffn, d, &W[LW_FC2], &W[LW_FC2B])) ||
        (rc = OPS(e)->add(CTX(e), h, w->a, (size_t)T * d)))
        return rc;
    return EM_OK;
}

/* conv1 + GELU, conv2 + GELU, + positions: h[T, d] from the mel on the device. */
static em_err stem(const struct em_encoder *e, struct scratch *w, int T)
{
    const int d = e->d, F1 = 2 * T, K1 = e->n_mels * 3, K2 = d * 3;
    const struct em_im2col_args c1 = {.dst = w->x1, .src = w->mel, .rows = F1, .ch = e->n_mels,
                                      .stride = 1, .frames = EM_MEL_FRAMES, .fstride = 1,
                                      .cstride = EM_MEL_FRAMES};
    /* frame 2t + k - 1 <= 2T - 1: always a computed conv1 frame */
    const struct em_im2col_args c2 = {.dst = w->x2, .src = w->c1, .rows = T, .ch = d,
                                      .stride = 2, .frames = F1, .fstride = (size_t)d,
                                      .cstride = 1};
    em_err rc;
    if ((rc = OPS(e)->im2col3(CTX(e), &c1)) ||
        (rc = mm(e, w->c1, w->x1, F1, K1, d, &e->conv1_w, &e->conv1_b)) ||
        (rc = OPS(e)->gelu(CTX(e), w->c1, (size_t)F1 * d)) ||
        (rc = OPS(e)->im2col3(CTX(e), &c2)) ||
        (rc = mm(e, w->h, w->x2, T, K2, d, &e->conv2_w, &e->conv2_b)) ||
        (rc = OPS(e)->gelu(CTX(e), w->h, (size_t)T * d)) ||
        (rc = OPS(e)->add(CTX(e), w->h, e->pos, (size_t)T * d)))
        return rc;
    return EM_OK;
}

static void scratch_free(const struct em_encoder *e, struct scratch *w)
{
    float *dev[] = {w->own_mel ? w->mel : NULL, w->h, w->a, w->q, w->k, w->v, w->o, w->f,
                    w->x1, w->c1, w->x2};
    for (size_t i = 0; i < sizeof dev / sizeof *dev; i++) free_vec(e, dev[i]);
    free(w->rows);
}

/* mel: the caller's (host) features, used in place on a unified backend. */
static em_err scratch_alloc(const struct em_encoder *e, int T, const float *mel, struct scratch *w)
{
    const struct em_backend *be = e->be;
    const size_t td = (size_t)T * e->d;
    const int own = !be->ops->unified;
    *w = (struct scratch){
        .own_mel = own,
        .mel = own ? em_be_floats(be, (size_t)e->n_mels * EM_MEL_FRAMES) : (float *)mel,
        .h = em_be_floats(be, td),
        .a = em_be_floats(be, td), .q = em_be_floats(be, td), .k = em_be_floats(be, td),
        .v = em_be_floats(be, td), .o = em_be_floats(be, td),
        .f = em_be_floats(be, (size_t)T * e->ffn),
        .x1 = em_be_floats(be, (size_t)2 * T * e->n_mels * 3),
        .c1 = em_be_floats(be, (size_t)2 * T * e->d), .x2 = em_be_floats(be, td * 3),
        .rows = malloc(2 * (size_t)T * sizeof *w->rows),
    };
    if (!w->mel || !w->h || !w->a || !w->q || !w->k || !w->v || !w->o || !w->f || !w->x1 ||
        !w->c1 || !w->x2 || !w->rows)
        return EM_E_NOMEM;
    for (int j = 0; j < T; j++) {
        w->rows[j] = w->k + (size_t)j * e->d;
        w->rows[T + j] = w->v + (size_t)j * e->d;
    }
    return EM_OK;
}

em_err em_encoder_run(const struct em_encoder *e, const float *mel, int mel_len, float *out,
                      int *n_tokens, struct em_errbuf *eb)
{
    *n_tokens = 0;
    if (mel_len < 1 || mel_len > EM_MEL_FRAMES)
        return em_errf(eb, EM_E_ARG, "mel_len %d outside [1, %d]", mel_len, EM_MEL_FRAMES);
    const int N = em_encoder_out_len(e, mel_len);
    if (N < 1)
        return em_errf(eb, EM_E_TOO_SHORT, "%d mel frames give no audio token (need >= 3)",
                       mel_len);
    const int T = (mel_len - 1) / 2 + 1, d = e->d;
    struct scratch w;
    em_err rc = scratch_alloc(e, T, mel, &w);
    if (rc != EM_OK) goto done;
    if (w.own_mel &&
        (rc = OPS(e)->upload(CTX(e), w.mel, mel, sizeof(float) * (size_t)e->n_mels * EM_MEL_FRAMES)))
        goto done;
    if ((rc = stem(e, &w, T)) != EM_OK) goto done;
    free_vec(e, w.x1), free_vec(e, w.c1), free_vec(e, w.x2); /* the stem's only */
    w.x1 = w.c1 = w.x2 = NULL;
    for (int i = 0; i < e->nlayers; i++)
        if ((rc = run_layer(e, &e->l[i], w.h, T, &w)) != EM_OK) goto done;
    const float *fin = w.h; /* Whisper: no pooling */
    if (e->pool) {
        if ((rc = OPS(e)->avgpool2(CTX(e), w.a, w.h, N, d))) goto done;
        fin = w.a;
    }
    /* a unified backend writes the caller's rows directly */
    float *dst = OPS(e)->unified ? out : w.o;
    if ((rc = OPS(e)->layernorm(CTX(e), dst, fin, e->lnf_w, e->lnf_b, N, d, e->eps)) ||
        (dst != out && (rc = OPS(e)->download(CTX(e), out, dst, sizeof(float) * (size_t)N * d))) ||
        (rc = OPS(e)->sync(CTX(e))))
        goto done;
    *n_tokens = N;
done:
    if (rc == EM_E_NOMEM) em_errf(eb, rc, "audio encoder: out of memory for %d positions", T);
    else if (rc != EM_OK)
        em_errf(eb, rc, "audio encoder: %s backend: %s", e->be->ops->name, em_err_name(rc));
    scratch_free(e, &w);
    return rc;
}
