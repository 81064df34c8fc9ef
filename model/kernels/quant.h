/* model/kernels/quant.h - weight types, the q8_0 / q4_0 block layouts and reference (de)quantizers.
 *
 * Block layouts are GGUF's (ref: ggml-org/ggml:src/ggml-common.h block_q8_0, block_q4_0), so a
 * tensor quantized here is byte-for-byte what llama.cpp writes, and GGUF files read later need
 * no repacking. A row of `in` weights is in / EM_QK consecutive blocks, no padding:
 *
 *   q8_0  [d: f16 little-endian][qs: 32 x int8]                       34 bytes, x_i = d * qs[i]
 *   q4_0  [d: f16 little-endian][qs: 16 bytes; element i < 16 is qs[i] & 15,
 *          element 16 + i is qs[i] >> 4]                              18 bytes, x_i = d * (q_i - 8)
 *
 * The structs document the layout and fix its size; kernels read rows as bytes (rows in a file
 * mapping may be at any address, so no code here dereferences a block pointer).
 * Thread-safe: everything here is pure. */
#ifndef EM_QUANT_H
#define EM_QUANT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/err.h"

/* The layouts are shared with CUDA (C++) code: same structs, static_assert there. */
#ifdef __cplusplus
#define EM_QUANT_STATIC_ASSERT static_assert
extern "C" {
#else
#define EM_QUANT_STATIC_ASSERT _Static_assert
#endif

#define EM_QK 32 /* weights per q8_0 / q4_0 block */

struct em_block_q8_0 {
    uint16_t d;         /* scale, IEEE half */
    int8_t qs[EM_QK];   /* x_i = d * qs[i] */
};
EM_QUANT_STATIC_ASSERT(sizeof(struct em_block_q8_0) == 2 + EM_QK, "q8_0 block must be 34 bytes");

struct em_block_q4_0 {
    uint16_t d;             /* scale, IEEE half */
    uint8_t qs[EM_QK / 2];  /* low nibbles: elements 0..15, high nibbles: 16..31 */
};
EM_QUANT_STATIC_ASSERT(sizeof(struct em_block_q4_0) == 2 + EM_QK / 2,
                       "q4_0 block must be 18 bytes");

/* Weight row types. F32/F16/BF16 share their values with enum em_dtype
 * (model/loader/tensor.h), so a dtype can be passed as a wtype unchanged. */
enum em_wtype {
    EM_WT_F32 = 0,
    EM_WT_F16 = 1,
    EM_WT_BF16 = 2,
    EM_WT_Q8_0 = 3,
    EM_WT_Q4_0 = 4,
    EM_WT_COUNT
};

const char *em_wtype_name(int wtype); /* "F32", ..., "Q4_0"; "?" if unknown */

/* Bytes of one row of k weights; 0 if wtype is unknown, k < 0, or k is not a multiple of
 * EM_QK for a block type. */
size_t em_wtype_row_size(int wtype, int64_t k);

/* Half / bfloat16 <-> f32. The f32 -> 16-bit conversions round to nearest even; NaN stays
 * NaN (quiet), infinities and overflow go to infinity, f16 subnormals are produced and read. */
float em_quant_f16_to_f32(uint16_t h);
uint16_t em_quant_f32_to_f16(float f);
static inline float em_quant_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
uint16_t em_quant_f32_to_bf16(float f);

/* Reference quantizer, bit-compatible with ggml's quantize_row_{q8_0,q4_0}_ref (scale from
 * the block's largest magnitude; q8_0 rounds half away from zero, q4_0 is d = max / -8 with
 * truncation of x / d + 8.5 clamped to 15). Writes em_wtype_row_size(wtype, k) bytes to dst
 * (any alignment). F32/F16/BF16 store the values converted. Errors: EM_E_ARG (unknown type,
 * k < 0, k % EM_QK != 0 for a block type). */
em_err em_quantize_row(int wtype, const float *x, void *dst, int64_t k);

/* Inverse of em_quantize_row: y[k] from a row of wtype. Same errors. */
em_err em_dequantize_row(int wtype, const void *src, float *y, int64_t k);

#ifdef __cplusplus
}
#endif

#endif
