/* model/whisper/load.c - binds a CTranslate2 WhisperSpec model.bin (model/loader/ct2.h) to
 * the shared encoder (model/audio/encoder.h) and the Whisper decoder, and reads config.json and
 * tokenizer.json. CTranslate2 variable names (python/ctranslate2/specs/whisper_spec.py):
 *   encoder/conv{1,2}/{weight,bias}, encoder/position_encodings/encodings [1500, d],
 *   encoder/layer_N/self_attention/{layer_norm/{gamma,beta}, linear_0 (fused q|k|v), linear_1},
 *   encoder/layer_N/ffn/{layer_norm, linear_0, linear_1}, encoder/layer_norm,
 *   decoder/embeddings/weight [n_vocab, d], decoder/position_encodings/encodings [448, d],
 *   decoder/layer_N/self_attention/{layer_norm, linear_0 (q|k|v), linear_1},
 *   decoder/layer_N/attention/{layer_norm, linear_0 (q), linear_1 (k|v of the audio), linear_2},
 *   decoder/layer_N/ffn/..., decoder/layer_norm, decoder/projection/weight (alias of the
 *   embeddings), {encoder,decoder}/num_heads, decoder/activation (3 = exact GELU). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include "model/qwen2audio/config.h"
#include "model/loader/gguf.h"
#include "model/loader/mapfile.h"
#include "model/loader/safetensors.h"
#include "model/whisper/whisper_impl.h"

#define WH_EPS 1e-5f /* nn.LayerNorm's default, as Whisper and CTranslate2 use */

/* The Hugging Face layout's tensor name (no detail on EM_E_NOTFOUND). */
static em_err hf_find(const struct em_whisper *w, const char *name, struct em_tensor *t)
{
    if (w->gg) { /* a GGUF from `earmark convert` holds the same names (gguf.c) */
        const struct em_gguf_tensor *gt = em_gguf_find_tensor(w->gg, name);
        if (!gt) return EM_E_NOTFOUND;
        em_gguf_tensor_view(gt, t);
        return EM_OK;
    }
    return em_ckpt_tensor(w->st, name, t, NULL);
}

/* Rows [r0, r0 + n) of a 1-D or 2-D view. */
static struct em_tensor rows(const struct em_tensor *t, int64_t r0, int64_t n)
{
    struct em_tensor v = *t;
    size_t cols = t->ndim == 2 ? (size_t)t->shape[1] : 1;
    size_t rb = em_dtype_nbytes(t->dtype, (int64_t)cols);
    v.data = (const uint8_t *)t->data + (size_t)r0 * rb;
    v.shape[0] = n;
    v.nbytes = (size_t)n * rb;
    return v;
}

/* The named tensor of either layout, checked to be [d0] or [d0, d1] (ndim 3: [d0, ...]). */
static em_err var(struct em_whisper *w, const char *name, int ndim, int64_t d0,
                  int64_t d1, struct em_tensor *t, struct em_errbuf *eb)
{
    const char *file = w->ct2 ? "model.bin" : w->gg ? "gguf" : "model.safetensors";
    em_err rc;
    if (w->ct2) {
        rc = wh_ct2_tensor(w, name, ndim, t, eb);
    } else {
        rc = hf_find(w, name, t);
        if (rc != EM_OK) rc = em_errf(eb, EM_E_NOTFOUND, "%s: tensor '%s' is missing", file, name);
        else if (t->ndim != ndim)
            rc = em_errf(eb, EM_E_MODEL, "%s: '%s' has %d dimensions, expected %d", file, name,
                         t->ndim, ndim);
        else
            rc = wh_weight_adapt(w, t, eb);
    }
    if (rc != EM_OK) return rc;
    if (t->shape[0] != d0 || (ndim == 2 && t->shape[1] != d1))
        return em_errf(eb, EM_E_MODEL, "%s: '%s' is [%lld, %lld], expected [%lld, %lld]", file,
                       name, (long long)t->shape[0], (long long)(ndim == 2 ? t->shape[1] : 0),
                       (long long)d0, (long long)(ndim == 2 ? d1 : 0));
    return EM_OK;
}

static em_err varf(struct em_whisper *w, int ndim, int64_t d0, int64_t d1,
                   struct em_tensor *t, struct em_errbuf *eb, const char *fmt, int i)
{
    char name[160];
    snprintf(name, sizeof name, fmt, i);
    return var(w, name, ndim, d0, d1, t, eb);
}

/* A LayerNorm's gamma and beta under prefix, widened. */
static em_err norm(struct em_whisper *w, const char *prefix, float **g, float **b,
                   struct em_errbuf *eb)
{
    char name[160];
    struct em_tensor t;
    em_err rc;
    snprintf(name, sizeof name, w->ct2 ? "%s/gamma" : "%s.weight", prefix);
    if ((rc = var(w, name, 1, w->d, 0, &t, eb)) != EM_OK) return rc;
    if (!(*g = malloc(sizeof(float) * (size_t)w->d))) return EM_E_NOMEM;
    em_tensor_read_f32(&t, 0, (size_t)w->d, *g);
    snprintf(name, sizeof name, w->ct2 ? "%s/beta" : "%s.bias", prefix);
    if ((rc = var(w, name, 1, w->d, 0, &t, eb)) != EM_OK) return rc;
    if (!(*b = malloc(sizeof(float) * (size_t)w->d))) return EM_E_NOMEM;
    em_tensor_read_f32(&t, 0, (size_t)w->d, *b);
    return EM_OK;
}

/* The encoder's views stay readable through w->enc_desc (gguf.c writes them); w owns L. */
static void keep_encoder_desc(struct em_whisper *w, struct em_encoder_desc *s,
                              struct em_encoder_layer_desc *L)
{
    free(w->enc_l);
    w->enc_l = L;
    w->enc_desc = *s;
    w->enc_desc.layers = L;
}

static int count_layers(const struct em_whisper *w, const char *side)
{
    int n = 0;
    char name[160];
    struct em_ct2_var v;
    for (; n <= EM_WHISPER_MAX_LAYERS; n++) {
        snprintf(name, sizeof name, "%s/layer_%d/ffn/linear_0/weight", side, n);
        if (em_ct2_find(w->ct2, name, &v) != EM_OK) break;
    }
    return n;
}

/* The encoder as a descriptor: the fused q|k|v split into row views. */
static em_err bind_encoder(struct em_whisper *w, struct em_errbuf *eb)
{
    const int d = w->d;
    int nl = count_layers(w, "encoder");
    long heads = 0;
    em_err rc = em_ct2_int(w->ct2, "encoder/num_heads", &heads, eb);
    if (rc != EM_OK) return rc;
    if (nl < 1 || nl > EM_WHISPER_MAX_LAYERS || heads < 1 || d % heads)
        return em_errf(eb, EM_E_MODEL, "model.bin: encoder has %d layers and %ld heads for d %d",
                       nl, heads, d);
    struct em_tensor ffn0;
    if ((rc = wh_ct2_tensor(w, "encoder/layer_0/ffn/linear_0/weight", 2, &ffn0, eb)) != EM_OK)
        return rc;
    struct em_encoder_desc s = {.n_mels = w->n_mels, .d = d, .heads = (int)heads,
                                .ffn = (int)ffn0.shape[0], .nlayers = nl,
                                .npos = EM_WHISPER_AUDIO_CTX, .eps = WH_EPS, .pool = 0};
    struct em_encoder_layer_desc *L = calloc((size_t)nl, sizeof *L);
    if (!L) return EM_E_NOMEM;
    s.layers = L;
    if ((rc = var(w, "encoder/conv1/weight", 3, d, 0, &s.conv1_w, eb)) != EM_OK ||
        (rc = var(w, "encoder/conv1/bias", 1, d, 0, &s.conv1_b, eb)) != EM_OK ||
        (rc = var(w, "encoder/conv2/weight", 3, d, 0, &s.conv2_w, eb)) != EM_OK ||
        (rc = var(w, "encoder/conv2/bias", 1, d, 0, &s.conv2_b, eb)) != EM_OK ||
        (rc = var(w, "encoder/position_encodings/encodings", 2, EM_WHISPER_AUDIO_CTX, d, &s.pos, eb)) != EM_OK ||
        (rc = var(w, "encoder/layer_norm/gamma", 1, d, 0, &s.lnf_w, eb)) != EM_OK ||
        (rc = var(w, "encoder/layer_norm/beta", 1, d, 0, &s.lnf_b, eb)) != EM_OK)
        goto done;
    for (int i = 0; i < nl; i++) {
        struct em_encoder_layer_desc *l = &L[i];
        struct em_tensor qkv_w, qkv_b;
        const char *p = "encoder/layer_%d/";
        char f[160];
#define V(dst, nd, d0, d1, suffix)                                                    \
    snprintf(f, sizeof f, "%s%s", p, suffix);                                         \
    if ((rc = varf(w, nd, d0, d1, &l->dst, eb, f, i)) != EM_OK) goto done;
        V(ln1_w, 1, d, 0, "self_attention/layer_norm/gamma")
        V(ln1_b, 1, d, 0, "self_attention/layer_norm/beta")
        V(ln2_w, 1, d, 0, "ffn/layer_norm/gamma")
        V(ln2_b, 1, d, 0, "ffn/layer_norm/beta")
        V(o_w, 2, d, d, "self_attention/linear_1/weight")
        V(o_b, 1, d, 0, "self_attention/linear_1/bias")
        V(fc1_w, 2, s.ffn, d, "ffn/linear_0/weight")
        V(fc1_b, 1, s.ffn, 0, "ffn/linear_0/bias")
        V(fc2_w, 2, d, s.ffn, "ffn/linear_1/weight")
        V(fc2_b, 1, d, 0, "ffn/linear_1/bias")
#undef V
        snprintf(f, sizeof f, "%sself_attention/linear_0/weight", p);
        if ((rc = varf(w, 2, 3 * d, d, &qkv_w, eb, f, i)) != EM_OK) goto done;
        snprintf(f, sizeof f, "%sself_attention/linear_0/bias", p);
        if ((rc = varf(w, 1, 3 * d, 0, &qkv_b, eb, f, i)) != EM_OK) goto done;
        l->q_w = rows(&qkv_w, 0, d), l->k_w = rows(&qkv_w, d, d), l->v_w = rows(&qkv_w, 2 * d, d);
        l->q_b = rows(&qkv_b, 0, d), l->k_b = rows(&qkv_b, d, d), l->v_b = rows(&qkv_b, 2 * d, d);
    }
    rc = em_encoder_new_desc(&s, &w->enc, eb);
    w->enc_layers = nl;
done:
    keep_encoder_desc(w, &s, L);
    return rc;
}

static em_err bind_decoder(struct em_whisper *w, struct em_errbuf *eb)
{
    const int d = w->d;
    long heads = 0, act = 0;
    em_err rc;
    if ((rc = em_ct2_int(w->ct2, "decoder/num_heads", &heads, eb)) != EM_OK) return rc;
    if (em_ct2_int(w->ct2, "decoder/activation", &act, NULL) == EM_OK && act != 3)
        return em_errf(eb, EM_E_MODEL, "model.bin: decoder/activation %ld, Whisper uses GELU (3)", act);
    w->n_layers = count_layers(w, "decoder");
    if (w->n_layers < 1 || w->n_layers > EM_WHISPER_MAX_LAYERS || heads < 1 || d % heads)
        return em_errf(eb, EM_E_MODEL, "model.bin: decoder has %d layers and %ld heads for d %d",
                       w->n_layers, heads, d);
    w->heads = (int)heads;
    w->hd = d / w->heads;
    if ((rc = wh_ct2_tensor(w, "decoder/position_encodings/encodings", 2, &w->pos, eb)) != EM_OK)
        return rc;
    w->n_ctx = (int)w->pos.shape[0];
    if (w->pos.shape[1] != d || w->n_ctx < 4 || w->n_ctx > EM_WHISPER_CTX)
        return em_errf(eb, EM_E_MODEL, "model.bin: decoder positions [%lld, %lld], expected [<= %d, %d]",
                       (long long)w->pos.shape[0], (long long)w->pos.shape[1], EM_WHISPER_CTX, d);
    struct em_tensor proj;
    if ((rc = var(w, "decoder/projection/weight", 2, w->n_vocab, d, &proj, eb)) != EM_OK) return rc;
    if (proj.data != w->emb.data)
        return em_errf(eb, EM_E_MODEL, "model.bin: decoder/projection/weight is not the embedding");
    if ((rc = norm(w, "decoder/layer_norm", &w->lnf_w, &w->lnf_b, eb)) != EM_OK) return rc;
    if (!(w->l = calloc((size_t)w->n_layers, sizeof *w->l))) return EM_E_NOMEM;
    for (int i = 0; i < w->n_layers; i++) {
        struct wh_layer *l = &w->l[i];
        char p[64], f[160];
        snprintf(p, sizeof p, "decoder/layer_%d/", i);
#define V(dst, nd, d0, d1, suffix)                                               \
    snprintf(f, sizeof f, "%s%s", p, suffix);                                    \
    if ((rc = var(w, f, nd, d0, d1, &l->dst, eb)) != EM_OK) return rc;
        V(so_w, 2, d, d, "self_attention/linear_1/weight")
        V(so_b, 1, d, 0, "self_attention/linear_1/bias")
        V(cq_w, 2, d, d, "attention/linear_0/weight")
        V(cq_b, 1, d, 0, "attention/linear_0/bias")
        V(co_w, 2, d, d, "attention/linear_2/weight")
        V(co_b, 1, d, 0, "attention/linear_2/bias")
        V(fc1_w, 2, w->ffn, d, "ffn/linear_0/weight")
        V(fc1_b, 1, w->ffn, 0, "ffn/linear_0/bias")
        V(fc2_w, 2, d, w->ffn, "ffn/linear_1/weight")
        V(fc2_b, 1, d, 0, "ffn/linear_1/bias")
#undef V
        struct em_tensor qkv_w, qkv_b, kv_w, kv_b;
        snprintf(f, sizeof f, "%sself_attention/linear_0/weight", p);
        if ((rc = var(w, f, 2, 3 * d, d, &qkv_w, eb)) != EM_OK) return rc;
        snprintf(f, sizeof f, "%sself_attention/linear_0/bias", p);
        if ((rc = var(w, f, 1, 3 * d, 0, &qkv_b, eb)) != EM_OK) return rc;
        l->sq_w = rows(&qkv_w, 0, d), l->sk_w = rows(&qkv_w, d, d), l->sv_w = rows(&qkv_w, 2 * d, d);
        l->sq_b = rows(&qkv_b, 0, d), l->sk_b = rows(&qkv_b, d, d), l->sv_b = rows(&qkv_b, 2 * d, d);
        snprintf(f, sizeof f, "%sattention/linear_1/weight", p);
        if ((rc = var(w, f, 2, 2 * d, d, &kv_w, eb)) != EM_OK) return rc;
        snprintf(f, sizeof f, "%sattention/linear_1/bias", p);
        if ((rc = var(w, f, 1, 2 * d, 0, &kv_b, eb)) != EM_OK) return rc;
        l->ck_w = rows(&kv_w, 0, d), l->cv_w = rows(&kv_w, d, d);
        l->ck_b = rows(&kv_b, 0, d), l->cv_b = rows(&kv_b, d, d);
        snprintf(f, sizeof f, "%sself_attention/layer_norm", p);
        if ((rc = norm(w, f, &l->ln1_w, &l->ln1_b, eb)) != EM_OK) return rc;
        snprintf(f, sizeof f, "%sattention/layer_norm", p);
        if ((rc = norm(w, f, &l->ln2_w, &l->ln2_b, eb)) != EM_OK) return rc;
        snprintf(f, sizeof f, "%sffn/layer_norm", p);
        if ((rc = norm(w, f, &l->ln3_w, &l->ln3_b, eb)) != EM_OK) return rc;
    }
    return EM_OK;
}

/* config.json's integer list key into *out (owned), every id in [0, n_vocab). */
static em_err id_list(const json_t *root, const char *key, int32_t n_vocab, int32_t **out,
                      int *n, int cap, struct em_errbuf *eb)
{
    const json_t *a = json_object_get(root, key);
    *out = NULL;
    *n = 0;
    if (!a) return EM_OK;
    if (!json_is_array(a) || json_array_size(a) > (size_t)cap)
        return em_errf(eb, EM_E_MODEL, "config.json: '%s' is not a list of at most %d ids", key, cap);
    size_t k = json_array_size(a);
    if (!(*out = malloc(sizeof **out * (k ? k : 1)))) return EM_E_NOMEM;
    for (size_t i = 0; i < k; i++) {
        const json_t *v = json_array_get(a, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= n_vocab)
            return em_errf(eb, EM_E_MODEL, "config.json: '%s'[%zu] is not an id below %d", key, i,
                           (int)n_vocab);
        (*out)[i] = (int32_t)json_integer_value(v);
    }
    *n = (int)k;
    return EM_OK;
}

static em_err read_config(struct em_whisper *w, const char *dir, struct em_errbuf *eb)
{
    char path[4096], *txt = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/config.json", dir);
    em_err rc = em_cfg_read_file(path, 0, &txt, &len, eb);
    if (rc != EM_OK) return rc;
    json_error_t jerr;
    json_t *root = json_loadb(txt, len, 0, &jerr);
    free(txt);
    if (!json_is_object(root)) {
        json_decref(root);
        return em_errf(eb, EM_E_MODEL, "%s: not a JSON object (%s)", path, jerr.text);
    }
    if ((rc = id_list(root, "suppress_ids", w->n_vocab, &w->suppress, &w->n_suppress,
                      EM_WHISPER_MAX_SUPPRESS, eb)) == EM_OK &&
        (rc = id_list(root, "suppress_ids_begin", w->n_vocab, &w->suppress_begin,
                      &w->n_suppress_begin, EM_WHISPER_MAX_SUPPRESS, eb)) == EM_OK)
        rc = id_list(root, "lang_ids", w->n_vocab, &w->lang_ids, &w->n_langs, EM_WHISPER_MAX_LANGS, eb);
    json_decref(root);
    return rc;
}

/* Special ids from the tokenizer; timestamps follow <|notimestamps|> to the last row. */
static em_err special_ids(struct em_whisper *w, struct em_errbuf *eb)
{
    struct { int32_t *id; const char *text; int required; } want[] = {
        {&w->sot, "<|startoftranscript|>", 1}, {&w->eot, "<|endoftext|>", 1},
        {&w->no_timestamps, "<|notimestamps|>", 1}, {&w->transcribe, "<|transcribe|>", 1},
        {&w->translate, "<|translate|>", 1}, {&w->no_speech, "<|nospeech|>", 0},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        *want[i].id = em_tok_find(w->tok, want[i].text);
        if (*want[i].id < 0 && want[i].required)
            return em_errf(eb, EM_E_MODEL, "tokenizer.json: no %s token", want[i].text);
        if (*want[i].id >= w->n_vocab)
            return em_errf(eb, EM_E_MODEL, "tokenizer.json: %s is id %d, the model has %d rows",
                           want[i].text, (int)*want[i].id, (int)w->n_vocab);
    }
    if (w->no_speech < 0) w->no_speech = em_tok_find(w->tok, "<|nocaptions|>");
    if (w->no_speech < 0) return em_errf(eb, EM_E_MODEL, "tokenizer.json: no <|nospeech|> token");
    w->ts_begin = w->no_timestamps + 1;
    w->ts_end = w->n_vocab - 1;
    if (w->ts_end < w->ts_begin + 1500)
        return em_errf(eb, EM_E_MODEL, "model.bin: %d rows leave no room for 1501 timestamps after id %d",
                       (int)w->n_vocab, (int)w->no_timestamps);
    /* ref: OpenAI whisper ModelDimensions / Whisper.is_multilingual: n_vocab >= 51865 */
    w->multilingual = w->n_vocab >= 51865;
    if (w->multilingual && w->n_langs == 0)
        return em_errf(eb, EM_E_MODEL, "config.json: a multilingual model needs lang_ids");
    return EM_OK;
}

/* ---- Hugging Face layout (WhisperForConditionalGeneration: model.safetensors, config.json
 * model_type "whisper", generation_config.json) ---------------------------------------------
 *   model.encoder.{conv1,conv2}.{weight,bias}, model.encoder.embed_positions.weight,
 *   model.encoder.layers.N.{self_attn.{q,k,v,out}_proj, self_attn_layer_norm, fc1, fc2,
 *   final_layer_norm}, model.encoder.layer_norm; model.decoder.embed_tokens.weight,
 *   model.decoder.embed_positions.weight, model.decoder.layers.N.{self_attn.*, encoder_attn.*,
 *   self_attn_layer_norm, encoder_attn_layer_norm, fc1, fc2, final_layer_norm},
 *   model.decoder.layer_norm; k_proj has no bias; proj_out is tied to embed_tokens.
 * ref: transformers models/whisper/modeling_whisper.py */

static int count_hf_layers(const struct em_whisper *w, const char *side)
{
    char name[160];
    struct em_tensor t;
    int n = 0;
    for (; n <= EM_WHISPER_MAX_LAYERS; n++) {
        snprintf(name, sizeof name, "model.%s.layers.%d.fc1.weight", side, n);
        if (hf_find(w, name, &t) != EM_OK) break;
    }
    return n;
}

/* config.json's integer key (1..cap). */
static em_err cfg_int(const json_t *cfg, const char *key, int cap, int *out, struct em_errbuf *eb)
{
    const json_t *v = json_object_get(cfg, key);
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > cap)
        return em_errf(eb, EM_E_MODEL, "config.json: '%s' is not an integer in 1..%d", key, cap);
    *out = (int)json_integer_value(v);
    return EM_OK;
}

static em_err read_json(const char *dir, const char *file, int optional, json_t **out,
                        struct em_errbuf *eb)
{
    char path[4096], *txt = NULL;
    size_t len = 0;
    *out = NULL;
    snprintf(path, sizeof path, "%s/%s", dir, file);
    em_err rc = em_cfg_read_file(path, optional, &txt, &len, eb);
    if (rc != EM_OK || !txt) return rc;
    json_error_t jerr;
    *out = json_loadb(txt, len, 0, &jerr);
    free(txt);
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return em_errf(eb, EM_E_MODEL, "%s: not a JSON object (%s)", path, jerr.text);
    }
    return EM_OK;
}

/* q, k (no bias), v and out projections of one HF attention block into the views given. */
static em_err hf_attn(struct em_whisper *w, const char *prefix, struct em_tensor *qw,
                      struct em_tensor *qb, struct em_tensor *kw, struct em_tensor *vw,
                      struct em_tensor *vb, struct em_tensor *ow, struct em_tensor *ob,
                      struct em_errbuf *eb)
{
    const int d = w->d;
    char f[200];
    em_err rc;
#define P(dst, nd, d0, d1, suffix)                                                    \
    snprintf(f, sizeof f, "%s.%s", prefix, suffix);                                   \
    if ((rc = var(w, f, nd, d0, d1, dst, eb)) != EM_OK) return rc;
    P(qw, 2, d, d, "q_proj.weight")
    P(qb, 1, d, 0, "q_proj.bias")
    P(kw, 2, d, d, "k_proj.weight")
    P(vw, 2, d, d, "v_proj.weight")
    P(vb, 1, d, 0, "v_proj.bias")
    P(ow, 2, d, d, "out_proj.weight")
    P(ob, 1, d, 0, "out_proj.bias")
#undef P
    return EM_OK;
}

em_err wh_bind_hf(struct em_whisper *w, int eh, int dh, struct em_errbuf *eb)
{
    em_err rc;
    if (hf_find(w, "model.decoder.embed_tokens.weight", &w->emb) != EM_OK || w->emb.ndim != 2)
        return em_errf(eb, EM_E_MODEL, "model.safetensors: model.decoder.embed_tokens.weight is missing or not 2-D");
    if ((rc = wh_weight_adapt(w, &w->emb, eb)) != EM_OK) return rc;
    w->n_vocab = (int)w->emb.shape[0];
    w->d = (int)w->emb.shape[1];
    const int d = w->d;
    struct em_tensor c1, f0;
    if (hf_find(w, "model.encoder.conv1.weight", &c1) != EM_OK || c1.ndim != 3 ||
        hf_find(w, "model.decoder.layers.0.fc1.weight", &f0) != EM_OK || f0.ndim != 2)
        return em_errf(eb, EM_E_MODEL, "model.safetensors: conv1 or decoder fc1 missing or malformed");
    w->n_mels = (int)c1.shape[1];
    w->ffn = (int)f0.shape[0];
    if ((w->n_mels != 80 && w->n_mels != 128) || d < 8 || d % eh || d % dh || w->n_vocab < 51864 ||
        w->n_vocab > 52000)
        return em_errf(eb, EM_E_MODEL, "model.safetensors: %d mel bins, d %d, %d tokens, heads %d/%d: "
                       "not a Whisper shape", w->n_mels, d, w->n_vocab, eh, dh);
    /* encoder */
    int nl = count_hf_layers(w, "encoder");
    if (nl < 1 || nl > EM_WHISPER_MAX_LAYERS)
        return em_errf(eb, EM_E_MODEL, "model.safetensors: %d encoder layers", nl);
    struct em_encoder_desc s = {.n_mels = w->n_mels, .d = d, .heads = eh, .ffn = w->ffn,
                                .nlayers = nl, .npos = EM_WHISPER_AUDIO_CTX, .eps = WH_EPS, .pool = 0};
    struct em_encoder_layer_desc *L = calloc((size_t)nl, sizeof *L);
    if (!L) return EM_E_NOMEM;
    s.layers = L;
    char p[160], f[200];
    if ((rc = var(w, "model.encoder.conv1.weight", 3, d, 0, &s.conv1_w, eb)) != EM_OK ||
        (rc = var(w, "model.encoder.conv1.bias", 1, d, 0, &s.conv1_b, eb)) != EM_OK ||
        (rc = var(w, "model.encoder.conv2.weight", 3, d, 0, &s.conv2_w, eb)) != EM_OK ||
        (rc = var(w, "model.encoder.conv2.bias", 1, d, 0, &s.conv2_b, eb)) != EM_OK ||
        (rc = var(w, "model.encoder.embed_positions.weight", 2, EM_WHISPER_AUDIO_CTX, d, &s.pos, eb)) != EM_OK ||
        (rc = var(w, "model.encoder.layer_norm.weight", 1, d, 0, &s.lnf_w, eb)) != EM_OK ||
        (rc = var(w, "model.encoder.layer_norm.bias", 1, d, 0, &s.lnf_b, eb)) != EM_OK)
        goto done;
    for (int i = 0; i < nl; i++) {
        struct em_encoder_layer_desc *l = &L[i];
        snprintf(p, sizeof p, "model.encoder.layers.%d.self_attn", i);
        if ((rc = hf_attn(w, p, &l->q_w, &l->q_b, &l->k_w, &l->v_w, &l->v_b, &l->o_w, &l->o_b, eb)) != EM_OK)
            goto done;
#define E(dst, nd, d0, d1, suffix)                                                    \
    snprintf(f, sizeof f, "model.encoder.layers.%d.%s", i, suffix);                   \
    if ((rc = var(w, f, nd, d0, d1, &l->dst, eb)) != EM_OK) goto done;
        E(ln1_w, 1, d, 0, "self_attn_layer_norm.weight")
        E(ln1_b, 1, d, 0, "self_attn_layer_norm.bias")
        E(ln2_w, 1, d, 0, "final_layer_norm.weight")
        E(ln2_b, 1, d, 0, "final_layer_norm.bias")
        E(fc1_w, 2, w->ffn, d, "fc1.weight")
        E(fc1_b, 1, w->ffn, 0, "fc1.bias")
        E(fc2_w, 2, d, w->ffn, "fc2.weight")
        E(fc2_b, 1, d, 0, "fc2.bias")
#undef E
    }
    rc = em_encoder_new_desc(&s, &w->enc, eb);
    w->enc_layers = nl;
done:
    keep_encoder_desc(w, &s, L);
    if (rc != EM_OK) return rc;
    /* decoder */
    w->heads = dh;
    w->hd = d / dh;
    w->n_layers = count_hf_layers(w, "decoder");
    if (w->n_layers < 1 || w->n_layers > EM_WHISPER_MAX_LAYERS)
        return em_errf(eb, EM_E_MODEL, "model.safetensors: %d decoder layers", w->n_layers);
    if (hf_find(w, "model.decoder.embed_positions.weight", &w->pos) != EM_OK || w->pos.ndim != 2 ||
        w->pos.shape[1] != d || w->pos.shape[0] < 4 || w->pos.shape[0] > EM_WHISPER_CTX)
        return em_errf(eb, EM_E_MODEL, "model.safetensors: model.decoder.embed_positions.weight "
                       "missing or not [<= %d, %d]", EM_WHISPER_CTX, d);
    w->n_ctx = (int)w->pos.shape[0];
    if ((rc = norm(w, "model.decoder.layer_norm", &w->lnf_w, &w->lnf_b, eb)) != EM_OK) return rc;
    if (!(w->l = calloc((size_t)w->n_layers, sizeof *w->l))) return EM_E_NOMEM;
    for (int i = 0; i < w->n_layers; i++) {
        struct wh_layer *l = &w->l[i];
        snprintf(p, sizeof p, "model.decoder.layers.%d.self_attn", i);
        if ((rc = hf_attn(w, p, &l->sq_w, &l->sq_b, &l->sk_w, &l->sv_w, &l->sv_b, &l->so_w, &l->so_b, eb)) != EM_OK)
            return rc;
        snprintf(p, sizeof p, "model.decoder.layers.%d.encoder_attn", i);
        if ((rc = hf_attn(w, p, &l->cq_w, &l->cq_b, &l->ck_w, &l->cv_w, &l->cv_b, &l->co_w, &l->co_b, eb)) != EM_OK)
            return rc;
#define D(dst, nd, d0, d1, suffix)                                                    \
    snprintf(f, sizeof f, "model.decoder.layers.%d.%s", i, suffix);                   \
    if ((rc = var(w, f, nd, d0, d1, &l->dst, eb)) != EM_OK) return rc;
        D(fc1_w, 2, w->ffn, d, "fc1.weight")
        D(fc1_b, 1, w->ffn, 0, "fc1.bias")
        D(fc2_w, 2, d, w->ffn, "fc2.weight")
        D(fc2_b, 1, d, 0, "fc2.bias")
#undef D
        snprintf(p, sizeof p, "model.decoder.layers.%d.self_attn_layer_norm", i);
        if ((rc = norm(w, p, &l->ln1_w, &l->ln1_b, eb)) != EM_OK) return rc;
        snprintf(p, sizeof p, "model.decoder.layers.%d.encoder_attn_layer_norm", i);
        if ((rc = norm(w, p, &l->ln2_w, &l->ln2_b, eb)) != EM_OK) return rc;
        snprintf(p, sizeof p, "model.decoder.layers.%d.final_layer_norm", i);
        if ((rc = norm(w, p, &l->ln3_w, &l->ln3_b, eb)) != EM_OK) return rc;
    }
    return EM_OK;
}

/* generation_config.json: suppress_tokens, begin_suppress_tokens, lang_to_id ({"<|en|>": id}). */
static em_err read_generation_config(struct em_whisper *w, const char *dir, struct em_errbuf *eb)
{
    json_t *g = NULL;
    em_err rc = read_json(dir, "generation_config.json", 1, &g, eb);
    if (rc != EM_OK || !g) return rc;
    if ((rc = id_list(g, "suppress_tokens", w->n_vocab, &w->suppress, &w->n_suppress,
                      EM_WHISPER_MAX_SUPPRESS, eb)) == EM_OK)
        rc = id_list(g, "begin_suppress_tokens", w->n_vocab, &w->suppress_begin,
                     &w->n_suppress_begin, EM_WHISPER_MAX_SUPPRESS, eb);
    const json_t *langs = json_object_get(g, "lang_to_id");
    if (rc == EM_OK && json_is_object(langs) && json_object_size(langs) <= EM_WHISPER_MAX_LANGS) {
        const char *k;
        const json_t *v;
        if (!(w->lang_ids = malloc(sizeof(int32_t) * (json_object_size(langs) + 1)))) rc = EM_E_NOMEM;
        json_object_foreach((json_t *)langs, k, v) {
            if (rc != EM_OK) break;
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= w->n_vocab)
                rc = em_errf(eb, EM_E_MODEL, "generation_config.json: lang_to_id '%s' is not an id", k);
            else
                w->lang_ids[w->n_langs++] = (int32_t)json_integer_value(v);
        }
    }
    json_decref(g);
    return rc;
}

/* The Hugging Face layout in dir: the mapping, the tensors, the generation settings. */
static em_err load_hf(struct em_whisper *w, const char *dir, struct em_errbuf *eb)
{
    json_t *cfg = NULL;
    em_err rc = read_json(dir, "config.json", 0, &cfg, eb);
    if (rc != EM_OK) return rc;
    const char *type = json_string_value(json_object_get(cfg, "model_type"));
    if (!type || strcmp(type, "whisper") != 0) {
        rc = em_errf(eb, EM_E_MODEL, "%s/config.json: model_type is not \"whisper\"", dir);
        goto done;
    }
    int eh = 0, dh = 0;
    if ((rc = cfg_int(cfg, "encoder_attention_heads", 256, &eh, eb)) != EM_OK ||
        (rc = cfg_int(cfg, "decoder_attention_heads", 256, &dh, eb)) != EM_OK)
        goto done;
    if ((rc = em_ckpt_open_tensors(dir, &w->st, eb)) != EM_OK) goto done;
    if ((rc = wh_bind_hf(w, eh, dh, eb)) != EM_OK) goto done;
    snprintf(w->dtype, sizeof w->dtype, "%s", w->emb.dtype == EM_DT_F16 ? "f16" :
             w->emb.dtype == EM_DT_BF16 ? "bf16" : "f32");
    rc = read_generation_config(w, dir, eb);
done:
    json_decref(cfg);
    return rc;
}

void em_whisper_free(struct em_whisper *w)
{
    if (!w) return;
    for (int i = 0; w->l && i < w->n_layers; i++) {
        struct wh_layer *l = &w->l[i];
        free(l->ln1_w), free(l->ln1_b), free(l->ln2_w), free(l->ln2_b), free(l->ln3_w), free(l->ln3_b);
    }
    free(w->l);
    free(w->lnf_w);
    free(w->lnf_b);
    free(w->suppress);
    free(w->suppress_begin);
    free(w->lang_ids);
    em_encoder_free(w->enc);
    free(w->enc_l);
    em_mel_free(w->mel);
    em_tok_free(w->tok);
    em_ct2_free(w->ct2);
    em_ckpt_close(w->st);
    wh_weights_free(w);
    em_gguf_close(w->gg);
    free(w);
}

em_err em_whisper_load(const char *dir, struct em_whisper **out, struct em_errbuf *eb)
{
    return em_whisper_load_as(dir, -1, out, eb);
}

em_err em_whisper_load_as(const char *dir, int wtype, struct em_whisper **out, struct em_errbuf *eb)
{
    *out = NULL;
    char path[4096];
    if (snprintf(path, sizeof path, "%s/model.bin", dir) >= (int)sizeof path)
        return em_errf(eb, EM_E_ARG, "whisper: path too long");
    if (wtype != -1 && wtype != EM_WT_Q8_0)
        return em_errf(eb, EM_E_ARG, "whisper: weights %s: only q8_0 (or as stored)", em_wtype_name(wtype));
    em_err rc = EM_E_NOMEM;
    struct em_whisper *w = calloc(1, sizeof *w);
    if (!w) return rc;
    w->wtype = wtype;
    struct stat sb;
    if (stat(dir, &sb) == 0 && S_ISREG(sb.st_mode)) { /* a GGUF from `earmark convert` */
        if ((rc = wh_gguf_load(w, dir, eb)) != EM_OK) goto fail;
        goto common;
    }
    if (stat(path, &sb) != 0) { /* no model.bin: the Hugging Face layout */
        char st_path[4096];
        snprintf(st_path, sizeof st_path, "%s/model.safetensors", dir);
        char ix_path[4200];
        snprintf(ix_path, sizeof ix_path, "%s.index.json", st_path);
        if (stat(st_path, &sb) != 0 && stat(ix_path, &sb) != 0) {
            rc = em_errf(eb, EM_E_NOTFOUND, "%s: neither model.bin (CTranslate2) nor "
                         "model.safetensors (Hugging Face; or its .index.json) is there", dir);
            goto fail;
        }
        if ((rc = load_hf(w, dir, eb)) != EM_OK) goto fail;
        goto common;
    }
    if ((rc = em_ct2_open(path, &w->ct2, eb)) != EM_OK) goto fail;
    if (strcmp(em_ct2_spec(w->ct2), "WhisperSpec") != 0) {
        rc = em_errf(eb, EM_E_MODEL, "%s: CTranslate2 spec '%s', expected WhisperSpec", path,
                     em_ct2_spec(w->ct2));
        goto fail;
    }
    if ((rc = wh_ct2_tensor(w, "decoder/embeddings/weight", 2, &w->emb, eb)) != EM_OK) goto fail;
    w->n_vocab = (int)w->emb.shape[0];
    w->d = (int)w->emb.shape[1];
    snprintf(w->dtype, sizeof w->dtype, "%s", w->emb.dtype == EM_DT_F16 ? "f16" :
             w->emb.dtype == EM_DT_BF16 ? "bf16" : "f32");
    struct em_tensor c1;
    if ((rc = wh_ct2_tensor(w, "encoder/conv1/weight", 3, &c1, eb)) != EM_OK) goto fail;
    w->n_mels = (int)c1.shape[1];
    if ((w->n_mels != 80 && w->n_mels != 128) || w->d < 8 || w->n_vocab < 51864 || w->n_vocab > 52000) {
        rc = em_errf(eb, EM_E_MODEL, "%s: %d mel bins, d %d, %d tokens: not a Whisper shape", path,
                     w->n_mels, w->d, w->n_vocab);
        goto fail;
    }
    struct em_tensor f0;
    if ((rc = wh_ct2_tensor(w, "decoder/layer_0/ffn/linear_0/weight", 2, &f0, eb)) != EM_OK) goto fail;
    w->ffn = (int)f0.shape[0];
    if ((rc = bind_encoder(w, eb)) != EM_OK) goto fail;
    if ((rc = bind_decoder(w, eb)) != EM_OK) goto fail;
    if ((rc = read_config(w, dir, eb)) != EM_OK) goto fail;
common:
    if (w->int8_file) snprintf(w->dtype, sizeof w->dtype, "int8");
    else if (w->wtype == EM_WT_Q8_0 || w->emb.dtype == EM_WT_Q8_0)
        snprintf(w->dtype, sizeof w->dtype, "q8_0");
    if ((rc = em_mel_new_bins(w->n_mels, &w->mel)) != EM_OK) goto fail;
    if (!w->tok && (rc = em_tok_load(dir, &w->tok, eb)) != EM_OK) goto fail;
    if ((rc = special_ids(w, eb)) != EM_OK) goto fail;
    if (w->gg && (rc = wh_gguf_check_ids(w, dir, eb)) != EM_OK) goto fail;
    *out = w;
    return EM_OK;
fail:
    em_whisper_free(w);
    return rc;
}

void em_whisper_info(const struct em_whisper *w, struct em_whisper_info *info)
{
    info->n_mels = w->n_mels;
    info->n_vocab = w->n_vocab;
    info->d_model = w->d;
    info->heads = w->heads;
    info->enc_layers = w->enc_layers;
    info->dec_layers = w->n_layers;
    info->multilingual = w->multilingual;
    info->dtype = w->dtype;
}

const struct em_tok *em_whisper_tok(const struct em_whisper *w) { return w->tok; }

em_err em_whisper_mel(const struct em_whisper *w, const float *pcm, size_t n, float *mel)
{
    return em_mel_compute(w->mel, pcm, n, mel, NULL);
}

em_err em_whisper_encode(const struct em_whisper *w, const float *mel, float *enc,
                         struct em_errbuf *eb)
{
    int n = 0;
    return em_encoder_run(w->enc, mel, EM_MEL_FRAMES, enc, &n, eb);
}
