/* model/kernels/quant.c - reference row (de)quantizers and 16-bit float conversions.
 * x[k] f32 -> k / 32 blocks of q8_0 (34 B) or q4_0 (18 B), and back; layouts in quant.h.
 * ref: ggml-org/ggml:src/ggml-quants.c quantize_row_q8_0_ref, quantize_row_q4_0_ref,
 * dequantize_row_q8_0, dequantize_row_q4_0; the f16 conversions are the branch-free ones of
 * Maratyszcza/FP16 (include/fp16/fp16.h), exact for every input. */
#include "model/kernels/quant.h"

#include <math.h>

static inline uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float em_quant_f16_to_f32(uint16_t h)
{
    const uint32_t w = (uint32_t)h << 16;
    const uint32_t sign = w & 0x80000000u;
    const uint32_t two_w = w + w;
    /* normal and inf/NaN: move the exponent into place, then rescale by 2^-112 */
    const float normalized = f32_from_bits((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
    /* subnormal: mantissa into a float in [0.5, 1), minus the 0.5 bias */
    const float denormalized = f32_from_bits((two_w >> 17) | (126u << 23)) - 0.5f;
    const uint32_t r =
        sign | (two_w < (1u << 27) ? f32_bits(denormalized) : f32_bits(normalized));
    return f32_from_bits(r);
}

uint16_t em_quant_f32_to_f16(float f)
{
    /* The float add performs the round-to-nearest-even on the bits that fall off. */
    float base = (fabsf(f) * 0x1.0p+112f) * 0x1.0p-110f;
    const uint32_t w = f32_bits(f);
    const uint32_t shl1_w = w + w;
    const uint32_t sign = w & 0x80000000u;
    uint32_t bias = shl1_w & 0xFF000000u;
    if (bias < 0x71000000u) bias = 0x71000000u;
    base = f32_from_bits((bias >> 1) + 0x07800000u) + base;
    const uint32_t bits = f32_bits(base);
    const uint32_t exp_bits = (bits >> 13) & 0x00007C00u;
    const uint32_t mant_bits = bits & 0x00000FFFu;
    const uint32_t nonsign = exp_bits + mant_bits;
    return (uint16_t)((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

uint16_t em_quant_f32_to_bf16(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

const char *em_wtype_name(int wtype)
{
    static const char *const names[EM_WT_COUNT] = {
        [EM_WT_F32] = "F32", [EM_WT_F16] = "F16", [EM_WT_BF16] = "BF16",
        [EM_WT_Q8_0] = "Q8_0", [EM_WT_Q4_0] = "Q4_0",
    };
    return wtype >= 0 && wtype < EM_WT_COUNT ? names[wtype] : "?";
}

size_t em_wtype_row_size(int wtype, int64_t k)
{
    if (k < 0) return 0;
    switch (wtype) {
    case EM_WT_F32: return (size_t)k * 4;
    case EM_WT_F16:
    case EM_WT_BF16: return (size_t)k * 2;
    case EM_WT_Q8_0:
        return k % EM_QK ? 0 : (size_t)(k / EM_QK) * sizeof(struct em_block_q8_0);
    case EM_WT_Q4_0:
        return k % EM_QK ? 0 : (size_t)(k / EM_QK) * sizeof(struct em_block_q4_0);
    default: return 0;
    }
}

static void quantize_block_q8_0(const float *x, uint8_t *dst)
{
    float amax = 0.0f;
    for (int i = 0; i < EM_QK; i++) amax = fmaxf(amax, fabsf(x[i]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const uint16_t dh = em_quant_f32_to_f16(d);
    memcpy(dst, &dh, 2);
    for (int i = 0; i < EM_QK; i++) dst[2 + i] = (uint8_t)(int8_t)roundf(x[i] * id);
}

static void quantize_block_q4_0(const float *x, uint8_t *dst)
{
    float amax = 0.0f, max = 0.0f; /* max keeps the sign of the largest magnitude */
    for (int i = 0; i < EM_QK; i++) {
        if (amax < fabsf(x[i])) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const uint16_t dh = em_quant_f32_to_f16(d);
    memcpy(dst, &dh, 2);
    for (int i = 0; i < EM_QK / 2; i++) {
        int q0 = (int)(int8_t)(x[i] * id + 8.5f);
        int q1 = (int)(int8_t)(x[i + EM_QK / 2] * id + 8.5f);
        if (q0 > 15) q0 = 15;
        if (q1 > 15) q1 = 15;
        dst[2 + i] = (uint8_t)(q0 | (q1 << 4));
    }
}

em_err em_quantize_row(int wtype, const float *x, void *dst, int64_t k)
{
    const size_t rs = em_wtype_row_size(wtype, k);
    if (rs == 0 && k != 0) return EM_E_ARG;
    uint8_t *o = dst;
    switch (wtype) {
    case EM_WT_F32: memcpy(o, x, rs); break;
    case EM_WT_F16:
        for (int64_t i = 0; i < k; i++) {
            uint16_t h = em_quant_f32_to_f16(x[i]);
            memcpy(o + 2 * i, &h, 2);
        }
        break;
    case EM_WT_BF16:
        for (int64_t i = 0; i < k; i++) {
            uint16_t h = em_quant_f32_to_bf16(x[i]);
            memcpy(o + 2 * i, &h, 2);
        }
        break;
    case EM_WT_Q8_0:
        for (int64_t b = 0; b < k / EM_QK; b++)
            quantize_block_q8_0(x + b * EM_QK, o + b * sizeof(struct em_block_q8_0));
        break;
    case EM_WT_Q4_0:
        for (int64_t b = 0; b < k / EM_QK; b++)
            quantize_block_q4_0(x + b * EM_QK, o + b * sizeof(struct em_block_q4_0));
        break;
    default: return EM_E_ARG;
    }
    return EM_OK;
}

static inline float load_half(const uint8_t *p, int bf)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return bf ? em_quant_bf16_to_f32(h) : em_quant_f16_to_f32(h);
}

em_err em_dequantize_row(int wtype, const void *src, float *y, int64_t k)
{
    const size_t rs = em_wtype_row_size(wtype, k);
    if (rs == 0 && k != 0) return EM_E_ARG;
    const uint8_t *s = src;
    switch (wtype) {
    case EM_WT_F32: memcpy(y, s, rs); break;
    case EM_WT_F16:
    case EM_WT_BF16:
        for (int64_t i = 0; i < k; i++) y[i] = load_half(s + 2 * i, wtype == EM_WT_BF16);
        break;
    case EM_WT_Q8_0:
        for (int64_t b = 0; b < k / EM_QK; b++) {
            const uint8_t *blk = s + b * sizeof(struct em_block_q8_0);
            const float d = load_half(blk, 0);
            for (int i = 0; i < EM_QK; i++) y[b * EM_QK + i] = d * (float)(int8_t)blk[2 + i];
        }
        break;
    case EM_WT_Q4_0:
        for (int64_t b = 0; b < k / EM_QK; b++) {
            const uint8_t *blk = s + b * sizeof(struct em_block_q4_0);
            const float d = load_half(blk, 0);
            for (int i = 0; i < EM_QK / 2; i++) {
                y[b * EM_QK + i] = d * (float)((blk[2 + i] & 15) - 8);
                y[b * EM_QK + i + EM_QK / 2] = d * (float)((blk[2 + i] >> 4) - 8);
            }
        }
        break;
    default: return EM_E_ARG;
    }
    return EM_OK;
}
