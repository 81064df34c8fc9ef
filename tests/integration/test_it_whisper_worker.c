/* tests/integration/test_it_whisper_worker.c - the Whisper family inside the distributed
 * pipeline, with the worker unchanged: one `earmark worker --model <whisper tiny.en>` (real
 * weights, deploy/fetch-whisper.sh) behind a real coordinator and Redis transcribes three
 * golden clips; each record carries the model's identity and a transcript object (text,
 * language, timestamped segments) with the words that were spoken, and validates against the
 * schema. The worker announces transcripts only (Hello), so a batch asking for captions
 * is never sent to it and waits for a worker that does them. */
#include <CUnit/CUnit.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/golden/golden.h"
#include "tests/helpers/cluster.h"
#include "tests/helpers/proc.h"
#include "tests/helpers/schema.h"

static struct th_cluster c;
static struct em_storage *st;
static char model_env[1100]; /* "EARMARK_MODEL=..." handed to the worker */
static char manifest[700];

static const struct {
    const char *clip, *words;
} clips[] = {
    {"us_normal", "quick brown fox"},
    {"scottish", "Stella"},
    {"music", "station is on your right"},
};
#define N_CLIPS (sizeof clips / sizeof *clips)

static int clean(void);

static int start(void)
{
    char dir[1024];
    if (golden_whisper_dir(dir, sizeof dir) != 0) return 1;
    snprintf(model_env, sizeof model_env, "EARMARK_MODEL=%s", dir);
    struct th_cluster_opts o = {.workers = 1, .threads = 2, .worker_env = {model_env, NULL}};
    if (th_cluster_start_storage(&c, &o, NULL, &st) != 0) return 1;
    char src[1100];
    const char *names[N_CLIPS];
    for (size_t i = 0; i < N_CLIPS; i++) names[i] = clips[i].clip;
    snprintf(src, sizeof src, "%s/tests/golden/whisper/clips", golden_root());
    return th_cluster_copy_corpus(&c, src, names, N_CLIPS, ".ogg", manifest, sizeof manifest);
}

static int init(void) { return th_suite_init(start, clean); }

static int clean(void)
{
    th_cluster_stop_storage(&c, &st);
    return 0;
}

/* Submits the manifest with prompts to out (file://c.dir/name) and waits for the batch. */
static int run_batch(const char *prompts, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "file://%s/%s", c.dir, name);
    if (th_sh("'%s' submit --redis '%s' --manifest '%s' --out '%s' --prompts %s > '%s/batch.txt' "
              "2>> '%s/submit.log'", th_bin(), c.redis.url, manifest, out, prompts, c.dir, c.dir) != 0)
        return -1;
    char bpath[700];
    snprintf(bpath, sizeof bpath, "%s/batch.txt", c.dir);
    char *b = th_slurp(bpath, NULL);
    if (!b) return -1;
    snprintf(c.batch, sizeof c.batch, "%.*s", (int)strcspn(b, "\r\n"), b);
    free(b);
    return th_cluster_wait(&c, st, out, TH_CLUSTER_WAIT_MS, NULL, NULL);
}

static void worker_transcribes_with_segments(void)
{
    char out[800];
    CU_ASSERT_EQUAL_FATAL(run_batch("transcript", "out-t", out, sizeof out), 0);
    struct th_uris u;
    CU_ASSERT_EQUAL_FATAL(th_uris_load(manifest, &u), 0);
    CU_ASSERT_EQUAL(th_manifest_check(st, out, c.batch, &u), 0);
    for (size_t i = 0; i < u.n; i++) {
        json_t *r = th_record_get(st, out, c.batch, u.v[i]);
        CU_ASSERT_PTR_NOT_NULL(r);
        if (!r) continue;
        CU_ASSERT_EQUAL(th_record_check_ok(r, u.v[i], c.batch), 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(th_jstr(r, "producer", "model"), "whisper-tiny.en@"));
        const json_t *t = json_object_get(r, "transcript");
        CU_ASSERT_FATAL(json_is_object(t));
        const char *text = json_string_value(json_object_get(t, "text"));
        printf("\n    %s: %s", clips[i].clip, text ? text : "(none)");
        CU_ASSERT_PTR_NOT_NULL(text ? strstr(text, clips[i].words) : NULL);
        CU_ASSERT_STRING_EQUAL(th_jstr(r, "transcript", "language"), "en");
        const json_t *segs = json_object_get(t, "segments");
        CU_ASSERT(json_array_size(segs) >= 1);
        double dur = json_number_value(json_object_get(json_object_get(r, "audio"), "duration_s"));
        for (size_t k = 0; k < json_array_size(segs); k++) {
            double a = json_number_value(json_object_get(json_array_get(segs, k), "start_s"));
            double b = json_number_value(json_object_get(json_array_get(segs, k), "end_s"));
            CU_ASSERT(a >= 0 && a <= b && b <= dur + 0.5);
        }
        char path[800];
        snprintf(path, sizeof path, "%s/rec-%zu.json", c.dir, i);
        CU_ASSERT(json_dump_file(r, path, 0) == 0 && th_schema_valid(path) == 0);
        json_decref(r);
    }
    th_uris_free(&u);
    CU_ASSERT_EQUAL(th_cluster_sanitizer_reports(&c), 0);
}

/* The worker announces that it does transcripts only, so a caption batch is never sent to
 * it: the batch waits, and status says for what (the per-item EM_E_UNSUPPORTED refusal is
 * the whisper unit suite's). */
static void caption_waits_for_a_worker_that_does_it(void)
{
    char out[800];
    snprintf(out, sizeof out, "file://%s/out-c", c.dir);
    CU_ASSERT_EQUAL_FATAL(th_cluster_submit_with(&c, manifest, out, 1, "--prompts caption"), 0);
    CU_ASSERT_EQUAL(th_cluster_wait_waiting(&c, "waiting for a worker that does caption", 30000),
                    0);
    char dir[800];
    snprintf(dir, sizeof dir, "%s/out-c", c.dir);
    CU_ASSERT(th_count_json(dir) <= 0);
}

static CU_TestInfo tests[] = {
    {"worker_transcribes_with_segments", worker_transcribes_with_segments},
    {"caption_waits_for_a_worker_that_does_it", caption_waits_for_a_worker_that_does_it},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_it_whisper_worker = {"it_whisper_worker", init, clean, NULL, NULL, tests};
