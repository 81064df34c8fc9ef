/* model/text/answer.h - turns the model's free text into record fields: sound-event tags from an
 * "events" answer, and tidy caption / transcript text.
 *
 * Tags: the answer is split on ',' ';' newlines, '|' and the word "and" between spaces
 * ("dog barking and a car horn"); each piece loses list numbering ("1.", "2)", "-", "*",
 * bullet U+2022), surrounding quotes, brackets and punctuation, gets its whitespace runs
 * collapsed to one space, and is lower-cased (Unicode simple lower case, utf8proc).
 * Empty pieces are dropped; pieces longer than EM_ANSWER_MAX_TAG_BYTES are cut at a
 * character boundary; at most EM_ANSWER_MAX_TAGS distinct tags are kept (the rest counted
 * in dropped). Duplicates (after normalisation) are kept once, in order of first appearance.
 *
 * Text: leading/trailing whitespace trimmed, a leading "The original content of this audio
 * is:" (any case; the Instruct model's transcription preamble, spec section 8.2) removed,
 * and then one pair of quotes around the whole rest ('...', "...", or curly) removed.
 * Nothing else is changed.
 *
 * Input is model output: untrusted, possibly invalid UTF-8 (bytes that do not decode are
 * kept as they are in text and dropped from tags). Thread-safe: no shared state. */
#ifndef EM_ANSWER_H
#define EM_ANSWER_H

#include <stddef.h>

#include "common/err.h"

#define EM_ANSWER_MAX_TAGS 64        /* distinct tags kept per set */
#define EM_ANSWER_MAX_TAG_BYTES 64   /* bytes of one tag (UTF-8) */
#define EM_ANSWER_MAX_INPUT (1u << 20) /* bytes of one answer looked at; the rest is ignored */

/* A growing set of tags; zero-initialise, free with em_tags_free. */
struct em_tags {
    char **v;       /* [n] NUL-terminated tags, owned */
    size_t n;
    size_t dropped; /* distinct tags not kept because of EM_ANSWER_MAX_TAGS */
};

/* Adds the tags of text[0..len) to t (see above). Errors: EM_E_NOMEM (t keeps the tags
 * added so far and stays valid). */
em_err em_tags_add(struct em_tags *t, const char *text, size_t len);
void em_tags_free(struct em_tags *t); /* frees the tags, zeroes *t; NULL ok */

/* The normalised text of text[0..len) (see above) as a NUL-terminated malloc'd string
 * (caller frees), or NULL on allocation failure. */
char *em_answer_text(const char *text, size_t len);

#endif
