/* model/whisper/beam.c - beam search as CTranslate2 runs it for Whisper (beam B, patience 1,
 * length penalty 1, one hypothesis returned).
 *
 *   step 0: the start token's logits (one row) -> rules -> log-softmax -> top 2B candidates
 *   step s: per live beam b: logits_b -> rules (with b's tokens) -> log-softmax + score_b;
 *           top 2B candidates over all B x n_vocab
 *   the first B candidates become the beams; a candidate that is <|endoftext|> (or any, on the
 *   last step) ends a hypothesis (score = its cumulative log-probability) and its slot takes
 *   the next candidate among the spare B that is not <|endoftext|>
 *   done when B hypotheses have ended (or the last step); best = max score / length
 * Each beam owns a self-attention cache; all share the window's cross-attention keys and
 * values. A beam's cache is copied from its parent when beams are reordered.
 * ref: CTranslate2 src/decoding.cc BeamSearch::search, finalize_hypothesis_score */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/whisper/whisper_impl.h"

struct cand {
    float score;
    int beam;
    int32_t word;
};

struct hyp {
    int32_t *ids;
    int n;
    float score;
};

/* l[n] = log_softmax(l[n]) (float result, double accumulation). */
static void log_softmax(float *l, int n)
{
    double mx = -INFINITY, sum = 0;
    for (int i = 0; i < n; i++) mx = l[i] > mx ? l[i] : mx;
    for (int i = 0; i < n; i++) sum += exp((double)l[i] - mx);
    float lse = (float)(mx + log(sum));
    for (int i = 0; i < n; i++) l[i] -= lse;
}

/* Keeps the best c candidates (score descending, earlier index first on ties) in top[c]. */
static void push_top(struct cand *top, int *k, int c, struct cand x)
{
    if (*k == c && !(x.score > top[c - 1].score)) return;
    int i = *k < c ? (*k)++ : c - 1;
    while (i > 0 && x.score > top[i - 1].score) {
        top[i] = top[i - 1];
        i--;
    }
    top[i] = x;
}

em_err wh_beam_search(const struct em_whisper *w, struct wh_state *st, const float *logits0,
                      int B, int max_new, bool ts, struct em_whisper_gen *out)
{
    const int V = w->n_vocab, C = 2 * B;
    em_err rc = EM_E_NOMEM;
    struct wh_state *cur = calloc((size_t)B, sizeof *cur), *nxt = calloc((size_t)B, sizeof *nxt);
    float *lg = malloc(sizeof(float) * (size_t)B * (size_t)V);
    float *score = calloc((size_t)B, sizeof *score);
    int32_t *seq = malloc(sizeof(int32_t) * (size_t)B * (size_t)(max_new + 1));
    int32_t *seq2 = malloc(sizeof(int32_t) * (size_t)B * (size_t)(max_new + 1));
    struct cand *top = malloc(sizeof *top * (size_t)C);
    struct hyp *hy = calloc((size_t)C, sizeof *hy);
    int n_hy = 0, live = 1, made = 0;
    if (!cur || !nxt || !lg || !score || !seq || !seq2 || !top || !hy) goto done;
    for (; made < B; made++)
        if (wh_state_new_shared(w, &cur[made], st) != EM_OK ||
            wh_state_new_shared(w, &nxt[made], st) != EM_OK) {
            made++;
            goto done;
        }
    wh_state_copy_self(w, &cur[0], st);
    memcpy(lg, logits0, sizeof(float) * (size_t)V);
    for (int s = 0; s < max_new; s++) {
        const bool last = s + 1 == max_new;
        int k = 0;
        for (int b = 0; b < live; b++) {
            float *l = lg + (size_t)b * V;
            wh_apply_rules(w, l, seq + (size_t)b * (max_new + 1), s, ts);
            log_softmax(l, V);
            for (int v = 0; v < V; v++)
                push_top(top, &k, C, (struct cand){l[v] + score[b], b, v});
        }
        int active[EM_WHISPER_MAX_BEAM], spare = B;
        for (int j = 0; j < B && j < k; j++) {
            int next = j;
            if (top[j].word == w->eot || last) {
                struct hyp *h = &hy[n_hy];
                const int32_t *src = seq + (size_t)top[j].beam * (max_new + 1);
                h->n = s + (top[j].word == w->eot ? 0 : 1);
                if (!(h->ids = malloc(sizeof(int32_t) * (size_t)(h->n + 1)))) goto done;
                memcpy(h->ids, src, sizeof(int32_t) * (size_t)s);
                if (h->n > s) h->ids[s] = top[j].word;
                h->score = top[j].score;
                n_hy++;
                for (int c = spare; c < k; c++)
                    if (top[c].word != w->eot) {
                        next = c;
                        spare = c + 1;
                        break;
                    }
            }
            active[j] = next;
        }
        if (last || n_hy >= B || k < B) break;
        for (int j = 0; j < B; j++) {
            const struct cand *c = &top[active[j]];
            int32_t *dst = seq2 + (size_t)j * (max_new + 1);
            memcpy(dst, seq + (size_t)c->beam * (max_new + 1), sizeof(int32_t) * (size_t)s);
            dst[s] = c->word;
            score[j] = c->score;
            wh_state_copy_self(w, &nxt[j], &cur[c->beam]);
        }
        int32_t *t = seq;
        seq = seq2, seq2 = t;
        struct wh_state *u = cur;
        cur = nxt, nxt = u;
        live = B;
        struct wh_state *rows[EM_WHISPER_MAX_BEAM];
        int32_t tok[EM_WHISPER_MAX_BEAM];
        for (int j = 0; j < B; j++) {
            rows[j] = &cur[j];
            tok[j] = seq[(size_t)j * (max_new + 1) + s];
        }
        if ((rc = wh_step_batch(w, rows, tok, B, lg)) != EM_OK) goto done;
        rc = EM_E_NOMEM;
    }
    /* best by score / length (length penalty 1); the first on ties, as a stable sort */
    int best = -1;
    float best_v = 0;
    for (int i = 0; i < n_hy; i++) {
        float v = hy[i].score / (float)hy[i].n;
        if (best < 0 || v > best_v) best = i, best_v = v;
    }
    if (best >= 0) {
        out->ids = hy[best].ids;
        out->n = (size_t)hy[best].n;
        out->sum_logprob = hy[best].score;
        hy[best].ids = NULL;
        /* ended on <|endoftext|> unless it was cut at max_new */
        out->stopped = hy[best].n < max_new;
    } else if (!(out->ids = malloc(sizeof(int32_t)))) {
        goto done;
    }
    rc = EM_OK;
done:
    for (int i = 0; i < made; i++) {
        if (cur) wh_state_free(&cur[i]);
        if (nxt) wh_state_free(&nxt[i]);
    }
    for (int i = 0; hy && i < n_hy; i++) free(hy[i].ids);
    free(cur);
    free(nxt);
    free(lg);
    free(score);
    free(seq);
    free(seq2);
    free(top);
    free(hy);
    return rc;
}
