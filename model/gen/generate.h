/* model/gen/generate.h - autoregressive generation: one prefill of the prompt (audio rows
 * spliced), then one token per step until a stop token or max_new_tokens.
 *
 * Defaults follow the checkpoint's generation_config.json (model/qwen2audio/config.h): sampling
 * settings, and the stop set = its eos_token_id list plus <|im_end|> (151645) and
 * <|endoftext|> (151643). The repetition penalty sees the whole sequence (prompt, audio
 * placeholders and generated ids), as in HF. Like HF, the returned ids include the stop
 * token that ended generation.
 * Thread-safety: uses only its own cache and sampler; a decoder may serve several calls
 * at once. */
#ifndef EM_GENERATE_H
#define EM_GENERATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "model/qwen2audio/config.h"
#include "model/qwen2audio/decoder.h"
#include "model/gen/sampler.h"

#define EM_GEN_MAX_STOP 16
#define EM_GEN_DEFAULT_MAX_NEW 256 /* when generation_config.json sets none (eval scripts) */

struct em_gen_params {
    struct em_sampler_params sampler;
    int max_new_tokens;             /* >= 1 */
    int n_stop;
    int32_t stop[EM_GEN_MAX_STOP];  /* generation ends after emitting one of these */
};

/* Parameters from a generation config (NULL: greedy, no penalty), stop tokens 151645 and
 * 151643 always included, max_new_tokens from the config or EM_GEN_DEFAULT_MAX_NEW.
 * The config's max_length is not used: it counts the prompt (hundreds of audio tokens), and
 * HF's fallback of 20 would cut every answer short (spec section 9). */
struct em_gen_params em_gen_params_from(const struct em_qa_gen_config *g);

struct em_gen_result {
    int32_t *ids;    /* [n] generated ids, caller frees (free()) */
    size_t n;
    bool stopped;    /* true: ended on a stop token (the last id); false: max_new_tokens */
    int n_prompt;    /* prompt positions prefetched */
};

/* Generates after prompt[n_prompt] whose audio-token positions take audio[n_audio, D].
 * On EM_OK *res is filled (free res->ids). Errors: EM_E_ARG (bad params, prompt ids),
 * EM_E_TOO_LONG (prompt + max_new_tokens over EM_DEC_MAX_TOKENS), the decoder's errors. */
em_err em_generate(const struct em_dec *d, const int32_t *prompt, size_t n_prompt,
                   const float *audio, int n_audio, const struct em_gen_params *p,
                   struct em_gen_result *res, struct em_errbuf *eb);

/* Same, reusing a cache that already holds the first positions of prompt (computed by
 * em_dec_forward on exactly those ids and audio rows, e.g. the audio part that the
 * caption, transcript and events prompts share): the first min(em_kv_len(shared),
 * n_prompt - 1) positions are read from shared in place (em_dec_kv_over: not copied, not
 * modified; shared must not change during the call, and several calls may share it at
 * once) and only the rest of the prompt is run; it must hold no audio token. The result equals em_generate's on the
 * full prompt. Errors: as em_generate; EM_E_ARG if the rest holds an audio token. */
em_err em_generate_shared(const struct em_dec *d, const struct em_kv *shared,
                          const int32_t *prompt, size_t n_prompt,
                          const struct em_gen_params *p, struct em_gen_result *res,
                          struct em_errbuf *eb);

#define EM_GEN_MAX_BATCH 64 /* prompts of one em_generate_batch */

/* Called by em_generate_batch before prompt i's own prefill (i = 0..k-1 in order); a result
 * other than EM_OK ends the call with it (the hook fills eb), e.g. EM_E_CANCELLED. */
struct em_gen_hook {
    em_err (*before_prompt)(void *ctx, int i, struct em_errbuf *eb);
    void *ctx;
};

/* em_generate_shared for k prompts decoded together: each prompt i gets its own cache with
 * the shared prefix under it (as em_generate_shared: read in place), its own prefill of the rest and its
 * first token from its own sampler (params p[i], seeded with p[i].sampler.seed); then every
 * step runs the prompts still generating through em_dec_step_batch (at most
 * em_dec_max_batch per call: 8 on the CPU), so each weight is read once per step for all of them; each
 * applies its own repetition-penalty history, sampler, stop set and max_new_tokens, and a
 * finished prompt leaves the batch. res[i] equals em_generate_shared(d, shared, prompts[i],
 * n_prompts[i], &p[i]) token for token. shared may be NULL (no shared positions; the
 * prompts then may hold no audio token). hook may be NULL.
 * Memory: the k caches are held together, each storing its own positions (n_prompts[i] -
 * the shared ones + p[i].max_new_tokens); a prompt's cache is freed when it finishes. On EM_OK the caller frees every res[i].ids; on error every res[i] is zeroed.
 * Errors: EM_E_ARG (k outside 1..EM_GEN_MAX_BATCH, and as em_generate_shared for any
 * prompt), EM_E_TOO_LONG, the decoder's errors, the hook's. */
em_err em_generate_batch(const struct em_dec *d, const struct em_kv *shared, int k,
                         const int32_t *const *prompts, const size_t *n_prompts,
                         const struct em_gen_params *p, const struct em_gen_hook *hook,
                         struct em_gen_result *res, struct em_errbuf *eb);

#endif
