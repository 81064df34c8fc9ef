/* results/wer.c - Levenshtein over token ids in two rows of (distance, sub, del, ins): ties
 * prefer the diagonal, then deletion, so the counts are those of one minimal alignment. */
#include "results/wer.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

struct cell {
    uint32_t d, s, del, ins;
};

em_err em_edits_of(const uint32_t *ref, size_t nr, const uint32_t *hyp, size_t nh,
                   struct em_edits *e, struct em_errbuf *eb)
{
    memset(e, 0, sizeof *e);
    if (nr > EM_WER_MAX_TOKENS || nh > EM_WER_MAX_TOKENS)
        return em_errf(eb, EM_E_TOO_LONG, "%zu reference and %zu hypothesis tokens (limit %u)",
                       nr, nh, EM_WER_MAX_TOKENS);
    struct cell *prev = calloc(nh + 1, sizeof *prev), *cur = calloc(nh + 1, sizeof *cur);
    if (!prev || !cur) {
        free(prev);
        free(cur);
        return em_errf(eb, EM_E_NOMEM, "out of memory");
    }
    for (size_t j = 1; j <= nh; j++) prev[j] = (struct cell){(uint32_t)j, 0, 0, (uint32_t)j};
    for (size_t i = 1; i <= nr; i++) {
        cur[0] = (struct cell){(uint32_t)i, 0, (uint32_t)i, 0};
        for (size_t j = 1; j <= nh; j++) {
            struct cell best = prev[j - 1];
            if (ref[i - 1] != hyp[j - 1]) {
                best.d++;
                best.s++;
            }
            struct cell c = prev[j]; /* ref[i-1] deleted */
            if (c.d + 1 < best.d) {
                best = c;
                best.d++;
                best.del++;
            }
            c = cur[j - 1]; /* hyp[j-1] inserted */
            if (c.d + 1 < best.d) {
                best = c;
                best.d++;
                best.ins++;
            }
            cur[j] = best;
        }
        struct cell *t = prev;
        prev = cur;
        cur = t;
    }
    e->sub = prev[nh].s;
    e->del = prev[nh].del;
    e->ins = prev[nh].ins;
    e->ref = nr;
    e->hyp = nh;
    free(prev);
    free(cur);
    return EM_OK;
}

/* Words of s as ids: equal words get equal ids (ids index a table of first occurrences
 * shared by both sides, so the comparison is by content). */
struct vocab {
    const char **w;
    size_t *len;
    size_t n;
};

static uint32_t word_id(struct vocab *v, const char *w, size_t n)
{
    for (size_t i = 0; i < v->n; i++)
        if (v->len[i] == n && memcmp(v->w[i], w, n) == 0) return (uint32_t)i;
    v->w[v->n] = w;
    v->len[v->n] = n;
    return (uint32_t)v->n++;
}

static size_t count_words(const char *s)
{
    size_t n = 0;
    for (const char *p = s; *p;) {
        while (*p == ' ') p++;
        if (!*p) break;
        n++;
        while (*p && *p != ' ') p++;
    }
    return n;
}

static size_t split_words(const char *s, struct vocab *v, uint32_t *ids)
{
    size_t n = 0;
    for (const char *p = s; *p;) {
        while (*p == ' ') p++;
        if (!*p) break;
        const char *e = p;
        while (*e && *e != ' ') e++;
        ids[n++] = word_id(v, p, (size_t)(e - p));
        p = e;
    }
    return n;
}

em_err em_wer_words(const char *ref, const char *hyp, struct em_edits *e, struct em_errbuf *eb)
{
    memset(e, 0, sizeof *e);
    size_t nr = count_words(ref), nh = count_words(hyp);
    if (nr > EM_WER_MAX_TOKENS || nh > EM_WER_MAX_TOKENS)
        return em_errf(eb, EM_E_TOO_LONG, "%zu reference and %zu hypothesis words (limit %u)",
                       nr, nh, EM_WER_MAX_TOKENS);
    size_t total = nr + nh + 1;
    uint32_t *ids = malloc(total * sizeof *ids);
    struct vocab v = {malloc(total * sizeof *v.w), malloc(total * sizeof *v.len), 0};
    em_err rc = EM_E_NOMEM;
    if (ids && v.w && v.len) {
        split_words(ref, &v, ids);
        split_words(hyp, &v, ids + nr);
        rc = em_edits_of(ids, nr, ids + nr, nh, e, eb);
    } else {
        em_errf(eb, rc, "out of memory");
    }
    free(ids);
    free(v.w);
    free(v.len);
    return rc;
}

/* Code points of s with outer spaces stripped and inner runs of spaces as one. */
static em_err code_points(const char *s, uint32_t **out, size_t *n, struct em_errbuf *eb)
{
    size_t len = strlen(s);
    *n = 0;
    *out = malloc((len + 1) * sizeof **out);
    if (!*out) return em_errf(eb, EM_E_NOMEM, "out of memory");
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    int space = 0;
    while (i < len) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &c);
        if (k <= 0) {
            free(*out);
            *out = NULL;
            return em_errf(eb, EM_E_FORMAT, "invalid UTF-8 at byte %zu", i);
        }
        i += (size_t)k;
        if (c == ' ') {
            space = 1;
            continue;
        }
        if (space && *n) (*out)[(*n)++] = ' ';
        space = 0;
        (*out)[(*n)++] = (uint32_t)c;
    }
    return EM_OK;
}

em_err em_wer_chars(const char *ref, const char *hyp, struct em_edits *e, struct em_errbuf *eb)
{
    memset(e, 0, sizeof *e);
    uint32_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    em_err rc = code_points(ref, &a, &na, eb);
    if (rc == EM_OK) rc = code_points(hyp, &b, &nb, eb);
    if (rc == EM_OK) rc = em_edits_of(a, na, b, nb, e, eb);
    free(a);
    free(b);
    return rc;
}
