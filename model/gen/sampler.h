/* model/gen/sampler.h - picks the next token from logits the way HF generate does.
 *
 * Order (ref: transformers GenerationMixin logits processors and warpers):
 *   1. repetition penalty over every distinct id in the sequence so far (prompt included,
 *      audio placeholders included): logit / p if positive, logit * p otherwise; applied
 *      even when greedy;
 *   2. greedy: argmax (first index of the maximum);
 *   3. sampling: / temperature, top-k (keeps every logit >= the k-th largest), top-p (drops
 *      the ascending-sorted tokens whose cumulative probability is <= 1 - top_p, keeping at
 *      least one), softmax, one draw from a seeded xoshiro256** generator.
 * The random stream is earmark's own, so sampled tokens match HF's in distribution only;
 * the same seed gives the same tokens.
 * Thread-safety: a sampler has mutable state (RNG, scratch); one per generation. */
#ifndef EM_SAMPLER_H
#define EM_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "model/qwen2audio/config.h"

struct em_sampler_params {
    bool do_sample;
    float temperature;        /* > 0; used when sampling */
    int top_k;                /* 0 = off */
    float top_p;              /* (0, 1]; 1 = off */
    float repetition_penalty; /* > 0; 1 = off */
    uint64_t seed;
};

/* Greedy, no penalty, temperature 1, top_k 0, top_p 1, seed 0. */
struct em_sampler_params em_sampler_defaults(void);
/* The values of a generation_config.json. */
struct em_sampler_params em_sampler_from_gen(const struct em_qa_gen_config *g);

struct em_sampler;

/* A sampler for vocab-sized logits. Errors: EM_E_ARG (temperature <= 0 while sampling,
 * top_p outside (0, 1], top_k < 0, penalty <= 0, vocab < 1), EM_E_NOMEM. */
em_err em_sampler_new(const struct em_sampler_params *p, int vocab, struct em_sampler **out,
                      struct em_errbuf *eb);
void em_sampler_free(struct em_sampler *s); /* NULL ok */

/* Chooses the next id from logits[vocab] (modified in place) after the sequence hist[n]
 * (ids outside [0, vocab) in hist are ignored). Errors: EM_E_ARG (no finite logit). */
em_err em_sampler_pick(struct em_sampler *s, float *logits, const int32_t *hist, size_t n,
                       int32_t *out);

#endif
