/* model/qwen2audio/config.c - config.json + generation_config.json -> struct em_qa_config.
 * Missing keys take the transformers defaults named in config.h; every present value is
 * type- and range-checked, and the detail names the key. */
#include "model/qwen2audio/config.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Integer key with a default; EM_E_MODEL if present but not an integer in [lo, hi]. */
static em_err get_int(const json_t *obj, const char *key, const char *where, int def, int lo,
                      int hi, int *out, struct em_errbuf *eb)
{
    const json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (!v || json_is_null(v)) {
        *out = def;
        return EM_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return em_errf(eb, EM_E_MODEL, "%s%s must be an integer in [%d, %d]", where, key, lo, hi);
    *out = (int)json_integer_value(v);
    return EM_OK;
}

static em_err get_num(const json_t *obj, const char *key, const char *where, double def,
                      double lo, double hi, double *out, struct em_errbuf *eb)
{
    const json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (!v || json_is_null(v)) {
        *out = def;
        return EM_OK;
    }
    if (!json_is_number(v) || !(json_number_value(v) >= lo && json_number_value(v) <= hi))
        return em_errf(eb, EM_E_MODEL, "%s%s must be a number in [%g, %g]", where, key, lo, hi);
    *out = json_number_value(v);
    return EM_OK;
}

static em_err get_bool(const json_t *obj, const char *key, const char *where, int def, int *out,
                       struct em_errbuf *eb)
{
    const json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (!v || json_is_null(v)) {
        *out = def;
        return EM_OK;
    }
    if (!json_is_boolean(v)) return em_errf(eb, EM_E_MODEL, "%s%s must be a boolean", where, key);
    *out = json_is_true(v);
    return EM_OK;
}

#define TRY(x)                      \
    do {                            \
        em_err rc_ = (x);           \
        if (rc_ != EM_OK) return rc_; \
    } while (0)

static em_err parse_audio(const json_t *a, struct em_qa_audio_config *o, struct em_errbuf *eb)
{
    const char *w = "config.json: audio_config.";
    if (a && !json_is_object(a)) return em_errf(eb, EM_E_MODEL, "config.json: audio_config is not an object");
    TRY(get_int(a, "num_mel_bins", w, 128, 1, 4096, &o->num_mel_bins, eb));
    TRY(get_int(a, "d_model", w, 1280, 1, EM_CFG_MAX_DIM, &o->d_model, eb));
    TRY(get_int(a, "encoder_layers", w, 32, 1, 1024, &o->encoder_layers, eb));
    TRY(get_int(a, "encoder_attention_heads", w, 20, 1, 4096, &o->encoder_attention_heads, eb));
    TRY(get_int(a, "encoder_ffn_dim", w, 5120, 1, EM_CFG_MAX_DIM, &o->encoder_ffn_dim, eb));
    TRY(get_int(a, "max_source_positions", w, 1500, 1, EM_CFG_MAX_DIM, &o->max_source_positions, eb));
    o->layer_norm_eps = 1e-5f;
    if (o->d_model % o->encoder_attention_heads != 0)
        return em_errf(eb, EM_E_MODEL, "%sencoder_attention_heads = %d does not divide d_model %d",
                       w, o->encoder_attention_heads, o->d_model);
    const json_t *act = a ? json_object_get(a, "activation_function") : NULL;
    if (act && (!json_is_string(act) || strcmp(json_string_value(act), "gelu") != 0))
        return em_errf(eb, EM_E_MODEL, "%sactivation_function must be \"gelu\"", w);
    return EM_OK;
}

/* RoPE base: transformers 4.x writes text_config.rope_theta, transformers 5 writes
 * text_config.rope_parameters {rope_type, rope_theta}. Read either; a config with neither
 * is refused rather than run with a guessed base (a wrong theta gives plausible but wrong
 * text). Only the "default" rope type is implemented. */
static em_err parse_rope(const json_t *t, struct em_qa_text_config *o, struct em_errbuf *eb)
{
    const char *w = "config.json: text_config.";
    const json_t *rp = t ? json_object_get(t, "rope_parameters") : NULL;
    if (rp && !json_is_null(rp)) {
        if (!json_is_object(rp))
            return em_errf(eb, EM_E_MODEL, "%srope_parameters is not an object", w);
        const json_t *ty = json_object_get(rp, "rope_type");
        if (ty && (!json_is_string(ty) || strcmp(json_string_value(ty), "default") != 0))
            return em_errf(eb, EM_E_MODEL, "%srope_parameters.rope_type %s is not supported "
                           "(only \"default\")", w, json_is_string(ty) ? json_string_value(ty) : "?");
        if (json_object_get(rp, "rope_theta"))
            return get_num(rp, "rope_theta", "config.json: text_config.rope_parameters.", 0, 1.0,
                           1e12, &o->rope_theta, eb);
    }
    if (t && json_object_get(t, "rope_theta") && !json_is_null(json_object_get(t, "rope_theta")))
        return get_num(t, "rope_theta", w, 0, 1.0, 1e12, &o->rope_theta, eb);
    return em_errf(eb, EM_E_MODEL, "%sneither rope_theta nor rope_parameters.rope_theta is set: "
                   "the RoPE base cannot be known", w);
}

/* Token id list key: an integer or a list of at most cap integers; absent or null gives 0
 * ids. */
static em_err get_ids(const json_t *obj, const char *key, const char *where, int *ids, int cap,
                      int *n, struct em_errbuf *eb)
{
    const json_t *e = obj ? json_object_get(obj, key) : NULL;
    *n = 0;
    if (!e || json_is_null(e)) return EM_OK;
    if (json_is_integer(e)) {
        TRY(get_int(obj, key, where, -1, 0, 1 << 24, &ids[0], eb));
        *n = 1;
        return EM_OK;
    }
    if (!json_is_array(e)) return em_errf(eb, EM_E_MODEL, "%s%s must be an integer or a list", where, key);
    if (json_array_size(e) > (size_t)cap)
        return em_errf(eb, EM_E_MODEL, "%s%s lists over %d ids", where, key, cap);
    for (size_t i = 0; i < json_array_size(e); i++) {
        const json_t *x = json_array_get(e, i);
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > (1 << 24))
            return em_errf(eb, EM_E_MODEL, "%s%s[%zu] is not a token id", where, key, i);
        ids[(*n)++] = (int)json_integer_value(x);
    }
    return EM_OK;
}

static em_err parse_text(const json_t *t, struct em_qa_text_config *o, struct em_errbuf *eb)
{
    const char *w = "config.json: text_config.";
    if (t && !json_is_object(t)) return em_errf(eb, EM_E_MODEL, "config.json: text_config is not an object");
    TRY(get_int(t, "hidden_size", w, 4096, 1, EM_CFG_MAX_DIM, &o->hidden_size, eb));
    TRY(get_int(t, "intermediate_size", w, 22016, 1, EM_CFG_MAX_DIM, &o->intermediate_size, eb));
    TRY(get_int(t, "num_hidden_layers", w, 32, 1, 1024, &o->num_hidden_layers, eb));
    TRY(get_int(t, "num_attention_heads", w, 32, 1, 4096, &o->num_attention_heads, eb));
    /* ref: transformers Qwen2Config: the field defaults to 32; only an explicit null means
     * "as many as the attention heads" (__post_init__) */
    const json_t *kvh = t ? json_object_get(t, "num_key_value_heads") : NULL;
    TRY(get_int(t, "num_key_value_heads", w, kvh ? o->num_attention_heads : 32, 1, 4096,
                &o->num_key_value_heads, eb));
    TRY(get_int(t, "vocab_size", w, 151936, 1, 1 << 24, &o->vocab_size, eb));
    TRY(get_int(t, "max_position_embeddings", w, 32768, 1, 1 << 24, &o->max_position_embeddings, eb));
    double eps;
    TRY(get_num(t, "rms_norm_eps", w, 1e-6, 0.0, 1.0, &eps, eb));
    o->rms_norm_eps = (float)eps;
    TRY(get_bool(t, "tie_word_embeddings", w, 0, &o->tie_word_embeddings, eb));
    TRY(get_int(t, "bos_token_id", w, -1, -1, 1 << 24, &o->bos_token_id, eb));
    if (o->hidden_size % o->num_attention_heads != 0)
        return em_errf(eb, EM_E_MODEL, "%snum_attention_heads = %d does not divide hidden_size %d",
                       w, o->num_attention_heads, o->hidden_size);
    if (o->num_attention_heads % o->num_key_value_heads != 0)
        return em_errf(eb, EM_E_MODEL, "%snum_key_value_heads = %d does not divide "
                       "num_attention_heads %d", w, o->num_key_value_heads, o->num_attention_heads);
    o->head_dim = o->hidden_size / o->num_attention_heads;
    const json_t *act = t ? json_object_get(t, "hidden_act") : NULL;
    if (act && (!json_is_string(act) || strcmp(json_string_value(act), "silu") != 0))
        return em_errf(eb, EM_E_MODEL, "%shidden_act must be \"silu\"", w);
    int sliding = 0;
    TRY(get_bool(t, "use_sliding_window", w, 0, &sliding, eb));
    if (sliding) /* the published configs carry sliding_window 32768 with this off */
        return em_errf(eb, EM_E_MODEL, "%suse_sliding_window is not supported", w);
    const json_t *rs = t ? json_object_get(t, "rope_scaling") : NULL;
    if (rs && !json_is_null(rs))
        return em_errf(eb, EM_E_MODEL, "%srope_scaling is not supported", w);
    return parse_rope(t, o, eb);
}

static em_err parse_gen(const json_t *g, struct em_qa_gen_config *o, struct em_errbuf *eb)
{
    const char *w = "generation_config.json: ";
    double v;
    if (g && !json_is_object(g)) return em_errf(eb, EM_E_MODEL, "generation_config.json is not an object");
    TRY(get_bool(g, "do_sample", w, 0, &o->do_sample, eb));
    TRY(get_int(g, "top_k", w, 50, 0, 1 << 24, &o->top_k, eb));
    TRY(get_num(g, "top_p", w, 1.0, 0.0, 1.0, &v, eb));
    o->top_p = (float)v;
    TRY(get_num(g, "temperature", w, 1.0, 0.0, 1e6, &v, eb));
    o->temperature = (float)v;
    TRY(get_num(g, "repetition_penalty", w, 1.0, 1e-6, 1e6, &v, eb));
    o->repetition_penalty = (float)v;
    TRY(get_int(g, "max_new_tokens", w, -1, 0, 1 << 24, &o->max_new_tokens, eb));
    TRY(get_int(g, "max_length", w, -1, 0, 1 << 24, &o->max_length, eb));
    TRY(get_int(g, "pad_token_id", w, -1, 0, 1 << 24, &o->pad_token_id, eb));
    return get_ids(g, "eos_token_id", w, o->eos_token_id, EM_CFG_MAX_EOS, &o->n_eos, eb);
}

em_err em_qa_config_parse(const char *cfg, size_t cfg_len, const char *gen, size_t gen_len,
                          struct em_qa_config *out, struct em_errbuf *eb)
{
    memset(out, 0, sizeof *out);
    json_error_t jerr;
    json_t *root = json_loadb(cfg, cfg_len, 0, &jerr);
    if (!root)
        return em_errf(eb, EM_E_MODEL, "config.json: %s (line %d)", jerr.text, jerr.line);
    json_t *groot = NULL;
    em_err rc = EM_OK;
    if (!json_is_object(root)) {
        rc = em_errf(eb, EM_E_MODEL, "config.json is not an object");
        goto done;
    }
    const json_t *mt = json_object_get(root, "model_type");
    if (mt && (!json_is_string(mt) || strcmp(json_string_value(mt), "qwen2_audio") != 0)) {
        rc = em_errf(eb, EM_E_MODEL, "config.json: model_type is not \"qwen2_audio\"");
        goto done;
    }
    if ((rc = parse_audio(json_object_get(root, "audio_config"), &out->audio, eb)) != EM_OK) goto done;
    if ((rc = parse_text(json_object_get(root, "text_config"), &out->text, eb)) != EM_OK) goto done;
    const char *atk = json_object_get(root, "audio_token_index") ? "audio_token_index" : "audio_token_id";
    if ((rc = get_int(root, atk, "config.json: ", 151646, 0, 1 << 24, &out->audio_token_index, eb)) != EM_OK)
        goto done;
    if (out->audio_token_index >= out->text.vocab_size) {
        rc = em_errf(eb, EM_E_MODEL, "config.json: audio_token_index %d outside vocab_size %d",
                     out->audio_token_index, out->text.vocab_size);
        goto done;
    }
    const json_t *dt = json_object_get(root, "torch_dtype");
    if (!dt) dt = json_object_get(root, "dtype");
    if (json_is_string(dt)) snprintf(out->torch_dtype, sizeof out->torch_dtype, "%s", json_string_value(dt));
    if (gen) {
        groot = json_loadb(gen, gen_len, 0, &jerr);
        if (!groot) {
            rc = em_errf(eb, EM_E_MODEL, "generation_config.json: %s (line %d)", jerr.text, jerr.line);
            goto done;
        }
    }
    if ((rc = parse_gen(groot, &out->gen, eb)) != EM_OK) goto done;
    /* The text config's eos (an int or a list, like generation_config's) */
    const json_t *tc = json_object_get(root, "text_config");
    int teos[EM_CFG_MAX_EOS] = {0}, nteos = 0;
    if ((rc = get_ids(json_is_object(tc) ? tc : NULL, "eos_token_id", "config.json: text_config.",
                      teos, EM_CFG_MAX_EOS, &nteos, eb)) != EM_OK)
        goto done;
    out->text.eos_token_id = nteos ? teos[0] : -1;
    /* ref: transformers GenerationConfig.from_model_config: without a generation_config.json
     * the stop ids come from the model config (top level first, then the text config); with
     * one, exactly the ids it lists (none: generation runs to its token limit). */
    if (!groot) {
        if ((rc = get_ids(root, "eos_token_id", "config.json: ", out->gen.eos_token_id,
                          EM_CFG_MAX_EOS, &out->gen.n_eos, eb)) != EM_OK)
            goto done;
        if (out->gen.n_eos == 0) {
            memcpy(out->gen.eos_token_id, teos, sizeof teos);
            out->gen.n_eos = nteos;
        }
    }
done:
    json_decref(root);
    json_decref(groot);
    return rc;
}

em_err em_cfg_read_file(const char *path, int optional, char **out, size_t *len,
                        struct em_errbuf *eb)
{
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (optional && errno == ENOENT) return EM_OK;
        return em_errf(eb, EM_E_IO, "%s: %s", path, strerror(errno));
    }
    char *buf = malloc(EM_CFG_MAX_JSON + 1);
    if (!buf) {
        fclose(f);
        return EM_E_NOMEM;
    }
    size_t n = fread(buf, 1, EM_CFG_MAX_JSON + 1, f);
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return em_errf(eb, EM_E_IO, "%s: read error", path);
    }
    if (n > EM_CFG_MAX_JSON) {
        free(buf);
        return em_errf(eb, EM_E_TOO_LONG, "%s: over %u bytes", path, EM_CFG_MAX_JSON);
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return EM_OK;
}

em_err em_qa_config_load(const char *dir, struct em_qa_config *out, struct em_errbuf *eb)
{
    char p1[4096], p2[4096];
    if (snprintf(p1, sizeof p1, "%s/config.json", dir) >= (int)sizeof p1 ||
        snprintf(p2, sizeof p2, "%s/generation_config.json", dir) >= (int)sizeof p2)
        return em_errf(eb, EM_E_ARG, "checkpoint path too long");
    char *c = NULL, *g = NULL;
    size_t cl, gl;
    em_err rc = em_cfg_read_file(p1, 0, &c, &cl, eb);
    if (rc == EM_OK) rc = em_cfg_read_file(p2, 1, &g, &gl, eb);
    if (rc == EM_OK) rc = em_qa_config_parse(c, cl, g, gl, out, eb);
    free(c);
    free(g);
    return rc;
}
