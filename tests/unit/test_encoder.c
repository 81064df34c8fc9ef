/* tests/unit/test_encoder.c - model/encoder and model/projector against the transformers
 * reference (tests/golden/make_golden.py): for both tiny checkpoints (bf16 sharded, f32)
 * and every golden clip (the 40-s clip chunk by chunk), C log-mel -> encoder -> projector
 * is compared with the HF encoder output (after pool + final LN) and audio embeddings. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/audio/chunk.h"
#include "model/audio/encoder.h"
#include "model/audio/mel.h"
#include "model/qwen2audio/projector.h"
#include "tests/golden/golden.h"

#define ENC_TOL 1e-3 /* max abs error relative to the max magnitude of the reference */

static char tmp_data[1024], tmp_ck[2][1024];
static const char *ck_names[2] = {"tiny-bf16", "tiny-f32"};
static struct golden g;
static struct em_mel *mel;

static int init(void)
{
    if (golden_unpack("data", tmp_data, sizeof tmp_data) != 0 || golden_open(&g, tmp_data) != 0)
        return 1;
    for (int i = 0; i < 2; i++)
        if (golden_unpack(ck_names[i], tmp_ck[i], sizeof tmp_ck[i]) != 0) return 1;
    return em_mel_new(&mel) != EM_OK;
}

static int clean(void)
{
    em_mel_free(mel);
    golden_close(&g);
    golden_rmdir(tmp_data);
    for (int i = 0; i < 2; i++) golden_rmdir(tmp_ck[i]);
    return 0;
}

/* Runs pcm through mel, encoder and projector of checkpoint ci; compares with
 * <ck>/<key>/{encoder_out,audio_embeds}. */
static void check(int ci, struct em_encoder *enc, const struct em_projector *pj, const char *key,
                  const float *pcm, size_t n)
{
    char k[256];
    float *m = malloc(sizeof(float) * EM_MEL_BINS * EM_MEL_FRAMES);
    int L = 0, N = -1, d = em_encoder_dim(enc);
    CU_ASSERT_EQUAL_FATAL(em_mel_compute(mel, pcm, n, m, &L), EM_OK);
    snprintf(k, sizeof k, "%s/%s/audio_tokens", ck_names[ci], key);
    int want_n = (int)golden_num(&g, k);
    CU_ASSERT_EQUAL(em_encoder_tokens(L), want_n);
    float *out = malloc(sizeof(float) * 750 * (size_t)d);
    float *emb = malloc(sizeof(float) * 750 * (size_t)pj->out);
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(em_encoder_run(enc, m, L, out, &N, &eb), EM_OK);
    CU_ASSERT_EQUAL(N, want_n);
    CU_ASSERT_EQUAL_FATAL(em_projector_run(pj, out, N, emb), EM_OK);
    int64_t sh[4];
    int nd;
    snprintf(k, sizeof k, "%s/%s/encoder_out", ck_names[ci], key);
    float *want = golden_tensor(&g, k, sh, &nd);
    CU_ASSERT_PTR_NOT_NULL_FATAL(want);
    CU_ASSERT_EQUAL(sh[0], N);
    CU_ASSERT_EQUAL(sh[1], d);
    CU_ASSERT(golden_cmp(k, out, want, (size_t)N * d, 1, ENC_TOL) <= ENC_TOL);
    free(want);
    snprintf(k, sizeof k, "%s/%s/audio_embeds", ck_names[ci], key);
    want = golden_tensor(&g, k, sh, &nd);
    CU_ASSERT_PTR_NOT_NULL_FATAL(want);
    CU_ASSERT_EQUAL(sh[1], pj->out);
    CU_ASSERT(golden_cmp(k, emb, want, (size_t)N * pj->out, 1, ENC_TOL) <= ENC_TOL);
    free(want);
    free(out);
    free(emb);
    free(m);
}

static void golden_checkpoint(int ci)
{
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/%s", tmp_ck[ci], ck_names[ci]);
    struct em_ckpt *ck = NULL;
    struct em_encoder *enc = NULL;
    struct em_projector pj;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(em_ckpt_open(dir, &ck, &eb), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_encoder_new(ck, &enc, &eb), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_projector_init(ck, &pj, &eb), EM_OK);
    static const char *clips[] = {"speech", "tone", "blip"};
    for (size_t i = 0; i < 3; i++) {
        float *pcm = NULL;
        size_t n = 0;
        CU_ASSERT_FATAL(golden_clip(clips[i], tmp_data, &pcm, &n) == 0);
        check(ci, enc, &pj, clips[i], pcm, n);
        free(pcm);
    }
    float *pcm = NULL;
    size_t n = 0;
    CU_ASSERT_FATAL(golden_clip("long", tmp_data, &pcm, &n) == 0);
    struct em_chunk ch[4];
    size_t nc = 0;
    CU_ASSERT_EQUAL_FATAL(em_chunk_split(n, ch, 4, &nc), EM_OK);
    for (size_t i = 0; i < nc; i++) {
        char key[64];
        snprintf(key, sizeof key, "long/chunk%zu", i);
        check(ci, enc, &pj, key, pcm + ch[i].offset, ch[i].n);
    }
    free(pcm);
    em_encoder_free(enc);
    em_ckpt_close(ck);
}

static void golden_tiny_bf16(void) { golden_checkpoint(0); }
static void golden_tiny_f32(void) { golden_checkpoint(1); }

static void token_counts_match_spec(void)
{
    /* spec §3.6 table: L -> N */
    CU_ASSERT_EQUAL(em_encoder_tokens(2), 0);
    CU_ASSERT_EQUAL(em_encoder_tokens(3), 1);
    CU_ASSERT_EQUAL(em_encoder_tokens(100), 25);
    CU_ASSERT_EQUAL(em_encoder_tokens(403), 101);
    CU_ASSERT_EQUAL(em_encoder_tokens(450), 112);
    CU_ASSERT_EQUAL(em_encoder_tokens(1000), 250);
    CU_ASSERT_EQUAL(em_encoder_tokens(3000), 750);
}

static void rejects_too_short_and_bad_length(void)
{
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/%s", tmp_ck[1], ck_names[1]);
    struct em_ckpt *ck = NULL;
    struct em_encoder *enc = NULL;
    CU_ASSERT_EQUAL_FATAL(em_ckpt_open(dir, &ck, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_encoder_new(ck, &enc, NULL), EM_OK);
    float *m = calloc((size_t)EM_MEL_BINS * EM_MEL_FRAMES, sizeof *m);
    float out[36 * 2];
    int N = 9;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL(em_encoder_run(enc, m, 2, out, &N, &eb), EM_E_TOO_SHORT);
    CU_ASSERT_EQUAL(N, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "no audio token"));
    CU_ASSERT_EQUAL(em_encoder_run(enc, m, 0, out, &N, &eb), EM_E_ARG);
    CU_ASSERT_EQUAL(em_encoder_run(enc, m, 3001, out, &N, &eb), EM_E_ARG);
    CU_ASSERT_EQUAL(em_encoder_run(enc, m, 3, out, &N, &eb), EM_OK);
    CU_ASSERT_EQUAL(N, 1);
    free(m);
    em_encoder_free(enc);
    em_ckpt_close(ck);
}

/* The f32 element-wise passes (softmax, LayerNorm, GELU in float, SIMD exp / erfc) must keep
 * the f32 checkpoint far inside ENC_TOL: a full 30-s chunk (1500 positions, row lengths not a
 * multiple of the vector width) within ENC_TIGHT_TOL of the reference encoder output. */
#define ENC_TIGHT_TOL 1e-4

static void f32_full_chunk_within_tight_tol(void)
{
    char dir[1100], k[256];
    snprintf(dir, sizeof dir, "%s/%s", tmp_ck[1], ck_names[1]);
    struct em_ckpt *ck = NULL;
    struct em_encoder *enc = NULL;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(em_ckpt_open(dir, &ck, &eb), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_encoder_new(ck, &enc, &eb), EM_OK);
    float *pcm = NULL;
    size_t n = 0;
    CU_ASSERT_FATAL(golden_clip("long", tmp_data, &pcm, &n) == 0);
    struct em_chunk ch[4];
    size_t nc = 0;
    CU_ASSERT_EQUAL_FATAL(em_chunk_split(n, ch, 4, &nc), EM_OK);
    CU_ASSERT_FATAL(nc >= 1);
    float *m = malloc(sizeof(float) * EM_MEL_BINS * EM_MEL_FRAMES);
    int L = 0, N = -1, d = em_encoder_dim(enc);
    CU_ASSERT_EQUAL_FATAL(em_mel_compute(mel, pcm + ch[0].offset, ch[0].n, m, &L), EM_OK);
    CU_ASSERT_EQUAL(L, EM_MEL_FRAMES);
    float *out = malloc(sizeof(float) * 750 * (size_t)d);
    CU_ASSERT_EQUAL_FATAL(em_encoder_run(enc, m, L, out, &N, &eb), EM_OK);
    CU_ASSERT_EQUAL(N, 750);
    int64_t sh[4];
    int nd;
    snprintf(k, sizeof k, "%s/long/chunk0/encoder_out", ck_names[1]);
    float *want = golden_tensor(&g, k, sh, &nd);
    CU_ASSERT_PTR_NOT_NULL_FATAL(want);
    CU_ASSERT_EQUAL(sh[0], N);
    CU_ASSERT(golden_cmp(k, out, want, (size_t)N * d, 1, ENC_TIGHT_TOL) <= ENC_TIGHT_TOL);
    free(want);
    free(out);
    free(m);
    free(pcm);
    em_encoder_free(enc);
    em_ckpt_close(ck);
}

static CU_TestInfo tests[] = {
    {"golden_tiny_bf16", golden_tiny_bf16},
    {"golden_tiny_f32", golden_tiny_f32},
    {"token_counts_match_spec", token_counts_match_spec},
    {"rejects_too_short_and_bad_length", rejects_too_short_and_bad_length},
    {"f32_full_chunk_within_tight_tol", f32_full_chunk_within_tight_tol},
    CU_TEST_INFO_NULL,
};

const CU_SuiteInfo suite_encoder = {"encoder", init, clean, NULL, NULL, tests};
