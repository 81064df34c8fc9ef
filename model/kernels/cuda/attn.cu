/* model/kernels/cuda/attn.cu - online-softmax attention, one warp per (query row, head). */
#include "model/kernels/cuda/attn.cuh"

#include <stdlib.h>
#include <string.h>

#define SL (EM_CUDA_ATTN_MAX_HD / 32) /* columns per lane */

__device__ __forceinline__ float ld(const void *row, size_t i, int f16)
{
    return f16 ? __half2float(((const __half *)row)[i]) : ((const float *)row)[i];
}

/* o[0 .. hd) = softmax_j(scale * q . k_j) v_j over j < nvalid, columns off .. off + hd of
 * each row (the kv head's). */
__device__ void attend(const float *q, float *o, const void *const *kr, const void *const *vr,
                       int nvalid, size_t off, int hd, float scale, int f16)
{
    const int lane = threadIdx.x % 32;
    float qv[SL], acc[SL];
    for (int s = 0; s < SL; s++) {
        const int col = lane + 32 * s;
        qv[s] = col < hd ? q[col] : 0.0f;
        acc[s] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    for (int j = 0; j < nvalid; j++) {
        float dot = 0.0f;
        for (int s = 0; s < SL; s++) {
            const int col = lane + 32 * s;
            if (col < hd) dot += qv[s] * ld(kr[j], off + col, f16);
        }
        dot = em_cuda_warp_sum(dot) * scale;
        const float mn = fmaxf(m, dot), corr = expf(m - mn), p = expf(dot - mn);
        l = l * corr + p;
        for (int s = 0; s < SL; s++) {
            const int col = lane + 32 * s;
            acc[s] = acc[s] * corr + (col < hd ? p * ld(vr[j], off + col, f16) : 0.0f);
        }
        m = mn;
    }
    for (int s = 0; s < SL; s++) {
        const int col = lane + 32 * s;
        if (col < hd) o[col] = acc[s] / l;
    }
}

/* grid (heads, T / 4 rounded up), 4 warps per block: warp w takes query row blockIdx.y * 4 + w */
__global__ void k_attn(float *o, int ldo, const float *q, int ldq, const void *const *kr,
                       const void *const *vr, int T, int n, int p0, int causal, int heads,
                       int kv_heads, int hd, float scale, int f16)
{
    const int h = blockIdx.x, i = blockIdx.y * 4 + threadIdx.x / 32;
    if (i >= T) return;
    const int g = h / (heads / kv_heads), valid = causal ? p0 + i + 1 : n;
    attend(q + (size_t)i * ldq + (size_t)h * hd, o + (size_t)i * ldo + (size_t)h * hd, kr, vr,
           valid, (size_t)g * hd, hd, scale, f16);
}

/* grid (heads, B / 4 rounded up): warp w takes sequence blockIdx.y * 4 + w */
__global__ void k_attn_decode(float *const *o, const float *const *q, const void *const *kr,
                              const void *const *vr, const long long *first, const int *n, int B,
                              int heads, int kv_heads, int hd, float scale, int f16)
{
    const int h = blockIdx.x, b = blockIdx.y * 4 + threadIdx.x / 32;
    if (b >= B) return;
    const int g = h / (heads / kv_heads);
    attend(q[b] + (size_t)h * hd, o[b] + (size_t)h * hd, kr + first[b], vr + first[b], n[b],
           (size_t)g * hd, hd, scale, f16);
}

static bool shape_ok(int heads, int kv_heads, int hd)
{
    return heads >= 1 && kv_heads >= 1 && heads % kv_heads == 0 && hd >= 1 &&
           hd <= EM_CUDA_ATTN_MAX_HD;
}

em_err em_cuda_attn(void *ctx, const struct em_attn_args *a)
{
    struct em_cuda_ctx *c = (struct em_cuda_ctx *)ctx;
    EM_CUDA_ENTER(c);
    if (!a || a->T < 1 || a->n < a->T || !shape_ok(a->heads, a->kv_heads, a->hd) || !a->o ||
        !a->q || a->ldq < a->heads * a->hd || a->ldo < a->heads * a->hd ||
        (a->causal ? a->n != a->p0 + a->T : a->n != a->T))
        return EM_E_ARG;
    const int f16 = a->k16 != NULL;
    if (f16 ? (!a->v16 || a->k || a->v) : (!a->k || !a->v || a->v16)) return EM_E_ARG;
    const size_t n = (size_t)a->n;
    const void **tab = (const void **)malloc(2 * n * sizeof *tab);
    if (!tab) return EM_E_NOMEM;
    memcpy(tab, f16 ? (const void *)a->k16 : (const void *)a->k, n * sizeof *tab);
    memcpy(tab + n, f16 ? (const void *)a->v16 : (const void *)a->v, n * sizeof *tab);
    void *dtab = NULL;
    em_err rc = em_cuda_stage(c, tab, 2 * n * sizeof *tab, &dtab);
    free(tab);
    if (rc != EM_OK) return rc;
    const void *const *dk = (const void *const *)dtab;
    dim3 grid((unsigned)a->heads, (unsigned)((a->T + 3) / 4));
    k_attn<<<grid, 128, 0, c->stream>>>(a->o, a->ldo, a->q, a->ldq, dk, dk + n, a->T, a->n, a->p0,
                                        a->causal, a->heads, a->kv_heads, a->hd, a->scale, f16);
    LAUNCH_CHECK();
    return EM_OK;
}

/* One staged blob: [k rows of every sequence][v rows ...][q ptrs B][o ptrs B][first B][n B]. */
em_err em_cuda_attn_decode(void *ctx, const struct em_attn_decode_args *a)
{
    struct em_cuda_ctx *c = (struct em_cuda_ctx *)ctx;
    EM_CUDA_ENTER(c);
    if (!a || a->B < 0 || !shape_ok(a->heads, a->kv_heads, a->hd) ||
        (a->B && (!a->o || !a->q || !a->k || !a->v || !a->n)))
        return EM_E_ARG;
    if (!a->B) return EM_OK;
    size_t rows = 0;
    for (int b = 0; b < a->B; b++) {
        if (a->n[b] < 1 || !a->k[b] || !a->v[b] || !a->q[b] || !a->o[b]) return EM_E_ARG;
        rows += (size_t)a->n[b];
    }
    const size_t B = (size_t)a->B;
    const size_t bytes = (2 * rows + 2 * B) * sizeof(void *) + B * sizeof(long long) + B * sizeof(int);
    char *blob = (char *)malloc(bytes);
    if (!blob) return EM_E_NOMEM;
    const void **kt = (const void **)blob, **vt = kt + rows;
    const float **qp = (const float **)(vt + rows);
    float **op = (float **)(qp + B);
    long long *first = (long long *)(op + B);
    int *nn = (int *)(first + B);
    size_t at = 0;
    for (size_t b = 0; b < B; b++) {
        memcpy(kt + at, a->k[b], (size_t)a->n[b] * sizeof *kt);
        memcpy(vt + at, a->v[b], (size_t)a->n[b] * sizeof *vt);
        first[b] = (long long)at;
        nn[b] = a->n[b];
        qp[b] = a->q[b];
        op[b] = a->o[b];
        at += (size_t)a->n[b];
    }
    void *d = NULL;
    em_err rc = em_cuda_stage(c, blob, bytes, &d);
    free(blob);
    if (rc != EM_OK) return rc;
    const void *const *dk = (const void *const *)d, *const *dv = dk + rows;
    const float *const *dq = (const float *const *)(dv + rows);
    float *const *dop = (float *const *)(dq + B);
    const long long *dfirst = (const long long *)(dop + B);
    const int *dn = (const int *)(dfirst + B);
    dim3 grid((unsigned)a->heads, (unsigned)((a->B + 3) / 4));
    k_attn_decode<<<grid, 128, 0, c->stream>>>(dop, dq, dk, dv, dfirst, dn, a->B, a->heads,
                                               a->kv_heads, a->hd, a->scale, a->f16);
    LAUNCH_CHECK();
    return EM_OK;
}
