/* model/audio.h - FFmpeg (libavformat/libavcodec/libswresample) decode of any container
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
#define EM_AUDIO_MAX_BYTES (512u * 1024u * 1024u) /* encoded input limit */

struct em_audio {
    float *pcm;            /* [n] mono samples at 16 kHz; owned, freed by em_audio_free */
    size_t n;
    double duration_s;     /* n / 16000 */
    int src_rate;          /* original sample rate, Hz */
    int src_channels;      /* original channel count */
    char codec[32];        /* FFmpeg codec name, e.g. "mp3", "pcm_s16le" */
    char container[32];    /* FFmpeg demuxer name, e.g. "wav", "ogg", "mov,mp4,m4a,3gp,3g2,mj2" cut to fit */
};

/* Decodes an in-memory file. name is used only in error messages. On EM_OK *out is
 * filled and owned by the caller (em_audio_free). Errors: EM_E_AUDIO (no audio stream,
 * undecodable, empty), EM_E_TOO_LONG (over EM_AUDIO_MAX_SECONDS or MAX_BYTES),
 * EM_E_NOMEM. */
em_err em_audio_decode_mem(const uint8_t *data, size_t len, const char *name,
                           struct em_audio *out, struct em_errbuf *eb);
/* Same, from a file path. */
em_err em_audio_decode_file(const char *path, struct em_audio *out, struct em_errbuf *eb);
void em_audio_free(struct em_audio *a); /* frees pcm, zeroes *a; NULL ok */

#endif
