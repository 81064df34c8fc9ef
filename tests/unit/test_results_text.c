/* tests/unit/test_results_text.c - results/textnorm: the normaliser's steps on hand-written
 * sentences (case, marks, brackets, punctuation, contractions, spellings, fillers, number
 * words), bad input, and the rule table in docs/eval.md agreeing with the code's. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "results/textnorm.h"
#include "tests/helpers/proc.h"

static void expect(const char *in, const char *want)
{
    char *out = NULL;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(em_textnorm(in, strlen(in), &out, &eb), EM_OK);
    if (strcmp(out, want) != 0) printf("\n    '%s' -> '%s', want '%s'", in, out, want);
    CU_ASSERT_STRING_EQUAL(out, want);
    free(out);
}

static void case_punctuation_and_marks(void)
{
    expect("Hello, World!", "hello world");
    expect("  Café   NAÏVE\tstraße ", "cafe naive strasse");
    expect("", "");
    expect("...!?", "");
    expect("'quoted' dogs' end", "quoted dogs end");
    expect("rock-and-roll / jazz", "rock and roll jazz");
}

static void brackets_are_removed(void)
{
    expect("I went [music] home (laughs) today", "i went home today");
    expect("[noise]", "");
    expect("unclosed ] bracket", "unclosed bracket");
}

static void contractions_titles_spellings_fillers(void)
{
    expect("I won't go to Mr. Smith's", "i will not go to mister smith's");
    expect("They're here and we'll see; don't", "they are here and we will see do not");
    expect("Uh, hmm, the colour of the harbour", "the color of the harbor");
    expect("Seven ships sailed out of the harbour at dawn.", "7 ships sailed out of the harbor at dawn");
}

static void numbers(void)
{
    expect("It is twelve degrees and raining in the city.", "it is 12 degrees and raining in the city");
    expect("twenty-one thousand three hundred and five", "21305");
    expect("one two three", "1 2 3");
    expect("twenty twenty", "20 20");
    expect("one thousand two hundred people", "1200 people");
    expect("a hundred dogs", "a hundred dogs");
    expect("3.5 and 1,000 people", "3.5 and 1000 people");
    expect("nineteen ninety nine", "19 99");
    expect("hundred and five", "hundred and 5");
}

static void bad_input(void)
{
    char *out = NULL;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL(em_textnorm("ab\xff", 3, &out, &eb), EM_E_FORMAT);
    CU_ASSERT_PTR_NULL(out);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "UTF-8"));
    char *big = malloc(EM_TEXTNORM_MAX + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    memset(big, 'a', EM_TEXTNORM_MAX + 1);
    CU_ASSERT_EQUAL(em_textnorm(big, EM_TEXTNORM_MAX + 1, &out, &eb), EM_E_TOO_LONG);
    free(big);
}

/* docs/eval.md's table rows "| KIND | `from` | `to` |" (or "(dropped)") equal rules[]. */
static void docs_table_is_the_code_table(void)
{
    char path[700];
    snprintf(path, sizeof path, "%s/docs/eval.md", th_root());
    char *doc = th_slurp(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    size_t n = 0, k = 0;
    const struct em_tn_rule *r = em_tn_rules(&n);
    for (char *line = strtok(doc, "\n"); line; line = strtok(NULL, "\n")) {
        char kind[32], from[64], to[64];
        if (sscanf(line, "| %31[A-Z_] | `%63[^`]` | %63[^|]|", kind, from, to) != 3) continue;
        if (strcmp(kind, "kind") == 0) continue;
        char *e = to + strlen(to);
        while (e > to && e[-1] == ' ') *--e = 0;
        char want[80];
        snprintf(want, sizeof want, r[k].to ? "`%s`" : "(dropped)", r[k].to ? r[k].to : "");
        if (k >= n || strcmp(kind, em_tn_kind_name(r[k].kind)) != 0 || strcmp(from, r[k].from) != 0 ||
            strcmp(to, want) != 0) {
            printf("\n    docs row %zu '%s' differs from rules[%zu]", k, line, k);
            CU_FAIL("docs/eval.md and textnorm.c rules[] differ");
            break;
        }
        k++;
    }
    CU_ASSERT_EQUAL(k, n);
    free(doc);
}

static CU_TestInfo tests[] = {
    {"case_punctuation_and_marks", case_punctuation_and_marks},
    {"brackets_are_removed", brackets_are_removed},
    {"contractions_titles_spellings_fillers", contractions_titles_spellings_fillers},
    {"numbers", numbers},
    {"bad_input", bad_input},
    {"docs_table_is_the_code_table", docs_table_is_the_code_table},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_results_text = {"results_text", NULL, NULL, NULL, NULL, tests};
