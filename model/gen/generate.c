/* model/gen/generate.c - prefill + decode loop over model/decoder with model/sampler.
 * ref: transformers GenerationMixin._sample (stopping on any eos id, output includes it). */
#include "model/gen/generate.h"
#include "model/gen/gen_seq.h"

#include <stdlib.h>
#include <string.h>

#include "model/text/tokenizer.h"

static void add_stop(struct em_gen_params *p, int32_t id)
{
    for (int i = 0; i < p->n_stop; i++)
        if (p->stop[i] == id) return;
    if (p->n_stop < EM_GEN_MAX_STOP) p->stop[p->n_stop++] = id;
}

struct em_gen_params em_gen_params_from(const struct em_qa_gen_config *g)
{
    struct em_gen_params p;
    memset(&p, 0, sizeof p);
    p.sampler = g ? em_sampler_from_gen(g) : em_sampler_defaults();
    p.max_new_tokens = g && g->max_new_tokens > 0 ? g->max_new_tokens : EM_GEN_DEFAULT_MAX_NEW;
    /* exactly the checkpoint's eos ids, as transformers stops (config.c resolves them) */
    for (int i = 0; g && i < g->n_eos && i < EM_CFG_MAX_EOS; i++)
        if (g->eos_token_id[i] >= 0) add_stop(&p, g->eos_token_id[i]);
    return p;
}

static bool is_stop(const struct em_gen_params *p, int32_t id)
{
    for (int i = 0; i < p->n_stop; i++)
        if (p->stop[i] == id) return true;
    return false;
}

/* Runs prompt[n_done..n_prompt) on top of the n_done positions already in kv, then the
 * decode loop. kv has room for n_prompt + max_new_tokens positions. */
static em_err run(const struct em_dec *d, struct em_kv *kv, const int32_t *prompt,
                  size_t n_prompt, size_t n_done, const float *audio, int n_audio,
                  const struct em_gen_params *p, struct em_gen_result *res, struct em_errbuf *eb)
{
    const int V = em_dec_vocab(d);
    size_t cap = n_prompt + (size_t)p->max_new_tokens;
    struct em_sampler *s = NULL;
    float *logits = malloc((size_t)V * sizeof *logits);
    int32_t *seq = malloc(cap * sizeof *seq);
    em_err rc = EM_E_NOMEM;
    if (!logits || !seq) goto done;
    if ((rc = em_sampler_new(&p->sampler, V, &s, eb)) != EM_OK) goto done;
    memcpy(seq, prompt, n_prompt * sizeof *seq);
    size_t n = n_prompt;
    rc = em_dec_forward(d, kv, prompt + n_done, (int)(n_prompt - n_done), audio, n_audio,
                        EM_DEC_LOGITS_LAST, logits, eb);
    while (rc == EM_OK) {
        int32_t next;
        if ((rc = em_sampler_pick(s, logits, seq, n, &next)) != EM_OK) {
            rc = em_errf(eb, rc, "generate: no finite logit at step %zu", n - n_prompt);
            break;
        }
        seq[n++] = next;
        if (is_stop(p, next)) {
            res->stopped = true;
            break;
        }
        if (n == cap) break;
        rc = em_dec_forward(d, kv, &next, 1, NULL, 0, EM_DEC_LOGITS_LAST, logits, eb);
    }
    if (rc == EM_OK) {
        res->n = n - n_prompt;
        res->ids = malloc((res->n ? res->n : 1) * sizeof *res->ids);
        if (!res->ids) rc = EM_E_NOMEM;
        else memcpy(res->ids, seq + n_prompt, res->n * sizeof *res->ids);
        res->n_prompt = (int)n_prompt;
    }
done:
    if (rc != EM_OK) memset(res, 0, sizeof *res);
    em_sampler_free(s);
    free(logits);
    free(seq);
    return rc;
}

static em_err check_params(size_t n_prompt, const struct em_gen_params *p, struct em_errbuf *eb)
{
    if (n_prompt < 1 || p->max_new_tokens < 1)
        return em_errf(eb, EM_E_ARG, "generate: %zu prompt ids, max_new_tokens %d", n_prompt,
                       p->max_new_tokens);
    if (n_prompt > (size_t)EM_DEC_MAX_TOKENS - (size_t)p->max_new_tokens)
        return em_errf(eb, EM_E_TOO_LONG, "generate: %zu prompt ids + %d new exceed %d positions",
                       n_prompt, p->max_new_tokens, EM_DEC_MAX_TOKENS);
    return EM_OK;
}

em_err em_generate(const struct em_dec *d, const int32_t *prompt, size_t n_prompt,
                   const float *audio, int n_audio, const struct em_gen_params *p,
                   struct em_gen_result *res, struct em_errbuf *eb)
{
    memset(res, 0, sizeof *res);
    em_err rc = check_params(n_prompt, p, eb);
    if (rc != EM_OK) return rc;
    struct em_kv *kv = NULL;
    if ((rc = em_dec_kv_new(d, (int)(n_prompt + (size_t)p->max_new_tokens), &kv, eb)) != EM_OK)
        return rc;
    rc = run(d, kv, prompt, n_prompt, 0, audio, n_audio, p, res, eb);
    em_kv_free(kv);
    return rc;
}

em_err em_generate_shared(const struct em_dec *d, const struct em_kv *shared,
                          const int32_t *prompt, size_t n_prompt,
                          const struct em_gen_params *p, struct em_gen_result *res,
                          struct em_errbuf *eb)
{
    memset(res, 0, sizeof *res);
    em_err rc = check_params(n_prompt, p, eb);
    if (rc != EM_OK) return rc;
    size_t n_done = (size_t)em_kv_len(shared);
    if (n_done > n_prompt - 1) n_done = n_prompt - 1; /* the last prompt id gives the logits */
    if ((rc = em_gen_check_tail(d, prompt, n_prompt, n_done, eb)) != EM_OK) return rc;
    struct em_kv *kv = NULL;
    int cap = (int)(n_prompt + (size_t)p->max_new_tokens);
    if ((rc = em_dec_kv_over(d, shared, (int)n_done, cap, &kv, eb)) != EM_OK) return rc;
    rc = run(d, kv, prompt, n_prompt, n_done, NULL, 0, p, res, eb);
    em_kv_free(kv);
    return rc;
}

/* ---- batched decode ------------------------------------------------------------------------ */

em_err em_gen_check(size_t n_prompt, const struct em_gen_params *p, struct em_errbuf *eb)
{
    return check_params(n_prompt, p, eb);
}

em_err em_gen_check_tail(const struct em_dec *d, const int32_t *prompt, size_t n_prompt,
                         size_t n_done, struct em_errbuf *eb)
{
    for (size_t i = n_done; i < n_prompt; i++)
        if (prompt[i] == em_dec_audio_token(d))
            return em_errf(eb, EM_E_ARG, "generate: audio token at %zu after the shared %zu positions",
                           i, n_done);
    return EM_OK;
}

em_err em_gen_seq_take(struct em_gen_seq *q, float *logits, struct em_errbuf *eb)
{
    int32_t next;
    em_err rc = em_sampler_pick(q->s, logits, q->ids, q->n, &next);
    if (rc != EM_OK) return em_errf(eb, rc, "generate: no finite logit at step %zu", q->n - q->n_prompt);
    q->ids[q->n++] = next;
    if (is_stop(q->p, next)) q->stopped = q->done = true;
    else if (q->n == q->cap) q->done = true;
    if (q->done) { /* its cache is no longer needed */
        em_kv_free(q->kv);
        q->kv = NULL;
    }
    return EM_OK;
}

em_err em_gen_seq_init(const struct em_dec *d, struct em_gen_seq *q, const int32_t *prompt,
                       size_t n_prompt, const struct em_gen_params *p, size_t shared,
                       size_t *rest, struct em_errbuf *eb)
{
    memset(q, 0, sizeof *q);
    q->p = p;
    q->n_prompt = n_prompt;
    q->cap = n_prompt + (size_t)p->max_new_tokens;
    size_t n_done = shared;
    if (n_done > n_prompt - 1) n_done = n_prompt - 1;
    if (!(q->ids = malloc(q->cap * sizeof *q->ids))) return EM_E_NOMEM;
    memcpy(q->ids, prompt, n_prompt * sizeof *q->ids);
    q->n = n_prompt;
    *rest = n_done;
    return em_sampler_new(&p->sampler, em_dec_vocab(d), &q->s, eb);
}

void em_gen_seq_release(struct em_gen_seq *q)
{
    em_kv_free(q->kv);
    em_sampler_free(q->s);
    free(q->ids);
    memset(q, 0, sizeof *q);
}

em_err em_gen_seq_result(const struct em_gen_seq *q, struct em_gen_result *res)
{
    res->n = q->n - q->n_prompt;
    res->stopped = q->stopped;
    res->n_prompt = (int)q->n_prompt;
    if (!(res->ids = malloc((res->n ? res->n : 1) * sizeof *res->ids))) return EM_E_NOMEM;
    memcpy(res->ids, q->ids + q->n_prompt, res->n * sizeof *res->ids);
    return EM_OK;
}

/* Cache of prompt q (over the shared positions, read in place), its ids and sampler; *rest
 * = the first prompt position its own prefill runs. */
static em_err start(const struct em_dec *d, const struct em_kv *shared, struct em_gen_seq *q,
                    const int32_t *prompt, size_t n_prompt, const struct em_gen_params *p,
                    size_t *rest, struct em_errbuf *eb)
{
    em_err rc = em_gen_seq_init(d, q, prompt, n_prompt, p, shared ? (size_t)em_kv_len(shared) : 0,
                                rest, eb);
    if (rc == EM_OK) rc = em_gen_check_tail(d, prompt, n_prompt, *rest, eb);
    if (rc != EM_OK) return rc;
    return shared ? em_dec_kv_over(d, shared, (int)*rest, (int)q->cap, &q->kv, eb)
                  : em_dec_kv_new(d, (int)q->cap, &q->kv, eb);
}

em_err em_gen_seq_prefill(const struct em_dec *d, struct em_gen_seq *q, const size_t *rest,
                          int k, float *logits, struct em_errbuf *eb)
{
    struct em_kv *kv[EM_DEC_MAX_BATCH] = {0};
    const int32_t *ids[EM_DEC_MAX_BATCH] = {0};
    int n[EM_DEC_MAX_BATCH] = {0};
    if (k < 1 || k > EM_DEC_MAX_BATCH)
        return em_errf(eb, EM_E_ARG, "generate: prefill of %d sequences, expected 1..%d", k,
                       EM_DEC_MAX_BATCH);
    for (int i = 0; i < k; i++) {
        kv[i] = q[i].kv;
        ids[i] = q[i].ids + rest[i];
        n[i] = (int)(q[i].n_prompt - rest[i]);
    }
    em_err rc = em_dec_prefill_batch(d, kv, ids, n, k, logits, eb);
    for (int i = 0; rc == EM_OK && i < k; i++)
        rc = em_gen_seq_take(&q[i], logits + (size_t)i * (size_t)em_dec_vocab(d), eb);
    return rc;
}

em_err em_generate_batch(const struct em_dec *d, const struct em_kv *shared, int k,
                         const int32_t *const *prompts, const size_t *n_prompts,
                         const struct em_gen_params *p, const struct em_gen_hook *hook,
                         struct em_gen_result *res, struct em_errbuf *eb)
{
    if (k < 1 || k > EM_GEN_MAX_BATCH || !prompts || !n_prompts || !p || !res)
        return em_errf(eb, EM_E_ARG, "generate: batch of %d prompts, expected 1..%d", k,
                       EM_GEN_MAX_BATCH);
    memset(res, 0, (size_t)k * sizeof *res);
    const size_t V = (size_t)em_dec_vocab(d);
    em_err rc;
    for (int i = 0; i < k; i++)
        if ((rc = check_params(n_prompts[i], &p[i], eb)) != EM_OK) return rc;
    struct em_gen_seq *q = calloc((size_t)k, sizeof *q);
    size_t *rest = calloc((size_t)k, sizeof *rest);
    const int mb = em_dec_max_batch(d); /* sequences per batched call */
    float *logits = malloc((size_t)mb * V * sizeof *logits);
    rc = EM_E_NOMEM;
    if (!q || !rest || !logits) goto done;
    rc = EM_OK;
    for (int i = 0; rc == EM_OK && i < k; i++) {
        if (hook && hook->before_prompt && (rc = hook->before_prompt(hook->ctx, i, eb)) != EM_OK)
            break;
        rc = start(d, shared, &q[i], prompts[i], n_prompts[i], &p[i], &rest[i], eb);
        /* the own prefills of up to mb prompts run together */
        const int i0 = i - i % mb;
        if (rc == EM_OK && ((i + 1) % mb == 0 || i + 1 == k))
            rc = em_gen_seq_prefill(d, q + i0, rest + i0, i + 1 - i0, logits, eb);
    }
    while (rc == EM_OK) {
        struct em_kv *kv[EM_DEC_MAX_BATCH];
        int32_t ids[EM_DEC_MAX_BATCH];
        int at[EM_DEC_MAX_BATCH], n = 0;
        for (int i = 0; i < k && n < mb; i++)
            if (!q[i].done) {
                kv[n] = q[i].kv;
                ids[n] = q[i].ids[q[i].n - 1];
                at[n++] = i;
            }
        if (n == 0) break;
        if ((rc = em_dec_step_batch(d, kv, ids, n, logits, eb)) != EM_OK) break;
        for (int j = 0; rc == EM_OK && j < n; j++) rc = em_gen_seq_take(&q[at[j]], logits + (size_t)j * V, eb);
    }
    for (int i = 0; rc == EM_OK && i < k; i++) rc = em_gen_seq_result(&q[i], &res[i]);
done:
    if (rc != EM_OK) {
        for (int i = 0; i < k; i++) free(res[i].ids);
        memset(res, 0, (size_t)k * sizeof *res);
    }
    for (int i = 0; q && i < k; i++) em_gen_seq_release(&q[i]);
    free(q);
    free(rest);
    free(logits);
    return rc;
}
