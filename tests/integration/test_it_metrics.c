/* tests/integration/test_it_metrics.c - the fleet's HTTP endpoints, as an operator's tools
 * see them: a coordinator and two workers running the embedded demo model (with
 * --metrics), a batch with good and undecodable clips, then tests/deploy/prom_scrape.py
 * (promtool check metrics on every endpoint, a real Prometheus scraping all three and its
 * HTTP API asked for every family, the dashboard's and alerts' names and queries); and
 * /readyz following what readiness means: Redis for the coordinator, a coordinator for a
 * worker. Waits are bounded; nothing asserts on timing. */
#include <CUnit/CUnit.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "tests/helpers/clips.h"
#include "tests/helpers/cluster.h"
#include "tests/helpers/proc.h"

#define N_CLIPS 4
#define READY_WAIT_MS 30000 /* bound on /readyz changing after its cause did */
#define SCRAPE_TIMEOUT_S 300

static struct th_cluster c;
static struct em_storage *st;
static char model_env[700];

static int start(void)
{
    char model[600];
    if (th_tmpdir(model, sizeof model - 8) != 0) return -1;
    strcat(model, "/m");
    if (th_make_demo_model(model, NULL) != 0) return -1;
    snprintf(model_env, sizeof model_env, "EARMARK_MODEL=%s", model);
    struct th_cluster_opts o = {.workers = 2, .worker_metrics = true};
    o.worker_env[0] = model_env;
    o.coord_env[0] = "EARMARK_STALL_MS=1000"; /* batch_stall_reported */
    return th_cluster_start_storage(&c, &o, NULL, &st);
}
static int clean(void)
{
    th_cluster_stop_storage(&c, &st);
    if (model_env[0]) th_sh("rm -rf \"$(dirname '%s')\"", model_env + strlen("EARMARK_MODEL="));
    return 0;
}
static int init(void) { return th_suite_init(start, clean); }

/* 1 when GET http://127.0.0.1:port/path answers 2xx. */
static int http_ok(int port, const char *path)
{
    return th_sh("curl -sf -m 5 -o /dev/null 'http://127.0.0.1:%d%s'", port, path) == 0;
}

/* Polls until /readyz on port says want (1 ready, 0 not); 0 when it did. */
static int wait_ready(int port, int want)
{
    for (int64_t until = em_now_ms() + READY_WAIT_MS; em_now_ms() < until; em_sleep_ms(200))
        if (http_ok(port, "/readyz") == want) return 0;
    fprintf(stderr, "\n/readyz on port %d did not become %s\n", port, want ? "ready" : "unready");
    return -1;
}

static void fleet_scraped_by_prometheus(void)
{
    char corpus[700], manifest[760], out[760];
    snprintf(corpus, sizeof corpus, "%s/corpus", c.dir);
    snprintf(manifest, sizeof manifest, "%s/manifest.txt", corpus);
    snprintf(out, sizeof out, "file://%s/out", c.dir);
    CU_ASSERT_EQUAL_FATAL(th_make_corpus(corpus, N_CLIPS, 1), 0);
    CU_ASSERT_EQUAL_FATAL(th_cluster_submit(&c, manifest, out, 2), 0);
    CU_ASSERT_EQUAL_FATAL(th_cluster_wait(&c, st, out, TH_CLUSTER_WAIT_MS, NULL, NULL), 0);
    CU_ASSERT_EQUAL(th_sh("timeout %d python3 '%s/tests/deploy/prom_scrape.py' %d %d %d",
                          SCRAPE_TIMEOUT_S, th_root(), c.metrics_port, c.worker_metrics_port[0],
                          c.worker_metrics_port[1]),
                    0);
    CU_ASSERT_EQUAL(th_cluster_sanitizer_reports(&c), 0);
}

static void coordinator_ready_follows_redis(void)
{
    CU_ASSERT_EQUAL_FATAL(wait_ready(c.metrics_port, 1), 0);
    th_server_pause(&c.redis);
    CU_ASSERT_EQUAL(wait_ready(c.metrics_port, 0), 0);
    CU_ASSERT(http_ok(c.metrics_port, "/healthz")); /* alive, only not ready */
    CU_ASSERT_EQUAL(th_sh("curl -s -m 5 'http://127.0.0.1:%d/metrics' | "
                          "grep -qx 'earmark_redis_up 0'",
                          c.metrics_port),
                    0);
    CU_ASSERT_EQUAL_FATAL(th_server_resume(&c.redis), 0);
    CU_ASSERT_EQUAL(wait_ready(c.metrics_port, 1), 0);
}

static void worker_ready_follows_coordinator(void)
{
    int port = c.worker_metrics_port[0];
    CU_ASSERT_EQUAL_FATAL(wait_ready(port, 1), 0);
    th_cluster_coord_kill(&c, SIGKILL);
    CU_ASSERT_EQUAL(wait_ready(port, 0), 0);
    CU_ASSERT(http_ok(port, "/healthz"));
    CU_ASSERT_EQUAL_FATAL(th_cluster_coord_start(&c), 0);
    CU_ASSERT_EQUAL(wait_ready(port, 1), 0);
}

/* 0 when the coordinator's /metrics has a line starting with prefix (and, when want is not
 * NULL, ending with it) within READY_WAIT_MS; absent = 1: 0 when no such line appears. */
static int wait_metric_line(const char *prefix, const char *want, int absent)
{
    for (int64_t until = em_now_ms() + READY_WAIT_MS; em_now_ms() < until; em_sleep_ms(200)) {
        int rc = th_sh("curl -s -m 5 'http://127.0.0.1:%d/metrics' | "
                       "grep -F '%s' | grep -q -- '%s$'",
                       c.metrics_port, prefix, want ? want : "");
        if ((rc == 0) != absent) return 0;
    }
    th_sh("curl -s -m 5 'http://127.0.0.1:%d/metrics' | grep earmark_batch >&2", c.metrics_port);
    fprintf(stderr, "\n/metrics: '%s...%s' %s\n", prefix, want ? want : "",
            absent ? "still there" : "never appeared");
    return -1;
}

static void batch_stall_reported(void)
{
    char manifest[760], out[760], line[200];
    snprintf(manifest, sizeof manifest, "%s/corpus/manifest.txt", c.dir);
    snprintf(out, sizeof out, "file://%s/out-stall", c.dir);
    for (int i = 0; i < c.nworkers; i++) th_cluster_worker_kill(&c, i, SIGKILL);
    CU_ASSERT_EQUAL_FATAL(th_cluster_submit(&c, manifest, out, 2), 0);
    snprintf(line, sizeof line, "earmark_batch_stalled{batch=\"%s\",reason=\"no_workers\"}",
             c.batch);
    CU_ASSERT_EQUAL(wait_metric_line(line, " 1", 0), 0);
    snprintf(line, sizeof line, "earmark_batch_items{batch=\"%s\",state=\"total\"}", c.batch);
    CU_ASSERT_EQUAL(wait_metric_line(line, NULL, 0), 0);
    for (int i = 0; i < c.nworkers; i++) CU_ASSERT_EQUAL(th_cluster_worker_start(&c, i), 0);
    CU_ASSERT_EQUAL_FATAL(th_cluster_wait(&c, st, out, TH_CLUSTER_WAIT_MS, NULL, NULL), 0);
    snprintf(line, sizeof line, "earmark_batch_stalled{batch=\"%s\"", c.batch);
    CU_ASSERT_EQUAL(wait_metric_line(line, NULL, 1), 0); /* complete: no longer exported */
}

static CU_TestInfo tests[] = {
    {"fleet_scraped_by_prometheus", fleet_scraped_by_prometheus},
    {"batch_stall_reported", batch_stall_reported},
    {"coordinator_ready_follows_redis", coordinator_ready_follows_redis},
    {"worker_ready_follows_coordinator", worker_ready_follows_coordinator},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_it_metrics = {"it_metrics", init, clean, NULL, NULL, tests};
