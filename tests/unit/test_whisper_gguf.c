/* tests/unit/test_whisper_gguf.c - Whisper tiny.en (deploy/fetch-whisper.sh, CTranslate2
 * layout) converted by `earmark convert` (em_convert) to one GGUF file at f32 and q8_0 and
 * loaded back (model/whisper/gguf.c): the f32 file gives the CTranslate2 path's greedy ids on
 * every golden clip (first window), which are the golden ctranslate2 ids; the q8_0 file gives
 * the ids of the CTranslate2 files loaded with --weights q8_0; the facade picks the Whisper
 * family from the file. Hostile copies (a key missing, an id past the vocabulary, a tensor of
 * the wrong shape, geometry that disagrees with the tensors) are refused with the key or the
 * tensor named. */
#include <CUnit/CUnit.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "model/audio/mel.h"
#include "model/kernels/quant.h"
#include "model/model.h"
#include "model/text/tokenizer.h"
#include "model/tools/convert.h"
#include "model/whisper/whisper.h"
#include "tests/golden/golden.h"

static json_t *index_json;
static char tmp[1024], ct2_dir[1024], f32_gguf[1200], q8_gguf[1200];

static int init(void)
{
    if (golden_whisper_dir(ct2_dir, sizeof ct2_dir) != 0) return 1;
    if (!(index_json = golden_whisper_index("index.json"))) return 1;
    if (golden_tmpdir(tmp, sizeof tmp) != 0) return 1;
    snprintf(f32_gguf, sizeof f32_gguf, "%s/tiny-f32.gguf", tmp);
    snprintf(q8_gguf, sizeof q8_gguf, "%s/tiny-q8_0.gguf", tmp);
    struct em_errbuf eb = {{0}};
    struct em_convert_opts o = em_convert_opts_default();
    o.wtype = EM_WT_F32;
    if (em_convert(ct2_dir, f32_gguf, &o, &eb) != EM_OK) {
        fprintf(stderr, "whisper_gguf init: %s\n", eb.msg);
        return 1;
    }
    o.wtype = EM_WT_Q8_0;
    if (em_convert(ct2_dir, q8_gguf, &o, &eb) != EM_OK) {
        fprintf(stderr, "whisper_gguf init: %s\n", eb.msg);
        return 1;
    }
    return 0;
}

static int clean(void)
{
    json_decref(index_json);
    golden_rmdir(tmp);
    return 0;
}

/* Greedy ids (timestamps) of the first window of clip name with w; *n ids, owned. */
static int32_t *greedy(const struct em_whisper *w, const char *name, size_t *n)
{
    float *pcm = NULL;
    size_t np = 0;
    *n = 0;
    if (golden_whisper_clip(name, tmp, &pcm, &np) != 0) return NULL;
    struct em_whisper_info info;
    em_whisper_info(w, &info);
    float *mel = malloc(sizeof(float) * (size_t)info.n_mels * EM_MEL_FRAMES);
    float *enc = malloc(sizeof(float) * EM_WHISPER_AUDIO_CTX * (size_t)info.d_model);
    int32_t *ids = NULL;
    struct em_errbuf eb = {{0}};
    struct em_whisper_gen g = {0};
    struct em_whisper_opts o = em_whisper_opts_default();
    if (mel && enc && em_whisper_mel(w, pcm, np < 480000 ? np : 480000, mel) == EM_OK &&
        em_whisper_encode(w, mel, enc, &eb) == EM_OK && em_whisper_generate(w, enc, &o, &g, &eb) == EM_OK &&
        (ids = malloc(sizeof *ids * (g.n + 1)))) {
        memcpy(ids, g.ids, sizeof *ids * g.n);
        *n = g.n;
    }
    em_whisper_gen_clear(&g);
    free(pcm);
    free(mel);
    free(enc);
    return ids;
}

/* Loads a and b (wtype each) and compares their greedy ids on the given clips; with golden,
 * also the index's ctranslate2 ids (short clips: one window). */
static void same_ids(const char *a, int wa, const char *b, int wb, const char *const *clips, int golden)
{
    struct em_whisper *x = NULL, *y = NULL;
    struct em_errbuf eb = {{0}};
    em_err rc = em_whisper_load_as(a, wa, &x, &eb);
    if (rc == EM_OK) rc = em_whisper_load_as(b, wb, &y, &eb);
    if (rc != EM_OK) printf("\n    %s", eb.msg);
    CU_ASSERT_EQUAL_FATAL(rc, EM_OK);
    for (const char *const *c = clips; *c; c++) {
        size_t nx = 0, ny = 0;
        int32_t *ix = greedy(x, *c, &nx), *iy = greedy(y, *c, &ny);
        CU_ASSERT_PTR_NOT_NULL(ix);
        CU_ASSERT(nx > 0);
        int same = ix && iy && nx == ny && memcmp(ix, iy, nx * sizeof *ix) == 0;
        if (!same) printf("\n    %s: ids of %s and %s differ", *c, a, b);
        CU_ASSERT(same);
        if (golden && strcmp(*c, "long") != 0) {
            json_t *want = json_object_get(json_object_get(json_object_get(
                json_object_get(index_json, "clips"), *c), "ts"), "ids");
            int g = golden_ids_match(want, iy, ny);
            if (!g) printf("\n    %s: ids differ from the golden ones", *c);
            CU_ASSERT(g);
        }
        free(ix);
        free(iy);
    }
    em_whisper_free(x);
    em_whisper_free(y);
}

static void f32_gguf_gives_the_ct2_ids(void)
{
    static const char *const clips[] = {"us_normal", "gb_slow", "caribbean_fast", "female_rp",
                                        "scottish", "noise", "music", "silence", "long", NULL};
    same_ids(ct2_dir, -1, f32_gguf, -1, clips, 1);
}

static void q8_gguf_gives_the_weights_q8_ids(void)
{
    static const char *const clips[] = {"us_normal", "scottish", "noise", NULL};
    same_ids(ct2_dir, EM_WT_Q8_0, q8_gguf, -1, clips, 0);
    /* loading the q8_0 file with --weights q8_0 changes nothing: its linears are q8_0 */
    same_ids(q8_gguf, -1, q8_gguf, EM_WT_Q8_0, clips + 2, 0);
    /* the f32 file quantized at load (--weights q8_0) is the CTranslate2 files' q8_0 too */
    same_ids(ct2_dir, EM_WT_Q8_0, f32_gguf, EM_WT_Q8_0, clips + 2, 0);
}

static void gguf_metadata_and_facade(void)
{
    struct em_whisper *w = NULL, *c = NULL;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(em_whisper_load(f32_gguf, &w, &eb), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_whisper_load(ct2_dir, &c, &eb), EM_OK);
    struct em_whisper_info a, b;
    em_whisper_info(w, &a);
    em_whisper_info(c, &b);
    CU_ASSERT_STRING_EQUAL(a.dtype, "f32");
    CU_ASSERT_EQUAL(a.n_mels, b.n_mels);
    CU_ASSERT_EQUAL(a.n_vocab, b.n_vocab);
    CU_ASSERT_EQUAL(a.d_model, b.d_model);
    CU_ASSERT_EQUAL(a.heads, b.heads);
    CU_ASSERT_EQUAL(a.enc_layers, b.enc_layers);
    CU_ASSERT_EQUAL(a.dec_layers, b.dec_layers);
    CU_ASSERT_EQUAL(a.multilingual, b.multilingual);
    /* the vocabulary came with the file: the same text for the same ids */
    const int32_t ids[] = {383, 2068, 7586, 21831};
    char *ta = NULL, *tb = NULL;
    size_t la = 0, lb = 0;
    em_err ra = em_tok_decode(em_whisper_tok(w), ids, 4, true, &ta, &la);
    em_err rb = em_tok_decode(em_whisper_tok(c), ids, 4, true, &tb, &lb);
    CU_ASSERT(ra == EM_OK && rb == EM_OK);
    CU_ASSERT(ta && tb && strcmp(ta, tb) == 0 && strstr(ta, "quick brown fox"));
    free(ta);
    free(tb);
    em_whisper_free(w);
    em_whisper_free(c);
    struct em_model *m = NULL;
    CU_ASSERT_EQUAL_FATAL(em_model_load(q8_gguf, NULL, &m, &eb), EM_OK);
    CU_ASSERT_STRING_EQUAL(em_model_family(m), "whisper");
    CU_ASSERT_PTR_NOT_NULL(strstr(em_model_identity(m), "tiny-q8_0.gguf@"));
    CU_ASSERT_PTR_NOT_NULL(strstr(em_model_identity(m), ":q8_0:"));
    em_model_free(m);
    /* Whisper is written as f32, f16 or q8_0 only */
    struct em_convert_opts o = em_convert_opts_default();
    o.wtype = EM_WT_Q4_0;
    char out[1300];
    snprintf(out, sizeof out, "%s/q4.gguf", tmp);
    CU_ASSERT_EQUAL(em_convert(ct2_dir, out, &o, &eb), EM_E_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "f32, f16 or q8_0"));
}

/* A copy of the q8_0 file where the bytes after the first occurrence of pat[plen] are patched
 * by fn; loading it must fail with EM_E_MODEL and a detail containing needle. */
static void expect_refused(const char *name, const char *pat, size_t plen,
                           void (*fn)(unsigned char *at), const char *needle)
{
    size_t len = 0;
    unsigned char *b = golden_read(q8_gguf, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    unsigned char *at = memmem(b, len, pat, plen);
    CU_ASSERT_PTR_NOT_NULL_FATAL(at);
    fn(at + plen);
    char p[1300];
    snprintf(p, sizeof p, "%s/%s.gguf", tmp, name);
    FILE *f = fopen(p, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(fwrite(b, 1, len, f), len);
    fclose(f);
    free(b);
    struct em_whisper *w = NULL;
    struct em_errbuf eb = {{0}};
    em_err rc = em_whisper_load(p, &w, &eb);
    CU_ASSERT_EQUAL(rc, EM_E_MODEL);
    CU_ASSERT_PTR_NULL(w);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, needle));
    if (rc != EM_E_MODEL || !strstr(eb.msg, needle))
        printf("\n    %s: got %s '%s', wanted '%s'", name, em_err_name(rc), eb.msg, needle);
    em_whisper_free(w);
    remove(p);
}

static void rename_key(unsigned char *after) { after[-1] = 'z'; }
static void put_u32(unsigned char *at, uint32_t v)
{
    for (int i = 0; i < 4; i++) at[i] = (unsigned char)(v >> (8 * i));
}
static void eot_past_vocab(unsigned char *v) { put_u32(v, 99999); }    /* after the type */
static void first_id_past_vocab(unsigned char *a) { put_u32(a + 8, 60000); } /* after count */
static void three_layers(unsigned char *v) { put_u32(v, 3); }
static void swap_dims(unsigned char *ne) /* after n_dims: ne[0], ne[1] swapped */
{
    unsigned char t[8];
    memcpy(t, ne, 8);
    memmove(ne, ne + 8, 8);
    memcpy(ne + 8, t, 8);
}
static void not_whisper(unsigned char *v) { memcpy(v, "whisker", 7); }

#define KEY_T(k, t) k t, sizeof(k t) - 1 /* a key followed by its u32 value type */

static void hostile_files_are_refused(void)
{
    expect_refused("missing", "whisper.decoder.heads", 21, rename_key,
                   "key whisper.decoder.heads is missing");
    expect_refused("eot", KEY_T("whisper.token.eot", "\x05\0\0\0"), eot_past_vocab,
                   "key whisper.token.eot is not an integer in 0..51863");
    expect_refused("suppress", KEY_T("whisper.suppress_ids", "\x09\0\0\0\x05\0\0\0"),
                   first_id_past_vocab, "key whisper.suppress_ids[0] = 60000 is not below 51864");
    expect_refused("layers", KEY_T("whisper.encoder.layers", "\x04\0\0\0"), three_layers,
                   "key whisper.encoder.layers is 3, the tensors say 4");
    expect_refused("shape", KEY_T("model.decoder.layers.3.fc2.weight", "\x02\0\0\0"), swap_dims,
                   "'model.decoder.layers.3.fc2.weight' is [1536, 384], expected [384, 1536]");
    expect_refused("arch", KEY_T("general.architecture", "\x08\0\0\0\x07\0\0\0\0\0\0\0"), not_whisper,
                   "general.architecture is not \"whisper\"");
}

static CU_TestInfo tests[] = {
    {"f32 GGUF gives the CTranslate2 ids on the golden clips", f32_gguf_gives_the_ct2_ids},
    {"q8_0 GGUF gives the --weights q8_0 ids", q8_gguf_gives_the_weights_q8_ids},
    {"GGUF metadata, vocabulary and the facade", gguf_metadata_and_facade},
    {"hostile GGUF files are refused naming the key", hostile_files_are_refused},
    CU_TEST_INFO_NULL};

const CU_SuiteInfo suite_whisper_gguf = {"whisper_gguf", init, clean, NULL, NULL, tests};
