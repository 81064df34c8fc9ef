/* tests/unit/test_storage_file.c - storage/file.c through em_storage_*: round trip, atomic
 * replace, parent creation, size limit, missing files, no temp files left behind. */
#include <CUnit/CUnit.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "storage/storage.h"
#include "tests/helpers/proc.h"

static char dir[256];
static struct em_storage *st;

static int init(void)
{
    if (th_tmpdir(dir, sizeof dir) != 0) return 1;
    struct em_storage_opts o = em_storage_opts_default();
    o.max_bytes = 1000;
    return em_storage_open(&o, &st, NULL) != EM_OK;
}

static int clean(void)
{
    em_storage_close(st);
    th_rmrf(dir);
    return 0;
}

static void path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

/* Number of entries in d whose name contains ".tmp-". */
static int temp_files(const char *d)
{
    DIR *dp = opendir(d);
    int n = 0;
    struct dirent *e;
    while (dp && (e = readdir(dp)))
        if (strstr(e->d_name, ".tmp-")) n++;
    if (dp) closedir(dp);
    return n;
}

static void round_trip_plain_and_file_uri(void)
{
    char p[512], uri[600];
    struct em_errbuf eb = {{0}};
    path(p, sizeof p, "a/b c/x.json");
    CU_ASSERT_EQUAL(em_storage_put(st, p, "{\"a\":1}", 7, "application/json", &eb), EM_OK);
    CU_ASSERT_EQUAL(em_storage_exists(st, p, &eb), EM_OK);
    uint8_t *d = NULL;
    size_t n = 0;
    /* the same file through a file:// URI with an escaped space */
    snprintf(uri, sizeof uri, "file://%s/a/b%%20c/x.json", dir);
    CU_ASSERT_EQUAL_FATAL(em_storage_get(st, uri, &d, &n, &eb), EM_OK);
    CU_ASSERT_EQUAL(n, 7);
    CU_ASSERT_STRING_EQUAL((char *)d, "{\"a\":1}"); /* NUL-terminated */
    free(d);
    struct stat sb;
    CU_ASSERT_EQUAL(stat(p, &sb), 0);
    CU_ASSERT_EQUAL(sb.st_mode & 0777, 0644);
    char sub[512];
    path(sub, sizeof sub, "a/b c");
    CU_ASSERT_EQUAL(temp_files(sub), 0);
    CU_ASSERT_EQUAL(em_storage_delete(st, uri, &eb), EM_OK);
    CU_ASSERT_EQUAL(em_storage_exists(st, p, &eb), EM_E_NOTFOUND);
    CU_ASSERT_EQUAL(em_storage_delete(st, p, &eb), EM_OK); /* already gone is fine */
}

static void replace_is_atomic_and_complete(void)
{
    char p[512];
    path(p, sizeof p, "r.bin");
    CU_ASSERT_EQUAL(em_storage_put(st, p, "old old old", 11, NULL, NULL), EM_OK);
    struct stat before;
    CU_ASSERT_EQUAL(stat(p, &before), 0);
    CU_ASSERT_EQUAL(em_storage_put(st, p, "new", 3, NULL, NULL), EM_OK);
    struct stat after;
    CU_ASSERT_EQUAL(stat(p, &after), 0);
    /* a rename installs a new inode; an in-place rewrite would keep the old one */
    CU_ASSERT_NOT_EQUAL(before.st_ino, after.st_ino);
    uint8_t *d = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(em_storage_get(st, p, &d, &n, NULL), EM_OK);
    CU_ASSERT_EQUAL(n, 3);
    CU_ASSERT_EQUAL(memcmp(d, "new", 3), 0);
    free(d);
    CU_ASSERT_EQUAL(temp_files(dir), 0);
}

static void empty_object(void)
{
    char p[512];
    path(p, sizeof p, "empty");
    CU_ASSERT_EQUAL(em_storage_put(st, p, NULL, 0, NULL, NULL), EM_OK);
    uint8_t *d = NULL;
    size_t n = 99;
    CU_ASSERT_EQUAL_FATAL(em_storage_get(st, p, &d, &n, NULL), EM_OK);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_PTR_NOT_NULL(d);
    free(d);
}

static void size_limit(void)
{
    char p[512];
    static uint8_t big[1001];
    memset(big, 'x', sizeof big);
    path(p, sizeof p, "big");
    CU_ASSERT_EQUAL(em_storage_put(st, p, big, 1000, NULL, NULL), EM_OK);
    uint8_t *d = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL(em_storage_get(st, p, &d, &n, NULL), EM_OK); /* exactly the limit */
    CU_ASSERT_EQUAL(n, 1000);
    free(d);
    d = NULL;
    CU_ASSERT_EQUAL(em_storage_put(st, p, big, 1001, NULL, NULL), EM_OK);
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL(em_storage_get(st, p, &d, &n, &eb), EM_E_TOO_LONG);
    CU_ASSERT_PTR_NULL(d);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "1001"));
}

static void missing_and_bad(void)
{
    char p[512];
    struct em_errbuf eb = {{0}};
    uint8_t *d = NULL;
    size_t n = 0;
    path(p, sizeof p, "nope/nothing.wav");
    CU_ASSERT_EQUAL(em_storage_get(st, p, &d, &n, &eb), EM_E_NOTFOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "nothing.wav"));
    CU_ASSERT_EQUAL(em_storage_exists(st, p, NULL), EM_E_NOTFOUND);
    /* a directory is not an object */
    CU_ASSERT_EQUAL(em_storage_get(st, dir, &d, &n, NULL), EM_E_ARG);
    CU_ASSERT_EQUAL(em_storage_exists(st, dir, NULL), EM_E_NOTFOUND);
    path(p, sizeof p, "trailing/");
    CU_ASSERT_EQUAL(em_storage_put(st, p, "x", 1, NULL, NULL), EM_E_ARG);
    /* a file in the way of a parent directory */
    char f[512];
    path(f, sizeof f, "plainfile");
    CU_ASSERT_EQUAL(em_storage_put(st, f, "x", 1, NULL, NULL), EM_OK);
    path(p, sizeof p, "plainfile/child");
    CU_ASSERT_NOT_EQUAL(em_storage_put(st, p, "x", 1, NULL, NULL), EM_OK);
    CU_ASSERT_EQUAL(em_storage_get(st, "file:///x/../y", &d, &n, NULL), EM_E_ARG);
    CU_ASSERT_EQUAL(em_storage_get(st, "gopher://x/y", &d, &n, NULL), EM_E_ARG);
    CU_ASSERT_EQUAL(em_storage_get(st, p, NULL, &n, NULL), EM_E_ARG);
    CU_ASSERT_EQUAL(em_storage_put(st, p, NULL, 3, NULL, NULL), EM_E_ARG);
    CU_ASSERT_EQUAL(em_storage_put(st, f, "x", 1, "text/plain\r\nX-Evil: 1", NULL), EM_E_ARG);
}

static void long_names_get_a_short_temp(void)
{
    char name[300], p[600];
    memset(name, 'n', 250);
    name[250] = 0;
    path(p, sizeof p, name);
    CU_ASSERT_EQUAL(em_storage_put(st, p, "ok", 2, NULL, NULL), EM_OK);
    CU_ASSERT_EQUAL(em_storage_exists(st, p, NULL), EM_OK);
}

static CU_TestInfo tests[] = {
    {"round_trip_plain_and_file_uri", round_trip_plain_and_file_uri},
    {"replace_is_atomic_and_complete", replace_is_atomic_and_complete},
    {"empty_object", empty_object},
    {"size_limit", size_limit},
    {"missing_and_bad", missing_and_bad},
    {"long_names_get_a_short_temp", long_names_get_a_short_temp},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_storage_file = {"storage_file", init, clean, NULL, NULL, tests};
