/* tests/unit/test_route.c - coordinator/route.c: what a Hello announces (through the wire,
 * packed and unpacked) decides which batches a worker may take. */
#include <CUnit/CUnit.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/coord.h"
#include "proto/wire.h"

/* A worker as the coordinator records it from a Hello built by em_wire_hello_caps. */
static void hello_worker(struct em_worker *w, const char *model, const struct em_wire_caps *caps)
{
    uint8_t *b = NULL;
    size_t n = 0;
    Earmark__Envelope *env = NULL;
    memset(w, 0, sizeof *w);
    CU_ASSERT_EQUAL_FATAL(em_wire_hello_caps("w", "v", "cpu", model, caps, 2, 1, &b, &n, NULL),
                          EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_wire_unpack(b, n, &env, NULL), EM_OK);
    free(b);
    snprintf(w->model, sizeof w->model, "%s", env->hello->model);
    em_coord_worker_caps(w, env->hello);
    w->hello = 1;
    em_wire_free(env);
}

/* A batch with the given prompts ("caption", ... or NULL name for a free-text one). */
static void batch(struct em_cbatch *b, Earmark__Prompt *pv, Earmark__Prompt **pp,
                  const char *const *names, size_t n, const char *want)
{
    memset(b, 0, sizeof *b);
    for (size_t i = 0; i < n; i++) {
        earmark__prompt__init(&pv[i]);
        pv[i].name = (char *)(names[i] ? names[i] : "free1");
        pv[i].text = (char *)(names[i] ? "" : "What is it?");
        pp[i] = &pv[i];
    }
    b->prompts = pp;
    b->n_prompts = n;
    b->info.want = (char *)want;
    em_coord_batch_needs(b);
}

static void whisper_takes_transcripts_only(void)
{
    static const char *const wt[] = {"transcript"};
    struct em_wire_caps caps = {"whisper", wt, 1, false};
    struct em_worker w;
    hello_worker(&w, "whisper-tiny.en@a39276122850:f16:cpu", &caps);
    struct em_cbatch b;
    Earmark__Prompt pv[3], *pp[3];
    static const char *const tr[] = {"transcript"}, *const cap[] = {"caption", "transcript"},
                             *const fr[] = {NULL};
    batch(&b, pv, pp, tr, 1, NULL);
    CU_ASSERT_TRUE(em_coord_can_serve(&w, &b));
    batch(&b, pv, pp, tr, 1, "whisper");
    CU_ASSERT_TRUE(em_coord_can_serve(&w, &b));
    batch(&b, pv, pp, tr, 1, "whisper-tiny.en"); /* the identity's name */
    CU_ASSERT_TRUE(em_coord_can_serve(&w, &b));
    batch(&b, pv, pp, tr, 1, "whisper-tiny"); /* not a whole name */
    CU_ASSERT_FALSE(em_coord_can_serve(&w, &b));
    batch(&b, pv, pp, tr, 1, "qwen2-audio");
    CU_ASSERT_FALSE(em_coord_can_serve(&w, &b));
    batch(&b, pv, pp, cap, 2, NULL);
    CU_ASSERT_FALSE(em_coord_can_serve(&w, &b));
    batch(&b, pv, pp, fr, 1, NULL);
    CU_ASSERT_FALSE(em_coord_can_serve(&w, &b));
}

static void qwen_takes_every_prompt(void)
{
    static const char *const qt[] = {"caption", "transcript", "events"};
    struct em_wire_caps caps = {"qwen2-audio", qt, 3, true};
    struct em_worker w;
    hello_worker(&w, "demo-model@306f4039ff46:bf16:cpu", &caps);
    struct em_cbatch b;
    Earmark__Prompt pv[4], *pp[4];
    static const char *const all[] = {"caption", "transcript", "events", NULL};
    batch(&b, pv, pp, all, 4, NULL);
    CU_ASSERT_TRUE(em_coord_can_serve(&w, &b));
    batch(&b, pv, pp, all, 4, "QWEN2-AUDIO");
    CU_ASSERT_TRUE(em_coord_can_serve(&w, &b));
    batch(&b, pv, pp, all, 4, "whisper");
    CU_ASSERT_FALSE(em_coord_can_serve(&w, &b));
}

/* A worker without a model records signal facts only, whatever the prompts: it takes any
 * batch that names no model, as a worker from before routing does. */
static void no_family_takes_batches_naming_no_model(void)
{
    struct em_worker w;
    Earmark__Prompt pv[1], *pp[1];
    static const char *const tr[] = {"transcript"};
    struct em_cbatch b;
    static const char *const models[] = {"none", "old-model@0123456789ab:bf16:cpu"};
    for (size_t i = 0; i < 2; i++) {
        hello_worker(&w, models[i], NULL);
        batch(&b, pv, pp, tr, 1, NULL);
        CU_ASSERT_TRUE(em_coord_can_serve(&w, &b));
        batch(&b, pv, pp, tr, 1, "whisper");
        CU_ASSERT_FALSE(em_coord_can_serve(&w, &b));
    }
    batch(&b, pv, pp, tr, 1, "old-model"); /* a name still matches the identity */
    CU_ASSERT_TRUE(em_coord_can_serve(&w, &b));
}

static CU_TestInfo tests[] = {
    {"whisper_takes_transcripts_only", whisper_takes_transcripts_only},
    {"qwen_takes_every_prompt", qwen_takes_every_prompt},
    {"no_family_takes_batches_naming_no_model", no_family_takes_batches_naming_no_model},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_route = {"route", NULL, NULL, NULL, NULL, tests};
