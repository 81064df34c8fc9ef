/* worker/facts.h - signal facts every annotation record carries.
 * Pure functions over mono float samples (16 kHz in the pipeline; any rate works);
 * thread-safe. Everything is computed in double.
 *
 * Definitions (full scale = 1.0):
 *   duration_s    n / rate (0 when rate <= 0)
 *   rms_dbfs      20*log10(sqrt(mean(x^2))) over the whole clip
 *   peak_dbfs     20*log10(max |x|)
 *   Both are floored at EM_FACTS_FLOOR_DBFS, which is what digital silence (and n == 0)
 *   reports. Non-finite samples (NaN, inf) count as 0.
 *   silence_ratio the clip is cut into frames of F = round(rate * 0.020) samples from the
 *   start; a final partial frame counts as a frame when it has at least F/2 samples (10 ms)
 *   and is dropped otherwise; a clip shorter than F/2 is one frame. A frame is silent when
 *   its RMS is below EM_FACTS_SILENCE_DBFS. The ratio is silent frames / frames, in [0, 1];
 *   n == 0 gives 1 (nothing but silence). */
#ifndef EM_FACTS_H
#define EM_FACTS_H

#include <stddef.h>

#define EM_FACTS_FLOOR_DBFS (-120.0) /* reported for digital silence */
#define EM_FACTS_SILENCE_DBFS (-50.0) /* a 20 ms frame quieter than this (RMS) is silent */
#define EM_FACTS_FRAME_S 0.020        /* silence frame length */

struct em_facts {
    double duration_s;
    double rms_dbfs;      /* 20*log10(rms), full scale = 1.0; floor EM_FACTS_FLOOR_DBFS */
    double peak_dbfs;     /* 20*log10(max |x|) */
    double silence_ratio; /* fraction of 20 ms frames with RMS below EM_FACTS_SILENCE_DBFS */
};

/* x may be NULL when n == 0. Fills every field of *out. */
void em_facts_compute(const float *x, size_t n, int rate, struct em_facts *out);

#endif
