/* coordinator/life_cmd.c - `earmark cancel BATCH`, `earmark delete BATCH [--force]` and
 * `earmark ls`: a batch's end of life from the command line. Each only writes Redis
 * (queue_life.c); a running coordinator does the rest (cancel) or never sees the batch
 * again (delete), so all are safe while it runs. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cmd.h"
#include "common/usage.h"
#include "coordinator/cli.h"
#include "coordinator/queue.h"

static void usage_cancel(FILE *f) { fprintf(f, "usage: earmark cancel --redis URL [--redis-ca FILE] BATCH\n"); }
static void usage_delete(FILE *f)
{
    fprintf(f, "usage: earmark delete --redis URL [--redis-ca FILE] [--force] BATCH (refused while "
               "it runs)\n");
}
static void usage_ls(FILE *f) { fprintf(f, "usage: earmark ls --redis URL [--redis-ca FILE]\n"); }

/* Parses --redis and --force (when force is non-NULL) and the positional arguments.
 * Returns 0, or the exit status of a usage error. */
static int parse(const char *cmd, int argc, char **argv, const char **redis, int *force,
                 int npos, em_usage_fn *usage)
{
    static const struct option lo[] = {
        {"redis", required_argument, 0, 'r'},
        {"force", no_argument, 0, 'f'},
        {"redis-ca", required_argument, 0, 'C'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    *redis = NULL;
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":h", lo, NULL)) != -1;) {
        if (c == 'r') {
            *redis = em_cli_redis_arg(optarg);
        } else if (c == 'C') {
            if (em_cli_redis_ca(optarg) != 0)
                return em_usage_error(cmd, usage, "--redis-ca needs a file path");
        } else if (c == 'f' && force) {
            *force = 1;
        } else if (c == 'h') {
            usage(stdout);
            return -1;
        } else {
            return em_usage_bad_option(cmd, usage, c, argv, optind);
        }
    }
    *redis = em_cli_redis_url(*redis);
    if (!*redis) return em_usage_required(cmd, usage, "--redis", "or EARMARK_REDIS_URL");
    if (argc - optind != npos)
        return npos ? em_usage_error(cmd, usage, "expected one BATCH, got %d arguments",
                                     argc - optind)
                    : em_usage_error(cmd, usage, "unexpected argument '%.80s'", argv[optind]);
    if (npos && !em_queue_id_ok(argv[optind], EM_QUEUE_MAX_BATCH_ID)) {
        fprintf(stderr, "earmark %s: '%.80s' is not a batch id\n", cmd, argv[optind]);
        return 2;
    }
    return 0;
}

static int fail(const char *cmd, em_err rc, const struct em_errbuf *eb)
{
    fprintf(stderr, "earmark %s: %s\n", cmd, em_errbuf_msg(eb, rc));
    return 1;
}

int em_cmd_cancel(int argc, char **argv)
{
    const char *redis;
    int prc = parse("cancel", argc, argv, &redis, NULL, 1, usage_cancel);
    if (prc) return prc < 0 ? 0 : prc;
    const char *batch = argv[optind];
    struct em_errbuf eb = {{0}};
    struct em_queue *q = NULL;
    int requested = 0;
    em_err rc = em_queue_open(redis, &q, &eb);
    if (rc == EM_OK) rc = em_queue_batch_cancel(q, batch, &requested, &eb);
    em_queue_close(q);
    if (rc != EM_OK) return fail("cancel", rc, &eb);
    printf("%s\n", requested ? "cancelling: the coordinator settles the rest as cancelled"
                             : "already finished; nothing to cancel");
    return 0;
}

int em_cmd_delete(int argc, char **argv)
{
    const char *redis;
    int force = 0;
    int prc = parse("delete", argc, argv, &redis, &force, 1, usage_delete);
    if (prc) return prc < 0 ? 0 : prc;
    struct em_errbuf eb = {{0}};
    struct em_queue *q = NULL;
    em_err rc = em_queue_open(redis, &q, &eb);
    if (rc == EM_OK) rc = em_queue_batch_delete(q, argv[optind], force, &eb);
    em_queue_close(q);
    return rc == EM_OK ? 0 : fail("delete", rc, &eb);
}

struct row {
    struct em_batch_info b;
};

static int by_created(const void *a, const void *b)
{
    const struct row *x = a, *y = b;
    return x->b.created_ms < y->b.created_ms ? -1 : x->b.created_ms > y->b.created_ms;
}

int em_cmd_ls(int argc, char **argv)
{
    const char *redis;
    int prc = parse("ls", argc, argv, &redis, NULL, 0, usage_ls);
    if (prc) return prc < 0 ? 0 : prc;
    struct em_errbuf eb = {{0}};
    struct em_queue *q = NULL;
    char **ids = NULL;
    size_t n = 0, k = 0;
    struct row *rows = NULL;
    em_err rc = em_queue_open(redis, &q, &eb);
    if (rc == EM_OK) rc = em_queue_batch_ids(q, &ids, &n, &eb);
    if (rc == EM_OK && n && !(rows = calloc(n, sizeof *rows)))
        rc = em_errf(&eb, EM_E_NOMEM, "out of memory");
    for (size_t i = 0; rc == EM_OK && i < n; i++) {
        struct em_errbuf e2 = {{0}};
        if (em_queue_batch_get(q, ids[i], &rows[k].b, &e2) == EM_OK) k++; /* gone meanwhile */
    }
    em_queue_close(q);
    em_queue_strv_free(ids, n);
    if (rc != EM_OK) {
        free(rows);
        return fail("ls", rc, &eb);
    }
    qsort(rows, k, sizeof *rows, by_created);
    printf("%-20s %-10s %8s %8s %8s %9s  %-20s %s\n", "BATCH", "STATE", "TOTAL", "DONE", "FAILED",
           "CANCELLED", "CREATED", "OUT");
    for (size_t i = 0; i < k; i++) {
        const struct em_batch_info *b = &rows[i].b;
        char when[32] = "-";
        time_t t = (time_t)(b->created_ms / 1000);
        struct tm tm;
        if (gmtime_r(&t, &tm)) strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        printf("%-20s %-10s %8llu %8llu %8llu %9llu  %-20s %s\n", b->id,
               b->state[0] ? b->state : "?", (unsigned long long)b->total,
               (unsigned long long)b->done, (unsigned long long)b->failed,
               (unsigned long long)b->cancelled, when, b->out);
        em_batch_info_clear(&rows[i].b);
    }
    free(rows);
    return 0;
}
