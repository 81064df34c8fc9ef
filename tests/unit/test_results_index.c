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

static json_t *searchn(struct em_index *ix, const char *q, const char *ev, size_t limit)
{
    json_t *res = NULL;
    struct em_errbuf eb = {{0}};
    em_err rc = em_index_search(ix, q, ev, limit, &res, &eb);
    if (rc != EM_OK) printf("\n    %s", eb.msg);
    CU_ASSERT_EQUAL(rc, EM_OK);
    return res;
}
static json_t *search(struct em_index *ix, const char *q, const char *ev) { return searchn(ix, q, ev, 10); }

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

/* Record "rNN" (index n of a run added in order, so rowids grow with n). */
static long num(json_t *res, size_t i) { return strtol(rid(res, i) + 1, NULL, 10); }

/* The rank cap: a query matching more fts rows than the cap ranks only the newest rows up
 * to it, best first; which rows match (a frequent word beside a rare one, the event
 * filter) does not change. 100 one-row records all hold "common"; r00 holds it three times
 * (the best bm25), every tenth holds "zebra", the even ones are tagged speech. */
static void rank_cap(void)
{
    char db[600];
    snprintf(db, sizeof db, "%s/cap.sqlite", dir);
    struct em_index *ix = NULL;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(em_index_open(db, &ix, &eb), EM_OK);
    for (int n = 0; n < 100; n++) {
        char id[16], tr[64];
        snprintf(id, sizeof id, "r%02d", n);
        snprintf(tr, sizeof tr, "%s%s", n == 0 ? "common common common" : "common word filler here",
                 n % 10 == 0 ? " zebra" : "");
        json_t *r = rec(id, "h", tr, "", n % 2 == 0 ? "[\"speech\"]" : "[]", "[]");
        json_object_del(r, "answers");
        enum em_index_change w;
        CU_ASSERT_EQUAL(em_index_add(ix, r, "file:///r.json", &w, &eb), EM_OK);
        json_decref(r);
    }
    json_t *res = searchn(ix, "common", NULL, 1); /* 100 rows <= default cap: exact */
    CU_ASSERT_EQUAL_FATAL(nres(res), 1);
    CU_ASSERT_STRING_EQUAL(rid(res, 0), "r00");
    json_decref(res);
    em_index_set_rank_cap(ix, 20); /* ranks r80..r99 only */
    res = searchn(ix, "common", NULL, 2);
    CU_ASSERT_EQUAL_FATAL(nres(res), 2);
    CU_ASSERT(num(res, 0) >= 80 && num(res, 1) >= 80);
    CU_ASSERT(json_real_value(json_object_get(json_array_get(res, 0), "score")) <=
              json_real_value(json_object_get(json_array_get(res, 1), "score")));
    json_decref(res);
    res = searchn(ix, "common", "speech", 2); /* newest 20 tagged: r60, r62, ..., r98 */
    CU_ASSERT_EQUAL_FATAL(nres(res), 2);
    for (size_t i = 0; i < nres(res); i++) CU_ASSERT(num(res, i) % 2 == 0 && num(res, i) >= 60);
    json_decref(res);
    /* 10 rows match "zebra common", under the cap: the same ten as "zebra", r00 first */
    res = searchn(ix, "zebra common", NULL, 100);
    json_t *z = searchn(ix, "zebra", NULL, 100);
    CU_ASSERT_EQUAL(nres(res), 10);
    CU_ASSERT_EQUAL(nres(z), 10);
    for (size_t i = 0; i < nres(res); i++) CU_ASSERT(num(res, i) % 10 == 0);
    CU_ASSERT_STRING_EQUAL(rid(res, 0), "r00");
    json_decref(res);
    json_decref(z);
    em_index_set_rank_cap(ix, 8); /* over the cap: only the newest zebra rows, still matching */
    res = searchn(ix, "zebra common", NULL, 1);
    CU_ASSERT_EQUAL_FATAL(nres(res), 1);
    CU_ASSERT(num(res, 0) % 10 == 0 && num(res, 0) >= 20);
    json_decref(res);
    /* merging the index changes no result */
    em_index_set_rank_cap(ix, 0);
    CU_ASSERT_EQUAL(em_index_optimize(ix, &eb), EM_OK);
    res = searchn(ix, "zebra common", NULL, 100);
    CU_ASSERT_EQUAL(nres(res), 10);
    CU_ASSERT_STRING_EQUAL(rid(res, 0), "r00");
    json_decref(res);
    em_index_close(ix, NULL);
}

static CU_TestInfo tests[] = {
    {"index_and_search", index_and_search},
    {"fts_query_and_bad_files", fts_query_and_bad_files},
    {"rank_cap", rank_cap},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_results_index = {"results_index", init, clean, NULL, NULL, tests};
