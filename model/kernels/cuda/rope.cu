/* model/kernels/cuda/rope.cu - RoPE on q and k, then k and v into their cache rows. */
#include "model/kernels/cuda/rope.cuh"

#include <stdlib.h>

#define NT 256

__device__ __forceinline__ void rope_heads(float *x, int heads, int hd, const float *cs,
                                           const float *sn)
{
    const int half = hd / 2;
    for (int j = threadIdx.x; j < heads * half; j += NT) {
        float *h = x + (size_t)(j / half) * hd;
        const int i = j % half;
        const float a = h[i], b = h[i + half];
        h[i] = a * cs[i] - b * sn[i];
        h[i + half] = b * cs[i] + a * sn[i];
    }
}

__device__ __forceinline__ unsigned short to_f16(float x)
{
    if (!isnan(x)) x = fminf(fmaxf(x, -65504.0f), 65504.0f);
    return __half_as_ushort(__float2half_rn(x));
}

__global__ void k_rope_kv(struct em_rope_kv_args a, void *const *krow, void *const *vrow)
{
    const int t = blockIdx.x, half = a.hd / 2, kd = a.kv_heads * a.hd;
    const float *cs = a.cs + (size_t)t * half, *sn = a.sn + (size_t)t * half;
    float *k = a.k + (size_t)t * kd;
    const float *v = a.v + (size_t)t * kd;
    rope_heads(a.q + (size_t)t * a.heads * a.hd, a.heads, a.hd, cs, sn);
    rope_heads(k, a.kv_heads, a.hd, cs, sn);
    __syncthreads();
    for (int i = threadIdx.x; i < kd; i += NT) {
        if (a.f16) {
            ((unsigned short *)krow[t])[i] = to_f16(k[i]);
            ((unsigned short *)vrow[t])[i] = to_f16(v[i]);
        } else {
            ((float *)krow[t])[i] = k[i];
            ((float *)vrow[t])[i] = v[i];
        }
    }
}

em_err em_cuda_rope_kv(void *ctx, const struct em_rope_kv_args *a)
{
    struct em_cuda_ctx *c = (struct em_cuda_ctx *)ctx;
    EM_CUDA_ENTER(c);
    if (!a || a->T < 0 || a->heads < 1 || a->kv_heads < 1 || a->hd < 2 || a->hd % 2 ||
        (a->T && (!a->q || !a->k || !a->v || !a->cs || !a->sn || !a->krow || !a->vrow)))
        return EM_E_ARG;
    if (!a->T) return EM_OK;
    void **tab = (void **)malloc(2 * (size_t)a->T * sizeof *tab);
    if (!tab) return EM_E_NOMEM;
    for (int t = 0; t < a->T; t++) {
        tab[t] = a->krow[t];
        tab[a->T + t] = a->vrow[t];
    }
    void *dtab = NULL;
    em_err rc = em_cuda_stage(c, tab, 2 * (size_t)a->T * sizeof *tab, &dtab);
    free(tab);
    if (rc != EM_OK) return rc;
    void *const *dk = (void *const *)dtab;
    k_rope_kv<<<a->T, NT, 0, c->stream>>>(*a, dk, dk + a->T);
    LAUNCH_CHECK();
    return EM_OK;
}
