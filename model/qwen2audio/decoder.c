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

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/kernels/backend.h"
#include "model/kernels/cpu/attn.h"
#include "model/kernels/cpu/cpufeat.h"
#include "model/kernels/cpu/qmatmul.h"
#include "model/kernels/cpu/vecmath.h"

struct dec_layer {
    struct em_tensor q_w, q_b, k_w, k_b, v_w, v_b, o_w, gate, up, down;
    float *in_norm, *post_norm; /* [D], widened */
};

struct em_dec {
    struct em_qa_text_config c;
    int audio_token;
    int D, H, KVH, hd, F, V;
    struct em_tensor embed, lm_head;
    float *norm;      /* [D] */
    float *inv_freq;  /* [hd / 2] */
    struct dec_layer *layers;
    enum em_kv_type kv_type; /* of em_dec_kv_new's caches */
};

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

static em_err widen(const struct em_ckpt *ck, float **out, int64_t d, struct em_errbuf *eb,
                    const char *fmt, int layer)
{
    struct em_tensor t;
    em_err rc = view(ck, &t, 1, d, 0, eb, fmt, layer);
    if (rc != EM_OK) return rc;
    if (!(*out = malloc((size_t)d * sizeof **out))) return EM_E_NOMEM;
    em_tensor_read_f32(&t, 0, (size_t)d, *out);
    return EM_OK;
}

#define LM "language_model.model.layers.%d."

static em_err open_layer(const struct em_ckpt *ck, struct em_dec *d, int i, struct em_errbuf *eb)
{
    struct dec_layer *L = &d->layers[i];
    int qd = d->H * d->hd, kd = d->KVH * d->hd;
    em_err rc;
    if ((rc = view(ck, &L->q_w, 2, qd, d->D, eb, LM "self_attn.q_proj.weight", i)) ||
        (rc = view(ck, &L->q_b, 1, qd, 0, eb, LM "self_attn.q_proj.bias", i)) ||
        (rc = view(ck, &L->k_w, 2, kd, d->D, eb, LM "self_attn.k_proj.weight", i)) ||
        (rc = view(ck, &L->k_b, 1, kd, 0, eb, LM "self_attn.k_proj.bias", i)) ||
        (rc = view(ck, &L->v_w, 2, kd, d->D, eb, LM "self_attn.v_proj.weight", i)) ||
        (rc = view(ck, &L->v_b, 1, kd, 0, eb, LM "self_attn.v_proj.bias", i)) ||
        (rc = view(ck, &L->o_w, 2, d->D, qd, eb, LM "self_attn.o_proj.weight", i)) ||
        (rc = view(ck, &L->gate, 2, d->F, d->D, eb, LM "mlp.gate_proj.weight", i)) ||
        (rc = view(ck, &L->up, 2, d->F, d->D, eb, LM "mlp.up_proj.weight", i)) ||
        (rc = view(ck, &L->down, 2, d->D, d->F, eb, LM "mlp.down_proj.weight", i)) ||
        (rc = widen(ck, &L->in_norm, d->D, eb, LM "input_layernorm.weight", i)) ||
        (rc = widen(ck, &L->post_norm, d->D, eb, LM "post_attention_layernorm.weight", i)))
        return rc;
    return EM_OK;
}

em_err em_dec_open(const struct em_ckpt *ck, struct em_dec **out, struct em_errbuf *eb)
{
    em_err rc = EM_E_NOMEM;
    *out = NULL;
    const struct em_qa_config *cfg = em_ckpt_config(ck);
    struct em_dec *d = calloc(1, sizeof *d);
    if (!d) goto fail;
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
    if ((rc = view(ck, &d->embed, 2, d->V, d->D, eb, "language_model.model.embed_tokens.weight", 0)))
        goto fail;
    if (d->c.tie_word_embeddings) d->lm_head = d->embed;
    else if ((rc = view(ck, &d->lm_head, 2, d->V, d->D, eb, "language_model.lm_head.weight", 0)))
        goto fail;
    if ((rc = widen(ck, &d->norm, d->D, eb, "language_model.model.norm.weight", 0))) goto fail;
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
    const int qt = d->layers[0].q_w.dtype;
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

void em_dec_free(struct em_dec *d)
{
    if (!d) return;
    for (int i = 0; d->layers && i < d->c.num_hidden_layers; i++) {
        free(d->layers[i].in_norm);
        free(d->layers[i].post_norm);
    }
    free(d->layers);
    free(d->norm);
    free(d->inv_freq);
    free(d);
}

const struct em_qa_text_config *em_dec_config(const struct em_dec *d) { return &d->c; }
int em_dec_vocab(const struct em_dec *d) { return d->V; }
int em_dec_audio_token(const struct em_dec *d) { return d->audio_token; }

enum em_kv_type em_dec_kv_type(const struct em_dec *d) { return d->kv_type; }

em_err em_dec_kv_new_type(const struct em_dec *d, int cap, enum em_kv_type type,
                          struct em_kv **out, struct em_errbuf *eb)
{
    *out = NULL;
    if (cap > EM_DEC_MAX_TOKENS)
        return em_errf(eb, EM_E_TOO_LONG, "decoder: %d positions, limit %d", cap, EM_DEC_MAX_TOKENS);
    return em_kv_new(d->c.num_hidden_layers, d->KVH * d->hd, cap, type, out, eb);
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
    if (em_kv_layers(base) != d->c.num_hidden_layers || em_kv_dim(base) != d->KVH * d->hd)
        return em_errf(eb, EM_E_ARG, "decoder: a cache of %d layers x %d does not fit this decoder",
                       em_kv_layers(base), em_kv_dim(base));
    return em_kv_new_over(base, n, cap, out, eb);
}

/* Row passes of a prefill (RMSNorm, RoPE and the cache writes) run on the qmatmul pool in
 * tasks of PAR_ROWS rows from PAR_MIN_ROWS rows on; each row's arithmetic does not depend on
 * the split. Single-threaded they took 12 + 15 ms of a 7B layer's ~600 ms at 800 tokens. */
#define PAR_ROWS 16
#define PAR_MIN_ROWS 32

struct row_pass {
    void (*rows)(const struct row_pass *c, int t0, int t1);
    int T;
    /* rmsnorm */
    float *y;
    const float *x, *w;
    int D;
    float eps;
    /* rope + cache writes */
    const struct em_dec *d;
    const struct rows *rw;
    struct scratch *s;
    int l;
};

static void row_pass_task(void *ctx, int task, int slot)
{
    (void)slot;
    const struct row_pass *c = ctx;
    const int t0 = task * PAR_ROWS, t1 = t0 + PAR_ROWS < c->T ? t0 + PAR_ROWS : c->T;
    c->rows(c, t0, t1);
}

static void row_pass_run(const struct row_pass *c)
{
    if (c->T >= PAR_MIN_ROWS)
        em_qmm_parallel(row_pass_task, (void *)c, (c->T + PAR_ROWS - 1) / PAR_ROWS, 0);
    else
        c->rows(c, 0, c->T);
}

/* y[T, D] = x / sqrt(mean(x^2) + eps) * w  (ref: Qwen2RMSNorm, variance in fp32; here the
 * sum of squares is in double, four partial sums added in a fixed order) */
static void rmsnorm_rows(const struct row_pass *c, int t0, int t1)
{
    const int D = c->D;
    for (int t = t0; t < t1; t++) {
        const float *xr = c->x + (size_t)t * D;
        float *yr = c->y + (size_t)t * D;
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        int i = 0;
        for (; i + 4 <= D; i += 4) {
            s0 += (double)xr[i] * xr[i];
            s1 += (double)xr[i + 1] * xr[i + 1];
            s2 += (double)xr[i + 2] * xr[i + 2];
            s3 += (double)xr[i + 3] * xr[i + 3];
        }
        for (; i < D; i++) s0 += (double)xr[i] * xr[i];
        const double ss = (s0 + s1) + (s2 + s3);
        float r = 1.0f / sqrtf((float)(ss / D) + c->eps);
        for (i = 0; i < D; i++) yr[i] = c->w[i] * (xr[i] * r);
    }
}

static void rmsnorm(float *y, const float *x, const float *w, int T, int D, float eps)
{
    const struct row_pass c = {.rows = rmsnorm_rows, .T = T, .y = y, .x = x, .w = w, .D = D,
                               .eps = eps};
    row_pass_run(&c);
}

/* Rotate-half RoPE on n_heads heads of one row at position pos. */
static void rope_row(float *v, int n_heads, int hd, const float *cs, const float *sn)
{
    int half = hd / 2;
    for (int h = 0; h < n_heads; h++) {
        float *x = v + (size_t)h * hd;
        for (int i = 0; i < half; i++) {
            float a = x[i], b = x[i + half];
            x[i] = a * cs[i] - b * sn[i];
            x[i + half] = b * cs[i] + a * sn[i];
        }
    }
}

/* The contiguous run of cache rows of layer l that starts at position p (< n_pos): the
 * positions p .. p + return - 1 whose K rows (and V rows) are consecutive kv_dim-strided
 * rows (of the cache's element type) from *k (*v). A plain cache is one run, an overlay one
 * per cache it reads. */
static int kv_run(const struct em_kv *kv, int l, int p, int n_pos, const void **k,
                  const void **v)
{
    const size_t row = (size_t)em_kv_dim(kv) * em_kv_elem_bytes(kv);
    *k = em_kv_k(kv, l, p);
    *v = em_kv_v(kv, l, p);
    int n = 1;
    while (p + n < n_pos &&
           (const char *)em_kv_k(kv, l, p + n) == (const char *)*k + (size_t)n * row &&
           (const char *)em_kv_v(kv, l, p + n) == (const char *)*v + (size_t)n * row)
        n++;
    return n;
}

/* kv_run of an f32 cache, or, with wide (an f16 cache's rows 0 .. n_pos - 1 widened: K rows
 * then V rows), the one run of all n_pos rows in it. */
static int f32_run(const struct em_kv *kv, int l, int p, int n_pos, const float *wide,
                   const float **k, const float **v)
{
    if (wide) {
        const size_t kd = (size_t)em_kv_dim(kv);
        *k = wide + (size_t)p * kd;
        *v = wide + (size_t)(n_pos + p) * kd;
        return n_pos - p;
    }
    const void *kr, *vr;
    const int m = kv_run(kv, l, p, n_pos, &kr, &vr);
    *k = kr;
    *v = vr;
    return m;
}

/* x[0 .. n) = softmax(x) (fp32: subtract the row max, float exp and sum). */
static void softmax_row_c(float *x, int n)
{
    float inv = 1.0f / em_exp_shift_row(x, n);
    for (int j = 0; j < n; j++) x[j] *= inv;
}

#if EM_VM_X86
EM_VM_AVX2 static void softmax_row_avx2(float *x, int n)
{
    float sum = em_exp_shift_row8(x, n);
    __m256 inv = _mm256_set1_ps(1.0f / sum);
    int j = 0;
    for (; j + 8 <= n; j += 8)
        _mm256_storeu_ps(x + j, _mm256_mul_ps(_mm256_loadu_ps(x + j), inv));
    for (; j < n; j++) x[j] *= 1.0f / sum;
}
#endif

/* Rows r of s[rows, n] (row stride n): keys past n0 + r are masked (causal, weight 0); the
 * rest become softmax probabilities. */
static void softmax_causal(float *s, int rows, int n, int n0)
{
#if EM_VM_X86
    const int avx2 = em_cpu_level() >= EM_CPU_AVX2;
#endif
    for (int r = 0; r < rows; r++) {
        float *x = s + (size_t)r * n;
        int valid = n0 + r + 1 < n ? n0 + r + 1 : n;
#if EM_VM_X86
        if (avx2)
            softmax_row_avx2(x, valid);
        else
#endif
            softmax_row_c(x, valid);
        for (int j = valid; j < n; j++) x[j] = 0;
    }
}

/* Attention of T query rows q[T, H * hd] of one sequence at positions p0 .. p0 + T - 1 over
 * the cache rows 0 .. p0 + T - 1 of kv (causal; rows already written), out[T, H * hd].
 * sc has room for max(T, H / KVH) * (p0 + T) floats. Two cblas_sgemm per (query or kv)
 * head and contiguous run of cache rows: scores = q k^T * scale, out = P v. One query row
 * (a decode step, single or batched: the same code either way) stacks the H / KVH query
 * heads of a kv head into one [group, hd] product, so each K/V row is read once. An f16
 * cache's rows 0 .. n - 1 are widened into one f32 copy first (this path runs only below
 * AVX-512). EM_E_NOMEM for that copy. */
static em_err attention_seq(const struct em_dec *d, const struct em_kv *kv, int l, int p0, int T,
                            const float *q, float *out, float *sc)
{
    const int hd = d->hd, group = d->H / d->KVH, n = p0 + T, qd = d->H * hd,
              kd = d->KVH * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    const float *k, *v;
    float *wide = NULL; /* [2][n][kd] for an f16 cache */
    if (em_kv_type(kv) != EM_KV_F32) {
        if (!(wide = malloc(2 * (size_t)n * kd * sizeof *wide))) return EM_E_NOMEM;
        for (int p = 0; p < n; p++) {
            em_kv_widen(em_kv_type(kv), em_kv_k(kv, l, p), wide + (size_t)p * kd, (size_t)kd);
            em_kv_widen(em_kv_type(kv), em_kv_v(kv, l, p), wide + (size_t)(n + p) * kd,
                        (size_t)kd);
        }
    }
    /* a unit: M query rows at qh (row stride ld) -> M output rows at oh (same stride), one
     * kv head kvh; a prefill's unit is one query head, a step's one kv head's query group */
    const int units = T == 1 ? d->KVH : d->H, M = T == 1 ? group : T, ld = T == 1 ? hd : qd;
    for (int u = 0; u < units; u++) {
        const int kvh = T == 1 ? u : u / group;
        const float *qh = q + (size_t)u * (T == 1 ? (size_t)group * hd : (size_t)hd);
        float *oh = out + (size_t)u * (T == 1 ? (size_t)group * hd : (size_t)hd);
        for (int p = 0, m; p < n; p += m) {
            m = f32_run(kv, l, p, n, wide, &k, &v);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, m, hd, scale, qh, ld,
                        k + (size_t)kvh * hd, kd, 0.0f, sc + p, n);
        }
        softmax_causal(sc, M, n, p0); /* T == 1: every row at position p0 = n - 1 */
        for (int p = 0, m; p < n; p += m) {
            m = f32_run(kv, l, p, n, wide, &k, &v);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, hd, m, 1.0f, sc + p, n,
                        v + (size_t)kvh * hd, kd, p ? 1.0f : 0.0f, oh, ld);
        }
    }
    free(wide);
    return EM_OK;
}

/* The same as attention_seq through em_attn (model/kernels/cpu/attn.h: causal AVX-512 tiles
 * on the qmatmul pool, only the score columns each block of queries can see). The cache's
 * rows are passed as pointers, so an overlay's rows and its shared prefix's need no copy.
 * EM_E_UNSUPPORTED below AVX-512 (the caller runs attention_seq), EM_E_NOMEM. */
static em_err attention_prefill(const struct em_dec *d, struct em_kv *kv, int l, int p0, int T,
                                const float *q, float *out)
{
    const int n = p0 + T, qd = d->H * d->hd;
    struct em_attn_args a = {.o = out, .ldo = qd, .q = q, .ldq = qd, .T = T, .n = n, .p0 = p0,
                             .causal = true, .heads = d->H, .kv_heads = d->KVH, .hd = d->hd,
                             .scale = 1.0f / sqrtf((float)d->hd)};
    /* 2n row pointers of the cache's element type, stored (and read) as that type only */
    const int f16 = em_kv_type(kv) == EM_KV_F16;
    void *rows = malloc(2 * (size_t)n * (f16 ? sizeof(const uint16_t *) : sizeof(const float *)));
    if (!rows) return EM_E_NOMEM;
    const uint16_t **rh = rows;
    const float **rf = rows;
    for (int i = 0; i < 2 * n; i++) {
        const void *row = i < n ? em_kv_k(kv, l, i) : em_kv_v(kv, l, i - n);
        if (f16) rh[i] = row;
        else rf[i] = row;
    }
    if (f16) {
        a.k16 = rh;
        a.v16 = rh + n;
    } else {
        a.k = rf;
        a.v = rf + n;
    }
    em_err rc = em_attn(&a);
    free(rows);
    return rc;
}

/* ---- decode attention: the single query rows of a step, every sequence at once ----------
 * A decode step has one query row per sequence (em_dec_forward of 1 token, or
 * em_dec_step_batch). Its attention reads every cached K/V row of the sequence once, which
 * at 7B is 2 x 16 KB per position and layer (26 MB at 800 positions): memory-bound work.
 * Here it runs on the qmatmul pool, one task per kv head, and the sequences of a batch that
 * read the same cache rows (overlays on one shared prefix: em_dec_kv_over) share each row
 * read: a run of rows is visited once for every query that attends to it.
 * Each score and each output element is computed by the same operations in the same order
 * whatever the batch, the task split or the row blocking (scores: one accumulator over the
 * head dimension; outputs: o = fma(p_j, v_j, o) over the positions in order), so a sequence
 * gets the same bits alone or in a batch. */

struct dec_run {
    const void *k, *v; /* rows p .. p + m - 1, kv_dim-strided */
    int f16;           /* element type: uint16_t halves (1) or float (0) */
    int p, m;
    int nseq;
    int seq[EM_DEC_MAX_BATCH]; /* members of the decode set that read these rows */
};

struct dec_attn {
    const struct em_dec *d;
    int B, n_max, nruns;
    const int *n;           /* [B] positions each member attends (its position + 1) */
    const float *const *q;  /* [B] query rows [H * hd] */
    float *const *out;      /* [B] output rows [H * hd] */
    const struct dec_run *runs; /* sorted by p */
    float *sc;              /* per pool slot: B * group rows of n_max scores */
    size_t sc_slot;
};

static int run_cmp(const void *a, const void *b)
{
    const struct dec_run *x = a, *y = b;
    return (x->p > y->p) - (x->p < y->p);
}

/* s[i] = scale * q . k row i, i < rows (<= 4), over the run's element type; off and ld in
 * elements */
static void run_dots(const struct dec_run *R, size_t off, size_t ld, const float *q, int rows,
                     int hd, float scale, float *s, int avx2)
{
    const int h = R->f16;
    const void *k = (const char *)R->k + off * (h ? sizeof(uint16_t) : sizeof(float));
#if EM_VM_X86
    if (avx2) {
        if (h) em_dots8_h(q, k, ld, rows, hd, scale, s);
        else em_dots8(q, k, ld, rows, hd, scale, s);
        return;
    }
#endif
    (void)avx2;
    em_dots_t(q, k, ld, rows, hd, scale, s, h);
}

/* o += p[i] * v row i, i < rows, in order, over the run's element type */
static void run_axpys(const struct dec_run *R, size_t off, size_t ld, float *o, const float *p,
                      int rows, int hd, int avx2)
{
    const int h = R->f16;
    const void *v = (const char *)R->v + off * (h ? sizeof(uint16_t) : sizeof(float));
#if EM_VM_X86
    if (avx2) {
        if (h) em_axpys8_h(o, p, v, ld, rows, hd);
        else em_axpys8(o, p, v, ld, rows, hd);
        return;
    }
#endif
    (void)avx2;
    em_axpys_t(o, p, v, ld, rows, hd, h);
}

/* Task: kv head u for every member of the set. */
static void dec_attn_task(void *ctx, int u, int slot)
{
    const struct dec_attn *A = ctx;
    const struct em_dec *d = A->d;
    const int hd = d->hd, group = d->H / d->KVH, kd = d->KVH * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    float *sc = A->sc + (size_t)slot * A->sc_slot;
    const int avx2 = em_cpu_level() >= EM_CPU_AVX2;
    /* scores of query (b, g) in row b * group + g */
    for (int r = 0; r < A->nruns; r++) {
        const struct dec_run *R = &A->runs[r];
        for (int i = 0; i < R->m; i += 4) {
            const int rows = R->m - i < 4 ? R->m - i : 4;
            const size_t off = (size_t)i * kd + (size_t)u * hd;
            for (int e = 0; e < R->nseq; e++)
                for (int g = 0; g < group; g++) {
                    const int b = R->seq[e];
                    const float *q = A->q[b] + (size_t)(u * group + g) * hd;
                    float *s = sc + (size_t)(b * group + g) * A->n_max + R->p + i;
                    run_dots(R, off, (size_t)kd, q, rows, hd, scale, s, avx2);
                }
        }
    }
    for (int b = 0; b < A->B; b++)
        for (int g = 0; g < group; g++) {
            float *s = sc + (size_t)(b * group + g) * A->n_max;
#if EM_VM_X86
            if (avx2) softmax_row_avx2(s, A->n[b]);
            else
#endif
                softmax_row_c(s, A->n[b]);
            memset(A->out[b] + (size_t)(u * group + g) * hd, 0, (size_t)hd * sizeof(float));
        }
    for (int r = 0; r < A->nruns; r++) {
        const struct dec_run *R = &A->runs[r];
        for (int i = 0; i < R->m; i += 4) {
            const int rows = R->m - i < 4 ? R->m - i : 4;
            const size_t off = (size_t)i * kd + (size_t)u * hd;
            for (int e = 0; e < R->nseq; e++)
                for (int g = 0; g < group; g++) {
                    const int b = R->seq[e];
                    float *o = A->out[b] + (size_t)(u * group + g) * hd;
                    const float *p = sc + (size_t)(b * group + g) * A->n_max + R->p + i;
                    run_axpys(R, off, (size_t)kd, o, p, rows, hd, avx2);
                }
        }
    }
}

/* Attention of B single query rows: row b of cache kv[b] at position pos[b] (its K/V rows
 * written), q[b] -> out[b]. */
static em_err attention_decode(const struct em_dec *d, int l, int B, struct em_kv *const *kv,
                               const int *pos, const float *const *q, float *const *out)
{
    int n[EM_DEC_MAX_BATCH], n_max = 0, nruns = 0, cap = 2 * B;
    struct dec_run *runs = malloc((size_t)cap * sizeof *runs);
    if (!runs) return EM_E_NOMEM;
    for (int b = 0; b < B; b++) {
        n[b] = pos[b] + 1;
        if (n[b] > n_max) n_max = n[b];
        const void *k, *v;
        const int f16 = em_kv_type(kv[b]) == EM_KV_F16;
        for (int p = 0, m; p < n[b]; p += m) {
            m = kv_run(kv[b], l, p, n[b], &k, &v);
            int r = 0;
            while (r < nruns && !(runs[r].k == k && runs[r].v == v && runs[r].p == p &&
                                  runs[r].m == m))
                r++;
            if (r == nruns) {
                if (nruns == cap) {
                    struct dec_run *nr = realloc(runs, (size_t)(cap *= 2) * sizeof *runs);
                    if (!nr) {
                        free(runs);
                        return EM_E_NOMEM;
                    }
                    runs = nr;
                }
                runs[nruns++] = (struct dec_run){.k = k, .v = v, .f16 = f16, .p = p, .m = m};
            }
            runs[r].seq[runs[r].nseq++] = b;
        }
    }
    qsort(runs, (size_t)nruns, sizeof *runs, run_cmp);
    const int group = d->H / d->KVH, slots = em_qmm_threads();
    struct dec_attn A = {
        .d = d, .B = B, .n_max = n_max, .nruns = nruns, .n = n, .q = q, .out = out,
        .runs = runs, .sc_slot = (size_t)B * group * n_max,
    };
    float *sc = malloc((size_t)slots * A.sc_slot * sizeof *sc);
    if (!sc) {
        free(runs);
        return EM_E_NOMEM;
    }
    A.sc = sc;
    em_qmm_parallel(dec_attn_task, &A, d->KVH, 0);
    free(sc);
    free(runs);
    return EM_OK;
}

/* g = silu(g) * u (vecmath.h; AVX2 where the CPU allows) */
static void silu_mul(float *g, const float *u, size_t n)
{
#if EM_VM_X86
    if (em_cpu_level() >= EM_CPU_AVX2) {
        em_silu_mul8(g, u, n);
        return;
    }
#endif
    em_silu_mul(g, u, n);
}

struct scratch {
    float *x, *h, *q, *k, *v, *a, *g, *u, *sc, *cs, *sn;
};

static void scratch_free(struct scratch *s)
{
    free(s->x); free(s->h); free(s->q); free(s->k); free(s->v); free(s->a);
    free(s->g); free(s->u); free(s->sc); free(s->cs); free(s->sn);
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

/* RoPE on rows [t0, t1) of q and k, then their k and v rows into the caches (each row has
 * its own cache row: distinct positions, or distinct caches in a batch step). */
static void rope_rows(const struct row_pass *c, int t0, int t1)
{
    const struct em_dec *d = c->d;
    const struct rows *rw = c->rw;
    struct scratch *s = c->s;
    const int qd = d->H * d->hd, kd = d->KVH * d->hd, half = d->hd / 2;
    for (int t = t0; t < t1; t++) {
        const float *cs = s->cs + (size_t)t * half, *sn = s->sn + (size_t)t * half;
        rope_row(s->q + (size_t)t * qd, d->H, d->hd, cs, sn);
        rope_row(s->k + (size_t)t * kd, d->KVH, d->hd, cs, sn);
        em_kv_store(rw->kv[t], c->l, rw->pos[t], s->k + (size_t)t * kd, s->v + (size_t)t * kd);
    }
}

static em_err layer_forward(const struct em_dec *d, const struct dec_layer *L, int l,
                            const struct rows *rw, struct scratch *s)
{
    const int D = d->D, qd = d->H * d->hd, kd = d->KVH * d->hd, T = rw->T;
    const float eps = d->c.rms_norm_eps;
    em_err rc;
    rmsnorm(s->h, s->x, L->in_norm, T, D, eps);
    if ((rc = em_matmul(s->q, s->h, T, D, qd, &L->q_w, &L->q_b)) ||
        (rc = em_matmul(s->k, s->h, T, D, kd, &L->k_w, &L->k_b)) ||
        (rc = em_matmul(s->v, s->h, T, D, kd, &L->v_w, &L->v_b)))
        return rc;
    const struct row_pass rp = {.rows = rope_rows, .T = T, .d = d, .rw = rw, .s = s, .l = l};
    row_pass_run(&rp);
    /* runs of rows of one sequence at consecutive positions (a prefill) attend through
     * em_attn (sgemm below AVX-512), one call per run; single rows (decode steps) all
     * together */
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
            if (rc == EM_E_UNSUPPORTED)
                rc = attention_seq(d, rw->kv[t], l, rw->pos[t], m, s->q + (size_t)t * qd,
                                   s->a + (size_t)t * qd, s->sc);
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
    if ((rc = em_matmul(s->h, s->a, T, qd, D, &L->o_w, NULL))) return rc;
    for (size_t i = 0; i < (size_t)T * D; i++) s->x[i] += s->h[i];
    rmsnorm(s->h, s->x, L->post_norm, T, D, eps);
    if ((rc = em_matmul(s->g, s->h, T, D, d->F, &L->gate, NULL)) ||
        (rc = em_matmul(s->u, s->h, T, D, d->F, &L->up, NULL)))
        return rc;
    silu_mul(s->g, s->u, (size_t)T * d->F);
    if ((rc = em_matmul(s->h, s->g, T, d->F, D, &L->down, NULL))) return rc;
    for (size_t i = 0; i < (size_t)T * D; i++) s->x[i] += s->h[i];
    return EM_OK;
}

static em_err embed(const struct em_dec *d, const int32_t *ids, int T, const float *audio,
                    int n_audio, float *x, struct em_errbuf *eb)
{
    int used = 0;
    for (int t = 0; t < T; t++) {
        float *row = x + (size_t)t * d->D;
        if (ids[t] < 0 || ids[t] >= d->V)
            return em_errf(eb, EM_E_ARG, "decoder: token %d at %d outside [0, %d)", ids[t], t, d->V);
        if (ids[t] == d->audio_token) {
            if (used >= n_audio || !audio)
                return em_errf(eb, EM_E_ARG, "decoder: more audio tokens than the %d audio rows",
                               n_audio);
            memcpy(row, audio + (size_t)used * d->D, (size_t)d->D * sizeof *row);
            used++;
        } else {
            em_tensor_read_f32(&d->embed, (size_t)ids[t] * d->D, (size_t)d->D, row);
        }
    }
    if (used != n_audio)
        return em_errf(eb, EM_E_ARG, "decoder: %d audio tokens for %d audio rows", used, n_audio);
    return EM_OK;
}

static em_err scratch_alloc(const struct em_dec *d, int T, int max_pos, struct scratch *s)
{
    size_t td = (size_t)T * d->D, tq = (size_t)T * d->H * d->hd, tk = (size_t)T * d->KVH * d->hd;
    size_t half = (size_t)d->hd / 2;
    *s = (struct scratch){
        .x = malloc(td * sizeof(float)), .h = malloc(td * sizeof(float)),
        .q = malloc(tq * sizeof(float)), .k = malloc(tk * sizeof(float)),
        .v = malloc(tk * sizeof(float)), .a = malloc(tq * sizeof(float)),
        .g = malloc((size_t)T * d->F * sizeof(float)), .u = malloc((size_t)T * d->F * sizeof(float)),
        .sc = malloc((size_t)(T > d->H / d->KVH ? T : d->H / d->KVH) * (size_t)(max_pos + 1) *
                     sizeof(float)),
        .cs = malloc((size_t)T * half * sizeof(float)), .sn = malloc((size_t)T * half * sizeof(float)),
    };
    if (!s->x || !s->h || !s->q || !s->k || !s->v || !s->a || !s->g || !s->u || !s->sc || !s->cs ||
        !s->sn)
        return EM_E_NOMEM;
    return EM_OK;
}

/* Embedded rows in s->x, positions in rw: the layers, then (mode) logits of the last row or
 * of every row, or with `ends` (k rows, ascending) the logits of those rows. */
static em_err run_rows(const struct em_dec *d, const struct rows *rw, struct scratch *s,
                       enum em_dec_logits mode, const int *ends, int k, float *logits,
                       struct em_errbuf *eb)
{
    const int D = d->D, half = d->hd / 2, T = rw->T;
    em_err rc;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            float ang = (float)rw->pos[t] * d->inv_freq[i];
            s->cs[(size_t)t * half + i] = cosf(ang);
            s->sn[(size_t)t * half + i] = sinf(ang);
        }
    for (int l = 0; l < d->c.num_hidden_layers; l++)
        if ((rc = layer_forward(d, &d->layers[l], l, rw, s)) != EM_OK)
            return em_errf(eb, rc, "decoder: layer %d: matmul failed (%s)", l, em_err_name(rc));
    int n = 0;
    if (ends) { /* row by row: RMSNorm's bits do not depend on how many rows one call takes */
        for (n = 0; n < k; n++)
            rmsnorm(s->h + (size_t)n * D, s->x + (size_t)ends[n] * D, d->norm, 1, D,
                    d->c.rms_norm_eps);
    } else if (mode != EM_DEC_LOGITS_NONE) {
        int first = mode == EM_DEC_LOGITS_ALL ? 0 : T - 1;
        n = T - first;
        rmsnorm(s->h, s->x + (size_t)first * D, d->norm, n, D, d->c.rms_norm_eps);
    }
    if (n > 0) {
        if ((rc = em_matmul(logits, s->h, n, D, d->V, &d->lm_head, NULL)) != EM_OK)
            return em_errf(eb, rc, "decoder: lm_head matmul failed (%s)", em_err_name(rc));
    }
    return EM_OK;
}

/* Runs k sequences' new rows, ids back to back (T in all; sequence i appends n[i] rows at
 * positions em_kv_len(kv[i]) ..; max_pos the highest of them), through embed (audio rows as
 * there) and run_rows (mode, ends, logits as there), then advances every cache. The callers
 * have checked the arguments. */
static em_err run_seqs(const struct em_dec *d, struct em_kv *const *kv, const int *n, int k,
                       const int32_t *ids, int T, int max_pos, const float *audio, int n_audio,
                       enum em_dec_logits mode, const int *ends, float *logits,
                       struct em_errbuf *eb)
{
    struct scratch s;
    struct em_kv **kvs = malloc((size_t)T * sizeof *kvs);
    int *pos = malloc((size_t)T * sizeof *pos);
    em_err rc = scratch_alloc(d, T, max_pos, &s);
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
    scratch_free(&s);
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
    return run_seqs(d, &kv, &T, 1, ids, T, p0 + T - 1, audio, n_audio, mode, NULL, logits, eb);
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
    int T = 0, max_pos = 0, ends[EM_DEC_MAX_BATCH];
    for (int i = 0; i < k; i++) {
        if (!kv[i] || !ids[i] || n[i] < 1)
            return em_errf(eb, EM_E_ARG, "decoder: batch sequence %d: no cache, ids or tokens", i);
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
        if (p0 + n[i] - 1 > max_pos) max_pos = p0 + n[i] - 1;
    }
    int32_t *flat = malloc((size_t)T * sizeof *flat); /* the sequences' ids back to back */
    if (!flat) return EM_E_NOMEM;
    for (int i = 0, t = 0; i < k; t += n[i], i++) memcpy(flat + t, ids[i], (size_t)n[i] * sizeof *flat);
    const em_err rc = run_seqs(d, kv, n, k, flat, T, max_pos, NULL, 0, EM_DEC_LOGITS_NONE, ends,
                               logits, eb);
    free(flat);
    return rc;
}
