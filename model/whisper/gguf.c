/* model/whisper/gguf.c - Whisper as one GGUF file: written by `earmark convert` from either
 * layout (em_whisper_convert), read back by em_whisper_load_as (wh_gguf_load).
 *
 *   src (em_whisper_load_as) ─ views ─> Hugging Face tensor names ┐
 *   geometry, ids, alignment heads ─> whisper.* keys               ├─ em_gguf_writer -> out
 *   tokenizer (em_tok_export) ─> tokenizer.ggml.*                  ┘
 *
 * Keys (general.architecture = "whisper"): whisper.n_mels, d_model, ffn_dim, encoder.layers,
 * encoder.heads, decoder.layers, decoder.heads, vocab_size, n_audio_ctx (1500), n_text_ctx
 * (u32); whisper.multilingual (bool); whisper.suppress_ids, suppress_ids_begin, lang_ids (i32
 * arrays, possibly empty); whisper.alignment_heads (i32 array of (layer, head) pairs, when the
 * source names them); whisper.token.{sot, eot, no_timestamps, transcribe, translate,
 * no_speech} (i32). Tensors: the Hugging Face names of load.c (k_proj has no bias: the
 * CTranslate2 key bias is dropped, it shifts every score of a query by the same amount).
 * The file is untrusted on the way in: every key is checked (type, bounds, ids below the
 * vocabulary size, the geometry against the tensors' shapes), each failure EM_E_MODEL with
 * the file and the key named. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "model/kernels/quant.h"
#include "model/loader/gguf.h"
#include "model/qwen2audio/config.h"
#include "model/whisper/whisper_impl.h"

#define WH_GGUF_ARCH "whisper"
#define WH_GGUF_CHUNK (1u << 20)     /* f32 values converted per step */
#define WH_GGUF_MAX_D 8192           /* d_model */
#define WH_GGUF_MAX_FFN 65536
#define WH_GGUF_MAX_HEADS 256
#define WH_GGUF_MAX_ALIGN_HEADS 4096 /* (layer, head) pairs */

/* ---- writing ------------------------------------------------------------------------------ */

struct wh_ent {
    char name[96];
    struct em_tensor t;
    int type; /* enum em_wtype stored */
};

struct wh_out {
    struct wh_ent *e;
    size_t n, cap;
    int wtype;
    float *x;
    uint8_t *y;
    void (*progress)(void *ctx, size_t i, size_t n, const char *name, int wtype);
    void *ctx;
};

/* The stored type of t for the requested wtype: f32 everything f32; f16 the 2-D linear
 * weights and the embedding f16, the rest f32; q8_0 the views as --weights q8_0 loads them
 * (linears already q8_0), vectors f32. */
static int out_type(const struct em_tensor *t, const char *name, int wtype)
{
    size_t n = strlen(name);
    int linear = t->ndim == 2 && n > 6 && !strcmp(name + n - 6, "weight") && !strstr(name, "position");
    if (wtype == EM_WT_F32 || t->ndim <= 1) return EM_WT_F32;
    if (wtype == EM_WT_F16) return linear ? EM_WT_F16 : EM_WT_F32;
    return t->dtype;
}

static em_err add(struct wh_out *o, const struct em_tensor *t, const char *fmt, int i,
                  const char *part)
{
    if (o->n == o->cap) {
        size_t cap = o->cap ? 2 * o->cap : 256;
        struct wh_ent *e = realloc(o->e, cap * sizeof *e);
        if (!e) return EM_E_NOMEM;
        o->e = e, o->cap = cap;
    }
    struct wh_ent *e = &o->e[o->n++];
    snprintf(e->name, sizeof e->name, fmt, i, part);
    e->t = *t;
    e->t.name = e->name;
    e->type = out_type(t, e->name, o->wtype);
    return EM_OK;
}

static struct em_tensor vec(const float *p, int d)
{
    return (struct em_tensor){.dtype = EM_DT_F32, .ndim = 1, .shape = {d}, .data = p,
                              .nbytes = sizeof(float) * (size_t)d};
}

#define ADD(t, fmt, i, part)                                                               \
    do {                                                                                   \
        em_err rc_ = add(o, t, fmt, i, part);                                              \
        if (rc_ != EM_OK) return rc_;                                                      \
    } while (0)

static em_err collect(const struct em_whisper *w, struct wh_out *o)
{
    const struct em_encoder_desc *s = &w->enc_desc;
    const char *E = "model.encoder.%.0d%s", *D = "model.decoder.%.0d%s";
    ADD(&s->conv1_w, E, 0, "conv1.weight");
    ADD(&s->conv1_b, E, 0, "conv1.bias");
    ADD(&s->conv2_w, E, 0, "conv2.weight");
    ADD(&s->conv2_b, E, 0, "conv2.bias");
    ADD(&s->pos, E, 0, "embed_positions.weight");
    for (int i = 0; i < s->nlayers; i++) {
        const struct em_encoder_layer_desc *l = &s->layers[i];
        const char *L = "model.encoder.layers.%d.%s";
        ADD(&l->q_w, L, i, "self_attn.q_proj.weight");
        ADD(&l->q_b, L, i, "self_attn.q_proj.bias");
        ADD(&l->k_w, L, i, "self_attn.k_proj.weight");
        ADD(&l->v_w, L, i, "self_attn.v_proj.weight");
        ADD(&l->v_b, L, i, "self_attn.v_proj.bias");
        ADD(&l->o_w, L, i, "self_attn.out_proj.weight");
        ADD(&l->o_b, L, i, "self_attn.out_proj.bias");
        ADD(&l->ln1_w, L, i, "self_attn_layer_norm.weight");
        ADD(&l->ln1_b, L, i, "self_attn_layer_norm.bias");
        ADD(&l->fc1_w, L, i, "fc1.weight");
        ADD(&l->fc1_b, L, i, "fc1.bias");
        ADD(&l->fc2_w, L, i, "fc2.weight");
        ADD(&l->fc2_b, L, i, "fc2.bias");
        ADD(&l->ln2_w, L, i, "final_layer_norm.weight");
        ADD(&l->ln2_b, L, i, "final_layer_norm.bias");
    }
    ADD(&s->lnf_w, E, 0, "layer_norm.weight");
    ADD(&s->lnf_b, E, 0, "layer_norm.bias");
    ADD(&w->emb, D, 0, "embed_tokens.weight");
    ADD(&w->pos, D, 0, "embed_positions.weight");
    for (int i = 0; i < w->n_layers; i++) {
        const struct wh_layer *l = &w->l[i];
        const char *L = "model.decoder.layers.%d.%s";
        struct em_tensor v;
        ADD(&l->sq_w, L, i, "self_attn.q_proj.weight");
        ADD(&l->sq_b, L, i, "self_attn.q_proj.bias");
        ADD(&l->sk_w, L, i, "self_attn.k_proj.weight");
        ADD(&l->sv_w, L, i, "self_attn.v_proj.weight");
        ADD(&l->sv_b, L, i, "self_attn.v_proj.bias");
        ADD(&l->so_w, L, i, "self_attn.out_proj.weight");
        ADD(&l->so_b, L, i, "self_attn.out_proj.bias");
        ADD((v = vec(l->ln1_w, w->d), &v), L, i, "self_attn_layer_norm.weight");
        ADD((v = vec(l->ln1_b, w->d), &v), L, i, "self_attn_layer_norm.bias");
        ADD(&l->cq_w, L, i, "encoder_attn.q_proj.weight");
        ADD(&l->cq_b, L, i, "encoder_attn.q_proj.bias");
        ADD(&l->ck_w, L, i, "encoder_attn.k_proj.weight");
        ADD(&l->cv_w, L, i, "encoder_attn.v_proj.weight");
        ADD(&l->cv_b, L, i, "encoder_attn.v_proj.bias");
        ADD(&l->co_w, L, i, "encoder_attn.out_proj.weight");
        ADD(&l->co_b, L, i, "encoder_attn.out_proj.bias");
        ADD((v = vec(l->ln2_w, w->d), &v), L, i, "encoder_attn_layer_norm.weight");
        ADD((v = vec(l->ln2_b, w->d), &v), L, i, "encoder_attn_layer_norm.bias");
        ADD(&l->fc1_w, L, i, "fc1.weight");
        ADD(&l->fc1_b, L, i, "fc1.bias");
        ADD(&l->fc2_w, L, i, "fc2.weight");
        ADD(&l->fc2_b, L, i, "fc2.bias");
        ADD((v = vec(l->ln3_w, w->d), &v), L, i, "final_layer_norm.weight");
        ADD((v = vec(l->ln3_b, w->d), &v), L, i, "final_layer_norm.bias");
    }
    struct em_tensor v;
    ADD((v = vec(w->lnf_w, w->d), &v), D, 0, "layer_norm.weight");
    ADD((v = vec(w->lnf_b, w->d), &v), D, 0, "layer_norm.bias");
    return EM_OK;
}
#undef ADD

static em_err put_data(void *ctx, size_t i, struct em_gguf_sink *sink, struct em_errbuf *eb)
{
    struct wh_out *o = ctx;
    const struct wh_ent *e = &o->e[i];
    const struct em_tensor *t = &e->t;
    if (o->progress) o->progress(o->ctx, i, o->n, e->name, e->type);
    if (t->dtype == e->type) return em_gguf_sink_write(sink, t->data, t->nbytes);
    size_t numel = (size_t)em_tensor_numel(t), step = WH_GGUF_CHUNK;
    em_err rc = EM_OK;
    for (size_t off = 0; off < numel && rc == EM_OK; off += step) {
        size_t k = numel - off < step ? numel - off : step;
        em_tensor_read_f32(t, off, k, o->x);
        if ((rc = em_quantize_row(e->type, o->x, o->y, (int64_t)k)) != EM_OK)
            return em_errf(eb, rc, "convert: tensor '%s': cannot store as %s", e->name,
                           em_wtype_name(e->type));
        rc = em_gguf_sink_write(sink, o->y, em_wtype_row_size(e->type, (int64_t)k));
    }
    return rc;
}

/* alignment_heads [[layer, head], ...] of config.json (CTranslate2) or generation_config.json
 * (Hugging Face), flattened into *out (owned; NULL and 0 when absent). Checked on reading. */
static em_err alignment_heads(const char *src, int32_t **out, size_t *n)
{
    static const char *const files[] = {"config.json", "generation_config.json"};
    *out = NULL, *n = 0;
    for (size_t f = 0; f < 2 && !*out; f++) {
        char p[4096], *txt = NULL;
        size_t len = 0;
        snprintf(p, sizeof p, "%s/%s", src, files[f]);
        if (em_cfg_read_file(p, 1, &txt, &len, NULL) != EM_OK || !txt) continue;
        json_t *j = json_loadb(txt, len, 0, NULL);
        free(txt);
        const json_t *a = json_object_get(j, "alignment_heads");
        size_t k = json_is_array(a) ? json_array_size(a) : 0;
        if (k > 0 && k <= WH_GGUF_MAX_ALIGN_HEADS && (*out = malloc(2 * k * sizeof **out))) {
            for (size_t i = 0; i < k; i++)
                for (size_t c = 0; c < 2; c++)
                    (*out)[2 * i + c] =
                        (int32_t)json_integer_value(json_array_get(json_array_get(a, i), c));
            *n = 2 * k;
        }
        json_decref(j);
    }
    return EM_OK;
}

static em_err put_meta(struct em_gguf_writer *g, const struct em_whisper *w, const char *src,
                       int wtype)
{
    size_t n = strlen(src), b;
    while (n > 1 && src[n - 1] == '/') n--;
    for (b = n; b > 0 && src[b - 1] != '/'; b--) {}
    static const int32_t none = 0;
    struct { const char *key; uint32_t v; } u[] = {
        {"whisper.n_mels", (uint32_t)w->n_mels}, {"whisper.d_model", (uint32_t)w->d},
        {"whisper.ffn_dim", (uint32_t)w->ffn}, {"whisper.encoder.layers", (uint32_t)w->enc_layers},
        {"whisper.encoder.heads", (uint32_t)w->enc_desc.heads},
        {"whisper.decoder.layers", (uint32_t)w->n_layers}, {"whisper.decoder.heads", (uint32_t)w->heads},
        {"whisper.vocab_size", (uint32_t)w->n_vocab}, {"whisper.n_audio_ctx", EM_WHISPER_AUDIO_CTX},
        {"whisper.n_text_ctx", (uint32_t)w->n_ctx},
    };
    struct { const char *key; int32_t v; } ids[] = {
        {"whisper.token.sot", w->sot}, {"whisper.token.eot", w->eot},
        {"whisper.token.no_timestamps", w->no_timestamps}, {"whisper.token.transcribe", w->transcribe},
        {"whisper.token.translate", w->translate}, {"whisper.token.no_speech", w->no_speech},
    };
    struct { const char *key; const int32_t *v; int n; } arr[] = {
        {"whisper.suppress_ids", w->suppress, w->n_suppress},
        {"whisper.suppress_ids_begin", w->suppress_begin, w->n_suppress_begin},
        {"whisper.lang_ids", w->lang_ids, w->n_langs},
    };
    em_err rc = em_gguf_set_str(g, "general.architecture", WH_GGUF_ARCH, strlen(WH_GGUF_ARCH));
    if (rc == EM_OK) rc = em_gguf_set_str(g, "general.name", src + b, n - b);
    if (rc == EM_OK) rc = em_gguf_set_u32(g, "general.file_type", wtype == EM_WT_F32 ? 0 : wtype == EM_WT_F16 ? 1 : 7);
    for (size_t i = 0; rc == EM_OK && i < sizeof u / sizeof *u; i++) rc = em_gguf_set_u32(g, u[i].key, u[i].v);
    for (size_t i = 0; rc == EM_OK && i < sizeof ids / sizeof *ids; i++)
        rc = em_gguf_set_i32(g, ids[i].key, ids[i].v);
    for (size_t i = 0; rc == EM_OK && i < sizeof arr / sizeof *arr; i++)
        rc = em_gguf_set_arr(g, arr[i].key, EM_GGUF_I32, arr[i].v ? arr[i].v : &none,
                             (uint64_t)arr[i].n);
    if (rc == EM_OK) rc = em_gguf_set_bool(g, "whisper.multilingual", w->multilingual);
    int32_t *ah = NULL;
    size_t nah = 0;
    if (rc == EM_OK) rc = alignment_heads(src, &ah, &nah);
    if (rc == EM_OK && ah) rc = em_gguf_set_arr(g, "whisper.alignment_heads", EM_GGUF_I32, ah, nah);
    free(ah);
    struct em_qa_config c;
    memset(&c, 0, sizeof c);
    c.text.eos_token_id = w->eot;
    c.text.bos_token_id = -1;
    c.gen.pad_token_id = -1;
    if (rc == EM_OK) rc = em_gguf_put_tokenizer(g, w->tok, &c, NULL);
    return rc;
}

em_err em_whisper_convert(const char *src, const char *out, int wtype,
                          void (*progress)(void *ctx, size_t i, size_t n, const char *name, int wtype),
                          void *progress_ctx, struct em_errbuf *eb)
{
    if (wtype != EM_WT_F32 && wtype != EM_WT_F16 && wtype != EM_WT_Q8_0)
        return em_errf(eb, EM_E_ARG, "convert: a Whisper model is written as f32, f16 or q8_0, not %s",
                       em_wtype_name(wtype));
    struct em_whisper *w = NULL;
    struct em_gguf_writer *g = NULL;
    struct wh_out o = {.wtype = wtype, .progress = progress, .ctx = progress_ctx};
    em_err rc = em_whisper_load_as(src, wtype == EM_WT_Q8_0 ? EM_WT_Q8_0 : -1, &w, eb);
    if (rc != EM_OK) return rc;
    rc = EM_E_NOMEM;
    o.x = malloc(WH_GGUF_CHUNK * sizeof *o.x);
    o.y = malloc(WH_GGUF_CHUNK * sizeof(float));
    if (!o.x || !o.y) goto done;
    if ((rc = collect(w, &o)) != EM_OK) goto done;
    if ((rc = em_gguf_writer_new(EM_GGUF_DEFAULT_ALIGNMENT, &g)) != EM_OK) goto done;
    if ((rc = put_meta(g, w, src, wtype)) != EM_OK) {
        rc = em_errf(eb, rc, "convert: cannot build the Whisper metadata (%s)", em_err_str(rc));
        goto done;
    }
    for (size_t i = 0; i < o.n; i++) {
        const struct wh_ent *e = &o.e[i];
        int gt = em_gguf_wtype_to_ggml(e->type);
        if (gt < 0 || (rc = em_gguf_add_tensor(g, e->name, (uint32_t)gt, e->t.ndim, e->t.shape)) != EM_OK) {
            rc = em_errf(eb, gt < 0 ? EM_E_UNSUPPORTED : rc, "convert: tensor '%s' cannot be stored as %s",
                         e->name, em_wtype_name(e->type));
            goto done;
        }
    }
    rc = em_gguf_writer_write(g, out, put_data, &o, eb);
done:
    free(o.x);
    free(o.y);
    free(o.e);
    em_gguf_writer_free(g);
    em_whisper_free(w);
    return rc;
}

/* ---- reading ------------------------------------------------------------------------------ */

/* Integer key in [lo, hi]; any failure EM_E_MODEL naming the file and the key. */
static em_err get_int(const struct em_gguf *g, const char *path, const char *key, int64_t lo,
                      int64_t hi, int *out, struct em_errbuf *eb)
{
    int64_t v = 0;
    struct em_errbuf tmp = {{0}};
    em_err rc = em_gguf_get_int(g, key, lo, hi, &v, &tmp);
    if (rc == EM_E_NOTFOUND) return em_errf(eb, EM_E_MODEL, "%s: key %s is missing", path, key);
    if (rc != EM_OK)
        return em_errf(eb, EM_E_MODEL, "%s: key %s is not an integer in %lld..%lld", path, key,
                       (long long)lo, (long long)hi);
    *out = (int)v;
    return EM_OK;
}

/* An i32-or-other integer array key: at most cap elements, each in [0, below). */
static em_err get_ids(const struct em_gguf *g, const char *path, const char *key, int cap,
                      int32_t below, int required, int32_t **out, int *n, struct em_errbuf *eb)
{
    const struct em_gguf_value *v = em_gguf_find(g, key);
    *out = NULL, *n = 0;
    if (!v) return required ? em_errf(eb, EM_E_MODEL, "%s: key %s is missing", path, key) : EM_OK;
    if (v->type != EM_GGUF_ARR || v->arr_type == EM_GGUF_STR || v->arr_type == EM_GGUF_F32 ||
        v->arr_type == EM_GGUF_F64 || v->arr_type == EM_GGUF_BOOL || v->n > (uint64_t)cap)
        return em_errf(eb, EM_E_MODEL, "%s: key %s is not an integer array of at most %d", path,
                       key, cap);
    if (!(*out = malloc(sizeof **out * (v->n ? v->n : 1)))) return EM_E_NOMEM;
    for (uint64_t i = 0; i < v->n; i++) {
        int64_t x = em_gguf_arr_int(v, i);
        if (x < 0 || x >= below)
            return em_errf(eb, EM_E_MODEL, "%s: key %s[%llu] = %lld is not below %d", path, key,
                           (unsigned long long)i, (long long)x, (int)below);
        (*out)[i] = (int32_t)x;
    }
    *n = (int)v->n;
    return EM_OK;
}

/* Every tensor f32/f16/bf16, or q8_0 when 2-D: the types the decoder and encoder run. */
static em_err check_types(const struct em_gguf *g, const char *path, struct em_errbuf *eb)
{
    for (size_t i = 0; i < em_gguf_n_tensors(g); i++) {
        const struct em_gguf_tensor *t = em_gguf_tensor_at(g, i);
        uint32_t ty = t->ggml_type;
        if (ty == EM_GGML_F32 || ty == EM_GGML_F16 || ty == EM_GGML_BF16 || (ty == EM_GGML_Q8_0 && t->ndim == 2))
            continue;
        return em_errf(eb, EM_E_MODEL, "%s: tensor '%s' has ggml type %u, Whisper reads f32, f16, "
                       "bf16 and 2-D q8_0", path, t->name, (unsigned)ty);
    }
    return EM_OK;
}

em_err wh_gguf_load(struct em_whisper *w, const char *path, struct em_errbuf *eb)
{
    em_err rc = em_gguf_open(path, &w->gg, eb);
    if (rc != EM_OK) return rc;
    const struct em_gguf *g = w->gg;
    struct em_gguf_str arch = {0};
    if (em_gguf_get_str(g, "general.architecture", &arch, NULL) != EM_OK ||
        arch.len != strlen(WH_GGUF_ARCH) || memcmp(arch.s, WH_GGUF_ARCH, arch.len) != 0)
        return em_errf(eb, EM_E_MODEL, "%s: key general.architecture is not \"whisper\"", path);
    int mels, d, ffn, el, eh, dl, dh, vocab, actx, tctx;
    struct { const char *key; int lo, hi; int *v; } geo[] = {
        {"whisper.n_mels", 80, 128, &mels}, {"whisper.d_model", 8, WH_GGUF_MAX_D, &d},
        {"whisper.ffn_dim", 1, WH_GGUF_MAX_FFN, &ffn},
        {"whisper.encoder.layers", 1, EM_WHISPER_MAX_LAYERS, &el},
        {"whisper.encoder.heads", 1, WH_GGUF_MAX_HEADS, &eh},
        {"whisper.decoder.layers", 1, EM_WHISPER_MAX_LAYERS, &dl},
        {"whisper.decoder.heads", 1, WH_GGUF_MAX_HEADS, &dh},
        {"whisper.vocab_size", 51864, 52000, &vocab},
        {"whisper.n_audio_ctx", EM_WHISPER_AUDIO_CTX, EM_WHISPER_AUDIO_CTX, &actx},
        {"whisper.n_text_ctx", 4, EM_WHISPER_CTX, &tctx},
    };
    for (size_t i = 0; i < sizeof geo / sizeof *geo; i++)
        if ((rc = get_int(g, path, geo[i].key, geo[i].lo, geo[i].hi, geo[i].v, eb)) != EM_OK) return rc;
    if (mels != 80 && mels != 128)
        return em_errf(eb, EM_E_MODEL, "%s: key whisper.n_mels is %d, not 80 or 128", path, mels);
    if (d % eh || d % dh)
        return em_errf(eb, EM_E_MODEL, "%s: key whisper.d_model %d is not a multiple of the heads "
                       "(%d, %d)", path, d, eh, dh);
    if ((rc = check_types(g, path, eb)) != EM_OK) return rc;
    if ((rc = wh_bind_hf(w, eh, dh, eb)) != EM_OK) return rc;
    struct { const char *key; int want, got; } same[] = {
        {"whisper.n_mels", mels, w->n_mels}, {"whisper.d_model", d, w->d},
        {"whisper.ffn_dim", ffn, w->ffn}, {"whisper.encoder.layers", el, w->enc_layers},
        {"whisper.decoder.layers", dl, w->n_layers}, {"whisper.vocab_size", vocab, w->n_vocab},
        {"whisper.n_text_ctx", tctx, w->n_ctx},
    };
    for (size_t i = 0; i < sizeof same / sizeof *same; i++)
        if (same[i].want != same[i].got)
            return em_errf(eb, EM_E_MODEL, "%s: key %s is %d, the tensors say %d", path,
                           same[i].key, same[i].want, same[i].got);
    if ((rc = get_ids(g, path, "whisper.suppress_ids", EM_WHISPER_MAX_SUPPRESS, w->n_vocab, 1,
                      &w->suppress, &w->n_suppress, eb)) != EM_OK ||
        (rc = get_ids(g, path, "whisper.suppress_ids_begin", EM_WHISPER_MAX_SUPPRESS, w->n_vocab, 1,
                      &w->suppress_begin, &w->n_suppress_begin, eb)) != EM_OK ||
        (rc = get_ids(g, path, "whisper.lang_ids", EM_WHISPER_MAX_LANGS, w->n_vocab, 1, &w->lang_ids,
                      &w->n_langs, eb)) != EM_OK)
        return rc;
    int32_t *ah = NULL;
    int nah = 0;
    rc = get_ids(g, path, "whisper.alignment_heads", 2 * WH_GGUF_MAX_ALIGN_HEADS,
                 dl > dh ? dl : dh, 0, &ah, &nah, eb);
    for (int i = 0; rc == EM_OK && i < nah; i += 2)
        if (nah % 2 || ah[i] >= dl || ah[i + 1] >= dh)
            rc = em_errf(eb, EM_E_MODEL, "%s: key whisper.alignment_heads: pair %d is not a "
                         "(layer < %d, head < %d)", path, i / 2, dl, dh);
    free(ah);
    if (rc != EM_OK) return rc;
    snprintf(w->dtype, sizeof w->dtype, "%s", w->emb.dtype == EM_DT_F16 ? "f16" :
             w->emb.dtype == EM_DT_BF16 ? "bf16" : "f32");
    return em_gguf_read_tokenizer(g, path, &w->tok, eb);
}

em_err wh_gguf_check_ids(const struct em_whisper *w, const char *path, struct em_errbuf *eb)
{
    struct { const char *key; int32_t want; } ids[] = {
        {"whisper.token.sot", w->sot}, {"whisper.token.eot", w->eot},
        {"whisper.token.no_timestamps", w->no_timestamps}, {"whisper.token.transcribe", w->transcribe},
        {"whisper.token.translate", w->translate}, {"whisper.token.no_speech", w->no_speech},
    };
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++) {
        int v = 0;
        em_err rc = get_int(w->gg, path, ids[i].key, 0, w->n_vocab - 1, &v, eb);
        if (rc != EM_OK) return rc;
        if (v != ids[i].want)
            return em_errf(eb, EM_E_MODEL, "%s: key %s is %d, the vocabulary says %d", path,
                           ids[i].key, v, (int)ids[i].want);
    }
    int ml = 0;
    if (em_gguf_get_bool(w->gg, "whisper.multilingual", &ml, NULL) != EM_OK)
        return em_errf(eb, EM_E_MODEL, "%s: key whisper.multilingual is missing or not a bool", path);
    if ((ml != 0) != w->multilingual)
        return em_errf(eb, EM_E_MODEL, "%s: key whisper.multilingual is %s for %d tokens", path,
                       ml ? "true" : "false", w->n_vocab);
    return EM_OK;
}
