/* tests/integration/test_it_hostile.c - a hostile network and a failing object store, on a
 * real cluster (redis-server, coordinator, two workers) writing to SeaweedFS over S3
 * (SeaweedFS keeps its data on disk, so it can be stopped and restarted mid-batch).
 *   e. peers that connect to the coordinator's port (a raw ZeroMQ DEALER and a raw TCP
 *      socket) and send garbage, wrong-version, multi-frame and oversized frames: the
 *      coordinator counts them (/metrics) and drops them, and the batch completes;
 *   f. the S3 server is stopped for a few seconds mid-batch and restarted on the same port:
 *      nothing is lost, every item's record is there at the end, status ok;
 *   g. while a batch runs, one client trickles a request to the coordinator's HTTP port a
 *      byte at a time and 30 more hold idle connections: every other GET /metrics is
 *      answered within SLOW_BOUND_MS and the batch completes.
 * Workers run with the test-only EARMARK_FAULT_DELAY_MS so the batch is still running when
 * the fault hits. */
#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#include "common/clock.h"
#include "common/id.h"
#include "proto/wire.h"
#include "tests/helpers/clips.h"
#include "tests/helpers/cluster.h"
#include "tests/helpers/peer.h"
#include "tests/helpers/proc.h"

#define BUCKET "earmark-hostile"
#define AK "earmark-test-ak"
#define SK "earmark-test-sk"
#define OUTAGE_MS 4000

static struct th_cluster c;
static struct th_server s3;
static struct em_storage *st;

static int clean(void)
{
    th_cluster_stop_storage(&c, &st);
    th_server_stop(&s3);
    th_s3_env_restore();
    return 0;
}

static int start(void)
{
    if (th_weed_start(&s3, AK, SK) != 0) return 1;
    if (th_s3_mkbucket(&s3, BUCKET, AK, SK) != 0) return 1;
    th_s3_env_set(s3.endpoint, AK, SK);
    struct th_cluster_opts o = {
        .workers = 2,
        .threads = 1,
        .worker_env = {"EARMARK_FAULT_DELAY_MS=200", NULL},
    };
    struct em_storage_opts so = em_storage_opts_default();
    so.retries = 1; /* the test's own reads should not hide an outage */
    return th_cluster_start_storage(&c, &o, &so, &st) != 0;
}

static int init(void) { return th_suite_init(start, clean); }

static int corpus(const char *name, int n, char *manifest, size_t cap)
{
    char d[700];
    snprintf(d, sizeof d, "%s/%s", c.dir, name);
    snprintf(manifest, cap, "%s/manifest.txt", d);
    return th_make_corpus(d, n, 0);
}

static void check_all_ok(const struct th_uris *u, const char *out)
{
    CU_ASSERT_EQUAL(th_manifest_check(st, out, c.batch, u), 0);
    CU_ASSERT_EQUAL(th_records_check_ok(st, out, c.batch, u), 0);
}

/* ---- e ---- */

struct hostile {
    int sent;      /* garbage rounds sent */
    int tcp_ok;    /* the raw TCP peer connected and wrote */
};

/* Raw TCP: connects and writes bytes that are not a ZMTP greeting. */
static int raw_tcp_garbage(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = 0;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        static const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n\xff\x00\x01\x02garbage";
        ok = write(fd, junk, sizeof junk) == (ssize_t)sizeof junk;
        uint8_t big[65536];
        for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)(i * 131u + 7u);
        for (int k = 0; k < 8; k++)
            if (write(fd, big, sizeof big) < 0) break; /* the peer may hang up: fine */
    }
    close(fd);
    return ok;
}

/* A raw DEALER that speaks ZMTP but sends frames no Envelope decodes from. It holds a
 * worker key (an authenticated peer gone bad): garbage must still be dropped. */
static int dealer_garbage(const char *ep)
{
    struct th_peer p;
    int sent = 0;
    if (th_peer_open(&p, ep, &c.worker_pair, c.coord_pub, "intruder") == 0) {
        void *d = p.sock;
        int linger = 2000;
        zmq_setsockopt(d, ZMQ_LINGER, &linger, sizeof linger);
        static const char junk[] = "\xff\xfe not a protobuf \x01";
        sent += zmq_send(d, junk, sizeof junk, 0) >= 0;
        uint8_t *b = NULL;
        size_t n = 0;
        if (em_wire_ready(1000, &b, &n, NULL) == EM_OK) {
            b[1] = 99; /* Envelope.version 99 */
            sent += zmq_send(d, b, n, 0) >= 0;
            free(b);
        }
        sent += zmq_send(d, "a", 1, ZMQ_SNDMORE) >= 0 && zmq_send(d, "b", 1, 0) >= 0;
        sent += zmq_send(d, "", 0, 0) >= 0;
        size_t big = 4u * 1024u * 1024u; /* over EM_WIRE_MAX_FRAME */
        char *huge = malloc(big);
        if (huge) {
            memset(huge, 'x', big);
            sent += zmq_send(d, huge, big, 0) >= 0;
            free(huge);
        }
    }
    th_peer_close(&p); /* linger lets the frames go out */
    return sent;
}

static void hostile_tick(struct th_cluster *cl, void *arg)
{
    struct hostile *h = arg;
    if (h->sent >= 3) return;
    h->sent++;
    h->tcp_ok += raw_tcp_garbage(cl->coord_port);
    dealer_garbage(cl->coord_ep);
}

static void garbage_peers_are_dropped(void)
{
    char manifest[760], out[200];
    CU_ASSERT_EQUAL_FATAL(corpus("e", 12, manifest, sizeof manifest), 0);
    snprintf(out, sizeof out, "s3://%s/e", BUCKET);
    struct th_uris u;
    CU_ASSERT_EQUAL_FATAL(th_uris_load(manifest, &u), 0);
    CU_ASSERT_EQUAL_FATAL(th_cluster_submit(&c, manifest, out, 3), 0);
    struct hostile h = {0};
    CU_ASSERT_EQUAL(th_cluster_wait(&c, st, out, TH_CLUSTER_WAIT_MS, hostile_tick, &h), 0);
    CU_ASSERT_TRUE(h.sent >= 1);
    CU_ASSERT_TRUE(h.tcp_ok >= 1);
    double dropped = th_cluster_metric(&c, "frames_dropped");
    fprintf(stderr, "\n  coordinator frames dropped: %.0f\n", dropped);
    CU_ASSERT_TRUE(dropped > 0);
    check_all_ok(&u, out);
    th_uris_free(&u);
    CU_ASSERT_EQUAL(th_cluster_sanitizer_reports(&c), 0);
}

/* ---- f ---- */

struct outage {
    const char *probe; /* the first item's URI: its record means the batch is under way */
    const char *last;  /* the last item's URI */
    const char *out;
    int paused, resumed, mid;
};


static void outage_tick(struct th_cluster *cl, void *arg)
{
    struct outage *o = arg;
    if (o->paused || !th_record_exists(st, o->out, cl->batch, o->probe)) return;
    /* the batch must not be finished when the store goes down */
    o->mid = !th_record_exists(st, o->out, cl->batch, o->last);
    th_server_pause(&s3);
    o->paused = 1;
    em_sleep_ms(OUTAGE_MS);
    o->resumed = th_server_resume(&s3) == 0;
}

static void s3_outage_loses_nothing(void)
{
    char manifest[760], out[200];
    CU_ASSERT_EQUAL_FATAL(corpus("f", 16, manifest, sizeof manifest), 0);
    snprintf(out, sizeof out, "s3://%s/f", BUCKET);
    struct th_uris u;
    CU_ASSERT_EQUAL_FATAL(th_uris_load(manifest, &u), 0);
    CU_ASSERT_TRUE_FATAL(u.n >= 2);
    /* attempts enough to outlast the outage with the fast test backoff */
    CU_ASSERT_EQUAL_FATAL(th_cluster_submit(&c, manifest, out, 25), 0);
    struct outage o = {.probe = u.v[0], .last = u.v[u.n - 1], .out = out};
    CU_ASSERT_EQUAL(th_cluster_wait(&c, st, out, TH_CLUSTER_WAIT_MS, outage_tick, &o), 0);
    CU_ASSERT_TRUE(o.paused);
    CU_ASSERT_TRUE(o.resumed);
    CU_ASSERT_TRUE(o.mid);
    check_all_ok(&u, out);
    th_uris_free(&u);
    CU_ASSERT_EQUAL(th_cluster_sanitizer_reports(&c), 0);
}

/* ---- g ---- */

#define SLOW_BOUND_MS 1000
#define SLOW_IDLE 34

/* The abusive clients come from 127.0.0.1, the scraper from 127.0.0.2 (another host, as
 * Prometheus is; one address may hold at most EM_HTTPD_MAX_PER_IP connections).
 * 1 when GET /metrics got a 200 within SLOW_BOUND_MS (*ms: how long). */
static int timed_get(double *ms)
{
    char buf[256];
    return th_http_exchange("127.0.0.2", c.metrics_port,
                            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                            buf, sizeof buf, SLOW_BOUND_MS, ms) == 200 &&
           *ms <= SLOW_BOUND_MS;
}

struct slow {
    int loris, idle[SLOW_IDLE];
    int gets, late;
    double worst;
    size_t sent;
};

static void slow_tick(struct th_cluster *cl, void *arg)
{
    (void)cl;
    struct slow *s = arg;
    static const char head[] = "GET /metrics HTTP/1.1\r\nHost: a-very-slow-client\r\n";
    if (s->loris < 0) {
        s->loris = th_dial_from("127.0.0.1", c.metrics_port);
        for (int i = 0; i < SLOW_IDLE; i++) s->idle[i] = th_dial_from("127.0.0.1", c.metrics_port);
    }
    if (s->loris >= 0 && s->sent < sizeof head - 1 && write(s->loris, head + s->sent, 1) == 1)
        s->sent++;
    double ms;
    s->gets++;
    if (!timed_get(&ms)) s->late++;
    if (ms > s->worst) s->worst = ms;
}

/* Bug: the hand-written /metrics server served one connection at a time: a byte every 1.5 s
 * held it for 20 s, and 34 idle connections made a GET take 36 s. */
static void slow_metrics_clients_delay_nothing(void)
{
    char manifest[760], out[200];
    CU_ASSERT_EQUAL_FATAL(corpus("g", 12, manifest, sizeof manifest), 0);
    snprintf(out, sizeof out, "s3://%s/g", BUCKET);
    struct th_uris u;
    CU_ASSERT_EQUAL_FATAL(th_uris_load(manifest, &u), 0);
    CU_ASSERT_EQUAL_FATAL(th_cluster_submit(&c, manifest, out, 3), 0);
    struct slow s = {.loris = -1};
    CU_ASSERT_EQUAL(th_cluster_wait(&c, st, out, TH_CLUSTER_WAIT_MS, slow_tick, &s), 0);
    fprintf(stderr, "\n  %d GETs beside 1 slow + %d idle clients: slowest %.1f ms, %d late\n",
            s.gets, SLOW_IDLE, s.worst, s.late);
    CU_ASSERT_TRUE(s.loris >= 0);
    CU_ASSERT_TRUE(s.sent >= 1);
    CU_ASSERT_TRUE(s.gets >= 3);
    CU_ASSERT_EQUAL(s.late, 0);
    check_all_ok(&u, out);
    if (s.loris >= 0) close(s.loris);
    for (int i = 0; i < SLOW_IDLE; i++)
        if (s.loris >= 0 && s.idle[i] >= 0) close(s.idle[i]);
    th_uris_free(&u);
    CU_ASSERT_EQUAL(th_cluster_sanitizer_reports(&c), 0);
}

static CU_TestInfo tests[] = {
    {"garbage_peers_are_dropped", garbage_peers_are_dropped},
    {"s3_outage_loses_nothing", s3_outage_loses_nothing},
    {"slow_metrics_clients_delay_nothing", slow_metrics_clients_delay_nothing},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_it_hostile = {"it_hostile", init, clean, NULL, NULL, tests};
