/* tests/unit/test_gguf.c - model/loader/gguf: writer -> reader round trip for every metadata
 * type and every tensor type; malformed images refused with EM_E_MODEL (truncated at every
 * byte, bad magic/version, huge counts, string and array lengths past the end, misaligned,
 * overlapping and out-of-bounds tensor data, duplicates, nested arrays, bad dims/types,
 * bad alignment); the writer's argument checks and its all-or-nothing rename. Malformed
 * images are built byte by byte here (struct img) and parsed from an exact-size heap copy,
 * so ASan sees any read past the end. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/loader/gguf.h"
#include "model/kernels/quant.h"

static char dir[256];

static int init(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/em-gguf-XXXXXX", t && *t ? t : "/tmp");
    return mkdtemp(dir) ? 0 : 1;
}

static int clean(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}

/* ---- a byte builder for hand-made images ---- */

struct img {
    uint8_t b[8192];
    size_t n;
};

static void put(struct img *m, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) m->b[m->n++] = (uint8_t)(v >> (8 * i));
}
static void put_str(struct img *m, const char *s)
{
    put(m, strlen(s), 8);
    memcpy(m->b + m->n, s, strlen(s));
    m->n += strlen(s);
}
static void header(struct img *m, uint64_t n_t, uint64_t n_kv)
{
    m->n = 0;
    memcpy(m->b, "GGUF", 4);
    m->n = 4;
    put(m, 3, 4);
    put(m, n_t, 8);
    put(m, n_kv, 8);
}
static void tinfo(struct img *m, const char *name, uint32_t nd, const uint64_t *ne, uint32_t type,
                  uint64_t off)
{
    put_str(m, name);
    put(m, nd, 4);
    for (uint32_t d = 0; d < nd; d++) put(m, ne[d], 8);
    put(m, type, 4);
    put(m, off, 8);
}
static void pad_data(struct img *m, size_t align, size_t data_bytes)
{
    while (m->n % align) m->b[m->n++] = 0;
    for (size_t i = 0; i < data_bytes; i++) m->b[m->n++] = (uint8_t)i;
}

/* Parses the first len bytes from an exact-size copy; returns the code, detail in eb. */
static em_err parse_n(const struct img *m, size_t len, struct em_errbuf *eb)
{
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, m->b, len);
    struct em_gguf *g = NULL;
    em_err rc = em_gguf_parse(copy, len, "t.gguf", &g, eb);
    em_gguf_close(g);
    free(copy);
    return rc;
}

static void expect_refused(const struct img *m, const char *needle)
{
    struct em_errbuf eb = {{0}};
    em_err rc = parse_n(m, m->n, &eb);
    CU_ASSERT_EQUAL(rc, EM_E_MODEL);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "t.gguf"));
    if (!strstr(eb.msg, needle)) printf("\n    detail '%s' lacks '%s'", eb.msg, needle);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, needle));
}

/* A small valid image: one u32 pair, two F32 tensors "a" [2] and "b" [3] at 0 and 32. */
static void small_valid(struct img *m)
{
    uint64_t ne2[] = {2}, ne3[] = {3};
    header(m, 2, 1);
    put_str(m, "k");
    put(m, EM_GGUF_U32, 4);
    put(m, 7, 4);
    tinfo(m, "a", 1, ne2, EM_GGML_F32, 0);
    tinfo(m, "b", 1, ne3, EM_GGML_F32, 32);
    pad_data(m, 32, 44);
}

/* ---- round trip ---- */

static uint64_t test_gguf_bytes[8]; /* what give() writes per tensor */

struct data_ctx {
    const uint8_t *src[8];
    int short_at; /* tensor index that writes one byte too few, -1 none */
};

static em_err give(void *ctx, size_t i, struct em_gguf_sink *s, struct em_errbuf *eb)
{
    (void)eb;
    struct data_ctx *c = ctx;
    uint64_t n = test_gguf_bytes[i] - ((int)i == c->short_at);
    /* two pieces, to exercise appending */
    em_err rc = em_gguf_sink_write(s, c->src[i], (size_t)n / 2);
    return rc == EM_OK ? em_gguf_sink_write(s, c->src[i] + n / 2, (size_t)(n - n / 2)) : rc;
}
static void roundtrip_every_type(void)
{
    struct em_gguf_writer *w = NULL;
    CU_ASSERT_EQUAL_FATAL(em_gguf_writer_new(64, &w), EM_OK);
    uint8_t u8 = 200, i8 = 0x85 /* -123 */, u16[2] = {0x34, 0x12}, i16[2] = {0xfe, 0xff};
    CU_ASSERT_EQUAL(em_gguf_set_scalar(w, "s.u8", EM_GGUF_U8, &u8), EM_OK);
    CU_ASSERT_EQUAL(em_gguf_set_scalar(w, "s.i8", EM_GGUF_I8, &i8), EM_OK);
    CU_ASSERT_EQUAL(em_gguf_set_scalar(w, "s.u16", EM_GGUF_U16, u16), EM_OK);
    CU_ASSERT_EQUAL(em_gguf_set_scalar(w, "s.i16", EM_GGUF_I16, i16), EM_OK);
    CU_ASSERT_EQUAL(em_gguf_set_u32(w, "s.u32", 4000000000u), EM_OK);
    CU_ASSERT_EQUAL(em_gguf_set_i32(w, "s.i32", -2000000000), EM_OK);
    CU_ASSERT_EQUAL(em_gguf_set_f32(w, "s.f32", 0.1f), EM_OK);
    CU_ASSERT_EQUAL(em_gguf_set_bool(w, "s.bool", 1), EM_OK);
    CU_ASSERT_EQUAL(em_gguf_set_str(w, "s.str", "h\xc3\xa9llo\0x", 8), EM_OK);
    CU_ASSERT_EQUAL(em_gguf_set_u64(w, "s.u64", UINT64_MAX), EM_OK);
    int64_t i64 = INT64_MIN;
    CU_ASSERT_EQUAL(em_gguf_set_scalar(w, "s.i64", EM_GGUF_I64, &i64), EM_OK);
    CU_ASSERT_EQUAL(em_gguf_set_f64(w, "s.f64", 1e300), EM_OK);
    int32_t ai[3] = {-1, 0, 151646};
    float af[2] = {1.5f, -0.25f};
    double ad[1] = {3.25};
    uint8_t ab[3] = {1, 0, 1};
    CU_ASSERT_EQUAL(em_gguf_set_arr(w, "a.i32", EM_GGUF_I32, ai, 3), EM_OK);
    CU_ASSERT_EQUAL(em_gguf_set_arr(w, "a.f32", EM_GGUF_F32, af, 2), EM_OK);
    CU_ASSERT_EQUAL(em_gguf_set_arr(w, "a.f64", EM_GGUF_F64, ad, 1), EM_OK);
    CU_ASSERT_EQUAL(em_gguf_set_arr(w, "a.bool", EM_GGUF_BOOL, ab, 3), EM_OK);
    CU_ASSERT_EQUAL(em_gguf_set_arr(w, "a.empty", EM_GGUF_U64, NULL, 0), EM_OK);
    struct em_gguf_str ss[3] = {{"x", 1}, {"", 0}, {"\xc4\xa0the", 5}};
    CU_ASSERT_EQUAL(em_gguf_set_arr_str(w, "a.str", ss, 3), EM_OK);
    /* the writer refuses what a reader would */
    CU_ASSERT_EQUAL(em_gguf_set_u32(w, "s.u32", 1), EM_E_ARG);
    CU_ASSERT_EQUAL(em_gguf_set_u32(w, "", 1), EM_E_ARG);
    CU_ASSERT_EQUAL(em_gguf_set_arr(w, "a.bad", EM_GGUF_STR, ai, 1), EM_E_ARG);

    /* tensors: every type, 1-3 dims, PyTorch shapes */
    int64_t s0[2] = {3, 5}, s1[1] = {7}, s2[3] = {2, 3, 4}, s3[2] = {2, 64}, s4[2] = {3, 32};
    CU_ASSERT_EQUAL(em_gguf_add_tensor(w, "f32", EM_GGML_F32, 2, s0), EM_OK);
    CU_ASSERT_EQUAL(em_gguf_add_tensor(w, "f16", EM_GGML_F16, 1, s1), EM_OK);
    CU_ASSERT_EQUAL(em_gguf_add_tensor(w, "bf16", EM_GGML_BF16, 3, s2), EM_OK);
    CU_ASSERT_EQUAL(em_gguf_add_tensor(w, "q8", EM_GGML_Q8_0, 2, s3), EM_OK);
    CU_ASSERT_EQUAL(em_gguf_add_tensor(w, "q4", EM_GGML_Q4_0, 2, s4), EM_OK);
    CU_ASSERT_EQUAL(em_gguf_add_tensor(w, "q4", EM_GGML_F32, 1, s1), EM_E_ARG);  /* duplicate */
    CU_ASSERT_EQUAL(em_gguf_add_tensor(w, "odd", EM_GGML_Q8_0, 2, s0), EM_E_ARG); /* 5 % 32 */
    CU_ASSERT_EQUAL(em_gguf_add_tensor(w, "k3", 3 /* Q4_1 */, 1, s1), EM_E_ARG);
    CU_ASSERT_EQUAL(em_gguf_writer_n_tensors(w), 5);
    uint64_t want_bytes[5] = {60, 14, 48, 2 * 2 * 34, 3 * 18};
    static uint8_t src[5][256];
    struct data_ctx c = {.short_at = -1};
    for (int i = 0; i < 5; i++) {
        CU_ASSERT_EQUAL(em_gguf_writer_tensor_bytes(w, (size_t)i), want_bytes[i]);
        test_gguf_bytes[i] = want_bytes[i];
        for (int k = 0; k < 256; k++) src[i][k] = (uint8_t)(k * 7 + i * 31);
        c.src[i] = src[i];
    }
    char path[512];
    snprintf(path, sizeof path, "%s/rt.gguf", dir);
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(em_gguf_writer_write(w, path, give, &c, &eb), EM_OK);
    em_gguf_writer_free(w);

    struct em_gguf *g = NULL;
    em_err rc = em_gguf_open(path, &g, &eb);
    if (rc != EM_OK) printf("\n    %s", eb.msg);
    CU_ASSERT_EQUAL_FATAL(rc, EM_OK);
    CU_ASSERT_EQUAL(em_gguf_version(g), 3);
    CU_ASSERT_EQUAL(em_gguf_alignment(g), 64); /* the writer's general.alignment */
    CU_ASSERT_EQUAL(em_gguf_n_kv(g), 19);
    int64_t iv;
    CU_ASSERT_EQUAL(em_gguf_get_int(g, "s.u8", 0, 255, &iv, NULL), EM_OK);
    CU_ASSERT_EQUAL(iv, 200);
    CU_ASSERT_EQUAL(em_gguf_get_int(g, "s.i8", -128, 127, &iv, NULL), EM_OK);
    CU_ASSERT_EQUAL(iv, -123);
    CU_ASSERT_EQUAL(em_gguf_get_int(g, "s.u16", 0, 65535, &iv, NULL), EM_OK);
    CU_ASSERT_EQUAL(iv, 0x1234);
    CU_ASSERT_EQUAL(em_gguf_get_int(g, "s.i16", -5, 5, &iv, NULL), EM_OK);
    CU_ASSERT_EQUAL(iv, -2);
    CU_ASSERT_EQUAL(em_gguf_get_int(g, "s.u32", 0, INT64_MAX, &iv, NULL), EM_OK);
    CU_ASSERT_EQUAL(iv, 4000000000LL);
    CU_ASSERT_EQUAL(em_gguf_get_int(g, "s.i32", INT32_MIN, 0, &iv, NULL), EM_OK);
    CU_ASSERT_EQUAL(iv, -2000000000);
    CU_ASSERT_EQUAL(em_gguf_get_int(g, "s.i64", INT64_MIN, 0, &iv, NULL), EM_OK);
    CU_ASSERT_EQUAL(iv, INT64_MIN);
    CU_ASSERT_EQUAL(em_gguf_get_int(g, "s.u64", 0, INT64_MAX, &iv, &eb), EM_E_MODEL); /* > max */
    CU_ASSERT_EQUAL(em_gguf_find(g, "s.u64")->u, UINT64_MAX);
    CU_ASSERT_EQUAL(em_gguf_get_int(g, "s.i32", 0, 10, &iv, &eb), EM_E_MODEL); /* range */
    CU_ASSERT_EQUAL(em_gguf_get_int(g, "s.f32", 0, 10, &iv, &eb), EM_E_MODEL); /* type */
    CU_ASSERT_EQUAL(em_gguf_get_int(g, "nope", 0, 10, &iv, &eb), EM_E_NOTFOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "nope"));
    double f;
    CU_ASSERT_EQUAL(em_gguf_get_f64(g, "s.f32", &f, NULL), EM_OK);
    CU_ASSERT_EQUAL((float)f, 0.1f);
    CU_ASSERT_EQUAL(em_gguf_get_f64(g, "s.f64", &f, NULL), EM_OK);
    CU_ASSERT_EQUAL(f, 1e300);
    int b = 0;
    CU_ASSERT_EQUAL(em_gguf_get_bool(g, "s.bool", &b, NULL), EM_OK);
    CU_ASSERT_EQUAL(b, 1);
    struct em_gguf_str s;
    CU_ASSERT_EQUAL(em_gguf_get_str(g, "s.str", &s, NULL), EM_OK);
    CU_ASSERT_EQUAL(s.len, 8);
    CU_ASSERT(memcmp(s.s, "h\xc3\xa9llo\0x", 8) == 0);
    const struct em_gguf_value *v = em_gguf_find(g, "a.i32");
    CU_ASSERT_FATAL(v && v->type == EM_GGUF_ARR && v->arr_type == EM_GGUF_I32 && v->n == 3);
    CU_ASSERT_EQUAL(em_gguf_arr_int(v, 0), -1);
    CU_ASSERT_EQUAL(em_gguf_arr_int(v, 2), 151646);
    v = em_gguf_find(g, "a.f32");
    CU_ASSERT_FATAL(v && v->n == 2);
    CU_ASSERT_EQUAL(em_gguf_arr_f64(v, 1), -0.25);
    v = em_gguf_find(g, "a.f64");
    CU_ASSERT_FATAL(v && v->n == 1);
    CU_ASSERT_EQUAL(em_gguf_arr_f64(v, 0), 3.25);
    v = em_gguf_find(g, "a.bool");
    CU_ASSERT_FATAL(v && v->arr_type == EM_GGUF_BOOL && v->n == 3);
    CU_ASSERT(v->arr[0] == 1 && v->arr[1] == 0 && v->arr[2] == 1);
    v = em_gguf_find(g, "a.empty");
    CU_ASSERT_FATAL(v && v->arr_type == EM_GGUF_U64 && v->n == 0);
    v = em_gguf_find(g, "a.str");
    CU_ASSERT_FATAL(v && v->arr_type == EM_GGUF_STR && v->n == 3 && v->strs);
    CU_ASSERT(v->strs[0].len == 1 && v->strs[0].s[0] == 'x');
    CU_ASSERT_EQUAL(v->strs[1].len, 0);
    CU_ASSERT(v->strs[2].len == 5 && memcmp(v->strs[2].s, "\xc4\xa0the", 5) == 0);
    /* key order is the file order */
    CU_ASSERT_STRING_EQUAL(em_gguf_key(g, 0), "general.alignment");
    CU_ASSERT_STRING_EQUAL(em_gguf_key(g, 1), "s.u8");
    CU_ASSERT_STRING_EQUAL(em_gguf_key(g, 18), "a.str");

    CU_ASSERT_EQUAL_FATAL(em_gguf_n_tensors(g), 5);
    const char *names[5] = {"f32", "f16", "bf16", "q8", "q4"};
    const int wt[5] = {EM_WT_F32, EM_WT_F16, EM_WT_BF16, EM_WT_Q8_0, EM_WT_Q4_0};
    const uint8_t *first = NULL;
    for (int i = 0; i < 5; i++) {
        const struct em_gguf_tensor *t = em_gguf_find_tensor(g, names[i]);
        CU_ASSERT_FATAL(t != NULL);
        CU_ASSERT_PTR_EQUAL(t, em_gguf_tensor_at(g, (size_t)i));
        CU_ASSERT_EQUAL(t->nbytes, want_bytes[i]);
        CU_ASSERT_EQUAL(t->offset % 64, 0);
        if (i == 0) first = t->data;
        CU_ASSERT_EQUAL(((const uint8_t *)t->data - first) % 64, 0);
        CU_ASSERT(memcmp(t->data, src[i], (size_t)want_bytes[i]) == 0);
        struct em_tensor view;
        em_gguf_tensor_view(t, &view);
        CU_ASSERT_EQUAL(view.dtype, wt[i]);
        CU_ASSERT_EQUAL(view.nbytes, want_bytes[i]);
        CU_ASSERT_EQUAL(em_dtype_nbytes(view.dtype, em_tensor_numel(&view)), want_bytes[i]);
    }
    struct em_tensor view;
    em_gguf_tensor_view(em_gguf_find_tensor(g, "bf16"), &view);
    CU_ASSERT(view.ndim == 3 && view.shape[0] == 2 && view.shape[1] == 3 && view.shape[2] == 4);
    CU_ASSERT_EQUAL(em_gguf_find_tensor(g, "bf16")->ne[0], 4); /* ggml order inside */
    CU_ASSERT_PTR_NULL(em_gguf_find_tensor(g, "missing"));
    em_gguf_close(g);
}

static void write_is_all_or_nothing(void)
{
    struct em_gguf_writer *w = NULL;
    CU_ASSERT_EQUAL_FATAL(em_gguf_writer_new(32, &w), EM_OK);
    CU_ASSERT_EQUAL(em_gguf_writer_new(24, &(struct em_gguf_writer *){NULL}), EM_E_ARG);
    int64_t sh[1] = {8};
    CU_ASSERT_EQUAL(em_gguf_add_tensor(w, "a", EM_GGML_F32, 1, sh), EM_OK);
    CU_ASSERT_EQUAL(em_gguf_add_tensor(w, "b", EM_GGML_F32, 1, sh), EM_OK);
    static uint8_t src[64];
    struct data_ctx c = {.src = {src, src}, .short_at = 1};
    test_gguf_bytes[0] = test_gguf_bytes[1] = 32;
    char path[512], cmd[600];
    snprintf(path, sizeof path, "%s/short.gguf", dir);
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL(em_gguf_writer_write(w, path, give, &c, &eb), EM_E_INTERNAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "'b'"));
    struct stat sb;
    CU_ASSERT_NOT_EQUAL(stat(path, &sb), 0);
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -q tmp", dir);
    CU_ASSERT_NOT_EQUAL(system(cmd), 0); /* the temporary file is gone */
    /* an unwritable destination */
    c.short_at = -1;
    CU_ASSERT_EQUAL(em_gguf_writer_write(w, "/nonexistent-dir/x.gguf", give, &c, &eb), EM_E_IO);
    CU_ASSERT_EQUAL(em_gguf_writer_write(w, path, give, &c, &eb), EM_OK);
    CU_ASSERT_EQUAL(stat(path, &sb), 0);
    em_gguf_writer_free(w);
    struct em_gguf *g = NULL;
    CU_ASSERT_EQUAL(em_gguf_open("/nonexistent-dir/x.gguf", &g, &eb), EM_E_IO);
    CU_ASSERT_PTR_NULL(g);
}

/* ---- malformed ---- */

static void small_valid_parses(void)
{
    struct img m;
    small_valid(&m);
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL(parse_n(&m, m.n, &eb), EM_OK);
    /* metadata only: no tensors, so no padding to a data section is needed */
    header(&m, 0, 1);
    put_str(&m, "k");
    put(&m, EM_GGUF_U8, 4);
    put(&m, 1, 1);
    CU_ASSERT_EQUAL(parse_n(&m, m.n, &eb), EM_OK);
}

static void truncated_at_every_byte(void)
{
    struct img m;
    small_valid(&m);
    int bad = 0;
    for (size_t len = 0; len < m.n; len++) {
        struct em_errbuf eb = {{0}};
        em_err rc = parse_n(&m, len, &eb);
        if (rc != EM_E_MODEL || !strstr(eb.msg, "t.gguf")) {
            if (!bad) printf("\n    length %zu: %s (%s)", len, em_err_str(rc), eb.msg);
            bad++;
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
}

static void bad_magic_and_version(void)
{
    struct img m;
    small_valid(&m);
    m.b[0] = 'X';
    expect_refused(&m, "magic");
    small_valid(&m);
    m.b[4] = 2;
    expect_refused(&m, "version 2");
}

static void huge_counts(void)
{
    struct img m;
    header(&m, UINT64_MAX, 0);
    expect_refused(&m, "tensors");
    header(&m, 0, 1ull << 40);
    expect_refused(&m, "metadata");
    header(&m, 0, 200); /* within the limit but more than the bytes could hold */
    pad_data(&m, 1, 100);
    expect_refused(&m, "metadata");
}

static void lengths_past_the_end(void)
{
    struct img m;
    header(&m, 0, 1);
    put(&m, 1ull << 62, 8); /* key length */
    expect_refused(&m, "limit");
    header(&m, 0, 1);
    put(&m, 100, 8); /* key length within the limit, past the end */
    put(&m, 0, 8);
    expect_refused(&m, "past the end");
    header(&m, 0, 1);
    put_str(&m, "k");
    put(&m, EM_GGUF_STR, 4);
    put(&m, 1000, 8); /* string value past the end */
    put(&m, 0, 8);
    expect_refused(&m, "past the end");
    header(&m, 0, 1);
    put_str(&m, "k");
    put(&m, EM_GGUF_ARR, 4);
    put(&m, EM_GGUF_U32, 4);
    put(&m, 1000000, 8); /* array of u32 past the end */
    put(&m, 0, 8);
    expect_refused(&m, "past the end");
    header(&m, 0, 1);
    put_str(&m, "k");
    put(&m, EM_GGUF_ARR, 4);
    put(&m, EM_GGUF_STR, 4);
    put(&m, 1ull << 33, 8); /* array count over the limit */
    expect_refused(&m, "limit");
    header(&m, 0, 1);
    put_str(&m, "k");
    put(&m, EM_GGUF_ARR, 4);
    put(&m, EM_GGUF_STR, 4);
    put(&m, 3, 8);
    put_str(&m, "a");
    put(&m, 99, 8); /* second string past the end */
    put(&m, 0, 8);
    put(&m, 0, 8);
    expect_refused(&m, "past the end");
    /* tensor name past the end */
    uint64_t ne[1] = {2};
    header(&m, 1, 0);
    tinfo(&m, "a", 1, ne, EM_GGML_F32, 0);
    m.b[24] = 200; /* the name's length byte */
    expect_refused(&m, "past the end");
}

static void bad_values(void)
{
    struct img m;
    header(&m, 0, 1);
    put_str(&m, "k");
    put(&m, 13, 4); /* unknown type */
    put(&m, 0, 8);
    expect_refused(&m, "unknown value type 13");
    header(&m, 0, 1);
    put_str(&m, "k");
    put(&m, EM_GGUF_ARR, 4);
    put(&m, EM_GGUF_ARR, 4); /* nested */
    put(&m, 1, 8);
    put(&m, 0, 8);
    put(&m, 0, 8);
    expect_refused(&m, "nested");
    header(&m, 0, 2);
    for (int i = 0; i < 2; i++) {
        put_str(&m, "dup");
        put(&m, EM_GGUF_U8, 4);
        put(&m, 1, 1);
    }
    expect_refused(&m, "duplicate key 'dup'");
    header(&m, 0, 1);
    put_str(&m, "general.alignment");
    put(&m, EM_GGUF_U32, 4);
    put(&m, 48, 4);
    expect_refused(&m, "alignment");
    header(&m, 0, 1);
    put_str(&m, "general.alignment");
    put(&m, EM_GGUF_U64, 4); /* right value, wrong type */
    put(&m, 32, 8);
    expect_refused(&m, "alignment");
    header(&m, 0, 1);
    m.b[m.n++] = 0; /* empty key */
    put(&m, 0, 7);
    put(&m, EM_GGUF_U8, 4);
    put(&m, 1, 1);
    put(&m, 0, 8);
    expect_refused(&m, "empty");
}

static void bad_tensors(void)
{
    struct img m;
    uint64_t ne2[] = {2}, ne40[] = {40, 2}, zero[] = {0}, ne5[] = {1, 1, 1, 1, 1};
    header(&m, 1, 0);
    tinfo(&m, "a", 1, ne2, EM_GGML_F32, 1); /* misaligned */
    pad_data(&m, 32, 64);
    expect_refused(&m, "not a multiple of the alignment");
    header(&m, 1, 0);
    tinfo(&m, "a", 1, ne2, EM_GGML_F32, 64); /* starts past the data */
    pad_data(&m, 32, 8);
    expect_refused(&m, "outside");
    header(&m, 1, 0);
    tinfo(&m, "a", 1, ne2, EM_GGML_F32, 0); /* ends past the data */
    pad_data(&m, 32, 7);
    expect_refused(&m, "outside");
    header(&m, 1, 0);
    tinfo(&m, "a", 1, ne2, EM_GGML_F32, UINT64_MAX - 31); /* offset + size overflows */
    pad_data(&m, 32, 8);
    expect_refused(&m, "outside");
    header(&m, 2, 0);
    tinfo(&m, "a", 1, ne40, EM_GGML_F32, 0); /* 40 floats: 160 bytes */
    tinfo(&m, "b", 1, ne2, EM_GGML_F32, 128); /* inside a */
    pad_data(&m, 32, 256);
    expect_refused(&m, "overlap");
    header(&m, 2, 0);
    tinfo(&m, "a", 1, ne2, EM_GGML_F32, 0);
    tinfo(&m, "a", 1, ne2, EM_GGML_F32, 32);
    pad_data(&m, 32, 64);
    expect_refused(&m, "duplicate tensor 'a'");
    header(&m, 1, 0);
    tinfo(&m, "a", 2, ne40, EM_GGML_Q8_0, 0); /* 40 % 32 */
    pad_data(&m, 32, 256);
    expect_refused(&m, "multiple of the 32-weight block");
    header(&m, 1, 0);
    tinfo(&m, "a", 1, ne2, 12 /* Q4_K */, 0);
    pad_data(&m, 32, 64);
    expect_refused(&m, "ggml type 12");
    header(&m, 1, 0);
    tinfo(&m, "a", 1, zero, EM_GGML_F32, 0);
    pad_data(&m, 32, 64);
    expect_refused(&m, "ne[0] = 0");
    header(&m, 1, 0);
    tinfo(&m, "a", 5, ne5, EM_GGML_F32, 0);
    pad_data(&m, 32, 64);
    expect_refused(&m, "5 dims");
    uint64_t big[] = {1ull << 40, 1ull << 40};
    header(&m, 1, 0);
    tinfo(&m, "a", 2, big, EM_GGML_F32, 0);
    pad_data(&m, 32, 64);
    expect_refused(&m, "overflows");
}

static CU_TestInfo tests[] = {
    {"roundtrip_every_type", roundtrip_every_type},
    {"write_is_all_or_nothing", write_is_all_or_nothing},
    {"small_valid_parses", small_valid_parses},
    {"truncated_at_every_byte", truncated_at_every_byte},
    {"bad_magic_and_version", bad_magic_and_version},
    {"huge_counts", huge_counts},
    {"lengths_past_the_end", lengths_past_the_end},
    {"bad_values", bad_values},
    {"bad_tensors", bad_tensors},
    CU_TEST_INFO_NULL,
};

const CU_SuiteInfo suite_gguf = {"gguf", init, clean, NULL, NULL, tests};
