/* model/tools/bench.c - `earmark bench model` (see bench.h).
 *
 * One run measures, in order:
 *   machine   memory read bandwidth (all cores, 512 MiB buffer >> LLC, AVX2 loads, best of 5)
 *             and OpenBLAS sgemm GFLOP/s at the encoder FFN shape [1500 x 1280] x [1280 x 5120]
 *             and the decoder FFN shape [800 x 4096] x [4096 x 11008] (best of 3 / 2), and the
 *             arithmetic peaks (model/kernels/cpu/peak.h): f32 FMA GFLOP/s and int8
 *             vpdpbusd GOPS on all threads;
 *   per type  random weights (em_ckpt_from_views), then
 *             encoder  em_encoder_run on a full 30 s chunk (3000 mel frames) with N layers and
 *                      with 1 layer: per layer = difference / (N - 1), the rest (conv stem,
 *                      pool, final norm) = the 1-layer time minus one layer; + em_projector_run
 *             lm_head  em_matmul [n x 4096] x lm_head^T for n = 1 and 4 (the per-token cost
 *                      outside the layers; subtracted from the decoder timings below)
 *             prefill  em_dec_forward of prefill_tokens ids (LOGITS_LAST), then a 24-token
 *                      prompt tail on top of it, and 4 such tails in one
 *                      em_dec_prefill_batch over 4 overlays (what model.c runs for 4 prompts)
 *             decode   batch 1: em_dec_forward steps of 1 token (LOGITS_LAST) after the
 *                      prefill; batch 4: em_dec_step_batch steps of 4 sequences, each with
 *                      its own cache laid over the prefill's (em_dec_kv_over), as model.c
 *                      decodes the prompts of a clip; `seconds` each, in DEC_ROUNDS
 *                      alternating rounds with the bandwidth measured before each round
 *                      (best of the rounds for all three).
 *             per layer = (time - lm_head time) / N; a 32-layer figure = 32 x per layer +
 *             lm_head time.
 *   beside a busy thread  after every type: the q8_0 and q4_0 decoders (those asked for) are
 *             kept, and in BUSY_ROUNDS rounds each runs batch-1 steps quiet and beside one
 *             extra busy-spinning thread (bench_host.h), the types' and the conditions' order
 *             flipping each round; printed with the q4_0 / q8_0 step-time ratio beside the
 *             weight-byte ratio (the byte ratio is what a bandwidth-bound decode reaches).
 *   estimate  a 30 s clip: encoder + projector + prefill + new_tokens decode steps, for 1 and
 *             for 4 prompts (shared audio prefill + the 4-tail batch less the one tail the
 *             1-prompt prefill holds, decoded as one batch of 4 as model.c does; and, for
 *             comparison, 3 more single tails and one prompt after another).
 *   floor     what one prompt on a 30 s clip cannot beat here: the 32-layer encoder and
 *             prefill arithmetic at the measured peaks (linear layers at the int8 peak for
 *             q8_0 / q4_0, the f32 FMA peak otherwise; attention at the f32 FMA peak) plus
 *             new_tokens steps' weight bytes at the bandwidth measured beside the decode.
 * Peak RSS per type: VmHWM after resetting it (/proc/self/clear_refs "5") before the type's
 * weights are made. Tensor types are what `earmark convert --type T` writes (its per-class
 * policy, model/tools/convert.h). The embedding shares lm_head's random buffer when their types
 * agree; otherwise it is calloc'd zero pages (only one row is read per token), so the RSS
 * holds one vocabulary-sized matrix, not two. */
#include "model/tools/bench.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/clock.h"
#include "model/qwen2audio/config.h"
#include "model/tools/convert.h"
#include "model/qwen2audio/decoder.h"
#include "model/audio/encoder.h"
#include "model/kernels/backend.h"
#include "model/kernels/cpu/cpufeat.h"
#include "model/kernels/cpu/membw.h"
#include "model/kernels/cpu/peak.h"
#include "model/kernels/cpu/qmatmul.h"
#include "model/gen/kvcache.h"
#include "model/loader/safetensors.h"
#include "model/loader/tensors.h"
#include "model/qwen2audio/projector.h"
#include "model/kernels/quant.h"
#include "model/tools/bench_host.h"

#define FULL_LAYERS 32
#define TAIL_TOKENS 24
#define MAX_STEPS 64
#define DEC_ROUNDS 3 /* decode measurement rounds (bench_type) */
#define BUSY_ROUNDS 3 /* rounds of the q8_0 / q4_0 decode comparison beside a busy thread */
#define MEL_FRAMES 3000
#define BW_BYTES (512u << 20)

struct em_bench_opts em_bench_opts_default(void)
{
    return (struct em_bench_opts){
        .enc_layers = 2, .dec_layers = 2, .seconds = 2.0,
        .types = 1u << EM_WT_BF16 | 1u << EM_WT_Q8_0 | 1u << EM_WT_Q4_0,
        .prefill_tokens = 800, .new_tokens = 100,
    };
}

em_err em_bench_parse_types(const char *s, unsigned *types, struct em_errbuf *eb)
{
    static const char *const names[EM_WT_COUNT] = {"f32", "f16", "bf16", "q8_0", "q4_0"};
    unsigned t = 0;
    while (s && *s) {
        size_t n = strcspn(s, ",");
        int found = -1;
        for (int i = 0; i < EM_WT_COUNT; i++)
            if (strlen(names[i]) == n && strncasecmp(s, names[i], n) == 0) found = i;
        if (found < 0)
            return em_errf(eb, EM_E_ARG, "unknown weight type '%.*s' (f32, f16, bf16, q8_0, q4_0)",
                           (int)(n > 32 ? 32 : n), s);
        t |= 1u << found;
        s += n;
        if (*s == ',') s++;
    }
    if (!t) return em_errf(eb, EM_E_ARG, "no weight type given");
    *types = t;
    return EM_OK;
}

static void progress(const struct em_bench_opts *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void progress(const struct em_bench_opts *o, const char *fmt, ...)
{
    if (!o->progress) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("bench: ", o->progress);
    vfprintf(o->progress, fmt, ap);
    fputc('\n', o->progress);
    va_end(ap);
}

/* ---- random weights --------------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static float rng_unit(uint64_t *s) /* [-1, 1) */
{
    return (float)(int64_t)(rng_next(s) >> 11) * 0x1.0p-52f - 1.0f;
}

struct wbuf {
    char name[128];
    struct em_tensor t;
    void *mem; /* NULL for the embedding, which borrows lm_head's */
};

struct store {
    struct wbuf *w;
    size_t n;
    size_t bytes; /* allocated */
};

static void store_free(struct store *st)
{
    for (size_t i = 0; i < st->n; i++) free(st->w[i].mem);
    free(st->w);
    memset(st, 0, sizeof *st);
}

/* The type `earmark convert --type type` gives tensor e of the published (bf16) checkpoint:
 * the conversion's own per-class policy (model/tools/convert.h), so the bench measures the files
 * users get. */
static int dtype_for(const struct em_qa_expect *e, int type)
{
    struct em_tensor src = {.name = e->name, .dtype = EM_DT_BF16, .ndim = e->ndim};
    memcpy(src.shape, e->shape, sizeof src.shape);
    const int t = em_convert_tensor_type(e->name, &src, type);
    return t < 0 ? type : t;
}

/* Fills numel values of dtype at dst: matrices uniform in +-1/sqrt(in), norm weights
 * 1 +- 0.1, biases +- 0.02, the positional table +- 1. */
static void fill(void *dst, int dtype, int64_t numel, const struct em_qa_expect *e, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull | 1;
    const int64_t in = e->ndim >= 2 ? numel / e->shape[0] : numel;
    float scale = 0.02f, base = 0.0f;
    if (e->ndim >= 2) scale = strstr(e->name, "embed_positions") ? 1.0f : 1.0f / sqrtf((float)in);
    else if (strstr(e->name, "norm")) scale = 0.1f, base = 1.0f;
    uint8_t *p = dst;
    if (dtype == EM_WT_Q8_0 || dtype == EM_WT_Q4_0) {
        const size_t bs = em_wtype_row_size(dtype, EM_QK);
        const uint16_t d = em_quant_f32_to_f16(scale / (dtype == EM_WT_Q8_0 ? 127.0f : 8.0f));
        for (int64_t b = 0; b < numel / EM_QK; b++, p += bs) {
            memcpy(p, &d, 2);
            for (size_t k = 2; k < bs; k += 8) {
                uint64_t r = rng_next(&s);
                memcpy(p + k, &r, bs - k < 8 ? bs - k : 8);
            }
        }
        return;
    }
    float buf[4096];
    const size_t es = em_wtype_row_size(dtype, 1);
    for (int64_t i = 0; i < numel; i += 4096) {
        const int64_t n = numel - i < 4096 ? numel - i : 4096;
        for (int64_t k = 0; k < n; k++) buf[k] = base + scale * rng_unit(&s);
        em_quantize_row(dtype, buf, p + (size_t)i * es, n);
    }
}

static const char *LM_HEAD = "language_model.lm_head.weight";
static const char *EMBED = "language_model.model.embed_tokens.weight";

/* Makes every tensor cfg implies, in type. */
static em_err store_build(struct store *st, const struct em_qa_config *cfg, int type,
                          struct em_errbuf *eb)
{
    struct em_qa_expect *ex = NULL;
    size_t nex = 0;
    em_err rc = em_qa_expected_tensors(cfg, &ex, &nex);
    if (rc != EM_OK) return rc;
    if (!(st->w = calloc(nex, sizeof *st->w))) {
        free(ex);
        return EM_E_NOMEM;
    }
    size_t lm = nex, emb = nex;
    for (size_t i = 0; i < nex && rc == EM_OK; i++) {
        struct wbuf *w = &st->w[st->n++];
        snprintf(w->name, sizeof w->name, "%s", ex[i].name);
        int64_t numel = 1;
        for (int k = 0; k < ex[i].ndim; k++) numel *= ex[i].shape[k];
        const int dt = dtype_for(&ex[i], type);
        const size_t nb = em_dtype_nbytes(dt, numel);
        w->t = (struct em_tensor){.name = w->name, .dtype = dt, .ndim = ex[i].ndim,
                                  .nbytes = nb};
        memcpy(w->t.shape, ex[i].shape, sizeof w->t.shape);
        if (strcmp(w->name, EMBED) == 0) {
            emb = i; /* below: lm_head's buffer, or zero pages never filled */
            continue;
        }
        if (strcmp(w->name, LM_HEAD) == 0) lm = i;
        if (nb == 0 || !(w->mem = malloc(nb))) {
            rc = em_errf(eb, EM_E_NOMEM, "bench: no memory for %s (%zu bytes)", w->name, nb);
            break;
        }
        fill(w->mem, dt, numel, &ex[i], i + 1);
        w->t.data = w->mem;
        st->bytes += nb;
    }
    if (rc == EM_OK && (lm == nex || emb == nex))
        rc = em_errf(eb, EM_E_MODEL, "bench: the tensor table has no lm_head or embedding");
    if (rc == EM_OK && st->w[emb].t.dtype == st->w[lm].t.dtype) {
        st->w[emb].t.data = st->w[lm].t.data; /* same shape and dtype */
    } else if (rc == EM_OK) {
        /* one row is read per token: calloc's untouched zero pages cost no RSS until read */
        if (!(st->w[emb].mem = calloc(1, st->w[emb].t.nbytes)))
            rc = em_errf(eb, EM_E_NOMEM, "bench: no memory for %s", EMBED);
        st->w[emb].t.data = st->w[emb].mem;
    }
    free(ex);
    return rc;
}

static const struct em_tensor *store_find(const struct store *st, const char *name)
{
    for (size_t i = 0; i < st->n; i++)
        if (strcmp(st->w[i].name, name) == 0) return &st->w[i].t;
    return NULL;
}

/* An in-memory checkpoint of cfg over st's tensors (cfg's depth <= st's). */
static em_err ckpt_for(const struct store *st, const struct em_qa_config *cfg,
                       struct em_tensor **views, struct em_ckpt **ck, struct em_errbuf *eb)
{
    struct em_qa_expect *ex = NULL;
    size_t nex = 0;
    em_err rc = em_qa_expected_tensors(cfg, &ex, &nex);
    if (rc != EM_OK) return rc;
    if (!(*views = malloc(nex * sizeof **views))) rc = EM_E_NOMEM;
    for (size_t i = 0; rc == EM_OK && i < nex; i++) {
        const struct em_tensor *t = store_find(st, ex[i].name);
        if (!t) rc = em_errf(eb, EM_E_MODEL, "bench: no weights made for %s", ex[i].name);
        else (*views)[i] = *t;
    }
    if (rc == EM_OK) rc = em_ckpt_from_views(cfg, *views, nex, ck, eb);
    free(ex);
    return rc;
}

static em_err config_for(int enc_layers, int dec_layers, struct em_qa_config *c,
                         struct em_errbuf *eb)
{
    char js[1200];
    snprintf(js, sizeof js,
             "{\"architectures\": [\"Qwen2AudioForConditionalGeneration\"], \"model_type\": "
             "\"qwen2_audio\", \"audio_token_index\": 151646, \"vocab_size\": 156032,"
             " \"audio_config\": {\"model_type\": \"qwen2_audio_encoder\", \"num_mel_bins\": 128,"
             " \"d_model\": 1280, \"encoder_layers\": %d, \"encoder_attention_heads\": 20,"
             " \"encoder_ffn_dim\": 5120, \"max_source_positions\": 1500},"
             " \"text_config\": {\"model_type\": \"qwen2\", \"hidden_size\": 4096,"
             " \"intermediate_size\": 11008, \"num_hidden_layers\": %d,"
             " \"num_attention_heads\": 32, \"num_key_value_heads\": 32,"
             " \"vocab_size\": 156032, \"max_position_embeddings\": 8192, \"rope_theta\": 10000,"
             " \"rms_norm_eps\": 1e-05, \"bos_token_id\": 151643, \"eos_token_id\": 151645},"
             " \"torch_dtype\": \"bfloat16\"}",
             enc_layers, dec_layers);
    return em_qa_config_parse(js, strlen(js), NULL, 0, c, eb);
}

/* ---- machine limits ---------------------------------------------------------------------- */

/* Best of reps passes over a fresh buffer with T threads; GB/s (0 if out of memory). */
static double bandwidth(int T, int reps)
{
    const size_t words = BW_BYTES / 8;
    uint64_t *buf = aligned_alloc(64, BW_BYTES);
    if (!buf) return 0;
    for (size_t i = 0; i < words; i++) buf[i] = i;
    const double best = em_membw_read(buf, words, T, reps);
    free(buf);
    return best;
}

/* Best-of GFLOP/s of cblas_sgemm y[m, n] = x[m, k] w[n, k]^T (em_matmul's layout). */
static double sgemm_gflops(int m, int k, int n, int reps)
{
    float *x = malloc((size_t)m * k * 4), *w = malloc((size_t)n * k * 4),
          *y = malloc((size_t)m * n * 4);
    double best = 0;
    if (x && w && y) {
        uint64_t s = 7;
        for (size_t i = 0; i < (size_t)m * k; i++) x[i] = rng_unit(&s);
        for (size_t i = 0; i < (size_t)n * k; i++) w[i] = rng_unit(&s) * 0.03f;
        for (int r = 0; r < reps; r++) {
            const double t0 = em_now_s();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, k, w, k, 0.0f,
                        y, n);
            const double g = 2.0 * m * k * n / (em_now_s() - t0) / 1e9;
            if (g > best) best = g;
        }
    }
    free(x);
    free(w);
    free(y);
    return best;
}

static double peak_rss_mb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    double kb = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) kb = strtod(line + 6, NULL);
    fclose(f);
    return kb / 1024.0;
}

static void reset_peak_rss(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return;
    fputs("5", f);
    fclose(f);
}

/* ---- FLOPs ------------------------------------------------------------------------------- */

static double enc_layer_flops(double T, double d, double f)
{
    return 2 * T * (4 * d * d + 2 * d * f) + 2 * 2 * T * T * d;
}

/* T tokens at positions p0 .. p0 + T - 1 (causal attention over the cache) */
static double dec_layer_flops(double T, double p0, double D, double F)
{
    const double keys = T * p0 + T * (T + 1) / 2;
    return 2 * T * (4 * D * D + 3 * D * F) + 2 * 2 * keys * D;
}

/* ---- one weight type ---------------------------------------------------------------------- */

struct tres {
    int type, ok;
    double weights_mb, rss_mb;
    double enc_N_s, enc_1_s, enc_layer_s, enc_rest_s, enc32_s, enc_gflops, proj_s;
    double lm1_s, lm4_s;
    double pre_s, pre_layer_s, pre32_s, pre_gflops, tail_s, tail32_s;
    double tails4_s, tails4_32; /* 4 tails in one em_dec_prefill_batch */
    double step1_s, step4_s, step1_32, step4_32, step1_mean, step4_mean;
    double enc_mm_s, pre_mm_s, dec1_mm_s, dec4_mm_s; /* one layer's matmuls alone */
    double bytes_N, bytes_32; /* weight bytes read by one decode step */
    double layer_bytes, lm_bytes;
    double total32; /* bytes of every tensor of the 32-layer model in this type */
    double bw_beside; /* GB/s, best of those measured before each decode round */
    double kv_bytes_N; /* K and V bytes a batch-1 step reads at the prefill's length, N layers */
    int kv_type;       /* enum em_kv_type of the decoder's caches */
    int steps1, steps4;
};

static double layer_bytes_of(const struct store *st)
{
    double b = 0;
    for (size_t i = 0; i < st->n; i++)
        if (strncmp(st->w[i].name, "language_model.model.layers.0.", 30) == 0)
            b += (double)st->w[i].t.nbytes;
    return b;
}

/* Bytes of every tensor of the full model (cfg) in type. */
static double model_bytes(const struct em_qa_config *cfg, int type)
{
    struct em_qa_expect *ex = NULL;
    size_t nex = 0;
    double b = 0;
    if (em_qa_expected_tensors(cfg, &ex, &nex) != EM_OK) return 0;
    for (size_t i = 0; i < nex; i++) {
        int64_t numel = 1;
        for (int k = 0; k < ex[i].ndim; k++) numel *= ex[i].shape[k];
        b += (double)em_dtype_nbytes(dtype_for(&ex[i], type), numel);
    }
    free(ex);
    return b;
}

struct mm_shape {
    const char *suffix; /* weight name after the layer prefix */
};
static const struct mm_shape enc_mm[6] = {
    {"self_attn.q_proj.weight"}, {"self_attn.k_proj.weight"}, {"self_attn.v_proj.weight"},
    {"self_attn.out_proj.weight"}, {"fc1.weight"}, {"fc2.weight"},
};
static const struct mm_shape dec_mm[7] = {
    {"self_attn.q_proj.weight"}, {"self_attn.k_proj.weight"}, {"self_attn.v_proj.weight"},
    {"self_attn.o_proj.weight"}, {"mlp.gate_proj.weight"}, {"mlp.up_proj.weight"},
    {"mlp.down_proj.weight"},
};

static em_err time_matmul(const struct em_tensor *w, int n, int reps, double *out);

/* Seconds of one pass of em_matmul with n rows over the listed weights of one layer (each
 * matmul the best of reps). */
static em_err layer_matmuls(const struct store *st, const char *prefix,
                            const struct mm_shape *mm, int k, int n, int reps, double *out)
{
    double sum = 0;
    for (int i = 0; i < k; i++) {
        char name[160];
        snprintf(name, sizeof name, "%s%s", prefix, mm[i].suffix);
        const struct em_tensor *w = store_find(st, name);
        if (!w) return EM_E_MODEL;
        double t;
        em_err rc = time_matmul(w, n, reps, &t);
        if (rc != EM_OK) return rc;
        sum += t;
    }
    *out = sum;
    return EM_OK;
}

static em_err time_matmul(const struct em_tensor *w, int n, int reps, double *out)
{
    const int in = (int)(em_tensor_numel(w) / w->shape[0]), o = (int)w->shape[0];
    float *x = malloc((size_t)n * in * 4), *y = malloc((size_t)n * o * 4);
    em_err rc = x && y ? EM_OK : EM_E_NOMEM;
    uint64_t s = 3;
    double best = INFINITY;
    for (size_t i = 0; rc == EM_OK && i < (size_t)n * in; i++) x[i] = rng_unit(&s);
    for (int r = 0; rc == EM_OK && r < reps; r++) {
        const double t0 = em_now_s();
        rc = em_matmul(y, x, n, in, o, w, NULL);
        const double dt = em_now_s() - t0;
        if (dt < best) best = dt;
    }
    free(x);
    free(y);
    *out = best;
    return rc;
}

/* Seconds of one decode step of T sequences: T == 1 is em_dec_forward of 1 token on kv;
 * T > 1 is em_dec_step_batch over T caches laid over kv's positions (each sequence then
 * attends to the shared prefix plus its own tokens, as the prompts of one clip do). Steps
 * repeat for about `seconds` (at least 3, at most MAX_STEPS; the first one is a warm-up and
 * not counted); *best is the fastest step (the speed when the cores are ours, like the
 * best-of bandwidth it is compared with), *mean the mean. Each step is followed by the
 * lm_head matmul alone with the same n, and *lm_best is lowered to its fastest: both bests
 * then come from the same stretch of machine load, so their difference (the layers' share)
 * is not skewed by load that changed in between. */
static em_err time_steps(const struct em_dec *d, struct em_kv *kv, int T, double seconds,
                         const struct em_tensor *lm, float *logits, uint64_t *s, double *best,
                         double *mean, double *lm_best, int *steps, struct em_errbuf *eb)
{
    int32_t ids[EM_DEC_MAX_BATCH];
    struct em_kv *seq[EM_DEC_MAX_BATCH] = {0};
    const int V = em_dec_vocab(d), audio = em_dec_audio_token(d);
    double sum = 0, mn = INFINITY;
    int n = 0;
    em_err rc = EM_OK;
    if (T < 1 || T > EM_DEC_MAX_BATCH) return EM_E_ARG;
    for (int i = 0; T > 1 && i < T && rc == EM_OK; i++)
        rc = em_dec_kv_over(d, kv, em_kv_len(kv), em_kv_len(kv) + MAX_STEPS + 2, &seq[i], eb);
    const double start = em_now_s();
    for (int k = 0; rc == EM_OK && k < MAX_STEPS + 1; k++) {
        for (int t = 0; t < T; t++) {
            ids[t] = (int32_t)(rng_next(s) % (uint64_t)V);
            if (ids[t] == audio) ids[t]--;
        }
        const double t0 = em_now_s();
        rc = T == 1 ? em_dec_forward(d, kv, ids, 1, NULL, 0, EM_DEC_LOGITS_LAST, logits, eb)
                    : em_dec_step_batch(d, seq, ids, T, logits, eb);
        if (rc != EM_OK) break;
        const double dt = em_now_s() - t0;
        if (k > 0) {
            sum += dt;
            n++;
            if (dt < mn) mn = dt;
        }
        double tl;
        if ((rc = time_matmul(lm, T, 1, &tl)) != EM_OK) break;
        if (tl < *lm_best) *lm_best = tl;
        if (n >= 3 && em_now_s() - start >= seconds) break;
    }
    for (int i = 0; i < T; i++) em_kv_free(seq[i]);
    if (rc != EM_OK) return rc;
    *mean = sum / n;
    *best = mn;
    *steps = n;
    return EM_OK;
}

/* 32 x (t - lm) / N + lm: t measured with N layers and the lm_head matmul lm. NaN when the
 * difference is not positive (the lm_head measurement was slowed by other load): the table
 * prints nan rather than a made-up figure. */
static double extrapolate(double t, double lm, int N)
{
    return t > lm ? FULL_LAYERS * (t - lm) / N + lm : NAN;
}

/* A type's decoder, kept after bench_type for the decode comparison beside a busy thread
 * (busy_compare), which alternates the types in one stretch of time. Owns everything. */
struct kept {
    int type;
    struct store st;
    struct em_tensor *views;
    struct em_ckpt *ck;
    struct em_dec *d;
    struct em_kv *kv; /* truncated back to prefix positions before each measurement */
    int prefix;
    float *logits;
    const struct em_tensor *lm; /* in st */
    uint64_t s;
};

static void kept_free(struct kept *k)
{
    em_kv_free(k->kv);
    em_dec_free(k->d);
    em_ckpt_close(k->ck);
    free(k->views);
    free(k->logits);
    store_free(&k->st);
    memset(k, 0, sizeof *k);
}

/* keep: NULL frees the type's model at the end; otherwise on success its decoder moves there
 * (the caller frees it with kept_free). */
static em_err bench_type(const struct em_bench_opts *o, int type, struct tres *r,
                         struct kept *keep, struct em_errbuf *eb)
{
    struct store st = {0};
    struct em_qa_config cN, c1;
    struct em_tensor *vN = NULL, *v1 = NULL;
    struct em_ckpt *ckN = NULL, *ck1 = NULL;
    struct em_encoder *eN = NULL, *e1 = NULL;
    struct em_dec *d = NULL;
    struct em_kv *kv = NULL;
    float *mel = NULL, *enc = NULL, *emb = NULL, *logits = NULL;
    int32_t *ids = NULL;
    uint64_t s = 0x1234567ull + (uint64_t)type;
    const int N = o->dec_layers, NE = o->enc_layers, P = o->prefill_tokens;
    memset(r, 0, sizeof *r);
    r->type = type;

    reset_peak_rss();
    progress(o, "%s: making weights", em_wtype_name(type));
    em_err rc = config_for(NE, N, &cN, eb);
    if (rc == EM_OK) rc = config_for(1, 1, &c1, eb);
    if (rc == EM_OK) rc = store_build(&st, &cN, type, eb);
    if (rc == EM_OK) rc = ckpt_for(&st, &cN, &vN, &ckN, eb);
    if (rc == EM_OK) rc = ckpt_for(&st, &c1, &v1, &ck1, eb);
    if (rc != EM_OK) goto done;
    r->weights_mb = (double)st.bytes / (1 << 20);

    /* encoder: N layers and 1 layer on a full chunk */
    progress(o, "%s: encoder", em_wtype_name(type));
    mel = malloc((size_t)128 * MEL_FRAMES * sizeof *mel);
    enc = malloc((size_t)750 * 1280 * sizeof *enc);
    emb = malloc((size_t)750 * 4096 * sizeof *emb);
    if (!mel || !enc || !emb) {
        rc = EM_E_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < (size_t)128 * MEL_FRAMES; i++) mel[i] = rng_unit(&s);
    if ((rc = em_encoder_new(ckN, &eN, eb)) || (rc = em_encoder_new(ck1, &e1, eb))) goto done;
    int ntok = 0;
    double t0;
    r->enc_N_s = r->enc_1_s = INFINITY;
    for (int rep = 0; rep < 2; rep++) { /* best of 2 each */
        t0 = em_now_s();
        if ((rc = em_encoder_run(eN, mel, MEL_FRAMES, enc, &ntok, eb))) goto done;
        r->enc_N_s = fmin(r->enc_N_s, em_now_s() - t0);
        t0 = em_now_s();
        if ((rc = em_encoder_run(e1, mel, MEL_FRAMES, enc, &ntok, eb))) goto done;
        r->enc_1_s = fmin(r->enc_1_s, em_now_s() - t0);
    }
    if ((rc = layer_matmuls(&st, "audio_tower.layers.0.", enc_mm, 6, 1500, 2, &r->enc_mm_s)))
        goto done;
    if (NE > 1 && r->enc_N_s > r->enc_1_s) {
        r->enc_layer_s = (r->enc_N_s - r->enc_1_s) / (NE - 1);
        r->enc_rest_s = r->enc_1_s - r->enc_layer_s;
        if (r->enc_rest_s < 0) r->enc_rest_s = 0;
    } else { /* one layer only (or noise): all of it counted as layers, an upper bound */
        r->enc_layer_s = r->enc_N_s / NE;
        r->enc_rest_s = 0;
    }
    r->enc32_s = r->enc_rest_s + FULL_LAYERS * r->enc_layer_s;
    r->enc_gflops = enc_layer_flops(1500, 1280, 5120) / r->enc_layer_s / 1e9;
    struct em_projector pj;
    if ((rc = em_projector_init(ckN, &pj, eb))) goto done;
    t0 = em_now_s();
    if ((rc = em_projector_run(&pj, enc, ntok, emb))) goto done;
    r->proj_s = em_now_s() - t0;
    em_encoder_free(eN);
    em_encoder_free(e1);
    eN = e1 = NULL;

    /* decoder */
    progress(o, "%s: lm_head, prefill, decode", em_wtype_name(type));
    const struct em_tensor *lm = store_find(&st, LM_HEAD);
    if ((rc = time_matmul(lm, 1, 8, &r->lm1_s)) || (rc = time_matmul(lm, 4, 8, &r->lm4_s)))
        goto done;
    if ((rc = em_dec_open(ckN, &d, eb))) goto done;
    const int V = em_dec_vocab(d), audio = em_dec_audio_token(d);
    if ((rc = em_dec_kv_new(d, P + TAIL_TOKENS + (DEC_ROUNDS + 2) * (MAX_STEPS + 1) + 8, &kv, eb)))
        goto done;
    ids = malloc((size_t)(P > TAIL_TOKENS ? P : TAIL_TOKENS) * sizeof *ids);
    logits = malloc((size_t)4 * V * sizeof *logits);
    if (!ids || !logits) {
        rc = EM_E_NOMEM;
        goto done;
    }
    for (int i = 0; i < P; i++) {
        ids[i] = (int32_t)(rng_next(&s) % (uint64_t)V);
        if (ids[i] == audio) ids[i]--;
    }
    t0 = em_now_s();
    if ((rc = em_dec_forward(d, kv, ids, P, NULL, 0, EM_DEC_LOGITS_LAST, logits, eb))) goto done;
    r->pre_s = em_now_s() - t0;
    r->pre_layer_s = (r->pre_s - r->lm1_s) / N;
    r->pre32_s = extrapolate(r->pre_s, r->lm1_s, N);
    r->pre_gflops = dec_layer_flops(P, 0, 4096, 11008) / r->pre_layer_s / 1e9;
    t0 = em_now_s();
    if ((rc = em_dec_forward(d, kv, ids, TAIL_TOKENS, NULL, 0, EM_DEC_LOGITS_LAST, logits, eb)))
        goto done;
    r->tail_s = em_now_s() - t0;
    r->tail32_s = extrapolate(r->tail_s, r->lm1_s, N);
    /* the same tail for 4 prompts at once, each over its own overlay (em_generate_batch) */
    {
        struct em_kv *ov[4] = {0};
        const int32_t *tid[4] = {ids, ids, ids, ids};
        const int tn[4] = {TAIL_TOKENS, TAIL_TOKENS, TAIL_TOKENS, TAIL_TOKENS};
        for (int i = 0; i < 4 && rc == EM_OK; i++)
            rc = em_dec_kv_over(d, kv, em_kv_len(kv), em_kv_len(kv) + TAIL_TOKENS, &ov[i], eb);
        t0 = em_now_s();
        if (rc == EM_OK) rc = em_dec_prefill_batch(d, ov, tid, tn, 4, logits, eb);
        r->tails4_s = em_now_s() - t0;
        for (int i = 0; i < 4; i++) em_kv_free(ov[i]);
        if (rc != EM_OK) goto done;
    }
    r->kv_type = (int)em_kv_type(kv);
    r->kv_bytes_N = 2.0 * N * em_kv_len(kv) * em_kv_dim(kv) * (double)em_kv_elem_bytes(kv);

    /* peak RSS now: weights, caches and the prefill's scratch (the largest) are all counted,
     * the bandwidth buffer below is not */
    r->rss_mb = peak_rss_mb();
    /* DEC_ROUNDS rounds of: bandwidth, batch-1 steps, batch-4 steps, so that both batch
     * sizes and the bandwidth are sampled in the same minutes (the host's bandwidth flips
     * between about 30 and 60 GB/s from minute to minute); best and mean over the rounds */
    r->step1_s = r->step4_s = INFINITY;
    double sum1 = 0, sum4 = 0;
    for (int round = 0; round < DEC_ROUNDS; round++) {
        progress(o, "%s: decode round %d of %d (bandwidth, batch 1, batch 4)",
                 em_wtype_name(type), round + 1, DEC_ROUNDS);
        const double bw_r = bandwidth(em_qmm_threads(), 2);
        if (bw_r > r->bw_beside) r->bw_beside = bw_r;
        double b1, b4, mean1, mean4;
        int n1, n4;
        if ((rc = time_steps(d, kv, 1, o->seconds / DEC_ROUNDS, lm, logits, &s, &b1, &mean1,
                             &r->lm1_s, &n1, eb)) ||
            (rc = time_steps(d, kv, 4, o->seconds / DEC_ROUNDS, lm, logits, &s, &b4, &mean4,
                             &r->lm4_s, &n4, eb)))
            goto done;
        r->step1_s = fmin(r->step1_s, b1);
        r->step4_s = fmin(r->step4_s, b4);
        sum1 += mean1 * n1;
        sum4 += mean4 * n4;
        r->steps1 += n1;
        r->steps4 += n4;
    }
    r->step1_mean = sum1 / r->steps1;
    r->step4_mean = sum4 / r->steps4;
    /* the layer's matmuls alone, at the same shapes (em_matmul on the layer-0 weights) */
    if ((rc = layer_matmuls(&st, "language_model.model.layers.0.", dec_mm, 7, P, 1, &r->pre_mm_s)) ||
        (rc = layer_matmuls(&st, "language_model.model.layers.0.", dec_mm, 7, 1, 5, &r->dec1_mm_s)) ||
        (rc = layer_matmuls(&st, "language_model.model.layers.0.", dec_mm, 7, 4, 5, &r->dec4_mm_s)))
        goto done;
    r->pre_layer_s = (r->pre_s - r->lm1_s) / N; /* lm1_s may have dropped during the steps */
    r->pre32_s = extrapolate(r->pre_s, r->lm1_s, N);
    r->pre_gflops = dec_layer_flops(P, 0, 4096, 11008) / r->pre_layer_s / 1e9;
    r->tail32_s = extrapolate(r->tail_s, r->lm1_s, N);
    r->tails4_32 = extrapolate(r->tails4_s, r->lm4_s, N);
    r->step1_32 = extrapolate(r->step1_s, r->lm1_s, N);
    r->step4_32 = extrapolate(r->step4_s, r->lm4_s, N);
    r->layer_bytes = layer_bytes_of(&st);
    r->lm_bytes = (double)lm->nbytes;
    r->bytes_N = N * r->layer_bytes + r->lm_bytes;
    r->bytes_32 = FULL_LAYERS * r->layer_bytes + r->lm_bytes;
    struct em_qa_config c32;
    if (config_for(FULL_LAYERS, FULL_LAYERS, &c32, NULL) == EM_OK)
        r->total32 = model_bytes(&c32, type);
    r->ok = 1;
    if (keep) { /* ownership moves; the NULLs below make the frees no-ops */
        *keep = (struct kept){.type = type, .st = st, .views = vN, .ck = ckN, .d = d, .kv = kv,
                              .prefix = P + TAIL_TOKENS, .logits = logits, .lm = lm, .s = s};
        memset(&st, 0, sizeof st);
        vN = NULL;
        ckN = NULL;
        d = NULL;
        kv = NULL;
        logits = NULL;
    }
done:
    em_kv_free(kv);
    em_dec_free(d);
    em_encoder_free(eN);
    em_encoder_free(e1);
    em_ckpt_close(ckN);
    em_ckpt_close(ck1);
    free(vN);
    free(v1);
    free(mel);
    free(enc);
    free(emb);
    free(ids);
    free(logits);
    store_free(&st);
    return rc;
}

/* ---- decode beside a busy thread ----------------------------------------------------------- */

/* Batch-1 decode of each kept type, quiet and beside one busy thread (bench_host.h). */
struct busy_res {
    double best[2], sum[2], lm[2]; /* [0] quiet, [1] beside the busy thread */
    int steps[2];
    unsigned long long spins; /* the busy thread's rounds: > 0 shows it ran */
};

/* BUSY_ROUNDS rounds; in each, every kept type is measured quiet and beside the busy thread
 * (seconds / DEC_ROUNDS each, like one decode round of bench_type), the types' order and
 * the quiet / busy order flipping from round to round, so that all four figures sample the
 * same minutes of a shared machine. The cache is cut back to the prompt before each. */
static em_err busy_compare(const struct em_bench_opts *o, struct kept *k, int nk,
                           struct busy_res *br, struct em_errbuf *eb)
{
    for (int i = 0; i < nk; i++) {
        memset(&br[i], 0, sizeof br[i]);
        br[i].best[0] = br[i].best[1] = br[i].lm[0] = br[i].lm[1] = INFINITY;
    }
    for (int round = 0; round < BUSY_ROUNDS; round++) {
        progress(o, "decode beside a busy thread: round %d of %d", round + 1, BUSY_ROUNDS);
        for (int i0 = 0; i0 < nk; i0++) {
            const int i = round % 2 ? nk - 1 - i0 : i0;
            for (int b0 = 0; b0 < 2; b0++) {
                const int b = round % 2 ? 1 - b0 : b0;
                struct em_bench_busy *busy = NULL;
                em_err rc = b ? em_bench_busy_start(&busy, eb) : EM_OK;
                double best, mean;
                int n = 0;
                em_kv_truncate(k[i].kv, k[i].prefix);
                if (rc == EM_OK)
                    rc = time_steps(k[i].d, k[i].kv, 1, o->seconds / DEC_ROUNDS, k[i].lm,
                                    k[i].logits, &k[i].s, &best, &mean, &br[i].lm[b], &n, eb);
                br[i].spins += em_bench_busy_stop(busy);
                if (rc != EM_OK) return rc;
                br[i].best[b] = fmin(br[i].best[b], best);
                br[i].sum[b] += mean * n;
                br[i].steps[b] += n;
            }
        }
    }
    return EM_OK;
}

/* ---- the table ---------------------------------------------------------------------------- */

struct e2e {
    double one, four_seq, four_batch;
};

static struct e2e estimate(const struct tres *r, int new_tokens)
{
    const double front = r->enc32_s + r->proj_s + r->pre32_s;
    struct e2e e;
    e.one = front + new_tokens * r->step1_32;
    e.four_seq = front + 3 * r->tail32_s + 4.0 * new_tokens * r->step1_32;
    /* model.c: 4 tails in one batch; 1 of them is in the 1-prompt prefill already */
    e.four_batch = front + r->tails4_32 - r->tail32_s + new_tokens * r->step4_32;
    return e;
}

struct floor {
    double front, decode, total;
};

/* What one prompt on a 30 s clip cannot beat here. front: the 32-layer encoder (one chunk)
 * and a P-token prefill, linear layers at the int8 peak for the block types (em_igemm), at
 * the f32 FMA peak otherwise, attention (f32 in every type) at the f32 FMA peak; decode:
 * new_tokens steps' weight bytes at the bandwidth measured beside the decode. */
static struct floor floor_of(const struct tres *r, int P, int new_tokens, double p_fma,
                             double p_vnni)
{
    struct floor fl = {NAN, new_tokens * r->bytes_32 / 1e9 / r->bw_beside, NAN};
    const double L = FULL_LAYERS, TE = 1500, d = 1280, f = 5120, D = 4096, F = 11008;
    const double lin = L * 2 * TE * (4 * d * d + 2 * d * f) + L * 2 * P * (4 * D * D + 3 * D * F);
    const double att = L * 2 * 2 * TE * TE * d + L * 2 * 2 * (P * (P + 1.0) / 2) * D;
    const int q = r->type == EM_WT_Q8_0 || r->type == EM_WT_Q4_0;
    const double lin_peak = q && p_vnni > 0 ? p_vnni : p_fma;
    if (lin_peak > 0 && p_fma > 0) fl.front = lin / (lin_peak * 1e9) + att / (p_fma * 1e9);
    fl.total = fl.front + fl.decode;
    return fl;
}

#define ROW(label, fmt, ...)                                                                   \
    do {                                                                                       \
        fprintf(out, "%-58s", label);                                                          \
        for (int i = 0; i < nr; i++) {                                                         \
            const struct tres *r = &res[i];                                                    \
            (void)r;                                                                           \
            fprintf(out, fmt, __VA_ARGS__);                                                    \
        }                                                                                      \
        fputc('\n', out);                                                                      \
    } while (0)

/* 32-layer step seconds of a busy_compare figure: condition c (0 quiet, 1 busy), the best
 * step (mean 0) or the mean one, with the lm_head matmul timed beside the same steps. */
static double busy32(const struct busy_res *b, int c, int mean, int N)
{
    return extrapolate(mean ? b->sum[c] / b->steps[c] : b->best[c], b->lm[c], N);
}

static void busy_table(FILE *out, const struct em_bench_opts *o, const struct tres *res,
                       const int *kres, const struct busy_res *br, int nk)
{
    static const char *const cond[2] = {"quiet", "beside the busy thread"};
    const int N = o->dec_layers;
    fprintf(out, "decode beside a busy thread: batch 1, %d rounds alternating the types, each "
            "quiet and beside one extra\nthread spinning on integer arithmetic (not pinned; "
            "the pool keeps its %d threads)\n%-58s", BUSY_ROUNDS, em_qmm_threads(), "");
    for (int i = 0; i < nk; i++) fprintf(out, "%14s", em_wtype_name(res[kres[i]].type));
    fputc('\n', out);
    for (int c = 0; c < 2; c++) {
        char label[80];
        snprintf(label, sizeof label, "  step %s, N layers (s, best / mean)", cond[c]);
        fprintf(out, "%-58s", label);
        for (int i = 0; i < nk; i++)
            fprintf(out, " %6.3f/%-6.3f", br[i].best[c], br[i].sum[c] / br[i].steps[c]);
        fputc('\n', out);
    }
    for (int c = 0; c < 2; c++) {
        char label[80];
        snprintf(label, sizeof label, "  tokens/s %s [x32], best / mean", cond[c]);
        fprintf(out, "%-58s", label);
        for (int i = 0; i < nk; i++)
            fprintf(out, " %6.2f/%-6.2f", 1 / busy32(&br[i], c, 0, N), 1 / busy32(&br[i], c, 1, N));
        fputc('\n', out);
    }
    fprintf(out, "%-58s", "  tokens/s beside the busy thread / quiet (mean steps)");
    for (int i = 0; i < nk; i++)
        fprintf(out, "%14.2f", busy32(&br[i], 0, 1, N) / busy32(&br[i], 1, 1, N));
    fputc('\n', out);
    fprintf(out, "%-58s", "  the busy thread's spin rounds (millions; > 0: it ran)");
    for (int i = 0; i < nk; i++) fprintf(out, "%14.1f", br[i].spins / 1e6);
    fputc('\n', out);
    if (nk < 2) return;
    const int i8 = res[kres[0]].type == EM_WT_Q8_0 ? 0 : 1, i4 = 1 - i8;
    double q[2][2]; /* [quiet, busy][best, mean]: q4_0 step / q8_0 step [x32] */
    for (int c = 0; c < 2; c++)
        for (int m = 0; m < 2; m++) q[c][m] = busy32(&br[i4], c, m, N) / busy32(&br[i8], c, m, N);
    fprintf(out, "q4_0 / q8_0 decode step time [x32]: quiet %.2f (best) %.2f (mean), beside the "
            "busy thread %.2f / %.2f;\n  weight bytes per step %.2f\n", q[0][0], q[0][1],
            q[1][0], q[1][1], res[kres[i4]].bytes_32 / res[kres[i8]].bytes_32);
}

em_err em_bench_model(const struct em_bench_opts *o, FILE *out, struct em_errbuf *eb)
{
    if (o->enc_layers < 1 || o->enc_layers > EM_BENCH_MAX_LAYERS || o->dec_layers < 1 ||
        o->dec_layers > EM_BENCH_MAX_LAYERS || !(o->seconds > 0) || o->seconds > 600 ||
        o->prefill_tokens < TAIL_TOKENS || o->prefill_tokens > 4096 || o->new_tokens < 1 ||
        o->new_tokens > 4096 || !o->types || o->types >= 1u << EM_WT_COUNT)
        return em_errf(eb, EM_E_ARG, "bench: options out of range");
    const int T = em_qmm_threads();
    const char *core = getenv("OPENBLAS_CORETYPE");
    double load0[1] = {0}, load1[1] = {0};
    if (getloadavg(load0, 1) != 1) load0[0] = -1;
    progress(o, "machine limits");
    const double bw = bandwidth(T, 5);
    const double g_enc = sgemm_gflops(1500, 1280, 5120, 3);
    const double g_dec = sgemm_gflops(800, 4096, 11008, 2);
    const double p_fma = em_peak_fma_gflops(T, 0.3), p_vnni = em_peak_vnni_gops(T, 0.3);

    struct tres res[EM_WT_COUNT];
    struct kept kp[2] = {0}; /* q8_0 and q4_0, for busy_compare */
    struct busy_res br[2];
    int kres[2], nr = 0, nk = 0;
    em_err rc = EM_OK;
    for (int t = 0; t < EM_WT_COUNT && rc == EM_OK; t++) {
        if (!(o->types & 1u << t)) continue;
        const int keep = t == EM_WT_Q8_0 || t == EM_WT_Q4_0;
        if (keep) kres[nk] = nr;
        rc = bench_type(o, t, &res[nr++], keep ? &kp[nk] : NULL, eb);
        if (rc == EM_OK && keep) nk++;
    }
    if (rc == EM_OK && nk > 0) rc = busy_compare(o, kp, nk, br, eb);
    for (int i = 0; i < nk; i++) kept_free(&kp[i]);
    if (rc != EM_OK) return rc;

    const int N = o->dec_layers, NE = o->enc_layers;
    if (getloadavg(load1, 1) != 1) load1[0] = -1;
    fprintf(out, "earmark bench model: Qwen2-Audio-7B shapes, random weights, %d encoder + %d "
            "decoder layers built (32-layer figures are extrapolated, marked [x32])\n", NE, N);
    char cpu[EM_BENCH_CPU_MODEL_MAX];
    em_bench_cpu_model(cpu, sizeof cpu);
    fprintf(out, "cpu: %s\n", cpu);
    fprintf(out, "machine: %d threads (kernel level %s), OpenBLAS %s, core %s, "
            "OPENBLAS_CORETYPE=%s\n", T, em_cpu_level_name(em_cpu_level()), openblas_get_config(),
            openblas_get_corename(), core ? core : "(unset)");
    fprintf(out, "load average (1 min) at start / end: %.2f / %.2f (other processes share the "
            "cores; every figure is best-of where repeated)\n", load0[0], load1[0]);
    fprintf(out, "memory read bandwidth (all %d threads, 512 MiB)     %8.1f GB/s\n", T, bw);
    fprintf(out, "sgemm [1500x1280]x[1280x5120] (encoder FFN shape)   %8.1f GFLOP/s\n", g_enc);
    fprintf(out, "sgemm [800x4096]x[4096x11008] (decoder FFN shape)   %8.1f GFLOP/s\n", g_dec);
    fprintf(out, "f32 FMA peak (all %d threads, register loop)         %8.1f GFLOP/s\n", T, p_fma);
    fprintf(out, "int8 vpdpbusd peak (all %d threads, register loop)   %8.1f GOPS%s\n\n", T,
            p_vnni, p_vnni > 0 ? "" : " (no AVX-512 VNNI at this level)");

    fprintf(out, "%-58s", "weights");
    for (int i = 0; i < nr; i++) fprintf(out, "%14s", em_wtype_name(res[i].type));
    fputc('\n', out);
    ROW("weights built (MB, embedding not counted)", "%14.0f", r->weights_mb);
    ROW("peak RSS of this type (MB, VmHWM after its prefill)", "%14.0f", r->rss_mb);
    ROW("weights of the 32-layer model (GB, every tensor)", "%14.2f", r->total32 / 1e9);
    fprintf(out, "encoder (30 s chunk, 1500 positions)\n");
    ROW("  measured: N layers / 1 layer (s)", " %6.2f/%-6.2f", r->enc_N_s, r->enc_1_s);
    ROW("  per layer (s)", "%14.3f", r->enc_layer_s);
    ROW("  per layer GFLOP/s", "%14.1f", r->enc_gflops);
    ROW("  of a layer: em_matmul alone / the rest (s)", " %6.3f/%-6.3f", r->enc_mm_s,
        r->enc_layer_s - r->enc_mm_s);
    ROW("  em_matmul alone GFLOP/s (6 projections)", "%14.1f",
        2.0 * 1500 * (4.0 * 1280 * 1280 + 2.0 * 1280 * 5120) / r->enc_mm_s / 1e9);
    ROW("  per layer GFLOP/s as % of sgemm at encoder shape", "%13.0f%%",
        100 * r->enc_gflops / g_enc);
    ROW("  s per 30 s chunk, 32 layers [x32]", "%14.2f", r->enc32_s);
    ROW("  projector 750 x 1280 -> 4096 (s)", "%14.3f", r->proj_s);
    fprintf(out, "prefill (%d tokens)\n", o->prefill_tokens);
    ROW("  measured, N layers + lm_head (s)", "%14.2f", r->pre_s);
    ROW("  per layer GFLOP/s", "%14.1f", r->pre_gflops);
    ROW("  of a layer: em_matmul alone / the rest (s)", " %6.3f/%-6.3f", r->pre_mm_s,
        r->pre_layer_s - r->pre_mm_s);
    ROW("  em_matmul alone GFLOP/s (7 projections)", "%14.1f",
        2.0 * o->prefill_tokens * (4.0 * 4096 * 4096 + 3.0 * 4096 * 11008) / r->pre_mm_s / 1e9);
    ROW("  per layer GFLOP/s as % of sgemm at decoder shape", "%13.0f%%",
        100 * r->pre_gflops / g_dec);
    ROW("  tokens/s, 32 layers [x32]", "%14.1f", o->prefill_tokens / r->pre32_s);
    ROW("  24-token prompt tail, 32 layers (s) [x32]", "%14.2f", r->tail32_s);
    ROW("  4 such tails in one batch (em_dec_prefill_batch) (s) [x32]", "%14.2f", r->tails4_32);
    fprintf(out, "decode\n");
    ROW("  lm_head matmul n=1 / n=4 (s)", " %6.3f/%-6.3f", r->lm1_s, r->lm4_s);
    ROW("  step batch 1, N layers (s, best / mean of steps)", " %6.3f/%-6.3f", r->step1_s,
        r->step1_mean);
    ROW("  step batch 4, N layers (s, best / mean of steps)", " %6.3f/%-6.3f", r->step4_s,
        r->step4_mean);
    ROW("  one layer's em_matmul alone, n=1 / n=4 (s)", " %6.3f/%-6.3f", r->dec1_mm_s,
        r->dec4_mm_s);
    ROW("  weight bytes per step, N layers (MB)", "%14.0f", r->bytes_N / 1e6);
    ROW("  KV cache: type, MB read per step at the prompt's end", "%9s %4.0f",
        em_kv_type_name(r->kv_type), r->kv_bytes_N / 1e6);
    ROW("  achieved GB/s, batch 1, N layers", "%14.1f", r->bytes_N / r->step1_s / 1e9);
    ROW("  memory read bandwidth, best of the rounds (GB/s)", "%14.1f", r->bw_beside);
    ROW("  ... achieved as % of it", "%13.0f%%",
        100 * r->bytes_N / r->step1_s / 1e9 / r->bw_beside);
    ROW("  one layer's matmuls alone n=1: GB/s, % of it", "%8.1f %4.0f%%",
        r->layer_bytes / r->dec1_mm_s / 1e9,
        100 * r->layer_bytes / r->dec1_mm_s / 1e9 / r->bw_beside);
    ROW("  tokens/s batch 1, 32 layers [x32]", "%14.2f", 1 / r->step1_32);
    ROW("  tokens/s batch 4, 32 layers [x32]", "%14.2f", 4 / r->step4_32);
    ROW("  batch 4 tokens/s / batch 1 tokens/s", "%14.2f", 4 * r->step1_32 / r->step4_32);
    ROW("  weight bytes per step, 32 layers (GB) [x32]", "%14.2f", r->bytes_32 / 1e9);
    fprintf(out, "end to end, one 30 s clip, %d new tokens per prompt [x32 estimate]\n",
            o->new_tokens);
    ROW("  1 prompt (s)", "%14.1f", estimate(r, o->new_tokens).one);
    ROW("  4 prompts, decoded one after another (s)", "%14.1f",
        estimate(r, o->new_tokens).four_seq);
    ROW("  4 prompts, decoded as one batch of 4 (model.c) (s)", "%14.1f",
        estimate(r, o->new_tokens).four_batch);
    ROW("  4 prompts batched / 1 prompt", "%14.2f",
        estimate(r, o->new_tokens).four_batch / estimate(r, o->new_tokens).one);
    fprintf(out, "floor for 1 prompt at this machine's measured peaks and bandwidth [x32]\n");
#define FLOOR floor_of(r, o->prefill_tokens, o->new_tokens, p_fma, p_vnni)
    ROW("  encoder + prefill arithmetic at the peaks (s)", "%14.1f", FLOOR.front);
    ROW("  decode weight bytes at the bandwidth beside them (s)", "%14.1f", FLOOR.decode);
    ROW("  floor, 1 prompt (s)", "%14.1f", FLOOR.total);
    ROW("  1 prompt estimate / floor", "%14.2f", estimate(r, o->new_tokens).one / FLOOR.total);
#undef FLOOR
    if (nk > 0) busy_table(out, o, res, kres, br, nk);
    return EM_OK;
}

/* ---- the random checkpoint, for other benches (bench_capacity.c) ------------------------ */

struct em_bench_ckpt {
    struct store st;
    struct em_tensor *views;
    struct em_ckpt *ck;
};

em_err em_bench_ckpt_new(int enc_layers, int dec_layers, int type, struct em_bench_ckpt **out,
                         const struct em_ckpt **ck, struct em_errbuf *eb)
{
    struct em_qa_config cfg;
    struct em_bench_ckpt *b = calloc(1, sizeof *b);
    *out = NULL;
    if (!b) return EM_E_NOMEM;
    em_err rc = config_for(enc_layers, dec_layers, &cfg, eb);
    if (rc == EM_OK) rc = store_build(&b->st, &cfg, type, eb);
    if (rc == EM_OK) rc = ckpt_for(&b->st, &cfg, &b->views, &b->ck, eb);
    if (rc != EM_OK) {
        em_bench_ckpt_free(b);
        return rc;
    }
    *ck = b->ck;
    *out = b;
    return EM_OK;
}

void em_bench_ckpt_free(struct em_bench_ckpt *b)
{
    if (!b) return;
    em_ckpt_close(b->ck);
    free(b->views);
    store_free(&b->st);
    free(b);
}
