/* tests/helpers/clips.c - see clips.h. Paths are quoted for the shell with '...'. */
#include "tests/helpers/clips.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/audio/audio.h"
#include "tests/helpers/proc.h"

int th_make_tone(const char *path, double freq, double amp, double seconds, int rate, int channels)
{
    if (strchr(path, '\'')) return -1;
    return th_sh("sox -q -R -D -n -r %d -c %d -b 16 '%s' synth %.6f sine %.6f vol %.9f 2>/dev/null",
                 rate, channels, path, seconds, freq, amp);
}

int th_make_tone_ff(const char *path, double freq, double amp, double seconds, int rate,
                    int channels, const char *ffargs)
{
    if (strchr(path, '\'')) return -1;
    /* a float wav at the target rate first, so ffmpeg only encodes */
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.src.wav", path) >= (int)sizeof tmp) return -1;
    int rc = th_sh("sox -q -R -D -n -r %d -c %d -e floating-point -b 32 '%s' synth %.6f sine %.6f "
                   "vol %.9f 2>/dev/null",
                   rate, channels, tmp, seconds, freq, amp);
    if (rc == 0)
        rc = th_sh("ffmpeg -nostdin -v error -y -i '%s' %s '%s' </dev/null", tmp, ffargs, path);
    remove(tmp);
    return rc;
}

int th_make_corpus(const char *dir, int n, int bad)
{
    if (strchr(dir, '\'')) return -1;
    return th_sh("'%s/deploy/make-corpus.sh' %s '%s' %d", th_root(), bad ? "--bad" : "", dir, n);
}

int th_make_demo_model(const char *dir, const char *flags)
{
    if (strchr(dir, '\'')) return -1;
    return th_sh("python3 '%s/deploy/make-demo-model.py' %s '%s' > /dev/null", th_root(),
                 flags ? flags : "", dir);
}

static void le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

int th_write_wav_f32(const char *path, const float *x, size_t n, int rate)
{
    if (n > (UINT32_MAX - 64) / 4) return -1;
    uint8_t h[44];
    uint32_t data = (uint32_t)(n * 4);
    memcpy(h, "RIFF", 4);
    le32(h + 4, 36 + data);
    memcpy(h + 8, "WAVEfmt ", 8);
    le32(h + 16, 16);
    h[20] = 3, h[21] = 0; /* WAVE_FORMAT_IEEE_FLOAT */
    h[22] = 1, h[23] = 0; /* mono */
    le32(h + 24, (uint32_t)rate);
    le32(h + 28, (uint32_t)rate * 4);
    h[32] = 4, h[33] = 0;  /* block align */
    h[34] = 32, h[35] = 0; /* bits */
    memcpy(h + 36, "data", 4);
    le32(h + 40, data);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(h, 1, sizeof h, f) == sizeof h;
    for (size_t i = 0; ok && i < n; i++) {
        uint32_t v;
        memcpy(&v, &x[i], 4);
        uint8_t b[4];
        le32(b, v);
        ok = fwrite(b, 1, 4, f) == 4;
    }
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

void th_sine(float *x, size_t n, double freq, double amp, int rate, double phase)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)(amp * sin(2 * M_PI * freq * (double)i / rate + phase));
}

double th_db(double x)
{
    return 20 * log10(x);
}

double th_rms(const float *x, size_t from, size_t to)
{
    double s = 0;
    for (size_t i = from; i < to; i++) s += (double)x[i] * x[i];
    return to > from ? sqrt(s / (double)(to - from)) : 0.0;
}

double th_goertzel(const float *x, size_t from, size_t to, double freq, int rate)
{
    double w = 2 * M_PI * freq / rate, c = 2 * cos(w), s1 = 0, s2 = 0;
    for (size_t i = from; i < to; i++) {
        double s0 = x[i] + c * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    return s1 * s1 + s2 * s2 - c * s1 * s2;
}

int th_make_cut_mp3(const char *whole, const char *cut, size_t *cut_bytes)
{
    if (th_sh("ffmpeg -nostdin -v error -y -f lavfi -i sine=frequency=440:duration=2 -ac 1 "
              "-ar 16000 -c:a libmp3lame -b:a 64k '%s'",
              whole) != 0)
        return -1;
    size_t len;
    char *data = th_slurp(whole, &len);
    if (!data) return -1;
    int rc = -1;
    for (size_t k = 3; k < 600 && k < len && rc != 0; k += 3) {
        struct em_audio a;
        if (em_audio_decode_mem((uint8_t *)data, len - k, "cut.mp3", &a, NULL) != EM_OK) continue;
        if (a.n_decode_errors > 0) {
            FILE *f = fopen(cut, "wb");
            rc = f && fwrite(data, 1, len - k, f) == len - k ? 0 : -1;
            if (f && fclose(f) != 0) rc = -1;
            if (rc == 0 && cut_bytes) *cut_bytes = k;
        }
        em_audio_free(&a);
    }
    free(data);
    return rc;
}
