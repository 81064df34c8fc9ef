/* tests/fuzz/fuzz_results.c - libFuzzer target for the parsers of results/ that see
 * untrusted text: the text normaliser (records' transcripts and references), word and
 * character distances over what it returns, and the event synonym table. The input is split at its first NUL into a reference and a hypothesis.
 * Invariants: normalisation returns EM_OK or EM_E_FORMAT (invalid UTF-8); a text is at
 * distance 0 from itself; the distance never exceeds the longer side; the table parser
 * returns EM_OK or EM_E_FORMAT. Built and run by tests/fuzz/run.sh (fuzz_results). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "results/evtags.h"
#include "results/textnorm.h"
#include "results/wer.h"

static void distances(const char *a, const char *b)
{
    struct em_edits e;
    if (em_wer_words(a, a, &e, NULL) == EM_OK && em_edits_errors(&e) != 0) abort();
    if (em_wer_words(a, b, &e, NULL) == EM_OK &&
        em_edits_errors(&e) > (e.ref > e.hyp ? e.ref : e.hyp))
        abort();
    if (em_wer_chars(a, b, &e, NULL) == EM_OK &&
        em_edits_errors(&e) > (e.ref > e.hyp ? e.ref : e.hyp))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t na = nul ? (size_t)(nul - data) : size;
    const char *a = (const char *)data, *b = nul ? (const char *)nul + 1 : "";
    size_t nb = nul ? size - na - 1 : 0;
    char *x = NULL, *y = NULL;
    em_err ra = em_textnorm(a, na, &x, NULL), rb = em_textnorm(b, nb, &y, NULL);
    if ((ra != EM_OK && ra != EM_E_FORMAT) || (rb != EM_OK && rb != EM_E_FORMAT)) abort();
    if (x && y) distances(x, y);
    free(x);
    free(y);
    struct em_evtags *t = NULL;
    em_err rt = em_evtag_parse((const char *)data, size, &t, NULL);
    if (rt != EM_OK && rt != EM_E_FORMAT && rt != EM_E_TOO_LONG) abort();
    if (t) {
        char out[EM_EVTAG_MAX_TAG + 1];
        char *tag = strndup(a, na);
        if (tag) em_evtag_norm(t, tag, out, sizeof out);
        free(tag);
    }
    em_evtag_free(t);
    return 0;
}
