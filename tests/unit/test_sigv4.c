/* tests/unit/test_sigv4.c - storage/sigv4.c against AWS's published S3 examples ("Signature
 * Calculations for the Authorization Header: Transferring Payload in a Single Chunk"), and
 * the Authorization header libcurl produced for em_storage_put/get (captured by a local stub
 * server) against sigv4.c's independent computation of the same request. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/id.h"
#include "storage/sigv4.h"
#include "storage/storage.h"
#include "tests/helpers/servers.h"

#define AK "AKIAIOSFODNN7EXAMPLE"
#define SK "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define HOST "Host: examplebucket.s3.amazonaws.com"
#define DATE "20130524T000000Z"

static struct em_sigv4_out out;

static struct em_sigv4_req example(const char *method, const char *path, const char *query,
                                   const char *const *h, size_t nh, const char *payload)
{
    return (struct em_sigv4_req){.method = method, .path = path, .query = query,
                                 .headers = h, .nheaders = nh, .payload_hash = payload,
                                 .amz_date = DATE, .region = "us-east-1", .service = "s3",
                                 .access_key = AK, .secret_key = SK};
}

static void aws_get_object(void)
{
    const char *h[] = {HOST, "Range: bytes=0-9", "x-amz-content-sha256:" EMPTY,
                       "x-amz-date: " DATE};
    struct em_sigv4_req r = example("GET", "/test.txt", NULL, h, 4, EMPTY);
    CU_ASSERT_EQUAL_FATAL(em_sigv4_sign(&r, &out, NULL), EM_OK);
    CU_ASSERT_STRING_EQUAL(out.canonical_request,
                           "GET\n/test.txt\n\n"
                           "host:examplebucket.s3.amazonaws.com\n"
                           "range:bytes=0-9\n"
                           "x-amz-content-sha256:" EMPTY "\n"
                           "x-amz-date:20130524T000000Z\n\n"
                           "host;range;x-amz-content-sha256;x-amz-date\n" EMPTY);
    CU_ASSERT_STRING_EQUAL(out.string_to_sign,
                           "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/"
                           "aws4_request\n"
                           "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
    CU_ASSERT_STRING_EQUAL(out.signature,
                           "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    CU_ASSERT_STRING_EQUAL(out.authorization,
                           "AWS4-HMAC-SHA256 Credential=" AK "/20130524/us-east-1/s3/"
                           "aws4_request, SignedHeaders=host;range;x-amz-content-sha256;"
                           "x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170"
                           "aba48dd91039c6036bdb41");
}

static void aws_put_object(void)
{
    const char *body = "Welcome to Amazon S3.";
    char hash[65], hh[100];
    em_sha256_hex(body, strlen(body), hash);
    CU_ASSERT_STRING_EQUAL(hash,
                           "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
    snprintf(hh, sizeof hh, "X-Amz-Content-Sha256: %s", hash);
    /* header order and case do not matter */
    const char *h[] = {"x-amz-storage-class: REDUCED_REDUNDANCY", "x-amz-date: " DATE, hh,
                       "Date: Fri, 24 May 2013 00:00:00 GMT", HOST};
    struct em_sigv4_req r = example("PUT", "/test%24file.text", "", h, 5, hash);
    CU_ASSERT_EQUAL_FATAL(em_sigv4_sign(&r, &out, NULL), EM_OK);
    CU_ASSERT_STRING_EQUAL(out.signed_headers,
                           "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class");
    CU_ASSERT_STRING_EQUAL(out.signature,
                           "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

static void aws_get_lifecycle(void)
{
    const char *h[] = {HOST, "x-amz-date: " DATE, "x-amz-content-sha256: " EMPTY};
    struct em_sigv4_req r = example("GET", "/", "lifecycle", h, 3, EMPTY);
    CU_ASSERT_EQUAL_FATAL(em_sigv4_sign(&r, &out, NULL), EM_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(out.canonical_request, "\n/\nlifecycle=\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(
        out.string_to_sign, "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca"));
    CU_ASSERT_STRING_EQUAL(out.signature,
                           "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

static void aws_list_objects(void)
{
    const char *h[] = {HOST, "x-amz-date: " DATE, "x-amz-content-sha256: " EMPTY};
    /* given unsorted: canonicalization sorts */
    struct em_sigv4_req r = example("GET", "/", "prefix=J&max-keys=2", h, 3, EMPTY);
    CU_ASSERT_EQUAL_FATAL(em_sigv4_sign(&r, &out, NULL), EM_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(out.canonical_request, "\n/\nmax-keys=2&prefix=J\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(
        out.string_to_sign, "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7"));
    CU_ASSERT_STRING_EQUAL(out.signature,
                           "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

static void canonical_query_rules(void)
{
    char q[64];
    CU_ASSERT_EQUAL(em_sigv4_canonical_query("b=2&a&a=1&&c=", q, sizeof q), EM_OK);
    CU_ASSERT_STRING_EQUAL(q, "a=&a=1&b=2&c=");
    CU_ASSERT_EQUAL(em_sigv4_canonical_query(NULL, q, sizeof q), EM_OK);
    CU_ASSERT_STRING_EQUAL(q, "");
    CU_ASSERT_EQUAL(em_sigv4_canonical_query("abcdef=1", q, 5), EM_E_TOO_LONG);
}

static void rejects_bad_requests(void)
{
    struct em_errbuf eb = {{0}};
    const char *bad[] = {"no colon here"};
    struct em_sigv4_req r = example("GET", "/", NULL, bad, 1, EMPTY);
    CU_ASSERT_EQUAL(em_sigv4_sign(&r, &out, &eb), EM_E_ARG);
    const char *h[] = {HOST};
    r = example("GET", "/", NULL, h, 1, EMPTY);
    r.amz_date = "2013-05-24";
    CU_ASSERT_EQUAL(em_sigv4_sign(&r, &out, &eb), EM_E_ARG);
    r = example("GET", "/", NULL, h, EM_SIGV4_MAX_HEADERS + 1, EMPTY);
    CU_ASSERT_EQUAL(em_sigv4_sign(&r, &out, &eb), EM_E_ARG);
    r = example("GET", "/", NULL, h, 1, EMPTY);
    r.secret_key = NULL;
    CU_ASSERT_EQUAL(em_sigv4_sign(&r, &out, &eb), EM_E_ARG);
}

/* ---- what libcurl sent, recomputed independently ---- */

/* Splits "AWS4-HMAC-SHA256 Credential=AK/DATE/REGION/SVC/aws4_request, SignedHeaders=..,
 * Signature=.." into its parts. 0 on success. */
static int parse_auth(const char *a, char *cred, char *signed_h, char *sig)
{
    const char *c = strstr(a, "Credential="), *s = strstr(a, "SignedHeaders="),
               *g = strstr(a, "Signature=");
    if (strncmp(a, "AWS4-HMAC-SHA256 ", 17) != 0 || !c || !s || !g) return -1;
    snprintf(cred, 256, "%.*s", (int)strcspn(c + 11, ", "), c + 11);
    snprintf(signed_h, 512, "%.*s", (int)strcspn(s + 14, ", "), s + 14);
    snprintf(sig, 65, "%.64s", g + 10);
    return 0;
}

/* Recomputes the signature of a captured request with sigv4.c and checks it against the
 * Authorization header; also checks the request's shape. */
static void check_captured(const struct th_stub_req *rq, const char *region,
                           const void *body, size_t body_len, int want_token)
{
    char auth[1024], cred[256], signed_h[512], sig[65], date[32], sha[80];
    CU_ASSERT_EQUAL_FATAL(th_stub_header(rq, "Authorization", auth, sizeof auth), 0);
    CU_ASSERT_EQUAL_FATAL(parse_auth(auth, cred, signed_h, sig), 0);
    CU_ASSERT_EQUAL_FATAL(th_stub_header(rq, "x-amz-date", date, sizeof date), 0);
    CU_ASSERT_EQUAL_FATAL(th_stub_header(rq, "x-amz-content-sha256", sha, sizeof sha), 0);

    /* credential scope: AK/YYYYMMDD/region/s3/aws4_request, date agreeing with x-amz-date */
    char want_cred[256];
    snprintf(want_cred, sizeof want_cred, "TESTAK/%.8s/%s/s3/aws4_request", date, region);
    CU_ASSERT_STRING_EQUAL(cred, want_cred);
    /* the payload hash is the body's */
    char h[65];
    em_sha256_hex(body, body_len, h);
    CU_ASSERT_STRING_EQUAL(sha, h);
    CU_ASSERT_EQUAL(rq->body_len, body_len);
    if (body_len) CU_ASSERT_EQUAL(memcmp(rq->body, body, body_len), 0);
    /* the headers that must be covered are covered */
    CU_ASSERT_PTR_NOT_NULL(strstr(signed_h, "host"));
    CU_ASSERT_PTR_NOT_NULL(strstr(signed_h, "x-amz-content-sha256"));
    CU_ASSERT_PTR_NOT_NULL(strstr(signed_h, "x-amz-date"));
    CU_ASSERT_EQUAL(strstr(signed_h, "x-amz-security-token") != NULL, want_token);

    /* method, path and query from the request line */
    char method[16], target[4096];
    CU_ASSERT_EQUAL_FATAL(sscanf(rq->head, "%15s %4095s HTTP/1.1", method, target), 2);
    char *q = strchr(target, '?');
    if (q) *q++ = 0;

    /* each signed header's value as the server received it */
    char lines[EM_SIGV4_MAX_HEADERS][1200];
    const char *hp[EM_SIGV4_MAX_HEADERS];
    size_t nh = 0;
    char names[512];
    snprintf(names, sizeof names, "%s", signed_h);
    for (char *save = NULL, *n = strtok_r(names, ";", &save); n && nh < EM_SIGV4_MAX_HEADERS;
         n = strtok_r(NULL, ";", &save)) {
        char v[1024];
        CU_ASSERT_EQUAL_FATAL(th_stub_header(rq, n, v, sizeof v), 0);
        snprintf(lines[nh], sizeof lines[nh], "%s:%s", n, v);
        hp[nh] = lines[nh];
        nh++;
    }
    struct em_sigv4_req r = {.method = method, .path = target, .query = q, .headers = hp,
                             .nheaders = nh, .payload_hash = sha, .amz_date = date,
                             .region = region, .service = "s3", .access_key = "TESTAK",
                             .secret_key = "TESTSECRET/+="};
    static struct em_sigv4_out o;
    CU_ASSERT_EQUAL_FATAL(em_sigv4_sign(&r, &o, NULL), EM_OK);
    CU_ASSERT_STRING_EQUAL(o.signed_headers, signed_h);
    CU_ASSERT_STRING_EQUAL(o.signature, sig);
}

static const char *const ok_resp[] = {
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"};

static struct em_storage *open_stub(struct th_stub *s, int path_style, const char *token,
                                    const char *host)
{
    char ep[64];
    snprintf(ep, sizeof ep, "http://%s:%d", host, th_stub_port(s));
    struct em_storage_opts o = em_storage_opts_default();
    o.endpoint = ep;
    o.region = "eu-central-1";
    o.access_key = "TESTAK";
    o.secret_key = "TESTSECRET/+=";
    o.session_token = token;
    o.path_style = path_style;
    o.retries = 0;
    struct em_storage *st = NULL;
    CU_ASSERT_EQUAL(em_storage_open(&o, &st, NULL), EM_OK);
    return st;
}

static void curl_put_signature_matches(void)
{
    struct th_stub *s = th_stub_start(ok_resp, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct em_storage *st = open_stub(s, 1, NULL, "127.0.0.1");
    struct em_errbuf eb = {{0}};
    const char body[] = "{\"caption\": \"a dog barks\"}";
    em_err rc = em_storage_put(st, "s3://bkt/out/a b+c=d \xc3\xa9~.json", body,
                               sizeof body - 1, "application/json", &eb);
    CU_ASSERT_EQUAL(rc, EM_OK);
    if (rc != EM_OK) fprintf(stderr, "put: %s\n", eb.msg);
    CU_ASSERT_EQUAL_FATAL(th_stub_count(s), 1);
    const struct th_stub_req *rq = th_stub_req(s, 0);
    CU_ASSERT_EQUAL(strncmp(rq->head, "PUT /bkt/out/a%20b%2Bc%3Dd%20%C3%A9~.json HTTP/1.1", 49),
                    0);
    check_captured(rq, "eu-central-1", body, sizeof body - 1, 0);
    em_storage_close(st);
    th_stub_stop(s);
}

static void curl_get_signature_matches_with_token(void)
{
    struct th_stub *s = th_stub_start(ok_resp, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct em_storage *st = open_stub(s, 1, "FwoGZXIvYXdzEXAMPLE//token==", "127.0.0.1");
    uint8_t *data = NULL;
    size_t len = 0;
    CU_ASSERT_EQUAL(em_storage_get(st, "s3://bkt/dir/x.wav", &data, &len, NULL), EM_OK);
    CU_ASSERT_EQUAL(len, 5);
    if (data) CU_ASSERT_STRING_EQUAL((char *)data, "hello");
    free(data);
    CU_ASSERT_EQUAL_FATAL(th_stub_count(s), 1);
    const struct th_stub_req *rq = th_stub_req(s, 0);
    CU_ASSERT_EQUAL(strncmp(rq->head, "GET /bkt/dir/x.wav HTTP/1.1", 27), 0);
    char tok[128];
    CU_ASSERT_EQUAL(th_stub_header(rq, "x-amz-security-token", tok, sizeof tok), 0);
    CU_ASSERT_STRING_EQUAL(tok, "FwoGZXIvYXdzEXAMPLE//token==");
    check_captured(rq, "eu-central-1", "", 0, 1);
    em_storage_close(st);
    th_stub_stop(s);
}

static void curl_virtual_host_signature_matches(void)
{
    struct th_stub *s = th_stub_start(ok_resp, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    /* *.localhost resolves to loopback in libcurl */
    struct em_storage *st = open_stub(s, 0, NULL, "localhost");
    struct em_errbuf eb = {{0}};
    em_err rc = em_storage_exists(st, "s3://bkt/k 1", &eb);
    CU_ASSERT_EQUAL(rc, EM_OK);
    if (rc != EM_OK) fprintf(stderr, "exists: %s\n", eb.msg);
    CU_ASSERT_EQUAL_FATAL(th_stub_count(s), 1);
    const struct th_stub_req *rq = th_stub_req(s, 0);
    CU_ASSERT_EQUAL(strncmp(rq->head, "HEAD /k%201 HTTP/1.1", 20), 0);
    char host[128], want[128];
    snprintf(want, sizeof want, "bkt.localhost:%d", th_stub_port(s));
    CU_ASSERT_EQUAL(th_stub_header(rq, "Host", host, sizeof host), 0);
    CU_ASSERT_STRING_EQUAL(host, want);
    check_captured(rq, "eu-central-1", "", 0, 0);
    em_storage_close(st);
    th_stub_stop(s);
}

static CU_TestInfo tests[] = {
    {"aws_get_object", aws_get_object},
    {"aws_put_object", aws_put_object},
    {"aws_get_lifecycle", aws_get_lifecycle},
    {"aws_list_objects", aws_list_objects},
    {"canonical_query_rules", canonical_query_rules},
    {"rejects_bad_requests", rejects_bad_requests},
    {"curl_put_signature_matches", curl_put_signature_matches},
    {"curl_get_signature_matches_with_token", curl_get_signature_matches_with_token},
    {"curl_virtual_host_signature_matches", curl_virtual_host_signature_matches},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_sigv4 = {"sigv4", NULL, NULL, NULL, NULL, tests};
