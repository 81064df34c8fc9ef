/* tests/unit/test_matmul.c - em_matmul's dispatch (model/kernels/backend.h): every weight
 * dtype (F32, F16, BF16, Q8_0, Q4_0) at n = 1..9 and 17 (the em_qmatmul path up to
 * EM_MM_QMM_MAX_N, OpenBLAS above), odd out, odd in where the dtype allows it, unaligned
 * weight data and a bf16 bias, against em_matmul_ref; plus em_tensor_read_f32 on quantized
 * tensors at unaligned offsets, and the argument errors. */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/kernels/backend.h"
#include "model/kernels/cpu/cpufeat.h"
#include "model/loader/tensor.h"
#include "model/kernels/quant.h"
#include "tests/helpers/rand.h"

/* relative to max |want|: f32 accumulation order differs */
#define TOL_FLOAT 1e-4
/* quantized W on the small-n path: x is quantized to int8 per 32-block there (step at most
 * max|x_block| / 127 per element), which the reference does not do */
#define TOL_QX 2e-2
/* the same against a reference fed x already rounded through q8_0: only the scale's f16
 * rounding (2^-11) and the order remain */
#define TOL_QX_SAME 3e-3

static uint32_t rng = 12345u;
static float frand(void) { return em_test_lcg_unit(&rng); } /* [-1, 1) */

static double rel_err(const float *got, const float *want, size_t n)
{
    return em_test_rel_err(got, want, n); /* tests/helpers/rand.h */
}

/* A weight [out, in] of dtype from random f32 values, stored one byte off alignment.
 * Returns the allocation (free it), fills *w. */
static uint8_t *make_weight(int dtype, int out, int in, struct em_tensor *w)
{
    const size_t rs = em_wtype_row_size(dtype, in);
    uint8_t *mem = malloc(rs * (size_t)out + 1);
    float *row = malloc((size_t)in * sizeof *row);
    uint8_t *p = mem + 1;
    for (int r = 0; r < out; r++) {
        for (int i = 0; i < in; i++) row[i] = frand();
        CU_ASSERT_EQUAL(em_quantize_row(dtype, row, p + (size_t)r * rs, in), EM_OK);
    }
    free(row);
    *w = (struct em_tensor){.name = "w", .dtype = dtype, .ndim = 2, .shape = {out, in},
                            .data = p, .nbytes = rs * (size_t)out};
    return mem;
}

static void check_case(int dtype, int n, int in, int out)
{
    struct em_tensor w, b;
    uint8_t *mem = make_weight(dtype, out, in, &w);
    uint16_t *bias = malloc((size_t)out * sizeof *bias);
    for (int j = 0; j < out; j++) bias[j] = em_f32_to_bf16(frand());
    b = (struct em_tensor){.name = "b", .dtype = EM_DT_BF16, .ndim = 1, .shape = {out},
                           .data = bias, .nbytes = (size_t)out * 2};
    float *x = malloc((size_t)n * in * sizeof *x), *xq = malloc((size_t)n * in * sizeof *xq);
    float *y = malloc((size_t)n * out * sizeof *y), *r = malloc((size_t)n * out * sizeof *r);
    for (int i = 0; i < n * in; i++) x[i] = frand() * 2.0f;
    for (int i = 0; i < n * out; i++) y[i] = NAN; /* every element must be written */

    CU_ASSERT_EQUAL_FATAL(em_matmul(y, x, n, in, out, &w, &b), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_matmul_ref(r, x, n, in, out, &w, &b), EM_OK);
    const int quant = dtype == EM_DT_Q8_0 || dtype == EM_DT_Q4_0;
    /* x is quantized to int8 on the small-n path, and at n > 8 where the int8 GEMM runs
     * (model/kernels/cpu/igemm.h: quantized W at the AVX512 level) */
    const int small = n <= EM_MM_QMM_MAX_N || em_cpu_level() >= EM_CPU_AVX512;
    double e = rel_err(y, r, (size_t)n * out), tol = quant && small ? TOL_QX : TOL_FLOAT;
    if (!(e <= tol))
        printf("\n    %s n=%d [%d x %d]: rel err %.3g > %.1g", em_dtype_name(dtype), n, out, in,
               e, tol);
    CU_ASSERT(e <= tol);
    if (quant && small) {
        /* feed the reference x rounded through q8_0 blocks: the kernel must then agree
         * closely, i.e. its only approximation is the activation quantization */
        uint8_t *qb = malloc(em_wtype_row_size(EM_WT_Q8_0, in));
        for (int i = 0; i < n; i++) {
            CU_ASSERT_EQUAL(em_quantize_row(EM_WT_Q8_0, x + (size_t)i * in, qb, in), EM_OK);
            CU_ASSERT_EQUAL(em_dequantize_row(EM_WT_Q8_0, qb, xq + (size_t)i * in, in), EM_OK);
        }
        free(qb);
        CU_ASSERT_EQUAL(em_matmul_ref(r, xq, n, in, out, &w, &b), EM_OK);
        e = rel_err(y, r, (size_t)n * out);
        if (!(e <= TOL_QX_SAME))
            printf("\n    %s n=%d [%d x %d] vs q8_0-rounded x: rel err %.3g", em_dtype_name(dtype),
                   n, out, in, e);
        CU_ASSERT(e <= TOL_QX_SAME);
    }
    free(x);
    free(xq);
    free(y);
    free(r);
    free(bias);
    free(mem);
}

static void every_dtype_and_n_matches_reference(void)
{
    static const int dts[] = {EM_DT_F32, EM_DT_F16, EM_DT_BF16, EM_DT_Q8_0, EM_DT_Q4_0};
    static const int ns[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 17};
    for (size_t d = 0; d < sizeof dts / sizeof *dts; d++) {
        const int quant = dts[d] == EM_DT_Q8_0 || dts[d] == EM_DT_Q4_0;
        /* odd in where the dtype allows it; block types need whole 32-blocks */
        const int in = quant ? 160 : 67, out = 37;
        for (size_t k = 0; k < sizeof ns / sizeof *ns; k++) check_case(dts[d], ns[k], in, out);
    }
}

/* Big enough that the qmatmul pool splits the rows (over EM_QMM_MIN_PAR_BYTES) and the sgemm
 * path runs more than one widened tile. */
static void large_weights_match_reference(void)
{
    check_case(EM_DT_Q4_0, 3, 2048, 1031);
    check_case(EM_DT_Q8_0, 8, 1024, 517);
    check_case(EM_DT_BF16, 1, 1000, 301);
    check_case(EM_DT_Q8_0, 9, 2080, 1025); /* 8.5 MB widened: two tiles */
}

static void read_f32_dequantizes_at_any_offset(void)
{
    static const int dts[] = {EM_DT_Q8_0, EM_DT_Q4_0};
    const int in = 96, out = 3, numel = in * out;
    for (size_t d = 0; d < 2; d++) {
        struct em_tensor w;
        uint8_t *mem = make_weight(dts[d], out, in, &w);
        CU_ASSERT_EQUAL(w.nbytes, em_dtype_nbytes(dts[d], numel));
        CU_ASSERT_EQUAL(em_dtype_size(dts[d]), 0);
        float all[288], part[288];
        CU_ASSERT_EQUAL(em_dequantize_row(dts[d], w.data, all, numel), EM_OK);
        static const int offs[][2] = {{0, 288}, {5, 3}, {31, 2}, {30, 70}, {64, 64}, {287, 1},
                                      {33, 200}, {0, 1}};
        for (size_t k = 0; k < sizeof offs / sizeof *offs; k++) {
            const int off = offs[k][0], n = offs[k][1];
            memset(part, 0xff, sizeof part);
            em_tensor_read_f32(&w, (size_t)off, (size_t)n, part);
            CU_ASSERT_EQUAL(memcmp(part, all + off, (size_t)n * sizeof *part), 0);
            if (n < numel) { /* nothing past n written */
                uint32_t guard;
                memcpy(&guard, part + n, 4);
                CU_ASSERT_EQUAL(guard, 0xffffffffu);
            }
        }
        CU_ASSERT_STRING_EQUAL(em_dtype_name(dts[d]), dts[d] == EM_DT_Q8_0 ? "Q8_0" : "Q4_0");
        free(mem);
    }
}

static void bad_arguments_are_errors(void)
{
    struct em_tensor w;
    uint8_t *mem = make_weight(EM_DT_F32, 4, 40, &w);
    float x[8 * 40] = {0}, y[8 * 4];
    /* a block type needs in % 32 == 0 */
    struct em_tensor q = w;
    q.dtype = EM_DT_Q8_0;
    CU_ASSERT_EQUAL(em_matmul(y, x, 1, 40, 4, &q, NULL), EM_E_ARG);
    CU_ASSERT_EQUAL(em_matmul(y, x, 9, 40, 4, &q, NULL), EM_E_ARG);
    q.dtype = 17;
    CU_ASSERT_EQUAL(em_matmul(y, x, 1, 40, 4, &q, NULL), EM_E_UNSUPPORTED);
    CU_ASSERT_EQUAL(em_matmul_ref(y, x, 1, 40, 4, &q, NULL), EM_E_UNSUPPORTED);
    CU_ASSERT_EQUAL(em_matmul(y, x, 1, 41, 4, &w, NULL), EM_E_ARG);  /* shape mismatch */
    CU_ASSERT_EQUAL(em_matmul(y, x, -1, 40, 4, &w, NULL), EM_E_ARG);
    float bv[3] = {0};
    struct em_tensor b = {.name = "b", .dtype = EM_DT_F32, .ndim = 1, .shape = {3}, .data = bv,
                          .nbytes = sizeof bv};
    CU_ASSERT_EQUAL(em_matmul(y, x, 1, 40, 4, &w, &b), EM_E_ARG); /* bias length */
    CU_ASSERT_EQUAL(em_matmul(y, x, 0, 40, 4, &w, NULL), EM_OK);
    free(mem);
}

static CU_TestInfo tests[] = {
    {"every_dtype_and_n_matches_reference", every_dtype_and_n_matches_reference},
    {"large_weights_match_reference", large_weights_match_reference},
    {"read_f32_dequantizes_at_any_offset", read_f32_dequantizes_at_any_offset},
    {"bad_arguments_are_errors", bad_arguments_are_errors},
    CU_TEST_INFO_NULL,
};

const CU_SuiteInfo suite_matmul = {"matmul", NULL, NULL, NULL, NULL, tests};
