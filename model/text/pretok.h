/* model/text/pretok.h - Qwen2 pre-tokenizer: splits NFC text into the pieces that BPE encodes.
 *
 * ref: Qwen2TokenizerFast tokenizer.json pre_tokenizer (Split, behavior Isolated) with the
 * regex (Python `regex` / Oniguruma syntax)
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}
 *   | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * implemented by hand as a scanner over code points. The classes \p{L}, \p{N} and \s are
 * the reference's own (model/text/unicode_tables.c, generated from HF tokenizers). Every
 * position matches one alternative, so the pieces tile the text.
 *
 * Thread-safe: pure functions. The text must be valid UTF-8 (the caller checks); an invalid
 * byte is treated as one "other" character so the scanner still terminates. */
#ifndef EM_PRETOK_H
#define EM_PRETOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Character classes the regex distinguishes. */
enum em_pretok_class {
    EM_PRETOK_OTHER = 0,
    EM_PRETOK_LETTER, /* \p{L} */
    EM_PRETOK_NUMBER, /* \p{N} */
    EM_PRETOK_SPACE,  /* \s other than \r \n */
    EM_PRETOK_NEWLINE /* \r or \n (also \s) */
};

enum em_pretok_class em_pretok_classify(int32_t cp);

/* Returns the end (byte offset, > pos) of the piece that starts at byte offset pos of
 * s[0..len). pos must be < len. */
size_t em_pretok_next(const char *s, size_t len, size_t pos);

#endif
