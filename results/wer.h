/* results/wer.h - word and character edit distance (Levenshtein: substitutions, deletions,
 * insertions at cost 1 each) for WER and CER. A batch's WER is the sum of the items'
 * errors over the sum of their reference words (what jiwer computes for a list of pairs),
 * not a mean of per-item rates.
 * Words are runs of non-space bytes; characters are UTF-8 code points, spaces included
 * (jiwer's cer). Callers normalise first (textnorm.h). Pure functions, thread-safe. */
#ifndef EM_WER_H
#define EM_WER_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define EM_WER_MAX_TOKENS 20000u /* words or characters per side */

struct em_edits {
    size_t sub, del, ins; /* one minimal alignment's counts */
    size_t ref;           /* reference tokens */
    size_t hyp;           /* hypothesis tokens */
};

/* Errors (sub + del + ins): the edit distance. */
static inline size_t em_edits_errors(const struct em_edits *e) { return e->sub + e->del + e->ins; }

/* Distance between token sequences ref[nr] and hyp[nh] (tokens compared by value).
 * Errors: EM_E_TOO_LONG (a side over EM_WER_MAX_TOKENS), EM_E_NOMEM. */
em_err em_edits_of(const uint32_t *ref, size_t nr, const uint32_t *hyp, size_t nh,
                   struct em_edits *e, struct em_errbuf *eb);
/* Word-level distance of two normalised strings. */
em_err em_wer_words(const char *ref, const char *hyp, struct em_edits *e, struct em_errbuf *eb);
/* Character-level distance (code points; leading/trailing spaces stripped, runs of spaces
 * as one). Errors also EM_E_FORMAT (invalid UTF-8). */
em_err em_wer_chars(const char *ref, const char *hyp, struct em_edits *e, struct em_errbuf *eb);

#endif
