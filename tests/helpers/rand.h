/* tests/helpers/rand.h - the small deterministic generators the unit suites draw their
 * inputs from (uniform floats in [-1, 1)); each suite keeps its own state and seed, so its
 * inputs do not depend on which other suites ran. Also the error measure the kernel suites
 * compare outputs with. Static inline, no shared state. */
#ifndef EM_TEST_RAND_H
#define EM_TEST_RAND_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* 32-bit LCG (Numerical Recipes constants); the top 24 bits of the state. */
static inline float em_test_lcg_unit(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffffff) / 8388608.0f - 1.0f;
}

/* xorshift32 (13, 17, 5); the state must not be 0. */
static inline float em_test_xorshift_unit(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return (float)((double)*s / 2147483648.0 - 1.0);
}

/* 64-bit LCG (Knuth's MMIX constants); the top 53 bits of the state. */
static inline float em_test_lcg64_unit(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(*s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* max |got - want| / max |want| (the absolute error when want is all zero); a NaN in got
 * gives infinity, so it can never pass a bound. */
static inline double em_test_rel_err(const float *got, const float *want, size_t n)
{
    double e = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= e)) e = isnan(d) ? INFINITY : d;
        if (fabs(want[i]) > m) m = fabs(want[i]);
    }
    return m > 0 ? e / m : e;
}

#endif
