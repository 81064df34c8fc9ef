/* model/audio/mel.c - Whisper log-mel (spec §2.3-2.5).
 *
 *   pcm[n] -> x[480000] (zero pad / cut) -> reflect pad 200 -> frames[3000, 400] * hann
 *   -> DFT (as one dgemm with a [400, 402] cos|sin basis) -> power[3000, 201]
 *   -> mel[3000, nb] = power @ filters[201, nb] -> log10(max(., 1e-10))
 *   -> max(., G - 8), G = global max -> (y + 4) / 4 -> out[nb, 3000]   (nb = 80 or 128)
 *
 * Computed in double from the float32 window and filters the reference uses, so the result
 * is within float rounding of torch's float32 STFT path. Frames that see only padding have
 * zero power and are not transformed. */
#include "model/audio/mel.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NBINS (EM_MEL_NFFT / 2 + 1) /* 201 */
#define PAD (EM_MEL_NFFT / 2)       /* 200 */

struct em_mel {
    double window[EM_MEL_NFFT];          /* periodic Hann, rounded to float */
    double *basis;                       /* [400, 2 * 201]: cos | sin */
    int nb;                              /* mel bins: 80 (Whisper) or 128 (large-v3, Qwen2-Audio) */
    double *filters;                     /* [201, nb], float-rounded Slaney filters */
    float filters_f[NBINS * EM_MEL_MAX_BINS];
};

static double hz_to_mel(double f)
{
    /* ref: transformers audio_utils.hertz_to_mel, mel_scale="slaney" */
    if (f < 1000.0) return 3.0 * f / 200.0;
    return 15.0 + log(f / 1000.0) * 27.0 / log(6.4);
}

static double mel_to_hz(double m)
{
    if (m < 15.0) return 200.0 * m / 3.0;
    return 1000.0 * exp(log(6.4) / 27.0 * (m - 15.0));
}

static void build_filters(struct em_mel *m)
{
    /* ref: transformers audio_utils.mel_filter_bank(201, nb, 0, 8000, 16000, "slaney", "slaney"),
     * the same bank as librosa.filters.mel(sr=16000, n_fft=400, n_mels=nb) that OpenAI's
     * whisper ships in mel_filters.npz */
    const int nb = m->nb;
    double edges[EM_MEL_MAX_BINS + 2];
    double mel_max = hz_to_mel(8000.0);
    for (int i = 0; i < nb + 2; i++)
        edges[i] = mel_to_hz(mel_max * i / (double)(nb + 1));
    for (int k = 0; k < NBINS; k++) {
        double f = 8000.0 * k / (double)(NBINS - 1);
        for (int j = 0; j < nb; j++) {
            double down = (f - edges[j]) / (edges[j + 1] - edges[j]);
            double up = (edges[j + 2] - f) / (edges[j + 2] - edges[j + 1]);
            double w = fmax(0.0, fmin(down, up)) * 2.0 / (edges[j + 2] - edges[j]);
            m->filters_f[k * nb + j] = (float)w;
            m->filters[k * nb + j] = (double)(float)w;
        }
    }
}

em_err em_mel_new(struct em_mel **out) { return em_mel_new_bins(EM_MEL_BINS, out); }

em_err em_mel_new_bins(int n_mels, struct em_mel **out)
{
    *out = NULL;
    if (n_mels != 80 && n_mels != 128) return EM_E_ARG;
    struct em_mel *m = calloc(1, sizeof *m);
    if (!m) return EM_E_NOMEM;
    m->nb = n_mels;
    m->basis = malloc(sizeof(double) * EM_MEL_NFFT * 2 * NBINS);
    m->filters = malloc(sizeof(double) * NBINS * (size_t)n_mels);
    if (!m->basis || !m->filters) {
        em_mel_free(m);
        return EM_E_NOMEM;
    }
    for (int i = 0; i < EM_MEL_NFFT; i++)
        m->window[i] = (double)(float)(0.5 - 0.5 * cos(2.0 * M_PI * i / EM_MEL_NFFT));
    for (int t = 0; t < EM_MEL_NFFT; t++)
        for (int k = 0; k < NBINS; k++) {
            double a = 2.0 * M_PI * (double)((k * t) % EM_MEL_NFFT) / EM_MEL_NFFT;
            m->basis[t * 2 * NBINS + k] = cos(a);
            m->basis[t * 2 * NBINS + NBINS + k] = -sin(a);
        }
    build_filters(m);
    *out = m;
    return EM_OK;
}

void em_mel_free(struct em_mel *m)
{
    if (!m) return;
    free(m->basis);
    free(m->filters);
    free(m);
}

const float *em_mel_filters(const struct em_mel *m) { return m->filters_f; }
int em_mel_bins(const struct em_mel *m) { return m->nb; }

int em_mel_len(size_t n)
{
    size_t l = n / EM_MEL_HOP + (n % EM_MEL_HOP != 0);
    return l > EM_MEL_FRAMES ? EM_MEL_FRAMES : (int)l;
}

/* Sample i of the reflect-padded 30-s window (i in [0, 480400)). */
static double padded_at(const float *pcm, size_t n, long i)
{
    long j = i - PAD;
    if (j < 0) j = -j;
    else if (j >= EM_MEL_SAMPLES) j = 2L * (EM_MEL_SAMPLES - 1) - j;
    return (size_t)j < n ? (double)pcm[j] : 0.0;
}

em_err em_mel_compute(const struct em_mel *m, const float *pcm, size_t n, float *out,
                      int *mel_len)
{
    if (!pcm && n > 0) return EM_E_ARG;
    if (n > EM_MEL_SAMPLES) n = EM_MEL_SAMPLES;
    if (mel_len) *mel_len = em_mel_len(n);
    /* frames t >= live see only zeros: 160 t - 200 >= n */
    size_t live = (n + PAD) / EM_MEL_HOP + ((n + PAD) % EM_MEL_HOP != 0);
    if (live > EM_MEL_FRAMES) live = EM_MEL_FRAMES;
    em_err rc = EM_E_NOMEM;
    const int nb = m->nb;
    double *fr = malloc(sizeof(double) * (live ? live : 1) * EM_MEL_NFFT);
    double *spec = malloc(sizeof(double) * (live ? live : 1) * 2 * NBINS);
    double *mel = malloc(sizeof(double) * (live ? live : 1) * nb);
    if (!fr || !spec || !mel) goto done;
    for (size_t t = 0; t < live; t++)
        for (int i = 0; i < EM_MEL_NFFT; i++)
            fr[t * EM_MEL_NFFT + i] =
                (double)(float)padded_at(pcm, n, (long)(t * EM_MEL_HOP) + i) * m->window[i];
    if (live) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)live, 2 * NBINS,
                    EM_MEL_NFFT, 1.0, fr, EM_MEL_NFFT, m->basis, 2 * NBINS, 0.0, spec, 2 * NBINS);
        for (size_t t = 0; t < live; t++) {
            double *s = spec + t * 2 * NBINS;
            for (int k = 0; k < NBINS; k++) s[k] = s[k] * s[k] + s[NBINS + k] * s[NBINS + k];
        }
        /* power[live, 201] (row stride 402) @ filters[201, nb] */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)live, nb, NBINS,
                    1.0, spec, 2 * NBINS, m->filters, nb, 0.0, mel, nb);
    }
    double gmax = -10.0; /* log10(1e-10): the value of every all-padding frame */
    for (size_t i = 0; i < live * nb; i++) {
        mel[i] = log10(fmax(mel[i], 1e-10));
        if (mel[i] > gmax) gmax = mel[i];
    }
    double floor_v = gmax - 8.0;
    float pad_v = (float)((fmax(-10.0, floor_v) + 4.0) / 4.0);
    for (int j = 0; j < nb; j++) {
        float *row = out + (size_t)j * EM_MEL_FRAMES;
        for (size_t t = 0; t < live; t++)
            row[t] = (float)((fmax(mel[t * nb + j], floor_v) + 4.0) / 4.0);
        for (size_t t = live; t < EM_MEL_FRAMES; t++) row[t] = pad_v;
    }
    rc = EM_OK;
done:
    free(fr);
    free(spec);
    free(mel);
    return rc;
}
