/* worker/annotation.c - the `earmark.annotation/v1` record as compact JSON (jansson).
 *
 *   em_annot_in (+ em_audio, em_facts, em_model_result, meta JSON text, error) -> json_t
 *   tree in the field order of annotation.h -> json_dumps(JSON_COMPACT) -> malloc'd text
 *
 * Every string from outside (URI, ids, meta, FFmpeg-derived messages, which may have been
 * cut mid-character by a fixed-size error buffer) is made valid UTF-8 first: jansson
 * refuses invalid UTF-8, and a record must never be lost to one bad byte. Invalid
 * sequences become U+FFFD. Non-finite numbers become null (JSON has no NaN). */
#include "worker/annotation.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "model/model.h"

#ifndef EM_VERSION
#define EM_VERSION "unknown"
#endif

#define REAL_DIGITS 10 /* significant digits for reals: 0.1 prints as 0.1 */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid: no overlongs,
 * no surrogates, nothing above U+10FFFF (RFC 3629), as strict as jansson's check. */
static size_t utf8_seq(const unsigned char *s)
{
    unsigned c = s[0];
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        unsigned lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        if (s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80) return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        unsigned lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        if (s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return 0;
        return 4;
    }
    return 0;
}

/* A JSON string of s; NULL s gives "". Invalid UTF-8 bytes become U+FFFD. */
static json_t *jstr(const char *s)
{
    if (!s) s = "";
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s), bad = 0;
    for (size_t i = 0; i < len;) {
        size_t k = utf8_seq(p + i); /* reads stop at the NUL: it fails every continuation test */
        if (k == 0) {
            bad++;
            k = 1;
        }
        i += k;
    }
    if (bad == 0) return json_stringn(s, len);
    if (bad > (SIZE_MAX - len - 1) / 2) return NULL;
    char *t = malloc(len + 2 * bad + 1), *o = t;
    if (!t) return NULL;
    for (size_t i = 0; i < len;) {
        size_t k = utf8_seq(p + i);
        if (k == 0) {
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(o, s + i, k);
            o += k;
            i += k;
        }
    }
    json_t *j = json_stringn(t, (size_t)(o - t));
    free(t);
    return j;
}

static json_t *jreal(double x) { return isfinite(x) ? json_real(x) : json_null(); }

/* Sets key to v, taking v's reference; a NULL v (allocation failure) marks *ok false. */
static void put(json_t *obj, const char *key, json_t *v, int *ok)
{
    if (!v || json_object_set_new(obj, key, v) != 0) *ok = 0;
}

static json_t *rfc3339_now(void)
{
    int64_t ms = em_wall_ms();
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char buf[40];
    if (!gmtime_r(&t, &tm)) return json_string("1970-01-01T00:00:00.000Z");
    size_t k = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + k, sizeof buf - k, ".%03dZ", (int)(ms % 1000));
    return json_string(buf);
}

/* The manifest's meta: parsed JSON if it parses (any JSON value), else kept as a string. */
static json_t *meta_value(const char *text)
{
    if (!text || !*text) return json_null();
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
    return v ? v : jstr(text);
}

static json_t *audio_obj(const struct em_audio *a, const struct em_facts *given, int *ok)
{
    struct em_facts f;
    if (given)
        f = *given;
    else
        em_facts_compute(a->pcm, a->n, EM_AUDIO_RATE, &f);
    json_t *o = json_object();
    if (!o) {
        *ok = 0;
        return NULL;
    }
    put(o, "duration_s", jreal(f.duration_s), ok);
    put(o, "sample_rate", json_integer(a->src_rate), ok);
    put(o, "channels", json_integer(a->src_channels), ok);
    put(o, "codec", jstr(a->codec), ok);
    put(o, "container", jstr(a->container), ok);
    put(o, "rms_dbfs", jreal(f.rms_dbfs), ok);
    put(o, "peak_dbfs", jreal(f.peak_dbfs), ok);
    put(o, "silence_ratio", jreal(f.silence_ratio), ok);
    put(o, "corrupt_packets", json_integer(a->n_corrupt), ok);
    put(o, "decode_errors", json_integer(a->n_decode_errors), ok);
    return o;
}

/* put() with a key from outside (a prompt name): invalid UTF-8 becomes U+FFFD, as values do. */
static void put_key(json_t *obj, const char *key, json_t *v, int *ok)
{
    json_t *k = jstr(key);
    if (!k) {
        json_decref(v);
        *ok = 0;
        return;
    }
    put(obj, json_string_value(k), v, ok);
    json_decref(k);
}

/* {name: f(answer)} over the prompts of one segment. */
static json_t *per_prompt(const struct em_model_result *r, const struct em_model_segment *sg,
                          json_t *(*f)(const struct em_model_answer *), int *ok)
{
    json_t *o = json_object();
    if (!o) {
        *ok = 0;
        return NULL;
    }
    for (size_t p = 0; p < r->n_prompts; p++) put_key(o, r->names[p], f(&sg->answers[p]), ok);
    return o;
}

static json_t *answer_text(const struct em_model_answer *a) { return jstr(a->text); }
static json_t *answer_n(const struct em_model_answer *a) { return json_integer((json_int_t)a->n_ids); }
static json_t *answer_stopped(const struct em_model_answer *a) { return json_boolean(a->stopped); }
static json_t *answer_ids(const struct em_model_answer *a)
{
    json_t *v = json_array();
    for (size_t i = 0; v && i < a->n_ids; i++)
        if (json_array_append_new(v, json_integer(a->ids[i])) != 0) {
            json_decref(v);
            return NULL;
        }
    return v;
}

static json_t *segments(const struct em_model_result *r, bool with_ids, int *ok)
{
    json_t *a = json_array();
    for (size_t s = 0; a && r && s < r->n_segments; s++) {
        const struct em_model_segment *sg = &r->segments[s];
        json_t *o = json_object();
        if (!o || json_array_append_new(a, o) != 0) {
            *ok = 0;
            break;
        }
        put(o, "start_s", jreal(sg->start_s), ok);
        put(o, "end_s", jreal(sg->end_s), ok);
        put(o, "audio_tokens", json_integer(sg->audio_tokens), ok);
        if (r->has_tsegs) put(o, "no_speech_prob", jreal(sg->no_speech_prob), ok);
        if (r->has_tsegs) put(o, "temperature", jreal(sg->temperature), ok);
        if (r->has_tsegs) put(o, "avg_logprob", jreal(sg->avg_logprob), ok);
        if (r->has_tsegs) put(o, "compression_ratio", jreal(sg->compression_ratio), ok);
        put(o, "answers", per_prompt(r, sg, answer_text, ok), ok);
        put(o, "new_tokens", per_prompt(r, sg, answer_n, ok), ok);
        put(o, "stopped", per_prompt(r, sg, answer_stopped, ok), ok);
        if (with_ids) put(o, "ids", per_prompt(r, sg, answer_ids, ok), ok);
    }
    return a;
}

static json_t *events(const struct em_model_result *r)
{
    json_t *a = json_array();
    for (size_t i = 0; a && r && i < r->n_events; i++)
        if (json_array_append_new(a, jstr(r->events[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static json_t *answers(const struct em_model_result *r, int *ok)
{
    json_t *o = json_object();
    for (size_t p = 0; o && r && p < r->n_prompts; p++) put_key(o, r->names[p], jstr(r->answers[p]), ok);
    return o;
}

static json_t *text_or_null(const char *s) { return s ? jstr(s) : json_null(); }

/* The transcript: its text, or, where the model times it (Whisper), {text, language,
 * segments: [{start_s, end_s, text}]}. */
static json_t *transcript(const struct em_model_result *r, int *ok)
{
    if (!r || !r->has_tsegs) return text_or_null(r ? r->transcript : NULL);
    json_t *o = json_object(), *a = json_array();
    if (!o || !a) {
        json_decref(o);
        json_decref(a);
        *ok = 0;
        return NULL;
    }
    put(o, "text", text_or_null(r->transcript), ok);
    put(o, "language", r->language[0] ? jstr(r->language) : json_null(), ok);
    for (size_t i = 0; i < r->n_tsegs; i++) {
        json_t *s = json_object();
        if (!s || json_array_append_new(a, s) != 0) {
            *ok = 0;
            break;
        }
        put(s, "start_s", jreal(r->tsegs[i].start_s), ok);
        put(s, "end_s", jreal(r->tsegs[i].end_s), ok);
        put(s, "text", jstr(r->tsegs[i].text), ok);
    }
    put(o, "segments", a, ok);
    return o;
}

char *em_annot_build(const struct em_annot_in *in, size_t *len)
{
    int ok = 1;
    char *text = NULL;
    json_t *r = json_object(), *o;
    if (!r) return NULL;
    bool failed = in->err != EM_OK;
    const struct em_model_result *mr = in->result;
    const char *model = in->model ? in->model : mr ? mr->identity : "none";

    put(r, "schema", json_string(EM_ANNOT_SCHEMA), &ok);
    put(r, "id", jstr(in->item_id), &ok);
    put(r, "batch_id", jstr(in->batch_id), &ok);
    put(r, "source", jstr(in->source), &ok);
    put(r, "status", json_string(failed ? "failed" : "ok"), &ok);
    put(r, "attempt", json_integer(in->attempt), &ok);
    put(r, "worker", jstr(in->worker_id ? in->worker_id : "coordinator"), &ok);
    put(r, "created_at", rfc3339_now(), &ok);

    put(r, "producer", o = json_object(), &ok);
    if (o) {
        put(o, "hash", jstr(in->producer_hash), &ok);
        put(o, "earmark_version", json_string(EM_VERSION), &ok);
        put(o, "model", jstr(*model ? model : "none"), &ok);
        if (mr) put(o, "form", jstr(mr->form), &ok);
    }
    if (in->audio) put(r, "audio", audio_obj(in->audio, in->facts, &ok), &ok);

    put(r, "segments", segments(mr, in->with_ids, &ok), &ok);
    put(r, "caption", text_or_null(mr ? mr->caption : NULL), &ok);
    put(r, "transcript", transcript(mr, &ok), &ok);
    put(r, "events", events(mr), &ok);
    put(r, "answers", answers(mr, &ok), &ok);
    if (mr) {
        put(r, "tokens", o = json_object(), &ok);
        if (o) {
            put(o, "audio", json_integer(mr->audio_tokens), &ok);
            put(o, "prompt", json_integer(mr->prompt_tokens), &ok);
            put(o, "generated", json_integer(mr->new_tokens), &ok);
        }
    }

    put(r, "timings", o = json_object(), &ok);
    if (o) {
        put(o, "fetch_s", jreal(in->fetch_s), &ok);
        put(o, "decode_s", jreal(in->decode_s), &ok);
        put(o, "model_s", jreal(in->model_s), &ok);
        put(o, "total_s", jreal(in->total_s), &ok);
        if (mr) {
            put(o, "encode_s", jreal(mr->encode_s), &ok);
            put(o, "prefill_s", jreal(mr->prefill_s), &ok);
            put(o, "generate_s", jreal(mr->decode_s), &ok); /* decode_s is the audio's */
            put(o, "tokens_per_s", jreal(mr->tokens_per_s), &ok);
        }
    }
    put(r, "meta", meta_value(in->meta_json), &ok);

    if (failed) {
        put(r, "error", o = json_object(), &ok);
        if (o) {
            put(o, "class", json_string(em_err_name(in->err)), &ok);
            put(o, "message", jstr(in->err_msg && *in->err_msg ? in->err_msg : em_err_str(in->err)), &ok);
            put(o, "retryable", json_boolean(em_err_retryable(in->err)), &ok);
            if (!in->worker_id) /* the coordinator's record: who ran the last attempt */
                put(o, "last_worker", jstr(in->last_worker ? in->last_worker : "unknown"), &ok);
        }
    }
    if (ok) text = json_dumps(r, JSON_COMPACT | JSON_REAL_PRECISION(REAL_DIGITS));
    json_decref(r);
    if (text && len) *len = strlen(text);
    return text;
}
