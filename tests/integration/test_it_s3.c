/* tests/integration/test_it_s3.c - em_storage_* against real S3-compatible servers started
 * here: moto_server (does not check signatures) and SeaweedFS (`weed mini`, checks them).
 * Round trips with keys that need encoding, a multi-MB object, 404 mapping, a wrong secret
 * refused, session token, path-style and virtual-host addressing, and a put that rides out
 * the server being down for a few seconds. */
#include <CUnit/CUnit.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storage/storage.h"
#include "tests/helpers/servers.h"

#define AK "itAccessKey"
#define SK "itSecret/Key+123"
#define BUCKET "it-bucket"

static struct th_server moto, weed;

static int init(void)
{
    if (th_moto_start(&moto) != 0) return 1;
    if (th_weed_start(&weed, AK, SK) != 0) return 1;
    if (th_s3_mkbucket(&moto, BUCKET, AK, SK) != 0) return 1;
    if (th_s3_mkbucket(&weed, BUCKET, AK, SK) != 0) return 1;
    return 0;
}

static int clean(void)
{
    th_server_stop(&moto);
    th_server_stop(&weed);
    return 0;
}

static struct em_storage *open_on(const char *endpoint, const char *secret, int path_style,
                                  int retries)
{
    struct em_storage_opts o = em_storage_opts_default();
    o.endpoint = endpoint;
    o.region = "us-east-1";
    o.access_key = AK;
    o.secret_key = secret;
    o.path_style = path_style;
    o.retries = retries;
    o.timeout_ms = 20000;
    struct em_storage *st = NULL;
    CU_ASSERT_EQUAL(em_storage_open(&o, &st, NULL), EM_OK);
    return st;
}

static const char *const keys[] = {
    "plain.json",
    "dir/sub dir/with space.json",
    "unicode/d\xc3\xa9j\xc3\xa0 vu \xe6\x97\xa5\xe6\x9c\xac.json",
    "plus+and=equals&amp;.json",
    "odd!$'()*,;:@~_.json",
};

static void round_trip(struct em_storage *st, const char *key)
{
    char uri[512], body[600];
    struct em_errbuf eb = {{0}};
    snprintf(uri, sizeof uri, "s3://" BUCKET "/%s", key);
    snprintf(body, sizeof body, "{\"key\": \"%s\"}", key);
    em_err rc = em_storage_put(st, uri, body, strlen(body), "application/json", &eb);
    CU_ASSERT_EQUAL(rc, EM_OK);
    if (rc != EM_OK) fprintf(stderr, "\n  put %s: %s\n", uri, eb.msg);
    CU_ASSERT_EQUAL(em_storage_exists(st, uri, &eb), EM_OK);
    uint8_t *d = NULL;
    size_t n = 0;
    rc = em_storage_get(st, uri, &d, &n, &eb);
    CU_ASSERT_EQUAL(rc, EM_OK);
    if (rc != EM_OK) fprintf(stderr, "\n  get %s: %s\n", uri, eb.msg);
    CU_ASSERT_EQUAL(n, strlen(body));
    if (d && n == strlen(body)) CU_ASSERT_EQUAL(memcmp(d, body, n), 0);
    free(d);
    CU_ASSERT_EQUAL(em_storage_delete(st, uri, &eb), EM_OK);
    CU_ASSERT_EQUAL(em_storage_exists(st, uri, &eb), EM_E_NOTFOUND);
    d = NULL;
    CU_ASSERT_EQUAL(em_storage_get(st, uri, &d, &n, &eb), EM_E_NOTFOUND);
    CU_ASSERT_PTR_NULL(d);
}

static void keys_round_trip(struct th_server *s)
{
    struct em_storage *st = open_on(s->endpoint, SK, -1, 4);
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) round_trip(st, keys[i]);
    em_storage_close(st);
}

static void moto_keys_round_trip(void)
{
    keys_round_trip(&moto);
}

static void weed_keys_round_trip(void)
{
    keys_round_trip(&weed);
}

static void large_object(struct th_server *s)
{
    size_t n = 3u * 1024 * 1024 + 17;
    uint8_t *big = malloc(n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        big[i] = (uint8_t)(x >> 24);
    }
    struct em_storage *st = open_on(s->endpoint, SK, 1, 4);
    struct em_errbuf eb = {{0}};
    const char *uri = "s3://" BUCKET "/large/blob.bin";
    em_err rc = em_storage_put(st, uri, big, n, NULL, &eb);
    CU_ASSERT_EQUAL(rc, EM_OK);
    if (rc != EM_OK) fprintf(stderr, "\n  put large: %s\n", eb.msg);
    uint8_t *d = NULL;
    size_t got = 0;
    CU_ASSERT_EQUAL(em_storage_get(st, uri, &d, &got, &eb), EM_OK);
    CU_ASSERT_EQUAL(got, n);
    if (d && got == n) CU_ASSERT_EQUAL(memcmp(d, big, n), 0);
    free(d);
    em_storage_close(st);
    /* the same object through a handle whose limit is one byte short */
    struct em_storage_opts o = em_storage_opts_default();
    o.endpoint = s->endpoint;
    o.access_key = AK;
    o.secret_key = SK;
    o.max_bytes = n - 1;
    CU_ASSERT_EQUAL_FATAL(em_storage_open(&o, &st, NULL), EM_OK);
    d = NULL;
    CU_ASSERT_EQUAL(em_storage_get(st, uri, &d, &got, &eb), EM_E_TOO_LONG);
    CU_ASSERT_PTR_NULL(d);
    CU_ASSERT_EQUAL(em_storage_delete(st, uri, &eb), EM_OK);
    em_storage_close(st);
    free(big);
}

static void moto_large_object(void)
{
    large_object(&moto);
}

static void weed_large_object(void)
{
    large_object(&weed);
}

static void missing_bucket_is_notfound(void)
{
    struct th_server *servers[] = {&moto, &weed};
    for (int i = 0; i < 2; i++) {
        struct em_storage *st = open_on(servers[i]->endpoint, SK, 1, 1);
        struct em_errbuf eb = {{0}};
        uint8_t *d = NULL;
        size_t n = 0;
        CU_ASSERT_EQUAL(em_storage_get(st, "s3://no-such-bucket-x/k", &d, &n, &eb),
                        EM_E_NOTFOUND);
        CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "404"));
        em_storage_close(st);
    }
}

static void weed_refuses_wrong_secret(void)
{
    struct em_storage *st = open_on(weed.endpoint, "wrong-secret-value", 1, 4);
    struct em_errbuf eb = {{0}};
    em_err rc = em_storage_put(st, "s3://" BUCKET "/forged.json", "{}", 2, NULL, &eb);
    CU_ASSERT_EQUAL(rc, EM_E_AUTH);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "403"));
    CU_ASSERT_PTR_NULL(strstr(eb.msg, "wrong-secret-value"));
    CU_ASSERT_PTR_NULL(strstr(eb.msg, "Signature="));
    uint8_t *d = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL(em_storage_get(st, "s3://" BUCKET "/forged.json", &d, &n, &eb), EM_E_AUTH);
    em_storage_close(st);
    /* and the object was not written */
    st = open_on(weed.endpoint, SK, 1, 4);
    CU_ASSERT_EQUAL(em_storage_exists(st, "s3://" BUCKET "/forged.json", &eb), EM_E_NOTFOUND);
    em_storage_close(st);
}

static void moto_session_token_and_virtual_host(void)
{
    /* virtual-host addressing for real: *.localhost resolves to loopback in libcurl */
    char ep[64];
    snprintf(ep, sizeof ep, "http://localhost:%d", moto.port);
    struct em_storage_opts o = em_storage_opts_default();
    o.endpoint = ep;
    o.access_key = AK;
    o.secret_key = SK;
    o.session_token = "FwoGZXIvYXdzEXAMPLETOKEN";
    o.path_style = 0;
    struct em_storage *st = NULL;
    CU_ASSERT_EQUAL_FATAL(em_storage_open(&o, &st, NULL), EM_OK);
    struct em_errbuf eb = {{0}};
    em_err rc = em_storage_put(st, "s3://" BUCKET "/vhost/a b.json", "{\"v\":1}", 7, NULL, &eb);
    CU_ASSERT_EQUAL(rc, EM_OK);
    if (rc != EM_OK) fprintf(stderr, "\n  vhost put: %s\n", eb.msg);
    em_storage_close(st);
    /* visible through path-style: the bucket was taken from the host name */
    st = open_on(moto.endpoint, SK, 1, 2);
    uint8_t *d = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL(em_storage_get(st, "s3://" BUCKET "/vhost/a b.json", &d, &n, &eb), EM_OK);
    CU_ASSERT_EQUAL(n, 7);
    free(d);
    em_storage_close(st);
}

struct bounce {
    struct th_server *s;
    int down_ms;
    int rc;
};

static void *bring_back(void *ud)
{
    struct bounce *b = ud;
    struct timespec ts = {b->down_ms / 1000, (long)(b->down_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    b->rc = th_server_resume(b->s);
    return NULL;
}

static void weed_put_survives_restart(void)
{
    /* first write something, so the restarted server must still have it too */
    struct em_storage *st = open_on(weed.endpoint, SK, 1, 30);
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL(em_storage_put(st, "s3://" BUCKET "/before.json", "{\"b\":1}", 7, NULL, &eb),
                    EM_OK);
    th_server_pause(&weed);
    struct bounce b = {.s = &weed, .down_ms = 2500, .rc = -1};
    pthread_t t;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, bring_back, &b), 0);
    /* starts while the server is down: connection refused, then 5xx while it warms up */
    em_err rc = em_storage_put(st, "s3://" BUCKET "/during.json", "{\"d\":2}", 7, NULL, &eb);
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(b.rc, 0);
    CU_ASSERT_EQUAL(rc, EM_OK);
    if (rc != EM_OK) fprintf(stderr, "\n  put during restart: %s\n", eb.msg);
    uint8_t *d = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL(em_storage_get(st, "s3://" BUCKET "/during.json", &d, &n, &eb), EM_OK);
    CU_ASSERT_EQUAL(n, 7);
    if (d && n == 7) CU_ASSERT_EQUAL(memcmp(d, "{\"d\":2}", 7), 0);
    free(d);
    d = NULL;
    CU_ASSERT_EQUAL(em_storage_get(st, "s3://" BUCKET "/before.json", &d, &n, &eb), EM_OK);
    free(d);
    em_storage_close(st);
}

static CU_TestInfo tests[] = {
    {"moto_keys_round_trip", moto_keys_round_trip},
    {"weed_keys_round_trip", weed_keys_round_trip},
    {"moto_large_object", moto_large_object},
    {"weed_large_object", weed_large_object},
    {"missing_bucket_is_notfound", missing_bucket_is_notfound},
    {"weed_refuses_wrong_secret", weed_refuses_wrong_secret},
    {"moto_session_token_and_virtual_host", moto_session_token_and_virtual_host},
    {"weed_put_survives_restart", weed_put_survives_restart},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_it_s3 = {"it_s3", init, clean, NULL, NULL, tests};
