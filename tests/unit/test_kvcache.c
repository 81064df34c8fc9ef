/* tests/unit/test_kvcache.c - the KV cache's element types (model/gen/kvcache.h) and the f16 row
 * helpers of the decode attention (model/kernels/cpu/vecmath.h):
 *   - f16 rows round to nearest even, saturate beyond +-65504 (infinities too) and keep NaN,
 *     bit for bit as em_quant_f32_to_f16 of the clamped value; f32 rows are exact copies;
 *   - em_kv_widen gives back the stored halves exactly;
 *   - an overlay has its base's type and reads its rows; a prefix copy refuses another type;
 *   - the F16C store / load / dot / axpy rows against the plain C ones on odd sizes and
 *     unaligned pointers, and a row's result alone equal to the same row in a call of 4.
 * The decoder over f16 caches (logits against f32 caches, batched steps) is in
 * test_decoder.c. */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/kernels/cpu/cpufeat.h"
#include "model/kernels/cpu/vecmath.h"
#include "model/gen/kvcache.h"
#include "model/kernels/quant.h"
#include "tests/helpers/rand.h"

static float frand(uint64_t *s) { return em_test_lcg64_unit(s); } /* [-1, 1) */

static void types_and_arguments(void)
{
    CU_ASSERT_STRING_EQUAL(em_kv_type_name(EM_KV_F32), "f32");
    CU_ASSERT_STRING_EQUAL(em_kv_type_name(EM_KV_F16), "f16");
    CU_ASSERT_PTR_NULL(em_kv_type_name(7));
    CU_ASSERT_EQUAL(em_kv_type_parse("f16"), EM_KV_F16);
    CU_ASSERT_EQUAL(em_kv_type_parse("f32"), EM_KV_F32);
    CU_ASSERT_EQUAL(em_kv_type_parse("bf16"), -1);
    CU_ASSERT_EQUAL(em_kv_type_parse(NULL), -1);
    struct em_kv *kv = NULL;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL(em_kv_new(NULL, 2, 8, 4, (enum em_kv_type)5, &kv, &eb), EM_E_ARG);
    CU_ASSERT_PTR_NULL(kv);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "type 5"));
    /* the byte limit counts 2-byte elements for f16: twice the positions of f32 fit */
    const int dim = 1 << 20, cap = (int)(EM_KV_MAX_BYTES / 2 / 4 / dim);
    CU_ASSERT_EQUAL(em_kv_new(NULL, 1, dim, cap + 1, EM_KV_F32, &kv, NULL), EM_E_TOO_LONG);
    CU_ASSERT_EQUAL(em_kv_new(NULL, 1, dim, 2 * cap + 1, EM_KV_F16, &kv, NULL), EM_E_TOO_LONG);
    CU_ASSERT_EQUAL_FATAL(em_kv_new(NULL, 3, 5, 2, EM_KV_F16, &kv, NULL), EM_OK);
    CU_ASSERT_EQUAL(em_kv_type(kv), EM_KV_F16);
    CU_ASSERT_EQUAL(em_kv_elem_bytes(kv), 2);
    CU_ASSERT_EQUAL((const char *)em_kv_k(kv, 0, 1) - (const char *)em_kv_k(kv, 0, 0), 10);
    em_kv_free(kv);
}

/* One row of n values with the edge cases first, the rest random over +-70000. */
static void fill_row(float *x, int n, uint64_t *s)
{
    static const float edge[] = {0.0f, -0.0f, 1.0f, 1.0f + 0x1p-11f, 1.0f + 0x1p-10f + 0x1p-11f,
                                 65504.0f, 65519.0f, 1e6f, -1e6f, INFINITY, -INFINITY, NAN,
                                 0x1p-24f, 0x1p-25f, 3e-8f, -65520.0f};
    for (int i = 0; i < n; i++)
        x[i] = i < (int)(sizeof edge / sizeof *edge) ? edge[i] : 70000.0f * frand(s);
}

static void f16_rows_round_and_saturate(void)
{
    const int L = 2, D = 37, P = 3; /* an odd row: vector body and scalar tail */
    struct em_kv *kv, *kf, *ov, *cp;
    CU_ASSERT_EQUAL_FATAL(em_kv_new(NULL, L, D, P, EM_KV_F16, &kv, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_kv_new(NULL, L, D, P, EM_KV_F32, &kf, NULL), EM_OK);
    float k[37], v[37], w[37];
    uint64_t s = 99;
    int bad = 0;
    for (int l = 0; l < L; l++)
        for (int p = 0; p < P; p++) {
            fill_row(k, D, &s);
            for (int i = 0; i < D; i++) v[i] = 0.5f * frand(&s) + (float)p;
            em_kv_store(kv, l, p, k, v);
            em_kv_store(kf, l, p, k, v);
            const uint16_t *hk = em_kv_k(kv, l, p), *hv = em_kv_v(kv, l, p);
            for (int i = 0; i < D; i++) {
                const uint16_t want = em_quant_f32_to_f16(em_f16_clamp(k[i]));
                if (isnan(k[i])) bad += (hk[i] & 0x7c00) != 0x7c00 || !(hk[i] & 0x3ff);
                else bad += hk[i] != want;
                bad += hv[i] != em_quant_f32_to_f16(v[i]);
            }
            bad += memcmp(em_kv_k(kf, l, p), k, sizeof k) != 0; /* NaN bits copied too */
            bad += memcmp(em_kv_v(kf, l, p), v, sizeof v) != 0;
            em_kv_widen(EM_KV_F16, hv, w, (size_t)D);
            for (int i = 0; i < D; i++) bad += w[i] != em_quant_f16_to_f32(hv[i]);
            if (l == 0 && p == 0) { /* the edge values, spelled out */
                CU_ASSERT_EQUAL(hk[3], 0x3c00);  /* 1 + 2^-11: a tie, to even (1.0) */
                CU_ASSERT_EQUAL(hk[4], 0x3c02);  /* 1 + 3 * 2^-11: a tie, to even */
                CU_ASSERT_EQUAL(hk[5], 0x7bff);  /* 65504 */
                CU_ASSERT_EQUAL(hk[6], 0x7bff);  /* 65519 rounds to 65504 */
                CU_ASSERT_EQUAL(hk[7], 0x7bff);  /* 1e6 saturates */
                CU_ASSERT_EQUAL(hk[8], 0xfbff);  /* -1e6 */
                CU_ASSERT_EQUAL(hk[9], 0x7bff);  /* +inf saturates too */
                CU_ASSERT_EQUAL(hk[10], 0xfbff); /* -inf */
                CU_ASSERT_EQUAL(hk[12], 0x0001); /* 2^-24: the smallest subnormal */
                CU_ASSERT_EQUAL(hk[13], 0x0000); /* 2^-25: a tie, to even (zero) */
            }
        }
    CU_ASSERT_EQUAL(bad, 0);
    em_kv_advance(kv, P);
    /* an overlay is of its base's type and reads the base's rows in place */
    CU_ASSERT_EQUAL_FATAL(em_kv_new_over(kv, 2, 4, &ov, NULL), EM_OK);
    CU_ASSERT_EQUAL(em_kv_type(ov), EM_KV_F16);
    CU_ASSERT_PTR_EQUAL(em_kv_k(ov, 1, 1), em_kv_k(kv, 1, 1));
    for (int i = 0; i < D; i++) k[i] = v[i] = (float)i;
    em_kv_store(ov, 1, 2, k, v);
    CU_ASSERT_EQUAL(((const uint16_t *)em_kv_v(ov, 1, 2))[3], em_quant_f32_to_f16(3.0f));
    /* a prefix copy needs the same type */
    CU_ASSERT_EQUAL_FATAL(em_kv_new(NULL, L, D, P, EM_KV_F16, &cp, NULL), EM_OK);
    CU_ASSERT_EQUAL(em_kv_copy_prefix(kf, kv, 2), EM_E_ARG);
    CU_ASSERT_EQUAL(em_kv_copy_prefix(cp, kv, 2), EM_OK);
    CU_ASSERT_EQUAL(memcmp(em_kv_k(cp, 1, 1), em_kv_k(kv, 1, 1), 2 * (size_t)D), 0);
    em_kv_free(cp);
    em_kv_free(ov);
    em_kv_free(kv);
    em_kv_free(kf);
}

/* The F16C rows against C: store / load bit for bit; dots and axpys to float rounding, and a
 * row alone equal to the same row among four. */
static void f16_helpers_simd_match_c(void)
{
#if EM_VM_X86
    if (em_cpu_level() < EM_CPU_AVX2) return;
    static const int hds[] = {1, 7, 8, 9, 17, 64, 130};
    uint64_t s = 7;
    int bad = 0;
    for (size_t hi = 0; hi < sizeof hds / sizeof *hds; hi++) {
        const int hd = hds[hi], ld = hd + 3;
        float *xb = malloc(sizeof(float) * (4 * ld + 1)), *yb = malloc(sizeof(float) * (4 * ld));
        uint16_t *hb = malloc(sizeof(uint16_t) * (4 * ld + 1)), *hc = malloc(sizeof(uint16_t) * 4 * ld);
        float *q = malloc(sizeof(float) * hd), *o = malloc(sizeof(float) * hd);
        float *oc = malloc(sizeof(float) * hd), *o1 = malloc(sizeof(float) * hd);
        CU_ASSERT_FATAL(xb && yb && hb && hc && q && o && oc && o1);
        float *x = xb + 1;
        uint16_t *h = hb + 1; /* 2 bytes off alignment */
        fill_row(x, 4 * ld, &s);
        em_f16_store8(h, x, (size_t)(4 * ld));
        for (int i = 0; i < 4 * ld; i++) {
            hc[i] = em_quant_f32_to_f16(em_f16_clamp(x[i]));
            bad += isnan(x[i]) ? (h[i] & 0x7fff) <= 0x7c00 : h[i] != hc[i];
        }
        em_f16_load8(yb, h, (size_t)(4 * ld));
        for (int i = 0; i < 4 * ld; i++) {
            const float want = em_quant_f16_to_f32(h[i]);
            bad += isnan(want) ? !isnan(yb[i]) : memcmp(&yb[i], &want, sizeof want) != 0;
        }
        for (int i = 0; i < 4 * ld; i++) h[i] = em_quant_f32_to_f16(2.0f * frand(&s)); /* finite */
        for (int c = 0; c < hd; c++) q[c] = frand(&s);
        const float p[4] = {0.4f, -0.25f, 0.125f, 0.9f};
        for (int rows = 1; rows <= 4; rows++) {
            float sc[4], sv[4], s1;
            em_dots_t(q, h, (size_t)ld, rows, hd, 0.5f, sc, 1);
            em_dots8_h(q, h, (size_t)ld, rows, hd, 0.5f, sv);
            for (int c = 0; c < hd; c++) oc[c] = o[c] = o1[c] = 0.5f * frand(&s);
            em_axpys_t(oc, p, h, (size_t)ld, rows, hd, 1);
            em_axpys8_h(o, p, h, (size_t)ld, rows, hd);
            for (int i = 0; i < rows; i++) {
                double mag = 0;
                for (int c = 0; c < hd; c++)
                    mag += fabs((double)q[c] * em_quant_f16_to_f32(h[(size_t)i * ld + c]));
                em_dots8_h(q, h + (size_t)i * ld, (size_t)ld, 1, hd, 0.5f, &s1);
                bad += memcmp(&s1, &sv[i], sizeof s1) != 0;
                bad += fabs((double)sv[i] - sc[i]) > 1e-6 * mag + 1e-30;
                em_axpys8_h(o1, p + i, h + (size_t)i * ld, (size_t)ld, 1, hd);
            }
            bad += memcmp(o1, o, sizeof(float) * hd) != 0;
            for (int c = 0; c < hd; c++) bad += fabs((double)o[c] - oc[c]) > 1e-6;
        }
        free(xb), free(yb), free(hb), free(hc), free(q), free(o), free(oc), free(o1);
    }
    CU_ASSERT_EQUAL(bad, 0);
#endif
}

static CU_TestInfo tests[] = {
    {"types_and_arguments", types_and_arguments},
    {"f16_rows_round_and_saturate", f16_rows_round_and_saturate},
    {"f16_helpers_simd_match_c", f16_helpers_simd_match_c},
    CU_TEST_INFO_NULL,
};

const CU_SuiteInfo suite_kvcache = {"kvcache", NULL, NULL, NULL, NULL, tests};
