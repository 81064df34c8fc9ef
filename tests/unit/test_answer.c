/* tests/unit/test_answer.c - model/text/answer.c: events answers split into tags (separators,
 * numbering, quotes, punctuation, case, duplicates, bounds, invalid UTF-8) and answer text
 * tidying (trim, transcription preamble, quotes). */
#include <CUnit/CUnit.h>
#include <stdlib.h>
#include <string.h>

#include "model/text/answer.h"

/* Tags of text as one "|"-joined string (static buffer), for compact assertions. */
static const char *tags_of(const char *text)
{
    static char buf[4096];
    struct em_tags t = {0};
    CU_ASSERT_EQUAL(em_tags_add(&t, text, strlen(text)), EM_OK);
    buf[0] = '\0';
    for (size_t i = 0; i < t.n; i++) {
        if (i) strncat(buf, "|", sizeof buf - strlen(buf) - 1);
        strncat(buf, t.v[i], sizeof buf - strlen(buf) - 1);
    }
    em_tags_free(&t);
    return buf;
}

static void splits_on_separators(void)
{
    CU_ASSERT_STRING_EQUAL(tags_of("Dog barking, car horn; rain\nwind|thunder"),
                           "dog barking|car horn|rain|wind|thunder");
    CU_ASSERT_STRING_EQUAL(tags_of("speech and music and Applause."), "speech|music|applause");
    /* "and" inside a word is not a separator */
    CU_ASSERT_STRING_EQUAL(tags_of("sand, handclaps, band"), "sand|handclaps|band");
    CU_ASSERT_STRING_EQUAL(tags_of("\xE7\x8B\x97\xEF\xBC\x8C\xE7\x8C\xAB"), /* 狗，猫 */
                           "\xE7\x8B\x97|\xE7\x8C\xAB");
}

static void strips_numbering_quotes_and_punctuation(void)
{
    CU_ASSERT_STRING_EQUAL(tags_of("1. Dog barking\n2) \"Car horn\"\n- rain.\n* 'wind'!\n\xE2\x80\xA2 birds"),
                           "dog barking|car horn|rain|wind|birds");
    CU_ASSERT_STRING_EQUAL(tags_of("(engine idling), [music]"), "engine idling|music");
    /* inner brackets and hyphens stay, whitespace collapses */
    CU_ASSERT_STRING_EQUAL(tags_of("  hip-hop   music (live) "), "hip-hop music (live)");
    CU_ASSERT_STRING_EQUAL(tags_of("\xE2\x80\x9C" "Glass Breaking" "\xE2\x80\x9D"), "glass breaking");
    /* a number that is the tag itself stays */
    CU_ASSERT_STRING_EQUAL(tags_of("2 dogs, 1984"), "2 dogs|1984");
}

static void lower_cases_unicode_and_dedups(void)
{
    CU_ASSERT_STRING_EQUAL(tags_of("Dog, DOG, dog., \xC3\x89" "CLAT, \xC3\xA9" "clat"),
                           "dog|\xC3\xA9" "clat");
    struct em_tags t = {0};
    CU_ASSERT_EQUAL(em_tags_add(&t, "rain, wind", 10), EM_OK);
    CU_ASSERT_EQUAL(em_tags_add(&t, "Wind and birds", 14), EM_OK); /* across answers too */
    CU_ASSERT_EQUAL_FATAL(t.n, 3);
    CU_ASSERT_STRING_EQUAL(t.v[2], "birds");
    em_tags_free(&t);
    CU_ASSERT_EQUAL(t.n, 0);
    CU_ASSERT_PTR_NULL(t.v);
}

static void empty_and_junk_give_nothing(void)
{
    CU_ASSERT_STRING_EQUAL(tags_of(""), "");
    CU_ASSERT_STRING_EQUAL(tags_of(" , ;;\n\n. - \"\" ()"), "");
    struct em_tags t = {0};
    CU_ASSERT_EQUAL(em_tags_add(&t, NULL, 5), EM_OK);
    CU_ASSERT_EQUAL(t.n, 0);
    /* invalid UTF-8 bytes and control characters are dropped, not kept in a tag */
    CU_ASSERT_STRING_EQUAL(tags_of("do\xFFg, \xC3(cat\x01)"), "dog|cat");
    em_tags_free(NULL);
}

static void bounds_are_enforced(void)
{
    char long_tag[300];
    memset(long_tag, 'a', 10);
    for (int i = 10; i < 290; i++) long_tag[i] = i % 7 ? 'x' : ' ';
    long_tag[290] = '\0';
    struct em_tags t = {0};
    CU_ASSERT_EQUAL(em_tags_add(&t, long_tag, strlen(long_tag)), EM_OK);
    CU_ASSERT_EQUAL_FATAL(t.n, 1);
    CU_ASSERT_TRUE(strlen(t.v[0]) <= EM_ANSWER_MAX_TAG_BYTES);
    CU_ASSERT_TRUE(strlen(t.v[0]) >= EM_ANSWER_MAX_TAG_BYTES - 8);
    CU_ASSERT_NOT_EQUAL(t.v[0][strlen(t.v[0]) - 1], ' ');
    em_tags_free(&t);
    /* multi-byte characters are never cut in half: 40 x "é" (80 bytes) -> 32 characters */
    char acc[200] = "";
    for (int i = 0; i < 40; i++) strcat(acc, "\xC3\xA9");
    CU_ASSERT_EQUAL(em_tags_add(&t, acc, strlen(acc)), EM_OK);
    CU_ASSERT_EQUAL_FATAL(t.n, 1);
    CU_ASSERT_EQUAL(strlen(t.v[0]), 64);
    em_tags_free(&t);
    /* more distinct tags than EM_ANSWER_MAX_TAGS: the first ones are kept, the rest counted */
    char many[4096] = "";
    for (int i = 0; i < EM_ANSWER_MAX_TAGS + 10; i++) {
        char one[32];
        snprintf(one, sizeof one, "tag%d, ", i);
        strcat(many, one);
    }
    CU_ASSERT_EQUAL(em_tags_add(&t, many, strlen(many)), EM_OK);
    CU_ASSERT_EQUAL(t.n, EM_ANSWER_MAX_TAGS);
    CU_ASSERT_EQUAL(t.dropped, 10);
    CU_ASSERT_STRING_EQUAL(t.v[0], "tag0");
    CU_ASSERT_STRING_EQUAL(t.v[EM_ANSWER_MAX_TAGS - 1], "tag63");
    em_tags_free(&t);
}

static void text_is_trimmed_and_unwrapped(void)
{
    struct {
        const char *in, *want;
    } cases[] = {
        {"  Glass is breaking.\n", "Glass is breaking."},
        {"The original content of this audio is: 'Mister Quiller is the apostle.'",
         "Mister Quiller is the apostle."},
        {"the ORIGINAL content of this audio is:\"hello\"", "hello"},
        {"\xE2\x80\x9C" "curly" "\xE2\x80\x9D", "curly"},
        {"'unbalanced", "'unbalanced"},
        {"It's 'quoted' inside", "It's 'quoted' inside"},
        {"", ""},
        {"  \n ", ""},
        {"\"", "\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *t = em_answer_text(cases[i].in, strlen(cases[i].in));
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        if (strcmp(t, cases[i].want) != 0) printf("\n    case %zu: got '%s' want '%s'", i, t, cases[i].want);
        CU_ASSERT_STRING_EQUAL(t, cases[i].want);
        free(t);
    }
    char *t = em_answer_text(NULL, 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_STRING_EQUAL(t, "");
    free(t);
    /* len bounds the read: no NUL needed within it */
    t = em_answer_text(" abcdef", 4);
    CU_ASSERT_STRING_EQUAL(t, "abc");
    free(t);
}

static CU_TestInfo tests[] = {
    {"splits_on_separators", splits_on_separators},
    {"strips_numbering_quotes_and_punctuation", strips_numbering_quotes_and_punctuation},
    {"lower_cases_unicode_and_dedups", lower_cases_unicode_and_dedups},
    {"empty_and_junk_give_nothing", empty_and_junk_give_nothing},
    {"bounds_are_enforced", bounds_are_enforced},
    {"text_is_trimmed_and_unwrapped", text_is_trimmed_and_unwrapped},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_answer = {"answer", NULL, NULL, NULL, NULL, tests};
