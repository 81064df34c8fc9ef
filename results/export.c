/* results/export.c - `earmark export BATCH|OUT_URI [--format jsonl|csv] [--segments]
 * [-o FILE]`: one row per item (or per segment), the same columns in every row, so that
 * Hugging Face `datasets.load_dataset("json", data_files=...)` (or "csv") reads it as is.
 *
 * Item rows:    id batch_id source status duration_s sample_rate channels model worker
 *               created_at caption transcript events answers total_s rtf error_class
 *               error_message
 * Segment rows: id segment source start_s end_s caption transcript events answers
 * events is a list of strings (for a segment, its "events" answer split at commas);
 * answers a list of {prompt, text}, prompts in record order; an absent value is null.
 * CSV: RFC 4180 quoting, a header line, events joined by "; ", answers as compact JSON. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cmd.h"
#include "common/usage.h"
#include "coordinator/cli.h"
#include "results/cli.h"
#include "results/export.h"
#include "storage/storage.h"

static const char *const item_cols[] = {
    "id", "batch_id", "source", "status", "duration_s", "sample_rate", "channels", "model",
    "worker", "created_at", "caption", "transcript", "events", "answers", "total_s", "rtf",
    "error_class", "error_message", NULL,
};
static const char *const seg_cols[] = {
    "id", "segment", "source", "start_s", "end_s", "caption", "transcript", "events",
    "answers", NULL,
};

const char *const *em_export_columns(int segments) { return segments ? seg_cols : item_cols; }

static json_t *str_or_null(const json_t *v)
{
    return json_is_string(v) ? json_incref((json_t *)v) : json_null();
}

static json_t *num_or_null(const json_t *v)
{
    return json_is_number(v) ? json_real(json_number_value(v)) : json_null();
}

static json_t *int_or_null(const json_t *v)
{
    return json_is_number(v) ? json_integer((json_int_t)json_number_value(v)) : json_null();
}

static json_t *answers_list(const json_t *ans)
{
    json_t *a = json_array();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)ans, k, v) {
        json_t *t;
        if (json_is_string(v)) {
            t = json_incref(v);
        } else { /* a structured answer: its JSON text, so the column keeps one type */
            char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            t = json_string(s ? s : "");
            free(s);
        }
        json_array_append_new(a, json_pack("{s:s, s:o}", "prompt", k, "text", t));
    }
    return a;
}

static json_t *events_list(const json_t *ev)
{
    json_t *a = json_array();
    size_t i;
    json_t *e;
    if (json_is_string(ev)) { /* a segment's raw "events" answer */
        const char *s = json_string_value(ev);
        for (const char *p = s; *p;) {
            while (*p == ' ' || *p == ',') p++;
            const char *c = strchr(p, ',');
            const char *end = c ? c : p + strlen(p);
            const char *t = end;
            while (t > p && t[-1] == ' ') t--;
            if (t > p) json_array_append_new(a, json_stringn(p, (size_t)(t - p)));
            p = end;
        }
        return a;
    }
    json_array_foreach(ev, i, e) {
        const char *s = json_is_string(e) ? json_string_value(e)
                                          : json_string_value(json_object_get(e, "label"));
        if (s) json_array_append_new(a, json_string(s));
    }
    return a;
}

json_t *em_export_item_row(const json_t *rec)
{
    const json_t *au = json_object_get(rec, "audio"), *tm = json_object_get(rec, "timings");
    const json_t *er = json_object_get(rec, "error"), *pr = json_object_get(rec, "producer");
    double dur = json_number_value(json_object_get(au, "duration_s"));
    double tot = json_number_value(json_object_get(tm, "total_s"));
    int has_rtf = json_is_number(json_object_get(au, "duration_s")) &&
                  json_is_number(json_object_get(tm, "total_s")) && dur > 0;
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, "
                     "s:o, s:o, s:o, s:o}",
                     "id", str_or_null(json_object_get(rec, "id")),
                     "batch_id", str_or_null(json_object_get(rec, "batch_id")),
                     "source", str_or_null(json_object_get(rec, "source")),
                     "status", str_or_null(json_object_get(rec, "status")),
                     "duration_s", num_or_null(json_object_get(au, "duration_s")),
                     "sample_rate", int_or_null(json_object_get(au, "sample_rate")),
                     "channels", int_or_null(json_object_get(au, "channels")),
                     "model", str_or_null(json_object_get(pr, "model")),
                     "worker", str_or_null(json_object_get(rec, "worker")),
                     "created_at", str_or_null(json_object_get(rec, "created_at")),
                     "caption", str_or_null(json_object_get(rec, "caption")),
                     "transcript", str_or_null(em_rec_transcript(rec)),
                     "events", events_list(json_object_get(rec, "events")),
                     "answers", answers_list(json_object_get(rec, "answers")),
                     "total_s", num_or_null(json_object_get(tm, "total_s")),
                     "rtf", has_rtf ? json_real(tot / dur) : json_null(),
                     "error_class", str_or_null(json_object_get(er, "class")),
                     "error_message", str_or_null(json_object_get(er, "message")));
}

json_t *em_export_segment_row(const json_t *rec, size_t i)
{
    const json_t *seg = json_array_get(json_object_get(rec, "segments"), i);
    const json_t *ans = json_object_get(seg, "answers");
    return json_pack("{s:o, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
                     "id", str_or_null(json_object_get(rec, "id")), "segment", (json_int_t)i,
                     "source", str_or_null(json_object_get(rec, "source")),
                     "start_s", num_or_null(json_object_get(seg, "start_s")),
                     "end_s", num_or_null(json_object_get(seg, "end_s")),
                     "caption", str_or_null(json_object_get(ans, "caption")),
                     "transcript", str_or_null(json_object_get(ans, "transcript")),
                     "events", events_list(json_object_get(ans, "events")),
                     "answers", answers_list(ans));
}

static void csv_field(FILE *f, const json_t *v)
{
    char *s = NULL;
    const char *t = NULL;
    if (json_is_null(v) || !v) return;
    if (json_is_string(v)) {
        t = json_string_value(v);
    } else if (json_is_array(v) && (json_array_size(v) == 0 || json_is_string(json_array_get(v, 0)))) {
        size_t cap = 1, i;
        json_t *e;
        json_array_foreach(v, i, e) cap += strlen(json_string_value(e) ? json_string_value(e) : "") + 2;
        s = calloc(1, cap);
        if (!s) return;
        json_array_foreach(v, i, e) {
            if (i) strncat(s, "; ", cap - strlen(s) - 1);
            strncat(s, json_string_value(e) ? json_string_value(e) : "", cap - strlen(s) - 1);
        }
        t = s;
    } else if (json_is_integer(v)) {
        fprintf(f, "%lld", (long long)json_integer_value(v));
        return;
    } else if (json_is_real(v)) {
        fprintf(f, "%.17g", json_real_value(v));
        return;
    } else {
        s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        t = s;
    }
    if (t && strpbrk(t, ",\"\r\n")) {
        fputc('"', f);
        for (const char *p = t; *p; p++) {
            if (*p == '"') fputc('"', f);
            fputc(*p, f);
        }
        fputc('"', f);
    } else if (t) {
        fputs(t, f);
    }
    free(s);
}

int em_export_write(FILE *f, const json_t *row, int segments, int csv)
{
    if (!row) return -1;
    if (!csv) {
        char *s = json_dumps(row, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!s) return -1;
        fprintf(f, "%s\n", s);
        free(s);
        return 0;
    }
    const char *const *cols = em_export_columns(segments);
    for (size_t c = 0; cols[c]; c++) {
        if (c) fputc(',', f);
        csv_field(f, json_object_get(row, cols[c]));
    }
    fputs("\r\n", f);
    return 0;
}

struct ctx {
    FILE *f;
    int segments, csv;
    size_t rows;
};

static int one(void *ud, const char *uri, const uint8_t *data, size_t len, json_t *rec)
{
    (void)uri;
    (void)data;
    (void)len;
    struct ctx *c = ud;
    size_t n = c->segments ? json_array_size(json_object_get(rec, "segments")) : 1;
    for (size_t i = 0; i < n; i++) {
        json_t *row = c->segments ? em_export_segment_row(rec, i) : em_export_item_row(rec);
        int bad = em_export_write(c->f, row, c->segments, c->csv);
        json_decref(row);
        if (bad) return 1;
        c->rows++;
    }
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: earmark export BATCH|OUT_URI [--redis URL] [--redis-ca FILE] [--format jsonl|csv] "
               "[--segments] [-o|--output FILE]\n");
}

int em_cmd_export(int argc, char **argv)
{
    static const struct option lo[] = {
        {"redis", required_argument, 0, 'r'}, {"format", required_argument, 0, 'f'},
        {"segments", no_argument, 0, 's'},    {"output", required_argument, 0, 'o'},
        {"help", no_argument, 0, 'h'},        {"redis-ca", required_argument, 0, 'C'},
        {0, 0, 0, 0},
    };
    const char *redis = NULL, *path = NULL;
    struct ctx c = {stdout, 0, 0, 0};
    optind = 1;
    opterr = 0;
    for (int ch; (ch = getopt_long(argc, argv, ":ho:", lo, NULL)) != -1;) {
        if (ch == 'r') redis = em_cli_redis_arg(optarg);
        else if (ch == 'C' && em_cli_redis_ca(optarg) == 0) continue;
        else if (ch == 'o') path = optarg;
        else if (ch == 's') c.segments = 1;
        else if (ch == 'f' && (strcmp(optarg, "jsonl") == 0 || strcmp(optarg, "csv") == 0))
            c.csv = strcmp(optarg, "csv") == 0;
        else if (ch == 'h') {
            usage(stdout);
            return 0;
        } else {
            if (ch == 'f')
                return em_usage_error("export", usage, "--format %.40s: expected jsonl or csv",
                                      optarg);
            return em_usage_bad_option("export", usage, ch, argv, optind);
        }
    }
    if (optind != argc - 1)
        return em_usage_error("export", usage, "expected one BATCH|OUT_URI, got %d arguments", argc - optind);
    struct em_errbuf eb = {{0}};
    char *out = NULL;
    struct em_storage *st = NULL;
    size_t bad = 0;
    em_err rc = em_rcli_open(argv[optind], redis, &out, &st, &eb);
    if (rc == EM_OK && path && !(c.f = fopen(path, "w")))
        rc = em_errf(&eb, EM_E_IO, "%s: cannot write", path);
    if (rc == EM_OK && c.csv) {
        const char *const *cols = em_export_columns(c.segments);
        for (size_t i = 0; cols[i]; i++) fprintf(c.f, "%s%s", i ? "," : "", cols[i]);
        fputs("\r\n", c.f);
    }
    if (rc == EM_OK) rc = em_recs_each(st, out, "export", one, &c, &bad, &eb);
    if (c.f && c.f != stdout && fclose(c.f) != 0 && rc == EM_OK)
        rc = em_errf(&eb, EM_E_IO, "%s: write failed", path);
    em_storage_close(st);
    free(out);
    if (rc != EM_OK) {
        fprintf(stderr, "earmark export: %s\n", em_errbuf_msg(&eb, rc));
        return 1;
    }
    fprintf(stderr, "earmark export: %zu rows, %zu unreadable records\n", c.rows, bad);
    return 0;
}
