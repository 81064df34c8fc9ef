/* model/loader/safetensors.h - safetensors files and Hugging Face checkpoint directories.
 *
 * File format (huggingface/safetensors): u64 little-endian header length H, then H bytes
 * of UTF-8 JSON {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [b, e]}, ...,
 * "__metadata__": {...}}, then the data area; offsets are relative to the data area start
 * (8 + H). Tensors must lie inside the data area and must not overlap.
 *
 * A checkpoint directory holds config.json, generation_config.json (optional),
 * preprocessor_config.json (optional here) and either model.safetensors or
 * model.safetensors.index.json + model-0000N-of-0000M.safetensors shards. Every file is
 * memory-mapped read-only; tensor views point into the mapping.
 *
 * Thread-safety: a parsed file or an open checkpoint is read-only and may be shared by
 * threads. Input files are untrusted: every malformation is EM_E_MODEL with a detail
 * naming the file and the cause, never a crash. */
#ifndef EM_SAFETENSORS_H
#define EM_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "model/qwen2audio/config.h"
#include "model/loader/tensor.h"

#define EM_ST_MAX_HEADER (100u * 1024u * 1024u) /* bytes of header JSON */
#define EM_ST_MAX_TENSORS 100000                /* tensors in one file */
#define EM_ST_MAX_NAME 256                      /* bytes in a tensor name */
#define EM_CKPT_MAX_SHARDS 256

/* ---- one file, no I/O ---------------------------------------------------------------- */

struct em_st;

/* Parses a whole safetensors file image buf[len]. buf is borrowed and must outlive *out
 * (tensor data points into it). file names the file in error messages. On EM_OK the
 * caller owns *out (em_st_free). Errors: EM_E_MODEL (bad header length, JSON, dtype,
 * shape, offsets out of bounds, overlapping, size not dtype x shape), EM_E_NOMEM. */
em_err em_st_parse(const uint8_t *buf, size_t len, const char *file, struct em_st **out,
                   struct em_errbuf *eb);
void em_st_free(struct em_st *st); /* NULL ok */
size_t em_st_count(const struct em_st *st);
/* i-th tensor in file order of the header (0 <= i < count). */
void em_st_get(const struct em_st *st, size_t i, struct em_tensor *t);
/* EM_OK, or EM_E_NOTFOUND (no detail written) when the file has no such tensor. */
em_err em_st_find(const struct em_st *st, const char *name, struct em_tensor *t);

/* ---- a checkpoint directory ------------------------------------------------------------ */

struct em_ckpt;
struct em_gguf;

/* Opens dir: loads the config (model/qwen2audio/config.h), maps model.safetensors or the shards listed
 * by model.safetensors.index.json, and checks every tensor named by the Qwen2-Audio table
 * (model/loader/tensors.def) exists with the shape the config implies, and that no shard
 * holds a tensor the table does not know. Example detail:
 *   "model-00002-of-00003.safetensors: tensor 'audio_tower.layers.1.fc1.weight' is [48, 60],
 *    config.json implies [200, 48]"
 * dir may also be a .gguf file written by `earmark convert` (model/tools/convert.h): the config
 * comes from its metadata, the views point into its mapping (dtype EM_DT_Q8_0 / EM_DT_Q4_0
 * for quantized tensors), and the same tensors.def check applies.
 * On EM_OK the caller owns *out (em_ckpt_close). Errors: EM_E_IO (cannot open/map),
 * EM_E_MODEL (anything malformed or inconsistent), EM_E_NOMEM. */
em_err em_ckpt_open(const char *dir, struct em_ckpt **out, struct em_errbuf *eb);
void em_ckpt_close(struct em_ckpt *ck); /* NULL ok; every view taken from ck dies */

/* The tensors of dir without a Qwen2-Audio config or table check (other families, e.g.
 * model/whisper/): model.safetensors, or model.safetensors.index.json + its shards with the
 * same checks as em_ckpt_open (a weight_map value that is not a plain file name in dir, such
 * as "../x" or "a/b", is refused; every listed tensor must be in the shard named for it and
 * every shard tensor listed). Look tensors up with em_ckpt_tensor; em_ckpt_config is then
 * all zero. On EM_OK the caller owns *out (em_ckpt_close). Errors: EM_E_IO (a file missing
 * or unreadable: the detail names it), EM_E_MODEL, EM_E_NOMEM. */
em_err em_ckpt_open_tensors(const char *dir, struct em_ckpt **out, struct em_errbuf *eb);

/* A checkpoint over tensors already in memory (benchmarks, tests): cfg is copied; views[n]
 * (names and data) are borrowed and must outlive *out. Checked like em_ckpt_open: every
 * tensor of the table with the shape cfg implies, nothing else; nbytes must equal
 * em_dtype_nbytes(dtype, numel) (Q8_0 / Q4_0 allowed). On EM_OK the caller owns *out
 * (em_ckpt_close). Errors: EM_E_MODEL, EM_E_NOMEM. */
em_err em_ckpt_from_views(const struct em_qa_config *cfg, const struct em_tensor *views,
                          size_t n, struct em_ckpt **out, struct em_errbuf *eb);

/* The parsed configuration; borrowed, valid while ck is open. */
const struct em_qa_config *em_ckpt_config(const struct em_ckpt *ck);

/* Fills *t with a view of the named tensor (data borrowed from the mapping, valid while ck
 * is open). Errors: EM_E_NOTFOUND with a detail naming the tensor. */
em_err em_ckpt_tensor(const struct em_ckpt *ck, const char *name, struct em_tensor *t,
                      struct em_errbuf *eb);
/* Same, with the name built by printf ("audio_tower.layers.%d.fc1.weight"). */
em_err em_ckpt_tensorf(const struct em_ckpt *ck, struct em_tensor *t, struct em_errbuf *eb,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* The dtype of most tensors (the one of embed_tokens), for reporting; for a GGUF file the
 * type of the layer linears (EM_DT_Q8_0 for a q8_0 conversion). */
int em_ckpt_dtype(const struct em_ckpt *ck);
/* The parsed GGUF file of a checkpoint opened from one (borrowed, valid while ck is open),
 * else NULL. Its tokenizer: em_gguf_read_tokenizer (model/loader/gguf.h). */
const struct em_gguf *em_ckpt_gguf(const struct em_ckpt *ck);

#endif
