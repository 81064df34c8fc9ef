/* results/evtags.c - tag normalisation (case, separators, plural, synonyms) and set scores. */
#include "results/evtags.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct em_evtags {
    char (*alias)[EM_EVTAG_MAX_TAG + 1]; /* [cap], grown as lines are read */
    char (*canon)[EM_EVTAG_MAX_TAG + 1];
    size_t n, cap;
};

/* English plural to singular, in place: -ies -> -y, -sses/-ches/-shes/-xes/-zes lose "es",
 * other -s (but -ss, -us, -is) lose "s"; words of up to 3 letters are kept. */
static void singular(char *w)
{
    size_t m = strlen(w);
#define ENDS(s) (m > strlen(s) && strcmp(w + m - strlen(s), s) == 0)
    if (m > 4 && ENDS("ies")) {
        w[m - 3] = 'y';
        w[m - 2] = 0;
    } else if (ENDS("sses") || ENDS("ches") || ENDS("shes") || ENDS("xes") || ENDS("zes")) {
        w[m - 2] = 0;
    } else if (m > 3 && w[m - 1] == 's' && !ENDS("ss") && !ENDS("us") && !ENDS("is")) {
        w[m - 1] = 0;
    }
#undef ENDS
}

/* Case, separators and plural; no synonyms. */
static void basic_norm(const char *tag, char *out, size_t cap)
{
    size_t n = 0;
    int space = 0;
    for (const char *p = tag; *p && n + 1 < cap && n < EM_EVTAG_MAX_TAG; p++) {
        char c = *p;
        if (c == '_' || c == '-' || c == ' ' || c == '\t') {
            space = n > 0;
            continue;
        }
        if (space && n + 2 < cap) out[n++] = ' ';
        space = 0;
        out[n++] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    out[n] = 0;
    /* plural of every word, in place (each only shrinks) */
    size_t o = 0;
    for (size_t i = 0; i <= n;) {
        size_t j = i;
        while (j < n && out[j] != ' ') j++;
        char w[EM_EVTAG_MAX_TAG + 1];
        size_t m = j - i;
        memcpy(w, out + i, m);
        w[m] = 0;
        singular(w);
        size_t k = strlen(w);
        memmove(out + o, w, k);
        o += k;
        if (j < n) out[o++] = ' ';
        i = j + 1;
    }
    out[o] = 0;
}

void em_evtag_norm(const struct em_evtags *t, const char *tag, char *out, size_t cap)
{
    basic_norm(tag, out, cap);
    for (size_t i = 0; t && i < t->n; i++)
        if (strcmp(t->alias[i], out) == 0) {
            snprintf(out, cap, "%s", t->canon[i]);
            return;
        }
}

static em_err add(struct em_evtags *t, const char *alias, size_t an, const char *canon,
                  unsigned line, struct em_errbuf *eb)
{
    if (t->n >= EM_EVTAG_MAX_ENTRIES)
        return em_errf(eb, EM_E_TOO_LONG, "line %u: more than %u aliases", line,
                       EM_EVTAG_MAX_ENTRIES);
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 32;
        void *a = realloc(t->alias, cap * sizeof *t->alias);
        if (a) t->alias = a;
        void *c = a ? realloc(t->canon, cap * sizeof *t->canon) : NULL;
        if (c) t->canon = c;
        if (!a || !c) return em_errf(eb, EM_E_NOMEM, "out of memory");
        t->cap = cap;
    }
    char raw[EM_EVTAG_MAX_TAG + 1];
    snprintf(raw, sizeof raw, "%.*s", (int)(an < EM_EVTAG_MAX_TAG ? an : EM_EVTAG_MAX_TAG), alias);
    basic_norm(raw, t->alias[t->n], sizeof t->alias[t->n]);
    if (!t->alias[t->n][0]) return EM_OK;
    snprintf(t->canon[t->n], sizeof t->canon[t->n], "%s", canon);
    t->n++;
    return EM_OK;
}

em_err em_evtag_parse(const char *data, size_t len, struct em_evtags **out, struct em_errbuf *eb)
{
    *out = NULL;
    if (len > EM_EVTAG_MAX_FILE)
        return em_errf(eb, EM_E_TOO_LONG, "synonym table of %zu bytes (limit %u)", len,
                       EM_EVTAG_MAX_FILE);
    struct em_evtags *t = calloc(1, sizeof *t);
    if (!t) return em_errf(eb, EM_E_NOMEM, "out of memory");
    em_err rc = EM_OK;
    unsigned line = 0;
    for (const char *p = data, *end = data + len; rc == EM_OK && p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        line++;
        const char *q = p;
        while (q < e && (*q == ' ' || *q == '\t' || *q == '\r')) q++;
        if (q < e && *q != '#') {
            const char *colon = memchr(q, ':', (size_t)(e - q));
            if (!colon) {
                rc = em_errf(eb, EM_E_FORMAT, "line %u: expected 'canonical: alias, ...'", line);
                break;
            }
            char craw[EM_EVTAG_MAX_TAG + 1], canon[EM_EVTAG_MAX_TAG + 1];
            size_t cn = (size_t)(colon - q);
            snprintf(craw, sizeof craw, "%.*s", (int)(cn < EM_EVTAG_MAX_TAG ? cn : EM_EVTAG_MAX_TAG), q);
            basic_norm(craw, canon, sizeof canon);
            if (!canon[0]) {
                rc = em_errf(eb, EM_E_FORMAT, "line %u: empty canonical tag", line);
                break;
            }
            rc = add(t, canon, strlen(canon), canon, line, eb);
            for (const char *a = colon + 1; rc == EM_OK && a < e;) {
                const char *comma = memchr(a, ',', (size_t)(e - a));
                const char *ae = comma ? comma : e;
                while (ae > a && (ae[-1] == '\r' || ae[-1] == ' ')) ae--;
                rc = add(t, a, (size_t)(ae - a), canon, line, eb);
                a = comma ? comma + 1 : e;
            }
        }
        p = nl ? nl + 1 : end;
    }
    if (rc != EM_OK) {
        em_evtag_free(t);
        return rc;
    }
    *out = t;
    return EM_OK;
}

void em_evtag_free(struct em_evtags *t)
{
    if (!t) return;
    free(t->alias);
    free(t->canon);
    free(t);
}

/* Normalised, deduplicated copies of v[n] into a malloc'd array; count in *m. */
static char (*norm_set(const struct em_evtags *t, const char *const *v, size_t n, size_t *m))[EM_EVTAG_MAX_TAG + 1]
{
    char (*s)[EM_EVTAG_MAX_TAG + 1] = calloc(n ? n : 1, sizeof *s);
    *m = 0;
    if (!s) return NULL;
    for (size_t i = 0; i < n; i++) {
        em_evtag_norm(t, v[i], s[*m], sizeof s[*m]);
        if (!s[*m][0]) continue;
        size_t j = 0;
        while (j < *m && strcmp(s[j], s[*m]) != 0) j++;
        if (j == *m) (*m)++;
    }
    return s;
}

em_err em_evtag_score(const struct em_evtags *t, const char *const *pred, size_t np,
                     const char *const *ref, size_t nr, struct em_evtag_counts *c,
                     struct em_errbuf *eb)
{
    memset(c, 0, sizeof *c);
    size_t mp = 0, mr = 0;
    char (*a)[EM_EVTAG_MAX_TAG + 1] = norm_set(t, pred, np, &mp);
    char (*b)[EM_EVTAG_MAX_TAG + 1] = norm_set(t, ref, nr, &mr);
    if (!a || !b) {
        free(a);
        free(b);
        return em_errf(eb, EM_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < mp; i++)
        for (size_t j = 0; j < mr; j++)
            if (strcmp(a[i], b[j]) == 0) {
                c->tp++;
                break;
            }
    c->npred = mp;
    c->nref = mr;
    free(a);
    free(b);
    return EM_OK;
}

void em_evtag_prf(const struct em_evtag_counts *c, double *p, double *r, double *f1)
{
    int both_empty = c->npred == 0 && c->nref == 0;
    *p = c->npred ? (double)c->tp / (double)c->npred : both_empty;
    *r = c->nref ? (double)c->tp / (double)c->nref : both_empty;
    *f1 = (*p + *r) > 0 ? 2 * *p * *r / (*p + *r) : 0;
}
