/* common/hex.c - see hex.h. */
#include "common/hex.h"

void em_hex_lower(const void *b, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    const unsigned char *p = b;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    out[2 * n] = 0;
}
