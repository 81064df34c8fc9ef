/* tests/unit/test_loader.c - model/loader (safetensors, checkpoint dirs), model/config and
 * the CPU matmul: loads both committed tiny checkpoints (sharded bf16, single-file f32),
 * rejects corrupted copies with EM_E_MODEL naming the cause, and checks the matmul paths
 * against the reference on odd sizes for every weight dtype. */
#include <CUnit/CUnit.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "model/qwen2audio/config.h"
#include "model/gen/generate.h"
#include "model/kernels/backend.h"
#include "model/loader/safetensors.h"
#include "model/loader/tensors.h"
#include "tests/golden/golden.h"

#define MATMUL_TOL 1e-4 /* relative to max |y|: f32 accumulation order differs */

static char tmp_bf16[1024], tmp_f32[1024], dir_bf16[1100], dir_f32[1100];

static int init(void)
{
    if (golden_unpack("tiny-bf16", tmp_bf16, sizeof tmp_bf16) != 0) return 1;
    if (golden_unpack("tiny-f32", tmp_f32, sizeof tmp_f32) != 0) return 1;
    snprintf(dir_bf16, sizeof dir_bf16, "%s/tiny-bf16", tmp_bf16);
    snprintf(dir_f32, sizeof dir_f32, "%s/tiny-f32", tmp_f32);
    return 0;
}

static int clean(void)
{
    golden_rmdir(tmp_bf16);
    golden_rmdir(tmp_f32);
    return 0;
}

static void loads_sharded_bf16(void)
{
    struct em_ckpt *ck = NULL;
    struct em_errbuf eb = {{0}};
    em_err rc = em_ckpt_open(dir_bf16, &ck, &eb);
    CU_ASSERT_EQUAL_FATAL(rc, EM_OK);
    if (rc != EM_OK) printf("\n    %s", eb.msg);
    const struct em_qa_config *c = em_ckpt_config(ck);
    CU_ASSERT_EQUAL(c->audio.d_model, 60);
    CU_ASSERT_EQUAL(c->audio.encoder_attention_heads, 3);
    CU_ASSERT_EQUAL(c->audio.encoder_ffn_dim, 88);
    CU_ASSERT_EQUAL(c->audio.encoder_layers, 2);
    CU_ASSERT_EQUAL(c->audio.num_mel_bins, 128);
    CU_ASSERT_EQUAL(c->audio.max_source_positions, 1500);
    CU_ASSERT_EQUAL(c->text.hidden_size, 48);
    CU_ASSERT_EQUAL(c->text.head_dim, 16);
    CU_ASSERT_EQUAL(c->text.vocab_size, 151680);
    CU_ASSERT_EQUAL(c->audio_token_index, 151646);
    CU_ASSERT_DOUBLE_EQUAL(c->text.rms_norm_eps, 1e-5, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(c->text.rope_theta, 10000.0, 1e-9);
    CU_ASSERT_EQUAL(c->gen.n_eos, 2);
    CU_ASSERT_EQUAL(c->gen.eos_token_id[0], 151645);
    CU_ASSERT_DOUBLE_EQUAL(c->gen.repetition_penalty, 1.1, 1e-6);
    CU_ASSERT_EQUAL(c->gen.top_k, 20);
    CU_ASSERT_EQUAL(em_ckpt_dtype(ck), EM_DT_BF16);
    struct em_tensor t;
    CU_ASSERT_EQUAL(em_ckpt_tensor(ck, "language_model.lm_head.weight", &t, NULL), EM_OK);
    CU_ASSERT_EQUAL(t.dtype, EM_DT_BF16);
    CU_ASSERT_EQUAL(t.shape[0], 151680);
    CU_ASSERT_EQUAL(t.shape[1], 48);
    CU_ASSERT_EQUAL(em_ckpt_tensorf(ck, &t, NULL, "audio_tower.layers.%d.fc1.weight", 1), EM_OK);
    CU_ASSERT_EQUAL(t.shape[0], 88);
    /* the embed_positions table was written as sin(0)=0 / cos(0)=1 in row 0 */
    CU_ASSERT_EQUAL(em_ckpt_tensor(ck, "audio_tower.embed_positions.weight", &t, NULL), EM_OK);
    float row0[60];
    em_tensor_read_f32(&t, 0, 60, row0);
    CU_ASSERT_DOUBLE_EQUAL(row0[0], 0.0, 0);
    CU_ASSERT_DOUBLE_EQUAL(row0[30], 1.0, 0);
    CU_ASSERT_EQUAL(em_ckpt_tensor(ck, "audio_tower.layers.0.self_attn.k_proj.bias", &t, &eb),
                    EM_E_NOTFOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "k_proj.bias"));
    em_ckpt_close(ck);
}

static void loads_single_f32(void)
{
    struct em_ckpt *ck = NULL;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(em_ckpt_open(dir_f32, &ck, &eb), EM_OK);
    const struct em_qa_config *c = em_ckpt_config(ck);
    CU_ASSERT_EQUAL(c->text.num_key_value_heads, 1);
    CU_ASSERT_EQUAL(c->text.head_dim, 8);
    CU_ASSERT_EQUAL(c->audio.encoder_layers, 3);
    CU_ASSERT_EQUAL(em_ckpt_dtype(ck), EM_DT_F32);
    struct em_tensor t;
    CU_ASSERT_EQUAL(em_ckpt_tensor(ck, "language_model.model.layers.2.self_attn.k_proj.weight",
                                   &t, NULL), EM_OK);
    CU_ASSERT_EQUAL(t.ndim, 2);
    CU_ASSERT_EQUAL(t.shape[0], 8);
    CU_ASSERT_EQUAL(t.shape[1], 40);
    em_ckpt_close(ck);
}

/* Copies a checkpoint into a fresh temp dir; returns 0 and the copy's path. */
static int copy_ckpt(const char *src, char *tmp, size_t cap, char *dst, size_t dcap)
{
    if (golden_tmpdir(tmp, cap) != 0) return -1;
    snprintf(dst, dcap, "%s/ck", tmp);
    return golden_sh("cp -r '%s' '%s'", src, dst);
}

/* Opens dir expecting EM_E_MODEL (or want) and a detail containing needle. */
static void expect_fail(const char *dir, em_err want, const char *needle)
{
    struct em_ckpt *ck = NULL;
    struct em_errbuf eb = {{0}};
    em_err rc = em_ckpt_open(dir, &ck, &eb);
    CU_ASSERT_EQUAL(rc, want);
    CU_ASSERT_PTR_NULL(ck);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, needle));
    if (rc != want || !strstr(eb.msg, needle))
        printf("\n    got %s: '%s', wanted '%s'", em_err_name(rc), eb.msg, needle);
    em_ckpt_close(ck);
}

static void rejects_truncated_shard(void)
{
    char tmp[1024], d[1100], f[1200];
    CU_ASSERT_FATAL(copy_ckpt(dir_bf16, tmp, sizeof tmp, d, sizeof d) == 0);
    snprintf(f, sizeof f, "%s/model-00002-of-00002.safetensors", d);
    CU_ASSERT_FATAL(truncate(f, 200000) == 0);
    expect_fail(d, EM_E_MODEL, "outside the data area");
    CU_ASSERT_FATAL(truncate(f, 5) == 0);
    expect_fail(d, EM_E_MODEL, "too short");
    golden_rmdir(tmp);
}

static void rejects_bad_header_json(void)
{
    char tmp[1024], d[1100], f[1200];
    CU_ASSERT_FATAL(copy_ckpt(dir_f32, tmp, sizeof tmp, d, sizeof d) == 0);
    snprintf(f, sizeof f, "%s/model.safetensors", d);
    FILE *fp = fopen(f, "r+b");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    fseek(fp, 8, SEEK_SET); /* the header's opening brace */
    fputc('[', fp);
    fclose(fp);
    expect_fail(d, EM_E_MODEL, "header JSON");
    /* a header length past the end of the file */
    fp = fopen(f, "r+b");
    uint8_t big[8] = {0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0};
    fwrite(big, 1, 8, fp);
    fclose(fp);
    expect_fail(d, EM_E_MODEL, "header length");
    golden_rmdir(tmp);
}

static void rejects_shape_mismatch_naming_tensor(void)
{
    char tmp[1024], d[1100];
    CU_ASSERT_FATAL(copy_ckpt(dir_bf16, tmp, sizeof tmp, d, sizeof d) == 0);
    CU_ASSERT_FATAL(golden_sh("sed -i 's/\"encoder_ffn_dim\": 88/\"encoder_ffn_dim\": 200/' "
                              "'%s/config.json'%s", d, "") == 0);
    expect_fail(d, EM_E_MODEL,
                "model-00001-of-00002.safetensors: tensor 'audio_tower.layers.0.fc1.weight' "
                "is [88, 60], config.json implies [200, 60]");
    golden_rmdir(tmp);
}

static void rejects_missing_shard_and_bad_config(void)
{
    char tmp[1024], d[1100];
    CU_ASSERT_FATAL(copy_ckpt(dir_bf16, tmp, sizeof tmp, d, sizeof d) == 0);
    CU_ASSERT_FATAL(golden_sh("rm '%s/model-00002-of-00002.safetensors'%s", d, "") == 0);
    expect_fail(d, EM_E_IO, "model-00002-of-00002.safetensors");
    CU_ASSERT_FATAL(golden_sh("sed -i 's/\"num_attention_heads\": 3/\"num_attention_heads\": 7/' "
                              "'%s/config.json'%s", d, "") == 0);
    expect_fail(d, EM_E_MODEL, "num_attention_heads = 7 does not divide hidden_size 48");
    golden_rmdir(tmp);
}

static void rejects_index_pointing_at_wrong_shard(void)
{
    char tmp[1024], d[1100];
    CU_ASSERT_FATAL(copy_ckpt(dir_bf16, tmp, sizeof tmp, d, sizeof d) == 0);
    CU_ASSERT_FATAL(golden_sh("sed -i 's/\"language_model.lm_head.weight\": \"model-00002/"
                              "\"language_model.lm_head.weight\": \"model-00001/' "
                              "'%s/model.safetensors.index.json'%s", d, "") == 0);
    expect_fail(d, EM_E_MODEL, "model-00001-of-00002.safetensors: tensor "
                "'language_model.lm_head.weight' listed by the index is missing");
    golden_rmdir(tmp);
}

/* weight_map values naming a file outside the directory are refused before anything is
 * opened (the same check serves Whisper's sharded layout: suite whisper_layouts). */
static void rejects_index_naming_files_outside_the_dir(void)
{
    char tmp[1024], d[1100];
    CU_ASSERT_FATAL(copy_ckpt(dir_bf16, tmp, sizeof tmp, d, sizeof d) == 0);
    CU_ASSERT_FATAL(golden_sh("sed -i 's#\"model-00002-of-00002#\"../model-00002-of-00002#' "
                              "'%s/model.safetensors.index.json'%s", d, "") == 0);
    expect_fail(d, EM_E_MODEL, "maps to an invalid file name");
    golden_rmdir(tmp);
}

/* The published 7B config (sparse text_config) must expand to the 876 tensors and
 * 8,397,094,912 parameters of spec §6. */
static void published_7b_shapes(void)
{
    const char *cfg =
        "{\"architectures\": [\"Qwen2AudioForConditionalGeneration\"], \"model_type\": "
        "\"qwen2_audio\", \"audio_token_index\": 151646, \"vocab_size\": 156032,"
        " \"audio_config\": {\"model_type\": \"qwen2_audio_encoder\", \"num_mel_bins\": 128,"
        " \"d_model\": 1280, \"encoder_layers\": 32, \"encoder_attention_heads\": 20,"
        " \"encoder_ffn_dim\": 5120, \"max_source_positions\": 1500},"
        " \"text_config\": {\"model_type\": \"qwen2\", \"intermediate_size\": 11008,"
        " \"vocab_size\": 156032, \"max_position_embeddings\": 8192, \"rope_theta\": 10000,"
        " \"rms_norm_eps\": 1e-05, \"sliding_window\": 32768, \"bos_token_id\": 151643,"
        " \"eos_token_id\": 151645}, \"torch_dtype\": \"bfloat16\"}";
    struct em_qa_config c;
    CU_ASSERT_EQUAL_FATAL(em_qa_config_parse(cfg, strlen(cfg), NULL, 0, &c, NULL), EM_OK);
    struct em_qa_expect *ex = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(em_qa_expected_tensors(&c, &ex, &n), EM_OK);
    CU_ASSERT_EQUAL(n, 876);
    int64_t params = 0, audio = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t k = 1;
        for (int j = 0; j < ex[i].ndim; j++) k *= ex[i].shape[j];
        params += k;
        if (strncmp(ex[i].name, "audio_tower.", 12) == 0) audio += k;
    }
    CU_ASSERT_EQUAL(params, 8397094912LL);
    CU_ASSERT_EQUAL(audio, 636968960LL);
    CU_ASSERT_TRUE(em_qa_expect_has(ex, n, "language_model.model.layers.31.mlp.down_proj.weight"));
    CU_ASSERT_FALSE(em_qa_expect_has(ex, n, "audio_tower.layers.0.self_attn.k_proj.bias"));
    free(ex);
}

/* Found by an independent check: transformers 5 saves the RoPE base under
 * text_config.rope_parameters and the reader fell back to 10000 without a word; a missing
 * num_key_value_heads defaulted to the head count where Qwen2Config says 32; and the stop
 * ids were a fixed pair instead of the checkpoint's own list. */
#define CFG_HEAD "{\"model_type\": \"qwen2_audio\", \"text_config\": {\"hidden_size\": 64, " \
                 "\"num_attention_heads\": 8, "
static void config_rope_kv_heads_and_eos_follow_transformers(void)
{
    struct em_qa_config c;
    struct em_errbuf eb = {{0}};
    const char *v5 = CFG_HEAD "\"num_key_value_heads\": 2, \"rope_parameters\": "
                     "{\"rope_type\": \"default\", \"rope_theta\": 1000000.0}}}";
    CU_ASSERT_EQUAL_FATAL(em_qa_config_parse(v5, strlen(v5), NULL, 0, &c, &eb), EM_OK);
    CU_ASSERT_DOUBLE_EQUAL(c.text.rope_theta, 1e6, 1e-9);
    const char *v4 = CFG_HEAD "\"num_key_value_heads\": 2, \"rope_theta\": 500000}}";
    CU_ASSERT_EQUAL_FATAL(em_qa_config_parse(v4, strlen(v4), NULL, 0, &c, &eb), EM_OK);
    CU_ASSERT_DOUBLE_EQUAL(c.text.rope_theta, 5e5, 1e-9);
    const char *none = CFG_HEAD "\"num_key_value_heads\": 2}}";
    CU_ASSERT_EQUAL(em_qa_config_parse(none, strlen(none), NULL, 0, &c, &eb), EM_E_MODEL);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "rope_parameters.rope_theta"));
    const char *empty = CFG_HEAD "\"num_key_value_heads\": 2, \"rope_parameters\": {}}}";
    CU_ASSERT_EQUAL(em_qa_config_parse(empty, strlen(empty), NULL, 0, &c, &eb), EM_E_MODEL);
    const char *yarn = CFG_HEAD "\"num_key_value_heads\": 2, \"rope_parameters\": "
                       "{\"rope_type\": \"yarn\", \"rope_theta\": 10000}}}";
    CU_ASSERT_EQUAL(em_qa_config_parse(yarn, strlen(yarn), NULL, 0, &c, &eb), EM_E_MODEL);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "yarn"));
    /* num_key_value_heads: absent = 32 (8 heads: 32 does not divide, refused as transformers'
     * model would be), null = the head count */
    const char *kv_absent = CFG_HEAD "\"rope_theta\": 10000}}";
    CU_ASSERT_EQUAL(em_qa_config_parse(kv_absent, strlen(kv_absent), NULL, 0, &c, &eb), EM_E_MODEL);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "num_key_value_heads = 32"));
    const char *kv_null = CFG_HEAD "\"rope_theta\": 10000, \"num_key_value_heads\": null}}";
    CU_ASSERT_EQUAL_FATAL(em_qa_config_parse(kv_null, strlen(kv_null), NULL, 0, &c, &eb), EM_OK);
    CU_ASSERT_EQUAL(c.text.num_key_value_heads, 8);
    /* stop ids: generation_config.json's list exactly; without that file the model config's */
    const char *eos = CFG_HEAD "\"rope_theta\": 10000, \"num_key_value_heads\": 4, "
                      "\"eos_token_id\": [11, 12]}}";
    CU_ASSERT_EQUAL_FATAL(em_qa_config_parse(eos, strlen(eos), NULL, 0, &c, &eb), EM_OK);
    CU_ASSERT_EQUAL(c.gen.n_eos, 2);
    CU_ASSERT_EQUAL(c.gen.eos_token_id[1], 12);
    CU_ASSERT_EQUAL(c.text.eos_token_id, 11);
    const char *g1 = "{\"eos_token_id\": [151643, 151645]}";
    CU_ASSERT_EQUAL_FATAL(em_qa_config_parse(eos, strlen(eos), g1, strlen(g1), &c, &eb), EM_OK);
    CU_ASSERT_EQUAL(c.gen.n_eos, 2);
    CU_ASSERT_EQUAL(c.gen.eos_token_id[0], 151643);
    const char *g0 = "{\"do_sample\": false}";
    CU_ASSERT_EQUAL_FATAL(em_qa_config_parse(eos, strlen(eos), g0, strlen(g0), &c, &eb), EM_OK);
    CU_ASSERT_EQUAL(c.gen.n_eos, 0);
    struct em_gen_params p = em_gen_params_from(&c.gen);
    CU_ASSERT_EQUAL(p.n_stop, 0);
}

static void config_sparse_takes_qwen2_defaults(void)
{
    const char *cfg = "{\"model_type\": \"qwen2_audio\", \"audio_token_index\": 151646,"
                      " \"audio_config\": {\"model_type\": \"qwen2_audio_encoder\"},"
                      " \"text_config\": {\"intermediate_size\": 11008, \"vocab_size\": 156032,"
                      " \"max_position_embeddings\": 8192, \"rope_theta\": 10000,"
                      " \"rms_norm_eps\": 1e-05}, \"torch_dtype\": \"bfloat16\"}";
    struct em_qa_config c;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(em_qa_config_parse(cfg, strlen(cfg), NULL, 0, &c, &eb), EM_OK);
    CU_ASSERT_EQUAL(c.text.hidden_size, 4096);
    CU_ASSERT_EQUAL(c.text.num_hidden_layers, 32);
    CU_ASSERT_EQUAL(c.text.num_attention_heads, 32);
    CU_ASSERT_EQUAL(c.text.num_key_value_heads, 32);
    CU_ASSERT_EQUAL(c.text.head_dim, 128);
    CU_ASSERT_EQUAL(c.text.intermediate_size, 11008);
    CU_ASSERT_EQUAL(c.audio.d_model, 1280);
    CU_ASSERT_EQUAL(c.audio.encoder_layers, 32);
    CU_ASSERT_EQUAL(c.audio.encoder_ffn_dim, 5120);
    CU_ASSERT_STRING_EQUAL(c.torch_dtype, "bfloat16");
    CU_ASSERT_EQUAL(c.gen.n_eos, 0);
    const char *bad = "{\"text_config\": {\"hidden_size\": \"big\"}}";
    CU_ASSERT_EQUAL(em_qa_config_parse(bad, strlen(bad), NULL, 0, &c, &eb), EM_E_MODEL);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "text_config.hidden_size"));
    CU_ASSERT_EQUAL(em_qa_config_parse("{", 1, NULL, 0, &c, &eb), EM_E_MODEL);
    const char *sw = "{\"text_config\": {\"use_sliding_window\": true}}";
    CU_ASSERT_EQUAL(em_qa_config_parse(sw, strlen(sw), NULL, 0, &c, &eb), EM_E_MODEL);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "use_sliding_window"));
    const char *gen = "{\"eos_token_id\": 151645, \"top_p\": 1.5}";
    CU_ASSERT_EQUAL(em_qa_config_parse(cfg, strlen(cfg), gen, strlen(gen), &c, &eb), EM_E_MODEL);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "generation_config.json: top_p"));
    const char *gen2 = "{\"eos_token_id\": 151645, \"do_sample\": true}";
    CU_ASSERT_EQUAL(em_qa_config_parse(cfg, strlen(cfg), gen2, strlen(gen2), &c, &eb), EM_OK);
    CU_ASSERT_EQUAL(c.gen.n_eos, 1);
    CU_ASSERT_EQUAL(c.gen.eos_token_id[0], 151645);
    CU_ASSERT_EQUAL(c.gen.do_sample, 1);
    CU_ASSERT_EQUAL(c.gen.top_k, 50);
}

/* Builds a safetensors image: header JSON then data_len bytes of 0x3f. Caller frees. */
static uint8_t *st_image(const char *hdr, size_t data_len, size_t *len)
{
    size_t h = strlen(hdr);
    *len = 8 + h + data_len;
    uint8_t *b = malloc(*len);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)h >> (8 * i));
    memcpy(b + 8, hdr, h);
    memset(b + 8 + h, 0x3f, data_len);
    return b;
}

static void st_parse_case(const char *hdr, size_t data_len, em_err want, const char *needle)
{
    size_t len;
    uint8_t *b = st_image(hdr, data_len, &len);
    struct em_st *st = NULL;
    struct em_errbuf eb = {{0}};
    em_err rc = em_st_parse(b, len, "x.safetensors", &st, &eb);
    CU_ASSERT_EQUAL(rc, want);
    if (needle) CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, needle));
    if (rc != want || (needle && !strstr(eb.msg, needle)))
        printf("\n    header %s: got %s '%s'", hdr, em_err_name(rc), eb.msg);
    em_st_free(st);
    free(b);
}

static void st_parser_rejects_malformed_headers(void)
{
    st_parse_case("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                  "\"__metadata__\":{\"format\":\"pt\"}}", 24, EM_OK, NULL);
    st_parse_case("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,28]}}", 24,
                  EM_E_MODEL, "outside the data area");
    st_parse_case("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 24,
                  EM_E_MODEL, "needs 24");
    st_parse_case("{\"a\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,8]},"
                  "\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[4,12]}}", 12,
                  EM_E_MODEL, "overlap");
    st_parse_case("{\"a\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8,
                  EM_E_MODEL, "unsupported dtype");
    st_parse_case("{\"a\":{\"dtype\":\"F16\",\"shape\":[-1],\"data_offsets\":[0,2]}}", 2,
                  EM_E_MODEL, "bad shape");
    st_parse_case("{\"a\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[4,2]}}", 4,
                  EM_E_MODEL, "bad data_offsets");
    st_parse_case("{\"a\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,2]},"
                  "\"a\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[2,4]}}", 4,
                  EM_E_MODEL, "header JSON");
    st_parse_case("[1,2]", 0, EM_E_MODEL, "not an object");
    st_parse_case("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
                  EM_E_MODEL, "dims");
    st_parse_case("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
                  "\"data_offsets\":[0,4]}}", 4, EM_E_MODEL, "overflow");
    /* short buffers */
    struct em_st *st = NULL;
    uint8_t tiny[4] = {0};
    CU_ASSERT_EQUAL(em_st_parse(tiny, sizeof tiny, "t", &st, NULL), EM_E_MODEL);
    CU_ASSERT_PTR_NULL(st);
}

static void st_find_and_get(void)
{
    size_t len;
    uint8_t *b = st_image("{\"zz\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[4,8]},"
                          "\"aa\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}",
                          8, &len);
    struct em_st *st = NULL;
    CU_ASSERT_EQUAL_FATAL(em_st_parse(b, len, "x", &st, NULL), EM_OK);
    CU_ASSERT_EQUAL(em_st_count(st), 2);
    struct em_tensor t;
    CU_ASSERT_EQUAL(em_st_find(st, "zz", &t), EM_OK);
    CU_ASSERT_EQUAL(t.dtype, EM_DT_BF16);
    CU_ASSERT_PTR_EQUAL(t.data, b + len - 4);
    float v[2];
    em_tensor_read_f32(&t, 0, 2, v); /* 0x3f3f as bf16 = 0.74609375 */
    CU_ASSERT_DOUBLE_EQUAL(v[0], 0.74609375, 0);
    CU_ASSERT_EQUAL(em_st_find(st, "aa", &t), EM_OK);
    em_tensor_read_f32(&t, 1, 1, v); /* 0x3f3f as f16 = 1.811523... */
    CU_ASSERT_DOUBLE_EQUAL(v[0], 1.8115234375, 0);
    CU_ASSERT_EQUAL(em_st_find(st, "ab", &t), EM_E_NOTFOUND);
    em_st_free(st);
    free(b);
}

static void dtype_conversions(void)
{
    CU_ASSERT_DOUBLE_EQUAL(em_f16_to_f32(0x3c00), 1.0, 0);
    CU_ASSERT_DOUBLE_EQUAL(em_f16_to_f32(0xc000), -2.0, 0);
    CU_ASSERT_DOUBLE_EQUAL(em_f16_to_f32(0x0001), 5.960464477539063e-08, 0); /* subnormal */
    CU_ASSERT_DOUBLE_EQUAL(em_f16_to_f32(0x7bff), 65504.0, 0);
    CU_ASSERT_EQUAL(em_f32_to_bf16(1.0f), 0x3f80);
    CU_ASSERT_EQUAL(em_f32_to_bf16(1.00390625f), 0x3f80); /* tie rounds to even */
    CU_ASSERT_EQUAL(em_f32_to_bf16(1.01171875f), 0x3f82);
    CU_ASSERT_DOUBLE_EQUAL(em_bf16_to_f32(0xc040), -3.0, 0);
}

/* Fills a weight [out, in] of the given dtype with a pattern, at a deliberately odd address. */
static void *make_weight(int dtype, int out, int in, struct em_tensor *w, float *wf)
{
    size_t es = em_dtype_size(dtype), n = (size_t)out * in;
    uint8_t *mem = malloc(n * es + 3);
    uint8_t *p = mem + (dtype == EM_DT_F32 ? 2 : 1); /* unaligned on purpose */
    for (size_t i = 0; i < n; i++) {
        float v = (float)((int)((i * 7919u) % 61u) - 30) / 32.0f; /* exact in f16/bf16 */
        wf[i] = v;
        if (dtype == EM_DT_F32) {
            memcpy(p + 4 * i, &v, 4);
        } else {
            uint16_t h = dtype == EM_DT_BF16 ? em_f32_to_bf16(v) : 0;
            if (dtype == EM_DT_F16) { /* v = k/32, |k| <= 30: exact f16 by construction */
                uint32_t u;
                memcpy(&u, &v, 4);
                if (v == 0) h = (uint16_t)(u >> 16 & 0x8000u);
                else h = (uint16_t)(((u >> 16) & 0x8000u) | ((((u >> 23) & 0xffu) - 112u) << 10) |
                                    ((u >> 13) & 0x3ffu));
            }
            p[2 * i] = (uint8_t)h;
            p[2 * i + 1] = (uint8_t)(h >> 8);
        }
    }
    *w = (struct em_tensor){.name = "w", .dtype = dtype, .ndim = 2, .shape = {out, in},
                            .data = p, .nbytes = n * es};
    return mem;
}

static void matmul_matches_reference(void)
{
    static const int dts[] = {EM_DT_F32, EM_DT_BF16, EM_DT_F16};
    static const int ns[] = {1, 3, 7, 8, 17, 20};
    const int in = 37, out = 29;
    for (size_t d = 0; d < 3; d++) {
        float *wf = malloc((size_t)out * in * sizeof *wf);
        struct em_tensor w;
        void *mem = make_weight(dts[d], out, in, &w, wf);
        float bias_f[29];
        for (int j = 0; j < out; j++) bias_f[j] = (float)j / 8.0f - 1.0f;
        struct em_tensor b = {.name = "b", .dtype = EM_DT_F32, .ndim = 1, .shape = {out},
                              .data = bias_f, .nbytes = sizeof bias_f};
        for (size_t k = 0; k < sizeof ns / sizeof *ns; k++) {
            int n = ns[k];
            float *x = malloc((size_t)n * in * sizeof *x), *y = malloc((size_t)n * out * 4),
                  *r = malloc((size_t)n * out * 4);
            for (int i = 0; i < n * in; i++) x[i] = (float)((i * 31) % 17 - 8) / 7.0f;
            CU_ASSERT_EQUAL(em_matmul(y, x, n, in, out, &w, &b), EM_OK);
            CU_ASSERT_EQUAL(em_matmul_ref(r, x, n, in, out, &w, &b), EM_OK);
            /* the reference itself against the f32 copy of the weights */
            double maxe = 0;
            for (int i = 0; i < n; i++)
                for (int j = 0; j < out; j++) {
                    double s = bias_f[j];
                    for (int q = 0; q < in; q++) s += (double)x[i * in + q] * wf[j * in + q];
                    double e = fabs(s - r[i * out + j]);
                    if (e > maxe) maxe = e;
                }
            CU_ASSERT(maxe < 1e-5);
            char what[64];
            snprintf(what, sizeof what, "matmul %s n=%d [%d x %d]", em_dtype_name(dts[d]), n, out, in);
            CU_ASSERT(golden_cmp(what, y, r, (size_t)n * out, 1, MATMUL_TOL) <= MATMUL_TOL);
            free(x);
            free(y);
            free(r);
        }
        float y1[29];
        float x1[37] = {0};
        CU_ASSERT_EQUAL(em_matmul(y1, x1, 1, in + 1, out, &w, NULL), EM_E_ARG);
        CU_ASSERT_EQUAL(em_backend_cpu()->ops->matmul(NULL, y1, x1, 1, in, out, &w, NULL), EM_OK);
        free(mem);
        free(wf);
    }
}

/* A bf16 weight over EM_MM_TILE_BYTES once widened: the BLAS path runs several tiles. */
static void matmul_splits_large_weight_into_tiles(void)
{
    const int in = 1101, out = 2003, n = 9;
    CU_ASSERT_FATAL((size_t)in * out * 4 > EM_MM_TILE_BYTES);
    float *wf = malloc((size_t)in * out * sizeof *wf);
    struct em_tensor w;
    void *mem = make_weight(EM_DT_BF16, out, in, &w, wf);
    float *x = malloc((size_t)n * in * 4), *y = malloc((size_t)n * out * 4),
          *r = malloc((size_t)n * out * 4);
    for (int i = 0; i < n * in; i++) x[i] = (float)((i * 13) % 23 - 11) / 9.0f;
    CU_ASSERT_EQUAL(em_matmul(y, x, n, in, out, &w, NULL), EM_OK);
    CU_ASSERT_EQUAL(em_matmul_ref(r, x, n, in, out, &w, NULL), EM_OK);
    CU_ASSERT(golden_cmp("matmul BF16 n=9 [2003 x 1101] tiled", y, r, (size_t)n * out, 1,
                         MATMUL_TOL) <= MATMUL_TOL);
    free(x);
    free(y);
    free(r);
    free(mem);
    free(wf);
}

static CU_TestInfo tests[] = {
    {"loads_sharded_bf16", loads_sharded_bf16},
    {"loads_single_f32", loads_single_f32},
    {"rejects_truncated_shard", rejects_truncated_shard},
    {"rejects_bad_header_json", rejects_bad_header_json},
    {"rejects_shape_mismatch_naming_tensor", rejects_shape_mismatch_naming_tensor},
    {"rejects_missing_shard_and_bad_config", rejects_missing_shard_and_bad_config},
    {"rejects_index_pointing_at_wrong_shard", rejects_index_pointing_at_wrong_shard},
    {"rejects_index_naming_files_outside_the_dir", rejects_index_naming_files_outside_the_dir},
    {"published_7b_shapes", published_7b_shapes},
    {"config_rope_kv_heads_and_eos_follow_transformers", config_rope_kv_heads_and_eos_follow_transformers},
    {"config_sparse_takes_qwen2_defaults", config_sparse_takes_qwen2_defaults},
    {"st_parser_rejects_malformed_headers", st_parser_rejects_malformed_headers},
    {"st_find_and_get", st_find_and_get},
    {"dtype_conversions", dtype_conversions},
    {"matmul_matches_reference", matmul_matches_reference},
    {"matmul_splits_large_weight_into_tiles", matmul_splits_large_weight_into_tiles},
    CU_TEST_INFO_NULL,
};

const CU_SuiteInfo suite_loader = {"loader", init, clean, NULL, NULL, tests};
