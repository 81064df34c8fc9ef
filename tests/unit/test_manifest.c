/* tests/unit/test_manifest.c - coordinator/manifest: both line formats, bad lines reported
 * with their numbers while the rest goes in, duplicates, limits. */
#include <CUnit/CUnit.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/manifest.h"

struct bad_log {
    unsigned lines[32];
    em_err codes[32];
    char why[32][256];
    int n;
};

static void on_bad(void *ud, unsigned line, em_err code, const char *why)
{
    struct bad_log *b = ud;
    if (b->n < 32) {
        b->lines[b->n] = line;
        b->codes[b->n] = code;
        strncpy(b->why[b->n], why, 255);
        b->why[b->n][255] = 0;
        b->n++;
    }
}

static struct em_manifest *parse(const char *text, struct bad_log *b)
{
    struct em_manifest *m = NULL;
    memset(b, 0, sizeof *b);
    CU_ASSERT_EQUAL(em_manifest_parse((const uint8_t *)text, strlen(text), on_bad, b, &m, NULL),
                    EM_OK);
    return m;
}

static void plain_uris_and_comments(void)
{
    struct bad_log b;
    struct em_manifest *m =
        parse("# header\n\nfile:///a.wav\n  s3://bk/b.mp3  \r\nfile:///tmp/c d.flac", &b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(b.n, 0);
    CU_ASSERT_EQUAL_FATAL(em_manifest_count(m), 3);
    CU_ASSERT_STRING_EQUAL(em_manifest_at(m, 0)->uri, "file:///a.wav");
    CU_ASSERT_EQUAL(em_manifest_at(m, 0)->line, 3);
    CU_ASSERT_STRING_EQUAL(em_manifest_at(m, 1)->uri, "s3://bk/b.mp3");
    CU_ASSERT_STRING_EQUAL(em_manifest_at(m, 2)->uri, "file:///tmp/c d.flac");
    CU_ASSERT_EQUAL(em_manifest_at(m, 2)->line, 5);
    CU_ASSERT_PTR_NULL(em_manifest_at(m, 0)->ref);
    CU_ASSERT_PTR_NULL(em_manifest_at(m, 0)->meta_json);
    CU_ASSERT_PTR_NULL(em_manifest_at(m, 3));
    em_manifest_free(m);
}

static void json_lines_keep_id_and_meta(void)
{
    struct bad_log b;
    struct em_manifest *m = parse("{\"uri\": \"s3://bk/x.wav\", \"id\": \"clip-7\", \"meta\": "
                                  "{\"speaker\": \"ann\", \"n\": 2}}\n"
                                  "{\"uri\":\"s3://bk/y.wav\"}\n",
                                  &b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(b.n, 0);
    CU_ASSERT_EQUAL_FATAL(em_manifest_count(m), 2);
    const struct em_manifest_item *it = em_manifest_at(m, 0);
    CU_ASSERT_STRING_EQUAL(it->uri, "s3://bk/x.wav");
    CU_ASSERT_STRING_EQUAL(it->ref, "clip-7");
    CU_ASSERT_STRING_EQUAL(it->id, "clip-7"); /* the line's id is the item id */
    CU_ASSERT_EQUAL(strlen(em_manifest_at(m, 1)->id), 32); /* else the hash of the uri */
    CU_ASSERT_PTR_NOT_NULL_FATAL(it->meta_json);
    CU_ASSERT_PTR_NOT_NULL(strstr(it->meta_json, "\"speaker\":\"ann\""));
    CU_ASSERT_PTR_NULL(em_manifest_at(m, 1)->meta_json);
    em_manifest_free(m);
}

static void bad_lines_are_reported_and_rest_goes_in(void)
{
    struct bad_log b;
    struct em_manifest *m = parse("file:///ok1.wav\n"
                                  "{\"uri\": 5}\n"
                                  "{not json\n"
                                  "{\"id\": \"x\"}\n"
                                  "[1,2]\n"
                                  "file:///ok2.wav\n"
                                  "bad\x01"
                                  "ctrl\n"
                                  "bad\xc3\x28utf8\n"
                                  "{\"uri\":\"a\",\"id\":3}\n"
                                  "file:///ok3.wav\n",
                                  &b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(em_manifest_count(m), 3); /* ok1, ok2, ok3 */
    CU_ASSERT_EQUAL_FATAL(b.n, 7);
    unsigned want[] = {2, 3, 4, 5, 7, 8, 9};
    for (int i = 0; i < 7; i++) {
        CU_ASSERT_EQUAL(b.lines[i], want[i]);
        CU_ASSERT_EQUAL(b.codes[i], i == 3 ? EM_E_ARG : EM_E_FORMAT); /* "[1,2]": no scheme */
        CU_ASSERT_NOT_EQUAL(b.why[i][0], 0);
    }
    CU_ASSERT_PTR_NOT_NULL(strstr(b.why[1], "invalid JSON"));
    CU_ASSERT_PTR_NOT_NULL(strstr(b.why[2], "uri"));
    CU_ASSERT_EQUAL(em_manifest_bad_count(m), 7);
    CU_ASSERT_STRING_EQUAL(em_manifest_at(m, 2)->uri, "file:///ok3.wav");
    em_manifest_free(m);
}

static void duplicates_are_reported_and_skipped(void)
{
    struct bad_log b;
    struct em_manifest *m =
        parse("file:///a\nfile:///b\n{\"uri\":\"file:///a\"}\nfile:///c\nfile:///b\n", &b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(em_manifest_count(m), 3);
    CU_ASSERT_EQUAL_FATAL(b.n, 2);
    CU_ASSERT_EQUAL(b.lines[0], 3);
    CU_ASSERT_EQUAL(b.codes[0], EM_E_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(b.why[0], "duplicate of line 1"));
    CU_ASSERT_EQUAL(b.lines[1], 5);
    CU_ASSERT_PTR_NOT_NULL(strstr(b.why[1], "duplicate of line 2"));
    em_manifest_free(m);
}

static void ids_make_items_and_are_checked(void)
{
    struct bad_log b;
    struct em_manifest *m = parse("{\"uri\":\"s3://bk/a.wav\",\"id\":\"take-1\"}\n"
                                  "{\"uri\":\"s3://bk/a.wav\",\"id\":\"take-2\"}\n"
                                  "{\"uri\":\"s3://bk/b.wav\",\"id\":\"take-1\"}\n"
                                  "{\"uri\":\"s3://bk/c.wav\",\"id\":\"bad/id\"}\n"
                                  "{\"uri\":\"s3://bk/c.wav\",\"id\":\"\"}\n"
                                  "{\"uri\":\"s3://bk/c.wav\",\"id\":\"..\"}\n"
                                  "s3://bk/a.wav\n",
                                  &b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    /* the same uri under two ids is two items; without an id it is a third */
    CU_ASSERT_EQUAL_FATAL(em_manifest_count(m), 3);
    CU_ASSERT_STRING_EQUAL(em_manifest_at(m, 0)->id, "take-1");
    CU_ASSERT_STRING_EQUAL(em_manifest_at(m, 1)->id, "take-2");
    CU_ASSERT_EQUAL(strlen(em_manifest_at(m, 2)->id), 32);
    CU_ASSERT_EQUAL_FATAL(b.n, 4);
    CU_ASSERT_EQUAL(b.lines[0], 3);
    CU_ASSERT_PTR_NOT_NULL(strstr(b.why[0], "duplicate of line 1"));
    for (int i = 1; i < 4; i++) {
        CU_ASSERT_EQUAL(b.lines[i], (unsigned)i + 3);
        CU_ASSERT_PTR_NOT_NULL(strstr(b.why[i], "\"id\""));
    }
    em_manifest_free(m);
}

static void sources_need_a_scheme(void)
{
    struct bad_log b;
    struct em_manifest *m =
        parse("/abs/x.wav\nrel/y.wav\nftp://h/z.wav\nfile://host/w.wav\nfile:///ok.wav\n", &b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(em_manifest_count(m), 1);
    CU_ASSERT_EQUAL_FATAL(b.n, 4);
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_EQUAL(b.lines[i], (unsigned)i + 1);
        CU_ASSERT_EQUAL(b.codes[i], EM_E_ARG);
    }
    CU_ASSERT_PTR_NOT_NULL(strstr(b.why[0], "no scheme"));
    CU_ASSERT_PTR_NOT_NULL(strstr(b.why[1], "relative"));
    CU_ASSERT_PTR_NOT_NULL(strstr(b.why[2], "unknown scheme"));
    em_manifest_free(m);
}

static void many_items_keep_order_and_find_duplicates(void)
{
    /* crosses several hash-set growths */
    size_t n = 5000, cap = n * 32 + 64, off = 0;
    char *t = malloc(cap);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    for (size_t i = 0; i < n; i++)
        off += (size_t)snprintf(t + off, cap - off, "s3://b/f%zu.wav\n", i);
    off += (size_t)snprintf(t + off, cap - off, "s3://b/f4321.wav\n");
    struct bad_log b;
    struct em_manifest *m = parse(t, &b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(em_manifest_count(m), n);
    CU_ASSERT_STRING_EQUAL(em_manifest_at(m, 4999)->uri, "s3://b/f4999.wav");
    CU_ASSERT_EQUAL_FATAL(b.n, 1);
    CU_ASSERT_EQUAL(b.lines[0], n + 1);
    em_manifest_free(m);
    free(t);
}

static void long_lines_are_refused(void)
{
    size_t n = EM_MANIFEST_MAX_LINE + 10;
    char *t = malloc(n + 64);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    memcpy(t, "s3://b/o\n", 9);
    memset(t + 9, 'x', n);
    memcpy(t + 9 + n, "\ns3://b/l\n", 11);
    struct bad_log b;
    struct em_manifest *m = parse(t, &b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(em_manifest_count(m), 2);
    CU_ASSERT_EQUAL_FATAL(b.n, 1);
    CU_ASSERT_EQUAL(b.lines[0], 2);
    CU_ASSERT_EQUAL(b.codes[0], EM_E_TOO_LONG);
    em_manifest_free(m);
    /* a line under the line limit whose uri is over the uri limit */
    memset(t, 'y', EM_MANIFEST_MAX_URI + 1);
    t[EM_MANIFEST_MAX_URI + 1] = 0;
    m = parse(t, &b);
    CU_ASSERT_EQUAL(em_manifest_count(m), 0);
    CU_ASSERT_EQUAL_FATAL(b.n, 1);
    CU_ASSERT_EQUAL(b.codes[0], EM_E_TOO_LONG);
    em_manifest_free(m);
    free(t);
}

static void empty_and_nul_input(void)
{
    struct em_manifest *m = NULL;
    struct bad_log b = {0};
    CU_ASSERT_EQUAL(em_manifest_parse((const uint8_t *)"", 0, on_bad, &b, &m, NULL), EM_OK);
    CU_ASSERT_EQUAL(em_manifest_count(m), 0);
    em_manifest_free(m);
    const uint8_t nul[] = {'a', 0, 'b', '\n', 's', '3', ':', '/', '/', 'b', '/', 'c'};
    CU_ASSERT_EQUAL(em_manifest_parse(nul, sizeof nul, on_bad, &b, &m, NULL), EM_OK);
    CU_ASSERT_EQUAL(em_manifest_count(m), 1);
    CU_ASSERT_EQUAL(b.n, 1);
    CU_ASSERT_EQUAL(b.lines[0], 1);
    em_manifest_free(m);
    em_manifest_free(NULL);
}

static void utf8_checker(void)
{
    CU_ASSERT_TRUE(em_manifest_text_ok((const uint8_t *)"caf\xc3\xa9 \xf0\x9f\x8e\xb5", 10));
    CU_ASSERT_FALSE(em_manifest_text_ok((const uint8_t *)"\xc0\xaf", 2));         /* overlong */
    CU_ASSERT_FALSE(em_manifest_text_ok((const uint8_t *)"\xed\xa0\x80", 3));     /* surrogate */
    CU_ASSERT_FALSE(em_manifest_text_ok((const uint8_t *)"\xe2\x82", 2));         /* truncated */
    CU_ASSERT_FALSE(em_manifest_text_ok((const uint8_t *)"\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    CU_ASSERT_FALSE(em_manifest_text_ok((const uint8_t *)"a\x7f", 2));
}

static CU_TestInfo tests[] = {
    {"plain_uris_and_comments", plain_uris_and_comments},
    {"json_lines_keep_id_and_meta", json_lines_keep_id_and_meta},
    {"bad_lines_are_reported_and_rest_goes_in", bad_lines_are_reported_and_rest_goes_in},
    {"duplicates_are_reported_and_skipped", duplicates_are_reported_and_skipped},
    {"ids_make_items_and_are_checked", ids_make_items_and_are_checked},
    {"sources_need_a_scheme", sources_need_a_scheme},
    {"many_items_keep_order_and_find_duplicates", many_items_keep_order_and_find_duplicates},
    {"long_lines_are_refused", long_lines_are_refused},
    {"empty_and_nul_input", empty_and_nul_input},
    {"utf8_checker", utf8_checker},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_manifest = {"manifest", NULL, NULL, NULL, NULL, tests};
