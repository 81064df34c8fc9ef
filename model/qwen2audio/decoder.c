/* model/qwen2audio/decoder.c - Qwen2 decoder forward pass (prefill of T tokens or one decode step).
 *
 *   x[T, D] = embed(ids) with audio rows spliced
 *   per layer: h = rms(x) * w_in
 *              q[T, H*hd] = h Wq^T + bq; k, v[T, KVH*hd] = h Wk^T + bk, h Wv^T + bv
 *              q, k = rope(q, k; positions p0 .. p0+T-1); k, v -> cache rows
 *              a[T, H*hd] = softmax(q k^T / sqrt(hd), causal) v     (fp32 softmax)
 *              x += a Wo^T
 *              h = rms(x) * w_post;  x += (silu(h Wg^T) * (h Wu^T)) Wd^T
 *   logits = rms(x) * w_norm @ lm_head^T
 * ref: transformers Qwen2DecoderLayer / Qwen2Attention (eager) / Qwen2RMSNorm /
 * Qwen2RotaryEmbedding (default rope: inv_freq = 1 / theta^(2i/hd) in fp32, cos/sin of
 * position * inv_freq, duplicated halves, attention_scaling 1). */
#include "model/qwen2audio/decoder.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/kernels/backend.h"

/* Weights are the backend's resident copies (be->ops->weight: the CPU's are views into the
 * checkpoint), norm vectors device buffers; all owned by the decoder. */
enum { LW_Q, LW_QB, LW_K, LW_KB, LW_V, LW_VB, LW_O, LW_GATE, LW_UP, LW_DOWN, LW_N };

struct dec_layer {
    struct em_tensor w[LW_N];
    float *in_norm, *post_norm; /* [D] */
};

struct em_dec {
    const struct em_backend *be; /* borrowed */
    struct em_qa_text_config c;
    int audio_token;
    int D, H, KVH, hd, F, V;
    struct em_tensor embed, lm_head; /* lm_head's data == embed's when tied */
    float *norm;      /* [D] */
    float *inv_freq;  /* [hd / 2], host */
    struct dec_layer *layers;
    enum em_kv_type kv_type; /* of em_dec_kv_new's caches */
};

#define OPS(d) (d)->be->ops
#define CTX(d) (d)->be->ctx

static em_err view(const struct em_ckpt *ck, struct em_tensor *t, int ndim, int64_t d0,
                   int64_t d1, struct em_errbuf *eb, const char *fmt, int layer)
{
    char name[160];
    snprintf(name, sizeof name, fmt, layer);
    em_err rc = em_ckpt_tensor(ck, name, t, eb);
    if (rc != EM_OK) return rc;
    if (t->ndim != ndim || t->shape[0] != d0 || (ndim == 2 && t->shape[1] != d1)) {
        char sh[64];
        return em_errf(eb, EM_E_MODEL, "decoder: tensor '%s' is %s, config implies [%lld, %lld]",
                       name, em_shape_str(t, sh, sizeof sh), (long long)d0, (long long)d1);
    }
    return EM_OK;
}

/* view, then the backend's resident copy in *out */
static em_err bind(const struct em_ckpt *ck, const struct em_backend *be, struct em_tensor *out,
                   int ndim, int64_t d0, int64_t d1, struct em_errbuf *eb, const char *fmt,
                   int layer)
{
    struct em_tensor t;
    em_err rc = view(ck, &t, ndim, d0, d1, eb, fmt, layer);
    if (rc != EM_OK) return rc;
    if ((rc = be->ops->weight(be->ctx, &t, out)) != EM_OK)
        return em_errf(eb, rc, "decoder: tensor '%s' cannot be made resident on the %s backend "
                       "(%s)", t.name ? t.name : "?", be->ops->name, em_err_name(rc));
    return EM_OK;
}

/* A 1-D tensor of d values widened into a new device buffer. */
static em_err widen(const struct em_ckpt *ck, const struct em_backend *be, float **out, int64_t d,
                    struct em_errbuf *eb, const char *fmt, int layer)
{
    struct em_tensor t;
    em_err rc = view(ck, &t, 1, d, 0, eb, fmt, layer);
    if (rc != EM_OK) return rc;
    if (!(*out = em_be_upload_tensor_f32(be, &t, (size_t)d))) return EM_E_NOMEM;
    return EM_OK;
}

#define LM "language_model.model.layers.%d."

static em_err open_layer(const struct em_ckpt *ck, struct em_dec *d, int i, struct em_errbuf *eb)
{
    struct dec_layer *L = &d->layers[i];
    const struct em_backend *be = d->be;
    int qd = d->H * d->hd, kd = d->KVH * d->hd;
    em_err rc;
    if ((rc = bind(ck, be, &L->w[LW_Q], 2, qd, d->D, eb, LM "self_attn.q_proj.weight", i)) ||
        (rc = bind(ck, be, &L->w[LW_QB], 1, qd, 0, eb, LM "self_attn.q_proj.bias", i)) ||
        (rc = bind(ck, be, &L->w[LW_K], 2, kd, d->D, eb, LM "self_attn.k_proj.weight", i)) ||
        (rc = bind(ck, be, &L->w[LW_KB], 1, kd, 0, eb, LM "self_attn.k_proj.bias", i)) ||
        (rc = bind(ck, be, &L->w[LW_V], 2, kd, d->D, eb, LM "self_attn.v_proj.weight", i)) ||
        (rc = bind(ck, be, &L->w[LW_VB], 1, kd, 0, eb, LM "self_attn.v_proj.bias", i)) ||
        (rc = bind(ck, be, &L->w[LW_O], 2, d->D, qd, eb, LM "self_attn.o_proj.weight", i)) ||
        (rc = bind(ck, be, &L->w[LW_GATE], 2, d->F, d->D, eb, LM "mlp.gate_proj.weight", i)) ||
        (rc = bind(ck, be, &L->w[LW_UP], 2, d->F, d->D, eb, LM "mlp.up_proj.weight", i)) ||
        (rc = bind(ck, be, &L->w[LW_DOWN], 2, d->D, d->F, eb, LM "mlp.down_proj.weight", i)) ||
        (rc = widen(ck, be, &L->in_norm, d->D, eb, LM "input_layernorm.weight", i)) ||
        (rc = widen(ck, be, &L->post_norm, d->D, eb, LM "post_attention_layernorm.weight", i)))
        return rc;
    return EM_OK;
}

em_err em_dec_open(const struct em_ckpt *ck, struct em_dec **out, struct em_errbuf *eb)
{
    return em_dec_open_be(ck, NULL, out, eb);
}

em_err em_dec_open_be(const struct em_ckpt *ck, const struct em_backend *be, struct em_dec **out,
                      struct em_errbuf *eb)
{
    em_err rc = EM_E_NOMEM;
    *out = NULL;
    const struct em_qa_config *cfg = em_ckpt_config(ck);
    struct em_dec *d = calloc(1, sizeof *d);
    if (!d) goto fail;
    d->be = be ? be : em_backend_cpu();
    d->c = cfg->text;
    d->audio_token = cfg->audio_token_index;
    d->D = d->c.hidden_size;
    d->H = d->c.num_attention_heads;
    d->KVH = d->c.num_key_value_heads;
    d->hd = d->c.head_dim;
    d->F = d->c.intermediate_size;
    d->V = d->c.vocab_size;
    if (d->D <= 0 || d->H <= 0 || d->KVH <= 0 || d->H % d->KVH || d->hd <= 0 || d->hd % 2 ||
        d->F <= 0 || d->V <= 0 || d->c.num_hidden_layers <= 0) {
        rc = em_errf(eb, EM_E_MODEL, "decoder: config geometry D %d H %d KVH %d hd %d F %d V %d",
                     d->D, d->H, d->KVH, d->hd, d->F, d->V);
        goto fail;
    }
    if ((rc = bind(ck, d->be, &d->embed, 2, d->V, d->D, eb,
                   "language_model.model.embed_tokens.weight", 0)))
        goto fail;
    if (d->c.tie_word_embeddings) d->lm_head = d->embed;
    else if ((rc = bind(ck, d->be, &d->lm_head, 2, d->V, d->D, eb, "language_model.lm_head.weight", 0)))
        goto fail;
    if ((rc = widen(ck, d->be, &d->norm, d->D, eb, "language_model.model.norm.weight", 0))) goto fail;
    rc = EM_E_NOMEM;
    d->layers = calloc((size_t)d->c.num_hidden_layers, sizeof *d->layers);
    d->inv_freq = malloc((size_t)(d->hd / 2) * sizeof *d->inv_freq);
    if (!d->layers || !d->inv_freq) goto fail;
    /* ref: Qwen2RotaryEmbedding default init, computed in fp32 */
    for (int i = 0; i < d->hd / 2; i++)
        d->inv_freq[i] = 1.0f / powf((float)d->c.rope_theta, (float)(2 * i) / (float)d->hd);
    for (int i = 0; i < d->c.num_hidden_layers; i++)
        if ((rc = open_layer(ck, d, i, eb)) != EM_OK) goto fail;
    /* f16 keys and values for quantized weights (their error dwarfs f16's), f32 otherwise
     * (the f32 / bf16 golden data); EARMARK_KV=f32|f16 overrides */
    const int qt = d->layers[0].w[LW_Q].dtype;
    d->kv_type = qt == EM_DT_Q8_0 || qt == EM_DT_Q4_0 ? EM_KV_F16 : EM_KV_F32;
    const char *env = getenv("EARMARK_KV");
    if (env && *env) {
        const int t = em_kv_type_parse(env);
        if (t < 0) {
            rc = em_errf(eb, EM_E_ARG, "decoder: EARMARK_KV=%s: expected f32 or f16", env);
            goto fail;
        }
        d->kv_type = (enum em_kv_type)t;
    }
    *out = d;
    return EM_OK;
fail:
    em_dec_free(d);
    return rc;
}

static void free_w(const struct em_dec *d, struct em_tensor *t)
{
    if (t->data) OPS(d)->weight_free(CTX(d), t);
}

static void free_vec(const struct em_dec *d, void *p)
{
    if (p) OPS(d)->free(CTX(d), p);
}

void em_dec_free(struct em_dec *d)
{
    if (!d) return;
    for (int i = 0; d->layers && i < d->c.num_hidden_layers; i++) {
        for (int j = 0; j < LW_N; j++) free_w(d, &d->layers[i].w[j]);
        free_vec(d, d->layers[i].in_norm);
        free_vec(d, d->layers[i].post_norm);
    }
    if (d->lm_head.data != d->embed.data) free_w(d, &d->lm_head);
    free_w(d, &d->embed);
    free(d->layers);
    free_vec(d, d->norm);
    free(d->inv_freq);
    free(d);
}

const struct em_qa_text_config *em_dec_config(const struct em_dec *d) { return &d->c; }
int em_dec_vocab(const struct em_dec *d) { return d->V; }
int em_dec_audio_token(const struct em_dec *d) { return d->audio_token; }
const struct em_backend *em_dec_backend(const struct em_dec *d) { return d->be; }

int em_dec_max_batch(const struct em_dec *d)
{
    const int r = d->be->ops->decode_rows;
    return r < 1 ? 1 : r > EM_DEC_MAX_BATCH ? EM_DEC_MAX_BATCH : r;
}

enum em_kv_type em_dec_kv_type(const struct em_dec *d) { return d->kv_type; }

em_err em_dec_kv_new_type(const struct em_dec *d, int cap, enum em_kv_type type,
                          struct em_kv **out, struct em_errbuf *eb)
{
    *out = NULL;
    if (cap > EM_DEC_MAX_TOKENS)
        return em_errf(eb, EM_E_TOO_LONG, "decoder: %d positions, limit %d", cap, EM_DEC_MAX_TOKENS);
    return em_kv_new(d->be, d->c.num_hidden_layers, d->KVH * d->hd, cap, type, out, eb);
}

em_err em_dec_kv_new(const struct em_dec *d, int cap, struct em_kv **out, struct em_errbuf *eb)
{
    return em_dec_kv_new_type(d, cap, d->kv_type, out, eb);
}

em_err em_dec_kv_over(const struct em_dec *d, const struct em_kv *base, int n, int cap,
                      struct em_kv **out, struct em_errbuf *eb)
{
    *out = NULL;
    if (cap > EM_DEC_MAX_TOKENS)
        return em_errf(eb, EM_E_TOO_LONG, "decoder: %d positions, limit %d", cap, EM_DEC_MAX_TOKENS);
    if (!base) return em_errf(eb, EM_E_ARG, "decoder: no base cache");
    if (em_kv_layers(base) != d->c.num_hidden_layers || em_kv_dim(base) != d->KVH * d->hd ||
        em_kv_backend(base) != d->be)
        return em_errf(eb, EM_E_ARG, "decoder: a cache of %d layers x %d on %s does not fit this "
                       "decoder", em_kv_layers(base), em_kv_dim(base), em_kv_backend(base)->ops->name);
    return em_kv_new_over(base, n, cap, out, eb);
}

/* ---- the forward pass: every step a slot of the backend table ----------------------------
 * Activations live in device buffers (scratch), the cache rows wherever the em_kv put them;
 * the row pointers the attention slots read are host tables built per layer. */

/* Device buffers of one call: x, h [T, D]; q, a [T, H*hd]; k, v [T, KVH*hd]; g, u [T, F];
 * cs, sn [T, hd/2]; lg the logits (the caller's buffer on a unified backend). */
struct scratch {
    float *x, *h, *q, *k, *v, *a, *g, *u, *cs, *sn, *lg;
    int own_lg;
};

static void scratch_free(const struct em_dec *d, struct scratch *s)
{
    float *dev[] = {s->x, s->h, s->q, s->k, s->v, s->a, s->g, s->u, s->cs, s->sn,
                    s->own_lg ? s->lg : NULL};
    for (size_t i = 0; i < sizeof dev / sizeof *dev; i++) free_vec(d, dev[i]);
}

/* T activation rows; row t belongs to the sequence of cache kv[t] at position pos[t]. A
 * prefill passes T rows of one cache at consecutive positions, a batched step one row per
 * cache. Every linear runs once over all T rows; RoPE and the cache writes go row by row,
 * then attention once per run of rows of one sequence (all keys/values are written before
 * any row attends; the causal mask keeps each row to the positions up to its own). */
struct rows {
    int T;
    struct em_kv *const *kv; /* [T] */
    const int *pos;          /* [T] */
};

/* RoPE on q and k, then every row's k and v into its cache row (each row has its own cache
 * row: distinct positions, or distinct caches in a batch step). The cache's own rows
 * (positions past an overlay's base) are written in place: the memory em_kv_store writes. */
static em_err rope_store(const struct em_dec *d, int l, const struct rows *rw, struct scratch *s)
{
    void **rows = malloc(2 * (size_t)rw->T * sizeof *rows);
    if (!rows) return EM_E_NOMEM;
    for (int t = 0; t < rw->T; t++) {
        rows[t] = (void *)em_kv_k(rw->kv[t], l, rw->pos[t]);
        rows[rw->T + t] = (void *)em_kv_v(rw->kv[t], l, rw->pos[t]);
    }
    const struct em_rope_kv_args a = {
        .q = s->q, .k = s->k, .v = s->v, .T = rw->T, .heads = d->H, .kv_heads = d->KVH,
        .hd = d->hd, .cs = s->cs, .sn = s->sn, .krow = rows, .vrow = rows + rw->T,
        .f16 = em_kv_type(rw->kv[0]) == EM_KV_F16,
    };
    /* one element type per call: a batch may mix caches of both types */
    em_err rc = EM_OK;
    int same = 1;
    for (int t = 1; t < rw->T; t++) same &= em_kv_type(rw->kv[t]) == em_kv_type(rw->kv[0]);
    if (same) {
        rc = OPS(d)->rope_kv(CTX(d), &a);
    } else {
        const size_t qd = (size_t)d->H * d->hd, kd = (size_t)d->KVH * d->hd, half = d->hd / 2;
        for (int t = 0; t < rw->T && rc == EM_OK; t++) {
            struct em_rope_kv_args r = a;
            r.q += t * qd, r.k += t * kd, r.v += t * kd, r.cs += t * half, r.sn += t * half;
            r.T = 1, r.krow = rows + t, r.vrow = rows + rw->T + t;
            r.f16 = em_kv_type(rw->kv[t]) == EM_KV_F16;
            rc = OPS(d)->rope_kv(CTX(d), &r);
        }
    }
    free(rows);
    return rc;
}

/* Fills tab[0 .. n) with the K rows and tab[n .. 2n) with the V rows of layer l. */
static void kv_rows(const struct em_kv *kv, int l, int n, const void **tab)
{
    for (int p = 0; p < n; p++) {
        tab[p] = em_kv_k(kv, l, p);
        tab[n + p] = em_kv_v(kv, l, p);
    }
}

/* Causal attention of T query rows q of one sequence at positions p0 .. p0 + T - 1 over the
 * cache rows 0 .. p0 + T - 1 of kv (written), out[T, H * hd]. */
static em_err attention_prefill(const struct em_dec *d, const struct em_kv *kv, int l, int p0,
                                int T, const float *q, float *out)
{
    const int n = p0 + T, qd = d->H * d->hd;
    const void **tab = malloc(2 * (size_t)n * sizeof *tab);
    if (!tab) return EM_E_NOMEM;
    kv_rows(kv, l, n, tab);
    struct em_attn_args a = {.o = out, .ldo = qd, .q = q, .ldq = qd, .T = T, .n = n, .p0 = p0,
                             .causal = true, .heads = d->H, .kv_heads = d->KVH, .hd = d->hd,
                             .scale = 1.0f / sqrtf((float)d->hd)};
    if (em_kv_type(kv) == EM_KV_F16) {
        a.k16 = (const uint16_t *const *)tab;
        a.v16 = (const uint16_t *const *)tab + n;
    } else {
        a.k = (const float *const *)tab;
        a.v = (const float *const *)tab + n;
    }
    em_err rc = OPS(d)->attn(CTX(d), &a);
    free(tab);
    return rc;
}

/* Attention of B single query rows: row b of cache kv[b] at position pos[b] (its K/V rows
 * written), q[b] -> out[b]; one decode-attention call per element type present. */
static em_err attention_decode(const struct em_dec *d, int l, int B, struct em_kv *const *kv,
                               const int *pos, const float *const *q, float *const *out)
{
    size_t total = 0;
    for (int b = 0; b < B; b++) total += 2 * (size_t)(pos[b] + 1);
    const void **tab = malloc(total * sizeof *tab);
    if (!tab) return EM_E_NOMEM;
    const void *const *k[EM_DEC_MAX_BATCH], *const *v[EM_DEC_MAX_BATCH];
    const float *qs[EM_DEC_MAX_BATCH];
    float *os[EM_DEC_MAX_BATCH];
    int n[EM_DEC_MAX_BATCH];
    em_err rc = EM_OK;
    for (int f16 = 0; f16 < 2 && rc == EM_OK; f16++) {
        int m = 0;
        size_t used = 0;
        for (int b = 0; b < B; b++) {
            if ((em_kv_type(kv[b]) == EM_KV_F16) != f16) continue;
            n[m] = pos[b] + 1;
            kv_rows(kv[b], l, n[m], tab + used);
            k[m] = tab + used;
            v[m] = tab + used + n[m];
            used += 2 * (size_t)n[m];
            qs[m] = q[b];
            os[m++] = out[b];
        }
        if (!m) continue;
        const struct em_attn_decode_args a = {
            .B = m, .o = os, .q = qs, .k = k, .v = v, .n = n, .f16 = f16, .heads = d->H,
            .kv_heads = d->KVH, .hd = d->hd, .scale = 1.0f / sqrtf((float)d->hd),
        };
        rc = OPS(d)->attn_decode(CTX(d), &a);
    }
    free(tab);
    return rc;
}

static em_err mm(const struct em_dec *d, float *y, const float *x, int n, int in, int out,
                 const struct em_tensor *w, const struct em_tensor *b)
{
    return OPS(d)->matmul(CTX(d), y, x, n, in, out, w, b);
}

static em_err layer_forward(const struct em_dec *d, const struct dec_layer *L, int l,
                            const struct rows *rw, struct scratch *s)
{
    const int D = d->D, qd = d->H * d->hd, kd = d->KVH * d->hd, T = rw->T;
    const float eps = d->c.rms_norm_eps;
    const struct em_tensor *W = L->w;
    em_err rc;
    if ((rc = OPS(d)->rmsnorm(CTX(d), s->h, s->x, L->in_norm, T, D, eps)) ||
        (rc = mm(d, s->q, s->h, T, D, qd, &W[LW_Q], &W[LW_QB])) ||
        (rc = mm(d, s->k, s->h, T, D, kd, &W[LW_K], &W[LW_KB])) ||
        (rc = mm(d, s->v, s->h, T, D, kd, &W[LW_V], &W[LW_VB])) ||
        (rc = rope_store(d, l, rw, s)))
        return rc;
    /* runs of rows of one sequence at consecutive positions (a prefill) attend causally, one
     * call per run; single rows (decode steps) all together */
    struct em_kv *dkv[EM_DEC_MAX_BATCH];
    const float *dq[EM_DEC_MAX_BATCH];
    float *dout[EM_DEC_MAX_BATCH];
    int dpos[EM_DEC_MAX_BATCH], nd = 0;
    for (int t = 0, m; t < T; t += m) {
        for (m = 1; t + m < T && rw->kv[t + m] == rw->kv[t] && rw->pos[t + m] == rw->pos[t] + m;)
            m++;
        if (m > 1) {
            rc = attention_prefill(d, rw->kv[t], l, rw->pos[t], m, s->q + (size_t)t * qd,
                                   s->a + (size_t)t * qd);
            if (rc != EM_OK) return rc;
            continue;
        }
        if (nd == EM_DEC_MAX_BATCH) {
            if ((rc = attention_decode(d, l, nd, dkv, dpos, dq, dout))) return rc;
            nd = 0;
        }
        dkv[nd] = rw->kv[t];
        dpos[nd] = rw->pos[t];
        dq[nd] = s->q + (size_t)t * qd;
        dout[nd++] = s->a + (size_t)t * qd;
    }
    if (nd && (rc = attention_decode(d, l, nd, dkv, dpos, dq, dout))) return rc;
    if ((rc = mm(d, s->h, s->a, T, qd, D, &W[LW_O], NULL)) ||
        (rc = OPS(d)->add(CTX(d), s->x, s->h, (size_t)T * D)) ||
        (rc = OPS(d)->rmsnorm(CTX(d), s->h, s->x, L->post_norm, T, D, eps)) ||
        (rc = mm(d, s->g, s->h, T, D, d->F, &W[LW_GATE], NULL)) ||
        (rc = mm(d, s->u, s->h, T, D, d->F, &W[LW_UP], NULL)) ||
        (rc = OPS(d)->silu_mul(CTX(d), s->g, s->u, (size_t)T * d->F)) ||
        (rc = mm(d, s->h, s->g, T, d->F, D, &W[LW_DOWN], NULL)) ||
        (rc = OPS(d)->add(CTX(d), s->x, s->h, (size_t)T * D)))
        return rc;
    return EM_OK;
}

/* x rows: the embeddings of ids, or, at the audio token, the next row of audio (host). */
static em_err embed(const struct em_dec *d, const int32_t *ids, int T, const float *audio,
                    int n_audio, float *x, struct em_errbuf *eb)
{
    int used = 0;
    for (int t = 0; t < T; t++) {
        if (ids[t] < 0 || ids[t] >= d->V)
            return em_errf(eb, EM_E_ARG, "decoder: token %d at %d outside [0, %d)", ids[t], t, d->V);
        if (ids[t] == d->audio_token && (used++ >= n_audio || !audio))
            return em_errf(eb, EM_E_ARG, "decoder: more audio tokens than the %d audio rows",
                           n_audio);
    }
    if (used != n_audio)
        return em_errf(eb, EM_E_ARG, "decoder: %d audio tokens for %d audio rows", used, n_audio);
    used = 0;
    em_err rc = EM_OK;
    for (int t = 0, m; t < T && rc == EM_OK; t += m) {
        const int is_audio = ids[t] == d->audio_token;
        for (m = 1; t + m < T && (ids[t + m] == d->audio_token) == is_audio;) m++;
        float *row = x + (size_t)t * d->D;
        if (is_audio) {
            rc = OPS(d)->upload(CTX(d), row, audio + (size_t)used * d->D,
                                (size_t)m * d->D * sizeof *row);
            used += m;
        } else {
            rc = OPS(d)->embed(CTX(d), row, &d->embed, ids + t, m);
        }
    }
    return rc;
}

static em_err scratch_alloc(const struct em_dec *d, int T, int n_logits, float *logits,
                            struct scratch *s)
{
    const struct em_backend *be = d->be;
    size_t td = (size_t)T * d->D, tq = (size_t)T * d->H * d->hd, tk = (size_t)T * d->KVH * d->hd;
    size_t half = (size_t)d->hd / 2;
    *s = (struct scratch){
        .x = em_be_floats(be, td), .h = em_be_floats(be, td), .q = em_be_floats(be, tq),
        .k = em_be_floats(be, tk), .v = em_be_floats(be, tk), .a = em_be_floats(be, tq),
        .g = em_be_floats(be, (size_t)T * d->F), .u = em_be_floats(be, (size_t)T * d->F),
        .cs = em_be_floats(be, (size_t)T * half), .sn = em_be_floats(be, (size_t)T * half),
    };
    if (n_logits > 0) {
        s->own_lg = !OPS(d)->unified;
        s->lg = s->own_lg ? em_be_floats(be, (size_t)n_logits * d->V) : logits;
        if (!s->lg) return EM_E_NOMEM;
    }
    if (!s->x || !s->h || !s->q || !s->k || !s->v || !s->a || !s->g || !s->u || !s->cs || !s->sn)
        return EM_E_NOMEM;
    return EM_OK;
}

/* cos / sin of every row's position (ref: Qwen2RotaryEmbedding, fp32) into s->cs / s->sn. */
static em_err rope_tables(const struct em_dec *d, const struct rows *rw, struct scratch *s)
{
    const int half = d->hd / 2, T = rw->T;
    float *cs = malloc(2 * (size_t)T * half * sizeof *cs);
    if (!cs) return EM_E_NOMEM;
    float *sn = cs + (size_t)T * half;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            float ang = (float)rw->pos[t] * d->inv_freq[i];
            cs[(size_t)t * half + i] = cosf(ang);
            sn[(size_t)t * half + i] = sinf(ang);
        }
    const size_t bytes = (size_t)T * half * sizeof *cs;
    em_err rc = OPS(d)->upload(CTX(d), s->cs, cs, bytes);
    if (rc == EM_OK) rc = OPS(d)->upload(CTX(d), s->sn, sn, bytes);
    if (rc == EM_OK) rc = OPS(d)->sync(CTX(d)); /* the host tables are freed next */
    free(cs);
    return rc;
}

/* Embedded rows in s->x, positions in rw: the layers, then (mode) logits of the last row or
 * of every row, or with `ends` (k rows, ascending) the logits of those rows, into logits
 * (host). */
static em_err run_rows(const struct em_dec *d, const struct rows *rw, struct scratch *s,
                       enum em_dec_logits mode, const int *ends, int k, float *logits,
                       struct em_errbuf *eb)
{
    const int D = d->D, T = rw->T;
    const float eps = d->c.rms_norm_eps;
    em_err rc;
    if ((rc = rope_tables(d, rw, s)) != EM_OK) return rc;
    for (int l = 0; l < d->c.num_hidden_layers; l++)
        if ((rc = layer_forward(d, &d->layers[l], l, rw, s)) != EM_OK)
            return em_errf(eb, rc, "decoder: layer %d on the %s backend: %s", l, OPS(d)->name,
                           em_err_name(rc));
    int n = 0;
    if (ends) { /* row by row: RMSNorm's bits do not depend on how many rows one call takes */
        for (n = 0; n < k && rc == EM_OK; n++)
            rc = OPS(d)->rmsnorm(CTX(d), s->h + (size_t)n * D, s->x + (size_t)ends[n] * D,
                                 d->norm, 1, D, eps);
    } else if (mode != EM_DEC_LOGITS_NONE) {
        int first = mode == EM_DEC_LOGITS_ALL ? 0 : T - 1;
        n = T - first;
        rc = OPS(d)->rmsnorm(CTX(d), s->h, s->x + (size_t)first * D, d->norm, n, D, eps);
    }
    if (rc == EM_OK && n > 0) {
        rc = mm(d, s->lg, s->h, n, D, d->V, &d->lm_head, NULL);
        if (rc == EM_OK && s->own_lg)
            rc = OPS(d)->download(CTX(d), logits, s->lg, (size_t)n * d->V * sizeof *logits);
    }
    if (rc == EM_OK) rc = OPS(d)->sync(CTX(d));
    if (rc != EM_OK)
        return em_errf(eb, rc, "decoder: logits on the %s backend: %s", OPS(d)->name,
                       em_err_name(rc));
    return EM_OK;
}

/* Runs k sequences' new rows, ids back to back (T in all; sequence i appends n[i] rows at
 * positions em_kv_len(kv[i]) ..), through embed (audio rows as there) and run_rows (mode,
 * ends, logits as there), then advances every cache. The callers have checked the
 * arguments. */
static em_err run_seqs(const struct em_dec *d, struct em_kv *const *kv, const int *n, int k,
                       const int32_t *ids, int T, const float *audio, int n_audio,
                       enum em_dec_logits mode, const int *ends, float *logits,
                       struct em_errbuf *eb)
{
    struct scratch s;
    const int n_logits = ends ? k : mode == EM_DEC_LOGITS_ALL ? T : mode == EM_DEC_LOGITS_LAST;
    struct em_kv **kvs = malloc((size_t)T * sizeof *kvs);
    int *pos = malloc((size_t)T * sizeof *pos);
    em_err rc = scratch_alloc(d, T, n_logits, logits, &s);
    if (rc == EM_OK && (!kvs || !pos)) rc = EM_E_NOMEM;
    if (rc == EM_OK) {
        for (int i = 0, t = 0; i < k; i++)
            for (int j = 0; j < n[i]; j++, t++) {
                kvs[t] = kv[i];
                pos[t] = em_kv_len(kv[i]) + j;
            }
        rc = embed(d, ids, T, audio, n_audio, s.x, eb);
    }
    if (rc == EM_OK) {
        const struct rows rw = {T, kvs, pos};
        rc = run_rows(d, &rw, &s, mode, ends, k, logits, eb);
    }
    if (rc == EM_OK)
        for (int i = 0; i < k; i++) em_kv_advance(kv[i], n[i]);
    if (rc == EM_E_NOMEM) em_errf(eb, rc, "decoder: out of memory for %d rows", T);
    scratch_free(d, &s);
    free(kvs);
    free(pos);
    return rc;
}

em_err em_dec_forward(const struct em_dec *d, struct em_kv *kv, const int32_t *ids, int T,
                      const float *audio, int n_audio, enum em_dec_logits mode, float *logits,
                      struct em_errbuf *eb)
{
    const int p0 = em_kv_len(kv);
    if (T < 1 || n_audio < 0) return em_errf(eb, EM_E_ARG, "decoder: %d tokens", T);
    if (T > em_kv_cap(kv) - p0)
        return em_errf(eb, EM_E_TOO_LONG, "decoder: %d + %d positions exceed the cache's %d", p0, T,
                       em_kv_cap(kv));
    if (em_kv_backend(kv) != d->be)
        return em_errf(eb, EM_E_ARG, "decoder: a cache on %s for a decoder on %s",
                       em_kv_backend(kv)->ops->name, OPS(d)->name);
    return run_seqs(d, &kv, &T, 1, ids, T, audio, n_audio, mode, NULL, logits, eb);
}

em_err em_dec_step_batch(const struct em_dec *d, struct em_kv *const *kv, const int32_t *ids,
                         int k, float *logits, struct em_errbuf *eb)
{
    if (k < 1 || k > EM_DEC_MAX_BATCH || !ids)
        return em_errf(eb, EM_E_ARG, "decoder: batch of %d sequences, expected 1..%d", k,
                       EM_DEC_MAX_BATCH);
    const int32_t *rows[EM_DEC_MAX_BATCH];
    int one[EM_DEC_MAX_BATCH];
    for (int i = 0; i < k; i++) {
        rows[i] = &ids[i];
        one[i] = 1;
    }
    return em_dec_prefill_batch(d, kv, rows, one, k, logits, eb);
}

em_err em_dec_prefill_batch(const struct em_dec *d, struct em_kv *const *kv,
                            const int32_t *const *ids, const int *n, int k, float *logits,
                            struct em_errbuf *eb)
{
    if (k < 1 || k > EM_DEC_MAX_BATCH || !kv || !ids || !n || !logits)
        return em_errf(eb, EM_E_ARG, "decoder: batch of %d sequences, expected 1..%d", k,
                       EM_DEC_MAX_BATCH);
    int T = 0, ends[EM_DEC_MAX_BATCH];
    for (int i = 0; i < k; i++) {
        if (!kv[i] || !ids[i] || n[i] < 1)
            return em_errf(eb, EM_E_ARG, "decoder: batch sequence %d: no cache, ids or tokens", i);
        if (em_kv_backend(kv[i]) != d->be)
            return em_errf(eb, EM_E_ARG, "decoder: batch sequence %d: a cache on %s for a decoder "
                           "on %s", i, em_kv_backend(kv[i])->ops->name, OPS(d)->name);
        for (int j = 0; j < i; j++)
            if (kv[j] == kv[i])
                return em_errf(eb, EM_E_ARG, "decoder: batch sequences %d and %d share a cache", j, i);
        for (int t = 0; t < n[i]; t++)
            if (ids[i][t] == d->audio_token)
                return em_errf(eb, EM_E_ARG, "decoder: audio token in batch sequence %d at %d", i, t);
        const int p0 = em_kv_len(kv[i]);
        if (n[i] > em_kv_cap(kv[i]) - p0)
            return em_errf(eb, EM_E_TOO_LONG, "decoder: batch sequence %d: %d + %d positions exceed "
                           "the cache's %d", i, p0, n[i], em_kv_cap(kv[i]));
        if (n[i] > EM_DEC_MAX_TOKENS - T)
            return em_errf(eb, EM_E_TOO_LONG, "decoder: batch of more than %d tokens",
                           EM_DEC_MAX_TOKENS);
        T += n[i];
        ends[i] = T - 1;
    }
    int32_t *flat = malloc((size_t)T * sizeof *flat); /* the sequences' ids back to back */
    if (!flat) return EM_E_NOMEM;
    for (int i = 0, t = 0; i < k; t += n[i], i++) memcpy(flat + t, ids[i], (size_t)n[i] * sizeof *flat);
    const em_err rc = run_seqs(d, kv, n, k, flat, T, NULL, 0, EM_DEC_LOGITS_NONE, ends, logits, eb);
    free(flat);
    return rc;
}
