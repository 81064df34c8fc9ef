/* tests/unit/test_annotation.c - worker/annotation.c: records built for good and failed
 * items, checked field by field with jansson and validated against
 * schema/annotation.schema.json by python3 jsonschema (which must also REJECT broken
 * records, so the schema check can fail); with a model result (model/model.h, built by
 * hand here: plain data) the model's segments, merged fields, tokens and timings. */
#include <CUnit/CUnit.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/helpers/clips.h"
#include "tests/helpers/proc.h"
#include "model/model.h"
#include "worker/annotation.h"

#define VALID 0
#define INVALID 3 /* what validate.py exits with on a ValidationError */

static char dir[512];
static float pcm[16000];
static struct em_audio audio;
static struct em_facts facts;

static const char validate_py[] =
    "import json, sys, jsonschema\n"
    "schema = json.load(open(sys.argv[1]))\n"
    "jsonschema.Draft202012Validator.check_schema(schema)\n"
    "rec = json.load(open(sys.argv[2], encoding='utf-8'))\n"
    "v = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())\n"
    "errs = sorted(v.iter_errors(rec), key=lambda e: list(e.path))\n"
    "for e in errs: print('  schema:', list(e.path), e.message[:200], file=sys.stderr)\n"
    "sys.exit(3 if errs else 0)\n";

static int init(void)
{
    if (th_tmpdir(dir, sizeof dir) != 0) return 1;
    char p[600];
    snprintf(p, sizeof p, "%s/validate.py", dir);
    FILE *f = fopen(p, "w");
    if (!f) return 1;
    fputs(validate_py, f);
    if (fclose(f) != 0) return 1;
    th_sine(pcm, 16000, 440, 0.5, 16000, 0);
    audio = (struct em_audio){.pcm = pcm, .n = 16000, .duration_s = 1.0, .src_rate = 44100,
                              .src_channels = 2, .codec = "mp3", .container = "mp3"};
    em_facts_compute(pcm, 16000, 16000, &facts);
    return 0;
}

static int clean(void)
{
    th_rmrf(dir);
    return 0;
}

/* Writes text to a file and runs the schema check on it: VALID, INVALID, or other. */
static int validate_text(const char *text)
{
    static int k;
    char p[600];
    snprintf(p, sizeof p, "%s/rec-%d.json", dir, k++);
    FILE *f = fopen(p, "w");
    if (!f) return -1;
    fputs(text, f);
    if (fclose(f) != 0) return -1;
    return th_sh("python3 '%s/validate.py' '%s/schema/annotation.schema.json' '%s'", dir, th_root(), p);
}

static int validate_json(json_t *j)
{
    char *t = json_dumps(j, JSON_COMPACT);
    int rc = t ? validate_text(t) : -1;
    free(t);
    return rc;
}

static struct em_annot_in good_in(void)
{
    return (struct em_annot_in){.item_id = "i-0123456789abcdef", .batch_id = "b-42", .source = "s3://bucket/a.mp3",
                                .worker_id = "w-1", .producer_hash = "abc123", .model = "qwen2-audio-7b-q8_0",
                                .meta_json = "{\"speaker\":\"x\",\"n\":3}", .attempt = 1, .audio = &audio,
                                .facts = &facts, .fetch_s = 0.01, .decode_s = 0.02, .model_s = 1.5,
                                .total_s = 1.6, .err = EM_OK};
}

static json_t *build_parse(const struct em_annot_in *in)
{
    size_t len = 0;
    char *t = em_annot_build(in, &len);
    CU_ASSERT_PTR_NOT_NULL(t);
    if (!t) return NULL;
    CU_ASSERT_EQUAL(len, strlen(t));
    json_error_t je;
    json_t *j = json_loads(t, 0, &je);
    CU_ASSERT_PTR_NOT_NULL(j);
    free(t);
    return j;
}

static void ok_record_has_the_documented_layout(void)
{
    struct em_annot_in in = good_in();
    json_t *j = build_parse(&in);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    static const char *order[] = {"schema", "id", "batch_id", "source", "status", "attempt", "worker",
                                  "created_at", "producer", "audio", "segments", "caption", "transcript",
                                  "events", "answers", "timings", "meta", NULL};
    size_t k = 0;
    for (void *it = json_object_iter(j); it; it = json_object_iter_next(j, it), k++) {
        CU_ASSERT_PTR_NOT_NULL(order[k]);
        if (order[k]) CU_ASSERT_STRING_EQUAL(json_object_iter_key(it), order[k]);
    }
    CU_ASSERT_PTR_NULL(order[k]);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "schema")), EM_ANNOT_SCHEMA);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "status")), "ok");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "id")), "i-0123456789abcdef");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "worker")), "w-1");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "attempt")), 1);
    json_t *p = json_object_get(j, "producer");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(p, "model")), "qwen2-audio-7b-q8_0");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(p, "hash")), "abc123");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(p, "earmark_version")), EM_VERSION);
    json_t *a = json_object_get(j, "audio");
    CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(a, "duration_s")), 1.0, 1e-9);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(a, "sample_rate")), 44100);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(a, "channels")), 2);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(a, "codec")), "mp3");
    CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(a, "rms_dbfs")), facts.rms_dbfs, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(a, "peak_dbfs")), facts.peak_dbfs, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(a, "silence_ratio")), 0.0, 0);
    json_t *t = json_object_get(j, "timings");
    CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(t, "model_s")), 1.5, 1e-12);
    CU_ASSERT_TRUE(json_is_array(json_object_get(j, "segments")));
    CU_ASSERT_TRUE(json_is_null(json_object_get(j, "caption")));
    CU_ASSERT_PTR_NULL(json_object_get(j, "error"));
    CU_ASSERT_EQUAL(validate_json(j), VALID);
    json_decref(j);
}

static void failed_record_carries_error(void)
{
    struct em_annot_in in = {.item_id = "i-1", .batch_id = "b-1", .source = "file:///x.mp3", .attempt = 3,
                             .err = EM_E_AUDIO, .err_msg = "x.mp3: no audio stream"};
    json_t *j = build_parse(&in);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "status")), "failed");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "worker")), "coordinator");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_object_get(j, "producer"), "model")), "none");
    CU_ASSERT_PTR_NULL(json_object_get(j, "audio"));
    CU_ASSERT_TRUE(json_is_null(json_object_get(j, "meta")));
    json_t *e = json_object_get(j, "error");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(e, "class")), "EM_E_AUDIO");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(e, "message")), "x.mp3: no audio stream");
    CU_ASSERT_TRUE(json_is_false(json_object_get(e, "retryable")));
    CU_ASSERT_EQUAL(validate_json(j), VALID);
    json_decref(j);

    /* no detail: the code's message; a retryable class says so */
    in.err = EM_E_STORAGE;
    in.err_msg = NULL;
    j = build_parse(&in);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    e = json_object_get(j, "error");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(e, "message")), em_err_str(EM_E_STORAGE));
    CU_ASSERT_TRUE(json_is_true(json_object_get(e, "retryable")));
    CU_ASSERT_EQUAL(validate_json(j), VALID);
    json_decref(j);

    /* a failure after decoding (e.g. the model) keeps the facts and still validates */
    in = good_in();
    in.err = EM_E_MODEL;
    in.err_msg = "model: bad tensor";
    j = build_parse(&in);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_PTR_NOT_NULL(json_object_get(j, "audio"));
    CU_ASSERT_EQUAL(validate_json(j), VALID);
    json_decref(j);
}

static void schema_rejects_broken_records(void)
{
    /* ok without audio: the builder writes it, the schema must catch it */
    struct em_annot_in in = good_in();
    in.audio = NULL;
    in.facts = NULL;
    json_t *j = build_parse(&in);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_EQUAL(validate_json(j), INVALID);
    json_decref(j);

    in = good_in();
    j = build_parse(&in);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_EQUAL(validate_json(j), VALID);
    json_t *c;

    c = json_deep_copy(j); /* unknown top-level field */
    json_object_set_new(c, "bogus", json_integer(1));
    CU_ASSERT_EQUAL(validate_json(c), INVALID);
    json_decref(c);

    c = json_deep_copy(j); /* status outside the enum */
    json_object_set_new(c, "status", json_string("maybe"));
    CU_ASSERT_EQUAL(validate_json(c), INVALID);
    json_decref(c);

    c = json_deep_copy(j); /* failed without error */
    json_object_set_new(c, "status", json_string("failed"));
    CU_ASSERT_EQUAL(validate_json(c), INVALID);
    json_decref(c);

    c = json_deep_copy(j); /* ok with an error */
    json_object_set_new(c, "error", json_pack("{s:s, s:s}", "class", "EM_E_AUDIO", "message", "x"));
    CU_ASSERT_EQUAL(validate_json(c), INVALID);
    json_decref(c);

    c = json_deep_copy(j); /* wrong type in the facts */
    json_object_set_new(json_object_get(c, "audio"), "channels", json_string("2"));
    CU_ASSERT_EQUAL(validate_json(c), INVALID);
    json_decref(c);

    c = json_deep_copy(j); /* a required field missing */
    json_object_del(c, "created_at");
    CU_ASSERT_EQUAL(validate_json(c), INVALID);
    json_decref(c);

    /* what the model runtime will add is allowed: segments with extra keys, answers */
    c = json_deep_copy(j);
    json_array_append_new(json_object_get(c, "segments"),
                          json_pack("{s:f, s:f, s:{s:s}, s:i}", "start_s", 0.0, "end_s", 30.0, "answers",
                                    "caption", "a dog barks", "tokens", 17));
    json_object_set_new(json_object_get(c, "answers"), "caption", json_string("a dog barks"));
    json_object_set_new(c, "caption", json_string("a dog barks"));
    json_array_append_new(json_object_get(c, "events"), json_string("dog"));
    CU_ASSERT_EQUAL(validate_json(c), VALID);
    json_decref(c);
    json_decref(j);
}

static void meta_round_trips(void)
{
    static const char *metas[] = {
        "{\"a\":[1,2.5,{\"b\":\"\\u00fc\xe6\x97\xa5\"}],\"n\":null,\"t\":true}",
        "42",
        "\"just a string\"",
        "[]",
    };
    struct em_annot_in in = good_in();
    for (size_t k = 0; k < sizeof metas / sizeof *metas; k++) {
        in.meta_json = metas[k];
        json_t *j = build_parse(&in);
        CU_ASSERT_PTR_NOT_NULL_FATAL(j);
        json_t *want = json_loads(metas[k], JSON_DECODE_ANY, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(want);
        CU_ASSERT_TRUE(json_equal(json_object_get(j, "meta"), want));
        json_decref(want);
        json_decref(j);
    }
    /* invalid JSON is kept as text; none is null */
    in.meta_json = "{oops";
    json_t *j = build_parse(&in);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "meta")), "{oops");
    CU_ASSERT_EQUAL(validate_json(j), VALID);
    json_decref(j);
    in.meta_json = "";
    j = build_parse(&in);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_TRUE(json_is_null(json_object_get(j, "meta")));
    json_decref(j);
}

static void odd_uris_are_escaped(void)
{
    static const char *uris[] = {
        "file:///tmp/a \"quoted\" \\back\\slash.wav",
        "s3://b/\xc3\xbc\xe6\x97\xa5\xe6\x9c\xac\xf0\x9f\x8e\xb5.mp3", /* ü日本🎵 */
        "http://h/x\x01\x02\x1f\t\n\r\x7f.ogg",
        "file:///</script>&<!--.wav",
    };
    struct em_annot_in in = good_in();
    for (size_t k = 0; k < sizeof uris / sizeof *uris; k++) {
        in.source = uris[k];
        size_t len;
        char *t = em_annot_build(&in, &len);
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        for (size_t i = 0; i < len; i++) /* control characters only appear escaped */
            if ((unsigned char)t[i] < 0x20) {
                CU_FAIL("raw control character in the JSON text");
                break;
            }
        json_t *j = json_loads(t, 0, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(j);
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "source")), uris[k]);
        CU_ASSERT_EQUAL(validate_text(t), VALID); /* Python's parser agrees */
        json_decref(j);
        free(t);
    }
    /* invalid UTF-8 (a cut multibyte character, a lone continuation byte, an overlong
     * '/', a surrogate) becomes U+FFFD rather than losing the record */
    in.source = "file:///a\xe6\x97.wav\x80/\xc0\xaf/\xed\xa0\x80";
    in.err = EM_E_AUDIO;
    in.err_msg = "file:///a\xe6\x97: cut";
    json_t *j = build_parse(&in);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "source")),
                           "file:///a\xef\xbf\xbd\xef\xbf\xbd.wav\xef\xbf\xbd/\xef\xbf\xbd\xef\xbf\xbd/"
                           "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    CU_ASSERT_EQUAL(validate_json(j), VALID);
    json_decref(j);
}

static void facts_are_computed_when_not_given(void)
{
    struct em_annot_in in = good_in();
    in.facts = NULL;
    json_t *j = build_parse(&in);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    json_t *a = json_object_get(j, "audio");
    CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(a, "rms_dbfs")), facts.rms_dbfs, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(a, "duration_s")), 1.0, 1e-9);
    json_decref(j);
}

static void non_finite_timing_is_null(void)
{
    struct em_annot_in in = good_in();
    in.model_s = NAN;
    in.total_s = INFINITY;
    json_t *j = build_parse(&in);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    json_t *t = json_object_get(j, "timings");
    CU_ASSERT_TRUE(json_is_null(json_object_get(t, "model_s")));
    CU_ASSERT_TRUE(json_is_null(json_object_get(t, "total_s")));
    CU_ASSERT_EQUAL(validate_json(j), VALID);
    json_decref(j);
}

/* A hand-made model result: two windows, prompts "caption" (task) and "q\xff" (free text,
 * a name that is not valid UTF-8). */
static int32_t ids_a[3] = {9, 8, 151645}, ids_b[2] = {7, 6};
static struct em_model_answer ans[2][2] = {
    {{"a dog barks", ids_a, 3, true}, {"outdoors", ids_b, 2, false}},
    {{"", ids_a, 1, true}, {"rain", ids_b, 2, false}},
};
static struct em_model_segment segs[2] = {{.start_s = 0.0, .end_s = 30.0, .audio_tokens = 750, .answers = ans[0]},
                                          {.start_s = 30.0, .end_s = 41.5, .audio_tokens = 288, .answers = ans[1]}};
static char *names[2] = {"caption", "q\xff"}, *tasks[2] = {"caption", NULL};
static char *evs[2] = {"dog", "rain"}, *merged[2] = {"a dog barks", "outdoors rain"};

static struct em_model_result fake_result(void)
{
    struct em_model_result r = {.n_prompts = 2, .names = names, .tasks = tasks, .n_segments = 2,
                                .segments = segs, .caption = "a dog barks", .transcript = NULL,
                                .events = evs, .n_events = 2, .has_events = true, .answers = merged,
                                .audio_tokens = 1038, .prompt_tokens = 1100, .new_tokens = 8,
                                .encode_s = 0.5, .prefill_s = 0.25, .decode_s = 2.0, .tokens_per_s = 4.0};
    snprintf(r.identity, sizeof r.identity, "tiny@0123456789ab:bf16:cpu");
    snprintf(r.form, sizeof r.form, "chat");
    return r;
}

static void model_output_fills_the_record(void)
{
    struct em_model_result mr = fake_result();
    struct em_annot_in in = good_in();
    in.model = NULL; /* the result's identity */
    in.result = &mr;
    json_t *j = build_parse(&in);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    static const char *order[] = {"schema", "id", "batch_id", "source", "status", "attempt", "worker",
                                  "created_at", "producer", "audio", "segments", "caption", "transcript",
                                  "events", "answers", "tokens", "timings", "meta", NULL};
    size_t k = 0;
    for (void *it = json_object_iter(j); it && order[k]; it = json_object_iter_next(j, it), k++)
        CU_ASSERT_STRING_EQUAL(json_object_iter_key(it), order[k]);
    CU_ASSERT_PTR_NULL(order[k]);
    json_t *p = json_object_get(j, "producer");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(p, "model")), "tiny@0123456789ab:bf16:cpu");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(p, "form")), "chat");
    json_t *sg = json_object_get(j, "segments");
    CU_ASSERT_EQUAL_FATAL(json_array_size(sg), 2);
    json_t *s1 = json_array_get(sg, 1);
    CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(s1, "start_s")), 30.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(s1, "end_s")), 41.5, 1e-12);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(s1, "audio_tokens")), 288);
    const char *qname = "q\xef\xbf\xbd"; /* the bad byte became U+FFFD */
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_object_get(s1, "answers"), qname)), "rain");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_object_get(s1, "answers"), "caption")), "");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_object_get(s1, "new_tokens"), qname)), 2);
    CU_ASSERT_TRUE(json_is_true(json_object_get(json_object_get(s1, "stopped"), "caption")));
    CU_ASSERT_TRUE(json_is_false(json_object_get(json_object_get(s1, "stopped"), qname)));
    CU_ASSERT_PTR_NULL(json_object_get(s1, "ids"));
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "caption")), "a dog barks");
    CU_ASSERT_TRUE(json_is_null(json_object_get(j, "transcript")));
    json_t *ev = json_object_get(j, "events");
    CU_ASSERT_EQUAL(json_array_size(ev), 2);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_array_get(ev, 1)), "rain");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_object_get(j, "answers"), qname)),
                           "outdoors rain");
    json_t *t = json_object_get(j, "tokens");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(t, "audio")), 1038);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(t, "prompt")), 1100);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(t, "generated")), 8);
    json_t *tm = json_object_get(j, "timings");
    CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(tm, "prefill_s")), 0.25, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(tm, "encode_s")), 0.5, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(tm, "generate_s")), 2.0, 1e-12);
    /* the audio decode time is not overwritten by the model's decode loop time */
    CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(tm, "decode_s")), 0.02, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(tm, "tokens_per_s")), 4.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(tm, "model_s")), 1.5, 1e-12);
    CU_ASSERT_EQUAL(validate_json(j), VALID);

    json_t *c = json_deep_copy(j); /* tokens is closed */
    json_object_set_new(json_object_get(c, "tokens"), "extra", json_integer(1));
    CU_ASSERT_EQUAL(validate_json(c), INVALID);
    json_decref(c);
    c = json_deep_copy(j);
    json_object_set_new(json_object_get(c, "tokens"), "generated", json_integer(-1));
    CU_ASSERT_EQUAL(validate_json(c), INVALID);
    json_decref(c);
    c = json_deep_copy(j);
    json_object_set_new(json_object_get(json_array_get(json_object_get(c, "segments"), 0), "stopped"),
                        "caption", json_string("yes"));
    CU_ASSERT_EQUAL(validate_json(c), INVALID);
    json_decref(c);
    c = json_deep_copy(j);
    json_object_set_new(json_object_get(c, "producer"), "form", json_string("xml"));
    CU_ASSERT_EQUAL(validate_json(c), INVALID);
    json_decref(c);
    json_decref(j);

    /* with ids, and an explicit model string winning over the result's */
    in.with_ids = true;
    in.model = "given";
    j = build_parse(&in);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_object_get(j, "producer"), "model")), "given");
    json_t *ids = json_object_get(json_object_get(json_array_get(json_object_get(j, "segments"), 0), "ids"),
                                  "caption");
    CU_ASSERT_EQUAL_FATAL(json_array_size(ids), 3);
    CU_ASSERT_EQUAL(json_integer_value(json_array_get(ids, 2)), 151645);
    CU_ASSERT_EQUAL(validate_json(j), VALID);
    json_decref(j);
}

static CU_TestInfo tests[] = {
    {"ok_record_has_the_documented_layout", ok_record_has_the_documented_layout},
    {"failed_record_carries_error", failed_record_carries_error},
    {"schema_rejects_broken_records", schema_rejects_broken_records},
    {"meta_round_trips", meta_round_trips},
    {"odd_uris_are_escaped", odd_uris_are_escaped},
    {"facts_are_computed_when_not_given", facts_are_computed_when_not_given},
    {"non_finite_timing_is_null", non_finite_timing_is_null},
    {"model_output_fills_the_record", model_output_fills_the_record},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_annotation = {"annotation", init, clean, NULL, NULL, tests};
