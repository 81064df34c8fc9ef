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
 * Plus cache behaviour (step-by-step == one prefill, prefix copy), argument errors, and
 * batched decode: em_dec_step_batch == single steps, em_generate_batch == em_generate_shared
 * one prompt at a time (greedy and seeded sampling, id for id), over f32, f16 and mixed
 * caches; f16 caches against f32 ones; the decode-step helpers (vecmath.h: attention dot /
 * axpy rows, SwiGLU) AVX2 against C on odd sizes; and the suite again below AVX-512. */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/qwen2audio/decoder.h"
#include "model/kernels/cpu/cpufeat.h"
#include "model/kernels/cpu/vecmath.h"
#include "model/gen/generate.h"
#include "model/text/tokenizer.h"
#include "model/loader/safetensors.h"
#include "tests/golden/golden.h"
#include "tests/helpers/proc.h"

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
 * cache copied up to a prefix, or laid over it (em_dec_kv_over), continues identically. */
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
    /* an overlay reads the prefix of a in place: the same logits, a untouched, and a copy of
     * the overlay (prefix through the base) continues the same way */
    struct em_kv *ov, *ov2, *back;
    float *keep = malloc((size_t)em_kv_dim(a) * sizeof *keep);
    memcpy(keep, em_kv_k(a, 1, r.n - 4), (size_t)em_kv_dim(a) * sizeof *keep);
    CU_ASSERT_EQUAL_FATAL(em_dec_kv_over(d, a, r.n - 4, r.n, &ov, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_dec_kv_over(d, a, r.n - 4, r.n + 1, &ov2, NULL), EM_OK);
    CU_ASSERT_EQUAL(em_kv_len(ov), r.n - 4);
    CU_ASSERT_EQUAL(em_dec_forward(d, ov, r.ids + r.n - 4, 4, NULL, 0, EM_DEC_LOGITS_LAST, lb, NULL), EM_OK);
    CU_ASSERT(golden_cmp("overlay vs prefill", lb, la, (size_t)V, 1, 1e-5) <= 1e-5);
    CU_ASSERT_EQUAL(memcmp(keep, em_kv_k(a, 1, r.n - 4), (size_t)em_kv_dim(a) * sizeof *keep), 0);
    CU_ASSERT_EQUAL(em_dec_forward(d, ov2, r.ids + r.n - 4, 3, NULL, 0, EM_DEC_LOGITS_NONE, NULL, NULL), EM_OK);
    CU_ASSERT_EQUAL(em_dec_kv_new(d, r.n, &back, NULL), EM_OK);
    CU_ASSERT_EQUAL(em_kv_copy_prefix(back, ov2, r.n - 1), EM_OK);
    CU_ASSERT_EQUAL(em_dec_forward(d, back, r.ids + r.n - 1, 1, NULL, 0, EM_DEC_LOGITS_LAST, lb, NULL), EM_OK);
    CU_ASSERT(golden_cmp("copy of an overlay vs prefill", lb, la, (size_t)V, 1, 1e-5) <= 1e-5);
    em_kv_free(back);
    /* an overlay of an overlay reads three runs of rows (a's, mid's, its own): prefill and
     * single steps over them give the logits of the one prefill */
    struct em_kv *mid, *top;
    CU_ASSERT_EQUAL_FATAL(em_dec_kv_over(d, a, r.n - 6, r.n - 2, &mid, NULL), EM_OK);
    CU_ASSERT_EQUAL(em_dec_forward(d, mid, r.ids + r.n - 6, 4, NULL, 0, EM_DEC_LOGITS_NONE, NULL, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_dec_kv_over(d, mid, r.n - 2, r.n, &top, NULL), EM_OK);
    CU_ASSERT_EQUAL(em_dec_forward(d, top, r.ids + r.n - 2, 2, NULL, 0, EM_DEC_LOGITS_LAST, lb, NULL), EM_OK);
    CU_ASSERT(golden_cmp("overlay of an overlay, prefill vs prefill", lb, la, (size_t)V, 1, 1e-5) <= 1e-5);
    em_kv_free(top);
    CU_ASSERT_EQUAL_FATAL(em_dec_kv_over(d, mid, r.n - 2, r.n, &top, NULL), EM_OK);
    CU_ASSERT_EQUAL(em_dec_forward(d, top, r.ids + r.n - 2, 1, NULL, 0, EM_DEC_LOGITS_NONE, NULL, NULL), EM_OK);
    CU_ASSERT_EQUAL(em_dec_forward(d, top, r.ids + r.n - 1, 1, NULL, 0, EM_DEC_LOGITS_LAST, lb, NULL), EM_OK);
    CU_ASSERT(golden_cmp("overlay of an overlay, steps vs prefill", lb, la, (size_t)V, 1, 1e-5) <= 1e-5);
    em_kv_free(top);
    em_kv_free(mid);
    em_kv_truncate(ov2, 2); /* never below the base's positions */
    CU_ASSERT_EQUAL(em_kv_len(ov2), r.n - 4);
    CU_ASSERT_EQUAL(em_kv_copy_prefix(ov2, a, 2), EM_E_ARG); /* an overlay is no copy target */
    CU_ASSERT_EQUAL(em_dec_kv_over(d, a, r.n + 1, r.n + 2, &back, NULL), EM_E_ARG);
    CU_ASSERT_PTR_NULL(back);
    CU_ASSERT_EQUAL(em_dec_kv_over(d, a, 4, 4, &back, NULL), EM_E_ARG);
    CU_ASSERT_EQUAL(em_dec_kv_over(dec[0], a, 4, 8, &back, NULL), EM_E_ARG); /* other geometry */
    em_kv_free(ov);
    em_kv_free(ov2);
    free(keep);
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
    em_kv_free(kv);
    CU_ASSERT_EQUAL(em_dec_kv_new(d, EM_DEC_MAX_TOKENS + 1, &kv, &eb) == EM_E_TOO_LONG, 1);
    CU_ASSERT_PTR_NULL(kv); /* *out is NULL on every error */
    struct em_gen_params p = em_gen_params_from(NULL);
    struct em_gen_result res;
    p.max_new_tokens = 0;
    CU_ASSERT_EQUAL(em_generate(d, aud, 1, NULL, 0, &p, &res, &eb), EM_E_ARG);
    CU_ASSERT_EQUAL(p.n_stop, 0); /* no checkpoint eos ids: no stop ids (transformers) */
}

/* ---- batched decode ---------------------------------------------------------------------- */

/* K sequences (the 3 base and 3 chat prompts, then the prompts again, all at different
 * lengths) prefilled twice; 3 steps of em_dec_step_batch over one set of caches give the
 * logits of the same steps run one sequence at a time with em_dec_forward, within tol
 * relative and with the same argmax, and every cache ends at the same length. At K =
 * em_dec_max_batch (8 on the CPU) these are the same rows of the same small-n matmuls: equal
 * to the last bit (tol 1e-6); past it (K = 12) the linears take the GEMM path, which rounds
 * differently (tol 1e-4), and decode attention runs in two sets. */
static void batch_case(int c, int mode, int K, double tol)
{
    const struct em_dec *d = dec[c];
    static const char *modes[3] = {"f32 caches", "f16 caches", "f32 and f16 caches mixed"};
    const int V = em_dec_vocab(d);
    struct rec r[EM_DEC_MAX_BATCH];
    struct em_kv *a[EM_DEC_MAX_BATCH], *b[EM_DEC_MAX_BATCH];
    for (int i = 0; i < K; i++) {
        CU_ASSERT_EQUAL_FATAL(load_rec(c, tasks[i % 3], forms[(i / 3) % 2], &r[i]), 0);
        int n = r[i].n - (i >= 6 ? 5 + i : 0); /* the repeats stop earlier: other lengths */
        while (n > 1 && r[i].ids[n - 1] == em_dec_audio_token(d)) n--;
        const enum em_kv_type kt = mode == 0 ? EM_KV_F32 : mode == 1 ? EM_KV_F16
                                                                     : (enum em_kv_type)(i & 1);
        CU_ASSERT_EQUAL_FATAL(em_dec_kv_new_type(d, n + 4, kt, &a[i], NULL), EM_OK);
        CU_ASSERT_EQUAL_FATAL(em_dec_kv_new_type(d, n + 4, kt, &b[i], NULL), EM_OK);
        CU_ASSERT_EQUAL_FATAL(em_dec_forward(d, a[i], r[i].ids, n, r[i].audio, r[i].n_audio,
                                             EM_DEC_LOGITS_NONE, NULL, NULL), EM_OK);
        CU_ASSERT_EQUAL_FATAL(em_kv_copy_prefix(b[i], a[i], n), EM_OK);
    }
    float *lb = malloc((size_t)K * V * sizeof *lb), *ls = malloc((size_t)V * sizeof *ls);
    CU_ASSERT_PTR_NOT_NULL_FATAL(lb && ls);
    double worst = 0;
    int bad_argmax = 0;
    for (int step = 0; step < 3; step++) {
        int32_t ids[EM_DEC_MAX_BATCH];
        for (int i = 0; i < K; i++) ids[i] = (int32_t)((1000 + 617 * i + 97 * step) % 4096);
        struct em_errbuf eb = {{0}};
        em_err rc = em_dec_step_batch(d, a, ids, K, lb, &eb);
        CU_ASSERT_EQUAL_FATAL(rc, EM_OK);
        for (int i = 0; i < K; i++) {
            CU_ASSERT_EQUAL_FATAL(em_dec_forward(d, b[i], &ids[i], 1, NULL, 0, EM_DEC_LOGITS_LAST, ls,
                                                 NULL), EM_OK);
            const float *row = lb + (size_t)i * V;
            int am = 0, bm = 0;
            double mabs = 0, err = 0;
            for (int v = 0; v < V; v++) {
                if (row[v] > row[am]) am = v;
                if (ls[v] > ls[bm]) bm = v;
                if (fabsf(ls[v]) > mabs) mabs = fabsf(ls[v]);
                if (fabs((double)row[v] - ls[v]) > err) err = fabs((double)row[v] - ls[v]);
            }
            bad_argmax += am != bm;
            if (err / mabs > worst) worst = err / mabs;
            CU_ASSERT_EQUAL(em_kv_len(a[i]), em_kv_len(b[i]));
        }
    }
    printf("\n    %s, %s: %d sequences x 3 batched steps vs single steps: max rel diff %.3g, "
           "argmax differs %d", names[c], modes[mode], K, worst, bad_argmax);
    CU_ASSERT(worst <= tol);
    CU_ASSERT_EQUAL(bad_argmax, 0);
    /* a smaller batch of every other cache continues as well */
    struct em_kv *half[4] = {a[0], a[2], a[4], a[6]};
    int32_t ids4[4] = {11, 12, 13, 14};
    CU_ASSERT_EQUAL(em_dec_step_batch(d, half, ids4, 4, lb, NULL), EM_OK);
    for (int j = 0; j < 4; j++) {
        CU_ASSERT_EQUAL(em_dec_forward(d, b[2 * j], &ids4[j], 1, NULL, 0, EM_DEC_LOGITS_LAST, ls, NULL),
                        EM_OK);
        CU_ASSERT(golden_cmp("batch of 4 vs single", lb + (size_t)j * V, ls, (size_t)V, 1, tol) <= tol);
    }
    free(lb);
    free(ls);
    for (int i = 0; i < K; i++) {
        em_kv_free(a[i]);
        em_kv_free(b[i]);
        free_rec(&r[i]);
    }
}

static void batch_step_equals_single_steps(void)
{
    CU_ASSERT_EQUAL(em_dec_max_batch(dec[0]), 8); /* the CPU's decode_rows (EM_MM_QMM_MAX_N) */
    for (int c = 0; c < 2; c++)
        for (int mode = 0; mode < 3; mode++) {
            batch_case(c, mode, em_dec_max_batch(dec[c]), 1e-6);
            batch_case(c, mode, 12, 1e-4);
        }
}

static double rel_diff(const float *a, const float *b, size_t n, int *argmax_differs);

/* Three prompt tails of different lengths (1, 5 and 9 tokens) over one shared prefix, in
 * one em_dec_prefill_batch: each sequence's last logits equal its own em_dec_forward (to
 * float rounding: these checkpoints' f32 / bf16 matmuls go through sgemm) with the same
 * argmax, the caches advance by their tails; and the argument errors leave every cache
 * as it was. */
static void prefill_batch_equals_single_prefills(void)
{
    struct rec r;
    CU_ASSERT_EQUAL_FATAL(load_rec(1, "caption", "chat", &r), 0);
    const struct em_dec *d = dec[1];
    const int V = em_dec_vocab(d), pre = r.n - 9, lens[3] = {1, 5, 9};
    struct em_kv *shared, *a[3], *b[3];
    CU_ASSERT_EQUAL_FATAL(em_dec_kv_new(d, pre, &shared, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_dec_forward(d, shared, r.ids, pre, r.audio, r.n_audio,
                                         EM_DEC_LOGITS_NONE, NULL, NULL), EM_OK);
    const int32_t *ids[3];
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL_FATAL(em_dec_kv_over(d, shared, pre, pre + 9, &a[i], NULL), EM_OK);
        CU_ASSERT_EQUAL_FATAL(em_dec_kv_over(d, shared, pre, pre + 9, &b[i], NULL), EM_OK);
        ids[i] = r.ids + pre + 9 - lens[i]; /* other ids for each */
    }
    float *lb = malloc(3 * (size_t)V * sizeof *lb), *ls = malloc((size_t)V * sizeof *ls);
    CU_ASSERT_FATAL(lb && ls);
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(em_dec_prefill_batch(d, a, ids, lens, 3, lb, &eb), EM_OK);
    int differs = 0;
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(em_kv_len(a[i]), pre + lens[i]);
        CU_ASSERT_EQUAL_FATAL(em_dec_forward(d, b[i], ids[i], lens[i], NULL, 0, EM_DEC_LOGITS_LAST,
                                             ls, NULL), EM_OK);
        CU_ASSERT(golden_cmp("prefill batch vs single", lb + (size_t)i * V, ls, (size_t)V, 1, 1e-5) <=
                  1e-5);
        (void)rel_diff(lb + (size_t)i * V, ls, (size_t)V, &differs);
    }
    CU_ASSERT_EQUAL(differs, 0);
    /* errors: nothing moves */
    int bad_n[3] = {1, 0, 2};
    CU_ASSERT_EQUAL(em_dec_prefill_batch(d, b, ids, bad_n, 3, lb, &eb), EM_E_ARG);
    int32_t aud[2] = {5, EM_TOK_AUDIO};
    const int32_t *with_audio[2] = {ids[0], aud};
    const int two[2] = {1, 2};
    CU_ASSERT_EQUAL(em_dec_prefill_batch(d, b, with_audio, two, 2, lb, &eb), EM_E_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "audio token in batch sequence 1"));
    struct em_kv *twice[2] = {b[0], b[0]};
    CU_ASSERT_EQUAL(em_dec_prefill_batch(d, twice, ids, two, 2, lb, &eb), EM_E_ARG);
    const int long_n[2] = {1, 9}; /* b[1] holds pre + 5 of pre + 9; ids[2] has 9 ids */
    const int32_t *long_ids[2] = {ids[0], ids[2]};
    CU_ASSERT_EQUAL(em_dec_prefill_batch(d, b, long_ids, long_n, 2, lb, &eb), EM_E_TOO_LONG);
    CU_ASSERT_EQUAL(em_dec_prefill_batch(d, b, ids, two, 0, lb, &eb), EM_E_ARG);
    for (int i = 0; i < 3; i++) CU_ASSERT_EQUAL(em_kv_len(b[i]), pre + lens[i]);
    for (int i = 0; i < 3; i++) {
        em_kv_free(a[i]);
        em_kv_free(b[i]);
    }
    em_kv_free(shared);
    free(lb), free(ls);
    free_rec(&r);
}

/* ---- f16 KV caches -------------------------------------------------------------------------
 * The same prompt through an f32 and an f16 cache (em_dec_kv_new_type): every position's
 * logits within F16_TOL of the largest |logit| and the same argmax, then 4 single steps each;
 * an f16 overlay on the f16 prefill continues as the f16 cache itself does. And the type
 * policy: f32 for these bf16 / f32 checkpoints, EARMARK_KV overrides, a bad value refuses. */
/* f16 keeps 11 significant bits: measured 1.3e-3 (tiny-bf16) and 2.9e-3 (tiny-f32, GQA 5/1),
 * a quarter of what q8_0 weights move the same logits (1.2e-2, test_convert.c) */
#define F16_TOL 5e-3

static double rel_diff(const float *a, const float *b, size_t n, int *argmax_differs)
{
    double mabs = 0, err = 0;
    size_t am = 0, bm = 0;
    for (size_t i = 0; i < n; i++) {
        if (a[i] > a[am]) am = i;
        if (b[i] > b[bm]) bm = i;
        if (fabsf(a[i]) > mabs) mabs = fabsf(a[i]);
        if (fabs((double)a[i] - b[i]) > err) err = fabs((double)a[i] - b[i]);
    }
    *argmax_differs += am != bm;
    return mabs > 0 ? err / mabs : err;
}

static void f16_case(int c)
{
    struct rec r;
    CU_ASSERT_EQUAL_FATAL(load_rec(c, "transcript", "chat", &r), 0);
    const struct em_dec *d = dec[c];
    const int V = em_dec_vocab(d), steps = 4;
    struct em_kv *kf, *kh, *ov;
    CU_ASSERT_EQUAL(em_dec_kv_type(d), EM_KV_F32);
    CU_ASSERT_EQUAL_FATAL(em_dec_kv_new_type(d, r.n + steps, EM_KV_F32, &kf, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_dec_kv_new_type(d, r.n + steps, EM_KV_F16, &kh, NULL), EM_OK);
    float *lf = malloc((size_t)r.n * V * sizeof *lf), *lh = malloc((size_t)r.n * V * sizeof *lh);
    float *lo = malloc((size_t)V * sizeof *lo);
    CU_ASSERT_FATAL(lf && lh && lo);
    CU_ASSERT_EQUAL_FATAL(em_dec_forward(d, kf, r.ids, r.n, r.audio, r.n_audio, EM_DEC_LOGITS_ALL,
                                         lf, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_dec_forward(d, kh, r.ids, r.n, r.audio, r.n_audio, EM_DEC_LOGITS_ALL,
                                         lh, NULL), EM_OK);
    double worst = 0;
    int differs = 0;
    for (int t = 0; t < r.n; t++) {
        const double e = rel_diff(lf + (size_t)t * V, lh + (size_t)t * V, (size_t)V, &differs);
        if (e > worst) worst = e;
    }
    printf("\n    %s prefill of %d: f16 vs f32 cache max rel diff %.3g, argmax differs at %d", names[c],
           r.n, worst, differs);
    CU_ASSERT(worst <= F16_TOL);
    CU_ASSERT_EQUAL(differs, 0);
    CU_ASSERT_EQUAL_FATAL(em_dec_kv_over(d, kh, r.n - 2, r.n + steps, &ov, NULL), EM_OK);
    CU_ASSERT_EQUAL(em_kv_type(ov), EM_KV_F16);
    CU_ASSERT_EQUAL(em_dec_forward(d, ov, r.ids + r.n - 2, 2, NULL, 0, EM_DEC_LOGITS_NONE, NULL, NULL),
                    EM_OK);
    worst = 0;
    differs = 0;
    for (int i = 0; i < steps; i++) {
        const int32_t id = (int32_t)(300 + 41 * i);
        CU_ASSERT_EQUAL(em_dec_forward(d, kf, &id, 1, NULL, 0, EM_DEC_LOGITS_LAST, lf, NULL), EM_OK);
        CU_ASSERT_EQUAL(em_dec_forward(d, kh, &id, 1, NULL, 0, EM_DEC_LOGITS_LAST, lh, NULL), EM_OK);
        CU_ASSERT_EQUAL(em_dec_forward(d, ov, &id, 1, NULL, 0, EM_DEC_LOGITS_LAST, lo, NULL), EM_OK);
        const double e = rel_diff(lf, lh, (size_t)V, &differs);
        if (e > worst) worst = e;
        CU_ASSERT(golden_cmp("f16 overlay vs f16 cache", lo, lh, (size_t)V, 1, 1e-5) <= 1e-5);
    }
    CU_ASSERT(worst <= F16_TOL);
    CU_ASSERT_EQUAL(differs, 0);
    em_kv_free(ov);
    em_kv_free(kf);
    em_kv_free(kh);
    free(lf), free(lh), free(lo);
    free_rec(&r);
}

static void f16_cache_follows_f32_cache(void)
{
    for (int c = 0; c < 2; c++) f16_case(c);
    struct em_dec *d2 = NULL;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(setenv("EARMARK_KV", "f16", 1), 0);
    CU_ASSERT_EQUAL(em_dec_open(ck[1], &d2, &eb), EM_OK);
    if (d2) CU_ASSERT_EQUAL(em_dec_kv_type(d2), EM_KV_F16);
    em_dec_free(d2);
    d2 = NULL;
    CU_ASSERT_EQUAL_FATAL(setenv("EARMARK_KV", "bf16", 1), 0);
    CU_ASSERT_EQUAL(em_dec_open(ck[1], &d2, &eb), EM_E_ARG);
    CU_ASSERT_PTR_NULL(d2);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "EARMARK_KV=bf16"));
    unsetenv("EARMARK_KV");
}

/* The suite again in a child with EARMARK_CPU=avx2 (the level is read once per process):
 * below AVX-512 a prefill attends through attention_seq (sgemm, an f16 cache widened first)
 * and the steps through the AVX2 / F16C rows. */
static void capped_level_runs_in_child(void)
{
    if (getenv("EM_TEST_DECODER_CHILD")) {
        CU_ASSERT(em_cpu_level() <= EM_CPU_AVX2);
        return;
    }
    if (em_cpu_level() < EM_CPU_AVX512) return; /* this process is already below it */
    char *env[] = {"EM_TEST_SUITE=decoder", "EARMARK_CPU=avx2", "EM_TEST_DECODER_CHILD=1", NULL};
    CU_ASSERT_EQUAL(th_run_self(env, 600000, "EARMARK_CPU=avx2"), 0);
}

static void batch_step_errors(void)
{
    const struct em_dec *d = dec[1];
    const int V = em_dec_vocab(d);
    struct em_kv *kv[EM_DEC_MAX_BATCH + 1];
    for (int i = 0; i <= EM_DEC_MAX_BATCH; i++)
        CU_ASSERT_EQUAL_FATAL(em_dec_kv_new(d, i == 1 ? 1 : 4, &kv[i], NULL), EM_OK);
    int32_t ids[EM_DEC_MAX_BATCH + 1] = {0};
    float *lg = malloc((size_t)(EM_DEC_MAX_BATCH + 1) * V * sizeof *lg);
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL(em_dec_step_batch(d, kv, ids, 0, lg, &eb), EM_E_ARG);
    CU_ASSERT_EQUAL(em_dec_step_batch(d, kv, ids, EM_DEC_MAX_BATCH + 1, lg, &eb), EM_E_ARG);
    struct em_kv *twice[2] = {kv[0], kv[0]};
    CU_ASSERT_EQUAL(em_dec_step_batch(d, twice, ids, 2, lg, &eb), EM_E_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "share a cache"));
    int32_t bad[2] = {1, V};
    CU_ASSERT_EQUAL(em_dec_step_batch(d, kv, bad, 2, lg, &eb), EM_E_ARG);
    int32_t aud[2] = {1, em_dec_audio_token(d)};
    CU_ASSERT_EQUAL(em_dec_step_batch(d, kv, aud, 2, lg, &eb), EM_E_ARG);
    /* kv[1] holds one position: the second step finds it full, and no cache moves */
    CU_ASSERT_EQUAL(em_dec_step_batch(d, kv, ids, 3, lg, &eb), EM_OK);
    CU_ASSERT_EQUAL(em_dec_step_batch(d, kv, ids, 3, lg, &eb), EM_E_TOO_LONG);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "sequence 1"));
    for (int i = 0; i < 3; i++) CU_ASSERT_EQUAL(em_kv_len(kv[i]), 1);
    for (int i = 3; i <= EM_DEC_MAX_BATCH; i++) CU_ASSERT_EQUAL(em_kv_len(kv[i]), 0);
    free(lg);
    for (int i = 0; i <= EM_DEC_MAX_BATCH; i++) em_kv_free(kv[i]);
}

/* The 3 built-in prompts of one form, their shared prefix prefilled once. */
struct trio {
    struct rec r[3];
    const int32_t *ids[3];
    size_t n[3];
    struct em_kv *shared;
};

static void trio_open(int c, const char *form, struct trio *t)
{
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL_FATAL(load_rec(c, tasks[i], form, &t->r[i]), 0);
        t->ids[i] = t->r[i].ids;
        t->n[i] = (size_t)t->r[i].n;
    }
    int pre = 0;
    while (pre < t->r[0].n - 1 && pre < t->r[1].n - 1 && pre < t->r[2].n - 1 &&
           t->r[0].ids[pre] == t->r[1].ids[pre] && t->r[0].ids[pre] == t->r[2].ids[pre])
        pre++;
    int last_audio = 0;
    for (int i = 0; i < t->r[0].n; i++)
        if (t->r[0].ids[i] == em_dec_audio_token(dec[c])) last_audio = i;
    CU_ASSERT_FATAL(pre > last_audio); /* the audio is shared */
    CU_ASSERT_EQUAL_FATAL(em_dec_kv_new(dec[c], pre, &t->shared, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_dec_forward(dec[c], t->shared, t->r[0].ids, pre, t->r[0].audio,
                                         t->r[0].n_audio, EM_DEC_LOGITS_NONE, NULL, NULL), EM_OK);
}

static void trio_close(struct trio *t)
{
    em_kv_free(t->shared);
    for (int i = 0; i < 3; i++) free_rec(&t->r[i]);
}

/* em_generate_batch over k prompts (prompt i = trio prompt i % 3) with params p[k] equals
 * em_generate_shared one prompt at a time, id for id; returns how many results differ. */
static int batch_vs_sequential(int c, struct trio *t, int k, const struct em_gen_params *p,
                               struct em_gen_result *out)
{
    const int32_t *ids[16];
    size_t n[16];
    for (int i = 0; i < k; i++) {
        ids[i] = t->ids[i % 3];
        n[i] = t->n[i % 3];
    }
    struct em_errbuf eb = {{0}};
    em_err rc = em_generate_batch(dec[c], t->shared, k, ids, n, p, NULL, out, &eb);
    CU_ASSERT_EQUAL(rc, EM_OK);
    if (rc != EM_OK) {
        printf("\n    generate_batch: %s", eb.msg);
        return k;
    }
    int differ = 0;
    for (int i = 0; i < k; i++) {
        struct em_gen_result one;
        CU_ASSERT_EQUAL_FATAL(em_generate_shared(dec[c], t->shared, ids[i], n[i], &p[i], &one, NULL), EM_OK);
        int same = one.n == out[i].n && one.stopped == out[i].stopped &&
                   one.n_prompt == out[i].n_prompt &&
                   memcmp(one.ids, out[i].ids, one.n * sizeof *one.ids) == 0;
        if (!same)
            printf("\n    %s prompt %d: batched %zu ids, alone %zu", names[c], i, out[i].n, one.n);
        differ += !same;
        free(one.ids);
    }
    return differ;
}

static void batch_generation_equals_sequential(void)
{
    for (int c = 0; c < 2; c++)
        for (int f = 0; f < 2; f++) {
            struct trio t;
            trio_open(c, forms[f], &t);
            struct em_gen_params p[16], base = em_gen_params_from(&em_ckpt_config(ck[c])->gen);
            struct em_gen_result gr[16], hot[16];
            /* greedy, the config's penalty, 32 tokens (HF's reference length) */
            for (int i = 0; i < 3; i++) {
                p[i] = base;
                p[i].sampler.do_sample = false;
                p[i].max_new_tokens = 32;
            }
            CU_ASSERT_EQUAL(batch_vs_sequential(c, &t, 3, p, gr), 0);
            /* ... which are HF's greedy tokens (tie classes, see tie_class) */
            for (int i = 0; i < 3; i++) {
                char key[256];
                int64_t shape[4];
                int nd;
                snprintf(key, sizeof key, "%s/speech/%s/%s/greedy_rp_default", names[c], tasks[i], forms[f]);
                int32_t *want = golden_tensor(&g, key, shape, &nd);
                CU_ASSERT_PTR_NOT_NULL_FATAL(want);
                int same = gr[i].n == (size_t)shape[0];
                for (size_t j = 0; same && j < gr[i].n; j++) same = tie_class(gr[i].ids[j]) == tie_class(want[j]);
                CU_ASSERT(same);
                free(want);
            }
            /* seeded hot sampling, each prompt its own seed, length and penalty; 11 prompts
             * (more than one em_dec_step_batch holds: two groups per step) */
            for (int i = 0; i < 11; i++) {
                p[i] = base;
                p[i].sampler.do_sample = true;
                p[i].sampler.temperature = 50;
                p[i].sampler.top_k = 1000;
                p[i].sampler.top_p = 1;
                p[i].sampler.seed = 7 + (uint64_t)i;
                p[i].sampler.repetition_penalty = i % 2 ? 1.0f : 1.1f;
                p[i].max_new_tokens = 6 + 3 * i;
            }
            p[4].n_stop = 0; /* no stop tokens at all: runs to its max_new_tokens */
            CU_ASSERT_EQUAL(batch_vs_sequential(c, &t, 11, p, hot), 0);
            int off_greedy = 0;
            for (int i = 0; i < 11; i++) {
                CU_ASSERT(hot[i].n >= 1 && hot[i].n <= (size_t)p[i].max_new_tokens);
                if (i < 3) {
                    size_t j = 0;
                    while (j < hot[i].n && j < gr[i].n && tie_class(hot[i].ids[j]) == tie_class(gr[i].ids[j])) j++;
                    off_greedy += j < hot[i].n;
                }
            }
            CU_ASSERT_EQUAL(hot[4].n, (size_t)p[4].max_new_tokens);
            CU_ASSERT(off_greedy > 0); /* the draws mattered */
            for (int i = 0; i < 11; i++) free(hot[i].ids);
            for (int i = 0; i < 3; i++) free(gr[i].ids);
            trio_close(&t);
        }
}

struct hook_log {
    int calls, fail_at;
};

static em_err log_hook(void *ctx, int i, struct em_errbuf *eb)
{
    struct hook_log *h = ctx;
    CU_ASSERT_EQUAL(i, h->calls);
    h->calls++;
    return i == h->fail_at ? em_errf(eb, EM_E_CANCELLED, "hook: stop at %d", i) : EM_OK;
}

static void batch_generation_hook_and_errors(void)
{
    struct trio t;
    trio_open(1, "base", &t);
    struct em_gen_params p[3];
    for (int i = 0; i < 3; i++) {
        p[i] = em_gen_params_from(NULL);
        p[i].max_new_tokens = 4;
    }
    struct em_gen_result res[3];
    struct hook_log h = {0, -1};
    struct em_gen_hook hook = {log_hook, &h};
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL(em_generate_batch(dec[1], t.shared, 3, t.ids, t.n, p, &hook, res, &eb), EM_OK);
    CU_ASSERT_EQUAL(h.calls, 3);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT(res[i].n >= 1 && res[i].n <= 4);
        free(res[i].ids);
    }
    h = (struct hook_log){0, 1};
    CU_ASSERT_EQUAL(em_generate_batch(dec[1], t.shared, 3, t.ids, t.n, p, &hook, res, &eb), EM_E_CANCELLED);
    CU_ASSERT_EQUAL(h.calls, 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "stop at 1"));
    for (int i = 0; i < 3; i++) CU_ASSERT_PTR_NULL(res[i].ids);
    CU_ASSERT_EQUAL(em_generate_batch(dec[1], t.shared, 0, t.ids, t.n, p, NULL, res, &eb), EM_E_ARG);
    CU_ASSERT_EQUAL(em_generate_batch(dec[1], t.shared, EM_GEN_MAX_BATCH + 1, t.ids, t.n, p, NULL, res,
                                      &eb), EM_E_ARG);
    p[2].max_new_tokens = 0;
    CU_ASSERT_EQUAL(em_generate_batch(dec[1], t.shared, 3, t.ids, t.n, p, NULL, res, &eb), EM_E_ARG);
    p[2].max_new_tokens = 4;
    /* without the shared cache the prompts' audio tokens have no rows */
    CU_ASSERT_EQUAL(em_generate_batch(dec[1], NULL, 3, t.ids, t.n, p, NULL, res, &eb), EM_E_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "audio token"));
    CU_ASSERT_EQUAL(em_kv_len(t.shared) > 0, 1);
    trio_close(&t);
}

/* ---- decode-step helpers (model/kernels/cpu/vecmath.h) ----------------------------------
 * The AVX2 dot / axpy rows of the decode attention and the SwiGLU product against the plain
 * C ones on odd head sizes, odd row strides and unaligned pointers; and the property the
 * batched decode relies on: a row's result does not depend on how many rows one call takes. */
static float vrand(uint32_t *r)
{
    *r ^= *r << 13;
    *r ^= *r >> 17;
    *r ^= *r << 5;
    return (float)((double)*r / 2147483648.0 - 1.0);
}

static void decode_helpers_simd_match_c(void)
{
    static const int hds[] = {1, 7, 8, 9, 17, 64, 130};
    uint32_t r = 12345;
    int cases = 0, bad = 0;
    for (size_t hi = 0; hi < sizeof hds / sizeof *hds; hi++) {
        const int hd = hds[hi], ld = hd + 3;
        float *qb = malloc(sizeof(float) * (hd + 1)), *kb = malloc(sizeof(float) * (4 * ld + 1));
        float *ob = malloc(sizeof(float) * (hd + 1)), *oc = malloc(sizeof(float) * hd);
        float *o1 = malloc(sizeof(float) * hd);
        float *q = qb + 1, *k = kb + 1, *o = ob + 1; /* 4 bytes off vector alignment */
        for (int c = 0; c < hd; c++) q[c] = vrand(&r);
        for (int i = 0; i < 4 * ld; i++) k[i] = vrand(&r);
        const float p[4] = {0.4f, -0.25f, 0.125f, 0.9f};
        for (int rows = 1; rows <= 4; rows++) {
            float sc[4], sv[4], s1;
            double mag[4] = {0};
            for (int i = 0; i < rows; i++)
                for (int c = 0; c < hd; c++) mag[i] += fabs((double)q[c] * k[(size_t)i * ld + c]);
            em_dots_t(q, k, (size_t)ld, rows, hd, 0.5f, sc, 0);
            for (int c = 0; c < hd; c++) oc[c] = o[c] = 0.5f * vrand(&r);
            memcpy(o1, o, sizeof(float) * hd);
            em_axpys_t(oc, p, k, (size_t)ld, rows, hd, 0);
#if EM_VM_X86
            if (em_cpu_level() >= EM_CPU_AVX2) {
                em_dots8(q, k, (size_t)ld, rows, hd, 0.5f, sv);
                em_axpys8(o, p, k, (size_t)ld, rows, hd);
                for (int i = 0; i < rows; i++) { /* one row alone: the same bits */
                    em_dots8(q, k + (size_t)i * ld, (size_t)ld, 1, hd, 0.5f, &s1);
                    bad += memcmp(&s1, &sv[i], sizeof s1) != 0;
                    bad += fabs((double)sv[i] - sc[i]) > 1e-6 * mag[i];
                    em_axpys8(o1, p + i, k + (size_t)i * ld, (size_t)ld, 1, hd);
                }
                bad += memcmp(o1, o, sizeof(float) * hd) != 0;
                for (int c = 0; c < hd; c++) bad += fabs((double)o[c] - oc[c]) > 1e-6;
                cases++;
            }
#endif
            /* the C version against double */
            for (int i = 0; i < rows; i++) {
                double want = 0;
                for (int c = 0; c < hd; c++) want += (double)q[c] * k[(size_t)i * ld + c];
                bad += fabs(sc[i] - 0.5 * want) > 1e-6 * mag[i] + 1e-30;
            }
        }
        free(qb);
        free(kb);
        free(ob);
        free(oc);
        free(o1);
    }
    /* SwiGLU product: odd lengths, unaligned, large |gv| (the exp clamps), NaN stays NaN */
    for (int n = 1; n <= 41; n += 5) {
        float *gb = malloc(sizeof(float) * (n + 1)), *gc = malloc(sizeof(float) * n);
        float *ub = malloc(sizeof(float) * (n + 1));
        float *gv = gb + 1, *u = ub + 1;
        for (int i = 0; i < n; i++) {
            gv[i] = 12.0f * vrand(&r);
            u[i] = vrand(&r);
        }
        gv[0] = n > 5 ? 200.0f : -200.0f;
        if (n > 10) gv[7] = NAN;
        memcpy(gc, gv, sizeof(float) * n);
        em_silu_mul(gc, u, (size_t)n);
#if EM_VM_X86
        if (em_cpu_level() >= EM_CPU_AVX2) {
            em_silu_mul8(gv, u, (size_t)n);
            for (int i = 0; i < n; i++) {
                if (isnan(gc[i])) {
                    bad += !isnan(gv[i]);
                    continue;
                }
                bad += fabs((double)gv[i] - gc[i]) > 4e-7 * fabs(gc[i]) + 1e-30;
            }
            cases++;
        }
#endif
        bad += fabs(gc[0] - (n > 5 ? 200.0 * u[0] : 0.0)) > 1e-4 * fabs(200.0 * u[0]);
        free(gb);
        free(gc);
        free(ub);
    }
    printf("\n    %d SIMD cases, %d mismatches\n", cases, bad);
    CU_ASSERT_EQUAL(bad, 0);
}

static CU_TestInfo tests[] = {
    {"logits_match_reference", logits_match_reference},
    {"greedy_matches_reference", greedy_matches_reference},
    {"cache_steps_equal_prefill", cache_steps_equal_prefill},
    {"shared_prefix_generation_matches", shared_prefix_generation_matches},
    {"bad_arguments_are_errors", bad_arguments_are_errors},
    {"batch_step_equals_single_steps", batch_step_equals_single_steps},
    {"batch_step_errors", batch_step_errors},
    {"batch_generation_equals_sequential", batch_generation_equals_sequential},
    {"batch_generation_hook_and_errors", batch_generation_hook_and_errors},
    {"decode_helpers_simd_match_c", decode_helpers_simd_match_c},
    {"prefill_batch_equals_single_prefills", prefill_batch_equals_single_prefills},
    {"f16_cache_follows_f32_cache", f16_cache_follows_f32_cache},
    {"capped_level_runs_in_child", capped_level_runs_in_child},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_decoder = {"decoder", init, clean, NULL, NULL, tests};
