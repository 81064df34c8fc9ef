/* tests/unit/test_results_score.c - results/score: one record scored against references by
 * hand (WER, CER, tags, caption overlap, RTF), a failed item, the batch aggregation (sums,
 * not means), throughput, and the bootstrap (generator values, degenerate and identical
 * runs, reproducibility for a seed). */
#include <CUnit/CUnit.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "results/score.h"

#define TOL 1e-12

static json_t *rec(const char *status, const char *tr, const char *cap, const char *events,
                   double dur, double total, const char *created)
{
    json_t *r = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:{s:f}}", "schema", "earmark.annotation/v1",
                          "id", "i1", "source", "file:///a.wav", "status", status, "worker", "w1",
                          "created_at", created, "timings", "total_s", total);
    json_object_set_new(r, "transcript", tr ? json_string(tr) : json_null());
    json_object_set_new(r, "caption", cap ? json_string(cap) : json_null());
    json_object_set_new(r, "events", events ? json_loads(events, 0, NULL) : json_array());
    if (dur > 0) json_object_set_new(r, "audio", json_pack("{s:f}", "duration_s", dur));
    return r;
}

static void token_f1(void)
{
    CU_ASSERT_DOUBLE_EQUAL(em_score_token_f1("a b c", "a b d"), 4.0 / 6, TOL);
    CU_ASSERT_DOUBLE_EQUAL(em_score_token_f1("a a b", "a b b"), 4.0 / 6, TOL);
    CU_ASSERT_DOUBLE_EQUAL(em_score_token_f1("", ""), 1.0, TOL);
    CU_ASSERT_DOUBLE_EQUAL(em_score_token_f1("a", ""), 0.0, TOL);
    CU_ASSERT_DOUBLE_EQUAL(em_score_token_f1("x y", "x y"), 1.0, TOL);
}

static void one_item(void)
{
    json_t *r = rec("ok", "The cat sat.", "A dog barks", "[\"Dogs\"]", 10, 5, "2026-01-01T00:00:10Z");
    json_t *ref = json_pack("{s:s, s:s, s:[s, s]}", "transcript", "the cat sat down", "caption",
                            "a dog is barking", "events", "dog", "rain");
    struct em_score_item it;
    CU_ASSERT_EQUAL_FATAL(em_score_item(r, ref, NULL, &it, NULL), EM_OK);
    CU_ASSERT_TRUE(it.ok && it.has_tr && it.has_ev && it.has_cap);
    CU_ASSERT_EQUAL(it.w_err, 1); /* "down" deleted */
    CU_ASSERT_EQUAL(it.w_ref, 4);
    CU_ASSERT_EQUAL(it.c_err, 5); /* " down" */
    CU_ASSERT_EQUAL(it.c_ref, 16);
    CU_ASSERT_EQUAL(it.ev_tp, 1);
    CU_ASSERT_EQUAL(it.ev_pred, 1);
    CU_ASSERT_EQUAL(it.ev_ref, 2);
    CU_ASSERT_DOUBLE_EQUAL(it.cap_f1, 4.0 / 7, TOL); /* {a, dog} common of 3 + 4 words */
    CU_ASSERT_DOUBLE_EQUAL(it.rtf, 0.5, TOL);
    CU_ASSERT_EQUAL(it.created_ms, 1767225610000LL);
    CU_ASSERT_STRING_EQUAL(it.worker, "w1");
    json_decref(r);
    /* a failed item: every reference word deleted, no predicted tag */
    r = rec("failed", NULL, NULL, NULL, 0, 1, "2026-01-01T00:00:12.5Z");
    CU_ASSERT_EQUAL_FATAL(em_score_item(r, ref, NULL, &it, NULL), EM_OK);
    CU_ASSERT_FALSE(it.ok);
    CU_ASSERT_EQUAL(it.w_err, 4);
    CU_ASSERT_EQUAL(it.ev_pred, 0);
    CU_ASSERT_DOUBLE_EQUAL(it.cap_f1, 0, TOL);
    CU_ASSERT_TRUE(isnan(it.rtf));
    CU_ASSERT_EQUAL(it.created_ms, 1767225612500LL);
    /* no references: only timing */
    CU_ASSERT_EQUAL_FATAL(em_score_item(r, NULL, NULL, &it, NULL), EM_OK);
    CU_ASSERT_FALSE(it.has_tr || it.has_ev || it.has_cap);
    json_decref(r);
    json_decref(ref);
}

static void batch_sums_not_means(void)
{
    struct em_score_item v[3] = {
        {.ok = true, .duration_s = 10, .total_s = 5, .has_tr = true, .w_err = 1, .w_ref = 4,
         .c_err = 2, .c_ref = 20, .has_ev = true, .ev_tp = 1, .ev_pred = 1, .ev_ref = 2,
         .has_cap = true, .cap_f1 = 0.5, .created_ms = 10000},
        {.ok = true, .duration_s = 30, .total_s = 3, .has_tr = true, .w_err = 2, .w_ref = 2,
         .c_err = 0, .c_ref = 10, .has_ev = true, .ev_tp = 0, .ev_pred = 2, .ev_ref = 0,
         .created_ms = 12000},
        {.ok = false, .duration_s = NAN, .total_s = NAN, .created_ms = 14000},
    };
    double m[EM_METRIC_COUNT];
    em_score_batch(v, NULL, 3, m);
    CU_ASSERT_DOUBLE_EQUAL(m[EM_METRIC_WER], 3.0 / 6, TOL); /* not (0.25 + 1) / 2 */
    CU_ASSERT_DOUBLE_EQUAL(m[EM_METRIC_CER], 2.0 / 30, TOL);
    CU_ASSERT_DOUBLE_EQUAL(m[EM_METRIC_EV_P], 1.0 / 3, TOL);
    CU_ASSERT_DOUBLE_EQUAL(m[EM_METRIC_EV_R], 1.0 / 2, TOL);
    CU_ASSERT_DOUBLE_EQUAL(m[EM_METRIC_EV_F1], 0.4, TOL);
    CU_ASSERT_DOUBLE_EQUAL(m[EM_METRIC_CAP_F1], 0.5, TOL);
    CU_ASSERT_DOUBLE_EQUAL(m[EM_METRIC_RTF], 8.0 / 40, TOL);
    CU_ASSERT_DOUBLE_EQUAL(m[EM_METRIC_FAILED], 1.0 / 3, TOL);
    size_t idx[2] = {1, 1}; /* a subset with repeats, as the bootstrap draws */
    em_score_batch(v, idx, 2, m);
    CU_ASSERT_DOUBLE_EQUAL(m[EM_METRIC_WER], 1.0, TOL);
    CU_ASSERT_TRUE(isnan(m[EM_METRIC_CAP_F1]));
    CU_ASSERT_DOUBLE_EQUAL(m[EM_METRIC_FAILED], 0, TOL);
    struct em_score_rate r;
    em_score_rate_of(v, 3, &r);
    CU_ASSERT_EQUAL(r.start_ms, 5000); /* 10000 - 5 s */
    CU_ASSERT_EQUAL(r.end_ms, 14000);
    CU_ASSERT_DOUBLE_EQUAL(r.items_per_s, 3.0 / 9, TOL);
    CU_ASSERT_DOUBLE_EQUAL(r.audio_s_per_s, 40.0 / 9, TOL);
    for (int k = 0; k < EM_METRIC_COUNT; k++)
        CU_ASSERT_EQUAL(em_metric_of(em_metric_name((enum em_metric)k)), k);
    CU_ASSERT_EQUAL(em_metric_of("nope"), -1);
}

static void bootstrap(void)
{
    uint64_t s = 0;
    CU_ASSERT_EQUAL(em_score_rand(&s), 0xe220a8397b1dcdafULL); /* splitmix64, seed 0 */
    struct em_score_item a[10], b[10];
    memset(a, 0, sizeof a);
    for (int i = 0; i < 10; i++) {
        a[i] = (struct em_score_item){.ok = true, .has_tr = true, .w_err = (size_t)i % 3, .w_ref = 5,
                                      .duration_s = 1, .total_s = 0.5};
        b[i] = a[i];
    }
    double lo[EM_METRIC_COUNT], hi[EM_METRIC_COUNT];
    CU_ASSERT_EQUAL_FATAL(em_score_boot(a, b, 10, 500, 1, lo, hi, NULL), EM_OK);
    CU_ASSERT_DOUBLE_EQUAL(lo[EM_METRIC_WER], 0, TOL); /* identical runs: no change */
    CU_ASSERT_DOUBLE_EQUAL(hi[EM_METRIC_WER], 0, TOL);
    CU_ASSERT_TRUE(isnan(lo[EM_METRIC_CAP_F1]));
    for (int i = 0; i < 10; i++) b[i].w_err = a[i].w_err + 1; /* +1 error per 5 words each */
    CU_ASSERT_EQUAL_FATAL(em_score_boot(a, b, 10, 500, 1, lo, hi, NULL), EM_OK);
    CU_ASSERT_DOUBLE_EQUAL(lo[EM_METRIC_WER], 0.2, TOL); /* every resample: +10/50 */
    CU_ASSERT_DOUBLE_EQUAL(hi[EM_METRIC_WER], 0.2, TOL);
    b[0].w_err = 5; /* one item much worse: the interval widens, reruns agree */
    double lo2[EM_METRIC_COUNT], hi2[EM_METRIC_COUNT];
    CU_ASSERT_EQUAL_FATAL(em_score_boot(a, b, 10, 500, 7, lo, hi, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_score_boot(a, b, 10, 500, 7, lo2, hi2, NULL), EM_OK);
    CU_ASSERT_TRUE(lo[EM_METRIC_WER] < hi[EM_METRIC_WER]);
    CU_ASSERT_TRUE(lo[EM_METRIC_WER] >= 0.2 - TOL && hi[EM_METRIC_WER] <= 0.2 + 4.0 / 5 + TOL);
    CU_ASSERT_EQUAL(memcmp(lo, lo2, sizeof lo), 0);
    CU_ASSERT_EQUAL(memcmp(hi, hi2, sizeof hi), 0);
    /* one item: every resample is that item, so the interval is the delta itself */
    CU_ASSERT_EQUAL_FATAL(em_score_boot(a, b, 1, 100, 3, lo, hi, NULL), EM_OK);
    CU_ASSERT_DOUBLE_EQUAL(lo[EM_METRIC_WER], 1.0, TOL);
    CU_ASSERT_DOUBLE_EQUAL(hi[EM_METRIC_WER], 1.0, TOL);
}

static CU_TestInfo tests[] = {
    {"token_f1", token_f1},
    {"one_item", one_item},
    {"batch_sums_not_means", batch_sums_not_means},
    {"bootstrap", bootstrap},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_results_score = {"results_score", NULL, NULL, NULL, NULL, tests};
