/* tests/helpers/staged.h - a backend that behaves like a device, on the CPU, for tests.
 *
 * th_staged_backend() is the CPU backend's kernels behind a table that is not `unified`
 * (model/kernels/backend.h): callers must stage host data through upload / download as they
 * would for a GPU, weights are copied into memory of its own (not views of the checkpoint),
 * and every slot checks that each pointer it is handed as device memory (activations,
 * weights, the KV cache's row pointers, both sides of copy, the device side of upload /
 * download) lies inside one live allocation of this backend, with the extent the slot will
 * touch where the slot knows it. A violation (a host pointer where device memory belongs, a
 * freed or overrun buffer) makes the slot fail with EM_E_ARG without touching memory, and is
 * counted with the first one's description kept. So the model code's device contract, the
 * one a CUDA backend relies on, is checked on a machine without a GPU; the results equal the
 * CPU backend's to the bit (same kernels).
 *
 * Thread-safety: the slots may be called from several threads (one mutex guards the
 * registry), as the CPU backend's. The backend is static (never freed). */
#ifndef TH_STAGED_H
#define TH_STAGED_H

#include <stddef.h>

#include "model/kernels/backend.h"

const struct em_backend *th_staged_backend(void);

/* Violations since the last th_staged_reset; the first one's description into first. */
size_t th_staged_violations(char *first, size_t cap);
/* Bytes allocated and not yet freed, and the number of such allocations. */
size_t th_staged_live_bytes(size_t *n_allocs);
void th_staged_reset(void); /* clears the violation count (not the allocations) */

#endif
