/* tests/unit/test_results_svg.c - results/svg: histogram binning by hand, bars carrying
 * their numbers as attributes, escaping, and an empty plot. */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "results/svg.h"

static void binning(void)
{
    const double v[] = {0, 1, 2, 3, 4, NAN, INFINITY};
    size_t c[4];
    double lo, w;
    CU_ASSERT_EQUAL(em_svg_bin(v, 7, 2, &lo, &w, c), 5);
    CU_ASSERT_DOUBLE_EQUAL(lo, 0, 0);
    CU_ASSERT_DOUBLE_EQUAL(w, 2, 0);
    CU_ASSERT_EQUAL(c[0], 2); /* 0, 1 */
    CU_ASSERT_EQUAL(c[1], 3); /* 2, 3 and the maximum 4 */
    const double same[] = {5, 5, 5};
    CU_ASSERT_EQUAL(em_svg_bin(same, 3, 4, &lo, &w, c), 3);
    CU_ASSERT_DOUBLE_EQUAL(w, 0, 0);
    CU_ASSERT_EQUAL(c[0], 3);
    CU_ASSERT_EQUAL(c[1], 0);
    CU_ASSERT_EQUAL(em_svg_bin(v + 5, 2, 4, &lo, &w, c), 0);
}

static char *render(void (*fn)(FILE *))
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fn(f);
    fclose(f);
    return buf;
}

static void draw_bars(FILE *f)
{
    struct em_svg_bar b[] = {{"<w1>", 3, NAN, NAN}, {"w\"2", 1.5, NAN, NAN}};
    em_svg_bars(f, "workers", "Items & more", "items", b, 2, 1);
}

static void draw_hist(FILE *f)
{
    const double v[] = {1, 2, 2, 3, NAN};
    em_svg_hist(f, "h", "Latency", "items", v, 5, 2);
}

static void draw_empty(FILE *f) { em_svg_bars(f, "e", "Nothing", "x", NULL, 0, 0); }

static void bars_carry_numbers(void)
{
    char *s = render(draw_bars);
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "id=\"workers\" data-total=\"4.5\" data-bars=\"2\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "data-label=\"&lt;w1&gt;\" data-value=\"3\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "data-label=\"w&quot;2\" data-value=\"1.5\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "Items &amp; more"));
    CU_ASSERT_PTR_NULL(strstr(s, "<w1>"));
    free(s);
    s = render(draw_hist);
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "data-total=\"4\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "data-value=\"1\" data-lo=\"1\" data-hi=\"2\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "data-value=\"3\" data-lo=\"2\" data-hi=\"3\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "(4 items)"));
    free(s);
    s = render(draw_empty);
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "no data"));
    CU_ASSERT_PTR_NULL(strstr(s, "<rect"));
    free(s);
}

static CU_TestInfo tests[] = {
    {"binning", binning},
    {"bars_carry_numbers", bars_carry_numbers},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_results_svg = {"results_svg", NULL, NULL, NULL, NULL, tests};
