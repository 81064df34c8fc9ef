/* model/kernels/cpu/peak.h - the machine's arithmetic peaks, measured: T threads each run a
 * loop of independent register-only instructions for about `seconds`, and the rate of the
 * slowest-finishing run is reported. Used by `earmark bench model` to print the floor a 30 s
 * clip cannot beat on this machine (the measured peaks against the bandwidth), beside what
 * it measures. Not for hot paths; takes about 2 x seconds per call (a warm-up pass). */
#ifndef EM_PEAK_H
#define EM_PEAK_H

#define EM_PEAK_MAX_THREADS 64

/* f32 FMA GFLOP/s (2 per multiply-add) on T threads (1..EM_PEAK_MAX_THREADS): zmm FMA at
 * em_cpu_level() AVX512, ymm at AVX2; 0 below AVX2. */
double em_peak_fma_gflops(int T, double seconds);

/* int8 GOPS (2 per u8 x s8 product) of vpdpbusd zmm on T threads; 0 below AVX512 (whose
 * level includes VNNI, cpufeat.h). */
double em_peak_vnni_gops(int T, double seconds);

#endif
