/* tests/unit/test_attn.c - em_attn_full (model/kernels/cpu/attn.h) against a double
 * reference on odd sizes: T not a multiple of the 48-row blocks or the 32-column tiles, head
 * widths below, at and above 64 (the tiny checkpoints' 18 and 20, the 7B encoder's 64), a
 * row stride wider than heads * hd (its extra columns must stay untouched). */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "model/kernels/cpu/attn.h"
#include "model/kernels/cpu/cpufeat.h"

static float frand(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(*s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* double-precision attention of one head into ref[T, hd] */
static void ref_head(const float *q, const float *k, const float *v, int T, int hd, int ld,
                     int h, float scale, double *ref)
{
    double *p = malloc((size_t)T * sizeof *p);
    for (int i = 0; i < T; i++) {
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < T; j++) {
            double s = 0;
            for (int c = 0; c < hd; c++)
                s += (double)q[(size_t)i * ld + h * hd + c] * k[(size_t)j * ld + h * hd + c];
            p[j] = s * scale;
            if (p[j] > mx) mx = p[j];
        }
        for (int j = 0; j < T; j++) sum += (p[j] = exp(p[j] - mx));
        for (int c = 0; c < hd; c++) {
            double acc = 0;
            for (int j = 0; j < T; j++) acc += p[j] * v[(size_t)j * ld + h * hd + c];
            ref[(size_t)i * hd + c] = acc / sum;
        }
    }
    free(p);
}

static void check_case(int T, int heads, int hd, int extra, float amp)
{
    const int ld = heads * hd + extra;
    const size_t n = (size_t)T * ld;
    float *q = malloc(n * sizeof *q), *k = malloc(n * sizeof *k), *v = malloc(n * sizeof *v);
    float *o = malloc(n * sizeof *o);
    double *ref = malloc((size_t)T * hd * sizeof *ref);
    CU_ASSERT_FATAL(q && k && v && o && ref);
    uint64_t s = (uint64_t)T * 131 + (uint64_t)hd * 7 + (uint64_t)heads;
    for (size_t i = 0; i < n; i++) {
        q[i] = amp * frand(&s);
        k[i] = amp * frand(&s);
        v[i] = frand(&s);
        o[i] = 12345.0f; /* sentinel */
    }
    const float scale = 1.0f / sqrtf((float)hd);
    em_err rc = em_attn_full(o, q, k, v, T, heads, hd, ld, scale);
    if (em_cpu_level() < EM_CPU_AVX512) {
        CU_ASSERT_EQUAL(rc, EM_E_UNSUPPORTED); /* the caller's own path runs instead */
    } else {
        CU_ASSERT_EQUAL_FATAL(rc, EM_OK);
        double worst = 0;
        for (int h = 0; h < heads; h++) {
            ref_head(q, k, v, T, hd, ld, h, scale, ref);
            for (int i = 0; i < T; i++)
                for (int c = 0; c < hd; c++) {
                    double e = fabs(o[(size_t)i * ld + h * hd + c] - ref[(size_t)i * hd + c]);
                    if (!(e <= worst)) worst = e; /* NaN sticks */
                }
        }
        CU_ASSERT(worst < 2e-5);
        if (!(worst < 2e-5))
            fprintf(stderr, "attn T=%d heads=%d hd=%d: max |err| %.3g\n", T, heads, hd, worst);
        int touched = 0;
        for (int i = 0; i < T; i++)
            for (int c = heads * hd; c < ld; c++) touched += o[(size_t)i * ld + c] != 12345.0f;
        CU_ASSERT_EQUAL(touched, 0);
    }
    free(q), free(k), free(v), free(o), free(ref);
}

static void attn_odd_sizes(void)
{
    static const int Ts[] = {1, 5, 33, 48, 49, 97, 301};
    static const int hds[] = {18, 20, 64, 80};
    for (size_t a = 0; a < sizeof Ts / sizeof *Ts; a++)
        for (size_t b = 0; b < sizeof hds / sizeof *hds; b++)
            check_case(Ts[a], 1 + (int)((a + b) % 3), hds[b], (int)(a % 2) * 3, 1.0f);
}

static void attn_peaked_scores(void)
{
    /* large scores: the softmax's max shift must keep exp finite (amp 6 over 64 dims gives
     * logits in the hundreds) */
    check_case(130, 2, 64, 0, 6.0f);
}

static void attn_bad_args(void)
{
    float x[64] = {0};
    CU_ASSERT_EQUAL(em_attn_full(x, x, x, x, 0, 1, 4, 4, 1.0f), EM_E_ARG);
    CU_ASSERT_EQUAL(em_attn_full(x, x, x, x, 2, 2, 4, 7, 1.0f), EM_E_ARG); /* ld < heads*hd */
    CU_ASSERT_EQUAL(em_attn_full(NULL, x, x, x, 2, 1, 4, 4, 1.0f), EM_E_ARG);
}

static CU_TestInfo tests[] = {
    {"odd sizes against double", attn_odd_sizes},
    {"peaked scores", attn_peaked_scores},
    {"bad arguments", attn_bad_args},
    CU_TEST_INFO_NULL,
};

const CU_SuiteInfo suite_attn = {"attn", NULL, NULL, NULL, NULL, tests};
