/* worker/annotate_cmd.c - `earmark annotate`: runs Qwen2-Audio on local files, no cluster.
 *   earmark annotate --model DIR [--task caption|transcript|events]... [--prompt TEXT]...
 *                    [--form base|chat] [--max-new-tokens N] [--greedy] [--seed N] [--ids]
 *                    [--device cpu|cuda[:N]] [--weights q8_0] [--capacity N] [--kv-budget BYTES]
 *                    FILE...
 * Per file: read through the source policy (worker/source.h, any local file: only a regular
 * file, opened without blocking, so a FIFO, device or socket is refused at once) -> FFmpeg
 * decode to 16 kHz mono (model/audio/audio.h) -> em_model_annotate (model/model.h:
 * 30 s windows, every prompt per window sharing one prefill of the audio) -> the same
 * earmark.annotation/v1 record the worker stores (worker/annotation.h), printed as one
 * compact JSON line on stdout, with source = the file as given, batch_id "annotate", worker
 * "annotate" and id = em_id_item(FILE). A file that fails gives a "failed"
 * record (error {class, message}), its one-line error on stderr, and the command goes on
 * with the next file.
 * Exit status 0 if every file succeeded, 1 otherwise (or when the model does not load),
 * 2 on usage errors (including prompts the model refuses).
 * Prompts: each --task and --prompt in order; none given: --task caption. Answers are keyed
 * by the task name, free text by "prompt", "prompt2", ... The form defaults to chat when
 * the checkpoint carries a chat template (Instruct), else base. Sampling settings default
 * to the checkpoint's generation_config.json.
 * --capacity N runs N files at once on one batching engine (model/gen/engine.h: their decode
 * steps together, KV caches under --kv-budget); records still print in FILE order. With
 * capacity 1 and no --kv-budget each file runs on its own, as before. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/cmd.h"
#include "common/id.h"
#include "common/num.h"
#include "common/usage.h"
#include "model/gen/engine.h"
#include "model/audio/audio.h"
#include "model/kernels/backend.h"
#include "model/model.h"
#include "worker/annotation.h"
#include "worker/facts.h"
#include "worker/source.h"

#define CMD_BATCH "annotate"
#define EM_ANNOTATE_MAX_CAPACITY 256 /* files in flight */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: earmark annotate --model DIR [--task caption|transcript|events]... [--prompt TEXT]...\n"
            "                        [--form base|chat] [--max-new-tokens N] [--greedy] [--seed N]\n"
            "                        [--ids] [--device cpu|cuda[:N]] [--weights q8_0] [--capacity N]\n"
            "                        [--kv-budget BYTES] FILE...\n"
            "  --model           Hugging Face checkpoint directory (safetensors + tokenizer files)\n"
            "  --task            built-in prompt, repeatable (default: caption when no --prompt)\n"
            "  --prompt          free-text instruction/question, repeatable (answers \"prompt\",\n"
            "                    \"prompt2\", ...)\n"
            "  --form            base: plain prompt (Qwen2-Audio-7B); chat: ChatML (Instruct);\n"
            "                    default chat when the checkpoint has a chat template\n"
            "  --max-new-tokens  per 30 s window and prompt (default: generation_config.json, else 256)\n"
            "  --greedy          argmax decoding (the repetition penalty still applies)\n"
            "  --seed            sampling seed (default 0)\n"
            "  --ids             also print the generated token ids of every segment\n"
            "  --device          cpu, cuda or cuda:N: where the model runs (EARMARK_DEVICE,\n"
            "                    default cpu)\n"
            "  --weights q8_0    Whisper: quantize the linear weights to q8_0 at load (int8 kernels)\n"
            "  --capacity        files in flight at once, decoded together (default 1)\n"
            "  --kv-budget       KV-cache memory for the files in flight, e.g. 8GiB (default\n"
            "                    unlimited); a file waits for memory, one that never fits fails\n"
            "Prints one earmark.annotation/v1 record (schema/annotation.schema.json) per file on\n"
            "stdout; a file that fails gets a \"failed\" record and its one-line error on stderr.\n"
            "Exit status: 0 every file ok, 1 at least one file failed (or the model did not\n"
            "load), 2 usage error.\n");
}

struct opts {
    const char *model, *form, *device, *weights;
    struct em_model_prompt prompts[EM_MODEL_MAX_PROMPTS];
    char names[EM_MODEL_MAX_PROMPTS][16]; /* "prompt", "prompt2", ... */
    size_t n_prompts, n_text;
    struct em_gen_params_override gen;
    int with_ids, first_file;
    long capacity;       /* files at once, 1..EM_ANNOTATE_MAX_CAPACITY */
    const char *budget;  /* --kv-budget as given, or NULL */
    uint64_t kv_budget;
    struct em_source_policy policy; /* any local file, regular files only */
};

/* Adds a --task or --prompt; 0, or -1 with the reason printed. */
static int add_prompt(struct opts *o, const char *task, const char *text)
{
    if (o->n_prompts == EM_MODEL_MAX_PROMPTS) {
        fprintf(stderr, "earmark annotate: more than %d prompts\n", EM_MODEL_MAX_PROMPTS);
        return -1;
    }
    struct em_model_prompt *p = &o->prompts[o->n_prompts];
    *p = (struct em_model_prompt){NULL, task, text};
    if (text) {
        char *nm = o->names[o->n_prompts];
        if (o->n_text++) snprintf(nm, sizeof o->names[0], "prompt%zu", o->n_text);
        else snprintf(nm, sizeof o->names[0], "prompt");
        p->name = nm;
    }
    o->n_prompts++;
    return 0;
}

/* Parses argv into *o; returns -1 to go on, else the exit status (help: 0, errors: 2). */
static int parse_args(int argc, char **argv, struct opts *o)
{
    o->first_file = argc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--greedy")) { o->gen.greedy = true; continue; }
        if (!strcmp(a, "--ids")) { o->with_ids = 1; continue; }
        if (strncmp(a, "--", 2) != 0) { o->first_file = i; break; }
        if (i + 1 >= argc)
            return em_usage_error("annotate", usage,
                                  "option '%.80s' needs a value (or is unknown)", a);
        const char *v = argv[++i];
        long n;
        if (!strcmp(a, "--model")) o->model = v;
        else if (!strcmp(a, "--task")) { if (add_prompt(o, v, NULL)) return 2; }
        else if (!strcmp(a, "--prompt")) { if (add_prompt(o, NULL, v)) return 2; }
        else if (!strcmp(a, "--form")) o->form = v;
        else if (!strcmp(a, "--device")) o->device = v;
        else if (!strcmp(a, "--weights")) o->weights = v;
        else if (!strcmp(a, "--max-new-tokens")) {
            if ((n = em_num_parse(v, 1, EM_MODEL_MAX_NEW_TOKENS)) < 0)
                return em_usage_error("annotate", usage, "--max-new-tokens %.80s: expected 1..%d",
                                      v, EM_MODEL_MAX_NEW_TOKENS);
            o->gen.max_new_tokens = (int)n;
        } else if (!strcmp(a, "--seed")) {
            if ((n = em_num_parse(v, 0, 0x7fffffffL)) < 0)
                return em_usage_error("annotate", usage, "--seed %.80s: expected 0..2^31-1", v);
            o->gen.set_seed = true;
            o->gen.seed = (uint64_t)n;
        } else if (!strcmp(a, "--capacity")) {
            if ((o->capacity = em_num_parse(v, 1, EM_ANNOTATE_MAX_CAPACITY)) < 0)
                return em_usage_error("annotate", usage, "--capacity %.80s: expected 1..%d", v,
                                      EM_ANNOTATE_MAX_CAPACITY);
        } else if (!strcmp(a, "--kv-budget")) {
            o->budget = v;
            if (em_kvpool_parse_bytes(v, &o->kv_budget) != EM_OK)
                return em_usage_error("annotate", usage, "--kv-budget '%.40s': expected bytes, or "
                                      "a number with K, M, G or T (KiB..TiB), e.g. 8GiB", v);
        } else {
            return em_usage_error("annotate", usage, "unknown option '%.80s'", a);
        }
    }
    if (!o->model) return em_usage_required("annotate", usage, "--model", NULL);
    if (o->first_file >= argc) return em_usage_error("annotate", usage, "no FILE given");
    if (o->form && strcmp(o->form, "base") && strcmp(o->form, "chat"))
        return em_usage_error("annotate", usage, "--form %.80s: expected base or chat", o->form);
    if (o->weights && strcmp(o->weights, "q8_0"))
        return em_usage_error("annotate", usage, "--weights %.80s: expected q8_0", o->weights);
    if (o->n_prompts == 0) add_prompt(o, "caption", NULL);
    return -1;
}

/* Reads path through the source policy (worker/source.h: only a regular file, opened without
 * blocking, so a FIFO, device or socket is refused at once) and decodes it. */
static em_err read_decode(const struct opts *o, const char *path, struct em_audio *a,
                          struct em_errbuf *eb)
{
    char *abs = realpath(path, NULL); /* annotate takes paths relative to the caller's cwd */
    if (!abs) return em_errf(eb, EM_E_NOTFOUND, "%.200s: no such file", path);
    uint8_t *data = NULL;
    size_t len = 0;
    struct em_audio_opts ao = em_audio_opts_default();
    em_err rc = em_source_fetch(&o->policy, NULL, abs, ao.max_bytes, &data, &len, eb);
    free(abs);
    if (rc == EM_OK) rc = em_audio_decode_mem_opts(data, len, path, &ao, a, eb);
    free(data);
    return rc;
}

/* One file's outcome, printed in FILE order. */
struct slot {
    char *rec;      /* the record line (owned), or NULL */
    char err[512];  /* the one-line error, "" when none */
    int failed;
    int done;
};

/* One file -> its record and error in *out; eng may be NULL. */
static void run_file(const struct em_model *m, struct em_engine *eng, const struct opts *o,
                     const char *path, struct slot *out)
{
    struct em_errbuf eb = {{0}};
    struct em_audio a = {0};
    struct em_facts f;
    struct em_model_result *r = NULL;
    char id[EM_ID_LEN + 1];
    double t0 = em_now_s(), t1 = t0, t2 = t0;
    em_err rc = read_decode(o, path, &a, &eb);
    t1 = em_now_s();
    if (rc == EM_OK) {
        em_facts_compute(a.pcm, a.n, EM_AUDIO_RATE, &f);
        rc = em_model_annotate_on(m, eng, &a, o->prompts, o->n_prompts, &o->gen, &r, &eb);
        t2 = em_now_s();
    }
    em_id_item(path, id);
    struct em_annot_in in = {
        .item_id = id, .batch_id = CMD_BATCH, .source = path, .worker_id = CMD_BATCH,
        .model = em_model_identity(m), .attempt = 1,
        .audio = a.pcm ? &a : NULL, .facts = a.pcm ? &f : NULL, .result = r,
        .with_ids = o->with_ids != 0, .fetch_s = 0, .decode_s = t1 - t0,
        .model_s = r ? t2 - t1 : 0, .total_s = em_now_s() - t0,
        .err = rc, .err_msg = rc == EM_OK ? NULL : em_errbuf_msg(&eb, rc),
    };
    size_t len = 0;
    char *rec = em_annot_build(&in, &len);
    if (rc != EM_OK)
        snprintf(out->err, sizeof out->err, "%s: %s", path,
                 em_usage_unprefixed("annotate", em_errbuf_msg(&eb, rc)));
    else if (!rec)
        snprintf(out->err, sizeof out->err, "%s: out of memory building the record", path);
    out->rec = rec;
    out->failed = rc != EM_OK || !rec;
    em_model_result_free(r);
    em_audio_free(&a);
}

static void print_slot(struct slot *s)
{
    if (s->err[0]) fprintf(stderr, "earmark annotate: %s\n", s->err);
    if (s->rec) printf("%s\n", s->rec);
    fflush(stdout);
    free(s->rec);
    s->rec = NULL;
}

/* Files taken in turn by --capacity threads on one engine; whoever finishes the next file
 * in order prints it and the finished ones after it. */
struct fleet {
    const struct em_model *m;
    struct em_engine *eng;
    const struct opts *o;
    char **files;
    int n, next, printed, failed;
    struct slot *slots;
    pthread_mutex_t mu;
};

static void *fleet_main(void *arg)
{
    struct fleet *f = arg;
    for (;;) {
        pthread_mutex_lock(&f->mu);
        const int i = f->next < f->n ? f->next++ : -1;
        pthread_mutex_unlock(&f->mu);
        if (i < 0) return NULL;
        struct slot s = {0};
        run_file(f->m, f->eng, f->o, f->files[i], &s);
        pthread_mutex_lock(&f->mu);
        f->slots[i] = s;
        f->slots[i].done = 1;
        f->failed |= s.failed;
        while (f->printed < f->n && f->slots[f->printed].done) print_slot(&f->slots[f->printed++]);
        pthread_mutex_unlock(&f->mu);
    }
}

/* Runs files[n] --capacity at a time on eng; returns 1 if any failed. */
static int run_fleet(const struct em_model *m, struct em_engine *eng, const struct opts *o,
                     char **files, int n)
{
    struct fleet f = {.m = m, .eng = eng, .o = o, .files = files, .n = n};
    const int threads = o->capacity < n ? (int)o->capacity : n;
    pthread_t th[EM_ANNOTATE_MAX_CAPACITY];
    int started = 0;
    if (!(f.slots = calloc((size_t)n, sizeof *f.slots)) || pthread_mutex_init(&f.mu, NULL) != 0) {
        free(f.slots);
        fprintf(stderr, "earmark annotate: out of memory\n");
        return 1;
    }
    while (started < threads && pthread_create(&th[started], NULL, fleet_main, &f) == 0) started++;
    if (started == 0) fleet_main(&f); /* no thread: run them here */
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    pthread_mutex_destroy(&f.mu);
    free(f.slots);
    return f.failed;
}

int em_cmd_annotate(int argc, char **argv)
{
    static struct opts o; /* large; one per process */
    memset(&o, 0, sizeof o);
    o.capacity = 1;
    int st = parse_args(argc, argv, &o);
    if (st >= 0) return st;
    struct em_model_opts mo = em_model_opts_default();
    if (o.form) mo.form = strcmp(o.form, "chat") ? EM_MODEL_FORM_BASE : EM_MODEL_FORM_CHAT;
    mo.device = o.device;
    mo.weights = o.weights;
    struct em_errbuf eb = {{0}};
    em_err drc = em_backend_check(o.device, &eb);
    if (drc != EM_OK) {
        fprintf(stderr, "earmark annotate: --device %s: %s\n", o.device ? o.device : "(EARMARK_DEVICE)",
                em_errbuf_msg(&eb, drc));
        return drc == EM_E_ARG ? 2 : 1;
    }
    struct em_model *m = NULL;
    em_err rc = em_model_load(o.model, &mo, &m, &eb);
    if (rc != EM_OK) {
        fprintf(stderr, "earmark annotate: %s\n",
                em_usage_unprefixed("annotate", em_errbuf_msg(&eb, rc)));
        return 1;
    }
    if ((rc = em_model_check_prompts(m, o.prompts, o.n_prompts, &eb)) != EM_OK ||
        (rc = em_model_check_gen(&o.gen, &eb)) != EM_OK) {
        fprintf(stderr, "earmark annotate: %s\n",
                em_usage_unprefixed("annotate", em_errbuf_msg(&eb, rc)));
        em_model_free(m);
        return 2;
    }
    if ((rc = em_source_policy_init(&o.policy, NULL, 0, true, &eb)) != EM_OK) {
        fprintf(stderr, "earmark annotate: %s\n",
                em_usage_unprefixed("annotate", em_errbuf_msg(&eb, rc)));
        em_model_free(m);
        return 1;
    }
    int failed = 0;
    struct em_engine *eng = NULL;
    if (o.capacity > 1 || o.budget) {
        rc = em_model_engine_new(m, o.kv_budget, &eng, &eb);
        if (rc != EM_OK && rc != EM_E_UNSUPPORTED) { /* Whisper: each file on its own */
            fprintf(stderr, "earmark annotate: --kv-budget: %s\n",
                    em_usage_unprefixed("annotate", em_errbuf_msg(&eb, rc)));
            em_source_policy_free(&o.policy);
            em_model_free(m);
            return 2;
        }
    }
    failed = run_fleet(m, eng, &o, argv + o.first_file, argc - o.first_file);
    em_engine_free(eng);
    em_source_policy_free(&o.policy);
    em_model_free(m);
    return failed ? 1 : 0;
}
