/* worker/annotation.h - builds the `earmark.annotation/v1` record (schema/annotation.schema.json)
 * that every item ends as, good or bad: <out>/<item-id>.json. Used by the worker for
 * results and by the coordinator for the error records it writes itself (quarantine,
 * attempts exhausted). JSON through jansson. Thread-safe (no shared state).
 *
 * Record layout (top level): schema, id, batch_id, source, status ("ok"|"failed"),
 * attempt, worker, created_at (RFC 3339 UTC), producer {hash, earmark_version, model},
 * audio {duration_s, sample_rate, channels, codec, container, rms_dbfs, peak_dbfs,
 * silence_ratio} when decodable, segments [] (per-chunk model answers; empty until a model
 * runs), caption / transcript (string or null), events [] (tags), answers {} (prompt name ->
 * text), timings {fetch_s, decode_s, model_s, total_s}, meta (the manifest's meta, verbatim),
 * error {class, message} when failed.
 * With a model result (in->result, model/model.h), the model's output fills: segments
 * [{start_s, end_s, audio_tokens, answers {name: text}, new_tokens {name: n},
 * stopped {name: bool}[, ids {name: [id...]}]}], caption / transcript (null when no prompt
 * had that task), events (tags), answers {name: merged text}, producer.form ("base"|"chat"),
 * tokens {audio, prompt, generated} (top level, only then) and timings.encode_s /
 * prefill_s / generate_s (the result's decode_s; timings.decode_s stays the audio decode) /
 * tokens_per_s; producer.model defaults to the result's identity.
 * Also written (additive, allowed by the schema): audio.corrupt_packets (em_audio.n_corrupt),
 * audio.decode_errors (em_audio.n_decode_errors),
 * error.retryable (em_err_retryable), and in records the coordinator writes (worker_id NULL)
 * error.last_worker: the worker that ran the item's last attempt, or "unknown"; there
 * producer.model is the model that worker announced, or "unknown", never a guess. Strings that are not valid UTF-8 (a URI, or a detail
 * cut mid-character by an em_errbuf) get U+FFFD for each bad byte instead of losing the
 * record; non-finite timings are written as null; meta NULL/"" is null. When audio is
 * given without facts, the facts are computed from audio->pcm. A status "ok" record
 * without audio is written as asked but fails the schema (the schema tests check it). */
#ifndef EM_ANNOTATION_H
#define EM_ANNOTATION_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "model/audio/audio.h"
#include "worker/facts.h"

struct em_model_result; /* model/model.h */

#define EM_ANNOT_SCHEMA "earmark.annotation/v1"

struct em_annot_in {
    const char *item_id;       /* required */
    const char *batch_id;      /* required */
    const char *source;        /* required: the URI as submitted */
    const char *worker_id;     /* NULL: "coordinator" */
    const char *last_worker;   /* coordinator records: worker of the last attempt; NULL: unknown */
    const char *producer_hash; /* may be NULL or "" */
    const char *model;         /* model identity; NULL: the result's identity, else "none" */
    const char *meta_json;     /* manifest meta as JSON text; NULL/"" for none; invalid JSON is kept as a string */
    unsigned attempt;
    const struct em_audio *audio; /* NULL when not decoded */
    const struct em_facts *facts; /* NULL when not decoded */
    const struct em_model_result *result; /* model output, borrowed; NULL when no model ran */
    bool with_ids;             /* segments also list each answer's generated ids */
    double fetch_s, decode_s, model_s, total_s;
    em_err err;                /* EM_OK for a good record */
    const char *err_msg;       /* detail when err != EM_OK */
};

/* Returns the record as malloc'd compact JSON text (caller frees) with its length in *len,
 * or NULL on allocation failure. status is "failed" iff in->err != EM_OK; error.class is
 * em_err_name(err). */
char *em_annot_build(const struct em_annot_in *in, size_t *len);

#endif
