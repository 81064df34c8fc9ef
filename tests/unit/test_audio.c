/* tests/unit/test_audio.c - model/audio/audio.c: FFmpeg decode of real clips made by sox/ffmpeg
 * (containers, codecs, rates, channels), resampling fidelity, and bad inputs. */
#include <CUnit/CUnit.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/audio/audio.h"
#include "tests/helpers/clips.h"
#include "tests/helpers/proc.h"

#define TONE_HZ 440.0
#define TONE_AMP 0.5
#define TONE_S 1.5
/* Lossless: the only duration error is the resampler's rounding, a sample or two. */
#define TOL_PCM_S (2.0 / EM_AUDIO_RATE)
/* RMS of the middle of a tone: lossless within quantisation; lossy codecs within 1 dB:
 * LAME at 128 kb/s takes 0.45 dB off a pure 440 Hz tone (the ffmpeg CLI decodes the same
 * file to the same level; at 320 kb/s the loss is < 0.01 dB), AAC/Vorbis/Opus < 0.05 dB. */
#define TOL_RMS_LOSSLESS_DB 0.05
#define TOL_RMS_LOSSY_DB 1.0
/* 1 kHz at 48 kHz -> 16 kHz: swr's passband ripple is far below this */
#define TOL_RESAMPLE_DB 0.1

static char dir[512];

struct fmt_case {
    const char *file;
    const char *ffargs; /* NULL: made by sox (th_make_tone) */
    int rate, channels;
    const char *codec, *container;
    /* Allowed duration error in seconds, below and above the true length. Lossy codecs
     * pad to whole frames: FFmpeg trims the encoder delay where the file says it (LAME
     * tag, Ogg pre-skip/granule, MP4 edit list) but may keep up to one frame of end
     * padding, so the tolerance is one codec frame (mp3 1152, AAC 1024, Vorbis long block
     * 2048, Opus 960 samples at 48 kHz). sox's mp3 writer has no gapless tag, so its
     * clips also carry the decoder delay (576 + 529 samples) before the first frame. */
    double tol_lo_s, tol_hi_s;
    int lossy;
};

static const struct fmt_case cases[] = {
    {"s16-8k-mono.wav", NULL, 8000, 1, "pcm_s16le", "wav", TOL_PCM_S, TOL_PCM_S, 0},
    {"s16-22k-stereo.wav", NULL, 22050, 2, "pcm_s16le", "wav", TOL_PCM_S, TOL_PCM_S, 0},
    {"s24-44k-stereo.wav", "-c:a pcm_s24le", 44100, 2, "pcm_s24le", "wav", TOL_PCM_S, TOL_PCM_S, 0},
    {"f32-48k-mono.wav", "-c:a pcm_f32le", 48000, 1, "pcm_f32le", "wav", TOL_PCM_S, TOL_PCM_S, 0},
    {"flac-22k-stereo.flac", "-c:a flac", 22050, 2, "flac", "flac", TOL_PCM_S, TOL_PCM_S, 0},
    {"flac-48k-mono.flac", NULL, 48000, 1, "flac", "flac", TOL_PCM_S, TOL_PCM_S, 0},
    {"lame-44k-stereo.mp3", "-c:a libmp3lame -b:a 128k", 44100, 2, "mp3", "mp3", 1152.0 / 44100,
     1152.0 / 44100, 1},
    {"sox-22k-mono.mp3", NULL, 22050, 1, "mp3", "mp3", 1152.0 / 22050, (1152.0 + 1105) / 22050, 1},
    {"vorbis-22k-mono.ogg", "-c:a libvorbis -q:a 4", 22050, 1, "vorbis", "ogg", 2048.0 / 22050,
     2048.0 / 22050, 1},
    {"opus-48k-stereo.ogg", "-c:a libopus -b:a 64k", 48000, 2, "opus", "ogg", 960.0 / 48000,
     960.0 / 48000, 1},
    {"aac-8k-mono.m4a", "-c:a aac -b:a 32k", 8000, 1, "aac", "mov,mp4,m4a,3gp,3g2,mj2", 1024.0 / 8000,
     1024.0 / 8000, 1},
    {"aac-48k-stereo.m4a", "-c:a aac -b:a 128k", 48000, 2, "aac", "mov,mp4,m4a,3gp,3g2,mj2",
     1024.0 / 48000, 1024.0 / 48000, 1},
};
#define NCASES (sizeof cases / sizeof *cases)

static const char *path_of(const char *file)
{
    static _Thread_local char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    return p;
}

static int init(void)
{
    if (th_tmpdir(dir, sizeof dir) != 0) return 1;
    for (size_t i = 0; i < NCASES; i++) {
        const struct fmt_case *c = &cases[i];
        int rc = c->ffargs ? th_make_tone_ff(path_of(c->file), TONE_HZ, TONE_AMP, TONE_S, c->rate, c->channels, c->ffargs)
                           : th_make_tone(path_of(c->file), TONE_HZ, TONE_AMP, TONE_S, c->rate, c->channels);
        if (rc != 0) {
            fprintf(stderr, "audio: cannot make %s\n", c->file);
            return 1;
        }
    }
    /* 1 kHz at 48 kHz stereo in float (no quantisation) for the resampler check */
    if (th_make_tone_ff(path_of("k1-48k-stereo.wav"), 1000, TONE_AMP, 1.0, 48000, 2, "-c:a pcm_f32le") != 0) return 1;
    /* left channel a tone, right channel silent: the mean downmix halves it */
    if (th_sh("sox -q -R -D -n -r 48000 -c 2 -e floating-point -b 32 '%s' synth 1 sine 1000 vol 0.5 remix 1 0",
              path_of("left-only.wav")) != 0)
        return 1;
    /* a file with a video stream and no audio */
    if (th_sh("ffmpeg -nostdin -v error -y -f lavfi -i color=c=black:s=16x16:d=0.4:r=5 -c:v mpeg4 '%s'",
              path_of("video-only.mkv")) != 0)
        return 1;
    /* a wav header with no samples */
    if (th_sh("sox -q -n -r 16000 -c 1 -b 16 '%s' trim 0 0", path_of("header-only.wav")) != 0) return 1;
    /* chained Ogg: 1 s at 22.05 kHz mono, then 1 s at 44.1 kHz stereo in one file */
    if (th_make_tone(path_of("chain-a.wav"), TONE_HZ, TONE_AMP, 1.0, 22050, 1) != 0 ||
        th_make_tone(path_of("chain-b.wav"), TONE_HZ, TONE_AMP, 1.0, 44100, 2) != 0 ||
        th_sh("cd '%s' && sox -q chain-a.wav -t vorbis chain-a.ogg && sox -q chain-b.wav -t vorbis chain-b.ogg && "
              "cat chain-a.ogg chain-b.ogg > chained.ogg", dir) != 0)
        return 1;
    if (th_make_corpus(dir, 0, 1) != 0) return 1; /* the bad inputs only */
    return 0;
}

static int clean(void)
{
    th_rmrf(dir);
    return 0;
}

static void decodes_every_format(void)
{
    for (size_t i = 0; i < NCASES; i++) {
        const struct fmt_case *c = &cases[i];
        struct em_audio a;
        struct em_errbuf eb = {{0}};
        em_err rc = em_audio_decode_file(path_of(c->file), &a, &eb);
        CU_ASSERT_EQUAL_FATAL(rc, EM_OK);
        double err = a.duration_s - TONE_S;
        CU_ASSERT(err >= -c->tol_lo_s && err <= c->tol_hi_s);
        CU_ASSERT_DOUBLE_EQUAL(a.duration_s, (double)a.n / EM_AUDIO_RATE, 1e-12);
        CU_ASSERT_EQUAL(a.src_rate, c->rate);
        CU_ASSERT_EQUAL(a.src_channels, c->channels);
        CU_ASSERT_STRING_EQUAL(a.codec, c->codec);
        CU_ASSERT_STRING_EQUAL(a.container, c->container);
        CU_ASSERT_EQUAL(a.n_corrupt, 0);
        /* level of the middle (away from codec edges) */
        double got = th_db(th_rms(a.pcm, EM_AUDIO_RATE / 5, a.n - EM_AUDIO_RATE / 5));
        double want = th_db(TONE_AMP / sqrt(2.0));
        double tol = c->lossy ? TOL_RMS_LOSSY_DB : TOL_RMS_LOSSLESS_DB;
        fprintf(stderr, "\n  %-22s duration %+.5f s (tol -%.4f/+%.4f)  rms %+.3f dB (tol %.2f)", c->file, err,
                c->tol_lo_s, c->tol_hi_s, got - want, tol);
        CU_ASSERT(fabs(got - want) <= tol);
        em_audio_free(&a);
        CU_ASSERT_PTR_NULL(a.pcm);
    }
}

static size_t zero_crossings(const float *x, size_t from, size_t to)
{
    size_t z = 0;
    for (size_t i = from + 1; i < to; i++) z += (x[i - 1] < 0) != (x[i] < 0);
    return z;
}

static void resample_keeps_level_and_frequency(void)
{
    struct em_audio a;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(em_audio_decode_file(path_of("k1-48k-stereo.wav"), &a, &eb), EM_OK);
    CU_ASSERT_EQUAL(a.src_rate, 48000);
    CU_ASSERT_EQUAL(a.src_channels, 2);
    CU_ASSERT_EQUAL(a.n, EM_AUDIO_RATE); /* 1 s */
    size_t from = 800, to = a.n - 800;   /* skip the filter's 50 ms edges */
    double got = th_db(th_rms(a.pcm, from, to)), want = th_db(TONE_AMP / sqrt(2.0));
    fprintf(stderr, "\n  1 kHz 48k stereo -> 16k mono: rms %.4f dBFS, expected %.4f (tol %.2f)", got, want,
            TOL_RESAMPLE_DB);
    CU_ASSERT(fabs(got - want) <= TOL_RESAMPLE_DB);
    /* 1 kHz crosses zero 2000 times a second: 0.9 s span -> 1800 */
    size_t z = zero_crossings(a.pcm, from, to);
    CU_ASSERT(z >= 1798 && z <= 1802);
    double p1k = th_goertzel(a.pcm, from, to, 1000, EM_AUDIO_RATE);
    CU_ASSERT(p1k > 1000 * th_goertzel(a.pcm, from, to, 900, EM_AUDIO_RATE));
    CU_ASSERT(p1k > 1000 * th_goertzel(a.pcm, from, to, 1100, EM_AUDIO_RATE));
    CU_ASSERT(p1k > 1000 * th_goertzel(a.pcm, from, to, 3000, EM_AUDIO_RATE));
    em_audio_free(&a);
}

static void downmix_is_channel_mean(void)
{
    struct em_audio a;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(em_audio_decode_file(path_of("left-only.wav"), &a, &eb), EM_OK);
    double got = th_db(th_rms(a.pcm, 800, a.n - 800)), want = th_db(TONE_AMP / 2 / sqrt(2.0));
    CU_ASSERT(fabs(got - want) <= TOL_RESAMPLE_DB);
    em_audio_free(&a);
}

/* asserts rc and that the message names the item and contains what */
static void expect_error(const char *file, em_err want, const char *what, const struct em_audio_opts *o)
{
    struct em_audio a;
    struct em_errbuf eb = {{0}};
    em_err rc = em_audio_decode_file_opts(path_of(file), o, &a, &eb);
    if (rc != want || !strstr(eb.msg, file) || (what && !strstr(eb.msg, what)))
        fprintf(stderr, "\n  %s: got %s \"%s\", expected %s \"%s\"", file, em_err_name(rc), eb.msg,
                em_err_name(want), what ? what : "");
    CU_ASSERT_EQUAL(rc, want);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, file));
    if (what) CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, what));
    CU_ASSERT_PTR_NULL(a.pcm);
    CU_ASSERT_EQUAL(a.n, 0);
}

static void bad_inputs_name_file_and_cause(void)
{
    expect_error("empty.wav", EM_E_AUDIO, "empty file", NULL);
    expect_error("random.wav", EM_E_AUDIO, "cannot detect container format", NULL);
    expect_error("text.mp3", EM_E_AUDIO, NULL, NULL);
    expect_error("video-only.mkv", EM_E_AUDIO, "no audio stream", NULL);
    expect_error("missing.wav", EM_E_NOTFOUND, "No such file", NULL);
    expect_error("header-only.wav", EM_E_AUDIO, "decoded 0 samples", NULL);

    struct em_audio a;
    struct em_errbuf eb = {{0}};
    static const uint8_t one = 0;
    CU_ASSERT_EQUAL(em_audio_decode_mem(&one, 0, "mem.wav", &a, &eb), EM_E_AUDIO);
    CU_ASSERT_STRING_EQUAL(eb.msg, "mem.wav: empty file");
    CU_ASSERT_EQUAL(em_audio_decode_mem(&one, 1, "one.wav", &a, &eb), EM_E_AUDIO);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "one.wav: "));
}

static void limits_are_enforced(void)
{
    struct em_audio_opts o = em_audio_opts_default();
    CU_ASSERT_EQUAL(o.max_bytes, EM_AUDIO_MAX_BYTES);
    CU_ASSERT_DOUBLE_EQUAL(o.max_seconds, EM_AUDIO_MAX_SECONDS, 0);
    o.max_bytes = 1000; /* the 8 kHz 1.5 s wav is 24 kB */
    expect_error("s16-8k-mono.wav", EM_E_TOO_LONG, "byte limit", &o);
    o = em_audio_opts_default();
    o.max_seconds = 1.0; /* the clips are 1.5 s */
    expect_error("lame-44k-stereo.mp3", EM_E_TOO_LONG, "longer than the 1 s limit", &o);
    expect_error("s16-8k-mono.wav", EM_E_TOO_LONG, "longer than", &o);

    /* the memory variant checks the byte limit too */
    size_t len;
    char *data = th_slurp(path_of("s16-8k-mono.wav"), &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    struct em_audio a;
    struct em_errbuf eb = {{0}};
    o = em_audio_opts_default();
    o.max_bytes = len - 1;
    CU_ASSERT_EQUAL(em_audio_decode_mem_opts((uint8_t *)data, len, "x.wav", &o, &a, &eb), EM_E_TOO_LONG);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "x.wav"));
    o.max_bytes = len; /* exactly at the limit is fine */
    CU_ASSERT_EQUAL(em_audio_decode_mem_opts((uint8_t *)data, len, "x.wav", &o, &a, &eb), EM_OK);
    em_audio_free(&a);
    free(data);
}

static void truncated_mp3_is_refused(void)
{
    /* make-corpus.sh: the first 30% of a 3 s 44.1 kHz stereo mp3 whose Xing header says 3 s */
    struct em_audio a;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL(em_audio_decode_file(path_of("truncated.mp3"), &a, &eb), EM_E_AUDIO);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "truncated.mp3"));
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "truncated: decoded"));
    CU_ASSERT_PTR_NULL(a.pcm);
}

static void tiny_clip_decodes(void)
{
    struct em_audio a;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(em_audio_decode_file(path_of("tiny.wav"), &a, &eb), EM_OK);
    CU_ASSERT_EQUAL(a.n, 160); /* 10 ms at 16 kHz */
    em_audio_free(&a);
}

/* An mp3 cut mid-frame: the decoder still returns audio, reporting the damage only in its
 * log ("invalid new backstep"); that reaches n_decode_errors, while the whole file has none
 * (th_make_cut_mp3 fails when no cut over the last two frames counts any). */
static void cut_mp3_counts_decode_errors(void)
{
    size_t k = 0;
    char whole[1024];
    snprintf(whole, sizeof whole, "%s", path_of("whole.mp3")); /* path_of: one buffer */
    CU_ASSERT_EQUAL_FATAL(th_make_cut_mp3(whole, path_of("cut.mp3"), &k), 0);
    struct em_audio a;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(em_audio_decode_file(path_of("whole.mp3"), &a, &eb), EM_OK);
    fprintf(stderr, "\n  whole mp3: %.3f s, %u decode errors, %u corrupt", a.duration_s,
            a.n_decode_errors, a.n_corrupt);
    CU_ASSERT_EQUAL(a.n_decode_errors, 0);
    CU_ASSERT_EQUAL(a.n_corrupt, 0);
    em_audio_free(&a);
    em_err rc = em_audio_decode_file(path_of("cut.mp3"), &a, &eb);
    if (rc != EM_OK) fprintf(stderr, "\n  cut.mp3: %s", em_errbuf_msg(&eb, rc));
    CU_ASSERT_EQUAL_FATAL(rc, EM_OK);
    fprintf(stderr, "\n  cut mp3: %zu bytes off, %.3f s, %u decode errors", k, a.duration_s,
            a.n_decode_errors);
    CU_ASSERT(a.n_decode_errors > 0 && a.n_decode_errors >= a.n_corrupt);
    CU_ASSERT(a.duration_s > 1.8);
    em_audio_free(&a);
}

static void corrupt_middle_is_skipped(void)
{
    size_t len;
    char *data = th_slurp(path_of("lame-44k-stereo.mp3"), &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    /* overwrite 2 kB in the middle with a fixed pseudo-random pattern */
    uint32_t s = 12345;
    for (size_t i = len / 2; i < len / 2 + 2048 && i < len; i++) {
        s = s * 1103515245u + 12345u;
        data[i] = (char)(s >> 16);
    }
    struct em_audio a;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(em_audio_decode_mem((uint8_t *)data, len, "corrupt.mp3", &a, &eb), EM_OK);
    /* most of the 1.5 s survive: 2 kB at 128 kb/s is about 0.13 s */
    fprintf(stderr, "\n  corrupt.mp3: %.4f s decoded, %u corrupt packets", a.duration_s, a.n_corrupt);
    CU_ASSERT(a.duration_s > 1.2 && a.duration_s < 1.6);
    CU_ASSERT(a.n_corrupt >= 1);
    for (size_t i = 0; i < a.n; i++)
        if (!(a.pcm[i] >= -1.0f && a.pcm[i] <= 1.0f)) {
            CU_FAIL("sample out of range");
            break;
        }
    em_audio_free(&a);
    free(data);
}

static void format_change_midstream_is_resampled(void)
{
    /* the second link has another rate and layout: the resampler is re-created (without
     * that the 44.1 kHz second would be read as 22.05 kHz and last 2 s) */
    struct em_audio a;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(em_audio_decode_file(path_of("chained.ogg"), &a, &eb), EM_OK);
    CU_ASSERT_DOUBLE_EQUAL(a.duration_s, 2.0, 2 * 2048.0 / 22050);
    CU_ASSERT_STRING_EQUAL(a.codec, "vorbis");
    double got = th_db(th_rms(a.pcm, EM_AUDIO_RATE / 5, a.n - EM_AUDIO_RATE / 5));
    CU_ASSERT(fabs(got - th_db(TONE_AMP / sqrt(2.0))) <= TOL_RMS_LOSSY_DB);
    em_audio_free(&a);
}

static void float_overs_and_nan_are_clamped(void)
{
    float x[1600];
    th_sine(x, 1600, 1000, 2.0, 16000, 0); /* peaks at 2.0 full scale */
    x[100] = NAN;
    x[200] = INFINITY;
    x[300] = -INFINITY;
    CU_ASSERT_EQUAL_FATAL(th_write_wav_f32(path_of("overs.wav"), x, 1600, 16000), 0);
    struct em_audio a;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(em_audio_decode_file(path_of("overs.wav"), &a, &eb), EM_OK);
    CU_ASSERT_EQUAL(a.n, 1600);
    CU_ASSERT_STRING_EQUAL(a.codec, "pcm_f32le");
    float mx = 0;
    int bad = 0;
    for (size_t i = 0; i < a.n; i++) {
        bad += !isfinite(a.pcm[i]);
        if (fabsf(a.pcm[i]) > mx) mx = fabsf(a.pcm[i]);
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_DOUBLE_EQUAL(mx, 1.0, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(a.pcm[100], 0.0, 0);
    CU_ASSERT_DOUBLE_EQUAL(a.pcm[200], 1.0, 0);
    CU_ASSERT_DOUBLE_EQUAL(a.pcm[300], -1.0, 0);
    em_audio_free(&a);
}

static void mem_matches_file(void)
{
    size_t len;
    char *data = th_slurp(path_of("vorbis-22k-mono.ogg"), &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    struct em_audio a, b;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(em_audio_decode_mem((uint8_t *)data, len, NULL, &a, &eb), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_audio_decode_file(path_of("vorbis-22k-mono.ogg"), &b, &eb), EM_OK);
    CU_ASSERT_EQUAL(a.n, b.n);
    CU_ASSERT(a.n == b.n && memcmp(a.pcm, b.pcm, a.n * sizeof *a.pcm) == 0);
    em_audio_free(&a);
    em_audio_free(&b);
    em_audio_free(NULL);
    free(data);
}

struct thr {
    const char *file;
    struct em_audio a;
    em_err rc;
};

static void *decode_thread(void *p)
{
    struct thr *t = p;
    t->rc = em_audio_decode_file(path_of(t->file), &t->a, NULL);
    return NULL;
}

static void concurrent_decodes_agree(void)
{
    enum { N = 4 };
    struct thr t[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        t[i] = (struct thr){.file = i % 2 ? "aac-48k-stereo.m4a" : "lame-44k-stereo.mp3"};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, decode_thread, &t[i]), 0);
    }
    for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < N; i++) {
        CU_ASSERT_EQUAL(t[i].rc, EM_OK);
        if (i >= 2) {
            CU_ASSERT_EQUAL(t[i].a.n, t[i - 2].a.n);
            CU_ASSERT(t[i].a.n == t[i - 2].a.n &&
                      memcmp(t[i].a.pcm, t[i - 2].a.pcm, t[i].a.n * sizeof(float)) == 0);
        }
    }
    for (int i = 0; i < N; i++) em_audio_free(&t[i].a);
}

static CU_TestInfo tests[] = {
    {"decodes_every_format", decodes_every_format},
    {"resample_keeps_level_and_frequency", resample_keeps_level_and_frequency},
    {"downmix_is_channel_mean", downmix_is_channel_mean},
    {"bad_inputs_name_file_and_cause", bad_inputs_name_file_and_cause},
    {"limits_are_enforced", limits_are_enforced},
    {"truncated_mp3_is_refused", truncated_mp3_is_refused},
    {"tiny_clip_decodes", tiny_clip_decodes},
    {"corrupt_middle_is_skipped", corrupt_middle_is_skipped},
    {"format_change_midstream_is_resampled", format_change_midstream_is_resampled},
    {"float_overs_and_nan_are_clamped", float_overs_and_nan_are_clamped},
    {"mem_matches_file", mem_matches_file},
    {"cut_mp3_counts_decode_errors", cut_mp3_counts_decode_errors},
    {"concurrent_decodes_agree", concurrent_decodes_agree},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_audio = {"audio", init, clean, NULL, NULL, tests};
