/* model/text/unicode_tables.h - code point classes of the Qwen2 pre-tokenizer regex (\p{L},
 * \p{N}, \s), generated from the reference tokenizer by tests/golden/gen_unicode.py into
 * model/text/unicode_tables.c. Sorted, disjoint, inclusive [first, last] ranges. */
#ifndef EM_UNICODE_TABLES_H
#define EM_UNICODE_TABLES_H

#include <stddef.h>
#include <stdint.h>

extern const uint32_t em_uni_letter[][2];
extern const size_t em_uni_n_letter;
extern const uint32_t em_uni_number[][2];
extern const size_t em_uni_n_number;
extern const uint32_t em_uni_space[][2]; /* without ' ', '\n', '\r' */
extern const size_t em_uni_n_space;

#endif
