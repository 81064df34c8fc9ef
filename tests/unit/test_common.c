/* tests/unit/test_common.c - common/: error table, ids. */
#include <CUnit/CUnit.h>
#include <string.h>

#include "common/err.h"
#include "common/id.h"

static void err_table_is_consistent(void)
{
    CU_ASSERT_STRING_EQUAL(em_err_name(EM_E_AUDIO), "EM_E_AUDIO");
    CU_ASSERT_EQUAL(em_err_from_name("EM_E_AUDIO"), EM_E_AUDIO);
    CU_ASSERT_EQUAL(em_err_from_name("nope"), EM_E_INTERNAL);
    CU_ASSERT_TRUE(em_err_retryable(EM_E_IO));
    CU_ASSERT_FALSE(em_err_retryable(EM_E_AUDIO));
    CU_ASSERT_STRING_EQUAL(em_err_str((em_err)9999), "unknown error");
}

static void errf_fills_buffer(void)
{
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL(em_errf(&eb, EM_E_FORMAT, "line %d: bad", 7), EM_E_FORMAT);
    CU_ASSERT_STRING_EQUAL(eb.msg, "line 7: bad");
    CU_ASSERT_EQUAL(em_errf(NULL, EM_E_IO, "x"), EM_E_IO);
    struct em_errbuf empty = {{0}};
    CU_ASSERT_STRING_EQUAL(em_errbuf_msg(&empty, EM_E_IO), "I/O or network error");
}

static void item_id_is_stable_and_distinct(void)
{
    char a[EM_ID_LEN + 1], b[EM_ID_LEN + 1], c[EM_ID_LEN + 1];
    em_id_item("file:///x.wav", a);
    em_id_item("file:///x.wav", b);
    em_id_item("file:///y.wav", c);
    CU_ASSERT_STRING_EQUAL(a, b); /* no batch in it: a resubmission writes the same key */
    CU_ASSERT_STRING_NOT_EQUAL(a, c);
    CU_ASSERT_EQUAL(strlen(a), EM_ID_LEN);
    CU_ASSERT_TRUE(em_id_valid(a));
}

static void manifest_ids_are_checked(void)
{
    char longest[EM_ID_MAX + 2];
    memset(longest, 'a', sizeof longest);
    longest[EM_ID_MAX] = 0;
    CU_ASSERT_TRUE(em_id_valid("clip-001_v2.wav"));
    CU_ASSERT_TRUE(em_id_valid(longest));
    longest[EM_ID_MAX] = 'a';
    longest[EM_ID_MAX + 1] = 0;
    CU_ASSERT_FALSE(em_id_valid(longest));
    CU_ASSERT_FALSE(em_id_valid(""));
    CU_ASSERT_FALSE(em_id_valid(NULL));
    CU_ASSERT_FALSE(em_id_valid("."));
    CU_ASSERT_FALSE(em_id_valid(".."));
    CU_ASSERT_FALSE(em_id_valid("a/b"));
    CU_ASSERT_FALSE(em_id_valid("a:b"));
    CU_ASSERT_FALSE(em_id_valid("a b"));
    CU_ASSERT_FALSE(em_id_valid("caf\xc3\xa9"));
}

static void sha256_matches_known_vector(void)
{
    char h[65];
    em_sha256_hex("abc", 3, h);
    CU_ASSERT_STRING_EQUAL(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void batch_ids_differ(void)
{
    char a[EM_BATCH_ID_LEN + 1], b[EM_BATCH_ID_LEN + 1];
    em_id_batch(a);
    em_id_batch(b);
    CU_ASSERT_NOT_EQUAL(strcmp(a, b), 0);
    CU_ASSERT_EQUAL(strncmp(a, "b-", 2), 0);
    CU_ASSERT_EQUAL(strlen(a), EM_BATCH_ID_LEN);
}

static CU_TestInfo tests[] = {
    {"err_table_is_consistent", err_table_is_consistent},
    {"errf_fills_buffer", errf_fills_buffer},
    {"item_id_is_stable_and_distinct", item_id_is_stable_and_distinct},
    {"manifest_ids_are_checked", manifest_ids_are_checked},
    {"sha256_matches_known_vector", sha256_matches_known_vector},
    {"batch_ids_differ", batch_ids_differ},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_common = {"common", NULL, NULL, NULL, NULL, tests};
