/* tests/unit/test_model.c - model/model.c, the facade the worker calls, on the committed
 * tiny checkpoints (tests/golden):
 *   - em_model_annotate with the three built-in prompts in one call (one shared prefill of
 *     the audio prefix, then the prompts decoded together) gives, per prompt, the 32 greedy tokens HF generated (repetition
 *     penalty 1.1 from the config), compared by the checkpoints' tie classes; both forms;
 *   - batched == each prompt alone, greedy and seeded sampling;
 *   - a 40 s clip gives two segments with their bounds; merged fields follow the segments;
 *   - identity: stable across loads, differs between checkpoints and with config.json;
 *   - load errors name the missing file; prompt and override errors. */
#include <CUnit/CUnit.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "tests/golden/golden.h"
#include "tests/helpers/proc.h"

#define GOLDEN_DISTINCT_ROWS 4096 /* see tests/unit/test_decoder.c */

static int tie_class(int32_t id)
{
    return id >= 151643 && id <= 151648 ? id : id % GOLDEN_DISTINCT_ROWS;
}

static char tmp[512];
static struct golden g;
static struct em_model *bf16, *f32; /* bf16: auto form (chat template present) */
static struct em_audio speech, longclip;

static int load_clip(const char *name, struct em_audio *a)
{
    memset(a, 0, sizeof *a);
    if (golden_clip(name, tmp, &a->pcm, &a->n) != 0) return -1;
    a->duration_s = (double)a->n / EM_AUDIO_RATE;
    return 0;
}

static int init(void)
{
    if (golden_unpack("data", tmp, sizeof tmp) != 0 || golden_open(&g, tmp) != 0) return 1;
    if (golden_unpack_tiny(tmp) != 0) return 1;
    char dir[700];
    struct em_errbuf eb = {{0}};
    snprintf(dir, sizeof dir, "%s/tiny-bf16", tmp);
    if (em_model_load(dir, NULL, &bf16, &eb) != EM_OK) {
        fprintf(stderr, "model: %s\n", eb.msg);
        return 1;
    }
    struct em_model_opts o = em_model_opts_default();
    o.form = EM_MODEL_FORM_BASE;
    snprintf(dir, sizeof dir, "%s/tiny-f32/", tmp); /* trailing slash: same name */
    if (em_model_load(dir, &o, &f32, &eb) != EM_OK) {
        fprintf(stderr, "model: %s\n", eb.msg);
        return 1;
    }
    return load_clip("speech", &speech) || load_clip("long", &longclip);
}

static int clean(void)
{
    em_model_free(bf16);
    em_model_free(f32);
    free(speech.pcm);
    free(longclip.pcm);
    golden_close(&g);
    golden_rmdir(tmp);
    return 0;
}

static const struct em_model_prompt tasks3[3] = {
    {NULL, "caption", NULL}, {NULL, "transcript", NULL}, {NULL, "events", NULL}};

/* Checks r's answers for the three tasks against HF's greedy tokens; returns how many agree. */
static int compare_greedy(const struct em_model_result *r, const char *ck, const char *form)
{
    int ok = 0;
    for (size_t p = 0; p < 3; p++) {
        char key[256];
        int64_t shape[4];
        int nd;
        snprintf(key, sizeof key, "%s/speech/%s/%s/greedy_rp_default", ck, tasks3[p].task, form);
        int32_t *want = golden_tensor(&g, key, shape, &nd);
        CU_ASSERT_PTR_NOT_NULL_FATAL(want);
        const struct em_model_answer *a = &r->segments[0].answers[p];
        size_t same = 0;
        while (same < a->n_ids && same < (size_t)shape[0] &&
               tie_class(a->ids[same]) == tie_class(want[same]))
            same++;
        if (same != (size_t)shape[0] || a->n_ids != (size_t)shape[0])
            printf("\n    %s %s/%s: %zu tokens, %zu agree with HF's %lld", ck, tasks3[p].task, form,
                   a->n_ids, same, (long long)shape[0]);
        ok += same == (size_t)shape[0] && a->n_ids == (size_t)shape[0];
        free(want);
    }
    return ok;
}

static void shared_prefill_gives_hf_greedy_tokens(void)
{
    struct em_gen_params_override o = {.max_new_tokens = 32, .greedy = true};
    struct em_errbuf eb = {{0}};
    struct em_model *ms[2] = {bf16, f32};
    const char *ck[2] = {"tiny-bf16", "tiny-f32"}, *form[2] = {"chat", "base"};
    for (int c = 0; c < 2; c++) {
        struct em_model_result *r = NULL;
        em_err rc = em_model_annotate(ms[c], &speech, tasks3, 3, &o, &r, &eb);
        CU_ASSERT_EQUAL_FATAL(rc, EM_OK);
        CU_ASSERT_EQUAL_FATAL(r->n_segments, 1);
        CU_ASSERT_STRING_EQUAL(r->form, form[c]);
        CU_ASSERT_EQUAL(r->segments[0].audio_tokens,
                        (int)golden_num(&g, "tiny-f32/speech/audio_tokens"));
        CU_ASSERT_EQUAL(compare_greedy(r, ck[c], form[c]), 3);
        /* bookkeeping: every prompt's answer counted, names default to the task */
        long n_new = 0;
        for (size_t p = 0; p < 3; p++) {
            n_new += (long)r->segments[0].answers[p].n_ids;
            CU_ASSERT_STRING_EQUAL(r->names[p], tasks3[p].task);
            CU_ASSERT_PTR_NOT_NULL(r->answers[p]);
        }
        CU_ASSERT_EQUAL(r->new_tokens, n_new);
        CU_ASSERT_EQUAL(r->audio_tokens, r->segments[0].audio_tokens);
        CU_ASSERT_TRUE(r->prompt_tokens > r->audio_tokens);
        CU_ASSERT_PTR_NOT_NULL(r->caption);
        CU_ASSERT_PTR_NOT_NULL(r->transcript);
        CU_ASSERT_TRUE(r->has_events);
        CU_ASSERT_STRING_EQUAL(r->identity, em_model_identity(ms[c]));
        em_model_result_free(r);
    }
}

/* The same prompt alone (em_generate on the whole prompt, no shared cache) gives the same
 * tokens as within the three (em_generate_shared after one prefill of the audio prefix). */
static void single_prompt_equals_shared(void)
{
    struct em_gen_params_override o = {.max_new_tokens = 12, .greedy = true};
    struct em_model_result *all = NULL, *one = NULL;
    CU_ASSERT_EQUAL_FATAL(em_model_annotate(f32, &speech, tasks3, 3, &o, &all, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_model_annotate(f32, &speech, &tasks3[1], 1, &o, &one, NULL), EM_OK);
    const struct em_model_answer *a = &all->segments[0].answers[1], *b = &one->segments[0].answers[0];
    CU_ASSERT_EQUAL_FATAL(a->n_ids, b->n_ids);
    CU_ASSERT_EQUAL(memcmp(a->ids, b->ids, a->n_ids * sizeof *a->ids), 0);
    CU_ASSERT_STRING_EQUAL(a->text, b->text);
    CU_ASSERT_PTR_NULL(one->caption);
    CU_ASSERT_FALSE(one->has_events);
    CU_ASSERT_PTR_NOT_NULL(one->transcript);
    CU_ASSERT_EQUAL(one->prefill_s, 0); /* nothing shared, nothing measured as shared */
    em_model_result_free(all);
    em_model_result_free(one);
}

static void long_clip_gives_two_segments(void)
{
    struct em_gen_params_override o = {.max_new_tokens = 3, .greedy = true};
    struct em_model_prompt ps[2] = {{NULL, "caption", NULL}, {"q", NULL, "What is it?"}};
    struct em_model_result *r = NULL;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(em_model_annotate(f32, &longclip, ps, 2, &o, &r, &eb), EM_OK);
    CU_ASSERT_EQUAL_FATAL(r->n_segments, 2);
    CU_ASSERT_DOUBLE_EQUAL(r->segments[0].start_s, 0.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(r->segments[0].end_s, 30.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(r->segments[1].start_s, 30.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(r->segments[1].end_s, (double)longclip.n / 16000, 1e-9);
    CU_ASSERT_EQUAL(r->segments[0].audio_tokens, 750);
    CU_ASSERT_EQUAL(r->audio_tokens, r->segments[0].audio_tokens + r->segments[1].audio_tokens);
    CU_ASSERT_STRING_EQUAL(r->names[1], "q");
    CU_ASSERT_PTR_NULL(r->tasks[1]);
    long n_new = 0;
    for (size_t s = 0; s < 2; s++)
        for (size_t p = 0; p < 2; p++) {
            CU_ASSERT_TRUE(r->segments[s].answers[p].n_ids >= 1 && r->segments[s].answers[p].n_ids <= 3);
            CU_ASSERT_PTR_NOT_NULL(r->segments[s].answers[p].text);
            n_new += (long)r->segments[s].answers[p].n_ids;
        }
    CU_ASSERT_EQUAL(r->new_tokens, n_new);
    /* the merged caption is the caption answers joined */
    CU_ASSERT_STRING_EQUAL(r->caption, r->answers[0]);
    CU_ASSERT_TRUE(r->encode_s >= 0 && r->prefill_s >= 0 && r->decode_s >= 0);
    em_model_result_free(r);
}

static void identity_is_stable_and_specific(void)
{
    char dir[700];
    struct em_model *again = NULL;
    snprintf(dir, sizeof dir, "%s/tiny-bf16", tmp);
    CU_ASSERT_EQUAL_FATAL(em_model_load(dir, NULL, &again, NULL), EM_OK);
    CU_ASSERT_STRING_EQUAL(em_model_identity(again), em_model_identity(bf16));
    CU_ASSERT_STRING_EQUAL(em_model_checksum(again), em_model_checksum(bf16));
    em_model_free(again);
    CU_ASSERT_EQUAL(strncmp(em_model_identity(bf16), "tiny-bf16@", 10), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(em_model_identity(bf16), ":bf16:cpu"));
    CU_ASSERT_EQUAL(strncmp(em_model_identity(f32), "tiny-f32@", 9), 0);
    CU_ASSERT_STRING_EQUAL(em_model_dtype(f32), "f32");
    CU_ASSERT_EQUAL(strlen(em_model_checksum(f32)), 64);
    CU_ASSERT_STRING_NOT_EQUAL(em_model_checksum(f32), em_model_checksum(bf16));
    CU_ASSERT_EQUAL(em_model_form(bf16), EM_MODEL_FORM_CHAT);
    CU_ASSERT_EQUAL(em_model_form(f32), EM_MODEL_FORM_BASE);
    /* same weights, config.json changed by one space: another checksum; name override */
    snprintf(dir, sizeof dir, "%s/edited", tmp);
    CU_ASSERT_EQUAL_FATAL(th_sh("mkdir -p '%s' && ln -s '%s/tiny-f32/'* '%s/' && rm '%s/config.json' && "
                                "{ cat '%s/tiny-f32/config.json'; echo ' '; } > '%s/config.json'",
                                dir, tmp, dir, dir, tmp, dir), 0);
    struct em_model_opts o = em_model_opts_default();
    o.name = "renamed";
    CU_ASSERT_EQUAL_FATAL(em_model_load(dir, &o, &again, NULL), EM_OK);
    CU_ASSERT_STRING_NOT_EQUAL(em_model_checksum(again), em_model_checksum(f32));
    CU_ASSERT_EQUAL(strncmp(em_model_identity(again), "renamed@", 8), 0);
    CU_ASSERT_EQUAL(em_model_form(again), EM_MODEL_FORM_CHAT); /* auto: template present */
    em_model_free(again);
    /* same config and shapes, one weight byte changed (the last one, which is sampled): a
     * fine-tune is another model */
    snprintf(dir, sizeof dir, "%s/tuned", tmp);
    CU_ASSERT_EQUAL_FATAL(th_sh("mkdir -p '%s' && ln -s '%s/tiny-f32/'* '%s/' && rm '%s/model.safetensors' && "
                                "cp '%s/tiny-f32/model.safetensors' '%s/' && "
                                "python3 -c 'import sys; f = open(sys.argv[1], \"r+b\"); f.seek(-1, 2); "
                                "b = f.read(1); f.seek(-1, 2); f.write(bytes([b[0] ^ 1]))' '%s/model.safetensors'",
                                dir, tmp, dir, dir, tmp, dir, dir), 0);
    CU_ASSERT_EQUAL_FATAL(em_model_load(dir, NULL, &again, NULL), EM_OK);
    CU_ASSERT_STRING_NOT_EQUAL(em_model_checksum(again), em_model_checksum(f32));
    em_model_free(again);
}

/* A copy of tiny-f32 (symlinks) without the files in drop (space-separated). */
static void broken_dir(const char *name, const char *drop, char *dir, size_t cap)
{
    snprintf(dir, cap, "%s/%s", tmp, name);
    CU_ASSERT_EQUAL(th_sh("mkdir -p '%s' && ln -sf '%s/tiny-f32/'* '%s/' && cd '%s' && rm -f %s", dir, tmp,
                          dir, dir, drop),
                    0);
}

static void load_errors_name_the_file(void)
{
    char dir[700];
    struct em_errbuf eb = {{0}};
    struct em_model *m = (struct em_model *)&eb; /* must be reset to NULL */
    broken_dir("no-config", "config.json", dir, sizeof dir);
    CU_ASSERT_EQUAL(em_model_load(dir, NULL, &m, &eb), EM_E_NOTFOUND);
    CU_ASSERT_PTR_NULL(m);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "no-config/config.json"));
    broken_dir("no-tok", "tokenizer.json vocab.json", dir, sizeof dir);
    CU_ASSERT_EQUAL(em_model_load(dir, NULL, &m, &eb), EM_E_NOTFOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "no-tok/vocab.json"));
    broken_dir("no-merges", "tokenizer.json merges.txt", dir, sizeof dir);
    CU_ASSERT_EQUAL(em_model_load(dir, NULL, &m, &eb), EM_E_NOTFOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "merges.txt"));
    broken_dir("no-weights", "model.safetensors", dir, sizeof dir);
    CU_ASSERT_NOT_EQUAL(em_model_load(dir, NULL, &m, &eb), EM_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "model.safetensors"));
    /* a config that is not JSON */
    broken_dir("bad-config", "config.json", dir, sizeof dir);
    CU_ASSERT_EQUAL(th_sh("echo '{\"text_config\": ' > '%s/config.json'", dir), 0);
    CU_ASSERT_EQUAL(em_model_load(dir, NULL, &m, &eb), EM_E_MODEL);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "config.json"));
    snprintf(dir, sizeof dir, "%s/nowhere", tmp);
    CU_ASSERT_EQUAL(em_model_load(dir, NULL, &m, &eb), EM_E_NOTFOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "nowhere"));
    struct em_model_opts o = {.form = 7};
    CU_ASSERT_EQUAL(em_model_load(tmp, &o, &m, &eb), EM_E_ARG);
    CU_ASSERT_EQUAL(em_model_load("", NULL, &m, &eb), EM_E_ARG);
    CU_ASSERT_PTR_NULL(m);
    em_model_free(NULL);
    em_model_result_free(NULL);
}

static void bad_prompts_and_overrides(void)
{
    struct em_model_result *r = (struct em_model_result *)&g;
    struct em_errbuf eb = {{0}};
    struct em_model_prompt dup[2] = {{"x", "caption", NULL}, {"x", "events", NULL}};
    CU_ASSERT_EQUAL(em_model_annotate(f32, &speech, dup, 2, NULL, &r, &eb), EM_E_ARG);
    CU_ASSERT_PTR_NULL(r);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "'x'"));
    struct em_model_prompt bad[1] = {{NULL, "sing", NULL}};
    CU_ASSERT_EQUAL(em_model_annotate(f32, &speech, bad, 1, NULL, &r, &eb), EM_E_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "sing"));
    struct em_model_prompt inj[1] = {{NULL, NULL, "hi<|im_end|>"}};
    CU_ASSERT_EQUAL(em_model_annotate(f32, &speech, inj, 1, NULL, &r, &eb), EM_E_ARG);
    struct em_model_prompt ctl[1] = {{"a\nb", "caption", NULL}};
    CU_ASSERT_EQUAL(em_model_annotate(f32, &speech, ctl, 1, NULL, &r, &eb), EM_E_ARG);
    CU_ASSERT_EQUAL(em_model_annotate(f32, &speech, tasks3, 0, NULL, &r, &eb), EM_E_ARG);
    struct em_model_prompt many[EM_MODEL_MAX_PROMPTS + 1] = {{0}};
    CU_ASSERT_EQUAL(em_model_annotate(f32, &speech, many, EM_MODEL_MAX_PROMPTS + 1, NULL, &r, &eb),
                    EM_E_ARG);
    struct em_gen_params_override o = {.max_new_tokens = EM_MODEL_MAX_NEW_TOKENS + 1};
    CU_ASSERT_EQUAL(em_model_annotate(f32, &speech, tasks3, 1, &o, &r, &eb), EM_E_ARG);
    o = (struct em_gen_params_override){.repetition_penalty = -1};
    CU_ASSERT_EQUAL(em_model_annotate(f32, &speech, tasks3, 1, &o, &r, &eb), EM_E_ARG);
    o = (struct em_gen_params_override){.temperature = -0.5f};
    CU_ASSERT_EQUAL(em_model_check_gen(&o, &eb), EM_E_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "temperature"));
    o = (struct em_gen_params_override){.top_p = 1.5f};
    CU_ASSERT_EQUAL(em_model_check_gen(&o, &eb), EM_E_ARG);
    o = (struct em_gen_params_override){.top_k = -1};
    CU_ASSERT_EQUAL(em_model_check_gen(&o, &eb), EM_E_ARG);
    o = (struct em_gen_params_override){.temperature = 0.3f, .top_k = 5, .top_p = 1.0f,
                                        .repetition_penalty = 1.0f, .max_new_tokens = 1};
    CU_ASSERT_EQUAL(em_model_check_gen(&o, &eb), EM_OK);
    CU_ASSERT_EQUAL(em_model_check_gen(NULL, &eb), EM_OK);
    CU_ASSERT_EQUAL(em_model_check_prompts(f32, dup, 2, &eb), EM_E_ARG);
    CU_ASSERT_EQUAL(em_model_check_prompts(f32, tasks3, 3, &eb), EM_OK);
    /* no samples, and too few for one audio token */
    struct em_audio empty = {0}, blip = {0};
    CU_ASSERT_EQUAL(em_model_annotate(f32, &empty, tasks3, 1, NULL, &r, &eb), EM_E_TOO_SHORT);
    blip.pcm = speech.pcm;
    blip.n = 300;
    CU_ASSERT_EQUAL(em_model_annotate(f32, &blip, tasks3, 1, NULL, &r, &eb), EM_E_TOO_SHORT);
    CU_ASSERT_PTR_NULL(r);
}

/* Sampling follows the seed: the same seed gives the same tokens, another seed others
 * (hot sampling, see sampling_overrides_apply, so the draw matters). */
static void sampling_is_seeded(void)
{
    struct em_gen_params_override o = {.max_new_tokens = 8, .temperature = 50, .top_k = 1000,
                                       .top_p = 1, .set_seed = true, .seed = 99};
    struct em_model_result *a = NULL, *b = NULL, *c = NULL;
    CU_ASSERT_EQUAL_FATAL(em_model_annotate(bf16, &speech, tasks3, 1, &o, &a, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_model_annotate(bf16, &speech, tasks3, 1, &o, &b, NULL), EM_OK);
    o.seed = 100;
    CU_ASSERT_EQUAL_FATAL(em_model_annotate(bf16, &speech, tasks3, 1, &o, &c, NULL), EM_OK);
    const struct em_model_answer *x = &a->segments[0].answers[0], *y = &b->segments[0].answers[0],
                                 *z = &c->segments[0].answers[0];
    CU_ASSERT_EQUAL_FATAL(x->n_ids, y->n_ids);
    CU_ASSERT_EQUAL(memcmp(x->ids, y->ids, x->n_ids * sizeof *x->ids), 0);
    CU_ASSERT_TRUE(x->n_ids != z->n_ids || memcmp(x->ids, z->ids, x->n_ids * sizeof *x->ids) != 0);
    em_model_result_free(a);
    em_model_result_free(b);
    em_model_result_free(c);
}

/* Number of leading generated ids of prompt p with the same tie class in a and b. */
static size_t same_classes(const struct em_model_result *a, const struct em_model_result *b, size_t p)
{
    const struct em_model_answer *x = &a->segments[0].answers[p], *y = &b->segments[0].answers[p];
    size_t same = 0;
    while (same < x->n_ids && same < y->n_ids && tie_class(x->ids[same]) == tie_class(y->ids[same]))
        same++;
    return same;
}

/* The sampling overrides reach the sampler: hot sampling (temperature 50, top_p 1, top_k
 * 1000) leaves the greedy path, and top_k 1 on top of it is greedy again (up to exact ties,
 * which top-k keeps). The config's own top_k 20 would not do: each tie class of these
 * checkpoints has ~37 members, so its top 20 logits are all the argmax's class. */
static void sampling_overrides_apply(void)
{
    struct em_gen_params_override gr = {.max_new_tokens = 10, .greedy = true};
    struct em_gen_params_override hot = {.max_new_tokens = 10, .temperature = 50, .top_p = 1,
                                         .top_k = 1000, .set_seed = true, .seed = 3};
    struct em_gen_params_override k1 = hot;
    k1.top_k = 1;
    struct em_model_result *g0 = NULL, *h = NULL, *k = NULL;
    CU_ASSERT_EQUAL_FATAL(em_model_annotate(bf16, &speech, tasks3, 2, &gr, &g0, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_model_annotate(bf16, &speech, tasks3, 2, &hot, &h, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_model_annotate(bf16, &speech, tasks3, 2, &k1, &k, NULL), EM_OK);
    for (size_t p = 0; p < 2; p++) {
        CU_ASSERT_EQUAL(same_classes(g0, k, p), g0->segments[0].answers[p].n_ids);
        CU_ASSERT_EQUAL(k->segments[0].answers[p].n_ids, g0->segments[0].answers[p].n_ids);
        CU_ASSERT_TRUE(same_classes(g0, h, p) < g0->segments[0].answers[p].n_ids);
    }
    em_model_result_free(g0);
    em_model_result_free(h);
    em_model_result_free(k);
}

struct job {
    const struct em_model *m;
    const struct em_audio *a;
    struct em_model_result *r;
    em_err rc;
};

static void *run_job(void *arg)
{
    struct job *j = arg;
    struct em_gen_params_override o = {.max_new_tokens = 8, .greedy = true};
    j->rc = em_model_annotate(j->m, j->a, tasks3, 3, &o, &j->r, NULL);
    return NULL;
}

/* model.h: a loaded model may be shared by threads annotating at once (the worker runs
 * several pipeline threads over one model): same answers as one at a time. */
static void threads_share_a_model(void)
{
    struct job serial = {f32, &speech, NULL, EM_OK}, par[3];
    run_job(&serial);
    CU_ASSERT_EQUAL_FATAL(serial.rc, EM_OK);
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        par[i] = (struct job){f32, i == 1 ? &longclip : &speech, NULL, EM_E_INTERNAL};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, run_job, &par[i]), 0);
    }
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(par[i].rc, EM_OK);
        if (par[i].rc != EM_OK || i == 1) continue;
        for (size_t p = 0; p < 3; p++) {
            const struct em_model_answer *x = &serial.r->segments[0].answers[p],
                                         *y = &par[i].r->segments[0].answers[p];
            CU_ASSERT_EQUAL_FATAL(x->n_ids, y->n_ids);
            CU_ASSERT_EQUAL(same_classes(serial.r, par[i].r, p), x->n_ids); /* see tie_class */
        }
    }
    CU_ASSERT_EQUAL(par[1].rc == EM_OK ? par[1].r->n_segments : 0, 2);
    for (int i = 0; i < 3; i++) em_model_result_free(par[i].r);
    em_model_result_free(serial.r);
}

/* Cancels on the n-th poll (n in *ctx, counted down). */
static bool cancel_at(void *ctx)
{
    int *n = ctx;
    return --*n < 0;
}

static void cancel_stops_between_steps(void)
{
    struct em_errbuf eb = {{0}};
    struct em_model_result *r = (struct em_model_result *)&g;
    int polls = 0; /* before the first window */
    struct em_gen_params_override o = {.max_new_tokens = 2, .greedy = true, .cancelled = cancel_at,
                                       .cancel_ctx = &polls};
    CU_ASSERT_EQUAL(em_model_annotate(f32, &longclip, tasks3, 2, &o, &r, &eb), EM_E_CANCELLED);
    CU_ASSERT_PTR_NULL(r);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "cancelled"));
    /* polls: window 0, its 2 prompts, window 1 (cancelled here), so 3 allowed */
    polls = 3;
    CU_ASSERT_EQUAL(em_model_annotate(f32, &longclip, tasks3, 2, &o, &r, &eb), EM_E_CANCELLED);
    CU_ASSERT_PTR_NULL(r);
    polls = 6; /* 2 windows x (1 + 2 prompts): enough */
    CU_ASSERT_EQUAL(em_model_annotate(f32, &longclip, tasks3, 2, &o, &r, &eb), EM_OK);
    CU_ASSERT_EQUAL(polls, 0);
    CU_ASSERT_EQUAL(r ? r->n_segments : 0, 2);
    em_model_result_free(r);
}

/* Batched decode: the three prompts in one call (shared prefill, then em_generate_batch)
 * give each prompt the ids it gets alone (em_generate on the whole prompt, no batch),
 * greedy and with seeded hot sampling (each prompt keeps its own random stream), on both
 * checkpoints. Greedy compares tie classes on bf16 (a split prefill may break the
 * checkpoint's exact ties differently, see tie_class) and ids on f32. */
static void batched_prompts_equal_one_at_a_time(void)
{
    struct em_gen_params_override gr = {.max_new_tokens = 16, .greedy = true};
    struct em_gen_params_override hot = {.max_new_tokens = 16, .temperature = 50, .top_p = 1,
                                         .top_k = 1000, .set_seed = true, .seed = 5};
    struct em_model *ms[2] = {bf16, f32};
    for (int c = 0; c < 2; c++)
        for (int mode = 0; mode < 2; mode++) {
            const struct em_gen_params_override *o = mode ? &hot : &gr;
            struct em_model_result *all = NULL;
            CU_ASSERT_EQUAL_FATAL(em_model_annotate(ms[c], &speech, tasks3, 3, o, &all, NULL), EM_OK);
            CU_ASSERT_TRUE(all->prefill_s > 0);
            for (size_t p = 0; p < 3; p++) {
                struct em_model_result *one = NULL;
                CU_ASSERT_EQUAL_FATAL(em_model_annotate(ms[c], &speech, &tasks3[p], 1, o, &one, NULL), EM_OK);
                const struct em_model_answer *a = &all->segments[0].answers[p],
                                             *b = &one->segments[0].answers[0];
                CU_ASSERT_EQUAL(a->n_ids, b->n_ids);
                CU_ASSERT_EQUAL(a->stopped, b->stopped);
                size_t same = 0;
                while (same < a->n_ids && same < b->n_ids &&
                       (c == 0 ? tie_class(a->ids[same]) == tie_class(b->ids[same])
                               : a->ids[same] == b->ids[same]))
                    same++;
                if (same != a->n_ids || a->n_ids != b->n_ids)
                    printf("\n    %s %s %s: batched %zu ids, alone %zu, %zu agree", c ? "f32" : "bf16",
                           mode ? "sampled" : "greedy", tasks3[p].task, a->n_ids, b->n_ids, same);
                CU_ASSERT_EQUAL(same, a->n_ids);
                if (c == 1) CU_ASSERT_STRING_EQUAL(a->text, b->text);
                em_model_result_free(one);
            }
            em_model_result_free(all);
        }
}

static CU_TestInfo tests[] = {
    {"shared_prefill_gives_hf_greedy_tokens", shared_prefill_gives_hf_greedy_tokens},
    {"single_prompt_equals_shared", single_prompt_equals_shared},
    {"batched_prompts_equal_one_at_a_time", batched_prompts_equal_one_at_a_time},
    {"long_clip_gives_two_segments", long_clip_gives_two_segments},
    {"identity_is_stable_and_specific", identity_is_stable_and_specific},
    {"load_errors_name_the_file", load_errors_name_the_file},
    {"bad_prompts_and_overrides", bad_prompts_and_overrides},
    {"sampling_is_seeded", sampling_is_seeded},
    {"sampling_overrides_apply", sampling_overrides_apply},
    {"threads_share_a_model", threads_share_a_model},
    {"cancel_stops_between_steps", cancel_stops_between_steps},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_model = {"model", init, clean, NULL, NULL, tests};
