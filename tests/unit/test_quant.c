/* tests/unit/test_quant.c - model/quant: f16/bf16 conversions, GGUF q8_0/q4_0 byte layout,
 * reference quantizer error bounds against the closed form. */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model/kernels/quant.h"
#include "tests/helpers/rand.h"

/* f16 carries 11 significant bits: a q8_0 scale stored as f16 differs from amax / 127 by at
 * most 2^-11 relative, which each |q| <= 127 multiplies (closed form in q8_roundtrip). */
#define F16_REL 0x1.0p-11
#define ROUND_SLACK 1e-6 /* relative slack for the float ops of the bound itself */

static uint32_t rng_state = 12345u;
static float frand(void) { return em_test_xorshift_unit(&rng_state); } /* [-1, 1) */

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static void f16_known_values(void)
{
    CU_ASSERT_EQUAL(em_quant_f32_to_f16(1.0f), 0x3C00);
    CU_ASSERT_EQUAL(em_quant_f32_to_f16(-2.0f), 0xC000);
    CU_ASSERT_EQUAL(em_quant_f32_to_f16(65504.0f), 0x7BFF);
    CU_ASSERT_EQUAL(em_quant_f32_to_f16(65520.0f), 0x7C00); /* tie above max: to inf */
    CU_ASSERT_EQUAL(em_quant_f32_to_f16(65519.0f), 0x7BFF);
    CU_ASSERT_EQUAL(em_quant_f32_to_f16(INFINITY), 0x7C00);
    CU_ASSERT_EQUAL(em_quant_f32_to_f16(0x1.0p-24f), 0x0001); /* smallest subnormal */
    CU_ASSERT_EQUAL(em_quant_f32_to_f16(0x1.0p-25f), 0x0000); /* tie to even (0) */
    CU_ASSERT_EQUAL(em_quant_f32_to_f16(0x1.8p-25f), 0x0001);
    CU_ASSERT_EQUAL(em_quant_f32_to_f16(0x1.8p-24f), 0x0002); /* tie 1.5 ulp: to even 2 */
    CU_ASSERT_EQUAL(em_quant_f32_to_f16(-0.0f), 0x8000);
    CU_ASSERT_EQUAL(em_quant_f16_to_f32(0x3555), 0x1.554p-2f);
    CU_ASSERT_EQUAL(em_quant_f16_to_f32(0x0001), 0x1.0p-24f);
    CU_ASSERT_TRUE(isinf(em_quant_f16_to_f32(0xFC00)) && em_quant_f16_to_f32(0xFC00) < 0);
    CU_ASSERT_TRUE(isnan(em_quant_f16_to_f32(0x7E00)));
    uint16_t h = em_quant_f32_to_f16(NAN);
    CU_ASSERT_TRUE((h & 0x7C00) == 0x7C00 && (h & 0x03FF) != 0);
}

/* Every finite half converts to f32 and back unchanged; every midpoint between neighbours
 * rounds to the even one. */
static void f16_exhaustive_roundtrip_and_ties(void)
{
    unsigned bad = 0, bad_tie = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7C00) == 0x7C00) continue; /* inf / NaN */
        const float f = em_quant_f16_to_f32((uint16_t)h);
        if (em_quant_f32_to_f16(f) != h) bad++;
        if ((h & 0x7FFF) == 0x7BFF) continue;
        const float g = em_quant_f16_to_f32((uint16_t)(h + 1));
        const float mid = (float)(((double)f + (double)g) / 2); /* exact in f32 */
        const uint16_t want = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        if (em_quant_f32_to_f16(mid) != want) bad_tie++;
    }
    if (bad || bad_tie) printf("\nf16: %u round-trip and %u tie failures\n", bad, bad_tie);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(bad_tie, 0);
}

static void bf16_rounds_to_nearest_even(void)
{
    CU_ASSERT_EQUAL(em_quant_f32_to_bf16(1.0f), 0x3F80);
    CU_ASSERT_EQUAL(em_quant_f32_to_bf16(1.0f + 0x1.0p-8f), 0x3F80);     /* tie to even */
    CU_ASSERT_EQUAL(em_quant_f32_to_bf16(1.0f + 0x1.8p-7f), 0x3F82);     /* tie to even */
    CU_ASSERT_EQUAL(em_quant_f32_to_bf16(1.0f + 0x1.2p-8f), 0x3F81);     /* above tie */
    CU_ASSERT_EQUAL(em_quant_f32_to_bf16(-3.0f), 0xC040);
    CU_ASSERT_EQUAL(em_quant_f32_to_bf16(0x1.fffffep127f), 0x7F80);      /* overflow: inf */
    uint16_t n = em_quant_f32_to_bf16(NAN);
    CU_ASSERT_TRUE((n & 0x7F80) == 0x7F80 && (n & 0x7F) != 0);
    unsigned bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7F80) == 0x7F80) continue;
        if (em_quant_f32_to_bf16(em_quant_bf16_to_f32((uint16_t)h)) != h) bad++;
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(bits(em_quant_bf16_to_f32(0x3F80)), 0x3F800000u);
}

/* Hand-built block: x = 0, 1, ..., 30, -127 -> d = 1 (0x3C00), qs = x. */
static void q8_0_gguf_layout(void)
{
    float x[32];
    uint8_t want[34] = {0x00, 0x3C};
    for (int i = 0; i < 31; i++) {
        x[i] = (float)i;
        want[2 + i] = (uint8_t)i;
    }
    x[31] = -127.0f;
    want[33] = 0x81;
    uint8_t got[34];
    CU_ASSERT_EQUAL(em_quantize_row(EM_WT_Q8_0, x, got, 32), EM_OK);
    CU_ASSERT_EQUAL(memcmp(got, want, 34), 0);
    CU_ASSERT_EQUAL(em_wtype_row_size(EM_WT_Q8_0, 64), 68);
    float back[32];
    CU_ASSERT_EQUAL(em_dequantize_row(EM_WT_Q8_0, got, back, 32), EM_OK);
    CU_ASSERT_EQUAL(memcmp(back, x, sizeof x), 0);
}

/* Hand-built block: x[i] = i - 8 and x[16 + i] = 7 - i (i < 16): max magnitude is x[0] = -8,
 * so d = -8 / -8 = 1 (0x3C00), q = x + 8; byte i = q[i] | q[16 + i] << 4. */
static void q4_0_gguf_layout(void)
{
    float x[32];
    uint8_t want[18] = {0x00, 0x3C};
    for (int i = 0; i < 16; i++) {
        x[i] = (float)(i - 8);
        x[16 + i] = (float)(7 - i);
        want[2 + i] = (uint8_t)(i | ((15 - i) << 4));
    }
    uint8_t got[18];
    CU_ASSERT_EQUAL(em_quantize_row(EM_WT_Q4_0, x, got, 32), EM_OK);
    CU_ASSERT_EQUAL(memcmp(got, want, 18), 0);
    CU_ASSERT_EQUAL(got[2], 0xF0);
    CU_ASSERT_EQUAL(got[17], 0x0F);
    float back[32];
    CU_ASSERT_EQUAL(em_dequantize_row(EM_WT_Q4_0, got, back, 32), EM_OK);
    CU_ASSERT_EQUAL(memcmp(back, x, sizeof x), 0);
    /* a positive maximum gives a negative scale: x = 16 at element 5 -> d = -2 (0xC000) */
    float y[32] = {0};
    y[5] = 16.0f;
    CU_ASSERT_EQUAL(em_quantize_row(EM_WT_Q4_0, y, got, 32), EM_OK);
    CU_ASSERT_EQUAL(got[0], 0x00);
    CU_ASSERT_EQUAL(got[1], 0xC0);
    CU_ASSERT_EQUAL(got[2 + 5] & 15, 0); /* 16 / -2 + 8 = 0 */
    CU_ASSERT_EQUAL(got[2 + 4], 0x88);  /* zeros are q = 8 */
}

#define NB 64 /* blocks per random row */

static void fill_row(float *x, int nb)
{
    for (int b = 0; b < nb; b++) {
        /* scales from 1e-6 to 1e4, one all-zero block, one block with a single spike */
        const float s = b == 3 ? 0.0f : powf(10.0f, (float)(b % 11) - 6.0f);
        for (int i = 0; i < EM_QK; i++) x[b * EM_QK + i] = s * frand();
        if (b == 7) x[b * EM_QK + 9] = 50.0f * s + 1.0f;
    }
}

static void q8_0_roundtrip_within_half_step(void)
{
    float x[NB * EM_QK], y[NB * EM_QK];
    uint8_t q[NB * 34];
    fill_row(x, NB);
    CU_ASSERT_EQUAL(em_quantize_row(EM_WT_Q8_0, x, q, NB * EM_QK), EM_OK);
    CU_ASSERT_EQUAL(em_dequantize_row(EM_WT_Q8_0, q, y, NB * EM_QK), EM_OK);
    double worst = 0;
    int worst_i = -1, bad = 0;
    for (int b = 0; b < NB; b++) {
        double amax = 0;
        for (int i = 0; i < EM_QK; i++) amax = fmax(amax, fabs(x[b * EM_QK + i]));
        uint16_t dh;
        memcpy(&dh, q + b * 34, 2);
        const float df = (float)amax / 127.0f;
        const double d = df, d16 = em_quant_f16_to_f32(dh);
        /* the stored scale is the f16 (nearest even) of amax / 127; tiny blocks underflow */
        if (dh != em_quant_f32_to_f16(df)) bad++;
        if (d >= 0x1.0p-14 && fabs(d16 - d) > d * F16_REL) bad++;
        /* |x - q d16| <= |x - q d| + |q| |d - d16| <= d / 2 + 127 |d - d16| */
        const double bound = (0.5 * d + 127.0 * fabs(d - d16)) * (1 + ROUND_SLACK) + 1e-12 * amax;
        for (int i = 0; i < EM_QK; i++) {
            const double e = fabs((double)x[b * EM_QK + i] - y[b * EM_QK + i]);
            if (e > bound) bad++;
            if (d >= 0x1.0p-14 && e / d > worst) { /* normal f16 scales */
                worst = e / d;
                worst_i = b * EM_QK + i;
            }
        }
        if (amax == 0) CU_ASSERT_EQUAL(d16, 0.0);
    }
    printf("\nq8_0: max |err| / step = %.4f at %d (bound 0.5 + f16 scale error)\n", worst,
           worst_i);
    CU_ASSERT_EQUAL(bad, 0);
}

static void q4_0_matches_closed_form(void)
{
    float x[NB * EM_QK], y[NB * EM_QK];
    uint8_t q[NB * 18];
    fill_row(x, NB);
    CU_ASSERT_EQUAL(em_quantize_row(EM_WT_Q4_0, x, q, NB * EM_QK), EM_OK);
    CU_ASSERT_EQUAL(em_dequantize_row(EM_WT_Q4_0, q, y, NB * EM_QK), EM_OK);
    int bad_code = 0, bad_err = 0;
    double worst = 0;
    for (int b = 0; b < NB; b++) {
        const float *xb = x + b * EM_QK;
        float amax = 0, max = 0;
        for (int i = 0; i < EM_QK; i++)
            if (fabsf(xb[i]) > amax) {
                amax = fabsf(xb[i]);
                max = xb[i];
            }
        const float d = max / -8.0f, id = d != 0 ? 1.0f / d : 0.0f;
        uint16_t dh;
        memcpy(&dh, q + b * 18, 2);
        const double d16 = em_quant_f16_to_f32(dh);
        for (int i = 0; i < EM_QK; i++) {
            int want = (int)(xb[i] * id + 8.5f);
            if (want > 15) want = 15;
            const uint8_t byte = q[b * 18 + 2 + i % 16];
            const int got = i < 16 ? byte & 15 : byte >> 4;
            if (got != want) bad_code++;
            /* half a step, or a full step where the code clamped at 15 (x = -max) */
            const double step = fabs((double)d);
            const double lim = (want == 15 && xb[i] * id > 7.5f ? step : 0.5 * step) +
                               8.0 * fabs(d16 - d) + ROUND_SLACK * amax;
            const double e = fabs((double)xb[i] - y[b * EM_QK + i]);
            if (e > lim) bad_err++;
            if (step >= 0x1.0p-11 && e / step > worst) worst = e / step; /* normal f16 */
        }
    }
    printf("\nq4_0: max |err| / step = %.4f (normal scales; 1 where clamped at 15)\n", worst);
    CU_ASSERT_EQUAL(bad_code, 0);
    CU_ASSERT_EQUAL(bad_err, 0);
}

static void float_rows_roundtrip(void)
{
    float x[100], y[100];
    uint8_t buf[400];
    for (int i = 0; i < 100; i++) x[i] = 100.0f * frand();
    CU_ASSERT_EQUAL(em_quantize_row(EM_WT_BF16, x, buf, 100), EM_OK);
    CU_ASSERT_EQUAL(em_dequantize_row(EM_WT_BF16, buf, y, 100), EM_OK);
    int bad = 0;
    for (int i = 0; i < 100; i++)
        if (fabsf(x[i] - y[i]) > fabsf(x[i]) * 0x1.0p-8f) bad++;
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(em_quantize_row(EM_WT_F16, x, buf, 100), EM_OK);
    CU_ASSERT_EQUAL(em_dequantize_row(EM_WT_F16, buf, y, 100), EM_OK);
    for (int i = 0; i < 100; i++)
        if (fabsf(x[i] - y[i]) > fabsf(x[i]) * 0x1.0p-11f + 0x1.0p-25f) bad++;
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(em_quantize_row(EM_WT_F32, x, buf, 100), EM_OK);
    CU_ASSERT_EQUAL(em_dequantize_row(EM_WT_F32, buf, y, 100), EM_OK);
    CU_ASSERT_EQUAL(memcmp(x, y, sizeof x), 0);
}

static void bad_arguments_are_rejected(void)
{
    float x[64] = {0};
    uint8_t buf[256];
    CU_ASSERT_EQUAL(em_wtype_row_size(EM_WT_Q8_0, 33), 0);
    CU_ASSERT_EQUAL(em_wtype_row_size(EM_WT_Q4_0, 48), 0);
    CU_ASSERT_EQUAL(em_wtype_row_size(EM_WT_Q4_0, 64), 36);
    CU_ASSERT_EQUAL(em_wtype_row_size(EM_WT_BF16, 3), 6);
    CU_ASSERT_EQUAL(em_wtype_row_size(EM_WT_F32, -1), 0);
    CU_ASSERT_EQUAL(em_wtype_row_size(99, 32), 0);
    CU_ASSERT_EQUAL(em_quantize_row(EM_WT_Q8_0, x, buf, 33), EM_E_ARG);
    CU_ASSERT_EQUAL(em_quantize_row(EM_WT_Q4_0, x, buf, -32), EM_E_ARG);
    CU_ASSERT_EQUAL(em_quantize_row(-1, x, buf, 32), EM_E_ARG);
    CU_ASSERT_EQUAL(em_dequantize_row(EM_WT_COUNT, buf, x, 32), EM_E_ARG);
    CU_ASSERT_EQUAL(em_dequantize_row(EM_WT_Q4_0, buf, x, 31), EM_E_ARG);
    CU_ASSERT_STRING_EQUAL(em_wtype_name(EM_WT_Q4_0), "Q4_0");
    CU_ASSERT_STRING_EQUAL(em_wtype_name(EM_WT_BF16), "BF16");
    CU_ASSERT_STRING_EQUAL(em_wtype_name(42), "?");
}

static CU_TestInfo tests[] = {
    {"f16_known_values", f16_known_values},
    {"f16_exhaustive_roundtrip_and_ties", f16_exhaustive_roundtrip_and_ties},
    {"bf16_rounds_to_nearest_even", bf16_rounds_to_nearest_even},
    {"q8_0_gguf_layout", q8_0_gguf_layout},
    {"q4_0_gguf_layout", q4_0_gguf_layout},
    {"q8_0_roundtrip_within_half_step", q8_0_roundtrip_within_half_step},
    {"q4_0_matches_closed_form", q4_0_matches_closed_form},
    {"float_rows_roundtrip", float_rows_roundtrip},
    {"bad_arguments_are_rejected", bad_arguments_are_rejected},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_quant = {"quant", NULL, NULL, NULL, NULL, tests};
