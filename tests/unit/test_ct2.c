/* tests/unit/test_ct2.c - model/loader/ct2 (CTranslate2 model.bin): a small file built here
 * parses with every field right; every truncation of it, oversized counts and ranks, unknown
 * versions and dtypes, size/shape disagreement, duplicate names, dangling aliases, trailing
 * bytes and garbage are refused with EM_E_MODEL; the real Whisper tiny.en file
 * (deploy/fetch-whisper.sh) parses with the variables the whisper family binds. */
#include <CUnit/CUnit.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "model/loader/ct2.h"
#include "tests/golden/golden.h"

struct wbuf {
    uint8_t b[4096];
    size_t n;
};

static void put(struct wbuf *w, const void *p, size_t n)
{
    memcpy(w->b + w->n, p, n);
    w->n += n;
}
static void put_u8(struct wbuf *w, uint8_t v) { put(w, &v, 1); }
static void put_u16(struct wbuf *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    put(w, b, 2);
}
static void put_u32(struct wbuf *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(w, b, 4);
}
static void put_str(struct wbuf *w, const char *s)
{
    put_u16(w, (uint16_t)(strlen(s) + 1));
    put(w, s, strlen(s) + 1);
}

/* version 6, "WhisperSpec" rev 3: "a/w" f32 [2, 3]; "a/n" int16 scalar 6; "b" f16 [2];
 * alias "c" -> "a/w". Offsets of fields the corruption tests patch are returned. */
struct layout {
    size_t nvars_at, rank_at, dtype_at, nbytes_at, naliases_at;
};
static void build(struct wbuf *w, struct layout *l)
{
    w->n = 0;
    put_u32(w, 6);
    put_str(w, "WhisperSpec");
    put_u32(w, 3);
    l->nvars_at = w->n;
    put_u32(w, 3);
    put_str(w, "a/w");
    l->rank_at = w->n;
    put_u8(w, 2);
    put_u32(w, 2);
    put_u32(w, 3);
    l->dtype_at = w->n;
    put_u8(w, EM_CT2_F32);
    l->nbytes_at = w->n;
    put_u32(w, 24);
    for (int i = 0; i < 6; i++) {
        float f = (float)i + 0.5f;
        put(w, &f, 4);
    }
    put_str(w, "a/n");
    put_u8(w, 0);
    put_u8(w, EM_CT2_I16);
    put_u32(w, 2);
    put_u16(w, 6);
    put_str(w, "b");
    put_u8(w, 1);
    put_u32(w, 2);
    put_u8(w, EM_CT2_F16);
    put_u32(w, 4);
    put_u16(w, 0x3c00); /* 1.0 */
    put_u16(w, 0xc000); /* -2.0 */
    l->naliases_at = w->n;
    put_u32(w, 1);
    put_str(w, "c");
    put_str(w, "a/w");
}

static void patch_u32(struct wbuf *w, size_t at, uint32_t v)
{
    w->b[at] = (uint8_t)v;
    w->b[at + 1] = (uint8_t)(v >> 8);
    w->b[at + 2] = (uint8_t)(v >> 16);
    w->b[at + 3] = (uint8_t)(v >> 24);
}

/* Parses and expects EM_E_MODEL with a message containing want. */
static void refused(const struct wbuf *w, const char *want)
{
    struct em_ct2 *c = (struct em_ct2 *)1;
    struct em_errbuf eb = {{0}};
    em_err rc = em_ct2_parse(w->b, w->n, "t.bin", &c, &eb);
    CU_ASSERT_EQUAL(rc, EM_E_MODEL);
    CU_ASSERT_PTR_NULL(c);
    if (want && !strstr(eb.msg, want)) {
        printf("\n    message '%s' lacks '%s'", eb.msg, want);
        CU_FAIL("message");
    }
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "t.bin"));
}

static void parses_built_file(void)
{
    struct wbuf w;
    struct layout l;
    build(&w, &l);
    struct em_ct2 *c = NULL;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(em_ct2_parse(w.b, w.n, "t.bin", &c, &eb), EM_OK);
    CU_ASSERT_STRING_EQUAL(em_ct2_spec(c), "WhisperSpec");
    CU_ASSERT_EQUAL(em_ct2_version(c), 6);
    CU_ASSERT_EQUAL(em_ct2_revision(c), 3);
    CU_ASSERT_EQUAL(em_ct2_count(c), 3);
    CU_ASSERT_EQUAL(em_ct2_alias_count(c), 1);
    struct em_tensor t;
    CU_ASSERT_EQUAL_FATAL(em_ct2_tensor(c, "a/w", 2, &t, &eb), EM_OK);
    CU_ASSERT_EQUAL(t.dtype, EM_DT_F32);
    CU_ASSERT_EQUAL(t.shape[0], 2);
    CU_ASSERT_EQUAL(t.shape[1], 3);
    float v[6];
    em_tensor_read_f32(&t, 0, 6, v);
    CU_ASSERT_DOUBLE_EQUAL(v[5], 5.5, 0);
    struct em_tensor a;
    CU_ASSERT_EQUAL(em_ct2_tensor(c, "c", 2, &a, &eb), EM_OK); /* the alias */
    CU_ASSERT_PTR_EQUAL(a.data, t.data);
    CU_ASSERT_EQUAL_FATAL(em_ct2_tensor(c, "b", 1, &t, &eb), EM_OK);
    em_tensor_read_f32(&t, 0, 2, v);
    CU_ASSERT_DOUBLE_EQUAL(v[0], 1.0, 0);
    CU_ASSERT_DOUBLE_EQUAL(v[1], -2.0, 0);
    long n = 0;
    CU_ASSERT_EQUAL(em_ct2_int(c, "a/n", &n, &eb), EM_OK);
    CU_ASSERT_EQUAL(n, 6);
    /* wrong kind of variable: clear errors naming it */
    CU_ASSERT_EQUAL(em_ct2_int(c, "a/w", &n, &eb), EM_E_MODEL);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "a/w"));
    CU_ASSERT_EQUAL(em_ct2_tensor(c, "a/n", -1, &t, &eb), EM_E_MODEL);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "int16"));
    CU_ASSERT_EQUAL(em_ct2_tensor(c, "a/w", 3, &t, &eb), EM_E_MODEL);
    CU_ASSERT_EQUAL(em_ct2_tensor(c, "nope", -1, &t, &eb), EM_E_NOTFOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "nope"));
    em_ct2_free(c);
}

static void every_truncation_is_refused(void)
{
    struct wbuf w;
    struct layout l;
    build(&w, &l);
    size_t full = w.n;
    for (size_t n = 0; n < full; n++) {
        w.n = n;
        struct em_ct2 *c = NULL;
        struct em_errbuf eb = {{0}};
        em_err rc = em_ct2_parse(w.b, n, "t.bin", &c, &eb);
        if (rc != EM_E_MODEL) printf("\n    prefix of %zu bytes: rc %d", n, (int)rc);
        CU_ASSERT_EQUAL(rc, EM_E_MODEL);
        CU_ASSERT_PTR_NULL(c);
    }
    CU_ASSERT_EQUAL(em_ct2_parse(NULL, 0, "t.bin", &(struct em_ct2 *){NULL}, NULL), EM_E_MODEL);
}

static void oversized_and_wrong_fields_are_refused(void)
{
    struct wbuf w;
    struct layout l;
    build(&w, &l);
    patch_u32(&w, l.nvars_at, 0xffffffffu);
    refused(&w, "variables");
    build(&w, &l);
    patch_u32(&w, l.nvars_at, 1000); /* more than the file can hold */
    refused(&w, "truncated");
    build(&w, &l);
    w.b[l.rank_at] = 9;
    refused(&w, "rank 9");
    build(&w, &l);
    w.b[l.dtype_at] = 7;
    refused(&w, "unknown dtype id 7");
    build(&w, &l);
    patch_u32(&w, l.nbytes_at, 20);
    refused(&w, "has 20 bytes");
    build(&w, &l);
    patch_u32(&w, l.nbytes_at, 0xfffffff0u);
    refused(&w, "a/w");
    build(&w, &l);
    patch_u32(&w, l.naliases_at, 0x7fffffffu);
    refused(&w, "aliases");
    build(&w, &l);
    patch_u32(&w, 0, 3);
    refused(&w, "binary version 3");
    build(&w, &l);
    patch_u32(&w, 0, 7);
    refused(&w, "binary version 7");
    build(&w, &l);
    put_u8(&w, 0);
    refused(&w, "1 bytes after the aliases");
}

static void bad_names_and_aliases_are_refused(void)
{
    struct wbuf w;
    struct layout l;
    build(&w, &l);
    /* the alias target "a/w" -> "a/x" (same length): dangles */
    w.b[w.n - 2] = 'x';
    refused(&w, "missing variable 'a/x'");
    build(&w, &l);
    /* the alias name "c" -> "b": shadows a variable */
    w.b[w.n - 4 - 2 - 2] = 'b';
    refused(&w, "shadows");
    build(&w, &l);
    /* the second variable's name "a/n" -> "a/w": a duplicate */
    size_t at = l.nbytes_at + 4 + 24 + 2 + 2;
    CU_ASSERT_EQUAL(w.b[at], 'n');
    w.b[at] = 'w';
    refused(&w, "appears twice");
    build(&w, &l);
    w.b[at + 1] = 'z'; /* no NUL where the length says */
    refused(&w, "NUL");
    build(&w, &l);
    w.b[at - 1] = 0; /* an embedded NUL */
    refused(&w, "NUL");
    build(&w, &l);
    w.b[at - 3] = 0; /* length 0 */
    w.b[at - 4] = 0;
    refused(&w, "length 0");
}

static void garbage_is_refused(void)
{
    uint8_t g[512];
    uint32_t x = 12345;
    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < sizeof g; i++) {
            x = x * 1103515245u + 12345u;
            g[i] = (uint8_t)(x >> 16);
        }
        if (round & 1) { /* a plausible header, garbage after it */
            g[0] = 6, g[1] = g[2] = g[3] = 0;
        }
        struct em_ct2 *c = NULL;
        em_err rc = em_ct2_parse(g, sizeof g, "g.bin", &c, NULL);
        CU_ASSERT_EQUAL(rc, EM_E_MODEL);
        em_ct2_free(c);
    }
}

static void opens_real_whisper_tiny_en(void)
{
    char dir[1024], path[1200];
    CU_ASSERT_EQUAL_FATAL(golden_whisper_dir(dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/model.bin", dir);
    struct em_ct2 *c = NULL;
    struct em_errbuf eb = {{0}};
    em_err rc = em_ct2_open(path, &c, &eb);
    if (rc != EM_OK) printf("\n    %s", eb.msg);
    CU_ASSERT_EQUAL_FATAL(rc, EM_OK);
    CU_ASSERT_STRING_EQUAL(em_ct2_spec(c), "WhisperSpec");
    CU_ASSERT_EQUAL(em_ct2_count(c), 148);
    struct em_tensor emb, proj, conv1;
    CU_ASSERT_EQUAL(em_ct2_tensor(c, "decoder/embeddings/weight", 2, &emb, &eb), EM_OK);
    CU_ASSERT_EQUAL(emb.shape[0], 51864);
    CU_ASSERT_EQUAL(emb.shape[1], 384);
    CU_ASSERT_EQUAL(emb.dtype, EM_DT_F16);
    CU_ASSERT_EQUAL(em_ct2_tensor(c, "decoder/projection/weight", 2, &proj, &eb), EM_OK);
    CU_ASSERT_PTR_EQUAL(proj.data, emb.data);
    CU_ASSERT_EQUAL(em_ct2_tensor(c, "encoder/conv1/weight", 3, &conv1, &eb), EM_OK);
    CU_ASSERT_EQUAL(conv1.shape[1], 80);
    long heads = 0, act = -1;
    CU_ASSERT_EQUAL(em_ct2_int(c, "encoder/num_heads", &heads, &eb), EM_OK);
    CU_ASSERT_EQUAL(heads, 6);
    CU_ASSERT_EQUAL(em_ct2_int(c, "decoder/activation", &act, &eb), EM_OK);
    CU_ASSERT_EQUAL(act, 3); /* GELU (exact) */
    em_ct2_free(c);
    CU_ASSERT_EQUAL(em_ct2_open("/nonexistent/model.bin", &c, &eb), EM_E_NOTFOUND);
}

static CU_TestInfo tests[] = {
    {"parses_built_file", parses_built_file},
    {"every_truncation_is_refused", every_truncation_is_refused},
    {"oversized_and_wrong_fields_are_refused", oversized_and_wrong_fields_are_refused},
    {"bad_names_and_aliases_are_refused", bad_names_and_aliases_are_refused},
    {"garbage_is_refused", garbage_is_refused},
    {"opens_real_whisper_tiny_en", opens_real_whisper_tiny_en},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_ct2 = {"ct2", NULL, NULL, NULL, NULL, tests};
