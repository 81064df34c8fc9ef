/* model/whisper/whisper.h - the Whisper family: OpenAI's speech recogniser, run from the
 * CTranslate2 files faster-whisper uses (model.bin, config.json, tokenizer.json; see
 * deploy/fetch-whisper.sh for tiny.en and base) or from a Hugging Face checkpoint
 * (model.safetensors, config.json model_type "whisper", generation_config.json,
 * tokenizer.json).
 *
 *   pcm (<= 30 s window) -> log-mel [n_mels, 3000] (model/audio/mel.h, padded to 30 s)
 *   -> encoder (model/audio/encoder.h, no pooling) -> enc [1500, d]
 *   -> decoder: tokens + learned positions -> L x (self-attn with KV cache, cross-attn over
 *      enc with K/V computed once per window, GELU MLP), pre-LN -> final LN
 *      -> logits = h @ token_embedding^T (tied)
 *   -> greedy or beam search with CTranslate2's logits processors (whisper.cc):
 *      suppress_ids always, suppress_ids_begin on the first step, and with timestamps
 *      ApplyTimestampRules (pairs, non-decreasing, max initial 1.0 s, timestamp when their
 *      total probability beats every text token)
 *   -> ids -> segments (consecutive timestamp pairs; OpenAI transcribe.py) and text.
 *   Prompt: <|startoftranscript|> [<|lang|> <|transcribe|>] [<|notimestamps|>]; English-only
 *   models (n_vocab 51864) take no language or task token; multilingual ones detect the
 *   language from the logits after <|startoftranscript|> over config.json's lang_ids.
 *
 * Thread-safety: an em_whisper is read-only after em_whisper_load and may be shared by
 * threads; each call allocates its own caches and scratch. Errors are common/err.def codes
 * with a one-line detail in the caller's em_errbuf. */
#ifndef EM_WHISPER_H
#define EM_WHISPER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define EM_WHISPER_CTX 448          /* decoder positions (n_text_ctx) */
#define EM_WHISPER_AUDIO_CTX 1500   /* encoder positions */
#define EM_WHISPER_MAX_LAYERS 64
#define EM_WHISPER_MAX_SUPPRESS 4096 /* ids in config.json's suppress lists */
#define EM_WHISPER_MAX_LANGS 200
#define EM_WHISPER_SECONDS_PER_TS 0.02 /* one timestamp token step */
#define EM_WHISPER_MAX_BEAM 16
#define EM_WHISPER_DEFAULT_BEAM 5 /* what faster-whisper and OpenAI's CLI use */
#define EM_WHISPER_DEFAULT_BEST_OF 5 /* sampled candidates at T > 0 (OpenAI's CLI) */
#define EM_WHISPER_MAX_BEST_OF 16
#define EM_WHISPER_MAX_TEMPERATURE 10.0f

struct em_whisper;
struct em_tok;

/* Loads dir in either layout: CTranslate2 (model.bin WhisperSpec with f32/f16/bf16 variables,
 * config.json with suppress_ids, suppress_ids_begin, lang_ids) or, without a model.bin, Hugging
 * Face (model.safetensors through model/loader/safetensors, config.json model_type "whisper"
 * with the head counts, generation_config.json with suppress_tokens, begin_suppress_tokens,
 * lang_to_id); tokenizer.json in both. Weights are borrowed views into the mapped file. On
 * EM_OK the caller owns *out (em_whisper_free). Errors: EM_E_NOTFOUND (a file missing), EM_E_IO,
 * EM_E_MODEL (malformed or inconsistent files; the detail names the file and the tensor),
 * EM_E_NOMEM. */
em_err em_whisper_load(const char *dir, struct em_whisper **out, struct em_errbuf *eb);
void em_whisper_free(struct em_whisper *w); /* NULL ok */
/* The same with the weights in wtype (enum em_wtype, model/kernels/quant.h): -1 as stored
 * (em_whisper_load); EM_WT_Q8_0 quantizes every linear weight and the tied embedding to q8_0
 * at load (model/whisper/weights.c; LayerNorms, biases, convolutions, positions as stored).
 * A CTranslate2 int8 model.bin (weights "<name>" int8 + "<name>_scale" float32 per row) loads
 * either way, its int8 rows kept as q8_0. Errors: em_whisper_load's, EM_E_ARG (other wtype). */
em_err em_whisper_load_as(const char *dir, int wtype, struct em_whisper **out, struct em_errbuf *eb);
/* dir may also be a GGUF file that em_whisper_convert wrote (general.architecture "whisper";
 * model/whisper/gguf.c lists its keys); every key is checked and a bad one is EM_E_MODEL with
 * the file and the key named. */

/* `earmark convert` for Whisper: loads src (either layout above; with wtype EM_WT_Q8_0 as
 * em_whisper_load_as quantizes it) and writes out, one GGUF file with every tensor under the
 * Hugging Face names, the geometry, the suppress / language / special ids, the alignment heads
 * and the vocabulary (model/whisper/gguf.c). wtype: EM_WT_F32 (every tensor f32: the same
 * output as src), EM_WT_F16 (linears and embedding f16), EM_WT_Q8_0 (what --weights q8_0
 * runs). progress (optional) is called before each tensor. Errors: em_whisper_load_as's,
 * EM_E_ARG (another wtype), EM_E_IO (writing out), EM_E_NOMEM. */
em_err em_whisper_convert(const char *src, const char *out, int wtype,
                          void (*progress)(void *ctx, size_t i, size_t n, const char *name, int wtype),
                          void *progress_ctx, struct em_errbuf *eb);

struct em_whisper_info {
    int n_mels, n_vocab, d_model, heads, enc_layers, dec_layers;
    bool multilingual;
    const char *dtype; /* "f16", "f32", "bf16": the stored weights; "q8_0" quantized at load,
                          "int8": a CTranslate2 int8 file */
};
void em_whisper_info(const struct em_whisper *w, struct em_whisper_info *info);
const struct em_tok *em_whisper_tok(const struct em_whisper *w); /* borrowed */

/* Log-mel of pcm[0..n) (n <= 480000) into mel[n_mels * 3000]. Errors: EM_E_ARG, EM_E_NOMEM. */
em_err em_whisper_mel(const struct em_whisper *w, const float *pcm, size_t n, float *mel);
/* Encoder over a full window: mel[n_mels * 3000] -> enc[1500 * d_model] (caller-owned).
 * Errors: the encoder's (EM_E_NOMEM). */
em_err em_whisper_encode(const struct em_whisper *w, const float *mel, float *enc,
                         struct em_errbuf *eb);

struct em_whisper_opts {
    bool timestamps;   /* timestamp tokens (default true); false: <|notimestamps|> */
    int max_new;       /* generated tokens at most; 0: CTranslate2's 448 / 2 = 224 */
    const char *language; /* "en", ...; NULL: English-only models need none, multilingual
                             ones detect it */
    int beam_size;     /* 1 (default): greedy; 2..EM_WHISPER_MAX_BEAM: beam search as
                          CTranslate2 runs it (patience 1, length penalty 1, 2 * beam
                          candidates per step, finished when beam_size hypotheses ended) */
    float temperature; /* 0 (default): greedy or beam; > 0: sampling from softmax(logits / T),
                          best_of candidates, the one with the highest mean log-probability
                          kept (beam_size is then ignored); at most EM_WHISPER_MAX_TEMPERATURE */
    int best_of;       /* sampled candidates at T > 0; 0: EM_WHISPER_DEFAULT_BEST_OF */
    uint64_t seed;     /* sampler seed at T > 0: the same seed gives the same ids */
};
struct em_whisper_opts em_whisper_opts_default(void);

/* What one window decodes to. */
struct em_whisper_gen {
    int32_t *ids;          /* [n] generated ids, end of text not included; owned */
    size_t n;
    bool stopped;          /* ended on <|endoftext|> (else max_new) */
    float no_speech_prob;  /* softmax at <|startoftranscript|> of the no-speech token */
    double sum_logprob;    /* sum of the chosen tokens' log-probabilities (after the rules) */
    char language[8];      /* language code used ("en") */
    float language_prob;   /* multilingual: that language's probability among config.json's
                              lang_ids at <|startoftranscript|> (OpenAI's detect_language:
                              softmax over the language tokens only); English-only: 1 */
    int prompt_tokens;     /* positions run before the first generated token */
};
void em_whisper_gen_clear(struct em_whisper_gen *g); /* frees ids; NULL ok */

/* Greedy or beam search on one encoded window enc[1500 * d_model]. On EM_OK *out is filled (the caller
 * clears it). Errors: EM_E_ARG (bad opts, unknown language), EM_E_NOMEM. */
em_err em_whisper_generate(const struct em_whisper *w, const float *enc,
                           const struct em_whisper_opts *opts, struct em_whisper_gen *out,
                           struct em_errbuf *eb);

/* One timestamped piece of a window's transcript, times in seconds from the window start. */
struct em_whisper_seg {
    double start_s, end_s;
    char *text; /* owned, special tokens dropped */
};

/* Splits generated ids into segments the way OpenAI's transcribe.py does for one window of
 * window_s seconds: a pair of consecutive timestamps closes a segment; without such a pair,
 * one segment from 0 to the last timestamp (or window_s). Ids without timestamps give one
 * segment [0, window_s]. Segments with empty text are dropped. On EM_OK the caller frees
 * each text and *segs. Errors: EM_E_NOMEM, EM_E_TOO_LONG (text over the tokenizer's limit). */
em_err em_whisper_segments(const struct em_whisper *w, const int32_t *ids, size_t n,
                           double window_s, struct em_whisper_seg **segs, size_t *n_segs);

/* OpenAI's no-speech rule for a decoded window: no-speech probability above 0.6 and average
 * log-probability (sum_logprob / (n + 1)) at or below -1. Such a window is skipped. */
bool em_whisper_no_speech(const struct em_whisper_gen *g);

/* OpenAI's compression ratio of a window's text (transcribe.py / decoding.py): the UTF-8 bytes
 * of text[0..len) over the length of their zlib stream at the default level (what Python's
 * zlib.compress(text.encode()) gives). *ratio is 0 for empty text. Errors: EM_E_NOMEM. */
em_err em_whisper_compression_ratio(const char *text, size_t len, double *ratio);

/* OpenAI's temperature fallback test for one decoded window whose text has compression ratio
 * ratio: true (retry at the next temperature) when ratio > 2.4 or the average log-probability
 * (sum_logprob / (n + 1)) < -1, except when the no-speech probability > 0.6 together with
 * that low average (a silent window, skipped instead). */
bool em_whisper_needs_fallback(const struct em_whisper_gen *g, double ratio);

/* OpenAI's decode_with_fallback on one encoded window: base's decoding (beam or greedy) at
 * T = 0, then while em_whisper_needs_fallback holds, sampling at 0.2, 0.4, .. 1.0 with
 * EM_WHISPER_DEFAULT_BEST_OF candidates (seeded from base->seed and the temperature's index);
 * the T = 1.0 result is kept whatever it is. On EM_OK *g is the kept decoding (the caller
 * clears it), *temp its temperature, *ratio its text's compression ratio. Errors: as
 * em_whisper_generate's. */
em_err em_whisper_decode_fallback(const struct em_whisper *w, const float *enc,
                                  const struct em_whisper_opts *base, struct em_whisper_gen *g,
                                  double *temp, double *ratio, struct em_errbuf *eb);

/* Mel frames (10 ms) to move the window on after ids, as OpenAI's transcribe.py seeks: to the
 * last timestamp of the last pair of consecutive timestamps (2 frames per timestamp step),
 * or 0 meaning the whole window (the ids end on a single timestamp, or hold no pair). */
size_t em_whisper_seek_frames(const struct em_whisper *w, const int32_t *ids, size_t n);

/* ---- the model facade's entry (model/model.c) ------------------------------------------ */

struct em_audio;
struct em_model_result;

struct em_whisper_run {
    int max_new;                  /* per window; 0: the default */
    int beam_size;                /* 1: greedy; 0: EM_WHISPER_DEFAULT_BEAM (at T = 0) */
    bool (*cancelled)(void *ctx); /* polled before each window; NULL: never */
    void *cancel_ctx;
    uint64_t seed;                /* the fallback's sampler seed (mixed with each window's
                                     position and temperature): same seed, same records */
};

/* Transcribes audio (16 kHz mono pcm) with OpenAI's long-form procedure (annotate.c): 30 s
 * windows that seek by the last complete segment's timestamp, no-speech windows skipped;
 * per window log-mel, encoder, beam (or greedy) search with timestamps at T = 0, retried by
 * the temperature fallback (em_whisper_needs_fallback) at 0.2, 0.4, .. 1.0 with best_of
 * sampled candidates; each window records the temperature it kept, its average
 * log-probability and compression ratio. Fills r, whose
 * n_prompts, names and tasks the caller has set (every task "transcript"): segments (one per
 * decoded window, each prompt's answer the text it kept), answers, transcript, has_tsegs,
 * language, tsegs, token counts and timings. Errors: EM_E_TOO_SHORT (no samples), EM_E_CANCELLED,
 * EM_E_NOMEM, the encoder's and search's. On error r holds what it held plus partial data
 * (the caller frees it with em_model_result_free). */
em_err em_whisper_annotate(const struct em_whisper *w, const struct em_audio *audio,
                           const struct em_whisper_run *run, struct em_model_result *r,
                           struct em_errbuf *eb);

#endif
