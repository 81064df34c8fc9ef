/* tests/integration/test_it_life.c - a batch's end of life (issue 10, item 9) while the
 * coordinator runs: redis-server, coordinator (EARMARK_RETENTION=600s, streams trimmed every
 * 500 ms), two workers slowed to 300 ms a task, file:// outputs.
 *   cancel:    a running batch cancelled: it ends "cancelled", every item settled once
 *              (done + failed + cancelled = total), manifest.jsonl lists the cancelled items
 *              with no output, and a later batch completes as usual;
 *   delete:    refused while a batch runs; after a cancel the keys are gone, status no longer
 *              finds it, and the coordinator goes on serving new batches;
 *   retention: a finished batch's keys carry the TTL, `earmark ls` lists batches with their
 *              state and counts, and settled entries are trimmed from the items stream. */
#include <CUnit/CUnit.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "tests/helpers/clips.h"
#include "tests/helpers/cluster.h"
#include "tests/helpers/proc.h"

#define POLL_MS 60000

static struct th_cluster c;
static struct em_storage *st;
static char cancelled_batch[64];

static int clean(void)
{
    th_cluster_stop_storage(&c, &st);
    return 0;
}

static int init(void)
{
    struct th_cluster_opts o = {
        .workers = 2,
        .threads = 1,
        .worker_env = {"EARMARK_FAULT_DELAY_MS=300", NULL},
        .coord_env = {"EARMARK_RETENTION=600s", "EARMARK_TRIM_EVERY_MS=500", NULL},
    };
    return th_cluster_start_storage(&c, &o, NULL, &st) != 0;
}

/* A new batch of two clips completes: the coordinator goes on after what a test did. */
static void later_batch_completes(const char *name)
{
    char m[800], out[820];
    struct th_uris u;
    CU_ASSERT_EQUAL_FATAL(th_cluster_tones(&c, name, 2, m, sizeof m, &u), 0);
    snprintf(out, sizeof out, "file://%s/out-%s", c.dir, name);
    CU_ASSERT_EQUAL_FATAL(th_cluster_submit(&c, m, out, 2), 0);
    CU_ASSERT_EQUAL(th_cluster_wait(&c, st, out, TH_CLUSTER_WAIT_MS, NULL, NULL), 0);
    CU_ASSERT_EQUAL(th_records_check_ok(st, out, c.batch, &u), 0);
    th_uris_free(&u);
}

/* Runs `earmark <args>` (printf-style) with --redis; stdout into *out (malloc'd, may be
 * NULL). Returns the exit status. */
static int earmark(char **out, const char *sub, const char *arg)
{
    char path[700];
    snprintf(path, sizeof path, "%s/cmd.out", c.dir);
    int rc = th_sh("'%s' %s --redis '%s' %s > '%s' 2>> '%s/cmd.err'", th_bin(), sub, c.redis.url,
                   arg ? arg : "", path, c.dir);
    if (out) {
        size_t n = 0;
        *out = th_slurp(path, &n);
    }
    return rc;
}

/* Polls `earmark status --json` until it contains want; 1 if it did. */
static int status_has(const char *batch, const char *want)
{
    char arg[128];
    snprintf(arg, sizeof arg, "--json %s", batch);
    for (int64_t until = em_now_ms() + POLL_MS; em_now_ms() < until; em_sleep_ms(200)) {
        char *s = NULL;
        earmark(&s, "status", arg);
        int yes = s && strstr(s, want);
        free(s);
        if (yes) return 1;
    }
    return 0;
}

static long long redis_num(const char *cmd)
{
    char path[700];
    snprintf(path, sizeof path, "%s/redis.out", c.dir);
    if (th_sh("redis-cli -u '%s' %s > '%s'", c.redis.url, cmd, path) != 0) return -1000;
    size_t n = 0;
    char *s = th_slurp(path, &n);
    long long v = s ? strtoll(s, NULL, 10) : -1000;
    free(s);
    return v;
}

static void cancel_settles_the_rest(void)
{
    char m[800], outdir[800], out[820];
    struct th_uris u;
    CU_ASSERT_EQUAL_FATAL(th_cluster_tones(&c, "cancel", 16, m, sizeof m, &u), 0);
    snprintf(outdir, sizeof outdir, "%s/out-cancel", c.dir);
    snprintf(out, sizeof out, "file://%s", outdir);
    CU_ASSERT_EQUAL_FATAL(th_cluster_submit(&c, m, out, 2), 0);
    snprintf(cancelled_batch, sizeof cancelled_batch, "%s", c.batch);
    char *o = NULL;
    CU_ASSERT_EQUAL(earmark(&o, "cancel", c.batch), 0);
    CU_ASSERT_PTR_NOT_NULL(o ? strstr(o, "cancelling") : NULL);
    free(o);
    CU_ASSERT_EQUAL(th_cluster_wait(&c, st, out, TH_CLUSTER_WAIT_MS, NULL, NULL), 0);
    CU_ASSERT_TRUE(status_has(c.batch, "\"state\":\"cancelled\""));
    char arg[128], *s = NULL;
    snprintf(arg, sizeof arg, "--json %s", c.batch);
    CU_ASSERT_EQUAL(earmark(&s, "status", arg), 0);
    json_t *j = s ? json_loads(s, 0, NULL) : NULL;
    free(s);
    long long done = json_integer_value(json_object_get(j, "done")),
              failed = json_integer_value(json_object_get(j, "failed")),
              canc = json_integer_value(json_object_get(j, "cancelled"));
    CU_ASSERT_EQUAL(done + failed + canc, 16);
    CU_ASSERT_TRUE(canc >= 1);
    json_decref(j);
    /* manifest.jsonl: one line per item; cancelled ones have no output */
    char mf[900];
    snprintf(mf, sizeof mf, "%s/manifest.jsonl", outdir);
    CU_ASSERT_EQUAL(th_sh("test $(grep -c . '%s') -eq 16", mf), 0);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "grep -c '\"status\":\"cancelled\",\"output\":null' '%s'", mf);
    CU_ASSERT_EQUAL(th_sh("test \"$(%s)\" -eq %lld", cmd, canc), 0);
    /* no record beyond the items that ran: those settled, plus at most the tasks that were
     * running on the two one-slot workers when the cancel came (they finish; their late
     * results settle nothing) */
    CU_ASSERT_TRUE(th_count_json(outdir) <= (int)(done + failed) + 2);
    th_uris_free(&u);

    later_batch_completes("after-cancel");
}

static void delete_refuses_running_then_removes(void)
{
    char m[800], out[820], pattern[700], cmd[300];
    struct th_uris u;
    CU_ASSERT_EQUAL_FATAL(th_cluster_tones(&c, "delete", 4, m, sizeof m, &u), 0);
    snprintf(out, sizeof out, "file://%s/out-delete", c.dir);
    for (int i = 0; i < c.nworkers; i++) th_cluster_worker_kill(&c, i, SIGTERM);
    CU_ASSERT_EQUAL_FATAL(th_cluster_submit(&c, m, out, 2), 0); /* stays open: no worker */
    char batch[64];
    snprintf(batch, sizeof batch, "%s", c.batch);
    CU_ASSERT_EQUAL(earmark(NULL, "delete", batch), 1); /* running: refused */
    CU_ASSERT_EQUAL(th_sh("grep -q 'still running' '%s/cmd.err'", c.dir), 0);
    snprintf(cmd, sizeof cmd, "EXISTS earmark:batch:%s", batch);
    CU_ASSERT_EQUAL(redis_num(cmd), 1);
    CU_ASSERT_EQUAL(earmark(NULL, "cancel", batch), 0);
    CU_ASSERT_TRUE(status_has(batch, "\"state\":\"cancelled\""));
    CU_ASSERT_EQUAL(earmark(NULL, "delete", batch), 0);
    snprintf(pattern, sizeof pattern, "%s/keys.txt", c.dir);
    CU_ASSERT_EQUAL(th_sh("redis-cli -u '%s' --scan --pattern 'earmark:batch:%s*' > '%s'",
                          c.redis.url, batch, pattern),
                    0);
    size_t n = 0;
    char *k = th_slurp(pattern, &n);
    CU_ASSERT_EQUAL(n, 0); /* every key of the batch is gone */
    free(k);
    char arg[128];
    snprintf(arg, sizeof arg, "%s", batch);
    CU_ASSERT_EQUAL(earmark(NULL, "status", arg), 1); /* not found */
    CU_ASSERT_EQUAL(earmark(NULL, "delete", batch), 1);
    th_uris_free(&u);

    /* the coordinator meets the deleted batch's unread entries and goes on */
    for (int i = 0; i < c.nworkers; i++) CU_ASSERT_EQUAL(th_cluster_worker_start(&c, i), 0);
    later_batch_completes("after-delete");
}

static void retention_ls_and_trimming(void)
{
    char cmd[300];
    /* the last batch completed: its keys expire within the retention */
    snprintf(cmd, sizeof cmd, "PTTL earmark:batch:%s", c.batch);
    long long ttl = redis_num(cmd);
    CU_ASSERT_TRUE(ttl > 0 && ttl <= 600000);
    snprintf(cmd, sizeof cmd, "PTTL earmark:batch:%s:status", c.batch);
    ttl = redis_num(cmd);
    CU_ASSERT_TRUE(ttl > 0 && ttl <= 600000);
    snprintf(cmd, sizeof cmd, "PTTL earmark:batch:%s", cancelled_batch);
    ttl = redis_num(cmd);
    CU_ASSERT_TRUE(ttl > 0 && ttl <= 600000);

    char *o = NULL;
    CU_ASSERT_EQUAL(earmark(&o, "ls", NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(o ? strstr(o, c.batch) : NULL);
    const char *line = o && *cancelled_batch ? strstr(o, cancelled_batch) : NULL;
    CU_ASSERT_PTR_NOT_NULL(line);
    CU_ASSERT_PTR_NOT_NULL(line ? strstr(line, "cancelled") : NULL);
    free(o);

    /* every entry is settled: the trimmer leaves at most the last delivered one */
    long long len = -1;
    for (int64_t until = em_now_ms() + POLL_MS; em_now_ms() < until; em_sleep_ms(200))
        if ((len = redis_num("XLEN earmark:items")) >= 0 && len <= 1) break;
    CU_ASSERT_TRUE(len >= 0 && len <= 1);
    CU_ASSERT_EQUAL(th_cluster_sanitizer_reports(&c), 0);
}

static CU_TestInfo tests[] = {
    {"cancel_settles_the_rest", cancel_settles_the_rest},
    {"delete_refuses_running_then_removes", delete_refuses_running_then_removes},
    {"retention_ls_and_trimming", retention_ls_and_trimming},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_it_life = {"it_life", init, clean, NULL, NULL, tests};
