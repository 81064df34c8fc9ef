/* results/evtags.h - sound-event tag normalisation and set scores for `earmark eval`.
 *
 * A tag is normalised by: case folding (ASCII), '_' and '-' as spaces, runs of spaces as
 * one, outer spaces trimmed; each word's English plural made singular (-ies -> -y,
 * -sses/-ches/-shes/-xes/-zes lose "es", other -s but -ss/-us/-is lose "s"; words of 3
 * letters or fewer kept); then the
 * synonym table maps it to its canonical name.
 *
 * Synonym table file (UTF-8 text; deploy/event-tags.txt is the shipped one; edit freely):
 *     # comment
 *     canonical: alias, alias, ...
 * canonical and aliases are normalised as above when loaded, so "Dogs Barking" and
 * "dog barking" are one entry. At most EM_EVTAG_MAX_ENTRIES aliases, EM_EVTAG_MAX_FILE bytes.
 * A loaded table is read-only and may be shared by threads. */
#ifndef EM_EVTAG_H
#define EM_EVTAG_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define EM_EVTAG_MAX_FILE (1u << 20)  /* bytes of a synonym table */
#define EM_EVTAG_MAX_ENTRIES 10000u   /* aliases in a table */
#define EM_EVTAG_MAX_TAG 256u         /* bytes of one tag; longer tags are cut */

struct em_evtags;

/* Parses a synonym table from data[len]. On EM_OK the caller owns *out (em_evtag_free).
 * Errors: EM_E_FORMAT (a line without ':' - the detail names the line), EM_E_TOO_LONG,
 * EM_E_NOMEM. */
em_err em_evtag_parse(const char *data, size_t len, struct em_evtags **out, struct em_errbuf *eb);
void em_evtag_free(struct em_evtags *t); /* NULL is a no-op */

/* Normalises tag into out[cap] (cap >= EM_EVTAG_MAX_TAG + 1); t may be NULL (no synonyms). */
void em_evtag_norm(const struct em_evtags *t, const char *tag, char *out, size_t cap);

/* Set overlap of predicted and reference tags (each list normalised and deduplicated
 * first): tp = |pred ∩ ref|, npred = |pred|, nref = |ref|. Errors: EM_E_NOMEM. */
struct em_evtag_counts {
    size_t tp, npred, nref;
};
em_err em_evtag_score(const struct em_evtags *t, const char *const *pred, size_t np,
                     const char *const *ref, size_t nr, struct em_evtag_counts *c,
                     struct em_errbuf *eb);

/* precision = tp/npred, recall = tp/nref, F1 their harmonic mean; a 0/0 ratio is 1 when
 * both sets are empty for precision and recall (nothing to find, nothing claimed) and
 * otherwise 0. */
void em_evtag_prf(const struct em_evtag_counts *c, double *p, double *r, double *f1);

#endif
