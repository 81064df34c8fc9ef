/* tests/unit/test_engine.c - continuous batching (model/gen/engine.h through
 * em_model_annotate_on, model/model.h) on the committed tiny checkpoints (tests/golden):
 *   - clips of different lengths (7 s, 11 s, 40 s = two windows, a tone) with 1, 2 or 3
 *     prompts each, run by 2 and by 4 threads at once on one engine, give every clip the ids
 *     it gets alone on an engine, greedy and with seeded hot sampling, on f32 and bf16;
 *   - alone on an engine equals em_model_annotate without one (same tie classes; the paged
 *     cache may split an f32 attention sum differently below AVX-512);
 *   - a KV budget that holds only the largest single window still finishes every clip (the
 *     others wait for memory) with the same ids, and never reserves past the budget;
 *   - a budget under one window fails that clip with EM_E_TOO_LONG naming --kv-budget; a
 *     budget under one page fails at engine creation. */
#include <CUnit/CUnit.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/gen/engine.h"
#include "model/model.h"
#include "tests/golden/golden.h"
#include "tests/helpers/proc.h"
#include "tests/helpers/staged.h"

#define GOLDEN_DISTINCT_ROWS 4096 /* see tests/unit/test_decoder.c */
#define N_CLIPS 4

static int tie_class(int32_t id)
{
    return id >= 151643 && id <= 151648 ? id : id % GOLDEN_DISTINCT_ROWS;
}

static char tmp[512];
static struct em_model *f32, *bf16;
static struct em_audio clips[N_CLIPS];

static const struct em_model_prompt tasks3[3] = {
    {NULL, "caption", NULL}, {NULL, "transcript", NULL}, {NULL, "events", NULL}};
static const size_t n_prompts[N_CLIPS] = {3, 1, 3, 2}; /* per clip */

static int load_clip(const char *name, struct em_audio *a, size_t keep)
{
    memset(a, 0, sizeof *a);
    if (golden_clip(name, tmp, &a->pcm, &a->n) != 0) return -1;
    if (keep && keep < a->n) a->n = keep;
    a->duration_s = (double)a->n / EM_AUDIO_RATE;
    return 0;
}

static int init(void)
{
    if (golden_tmpdir(tmp, sizeof tmp) != 0) return 1;
    if (golden_unpack_tiny(tmp) != 0) return 1;
    char dir[700];
    struct em_errbuf eb = {{0}};
    struct em_model_opts o = em_model_opts_default();
    o.form = EM_MODEL_FORM_BASE;
    snprintf(dir, sizeof dir, "%s/tiny-f32", tmp);
    if (em_model_load(dir, &o, &f32, &eb) != EM_OK) {
        fprintf(stderr, "engine: %s\n", eb.msg);
        return 1;
    }
    snprintf(dir, sizeof dir, "%s/tiny-bf16", tmp);
    if (em_model_load(dir, NULL, &bf16, &eb) != EM_OK) {
        fprintf(stderr, "engine: %s\n", eb.msg);
        return 1;
    }
    return load_clip("speech", &clips[0], 7 * EM_AUDIO_RATE) || load_clip("speech", &clips[1], 0) ||
           load_clip("long", &clips[2], 0) || load_clip("tone", &clips[3], 0);
}

static int clean(void)
{
    em_model_free(f32);
    em_model_free(bf16);
    for (int i = 0; i < N_CLIPS; i++) free(clips[i].pcm);
    golden_rmdir(tmp);
    return 0;
}

static const struct em_gen_params_override greedy = {.max_new_tokens = 12, .greedy = true};
static const struct em_gen_params_override hot = {.max_new_tokens = 12, .temperature = 50,
                                                  .top_p = 1, .top_k = 1000, .set_seed = true,
                                                  .seed = 11};

/* Clips taken in turn by `threads` threads, all annotating on one engine. */
struct run {
    const struct em_model *m;
    struct em_engine *eng;
    const struct em_gen_params_override *o;
    pthread_mutex_t mu;
    int next;
    struct em_model_result *r[N_CLIPS];
    em_err rc[N_CLIPS];
    char msg[N_CLIPS][256];
};

static void *worker(void *arg)
{
    struct run *u = arg;
    for (;;) {
        pthread_mutex_lock(&u->mu);
        int c = u->next++;
        pthread_mutex_unlock(&u->mu);
        if (c >= N_CLIPS) return NULL;
        struct em_errbuf eb = {{0}};
        u->rc[c] = em_model_annotate_on(u->m, u->eng, &clips[c], tasks3, n_prompts[c], u->o,
                                        &u->r[c], &eb);
        memcpy(u->msg[c], eb.msg, sizeof eb.msg);
    }
}

/* Runs every clip with `threads` at once on eng (NULL: no engine, one at a time). */
static void run_all(struct run *u, const struct em_model *m, struct em_engine *eng,
                    const struct em_gen_params_override *o, int threads)
{
    memset(u, 0, sizeof *u);
    u->m = m;
    u->eng = eng;
    u->o = o;
    pthread_mutex_init(&u->mu, NULL);
    pthread_t th[N_CLIPS];
    for (int i = 0; i < threads; i++) CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, worker, u), 0);
    for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
    pthread_mutex_destroy(&u->mu);
}

static void free_run(struct run *u)
{
    for (int c = 0; c < N_CLIPS; c++) em_model_result_free(u->r[c]);
}

/* Every answer of every clip of a equals b's: exactly (ids) or by tie class. */
static void same_answers(const struct run *a, const struct run *b, int exact, const char *what)
{
    for (int c = 0; c < N_CLIPS; c++) {
        CU_ASSERT_EQUAL(a->rc[c], EM_OK);
        CU_ASSERT_EQUAL(b->rc[c], EM_OK);
        if (a->rc[c] != EM_OK || b->rc[c] != EM_OK) {
            printf("\n    %s clip %d: %s / %s", what, c, a->msg[c], b->msg[c]);
            continue;
        }
        CU_ASSERT_EQUAL_FATAL(a->r[c]->n_segments, b->r[c]->n_segments);
        for (size_t s = 0; s < a->r[c]->n_segments; s++)
            for (size_t p = 0; p < n_prompts[c]; p++) {
                const struct em_model_answer *x = &a->r[c]->segments[s].answers[p],
                                             *y = &b->r[c]->segments[s].answers[p];
                size_t same = 0;
                while (same < x->n_ids && same < y->n_ids &&
                       (exact ? x->ids[same] == y->ids[same]
                              : tie_class(x->ids[same]) == tie_class(y->ids[same])))
                    same++;
                if (same != x->n_ids || x->n_ids != y->n_ids)
                    printf("\n    %s clip %d window %zu prompt %zu: %zu vs %zu ids, %zu agree", what,
                           c, s, p, x->n_ids, y->n_ids, same);
                CU_ASSERT_EQUAL(x->n_ids, y->n_ids);
                CU_ASSERT_EQUAL(same, x->n_ids);
                CU_ASSERT_EQUAL(x->stopped, y->stopped);
            }
    }
}

static void capacity_2_and_4_equal_alone(void)
{
    const struct em_model *ms[2] = {f32, bf16};
    const struct em_gen_params_override *os[2] = {&greedy, &hot};
    for (int mi = 0; mi < 2; mi++)
        for (int oi = 0; oi < 2; oi++) {
            struct em_engine *eng = NULL;
            struct em_errbuf eb = {{0}};
            CU_ASSERT_EQUAL_FATAL(em_model_engine_new(ms[mi], EM_KVPOOL_UNLIMITED, &eng, &eb), EM_OK);
            struct run plain, alone, cap2, cap4;
            run_all(&plain, ms[mi], NULL, os[oi], 1);
            run_all(&alone, ms[mi], eng, os[oi], 1);
            run_all(&cap2, ms[mi], eng, os[oi], 2);
            run_all(&cap4, ms[mi], eng, os[oi], 4);
            char what[64];
            snprintf(what, sizeof what, "%s %s", mi ? "bf16" : "f32", oi ? "sampled" : "greedy");
            same_answers(&alone, &plain, 0, what);
            same_answers(&cap2, &alone, 1, what);
            same_answers(&cap4, &alone, 1, what);
            const struct em_engine_stats st = em_engine_stats(eng);
            CU_ASSERT_TRUE(st.steps > 0);
            CU_ASSERT_TRUE(st.max_live >= 3); /* a clip's three prompts step together */
            CU_ASSERT_EQUAL(st.kv.reserved, 0);
            CU_ASSERT_EQUAL(st.kv.in_use, 0);
            free_run(&plain);
            free_run(&alone);
            free_run(&cap2);
            free_run(&cap4);
            em_engine_free(eng);
        }
}

/* The f32 model on the staged backend (tests/helpers/staged.h: the CPU's kernels behind a
 * non-unified table that checks every device pointer), through an engine at capacity 4 with
 * paged caches from that backend's memory: the same ids as on the CPU, no host pointer
 * handed where device memory belongs, and every allocation freed with the model. */
static void staged_backend_engine_equals_cpu(void)
{
    char dir[700];
    snprintf(dir, sizeof dir, "%s/tiny-f32", tmp);
    struct em_model_opts o = em_model_opts_default();
    o.form = EM_MODEL_FORM_BASE;
    o.backend = th_staged_backend();
    th_staged_reset();
    struct em_model *m = NULL;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(em_model_load(dir, &o, &m, &eb), EM_OK);
    CU_ASSERT_STRING_EQUAL(em_model_backend(m), "staged");
    struct em_engine *eng = NULL, *ceng = NULL;
    CU_ASSERT_EQUAL_FATAL(em_model_engine_new(m, EM_KVPOOL_UNLIMITED, &eng, &eb), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_model_engine_new(f32, EM_KVPOOL_UNLIMITED, &ceng, &eb), EM_OK);
    struct run st, cpu;
    run_all(&st, m, eng, &greedy, 4);
    run_all(&cpu, f32, ceng, &greedy, 1);
    same_answers(&st, &cpu, 1, "staged f32 greedy");
    free_run(&st);
    free_run(&cpu);
    em_engine_free(eng);
    em_engine_free(ceng);
    em_model_free(m);
    char first[256];
    size_t n = 0;
    CU_ASSERT_EQUAL(th_staged_violations(first, sizeof first), 0);
    CU_ASSERT_EQUAL(th_staged_live_bytes(&n), 0);
    if (first[0] || n) printf("\n    staged: %s; %zu allocations left", first, n);
}

/* Pages of the largest window of any clip, measured alone on an unlimited engine. */
static size_t largest_window_pages(const struct em_model *m, size_t *page_bytes)
{
    size_t most = 0;
    for (int c = 0; c < N_CLIPS; c++) {
        struct em_engine *eng = NULL;
        CU_ASSERT_EQUAL_FATAL(em_model_engine_new(m, EM_KVPOOL_UNLIMITED, &eng, NULL), EM_OK);
        struct em_model_result *r = NULL;
        CU_ASSERT_EQUAL(em_model_annotate_on(m, eng, &clips[c], tasks3, n_prompts[c], &greedy, &r, NULL),
                        EM_OK);
        const struct em_engine_stats st = em_engine_stats(eng);
        if (st.kv.peak_reserved > most) most = st.kv.peak_reserved;
        *page_bytes = st.page_bytes;
        em_model_result_free(r);
        em_engine_free(eng);
    }
    return most;
}

static void small_budget_waits_and_finishes(void)
{
    size_t page = 0, pages = largest_window_pages(f32, &page);
    CU_ASSERT_FATAL(pages > 0 && page > 0);
    struct em_engine *eng = NULL;
    CU_ASSERT_EQUAL_FATAL(em_model_engine_new(f32, EM_KVPOOL_UNLIMITED, &eng, NULL), EM_OK);
    struct run alone, tight;
    run_all(&alone, f32, eng, &greedy, 1);
    em_engine_free(eng);
    CU_ASSERT_EQUAL_FATAL(em_model_engine_new(f32, (uint64_t)(pages * page), &eng, NULL), EM_OK);
    run_all(&tight, f32, eng, &greedy, 4);
    same_answers(&tight, &alone, 1, "tight budget");
    const struct em_engine_stats st = em_engine_stats(eng);
    CU_ASSERT_TRUE(st.kv.peak_reserved <= pages);
    CU_ASSERT_TRUE(st.kv.allocated <= pages);
    CU_ASSERT_EQUAL(st.kv.reserved, 0);
    free_run(&alone);
    free_run(&tight);
    em_engine_free(eng);
}

static void budget_under_one_window_is_an_item_error(void)
{
    size_t page = 0, pages = largest_window_pages(f32, &page);
    CU_ASSERT_FATAL(pages > 1);
    struct em_engine *eng = NULL;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(em_model_engine_new(f32, (uint64_t)((pages - 1) * page), &eng, &eb), EM_OK);
    struct run u;
    run_all(&u, f32, eng, &greedy, 2);
    int too_long = 0;
    for (int c = 0; c < N_CLIPS; c++) {
        if (u.rc[c] != EM_E_TOO_LONG) continue;
        too_long++;
        CU_ASSERT_PTR_NULL(u.r[c]);
        CU_ASSERT_PTR_NOT_NULL(strstr(u.msg[c], "--kv-budget"));
        CU_ASSERT_PTR_NOT_NULL(strstr(u.msg[c], "KiB of KV cache")); /* tiny: under 1 MiB */
    }
    CU_ASSERT_TRUE(too_long >= 1);
    free_run(&u);
    em_engine_free(eng);
    /* under one page: refused when the engine is made */
    CU_ASSERT_EQUAL(em_model_engine_new(f32, page - 1, &eng, &eb), EM_E_TOO_LONG);
    CU_ASSERT_PTR_NULL(eng);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "under one page"));
}

static CU_TestInfo tests[] = {
    {"staged_backend_engine_equals_cpu", staged_backend_engine_equals_cpu},
    {"capacity_2_and_4_equal_alone", capacity_2_and_4_equal_alone},
    {"small_budget_waits_and_finishes", small_budget_waits_and_finishes},
    {"budget_under_one_window_is_an_item_error", budget_under_one_window_is_an_item_error},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_engine = {"engine", init, clean, NULL, NULL, tests};
