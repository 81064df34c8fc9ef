/* model/whisper/annotate.c - a clip through Whisper into the facade's result
 * (model/model.h struct em_model_result), with OpenAI's long-form procedure:
 *
 *   content = n / 160 mel frames; seek = 0
 *   while seek < content:
 *     window = pcm[seek * 160, + 30 s) -> log-mel -> encoder [1500, d] -> beam 5 (or greedy)
 *              search with timestamps; size = min(3000, content - seek) frames
 *     fallback: for T in 0.0, 0.2, .. 1.0: decode (T = 0 as above, T > 0 best_of 5 sampled
 *              with seed = run seed mixed with seek and T's index); keep it unless its text's
 *              zlib compression ratio > 2.4 or average log-probability < -1, where a
 *              no-speech probability > 0.6 with that low average keeps it too (silence); the
 *              T = 1.0 result is kept whatever it is
 *     no speech (no-speech probability > 0.6 and average log-probability <= -1): skip it,
 *              seek += size
 *     else segments from the timestamp pairs (em_whisper_segments), offset by seek / 100 s;
 *              seek += size when the ids end on a single timestamp (or have no pair), else
 *              seek to the last pair's timestamp (the unfinished tail is decoded again)
 *   language (multilingual models): detected on the first window (em_whisper_generate:
 *           the most likely language token after <|startoftranscript|>), kept for the others
 *   result: segments[w] = each decoded window (its bounds, each prompt's answer = the text
 *           of the pieces it kept), tsegs = the timestamped pieces over the clip,
 *           transcript = their texts joined, language, counts, timings.
 * ref: openai/whisper transcribe.py transcribe() and decode_with_fallback()
 *      (no_speech_threshold 0.6, logprob_threshold -1.0, compression_ratio_threshold 2.4,
 *      temperatures 0 .. 1 step 0.2, best_of 5; avg_logprob = sum / (tokens + 1))
 * Not done: conditioning on the previous window's text (OpenAI also stops conditioning after
 * a window decoded at T >= 0.5); each window's log-mel is normalised on its own 30 s
 * (OpenAI normalises over the whole file). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/clock.h"
#include "model/audio/audio.h"
#include "model/model.h"
#include "model/whisper/whisper_impl.h"

#define WH_HOP 160 /* samples per mel frame */
#define WH_N_TEMPS 6
static const double wh_temps[WH_N_TEMPS] = {0.0, 0.2, 0.4, 0.6, 0.8, 1.0}; /* OpenAI's */
#define WH_COMPRESSION_RATIO_MAX 2.4 /* OpenAI's compression_ratio_threshold */
#define WH_LOGPROB_MIN -1.0          /* OpenAI's logprob_threshold */
#define WH_NO_SPEECH_MIN 0.6         /* OpenAI's no_speech_threshold */

/* Appends the window's segments (shifted by t0) to r->tsegs and their texts, space-joined,
 * to *text; takes the texts. */
static em_err add_tsegs(struct em_model_result *r, struct em_whisper_seg *s, size_t n, double t0,
                        char **text)
{
    em_err rc = EM_OK;
    size_t len = 1;
    for (size_t i = 0; i < n; i++) len += strlen(s[i].text) + 1;
    struct em_model_tseg *v = realloc(r->tsegs, (r->n_tsegs + n + 1) * sizeof *v);
    if (v) r->tsegs = v;
    if (!v || !(*text = malloc(len))) {
        for (size_t i = 0; i < n; i++) free(s[i].text);
        return EM_E_NOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t m = strlen(s[i].text);
        if (k) (*text)[k++] = ' ';
        memcpy(*text + k, s[i].text, m);
        k += m;
        r->tsegs[r->n_tsegs++] = (struct em_model_tseg){t0 + s[i].start_s, t0 + s[i].end_s, s[i].text};
    }
    (*text)[k] = '\0';
    return rc;
}

static double avg_logprob(const struct em_whisper_gen *g) { return g->sum_logprob / (double)(g->n + 1); }

bool em_whisper_no_speech(const struct em_whisper_gen *g)
{
    return g->no_speech_prob > WH_NO_SPEECH_MIN && avg_logprob(g) <= WH_LOGPROB_MIN;
}

bool em_whisper_needs_fallback(const struct em_whisper_gen *g, double ratio)
{
    double avg = avg_logprob(g);
    if (g->no_speech_prob > WH_NO_SPEECH_MIN && avg < WH_LOGPROB_MIN) return false; /* silence */
    return ratio > WH_COMPRESSION_RATIO_MAX || avg < WH_LOGPROB_MIN;
}

em_err em_whisper_compression_ratio(const char *text, size_t len, double *ratio)
{
    *ratio = 0;
    uLong cap = compressBound((uLong)len);
    Bytef *z = malloc(cap);
    if (!z) return EM_E_NOMEM;
    uLongf zn = cap;
    int zrc = compress2(z, &zn, (const Bytef *)text, (uLong)len, Z_DEFAULT_COMPRESSION);
    free(z);
    if (zrc != Z_OK) return EM_E_NOMEM; /* Z_MEM_ERROR; the buffer is compressBound's */
    if (len) *ratio = (double)len / (double)zn;
    return EM_OK;
}

/* A 64-bit mix (splitmix64's finaliser) of a seed, a window's seek and a temperature's
 * index: each window and temperature draws its own reproducible stream. */
static uint64_t window_seed(uint64_t seed, size_t seek, int ti)
{
    uint64_t z = seed ^ ((uint64_t)seek << 8) ^ (uint64_t)ti;
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

em_err em_whisper_decode_fallback(const struct em_whisper *w, const float *enc,
                                  const struct em_whisper_opts *base, struct em_whisper_gen *g,
                                  double *temp, double *ratio, struct em_errbuf *eb)
{
    for (int ti = 0; ti < WH_N_TEMPS; ti++) {
        struct em_whisper_opts o = *base;
        o.temperature = (float)wh_temps[ti];
        o.best_of = EM_WHISPER_DEFAULT_BEST_OF;
        o.seed = window_seed(base->seed, 0, ti);
        em_err rc = em_whisper_generate(w, enc, &o, g, eb);
        char *text = NULL;
        if (rc == EM_OK) rc = wh_text_of(w, g->ids, g->n, &text);
        if (rc == EM_OK) rc = em_whisper_compression_ratio(text, strlen(text), ratio);
        free(text);
        if (rc != EM_OK) {
            em_whisper_gen_clear(g);
            return rc;
        }
        *temp = wh_temps[ti]; /* 0.2, not 0.2f widened */
        if (ti + 1 == WH_N_TEMPS || !em_whisper_needs_fallback(g, *ratio)) return EM_OK;
        em_whisper_gen_clear(g);
    }
    return EM_OK; /* not reached: the last temperature returns */
}

/* One window at seek: decodes it, records it as r->segments[r->n_segments], and sets *advance
 * to the frames to move on. lang[8]: the language to decode in; empty: detect it (then it
 * holds the one detected, so later windows keep it, as OpenAI's transcribe detects once). */
static em_err run_window(const struct em_whisper *w, const struct em_audio *audio, size_t seek,
                         size_t content, const struct em_whisper_run *run, float *mel, float *enc,
                         char lang[8], struct em_model_result *r, size_t *advance,
                         struct em_errbuf *eb)
{
    const size_t off = seek * WH_HOP, size = content - seek < EM_MEL_FRAMES ? content - seek : EM_MEL_FRAMES;
    const size_t win = audio->n - off < EM_MEL_SAMPLES ? audio->n - off : EM_MEL_SAMPLES;
    const double t_off = (double)seek / 100.0, window_s = (double)size / 100.0;
    double t0 = em_now_s();
    em_err rc = em_whisper_mel(w, audio->pcm + off, win, mel);
    if (rc == EM_OK) rc = em_whisper_encode(w, mel, enc, eb);
    if (rc != EM_OK) return rc;
    double t1 = em_now_s();
    r->encode_s += t1 - t0;
    struct em_whisper_gen g = {0};
    double temp = 0, ratio = 0;
    struct em_whisper_opts o = em_whisper_opts_default();
    o.max_new = run ? run->max_new : 0;
    o.beam_size = run && run->beam_size > 0 ? run->beam_size : EM_WHISPER_DEFAULT_BEAM;
    o.seed = window_seed(run ? run->seed : 0, seek, WH_N_TEMPS);
    o.language = lang[0] ? lang : NULL;
    if ((rc = em_whisper_decode_fallback(w, enc, &o, &g, &temp, &ratio, eb)) != EM_OK) return rc;
    r->decode_s += em_now_s() - t1;
    if (!lang[0]) snprintf(lang, 8, "%s", g.language);
    snprintf(r->language, sizeof r->language, "%s", g.language);
    r->audio_tokens += EM_WHISPER_AUDIO_CTX;
    r->prompt_tokens += g.prompt_tokens;
    r->new_tokens += (long)g.n;
    struct em_model_segment *seg = &r->segments[r->n_segments];
    if (!(seg->answers = calloc(r->n_prompts, sizeof *seg->answers))) {
        em_whisper_gen_clear(&g);
        return EM_E_NOMEM;
    }
    r->n_segments++;
    seg->start_s = t_off;
    seg->end_s = t_off + window_s;
    seg->audio_tokens = EM_WHISPER_AUDIO_CTX;
    char *text = NULL;
    struct em_whisper_seg *s = NULL;
    size_t ns = 0;
    seg->no_speech_prob = g.no_speech_prob;
    seg->temperature = temp;
    seg->avg_logprob = avg_logprob(&g);
    seg->compression_ratio = ratio;
    *advance = size;
    if (em_whisper_no_speech(&g)) {
        text = calloc(1, 1); /* no speech: nothing kept */
        rc = text ? EM_OK : EM_E_NOMEM;
    } else if ((rc = em_whisper_segments(w, g.ids, g.n, window_s, &s, &ns)) == EM_OK) {
        rc = add_tsegs(r, s, ns, t_off, &text);
        free(s);
        size_t frames = em_whisper_seek_frames(w, g.ids, g.n);
        if (frames > 0 && frames < size) *advance = frames;
    }
    for (size_t p = 0; rc == EM_OK && p < r->n_prompts; p++) {
        struct em_model_answer *a = &seg->answers[p];
        a->text = strdup(text);
        a->ids = malloc(sizeof(int32_t) * (g.n + 1));
        if (!a->text || !a->ids) {
            rc = EM_E_NOMEM;
            break;
        }
        memcpy(a->ids, g.ids, sizeof(int32_t) * g.n);
        a->n_ids = g.n;
        if (g.stopped) a->ids[a->n_ids++] = w->eot; /* the facade counts the stop token */
        a->stopped = g.stopped;
    }
    free(text);
    em_whisper_gen_clear(&g);
    return rc;
}

/* r->transcript = the kept pieces' texts joined with single spaces. */
static em_err join_tsegs(struct em_model_result *r)
{
    size_t len = 1;
    for (size_t i = 0; i < r->n_tsegs; i++) len += strlen(r->tsegs[i].text) + 1;
    if (!(r->transcript = malloc(len))) return EM_E_NOMEM;
    size_t k = 0;
    for (size_t i = 0; i < r->n_tsegs; i++) {
        size_t m = strlen(r->tsegs[i].text);
        if (k) r->transcript[k++] = ' ';
        memcpy(r->transcript + k, r->tsegs[i].text, m);
        k += m;
    }
    r->transcript[k] = '\0';
    return EM_OK;
}

em_err em_whisper_annotate(const struct em_whisper *w, const struct em_audio *audio,
                           const struct em_whisper_run *run, struct em_model_result *r,
                           struct em_errbuf *eb)
{
    if (!audio->n) return em_errf(eb, EM_E_TOO_SHORT, "annotate: no samples");
    size_t content = audio->n / WH_HOP, seek = 0, cap = 0;
    char lang[8] = ""; /* detected on the first window (multilingual models) */
    if (content == 0) content = 1;
    em_err rc = EM_E_NOMEM;
    float *mel = malloc(sizeof(float) * (size_t)w->n_mels * EM_MEL_FRAMES);
    float *enc = malloc(sizeof(float) * EM_WHISPER_AUDIO_CTX * (size_t)w->d);
    r->has_tsegs = true;
    if (!mel || !enc) goto done;
    while (seek < content) {
        if (run && run->cancelled && run->cancelled(run->cancel_ctx)) {
            rc = em_errf(eb, EM_E_CANCELLED, "annotate: cancelled at %.2f s", (double)seek / 100.0);
            goto done;
        }
        if (r->n_segments == cap) {
            size_t nc = cap ? 2 * cap : 4;
            struct em_model_segment *v = realloc(r->segments, nc * sizeof *v);
            if (!v) {
                rc = EM_E_NOMEM;
                goto done;
            }
            memset(v + cap, 0, (nc - cap) * sizeof *v);
            r->segments = v;
            cap = nc;
        }
        size_t advance = 0;
        if ((rc = run_window(w, audio, seek, content, run, mel, enc, lang, r, &advance, eb)) != EM_OK)
            goto done;
        seek += advance;
    }
    rc = EM_E_NOMEM;
    if (join_tsegs(r) != EM_OK) goto done;
    if (!(r->answers = calloc(r->n_prompts, sizeof *r->answers))) goto done;
    for (size_t p = 0; p < r->n_prompts; p++)
        if (!(r->answers[p] = strdup(r->transcript))) goto done;
    if (r->decode_s > 0) r->tokens_per_s = (double)r->new_tokens / r->decode_s;
    rc = EM_OK;
done:
    if (rc == EM_E_NOMEM) em_errf(eb, rc, "annotate: out of memory");
    free(mel);
    free(enc);
    return rc;
}
