/* model/audio/chunk.h - splits audio longer than 30 s into consecutive windows of at most 30 s
 * (480000 samples at 16 kHz), each run through the model on its own. The reference model
 * sees only one 30-s window per call (the processor truncates), so a long file becomes
 * several annotated segments with start/end times.
 * Thread-safe: pure. */
#ifndef EM_CHUNK_H
#define EM_CHUNK_H

#include <stddef.h>

#include "common/err.h"

#define EM_CHUNK_SAMPLES 480000 /* 30 s at 16 kHz */

struct em_chunk {
    size_t offset;   /* first sample */
    size_t n;        /* samples, 1..EM_CHUNK_SAMPLES */
    double start_s;  /* offset / 16000 */
    double end_s;    /* (offset + n) / 16000 */
};

/* Number of windows for n samples: ceil(n / EM_CHUNK_SAMPLES); 0 for n == 0. */
size_t em_chunk_count(size_t n);

/* Fills out[0..em_chunk_count(n)) with consecutive windows covering [0, n). cap is the size
 * of out. Errors: EM_E_TOO_LONG if cap is short (nothing is written past cap). */
em_err em_chunk_split(size_t n, struct em_chunk *out, size_t cap, size_t *count);

#endif
