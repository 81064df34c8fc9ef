/* model/tools/bench_capacity.c - see bench_capacity.h.
 *
 *   per type      random weights (em_bench_ckpt_new), encoder, projector, decoder, mel
 *   per round     for each capacity C: a fresh engine (unlimited KV budget), C threads
 *                 taking C x clips_per_slot clips in turn; wall time from the first clip's
 *                 start to the last one's record -> clips per hour
 *   table         clips/h per (type, C), its ratio to C = 1 of the same type, the mean
 *                 per-clip split, and the engine's mean sequences per step. */
#include "model/tools/bench_capacity.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "model/audio/audio.h"
#include "model/audio/encoder.h"
#include "model/audio/mel.h"
#include "model/gen/engine.h"
#include "model/kernels/quant.h"
#include "model/qwen2audio/decoder.h"
#include "model/qwen2audio/projector.h"
#include "model/text/prompt.h"
#include "model/tools/bench.h"

#define AUDIO_ID 151646
#define TAIL_BASE 12 /* ids of prompt i's own tail: TAIL_BASE + 4 i */

struct em_benchcap_opts em_benchcap_opts_default(void)
{
    return (struct em_benchcap_opts){
        .layers = 4, .types = 1u << EM_WT_Q8_0 | 1u << EM_WT_Q4_0, .caps = {1, 2, 4}, .n_caps = 3,
        .clips_per_slot = 2, .audio_s = 30, .prompts = 3, .new_tokens = 32, .rounds = 1,
    };
}

/* The model parts of one type, shared by the clip threads. */
struct parts {
    struct em_mel *mel;
    struct em_encoder *enc;
    struct em_projector proj;
    struct em_dec *dec;
};

/* Per-clip seconds, summed over a configuration's clips. */
struct split {
    double enc, prefill, decode, other;
};

struct cfg_run {
    const struct em_benchcap_opts *o;
    const struct parts *p;
    struct em_engine *eng;
    pthread_mutex_t mu;
    int next, n_clips;
    em_err rc;
    struct em_errbuf eb;
    struct split sum;
};

/* The prompt ids of a clip with n_audio audio rows: a shared prefix (chat start, the audio
 * between its markers) then prompt i's own tail of TAIL_BASE + 4 i ids. */
static int32_t *prompt_ids(int n_audio, int i, size_t *n, size_t *shared)
{
    static const int32_t head[] = {151644, 872, 198, 14755, 220, 16, 25, 151647};
    const size_t nh = sizeof head / sizeof *head, tail = (size_t)(TAIL_BASE + 4 * i);
    *shared = nh + (size_t)n_audio + 1;
    *n = *shared + tail;
    int32_t *ids = malloc(*n * sizeof *ids);
    if (!ids) return NULL;
    memcpy(ids, head, sizeof head);
    for (int k = 0; k < n_audio; k++) ids[nh + (size_t)k] = AUDIO_ID;
    ids[nh + (size_t)n_audio] = 151648;
    for (size_t k = 0; k < tail; k++) ids[*shared + k] = (int32_t)(1000 + 37 * (size_t)i + 13 * k);
    return ids;
}

#define WAV_RATE 44100 /* the clip as a common file arrives: 44.1 kHz stereo 16-bit WAV */
#define WAV_HDR 44

static void le16(uint8_t *p, unsigned v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }
static void le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Bytes of the WAV of a clip of seconds (make_wav's output). */
static size_t wav_bytes(double seconds) { return WAV_HDR + (size_t)(uint32_t)(seconds * WAV_RATE) * 4; }

/* wav (wav_bytes(seconds)) = seeded noise of clip as a PCM16 stereo WAV. */
static void make_wav(uint8_t *wav, double seconds, int clip)
{
    const uint32_t frames = (uint32_t)(seconds * WAV_RATE), data = frames * 4;
    memcpy(wav, "RIFF", 4), le32(wav + 4, 36 + data), memcpy(wav + 8, "WAVEfmt ", 8);
    le32(wav + 16, 16), le16(wav + 20, 1), le16(wav + 22, 2), le32(wav + 24, WAV_RATE);
    le32(wav + 28, WAV_RATE * 4), le16(wav + 32, 4), le16(wav + 34, 16);
    memcpy(wav + 36, "data", 4), le32(wav + 40, data);
    uint64_t s = 0x9E3779B97F4A7C15ull * (uint64_t)(clip + 1);
    for (uint32_t i = 0; i < 2 * frames; i++) { /* noise at about -10 dBFS */
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        const int v = ((int)(s >> 48) - 32768) / 3;
        le16(wav + WAV_HDR + 2 * (size_t)i, (unsigned)(uint16_t)(int16_t)v);
    }
}

/* One clip as the worker runs it: its file (in memory, as fetched) decoded by FFmpeg, then a
 * window as model.c runs it; adds its split to r->sum. */
static em_err run_clip(struct cfg_run *r, int clip, uint8_t *wav, float *mel, float *enc, float *emb,
                       struct em_errbuf *eb)
{
    const struct em_benchcap_opts *o = r->o;
    const struct parts *p = r->p;
    make_wav(wav, o->audio_s, clip);
    const double t0 = em_now_s();
    struct em_audio a = {0};
    int mel_len = 0, n_audio = 0;
    em_err rc = em_audio_decode_mem(wav, wav_bytes(o->audio_s), "clip.wav", &a, eb);
    if (rc == EM_OK) rc = em_mel_compute(p->mel, a.pcm, a.n < EM_MEL_SAMPLES ? a.n : EM_MEL_SAMPLES, mel, &mel_len);
    em_audio_free(&a);
    em_engine_compute_begin(r->eng); /* as model.c: one heavy phase at a time */
    if (rc == EM_OK) rc = em_encoder_run(p->enc, mel, mel_len, enc, &n_audio, eb);
    if (rc == EM_OK) rc = em_projector_run(&p->proj, enc, n_audio, emb);
    em_engine_compute_end(r->eng);
    const double t1 = em_now_s();
    int32_t *ids[EM_GEN_MAX_BATCH] = {0};
    size_t n_ids[EM_GEN_MAX_BATCH], shared = 0;
    struct em_gen_params gp[EM_GEN_MAX_BATCH];
    struct em_gen_result res[EM_GEN_MAX_BATCH];
    memset(res, 0, sizeof res);
    for (int i = 0; rc == EM_OK && i < o->prompts; i++) {
        if (!(ids[i] = prompt_ids(n_audio, i, &n_ids[i], &shared))) rc = EM_E_NOMEM;
        memset(&gp[i], 0, sizeof gp[i]);
        gp[i].sampler = em_sampler_defaults();
        gp[i].max_new_tokens = o->new_tokens; /* no stop ids: every prompt runs to the limit */
    }
    struct em_engine_times tm = {0};
    if (rc == EM_OK)
        rc = em_engine_generate(r->eng, o->prompts, (const int32_t *const *)ids, n_ids,
                                o->prompts > 1 ? shared : 0, emb, n_audio, gp, NULL, res, &tm, eb);
    const double t2 = em_now_s();
    for (int i = 0; i < o->prompts; i++) {
        free(ids[i]);
        free(res[i].ids);
    }
    if (rc != EM_OK) return rc;
    pthread_mutex_lock(&r->mu);
    r->sum.enc += t1 - t0;
    r->sum.prefill += tm.prefill_s;
    r->sum.decode += tm.decode_s;
    r->sum.other += (t2 - t1) - tm.prefill_s - tm.decode_s;
    pthread_mutex_unlock(&r->mu);
    return EM_OK;
}

static void *clip_thread(void *arg)
{
    struct cfg_run *r = arg;
    uint8_t *wav = malloc(wav_bytes(r->o->audio_s));
    float *mel = malloc((size_t)EM_MEL_BINS * EM_MEL_FRAMES * sizeof *mel);
    float *enc = malloc((size_t)1500 * (size_t)em_encoder_dim(r->p->enc) * sizeof *enc);
    float *emb = malloc((size_t)EM_PROMPT_MAX_AUDIO * (size_t)r->p->proj.out * sizeof *emb);
    for (;;) {
        pthread_mutex_lock(&r->mu);
        const int c = r->rc == EM_OK && r->next < r->n_clips ? r->next++ : -1;
        pthread_mutex_unlock(&r->mu);
        if (c < 0) break;
        struct em_errbuf eb = {{0}};
        em_err rc = wav && mel && enc && emb ? run_clip(r, c, wav, mel, enc, emb, &eb) : EM_E_NOMEM;
        if (rc != EM_OK) {
            pthread_mutex_lock(&r->mu);
            if (r->rc == EM_OK) {
                r->rc = rc;
                r->eb = eb;
            }
            pthread_mutex_unlock(&r->mu);
        }
    }
    free(wav);
    free(mel);
    free(enc);
    free(emb);
    return NULL;
}

/* What one (type, capacity) configuration measured, summed over rounds. */
struct cell {
    int clips;
    double wall;
    struct split sum;
    uint64_t steps, rows;
};

static em_err run_config(const struct em_benchcap_opts *o, const struct parts *p, int cap,
                         struct cell *c, struct em_errbuf *eb)
{
    struct cfg_run r = {.o = o, .p = p, .n_clips = cap * o->clips_per_slot, .rc = EM_OK};
    em_err rc = em_engine_new(p->dec, NULL, &r.eng, eb);
    if (rc != EM_OK) return rc;
    pthread_mutex_init(&r.mu, NULL);
    pthread_t th[64];
    int started = 0;
    const double t0 = em_now_s();
    while (started < cap && pthread_create(&th[started], NULL, clip_thread, &r) == 0) started++;
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    const double wall = em_now_s() - t0;
    const struct em_engine_stats st = em_engine_stats(r.eng);
    em_engine_free(r.eng);
    pthread_mutex_destroy(&r.mu);
    if (started < cap) return em_errf(eb, EM_E_INTERNAL, "bench: cannot start %d clip threads", cap);
    if (r.rc != EM_OK) {
        if (eb) *eb = r.eb;
        return r.rc;
    }
    c->clips += r.n_clips;
    c->wall += wall;
    c->sum.enc += r.sum.enc;
    c->sum.prefill += r.sum.prefill;
    c->sum.decode += r.sum.decode;
    c->sum.other += r.sum.other;
    c->steps += st.steps;
    c->rows += st.rows;
    return EM_OK;
}

/* Decode-step cost at capacity C: steps of prompts x C sequences, each an overlay over one
 * text prefix of n_ctx positions (the clip's shared audio prefix length), grouped as the
 * engine groups them (em_dec_max_batch per call), best of reps steps; ms[i] for caps[i]. */
#define STEP_REPS 3
static em_err step_costs(const struct em_benchcap_opts *o, const struct parts *p, int n_ctx,
                         double *ms, struct em_errbuf *eb)
{
    const int mb = em_dec_max_batch(p->dec), V = em_dec_vocab(p->dec);
    int most = 0;
    for (int i = 0; i < o->n_caps; i++)
        if (o->prompts * o->caps[i] > most) most = o->prompts * o->caps[i];
    struct em_kv *base = NULL, **ov = calloc((size_t)most, sizeof *ov);
    int32_t *ids = malloc((size_t)(n_ctx > most ? n_ctx : most) * sizeof *ids);
    float *logits = malloc((size_t)mb * (size_t)V * sizeof *logits);
    em_err rc = ov && ids && logits ? em_dec_kv_new(p->dec, n_ctx, &base, eb) : EM_E_NOMEM;
    for (int i = 0; i < n_ctx && rc == EM_OK; i++) ids[i] = 1000 + (i * 37) % 4000;
    if (rc == EM_OK)
        rc = em_dec_forward(p->dec, base, ids, n_ctx, NULL, 0, EM_DEC_LOGITS_NONE, NULL, eb);
    for (int i = 0; i < most && rc == EM_OK; i++)
        rc = em_dec_kv_over(p->dec, base, n_ctx, n_ctx + STEP_REPS + 1, &ov[i], eb);
    for (int c = 0; c < o->n_caps && rc == EM_OK; c++) {
        const int R = o->prompts * o->caps[c];
        double best = 1e30;
        for (int rep = 0; rep < STEP_REPS && rc == EM_OK; rep++) {
            for (int i = 0; i < R; i++) ids[i] = 2000 + 7 * i + rep;
            const double t0 = em_now_s();
            for (int g = 0; g < R && rc == EM_OK; g += mb)
                rc = em_dec_step_batch(p->dec, ov + g, ids + g, R - g < mb ? R - g : mb, logits, eb);
            const double t = em_now_s() - t0;
            if (t < best) best = t;
        }
        for (int i = 0; i < R; i++) em_kv_truncate(ov[i], n_ctx);
        ms[c] = best * 1e3;
    }
    for (int i = 0; ov && i < most; i++) em_kv_free(ov[i]);
    em_kv_free(base);
    free(ov);
    free(ids);
    free(logits);
    return rc;
}

/* The step costs and the capacity ratios they allow: a clip alone takes E + P + N t(prompts)
 * (encoder + prefill per clip from capacity 1's split, N new ids); at capacity C heavy phases
 * still take turns and a step of prompts x C rows serves C clips: E + P + N t(prompts x C) / C
 * per clip. */
static void print_bound(const struct em_benchcap_opts *o, int type, const struct cell *cells,
                        const double *ms, int n_ctx, FILE *out)
{
    const double ep = (cells[0].sum.enc + cells[0].sum.prefill) / cells[0].clips;
    const double alone = ep + o->new_tokens * ms[0] / 1e3;
    fprintf(out, "%-5s decode step at %d positions (best of %d):", em_wtype_name(type), n_ctx, STEP_REPS);
    for (int i = 0; i < o->n_caps; i++) {
        const int R = o->prompts * o->caps[i];
        fprintf(out, "%s %d rows %.1f ms (%.1f per row)", i ? "," : "", R, ms[i], ms[i] / R);
    }
    fprintf(out, "\n%-5s capacity ratio the step costs allow (measured):", em_wtype_name(type));
    const double base = cells[0].clips / cells[0].wall;
    for (int i = 1; i < o->n_caps; i++) {
        const double c = o->caps[i] / (double)o->caps[0];
        const double at = ep + o->new_tokens * ms[i] / 1e3 / c;
        fprintf(out, "%s capacity %d %.2fx (%.2fx)", i > 1 ? "," : "", o->caps[i], alone / at,
                cells[i].clips / cells[i].wall / base);
    }
    fprintf(out, "\n");
}

static void cpu_model(char *buf, size_t cap)
{
    snprintf(buf, cap, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0) {
            const char *v = strchr(line, ':');
            if (v) snprintf(buf, cap, "%.*s", (int)strcspn(v + 2, "\n"), v + 2);
            break;
        }
    fclose(f);
}

static void parts_free(struct parts *p)
{
    em_dec_free(p->dec);
    em_encoder_free(p->enc);
    em_mel_free(p->mel);
    memset(p, 0, sizeof *p);
}

static em_err check_opts(const struct em_benchcap_opts *o, struct em_errbuf *eb)
{
    int ok = o->layers >= 1 && o->layers <= EM_BENCH_MAX_LAYERS && o->n_caps >= 1 &&
             o->n_caps <= EM_BENCHCAP_MAX_CAPS && o->clips_per_slot >= 1 && o->clips_per_slot <= 16 &&
             o->audio_s >= 1 && o->audio_s <= 30 && o->prompts >= 1 && o->prompts <= 8 &&
             o->new_tokens >= 1 && o->new_tokens <= 4096 && o->rounds >= 1 && o->rounds <= 16 &&
             (o->types & ~(1u << EM_WT_Q8_0 | 1u << EM_WT_Q4_0 | 1u << EM_WT_BF16 | 1u << EM_WT_F16 |
                           1u << EM_WT_F32)) == 0 && o->types;
    for (int i = 0; ok && i < o->n_caps; i++) ok = o->caps[i] >= 1 && o->caps[i] <= 64;
    return ok ? EM_OK : em_errf(eb, EM_E_ARG, "bench capacity: options out of range");
}

em_err em_bench_capacity(const struct em_benchcap_opts *o, FILE *out, struct em_errbuf *eb)
{
    em_err rc = check_opts(o, eb);
    if (rc != EM_OK) return rc;
    char cpu[160];
    cpu_model(cpu, sizeof cpu);
    fprintf(out, "earmark bench capacity: Qwen2-Audio-7B widths, random weights, %d encoder + %d "
            "decoder layers; %.0f s clips, %d prompts, %d new ids each; %d x capacity clips per "
            "configuration, %d round(s), capacities alternated\n", o->layers, o->layers,
            o->audio_s, o->prompts, o->new_tokens, o->clips_per_slot, o->rounds);
    fprintf(out, "CPU: %s, %ld online CPUs\n\n", cpu, sysconf(_SC_NPROCESSORS_ONLN));
    fprintf(out, "type  capacity  clips   wall s   clips/h  vs cap 1 | per clip s: encoder  prefill"
            "   decode    other | rows/step\n");
    for (int type = 0; type < 8 && rc == EM_OK; type++) {
        if (!(o->types & 1u << type)) continue;
        struct em_bench_ckpt *bc = NULL;
        const struct em_ckpt *ck = NULL;
        struct parts p = {0};
        struct cell cells[EM_BENCHCAP_MAX_CAPS];
        memset(cells, 0, sizeof cells);
        if (o->progress) fprintf(o->progress, "bench capacity: building %s weights\n", em_wtype_name(type));
        if ((rc = em_bench_ckpt_new(o->layers, o->layers, type, &bc, &ck, eb)) != EM_OK ||
            (rc = em_mel_new(&p.mel)) != EM_OK || (rc = em_encoder_new(ck, &p.enc, eb)) != EM_OK ||
            (rc = em_projector_init(ck, &p.proj, eb)) != EM_OK || (rc = em_dec_open(ck, &p.dec, eb)) != EM_OK) {
            parts_free(&p);
            em_bench_ckpt_free(bc);
            break;
        }
        for (int round = 0; rc == EM_OK && round < o->rounds; round++)
            for (int i = 0; rc == EM_OK && i < o->n_caps; i++) {
                if (o->progress)
                    fprintf(o->progress, "bench capacity: %s capacity %d round %d\n",
                            em_wtype_name(type), o->caps[i], round + 1);
                rc = run_config(o, &p, o->caps[i], &cells[i], eb);
            }
        const double base = rc == EM_OK && cells[0].wall > 0 ? cells[0].clips / cells[0].wall : 0;
        for (int i = 0; rc == EM_OK && i < o->n_caps; i++) {
            const struct cell *c = &cells[i];
            const double per_h = c->clips / c->wall * 3600, n = c->clips;
            fprintf(out, "%-5s %8d %6d %8.1f %9.1f %8.2fx | %19.2f %8.2f %8.2f %8.2f | %9.2f\n",
                    em_wtype_name(type), o->caps[i], c->clips, c->wall, per_h,
                    base > 0 ? c->clips / c->wall / base : 0, c->sum.enc / n, c->sum.prefill / n,
                    c->sum.decode / n, c->sum.other / n, c->steps ? (double)c->rows / c->steps : 0);
        }
        if (rc == EM_OK && o->n_caps > 1)
            fprintf(out, "%-5s capacity %d / capacity %d: %.2fx clips per hour (%s)\n",
                    em_wtype_name(type), o->caps[o->n_caps - 1], o->caps[0],
                    cells[o->n_caps - 1].clips / cells[o->n_caps - 1].wall / base, cpu);
        double ms[EM_BENCHCAP_MAX_CAPS];
        const int n_ctx = 8 + (int)(o->audio_s * 25) + 1; /* the shared prefix: 25 audio rows/s */
        if (rc == EM_OK && o->n_caps > 1 && o->caps[0] == 1) {
            if (o->progress)
                fprintf(o->progress, "bench capacity: %s decode-step costs\n", em_wtype_name(type));
            if ((rc = step_costs(o, &p, n_ctx, ms, eb)) == EM_OK) print_bound(o, type, cells, ms, n_ctx, out);
        }
        fflush(out);
        parts_free(&p);
        em_bench_ckpt_free(bc);
    }
    return rc;
}

/* ---- the command ---------------------------------------------------------------------------- */

void em_bench_capacity_usage(FILE *f)
{
    fprintf(f,
            "usage: earmark bench capacity [--layers N] [--types q8_0,q4_0] [--capacities 1,2,4]\n"
            "                              [--clips N] [--audio-seconds S] [--prompts N]\n"
            "                              [--new-tokens N] [--rounds N]\n"
            "  Clips per hour of one worker holding 1, 2, 4 clips (continuous batching), at the\n"
            "  Qwen2-Audio-7B widths with random weights, capacities alternated in one run.\n"
            "  --layers N         encoder and decoder layers (default 4; 32 = the full model)\n"
            "  --types LIST       weight types (default q8_0,q4_0)\n"
            "  --capacities LIST  up to 4 capacities, the first is the baseline (default 1,2,4)\n"
            "  --clips N          clips per configuration = capacity x N (default 2)\n"
            "  --audio-seconds S  per clip, 1..30 (default 30)\n"
            "  --prompts N        per clip, 1..8 (default 3)\n"
            "  --new-tokens N     ids each prompt decodes (default 32)\n"
            "  --rounds N         alternations (default 1)\n");
}

static int int_arg(const char *s, long lo, long hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

static int caps_arg(const char *s, struct em_benchcap_opts *o)
{
    o->n_caps = 0;
    for (const char *p = s; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 64 || o->n_caps == EM_BENCHCAP_MAX_CAPS) return -1;
        o->caps[o->n_caps++] = (int)v;
        if (*end == ',') end++;
        else if (*end) return -1;
        p = end;
    }
    return o->n_caps ? 0 : -1;
}

int em_bench_capacity_cmd(int argc, char **argv)
{
    struct em_benchcap_opts o = em_benchcap_opts_default();
    o.progress = stderr;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = !v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            em_bench_capacity_usage(stdout);
            return 0;
        }
        if (bad) {
        } else if (!strcmp(a, "--layers")) {
            bad = int_arg(v, 1, EM_BENCH_MAX_LAYERS, &o.layers);
        } else if (!strcmp(a, "--types")) {
            struct em_errbuf eb = {{0}};
            bad = em_bench_parse_types(v, &o.types, &eb) != EM_OK;
        } else if (!strcmp(a, "--capacities")) {
            bad = caps_arg(v, &o);
        } else if (!strcmp(a, "--clips")) {
            bad = int_arg(v, 1, 16, &o.clips_per_slot);
        } else if (!strcmp(a, "--audio-seconds")) {
            char *end;
            o.audio_s = strtod(v, &end);
            bad = end == v || *end || !(o.audio_s >= 1 && o.audio_s <= 30);
        } else if (!strcmp(a, "--prompts")) {
            bad = int_arg(v, 1, 8, &o.prompts);
        } else if (!strcmp(a, "--new-tokens")) {
            bad = int_arg(v, 1, 4096, &o.new_tokens);
        } else if (!strcmp(a, "--rounds")) {
            bad = int_arg(v, 1, 16, &o.rounds);
        } else {
            bad = 1;
        }
        if (bad) {
            fprintf(stderr, "earmark bench capacity: bad or unknown option '%.80s'%s%.80s\n", a,
                    v ? " " : "", v ? v : "");
            em_bench_capacity_usage(stderr);
            return 2;
        }
        i++;
    }
    struct em_errbuf eb = {{0}};
    em_err rc = em_bench_capacity(&o, stdout, &eb);
    if (rc != EM_OK) {
        fprintf(stderr, "earmark bench capacity: %s\n", em_errbuf_msg(&eb, rc));
        return rc == EM_E_ARG ? 2 : 1;
    }
    return 0;
}
