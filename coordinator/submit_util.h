/* coordinator/submit_util.h - the parts of `earmark submit` that are pure enough to test:
 * prompt names, the producer hash, and deciding whether an existing record is current
 * (--skip-done). Thread-safe (no shared state). */
#ifndef EM_SUBMIT_UTIL_H
#define EM_SUBMIT_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define EM_SUBMIT_MAX_PROMPT 4096u       /* bytes of one free-text prompt */
#define EM_SUBMIT_MAX_MODEL 120u        /* bytes of --model (a family, identity or name) */
#define EM_SUBMIT_DEFAULT_NEW_TOKENS 256u /* max_new_tokens when not given */
#define EM_SUBMIT_MAX_NEW_TOKENS 8192u    /* = EM_MODEL_MAX_NEW_TOKENS (model/model.h) */

struct em_storage;

/* 1 for a built-in prompt name (caption, transcript, events). */
int em_submit_prompt_known(const char *name);

/* Builds the batch's prompts JSON ([{name, text}]: built-ins first, then "free1".."freeN"),
 * the generation settings JSON (greedy; max_new_tokens per prompt and window: the argument,
 * 0 for the default EM_SUBMIT_DEFAULT_NEW_TOKENS), and the producer hash: hex SHA-256 of
 * the canonical JSON (sorted keys, compact) of {earmark_version, gen, model, prompts}.
 * strict_audio (submit --strict-audio) adds "strict_audio": true to the generation settings
 * (and so to the hash; without it both stay as they were): any decode error fails an item.
 * All three outputs are malloc'd (caller frees). Errors: EM_E_NOMEM, EM_E_ARG (unknown
 * built-in, max_new_tokens above EM_SUBMIT_MAX_NEW_TOKENS). */
em_err em_submit_producer(const char *model, const char *const *builtin, size_t nbuiltin,
                          const char *const *free_text, size_t nfree, unsigned max_new_tokens,
                          bool strict_audio, char **prompts_json,
                          char **gen_json, char **hash, struct em_errbuf *eb);

/* 1 if data[len] is an annotation record with status "ok" and producer.hash == hash,
 * 0 otherwise (including malformed JSON). */
int em_submit_record_current(const uint8_t *data, size_t len, const char *hash);

/* The previous <out>/manifest.jsonl as source -> output of its ok items. */
struct em_submit_prev;
/* Parses manifest.jsonl bytes (lines {id, source, status, output}); bad lines skipped.
 * NULL on allocation failure. */
struct em_submit_prev *em_submit_prev_parse(const uint8_t *data, size_t len);
/* Reads <out>/manifest.jsonl through st; *prev is NULL when there is none. */
void em_submit_prev_load(struct em_storage *st, const char *out, struct em_submit_prev **prev);
/* Output URI listed ok for source, or NULL (borrowed). */
const char *em_submit_prev_output(const struct em_submit_prev *p, const char *source);
void em_submit_prev_free(struct em_submit_prev *p);

/* Checks an output prefix before anything is queued: a scheme records can be written to
 * (file:///abs, file://localhost/abs, an absolute path, or s3://bucket/prefix), and a
 * probe: <out>/<probe_name> written (a few bytes) and deleted through st, which also
 * catches s3 without credentials (storage/ refuses to send an unsigned request). EM_OK, or the error with a one-line reason in eb (EM_E_ARG for a bad URI,
 * EM_E_AUTH for missing or refused credentials, storage errors from the probe). */
em_err em_submit_check_out(struct em_storage *st, const char *out, const char *probe_name,
                           struct em_errbuf *eb);

/* Looks for a current record for one item: <out>/<item_id>.json, then the output the
 * previous manifest lists for source. Returns 1 and *uri (malloc'd) when found, 0 when
 * not, -1 on allocation failure. */
int em_submit_find_current(struct em_storage *st, const char *out,
                           const struct em_submit_prev *prev, const char *item_id,
                           const char *source, const char *hash, char **uri);

#endif
