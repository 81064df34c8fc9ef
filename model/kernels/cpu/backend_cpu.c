/* model/kernels/cpu/backend_cpu.c - the CPU backend's table (model/kernels/backend.h): the
 * kernels of model/kernels/cpu/ behind the slots. Device memory is host memory: alloc is
 * aligned_alloc, upload / download / copy are memcpy, a weight is its host view (no copy),
 * sync has nothing to wait for.
 *
 * Row passes (RMSNorm; RoPE with the cache writes) run on the qmatmul pool in tasks of
 * PAR_ROWS rows from PAR_MIN_ROWS rows on; each row's arithmetic does not depend on the
 * split. Single-threaded they took 12 + 15 ms of a 7B layer's ~600 ms at 800 tokens.
 * LayerNorm, GELU and the residual adds stay single-threaded (eltwise.h: splitting them
 * between OpenBLAS calls measured slower on the 2-core machine). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/kernels/backend.h"
#include "model/kernels/cpu/attn.h"
#include "model/kernels/cpu/cpufeat.h"
#include "model/kernels/cpu/eltwise.h"
#include "model/kernels/cpu/ops.h"
#include "model/kernels/cpu/qmatmul.h"
#include "model/kernels/cpu/vecmath.h"

#define PAR_ROWS 16
#define PAR_MIN_ROWS 32

/* ---- memory ------------------------------------------------------------------------------ */

static em_err cpu_alloc(void *ctx, size_t bytes, void **out)
{
    (void)ctx;
    *out = NULL;
    if (bytes == 0 || bytes > SIZE_MAX - 64) return EM_E_ARG;
    *out = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    return *out ? EM_OK : EM_E_NOMEM;
}

static void cpu_free(void *ctx, void *p)
{
    (void)ctx;
    free(p);
}

static em_err cpu_memcpy(void *ctx, void *dst, const void *src, size_t bytes)
{
    (void)ctx;
    if (bytes) memcpy(dst, src, bytes);
    return EM_OK;
}

static em_err cpu_weight(void *ctx, const struct em_tensor *host, struct em_tensor *dev)
{
    (void)ctx;
    *dev = *host;
    return EM_OK;
}

static void cpu_weight_free(void *ctx, struct em_tensor *dev)
{
    (void)ctx;
    (void)dev; /* a view of the host tensor: nothing owned */
}

static em_err cpu_sync(void *ctx)
{
    (void)ctx;
    return EM_OK;
}

/* ---- row passes on the qmatmul pool ------------------------------------------------------ */

struct row_pass {
    void (*rows)(const struct row_pass *c, int t0, int t1);
    int T;
    float *y; /* rmsnorm */
    const float *x, *w;
    int D;
    float eps;
    const struct em_rope_kv_args *r; /* rope_kv */
};

static void row_pass_task(void *ctx, int task, int slot)
{
    (void)slot;
    const struct row_pass *c = ctx;
    const int t0 = task * PAR_ROWS, t1 = t0 + PAR_ROWS < c->T ? t0 + PAR_ROWS : c->T;
    c->rows(c, t0, t1);
}

static void row_pass_run(const struct row_pass *c)
{
    if (c->T >= PAR_MIN_ROWS)
        em_qmm_parallel(row_pass_task, (void *)c, (c->T + PAR_ROWS - 1) / PAR_ROWS, 0);
    else
        c->rows(c, 0, c->T);
}

/* y = x / sqrt(mean(x^2) + eps) * w (ref: Qwen2RMSNorm, variance in fp32; here the sum of
 * squares is in double, four partial sums added in a fixed order) */
static void rmsnorm_rows(const struct row_pass *c, int t0, int t1)
{
    const int D = c->D;
    for (int t = t0; t < t1; t++) {
        const float *xr = c->x + (size_t)t * D;
        float *yr = c->y + (size_t)t * D;
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        int i = 0;
        for (; i + 4 <= D; i += 4) {
            s0 += (double)xr[i] * xr[i];
            s1 += (double)xr[i + 1] * xr[i + 1];
            s2 += (double)xr[i + 2] * xr[i + 2];
            s3 += (double)xr[i + 3] * xr[i + 3];
        }
        for (; i < D; i++) s0 += (double)xr[i] * xr[i];
        const double ss = (s0 + s1) + (s2 + s3);
        float r = 1.0f / sqrtf((float)(ss / D) + c->eps);
        for (i = 0; i < D; i++) yr[i] = c->w[i] * (xr[i] * r);
    }
}

static em_err cpu_rmsnorm(void *ctx, float *y, const float *x, const float *w, int n, int d,
                          float eps)
{
    (void)ctx;
    if (n < 0 || d < 1) return EM_E_ARG;
    const struct row_pass c = {.rows = rmsnorm_rows, .T = n, .y = y, .x = x, .w = w, .D = d,
                               .eps = eps};
    row_pass_run(&c);
    return EM_OK;
}

/* Rotate-half RoPE on n_heads heads of one row. */
static void rope_row(float *v, int n_heads, int hd, const float *cs, const float *sn)
{
    int half = hd / 2;
    for (int h = 0; h < n_heads; h++) {
        float *x = v + (size_t)h * hd;
        for (int i = 0; i < half; i++) {
            float a = x[i], b = x[i + half];
            x[i] = a * cs[i] - b * sn[i];
            x[i + half] = b * cs[i] + a * sn[i];
        }
    }
}

/* One cache row from floats: f32 as is, f16 rounded to nearest even and saturated (the bits
 * em_kv_store writes: model/gen/kvcache.h). */
static void store_row(void *dst, const float *src, size_t n, int f16)
{
    if (!f16) {
        memcpy(dst, src, n * sizeof(float));
        return;
    }
    em_f16_narrow(dst, src, n);
}

static void rope_kv_rows(const struct row_pass *c, int t0, int t1)
{
    const struct em_rope_kv_args *r = c->r;
    const size_t qd = (size_t)r->heads * r->hd, kd = (size_t)r->kv_heads * r->hd;
    const size_t half = (size_t)r->hd / 2;
    for (int t = t0; t < t1; t++) {
        const float *cs = r->cs + (size_t)t * half, *sn = r->sn + (size_t)t * half;
        rope_row(r->q + (size_t)t * qd, r->heads, r->hd, cs, sn);
        rope_row(r->k + (size_t)t * kd, r->kv_heads, r->hd, cs, sn);
        store_row(r->krow[t], r->k + (size_t)t * kd, kd, r->f16);
        store_row(r->vrow[t], r->v + (size_t)t * kd, kd, r->f16);
    }
}

static em_err cpu_rope_kv(void *ctx, const struct em_rope_kv_args *a)
{
    (void)ctx;
    if (!a || a->T < 0 || a->heads < 1 || a->kv_heads < 1 || a->hd < 2 || a->hd % 2 ||
        (a->T && (!a->q || !a->k || !a->v || !a->cs || !a->sn || !a->krow || !a->vrow)))
        return EM_E_ARG;
    const struct row_pass c = {.rows = rope_kv_rows, .T = a->T, .r = a};
    row_pass_run(&c);
    return EM_OK;
}

/* ---- element-wise ------------------------------------------------------------------------ */

static em_err cpu_layernorm(void *ctx, float *y, const float *x, const float *w, const float *b,
                            int n, int d, float eps)
{
    (void)ctx;
    if (n < 0 || d < 1) return EM_E_ARG;
    em_layer_norm(y, x, n, d, w, b, eps);
    return EM_OK;
}

static em_err cpu_gelu(void *ctx, float *x, size_t n)
{
    (void)ctx;
    em_gelu(x, n);
    return EM_OK;
}

static em_err cpu_silu_mul(void *ctx, float *g, const float *u, size_t n)
{
    (void)ctx;
#if EM_VM_X86
    if (em_cpu_level() >= EM_CPU_AVX2) {
        em_silu_mul8(g, u, n);
        return EM_OK;
    }
#endif
    em_silu_mul(g, u, n);
    return EM_OK;
}

static em_err cpu_add(void *ctx, float *h, const float *a, size_t n)
{
    (void)ctx;
    em_add_into(h, a, n);
    return EM_OK;
}

static em_err cpu_avgpool2(void *ctx, float *y, const float *x, int n_out, int d)
{
    (void)ctx;
    if (n_out < 0 || d < 1) return EM_E_ARG;
    for (int j = 0; j < n_out; j++)
        for (int i = 0; i < d; i++)
            y[(size_t)j * d + i] = (x[(size_t)(2 * j) * d + i] + x[(size_t)(2 * j + 1) * d + i]) * 0.5f;
    return EM_OK;
}

static em_err cpu_im2col3(void *ctx, const struct em_im2col_args *a)
{
    (void)ctx;
    if (!a || a->rows < 0 || a->ch < 1 || a->stride < 1 || a->frames < 0) return EM_E_ARG;
    const size_t K = (size_t)a->ch * 3;
    for (int t = 0; t < a->rows; t++)
        for (int i = 0; i < a->ch; i++)
            for (int k = 0; k < 3; k++) {
                const long f = (long)a->stride * t + k - 1;
                a->dst[(size_t)t * K + (size_t)i * 3 + k] =
                    f >= 0 && f < a->frames ? a->src[(size_t)f * a->fstride + (size_t)i * a->cstride]
                                            : 0.0f;
            }
    return EM_OK;
}

static em_err cpu_embed(void *ctx, float *x, const struct em_tensor *table, const int32_t *ids,
                        int n)
{
    (void)ctx;
    if (n < 0 || !table || table->ndim != 2) return EM_E_ARG;
    const int64_t V = table->shape[0], d = table->shape[1];
    for (int t = 0; t < n; t++) {
        if (ids[t] < 0 || ids[t] >= V) return EM_E_ARG;
        em_tensor_read_f32(table, (size_t)ids[t] * (size_t)d, (size_t)d, x + (size_t)t * d);
    }
    return EM_OK;
}

/* ---- attention --------------------------------------------------------------------------- */

static em_err cpu_attn(void *ctx, const struct em_attn_args *a)
{
    (void)ctx;
    em_err rc = em_attn(a); /* checks a; AVX-512 tiles */
    if (rc == EM_E_UNSUPPORTED) rc = em_cpu_attn_sgemm(a);
    return rc;
}

static em_err cpu_argmax(void *ctx, const float *logits, int n, int V, int32_t *out)
{
    (void)ctx;
    if (n < 0 || V < 1) return EM_E_ARG;
    for (int r = 0; r < n; r++) {
        const float *x = logits + (size_t)r * V;
        int best = 0;
        for (int j = 1; j < V; j++)
            if (x[j] > x[best] || (isnan(x[best]) && !isnan(x[j]))) best = j;
        out[r] = best;
    }
    return EM_OK;
}

static const struct em_backend_ops cpu_ops = {
    .name = "cpu",
    .unified = 1,
    .matmul = em_cpu_matmul,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_memcpy,
    .download = cpu_memcpy,
    .copy = cpu_memcpy,
    .weight = cpu_weight,
    .weight_free = cpu_weight_free,
    .sync = cpu_sync,
    .decode_rows = EM_MM_QMM_MAX_N,
    .info = NULL, /* the CPU bench (earmark bench model) measures its own peaks */
    .rmsnorm = cpu_rmsnorm,
    .layernorm = cpu_layernorm,
    .gelu = cpu_gelu,
    .silu_mul = cpu_silu_mul,
    .add = cpu_add,
    .avgpool2 = cpu_avgpool2,
    .im2col3 = cpu_im2col3,
    .embed = cpu_embed,
    .rope_kv = cpu_rope_kv,
    .attn = cpu_attn,
    .attn_decode = em_cpu_attn_decode,
    .argmax = cpu_argmax,
};
static const struct em_backend cpu_backend = {.ops = &cpu_ops, .ctx = NULL};

const struct em_backend *em_backend_cpu(void) { return &cpu_backend; }
