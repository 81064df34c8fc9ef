/* tests/integration/test_it_infra.c - infrastructure faults do not burn attempts (issue 10,
 * item 8), on a real cluster writing to SeaweedFS (S3, signatures checked):
 *   stalled:  the S3 server is stopped while a batch runs (its data dir kept): workers' PUTs
 *             fail with EM_E_STORAGE_DOWN, the coordinator pauses dispatch to that output,
 *             `earmark status` says "stalled: ..." with no rate and no ETA, the stalled
 *             metric is up; once the server is back every item ends ok and no item has a
 *             failed attempt counted against it (max attempts 2, far fewer than the faults);
 *   deadline: with the server stopped again, a batch submitted with --deadline 3s has every
 *             item failed EM_E_TIMEOUT at the deadline instead of waiting for good;
 *   full:     a file:// output on a small tmpfs (mounted by the test: needs root, as CI
 *             runs) is filled up while a batch runs: the records fail with ENOSPC
 *             (EM_E_STORAGE_FULL), the batch stalls with that reason; once the filler is
 *             removed every item ends ok with no attempt spent. */
#include <CUnit/CUnit.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "tests/helpers/clips.h"
#include "tests/helpers/cluster.h"
#include "tests/helpers/proc.h"

#define BUCKET "earmark-infra"
#define AK "infra-ak"
#define SK "infra-sk"
#define N_ITEMS 6
#define STALL_WAIT_MS 60000

static struct th_cluster c;
static struct th_server s3;
static struct em_storage *st;
static char tmpfs_dir[700]; /* mounted by disk_full_stalls_then_resumes; "" when not */

static int clean(void)
{
    if (tmpfs_dir[0]) {
        th_sh("umount '%s'", tmpfs_dir);
        tmpfs_dir[0] = 0;
    }
    th_cluster_stop_storage(&c, &st);
    th_server_stop(&s3);
    th_s3_env_restore();
    return 0;
}

static int start(void)
{
    if (th_weed_start(&s3, AK, SK) != 0 || th_s3_mkbucket(&s3, BUCKET, AK, SK) != 0) return 1;
    th_s3_env_set(s3.endpoint, AK, SK); /* the cluster's processes inherit it */
    struct th_cluster_opts o = {.workers = 2, .threads = 1};
    return th_cluster_start_storage(&c, &o, NULL, &st) != 0;
}

static int init(void) { return th_suite_init(start, clean); }

/* `earmark status --json` of the last batch into a malloc'd string (NULL on failure). */
static char *status_json(void)
{
    char path[700];
    snprintf(path, sizeof path, "%s/status.json", c.dir);
    if (th_sh("'%s' status --redis '%s' --json '%s' > '%s' 2>/dev/null", th_bin(), c.redis.url,
              c.batch, path) != 0)
        return NULL;
    size_t n = 0;
    return th_slurp(path, &n);
}

/* Polls status until it contains want; returns it (malloc'd) or NULL after STALL_WAIT_MS
 * (then prints the last one). */
static char *status_until(const char *want)
{
    char *js = NULL;
    for (int64_t until = em_now_ms() + STALL_WAIT_MS; em_now_ms() < until; em_sleep_ms(250)) {
        free(js);
        js = status_json();
        if (js && strstr(js, want)) return js;
    }
    fprintf(stderr, "status never had %s: %s\n", want, js ? js : "(none)");
    free(js);
    return NULL;
}

/* N_ITEMS clips submitted to out (with flags) while storage is up, so the submit probe
 * passes; the workers start only once storage is down. */
static int submit_then_storage_down(const char *name, const char *out, const char *flags,
                                    struct th_uris *u)
{
    char manifest[800];
    if (th_cluster_tones(&c, name, N_ITEMS, manifest, sizeof manifest, u) != 0) return -1;
    for (int i = 0; i < c.nworkers; i++) th_cluster_worker_kill(&c, i, SIGTERM);
    int bad = th_cluster_submit_with(&c, manifest, out, 2, flags);
    th_server_pause(&s3);
    for (int i = 0; i < c.nworkers; i++) bad |= th_cluster_worker_start(&c, i);
    return bad;
}

/* No failed attempt recorded for any item of the last batch (batch:<B>:tries has no
 * "<item>:fails"). 0 when none. */
static int attempts_unspent(void)
{
    char tries[800];
    snprintf(tries, sizeof tries, "%s/tries.txt", c.dir);
    if (th_sh("redis-cli -u '%s' HKEYS 'earmark:batch:%s:tries' > '%s'", c.redis.url, c.batch,
              tries) != 0)
        return -1;
    return th_sh("grep -q ':fails' '%s'", tries) == 0;
}

static void storage_down_stalls_without_spending_attempts(void)
{
    struct th_uris u;
    const char *out = "s3://" BUCKET "/stall";
    CU_ASSERT_EQUAL_FATAL(submit_then_storage_down("stall", out, NULL, &u), 0);
    char *js = status_until("\"stalled\":\"EM_E_STORAGE_DOWN");
    CU_ASSERT_PTR_NOT_NULL(js);
    if (js) { /* while stalled: no rate, no ETA */
        CU_ASSERT_PTR_NOT_NULL(strstr(js, "\"rate\":0.0"));
        CU_ASSERT_PTR_NOT_NULL(strstr(js, "\"eta_s\":null"));
        CU_ASSERT_TRUE(th_cluster_metric(&c, "earmark_outputs_stalled") >= 1);
    }
    free(js);
    CU_ASSERT_EQUAL_FATAL(th_server_resume(&s3), 0);
    CU_ASSERT_EQUAL(th_cluster_wait(&c, st, out, TH_CLUSTER_WAIT_MS, NULL, NULL), 0);
    CU_ASSERT_EQUAL(th_records_check_ok(st, out, c.batch, &u), 0);
    CU_ASSERT_EQUAL(th_manifest_check(st, out, c.batch, &u), 0);
    CU_ASSERT_EQUAL(attempts_unspent(), 0);
    CU_ASSERT_TRUE(th_cluster_metric(&c, "earmark_infra_faults_total") >= 1);
    CU_ASSERT_EQUAL(th_cluster_metric(&c, "earmark_outputs_stalled"), 0);
    js = status_json();
    CU_ASSERT_PTR_NULL(js ? strstr(js, "\"stalled\":\"") : NULL);
    free(js);
    th_uris_free(&u);
}

static void deadline_bounds_a_stall(void)
{
    struct th_uris u;
    const char *out = "s3://" BUCKET "/deadline";
    CU_ASSERT_EQUAL_FATAL(submit_then_storage_down("deadline", out, "--deadline 3s", &u), 0);
    /* every item fails at the deadline, storage still down */
    char want[64];
    snprintf(want, sizeof want, "\"failed\":%d", N_ITEMS);
    char *js = status_until(want);
    CU_ASSERT_PTR_NOT_NULL(js);
    free(js);
    CU_ASSERT_EQUAL(th_sh("grep -q 'EM_E_TIMEOUT' '%s'/coordinator-*.log", c.dir), 0);
    CU_ASSERT_EQUAL_FATAL(th_server_resume(&s3), 0);
    /* storage back: the manifest is written and lists every item failed */
    CU_ASSERT_EQUAL(th_cluster_wait(&c, st, out, TH_CLUSTER_WAIT_MS, NULL, NULL), 0);
    CU_ASSERT_EQUAL(th_manifest_check(st, out, c.batch, &u), 0);
    th_uris_free(&u);
    CU_ASSERT_EQUAL(th_cluster_sanitizer_reports(&c), 0);
}

/* Bug: a full output disk spent the attempts of good clips (66 of 1,000 ended failed). */
static void disk_full_stalls_then_resumes(void)
{
    char manifest[800], out[800];
    struct th_uris u;
    snprintf(tmpfs_dir, sizeof tmpfs_dir, "%s/small-disk", c.dir);
    CU_ASSERT_EQUAL_FATAL(th_sh("mkdir -p '%s' && mount -t tmpfs -o size=256k tmpfs '%s'",
                                tmpfs_dir, tmpfs_dir),
                          0); /* root only: CI and the developers' machines run as root */
    snprintf(out, sizeof out, "file://%s/out", tmpfs_dir);
    CU_ASSERT_EQUAL_FATAL(th_cluster_tones(&c, "full", N_ITEMS, manifest, sizeof manifest, &u), 0);
    for (int i = 0; i < c.nworkers; i++) th_cluster_worker_kill(&c, i, SIGTERM);
    CU_ASSERT_EQUAL_FATAL(th_cluster_submit_with(&c, manifest, out, 2, NULL), 0);
    /* the disk fills up (dd stops at ENOSPC), then the workers come back */
    th_sh("dd if=/dev/zero of='%s/filler' bs=4k 2>/dev/null", tmpfs_dir);
    for (int i = 0; i < c.nworkers; i++) CU_ASSERT_EQUAL(th_cluster_worker_start(&c, i), 0);
    char *js = status_until("\"stalled\":\"EM_E_STORAGE_FULL");
    CU_ASSERT_PTR_NOT_NULL(js);
    if (js) CU_ASSERT_PTR_NOT_NULL(strstr(js, "\"eta_s\":null"));
    free(js);
    CU_ASSERT_EQUAL(th_sh("rm -f '%s/filler'", tmpfs_dir), 0);
    CU_ASSERT_EQUAL(th_cluster_wait(&c, st, out, TH_CLUSTER_WAIT_MS, NULL, NULL), 0);
    CU_ASSERT_EQUAL(th_records_check_ok(st, out, c.batch, &u), 0);
    CU_ASSERT_EQUAL(th_manifest_check(st, out, c.batch, &u), 0);
    CU_ASSERT_EQUAL(attempts_unspent(), 0);
    th_uris_free(&u);
    CU_ASSERT_EQUAL(th_sh("umount '%s'", tmpfs_dir), 0);
    tmpfs_dir[0] = 0;
}

static CU_TestInfo tests[] = {
    {"storage_down_stalls_without_spending_attempts",
     storage_down_stalls_without_spending_attempts},
    {"deadline_bounds_a_stall", deadline_bounds_a_stall},
    {"disk_full_stalls_then_resumes", disk_full_stalls_then_resumes},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_it_infra = {"it_infra", init, clean, NULL, NULL, tests};
