/* model/generate.c - prefill + decode loop over model/decoder with model/sampler.
 * ref: transformers GenerationMixin._sample (stopping on any eos id, output includes it). */
#include "model/generate.h"

#include <stdlib.h>
#include <string.h>

#include "model/tokenizer.h"

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
    for (int i = 0; g && i < g->n_eos && i < EM_CFG_MAX_EOS; i++)
        if (g->eos_token_id[i] >= 0) add_stop(&p, g->eos_token_id[i]);
    add_stop(&p, EM_TOK_IM_END);
    add_stop(&p, EM_TOK_ENDOFTEXT);
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
    for (size_t i = n_done; i < n_prompt; i++)
        if (prompt[i] == em_dec_audio_token(d))
            return em_errf(eb, EM_E_ARG, "generate: audio token at %zu after the shared %zu positions",
                           i, n_done);
    struct em_kv *kv = NULL;
    if ((rc = em_dec_kv_new(d, (int)(n_prompt + (size_t)p->max_new_tokens), &kv, eb)) != EM_OK)
        return rc;
    if ((rc = em_kv_copy_prefix(kv, shared, (int)n_done)) != EM_OK)
        rc = em_errf(eb, rc, "generate: the shared cache does not fit this decoder");
    else
        rc = run(d, kv, prompt, n_prompt, n_done, NULL, 0, p, res, eb);
    em_kv_free(kv);
    return rc;
}
