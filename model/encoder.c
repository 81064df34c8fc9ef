/* model/encoder.c - Qwen2-Audio audio tower, f32 (spec §3).
 *
 *   mel[128, 3000], L valid frames; T = feat_len = (L - 1) / 2 + 1 positions computed
 *   conv1: im2col x1[2T, 128 * 3] @ W1[d, 384]^T + b1 -> GELU -> c1[2T, d]
 *   conv2: im2col x2[T, d * 3] (stride 2, frames 2t-1..2t+1) @ W2[d, 3d]^T + b2 -> GELU
 *   h[T, d] += embed_positions[0..T)
 *   per layer: h += out_proj(attn(LN1(h)));  h += fc2(GELU(fc1(LN2(h))))
 *     attn: q = (a Wq^T + bq), k = a Wk^T (no bias), v = a Wv^T + bv; per head
 *           softmax(q k^T * hd^-0.5) v over the T valid keys
 *   pool: p[j] = (h[2j] + h[2j+1]) / 2, j < N; out = LN_final(p)   (pool BEFORE the LN)
 * ref: transformers Qwen2AudioEncoder.forward, Qwen2AudioEncoderLayer.forward */
#include "model/encoder.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/kernels/backend.h"
#include "model/mel.h"

struct enc_layer {
    float *ln1_w, *ln1_b, *ln2_w, *ln2_b; /* [d], widened copies (owned) */
    struct em_tensor q_w, q_b, k_w, v_w, v_b, o_w, o_b, fc1_w, fc1_b, fc2_w, fc2_b;
};

struct em_encoder {
    int d, heads, hd, ffn, nlayers, npos;
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

/* Widened copy of a 1-D tensor of length d. */
static em_err load_vec(const struct em_ckpt *ck, const char *name, int d, float **out,
                       struct em_errbuf *eb)
{
    struct em_tensor t;
    em_err rc = em_ckpt_tensor(ck, name, &t, eb);
    if (rc != EM_OK) return rc;
    if (em_tensor_numel(&t) != d) return em_errf(eb, EM_E_MODEL, "%s: expected %d values", name, d);
    if (!(*out = malloc(sizeof(float) * (size_t)d))) return EM_E_NOMEM;
    em_tensor_read_f32(&t, 0, (size_t)d, *out);
    return EM_OK;
}

static em_err bind_layer(const struct em_ckpt *ck, int i, struct enc_layer *l, int d,
                         struct em_errbuf *eb)
{
    char n[160];
#define VEC(field, suffix)                                                      \
    snprintf(n, sizeof n, "audio_tower.layers.%d.%s", i, suffix);               \
    if ((rc = load_vec(ck, n, d, &l->field, eb)) != EM_OK) return rc;
#define TEN(field, suffix)                                                      \
    if ((rc = em_ckpt_tensorf(ck, &l->field, eb, "audio_tower.layers.%d.%s", i, suffix)) != EM_OK) \
        return rc;
    em_err rc;
    VEC(ln1_w, "self_attn_layer_norm.weight")
    VEC(ln1_b, "self_attn_layer_norm.bias")
    VEC(ln2_w, "final_layer_norm.weight")
    VEC(ln2_b, "final_layer_norm.bias")
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
#undef VEC
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
    em_err rc = EM_E_NOMEM;
    struct em_encoder *e = calloc(1, sizeof *e);
    if (!e) goto fail;
    e->d = a->d_model;
    e->heads = a->encoder_attention_heads;
    e->hd = e->d / e->heads;
    e->ffn = a->encoder_ffn_dim;
    e->npos = a->max_source_positions;
    e->eps = a->layer_norm_eps;
    e->l = calloc((size_t)a->encoder_layers, sizeof *e->l);
    if (!e->l) goto fail;
    e->nlayers = a->encoder_layers;
    if ((rc = em_ckpt_tensor(ck, "audio_tower.conv1.weight", &e->conv1_w, eb)) != EM_OK ||
        (rc = em_ckpt_tensor(ck, "audio_tower.conv1.bias", &e->conv1_b, eb)) != EM_OK ||
        (rc = em_ckpt_tensor(ck, "audio_tower.conv2.weight", &e->conv2_w, eb)) != EM_OK ||
        (rc = em_ckpt_tensor(ck, "audio_tower.conv2.bias", &e->conv2_b, eb)) != EM_OK ||
        (rc = em_ckpt_tensor(ck, "audio_tower.embed_positions.weight", &e->pos, eb)) != EM_OK ||
        (rc = load_vec(ck, "audio_tower.layer_norm.weight", e->d, &e->lnf_w, eb)) != EM_OK ||
        (rc = load_vec(ck, "audio_tower.layer_norm.bias", e->d, &e->lnf_b, eb)) != EM_OK)
        goto fail;
    for (int i = 0; i < e->nlayers; i++)
        if ((rc = bind_layer(ck, i, &e->l[i], e->d, eb)) != EM_OK) goto fail;
    *out = e;
    return EM_OK;
fail:
    em_encoder_free(e);
    return rc;
}

/* y[n, d] = LayerNorm(x) * w + b, statistics in double (biased variance). */
static void layer_norm(float *y, const float *x, int n, int d, const float *w, const float *b,
                       float eps)
{
    for (int i = 0; i < n; i++) {
        const float *xr = x + (size_t)i * d;
        float *yr = y + (size_t)i * d;
        double mean = 0, var = 0;
        for (int j = 0; j < d; j++) mean += xr[j];
        mean /= d;
        for (int j = 0; j < d; j++) var += ((double)xr[j] - mean) * ((double)xr[j] - mean);
        var /= d;
        double inv = 1.0 / sqrt(var + eps);
        for (int j = 0; j < d; j++) yr[j] = (float)(((double)xr[j] - mean) * inv) * w[j] + b[j];
    }
}

static void gelu(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)(0.5 * x[i] * (1.0 + erf(x[i] / M_SQRT2)));
}

/* o[T, d] = concat_h softmax(q_h k_h^T * scale) v_h; s is [T, T] scratch. */
static void attention(const struct em_encoder *e, const float *q, const float *k, const float *v,
                      float *o, float *s, int T)
{
    const int d = e->d, hd = e->hd;
    const float scale = 1.0f / sqrtf((float)hd);
    for (int h = 0; h < e->heads; h++) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, scale, q + h * hd, d,
                    k + h * hd, d, 0.0f, s, T);
        for (int i = 0; i < T; i++) {
            float *r = s + (size_t)i * T;
            float mx = r[0];
            for (int j = 1; j < T; j++) mx = r[j] > mx ? r[j] : mx;
            double sum = 0;
            for (int j = 0; j < T; j++) {
                r[j] = expf(r[j] - mx);
                sum += r[j];
            }
            float inv = (float)(1.0 / sum);
            for (int j = 0; j < T; j++) r[j] *= inv;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f, s, T, v + h * hd,
                    d, 0.0f, o + h * hd, d);
    }
}

struct scratch {
    float *a, *q, *k, *v, *o, *s, *f;
};

static em_err run_layer(const struct em_encoder *e, const struct enc_layer *l, float *h, int T,
                        struct scratch *w)
{
    const int d = e->d;
    em_err rc;
    layer_norm(w->a, h, T, d, l->ln1_w, l->ln1_b, e->eps);
    if ((rc = em_matmul(w->q, w->a, T, d, d, &l->q_w, &l->q_b)) != EM_OK) return rc;
    if ((rc = em_matmul(w->k, w->a, T, d, d, &l->k_w, NULL)) != EM_OK) return rc;
    if ((rc = em_matmul(w->v, w->a, T, d, d, &l->v_w, &l->v_b)) != EM_OK) return rc;
    attention(e, w->q, w->k, w->v, w->o, w->s, T);
    if ((rc = em_matmul(w->a, w->o, T, d, d, &l->o_w, &l->o_b)) != EM_OK) return rc;
    for (size_t i = 0; i < (size_t)T * d; i++) h[i] += w->a[i];
    layer_norm(w->a, h, T, d, l->ln2_w, l->ln2_b, e->eps);
    if ((rc = em_matmul(w->f, w->a, T, d, e->ffn, &l->fc1_w, &l->fc1_b)) != EM_OK) return rc;
    gelu(w->f, (size_t)T * e->ffn);
    if ((rc = em_matmul(w->a, w->f, T, e->ffn, d, &l->fc2_w, &l->fc2_b)) != EM_OK) return rc;
    for (size_t i = 0; i < (size_t)T * d; i++) h[i] += w->a[i];
    return EM_OK;
}

/* conv1 + GELU, conv2 + GELU, + positions: h[T, d]. */
static em_err stem(const struct em_encoder *e, const float *mel, float *h, int T)
{
    const int d = e->d, F1 = 2 * T, K1 = EM_MEL_BINS * 3, K2 = d * 3;
    em_err rc = EM_E_NOMEM;
    float *x1 = malloc(sizeof(float) * (size_t)F1 * K1);
    float *c1 = malloc(sizeof(float) * (size_t)F1 * d);
    float *x2 = malloc(sizeof(float) * (size_t)T * K2);
    float *pos = malloc(sizeof(float) * (size_t)d);
    if (!x1 || !c1 || !x2 || !pos) goto done;
    for (int f = 0; f < F1; f++)
        for (int i = 0; i < EM_MEL_BINS; i++)
            for (int k = 0; k < 3; k++) {
                int src = f + k - 1;
                x1[(size_t)f * K1 + i * 3 + k] =
                    src >= 0 && src < EM_MEL_FRAMES ? mel[(size_t)i * EM_MEL_FRAMES + src] : 0.0f;
            }
    if ((rc = em_matmul(c1, x1, F1, K1, d, &e->conv1_w, &e->conv1_b)) != EM_OK) goto done;
    gelu(c1, (size_t)F1 * d);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < d; i++)
            for (int k = 0; k < 3; k++) {
                int src = 2 * t + k - 1; /* <= 2T - 1: always a computed conv1 frame */
                x2[(size_t)t * K2 + i * 3 + k] = src >= 0 ? c1[(size_t)src * d + i] : 0.0f;
            }
    if ((rc = em_matmul(h, x2, T, K2, d, &e->conv2_w, &e->conv2_b)) != EM_OK) goto done;
    gelu(h, (size_t)T * d);
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
    const int N = em_encoder_tokens(mel_len);
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
    if (!h || !w.a || !w.q || !w.k || !w.v || !w.o || !w.s || !w.f) goto done;
    if ((rc = stem(e, mel, h, T)) != EM_OK) goto done;
    for (int i = 0; i < e->nlayers; i++)
        if ((rc = run_layer(e, &e->l[i], h, T, &w)) != EM_OK) goto done;
    for (int j = 0; j < N; j++)
        for (int i = 0; i < d; i++)
            w.a[(size_t)j * d + i] = (h[(size_t)(2 * j) * d + i] + h[(size_t)(2 * j + 1) * d + i]) * 0.5f;
    layer_norm(out, w.a, N, d, e->lnf_w, e->lnf_b, e->eps);
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
    return rc;
}
