/* tests/integration/test_it_deploy.c - the deploy artefacts checked by each ecosystem's own
 * tool: one test per check of tests/deploy/check.sh (make install/uninstall, systemd-analyze
 * verify, docker-compose config, kubernetes-validate, promtool), run against the binary
 * under test. Each check prints why it failed; the test asserts its exit status. */
#include <CUnit/CUnit.h>

#include "tests/helpers/proc.h"

#define CHECK_TIMEOUT_S 600 /* bound on one check (a loaded 2-core machine) */

static int run_check(const char *name)
{
    int rc = th_sh("timeout %d '%s/tests/deploy/check.sh' %s '%s'", CHECK_TIMEOUT_S, th_root(),
                   name, th_bin());
    if (rc != 0) fprintf(stderr, "\ndeploy check '%s' exited %d\n", name, rc);
    return rc;
}

static void install_uninstall(void) { CU_ASSERT_EQUAL(run_check("install"), 0); }

static void systemd_units_verify(void) { CU_ASSERT_EQUAL(run_check("systemd"), 0); }

static void docker_images_and_compose(void) { CU_ASSERT_EQUAL(run_check("docker"), 0); }

static void kubernetes_manifests_validate(void) { CU_ASSERT_EQUAL(run_check("k8s"), 0); }

static void prometheus_rules_and_dashboard(void) { CU_ASSERT_EQUAL(run_check("prometheus"), 0); }

static CU_TestInfo tests[] = {
    {"install_uninstall", install_uninstall},
    {"systemd_units_verify", systemd_units_verify},
    {"docker_images_and_compose", docker_images_and_compose},
    {"kubernetes_manifests_validate", kubernetes_manifests_validate},
    {"prometheus_rules_and_dashboard", prometheus_rules_and_dashboard},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_it_deploy = {"it_deploy", NULL, NULL, NULL, NULL, tests};
