/* model/kernels/cpu/attn_rows.c - the CPU backend's attention over row-pointer (paged)
 * caches: the decode step's single query rows of many sequences at once
 * (em_cpu_attn_decode), and the sgemm path of full / causal attention below AVX-512
 * (em_cpu_attn_sgemm; em_attn in attn.c is the AVX-512 path).
 *
 * Rows arrive as pointers (backend.h); consecutive positions whose rows are consecutive
 * kv_dim-strided rows in memory form a run (a plain cache is one run per layer, an overlay
 * on a shared prefix one per cache it reads), and each run is read with strided kernels, so
 * the pointer form costs one pointer compare per position.
 *
 * Decode (memory-bound: at 7B, 2 x 16 KB per position and layer): one task per kv head on
 * the qmatmul pool; the sequences that read the same run (prompts over one audio prefix)
 * share each row read. Each score and each output element is computed by the same operations
 * in the same order whatever the batch, the task split or the row blocking (scores: one
 * accumulator over the head dimension; outputs: o = fma(p_j, v_j, o) over the positions in
 * order), so a sequence gets the same bits alone or in a batch. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/kernels/cpu/attn.h"
#include "model/kernels/cpu/cpufeat.h"
#include "model/kernels/cpu/ops.h"
#include "model/kernels/cpu/qmatmul.h"
#include "model/kernels/cpu/vecmath.h"

/* The run of rows starting at position p (< n): positions p .. p + return - 1 whose k (and
 * v) rows are row bytes apart from k[p] (v[p]). */
static int run_len(const void *const *k, const void *const *v, int p, int n, size_t row)
{
    int m = 1;
    while (p + m < n && (const char *)k[p + m] == (const char *)k[p] + (size_t)m * row &&
           (const char *)v[p + m] == (const char *)v[p] + (size_t)m * row)
        m++;
    return m;
}

/* x[0 .. n) = softmax(x) (fp32: subtract the row max, float exp and sum). */
static void softmax_row_c(float *x, int n)
{
    float inv = 1.0f / em_exp_shift_row(x, n);
    for (int j = 0; j < n; j++) x[j] *= inv;
}

#if EM_VM_X86
EM_VM_AVX2 static void softmax_row_avx2(float *x, int n)
{
    float sum = em_exp_shift_row8(x, n);
    __m256 inv = _mm256_set1_ps(1.0f / sum);
    int j = 0;
    for (; j + 8 <= n; j += 8)
        _mm256_storeu_ps(x + j, _mm256_mul_ps(_mm256_loadu_ps(x + j), inv));
    for (; j < n; j++) x[j] *= 1.0f / sum;
}
#endif

static void softmax_row(float *x, int n, int avx2)
{
#if EM_VM_X86
    if (avx2) {
        softmax_row_avx2(x, n);
        return;
    }
#endif
    (void)avx2;
    softmax_row_c(x, n);
}

/* ---- decode ------------------------------------------------------------------------------ */

#define DEC_MAX_B 8 /* sequences per pass (results do not depend on it) */

struct dec_run {
    const void *k, *v; /* rows p .. p + m - 1, kv_dim-strided */
    int p, m;
    int nseq;
    int seq[DEC_MAX_B]; /* members of the decode set that read these rows */
};

struct dec_attn {
    const struct em_attn_decode_args *a;
    int b0, B, n_max, nruns;
    const struct dec_run *runs; /* sorted by p */
    float *sc;                  /* per pool slot: B * group rows of n_max scores */
    size_t sc_slot;
};

static int run_cmp(const void *x, const void *y)
{
    const struct dec_run *a = x, *b = y;
    return (a->p > b->p) - (a->p < b->p);
}

/* s[i] = scale * q . k row i, i < rows (<= 4); off and ld in elements */
static void run_dots(const struct dec_run *R, int h, size_t off, size_t ld, const float *q,
                     int rows, int hd, float scale, float *s, int avx2)
{
    const void *k = (const char *)R->k + off * (h ? sizeof(uint16_t) : sizeof(float));
#if EM_VM_X86
    if (avx2) {
        if (h) em_dots8_h(q, k, ld, rows, hd, scale, s);
        else em_dots8(q, k, ld, rows, hd, scale, s);
        return;
    }
#endif
    (void)avx2;
    em_dots_t(q, k, ld, rows, hd, scale, s, h);
}

/* o += p[i] * v row i, i < rows, in order */
static void run_axpys(const struct dec_run *R, int h, size_t off, size_t ld, float *o,
                      const float *p, int rows, int hd, int avx2)
{
    const void *v = (const char *)R->v + off * (h ? sizeof(uint16_t) : sizeof(float));
#if EM_VM_X86
    if (avx2) {
        if (h) em_axpys8_h(o, p, v, ld, rows, hd);
        else em_axpys8(o, p, v, ld, rows, hd);
        return;
    }
#endif
    (void)avx2;
    em_axpys_t(o, p, v, ld, rows, hd, h);
}

/* Task: kv head u for every member of the set. */
static void dec_attn_task(void *ctx, int u, int slot)
{
    const struct dec_attn *A = ctx;
    const struct em_attn_decode_args *a = A->a;
    const int hd = a->hd, group = a->heads / a->kv_heads, kd = a->kv_heads * hd, h = a->f16;
    float *sc = A->sc + (size_t)slot * A->sc_slot;
    const int avx2 = em_cpu_level() >= EM_CPU_AVX2;
    /* scores of query (b, g) in row b * group + g */
    for (int r = 0; r < A->nruns; r++) {
        const struct dec_run *R = &A->runs[r];
        for (int i = 0; i < R->m; i += 4) {
            const int rows = R->m - i < 4 ? R->m - i : 4;
            const size_t off = (size_t)i * kd + (size_t)u * hd;
            for (int e = 0; e < R->nseq; e++)
                for (int g = 0; g < group; g++) {
                    const int b = R->seq[e];
                    const float *q = a->q[A->b0 + b] + (size_t)(u * group + g) * hd;
                    float *s = sc + (size_t)(b * group + g) * A->n_max + R->p + i;
                    run_dots(R, h, off, (size_t)kd, q, rows, hd, a->scale, s, avx2);
                }
        }
    }
    for (int b = 0; b < A->B; b++)
        for (int g = 0; g < group; g++) {
            softmax_row(sc + (size_t)(b * group + g) * A->n_max, a->n[A->b0 + b], avx2);
            memset(a->o[A->b0 + b] + (size_t)(u * group + g) * hd, 0, (size_t)hd * sizeof(float));
        }
    for (int r = 0; r < A->nruns; r++) {
        const struct dec_run *R = &A->runs[r];
        for (int i = 0; i < R->m; i += 4) {
            const int rows = R->m - i < 4 ? R->m - i : 4;
            const size_t off = (size_t)i * kd + (size_t)u * hd;
            for (int e = 0; e < R->nseq; e++)
                for (int g = 0; g < group; g++) {
                    const int b = R->seq[e];
                    float *o = a->o[A->b0 + b] + (size_t)(u * group + g) * hd;
                    const float *p = sc + (size_t)(b * group + g) * A->n_max + R->p + i;
                    run_axpys(R, h, off, (size_t)kd, o, p, rows, hd, avx2);
                }
        }
    }
}

/* Sequences b0 .. b0 + B - 1 (B <= DEC_MAX_B). */
static em_err decode_set(const struct em_attn_decode_args *a, int b0, int B)
{
    const size_t row = (size_t)a->kv_heads * a->hd * (a->f16 ? sizeof(uint16_t) : sizeof(float));
    int n_max = 0, nruns = 0, cap = 2 * B;
    struct dec_run *runs = malloc((size_t)cap * sizeof *runs);
    if (!runs) return EM_E_NOMEM;
    for (int b = 0; b < B; b++) {
        const int n = a->n[b0 + b];
        const void *const *k = a->k[b0 + b], *const *v = a->v[b0 + b];
        if (n > n_max) n_max = n;
        for (int p = 0, m; p < n; p += m) {
            m = run_len(k, v, p, n, row);
            int r = 0;
            while (r < nruns && !(runs[r].k == k[p] && runs[r].v == v[p] && runs[r].p == p &&
                                  runs[r].m == m))
                r++;
            if (r == nruns) {
                if (nruns == cap) {
                    struct dec_run *nr = realloc(runs, (size_t)(cap *= 2) * sizeof *runs);
                    if (!nr) {
                        free(runs);
                        return EM_E_NOMEM;
                    }
                    runs = nr;
                }
                runs[nruns++] = (struct dec_run){.k = k[p], .v = v[p], .p = p, .m = m};
            }
            runs[r].seq[runs[r].nseq++] = b;
        }
    }
    qsort(runs, (size_t)nruns, sizeof *runs, run_cmp);
    const int group = a->heads / a->kv_heads, slots = em_qmm_threads();
    struct dec_attn A = {.a = a, .b0 = b0, .B = B, .n_max = n_max, .nruns = nruns,
                         .runs = runs, .sc_slot = (size_t)B * group * n_max};
    float *sc = malloc((size_t)slots * A.sc_slot * sizeof *sc);
    if (!sc) {
        free(runs);
        return EM_E_NOMEM;
    }
    A.sc = sc;
    em_qmm_parallel(dec_attn_task, &A, a->kv_heads, 0);
    free(sc);
    free(runs);
    return EM_OK;
}

em_err em_cpu_attn_decode(void *ctx, const struct em_attn_decode_args *a)
{
    (void)ctx;
    if (!a || a->B < 0 || a->heads < 1 || a->kv_heads < 1 || a->hd < 1 ||
        a->heads % a->kv_heads || (a->B && (!a->o || !a->q || !a->k || !a->v || !a->n)))
        return EM_E_ARG;
    for (int b = 0; b < a->B; b++)
        if (a->n[b] < 1 || !a->k[b] || !a->v[b] || !a->q[b] || !a->o[b]) return EM_E_ARG;
    for (int b0 = 0; b0 < a->B; b0 += DEC_MAX_B) {
        const em_err rc = decode_set(a, b0, a->B - b0 < DEC_MAX_B ? a->B - b0 : DEC_MAX_B);
        if (rc != EM_OK) return rc;
    }
    return EM_OK;
}

/* ---- full / causal attention with cblas_sgemm (below AVX-512) ---------------------------- */

/* Rows r of s[rows, n] (row stride n): keys past n0 + r are masked (weight 0); the rest
 * become softmax probabilities. */
static void softmax_causal(float *s, int rows, int n, int n0)
{
    const int avx2 = em_cpu_level() >= EM_CPU_AVX2;
    for (int r = 0; r < rows; r++) {
        float *x = s + (size_t)r * n;
        int valid = n0 + r + 1 < n ? n0 + r + 1 : n;
        softmax_row(x, valid, avx2);
        for (int j = valid; j < n; j++) x[j] = 0;
    }
}

/* Two cblas_sgemm per (query or kv) head and run of rows: scores = q k^T * scale, out = P v.
 * One query row (T == 1) stacks the heads / kv_heads query heads of a kv head into one
 * [group, hd] product, so each K/V row is read once. f16 rows are widened into one f32 copy
 * first. Full attention is the causal case with p0 = n - 1 (every row sees every key). */
em_err em_cpu_attn_sgemm(const struct em_attn_args *a)
{
    const int hd = a->hd, group = a->heads / a->kv_heads, n = a->n, T = a->T;
    const int kd = a->kv_heads * hd, p0 = a->causal ? a->p0 : n - 1;
    const int f16 = a->k16 != NULL;
    const void *const *kr = f16 ? (const void *const *)a->k16 : (const void *const *)a->k;
    const void *const *vr = f16 ? (const void *const *)a->v16 : (const void *const *)a->v;
    float *wide = NULL; /* [2][n][kd] for f16 rows */
    float *sc = malloc((size_t)(T > group ? T : group) * (size_t)n * sizeof *sc);
    if (!sc) return EM_E_NOMEM;
    if (f16) {
        if (!(wide = malloc(2 * (size_t)n * kd * sizeof *wide))) {
            free(sc);
            return EM_E_NOMEM;
        }
        for (int p = 0; p < n; p++)
            for (int c = 0; c < kd; c++) {
                wide[(size_t)p * kd + c] = em_quant_f16_to_f32(a->k16[p][c]);
                wide[(size_t)(n + p) * kd + c] = em_quant_f16_to_f32(a->v16[p][c]);
            }
    }
    const size_t row = (size_t)kd * sizeof(float);
    const int units = T == 1 ? a->kv_heads : a->heads, M = T == 1 ? group : T;
    const int ldq = T == 1 ? hd : a->ldq, ldo = T == 1 ? hd : a->ldo;
    for (int u = 0; u < units; u++) {
        const int kvh = T == 1 ? u : u / group;
        const float *qh = a->q + (T == 1 ? (size_t)u * group * hd : (size_t)u * hd);
        float *oh = a->o + (T == 1 ? (size_t)u * group * hd : (size_t)u * hd);
        for (int p = 0, m; p < n; p += m) {
            const float *k = wide ? wide + (size_t)p * kd : (const float *)kr[p];
            m = wide ? n - p : run_len(kr, vr, p, n, row);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, m, hd, a->scale, qh, ldq,
                        k + (size_t)kvh * hd, kd, 0.0f, sc + p, n);
        }
        softmax_causal(sc, M, n, T == 1 ? n - 1 : p0);
        for (int p = 0, m; p < n; p += m) {
            const float *v = wide ? wide + (size_t)(n + p) * kd : (const float *)vr[p];
            m = wide ? n - p : run_len(kr, vr, p, n, row);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, hd, m, 1.0f, sc + p, n,
                        v + (size_t)kvh * hd, kd, p ? 1.0f : 0.0f, oh, ldo);
        }
    }
    free(wide);
    free(sc);
    return EM_OK;
}
