/* tests/main.c - lists the suites (generated from the test files) and runs them.
 * EM_TEST_SUITE=a,b runs only the named suites; EM_TEST_ONLY_UNIT=1 skips integration
 * suites (names starting with "it_"). Exits with the number of failed tests. */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EM_SUITE(s) extern const CU_SuiteInfo s;
#include "suites.h"
#undef EM_SUITE

static const CU_SuiteInfo *all[] = {
#define EM_SUITE(s) &s,
#include "suites.h"
#undef EM_SUITE
    NULL,
};

static int wanted(const char *name)
{
    const char *only = getenv("EM_TEST_SUITE");
    const char *unit = getenv("EM_TEST_ONLY_UNIT");
    if (unit && *unit == '1' && strncmp(name, "it_", 3) == 0) return 0;
    if (!only || !*only) return 1;
    size_t n = strlen(name);
    for (const char *p = only; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0) return 1;
        p += len + (e ? 1 : 0);
    }
    return 0;
}

int main(void)
{
    static CU_SuiteInfo chosen[256];
    size_t k = 0;
    for (size_t i = 0; all[i] && k + 1 < sizeof chosen / sizeof *chosen; i++)
        if (wanted(all[i]->pName)) chosen[k++] = *all[i];
    chosen[k] = (CU_SuiteInfo)CU_SUITE_INFO_NULL;

    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    if (CU_register_suites(chosen) != CUE_SUCCESS) {
        fprintf(stderr, "suite registration failed: %s\n", CU_get_error_msg());
        return 1;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
    unsigned run = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    if (run == 0) {
        fprintf(stderr, "no test ran\n");
        return 1;
    }
    return failed > 255 ? 255 : (int)failed;
}
