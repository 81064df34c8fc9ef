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
 * Speed: the projections and conv stem go through em_matmul (int8 GEMM or sgemm for n > 8);
 * attention is em_attn_full (model/kernels/cpu/attn.h: fused AVX-512 tiles, (head, query
 * block) tasks on the qmatmul pool) or, below AVX-512, two cblas_sgemm per head; LayerNorm, exact-erf GELU, softmax and
 * the residual adds are f32 SIMD passes (AVX2 + FMA when em_cpu_level() allows, else plain C
 * with the same formulas), single-threaded: splitting them over threads between OpenBLAS
 * calls measured slower on the 2-core machine (OpenBLAS' idle workers hold the cores).
 * ref: transformers Qwen2AudioEncoder.forward, Qwen2AudioEncoderLayer.forward */
#include "model/audio/encoder.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>


#include "model/kernels/backend.h"
#include "model/kernels/cpu/attn.h"
#include "model/kernels/cpu/cpufeat.h"
#include "model/kernels/cpu/eltwise.h"
#include "model/audio/mel.h"

struct enc_layer {
    float *ln1_w, *ln1_b, *ln2_w, *ln2_b; /* [d], widened copies (owned) */
    struct em_tensor q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b, fc1_w, fc1_b, fc2_w, fc2_b;
    int has_k_b;
};

struct em_encoder {
    int n_mels, d, heads, hd, ffn, nlayers, npos, pool;
    float eps;
    struct em_tensor conv1_w, conv1_b, conv2_w, conv2_b, pos; /* borrowed views */
    float *lnf_w, *lnf_b;
    struct enc_layer *l;
};

void em_encoder_free(struct em_encoder *e)
{
    if (!e) return;
    for (int i = 0; e->l && i < e->nlayers; i++) {
        free(e->l[i].ln1_w);
        free(e->l[i].ln1_b);
        free(e->l[i].ln2_w);
        free(e->l[i].ln2_b);
    }
    free(e->l);
    free(e->lnf_w);
    free(e->lnf_b);
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

/* Widened copy of a 1-D tensor of length d. */
static em_err widen_vec(const struct em_tensor *t, int d, float **out, struct em_errbuf *eb)
{
    if (em_tensor_numel(t) != d)
        return em_errf(eb, EM_E_MODEL, "%s: expected %d values", t->name ? t->name : "vector", d);
    if (!(*out = malloc(sizeof(float) * (size_t)d))) return EM_E_NOMEM;
    em_tensor_read_f32(t, 0, (size_t)d, *out);
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

static em_err bind_layer(const struct em_encoder_layer_desc *s, struct enc_layer *l, int d,
                         int ffn, struct em_errbuf *eb)
{
    em_err rc;
    if ((rc = widen_vec(&s->ln1_w, d, &l->ln1_w, eb)) != EM_OK ||
        (rc = widen_vec(&s->ln1_b, d, &l->ln1_b, eb)) != EM_OK ||
        (rc = widen_vec(&s->ln2_w, d, &l->ln2_w, eb)) != EM_OK ||
        (rc = widen_vec(&s->ln2_b, d, &l->ln2_b, eb)) != EM_OK)
        return rc;
    l->has_k_b = s->k_b.data != NULL;
    if ((rc = check_linear(&s->q_w, &s->q_b, d, d, eb)) != EM_OK ||
        (rc = check_linear(&s->k_w, l->has_k_b ? &s->k_b : NULL, d, d, eb)) != EM_OK ||
        (rc = check_linear(&s->v_w, &s->v_b, d, d, eb)) != EM_OK ||
        (rc = check_linear(&s->o_w, &s->o_b, d, d, eb)) != EM_OK ||
        (rc = check_linear(&s->fc1_w, &s->fc1_b, ffn, d, eb)) != EM_OK ||
        (rc = check_linear(&s->fc2_w, &s->fc2_b, d, ffn, eb)) != EM_OK)
        return rc;
    l->q_w = s->q_w, l->q_b = s->q_b, l->k_w = s->k_w, l->k_b = s->k_b;
    l->v_w = s->v_w, l->v_b = s->v_b, l->o_w = s->o_w, l->o_b = s->o_b;
    l->fc1_w = s->fc1_w, l->fc1_b = s->fc1_b, l->fc2_w = s->fc2_w, l->fc2_b = s->fc2_b;
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
    e->conv1_w = s->conv1_w, e->conv1_b = s->conv1_b;
    e->conv2_w = s->conv2_w, e->conv2_b = s->conv2_b;
    e->pos = s->pos;
    if (em_tensor_numel(&e->conv1_w) != (int64_t)e->d * e->n_mels * 3 ||
        em_tensor_numel(&e->conv2_w) != (int64_t)e->d * e->d * 3 ||
        em_tensor_numel(&e->pos) < (int64_t)e->npos * e->d) {
        rc = em_errf(eb, EM_E_MODEL, "audio encoder: conv or position shapes do not match "
                     "d_model %d and %d mel bins", e->d, e->n_mels);
        goto fail;
    }
    if ((rc = widen_vec(&s->lnf_w, e->d, &e->lnf_w, eb)) != EM_OK ||
        (rc = widen_vec(&s->lnf_b, e->d, &e->lnf_b, eb)) != EM_OK)
        goto fail;
    for (int i = 0; i < e->nlayers; i++)
        if ((rc = bind_layer(&s->layers[i], &e->l[i], e->d, e->ffn, eb)) != EM_OK) goto fail;
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
        .npos = a->max_source_positions, .eps = a->layer_norm_eps, .pool = 1,
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

/* o[T, d] = concat_h softmax(q_h k_h^T * scale) v_h; s is [T, T] scratch, inv [T], ot
 * [hd, T]. The softmax's 1 / sum is applied to the [T, hd] head output instead of the
 * [T, T] weights. P v_h is computed transposed, ot = v_h^T P^T ([hd, T], then copied into
 * o): OpenBLAS runs that shape (m = 64, n = T) faster than m = T, n = 64 (about 7 % for 20
 * heads at T = 1500 on the 2-core bench machine, best of 3, repeated 6 times). */
static void attention(const struct em_encoder *e, const float *q, const float *k, const float *v,
                      float *o, float *s, float *inv, float *ot, int T)
{
    const int d = e->d, hd = e->hd;
    const float scale = 1.0f / sqrtf((float)hd);
    for (int h = 0; h < e->heads; h++) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, scale, q + h * hd, d,
                    k + h * hd, d, 0.0f, s, T);
        em_softmax_rows(s, inv, T, T);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, hd, T, T, 1.0f, v + h * hd, d, s, T,
                    0.0f, ot, T);
        for (int i = 0; i < T; i++) {
            float *orow = o + (size_t)i * d + h * hd;
            const float c = inv[i];
            for (int j = 0; j < hd; j++) orow[j] = ot[(size_t)j * T + i] * c;
        }
    }
}

struct scratch {
    float *a, *q, *k, *v, *o, *s, *f, *inv, *ot;
};

static em_err run_layer(const struct em_encoder *e, const struct enc_layer *l, float *h, int T,
                        struct scratch *w)
{
    const int d = e->d;
    em_err rc;
    em_layer_norm(w->a, h, T, d, l->ln1_w, l->ln1_b, e->eps);
    if ((rc = em_matmul(w->q, w->a, T, d, d, &l->q_w, &l->q_b)) != EM_OK) return rc;
    if ((rc = em_matmul(w->k, w->a, T, d, d, &l->k_w, l->has_k_b ? &l->k_b : NULL)) != EM_OK) return rc;
    if ((rc = em_matmul(w->v, w->a, T, d, d, &l->v_w, &l->v_b)) != EM_OK) return rc;
    /* the fused AVX-512 kernel on both cores (attn.h); the sgemm path where it is missing */
    rc = em_attn_full(w->o, w->q, w->k, w->v, T, e->heads, e->hd, d, 1.0f / sqrtf((float)e->hd));
    if (rc == EM_E_UNSUPPORTED) attention(e, w->q, w->k, w->v, w->o, w->s, w->inv, w->ot, T);
    else if (rc != EM_OK) return rc;
    if ((rc = em_matmul(w->a, w->o, T, d, d, &l->o_w, &l->o_b)) != EM_OK) return rc;
    em_add_into(h, w->a, (size_t)T * d);
    em_layer_norm(w->a, h, T, d, l->ln2_w, l->ln2_b, e->eps);
    if ((rc = em_matmul(w->f, w->a, T, d, e->ffn, &l->fc1_w, &l->fc1_b)) != EM_OK) return rc;
    em_gelu(w->f, (size_t)T * e->ffn);
    if ((rc = em_matmul(w->a, w->f, T, e->ffn, d, &l->fc2_w, &l->fc2_b)) != EM_OK) return rc;
    em_add_into(h, w->a, (size_t)T * d);
    return EM_OK;
}

/* conv1 + GELU, conv2 + GELU, + positions: h[T, d]. */
static em_err stem(const struct em_encoder *e, const float *mel, float *h, int T)
{
    const int d = e->d, F1 = 2 * T, K1 = e->n_mels * 3, K2 = d * 3;
    em_err rc = EM_E_NOMEM;
    float *x1 = malloc(sizeof(float) * (size_t)F1 * K1);
    float *c1 = malloc(sizeof(float) * (size_t)F1 * d);
    float *x2 = malloc(sizeof(float) * (size_t)T * K2);
    float *pos = malloc(sizeof(float) * (size_t)d);
    if (!x1 || !c1 || !x2 || !pos) goto done;
    for (int f = 0; f < F1; f++)
        for (int i = 0; i < e->n_mels; i++)
            for (int k = 0; k < 3; k++) {
                int src = f + k - 1;
                x1[(size_t)f * K1 + i * 3 + k] =
                    src >= 0 && src < EM_MEL_FRAMES ? mel[(size_t)i * EM_MEL_FRAMES + src] : 0.0f;
            }
    if ((rc = em_matmul(c1, x1, F1, K1, d, &e->conv1_w, &e->conv1_b)) != EM_OK) goto done;
    em_gelu(c1, (size_t)F1 * d);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < d; i++)
            for (int k = 0; k < 3; k++) {
                int src = 2 * t + k - 1; /* <= 2T - 1: always a computed conv1 frame */
                x2[(size_t)t * K2 + i * 3 + k] = src >= 0 ? c1[(size_t)src * d + i] : 0.0f;
            }
    if ((rc = em_matmul(h, x2, T, K2, d, &e->conv2_w, &e->conv2_b)) != EM_OK) goto done;
    em_gelu(h, (size_t)T * d);
    for (int t = 0; t < T; t++) {
        em_tensor_read_f32(&e->pos, (size_t)t * d, (size_t)d, pos);
        for (int i = 0; i < d; i++) h[(size_t)t * d + i] += pos[i];
    }
    rc = EM_OK;
done:
    free(x1);
    free(c1);
    free(x2);
    free(pos);
    return rc;
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
    em_err rc = EM_E_NOMEM;
    struct scratch w = {0};
    float *h = malloc(sizeof(float) * (size_t)T * d);
    w.a = malloc(sizeof(float) * (size_t)T * d);
    w.q = malloc(sizeof(float) * (size_t)T * d);
    w.k = malloc(sizeof(float) * (size_t)T * d);
    w.v = malloc(sizeof(float) * (size_t)T * d);
    w.o = malloc(sizeof(float) * (size_t)T * d);
    w.s = malloc(sizeof(float) * (size_t)T * T);
    w.f = malloc(sizeof(float) * (size_t)T * e->ffn);
    w.inv = malloc(sizeof(float) * (size_t)T);
    w.ot = malloc(sizeof(float) * (size_t)T * e->hd);
    if (!h || !w.a || !w.q || !w.k || !w.v || !w.o || !w.s || !w.f || !w.inv || !w.ot)
        goto done;
    if ((rc = stem(e, mel, h, T)) != EM_OK) goto done;
    for (int i = 0; i < e->nlayers; i++)
        if ((rc = run_layer(e, &e->l[i], h, T, &w)) != EM_OK) goto done;
    if (e->pool) {
        for (int j = 0; j < N; j++)
            for (int i = 0; i < d; i++)
                w.a[(size_t)j * d + i] =
                    (h[(size_t)(2 * j) * d + i] + h[(size_t)(2 * j + 1) * d + i]) * 0.5f;
        em_layer_norm(out, w.a, N, d, e->lnf_w, e->lnf_b, e->eps);
    } else {
        em_layer_norm(out, h, N, d, e->lnf_w, e->lnf_b, e->eps); /* Whisper: no pooling */
    }
    *n_tokens = N;
    rc = EM_OK;
done:
    if (rc == EM_E_NOMEM) em_errf(eb, rc, "audio encoder: out of memory for %d positions", T);
    free(h);
    free(w.a);
    free(w.q);
    free(w.k);
    free(w.v);
    free(w.o);
    free(w.s);
    free(w.f);
    free(w.inv);
    free(w.ot);
    return rc;
}
