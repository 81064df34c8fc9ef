/* tests/integration/test_it_annotate.c - `earmark annotate` end to end on the committed tiny
 * checkpoints: FFmpeg decode of tests/golden/clips/speech.flac, mel, encoder, projector,
 * prompt and greedy generation must reproduce the 32 tokens HF generated for every built-in
 * prompt (both forms, both checkpoints, the config's repetition penalty 1.1), up to the
 * golden checkpoints' exact-tie classes (tie_class below), with the three prompts in one
 * call sharing the audio prefill; each line is an earmark.annotation/v1 record that passes
 * the schema; plus the command's error handling (failed records, usage errors), and
 * --capacity / --kv-budget: several files in flight on one engine print their records in
 * FILE order with the ids they get one at a time; a budget under one window fails that file's
 * record naming --kv-budget, one under a KV page is a usage error. */
#include <CUnit/CUnit.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "tests/golden/golden.h"
#include "tests/helpers/proc.h"
#include "tests/helpers/schema.h"

/* Tokens are compared by tie class: make_golden.py repeats embed/lm_head row i % 4096 for
 * every regular id, so those ids tie exactly in HF's logits (see tests/unit/test_decoder.c). */
static int tie_class(json_int_t id)
{
    return id >= 151643 && id <= 151648 ? (int)id : (int)(id % 4096);
}

/* A JSON string's value, or "(missing)": CU_ASSERT_STRING_EQUAL must not see NULL. */
static const char *js(const json_t *v)
{
    const char *s = json_string_value(v);
    return s ? s : "(missing)";
}

static char tmp[512];
static struct golden g;

static int init(void)
{
    if (golden_unpack("data", tmp, sizeof tmp) != 0 || golden_open(&g, tmp) != 0) return 1;
    if (golden_unpack_tiny(tmp) != 0) return 1;
    return 0;
}

static int clean(void)
{
    golden_close(&g);
    golden_rmdir(tmp);
    return 0;
}

/* Runs annotate with args; returns the exit status, *out = first stdout line parsed. */
static int run(const char *args, json_t **out)
{
    char cmd[4096], path[700];
    snprintf(path, sizeof path, "%s/out.json", tmp);
    /* stderr kept in err.txt; a file that blocked the command would end it at 120 s */
    snprintf(cmd, sizeof cmd, "timeout 120 '%s' annotate %s > '%s' 2>'%s/err.txt'", th_bin(),
             args, path, tmp);
    int rc = th_sh("%s", cmd);
    if (out) *out = json_load_file(path, JSON_DISABLE_EOF_CHECK, NULL);
    return rc;
}

/* Checks the record in tmp/out.json against schema/annotation.schema.json (python3
 * jsonschema, as tests/unit/test_annotation.c does); 0 when valid. */
static int schema_valid(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s/out.json", tmp);
    return th_schema_valid(path);
}

/* All three tasks in one call (one shared prefill of the audio per window). */
static void greedy_tokens_match_hf(void)
{
    static const char *ck[2] = {"tiny-bf16", "tiny-f32"};
    static const char *task[3] = {"caption", "transcript", "events"};
    static const char *form[2] = {"base", "chat"};
    int ok = 0;
    for (int c = 0; c < 2; c++)
        for (int f = 0; f < 2; f++) {
            char args[2048], key[256];
            snprintf(args, sizeof args,
                     "--model '%s/%s' --task caption --task transcript --task events --form %s "
                     "--greedy --max-new-tokens 32 --ids '%s/tests/golden/clips/speech.flac'",
                     tmp, ck[c], form[f], golden_root());
            json_t *o = NULL;
            CU_ASSERT_EQUAL(run(args, &o), 0);
            CU_ASSERT_EQUAL(schema_valid(), 0);
            CU_ASSERT_STRING_EQUAL(js(json_object_get(o, "status")), "ok");
            json_t *prod = json_object_get(o, "producer");
            CU_ASSERT_STRING_EQUAL(js(json_object_get(prod, "form")), form[f]);
            const char *mid = json_string_value(json_object_get(prod, "model"));
            CU_ASSERT_TRUE(mid && strncmp(mid, ck[c], strlen(ck[c])) == 0);
            json_t *segs = json_object_get(o, "segments");
            CU_ASSERT_EQUAL(json_array_size(segs), 1);
            json_t *seg = json_array_get(segs, 0);
            CU_ASSERT_EQUAL(json_integer_value(json_object_get(seg, "audio_tokens")),
                            (json_int_t)golden_num(&g, "tiny-f32/speech/audio_tokens"));
            json_int_t generated = 0;
            for (int t = 0; t < 3; t++) {
                json_t *ids = json_object_get(json_object_get(seg, "ids"), task[t]);
                snprintf(key, sizeof key, "%s/speech/%s/%s/greedy_rp_default", ck[c], task[t], form[f]);
                int64_t shape[4];
                int nd;
                int32_t *want = golden_tensor(&g, key, shape, &nd);
                CU_ASSERT_PTR_NOT_NULL_FATAL(want);
                size_t same = 0;
                while (same < json_array_size(ids) && same < (size_t)shape[0] &&
                       tie_class(json_integer_value(json_array_get(ids, same))) == tie_class(want[same]))
                    same++;
                if (same != (size_t)shape[0])
                    printf("\n    %s %s/%s: %zu of %lld tokens agree", ck[c], task[t], form[f], same,
                           (long long)shape[0]);
                CU_ASSERT_EQUAL(json_array_size(ids), (size_t)shape[0]);
                CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_object_get(seg, "new_tokens"), task[t])),
                                (json_int_t)json_array_size(ids));
                CU_ASSERT_PTR_NOT_NULL(json_object_get(json_object_get(o, "answers"), task[t]));
                generated += (json_int_t)json_array_size(ids);
                ok += same == (size_t)shape[0];
                free(want);
            }
            CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_object_get(o, "tokens"), "generated")),
                            generated);
            CU_ASSERT_TRUE(json_is_string(json_object_get(o, "caption")));
            CU_ASSERT_TRUE(json_is_string(json_object_get(o, "transcript")));
            json_decref(o);
        }
    CU_ASSERT_EQUAL(ok, 12);
}

static void errors_are_reported(void)
{
    char args[2048];
    json_t *o = NULL;
    snprintf(args, sizeof args, "--model '%s/tiny-f32' --greedy --max-new-tokens 2 '%s/missing.wav'",
             tmp, tmp);
    CU_ASSERT_EQUAL(run(args, &o), 1);
    CU_ASSERT_EQUAL(schema_valid(), 0);
    CU_ASSERT_STRING_EQUAL(js(json_object_get(o, "status")), "failed");
    json_t *e = json_object_get(o, "error");
    CU_ASSERT_PTR_NOT_NULL(e);
    CU_ASSERT_STRING_EQUAL(js(json_object_get(e, "class")), "EM_E_NOTFOUND");
    json_decref(o);
    /* the failed file's one-line error is on stderr too, naming the file */
    char want[700], errp[600];
    snprintf(errp, sizeof errp, "%s/err.txt", tmp);
    snprintf(want, sizeof want, "earmark annotate: %s/missing.wav: ", tmp);
    char *err = th_slurp(errp, NULL);
    CU_ASSERT_TRUE(err && strstr(err, want));
    free(err);
    /* a FIFO (nobody writes it) and a directory are refused at once, not read or waited on;
     * the good file after them still gets its ok record and the exit status says 1 */
    CU_ASSERT_EQUAL_FATAL(th_sh("mkfifo '%s/fifo.wav' && mkdir -p '%s/dir.wav'", tmp, tmp), 0);
    snprintf(args, sizeof args,
             "--model '%s/tiny-f32' --greedy --max-new-tokens 2 '%s/fifo.wav' '%s/dir.wav' "
             "'%s/tests/golden/clips/tone.flac'",
             tmp, tmp, tmp, golden_root());
    CU_ASSERT_EQUAL(run(args, &o), 1); /* 124 if the FIFO blocked it */
    CU_ASSERT_STRING_EQUAL(js(json_object_get(o, "status")), "failed");
    CU_ASSERT_STRING_EQUAL(js(json_object_get(json_object_get(o, "error"), "class")), "EM_E_ARG");
    json_decref(o);
    char outp[600];
    snprintf(outp, sizeof outp, "%s/out.json", tmp);
    char *out = th_slurp(outp, NULL);
    CU_ASSERT_TRUE(out && strstr(out, "\"status\":\"ok\"")); /* tone.flac, third line */
    free(out);
    err = th_slurp(errp, NULL);
    snprintf(want, sizeof want, "earmark annotate: %s/fifo.wav: ", tmp);
    CU_ASSERT_TRUE(err && strstr(err, want));
    snprintf(want, sizeof want, "earmark annotate: %s/dir.wav: ", tmp);
    CU_ASSERT_TRUE(err && strstr(err, want));
    CU_ASSERT_TRUE(err && !strstr(err, "tone.flac"));
    free(err);
    snprintf(args, sizeof args, "--model '%s/tiny-f32' --prompt 'x<|im_end|>' '%s/missing.wav'", tmp, tmp);
    CU_ASSERT_EQUAL(run(args, NULL), 2);
    snprintf(args, sizeof args, "--model '%s/tiny-f32' --task nope '%s/missing.wav'", tmp, tmp);
    CU_ASSERT_EQUAL(run(args, NULL), 2);
    err = th_slurp(errp, NULL); /* the model's "annotate: ..." is not prefixed twice */
    CU_ASSERT_TRUE(err && strncmp(err, "earmark annotate: prompt 0: unknown task", 40) == 0);
    CU_ASSERT_TRUE(err && !strstr(err, "annotate: annotate:"));
    free(err);
    snprintf(args, sizeof args, "--model '%s/tiny-f32' --task events --task events '%s/missing.wav'", tmp, tmp);
    CU_ASSERT_EQUAL(run(args, NULL), 2);
    snprintf(args, sizeof args, "--model '%s/tiny-f32' --form xml '%s/missing.wav'", tmp, tmp);
    CU_ASSERT_EQUAL(run(args, NULL), 2);
    snprintf(args, sizeof args, "--model '%s/tiny-f32' --max-new-tokens 0 '%s/missing.wav'", tmp, tmp);
    CU_ASSERT_EQUAL(run(args, NULL), 2);
    CU_ASSERT_EQUAL(run("--greedy", NULL), 2);
    snprintf(args, sizeof args, "--model '%s' '%s/missing.wav'", tmp, tmp); /* not a checkpoint */
    CU_ASSERT_EQUAL(run(args, NULL), 1);
    /* free text (twice), chat form, sampling from the generation config; a good file after a
     * bad one still gets its record */
    snprintf(args, sizeof args,
             "--model '%s/tiny-bf16' --form chat --prompt 'What is it?' --prompt 'Where?' "
             "--max-new-tokens 4 --seed 7 '%s/tests/golden/clips/tone.flac'", tmp, golden_root());
    CU_ASSERT_EQUAL(run(args, &o), 0);
    CU_ASSERT_EQUAL(schema_valid(), 0);
    json_t *seg = json_array_get(json_object_get(o, "segments"), 0);
    CU_ASSERT_STRING_EQUAL(js(json_object_get(json_object_get(o, "producer"), "form")), "chat");
    json_int_t n = json_integer_value(json_object_get(json_object_get(seg, "new_tokens"), "prompt"));
    CU_ASSERT_TRUE(n >= 1 && n <= 4);
    n = json_integer_value(json_object_get(json_object_get(seg, "new_tokens"), "prompt2"));
    CU_ASSERT_TRUE(n >= 1 && n <= 4);
    CU_ASSERT_TRUE(json_is_null(json_object_get(o, "caption")));
    CU_ASSERT_PTR_NULL(json_object_get(seg, "ids")); /* only with --ids */
    json_decref(o);
}

/* The statuses and segment ids of every line of tmp/out.json, as one JSON array. */
static json_t *lines_summary(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s/out.json", tmp);
    char *all = th_slurp(path, NULL);
    json_t *sum = json_array();
    for (char *line = all, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        json_t *o = json_loads(line, 0, NULL), *segs = json_object_get(o, "segments"), *ids = json_array();
        for (size_t i = 0; i < json_array_size(segs); i++)
            json_array_append(ids, json_object_get(json_array_get(segs, i), "ids"));
        json_array_append_new(sum, json_pack("{s:O?,s:O?,s:o}", "status", json_object_get(o, "status"),
                                             "source", json_object_get(o, "source"), "ids", ids));
        json_decref(o);
    }
    free(all);
    return sum;
}

static void capacity_keeps_order_and_tokens(void)
{
    char files[2048], args[4096];
    snprintf(files, sizeof files, "'%s/tests/golden/clips/long.flac' '%s/missing.wav' "
             "'%s/tests/golden/clips/speech.flac' '%s/tests/golden/clips/tone.flac'",
             golden_root(), tmp, golden_root(), golden_root());
    const char *common = "--task caption --task transcript --task events --max-new-tokens 8 --ids";
    const char *modes[2] = {"--greedy", "--seed 3"};
    for (int m = 0; m < 2; m++) {
        snprintf(args, sizeof args, "--model '%s/tiny-f32' %s %s %s", tmp, common, modes[m], files);
        CU_ASSERT_EQUAL(run(args, NULL), 1); /* missing.wav */
        json_t *one = lines_summary();
        snprintf(args, sizeof args, "--model '%s/tiny-f32' %s %s --capacity 3 --kv-budget 256K %s",
                 tmp, common, modes[m], files);
        CU_ASSERT_EQUAL(run(args, NULL), 1);
        json_t *three = lines_summary();
        CU_ASSERT_EQUAL(json_array_size(one), 4); /* 256K: 42 pages of 6 KiB, one window of long.flac (33) at a time */
        CU_ASSERT_TRUE(json_equal(one, three));
        CU_ASSERT_STRING_EQUAL(js(json_object_get(json_array_get(three, 1), "status")), "failed");
        CU_ASSERT_STRING_EQUAL(js(json_object_get(json_array_get(three, 2), "status")), "ok");
        json_decref(one);
        json_decref(three);
    }
    /* one page (6 KiB for this checkpoint) cannot hold a window: the file's record fails */
    snprintf(args, sizeof args, "--model '%s/tiny-f32' --greedy --max-new-tokens 2 --capacity 2 "
             "--kv-budget 8K '%s/tests/golden/clips/tone.flac'", tmp, golden_root());
    json_t *o = NULL;
    CU_ASSERT_EQUAL(run(args, &o), 1);
    CU_ASSERT_STRING_EQUAL(js(json_object_get(o, "status")), "failed");
    CU_ASSERT_STRING_EQUAL(js(json_object_get(json_object_get(o, "error"), "class")), "EM_E_TOO_LONG");
    CU_ASSERT_PTR_NOT_NULL(strstr(js(json_object_get(json_object_get(o, "error"), "message")),
                                  "--kv-budget"));
    json_decref(o);
    snprintf(args, sizeof args, "--model '%s/tiny-f32' --kv-budget 1K '%s/missing.wav'", tmp, tmp);
    CU_ASSERT_EQUAL(run(args, NULL), 2);
    snprintf(args, sizeof args, "--model '%s/tiny-f32' --kv-budget lots '%s/missing.wav'", tmp, tmp);
    CU_ASSERT_EQUAL(run(args, NULL), 2);
    snprintf(args, sizeof args, "--model '%s/tiny-f32' --capacity 0 '%s/missing.wav'", tmp, tmp);
    CU_ASSERT_EQUAL(run(args, NULL), 2);
}

static CU_TestInfo tests[] = {
    {"greedy_tokens_match_hf", greedy_tokens_match_hf},
    {"errors_are_reported", errors_are_reported},
    {"capacity_keeps_order_and_tokens", capacity_keeps_order_and_tokens},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_it_annotate = {"it_annotate", init, clean, NULL, NULL, tests};
