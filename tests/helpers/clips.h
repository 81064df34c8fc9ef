/* tests/helpers/clips.h - real audio clips for tests, made with sox and ffmpeg (both must
 * be on PATH), and synthesized signals. Test-only code; every function returns 0 on
 * success and non-zero on failure (the caller asserts or fails its suite init). */
#ifndef EM_TH_CLIPS_H
#define EM_TH_CLIPS_H
#include <stddef.h>

/* A sine of freq Hz and linear amplitude amp (full scale 1.0), seconds long, at rate Hz
 * with channels identical channels, written by sox; the format follows path's
 * extension (.wav is 16-bit PCM). Repeatable (sox -R) and not dithered (-D). */
int th_make_tone(const char *path, double freq, double amp, double seconds, int rate, int channels);
/* Same tone, encoded by ffmpeg with the given output options, e.g. "-c:a libmp3lame -b:a
 * 128k" or "-c:a pcm_s24le"; the container follows path's extension (or a -f in ffargs). */
int th_make_tone_ff(const char *path, double freq, double amp, double seconds, int rate,
                    int channels, const char *ffargs);
/* deploy/make-corpus.sh [--bad] dir n (found through th_root()). */
int th_make_corpus(const char *dir, int n, int bad);
/* python3 deploy/make-demo-model.py [flags] dir: the embedded default checkpoint (the real
 * architecture and tokenizer, random weights); flags NULL or e.g. "--seed 5 --base". */
int th_make_demo_model(const char *dir, const char *flags);
/* Writes x[n] as a mono 32-bit float WAV at rate (values are written as given, even
 * outside [-1, 1] or non-finite). */
int th_write_wav_f32(const char *path, const float *x, size_t n, int rate);
/* x[i] = amp * sin(2*pi*freq*i/rate + phase) for i < n. */
void th_sine(float *x, size_t n, double freq, double amp, int rate, double phase);
/* RMS of x[from, to) in double. */
double th_rms(const float *x, size_t from, size_t to);
/* 20 * log10(x): the level in dB of amplitude x (dBFS for full scale 1.0). */
double th_db(double x);
/* Goertzel power of x[from, to) at freq (unnormalised: compare against other frequencies
 * over the same span). */
double th_goertzel(const float *x, size_t from, size_t to, double freq, int rate);
/* An mp3 cut mid-frame: a 2 s 440 Hz tone (16 kHz mono, 64 kb/s, ffmpeg + libmp3lame) at
 * whole, and at cut the same bytes less the smallest tail (a multiple of 3 bytes, < 600)
 * after which the decoder reports errors while still returning audio (em_audio
 * n_decode_errors > 0; which cut does depends on the bit reservoir). *cut_bytes (may be
 * NULL) gets the tail cut. 0 on success. */
int th_make_cut_mp3(const char *whole, const char *cut, size_t *cut_bytes);
#endif
