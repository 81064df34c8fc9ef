/* worker/facts.c - duration, loudness (RMS, peak) and silence ratio of a mono clip.
 *   x[n] @ rate -> one pass: sum x^2 and max|x| overall, sum x^2 per 20 ms frame
 * Definitions, including the partial-frame rule, are in facts.h. */
#include "worker/facts.h"

#include <math.h>

static double to_dbfs(double amp)
{
    if (!(amp > 0)) return EM_FACTS_FLOOR_DBFS;
    double db = 20.0 * log10(amp);
    return db < EM_FACTS_FLOOR_DBFS ? EM_FACTS_FLOOR_DBFS : db;
}

static double sample(const float *x, size_t i)
{
    double v = x[i];
    return isfinite(v) ? v : 0.0;
}

void em_facts_compute(const float *x, size_t n, int rate, struct em_facts *out)
{
    out->duration_s = rate > 0 ? (double)n / rate : 0.0;
    if (n == 0 || !x) {
        out->rms_dbfs = out->peak_dbfs = EM_FACTS_FLOOR_DBFS;
        out->silence_ratio = 1.0;
        return;
    }
    size_t frame = rate > 0 ? (size_t)lround(rate * EM_FACTS_FRAME_S) : n;
    if (frame == 0) frame = 1;
    /* mean square below this is a silent frame: (10^(dB/20))^2 */
    const double silent_ms = pow(10.0, EM_FACTS_SILENCE_DBFS / 10.0);
    double sum = 0, peak = 0;
    size_t frames = 0, silent = 0;
    for (size_t start = 0; start < n; start += frame) {
        size_t len = n - start < frame ? n - start : frame;
        double fs = 0;
        for (size_t i = start; i < start + len; i++) {
            double v = sample(x, i);
            fs += v * v;
            if (fabs(v) > peak) peak = fabs(v);
        }
        sum += fs;
        /* a short tail (< half a frame) is dropped, unless it is the whole clip */
        if (len == frame || 2 * len >= frame || start == 0) {
            frames++;
            if (fs / (double)len < silent_ms) silent++;
        }
    }
    out->rms_dbfs = to_dbfs(sqrt(sum / (double)n));
    out->peak_dbfs = to_dbfs(peak);
    out->silence_ratio = (double)silent / (double)frames;
}
