/* coordinator/submit.c - `earmark submit`: manifest + prompts -> a batch in Redis.
 *
 * manifest bytes -> em_manifest (bad lines to stderr with numbers) -> batch hash
 * ("submitting") -> [--skip-done: current records listed as done] -> items list + stream
 * -> state "open" -> batch id on stdout -> [--wait: progress until complete]. */
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/cmd.h"
#include "common/usage.h"
#include "common/id.h"
#include "common/log.h"
#include "coordinator/cli.h"
#include "coordinator/manifest.h"
#include "coordinator/queue.h"
#include "coordinator/submit_util.h"
#include "storage/storage.h"

struct sopts {
    const char *redis, *manifest, *out, *model;
    const char *prompts[64]; /* built-in names */
    const char *free[64];    /* free-text prompts */
    int nprompts, nfree;
    unsigned max_attempts, max_new_tokens;
    int64_t deadline_ms; /* --deadline: from submission; 0 none */
    int skip_done, wait;
    bool strict_audio; /* --strict-audio: any decode error fails the item */
    int model_given; /* --model: items go only to workers running that model */
};

static void usage(FILE *f)
{
    fprintf(f, "usage: earmark submit --redis URL [--redis-ca FILE] --manifest FILE|- --out URI\n"
               "         [--prompts caption,transcript,events] [--prompt TEXT]...\n"
               "         [--max-attempts N] [--max-new-tokens N] [--model NAME] [--skip-done]\n"
               "         [--wait] [--deadline DURATION (e.g. 90m, 2h; items unsettled then fail)]\n"
               "         [--strict-audio (any audio decode error fails the item)]\n");
}

static void on_bad(void *ud, unsigned line, em_err code, const char *why)
{
    const char *path = ud;
    fprintf(stderr, "earmark submit: %s:%u: %s (%s)\n", path, line, why, em_err_name(code));
}

/* Splits list in place at commas; each name must be a built-in prompt. */
static int add_prompt_list(struct sopts *o, char *list)
{
    for (char *t = list; t;) {
        char *comma = strchr(t, ',');
        if (comma) *comma = 0;
        if (*t) {
            if (!em_submit_prompt_known(t)) {
                fprintf(stderr,
                        "earmark submit: unknown prompt '%s' (caption, transcript, events)\n", t);
                return -1;
            }
            int dup = 0;
            for (int i = 0; i < o->nprompts; i++)
                dup |= strcmp(o->prompts[i], t) == 0;
            if (!dup && o->nprompts < 64) o->prompts[o->nprompts++] = t;
        }
        t = comma ? comma + 1 : NULL;
    }
    return 0;
}

static int parse_args(int argc, char **argv, struct sopts *o)
{
    static const struct option lo[] = {
        {"redis", required_argument, 0, 'r'},
        {"manifest", required_argument, 0, 'm'},
        {"out", required_argument, 0, 'o'},
        {"prompts", required_argument, 0, 'p'},
        {"prompt", required_argument, 0, 'P'},
        {"max-attempts", required_argument, 0, 'a'},
        {"max-new-tokens", required_argument, 0, 'n'},
        {"model", required_argument, 0, 'M'},
        {"skip-done", no_argument, 0, 's'},
        {"wait", no_argument, 0, 'w'},
        {"deadline", required_argument, 0, 'D'},
        {"help", no_argument, 0, 'h'},
        {"strict-audio", no_argument, 0, 'S'},
        {"redis-ca", required_argument, 0, 'C'},
        {0, 0, 0, 0},
    };
    memset(o, 0, sizeof *o);
    o->max_attempts = 3;
    o->model = "qwen2-audio-7b-instruct";
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":h", lo, NULL)) != -1;) {
        uint64_t v;
        switch (c) {
        case 'r': o->redis = em_cli_redis_arg(optarg); break;
        case 'C':
            if (em_cli_redis_ca(optarg) != 0) return em_usage_error("submit", usage, "--redis-ca needs a file path");
            break;
        case 'm': o->manifest = optarg; break;
        case 'o': o->out = optarg; break;
        case 'M':
            if (!*optarg || strlen(optarg) > EM_SUBMIT_MAX_MODEL)
                return em_usage_error("submit", usage, "--model must be 1..%u bytes",
                                      EM_SUBMIT_MAX_MODEL);
            o->model = optarg;
            o->model_given = 1;
            break;
        case 's': o->skip_done = 1; break;
        case 'w': o->wait = 1; break;
        case 'S': o->strict_audio = true; break;
        case 'D':
            if (em_cli_duration_ms(optarg, 365LL * 86400000, &o->deadline_ms) != 0) {
                fprintf(stderr, "earmark submit: --deadline must be N[s|m|h|d], up to 365d\n");
                return 2;
            }
            break;
        case 'p':
            if (add_prompt_list(o, optarg) != 0) return 2;
            break;
        case 'P':
            if (!*optarg || o->nfree >= 64 || strlen(optarg) > EM_SUBMIT_MAX_PROMPT) {
                fprintf(stderr,
                        "earmark submit: --prompt must be 1..%u bytes, at most 64 of them\n",
                        EM_SUBMIT_MAX_PROMPT);
                return 2;
            }
            o->free[o->nfree++] = optarg;
            break;
        case 'a':
            if (em_cli_u64(optarg, 1, 100, &v) != 0) {
                fprintf(stderr, "earmark submit: --max-attempts must be 1..100\n");
                return 2;
            }
            o->max_attempts = (unsigned)v;
            break;
        case 'n':
            if (em_cli_u64(optarg, 1, EM_SUBMIT_MAX_NEW_TOKENS, &v) != 0) {
                fprintf(stderr, "earmark submit: --max-new-tokens must be 1..%u\n",
                        EM_SUBMIT_MAX_NEW_TOKENS);
                return 2;
            }
            o->max_new_tokens = (unsigned)v;
            break;
        case 'h': usage(stdout); return -1;
        default: return em_usage_bad_option("submit", usage, c, argv, optind);
        }
    }
    if (optind < argc)
        return em_usage_error("submit", usage, "unexpected argument '%.80s'", argv[optind]);
    o->redis = em_cli_redis_url(o->redis);
    if (!o->redis) return em_usage_required("submit", usage, "--redis", "or EARMARK_REDIS_URL");
    if (!o->manifest) return em_usage_required("submit", usage, "--manifest", NULL);
    if (!o->out || !*o->out) return em_usage_required("submit", usage, "--out", NULL);
    if (o->nprompts == 0 && o->nfree == 0) o->prompts[o->nprompts++] = "caption";
    return 0;
}

/* --skip-done: lists items whose record is current as done; the rest go to todo. */
static em_err skip_done(struct em_queue *q, struct em_storage *st, const struct sopts *o,
                        const char *batch, const char *ph, struct em_manifest *m,
                        struct em_queue_item *todo, size_t *ntodo, size_t *nskip,
                        struct em_errbuf *eb)
{
    em_err rc = EM_OK;
    struct em_submit_prev *prev = NULL;
    em_submit_prev_load(st, o->out, &prev); /* no previous manifest: only <out>/<id>.json */
    *ntodo = *nskip = 0;
    for (size_t i = 0; i < em_manifest_count(m); i++) {
        const struct em_manifest_item *it = em_manifest_at(m, i);
        char *uri = NULL;
        int cur = em_submit_find_current(st, o->out, prev, todo[i].item_id, it->uri, ph, &uri);
        if (cur < 0) {
            rc = em_errf(eb, EM_E_NOMEM, "skip-done: out of memory");
            break;
        }
        if (cur == 1) {
            rc = em_queue_add_skipped(q, batch, todo[i].item_id, it->uri, uri, eb);
            free(uri);
            if (rc != EM_OK) break;
            (*nskip)++;
        } else {
            todo[(*ntodo)++] = todo[i];
        }
    }
    em_submit_prev_free(prev);
    return rc;
}

static volatile sig_atomic_t interrupted;
static void on_sig(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* --wait: polls the batch until complete. Returns the exit status. */
static int wait_batch(struct em_queue *q, const char *batch)
{
    int tty = isatty(STDERR_FILENO);
    int64_t last_line = 0;
    signal(SIGINT, on_sig);
    signal(SIGTERM, on_sig);
    for (int errs = 0; !interrupted;) {
        struct em_batch_info b;
        struct em_errbuf eb = {{0}};
        em_err rc = em_queue_batch_get(q, batch, &b, &eb);
        if (rc != EM_OK) {
            if (++errs > 60) {
                fprintf(stderr, "earmark submit: %s\n", em_errbuf_msg(&eb, rc));
                return 1;
            }
            em_sleep_ms(500);
            continue;
        }
        errs = 0;
        uint64_t infl = 0;
        em_queue_inflight_sum(q, batch, &infl, &eb);
        struct em_progress p;
        em_progress_of(&b, infl, b.dead, em_wall_ms(), &p);
        char line[400];
        em_progress_line(&p, line, sizeof line);
        if (b.waiting && !p.complete) { /* no connected worker can serve it (route.c) */
            size_t o = strlen(line);
            snprintf(line + o, sizeof line - o, " (%s)", b.waiting);
        }
        em_batch_info_clear(&b);
        if (tty) {
            fprintf(stderr, "\r%s\033[K", line);
        } else if (p.complete || em_now_ms() - last_line >= 2000) {
            fprintf(stderr, "%s\n", line);
            last_line = em_now_ms();
        }
        if (p.complete) {
            if (tty) fputc('\n', stderr);
            if (p.cancelled) {
                fprintf(stderr, "earmark submit: batch %s was cancelled (%llu items)\n", batch,
                        (unsigned long long)p.cancelled);
                return 1;
            }
            if (p.failed) {
                fprintf(stderr, "earmark submit: batch %s: %llu of %llu items failed\n", batch,
                        (unsigned long long)p.failed, (unsigned long long)p.total);
                return 1;
            }
            return 0;
        }
        em_sleep_ms(tty ? 250 : 500);
    }
    if (tty) fputc('\n', stderr);
    fprintf(stderr, "earmark submit: interrupted; batch %s goes on\n", batch);
    return 130;
}

int em_cmd_submit(int argc, char **argv)
{
    struct sopts o;
    int prc = parse_args(argc, argv, &o);
    if (prc) return prc < 0 ? 0 : prc;

    int status = 1;
    uint8_t *data = NULL;
    size_t len = 0;
    struct em_manifest *m = NULL;
    struct em_queue *q = NULL;
    struct em_queue_item *items = NULL;
    struct em_storage *st = NULL;
    char *prompts_json = NULL, *gen_json = NULL, *ph = NULL;
    struct em_errbuf eb = {{0}};
    em_err rc;

    if ((rc = em_cli_read_file(o.manifest, EM_CLI_MAX_MANIFEST, &data, &len, &eb)) != EM_OK)
        goto fail;
    if ((rc = em_manifest_parse(data, len, on_bad, (void *)o.manifest, &m, &eb)) != EM_OK)
        goto fail;
    size_t n = em_manifest_count(m);
    if (n == 0) {
        rc = em_errf(&eb, EM_E_ARG, "%s: no valid item (%zu bad lines)", o.manifest,
                     em_manifest_bad_count(m));
        goto fail;
    }
    if ((rc = em_submit_producer(o.model, o.prompts, (size_t)o.nprompts, o.free, (size_t)o.nfree,
                                 o.max_new_tokens, o.strict_audio, &prompts_json, &gen_json, &ph,
                                 &eb)) != EM_OK)
        goto fail;
    struct em_batch_info b = {0};
    em_id_batch(b.id);
    struct em_storage_opts so = em_storage_opts_default();
    so.retries = 2;
    if ((rc = em_storage_open(&so, &st, &eb)) != EM_OK) goto fail;
    char probe[EM_QUEUE_MAX_BATCH_ID + 32];
    snprintf(probe, sizeof probe, ".earmark-probe-%s", b.id);
    if ((rc = em_submit_check_out(st, o.out, probe, &eb)) != EM_OK) {
        status = 2; /* a bad --out is a usage error: nothing was queued */
        goto fail;
    }
    if ((rc = em_queue_open(o.redis, &q, &eb)) != EM_OK) goto fail;

    b.prompts_json = prompts_json;
    b.gen_json = gen_json;
    b.out = (char *)o.out;
    b.model = (char *)o.model;
    b.want = o.model_given ? (char *)o.model : NULL;
    b.producer_hash = ph;
    b.max_attempts = o.max_attempts;
    b.total = n;
    b.created_ms = em_wall_ms();
    b.deadline_ms = o.deadline_ms ? b.created_ms + o.deadline_ms : 0;
    if ((rc = em_queue_batch_create(q, &b, &eb)) != EM_OK) goto fail;

    items = calloc(n, sizeof *items);
    if (!items) {
        rc = em_errf(&eb, EM_E_NOMEM, "out of memory for %zu items", n);
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        const struct em_manifest_item *it = em_manifest_at(m, i);
        items[i] = (struct em_queue_item){it->id, it->uri, it->meta_json, it->ref};
    }
    size_t ntodo = n, nskip = 0;
    if (o.skip_done &&
        (rc = skip_done(q, st, &o, b.id, ph, m, items, &ntodo, &nskip, &eb)) != EM_OK)
        goto fail;
    rc = em_queue_add_items(q, b.id, items, ntodo, &eb);
    if (rc == EM_OK) rc = em_queue_batch_open(q, b.id, &eb);
    if (rc != EM_OK) goto fail;
    printf("%s\n", b.id);
    fflush(stdout);
    em_info("batch=%s msg=\"submitted\" items=%zu skipped=%zu bad_lines=%zu out=%s", b.id, n, nskip,
            em_manifest_bad_count(m), o.out);
    status = o.wait ? wait_batch(q, b.id) : 0;
    goto out;
fail:
    fprintf(stderr, "earmark submit: %s\n", em_errbuf_msg(&eb, rc));
    if (status != 2) status = 1;
out:
    em_storage_close(st);
    free(items);
    free(prompts_json);
    free(gen_json);
    free(ph);
    em_queue_close(q);
    em_manifest_free(m);
    free(data);
    return status;
}
