/* tests/unit/test_qkernels.c - model/kernels/cpu: em_qmatmul for every weight type.
 *  - the generic path against a double-precision reference on the dequantized weights, within
 *    the closed-form error of quantizing x per 32-block;
 *  - every SIMD level the machine supports against the generic path on odd shapes
 *    (out 1, 3, 17, 63; in 32, 96, 160, 224, 256, 4128 = 1, 3, 5, 7, 8, 129 blocks: full
 *    and partial groups of the AVX-512 kernels, and odd in for float rows; n 1..8 and 11) with
 *    weights, x and y at offset addresses;
 *  - activation codes identical across levels, AVX-512 rows bit-identical for every n and
 *    row pairing, pool vs single thread bit-identical,
 *    concurrent callers, bias, argument errors. No timing. */
#include <CUnit/CUnit.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/kernels/cpu/cpufeat.h"
#include "model/kernels/cpu/qdot.h"
#include "model/kernels/cpu/peak.h"
#include "model/kernels/cpu/qmatmul.h"
#include "model/kernels/quant.h"
#include "model/tools/bench_host.h"
#include "tests/helpers/rand.h"

/* SIMD vs generic: same integers, different float summation order. Relative to
 * S = sum |w_i| (|x_i| + dx/2), the sum of the magnitudes of the terms. */
#define TOL_REORDER 4e-6
/* AVX-512 BF16 rows round x to bf16 (relative 2^-8) before vdpbf16ps. */
#define TOL_BF16_X 0x1.0p-8
/* generic vs exact: |x - dx * q| <= dx / 2 per element (+ rounding of x * 127 / amax). */
#define TOL_ACT_STEP (0.5 + 1e-4)

static uint32_t rng = 2463534242u;
static float frand(void) { return em_test_xorshift_unit(&rng); } /* [-1, 1) */

static const int levels_all[] = {EM_CPU_GENERIC, EM_CPU_AVX2, EM_CPU_AVX512};
static const int wtypes_all[] = {EM_WT_Q8_0, EM_WT_Q4_0, EM_WT_BF16, EM_WT_F16, EM_WT_F32};

/* Random W[out, in] quantized to wtype at w + woff; x [n, in] with an outlier column. */
struct mat {
    int wtype, out, in, n;
    uint8_t *wbuf, *w;  /* w = wbuf + woff */
    float *wdeq;        /* [out, in] dequantized W */
    float *x;           /* [n, in] */
};

static void mat_make(struct mat *m, int wtype, int out, int in, int n, int woff)
{
    m->wtype = wtype;
    m->out = out;
    m->in = in;
    m->n = n;
    const size_t rs = em_wtype_row_size(wtype, in);
    m->wbuf = malloc(rs * out + 8);
    m->w = m->wbuf + woff;
    m->wdeq = malloc(sizeof(float) * out * in);
    m->x = malloc(sizeof(float) * n * in);
    float *row = malloc(sizeof(float) * in);
    for (int r = 0; r < out; r++) {
        const float s = 0.02f * (1 + r % 5);
        for (int i = 0; i < in; i++) row[i] = s * frand();
        em_quantize_row(wtype, row, m->w + rs * r, in);
        em_dequantize_row(wtype, m->w + rs * r, m->wdeq + (size_t)r * in, in);
    }
    for (int j = 0; j < n; j++)
        for (int i = 0; i < in; i++)
            m->x[(size_t)j * in + i] = (i % 37 == 5 ? 20.0f : 1.0f) * frand();
    free(row);
}

static void mat_free(struct mat *m)
{
    free(m->wbuf);
    free(m->wdeq);
    free(m->x);
}

static int is_block(int wtype)
{
    return wtype == EM_WT_Q8_0 || wtype == EM_WT_Q4_0;
}

/* dx of the 32-block of x_j holding element i (0 for float rows: x is used as is). */
static double act_step(const struct mat *m, int j, int i)
{
    if (!is_block(m->wtype)) return 0;
    const float *xb = m->x + (size_t)j * m->in + i / EM_QK * EM_QK;
    float amax = 0;
    for (int k = 0; k < EM_QK; k++) amax = fmaxf(amax, fabsf(xb[k]));
    return amax / 127.0;
}

/* exact = sum wdeq * x; S = sum |wdeq| (|x| + dx / 2); A = sum |wdeq| dx (activation error) */
static void reference(const struct mat *m, int j, int r, double *exact, double *S, double *A)
{
    double e = 0, s = 0, a = 0;
    for (int i = 0; i < m->in; i++) {
        const double w = m->wdeq[(size_t)r * m->in + i], x = m->x[(size_t)j * m->in + i];
        e += w * x;
        s += fabs(w) * fabs(x);
    }
    for (int b = 0; b * EM_QK < m->in && is_block(m->wtype); b++) {
        const double dx = act_step(m, j, b * EM_QK);
        for (int i = b * EM_QK; i < (b + 1) * EM_QK; i++) {
            const double w = fabs(m->wdeq[(size_t)r * m->in + i]);
            a += w * dx;
            s += w * dx / 2;
        }
    }
    *exact = e;
    *S = s;
    *A = a;
}

static em_err run(const struct mat *m, int level, int threads, float *y)
{
    const struct em_qmm_opts o = {.level = level, .threads = threads};
    return em_qmatmul_ex(&o, y, m->x, m->n, m->in, m->out, m->wtype, m->w, NULL);
}

static void generic_matches_exact_reference(void)
{
    static const int ins[] = {32, 96, 4128};
    for (size_t t = 0; t < sizeof wtypes_all / sizeof *wtypes_all; t++) {
        for (size_t k = 0; k < 3; k++) {
            struct mat m;
            mat_make(&m, wtypes_all[t], 17, ins[k], 3, 1);
            float y[3 * 17];
            CU_ASSERT_EQUAL_FATAL(run(&m, EM_CPU_GENERIC, 1, y), EM_OK);
            double worst = 0;
            int bad = 0;
            for (int j = 0; j < 3; j++)
                for (int r = 0; r < 17; r++) {
                    double ex, S, A;
                    reference(&m, j, r, &ex, &S, &A);
                    const double tol = TOL_ACT_STEP * A + TOL_REORDER * S;
                    const double err = fabs(y[j * 17 + r] - ex);
                    if (err > tol) bad++;
                    if (err / tol > worst) worst = err / tol;
                }
            if (bad)
                printf("\ngeneric %s in=%d: %d outputs off, worst err/tol %.3f\n",
                       em_wtype_name(m.wtype), m.in, bad, worst);
            CU_ASSERT_EQUAL(bad, 0);
            mat_free(&m);
        }
    }
}

/* One SIMD-vs-generic case; returns the number of outputs out of tolerance. */
static int simd_case(int level, int wtype, int out, int in, int n, int off, int exact,
                     double *worst)
{
    struct mat m;
    mat_make(&m, wtype, out, in, n, off % 4);
    float *yg = calloc((size_t)n * out, sizeof(float));
    float *ybuf = calloc((size_t)n * out + 8, sizeof(float));
    float *xbuf = malloc(sizeof(float) * ((size_t)n * in + 4));
    float *ys = ybuf + off % 3;                /* y and x 4-12 bytes off any vector alignment */
    float *xs = xbuf + 1 + off % 3;
    memcpy(xs, m.x, sizeof(float) * n * in);
    for (size_t i = 0; i < (size_t)n * out + 8; i++) ybuf[i] = -7.0f; /* guard */
    int bad = 0;
    const struct em_qmm_opts og = {.level = EM_CPU_GENERIC, .threads = 1};
    const struct em_qmm_opts os = {.level = level, .threads = 1, .bf16_exact = exact};
    if (em_qmatmul_ex(&og, yg, m.x, n, in, out, wtype, m.w, NULL) != EM_OK ||
        em_qmatmul_ex(&os, ys, xs, n, in, out, wtype, m.w, NULL) != EM_OK) {
        bad = -1;
        goto done;
    }
    for (int i = 0; i < off % 3; i++) bad += ybuf[i] != -7.0f;
    for (int i = 0; i < 8 - off % 3; i++) bad += ys[(size_t)n * out + i] != -7.0f;
    const double bf = (level == EM_CPU_AVX512 && wtype == EM_WT_BF16 && !exact &&
                       em_cpu_has_avx512bf16()) ? TOL_BF16_X : 0;
    for (int j = 0; j < n; j++)
        for (int r = 0; r < out; r++) {
            double ex, S, A;
            reference(&m, j, r, &ex, &S, &A);
            const double tol = TOL_REORDER * S + bf * S;
            const double err = fabs((double)ys[(size_t)j * out + r] - yg[(size_t)j * out + r]);
            if (err > tol || isnan(ys[(size_t)j * out + r])) bad++;
            if (tol > 0 && err / tol > *worst) *worst = err / tol;
        }
done:
    free(yg);
    free(ybuf);
    free(xbuf);
    mat_free(&m);
    return bad;
}

static void simd_matches_generic_on_odd_shapes(void)
{
    static const int outs[] = {1, 3, 17, 63};
    static const int ins_q[] = {32, 96, 160, 224, 256, 4128};
    static const int ins_f[] = {32, 33, 48, 95, 4128}; /* tails of 1, 16 and 31 */
    const int sup = em_cpu_level_supported();
    int cases = 0;
    for (int li = 1; li < 3; li++) {
        const int level = levels_all[li];
        if (level > sup) continue;
        for (size_t t = 0; t < sizeof wtypes_all / sizeof *wtypes_all; t++) {
            const int wt = wtypes_all[t];
            const int *ins = is_block(wt) ? ins_q : ins_f;
            const int nins = is_block(wt) ? 6 : 5;
            /* BF16 at AVX-512: both vdpbf16ps (bf16_exact 0) and the exact widening (1) */
            const int nex = wt == EM_WT_BF16 && level == EM_CPU_AVX512 ? 2 : 1;
            double worst = 0;
            int bad = 0;
            for (int ex = 0; ex < nex; ex++)
            for (int oi = 0; oi < 4; oi++)
                for (int ii = 0; ii < nins; ii++)
                    for (int n = 1; n <= 9; n++) {
                        const int nn = n == 9 ? 11 : n; /* 11: a group of 8 then of 3 */
                        if (ins[ii] > 1000 && outs[oi] > 17 && nn > 4 && nn != 8) continue;
                        const int off = oi * 7 + ii * 3 + n;
                        const int b =
                            simd_case(level, wt, outs[oi], ins[ii], nn, off, ex, &worst);
                        if (b)
                            printf("\n%s %s%s out=%d in=%d n=%d off=%d: %d bad\n",
                                   em_cpu_level_name(level), em_wtype_name(wt),
                                   ex ? " exact" : "", outs[oi], ins[ii], nn, off, b);
                        bad += b != 0;
                        cases++;
                    }
            printf("\n%s %s: worst |simd - generic| / tol = %.3f", em_cpu_level_name(level),
                   em_wtype_name(wt), worst);
            CU_ASSERT_EQUAL(bad, 0);
        }
    }
    printf("\n%d cases (supported level: %s)\n", cases, em_cpu_level_name(sup));
    CU_ASSERT_TRUE(sup == EM_CPU_GENERIC || cases > 0);
}

/* Every level's prep yields the generic codes and scales bit for bit. */
static void activation_codes_identical_across_levels(void)
{
    const int n = 3, in = 4128, nb = in / EM_QK; /* 129 blocks: pairs and an odd tail */
    float *x = malloc(sizeof(float) * n * in);
    for (int i = 0; i < n * in; i++) x[i] = (i % 50 == 3 ? 100.0f : 1.0f) * frand();
    for (int i = 0; i < EM_QK; i++) x[i] = 0.0f; /* an all-zero block */
    x[32] = 127.0f; /* block 1: amax 127, so x * 127 / amax = x and these are .5 ties */
    x[33] = 2.5f;
    x[34] = -3.5f;
    int8_t *q = malloc((size_t)n * in);
    float *d = malloc(sizeof(float) * n * nb);
    em_qdot_quantize_x(x, n, in, q, d);
    const struct em_qdot_ops *ops[3] = {em_qdot_generic(), NULL, NULL};
    if (em_cpu_level_supported() >= EM_CPU_AVX2) ops[1] = em_qdot_avx2();
    if (em_cpu_level_supported() >= EM_CPU_AVX512) ops[2] = em_qdot_avx512(false);
    for (int l = 0; l < 3; l++) {
        if (!ops[l]) continue;
        const size_t ss = ops[l]->scratch_size(EM_WT_Q8_0, n, in);
        void *scratch = aligned_alloc(64, (ss + 63) & ~(size_t)63);
        struct em_qact a;
        ops[l]->prep(EM_WT_Q8_0, x, n, in, scratch, &a);
        int bad_q = 0, bad_d = 0;
        if (l == 2) {
            /* AVX-512 q8_0 rows: per row, groups of 8 blocks (a partial last group
             * zero-padded) of 320 bytes: four 64-byte vectors of code + 128, then 16 f32
             * scales. Blocks 4h + k (h = 0, 1; k < 4) come as two halves of 16 codes, the
             * first vector pair (0, 1) holding half k == 1 ? 1 : 0 and the pair (2, 3) the
             * other; vector 2p + e, 16-byte lane k, bytes 8h .. 8h + 7 hold codes 8e .. 8e + 7
             * of that half. Scales in lane order [k, k, k + 4, k + 4]. */
            const int ng = (nb + 7) / 8;
            CU_ASSERT_EQUAL(ss, (size_t)n * ng * 320);
            for (int j = 0; j < n; j++)
                for (int g = 0; g < ng; g++) {
                    const uint8_t *rec = a.q + ((size_t)j * ng + g) * 320;
                    float dx[16];
                    memcpy(dx, rec + 256, sizeof dx);
                    for (int kk = 0; kk < 8; kk++) {
                        const int b = g * 8 + kk, k = kk % 4, h = kk / 4;
                        for (int t = 0; t < EM_QK; t++) {
                            const int pair = (t / 16) ^ (k == 1); /* block k == 1 swapped */
                            const int v = 2 * pair + (t % 16) / 8;
                            const int got = rec[v * 64 + k * 16 + h * 8 + t % 8] - 128;
                            const int want = b < nb ? q[((size_t)j * nb + b) * EM_QK + t] : 0;
                            bad_q += got != want;
                        }
                        for (int t = 0; t < 2; t++)
                            bad_d += dx[4 * k + 2 * h + t] != (b < nb ? d[(size_t)j * nb + b] : 0.0f);
                    }
                }
        } else {
            for (int j = 0; j < n; j++)
                for (int i = 0; i < in; i++)
                    bad_q += (int8_t)a.q[(size_t)j * in + i] != q[(size_t)j * in + i];
            for (int b = 0; b < n * nb; b++) bad_d += a.d[b] != d[b];
        }
        if (l == 2) {
            /* AVX-512 q4_0 rows: per row, groups of 8 blocks of 384 bytes: four 64-byte code
             * vectors (vector m, 16-byte lane k: codes 8m..8m+7 of block k, then of block
             * k + 4), 16 f32 scales and 16 int32 corrections (-8 * code sum) in lane order
             * [k, k, k + 4, k + 4] (corrections in the first lane of each block, else 0) */
            const size_t ss4 = ops[l]->scratch_size(EM_WT_Q4_0, n, in);
            void *scr4 = aligned_alloc(64, (ss4 + 63) & ~(size_t)63);
            struct em_qact a4;
            ops[l]->prep(EM_WT_Q4_0, x, n, in, scr4, &a4);
            const int ng = (nb + 7) / 8;
            CU_ASSERT_EQUAL(ss4, (size_t)n * ng * 384);
            for (int j = 0; j < n; j++)
                for (int g = 0; g < ng; g++) {
                    const uint8_t *rec = a4.q + ((size_t)j * ng + g) * 384;
                    float dx[16];
                    int32_t cs[16];
                    memcpy(dx, rec + 256, sizeof dx);
                    memcpy(cs, rec + 320, sizeof cs);
                    for (int k = 0; k < 8; k++) {
                        const int b = g * 8 + k, lane = k % 4, half = k / 4;
                        int sum = 0;
                        for (int t = 0; t < EM_QK; t++) {
                            const int8_t got = (int8_t)rec[(t / 8) * 64 + lane * 16 + half * 8 + t % 8];
                            const int8_t want = b < nb ? q[((size_t)j * nb + b) * EM_QK + t] : 0;
                            bad_q += got != want;
                            sum += want;
                        }
                        for (int t = 0; t < 2; t++) {
                            bad_d += dx[4 * lane + 2 * half + t] != (b < nb ? d[(size_t)j * nb + b] : 0.0f);
                            bad_d += cs[4 * lane + 2 * half + t] != (t == 0 ? -8 * sum : 0);
                        }
                    }
                }
            free(scr4);
        }
        if (bad_q || bad_d) printf("\n%s prep: %d codes, %d scales differ\n", ops[l]->name, bad_q, bad_d);
        CU_ASSERT_EQUAL(bad_q, 0);
        CU_ASSERT_EQUAL(bad_d, 0);
        free(scratch);
    }
    CU_ASSERT_EQUAL(q[0], 0);
    CU_ASSERT_EQUAL(d[0], 0.0f);
    CU_ASSERT_EQUAL(q[33], 2); /* ties to even */
    CU_ASSERT_EQUAL(q[34], -4);
    CU_ASSERT_EQUAL(d[1], 1.0f);
    free(x);
    free(q);
    free(d);
}

/* em_qdot_avx512(false) (a CPU with AVX-512 VNNI but no AVX512_BF16, or bf16_exact): BF16
 * rows are widened and multiplied in f32 against f32 x, so they match generic to the reorder
 * tolerance. */
static void avx512_without_bf16_widens_bf16_rows(void)
{
    if (em_cpu_level_supported() < EM_CPU_AVX512) {
        CU_ASSERT_EQUAL(em_cpu_has_avx512bf16(), false);
        return;
    }
    const struct em_qdot_ops *z = em_qdot_avx512(false), *g = em_qdot_generic();
    CU_ASSERT_EQUAL(z->scratch_size(EM_WT_BF16, 5, 100), 5 * 100 * sizeof(float));
    float *scratch = aligned_alloc(64, EM_QDOT_MAX_N * 100 * sizeof(float));
    int bad = 0;
    for (int n = 1; n <= EM_QDOT_MAX_N; n++) {
        struct mat m;
        mat_make(&m, EM_WT_BF16, 7, 100, n, 3);
        float yz[EM_QDOT_MAX_N * 7], yg[EM_QDOT_MAX_N * 7];
        struct em_qact az, ag;
        z->prep(EM_WT_BF16, m.x, n, 100, scratch, &az);
        g->prep(EM_WT_BF16, m.x, n, 100, NULL, &ag);
        CU_ASSERT_PTR_NULL(az.xb);
        CU_ASSERT_PTR_NOT_NULL(az.xp);
        z->rows(EM_WT_BF16, &az, m.w, 200, 0, 7, yz, 7);
        g->rows(EM_WT_BF16, &ag, m.w, 200, 0, 7, yg, 7);
        for (int j = 0; j < n; j++)
            for (int r = 0; r < 7; r++) {
                double ex, S, A;
                reference(&m, j, r, &ex, &S, &A);
                bad += fabs((double)yz[j * 7 + r] - yg[j * 7 + r]) > TOL_REORDER * S;
            }
        mat_free(&m);
    }
    free(scratch);
    CU_ASSERT_EQUAL(bad, 0);
}

/* AVX-512 rows: each output row's bits do not depend on how many activations share the
 * pass (n = 1..8) nor on the row it is paired with (the batched decode relies on it): every
 * x_j of a batch against x_j alone, and rows [1, out) started at an odd row. q8_0 / q4_0
 * rows at in = 4128 (a partial last group) and 256 (one full group), exact BF16 rows at 4128
 * and 95 (a 31-element tail), unaligned W. */
static void avx512_rows_bit_identical_across_n(void)
{
    if (em_cpu_level_supported() < EM_CPU_AVX512) {
        printf("\n(no AVX-512 here: nothing to compare)\n");
        CU_ASSERT_TRUE(em_cpu_level_supported() < EM_CPU_AVX512);
        return;
    }
    static const int wts[] = {EM_WT_Q8_0, EM_WT_Q4_0, EM_WT_BF16};
    static const int ins[][2] = {{4128, 256}, {4128, 256}, {4128, 95}};
    int bad = 0, cmp = 0;
    for (int t = 0; t < 3; t++)
        for (int ii = 0; ii < 2; ii++) {
            /* BF16: the exact rows (two per pass at n = 3, 4; one otherwise) */
            const struct em_qdot_ops *z =
                em_qdot_avx512(wts[t] != EM_WT_BF16 && em_cpu_has_avx512bf16());
            const int out = 13, in = ins[t][ii], wt = wts[t];
            const size_t rs = em_wtype_row_size(wt, in);
            struct mat m;
            mat_make(&m, wt, out, in, EM_QDOT_MAX_N, 3);
            const size_t ss = z->scratch_size(wt, EM_QDOT_MAX_N, in);
            void *scratch = aligned_alloc(64, (ss + 63) & ~(size_t)63);
            float alone[EM_QDOT_MAX_N][13], y[EM_QDOT_MAX_N * 13];
            struct em_qact a;
            for (int j = 0; j < EM_QDOT_MAX_N; j++) {
                z->prep(wt, m.x + (size_t)j * in, 1, in, scratch, &a);
                z->rows(wt, &a, m.w, rs, 0, out, alone[j], out);
            }
            for (int n = 1; n <= EM_QDOT_MAX_N; n++)
                for (int r0 = 0; r0 < 2; r0++) {
                    z->prep(wt, m.x, n, in, scratch, &a);
                    memset(y, 0, sizeof y);
                    z->rows(wt, &a, m.w, rs, r0, out, y, out);
                    for (int j = 0; j < n; j++)
                        for (int r = r0; r < out; r++) {
                            bad += memcmp(&y[j * out + r], &alone[j][r], sizeof(float)) != 0;
                            cmp++;
                        }
                }
            free(scratch);
            mat_free(&m);
        }
    if (bad) printf("\n%d of %d outputs differ from the activation alone\n", bad, cmp);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_TRUE(cmp > 0);
}

static void pool_matches_single_thread(void)
{
    for (size_t t = 0; t < 3; t++) {
        struct mat m;
        mat_make(&m, wtypes_all[t], 1000, 1024, 4, 0); /* >= EM_QMM_MIN_PAR_BYTES of W */
        float *y1 = malloc(sizeof(float) * 4 * 1000), *yp = malloc(sizeof(float) * 4 * 1000);
        CU_ASSERT_EQUAL(run(&m, -1, 1, y1), EM_OK);
        CU_ASSERT_EQUAL(run(&m, -1, 0, yp), EM_OK);
        CU_ASSERT_EQUAL(memcmp(y1, yp, sizeof(float) * 4 * 1000), 0);
        free(y1);
        free(yp);
        mat_free(&m);
    }
    CU_ASSERT_TRUE(em_qmm_threads() >= 1);
}

/* Every split of [0, out) into two calls gives the bits of one call: the q4_0 row passes
 * (4, 2 or 1 rows at n = 1; 2 or 1 above) and the masked last group do not change a row. */
static void avx512_q4_rows_bit_identical_across_splits(void)
{
    if (em_cpu_level_supported() < EM_CPU_AVX512) {
        printf("\n(no AVX-512 here: nothing to compare)\n");
        CU_ASSERT_TRUE(em_cpu_level_supported() < EM_CPU_AVX512);
        return;
    }
    const struct em_qdot_ops *z = em_qdot_avx512(em_cpu_has_avx512bf16());
    static const int ins[] = {4128, 256, 96};
    int bad = 0, cmp = 0;
    for (int ii = 0; ii < 3; ii++)
        for (int n = 1; n <= 2; n++) {
            const int out = 19, in = ins[ii];
            const size_t rs = em_wtype_row_size(EM_WT_Q4_0, in);
            struct mat m;
            mat_make(&m, EM_WT_Q4_0, out, in, n, 1);
            const size_t ss = z->scratch_size(EM_WT_Q4_0, n, in);
            void *scratch = aligned_alloc(64, (ss + 63) & ~(size_t)63);
            float whole[2 * 19], y[2 * 19];
            struct em_qact a;
            z->prep(EM_WT_Q4_0, m.x, n, in, scratch, &a);
            z->rows(EM_WT_Q4_0, &a, m.w, rs, 0, out, whole, out);
            for (int cut = 0; cut <= out; cut++)
                for (int c2 = cut; c2 <= out; c2 += 3) {
                    memset(y, 0, sizeof y);
                    z->rows(EM_WT_Q4_0, &a, m.w, rs, 0, cut, y, out);
                    z->rows(EM_WT_Q4_0, &a, m.w, rs, cut, c2, y, out);
                    z->rows(EM_WT_Q4_0, &a, m.w, rs, c2, out, y, out);
                    bad += memcmp(y, whole, sizeof(float) * n * out) != 0;
                    cmp++;
                }
            /* and the rows are right: within the reorder tolerance of the reference */
            for (int j = 0; j < n; j++)
                for (int r = 0; r < out; r++) {
                    double e, S, A;
                    reference(&m, j, r, &e, &S, &A);
                    bad += fabs(whole[j * out + r] - e) > TOL_ACT_STEP * A + TOL_REORDER * S;
                }
            free(scratch);
            mat_free(&m);
        }
    if (bad) printf("\n%d of %d splits differ from the whole call\n", bad, cmp);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_TRUE(cmp > 0);
}

/* With more runnable threads than CPUs the pool's workers are often off their CPU when a
 * job is published; the caller then takes every chunk and closes the job, and a worker
 * that arrives late must leave it untouched. Results stay those of one thread, bit for
 * bit, and every em_qmm_parallel task runs exactly once. */
#define BUSY_SIDE 3
#define BUSY_CALLS 150

struct tally {
    int n;
    int *hits;
};

static void tally_task(void *ctx, int task, int slot)
{
    struct tally *t = ctx;
    (void)slot;
    __atomic_fetch_add(&t->hits[task], 1, __ATOMIC_RELAXED);
}

static void pool_beside_busy_threads_matches_single_thread(void)
{
    struct em_bench_busy *busy[BUSY_SIDE] = {0};
    for (int i = 0; i < BUSY_SIDE; i++)
        CU_ASSERT_EQUAL_FATAL(em_bench_busy_start(&busy[i], NULL), EM_OK);
    int bad = 0, wrong_tasks = 0;
    for (int t = 0; t < 2; t++) {
        struct mat m;
        mat_make(&m, t ? EM_WT_Q4_0 : EM_WT_Q8_0, 1000, 1024, 1, 0); /* >= MIN_PAR_BYTES */
        float want[1000], y[1000];
        CU_ASSERT_EQUAL(run(&m, -1, 1, want), EM_OK);
        for (int k = 0; k < BUSY_CALLS; k++) {
            memset(y, 0, sizeof y);
            CU_ASSERT_EQUAL(run(&m, -1, 0, y), EM_OK);
            bad += memcmp(y, want, sizeof y) != 0;
        }
        mat_free(&m);
    }
    int hits[64];
    struct tally tl = {64, hits};
    for (int k = 0; k < BUSY_CALLS; k++) {
        memset(hits, 0, sizeof hits);
        em_qmm_parallel(tally_task, &tl, tl.n, 0);
        for (int i = 0; i < tl.n; i++) wrong_tasks += hits[i] != 1;
    }
    unsigned long long spun = 0;
    for (int i = 0; i < BUSY_SIDE; i++) spun += em_bench_busy_stop(busy[i]);
    if (bad || wrong_tasks) printf("\n%d calls differ, %d tasks not run once\n", bad, wrong_tasks);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(wrong_tasks, 0);
    CU_ASSERT_TRUE(spun > 0); /* the busy threads did run beside the calls */
}

struct conc {
    const struct mat *m;
    float *y;
    int rc;
};

static void *conc_run(void *arg)
{
    struct conc *c = arg;
    for (int k = 0; k < 20 && c->rc == EM_OK; k++) c->rc = run(c->m, -1, 0, c->y);
    return NULL;
}

static void concurrent_callers_get_right_answers(void)
{
    struct mat m;
    mat_make(&m, EM_WT_Q8_0, 600, 1024, 2, 0);
    float *want = malloc(sizeof(float) * 2 * 600);
    CU_ASSERT_EQUAL_FATAL(run(&m, -1, 1, want), EM_OK);
    struct conc c[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        c[i] = (struct conc){&m, malloc(sizeof(float) * 2 * 600), EM_OK};
        pthread_create(&th[i], NULL, conc_run, &c[i]);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        CU_ASSERT_EQUAL(c[i].rc, EM_OK);
        CU_ASSERT_EQUAL(memcmp(c[i].y, want, sizeof(float) * 2 * 600), 0);
        free(c[i].y);
    }
    free(want);
    mat_free(&m);
}

static void bias_is_added(void)
{
    struct mat m;
    mat_make(&m, EM_WT_Q4_0, 5, 64, 2, 0);
    float y0[10], y1[10], bias[5] = {1, -2, 3.5f, 0, 100};
    CU_ASSERT_EQUAL(em_qmatmul(y0, m.x, 2, 64, 5, EM_WT_Q4_0, m.w, NULL), EM_OK);
    CU_ASSERT_EQUAL(em_qmatmul(y1, m.x, 2, 64, 5, EM_WT_Q4_0, m.w, bias), EM_OK);
    for (int j = 0; j < 2; j++)
        for (int r = 0; r < 5; r++) CU_ASSERT_EQUAL(y1[j * 5 + r], y0[j * 5 + r] + bias[r]);
    mat_free(&m);
}

static void bad_arguments_are_rejected(void)
{
    uint8_t w[34 * 4] = {0};
    float x[64] = {0}, y[4] = {5, 5, 5, 5};
    CU_ASSERT_EQUAL(em_qmatmul(y, x, 1, 48, 2, EM_WT_Q8_0, w, NULL), EM_E_ARG);
    CU_ASSERT_EQUAL(em_qmatmul(y, x, 1, 33, 2, EM_WT_Q4_0, w, NULL), EM_E_ARG);
    CU_ASSERT_EQUAL(em_qmatmul(y, x, -1, 32, 2, EM_WT_Q8_0, w, NULL), EM_E_ARG);
    CU_ASSERT_EQUAL(em_qmatmul(y, x, 1, 0, 2, EM_WT_F32, w, NULL), EM_E_ARG);
    CU_ASSERT_EQUAL(em_qmatmul(y, x, 1, 32, -3, EM_WT_F32, w, NULL), EM_E_ARG);
    CU_ASSERT_EQUAL(em_qmatmul(y, x, 1, 32, 2, EM_WT_Q8_0, NULL, NULL), EM_E_ARG);
    CU_ASSERT_EQUAL(em_qmatmul(NULL, x, 1, 32, 2, EM_WT_Q8_0, w, NULL), EM_E_ARG);
    CU_ASSERT_EQUAL(em_qmatmul(y, x, 1, 32, 2, 17, w, NULL), EM_E_UNSUPPORTED);
    CU_ASSERT_EQUAL(em_qmatmul(y, x, 1, 32, 2, -1, w, NULL), EM_E_UNSUPPORTED);
    const struct em_qmm_opts o = {.level = EM_CPU_AVX512 + 1, .threads = 1};
    CU_ASSERT_EQUAL(em_qmatmul_ex(&o, y, x, 1, 32, 2, EM_WT_Q8_0, w, NULL), EM_E_UNSUPPORTED);
    CU_ASSERT_EQUAL(em_qmatmul(y, x, 0, 32, 2, EM_WT_Q8_0, w, NULL), EM_OK);
    CU_ASSERT_EQUAL(em_qmatmul(y, x, 1, 32, 0, EM_WT_Q8_0, w, NULL), EM_OK);
    CU_ASSERT_EQUAL(y[0], 5.0f); /* nothing written */
}

static void cpu_level_is_consistent(void)
{
    CU_ASSERT_EQUAL(em_cpu_level_parse("generic"), EM_CPU_GENERIC);
    CU_ASSERT_EQUAL(em_cpu_level_parse("avx2"), EM_CPU_AVX2);
    CU_ASSERT_EQUAL(em_cpu_level_parse("avx512"), EM_CPU_AVX512);
    CU_ASSERT_EQUAL(em_cpu_level_parse("AVX9"), -1);
    CU_ASSERT_EQUAL(em_cpu_level_parse(NULL), -1);
    CU_ASSERT_TRUE(em_cpu_level() <= em_cpu_level_supported());
    CU_ASSERT_TRUE(!em_cpu_has_avx512bf16() || em_cpu_level_supported() == EM_CPU_AVX512);
    CU_ASSERT_STRING_EQUAL(em_cpu_level_name(EM_CPU_AVX2), "avx2");
    CU_ASSERT_STRING_EQUAL(em_cpu_level_name(9), "?");
    const char *env = getenv("EARMARK_CPU");
    const int cap = em_cpu_level_parse(env);
    if (cap >= 0) {
        CU_ASSERT_TRUE(em_cpu_level() <= cap);
    } else {
        CU_ASSERT_EQUAL(em_cpu_level(), em_cpu_level_supported());
    }
}

/* The bench's arithmetic peaks (peak.h): a positive, finite rate at the levels that have the
 * instruction, 0 below; more threads than the cap are clamped, not overrun. No timing
 * threshold: only that the loops ran and were counted. */
static void peaks_are_measured_where_supported(void)
{
    const int level = em_cpu_level();
    const double f1 = em_peak_fma_gflops(1, 0.02), v1 = em_peak_vnni_gops(1, 0.02);
    const double fbig = em_peak_fma_gflops(EM_PEAK_MAX_THREADS + 5, 0.01);
    printf("\nfma %.1f GFLOP/s, vnni %.1f GOPS (1 thread, 20 ms)\n", f1, v1);
    if (level >= EM_CPU_AVX2) {
        CU_ASSERT_TRUE(f1 > 0 && isfinite(f1));
        CU_ASSERT_TRUE(fbig > 0 && isfinite(fbig));
    } else {
        CU_ASSERT_EQUAL(f1, 0);
    }
    if (level >= EM_CPU_AVX512) {
        CU_ASSERT_TRUE(v1 > 0 && isfinite(v1));
    } else {
        CU_ASSERT_EQUAL(v1, 0);
    }
}

static CU_TestInfo tests[] = {
    {"cpu_level_is_consistent", cpu_level_is_consistent},
    {"peaks_are_measured_where_supported", peaks_are_measured_where_supported},
    {"generic_matches_exact_reference", generic_matches_exact_reference},
    {"activation_codes_identical_across_levels", activation_codes_identical_across_levels},
    {"avx512_rows_bit_identical_across_n", avx512_rows_bit_identical_across_n},
    {"simd_matches_generic_on_odd_shapes", simd_matches_generic_on_odd_shapes},
    {"avx512_without_bf16_widens_bf16_rows", avx512_without_bf16_widens_bf16_rows},
    {"pool_matches_single_thread", pool_matches_single_thread},
    {"avx512_q4_rows_bit_identical_across_splits", avx512_q4_rows_bit_identical_across_splits},
    {"pool_beside_busy_threads_matches_single_thread",
     pool_beside_busy_threads_matches_single_thread},
    {"concurrent_callers_get_right_answers", concurrent_callers_get_right_answers},
    {"bias_is_added", bias_is_added},
    {"bad_arguments_are_rejected", bad_arguments_are_rejected},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_qkernels = {"qkernels", NULL, NULL, NULL, NULL, tests};
