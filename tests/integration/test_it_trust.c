/* tests/integration/test_it_trust.c - trust boundaries of the coordinator's port, on a real
 * cluster (redis-server, a CURVE coordinator, one real worker "w0"; file:// output) and
 * hand-driven libzmq peers (tests/helpers/peer.h) playing the attacker:
 *   a. a plain DEALER (no keys) and one with a key not in the allow list ask for tasks:
 *      neither gets one, refusals are counted, the batch completes on w0; a coordinator
 *      bound beyond loopback without CURVE, or given a secret key others can read, refuses
 *      to start and says why;
 *   b. a Result forged by a peer the task was not sent to (even with the stolen lease token)
 *      and one without the token are refused; the item completes on w0;
 *   c. a replayed Result and a Result for an item waiting for a retry are refused; the item
 *      completes on w0 with a fresh attempt;
 *   d. a peer claiming w0's id while w0 is connected is refused: it gets no task, w0 serves
 *      the batch, earmark_workers stays 1;
 *   e. Goodbye: a peer that said goodbye is sent nothing though it had credits; w0 SIGTERMed
 *      says goodbye (counted and logged by the coordinator).
 * Each attack is shown to fail by what the attacker gets (nothing) and by the item's record
 * (written by w0, ok) and manifest line. Nothing asserts on timing. */
#include <CUnit/CUnit.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "tests/helpers/clips.h"
#include "tests/helpers/cluster.h"
#include "tests/helpers/peer.h"
#include "tests/helpers/proc.h"

#define WAIT_MS 30000 /* bound on one expected message or counter */
#define DROPS "earmark_frames_dropped_total"

static struct th_cluster c;
static struct em_storage *st;

static int clean(void)
{
    th_cluster_stop_storage(&c, &st);
    return 0;
}

static int start(void)
{
    struct th_cluster_opts o = {.workers = 1, .threads = 1};
    return th_cluster_start_storage(&c, &o, NULL, &st) != 0;
}

static int init(void) { return th_suite_init(start, clean); }


/* Waits until metric (exact name, label) reaches at least want. */
static int wait_metric(const char *name, const char *label, double want)
{
    int64_t until = em_now_ms() + WAIT_MS;
    while (em_now_ms() < until) {
        if (th_cluster_metric_exact(&c, name, label) >= want) return 0;
        em_sleep_ms(100);
    }
    fprintf(stderr, "\n  %s{%s} stayed below %.0f\n", name, label ? label : "", want);
    return -1;
}

static double drops(const char *reason)
{
    char l[64];
    snprintf(l, sizeof l, "reason=\"%s\"", reason);
    return th_cluster_metric_exact(&c, DROPS, l);
}

static int wait_drops(const char *reason, double want)
{
    char l[64];
    snprintf(l, sizeof l, "reason=\"%s\"", reason);
    return wait_metric(DROPS, l, want);
}

/* Every item ok in the manifest and in its record, and the record of uri written by w0. */
static void check_done_by_w0(const struct th_uris *u, const char *out, const char *uri)
{
    CU_ASSERT_EQUAL(th_manifest_check(st, out, c.batch, u), 0);
    CU_ASSERT_EQUAL(th_records_check_ok(st, out, c.batch, u), 0);
    if (!uri) return;
    json_t *rec = th_record_get(st, out, c.batch, uri);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rec);
    CU_ASSERT_STRING_EQUAL(th_jstr(rec, "worker", NULL), "w0");
    json_decref(rec);
}

/* The source URI of a task's item (its record is looked up by URI). */
static const char *uri_of(const struct th_uris *u, const Earmark__Task *t)
{
    for (size_t i = 0; i < u->n; i++)
        if (strcmp(u->v[i], t->source) == 0) return u->v[i];
    return NULL;
}

/* Stops w0 (it drains and says goodbye), so that the peers of a test are sent tasks. */
static void stop_w0(void) { th_cluster_worker_kill(&c, 0, SIGTERM); }

static void start_w0(void) { CU_ASSERT_EQUAL(th_cluster_worker_start(&c, 0), 0); }

/* ---- a ---- */

struct peers {
    struct th_peer *p[4];
    int n;
};

/* Keeps the peers talking (hello + heartbeats) and counts what they receive. */
static void peers_tick(struct th_cluster *cl, void *arg)
{
    (void)cl;
    struct peers *ps = arg;
    for (int i = 0; i < ps->n; i++) {
        Earmark__Envelope *e;
        while ((e = th_peer_recv(ps->p[i], 0))) em_wire_free(e);
        th_peer_heartbeat(ps->p[i]);
    }
}

static void no_key_no_task(void)
{
    char manifest[760], out[760], keyp[700];
    CU_ASSERT_EQUAL_FATAL(th_cluster_corpus(&c, "a", 6, manifest, out, sizeof manifest), 0);
    /* a key pair of its own, unknown to the coordinator */
    snprintf(keyp, sizeof keyp, "%s/stranger", c.dir);
    CU_ASSERT_EQUAL_FATAL(em_curve_keygen(keyp, NULL), EM_OK);
    struct em_curve_pair stranger;
    snprintf(keyp, sizeof keyp, "%s/stranger.key", c.dir);
    CU_ASSERT_EQUAL_FATAL(em_curve_load_pair(keyp, &stranger, NULL), EM_OK);
    double refused0 = th_cluster_metric_exact(&c, "earmark_auth_refused_total", NULL);

    struct th_peer plain, unknown;
    CU_ASSERT_EQUAL_FATAL(th_peer_open(&plain, c.coord_ep, NULL, NULL, "plain"), 0);
    CU_ASSERT_EQUAL_FATAL(th_peer_open(&unknown, c.coord_ep, &stranger, c.coord_pub, NULL), 0);
    th_peer_hello_ready(&plain, "plain", 64);
    th_peer_hello_ready(&unknown, "unknown", 64);
    /* both were turned away at the handshake before any item exists */
    CU_ASSERT_EQUAL(wait_metric("earmark_auth_refused_total", NULL, refused0 + 2), 0);

    struct th_uris u;
    CU_ASSERT_EQUAL_FATAL(th_uris_load(manifest, &u), 0);
    CU_ASSERT_EQUAL_FATAL(th_cluster_submit(&c, manifest, out, 3), 0);
    struct peers ps = {{&plain, &unknown}, 2};
    CU_ASSERT_EQUAL(th_cluster_wait(&c, st, out, TH_CLUSTER_WAIT_MS, peers_tick, &ps), 0);
    CU_ASSERT_EQUAL(plain.tasks, 0);
    CU_ASSERT_EQUAL(unknown.tasks, 0);
    fprintf(stderr, "\n  handshakes refused: %.0f\n",
            th_cluster_metric_exact(&c, "earmark_auth_refused_total", NULL));
    check_done_by_w0(&u, out, u.v[0]);
    th_uris_free(&u);
    th_peer_close(&plain);
    th_peer_close(&unknown);
}

/* Runs `earmark coordinator ARGS` (shell words), which must exit 2 or 1 at once with a
 * message containing want. */
static void coordinator_refuses(const char *args, const char *want)
{
    char log[700];
    snprintf(log, sizeof log, "%s/refuse.log", c.dir);
    int rc = th_sh("timeout 20 '%s' coordinator --redis '%s' %s > '%s' 2>&1", th_bin(), c.redis.url,
                   args, log);
    CU_ASSERT_TRUE(rc == 1 || rc == 2);
    char *text = th_slurp(log, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    if (!strstr(text, want)) fprintf(stderr, "\n  expected '%s' in: %s\n", want, text);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, want));
    free(text);
}

static void insecure_setups_refused(void)
{
    char args[2400];
    int port = th_free_port();
    snprintf(args, sizeof args, "--bind tcp://0.0.0.0:%d", port);
    coordinator_refuses(args, "--insecure");
    /* a secret key readable by others */
    CU_ASSERT_EQUAL_FATAL(th_sh("cp '%s/coord.key' '%s/loose.key' && chmod 644 '%s/loose.key'",
                                c.keys, c.dir, c.dir),
                          0);
    snprintf(args, sizeof args, "--bind tcp://0.0.0.0:%d --curve-secret '%s/loose.key' "
                                "--allow-keys '%s/allowed'",
             port, c.dir, c.keys);
    coordinator_refuses(args, "chmod 600");
    /* and the worker side of the same mistake */
    char log[700];
    snprintf(log, sizeof log, "%s/refuse-worker.log", c.dir);
    int rc = th_sh("timeout 20 '%s' worker --connect %s --curve-key '%s/loose.key' "
                   "--coordinator-key '%s/coord.pub' > '%s' 2>&1",
                   th_bin(), c.coord_ep, c.dir, c.keys, log);
    CU_ASSERT_EQUAL(rc, 2);
    char *text = th_slurp(log, NULL);
    CU_ASSERT_PTR_NOT_NULL(text && strstr(text, "chmod 600"));
    free(text);
}

/* ---- b, c ---- */

/* The stage of b and c: w0 stopped, two authenticated peers - a holder with one credit and
 * another with none - and a corpus of 3 submitted. Returns the task the holder was sent
 * (caller frees), or NULL. */
static Earmark__Envelope *holder_gets_a_task(const char *name, struct th_peer *holder,
                                             struct th_peer *other, struct th_uris *u,
                                             char *out, size_t cap)
{
    char manifest[760], hid[64], oid[64];
    if (th_cluster_corpus(&c, name, 3, manifest, out, cap) != 0) return NULL;
    stop_w0();
    if (th_peer_open(holder, c.coord_ep, &c.worker_pair, c.coord_pub, NULL) != 0 ||
        th_peer_open(other, c.coord_ep, &c.worker_pair, c.coord_pub, NULL) != 0)
        return NULL;
    snprintf(hid, sizeof hid, "holder-%s", name);
    snprintf(oid, sizeof oid, "other-%s", name);
    th_peer_hello_ready(holder, hid, 1);
    th_peer_hello_ready(other, oid, 0);
    if (th_uris_load(manifest, u) != 0) return NULL;
    if (th_cluster_submit(&c, manifest, out, 3) != 0) return NULL;
    return th_peer_expect(holder, EARMARK__ENVELOPE__BODY_TASK, WAIT_MS);
}

static void forged_result_refused(void)
{
    char out[760];
    struct th_peer holder, forger;
    struct th_uris u = {0};
    Earmark__Envelope *t = holder_gets_a_task("b", &holder, &forger, &u, out, sizeof out);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(strlen(t->task->lease_token), 32);
    double wp = drops("wrong_peer"), bt = drops("bad_token");
    /* the forger even knows the token: it is still not the peer the task went to */
    th_peer_result(&forger, t->task, true, false, t->task->lease_token);
    th_peer_result(&forger, t->task, true, false, NULL);
    CU_ASSERT_EQUAL(wait_drops("wrong_peer", wp + 2), 0);
    /* the holder without the token (a stale or guessed result) */
    th_peer_result(&holder, t->task, true, false, "0123456789abcdef0123456789abcdef");
    CU_ASSERT_EQUAL(wait_drops("bad_token", bt + 1), 0);
    /* the holder vanishes; w0 comes back and the item completes there */
    th_peer_close(&holder);
    th_peer_close(&forger);
    start_w0();
    CU_ASSERT_EQUAL(th_cluster_wait(&c, st, out, TH_CLUSTER_WAIT_MS, NULL, NULL), 0);
    check_done_by_w0(&u, out, uri_of(&u, t->task));
    em_wire_free(t);
    th_uris_free(&u);
}

static void replayed_and_retry_wait_results_refused(void)
{
    char out[760];
    struct th_peer holder, third;
    struct th_uris u = {0};
    Earmark__Envelope *t = holder_gets_a_task("c", &holder, &third, &u, out, sizeof out);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    double retried = th_cluster_metric_exact(&c, "earmark_items_retried_total", NULL);
    double nl = drops("no_lease");
    /* a genuine retryable failure: accepted, the item now waits for a retry (no worker has
     * a credit, so it keeps waiting) */
    th_peer_result(&holder, t->task, false, true, t->task->lease_token);
    CU_ASSERT_EQUAL(wait_metric("earmark_items_retried_total", NULL, retried + 1), 0);
    /* replays of that answered attempt, and a third peer's ok, settle nothing */
    th_peer_result(&holder, t->task, false, true, t->task->lease_token);
    th_peer_result(&holder, t->task, true, false, t->task->lease_token);
    th_peer_result(&third, t->task, true, false, t->task->lease_token);
    CU_ASSERT_EQUAL(wait_drops("no_lease", nl + 3), 0);
    th_peer_close(&holder);
    th_peer_close(&third);
    start_w0();
    CU_ASSERT_EQUAL(th_cluster_wait(&c, st, out, TH_CLUSTER_WAIT_MS, NULL, NULL), 0);
    const char *uri = uri_of(&u, t->task);
    check_done_by_w0(&u, out, uri);
    json_t *rec = uri ? th_record_get(st, out, c.batch, uri) : NULL;
    CU_ASSERT_PTR_NOT_NULL(rec);
    if (rec) { /* a fresh attempt, not the refused ones */
        CU_ASSERT_TRUE(json_integer_value(json_object_get(rec, "attempt")) >= 2);
        json_decref(rec);
    }
    em_wire_free(t);
    th_uris_free(&u);
}

/* ---- d ---- */

static void id_clash_leaves_real_worker_serving(void)
{
    char manifest[760], out[760];
    CU_ASSERT_EQUAL_FATAL(th_cluster_corpus(&c, "d", 8, manifest, out, sizeof manifest), 0);
    /* w0 is in, and the peers of earlier tests are gone */
    int64_t until = em_now_ms() + WAIT_MS;
    while (th_cluster_metric_exact(&c, "earmark_workers", NULL) != 1 && em_now_ms() < until)
        em_sleep_ms(100);
    CU_ASSERT_EQUAL_FATAL(th_cluster_metric_exact(&c, "earmark_workers", NULL), 1);
    double clash = drops("id_clash");
    struct th_peer imp;
    /* same worker id in Hello, and the same ZeroMQ routing id for good measure */
    CU_ASSERT_EQUAL_FATAL(th_peer_open(&imp, c.coord_ep, &c.worker_pair, c.coord_pub, "w0"), 0);
    th_peer_hello_ready(&imp, "w0", 64);
    CU_ASSERT_EQUAL(wait_drops("id_clash", clash + 1), 0);
    CU_ASSERT_EQUAL(th_cluster_metric_exact(&c, "earmark_workers", NULL), 1);
    struct th_uris u;
    CU_ASSERT_EQUAL_FATAL(th_uris_load(manifest, &u), 0);
    CU_ASSERT_EQUAL_FATAL(th_cluster_submit(&c, manifest, out, 3), 0);
    struct peers ps = {{&imp}, 1};
    CU_ASSERT_EQUAL(th_cluster_wait(&c, st, out, TH_CLUSTER_WAIT_MS, peers_tick, &ps), 0);
    CU_ASSERT_EQUAL(imp.tasks, 0);
    CU_ASSERT_EQUAL(th_cluster_metric_exact(&c, "earmark_workers", NULL), 1);
    for (size_t i = 0; i < u.n; i++) check_done_by_w0(&u, out, u.v[i]);
    th_uris_free(&u);
    th_peer_close(&imp);
}

/* ---- e ---- */

static void goodbye_stops_dispatch(void)
{
    char manifest[760], out[760];
    CU_ASSERT_EQUAL_FATAL(th_cluster_corpus(&c, "e", 4, manifest, out, sizeof manifest), 0);
    double bye = th_cluster_metric_exact(&c, "earmark_worker_goodbyes_total", NULL);
    /* a peer offers credits, then says goodbye as a draining worker does */
    struct th_peer p;
    CU_ASSERT_EQUAL_FATAL(th_peer_open(&p, c.coord_ep, &c.worker_pair, c.coord_pub, NULL), 0);
    th_peer_hello_ready(&p, "leaving", 16);
    uint8_t *b = NULL;
    size_t n = 0;
    em_err rc = em_wire_goodbye("draining", &b, &n, NULL);
    CU_ASSERT_EQUAL(th_peer_send(&p, rc, b, n), 0);
    CU_ASSERT_EQUAL(wait_metric("earmark_worker_goodbyes_total", NULL, bye + 1), 0);
    struct th_uris u;
    CU_ASSERT_EQUAL_FATAL(th_uris_load(manifest, &u), 0);
    CU_ASSERT_EQUAL_FATAL(th_cluster_submit(&c, manifest, out, 3), 0);
    struct peers ps = {{&p}, 1};
    CU_ASSERT_EQUAL(th_cluster_wait(&c, st, out, TH_CLUSTER_WAIT_MS, peers_tick, &ps), 0);
    CU_ASSERT_EQUAL(p.tasks, 0);
    check_done_by_w0(&u, out, u.v[0]);
    th_uris_free(&u);
    th_peer_close(&p);
    /* the real worker says goodbye on SIGTERM, and the coordinator logs it at once */
    stop_w0();
    CU_ASSERT_EQUAL(wait_metric("earmark_worker_goodbyes_total", NULL, bye + 2), 0);
    CU_ASSERT_EQUAL(th_sh("grep -q 'worker=w0 msg=\"goodbye' '%s'/coordinator-*.log", c.dir), 0);
    start_w0();
}

static void no_sanitizer_reports(void) { CU_ASSERT_EQUAL(th_cluster_sanitizer_reports(&c), 0); }

static CU_TestInfo tests[] = {
    {"no_key_no_task", no_key_no_task},
    {"insecure_setups_refused", insecure_setups_refused},
    {"forged_result_refused", forged_result_refused},
    {"replayed_and_retry_wait_results_refused", replayed_and_retry_wait_results_refused},
    {"id_clash_leaves_real_worker_serving", id_clash_leaves_real_worker_serving},
    {"goodbye_stops_dispatch", goodbye_stops_dispatch},
    {"no_sanitizer_reports", no_sanitizer_reports},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_it_trust = {"it_trust", init, clean, NULL, NULL, tests};
