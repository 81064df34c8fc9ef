/* results/svg.h - the plots of `earmark report`: inline SVG written to a stdio stream, no
 * script. Every bar carries its numbers as attributes (data-label, data-value, and for
 * histograms data-lo / data-hi), and every plot its id and data-total (the sum of its bar
 * values), so a test reading the rendered page can check the plots hold the batch's numbers.
 * Thread-safe (no shared state; one stream per call). */
#ifndef EM_SVG_H
#define EM_SVG_H

#include <stddef.h>
#include <stdio.h>

#define EM_SVG_MAX_BINS 200u
#define EM_SVG_MAX_BARS 64u /* bars drawn; more are summed into "other" by the caller */

struct em_svg_bar {
    const char *label; /* drawn under/beside the bar, escaped */
    double value;
    double lo, hi;     /* histogram bin bounds (NAN when not a bin) */
};

/* Histogram of the finite values of v[n] into bins equal-width bins over [min, max] (a
 * single value, or all equal: one bin [v, v]). counts[bins] get the counts, *lo the lower
 * bound and *width the bin width; values equal to max go to the last bin. Returns how many
 * values were counted (NANs and infinities are skipped). bins must be 1..EM_SVG_MAX_BINS. */
size_t em_svg_bin(const double *v, size_t n, size_t bins, double *lo, double *width,
                  size_t *counts);

/* Vertical bar chart (horizontal when horiz) titled title; unit labels the value axis. */
void em_svg_bars(FILE *f, const char *id, const char *title, const char *unit,
                 const struct em_svg_bar *b, size_t n, int horiz);
/* em_svg_bin + em_svg_bars, bins labelled by their bounds. */
void em_svg_hist(FILE *f, const char *id, const char *title, const char *unit, const double *v,
                 size_t n, size_t bins);
/* Writes s with & < > " ' escaped for HTML text and attributes. NULL writes nothing. */
void em_html_esc(FILE *f, const char *s);

#endif
