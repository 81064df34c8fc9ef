/* tests/unit/test_facts.c - worker/facts.c against closed forms: a sine of amplitude A has
 * RMS A/sqrt(2) and peak A; half silence + half tone has silence ratio 0.5; digital
 * silence reads the floor. On signals made in C and on sox clips through the decoder. */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/audio/audio.h"
#include "tests/helpers/clips.h"
#include "tests/helpers/proc.h"
#include "worker/facts.h"

#define R EM_AUDIO_RATE
#define FRAME (R / 50) /* 20 ms */
/* Synthesised in double then stored as float: errors ~1e-7 relative, far below this */
#define TOL_DB_SYNTH 1e-4
/* Through a 16-bit file and the resampler: quantisation and passband ripple */
#define TOL_DB_DECODED 0.05

static char dir[512];

static int init(void) { return th_tmpdir(dir, sizeof dir) != 0; }
static int clean(void)
{
    th_rmrf(dir);
    return 0;
}

static void sine_has_closed_form_rms_and_peak(void)
{
    static const double amps[] = {1.0, 0.5, 0.1, 0.001};
    float *x = malloc(R * sizeof *x);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    for (size_t k = 0; k < sizeof amps / sizeof *amps; k++) {
        double a = amps[k];
        /* 1 kHz at 16 kHz: whole periods in 1 s, and phase pi/2 lands on sample 4 */
        th_sine(x, R, 1000, a, R, 0);
        struct em_facts f;
        em_facts_compute(x, R, R, &f);
        CU_ASSERT_DOUBLE_EQUAL(f.duration_s, 1.0, 1e-12);
        CU_ASSERT_DOUBLE_EQUAL(f.rms_dbfs, th_db(a / sqrt(2.0)), TOL_DB_SYNTH);
        CU_ASSERT_DOUBLE_EQUAL(f.peak_dbfs, th_db(a), TOL_DB_SYNTH);
        /* -60 dBFS tone (a = 0.001) is below the -50 dB threshold: all silent */
        CU_ASSERT_DOUBLE_EQUAL(f.silence_ratio, th_db(a / sqrt(2.0)) < EM_FACTS_SILENCE_DBFS ? 1.0 : 0.0, 0);
    }
    free(x);
}

static void digital_silence_reads_floor(void)
{
    float *x = calloc(R / 2, sizeof *x);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    struct em_facts f;
    em_facts_compute(x, R / 2, R, &f);
    CU_ASSERT_DOUBLE_EQUAL(f.duration_s, 0.5, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(f.rms_dbfs, EM_FACTS_FLOOR_DBFS, 0);
    CU_ASSERT_DOUBLE_EQUAL(f.peak_dbfs, EM_FACTS_FLOOR_DBFS, 0);
    CU_ASSERT_DOUBLE_EQUAL(f.silence_ratio, 1.0, 0);
    /* a value below the floor is floored too: 1e-7 is -140 dBFS */
    x[0] = 1e-7f;
    em_facts_compute(x, R / 2, R, &f);
    CU_ASSERT_DOUBLE_EQUAL(f.peak_dbfs, EM_FACTS_FLOOR_DBFS, 0);
    free(x);

    em_facts_compute(NULL, 0, R, &f);
    CU_ASSERT_DOUBLE_EQUAL(f.duration_s, 0, 0);
    CU_ASSERT_DOUBLE_EQUAL(f.rms_dbfs, EM_FACTS_FLOOR_DBFS, 0);
    CU_ASSERT_DOUBLE_EQUAL(f.silence_ratio, 1.0, 0);
}

static void half_silence_half_tone(void)
{
    float *x = calloc(2 * R, sizeof *x);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    th_sine(x + R, R, 440, 0.5, R, 0);
    struct em_facts f;
    em_facts_compute(x, 2 * R, R, &f);
    CU_ASSERT_DOUBLE_EQUAL(f.silence_ratio, 0.5, 0);
    /* energy of half the clip: -3.01 dB below the tone's own RMS */
    CU_ASSERT_DOUBLE_EQUAL(f.rms_dbfs, th_db(0.5 / sqrt(2.0) / sqrt(2.0)), 1e-3);
    CU_ASSERT_DOUBLE_EQUAL(f.peak_dbfs, th_db(0.5), 1e-3);
    /* one quarter silent: 25 of 100 frames */
    memset(x + R, 0, (R / 2) * sizeof *x);
    th_sine(x, R, 440, 0.5, R, 0);
    em_facts_compute(x, 2 * R, R, &f);
    CU_ASSERT_DOUBLE_EQUAL(f.silence_ratio, 0.25, 1e-12);
    free(x);
}

static void threshold_is_minus_50_dbfs(void)
{
    float x[FRAME * 10];
    struct em_facts f;
    /* RMS = A/sqrt(2): -49 dBFS is loud enough, -51 dBFS is silence */
    th_sine(x, FRAME * 10, 1000, sqrt(2.0) * pow(10, -49.0 / 20), R, 0);
    em_facts_compute(x, FRAME * 10, R, &f);
    CU_ASSERT_DOUBLE_EQUAL(f.silence_ratio, 0.0, 0);
    th_sine(x, FRAME * 10, 1000, sqrt(2.0) * pow(10, -51.0 / 20), R, 0);
    em_facts_compute(x, FRAME * 10, R, &f);
    CU_ASSERT_DOUBLE_EQUAL(f.silence_ratio, 1.0, 0);
}

static void partial_frame_rule(void)
{
    /* 10 loud frames + a silent tail: the tail counts as a frame when >= 10 ms */
    enum { N = FRAME * 10 + FRAME };
    float x[N];
    struct em_facts f;
    memset(x, 0, sizeof x);
    th_sine(x, FRAME * 10, 1000, 0.5, R, 0);
    em_facts_compute(x, FRAME * 10 + FRAME / 2, R, &f); /* tail exactly 10 ms: counted */
    CU_ASSERT_DOUBLE_EQUAL(f.silence_ratio, 1.0 / 11, 1e-12);
    em_facts_compute(x, FRAME * 10 + FRAME / 2 - 1, R, &f); /* just under: dropped */
    CU_ASSERT_DOUBLE_EQUAL(f.silence_ratio, 0.0, 0);
    /* but the dropped tail still counts for duration and RMS */
    CU_ASSERT_DOUBLE_EQUAL(f.duration_s, (FRAME * 10 + FRAME / 2 - 1) / (double)R, 1e-12);
    /* a clip shorter than 10 ms is one frame */
    float tiny[FRAME / 4];
    memset(tiny, 0, sizeof tiny);
    em_facts_compute(tiny, FRAME / 4, R, &f);
    CU_ASSERT_DOUBLE_EQUAL(f.silence_ratio, 1.0, 0);
    th_sine(tiny, FRAME / 4, 1000, 0.5, R, 0);
    em_facts_compute(tiny, FRAME / 4, R, &f);
    CU_ASSERT_DOUBLE_EQUAL(f.silence_ratio, 0.0, 0);
}

static void other_rates_use_their_frame(void)
{
    /* at 8 kHz a frame is 160 samples: 1 s = 50 frames, silence the first 10 */
    float x[8000];
    th_sine(x, 8000, 440, 0.5, 8000, 0);
    memset(x, 0, 1600 * sizeof *x);
    struct em_facts f;
    em_facts_compute(x, 8000, 8000, &f);
    CU_ASSERT_DOUBLE_EQUAL(f.duration_s, 1.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(f.silence_ratio, 10.0 / 50, 1e-12);
}

static void non_finite_samples_count_as_zero(void)
{
    float x[FRAME * 2];
    th_sine(x, FRAME * 2, 1000, 0.5, R, 0);
    struct em_facts f0, f;
    em_facts_compute(x, FRAME * 2, R, &f0);
    x[1] = NAN; /* sample 1 of 1 kHz @ 16 kHz: 0.5*sin(pi/8) replaced by 0 */
    x[2] = INFINITY;
    em_facts_compute(x, FRAME * 2, R, &f);
    CU_ASSERT(isfinite(f.rms_dbfs) && isfinite(f.peak_dbfs));
    CU_ASSERT(f.rms_dbfs < f0.rms_dbfs);
    CU_ASSERT_DOUBLE_EQUAL(f.peak_dbfs, f0.peak_dbfs, 1e-9);
}

/* sox tone -> file -> decoder -> facts: what the worker sees */
static void decoded_sox_tone_matches_closed_form(void)
{
    char p[600];
    snprintf(p, sizeof p, "%s/tone.wav", dir);
    CU_ASSERT_EQUAL_FATAL(th_make_tone(p, 440, 0.25, 2.0, 44100, 2), 0);
    struct em_audio a;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(em_audio_decode_file(p, &a, &eb), EM_OK);
    struct em_facts f;
    em_facts_compute(a.pcm, a.n, EM_AUDIO_RATE, &f);
    fprintf(stderr, "\n  sox tone A=0.25: rms %.4f (want %.4f) peak %.4f (want %.4f) dBFS", f.rms_dbfs,
            th_db(0.25 / sqrt(2.0)), f.peak_dbfs, th_db(0.25));
    CU_ASSERT_DOUBLE_EQUAL(f.duration_s, 2.0, 2.0 / EM_AUDIO_RATE);
    CU_ASSERT_DOUBLE_EQUAL(f.rms_dbfs, th_db(0.25 / sqrt(2.0)), TOL_DB_DECODED);
    CU_ASSERT_DOUBLE_EQUAL(f.peak_dbfs, th_db(0.25), TOL_DB_DECODED);
    CU_ASSERT_DOUBLE_EQUAL(f.silence_ratio, 0.0, 0);
    em_audio_free(&a);

    /* 1 s of digital silence then 1 s of tone (sox pad): ratio 0.5, give or take the
     * frame where the resampler's filter rings into the silence */
    snprintf(p, sizeof p, "%s/half.flac", dir);
    CU_ASSERT_EQUAL_FATAL(th_sh("sox -q -R -D -n -r 22050 -c 1 -b 16 '%s' synth 1 sine 440 vol 0.5 pad 1@0", p), 0);
    CU_ASSERT_EQUAL_FATAL(em_audio_decode_file(p, &a, &eb), EM_OK);
    em_facts_compute(a.pcm, a.n, EM_AUDIO_RATE, &f);
    CU_ASSERT_DOUBLE_EQUAL(f.duration_s, 2.0, 2.0 / EM_AUDIO_RATE);
    CU_ASSERT_DOUBLE_EQUAL(f.silence_ratio, 0.5, 1.0 / 100);
    CU_ASSERT_DOUBLE_EQUAL(f.rms_dbfs, th_db(0.5 / 2), TOL_DB_DECODED);
    em_audio_free(&a);

    /* digital silence survives decoding as the floor */
    snprintf(p, sizeof p, "%s/silence.wav", dir);
    CU_ASSERT_EQUAL_FATAL(th_sh("sox -q -R -D -n -r 48000 -c 2 -b 16 '%s' trim 0 0.5", p), 0);
    CU_ASSERT_EQUAL_FATAL(em_audio_decode_file(p, &a, &eb), EM_OK);
    em_facts_compute(a.pcm, a.n, EM_AUDIO_RATE, &f);
    CU_ASSERT_DOUBLE_EQUAL(f.rms_dbfs, EM_FACTS_FLOOR_DBFS, 0);
    CU_ASSERT_DOUBLE_EQUAL(f.peak_dbfs, EM_FACTS_FLOOR_DBFS, 0);
    CU_ASSERT_DOUBLE_EQUAL(f.silence_ratio, 1.0, 0);
    em_audio_free(&a);
}

static CU_TestInfo tests[] = {
    {"sine_has_closed_form_rms_and_peak", sine_has_closed_form_rms_and_peak},
    {"digital_silence_reads_floor", digital_silence_reads_floor},
    {"half_silence_half_tone", half_silence_half_tone},
    {"threshold_is_minus_50_dbfs", threshold_is_minus_50_dbfs},
    {"partial_frame_rule", partial_frame_rule},
    {"other_rates_use_their_frame", other_rates_use_their_frame},
    {"non_finite_samples_count_as_zero", non_finite_samples_count_as_zero},
    {"decoded_sox_tone_matches_closed_form", decoded_sox_tone_matches_closed_form},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_facts = {"facts", init, clean, NULL, NULL, tests};
