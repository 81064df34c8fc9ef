/* model/loader/tensor.c - dtype sizes, names and f32 widening / dequantization of tensor views;
 * the element conversions are model/kernels/quant.c's. */
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

size_t em_dtype_nbytes(int dtype, int64_t numel)
{
    return em_wtype_row_size(dtype, numel);
}

const char *em_dtype_name(int dtype)
{
    switch (dtype) {
    case EM_DT_F32: return "F32";
    case EM_DT_F16: return "F16";
    case EM_DT_BF16: return "BF16";
    case EM_DT_Q8_0: return "Q8_0";
    case EM_DT_Q4_0: return "Q4_0";
    default: return "?";
    }
}

int64_t em_tensor_numel(const struct em_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

void em_tensor_read_f32(const struct em_tensor *t, size_t off, size_t n, float *dst)
{
    assert((int64_t)(off + n) <= em_tensor_numel(t));
    const uint8_t *p = (const uint8_t *)t->data;
    switch (t->dtype) {
    case EM_DT_F32:
    case EM_DT_F16:
    case EM_DT_BF16: /* element types: any offset */
        em_dequantize_row(t->dtype, p + off * em_dtype_size(t->dtype), dst, (int64_t)n);
        break;
    case EM_DT_Q8_0:
    case EM_DT_Q4_0: {
        /* whole blocks straight into dst; a partial block at either end through a bounce */
        const size_t bs = em_wtype_row_size(t->dtype, EM_QK);
        size_t b = off / EM_QK, skip = off % EM_QK, done = 0;
        while (done < n) {
            const uint8_t *blk = p + b * bs;
            size_t take = EM_QK - skip;
            if (take > n - done) take = n - done;
            if (skip == 0 && take == EM_QK) {
                size_t nb = (n - done) / EM_QK;
                em_dequantize_row(t->dtype, blk, dst + done, (int64_t)(nb * EM_QK));
                done += nb * EM_QK;
                b += nb;
                continue;
            }
            float tmp[EM_QK];
            em_dequantize_row(t->dtype, blk, tmp, EM_QK);
            memcpy(dst + done, tmp + skip, take * sizeof *tmp);
            done += take;
            skip = 0;
            b++;
        }
        break;
    }
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
