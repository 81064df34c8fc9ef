/* model/gen/engine.h - continuous batching: the decode steps of every live sequence of every
 * clip in flight, run together.
 *
 *   clip threads (any number; the worker's pipeline threads)     engine thread (one)
 *   em_engine_generate(window of a clip, prompts[k]):
 *     reserve KV pages for the window (waits while the budget is held by other clips)
 *     prefill the shared audio prefix (paged cache)
 *     each prompt: cache over the prefix, own prefill (tails batched), first id
 *     hand the k sequences to the engine  ------------------->  joins the live set at the
 *                                                               next step
 *                                                               each step: every live
 *                                                               sequence in groups of
 *                                                               em_dec_max_batch through
 *                                                               em_dec_step_batch (each weight
 *                                                               read once per group), then
 *                                                               each one's own sampler,
 *                                                               penalty history and stop set;
 *                                                               a finished one leaves and its
 *                                                               pages go back to the pool
 *     wait until all k finished  <----------------------------
 *     results; give the pages back
 *
 * Every sequence's rows go through the same operations whatever else is in the step (the
 * decoder's small-n matmul and decode attention give a row the same bits alone or in a
 * batch: model/qwen2audio/decoder.h), so a clip's tokens do not depend on what else is in
 * flight: greedy and seeded sampling give what the clip gets alone on an engine.
 *
 * Memory: every cache (the prefix and each prompt's own positions) is paged from one
 * em_kvpool (model/gen/kvpool.h) under opts.kv_budget bytes. A window reserves all it will
 * need (prefix + every prompt's tail and max_new_tokens) before it starts, so a started
 * window never waits for memory and admission cannot deadlock; a window larger than the
 * whole budget fails at once with EM_E_TOO_LONG naming the sizes.
 *
 * Cancellation: the hook runs before each prompt's own prefill, as in em_generate_batch; a
 * call waiting for memory or for its answers' last step is not interrupted by it.
 *
 * CPU threads: the clip threads' encoders and prefills and the engine's steps all use the
 * qmatmul pool (model/kernels/cpu/qmatmul.h), where a second caller would run on its own
 * thread beside the pool (oversubscribing the cores). So the heavy phases take turns: each
 * step, each window's prefills, and (through em_engine_compute_begin / _end) each caller's
 * own heavy work such as an encoder run hold the engine's compute turn, and each runs on
 * every core. Fetch, decode, log-mel and storage stay outside and overlap. A prefill waits
 * at most one step; steps wait for the prefill in hand (new clips join sooner, so steps
 * carry more rows).
 *
 * Thread-safety: em_engine_generate may be called from any number of threads at once;
 * em_engine_free must not race with it. */
#ifndef EM_ENGINE_H
#define EM_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "model/gen/generate.h"
#include "model/gen/kvpool.h"

struct em_engine;

struct em_engine_opts {
    uint64_t kv_budget; /* bytes of KV cache for every clip in flight; EM_KVPOOL_UNLIMITED */
};
struct em_engine_opts em_engine_opts_default(void); /* unlimited budget */

/* An engine over decoder d (borrowed: must outlive the engine) with its own stepping
 * thread. On EM_OK the caller owns *out (em_engine_free). Errors: EM_E_ARG / EM_E_TOO_LONG
 * (budget, em_kvpool_new), EM_E_NOMEM, EM_E_INTERNAL (thread). */
em_err em_engine_new(const struct em_dec *d, const struct em_engine_opts *o, struct em_engine **out,
                     struct em_errbuf *eb);
/* Stops the thread (no em_engine_generate may be running) and frees. NULL ok. */
void em_engine_free(struct em_engine *e);

/* Where one em_engine_generate call's time went (wall seconds, added to). */
struct em_engine_times {
    double wait_s;    /* waiting for KV pages (admission) */
    double prefill_s; /* the shared prefix's prefill */
    double decode_s;  /* the prompts' own prefills and the decode steps until the last ends */
};

/* One window of one clip: k prompts (ids[i][0..n_ids[i]), params p[i]) whose first shared
 * positions are the same ids (the audio prefix, holding every audio token; 0: no sharing,
 * each prompt then runs whole with the n_audio rows of audio). Blocks until every prompt has
 * finished; res[i] is what em_generate_batch (shared > 0) or em_generate (shared == 0) gives
 * the same prompt. hook (may be NULL) is called before each prompt's own prefill, as in
 * em_generate_batch. times may be NULL. On EM_OK the caller frees every res[i].ids; on
 * error every res[i] is zeroed.
 * Errors: EM_E_ARG (k outside 1..EM_GEN_MAX_BATCH, params, shared not below every prompt's
 * length, a tail holding an audio token), EM_E_TOO_LONG (a prompt over the decoder's
 * positions, or the window's KV cache larger than the whole budget), the decoder's errors,
 * the hook's. */
em_err em_engine_generate(struct em_engine *e, int k, const int32_t *const *ids,
                          const size_t *n_ids, size_t shared, const float *audio, int n_audio,
                          const struct em_gen_params *p, const struct em_gen_hook *hook,
                          struct em_gen_result *res, struct em_engine_times *times,
                          struct em_errbuf *eb);

/* Takes / gives back the compute turn around a caller's heavy work outside the engine (an
 * encoder run); not around waiting, I/O or em_engine_generate (it takes the turn itself).
 * NULL is a no-op. */
void em_engine_compute_begin(struct em_engine *e);
void em_engine_compute_end(struct em_engine *e);

/* Counters (tests, logs). */
struct em_engine_stats {
    uint64_t steps;       /* engine steps run */
    uint64_t rows;        /* sequence rows stepped (sum over steps of live sequences) */
    int max_live;         /* most sequences live in one step */
    size_t page_bytes;    /* of the KV pool (em_kvpool_page_bytes) */
    struct em_kvpool_stats kv;
};
struct em_engine_stats em_engine_stats(struct em_engine *e);

#endif
