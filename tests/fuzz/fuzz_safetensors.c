/* tests/fuzz/fuzz_safetensors.c - libFuzzer target for the safetensors header parser: any
 * bytes either parse, with every tensor lying inside the buffer (touched at both ends so
 * ASan sees an overrun), or are refused with EM_E_MODEL. Built and run by tests/fuzz/run.sh:
 * clang -fsanitize=fuzzer,address,undefined -I. tests/fuzz/fuzz_safetensors.c
 * model/loader/safetensors.c model/loader/tensor.c model/loader/tensors.c model/qwen2audio/config.c
 * common/err.c -ljansson */
#include <stdint.h>
#include <stdlib.h>

#include "model/loader/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct em_st *st = NULL;
    struct em_errbuf eb;
    em_err rc = em_st_parse(data, size, "fuzz", &st, &eb);
    if (rc == EM_OK) {
        for (size_t i = 0; i < em_st_count(st); i++) {
            struct em_tensor t, u;
            em_st_get(st, i, &t);
            const uint8_t *p = t.data;
            if (p < data || p > data + size || t.nbytes > (size_t)(data + size - p)) abort();
            if ((int64_t)t.nbytes != em_tensor_numel(&t) * (int64_t)em_dtype_size(t.dtype)) abort();
            if (em_st_find(st, t.name, &u) != EM_OK || u.data != t.data) abort();
            size_t n = (size_t)em_tensor_numel(&t);
            float v;
            if (n) {
                em_tensor_read_f32(&t, 0, 1, &v);
                em_tensor_read_f32(&t, n - 1, 1, &v);
            }
        }
        em_st_free(st);
    } else if (rc != EM_E_MODEL && rc != EM_E_NOMEM) {
        abort();
    } else if (st) {
        abort();
    }
    return 0;
}
