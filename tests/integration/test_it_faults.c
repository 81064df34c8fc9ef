/* tests/integration/test_it_faults.c - failures of the processes themselves, on a real
 * cluster (redis-server, coordinator, two workers; file:// output so every object can be
 * counted). Workers run with the test-only hooks EARMARK_FAULT_DELAY_MS (tasks slow enough
 * to be caught in flight) and EARMARK_FAULT_CRASH_ON=crashme.
 *   b. kill -9 of a worker while it holds a task: the task is re-dispatched and completes;
 *      exactly one object per item, manifest lists each item once;
 *   c. kill -9 of the coordinator mid-batch, then a restart: the batch completes, exactly
 *      one object per item;
 *   g. an input that crashes every worker that takes it is quarantined after the attempt
 *      limit with an EM_E_CRASH record, while a supervisor loop restarts the dead workers
 *      and the rest of the batch completes. */
#include <CUnit/CUnit.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "tests/helpers/clips.h"
#include "tests/helpers/cluster.h"
#include "tests/helpers/proc.h"

static struct th_cluster c;
static struct em_storage *st;

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
        .worker_env = {"EARMARK_FAULT_DELAY_MS=300", "EARMARK_FAULT_CRASH_ON=crashme", NULL},
    };
    return th_cluster_start_storage(&c, &o, NULL, &st) != 0;
}

/* Makes a corpus of n clips under c.dir/name; manifest path to manifest, outputs dir to
 * outdir and its URI to out. */
static int corpus(const char *name, int n, char *manifest, char *outdir, char *out, size_t cap)
{
    char d[700];
    snprintf(d, sizeof d, "%s/%s", c.dir, name);
    snprintf(manifest, cap, "%s/manifest.txt", d);
    snprintf(outdir, cap, "%s/out-%s", c.dir, name);
    snprintf(out, cap, "file://%s", outdir);
    return th_make_corpus(d, n, 0);
}

/* Every item: one ok record, nothing else in the output directory, manifest complete. */
static void check_all_ok(const struct th_uris *u, const char *outdir, const char *out)
{
    CU_ASSERT_EQUAL(th_manifest_check(st, out, c.batch, u), 0);
    CU_ASSERT_EQUAL(th_count_json(outdir), (int)u->n);
    CU_ASSERT_EQUAL(th_records_check_ok(st, out, c.batch, u), 0);
}

/* ---- b ---- */

struct kill_worker {
    int killed;
    char item[64]; /* the item worker 0 held when killed */
};

static int count(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* Kills worker 0 once its log shows a task taken and not yet answered. */
static void kill_worker_tick(struct th_cluster *cl, void *arg)
{
    struct kill_worker *k = arg;
    if (k->killed) return;
    char log[700];
    snprintf(log, sizeof log, "%s/worker0-%d.log", cl->dir, cl->worker_runs[0]);
    char *text = th_slurp(log, NULL);
    if (!text) return;
    int tasks = count(text, "msg=\"task\" "), answered = count(text, "msg=\"done\" ") +
                                                         count(text, "msg=\"failed\" ");
    const char *last = NULL;
    for (const char *p = text; (p = strstr(p, "msg=\"task\" ")); p++) last = p;
    if (tasks > answered && last) {
        const char *it = strstr(last, " item=");
        if (it) sscanf(it + 6, "%63[0-9a-f]", k->item);
        th_cluster_worker_kill(cl, 0, SIGKILL);
        k->killed = 1;
        th_cluster_supervise(cl); /* a fresh worker 0 joins */
    }
    free(text);
}

static void worker_killed_mid_task(void)
{
    char manifest[760], outdir[760], out[760];
    CU_ASSERT_EQUAL_FATAL(corpus("b", 12, manifest, outdir, out, sizeof out), 0);
    struct th_uris u;
    CU_ASSERT_EQUAL_FATAL(th_uris_load(manifest, &u), 0);
    CU_ASSERT_EQUAL_FATAL(th_cluster_submit(&c, manifest, out, 5), 0);
    struct kill_worker k = {0};
    CU_ASSERT_EQUAL(th_cluster_wait(&c, st, out, TH_CLUSTER_WAIT_MS, kill_worker_tick, &k), 0);
    CU_ASSERT_TRUE(k.killed);
    CU_ASSERT_TRUE(k.item[0] != 0);
    check_all_ok(&u, outdir, out);
    /* the task held by the killed worker was dispatched again */
    for (size_t i = 0; i < u.n && k.item[0]; i++) {
        json_t *r = th_record_get(st, out, c.batch, u.v[i]);
        if (r && strcmp(th_jstr(r, "id", NULL), k.item) == 0) {
            CU_ASSERT_TRUE(json_integer_value(json_object_get(r, "attempt")) >= 2);
            CU_ASSERT_STRING_NOT_EQUAL(th_jstr(r, "worker", NULL), "");
        }
        json_decref(r);
    }
    th_uris_free(&u);
    CU_ASSERT_EQUAL(th_cluster_sanitizer_reports(&c), 0);
}

/* ---- c ---- */

struct kill_coord {
    const char *outdir;
    int total;
    int killed, restarted;
};

static void kill_coord_tick(struct th_cluster *cl, void *arg)
{
    struct kill_coord *k = arg;
    if (k->killed) return;
    int done = th_count_json(k->outdir);
    if (done < 2 || done >= k->total) return;
    th_cluster_coord_kill(cl, SIGKILL);
    k->killed = 1;
    em_sleep_ms(1000); /* down for a while: workers keep going and queue their results */
    k->restarted = th_cluster_coord_start(cl) == 0;
}

static void coordinator_killed_and_restarted(void)
{
    char manifest[760], outdir[760], out[760];
    CU_ASSERT_EQUAL_FATAL(corpus("c", 16, manifest, outdir, out, sizeof out), 0);
    struct th_uris u;
    CU_ASSERT_EQUAL_FATAL(th_uris_load(manifest, &u), 0);
    CU_ASSERT_EQUAL_FATAL(th_cluster_submit(&c, manifest, out, 5), 0);
    struct kill_coord k = {.outdir = outdir, .total = (int)u.n};
    CU_ASSERT_EQUAL(th_cluster_wait(&c, st, out, TH_CLUSTER_WAIT_MS, kill_coord_tick, &k), 0);
    CU_ASSERT_TRUE(k.killed);
    CU_ASSERT_TRUE(k.restarted);
    check_all_ok(&u, outdir, out);
    th_uris_free(&u);
    CU_ASSERT_EQUAL(th_cluster_sanitizer_reports(&c), 0);
}

/* ---- g ---- */

static void supervise_tick(struct th_cluster *cl, void *arg)
{
    (void)arg;
    th_cluster_supervise(cl);
}

static void crashing_input_is_quarantined(void)
{
    char manifest[760], outdir[760], out[760], crash[800];
    CU_ASSERT_EQUAL_FATAL(corpus("g", 6, manifest, outdir, out, sizeof out), 0);
    snprintf(crash, sizeof crash, "%s/g/crashme.wav", c.dir);
    CU_ASSERT_EQUAL_FATAL(th_make_tone(crash, 440, 0.3, 1.0, 16000, 1), 0);
    CU_ASSERT_EQUAL_FATAL(th_sh("echo 'file://%s' >> '%s'", crash, manifest), 0);
    struct th_uris u;
    CU_ASSERT_EQUAL_FATAL(th_uris_load(manifest, &u), 0);
    CU_ASSERT_EQUAL(u.n, 7);
    int restarts0 = c.restarts;
    CU_ASSERT_EQUAL_FATAL(th_cluster_submit(&c, manifest, out, 2), 0);
    CU_ASSERT_EQUAL(th_cluster_wait(&c, st, out, TH_CLUSTER_WAIT_MS, supervise_tick, NULL), 0);
    th_cluster_supervise(&c);
    CU_ASSERT_TRUE(c.restarts - restarts0 >= 2); /* each of the 2 attempts killed a worker */
    CU_ASSERT_EQUAL(th_manifest_check(st, out, c.batch, &u), 0);
    CU_ASSERT_EQUAL(th_count_json(outdir), (int)u.n);
    int bad = 0;
    for (size_t i = 0; i < u.n; i++) {
        json_t *r = th_record_get(st, out, c.batch, u.v[i]);
        if (strstr(u.v[i], "crashme")) {
            bad += th_record_check_failed(r, u.v[i], "EM_E_CRASH", NULL);
            /* the coordinator wrote it: it names the worker of the last attempt and the
             * model that worker announced ("none": these workers have no model), never the
             * batch's requested model, which no worker ran (issue 10, item 14) */
            CU_ASSERT_STRING_EQUAL(th_jstr(r, "worker", NULL), "coordinator");
            CU_ASSERT_STRING_EQUAL(th_jstr(r, "producer", "model"), "none");
            const char *lw = th_jstr(r, "error", "last_worker");
            CU_ASSERT_TRUE(strcmp(lw, "w0") == 0 || strcmp(lw, "w1") == 0);
        } else
            bad += th_record_check_ok(r, u.v[i], c.batch);
        json_decref(r);
    }
    CU_ASSERT_EQUAL(bad, 0);
    th_uris_free(&u);
    CU_ASSERT_EQUAL(th_cluster_sanitizer_reports(&c), 0);
}

static CU_TestInfo tests[] = {
    {"worker_killed_mid_task", worker_killed_mid_task},
    {"coordinator_killed_and_restarted", coordinator_killed_and_restarted},
    {"crashing_input_is_quarantined", crashing_input_is_quarantined},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_it_faults = {"it_faults", init, clean, NULL, NULL, tests};
