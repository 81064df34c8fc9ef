/* tests/unit/test_attn.c - em_attn / em_attn_full (model/kernels/cpu/attn.h) against a
 * double reference on odd sizes: T not a multiple of the 48-row blocks or the 32-column
 * tiles, head widths below, at and above 64 (the tiny checkpoints' 18 and 20, the 7B
 * encoder's 64, the decoder's 128), a row stride wider than heads * hd (its extra columns
 * must stay untouched); causal with a cache offset, grouped kv heads and key rows split
 * over two buffers (an overlay on a shared prefix); f16 key / value rows (an f16 KV cache)
 * against the same rows widened, bit for bit. */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/kernels/cpu/attn.h"
#include "model/kernels/cpu/cpufeat.h"
#include "model/kernels/cpu/vecmath.h"
#include "model/kernels/quant.h"
#include "tests/helpers/rand.h"

static float frand(uint64_t *s) { return em_test_lcg64_unit(s); } /* [-1, 1) */

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

/* causal: T queries at positions p0.., n = p0 + T keys in two buffers (rows < split in the
 * first), heads / kvh query heads per kv head */
static void check_causal(int T, int p0, int heads, int kvh, int hd, int split)
{
    const int n = p0 + T, qd = heads * hd, kd = kvh * hd, ldo = qd + 5;
    float *q = malloc((size_t)T * qd * sizeof *q), *o = malloc((size_t)T * ldo * sizeof *o);
    float *kb = malloc((size_t)n * kd * 2 * sizeof *kb); /* [0, split) then the rest */
    float *vb = malloc((size_t)n * kd * 2 * sizeof *vb);
    const float **kr = malloc((size_t)n * sizeof *kr), **vr = malloc((size_t)n * sizeof *vr);
    CU_ASSERT_FATAL(q && o && kb && vb && kr && vr);
    uint64_t s = (uint64_t)T * 977 + (uint64_t)p0 * 31 + (uint64_t)hd;
    for (size_t i = 0; i < (size_t)T * qd; i++) q[i] = frand(&s);
    for (size_t i = 0; i < (size_t)T * ldo; i++) o[i] = 12345.0f;
    for (int j = 0; j < n; j++) { /* second buffer starts a gap after the first */
        const size_t row = (size_t)(j < split ? j : n + j) * kd;
        kr[j] = kb + row;
        vr[j] = vb + row;
        for (int c = 0; c < kd; c++) {
            kb[row + c] = frand(&s);
            vb[row + c] = frand(&s);
        }
    }
    const float scale = 1.0f / sqrtf((float)hd);
    const struct em_attn_args a = {.o = o, .ldo = ldo, .q = q, .ldq = qd, .k = kr, .v = vr,
                                   .T = T, .n = n, .p0 = p0, .causal = true, .heads = heads,
                                   .kv_heads = kvh, .hd = hd, .scale = scale};
    em_err rc = em_attn(&a);
    if (em_cpu_level() < EM_CPU_AVX512) {
        CU_ASSERT_EQUAL(rc, EM_E_UNSUPPORTED);
    } else {
        CU_ASSERT_EQUAL_FATAL(rc, EM_OK);
        double worst = 0, *p = malloc((size_t)n * sizeof *p);
        int touched = 0;
        for (int h = 0; h < heads; h++) {
            const int g = h / (heads / kvh);
            for (int i = 0; i < T; i++) {
                const int valid = p0 + i + 1;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < valid; j++) {
                    double d = 0;
                    for (int c = 0; c < hd; c++)
                        d += (double)q[(size_t)i * qd + h * hd + c] * kr[j][g * hd + c];
                    p[j] = d * scale;
                    if (p[j] > mx) mx = p[j];
                }
                for (int j = 0; j < valid; j++) sum += (p[j] = exp(p[j] - mx));
                for (int c = 0; c < hd; c++) {
                    double acc = 0;
                    for (int j = 0; j < valid; j++) acc += p[j] * vr[j][g * hd + c];
                    double e = fabs(o[(size_t)i * ldo + h * hd + c] - acc / sum);
                    if (!(e <= worst)) worst = e;
                }
            }
        }
        for (int i = 0; i < T; i++)
            for (int c = qd; c < ldo; c++) touched += o[(size_t)i * ldo + c] != 12345.0f;
        CU_ASSERT(worst < 2e-5);
        if (!(worst < 2e-5))
            fprintf(stderr, "attn causal T=%d p0=%d heads=%d/%d hd=%d: max |err| %.3g\n", T, p0,
                    heads, kvh, hd, worst);
        CU_ASSERT_EQUAL(touched, 0);
        free(p);
    }
    free(q), free(o), free(kb), free(vb), free(kr), free(vr);
}

static void attn_causal_cache(void)
{
    check_causal(1, 0, 2, 1, 18, 0);      /* one token, nothing before it */
    check_causal(7, 0, 4, 2, 20, 3);      /* the first rows see fewer keys than a tile */
    check_causal(48, 0, 3, 3, 64, 48);
    check_causal(50, 5, 4, 1, 64, 5);     /* a prompt tail over a 5-row prefix */
    check_causal(130, 77, 2, 2, 128, 77); /* the decoder's head width, blocks of 48 */
    check_causal(33, 300, 4, 4, 80, 150); /* keys split inside the prefix */
}

/* f16 rows (k16 / v16: an f16 KV cache) give the bits of the same rows widened to f32 */
static void check_f16(int T, int p0, int heads, int kvh, int hd)
{
    const int n = p0 + T, qd = heads * hd, kd = kvh * hd;
    float *q = malloc((size_t)T * qd * sizeof *q), *w = malloc(2 * (size_t)n * kd * sizeof *w);
    uint16_t *h = malloc(2 * (size_t)n * kd * sizeof *h);
    float *o1 = malloc((size_t)T * qd * sizeof *o1), *o2 = malloc((size_t)T * qd * sizeof *o2);
    const float **fr = malloc(2 * (size_t)n * sizeof *fr);
    const uint16_t **hr = malloc(2 * (size_t)n * sizeof *hr);
    CU_ASSERT_FATAL(q && w && h && o1 && o2 && fr && hr);
    uint64_t s = (uint64_t)T * 131 + (uint64_t)hd;
    for (size_t i = 0; i < (size_t)T * qd; i++) q[i] = frand(&s);
    for (size_t i = 0; i < 2 * (size_t)n * kd; i++) {
        h[i] = em_quant_f32_to_f16(3.0f * frand(&s));
        w[i] = em_quant_f16_to_f32(h[i]);
    }
    for (int j = 0; j < 2 * n; j++) {
        fr[j] = w + (size_t)j * kd;
        hr[j] = h + (size_t)j * kd;
    }
    struct em_attn_args a = {.o = o1, .ldo = qd, .q = q, .ldq = qd, .k = fr, .v = fr + n,
                             .T = T, .n = n, .p0 = p0, .causal = true, .heads = heads,
                             .kv_heads = kvh, .hd = hd, .scale = 1.0f / sqrtf((float)hd)};
    const em_err r1 = em_attn(&a);
    a.o = o2;
    a.k16 = hr;
    a.v16 = hr + n;
    CU_ASSERT_EQUAL(em_attn(&a), EM_E_ARG); /* both pairs */
    a.k = NULL;
    CU_ASSERT_EQUAL(em_attn(&a), EM_E_ARG); /* v of one pair with both of the other */
    a.v = NULL;
    const em_err r2 = em_attn(&a);
    CU_ASSERT_EQUAL(r1, r2);
    if (r1 == EM_OK && r2 == EM_OK)
        CU_ASSERT_EQUAL(memcmp(o1, o2, (size_t)T * qd * sizeof *o1), 0);
    free(q), free(w), free(h), free(o1), free(o2), free(fr), free(hr);
}

static void attn_f16_rows_equal_widened(void)
{
    check_f16(1, 0, 2, 1, 18);
    check_f16(50, 5, 4, 1, 64);
    check_f16(33, 100, 4, 4, 128);
}

/* The 16-lane softmax pass against the 8-lane one (vecmath.h): the same bits for every
 * length (16-blocks, an 8-block, a scalar tail), with -inf (masked) and very negative
 * scores among them. */
static void attn_exp_row_matches_8_lanes(void)
{
    if (em_cpu_level() < EM_CPU_AVX512) return;
    uint64_t s = 5;
    int bad = 0;
    for (int n = 1; n <= 75; n++) {
        float a[75], b[75];
        for (int j = 0; j < n; j++) a[j] = b[j] = 20.0f * frand(&s);
        if (n > 5) a[3] = b[3] = -INFINITY;
        if (n > 9) a[9] = b[9] = -200.0f;
        const float sa = em_attn_exp_shift_row_avx512(a, n), sb = em_exp_shift_row8(b, n);
        bad += memcmp(&sa, &sb, sizeof sa) != 0 || memcmp(a, b, (size_t)n * sizeof *a) != 0;
    }
    CU_ASSERT_EQUAL(bad, 0);
}

static void attn_bad_causal(void)
{
    float x[64] = {0};
    const float *r[4] = {x, x, x, x};
    struct em_attn_args a = {.o = x, .ldo = 8, .q = x, .ldq = 8, .k = r, .v = r, .T = 2, .n = 3,
                             .p0 = 1, .causal = true, .heads = 2, .kv_heads = 2, .hd = 4,
                             .scale = 1.0f};
    a.n = 4; /* n != p0 + T */
    CU_ASSERT_EQUAL(em_attn(&a), EM_E_ARG);
    a.n = 3;
    a.kv_heads = 3; /* heads not a multiple */
    CU_ASSERT_EQUAL(em_attn(&a), EM_E_ARG);
    a.kv_heads = 2;
    a.causal = false; /* full needs n == T */
    CU_ASSERT_EQUAL(em_attn(&a), EM_E_ARG);
}

static CU_TestInfo tests[] = {
    {"causal over a split cache", attn_causal_cache},
    {"f16 rows equal their widened f32", attn_f16_rows_equal_widened},
    {"16-lane softmax pass equals the 8-lane one", attn_exp_row_matches_8_lanes},
    {"bad causal arguments", attn_bad_causal},
    {"odd sizes against double", attn_odd_sizes},
    {"peaked scores", attn_peaked_scores},
    {"bad arguments", attn_bad_args},
    CU_TEST_INFO_NULL,
};

const CU_SuiteInfo suite_attn = {"attn", NULL, NULL, NULL, NULL, tests};
