/* tests/unit/test_source.c - worker/source: the source policy on real files in a temp dir:
 * reads under a root, refusals outside it (with one message for existing and missing
 * paths), ".." and symlink escapes, FIFOs and directories refused without blocking,
 * relative paths, no roots, annotate's any_local, and roots that do not resolve. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/helpers/proc.h"
#include "worker/source.h"

static char dir[512], root[600], outside[600];
static struct em_storage *st;

static int init(void)
{
    if (th_tmpdir(dir, sizeof dir) != 0) return 1;
    snprintf(root, sizeof root, "%s/root", dir);
    snprintf(outside, sizeof outside, "%s/outside", dir);
    if (th_sh("mkdir -p '%s/sub' '%s' && printf abc > '%s/sub/a.wav' && printf secret > "
              "'%s/s.wav' && ln -s '%s/s.wav' '%s/link.wav' && mkfifo '%s/pipe.wav' && mkdir -p "
              "'%s2' && printf abc > '%s2/x.wav'",
              root, outside, root, outside, outside, root, root, root, root) != 0)
        return 1;
    return em_storage_open(NULL, &st, NULL) != EM_OK;
}

static int clean(void)
{
    em_storage_close(st);
    th_sh("rm -rf '%s'", dir);
    return 0;
}

/* Fetches uri (printf-style one %s for a directory) under p; frees the bytes. */
static em_err fetch(const struct em_source_policy *p, const char *uri, struct em_errbuf *eb)
{
    uint8_t *d = NULL;
    size_t n = 0;
    memset(eb, 0, sizeof *eb);
    em_err rc = em_source_fetch(p, st, uri, 0, &d, &n, eb);
    if (rc == EM_OK) CU_ASSERT_TRUE(n > 0);
    free(d);
    return rc;
}

static void reads_under_a_root_only(void)
{
    struct em_source_policy p;
    const char *roots[] = {root};
    CU_ASSERT_EQUAL_FATAL(em_source_policy_init(&p, roots, 1, false, NULL), EM_OK);
    char uri[900];
    struct em_errbuf e1, e2, e3;
    snprintf(uri, sizeof uri, "file://%s/sub/a.wav", root);
    CU_ASSERT_EQUAL(fetch(&p, uri, &e1), EM_OK);
    /* an existing file outside, a missing one outside, a missing one inside: one message */
    snprintf(uri, sizeof uri, "file://%s/s.wav", outside);
    CU_ASSERT_EQUAL(fetch(&p, uri, &e1), EM_E_NOTFOUND);
    snprintf(uri, sizeof uri, "file://%s/nope.wav", outside);
    CU_ASSERT_EQUAL(fetch(&p, uri, &e2), EM_E_NOTFOUND);
    snprintf(uri, sizeof uri, "file://%s/nope.wav", root);
    CU_ASSERT_EQUAL(fetch(&p, uri, &e3), EM_E_NOTFOUND);
    CU_ASSERT_STRING_EQUAL(e1.msg, e2.msg);
    CU_ASSERT_STRING_EQUAL(e1.msg, e3.msg);
    CU_ASSERT_STRING_EQUAL(e1.msg, EM_SOURCE_DENIED);
    /* a symlink in the root pointing out of it, and a plain path climbing out */
    snprintf(uri, sizeof uri, "file://%s/link.wav", root);
    CU_ASSERT_EQUAL(fetch(&p, uri, &e1), EM_E_NOTFOUND);
    snprintf(uri, sizeof uri, "%s/sub/../../outside/s.wav", root);
    CU_ASSERT_EQUAL(fetch(&p, uri, &e1), EM_E_NOTFOUND);
    /* a sibling whose name starts with the root's is not under it */
    snprintf(uri, sizeof uri, "file://%s2/x.wav", root);
    CU_ASSERT_EQUAL(fetch(&p, uri, &e1), EM_E_NOTFOUND);
    em_source_policy_free(&p);
}

static void fifo_and_directory_refused_at_once(void)
{
    struct em_source_policy p;
    const char *roots[] = {root};
    CU_ASSERT_EQUAL_FATAL(em_source_policy_init(&p, roots, 1, false, NULL), EM_OK);
    char uri[900];
    struct em_errbuf eb;
    snprintf(uri, sizeof uri, "file://%s/pipe.wav", root); /* blocked for good before */
    CU_ASSERT_EQUAL(fetch(&p, uri, &eb), EM_E_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "not a regular file"));
    snprintf(uri, sizeof uri, "file://%s/sub", root);
    CU_ASSERT_EQUAL(fetch(&p, uri, &eb), EM_E_ARG);
    em_source_policy_free(&p);
}

static void no_roots_no_local_files(void)
{
    struct em_source_policy p;
    CU_ASSERT_EQUAL_FATAL(em_source_policy_init(&p, NULL, 0, false, NULL), EM_OK);
    char uri[900];
    struct em_errbuf eb;
    snprintf(uri, sizeof uri, "file://%s/sub/a.wav", root);
    CU_ASSERT_EQUAL(fetch(&p, uri, &eb), EM_E_NOTFOUND);
    CU_ASSERT_EQUAL(fetch(NULL, uri, &eb), EM_E_NOTFOUND);
    CU_ASSERT_EQUAL(fetch(&p, "sub/a.wav", &eb), EM_E_ARG); /* relative */
    em_source_policy_free(&p);
    /* annotate: every readable file, still never a FIFO */
    CU_ASSERT_EQUAL_FATAL(em_source_policy_init(&p, NULL, 0, true, NULL), EM_OK);
    snprintf(uri, sizeof uri, "file://%s/s.wav", outside);
    CU_ASSERT_EQUAL(fetch(&p, uri, &eb), EM_OK);
    snprintf(uri, sizeof uri, "file://%s/pipe.wav", root);
    CU_ASSERT_EQUAL(fetch(&p, uri, &eb), EM_E_ARG);
    em_source_policy_free(&p);
}

static void roots_must_resolve(void)
{
    struct em_source_policy p;
    struct em_errbuf eb = {{0}};
    char missing[700], file[700];
    snprintf(missing, sizeof missing, "%s/none", dir);
    snprintf(file, sizeof file, "%s/sub/a.wav", root);
    const char *r1[] = {missing};
    CU_ASSERT_EQUAL(em_source_policy_init(&p, r1, 1, false, &eb), EM_E_ARG);
    CU_ASSERT_EQUAL(p.n_roots, 0);
    const char *r2[] = {file};
    CU_ASSERT_EQUAL(em_source_policy_init(&p, r2, 1, false, &eb), EM_E_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "not a directory"));
    char list[1400];
    snprintf(list, sizeof list, "%s::%s", root, outside); /* empty entries skipped */
    CU_ASSERT_EQUAL_FATAL(em_source_policy_init(&p, NULL, 0, false, NULL), EM_OK);
    CU_ASSERT_EQUAL(em_source_policy_add_list(&p, list, &eb), EM_OK);
    CU_ASSERT_EQUAL(p.n_roots, 2);
    em_source_policy_free(&p);
}

static CU_TestInfo tests[] = {
    {"reads_under_a_root_only", reads_under_a_root_only},
    {"fifo_and_directory_refused_at_once", fifo_and_directory_refused_at_once},
    {"no_roots_no_local_files", no_roots_no_local_files},
    {"roots_must_resolve", roots_must_resolve},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_source = {"source", init, clean, NULL, NULL, tests};
