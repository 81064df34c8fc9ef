/* coordinator/queue.h - the Redis layout of batches and items (hiredis), and every command
 * submit, status and the coordinator send.
 *
 * Layout (all keys prefixed "earmark:"):
 *   batch:<B>           HASH   prompts (JSON [{name,text}]), gen (JSON), out (prefix URI),
 *                              max_attempts, model, producer_hash, total, created (wall ms),
 *                              state ("submitting" -> "open" -> "complete"), completed (ms),
 *                              done, failed (counters, bumped only by a first settle),
 *                              skipped (items settled by submit --skip-done),
 *                              dead (items dead-lettered)
 *   batch:<B>:items     LIST   "<item>\t<source>" per item, manifest order (manifest.jsonl)
 *   batch:<B>:status    HASH   item -> "ok" | "failed"; set once (HSETNX), so an item counts
 *                              once whatever arrives twice
 *   batch:<B>:output    HASH   item -> output URI, only where it is not <out>/<item>.json
 *                              (--skip-done items keep an older record)
 *   batch:<B>:inflight  HASH   coordinator id -> tasks of this batch it has out now
 *                              (refreshed about once a second; for status only)
 *   batch:<B>:tries     HASH   item -> attempts dispatched; "<item>:fails" -> failed attempts
 *                              (the retry budget counts these); "<item>:lost" -> failures
 *                              that were a lost worker; "<item>:err" -> "<EM_E_NAME>\t<msg>"
 *                              the last error
 *   items               STREAM one entry per item (and per re-queue by a later submit):
 *                              batch, item, source, meta (JSON text or ""), ref, attempt;
 *                              consumer group "coordinators"
 *   dead                STREAM dead letters: batch, item, source, attempts, class, message
 *   batches:active      SET    batches not complete yet
 *
 * Crash safety: an entry is XACKed in the same Lua script that settles its item (status +
 * counter), so a coordinator killed at any moment leaves either an unsettled pending entry
 * (re-read with XREADGROUP 0 by the same consumer, or XAUTOCLAIMed by another after the
 * lease) or a settled, acknowledged one. Nothing is deleted from the stream here.
 *
 * A handle wraps one hiredis connection: not thread-safe. Every call reconnects once when
 * the connection was lost. Errors: EM_E_REDIS (connection, or an error reply; the detail
 * has Redis's text), EM_E_NOTFOUND, EM_E_FORMAT (a reply of an unexpected shape),
 * EM_E_NOMEM. */
#ifndef EM_QUEUE_H
#define EM_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/id.h"

#define EM_QUEUE_STREAM "earmark:items"
#define EM_QUEUE_GROUP "coordinators"
#define EM_QUEUE_DEAD "earmark:dead"
#define EM_QUEUE_ACTIVE "earmark:batches:active"
#define EM_QUEUE_TIMEOUT_MS 5000 /* per command */
#define EM_QUEUE_MAX_BATCH_ID 64 /* bytes, ids read back from Redis are checked */
#define EM_QUEUE_MAX_ITEM_ID 64

struct em_queue;

/* url: redis://[:password@]host[:port][/db] or host:port. Copies what it needs.
 * On EM_OK the caller owns *out (em_queue_close). */
em_err em_queue_open(const char *url, struct em_queue **out, struct em_errbuf *eb);
void em_queue_close(struct em_queue *q); /* NULL is a no-op */

/* ---- batches ---- */
struct em_batch_info {
    char id[EM_QUEUE_MAX_BATCH_ID + 1];
    char *prompts_json, *gen_json, *out, *model, *producer_hash; /* owned, malloc'd */
    unsigned max_attempts;
    uint64_t total, done, failed, skipped, dead;
    int64_t created_ms, completed_ms;
    char state[16];
};
void em_batch_info_clear(struct em_batch_info *b); /* frees the strings, zeroes */

/* Writes the batch hash with state "submitting" (fields from b; done/failed 0). */
em_err em_queue_batch_create(struct em_queue *q, const struct em_batch_info *b,
                             struct em_errbuf *eb);
/* state "open" and SADD batches:active: every item is in. */
em_err em_queue_batch_open(struct em_queue *q, const char *batch, struct em_errbuf *eb);
/* Reads the batch hash into *b (caller clears). EM_E_NOTFOUND if absent. */
em_err em_queue_batch_get(struct em_queue *q, const char *batch, struct em_batch_info *b,
                          struct em_errbuf *eb);
/* state "complete", completed = now, SREM batches:active. */
em_err em_queue_batch_complete(struct em_queue *q, const char *batch, struct em_errbuf *eb);
/* Active batch ids: *ids is a malloc'd array of malloc'd strings (em_queue_strv_free). */
em_err em_queue_active(struct em_queue *q, char ***ids, size_t *n, struct em_errbuf *eb);
void em_queue_strv_free(char **v, size_t n);

/* ---- submit side ---- */
struct em_queue_item {
    const char *item_id, *source;
    const char *meta_json; /* NULL: none */
    const char *ref;       /* NULL: none */
};
/* Appends n items (list + stream, pipelined). */
em_err em_queue_add_items(struct em_queue *q, const char *batch, const struct em_queue_item *it,
                          size_t n, struct em_errbuf *eb);
/* Lists an item as already done (ok, counted in done and skipped) without a stream entry;
 * output is the record that stands for it. */
em_err em_queue_add_skipped(struct em_queue *q, const char *batch, const char *item_id,
                            const char *source, const char *output, struct em_errbuf *eb);

/* ---- coordinator side ---- */
struct em_queue_entry {
    char stream_id[48];
    char batch[EM_QUEUE_MAX_BATCH_ID + 1];
    char item[EM_QUEUE_MAX_ITEM_ID + 1];
    char *source, *meta_json, *ref; /* owned; meta/ref "" when none */
};
void em_queue_entries_free(struct em_queue_entry *e, size_t n);

/* 1 if s is a usable batch or item id: 1..max of [A-Za-z0-9_-] (they end up in keys and
 * object paths, so nothing else is accepted from the stream or the wire). */
int em_queue_id_ok(const char *s, size_t max);

/* XGROUP CREATE ... $ MKSTREAM unless it exists. */
em_err em_queue_ensure_group(struct em_queue *q, struct em_errbuf *eb);
/* XREADGROUP (no BLOCK): new entries (after = NULL, id ">") or this consumer's own pending
 * entries with ids greater than after ("0" for all of them; page with the last id seen).
 * *out: malloc'd array of *n entries (em_queue_entries_free). Malformed entries (missing
 * fields, ids too long) are acknowledged, written to the dead stream and left out;
 * *bad counts them (may be NULL). */
em_err em_queue_read(struct em_queue *q, const char *consumer, const char *after, size_t count,
                     struct em_queue_entry **out, size_t *n, size_t *bad, struct em_errbuf *eb);
/* XAUTOCLAIM entries idle at least min_idle_ms, at most count of them. Same ownership. */
em_err em_queue_autoclaim(struct em_queue *q, const char *consumer, int64_t min_idle_ms,
                          size_t count, struct em_queue_entry **out, size_t *n, size_t *bad,
                          struct em_errbuf *eb);
/* XCLAIM ids to consumer with min-idle 0 JUSTID: resets their idle time (lease renewal). */
em_err em_queue_touch(struct em_queue *q, const char *consumer, char *const *ids, size_t n,
                      struct em_errbuf *eb);
/* Settles an item once (status + counter) and XACKs stream_id (NULL/"": no ack) in one
 * script. *first (may be NULL) is 1 if this call set the status. */
em_err em_queue_settle(struct em_queue *q, const char *batch, const char *item, int ok,
                       const char *stream_id, int *first, struct em_errbuf *eb);
em_err em_queue_ack(struct em_queue *q, const char *stream_id, struct em_errbuf *eb);
/* Status of an item: writes "ok"/"failed" into out; EM_E_NOTFOUND while unsettled. */
em_err em_queue_item_status(struct em_queue *q, const char *batch, const char *item, char out[16],
                            struct em_errbuf *eb);

struct em_queue_tries {
    unsigned attempts, fails, lost;
    char err_class[40];
    char err_msg[256];
};
em_err em_queue_tries_get(struct em_queue *q, const char *batch, const char *item,
                          struct em_queue_tries *t, struct em_errbuf *eb);
em_err em_queue_tries_set(struct em_queue *q, const char *batch, const char *item,
                          unsigned attempts, struct em_errbuf *eb);
/* Records a failed attempt: last error, fails += 1, and lost += 1 when lost. */
em_err em_queue_tries_fail(struct em_queue *q, const char *batch, const char *item, int lost,
                           const char *err_class, const char *err_msg, struct em_errbuf *eb);
/* XADD earmark:dead, and batch dead += 1 when batch is non-empty. */
em_err em_queue_dead(struct em_queue *q, const char *batch, const char *item, const char *source,
                     unsigned attempts, const char *err_class, const char *err_msg,
                     struct em_errbuf *eb);

/* Items of a batch in manifest order, from index start, at most count. Each row is
 * filled: item, source, status ("" while unsettled), output override ("" for default).
 * Caller frees with em_queue_rows_free. */
struct em_queue_row {
    char *item, *source, *status, *output;
};
em_err em_queue_rows(struct em_queue *q, const char *batch, size_t start, size_t count,
                     struct em_queue_row **rows, size_t *n, struct em_errbuf *eb);
void em_queue_rows_free(struct em_queue_row *r, size_t n);

/* In-flight bookkeeping for status: this coordinator has n tasks of batch out. */
em_err em_queue_inflight_set(struct em_queue *q, const char *batch, const char *consumer,
                             uint64_t n, struct em_errbuf *eb);
/* Sum over coordinators. */
em_err em_queue_inflight_sum(struct em_queue *q, const char *batch, uint64_t *n,
                             struct em_errbuf *eb);

/* Entries of the group not yet delivered (XINFO GROUPS lag; -1 when Redis cannot say). */
em_err em_queue_lag(struct em_queue *q, long long *lag, struct em_errbuf *eb);

/* Entries in the dead-letter stream (XLEN earmark:dead; 0 when it does not exist). */
em_err em_queue_dead_len(struct em_queue *q, long long *n, struct em_errbuf *eb);

#endif
