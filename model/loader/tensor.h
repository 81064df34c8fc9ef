/* model/loader/tensor.h - a typed, borrowed view of one checkpoint tensor, and the dtype
 * conversions every consumer shares (bf16/f16 -> f32 widening, q8_0/q4_0 dequantization).
 * The conversions themselves live in model/quant.[ch] (one implementation); the names here
 * forward to them.
 * Weights stay in their stored dtype inside the file mapping; callers widen rows or tiles
 * on the fly (a 7B bf16 checkpoint does not fit in RAM as f32).
 * Thread-safe: everything here is pure. */
#ifndef EM_TENSOR_H
#define EM_TENSOR_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "model/kernels/quant.h"

/* Values equal enum em_wtype (model/kernels/quant.h), so a dtype is passed as a wtype unchanged.
 * Q8_0 / Q4_0 are GGUF's block layouts (quant.h): the last dimension (a row) is a multiple of
 * EM_QK and rows are stored back to back, so the tensor is numel / 32 blocks. */
enum em_dtype {
    EM_DT_F32 = EM_WT_F32,
    EM_DT_F16 = EM_WT_F16,
    EM_DT_BF16 = EM_WT_BF16,
    EM_DT_Q8_0 = EM_WT_Q8_0,
    EM_DT_Q4_0 = EM_WT_Q4_0,
};

#define EM_TENSOR_MAX_DIMS 4

/* A view: name and data are borrowed from the checkpoint (valid while it is open).
 * Data is little-endian, row-major (C order), shape in PyTorch order ([out, in] for a
 * Linear weight, [out, in, k] for a Conv1d weight). ndim 0 is a scalar (numel 1). */
struct em_tensor {
    const char *name;
    int dtype;                        /* enum em_dtype */
    int ndim;                         /* 0..EM_TENSOR_MAX_DIMS */
    int64_t shape[EM_TENSOR_MAX_DIMS];
    const void *data;                 /* em_dtype_nbytes(dtype, numel) bytes; may be unaligned */
    size_t nbytes;
};

/* Bytes per element: 4, 2, 2 for F32/F16/BF16; 0 for a block type (Q8_0/Q4_0: use
 * em_dtype_nbytes) and for an unknown dtype. */
size_t em_dtype_size(int dtype);
/* Bytes of numel consecutive elements (whole rows): em_wtype_row_size(dtype, numel); 0 for an
 * unknown dtype, numel < 0, or a block type with numel % EM_QK != 0. */
size_t em_dtype_nbytes(int dtype, int64_t numel);
const char *em_dtype_name(int dtype); /* "F32", "F16", "BF16", "Q8_0", "Q4_0"; "?" if unknown */
int64_t em_tensor_numel(const struct em_tensor *t);

static inline float em_bf16_to_f32(uint16_t h) { return em_quant_bf16_to_f32(h); }
static inline float em_f16_to_f32(uint16_t h) { return em_quant_f16_to_f32(h); }
/* Round-to-nearest-even; NaN stays NaN. */
static inline uint16_t em_f32_to_bf16(float f) { return em_quant_f32_to_bf16(f); }

/* Widens (or dequantizes) elements [off, off + n) of t (flat index) into dst[n] as f32; for
 * Q8_0/Q4_0 off and n need not be block-aligned. The caller keeps off + n <= numel (checked
 * only by assert: tensors are validated at load time). */
void em_tensor_read_f32(const struct em_tensor *t, size_t off, size_t n, float *dst);

/* Formats "[a, b, c]" into buf (always NUL-terminated); returns buf. */
char *em_shape_str(const struct em_tensor *t, char *buf, size_t cap);

#endif
