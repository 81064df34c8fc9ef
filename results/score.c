/* results/score.c - per-item scores and subset aggregation (score.h). */
#include "results/score.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "results/records.h"
#include "results/evtags.h"
#include "results/textnorm.h"
#include "results/wer.h"

#define MAX_EVENTS 1024 /* tags per side scored; more are ignored */

static const char *const names[EM_METRIC_COUNT] = {
    "wer", "cer", "event_precision", "event_recall", "event_f1", "caption_f1", "rtf",
    "failed_rate",
};

const char *em_metric_name(enum em_metric m)
{
    return (unsigned)m < EM_METRIC_COUNT ? names[m] : "?";
}

int em_metric_of(const char *s)
{
    for (int i = 0; i < EM_METRIC_COUNT; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

int em_metric_higher_better(enum em_metric m)
{
    return m == EM_METRIC_EV_P || m == EM_METRIC_EV_R || m == EM_METRIC_EV_F1 ||
           m == EM_METRIC_CAP_F1;
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

double em_score_token_f1(const char *hyp, const char *ref)
{
    /* words of each side, sorted, then a merge counts the multiset intersection */
    const char *sides[2] = {hyp, ref};
    char *copy[2] = {strdup(hyp), strdup(ref)};
    const char **w[2] = {NULL, NULL};
    size_t n[2] = {0, 0};
    double f1 = 0;
    for (int s = 0; s < 2; s++) {
        if (!copy[s]) goto out;
        w[s] = malloc((strlen(sides[s]) / 2 + 2) * sizeof *w[s]);
        if (!w[s]) goto out;
        for (char *p = copy[s]; *p;) {
            while (*p == ' ') p++;
            if (!*p) break;
            w[s][n[s]++] = p;
            while (*p && *p != ' ') p++;
            if (*p) *p++ = 0;
        }
        qsort(w[s], n[s], sizeof *w[s], cmp_cstr);
    }
    if (n[0] == 0 && n[1] == 0) {
        f1 = 1;
        goto out;
    }
    size_t common = 0;
    for (size_t i = 0, j = 0; i < n[0] && j < n[1];) {
        int c = strcmp(w[0][i], w[1][j]);
        if (c == 0) common++, i++, j++;
        else if (c < 0) i++;
        else j++;
    }
    f1 = 2.0 * (double)common / (double)(n[0] + n[1]);
out:
    for (int s = 0; s < 2; s++) {
        free(copy[s]);
        free(w[s]);
    }
    return f1;
}

/* A record's text field normalised ("" for null or absent). */
static em_err norm_field(const json_t *v, char **out, struct em_errbuf *eb)
{
    const char *s = json_string_value(v);
    return em_textnorm(s ? s : "", s ? strlen(s) : 0, out, eb);
}

/* Tag strings of an events array (strings or {label}). */
static size_t tag_list(const json_t *a, const char **out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(a) && n < cap; i++) {
        const json_t *e = json_array_get(a, i);
        const char *s = json_is_string(e) ? json_string_value(e)
                                          : json_string_value(json_object_get(e, "label"));
        if (s) out[n++] = s;
    }
    return n;
}

static em_err score_text(const json_t *hyp, const json_t *ref, struct em_score_item *it,
                         int caption, struct em_errbuf *eb)
{
    char *h = NULL, *r = NULL;
    em_err rc = norm_field(hyp, &h, eb);
    if (rc == EM_OK) rc = norm_field(ref, &r, eb);
    if (rc == EM_OK && caption) {
        it->cap_f1 = em_score_token_f1(h, r);
        it->has_cap = true;
    } else if (rc == EM_OK) {
        struct em_edits w, c;
        rc = em_wer_words(r, h, &w, eb);
        if (rc == EM_OK) rc = em_wer_chars(r, h, &c, eb);
        if (rc == EM_OK) {
            it->w_err = em_edits_errors(&w);
            it->w_ref = w.ref;
            it->c_err = em_edits_errors(&c);
            it->c_ref = c.ref;
            it->has_tr = true;
        }
    }
    free(h);
    free(r);
    return rc;
}

em_err em_score_item(const json_t *rec, const json_t *ref, const struct em_evtags *tags,
                     struct em_score_item *it, struct em_errbuf *eb)
{
    memset(it, 0, sizeof *it);
    it->id = em_rec_str(rec, "id", NULL);
    it->source = em_rec_str(rec, "source", NULL);
    it->worker = em_rec_str(rec, "worker", NULL);
    const char *st = em_rec_str(rec, "status", NULL);
    it->ok = st && strcmp(st, "ok") == 0;
    it->created_ms = em_rec_created_ms(rec);
    it->duration_s = em_rec_num(rec, "audio", "duration_s");
    it->total_s = em_rec_num(rec, "timings", "total_s");
    it->rtf = it->duration_s > 0 && it->total_s >= 0 ? it->total_s / it->duration_s : NAN;
    if (!ref) return EM_OK;
    em_err rc = EM_OK;
    struct em_errbuf teb = {{0}};
    const json_t *rt = json_object_get(ref, "transcript");
    if (json_is_string(rt)) {
        rc = score_text(it->ok ? em_rec_transcript(rec) : NULL, rt, it, 0, &teb);
        if (rc != EM_OK) return em_errf(eb, rc, "item %s: transcript: %s", it->id, teb.msg);
    }
    const json_t *rc_ = json_object_get(ref, "caption");
    if (json_is_string(rc_)) {
        rc = score_text(it->ok ? json_object_get(rec, "caption") : NULL, rc_, it, 1, &teb);
        if (rc != EM_OK) return em_errf(eb, rc, "item %s: caption: %s", it->id, teb.msg);
    }
    const json_t *re = json_object_get(ref, "events");
    if (json_is_array(re)) {
        const char *p[MAX_EVENTS], *r[MAX_EVENTS];
        size_t np = it->ok ? tag_list(json_object_get(rec, "events"), p, MAX_EVENTS) : 0;
        size_t nr = tag_list(re, r, MAX_EVENTS);
        struct em_evtag_counts c;
        rc = em_evtag_score(tags, p, np, r, nr, &c, eb);
        if (rc != EM_OK) return rc;
        it->ev_tp = c.tp;
        it->ev_pred = c.npred;
        it->ev_ref = c.nref;
        it->has_ev = true;
    }
    return EM_OK;
}

void em_score_batch(const struct em_score_item *items, const size_t *idx, size_t n,
                    double out[EM_METRIC_COUNT])
{
    double we = 0, wr = 0, ce = 0, cr = 0, tp = 0, np = 0, nr = 0, cap = 0, ncap = 0;
    double tot = 0, dur = 0, failed = 0, nev = 0;
    for (size_t k = 0; k < n; k++) {
        const struct em_score_item *it = &items[idx ? idx[k] : k];
        if (it->has_tr) {
            we += (double)it->w_err;
            wr += (double)it->w_ref;
            ce += (double)it->c_err;
            cr += (double)it->c_ref;
        }
        if (it->has_ev) {
            tp += (double)it->ev_tp;
            np += (double)it->ev_pred;
            nr += (double)it->ev_ref;
            nev++;
        }
        if (it->has_cap) {
            cap += it->cap_f1;
            ncap++;
        }
        if (it->ok && it->duration_s > 0 && it->total_s >= 0) {
            tot += it->total_s;
            dur += it->duration_s;
        }
        failed += !it->ok;
    }
    out[EM_METRIC_WER] = wr > 0 ? we / wr : NAN;
    out[EM_METRIC_CER] = cr > 0 ? ce / cr : NAN;
    struct em_evtag_counts c = {(size_t)tp, (size_t)np, (size_t)nr};
    double p = NAN, r = NAN, f1 = NAN;
    if (nev > 0) em_evtag_prf(&c, &p, &r, &f1);
    out[EM_METRIC_EV_P] = p;
    out[EM_METRIC_EV_R] = r;
    out[EM_METRIC_EV_F1] = f1;
    out[EM_METRIC_CAP_F1] = ncap > 0 ? cap / ncap : NAN;
    out[EM_METRIC_RTF] = dur > 0 ? tot / dur : NAN;
    out[EM_METRIC_FAILED] = n > 0 ? failed / (double)n : NAN;
}

void em_score_rate_of(const struct em_score_item *items, size_t n, struct em_score_rate *r)
{
    *r = (struct em_score_rate){NAN, NAN, NAN, -1, -1};
    double audio = 0;
    for (size_t i = 0; i < n; i++) {
        const struct em_score_item *it = &items[i];
        if (it->created_ms < 0) continue;
        int64_t start = it->created_ms - (it->total_s > 0 ? llround(it->total_s * 1000) : 0);
        if (r->start_ms < 0 || start < r->start_ms) r->start_ms = start;
        if (it->created_ms > r->end_ms) r->end_ms = it->created_ms;
        if (it->ok && it->duration_s > 0) audio += it->duration_s;
    }
    if (r->start_ms < 0 || r->end_ms <= r->start_ms) return;
    r->span_s = (double)(r->end_ms - r->start_ms) / 1000.0;
    r->items_per_s = (double)n / r->span_s;
    r->audio_s_per_s = audio / r->span_s;
}

uint64_t em_score_rand(uint64_t *s)
{
    /* ref: splitmix64 (Steele, Lea, Flood 2014), as in Vigna's xoshiro seeding code */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

em_err em_score_boot(const struct em_score_item *a, const struct em_score_item *b, size_t n,
                     unsigned resamples, uint64_t seed, double lo[EM_METRIC_COUNT],
                     double hi[EM_METRIC_COUNT], struct em_errbuf *eb)
{
    for (int k = 0; k < EM_METRIC_COUNT; k++) lo[k] = hi[k] = NAN;
    if (n == 0 || resamples == 0) return EM_OK;
    size_t *idx = malloc(n * sizeof *idx);
    double *d = malloc((size_t)resamples * EM_METRIC_COUNT * sizeof *d);
    size_t cnt[EM_METRIC_COUNT] = {0};
    if (!idx || !d) {
        free(idx);
        free(d);
        return em_errf(eb, EM_E_NOMEM, "out of memory");
    }
    uint64_t s = seed;
    for (unsigned r = 0; r < resamples; r++) {
        for (size_t i = 0; i < n; i++) idx[i] = (size_t)(em_score_rand(&s) % n);
        double ma[EM_METRIC_COUNT], mb[EM_METRIC_COUNT];
        em_score_batch(a, idx, n, ma);
        em_score_batch(b, idx, n, mb);
        for (int k = 0; k < EM_METRIC_COUNT; k++)
            if (isfinite(ma[k]) && isfinite(mb[k]))
                d[(size_t)k * resamples + cnt[k]++] = mb[k] - ma[k];
    }
    for (int k = 0; k < EM_METRIC_COUNT; k++) {
        if (!cnt[k]) continue;
        double *v = d + (size_t)k * resamples;
        qsort(v, cnt[k], sizeof *v, cmp_double);
        /* nearest rank: the ceil(p * N)-th smallest, 1-based */
        size_t il = (size_t)ceil(0.025 * (double)cnt[k]), ih = (size_t)ceil(0.975 * (double)cnt[k]);
        lo[k] = v[il ? il - 1 : 0];
        hi[k] = v[ih ? ih - 1 : 0];
    }
    free(idx);
    free(d);
    return EM_OK;
}
