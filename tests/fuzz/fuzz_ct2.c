/* tests/fuzz/fuzz_ct2.c - libFuzzer target for the CTranslate2 model.bin parser: any bytes
 * either parse, with every variable lying inside the buffer (touched at both ends so ASan
 * sees an overrun) and findable by name, or are refused with EM_E_MODEL. Built and run by
 * tests/fuzz/run.sh: clang -fsanitize=fuzzer,address,undefined -I. tests/fuzz/fuzz_ct2.c
 * model/loader/ct2.c common/err.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/loader/ct2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct em_ct2 *c = NULL;
    struct em_errbuf eb;
    em_err rc = em_ct2_parse(data, size, "fuzz", &c, &eb);
    if (rc == EM_OK) {
        for (size_t i = 0; i < em_ct2_count(c); i++) {
            struct em_ct2_var v, u;
            em_ct2_get(c, i, &v);
            const uint8_t *p = v.data, *nm = (const uint8_t *)v.name;
            if (p < data || p > data + size || v.nbytes > (size_t)(data + size - p)) abort();
            if (nm < data || nm >= data + size || strlen(v.name) >= (size_t)(data + size - nm)) abort();
            if (em_ct2_find(c, v.name, &u) != EM_OK || u.data != v.data) abort();
            volatile uint8_t sink = 0;
            if (v.nbytes) sink = p[0] ^ p[v.nbytes - 1];
            (void)sink;
            long x;
            struct em_tensor t;
            if (v.ndim == 0 && (v.dtype == EM_CT2_I8 || v.dtype == EM_CT2_I16 || v.dtype == EM_CT2_I32) &&
                em_ct2_int(c, v.name, &x, &eb) != EM_OK)
                abort();
            if ((v.dtype == EM_CT2_F32 || v.dtype == EM_CT2_F16 || v.dtype == EM_CT2_BF16) &&
                (em_ct2_tensor(c, v.name, v.ndim, &t, &eb) != EM_OK || t.nbytes != v.nbytes))
                abort();
        }
        em_ct2_free(c);
    } else if (rc != EM_E_MODEL && rc != EM_E_NOMEM) {
        abort();
    } else if (c) {
        abort();
    }
    return 0;
}
