/* model/loader/gguf.h - GGUF v3 files: a bounded header parser (no I/O), a read-only
 * memory-mapped reader (gguf.c), and a streaming writer (gguf_write.c).
 *
 * File format (ref: ggml-org/ggml:docs/gguf.md, src/gguf.cpp), all little-endian:
 *   magic "GGUF" | u32 version (3) | u64 n_tensors | u64 n_kv
 *   n_kv x    { str key | u32 type | value }
 *             value: u8 i8 u16 i16 u32 i32 f32 bool(u8) str u64 i64 f64, or
 *                    array = u32 elem_type | u64 count | count values (no nested arrays here)
 *             str = u64 len | len bytes (UTF-8, no NUL)
 *   n_tensors x { str name | u32 n_dims (1..4) | u64 ne[n_dims] | u32 ggml_type | u64 offset }
 *   zero padding to `general.alignment` (u32, power of two, default 32)
 *   data: each tensor at data_start + offset, offset a multiple of the alignment.
 * ne[0] is the innermost (contiguous) dimension: a PyTorch [out, in] Linear weight is
 * ne = {in, out}. Views (em_gguf_tensor_view) give the PyTorch order back.
 * Tensor types read here: F32 (0), F16 (1), Q4_0 (2), Q8_0 (8), BF16 (30); the q-blocks are
 * the layouts of model/kernels/quant.h (32 weights per block along ne[0]).
 *
 * Files are untrusted: every count, length and offset is bounded by the EM_GGUF_MAX_*
 * limits and by the bytes that remain, checked the overflow-safe way; each failure is
 * EM_E_MODEL with a detail naming the file and the item, never a crash.
 * Thread-safety: a parsed struct em_gguf is read-only and may be shared by threads; a writer
 * belongs to one thread. */
#ifndef EM_GGUF_H
#define EM_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "model/qwen2audio/config.h"
#include "model/loader/tensor.h"
#include "model/text/tokenizer.h"

#define EM_GGUF_MAGIC "GGUF"
#define EM_GGUF_VERSION 3
#define EM_GGUF_DEFAULT_ALIGNMENT 32
#define EM_GGUF_MAX_ALIGNMENT (1u << 20)     /* bytes */
#define EM_GGUF_MAX_TENSORS 100000           /* tensor infos in one file */
#define EM_GGUF_MAX_KV 100000                /* metadata pairs in one file */
#define EM_GGUF_MAX_KEY 256                  /* bytes in a key */
#define EM_GGUF_MAX_NAME 256                 /* bytes in a tensor name */
#define EM_GGUF_MAX_STRING (16u << 20)       /* bytes in one string value */
#define EM_GGUF_MAX_ARRAY (1u << 24)         /* elements in one array */
#define EM_GGUF_MAX_DIMS 4

/* Metadata value types (GGUF numbering). */
enum em_gguf_type {
    EM_GGUF_U8 = 0,
    EM_GGUF_I8 = 1,
    EM_GGUF_U16 = 2,
    EM_GGUF_I16 = 3,
    EM_GGUF_U32 = 4,
    EM_GGUF_I32 = 5,
    EM_GGUF_F32 = 6,
    EM_GGUF_BOOL = 7,
    EM_GGUF_STR = 8,
    EM_GGUF_ARR = 9,
    EM_GGUF_U64 = 10,
    EM_GGUF_I64 = 11,
    EM_GGUF_F64 = 12,
    EM_GGUF_TYPE_COUNT
};

/* Tensor types (ggml numbering) that earmark reads and writes. */
enum em_ggml_type {
    EM_GGML_F32 = 0,
    EM_GGML_F16 = 1,
    EM_GGML_Q4_0 = 2,
    EM_GGML_Q8_0 = 8,
    EM_GGML_BF16 = 30,
};

/* ggml type <-> earmark weight type (enum em_wtype of model/kernels/quant.h, whose F32/F16/BF16
 * equal enum em_dtype). -1 if there is no counterpart. */
int em_gguf_ggml_to_wtype(uint32_t ggml_type);
int em_gguf_wtype_to_ggml(int wtype);

/* Bytes of a scalar metadata type (enum em_gguf_type); 0 for STR, ARR and unknown types. */
size_t em_gguf_type_size(int type);
/* Bytes of a tensor of ggml_type (enum em_ggml_type) with ndim (1..4) dims ne (ggml order,
 * each >= 1); 0 for an unknown type, bad dims, ne[0] not a multiple of 32 for a block type,
 * or a size over INT64_MAX. */
uint64_t em_gguf_tensor_nbytes(uint32_t ggml_type, int ndim, const int64_t *ne);

/* A string inside the file image: borrowed, NOT NUL-terminated. */
struct em_gguf_str {
    const char *s;
    uint64_t len;
};

/* One metadata value. Scalars are widened into u/i/f (bool as u 0/1; an integer of any
 * width sets both u and i when it fits, see em_gguf_get_int). Arrays: arr_type, n and either
 * arr (n fixed-size little-endian elements, unaligned) or strs (n strings). */
struct em_gguf_value {
    int type; /* enum em_gguf_type */
    uint64_t u;
    int64_t i;
    double f;
    struct em_gguf_str str;
    int arr_type;
    uint64_t n;
    const uint8_t *arr;
    const struct em_gguf_str *strs;
};

/* One tensor info. name is NUL-terminated (owned by the em_gguf); data points into the
 * image (borrowed, valid while the em_gguf is open). */
struct em_gguf_tensor {
    const char *name;
    uint32_t ggml_type;
    int ndim;
    int64_t ne[EM_GGUF_MAX_DIMS]; /* ggml order: ne[0] innermost */
    uint64_t offset;              /* from the data section start */
    uint64_t nbytes;
    const void *data;
};

struct em_gguf;

/* Parses a whole GGUF image buf[len] (borrowed; must outlive *out). file names the file in
 * error details. On EM_OK the caller owns *out (em_gguf_close). Errors: EM_E_MODEL (bad
 * magic or version, a count or length over its limit or past the end, unknown value or
 * tensor type, nested array, duplicate key or tensor name, bad alignment, tensor data
 * misaligned, out of bounds or overlapping, dims not a multiple of the block size),
 * EM_E_NOMEM. Example detail:
 *   "m.gguf: tensor 3 'lm_head.weight': data [4096, 8192) outside the 6000-byte data section" */
em_err em_gguf_parse(const uint8_t *buf, size_t len, const char *file, struct em_gguf **out,
                     struct em_errbuf *eb);
/* Maps path read-only (PROT_READ, MAP_SHARED: processes share the page cache; nothing is
 * copied) and parses it. Errors: EM_E_IO (open, stat, mmap), as em_gguf_parse. */
em_err em_gguf_open(const char *path, struct em_gguf **out, struct em_errbuf *eb);
void em_gguf_close(struct em_gguf *g); /* NULL ok; unmaps a file em_gguf_open mapped */

uint32_t em_gguf_version(const struct em_gguf *g);
uint32_t em_gguf_alignment(const struct em_gguf *g);
size_t em_gguf_n_kv(const struct em_gguf *g);
/* i-th pair in file order: its key (NUL-terminated, owned by g) and value (borrowed). */
const char *em_gguf_key(const struct em_gguf *g, size_t i);
const struct em_gguf_value *em_gguf_value(const struct em_gguf *g, size_t i);
/* The value of key, or NULL. */
const struct em_gguf_value *em_gguf_find(const struct em_gguf *g, const char *key);

/* Typed getters: EM_E_NOTFOUND (detail names the key) when absent; EM_E_MODEL when the
 * value has another type or (integers) lies outside [lo, hi]. Integers accept any integer
 * type; em_gguf_get_f64 accepts F32/F64; the string is borrowed, not NUL-terminated. */
em_err em_gguf_get_int(const struct em_gguf *g, const char *key, int64_t lo, int64_t hi,
                       int64_t *out, struct em_errbuf *eb);
em_err em_gguf_get_f64(const struct em_gguf *g, const char *key, double *out,
                       struct em_errbuf *eb);
em_err em_gguf_get_bool(const struct em_gguf *g, const char *key, int *out,
                        struct em_errbuf *eb);
em_err em_gguf_get_str(const struct em_gguf *g, const char *key, struct em_gguf_str *out,
                       struct em_errbuf *eb);
/* Element i (< v->n) of an integer array as int64 (u64 above INT64_MAX saturates), of a
 * float array as double. Behaviour for other array types: 0. */
int64_t em_gguf_arr_int(const struct em_gguf_value *v, uint64_t i);
double em_gguf_arr_f64(const struct em_gguf_value *v, uint64_t i);

size_t em_gguf_n_tensors(const struct em_gguf *g);
const struct em_gguf_tensor *em_gguf_tensor_at(const struct em_gguf *g, size_t i);
const struct em_gguf_tensor *em_gguf_find_tensor(const struct em_gguf *g, const char *name);
/* An em_tensor view of gt: shape in PyTorch order (ne reversed), dtype the em_wtype value
 * (EM_WT_Q8_0 = 3 / EM_WT_Q4_0 = 4 for block types), data borrowed from the image. */
void em_gguf_tensor_view(const struct em_gguf_tensor *gt, struct em_tensor *t);

/* ---- writer ------------------------------------------------------------------------------ */

struct em_gguf_writer;

/* A writer collects metadata and tensor infos in memory (small: the tensor data is
 * streamed by em_gguf_writer_write). Its first pair is general.alignment = alignment (a
 * power of two up to EM_GGUF_MAX_ALIGNMENT). Errors: EM_E_ARG, EM_E_NOMEM. Free with
 * em_gguf_writer_free. */
em_err em_gguf_writer_new(uint32_t alignment, struct em_gguf_writer **out);
void em_gguf_writer_free(struct em_gguf_writer *w); /* NULL ok */

/* Appends one pair (keys must be unique: EM_E_ARG otherwise, also for keys over
 * EM_GGUF_MAX_KEY). Strings are copied. Errors: EM_E_ARG, EM_E_NOMEM. */
em_err em_gguf_set_u32(struct em_gguf_writer *w, const char *key, uint32_t v);
em_err em_gguf_set_i32(struct em_gguf_writer *w, const char *key, int32_t v);
em_err em_gguf_set_u64(struct em_gguf_writer *w, const char *key, uint64_t v);
em_err em_gguf_set_f32(struct em_gguf_writer *w, const char *key, float v);
em_err em_gguf_set_f64(struct em_gguf_writer *w, const char *key, double v);
em_err em_gguf_set_bool(struct em_gguf_writer *w, const char *key, int v);
em_err em_gguf_set_str(struct em_gguf_writer *w, const char *key, const char *s, size_t len);
/* Any scalar type (not STR/ARR) from its little-endian bytes, e.g. the U8/I16 cases. */
em_err em_gguf_set_scalar(struct em_gguf_writer *w, const char *key, int type, const void *le);
/* Array of n fixed-size elements of elem_type (not STR/ARR), little-endian in data. */
em_err em_gguf_set_arr(struct em_gguf_writer *w, const char *key, int elem_type,
                       const void *data, uint64_t n);
em_err em_gguf_set_arr_str(struct em_gguf_writer *w, const char *key,
                           const struct em_gguf_str *strs, uint64_t n);

/* Declares the next tensor: shape in PyTorch order (written reversed as ne), ggml type one
 * of enum em_ggml_type; its offset is the running total rounded up to the alignment.
 * Errors: EM_E_ARG (duplicate or long name, bad ndim/shape/type, ne[0] not a multiple of
 * 32 for a block type), EM_E_NOMEM. */
em_err em_gguf_add_tensor(struct em_gguf_writer *w, const char *name, uint32_t ggml_type,
                          int ndim, const int64_t *shape);
size_t em_gguf_writer_n_tensors(const struct em_gguf_writer *w);
/* Bytes of tensor i's data. */
uint64_t em_gguf_writer_tensor_bytes(const struct em_gguf_writer *w, size_t i);

/* Where tensor i's data goes: em_gguf_sink_write appends bytes (the data callback writes
 * exactly em_gguf_writer_tensor_bytes(w, i) in as many pieces as it likes, so a converter
 * needs one chunk of scratch, not a whole tensor). Errors: EM_E_ARG (more bytes than the
 * tensor holds), EM_E_IO. */
struct em_gguf_sink;
em_err em_gguf_sink_write(struct em_gguf_sink *s, const void *data, size_t n);
typedef em_err (*em_gguf_data_fn)(void *ctx, size_t i, struct em_gguf_sink *sink,
                                  struct em_errbuf *eb);

/* Writes header, metadata, tensor infos and the tensors (calling data(ctx, i, sink) in
 * order; EM_E_INTERNAL if it writes fewer bytes than declared) to path + ".tmp.<pid>",
 * fsyncs it and renames it to path; on error the temporary file is removed and path is
 * untouched. Errors: EM_E_IO, EM_E_INTERNAL, the callback's. */
em_err em_gguf_writer_write(struct em_gguf_writer *w, const char *path, em_gguf_data_fn data,
                            void *ctx, struct em_errbuf *eb);

/* ---- earmark's keys (ckpt_gguf.c) --------------------------------------------------------
 * general.architecture = "qwen2audio"; the config as qwen2audio.audio.<field> (num_mel_bins,
 * d_model, encoder_layers, encoder_attention_heads, encoder_ffn_dim, max_source_positions:
 * u32; layer_norm_eps: f32), qwen2audio.text.<field> (hidden_size, intermediate_size,
 * num_hidden_layers, num_attention_heads, num_key_value_heads, vocab_size,
 * max_position_embeddings: u32; rope_theta: f64; rms_norm_eps: f32; tie_word_embeddings:
 * bool; bos_token_id, eos_token_id: i32, absent when the config has none),
 * qwen2audio.gen.<field> (do_sample: bool; top_k, max_new_tokens, max_length, pad_token_id:
 * i32, absent when -1; top_p, temperature, repetition_penalty: f32; eos_token_id: i32 array),
 * qwen2audio.audio_token_index (i32), qwen2audio.torch_dtype (str). The field names are
 * config.json's, so reading rebuilds the JSON and runs em_qa_config_parse: the same checks
 * and defaults as a checkpoint directory.
 * Tokenizer: tokenizer.ggml.model = "gpt2", tokenizer.ggml.pre = "qwen2", tokenizer.ggml.tokens
 * (str array, id order), tokenizer.ggml.token_type (i32 array, enum em_tok_type),
 * tokenizer.ggml.merges (str array, rank order), tokenizer.ggml.eos_token_id /
 * padding_token_id / bos_token_id (u32, when the config names them),
 * qwen2audio.tokenizer.ignore_merges (bool), tokenizer.chat_template (str, Instruct only). */

#define EM_GGUF_ARCH "qwen2audio"

/* Writes the config keys above. Errors: EM_E_ARG (duplicate key), EM_E_NOMEM. */
em_err em_gguf_put_config(struct em_gguf_writer *w, const struct em_qa_config *c);
/* Reads them back (file names the file in details). Errors: EM_E_MODEL (architecture not
 * qwen2audio, a key of the wrong type, any check of em_qa_config_parse), EM_E_NOMEM. */
em_err em_gguf_read_config(const struct em_gguf *g, const char *file, struct em_qa_config *c,
                           struct em_errbuf *eb);
/* Writes the tokenizer keys from tok (and chat_template when not NULL) plus the special ids
 * of c. Errors: EM_E_ARG, EM_E_NOMEM. */
em_err em_gguf_put_tokenizer(struct em_gguf_writer *w, const struct em_tok *tok,
                             const struct em_qa_config *c, const char *chat_template);
/* Builds the tokenizer from g's keys. On EM_OK the caller owns *out (em_tok_free). Errors:
 * EM_E_MODEL (missing or mistyped keys, tokenizer.ggml.model not "gpt2", token_type count
 * differs), the errors of em_tok_load_spec. */
em_err em_gguf_read_tokenizer(const struct em_gguf *g, const char *file, struct em_tok **out,
                              struct em_errbuf *eb);
/* em_gguf_open + em_gguf_read_tokenizer + em_gguf_close. */
em_err em_tok_load_gguf(const char *path, struct em_tok **out, struct em_errbuf *eb);

#endif
