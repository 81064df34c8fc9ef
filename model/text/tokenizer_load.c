/* model/text/tokenizer_load.c - reads the tokenizer files of a checkpoint directory.
 *
 * tokenizer.json (HF tokenizers): model.vocab {token: id}, model.merges ["a b" | [a, b]],
 * model.ignore_merges, added_tokens [{id, content, special}].
 * vocab.json {token: id} + merges.txt ("#version" header, then "a b" per line, rank = line
 * index) + tokenizer_config.json added_tokens_decoder {"id": {content, special}} +
 * added_tokens.json {content: id}.
 * Regular tokens are written in the GPT-2 byte alphabet (spec section 7) and stored here as
 * raw bytes; a token with a character outside that alphabet is kept as its UTF-8 bytes (what
 * the HF ByteLevel decoder does with it). Everything is untrusted: sizes, ids and token
 * lengths are bounded and each failure names the file and the item. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>

#include "model/text/tokenizer_impl.h"

static bool byte_kept(int b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
}

/* GPT-2 bytes_to_unicode inverse: code point -> byte, or -1. */
static int cp_to_byte(int32_t cp)
{
    if (cp >= 0 && cp < 256 && byte_kept(cp)) return cp;
    if (cp < 256 || cp >= 256 + 68) return -1;
    int n = cp - 256;
    for (int b = 0; b < 256; b++)
        if (!byte_kept(b) && n-- == 0) return b;
    return -1;
}

static size_t pow2_at_least(size_t n)
{
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

static em_err read_file(const char *path, bool optional, char **buf, size_t *len,
                        struct em_errbuf *eb)
{
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (optional && errno == ENOENT) return EM_E_NOTFOUND;
        return em_errf(eb, EM_E_IO, "%s: %s", path, strerror(errno));
    }
    struct stat st;
    em_err rc = EM_OK;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = em_errf(eb, EM_E_IO, "%s: not a regular file", path);
    } else if ((unsigned long long)st.st_size > EM_TOK_MAX_FILE_BYTES) {
        rc = em_errf(eb, EM_E_TOO_LONG, "%s: %lld bytes, limit %u", path,
                     (long long)st.st_size, EM_TOK_MAX_FILE_BYTES);
    } else if (!(*buf = malloc((size_t)st.st_size + 1))) {
        rc = EM_E_NOMEM;
    } else if (fread(*buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        rc = em_errf(eb, EM_E_IO, "%s: short read", path);
    } else {
        *len = (size_t)st.st_size;
        (*buf)[*len] = '\0';
    }
    fclose(f);
    if (rc != EM_OK) {
        free(*buf);
        *buf = NULL;
    }
    return rc;
}

static em_err parse_json(const char *path, const char *buf, size_t len, json_t **out,
                         struct em_errbuf *eb)
{
    json_error_t je;
    /* ints as reals: HF configs hold integers beyond int64 (model_max_length 1e30) */
    *out = json_loadb(buf, len, JSON_DECODE_INT_AS_REAL, &je);
    if (!*out)
        return em_errf(eb, EM_E_FORMAT, "%s: line %d: %s", path, je.line, je.text);
    return EM_OK;
}

static em_err load_json_file(const char *path, bool optional, json_t **out,
                             struct em_errbuf *eb)
{
    char *buf;
    size_t len;
    *out = NULL;
    em_err rc = read_file(path, optional, &buf, &len, eb);
    if (rc != EM_OK) return rc;
    rc = parse_json(path, buf, len, out, eb);
    free(buf);
    return rc;
}

/* ---- building ---- */

static em_err arena_add(struct em_tok *t, const char *s, size_t n, uint32_t *off)
{
    if (t->arena_len + n > t->arena_cap) {
        size_t cap = t->arena_cap ? t->arena_cap : 1 << 16;
        while (cap < t->arena_len + n) cap *= 2;
        if (cap > UINT32_MAX) return EM_E_TOO_LONG;
        char *a = realloc(t->arena, cap);
        if (!a) return EM_E_NOMEM;
        t->arena = a;
        t->arena_cap = cap;
    }
    memcpy(t->arena + t->arena_len, s, n);
    *off = (uint32_t)t->arena_len;
    t->arena_len += n;
    return EM_OK;
}

static em_err ensure_id(struct em_tok *t, int64_t id, const char *file, struct em_errbuf *eb)
{
    if (id < 0 || id >= EM_TOK_MAX_VOCAB)
        return em_errf(eb, EM_E_MODEL, "%s: token id %lld out of range [0, %d)", file,
                       (long long)id, EM_TOK_MAX_VOCAB);
    if (id < t->n_ids) return EM_OK;
    if ((size_t)id >= t->ent_cap) {
        size_t cap = pow2_at_least((size_t)id + 1);
        struct tok_entry *e = realloc(t->ent, cap * sizeof *e);
        if (!e) return EM_E_NOMEM;
        memset(e + t->ent_cap, 0, (cap - t->ent_cap) * sizeof *e);
        t->ent = e;
        t->ent_cap = cap;
    }
    t->n_ids = (int32_t)id + 1;
    return EM_OK;
}

/* GPT-2 alphabet -> raw bytes into out (room EM_TOK_MAX_TOKEN_BYTES). */
static em_err gpt2_decode(const char *s, size_t n, char *out, size_t *out_len,
                          const char *file, struct em_errbuf *eb)
{
    size_t k = 0;
    bool mapped = true;
    for (size_t i = 0; i < n && mapped;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t w = utf8proc_iterate((const utf8proc_uint8_t *)s + i,
                                              (utf8proc_ssize_t)(n - i), &cp);
        if (w <= 0) return em_errf(eb, EM_E_FORMAT, "%s: token is not UTF-8", file);
        int b = cp_to_byte(cp);
        if (b < 0) mapped = false;
        else if (k == EM_TOK_MAX_TOKEN_BYTES) goto too_long;
        else out[k++] = (char)b;
        i += (size_t)w;
    }
    if (!mapped) {
        if (n > EM_TOK_MAX_TOKEN_BYTES) goto too_long;
        memcpy(out, s, n);
        k = n;
    }
    if (k == 0) return em_errf(eb, EM_E_MODEL, "%s: empty token", file);
    *out_len = k;
    return EM_OK;
too_long:
    return em_errf(eb, EM_E_TOO_LONG, "%s: token of %zu bytes, limit %d", file, n,
                   EM_TOK_MAX_TOKEN_BYTES);
}

static em_err add_regular(struct em_tok *t, const char *gpt2, size_t n, int64_t id,
                          const char *file, struct em_errbuf *eb)
{
    char raw[EM_TOK_MAX_TOKEN_BYTES];
    size_t rl;
    em_err rc;
    if (n > 4 * EM_TOK_MAX_TOKEN_BYTES)
        return em_errf(eb, EM_E_TOO_LONG, "%s: token of %zu bytes, limit %d", file, n,
                       EM_TOK_MAX_TOKEN_BYTES);
    /* Whisper's multilingual vocabulary holds "" at 50256, an id no merge makes and that
     * decodes to nothing: it stays absent (decode skips it) but counts in the id range */
    if (n == 0) return ensure_id(t, id, file, eb);
    if ((rc = gpt2_decode(gpt2, n, raw, &rl, file, eb)) != EM_OK) return rc;
    if ((rc = ensure_id(t, id, file, eb)) != EM_OK) return rc;
    struct tok_entry *e = &t->ent[id];
    if (e->present) return em_errf(eb, EM_E_MODEL, "%s: token id %lld twice", file, (long long)id);
    if ((rc = arena_add(t, raw, rl, &e->off)) != EM_OK) return rc;
    e->len = (uint16_t)rl;
    e->present = 1;
    return EM_OK;
}

static em_err add_added(struct em_tok *t, const char *content, size_t n, int64_t id,
                        bool special, const char *file, struct em_errbuf *eb)
{
    em_err rc;
    if (n == 0 || n > EM_TOK_MAX_TOKEN_BYTES)
        return em_errf(eb, EM_E_MODEL, "%s: added token %lld has %zu bytes (1..%d)", file,
                       (long long)id, n, EM_TOK_MAX_TOKEN_BYTES);
    if ((rc = ensure_id(t, id, file, eb)) != EM_OK) return rc;
    for (size_t k = 0; k < t->n_added; k++)
        if (t->added[k].id == id) return EM_OK; /* first definition wins */
    if (t->n_added % 64 == 0) {
        struct tok_added *a = realloc(t->added, (t->n_added + 64) * sizeof *a);
        if (!a) return EM_E_NOMEM;
        t->added = a;
    }
    struct tok_added *a = &t->added[t->n_added];
    if ((rc = arena_add(t, content, n, &a->off)) != EM_OK) return rc;
    a->id = (int32_t)id;
    a->len = (uint32_t)n;
    t->n_added++;
    /* the added token is what the id decodes to */
    t->ent[id] = (struct tok_entry){a->off, (uint16_t)n, 1, special};
    return EM_OK;
}

/* Hash of the regular vocabulary; call once all regular tokens are in. */
static em_err build_vocab_index(struct em_tok *t, const char *file, struct em_errbuf *eb)
{
    size_t n = 0;
    for (int32_t i = 0; i < t->n_ids; i++) n += t->ent[i].present;
    t->vocab_cap = pow2_at_least(2 * n + 1);
    t->vocab_slots = malloc(t->vocab_cap * sizeof *t->vocab_slots);
    if (!t->vocab_slots) return EM_E_NOMEM;
    memset(t->vocab_slots, 0xff, t->vocab_cap * sizeof *t->vocab_slots);
    size_t m = t->vocab_cap - 1;
    for (int32_t id = 0; id < t->n_ids; id++) {
        const struct tok_entry *e = &t->ent[id];
        if (!e->present) continue;
        const char *s = t->arena + e->off;
        size_t i = em_tok_hash_bytes(s, e->len) & m;
        for (; t->vocab_slots[i] >= 0; i = (i + 1) & m) {
            const struct tok_entry *o = &t->ent[t->vocab_slots[i]];
            if (o->len == e->len && memcmp(t->arena + o->off, s, e->len) == 0)
                return em_errf(eb, EM_E_MODEL, "%s: ids %d and %d have the same bytes", file,
                               t->vocab_slots[i], id);
        }
        t->vocab_slots[i] = id;
    }
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        t->byte_id[b] = em_tok_vocab_lookup(t, &c, 1);
        if (t->byte_id[b] < 0)
            return em_errf(eb, EM_E_MODEL, "%s: no token for byte 0x%02x (not byte-level BPE)",
                           file, b);
    }
    return EM_OK;
}

static em_err pairs_init(struct em_tok *t, size_t n_merges)
{
    t->pairs_cap = pow2_at_least(2 * n_merges + 1);
    t->pairs = calloc(t->pairs_cap, sizeof *t->pairs);
    return t->pairs ? EM_OK : EM_E_NOMEM;
}

/* One merge "a b" (GPT-2 alphabet) with its rank. Later duplicates replace earlier ones,
 * as in HF tokenizers (the pair map is collected in order). */
static em_err add_merge(struct em_tok *t, const char *a, size_t an, const char *b, size_t bn,
                        int32_t rank, const char *file, struct em_errbuf *eb)
{
    char ra[2 * EM_TOK_MAX_TOKEN_BYTES], rb[EM_TOK_MAX_TOKEN_BYTES];
    size_t la, lb;
    em_err rc;
    if (an > 4 * EM_TOK_MAX_TOKEN_BYTES || bn > 4 * EM_TOK_MAX_TOKEN_BYTES)
        return em_errf(eb, EM_E_TOO_LONG, "%s: merge %d too long", file, rank);
    if ((rc = gpt2_decode(a, an, ra, &la, file, eb)) != EM_OK) return rc;
    if ((rc = gpt2_decode(b, bn, rb, &lb, file, eb)) != EM_OK) return rc;
    int32_t ia = em_tok_vocab_lookup(t, ra, la), ib = em_tok_vocab_lookup(t, rb, lb);
    memcpy(ra + la, rb, lb);
    int32_t ic = em_tok_vocab_lookup(t, ra, la + lb);
    if (ia < 0 || ib < 0 || ic < 0)
        return em_errf(eb, EM_E_MODEL, "%s: merge %d '%.*s %.*s' uses a token not in the vocabulary",
                       file, rank, (int)(an > 64 ? 64 : an), a, (int)(bn > 64 ? 64 : bn), b);
    uint64_t key = em_tok_pair_key(ia, ib);
    size_t m = t->pairs_cap - 1, i = em_tok_mix64(key) & m;
    while (t->pairs[i].key && t->pairs[i].key != key) i = (i + 1) & m;
    t->pairs[i] = (struct tok_pair){key, rank, ic};
    return EM_OK;
}

static em_err json_id(json_t *v, const char *file, const char *what, int64_t *id,
                      struct em_errbuf *eb)
{
    double d = json_is_number(v) ? json_number_value(v) : -1.0;
    if (!(d >= 0 && d < 1e15) || d != (double)(int64_t)d) /* range: ensure_id */
        return em_errf(eb, EM_E_FORMAT, "%s: id of '%.64s' is not a non-negative integer", file,
                       what);
    *id = (int64_t)d;
    return EM_OK;
}

static em_err load_vocab_object(struct em_tok *t, json_t *vocab, const char *file,
                                struct em_errbuf *eb)
{
    if (!json_is_object(vocab)) return em_errf(eb, EM_E_FORMAT, "%s: vocab is not an object", file);
    if (json_object_size(vocab) > EM_TOK_MAX_VOCAB)
        return em_errf(eb, EM_E_TOO_LONG, "%s: %zu tokens, limit %d", file,
                       json_object_size(vocab), EM_TOK_MAX_VOCAB);
    const char *key;
    json_t *v;
    em_err rc;
    json_object_foreach(vocab, key, v) {
        int64_t id = -1;
        if ((rc = json_id(v, file, key, &id, eb)) != EM_OK) return rc;
        if ((rc = add_regular(t, key, strlen(key), id, file, eb)) != EM_OK) return rc;
    }
    return build_vocab_index(t, file, eb);
}

static em_err load_merges_array(struct em_tok *t, json_t *merges, const char *file,
                                struct em_errbuf *eb)
{
    if (!json_is_array(merges)) return em_errf(eb, EM_E_FORMAT, "%s: merges is not an array", file);
    size_t n = json_array_size(merges);
    if (n > EM_TOK_MAX_VOCAB) return em_errf(eb, EM_E_TOO_LONG, "%s: %zu merges", file, n);
    em_err rc = pairs_init(t, n);
    for (size_t i = 0; i < n && rc == EM_OK; i++) {
        json_t *m = json_array_get(merges, i);
        const char *a, *b;
        size_t an, bn;
        if (json_is_string(m)) {
            a = json_string_value(m);
            const char *sp = strchr(a, ' ');
            if (!sp || strchr(sp + 1, ' '))
                return em_errf(eb, EM_E_FORMAT, "%s: merge %zu is not 'a b'", file, i);
            an = (size_t)(sp - a);
            b = sp + 1;
            bn = strlen(b);
        } else if (json_is_array(m) && json_array_size(m) == 2 &&
                   json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
            a = json_string_value(json_array_get(m, 0));
            b = json_string_value(json_array_get(m, 1));
            an = strlen(a);
            bn = strlen(b);
        } else {
            return em_errf(eb, EM_E_FORMAT, "%s: merge %zu is not a string or pair", file, i);
        }
        rc = add_merge(t, a, an, b, bn, (int32_t)i, file, eb);
    }
    return rc;
}

static em_err load_merges_txt(struct em_tok *t, char *buf, size_t len, const char *file,
                              struct em_errbuf *eb)
{
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) lines += buf[i] == '\n';
    if (lines > EM_TOK_MAX_VOCAB + 2) return em_errf(eb, EM_E_TOO_LONG, "%s: %zu lines", file, lines);
    em_err rc = pairs_init(t, lines);
    int32_t rank = 0;
    size_t lineno = 0;
    for (size_t p = 0; p < len && rc == EM_OK;) {
        char *nl = memchr(buf + p, '\n', len - p);
        size_t e = nl ? (size_t)(nl - buf) : len, ll = e - p;
        lineno++;
        if (ll && buf[p + ll - 1] == '\r') ll--;
        const char *line = buf + p;
        p = e + 1;
        if (ll >= 8 && memcmp(line, "#version", 8) == 0) continue;
        const char *sp = memchr(line, ' ', ll);
        if (!sp || sp == line || sp == line + ll - 1 || memchr(sp + 1, ' ', ll - (size_t)(sp + 1 - line)))
            return em_errf(eb, EM_E_FORMAT, "%s: line %zu is not 'a b'", file, lineno);
        rc = add_merge(t, line, (size_t)(sp - line), sp + 1, ll - (size_t)(sp + 1 - line), rank++,
                       file, eb);
    }
    return rc;
}

static em_err load_added_array(struct em_tok *t, json_t *arr, const char *file,
                               struct em_errbuf *eb)
{
    if (!arr) return EM_OK;
    if (!json_is_array(arr)) return em_errf(eb, EM_E_FORMAT, "%s: added_tokens is not an array", file);
    size_t i;
    json_t *a;
    em_err rc;
    json_array_foreach(arr, i, a) {
        json_t *c = json_object_get(a, "content");
        int64_t id = -1;
        if (!json_is_string(c)) return em_errf(eb, EM_E_FORMAT, "%s: added token %zu has no content", file, i);
        if ((rc = json_id(json_object_get(a, "id"), file, json_string_value(c), &id, eb)) != EM_OK) return rc;
        if ((rc = add_added(t, json_string_value(c), json_string_length(c), id,
                            json_is_true(json_object_get(a, "special")), file, eb)) != EM_OK)
            return rc;
    }
    return EM_OK;
}

static em_err load_tokenizer_json(struct em_tok *t, const char *path, struct em_errbuf *eb)
{
    json_t *root;
    em_err rc = load_json_file(path, false, &root, eb);
    if (rc != EM_OK) return rc;
    json_t *model = json_object_get(root, "model");
    json_t *type = json_object_get(model, "type");
    if (!json_is_object(model)) rc = em_errf(eb, EM_E_FORMAT, "%s: no model object", path);
    else if (type && !(json_is_string(type) && strcmp(json_string_value(type), "BPE") == 0))
        rc = em_errf(eb, EM_E_MODEL, "%s: model type is not BPE", path);
    if (rc == EM_OK) rc = load_vocab_object(t, json_object_get(model, "vocab"), path, eb);
    if (rc == EM_OK) rc = load_merges_array(t, json_object_get(model, "merges"), path, eb);
    if (rc == EM_OK) t->ignore_merges = json_is_true(json_object_get(model, "ignore_merges"));
    if (rc == EM_OK) rc = load_added_array(t, json_object_get(root, "added_tokens"), path, eb);
    json_decref(root);
    return rc;
}

static em_err load_config_added(struct em_tok *t, const char *path, struct em_errbuf *eb)
{
    json_t *root;
    em_err rc = load_json_file(path, true, &root, eb);
    if (rc == EM_E_NOTFOUND) return EM_OK;
    if (rc != EM_OK) return rc;
    json_t *dec = json_object_get(root, "added_tokens_decoder");
    const char *key;
    json_t *v;
    if (dec && !json_is_object(dec))
        rc = em_errf(eb, EM_E_FORMAT, "%s: added_tokens_decoder is not an object", path);
    json_object_foreach(dec, key, v) {
        if (rc != EM_OK) break;
        char *end;
        errno = 0;
        long long id = strtoll(key, &end, 10);
        json_t *c = json_object_get(v, "content");
        if (errno || end == key || *end || !json_is_string(c))
            rc = em_errf(eb, EM_E_FORMAT, "%s: bad added_tokens_decoder entry '%.32s'", path, key);
        else
            rc = add_added(t, json_string_value(c), json_string_length(c), id,
                           json_is_true(json_object_get(v, "special")), path, eb);
    }
    json_decref(root);
    return rc;
}

/* added_tokens.json {content: id}: entries are taken as special (they are the control
 * tokens in every Qwen checkpoint). */
static em_err load_added_tokens_json(struct em_tok *t, const char *path, struct em_errbuf *eb)
{
    json_t *root;
    em_err rc = load_json_file(path, true, &root, eb);
    if (rc == EM_E_NOTFOUND) return EM_OK;
    if (rc != EM_OK) return rc;
    const char *key;
    json_t *v;
    if (!json_is_object(root)) rc = em_errf(eb, EM_E_FORMAT, "%s: not an object", path);
    else
        json_object_foreach(root, key, v) {
            int64_t id = -1;
            if ((rc = json_id(v, path, key, &id, eb)) != EM_OK) break;
            if ((rc = add_added(t, key, strlen(key), id, true, path, eb)) != EM_OK) break;
        }
    json_decref(root);
    return rc;
}

static int added_cmp(const void *a, const void *b)
{
    const struct tok_added *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static em_err tok_new(struct em_tok **out)
{
    struct em_tok *t = calloc(1, sizeof *t);
    *out = NULL;
    if (!t) return EM_E_NOMEM;
    if (pthread_mutex_init(&t->lock, NULL) != 0) {
        free(t);
        return EM_E_NOMEM;
    }
    t->lock_init = true;
    *out = t;
    return EM_OK;
}

/* Sorts the added tokens and allocates the BPE cache: the last step of every loader. */
static em_err tok_finish(struct em_tok *t)
{
    if (t->n_added) qsort(t->added, t->n_added, sizeof *t->added, added_cmp);
    t->cache = calloc(CACHE_SLOTS, sizeof *t->cache);
    t->cache_keys = malloc(CACHE_POOL_IDS * 2);
    t->cache_ids = malloc(CACHE_POOL_IDS * sizeof *t->cache_ids);
    return t->cache && t->cache_keys && t->cache_ids ? EM_OK : EM_E_NOMEM;
}

em_err em_tok_load(const char *dir, struct em_tok **out, struct em_errbuf *eb)
{
    char p1[4096], p2[4096];
    struct em_tok *t = NULL;
    em_err rc = tok_new(&t);
    *out = NULL;
    if (rc != EM_OK) return rc;
    if ((size_t)snprintf(p1, sizeof p1, "%s/tokenizer.json", dir) >= sizeof p1) {
        rc = em_errf(eb, EM_E_ARG, "tokenizer: directory path too long");
        goto fail;
    }
    struct stat st;
    if (stat(p1, &st) == 0) {
        if ((rc = load_tokenizer_json(t, p1, eb)) != EM_OK) goto fail;
    } else {
        char *buf;
        size_t len;
        json_t *vocab;
        snprintf(p1, sizeof p1, "%s/vocab.json", dir);
        snprintf(p2, sizeof p2, "%s/merges.txt", dir);
        if ((rc = load_json_file(p1, false, &vocab, eb)) != EM_OK) goto fail;
        rc = load_vocab_object(t, vocab, p1, eb);
        json_decref(vocab);
        if (rc != EM_OK) goto fail;
        if ((rc = read_file(p2, false, &buf, &len, eb)) != EM_OK) goto fail;
        rc = load_merges_txt(t, buf, len, p2, eb);
        free(buf);
        if (rc != EM_OK) goto fail;
    }
    snprintf(p1, sizeof p1, "%s/tokenizer_config.json", dir);
    if ((rc = load_config_added(t, p1, eb)) != EM_OK) goto fail;
    snprintf(p1, sizeof p1, "%s/added_tokens.json", dir);
    if ((rc = load_added_tokens_json(t, p1, eb)) != EM_OK) goto fail;
    if ((rc = tok_finish(t)) != EM_OK) goto fail;
    *out = t;
    return EM_OK;
fail:
    em_tok_free(t);
    return rc;
}

/* ---- in-memory form (GGUF) ---------------------------------------------------------------- */

em_err em_tok_load_spec(const struct em_tok_spec *spec, const char *what, struct em_tok **out,
                        struct em_errbuf *eb)
{
    struct em_tok *t = NULL;
    em_err rc = tok_new(&t);
    *out = NULL;
    if (rc != EM_OK) return rc;
    if (spec->n_tokens > EM_TOK_MAX_VOCAB || spec->n_merges > EM_TOK_MAX_VOCAB) {
        rc = em_errf(eb, EM_E_TOO_LONG, "%s: %zu tokens, %zu merges (limit %d)", what,
                     spec->n_tokens, spec->n_merges, EM_TOK_MAX_VOCAB);
        goto fail;
    }
    for (size_t i = 0; i < spec->n_tokens && rc == EM_OK; i++) {
        int32_t ty = spec->types ? spec->types[i] : EM_TOK_T_NORMAL;
        if (ty != EM_TOK_T_NORMAL && ty != EM_TOK_T_CONTROL && ty != EM_TOK_T_USER &&
            ty != EM_TOK_T_UNUSED)
            rc = em_errf(eb, EM_E_MODEL, "%s: token %zu has type %d (1, 3, 4 or 5)", what, i,
                         (int)ty);
        else if (ty == EM_TOK_T_NORMAL)
            rc = add_regular(t, spec->tokens[i].s, spec->tokens[i].len, (int64_t)i, what, eb);
    }
    if (rc == EM_OK) rc = build_vocab_index(t, what, eb);
    if (rc == EM_OK) rc = pairs_init(t, spec->n_merges);
    for (size_t r = 0; r < spec->n_merges && rc == EM_OK; r++) {
        const char *m = spec->merges[r].s;
        size_t n = spec->merges[r].len;
        const char *sp = memchr(m, ' ', n);
        if (!sp || sp == m || sp == m + n - 1 || memchr(sp + 1, ' ', n - (size_t)(sp + 1 - m)))
            rc = em_errf(eb, EM_E_FORMAT, "%s: merge %zu is not 'a b'", what, r);
        else
            rc = add_merge(t, m, (size_t)(sp - m), sp + 1, n - (size_t)(sp + 1 - m), (int32_t)r,
                           what, eb);
    }
    for (size_t i = 0; i < spec->n_tokens && rc == EM_OK; i++) {
        int32_t ty = spec->types ? spec->types[i] : EM_TOK_T_NORMAL;
        if (ty == EM_TOK_T_CONTROL || ty == EM_TOK_T_USER)
            rc = add_added(t, spec->tokens[i].s, spec->tokens[i].len, (int64_t)i,
                           ty == EM_TOK_T_CONTROL, what, eb);
    }
    if (rc != EM_OK) goto fail;
    t->ignore_merges = spec->ignore_merges;
    if ((rc = tok_finish(t)) != EM_OK) goto fail;
    *out = t;
    return EM_OK;
fail:
    em_tok_free(t);
    return rc;
}

/* GPT-2 bytes_to_unicode: raw bytes -> UTF-8 of the mapped code points (<= 2 bytes each). */
static size_t gpt2_encode(const char *raw, size_t n, char *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int b = (uint8_t)raw[i], cp = b;
        if (!byte_kept(b)) {
            cp = 256;
            for (int c = 0; c < b; c++) cp += !byte_kept(c);
        }
        k += (size_t)utf8proc_encode_char(cp, (utf8proc_uint8_t *)out + k);
    }
    return k;
}

struct merge_rec {
    int32_t rank, a, b;
};

static int merge_cmp(const void *x, const void *y)
{
    const struct merge_rec *p = x, *q = y;
    return p->rank < q->rank ? -1 : p->rank > q->rank;
}

void em_tok_spec_free(struct em_tok_spec *spec)
{
    if (!spec) return;
    free(spec->owned_);
    memset(spec, 0, sizeof *spec);
}

em_err em_tok_export(const struct em_tok *t, struct em_tok_spec *spec)
{
    memset(spec, 0, sizeof *spec);
    size_t n_merges = 0, nt = (size_t)t->n_ids, text = 0;
    for (size_t i = 0; i < t->pairs_cap; i++) n_merges += t->pairs[i].key != 0;
    for (size_t i = 0; i < nt; i++) text += 2 * (size_t)t->ent[i].len + 16;
    for (size_t i = 0; i < t->pairs_cap; i++)
        if (t->pairs[i].key) {
            uint64_t k = t->pairs[i].key - 1;
            text += 2 * ((size_t)t->ent[k >> 32].len + t->ent[k & 0xffffffffu].len) + 1;
        }
    /* one block: tokens[nt], merges[n_merges], types[nt], merge_rec scratch, then text */
    size_t head = nt * sizeof(struct em_tok_str) + n_merges * sizeof(struct em_tok_str) +
                  nt * sizeof(int32_t) + n_merges * sizeof(struct merge_rec);
    char *blk = malloc(head + text + 1);
    if (!blk) return EM_E_NOMEM;
    struct em_tok_str *tokens = (struct em_tok_str *)blk, *merges = tokens + nt;
    int32_t *types = (int32_t *)(merges + n_merges);
    struct merge_rec *mr = (struct merge_rec *)(types + nt);
    char *txt = (char *)(mr + n_merges);
    for (size_t i = 0; i < nt; i++) {
        const struct tok_entry *e = &t->ent[i];
        tokens[i].s = txt;
        if (!e->present) {
            types[i] = EM_TOK_T_UNUSED;
            tokens[i].len = (size_t)snprintf(txt, 16, "[PAD%zu]", i);
        } else {
            types[i] = EM_TOK_T_NORMAL;
            for (size_t k = 0; k < t->n_added; k++)
                if ((size_t)t->added[k].id == i) types[i] = e->special ? EM_TOK_T_CONTROL : EM_TOK_T_USER;
            if (types[i] == EM_TOK_T_NORMAL) {
                tokens[i].len = gpt2_encode(t->arena + e->off, e->len, txt);
            } else {
                memcpy(txt, t->arena + e->off, e->len);
                tokens[i].len = e->len;
            }
        }
        txt += tokens[i].len;
    }
    size_t m = 0;
    for (size_t i = 0; i < t->pairs_cap; i++)
        if (t->pairs[i].key) {
            uint64_t k = t->pairs[i].key - 1;
            mr[m++] = (struct merge_rec){t->pairs[i].rank, (int32_t)(k >> 32),
                                         (int32_t)(k & 0xffffffffu)};
        }
    qsort(mr, n_merges, sizeof *mr, merge_cmp);
    for (size_t r = 0; r < n_merges; r++) {
        const struct tok_entry *a = &t->ent[mr[r].a], *b = &t->ent[mr[r].b];
        merges[r].s = txt;
        size_t k = gpt2_encode(t->arena + a->off, a->len, txt);
        txt[k++] = ' ';
        k += gpt2_encode(t->arena + b->off, b->len, txt + k);
        merges[r].len = k;
        txt += k;
    }
    *spec = (struct em_tok_spec){nt, tokens, types, n_merges, merges, t->ignore_merges, blk};
    return EM_OK;
}
