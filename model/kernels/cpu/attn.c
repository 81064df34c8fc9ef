/* model/kernels/cpu/attn.c - em_attn_full (attn.h): argument checks, the per-head repack of
 * k and v, and the (head, query block) tasks on the qmatmul pool. */
#include "model/kernels/cpu/attn.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/kernels/cpu/cpufeat.h"
#include "model/kernels/cpu/qmatmul.h"

struct job {
    const float *q, *k, *v;
    float *o, *kt, *vp, *s;
    int T, heads, hd, ld, tp, hdp, nqb;
    size_t s_floats; /* per slot */
    float scale;
};

static void *alloc64(size_t floats)
{
    size_t bytes = (floats * sizeof(float) + 63) & ~(size_t)63;
    return aligned_alloc(64, bytes ? bytes : 64);
}

/* kt_h[c, j] = k[j, h*hd + c] (zero for j >= T); vp_h[j, c] = v[j, h*hd + c] (zero c >= hd). */
static void pack_task(void *ctx, int h, int slot)
{
    (void)slot;
    const struct job *jb = ctx;
    float *kt = jb->kt + (size_t)h * jb->hd * jb->tp;
    float *vp = jb->vp + (size_t)h * jb->T * jb->hdp;
    for (int c = 0; c < jb->hd; c++)
        memset(kt + (size_t)c * jb->tp + jb->T, 0, (size_t)(jb->tp - jb->T) * sizeof(float));
    for (int j = 0; j < jb->T; j++) {
        const float *kr = jb->k + (size_t)j * jb->ld + (size_t)h * jb->hd;
        const float *vr = jb->v + (size_t)j * jb->ld + (size_t)h * jb->hd;
        float *vo = vp + (size_t)j * jb->hdp;
        for (int c = 0; c < jb->hd; c++) kt[(size_t)c * jb->tp + j] = kr[c];
        memcpy(vo, vr, (size_t)jb->hd * sizeof(float));
        memset(vo + jb->hd, 0, (size_t)(jb->hdp - jb->hd) * sizeof(float));
    }
}

static void block_task(void *ctx, int task, int slot)
{
    const struct job *jb = ctx;
    const int h = task / jb->nqb, i0 = (task % jb->nqb) * EM_ATTN_QB;
    const int qb = jb->T - i0 < EM_ATTN_QB ? jb->T - i0 : EM_ATTN_QB;
    em_attn_block_avx512(jb->q + (size_t)h * jb->hd, jb->ld, jb->hd, i0, qb, jb->T, jb->tp,
                         jb->kt + (size_t)h * jb->hd * jb->tp,
                         jb->vp + (size_t)h * jb->T * jb->hdp, jb->hdp, jb->scale,
                         jb->s + (size_t)slot * jb->s_floats, jb->o + (size_t)h * jb->hd);
}

em_err em_attn_full(float *o, const float *q, const float *k, const float *v, int T, int heads,
                    int hd, int ld, float scale)
{
    if (!o || !q || !k || !v || T < 1 || heads < 1 || hd < 1 || ld < heads * hd ||
        T > (1 << 20) || hd > (1 << 12))
        return EM_E_ARG;
    if (em_cpu_level() < EM_CPU_AVX512) return EM_E_UNSUPPORTED;
    struct job jb = {.q = q, .k = k, .v = v, .o = o, .T = T, .heads = heads, .hd = hd,
                     .ld = ld, .scale = scale};
    jb.tp = (T + 31) & ~31;
    jb.hdp = (hd + 63) & ~63;
    jb.nqb = (T + EM_ATTN_QB - 1) / EM_ATTN_QB;
    jb.s_floats = ((size_t)EM_ATTN_QB * jb.tp + (size_t)8 * hd + 15) & ~(size_t)15;
    const int slots = em_qmm_threads();
    jb.kt = alloc64((size_t)heads * hd * jb.tp);
    jb.vp = alloc64((size_t)heads * T * jb.hdp);
    jb.s = alloc64((size_t)slots * jb.s_floats);
    em_err rc = EM_E_NOMEM;
    if (jb.kt && jb.vp && jb.s) {
        em_qmm_parallel(pack_task, &jb, heads, 0);
        em_qmm_parallel(block_task, &jb, heads * jb.nqb, 0);
        rc = EM_OK;
    }
    free(jb.kt);
    free(jb.vp);
    free(jb.s);
    return rc;
}
