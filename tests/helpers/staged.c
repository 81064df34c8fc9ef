/* tests/helpers/staged.c - see staged.h. */
#include "tests/helpers/staged.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct range {
    uintptr_t start, end;
};

static struct {
    pthread_mutex_t mu;
    struct range *r;
    size_t n, cap, live_bytes;
    size_t violations;
    char first[256];
} S = {.mu = PTHREAD_MUTEX_INITIALIZER};

#define CPU (em_backend_cpu()->ops)

static void violation(const char *slot, const char *what, const void *p, size_t bytes)
{
    pthread_mutex_lock(&S.mu);
    if (S.violations++ == 0)
        snprintf(S.first, sizeof S.first, "%s: %s %p (+%zu bytes) is not in one live allocation",
                 slot, what, p, bytes);
    pthread_mutex_unlock(&S.mu);
}

/* 1 when [p, p + bytes) lies inside one live allocation (bytes 0 counts as 1). */
static int inside(const void *p, size_t bytes)
{
    const uintptr_t a = (uintptr_t)p, b = a + (bytes ? bytes : 1);
    int ok = 0;
    pthread_mutex_lock(&S.mu);
    for (size_t i = 0; i < S.n && !ok; i++) ok = a >= S.r[i].start && b <= S.r[i].end && b > a;
    pthread_mutex_unlock(&S.mu);
    return ok;
}

/* Checks one device pointer; on failure records it and returns 0. */
static int dev(const char *slot, const char *what, const void *p, size_t bytes)
{
    if (p && inside(p, bytes)) return 1;
    violation(slot, what, p, bytes);
    return 0;
}

#define NEED(cond) \
    do { \
        if (!(cond)) return EM_E_ARG; \
    } while (0)

static em_err st_alloc(void *ctx, size_t bytes, void **out)
{
    (void)ctx;
    em_err rc = CPU->alloc(NULL, bytes, out);
    if (rc != EM_OK) return rc;
    pthread_mutex_lock(&S.mu);
    if (S.n == S.cap) {
        size_t cap = S.cap ? 2 * S.cap : 64;
        struct range *r = realloc(S.r, cap * sizeof *r);
        if (!r) {
            pthread_mutex_unlock(&S.mu);
            CPU->free(NULL, *out);
            *out = NULL;
            return EM_E_NOMEM;
        }
        S.r = r, S.cap = cap;
    }
    S.r[S.n++] = (struct range){(uintptr_t)*out, (uintptr_t)*out + bytes};
    S.live_bytes += bytes;
    pthread_mutex_unlock(&S.mu);
    memset(*out, 0xA5, bytes); /* contents undefined: never zero by luck */
    return EM_OK;
}

static void st_free(void *ctx, void *p)
{
    (void)ctx;
    if (!p) return;
    int found = 0;
    pthread_mutex_lock(&S.mu);
    for (size_t i = 0; i < S.n; i++)
        if (S.r[i].start == (uintptr_t)p) {
            S.live_bytes -= S.r[i].end - S.r[i].start;
            S.r[i] = S.r[--S.n];
            found = 1;
            break;
        }
    pthread_mutex_unlock(&S.mu);
    if (!found) {
        violation("free", "pointer", p, 0);
        return; /* not ours: never hand it to free() */
    }
    CPU->free(NULL, p);
}

static em_err st_upload(void *ctx, void *dst, const void *src, size_t bytes)
{
    NEED(dev("upload", "dst", dst, bytes));
    return CPU->upload(ctx, dst, src, bytes);
}

static em_err st_download(void *ctx, void *dst, const void *src, size_t bytes)
{
    NEED(dev("download", "src", src, bytes));
    return CPU->download(ctx, dst, src, bytes);
}

static em_err st_copy(void *ctx, void *dst, const void *src, size_t bytes)
{
    NEED(dev("copy", "dst", dst, bytes) && dev("copy", "src", src, bytes));
    return CPU->copy(ctx, dst, src, bytes);
}

static size_t tensor_bytes(const struct em_tensor *t)
{
    return em_dtype_nbytes(t->dtype, em_tensor_numel(t));
}

/* A copy of the host tensor in staged memory (as a device keeps its own copy). */
static em_err st_weight(void *ctx, const struct em_tensor *host, struct em_tensor *out)
{
    const size_t bytes = tensor_bytes(host);
    if (!bytes) return EM_E_UNSUPPORTED;
    void *p = NULL;
    em_err rc = st_alloc(ctx, bytes, &p);
    if (rc != EM_OK) return rc;
    memcpy(p, host->data, bytes);
    *out = *host;
    out->data = p;
    out->nbytes = bytes;
    return EM_OK;
}

static void st_weight_free(void *ctx, struct em_tensor *t)
{
    st_free(ctx, (void *)t->data);
    t->data = NULL;
}

static em_err st_sync(void *ctx) { return CPU->sync(ctx); }

static int w_ok(const char *slot, const struct em_tensor *w)
{
    return !w || dev(slot, w->name ? w->name : "weight", w->data, tensor_bytes(w));
}

#define F(n) ((size_t)(n) * sizeof(float))

static em_err st_matmul(void *ctx, float *y, const float *x, int n, int in, int out,
                        const struct em_tensor *w, const struct em_tensor *bias)
{
    if (n > 0)
        NEED(dev("matmul", "y", y, F((size_t)n * out)) && dev("matmul", "x", x, F((size_t)n * in)) &&
             w_ok("matmul", w) && w_ok("matmul", bias));
    return CPU->matmul(ctx, y, x, n, in, out, w, bias);
}

static em_err st_rmsnorm(void *ctx, float *y, const float *x, const float *w, int n, int d, float eps)
{
    NEED(dev("rmsnorm", "y", y, F((size_t)n * d)) && dev("rmsnorm", "x", x, F((size_t)n * d)) &&
         dev("rmsnorm", "w", w, F(d)));
    return CPU->rmsnorm(ctx, y, x, w, n, d, eps);
}

static em_err st_layernorm(void *ctx, float *y, const float *x, const float *w, const float *b,
                           int n, int d, float eps)
{
    NEED(dev("layernorm", "y", y, F((size_t)n * d)) && dev("layernorm", "x", x, F((size_t)n * d)) &&
         dev("layernorm", "w", w, F(d)) && dev("layernorm", "b", b, F(d)));
    return CPU->layernorm(ctx, y, x, w, b, n, d, eps);
}

static em_err st_gelu(void *ctx, float *x, size_t n)
{
    NEED(dev("gelu", "x", x, F(n)));
    return CPU->gelu(ctx, x, n);
}

static em_err st_silu_mul(void *ctx, float *g, const float *u, size_t n)
{
    NEED(dev("silu_mul", "g", g, F(n)) && dev("silu_mul", "u", u, F(n)));
    return CPU->silu_mul(ctx, g, u, n);
}

static em_err st_add(void *ctx, float *h, const float *a, size_t n)
{
    NEED(dev("add", "h", h, F(n)) && dev("add", "a", a, F(n)));
    return CPU->add(ctx, h, a, n);
}

static em_err st_avgpool2(void *ctx, float *y, const float *x, int n_out, int d)
{
    NEED(dev("avgpool2", "y", y, F((size_t)n_out * d)) && dev("avgpool2", "x", x, F(2 * (size_t)n_out * d)));
    return CPU->avgpool2(ctx, y, x, n_out, d);
}

static em_err st_im2col3(void *ctx, const struct em_im2col_args *a)
{
    NEED(dev("im2col3", "dst", a->dst, F((size_t)a->rows * a->ch * 3)) && dev("im2col3", "src", a->src, 0));
    return CPU->im2col3(ctx, a);
}

static em_err st_embed(void *ctx, float *x, const struct em_tensor *table, const int32_t *ids, int n)
{
    NEED(dev("embed", "x", x, F((size_t)n * (table->ndim ? (size_t)(em_tensor_numel(table) / table->shape[0]) : 0))) &&
         w_ok("embed", table));
    return CPU->embed(ctx, x, table, ids, n);
}

static em_err st_rope_kv(void *ctx, const struct em_rope_kv_args *a)
{
    const size_t qd = (size_t)a->heads * a->hd, kd = (size_t)a->kv_heads * a->hd;
    const size_t row = kd * (a->f16 ? 2 : 4);
    NEED(dev("rope_kv", "q", a->q, F(a->T * qd)) && dev("rope_kv", "k", a->k, F(a->T * kd)) &&
         dev("rope_kv", "v", a->v, F(a->T * kd)) && dev("rope_kv", "cs", a->cs, F((size_t)a->T * a->hd / 2)) &&
         dev("rope_kv", "sn", a->sn, F((size_t)a->T * a->hd / 2)));
    for (int t = 0; t < a->T; t++)
        NEED(dev("rope_kv", "cache row k", a->krow[t], row) && dev("rope_kv", "cache row v", a->vrow[t], row));
    return CPU->rope_kv(ctx, a);
}

static em_err st_attn(void *ctx, const struct em_attn_args *a)
{
    const size_t kd = (size_t)a->kv_heads * a->hd;
    NEED(dev("attn", "o", a->o, F((size_t)(a->T - 1) * a->ldo + (size_t)a->heads * a->hd)) &&
         dev("attn", "q", a->q, F((size_t)(a->T - 1) * a->ldq + (size_t)a->heads * a->hd)));
    for (int j = 0; j < a->n; j++) {
        const void *k = a->k ? (const void *)a->k[j] : (const void *)a->k16[j];
        const void *v = a->v ? (const void *)a->v[j] : (const void *)a->v16[j];
        NEED(dev("attn", "key row", k, kd * (a->k ? 4 : 2)) && dev("attn", "value row", v, kd * (a->v ? 4 : 2)));
    }
    return CPU->attn(ctx, a);
}

static em_err st_attn_decode(void *ctx, const struct em_attn_decode_args *a)
{
    const size_t qd = (size_t)a->heads * a->hd, row = (size_t)a->kv_heads * a->hd * (a->f16 ? 2 : 4);
    for (int b = 0; b < a->B; b++) {
        NEED(dev("attn_decode", "o", a->o[b], F(qd)) && dev("attn_decode", "q", a->q[b], F(qd)));
        for (int j = 0; j < a->n[b]; j++)
            NEED(dev("attn_decode", "key row", a->k[b][j], row) &&
                 dev("attn_decode", "value row", a->v[b][j], row));
    }
    return CPU->attn_decode(ctx, a);
}

static em_err st_argmax(void *ctx, const float *logits, int n, int V, int32_t *out)
{
    NEED(dev("argmax", "logits", logits, F((size_t)n * V)));
    return CPU->argmax(ctx, logits, n, V, out);
}

static const struct em_backend_ops staged_ops = {
    .name = "staged",
    .unified = 0,
    .matmul = st_matmul,
    .alloc = st_alloc,
    .free = st_free,
    .upload = st_upload,
    .download = st_download,
    .copy = st_copy,
    .weight = st_weight,
    .weight_free = st_weight_free,
    .sync = st_sync,
    .decode_rows = EM_MM_QMM_MAX_N,
    .info = NULL,
    .rmsnorm = st_rmsnorm,
    .layernorm = st_layernorm,
    .gelu = st_gelu,
    .silu_mul = st_silu_mul,
    .add = st_add,
    .avgpool2 = st_avgpool2,
    .im2col3 = st_im2col3,
    .embed = st_embed,
    .rope_kv = st_rope_kv,
    .attn = st_attn,
    .attn_decode = st_attn_decode,
    .argmax = st_argmax,
};
static const struct em_backend staged = {.ops = &staged_ops, .ctx = NULL};

const struct em_backend *th_staged_backend(void) { return &staged; }

size_t th_staged_violations(char *first, size_t cap)
{
    pthread_mutex_lock(&S.mu);
    const size_t n = S.violations;
    if (first && cap) snprintf(first, cap, "%s", n ? S.first : "");
    pthread_mutex_unlock(&S.mu);
    return n;
}

size_t th_staged_live_bytes(size_t *n_allocs)
{
    pthread_mutex_lock(&S.mu);
    const size_t b = S.live_bytes;
    if (n_allocs) *n_allocs = S.n;
    pthread_mutex_unlock(&S.mu);
    return b;
}

void th_staged_reset(void)
{
    pthread_mutex_lock(&S.mu);
    S.violations = 0;
    S.first[0] = 0;
    pthread_mutex_unlock(&S.mu);
}
