/* coordinator/manifest.h - the list of audio objects a batch is made of.
 *
 * Format: UTF-8 text, one item per line ('\n', optional '\r' before it):
 *   - a URI, leading/trailing blanks trimmed, or
 *   - a JSON object (first non-blank char '{'): {"uri": "...", "id": "...", "meta": {...}}
 *     "uri" required (non-empty string); "id" optional: the item id (em_id_valid:
 *     1..EM_ID_MAX of [A-Za-z0-9._-]); "meta" optional, any JSON value, kept as compact
 *     JSON text.
 * A URI needs a scheme: file:///abs, s3://, http(s):// (em_manifest_uri_ok); plain or
 * relative paths would resolve against whatever directory a worker runs in.
 * The item id is the line's "id", else em_id_item(uri) (common/id.h): the same URI under two
 * ids is two items. Blank lines and lines whose first non-blank char is '#' are skipped.
 * A bad line (too long, NUL/control bytes, invalid UTF-8, bad JSON, no uri, uri too long,
 * no scheme, bad id) is reported with its 1-based line number and cause, and the rest still
 * goes in. An item id seen before is reported (EM_E_ARG, "duplicate of line N") and skipped.
 *
 * No I/O, no logging. A parsed manifest is read-only; not thread-safe while parsing. */
#ifndef EM_MANIFEST_H
#define EM_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define EM_MANIFEST_MAX_LINE (64u * 1024u)          /* bytes per line, without the newline */
#define EM_MANIFEST_MAX_URI 4096u                   /* bytes */
#define EM_MANIFEST_MAX_ITEMS (10u * 1000u * 1000u) /* items per manifest */

struct em_manifest_item {
    const char *id;        /* item id: ref, or the hash of uri; owned by the manifest */
    const char *uri;       /* NUL-terminated, owned by the manifest */
    const char *ref;       /* the line's "id", or NULL */
    const char *meta_json; /* the line's "meta" as compact JSON, or NULL */
    unsigned line;         /* 1-based line number */
};

/* Called once per bad or duplicate line: code is EM_E_FORMAT (malformed), EM_E_TOO_LONG
 * (line or uri over its limit) or EM_E_ARG (duplicate); why is one sentence. */
typedef void (*em_manifest_bad_fn)(void *ud, unsigned line, em_err code, const char *why);

struct em_manifest;

/* Parses data[len]. bad may be NULL. On EM_OK the caller owns *out (em_manifest_free),
 * even when it holds no item. Errors: EM_E_NOMEM, EM_E_TOO_LONG (more than
 * EM_MANIFEST_MAX_ITEMS items). */
em_err em_manifest_parse(const uint8_t *data, size_t len, em_manifest_bad_fn bad, void *ud,
                         struct em_manifest **out, struct em_errbuf *eb);
void em_manifest_free(struct em_manifest *m); /* NULL is a no-op */

size_t em_manifest_count(const struct em_manifest *m);
/* Item i (< count), borrowed: valid while m lives. */
const struct em_manifest_item *em_manifest_at(const struct em_manifest *m, size_t i);
/* Lines reported through bad (including duplicates). */
size_t em_manifest_bad_count(const struct em_manifest *m);

/* 1 if uri starts with a scheme sources may use (file:///, file://localhost/, s3://,
 * http://, https://); else 0 with why (cap bytes) saying what is wrong. */
int em_manifest_uri_ok(const char *uri, char *why, size_t cap);

/* True if s[n] is well-formed UTF-8 without NUL or other C0 control bytes except tab. */
int em_manifest_text_ok(const uint8_t *s, size_t n);

#endif
