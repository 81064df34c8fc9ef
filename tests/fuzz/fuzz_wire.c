/* tests/fuzz/fuzz_wire.c - libFuzzer target for proto/wire: any bytes either decode to an
 * Envelope with a known body and the right version, or are refused with EM_E_PROTO; a
 * decoded envelope re-packs. Build: clang -fsanitize=fuzzer,address -I. -I$(BUILD)/gen
 * tests/fuzz/fuzz_wire.c proto/wire.c $(BUILD)/gen/proto/earmark.pb-c.c common/err.c
 * -lprotobuf-c */
#include <stdint.h>
#include <stdlib.h>

#include "proto/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Earmark__Envelope *e = NULL;
    em_err rc = em_wire_unpack(data, size, &e, NULL);
    if (rc == EM_OK) {
        if (e->version != EM_WIRE_VERSION || e->body_case == EARMARK__ENVELOPE__BODY__NOT_SET)
            abort();
        uint8_t *b = NULL;
        size_t n = 0;
        if (em_wire_pack(e, &b, &n, NULL) == EM_OK) free(b);
        em_wire_free(e);
    } else if (rc != EM_E_PROTO && rc != EM_E_NOMEM) {
        abort();
    } else if (e) {
        abort();
    }
    return 0;
}
