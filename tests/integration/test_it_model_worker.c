/* tests/integration/test_it_model_worker.c - the model runtime inside the distributed
 * pipeline: deploy/make-demo-model.py writes the embedded default checkpoint (real
 * architecture and tokenizer, random weights); two `earmark worker --model DIR` processes
 * behind a real coordinator and Redis annotate a small corpus with the caption, transcript
 * and events prompts. Every record must carry the model's identity, one segment per
 * <= 30 s window with an answer to every prompt, the merged fields and token counts, and
 * must validate against schema/annotation.schema.json. A --kv-budget under one KV page is
 * refused at start with a usage error naming the page size. */
#include <CUnit/CUnit.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/helpers/clips.h"
#include "tests/helpers/cluster.h"
#include "tests/helpers/proc.h"
#include "tests/helpers/schema.h"

#define N_CLIPS 6

static struct th_cluster c;
static struct em_storage *st;
static char tmp[512];
static char model_env[700]; /* "EARMARK_MODEL=..." handed to the workers */

static int clean(void);

static int start(void)
{
    if (th_tmpdir(tmp, sizeof tmp) != 0) return 1;
    return th_cluster_start_demo(&c, 2, tmp, model_env, sizeof model_env, &st) != 0;
}

static int init(void) { return th_suite_init(start, clean); }

static int clean(void)
{
    th_cluster_stop_storage(&c, &st);
    th_rmrf(tmp);
    return 0;
}

/* Counts the problems of one model-annotated record (0: all good). */
static int check_model_record(const json_t *r, const char *uri)
{
    int bad = 0;
    if (strcmp(th_jstr(r, "status", NULL), "ok") != 0) {
        fprintf(stderr, "record for %s is not ok: %s\n", uri, th_jstr(r, "error", "message"));
        return 1;
    }
    bad += strstr(th_jstr(r, "producer", "model"), "demo-model@") == NULL;
    const json_t *segs = json_object_get(r, "segments");
    double dur = json_number_value(json_object_get(json_object_get(r, "audio"), "duration_s"));
    size_t want = (size_t)(dur / 30.0) + 1;
    bad += json_array_size(segs) != want;
    for (size_t i = 0; i < json_array_size(segs); i++) {
        const json_t *ans = json_object_get(json_array_get(segs, i), "answers");
        static const char *names[] = {"caption", "transcript", "events"};
        for (size_t k = 0; k < 3; k++) bad += !json_is_string(json_object_get(ans, names[k]));
    }
    const json_t *answers = json_object_get(r, "answers");
    bad += json_object_size(answers) != 3;
    bad += !json_is_string(json_object_get(r, "caption"));
    bad += !json_is_string(json_object_get(r, "transcript"));
    bad += !json_is_array(json_object_get(r, "events"));
    bad += json_integer_value(json_object_get(json_object_get(r, "tokens"), "generated")) <= 0;
    bad += json_integer_value(json_object_get(json_object_get(r, "tokens"), "audio")) <= 0;
    if (bad) fprintf(stderr, "record for %s: %d problems\n", uri, bad);
    return bad;
}

static void corpus_annotated_by_the_model(void)
{
    char corpus[700], manifest[760], out_dir[700], out[760];
    snprintf(corpus, sizeof corpus, "%s/corpus", c.dir);
    snprintf(manifest, sizeof manifest, "%s/manifest.txt", corpus);
    snprintf(out_dir, sizeof out_dir, "%s/out", c.dir);
    snprintf(out, sizeof out, "file://%s", out_dir);
    CU_ASSERT_EQUAL_FATAL(th_make_corpus(corpus, N_CLIPS, 0), 0);
    struct th_uris u;
    CU_ASSERT_EQUAL_FATAL(th_uris_load(manifest, &u), 0);
    CU_ASSERT_EQUAL_FATAL(th_sh("'%s' submit --redis '%s' --manifest '%s' --out '%s' "
                                "--prompts caption,transcript,events > '%s/batch.txt' "
                                "2>> '%s/submit.log'",
                                th_bin(), c.redis.url, manifest, out, c.dir, c.dir), 0);
    char bpath[700];
    snprintf(bpath, sizeof bpath, "%s/batch.txt", c.dir);
    char *b = th_slurp(bpath, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    snprintf(c.batch, sizeof c.batch, "%.*s", (int)strcspn(b, "\r\n"), b);
    free(b);
    CU_ASSERT_EQUAL_FATAL(th_cluster_wait(&c, st, out, TH_CLUSTER_WAIT_MS, NULL, NULL), 0);
    CU_ASSERT_EQUAL(th_manifest_check(st, out, c.batch, &u), 0);
    int bad = 0, invalid = 0;
    for (size_t i = 0; i < u.n; i++) {
        json_t *r = th_record_get(st, out, c.batch, u.v[i]);
        CU_ASSERT_PTR_NOT_NULL(r);
        if (!r) continue;
        bad += check_model_record(r, u.v[i]);
        char path[800];
        snprintf(path, sizeof path, "%s/rec-%zu.json", c.dir, i);
        if (json_dump_file(r, path, 0) == 0) invalid += th_schema_valid(path) != 0;
        else invalid++;
        json_decref(r);
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(invalid, 0);
    th_uris_free(&u);
    CU_ASSERT_EQUAL(th_cluster_sanitizer_reports(&c), 0);
}

static void worker_refuses_a_broken_model(void)
{
    /* a worker whose model cannot load exits with a one-line error naming the file */
    char log[700];
    snprintf(log, sizeof log, "%s/broken.log", tmp);
    int rc = th_sh("mkdir -p '%s/broken' && '%s' worker --connect '%s' --model '%s/broken' "
                   "> '%s' 2>&1",
                   tmp, th_bin(), c.coord_ep, tmp, log);
    CU_ASSERT_EQUAL(rc, 1);
    char *text = th_slurp(log, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "config.json"));
    free(text);
}

static void worker_refuses_a_kv_budget_under_one_page(void)
{
    char log[700];
    snprintf(log, sizeof log, "%s/budget.log", tmp);
    int rc = th_sh("'%s' worker --connect '%s' --model '%s/demo-model' --capacity 2 --kv-budget 1K "
                   "> '%s' 2>&1", th_bin(), c.coord_ep, tmp, log);
    CU_ASSERT_EQUAL(rc, 2);
    char *text = th_slurp(log, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "--kv-budget"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "under one page"));
    free(text);
}

static CU_TestInfo tests[] = {
    {"corpus_annotated_by_the_model", corpus_annotated_by_the_model},
    {"worker_refuses_a_broken_model", worker_refuses_a_broken_model},
    {"worker_refuses_a_kv_budget_under_one_page", worker_refuses_a_kv_budget_under_one_page},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_it_model_worker = {"it_model_worker", init, clean, NULL, NULL, tests};
