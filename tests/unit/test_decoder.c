/* tests/unit/test_decoder.c - model/decoder + kvcache + generate against the HF reference
 * records of tests/golden (make_golden.py): for both tiny checkpoints (bf16 sharded, MHA; f32
 * single file, GQA 5/1) and every built-in prompt (base and chat) of the speech clip, the
 * recorded projected audio rows are spliced at the <|AUDIO|> positions (so this suite does
 * not depend on the encoder), and
 *   - the argmax at every prompt position equals HF's,
 *   - the max logit per position and the logits of the last 3 positions agree within
 *     LOGIT_TOL relative to the largest |logit|,
 *   - 32 greedy tokens equal HF's (compared by tie class, see tie_class), with repetition
 *     penalty 1.0 and with the checkpoint's default (1.1).
 * Plus cache behaviour (step-by-step == one prefill, prefix copy) and argument errors. */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/decoder.h"
#include "model/generate.h"
#include "model/tokenizer.h"
#include "model/loader/safetensors.h"
#include "tests/golden/golden.h"

#define LOGIT_TOL 1e-3 /* relative to max |logit| */
#define LO_ROWS 4096   /* logits_last_lo covers ids [0, 4096) */
#define HI_FROM 151600 /* logits_last_hi covers ids [151600, V) */

/* make_golden.py gives embed_tokens and lm_head row i the values of row i % 4096, except the
 * special ids 151643..151648, so those ids tie exactly in HF's logits and torch's argmax takes
 * the lowest. A matmul need not give bit-identical results for identical rows, so a greedy
 * pick may land on another member of the same tie class; with the repetition penalty the
 * class sequence is still the same (each class has dozens of members). Compare classes. */
#define GOLDEN_DISTINCT_ROWS 4096
static int tie_class(int32_t id)
{
    return id >= 151643 && id <= 151648 ? id : id % GOLDEN_DISTINCT_ROWS;
}

static char tmp[512];
static struct golden g;
static const char *names[2] = {"tiny-bf16", "tiny-f32"};
static struct em_ckpt *ck[2];
static struct em_dec *dec[2];

static int init(void)
{
    struct em_errbuf eb = {{0}};
    if (golden_unpack("data", tmp, sizeof tmp) != 0 || golden_open(&g, tmp) != 0) return 1;
    for (int i = 0; i < 2; i++) {
        char tar[1200], dir[1200];
        snprintf(tar, sizeof tar, "%s/tests/golden/%s.tar.xz", golden_root(), names[i]);
        if (golden_sh("tar -xJf '%s' -C '%s'", tar, tmp) != 0) return 1;
        snprintf(dir, sizeof dir, "%s/%s", tmp, names[i]);
        if (em_ckpt_open(dir, &ck[i], &eb) != EM_OK || em_dec_open(ck[i], &dec[i], &eb) != EM_OK) {
            fprintf(stderr, "decoder init: %s\n", eb.msg);
            return 1;
        }
    }
    return 0;
}

static int clean(void)
{
    for (int i = 0; i < 2; i++) {
        em_dec_free(dec[i]);
        em_ckpt_close(ck[i]);
    }
    golden_close(&g);
    golden_rmdir(tmp);
    return 0;
}

struct rec {
    int32_t *ids;
    int n;
    float *audio;
    int n_audio;
};

static int load_rec(int c, const char *task, const char *form, struct rec *r)
{
    char key[256];
    int64_t shape[4];
    int nd;
    snprintf(key, sizeof key, "%s/speech/%s/%s/input_ids", names[c], task, form);
    r->ids = golden_tensor(&g, key, shape, &nd);
    r->n = (int)shape[0];
    snprintf(key, sizeof key, "%s/speech/audio_embeds", names[c]);
    r->audio = golden_tensor(&g, key, shape, &nd);
    r->n_audio = (int)shape[0];
    return r->ids && r->audio && shape[1] == em_dec_config(dec[c])->hidden_size ? 0 : -1;
}

static void free_rec(struct rec *r)
{
    free(r->ids);
    free(r->audio);
}

static const char *tasks[3] = {"caption", "transcript", "events"};
static const char *forms[2] = {"base", "chat"};

static void logits_case(int c, const char *task, const char *form)
{
    struct rec r;
    CU_ASSERT_EQUAL_FATAL(load_rec(c, task, form, &r), 0);
    const struct em_dec *d = dec[c];
    const int V = em_dec_vocab(d);
    struct em_kv *kv;
    CU_ASSERT_EQUAL_FATAL(em_dec_kv_new(d, r.n, &kv, NULL), EM_OK);
    float *lg = malloc((size_t)r.n * V * sizeof *lg);
    struct em_errbuf eb = {{0}};
    em_err rc = em_dec_forward(d, kv, r.ids, r.n, r.audio, r.n_audio, EM_DEC_LOGITS_ALL, lg, &eb);
    CU_ASSERT_EQUAL(rc, EM_OK);
    if (rc != EM_OK) fprintf(stderr, "\n  forward: %s\n", eb.msg);
    char key[256], what[128];
    int64_t shape[4];
    int nd;
    snprintf(key, sizeof key, "%s/speech/%s/%s/argmax", names[c], task, form);
    int32_t *am = golden_tensor(&g, key, shape, &nd);
    snprintf(key, sizeof key, "%s/speech/%s/%s/max_logit", names[c], task, form);
    float *mx = golden_tensor(&g, key, shape, &nd);
    snprintf(key, sizeof key, "%s/speech/%s/%s/max_abs_logit", names[c], task, form);
    float *mabs = golden_tensor(&g, key, shape, &nd);
    CU_ASSERT_FATAL(am && mx && mabs && shape[0] == r.n);
    float *got_mx = malloc((size_t)r.n * sizeof *got_mx);
    int bad_argmax = 0;
    double scale = 0;
    for (int t = 0; t < r.n; t++) {
        const float *row = lg + (size_t)t * V;
        int best = 0;
        for (int i = 1; i < V; i++)
            if (row[i] > row[best]) best = i;
        got_mx[t] = row[best];
        if (best != am[t] && !(tie_class(best) == tie_class(am[t]) &&
                               fabsf(row[am[t]] - row[best]) <= 1e-5f * fabsf(row[best])))
            bad_argmax++;
        if (mabs[t] > scale) scale = mabs[t];
    }
    if (bad_argmax) printf("\n    %s %s/%s: argmax differs at %d of %d positions", names[c], task, form,
                           bad_argmax, r.n);
    CU_ASSERT_EQUAL(bad_argmax, 0);
    snprintf(what, sizeof what, "%s %s/%s max logit/pos", names[c], task, form);
    double err = golden_cmp(what, got_mx, mx, (size_t)r.n, 0, LOGIT_TOL * scale);
    CU_ASSERT(err <= LOGIT_TOL * scale);
    /* the last 3 rows, two slices */
    snprintf(key, sizeof key, "%s/speech/%s/%s/logits_last_lo", names[c], task, form);
    float *lo = golden_tensor(&g, key, shape, &nd);
    snprintf(key, sizeof key, "%s/speech/%s/%s/logits_last_hi", names[c], task, form);
    int64_t shi[4];
    float *hi = golden_tensor(&g, key, shi, &nd);
    if (lo && hi) {
        CU_ASSERT_EQUAL(shape[1], LO_ROWS);
        CU_ASSERT_EQUAL(shi[1], V - HI_FROM);
        float *glo = malloc(3 * LO_ROWS * sizeof *glo), *ghi = malloc(3 * (size_t)shi[1] * sizeof *ghi);
        for (int k = 0; k < 3; k++) {
            const float *row = lg + (size_t)(r.n - 3 + k) * V;
            memcpy(glo + k * LO_ROWS, row, LO_ROWS * sizeof *glo);
            memcpy(ghi + k * shi[1], row + HI_FROM, (size_t)shi[1] * sizeof *ghi);
        }
        snprintf(what, sizeof what, "%s %s/%s logits[-3:, lo]", names[c], task, form);
        CU_ASSERT(golden_cmp(what, glo, lo, 3 * LO_ROWS, 1, LOGIT_TOL) <= LOGIT_TOL);
        snprintf(what, sizeof what, "%s %s/%s logits[-3:, hi]", names[c], task, form);
        CU_ASSERT(golden_cmp(what, ghi, hi, 3 * (size_t)shi[1], 1, LOGIT_TOL) <= LOGIT_TOL);
        free(glo);
        free(ghi);
    }
    free(lo);
    free(hi);
    free(got_mx);
    free(am);
    free(mx);
    free(mabs);
    free(lg);
    em_kv_free(kv);
    free_rec(&r);
}

static void logits_match_reference(void)
{
    for (int c = 0; c < 2; c++)
        for (int t = 0; t < 3; t++)
            for (int f = 0; f < 2; f++) logits_case(c, tasks[t], forms[f]);
}

static void greedy_case(int c, const char *task, const char *form, int default_penalty)
{
    struct rec r;
    CU_ASSERT_EQUAL_FATAL(load_rec(c, task, form, &r), 0);
    const struct em_qa_config *cfg = em_ckpt_config(ck[c]);
    struct em_gen_params p = em_gen_params_from(&cfg->gen);
    p.sampler.do_sample = false; /* HF: do_sample=False, the config's penalty still applies */
    if (!default_penalty) p.sampler.repetition_penalty = 1.0f;
    p.max_new_tokens = 32;
    struct em_gen_result res;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(em_generate(dec[c], r.ids, (size_t)r.n, r.audio, r.n_audio, &p, &res, &eb), EM_OK);
    char key[256];
    int64_t shape[4];
    int nd;
    snprintf(key, sizeof key, "%s/speech/%s/%s/%s", names[c], task, form,
             default_penalty ? "greedy_rp_default" : "greedy_rp1");
    int32_t *want = golden_tensor(&g, key, shape, &nd);
    CU_ASSERT_PTR_NOT_NULL_FATAL(want);
    size_t same = 0;
    while (same < res.n && same < (size_t)shape[0] && tie_class(res.ids[same]) == tie_class(want[same]))
        same++;
    if (res.n != (size_t)shape[0] || same != res.n)
        printf("\n    %s %s/%s %s: %zu tokens, %zu agree with HF's %lld", names[c], task, form,
               key + strlen(key) - 10, res.n, same, (long long)shape[0]);
    CU_ASSERT_EQUAL(res.n, (size_t)shape[0]);
    CU_ASSERT_EQUAL(same, res.n);
    free(want);
    free(res.ids);
    free_rec(&r);
}

static void greedy_matches_reference(void)
{
    CU_ASSERT_FATAL(fabsf(em_ckpt_config(ck[0])->gen.repetition_penalty - 1.1f) < 1e-6f);
    for (int c = 0; c < 2; c++)
        for (int t = 0; t < 3; t++)
            for (int f = 0; f < 2; f++) {
                greedy_case(c, tasks[t], forms[f], 0);
                greedy_case(c, tasks[t], forms[f], 1);
            }
}

/* Prefill of n-4 positions then 4 single steps gives the last logits of one prefill; and a
 * cache copied up to a prefix continues identically. */
static void cache_steps_equal_prefill(void)
{
    struct rec r;
    CU_ASSERT_EQUAL_FATAL(load_rec(1, "caption", "chat", &r), 0);
    const struct em_dec *d = dec[1];
    const int V = em_dec_vocab(d);
    struct em_kv *a, *b, *cpy;
    CU_ASSERT_EQUAL_FATAL(em_dec_kv_new(d, r.n, &a, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_dec_kv_new(d, r.n, &b, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_dec_kv_new(d, r.n, &cpy, NULL), EM_OK);
    float *la = malloc((size_t)V * sizeof *la), *lb = malloc((size_t)V * sizeof *lb);
    CU_ASSERT_EQUAL(em_dec_forward(d, a, r.ids, r.n, r.audio, r.n_audio, EM_DEC_LOGITS_LAST, la, NULL), EM_OK);
    CU_ASSERT_EQUAL(em_kv_len(a), r.n);
    CU_ASSERT_EQUAL(em_dec_forward(d, b, r.ids, r.n - 4, r.audio, r.n_audio, EM_DEC_LOGITS_NONE, NULL, NULL), EM_OK);
    CU_ASSERT_EQUAL(em_kv_copy_prefix(cpy, b, r.n - 4), EM_OK);
    for (int i = r.n - 4; i < r.n; i++)
        CU_ASSERT_EQUAL(em_dec_forward(d, b, r.ids + i, 1, NULL, 0, EM_DEC_LOGITS_LAST, lb, NULL), EM_OK);
    CU_ASSERT(golden_cmp("steps vs prefill", lb, la, (size_t)V, 1, 1e-5) <= 1e-5);
    CU_ASSERT_EQUAL(em_dec_forward(d, cpy, r.ids + r.n - 4, 4, NULL, 0, EM_DEC_LOGITS_LAST, lb, NULL), EM_OK);
    CU_ASSERT(golden_cmp("prefix copy vs prefill", lb, la, (size_t)V, 1, 1e-5) <= 1e-5);
    /* the cache is full now */
    CU_ASSERT_EQUAL(em_dec_forward(d, cpy, r.ids, 1, NULL, 0, EM_DEC_LOGITS_LAST, lb, NULL), EM_E_TOO_LONG);
    CU_ASSERT_EQUAL(em_kv_len(cpy), r.n);
    free(la);
    free(lb);
    em_kv_free(a);
    em_kv_free(b);
    em_kv_free(cpy);
    free_rec(&r);
}

/* The three base prompts share "<|audio_bos|> N x <|AUDIO|> <|audio_eos|>": one prefill of
 * that prefix serves all three, with HF's greedy tokens. */
static void shared_prefix_generation_matches(void)
{
    const int c = 0;
    const struct em_dec *d = dec[c];
    const struct em_qa_config *cfg = em_ckpt_config(ck[c]);
    struct em_gen_params p = em_gen_params_from(&cfg->gen);
    p.sampler.do_sample = false;
    p.max_new_tokens = 32;
    struct rec r0;
    CU_ASSERT_EQUAL_FATAL(load_rec(c, "caption", "base", &r0), 0);
    int pre = 0;
    while (pre < r0.n && r0.ids[pre] != EM_TOK_AUDIO_EOS) pre++;
    pre++; /* include <|audio_eos|> */
    struct em_kv *shared;
    CU_ASSERT_EQUAL_FATAL(em_dec_kv_new(d, pre, &shared, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_dec_forward(d, shared, r0.ids, pre, r0.audio, r0.n_audio, EM_DEC_LOGITS_NONE,
                                         NULL, NULL), EM_OK);
    int ok = 0;
    for (int t = 0; t < 3; t++) {
        struct rec r;
        CU_ASSERT_EQUAL_FATAL(load_rec(c, tasks[t], "base", &r), 0);
        CU_ASSERT_EQUAL(memcmp(r.ids, r0.ids, (size_t)pre * sizeof *r.ids), 0);
        struct em_gen_result res;
        CU_ASSERT_EQUAL_FATAL(em_generate_shared(d, shared, r.ids, (size_t)r.n, &p, &res, NULL), EM_OK);
        char key[256];
        int64_t shape[4];
        int nd;
        snprintf(key, sizeof key, "%s/speech/%s/base/greedy_rp_default", names[c], tasks[t]);
        int32_t *want = golden_tensor(&g, key, shape, &nd);
        int same = res.n == (size_t)shape[0];
        for (size_t i = 0; same && i < res.n; i++) same = tie_class(res.ids[i]) == tie_class(want[i]);
        ok += same;
        free(want);
        free(res.ids);
        free_rec(&r);
    }
    CU_ASSERT_EQUAL(ok, 3);
    CU_ASSERT_EQUAL(em_kv_len(shared), pre);
    /* the rest of the prompt may not hold audio tokens */
    struct em_gen_result res;
    em_kv_truncate(shared, 1);
    CU_ASSERT_EQUAL(em_generate_shared(d, shared, r0.ids, (size_t)r0.n, &p, &res, NULL), EM_E_ARG);
    em_kv_free(shared);
    free_rec(&r0);
}

static void bad_arguments_are_errors(void)
{
    const struct em_dec *d = dec[0];
    struct em_kv *kv;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(em_dec_kv_new(d, 8, &kv, NULL), EM_OK);
    int32_t bad[2] = {5, em_dec_vocab(d)};
    CU_ASSERT_EQUAL(em_dec_forward(d, kv, bad, 2, NULL, 0, EM_DEC_LOGITS_NONE, NULL, &eb), EM_E_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "outside"));
    int32_t aud[2] = {EM_TOK_AUDIO_BOS, EM_TOK_AUDIO};
    CU_ASSERT_EQUAL(em_dec_forward(d, kv, aud, 2, NULL, 0, EM_DEC_LOGITS_NONE, NULL, &eb), EM_E_ARG);
    float row[64] = {0};
    CU_ASSERT_EQUAL(em_dec_forward(d, kv, aud, 1, row, 1, EM_DEC_LOGITS_NONE, NULL, &eb), EM_E_ARG);
    CU_ASSERT_EQUAL(em_dec_forward(d, kv, aud, 0, NULL, 0, EM_DEC_LOGITS_NONE, NULL, &eb), EM_E_ARG);
    CU_ASSERT_EQUAL(em_kv_len(kv), 0);
    CU_ASSERT_EQUAL(em_dec_kv_new(d, EM_DEC_MAX_TOKENS + 1, &kv, &eb) == EM_E_TOO_LONG, 1);
    em_kv_free(kv);
    struct em_gen_params p = em_gen_params_from(NULL);
    struct em_gen_result res;
    p.max_new_tokens = 0;
    CU_ASSERT_EQUAL(em_generate(d, aud, 1, NULL, 0, &p, &res, &eb), EM_E_ARG);
    CU_ASSERT_EQUAL(p.n_stop, 2);
}

static CU_TestInfo tests[] = {
    {"logits_match_reference", logits_match_reference},
    {"greedy_matches_reference", greedy_matches_reference},
    {"cache_steps_equal_prefill", cache_steps_equal_prefill},
    {"shared_prefix_generation_matches", shared_prefix_generation_matches},
    {"bad_arguments_are_errors", bad_arguments_are_errors},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_decoder = {"decoder", init, clean, NULL, NULL, tests};
