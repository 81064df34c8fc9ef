/* model/tools/bench_device.c - the device bench (bench_device.h): each measured step is a
 * sequence of backend-table calls at the model's shapes (the layer order of
 * model/audio/encoder.c and model/qwen2audio/decoder.c), timed from the host with a sync
 * after each repetition. */
#include "model/tools/bench_device.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "model/kernels/backend.h"
#include "model/kernels/backend_cuda.h"

struct em_bench_shapes em_bench_shapes_7b(void)
{
    return (struct em_bench_shapes){
        .enc_d = 1280, .enc_heads = 20, .enc_ffn = 5120, .enc_T = 1500, .enc_layers = 32,
        .D = 4096, .H = 32, .KVH = 32, .F = 11008, .V = 156032, .layers = 32,
        .prefill_T = 800, .batch = 64, .ctx = 900, .new_tokens = 100,
    };
}

/* Device memory of one run, freed together. */
struct pool {
    const struct em_backend *be;
    void *p[64];
    int n;
    struct em_tensor w[16];
    void *host[16]; /* the weights' host data: a backend's weight may be a view of it (CPU) */
    int nw;
    em_err rc;
};

static float *dbuf(struct pool *P, size_t floats)
{
    if (P->rc != EM_OK || P->n == 64) return P->rc = P->rc ? P->rc : EM_E_NOMEM, NULL;
    float *f = em_be_floats(P->be, floats ? floats : 1);
    if (!f) P->rc = EM_E_NOMEM;
    else P->p[P->n++] = f;
    return f;
}

/* A random BF16 weight [out, in] resident on the device; its host data lives in the pool
 * too (the CPU backend's resident weight is a view of it). */
static const struct em_tensor *weight(struct pool *P, int out, int in)
{
    if (P->rc != EM_OK || P->nw == 16) return P->rc = P->rc ? P->rc : EM_E_NOMEM, NULL;
    const size_t n = (size_t)out * in;
    uint16_t *h = malloc(n * sizeof *h);
    if (!h) return P->rc = EM_E_NOMEM, NULL;
    uint64_t s = 0x2545F4914F6CDD1Dull ^ n;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        h[i] = em_quant_f32_to_bf16(((float)(s >> 40) / 16777216.0f - 0.5f) * 0.05f);
    }
    struct em_tensor t = {.name = "bench", .dtype = EM_DT_BF16, .ndim = 2, .shape = {out, in},
                          .data = h, .nbytes = n * 2};
    P->rc = P->be->ops->weight(P->be->ctx, &t, &P->w[P->nw]);
    if (P->rc != EM_OK) {
        free(h);
        return NULL;
    }
    P->host[P->nw] = h;
    return &P->w[P->nw++];
}

static void pool_free(struct pool *P)
{
    for (int i = 0; i < P->n; i++) P->be->ops->free(P->be->ctx, P->p[i]);
    for (int i = 0; i < P->nw; i++) {
        P->be->ops->weight_free(P->be->ctx, &P->w[i]);
        free(P->host[i]);
    }
}

/* Row tables of n rows of `row` bytes each in the device buffer base (row j at j * row). */
static const void **rows_of(const void *base, int n, size_t row)
{
    const void **t = malloc((size_t)n * sizeof *t);
    if (t)
        for (int j = 0; j < n; j++) t[j] = (const char *)base + (size_t)j * row;
    return t;
}

#define OPS P->be->ops
#define CTX P->be->ctx
#define TRY(x) \
    if ((rc = (x)) != EM_OK) return rc

/* One encoder layer at T rows; *flops its matmul + attention FLOPs. */
static em_err enc_layer(struct pool *P, const struct em_bench_shapes *s, float *h, float *a,
                        float *q, float *k, float *v, float *o, float *f, const float *ln,
                        const struct em_tensor *const *W, const void **kv, double *flops)
{
    const int T = s->enc_T, d = s->enc_d, hd = d / s->enc_heads;
    em_err rc;
    TRY(OPS->layernorm(CTX, a, h, ln, ln, T, d, 1e-5f));
    TRY(OPS->matmul(CTX, q, a, T, d, d, W[0], NULL));
    TRY(OPS->matmul(CTX, k, a, T, d, d, W[1], NULL));
    TRY(OPS->matmul(CTX, v, a, T, d, d, W[2], NULL));
    const struct em_attn_args at = {.o = o, .ldo = d, .q = q, .ldq = d, .k = (const float *const *)kv,
                                    .v = (const float *const *)kv + T, .T = T, .n = T,
                                    .heads = s->enc_heads, .kv_heads = s->enc_heads, .hd = hd,
                                    .scale = 1.0f / sqrtf((float)hd)};
    TRY(OPS->attn(CTX, &at));
    TRY(OPS->matmul(CTX, a, o, T, d, d, W[3], NULL));
    TRY(OPS->add(CTX, h, a, (size_t)T * d));
    TRY(OPS->layernorm(CTX, a, h, ln, ln, T, d, 1e-5f));
    TRY(OPS->matmul(CTX, f, a, T, d, s->enc_ffn, W[4], NULL));
    TRY(OPS->gelu(CTX, f, (size_t)T * s->enc_ffn));
    TRY(OPS->matmul(CTX, a, f, T, s->enc_ffn, d, W[5], NULL));
    TRY(OPS->add(CTX, h, a, (size_t)T * d));
    *flops = 2.0 * T * ((double)4 * d * d + 2.0 * d * s->enc_ffn) + 4.0 * T * (double)T * d;
    return EM_OK;
}

/* One decoder layer over n rows: the rows' own k / v go to krow / vrow (f16), attention is
 * causal over `seen + n` rows (prefill: one sequence) or, with dec, B sequences of ctx rows. */
struct dec_io {
    float *x, *h, *q, *k, *v, *a, *g, *u, *cs, *sn;
    void **krow, **vrow;
    const void *const *const *kt, *const *const *vt; /* decode: per sequence tables */
    const void **kall, **vall;                      /* prefill: the sequence's tables */
    const float **qs;
    float **os;
    int *nseq;
};

static em_err dec_layer(struct pool *P, const struct em_bench_shapes *s, int n, int decode,
                        const struct dec_io *io, const float *norm, const struct em_tensor *const *W)
{
    const int D = s->D, hd = D / s->H, kd = s->KVH * hd;
    em_err rc;
    TRY(OPS->rmsnorm(CTX, io->h, io->x, norm, n, D, 1e-5f));
    TRY(OPS->matmul(CTX, io->q, io->h, n, D, D, W[0], NULL));
    TRY(OPS->matmul(CTX, io->k, io->h, n, D, kd, W[1], NULL));
    TRY(OPS->matmul(CTX, io->v, io->h, n, D, kd, W[2], NULL));
    const struct em_rope_kv_args r = {.q = io->q, .k = io->k, .v = io->v, .T = n, .heads = s->H,
                                      .kv_heads = s->KVH, .hd = hd, .cs = io->cs, .sn = io->sn,
                                      .krow = io->krow, .vrow = io->vrow, .f16 = 1};
    TRY(OPS->rope_kv(CTX, &r));
    if (decode) {
        const struct em_attn_decode_args a = {.B = n, .o = io->os, .q = io->qs, .k = io->kt,
                                              .v = io->vt, .n = io->nseq, .f16 = 1, .heads = s->H,
                                              .kv_heads = s->KVH, .hd = hd,
                                              .scale = 1.0f / sqrtf((float)hd)};
        TRY(OPS->attn_decode(CTX, &a));
    } else {
        const struct em_attn_args a = {.o = io->a, .ldo = D, .q = io->q, .ldq = D,
                                       .k16 = (const uint16_t *const *)io->kall,
                                       .v16 = (const uint16_t *const *)io->vall, .T = n, .n = n,
                                       .p0 = 0, .causal = true, .heads = s->H, .kv_heads = s->KVH,
                                       .hd = hd, .scale = 1.0f / sqrtf((float)hd)};
        TRY(OPS->attn(CTX, &a));
    }
    TRY(OPS->matmul(CTX, io->h, io->a, n, D, D, W[3], NULL));
    TRY(OPS->add(CTX, io->x, io->h, (size_t)n * D));
    TRY(OPS->rmsnorm(CTX, io->h, io->x, norm, n, D, 1e-5f));
    TRY(OPS->matmul(CTX, io->g, io->h, n, D, s->F, W[4], NULL));
    TRY(OPS->matmul(CTX, io->u, io->h, n, D, s->F, W[5], NULL));
    TRY(OPS->silu_mul(CTX, io->g, io->u, (size_t)n * s->F));
    TRY(OPS->matmul(CTX, io->h, io->g, n, s->F, D, W[6], NULL));
    TRY(OPS->add(CTX, io->x, io->h, (size_t)n * D));
    return EM_OK;
}

static double now_synced(struct pool *P)
{
    OPS->sync(CTX);
    return em_now_s();
}

static em_err run(struct pool *P, const struct em_bench_shapes *s, FILE *out)
{
    const int D = s->D, hd = D / s->H, kd = s->KVH * hd, ed = s->enc_d, ET = s->enc_T;
    const int PT = s->prefill_T, B = s->batch, NC = s->ctx;
    const int rows = PT > B ? PT : B;
    em_err rc = EM_OK;
    struct em_backend_info info = {.device = "?"};
    if (OPS->info) TRY(OPS->info(CTX, &info));
    /* encoder */
    const struct em_tensor *EW[6] = {weight(P, ed, ed), weight(P, ed, ed), weight(P, ed, ed),
                                     weight(P, ed, ed), weight(P, s->enc_ffn, ed),
                                     weight(P, ed, s->enc_ffn)};
    float *eh = dbuf(P, (size_t)ET * ed), *ea = dbuf(P, (size_t)ET * ed), *eq = dbuf(P, (size_t)ET * ed);
    float *ek = dbuf(P, (size_t)ET * ed), *ev = dbuf(P, (size_t)ET * ed), *eo = dbuf(P, (size_t)ET * ed);
    float *ef = dbuf(P, (size_t)ET * s->enc_ffn), *eln = dbuf(P, (size_t)ed);
    /* decoder */
    const struct em_tensor *DW[7] = {weight(P, D, D), weight(P, kd, D), weight(P, kd, D),
                                     weight(P, D, D), weight(P, s->F, D), weight(P, s->F, D),
                                     weight(P, D, s->F)};
    const struct em_tensor *lm = weight(P, s->V, D);
    struct dec_io io = {
        .x = dbuf(P, (size_t)rows * D), .h = dbuf(P, (size_t)rows * D), .q = dbuf(P, (size_t)rows * D),
        .k = dbuf(P, (size_t)rows * kd), .v = dbuf(P, (size_t)rows * kd), .a = dbuf(P, (size_t)rows * D),
        .g = dbuf(P, (size_t)rows * s->F), .u = dbuf(P, (size_t)rows * s->F),
        .cs = dbuf(P, (size_t)rows * hd / 2), .sn = dbuf(P, (size_t)rows * hd / 2),
    };
    float *dnorm = dbuf(P, (size_t)D), *logits = dbuf(P, (size_t)B * s->V);
    /* KV: the prefill's PT rows, and B sequences x NC rows for decode, f16 */
    const size_t rowb = (size_t)kd * 2;
    const size_t kv_floats = ((size_t)PT + (size_t)B * NC) * rowb / sizeof(float) + 1;
    char *kvp = (char *)dbuf(P, kv_floats), *kvv = (char *)dbuf(P, kv_floats);
    if (P->rc != EM_OK) return P->rc;
    /* zero-initialised inputs are enough for timing; norms of ones */
    float *ones = malloc((size_t)(D > ed ? D : ed) * sizeof *ones);
    if (!ones) return EM_E_NOMEM;
    for (int i = 0; i < (D > ed ? D : ed); i++) ones[i] = 1.0f;
    rc = OPS->upload(CTX, eln, ones, (size_t)ed * sizeof *ones);
    if (rc == EM_OK) rc = OPS->upload(CTX, dnorm, ones, (size_t)D * sizeof *ones);
    free(ones);
    if (rc != EM_OK) return rc;
    const void **ekv = malloc(2 * (size_t)ET * sizeof *ekv);
    const void **pk = rows_of(kvp, PT, rowb), **pv = rows_of(kvv, PT, rowb);
    const void **dk = rows_of(kvp + (size_t)PT * rowb, B * NC, rowb);
    const void **dv = rows_of(kvv + (size_t)PT * rowb, B * NC, rowb);
    const void *const **kt = malloc((size_t)B * sizeof *kt), *const **vt = malloc((size_t)B * sizeof *vt);
    const float **qs = malloc((size_t)B * sizeof *qs);
    float **os = malloc((size_t)B * sizeof *os);
    int *nseq = malloc((size_t)B * sizeof *nseq);
    void **dkrow = malloc((size_t)B * sizeof *dkrow), **dvrow = malloc((size_t)B * sizeof *dvrow);
    double t_enc = INFINITY, t_pre = INFINITY, t_dec = INFINITY, t_lm = INFINITY, f_enc = 0;
    if (!ekv || !pk || !pv || !dk || !dv || !kt || !vt || !qs || !os || !nseq || !dkrow || !dvrow) {
        rc = EM_E_NOMEM;
        goto done;
    }
    for (int j = 0; j < ET; j++) {
        ekv[j] = ek + (size_t)j * ed;
        ekv[ET + j] = ev + (size_t)j * ed;
    }
    for (int b = 0; b < B; b++) {
        kt[b] = dk + (size_t)b * NC;
        vt[b] = dv + (size_t)b * NC;
        qs[b] = io.q + (size_t)b * D;
        os[b] = io.a + (size_t)b * D;
        nseq[b] = NC;
        dkrow[b] = (void *)dk[(size_t)b * NC + NC - 1];
        dvrow[b] = (void *)dv[(size_t)b * NC + NC - 1];
    }
    fprintf(out, "device bench: %s, bf16 weights, 7B shapes (D %d, F %d, V %d; encoder d %d, T %d)\n",
            info.device, D, s->F, s->V, ed, ET);
    for (int r = 0; r <= EM_BENCH_DEVICE_REPS && rc == EM_OK; r++) { /* r == 0: warm-up */
        double t0 = now_synced(P), fl;
        if ((rc = enc_layer(P, s, eh, ea, eq, ek, ev, eo, ef, eln, EW, ekv, &fl))) break;
        double t1 = now_synced(P);
        io.krow = (void **)pk, io.vrow = (void **)pv, io.kall = pk, io.vall = pv;
        if ((rc = dec_layer(P, s, PT, 0, &io, dnorm, DW))) break;
        double t2 = now_synced(P);
        io.krow = dkrow, io.vrow = dvrow, io.kt = kt, io.vt = vt, io.qs = qs, io.os = os;
        io.nseq = nseq;
        if ((rc = dec_layer(P, s, B, 1, &io, dnorm, DW))) break;
        double t3 = now_synced(P);
        if ((rc = OPS->matmul(CTX, logits, io.h, B, D, s->V, lm, NULL))) break;
        double t4 = now_synced(P);
        if (r == 0) continue;
        f_enc = fl;
        t_enc = fmin(t_enc, t1 - t0), t_pre = fmin(t_pre, t2 - t1);
        t_dec = fmin(t_dec, t3 - t2), t_lm = fmin(t_lm, t4 - t3);
    }
    if (rc != EM_OK) goto done;
    {
        const double f_pre = 2.0 * PT * ((double)2 * D * D + 2.0 * D * kd + 3.0 * D * s->F) +
                             2.0 * (double)PT * PT * D; /* causal: half of 4 T^2 D */
        const double w_layer = 2.0 * ((double)2 * D * D + 2.0 * D * kd + 3.0 * D * s->F);
        const double kv_step = (double)B * NC * 2 * rowb;
        const double step = s->layers * t_dec + t_lm;
        const double step_bytes = s->layers * (w_layer + kv_step) + 2.0 * s->V * D;
        const double enc_clip = s->enc_layers * t_enc, pre_clip = s->layers * t_pre;
        const double dec_clip = s->new_tokens * step / B;
        const double pk_t = info.peak_bf16_tflops, pk_b = info.peak_gbps;
        fprintf(out, "  encoder layer T=%d        %8.3f ms  %7.1f TFLOPS", ET, t_enc * 1e3,
                f_enc / t_enc / 1e12);
        if (pk_t > 0) fprintf(out, "  (%.0f %% of %.0f peak)", 100 * f_enc / t_enc / 1e12 / pk_t, pk_t);
        fprintf(out, "\n  prefill layer T=%d         %8.3f ms  %7.1f TFLOPS", PT, t_pre * 1e3,
                f_pre / t_pre / 1e12);
        if (pk_t > 0) fprintf(out, "  (%.0f %% of peak)", 100 * f_pre / t_pre / 1e12 / pk_t);
        fprintf(out, "\n  decode step B=%d ctx=%d    %8.3f ms  %7.0f GB/s (weights + KV %.2f GB)",
                B, NC, step * 1e3, step_bytes / step / 1e9, step_bytes / 1e9);
        if (pk_b > 0) fprintf(out, "  (%.0f %% of %.0f GB/s peak)", 100 * step_bytes / step / 1e9 / pk_b, pk_b);
        fprintf(out, "\n  per clip (30 s, 1 prompt, %d new tokens): encoder %.1f ms, prefill %.1f ms,"
                " decode %.1f ms (shared by %d)\n", s->new_tokens, enc_clip * 1e3, pre_clip * 1e3,
                dec_clip * 1e3, B);
        fprintf(out, "  clips/s (from the per-layer times, no host work): %.2f\n",
                1.0 / (enc_clip + pre_clip + dec_clip));
        if (pk_t > 0 && pk_b > 0) {
            const double floor = (f_enc * s->enc_layers + f_pre * s->layers) / (pk_t * 1e12) +
                                 s->new_tokens * step_bytes / (pk_b * 1e9) / B;
            fprintf(out, "  floor from the peaks: %.2f clips/s\n", 1.0 / floor);
        }
    }
done:
    free(ekv), free(pk), free(pv), free(dk), free(dv), free(kt), free(vt), free(qs), free(os);
    free(nseq), free(dkrow), free(dvrow);
    return rc;
}

em_err em_bench_device(const char *device, const struct em_bench_shapes *s, FILE *out,
                       struct em_errbuf *eb)
{
    const struct em_backend *be = NULL;
    em_err rc = em_backend_open(device, &be, eb);
    if (rc != EM_OK) return rc;
    struct pool P = {.be = be};
    rc = run(&P, s, out);
    pool_free(&P);
    if (rc != EM_OK) { /* the device's own words for a failed call (CUDA: file:line) */
        const char *why = em_cuda_last_error(be);
        em_errf(eb, rc, "device bench on %s: %s%s%s", device ? device : "?", em_err_name(rc),
                why && *why ? ": " : "", why && *why ? why : "");
    }
    em_backend_close(be);
    return rc;
}
