/* model/kernels/cpu/igemm_avx512.c - the AVX-512 VNNI body of em_igemm (igemm.h).
 * Compiled with -mavx512*; only reached through em_igemm() after em_cpu_level() says so.
 *
 * vpdpbusd multiplies u8 x s8: the weight codes are made unsigned in the repacked tile
 * (wu = w + 128, one xor) and the activation codes stay signed, so for one 32-block
 *     sum(wu * xq) = sum(w * xq) + 128 * sum(xq)
 * and the int32 accumulator starts at corr = -128 * sum(xq) (per token and block, computed
 * when the activations are quantized): the block's integer dot is exact, then
 *     acc += float(dot) * (dw * dx)                      (f32, block order, one fma)
 * (With the signs the other way round the correction was per row, kept in the tile and
 * copied into twelve accumulators per block; this way it is one broadcast per token, and
 * the GEMM measured 1-3 % faster at the model's shapes.)
 *
 * Activation layout (quantized once per call, shared read-only by all threads): tokens in
 * groups of TN = EM_IGEMM_TN (the last group padded with zero codes, scales and
 * corrections); group G, block b holds its TN tokens' 32 codes back to back (TN * 32
 * bytes), the TN scales and the TN corrections in separate arrays [G][b][TN].
 * Tile layout (per thread, one tile of TR = 32 rows at a time, rows past `out` zero): per
 * block b, 1152 bytes: [group 0 codes: 8 x 64][group 1 codes: 8 x 64][dw g0: 16 f32]
 * [dw g1: 16 f32]; code zmm j of a group holds, for each of its 16 rows, the block's bytes
 * 4j .. 4j + 3 (one dword lane per row), plus 128. The tile is
 * built from 32-byte (q8_0) / 16-byte (q4_0) loads of each row's block codes, transposed in
 * registers, and the 16 f16 scales copied one by one (no byte outside W's blocks is read;
 * plain loads, so ASan sees every access).
 * Kernel: 2 groups x TN tokens, 12 int32 + 12 f32 accumulators, one activation dword
 * broadcast serving both groups. */
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "model/kernels/cpu/igemm.h"
#include "model/kernels/cpu/qmatmul.h"
#include "model/kernels/quant.h"

#define INLINE static inline __attribute__((always_inline))
#define TN EM_IGEMM_TN
#define TR EM_IGEMM_TR
#define TILE_BLOCK 1152 /* tile bytes per 32-block (TR rows) */
#define OFF_DW 1024
/* activation rows quantized per task */
#define QUANT_GROUPS 8

/* ---- activations ----------------------------------------------------------------------- */

/* One 32-block: codes as em_qdot_quantize_x (qdot_generic.c) computes them, bit for bit:
 * amax as fmaxf over |x| (a NaN element is skipped: vmaxps returns its second operand),
 * id = 127 / amax (0 for amax == 0), d = amax / 127, q = cvtps2dq(x * id) (round to nearest
 * even, like lrintf), saturated to int8 as the clamp does (NaN and overflow give -128 both
 * ways). */
INLINE void quant_block(const float *xb, __m128i *q0, __m128i *q1, float *d)
{
    const __m512 a = _mm512_loadu_ps(xb), b = _mm512_loadu_ps(xb + 16);
    __m512 m = _mm512_max_ps(_mm512_abs_ps(a), _mm512_setzero_ps());
    m = _mm512_max_ps(_mm512_abs_ps(b), m);
    const float amax = _mm512_reduce_max_ps(m);
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    *d = amax / 127.0f;
    const __m512 vid = _mm512_set1_ps(id);
    *q0 = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(a, vid)));
    *q1 = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(b, vid)));
}

void em_igemm_quantize_x_avx512(const float *x, int n, int in, int8_t *q, float *d)
{
    const int nb = in / EM_QK;
    for (int j = 0; j < n; j++)
        for (int b = 0; b < nb; b++) {
            const size_t o = (size_t)j * in + (size_t)b * EM_QK;
            __m128i q0, q1;
            quant_block(x + o, &q0, &q1, d + (size_t)j * nb + b);
            _mm_storeu_si128((__m128i *)(q + o), q0);
            _mm_storeu_si128((__m128i *)(q + o + 16), q1);
        }
}

struct call {
    const float *x;
    int n, in, nb, out, wtype, ngroups;
    const uint8_t *w;
    size_t rs;       /* W row bytes */
    int8_t *xa;      /* [ngroups][nb][TN][32] codes */
    float *xd;       /* [ngroups][nb][TN] scales */
    int32_t *xc;     /* [ngroups][nb][TN] -128 * sum(codes) */
    uint8_t *tiles;  /* one tile per slot */
    size_t tile_bytes;
    float *y;
};

/* Token groups [G0, G0 + QUANT_GROUPS) into the grouped layout. */
static void quant_task(void *ctx, int task, int slot)
{
    (void)slot;
    const struct call *c = ctx;
    const int nb = c->nb;
    int g1 = (task + 1) * QUANT_GROUPS;
    if (g1 > c->ngroups) g1 = c->ngroups;
    for (int g = task * QUANT_GROUPS; g < g1; g++)
        for (int t = 0; t < TN; t++) {
            const int tok = g * TN + t;
            for (int b = 0; b < nb; b++) {
                const size_t gb = (size_t)g * nb + b;
                int8_t *qa = c->xa + gb * (TN * EM_QK) + (size_t)t * EM_QK;
                float *dd = c->xd + gb * TN + t;
                int32_t *cc = c->xc + gb * TN + t;
                if (tok >= c->n) { /* padding: code 0, scale 0, no correction */
                    memset(qa, 0, EM_QK);
                    *dd = 0.0f;
                    *cc = 0;
                    continue;
                }
                __m128i q0, q1;
                quant_block(c->x + (size_t)tok * c->in + (size_t)b * EM_QK, &q0, &q1, dd);
                _mm_storeu_si128((__m128i *)qa, q0);
                _mm_storeu_si128((__m128i *)(qa + 16), q1);
                /* the 32 codes' sum: widened to 16 bits, pairs to 32, then across lanes */
                const __m256i w16 = _mm256_add_epi16(_mm256_cvtepi8_epi16(q0),
                                                     _mm256_cvtepi8_epi16(q1));
                const __m256i w32 = _mm256_madd_epi16(w16, _mm256_set1_epi16(1));
                __m128i h = _mm_add_epi32(_mm256_castsi256_si128(w32),
                                          _mm256_extracti128_si256(w32, 1));
                h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4e));
                h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xb1));
                *cc = -128 * _mm_cvtsi128_si32(h);
            }
        }
}

/* ---- weight tile ------------------------------------------------------------------------ */

/* 16 rows x 8 dwords -> 8 zmm, zmm j = dword j of each row (lane r = row r). p[i] holds
 * row i in dwords 0..7 and row i + 8 in dwords 8..15. The AVX2 8x8 transpose in each 256-bit
 * half, then one two-source qword permute joins the halves' 128-bit lanes. */
INLINE void transpose16x8(const __m512i p[8], __m512i out[8])
{
    __m512i t[8], u[8];
    for (int k = 0; k < 4; k++) {
        t[2 * k] = _mm512_unpacklo_epi32(p[2 * k], p[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_epi32(p[2 * k], p[2 * k + 1]);
    }
    for (int k = 0; k < 2; k++) {
        u[4 * k + 0] = _mm512_unpacklo_epi64(t[4 * k], t[4 * k + 2]);
        u[4 * k + 1] = _mm512_unpackhi_epi64(t[4 * k], t[4 * k + 2]);
        u[4 * k + 2] = _mm512_unpacklo_epi64(t[4 * k + 1], t[4 * k + 3]);
        u[4 * k + 3] = _mm512_unpackhi_epi64(t[4 * k + 1], t[4 * k + 3]);
    }
    const __m512i lo = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0);
    const __m512i hi = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
    for (int j = 0; j < 4; j++) {
        out[j] = _mm512_permutex2var_epi64(u[j], lo, u[4 + j]);
        out[j + 4] = _mm512_permutex2var_epi64(u[j], hi, u[4 + j]);
    }
}

/* The 32 codes of one block as s8 (q4_0: nibble - 8, elements 0..15 from the low nibbles).
 * Reads only the block's code bytes. */
INLINE __m256i block_codes(int wtype, const uint8_t *blk)
{
    if (wtype == EM_WT_Q8_0) return _mm256_loadu_si256((const __m256i *)(blk + 2));
    const __m128i v = _mm_loadu_si128((const __m128i *)(blk + 2));
    const __m128i m = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
    const __m128i lo = _mm_sub_epi8(_mm_and_si128(v, m), eight);
    const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(v, 4), m), eight);
    return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
}

/* Rows [r0, r0 + 32) (those < out) of W into tile; rows past out get zero codes and scales. */
static void repack(const struct call *c, int r0, uint8_t *tile)
{
    const size_t bs = c->wtype == EM_WT_Q8_0 ? sizeof(struct em_block_q8_0)
                                             : sizeof(struct em_block_q4_0);
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    for (int g = 0; g < TR / 16; g++) {
        const int rg = r0 + 16 * g;
        const int valid = c->out - rg <= 0 ? 0 : c->out - rg >= 16 ? 16 : c->out - rg;
        const uint8_t *base = c->w + (size_t)(valid ? rg : 0) * c->rs;
        for (int b = 0; b < c->nb; b++) {
            uint8_t *tb = tile + (size_t)b * TILE_BLOCK;
            const uint8_t *blk = base + (size_t)b * bs;
            __m512i p[8], code[8];
            for (int i = 0; i < 8; i++) {
                const __m256i a = i < valid ? block_codes(c->wtype, blk + (size_t)i * c->rs)
                                            : _mm256_setzero_si256();
                const __m256i d = i + 8 < valid
                                      ? block_codes(c->wtype, blk + (size_t)(i + 8) * c->rs)
                                      : _mm256_setzero_si256();
                p[i] = _mm512_inserti64x4(_mm512_castsi256_si512(a), d, 1);
            }
            transpose16x8(p, code);
            for (int j = 0; j < 8; j++)
                _mm512_store_si512((__m512i *)(tb + 512 * g + 64 * j),
                                   _mm512_xor_si512(code[j], flip));
            uint16_t dh[16] = {0};
            for (int i = 0; i < valid; i++) memcpy(&dh[i], blk + (size_t)i * c->rs, 2);
            const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)dh));
            _mm512_store_ps((float *)(tb + OFF_DW + 64 * g), dw);
        }
    }
}

/* ---- kernel ----------------------------------------------------------------------------- */

/* y[t * ldy + (0..31)] for the TN tokens of one group (only the first nt stored; rows by
 * masks m0, m1) = the tile's 32 rows dotted with the group's activations. */
INLINE void kernel(const uint8_t *tile, int nb, const int8_t *xa, const float *xd,
                   const int32_t *xc, float *y, size_t ldy, int nt, __mmask16 m0, __mmask16 m1)
{
    __m512 f0[TN], f1[TN];
#pragma GCC unroll 8
    for (int t = 0; t < TN; t++) f0[t] = f1[t] = _mm512_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const uint8_t *tb = tile + (size_t)b * TILE_BLOCK;
        const int8_t *ab = xa + (size_t)b * (TN * EM_QK);
        const int32_t *cb = xc + (size_t)b * TN;
        __m512i a0[TN], a1[TN];
#pragma GCC unroll 8
        for (int t = 0; t < TN; t++) a0[t] = a1[t] = _mm512_set1_epi32(cb[t]);
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            const __m512i w0 = _mm512_load_si512((const __m512i *)(tb + 64 * j));
            const __m512i w1 = _mm512_load_si512((const __m512i *)(tb + 512 + 64 * j));
#pragma GCC unroll 8
            for (int t = 0; t < TN; t++) {
                int32_t v;
                memcpy(&v, ab + t * EM_QK + 4 * j, 4);
                const __m512i xb = _mm512_set1_epi32(v);
                a0[t] = _mm512_dpbusd_epi32(a0[t], w0, xb); /* u8 weights x s8 codes */
                a1[t] = _mm512_dpbusd_epi32(a1[t], w1, xb);
            }
        }
        const __m512 d0 = _mm512_load_ps((const float *)(tb + OFF_DW));
        const __m512 d1 = _mm512_load_ps((const float *)(tb + OFF_DW + 64));
        const float *db = xd + (size_t)b * TN;
#pragma GCC unroll 8
        for (int t = 0; t < TN; t++) {
            const __m512 s = _mm512_set1_ps(db[t]);
            f0[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a0[t]), _mm512_mul_ps(d0, s), f0[t]);
            f1[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a1[t]), _mm512_mul_ps(d1, s), f1[t]);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < TN; t++) {
        if (t >= nt) break;
        _mm512_mask_storeu_ps(y + (size_t)t * ldy, m0, f0[t]);
        _mm512_mask_storeu_ps(y + (size_t)t * ldy + 16, m1, f1[t]);
    }
}

/* One row tile: repack, then every token group. */
static void tile_task(void *ctx, int task, int slot)
{
    const struct call *c = ctx;
    uint8_t *tile = c->tiles + (size_t)slot * c->tile_bytes;
    const int r0 = task * TR;
    repack(c, r0, tile);
    const int rows = c->out - r0 < TR ? c->out - r0 : TR;
    const __mmask16 m0 = (__mmask16)(rows >= 16 ? 0xffffu : (1u << rows) - 1u);
    const __mmask16 m1 = (__mmask16)(rows >= 32 ? 0xffffu : rows <= 16 ? 0u
                                                                      : (1u << (rows - 16)) - 1u);
    const size_t ga = (size_t)c->nb * TN * EM_QK, gd = (size_t)c->nb * TN;
    for (int g = 0; g < c->ngroups; g++) {
        const int nt = c->n - g * TN < TN ? c->n - g * TN : TN;
        kernel(tile, c->nb, c->xa + g * ga, c->xd + g * gd, c->xc + g * gd,
               c->y + (size_t)g * TN * c->out + r0, (size_t)c->out, nt, m0, m1);
    }
}

em_err em_igemm_avx512(float *y, const float *x, int n, int in, int out, int wtype,
                       const uint8_t *w, int threads)
{
    struct call c = {
        .x = x, .n = n, .in = in, .nb = in / EM_QK, .out = out, .wtype = wtype,
        .ngroups = (n + TN - 1) / TN, .w = w, .rs = em_wtype_row_size(wtype, in), .y = y,
    };
    const size_t np = (size_t)c.ngroups * TN;
    c.tile_bytes = (size_t)c.nb * TILE_BLOCK;
    const size_t act = (np * in + 63) & ~(size_t)63;
    const size_t sc = (np * c.nb * sizeof(float) + 63) & ~(size_t)63;
    const size_t nslots = (size_t)em_qmm_threads();
    uint8_t *mem = aligned_alloc(64, act + 2 * sc + nslots * c.tile_bytes);
    if (!mem) return EM_E_NOMEM;
    c.xa = (int8_t *)mem;
    c.xd = (float *)(mem + act);
    c.xc = (int32_t *)(mem + act + sc);
    c.tiles = mem + act + 2 * sc;
    em_qmm_parallel(quant_task, &c, (c.ngroups + QUANT_GROUPS - 1) / QUANT_GROUPS, threads);
    em_qmm_parallel(tile_task, &c, (out + TR - 1) / TR, threads);
    free(mem);
    return EM_OK;
}
