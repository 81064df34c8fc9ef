/* results/index.h - the SQLite full-text index of `earmark index` / `earmark search`.
 *
 * Tables (one database file; SQLite from Debian, FTS5 built in):
 *   items(rid INTEGER PRIMARY KEY, id TEXT UNIQUE, uri, batch_id, source, status,
 *         producer_hash, created_at, duration_s, caption, transcript, events, answers)
 *   segments(rid, seg, start_s, end_s, caption, transcript, events, answers)
 *   item_tags(rid, tag)       event tags, normalised (evtags.h, no synonym table)
 *   fts USING fts5(caption, transcript, events, answers; porter + unicode61 tokenizer)
 *       one row for the whole item (rowid rid * EM_INDEX_SEG_SPAN) and one per segment
 *       (rowid rid * EM_INDEX_SEG_SPAN + 1 + seg), so an item's rows are one rowid range.
 * answers holds the free-form answers (prompts other than caption, transcript, events).
 * A record is re-indexed only when its producer hash or created_at differ from the row's
 * (a rerun with another model, or a retried item); otherwise it is left alone.
 * A handle is not thread-safe. */
#ifndef EM_INDEX_H
#define EM_INDEX_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define EM_INDEX_SEG_SPAN 4096       /* fts rowids per item; segments past 4094 not indexed */
#define EM_INDEX_MAX_QUERY 1024u     /* bytes of a search query */
#define EM_INDEX_MAX_LIMIT 10000u    /* items a search returns at most */
#define EM_INDEX_COMMIT_EVERY 5000u  /* records per transaction */
#define EM_INDEX_RANK_CAP 2000u      /* matching fts rows a search ranks at most (see below) */

struct em_index;

/* Opens (creating when absent) the database at path. On EM_OK the caller owns *out
 * (em_index_close). Errors: EM_E_IO (cannot open / not an earmark index), EM_E_NOMEM. */
em_err em_index_open(const char *path, struct em_index **out, struct em_errbuf *eb);
/* Commits what is pending and closes. NULL is a no-op. Returns EM_E_IO if the commit failed. */
em_err em_index_close(struct em_index *ix, struct em_errbuf *eb);

enum em_index_change { EM_INDEX_UNCHANGED, EM_INDEX_ADDED, EM_INDEX_UPDATED };
/* Indexes one record read from uri. *what says what happened. Errors: EM_E_IO (SQLite),
 * EM_E_FORMAT (no id). */
em_err em_index_add(struct em_index *ix, const json_t *rec, const char *uri,
                    enum em_index_change *what, struct em_errbuf *eb);

/* Commits what is pending and merges the FTS5 index into one segment ('optimize'): a bulk
 * load leaves many segments, and each search then reads every one of them for each term,
 * so merging makes searches of frequent words several times cheaper. The command runs it
 * after every load (a no-op cost when nothing changed). Errors: EM_E_IO. */
em_err em_index_optimize(struct em_index *ix, struct em_errbuf *eb);

/* Searches: query is plain words (each quoted for FTS5, all must match); event, when not
 * NULL, keeps items tagged with it (normalised). FTS5 computes bm25 for every matching row
 * before sorting, so when more than the handle's rank cap (EM_INDEX_RANK_CAP) of fts rows
 * match (query and event filter together), only the newest rows (highest rowid, whole
 * items) up to the cap are ranked: every result still matches, best first, with the same
 * bm25 (global statistics), but an older, better row may be left out. Which rows match
 * never depends on the cap. Returns a JSON array, best item first,
 * at most limit items: [{id, source, score, snippet, segments: [{segment, start_s, end_s,
 * score, snippet}]}] (score: FTS5 bm25, lower is better; segments best first).
 * *out is a new reference. Errors: EM_E_ARG (empty or too long query), EM_E_IO. */
em_err em_index_search(struct em_index *ix, const char *query, const char *event, size_t limit,
                       json_t **out, struct em_errbuf *eb);

/* Sets the rank cap of searches on ix (0: EM_INDEX_RANK_CAP); for tests and tuning. */
void em_index_set_rank_cap(struct em_index *ix, size_t cap);

/* The FTS5 query of plain words (exposed for tests): each whitespace-separated word as a
 * quoted string, '"' doubled. Writes at most cap bytes; EM_E_TOO_LONG / EM_E_ARG (no word). */
em_err em_index_fts_query(const char *words, char *out, size_t cap, struct em_errbuf *eb);

#endif
