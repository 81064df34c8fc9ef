/* tests/unit/test_whisper_layouts.c - Whisper tiny.en (deploy/fetch-whisper.sh) in the
 * Hugging Face layout sharded as openai/whisper-large-v3 and Qwen2-Audio-7B publish it
 * (model.safetensors.index.json + model-0000N-of-0000M.safetensors; written by
 * tests/golden/whisper/ct2_to_hf.py then tests/golden/shard_safetensors.py): loads through
 * the safetensors loader (em_ckpt_open_tensors) and gives the golden greedy and beam-5 ids;
 * an index naming a file outside the directory, or a missing shard, is refused with the file
 * named. */
#include <CUnit/CUnit.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "model/audio/mel.h"
#include "model/model.h"
#include "model/whisper/whisper.h"
#include "tests/golden/golden.h"

static json_t *index_json;
static char tmp[1024], ct2_dir[1024], sharded[1200];

static int init(void)
{
    char cmd[5000];
    if (golden_whisper_dir(ct2_dir, sizeof ct2_dir) != 0) return 1;
    if (!(index_json = golden_whisper_index("index.json"))) return 1;
    if (golden_tmpdir(tmp, sizeof tmp) != 0) return 1;
    snprintf(sharded, sizeof sharded, "%s/hf-sharded", tmp);
    snprintf(cmd, sizeof cmd, "python3 '%s/tests/golden/whisper/ct2_to_hf.py' '%s' '%s' && "
             "python3 '%s/tests/golden/shard_safetensors.py' '%s' 3", golden_root(), ct2_dir,
             sharded, golden_root(), sharded);
    if (system(cmd) != 0) {
        fprintf(stderr, "whisper_layouts init: %s failed\n", cmd);
        return 1;
    }
    return 0;
}

static int clean(void)
{
    json_decref(index_json);
    golden_rmdir(tmp);
    return 0;
}

/* Greedy and beam-5 ids (timestamps) of clip name with w against the golden ids. */
static void golden_ids(const struct em_whisper *w, const char *name)
{
    float *pcm = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(golden_whisper_clip(name, tmp, &pcm, &n), 0);
    struct em_whisper_info info;
    em_whisper_info(w, &info);
    float *mel = malloc(sizeof(float) * (size_t)info.n_mels * EM_MEL_FRAMES);
    float *enc = malloc(sizeof(float) * EM_WHISPER_AUDIO_CTX * (size_t)info.d_model);
    CU_ASSERT_FATAL(mel && enc);
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(em_whisper_mel(w, pcm, n, mel), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_whisper_encode(w, mel, enc, &eb), EM_OK);
    json_t *ts = json_object_get(json_object_get(json_object_get(index_json, "clips"), name), "ts");
    for (int beam = 1; beam <= 5; beam += 4) {
        struct em_whisper_opts o = em_whisper_opts_default();
        o.beam_size = beam;
        struct em_whisper_gen g;
        CU_ASSERT_EQUAL_FATAL(em_whisper_generate(w, enc, &o, &g, &eb), EM_OK);
        json_t *want = json_object_get(ts, beam == 1 ? "ids" : "beam5_ids");
        int same = golden_ids_match(want, g.ids, g.n);
        if (!same) printf("\n    %s beam %d: ids differ from the golden ones", name, beam);
        CU_ASSERT(same);
        em_whisper_gen_clear(&g);
    }
    free(pcm);
    free(mel);
    free(enc);
}

static void sharded_hf_gives_the_golden_ids(void)
{
    struct em_whisper *w = NULL;
    struct em_errbuf eb = {{0}};
    em_err rc = em_whisper_load(sharded, &w, &eb);
    if (rc != EM_OK) printf("\n    %s", eb.msg);
    CU_ASSERT_EQUAL_FATAL(rc, EM_OK);
    struct em_whisper_info info;
    em_whisper_info(w, &info);
    CU_ASSERT_STRING_EQUAL(info.dtype, "f32");
    CU_ASSERT_EQUAL(info.enc_layers, 4);
    CU_ASSERT_EQUAL(info.dec_layers, 4);
    golden_ids(w, "us_normal");
    golden_ids(w, "long");
    em_whisper_free(w);
    /* through the facade: the family from config.json, the identity from the index */
    struct em_model *m = NULL;
    CU_ASSERT_EQUAL_FATAL(em_model_load(sharded, NULL, &m, &eb), EM_OK);
    CU_ASSERT_STRING_EQUAL(em_model_family(m), "whisper");
    CU_ASSERT_PTR_NOT_NULL(strstr(em_model_identity(m), "hf-sharded@"));
    em_model_free(m);
}

/* A copy of the sharded checkpoint in tmp/name with cmd (given the copy's path) applied;
 * loading it must fail with want and a detail containing needle. */
static void expect_refused(const char *name, const char *cmd, em_err want, const char *needle)
{
    char d[1300];
    snprintf(d, sizeof d, "%s/%s", tmp, name);
    CU_ASSERT_EQUAL_FATAL(golden_sh("cp -r '%s' '%s'", sharded, d), 0);
    CU_ASSERT_EQUAL_FATAL(golden_sh(cmd, d, ""), 0);
    struct em_whisper *w = NULL;
    struct em_errbuf eb = {{0}};
    em_err rc = em_whisper_load(d, &w, &eb);
    CU_ASSERT_EQUAL(rc, want);
    CU_ASSERT_PTR_NULL(w);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, needle));
    if (rc != want || !strstr(eb.msg, needle))
        printf("\n    %s: got %s '%s', wanted '%s'", name, em_err_name(rc), eb.msg, needle);
    golden_rmdir(d);
}

static void sharded_bad_index_is_refused(void)
{
    /* weight_map values naming files outside the directory */
    expect_refused("dotdot", "cd '%s' && sed -i 's#\"model-00002-of-00003#\"../model-00002-of-00003#' "
                   "model.safetensors.index.json%s", EM_E_MODEL, "maps to an invalid file name");
    expect_refused("abs", "cd '%s' && sed -i 's#\"model-00001-of-00003#\"/etc/model-00001-of-00003#' "
                   "model.safetensors.index.json%s", EM_E_MODEL, "maps to an invalid file name");
    /* a shard missing */
    expect_refused("missing", "rm '%s/model-00003-of-00003.safetensors'%s", EM_E_IO,
                   "model-00003-of-00003.safetensors");
    /* a tensor listed in the wrong shard (it is in the first) */
    expect_refused("wrong", "cd '%s' && sed -i 's#\"model.decoder.embed_tokens.weight\": "
                   "\"model-00001#\"model.decoder.embed_tokens.weight\": \"model-00003#' "
                   "model.safetensors.index.json%s", EM_E_MODEL,
                   "tensor 'model.decoder.embed_tokens.weight' listed by the index is missing");
    /* no weight_map */
    expect_refused("nomap", "echo '{\"metadata\": {}}' > '%s/model.safetensors.index.json'%s",
                   EM_E_MODEL, "no weight_map");
}

static CU_TestInfo tests[] = {
    {"sharded_hf_gives_the_golden_ids", sharded_hf_gives_the_golden_ids},
    {"sharded_bad_index_is_refused", sharded_bad_index_is_refused},
    CU_TEST_INFO_NULL,
};

const CU_SuiteInfo suite_whisper_layouts = {"whisper_layouts", init, clean, NULL, NULL, tests};
