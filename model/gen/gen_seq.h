/* model/gen/gen_seq.h - one generating sequence, the pieces generate.c and engine.c share:
 * its ids (prompt + generated), sampler and cache, the pick of its next id, the batched
 * prefill of several sequences' prompt tails. Internal to model/gen/. Not thread-safe: a
 * sequence is driven by one thread at a time. */
#ifndef EM_GEN_SEQ_H
#define EM_GEN_SEQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/gen/generate.h"

struct em_gen_seq {
    struct em_kv *kv;          /* owned; freed (NULL) once done */
    struct em_sampler *s;      /* owned */
    int32_t *ids;              /* [cap] prompt then generated ids, owned */
    size_t n, n_prompt, cap;   /* cap = n_prompt + max_new_tokens */
    const struct em_gen_params *p; /* borrowed */
    bool done, stopped;
};

/* Checks generation parameters for a prompt of n_prompt ids (EM_E_ARG, EM_E_TOO_LONG). */
em_err em_gen_check(size_t n_prompt, const struct em_gen_params *p, struct em_errbuf *eb);
/* EM_E_ARG when prompt[n_done..n_prompt) holds an audio token (a tail must be text). */
em_err em_gen_check_tail(const struct em_dec *d, const int32_t *prompt, size_t n_prompt,
                         size_t n_done, struct em_errbuf *eb);
/* Zeroes q, copies the prompt, makes its sampler; no cache (the caller sets q->kv). *rest =
 * min(shared, n_prompt - 1): the first position its own prefill runs. p is borrowed.
 * On error q holds what was made (em_gen_seq_release frees it). */
em_err em_gen_seq_init(const struct em_dec *d, struct em_gen_seq *q, const int32_t *prompt,
                       size_t n_prompt, const struct em_gen_params *p, size_t shared,
                       size_t *rest, struct em_errbuf *eb);
/* Picks the next id from logits[V] (modified), appends it; on a stop id or a full sequence
 * sets done and frees the cache. */
em_err em_gen_seq_take(struct em_gen_seq *q, float *logits, struct em_errbuf *eb);
/* The own prefills of q[0..k) (k <= EM_DEC_MAX_BATCH; ids rest[i].. of each, text only) in
 * one em_dec_prefill_batch, then each one's first id. logits: k x V scratch. */
em_err em_gen_seq_prefill(const struct em_dec *d, struct em_gen_seq *q, const size_t *rest,
                          int k, float *logits, struct em_errbuf *eb);
/* res = the generated ids (res->ids malloc'd, the caller frees). EM_E_NOMEM. */
em_err em_gen_seq_result(const struct em_gen_seq *q, struct em_gen_result *res);
void em_gen_seq_release(struct em_gen_seq *q); /* frees and zeroes; a zeroed q is fine */

#endif
