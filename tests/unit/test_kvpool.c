/* tests/unit/test_kvpool.c - the KV page pool (model/gen/kvpool.h) and paged caches
 * (em_kv_new_paged, model/gen/kvcache.h):
 *   - a paged cache stores and reads back every row across page boundaries, f32 and f16, and
 *     an overlay over a paged base reads the base's rows;
 *   - caches of different lengths freed and allocated in another mix reuse the same pages
 *     (no growth: no fragmentation), and the counters follow;
 *   - a reservation over the whole budget fails at once naming the sizes; one over what is
 *     free waits until another is given back;
 *   - budget parsing ("512MiB", "8G", bytes) and its errors. */
#include <CUnit/CUnit.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/gen/kvcache.h"
#include "model/gen/kvpool.h"

#define LAYERS 3
#define DIM 8

static void fill(float *x, int l, int p, int kv)
{
    /* integers under 2048: exact in f16 too */
    for (int i = 0; i < DIM; i++) x[i] = (float)((l * 131 + p * 7 + i) % 2000) * (kv ? -1.0f : 1.0f);
}

static void rows_round_trip_across_pages(void)
{
    for (int t = 0; t < 2; t++) {
        const enum em_kv_type type = t ? EM_KV_F16 : EM_KV_F32;
        struct em_kvpool *pool = NULL;
        CU_ASSERT_EQUAL_FATAL(em_kvpool_new(NULL, LAYERS, DIM, t ? 2 : 4, EM_KVPOOL_UNLIMITED, &pool, NULL), EM_OK);
        const int cap = 3 * EM_KVPOOL_PAGE_POS + 5, over = 2 * EM_KVPOOL_PAGE_POS + 1;
        CU_ASSERT_EQUAL(em_kvpool_reserve(pool, 8, "test", NULL), EM_OK);
        struct em_kv *kv = NULL, *top = NULL;
        CU_ASSERT_EQUAL_FATAL(em_kv_new_paged(pool, LAYERS, DIM, type, NULL, 0, cap, &kv, NULL), EM_OK);
        CU_ASSERT_EQUAL(em_kvpool_stats(pool).in_use, 4);
        float k[DIM], v[DIM], got[DIM];
        for (int p = 0; p < cap; p++)
            for (int l = 0; l < LAYERS; l++) {
                fill(k, l, p, 0);
                fill(v, l, p, 1);
                em_kv_store(kv, l, p, k, v);
            }
        em_kv_advance(kv, cap);
        /* an overlay of 9 own positions over the first `over` (crossing a page) */
        CU_ASSERT_EQUAL_FATAL(em_kv_new_paged(pool, LAYERS, DIM, type, kv, over, over + 9, &top, NULL),
                              EM_OK);
        CU_ASSERT_EQUAL(em_kvpool_stats(pool).in_use, 5);
        for (int l = 0; l < LAYERS; l++) {
            fill(k, l, over, 0);
            fill(v, l, over, 1);
            k[0] = 0.5f; /* differs from the base's row at that position */
            em_kv_store(top, l, over, k, v);
        }
        int bad = 0;
        for (int p = 0; p < cap; p++)
            for (int l = 0; l < LAYERS; l++) {
                fill(k, l, p, 0);
                em_kv_widen(type, em_kv_k(kv, l, p), got, DIM);
                bad += memcmp(k, got, sizeof k) != 0;
                fill(v, l, p, 1);
                em_kv_widen(type, em_kv_v(kv, l, p), got, DIM);
                bad += memcmp(v, got, sizeof v) != 0;
                if (p < over) bad += em_kv_k(top, l, p) != em_kv_k(kv, l, p);
            }
        CU_ASSERT_EQUAL(bad, 0);
        em_kv_widen(type, em_kv_k(top, 1, over), got, DIM);
        CU_ASSERT_EQUAL(got[0], 0.5f);
        /* rows inside a page are consecutive, across pages not necessarily */
        const size_t row = DIM * em_kv_elem_bytes(kv);
        CU_ASSERT_EQUAL((const char *)em_kv_k(kv, 2, 5) - (const char *)em_kv_k(kv, 2, 4), (long)row);
        /* a mismatched pool or base is refused */
        struct em_kv *bad_kv = NULL;
        CU_ASSERT_EQUAL(em_kv_new_paged(pool, LAYERS, DIM + 1, type, NULL, 0, 4, &bad_kv, NULL), EM_E_ARG);
        CU_ASSERT_EQUAL(em_kv_new_paged(pool, LAYERS, DIM, type, kv, cap + 1, cap + 4, &bad_kv, NULL),
                        EM_E_ARG);
        CU_ASSERT_PTR_NULL(bad_kv);
        em_kv_free(top);
        em_kv_free(kv);
        CU_ASSERT_EQUAL(em_kvpool_stats(pool).in_use, 0);
        em_kvpool_unreserve(pool, 8);
        em_kvpool_free(pool);
    }
}

static void freed_pages_serve_any_length(void)
{
    struct em_kvpool *pool = NULL;
    const size_t page = 2 * LAYERS * EM_KVPOOL_PAGE_POS * DIM * 4;
    CU_ASSERT_EQUAL_FATAL(em_kvpool_new(NULL, LAYERS, DIM, 4, 10 * page + page / 2, &pool, NULL), EM_OK);
    CU_ASSERT_EQUAL(em_kvpool_page_bytes(pool), page);
    CU_ASSERT_EQUAL(em_kvpool_pages_total(pool), 10);
    CU_ASSERT_EQUAL(em_kvpool_pages_for(0, 1), 1);
    CU_ASSERT_EQUAL(em_kvpool_pages_for(0, EM_KVPOOL_PAGE_POS), 1);
    CU_ASSERT_EQUAL(em_kvpool_pages_for(3, EM_KVPOOL_PAGE_POS + 4), 2);
    CU_ASSERT_EQUAL(em_kvpool_pages_for(5, 5), 0);
    CU_ASSERT_EQUAL_FATAL(em_kvpool_reserve(pool, 10, "test", NULL), EM_OK);
    /* lengths 1, 3, 2, 4 pages: all ten */
    const int a[4] = {1, 3, 2, 4};
    struct em_kv *kv[4] = {0};
    for (int i = 0; i < 4; i++)
        CU_ASSERT_EQUAL(em_kv_new_paged(pool, LAYERS, DIM, EM_KV_F32, NULL, 0,
                                        a[i] * EM_KVPOOL_PAGE_POS - 1, &kv[i], NULL), EM_OK);
    CU_ASSERT_EQUAL(em_kvpool_stats(pool).allocated, 10);
    em_kv_free(kv[0]); /* free 1 + 2 pages, not adjacent in any sense */
    em_kv_free(kv[2]);
    CU_ASSERT_EQUAL(em_kvpool_stats(pool).in_use, 7);
    struct em_kv *three = NULL;
    CU_ASSERT_EQUAL(em_kv_new_paged(pool, LAYERS, DIM, EM_KV_F32, NULL, 0, 3 * EM_KVPOOL_PAGE_POS,
                                    &three, NULL), EM_OK);
    const struct em_kvpool_stats st = em_kvpool_stats(pool);
    CU_ASSERT_EQUAL(st.in_use, 10);
    CU_ASSERT_EQUAL(st.allocated, 10); /* reused, nothing new */
    em_kv_free(three);
    em_kv_free(kv[1]);
    em_kv_free(kv[3]);
    em_kvpool_unreserve(pool, 10);
    CU_ASSERT_EQUAL(em_kvpool_stats(pool).peak_reserved, 10);
    em_kvpool_free(pool);
}

struct waiter {
    struct em_kvpool *pool;
    em_err rc;
};

static void *reserve_four(void *arg)
{
    struct waiter *w = arg;
    w->rc = em_kvpool_reserve(w->pool, 4, "waiter", NULL);
    return NULL;
}

static void reservations_wait_and_refuse(void)
{
    struct em_kvpool *pool = NULL;
    const size_t page = 2 * LAYERS * EM_KVPOOL_PAGE_POS * DIM * 2;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL(em_kvpool_new(NULL, LAYERS, DIM, 2, page - 1, &pool, &eb), EM_E_TOO_LONG);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "under one page"));
    CU_ASSERT_EQUAL(em_kvpool_new(NULL, LAYERS, DIM, 3, page, &pool, NULL), EM_E_ARG);
    CU_ASSERT_EQUAL_FATAL(em_kvpool_new(NULL, LAYERS, DIM, 2, 6 * page, &pool, NULL), EM_OK);
    CU_ASSERT_EQUAL(em_kvpool_reserve(pool, 7, "clip x", &eb), EM_E_TOO_LONG);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "clip x: needs"));
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "--kv-budget"));
    CU_ASSERT_EQUAL(em_kvpool_stats(pool).waits, 0);
    CU_ASSERT_EQUAL_FATAL(em_kvpool_reserve(pool, 3, "first", NULL), EM_OK);
    struct waiter w = {pool, EM_E_INTERNAL};
    pthread_t th;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, reserve_four, &w), 0);
    /* until the waiter is blocked (3 + 4 > 6): it counts itself before it waits */
    for (int i = 0; i < 10000 && em_kvpool_stats(pool).waits == 0; i++)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    CU_ASSERT_EQUAL(em_kvpool_stats(pool).waits, 1);
    CU_ASSERT_EQUAL(em_kvpool_stats(pool).reserved, 3);
    em_kvpool_unreserve(pool, 3);
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(w.rc, EM_OK);
    CU_ASSERT_EQUAL(em_kvpool_stats(pool).reserved, 4);
    em_kvpool_unreserve(pool, 4);
    em_kvpool_free(pool);
}

static void budgets_parse(void)
{
    uint64_t b = 0;
    CU_ASSERT_EQUAL(em_kvpool_parse_bytes("512MiB", &b), EM_OK);
    CU_ASSERT_EQUAL(b, 512ull << 20);
    CU_ASSERT_EQUAL(em_kvpool_parse_bytes("8G", &b), EM_OK);
    CU_ASSERT_EQUAL(b, 8ull << 30);
    CU_ASSERT_EQUAL(em_kvpool_parse_bytes("3gib", &b), EM_OK);
    CU_ASSERT_EQUAL(b, 3ull << 30);
    CU_ASSERT_EQUAL(em_kvpool_parse_bytes("1048576", &b), EM_OK);
    CU_ASSERT_EQUAL(b, 1048576);
    CU_ASSERT_EQUAL(em_kvpool_parse_bytes("1T", &b), EM_OK);
    const char *bad[] = {"", "0", "-1G", "1.5G", "12X", "G", " 1G", "2T", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CU_ASSERT_EQUAL(em_kvpool_parse_bytes(bad[i], &b), EM_E_ARG);
    CU_ASSERT_EQUAL(em_kvpool_parse_bytes(NULL, &b), EM_E_ARG);
}

static CU_TestInfo tests[] = {
    {"rows_round_trip_across_pages", rows_round_trip_across_pages},
    {"freed_pages_serve_any_length", freed_pages_serve_any_length},
    {"reservations_wait_and_refuse", reservations_wait_and_refuse},
    {"budgets_parse", budgets_parse},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_kvpool = {"kvpool", NULL, NULL, NULL, NULL, tests};
