/* model/qwen2audio/decoder.h - the Qwen2 language model of Qwen2-Audio (spec section 5): token
 * embeddings with projected audio rows spliced in at the <|AUDIO|> positions, N layers of
 * RMSNorm -> q/k/v (bias) -> RoPE (rotate-half) -> causal softmax attention (MHA or GQA) ->
 * o_proj (no bias) -> residual -> RMSNorm -> SwiGLU MLP -> residual, final RMSNorm and the
 * (untied, unless the config ties it) lm_head.
 *
 * Shapes: hidden D, heads H x head_dim hd, kv heads KVH (H % KVH == 0), ffn F, vocab V.
 * Compute is f32; every step is a slot of the backend table (model/kernels/backend.h): weights
 * made resident once (the CPU: views into the checkpoint mapping in their stored dtype),
 * activations in device buffers, ids / audio rows in and logits out in host memory. The KV
 * cache lives in the backend's memory (em_dec_kv_new allocates it there) and its rows are
 * handed to the RoPE / attention slots as row pointers (model/gen/kvcache.h).
 *
 * Thread-safety: an em_dec is read-only after em_dec_open and may be shared by threads;
 * each concurrent generation needs its own em_kv. */
#ifndef EM_DECODER_H
#define EM_DECODER_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "model/qwen2audio/config.h"
#include "model/gen/kvcache.h"
#include "model/kernels/backend.h"
#include "model/loader/safetensors.h"

#define EM_DEC_MAX_TOKENS 32768 /* positions of one sequence (prompt + generated) */
#define EM_DEC_MAX_BATCH 64     /* sequences of one batched call, any backend */

struct em_dec;

/* Takes views of the language_model.* tensors of an open checkpoint (ck must outlive the
 * decoder) and widens the norm weights. On EM_OK the caller owns *out (em_dec_free).
 * Errors: EM_E_NOTFOUND / EM_E_MODEL (missing tensor, bad shape), EM_E_NOMEM. */
em_err em_dec_open(const struct em_ckpt *ck, struct em_dec **out, struct em_errbuf *eb);
/* The same on backend be (NULL: the CPU; borrowed, must outlive *out). Errors: also
 * EM_E_UNSUPPORTED (a dtype the backend cannot hold), the backend's EM_E_NOMEM. */
em_err em_dec_open_be(const struct em_ckpt *ck, const struct em_backend *be, struct em_dec **out,
                      struct em_errbuf *eb);
void em_dec_free(struct em_dec *d); /* NULL ok */

/* Borrowed, valid while d lives. */
const struct em_qa_text_config *em_dec_config(const struct em_dec *d);
int em_dec_vocab(const struct em_dec *d);       /* V: logits per position */
int em_dec_audio_token(const struct em_dec *d); /* audio_token_index (151646) */
const struct em_backend *em_dec_backend(const struct em_dec *d); /* where it runs */
/* Sequences a batched call should take at most on this decoder's backend: its decode_rows
 * (backend.h; the CPU: 8, where a row's result does not depend on the batch), at most
 * EM_DEC_MAX_BATCH. Callers that group sequences (model/gen) group by this. */
int em_dec_max_batch(const struct em_dec *d);

/* A KV cache of the decoder's geometry for cap positions (<= EM_DEC_MAX_TOKENS), of the
 * decoder's element type (em_dec_kv_type), in its backend's memory. */
em_err em_dec_kv_new(const struct em_dec *d, int cap, struct em_kv **out, struct em_errbuf *eb);
/* The same with an explicit element type (tests, the bench). Both set *out to NULL on
 * error: EM_E_TOO_LONG (cap over EM_DEC_MAX_TOKENS or the cache byte limit), EM_E_ARG,
 * EM_E_NOMEM. */
em_err em_dec_kv_new_type(const struct em_dec *d, int cap, enum em_kv_type type,
                          struct em_kv **out, struct em_errbuf *eb);
/* The type em_dec_kv_new uses: EM_KV_F16 when the layers' linear weights are quantized
 * (Q8_0 / Q4_0: their rounding error is far above f16's), EM_KV_F32 for F32 / BF16 / F16
 * weights (the golden data's path); the environment variable EARMARK_KV=f32|f16, read by
 * em_dec_open, overrides it (em_dec_open fails with EM_E_ARG on another value). The
 * forward pass takes caches of either type, mixed in one batch. */
enum em_kv_type em_dec_kv_type(const struct em_dec *d);
/* The same over the first n positions of base (em_kv_new_over: borrowed, read in place).
 * Errors: EM_E_ARG (base not of this decoder's geometry, n > its length, cap <= n),
 * EM_E_TOO_LONG, EM_E_NOMEM. */
em_err em_dec_kv_over(const struct em_dec *d, const struct em_kv *base, int n, int cap,
                      struct em_kv **out, struct em_errbuf *eb);

enum em_dec_logits {
    EM_DEC_LOGITS_NONE = 0, /* only fill the cache */
    EM_DEC_LOGITS_LAST = 1, /* logits[V] of the last position */
    EM_DEC_LOGITS_ALL = 2,  /* logits[T, V] of every position */
};

/* Runs ids[0..T) at positions em_kv_len(kv) .. +T-1 and appends them to kv. Positions
 * whose id is the audio token take, in order, the rows of audio[n_audio, D] instead of
 * their embedding (n_audio must equal the number of audio ids among ids; audio may be
 * NULL when it is 0). logits: see em_dec_logits (caller-owned, V or T x V floats).
 * Errors: EM_E_ARG (T < 1, id outside [0, V), audio count mismatch), EM_E_TOO_LONG (cache
 * full), EM_E_NOMEM, the matmul's errors. On error kv keeps its previous length. */
em_err em_dec_forward(const struct em_dec *d, struct em_kv *kv, const int32_t *ids, int T,
                      const float *audio, int n_audio, enum em_dec_logits mode, float *logits,
                      struct em_errbuf *eb);

/* One decode step of k independent sequences at once: sequence i appends ids[i] at position
 * em_kv_len(kv[i]) of its own cache. Every linear (q/k/v/o, gate/up/down, lm_head) runs as
 * one em_matmul over the k rows, so each weight is read once per step for all of them;
 * RMSNorm, RoPE and attention go per sequence against its own cache. logits[k, V]
 * (caller-owned): row i is what em_dec_forward(d, kv[i], &ids[i], 1, NULL, 0,
 * EM_DEC_LOGITS_LAST, ...) gives (the same rows of the same matmuls, so the same values on
 * the small-n matmul path, whose rows do not depend on n). The caches must be distinct.
 * Errors: EM_E_ARG (k outside 1..EM_DEC_MAX_BATCH, a NULL or repeated cache, an id outside
 * [0, V) or the audio token), EM_E_TOO_LONG (a cache full), EM_E_NOMEM, the matmul's errors.
 * On error every cache keeps its previous length. */
em_err em_dec_step_batch(const struct em_dec *d, struct em_kv *const *kv, const int32_t *ids,
                         int k, float *logits, struct em_errbuf *eb);

/* The prefill of k sequences at once (the prompt tails of a clip's prompts over their shared
 * audio prefix): sequence i appends ids[i][0 .. n[i]) at positions em_kv_len(kv[i]) .. of its
 * own cache. Every linear runs once over all the rows (one pass over the weights instead of
 * k, and the int8 GEMM at its full width); attention runs per sequence against its own cache.
 * logits[k, V] (caller-owned): row i is the logits of sequence i's last position, what
 * em_dec_forward(d, kv[i], ids[i], n[i], NULL, 0, EM_DEC_LOGITS_LAST, ...) gives wherever
 * the matmul's rows do not depend on how many rows it takes (quantized weights; OpenBLAS
 * sgemm for f32 / bf16 ones may round differently). The caches must be distinct.
 * Errors: EM_E_ARG (k outside 1..EM_DEC_MAX_BATCH, a NULL or repeated cache, n[i] < 1, an id
 * outside [0, V) or the audio token), EM_E_TOO_LONG (a cache full, more than
 * EM_DEC_MAX_TOKENS rows), EM_E_NOMEM, the matmul's errors. On error every cache keeps its
 * previous length. */
em_err em_dec_prefill_batch(const struct em_dec *d, struct em_kv *const *kv,
                            const int32_t *const *ids, const int *n, int k, float *logits,
                            struct em_errbuf *eb);

#endif
