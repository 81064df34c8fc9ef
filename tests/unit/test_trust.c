/* tests/unit/test_trust.c - the pieces behind the trust boundaries that need no server:
 * Redis URL parsing (rediss://, ACL user, '@' and %-escapes in passwords, errors that never
 * echo a password), CURVE key files and allow lists (modes, bad lines, empty lists), the
 * file a Redis URL may be read from, and lease tokens. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#include "common/curve.h"
#include "coordinator/cli.h"
#include "coordinator/coord.h"
#include "coordinator/queue.h"
#include "tests/helpers/proc.h"

static char dir[512];

static int init(void) { return th_tmpdir(dir, sizeof dir); }
static int clean(void)
{
    th_rmrf(dir);
    return 0;
}

static void url_plain_and_tls(void)
{
    struct em_redis_url u;
    CU_ASSERT_EQUAL_FATAL(em_redis_url_parse("redis://127.0.0.1:6380/2", &u, NULL), EM_OK);
    CU_ASSERT_EQUAL(u.tls, 0);
    CU_ASSERT_STRING_EQUAL(u.host, "127.0.0.1");
    CU_ASSERT_EQUAL(u.port, 6380);
    CU_ASSERT_EQUAL(u.db, 2);
    CU_ASSERT_STRING_EQUAL(u.password, "");
    CU_ASSERT_EQUAL_FATAL(em_redis_url_parse("rediss://cache.internal", &u, NULL), EM_OK);
    CU_ASSERT_EQUAL(u.tls, 1);
    CU_ASSERT_EQUAL(u.port, 6379);
    CU_ASSERT_EQUAL_FATAL(em_redis_url_parse("rediss://[::1]:7000", &u, NULL), EM_OK);
    CU_ASSERT_STRING_EQUAL(u.host, "::1");
    CU_ASSERT_EQUAL(u.port, 7000);
    CU_ASSERT_EQUAL_FATAL(em_redis_url_parse("localhost:6379", &u, NULL), EM_OK);
    CU_ASSERT_STRING_EQUAL(u.host, "localhost");
}

static void url_acl_user_and_at_in_password(void)
{
    struct em_redis_url u;
    CU_ASSERT_EQUAL_FATAL(em_redis_url_parse("redis://earmark:p@ss@w0rd@10.0.0.1:6379", &u, NULL),
                          EM_OK);
    CU_ASSERT_STRING_EQUAL(u.user, "earmark");
    CU_ASSERT_STRING_EQUAL(u.password, "p@ss@w0rd");
    CU_ASSERT_STRING_EQUAL(u.host, "10.0.0.1");
    CU_ASSERT_EQUAL_FATAL(em_redis_url_parse("rediss://us%65r:a%40b%3Ac%2Fd%25@h:1", &u, NULL),
                          EM_OK);
    CU_ASSERT_STRING_EQUAL(u.user, "user");
    CU_ASSERT_STRING_EQUAL(u.password, "a@b:c/d%");
    CU_ASSERT_EQUAL_FATAL(em_redis_url_parse("redis://:only-pw@h", &u, NULL), EM_OK);
    CU_ASSERT_STRING_EQUAL(u.user, "");
    CU_ASSERT_STRING_EQUAL(u.password, "only-pw");
}

static void url_errors_never_show_the_password(void)
{
    static const char *bad[] = {
        "redis://u:s3cr3t-pw@h:99999",   "redis://u:s3cr3t-pw@h:x",  "redis://u:s3cr3t-pw%zz@h",
        "redis://u:s3cr3t-pw%00@h",      "redis://u:s3cr3t-pw@:1",   "http://u:s3cr3t-pw@h",
        "redis://u:s3cr3t-pw@h/notadb",  "redis://u:s3cr3t-pw@[::1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct em_redis_url u;
        struct em_errbuf eb = {{0}};
        CU_ASSERT_EQUAL(em_redis_url_parse(bad[i], &u, &eb), EM_E_ARG);
        CU_ASSERT_PTR_NULL(strstr(eb.msg, "s3cr3t"));
        CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "redis url"));
    }
}

static void keys_round_trip_and_modes(void)
{
    char prefix[600], path[700];
    snprintf(prefix, sizeof prefix, "%s/k1", dir);
    CU_ASSERT_EQUAL_FATAL(em_curve_keygen(prefix, NULL), EM_OK);
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL(em_curve_keygen(prefix, &eb), EM_E_ARG); /* never overwrites */
    snprintf(path, sizeof path, "%s.key", prefix);
    struct stat st;
    CU_ASSERT_EQUAL_FATAL(stat(path, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
    struct em_curve_pair p;
    char pub[EM_CURVE_Z85 + 1];
    CU_ASSERT_EQUAL_FATAL(em_curve_load_pair(path, &p, NULL), EM_OK);
    snprintf(path, sizeof path, "%s.pub", prefix);
    CU_ASSERT_EQUAL_FATAL(em_curve_load_pub(path, pub, NULL), EM_OK);
    CU_ASSERT_STRING_EQUAL(p.pub, pub); /* the public key derives from the secret one */
    snprintf(path, sizeof path, "%s.key", prefix);
    chmod(path, 0640);
    CU_ASSERT_EQUAL(em_curve_load_pair(path, &p, &eb), EM_E_AUTH);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "chmod 600"));
    CU_ASSERT_STRING_EQUAL(p.sec, "");
    /* not a key */
    snprintf(path, sizeof path, "%s/bad.pub", dir);
    FILE *f = fopen(path, "w");
    fputs("# comment\nnot-a-key\n", f);
    fclose(f);
    CU_ASSERT_EQUAL(em_curve_load_pub(path, pub, &eb), EM_E_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "line 2"));
}

static void allow_lists(void)
{
    char d[600], prefix[700], path[700];
    snprintf(d, sizeof d, "%s/allowed", dir);
    CU_ASSERT_EQUAL_FATAL(mkdir(d, 0755), 0);
    struct em_curve_allow *a = NULL;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL(em_curve_allow_load(d, &a, &eb), EM_E_ARG); /* empty: everyone refused */
    snprintf(prefix, sizeof prefix, "%s/w1", d);
    CU_ASSERT_EQUAL_FATAL(em_curve_keygen(prefix, NULL), EM_OK);
    snprintf(prefix, sizeof prefix, "%s/w2", d);
    CU_ASSERT_EQUAL_FATAL(em_curve_keygen(prefix, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_curve_allow_load(d, &a, NULL), EM_OK);
    CU_ASSERT_EQUAL(em_curve_allow_count(a), 2); /* the .key files are not read */
    struct em_curve_pair p;
    snprintf(path, sizeof path, "%s/w2.key", d);
    CU_ASSERT_EQUAL_FATAL(em_curve_load_pair(path, &p, NULL), EM_OK);
    uint8_t bin[EM_CURVE_BIN];
    zmq_z85_decode(bin, p.pub);
    CU_ASSERT_TRUE(em_curve_allow_has(a, bin, sizeof bin));
    bin[0] ^= 1;
    CU_ASSERT_FALSE(em_curve_allow_has(a, bin, sizeof bin));
    CU_ASSERT_FALSE(em_curve_allow_has(a, bin, 31));
    em_curve_allow_free(a);
    chmod(d, 0777); /* whoever may write it decides who gets tasks */
    CU_ASSERT_EQUAL(em_curve_allow_load(d, &a, &eb), EM_E_AUTH);
    chmod(d, 0755);
    /* a file of keys, one per line */
    snprintf(path, sizeof path, "%s/list", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "# workers\n%s\n\n  %s  \n", p.pub, p.pub);
    fclose(f);
    CU_ASSERT_EQUAL_FATAL(em_curve_allow_load(path, &a, NULL), EM_OK);
    CU_ASSERT_EQUAL(em_curve_allow_count(a), 2);
    em_curve_allow_free(a);
    f = fopen(path, "a");
    fputs("garbage\n", f);
    fclose(f);
    CU_ASSERT_EQUAL(em_curve_allow_load(path, &a, &eb), EM_E_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "line 5"));
}

static void url_file_must_be_private(void)
{
    char path[600], url[EM_CLI_MAX_URL + 1];
    snprintf(path, sizeof path, "%s/redis-url", dir);
    FILE *f = fopen(path, "w");
    fputs("\n  rediss://earmark:pw@h:6380  \n", f);
    fclose(f);
    chmod(path, 0600);
    CU_ASSERT_EQUAL_FATAL(em_cli_secret_line(path, url, sizeof url, NULL), EM_OK);
    CU_ASSERT_STRING_EQUAL(url, "rediss://earmark:pw@h:6380");
    chmod(path, 0644);
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL(em_cli_secret_line(path, url, sizeof url, &eb), EM_E_AUTH);
    CU_ASSERT_PTR_NULL(strstr(eb.msg, "pw@"));
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "chmod 600"));
}

static void lease_tokens_are_random_hex(void)
{
    char a[EM_COORD_LEASE_HEX + 1], b[EM_COORD_LEASE_HEX + 1];
    CU_ASSERT_EQUAL_FATAL(em_coord_lease_new(a), 0);
    CU_ASSERT_EQUAL_FATAL(em_coord_lease_new(b), 0);
    CU_ASSERT_EQUAL(strlen(a), EM_COORD_LEASE_HEX);
    CU_ASSERT_EQUAL(strspn(a, "0123456789abcdef"), EM_COORD_LEASE_HEX);
    CU_ASSERT_STRING_NOT_EQUAL(a, b);
}

static CU_TestInfo tests[] = {
    {"url_plain_and_tls", url_plain_and_tls},
    {"url_acl_user_and_at_in_password", url_acl_user_and_at_in_password},
    {"url_errors_never_show_the_password", url_errors_never_show_the_password},
    {"keys_round_trip_and_modes", keys_round_trip_and_modes},
    {"allow_lists", allow_lists},
    {"url_file_must_be_private", url_file_must_be_private},
    {"lease_tokens_are_random_hex", lease_tokens_are_random_hex},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_trust = {"trust", init, clean, NULL, NULL, tests};
