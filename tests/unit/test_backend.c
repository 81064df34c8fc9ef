/* tests/unit/test_backend.c - the backend conformance suite: every slot of the backend table
 * (model/kernels/backend.h) and the whole model on each backend present, against plain C
 * references computed here in double (primitives) and the HF golden records of the tiny
 * checkpoints (tests/golden: encoder + projector rows, decoder logits, greedy tokens).
 *
 * One body, two suites: backend_cpu (always) and backend_cuda. In a build without CUDA, or on
 * a machine without a usable device, backend_cuda's init marks its tests inactive and says
 * why, so CUnit lists each of them as inactive by name (never a silent pass); tests/gpu/run.sh
 * runs it on a GPU. The decoder's KV cache lives in the backend's memory
 * (model/gen/kvcache.h), so the whole-model test runs on every backend present.
 *
 * Tolerances (relative to the largest |reference|): F32 slots and F32 weights PRIM_TOL;
 * 16-bit and block weights QW_TOL (a GPU rounds activations to BF16 for the tensor cores, the
 * CPU quantizes them to int8 per block for Q8_0 / Q4_0); model logits LOGIT_TOL for the f32
 * checkpoint and every CPU run, BF16_LOGIT_TOL for the bf16 checkpoint on a GPU (docs/
 * accuracy.md); greedy tokens equal by tie class (test_decoder.c explains the classes). */
#include <CUnit/CUnit.h>
#include <CUnit/TestDB.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/audio/encoder.h"
#include "model/audio/mel.h"
#include "model/gen/generate.h"
#include "model/kernels/backend.h"
#include "model/kernels/backend_cuda.h"
#include "model/qwen2audio/decoder.h"
#include "model/qwen2audio/projector.h"
#include "model/tools/bench_device.h"
#include "tests/golden/golden.h"
#include "tests/helpers/rand.h"
#include "tests/helpers/staged.h"

#define PRIM_TOL 1e-4
#define QW_TOL 2e-2
#define LOGIT_TOL 1e-3
#define BF16_LOGIT_TOL 2e-2
#define ENC_TOL 1e-3
#define BF16_ENC_TOL 2e-2
#define GREEDY_TOKENS 8

/* ---- per-suite state ------------------------------------------------------------------- */

struct bstate {
    const struct em_backend *be;
    char why[256]; /* why the suite does not run, when be is NULL */
};
static struct bstate st_cpu, st_cuda, st_staged;

/* ---- helpers --------------------------------------------------------------------------- */

/* Prints the worst error and returns it relative to max |want| (or 1 where a value is NaN). */
static double rel_err(const char *what, const float *got, const double *want, size_t n)
{
    double m = 0, worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(want[i]));
    for (size_t i = 0; i < n; i++) {
        const double e = isnan(got[i]) != isnan(want[i]) ? INFINITY : fabs(got[i] - want[i]);
        if (!(e <= worst)) worst = e, at = i;
    }
    const double r = worst / (m > 0 ? m : 1);
    printf("\n    %-28s n=%-7zu max err %.3g at [%zu] (rel %.3g)", what, n, worst, at, r);
    return r;
}

static float *dev_put(const struct em_backend *B, const float *h, size_t n)
{
    float *d = em_be_upload_floats(B, h, n);
    CU_ASSERT_PTR_NOT_NULL(d);
    return d;
}

static void dev_get(const struct em_backend *B, float *h, const float *d, size_t n)
{
    CU_ASSERT_EQUAL(B->ops->download(B->ctx, h, d, n * sizeof *h), EM_OK);
    CU_ASSERT_EQUAL(B->ops->sync(B->ctx), EM_OK);
}

static void dev_free(const struct em_backend *B, void *d)
{
    if (d) B->ops->free(B->ctx, d);
}

static void fill(float *x, size_t n, uint64_t *s, float scale)
{
    for (size_t i = 0; i < n; i++) x[i] = scale * em_test_lcg64_unit(s);
}

/* ---- matmul ------------------------------------------------------------------------------ */

static void matmul_case(const struct em_backend *B, int dtype, int n, int in, int out,
                        float xscale)
{
    uint64_t s = 0x9e3779b97f4a7c15ull ^ (uint64_t)(dtype * 131 + n * 7 + out);
    float *wf = malloc((size_t)in * out * sizeof *wf), *x = malloc((size_t)n * in * sizeof *x);
    float *bias = malloc((size_t)out * sizeof *bias), *y = malloc((size_t)n * out * sizeof *y);
    double *ref = malloc((size_t)n * out * sizeof *ref);
    fill(wf, (size_t)in * out, &s, 0.5f);
    fill(x, (size_t)n * in, &s, xscale);
    fill(bias, (size_t)out, &s, 0.1f);
    size_t nb = em_dtype_nbytes(dtype, (int64_t)in * out);
    void *wraw = malloc(nb);
    CU_ASSERT_EQUAL_FATAL(em_quantize_row(dtype, wf, wraw, (int64_t)in * out), EM_OK);
    struct em_tensor wh = {.name = "w", .dtype = dtype, .ndim = 2, .shape = {out, in},
                           .data = wraw, .nbytes = nb};
    struct em_tensor bh = {.name = "b", .dtype = EM_DT_F32, .ndim = 1, .shape = {out},
                           .data = bias, .nbytes = (size_t)out * 4};
    /* reference: the stored (rounded) weights, double accumulation */
    float *wr = malloc((size_t)in * sizeof *wr);
    for (int o = 0; o < out; o++) {
        em_tensor_read_f32(&wh, (size_t)o * in, (size_t)in, wr);
        for (int r = 0; r < n; r++) {
            double a = bias[o];
            for (int k = 0; k < in; k++) a += (double)wr[k] * x[(size_t)r * in + k];
            ref[(size_t)r * out + o] = a;
        }
    }
    struct em_tensor wd, bd;
    CU_ASSERT_EQUAL_FATAL(B->ops->weight(B->ctx, &wh, &wd), EM_OK);
    CU_ASSERT_EQUAL_FATAL(B->ops->weight(B->ctx, &bh, &bd), EM_OK);
    float *dx = dev_put(B, x, (size_t)n * in), *dy = em_be_floats(B, (size_t)n * out);
    CU_ASSERT_EQUAL(B->ops->matmul(B->ctx, dy, dx, n, in, out, &wd, &bd), EM_OK);
    dev_get(B, y, dy, (size_t)n * out);
    char what[64];
    snprintf(what, sizeof what, "matmul %s n=%d %dx%d |x|<%g", em_dtype_name(dtype), n, out, in,
             (double)xscale);
    CU_ASSERT(rel_err(what, y, ref, (size_t)n * out) <= (dtype == EM_DT_F32 ? PRIM_TOL : QW_TOL));
    B->ops->weight_free(B->ctx, &wd);
    B->ops->weight_free(B->ctx, &bd);
    dev_free(B, dx);
    dev_free(B, dy);
    free(wf), free(x), free(bias), free(y), free(ref), free(wraw), free(wr);
}

static void matmul_all(const struct em_backend *B)
{
    static const int dt[] = {EM_DT_F32, EM_DT_F16, EM_DT_BF16, EM_DT_Q8_0, EM_DT_Q4_0};
    static const int ns[] = {1, 3, 9, 33, 64}; /* 64: a decode step of 64 sequences */
    for (size_t i = 0; i < sizeof dt / sizeof *dt; i++)
        for (size_t j = 0; j < sizeof ns / sizeof *ns; j++) matmul_case(B, dt[i], ns[j], 96, 37, 1.0f);
    /* activations beyond the f16 range (Qwen2's MLP has outliers in the thousands): F16 W
     * is computed against them as they are (a GPU must not round them to infinity) */
    matmul_case(B, EM_DT_F16, 3, 96, 37, 2e5f);
    matmul_case(B, EM_DT_F16, 33, 96, 37, 2e5f);
}

/* A Q4_0 W taller than one dequantized tile of the CUDA matmul (EM_CUDA_TILE_BYTES: the 7B
 * lm_head at more than 8 rows), n = 9: the rows on each side of every tile edge and the last
 * row against a double reference (random blocks, scales in [2^-7, 2^-6)). About 150 MB of
 * host and 450 MB of device memory. */
static void matmul_tile_edges(const struct em_backend *B)
{
    enum { IN = 4096, N = 9 };
    const int tile = (int)(EM_CUDA_TILE_BYTES / (IN * 2)), out = 2 * tile + 3;
    const size_t rb = em_wtype_row_size(EM_WT_Q4_0, IN), nb = rb * (size_t)out;
    uint8_t *w = malloc(nb);
    float x[N * IN];
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    uint64_t s = 0x5eed;
    for (size_t i = 0; i < nb; i += 8) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        memcpy(w + i, &s, nb - i < 8 ? nb - i : 8);
    }
    const size_t qb = sizeof(struct em_block_q4_0);
    for (size_t b = 0; b < nb / qb; b++) { /* every block's scale a finite half */
        const uint16_t d = em_quant_f32_to_f16((1.0f + 0.5f * (em_test_lcg64_unit(&s) + 1.0f)) / 128.0f);
        memcpy(w + b * qb, &d, sizeof d);
    }
    fill(x, N * IN, &s, 1.0f);
    const struct em_tensor wh = {.name = "w", .dtype = EM_DT_Q4_0, .ndim = 2, .shape = {out, IN},
                                 .data = w, .nbytes = nb};
    struct em_tensor wd;
    CU_ASSERT_EQUAL_FATAL(B->ops->weight(B->ctx, &wh, &wd), EM_OK);
    float *dx = dev_put(B, x, N * IN), *dy = em_be_floats(B, (size_t)N * out);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dy);
    CU_ASSERT_EQUAL(B->ops->matmul(B->ctx, dy, dx, N, IN, out, &wd, NULL), EM_OK);
    float *y = malloc((size_t)N * out * sizeof *y);
    dev_get(B, y, dy, (size_t)N * out);
    const int rows[] = {0, 1, tile - 1, tile, tile + 1, 2 * tile - 1, 2 * tile, out - 1};
    enum { R = sizeof rows / sizeof *rows };
    float got[N * R], wr[IN];
    double ref[N * R];
    for (int j = 0; j < R; j++) {
        em_tensor_read_f32(&wh, (size_t)rows[j] * IN, IN, wr);
        for (int r = 0; r < N; r++) {
            double a = 0;
            for (int k = 0; k < IN; k++) a += (double)wr[k] * x[r * IN + k];
            ref[r * R + j] = a;
            got[r * R + j] = y[(size_t)r * out + rows[j]];
        }
    }
    CU_ASSERT(rel_err("matmul Q4_0 tile edges n=9", got, ref, N * R) <= QW_TOL);
    B->ops->weight_free(B->ctx, &wd);
    dev_free(B, dx), dev_free(B, dy);
    free(y), free(w);
}

/* ---- norms and element-wise ------------------------------------------------------------- */

static void norms_eltwise(const struct em_backend *B)
{
    enum { N = 5, D = 67 };
    uint64_t s = 7;
    float x[N * D], a[N * D], w[D], b[D], y[N * D];
    double ref[N * D];
    fill(x, N * D, &s, 3.0f);
    fill(a, N * D, &s, 1.0f);
    fill(w, D, &s, 1.0f);
    fill(b, D, &s, 0.5f);
    float *dx = dev_put(B, x, N * D), *da = dev_put(B, a, N * D), *dw = dev_put(B, w, D);
    float *db = dev_put(B, b, D), *dy = em_be_floats(B, N * D);
    const float eps = 1e-6f;
    CU_ASSERT_EQUAL(B->ops->rmsnorm(B->ctx, dy, dx, dw, N, D, eps), EM_OK);
    dev_get(B, y, dy, N * D);
    for (int r = 0; r < N; r++) {
        double ss = 0;
        for (int i = 0; i < D; i++) ss += (double)x[r * D + i] * x[r * D + i];
        for (int i = 0; i < D; i++) ref[r * D + i] = w[i] * x[r * D + i] / sqrt(ss / D + eps);
    }
    CU_ASSERT(rel_err("rmsnorm", y, ref, N * D) <= PRIM_TOL);
    CU_ASSERT_EQUAL(B->ops->layernorm(B->ctx, dy, dx, dw, db, N, D, 1e-5f), EM_OK);
    dev_get(B, y, dy, N * D);
    for (int r = 0; r < N; r++) {
        double m = 0, v = 0;
        for (int i = 0; i < D; i++) m += x[r * D + i];
        m /= D;
        for (int i = 0; i < D; i++) v += (x[r * D + i] - m) * (x[r * D + i] - m);
        v /= D;
        for (int i = 0; i < D; i++) ref[r * D + i] = (x[r * D + i] - m) / sqrt(v + 1e-5) * w[i] + b[i];
    }
    CU_ASSERT(rel_err("layernorm", y, ref, N * D) <= PRIM_TOL);
    /* gelu in place on a copy of x */
    CU_ASSERT_EQUAL(B->ops->copy(B->ctx, dy, dx, sizeof x), EM_OK);
    CU_ASSERT_EQUAL(B->ops->gelu(B->ctx, dy, N * D), EM_OK);
    dev_get(B, y, dy, N * D);
    for (int i = 0; i < N * D; i++) ref[i] = 0.5 * x[i] * (1 + erf(x[i] / sqrt(2.0)));
    CU_ASSERT(rel_err("gelu", y, ref, N * D) <= PRIM_TOL);
    CU_ASSERT_EQUAL(B->ops->copy(B->ctx, dy, dx, sizeof x), EM_OK);
    CU_ASSERT_EQUAL(B->ops->silu_mul(B->ctx, dy, da, N * D), EM_OK);
    dev_get(B, y, dy, N * D);
    for (int i = 0; i < N * D; i++) ref[i] = x[i] / (1 + exp(-(double)x[i])) * a[i];
    CU_ASSERT(rel_err("silu_mul", y, ref, N * D) <= PRIM_TOL);
    CU_ASSERT_EQUAL(B->ops->copy(B->ctx, dy, dx, sizeof x), EM_OK);
    CU_ASSERT_EQUAL(B->ops->add(B->ctx, dy, da, N * D), EM_OK);
    dev_get(B, y, dy, N * D);
    for (int i = 0; i < N * D; i++) ref[i] = (double)x[i] + a[i];
    CU_ASSERT(rel_err("add", y, ref, N * D) <= PRIM_TOL);
    CU_ASSERT_EQUAL(B->ops->avgpool2(B->ctx, dy, dx, N / 2, D), EM_OK);
    dev_get(B, y, dy, (N / 2) * D);
    for (int j = 0; j < N / 2; j++)
        for (int i = 0; i < D; i++) ref[j * D + i] = (x[2 * j * D + i] + x[(2 * j + 1) * D + i]) / 2.0;
    CU_ASSERT(rel_err("avgpool2", y, ref, (N / 2) * D) <= PRIM_TOL);
    dev_free(B, dx), dev_free(B, da), dev_free(B, dw), dev_free(B, db), dev_free(B, dy);
}

static void im2col_embed_argmax(const struct em_backend *B)
{
    enum { CH = 5, FR = 11, D = 64, V = 9 };
    uint64_t s = 11;
    float src[FR * CH], dst[FR * CH * 3];
    double ref[FR * CH * 3];
    fill(src, FR * CH, &s, 1.0f);
    float *dsrc = dev_put(B, src, FR * CH), *ddst = em_be_floats(B, FR * CH * 3);
    for (int stride = 1; stride <= 2; stride++) {
        const int rows = stride == 1 ? FR : (FR + 1) / 2;
        /* channel-major source (the mel's layout): src(f, i) = src[i * FR + f] */
        const struct em_im2col_args a = {.dst = ddst, .src = dsrc, .rows = rows, .ch = CH,
                                         .stride = stride, .frames = FR, .fstride = 1,
                                         .cstride = FR};
        CU_ASSERT_EQUAL(B->ops->im2col3(B->ctx, &a), EM_OK);
        dev_get(B, dst, ddst, (size_t)rows * CH * 3);
        for (int t = 0; t < rows; t++)
            for (int i = 0; i < CH; i++)
                for (int k = 0; k < 3; k++) {
                    const int f = stride * t + k - 1;
                    ref[(t * CH + i) * 3 + k] = f >= 0 && f < FR ? src[i * FR + f] : 0.0;
                }
        CU_ASSERT(rel_err(stride == 1 ? "im2col3 s1" : "im2col3 s2", dst, ref,
                          (size_t)rows * CH * 3) == 0);
    }
    dev_free(B, dsrc), dev_free(B, ddst);
    /* embedding gather in every dtype */
    static const int dt[] = {EM_DT_F32, EM_DT_F16, EM_DT_BF16, EM_DT_Q8_0, EM_DT_Q4_0};
    const int32_t ids[4] = {3, 0, 8, 3};
    float tab[V * D], out[4 * D];
    double want[4 * D];
    fill(tab, V * D, &s, 1.0f);
    for (size_t j = 0; j < sizeof dt / sizeof *dt; j++) {
        size_t nb = em_dtype_nbytes(dt[j], V * D);
        void *raw = malloc(nb);
        CU_ASSERT_EQUAL_FATAL(em_quantize_row(dt[j], tab, raw, V * D), EM_OK);
        struct em_tensor th = {.name = "embed", .dtype = dt[j], .ndim = 2, .shape = {V, D},
                               .data = raw, .nbytes = nb}, td;
        float row[D];
        for (int t = 0; t < 4; t++) {
            em_tensor_read_f32(&th, (size_t)ids[t] * D, D, row);
            for (int i = 0; i < D; i++) want[t * D + i] = row[i];
        }
        CU_ASSERT_EQUAL_FATAL(B->ops->weight(B->ctx, &th, &td), EM_OK);
        float *dout = em_be_floats(B, 4 * D);
        CU_ASSERT_EQUAL(B->ops->embed(B->ctx, dout, &td, ids, 4), EM_OK);
        dev_get(B, out, dout, 4 * D);
        char what[48];
        snprintf(what, sizeof what, "embed %s", em_dtype_name(dt[j]));
        CU_ASSERT(rel_err(what, out, want, 4 * D) == 0);
        dev_free(B, dout);
        B->ops->weight_free(B->ctx, &td);
        free(raw);
    }
    /* argmax: ties go to the first index, NaN never wins */
    const float lg[3 * 5] = {1, 5, 5, -2, 0, NAN, -1, -3, NAN, -1, -4, -4, -4, -4, -4};
    int32_t am[3] = {-1, -1, -1};
    float *dl = dev_put(B, lg, 15);
    CU_ASSERT_EQUAL(B->ops->argmax(B->ctx, dl, 3, 5, am), EM_OK);
    CU_ASSERT_EQUAL(am[0], 1);
    CU_ASSERT_EQUAL(am[1], 1);
    CU_ASSERT_EQUAL(am[2], 0);
    dev_free(B, dl);
}

/* ---- RoPE + cache rows, attention over paged rows -------------------------------------- */

enum { H = 6, KVH = 2, HD = 32, QD = H * HD, KD = KVH * HD };

/* Reference attention of one query row q over keys / values kr, vr (double). */
static void ref_attend(const float *q, float *const *kr, float *const *vr, int nvalid, int h,
                       double *o)
{
    const int g = h / (H / KVH);
    double *p = malloc((size_t)nvalid * sizeof *p), mx = -INFINITY, sum = 0;
    for (int j = 0; j < nvalid; j++) {
        double dot = 0;
        for (int c = 0; c < HD; c++) dot += (double)q[h * HD + c] * kr[j][g * HD + c];
        p[j] = dot / sqrt(HD);
        mx = fmax(mx, p[j]);
    }
    for (int j = 0; j < nvalid; j++) sum += (p[j] = exp(p[j] - mx));
    for (int c = 0; c < HD; c++) {
        double a = 0;
        for (int j = 0; j < nvalid; j++) a += p[j] * vr[j][g * HD + c];
        o[c] = a / sum;
    }
    free(p);
}

/* Paged rows: n rows of KD floats placed in a device pool in a shuffled page order (pages of
 * 3 rows), so no two consecutive positions need be adjacent. Returns device row pointers. */
static float *paged(const struct em_backend *B, float *const *host_rows, int n, const float **drow)
{
    const int pages = (n + 2) / 3;
    float *pool = em_be_floats(B, (size_t)pages * 3 * KD);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
    for (int p = 0; p < n; p++) {
        const int page = (p / 3 * 7) % pages; /* 7 is coprime with the page counts used */
        drow[p] = pool + ((size_t)page * 3 + p % 3) * KD;
        CU_ASSERT_EQUAL(B->ops->upload(B->ctx, (void *)drow[p], host_rows[p], KD * sizeof(float)), EM_OK);
    }
    return pool;
}

static void attention_prefill_and_decode(const struct em_backend *B)
{
    enum { P0 = 5, T = 4, NK = P0 + T, NB = 3 };
    uint64_t s = 23;
    float *krows[NK], *vrows[NK];
    for (int j = 0; j < NK; j++) {
        krows[j] = malloc(KD * sizeof(float));
        vrows[j] = malloc(KD * sizeof(float));
        fill(krows[j], KD, &s, 1.0f);
        fill(vrows[j], KD, &s, 1.0f);
    }
    float q[T * QD], o[T * QD];
    double ref[T * QD];
    fill(q, T * QD, &s, 1.0f);
    const float *dk[NK], *dv[NK];
    float *kp = paged(B, krows, NK, dk), *vp = paged(B, vrows, NK, dv);
    float *dq = dev_put(B, q, T * QD), *dout = em_be_floats(B, T * QD);
    /* causal: query i at position P0 + i */
    struct em_attn_args a = {.o = dout, .ldo = QD, .q = dq, .ldq = QD, .k = dk, .v = dv, .T = T,
                             .n = NK, .p0 = P0, .causal = true, .heads = H, .kv_heads = KVH,
                             .hd = HD, .scale = 1.0f / sqrtf(HD)};
    CU_ASSERT_EQUAL(B->ops->attn(B->ctx, &a), EM_OK);
    dev_get(B, o, dout, T * QD);
    for (int i = 0; i < T; i++)
        for (int h = 0; h < H; h++) ref_attend(q + i * QD, krows, vrows, P0 + i + 1, h, ref + i * QD + h * HD);
    CU_ASSERT(rel_err("attn causal paged GQA", o, ref, T * QD) <= PRIM_TOL);
    /* full: T queries over the first T keys */
    a.n = T, a.p0 = 0, a.causal = false;
    CU_ASSERT_EQUAL(B->ops->attn(B->ctx, &a), EM_OK);
    dev_get(B, o, dout, T * QD);
    for (int i = 0; i < T; i++)
        for (int h = 0; h < H; h++) ref_attend(q + i * QD, krows, vrows, T, h, ref + i * QD + h * HD);
    CU_ASSERT(rel_err("attn full", o, ref, T * QD) <= PRIM_TOL);
    /* decode: NB sequences sharing the first rows (a shared prefix), different lengths */
    const int n[NB] = {NK, 2, NK - 1};
    const void *const *kt[NB], *const *vt[NB];
    const float *qs[NB];
    float *os[NB];
    for (int b = 0; b < NB; b++) {
        kt[b] = (const void *const *)dk;
        vt[b] = (const void *const *)dv;
        qs[b] = dq + (size_t)b * QD;
        os[b] = dout + (size_t)b * QD;
    }
    const struct em_attn_decode_args da = {.B = NB, .o = os, .q = qs, .k = kt, .v = vt, .n = n,
                                           .f16 = 0, .heads = H, .kv_heads = KVH, .hd = HD,
                                           .scale = 1.0f / sqrtf(HD)};
    CU_ASSERT_EQUAL(B->ops->attn_decode(B->ctx, &da), EM_OK);
    dev_get(B, o, dout, NB * QD);
    for (int b = 0; b < NB; b++)
        for (int h = 0; h < H; h++) ref_attend(q + b * QD, krows, vrows, n[b], h, ref + b * QD + h * HD);
    CU_ASSERT(rel_err("attn_decode shared prefix", o, ref, NB * QD) <= PRIM_TOL);
    dev_free(B, kp), dev_free(B, vp), dev_free(B, dq), dev_free(B, dout);
    for (int j = 0; j < NK; j++) free(krows[j]), free(vrows[j]);
}

/* f32 and f16 cache rows, each row its own allocation (pages allocated separately), causal
 * prefill over them and a decode step of NDB sequences (more than one block of warps on a
 * GPU, the last partial) of different lengths, some sharing rows. f16 rows hold values
 * that are exact halves, so the reference sees what the backend reads. */
static void attention_f16_rows_wide_batch(const struct em_backend *B)
{
    enum { P0 = 6, T = 5, NK = P0 + T, NDB = 9 };
    uint64_t s = 41;
    float *krows[NK], *vrows[NK], q[NDB * QD], o[NDB * QD];
    double ref[NDB * QD];
    fill(q, NDB * QD, &s, 1.0f);
    for (int j = 0; j < NK; j++) {
        krows[j] = malloc(KD * sizeof(float));
        vrows[j] = malloc(KD * sizeof(float));
        fill(krows[j], KD, &s, 1.0f);
        fill(vrows[j], KD, &s, 1.0f);
    }
    float *dq = dev_put(B, q, NDB * QD), *dout = em_be_floats(B, NDB * QD);
    for (int f16 = 0; f16 < 2; f16++) {
        const size_t rb = KD * (f16 ? sizeof(uint16_t) : sizeof(float));
        void *dk[NK], *dv[NK];
        for (int j = 0; j < NK; j++) {
            uint16_t k16[KD], v16[KD];
            if (f16) /* the reference reads the rounded values */
                for (int i = 0; i < KD; i++) {
                    k16[i] = em_quant_f32_to_f16(krows[j][i]);
                    v16[i] = em_quant_f32_to_f16(vrows[j][i]);
                    krows[j][i] = em_quant_f16_to_f32(k16[i]);
                    vrows[j][i] = em_quant_f16_to_f32(v16[i]);
                }
            CU_ASSERT_EQUAL_FATAL(B->ops->alloc(B->ctx, rb, &dk[j]), EM_OK);
            CU_ASSERT_EQUAL_FATAL(B->ops->alloc(B->ctx, rb, &dv[j]), EM_OK);
            CU_ASSERT_EQUAL(B->ops->upload(B->ctx, dk[j], f16 ? (void *)k16 : (void *)krows[j], rb), EM_OK);
            CU_ASSERT_EQUAL(B->ops->upload(B->ctx, dv[j], f16 ? (void *)v16 : (void *)vrows[j], rb), EM_OK);
        }
        struct em_attn_args a = {.o = dout, .ldo = QD, .q = dq, .ldq = QD, .T = T, .n = NK,
                                 .p0 = P0, .causal = true, .heads = H, .kv_heads = KVH, .hd = HD,
                                 .scale = 1.0f / sqrtf(HD)};
        if (f16) {
            a.k16 = (const uint16_t *const *)dk;
            a.v16 = (const uint16_t *const *)dv;
        } else {
            a.k = (const float *const *)dk;
            a.v = (const float *const *)dv;
        }
        CU_ASSERT_EQUAL(B->ops->attn(B->ctx, &a), EM_OK);
        dev_get(B, o, dout, T * QD);
        for (int i = 0; i < T; i++)
            for (int h = 0; h < H; h++)
                ref_attend(q + i * QD, krows, vrows, P0 + i + 1, h, ref + i * QD + h * HD);
        CU_ASSERT(rel_err(f16 ? "attn causal f16 rows" : "attn causal f32 rows", o, ref,
                          T * QD) <= PRIM_TOL);
        /* decode: sequence b attends to its first n[b] rows; odd ones see the rows reversed
         * (their own row order over the same shared pages) */
        int n[NDB];
        const void *rk[NDB][NK], *rv[NDB][NK];
        const void *const *kt[NDB], *const *vt[NDB];
        const float *qs[NDB];
        float *os[NDB], *hk[NK], *hv[NK];
        for (int b = 0; b < NDB; b++) {
            n[b] = 1 + (b * 5) % NK;
            for (int j = 0; j < n[b]; j++) {
                const int src = b % 2 ? NK - 1 - j : j;
                rk[b][j] = dk[src];
                rv[b][j] = dv[src];
            }
            kt[b] = rk[b];
            vt[b] = rv[b];
            qs[b] = dq + (size_t)b * QD;
            os[b] = dout + (size_t)(NDB - 1 - b) * QD; /* outputs in another order */
        }
        const struct em_attn_decode_args da = {.B = NDB, .o = os, .q = qs, .k = kt, .v = vt,
                                               .n = n, .f16 = f16, .heads = H, .kv_heads = KVH,
                                               .hd = HD, .scale = 1.0f / sqrtf(HD)};
        CU_ASSERT_EQUAL(B->ops->attn_decode(B->ctx, &da), EM_OK);
        dev_get(B, o, dout, NDB * QD);
        for (int b = 0; b < NDB; b++) {
            for (int j = 0; j < n[b]; j++) {
                const int src = b % 2 ? NK - 1 - j : j;
                hk[j] = krows[src];
                hv[j] = vrows[src];
            }
            for (int h = 0; h < H; h++)
                ref_attend(q + b * QD, hk, hv, n[b], h, ref + (NDB - 1 - b) * QD + h * HD);
        }
        CU_ASSERT(rel_err(f16 ? "attn_decode B=9 f16 rows" : "attn_decode B=9 f32 rows", o, ref,
                          NDB * QD) <= PRIM_TOL);
        for (int j = 0; j < NK; j++) dev_free(B, dk[j]), dev_free(B, dv[j]);
    }
    dev_free(B, dq), dev_free(B, dout);
    for (int j = 0; j < NK; j++) free(krows[j]), free(vrows[j]);
}

static void rope_and_cache_rows(const struct em_backend *B)
{
    enum { T = 3 };
    uint64_t s = 31;
    float q[T * QD], k[T * KD], v[T * KD], cs[T * HD / 2], sn[T * HD / 2];
    fill(q, T * QD, &s, 1.0f);
    fill(k, T * KD, &s, 1.0f);
    fill(v, T * KD, &s, 70000.0f); /* some beyond the f16 range: saturated */
    for (int t = 0; t < T; t++)
        for (int i = 0; i < HD / 2; i++) {
            const float ang = (float)(t + 4) * powf(10000.0f, -2.0f * i / HD);
            cs[t * HD / 2 + i] = cosf(ang);
            sn[t * HD / 2 + i] = sinf(ang);
        }
    for (int f16 = 0; f16 < 2; f16++) {
        float *dq = dev_put(B, q, T * QD), *dk = dev_put(B, k, T * KD), *dv = dev_put(B, v, T * KD);
        float *dcs = dev_put(B, cs, T * HD / 2), *dsn = dev_put(B, sn, T * HD / 2);
        const size_t rb = KD * (f16 ? 2 : 4);
        char *pool = NULL;
        CU_ASSERT_EQUAL_FATAL(B->ops->alloc(B->ctx, 2 * T * rb, (void **)&pool), EM_OK);
        void *kr[T], *vr[T];
        for (int t = 0; t < T; t++) { /* rows in reverse order: a paged layout */
            kr[t] = pool + (size_t)(T - 1 - t) * rb;
            vr[t] = pool + (size_t)(2 * T - 1 - t) * rb;
        }
        const struct em_rope_kv_args a = {.q = dq, .k = dk, .v = dv, .T = T, .heads = H,
                                          .kv_heads = KVH, .hd = HD, .cs = dcs, .sn = dsn,
                                          .krow = kr, .vrow = vr, .f16 = f16};
        CU_ASSERT_EQUAL(B->ops->rope_kv(B->ctx, &a), EM_OK);
        float gq[T * QD];
        double rq[T * QD], rk[T * KD], rv[T * KD];
        dev_get(B, gq, dq, T * QD);
        for (int t = 0; t < T; t++) {
            for (int h = 0; h < H + KVH; h++) {
                const float *x = h < H ? q + t * QD + h * HD : k + t * KD + (h - H) * HD;
                double *r = h < H ? rq + t * QD + h * HD : rk + t * KD + (h - H) * HD;
                for (int i = 0; i < HD / 2; i++) {
                    const double c = cs[t * HD / 2 + i], sd = sn[t * HD / 2 + i];
                    r[i] = x[i] * c - x[i + HD / 2] * sd;
                    r[i + HD / 2] = x[i + HD / 2] * c + x[i] * sd;
                }
            }
            for (int i = 0; i < KD; i++) {
                double x = v[t * KD + i];
                if (f16) x = em_quant_f16_to_f32(em_quant_f32_to_f16(fmaxf(fminf((float)x, 65504.0f), -65504.0f)));
                rv[t * KD + i] = x;
            }
        }
        CU_ASSERT(rel_err("rope q", gq, rq, T * QD) <= PRIM_TOL);
        uint8_t row[KD * 4];
        float got_k[T * KD], got_v[T * KD];
        for (int t = 0; t < T; t++)
            for (int kv = 0; kv < 2; kv++) {
                CU_ASSERT_EQUAL(B->ops->download(B->ctx, row, kv ? vr[t] : kr[t], rb), EM_OK);
                CU_ASSERT_EQUAL(B->ops->sync(B->ctx), EM_OK);
                float *g = (kv ? got_v : got_k) + t * KD;
                for (int i = 0; i < KD; i++) {
                    uint16_t hbits;
                    memcpy(&hbits, row + 2 * i, 2);
                    if (f16) g[i] = em_quant_f16_to_f32(hbits);
                    else memcpy(&g[i], row + 4 * i, 4);
                }
            }
        const double ktol = f16 ? 1e-3 : PRIM_TOL; /* f16 rows: 2^-11 relative rounding */
        CU_ASSERT(rel_err(f16 ? "rope k -> f16 rows" : "rope k -> f32 rows", got_k, rk, T * KD) <= ktol);
        CU_ASSERT(rel_err(f16 ? "v -> f16 rows (saturated)" : "v -> f32 rows", got_v, rv, T * KD) == 0);
        dev_free(B, dq), dev_free(B, dk), dev_free(B, dv), dev_free(B, dcs), dev_free(B, dsn);
        dev_free(B, pool);
    }
}

/* ---- the whole model on the golden checkpoints ------------------------------------------ */

static const char *ck_names[2] = {"tiny-bf16", "tiny-f32"};
#define GOLDEN_DISTINCT_ROWS 4096 /* make_golden.py: rows repeat mod 4096 (test_decoder.c) */
static int tie_class(int32_t id)
{
    return id >= 151643 && id <= 151648 ? id : id % GOLDEN_DISTINCT_ROWS;
}

struct gold {
    char tmp_data[1024], tmp_ck[2][1024];
    struct golden g;
    struct em_ckpt *ck[2];
};
static struct gold G;
static int gold_users;

static int gold_open(void)
{
    if (gold_users++) return 0;
    struct em_errbuf eb = {{0}};
    if (golden_unpack("data", G.tmp_data, sizeof G.tmp_data) != 0 ||
        golden_open(&G.g, G.tmp_data) != 0)
        return 1;
    for (int i = 0; i < 2; i++) {
        char dir[1200];
        if (golden_unpack(ck_names[i], G.tmp_ck[i], sizeof G.tmp_ck[i]) != 0) return 1;
        snprintf(dir, sizeof dir, "%s/%s", G.tmp_ck[i], ck_names[i]);
        if (em_ckpt_open(dir, &G.ck[i], &eb) != EM_OK) {
            fprintf(stderr, "backend: %s\n", eb.msg);
            return 1;
        }
    }
    return 0;
}

static void gold_close(void)
{
    if (--gold_users) return;
    for (int i = 0; i < 2; i++) {
        em_ckpt_close(G.ck[i]);
        G.ck[i] = NULL;
        golden_rmdir(G.tmp_ck[i]);
    }
    golden_close(&G.g);
    golden_rmdir(G.tmp_data);
}

static double as_rel(const char *what, const float *got, const float *want, size_t n)
{
    double *w = malloc(n * sizeof *w);
    for (size_t i = 0; i < n; i++) w[i] = want[i];
    const double r = rel_err(what, got, w, n);
    free(w);
    return r;
}

/* mel -> encoder -> projector of the speech clip on B against the golden rows. */
static void encoder_projector(const struct em_backend *B)
{
    struct em_mel *mel = NULL;
    CU_ASSERT_EQUAL_FATAL(em_mel_new(&mel), EM_OK);
    float *pcm = NULL;
    size_t n = 0;
    CU_ASSERT_FATAL(golden_clip("speech", G.tmp_data, &pcm, &n) == 0);
    float *m = malloc(sizeof(float) * EM_MEL_BINS * EM_MEL_FRAMES);
    int L = 0;
    CU_ASSERT_EQUAL_FATAL(em_mel_compute(mel, pcm, n, m, &L), EM_OK);
    for (int c = 0; c < 2; c++) {
        struct em_encoder *enc = NULL;
        struct em_projector pj;
        struct em_errbuf eb = {{0}};
        CU_ASSERT_EQUAL_FATAL(em_encoder_new_be(G.ck[c], B, &enc, &eb), EM_OK);
        CU_ASSERT_EQUAL_FATAL(em_projector_init_be(G.ck[c], B, &pj, &eb), EM_OK);
        const int d = em_encoder_dim(enc);
        float *out = malloc(sizeof(float) * 750 * (size_t)d);
        float *emb = malloc(sizeof(float) * 750 * (size_t)pj.out);
        int N = 0;
        CU_ASSERT_EQUAL_FATAL(em_encoder_run(enc, m, L, out, &N, &eb), EM_OK);
        CU_ASSERT_EQUAL_FATAL(em_projector_run(&pj, out, N, emb), EM_OK);
        char k[256];
        int64_t sh[4];
        int nd;
        snprintf(k, sizeof k, "%s/speech/audio_embeds", ck_names[c]);
        float *want = golden_tensor(&G.g, k, sh, &nd);
        CU_ASSERT_PTR_NOT_NULL_FATAL(want);
        CU_ASSERT_EQUAL(sh[0], N);
        const double tol = c == 0 && !B->ops->unified ? BF16_ENC_TOL : ENC_TOL;
        char what[64];
        snprintf(what, sizeof what, "%s audio_embeds", ck_names[c]);
        CU_ASSERT(as_rel(what, emb, want, (size_t)N * pj.out) <= tol);
        free(want), free(out), free(emb);
        em_projector_free(&pj);
        em_encoder_free(enc);
    }
    free(m);
    free(pcm);
    em_mel_free(mel);
}

/* Prefill of the golden caption prompt on B: last logits against HF's, then GREEDY_TOKENS
 * greedy tokens (penalty 1) equal to HF's by tie class. */
static void decoder_logits_and_greedy(const struct em_backend *B)
{
    for (int c = 0; c < 2; c++) {
        struct em_dec *d = NULL;
        struct em_errbuf eb = {{0}};
        CU_ASSERT_EQUAL_FATAL(em_dec_open_be(G.ck[c], B, &d, &eb), EM_OK);
        char k[256];
        int64_t sh[4], sa[4], sl[4];
        int nd;
        snprintf(k, sizeof k, "%s/speech/caption/base/input_ids", ck_names[c]);
        int32_t *ids = golden_tensor(&G.g, k, sh, &nd);
        snprintf(k, sizeof k, "%s/speech/audio_embeds", ck_names[c]);
        float *audio = golden_tensor(&G.g, k, sa, &nd);
        snprintf(k, sizeof k, "%s/speech/caption/base/logits_last_lo", ck_names[c]);
        float *lo = golden_tensor(&G.g, k, sl, &nd);
        CU_ASSERT_FATAL(ids && audio && lo);
        const int T = (int)sh[0], V = em_dec_vocab(d);
        struct em_kv *kv = NULL;
        CU_ASSERT_EQUAL_FATAL(em_dec_kv_new(d, T, &kv, &eb), EM_OK);
        float *lg = malloc((size_t)V * sizeof *lg);
        CU_ASSERT_EQUAL_FATAL(em_dec_forward(d, kv, ids, T, audio, (int)sa[0], EM_DEC_LOGITS_LAST,
                                             lg, &eb), EM_OK);
        /* logits_last_lo: the last 3 positions x ids [0, 4096); ours is the last one */
        const double tol = c == 0 && !B->ops->unified ? BF16_LOGIT_TOL : LOGIT_TOL;
        char what[64];
        snprintf(what, sizeof what, "%s last logits [0, %lld)", ck_names[c], (long long)sl[1]);
        CU_ASSERT(as_rel(what, lg, lo + 2 * sl[1], (size_t)sl[1]) <= tol);
        struct em_gen_params p = em_gen_params_from(&em_ckpt_config(G.ck[c])->gen);
        p.sampler.do_sample = false;
        p.sampler.repetition_penalty = 1.0f;
        p.max_new_tokens = GREEDY_TOKENS;
        struct em_gen_result res = {0};
        CU_ASSERT_EQUAL_FATAL(em_generate(d, ids, (size_t)T, audio, (int)sa[0], &p, &res, &eb), EM_OK);
        snprintf(k, sizeof k, "%s/speech/caption/base/greedy_rp1", ck_names[c]);
        int32_t *want = golden_tensor(&G.g, k, sh, &nd);
        CU_ASSERT_PTR_NOT_NULL_FATAL(want);
        size_t same = 0;
        while (same < res.n && same < (size_t)sh[0] && tie_class(res.ids[same]) == tie_class(want[same]))
            same++;
        printf("\n    %s greedy: %zu of %zu tokens agree with HF", ck_names[c], same, res.n);
        CU_ASSERT(res.n >= 1);
        CU_ASSERT_EQUAL(same, res.n);
        free(want), free(res.ids), free(lg), free(ids), free(audio), free(lo);
        em_kv_free(kv);
        em_dec_free(d);
    }
}

/* ---- suites ----------------------------------------------------------------------------- */

/* Each body, then the CUDA backend's last failed call if there is one (a slot returns only
 * EM_E_INTERNAL; the file:line and the runtime's words are what a GPU run must report). */
static void report_device_error(const struct em_backend *B)
{
    const char *e = em_cuda_last_error(B);
    if (e && *e) printf("\n    last CUDA error: %s", e);
}
#define BODY(state, fn) \
    static void state##_##fn(void) { fn(state.be); report_device_error(state.be); }
BODY(st_cpu, matmul_all)
BODY(st_cpu, norms_eltwise)
BODY(st_cpu, im2col_embed_argmax)
BODY(st_cpu, rope_and_cache_rows)
BODY(st_cpu, attention_prefill_and_decode)
BODY(st_cpu, attention_f16_rows_wide_batch)
BODY(st_cpu, encoder_projector)
BODY(st_cpu, decoder_logits_and_greedy)
BODY(st_cuda, matmul_all)
BODY(st_cuda, matmul_tile_edges)
BODY(st_cuda, norms_eltwise)
BODY(st_cuda, im2col_embed_argmax)
BODY(st_cuda, rope_and_cache_rows)
BODY(st_cuda, attention_prefill_and_decode)
BODY(st_cuda, attention_f16_rows_wide_batch)
BODY(st_cuda, encoder_projector)
BODY(st_cuda, decoder_logits_and_greedy)
BODY(st_staged, matmul_all)
BODY(st_staged, norms_eltwise)
BODY(st_staged, im2col_embed_argmax)
BODY(st_staged, rope_and_cache_rows)
BODY(st_staged, attention_prefill_and_decode)
BODY(st_staged, attention_f16_rows_wide_batch)
BODY(st_staged, encoder_projector)
BODY(st_staged, decoder_logits_and_greedy)

/* The staged backend refuses a host buffer, a freed buffer and an overrun where device memory
 * belongs (so contract_held below can fail), then forgets those violations. */
static void staged_refuses_host_memory(void)
{
    const struct em_backend *B = th_staged_backend();
    float host[8] = {0}, *d = NULL, *e = NULL;
    CU_ASSERT_EQUAL_FATAL(B->ops->alloc(B->ctx, sizeof host, (void **)&d), EM_OK);
    CU_ASSERT_EQUAL_FATAL(B->ops->alloc(B->ctx, sizeof host, (void **)&e), EM_OK);
    CU_ASSERT_EQUAL(B->ops->gelu(B->ctx, d, 8), EM_OK);
    CU_ASSERT_EQUAL(B->ops->gelu(B->ctx, host, 8), EM_E_ARG);    /* host memory */
    CU_ASSERT_EQUAL(B->ops->gelu(B->ctx, d, 9), EM_E_ARG);       /* one past its end */
    CU_ASSERT_EQUAL(B->ops->add(B->ctx, d, host, 8), EM_E_ARG);
    CU_ASSERT_EQUAL(B->ops->upload(B->ctx, host, d, sizeof host), EM_E_ARG); /* swapped */
    B->ops->free(B->ctx, e);
    CU_ASSERT_EQUAL(B->ops->copy(B->ctx, d, e, sizeof host), EM_E_ARG); /* freed */
    B->ops->free(B->ctx, d);
    char first[256];
    CU_ASSERT_EQUAL(th_staged_violations(first, sizeof first), 5);
    CU_ASSERT_PTR_NOT_NULL(strstr(first, "gelu: x"));
    th_staged_reset();
}

/* After the staged suite's tests: no slot was handed host (or freed, or too short) memory
 * where device memory belongs, and every device allocation was freed. */
static void staged_contract_held(void)
{
    char first[256];
    const size_t v = th_staged_violations(first, sizeof first);
    size_t n = 0;
    const size_t live = th_staged_live_bytes(&n);
    printf("\n    violations %zu%s%s, live allocations %zu (%zu bytes)", v, v ? ", first: " : "",
           first, n, live);
    CU_ASSERT_EQUAL(v, 0);
    CU_ASSERT_EQUAL(n, 0);
}

static void unknown_device_names_are_errors(void)
{
    const struct em_backend *be = NULL;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL(em_backend_open("tpu", &be, &eb), EM_E_ARG);
    CU_ASSERT_PTR_NULL(be);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "expected cpu, cuda or cuda:N"));
    CU_ASSERT_EQUAL(em_backend_open("cuda:x", &be, &eb), EM_E_ARG);
    CU_ASSERT_EQUAL(em_backend_open("cuda:99999", &be, &eb), EM_E_ARG);
    CU_ASSERT_EQUAL(em_backend_open("cpu", &be, &eb), EM_OK);
    CU_ASSERT_PTR_EQUAL(be, em_backend_cpu());
    if (!em_backend_have_cuda()) { /* one line that says so */
        CU_ASSERT_EQUAL(em_backend_open("cuda", &be, &eb), EM_E_UNSUPPORTED);
        CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "this build has no CUDA backend"));
        CU_ASSERT_PTR_NULL(strchr(eb.msg, '\n'));
    }
}

/* The device bench's table (model/tools/bench_device.h) on the CPU at small shapes: every
 * step runs and the figures are printed. */
static void device_bench_runs(void)
{
    struct em_bench_shapes sh = {.enc_d = 64, .enc_heads = 4, .enc_ffn = 128, .enc_T = 30,
                                 .enc_layers = 2, .D = 64, .H = 4, .KVH = 2, .F = 96, .V = 100,
                                 .layers = 2, .prefill_T = 20, .batch = 3, .ctx = 10,
                                 .new_tokens = 5};
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL(em_bench_device("cpu", &sh, f, &eb), EM_OK);
    fclose(f);
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "prefill layer T=20"));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "decode step B=3 ctx=10"));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "clips/s"));
    free(buf);
}

static int init_cpu(void)
{
    st_cpu.be = em_backend_cpu();
    return gold_open();
}

static int clean_cpu(void)
{
    gold_close();
    return 0;
}

/* Marks every test of the running suite inactive, saying why once: CUnit then lists each by
 * name as inactive (not run, not passed). */
static void deactivate(const char *why)
{
    CU_pSuite su = CU_get_current_suite();
    printf("\n  %s: %s\n", su ? su->pName : "suite", why);
    for (CU_pTest t = su ? su->pTest : NULL; t; t = t->pNext) {
        CU_set_test_active(t, CU_FALSE);
        printf("  Test: %s ...skipped (inactive)\n", t->pName);
    }
}

static int init_cuda(void)
{
    struct em_errbuf eb = {{0}};
    const struct em_backend *be = NULL;
    const em_err rc = em_backend_open("cuda", &be, &eb);
    if (rc != EM_OK) {
        snprintf(st_cuda.why, sizeof st_cuda.why, "skipped, no CUDA device: %.200s", eb.msg);
        deactivate(st_cuda.why);
        return 0;
    }
    st_cuda.be = be;
    return gold_open();
}

static int clean_cuda(void)
{
    if (st_cuda.be) {
        report_device_error(st_cuda.be); /* also after a FATAL assertion cut a body short */
        printf("\n");
        gold_close();
        em_backend_close(st_cuda.be);
        st_cuda.be = NULL;
    }
    return 0;
}

static CU_TestInfo tests_cpu[] = {
    {"unknown_device_names_are_errors", unknown_device_names_are_errors},
    {"matmul_all", st_cpu_matmul_all},
    {"norms_eltwise", st_cpu_norms_eltwise},
    {"im2col_embed_argmax", st_cpu_im2col_embed_argmax},
    {"rope_and_cache_rows", st_cpu_rope_and_cache_rows},
    {"attention_prefill_and_decode", st_cpu_attention_prefill_and_decode},
    {"attention_f16_rows_wide_batch", st_cpu_attention_f16_rows_wide_batch},
    {"encoder_projector", st_cpu_encoder_projector},
    {"decoder_logits_and_greedy", st_cpu_decoder_logits_and_greedy},
    {"device_bench_runs", device_bench_runs},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_backend_cpu = {"backend_cpu", init_cpu, clean_cpu, NULL, NULL, tests_cpu};

static CU_TestInfo tests_cuda[] = {
    {"matmul_all", st_cuda_matmul_all},
    {"matmul_tile_edges", st_cuda_matmul_tile_edges},
    {"norms_eltwise", st_cuda_norms_eltwise},
    {"im2col_embed_argmax", st_cuda_im2col_embed_argmax},
    {"rope_and_cache_rows", st_cuda_rope_and_cache_rows},
    {"attention_prefill_and_decode", st_cuda_attention_prefill_and_decode},
    {"attention_f16_rows_wide_batch", st_cuda_attention_f16_rows_wide_batch},
    {"encoder_projector", st_cuda_encoder_projector},
    {"decoder_logits_and_greedy", st_cuda_decoder_logits_and_greedy},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_backend_cuda = {"backend_cuda", init_cuda, clean_cuda, NULL, NULL, tests_cuda};

static int init_staged(void)
{
    st_staged.be = th_staged_backend();
    th_staged_reset();
    return gold_open();
}

/* The CPU's kernels behind a table that is not unified and checks every device pointer
 * (tests/helpers/staged.h): the model code's device contract without a GPU. */
static CU_TestInfo tests_staged[] = {
    {"refuses_host_memory", staged_refuses_host_memory},
    {"matmul_all", st_staged_matmul_all},
    {"norms_eltwise", st_staged_norms_eltwise},
    {"im2col_embed_argmax", st_staged_im2col_embed_argmax},
    {"rope_and_cache_rows", st_staged_rope_and_cache_rows},
    {"attention_prefill_and_decode", st_staged_attention_prefill_and_decode},
    {"attention_f16_rows_wide_batch", st_staged_attention_f16_rows_wide_batch},
    {"encoder_projector", st_staged_encoder_projector},
    {"decoder_logits_and_greedy", st_staged_decoder_logits_and_greedy},
    {"contract_held", staged_contract_held},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_backend_staged = {"backend_staged", init_staged, clean_cpu, NULL, NULL,
                                           tests_staged};
