/* tests/unit/test_prom.c - common/prom: the exposition writer's lines, label escaping and
 * its cap (a text that does not fit is reported, and ends on a whole line). */
#include <CUnit/CUnit.h>
#include <string.h>

#include "common/prom.h"

static void family_and_samples(void)
{
    char buf[512];
    struct em_prom p;
    em_prom_init(&p, buf, sizeof buf);
    em_prom_counter(&p, "x_total", "Things.", 42);
    em_prom_gauge(&p, "y", "A level.", 0.5);
    size_t n = em_prom_end(&p);
    CU_ASSERT_STRING_EQUAL(buf, "# HELP x_total Things.\n# TYPE x_total counter\nx_total 42\n"
                                "# HELP y A level.\n# TYPE y gauge\ny 0.5\n");
    CU_ASSERT_EQUAL(n, strlen(buf));
}

static void label_values_are_escaped(void)
{
    char buf[256];
    struct em_prom p;
    em_prom_init(&p, buf, sizeof buf);
    em_prom_printf(&p, "m{id=\"");
    em_prom_label(&p, "a\"b\\c\nd");
    em_prom_printf(&p, "\"} 1\n");
    CU_ASSERT_STRING_EQUAL(buf, "m{id=\"a\\\"b\\\\c\\nd\"} 1\n");
    em_prom_init(&p, buf, sizeof buf);
    em_prom_label(&p, NULL); /* NULL is the empty value */
    CU_ASSERT_STRING_EQUAL(buf, "");
    CU_ASSERT_EQUAL(em_prom_end(&p), 0);
}

static void a_cut_text_is_reported(void)
{
    char buf[40];
    struct em_prom p;
    em_prom_init(&p, buf, sizeof buf);
    em_prom_printf(&p, "first_line 1\n");
    em_prom_printf(&p, "a_line_that_does_not_fit_in_what_is_left 2\n");
    em_prom_printf(&p, "z 3\n"); /* would fit, but nothing after a cut is written */
    CU_ASSERT_EQUAL(em_prom_end(&p), sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "first_line 1\n"); /* whole lines only */
    em_prom_init(&p, buf, 0);
    em_prom_printf(&p, "x");
    CU_ASSERT_EQUAL(em_prom_end(&p), 0); /* cap 0: cut, and cap is 0 */
    CU_ASSERT(p.cut);
}

static CU_TestInfo tests[] = {
    {"family_and_samples", family_and_samples},
    {"label_values_are_escaped", label_values_are_escaped},
    {"a_cut_text_is_reported", a_cut_text_is_reported},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_prom = {"prom", NULL, NULL, NULL, NULL, tests};
