/* tests/integration/test_it_pipeline.c - the whole system on real processes: redis-server,
 * `earmark coordinator`, two `earmark worker`s, moto_server for S3.
 *   a. 50 real clips in five containers, output to s3:// on moto: one record per item
 *      (read back through em_storage_get), each valid, manifest.jsonl complete;
 *   d. good clips mixed with an empty file, random bytes named .wav, a text file named .mp3,
 *      a truncated mp3 and a 10 ms clip, output to a local directory: each bad item gets an
 *      error record naming its cause, every good item is annotated. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/helpers/clips.h"
#include "tests/helpers/cluster.h"
#include "tests/helpers/proc.h"

#define BUCKET "earmark-it"
#define N_A 50
#define N_D_GOOD 6

static struct th_cluster c;
static struct th_server s3;
static struct em_storage *st;

static int clean(void);

static int start(void)
{
    if (th_moto_start(&s3) != 0) return 1;
    /* workers inherit these; moto accepts any credentials */
    th_s3_env_set(s3.endpoint, "testing", "testing");
    if (th_s3_mkbucket(&s3, BUCKET, "testing", "testing") != 0) return 1;
    struct th_cluster_opts o = {.workers = 2, .threads = 2}; /* 2 pipeline threads each */
    return th_cluster_start_storage(&c, &o, NULL, &st) != 0;
}

static int init(void) { return th_suite_init(start, clean); }

static int clean(void)
{
    th_cluster_stop_storage(&c, &st);
    th_server_stop(&s3);
    th_s3_env_restore();
    return 0;
}

static int distinct_containers(json_t *const *recs, size_t n)
{
    const char *seen[16];
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *ct = th_jstr(recs[i], "audio", "container");
        if (!*ct) continue;
        int j = 0;
        while (j < k && strcmp(seen[j], ct) != 0) j++;
        if (j == k && k < 16) seen[k++] = ct;
    }
    return k;
}

/* a. */
static void batch_of_50_to_s3(void)
{
    char corpus[700], manifest[760];
    snprintf(corpus, sizeof corpus, "%s/corpus-a", c.dir);
    snprintf(manifest, sizeof manifest, "%s/manifest.txt", corpus);
    CU_ASSERT_EQUAL_FATAL(th_make_corpus(corpus, N_A, 0), 0);
    struct th_uris u;
    CU_ASSERT_EQUAL_FATAL(th_uris_load(manifest, &u), 0);
    CU_ASSERT_EQUAL(u.n, N_A);
    const char *out = "s3://" BUCKET "/runs/a";
    CU_ASSERT_EQUAL_FATAL(th_cluster_submit(&c, manifest, out, 3), 0);
    CU_ASSERT_EQUAL_FATAL(th_cluster_wait(&c, st, out, TH_CLUSTER_WAIT_MS, NULL, NULL), 0);
    CU_ASSERT_EQUAL(th_manifest_check(st, out, c.batch, &u), 0);
    json_t *recs[N_A] = {0};
    int bad = 0;
    for (size_t i = 0; i < u.n && i < N_A; i++) {
        recs[i] = th_record_get(st, out, c.batch, u.v[i]);
        bad += th_record_check_ok(recs[i], u.v[i], c.batch);
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_TRUE(distinct_containers(recs, u.n < N_A ? u.n : N_A) >= 4);
    for (size_t i = 0; i < N_A; i++) json_decref(recs[i]);
    th_uris_free(&u);
    CU_ASSERT_EQUAL(th_cluster_sanitizer_reports(&c), 0);
}

struct bad_case {
    const char *file, *cls, *mention;
};

/* d. */
static void bad_inputs_get_error_records(void)
{
    char corpus[700], manifest[760], outdir[700], out[720];
    snprintf(corpus, sizeof corpus, "%s/corpus-d", c.dir);
    snprintf(manifest, sizeof manifest, "%s/manifest.txt", corpus);
    snprintf(outdir, sizeof outdir, "%s/out-d", c.dir);
    snprintf(out, sizeof out, "file://%s", outdir);
    CU_ASSERT_EQUAL_FATAL(th_make_corpus(corpus, N_D_GOOD, 1), 0);
    struct th_uris u;
    CU_ASSERT_EQUAL_FATAL(th_uris_load(manifest, &u), 0);
    CU_ASSERT_EQUAL(u.n, N_D_GOOD + 5);
    CU_ASSERT_EQUAL_FATAL(th_cluster_submit(&c, manifest, out, 3), 0);
    CU_ASSERT_EQUAL_FATAL(th_cluster_wait(&c, st, out, TH_CLUSTER_WAIT_MS, NULL, NULL), 0);
    CU_ASSERT_EQUAL(th_manifest_check(st, out, c.batch, &u), 0);
    CU_ASSERT_EQUAL(th_count_json(outdir), (int)u.n);

    static const struct bad_case cases[] = {
        {"/empty.wav", "EM_E_AUDIO", "empty.wav"},
        {"/random.wav", NULL, "random.wav"},
        {"/text.mp3", NULL, "text.mp3"},
        {"/tiny.wav", "EM_E_TOO_SHORT", "tiny.wav"},
        {"/truncated.mp3", "EM_E_AUDIO", "truncated"}, /* its Xing header declares 3 s */
    };
    int special = 0;
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        int i = th_uris_find(&u, cases[k].file);
        CU_ASSERT_TRUE_FATAL(i >= 0);
        json_t *r = th_record_get(st, out, c.batch, u.v[i]);
        CU_ASSERT_EQUAL(th_record_check_failed(r, u.v[i], cases[k].cls, cases[k].mention), 0);
        json_decref(r);
        special++;
    }
    int good_bad = 0, good = 0;
    for (size_t i = 0; i < u.n; i++) {
        if (strstr(u.v[i], "/empty.wav") || strstr(u.v[i], "/random.wav") ||
            strstr(u.v[i], "/text.mp3") || strstr(u.v[i], "/tiny.wav") ||
            strstr(u.v[i], "/truncated.mp3"))
            continue;
        json_t *g = th_record_get(st, out, c.batch, u.v[i]);
        good_bad += th_record_check_ok(g, u.v[i], c.batch);
        good++;
        json_decref(g);
    }
    CU_ASSERT_EQUAL(good, N_D_GOOD);
    CU_ASSERT_EQUAL(good_bad, 0);
    CU_ASSERT_EQUAL(special, 5);
    th_uris_free(&u);
    CU_ASSERT_EQUAL(th_cluster_sanitizer_reports(&c), 0);
}

static CU_TestInfo tests[] = {
    {"batch_of_50_to_s3", batch_of_50_to_s3},
    {"bad_inputs_get_error_records", bad_inputs_get_error_records},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_it_pipeline = {"it_pipeline", init, clean, NULL, NULL, tests};
