/* tests/unit/test_results_tags.c - results/evtags: tag normalisation (case, separators,
 * plurals), the synonym table format and its errors, set scores and precision / recall / F1
 * on hand-computed cases; the shipped deploy/event-tags.txt parses. */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "results/evtags.h"
#include "tests/helpers/proc.h"

static void norm_is(const struct em_evtags *t, const char *in, const char *want)
{
    char out[EM_EVTAG_MAX_TAG + 1];
    em_evtag_norm(t, in, out, sizeof out);
    if (strcmp(out, want) != 0) printf("\n    '%s' -> '%s', want '%s'", in, out, want);
    CU_ASSERT_STRING_EQUAL(out, want);
}

static void normalisation(void)
{
    norm_is(NULL, "Dogs-Barking", "dog barking");
    norm_is(NULL, "Sirens", "siren");
    norm_is(NULL, "Bodies", "body");
    norm_is(NULL, "glasses", "glass");
    norm_is(NULL, "Boxes", "box");
    norm_is(NULL, "bus", "bus");
    norm_is(NULL, "Car_Horns", "car horn");
    norm_is(NULL, "  Rain  ", "rain");
    norm_is(NULL, "gas", "gas");
    norm_is(NULL, "analysis", "analysis");
    norm_is(NULL, "", "");
}

static void synonym_table(void)
{
    const char *txt = "# comment\n\nspeech: talking, Voices\r\ndog barking: Barks , dog\n";
    struct em_evtags *t = NULL;
    CU_ASSERT_EQUAL_FATAL(em_evtag_parse(txt, strlen(txt), &t, NULL), EM_OK);
    norm_is(t, "Talking", "speech");
    norm_is(t, "voice", "speech");
    norm_is(t, "barks", "dog barking");
    norm_is(t, "DOGS", "dog barking");
    norm_is(t, "speech", "speech");
    norm_is(t, "rain", "rain");
    em_evtag_free(t);
    struct em_errbuf eb = {{0}};
    t = NULL;
    CU_ASSERT_EQUAL(em_evtag_parse("speech: a\nno colon here\n", 24, &t, &eb), EM_E_FORMAT);
    CU_ASSERT_PTR_NULL(t);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "line 2"));
    CU_ASSERT_EQUAL(em_evtag_parse(": a\n", 4, &t, &eb), EM_E_FORMAT);
    CU_ASSERT_EQUAL(em_evtag_parse("x", EM_EVTAG_MAX_FILE + 1, &t, &eb), EM_E_TOO_LONG);
}

static void shipped_table_parses(void)
{
    char path[700];
    size_t len = 0;
    snprintf(path, sizeof path, "%s/deploy/event-tags.txt", th_root());
    char *txt = th_slurp(path, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(txt);
    struct em_evtags *t = NULL;
    struct em_errbuf eb = {{0}};
    em_err rc = em_evtag_parse(txt, len, &t, &eb);
    if (rc != EM_OK) printf("\n    %s", eb.msg);
    CU_ASSERT_EQUAL(rc, EM_OK);
    norm_is(t, "Dog Barks", "dog barking");
    norm_is(t, "male speech", "speech");
    em_evtag_free(t);
    free(txt);
}

static void scores(void)
{
    const char *pred[] = {"Dog", "dogs", "siren", "music"};
    const char *ref[] = {"dog", "rain"};
    struct em_evtag_counts c;
    CU_ASSERT_EQUAL_FATAL(em_evtag_score(NULL, pred, 4, ref, 2, &c, NULL), EM_OK);
    CU_ASSERT_EQUAL(c.tp, 1);
    CU_ASSERT_EQUAL(c.npred, 3); /* dog, siren, music */
    CU_ASSERT_EQUAL(c.nref, 2);
    double p, r, f1;
    em_evtag_prf(&c, &p, &r, &f1);
    CU_ASSERT_DOUBLE_EQUAL(p, 1.0 / 3, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(r, 0.5, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(f1, 0.4, 1e-15);
    struct em_evtag_counts none = {0, 0, 0}, miss = {0, 0, 3}, extra = {0, 2, 0};
    em_evtag_prf(&none, &p, &r, &f1);
    CU_ASSERT(p == 1 && r == 1 && f1 == 1);
    em_evtag_prf(&miss, &p, &r, &f1);
    CU_ASSERT(p == 0 && r == 0 && f1 == 0);
    em_evtag_prf(&extra, &p, &r, &f1);
    CU_ASSERT(p == 0 && r == 0 && f1 == 0);
}

static CU_TestInfo tests[] = {
    {"normalisation", normalisation},
    {"synonym_table", synonym_table},
    {"shipped_table_parses", shipped_table_parses},
    {"scores", scores},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_results_tags = {"results_tags", NULL, NULL, NULL, NULL, tests};
