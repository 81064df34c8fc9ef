/* model/tools/bench_host.h - the host's side of a benchmark: which CPU ran it, and one
 * competing busy thread to measure beside (a worker shares its host with decode, mel and I/O
 * threads, and a shared machine with other processes).
 *
 * Thread-safety: em_bench_cpu_model is reentrant. A busy thread is driven by the thread that
 * started it (start, then stop once). */
#ifndef EM_BENCH_HOST_H
#define EM_BENCH_HOST_H

#include <stddef.h>

#include "common/err.h"

#define EM_BENCH_CPU_MODEL_MAX 160 /* bytes of the model line kept, NUL included */

/* Writes the CPU's model name (Linux /proc/cpuinfo "model name", plus "family F model M"
 * when given) into out[cap], or "unknown" when it cannot be read. Never fails. */
void em_bench_cpu_model(char *out, size_t cap);

struct em_bench_busy;

/* Starts one thread that spins on integer arithmetic (no memory traffic, no system calls)
 * until em_bench_busy_stop. The OS schedules it like any other thread: it is not pinned.
 * On EM_OK the caller owns *out. Errors: EM_E_NOMEM, EM_E_INTERNAL (thread creation). */
em_err em_bench_busy_start(struct em_bench_busy **out, struct em_errbuf *eb);
/* Stops and joins the thread, frees b, and returns the spin rounds it ran (0 for NULL); a
 * non-zero count shows it got CPU time. */
unsigned long long em_bench_busy_stop(struct em_bench_busy *b);

#endif
