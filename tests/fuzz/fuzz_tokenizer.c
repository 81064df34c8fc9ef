/* tests/fuzz/fuzz_tokenizer.c - libFuzzer target: model/tokenizer + model/pretok on arbitrary
 * bytes with the tiny fixture (tests/golden/tok/tiny, found through $EM_TEST_ROOT or the
 * current directory). Checks: encode never crashes; valid UTF-8 that is already NFC decodes
 * back to itself; decode of arbitrary ids yields valid UTF-8; the pre-tokenizer's pieces tile
 * the input. Sources: model/text/tokenizer.c model/text/tokenizer_load.c model/text/pretok.c
 * model/text/unicode_tables.c common/err.c
 * -ljansson -lutf8proc -lpthread. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "model/text/pretok.h"
#include "model/text/tokenizer.h"

static struct em_tok *tok;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!tok) {
        const char *r = getenv("EM_TEST_ROOT");
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/tests/golden/tok/tiny", r && *r ? r : ".");
        if (em_tok_load(dir, &tok, NULL) != EM_OK) abort();
    }
    const char *s = (const char *)data;
    for (size_t p = 0; p < size;) {
        size_t e = em_pretok_next(s, size, p);
        if (e <= p || e > size) abort();
        p = e;
    }
    int32_t *ids = malloc((size + 1) * 3 * sizeof *ids);
    size_t n = 0;
    em_err rc = em_tok_encode(tok, s, size, ids, (size + 1) * 3, &n, NULL);
    if (rc == EM_OK) {
        char *out = NULL;
        size_t len = 0;
        if (em_tok_decode(tok, ids, n, false, &out, &len) != EM_OK) abort();
        utf8proc_uint8_t *nfc = NULL;
        utf8proc_ssize_t nl = utf8proc_map(data, (utf8proc_ssize_t)size, &nfc,
                                           UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (nl >= 0 && (size_t)nl == size && memcmp(nfc, data, size) == 0 &&
            (len != size || memcmp(out, data, size) != 0))
            abort(); /* NFC input must round-trip */
        free(nfc);
        free(out);
    }
    /* arbitrary ids (two bytes each) decode to valid UTF-8 */
    size_t k = size / 2;
    for (size_t i = 0; i < k; i++) ids[i] = (int32_t)(data[2 * i] | data[2 * i + 1] << 8) % 400 - 50;
    char *out = NULL;
    size_t len = 0;
    if (em_tok_decode(tok, ids, k, (size & 1) != 0, &out, &len) != EM_OK) abort();
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t w = utf8proc_iterate((const utf8proc_uint8_t *)out + i,
                                              (utf8proc_ssize_t)(len - i), &cp);
        if (w <= 0) abort();
        i += (size_t)w;
    }
    free(out);
    free(ids);
    return 0;
}
