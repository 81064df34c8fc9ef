/* model/whisper/whisper_impl.h - what the files of model/whisper/ share (not for other
 * modules): the loaded model, the decoder's weights as views into model.bin, the decoder
 * state of one sequence. Shapes are [rows, cols] row-major, Linear weights [out, in]. */
#ifndef EM_WHISPER_IMPL_H
#define EM_WHISPER_IMPL_H

#include "model/audio/encoder.h"
#include "model/loader/ct2.h"
#include "model/loader/tensor.h"
#include "model/audio/mel.h"
#include "model/text/tokenizer.h"
#include "model/whisper/whisper.h"

struct wh_layer {
    float *ln1_w, *ln1_b, *ln2_w, *ln2_b, *ln3_w, *ln3_b; /* [d] widened (owned) */
    struct em_tensor sq_w, sq_b, sk_w, sk_b, sv_w, sv_b; /* self-attention [d, d], [d]; sk_b.data
                                                         NULL: no key bias (HF layout) */
    struct em_tensor so_w, so_b;     /* self-attention output [d, d], [d] */
    struct em_tensor cq_w, cq_b;     /* cross-attention query [d, d], [d] */
    struct em_tensor ck_w, ck_b;     /* cross-attention keys of enc [d, d], [d] (ck_b.data NULL: */
    struct em_tensor cv_w, cv_b;     /* none), values likewise; CTranslate2: row views of k|v */
    struct em_tensor co_w, co_b;     /* cross-attention output [d, d], [d] */
    struct em_tensor fc1_w, fc1_b, fc2_w, fc2_b; /* [ffn, d], [ffn], [d, ffn], [d] */
};

struct em_ckpt;
struct em_gguf;

struct em_whisper {
    struct em_ct2 *ct2;        /* CTranslate2 layout: owns the mapping every view points into */
    struct em_ckpt *st;        /* Hugging Face layout: model.safetensors, or an index + shards
                                  (em_ckpt_open_tensors), owns their mappings */
    struct em_gguf *gg;        /* GGUF layout (gguf.c): owns the mapping; Hugging Face names */
    struct em_tok *tok;
    struct em_mel *mel;
    struct em_encoder *enc;
    struct em_encoder_desc enc_desc; /* the encoder's views (layers = enc_l), kept for gguf.c */
    struct em_encoder_layer_desc *enc_l; /* [enc_layers] (owned) */
    int n_mels, d, heads, hd, ffn, n_layers, enc_layers, n_vocab, n_ctx;
    struct em_tensor emb;      /* [n_vocab, d]: token embedding and (tied) output projection */
    struct em_tensor pos;      /* [n_ctx, d] learned positions */
    float *lnf_w, *lnf_b;      /* [d] */
    struct wh_layer *l;        /* [n_layers] */
    /* special ids (from the tokenizer) */
    int32_t sot, eot, no_timestamps, ts_begin, ts_end, transcribe, translate, no_speech;
    bool multilingual;
    int32_t *suppress, *suppress_begin, *lang_ids; /* from config.json (owned) */
    int n_suppress, n_suppress_begin, n_langs;
    char dtype[8];
    int wtype;                 /* -1: as stored; EM_WT_Q8_0: linear weights quantized at load */
    bool int8_file;            /* a CTranslate2 int8 model.bin (weights.c) */
    /* weights.c: tensors converted at load (owned[i] holds conv[i]'s bytes, converted from
     * the file bytes conv_src[i]) */
    void **owned;
    struct em_tensor *conv;
    const void **conv_src;
    size_t n_conv, cap_conv;
};

/* One sequence's decoder state: self-attention keys and values per layer [n_ctx, d] and
 * the cross-attention keys and values of one window per layer [1500, d]. */
struct wh_state {
    float *self_k, *self_v;    /* [n_layers][n_ctx][d] */
    float *cross_k, *cross_v;  /* [n_layers][1500][d] */
    int pos;                   /* next position */
    bool cross_borrowed;       /* cross_k / cross_v belong to another state (beams share them) */
    float *s;                  /* attention scores scratch [1500] */
};

em_err wh_state_new(const struct em_whisper *w, struct wh_state *st);
/* A state whose cross-attention keys and values are share's (borrowed: share must outlive it
 * and keep its audio); its own self-attention cache starts empty. Errors: EM_E_NOMEM. */
em_err wh_state_new_shared(const struct em_whisper *w, struct wh_state *st,
                           const struct wh_state *share);
/* dst's self-attention cache and position become src's (positions 0 .. src->pos - 1). */
void wh_state_copy_self(const struct em_whisper *w, struct wh_state *dst, const struct wh_state *src);
void wh_state_free(struct wh_state *st);
/* Computes each layer's cross-attention keys and values from enc[1500, d] and resets the
 * sequence to position 0. Errors: the matmul's. */
em_err wh_state_set_audio(const struct em_whisper *w, struct wh_state *st, const float *enc);
/* Runs token id at position st->pos (then advances it); logits[n_vocab] when non-NULL.
 * Errors: EM_E_TOO_LONG (past n_ctx), EM_E_ARG (id out of range), the matmul's. */
em_err wh_step(const struct em_whisper *w, struct wh_state *st, int32_t id, float *logits);
/* The same for n sequences at once (beams): one matmul per weight for all n rows (the
 * weights are read once per step), attention per row over its own cache; logits[n, n_vocab].
 * Errors: as wh_step. */
em_err wh_step_batch(const struct em_whisper *w, struct wh_state *const *sts, const int32_t *ids,
                     int n, float *logits);

/* weights.c: the named CTranslate2 variable as em_ct2_tensor gives it, except that an int8
 * variable with its "<name>_scale" becomes q8_0 (or f32 for rows not a multiple of 32), and
 * with w->wtype EM_WT_Q8_0 a linear weight is quantized (wh_weight_adapt). Converted views
 * are owned by w. Errors: em_ct2_tensor's, EM_E_MODEL (scale missing, malformed or not a
 * positive finite number), EM_E_NOMEM. */
em_err wh_ct2_tensor(struct em_whisper *w, const char *name, int ndim, struct em_tensor *t,
                     struct em_errbuf *eb);
/* With w->wtype EM_WT_Q8_0, replaces *t (a 2-D float "...weight", not a position table, rows a
 * multiple of 32) by its q8_0 quantization owned by w; otherwise leaves it. Errors: EM_E_NOMEM. */
em_err wh_weight_adapt(struct em_whisper *w, struct em_tensor *t, struct em_errbuf *eb);
void wh_weights_free(struct em_whisper *w); /* the converted tensors */

/* load.c: binds the Hugging Face tensor names (w->st, or w->gg when set) with eh encoder and
 * dh decoder heads; sets the geometry from the tensors' shapes. Errors: EM_E_MODEL (a tensor
 * missing, of the wrong rank or shape, not a Whisper geometry; the detail names it),
 * EM_E_NOTFOUND, EM_E_NOMEM. */
em_err wh_bind_hf(struct em_whisper *w, int eh, int dh, struct em_errbuf *eb);

/* gguf.c: opens path into w->gg, checks its whisper.* metadata (the detail names the key),
 * binds the tensors (wh_bind_hf), checks the geometry keys against the tensors and reads the
 * suppress and language ids and the tokenizer. Errors: em_gguf_open's, EM_E_MODEL, EM_E_NOMEM. */
em_err wh_gguf_load(struct em_whisper *w, const char *path, struct em_errbuf *eb);
/* gguf.c: after special_ids: every whisper.token.* key equals the id the vocabulary gives and
 * whisper.multilingual equals what n_vocab says. Errors: EM_E_MODEL naming the key. */
em_err wh_gguf_check_ids(const struct em_whisper *w, const char *path, struct em_errbuf *eb);

/* search.c: rules 1-3 of the logits processors (search.c's header) on l[n_vocab] for the
 * generated ids gen[0..s); the log-softmax of l at k. */
void wh_apply_rules(const struct em_whisper *w, float *l, const int32_t *gen, int s, bool ts);
double wh_log_softmax_at(const float *l, int n, int32_t k);

/* search.c: decoded text of ids (specials and timestamps dropped), surrounding blanks trimmed;
 * on EM_OK the caller frees *out. Errors: em_tok_decode's. */
em_err wh_text_of(const struct em_whisper *w, const int32_t *ids, size_t n, char **out);

/* beam.c: beam search from st, whose last prompt token has run and left logits[n_vocab];
 * fills out->ids / n / stopped / sum_logprob with the best hypothesis. Errors: EM_E_NOMEM,
 * the decoder's. */
em_err wh_beam_search(const struct em_whisper *w, struct wh_state *st, const float *logits,
                      int beam, int max_new, bool ts, struct em_whisper_gen *out);

#endif
