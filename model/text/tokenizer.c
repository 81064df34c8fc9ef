/* model/text/tokenizer.c - Qwen2 byte-level BPE.
 *
 * Data: every id's token is kept as raw bytes (the GPT-2 byte<->unicode alphabet of the
 * files is undone at load). BPE runs on ids: a piece starts as one id per byte and the
 * pair table maps (left id, right id) -> (rank, merged id), so no strings are built while
 * encoding. Merges follow HF tokenizers' BPE::merge_word: a min-heap ordered by (rank,
 * position) over a linked list of symbols, stale entries skipped when popped.
 * Encoded pieces are cached (bounded, cleared when full) under a mutex.
 * The file readers are in tokenizer_load.c. */
#include "model/text/tokenizer.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "model/text/pretok.h"
#include "model/text/tokenizer_impl.h"

int32_t em_tok_vocab_lookup(const struct em_tok *t, const char *s, size_t n)
{
    if (!t->vocab_cap) return -1;
    size_t m = t->vocab_cap - 1;
    for (size_t i = em_tok_hash_bytes(s, n) & m;; i = (i + 1) & m) {
        int32_t id = t->vocab_slots[i];
        if (id < 0) return -1;
        const struct tok_entry *e = &t->ent[id];
        if (e->len == n && memcmp(t->arena + e->off, s, n) == 0) return id;
    }
}

static const struct tok_pair *pair_get(const struct em_tok *t, int32_t a, int32_t b)
{
    uint64_t key = em_tok_pair_key(a, b);
    size_t m = t->pairs_cap - 1;
    for (size_t i = em_tok_mix64(key) & m;; i = (i + 1) & m) {
        if (t->pairs[i].key == key) return &t->pairs[i];
        if (t->pairs[i].key == 0) return NULL;
    }
}

/* ---- BPE ---- */

struct sym {
    int32_t id, prev, next; /* next = -1 at the end; id = -1 once merged away */
};

struct heap_ent {
    int32_t rank, pos;
};

struct scratch {
    struct sym *sym;
    size_t sym_cap;
    struct heap_ent *heap;
    size_t heap_len, heap_cap;
    int32_t *ids; /* output */
    size_t n_ids, ids_cap;
};

static bool heap_less(struct heap_ent a, struct heap_ent b)
{
    return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos;
}

static em_err heap_push(struct scratch *s, int32_t rank, int32_t pos)
{
    if (s->heap_len == s->heap_cap) {
        size_t cap = s->heap_cap ? 2 * s->heap_cap : 64;
        struct heap_ent *h = realloc(s->heap, cap * sizeof *h);
        if (!h) return EM_E_NOMEM;
        s->heap = h;
        s->heap_cap = cap;
    }
    size_t i = s->heap_len++;
    struct heap_ent e = {rank, pos};
    while (i > 0 && heap_less(e, s->heap[(i - 1) / 2])) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = e;
    return EM_OK;
}

static struct heap_ent heap_pop(struct scratch *s)
{
    struct heap_ent top = s->heap[0], last = s->heap[--s->heap_len];
    size_t i = 0, n = s->heap_len;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_less(s->heap[c + 1], s->heap[c])) c++;
        if (!heap_less(s->heap[c], last)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n) s->heap[i] = last;
    return top;
}

static em_err push_id(struct scratch *s, int32_t id)
{
    if (s->n_ids == s->ids_cap) {
        size_t cap = s->ids_cap ? 2 * s->ids_cap : 256;
        int32_t *p = realloc(s->ids, cap * sizeof *p);
        if (!p) return EM_E_NOMEM;
        s->ids = p;
        s->ids_cap = cap;
    }
    s->ids[s->n_ids++] = id;
    return EM_OK;
}

static em_err push_pair(const struct em_tok *t, struct scratch *s, int32_t pos)
{
    int32_t nx = s->sym[pos].next;
    if (nx < 0) return EM_OK;
    const struct tok_pair *p = pair_get(t, s->sym[pos].id, s->sym[nx].id);
    return p ? heap_push(s, p->rank, pos) : EM_OK;
}

/* Appends the BPE ids of one piece to s->ids. */
static em_err bpe_piece(const struct em_tok *t, struct scratch *s, const char *p, size_t n)
{
    em_err rc;
    if (t->ignore_merges) {
        int32_t id = em_tok_vocab_lookup(t, p, n);
        if (id >= 0) return push_id(s, id);
    }
    if (n > s->sym_cap) {
        struct sym *ns = realloc(s->sym, n * sizeof *ns);
        if (!ns) return EM_E_NOMEM;
        s->sym = ns;
        s->sym_cap = n;
    }
    for (size_t i = 0; i < n; i++) {
        s->sym[i].id = t->byte_id[(uint8_t)p[i]];
        s->sym[i].prev = (int32_t)i - 1;
        s->sym[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    s->heap_len = 0;
    for (size_t i = 0; i + 1 < n; i++)
        if ((rc = push_pair(t, s, (int32_t)i)) != EM_OK) return rc;
    while (s->heap_len) {
        struct heap_ent top = heap_pop(s);
        struct sym *l = &s->sym[top.pos];
        if (l->id < 0 || l->next < 0) continue;
        struct sym *r = &s->sym[l->next];
        const struct tok_pair *pr = pair_get(t, l->id, r->id);
        if (!pr || pr->rank != top.rank) continue; /* stale */
        int32_t rpos = l->next;
        l->id = pr->id;
        l->next = r->next;
        r->id = -1;
        if (l->next >= 0) s->sym[l->next].prev = top.pos;
        (void)rpos;
        if (l->prev >= 0 && (rc = push_pair(t, s, l->prev)) != EM_OK) return rc;
        if ((rc = push_pair(t, s, top.pos)) != EM_OK) return rc;
    }
    for (int32_t i = 0; i >= 0; i = s->sym[i].next)
        if ((rc = push_id(s, s->sym[i].id)) != EM_OK) return rc;
    return EM_OK;
}

static void cache_clear(struct em_tok *t)
{
    memset(t->cache, 0, CACHE_SLOTS * sizeof *t->cache);
    t->cache_used = t->cache_keys_len = t->cache_ids_len = 0;
}

/* Encodes one piece, through the cache. The cache is logically const: it only memoises. */
static em_err encode_piece(const struct em_tok *ct, struct scratch *s, const char *p, size_t n)
{
    struct em_tok *t = (struct em_tok *)ct;
    if (n == 0) return EM_OK;
    if (n > CACHE_MAX_PIECE || !t->cache) return bpe_piece(t, s, p, n);
    uint64_t h = em_tok_hash_bytes(p, n);
    size_t m = CACHE_SLOTS - 1, i;
    pthread_mutex_lock(&t->lock);
    for (i = h & m; t->cache[i].hash; i = (i + 1) & m) {
        struct tok_cache_slot *c = &t->cache[i];
        if (c->hash == h && c->key_len == n && memcmp(t->cache_keys + c->key_off, p, n) == 0) {
            em_err rc = EM_OK;
            for (uint32_t k = 0; k < c->n_ids && rc == EM_OK; k++)
                rc = push_id(s, t->cache_ids[c->ids_off + k]);
            pthread_mutex_unlock(&t->lock);
            return rc;
        }
    }
    pthread_mutex_unlock(&t->lock);
    size_t first = s->n_ids;
    em_err rc = bpe_piece(t, s, p, n);
    if (rc != EM_OK) return rc;
    size_t cnt = s->n_ids - first;
    pthread_mutex_lock(&t->lock);
    if (t->cache_used + 1 > CACHE_SLOTS * 3 / 4 || t->cache_ids_len + cnt > CACHE_POOL_IDS ||
        t->cache_keys_len + n > CACHE_POOL_IDS * 2)
        cache_clear(t);
    for (i = h & m; t->cache[i].hash; i = (i + 1) & m)
        if (t->cache[i].hash == h && t->cache[i].key_len == n &&
            memcmp(t->cache_keys + t->cache[i].key_off, p, n) == 0)
            break; /* another thread added it meanwhile */
    if (!t->cache[i].hash) {
        struct tok_cache_slot *c = &t->cache[i];
        memcpy(t->cache_keys + t->cache_keys_len, p, n);
        memcpy(t->cache_ids + t->cache_ids_len, s->ids + first, cnt * sizeof *s->ids);
        *c = (struct tok_cache_slot){h, (uint32_t)t->cache_keys_len, (uint32_t)n,
                                 (uint32_t)t->cache_ids_len, (uint32_t)cnt};
        t->cache_keys_len += n;
        t->cache_ids_len += cnt;
        t->cache_used++;
    }
    pthread_mutex_unlock(&t->lock);
    return EM_OK;
}

/* NFC-normalises text[0..len) and appends the BPE ids of its pieces. */
static em_err encode_segment(const struct em_tok *t, struct scratch *s, const char *text,
                             size_t len, struct em_errbuf *eb)
{
    bool ascii = true;
    for (size_t i = 0; i < len && ascii; i++) ascii = (uint8_t)text[i] < 0x80;
    char *norm = NULL;
    if (!ascii) {
        utf8proc_uint8_t *o = NULL;
        utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)len,
                                          &o, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (r < 0) {
            free(o);
            if (r == UTF8PROC_ERROR_NOMEM) return EM_E_NOMEM;
            return em_errf(eb, EM_E_FORMAT, "tokenizer: NFC failed: %s", utf8proc_errmsg(r));
        }
        norm = (char *)o;
        text = norm;
        len = (size_t)r;
    }
    em_err rc = EM_OK;
    for (size_t pos = 0; pos < len && rc == EM_OK;) {
        size_t end = em_pretok_next(text, len, pos);
        rc = encode_piece(t, s, text + pos, end - pos);
        pos = end;
    }
    free(norm);
    return rc;
}

/* Offset of the first invalid UTF-8 byte, or len. */
static size_t utf8_invalid_at(const char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        if ((uint8_t)s[i] < 0x80) {
            i++;
            continue;
        }
        utf8proc_int32_t cp;
        utf8proc_ssize_t w = utf8proc_iterate((const utf8proc_uint8_t *)s + i,
                                              (utf8proc_ssize_t)(len - i), &cp);
        if (w <= 0) return i;
        i += (size_t)w;
    }
    return len;
}

static em_err encode(const struct em_tok *t, const char *text, size_t len, bool specials,
                     int32_t *ids, size_t cap, size_t *n, struct em_errbuf *eb)
{
    *n = 0;
    if (len > EM_TOK_MAX_TEXT_BYTES)
        return em_errf(eb, EM_E_TOO_LONG, "tokenizer: text is %zu bytes, limit %u", len,
                       EM_TOK_MAX_TEXT_BYTES);
    size_t bad = utf8_invalid_at(text, len);
    if (bad != len)
        return em_errf(eb, EM_E_FORMAT, "tokenizer: invalid UTF-8 at byte %zu", bad);
    struct scratch s = {0};
    em_err rc = EM_OK;
    size_t seg = 0;
    for (size_t i = 0; specials && i < len && rc == EM_OK;) {
        const struct tok_added *hit = NULL;
        for (size_t k = 0; k < t->n_added; k++) { /* sorted longest first */
            const struct tok_added *a = &t->added[k];
            if (a->len <= len - i && t->arena[a->off] == text[i] &&
                memcmp(t->arena + a->off, text + i, a->len) == 0) {
                hit = a;
                break;
            }
        }
        if (!hit) {
            i++;
            continue;
        }
        rc = encode_segment(t, &s, text + seg, i - seg, eb);
        if (rc == EM_OK) rc = push_id(&s, hit->id);
        i += hit->len;
        seg = i;
    }
    if (rc == EM_OK) rc = encode_segment(t, &s, text + seg, len - seg, eb);
    if (rc == EM_OK) {
        *n = s.n_ids;
        if (s.n_ids > cap)
            rc = em_errf(eb, EM_E_TOO_LONG, "tokenizer: %zu ids, room for %zu", s.n_ids, cap);
        else if (s.n_ids)
            memcpy(ids, s.ids, s.n_ids * sizeof *ids);
    }
    free(s.sym);
    free(s.heap);
    free(s.ids);
    return rc;
}

em_err em_tok_encode(const struct em_tok *tok, const char *text, size_t len, int32_t *ids,
                     size_t cap, size_t *n, struct em_errbuf *eb)
{
    return encode(tok, text, len, true, ids, cap, n, eb);
}

em_err em_tok_encode_plain(const struct em_tok *tok, const char *text, size_t len,
                           int32_t *ids, size_t cap, size_t *n, struct em_errbuf *eb)
{
    return encode(tok, text, len, false, ids, cap, n, eb);
}

/* ---- decode ---- */

/* Length of the valid UTF-8 sequence at s[0..n), or -(length of its maximal invalid
 * subpart), at least 1. */
static long utf8_seq(const uint8_t *s, size_t n)
{
    uint8_t b = s[0];
    if (b < 0x80) return 1;
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) need = 1;
    else if (b >= 0xE0 && b <= 0xEF) {
        need = 2;
        if (b == 0xE0) lo = 0xA0;
        if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 3;
        if (b == 0xF0) lo = 0x90;
        if (b == 0xF4) hi = 0x8F;
    } else
        return -1;
    size_t i = 1;
    for (; i <= need; i++) {
        if (i >= n || s[i] < lo || s[i] > hi) return -(long)i;
        lo = 0x80;
        hi = 0xBF;
    }
    return (long)i;
}

em_err em_tok_decode(const struct em_tok *tok, const int32_t *ids, size_t n,
                     bool skip_special, char **out, size_t *len)
{
    *out = NULL;
    size_t raw_len = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= tok->n_ids || !tok->ent[ids[i]].present) continue;
        if (skip_special && tok->ent[ids[i]].special) continue;
        raw_len += tok->ent[ids[i]].len;
    }
    if (raw_len > EM_TOK_MAX_TEXT_BYTES) return EM_E_TOO_LONG;
    uint8_t *raw = malloc(raw_len + 1);
    char *o = malloc(raw_len * 3 + 1); /* each invalid byte may become 3 bytes of U+FFFD */
    if (!raw || !o) {
        free(raw);
        free(o);
        return EM_E_NOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= tok->n_ids || !tok->ent[ids[i]].present) continue;
        const struct tok_entry *e = &tok->ent[ids[i]];
        if (skip_special && e->special) continue;
        memcpy(raw + k, tok->arena + e->off, e->len);
        k += e->len;
    }
    size_t ol = 0;
    for (size_t i = 0; i < raw_len;) {
        long w = utf8_seq(raw + i, raw_len - i);
        if (w > 0) {
            memcpy(o + ol, raw + i, (size_t)w);
            ol += (size_t)w;
            i += (size_t)w;
        } else {
            memcpy(o + ol, "\xEF\xBF\xBD", 3);
            ol += 3;
            i += (size_t)-w;
        }
    }
    o[ol] = '\0';
    free(raw);
    *out = o;
    if (len) *len = ol;
    return EM_OK;
}

/* ---- queries ---- */

int32_t em_tok_find(const struct em_tok *tok, const char *text)
{
    size_t n = strlen(text);
    for (size_t k = 0; k < tok->n_added; k++)
        if (tok->added[k].len == n && memcmp(tok->arena + tok->added[k].off, text, n) == 0)
            return tok->added[k].id;
    return em_tok_vocab_lookup(tok, text, n);
}

int32_t em_tok_n_vocab(const struct em_tok *tok) { return tok->n_ids; }

const char *em_tok_piece(const struct em_tok *tok, int32_t id, size_t *len)
{
    if (id < 0 || id >= tok->n_ids || !tok->ent[id].present) return NULL;
    *len = tok->ent[id].len;
    return tok->arena + tok->ent[id].off;
}

bool em_tok_is_special(const struct em_tok *tok, int32_t id)
{
    return id >= 0 && id < tok->n_ids && tok->ent[id].present && tok->ent[id].special;
}

void em_tok_free(struct em_tok *tok)
{
    if (!tok) return;
    if (tok->lock_init) pthread_mutex_destroy(&tok->lock);
    free(tok->ent);
    free(tok->arena);
    free(tok->vocab_slots);
    free(tok->pairs);
    free(tok->added);
    free(tok->cache);
    free(tok->cache_keys);
    free(tok->cache_ids);
    free(tok);
}
