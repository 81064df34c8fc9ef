/* model/model.h - the model runtime as the worker sees it: load a checkpoint once, annotate
 * decoded clips with it. What worker/ includes (with model/audio/audio.h). The checkpoint picks the
 * family (model/family.h): Qwen2-Audio as below, or Whisper (a CTranslate2 model.bin
 * directory; model/whisper/whisper.h): per <= 30 s window log-mel -> encoder -> beam search
 * with timestamps -> transcript text, language and timestamped segments; it answers
 * only the transcript task (others: EM_E_UNSUPPORTED naming the model).
 *
 *   em_model_load(dir): config.json + generation_config.json, tokenizer files, safetensors
 *     (model/loader) -- or one .gguf from `earmark convert` --, audio tower, projector,
 *     language model; prompt form (base | chat)
 *   em_model_annotate(m, audio[16 kHz mono], prompts[P]):
 *     for each <= 30 s window w (model/audio/chunk.h):
 *       log-mel -> encoder -> projector -> audio rows [N, hidden]
 *       ids_p = prompt p with N <|AUDIO|>            (model/text/prompt.h)
 *       one prefill of the prefix all ids_p share (it holds the audio), then
 *       em_generate_batch: each prompt prefills its own suffix in a cache laid over the
 *       shared one (read in place, not copied), and the prompts still running decode
 *       together, one em_matmul over all of them per weight -> text[w][p]
 *       (a single prompt: em_generate, no shared cache)
 *     merged: caption, transcript, events (model/text/answer.h), answers[p]
 *
 * Thread-safety: an em_model is read-only after em_model_load and may be shared by any
 * number of threads calling em_model_annotate at once; each call allocates its own scratch,
 * caches and samplers. em_model_free must not race with a running annotate.
 * Errors are common/err.def codes with a one-line detail in the caller's em_errbuf. */
#ifndef EM_MODEL_H
#define EM_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "model/audio/audio.h"

#define EM_MODEL_MAX_PROMPTS 16      /* prompts per annotate call */
#define EM_MODEL_MAX_NAME 64         /* bytes of a prompt name */
#define EM_MODEL_MAX_NEW_TOKENS 8192 /* cap on a max_new_tokens override */
#define EM_MODEL_IDENTITY_MAX 160    /* bytes of em_model_identity(), NUL included */

enum em_model_form {
    EM_MODEL_FORM_AUTO = 0, /* chat iff the checkpoint ships a chat template */
    EM_MODEL_FORM_BASE = 1, /* Qwen2-Audio-7B plain prompt (spec section 8.1) */
    EM_MODEL_FORM_CHAT = 2, /* Qwen2-Audio-7B-Instruct ChatML (spec section 8.2) */
};

struct em_backend;

struct em_model_opts {
    enum em_model_form form; /* default EM_MODEL_FORM_AUTO */
    const char *name;        /* identity name; NULL: the directory's last component */
    const char *device;      /* "cpu", "cuda", "cuda:N"; NULL: EARMARK_DEVICE, else cpu
                              * (model/kernels/backend.h em_backend_open) */
    const struct em_backend *backend; /* non-NULL: run on this backend instead of opening
                              * `device` (borrowed: must outlive the model, which never closes
                              * it; tests run the model on a checking backend with it) */
    const char *weights;     /* NULL: as stored; "q8_0": a Whisper checkpoint's linear weights
                                quantized at load (em_whisper_load_as; the identity's dtype
                                reads q8_0). Qwen2-Audio refuses it (EM_E_ARG): convert it
                                with `earmark convert --type q8_0` instead */
};
struct em_model_opts em_model_opts_default(void);

struct em_model;

/* Loads the Hugging Face checkpoint directory dir (config.json, optional
 * generation_config.json, tokenizer.json or vocab.json + merges.txt + tokenizer_config.json,
 * model.safetensors or an index + shards), or a single .gguf file written by `earmark
 * convert` (config, tokenizer and chat template in its metadata; weights memory-mapped, not
 * copied). The form is opts->form, or with AUTO chat when dir has chat_template.jinja or
 * tokenizer_config.json has a "chat_template" string (a GGUF: tokenizer.chat_template),
 * else base. opts may be NULL (defaults). On EM_OK the caller owns *out (em_model_free).
 * Errors (the detail names the file): EM_E_NOTFOUND (dir, config.json or the tokenizer
 * files missing), EM_E_IO, EM_E_MODEL (malformed or inconsistent files), EM_E_ARG (bad
 * opts), EM_E_NOMEM. */
em_err em_model_load(const char *dir, const struct em_model_opts *opts, struct em_model **out,
                     struct em_errbuf *eb);
void em_model_free(struct em_model *m); /* NULL ok */

/* "NAME@CHECKSUM:DTYPE:BACKEND", e.g. "Qwen2-Audio-7B@3f2a9c1d0b4e:bf16:cpu": CHECKSUM is
 * the first 12 hex digits of em_model_checksum. Borrowed, valid while m lives. Stable across
 * loads of the same files. */
const char *em_model_identity(const struct em_model *m);
const char *em_model_name(const struct em_model *m);     /* borrowed */
/* Hex SHA-256 (64 chars) over config.json and, for every safetensors file of the
 * checkpoint in name order, its header JSON, its size and 64 evenly spaced 4 KiB samples
 * of its data: cheap even for 16 GB (no full read), changes with any tensor's name, dtype,
 * shape or offset, and with the weights of a same-shaped checkpoint (a fine-tune; a change
 * confined between samples is not seen). Borrowed. */
const char *em_model_checksum(const struct em_model *m);
const char *em_model_dtype(const struct em_model *m);    /* "bf16", "f16", "f32" */
const char *em_model_backend(const struct em_model *m);  /* "cpu" */
const char *em_model_family(const struct em_model *m);   /* "qwen2-audio" | "whisper" (model/family.h) */
enum em_model_form em_model_form(const struct em_model *m); /* BASE or CHAT, never AUTO */

/* One question to ask of every window. Either task (a built-in: "caption", "transcript",
 * "events"; model/text/prompt.h) or text (free text, at most 4096 bytes, no control tokens).
 * Strings are borrowed for the call. */
struct em_model_prompt {
    const char *name; /* key in answers (1..EM_MODEL_MAX_NAME bytes, unique in the call);
                         NULL: the task name, or "prompt" for free text */
    const char *task; /* built-in task, or NULL when text is set */
    const char *text; /* free text, or NULL */
};

/* Checks prompts[n] as em_model_annotate would (count, tasks, names, free text) without
 * running anything: for validating a batch's prompts once, before any audio.
 * Errors: EM_E_ARG (detail names the prompt), EM_E_UNSUPPORTED (not a task of the model's
 * family), EM_E_NOMEM. */
em_err em_model_check_prompts(const struct em_model *m, const struct em_model_prompt *prompts,
                              size_t n, struct em_errbuf *eb);

/* Changes to the checkpoint's generation_config.json defaults; zero-initialise and set what
 * differs ({0} changes nothing). Field for field the wire's Generation message
 * (proto/earmark.proto), where 0 also means "not set". greedy turns sampling off; the
 * sampling fields matter only when the checkpoint's config samples (do_sample), as in HF. */
struct em_gen_params_override {
    int max_new_tokens;       /* per window and prompt, 1..EM_MODEL_MAX_NEW_TOKENS; 0: default */
    bool greedy;              /* argmax decoding (the repetition penalty still applies, as HF) */
    float temperature;        /* > 0 replaces the config's (used when sampling, as in HF); 0: keep */
    int top_k;                /* > 0 replaces the config's; 0: keep */
    float top_p;              /* (0, 1] replaces the config's; 0: keep */
    float repetition_penalty; /* > 0 replaces the config's; 0: keep */
    bool set_seed;            /* use seed below (default seed 0) */
    uint64_t seed;            /* sampling seed; the same seed gives the same tokens */
    /* Optional: polled before each window and each prompt's generation (not inside one);
     * returning true ends the call with EM_E_CANCELLED (a Cancel or a drain deadline). */
    bool (*cancelled)(void *ctx);
    void *cancel_ctx;
};

/* Checks an override as em_model_annotate would. Errors: EM_E_ARG. */
em_err em_model_check_gen(const struct em_gen_params_override *gen, struct em_errbuf *eb);

/* One prompt on one window. */
struct em_model_answer {
    char *text;      /* decoded text, special tokens dropped, otherwise raw; owned */
    int32_t *ids;    /* [n_ids] generated ids, the stop token included if one ended it; owned */
    size_t n_ids;
    bool stopped;    /* ended on a stop token (else max_new_tokens) */
};

struct em_model_segment {
    double start_s, end_s;           /* window bounds in the clip, seconds */
    int audio_tokens;                /* <|AUDIO|> positions of this window */
    struct em_model_answer *answers; /* [n_prompts], in prompt order */
    double no_speech_prob;           /* Whisper: the window's no-speech probability (0 else) */
    double temperature;              /* Whisper: the temperature of the kept decoding */
    double avg_logprob;              /* Whisper: its sum of log-probabilities / (tokens + 1) */
    double compression_ratio;        /* Whisper: its text's zlib compression ratio */
};

/* One timestamped piece of a transcript (families that produce them: Whisper). */
struct em_model_tseg {
    double start_s, end_s; /* in the clip, seconds */
    char *text;            /* owned */
};

/* What em_model_annotate returns; plain data owned by the caller (em_model_result_free). */
struct em_model_result {
    size_t n_prompts;
    char **names;       /* [n_prompts] prompt names (the resolved ones) */
    char **tasks;       /* [n_prompts] built-in task name, or NULL for free text */
    size_t n_segments;  /* windows that produced answers (a sub-20 ms tail is skipped) */
    struct em_model_segment *segments;
    /* Merged over the segments; NULL when no prompt has that task. */
    char *caption;      /* normalised segment captions joined with " " */
    char *transcript;   /* normalised segment transcripts joined with " " */
    char **events;      /* [n_events] tags from every "events" answer (model/text/answer.h):
                           lower case, deduplicated, in order of first appearance */
    size_t n_events;
    bool has_events;    /* a prompt had the events task (events may still be empty) */
    char **answers;     /* [n_prompts] each prompt's normalised segment texts joined with " " */
    /* Token counts, summed over segments and prompts. */
    long audio_tokens;  /* <|AUDIO|> positions (per window, counted once) */
    long prompt_tokens; /* prompt ids run through the decoder (shared prefix once per window) */
    long new_tokens;    /* generated ids */
    /* Wall seconds (monotonic): encode = mel + encoder + projector; prefill = the prefix
     * (audio) the prompts of each window share, prefilled once (0 with a single prompt,
     * whose whole prefill is then in decode); decode = each prompt's own prefill + its
     * decode loop. tokens_per_s = new_tokens / decode_s (0 when decode_s is 0). */
    double encode_s, prefill_s, decode_s, tokens_per_s;
    double kv_wait_s;   /* on an engine: waiting for KV-cache memory (admission), not in the above */
    /* Copied from the model so a result describes itself. */
    char identity[EM_MODEL_IDENTITY_MAX];
    char form[8];       /* "base" | "chat" */
    /* A timestamped transcript (Whisper): has_tsegs is false for Qwen2-Audio, whose
     * transcript is the text above only. */
    bool has_tsegs;
    char language[8];   /* language code of the transcript ("en"); "" when not identified */
    struct em_model_tseg *tsegs; /* [n_tsegs], in time order */
    size_t n_tsegs;
};

/* Runs every <= 30 s window of audio (em_audio from model/audio/audio.h; only pcm and n are read)
 * with every prompt. gen may be NULL (checkpoint defaults). On EM_OK the caller owns *out
 * (em_model_result_free). A trailing window too short for one audio token (< 321 samples)
 * is skipped when an earlier window exists.
 * Errors: EM_E_ARG (no prompts or more than EM_MODEL_MAX_PROMPTS, unknown task, bad or
 * duplicate name, bad free text, bad override), EM_E_TOO_SHORT (audio under one audio token),
 * EM_E_CANCELLED (gen->cancelled said so), EM_E_TOO_LONG, EM_E_NOMEM, the decoder's and
 * encoder's errors, EM_E_UNSUPPORTED (a task or free text the model's family does not answer,
 * e.g. caption on Whisper; the detail names the model). On error *out is NULL.
 * Whisper: beam search (beam 5) by default, greedy with gen->greedy; sampling settings are
 * not used; max_new_tokens caps each window's tokens; every transcript prompt gets the same
 * window text. */
em_err em_model_annotate(const struct em_model *m, const struct em_audio *audio,
                         const struct em_model_prompt *prompts, size_t n_prompts,
                         const struct em_gen_params_override *gen,
                         struct em_model_result **out, struct em_errbuf *eb);

void em_model_result_free(struct em_model_result *r); /* NULL ok */

/* ---- continuous batching (model/gen/engine.h) ---------------------------------------------
 * A worker holding several clips makes one engine for the model and annotates every clip on
 * it: each clip's thread runs its windows' front end and prefills, and the engine steps the
 * decoding prompts of every clip together (one pass over the weights for up to
 * em_dec_max_batch sequences), under one KV-cache budget (admission waits for memory). */
struct em_engine;

/* An engine over m's language model with kv_budget bytes of KV cache
 * (EM_KVPOOL_UNLIMITED = 0: no limit); m must outlive it; em_engine_free. Errors:
 * EM_E_UNSUPPORTED (Whisper decodes on its own), EM_E_TOO_LONG (a budget under one KV page:
 * the message gives the page size), EM_E_ARG, EM_E_NOMEM, EM_E_INTERNAL. */
em_err em_model_engine_new(const struct em_model *m, uint64_t kv_budget, struct em_engine **out,
                           struct em_errbuf *eb);
/* em_model_annotate with the decoding on eng (NULL: em_model_annotate itself). The tokens are
 * those the clip gets alone on an engine, whatever else is in flight. Adds to the errors:
 * EM_E_TOO_LONG when one window (its audio prefix, every prompt and its max_new_tokens)
 * needs more KV cache than the engine's whole budget. Ignored for Whisper. */
em_err em_model_annotate_on(const struct em_model *m, struct em_engine *eng,
                            const struct em_audio *audio, const struct em_model_prompt *prompts,
                            size_t n_prompts, const struct em_gen_params_override *gen,
                            struct em_model_result **out, struct em_errbuf *eb);

#endif
