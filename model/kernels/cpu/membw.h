/* model/kernels/cpu/membw.h - the machine's memory read bandwidth, measured the way the
 * decode kernels read weights: one streaming pass per thread over its share of a buffer
 * much larger than the last-level cache. Used by `earmark bench model` and the kernel
 * micro-benchmark, so both report the same reference. Not for hot paths. */
#ifndef EM_MEMBW_H
#define EM_MEMBW_H

#include <stddef.h>
#include <stdint.h>

#define EM_MEMBW_MAX_THREADS 64

/* Best of reps passes over buf[words] split across T threads (1..EM_MEMBW_MAX_THREADS; the
 * calling thread reads the first share, and a share whose thread cannot start is read by
 * the caller too). Returns GB/s (1e9 bytes per second) of the bytes read. 256-bit loads
 * with four independent sums where AVX2 is usable: a scalar loop does not saturate DRAM. */
double em_membw_read(const uint64_t *buf, size_t words, int T, int reps);

#endif
