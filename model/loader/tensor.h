/* model/loader/tensor.h - a typed, borrowed view of one checkpoint tensor, and the dtype
 * conversions every consumer shares (bf16/f16 -> f32 widening).
 * Weights stay in their stored dtype inside the file mapping; callers widen rows or tiles
 * on the fly (a 7B bf16 checkpoint does not fit in RAM as f32).
 * Thread-safe: everything here is pure. */
#ifndef EM_TENSOR_H
#define EM_TENSOR_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum em_dtype {
    EM_DT_F32 = 0,
    EM_DT_F16 = 1,
    EM_DT_BF16 = 2,
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
    const void *data;                 /* numel * em_dtype_size(dtype) bytes; may be unaligned */
    size_t nbytes;
};

size_t em_dtype_size(int dtype);      /* 4, 2, 2; 0 for an unknown dtype */
const char *em_dtype_name(int dtype); /* "F32", "F16", "BF16"; "?" if unknown */
int64_t em_tensor_numel(const struct em_tensor *t);

static inline float em_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
float em_f16_to_f32(uint16_t h);
/* Round-to-nearest-even; NaN stays NaN. */
uint16_t em_f32_to_bf16(float f);

/* Widens elements [off, off + n) of t (flat index) into dst[n] as f32. The caller keeps
 * off + n <= numel (checked only by assert: tensors are validated at load time). */
void em_tensor_read_f32(const struct em_tensor *t, size_t off, size_t n, float *dst);

/* Formats "[a, b, c]" into buf (always NUL-terminated); returns buf. */
char *em_shape_str(const struct em_tensor *t, char *buf, size_t cap);

#endif
