/* model/kernels/cpu/attn_avx512.c - one (head, query block) task of em_attn_full (attn.h):
 * scores in 8 x 32 register tiles, softmax rows, then p v in 6 x 64 tiles. Compiled with
 * -mavx512*; reached only through attn.c after em_cpu_level() says AVX512. Rows past the
 * block's end are computed as copies of its last row (clamped pointers) and never stored,
 * so nothing outside q, kt, vp and the block's rows of s is read. Small transposed copies
 * of q's tile rows (after s in the scratch) keep the score tile's broadcasts on one pointer. */
#include <immintrin.h>
#include <math.h>

#include "model/kernels/cpu/attn.h"
#include "model/kernels/cpu/vecmath.h"

/* the tiles' accumulators must live in registers: unroll the row loops fully */
#define UNROLL _Pragma("GCC unroll 8")
#define RS 8 /* score tile rows */
#define RO 6 /* output tile rows */

static inline int clamp_row(int r, int qb) { return r < qb ? r : qb - 1; }

/* s[r, j] = scale * q_r . k_j for r < qb rounded up to RS, j < ns (a multiple of 32; s's row
 * stride; kt [hd, tp] zero-padded past the keys, ns <= tp). The
 * RS rows of q are first copied transposed into qt [hd, RS], so the tile's broadcasts walk
 * one pointer (eight row pointers cost spills). */
static void scores(const float *q, int ld, int hd, int qb, int ns, int tp, const float *kt,
                   float scale, float *s, float *qt)
{
    const __m512 vs = _mm512_set1_ps(scale);
    for (int r0 = 0; r0 < qb; r0 += RS) {
        for (int r = 0; r < RS; r++) {
            const float *qr = q + (size_t)clamp_row(r0 + r, qb) * ld;
            for (int c = 0; c < hd; c++) qt[c * RS + r] = qr[c];
        }
        for (int j0 = 0; j0 < ns; j0 += 32) {
            __m512 a[RS][2];
            UNROLL for (int r = 0; r < RS; r++) a[r][0] = a[r][1] = _mm512_setzero_ps();
            const float *kc = kt + j0, *qc = qt;
            for (int c = 0; c < hd; c++, kc += tp, qc += RS) {
                const __m512 k0 = _mm512_load_ps(kc), k1 = _mm512_load_ps(kc + 16);
                UNROLL for (int r = 0; r < RS; r++) {
                    const __m512 b = _mm512_set1_ps(qc[r]);
                    a[r][0] = _mm512_fmadd_ps(b, k0, a[r][0]);
                    a[r][1] = _mm512_fmadd_ps(b, k1, a[r][1]);
                }
            }
            for (int r = 0; r < RS && r0 + r < qb; r++) {
                float *sr = s + (size_t)(r0 + r) * ns + j0;
                _mm512_store_ps(sr, _mm512_mul_ps(a[r][0], vs));
                _mm512_store_ps(sr + 16, _mm512_mul_ps(a[r][1], vs));
            }
        }
    }
}

/* o[r, c] = inv[r] * sum_j s[r, j] vp[j, c] for r < qb, c < hd (six row pointers: few
 * enough for the registers, and a transposed copy of p would cost a scalar move per
 * product row and column). */
static void weighted_sum(const float *s, const float *inv, int qb, int T, int tp,
                         const float *vp, int hd, int hdp, float *o, int ld)
{
    for (int r0 = 0; r0 < qb; r0 += RO) {
        const float *pr[RO];
        for (int r = 0; r < RO; r++) pr[r] = s + (size_t)clamp_row(r0 + r, qb) * tp;
        for (int c0 = 0; c0 < hdp; c0 += 64) {
            __m512 a[RO][4];
            UNROLL for (int r = 0; r < RO; r++)
                a[r][0] = a[r][1] = a[r][2] = a[r][3] = _mm512_setzero_ps();
            const float *vj = vp + c0;
            for (int j = 0; j < T; j++, vj += hdp) {
                const __m512 v0 = _mm512_load_ps(vj), v1 = _mm512_load_ps(vj + 16);
                const __m512 v2 = _mm512_load_ps(vj + 32), v3 = _mm512_load_ps(vj + 48);
                UNROLL for (int r = 0; r < RO; r++) {
                    const __m512 p = _mm512_set1_ps(pr[r][j]);
                    a[r][0] = _mm512_fmadd_ps(p, v0, a[r][0]);
                    a[r][1] = _mm512_fmadd_ps(p, v1, a[r][1]);
                    a[r][2] = _mm512_fmadd_ps(p, v2, a[r][2]);
                    a[r][3] = _mm512_fmadd_ps(p, v3, a[r][3]);
                }
            }
            for (int r = 0; r < RO && r0 + r < qb; r++) {
                float *orow = o + (size_t)(r0 + r) * ld + c0;
                const __m512 f = _mm512_set1_ps(inv[r0 + r]);
                for (int g = 0; g < 4; g++) {
                    const int c = c0 + 16 * g;
                    if (c >= hd) break;
                    const int left = hd - c;
                    const __mmask16 m = left >= 16 ? (__mmask16)0xFFFF
                                                   : (__mmask16)((1u << left) - 1u);
                    _mm512_mask_storeu_ps(orow + 16 * g, m, _mm512_mul_ps(a[r][g], f));
                }
            }
        }
    }
}

/* em_exp8 (vecmath.h) on 16 lanes: the same operations lane by lane, so the same bits. */
static inline __m512 exp16(__m512 x)
{
    x = _mm512_min_ps(_mm512_set1_ps(EM_EXP_HI), x); /* x second: NaN stays NaN */
    x = _mm512_max_ps(_mm512_set1_ps(EM_EXP_LO), x);
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(EM_EXP_LOG2E)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EM_EXP_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EM_EXP_LN2_LO), r);
    __m512 p = _mm512_set1_ps(EM_EXP_P0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EM_EXP_P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EM_EXP_P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EM_EXP_P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EM_EXP_P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EM_EXP_P5));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    const __m512i e = _mm512_slli_epi32(
        _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

/* em_exp_shift_row8 (vecmath.h) with 16-lane max and exp: the sum still goes through one
 * 8-lane accumulator in the same order (each 16 as its low then its high 8), so the row's
 * weights and sum have the bits of the 8-lane version, at about half the instructions. */
float em_attn_exp_shift_row_avx512(float *x, int n)
{
    int j = 0;
    __m512 m16 = _mm512_set1_ps(-INFINITY);
    for (; j + 16 <= n; j += 16) m16 = _mm512_max_ps(m16, _mm512_loadu_ps(x + j));
    float mx = _mm512_reduce_max_ps(m16);
    for (; j < n; j++) mx = x[j] > mx ? x[j] : mx;
    const __m512 mxv = _mm512_set1_ps(mx);
    __m256 s8 = _mm256_setzero_ps();
    for (j = 0; j + 16 <= n; j += 16) {
        const __m512 ev = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + j), mxv));
        _mm512_storeu_ps(x + j, ev);
        s8 = _mm256_add_ps(s8, _mm512_castps512_ps256(ev));
        s8 = _mm256_add_ps(s8, _mm512_extractf32x8_ps(ev, 1));
    }
    for (; j + 8 <= n; j += 8) {
        const __m256 ev = em_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j), _mm256_set1_ps(mx)));
        _mm256_storeu_ps(x + j, ev);
        s8 = _mm256_add_ps(s8, ev);
    }
    float sum = em_hsum8(s8);
    for (; j < n; j++) sum += (x[j] = em_exp_f(x[j] - mx));
    return sum;
}

/* r[0..16) (row i: 16 floats) -> r[c] = element c of every row (lane i = row i). Per 128-bit
 * lane: pairs (unpack), then 4 x 4 blocks (shuffle); then the lanes across registers. */
static inline void transpose16(__m512 r[16])
{
    __m512 t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) { /* u[4i + k], lane L: rows 4i .. 4i+3 of element 4L + k */
        u[4 * i + 0] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int k = 0; k < 4; k++) {
        const __m512 x0 = _mm512_shuffle_f32x4(u[k], u[4 + k], 0x44);
        const __m512 x1 = _mm512_shuffle_f32x4(u[k], u[4 + k], 0xEE);
        const __m512 x2 = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], 0x44);
        const __m512 x3 = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], 0xEE);
        r[k] = _mm512_shuffle_f32x4(x0, x2, 0x88);
        r[4 + k] = _mm512_shuffle_f32x4(x0, x2, 0xDD);
        r[8 + k] = _mm512_shuffle_f32x4(x1, x3, 0x88);
        r[12 + k] = _mm512_shuffle_f32x4(x1, x3, 0xDD);
    }
}

int em_attn_pack_kt_avx512(const float *const *k, const uint16_t *const *k16, size_t off,
                           int n, int hd, int tp, float *kt)
{
    int j0 = 0;
    if (hd % 16) return 0;
    for (; j0 + 16 <= n; j0 += 16)
        for (int c0 = 0; c0 < hd; c0 += 16) {
            __m512 r[16];
            for (int i = 0; i < 16; i++)
                r[i] = k16 ? _mm512_cvtph_ps(_mm256_loadu_si256(
                                 (const __m256i *)(k16[j0 + i] + off + (size_t)c0)))
                           : _mm512_loadu_ps(k[j0 + i] + off + (size_t)c0);
            transpose16(r);
            for (int c = 0; c < 16; c++)
                _mm512_store_ps(kt + (size_t)(c0 + c) * (size_t)tp + (size_t)j0, r[c]);
        }
    return j0;
}

void em_attn_block_avx512(const float *q, int ldq, int hd, int qb, int ncols, int valid0,
                          int step, int tp, const float *kt, const float *vp, int hdp,
                          float scale, float *s, float *o, int ldo)
{
    float inv[EM_ATTN_QB];
    const int tpb = (ncols + 31) & ~31; /* score columns computed (kt is zero past n) */
    scores(q, ldq, hd, qb, tpb, tp, kt, scale, s, s + (size_t)EM_ATTN_QB * tpb);
    for (int r = 0; r < qb; r++) {
        float *sr = s + (size_t)r * tpb;
        int valid = valid0 + r * step;
        if (valid > ncols) valid = ncols;
        inv[r] = 1.0f / em_attn_exp_shift_row_avx512(sr, valid);
        for (int j = valid; j < ncols; j++) sr[j] = 0.0f; /* masked: weight 0 */
    }
    weighted_sum(s, inv, qb, ncols, tpb, vp, hd, hdp, o, ldo);
}
