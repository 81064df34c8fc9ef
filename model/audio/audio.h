/* model/audio/audio.h - FFmpeg (libavformat/libavcodec/libswresample) decode of any container
 * and codec FFmpeg handles to 16 kHz mono float32 in [-1, 1]. Shared by the worker's
 * signal facts and the model's front end. Input is untrusted: bounded size and duration,
 * a clear error naming the cause, never a crash.
 * Thread-safe: each call is independent (no global state besides FFmpeg's own). */
#ifndef EM_AUDIO_H
#define EM_AUDIO_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define EM_AUDIO_RATE 16000
#define EM_AUDIO_MAX_SECONDS (4 * 3600)         /* decoded duration limit */
/* Decoding less than this fraction of the duration a header declares means the file was
 * cut short: EM_E_AUDIO "truncated". */
#define EM_AUDIO_TRUNCATED_RATIO 0.9
#define EM_AUDIO_MAX_BYTES (512u * 1024u * 1024u) /* encoded input limit */

struct em_audio {
    float *pcm;            /* [n] mono samples at 16 kHz; owned, freed by em_audio_free */
    size_t n;
    double duration_s;     /* n / 16000 */
    int src_rate;          /* original sample rate, Hz, as the stream declares it (a chained
                              Ogg's first link; later changes are resampled all the same) */
    int src_channels;      /* original channel count, likewise */
    char codec[32];        /* FFmpeg codec name, e.g. "mp3", "pcm_s16le" */
    char container[32];    /* FFmpeg demuxer name, e.g. "wav", "ogg", "mov,mp4,m4a,3gp,3g2,mj2" cut to fit */
    unsigned n_corrupt;    /* packets/frames FFmpeg rejected and that were skipped */
    unsigned n_decode_errors; /* every error the decoder reported: n_corrupt plus the errors
                                 it only logged while still returning audio (an mp3 cut
                                 mid-frame); 0 for a clean file */
};

/* Limits for one decode; em_audio_opts_default() gives the EM_AUDIO_MAX_* values.
 * Lower them for a tighter policy (or in tests); values above the defaults are allowed. */
struct em_audio_opts {
    size_t max_bytes;   /* encoded input; over it: EM_E_TOO_LONG before decoding */
    double max_seconds; /* decoded duration; checked while decoding: EM_E_TOO_LONG */
};
struct em_audio_opts em_audio_opts_default(void);

/* Decodes an in-memory file (data is only read, never kept). name is used in error
 * messages and as a container hint by its extension, as FFmpeg does for a file name.
 * Channels are downmixed to their mean (as librosa mono=True does, not FFmpeg's -3 dB
 * sum), so a clip's level does not depend on its channel count; samples are made
 * finite and clamped to [-1, 1]. Corrupt packets in the middle are skipped and counted
 * (n_corrupt) as long as FFmpeg can go on; a read error ends the stream like EOF.
 * On EM_OK *out is filled and owned by the caller (em_audio_free); on error *out is
 * zeroed. Errors (eb names the item and the cause, e.g. "x.mp3: no audio stream"):
 * EM_E_AUDIO (empty file, unknown container, no audio stream, no decoder, 0 samples),
 * EM_E_TOO_LONG (over EM_AUDIO_MAX_SECONDS or MAX_BYTES), EM_E_NOMEM, EM_E_ARG (an
 * opts.max_seconds that is not positive). */
em_err em_audio_decode_mem(const uint8_t *data, size_t len, const char *name,
                           struct em_audio *out, struct em_errbuf *eb);
/* Same with explicit limits; opts NULL means the defaults. */
em_err em_audio_decode_mem_opts(const uint8_t *data, size_t len, const char *name,
                                const struct em_audio_opts *opts, struct em_audio *out,
                                struct em_errbuf *eb);
/* Same, from a file path (read whole, bounded by max_bytes; the path names the item).
 * Extra errors: EM_E_NOTFOUND (no such file), EM_E_IO (cannot read it). */
em_err em_audio_decode_file(const char *path, struct em_audio *out, struct em_errbuf *eb);
em_err em_audio_decode_file_opts(const char *path, const struct em_audio_opts *opts,
                                 struct em_audio *out, struct em_errbuf *eb);
void em_audio_free(struct em_audio *a); /* frees pcm, zeroes *a; NULL ok */

#endif
