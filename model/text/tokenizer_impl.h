/* model/text/tokenizer_impl.h - internals shared by tokenizer.c (encode/decode) and
 * tokenizer_load.c (file readers). Not part of the public API. */
#ifndef EM_TOKENIZER_IMPL_H
#define EM_TOKENIZER_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/text/tokenizer.h"

#define CACHE_SLOTS 32768          /* power of two */
#define CACHE_POOL_IDS (1u << 20)  /* ids stored in the cache before it is cleared */
#define CACHE_MAX_PIECE 256        /* longer pieces are not cached */

struct tok_entry {
    uint32_t off;    /* into text arena */
    uint16_t len;
    uint8_t present; /* the id has a token */
    uint8_t special; /* added token marked special */
};

struct tok_added {
    int32_t id;
    uint32_t off, len; /* into text arena */
};

struct tok_pair {
    uint64_t key; /* (left << 32 | right) + 1; 0 = empty */
    int32_t rank, id;
};

struct tok_cache_slot {
    uint64_t hash; /* 0 = empty */
    uint32_t key_off, key_len, ids_off, n_ids;
};

struct em_tok {
    struct tok_entry *ent; /* [n_ids] */
    int32_t n_ids;
    size_t ent_cap;
    char *arena;
    size_t arena_len, arena_cap;
    int32_t *vocab_slots; /* hash: raw bytes -> id, -1 empty; regular vocabulary */
    size_t vocab_cap;
    struct tok_pair *pairs;
    size_t pairs_cap;
    int32_t byte_id[256];
    struct tok_added *added; /* added tokens, sorted by length descending */
    size_t n_added;
    bool ignore_merges;

    bool lock_init;
    pthread_mutex_t lock; /* guards the cache */
    struct tok_cache_slot *cache;
    size_t cache_used;
    char *cache_keys;
    size_t cache_keys_len;
    int32_t *cache_ids;
    size_t cache_ids_len;
};

/* Id of a regular token given as raw bytes, or -1. */
int32_t em_tok_vocab_lookup(const struct em_tok *t, const char *s, size_t n);

static inline uint64_t em_tok_hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h | 1; /* never 0 */
}

static inline uint64_t em_tok_mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static inline uint64_t em_tok_pair_key(int32_t a, int32_t b)
{
    return (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
}

#endif
