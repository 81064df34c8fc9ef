/* model/loader/ckpt_gguf.c - earmark's GGUF keys (gguf.h): the Qwen2-Audio config and the
 * byte-level BPE tokenizer <-> GGUF metadata.
 *
 *   write: struct em_qa_config -> qwen2audio.{audio,text,gen}.<config.json field> keys
 *          struct em_tok -> em_tok_export -> tokenizer.ggml.{tokens,token_type,merges}
 *   read:  keys -> the config.json / generation_config.json objects -> em_qa_config_parse
 *          (one set of checks and defaults for directories and GGUF files)
 *          tokenizer.ggml.* -> em_tok_spec (strings borrowed from the mapping) -> em_tok */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/loader/gguf.h"

#define TRY(x)                        \
    do {                              \
        em_err rc_ = (x);             \
        if (rc_ != EM_OK) return rc_; \
    } while (0)

#define A "qwen2audio.audio."
#define T "qwen2audio.text."
#define G "qwen2audio.gen."

static em_err put_opt_i32(struct em_gguf_writer *w, const char *key, int v)
{
    return v < 0 ? EM_OK : em_gguf_set_i32(w, key, v);
}

em_err em_gguf_put_config(struct em_gguf_writer *w, const struct em_qa_config *c)
{
    const struct em_qa_audio_config *a = &c->audio;
    const struct em_qa_text_config *t = &c->text;
    const struct em_qa_gen_config *g = &c->gen;
    TRY(em_gguf_set_str(w, "general.architecture", EM_GGUF_ARCH, strlen(EM_GGUF_ARCH)));
    TRY(em_gguf_set_u32(w, A "num_mel_bins", (uint32_t)a->num_mel_bins));
    TRY(em_gguf_set_u32(w, A "d_model", (uint32_t)a->d_model));
    TRY(em_gguf_set_u32(w, A "encoder_layers", (uint32_t)a->encoder_layers));
    TRY(em_gguf_set_u32(w, A "encoder_attention_heads", (uint32_t)a->encoder_attention_heads));
    TRY(em_gguf_set_u32(w, A "encoder_ffn_dim", (uint32_t)a->encoder_ffn_dim));
    TRY(em_gguf_set_u32(w, A "max_source_positions", (uint32_t)a->max_source_positions));
    TRY(em_gguf_set_f32(w, A "layer_norm_eps", a->layer_norm_eps));
    TRY(em_gguf_set_u32(w, T "hidden_size", (uint32_t)t->hidden_size));
    TRY(em_gguf_set_u32(w, T "intermediate_size", (uint32_t)t->intermediate_size));
    TRY(em_gguf_set_u32(w, T "num_hidden_layers", (uint32_t)t->num_hidden_layers));
    TRY(em_gguf_set_u32(w, T "num_attention_heads", (uint32_t)t->num_attention_heads));
    TRY(em_gguf_set_u32(w, T "num_key_value_heads", (uint32_t)t->num_key_value_heads));
    TRY(em_gguf_set_u32(w, T "vocab_size", (uint32_t)t->vocab_size));
    TRY(em_gguf_set_u32(w, T "max_position_embeddings", (uint32_t)t->max_position_embeddings));
    TRY(em_gguf_set_f64(w, T "rope_theta", t->rope_theta));
    TRY(em_gguf_set_f32(w, T "rms_norm_eps", t->rms_norm_eps));
    TRY(em_gguf_set_bool(w, T "tie_word_embeddings", t->tie_word_embeddings));
    TRY(put_opt_i32(w, T "bos_token_id", t->bos_token_id));
    TRY(put_opt_i32(w, T "eos_token_id", t->eos_token_id));
    TRY(em_gguf_set_bool(w, G "do_sample", g->do_sample));
    TRY(em_gguf_set_i32(w, G "top_k", g->top_k));
    TRY(em_gguf_set_f32(w, G "top_p", g->top_p));
    TRY(em_gguf_set_f32(w, G "temperature", g->temperature));
    TRY(em_gguf_set_f32(w, G "repetition_penalty", g->repetition_penalty));
    TRY(put_opt_i32(w, G "max_new_tokens", g->max_new_tokens));
    TRY(put_opt_i32(w, G "max_length", g->max_length));
    TRY(put_opt_i32(w, G "pad_token_id", g->pad_token_id));
    if (g->n_eos > 0) {
        int32_t ids[EM_CFG_MAX_EOS];
        uint8_t le[4 * EM_CFG_MAX_EOS];
        for (int i = 0; i < g->n_eos && i < EM_CFG_MAX_EOS; i++) {
            ids[i] = g->eos_token_id[i];
            for (int b = 0; b < 4; b++) le[4 * i + b] = (uint8_t)((uint32_t)ids[i] >> (8 * b));
        }
        TRY(em_gguf_set_arr(w, G "eos_token_id", EM_GGUF_I32, le, (uint64_t)g->n_eos));
    }
    TRY(em_gguf_set_i32(w, "qwen2audio.audio_token_index", c->audio_token_index));
    if (c->torch_dtype[0])
        TRY(em_gguf_set_str(w, "qwen2audio.torch_dtype", c->torch_dtype, strlen(c->torch_dtype)));
    return EM_OK;
}

static int is_int(int t)
{
    return t == EM_GGUF_U8 || t == EM_GGUF_I8 || t == EM_GGUF_U16 || t == EM_GGUF_I16 ||
           t == EM_GGUF_U32 || t == EM_GGUF_I32 || t == EM_GGUF_U64 || t == EM_GGUF_I64;
}

/* One metadata value as JSON (NULL: a type config.json never holds here). */
static json_t *to_json(const struct em_gguf_value *v)
{
    if (is_int(v->type)) return json_integer((json_int_t)v->i);
    if (v->type == EM_GGUF_BOOL) return json_boolean(v->u != 0);
    if (v->type == EM_GGUF_F32 || v->type == EM_GGUF_F64) return json_real(v->f);
    if (v->type == EM_GGUF_STR) return json_stringn(v->str.s, (size_t)v->str.len);
    if (v->type == EM_GGUF_ARR && is_int(v->arr_type) && v->n <= EM_CFG_MAX_EOS) {
        json_t *a = json_array();
        for (uint64_t i = 0; a && i < v->n; i++)
            json_array_append_new(a, json_integer((json_int_t)em_gguf_arr_int(v, i)));
        return a;
    }
    return NULL;
}

/* Moves every key under prefix into obj (field name = the rest of the key). */
static em_err gather(const struct em_gguf *g, const char *prefix, json_t *obj, const char *file,
                     struct em_errbuf *eb)
{
    size_t pl = strlen(prefix);
    for (size_t i = 0; i < em_gguf_n_kv(g); i++) {
        const char *k = em_gguf_key(g, i);
        if (strncmp(k, prefix, pl) != 0 || strchr(k + pl, '.')) continue;
        json_t *v = to_json(em_gguf_value(g, i));
        if (!v) return em_errf(eb, EM_E_MODEL, "%s: key '%s' has a type the config cannot hold",
                               file, k);
        if (json_object_set_new(obj, k + pl, v) != 0) return EM_E_NOMEM;
    }
    return EM_OK;
}

em_err em_gguf_read_config(const struct em_gguf *g, const char *file, struct em_qa_config *c,
                           struct em_errbuf *eb)
{
    struct em_gguf_str arch = {0};
    if (em_gguf_get_str(g, "general.architecture", &arch, NULL) != EM_OK ||
        arch.len != strlen(EM_GGUF_ARCH) || memcmp(arch.s, EM_GGUF_ARCH, arch.len) != 0)
        return em_errf(eb, EM_E_MODEL, "%s: general.architecture is not \"%s\"", file,
                       EM_GGUF_ARCH);
    em_err rc = EM_E_NOMEM;
    char *cfg = NULL, *gen = NULL;
    json_t *root = json_object(), *audio = json_object(), *text = json_object(),
           *gj = json_object();
    if (!root || !audio || !text || !gj) goto done;
    if ((rc = gather(g, A, audio, file, eb)) != EM_OK || (rc = gather(g, T, text, file, eb)) != EM_OK ||
        (rc = gather(g, G, gj, file, eb)) != EM_OK || (rc = gather(g, "qwen2audio.", root, file, eb)) != EM_OK)
        goto done;
    rc = EM_E_NOMEM;
    if (json_object_set(root, "audio_config", audio) || json_object_set(root, "text_config", text))
        goto done;
    cfg = json_dumps(root, JSON_COMPACT);
    gen = json_dumps(gj, JSON_COMPACT);
    if (!cfg || !gen) goto done;
    rc = em_qa_config_parse(cfg, strlen(cfg), gen, strlen(gen), c, eb);
    if (rc != EM_OK && eb) {
        char d[sizeof eb->msg];
        snprintf(d, sizeof d, "%s", eb->msg);
        em_errf(eb, rc, "%s: %s", file, d);
    }
done:
    free(cfg);
    free(gen);
    json_decref(root);
    json_decref(audio);
    json_decref(text);
    json_decref(gj);
    return rc;
}

/* ---- tokenizer --------------------------------------------------------------------------- */

em_err em_gguf_put_tokenizer(struct em_gguf_writer *w, const struct em_tok *tok,
                             const struct em_qa_config *c, const char *chat_template)
{
    struct em_tok_spec s;
    TRY(em_tok_export(tok, &s));
    em_err rc = EM_E_NOMEM;
    struct em_gguf_str *tk = malloc((s.n_tokens + s.n_merges + 1) * sizeof *tk);
    uint8_t *types = malloc(4 * s.n_tokens + 1);
    if (!tk || !types) goto done;
    for (size_t i = 0; i < s.n_tokens; i++) {
        tk[i] = (struct em_gguf_str){s.tokens[i].s, s.tokens[i].len};
        for (int b = 0; b < 4; b++) types[4 * i + b] = (uint8_t)((uint32_t)s.types[i] >> (8 * b));
    }
    for (size_t i = 0; i < s.n_merges; i++)
        tk[s.n_tokens + i] = (struct em_gguf_str){s.merges[i].s, s.merges[i].len};
    if ((rc = em_gguf_set_str(w, "tokenizer.ggml.model", "gpt2", 4)) != EM_OK ||
        (rc = em_gguf_set_str(w, "tokenizer.ggml.pre", "qwen2", 5)) != EM_OK ||
        (rc = em_gguf_set_arr_str(w, "tokenizer.ggml.tokens", tk, s.n_tokens)) != EM_OK ||
        (rc = em_gguf_set_arr(w, "tokenizer.ggml.token_type", EM_GGUF_I32, types, s.n_tokens)) != EM_OK ||
        (rc = em_gguf_set_arr_str(w, "tokenizer.ggml.merges", tk + s.n_tokens, s.n_merges)) != EM_OK ||
        (rc = em_gguf_set_bool(w, "qwen2audio.tokenizer.ignore_merges", s.ignore_merges)) != EM_OK)
        goto done;
    int eos = c->gen.n_eos > 0 ? c->gen.eos_token_id[0] : c->text.eos_token_id;
    if (eos >= 0 && (rc = em_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)eos)) != EM_OK)
        goto done;
    if (c->text.bos_token_id >= 0 &&
        (rc = em_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)c->text.bos_token_id)) != EM_OK)
        goto done;
    if (c->gen.pad_token_id >= 0 &&
        (rc = em_gguf_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)c->gen.pad_token_id)) != EM_OK)
        goto done;
    if (chat_template)
        rc = em_gguf_set_str(w, "tokenizer.chat_template", chat_template, strlen(chat_template));
done:
    free(tk);
    free(types);
    em_tok_spec_free(&s);
    return rc;
}

static em_err str_array(const struct em_gguf *g, const char *key, const char *file,
                        const struct em_gguf_value **out, struct em_errbuf *eb)
{
    const struct em_gguf_value *v = em_gguf_find(g, key);
    if (!v || v->type != EM_GGUF_ARR || v->arr_type != EM_GGUF_STR)
        return em_errf(eb, EM_E_MODEL, "%s: %s is missing or not a string array", file, key);
    *out = v;
    return EM_OK;
}

em_err em_gguf_read_tokenizer(const struct em_gguf *g, const char *file, struct em_tok **out,
                              struct em_errbuf *eb)
{
    const struct em_gguf_value *tokens = NULL, *merges = NULL, *types;
    struct em_gguf_str model = {0};
    *out = NULL;
    if (em_gguf_get_str(g, "tokenizer.ggml.model", &model, NULL) != EM_OK || model.len != 4 ||
        memcmp(model.s, "gpt2", 4) != 0)
        return em_errf(eb, EM_E_MODEL, "%s: tokenizer.ggml.model is not \"gpt2\"", file);
    TRY(str_array(g, "tokenizer.ggml.tokens", file, &tokens, eb));
    TRY(str_array(g, "tokenizer.ggml.merges", file, &merges, eb));
    types = em_gguf_find(g, "tokenizer.ggml.token_type");
    if (types && (types->type != EM_GGUF_ARR || types->arr_type != EM_GGUF_I32 ||
                  types->n != tokens->n))
        return em_errf(eb, EM_E_MODEL, "%s: tokenizer.ggml.token_type is not an i32 array of "
                       "%llu entries", file, (unsigned long long)tokens->n);
    int ignore = 0;
    if (em_gguf_find(g, "qwen2audio.tokenizer.ignore_merges"))
        TRY(em_gguf_get_bool(g, "qwen2audio.tokenizer.ignore_merges", &ignore, eb));
    /* struct em_gguf_str and struct em_tok_str differ in the length's type: copy the views */
    size_t nt = (size_t)tokens->n, nm = (size_t)merges->n;
    struct em_tok_str *ts = malloc((nt + nm + 1) * sizeof *ts);
    int32_t *ty = types ? malloc(nt * sizeof *ty + 1) : NULL;
    em_err rc = EM_E_NOMEM;
    if (!ts || (types && !ty)) goto done;
    for (size_t i = 0; i < nt; i++) {
        ts[i] = (struct em_tok_str){tokens->strs[i].s, (size_t)tokens->strs[i].len};
        if (ty) ty[i] = (int32_t)em_gguf_arr_int(types, i);
    }
    for (size_t i = 0; i < nm; i++)
        ts[nt + i] = (struct em_tok_str){merges->strs[i].s, (size_t)merges->strs[i].len};
    struct em_tok_spec spec = {nt, ts, ty, nm, ts + nt, ignore != 0, NULL};
    char what[512];
    snprintf(what, sizeof what, "%s: tokenizer.ggml.*", file);
    rc = em_tok_load_spec(&spec, what, out, eb);
done:
    free(ts);
    free(ty);
    return rc;
}

em_err em_tok_load_gguf(const char *path, struct em_tok **out, struct em_errbuf *eb)
{
    struct em_gguf *g = NULL;
    *out = NULL;
    em_err rc = em_gguf_open(path, &g, eb);
    if (rc == EM_OK) rc = em_gguf_read_tokenizer(g, path, out, eb);
    em_gguf_close(g);
    return rc;
}
