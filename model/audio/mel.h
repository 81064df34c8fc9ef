/* model/audio/mel.h - Whisper log-mel features as WhisperFeatureExtractor computes them for
 * Qwen2AudioProcessor (spec §2): the waveform is zero-padded or truncated to 30 s
 * (480000 samples), periodic Hann 400, reflect pad 200, 201-bin power spectrum, Slaney mel
 * filters (128; 80 for Whisper tiny..medium), log10 clamped at 1e-10, dynamic range max - 8
 * over the whole padded window, (y + 4) / 4. Output [bins, 3000] row-major (mel bin major,
 * frame minor). For a clip shorter than 30 s this is also what OpenAI's whisper.log_mel_spectrogram
 * gives for the first window (its extra 30 s of zero padding adds no maximum).
 * ref: transformers WhisperFeatureExtractor._torch_extract_fbank_features
 * Thread-safety: an em_mel is read-only after em_mel_new and may be shared by threads. */
#ifndef EM_MEL_H
#define EM_MEL_H

#include <stddef.h>

#include "common/err.h"

#define EM_MEL_RATE 16000
#define EM_MEL_BINS 128     /* Qwen2-Audio and Whisper large-v3; em_mel_new's default */
#define EM_MEL_MAX_BINS 128 /* the most em_mel_new_bins accepts (tiny..medium use 80) */
#define EM_MEL_NFFT 400
#define EM_MEL_HOP 160
#define EM_MEL_FRAMES 3000
#define EM_MEL_SAMPLES 480000 /* 30 s: the window every input is padded or cut to */

struct em_mel;

/* Builds the window and filter bank. On EM_OK the caller owns *out (em_mel_free).
 * Errors: EM_E_NOMEM. */
em_err em_mel_new(struct em_mel **out);
/* The same with n_mels bins (80 or 128, from the checkpoint's config); out rows are then
 * n_mels long. Errors: EM_E_ARG (another count), EM_E_NOMEM. */
em_err em_mel_new_bins(int n_mels, struct em_mel **out);
void em_mel_free(struct em_mel *m); /* NULL ok */
int em_mel_bins(const struct em_mel *m);

/* Number of valid frames for n samples: L = ceil(n / 160), capped at 3000 (the length of
 * the processor's feature_attention_mask). */
int em_mel_len(size_t n);

/* Log-mel of pcm[0..n) (16 kHz mono in [-1, 1]; samples past 480000 are ignored, so split
 * long audio with model/audio/chunk.h first) into out[em_mel_bins(m) * EM_MEL_FRAMES], caller-owned.
 * *mel_len (may be NULL) gets em_mel_len(n). Errors: EM_E_ARG (NULL pcm with n > 0),
 * EM_E_NOMEM. */
em_err em_mel_compute(const struct em_mel *m, const float *pcm, size_t n, float *out,
                      int *mel_len);

/* The Slaney filter bank, [201, em_mel_bins(m)] (frequency x mel), as float32 (what the reference
 * multiplies with). Borrowed. */
const float *em_mel_filters(const struct em_mel *m);

#endif
