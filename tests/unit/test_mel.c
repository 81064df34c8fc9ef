/* tests/unit/test_mel.c - model/mel (Whisper log-mel) against the transformers reference
 * features recorded by tests/golden/make_golden.py, and model/chunk (30-s windows). */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/audio/chunk.h"
#include "model/audio/mel.h"
#include "tests/golden/golden.h"

#define MEL_TOL 1e-4 /* max abs error of the log-mel features vs the reference */

static char tmp[1024];
static struct golden g;
static struct em_mel *mel;

static int init(void)
{
    if (golden_unpack("data", tmp, sizeof tmp) != 0) return 1;
    if (golden_open(&g, tmp) != 0) return 1;
    return em_mel_new(&mel) != EM_OK;
}

static int clean(void)
{
    em_mel_free(mel);
    golden_close(&g);
    golden_rmdir(tmp);
    return 0;
}

/* Compares em_mel_compute(pcm[off..off+n)) with the record mel/<key>. */
static void check_clip(const char *key, const float *pcm, size_t n)
{
    char k[256];
    float *out = malloc(sizeof(float) * EM_MEL_BINS * EM_MEL_FRAMES);
    int L = -1;
    CU_ASSERT_EQUAL_FATAL(em_mel_compute(mel, pcm, n, out, &L), EM_OK);
    snprintf(k, sizeof k, "mel/%s/mel_len", key);
    CU_ASSERT_EQUAL(L, (int)golden_num(&g, k));
    snprintf(k, sizeof k, "mel/%s/n_samples", key);
    CU_ASSERT_EQUAL((double)n, golden_num(&g, k));
    int64_t sh[4];
    int nd;
    snprintf(k, sizeof k, "mel/%s/mel_head", key);
    float *head = golden_tensor(&g, k, sh, &nd);
    CU_ASSERT_PTR_NOT_NULL_FATAL(head);
    CU_ASSERT_EQUAL(sh[0], EM_MEL_BINS);
    int F = (int)sh[1];
    float *got = malloc(sizeof(float) * EM_MEL_BINS * (F > 50 ? F : 50));
    for (int j = 0; j < EM_MEL_BINS; j++)
        memcpy(got + (size_t)j * F, out + (size_t)j * EM_MEL_FRAMES, sizeof(float) * F);
    CU_ASSERT(golden_cmp(k, got, head, (size_t)EM_MEL_BINS * F, 0, MEL_TOL) <= MEL_TOL);
    snprintf(k, sizeof k, "mel/%s/mel_tail", key);
    float *tail = golden_tensor(&g, k, sh, &nd);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tail);
    for (int j = 0; j < EM_MEL_BINS; j++)
        memcpy(got + (size_t)j * 50, out + (size_t)j * EM_MEL_FRAMES + 2950, sizeof(float) * 50);
    CU_ASSERT(golden_cmp(k, got, tail, (size_t)EM_MEL_BINS * 50, 0, MEL_TOL) <= MEL_TOL);
    /* every frame past the recorded head that sees only padding holds the pad value */
    snprintf(k, sizeof k, "mel/%s/mel_pad", key);
    double pad = golden_num(&g, k);
    double worst = 0;
    if (L + 2 < EM_MEL_FRAMES)
        for (int j = 0; j < EM_MEL_BINS; j++)
            for (int t = L + 2; t < EM_MEL_FRAMES; t++)
                worst = fmax(worst, fabs(out[(size_t)j * EM_MEL_FRAMES + t] - pad));
    printf("\n    mel/%s padded frames vs pad value %.6f: max abs err %.3g", key, pad, worst);
    CU_ASSERT(worst <= MEL_TOL);
    free(got);
    free(head);
    free(tail);
    free(out);
}

static void golden_short_clips(void)
{
    static const char *clips[] = {"speech", "tone", "blip"};
    for (size_t i = 0; i < 3; i++) {
        float *pcm = NULL;
        size_t n = 0;
        CU_ASSERT_FATAL(golden_clip(clips[i], tmp, &pcm, &n) == 0);
        check_clip(clips[i], pcm, n);
        free(pcm);
    }
}

static void golden_long_clip_by_chunk(void)
{
    float *pcm = NULL;
    size_t n = 0;
    CU_ASSERT_FATAL(golden_clip("long", tmp, &pcm, &n) == 0);
    struct em_chunk ch[4];
    size_t k = 0;
    CU_ASSERT_EQUAL_FATAL(em_chunk_split(n, ch, 4, &k), EM_OK);
    CU_ASSERT_EQUAL_FATAL(k, 2);
    for (size_t i = 0; i < k; i++) {
        char key[64];
        snprintf(key, sizeof key, "long/chunk%zu", i);
        check_clip(key, pcm + ch[i].offset, ch[i].n);
    }
    /* the whole clip: only its first 30 s count, like the reference processor */
    float *a = malloc(sizeof(float) * EM_MEL_BINS * EM_MEL_FRAMES);
    float *b = malloc(sizeof(float) * EM_MEL_BINS * EM_MEL_FRAMES);
    int la, lb;
    CU_ASSERT_EQUAL(em_mel_compute(mel, pcm, n, a, &la), EM_OK);
    CU_ASSERT_EQUAL(em_mel_compute(mel, pcm, EM_MEL_SAMPLES, b, &lb), EM_OK);
    CU_ASSERT_EQUAL(la, 3000);
    CU_ASSERT_EQUAL(memcmp(a, b, sizeof(float) * EM_MEL_BINS * EM_MEL_FRAMES), 0);
    free(a);
    free(b);
    free(pcm);
}

static void silence_is_minus_1_5(void)
{
    float *out = malloc(sizeof(float) * EM_MEL_BINS * EM_MEL_FRAMES);
    float z[1000] = {0};
    int L;
    CU_ASSERT_EQUAL(em_mel_compute(mel, z, 1000, out, &L), EM_OK);
    CU_ASSERT_EQUAL(L, 7);
    int bad = 0;
    for (size_t i = 0; i < (size_t)EM_MEL_BINS * EM_MEL_FRAMES; i++) bad += out[i] != -1.5f;
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(em_mel_compute(mel, NULL, 0, out, &L), EM_OK);
    CU_ASSERT_EQUAL(L, 0);
    CU_ASSERT_EQUAL(out[0], -1.5f);
    CU_ASSERT_EQUAL(em_mel_compute(mel, NULL, 5, out, &L), EM_E_ARG);
    free(out);
}

static void mel_len_matches_spec_table(void)
{
    CU_ASSERT_EQUAL(em_mel_len(0), 0);
    CU_ASSERT_EQUAL(em_mel_len(320), 2);
    CU_ASSERT_EQUAL(em_mel_len(321), 3);
    CU_ASSERT_EQUAL(em_mel_len(16000), 100);
    CU_ASSERT_EQUAL(em_mel_len(64321), 403);
    CU_ASSERT_EQUAL(em_mel_len(72000), 450);
    CU_ASSERT_EQUAL(em_mel_len(480000), 3000);
    CU_ASSERT_EQUAL(em_mel_len(10000000), 3000);
}

static void filters_are_slaney(void)
{
    const float *f = em_mel_filters(mel);
    /* bin 0 (0 Hz) is outside every filter's open support; each filter has some weight,
     * and bin 1 (40 Hz) lies on the falling slope of the first filter (e1 = 23.4 Hz,
     * e2 = 46.8 Hz): weight (e2 - 40)/(e2 - e1) * 2/(e2 - e0). */
    for (int j = 0; j < EM_MEL_BINS; j++) CU_ASSERT_EQUAL(f[j], 0.0f);
    int empty = 0;
    for (int j = 0; j < EM_MEL_BINS; j++) {
        double s = 0;
        for (int k = 0; k < 201; k++) s += f[k * EM_MEL_BINS + j];
        empty += s <= 0;
    }
    CU_ASSERT_EQUAL(empty, 0);
    double mmax = 15.0 + log(8.0) * 27.0 / log(6.4);
    CU_ASSERT_DOUBLE_EQUAL(mmax, 45.245640471924965, 1e-12);
    double e1 = 200.0 * (mmax / 129) / 3.0, e2 = 200.0 * (2 * mmax / 129) / 3.0;
    CU_ASSERT_DOUBLE_EQUAL(f[1 * EM_MEL_BINS + 0], (e2 - 40.0) / (e2 - e1) * 2.0 / e2, 1e-7);
}

static void chunks_cover_long_audio(void)
{
    struct em_chunk c[3];
    size_t k;
    CU_ASSERT_EQUAL(em_chunk_count(0), 0);
    CU_ASSERT_EQUAL(em_chunk_split(0, c, 3, &k), EM_OK);
    CU_ASSERT_EQUAL(k, 0);
    CU_ASSERT_EQUAL(em_chunk_split(480000, c, 3, &k), EM_OK);
    CU_ASSERT_EQUAL(k, 1);
    CU_ASSERT_EQUAL(c[0].n, 480000);
    CU_ASSERT_EQUAL(em_chunk_split(640000, c, 3, &k), EM_OK);
    CU_ASSERT_EQUAL(k, 2);
    CU_ASSERT_EQUAL(c[1].offset, 480000);
    CU_ASSERT_EQUAL(c[1].n, 160000);
    CU_ASSERT_DOUBLE_EQUAL(c[1].start_s, 30.0, 0);
    CU_ASSERT_DOUBLE_EQUAL(c[1].end_s, 40.0, 0);
    CU_ASSERT_EQUAL(em_chunk_split(960001, c, 2, &k), EM_E_TOO_LONG);
    CU_ASSERT_EQUAL(k, 3);
    CU_ASSERT_EQUAL(em_chunk_split(960001, c, 3, &k), EM_OK);
    CU_ASSERT_EQUAL(c[2].n, 1);
}

static CU_TestInfo tests[] = {
    {"golden_short_clips", golden_short_clips},
    {"golden_long_clip_by_chunk", golden_long_clip_by_chunk},
    {"silence_is_minus_1_5", silence_is_minus_1_5},
    {"mel_len_matches_spec_table", mel_len_matches_spec_table},
    {"filters_are_slaney", filters_are_slaney},
    {"chunks_cover_long_audio", chunks_cover_long_audio},
    CU_TEST_INFO_NULL,
};

const CU_SuiteInfo suite_mel = {"mel", init, clean, NULL, NULL, tests};
