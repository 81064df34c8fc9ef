/* model/whisper/annotate.c - a clip through Whisper into the facade's result
 * (model/model.h struct em_model_result):
 *
 *   pcm -> windows of <= 30 s (model/chunk.h)
 *   per window: log-mel -> encoder [1500, d] -> beam 5 (or greedy) search with timestamps
 *     -> segments (window start added) and the window text
 *   result: segments[w] (window bounds, each prompt's answer = window text and ids),
 *           tsegs (timestamped pieces over the clip), transcript (window texts joined),
 *           language, counts, timings.
 * Long clips are cut at fixed 30 s boundaries; OpenAI's seek-by-last-timestamp procedure is
 * not implemented yet (a word on a boundary may be split between two windows). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "model/audio.h"
#include "model/chunk.h"
#include "model/model.h"
#include "model/whisper/whisper_impl.h"

#define WH_MIN_TAIL 320 /* samples: a trailing window shorter than 20 ms is skipped */

/* Appends the window's segments (shifted by t0) to r->tsegs; takes the texts. */
static em_err add_tsegs(struct em_model_result *r, struct em_whisper_seg *s, size_t n, double t0)
{
    struct em_model_tseg *v = realloc(r->tsegs, (r->n_tsegs + n + 1) * sizeof *v);
    if (!v) {
        for (size_t i = 0; i < n; i++) free(s[i].text);
        return EM_E_NOMEM;
    }
    r->tsegs = v;
    for (size_t i = 0; i < n; i++)
        r->tsegs[r->n_tsegs++] = (struct em_model_tseg){t0 + s[i].start_s, t0 + s[i].end_s, s[i].text};
    return EM_OK;
}

/* Appends text to *acc with one space between non-empty parts. */
static em_err append_text(char **acc, const char *text)
{
    size_t a = *acc ? strlen(*acc) : 0, b = strlen(text);
    if (!b) return *acc || (*acc = calloc(1, 1)) ? EM_OK : EM_E_NOMEM;
    char *s = realloc(*acc, a + b + 2);
    if (!s) return EM_E_NOMEM;
    if (a) s[a++] = ' ';
    memcpy(s + a, text, b + 1);
    *acc = s;
    return EM_OK;
}

static em_err run_window(const struct em_whisper *w, const float *pcm, const struct em_chunk *c,
                         const struct em_whisper_run *run, float *mel, float *enc,
                         struct em_model_result *r, struct em_model_segment *seg,
                         struct em_errbuf *eb)
{
    double t0 = em_now_s();
    em_err rc = em_whisper_mel(w, pcm + c->offset, c->n, mel);
    if (rc == EM_OK) rc = em_whisper_encode(w, mel, enc, eb);
    if (rc != EM_OK) return rc;
    double t1 = em_now_s();
    r->encode_s += t1 - t0;
    struct em_whisper_opts o = em_whisper_opts_default();
    o.max_new = run ? run->max_new : 0;
    o.beam_size = run && run->beam_size > 0 ? run->beam_size : EM_WHISPER_DEFAULT_BEAM;
    struct em_whisper_gen g;
    if ((rc = em_whisper_generate(w, enc, &o, &g, eb)) != EM_OK) return rc;
    r->decode_s += em_now_s() - t1;
    snprintf(r->language, sizeof r->language, "%s", g.language);
    r->audio_tokens += EM_WHISPER_AUDIO_CTX;
    r->prompt_tokens += g.prompt_tokens;
    r->new_tokens += (long)g.n;
    seg->start_s = c->start_s;
    seg->end_s = c->end_s;
    seg->audio_tokens = EM_WHISPER_AUDIO_CTX;
    char *text = NULL;
    struct em_whisper_seg *s = NULL;
    size_t ns = 0;
    if ((rc = em_whisper_segments(w, g.ids, g.n, c->end_s - c->start_s, &s, &ns)) != EM_OK) goto done;
    rc = add_tsegs(r, s, ns, c->start_s);
    free(s);
    if (rc != EM_OK) goto done;
    if ((rc = em_tok_decode(w->tok, g.ids, g.n, true, &text, NULL)) != EM_OK) goto done;
    for (size_t p = 0; p < r->n_prompts; p++) {
        struct em_model_answer *a = &seg->answers[p];
        a->text = strdup(text);
        a->ids = malloc(sizeof(int32_t) * (g.n + 1));
        if (!a->text || !a->ids) {
            rc = EM_E_NOMEM;
            goto done;
        }
        memcpy(a->ids, g.ids, sizeof(int32_t) * g.n);
        a->n_ids = g.n;
        if (g.stopped) a->ids[a->n_ids++] = w->eot; /* the facade counts the stop token */
        a->stopped = g.stopped;
    }
done:
    free(text);
    em_whisper_gen_clear(&g);
    return rc;
}

em_err em_whisper_annotate(const struct em_whisper *w, const struct em_audio *audio,
                           const struct em_whisper_run *run, struct em_model_result *r,
                           struct em_errbuf *eb)
{
    size_t cnt = em_chunk_count(audio->n), nc = 0;
    if (cnt == 0) return em_errf(eb, EM_E_TOO_SHORT, "annotate: no samples");
    em_err rc = EM_E_NOMEM;
    struct em_chunk *ch = calloc(cnt, sizeof *ch);
    float *mel = malloc(sizeof(float) * (size_t)w->n_mels * EM_MEL_FRAMES);
    float *enc = malloc(sizeof(float) * EM_WHISPER_AUDIO_CTX * (size_t)w->d);
    r->segments = calloc(cnt, sizeof *r->segments);
    r->has_tsegs = true;
    if (!ch || !mel || !enc || !r->segments) goto done;
    if ((rc = em_chunk_split(audio->n, ch, cnt, &nc)) != EM_OK) goto done;
    for (size_t i = 0; i < nc; i++) {
        if (run && run->cancelled && run->cancelled(run->cancel_ctx)) {
            rc = em_errf(eb, EM_E_CANCELLED, "annotate: cancelled before window %zu", i);
            goto done;
        }
        if (i > 0 && ch[i].n < WH_MIN_TAIL) break;
        struct em_model_segment *seg = &r->segments[i];
        if (!(seg->answers = calloc(r->n_prompts, sizeof *seg->answers))) goto done;
        r->n_segments = i + 1;
        if ((rc = run_window(w, audio->pcm, &ch[i], run, mel, enc, r, seg, eb)) != EM_OK) goto done;
    }
    rc = EM_E_NOMEM;
    for (size_t s = 0; s < r->n_segments; s++) {
        char *t = r->segments[s].answers[0].text;
        /* the window text without its leading blank (byte-level BPE keeps " The") */
        while (t && *t == ' ') t++;
        if (t && append_text(&r->transcript, t) != EM_OK) goto done;
    }
    if (!r->transcript && !(r->transcript = calloc(1, 1))) goto done;
    if (!(r->answers = calloc(r->n_prompts, sizeof *r->answers))) goto done;
    for (size_t p = 0; p < r->n_prompts; p++)
        if (!(r->answers[p] = strdup(r->transcript))) goto done;
    if (r->decode_s > 0) r->tokens_per_s = (double)r->new_tokens / r->decode_s;
    rc = EM_OK;
done:
    if (rc == EM_E_NOMEM) em_errf(eb, rc, "annotate: out of memory");
    free(ch);
    free(mel);
    free(enc);
    return rc;
}
