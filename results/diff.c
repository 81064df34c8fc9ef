/* results/diff.c - `earmark diff A B [--gate METRIC:THRESHOLD]... [--json]`: two runs of the
 * same manifest (batch ids or OUT_URIs) paired by source URI. Prints each metric of A and
 * B, the change B - A with a 95 % bootstrap interval over the paired items (score.h;
 * --resamples, --seed), the items whose outputs (status, caption, transcript, events,
 * answers) differ, and the items only one run has. Exit status: 0, or 3 when a gated
 * metric got worse by more than its threshold (higher WER/CER/RTF/failed rate, lower
 * precision/recall/F1), 1 on error, 2 on usage. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cmd.h"
#include "common/usage.h"
#include "common/num.h"
#include "results/cli.h"
#include "results/evtags.h"

#define MAX_GATES 16
#define EXIT_REGRESSED 3

struct gate {
    int metric;
    double threshold;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: earmark diff A B [--redis URL] [--redis-ca FILE] [--refs MANIFEST] [--tags FILE]\n"
               "       [--gate METRIC:THRESHOLD]... [--resamples N] [--seed N] [--json]\n"
               "  A, B: batch ids or OUT_URIs of two runs of one manifest; METRIC one of\n"
               "  wer cer event_precision event_recall event_f1 caption_f1 rtf failed_rate\n"
               "  exit 3 when a gated metric regresses by more than THRESHOLD\n");
}

static int parse_gate(const char *s, struct gate *g)
{
    const char *colon = strchr(s, ':');
    char name[32];
    if (!colon || (size_t)(colon - s) >= sizeof name) return -1;
    snprintf(name, sizeof name, "%.*s", (int)(colon - s), s);
    char *end = NULL;
    g->metric = em_metric_of(name);
    g->threshold = strtod(colon + 1, &end);
    return g->metric < 0 || end == colon + 1 || *end || !isfinite(g->threshold) ||
                   g->threshold < 0
               ? -1
               : 0;
}

/* Fields whose difference makes an item "changed"; written to why (comma-separated). */
static int changed(const json_t *a, const json_t *b, char *why, size_t cap)
{
    static const char *const fields[] = {"status", "caption", "transcript", "events", "answers"};
    size_t n = 0;
    why[0] = 0;
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        const json_t *x = json_object_get(a, fields[i]), *y = json_object_get(b, fields[i]);
        if ((x || y) && !(x && y && json_equal(x, y))) {
            int k = snprintf(why + n, cap - n, "%s%s", n ? "," : "", fields[i]);
            if (k > 0 && (size_t)k < cap - n) n += (size_t)k;
        }
    }
    return n > 0;
}

struct run {
    struct em_recs r;
    struct em_score_item *items;
};

struct pairs {
    struct em_score_item *a, *b; /* paired, n each */
    size_t *ia, *ib;             /* record index in each run */
    size_t n, only_a, only_b;
};

static int pair_up(const struct run *A, const struct run *B, struct pairs *p, json_t *only)
{
    json_t *map = json_object(); /* source -> index in B */
    p->a = calloc(A->r.n + 1, sizeof *p->a);
    p->b = calloc(A->r.n + 1, sizeof *p->b);
    p->ia = calloc(A->r.n + 1, sizeof *p->ia);
    p->ib = calloc(A->r.n + 1, sizeof *p->ib);
    if (!map || !p->a || !p->b || !p->ia || !p->ib) {
        json_decref(map);
        return 1;
    }
    for (size_t j = 0; j < B->r.n; j++)
        if (B->items[j].source) json_object_set_new(map, B->items[j].source, json_integer((json_int_t)j));
    json_t *seen = json_object();
    for (size_t i = 0; i < A->r.n; i++) {
        const char *src = A->items[i].source;
        json_t *j = src ? json_object_get(map, src) : NULL;
        if (!j || json_object_get(seen, src)) {
            p->only_a++;
            json_array_append_new(only, json_pack("{s:s, s:s?}", "run", "A", "source", src));
            continue;
        }
        json_object_set_new(seen, src, json_true());
        size_t k = (size_t)json_integer_value(j);
        p->a[p->n] = A->items[i];
        p->b[p->n] = B->items[k];
        p->ia[p->n] = i;
        p->ib[p->n] = k;
        p->n++;
    }
    for (size_t j = 0; j < B->r.n; j++) {
        const char *src = B->items[j].source;
        if (src && json_object_get(seen, src)) continue;
        p->only_b++;
        json_array_append_new(only, json_pack("{s:s, s:s?}", "run", "B", "source", src));
    }
    json_decref(seen);
    json_decref(map);
    return 0;
}

static void pairs_free(struct pairs *p)
{
    free(p->a);
    free(p->b);
    free(p->ia);
    free(p->ib);
}

int em_cmd_diff(int argc, char **argv)
{
    static const struct option lo[] = {
        EM_RCLI_LONGOPTS,
        {"gate", required_argument, 0, 'g'},
        {"resamples", required_argument, 0, 'n'}, {"seed", required_argument, 0, 's'},
        {"json", no_argument, 0, 'j'},        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    struct em_rcli_opts o = {0};
    struct gate gates[MAX_GATES];
    size_t ngates = 0;
    long resamples = EM_SCORE_BOOT_DEFAULT, seed = 1;
    int as_json = 0;
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":h", lo, NULL)) != -1;) {
        if (em_rcli_opt(&o, c, optarg))
            continue;
        else if (c == 'j') as_json = 1;
        else if (c == 'g') {
            if (ngates == MAX_GATES || parse_gate(optarg, &gates[ngates]) != 0) {
                fprintf(stderr, "earmark diff: --gate '%s': want METRIC:THRESHOLD (a known metric, "
                                "threshold >= 0; at most %d gates)\n", optarg, MAX_GATES);
                return 2;
            }
            ngates++;
        } else if (c == 'n' && (resamples = em_num_parse(optarg, 1, EM_SCORE_BOOT_MAX)) < 0) {
            fprintf(stderr, "earmark diff: --resamples must be 1..%u\n", EM_SCORE_BOOT_MAX);
            return 2;
        } else if (c == 's' && (seed = em_num_parse(optarg, 0, 0x7fffffffL)) < 0) {
            fprintf(stderr, "earmark diff: --seed must be a number 0..2147483647\n");
            return 2;
        } else if (c == 'h') {
            usage(stdout);
            return 0;
        } else if (c != 'n' && c != 's') {
            return em_usage_bad_option("diff", usage, c, argv, optind);
        }
    }
    if (optind != argc - 2)
        return em_usage_error("diff", usage, "expected two runs A B, got %d arguments", argc - optind);
    struct run A = {0}, B = {0};
    struct em_evtags *ta = NULL, *tb = NULL;
    struct pairs p = {0};
    json_t *only = json_array(), *chg = json_array(), *metrics = json_object(), *gj = json_array();
    int status = 1;
    if (!only || !chg || !metrics || !gj) goto out;
    if (em_rcli_load("diff", argv[optind], &o, &A.r, &ta) != 0) goto out;
    if (em_rcli_load("diff", argv[optind + 1], &o, &B.r, &tb) != 0) goto out;
    if (em_rcli_score("diff", &A.r, ta, &A.items) != 0) goto out;
    if (em_rcli_score("diff", &B.r, ta, &B.items) != 0) goto out;
    if (pair_up(&A, &B, &p, only) != 0) {
        fprintf(stderr, "earmark diff: out of memory\n");
        goto out;
    }
    double ma[EM_METRIC_COUNT], mb[EM_METRIC_COUNT], lo_[EM_METRIC_COUNT], hi_[EM_METRIC_COUNT];
    em_score_batch(p.a, NULL, p.n, ma);
    em_score_batch(p.b, NULL, p.n, mb);
    struct em_errbuf eb = {{0}};
    if (em_score_boot(p.a, p.b, p.n, (unsigned)resamples, (uint64_t)seed, lo_, hi_, &eb) != EM_OK) {
        fprintf(stderr, "earmark diff: %s\n", eb.msg);
        goto out;
    }
    for (int k = 0; k < EM_METRIC_COUNT; k++)
        json_object_set_new(metrics, em_metric_name((enum em_metric)k),
                            json_pack("{s:o, s:o, s:o, s:[o, o]}", "a", em_rcli_jnum(ma[k]), "b",
                                      em_rcli_jnum(mb[k]), "delta", em_rcli_jnum(mb[k] - ma[k]),
                                      "ci95", em_rcli_jnum(lo_[k]), em_rcli_jnum(hi_[k])));
    for (size_t i = 0; i < p.n; i++) {
        char why[128];
        if (changed(A.r.v[p.ia[i]].rec, B.r.v[p.ib[i]].rec, why, sizeof why))
            json_array_append_new(chg, json_pack("{s:s?, s:s?, s:s?, s:s}", "source", p.a[i].source,
                                                 "id_a", p.a[i].id, "id_b", p.b[i].id, "fields", why));
    }
    status = 0;
    for (size_t g = 0; g < ngates; g++) {
        int k = gates[g].metric;
        double worse = em_metric_higher_better((enum em_metric)k) ? ma[k] - mb[k] : mb[k] - ma[k];
        const char *verdict = !isfinite(worse) ? "undefined" : worse > gates[g].threshold ? "regressed" : "pass";
        if (!isfinite(worse)) {
            fprintf(stderr, "earmark diff: gate %s: the metric has no value in %s\n",
                    em_metric_name((enum em_metric)k), isfinite(ma[k]) ? "B" : "A");
            if (status == 0) status = 1;
        } else if (worse > gates[g].threshold) {
            status = EXIT_REGRESSED;
        }
        json_array_append_new(gj, json_pack("{s:s, s:f, s:o, s:s}", "metric",
                                            em_metric_name((enum em_metric)k), "threshold",
                                            gates[g].threshold, "worse_by", em_rcli_jnum(worse),
                                            "verdict", verdict));
    }
    if (as_json) {
        json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:O, s:O, s:O, s:O}", "a", A.r.out,
                              "b", B.r.out, "paired", (json_int_t)p.n, "only_a",
                              (json_int_t)p.only_a, "only_b", (json_int_t)p.only_b, "resamples",
                              (json_int_t)resamples, "seed", (json_int_t)seed, "metrics", metrics,
                              "changed", chg, "only", only, "gates", gj);
        char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
        if (s) printf("%s\n", s);
        free(s);
        json_decref(j);
    } else {
        printf("A %s\nB %s\n  paired %zu  only in A %zu  only in B %zu  (bootstrap: %ld resamples, seed %ld)\n\n",
               A.r.out, B.r.out, p.n, p.only_a, p.only_b, resamples, seed);
        printf("  %-16s %10s %10s %10s   %s\n", "metric", "A", "B", "B - A", "95% CI");
        for (int k = 0; k < EM_METRIC_COUNT; k++) {
            if (!isfinite(ma[k]) && !isfinite(mb[k])) continue;
            printf("  %-16s %10.4f %10.4f %+10.4f   [%+.4f, %+.4f]\n", em_metric_name((enum em_metric)k),
                   ma[k], mb[k], mb[k] - ma[k], lo_[k], hi_[k]);
        }
        printf("\nchanged items: %zu\n", json_array_size(chg));
        size_t i;
        json_t *v;
        json_array_foreach(chg, i, v)
            printf("  %s  (%s)\n", json_string_value(json_object_get(v, "source")),
                   json_string_value(json_object_get(v, "fields")));
        json_array_foreach(only, i, v)
            printf("  only in %s: %s\n", json_string_value(json_object_get(v, "run")),
                   json_string_value(json_object_get(v, "source")));
        json_array_foreach(gj, i, v)
            printf("gate %s:%g  worse by %+.4f  %s\n", json_string_value(json_object_get(v, "metric")),
                   json_real_value(json_object_get(v, "threshold")),
                   json_is_real(json_object_get(v, "worse_by")) ? json_real_value(json_object_get(v, "worse_by")) : NAN,
                   json_string_value(json_object_get(v, "verdict")));
    }
out:
    json_decref(only);
    json_decref(chg);
    json_decref(metrics);
    json_decref(gj);
    pairs_free(&p);
    free(A.items);
    free(B.items);
    em_recs_free(&A.r);
    em_recs_free(&B.r);
    em_evtag_free(ta);
    em_evtag_free(tb);
    return status;
}
