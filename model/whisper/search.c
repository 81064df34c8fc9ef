/* model/whisper/search.c - Whisper's prompt, logits rules, greedy search and segments.
 *
 *   prompt   = <|startoftranscript|> [<|lang|> <|transcribe|>] [<|notimestamps|>]
 *   step s   : logits of the last token -> rules -> argmax; <|endoftext|> ends (not kept)
 *   rules    : (ref: CTranslate2 decoding.cc make_logits_processors, whisper.cc
 *              WhisperReplica::generate and ApplyTimestampRules, in this order)
 *     1. suppress_ids (config.json) at every step
 *     2. suppress_ids_begin at step 0 (the blank " " and <|endoftext|>)
 *     3. with timestamps: <|notimestamps|> never; step 0: only timestamps up to
 *        ts_begin + 50 (1.0 s); then a timestamp after a text token must be followed by a
 *        timestamp or <|endoftext|> ... (pairs), after a pair only text; timestamps never go
 *        below the last one; and where the summed probability of the timestamps beats every
 *        text token, only timestamps (computed after 1-3 are applied)
 *   T > 0    : best_of candidates sampled from softmax(logits / T) (seeded), the best mean
 *              log-probability kept (ref: openai/whisper decoding.py, MaximumLikelihoodRanker)
 *   max steps: min(448 / 2, 448 - (prompt length - 1)), as CTranslate2 sets max_length
 *   no-speech: softmax of the raw logits at <|startoftranscript|>, the no-speech token's share
 * ref: openai/whisper decoding.py ApplyTimestampRules, SuppressBlank, SuppressTokens;
 *      transcribe.py (segments from consecutive timestamp tokens) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/gen/sampler.h"
#include "model/whisper/whisper_impl.h"

#define WH_MAX_INITIAL_TS 50 /* max_initial_timestamp 1.0 s / 0.02 s */

struct em_whisper_opts em_whisper_opts_default(void)
{
    return (struct em_whisper_opts){.timestamps = true, .max_new = 0, .language = NULL, .beam_size = 1,
                                    .temperature = 0.0f, .best_of = 0, .seed = 0};
}

void em_whisper_gen_clear(struct em_whisper_gen *g)
{
    if (!g) return;
    free(g->ids);
    g->ids = NULL;
    g->n = 0;
}

static void mask(float *l, int32_t from, int32_t to) /* [from, to) */
{
    for (int32_t i = from; i < to; i++) l[i] = -INFINITY;
}

/* Rules 1-3 on logits l for generated ids gen[0..s). */
void wh_apply_rules(const struct em_whisper *w, float *l, const int32_t *gen, int s, bool ts)
{
    for (int i = 0; i < w->n_suppress; i++) l[w->suppress[i]] = -INFINITY;
    if (s == 0)
        for (int i = 0; i < w->n_suppress_begin; i++) l[w->suppress_begin[i]] = -INFINITY;
    if (!ts) return;
    l[w->no_timestamps] = -INFINITY;
    if (s == 0) {
        mask(l, 0, w->ts_begin);
        mask(l, w->ts_begin + WH_MAX_INITIAL_TS + 1, w->ts_end + 1);
        return;
    }
    int32_t last = gen[s - 1];
    if (last >= w->ts_begin) {
        int32_t pen = s - 1 > 0 ? gen[s - 2] : last;
        if (pen >= w->ts_begin) { /* after a pair: text */
            mask(l, w->ts_begin, w->ts_end + 1);
            return;
        }
        mask(l, 0, w->eot); /* after text + timestamp: timestamp or end */
        mask(l, w->ts_begin, last);
    } else {
        for (int t = s - 1; t >= 0; t--)
            if (gen[t] >= w->ts_begin) { /* non-decreasing, segments of non-zero length */
                mask(l, w->ts_begin, gen[t] + 1);
                break;
            }
    }
    /* log-softmax shifts every logit by one constant, so the comparison of the timestamps'
     * log-sum-exp with the best text token is made on the logits themselves */
    double mx = -INFINITY, sum = 0, best_text = -INFINITY;
    for (int32_t i = w->ts_begin; i <= w->ts_end; i++) mx = l[i] > mx ? l[i] : mx;
    if (mx > -INFINITY)
        for (int32_t i = w->ts_begin; i <= w->ts_end; i++) sum += exp((double)l[i] - mx);
    double lse = mx > -INFINITY ? mx + log(sum) : -INFINITY;
    for (int32_t i = 0; i < w->ts_begin; i++) best_text = l[i] > best_text ? l[i] : best_text;
    if (lse > best_text) mask(l, 0, w->ts_begin);
}

static int32_t argmax(const float *l, int n)
{
    int32_t b = 0;
    for (int i = 1; i < n; i++)
        if (l[i] > l[b]) b = i;
    return b;
}

double wh_log_softmax_at(const float *l, int n, int32_t k)
{
    double mx = -INFINITY, sum = 0;
    for (int i = 0; i < n; i++) mx = l[i] > mx ? l[i] : mx;
    for (int i = 0; i < n; i++) sum += exp((double)l[i] - mx);
    return (double)l[k] - mx - log(sum);
}

/* One sequence from st, whose last prompt token has run and left logits[n_vocab] (modified):
 * argmax when sm is NULL, else a draw from sm (whose temperature scales a copy in
 * scratch[n_vocab]); the log-probabilities summed are those of the logits after the rules,
 * unscaled (as OpenAI's decoder sums them). Fills out->ids / n / stopped / sum_logprob. */
static em_err decode_one(const struct em_whisper *w, struct wh_state *st, float *logits,
                         int max_new, bool ts, struct em_sampler *sm, float *scratch,
                         struct em_whisper_gen *out)
{
    em_err rc = EM_OK;
    if (!(out->ids = malloc(sizeof(int32_t) * (size_t)(max_new ? max_new : 1)))) return EM_E_NOMEM;
    for (int s = 0; s < max_new; s++) {
        wh_apply_rules(w, logits, out->ids, s, ts);
        int32_t next = 0;
        if (!sm) {
            next = argmax(logits, w->n_vocab);
        } else {
            memcpy(scratch, logits, sizeof(float) * (size_t)w->n_vocab);
            if ((rc = em_sampler_pick(sm, scratch, NULL, 0, &next)) != EM_OK) return rc;
        }
        out->sum_logprob += wh_log_softmax_at(logits, w->n_vocab, next);
        if (next == w->eot) {
            out->stopped = true;
            break;
        }
        out->ids[out->n++] = next;
        if (s + 1 < max_new && (rc = wh_step(w, st, next, logits)) != EM_OK) return rc;
    }
    return EM_OK;
}

/* Sampling at o->temperature: o->best_of candidates drawn one after another from one sampler
 * seeded with o->seed, each from a copy of st's prompt (the audio's keys and values shared);
 * the candidate with the highest sum_logprob / length is kept (OpenAI's MaximumLikelihoodRanker
 * without a length penalty). Fills out's ids / n / stopped / sum_logprob. */
static em_err sample_best_of(const struct em_whisper *w, struct wh_state *st, const float *logits0,
                             const struct em_whisper_opts *o, int max_new, struct em_whisper_gen *out)
{
    struct em_sampler_params sp = em_sampler_defaults();
    sp.do_sample = true;
    sp.temperature = o->temperature;
    sp.seed = o->seed;
    struct em_sampler *sm = NULL;
    struct em_errbuf seb = {{0}};
    struct wh_state cs;
    const size_t V = (size_t)w->n_vocab;
    float *lg = malloc(sizeof(float) * V), *scratch = malloc(sizeof(float) * V);
    em_err rc = EM_E_NOMEM;
    bool have_state = false, have_best = false;
    double best_score = 0;
    if (!lg || !scratch) goto done;
    if ((rc = em_sampler_new(&sp, w->n_vocab, &sm, &seb)) != EM_OK) goto done;
    if ((rc = wh_state_new_shared(w, &cs, st)) != EM_OK) goto done;
    have_state = true;
    int best_of = o->best_of > 0 ? o->best_of : EM_WHISPER_DEFAULT_BEST_OF;
    for (int c = 0; c < best_of; c++) {
        struct em_whisper_gen g = {0};
        wh_state_copy_self(w, &cs, st);
        memcpy(lg, logits0, sizeof(float) * V);
        if ((rc = decode_one(w, &cs, lg, max_new, o->timestamps, sm, scratch, &g)) != EM_OK) {
            em_whisper_gen_clear(&g);
            goto done;
        }
        double score = g.sum_logprob / (double)(g.n > 0 ? g.n : 1);
        if (!have_best || score > best_score) {
            free(out->ids);
            out->ids = g.ids;
            out->n = g.n;
            out->stopped = g.stopped;
            out->sum_logprob = g.sum_logprob;
            best_score = score;
            have_best = true;
        } else {
            em_whisper_gen_clear(&g);
        }
    }
    rc = EM_OK;
done:
    if (have_state) wh_state_free(&cs);
    em_sampler_free(sm);
    free(lg);
    free(scratch);
    return rc;
}

/* The language token: opts' code, or (multilingual, none given) the most likely of
 * config.json's lang_ids after <|startoftranscript|>. */
static em_err pick_language_id(const struct em_whisper *w, const char *code, const float *sot_logits,
                               int32_t *id, char lang[8], struct em_errbuf *eb)
{
    char tokname[24];
    if (code) {
        if (strlen(code) > 7 || !*code)
            return em_errf(eb, EM_E_ARG, "whisper: language '%s' is not a code such as 'en'", code);
        snprintf(tokname, sizeof tokname, "<|%s|>", code);
        *id = em_tok_find(w->tok, tokname);
        int ok = 0;
        for (int i = 0; i < w->n_langs; i++) ok |= w->lang_ids[i] == *id;
        if (*id < 0 || !ok) return em_errf(eb, EM_E_ARG, "whisper: this model has no language '%s'", code);
        snprintf(lang, 8, "%s", code);
        return EM_OK;
    }
    *id = w->lang_ids[0];
    for (int i = 1; i < w->n_langs; i++)
        if (sot_logits[w->lang_ids[i]] > sot_logits[*id]) *id = w->lang_ids[i];
    size_t len = 0;
    const char *t = em_tok_piece(w->tok, *id, &len);
    if (!t || len < 5 || len > 11 || strncmp(t, "<|", 2) || strncmp(t + len - 2, "|>", 2))
        return em_errf(eb, EM_E_MODEL, "tokenizer.json: language id %d has no <|xx|> token", (int)*id);
    snprintf(lang, 8, "%.*s", (int)(len - 4), t + 2);
    return EM_OK;
}

/* The language token: opts' code, or (multilingual, none given) the most likely of
 * config.json's lang_ids after <|startoftranscript|>; *prob its softmax share among the
 * language tokens (ref: openai/whisper decoding.py detect_language, which masks every other
 * token; ctranslate2 WhisperReplica::detect_language likewise). */
static em_err pick_language(const struct em_whisper *w, const char *code, const float *sot_logits,
                            int32_t *id, char lang[8], float *prob, struct em_errbuf *eb)
{
    em_err rc = pick_language_id(w, code, sot_logits, id, lang, eb);
    if (rc != EM_OK) return rc;
    double mx = -INFINITY, sum = 0;
    for (int i = 0; i < w->n_langs; i++) mx = sot_logits[w->lang_ids[i]] > mx ? sot_logits[w->lang_ids[i]] : mx;
    for (int i = 0; i < w->n_langs; i++) sum += exp((double)sot_logits[w->lang_ids[i]] - mx);
    *prob = (float)(exp((double)sot_logits[*id] - mx) / sum);
    return EM_OK;
}

em_err em_whisper_generate(const struct em_whisper *w, const float *enc,
                           const struct em_whisper_opts *opts, struct em_whisper_gen *out,
                           struct em_errbuf *eb)
{
    struct em_whisper_opts o = opts ? *opts : em_whisper_opts_default();
    memset(out, 0, sizeof *out);
    if (o.max_new < 0 || o.max_new > w->n_ctx)
        return em_errf(eb, EM_E_ARG, "whisper: max_new %d outside [0, %d]", o.max_new, w->n_ctx);
    if (!(o.temperature >= 0) || o.temperature > EM_WHISPER_MAX_TEMPERATURE)
        return em_errf(eb, EM_E_ARG, "whisper: temperature %g outside [0, %g]", (double)o.temperature,
                       (double)EM_WHISPER_MAX_TEMPERATURE);
    if (o.best_of < 0 || o.best_of > EM_WHISPER_MAX_BEST_OF)
        return em_errf(eb, EM_E_ARG, "whisper: best_of %d outside [0, %d]", o.best_of,
                       EM_WHISPER_MAX_BEST_OF);
    if (o.beam_size < 0 || o.beam_size > EM_WHISPER_MAX_BEAM)
        return em_errf(eb, EM_E_ARG, "whisper: beam size %d outside [0, %d]", o.beam_size,
                       EM_WHISPER_MAX_BEAM);
    if (o.language && !w->multilingual && strcmp(o.language, "en") != 0)
        return em_errf(eb, EM_E_ARG, "whisper: this model is English-only, language '%s' asked",
                       o.language);
    struct wh_state st;
    em_err rc = wh_state_new(w, &st);
    float *logits = malloc(sizeof(float) * (size_t)w->n_vocab);
    int32_t prompt[4];
    int np = 0;
    if (rc != EM_OK || !logits) {
        rc = em_errf(eb, EM_E_NOMEM, "whisper: out of memory for the decoder state");
        goto done;
    }
    if ((rc = wh_state_set_audio(w, &st, enc)) != EM_OK) goto done;
    /* <|startoftranscript|>: its logits give the no-speech probability and the language */
    if ((rc = wh_step(w, &st, w->sot, logits)) != EM_OK) goto done;
    out->no_speech_prob = (float)exp(wh_log_softmax_at(logits, w->n_vocab, w->no_speech));
    prompt[np++] = w->sot;
    snprintf(out->language, sizeof out->language, "en");
    out->language_prob = 1.0f;
    if (w->multilingual) {
        int32_t lang = -1;
        if ((rc = pick_language(w, o.language, logits, &lang, out->language, &out->language_prob, eb)) != EM_OK)
            goto done;
        prompt[np++] = lang;
        prompt[np++] = w->transcribe;
    }
    if (!o.timestamps) prompt[np++] = w->no_timestamps;
    for (int i = 1; i < np; i++)
        if ((rc = wh_step(w, &st, prompt[i], logits)) != EM_OK) goto done;
    out->prompt_tokens = np;
    int max_new = w->n_ctx / 2 < w->n_ctx - (np - 1) ? w->n_ctx / 2 : w->n_ctx - (np - 1);
    if (o.max_new > 0 && o.max_new < max_new) max_new = o.max_new;
    if (o.temperature > 0) {
        rc = sample_best_of(w, &st, logits, &o, max_new, out);
        goto done;
    }
    if (o.beam_size > 1) {
        rc = wh_beam_search(w, &st, logits, o.beam_size, max_new, o.timestamps, out);
        goto done;
    }
    rc = decode_one(w, &st, logits, max_new, o.timestamps, NULL, NULL, out);
done:
    if (rc == EM_E_TOO_LONG) rc = em_errf(eb, rc, "whisper: past %d decoder positions", w->n_ctx);
    if (rc != EM_OK) em_whisper_gen_clear(out);
    free(logits);
    wh_state_free(&st);
    return rc;
}

em_err wh_text_of(const struct em_whisper *w, const int32_t *ids, size_t n, char **out)
{
    size_t len = 0;
    em_err rc = em_tok_decode(w->tok, ids, n, true, out, &len);
    if (rc != EM_OK) return rc;
    char *s = *out, *e = s + len;
    while (*s == ' ' || *s == '\n' || *s == '\t') s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\n' || e[-1] == '\t')) e--;
    memmove(*out, s, (size_t)(e - s));
    (*out)[e - s] = '\0';
    return EM_OK;
}

static em_err add_seg(const struct em_whisper *w, const int32_t *ids, size_t n, double t0,
                      double t1, struct em_whisper_seg *segs, size_t *k)
{
    char *text = NULL;
    em_err rc = wh_text_of(w, ids, n, &text);
    if (rc != EM_OK) return rc;
    if (!*text) {
        free(text);
        return EM_OK;
    }
    segs[*k] = (struct em_whisper_seg){t0, t1 > t0 ? t1 : t0, text};
    (*k)++;
    return EM_OK;
}

em_err em_whisper_segments(const struct em_whisper *w, const int32_t *ids, size_t n,
                           double window_s, struct em_whisper_seg **segs, size_t *n_segs)
{
    *segs = NULL;
    *n_segs = 0;
    struct em_whisper_seg *v = calloc(n / 2 + 1, sizeof *v);
    if (!v) return EM_E_NOMEM;
    size_t k = 0, last = 0, pairs = 0;
    em_err rc = EM_OK;
#define IS_TS(i) (ids[i] >= w->ts_begin)
#define TS_S(id) ((double)((id) - w->ts_begin) * EM_WHISPER_SECONDS_PER_TS)
    for (size_t i = 1; i < n; i++)
        if (IS_TS(i - 1) && IS_TS(i)) pairs++;
    if (pairs) {
        bool single_end = n >= 2 && !IS_TS(n - 2) && IS_TS(n - 1);
        for (size_t i = 1; rc == EM_OK && i <= n; i++) {
            bool cut = (i < n && IS_TS(i - 1) && IS_TS(i)) || (i == n && single_end);
            if (!cut) continue;
            rc = add_seg(w, ids + last, i - last, TS_S(ids[last]), TS_S(ids[i - 1]), v, &k);
            last = i;
        }
    } else {
        double end = window_s;
        for (size_t i = n; i-- > 0;)
            if (IS_TS(i)) {
                if (ids[i] != w->ts_begin) end = TS_S(ids[i]);
                break;
            }
        rc = add_seg(w, ids, n, 0.0, end, v, &k);
    }
#undef IS_TS
#undef TS_S
    if (rc != EM_OK) {
        for (size_t i = 0; i < k; i++) free(v[i].text);
        free(v);
        return rc;
    }
    *segs = v;
    *n_segs = k;
    return EM_OK;
}

size_t em_whisper_seek_frames(const struct em_whisper *w, const int32_t *ids, size_t n)
{
    size_t last_pair = 0; /* index of the second timestamp of the last consecutive pair */
    for (size_t i = 1; i < n; i++)
        if (ids[i - 1] >= w->ts_begin && ids[i] >= w->ts_begin) last_pair = i;
    bool single_end = n >= 2 && ids[n - 2] < w->ts_begin && ids[n - 1] >= w->ts_begin;
    if (!last_pair || single_end) return 0;
    /* ref: transcribe.py: last_timestamp_pos = tokens[last_slice - 1] - timestamp_begin,
     * seek += last_timestamp_pos * input_stride (2 mel frames per encoder position) */
    return (size_t)(ids[last_pair - 1] - w->ts_begin) * 2;
}
