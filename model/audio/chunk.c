/* model/audio/chunk.c - consecutive <= 30 s windows over a long clip. */
#include "model/audio/chunk.h"

#include "model/audio/mel.h"

_Static_assert(EM_CHUNK_SAMPLES == EM_MEL_SAMPLES, "a chunk is one mel window");

size_t em_chunk_count(size_t n) { return n / EM_CHUNK_SAMPLES + (n % EM_CHUNK_SAMPLES != 0); }

em_err em_chunk_split(size_t n, struct em_chunk *out, size_t cap, size_t *count)
{
    size_t k = em_chunk_count(n);
    *count = k;
    if (k > cap) return EM_E_TOO_LONG;
    for (size_t i = 0; i < k; i++) {
        size_t off = i * EM_CHUNK_SAMPLES;
        size_t len = n - off < EM_CHUNK_SAMPLES ? n - off : EM_CHUNK_SAMPLES;
        out[i] = (struct em_chunk){.offset = off, .n = len,
                                   .start_s = (double)off / EM_MEL_RATE,
                                   .end_s = (double)(off + len) / EM_MEL_RATE};
    }
    return EM_OK;
}
