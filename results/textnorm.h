/* results/textnorm.h - Whisper-style English text normalisation for WER/CER: both the
 * reference and the hypothesis go through it before they are compared, so casing,
 * punctuation, contractions, British spellings and spelled-out numbers do not count as
 * errors.
 *
 * Steps, in order (ref: openai/whisper whisper/normalizers/english.py,
 * EnglishTextNormalizer, simplified; docs/eval.md lists each rule of the table):
 *   1. Unicode NFKC, case folding, combining marks removed (utf8proc).
 *   2. Text inside [...] or (...) removed (non-speech annotations).
 *   3. Punctuation and symbols become spaces, except an apostrophe inside a word and a
 *      '.' or ',' between two digits ("3.5" stays, "1,000" becomes "1000").
 *   4. Per word, the rule table: FILLER words dropped; WORD rules replace a whole word
 *      (contractions, titles, British -> American spelling); SUFFIX rules replace a word's
 *      ending (n't -> " not"); then leading and trailing apostrophes are dropped.
 *   5. Runs of NUMBER words (ones, teens, tens, hundred, thousand, million, billion) become
 *      digits: "twenty one" -> "21", "three hundred and five" -> "305", "one two" -> "1 2".
 *   6. Words joined by single spaces; no leading or trailing space.
 * Pure functions, thread-safe. */
#ifndef EM_TEXTNORM_H
#define EM_TEXTNORM_H

#include <stddef.h>

#include "common/err.h"

#define EM_TEXTNORM_MAX (1u << 20) /* bytes of input text */

enum em_tn_kind {
    EM_TN_FILLER,    /* from is dropped */
    EM_TN_WORD,      /* whole word from -> to (to may hold several words) */
    EM_TN_SUFFIX,    /* a word ending in from (and longer than it): the ending -> to */
    EM_TN_NUM_ONES,  /* to: value 0..19 */
    EM_TN_NUM_TENS,  /* to: value 20..90 */
    EM_TN_NUM_SCALE, /* to: multiplier 100, 1000, ... */
};

struct em_tn_rule {
    enum em_tn_kind kind;
    const char *from;
    const char *to; /* NULL for FILLER */
};

/* The rule table (static, read-only); *n gets its length. */
const struct em_tn_rule *em_tn_rules(size_t *n);
/* Name of a kind as docs/eval.md writes it ("FILLER", "WORD", ...). */
const char *em_tn_kind_name(enum em_tn_kind k);

/* Normalises s[len] (UTF-8). On EM_OK *out is malloc'd (caller frees), possibly "".
 * Errors: EM_E_TOO_LONG (len > EM_TEXTNORM_MAX), EM_E_FORMAT (invalid UTF-8), EM_E_NOMEM. */
em_err em_textnorm(const char *s, size_t len, char **out, struct em_errbuf *eb);

#endif
