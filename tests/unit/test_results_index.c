/* tests/unit/test_results_index.c - results/index: records into SQLite FTS5; re-adding is a
 * no-op unless the producer hash or created_at changed (then the old text is gone); search
 * best first with segment bounds, the event filter, query quoting, and a file that is not an
 * index. */
#include <CUnit/CUnit.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "results/index.h"
#include "tests/helpers/proc.h"

static char dir[512];

static int init(void) { return th_tmpdir(dir, sizeof dir) != 0; }
static int clean(void)
{
    th_rmrf(dir);
    return 0;
}

static json_t *rec(const char *id, const char *hash, const char *tr, const char *cap,
                   const char *events, const char *segs)
{
    json_t *r = json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:s}, s:s, s:s, s:{s:s}}", "id", id,
                          "batch_id", "b", "source", id, "status", "ok", "created_at",
                          "2026-01-01T00:00:00Z", "producer", "hash", hash, "transcript", tr,
                          "caption", cap, "answers", "where", "in a busy kitchen");
    json_object_set_new(r, "events", json_loads(events, 0, NULL));
    json_object_set_new(r, "segments", json_loads(segs, 0, NULL));
    return r;
}

static size_t nres(json_t *res) { return json_array_size(res); }
static const char *rid(json_t *res, size_t i)
{
    return json_string_value(json_object_get(json_array_get(res, i), "id"));
}

static json_t *search(struct em_index *ix, const char *q, const char *ev)
{
    json_t *res = NULL;
    struct em_errbuf eb = {{0}};
    em_err rc = em_index_search(ix, q, ev, 10, &res, &eb);
    if (rc != EM_OK) printf("\n    %s", eb.msg);
    CU_ASSERT_EQUAL(rc, EM_OK);
    return res;
}

static void index_and_search(void)
{
    char db[600];
    snprintf(db, sizeof db, "%s/c.sqlite", dir);
    struct em_index *ix = NULL;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(em_index_open(db, &ix, &eb), EM_OK);
    json_t *a = rec("a", "h1", "a dog barking loudly at night", "dog and traffic",
                    "[\"Dogs\", \"speech\"]",
                    "[{\"start_s\":0,\"end_s\":30,\"answers\":{\"transcript\":\"quiet street\"}},"
                    "{\"start_s\":30,\"end_s\":42.5,\"answers\":{\"transcript\":\"then a dog barking\"}}]");
    json_t *b = rec("b", "h1", "rain on the roof", "a dog sleeps while rain falls", "[\"rain\"]", "[]");
    enum em_index_change w;
    CU_ASSERT_EQUAL(em_index_add(ix, a, "file:///a.json", &w, &eb), EM_OK);
    CU_ASSERT_EQUAL(w, EM_INDEX_ADDED);
    CU_ASSERT_EQUAL(em_index_add(ix, b, "file:///b.json", &w, &eb), EM_OK);
    CU_ASSERT_EQUAL(em_index_add(ix, a, "file:///a.json", &w, &eb), EM_OK);
    CU_ASSERT_EQUAL(w, EM_INDEX_UNCHANGED);
    json_t *res = search(ix, "dog barking", NULL);
    CU_ASSERT_EQUAL_FATAL(nres(res), 1); /* b has "dog" but not "barking" */
    CU_ASSERT_STRING_EQUAL(rid(res, 0), "a");
    json_t *segs = json_object_get(json_array_get(res, 0), "segments");
    CU_ASSERT_EQUAL_FATAL(json_array_size(segs), 1);
    json_t *s0 = json_array_get(segs, 0);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(s0, "segment")), 1);
    CU_ASSERT_DOUBLE_EQUAL(json_real_value(json_object_get(s0, "start_s")), 30, 0);
    CU_ASSERT_DOUBLE_EQUAL(json_real_value(json_object_get(s0, "end_s")), 42.5, 0);
    json_decref(res);
    res = search(ix, "dog", NULL); /* both; a (dog in three fields) ranks first */
    CU_ASSERT_EQUAL(nres(res), 2);
    CU_ASSERT_STRING_EQUAL(rid(res, 0), "a");
    json_decref(res);
    res = search(ix, "dog", "Rains"); /* event filter, normalised */
    CU_ASSERT_EQUAL_FATAL(nres(res), 1);
    CU_ASSERT_STRING_EQUAL(rid(res, 0), "b");
    json_decref(res);
    res = search(ix, "kitchen", "dog");
    CU_ASSERT_EQUAL(nres(res), 1); /* free answers are indexed; tag "Dogs" -> "dog" */
    json_decref(res);
    res = search(ix, "roofs", NULL); /* porter stemming */
    CU_ASSERT_EQUAL(nres(res), 1);
    json_decref(res);
    /* a new producer hash re-indexes: the old words are gone */
    json_decref(a);
    a = rec("a", "h2", "a cat purring", "cat", "[\"cat\"]", "[]");
    CU_ASSERT_EQUAL(em_index_add(ix, a, "file:///a.json", &w, &eb), EM_OK);
    CU_ASSERT_EQUAL(w, EM_INDEX_UPDATED);
    res = search(ix, "barking", NULL);
    CU_ASSERT_EQUAL(nres(res), 0);
    json_decref(res);
    res = search(ix, "purring", "cat");
    CU_ASSERT_EQUAL(nres(res), 1);
    json_decref(res);
    res = NULL;
    CU_ASSERT_EQUAL(em_index_search(ix, "   ", NULL, 10, &res, &eb), EM_E_ARG);
    res = search(ix, "\"unbalanced OR (", NULL); /* quoted: no FTS5 syntax error */
    CU_ASSERT_EQUAL(nres(res), 0);
    json_decref(res);
    CU_ASSERT_EQUAL(em_index_close(ix, &eb), EM_OK);
    /* reopening keeps everything */
    CU_ASSERT_EQUAL_FATAL(em_index_open(db, &ix, &eb), EM_OK);
    CU_ASSERT_EQUAL(em_index_add(ix, b, "file:///b.json", &w, &eb), EM_OK);
    CU_ASSERT_EQUAL(w, EM_INDEX_UNCHANGED);
    em_index_close(ix, NULL);
    json_decref(a);
    json_decref(b);
}

static void fts_query_and_bad_files(void)
{
    char q[64];
    CU_ASSERT_EQUAL(em_index_fts_query(" dog  \"x ", q, sizeof q, NULL), EM_OK);
    CU_ASSERT_STRING_EQUAL(q, "\"dog\" \"\"\"x\"");
    CU_ASSERT_EQUAL(em_index_fts_query("abcdefghij", q, 8, NULL), EM_E_TOO_LONG);
    char path[600];
    snprintf(path, sizeof path, "%s/not-a-db", dir);
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("this is not an SQLite database, just text long enough to look like a header....", f);
    fclose(f);
    struct em_index *ix = NULL;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL(em_index_open(path, &ix, &eb), EM_E_IO);
    CU_ASSERT_PTR_NULL(ix);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "not-a-db"));
}

static CU_TestInfo tests[] = {
    {"index_and_search", index_and_search},
    {"fts_query_and_bad_files", fts_query_and_bad_files},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_results_index = {"results_index", init, clean, NULL, NULL, tests};
