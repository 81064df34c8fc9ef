/* model/model.c - the facade over the model runtime (model/model.h).
 *
 * Load:     dir -> em_ckpt (config + mapped safetensors) + em_tok + em_mel + em_encoder
 *           + em_projector + em_dec; form; identity = name @ sha256(config.json, every
 *           shard's header and 64 data samples)[:12] : dtype : backend.
 * Annotate: pcm[n] -> windows (<= 480000 samples) -> per window:
 *           mel[128, 3000] -> encoder [N, d_model] -> projector [N, hidden]
 *           -> ids_p (prompt p, N <|AUDIO|>) for p < P
 *           -> prefill of the prefix shared by every ids_p (holds all N audio rows) into kv
 *           -> em_generate_batch(kv, ids_0..ids_P-1): each prompt's own prefill in a cache
 *              over kv, then all decoded together (one weight pass per step) -> text[w][p]
 *           then merges (model/text/answer.h) into caption / transcript / events / answers. */
#include "model/model.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/clock.h"
#include "model/text/answer.h"
#include "model/audio/chunk.h"
#include "model/qwen2audio/config.h"
#include "model/qwen2audio/decoder.h"
#include "model/audio/encoder.h"
#include "model/family.h"
#include "model/gen/engine.h"
#include "model/gen/generate.h"
#include "model/loader/gguf.h"
#include "model/loader/safetensors.h"
#include "model/audio/mel.h"
#include "model/qwen2audio/projector.h"
#include "model/kernels/backend.h"
#include "model/text/prompt.h"
#include "model/text/tokenizer.h"
#include "model/whisper/whisper.h"

#define MAX_PATH 4096

struct em_model {
    const struct em_family *family; /* model/family.h; Whisper uses wh and none of the rest */
    struct em_whisper *wh;
    struct em_ckpt *ck;       /* owns the mappings every weight view points into */
    struct em_tok *tok;
    struct em_mel *mel;
    struct em_encoder *enc;
    struct em_projector proj; /* resident on be (the CPU: views into ck) */
    const struct em_backend *be; /* em_backend_open(opts.device); encoder, projector, decoder */
    bool own_be;                 /* be was opened here (not opts.backend) */
    struct em_dec *dec;
    enum em_model_form form;  /* BASE or CHAT */
    struct em_gen_params gen; /* generation_config.json defaults */
    char name[EM_MODEL_MAX_NAME + 1];
    char checksum[65];
    char dtype[8];
    char identity[EM_MODEL_IDENTITY_MAX];
};

struct em_model_opts em_model_opts_default(void)
{
    return (struct em_model_opts){.form = EM_MODEL_FORM_AUTO, .name = NULL};
}

/* ---- load ------------------------------------------------------------------------------ */

static int is_file(const char *dir, const char *name)
{
    char p[MAX_PATH];
    struct stat sb;
    return snprintf(p, sizeof p, "%s/%s", dir, name) < (int)sizeof p && stat(p, &sb) == 0 &&
           S_ISREG(sb.st_mode);
}

/* The files em_ckpt_open / em_tok_load need, checked first so the detail names the file
 * (the loaders' own messages are about content). */
static em_err check_files(const char *dir, struct em_errbuf *eb)
{
    struct stat sb;
    if (strlen(dir) > MAX_PATH - 64) return em_errf(eb, EM_E_ARG, "%.64s...: path too long", dir);
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return em_errf(eb, EM_E_NOTFOUND, "%s: no such checkpoint directory", dir);
    if (!is_file(dir, "config.json"))
        return em_errf(eb, EM_E_NOTFOUND, "%s/config.json: missing", dir);
    if (is_file(dir, "tokenizer.json")) return EM_OK;
    if (!is_file(dir, "vocab.json"))
        return em_errf(eb, EM_E_NOTFOUND, "%s/vocab.json: missing (and no tokenizer.json)", dir);
    if (!is_file(dir, "merges.txt"))
        return em_errf(eb, EM_E_NOTFOUND, "%s/merges.txt: missing (and no tokenizer.json)", dir);
    return EM_OK;
}

/* Instruct checkpoints ship a chat template (chat_template.jinja, or a "chat_template"
 * string in tokenizer_config.json); base ones do not. */
static em_err detect_form(const char *dir, enum em_model_form *form, struct em_errbuf *eb)
{
    if (is_file(dir, "chat_template.jinja")) {
        *form = EM_MODEL_FORM_CHAT;
        return EM_OK;
    }
    char p[MAX_PATH], *text = NULL;
    size_t len = 0;
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    em_err rc = em_cfg_read_file(p, 1, &text, &len, eb);
    if (rc != EM_OK) return rc;
    json_t *j = text ? json_loadb(text, len, 0, NULL) : NULL;
    free(text);
    if (text && !json_is_object(j)) {
        json_decref(j);
        return em_errf(eb, EM_E_MODEL, "%s: not a JSON object", p);
    }
    *form = json_is_string(json_object_get(j, "chat_template")) ? EM_MODEL_FORM_CHAT
                                                                 : EM_MODEL_FORM_BASE;
    json_decref(j);
    return EM_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

#define SAMPLE_BLOCKS 64   /* data samples hashed per safetensors file */
#define SAMPLE_BYTES 4096  /* bytes per sample */

/* Hashes "file\0" + the first head_len bytes + the file size + SAMPLE_BLOCKS blocks of
 * SAMPLE_BYTES spread evenly over [head_len, size) (first and last included). The head pins
 * names, dtypes, shapes and offsets (and, for a GGUF, config and tokenizer); the samples tell
 * apart two checkpoints of one shape (a fine-tune) without reading 16 GB. */
static em_err hash_head_and_samples(EVP_MD_CTX *c, FILE *f, const char *p, const char *file,
                                    uint64_t head_len, uint64_t size, struct em_errbuf *eb)
{
    em_err rc = EM_OK;
    uint64_t got = 0;
    char *buf = malloc(SAMPLE_BYTES);
    if (!buf) return EM_E_NOMEM;
    EVP_DigestUpdate(c, file, strlen(file) + 1);
    if (fseeko(f, 0, SEEK_SET) != 0) rc = em_errf(eb, EM_E_IO, "%s: cannot seek", p);
    while (rc == EM_OK && got < head_len) {
        size_t want = head_len - got < SAMPLE_BYTES ? (size_t)(head_len - got) : SAMPLE_BYTES;
        if (fread(buf, 1, want, f) != want) rc = em_errf(eb, EM_E_MODEL, "%s: header truncated", p);
        else EVP_DigestUpdate(c, buf, want);
        got += want;
    }
    if (rc == EM_OK) EVP_DigestUpdate(c, &size, sizeof size);
    uint64_t span = size > head_len ? size - head_len : 0;
    for (int k = 0; rc == EM_OK && span > 0 && k < SAMPLE_BLOCKS; k++) {
        uint64_t room = span > SAMPLE_BYTES ? span - SAMPLE_BYTES : 0;
        uint64_t off = head_len + room / (SAMPLE_BLOCKS - 1) * (uint64_t)k;
        if (k == SAMPLE_BLOCKS - 1) off = head_len + room;
        size_t want = span < SAMPLE_BYTES ? (size_t)span : SAMPLE_BYTES;
        if (fseeko(f, (off_t)off, SEEK_SET) != 0 || fread(buf, 1, want, f) != want)
            rc = em_errf(eb, EM_E_IO, "%s: cannot read at %llu", p, (unsigned long long)off);
        else
            EVP_DigestUpdate(c, buf, want);
    }
    free(buf);
    return rc;
}

/* A safetensors file: its head is the u64 header length and the header JSON. */
static em_err hash_safetensors(EVP_MD_CTX *c, const char *dir, const char *file,
                               struct em_errbuf *eb)
{
    char p[MAX_PATH];
    if (snprintf(p, sizeof p, "%s/%s", dir, file) >= (int)sizeof p)
        return em_errf(eb, EM_E_ARG, "%s: path too long", file);
    FILE *f = fopen(p, "rb");
    if (!f) return em_errf(eb, EM_E_IO, "%s: %s", p, strerror(errno));
    uint8_t len8[8];
    em_err rc = EM_OK;
    uint64_t n = 0;
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) rc = em_errf(eb, EM_E_IO, "%s: %s", p, strerror(errno));
    if (rc == EM_OK && fread(len8, 1, 8, f) != 8)
        rc = em_errf(eb, EM_E_MODEL, "%s: shorter than 8 bytes", p);
    for (int i = 7; rc == EM_OK && i >= 0; i--) n = n << 8 | len8[i];
    if (rc == EM_OK && (n > EM_ST_MAX_HEADER || n > (uint64_t)sb.st_size - 8))
        rc = em_errf(eb, EM_E_MODEL, "%s: header of %llu bytes over %u or past the file", p,
                     (unsigned long long)n, EM_ST_MAX_HEADER);
    if (rc == EM_OK) rc = hash_head_and_samples(c, f, p, file, 8 + n, (uint64_t)sb.st_size, eb);
    fclose(f);
    return rc;
}

/* A GGUF file: its head is its first GGUF_HASH_HEAD bytes, which hold the metadata (config,
 * tokenizer: a few MB for the Qwen2 vocabulary) and the tensor infos. */
#define GGUF_HASH_HEAD (16u << 20)
static em_err hash_gguf(EVP_MD_CTX *c, const char *path, struct em_errbuf *eb)
{
    FILE *f = fopen(path, "rb");
    if (!f) return em_errf(eb, EM_E_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    em_err rc = fstat(fileno(f), &sb) == 0 ? EM_OK : em_errf(eb, EM_E_IO, "%s: %s", path, strerror(errno));
    uint64_t head = GGUF_HASH_HEAD;
    if (rc == EM_OK && head > (uint64_t)sb.st_size) head = (uint64_t)sb.st_size;
    if (rc == EM_OK) rc = hash_head_and_samples(c, f, path, "model.gguf", head, (uint64_t)sb.st_size, eb);
    fclose(f);
    return rc;
}

static em_err hash_file(EVP_MD_CTX *c, const char *dir, const char *file, struct em_errbuf *eb)
{
    char p[MAX_PATH], *text = NULL;
    size_t len = 0;
    snprintf(p, sizeof p, "%s/%s", dir, file);
    em_err rc = em_cfg_read_file(p, 0, &text, &len, eb);
    if (rc != EM_OK) return rc;
    EVP_DigestUpdate(c, file, strlen(file) + 1);
    EVP_DigestUpdate(c, text, len);
    free(text);
    return EM_OK;
}

/* Shard names of model.safetensors.index.json (sorted, unique) or {"model.safetensors"}. */
static em_err shard_names(const char *dir, char ***out, size_t *n, struct em_errbuf *eb)
{
    char p[MAX_PATH], *text = NULL;
    size_t len = 0;
    *out = NULL;
    *n = 0;
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    em_err rc = em_cfg_read_file(p, 1, &text, &len, eb);
    if (rc != EM_OK) return rc;
    if (!text) {
        if (!(*out = malloc(sizeof **out)) || !((*out)[0] = strdup("model.safetensors"))) {
            free(*out);
            *out = NULL;
            return EM_E_NOMEM;
        }
        *n = 1;
        return EM_OK;
    }
    json_t *j = json_loadb(text, len, 0, NULL), *map = json_object_get(j, "weight_map"), *v;
    free(text);
    const char *k;
    size_t cap = json_object_size(map);
    char **names = calloc(cap ? cap : 1, sizeof *names);
    if (!json_is_object(map)) rc = em_errf(eb, EM_E_MODEL, "%s: no weight_map object", p);
    else if (!names) rc = EM_E_NOMEM;
    json_object_foreach(map, k, v) {
        if (rc != EM_OK) break;
        if (!json_is_string(v)) {
            rc = em_errf(eb, EM_E_MODEL, "%s: weight_map['%s'] is not a string", p, k);
            break;
        }
        size_t i = 0;
        while (i < *n && strcmp(names[i], json_string_value(v)) != 0) i++;
        if (i == *n && !(names[(*n)++] = strdup(json_string_value(v)))) rc = EM_E_NOMEM;
    }
    json_decref(j);
    if (rc == EM_OK) qsort(names, *n, sizeof *names, cmp_str);
    *out = names;
    return rc;
}

/* gguf: dir is a .gguf file (its config and tokenizer are inside it). */
static em_err compute_checksum(const char *dir, bool gguf, char hex[65], struct em_errbuf *eb)
{
    char **shards = NULL;
    size_t n = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    em_err rc = c ? EM_OK : EM_E_NOMEM;
    if (rc == EM_OK && EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) rc = EM_E_INTERNAL;
    if (rc == EM_OK && gguf) rc = hash_gguf(c, dir, eb);
    if (rc == EM_OK && !gguf) rc = hash_file(c, dir, "config.json", eb);
    if (rc == EM_OK && !gguf) rc = shard_names(dir, &shards, &n, eb);
    for (size_t i = 0; rc == EM_OK && i < n; i++) rc = hash_safetensors(c, dir, shards[i], eb);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (rc == EM_OK && EVP_DigestFinal_ex(c, md, &mdlen) != 1) rc = EM_E_INTERNAL;
    for (unsigned i = 0; rc == EM_OK && i < 32 && i < mdlen; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    for (size_t i = 0; i < n; i++) free(shards[i]);
    free(shards);
    EVP_MD_CTX_free(c);
    return rc;
}

/* The directory's last component (or opts' name), restricted to [A-Za-z0-9._-]. */
static em_err set_name(struct em_model *m, const char *dir, const char *given, struct em_errbuf *eb)
{
    const char *s = given;
    size_t n;
    if (s) {
        n = strlen(s);
        if (n == 0 || n > EM_MODEL_MAX_NAME)
            return em_errf(eb, EM_E_ARG, "model name: %zu bytes, expected 1..%d", n, EM_MODEL_MAX_NAME);
    } else {
        n = strlen(dir);
        while (n > 1 && dir[n - 1] == '/') n--;
        s = dir + n;
        while (s > dir && s[-1] != '/') s--;
        n = (size_t)(dir + n - s);
        if (n > EM_MODEL_MAX_NAME) n = EM_MODEL_MAX_NAME;
        if (n == 0 || (n == 1 && *s == '/')) s = "model", n = 5;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        m->name[i] = ok ? c : '_';
    }
    m->name[n] = '\0';
    return EM_OK;
}

static void set_dtype(struct em_model *m)
{
    int dt = em_ckpt_dtype(m->ck);
    snprintf(m->dtype, sizeof m->dtype, "%s",
             dt == EM_DT_BF16   ? "bf16"
             : dt == EM_DT_F16  ? "f16"
             : dt == EM_DT_F32  ? "f32"
             : dt == EM_DT_Q8_0 ? "q8_0"
             : dt == EM_DT_Q4_0 ? "q4_0"
                                : "unknown");
}

/* A path naming a regular file is a GGUF written by `earmark convert`. */
static bool is_gguf_path(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Renders and encodes each task once, so a tokenizer without the audio or chat tokens is
 * a load error, not an error on every clip. */
static em_err check_prompts(const struct em_model *m, struct em_errbuf *eb)
{
    for (const struct em_prompt_task *t = em_prompt_tasks; t->name; t++) {
        struct em_prompt p = {m->form == EM_MODEL_FORM_CHAT ? EM_PROMPT_CHAT : EM_PROMPT_BASE,
                              t->name, NULL};
        int32_t *ids = NULL;
        size_t n = 0;
        em_err rc = em_prompt_tokens(m->tok, &p, 1, &ids, &n, eb);
        free(ids);
        if (rc != EM_OK) return rc;
    }
    return EM_OK;
}

/* A Whisper checkpoint (CTranslate2 files, or the Hugging Face layout): identity = name @
 * sha256(config.json, the weights file's head and samples)[:12] : dtype : backend. */
static em_err load_whisper(const char *dir, const struct em_model_opts *o, struct em_model **out,
                           struct em_errbuf *eb)
{
    char p[MAX_PATH];
    struct stat sb;
    em_err rc = EM_E_NOMEM;
    const char *weights = "model.bin"; /* CTranslate2; else the Hugging Face layout's */
    int gguf = stat(dir, &sb) == 0 && S_ISREG(sb.st_mode); /* from `earmark convert` */
    if (gguf && snprintf(p, sizeof p, "%s", dir) < (int)sizeof p) {
        weights = "gguf";
    } else if (snprintf(p, sizeof p, "%s/%s", dir, weights) >= (int)sizeof p || stat(p, &sb) != 0) {
        weights = "model.safetensors";
        if (snprintf(p, sizeof p, "%s/%s", dir, weights) >= (int)sizeof p || stat(p, &sb) != 0)
            weights = "model.safetensors.index.json"; /* shards: the index is hashed */
        if (snprintf(p, sizeof p, "%s/%s", dir, weights) >= (int)sizeof p || stat(p, &sb) != 0)
            return em_errf(eb, EM_E_NOTFOUND, "%s: neither model.bin (CTranslate2) nor "
                           "model.safetensors (Hugging Face; or its .index.json) is there", dir);
    }
    struct em_model *m = calloc(1, sizeof *m);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    FILE *f = NULL;
    if (!m || !c) goto fail;
    m->family = &em_families[EM_FAMILY_WHISPER];
    m->form = EM_MODEL_FORM_BASE;
    if ((rc = set_name(m, dir, o->name, eb)) != EM_OK) goto fail;
    if ((rc = em_whisper_load_as(dir, o->weights ? EM_WT_Q8_0 : -1, &m->wh, eb)) != EM_OK) goto fail;
    rc = EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1 ? EM_OK : EM_E_INTERNAL;
    if (rc == EM_OK && !gguf) rc = hash_file(c, dir, "config.json", eb);
    if (rc == EM_OK && !(f = fopen(p, "rb"))) rc = em_errf(eb, EM_E_IO, "%s: %s", p, strerror(errno));
    if (rc == EM_OK) /* the head holds the spec and the first variables' names and shapes */
        rc = hash_head_and_samples(c, f, p, weights, (uint64_t)sb.st_size < 65536 ? (uint64_t)sb.st_size : 65536,
                                   (uint64_t)sb.st_size, eb);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (rc == EM_OK && EVP_DigestFinal_ex(c, md, &mdlen) != 1) rc = EM_E_INTERNAL;
    for (unsigned i = 0; rc == EM_OK && i < 32 && i < mdlen; i++)
        snprintf(m->checksum + 2 * i, 3, "%02x", md[i]);
    if (rc != EM_OK) goto fail;
    struct em_whisper_info info;
    em_whisper_info(m->wh, &info);
    snprintf(m->dtype, sizeof m->dtype, "%s", info.dtype);
    snprintf(m->identity, sizeof m->identity, "%s@%.12s:%s:%s", m->name, m->checksum, m->dtype,
             em_model_backend(m));
    fclose(f);
    EVP_MD_CTX_free(c);
    *out = m;
    return EM_OK;
fail:
    if (f) fclose(f);
    EVP_MD_CTX_free(c);
    em_model_free(m);
    return rc;
}

em_err em_model_load(const char *dir, const struct em_model_opts *opts, struct em_model **out,
                     struct em_errbuf *eb)
{
    struct em_model_opts o = opts ? *opts : em_model_opts_default();
    *out = NULL;
    if (!dir || !*dir) return em_errf(eb, EM_E_ARG, "model: no checkpoint directory given");
    if (o.form != EM_MODEL_FORM_AUTO && o.form != EM_MODEL_FORM_BASE && o.form != EM_MODEL_FORM_CHAT)
        return em_errf(eb, EM_E_ARG, "model: form %d is not auto, base or chat", (int)o.form);
    const struct em_family *fam = NULL;
    em_err rc = em_family_detect(dir, &fam, eb);
    if (rc != EM_OK) return rc;
    if (o.weights && strcmp(o.weights, "q8_0") != 0)
        return em_errf(eb, EM_E_ARG, "model: weights '%.40s' is not q8_0", o.weights);
    if (fam->id == EM_FAMILY_WHISPER) {
        const struct em_backend *be = o.backend;
        if (!be && (rc = em_backend_open(o.device, &be, eb)) != EM_OK) return rc;
        if (be != em_backend_cpu()) {
            if (!o.backend) em_backend_close(be);
            return em_errf(eb, EM_E_UNSUPPORTED, "model %s: the Whisper family runs on the cpu "
                           "device only", dir);
        }
        return load_whisper(dir, &o, out, eb);
    }
    if (o.weights)
        return em_errf(eb, EM_E_ARG, "model: %s: quantizing at load is for Whisper checkpoints; "
                       "convert Qwen2-Audio with `earmark convert --type q8_0`", dir);
    bool gguf = is_gguf_path(dir);
    rc = gguf ? EM_OK : check_files(dir, eb);
    if (rc != EM_OK) return rc;
    struct em_model *m = calloc(1, sizeof *m);
    if (!m) return EM_E_NOMEM;
    m->family = fam;
    if ((rc = set_name(m, dir, o.name, eb)) != EM_OK) goto fail;
    m->form = o.form;
    if (!gguf && m->form == EM_MODEL_FORM_AUTO && (rc = detect_form(dir, &m->form, eb)) != EM_OK)
        goto fail;
    if ((rc = em_ckpt_open(dir, &m->ck, eb)) != EM_OK) goto fail;
    if (gguf) {
        /* config, tokenizer and chat template travel inside the file (model/tools/convert.h) */
        const struct em_gguf *g = em_ckpt_gguf(m->ck);
        if (!g) {
            rc = em_errf(eb, EM_E_MODEL, "%s: not a GGUF file", dir);
            goto fail;
        }
        if (m->form == EM_MODEL_FORM_AUTO)
            m->form = em_gguf_find(g, "tokenizer.chat_template") ? EM_MODEL_FORM_CHAT : EM_MODEL_FORM_BASE;
        if ((rc = em_gguf_read_tokenizer(g, dir, &m->tok, eb)) != EM_OK) goto fail;
    } else if ((rc = em_tok_load(dir, &m->tok, eb)) != EM_OK) {
        goto fail;
    }
    if ((rc = em_mel_new(&m->mel)) != EM_OK) goto fail;
    if (o.backend)
        m->be = o.backend;
    else if ((rc = em_backend_open(o.device, &m->be, eb)) != EM_OK)
        goto fail;
    else
        m->own_be = true;
    if ((rc = em_encoder_new_be(m->ck, m->be, &m->enc, eb)) != EM_OK) goto fail;
    if ((rc = em_projector_init_be(m->ck, m->be, &m->proj, eb)) != EM_OK) goto fail;
    if ((rc = em_dec_open_be(m->ck, m->be, &m->dec, eb)) != EM_OK) goto fail;
    if ((rc = check_prompts(m, eb)) != EM_OK) goto fail;
    if ((rc = compute_checksum(dir, gguf, m->checksum, eb)) != EM_OK) goto fail;
    m->gen = em_gen_params_from(&em_ckpt_config(m->ck)->gen);
    set_dtype(m);
    snprintf(m->identity, sizeof m->identity, "%s@%.12s:%s:%s", m->name, m->checksum, m->dtype,
             em_model_backend(m));
    *out = m;
    return EM_OK;
fail:
    em_model_free(m);
    return rc;
}

void em_model_free(struct em_model *m)
{
    if (!m) return;
    em_whisper_free(m->wh);
    em_dec_free(m->dec);
    em_projector_free(&m->proj);
    em_encoder_free(m->enc);
    if (m->own_be) em_backend_close(m->be);
    em_mel_free(m->mel);
    em_tok_free(m->tok);
    em_ckpt_close(m->ck);
    free(m);
}

const char *em_model_identity(const struct em_model *m) { return m->identity; }
const char *em_model_name(const struct em_model *m) { return m->name; }
const char *em_model_checksum(const struct em_model *m) { return m->checksum; }
const char *em_model_dtype(const struct em_model *m) { return m->dtype; }
const char *em_model_backend(const struct em_model *m)
{
    return m->be ? m->be->ops->name : "cpu"; /* Whisper runs on the CPU backend */
}
enum em_model_form em_model_form(const struct em_model *m) { return m->form; }
const char *em_model_family(const struct em_model *m) { return m->family->name; }

/* ---- annotate ---------------------------------------------------------------------------- */

/* Per-call state: scratch for one window and the resolved prompts. */
struct run {
    const struct em_model *m;
    struct em_prompt prompts[EM_MODEL_MAX_PROMPTS];
    size_t n_prompts;
    struct em_gen_params gen;
    bool (*cancelled)(void *ctx); /* NULL: never */
    void *cancel_ctx;
    struct em_engine *eng; /* NULL: this call decodes on its own */
    float *mel;   /* [128 * 3000] */
    float *enc;   /* [750, d_model] */
    float *emb;   /* [750, hidden] */
    int32_t *ids[EM_MODEL_MAX_PROMPTS];
    size_t n_ids[EM_MODEL_MAX_PROMPTS];
    struct em_model_result *r;
};

static em_err resolve_prompts(struct run *st, const struct em_model_prompt *p, size_t n,
                              struct em_errbuf *eb)
{
    struct em_model_result *r = st->r;
    if (!p || n == 0 || n > EM_MODEL_MAX_PROMPTS)
        return em_errf(eb, EM_E_ARG, "annotate: %zu prompts, expected 1..%d", p ? n : 0,
                       EM_MODEL_MAX_PROMPTS);
    if (!(r->names = calloc(n, sizeof *r->names)) || !(r->tasks = calloc(n, sizeof *r->tasks)))
        return EM_E_NOMEM;
    r->n_prompts = n;
    enum em_prompt_form form = st->m->form == EM_MODEL_FORM_CHAT ? EM_PROMPT_CHAT : EM_PROMPT_BASE;
    for (size_t i = 0; i < n; i++) {
        const char *name = p[i].name ? p[i].name : p[i].text ? "prompt" : p[i].task;
        if (!p[i].text && !em_prompt_task_find(p[i].task))
            return em_errf(eb, EM_E_ARG, "annotate: prompt %zu: unknown task '%s' (caption, "
                           "transcript, events)", i, p[i].task ? p[i].task : "(none)");
        if (!em_family_can(st->m->family, p[i].text ? NULL : p[i].task))
            return em_errf(eb, EM_E_UNSUPPORTED, "annotate: model '%s' (%s) cannot answer %s%s%s; "
                           "it does: %s", st->m->name, st->m->family->name,
                           p[i].text ? "free-text prompts" : "task '", p[i].text ? "" : p[i].task,
                           p[i].text ? "" : "'", em_family_tasks_str(st->m->family));
        size_t len = strnlen(name, EM_MODEL_MAX_NAME + 1);
        if (len == 0 || len > EM_MODEL_MAX_NAME)
            return em_errf(eb, EM_E_ARG, "annotate: prompt %zu: name of %zu bytes, expected 1..%d",
                           i, len, EM_MODEL_MAX_NAME);
        for (size_t k = 0; k < len; k++)
            if ((unsigned char)name[k] < 0x20)
                return em_errf(eb, EM_E_ARG, "annotate: prompt %zu: control byte in its name", i);
        for (size_t k = 0; k < i; k++)
            if (strcmp(r->names[k], name) == 0)
                return em_errf(eb, EM_E_ARG, "annotate: prompt name '%s' given twice", name);
        st->prompts[i] = (struct em_prompt){form, p[i].text ? NULL : p[i].task, p[i].text};
        char *check = NULL;
        em_err rc = em_prompt_render(&st->prompts[i], &check, eb);
        free(check);
        if (rc != EM_OK) return rc;
        if (!(r->names[i] = strdup(name))) return EM_E_NOMEM;
        if (!p[i].text && !(r->tasks[i] = strdup(p[i].task))) return EM_E_NOMEM;
    }
    st->n_prompts = n;
    return EM_OK;
}

static em_err apply_override(struct em_gen_params *g, const struct em_gen_params_override *o,
                             struct em_errbuf *eb)
{
    if (!o) return EM_OK;
    if (o->max_new_tokens < 0 || o->max_new_tokens > EM_MODEL_MAX_NEW_TOKENS)
        return em_errf(eb, EM_E_ARG, "annotate: max_new_tokens %d, expected 1..%d (0: default)",
                       o->max_new_tokens, EM_MODEL_MAX_NEW_TOKENS);
    if (!(o->repetition_penalty >= 0) || o->repetition_penalty > 100)
        return em_errf(eb, EM_E_ARG, "annotate: repetition_penalty %g, expected (0, 100] (0: default)",
                       (double)o->repetition_penalty);
    if (!(o->temperature >= 0) || o->temperature > 100)
        return em_errf(eb, EM_E_ARG, "annotate: temperature %g, expected (0, 100] (0: default)",
                       (double)o->temperature);
    if (!(o->top_p >= 0) || o->top_p > 1)
        return em_errf(eb, EM_E_ARG, "annotate: top_p %g, expected (0, 1] (0: default)", (double)o->top_p);
    if (o->top_k < 0) return em_errf(eb, EM_E_ARG, "annotate: top_k %d, expected >= 0 (0: default)", o->top_k);
    if (o->max_new_tokens) g->max_new_tokens = o->max_new_tokens;
    if (o->temperature > 0) g->sampler.temperature = o->temperature;
    if (o->top_k > 0) g->sampler.top_k = o->top_k;
    if (o->top_p > 0) g->sampler.top_p = o->top_p;
    if (o->greedy) g->sampler.do_sample = false;
    if (o->repetition_penalty > 0) g->sampler.repetition_penalty = o->repetition_penalty;
    if (o->set_seed) g->sampler.seed = o->seed;
    return EM_OK;
}

/* Longest prefix all prompts share, at most each prompt's length - 1 (its last id must run
 * to give logits). 0 when it would not hold every audio position, and for a single prompt:
 * em_generate prefills it in its own cache, where sharing would cost a second cache and a
 * copy (750 MB each at 7B size) for nothing. */
static size_t shared_prefix(const struct run *st, int audio_id)
{
    if (st->n_prompts < 2) return 0;
    for (size_t p = 0; p < st->n_prompts; p++)
        if (st->n_ids[p] < 2) return 0;
    size_t n = st->n_ids[0] - 1;
    for (size_t p = 1; p < st->n_prompts; p++) {
        size_t k = 0, lim = st->n_ids[p] - 1 < n ? st->n_ids[p] - 1 : n;
        while (k < lim && st->ids[p][k] == st->ids[0][k]) k++;
        n = k;
    }
    for (size_t p = 0; p < st->n_prompts; p++)
        for (size_t i = n; i < st->n_ids[p]; i++)
            if (st->ids[p][i] == audio_id) return 0;
    return n;
}

static em_err check_cancel(const struct run *st, struct em_errbuf *eb)
{
    if (st->cancelled && st->cancelled(st->cancel_ctx))
        return em_errf(eb, EM_E_CANCELLED, "annotate: cancelled after %zu windows",
                       st->r->n_segments);
    return EM_OK;
}

static em_err cancel_hook(void *ctx, int i, struct em_errbuf *eb)
{
    (void)i;
    return check_cancel(ctx, eb);
}

/* Generates every prompt of window w: with several prompts, one prefill of their shared
 * prefix, then em_generate_batch (each prompt's own prefill in a cache over that one, then
 * all of them decoded together, one weight pass per step); a single prompt (or prompts
 * without a common audio prefix) runs em_generate on its own. */
static em_err run_prompts(struct run *st, struct em_model_segment *seg, int n_audio,
                          struct em_errbuf *eb)
{
    const struct em_model *m = st->m;
    struct em_model_result *r = st->r;
    struct em_gen_result g[EM_MODEL_MAX_PROMPTS];
    struct em_gen_params ps[EM_MODEL_MAX_PROMPTS];
    const int32_t *ids[EM_MODEL_MAX_PROMPTS];
    struct em_gen_hook hook = {cancel_hook, st};
    em_err rc = EM_OK;
    memset(g, 0, sizeof g);
    for (size_t p = 0; rc == EM_OK && p < st->n_prompts; p++) {
        rc = em_prompt_tokens(m->tok, &st->prompts[p], n_audio, &st->ids[p], &st->n_ids[p], eb);
        ps[p] = st->gen;
        ids[p] = st->ids[p];
    }
    size_t shared = rc == EM_OK ? shared_prefix(st, em_dec_audio_token(m->dec)) : 0;
    struct em_kv *kv = NULL;
    double t0 = em_now_s(), t1 = t0;
    if (rc == EM_OK && st->eng) { /* continuous batching with the other clips in flight */
        struct em_engine_times tm = {0};
        rc = em_engine_generate(st->eng, (int)st->n_prompts, ids, st->n_ids, shared, st->emb,
                                n_audio, ps, &hook, g, &tm, eb);
        r->prefill_s += tm.prefill_s;
        r->kv_wait_s += tm.wait_s;
        t1 = em_now_s() - tm.decode_s; /* decode_s counts the engine's decode time only */
    } else if (rc == EM_OK && shared > 0) {
        rc = em_dec_kv_new(m->dec, (int)shared, &kv, eb);
        if (rc == EM_OK)
            rc = em_dec_forward(m->dec, kv, st->ids[0], (int)shared, st->emb, n_audio,
                                EM_DEC_LOGITS_NONE, NULL, eb);
        t1 = em_now_s();
        r->prefill_s += t1 - t0;
        if (rc == EM_OK)
            rc = em_generate_batch(m->dec, kv, (int)st->n_prompts, ids, st->n_ids, ps, &hook, g, eb);
    } else {
        for (size_t p = 0; rc == EM_OK && p < st->n_prompts; p++)
            if ((rc = check_cancel(st, eb)) == EM_OK)
                rc = em_generate(m->dec, st->ids[p], st->n_ids[p], st->emb, n_audio, &st->gen,
                                 &g[p], eb);
    }
    if (shared > 0) r->prompt_tokens += (long)shared;
    for (size_t p = 0; p < st->n_prompts; p++) {
        struct em_model_answer *a = &seg->answers[p];
        a->ids = g[p].ids; /* the answer owns them (also on error, freed with the result) */
        a->n_ids = g[p].n;
        a->stopped = g[p].stopped;
        if (rc != EM_OK) continue;
        r->new_tokens += (long)g[p].n;
        r->prompt_tokens += (long)(st->n_ids[p] - shared);
        rc = em_tok_decode(m->tok, g[p].ids, g[p].n, true, &a->text, NULL);
    }
    r->decode_s += em_now_s() - t1;
    em_kv_free(kv);
    for (size_t p = 0; p < st->n_prompts; p++) {
        free(st->ids[p]);
        st->ids[p] = NULL;
    }
    return rc;
}

/* One window: features, audio rows, every prompt. */
static em_err run_window(struct run *st, const float *pcm, const struct em_chunk *c,
                         struct em_model_segment *seg, struct em_errbuf *eb)
{
    const struct em_model *m = st->m;
    int mel_len = 0, n_tok = 0;
    double t0 = em_now_s();
    em_err rc = em_mel_compute(m->mel, pcm + c->offset, c->n, st->mel, &mel_len);
    em_engine_compute_begin(st->eng); /* no-op without an engine */
    if (rc == EM_OK) rc = em_encoder_run(m->enc, st->mel, mel_len, st->enc, &n_tok, eb);
    if (rc == EM_OK) rc = em_projector_run(&m->proj, st->enc, n_tok, st->emb);
    em_engine_compute_end(st->eng);
    st->r->encode_s += em_now_s() - t0;
    if (rc != EM_OK) return rc;
    seg->start_s = c->start_s;
    seg->end_s = c->end_s;
    seg->audio_tokens = n_tok;
    st->r->audio_tokens += n_tok;
    if (!(seg->answers = calloc(st->n_prompts, sizeof *seg->answers))) return EM_E_NOMEM;
    return run_prompts(st, seg, n_tok, eb);
}

/* Joins the normalised texts of prompt p over the segments with single spaces. */
static char *join_answers(const struct em_model_result *r, size_t p)
{
    size_t cap = 1;
    for (size_t s = 0; s < r->n_segments; s++)
        if (r->segments[s].answers[p].text) cap += strlen(r->segments[s].answers[p].text) + 1;
    char *out = malloc(cap);
    if (!out) return NULL;
    size_t n = 0;
    out[0] = '\0';
    for (size_t s = 0; s < r->n_segments; s++) {
        const char *t = r->segments[s].answers[p].text;
        char *norm = em_answer_text(t, t ? strlen(t) : 0);
        if (!norm) {
            free(out);
            return NULL;
        }
        size_t k = strlen(norm);
        if (k) { /* no separator for an empty window answer */
            if (n) out[n++] = ' ';
            memcpy(out + n, norm, k + 1);
            n += k;
        }
        free(norm);
    }
    return out;
}

static em_err merge(struct em_model_result *r)
{
    struct em_tags tags = {0};
    em_err rc = EM_OK;
    if (!(r->answers = calloc(r->n_prompts, sizeof *r->answers))) return EM_E_NOMEM;
    for (size_t p = 0; rc == EM_OK && p < r->n_prompts; p++) {
        const char *task = r->tasks[p];
        if (!(r->answers[p] = join_answers(r, p))) rc = EM_E_NOMEM;
        else if (!task) continue;
        else if (!strcmp(task, "caption") && !r->caption) {
            if (!(r->caption = strdup(r->answers[p]))) rc = EM_E_NOMEM;
        } else if (!strcmp(task, "transcript") && !r->transcript) {
            if (!(r->transcript = strdup(r->answers[p]))) rc = EM_E_NOMEM;
        } else if (!strcmp(task, "events")) {
            r->has_events = true;
            for (size_t s = 0; rc == EM_OK && s < r->n_segments; s++) {
                const char *t = r->segments[s].answers[p].text;
                rc = em_tags_add(&tags, t, t ? strlen(t) : 0);
            }
        }
    }
    r->events = tags.v; /* the result takes the tags, also on error (freed with it) */
    r->n_events = tags.n;
    return rc;
}

em_err em_model_check_prompts(const struct em_model *m, const struct em_model_prompt *prompts,
                              size_t n, struct em_errbuf *eb)
{
    struct run st = {.m = m};
    if (!(st.r = calloc(1, sizeof *st.r))) return EM_E_NOMEM;
    em_err rc = resolve_prompts(&st, prompts, n, eb);
    em_model_result_free(st.r);
    return rc;
}

em_err em_model_check_gen(const struct em_gen_params_override *gen, struct em_errbuf *eb)
{
    struct em_gen_params g;
    memset(&g, 0, sizeof g);
    return apply_override(&g, gen, eb);
}

em_err em_model_annotate(const struct em_model *m, const struct em_audio *audio,
                         const struct em_model_prompt *prompts, size_t n_prompts,
                         const struct em_gen_params_override *gen,
                         struct em_model_result **out, struct em_errbuf *eb)
{
    return em_model_annotate_on(m, NULL, audio, prompts, n_prompts, gen, out, eb);
}

em_err em_model_engine_new(const struct em_model *m, uint64_t kv_budget, struct em_engine **out,
                           struct em_errbuf *eb)
{
    *out = NULL;
    if (m->family->id == EM_FAMILY_WHISPER)
        return em_errf(eb, EM_E_UNSUPPORTED, "engine: model '%s' (%s) decodes on its own",
                       m->name, m->family->name);
    struct em_engine_opts o = em_engine_opts_default();
    o.kv_budget = kv_budget;
    return em_engine_new(m->dec, &o, out, eb);
}

em_err em_model_annotate_on(const struct em_model *m, struct em_engine *eng,
                            const struct em_audio *audio, const struct em_model_prompt *prompts,
                            size_t n_prompts, const struct em_gen_params_override *gen,
                            struct em_model_result **out, struct em_errbuf *eb)
{
    *out = NULL;
    if (!m || !audio || (!audio->pcm && audio->n))
        return em_errf(eb, EM_E_ARG, "annotate: no model or no audio");
    struct run st = {.m = m, .gen = m->gen, .eng = eng};
    struct em_chunk *ch = NULL;
    size_t nc = 0, cnt = em_chunk_count(audio->n);
    em_err rc = EM_E_NOMEM;
    if (!(st.r = calloc(1, sizeof *st.r))) return EM_E_NOMEM;
    snprintf(st.r->identity, sizeof st.r->identity, "%s", m->identity);
    snprintf(st.r->form, sizeof st.r->form, "%s", m->form == EM_MODEL_FORM_CHAT ? "chat" : "base");
    if ((rc = resolve_prompts(&st, prompts, n_prompts, eb)) != EM_OK) goto done;
    if ((rc = apply_override(&st.gen, gen, eb)) != EM_OK) goto done;
    if (gen) {
        st.cancelled = gen->cancelled;
        st.cancel_ctx = gen->cancel_ctx;
    }
    if (m->family->id == EM_FAMILY_WHISPER) {
        struct em_whisper_run run = {gen ? gen->max_new_tokens : 0, gen && gen->greedy ? 1 : 0,
                                     st.cancelled, st.cancel_ctx, gen && gen->set_seed ? gen->seed : 0};
        rc = em_whisper_annotate(m->wh, audio, &run, st.r, eb);
        goto done;
    }
    if (cnt == 0) {
        rc = em_errf(eb, EM_E_TOO_SHORT, "annotate: no samples");
        goto done;
    }
    rc = EM_E_NOMEM;
    ch = calloc(cnt, sizeof *ch);
    st.r->segments = calloc(cnt, sizeof *st.r->segments);
    st.mel = malloc((size_t)EM_MEL_BINS * EM_MEL_FRAMES * sizeof *st.mel);
    st.enc = malloc((size_t)EM_PROMPT_MAX_AUDIO * (size_t)em_encoder_dim(m->enc) * sizeof *st.enc);
    st.emb = malloc((size_t)EM_PROMPT_MAX_AUDIO * (size_t)m->proj.out * sizeof *st.emb);
    if (!ch || !st.r->segments || !st.mel || !st.enc || !st.emb) goto done;
    if ((rc = em_chunk_split(audio->n, ch, cnt, &nc)) != EM_OK) goto done;
    for (size_t i = 0; rc == EM_OK && i < nc; i++) {
        if ((rc = check_cancel(&st, eb)) != EM_OK) break;
        rc = run_window(&st, audio->pcm, &ch[i], &st.r->segments[i], eb);
        if (rc == EM_OK || st.r->segments[i].answers) st.r->n_segments = i + 1; /* to free */
        /* a sub-321-sample tail after full windows has nothing to describe */
        if (rc == EM_E_TOO_SHORT && i > 0 && i + 1 == nc) rc = EM_OK;
    }
    if (rc == EM_OK) rc = merge(st.r);
    if (rc == EM_OK && st.r->decode_s > 0)
        st.r->tokens_per_s = (double)st.r->new_tokens / st.r->decode_s;
done:
    free(ch);
    free(st.mel);
    free(st.enc);
    free(st.emb);
    if (rc != EM_OK) {
        em_model_result_free(st.r);
        st.r = NULL;
    }
    *out = st.r;
    return rc;
}

void em_model_result_free(struct em_model_result *r)
{
    if (!r) return;
    for (size_t s = 0; s < r->n_segments; s++) {
        for (size_t p = 0; r->segments[s].answers && p < r->n_prompts; p++) {
            free(r->segments[s].answers[p].text);
            free(r->segments[s].answers[p].ids);
        }
        free(r->segments[s].answers);
    }
    free(r->segments);
    for (size_t p = 0; p < r->n_prompts; p++) {
        free(r->names ? r->names[p] : NULL);
        free(r->tasks ? r->tasks[p] : NULL);
        free(r->answers ? r->answers[p] : NULL);
    }
    free(r->names);
    free(r->tasks);
    free(r->answers);
    for (size_t i = 0; i < r->n_events; i++) free(r->events[i]);
    free(r->events);
    free(r->caption);
    free(r->transcript);
    for (size_t i = 0; i < r->n_tsegs; i++) free(r->tsegs[i].text);
    free(r->tsegs);
    free(r);
}
