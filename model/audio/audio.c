/* model/audio/audio.c - any container/codec FFmpeg handles -> 16 kHz mono float32.
 *
 *   bytes[len] --AVIOContext(read, seek over the buffer)--> demuxer (probed; name's
 *   extension is a hint) --best audio stream packets--> decoder frames [nb_samples, ch]
 *   at src_rate in any sample format --swr (mean downmix, resample, FLT)--> pcm[n] @16 kHz
 *
 * Both the decoder (NULL packet) and the resampler (NULL input) are flushed at the end, so
 * the tail is kept. The decoded length is checked after every frame against max_seconds,
 * so a long or lying file stops early rather than after filling memory.
 * All FFmpeg objects live in one struct dec, freed by dec_close() on the one exit path. */
#include "model/audio/audio.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/error.h>
#include <libavutil/log.h>
#include <libavutil/mem.h>
#include <libswresample/swresample.h>

#define AVIO_BUF_SIZE 32768
#define MAX_CHANNELS 64 /* SWR_CH_MAX */

struct memsrc {
    const uint8_t *data;
    size_t len;
    size_t pos;
};

struct dec {
    const char *name;
    struct memsrc src;
    AVIOContext *avio;
    AVFormatContext *fmt;
    AVCodecContext *cc;
    SwrContext *swr;
    AVPacket *pkt;
    AVFrame *frm;
    int stream;
    /* what swr was set up for; a frame with other parameters re-creates it */
    AVChannelLayout in_layout;
    int in_rate, in_fmt;
    float *pcm;
    size_t n, cap, max_n;
    unsigned n_corrupt;
};

/* The decoder reports some damage (an mp3 frame cut mid-way: "invalid new backstep") only
 * in its log while still returning audio. FFmpeg's log goes to this callback instead of
 * stderr; it counts the error lines the decoding thread's own codec context writes (a
 * decoder runs on its caller's thread: thread_count 1), and prints nothing. */
static _Thread_local const void *log_ctx; /* the codec context this thread decodes with */
static _Thread_local unsigned log_errors;

static void count_log(void *avcl, int level, const char *fmt, va_list vl)
{
    (void)fmt;
    (void)vl;
    if (avcl && avcl == log_ctx && level <= AV_LOG_ERROR) log_errors++;
}

static pthread_once_t quiet_once = PTHREAD_ONCE_INIT;
static void quiet_ffmpeg(void)
{
    av_log_set_level(AV_LOG_QUIET);
    av_log_set_callback(count_log);
}

struct em_audio_opts em_audio_opts_default(void)
{
    return (struct em_audio_opts){.max_bytes = EM_AUDIO_MAX_BYTES,
                                  .max_seconds = EM_AUDIO_MAX_SECONDS};
}

static const char *averr(int e, char *buf, size_t cap)
{
    if (av_strerror(e, buf, cap) < 0) snprintf(buf, cap, "error %d", e);
    return buf;
}

static int mem_read(void *opaque, uint8_t *buf, int size)
{
    struct memsrc *m = opaque;
    if (size <= 0) return 0;
    if (m->pos >= m->len) return AVERROR_EOF;
    size_t left = m->len - m->pos;
    size_t k = (size_t)size < left ? (size_t)size : left;
    memcpy(buf, m->data + m->pos, k);
    m->pos += k;
    return (int)k;
}

static int64_t mem_seek(void *opaque, int64_t off, int whence)
{
    struct memsrc *m = opaque;
    int64_t base;
    whence &= ~AVSEEK_FORCE;
    switch (whence) {
    case AVSEEK_SIZE: return (int64_t)m->len;
    case SEEK_SET: base = 0; break;
    case SEEK_CUR: base = (int64_t)m->pos; break;
    case SEEK_END: base = (int64_t)m->len; break;
    default: return AVERROR(EINVAL);
    }
    /* len <= max_bytes (size_t), so base fits; check the sum without overflow */
    if (off < 0 ? -(off + 1) >= base : off > (int64_t)m->len - base) return AVERROR(EINVAL);
    m->pos = (size_t)(base + off);
    return (int64_t)m->pos;
}

static void dec_close(struct dec *d)
{
    av_frame_free(&d->frm);
    av_packet_free(&d->pkt);
    swr_free(&d->swr);
    av_channel_layout_uninit(&d->in_layout);
    avcodec_free_context(&d->cc);
    avformat_close_input(&d->fmt);
    if (d->avio) av_freep(&d->avio->buffer); /* avio may have replaced our buffer */
    avio_context_free(&d->avio);
    free(d->pcm);
    d->pcm = NULL;
}

/* FFmpeg opens only the bytes it was given: a demuxer that would open a further URL
 * itself (an HLS or DASH playlist's segments, a concat list, a QuickTime reference) gets
 * EPERM, so a source can never make the worker fetch around storage/ and its limits. */
static int refuse_io_open(struct AVFormatContext *s, AVIOContext **pb, const char *url,
                          int flags, AVDictionary **options)
{
    (void)s;
    (void)url;
    (void)flags;
    (void)options;
    *pb = NULL;
    return AVERROR(EPERM);
}

static em_err open_input(struct dec *d, struct em_errbuf *eb)
{
    char e[128];
    uint8_t *buf = av_malloc(AVIO_BUF_SIZE);
    if (!buf) return em_errf(eb, EM_E_NOMEM, "%s: out of memory (avio buffer)", d->name);
    d->avio = avio_alloc_context(buf, AVIO_BUF_SIZE, 0, &d->src, mem_read, NULL, mem_seek);
    if (!d->avio) {
        av_free(buf);
        return em_errf(eb, EM_E_NOMEM, "%s: out of memory (avio)", d->name);
    }
    d->fmt = avformat_alloc_context();
    if (!d->fmt) return em_errf(eb, EM_E_NOMEM, "%s: out of memory (format)", d->name);
    d->fmt->pb = d->avio;
    d->fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
    d->fmt->io_open = refuse_io_open;
    /* on failure avformat_open_input frees fmt and nulls it; avio stays ours */
    int r = avformat_open_input(&d->fmt, d->name, NULL, NULL);
    if (r < 0) {
        if (r == AVERROR(ENOMEM)) return em_errf(eb, EM_E_NOMEM, "%s: out of memory", d->name);
        return em_errf(eb, EM_E_AUDIO, "%s: cannot detect container format (%s)", d->name,
                       averr(r, e, sizeof e));
    }
    /* Failure here is not fatal (as in the ffmpeg tool): the stream may still decode. */
    r = avformat_find_stream_info(d->fmt, NULL);
    if (r == AVERROR(ENOMEM)) return em_errf(eb, EM_E_NOMEM, "%s: out of memory", d->name);
    return EM_OK;
}

static em_err open_decoder(struct dec *d, struct em_errbuf *eb)
{
    char e[128];
    const AVCodec *codec = NULL;
    int s = av_find_best_stream(d->fmt, AVMEDIA_TYPE_AUDIO, -1, -1, &codec, 0);
    if (s == AVERROR_STREAM_NOT_FOUND) return em_errf(eb, EM_E_AUDIO, "%s: no audio stream", d->name);
    AVStream *st = s >= 0 ? d->fmt->streams[s] : NULL;
    if (s == AVERROR_DECODER_NOT_FOUND || (s >= 0 && !codec)) {
        /* find the audio stream again to name its codec */
        for (unsigned i = 0; i < d->fmt->nb_streams; i++)
            if (d->fmt->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_AUDIO) st = d->fmt->streams[i];
        return em_errf(eb, EM_E_AUDIO, "%s: no decoder for codec %s", d->name,
                       st ? avcodec_get_name(st->codecpar->codec_id) : "?");
    }
    if (s < 0) return em_errf(eb, EM_E_AUDIO, "%s: no usable audio stream (%s)", d->name, averr(s, e, sizeof e));
    d->stream = s;
    for (unsigned i = 0; i < d->fmt->nb_streams; i++)
        if ((int)i != s) d->fmt->streams[i]->discard = AVDISCARD_ALL;

    d->cc = avcodec_alloc_context3(codec);
    if (!d->cc) return em_errf(eb, EM_E_NOMEM, "%s: out of memory (codec)", d->name);
    int r = avcodec_parameters_to_context(d->cc, st->codecpar);
    if (r >= 0) {
        d->cc->pkt_timebase = st->time_base;
        d->cc->thread_count = 1; /* the worker parallelises across clips */
        r = avcodec_open2(d->cc, codec, NULL);
    }
    if (r < 0) {
        if (r == AVERROR(ENOMEM)) return em_errf(eb, EM_E_NOMEM, "%s: out of memory", d->name);
        return em_errf(eb, EM_E_AUDIO, "%s: cannot open %s decoder (%s)", d->name,
                       avcodec_get_name(st->codecpar->codec_id), averr(r, e, sizeof e));
    }
    d->pkt = av_packet_alloc();
    d->frm = av_frame_alloc();
    if (!d->pkt || !d->frm) return em_errf(eb, EM_E_NOMEM, "%s: out of memory (frame)", d->name);
    return EM_OK;
}

/* Makes room for k more samples (k bounded by one frame's output). */
static em_err reserve(struct dec *d, size_t k, struct em_errbuf *eb)
{
    if (k <= d->cap - d->n) return EM_OK;
    size_t want = d->cap ? d->cap : 16384;
    while (want - d->n < k) {
        if (want > SIZE_MAX / 2 / sizeof(float))
            return em_errf(eb, EM_E_NOMEM, "%s: sample buffer too large", d->name);
        want *= 2;
    }
    /* never more than the duration cap needs (n <= max_n holds between frames) */
    size_t limit = d->max_n + k + 1;
    if (want > limit && limit - d->n >= k) want = limit;
    float *p = realloc(d->pcm, want * sizeof *p);
    if (!p) return em_errf(eb, EM_E_NOMEM, "%s: out of memory (%zu samples)", d->name, want);
    d->pcm = p;
    d->cap = want;
    return EM_OK;
}

/* Runs swr on in (NULL: flush) and appends the output; checks the duration cap. */
static em_err convert(struct dec *d, const AVFrame *in, struct em_errbuf *eb)
{
    char e[128];
    int in_n = in ? in->nb_samples : 0;
    int out_max = swr_get_out_samples(d->swr, in_n);
    if (out_max < 0)
        return em_errf(eb, EM_E_AUDIO, "%s: resampler failed (%s)", d->name, averr(out_max, e, sizeof e));
    em_err rc = reserve(d, (size_t)out_max + 1, eb);
    if (rc != EM_OK) return rc;
    uint8_t *out = (uint8_t *)(d->pcm + d->n);
    int got = swr_convert(d->swr, &out, out_max + 1, in ? (const uint8_t **)in->extended_data : NULL, in_n);
    if (got < 0) return em_errf(eb, EM_E_AUDIO, "%s: resampler failed (%s)", d->name, averr(got, e, sizeof e));
    d->n += (size_t)got;
    if (d->n > d->max_n)
        return em_errf(eb, EM_E_TOO_LONG, "%s: longer than the %.0f s limit", d->name,
                       (double)d->max_n / EM_AUDIO_RATE);
    return EM_OK;
}

/* (Re)creates swr for this frame's layout, rate and format, flushing the old one. */
static em_err setup_swr(struct dec *d, const AVFrame *f, struct em_errbuf *eb)
{
    char e[128];
    if (d->swr && f->sample_rate == d->in_rate && f->format == d->in_fmt &&
        av_channel_layout_compare(&f->ch_layout, &d->in_layout) == 0)
        return EM_OK;
    int nch = f->ch_layout.nb_channels;
    if (nch < 1 || nch > MAX_CHANNELS || f->sample_rate <= 0)
        return em_errf(eb, EM_E_AUDIO, "%s: unsupported frame: %d channels at %d Hz", d->name, nch,
                       f->sample_rate);
    if (d->swr) {
        em_err rc = convert(d, NULL, eb);
        if (rc != EM_OK) return rc;
        swr_free(&d->swr);
    }
    av_channel_layout_uninit(&d->in_layout);
    int r = av_channel_layout_copy(&d->in_layout, &f->ch_layout);
    AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
    if (r >= 0)
        r = swr_alloc_set_opts2(&d->swr, &mono, AV_SAMPLE_FMT_FLT, EM_AUDIO_RATE, &d->in_layout,
                                (enum AVSampleFormat)f->format, f->sample_rate, 0, NULL);
    if (r >= 0) {
        /* mean of the channels; without this swr sums stereo at -3 dB each (+3 dB) */
        double m[MAX_CHANNELS];
        for (int i = 0; i < nch; i++) m[i] = 1.0 / nch;
        r = swr_set_matrix(d->swr, m, nch);
    }
    if (r >= 0) r = swr_init(d->swr);
    if (r < 0) {
        if (r == AVERROR(ENOMEM)) return em_errf(eb, EM_E_NOMEM, "%s: out of memory", d->name);
        return em_errf(eb, EM_E_AUDIO, "%s: cannot resample %d ch %d Hz %s (%s)", d->name, nch,
                       f->sample_rate, av_get_sample_fmt_name(f->format) ? av_get_sample_fmt_name(f->format) : "?",
                       averr(r, e, sizeof e));
    }
    d->in_rate = f->sample_rate;
    d->in_fmt = f->format;
    return EM_OK;
}

/* Pulls every frame the decoder has ready. */
static em_err drain(struct dec *d, struct em_errbuf *eb)
{
    for (;;) {
        int r = avcodec_receive_frame(d->cc, d->frm);
        if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return EM_OK;
        if (r == AVERROR(ENOMEM)) return em_errf(eb, EM_E_NOMEM, "%s: out of memory", d->name);
        if (r < 0) { /* a corrupt frame: skip it, the decoder goes on with the next packet */
            d->n_corrupt++;
            return EM_OK;
        }
        em_err rc = EM_OK;
        if (d->frm->nb_samples > 0) {
            rc = setup_swr(d, d->frm, eb);
            if (rc == EM_OK) rc = convert(d, d->frm, eb);
        }
        av_frame_unref(d->frm);
        if (rc != EM_OK) return rc;
    }
}

static em_err decode_all(struct dec *d, struct em_errbuf *eb)
{
    em_err rc;
    for (;;) {
        int r = av_read_frame(d->fmt, d->pkt);
        if (r == AVERROR(ENOMEM)) return em_errf(eb, EM_E_NOMEM, "%s: out of memory", d->name);
        if (r < 0) {
            /* EOF, or a read error in a truncated/corrupt file: end of stream either way */
            if (r != AVERROR_EOF) d->n_corrupt++;
            break;
        }
        if (d->pkt->stream_index == d->stream) {
            r = avcodec_send_packet(d->cc, d->pkt);
            if (r == AVERROR(ENOMEM)) {
                av_packet_unref(d->pkt);
                return em_errf(eb, EM_E_NOMEM, "%s: out of memory", d->name);
            }
            if (r < 0 && r != AVERROR(EAGAIN)) d->n_corrupt++;
        }
        av_packet_unref(d->pkt);
        if ((rc = drain(d, eb)) != EM_OK) return rc;
    }
    avcodec_send_packet(d->cc, NULL);
    if ((rc = drain(d, eb)) != EM_OK) return rc;
    if (d->swr && (rc = convert(d, NULL, eb)) != EM_OK) return rc;
    return EM_OK;
}

static void fill_info(struct dec *d, struct em_audio *out)
{
    const AVCodecParameters *par = d->fmt->streams[d->stream]->codecpar;
    out->src_rate = par->sample_rate > 0 ? par->sample_rate : d->in_rate;
    out->src_channels = par->ch_layout.nb_channels > 0 ? par->ch_layout.nb_channels : d->in_layout.nb_channels;
    snprintf(out->codec, sizeof out->codec, "%s", avcodec_get_name(par->codec_id));
    snprintf(out->container, sizeof out->container, "%s", d->fmt->iformat->name);
    out->n_corrupt = d->n_corrupt;
    out->n_decode_errors = d->n_corrupt + log_errors;
}

/* Makes samples finite and within [-1, 1] (float PCM may carry NaN or overs). */
static void sanitize(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        if (isnan(v)) v = 0.0f;
        x[i] = v > 1.0f ? 1.0f : v < -1.0f ? -1.0f : v;
    }
}

/* A container that declares its duration in a header (an mp3 Xing/Info frame count, an
 * mp4 moov, an Ogg end granule) but yields much less audio was cut short: the bytes past
 * the cut are lost, so the clip is refused rather than annotated as if it were whole.
 * Durations FFmpeg only estimated from the bitrate and file size say nothing and pass. */
static em_err check_truncated(const struct dec *d, struct em_errbuf *eb)
{
    const AVStream *st = d->fmt->streams[d->stream];
    if (d->fmt->duration_estimation_method != AVFMT_DURATION_FROM_STREAM) return EM_OK;
    if (st->duration == AV_NOPTS_VALUE || st->duration <= 0) return EM_OK;
    double declared = (double)st->duration * av_q2d(st->time_base);
    double got = (double)d->n / EM_AUDIO_RATE;
    if (declared > 0 && got < EM_AUDIO_TRUNCATED_RATIO * declared - 0.05)
        return em_errf(eb, EM_E_AUDIO, "%s: truncated: decoded %.2f s of the %.2f s its header declares",
                       d->name, got, declared);
    return EM_OK;
}

em_err em_audio_decode_mem_opts(const uint8_t *data, size_t len, const char *name,
                                const struct em_audio_opts *opts, struct em_audio *out,
                                struct em_errbuf *eb)
{
    struct em_audio_opts o = opts ? *opts : em_audio_opts_default();
    struct dec d = {.name = name ? name : "(audio)", .src = {data, len, 0}, .stream = -1};
    em_err rc;
    memset(out, 0, sizeof *out);
    pthread_once(&quiet_once, quiet_ffmpeg);

    if (len == 0 || !data) {
        rc = em_errf(eb, EM_E_AUDIO, "%s: empty file", d.name);
        goto done;
    }
    if (len > o.max_bytes) {
        rc = em_errf(eb, EM_E_TOO_LONG, "%s: %zu bytes, over the %zu byte limit", d.name, len, o.max_bytes);
        goto done;
    }
    if (!(o.max_seconds > 0) || o.max_seconds * EM_AUDIO_RATE >= (double)(SIZE_MAX / sizeof(float) / 2)) {
        rc = em_errf(eb, EM_E_ARG, "%s: invalid duration limit %g s", d.name, o.max_seconds);
        goto done;
    }
    d.max_n = (size_t)(o.max_seconds * EM_AUDIO_RATE);
    if ((rc = open_input(&d, eb)) != EM_OK) goto done;
    if ((rc = open_decoder(&d, eb)) != EM_OK) goto done;
    log_ctx = d.cc;
    log_errors = 0;
    rc = decode_all(&d, eb);
    log_ctx = NULL;
    if (rc != EM_OK) goto done;
    if (d.n == 0) {
        rc = em_errf(eb, EM_E_AUDIO, "%s: decoded 0 samples (%s, %u corrupt packets)", d.name,
                     avcodec_get_name(d.fmt->streams[d.stream]->codecpar->codec_id), d.n_corrupt);
        goto done;
    }
    if ((rc = check_truncated(&d, eb)) != EM_OK) goto done;
    fill_info(&d, out);
    sanitize(d.pcm, d.n);
    if (d.cap - d.n > EM_AUDIO_RATE) { /* give back the growth slack; failure keeps the block */
        float *p = realloc(d.pcm, d.n * sizeof *p);
        if (p) d.pcm = p;
    }
    out->pcm = d.pcm;
    out->n = d.n;
    out->duration_s = (double)d.n / EM_AUDIO_RATE;
    d.pcm = NULL; /* handed to out */
done:
    dec_close(&d);
    return rc;
}

em_err em_audio_decode_mem(const uint8_t *data, size_t len, const char *name, struct em_audio *out,
                           struct em_errbuf *eb)
{
    return em_audio_decode_mem_opts(data, len, name, NULL, out, eb);
}

/* Reads a whole file, at most max bytes (one more is read to tell "over the limit"). */
static em_err slurp(const char *path, size_t max, uint8_t **out, size_t *len, struct em_errbuf *eb)
{
    em_err rc = EM_OK;
    uint8_t *b = NULL;
    size_t n = 0, cap = 0;
    if (max > SIZE_MAX / 2) max = SIZE_MAX / 2;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return em_errf(eb, e == ENOENT ? EM_E_NOTFOUND : EM_E_IO, "%s: cannot open (%s)", path, strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        rc = em_errf(eb, EM_E_IO, "%s: is a directory", path);
        goto done;
    }
    for (;;) {
        if (n == cap) {
            if (cap > max) {
                rc = em_errf(eb, EM_E_TOO_LONG, "%s: over the %zu byte limit", path, max);
                goto done;
            }
            size_t want = cap ? cap * 2 : 65536;
            if (S_ISREG(st.st_mode) && cap == 0 && st.st_size > 0 && (uint64_t)st.st_size < max)
                want = (size_t)st.st_size + 1; /* one read past the end sees EOF */
            if (want > max + 1) want = max + 1;
            uint8_t *p = realloc(b, want);
            if (!p) {
                rc = em_errf(eb, EM_E_NOMEM, "%s: out of memory (%zu bytes)", path, want);
                goto done;
            }
            b = p;
            cap = want;
        }
        ssize_t r = read(fd, b + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            rc = em_errf(eb, EM_E_IO, "%s: read failed (%s)", path, strerror(errno));
            goto done;
        }
        if (r == 0) break;
        n += (size_t)r;
        if (n > max) {
            rc = em_errf(eb, EM_E_TOO_LONG, "%s: over the %zu byte limit", path, max);
            goto done;
        }
    }
    *out = b;
    *len = n;
    b = NULL;
done:
    free(b);
    close(fd);
    return rc;
}

em_err em_audio_decode_file_opts(const char *path, const struct em_audio_opts *opts,
                                 struct em_audio *out, struct em_errbuf *eb)
{
    struct em_audio_opts o = opts ? *opts : em_audio_opts_default();
    uint8_t *data = NULL;
    size_t len = 0;
    memset(out, 0, sizeof *out);
    em_err rc = slurp(path, o.max_bytes, &data, &len, eb);
    if (rc == EM_OK) rc = em_audio_decode_mem_opts(data, len, path, &o, out, eb);
    free(data);
    return rc;
}

em_err em_audio_decode_file(const char *path, struct em_audio *out, struct em_errbuf *eb)
{
    return em_audio_decode_file_opts(path, NULL, out, eb);
}

void em_audio_free(struct em_audio *a)
{
    if (!a) return;
    free(a->pcm);
    memset(a, 0, sizeof *a);
}
