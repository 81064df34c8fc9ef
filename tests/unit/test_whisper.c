/* tests/unit/test_whisper.c - the Whisper family (model/whisper/) on the real tiny.en weights
 * (deploy/fetch-whisper.sh; suite whisper) and multilingual base weights (fetch-whisper.sh
 * --model base; suite whisper_base, which adds a German and a Spanish clip, pink noise and the
 * detected language) against tests/golden/whisper/data (make_whisper_golden.py:
 * numpy log-mel, ctranslate2 4.6.0 float32 encoder and greedy search) on 9 clips: espeak-ng
 * voices, accents and speeds, speech over noise and over music, silence.
 * Log-mel within 1e-4 absolute, encoder output within 1e-3 of max |want|, greedy ids
 * identical with and without timestamps, beam 5 ids identical; plus segments, the no-speech probability, and
 * load errors. */
#include <CUnit/CUnit.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "model/audio/audio.h"
#include "model/family.h"
#include "model/audio/mel.h"
#include "model/model.h"
#include "model/text/tokenizer.h"
#include "model/whisper/whisper.h"
#include "tests/golden/golden.h"
#include "tests/helpers/schema.h"
#include "worker/annotation.h"
#include "worker/facts.h"

#define MEL_TOL 1e-4     /* absolute, log-mel */
#define ENC_TOL 1e-3     /* relative to max |want|, encoder output */
#define NOSPEECH_TOL 1e-3 /* absolute, probability */

/* The suite's model and golden index: tiny.en and index.json (suite whisper) or base and
 * base_index.json (suite whisper_base); the golden tests below serve both. */
static struct em_whisper *wh;
static json_t *index_json;
static char tmp[1024], data_dir[2048];
static const char *model_name; /* "tiny.en" or "base" */

static int init_model(const char *model, const char *index_file)
{
    char dir[1024];
    struct em_errbuf eb = {{0}};
    model_name = model;
    if (golden_whisper_model_dir(model, dir, sizeof dir) != 0) return 1;
    if (em_whisper_load(dir, &wh, &eb) != EM_OK) {
        fprintf(stderr, "whisper init: %s\n", eb.msg);
        return 1;
    }
    snprintf(data_dir, sizeof data_dir, "%s/tests/golden/whisper/data", golden_root());
    if (!(index_json = golden_whisper_index(index_file))) return 1;
    return golden_tmpdir(tmp, sizeof tmp);
}

static int init(void) { return init_model("tiny.en", "index.json"); }
static int init_base(void) { return init_model("base", "base_index.json"); }

static int clean(void)
{
    em_whisper_free(wh);
    json_decref(index_json);
    golden_rmdir(tmp);
    return 0;
}

/* tests/golden/whisper/clips/<name>.ogg through sox as s16 / 32768, as the script reads it. */
static float *clip(const char *name, size_t *n)
{
    char in[2048], out[2048];
    snprintf(in, sizeof in, "%s/tests/golden/whisper/clips/%s.ogg", golden_root(), name);
    snprintf(out, sizeof out, "%s/%s.raw", tmp, name);
    if (golden_sh("sox '%s' -t raw -e signed-integer -b 16 -c 1 -r 16000 '%s'", in, out) != 0)
        return NULL;
    size_t len = 0;
    uint8_t *raw = golden_read(out, &len);
    if (!raw) return NULL;
    *n = len / 2;
    float *pcm = malloc((*n ? *n : 1) * sizeof *pcm);
    for (size_t i = 0; pcm && i < *n; i++)
        pcm[i] = (float)(int16_t)(raw[2 * i] | raw[2 * i + 1] << 8) / 32768.0f;
    free(raw);
    return pcm;
}

/* Decodes clip name and runs log-mel and encoder into mel / enc; the clip's sample count in
 * *n. 0 on success. */
static int encode_clip(const char *name, float *mel, float *enc, size_t *n)
{
    struct em_errbuf eb = {{0}};
    float *pcm = clip(name, n);
    int bad = !pcm || em_whisper_mel(wh, pcm, *n, mel) != EM_OK ||
              em_whisper_encode(wh, mel, enc, &eb) != EM_OK;
    free(pcm);
    return bad;
}

/* Compares got[total] with the sampled reference key (every stride-th element). */
static double cmp_sampled(const char *key, const float *got, size_t total, int rel, double tol)
{
    json_t *e = json_object_get(index_json, key);
    if (!json_is_object(e)) return INFINITY;
    size_t stride = (size_t)json_integer_value(json_object_get(e, "stride"));
    char p[2400];
    snprintf(p, sizeof p, "%s/%s", data_dir, json_string_value(json_object_get(e, "file")));
    size_t len = 0;
    float *want = golden_read(p, &len);
    size_t m = stride ? (total + stride - 1) / stride : 0;
    if (!want || len != m * 4) {
        free(want);
        return INFINITY;
    }
    float *g = malloc(m * sizeof *g);
    for (size_t i = 0; i < m; i++) g[i] = got[i * stride];
    double err = golden_cmp(key, g, want, m, rel, tol);
    /* and the whole tensor through its sum of squares */
    double ss = 0, want_ss = json_real_value(json_object_get(e, "sumsq"));
    for (size_t i = 0; i < total; i++) ss += (double)got[i] * got[i];
    if (fabs(ss - want_ss) > 1e-3 * (want_ss > 1 ? want_ss : 1)) {
        printf("\n    %s: sum of squares %.6g, want %.6g", key, ss, want_ss);
        err = INFINITY;
    }
    free(g);
    free(want);
    return err;
}

static int ids_equal(const char *what, const struct em_whisper_gen *g, json_t *want)
{
    size_t n = json_array_size(want);
    int same = golden_ids_match(want, g->ids, g->n);
    char *text = NULL;
    em_tok_decode(em_whisper_tok(wh), g->ids, g->n, true, &text, NULL);
    printf("\n    %-28s %zu ids %s: %s", what, g->n, same ? "identical" : "DIFFER", text ? text : "");
    if (!same) {
        printf("\n      got ");
        for (size_t i = 0; i < g->n; i++) printf(" %d", (int)g->ids[i]);
        printf("\n      want");
        for (size_t i = 0; i < n; i++) printf(" %d", (int)json_integer_value(json_array_get(want, i)));
    }
    free(text);
    return same;
}

static void golden_clips_match_ctranslate2(void)
{
    json_t *clips = json_object_get(index_json, "clips");
    const char *name;
    json_t *rec;
    size_t n_clips = 0, n_same = 0, n_lang = 0;
    struct em_whisper_info info;
    em_whisper_info(wh, &info);
    CU_ASSERT_EQUAL_FATAL(info.n_mels, 80);
    CU_ASSERT_EQUAL(info.multilingual, strcmp(model_name, "base") == 0);
    float *mel = malloc(sizeof(float) * 80 * EM_MEL_FRAMES);
    float *enc = malloc(sizeof(float) * EM_WHISPER_AUDIO_CTX * (size_t)info.d_model);
    CU_ASSERT_PTR_NOT_NULL_FATAL(mel);
    CU_ASSERT_PTR_NOT_NULL_FATAL(enc);
    json_object_foreach(clips, name, rec) {
        size_t n = 0;
        char key[128];
        struct em_errbuf eb = {{0}};
        CU_ASSERT_EQUAL_FATAL(encode_clip(name, mel, enc, &n), 0);
        CU_ASSERT_EQUAL(n, (size_t)json_integer_value(json_object_get(rec, "samples")));
        snprintf(key, sizeof key, "%s/mel", name);
        CU_ASSERT(cmp_sampled(key, mel, 80 * EM_MEL_FRAMES, 0, MEL_TOL) <= MEL_TOL);
        snprintf(key, sizeof key, "%s/enc", name);
        CU_ASSERT(cmp_sampled(key, enc, EM_WHISPER_AUDIO_CTX * (size_t)info.d_model, 1, ENC_TOL) <= ENC_TOL);
        for (int ts = 0; ts < 2; ts++) {
            struct em_whisper_opts o = em_whisper_opts_default();
            o.timestamps = ts == 1;
            struct em_whisper_gen g;
            CU_ASSERT_EQUAL_FATAL(em_whisper_generate(wh, enc, &o, &g, &eb), EM_OK);
            json_t *want = json_object_get(rec, ts ? "ts" : "nots");
            snprintf(key, sizeof key, "%s/%s", name, ts ? "timestamps" : "notimestamps");
            int same = ids_equal(key, &g, json_object_get(want, "ids"));
            CU_ASSERT(same);
            n_clips++;
            n_same += same;
            double ns = json_real_value(json_object_get(want, "no_speech_prob"));
            CU_ASSERT(fabs(g.no_speech_prob - ns) <= NOSPEECH_TOL);
            CU_ASSERT(g.stopped);
            json_t *lang = json_object_get(rec, "language"); /* multilingual: ctranslate2's */
            if (lang) {
                double lp = json_real_value(json_object_get(rec, "language_prob"));
                printf(" [%s %.3f, want %s %.3f]", g.language, (double)g.language_prob,
                       json_string_value(lang), lp);
                CU_ASSERT_STRING_EQUAL(g.language, json_string_value(lang));
                CU_ASSERT(fabs(g.language_prob - lp) <= NOSPEECH_TOL);
                n_lang++;
            }
            em_whisper_gen_clear(&g);
        }
    }
    printf("\n    greedy ids identical on %zu of %zu runs", n_same, n_clips);
    CU_ASSERT(n_clips >= 16);
    if (info.multilingual) CU_ASSERT(n_lang == n_clips); /* every clip's language checked */
    free(mel);
    free(enc);
}

/* Beam 5 (patience 1, length penalty 1) against ctranslate2's beam search, with and
 * without timestamps; on most clips the beam finds a different sequence than greedy. */
static void beam5_matches_ctranslate2(void)
{
    json_t *clips = json_object_get(index_json, "clips");
    const char *name;
    json_t *rec;
    size_t runs = 0, same_n = 0, differs_from_greedy = 0;
    struct em_whisper_info info;
    em_whisper_info(wh, &info);
    float *mel = malloc(sizeof(float) * 80 * EM_MEL_FRAMES);
    float *enc = malloc(sizeof(float) * EM_WHISPER_AUDIO_CTX * (size_t)info.d_model);
    CU_ASSERT_PTR_NOT_NULL_FATAL(mel);
    CU_ASSERT_PTR_NOT_NULL_FATAL(enc);
    json_object_foreach(clips, name, rec) {
        size_t n = 0;
        struct em_errbuf eb = {{0}};
        if (!json_object_get(json_object_get(rec, "ts"), "beam5_ids")) continue; /* greedy only */
        CU_ASSERT_EQUAL_FATAL(encode_clip(name, mel, enc, &n), 0);
        for (int ts = 0; ts < 2; ts++) {
            struct em_whisper_opts o = em_whisper_opts_default();
            o.timestamps = ts == 1;
            o.beam_size = 5;
            struct em_whisper_gen g;
            CU_ASSERT_EQUAL_FATAL(em_whisper_generate(wh, enc, &o, &g, &eb), EM_OK);
            json_t *want = json_object_get(rec, ts ? "ts" : "nots");
            char key[128];
            snprintf(key, sizeof key, "%s/beam5/%s", name, ts ? "timestamps" : "notimestamps");
            int same = ids_equal(key, &g, json_object_get(want, "beam5_ids"));
            CU_ASSERT(same);
            runs++;
            same_n += same;
            differs_from_greedy += !json_equal(json_object_get(want, "ids"), json_object_get(want, "beam5_ids"));
            em_whisper_gen_clear(&g);
        }
    }
    printf("\n    beam 5 ids identical on %zu of %zu runs (%zu where beam and greedy differ)", same_n,
           runs, differs_from_greedy);
    CU_ASSERT(runs >= 8); /* tiny.en: 9 clips, base: 5 clips, each with and without timestamps */
    if (strcmp(model_name, "tiny.en") == 0) CU_ASSERT(differs_from_greedy >= 4);
    free(mel);
    free(enc);
}

static void segments_follow_timestamps(void)
{
    struct em_whisper_info info;
    em_whisper_info(wh, &info);
    const int32_t tb = 50363; /* tiny.en's <|0.00|> */
    /* <|0.00|> a <|1.00|><|1.00|> b <|2.50|> */
    int32_t a = em_tok_find(em_whisper_tok(wh), "Hello"), b = em_tok_find(em_whisper_tok(wh), "world");
    CU_ASSERT_FATAL(a > 0 && b > 0);
    int32_t ids[] = {tb, a, tb + 50, tb + 50, b, tb + 125};
    struct em_whisper_seg *s = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(em_whisper_segments(wh, ids, 6, 30.0, &s, &n), EM_OK);
    CU_ASSERT_EQUAL_FATAL(n, 2);
    CU_ASSERT_DOUBLE_EQUAL(s[0].start_s, 0.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(s[0].end_s, 1.0, 1e-9);
    CU_ASSERT_STRING_EQUAL(s[0].text, "Hello");
    CU_ASSERT_DOUBLE_EQUAL(s[1].start_s, 1.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(s[1].end_s, 2.5, 1e-9);
    CU_ASSERT_STRING_EQUAL(s[1].text, "world");
    for (size_t i = 0; i < n; i++) free(s[i].text);
    free(s);
    /* no timestamps at all: one segment over the window */
    CU_ASSERT_EQUAL_FATAL(em_whisper_segments(wh, ids + 1, 1, 7.5, &s, &n), EM_OK);
    CU_ASSERT_EQUAL_FATAL(n, 1);
    CU_ASSERT_DOUBLE_EQUAL(s[0].end_s, 7.5, 1e-9);
    free(s[0].text);
    free(s);
    /* a single timestamp pair without text: nothing */
    int32_t empty[] = {tb, tb + 10};
    CU_ASSERT_EQUAL(em_whisper_segments(wh, empty, 2, 30.0, &s, &n), EM_OK);
    CU_ASSERT_EQUAL(n, 0);
    free(s);
}

static void bad_options_and_dirs_are_refused(void)
{
    struct em_errbuf eb = {{0}};
    struct em_whisper *w2 = NULL;
    CU_ASSERT_EQUAL(em_whisper_load("/nonexistent-dir", &w2, &eb), EM_E_NOTFOUND);
    CU_ASSERT_PTR_NULL(w2);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "model.bin"));
    float *enc = calloc((size_t)EM_WHISPER_AUDIO_CTX * 384, sizeof *enc);
    struct em_whisper_opts o = em_whisper_opts_default();
    struct em_whisper_gen g;
    o.language = "de"; /* tiny.en is English-only */
    CU_ASSERT_EQUAL(em_whisper_generate(wh, enc, &o, &g, &eb), EM_E_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "English-only"));
    o = em_whisper_opts_default();
    o.max_new = 100000;
    CU_ASSERT_EQUAL(em_whisper_generate(wh, enc, &o, &g, &eb), EM_E_ARG);
    o.max_new = 3; /* a cap is honoured */
    CU_ASSERT_EQUAL(em_whisper_generate(wh, enc, &o, &g, &eb), EM_OK);
    CU_ASSERT(g.n <= 3);
    em_whisper_gen_clear(&g);
    free(enc);
}

/* The facade (model/model.h) picks the family from the files and answers transcript with
 * text, language and timestamped segments; the record validates against the schema. */
static void facade_transcribes_with_segments(void)
{
    char dir[1024];
    CU_ASSERT_EQUAL_FATAL(golden_whisper_dir(dir, sizeof dir), 0);
    struct em_model *m = NULL;
    struct em_errbuf eb = {{0}};
    em_err rc = em_model_load(dir, NULL, &m, &eb);
    if (rc != EM_OK) printf("\n    %s", eb.msg);
    CU_ASSERT_EQUAL_FATAL(rc, EM_OK);
    CU_ASSERT_STRING_EQUAL(em_model_family(m), "whisper");
    CU_ASSERT_STRING_EQUAL(em_model_dtype(m), "f16");
    CU_ASSERT_PTR_NOT_NULL(strstr(em_model_identity(m), "whisper-tiny.en@"));
    struct em_audio a = {0};
    a.pcm = clip("us_normal", &a.n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a.pcm);
    a.duration_s = (double)a.n / 16000.0;
    struct em_model_prompt pr = {NULL, "transcript", NULL};
    struct em_model_result *r = NULL;
    CU_ASSERT_EQUAL_FATAL(em_model_annotate(m, &a, &pr, 1, NULL, &r, &eb), EM_OK);
    CU_ASSERT(r->has_tsegs);
    CU_ASSERT_STRING_EQUAL(r->language, "en");
    CU_ASSERT_PTR_NOT_NULL(strstr(r->transcript, "quick brown fox"));
    CU_ASSERT_EQUAL(r->n_segments, 1);
    CU_ASSERT_FATAL(r->n_tsegs >= 1);
    for (size_t i = 0; i < r->n_tsegs; i++) {
        CU_ASSERT(r->tsegs[i].start_s >= 0 && r->tsegs[i].start_s < r->tsegs[i].end_s);
        CU_ASSERT(r->tsegs[i].end_s <= a.duration_s + 0.5);
    }
    CU_ASSERT_STRING_EQUAL(r->answers[0], r->transcript);
    struct em_facts facts;
    em_facts_compute(a.pcm, a.n, 16000, &facts);
    a.src_rate = 16000;
    a.src_channels = 1;
    snprintf(a.codec, sizeof a.codec, "vorbis");
    snprintf(a.container, sizeof a.container, "ogg");
    struct em_annot_in in = {.item_id = "i", .batch_id = "b", .source = "us_normal.ogg",
                             .attempt = 1, .audio = &a, .facts = &facts, .result = r,
                             .err = EM_OK};
    size_t len = 0;
    char *rec = em_annot_build(&in, &len), path[1200];
    CU_ASSERT_PTR_NOT_NULL_FATAL(rec);
    CU_ASSERT_PTR_NOT_NULL(strstr(rec, "\"transcript\":{\"text\":\"The quick brown fox"));
    CU_ASSERT_PTR_NOT_NULL(strstr(rec, "\"language\":\"en\""));
    snprintf(path, sizeof path, "%s/record.json", tmp);
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fwrite(rec, 1, len, f);
    fclose(f);
    CU_ASSERT_EQUAL(th_schema_valid(path), 0);
    free(rec);
    em_model_result_free(r);
    /* caption, events and free text are per-item errors naming the model */
    const char *bad[] = {"caption", "events"};
    for (int i = 0; i < 2; i++) {
        struct em_model_prompt two[2] = {{NULL, "transcript", NULL}, {NULL, bad[i], NULL}};
        CU_ASSERT_EQUAL(em_model_annotate(m, &a, two, 2, NULL, &r, &eb), EM_E_UNSUPPORTED);
        CU_ASSERT_PTR_NULL(r);
        CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "whisper-tiny.en"));
        CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, bad[i]));
    }
    struct em_model_prompt free_text = {NULL, NULL, "What is this?"};
    CU_ASSERT_EQUAL(em_model_check_prompts(m, &free_text, 1, &eb), EM_E_UNSUPPORTED);
    free(a.pcm);
    em_model_free(m);
}

/* pcm of the named clips one after the other (caller frees). */
static float *concat(const char *const *names, size_t k, size_t *n)
{
    float *all = NULL;
    *n = 0;
    for (size_t i = 0; i < k; i++) {
        size_t m = 0;
        float *p = clip(names[i], &m), *v = p ? realloc(all, (*n + m) * sizeof *v) : NULL;
        if (!v) {
            free(p);
            free(all);
            return NULL;
        }
        all = v;
        memcpy(all + *n, p, m * sizeof *p);
        *n += m;
        free(p);
    }
    return all;
}

static size_t count(const char *hay, const char *needle)
{
    size_t c = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++) c++;
    return c;
}

/* A 77 s clip (eight clips back to back) through OpenAI's long-form procedure: windows seek
 * by the last timestamp, pieces come in time order inside the clip, every sentence is there. */
static void long_form_seeks_by_timestamps(void)
{
    char dir[1024];
    CU_ASSERT_EQUAL_FATAL(golden_whisper_dir(dir, sizeof dir), 0);
    struct em_model *m = NULL;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(em_model_load(dir, NULL, &m, &eb), EM_OK);
    const char *parts[] = {"long", "gb_slow", "long", "scottish", "noise", "long", "music", "female_rp"};
    struct em_audio a = {0};
    a.pcm = concat(parts, 8, &a.n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a.pcm);
    double dur = (double)a.n / 16000.0;
    CU_ASSERT(dur > 75.0);
    struct em_model_prompt pr = {NULL, "transcript", NULL};
    struct em_gen_params_override greedy = {.greedy = true};
    struct em_model_result *r = NULL;
    em_err rc = em_model_annotate(m, &a, &pr, 1, &greedy, &r, &eb);
    if (rc != EM_OK) printf("\n    %s", eb.msg);
    CU_ASSERT_EQUAL_FATAL(rc, EM_OK);
    printf("\n    %.1f s: %zu windows, %zu pieces", dur, r->n_segments, r->n_tsegs);
    for (size_t i = 0; i < r->n_segments; i++)
        printf("\n      window %.2f-%.2f", r->segments[i].start_s, r->segments[i].end_s);
    CU_ASSERT(r->n_segments >= 3);
    for (size_t i = 1; i < r->n_segments; i++) {
        CU_ASSERT(r->segments[i].start_s > r->segments[i - 1].start_s);
        CU_ASSERT(r->segments[i].start_s <= r->segments[i - 1].end_s + 1e-9); /* no gap */
    }
    CU_ASSERT(r->n_tsegs >= 8);
    for (size_t i = 0; i < r->n_tsegs; i++) {
        CU_ASSERT(r->tsegs[i].start_s <= r->tsegs[i].end_s);
        CU_ASSERT(r->tsegs[i].end_s <= dur + 0.5);
        if (i) CU_ASSERT(r->tsegs[i].start_s >= r->tsegs[i - 1].start_s - 1e-9);
    }
    CU_ASSERT(count(r->transcript, "manifest") >= 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(r->transcript, "Stella"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r->transcript, "station is on your right"));
    em_model_result_free(r);
    free(a.pcm);
    /* silence: the window reports its no-speech probability (tiny.en still says " you" with
     * an average log-probability near -0.7, above OpenAI's -1 threshold, so OpenAI's rule
     * keeps it, as it would in openai-whisper and faster-whisper) */
    const char *quiet[] = {"silence", "silence", "silence"};
    a.pcm = concat(quiet, 3, &a.n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a.pcm);
    CU_ASSERT_EQUAL_FATAL(em_model_annotate(m, &a, &pr, 1, NULL, &r, &eb), EM_OK);
    printf("\n    silence: '%s', no-speech probability %.3f", r->transcript, r->segments[0].no_speech_prob);
    CU_ASSERT_EQUAL(r->n_segments, 1);
    CU_ASSERT(r->segments[0].no_speech_prob > 0.9);
    em_model_result_free(r);
    /* the rule itself: both conditions needed */
    struct em_whisper_gen g = {.n = 3, .no_speech_prob = 0.94f, .sum_logprob = -4.5};
    CU_ASSERT(em_whisper_no_speech(&g));     /* average -1.125 */
    g.sum_logprob = -2.8;                    /* average -0.7 */
    CU_ASSERT(!em_whisper_no_speech(&g));
    g.sum_logprob = -4.5, g.no_speech_prob = 0.5f;
    CU_ASSERT(!em_whisper_no_speech(&g));
    free(a.pcm);
    em_model_free(m);
}

/* The same weights in the Hugging Face layout (tests/golden/whisper/ct2_to_hf.py: split
 * q|k|v, no key biases, float32 safetensors, generation_config.json) load through the
 * safetensors reader and give the golden greedy and beam-5 ids. */
static void hf_layout_gives_the_same_ids(void)
{
    char dir[1024], hf[1200];
    CU_ASSERT_EQUAL_FATAL(golden_whisper_dir(dir, sizeof dir), 0);
    snprintf(hf, sizeof hf, "%s/hf-tiny.en", tmp);
    char cmd[3000];
    snprintf(cmd, sizeof cmd, "python3 '%s/tests/golden/whisper/ct2_to_hf.py' '%s' '%s'", golden_root(), dir, hf);
    CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
    struct em_whisper *h = NULL;
    struct em_errbuf eb = {{0}};
    em_err rc = em_whisper_load(hf, &h, &eb);
    if (rc != EM_OK) printf("\n    %s", eb.msg);
    CU_ASSERT_EQUAL_FATAL(rc, EM_OK);
    struct em_whisper_info info;
    em_whisper_info(h, &info);
    CU_ASSERT_STRING_EQUAL(info.dtype, "f32");
    CU_ASSERT_EQUAL(info.enc_layers, 4);
    CU_ASSERT_EQUAL(info.dec_layers, 4);
    float *mel = malloc(sizeof(float) * 80 * EM_MEL_FRAMES);
    float *enc = malloc(sizeof(float) * EM_WHISPER_AUDIO_CTX * (size_t)info.d_model);
    CU_ASSERT_PTR_NOT_NULL_FATAL(mel);
    CU_ASSERT_PTR_NOT_NULL_FATAL(enc);
    const char *names[] = {"us_normal", "caribbean_fast", "long"};
    for (size_t i = 0; i < 3; i++) {
        size_t n = 0;
        float *pcm = clip(names[i], &n);
        CU_ASSERT_PTR_NOT_NULL_FATAL(pcm);
        CU_ASSERT_EQUAL_FATAL(em_whisper_mel(h, pcm, n, mel), EM_OK);
        CU_ASSERT_EQUAL_FATAL(em_whisper_encode(h, mel, enc, &eb), EM_OK);
        free(pcm);
        json_t *want = json_object_get(json_object_get(json_object_get(index_json, "clips"), names[i]), "ts");
        for (int beam = 1; beam <= 5; beam += 4) {
            struct em_whisper_opts o = em_whisper_opts_default();
            o.beam_size = beam;
            struct em_whisper_gen g;
            CU_ASSERT_EQUAL_FATAL(em_whisper_generate(h, enc, &o, &g, &eb), EM_OK);
            char key[96];
            snprintf(key, sizeof key, "hf %s beam %d", names[i], beam);
            CU_ASSERT(ids_equal(key, &g, json_object_get(want, beam == 1 ? "ids" : "beam5_ids")));
            em_whisper_gen_clear(&g);
        }
    }
    free(mel);
    free(enc);
    em_whisper_free(h);
}

static void family_is_chosen_from_the_files(void)
{
    char dir[1024], d2[1200];
    const struct em_family *f = NULL;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(golden_whisper_dir(dir, sizeof dir), 0);
    CU_ASSERT_EQUAL(em_family_detect(dir, &f, &eb), EM_OK);
    CU_ASSERT_EQUAL(f->id, EM_FAMILY_WHISPER);
    CU_ASSERT(em_family_can(f, "transcript"));
    CU_ASSERT(!em_family_can(f, "caption"));
    CU_ASSERT(!em_family_can(f, NULL));
    CU_ASSERT_EQUAL(em_family_detect("/nonexistent", &f, &eb), EM_OK); /* the loader says why */
    CU_ASSERT_EQUAL(f->id, EM_FAMILY_QWEN2_AUDIO);
    CU_ASSERT(em_family_can(f, "caption") && em_family_can(f, NULL));
    /* a Hugging Face Whisper layout (config.json model_type whisper, no model.bin) */
    snprintf(d2, sizeof d2, "%s/hf-whisper", tmp);
    CU_ASSERT_EQUAL_FATAL(golden_sh("mkdir -p '%s' && echo '{\"model_type\": \"whisper\"}' > '%s/config.json'", d2, d2), 0);
    CU_ASSERT_EQUAL(em_family_detect(d2, &f, &eb), EM_OK);
    CU_ASSERT_EQUAL(f->id, EM_FAMILY_WHISPER);
    struct em_model *m = NULL;
    CU_ASSERT_EQUAL(em_model_load(d2, NULL, &m, &eb), EM_E_NOTFOUND); /* no weights there */
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "model.safetensors"));
    /* a model.bin of another CTranslate2 spec */
    snprintf(d2, sizeof d2, "%s/other-spec", tmp);
    CU_ASSERT_EQUAL_FATAL(golden_sh("mkdir -p '%s' && printf '\\006\\000\\000\\000\\002\\000X\\000"
                                    "\\001\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000'"
                                    " > '%s/model.bin'", d2, d2), 0);
    CU_ASSERT_EQUAL(em_family_detect(d2, &f, &eb), EM_E_MODEL);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "spec 'X'"));
}

/* em_whisper_compression_ratio against Python's zlib: the expected ratios were computed once
 * with python3 3.11.7 (zlib 1.2.13) as len(b) / len(zlib.compress(b)), b = text.encode(),
 * the formula of openai/whisper's get_compression_ratio. */
static void compression_ratio_matches_python_zlib(void)
{
    char noise[201];
    for (int i = 0; i < 200; i++) noise[i] = (char)(33 + (i * 7919) % 90);
    noise[200] = '\0';
    char rep[241] = "";
    for (int i = 0; i < 8; i++) strcat(rep, "the station is on your right. ");
    struct {
        const char *text;
        double want; /* python3: len(b) / len(zlib.compress(b)) */
    } cases[] = {
        {"", 0.0},                       /* 0 / 8 */
        {"a", 1.0 / 9.0},                /* 1 / 9 */
        {"Hello world.", 0.6},           /* 12 / 20 */
        {rep, 6.0},                      /* 240 / 40 */
        {"\xc3\x9cn\xc3\xaf" "c\xc3\xb6" "d\xc3\xa9 \xe2\x80\x93 na\xc3\xafve caf\xc3\xa9, \xe6\x9d\xb1\xe4\xba\xac and "
         "\xec\x95\x88\xeb\x85\x95\xed\x95\x98\xec\x84\xb8\xec\x9a\x94 \xf0\x9f\x98\x80",
         61.0 / 72.0},                   /* "Ünïcödé – naïve café, 東京 and 안녕하세요 😀" */
        {noise, 200.0 / 101.0},          /* chr(33 + (i * 7919) % 90) for i < 200 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double r = -1;
        CU_ASSERT_EQUAL(em_whisper_compression_ratio(cases[i].text, strlen(cases[i].text), &r), EM_OK);
        CU_ASSERT_DOUBLE_EQUAL(r, cases[i].want, 1e-12);
        if (fabs(r - cases[i].want) > 1e-12) printf("\n    case %zu: %.12g, want %.12g", i, r, cases[i].want);
    }
}

/* OpenAI's fallback rule on hand-made windows: each threshold alone triggers it, silence
 * (no-speech > 0.6 with a low average) does not. */
static void fallback_rule_follows_openai(void)
{
    struct em_whisper_gen g = {.n = 9, .no_speech_prob = 0.1f, .sum_logprob = -3.0}; /* avg -0.3 */
    CU_ASSERT(!em_whisper_needs_fallback(&g, 1.5));
    CU_ASSERT(!em_whisper_needs_fallback(&g, 2.4)); /* strictly above 2.4 */
    CU_ASSERT(em_whisper_needs_fallback(&g, 2.41));
    g.sum_logprob = -10.5; /* avg -1.05 */
    CU_ASSERT(em_whisper_needs_fallback(&g, 1.5));
    g.no_speech_prob = 0.7f; /* silent window: skipped, not retried */
    CU_ASSERT(!em_whisper_needs_fallback(&g, 1.5));
    CU_ASSERT(!em_whisper_needs_fallback(&g, 3.0));
    g.sum_logprob = -3.0; /* speech likely after all: a repeating text is still retried */
    CU_ASSERT(em_whisper_needs_fallback(&g, 3.0));
}

/* caribbean_fast with beam 5 and no timestamps loops on "6th, 6th, ..." for all 224 tokens
 * at T = 0 (as CTranslate2 does, beam5_matches_ctranslate2): its compression ratio (17.8) is
 * far over 2.4, so OpenAI's fallback decodes it again by sampling from T = 0.2 on (with seed 1
 * tiny.en's samples keep failing a threshold up to T = 1.0, whose result is kept, as OpenAI
 * keeps it); the seeded fallback repeats run to run. */
static void looping_window_falls_back(void)
{
    struct em_whisper_info info;
    em_whisper_info(wh, &info);
    float *mel = malloc(sizeof(float) * (size_t)info.n_mels * 3000);
    float *enc = malloc(sizeof(float) * 1500 * (size_t)info.d_model);
    size_t n = 0;
    CU_ASSERT_FATAL(mel && enc);
    CU_ASSERT_EQUAL_FATAL(encode_clip("caribbean_fast", mel, enc, &n), 0);
    struct em_errbuf eb = {{0}};
    struct em_whisper_opts o = em_whisper_opts_default();
    o.timestamps = false;
    o.beam_size = 5;
    o.seed = 1;
    o.max_new = 64;  /* the loop shows within 64 tokens; keeps the 2 x 5 x 2 decodes short */
    o.best_of = 2;
    struct em_whisper_gen g0 = {0}, g[2] = {{0}};
    CU_ASSERT_EQUAL_FATAL(em_whisper_generate(wh, enc, &o, &g0, &eb), EM_OK);
    char *text = NULL;
    size_t len = 0;
    double ratio0 = 0, ratio[2] = {0, 0};
    double temp[2] = {0, 0};
    CU_ASSERT_EQUAL_FATAL(em_tok_decode(em_whisper_tok(wh), g0.ids, g0.n, true, &text, &len), EM_OK);
    CU_ASSERT_EQUAL(em_whisper_compression_ratio(text, len, &ratio0), EM_OK);
    printf("\n    T 0: %zu ids, ratio %.2f, avg %.3f", g0.n, ratio0, g0.sum_logprob / (double)(g0.n + 1));
    CU_ASSERT(ratio0 > 2.4);
    CU_ASSERT(em_whisper_needs_fallback(&g0, ratio0));
    free(text);
    for (int k = 0; k < 2; k++) {
        CU_ASSERT_EQUAL_FATAL(em_whisper_decode_fallback(wh, enc, &o, &g[k], &temp[k], &ratio[k], &eb), EM_OK);
        CU_ASSERT_EQUAL_FATAL(em_tok_decode(em_whisper_tok(wh), g[k].ids, g[k].n, true, &text, &len), EM_OK);
        printf("\n    kept T %.1f: %zu ids, ratio %.2f, avg %.3f:%s", temp[k], g[k].n, ratio[k],
               g[k].sum_logprob / (double)(g[k].n + 1), text);
        free(text);
    }
    CU_ASSERT(temp[0] > 0.19); /* T = 0 was not kept */
    if (temp[0] < 0.99) /* kept before the last temperature: it passed the thresholds */
        CU_ASSERT(!em_whisper_needs_fallback(&g[0], ratio[0]));
    CU_ASSERT(g[0].n < g0.n); /* not the loop */
    CU_ASSERT_DOUBLE_EQUAL(temp[0], temp[1], 0.0); /* reproducible */
    CU_ASSERT_EQUAL(g[0].n, g[1].n);
    CU_ASSERT(g[0].n == g[1].n && memcmp(g[0].ids, g[1].ids, g[0].n * sizeof(int32_t)) == 0);
    CU_ASSERT_DOUBLE_EQUAL(g[0].sum_logprob, g[1].sum_logprob, 0.0);
    /* the sampler draws from the model's distribution: at T = 0.2 the best of 5 stays close
     * to the confident T = 0 text (here: the loop again), average log-probability over -1 */
    em_whisper_gen_clear(&g0);
    o.temperature = 0.2f;
    o.best_of = 5;
    CU_ASSERT_EQUAL_FATAL(em_whisper_generate(wh, enc, &o, &g0, &eb), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_tok_decode(em_whisper_tok(wh), g0.ids, g0.n, true, &text, &len), EM_OK);
    CU_ASSERT_EQUAL(em_whisper_compression_ratio(text, len, &ratio0), EM_OK);
    printf("\n    T 0.2 best of 5: %zu ids, ratio %.2f, avg %.3f", g0.n, ratio0, g0.sum_logprob / (double)(g0.n + 1));
    free(text);
    CU_ASSERT(g0.sum_logprob / (double)(g0.n + 1) > -1.0);
    em_whisper_gen_clear(&g0);
    o.temperature = -0.1f; /* refused */
    CU_ASSERT_EQUAL(em_whisper_generate(wh, enc, &o, &g0, &eb), EM_E_ARG);
    em_whisper_gen_clear(&g[0]);
    em_whisper_gen_clear(&g[1]);
    free(mel);
    free(enc);
}

/* The same sentence eight times in one window through the facade's long-form procedure (60
 * tokens at most): the text repeats, so the window is kept at a temperature above 0, and
 * the record holds it with the average log-probability and compression ratio; the same seed
 * gives the same records. */
static void repeating_window_records_the_fallback(void)
{
    char dir[1024];
    CU_ASSERT_EQUAL_FATAL(golden_whisper_dir(dir, sizeof dir), 0);
    const char *parts[] = {"us_normal", "us_normal", "us_normal", "us_normal",
                           "us_normal", "us_normal", "us_normal", "us_normal"};
    struct em_audio a = {0};
    a.pcm = concat(parts, 8, &a.n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a.pcm);
    CU_ASSERT_FATAL(a.n <= 30 * 16000);
    struct em_errbuf eb = {{0}};
    struct em_model *m = NULL;
    CU_ASSERT_EQUAL_FATAL(em_model_load(dir, NULL, &m, &eb), EM_OK);
    struct em_model_prompt pr = {NULL, "transcript", NULL};
    struct em_gen_params_override ov = {.greedy = true, .max_new_tokens = 60, .set_seed = true, .seed = 7};
    struct em_model_result *r[2] = {NULL, NULL};
    for (int k = 0; k < 2; k++) {
        em_err rc = em_model_annotate(m, &a, &pr, 1, &ov, &r[k], &eb);
        if (rc != EM_OK) printf("\n    %s", eb.msg);
        CU_ASSERT_EQUAL_FATAL(rc, EM_OK);
    }
    const struct em_model_segment *w0 = &r[0]->segments[0];
    printf("\n    window 0 kept T %.1f, avg %.3f, ratio %.2f: '%.60s'", w0->temperature,
           w0->avg_logprob, w0->compression_ratio, w0->answers[0].text);
    CU_ASSERT(w0->temperature > 0.19);
    CU_ASSERT(w0->compression_ratio > 0);
    if (w0->temperature < 0.99) { /* kept before the last: it passed the thresholds */
        CU_ASSERT(w0->compression_ratio <= 2.4);
        CU_ASSERT(w0->avg_logprob >= -1.0);
    }
    CU_ASSERT_EQUAL(r[0]->n_segments, r[1]->n_segments);
    for (size_t i = 0; i < r[0]->n_segments && i < r[1]->n_segments; i++) {
        const struct em_model_segment *x = &r[0]->segments[i], *y = &r[1]->segments[i];
        CU_ASSERT_DOUBLE_EQUAL(x->temperature, y->temperature, 0.0);
        CU_ASSERT_DOUBLE_EQUAL(x->avg_logprob, y->avg_logprob, 0.0);
        CU_ASSERT_DOUBLE_EQUAL(x->compression_ratio, y->compression_ratio, 0.0);
        CU_ASSERT_EQUAL(x->answers[0].n_ids, y->answers[0].n_ids);
        CU_ASSERT(x->answers[0].n_ids == y->answers[0].n_ids &&
                  memcmp(x->answers[0].ids, y->answers[0].ids, x->answers[0].n_ids * sizeof(int32_t)) == 0);
    }
    CU_ASSERT_STRING_EQUAL(r[0]->transcript, r[1]->transcript);
    em_model_result_free(r[0]);
    em_model_result_free(r[1]);
    free(a.pcm);
    em_model_free(m);
}

/* The clips without speech (the golden 3 s of silence, 4 s of pink noise) through the facade,
 * beam 5 (the default) and greedy: each window's no-speech probability and average
 * log-probability are ctranslate2's, and OpenAI's rule (skip a window whose no-speech
 * probability is over 0.6 while its average log-probability is at most -1) decides as it
 * does on ctranslate2's decoding (data/faster_whisper.json "openai_rule",
 * make_whisper_golden.py --faster-whisper). Both clips are far from speech, yet the model's
 * own figures keep " you" on some runs (as openai-whisper would); faster-whisper, whose
 * log-mel pads each window with zeros rather than with silence's log-mel, is printed beside.
 * A skipped window leaves an empty transcript and its facts in the record. */
static void no_speech_follows_openai_rule(void)
{
    char dir[1024], p[2200];
    CU_ASSERT_EQUAL_FATAL(golden_whisper_model_dir(model_name, dir, sizeof dir), 0);
    snprintf(p, sizeof p, "%s/faster_whisper.json", data_dir);
    json_error_t jerr;
    json_t *fw = json_load_file(p, 0, &jerr);
    CU_ASSERT_PTR_NOT_NULL_FATAL(fw);
    json_t *rule = json_object_get(json_object_get(fw, "openai_rule"), model_name);
    json_t *fwr = json_object_get(json_object_get(fw, "models"), model_name);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rule);
    struct em_model *m = NULL;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(em_model_load(dir, NULL, &m, &eb), EM_OK);
    const char *names[] = {"silence", "pink"};
    size_t skipped = 0, want_skipped = 0;
    for (size_t i = 0; i < 4; i++) {
        const char *name = names[i / 2];
        int beam = i % 2 ? 1 : 5;
        char key[64];
        snprintf(key, sizeof key, "%s/beam%d", name, beam);
        json_t *want = json_object_get(rule, key);
        CU_ASSERT_PTR_NOT_NULL_FATAL(want);
        int want_skip = json_is_true(json_object_get(want, "skip"));
        want_skipped += want_skip;
        struct em_audio a = {0};
        a.pcm = clip(name, &a.n);
        CU_ASSERT_PTR_NOT_NULL_FATAL(a.pcm);
        a.duration_s = (double)a.n / 16000.0;
        struct em_model_prompt pr = {NULL, "transcript", NULL};
        struct em_gen_params_override ov = {.greedy = beam == 1};
        struct em_model_result *r = NULL;
        CU_ASSERT_EQUAL_FATAL(em_model_annotate(m, &a, &pr, 1, &ov, &r, &eb), EM_OK);
        const struct em_model_segment *w0 = &r->segments[0];
        printf("\n    %s %-12s '%s' (no-speech %.4f, avg log-prob %.4f, T %.1f); ctranslate2 %.4f %.4f %s;"
               " faster-whisper '%s'", model_name, key, r->transcript, w0->no_speech_prob, w0->avg_logprob,
               w0->temperature, json_real_value(json_object_get(want, "no_speech_prob")),
               json_real_value(json_object_get(want, "avg_logprob")), want_skip ? "skip" : "keep",
               json_string_value(json_object_get(json_object_get(fwr, key), "text")));
        CU_ASSERT_EQUAL(r->n_segments, 1);
        CU_ASSERT(fabs(w0->no_speech_prob - json_real_value(json_object_get(want, "no_speech_prob"))) <= NOSPEECH_TOL);
        CU_ASSERT(fabs(w0->avg_logprob - json_real_value(json_object_get(want, "avg_logprob"))) <= 1e-3);
        CU_ASSERT_EQUAL(*r->transcript == '\0', want_skip); /* the same decision */
        if (!*r->transcript) { /* skipped: nothing kept, the window's facts recorded */
            skipped++;
            CU_ASSERT(w0->no_speech_prob > 0.6 && w0->avg_logprob <= -1.0);
            CU_ASSERT_EQUAL(r->n_tsegs, 0);
            CU_ASSERT_STRING_EQUAL(w0->answers[0].text, "");
            struct em_facts facts;
            em_facts_compute(a.pcm, a.n, 16000, &facts);
            struct em_annot_in in = {.item_id = "i", .batch_id = "b", .source = "quiet.ogg",
                                     .attempt = 1, .audio = &a, .facts = &facts, .result = r,
                                     .err = EM_OK};
            size_t len = 0;
            char *rec = em_annot_build(&in, &len);
            CU_ASSERT_PTR_NOT_NULL_FATAL(rec);
            CU_ASSERT_PTR_NOT_NULL(strstr(rec, "\"transcript\":{\"text\":\"\",\"language\":\""));
            CU_ASSERT_PTR_NOT_NULL(strstr(rec, "\"no_speech_prob\":0.") || strstr(rec, "\"no_speech_prob\":1"));
            free(rec);
        }
        em_model_result_free(r);
        free(a.pcm);
    }
    CU_ASSERT_EQUAL(skipped, want_skipped);
    if (strcmp(model_name, "tiny.en") == 0) CU_ASSERT(skipped >= 1); /* pink, greedy */
    json_decref(fw);
    em_model_free(m);
}

/* Multilingual base through the facade: the German and Spanish clips' records name the
 * language ctranslate2 detects (and espeak-ng spoke); a long clip keeps the language of its
 * first window (OpenAI's transcribe detects once), here German before an English window. */
static void base_transcript_names_the_language(void)
{
    char dir[1024];
    CU_ASSERT_EQUAL_FATAL(golden_whisper_model_dir("base", dir, sizeof dir), 0);
    struct em_model *m = NULL;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(em_model_load(dir, NULL, &m, &eb), EM_OK);
    json_t *clips = json_object_get(index_json, "clips");
    const char *names[] = {"de_normal", "es_normal"};
    struct em_model_prompt pr = {NULL, "transcript", NULL};
    struct em_gen_params_override greedy = {.greedy = true};
    for (size_t i = 0; i < 2; i++) {
        json_t *rec = json_object_get(clips, names[i]);
        struct em_audio a = {0};
        a.pcm = clip(names[i], &a.n);
        CU_ASSERT_PTR_NOT_NULL_FATAL(a.pcm);
        a.duration_s = (double)a.n / 16000.0;
        struct em_model_result *r = NULL;
        CU_ASSERT_EQUAL_FATAL(em_model_annotate(m, &a, &pr, 1, &greedy, &r, &eb), EM_OK);
        printf("\n    %s: [%s] %s", names[i], r->language, r->transcript);
        CU_ASSERT_STRING_EQUAL(r->language, json_string_value(json_object_get(rec, "language")));
        CU_ASSERT_STRING_EQUAL(r->language, json_string_value(json_object_get(rec, "spoken_language")));
        CU_ASSERT(*r->transcript != '\0');
        struct em_facts facts;
        em_facts_compute(a.pcm, a.n, 16000, &facts);
        struct em_annot_in in = {.item_id = "i", .batch_id = "b", .source = names[i], .attempt = 1,
                                 .audio = &a, .facts = &facts, .result = r, .err = EM_OK};
        size_t len = 0;
        char *json = em_annot_build(&in, &len);
        char want[64];
        snprintf(want, sizeof want, "\"language\":\"%s\"", r->language);
        CU_ASSERT_PTR_NOT_NULL(json && strstr(json, want));
        free(json);
        em_model_result_free(r);
        free(a.pcm);
    }
    /* 28.5 s of German, then English: base names the first window's language (Yiddish here)
     * and the last window's (which starts in the English) differently; the record keeps the
     * first window's, as OpenAI's transcribe detects once */
    const char *parts[] = {"de_normal", "de_normal", "de_normal", "de_normal", "de_normal",
                           "de_normal", "us_normal", "us_normal"};
    struct em_audio a = {0};
    a.pcm = concat(parts, 8, &a.n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a.pcm);
    a.duration_s = (double)a.n / 16000.0;
    struct em_model_result *r = NULL;
    greedy.max_new_tokens = 24;
    CU_ASSERT_EQUAL_FATAL(em_model_annotate(m, &a, &pr, 1, &greedy, &r, &eb), EM_OK);
    CU_ASSERT_FATAL(r->n_segments >= 2);
    char first[8] = "", last[8] = "";
    float *mel = malloc(sizeof(float) * 80 * EM_MEL_FRAMES), *enc = malloc(sizeof(float) * 1500 * 512);
    CU_ASSERT_FATAL(mel && enc);
    for (int k = 0; k < 2; k++) { /* each window's own detection */
        size_t off = (size_t)((k ? r->segments[r->n_segments - 1].start_s : 0.0) * 16000.0 + 0.5);
        size_t n = a.n - off < 480000 ? a.n - off : 480000;
        struct em_whisper_opts o = em_whisper_opts_default();
        o.max_new = 1;
        struct em_whisper_gen g;
        CU_ASSERT_EQUAL_FATAL(em_whisper_mel(wh, a.pcm + off, n, mel), EM_OK);
        CU_ASSERT_EQUAL_FATAL(em_whisper_encode(wh, mel, enc, &eb), EM_OK);
        CU_ASSERT_EQUAL_FATAL(em_whisper_generate(wh, enc, &o, &g, &eb), EM_OK);
        snprintf(k ? last : first, 8, "%s", g.language);
        em_whisper_gen_clear(&g);
    }
    printf("\n    %.1f s, %zu windows, first window alone: %s, last alone: %s; record: %s",
           a.duration_s, r->n_segments, first, last, r->language);
    CU_ASSERT_STRING_EQUAL(r->language, first);
    CU_ASSERT_STRING_NOT_EQUAL(first, last);
    free(mel);
    free(enc);
    em_model_result_free(r);
    free(a.pcm);
    em_model_free(m);
}

static CU_TestInfo tests[] = {
    {"golden_clips_match_ctranslate2", golden_clips_match_ctranslate2},
    {"beam5_matches_ctranslate2", beam5_matches_ctranslate2},
    {"segments_follow_timestamps", segments_follow_timestamps},
    {"bad_options_and_dirs_are_refused", bad_options_and_dirs_are_refused},
    {"facade_transcribes_with_segments", facade_transcribes_with_segments},
    {"long_form_seeks_by_timestamps", long_form_seeks_by_timestamps},
    {"hf_layout_gives_the_same_ids", hf_layout_gives_the_same_ids},
    {"family_is_chosen_from_the_files", family_is_chosen_from_the_files},
    {"compression_ratio_matches_python_zlib", compression_ratio_matches_python_zlib},
    {"fallback_rule_follows_openai", fallback_rule_follows_openai},
    {"looping_window_falls_back", looping_window_falls_back},
    {"repeating_window_records_the_fallback", repeating_window_records_the_fallback},
    {"no_speech_follows_openai_rule", no_speech_follows_openai_rule},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_whisper = {"whisper", init, clean, NULL, NULL, tests};

/* Multilingual Whisper base (deploy/fetch-whisper.sh --model base) against
 * data/base_index.json: the same golden checks plus the detected language. */
static CU_TestInfo tests_base[] = {
    {"golden_clips_match_ctranslate2", golden_clips_match_ctranslate2},
    {"beam5_matches_ctranslate2", beam5_matches_ctranslate2},
    {"no_speech_follows_openai_rule", no_speech_follows_openai_rule},
    {"base_transcript_names_the_language", base_transcript_names_the_language},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_whisper_base = {"whisper_base", init_base, clean, NULL, NULL, tests_base};
