/* results/score.h - per-item scores of a batch against its references, and the batch
 * metrics aggregated over any subset of items (the bootstrap of diff.c resamples subsets).
 *
 * Per item (from its record and references, records.h):
 *   transcript: word and character edits of normalised text (textnorm.h, wer.h), when the
 *               item has ref.transcript; a failed item or a null transcript counts as ""
 *   events:     tag counts (evtags.h) when it has ref.events
 *   caption:    token F1 of normalised caption against ref.caption (multiset overlap of
 *               words: 2·common / (|hyp| + |ref|); 1 when both are empty)
 *   timing:     audio duration, timings.total_s, real-time factor total_s / duration_s
 * Batch metrics (enum em_metric), over a subset:
 *   WER = Σ word errors / Σ reference words; CER likewise over characters;
 *   event precision/recall/F1 micro-averaged (Σ tp / Σ pred, Σ tp / Σ ref);
 *   caption F1 = mean of the items' token F1;
 *   RTF = Σ total_s / Σ duration_s over ok items with both;
 *   failed = failed items / items.
 * A metric without any item to compute it from is NAN. Thread-safe (no shared state). */
#ifndef EM_SCORE_H
#define EM_SCORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct em_evtags;

struct em_score_item {
    const char *id, *source, *worker; /* borrowed from the record */
    bool ok;
    int64_t created_ms;               /* -1 unknown */
    double duration_s, total_s, rtf;  /* NAN unknown */
    bool has_tr;
    size_t w_err, w_ref, c_err, c_ref;
    bool has_ev;
    size_t ev_tp, ev_pred, ev_ref;
    bool has_cap;
    double cap_f1;
};

enum em_metric {
    EM_METRIC_WER,
    EM_METRIC_CER,
    EM_METRIC_EV_P,
    EM_METRIC_EV_R,
    EM_METRIC_EV_F1,
    EM_METRIC_CAP_F1,
    EM_METRIC_RTF,
    EM_METRIC_FAILED,
    EM_METRIC_COUNT
};

/* "wer", "cer", "event_precision", "event_recall", "event_f1", "caption_f1", "rtf",
 * "failed_rate". */
const char *em_metric_name(enum em_metric m);
/* The metric named s, or -1. */
int em_metric_of(const char *s);
/* 1 if a larger value is better (the F1s, precision, recall), 0 if smaller is. */
int em_metric_higher_better(enum em_metric m);

/* Scores one record against ref (may be NULL). Strings in *it are borrowed from rec.
 * Errors: EM_E_TOO_LONG / EM_E_FORMAT from a text that cannot be scored (the detail names
 * the item), EM_E_NOMEM. */
em_err em_score_item(const json_t *rec, const json_t *ref, const struct em_evtags *tags,
                     struct em_score_item *it, struct em_errbuf *eb);

/* Token F1 of two normalised strings (see above). */
double em_score_token_f1(const char *hyp, const char *ref);

/* Batch metrics over items[idx[k]] for k < n (idx NULL: items[0..n)). out[EM_METRIC_COUNT]. */
void em_score_batch(const struct em_score_item *items, const size_t *idx, size_t n,
                    double out[EM_METRIC_COUNT]);

/* Throughput over the items' wall clock: the run spans from the earliest (created_ms -
 * total_s, in whole milliseconds) to the latest created_ms; items_per_s = items / span, audio_s_per_s = Σ duration
 * of ok items / span. All NAN when no item has a created_at, or the span is 0. */
struct em_score_rate {
    double span_s, items_per_s, audio_s_per_s;
    int64_t start_ms, end_ms;
};
void em_score_rate_of(const struct em_score_item *items, size_t n, struct em_score_rate *r);

/* Paired bootstrap of the change B - A: resamples times, n indices drawn with replacement
 * (splitmix64 seeded with seed, so a run is reproducible), each metric computed over the
 * drawn items of a and of b (a[i] and b[i] are the same manifest item). lo/hi get the
 * 2.5th and 97.5th percentiles of the deltas (nearest rank over the resamples where both
 * are defined; NAN when none is). Errors: EM_E_NOMEM. */
#define EM_SCORE_BOOT_DEFAULT 1000u
#define EM_SCORE_BOOT_MAX 100000u
em_err em_score_boot(const struct em_score_item *a, const struct em_score_item *b, size_t n,
                     unsigned resamples, uint64_t seed, double lo[EM_METRIC_COUNT],
                     double hi[EM_METRIC_COUNT], struct em_errbuf *eb);
/* The generator the bootstrap uses: next value of state *s. */
uint64_t em_score_rand(uint64_t *s);

#endif
