/* tests/unit/test_sampler.c - model/sampler on small hand-checked distributions:
 * HF repetition penalty, greedy tie-break, top-k (ties kept), top-p cut, temperature,
 * seeding, parameter checks, and the generation-config mapping. */
#include <CUnit/CUnit.h>
#include <math.h>
#include <string.h>

#include "model/gen/generate.h"
#include "model/gen/sampler.h"

static struct em_sampler *mk(bool sample, float temp, int k, float p, float pen, uint64_t seed,
                             int vocab)
{
    struct em_sampler_params sp = {sample, temp, k, p, pen, seed};
    struct em_sampler *s = NULL;
    CU_ASSERT_EQUAL(em_sampler_new(&sp, vocab, &s, NULL), EM_OK);
    return s;
}

static void penalty_is_hf_and_greedy_takes_first_max(void)
{
    struct em_sampler *s = mk(false, 1, 0, 1, 2.0f, 0, 4);
    float lg[4] = {2.0f, -1.0f, 0.5f, 3.0f};
    int32_t hist[] = {0, 1, 1, 7, -3}; /* repeated and out-of-range ids */
    int32_t id;
    CU_ASSERT_EQUAL(em_sampler_pick(s, lg, hist, 5, &id), EM_OK);
    CU_ASSERT_DOUBLE_EQUAL(lg[0], 1.0, 1e-7);  /* positive: divided once */
    CU_ASSERT_DOUBLE_EQUAL(lg[1], -2.0, 1e-7); /* negative: multiplied once */
    CU_ASSERT_DOUBLE_EQUAL(lg[2], 0.5, 1e-7);
    CU_ASSERT_EQUAL(id, 3);
    float lg2[4] = {2.0f, -1.0f, 0.5f, 3.0f};
    int32_t h3[] = {3};
    CU_ASSERT_EQUAL(em_sampler_pick(s, lg2, h3, 1, &id), EM_OK); /* 3 -> 1.5 */
    CU_ASSERT_EQUAL(id, 0);
    em_sampler_free(s);
    s = mk(false, 1, 0, 1, 1.0f, 0, 5);
    float tie[5] = {-INFINITY, 1, 4, 4, NAN};
    CU_ASSERT_EQUAL(em_sampler_pick(s, tie, NULL, 0, &id), EM_OK);
    CU_ASSERT_EQUAL(id, 2);
    float none[5] = {-INFINITY, NAN, -INFINITY, NAN, -INFINITY};
    CU_ASSERT_EQUAL(em_sampler_pick(s, none, NULL, 0, &id), EM_E_ARG);
    em_sampler_free(s);
}

/* Counts draws of each id over n picks of the same logits. */
static void draws(struct em_sampler *s, const float *lg, int vocab, int n, int *count)
{
    memset(count, 0, (size_t)vocab * sizeof *count);
    float buf[16];
    for (int i = 0; i < n; i++) {
        memcpy(buf, lg, (size_t)vocab * sizeof *buf);
        int32_t id = -1;
        CU_ASSERT_EQUAL(em_sampler_pick(s, buf, NULL, 0, &id), EM_OK);
        if (id >= 0 && id < vocab) count[id]++;
    }
}

static void top_k_keeps_the_k_largest_and_ties(void)
{
    float lg[6] = {1.0f, 3.0f, 2.0f, 0.5f, 2.0f, -1.0f};
    int c[6];
    struct em_sampler *s = mk(true, 1, 2, 1, 1, 42, 6);
    draws(s, lg, 6, 4000, c);
    /* top-2 by value: 3.0 and 2.0; both 2.0 entries tie at the threshold and stay */
    CU_ASSERT_EQUAL(c[0] + c[3] + c[5], 0);
    CU_ASSERT_TRUE(c[1] > 0 && c[2] > 0 && c[4] > 0);
    /* p(1) = e^3 / (e^3 + 2 e^2) = 0.5761 */
    CU_ASSERT_DOUBLE_EQUAL(c[1] / 4000.0, 0.5761, 0.04);
    em_sampler_free(s);
}

static void top_p_cuts_the_low_tail(void)
{
    /* probabilities 0.5 0.3 0.15 0.05; top_p 0.75: ascending cumulative 0.05, 0.2 <= 0.25
     * are dropped, 0.5 > 0.25 stays -> {0, 1} renormalised to 0.625 / 0.375 */
    float lg[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    int c[4];
    struct em_sampler *s = mk(true, 1, 0, 0.75f, 1, 7, 4);
    draws(s, lg, 4, 4000, c);
    CU_ASSERT_EQUAL(c[2] + c[3], 0);
    CU_ASSERT_DOUBLE_EQUAL(c[0] / 4000.0, 0.625, 0.04);
    em_sampler_free(s);
    /* top_p 1 keeps all four */
    s = mk(true, 1, 0, 1.0f, 1, 7, 4);
    draws(s, lg, 4, 4000, c);
    CU_ASSERT_TRUE(c[3] > 0);
    CU_ASSERT_DOUBLE_EQUAL(c[2] / 4000.0, 0.15, 0.04);
    em_sampler_free(s);
}

static void temperature_sharpens(void)
{
    float lg[3] = {1.0f, 0.0f, 0.5f};
    int c[3];
    struct em_sampler *s = mk(true, 0.05f, 0, 1, 1, 3, 3); /* e^-10 for the runner-up */
    draws(s, lg, 3, 1000, c);
    CU_ASSERT_EQUAL(c[0], 1000);
    em_sampler_free(s);
    s = mk(true, 100.0f, 0, 1, 1, 3, 3); /* nearly uniform */
    draws(s, lg, 3, 3000, c);
    CU_ASSERT_TRUE(c[0] > 800 && c[1] > 800 && c[2] > 800);
    em_sampler_free(s);
}

static void same_seed_same_tokens(void)
{
    float lg[8] = {0.1f, 0.2f, 0.3f, 0.2f, 0.1f, 0.25f, 0.15f, 0.05f};
    int32_t a[64], b[64], c[64];
    struct em_sampler *s1 = mk(true, 1, 0, 1, 1, 99, 8), *s2 = mk(true, 1, 0, 1, 1, 99, 8),
                      *s3 = mk(true, 1, 0, 1, 1, 100, 8);
    for (int i = 0; i < 64; i++) {
        float x[8];
        memcpy(x, lg, sizeof x);
        em_sampler_pick(s1, x, NULL, 0, &a[i]);
        memcpy(x, lg, sizeof x);
        em_sampler_pick(s2, x, NULL, 0, &b[i]);
        memcpy(x, lg, sizeof x);
        em_sampler_pick(s3, x, NULL, 0, &c[i]);
    }
    CU_ASSERT_EQUAL(memcmp(a, b, sizeof a), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(a, c, sizeof a), 0);
    em_sampler_free(s1);
    em_sampler_free(s2);
    em_sampler_free(s3);
}

static void bad_params_and_config_mapping(void)
{
    struct em_sampler *s = NULL;
    struct em_sampler_params p = em_sampler_defaults();
    CU_ASSERT_FALSE(p.do_sample);
    p.do_sample = true;
    p.temperature = 0;
    CU_ASSERT_EQUAL(em_sampler_new(&p, 10, &s, NULL), EM_E_ARG);
    p = em_sampler_defaults();
    p.top_p = 0;
    CU_ASSERT_EQUAL(em_sampler_new(&p, 10, &s, NULL), EM_E_ARG);
    p = em_sampler_defaults();
    p.repetition_penalty = 0;
    CU_ASSERT_EQUAL(em_sampler_new(&p, 10, &s, NULL), EM_E_ARG);
    p = em_sampler_defaults();
    CU_ASSERT_EQUAL(em_sampler_new(&p, 0, &s, NULL), EM_E_ARG);
    CU_ASSERT_PTR_NULL(s);
    struct em_qa_gen_config g;
    memset(&g, 0, sizeof g);
    g.do_sample = 1;
    g.top_k = 20;
    g.top_p = 0.5f;
    g.temperature = 0.7f;
    g.repetition_penalty = 1.1f;
    g.max_new_tokens = -1;
    g.n_eos = 2;
    g.eos_token_id[0] = 151645;
    g.eos_token_id[1] = 7;
    struct em_gen_params gp = em_gen_params_from(&g);
    CU_ASSERT_TRUE(gp.sampler.do_sample);
    CU_ASSERT_EQUAL(gp.sampler.top_k, 20);
    CU_ASSERT_DOUBLE_EQUAL(gp.sampler.top_p, 0.5, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(gp.sampler.temperature, 0.7, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(gp.sampler.repetition_penalty, 1.1, 1e-7);
    CU_ASSERT_EQUAL(gp.max_new_tokens, EM_GEN_DEFAULT_MAX_NEW);
    CU_ASSERT_EQUAL(gp.n_stop, 2); /* exactly the listed ids: no fixed <|endoftext|> added */
    CU_ASSERT_EQUAL(gp.stop[0], 151645);
    CU_ASSERT_EQUAL(gp.stop[1], 7);
}

static CU_TestInfo tests[] = {
    {"penalty_is_hf_and_greedy_takes_first_max", penalty_is_hf_and_greedy_takes_first_max},
    {"top_k_keeps_the_k_largest_and_ties", top_k_keeps_the_k_largest_and_ties},
    {"top_p_cuts_the_low_tail", top_p_cuts_the_low_tail},
    {"temperature_sharpens", temperature_sharpens},
    {"same_seed_same_tokens", same_seed_same_tokens},
    {"bad_params_and_config_mapping", bad_params_and_config_mapping},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_sampler = {"sampler", NULL, NULL, NULL, NULL, tests};
