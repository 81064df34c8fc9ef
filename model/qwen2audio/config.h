/* model/qwen2audio/config.h - Qwen2-Audio config.json + generation_config.json, every field checked.
 *
 * The published config.json is sparse: text_config omits most geometry, and missing keys
 * take transformers' Qwen2Config defaults (hidden 4096, 32 layers, 32 heads, kv heads =
 * heads, intermediate 22016, vocab 151936, max_pos 32768, rope_theta 10000, rms eps 1e-6,
 * untied head); missing audio_config keys take Qwen2AudioEncoderConfig defaults (128 mel
 * bins, d_model 1280, 32 layers, 20 heads, ffn 5120, 1500 positions). Values present in the
 * file always win. A missing generation_config.json gives the generation defaults below.
 * ref: transformers configuration_qwen2_audio.py, configuration_qwen2.py
 * Thread-safe: pure functions; the struct is plain data. */
#ifndef EM_CONFIG_H
#define EM_CONFIG_H

#include <stddef.h>

#include "common/err.h"

#define EM_CFG_MAX_JSON (4u * 1024u * 1024u) /* bytes of one config file */
#define EM_CFG_MAX_EOS 8
#define EM_CFG_MAX_DIM (1 << 20)             /* sanity cap on any width/count */

struct em_qa_audio_config {
    int num_mel_bins;            /* 128 */
    int d_model;                 /* 1280 */
    int encoder_layers;          /* 32 */
    int encoder_attention_heads; /* 20; d_model % heads == 0 */
    int encoder_ffn_dim;         /* 5120 */
    int max_source_positions;    /* 1500 (= 3000 mel frames / 2) */
    float layer_norm_eps;        /* 1e-5 (nn.LayerNorm default; not in the file) */
};

struct em_qa_text_config {
    int hidden_size;             /* 4096 */
    int intermediate_size;       /* 11008 */
    int num_hidden_layers;       /* 32 */
    int num_attention_heads;     /* 32; head_dim = hidden / heads */
    int num_key_value_heads;     /* 32; heads % kv_heads == 0 */
    int head_dim;                /* derived: hidden / heads */
    int vocab_size;              /* 156032 */
    int max_position_embeddings; /* 8192 */
    double rope_theta;           /* 10000 */
    float rms_norm_eps;          /* 1e-5 */
    int tie_word_embeddings;     /* 0: separate lm_head */
    int bos_token_id;            /* 151643, -1 if absent */
    int eos_token_id;            /* 151645 (first of a list), -1 if absent */
};

struct em_qa_gen_config {
    int do_sample;               /* 0/1; default 0 */
    int top_k;                   /* default 50 (transformers default); 0 = off */
    float top_p;                 /* default 1.0 */
    float temperature;           /* default 1.0 */
    float repetition_penalty;    /* default 1.0 */
    int max_new_tokens;          /* -1 if absent */
    int max_length;              /* -1 if absent */
    int pad_token_id;            /* -1 if absent */
    int n_eos;                   /* eos_token_id may be an int or a list; without a
                                    generation_config.json, the model config's ids */
    int eos_token_id[EM_CFG_MAX_EOS];
};

struct em_qa_config {
    struct em_qa_audio_config audio;
    struct em_qa_text_config text;
    struct em_qa_gen_config gen;
    int audio_token_index;       /* 151646 */
    char torch_dtype[16];        /* "bfloat16", "float32", ... ("" if absent) */
};

/* Parses config.json text (cfg[cfg_len]) and optional generation_config.json text
 * (gen may be NULL). No I/O. Errors: EM_E_MODEL naming the key ("config.json:
 * text_config.num_attention_heads = 7 does not divide hidden_size 48"), EM_E_NOMEM. */
em_err em_qa_config_parse(const char *cfg, size_t cfg_len, const char *gen, size_t gen_len,
                          struct em_qa_config *out, struct em_errbuf *eb);

/* Reads dir/config.json and dir/generation_config.json (if present) and parses them.
 * Errors: EM_E_IO (config.json unreadable), EM_E_TOO_LONG (over EM_CFG_MAX_JSON), as above. */
em_err em_qa_config_load(const char *dir, struct em_qa_config *out, struct em_errbuf *eb);

/* Reads a whole JSON file of at most EM_CFG_MAX_JSON bytes into a NUL-terminated buffer;
 * the caller frees *out. With optional set, a missing file is EM_OK with *out NULL.
 * Errors: EM_E_IO, EM_E_TOO_LONG, EM_E_NOMEM. */
em_err em_cfg_read_file(const char *path, int optional, char **out, size_t *len,
                        struct em_errbuf *eb);

#endif
