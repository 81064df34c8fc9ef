/* model/gen/kvpool.h - KV-cache memory under a byte budget, handed out in fixed-size pages.
 *
 * A page holds EM_KVPOOL_PAGE_POS positions of every layer, keys and values:
 *   page = k[n_layers][EM_KVPOOL_PAGE_POS][kv_dim] + v[...] of the pool's element type,
 * so every page serves every sequence: caches of different lengths pack into the budget with
 * at most one partly used page each (no external fragmentation: a freed page is reused as
 * is, whatever cache asks next). A paged cache (em_kv_new_paged, model/gen/kvcache.h) keeps
 * its own positions in pages; positions inside a page are consecutive rows, so the
 * decoder's attention walks a cache page by page (runs of rows).
 *
 * Admission: before building caches a caller reserves the pages it will need
 * (em_kvpool_reserve); the call waits while other reservations hold the budget and fails at
 * once, with a clear message, when the request exceeds the whole budget (it could never
 * run). Pages are allocated on first use through the pool's backend (be->ops->alloc: device
 * memory, where the decoder's attention reads them; host memory on the CPU) and kept on a
 * free list until em_kvpool_free, so the pool's memory is at most the budget (rounded down
 * to whole pages).
 *
 * Thread-safety: every call may come from any thread (one mutex); em_kvpool_free must not
 * race with the others and needs every page back. */
#ifndef EM_KVPOOL_H
#define EM_KVPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define EM_KVPOOL_PAGE_POS 32             /* positions per page (7B f16: 16 MiB a page) */
#define EM_KVPOOL_UNLIMITED 0             /* budget: no limit (pages still pooled) */
#define EM_KVPOOL_MAX_BUDGET (1ull << 40) /* bytes, largest budget accepted (1 TiB) */

struct em_kvpool;
struct em_backend;

/* A pool for caches of n_layers x kv_dim elements of elem_bytes (2: f16, 4: f32) per
 * position, budget bytes in all (EM_KVPOOL_UNLIMITED: no limit), its pages in be's memory
 * (NULL: the CPU's; borrowed, must outlive the pool). On EM_OK the caller owns *out
 * (em_kvpool_free). Errors: EM_E_ARG (non-positive geometry, elem_bytes not 2 or 4, budget
 * over EM_KVPOOL_MAX_BUDGET), EM_E_TOO_LONG (a budget under one page: the message gives the
 * page size), EM_E_NOMEM. */
em_err em_kvpool_new(const struct em_backend *be, int n_layers, int kv_dim, int elem_bytes,
                     uint64_t budget, struct em_kvpool **out, struct em_errbuf *eb);
void em_kvpool_free(struct em_kvpool *p); /* NULL ok */

size_t em_kvpool_page_bytes(const struct em_kvpool *p);
const struct em_backend *em_kvpool_backend(const struct em_kvpool *p); /* never NULL */
/* Pages the budget holds (SIZE_MAX when unlimited). */
size_t em_kvpool_pages_total(const struct em_kvpool *p);
/* Pages of a cache that stores positions [n_base, cap): ceil((cap - n_base) / PAGE_POS). */
size_t em_kvpool_pages_for(int n_base, int cap);

/* Reserves n pages, waiting while other reservations hold the budget. what names the
 * requester in the error. Errors: EM_E_TOO_LONG when n exceeds the whole budget ("<what>:
 * needs N MiB of KV cache (P pages), the budget holds M MiB"); never waits then. */
em_err em_kvpool_reserve(struct em_kvpool *p, size_t n, const char *what, struct em_errbuf *eb);
/* Gives back n reserved pages (their caches freed first) and wakes waiting reservations. */
void em_kvpool_unreserve(struct em_kvpool *p, size_t n);

/* One page out of the caller's reservation: K block then V block, each n_layers x
 * PAGE_POS x kv_dim elements (layer-major), in the backend's memory. NULL when out of memory. The caller must hold
 * a reservation covering every page it has taken (asserted). */
void *em_kvpool_page_get(struct em_kvpool *p);
void em_kvpool_page_put(struct em_kvpool *p, void *page); /* NULL ok */

/* Counters for tests and logs. */
struct em_kvpool_stats {
    size_t reserved;  /* pages reserved now */
    size_t in_use;    /* pages held by caches now */
    size_t allocated; /* pages allocated (in use + free list) */
    size_t peak_reserved;
    uint64_t waits;   /* reservations that had to wait */
};
struct em_kvpool_stats em_kvpool_stats(struct em_kvpool *p);

/* "8GiB", "512MiB", "512M", "1048576" (bytes; suffixes K/M/G/T with optional "iB", powers
 * of 1024) -> *bytes. EM_E_ARG for anything else, zero, or over EM_KVPOOL_MAX_BUDGET. */
em_err em_kvpool_parse_bytes(const char *s, uint64_t *bytes);

#endif
