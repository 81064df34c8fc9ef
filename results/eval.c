/* results/eval.c - `earmark eval BATCH|OUT_URI [--refs FILE] [--tags FILE] [--items]
 * [--json]`: scores a batch's records against the references its manifest carried (see
 * results/score.h for every formula, docs/eval.md for the normalisation) and prints the
 * batch metrics, throughput and real-time factor; --items adds one row per item. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cmd.h"
#include "common/usage.h"
#include "results/cli.h"
#include "results/evtags.h"
#include "results/textnorm.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: earmark eval BATCH|OUT_URI [--redis URL] [--redis-ca FILE] [--refs MANIFEST] "
               "[--tags FILE] [--items] [--json]\n");
}

/* text normalised (textnorm.h) as a JSON string, or null when absent or unusable. */
static json_t *norm_json(const json_t *v)
{
    const char *s = json_string_value(v);
    char *n = NULL;
    if (!s || em_textnorm(s, strlen(s), &n, NULL) != EM_OK) return json_null();
    json_t *j = json_string(n);
    free(n);
    return j ? j : json_null();
}

/* Per item: the scores, and the normalised texts they were computed from (so a script can
 * recompute them with another implementation). */
static json_t *item_json(const struct em_rec *rec, const struct em_score_item *it)
{
    json_t *o = json_pack("{s:s?, s:s?, s:s, s:o, s:o}", "id", it->id, "source", it->source,
                          "status", it->ok ? "ok" : "failed", "duration_s",
                          em_rcli_jnum(it->duration_s), "rtf", em_rcli_jnum(it->rtf));
    if (!o) return NULL;
    if (it->has_tr)
        json_object_update_new(o, json_pack("{s:I, s:I, s:o, s:I, s:I, s:o}", "word_errors",
                                        (json_int_t)it->w_err, "ref_words", (json_int_t)it->w_ref,
                                        "wer", em_rcli_jnum(it->w_ref ? (double)it->w_err / (double)it->w_ref : NAN),
                                        "char_errors", (json_int_t)it->c_err, "ref_chars",
                                        (json_int_t)it->c_ref, "cer",
                                        em_rcli_jnum(it->c_ref ? (double)it->c_err / (double)it->c_ref : NAN)));
    if (it->has_ev) {
        struct em_evtag_counts c = {it->ev_tp, it->ev_pred, it->ev_ref};
        double p, r, f1;
        em_evtag_prf(&c, &p, &r, &f1);
        json_object_update_new(o, json_pack("{s:I, s:I, s:I, s:f, s:f, s:f}", "event_tp",
                                        (json_int_t)c.tp, "event_pred", (json_int_t)c.npred,
                                        "event_ref", (json_int_t)c.nref, "event_precision", p,
                                        "event_recall", r, "event_f1", f1));
    }
    if (it->has_cap) json_object_set_new(o, "caption_f1", json_real(it->cap_f1));
    const json_t *ok = it->ok ? rec->rec : NULL;
    if (it->has_tr)
        json_object_update_new(o, json_pack("{s:o, s:o}", "transcript_norm",
                                            ok ? norm_json(em_rec_transcript(ok)) : json_string(""),
                                            "ref_transcript_norm", norm_json(json_object_get(rec->ref, "transcript"))));
    if (it->has_cap)
        json_object_update_new(o, json_pack("{s:o, s:o}", "caption_norm",
                                            ok ? norm_json(json_object_get(ok, "caption")) : json_string(""),
                                            "ref_caption_norm", norm_json(json_object_get(rec->ref, "caption"))));
    return o;
}

/* The whole evaluation as JSON (new reference, NULL on allocation failure). */
static json_t *eval_json(const struct em_recs *r, const struct em_score_item *items, int with_items)
{
    double m[EM_METRIC_COUNT];
    em_score_batch(items, NULL, r->n, m);
    struct em_score_rate rate;
    em_score_rate_of(items, r->n, &rate);
    size_t ok = 0, tr = 0, ev = 0, cap = 0;
    for (size_t i = 0; i < r->n; i++) {
        ok += items[i].ok;
        tr += items[i].has_tr;
        ev += items[i].has_ev;
        cap += items[i].has_cap;
    }
    json_t *metrics = json_object();
    for (int k = 0; metrics && k < EM_METRIC_COUNT; k++)
        json_object_set_new(metrics, em_metric_name((enum em_metric)k), em_rcli_jnum(m[k]));
    json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:{s:I, s:I, s:I}, s:o, s:{s:o, s:o, s:o}}",
                          "out", r->out, "items", (json_int_t)r->n, "ok", (json_int_t)ok,
                          "failed", (json_int_t)(r->n - ok), "bad_records", (json_int_t)r->bad,
                          "with_refs", "transcript", (json_int_t)tr, "events", (json_int_t)ev,
                          "caption", (json_int_t)cap, "metrics", metrics, "throughput",
                          "span_s", em_rcli_jnum(rate.span_s), "items_per_s",
                          em_rcli_jnum(rate.items_per_s), "audio_s_per_s",
                          em_rcli_jnum(rate.audio_s_per_s));
    if (o && with_items) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < r->n; i++) json_array_append_new(a, item_json(&r->v[i], &items[i]));
        json_object_set_new(o, "per_item", a);
    }
    return o;
}

static void print_metric(const char *label, double v, const char *unit)
{
    if (isfinite(v))
        printf("  %-18s %.4f%s\n", label, v, unit);
    else
        printf("  %-18s -\n", label);
}

static void print_text(const struct em_recs *r, const struct em_score_item *items, int with_items)
{
    json_t *o = eval_json(r, items, 0);
    json_t *m = json_object_get(o, "metrics");
    printf("out %s\n  items %zu  ok %lld  failed %lld  unreadable %zu\n", r->out, r->n,
           (long long)json_integer_value(json_object_get(o, "ok")),
           (long long)json_integer_value(json_object_get(o, "failed")), r->bad);
    json_t *w = json_object_get(o, "with_refs");
    printf("  references: transcript %lld  events %lld  caption %lld\n",
           (long long)json_integer_value(json_object_get(w, "transcript")),
           (long long)json_integer_value(json_object_get(w, "events")),
           (long long)json_integer_value(json_object_get(w, "caption")));
    for (int k = 0; k < EM_METRIC_COUNT; k++) {
        json_t *v = json_object_get(m, em_metric_name((enum em_metric)k));
        print_metric(em_metric_name((enum em_metric)k), json_is_real(v) ? json_real_value(v) : NAN, "");
    }
    json_t *t = json_object_get(o, "throughput");
    json_t *ips = json_object_get(t, "items_per_s"), *aps = json_object_get(t, "audio_s_per_s");
    print_metric("items/s", json_is_real(ips) ? json_real_value(ips) : NAN, "");
    print_metric("audio s/s", json_is_real(aps) ? json_real_value(aps) : NAN, "");
    json_decref(o);
    if (!with_items) return;
    printf("\n%-16s %-6s %8s %8s %8s %8s %8s  source\n", "id", "status", "wer", "cer", "ev_f1",
           "cap_f1", "rtf");
    for (size_t i = 0; i < r->n; i++) {
        const struct em_score_item *it = &items[i];
        char wer[16] = "-", cer[16] = "-", f1[16] = "-", cf[16] = "-", rtf[16] = "-";
        if (it->has_tr && it->w_ref) snprintf(wer, sizeof wer, "%.4f", (double)it->w_err / (double)it->w_ref);
        if (it->has_tr && it->c_ref) snprintf(cer, sizeof cer, "%.4f", (double)it->c_err / (double)it->c_ref);
        if (it->has_ev) {
            struct em_evtag_counts c = {it->ev_tp, it->ev_pred, it->ev_ref};
            double p, rr, f;
            em_evtag_prf(&c, &p, &rr, &f);
            snprintf(f1, sizeof f1, "%.4f", f);
        }
        if (it->has_cap) snprintf(cf, sizeof cf, "%.4f", it->cap_f1);
        if (isfinite(it->rtf)) snprintf(rtf, sizeof rtf, "%.3f", it->rtf);
        printf("%-16.16s %-6s %8s %8s %8s %8s %8s  %s\n", it->id ? it->id : "?",
               it->ok ? "ok" : "failed", wer, cer, f1, cf, rtf, it->source ? it->source : "?");
    }
}

int em_cmd_eval(int argc, char **argv)
{
    static const struct option lo[] = {
        EM_RCLI_LONGOPTS,
        {"items", no_argument, 0, 'i'},
        {"json", no_argument, 0, 'j'},        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    struct em_rcli_opts o = {0};
    int as_json = 0, with_items = 0;
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":h", lo, NULL)) != -1;) {
        if (em_rcli_opt(&o, c, optarg))
            continue;
        else if (c == 'i') with_items = 1;
        else if (c == 'j') as_json = 1;
        else if (c == 'h') {
            usage(stdout);
            return 0;
        } else {
            return em_usage_bad_option("eval", usage, c, argv, optind);
        }
    }
    if (optind != argc - 1)
        return em_usage_error("eval", usage, "expected one BATCH|OUT_URI, got %d arguments", argc - optind);
    struct em_recs r;
    struct em_evtags *tags = NULL;
    struct em_score_item *items = NULL;
    if (em_rcli_load("eval", argv[optind], &o, &r, &tags) != 0) return 1;
    int status = em_rcli_score("eval", &r, tags, &items);
    if (status == 0 && as_json) {
        json_t *j = eval_json(&r, items, with_items);
        char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
        if (s) printf("%s\n", s);
        else status = 1, fprintf(stderr, "earmark eval: out of memory\n");
        free(s);
        json_decref(j);
    } else if (status == 0) {
        print_text(&r, items, with_items);
    }
    free(items);
    em_evtag_free(tags);
    em_recs_free(&r);
    return status;
}
