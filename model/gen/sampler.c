/* model/gen/sampler.c - repetition penalty, greedy, temperature / top-k / top-p sampling.
 * ref: transformers RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper,
 * TopKLogitsWarper, TopPLogitsWarper (min_tokens_to_keep 1). */
#include "model/gen/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct cand {
    float logit;
    int32_t id;
};

struct em_sampler {
    struct em_sampler_params p;
    int vocab;
    uint64_t rng[4];
    uint8_t *seen;      /* [vocab] */
    struct cand *cand;  /* [vocab] */
    double *prob;       /* [vocab] */
};

struct em_sampler_params em_sampler_defaults(void)
{
    return (struct em_sampler_params){false, 1.0f, 0, 1.0f, 1.0f, 0};
}

struct em_sampler_params em_sampler_from_gen(const struct em_qa_gen_config *g)
{
    struct em_sampler_params p = em_sampler_defaults();
    p.do_sample = g->do_sample != 0;
    if (g->temperature > 0) p.temperature = g->temperature;
    if (g->top_k >= 0) p.top_k = g->top_k;
    if (g->top_p > 0 && g->top_p <= 1) p.top_p = g->top_p;
    if (g->repetition_penalty > 0) p.repetition_penalty = g->repetition_penalty;
    return p;
}

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next_u64(uint64_t s[4]) /* xoshiro256** */
{
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

em_err em_sampler_new(const struct em_sampler_params *p, int vocab, struct em_sampler **out,
                      struct em_errbuf *eb)
{
    *out = NULL;
    if (vocab < 1 || p->top_k < 0 || !(p->top_p > 0 && p->top_p <= 1) ||
        !(p->repetition_penalty > 0) || (p->do_sample && !(p->temperature > 0)))
        return em_errf(eb, EM_E_ARG, "sampler: temperature %g top_k %d top_p %g penalty %g vocab %d",
                       p->temperature, p->top_k, p->top_p, p->repetition_penalty, vocab);
    struct em_sampler *s = calloc(1, sizeof *s);
    if (!s) return EM_E_NOMEM;
    s->p = *p;
    s->vocab = vocab;
    uint64_t x = p->seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix(&x);
    s->seen = calloc((size_t)vocab, 1);
    s->cand = malloc((size_t)vocab * sizeof *s->cand);
    s->prob = malloc((size_t)vocab * sizeof *s->prob);
    if (!s->seen || !s->cand || !s->prob) {
        em_sampler_free(s);
        return EM_E_NOMEM;
    }
    *out = s;
    return EM_OK;
}

void em_sampler_free(struct em_sampler *s)
{
    if (!s) return;
    free(s->seen);
    free(s->cand);
    free(s->prob);
    free(s);
}

static void penalize(struct em_sampler *s, float *logits, const int32_t *hist, size_t n)
{
    const float pen = s->p.repetition_penalty;
    if (pen == 1.0f) return;
    for (size_t i = 0; i < n; i++) {
        int32_t id = hist[i];
        if (id < 0 || id >= s->vocab || s->seen[id]) continue;
        s->seen[id] = 1;
        logits[id] = logits[id] < 0 ? logits[id] * pen : logits[id] / pen;
    }
    for (size_t i = 0; i < n; i++)
        if (hist[i] >= 0 && hist[i] < s->vocab) s->seen[hist[i]] = 0;
}

static int cand_desc(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* k-th largest logit among c[0..n) (1-based k <= n), by quickselect on a copy in prob. */
static float kth_largest(struct em_sampler *s, size_t n, size_t k)
{
    double *a = s->prob;
    for (size_t i = 0; i < n; i++) a[i] = s->cand[i].logit;
    size_t lo = 0, hi = n - 1, want = k - 1; /* index in descending order */
    while (lo < hi) {
        double piv = a[lo + (hi - lo) / 2];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] > piv) i++;
            while (a[j] < piv) j--;
            if (i <= j) {
                double t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                if (j == 0) break;
                j--;
            }
        }
        if (want <= j) hi = j;
        else if (want >= i) lo = i;
        else break;
    }
    return (float)a[want];
}

em_err em_sampler_pick(struct em_sampler *s, float *logits, const int32_t *hist, size_t n,
                       int32_t *out)
{
    penalize(s, logits, hist, n);
    if (!s->p.do_sample) {
        int32_t best = -1;
        for (int32_t i = 0; i < s->vocab; i++)
            if (!isnan(logits[i]) && logits[i] > -INFINITY && (best < 0 || logits[i] > logits[best]))
                best = i;
        if (best < 0) return EM_E_ARG;
        *out = best;
        return EM_OK;
    }
    size_t nc = 0;
    for (int32_t i = 0; i < s->vocab; i++) {
        float v = logits[i] / s->p.temperature;
        if (!isnan(v) && v > -INFINITY) s->cand[nc++] = (struct cand){v, i};
    }
    if (nc == 0) return EM_E_ARG;
    if (s->p.top_k > 0 && (size_t)s->p.top_k < nc) {
        float th = kth_largest(s, nc, (size_t)s->p.top_k);
        size_t k = 0;
        for (size_t i = 0; i < nc; i++)
            if (s->cand[i].logit >= th) s->cand[k++] = s->cand[i];
        nc = k;
    }
    qsort(s->cand, nc, sizeof *s->cand, cand_desc);
    double mx = s->cand[0].logit, sum = 0;
    for (size_t i = 0; i < nc; i++) sum += s->prob[i] = exp((double)s->cand[i].logit - mx);
    for (size_t i = 0; i < nc; i++) s->prob[i] /= sum;
    if (s->p.top_p < 1.0f) {
        /* ascending cumulative sum: tokens from the tail whose cumulative <= 1 - top_p go */
        double cum = 0, lim = 1.0 - (double)s->p.top_p;
        size_t keep = nc;
        for (size_t i = nc; i-- > 1;) {
            cum += s->prob[i];
            if (cum <= lim) keep = i;
            else break;
        }
        nc = keep;
        sum = 0;
        for (size_t i = 0; i < nc; i++) sum += s->prob[i];
        for (size_t i = 0; i < nc; i++) s->prob[i] /= sum;
    }
    double r = (double)(next_u64(s->rng) >> 11) * (1.0 / 9007199254740992.0), acc = 0;
    *out = s->cand[nc - 1].id;
    for (size_t i = 0; i < nc; i++) {
        acc += s->prob[i];
        if (r < acc) {
            *out = s->cand[i].id;
            break;
        }
    }
    return EM_OK;
}
