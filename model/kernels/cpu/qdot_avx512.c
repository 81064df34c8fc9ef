/* model/kernels/cpu/qdot_avx512.c - AVX-512 (F/BW/VL/DQ + VNNI, optional BF16) row kernels.
 * Compiled with -mavx512*; only reached through em_qdot_avx512() after em_cpu_level() says so.
 *
 * q8_0 / q4_0 (two 32-blocks per zmm, their dwords interleaved: even lanes block b, odd
 * lanes block b+1, so a pair's scales are one 8-byte broadcast). vpdpbusd multiplies u8 x s8,
 * so the weights are made unsigned and the activation codes stay signed:
 *   q8_0: u = w + 128 (one xor), sum(u * x) = sum(w * x) + 128 * sum(x)
 *   q4_0: u = nibble,            sum(u * x) = sum((u - 8) * x) + 8 * sum(x)
 * and prep stores -C * sum(x) per block, loaded (8 bytes, masked) as the accumulator start:
 *     s_j  = vpdpbusd(-C * sum x_j, u, x_j)          int32 per lane, exact
 *     acc_j += float(s_j) * (dw * dx_j)               f32 per lane, reduced at row end
 * With more than 4 (q8_0) / 2 (q4_0) activations two rows are done per pass, so each
 * activation load serves both (activations for n = 8 and in = 11008 are 88 KB, beyond L1);
 * with fewer, one row per pass keeps W a single DRAM stream (measured faster).
 * bf16 rows: vdpbf16ps on x rounded to bf16 (if the CPU has AVX512_BF16), else widened + FMA.
 * f16 rows: vcvtph2ps + FMA; f32 rows: FMA. Row ends use masked loads (no over-read). */
#include <immintrin.h>
#include <string.h>

#include "model/kernels/cpu/qdot.h"
#include "model/quant.h"

#define INLINE static inline __attribute__((always_inline))
/* Bytes ahead to prefetch in each quantized weight row stream (a lot of arithmetic per
 * line, and the hardware prefetchers stop at 4 KiB pages). Measured on Zen 4 with W in
 * DRAM, one thread, two rows per pass: q4_0 7 -> 13 GB/s, q8_0 11 -> 13 GB/s; for bf16 rows
 * (less work per line) it measured slightly slower, so they rely on the hardware prefetcher. */
#ifndef EM_QDOT_PREFETCH
#define EM_QDOT_PREFETCH 4096
#endif

/* ---- activation prep ---- */

static size_t z_scratch_size(int wtype, int n, int in)
{
    if (wtype == EM_WT_Q8_0 || wtype == EM_WT_Q4_0)
        return (size_t)n * in + (size_t)n * (in / EM_QK) * (sizeof(float) + sizeof(int32_t));
    if (wtype == EM_WT_BF16) return (size_t)n * in * sizeof(uint16_t);
    return 0;
}

/* Dword k of a and dword k of b side by side: lane 2k from a, lane 2k+1 from b (k < 8). */
INLINE __m512i interleave_pair(__m512i a, __m512i b)
{
    const __m512i idx = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    return _mm512_permutex2var_epi32(a, idx, b);
}

/* 32 floats -> 32 int8 codes in a ymm, the scale amax / 127 and the code sum. */
INLINE __m256i quantize_block(const float *xb, float *d, int32_t *sum)
{
    const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF));
    const __m512 v0 = _mm512_loadu_ps(xb), v1 = _mm512_loadu_ps(xb + 16);
    const __m512 m = _mm512_max_ps(_mm512_and_ps(v0, absmask), _mm512_and_ps(v1, absmask));
    const float amax = _mm512_reduce_max_ps(m);
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    const __m512 vid = _mm512_set1_ps(id);
    const __m512i i0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, vid));
    const __m512i i1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, vid));
    const __m128i q0 = _mm512_cvtsepi32_epi8(i0), q1 = _mm512_cvtsepi32_epi8(i1);
    /* sum of the saturated codes, as the kernels see them */
    *sum = _mm512_reduce_add_epi32(_mm512_add_epi32(_mm512_cvtepi8_epi32(q0),
                                                    _mm512_cvtepi8_epi32(q1)));
    *d = amax / 127.0f;
    return _mm256_set_m128i(q1, q0);
}

/* Codes of a pair of blocks are stored interleaved (interleave_pair), a last odd block as
 * is; scales d[j, b]; corrections s[j, b] = -C * sum. */
static void quantize_x(const float *x, int n, int in, int C, int8_t *q, float *d, int32_t *s)
{
    const int nb = in / EM_QK;
    for (int j = 0; j < n; j++) {
        const float *xj = x + (size_t)j * in;
        int8_t *qj = q + (size_t)j * in;
        float *dj = d + (size_t)j * nb;
        int32_t *sj = s + (size_t)j * nb;
        int b = 0;
        for (; b + 2 <= nb; b += 2) {
            const __m256i qa = quantize_block(xj + b * EM_QK, &dj[b], &sj[b]);
            const __m256i qb = quantize_block(xj + (b + 1) * EM_QK, &dj[b + 1], &sj[b + 1]);
            _mm512_storeu_si512(qj + b * EM_QK, interleave_pair(_mm512_zextsi256_si512(qa),
                                                                _mm512_zextsi256_si512(qb)));
        }
        if (b < nb)
            _mm256_storeu_si256((__m256i *)(qj + b * EM_QK),
                                quantize_block(xj + b * EM_QK, &dj[b], &sj[b]));
        for (b = 0; b < nb; b++) sj[b] *= -C;
    }
}

static void z_prep(int wtype, const float *x, int n, int in, void *scratch, struct em_qact *a)
{
    memset(a, 0, sizeof *a);
    a->n = n;
    a->in = in;
    a->x = x;
    if (wtype == EM_WT_Q8_0 || wtype == EM_WT_Q4_0) {
        const size_t nbt = (size_t)n * (in / EM_QK);
        int8_t *q = scratch;
        float *d = (float *)((uint8_t *)scratch + (size_t)n * in);
        int32_t *s = (int32_t *)(d + nbt);
        quantize_x(x, n, in, wtype == EM_WT_Q8_0 ? 128 : 8, q, d, s);
        a->q = (const uint8_t *)q;
        a->d = d;
        a->s = s;
    } else if (wtype == EM_WT_BF16 && scratch) {
        uint16_t *xb = scratch;
        const size_t total = (size_t)n * in;
        size_t i = 0;
        for (; i + 16 <= total; i += 16)
            _mm256_storeu_si256((__m256i *)(xb + i),
                                (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + i)));
        for (; i < total; i++) xb[i] = em_quant_f32_to_bf16(x[i]);
        a->xb = xb;
    }
}

/* ---- q8_0 / q4_0 ---- */

INLINE uint32_t load_h(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return h;
}

/* Unsigned weights of blocks at b0 and b0 + bs, interleaved like the activations. */
INLINE __m512i load_w_pair(const uint8_t *b0, size_t bs, int q4)
{
    if (!q4) {
        const __m512i w = interleave_pair(
            _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(b0 + 2))),
            _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(b0 + bs + 2))));
        return _mm512_xor_si512(w, _mm512_set1_epi8((char)0x80));
    }
    /* v = [qs_A | qs_B]; lo = elements 0..15 of A | of B, hi = elements 16..31 of A | of B */
    const __m256i v = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)(b0 + bs + 2)),
                                       _mm_loadu_si128((const __m128i *)(b0 + 2)));
    const __m256i lo4 = _mm256_set1_epi8(15);
    const __m256i lo = _mm256_and_si256(v, lo4);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), lo4);
    /* lane 2k: A dword k (lo[k] for k < 4, hi[k - 4] after); lane 2k+1: B dword k (lo[4 + k],
     * hi[k]) */
    const __m512i idx = _mm512_set_epi32(23, 19, 22, 18, 21, 17, 20, 16, 7, 3, 6, 2, 5, 1, 4, 0);
    return _mm512_permutex2var_epi32(_mm512_castsi256_si512(lo), idx,
                                     _mm512_castsi256_si512(hi));
}

/* [dA, dB, dA, dB, ...] */
INLINE __m512 load_d_pair(const uint8_t *b0, size_t bs)
{
    return _mm512_cvtph_ps(_mm256_set1_epi32((int)(load_h(b0) | load_h(b0 + bs) << 16)));
}

/* The unsigned weights of one (last, unpaired) block in a ymm, natural order. */
INLINE __m256i load_w_block(const uint8_t *blk, int q4)
{
    if (!q4)
        return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(blk + 2)),
                                _mm256_set1_epi8((char)0x80));
    const __m128i q = _mm_loadu_si128((const __m128i *)(blk + 2));
    const __m128i lo4 = _mm_set1_epi8(15);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), lo4), _mm_and_si128(q, lo4));
}

/* R (1 or 2) rows at a time share every activation load; N activations share every weight
 * load. Accumulators: R * N zmm. */
INLINE void q_rows_R(const int N, const int R, const int q4, const struct em_qact *a,
                     const uint8_t *row0, size_t rs, float *y, size_t ldy, int r)
{
    const int in = a->in, nb = in / EM_QK;
    const size_t bs = q4 ? sizeof(struct em_block_q4_0) : sizeof(struct em_block_q8_0);
    __m512 acc[2][EM_QDOT_MAX_N];
#pragma GCC unroll 8
    for (int j = 0; j < N; j++) acc[0][j] = acc[1][j] = _mm512_setzero_ps();
    int b = 0;
    for (; b + 2 <= nb; b += 2) {
        __m512i w[2];
        __m512 dw[2];
#pragma GCC unroll 2
        for (int k = 0; k < R; k++) {
            _mm_prefetch((const char *)row0 + k * rs + (size_t)b * bs + EM_QDOT_PREFETCH,
                         _MM_HINT_T0);
            w[k] = load_w_pair(row0 + k * rs + (size_t)b * bs, bs, q4);
            dw[k] = load_d_pair(row0 + k * rs + (size_t)b * bs, bs);
        }
#pragma GCC unroll 8
        for (int j = 0; j < N; j++) {
            const size_t jb = (size_t)j * nb + b;
            const __m512i xv = _mm512_loadu_si512(a->q + (size_t)j * in + (size_t)b * EM_QK);
            const __m512i s0 = _mm512_maskz_loadu_epi32(0x3, a->s + jb); /* lanes 0, 1 */
            double dxp;
            memcpy(&dxp, a->d + jb, sizeof dxp);
            const __m512 dx = _mm512_castpd_ps(_mm512_set1_pd(dxp)); /* [dxA, dxB] x 8 */
#pragma GCC unroll 2
            for (int k = 0; k < R; k++) {
                const __m512i s = _mm512_dpbusd_epi32(s0, w[k], xv);
                acc[k][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw[k], dx),
                                            acc[k][j]);
            }
        }
    }
    float tail[2][EM_QDOT_MAX_N] = {{0}};
    if (b < nb) { /* odd block count: the last block alone, stored as is */
#pragma GCC unroll 2
        for (int k = 0; k < R; k++) {
            const uint8_t *blk = row0 + k * rs + (size_t)b * bs;
            const __m256i w = load_w_block(blk, q4);
            const float dw = _cvtsh_ss((unsigned short)load_h(blk));
#pragma GCC unroll 8
            for (int j = 0; j < N; j++) {
                const size_t jb = (size_t)j * nb + b;
                const __m256i xv = _mm256_loadu_si256(
                    (const __m256i *)(a->q + (size_t)j * in + (size_t)b * EM_QK));
                const __m256i s = _mm256_dpbusd_epi32(_mm256_maskz_loadu_epi32(0x1, a->s + jb),
                                                      w, xv);
                const __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s),
                                                _mm256_extracti128_si256(s, 1));
                const int si = _mm_extract_epi32(h, 0) + _mm_extract_epi32(h, 1) +
                               _mm_extract_epi32(h, 2) + _mm_extract_epi32(h, 3);
                tail[k][j] = dw * a->d[jb] * (float)si;
            }
        }
    }
#pragma GCC unroll 2
    for (int k = 0; k < R; k++)
#pragma GCC unroll 8
        for (int j = 0; j < N; j++)
            y[(size_t)j * ldy + r + k] = _mm512_reduce_add_ps(acc[k][j]) + tail[k][j];
}

INLINE void q_rows_body(const int N, const int q4, const struct em_qact *a, const uint8_t *w,
                        size_t rs, int r0, int r1, float *y, size_t ldy)
{
    int r = r0;
    /* Two rows per pass are two DRAM streams, which measured slower for few activations
     * (q8_0 n = 1, one thread: 13 vs 24 GB/s); for more, sharing the x loads wins. */
    if (N > (q4 ? 2 : 4))
        for (; r + 2 <= r1; r += 2) q_rows_R(N, 2, q4, a, w + (size_t)r * rs, rs, y, ldy, r);
    for (; r < r1; r++) q_rows_R(N, 1, q4, a, w + (size_t)r * rs, rs, y, ldy, r);
}

/* ---- f32 / f16 / bf16 rows: 16 (32 for vdpbf16ps) weights per step, masked at the row end ---- */

INLINE __m512 widen16(const uint8_t *p, int wtype, __mmask16 m)
{
    if (wtype == EM_WT_F32) return _mm512_maskz_loadu_ps(m, p);
    const __m256i h = _mm256_maskz_loadu_epi16(m, p);
    if (wtype == EM_WT_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

#ifndef EM_Z_F_R1_MAX
#define EM_Z_F_R1_MAX 2 /* up to this many activations, float rows go one at a time */
#endif

/* R (1 or 2) rows at a time, like q_rows_R: every x load serves both rows. */
INLINE void f_rows_R(const int N, const int R, const int wtype, const struct em_qact *a,
                     const uint8_t *row0, size_t rs, float *y, size_t ldy, int r)
{
    const int in = a->in;
    const size_t es = wtype == EM_WT_F32 ? 4 : 2;
    __m512 acc[2][EM_QDOT_MAX_N];
#pragma GCC unroll 8
    for (int j = 0; j < N; j++) acc[0][j] = acc[1][j] = _mm512_setzero_ps();
    for (int i = 0; i < in; i += 16) {
        const __mmask16 m = in - i >= 16 ? 0xFFFF : (__mmask16)((1u << (in - i)) - 1);
        __m512 w[2];
#pragma GCC unroll 2
        for (int k = 0; k < R; k++) w[k] = widen16(row0 + k * rs + i * es, wtype, m);
#pragma GCC unroll 8
        for (int j = 0; j < N; j++) {
            const __m512 xv = _mm512_maskz_loadu_ps(m, a->x + (size_t)j * in + i);
#pragma GCC unroll 2
            for (int k = 0; k < R; k++) acc[k][j] = _mm512_fmadd_ps(w[k], xv, acc[k][j]);
        }
    }
#pragma GCC unroll 2
    for (int k = 0; k < R; k++)
#pragma GCC unroll 8
        for (int j = 0; j < N; j++) y[(size_t)j * ldy + r + k] = _mm512_reduce_add_ps(acc[k][j]);
}

INLINE void bf16dp_rows_R(const int N, const int R, const struct em_qact *a,
                          const uint8_t *row0, size_t rs, float *y, size_t ldy, int r)
{
    const int in = a->in;
    __m512 acc[2][EM_QDOT_MAX_N];
#pragma GCC unroll 8
    for (int j = 0; j < N; j++) acc[0][j] = acc[1][j] = _mm512_setzero_ps();
    for (int i = 0; i < in; i += 32) {
        const __mmask32 m = in - i >= 32 ? 0xFFFFFFFFu : (__mmask32)((1u << (in - i)) - 1);
        __m512bh w[2];
#pragma GCC unroll 2
        for (int k = 0; k < R; k++)
            w[k] = (__m512bh)_mm512_maskz_loadu_epi16(m, row0 + k * rs + 2 * (size_t)i);
#pragma GCC unroll 8
        for (int j = 0; j < N; j++) {
            const __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi16(m, a->xb + (size_t)j * in + i);
#pragma GCC unroll 2
            for (int k = 0; k < R; k++) acc[k][j] = _mm512_dpbf16_ps(acc[k][j], xv, w[k]);
        }
    }
#pragma GCC unroll 2
    for (int k = 0; k < R; k++)
#pragma GCC unroll 8
        for (int j = 0; j < N; j++) y[(size_t)j * ldy + r + k] = _mm512_reduce_add_ps(acc[k][j]);
}

INLINE void f_rows_body(const int N, const int wtype, const struct em_qact *a,
                        const uint8_t *w, size_t rs, int r0, int r1, float *y, size_t ldy)
{
    int r = r0;
    if (N > EM_Z_F_R1_MAX)
        for (; r + 2 <= r1; r += 2) f_rows_R(N, 2, wtype, a, w + (size_t)r * rs, rs, y, ldy, r);
    for (; r < r1; r++) f_rows_R(N, 1, wtype, a, w + (size_t)r * rs, rs, y, ldy, r);
}

INLINE void bf16dp_rows_body(const int N, const struct em_qact *a, const uint8_t *w,
                             size_t rs, int r0, int r1, float *y, size_t ldy)
{
    int r = r0;
    if (N > EM_Z_F_R1_MAX)
        for (; r + 2 <= r1; r += 2) bf16dp_rows_R(N, 2, a, w + (size_t)r * rs, rs, y, ldy, r);
    for (; r < r1; r++) bf16dp_rows_R(N, 1, a, w + (size_t)r * rs, rs, y, ldy, r);
}

/* One instance per (n, type) so accumulators stay in registers. */
#define EM_Z_ROWS(N)                                                                           \
    static void z_rows_##N(int wtype, const struct em_qact *a, const uint8_t *w, size_t rs,   \
                           int r0, int r1, float *y, size_t ldy, int bf16dp)                   \
    {                                                                                          \
        switch (wtype) {                                                                       \
        case EM_WT_Q8_0: q_rows_body(N, 0, a, w, rs, r0, r1, y, ldy); break;                   \
        case EM_WT_Q4_0: q_rows_body(N, 1, a, w, rs, r0, r1, y, ldy); break;                   \
        case EM_WT_F32: f_rows_body(N, EM_WT_F32, a, w, rs, r0, r1, y, ldy); break;            \
        case EM_WT_F16: f_rows_body(N, EM_WT_F16, a, w, rs, r0, r1, y, ldy); break;            \
        case EM_WT_BF16:                                                                       \
            if (bf16dp)                                                                        \
                bf16dp_rows_body(N, a, w, rs, r0, r1, y, ldy);                                 \
            else                                                                               \
                f_rows_body(N, EM_WT_BF16, a, w, rs, r0, r1, y, ldy);                          \
            break;                                                                             \
        default: break;                                                                        \
        }                                                                                      \
    }
EM_Z_ROWS(1)
EM_Z_ROWS(2)
EM_Z_ROWS(3)
EM_Z_ROWS(4)
EM_Z_ROWS(5)
EM_Z_ROWS(6)
EM_Z_ROWS(7)
EM_Z_ROWS(8)

typedef void (*z_rows_fn)(int, const struct em_qact *, const uint8_t *, size_t, int, int,
                          float *, size_t, int);
static const z_rows_fn z_rows_n[EM_QDOT_MAX_N + 1] = {
    NULL, z_rows_1, z_rows_2, z_rows_3, z_rows_4, z_rows_5, z_rows_6, z_rows_7, z_rows_8,
};

static void z_rows(int wtype, const struct em_qact *a, const uint8_t *w, size_t rs, int r0,
                   int r1, float *y, size_t ldy)
{
    z_rows_n[a->n](wtype, a, w, rs, r0, r1, y, ldy, a->xb != NULL);
}

static size_t z_scratch_size_nobf16(int wtype, int n, int in)
{
    return wtype == EM_WT_BF16 ? 0 : z_scratch_size(wtype, n, in);
}

static const struct em_qdot_ops avx512_bf16_ops = {
    .name = "avx512",
    .scratch_size = z_scratch_size,
    .prep = z_prep,
    .rows = z_rows,
};

static const struct em_qdot_ops avx512_ops = {
    .name = "avx512",
    .scratch_size = z_scratch_size_nobf16,
    .prep = z_prep,
    .rows = z_rows,
};

const struct em_qdot_ops *em_qdot_avx512(bool bf16)
{
    return bf16 ? &avx512_bf16_ops : &avx512_ops;
}
