/* tests/unit/test_model_gguf.c - the model facade on a GGUF written by `earmark convert`:
 * em_model_load takes the .gguf path (config, tokenizer and chat template come from its
 * metadata), and annotating the golden speech clip gives the same greedy tokens and text as
 * the Hugging Face directory it was converted from (f32: the same weights bit for bit).
 * The identity names the GGUF's type and differs from the directory's. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/tools/convert.h"
#include "model/model.h"
#include "model/kernels/quant.h"
#include "tests/golden/golden.h"
#include "tests/helpers/proc.h"

static char tmp[1100], dir[1200], gguf[1200];
static struct em_audio speech;

static int init(void)
{
    if (golden_unpack("tiny-bf16", tmp, sizeof tmp) != 0) return 1;
    snprintf(dir, sizeof dir, "%s/tiny-bf16", tmp);
    snprintf(gguf, sizeof gguf, "%s/tiny.gguf", tmp);
    struct em_convert_opts o = em_convert_opts_default();
    o.wtype = EM_WT_F32;
    struct em_errbuf eb = {{0}};
    if (em_convert(dir, gguf, &o, &eb) != EM_OK) {
        fprintf(stderr, "convert: %s\n", eb.msg);
        return 1;
    }
    memset(&speech, 0, sizeof speech);
    if (golden_clip("speech", tmp, &speech.pcm, &speech.n) != 0) return 1;
    speech.duration_s = (double)speech.n / EM_AUDIO_RATE;
    return 0;
}

static int clean(void)
{
    free(speech.pcm);
    golden_rmdir(tmp);
    return 0;
}

static struct em_model_result *annotate(const char *path, struct em_model **m)
{
    static const struct em_model_prompt ps[2] = {{NULL, "caption", NULL}, {NULL, "events", NULL}};
    struct em_gen_params_override o = {.max_new_tokens = 12, .greedy = true};
    struct em_errbuf eb = {{0}};
    struct em_model_result *r = NULL;
    if (em_model_load(path, NULL, m, &eb) != EM_OK) {
        fprintf(stderr, "load %s: %s\n", path, eb.msg);
        return NULL;
    }
    if (em_model_annotate(*m, &speech, ps, 2, &o, &r, &eb) != EM_OK) {
        fprintf(stderr, "annotate %s: %s\n", path, eb.msg);
        return NULL;
    }
    return r;
}

static void gguf_answers_like_its_source(void)
{
    struct em_model *md = NULL, *mg = NULL;
    struct em_model_result *rd = annotate(dir, &md), *rg = annotate(gguf, &mg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rd);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rg);
    /* the chat template travelled inside the GGUF */
    CU_ASSERT_EQUAL(em_model_form(mg), em_model_form(md));
    CU_ASSERT_EQUAL(em_model_form(mg), EM_MODEL_FORM_CHAT);
    CU_ASSERT_EQUAL_FATAL(rg->n_segments, rd->n_segments);
    for (size_t s = 0; s < rd->n_segments; s++)
        for (size_t p = 0; p < 2; p++) {
            const struct em_model_answer *a = &rd->segments[s].answers[p];
            const struct em_model_answer *b = &rg->segments[s].answers[p];
            CU_ASSERT_EQUAL(a->n_ids, b->n_ids);
            CU_ASSERT_TRUE(a->n_ids == b->n_ids && memcmp(a->ids, b->ids, a->n_ids * sizeof *a->ids) == 0);
            CU_ASSERT_STRING_EQUAL(a->text, b->text);
        }
    CU_ASSERT_STRING_EQUAL(em_model_dtype(mg), "f32");
    CU_ASSERT_STRING_NOT_EQUAL(em_model_checksum(mg), em_model_checksum(md));
    CU_ASSERT_PTR_NOT_NULL(strstr(em_model_identity(mg), "tiny.gguf@"));
    em_model_result_free(rd);
    em_model_result_free(rg);
    em_model_free(md);
    em_model_free(mg);
}

static void truncated_gguf_is_refused(void)
{
    char cut[1300];
    snprintf(cut, sizeof cut, "%s/cut.gguf", tmp);
    CU_ASSERT_EQUAL_FATAL(th_sh("head -c 100000 '%s' > '%s'", gguf, cut), 0);
    struct em_model *m = NULL;
    struct em_errbuf eb = {{0}};
    em_err rc = em_model_load(cut, NULL, &m, &eb);
    CU_ASSERT_EQUAL(rc, EM_E_MODEL);
    CU_ASSERT_PTR_NULL(m);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "cut.gguf"));
}

static CU_TestInfo tests[] = {
    {"gguf_answers_like_its_source", gguf_answers_like_its_source},
    {"truncated_gguf_is_refused", truncated_gguf_is_refused},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_model_gguf = {"model_gguf", init, clean, NULL, NULL, tests};
