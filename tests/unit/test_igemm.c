/* tests/unit/test_igemm.c - the int8 GEMM for quantized weights at n > 8
 * (model/kernels/cpu/igemm.h) and em_matmul's dispatch to it:
 *   - its activation quantizer is bit-identical to em_qdot_quantize_x;
 *   - em_igemm on odd n / out / in, Q8_0 and Q4_0, W at unaligned addresses, against a plain
 *     scalar C loop of the same definition (int8 x, integer block dots, f32 sum of
 *     dw * dx * dot), to float summation order; pool vs one thread bit for bit; two callers
 *     at once;
 *   - em_matmul at n > 8 on quantized W: with em_cpu_level() at AVX512 it is em_igemm plus the
 *     bias (and close to the f32 reference, as int8 activations allow); below AVX512 (the
 *     suite re-runs itself with EARMARK_CPU=avx2 to cover that) it is the widen + sgemm path,
 *     which matches the f32 reference to float order and em_igemm reports EM_E_UNSUPPORTED.
 * Where the machine has no AVX-512 VNNI the igemm cases check that refusal instead. */
#include <CUnit/CUnit.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "model/kernels/backend.h"
#include "model/kernels/cpu/cpufeat.h"
#include "model/kernels/cpu/igemm.h"
#include "model/kernels/cpu/qdot.h"
#include "model/kernels/cpu/qmatmul.h"
#include "model/loader/tensor.h"
#include "model/kernels/quant.h"
#include "tests/helpers/proc.h"
#include "tests/helpers/rand.h"

/* |got - want| <= TOL_ORDER * sum_b |term_b| per element: only f32 summation order differs */
#define TOL_ORDER 1e-5
/* relative to max |want|, against the f32 reference: int8 activations (as test_matmul.c) */
#define TOL_QX 2e-2
/* relative to max |want|, widen + sgemm against the f32 reference */
#define TOL_FLOAT 1e-4

static uint32_t rng = 777u;
static float frand(void) { return em_test_lcg_unit(&rng); } /* [-1, 1) */

static int have_igemm(void) { return em_igemm_available(em_cpu_level()); }

/* W [out, in] of wtype from random values, stored `off` bytes past a malloc'd address.
 * Returns the allocation; *w points at the rows. The allocation is exactly the rows' size
 * plus off, so ASan sees any read past W's end. */
static uint8_t *make_w(int wtype, int out, int in, size_t off, const uint8_t **w)
{
    const size_t rs = em_wtype_row_size(wtype, in);
    uint8_t *mem = malloc(rs * (size_t)out + off);
    float *row = malloc((size_t)in * sizeof *row);
    for (int r = 0; r < out; r++) {
        for (int i = 0; i < in; i++) row[i] = frand() * (1.0f + (float)(r % 5));
        CU_ASSERT_EQUAL(em_quantize_row(wtype, row, mem + off + (size_t)r * rs, in), EM_OK);
    }
    free(row);
    *w = mem + off;
    return mem;
}

/* Random x; with edges, also an all-zero block and a block dominated by one value. */
static float *make_x(int n, int in, int edges)
{
    float *x = malloc((size_t)n * in * sizeof *x);
    for (int i = 0; i < n * in; i++) x[i] = frand() * 3.0f;
    if (edges && n > 2 && in >= 64) { /* an all-zero block, and a block with one dominant value */
        memset(x + (size_t)in + 32, 0, 32 * sizeof *x);
        x[2 * (size_t)in + 5] = 1000.0f;
    }
    return x;
}

/* The definition, plainly: y[t, r] = sum_b (dw * dx) * (float)dot, and the bound
 * bound[t, r] = sum_b |term_b|. */
static void scalar_ref(int wtype, const uint8_t *w, const float *x, int n, int in, int out,
                       float *y, double *bound)
{
    const int nb = in / EM_QK;
    const size_t rs = em_wtype_row_size(wtype, in);
    const size_t bs = wtype == EM_WT_Q8_0 ? sizeof(struct em_block_q8_0)
                                          : sizeof(struct em_block_q4_0);
    int8_t *q = malloc((size_t)n * in);
    float *d = malloc((size_t)n * nb * sizeof *d);
    em_qdot_quantize_x(x, n, in, q, d);
    for (int r = 0; r < out; r++)
        for (int t = 0; t < n; t++) {
            float acc = 0.0f;
            double mag = 0.0;
            for (int b = 0; b < nb; b++) {
                const uint8_t *blk = w + (size_t)r * rs + (size_t)b * bs;
                uint16_t h;
                memcpy(&h, blk, 2);
                const float dw = em_quant_f16_to_f32(h);
                int s = 0;
                for (int i = 0; i < EM_QK; i++) {
                    int wq;
                    if (wtype == EM_WT_Q8_0)
                        wq = (int8_t)blk[2 + i];
                    else
                        wq = (i < 16 ? blk[2 + i] & 15 : blk[2 + i - 16] >> 4) - 8;
                    s += wq * q[(size_t)t * in + (size_t)b * EM_QK + i];
                }
                const float term = dw * d[(size_t)t * nb + b] * (float)s;
                acc += term;
                mag += fabs((double)term);
            }
            y[(size_t)t * out + r] = acc;
            bound[(size_t)t * out + r] = mag;
        }
    free(q);
    free(d);
}

static double rel_err(const float *got, const float *want, size_t n)
{
    return em_test_rel_err(got, want, n); /* tests/helpers/rand.h */
}

/* ---- the quantizer ---- */

static void quantizer_is_bit_identical(void)
{
    if (!have_igemm()) return;
    const int n = 7, in = 320;
    float *x = make_x(n, in, 1);
    x[3 * in + 40] = -2.5e-39f;               /* subnormal */
    for (int i = 0; i < 32; i++) x[4 * in + 64 + i] = 1e-42f * (float)(i - 16); /* tiny block */
    x[5 * in + 100] = 3.0e38f;                /* near overflow */
    for (int i = 0; i < 32; i++) x[6 * in + i] = (float)(i - 16) * 0.5f; /* exact halves */
    x[6 * in + 40] = NAN;      /* skipped by the block's amax; its code saturates */
    x[6 * in + 70] = INFINITY; /* amax inf: scale 0, every code of the block from x * 0 */
    x[6 * in + 71] = -3.0f;
    int8_t *q1 = malloc((size_t)n * in), *q2 = malloc((size_t)n * in);
    float *d1 = malloc((size_t)n * in / 32 * sizeof *d1), *d2 = malloc((size_t)n * in / 32 * 4);
    em_qdot_quantize_x(x, n, in, q1, d1);
    memset(q2, 0x55, (size_t)n * in);
    em_igemm_quantize_x_avx512(x, n, in, q2, d2);
    CU_ASSERT_EQUAL(memcmp(q1, q2, (size_t)n * in), 0);
    CU_ASSERT_EQUAL(memcmp(d1, d2, (size_t)n * in / 32 * sizeof *d1), 0);
    free(x);
    free(q1);
    free(q2);
    free(d1);
    free(d2);
}

/* ---- em_igemm against the scalar definition ---- */

static int check_igemm(int wtype, int n, int in, int out, size_t off, int threads)
{
    const uint8_t *w;
    uint8_t *mem = make_w(wtype, out, in, off, &w);
    float *x = make_x(n, in, 1);
    float *y = malloc((size_t)n * out * sizeof *y), *r = malloc((size_t)n * out * sizeof *r);
    double *bound = malloc((size_t)n * out * sizeof *bound);
    for (int i = 0; i < n * out; i++) y[i] = NAN; /* every element must be written */
    int bad = 0;
    CU_ASSERT_EQUAL_FATAL(em_igemm(y, x, n, in, out, wtype, w, threads), EM_OK);
    scalar_ref(wtype, w, x, n, in, out, r, bound);
    for (int i = 0; i < n * out; i++) {
        const double e = fabs((double)y[i] - r[i]);
        if (!(e <= TOL_ORDER * bound[i] + 1e-30)) {
            if (!bad)
                printf("\n    %s n=%d in=%d out=%d off=%zu: [%d, %d] = %.9g, want %.9g",
                       em_dtype_name(wtype), n, in, out, off, i / out, i % out, y[i], r[i]);
            bad++;
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    free(mem);
    free(x);
    free(y);
    free(r);
    free(bound);
    return bad;
}

static void odd_shapes_match_scalar_definition(void)
{
    if (!have_igemm()) return;
    static const int ns[] = {9, 13, 17, 31, 100};
    static const int outs[] = {1, 37, 50, 130};
    static const int ins[] = {32, 96, 288};
    static const int wts[] = {EM_WT_Q8_0, EM_WT_Q4_0};
    int k = 0;
    for (size_t a = 0; a < 2; a++)
        for (size_t i = 0; i < sizeof ins / sizeof *ins; i++)
            for (size_t j = 0; j < sizeof ns / sizeof *ns; j++)
                for (size_t o = 0; o < sizeof outs / sizeof *outs; o++, k++)
                    check_igemm(wts[a], ns[j], ins[i], outs[o], (size_t)(1 + 2 * (k % 2)), 0);
}

static void large_in_matches_scalar_definition(void)
{
    if (!have_igemm()) return;
    check_igemm(EM_WT_Q8_0, 31, 1280, 130, 1, 0);
    check_igemm(EM_WT_Q4_0, 17, 1280, 50, 3, 0);
    check_igemm(EM_WT_Q8_0, 9, 4096, 37, 3, 0);
    check_igemm(EM_WT_Q4_0, 100, 4096, 97, 1, 0);
    check_igemm(EM_WT_Q4_0, 13, 4096, 1, 0, 0);
    check_igemm(EM_WT_Q8_0, 37, 512, 970, 1, 0);
    check_igemm(EM_WT_Q8_0, 11, 288, 1025, 0, 1);
    check_igemm(EM_WT_Q8_0, 600, 1024, 70, 1, 0);
    check_igemm(EM_WT_Q4_0, 100, 8192, 40, 3, 0);
}

static void pool_matches_one_thread_bit_for_bit(void)
{
    if (!have_igemm()) return;
    const int n = 700, in = 1024, out = 333;
    const uint8_t *w;
    uint8_t *mem = make_w(EM_WT_Q4_0, out, in, 1, &w);
    float *x = make_x(n, in, 1);
    float *y1 = malloc((size_t)n * out * sizeof *y1), *y2 = malloc((size_t)n * out * 4);
    CU_ASSERT_EQUAL(em_igemm(y1, x, n, in, out, EM_WT_Q4_0, w, 1), EM_OK);
    CU_ASSERT_EQUAL(em_igemm(y2, x, n, in, out, EM_WT_Q4_0, w, 0), EM_OK);
    CU_ASSERT_EQUAL(memcmp(y1, y2, (size_t)n * out * sizeof *y1), 0);
    free(mem);
    free(x);
    free(y1);
    free(y2);
}

/* W ends exactly at a PROT_NONE page: a read past its last byte (which ASan cannot see for
 * gathers) faults. */
static void w_ending_at_guard_page_is_not_overread(void)
{
    if (!have_igemm()) return;
    static const int wts[] = {EM_WT_Q8_0, EM_WT_Q4_0};
    const long pg = sysconf(_SC_PAGESIZE);
    for (size_t a = 0; a < 2; a++) {
        const int n = 10, in = 96, out = 19;
        const size_t bytes = em_wtype_row_size(wts[a], in) * out;
        const size_t span = (bytes + (size_t)pg - 1) / (size_t)pg * (size_t)pg;
        uint8_t *map = mmap(NULL, span + (size_t)pg, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CU_ASSERT_FATAL(map != MAP_FAILED);
        CU_ASSERT_EQUAL_FATAL(mprotect(map + span, (size_t)pg, PROT_NONE), 0);
        const uint8_t *src;
        uint8_t *mem = make_w(wts[a], out, in, 0, &src);
        uint8_t *w = map + span - bytes; /* odd address for these sizes */
        memcpy(w, src, bytes);
        float *x = make_x(n, in, 1), *y = malloc((size_t)n * out * sizeof *y);
        float *r = malloc((size_t)n * out * sizeof *r);
        double *bound = malloc((size_t)n * out * sizeof *bound);
        CU_ASSERT_EQUAL(em_igemm(y, x, n, in, out, wts[a], w, 0), EM_OK);
        scalar_ref(wts[a], w, x, n, in, out, r, bound);
        for (int i = 0; i < n * out; i++) CU_ASSERT(fabs((double)y[i] - r[i]) <= 1e-5 * bound[i]);
        munmap(map, span + (size_t)pg);
        free(mem);
        free(x);
        free(y);
        free(r);
        free(bound);
    }
}

struct caller {
    const uint8_t *w;
    const float *x;
    float *y;
    int n, in, out;
    em_err rc;
};

static void *call_igemm(void *arg)
{
    struct caller *c = arg;
    for (int k = 0; k < 4 && c->rc == EM_OK; k++)
        c->rc = em_igemm(c->y, c->x, c->n, c->in, c->out, EM_WT_Q8_0, c->w, 0);
    return NULL;
}

static void concurrent_callers_agree(void)
{
    if (!have_igemm()) return;
    const int n = 20, in = 1024, out = 300;
    const uint8_t *w;
    uint8_t *mem = make_w(EM_WT_Q8_0, out, in, 0, &w);
    float *x = make_x(n, in, 1), *want = malloc((size_t)n * out * sizeof *want);
    CU_ASSERT_EQUAL(em_igemm(want, x, n, in, out, EM_WT_Q8_0, w, 1), EM_OK);
    struct caller c[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        c[i] = (struct caller){.w = w, .x = x, .n = n, .in = in, .out = out, .rc = EM_OK,
                               .y = malloc((size_t)n * out * sizeof(float))};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, call_igemm, &c[i]), 0);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        CU_ASSERT_EQUAL(c[i].rc, EM_OK);
        CU_ASSERT_EQUAL(memcmp(c[i].y, want, (size_t)n * out * sizeof *want), 0);
        free(c[i].y);
    }
    free(mem);
    free(x);
    free(want);
}

static void bad_arguments_are_rejected(void)
{
    float x[64] = {0}, y[4] = {5.0f};
    uint8_t w[2 * 34] = {0};
    CU_ASSERT_EQUAL(em_igemm(y, x, -1, 32, 2, EM_WT_Q8_0, w, 0), EM_E_ARG);
    CU_ASSERT_EQUAL(em_igemm(y, x, 1, 40, 2, EM_WT_Q8_0, w, 0), EM_E_ARG); /* in % 32 */
    CU_ASSERT_EQUAL(em_igemm(y, x, 1, 0, 2, EM_WT_Q8_0, w, 0), EM_E_ARG);
    CU_ASSERT_EQUAL(em_igemm(y, x, 1, 32, -1, EM_WT_Q8_0, w, 0), EM_E_ARG);
    CU_ASSERT_EQUAL(em_igemm(y, x, 1, 32, 2, EM_WT_BF16, w, 0), EM_E_UNSUPPORTED);
    CU_ASSERT_EQUAL(em_igemm(y, x, 1, 32, 2, EM_WT_Q8_0, NULL, 0), EM_E_ARG);
    CU_ASSERT_EQUAL(em_igemm(y, x, 0, 32, 2, EM_WT_Q8_0, w, 0), EM_OK);
    CU_ASSERT_EQUAL(em_igemm(y, x, 1, 32, 0, EM_WT_Q8_0, w, 0), EM_OK);
    CU_ASSERT_EQUAL(y[0], 5.0f); /* nothing written */
    CU_ASSERT_EQUAL(em_igemm(y, x, 1, 32, 2, EM_WT_Q4_0, w, 0),
                    have_igemm() ? EM_OK : EM_E_UNSUPPORTED);
    /* activations (n rounded up to 6) + scales + corrections + one tile per pool thread */
    const size_t th = (size_t)em_qmm_threads();
    CU_ASSERT(em_igemm_scratch_bytes(100, 4096) >= 100 * 4096);
    CU_ASSERT_EQUAL(em_igemm_scratch_bytes(100, 4096),
                    102 * 4096 + 2 * 102 * 128 * 4 + th * (4096 / 32) * 1152);
    CU_ASSERT_EQUAL(em_igemm_scratch_bytes(0, 4096), 0);
}

/* ---- em_matmul's dispatch ---- */

static void matmul_case(int wtype, int n, int in, int out)
{
    const uint8_t *wp;
    uint8_t *mem = make_w(wtype, out, in, 3, &wp);
    const struct em_tensor w = {.name = "w", .dtype = wtype, .ndim = 2, .shape = {out, in},
                                .data = wp, .nbytes = em_wtype_row_size(wtype, in) * out};
    float *bias = malloc((size_t)out * sizeof *bias);
    for (int j = 0; j < out; j++) bias[j] = frand();
    const struct em_tensor b = {.name = "b", .dtype = EM_DT_F32, .ndim = 1, .shape = {out},
                                .data = bias, .nbytes = (size_t)out * sizeof *bias};
    float *x = make_x(n, in, 0); /* no outlier block: compared with the f32 product */
    const size_t ny = (size_t)n * out;
    float *y = malloc(ny * sizeof *y), *r = malloc(ny * sizeof *r), *g = malloc(ny * 4);
    CU_ASSERT_EQUAL_FATAL(em_matmul(y, x, n, in, out, &w, &b), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_matmul_ref(r, x, n, in, out, &w, &b), EM_OK);
    const double e = rel_err(y, r, ny);
    if (have_igemm()) {
        if (!(e <= TOL_QX))
            printf("\n    %s n=%d [%d x %d]: rel err %.3g", em_dtype_name(wtype), n, out, in, e);
        /* the int8 GEMM, then the bias in f32 */
        CU_ASSERT_EQUAL(em_igemm(g, x, n, in, out, wtype, wp, 0), EM_OK);
        for (size_t i = 0; i < ny; i++) g[i] += bias[i % out];
        CU_ASSERT_EQUAL(memcmp(g, y, ny * sizeof *y), 0);
        CU_ASSERT(e <= TOL_QX);
        CU_ASSERT(e > 0); /* int8 activations: not the f32 product */
    } else {
        /* widen + sgemm: the f32 product to float order */
        CU_ASSERT_EQUAL(em_igemm(g, x, n, in, out, wtype, wp, 0), EM_E_UNSUPPORTED);
        if (!(e <= TOL_FLOAT))
            printf("\n    %s n=%d [%d x %d]: rel err %.3g", em_dtype_name(wtype), n, out, in, e);
        CU_ASSERT(e <= TOL_FLOAT);
    }
    free(mem);
    free(bias);
    free(x);
    free(y);
    free(r);
    free(g);
}

static void matmul_dispatches_by_level(void)
{
    matmul_case(EM_WT_Q8_0, 9, 288, 37);
    matmul_case(EM_WT_Q4_0, 17, 96, 130);
    matmul_case(EM_WT_Q8_0, 100, 1280, 50);
    matmul_case(EM_WT_Q4_0, 31, 4096, 33);
}

/* The suite again in a child with EARMARK_CPU=avx2 (em_cpu_level is read once per process),
 * so both sides of the dispatch run wherever AVX-512 exists. */
static void capped_level_runs_in_child(void)
{
    if (getenv("EM_TEST_IGEMM_CHILD")) { /* we are the child: the cap must have applied */
        CU_ASSERT(em_cpu_level() <= EM_CPU_AVX2);
        CU_ASSERT(!have_igemm());
        return;
    }
    char *env[] = {"EM_TEST_SUITE=igemm", "EARMARK_CPU=avx2", "EM_TEST_IGEMM_CHILD=1", NULL};
    CU_ASSERT_EQUAL(th_run_self(env, 120000, "EARMARK_CPU=avx2"), 0);
}

static CU_TestInfo tests[] = {
    {"quantizer_is_bit_identical", quantizer_is_bit_identical},
    {"odd_shapes_match_scalar_definition", odd_shapes_match_scalar_definition},
    {"large_in_matches_scalar_definition", large_in_matches_scalar_definition},
    {"w_ending_at_guard_page_is_not_overread", w_ending_at_guard_page_is_not_overread},
    {"pool_matches_one_thread_bit_for_bit", pool_matches_one_thread_bit_for_bit},
    {"concurrent_callers_agree", concurrent_callers_agree},
    {"bad_arguments_are_rejected", bad_arguments_are_rejected},
    {"matmul_dispatches_by_level", matmul_dispatches_by_level},
    {"capped_level_runs_in_child", capped_level_runs_in_child},
    CU_TEST_INFO_NULL,
};

const CU_SuiteInfo suite_igemm = {"igemm", NULL, NULL, NULL, NULL, tests};
