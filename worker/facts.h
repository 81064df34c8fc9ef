/* worker/facts.h - signal facts every annotation record carries.
 * Pure functions over 16 kHz mono float samples; thread-safe. */
#ifndef EM_FACTS_H
#define EM_FACTS_H

#include <stddef.h>

#define EM_FACTS_FLOOR_DBFS (-120.0) /* reported for digital silence */
#define EM_FACTS_SILENCE_DBFS (-50.0) /* a 20 ms frame quieter than this (RMS) is silent */

struct em_facts {
    double duration_s;
    double rms_dbfs;      /* 20*log10(rms), full scale = 1.0; floor EM_FACTS_FLOOR_DBFS */
    double peak_dbfs;     /* 20*log10(max |x|) */
    double silence_ratio; /* fraction of 20 ms frames with RMS below EM_FACTS_SILENCE_DBFS */
};

void em_facts_compute(const float *x, size_t n, int rate, struct em_facts *out);

#endif
