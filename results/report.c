/* results/report.c - `earmark report BATCH|OUT_URI -o report.html`: one self-contained HTML
 * page (inline CSS and SVG, no script, nothing fetched) with the batch summary, throughput
 * over time, items per worker, histograms of latency (timings.total_s), real-time factor
 * and audio duration, failure classes with example items, and the evaluation tables when
 * the records carry references (results/score.h). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cmd.h"
#include "common/usage.h"
#include "results/cli.h"
#include "results/report.h"
#include "results/svg.h"
#include "results/evtags.h"

#define TIME_BINS 30
#define HIST_BINS 20
#define EXAMPLES 3      /* example items per failure class */
#define WORST_ITEMS 25  /* rows of the per-item evaluation table */

static const char css[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:24px auto;max-width:1000px;color:#222}"
    "h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}"
    "table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 10px;border-bottom:1px solid #eee;"
    "text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}"
    ".grid{display:grid;grid-template-columns:1fr 1fr;gap:12px}"
    "svg.plot{width:100%;height:auto;background:#fafafa;border:1px solid #eee}"
    "svg .bar{fill:#3b7dd8}svg .t{font-size:14px;font-weight:600}svg .l{font-size:11px;fill:#444}"
    "svg .ax{stroke:#888}code{font-size:12px}.muted{color:#777}";

static void fnum(FILE *f, double v, const char *fmt)
{
    if (isfinite(v))
        fprintf(f, fmt, v);
    else
        fputs("&ndash;", f);
}

static void summary(FILE *f, const struct em_recs *r, const struct em_score_item *it)
{
    struct em_score_rate rate;
    em_score_rate_of(it, r->n, &rate);
    double m[EM_METRIC_COUNT];
    em_score_batch(it, NULL, r->n, m);
    size_t ok = 0;
    double audio = 0;
    for (size_t i = 0; i < r->n; i++) {
        ok += it[i].ok;
        if (it[i].ok && isfinite(it[i].duration_s)) audio += it[i].duration_s;
    }
    fprintf(f, "<table id=\"summary\"><tr><th>items</th><td class=\"n\" id=\"n-items\">%zu</td></tr>"
               "<tr><th>ok</th><td class=\"n\" id=\"n-ok\">%zu</td></tr>"
               "<tr><th>failed</th><td class=\"n\" id=\"n-failed\">%zu</td></tr>"
               "<tr><th>unreadable records</th><td class=\"n\">%zu</td></tr>"
               "<tr><th>audio</th><td class=\"n\" id=\"audio-s\">%.1f s</td></tr>",
            r->n, ok, r->n - ok, r->bad, audio);
    fprintf(f, "<tr><th>wall span</th><td class=\"n\">");
    fnum(f, rate.span_s, "%.1f s");
    fprintf(f, "</td></tr><tr><th>throughput</th><td class=\"n\" id=\"items-per-s\">");
    fnum(f, rate.items_per_s, "%.3f items/s");
    fprintf(f, "</td></tr><tr><th>audio per wall second</th><td class=\"n\">");
    fnum(f, rate.audio_s_per_s, "%.3f");
    fprintf(f, "</td></tr><tr><th>real-time factor (&Sigma; total / &Sigma; audio)</th><td class=\"n\" id=\"rtf\">");
    fnum(f, m[EM_METRIC_RTF], "%.3f");
    fprintf(f, "</td></tr></table>\n");
}

/* Items settled per minute in TIME_BINS bins of the run's wall span. */
static void throughput(FILE *f, const struct em_recs *r, const struct em_score_item *it)
{
    struct em_score_rate rate;
    em_score_rate_of(it, r->n, &rate);
    double *t = malloc((r->n + 1) * sizeof *t);
    if (!t) return;
    for (size_t i = 0; i < r->n; i++)
        t[i] = it[i].created_ms >= 0 ? (double)(it[i].created_ms - rate.start_ms) / 1000.0 : NAN;
    size_t counts[TIME_BINS];
    double lo, width;
    size_t used = em_svg_bin(t, r->n, TIME_BINS, &lo, &width, counts);
    size_t nb = width > 0 ? TIME_BINS : 1;
    struct em_svg_bar bars[TIME_BINS];
    char labels[TIME_BINS][24];
    for (size_t i = 0; i < nb; i++) {
        double a = lo + width * (double)i;
        snprintf(labels[i], sizeof labels[i], width < 10 ? "+%.1fs" : "+%.0fs", a);
        /* per minute over the bin's width; one bin spanning no time: the count itself */
        bars[i] = (struct em_svg_bar){labels[i], width > 0 ? (double)counts[i] * 60.0 / width : (double)counts[i], a, width > 0 ? a + width : a};
    }
    fprintf(f, "<p class=\"muted\" id=\"tp-items\" data-items=\"%zu\">%zu settled items by "
               "completion time (created_at); bars are items per minute.</p>", used, used);
    em_svg_bars(f, "throughput", "Throughput over time", "items/min", bars, used ? nb : 0, 0);
    free(t);
}

struct wcount {
    const char *worker;
    double n, model;
};

static int by_count(const void *a, const void *b)
{
    const struct wcount *x = a, *y = b;
    return x->n < y->n ? 1 : x->n > y->n ? -1 : strcmp(x->worker, y->worker);
}

static void workers(FILE *f, const struct em_recs *r, const struct em_score_item *it)
{
    struct wcount *w = calloc(r->n + 1, sizeof *w);
    struct em_svg_bar *bars = calloc(EM_SVG_MAX_BARS + 1, sizeof *bars);
    size_t nw = 0;
    if (!w || !bars) goto out;
    for (size_t i = 0; i < r->n; i++) {
        const char *name = it[i].worker ? it[i].worker : "(none)";
        size_t k = 0;
        while (k < nw && strcmp(w[k].worker, name) != 0) k++;
        if (k == nw) w[nw++] = (struct wcount){name, 0, 0};
        w[k].n++;
    }
    qsort(w, nw, sizeof *w, by_count);
    size_t nb = 0;
    double other = 0;
    for (size_t k = 0; k < nw; k++) {
        if (nb < EM_SVG_MAX_BARS - 1 || nw <= EM_SVG_MAX_BARS)
            bars[nb++] = (struct em_svg_bar){w[k].worker, w[k].n, NAN, NAN};
        else
            other += w[k].n;
    }
    if (other > 0) bars[nb++] = (struct em_svg_bar){"(other workers)", other, NAN, NAN};
    em_svg_bars(f, "workers", "Items per worker", "items", bars, nb, 1);
out:
    free(w);
    free(bars);
}

static void histograms(FILE *f, const struct em_recs *r, const struct em_score_item *it)
{
    double *lat = malloc((r->n + 1) * sizeof *lat), *rtf = malloc((r->n + 1) * sizeof *rtf),
           *dur = malloc((r->n + 1) * sizeof *dur);
    if (lat && rtf && dur) {
        for (size_t i = 0; i < r->n; i++) {
            lat[i] = it[i].ok ? it[i].total_s : NAN;
            rtf[i] = it[i].ok ? it[i].rtf : NAN;
            dur[i] = it[i].ok ? it[i].duration_s : NAN;
        }
        fprintf(f, "<div class=\"grid\">");
        em_svg_hist(f, "latency", "Latency per item, s (timings.total_s)", "items", lat, r->n, HIST_BINS);
        em_svg_hist(f, "rtf", "Real-time factor per item (total / audio)", "items", rtf, r->n, HIST_BINS);
        fprintf(f, "</div><h2>Corpus</h2>");
        em_svg_hist(f, "durations", "Audio duration, s", "items", dur, r->n, HIST_BINS);
    }
    free(lat);
    free(rtf);
    free(dur);
}

static void failures(FILE *f, const struct em_recs *r)
{
    json_t *cls = json_object(); /* class -> {n, ex: [[source, message]]} */
    if (!cls) return;
    for (size_t i = 0; i < r->n; i++) {
        const json_t *rec = r->v[i].rec;
        const char *st = em_rec_str(rec, "status", NULL);
        if (!st || strcmp(st, "failed") != 0) continue;
        const char *c = em_rec_str(rec, "error", "class");
        if (!c) c = "(no class)";
        json_t *e = json_object_get(cls, c);
        if (!e) {
            e = json_pack("{s:i, s:[]}", "n", 0, "ex");
            json_object_set_new(cls, c, e);
        }
        json_object_set_new(e, "n", json_integer(json_integer_value(json_object_get(e, "n")) + 1));
        json_t *ex = json_object_get(e, "ex");
        if (json_array_size(ex) < EXAMPLES)
            json_array_append_new(ex, json_pack("[s?, s?]", em_rec_str(rec, "source", NULL),
                                                em_rec_str(rec, "error", "message")));
    }
    if (json_object_size(cls) == 0) {
        fprintf(f, "<p id=\"failures\" data-failed=\"0\">No item failed.</p>\n");
        json_decref(cls);
        return;
    }
    fprintf(f, "<table id=\"failures\"><tr><th>class</th><th>items</th><th>examples</th></tr>");
    const char *k;
    json_t *e;
    json_object_foreach(cls, k, e) {
        fprintf(f, "<tr><td><code>");
        em_html_esc(f, k);
        fprintf(f, "</code></td><td class=\"n\" data-class=\"");
        em_html_esc(f, k);
        fprintf(f, "\">%lld</td><td>", (long long)json_integer_value(json_object_get(e, "n")));
        size_t i;
        json_t *x;
        json_array_foreach(json_object_get(e, "ex"), i, x) {
            fprintf(f, "<div><code>");
            em_html_esc(f, json_string_value(json_array_get(x, 0)));
            fprintf(f, "</code>: ");
            em_html_esc(f, json_string_value(json_array_get(x, 1)));
            fprintf(f, "</div>");
        }
        fprintf(f, "</td></tr>");
    }
    fprintf(f, "</table>\n");
    json_decref(cls);
}

static int by_wer(const void *a, const void *b)
{
    const struct em_score_item *x = *(const struct em_score_item *const *)a,
                               *y = *(const struct em_score_item *const *)b;
    double wx = x->w_ref ? (double)x->w_err / (double)x->w_ref : 0;
    double wy = y->w_ref ? (double)y->w_err / (double)y->w_ref : 0;
    return wx < wy ? 1 : wx > wy ? -1 : 0;
}

static void evaluation(FILE *f, const struct em_recs *r, const struct em_score_item *it)
{
    size_t nref = 0;
    for (size_t i = 0; i < r->n; i++) nref += it[i].has_tr || it[i].has_ev || it[i].has_cap;
    fprintf(f, "<h2>Evaluation</h2>");
    if (!nref) {
        fprintf(f, "<p class=\"muted\">No reference in the manifest (meta.ref), so no evaluation.</p>");
        return;
    }
    double m[EM_METRIC_COUNT];
    em_score_batch(it, NULL, r->n, m);
    fprintf(f, "<p>%zu items with references.</p><table id=\"metrics\"><tr><th>metric</th><th>value</th></tr>", nref);
    for (int k = 0; k < EM_METRIC_COUNT; k++) {
        if (!isfinite(m[k])) continue;
        fprintf(f, "<tr><td>%s</td><td class=\"n\" data-metric=\"%s\" data-value=\"%.17g\">%.4f</td></tr>",
                em_metric_name((enum em_metric)k), em_metric_name((enum em_metric)k), m[k], m[k]);
    }
    fprintf(f, "</table>");
    const struct em_score_item **v = calloc(r->n + 1, sizeof *v);
    if (!v) return;
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++)
        if (it[i].has_tr) v[n++] = &it[i];
    qsort(v, n, sizeof *v, by_wer);
    if (n) {
        fprintf(f, "<h3>Items by word error rate (worst %d)</h3><table id=\"worst\"><tr><th>source</th>"
                   "<th>errors</th><th>ref words</th><th>WER</th><th>CER</th></tr>", WORST_ITEMS);
        for (size_t i = 0; i < n && i < WORST_ITEMS; i++) {
            fprintf(f, "<tr><td><code>");
            em_html_esc(f, v[i]->source);
            fprintf(f, "</code></td><td class=\"n\">%zu</td><td class=\"n\">%zu</td><td class=\"n\">",
                    v[i]->w_err, v[i]->w_ref);
            fnum(f, v[i]->w_ref ? (double)v[i]->w_err / (double)v[i]->w_ref : NAN, "%.3f");
            fprintf(f, "</td><td class=\"n\">");
            fnum(f, v[i]->c_ref ? (double)v[i]->c_err / (double)v[i]->c_ref : NAN, "%.3f");
            fprintf(f, "</td></tr>");
        }
        fprintf(f, "</table>\n");
    }
    free(v);
}

void em_report_write(FILE *f, const struct em_recs *r, const struct em_score_item *it)
{
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%SZ", gmtime_r(&now, &tm));
    fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
               "<meta name=\"viewport\" content=\"width=device-width\"><title>earmark report: ");
    em_html_esc(f, r->out);
    fprintf(f, "</title><style>%s</style></head><body>\n<h1>earmark report</h1><p><code>", css);
    em_html_esc(f, r->out);
    fprintf(f, "</code> <span class=\"muted\">generated %s by earmark %s</span></p>\n", when, EM_VERSION);
    summary(f, r, it);
    fprintf(f, "<h2>Throughput</h2>");
    throughput(f, r, it);
    fprintf(f, "<h2>Workers</h2>");
    workers(f, r, it);
    fprintf(f, "<h2>Latency and real-time factor</h2>");
    histograms(f, r, it);
    fprintf(f, "<h2>Failures</h2>");
    failures(f, r);
    evaluation(f, r, it);
    fprintf(f, "</body></html>\n");
}

static void usage(FILE *f)
{
    fprintf(f, "usage: earmark report BATCH|OUT_URI -o|--output FILE.html [--redis URL] [--redis-ca FILE] [--refs MANIFEST] "
               "[--tags FILE]\n");
}

int em_cmd_report(int argc, char **argv)
{
    static const struct option lo[] = {
        EM_RCLI_LONGOPTS,
        {"output", required_argument, 0, 'o'},
        {"help", no_argument, 0, 'h'},        {0, 0, 0, 0},
    };
    struct em_rcli_opts o = {0};
    const char *path = NULL;
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":ho:", lo, NULL)) != -1;) {
        if (em_rcli_opt(&o, c, optarg))
            continue;
        else if (c == 'o') path = optarg;
        else if (c == 'h') {
            usage(stdout);
            return 0;
        } else {
            return em_usage_bad_option("report", usage, c, argv, optind);
        }
    }
    if (!path) return em_usage_required("report", usage, "-o/--output", NULL);
    if (optind != argc - 1)
        return em_usage_error("report", usage, "expected one BATCH|OUT_URI, got %d arguments", argc - optind);
    struct em_recs r;
    struct em_evtags *tags = NULL;
    struct em_score_item *items = NULL;
    if (em_rcli_load("report", argv[optind], &o, &r, &tags) != 0) return 1;
    int status = em_rcli_score("report", &r, tags, &items);
    if (status == 0) {
        FILE *f = fopen(path, "w");
        if (!f) {
            fprintf(stderr, "earmark report: %s: cannot write\n", path);
            status = 1;
        } else {
            em_report_write(f, &r, items);
            if (fclose(f) != 0) {
                fprintf(stderr, "earmark report: %s: write failed\n", path);
                status = 1;
            }
        }
    }
    free(items);
    em_evtag_free(tags);
    em_recs_free(&r);
    return status;
}
