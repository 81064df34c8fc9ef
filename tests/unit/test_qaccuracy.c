/* tests/unit/test_qaccuracy.c - quantization accuracy (issue 4, docs/accuracy.md) on the
 * tiny-q golden checkpoint (tests/golden/make_golden.py: every linear's input dim a multiple
 * of 32, gaussian bf16 linear weights, so q8_0/q4_0 really round them):
 *   - tiny-q -> f32 / q8_0 / q4_0 GGUFs (em_convert) in a temp dir; the q files hold every
 *     linear of both towers and lm_head quantized;
 *   - the f32 file: encoder + projector and the decoder (recorded HF audio rows spliced in)
 *     match the HF records of data-q.tar.xz (relative error <= REF_TOL, same argmax);
 *   - for every golden prompt (speech clip, 3 tasks x base/chat), teacher-forced on the
 *     recorded input ids: the fraction of positions where the quantized file's argmax
 *     equals the f32 file's, and mean / max KL(p_f32 || p_quant) of the next-token
 *     distributions (softmax in double), printed per type, per prompt and overall, both
 *     end to end (each file's own encoder + projector) and decoder only (the HF audio rows
 *     in both), with the agreement split by the f32 top-1 gap. Asserted: a nonzero KL (the
 *     rounding did change the model), mean KL under Q8_MAX_MEAN_KL / Q4_MAX_MEAN_KL, q8_0
 *     agreeing at every position where f32 leads by >= 0.25 logit, and q4_0 further from
 *     f32 than q8_0. The agreement targets (Q8_MIN_AGREE,
 *     Q4_MIN_AGREE) are printed against the measurement but NOT asserted: this random tiny
 *     model's next-token distributions are nearly flat (top-1 tie-class probability 1.8% on
 *     average, the top-1 gap under 0.1 logit at 28% of positions), so
 *     they are not met here; docs/accuracy.md has the numbers and the reasoning. */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/convert.h"
#include "model/decoder.h"
#include "model/encoder.h"
#include "model/mel.h"
#include "model/projector.h"
#include "model/quant.h"
#include "model/loader/safetensors.h"
#include "tests/golden/golden.h"

#define REF_TOL 1e-3       /* f32 file vs HF, relative to max |want| */
#define Q8_MIN_AGREE 0.99  /* issue 4 target (printed, not asserted: see docs/accuracy.md) */
#define Q4_MIN_AGREE 0.95  /* issue 4 target (printed, not asserted) */
/* Mean KL(p_f32 || p_quant) in nats per position, asserted (measured on this machine:
 * q8_0 1.2e-4 end to end, q4_0 2.9e-2): about 8x / 3.5x headroom. */
#define Q8_MAX_MEAN_KL 1e-3
#define Q4_MAX_MEAN_KL 0.1
#define Q_DISTINCT_ROWS 1024 /* make_golden.py: embed/lm_head row i == row i % 1024 */
#define HI_FROM 151600       /* logits_last_hi covers ids [151600, V) */

enum { T_F32, T_Q8, T_Q4, NT };
static const int wtypes[NT] = {EM_WT_F32, EM_WT_Q8_0, EM_WT_Q4_0};
static const char *wnames[NT] = {"f32", "q8_0", "q4_0"};
static const char *tasks[3] = {"caption", "transcript", "events"};
static const char *forms[2] = {"base", "chat"};

static char tmp[512];
static struct golden g;
static struct em_ckpt *ck[NT];
static struct em_dec *dec[NT];
static float *emb[NT]; /* speech clip through each file's encoder + projector */
static int n_emb[NT];
static float *enc_out_f32;

/* Results of the measurement tests, for the q4-vs-q8 comparison. */
#define N_MARGIN 4
static const double margins[N_MARGIN] = {0.05, 0.1, 0.25, 0.5}; /* f32 top-1 gap, logits */
#define Q8_FIRM_IDX 2 /* margins[2] = 0.25: q8_0 must agree wherever f32 leads by this much */
struct agg {
    long agree, n;
    double kl_sum, kl_max;
    long m_n[N_MARGIN], m_agree[N_MARGIN]; /* positions with f32 gap >= margins[k] */
    double p1_sum;                         /* f32 top-1 probability (per class), summed */
    double dl_sum, dl_max;                 /* |logit_quant - logit_f32|: mean (summed) / max */
    int done;
};
static struct agg e2e[NT], deconly[NT];

/* Tied rows (make_golden.py) give bit-equal logits in HF; the C matmul need not, so a
 * pick may land on another member of the tie class: compare classes. */
static int tie_class(int32_t id)
{
    return id >= 151643 && id <= 151648 ? id : id % Q_DISTINCT_ROWS;
}

static int run_audio(const struct em_ckpt *c, const float *mel, int L, float **enc, float **out,
                     int *N)
{
    struct em_encoder *e = NULL;
    struct em_projector pj;
    struct em_errbuf eb = {{0}};
    int ok = em_encoder_new(c, &e, &eb) == EM_OK && em_projector_init(c, &pj, &eb) == EM_OK;
    float *eo = NULL;
    if (ok) {
        eo = malloc(sizeof(float) * 750 * (size_t)em_encoder_dim(e));
        *out = malloc(sizeof(float) * 750 * (size_t)pj.out);
        ok = eo && *out && em_encoder_run(e, mel, L, eo, N, &eb) == EM_OK &&
             em_projector_run(&pj, eo, *N, *out) == EM_OK;
    }
    if (!ok) fprintf(stderr, "qaccuracy audio: %s\n", eb.msg);
    em_encoder_free(e);
    if (enc)
        *enc = eo;
    else
        free(eo);
    return ok ? 0 : -1;
}

static float *speech_mel(int *L)
{
    float *pcm = NULL, *m = malloc(sizeof(float) * EM_MEL_BINS * EM_MEL_FRAMES);
    size_t n = 0;
    struct em_mel *mel = NULL;
    if (!m || golden_clip("speech", tmp, &pcm, &n) != 0 || em_mel_new(&mel) != EM_OK ||
        em_mel_compute(mel, pcm, n, m, L) != EM_OK) {
        free(m);
        m = NULL;
    }
    em_mel_free(mel);
    free(pcm);
    return m;
}

static int clean(void);
static int init_files(void);

static int init(void)
{
    if (init_files() != 0) {
        clean();
        return 1;
    }
    return 0;
}

static int init_files(void)
{
    struct em_errbuf eb = {{0}};
    if (golden_unpack("data-q", tmp, sizeof tmp) != 0) return 1;
    char tar[1200], src[1200];
    snprintf(tar, sizeof tar, "%s/tests/golden/tiny-q.tar.xz", golden_root());
    if (golden_sh("tar -xJf '%s' -C '%s'", tar, tmp) != 0) return 1;
    /* golden_open reads <tmp>/data; the records of tiny-q are under <tmp>/data-q */
    snprintf(g.dir, sizeof g.dir, "%s/data-q", tmp);
    char p[1300];
    snprintf(p, sizeof p, "%s/index.json", g.dir);
    json_error_t jerr;
    if (!(g.index = json_load_file(p, 0, &jerr))) return 1;
    snprintf(src, sizeof src, "%s/tiny-q", tmp);
    int L = 0;
    float *mel = speech_mel(&L);
    if (!mel) return 1;
    for (int i = 0; i < NT; i++) {
        char out[1300];
        snprintf(out, sizeof out, "%s/tiny-q-%s.gguf", tmp, wnames[i]);
        struct em_convert_opts o = em_convert_opts_default();
        o.wtype = wtypes[i];
        if (em_convert(src, out, &o, &eb) != EM_OK || em_ckpt_open(out, &ck[i], &eb) != EM_OK ||
            em_dec_open(ck[i], &dec[i], &eb) != EM_OK ||
            run_audio(ck[i], mel, L, i == T_F32 ? &enc_out_f32 : NULL, &emb[i], &n_emb[i]) != 0) {
            fprintf(stderr, "qaccuracy init (%s): %s\n", wnames[i], eb.msg);
            free(mel);
            return 1;
        }
    }
    free(mel);
    return 0;
}

static int clean(void)
{
    for (int i = 0; i < NT; i++) {
        em_dec_free(dec[i]);
        em_ckpt_close(ck[i]);
        free(emb[i]);
    }
    free(enc_out_f32);
    if (g.index) golden_close(&g);
    golden_rmdir(tmp);
    return 0;
}

static void *rec(const char *task, const char *form, const char *what, int64_t shape[4])
{
    char key[256];
    int nd;
    if (task)
        snprintf(key, sizeof key, "tiny-q/speech/%s/%s/%s", task, form, what);
    else
        snprintf(key, sizeof key, "tiny-q/speech/%s", what);
    return golden_tensor(&g, key, shape, &nd);
}

/* Full-sequence logits [T, V] of decoder i with the given audio rows (caller frees). */
static float *forward_all(int i, const int32_t *ids, int T, const float *audio, int n_audio)
{
    const int V = em_dec_vocab(dec[i]);
    struct em_kv *kv = NULL;
    float *lg = malloc((size_t)T * (size_t)V * sizeof *lg);
    struct em_errbuf eb = {{0}};
    em_err rc = lg ? em_dec_kv_new(dec[i], T, &kv, &eb) : EM_E_NOMEM;
    if (rc == EM_OK)
        rc = em_dec_forward(dec[i], kv, ids, T, audio, n_audio, EM_DEC_LOGITS_ALL, lg, &eb);
    em_kv_free(kv);
    if (rc != EM_OK) {
        printf("\n    forward %s: %s", wnames[i], eb.msg);
        free(lg);
        return NULL;
    }
    return lg;
}

static int argmax(const float *row, int V)
{
    int best = 0;
    for (int i = 1; i < V; i++)
        if (row[i] > row[best]) best = i;
    return best;
}

/* The gap between the top logit and the best logit of another tie class. */
static double class_gap(const float *row, int V, int best)
{
    double second = -INFINITY;
    for (int i = 0; i < V; i++)
        if (tie_class(i) != tie_class(best) && row[i] > second) second = row[i];
    return (double)row[best] - second;
}

/* ---- the files are what the measurement assumes ---- */

static void quantized_files_hold_quantized_linears(void)
{
    static const char *alin[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                 "self_attn.out_proj", "fc1", "fc2"};
    static const char *tlin[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                 "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj",
                                 "mlp.down_proj"};
    for (int i = T_Q8; i < NT; i++) {
        int want = i == T_Q8 ? EM_DT_Q8_0 : EM_DT_Q4_0, bad = 0, n = 0;
        struct em_tensor t;
        struct em_errbuf eb = {{0}};
        for (int l = 0; l < 2; l++) {
            for (size_t k = 0; k < sizeof alin / sizeof *alin; k++, n++)
                if (em_ckpt_tensorf(ck[i], &t, &eb, "audio_tower.layers.%d.%s.weight", l, alin[k]) != EM_OK ||
                    t.dtype != want)
                    bad++;
            for (size_t k = 0; k < sizeof tlin / sizeof *tlin; k++, n++)
                if (em_ckpt_tensorf(ck[i], &t, &eb, "language_model.model.layers.%d.%s.weight", l,
                                    tlin[k]) != EM_OK ||
                    t.dtype != want)
                    bad++;
        }
        n++;
        if (em_ckpt_tensor(ck[i], "language_model.lm_head.weight", &t, &eb) != EM_OK || t.dtype != want)
            bad++;
        printf("\n    %s: %d of %d linears stored as %s", wnames[i], n - bad, n, em_dtype_name(want));
        CU_ASSERT_EQUAL(bad, 0);
    }
}

/* ---- the f32 file against the HF reference ---- */

static void f32_matches_reference(void)
{
    int64_t sh[4], sh2[4];
    float *want_enc = rec(NULL, NULL, "encoder_out", sh);
    float *want_emb = rec(NULL, NULL, "audio_embeds", sh2);
    CU_ASSERT_FATAL(want_enc && want_emb);
    CU_ASSERT_EQUAL_FATAL(sh[0], n_emb[T_F32]);
    CU_ASSERT(golden_cmp("tiny-q f32 encoder_out", enc_out_f32, want_enc,
                         (size_t)(sh[0] * sh[1]), 1, REF_TOL) <= REF_TOL);
    CU_ASSERT(golden_cmp("tiny-q f32 audio_embeds", emb[T_F32], want_emb,
                         (size_t)(sh2[0] * sh2[1]), 1, REF_TOL) <= REF_TOL);
    const int V = em_dec_vocab(dec[T_F32]);
    for (int t = 0; t < 3; t++)
        for (int f = 0; f < 2; f++) {
            int32_t *ids = rec(tasks[t], forms[f], "input_ids", sh);
            CU_ASSERT_FATAL(ids != NULL);
            const int T = (int)sh[0];
            float *lg = forward_all(T_F32, ids, T, want_emb, (int)sh2[0]);
            int32_t *am = rec(tasks[t], forms[f], "argmax", sh);
            float *mx = rec(tasks[t], forms[f], "max_logit", sh);
            float *mabs = rec(tasks[t], forms[f], "max_abs_logit", sh);
            float *lse = rec(tasks[t], forms[f], "logsumexp", sh);
            int64_t slo[4], shi[4];
            float *lo = rec(tasks[t], forms[f], "logits_last_lo", slo);
            float *hi = rec(tasks[t], forms[f], "logits_last_hi", shi);
            CU_ASSERT_FATAL(lg && am && mx && mabs && lse && lo && hi);
            CU_ASSERT_FATAL(slo[1] == Q_DISTINCT_ROWS && shi[1] == V - HI_FROM);
            float *gmx = malloc((size_t)T * sizeof *gmx), *glse = malloc((size_t)T * sizeof *glse);
            double scale = 0;
            int bad = 0;
            for (int p = 0; p < T; p++) {
                const float *row = lg + (size_t)p * V;
                int b = argmax(row, V);
                gmx[p] = row[b];
                double s = 0;
                for (int k = 0; k < V; k++) s += exp((double)row[k] - row[b]);
                glse[p] = (float)(row[b] + log(s));
                if (tie_class(b) != tie_class(am[p])) bad++;
                if (mabs[p] > scale) scale = mabs[p];
            }
            char what[160];
            if (bad) printf("\n    tiny-q f32 %s/%s: argmax differs at %d of %d", tasks[t], forms[f], bad, T);
            CU_ASSERT_EQUAL(bad, 0);
            snprintf(what, sizeof what, "tiny-q f32 %s/%s max logit/pos", tasks[t], forms[f]);
            CU_ASSERT(golden_cmp(what, gmx, mx, (size_t)T, 0, REF_TOL * scale) <= REF_TOL * scale);
            snprintf(what, sizeof what, "tiny-q f32 %s/%s logsumexp/pos", tasks[t], forms[f]);
            CU_ASSERT(golden_cmp(what, glse, lse, (size_t)T, 0, REF_TOL * scale) <= REF_TOL * scale);
            float *glo = malloc(3 * (size_t)slo[1] * sizeof *glo), *ghi = malloc(3 * (size_t)shi[1] * sizeof *ghi);
            for (int k = 0; k < 3; k++) {
                const float *row = lg + (size_t)(T - 3 + k) * V;
                memcpy(glo + k * slo[1], row, (size_t)slo[1] * sizeof *glo);
                memcpy(ghi + k * shi[1], row + HI_FROM, (size_t)shi[1] * sizeof *ghi);
            }
            snprintf(what, sizeof what, "tiny-q f32 %s/%s logits[-3:, lo]", tasks[t], forms[f]);
            CU_ASSERT(golden_cmp(what, glo, lo, 3 * (size_t)slo[1], 1, REF_TOL) <= REF_TOL);
            snprintf(what, sizeof what, "tiny-q f32 %s/%s logits[-3:, hi]", tasks[t], forms[f]);
            CU_ASSERT(golden_cmp(what, ghi, hi, 3 * (size_t)shi[1], 1, REF_TOL) <= REF_TOL);
            free(glo);
            free(ghi);
            free(gmx);
            free(glse);
            free(lo);
            free(hi);
            free(am);
            free(mx);
            free(mabs);
            free(lse);
            free(lg);
            free(ids);
        }
    free(want_enc);
    free(want_emb);
}

/* ---- agreement and KL ---- */

/* KL(p_a || p_b) of the softmaxes of two logit rows, in double; ea is V doubles of scratch. */
static double kl_rows(const float *a, const float *b, int V, double *ea, double *p1)
{
    double ma = a[0], mb = b[0];
    for (int i = 1; i < V; i++) {
        if (a[i] > ma) ma = a[i];
        if (b[i] > mb) mb = b[i];
    }
    double sa = 0, sb = 0, cross = 0;
    for (int i = 0; i < V; i++) {
        ea[i] = exp((double)a[i] - ma);
        sa += ea[i];
        sb += exp((double)b[i] - mb);
    }
    for (int i = 0; i < V; i++) cross += ea[i] * ((double)a[i] - (double)b[i]);
    /* sum p_a (log p_a - log p_b) = E_a[a - b] - lse_a + lse_b */
    double kl = cross / sa - (ma + log(sa)) + (mb + log(sb));
    /* top-1 probability of a's argmax class (its members tie; count them) */
    int n_top = 0;
    for (int i = 0; i < V; i++) n_top += a[i] == ma;
    *p1 = n_top / sa;
    return kl > 0 ? kl : 0; /* rounding can leave -1e-17 */
}

/* One prompt: agreement and KL of file qi vs the f32 file, with audio rows audio_ref (for
 * f32) and audio_q (for qi). */
static void measure(int qi, const int32_t *ids, int T, const float *audio_ref, const float *audio_q,
                    int n_audio, struct agg *a, const char *label)
{
    const int V = em_dec_vocab(dec[T_F32]);
    float *ref = forward_all(T_F32, ids, T, audio_ref, n_audio);
    float *q = forward_all(qi, ids, T, audio_q, n_audio);
    double *ea = malloc((size_t)V * sizeof *ea);
    CU_ASSERT_FATAL(ref && q && ea);
    long agree = 0;
    double ksum = 0, kmax = 0;
    for (int p = 0; p < T; p++) {
        const float *r = ref + (size_t)p * V, *s = q + (size_t)p * V;
        int br = argmax(r, V);
        int same = tie_class(br) == tie_class(argmax(s, V));
        agree += same;
        double gap = class_gap(r, V, br), p1 = 0;
        for (int k = 0; k < N_MARGIN; k++)
            if (gap >= margins[k]) {
                a->m_n[k]++;
                a->m_agree[k] += same;
            }
        double dsum = 0;
        for (int i = 0; i < V; i++) {
            double dl = fabs((double)s[i] - (double)r[i]);
            dsum += dl;
            if (dl > a->dl_max) a->dl_max = dl;
        }
        a->dl_sum += dsum / V;
        double kl = kl_rows(r, s, V, ea, &p1);
        a->p1_sum += p1;
        ksum += kl;
        if (kl > kmax) kmax = kl;
    }
    printf("\n    %-5s %-16s agree %3ld/%-3d = %6.2f%%  KL mean %.3e max %.3e", wnames[qi],
           label, agree, T, 100.0 * (double)agree / T, ksum / T, kmax);
    a->agree += agree;
    a->n += T;
    a->kl_sum += ksum;
    if (kmax > a->kl_max) a->kl_max = kmax;
    free(ea);
    free(ref);
    free(q);
}

static void measure_type(int qi)
{
    int64_t sh[4];
    float *hf_emb = rec(NULL, NULL, "audio_embeds", sh);
    CU_ASSERT_FATAL(hf_emb && sh[0] == n_emb[qi] && n_emb[qi] == n_emb[T_F32]);
    struct agg a = {0}, d = {0};
    for (int t = 0; t < 3; t++)
        for (int f = 0; f < 2; f++) {
            int64_t si[4];
            int32_t *ids = rec(tasks[t], forms[f], "input_ids", si);
            CU_ASSERT_FATAL(ids != NULL);
            char label[64];
            snprintf(label, sizeof label, "%s/%s", tasks[t], forms[f]);
            printf("\n    [end to end]");
            measure(qi, ids, (int)si[0], emb[T_F32], emb[qi], n_emb[qi], &a, label);
            printf("\n    [decoder only]");
            measure(qi, ids, (int)si[0], hf_emb, hf_emb, (int)sh[0], &d, label);
            free(ids);
        }
    const struct agg *both[2] = {&a, &d};
    static const char *how[2] = {"end to end  ", "decoder only"};
    for (int k = 0; k < 2; k++) {
        const struct agg *x = both[k];
        printf("\n    %s OVERALL %s: agree %ld/%ld = %.2f%%  KL mean %.3e max %.3e"
               "  (f32 top-1 prob mean %.2e)",
               wnames[qi], how[k], x->agree, x->n, 100.0 * (double)x->agree / (double)x->n,
               x->kl_sum / (double)x->n, x->kl_max, x->p1_sum / (double)x->n);
        printf("\n        |logit - f32 logit|: mean %.3e max %.3e", x->dl_sum / (double)x->n,
               x->dl_max);
        for (int m = 0; m < N_MARGIN; m++)
            printf("\n        f32 top-1 gap >= %.2f: %4ld/%ld positions, agree %.2f%%", margins[m],
                   x->m_n[m], x->n, x->m_n[m] ? 100.0 * (double)x->m_agree[m] / (double)x->m_n[m] : 0.0);
    }
    double fa = (double)a.agree / (double)a.n, target = qi == T_Q8 ? Q8_MIN_AGREE : Q4_MIN_AGREE;
    /* Not asserted: on tiny-q the targets are not met (docs/accuracy.md says why). */
    printf("\n    %s issue-4 target: agreement >= %.0f%%: %s (measured %.2f%%)", wnames[qi],
           100 * target, fa >= target ? "met" : "NOT MET on tiny-q", 100 * fa);
    a.done = d.done = 1;
    e2e[qi] = a;
    deconly[qi] = d;
    /* the rounding changed the model (else the figures would say nothing) */
    CU_ASSERT(a.kl_sum > 0 && d.kl_sum > 0);
    /* q8_0 never overturns a clear f32 decision: at every position where f32 leads by
     * Q8_FIRM_GAP or more, the argmax class is the same (measured: already from a gap of
     * 0.1; its largest logit change is 0.08, so 0.25 cannot be flipped without a 50 %
     * larger perturbation). */
    if (qi == T_Q8) {
        CU_ASSERT(a.m_n[Q8_FIRM_IDX] > 0 && a.m_agree[Q8_FIRM_IDX] == a.m_n[Q8_FIRM_IDX]);
        CU_ASSERT(d.m_n[Q8_FIRM_IDX] > 0 && d.m_agree[Q8_FIRM_IDX] == d.m_n[Q8_FIRM_IDX]);
    }
    /* regression bounds on the distributions (measured: docs/accuracy.md) */
    double bound = qi == T_Q8 ? Q8_MAX_MEAN_KL : Q4_MAX_MEAN_KL;
    CU_ASSERT(a.kl_sum / (double)a.n <= bound);
    CU_ASSERT(d.kl_sum / (double)d.n <= bound);
    free(hf_emb);
}

static void q8_0_agreement(void) { measure_type(T_Q8); }
static void q4_0_agreement(void) { measure_type(T_Q4); }

static void q4_0_further_than_q8_0(void)
{
    CU_ASSERT_FATAL(e2e[T_Q8].done && e2e[T_Q4].done);
    printf("\n    mean KL end to end: q8_0 %.3e < q4_0 %.3e", e2e[T_Q8].kl_sum / (double)e2e[T_Q8].n,
           e2e[T_Q4].kl_sum / (double)e2e[T_Q4].n);
    CU_ASSERT(e2e[T_Q8].kl_sum < e2e[T_Q4].kl_sum);
    CU_ASSERT(deconly[T_Q8].kl_sum < deconly[T_Q4].kl_sum);
}

static CU_TestInfo tests[] = {
    {"quantized_files_hold_quantized_linears", quantized_files_hold_quantized_linears},
    {"f32_matches_reference", f32_matches_reference},
    {"q8_0_agreement", q8_0_agreement},
    {"q4_0_agreement", q4_0_agreement},
    {"q4_0_further_than_q8_0", q4_0_further_than_q8_0},
    CU_TEST_INFO_NULL,
};

const CU_SuiteInfo suite_qaccuracy = {"qaccuracy", init, clean, NULL, NULL, tests};
