/* tests/unit/test_httpd.c - common/httpd.c over real sockets: routing, read-only methods,
 * query arguments, the body cap, and the boundary the old hand-written server lost: one
 * slow client (a byte at a time) and dozens of idle connections must not delay anyone
 * else, and idle connections are closed after EM_HTTPD_TIMEOUT_S. */
#include <CUnit/CUnit.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/httpd.h"
#include "tests/helpers/proc.h"

#define ANSWER_MS 1000 /* another client is answered within this while the server is abused */

static struct em_httpd *h;
static int port;

static int hello(void *arg, const char *path, struct em_http_reply *r)
{
    const char *who = em_http_query(r, "who");
    em_http_printf(r, "%s %s %s\n", (const char *)arg, path, who ? who : "-");
    return 200;
}

static int huge(void *arg, const char *path, struct em_http_reply *r)
{
    (void)arg;
    (void)path;
    static char chunk[1 << 16];
    memset(chunk, 'x', sizeof chunk);
    for (unsigned i = 0; i <= EM_HTTPD_MAX_BODY / sizeof chunk; i++)
        em_http_write(r, chunk, sizeof chunk);
    return 200;
}

static int init(void)
{
    struct em_errbuf eb = {{0}};
    if (em_httpd_new(&h) != EM_OK) return 1;
    if (em_httpd_route(h, "/metrics", hello, "m", &eb) != EM_OK ||
        em_httpd_route(h, "/batches/", hello, "b", &eb) != EM_OK ||
        em_httpd_route(h, "/huge", huge, NULL, &eb) != EM_OK ||
        em_httpd_start(h, "--metrics", "127.0.0.1:0", &eb) != EM_OK) {
        fprintf(stderr, "httpd: %s\n", eb.msg);
        return 1;
    }
    port = em_httpd_port(h);
    return port <= 0;
}

static int clean(void)
{
    em_httpd_free(h);
    return 0;
}

static int dial(const char *src) { return th_dial_from(src, port); }

/* Sends req from src and reads the whole reply (Connection: close) into out; returns the
 * status code, or -1 when no complete reply came within timeout_ms. *ms gets the time. */
static int fetch(const char *src, const char *req, char *out, size_t cap, int timeout_ms,
                 double *ms)
{
    return th_http_exchange(src, port, req, out, cap, timeout_ms, ms);
}

#define GET(path) "GET " path " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

static void routes_match_exact_and_prefix(void)
{
    char buf[4096];
    CU_ASSERT_EQUAL(fetch("127.0.0.1", GET("/metrics"), buf, sizeof buf, 5000, NULL), 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "\r\n\r\nm /metrics -\n"));
    CU_ASSERT_EQUAL(fetch("127.0.0.1", GET("/metrics?who=prom%20one"), buf, sizeof buf, 5000,
                          NULL), 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "m /metrics prom one\n"));
    CU_ASSERT_EQUAL(fetch("127.0.0.1", GET("/batches/b-1"), buf, sizeof buf, 5000, NULL), 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "b /batches/b-1 -\n"));
    CU_ASSERT_EQUAL(fetch("127.0.0.1", GET("/metricsx"), buf, sizeof buf, 5000, NULL), 404);
    CU_ASSERT_EQUAL(fetch("127.0.0.1", GET("/batches"), buf, sizeof buf, 5000, NULL), 404);
    CU_ASSERT_EQUAL(fetch("127.0.0.1", GET("/"), buf, sizeof buf, 5000, NULL), 404);
}

static void writes_are_refused(void)
{
    char buf[4096];
    CU_ASSERT_EQUAL(fetch("127.0.0.1",
                          "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                          "Connection: close\r\n\r\nabc",
                          buf, sizeof buf, 5000, NULL),
                    405);
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "Allow: GET, HEAD"));
    CU_ASSERT_EQUAL(fetch("127.0.0.1", "DELETE /batches/b HTTP/1.1\r\nHost: x\r\n\r\n", buf,
                          sizeof buf, 5000, NULL),
                    405);
}

static void oversized_body_is_an_error_not_a_cut(void)
{
    static char buf[1 << 16];
    CU_ASSERT_EQUAL(fetch("127.0.0.1", GET("/huge"), buf, sizeof buf, 10000, NULL), 500);
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "exceeds"));
}

static void route_rules(void)
{
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL(em_httpd_route(h, "/late", hello, "x", &eb), EM_E_ARG); /* started */
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "after start"));
    struct em_httpd *o = NULL;
    CU_ASSERT_EQUAL_FATAL(em_httpd_new(&o), EM_OK);
    CU_ASSERT_EQUAL(em_httpd_route(o, "relative", hello, "x", &eb), EM_E_ARG);
    CU_ASSERT_EQUAL(em_httpd_start(o, "--metrics", "127.0.0.1", &eb), EM_E_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "--metrics"));
    CU_ASSERT_EQUAL(em_httpd_start(o, "--metrics", "127.0.0.1:99999", &eb), EM_E_ARG);
    char taken[64];
    snprintf(taken, sizeof taken, "127.0.0.1:%d", port);
    CU_ASSERT_EQUAL(em_httpd_start(o, "--metrics", taken, &eb), EM_E_IO);
    em_httpd_free(o);
}

/* Bug: the hand-written /metrics server served one connection at a time, so a client
 * sending a byte every 1.5 s held it for 20 s and 34 idle connections made a GET take 36 s. */
static void slow_and_idle_clients_delay_nobody(void)
{
    enum { IDLE_SAME = 20, IDLE_FLOOD = 40 };
    int slow = dial("127.0.0.1"), idle[IDLE_FLOOD];
    CU_ASSERT_FATAL(slow >= 0);
    for (int i = 0; i < IDLE_FLOOD; i++) idle[i] = -1;
    for (int i = 0; i < IDLE_SAME; i++) idle[i] = dial("127.0.0.1");
    const char *req = GET("/metrics");
    char buf[4096];
    double ms = 0, worst = 0;
    /* the slow client trickles its head a byte per round; others are served meanwhile */
    for (int round = 0; round < 6; round++) {
        ssize_t w = write(slow, req + round, 1);
        CU_ASSERT_EQUAL(w, 1);
        CU_ASSERT_EQUAL(fetch("127.0.0.1", req, buf, sizeof buf, ANSWER_MS, &ms), 200);
        if (ms > worst) worst = ms;
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
    }
    /* flooding past the per-address cap: other addresses are still served */
    for (int i = IDLE_SAME; i < IDLE_FLOOD; i++) idle[i] = dial("127.0.0.1");
    CU_ASSERT_EQUAL(fetch("127.0.0.2", req, buf, sizeof buf, ANSWER_MS, &ms), 200);
    if (ms > worst) worst = ms;
    printf("\n  slowest GET beside 1 slow + %d idle connections: %.1f ms (bound %d ms)\n",
           IDLE_FLOOD, worst, ANSWER_MS);
    /* idle connections are closed by the server after its timeout */
    struct pollfd p = {idle[0], POLLIN, 0};
    int pr = poll(&p, 1, (EM_HTTPD_TIMEOUT_S + 3) * 1000);
    CU_ASSERT_EQUAL(pr, 1);
    char c;
    CU_ASSERT(pr == 1 && read(idle[0], &c, 1) <= 0);
    close(slow);
    for (int i = 0; i < IDLE_FLOOD; i++)
        if (idle[i] >= 0) close(idle[i]);
}

static CU_TestInfo tests[] = {
    {"routes_match_exact_and_prefix", routes_match_exact_and_prefix},
    {"writes_are_refused", writes_are_refused},
    {"oversized_body_is_an_error_not_a_cut", oversized_body_is_an_error_not_a_cut},
    {"route_rules", route_rules},
    {"slow_and_idle_clients_delay_nobody", slow_and_idle_clients_delay_nobody},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_httpd = {"httpd", init, clean, NULL, NULL, tests};
