/* worker/pipeline.h - what a worker does with one task, start to end:
 *
 *   source URI --em_storage_get--> bytes --em_audio_decode_mem--> 16 kHz mono pcm[n]
 *     --em_facts_compute--> facts [--em_model_annotate_on(prompts)--> answers, when the worker
 *     has a model; on the worker's engine when it has one: the decode steps of every clip in
 *     flight run together] --em_annot_build--> JSON record --em_storage_put--> out_uri
 *
 * and how a failure is classified:
 *   - permanent (!em_err_retryable: EM_E_AUDIO, EM_E_FORMAT, EM_E_TOO_LONG, EM_E_NOTFOUND,
 *     EM_E_TOO_SHORT for clips under EM_PIPE_MIN_SECONDS, ...): an error record (status "failed", error {class, message}) is
 *     written to out_uri and the result says ok=false, retryable=false;
 *   - retryable (EM_E_IO, EM_E_STORAGE, EM_E_TIMEOUT when the task's deadline passed
 *     before it started, so the work is not spent): no record is written; the result says
 *     ok=false, retryable=true and the coordinator retries (and writes the error record
 *     itself once attempts run out);
 *   - a failed put of the record: no record; retryable as err.def classes the put's error
 *     (EM_E_AUTH from a 403 is permanent).
 * The source is read through the worker's source policy (worker/source.h).
 *
 * Thread-safety: em_pipe_run may run in several threads at once as long as each thread
 * passes its own em_storage handle (storage handles are not thread-safe); everything else
 * in em_pipe_env is read-only.
 *
 * TEST-ONLY FAULT HOOKS (read once by em_pipe_env_from_environ; never set them in production):
 *   EARMARK_FAULT_CRASH_ON=SUBSTR  the process abort()s when a task's source contains
 *                                  SUBSTR (an input that crashes the worker every time);
 *   EARMARK_FAULT_DELAY_MS=N       sleeps N ms (0..600000) before fetching each task, so
 *                                  tests can catch tasks in flight. */
#ifndef EM_PIPELINE_H
#define EM_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "model/model.h"
#include "storage/storage.h"

struct em_source_policy;

#define EM_PIPE_MAX_FAULT_DELAY_MS 600000 /* ms, cap on EARMARK_FAULT_DELAY_MS */
#define EM_PIPE_MAX_URI 4096              /* bytes, longest source / out URI accepted */
/* Shorter decoded audio is EM_E_TOO_SHORT (permanent): below ~10 mel frames after the
 * encoder's 4x reduction there is nothing for a model to describe. */
#define EM_PIPE_MIN_SECONDS 0.1

/* Per-worker settings; borrowed strings must outlive every em_pipe_run call. */
struct em_pipe_env {
    const char *worker_id; /* written into records */
    const char *model;     /* model identity; NULL: "none" */
    const struct em_model *rt; /* loaded runtime (shared, read-only); NULL: signal facts only */
    struct em_engine *engine;  /* rt's continuous-batching engine (model.h), shared by every
                                  pipeline thread; NULL: each clip decodes on its own */
    size_t max_bytes;      /* fetch limit; 0: EM_AUDIO_MAX_BYTES */
    const struct em_source_policy *sources; /* what may be read (worker/source.h); NULL:
                                               no local files */
    /* test-only fault hooks, see above */
    const char *fault_crash_on; /* NULL or "": off */
    int fault_delay_ms;         /* 0: off */
};

/* Fills the fault hooks from the environment (EARMARK_FAULT_*); other fields untouched.
 * A malformed EARMARK_FAULT_DELAY_MS is ignored (0). The returned strings point into
 * the environment. */
void em_pipe_env_from_environ(struct em_pipe_env *env);

/* One task, as decoded from the wire. Strings are borrowed for the call. */
struct em_pipe_task {
    const char *task_id;
    const char *batch_id;
    const char *item_id;
    const char *source;
    const char *out_uri;
    const char *meta_json;     /* may be NULL or "" */
    const char *producer_hash; /* may be NULL or "" */
    unsigned attempt;          /* 1-based */
    uint64_t deadline_ms;      /* wall ms since the epoch, checked at start; 0: none */
    const struct em_model_prompt *prompts; /* [n_prompts] the batch's prompts */
    size_t n_prompts;
    struct em_gen_params_override gen;     /* the batch's generation settings ({0}: defaults) */
    bool strict_audio; /* a decode error (em_audio.n_decode_errors > 0) fails the item */
};

struct em_pipe_result {
    em_err err;          /* EM_OK when the annotation record was stored */
    bool retryable;      /* meaningful when err != EM_OK */
    bool wrote_record;   /* a record (ok or error) is at out_uri */
    char msg[256];       /* detail when err != EM_OK, names the source and the cause */
    double duration_s;   /* decoded audio duration, 0 when not decoded */
    double elapsed_s;    /* wall time spent in em_pipe_run */
    /* where that time went (wall seconds; 0 for a stage not reached) and the tokens the
     * model generated, for the worker's metrics */
    double fetch_s, decode_s, encode_s, prefill_s, generate_s, store_s;
    unsigned long new_tokens;
};

/* Runs the task to completion (never aborts on bad input; only the test-only crash hook
 * aborts). st is the calling thread's storage handle. Always fills *res. */
void em_pipe_run(const struct em_pipe_env *env, struct em_storage *st,
                 const struct em_pipe_task *task, struct em_pipe_result *res);

#endif
