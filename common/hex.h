/* common/hex.h - lower-case hex encoding of bytes (ids, digests, signatures). Thread-safe. */
#ifndef EM_HEX_H
#define EM_HEX_H
#include <stddef.h>

/* Writes the 2*n lower-case hex digits of the n bytes at b, then a NUL, to out
 * (which must hold 2*n + 1 bytes). */
void em_hex_lower(const void *b, size_t n, char *out);
#endif
