/* model/gen/kvpool.c - see kvpool.h. */
#include "model/gen/kvpool.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "model/kernels/backend.h"

struct em_kvpool {
    const struct em_backend *be; /* the pages' memory (borrowed) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t page_bytes;
    size_t total;     /* pages the budget holds */
    size_t reserved, in_use, allocated, peak_reserved;
    uint64_t waits;
    void **free_pages; /* [allocated]: a stack of the pages not in use (device pointers) */
    size_t n_free;
};

em_err em_kvpool_new(const struct em_backend *be, int n_layers, int kv_dim, int elem_bytes,
                     uint64_t budget, struct em_kvpool **out, struct em_errbuf *eb)
{
    *out = NULL;
    if (n_layers <= 0 || kv_dim <= 0 || (elem_bytes != 2 && elem_bytes != 4) ||
        budget > EM_KVPOOL_MAX_BUDGET)
        return em_errf(eb, EM_E_ARG, "kvpool: layers %d, kv_dim %d, %d-byte elements, budget %llu",
                       n_layers, kv_dim, elem_bytes, (unsigned long long)budget);
    const uint64_t page = 2ull * (uint64_t)n_layers * EM_KVPOOL_PAGE_POS * (uint64_t)kv_dim *
                          (uint64_t)elem_bytes;
    if (page > EM_KVPOOL_MAX_BUDGET)
        return em_errf(eb, EM_E_ARG, "kvpool: a page of %llu bytes", (unsigned long long)page);
    if (budget != EM_KVPOOL_UNLIMITED && budget < page)
        return em_errf(eb, EM_E_TOO_LONG, "kvpool: a KV budget of %llu bytes is under one page "
                       "(%d positions of every layer: %.1f MiB)", (unsigned long long)budget,
                       EM_KVPOOL_PAGE_POS, (double)page / (1 << 20));
    struct em_kvpool *p = calloc(1, sizeof *p);
    if (!p) return EM_E_NOMEM;
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p);
        return EM_E_NOMEM;
    }
    if (pthread_cond_init(&p->cv, NULL) != 0) {
        pthread_mutex_destroy(&p->mu);
        free(p);
        return EM_E_NOMEM;
    }
    p->be = be ? be : em_backend_cpu();
    p->page_bytes = (size_t)page;
    p->total = budget == EM_KVPOOL_UNLIMITED ? SIZE_MAX : (size_t)(budget / page);
    *out = p;
    return EM_OK;
}

void em_kvpool_free(struct em_kvpool *p)
{
    if (!p) return;
    assert(p->in_use == 0);
    for (size_t i = 0; i < p->n_free; i++) p->be->ops->free(p->be->ctx, p->free_pages[i]);
    free(p->free_pages);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

size_t em_kvpool_page_bytes(const struct em_kvpool *p) { return p->page_bytes; }
const struct em_backend *em_kvpool_backend(const struct em_kvpool *p) { return p->be; }
size_t em_kvpool_pages_total(const struct em_kvpool *p) { return p->total; }

size_t em_kvpool_pages_for(int n_base, int cap)
{
    return cap > n_base ? ((size_t)(cap - n_base) + EM_KVPOOL_PAGE_POS - 1) / EM_KVPOOL_PAGE_POS : 0;
}

/* pages as "N KiB" below 1 MiB, else "N.N MiB", into buf */
static const char *size_str(const struct em_kvpool *p, size_t pages, char *buf, size_t cap)
{
    const double b = (double)pages * (double)p->page_bytes;
    if (b < (1 << 20)) snprintf(buf, cap, "%.0f KiB", b / 1024);
    else snprintf(buf, cap, "%.1f MiB", b / (1 << 20));
    return buf;
}

em_err em_kvpool_reserve(struct em_kvpool *p, size_t n, const char *what, struct em_errbuf *eb)
{
    if (n > p->total) {
        char need[32], have[32];
        return em_errf(eb, EM_E_TOO_LONG, "%s: needs %s of KV cache (%zu pages of %d positions), "
                       "the whole KV budget holds %s (%zu pages): raise --kv-budget",
                       what ? what : "kvpool", size_str(p, n, need, sizeof need), n,
                       EM_KVPOOL_PAGE_POS, size_str(p, p->total, have, sizeof have), p->total);
    }
    pthread_mutex_lock(&p->mu);
    if (n > p->total - p->reserved) p->waits++;
    while (n > p->total - p->reserved) pthread_cond_wait(&p->cv, &p->mu);
    p->reserved += n;
    if (p->reserved > p->peak_reserved) p->peak_reserved = p->reserved;
    pthread_mutex_unlock(&p->mu);
    return EM_OK;
}

void em_kvpool_unreserve(struct em_kvpool *p, size_t n)
{
    pthread_mutex_lock(&p->mu);
    assert(n <= p->reserved);
    p->reserved -= n;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void *em_kvpool_page_get(struct em_kvpool *p)
{
    pthread_mutex_lock(&p->mu);
    assert(p->in_use < p->reserved);
    void *f = p->n_free ? p->free_pages[--p->n_free] : NULL;
    if (f) p->in_use++;
    pthread_mutex_unlock(&p->mu);
    if (f) return f;
    /* a new page, outside the lock (a page is megabytes), and room to park it when it is
     * put back (so em_kvpool_page_put never allocates) */
    void *page = NULL;
    if (p->be->ops->alloc(p->be->ctx, p->page_bytes, &page) != EM_OK) return NULL;
    pthread_mutex_lock(&p->mu);
    void **fp = realloc(p->free_pages, (p->allocated + 1) * sizeof *fp);
    if (!fp) {
        pthread_mutex_unlock(&p->mu);
        p->be->ops->free(p->be->ctx, page);
        return NULL;
    }
    p->free_pages = fp;
    p->in_use++;
    p->allocated++;
    pthread_mutex_unlock(&p->mu);
    return page;
}

void em_kvpool_page_put(struct em_kvpool *p, void *page)
{
    if (!page) return;
    pthread_mutex_lock(&p->mu);
    assert(p->in_use > 0 && p->n_free < p->allocated);
    p->in_use--;
    p->free_pages[p->n_free++] = page;
    pthread_mutex_unlock(&p->mu);
}

struct em_kvpool_stats em_kvpool_stats(struct em_kvpool *p)
{
    pthread_mutex_lock(&p->mu);
    struct em_kvpool_stats s = {p->reserved, p->in_use, p->allocated, p->peak_reserved, p->waits};
    pthread_mutex_unlock(&p->mu);
    return s;
}

em_err em_kvpool_parse_bytes(const char *s, uint64_t *bytes)
{
    if (!s || *s < '0' || *s > '9') return EM_E_ARG;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) return EM_E_ARG;
    static const struct { const char *suffix; unsigned shift; } units[] = {
        {"", 0}, {"K", 10}, {"KiB", 10}, {"M", 20}, {"MiB", 20}, {"G", 30}, {"GiB", 30},
        {"T", 40}, {"TiB", 40},
    };
    for (size_t i = 0; i < sizeof units / sizeof *units; i++) {
        if (strcasecmp(end, units[i].suffix) != 0) continue;
        if (v == 0 || v > (EM_KVPOOL_MAX_BUDGET >> units[i].shift)) return EM_E_ARG;
        *bytes = (uint64_t)v << units[i].shift;
        return EM_OK;
    }
    return EM_E_ARG;
}
