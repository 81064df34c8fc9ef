/* coordinator/status.c - `earmark status BATCH [--json]`: counts, rate and ETA from Redis. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/cmd.h"
#include "common/usage.h"
#include "coordinator/cli.h"
#include "coordinator/queue.h"

static void usage(FILE *f) { fprintf(f, "usage: earmark status --redis URL [--redis-ca FILE] BATCH [--json]\n"); }

static int print_json(const char *batch, const struct em_batch_info *b, const struct em_progress *p)
{
    json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:s?, s:o, s:s?}", "batch",
                          batch, "state", b->state, "total", (json_int_t)p->total, "done",
                          (json_int_t)p->done, "failed", (json_int_t)p->failed, "pending",
                          (json_int_t)p->pending, "in_flight", (json_int_t)p->in_flight, "skipped",
                          (json_int_t)p->skipped, "dead", (json_int_t)p->dead, "rate", p->rate,
                          "out", b->out, "eta_s", p->eta_s < 0 ? json_null() : json_real(p->eta_s),
                          "stalled", p->stalled ? b->stalled : NULL);
    if (o) json_object_set_new(o, "cancelled", json_integer((json_int_t)p->cancelled));
    if (o && b->want) json_object_set_new(o, "model", json_string(b->want));
    if (o && b->waiting && !p->complete) json_object_set_new(o, "waiting", json_string(b->waiting));
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s) {
        fprintf(stderr, "earmark status: out of memory\n");
        return 1;
    }
    printf("%s\n", s);
    free(s);
    return 0;
}

int em_cmd_status(int argc, char **argv)
{
    static const struct option lo[] = {
        {"redis", required_argument, 0, 'r'},
        {"json", no_argument, 0, 'j'},
        {"redis-ca", required_argument, 0, 'C'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *redis = NULL;
    int as_json = 0;
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":h", lo, NULL)) != -1;) {
        if (c == 'r')
            redis = em_cli_redis_arg(optarg);
        else if (c == 'C' && em_cli_redis_ca(optarg) != 0)
            return em_usage_error("status", usage, "--redis-ca needs a file path");
        else if (c == 'C')
            continue;
        else if (c == 'j')
            as_json = 1;
        else if (c == 'h') {
            usage(stdout);
            return 0;
        } else {
            return em_usage_bad_option("status", usage, c, argv, optind);
        }
    }
    redis = em_cli_redis_url(redis);
    if (!redis) return em_usage_required("status", usage, "--redis", "or EARMARK_REDIS_URL");
    if (optind != argc - 1)
        return em_usage_error("status", usage, "expected one BATCH, got %d arguments",
                              argc - optind);
    const char *batch = argv[optind];
    struct em_errbuf eb = {{0}};
    struct em_queue *q = NULL;
    struct em_batch_info b = {0};
    em_err rc = em_queue_open(redis, &q, &eb);
    if (rc == EM_OK) rc = em_queue_batch_get(q, batch, &b, &eb);
    uint64_t infl = 0;
    if (rc == EM_OK) rc = em_queue_inflight_sum(q, batch, &infl, &eb);
    em_queue_close(q);
    if (rc != EM_OK) {
        fprintf(stderr, "earmark status: %s\n", em_errbuf_msg(&eb, rc));
        em_batch_info_clear(&b);
        return 1;
    }
    struct em_progress p;
    em_progress_of(&b, infl, b.dead, em_wall_ms(), &p);
    int status = 0;
    if (as_json) {
        status = print_json(batch, &b, &p);
    } else {
        char eta[32];
        if (p.eta_s < 0)
            snprintf(eta, sizeof eta, "unknown");
        else
            snprintf(eta, sizeof eta, "%.0fs", p.eta_s);
        printf("batch %s (%s)\n  total %llu  done %llu  failed %llu  pending %llu  in-flight %llu"
               "  skipped %llu  dead %llu\n  %.2f items/s  ETA %s\n  out %s\n",
               batch, b.state, (unsigned long long)p.total, (unsigned long long)p.done,
               (unsigned long long)p.failed, (unsigned long long)p.pending,
               (unsigned long long)p.in_flight, (unsigned long long)p.skipped,
               (unsigned long long)p.dead, p.rate, eta, b.out);
        if (b.waiting && !p.complete) printf("  %s\n", b.waiting);
        if (p.stalled) printf("  stalled: %s\n", b.stalled);
        if (p.cancelled) printf("  cancelled %llu\n", (unsigned long long)p.cancelled);
    }
    em_batch_info_clear(&b);
    return status;
}
