/* results/svg.c - bar charts and histograms as inline SVG (svg.h). Layout: a fixed 640 x 260
 * view box, axis on the left/bottom, value ticks at 0, max/2 and max. */
#include "results/svg.h"

#include <math.h>
#include <string.h>

#define W 640.0
#define H 260.0
#define ML 56.0  /* left margin: value labels */
#define MR 12.0
#define MT 28.0  /* title */
#define MB 44.0  /* bar labels */
#define HL 180.0 /* left margin of horizontal bars: names */

void em_html_esc(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

size_t em_svg_bin(const double *v, size_t n, size_t bins, double *lo, double *width,
                  size_t *counts)
{
    double mn = INFINITY, mx = -INFINITY;
    size_t used = 0;
    memset(counts, 0, bins * sizeof *counts);
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i])) {
            mn = v[i] < mn ? v[i] : mn;
            mx = v[i] > mx ? v[i] : mx;
        }
    *lo = isfinite(mn) ? mn : 0;
    *width = isfinite(mn) && mx > mn ? (mx - mn) / (double)bins : 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(v[i])) continue;
        size_t b = *width > 0 ? (size_t)((v[i] - mn) / *width) : 0;
        if (b >= bins) b = bins - 1;
        counts[b]++;
        used++;
    }
    return used;
}

static void num(FILE *f, double v)
{
    if (fabs(v) >= 100 || v == floor(v))
        fprintf(f, "%.0f", v);
    else if (fabs(v) >= 1)
        fprintf(f, "%.2f", v);
    else
        fprintf(f, "%.3g", v);
}

void em_svg_bars(FILE *f, const char *id, const char *title, const char *unit,
                 const struct em_svg_bar *b, size_t n, int horiz)
{
    double mx = 0, total = 0;
    for (size_t i = 0; i < n; i++) {
        if (isfinite(b[i].value) && b[i].value > mx) mx = b[i].value;
        if (isfinite(b[i].value)) total += b[i].value;
    }
    double hh = horiz ? MT + 8 + 22.0 * (double)(n ? n : 1) + 24 : H;
    fprintf(f, "<svg class=\"plot\" id=\"");
    em_html_esc(f, id);
    fprintf(f, "\" data-total=\"%.17g\" data-bars=\"%zu\" viewBox=\"0 0 %.0f %.0f\" "
               "xmlns=\"http://www.w3.org/2000/svg\" role=\"img\">", total, n, W, hh);
    fprintf(f, "<title>");
    em_html_esc(f, title);
    fprintf(f, "</title><text x=\"%.0f\" y=\"18\" class=\"t\">", ML);
    em_html_esc(f, title);
    if (!horiz && unit && *unit) {
        fprintf(f, " <tspan class=\"l\">(");
        em_html_esc(f, unit);
        fprintf(f, ")</tspan>");
    }
    fprintf(f, "</text>");
    if (n == 0 || mx <= 0) {
        fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" class=\"l\">no data</text></svg>\n", ML, hh / 2);
        return;
    }
    if (horiz) {
        double pw = W - HL - MR - 60;
        for (size_t i = 0; i < n; i++) {
            double y = MT + 8 + 22.0 * (double)i, w = pw * (isfinite(b[i].value) ? b[i].value : 0) / mx;
            fprintf(f, "<text x=\"%.0f\" y=\"%.1f\" class=\"l\" text-anchor=\"end\">", HL - 6, y + 14);
            em_html_esc(f, b[i].label);
            fprintf(f, "</text><rect class=\"bar\" x=\"%.0f\" y=\"%.1f\" width=\"%.1f\" height=\"16\" "
                       "data-label=\"", HL, y + 2, w);
            em_html_esc(f, b[i].label);
            fprintf(f, "\" data-value=\"%.17g\"></rect><text x=\"%.1f\" y=\"%.1f\" class=\"l\">",
                    b[i].value, HL + w + 4, y + 14);
            num(f, b[i].value);
            fprintf(f, " ");
            em_html_esc(f, unit);
            fprintf(f, "</text>");
        }
        fprintf(f, "</svg>\n");
        return;
    }
    double pw = W - ML - MR, ph = H - MT - MB, bw = pw / (double)n;
    fprintf(f, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" class=\"ax\"/>", ML, MT, ML, MT + ph);
    fprintf(f, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" class=\"ax\"/>", ML, MT + ph, W - MR, MT + ph);
    for (int t = 0; t <= 2; t++) {
        fprintf(f, "<text x=\"%.0f\" y=\"%.1f\" class=\"l\" text-anchor=\"end\">", ML - 4, MT + ph - ph * t / 2 + 4);
        num(f, mx * t / 2);
        fprintf(f, "</text>");
    }
    size_t every = n > 12 ? (n + 11) / 12 : 1; /* label at most ~12 bars */
    for (size_t i = 0; i < n; i++) {
        double v = isfinite(b[i].value) ? b[i].value : 0, h = ph * v / mx;
        fprintf(f, "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                   "data-label=\"", ML + bw * (double)i + 1, MT + ph - h, bw > 3 ? bw - 2 : bw, h);
        em_html_esc(f, b[i].label);
        fprintf(f, "\" data-value=\"%.17g\"", b[i].value);
        if (isfinite(b[i].lo)) fprintf(f, " data-lo=\"%.17g\" data-hi=\"%.17g\"", b[i].lo, b[i].hi);
        fprintf(f, "><title>");
        em_html_esc(f, b[i].label);
        fprintf(f, ": ");
        num(f, b[i].value);
        fprintf(f, "</title></rect>");
        if (i % every == 0) {
            fprintf(f, "<text x=\"%.1f\" y=\"%.0f\" class=\"l\" text-anchor=\"middle\">",
                    ML + bw * ((double)i + 0.5), MT + ph + 16);
            em_html_esc(f, b[i].label);
            fprintf(f, "</text>");
        }
    }
    fprintf(f, "</svg>\n");
}

void em_svg_hist(FILE *f, const char *id, const char *title, const char *unit, const double *v,
                 size_t n, size_t bins)
{
    size_t counts[EM_SVG_MAX_BINS];
    struct em_svg_bar bars[EM_SVG_MAX_BINS];
    char labels[EM_SVG_MAX_BINS][32];
    if (bins < 1) bins = 1;
    if (bins > EM_SVG_MAX_BINS) bins = EM_SVG_MAX_BINS;
    double lo, width;
    size_t used = em_svg_bin(v, n, bins, &lo, &width, counts);
    if (width == 0) bins = 1;
    for (size_t i = 0; i < bins; i++) {
        double a = lo + width * (double)i, z = width > 0 ? a + width : lo;
        snprintf(labels[i], sizeof labels[i], "%.3g", a);
        bars[i] = (struct em_svg_bar){labels[i], (double)counts[i], a, z};
    }
    char t[256];
    snprintf(t, sizeof t, "%s (%zu items)", title, used);
    em_svg_bars(f, id, t, unit, bars, used ? bins : 0, 0);
}
