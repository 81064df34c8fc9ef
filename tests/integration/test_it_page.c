/* tests/integration/test_it_page.c - the coordinator's live status pages (coordinator/page.c)
 * rendered by headless Chromium (tests/results/page-dom.py) while a batch runs: workers slow
 * each task with the test-only EARMARK_FAULT_DELAY_MS, so the first look finds the batch
 * open and unfinished, listed with its total, both workers with their backend and model, and
 * a page that reloads itself, with no console message; after the batch completes,
 * /batches/<id> shows every item settled and the corpus's bad inputs as recent failures. */
#include <CUnit/CUnit.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/helpers/clips.h"
#include "tests/helpers/cluster.h"
#include "tests/helpers/proc.h"

#define N_CLIPS 12
#define N_BAD 5 /* deploy/make-corpus.sh --bad: 4 undecodable files and one tiny clip */

static struct th_cluster c;
static struct em_storage *st;
static int clean(void);

static int start(void)
{
    struct th_cluster_opts o = {.workers = 2, .threads = 1,
                                .worker_env = {"EARMARK_FAULT_DELAY_MS=1000", NULL}};
    return th_cluster_start_storage(&c, &o, NULL, &st) != 0;
}

static int init(void) { return th_suite_init(start, clean); }
static int clean(void)
{
    th_cluster_stop_storage(&c, &st);
    return 0;
}

/* The page at path as page-dom.py sees it (NULL on failure). */
static json_t *look(const char *path)
{
    char out[700];
    snprintf(out, sizeof out, "%s/page.json", c.dir);
    if (th_sh("python3 '%s/tests/results/page-dom.py' 'http://127.0.0.1:%d%s' > '%s'", th_root(),
              c.metrics_port, path, out) != 0)
        return NULL;
    json_t *j = json_load_file(out, 0, NULL);
    if (!j) return NULL;
    json_t *con = json_object_get(j, "console");
    size_t i;
    json_t *v;
    json_array_foreach(con, i, v) printf("\n    console: %s", json_string_value(v));
    return j;
}

static json_t *row_of(json_t *page, const char *batch)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(page, "batches"), i, v)
        if (strcmp(json_string_value(json_object_get(v, "batch")), batch) == 0) return v;
    return NULL;
}

static void page_during_and_after_a_batch(void)
{
    char corpus[700], manifest[760], out[760];
    snprintf(corpus, sizeof corpus, "%s/corpus", c.dir);
    snprintf(manifest, sizeof manifest, "%s/manifest.txt", corpus);
    snprintf(out, sizeof out, "file://%s/out", c.dir);
    CU_ASSERT_EQUAL_FATAL(th_make_corpus(corpus, N_CLIPS, 1), 0);
    CU_ASSERT_EQUAL_FATAL(th_cluster_submit(&c, manifest, out, 1), 0);
    json_t *p = look("/");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(json_array_size(json_object_get(p, "console")), 0);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(p, "refresh")), 2);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(p, "scripts")), 0);
    json_t *b = row_of(p, c.batch);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    long long total = json_integer_value(json_object_get(b, "total"));
    long long settled = json_integer_value(json_object_get(b, "done")) +
                        json_integer_value(json_object_get(b, "failed"));
    printf("\n    while running: %lld of %lld settled, state %s", settled, total,
           json_string_value(json_object_get(b, "state")));
    CU_ASSERT_EQUAL(total, N_CLIPS + N_BAD);
    CU_ASSERT_TRUE(settled < total); /* the batch was still running when the page was read */
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(b, "state")), "open");
    json_t *ws = json_object_get(p, "workers");
    CU_ASSERT_EQUAL(json_array_size(ws), 2);
    size_t i;
    json_t *w;
    json_array_foreach(ws, i, w) {
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(w, "backend")), "cpu");
        CU_ASSERT_TRUE(strlen(json_string_value(json_object_get(w, "model"))) > 0);
    }
    json_decref(p);
    CU_ASSERT_EQUAL_FATAL(th_cluster_wait(&c, st, out, TH_CLUSTER_WAIT_MS, NULL, NULL), 0);
    char path[128];
    snprintf(path, sizeof path, "/batches/%s", c.batch);
    p = look(path);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(json_array_size(json_object_get(p, "console")), 0);
    b = row_of(p, c.batch);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(b, "done")) +
                        json_integer_value(json_object_get(b, "failed")), N_CLIPS + N_BAD);
    CU_ASSERT_TRUE(json_integer_value(json_object_get(b, "failed")) >= 4);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(b, "state")), "complete");
    json_t *f = json_object_get(p, "failures");
    size_t audio = 0;
    json_array_foreach(f, i, w) audio += strcmp(json_string_value(w), "EM_E_AUDIO") == 0;
    CU_ASSERT_TRUE(audio >= 4);
    json_decref(p);
    /* the workers' done counts add up to the items they settled */
    p = look("/");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    long long done = 0;
    json_array_foreach(json_object_get(p, "workers"), i, w) done += json_integer_value(json_object_get(w, "done"));
    CU_ASSERT_TRUE(done >= N_CLIPS - 1 && done <= N_CLIPS + N_BAD);
    CU_ASSERT_PTR_NULL(row_of(p, c.batch)); /* complete: no longer among the active ones */
    json_decref(p);
    /* a malformed and an unknown batch id: 404 (python's urllib: no curl CLI needed) */
    CU_ASSERT_EQUAL(th_sh("python3 -c 'import sys, urllib.request, urllib.error\n"
                          "for p in (\"/batches/no%%20such\", \"/batches/nosuchbatch\"):\n"
                          "    try: urllib.request.urlopen(\"http://127.0.0.1:%d\" + p); sys.exit(1)\n"
                          "    except urllib.error.HTTPError as e:\n"
                          "        if e.code != 404: sys.exit(1)'",
                          c.metrics_port), 0);
}

static CU_TestInfo tests[] = {
    {"page_during_and_after_a_batch", page_during_and_after_a_batch},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_it_page = {"it_page", init, clean, NULL, NULL, tests};
