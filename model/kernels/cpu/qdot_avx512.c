/* model/kernels/cpu/qdot_avx512.c - AVX-512 (F/BW/VL/DQ + VNNI, optional BF16) row kernels.
 * Compiled with -mavx512*; only reached through em_qdot_avx512() after em_cpu_level() says so.
 *
 * q8_0 / q4_0 in groups of 8 blocks: the weights are read with zmm loads inside the group
 * (q8_0: two 4-block loads of 3 zmm, q4_0: 3 zmm) and gathered by word permutes (every field
 * of a block starts at an even offset) and qword interleaves into vectors whose 32-bit lanes
 * each hold weights of one block, and the f16 scales widened to the same lanes. vpdpbusd
 * multiplies u8 x s8:
 *   q8_0: the activation codes are stored unsigned (u = code + 128) and each lane starts from
 *         -128 * the sum of its weights (two vpdpbusd per group and row, shared by every x);
 *   q4_0: the nibbles are the unsigned operand, the codes stay signed, and each activation's
 *         record carries -8 * sum(codes of the block) as the lane start.
 *     s_j  = vpdpbusd(...(start, u, w)...)         int32 per lane, exact
 *     acc_j += float(s_j) * (dw * dx_j)           f32 per lane, reduced at the row end
 * Per activation that is 1 conversion, 1 multiply and 1 FMA per 256 weights (q8_0 had
 * groups of 4 blocks, per 128 weights, until its n >= 3 rows measured compute-bound; q4_0's
 * previous layout, two blocks per zmm, had 4x the float work). With more than two activations two rows are done per
 * pass, so each activation load serves both (an activation's records outgrow L1 from n = 4
 * at in = 4096), and the rows are prefetched in software (Q8_FEW, Q4_FEW); q4_0 at one
 * activation does Q4_R1_ROWS rows per pass, with the same prefetch.
 * bf16 rows: vdpbf16ps on x rounded to bf16 (em_qdot_avx512(true)), or exact: each 64-byte
 * load of 32 weights gives two f32 vectors with one op each (the even elements: dword << 16;
 * the odd ones: dword & 0xffff0000), multiplied with FMA against x de-interleaved the same
 * way once in prep (em_qact.xp), into separate even and odd accumulators added at the row end
 * (so one weight vector costs 1 op plus its FMAs; widening 16 at a time took 2).
 * f16 rows: vcvtph2ps + FMA; f32 rows: FMA. Row ends use masked loads (no over-read).
 * Each output row's arithmetic does not depend on n or on the row pairing, so a row of a
 * batch gets the bits it gets alone (batched decode relies on this). */
#include <immintrin.h>
#include <string.h>

#include "model/kernels/cpu/qdot.h"
#include "model/kernels/quant.h"

#define INLINE static inline __attribute__((always_inline))
/* Software prefetch of the quantized weight rows (the hardware prefetchers stop at 4 KiB
 * pages, and each line carries a lot of arithmetic). Before commit 7953ed5 (q8_0) and the
 * q4_0 change after it, both prefetched a fixed 4 KiB ahead from n = 3 (one thread, W in DRAM: q4_0 7 -> 13
 * GB/s against none); now both prefetch the same group of the next pass's rows (Q8_FEW,
 * Q4_FEW below). q8_0 at n = 1 stays one row per pass without software prefetch (one thread,
 * W in DRAM: with the 4 KiB prefetch q4_0 measured 17.4 -> 10.0 GB/s); q4_0 at n = 1 takes
 * Q4_R1_ROWS rows per pass with the next-pass prefetch. bf16 / f16 / f32 rows
 * (less work per line) measured slightly slower with it and rely on the hardware. */
#define GRP_BLOCKS 4 /* q8_0 blocks per load_w_group */
/* q8_0 rows: up to Q8_FEW activations one row per pass with the hardware prefetcher; with
 * more, two rows per pass, and each pass prefetches the same group of the next pass's rows
 * (R rows ahead: the distance follows the row length, where a fixed 4 KiB was too short for
 * 4352-byte rows and too long for none). Two threads, W in DRAM, 8-block groups, best of
 * interleaved runs against 4 KiB ahead: 4096 x 4096 n = 3, 4 25 -> 35 GB/s, n = 8 19 ->
 * 20.5; 4096 x 11008 n = 4 27 -> 33..43. n = 2 in = 11008 one row per pass measured
 * 19 GB/s (its activation records outgrow L1), two rows with prefetch 33..49; at in = 4096
 * they measure alike (-3 %..+0 %); n = 1 stays one row without software prefetch. The
 * prefetch goes to L2 (T1) for every n (Q4_PF_L2_MAX is for q4_0): n = 6 / 8 T0 22 / 20
 * GB/s, T1 32 / 26-28 (4096 x 4096 and 4096 x 11008). */
#define Q8_FEW 1
/* q4_0 rows: as q8_0, two rows per pass from n = 2, each prefetching the same group of the
 * next pass's rows (R rows ahead); into L2 (T1) up to Q4_PF_L2_MAX activations, into L1 (T0)
 * above. Two threads, W in DRAM (2304-byte rows at in = 4096, 6144 at in = 11008), best of
 * 4..8 interleaved rounds against 4 KiB ahead (from n = 3; one row without software prefetch
 * at n = 2): 4096 x 11008 n = 2 15 -> 38 GB/s, n = 3 20 -> 28, n = 4 18 -> 22, n = 6 14 -> 18,
 * n = 8 12 -> 15; 4096 x 4096 and 11008 x 4096 n = 2..4 alike or + 1..2 GB/s, n = 6 T1
 * 19-20 vs T0 17-18 GB/s, n = 8 T1 13.5-14 vs T0 14.5-15 (q4_0's n = 8 is compute-bound). */
#define Q4_FEW 1
#define Q4_PF_L2_MAX 6
/* q4_0 rows per pass at n = 1 (decode of one sequence). The row loop is bound by loads there
 * (per group of 8 blocks: 4 weight loads, 6 of the activation's record), so rows that share
 * the activation loads cost fewer: one thread, W in L2 (128 x 4096), best of 10000 calls, an
 * AMD EPYC (family 25 model 17) shared with other work: 1 row 32.5 GB/s, 2 rows 37.2,
 * 4 rows 39.2 (q8_0 43 with 1 row), bit-identical results. With W in DRAM several rows need
 * the next pass's rows prefetched (as n > 1 does): 2 threads, a decoder layer's 7 matmuls,
 * q4_0 step best of 4 alternated runs on a loaded host: 1 row 5.9-10.9 ms, 2 or 4 rows
 * without prefetch 14-16.6, 4 rows with it 3.6-7.0 (docs/bench-model.md). */
#define Q4_R1_ROWS 4

INLINE void prefetch_q4(const char *p, const int N)
{
    if (N <= Q4_PF_L2_MAX) _mm_prefetch(p, _MM_HINT_T1);
    else _mm_prefetch(p, _MM_HINT_T0);
}

/* ---- activation prep ---- */

/* q8_0 rows are dotted in groups of 8 blocks (two of the 4-block loads below); bytes of one
 * activation row's record per group: codes + 128 (4 x 64 u8), dx (16 f32). */
#define Q8G_BLOCKS 8
#define GRP_BYTES 320

static inline int n_groups(int in) { return (in / EM_QK + Q8G_BLOCKS - 1) / Q8G_BLOCKS; }

/* q4_0: groups of 8 blocks (below); bytes per row and group: 4 x 64 code bytes, 16 f32 dx,
 * 16 int32 corrections. */
#define G8_BLOCKS 8
#define G8_BYTES 384

static inline int n_groups8(int in) { return (in / EM_QK + G8_BLOCKS - 1) / G8_BLOCKS; }

static void quantize_x_q4(const float *x, int n, int in, uint8_t *out);

static size_t z_scratch_size_q(int wtype, int n, int in)
{
    if (wtype == EM_WT_Q4_0) return (size_t)n * n_groups8(in) * G8_BYTES;
    if (wtype == EM_WT_Q8_0) return (size_t)n * n_groups(in) * GRP_BYTES;
    return 0;
}

static size_t z_scratch_size_dp(int wtype, int n, int in)
{
    if (wtype == EM_WT_BF16) return (size_t)n * in * sizeof(uint16_t);
    return z_scratch_size_q(wtype, n, in);
}

static size_t z_scratch_size_exact(int wtype, int n, int in)
{
    if (wtype == EM_WT_BF16) return (size_t)n * in * sizeof(float);
    return z_scratch_size_q(wtype, n, in);
}

/* 32 floats -> 32 int8 codes in a ymm and the scale amax / 127. */
INLINE __m256i quantize_block(const float *xb, float *d)
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
    *d = amax / 127.0f;
    return _mm256_set_m128i(q1, q0);
}

/* Qword indices taking the 16-code halves of blocks A..D (natural order: X0 = A0 A1 B0 B1,
 * X1 = C0 C1 D0 D1, each 16 codes) into the two vectors the q8_0 row kernel dots:
 * [A0 B1 C0 D0] and [A1 B0 C1 D1] (block B's halves swapped, matching where load_w_group
 * finds B's weights). */
static const int64_t XA_Q8[8] = {0, 1, 6, 7, 8, 9, 12, 13};
static const int64_t XB_Q8[8] = {2, 3, 4, 5, 10, 11, 14, 15};

/* q8_0: x[n, in] -> per row, per group of 8 blocks (a last partial group padded with
 * zeros): each half group's two code vectors as unsigned bytes (code + 128), interleaved by
 * qwords as q_rows_R interleaves the weights, then dx per lane (blocks k and k + 4 in lanes
 * [k, k, k + 4, k + 4]). */
static void quantize_x_q8(const float *x, int n, int in, uint8_t *out)
{
    const int nb = in / EM_QK, ng = n_groups(in);
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    const __m512i xa = _mm512_loadu_si512(XA_Q8), xb = _mm512_loadu_si512(XB_Q8);
    for (int j = 0; j < n; j++) {
        const float *xj = x + (size_t)j * in;
        for (int g = 0; g < ng; g++) {
            uint8_t *o = out + ((size_t)j * ng + g) * GRP_BYTES;
            __m512i va[2], vb[2];
            float dx[16];
            for (int h = 0; h < 2; h++) { /* blocks 4h .. 4h + 3 as a 4-block group */
                __m256i q[GRP_BLOCKS];
                for (int k = 0; k < GRP_BLOCKS; k++) {
                    const int b = g * Q8G_BLOCKS + 4 * h + k;
                    float d = 0.0f;
                    q[k] = b < nb ? quantize_block(xj + (size_t)b * EM_QK, &d)
                                  : _mm256_setzero_si256();
                    dx[4 * k + 2 * h] = dx[4 * k + 2 * h + 1] = d;
                }
                const __m512i x0 = _mm512_inserti64x4(_mm512_castsi256_si512(q[0]), q[1], 1);
                const __m512i x1 = _mm512_inserti64x4(_mm512_castsi256_si512(q[2]), q[3], 1);
                va[h] = _mm512_xor_si512(_mm512_permutex2var_epi64(x0, xa, x1), flip);
                vb[h] = _mm512_xor_si512(_mm512_permutex2var_epi64(x0, xb, x1), flip);
            }
            /* the same qword interleave as the weights (q8g_rows_R) */
            _mm512_storeu_si512(o, _mm512_unpacklo_epi64(va[0], va[1]));
            _mm512_storeu_si512(o + 64, _mm512_unpackhi_epi64(va[0], va[1]));
            _mm512_storeu_si512(o + 128, _mm512_unpacklo_epi64(vb[0], vb[1]));
            _mm512_storeu_si512(o + 192, _mm512_unpackhi_epi64(vb[0], vb[1]));
            memcpy(o + 256, dx, sizeof dx);
        }
    }
}

/* x[n, in] -> xp: each whole 32-chunk as its even elements, then its odd ones. */
static void deinterleave_x(const float *x, int n, int in, float *xp)
{
    const __m512i ie = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i io = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    const int in32 = in & ~31;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < in32; i += 32) {
            const size_t o = (size_t)j * in + i;
            const __m512 lo = _mm512_loadu_ps(x + o), hi = _mm512_loadu_ps(x + o + 16);
            _mm512_storeu_ps(xp + o, _mm512_permutex2var_ps(lo, ie, hi));
            _mm512_storeu_ps(xp + o + 16, _mm512_permutex2var_ps(lo, io, hi));
        }
}

INLINE void z_prep(int wtype, const float *x, int n, int in, void *scratch, struct em_qact *a,
                   const bool bf16dp)
{
    memset(a, 0, sizeof *a);
    a->n = n;
    a->in = in;
    a->x = x;
    if (wtype == EM_WT_Q8_0 || wtype == EM_WT_Q4_0) {
        if (wtype == EM_WT_Q4_0) quantize_x_q4(x, n, in, scratch);
        else quantize_x_q8(x, n, in, scratch);
        a->q = scratch; /* the group records above; d and s stay NULL */
    } else if (wtype == EM_WT_BF16 && !bf16dp) {
        deinterleave_x(x, n, in, scratch);
        a->xp = scratch;
    } else if (wtype == EM_WT_BF16) {
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

/* ---- q8_0: groups of 8 blocks, loaded as two groups of 4 ----
 * The 4 blocks of a half group (136 bytes) are read with 3 overlapping zmm loads inside it and
 * gathered by word permutes (every field starts at an even offset) into two vectors of
 * signed weights, block k in 128-bit lane k, and the four f16 scales widened to
 * [dA x4, dB x4, dC x4, dD x4]; q_rows_R interleaves two of them. A last partial group
 * uses masked loads (zero bytes, scale 0, zero codes; no load at all for an absent half). */

/* Word indices into (L0 = bytes 0..63, L1 = 64..127) and (L0, L2 = 72..135) of a q8_0
 * group: vector a = A[0:16] B[16:32] C[0:16] D[0:16], b = A[16:32] B[0:16] C[16:32]
 * D[16:32] (block k's codes at 34k + 2); scales at 34k. */
static const uint16_t Q8_IA[32] = {1,  2,  3,  4,  5,  6,  7,  8,  26, 27, 28,
                                   29, 30, 31, 32, 33, 35, 36, 37, 38, 39, 40,
                                   41, 42, 52, 53, 54, 55, 56, 57, 58, 59};
static const uint16_t Q8_IB[32] = {9,  10, 11, 12, 13, 14, 15, 16, 18, 19, 20,
                                   21, 22, 23, 24, 25, 39, 40, 41, 42, 43, 44,
                                   45, 46, 56, 57, 58, 59, 60, 61, 62, 63};
static const uint16_t Q8_ID[32] = {0, 0, 0, 0, 17, 17, 17, 17, 34, 34, 34, 34, 51, 51, 51, 51};
struct qidx {
    __m512i a, b, d;
};

INLINE struct qidx load_qidx(void)
{
    struct qidx ix;
    ix.a = _mm512_loadu_si512(Q8_IA);
    ix.b = _mm512_loadu_si512(Q8_IB);
    ix.d = _mm512_loadu_si512(Q8_ID);
    return ix;
}

/* Masks of the bytes of the first nblk blocks of a group in each load. */
INLINE __mmask64 bytes_mask(int64_t valid, int64_t start)
{
    const int64_t k = valid - start;
    return k <= 0 ? 0 : k >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << k) - 1);
}

/* The group at p (nblk blocks present, 1..4; 4 reads no byte past the group). */
INLINE void load_w_group(const uint8_t *p, int nblk, const struct qidx *ix, __m512i *wa,
                         __m512i *wb, __m256i *dh)
{
    __m512i l0, l1, l2;
    if (nblk == GRP_BLOCKS) {
        l0 = _mm512_loadu_si512(p);
        l1 = _mm512_loadu_si512(p + 64);
        l2 = _mm512_loadu_si512(p + 72);
    } else {
        const int64_t v = 34 * (int64_t)nblk;
        l0 = _mm512_maskz_loadu_epi8(bytes_mask(v, 0), p);
        l1 = _mm512_maskz_loadu_epi8(bytes_mask(v, 64), p + 64);
        l2 = _mm512_maskz_loadu_epi8(bytes_mask(v, 72), p + 72);
    }
    *wa = _mm512_permutex2var_epi16(l0, ix->a, l1);
    *wb = _mm512_permutex2var_epi16(l0, ix->b, l2);
    *dh = _mm512_castsi512_si256(_mm512_permutex2var_epi16(l0, ix->d, l1));
}

/* R (1 or 2) rows at a time share every activation load; N activations share every weight
 * load. A group of 8 blocks is two 4-block loads (blocks 0-3 and 4-7, load_w_group) whose
 * vectors are interleaved by qwords, as the q4_0 kernel does: vector m's 16-byte lane k
 * holds 8 weights of block k, then 8 of block k + 4, so the 32-bit lanes 4k, 4k + 1 sum
 * block k and 4k + 2, 4k + 3 block k + 4, and the scales are in lane order
 * [k, k, k + 4, k + 4]. Per activation and 256 weights: 4 vpdpbusd, 1 conversion,
 * 1 multiply, 1 FMA. Accumulators: R * N zmm. */
INLINE void q_rows_R(const int N, const int R, const struct em_qact *a,
                     const uint8_t *row0, size_t rs, float *y, size_t ldy, int r)
{
    const int nb = a->in / EM_QK, ng = n_groups(a->in), full = nb / Q8G_BLOCKS;
    const size_t hs = sizeof(struct em_block_q8_0) * GRP_BLOCKS, gs = 2 * hs;
    const struct qidx ix = load_qidx();
    __m512 acc[2][EM_QDOT_MAX_N];
#pragma GCC unroll 8
    for (int j = 0; j < N; j++) acc[0][j] = acc[1][j] = _mm512_setzero_ps();
    for (int g = 0; g < ng; g++) {
        __m512i w[2][4], c[2];
        __m512 dw[2];
        const int nblk = g < full ? Q8G_BLOCKS : nb - g * Q8G_BLOCKS;
        const int n0 = nblk < GRP_BLOCKS ? nblk : GRP_BLOCKS, n1 = nblk - n0;
#pragma GCC unroll 2
        for (int k = 0; k < R; k++) {
            const uint8_t *p = row0 + k * rs + (size_t)g * gs;
            if (N > Q8_FEW) {
                const char *pf = (const char *)p + (size_t)R * rs;
                for (size_t o = 0; o < gs; o += 64) _mm_prefetch(pf + o, _MM_HINT_T1);
                _mm_prefetch(pf + gs - 1, _MM_HINT_T1);
            }
            __m512i wa0, wb0, wa1, wb1;
            __m256i d0, d1;
            load_w_group(p, n0, &ix, &wa0, &wb0, &d0);
            load_w_group(p + hs, n1, &ix, &wa1, &wb1, &d1); /* n1 = 0: all zero, no read */
            w[k][0] = _mm512_unpacklo_epi64(wa0, wa1);
            w[k][1] = _mm512_unpackhi_epi64(wa0, wa1);
            w[k][2] = _mm512_unpacklo_epi64(wb0, wb1);
            w[k][3] = _mm512_unpackhi_epi64(wb0, wb1);
            /* words 4k, 4k + 1 from block k's scale, 4k + 2, 4k + 3 from block k + 4's */
            dw[k] = _mm512_cvtph_ps(_mm256_mask_blend_epi16(0xCCCC, d0, d1));
            /* the codes come as u = code + 128: sum(u * w) = sum(code * w) + 128 * sum(w),
             * so each lane starts from -128 * (its 16 weights' sum), shared by every x */
            const __m512i c128 = _mm512_set1_epi8((char)0x80);
            __m512i cs = _mm512_dpbusd_epi32(_mm512_setzero_si512(), c128, w[k][0]);
            cs = _mm512_dpbusd_epi32(cs, c128, w[k][1]);
            cs = _mm512_dpbusd_epi32(cs, c128, w[k][2]);
            cs = _mm512_dpbusd_epi32(cs, c128, w[k][3]);
            c[k] = _mm512_sub_epi32(_mm512_setzero_si512(), cs);
        }
#pragma GCC unroll 8
        for (int j = 0; j < N; j++) {
            const uint8_t *xg = a->q + ((size_t)j * ng + g) * GRP_BYTES;
            const __m512i x0 = _mm512_loadu_si512(xg), x1 = _mm512_loadu_si512(xg + 64),
                          x2 = _mm512_loadu_si512(xg + 128), x3 = _mm512_loadu_si512(xg + 192);
            const __m512 dx = _mm512_loadu_ps(xg + 256);
#pragma GCC unroll 2
            for (int k = 0; k < R; k++) {
                __m512i s = _mm512_dpbusd_epi32(c[k], x0, w[k][0]);
                s = _mm512_dpbusd_epi32(s, x1, w[k][1]);
                s = _mm512_dpbusd_epi32(s, x2, w[k][2]);
                s = _mm512_dpbusd_epi32(s, x3, w[k][3]);
                acc[k][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw[k], dx),
                                            acc[k][j]);
            }
        }
    }
#pragma GCC unroll 2
    for (int k = 0; k < R; k++)
#pragma GCC unroll 8
        for (int j = 0; j < N; j++) y[(size_t)j * ldy + r + k] = _mm512_reduce_add_ps(acc[k][j]);
}

INLINE void q_rows_body(const int N, const struct em_qact *a, const uint8_t *w,
                        size_t rs, int r0, int r1, float *y, size_t ldy)
{
    int r = r0;
    if (N > Q8_FEW)
        for (; r + 2 <= r1; r += 2) q_rows_R(N, 2, a, w + (size_t)r * rs, rs, y, ldy, r);
    for (; r < r1; r++) q_rows_R(N, 1, a, w + (size_t)r * rs, rs, y, ldy, r);
}

/* ---- q4_0: groups of 8 blocks, two lanes per block ----
 * A q4_0 group of 8 blocks (144 bytes) is read with 3 zmm loads (at 0, 64, 80) and gathered
 * by word permutes: the code bytes of blocks 0-3 (q) and 4-7 (q'), 16 per 128-bit lane, and
 * the scales. Low / high nibbles of q and q' are unpacked by qwords into four vectors whose
 * lane k holds 8 weights of block k then 8 of block k + 4 (two dwords each), so one
 * vpdpbusd covers 8 blocks and the float work (1 conversion, 1 multiply, 1 FMA) is per
 * 8 blocks: per activation and 256 weights 4 vpdpbusd + 3 float ops. The nibbles are the
 * unsigned operand and the activation codes stay signed; each activation's record carries
 * the correction -8 * sum(codes of the block) in the block's first lane. */

/* Lane k (k < 4) of vector m (m < 4) takes codes 8m .. 8m + 7 of block k, then of block
 * k + 4; scales and corrections in lane order [k, k, k + 4, k + 4]. */
static void quantize_x_q4(const float *x, int n, int in, uint8_t *out)
{
    const int nb = in / EM_QK, ng = n_groups8(in);
    for (int j = 0; j < n; j++) {
        const float *xj = x + (size_t)j * in;
        for (int g = 0; g < ng; g++) {
            uint8_t *o = out + ((size_t)j * ng + g) * G8_BYTES;
            int8_t codes[G8_BLOCKS * EM_QK];
            float d[G8_BLOCKS], dx[16];
            int32_t cs[16];
            for (int k = 0; k < G8_BLOCKS; k++) {
                const int b = g * G8_BLOCKS + k;
                d[k] = 0.0f;
                const __m256i q = b < nb ? quantize_block(xj + (size_t)b * EM_QK, &d[k])
                                         : _mm256_setzero_si256();
                _mm256_storeu_si256((__m256i *)(codes + k * EM_QK), q);
            }
            for (int k = 0; k < 4; k++) {
                int32_t sum[2] = {0, 0};
                for (int h = 0; h < 2; h++)
                    for (int t = 0; t < EM_QK; t++) sum[h] += codes[(k + 4 * h) * EM_QK + t];
                for (int m = 0; m < 4; m++) {
                    memcpy(o + 64 * m + 16 * k, codes + k * EM_QK + 8 * m, 8);
                    memcpy(o + 64 * m + 16 * k + 8, codes + (k + 4) * EM_QK + 8 * m, 8);
                }
                dx[4 * k] = dx[4 * k + 1] = d[k];
                dx[4 * k + 2] = dx[4 * k + 3] = d[k + 4];
                cs[4 * k] = -8 * sum[0];
                cs[4 * k + 2] = -8 * sum[1];
                cs[4 * k + 1] = cs[4 * k + 3] = 0;
            }
            memcpy(o + 256, dx, sizeof dx);
            memcpy(o + 320, cs, sizeof cs);
        }
    }
}

/* A group (144 bytes: block k at 18k, its f16 scale, then 16 code bytes) is read with four
 * zmm loads inside it: A at 0, B at 72 (where blocks 4-7 start), C at 8, D at 80. Block k's
 * code bytes 0..7 sit at 18k + 2 in A and block k + 4's at the same offset in B, and bytes
 * 8..15 at the same offsets in C and D, so one word permute per pair, with one index,
 * gathers into lane k 8 code bytes of block k, then the same 8 of block k + 4: the layout
 * the dot wants, with no qword interleave after it. The scales come from (A, B) in lane
 * order [k, k, k + 4, k + 4]. Low nibbles of (A, B) are elements 0..7 of each block and
 * high ones 16..23; of (C, D) 8..15 and 24..31 (the x records' vectors 0, 2, 1, 3). */
static const uint16_t Q4G_IQ[32] = {1,  2,  3,  4,  33, 34, 35, 36, 10, 11, 12,
                                    13, 42, 43, 44, 45, 19, 20, 21, 22, 51, 52,
                                    53, 54, 28, 29, 30, 31, 60, 61, 62, 63};
static const uint16_t Q4G_ID[32] = {0, 0, 32, 32, 9, 9, 41, 41, 18, 18, 50, 50, 27, 27, 59, 59};

INLINE void q4g_rows_R(const int N, const int R, const struct em_qact *a, const uint8_t *row0,
                       size_t rs, float *y, size_t ldy, int r)
{
    const int nb = a->in / EM_QK, ng = n_groups8(a->in), full = nb / G8_BLOCKS;
    const size_t gs = sizeof(struct em_block_q4_0) * G8_BLOCKS;
    const __m512i iq = _mm512_loadu_si512(Q4G_IQ), id = _mm512_loadu_si512(Q4G_ID),
                  lo4 = _mm512_set1_epi8(15);
    __m512 acc[Q4_R1_ROWS][EM_QDOT_MAX_N];
#pragma GCC unroll 8
    for (int j = 0; j < N; j++)
#pragma GCC unroll 4
        for (int k = 0; k < Q4_R1_ROWS; k++) acc[k][j] = _mm512_setzero_ps();
    for (int g = 0; g < ng; g++) {
        __m512i w[Q4_R1_ROWS][4];
        __m512 dw[Q4_R1_ROWS];
#pragma GCC unroll 4
        for (int k = 0; k < R; k++) {
            const uint8_t *p = row0 + k * rs + (size_t)g * gs;
            if (N > Q4_FEW || R > 1) { /* the same group of the next pass's rows */
                const char *pf = (const char *)p + (size_t)R * rs;
                for (size_t o = 0; o < gs; o += 64) prefetch_q4(pf + o, N);
                prefetch_q4(pf + gs - 1, N);
            }
            __m512i la, lb, lc, ld;
            if (g < full) {
                la = _mm512_loadu_si512(p);
                lb = _mm512_loadu_si512(p + 72);
                lc = _mm512_loadu_si512(p + 8);
                ld = _mm512_loadu_si512(p + 80);
            } else { /* partial last group: zero bytes past its blocks */
                const int64_t v = 18 * (int64_t)(nb - g * G8_BLOCKS);
                la = _mm512_maskz_loadu_epi8(bytes_mask(v, 0), p);
                lb = _mm512_maskz_loadu_epi8(bytes_mask(v, 72), p + 72);
                lc = _mm512_maskz_loadu_epi8(bytes_mask(v, 8), p + 8);
                ld = _mm512_maskz_loadu_epi8(bytes_mask(v, 80), p + 80);
            }
            const __m512i q0 = _mm512_permutex2var_epi16(la, iq, lb);
            const __m512i q1 = _mm512_permutex2var_epi16(lc, iq, ld);
            w[k][0] = _mm512_and_si512(q0, lo4);
            w[k][1] = _mm512_and_si512(q1, lo4);
            w[k][2] = _mm512_and_si512(_mm512_srli_epi16(q0, 4), lo4);
            w[k][3] = _mm512_and_si512(_mm512_srli_epi16(q1, 4), lo4);
            dw[k] = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutex2var_epi16(la, id, lb)));
        }
#pragma GCC unroll 8
        for (int j = 0; j < N; j++) {
            const uint8_t *xg = a->q + ((size_t)j * ng + g) * G8_BYTES;
            const __m512i x0 = _mm512_loadu_si512(xg), x1 = _mm512_loadu_si512(xg + 64),
                          x2 = _mm512_loadu_si512(xg + 128), x3 = _mm512_loadu_si512(xg + 192);
            const __m512 dx = _mm512_loadu_ps(xg + 256);
            const __m512i c = _mm512_loadu_si512(xg + 320);
#pragma GCC unroll 4
            for (int k = 0; k < R; k++) {
                __m512i s = _mm512_dpbusd_epi32(c, w[k][0], x0);
                s = _mm512_dpbusd_epi32(s, w[k][1], x1);
                s = _mm512_dpbusd_epi32(s, w[k][2], x2);
                s = _mm512_dpbusd_epi32(s, w[k][3], x3);
                acc[k][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw[k], dx),
                                            acc[k][j]);
            }
        }
    }
#pragma GCC unroll 4
    for (int k = 0; k < R; k++)
#pragma GCC unroll 8
        for (int j = 0; j < N; j++) y[(size_t)j * ldy + r + k] = _mm512_reduce_add_ps(acc[k][j]);
}

/* Rows per pass: Q4_R1_ROWS at one activation (each activation load serves them all), two
 * above; every pass of more than one row prefetches the next pass's rows. */
INLINE void q4g_rows_body(const int N, const struct em_qact *a, const uint8_t *w, size_t rs,
                          int r0, int r1, float *y, size_t ldy)
{
    int r = r0;
    if (N == 1)
        for (; r + Q4_R1_ROWS <= r1; r += Q4_R1_ROWS)
            q4g_rows_R(N, Q4_R1_ROWS, a, w + (size_t)r * rs, rs, y, ldy, r);
    for (; r + 2 <= r1; r += 2) q4g_rows_R(N, 2, a, w + (size_t)r * rs, rs, y, ldy, r);
    for (; r < r1; r++) q4g_rows_R(N, 1, a, w + (size_t)r * rs, rs, y, ldy, r);
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

/* Exact BF16 rows, see the file comment. Each output has an even and an odd accumulator,
 * added at the row end; the arithmetic of a row is the same whatever N, R and the chunking.
 * With 3 or more activations the rows are done in blocks of BX_RB rows, BX_KC elements of
 * `in` at a time, the accumulators kept in a small array between chunks: the chunk of x
 * (N * BX_KC * 4 bytes, 16 KiB at N = 8) then stays in L1 for the whole block instead of x
 * (128 KiB at N = 8, in = 4096) streaming from L2 once per row (2 threads, W in DRAM,
 * 4096 x 4096: n = 8 8.6 -> 10.6 GB/s). Each pass prefetches the same lines two chunks
 * ahead into L2 (one line per 32 weights; n = 4 20 -> 27-30 GB/s, see BX_PF_DIST). */
#define BX_KC 512
#define BX_RB 16
/* Prefetch distance (bytes of the same row, two chunks) and level: 2 threads, W in DRAM,
 * n = 4, GB/s at 4096x4096 / 11008x4096 / 4096x11008: 1 KiB T0 21.2 / 21.5 / 21.2,
 * 2 KiB T0 19.2 / 18.7 / 20.5, 4 KiB T0 19.7 / 19.4 / 20.8, 1 KiB T1 20.9 / 19.1 / 22.9,
 * 2 KiB T1 27.8 / 26.9 / 29.6 (27.5 / 28.5 / 30.6 in a second round), 4 KiB T1 24.1 /
 * 23.5 / 28.4; host bandwidth 27-30 GB/s. n = 8 is compute-bound (12-15 GB/s) with any. */
#ifndef BX_PF_DIST
#define BX_PF_DIST (4 * BX_KC)
#endif
#ifndef BX_PF_HINT
#define BX_PF_HINT _MM_HINT_T1
#endif

struct bx_acc {
    __m512 e[2][EM_QDOT_MAX_N], o[2][EM_QDOT_MAX_N];
};

/* Accumulates rows row0 .. row0 + (R - 1) * rs over whole 32-chunks [i0, i1). */
INLINE void bx_span(const int N, const int R, const struct em_qact *a, const uint8_t *row0,
                    size_t rs, int i0, int i1, int pf, struct bx_acc *c)
{
    const int in = a->in;
    const __m512i hmask = _mm512_set1_epi32((int)0xFFFF0000u);
    for (int i = i0; i < i1; i += 32) {
        __m512 we[2], wo[2];
#pragma GCC unroll 2
        for (int k = 0; k < R; k++) {
            const uint8_t *p = row0 + k * rs + 2 * (size_t)i;
            if (pf) _mm_prefetch((const char *)p + BX_PF_DIST, BX_PF_HINT);
            const __m512i v = _mm512_loadu_si512(p);
            we[k] = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
            wo[k] = _mm512_castsi512_ps(_mm512_and_si512(v, hmask));
        }
#pragma GCC unroll 8
        for (int j = 0; j < N; j++) {
            const float *xj = a->xp + (size_t)j * in + i;
            const __m512 xe = _mm512_loadu_ps(xj), xo = _mm512_loadu_ps(xj + 16);
#pragma GCC unroll 2
            for (int k = 0; k < R; k++) {
                c->e[k][j] = _mm512_fmadd_ps(we[k], xe, c->e[k][j]);
                c->o[k][j] = _mm512_fmadd_ps(wo[k], xo, c->o[k][j]);
            }
        }
    }
}

/* The 1..31 elements past in & ~31, in order: the first 16 to e, the rest to o; then the
 * sums into y. */
INLINE void bx_finish(const int N, const int R, const struct em_qact *a, const uint8_t *row0,
                      size_t rs, struct bx_acc *c, float *y, size_t ldy, int r)
{
    const int in = a->in, in32 = in & ~31;
    if (in32 < in) {
        const int t = in - in32;
        const __mmask16 m0 = t >= 16 ? 0xFFFF : (__mmask16)((1u << t) - 1);
        const __mmask16 m1 = t > 16 ? (__mmask16)((1u << (t - 16)) - 1) : 0;
        __m512 w0[2], w1[2];
#pragma GCC unroll 2
        for (int k = 0; k < R; k++) {
            w0[k] = widen16(row0 + k * rs + 2 * (size_t)in32, EM_WT_BF16, m0);
            w1[k] = widen16(row0 + k * rs + 2 * (size_t)(in32 + 16), EM_WT_BF16, m1);
        }
#pragma GCC unroll 8
        for (int j = 0; j < N; j++) {
            const float *xj = a->x + (size_t)j * in + in32;
            const __m512 x0 = _mm512_maskz_loadu_ps(m0, xj);
            const __m512 x1 = _mm512_maskz_loadu_ps(m1, xj + 16);
#pragma GCC unroll 2
            for (int k = 0; k < R; k++) {
                c->e[k][j] = _mm512_fmadd_ps(w0[k], x0, c->e[k][j]);
                c->o[k][j] = _mm512_fmadd_ps(w1[k], x1, c->o[k][j]);
            }
        }
    }
#pragma GCC unroll 2
    for (int k = 0; k < R; k++)
#pragma GCC unroll 8
        for (int j = 0; j < N; j++)
            y[(size_t)j * ldy + r + k] = _mm512_reduce_add_ps(_mm512_add_ps(c->e[k][j], c->o[k][j]));
}

/* R rows over the chunk [i0, i1) of in & ~31: accumulators from st (zero at i0 == 0), then
 * back into st, or finished into y after the last chunk. */
INLINE void bx_rows_R(const int N, const int R, const struct em_qact *a, const uint8_t *row0,
                      size_t rs, int i0, int i1, float *st, float *y, size_t ldy, int r)
{
    const int in32 = a->in & ~31;
    struct bx_acc c;
#pragma GCC unroll 2
    for (int k = 0; k < R; k++)
#pragma GCC unroll 8
        for (int j = 0; j < N; j++) {
            const float *sp = st + ((size_t)(k * N + j) * 2) * 16;
            c.e[k][j] = i0 == 0 ? _mm512_setzero_ps() : _mm512_load_ps(sp);
            c.o[k][j] = i0 == 0 ? _mm512_setzero_ps() : _mm512_load_ps(sp + 16);
        }
    bx_span(N, R, a, row0, rs, i0, i1, i1 < in32, &c);
    if (i1 == in32) {
        bx_finish(N, R, a, row0, rs, &c, y, ldy, r);
        return;
    }
#pragma GCC unroll 2
    for (int k = 0; k < R; k++)
#pragma GCC unroll 8
        for (int j = 0; j < N; j++) {
            float *sp = st + ((size_t)(k * N + j) * 2) * 16;
            _mm512_store_ps(sp, c.e[k][j]);
            _mm512_store_ps(sp + 16, c.o[k][j]);
        }
}

/* Two rows per pass at 3 or 4 activations (each x load serves both; 16 accumulators), one
 * otherwise (two at 8 would need 32). */
INLINE void bf16x_rows_body(const int N, const struct em_qact *a, const uint8_t *w,
                            size_t rs, int r0, int r1, float *y, size_t ldy)
{
    const int in32 = a->in & ~31;
    const int R = N > EM_Z_F_R1_MAX && N <= 4 ? 2 : 1;
    const int kc = N > EM_Z_F_R1_MAX ? BX_KC : in32 > 0 ? in32 : 32;
    _Alignas(64) float st[BX_RB * EM_QDOT_MAX_N * 2 * 16];
    for (int rb = r0; rb < r1; rb += BX_RB) {
        const int re = r1 - rb < BX_RB ? r1 : rb + BX_RB;
        int i0 = 0;
        do {
            const int i1 = in32 - i0 < kc ? in32 : i0 + kc;
            int r = rb;
            float *sr = st;
            if (R == 2)
                for (; r + 2 <= re; r += 2, sr += 2 * N * 32)
                    bx_rows_R(N, 2, a, w + (size_t)r * rs, rs, i0, i1, sr, y, ldy, r);
            for (; r < re; r++, sr += N * 32)
                bx_rows_R(N, 1, a, w + (size_t)r * rs, rs, i0, i1, sr, y, ldy, r);
            i0 = i1;
        } while (i0 < in32);
    }
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
                           int r0, int r1, float *y, size_t ldy)                               \
    {                                                                                          \
        switch (wtype) {                                                                       \
        case EM_WT_Q8_0: q_rows_body(N, a, w, rs, r0, r1, y, ldy); break;                      \
        case EM_WT_Q4_0: q4g_rows_body(N, a, w, rs, r0, r1, y, ldy); break;                   \
        case EM_WT_F32: f_rows_body(N, EM_WT_F32, a, w, rs, r0, r1, y, ldy); break;            \
        case EM_WT_F16: f_rows_body(N, EM_WT_F16, a, w, rs, r0, r1, y, ldy); break;            \
        case EM_WT_BF16:                                                                       \
            if (a->xb)                                                                         \
                bf16dp_rows_body(N, a, w, rs, r0, r1, y, ldy);                                 \
            else                                                                               \
                bf16x_rows_body(N, a, w, rs, r0, r1, y, ldy);                                  \
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
                          float *, size_t);
static const z_rows_fn z_rows_n[EM_QDOT_MAX_N + 1] = {
    NULL, z_rows_1, z_rows_2, z_rows_3, z_rows_4, z_rows_5, z_rows_6, z_rows_7, z_rows_8,
};

static void z_rows(int wtype, const struct em_qact *a, const uint8_t *w, size_t rs, int r0,
                   int r1, float *y, size_t ldy)
{
    z_rows_n[a->n](wtype, a, w, rs, r0, r1, y, ldy);
}

static void z_prep_dp(int wtype, const float *x, int n, int in, void *scratch, struct em_qact *a)
{
    z_prep(wtype, x, n, in, scratch, a, true);
}

static void z_prep_exact(int wtype, const float *x, int n, int in, void *scratch,
                         struct em_qact *a)
{
    z_prep(wtype, x, n, in, scratch, a, false);
}

static const struct em_qdot_ops avx512_bf16_ops = {
    .name = "avx512",
    .scratch_size = z_scratch_size_dp,
    .prep = z_prep_dp,
    .rows = z_rows,
};

static const struct em_qdot_ops avx512_ops = {
    .name = "avx512",
    .scratch_size = z_scratch_size_exact,
    .prep = z_prep_exact,
    .rows = z_rows,
};

const struct em_qdot_ops *em_qdot_avx512(bool bf16)
{
    return bf16 ? &avx512_bf16_ops : &avx512_ops;
}
