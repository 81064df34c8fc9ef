/* worker/pipeline.c - one task: fetch -> decode -> facts -> record -> put (see pipeline.h).
 * Timings are wall-monotonic seconds per phase; the model phase is 0 when the worker has
 * no model (signal facts only) or the task has no prompts. */
#include "worker/pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "common/clock.h"
#include "common/num.h"
#include "model/audio/audio.h"
#include "worker/annotation.h"
#include "worker/facts.h"
#include "worker/source.h"

#define RECORD_CONTENT_TYPE "application/json"

void em_pipe_env_from_environ(struct em_pipe_env *env)
{
    const char *c = getenv("EARMARK_FAULT_CRASH_ON");
    env->fault_crash_on = c && *c ? c : NULL;
    env->fault_delay_ms = 0;
    long v = em_num_parse(getenv("EARMARK_FAULT_DELAY_MS"), 1, EM_PIPE_MAX_FAULT_DELAY_MS);
    if (v > 0) env->fault_delay_ms = (int)v;
}

/* Last path component of a URI, for error messages ("clip.wav"). */
static const char *base_name(const char *uri)
{
    const char *s = strrchr(uri, '/');
    return s && s[1] ? s + 1 : uri;
}

/* A message longer than res->msg is cut: the file name comes first, so it survives. */
static void set_msg(struct em_pipe_result *res, const char *fmt, const char *a, const char *b)
{
    if (snprintf(res->msg, sizeof res->msg, fmt, a, b) >= (int)sizeof res->msg)
        res->msg[sizeof res->msg - 1] = 0;
}

/* Builds and stores the record described by in. EM_OK or the put's error (detail in eb). */
static em_err put_record(struct em_storage *st, const char *out_uri,
                         const struct em_annot_in *in, struct em_errbuf *eb)
{
    size_t len = 0;
    char *json = em_annot_build(in, &len);
    if (!json) return em_errf(eb, EM_E_NOMEM, "building the record for %s", in->item_id);
    em_err rc = em_storage_put(st, out_uri, json, len, RECORD_CONTENT_TYPE, eb);
    free(json);
    return rc;
}

static bool task_valid(const struct em_pipe_task *t, struct em_pipe_result *res)
{
    const char *bad = NULL;
    if (!t->item_id || !*t->item_id) bad = "item_id";
    else if (!t->batch_id || !*t->batch_id) bad = "batch_id";
    else if (!t->source || !*t->source || strlen(t->source) > EM_PIPE_MAX_URI) bad = "source";
    else if (!t->out_uri || !*t->out_uri || strlen(t->out_uri) > EM_PIPE_MAX_URI) bad = "out_uri";
    if (!bad) return true;
    res->err = EM_E_ARG;
    res->retryable = false;
    set_msg(res, "task %s: missing or oversized %s", t->task_id ? t->task_id : "?", bad);
    return false;
}

void em_pipe_run(const struct em_pipe_env *env, struct em_storage *st,
                 const struct em_pipe_task *t, struct em_pipe_result *res)
{
    double t0 = em_now_s();
    memset(res, 0, sizeof *res);
    struct em_audio audio;
    memset(&audio, 0, sizeof audio);
    struct em_facts facts;
    memset(&facts, 0, sizeof facts);
    struct em_errbuf eb = {{0}};
    uint8_t *bytes = NULL;
    size_t nbytes = 0;
    bool decoded = false;
    double fetch_s = 0, decode_s = 0, model_s = 0;
    struct em_model_result *answers = NULL;
    em_err rc;

    if (!task_valid(t, res)) goto done;

    /* test-only fault hooks (pipeline.h) */
    if (env->fault_crash_on && strstr(t->source, env->fault_crash_on)) {
        struct rlimit no_core = {0, 0}; /* a crash test should not litter core files */
        setrlimit(RLIMIT_CORE, &no_core);
        abort();
    }
    if (env->fault_delay_ms > 0) em_sleep_ms(env->fault_delay_ms);

    int64_t now_wall = em_wall_ms();
    if (t->deadline_ms && now_wall > 0 && (uint64_t)now_wall > t->deadline_ms) {
        /* the coordinator times this attempt out anyway; do not spend the work */
        res->err = em_errf(&eb, EM_E_TIMEOUT, "deadline passed %lld ms before the task started",
                           (long long)((uint64_t)now_wall - t->deadline_ms));
        res->retryable = true;
        set_msg(res, "%s: %s", base_name(t->source), eb.msg);
        goto done;
    }

    double ts = em_now_s();
    rc = em_source_fetch(env->sources, st, t->source, env->max_bytes, &bytes, &nbytes, &eb);
    fetch_s = em_now_s() - ts;
    if (rc == EM_OK) {
        ts = em_now_s();
        rc = em_audio_decode_mem(bytes, nbytes, base_name(t->source), &audio, &eb);
        decode_s = em_now_s() - ts;
        free(bytes);
        bytes = NULL;
        if (rc == EM_OK) {
            decoded = true;
            em_facts_compute(audio.pcm, audio.n, EM_AUDIO_RATE, &facts);
            res->duration_s = audio.duration_s;
            if (audio.duration_s < EM_PIPE_MIN_SECONDS)
                rc = em_errf(&eb, EM_E_TOO_SHORT, "%.3f s of audio, the minimum is %.3f s",
                             audio.duration_s, EM_PIPE_MIN_SECONDS);
            else if (t->strict_audio && audio.n_decode_errors > 0)
                rc = em_errf(&eb, EM_E_AUDIO,
                             "%u audio decode errors (the file is damaged; the batch was "
                             "submitted with --strict-audio)",
                             audio.n_decode_errors);
        }
    }
    if (rc != EM_OK && em_err_retryable(rc)) {
        /* transient: no record; the coordinator retries or writes the final error record */
        res->err = rc;
        res->retryable = true;
        set_msg(res, "%s: %s", base_name(t->source), em_errbuf_msg(&eb, rc));
        goto done;
    }
    if (rc == EM_OK && env->rt && t->n_prompts > 0) {
        ts = em_now_s();
        rc = em_model_annotate_on(env->rt, env->engine, &audio, t->prompts, t->n_prompts, &t->gen, &answers, &eb);
        model_s = em_now_s() - ts;
        if (answers) {
            res->encode_s = answers->encode_s;
            res->prefill_s = answers->prefill_s;
            res->generate_s = answers->decode_s;
            res->new_tokens = answers->new_tokens > 0 ? (unsigned long)answers->new_tokens : 0;
        }
        if (rc != EM_OK && em_err_retryable(rc)) { /* out of memory: another worker may fit */
            res->err = rc;
            res->retryable = true;
            set_msg(res, "%s: model: %s", base_name(t->source), em_errbuf_msg(&eb, rc));
            goto done;
        }
    }
    em_err cause = rc;
    if (cause != EM_OK) set_msg(res, "%s: %s", base_name(t->source), em_errbuf_msg(&eb, cause));

    struct em_annot_in in = {
        .item_id = t->item_id,
        .batch_id = t->batch_id,
        .source = t->source,
        .worker_id = env->worker_id,
        .producer_hash = t->producer_hash,
        .model = env->model ? env->model : "none",
        .meta_json = t->meta_json,
        .attempt = t->attempt,
        .audio = decoded ? &audio : NULL,
        .facts = decoded ? &facts : NULL,
        .fetch_s = fetch_s,
        .decode_s = decode_s,
        .model_s = model_s,
        .result = answers,
        .total_s = em_now_s() - t0,
        .err = cause,
        .err_msg = cause != EM_OK ? res->msg : NULL,
    };
    struct em_errbuf peb = {{0}};
    ts = em_now_s();
    em_err prc = put_record(st, t->out_uri, &in, &peb);
    res->store_s = em_now_s() - ts;
    if (prc != EM_OK) {
        /* The put's own class (err.def) decides: 5xx or a lost connection is retried, a
         * refusal (403, bad URI) is final; no record is stored either way. */
        res->err = prc;
        res->retryable = em_err_retryable(prc);
        char what[200];
        snprintf(what, sizeof what, "%s", em_errbuf_msg(&peb, prc));
        set_msg(res, "storing the record: %s%s", what, "");
        goto done;
    }
    res->wrote_record = true;
    res->err = cause;
    res->retryable = false;

done:
    em_model_result_free(answers);
    free(bytes);
    em_audio_free(&audio);
    res->fetch_s = fetch_s;
    res->decode_s = decode_s;
    res->elapsed_s = em_now_s() - t0;
}
