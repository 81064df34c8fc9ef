/* results/records.h - the earmark.annotation/v1 records of one output prefix, read back for
 * the users' tools (eval, diff, report, index, export).
 *
 * Where the records are: OUT_URI/manifest.jsonl (written by the coordinator when a batch
 * completes) lists each item's output URI; without it (a batch still running, or the output
 * of `earmark annotate`), a file:// prefix is listed for *.json files (manifest.jsonl
 * excluded), and an s3:// prefix is an error (storage/ has no listing). A batch id instead
 * of a URI resolves to the batch's out URI through Redis, as `earmark status` does.
 *
 * References (for eval): a record carries them when its manifest line did, in the line's
 * meta: {"uri": "...", "meta": {"ref": {"transcript": "...", "events": [...],
 * "caption": "..."}}}; the worker copies meta verbatim into the record. em_recs_refs_load
 * reads them instead from a manifest file (lines with "ref" at the top level or in "meta"),
 * matched to records by source URI, for manifests written without them in meta.
 *
 * A record that cannot be read or is not an annotation record is reported as one line on
 * stderr (`earmark CMD: URI: cause`), counted in bad, and skipped; the rest is still read.
 * Not thread-safe (one storage handle). */
#ifndef EM_RECORDS_H
#define EM_RECORDS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define EM_RECS_MAX_RECORD (16u * 1024u * 1024u)     /* bytes of one record */
#define EM_RECS_MAX_LIST (256u * 1024u * 1024u)      /* bytes of manifest.jsonl / --refs */
#define EM_RECS_MAX_ITEMS (10u * 1000u * 1000u)      /* records under one prefix */

struct em_storage;

/* One record as read: uri where it was read (malloc'd), rec the parsed record, ref the
 * references (rec's meta.ref, or the --refs manifest's; NULL when none). rec and ref each
 * hold a reference the set drops in em_recs_free. */
struct em_rec {
    char *uri;
    json_t *rec;
    json_t *ref;
};

struct em_recs {
    struct em_rec *v; /* malloc'd, n of them, in listing order */
    size_t n;
    size_t bad;       /* listed but unreadable or not a record */
    char *out;        /* the output prefix, malloc'd */
};

/* Resolves arg (a URI with "://", a path starting with '/' or '.', or an existing local
 * path; else a batch id looked up in Redis at redis_url) to an output prefix URI. On EM_OK *out is malloc'd.
 * Errors: EM_E_ARG (batch id without a Redis URL), EM_E_NOTFOUND (no such batch),
 * EM_E_REDIS, EM_E_NOMEM. */
em_err em_recs_resolve(const char *arg, const char *redis_url, char **out, struct em_errbuf *eb);

/* Lists the record URIs under out (see above). On EM_OK *uris is a malloc'd array of *n
 * malloc'd strings (em_recs_strv_free). Errors: EM_E_NOTFOUND (no manifest.jsonl and not a
 * listable directory), EM_E_TOO_LONG, storage errors, EM_E_NOMEM. */
em_err em_recs_list(struct em_storage *st, const char *out, char ***uris, size_t *n,
                    struct em_errbuf *eb);
void em_recs_strv_free(char **v, size_t n);

/* Checks data[len] is an annotation record; on EM_OK *rec is the parsed object (caller
 * decrefs). EM_E_FORMAT with the cause otherwise. */
em_err em_recs_parse(const uint8_t *data, size_t len, json_t **rec, struct em_errbuf *eb);

/* Called per good record; data[len] are its bytes. A non-zero return stops the walk. */
typedef int (*em_recs_fn)(void *ud, const char *uri, const uint8_t *data, size_t len,
                          json_t *rec);
/* Lists and reads every record, calling fn for each good one; *bad counts the rest (each
 * reported on stderr prefixed by who). Errors: those of em_recs_list, EM_E_CANCELLED when
 * fn stopped the walk. */
em_err em_recs_each(struct em_storage *st, const char *out, const char *who, em_recs_fn fn,
                    void *ud, size_t *bad, struct em_errbuf *eb);

/* em_recs_each into *r (em_recs_free; zeroed on entry). */
em_err em_recs_load(struct em_storage *st, const char *out, const char *who,
                    struct em_recs *r, struct em_errbuf *eb);
void em_recs_free(struct em_recs *r); /* frees contents, zeroes; NULL-safe */

/* Replaces every record's ref with the manifest line's ref for its source (data[len] a
 * manifest: JSON lines with "uri" and "ref" or "meta": {"ref"}; other lines ignored).
 * Records whose source is not in it keep their own. Errors: EM_E_NOMEM. */
em_err em_recs_refs_load(struct em_recs *r, const uint8_t *data, size_t len,
                         struct em_errbuf *eb);

/* Accessors over a record that tolerate missing fields: a string field or NULL; a number
 * field (a.b) or NAN. */
const char *em_rec_str(const json_t *rec, const char *a, const char *b);
double em_rec_num(const json_t *rec, const char *a, const char *b);
/* The record's transcript text (a JSON string, borrowed) or NULL: Qwen2-Audio writes
 * "transcript" as a string, Whisper as an object whose "text" holds it. */
const json_t *em_rec_transcript(const json_t *rec);
/* created_at as ms since the epoch, -1 when absent or malformed. */
int64_t em_rec_created_ms(const json_t *rec);

#endif
