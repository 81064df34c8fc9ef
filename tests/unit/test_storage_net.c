/* tests/unit/test_storage_net.c - storage/s3.c, http.c and xfer.c against a scripted local
 * HTTP stub: retries on 5xx, status mapping with the S3 error Code, caps, no credentials
 * in messages, read-only http(s), redirects. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/storage.h"
#include "tests/helpers/proc.h"
#include "tests/helpers/servers.h"

#define SECRET "sEcReT/key+never-shown"

/* A complete response with a correct Content-Length, from a static pool (test-only). */
static const char *resp_of(const char *status, const char *body)
{
    static char pool[16][512];
    static int next;
    char *r = pool[next++ % 16];
    snprintf(r, sizeof pool[0], "HTTP/1.1 %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
             status, strlen(body), body);
    return r;
}
#define R503 resp_of("503 Slow Down", "<Error><Code>SlowDown</Code><Message>x</Message></Error>")

static struct em_storage *open_at(struct th_stub *s, int retries, size_t max_bytes)
{
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", th_stub_port(s));
    struct em_storage_opts o = em_storage_opts_default();
    o.endpoint = ep;
    o.access_key = "AKNET";
    o.secret_key = SECRET;
    o.session_token = "tok-never-shown";
    o.retries = retries;
    o.timeout_ms = 10000;
    if (max_bytes) o.max_bytes = max_bytes;
    struct em_storage *st = NULL;
    CU_ASSERT_EQUAL(em_storage_open(&o, &st, NULL), EM_OK);
    return st;
}

static void no_secrets(const struct em_errbuf *eb)
{
    CU_ASSERT_PTR_NULL(strstr(eb->msg, SECRET));
    CU_ASSERT_PTR_NULL(strstr(eb->msg, "tok-never-shown"));
    CU_ASSERT_PTR_NULL(strstr(eb->msg, "Signature="));
    CU_ASSERT_PTR_NULL(strstr(eb->msg, "Credential="));
}

static void retries_5xx_then_succeeds(void)
{
    const char *resp[] = {R503, R503, resp_of("200 OK", "")};
    struct th_stub *s = th_stub_start(resp, 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct em_storage *st = open_at(s, 4, 0);
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL(em_storage_put(st, "s3://bkt/k", "abc", 3, NULL, &eb), EM_OK);
    CU_ASSERT_EQUAL(th_stub_count(s), 3);
    /* each retry resends the whole body */
    for (size_t i = 0; i < th_stub_count(s); i++) {
        CU_ASSERT_EQUAL(th_stub_req(s, i)->body_len, 3);
        CU_ASSERT_EQUAL(memcmp(th_stub_req(s, i)->body, "abc", 3), 0);
    }
    em_storage_close(st);
    th_stub_stop(s);
}

static void gives_up_after_retries(void)
{
    const char *resp[] = {resp_of("500 Internal", "<Error><Code>InternalError</Code></Error>")};
    struct th_stub *s = th_stub_start(resp, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct em_storage *st = open_at(s, 2, 0);
    struct em_errbuf eb = {{0}};
    uint8_t *d = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL(em_storage_get(st, "s3://bkt/k", &d, &n, &eb), EM_E_STORAGE);
    CU_ASSERT_PTR_NULL(d);
    CU_ASSERT_EQUAL(th_stub_count(s), 3); /* first try + 2 retries */
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "HTTP 500"));
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "InternalError"));
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "s3://bkt/k"));
    no_secrets(&eb);
    em_storage_close(st);
    th_stub_stop(s);
}

static void maps_404_and_403(void)
{
    const char *resp[] = {
        resp_of("404 Not Found", "<Error><Code>NoSuchKey</Code></Error>"),
        resp_of("403 Forbidden",
                "<Error><Code>SignatureDoesNotMatch</Code><StringToSign>x</StringToSign></Error>"),
        resp_of("404 Not Found", ""),
        "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
        resp_of("400 Bad Request", "")};
    struct th_stub *s = th_stub_start(resp, 5);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct em_storage *st = open_at(s, 3, 0);
    struct em_errbuf eb = {{0}};
    uint8_t *d = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL(em_storage_get(st, "s3://bkt/missing", &d, &n, &eb), EM_E_NOTFOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "NoSuchKey"));
    CU_ASSERT_EQUAL(em_storage_put(st, "s3://bkt/k", "x", 1, NULL, &eb), EM_E_AUTH);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "HTTP 403 SignatureDoesNotMatch"));
    no_secrets(&eb);
    CU_ASSERT_EQUAL(em_storage_exists(st, "s3://bkt/k", &eb), EM_E_NOTFOUND); /* HEAD 404 */
    CU_ASSERT_EQUAL(em_storage_delete(st, "s3://bkt/k", &eb), EM_OK);         /* 204 */
    CU_ASSERT_EQUAL(em_storage_delete(st, "s3://bkt/k", &eb), EM_E_STORAGE);  /* 400 */
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "HTTP 400"));
    /* 4xx are not retried */
    CU_ASSERT_EQUAL(th_stub_count(s), 5);
    CU_ASSERT_EQUAL(strncmp(th_stub_req(s, 3)->head, "DELETE /bkt/k ", 14), 0);
    em_storage_close(st);
    th_stub_stop(s);
}

static void caps_object_size(void)
{
    const char *resp[] = {resp_of("200 OK", "0123456789")};
    struct th_stub *s = th_stub_start(resp, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct em_storage *st = open_at(s, 3, 9);
    struct em_errbuf eb = {{0}};
    uint8_t *d = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL(em_storage_get(st, "s3://bkt/k", &d, &n, &eb), EM_E_TOO_LONG);
    CU_ASSERT_PTR_NULL(d);
    CU_ASSERT_EQUAL(th_stub_count(s), 1); /* not retried */
    em_storage_close(st);
    st = open_at(s, 3, 10);
    CU_ASSERT_EQUAL(em_storage_get(st, "s3://bkt/k", &d, &n, &eb), EM_OK);
    CU_ASSERT_EQUAL(n, 10);
    free(d);
    em_storage_close(st);
    th_stub_stop(s);
}

/* an unreachable endpoint is an infrastructure fault (class INFRA), not the item's */
static void connection_refused_is_storage_down(void)
{
    int port = th_free_port();
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", port);
    struct em_storage_opts o = em_storage_opts_default();
    o.endpoint = ep;
    o.access_key = "AK";
    o.secret_key = SECRET;
    o.retries = 1;
    struct em_storage *st = NULL;
    CU_ASSERT_EQUAL_FATAL(em_storage_open(&o, &st, NULL), EM_OK);
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL(em_storage_put(st, "s3://bkt/k", "x", 1, NULL, &eb), EM_E_STORAGE_DOWN);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "after 2 attempts"));
    no_secrets(&eb);
    em_storage_close(st);
}

static void env_and_missing_credentials(void)
{
    const char *resp[] = {resp_of("200 OK", "")};
    struct th_stub *s = th_stub_start(resp, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", th_stub_port(s));
    setenv("AWS_ENDPOINT_URL", ep, 1);
    unsetenv("AWS_REGION");
    setenv("AWS_DEFAULT_REGION", "ap-south-1", 1);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_SESSION_TOKEN");
    struct em_storage *st = NULL;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(em_storage_open(NULL, &st, NULL), EM_OK);
    CU_ASSERT_EQUAL(em_storage_put(st, "s3://bkt/k", "x", 1, NULL, &eb), EM_E_AUTH);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "AWS_ACCESS_KEY_ID"));
    em_storage_close(st);
    setenv("AWS_ACCESS_KEY_ID", "AKENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
    CU_ASSERT_EQUAL_FATAL(em_storage_open(NULL, &st, NULL), EM_OK);
    CU_ASSERT_EQUAL(em_storage_put(st, "s3://bkt/k", "x", 1, NULL, &eb), EM_OK);
    CU_ASSERT_EQUAL_FATAL(th_stub_count(s), 1);
    char auth[512];
    CU_ASSERT_EQUAL(th_stub_header(th_stub_req(s, 0), "Authorization", auth, sizeof auth), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(auth, "Credential=AKENV/"));
    CU_ASSERT_PTR_NOT_NULL(strstr(auth, "/ap-south-1/s3/aws4_request"));
    em_storage_close(st);
    unsetenv("AWS_ENDPOINT_URL");
    unsetenv("AWS_DEFAULT_REGION");
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    th_stub_stop(s);
}

static void http_get_follows_redirects_unsigned(void)
{
    char redirect[256], ok[256];
    const char *resp[2] = {redirect, ok};
    struct th_stub *s = th_stub_start(resp, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    snprintf(redirect, sizeof redirect,
             "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:%d/real.wav\r\n"
             "Content-Length: 0\r\nConnection: close\r\n\r\n",
             th_stub_port(s));
    snprintf(ok, sizeof ok, "%s", resp_of("200 OK", "RIFF"));
    struct em_storage *st = open_at(s, 2, 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/a%%20b.wav", th_stub_port(s));
    uint8_t *d = NULL;
    size_t n = 0;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL(em_storage_get(st, url, &d, &n, &eb), EM_OK);
    CU_ASSERT_EQUAL(n, 4);
    if (d) CU_ASSERT_EQUAL(memcmp(d, "RIFF", 4), 0);
    free(d);
    CU_ASSERT_EQUAL_FATAL(th_stub_count(s), 2);
    CU_ASSERT_EQUAL(strncmp(th_stub_req(s, 0)->head, "GET /a%20b.wav ", 15), 0);
    CU_ASSERT_EQUAL(strncmp(th_stub_req(s, 1)->head, "GET /real.wav ", 14), 0);
    char auth[64];
    /* http(s) requests are never signed, even with credentials configured */
    CU_ASSERT_NOT_EQUAL(th_stub_header(th_stub_req(s, 0), "Authorization", auth, sizeof auth),
                        0);
    CU_ASSERT_EQUAL(em_storage_put(st, url, "x", 1, NULL, &eb), EM_E_UNSUPPORTED);
    CU_ASSERT_EQUAL(em_storage_delete(st, url, &eb), EM_E_UNSUPPORTED);
    em_storage_close(st);
    th_stub_stop(s);
}

static void http_redirect_loop_is_bounded(void)
{
    char redirect[256];
    const char *resp[1] = {redirect};
    struct th_stub *s = th_stub_start(resp, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    snprintf(redirect, sizeof redirect,
             "HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 0\r\n"
             "Connection: close\r\n\r\n");
    struct em_storage *st = open_at(s, 0, 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/start", th_stub_port(s));
    uint8_t *d = NULL;
    size_t n = 0;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_NOT_EQUAL(em_storage_get(st, url, &d, &n, &eb), EM_OK);
    CU_ASSERT_PTR_NULL(d);
    CU_ASSERT(th_stub_count(s) <= 6 + 1);
    em_storage_close(st);
    th_stub_stop(s);
}

static void http_errors_hide_presigned_query(void)
{
    const char *resp[] = {resp_of("403 Forbidden", "<Error><Code>AccessDenied</Code></Error>")};
    struct th_stub *s = th_stub_start(resp, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct em_storage *st = open_at(s, 0, 0);
    char url[256];
    snprintf(url, sizeof url,
             "http://127.0.0.1:%d/clip.wav?X-Amz-Credential=AKX&X-Amz-Signature=deadbeef42",
             th_stub_port(s));
    uint8_t *d = NULL;
    size_t n = 0;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL(em_storage_get(st, url, &d, &n, &eb), EM_E_AUTH);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "/clip.wav"));
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "AccessDenied"));
    CU_ASSERT_PTR_NULL(strstr(eb.msg, "deadbeef42"));
    CU_ASSERT_PTR_NULL(strstr(eb.msg, "AKX"));
    CU_ASSERT_EQUAL(em_storage_put(st, url, "x", 1, NULL, &eb), EM_E_UNSUPPORTED);
    CU_ASSERT_PTR_NULL(strstr(eb.msg, "deadbeef42"));
    em_storage_close(st);
    th_stub_stop(s);
}

static CU_TestInfo tests[] = {
    {"retries_5xx_then_succeeds", retries_5xx_then_succeeds},
    {"gives_up_after_retries", gives_up_after_retries},
    {"maps_404_and_403", maps_404_and_403},
    {"caps_object_size", caps_object_size},
    {"connection_refused_is_storage_down", connection_refused_is_storage_down},
    {"env_and_missing_credentials", env_and_missing_credentials},
    {"http_get_follows_redirects_unsigned", http_get_follows_redirects_unsigned},
    {"http_redirect_loop_is_bounded", http_redirect_loop_is_bounded},
    {"http_errors_hide_presigned_query", http_errors_hide_presigned_query},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_storage_net = {"storage_net", NULL, NULL, NULL, NULL, tests};
