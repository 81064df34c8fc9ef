/* model/loader/tensor.c - dtype sizes, names and f32 widening of tensor views. */
#include "model/loader/tensor.h"

#include <assert.h>
#include <stdio.h>

size_t em_dtype_size(int dtype)
{
    switch (dtype) {
    case EM_DT_F32: return 4;
    case EM_DT_F16:
    case EM_DT_BF16: return 2;
    default: return 0;
    }
}

const char *em_dtype_name(int dtype)
{
    switch (dtype) {
    case EM_DT_F32: return "F32";
    case EM_DT_F16: return "F16";
    case EM_DT_BF16: return "BF16";
    default: return "?";
    }
}

int64_t em_tensor_numel(const struct em_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

float em_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400u));
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

uint16_t em_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

void em_tensor_read_f32(const struct em_tensor *t, size_t off, size_t n, float *dst)
{
    assert((int64_t)(off + n) <= em_tensor_numel(t));
    const uint8_t *p = (const uint8_t *)t->data;
    switch (t->dtype) {
    case EM_DT_F32:
        memcpy(dst, p + off * 4, n * 4);
        break;
    case EM_DT_BF16: {
        /* memcpy keeps unaligned data legal and lets the compiler vectorize the widening
         * (little-endian host: the project targets x86-64 and arm64 Linux) */
        p += off * 2;
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            uint32_t u = (uint32_t)h << 16;
            memcpy(dst + i, &u, 4);
        }
        break;
    }
    case EM_DT_F16:
        p += off * 2;
        for (size_t i = 0; i < n; i++) {
            uint16_t h = (uint16_t)(p[2 * i] | (p[2 * i + 1] << 8));
            dst[i] = em_f16_to_f32(h);
        }
        break;
    default:
        assert(0 && "unknown dtype survived validation");
    }
}

char *em_shape_str(const struct em_tensor *t, char *buf, size_t cap)
{
    size_t k = 0;
    if (cap == 0) return buf;
    buf[0] = 0;
    k += (size_t)snprintf(buf + k, cap - k, "[");
    for (int i = 0; i < t->ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
    return buf;
}
