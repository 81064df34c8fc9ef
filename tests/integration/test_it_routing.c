/* tests/integration/test_it_routing.c - routing by model in one cluster (real Redis, real
 * coordinator, real workers): worker w0 runs the Qwen2-Audio demo model (random weights),
 * worker w1 Whisper tiny.en (real weights, deploy/fetch-whisper.sh). Each announces its
 * family and tasks in Hello. A transcript batch with `submit --model whisper` is done by the
 * Whisper worker only; a caption batch (no --model) by the Qwen2-Audio worker only; a batch
 * asking Whisper for captions is never dispatched and `earmark status` says it is waiting
 * for a worker with whisper. */
#include <CUnit/CUnit.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/golden/golden.h"
#include "tests/helpers/clips.h"
#include "tests/helpers/cluster.h"
#include "tests/helpers/proc.h"

#define WAITING_MS 30000 /* bound on the coordinator noticing that no worker can serve */

static struct th_cluster c;
static struct em_storage *st;
static char qwen_env[1100], whisper_env[1100]; /* "EARMARK_MODEL=..." per worker */
static char manifest[700];
static const char *const clips[] = {"us_normal", "scottish", "music"};
#define N_CLIPS (sizeof clips / sizeof *clips)

static int clean(void);

static int start(void)
{
    char dir[1024], tmp[] = "/tmp/em-routing-XXXXXX";
    if (golden_whisper_dir(dir, sizeof dir) != 0) return 1;
    snprintf(whisper_env, sizeof whisper_env, "EARMARK_MODEL=%s", dir);
    /* the demo model lives beside the cluster: made before it, in its own temp dir */
    if (!mkdtemp(tmp)) return 1;
    char model[700];
    snprintf(model, sizeof model, "%s/demo-model", tmp);
    if (th_make_demo_model(model, NULL) != 0) return 1;
    snprintf(qwen_env, sizeof qwen_env, "EARMARK_MODEL=%s", model);
    struct th_cluster_opts o = {.workers = 2, .threads = 1};
    o.worker_env_each[0] = qwen_env;
    o.worker_env_each[1] = whisper_env;
    if (th_cluster_start_storage(&c, &o, NULL, &st) != 0) return 1;
    char src[1100];
    snprintf(src, sizeof src, "%s/tests/golden/whisper/clips", golden_root());
    return th_cluster_copy_corpus(&c, src, clips, N_CLIPS, ".ogg", manifest, sizeof manifest);
}

static int init(void) { return th_suite_init(start, clean); }

static int clean(void)
{
    char model[1100];
    snprintf(model, sizeof model, "%s", qwen_env + strlen("EARMARK_MODEL="));
    th_cluster_stop_storage(&c, &st);
    char *slash = strrchr(model, '/');
    if (slash && strncmp(model, "/tmp/em-routing-", 16) == 0) {
        *slash = 0;
        th_sh("rm -rf '%s'", model);
    }
    return 0;
}

/* Submits the manifest with flags to file://c.dir/name; out gets the URI. */
static int submit(const char *flags, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "file://%s/%s", c.dir, name);
    return th_cluster_submit_with(&c, manifest, out, 2, flags);
}

/* Every item's record is ok and was made by a model whose identity contains model_part
 * (and not avoid). */
static void check_made_by(const char *out, const char *model_part, const char *avoid)
{
    struct th_uris u;
    CU_ASSERT_EQUAL_FATAL(th_uris_load(manifest, &u), 0);
    CU_ASSERT_EQUAL(th_manifest_check(st, out, c.batch, &u), 0);
    for (size_t i = 0; i < u.n; i++) {
        json_t *r = th_record_get(st, out, c.batch, u.v[i]);
        CU_ASSERT_PTR_NOT_NULL(r);
        if (!r) continue;
        CU_ASSERT_EQUAL(th_record_check_ok(r, u.v[i], c.batch), 0);
        const char *m = th_jstr(r, "producer", "model");
        if (!strstr(m, model_part) || strstr(m, avoid))
            fprintf(stderr, "\n    %s: made by %s\n", u.v[i], m);
        CU_ASSERT_PTR_NOT_NULL(strstr(m, model_part));
        CU_ASSERT_PTR_NULL(strstr(m, avoid));
        json_decref(r);
    }
    th_uris_free(&u);
}

static void transcript_for_whisper_goes_to_whisper(void)
{
    char out[800];
    CU_ASSERT_EQUAL_FATAL(submit("--prompts transcript --model whisper", "out-t", out, sizeof out),
                          0);
    CU_ASSERT_EQUAL_FATAL(th_cluster_wait(&c, st, out, TH_CLUSTER_WAIT_MS, NULL, NULL), 0);
    check_made_by(out, "whisper-tiny.en@", "demo");
}

static void caption_goes_to_qwen2_audio(void)
{
    char out[800];
    CU_ASSERT_EQUAL_FATAL(submit("--prompts caption --max-new-tokens 4", "out-c", out, sizeof out),
                          0);
    CU_ASSERT_EQUAL_FATAL(th_cluster_wait(&c, st, out, TH_CLUSTER_WAIT_MS, NULL, NULL), 0);
    check_made_by(out, "@", "whisper");
}

static void caption_from_whisper_waits(void)
{
    char out[800];
    CU_ASSERT_EQUAL_FATAL(submit("--prompts caption --model whisper", "out-w", out, sizeof out), 0);
    CU_ASSERT_EQUAL(th_cluster_wait_waiting(&c, "waiting for a worker with whisper", WAITING_MS),
                    0);
    json_t *s = th_cluster_status(&c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_STRING_EQUAL(th_jstr(s, "model", NULL), "whisper");
    CU_ASSERT_PTR_NOT_NULL(strstr(th_jstr(s, "waiting", NULL), "caption"));
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(s, "done")), 0);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(s, "failed")), 0);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(s, "in_flight")), 0);
    json_decref(s);
    /* the human form says the same */
    char txt[800];
    snprintf(txt, sizeof txt, "%s/status.txt", c.dir);
    CU_ASSERT_EQUAL(th_sh("EARMARK_REDIS_URL='%s' '%s' status '%s' > '%s'", c.redis.url, th_bin(),
                          c.batch, txt),
                    0);
    char *t = th_slurp(txt, NULL);
    CU_ASSERT_PTR_NOT_NULL(t ? strstr(t, "waiting for a worker with whisper (caption)") : NULL);
    free(t);
    /* nothing was dispatched: no record was written */
    char dir[800];
    snprintf(dir, sizeof dir, "%s/out-w", c.dir);
    CU_ASSERT(th_count_json(dir) <= 0);
    CU_ASSERT_EQUAL(th_cluster_sanitizer_reports(&c), 0);
}

static CU_TestInfo tests[] = {
    {"transcript_for_whisper_goes_to_whisper", transcript_for_whisper_goes_to_whisper},
    {"caption_goes_to_qwen2_audio", caption_goes_to_qwen2_audio},
    {"caption_from_whisper_waits", caption_from_whisper_waits},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_it_routing = {"it_routing", init, clean, NULL, NULL, tests};
