/* model/kernels/cpu/attn.c - em_attn (attn.h): argument checks, the per-kv-head repack of
 * k and v, and the (query head, query block) tasks on the qmatmul pool. */
#include "model/kernels/cpu/attn.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/kernels/cpu/cpufeat.h"
#include "model/kernels/cpu/qmatmul.h"
#include "model/kernels/cpu/vecmath.h"

struct job {
    const struct em_attn_args *a;
    float *kt, *vp, *s;
    int tp, hdp, nqb, group;
    size_t s_floats; /* per slot */
};

static void *alloc64(size_t floats)
{
    size_t bytes = (floats * sizeof(float) + 63) & ~(size_t)63;
    return aligned_alloc(64, bytes ? bytes : 64);
}

/* kt_g[c, j] = k[j][g*hd + c] (zero for j >= n); vp_g[j, c] = v[j][g*hd + c] (zero c >= hd). */
static void pack_task(void *ctx, int g, int slot)
{
    const struct job *jb = ctx;
    const struct em_attn_args *a = jb->a;
    const int hd = a->hd, n = a->n;
    float *kt = jb->kt + (size_t)g * hd * jb->tp;
    float *vp = jb->vp + (size_t)g * n * jb->hdp;
    for (int c = 0; c < hd; c++)
        memset(kt + (size_t)c * jb->tp + n, 0, (size_t)(jb->tp - n) * sizeof(float));
    /* k: 16 rows at a time in registers, the rest (and any hd not a multiple of 16) below */
    const int done = em_attn_pack_kt_avx512(a->k, a->k16, (size_t)g * hd, n, hd, jb->tp, kt);
    float *kw = jb->s + (size_t)slot * jb->s_floats; /* f16: one widened k row */
    for (int j = 0; j < n; j++) {
        const float *kr;
        float *vo = vp + (size_t)j * jb->hdp;
        if (a->k16) {
            em_f16_load8(vo, a->v16[j] + (size_t)g * hd, (size_t)hd);
            if (j >= done) em_f16_load8(kw, a->k16[j] + (size_t)g * hd, (size_t)hd);
            kr = kw;
        } else {
            kr = a->k[j] + (size_t)g * hd;
            memcpy(vo, a->v[j] + (size_t)g * hd, (size_t)hd * sizeof(float));
        }
        if (j >= done)
            for (int c = 0; c < hd; c++) kt[(size_t)c * jb->tp + j] = kr[c];
        memset(vo + hd, 0, (size_t)(jb->hdp - hd) * sizeof(float));
    }
}

static void block_task(void *ctx, int task, int slot)
{
    const struct job *jb = ctx;
    const struct em_attn_args *a = jb->a;
    const int h = task / jb->nqb, i0 = (task % jb->nqb) * EM_ATTN_QB, g = h / jb->group;
    const int qb = a->T - i0 < EM_ATTN_QB ? a->T - i0 : EM_ATTN_QB;
    /* causal: the block's last row sees keys up to position p0 + i0 + qb - 1 */
    const int ncols = a->causal ? a->p0 + i0 + qb : a->n;
    const int valid0 = a->causal ? a->p0 + i0 + 1 : a->n, step = a->causal ? 1 : 0;
    em_attn_block_avx512(a->q + (size_t)i0 * a->ldq + (size_t)h * a->hd, a->ldq, a->hd, qb,
                         ncols, valid0, step, jb->tp, jb->kt + (size_t)g * a->hd * jb->tp,
                         jb->vp + (size_t)g * a->n * jb->hdp, jb->hdp, a->scale,
                         jb->s + (size_t)slot * jb->s_floats,
                         a->o + (size_t)i0 * a->ldo + (size_t)h * a->hd, a->ldo);
}

static bool args_ok(const struct em_attn_args *a)
{
    if (!a || !a->o || !a->q) return false;
    const bool f32 = a->k && a->v && !a->k16 && !a->v16;
    const bool f16 = a->k16 && a->v16 && !a->k && !a->v;
    if (!f32 && !f16) return false;
    if (a->T < 1 || a->heads < 1 || a->kv_heads < 1 || a->hd < 1 || a->hd > (1 << 12) ||
        a->n > (1 << 20) || a->heads % a->kv_heads != 0)
        return false;
    if (a->causal ? (a->p0 < 0 || a->n != a->p0 + a->T) : (a->n != a->T || a->p0 != 0))
        return false;
    return a->ldq >= a->heads * a->hd && a->ldo >= a->heads * a->hd;
}

em_err em_attn(const struct em_attn_args *a)
{
    if (!args_ok(a)) return EM_E_ARG;
    if (em_cpu_level() < EM_CPU_AVX512) return EM_E_UNSUPPORTED;
    struct job jb = {.a = a, .group = a->heads / a->kv_heads};
    jb.tp = (a->n + 31) & ~31;
    jb.hdp = (a->hd + 63) & ~63;
    jb.nqb = (a->T + EM_ATTN_QB - 1) / EM_ATTN_QB;
    jb.s_floats = ((size_t)EM_ATTN_QB * jb.tp + (size_t)8 * a->hd + 15) & ~(size_t)15;
    const int slots = em_qmm_threads();
    jb.kt = alloc64((size_t)a->kv_heads * a->hd * jb.tp);
    jb.vp = alloc64((size_t)a->kv_heads * a->n * jb.hdp);
    jb.s = alloc64((size_t)slots * jb.s_floats);
    em_err rc = EM_E_NOMEM;
    if (jb.kt && jb.vp && jb.s) {
        em_qmm_parallel(pack_task, &jb, a->kv_heads, 0);
        em_qmm_parallel(block_task, &jb, a->heads * jb.nqb, 0);
        rc = EM_OK;
    }
    free(jb.kt);
    free(jb.vp);
    free(jb.s);
    return rc;
}

em_err em_attn_full(float *o, const float *q, const float *k, const float *v, int T, int heads,
                    int hd, int ld, float scale)
{
    if (!o || !q || !k || !v || T < 1 || T > (1 << 20)) return EM_E_ARG;
    const float **rows = malloc(2 * (size_t)T * sizeof *rows);
    if (!rows) return EM_E_NOMEM;
    for (int j = 0; j < T; j++) {
        rows[j] = k + (size_t)j * ld;
        rows[T + j] = v + (size_t)j * ld;
    }
    const struct em_attn_args a = {.o = o, .ldo = ld, .q = q, .ldq = ld, .k = rows,
                                   .v = rows + T, .T = T, .n = T, .heads = heads,
                                   .kv_heads = heads, .hd = hd, .scale = scale};
    em_err rc = em_attn(&a);
    free(rows);
    return rc;
}
