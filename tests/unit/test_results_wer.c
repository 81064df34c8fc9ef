/* tests/unit/test_results_wer.c - results/wer: word and character edit distances on
 * hand-computed pairs, limits, and agreement with jiwer (PyPI) on 300 generated pairs
 * (tests/results/jiwer-pairs.py writes the pairs and jiwer's counts; every pair's errors and
 * reference length, and the corpus WER and CER, must match). */
#include <CUnit/CUnit.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "results/wer.h"
#include "tests/helpers/proc.h"

#define JIWER_PAIRS 300
#define CORPUS_TOL 1e-12

static void words(const char *r, const char *h, size_t s, size_t d, size_t i, size_t nref)
{
    struct em_edits e;
    CU_ASSERT_EQUAL_FATAL(em_wer_words(r, h, &e, NULL), EM_OK);
    if (e.sub != s || e.del != d || e.ins != i || e.ref != nref)
        printf("\n    '%s' vs '%s': S%zu D%zu I%zu N%zu", r, h, e.sub, e.del, e.ins, e.ref);
    CU_ASSERT(e.sub == s && e.del == d && e.ins == i && e.ref == nref);
}

static void word_distances(void)
{
    words("a b c d", "a x c", 1, 1, 0, 4);
    words("a b c d", "a b c d", 0, 0, 0, 4);
    words("", "a b", 0, 0, 2, 0);
    words("a b", "", 0, 2, 0, 2);
    words("the cat sat", "cat sat on the mat", 0, 1, 3, 3); /* "the" dropped, 3 inserted */
    words("a  b   c", " a b c ", 0, 0, 0, 3);
    words("x y", "y x", 2, 0, 0, 2); /* ties prefer the diagonal: S2 rather than D1 I1 */
}

static void char_distances(void)
{
    struct em_edits e;
    CU_ASSERT_EQUAL_FATAL(em_wer_chars("kitten", "sitting", &e, NULL), EM_OK);
    CU_ASSERT_EQUAL(em_edits_errors(&e), 3);
    CU_ASSERT_EQUAL(e.ref, 6);
    CU_ASSERT_EQUAL_FATAL(em_wer_chars("café", "cafe", &e, NULL), EM_OK); /* one code point */
    CU_ASSERT_EQUAL(em_edits_errors(&e), 1);
    CU_ASSERT_EQUAL(e.ref, 4);
    CU_ASSERT_EQUAL_FATAL(em_wer_chars(" a  b ", "a b", &e, NULL), EM_OK);
    CU_ASSERT_EQUAL(em_edits_errors(&e), 0);
    CU_ASSERT_EQUAL(e.ref, 3);
    CU_ASSERT_EQUAL(em_wer_chars("a\xc3", "a", &e, NULL), EM_E_FORMAT);
}

static void limits(void)
{
    uint32_t *v = calloc(EM_WER_MAX_TOKENS + 1, sizeof *v);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    struct em_edits e;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL(em_edits_of(v, EM_WER_MAX_TOKENS + 1, v, 1, &e, &eb), EM_E_TOO_LONG);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "limit"));
    CU_ASSERT_EQUAL(em_edits_of(v, 3, v, 0, &e, NULL), EM_OK);
    CU_ASSERT_EQUAL(e.del, 3);
    free(v);
}

static void agrees_with_jiwer(void)
{
    char dir[512], path[600];
    CU_ASSERT_EQUAL_FATAL(th_tmpdir(dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/pairs.jsonl", dir);
    int rc = th_sh("python3 '%s/tests/results/jiwer-pairs.py' '%s' %d", th_root(), path, JIWER_PAIRS);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    FILE *f = fopen(path, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    char line[8192];
    size_t n = 0, mism = 0, we = 0, wr = 0, ce = 0, cr = 0;
    double cwer = NAN, ccer = NAN;
    while (fgets(line, sizeof line, f)) {
        json_t *o = json_loads(line, 0, NULL);
        if (json_object_get(o, "corpus_wer")) {
            cwer = json_real_value(json_object_get(o, "corpus_wer"));
            ccer = json_real_value(json_object_get(o, "corpus_cer"));
            json_decref(o);
            continue;
        }
        const char *r = json_string_value(json_object_get(o, "ref"));
        const char *h = json_string_value(json_object_get(o, "hyp"));
        struct em_edits w, c;
        CU_ASSERT_FATAL(r && h);
        CU_ASSERT_EQUAL(em_wer_words(r, h, &w, NULL), EM_OK);
        CU_ASSERT_EQUAL(em_wer_chars(r, h, &c, NULL), EM_OK);
        size_t jw = (size_t)json_integer_value(json_object_get(o, "word_errors"));
        size_t jc = (size_t)json_integer_value(json_object_get(o, "char_errors"));
        if (em_edits_errors(&w) != jw || em_edits_errors(&c) != jc ||
            w.ref != (size_t)json_integer_value(json_object_get(o, "ref_words")) ||
            c.ref != (size_t)json_integer_value(json_object_get(o, "ref_chars"))) {
            if (mism++ < 5)
                printf("\n    '%s' vs '%s': words %zu (jiwer %zu), chars %zu (jiwer %zu)", r, h,
                       em_edits_errors(&w), jw, em_edits_errors(&c), jc);
        }
        we += em_edits_errors(&w);
        wr += w.ref;
        ce += em_edits_errors(&c);
        cr += c.ref;
        n++;
        json_decref(o);
    }
    fclose(f);
    th_rmrf(dir);
    CU_ASSERT_EQUAL(n, JIWER_PAIRS);
    CU_ASSERT_EQUAL(mism, 0);
    double mwer = (double)we / (double)wr, mcer = (double)ce / (double)cr;
    printf("\n    %zu pairs: WER %.6f (jiwer %.6f), CER %.6f (jiwer %.6f), %zu mismatches", n, mwer,
           cwer, mcer, ccer, mism);
    CU_ASSERT(fabs(mwer - cwer) <= CORPUS_TOL);
    CU_ASSERT(fabs(mcer - ccer) <= CORPUS_TOL);
}

static CU_TestInfo tests[] = {
    {"word_distances", word_distances},
    {"char_distances", char_distances},
    {"limits", limits},
    {"agrees_with_jiwer", agrees_with_jiwer},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_results_wer = {"results_wer", NULL, NULL, NULL, NULL, tests};
