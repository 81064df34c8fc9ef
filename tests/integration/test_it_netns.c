/* tests/integration/test_it_netns.c - the multi-host rehearsal: coordinator, Redis and S3 in
 * one network namespace, two workers in two others, joined by veth pairs on 198.18.0.0/24;
 * a batch completes, then one worker's link is cut mid-batch and its task completes on the
 * other worker with nothing lost (tests/deploy/netns_rehearsal.sh, which says what it
 * checks). Needs root for `ip netns add`: run unprivileged it fails and says so. */
#include <CUnit/CUnit.h>
#include <stdio.h>

#include "tests/helpers/proc.h"

#define REHEARSAL_TIMEOUT_S 600 /* two batches on a loaded 2-core machine */

static void batch_survives_a_cut_link(void)
{
    int rc = th_sh("timeout %d '%s/tests/deploy/netns_rehearsal.sh' '%s'", REHEARSAL_TIMEOUT_S,
                   th_root(), th_bin());
    if (rc != 0) fprintf(stderr, "\nnetns rehearsal exited %d\n", rc);
    CU_ASSERT_EQUAL(rc, 0);
}

static CU_TestInfo tests[] = {
    {"batch_survives_a_cut_link", batch_survives_a_cut_link},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_it_netns = {"it_netns", NULL, NULL, NULL, NULL, tests};
