/* tests/unit/test_storage_uri.c - storage/uri.c and storage/s3.c addressing: parsing,
 * canonical checks, key encoding, join, path-style and virtual-host URLs. */
#include <CUnit/CUnit.h>
#include <stdlib.h>
#include <string.h>

#include "storage/s3.h"
#include "storage/storage.h"
#include "storage/uri.h"

static struct em_uri u;

static em_err parse(const char *s)
{
    struct em_errbuf eb = {{0}};
    memset(&u, 0, sizeof u);
    return em_uri_parse(s, &u, &eb);
}

static void parses_s3(void)
{
    CU_ASSERT_EQUAL(parse("s3://my-bucket.x/a/b c+d=e.json"), EM_OK);
    CU_ASSERT_EQUAL(u.scheme, EM_URI_S3);
    CU_ASSERT_STRING_EQUAL(u.bucket, "my-bucket.x");
    CU_ASSERT_STRING_EQUAL(u.path, "a/b c+d=e.json");
    CU_ASSERT_EQUAL(parse("s3://abc/%41"), EM_OK); /* keys are raw, not decoded */
    CU_ASSERT_STRING_EQUAL(u.path, "%41");
    CU_ASSERT_EQUAL(parse("s3://abc/d\xc3\xa9j\xc3\xa0/\xe6\x97\xa5.wav"), EM_OK);
}

static void rejects_bad_s3(void)
{
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL(em_uri_parse("s3://ab/key", &u, &eb), EM_E_ARG); /* too short */
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "bucket"));
    CU_ASSERT_EQUAL(parse("s3://Upper/key"), EM_E_ARG);
    CU_ASSERT_EQUAL(parse("s3://-abc/key"), EM_E_ARG);
    CU_ASSERT_EQUAL(parse("s3://abc-/key"), EM_E_ARG);
    CU_ASSERT_EQUAL(parse("s3://a..b/key"), EM_E_ARG);
    CU_ASSERT_EQUAL(parse("s3://under_score/key"), EM_E_ARG);
    CU_ASSERT_EQUAL(parse("s3://192.168.1.1/key"), EM_E_ARG);
    CU_ASSERT_EQUAL(parse("s3://abc"), EM_E_ARG);
    CU_ASSERT_EQUAL(parse("s3://abc/"), EM_E_ARG);
    CU_ASSERT_EQUAL(parse("s3://abc/a/../b"), EM_E_ARG);
    CU_ASSERT_EQUAL(parse("s3://abc/./b"), EM_E_ARG);
    CU_ASSERT_EQUAL(parse("s3://abc/a/.."), EM_E_ARG);
    CU_ASSERT_EQUAL(parse("s3://abc/a/..b"), EM_OK); /* not a dot segment */
    CU_ASSERT_EQUAL(parse("s3://abc/bad\xff"), EM_E_ARG);         /* invalid UTF-8 */
    CU_ASSERT_EQUAL(parse("s3://abc/\xc0\xaf"), EM_E_ARG);        /* overlong '/' */
    CU_ASSERT_EQUAL(parse("s3://abc/\xed\xa0\x80"), EM_E_ARG);    /* surrogate */
    CU_ASSERT_EQUAL(parse("s3://abc/trunc\xe6\x97"), EM_E_ARG);   /* truncated sequence */
    CU_ASSERT_EQUAL(parse("s3://abc/tab\there"), EM_E_ARG);
    char b64[80] = "s3://";
    memset(b64 + 5, 'a', 64);
    strcpy(b64 + 69, "/k");
    CU_ASSERT_EQUAL(parse(b64), EM_E_ARG); /* 64-char bucket */
    b64[68] = '/';
    CU_ASSERT_EQUAL(parse(b64), EM_OK);    /* 63 is fine */
}

static void key_length_is_bounded(void)
{
    char *s = malloc(9 + EM_S3_KEY_MAX + 2);
    strcpy(s, "s3://abc/");
    memset(s + 9, 'k', EM_S3_KEY_MAX);
    s[9 + EM_S3_KEY_MAX] = 0;
    CU_ASSERT_EQUAL(parse(s), EM_OK);
    s[9 + EM_S3_KEY_MAX] = 'k';
    s[10 + EM_S3_KEY_MAX] = 0;
    CU_ASSERT_EQUAL(parse(s), EM_E_ARG);
    free(s);
    char *big = malloc(EM_URI_MAX + 2);
    memset(big, '/', EM_URI_MAX + 1);
    big[EM_URI_MAX + 1] = 0;
    CU_ASSERT_EQUAL(parse(big), EM_E_ARG);
    big[EM_URI_MAX] = 0;
    CU_ASSERT_EQUAL(parse(big), EM_OK);
    free(big);
}

static void parses_files(void)
{
    CU_ASSERT_EQUAL(parse("file:///tmp/a%20b.wav"), EM_OK);
    CU_ASSERT_EQUAL(u.scheme, EM_URI_FILE);
    CU_ASSERT_STRING_EQUAL(u.path, "/tmp/a b.wav");
    CU_ASSERT_EQUAL(parse("file://localhost/x/y"), EM_OK);
    CU_ASSERT_STRING_EQUAL(u.path, "/x/y");
    CU_ASSERT_EQUAL(parse("/plain/path with space"), EM_OK);
    CU_ASSERT_STRING_EQUAL(u.path, "/plain/path with space");
    CU_ASSERT_EQUAL(parse("relative/p%41th"), EM_OK); /* plain paths are literal */
    CU_ASSERT_STRING_EQUAL(u.path, "relative/p%41th");
    CU_ASSERT_EQUAL(parse("file://host/x"), EM_E_ARG);
    CU_ASSERT_EQUAL(parse("file://relative"), EM_E_ARG);
    CU_ASSERT_EQUAL(parse("file:///a/%zz"), EM_E_ARG);
    CU_ASSERT_EQUAL(parse("file:///a/%0"), EM_E_ARG);
    CU_ASSERT_EQUAL(parse("file:///a/%00b"), EM_E_ARG);
    CU_ASSERT_EQUAL(parse("file:///a/../etc/passwd"), EM_E_ARG);
    CU_ASSERT_EQUAL(parse("file:///a/%2e%2e/b"), EM_E_ARG); /* checked after decoding */
    CU_ASSERT_EQUAL(parse("file:///a?x=1"), EM_E_ARG);
    CU_ASSERT_EQUAL(parse(""), EM_E_ARG);
    CU_ASSERT_EQUAL(parse("ftp://x/y"), EM_E_ARG);
    CU_ASSERT_EQUAL(em_uri_parse(NULL, &u, NULL), EM_E_ARG);
}

static void parses_http(void)
{
    CU_ASSERT_EQUAL(parse("https://example.com:8443/a%20b?x=1"), EM_OK);
    CU_ASSERT_EQUAL(u.scheme, EM_URI_HTTP);
    CU_ASSERT_STRING_EQUAL(u.path, "https://example.com:8443/a%20b?x=1");
    CU_ASSERT_EQUAL(parse("http://h/x"), EM_OK);
    CU_ASSERT_EQUAL(parse("http:///x"), EM_E_ARG);
    CU_ASSERT_EQUAL(parse("http://h/a b"), EM_E_ARG);
    CU_ASSERT_EQUAL(parse("http://user:pw@h/x"), EM_E_ARG);
    CU_ASSERT_EQUAL(parse("http://h/x\r\nInjected: 1"), EM_E_ARG);
}

static void encodes_canonically(void)
{
    char out[128];
    size_t n = 0;
    const char *k = "a b/c+d=e~f_g.h-i\xc3\xa9*";
    CU_ASSERT_EQUAL(em_uri_encode(k, strlen(k), 1, out, sizeof out, &n), EM_OK);
    CU_ASSERT_STRING_EQUAL(out, "a%20b/c%2Bd%3De~f_g.h-i%C3%A9%2A");
    CU_ASSERT_EQUAL(n, strlen(out));
    CU_ASSERT_EQUAL(em_uri_encode(k, strlen(k), 0, out, sizeof out, &n), EM_OK);
    CU_ASSERT_STRING_EQUAL(out, "a%20b%2Fc%2Bd%3De~f_g.h-i%C3%A9%2A");
    /* exactly enough room, then one byte short */
    CU_ASSERT_EQUAL(em_uri_encode("a b", 3, 1, out, 6, &n), EM_OK);
    CU_ASSERT_STRING_EQUAL(out, "a%20b");
    CU_ASSERT_EQUAL(em_uri_encode("a b", 3, 1, out, 5, &n), EM_E_TOO_LONG);
    CU_ASSERT_EQUAL(em_uri_encode("", 0, 1, out, 0, &n), EM_E_TOO_LONG);
    CU_ASSERT_EQUAL(em_uri_encode("", 0, 1, out, 1, &n), EM_OK);
    CU_ASSERT_EQUAL(n, 0);
}

static void joins_with_one_slash(void)
{
    struct {
        const char *p, *n, *want;
    } cases[] = {
        {"s3://b/out", "x.json", "s3://b/out/x.json"},
        {"s3://b/out/", "x.json", "s3://b/out/x.json"},
        {"s3://b/out//", "/x.json", "s3://b/out/x.json"},
        {"/tmp/dir", "a/b", "/tmp/dir/a/b"},
        {"/", "x", "/x"},
        {"", "x", "x"},
        {"s3://", "b/k", "s3://b/k"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *j = em_storage_join(cases[i].p, cases[i].n);
        CU_ASSERT_PTR_NOT_NULL_FATAL(j);
        CU_ASSERT_STRING_EQUAL(j, cases[i].want);
        free(j);
    }
    CU_ASSERT_PTR_NULL(em_storage_join(NULL, "x"));
}

static void builds_s3_urls(void)
{
    char url[EM_S3_URL_MAX];
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL(em_s3_url("http://127.0.0.1:9000", "us-east-1", 1, "bkt", "a b/c+d", url,
                              sizeof url, &eb),
                    EM_OK);
    CU_ASSERT_STRING_EQUAL(url, "http://127.0.0.1:9000/bkt/a%20b/c%2Bd");
    CU_ASSERT_EQUAL(em_s3_url("http://localhost:9000/", "us-east-1", 0, "bkt", "k", url,
                              sizeof url, &eb),
                    EM_OK);
    CU_ASSERT_STRING_EQUAL(url, "http://bkt.localhost:9000/k");
    /* -1: path-style with an endpoint, virtual-host on AWS */
    CU_ASSERT_EQUAL(em_s3_url("http://h:1", NULL, -1, "bkt", "k", url, sizeof url, &eb), EM_OK);
    CU_ASSERT_STRING_EQUAL(url, "http://h:1/bkt/k");
    CU_ASSERT_EQUAL(em_s3_url(NULL, "eu-west-1", -1, "bkt", "k=v", url, sizeof url, &eb),
                    EM_OK);
    CU_ASSERT_STRING_EQUAL(url, "https://bkt.s3.eu-west-1.amazonaws.com/k%3Dv");
    /* a dotted bucket cannot use the wildcard certificate */
    CU_ASSERT_EQUAL(em_s3_url(NULL, "us-east-1", 0, "a.b.c", "k", url, sizeof url, &eb), EM_OK);
    CU_ASSERT_STRING_EQUAL(url, "https://s3.us-east-1.amazonaws.com/a.b.c/k");
    CU_ASSERT_EQUAL(em_s3_url("ftp://h", NULL, 1, "bkt", "k", url, sizeof url, &eb), EM_E_ARG);
    CU_ASSERT_EQUAL(em_s3_url("http://h/base", NULL, 1, "bkt", "k", url, sizeof url, &eb),
                    EM_E_ARG);
    CU_ASSERT_EQUAL(em_s3_url("http://u@h", NULL, 1, "bkt", "k", url, sizeof url, &eb),
                    EM_E_ARG);
    CU_ASSERT_EQUAL(em_s3_url("http://h", NULL, 1, "bkt", "k", url, 12, &eb), EM_E_TOO_LONG);
}

static CU_TestInfo tests[] = {
    {"parses_s3", parses_s3},
    {"rejects_bad_s3", rejects_bad_s3},
    {"key_length_is_bounded", key_length_is_bounded},
    {"parses_files", parses_files},
    {"parses_http", parses_http},
    {"encodes_canonically", encodes_canonically},
    {"joins_with_one_slash", joins_with_one_slash},
    {"builds_s3_urls", builds_s3_urls},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_storage_uri = {"storage_uri", NULL, NULL, NULL, NULL, tests};
