/* tests/unit/test_convert.c - model/convert (`earmark convert`) and GGUF checkpoints:
 *   - both committed tiny checkpoints (tests/golden) -> f32 GGUF: em_ckpt_open on the file
 *     gives the same config, every tensor bit-equal (f32), the tokenizer from the metadata
 *     encodes and decodes like the directory's;
 *   - -> f16 GGUF: every value is the f16 rounding of the original, and the decoder (logits)
 *     and the encoder + projector (speech clip) on the converted file match the HF golden
 *     records within F16_LOGIT_TOL;
 *   - a synthetic bf16 checkpoint written here with some dims multiples of 32 -> q8_0 / q4_0
 *     with every class of linears asked in that type (em_convert_opts.class_type):
 *     exactly the linears whose input dim is a multiple of 32 are quantized (bit-equal to
 *     em_quantize_row of the source), the rest keep the policy of convert.h, the decoder
 *     on the q8_0 file stays within Q8_LOGIT_TOL of the bf16 source, and on either file
 *     within DEQ_LOGIT_TOL of its GGUF -> f32 GGUF re-conversion (dequantized weights);
 *   - the per-class policy (convert.c): with the default options each linear is written in
 *     the type of want_policy (this file's copy of the table docs/accuracy.md states), as
 *     the reference quantizer's bytes; em_convert_class_of / em_convert_policy_type /
 *     em_convert_tensor_type_with on names, types and overrides;
 *   - the tokenizer keys round trip a BPE with merges (tests/golden/tok/tiny, and the real
 *     Qwen2 vocabulary against the HF reference ids of tests/golden/tok/qwen2_golden.json);
 *   - errors: bad source, unwritable output (nothing left behind), bad type names. */
#include <CUnit/CUnit.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/tools/convert.h"
#include "model/qwen2audio/decoder.h"
#include "model/audio/encoder.h"
#include "model/audio/mel.h"
#include "model/qwen2audio/projector.h"
#include "model/loader/gguf.h"
#include "model/loader/safetensors.h"
#include "model/loader/tensors.h"
#include "model/kernels/quant.h"
#include "model/text/tokenizer.h"
#include "tests/golden/golden.h"
#include "tests/helpers/rand.h"

/* Tolerances, relative to max |logit| (measured on this machine in brackets):
 * f16 of the golden checkpoints vs HF [5e-7; their weights are on grids f16 holds exactly];
 * q8_0 vs the bf16 source, 2 decoder layers of U(-0.1, 0.1) weights [1.6e-2; 1.4e-2 below AVX512];
 * quantized matmul vs the f32 matmul of the dequantized weights: the kernels also round the
 * activations to int8 per 32-block, as ggml's q8_0 dot does, at every n where the int8 GEMM
 * runs (model/kernels/cpu/igemm.h: AVX512 level) [decoder 1.2e-2 q8_0, 9.3e-3 q4_0; encoder
 * 3.9e-3; below AVX512 the prefill and encoder dequantize W into f32 tiles: 5e-3 and 0]. */
#define F16_LOGIT_TOL 2e-3
#define Q8_LOGIT_TOL 3e-2
#define DEQ_LOGIT_TOL 2e-2
#define LO_ROWS 4096       /* logits_last_lo covers ids [0, 4096) */
#define HI_FROM 151600     /* logits_last_hi covers ids [151600, V) */

static char tmp[512];
static struct golden g;
static const char *names[2] = {"tiny-bf16", "tiny-f32"};
static char src[2][1200], synth[1200];

static char *path_in(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", tmp, name);
    return buf;
}

/* ---- a synthetic checkpoint: tiny-f32's tokenizer files, a config with some dims that are
 * multiples of 32, bf16 weights from a fixed generator ---- */

static const char *SYNTH_CONFIG =
    "{\"model_type\":\"qwen2_audio\",\"audio_token_index\":151646,\"torch_dtype\":\"bfloat16\","
    "\"audio_config\":{\"d_model\":48,\"encoder_layers\":1,\"encoder_attention_heads\":2,"
    "\"encoder_ffn_dim\":64,\"num_mel_bins\":128,\"max_source_positions\":1500},"
    "\"text_config\":{\"hidden_size\":64,\"intermediate_size\":96,\"num_hidden_layers\":2,"
    "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"vocab_size\":151680,"
    "\"max_position_embeddings\":8192,\"rope_theta\":10000.0,\"rms_norm_eps\":1e-5,"
    "\"tie_word_embeddings\":false}}";

static uint32_t rng = 2463534242u;
static float frand(void) { return em_test_xorshift_unit(&rng); } /* [-1, 1) */

static int write_synth(const char *dir)
{
    char p[1400];
    struct em_qa_config cfg;
    if (em_qa_config_parse(SYNTH_CONFIG, strlen(SYNTH_CONFIG), NULL, 0, &cfg, NULL) != EM_OK) return -1;
    struct em_qa_expect *ex = NULL;
    size_t n = 0;
    if (em_qa_expected_tensors(&cfg, &ex, &n) != EM_OK) return -1;
    char cmd[5000];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s'/tokenizer.json '%s'/tokenizer_config.json '%s'/",
             dir, src[1], src[1], dir);
    if (system(cmd) != 0) goto fail;
    snprintf(p, sizeof p, "%s/config.json", dir);
    FILE *f = fopen(p, "w");
    if (!f) goto fail;
    fputs(SYNTH_CONFIG, f);
    fclose(f);
    json_t *h = json_object();
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t numel = 1;
        json_t *sh = json_array();
        for (int d = 0; d < ex[i].ndim; d++) {
            numel *= (uint64_t)ex[i].shape[d];
            json_array_append_new(sh, json_integer(ex[i].shape[d]));
        }
        json_object_set_new(h, ex[i].name,
                            json_pack("{s:s,s:o,s:[I,I]}", "dtype", "BF16", "shape", sh,
                                      "data_offsets", (json_int_t)off, (json_int_t)(off + 2 * numel)));
        off += 2 * numel;
    }
    char *hdr = json_dumps(h, JSON_COMPACT);
    json_decref(h);
    size_t hl = strlen(hdr), padded = (hl + 7) / 8 * 8;
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    f = fopen(p, "wb");
    if (!f) goto fail;
    uint8_t len8[8];
    for (int b = 0; b < 8; b++) len8[b] = (uint8_t)((uint64_t)padded >> (8 * b));
    fwrite(len8, 1, 8, f);
    fwrite(hdr, 1, hl, f);
    for (size_t k = hl; k < padded; k++) fputc(' ', f);
    free(hdr);
    for (size_t i = 0; i < n; i++) {
        uint64_t numel = 1;
        for (int d = 0; d < ex[i].ndim; d++) numel *= (uint64_t)ex[i].shape[d];
        int norm = strstr(ex[i].name, "norm.weight") != NULL;
        for (uint64_t k = 0; k < numel; k++) {
            uint16_t v = em_quant_f32_to_bf16(norm ? 1.0f + 0.1f * frand() : 0.1f * frand());
            fputc(v & 0xff, f);
            fputc(v >> 8, f);
        }
    }
    fclose(f);
    free(ex);
    return 0;
fail:
    free(ex);
    return -1;
}

static int init(void)
{
    if (golden_unpack("data", tmp, sizeof tmp) != 0 || golden_open(&g, tmp) != 0) return 1;
    for (int i = 0; i < 2; i++) {
        char tar[1200];
        snprintf(tar, sizeof tar, "%s/tests/golden/%s.tar.xz", golden_root(), names[i]);
        if (golden_sh("tar -xJf '%s' -C '%s'", tar, tmp) != 0) return 1;
        path_in(src[i], sizeof src[i], names[i]);
    }
    path_in(synth, sizeof synth, "synth");
    return write_synth(synth) != 0;
}

static int clean(void)
{
    golden_close(&g);
    golden_rmdir(tmp);
    return 0;
}

/* class_type: NULL for the policy (convert.c), else a type per class (em_convert_opts). */
static em_err convert_with(const char *from, const char *to, int wtype, const int *class_type)
{
    struct em_convert_opts o = em_convert_opts_default();
    struct em_errbuf eb = {{0}};
    o.wtype = wtype;
    o.class_type = class_type;
    em_err rc = em_convert(from, to, &o, &eb);
    if (rc != EM_OK) printf("\n    convert %s: %s", from, eb.msg);
    return rc;
}

static em_err convert(const char *from, const char *to, int wtype)
{
    return convert_with(from, to, wtype, NULL);
}

static struct em_ckpt *open_ck(const char *p)
{
    struct em_ckpt *ck = NULL;
    struct em_errbuf eb = {{0}};
    if (em_ckpt_open(p, &ck, &eb) != EM_OK) printf("\n    open %s: %s", p, eb.msg);
    return ck;
}

static float *widen(const struct em_tensor *t)
{
    size_t n = (size_t)em_tensor_numel(t);
    float *x = malloc((n ? n : 1) * sizeof *x);
    em_tensor_read_f32(t, 0, n, x);
    return x;
}

/* 1 if got holds exactly the bytes em_quantize_row makes of from in wtype. */
static int quantized_as_reference(const struct em_tensor *from, const struct em_tensor *got,
                                  int wtype)
{
    float *x = widen(from);
    size_t sz = em_dtype_nbytes(wtype, em_tensor_numel(from));
    uint8_t *q = malloc(sz);
    int ok = x && q && em_quantize_row(wtype, x, q, em_tensor_numel(from)) == EM_OK &&
             sz == got->nbytes && memcmp(q, got->data, sz) == 0;
    free(q);
    free(x);
    return ok;
}

/* ---- tokenizer comparison ---- */

static const char *TEXTS[] = {
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
    "Audio 1: <|audio_bos|><|AUDIO|><|audio_eos|>\nWhat's that sound?<|im_end|>\n",
    "Detect the language and recognize the speech: <|en|>",
    "h\xc3\xa9llo w\xc3\xb6rld 12345  \n\n\ttabs \xe4\xb8\xad\xe6\x96\x87 hello the and on",
    "",
};

static void same_tokenizer(const struct em_tok *a, const struct em_tok *b)
{
    CU_ASSERT_EQUAL_FATAL(em_tok_n_vocab(a), em_tok_n_vocab(b));
    int bad = 0;
    for (int32_t id = 0; id < em_tok_n_vocab(a); id++) {
        size_t la = 0, lb = 0;
        const char *pa = em_tok_piece(a, id, &la), *pb = em_tok_piece(b, id, &lb);
        if ((pa == NULL) != (pb == NULL) || la != lb || (pa && memcmp(pa, pb, la) != 0) ||
            em_tok_is_special(a, id) != em_tok_is_special(b, id))
            bad++;
    }
    CU_ASSERT_EQUAL(bad, 0);
    for (size_t i = 0; i < sizeof TEXTS / sizeof *TEXTS; i++) {
        int32_t ia[512], ib[512];
        size_t na = 0, nb = 0;
        CU_ASSERT_EQUAL(em_tok_encode(a, TEXTS[i], strlen(TEXTS[i]), ia, 512, &na, NULL), EM_OK);
        CU_ASSERT_EQUAL(em_tok_encode(b, TEXTS[i], strlen(TEXTS[i]), ib, 512, &nb, NULL), EM_OK);
        CU_ASSERT(na == nb && memcmp(ia, ib, na * sizeof *ia) == 0);
    }
}

/* ---- f32 ---- */

static void f32_roundtrip_is_exact(void)
{
    for (int c = 0; c < 2; c++) {
        char out[1300];
        snprintf(out, sizeof out, "%s/%s-f32.gguf", tmp, names[c]);
        CU_ASSERT_EQUAL_FATAL(convert(src[c], out, EM_WT_F32), EM_OK);
        struct em_ckpt *a = open_ck(src[c]), *b = open_ck(out);
        CU_ASSERT_FATAL(a && b);
        CU_ASSERT_PTR_NULL(em_ckpt_gguf(a));
        CU_ASSERT_PTR_NOT_NULL(em_ckpt_gguf(b));
        CU_ASSERT_EQUAL(em_ckpt_dtype(b), EM_DT_F32);
        /* config: every field (em_qa_config_parse zeroes the struct, so bytes compare) */
        const struct em_qa_config *ca = em_ckpt_config(a), *cb = em_ckpt_config(b);
        CU_ASSERT(memcmp(ca, cb, sizeof *ca) == 0);
        CU_ASSERT_EQUAL(cb->text.vocab_size, ca->text.vocab_size);
        CU_ASSERT_EQUAL(cb->gen.n_eos, 2);
        CU_ASSERT_EQUAL(cb->gen.eos_token_id[1], 151643);
        CU_ASSERT_EQUAL(cb->gen.repetition_penalty, ca->gen.repetition_penalty);
        CU_ASSERT_STRING_EQUAL(cb->torch_dtype, ca->torch_dtype);
        /* every tensor */
        struct em_qa_expect *ex = NULL;
        size_t n = 0;
        CU_ASSERT_EQUAL_FATAL(em_qa_expected_tensors(ca, &ex, &n), EM_OK);
        CU_ASSERT_EQUAL(em_gguf_n_tensors(em_ckpt_gguf(b)), n);
        int bad = 0;
        for (size_t i = 0; i < n; i++) {
            struct em_tensor ta, tb;
            CU_ASSERT_EQUAL_FATAL(em_ckpt_tensor(a, ex[i].name, &ta, NULL), EM_OK);
            CU_ASSERT_EQUAL_FATAL(em_ckpt_tensor(b, ex[i].name, &tb, NULL), EM_OK);
            float *x = widen(&ta), *y = widen(&tb);
            size_t k = (size_t)em_tensor_numel(&ta);
            if (tb.dtype != EM_DT_F32 || tb.ndim != ta.ndim ||
                memcmp(ta.shape, tb.shape, sizeof ta.shape) != 0 || memcmp(x, y, k * 4) != 0) {
                if (!bad) printf("\n    %s: tensor %s differs", names[c], ex[i].name);
                bad++;
            }
            free(x);
            free(y);
        }
        CU_ASSERT_EQUAL(bad, 0);
        free(ex);
        /* layer-major file order: module, then layer, never going back */
        int last_mod = -1;
        long last_layer = -2;
        bad = 0;
        for (size_t i = 0; i < em_gguf_n_tensors(em_ckpt_gguf(b)); i++) {
            const char *nm = em_gguf_tensor_at(em_ckpt_gguf(b), i)->name, *l = strstr(nm, "layers.");
            int mod = strncmp(nm, "audio_tower.", 12) == 0 ? 0 : strncmp(nm, "multi_modal", 11) == 0 ? 1 : 2;
            long layer = l ? strtol(l + 7, NULL, 10) : -1;
            if (mod < last_mod || (mod == last_mod && layer < last_layer)) bad++;
            last_mod = mod;
            last_layer = layer;
        }
        CU_ASSERT_EQUAL(bad, 0);
        /* tokenizer */
        struct em_tok *ta = NULL, *tb = NULL, *tc = NULL;
        struct em_errbuf eb = {{0}};
        CU_ASSERT_EQUAL_FATAL(em_tok_load(src[c], &ta, &eb), EM_OK);
        CU_ASSERT_EQUAL_FATAL(em_gguf_read_tokenizer(em_ckpt_gguf(b), out, &tb, &eb), EM_OK);
        CU_ASSERT_EQUAL_FATAL(em_tok_load_gguf(out, &tc, &eb), EM_OK);
        same_tokenizer(ta, tb);
        same_tokenizer(ta, tc);
        /* the Instruct chat template travels */
        struct em_gguf_str tmpl;
        CU_ASSERT_EQUAL(em_gguf_get_str(em_ckpt_gguf(b), "tokenizer.chat_template", &tmpl, NULL), EM_OK);
        CU_ASSERT(tmpl.len > 100);
        em_tok_free(ta);
        em_tok_free(tb);
        em_tok_free(tc);
        em_ckpt_close(a);
        em_ckpt_close(b);
    }
}

/* ---- f16 ---- */

static void f16_values_are_rounded_once(void)
{
    char out[1300];
    snprintf(out, sizeof out, "%s/tiny-f32-f16.gguf", tmp);
    CU_ASSERT_EQUAL_FATAL(convert(src[1], out, EM_WT_F16), EM_OK);
    struct em_ckpt *a = open_ck(src[1]), *b = open_ck(out);
    CU_ASSERT_FATAL(a && b);
    struct em_qa_expect *ex = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(em_qa_expected_tensors(em_ckpt_config(a), &ex, &n), EM_OK);
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        struct em_tensor ta, tb;
        em_ckpt_tensor(a, ex[i].name, &ta, NULL);
        em_ckpt_tensor(b, ex[i].name, &tb, NULL);
        int want = ta.ndim == 1 ? EM_DT_F32 : EM_DT_F16;
        float *x = widen(&ta), *y = widen(&tb);
        for (int64_t k = 0; k < em_tensor_numel(&ta); k++) {
            float r = want == EM_DT_F32 ? x[k] : em_quant_f16_to_f32(em_quant_f32_to_f16(x[k]));
            bad += memcmp(&r, &y[k], 4) != 0;
        }
        bad += tb.dtype != want;
        free(x);
        free(y);
    }
    CU_ASSERT_EQUAL(bad, 0);
    free(ex);
    em_ckpt_close(a);
    em_ckpt_close(b);
}

/* Decoder on the f16 conversion of checkpoint c vs the HF golden logits of one prompt. */
static void f16_logits_case(int c, const char *task, const char *form)
{
    char out[1300], key[256], what[160];
    snprintf(out, sizeof out, "%s/%s-f16.gguf", tmp, names[c]);
    struct stat sb;
    if (stat(out, &sb) != 0) CU_ASSERT_EQUAL_FATAL(convert(src[c], out, EM_WT_F16), EM_OK);
    struct em_ckpt *ck = open_ck(out);
    struct em_dec *d = NULL;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_FATAL(ck != NULL);
    CU_ASSERT_EQUAL_FATAL(em_dec_open(ck, &d, &eb), EM_OK);
    int64_t shape[4], shi[4];
    int nd;
    snprintf(key, sizeof key, "%s/speech/%s/%s/input_ids", names[c], task, form);
    int32_t *ids = golden_tensor(&g, key, shape, &nd);
    int T = (int)shape[0];
    snprintf(key, sizeof key, "%s/speech/audio_embeds", names[c]);
    float *audio = golden_tensor(&g, key, shape, &nd);
    int n_audio = (int)shape[0];
    snprintf(key, sizeof key, "%s/speech/%s/%s/logits_last_lo", names[c], task, form);
    float *lo = golden_tensor(&g, key, shape, &nd);
    snprintf(key, sizeof key, "%s/speech/%s/%s/logits_last_hi", names[c], task, form);
    float *hi = golden_tensor(&g, key, shi, &nd);
    CU_ASSERT_FATAL(ids && audio && lo && hi);
    const int V = em_dec_vocab(d);
    struct em_kv *kv = NULL;
    CU_ASSERT_EQUAL_FATAL(em_dec_kv_new(d, T, &kv, NULL), EM_OK);
    float *lg = malloc((size_t)T * V * sizeof *lg);
    em_err rc = em_dec_forward(d, kv, ids, T, audio, n_audio, EM_DEC_LOGITS_ALL, lg, &eb);
    if (rc != EM_OK) printf("\n    forward: %s", eb.msg);
    CU_ASSERT_EQUAL_FATAL(rc, EM_OK);
    float *glo = malloc(3 * LO_ROWS * sizeof *glo), *ghi = malloc(3 * (size_t)shi[1] * sizeof *ghi);
    for (int k = 0; k < 3; k++) {
        const float *row = lg + (size_t)(T - 3 + k) * V;
        memcpy(glo + k * LO_ROWS, row, LO_ROWS * sizeof *glo);
        memcpy(ghi + k * shi[1], row + HI_FROM, (size_t)shi[1] * sizeof *ghi);
    }
    snprintf(what, sizeof what, "%s f16 %s/%s logits[-3:, lo]", names[c], task, form);
    CU_ASSERT(golden_cmp(what, glo, lo, 3 * LO_ROWS, 1, F16_LOGIT_TOL) <= F16_LOGIT_TOL);
    snprintf(what, sizeof what, "%s f16 %s/%s logits[-3:, hi]", names[c], task, form);
    CU_ASSERT(golden_cmp(what, ghi, hi, 3 * (size_t)shi[1], 1, F16_LOGIT_TOL) <= F16_LOGIT_TOL);
    free(glo);
    free(ghi);
    free(lg);
    free(ids);
    free(audio);
    free(lo);
    free(hi);
    em_kv_free(kv);
    em_dec_free(d);
    em_ckpt_close(ck);
}

static void f16_decoder_matches_reference(void)
{
    for (int c = 0; c < 2; c++) {
        f16_logits_case(c, "caption", "chat");
        f16_logits_case(c, "transcript", "base");
    }
}

/* mel of the speech clip -> encoder -> projector of ck into *enc_out / *emb (caller frees). */
static int run_audio(const struct em_ckpt *ck, const float *mel, int L, float **enc_out,
                     float **emb, int *N)
{
    struct em_encoder *enc = NULL;
    struct em_projector pj;
    struct em_errbuf eb = {{0}};
    int ok = em_encoder_new(ck, &enc, &eb) == EM_OK && em_projector_init(ck, &pj, &eb) == EM_OK;
    if (ok) {
        *enc_out = malloc(sizeof(float) * 750 * (size_t)em_encoder_dim(enc));
        *emb = malloc(sizeof(float) * 750 * (size_t)pj.out);
        ok = em_encoder_run(enc, mel, L, *enc_out, N, &eb) == EM_OK &&
             em_projector_run(&pj, *enc_out, *N, *emb) == EM_OK;
    }
    if (!ok) printf("\n    audio: %s", eb.msg);
    em_encoder_free(enc);
    return ok ? 0 : -1;
}

static float *speech_mel(int *L) { return golden_clip_mel("speech", tmp, L); }

static void f16_encoder_matches_reference(void)
{
    int L = 0;
    float *mel = speech_mel(&L);
    CU_ASSERT_FATAL(mel != NULL);
    for (int c = 0; c < 2; c++) {
        char out[1300], key[256];
        snprintf(out, sizeof out, "%s/%s-f16.gguf", tmp, names[c]);
        struct stat sb;
        if (stat(out, &sb) != 0) CU_ASSERT_EQUAL_FATAL(convert(src[c], out, EM_WT_F16), EM_OK);
        struct em_ckpt *ck = open_ck(out);
        CU_ASSERT_FATAL(ck != NULL);
        float *enc = NULL, *emb = NULL;
        int N = 0;
        CU_ASSERT_EQUAL_FATAL(run_audio(ck, mel, L, &enc, &emb, &N), 0);
        int64_t sh[4];
        int nd;
        const char *what[2] = {"encoder_out", "audio_embeds"};
        for (int k = 0; k < 2; k++) {
            snprintf(key, sizeof key, "%s/speech/%s", names[c], what[k]);
            float *want = golden_tensor(&g, key, sh, &nd);
            CU_ASSERT_FATAL(want && sh[0] == N);
            char label[300];
            snprintf(label, sizeof label, "%s f16 %s", names[c], what[k]);
            CU_ASSERT(golden_cmp(label, k ? emb : enc, want, (size_t)(sh[0] * sh[1]), 1,
                                 F16_LOGIT_TOL) <= F16_LOGIT_TOL);
            free(want);
        }
        free(enc);
        free(emb);
        em_ckpt_close(ck);
    }
    free(mel);
}

/* ---- q8_0 / q4_0 on the synthetic checkpoint ---- */

static int expect_quantized(const char *name)
{
    static const char *q[] = {"audio_tower.layers.0.fc2.weight", "language_model.lm_head.weight"};
    static const char *t[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                              "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
    for (size_t i = 0; i < 2; i++)
        if (strcmp(name, q[i]) == 0) return 1;
    for (int l = 0; l < 2; l++)
        for (size_t i = 0; i < 7; i++) {
            char n[128];
            snprintf(n, sizeof n, "language_model.model.layers.%d.%s.weight", l, t[i]);
            if (strcmp(name, n) == 0) return 1;
        }
    return 0;
}

/* Every linear in the requested type (class_type overrides the policy for all classes). */
static void quantized_case(int wtype)
{
    char out[1300];
    int uniform[EM_CC_COUNT];
    for (int k = 0; k < EM_CC_COUNT; k++) uniform[k] = wtype;
    snprintf(out, sizeof out, "%s/synth-%s.gguf", tmp, em_wtype_name(wtype));
    CU_ASSERT_EQUAL_FATAL(convert_with(synth, out, wtype, uniform), EM_OK);
    struct em_ckpt *a = open_ck(synth), *b = open_ck(out);
    CU_ASSERT_FATAL(a && b);
    CU_ASSERT_EQUAL(em_ckpt_dtype(b), wtype);
    CU_ASSERT(memcmp(em_ckpt_config(a), em_ckpt_config(b), sizeof(struct em_qa_config)) == 0);
    struct em_qa_expect *ex = NULL;
    size_t n = 0, nq = 0;
    CU_ASSERT_EQUAL_FATAL(em_qa_expected_tensors(em_ckpt_config(a), &ex, &n), EM_OK);
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        struct em_tensor ta, tb;
        em_ckpt_tensor(a, ex[i].name, &ta, NULL);
        em_ckpt_tensor(b, ex[i].name, &tb, NULL);
        int want = ta.ndim == 1 ? EM_DT_F32 : expect_quantized(ex[i].name) ? wtype : EM_DT_BF16;
        int ok = tb.dtype == want && tb.ndim == ta.ndim &&
                 memcmp(ta.shape, tb.shape, sizeof ta.shape) == 0;
        if (ok && want == wtype) { /* bit-equal to the reference quantizer */
            ok = quantized_as_reference(&ta, &tb, wtype);
            nq++;
        } else if (ok && want == EM_DT_BF16) { /* kept: the same bytes */
            ok = ta.nbytes == tb.nbytes && memcmp(ta.data, tb.data, ta.nbytes) == 0;
        } else if (ok) {
            float *x = widen(&ta), *y = widen(&tb);
            ok = memcmp(x, y, (size_t)em_tensor_numel(&ta) * 4) == 0;
            free(x);
            free(y);
        }
        if (!ok) {
            printf("\n    %s: %s is %s, expected %s", out, ex[i].name, em_dtype_name(tb.dtype),
                   em_dtype_name(want));
            bad++;
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(nq, 16); /* fc2, 2 x 7 decoder linears, lm_head */
    free(ex);

    /* the decoder runs on the quantized file and stays close to the source */
    struct em_dec *da = NULL, *db = NULL;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(em_dec_open(a, &da, &eb), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_dec_open(b, &db, &eb), EM_OK);
    int32_t ids[12] = {151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198, 77091};
    const int V = em_dec_vocab(da), T = 12;
    float *la = malloc((size_t)V * sizeof *la), *lb = malloc((size_t)V * sizeof *lb);
    struct em_kv *ka = NULL, *kb = NULL;
    CU_ASSERT_EQUAL_FATAL(em_dec_kv_new(da, T, &ka, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_dec_kv_new(db, T, &kb, NULL), EM_OK);
    CU_ASSERT_EQUAL(em_dec_forward(da, ka, ids, T, NULL, 0, EM_DEC_LOGITS_LAST, la, &eb), EM_OK);
    em_err rc = em_dec_forward(db, kb, ids, T, NULL, 0, EM_DEC_LOGITS_LAST, lb, &eb);
    if (rc != EM_OK) printf("\n    forward %s: %s", out, eb.msg);
    CU_ASSERT_EQUAL(rc, EM_OK);
    char what[96];
    if (wtype == EM_WT_Q8_0) {
        snprintf(what, sizeof what, "synth %s logits[-1] vs bf16", em_wtype_name(wtype));
        CU_ASSERT(golden_cmp(what, lb, la, (size_t)V, 1, Q8_LOGIT_TOL) <= Q8_LOGIT_TOL);
    }
    /* GGUF -> GGUF: f32 of the dequantized weights; the quantized matmul must agree with it */
    char deq[1400];
    snprintf(deq, sizeof deq, "%s.f32.gguf", out);
    CU_ASSERT_EQUAL_FATAL(convert(out, deq, EM_WT_F32), EM_OK);
    struct em_ckpt *c = open_ck(deq);
    struct em_dec *dc = NULL;
    struct em_kv *kc = NULL;
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT_EQUAL_FATAL(em_dec_open(c, &dc, &eb), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_dec_kv_new(dc, T, &kc, NULL), EM_OK);
    CU_ASSERT_EQUAL(em_dec_forward(dc, kc, ids, T, NULL, 0, EM_DEC_LOGITS_LAST, la, &eb), EM_OK);
    snprintf(what, sizeof what, "synth %s logits[-1] vs dequantized f32", em_wtype_name(wtype));
    CU_ASSERT(golden_cmp(what, lb, la, (size_t)V, 1, DEQ_LOGIT_TOL) <= DEQ_LOGIT_TOL);
    /* the encoder too (fc2 is quantized; many frames: the dequantizing tile path) */
    int L = 0, nq_tok = 0, nf_tok = 0;
    float *mel = speech_mel(&L), *eq = NULL, *pq = NULL, *ef = NULL, *pf = NULL;
    CU_ASSERT_FATAL(mel != NULL);
    CU_ASSERT_EQUAL(run_audio(b, mel, L, &eq, &pq, &nq_tok), 0);
    CU_ASSERT_EQUAL(run_audio(c, mel, L, &ef, &pf, &nf_tok), 0);
    CU_ASSERT_FATAL(nq_tok == nf_tok && nq_tok > 0);
    snprintf(what, sizeof what, "synth %s audio_embeds vs dequantized f32", em_wtype_name(wtype));
    CU_ASSERT(golden_cmp(what, pq, pf, (size_t)nq_tok * 64, 1, DEQ_LOGIT_TOL) <= DEQ_LOGIT_TOL);
    free(mel);
    free(eq);
    free(pq);
    free(ef);
    free(pf);
    em_kv_free(kc);
    em_dec_free(dc);
    em_ckpt_close(c);
    free(la);
    free(lb);
    em_kv_free(ka);
    em_kv_free(kb);
    em_dec_free(da);
    em_dec_free(db);
    em_ckpt_close(a);
    em_ckpt_close(b);
}

/* ---- the per-class policy (convert.c) is what the written file holds ---- */

/* The policy as docs/accuracy.md states it, written out independently of convert.c: a
 * change of the policy must change this table too. -1: the requested type. */
static const int want_policy[2][EM_CC_COUNT] = {
    /* q8_0: enc_attn, enc_mlp, dec_q, dec_k, dec_v, dec_o, dec_gate, dec_up, dec_down, lm_head */
    {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1},
    /* q4_0: the encoder, the decoder's attention and lm_head in q8_0, the decoder MLP q4_0 */
    {EM_WT_Q8_0, EM_WT_Q8_0, EM_WT_Q8_0, EM_WT_Q8_0, EM_WT_Q8_0, EM_WT_Q8_0, -1, -1, -1, EM_WT_Q8_0},
};

static void policy_case(int wtype)
{
    char out[1300];
    snprintf(out, sizeof out, "%s/synth-policy-%s.gguf", tmp, em_wtype_name(wtype));
    CU_ASSERT_EQUAL_FATAL(convert(synth, out, wtype), EM_OK);
    struct em_ckpt *a = open_ck(synth), *b = open_ck(out);
    CU_ASSERT_FATAL(a && b);
    CU_ASSERT_EQUAL(em_ckpt_dtype(b), wtype);
    const int *pol = want_policy[wtype == EM_WT_Q4_0];
    struct em_qa_expect *ex = NULL;
    size_t n = 0;
    int bad = 0, n_cls[EM_CC_COUNT] = {0};
    CU_ASSERT_EQUAL_FATAL(em_qa_expected_tensors(em_ckpt_config(a), &ex, &n), EM_OK);
    for (size_t i = 0; i < n; i++) {
        struct em_tensor ta, tb;
        em_ckpt_tensor(a, ex[i].name, &ta, NULL);
        em_ckpt_tensor(b, ex[i].name, &tb, NULL);
        int cls = em_convert_class_of(ex[i].name, &ta), want;
        if (ta.ndim == 1) {
            want = EM_DT_F32;
        } else if (cls == EM_CC_NONE) {
            want = EM_DT_BF16; /* embed_tokens, convs, positions, projector: source type */
        } else {
            n_cls[cls]++;
            want = pol[cls] < 0 ? wtype : pol[cls];
            CU_ASSERT_EQUAL(em_convert_policy_type(cls, wtype, EM_DT_BF16), want);
            /* synth's audio d_model 48: its inputs are off the 32-block, kept bf16 */
            if ((want == EM_WT_Q8_0 || want == EM_WT_Q4_0) && ta.shape[1] % EM_QK) want = EM_DT_BF16;
        }
        int ok = tb.dtype == want;
        if (ok && (want == EM_WT_Q8_0 || want == EM_WT_Q4_0)) { /* the reference quantizer's bytes */
            ok = quantized_as_reference(&ta, &tb, want);
        } else if (ok && want == EM_DT_BF16) {
            ok = ta.nbytes == tb.nbytes && memcmp(ta.data, tb.data, ta.nbytes) == 0;
        }
        if (!ok) {
            printf("\n    %s: %s (%s) is %s, expected %s", out, ex[i].name, em_convert_class_name(cls),
                   em_dtype_name(tb.dtype), em_dtype_name(want));
            bad++;
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    /* every class occurs: 1 encoder layer (4 attn, 2 mlp), 2 decoder layers, lm_head */
    CU_ASSERT(n_cls[EM_CC_ENC_ATTN] == 4 && n_cls[EM_CC_ENC_MLP] == 2 && n_cls[EM_CC_LM_HEAD] == 1);
    for (int k = EM_CC_DEC_Q; k <= EM_CC_DEC_DOWN; k++) CU_ASSERT_EQUAL(n_cls[k], 2);
    free(ex);
    em_ckpt_close(a);
    em_ckpt_close(b);
}

static void q8_0_policy_is_written(void) { policy_case(EM_WT_Q8_0); }
static void q4_0_policy_is_written(void) { policy_case(EM_WT_Q4_0); }

static void policy_table_and_classes(void)
{
    struct em_tensor t2 = {.ndim = 2, .dtype = EM_DT_BF16, .shape = {64, 64}};
    struct em_tensor t1 = {.ndim = 1, .dtype = EM_DT_BF16, .shape = {64}};
    CU_ASSERT_EQUAL(em_convert_class_of("language_model.lm_head.weight", &t2), EM_CC_LM_HEAD);
    CU_ASSERT_EQUAL(em_convert_class_of("language_model.model.layers.3.mlp.down_proj.weight", &t2),
                    EM_CC_DEC_DOWN);
    CU_ASSERT_EQUAL(em_convert_class_of("language_model.model.layers.0.self_attn.v_proj.weight", &t2),
                    EM_CC_DEC_V);
    CU_ASSERT_EQUAL(em_convert_class_of("audio_tower.layers.1.self_attn.out_proj.weight", &t2),
                    EM_CC_ENC_ATTN);
    CU_ASSERT_EQUAL(em_convert_class_of("audio_tower.layers.1.fc1.weight", &t2), EM_CC_ENC_MLP);
    CU_ASSERT_EQUAL(em_convert_class_of("language_model.model.layers.0.self_attn.v_proj.bias", &t1),
                    EM_CC_NONE);
    CU_ASSERT_EQUAL(em_convert_class_of("language_model.model.embed_tokens.weight", &t2), EM_CC_NONE);
    CU_ASSERT_EQUAL(em_convert_class_of("multi_modal_projector.linear.weight", &t2), EM_CC_NONE);
    CU_ASSERT_STRING_EQUAL(em_convert_class_name(EM_CC_DEC_DOWN), "dec_down");
    CU_ASSERT_STRING_EQUAL(em_convert_class_name(EM_CC_NONE), "other");
    for (int k = 0; k < EM_CC_COUNT; k++) {
        /* float requests store every class as requested */
        CU_ASSERT_EQUAL(em_convert_policy_type(k, EM_WT_F16, EM_DT_BF16), EM_WT_F16);
        CU_ASSERT_EQUAL(em_convert_policy_type(k, EM_WT_BF16, EM_DT_F32), EM_WT_BF16);
        for (int q = 0; q < 2; q++) {
            int w = q ? EM_WT_Q4_0 : EM_WT_Q8_0, want = want_policy[q][k] < 0 ? w : want_policy[q][k];
            CU_ASSERT_EQUAL(em_convert_policy_type(k, w, EM_DT_BF16), want);
        }
    }
    CU_ASSERT_EQUAL(em_convert_policy_type(EM_CC_COUNT, EM_WT_Q8_0, EM_DT_BF16), -1);
    CU_ASSERT_EQUAL(em_convert_policy_type(0, EM_WT_COUNT, EM_DT_BF16), -1);
    /* an override replaces the policy; the block fallback still applies */
    int ct[EM_CC_COUNT];
    for (int k = 0; k < EM_CC_COUNT; k++) ct[k] = -1;
    ct[EM_CC_LM_HEAD] = EM_WT_F16;
    CU_ASSERT_EQUAL(em_convert_tensor_type_with("language_model.lm_head.weight", &t2, EM_WT_Q4_0, ct), EM_WT_F16);
    ct[EM_CC_LM_HEAD] = EM_WT_Q8_0;
    struct em_tensor odd = {.ndim = 2, .dtype = EM_DT_BF16, .shape = {64, 48}};
    CU_ASSERT_EQUAL(em_convert_tensor_type_with("language_model.lm_head.weight", &odd, EM_WT_Q4_0, ct), EM_WT_BF16);
    CU_ASSERT_EQUAL(em_convert_tensor_type_with("language_model.lm_head.weight", &t2, EM_WT_Q4_0, ct), EM_WT_Q8_0);
}

static void q8_0_quantizes_the_linears(void) { quantized_case(EM_WT_Q8_0); }
static void q4_0_quantizes_the_linears(void) { quantized_case(EM_WT_Q4_0); }

static void q8_0_keeps_linears_off_the_block_size(void)
{
    /* tiny-bf16: d_model 60, hidden 48, ffn 88/72: no input dim is a multiple of 32 */
    char out[1300];
    snprintf(out, sizeof out, "%s/tiny-bf16-q8.gguf", tmp);
    CU_ASSERT_EQUAL_FATAL(convert(src[0], out, EM_WT_Q8_0), EM_OK);
    struct em_ckpt *b = open_ck(out);
    CU_ASSERT_FATAL(b != NULL);
    const struct em_gguf *gg = em_ckpt_gguf(b);
    int quantized = 0;
    for (size_t i = 0; i < em_gguf_n_tensors(gg); i++) {
        uint32_t t = em_gguf_tensor_at(gg, i)->ggml_type;
        quantized += t == EM_GGML_Q8_0 || t == EM_GGML_Q4_0;
    }
    CU_ASSERT_EQUAL(quantized, 0);
    struct em_tensor t;
    CU_ASSERT_EQUAL(em_ckpt_tensor(b, "language_model.lm_head.weight", &t, NULL), EM_OK);
    CU_ASSERT_EQUAL(t.dtype, EM_DT_BF16);
    CU_ASSERT_EQUAL(em_ckpt_tensor(b, "language_model.model.norm.weight", &t, NULL), EM_OK);
    CU_ASSERT_EQUAL(t.dtype, EM_DT_F32);
    em_ckpt_close(b);
}

/* ---- tokenizer keys with merges ---- */

static em_err no_data(void *ctx, size_t i, struct em_gguf_sink *s, struct em_errbuf *eb)
{
    (void)ctx, (void)i, (void)s, (void)eb;
    return EM_OK;
}

/* tok -> GGUF keys -> file -> tokenizer. */
static struct em_tok *via_gguf(const struct em_tok *tok, const char *file)
{
    struct em_gguf_writer *w = NULL;
    struct em_qa_config c;
    memset(&c, 0, sizeof c);
    c.text.eos_token_id = c.text.bos_token_id = c.gen.pad_token_id = -1;
    struct em_tok *out = NULL;
    struct em_errbuf eb = {{0}};
    char p[1300];
    snprintf(p, sizeof p, "%s/%s", tmp, file);
    if (em_gguf_writer_new(32, &w) == EM_OK && em_gguf_put_tokenizer(w, tok, &c, NULL) == EM_OK &&
        em_gguf_writer_write(w, p, no_data, NULL, &eb) == EM_OK &&
        em_tok_load_gguf(p, &out, &eb) != EM_OK)
        printf("\n    %s: %s", file, eb.msg);
    em_gguf_writer_free(w);
    return out;
}

static void tokenizer_with_merges_round_trips(void)
{
    const char *dirs[2] = {"tests/golden/tok/tiny", "tests/golden/tok/tiny-json"};
    for (int i = 0; i < 2; i++) {
        char p[1200];
        snprintf(p, sizeof p, "%s/%s", golden_root(), dirs[i]);
        struct em_tok *a = NULL;
        CU_ASSERT_EQUAL_FATAL(em_tok_load(p, &a, NULL), EM_OK);
        struct em_tok_spec s;
        CU_ASSERT_EQUAL_FATAL(em_tok_export(a, &s), EM_OK);
        CU_ASSERT(s.n_merges > 20);
        em_tok_spec_free(&s);
        struct em_tok *b = via_gguf(a, i ? "tok-json.gguf" : "tok.gguf");
        CU_ASSERT_FATAL(b != NULL);
        same_tokenizer(a, b);
        em_tok_free(a);
        em_tok_free(b);
    }
}

static void real_vocabulary_matches_reference(void)
{
    const char *d = getenv("EM_QWEN2_VOCAB_DIR"), *home = getenv("HOME"), *xdg = getenv("XDG_CACHE_HOME");
    char vdir[1024], cmd[3000], p[1200];
    if (d && *d) snprintf(vdir, sizeof vdir, "%s", d);
    else if (xdg && *xdg) snprintf(vdir, sizeof vdir, "%s/earmark/qwen2-vocab", xdg);
    else snprintf(vdir, sizeof vdir, "%s/.cache/earmark/qwen2-vocab", home ? home : "/tmp");
    snprintf(cmd, sizeof cmd, "'%s/deploy/fetch-qwen2-vocab.sh' '%s' >/dev/null", golden_root(), vdir);
    CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
    struct em_tok *a = NULL;
    CU_ASSERT_EQUAL_FATAL(em_tok_load(vdir, &a, NULL), EM_OK);
    struct em_tok *b = via_gguf(a, "qwen2-tok.gguf");
    CU_ASSERT_FATAL(b != NULL);
    same_tokenizer(a, b);
    snprintf(p, sizeof p, "%s/tests/golden/tok/qwen2_golden.json", golden_root());
    json_t *root = json_load_file(p, 0, NULL);
    json_t *samples = json_object_get(root, "samples");
    CU_ASSERT_FATAL(json_array_size(samples) > 10);
    int bad = 0;
    size_t i;
    json_t *smp;
    json_array_foreach(samples, i, smp) {
        const char *text = json_string_value(json_object_get(smp, "text"));
        json_t *want = json_object_get(smp, "ids");
        int32_t ids[4096];
        size_t n = 0;
        if (em_tok_encode(b, text, strlen(text), ids, 4096, &n, NULL) != EM_OK ||
            n != json_array_size(want)) {
            bad++;
            continue;
        }
        for (size_t k = 0; k < n; k++)
            if (ids[k] != json_integer_value(json_array_get(want, k))) {
                bad++;
                break;
            }
    }
    if (bad) printf("\n    %d of %zu reference samples differ", bad, json_array_size(samples));
    CU_ASSERT_EQUAL(bad, 0);
    json_decref(root);
    em_tok_free(a);
    em_tok_free(b);
}

/* ---- errors ---- */

static void errors_leave_nothing_behind(void)
{
    struct em_errbuf eb = {{0}};
    char out[1300], cmd[1400];
    snprintf(out, sizeof out, "%s/never.gguf", tmp);
    struct em_convert_opts o = em_convert_opts_default();
    CU_ASSERT_EQUAL(em_convert("/nonexistent-ckpt", out, &o, &eb), EM_E_IO);
    CU_ASSERT_EQUAL(em_convert(src[1], "/nonexistent-dir/x.gguf", &o, &eb), EM_E_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "/nonexistent-dir/x.gguf"));
    o.wtype = 9;
    CU_ASSERT_EQUAL(em_convert(src[1], out, &o, &eb), EM_E_ARG);
    struct stat sb;
    CU_ASSERT_NOT_EQUAL(stat(out, &sb), 0);
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -q '\\.tmp\\.'", tmp);
    CU_ASSERT_NOT_EQUAL(system(cmd), 0);
    CU_ASSERT_EQUAL(em_convert_parse_type("Q8_0"), EM_WT_Q8_0);
    CU_ASSERT_EQUAL(em_convert_parse_type("q4_0"), EM_WT_Q4_0);
    CU_ASSERT_EQUAL(em_convert_parse_type("bf16"), EM_WT_BF16);
    CU_ASSERT_EQUAL(em_convert_parse_type("f16"), EM_WT_F16);
    CU_ASSERT_EQUAL(em_convert_parse_type("f32"), EM_WT_F32);
    CU_ASSERT_EQUAL(em_convert_parse_type("q5_k"), -1);
    CU_ASSERT_EQUAL(em_convert_parse_type(NULL), -1);
    /* a GGUF of another architecture is refused by em_ckpt_open */
    struct em_gguf_writer *w = NULL;
    CU_ASSERT_EQUAL_FATAL(em_gguf_writer_new(32, &w), EM_OK);
    CU_ASSERT_EQUAL(em_gguf_set_str(w, "general.architecture", "llama", 5), EM_OK);
    snprintf(out, sizeof out, "%s/llama.gguf", tmp);
    CU_ASSERT_EQUAL(em_gguf_writer_write(w, out, no_data, NULL, &eb), EM_OK);
    em_gguf_writer_free(w);
    struct em_ckpt *ck = NULL;
    CU_ASSERT_EQUAL(em_ckpt_open(out, &ck, &eb), EM_E_MODEL);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "qwen2audio"));
}

static CU_TestInfo tests[] = {
    {"f32_roundtrip_is_exact", f32_roundtrip_is_exact},
    {"f16_values_are_rounded_once", f16_values_are_rounded_once},
    {"f16_decoder_matches_reference", f16_decoder_matches_reference},
    {"f16_encoder_matches_reference", f16_encoder_matches_reference},
    {"q8_0_quantizes_the_linears", q8_0_quantizes_the_linears},
    {"q4_0_quantizes_the_linears", q4_0_quantizes_the_linears},
    {"q8_0_keeps_linears_off_the_block_size", q8_0_keeps_linears_off_the_block_size},
    {"q8_0_policy_is_written", q8_0_policy_is_written},
    {"q4_0_policy_is_written", q4_0_policy_is_written},
    {"policy_table_and_classes", policy_table_and_classes},
    {"tokenizer_with_merges_round_trips", tokenizer_with_merges_round_trips},
    {"real_vocabulary_matches_reference", real_vocabulary_matches_reference},
    {"errors_leave_nothing_behind", errors_leave_nothing_behind},
    CU_TEST_INFO_NULL,
};

const CU_SuiteInfo suite_convert = {"convert", init, clean, NULL, NULL, tests};
