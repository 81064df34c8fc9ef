/* results/textnorm.c - the normaliser of textnorm.h: utf8proc for case and marks, one pass
 * over code points for brackets and punctuation, then words through the rule table and
 * the number folder. */
#include "results/textnorm.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* The one table of rules (docs/eval.md mirrors it; test_results_text checks they agree). */
static const struct em_tn_rule rules[] = {
    {EM_TN_FILLER, "hmm", NULL},
    {EM_TN_FILLER, "mm", NULL},
    {EM_TN_FILLER, "mhm", NULL},
    {EM_TN_FILLER, "mmm", NULL},
    {EM_TN_FILLER, "uh", NULL},
    {EM_TN_FILLER, "um", NULL},
    {EM_TN_FILLER, "er", NULL},
    {EM_TN_FILLER, "ah", NULL},
    {EM_TN_WORD, "won't", "will not"},
    {EM_TN_WORD, "can't", "can not"},
    {EM_TN_WORD, "cannot", "can not"},
    {EM_TN_WORD, "shan't", "shall not"},
    {EM_TN_WORD, "let's", "let us"},
    {EM_TN_WORD, "ain't", "is not"},
    {EM_TN_WORD, "i'm", "i am"},
    {EM_TN_WORD, "gonna", "going to"},
    {EM_TN_WORD, "wanna", "want to"},
    {EM_TN_WORD, "gotta", "got to"},
    {EM_TN_WORD, "mr", "mister"},
    {EM_TN_WORD, "mrs", "missus"},
    {EM_TN_WORD, "ms", "miss"},
    {EM_TN_WORD, "dr", "doctor"},
    {EM_TN_WORD, "prof", "professor"},
    {EM_TN_WORD, "st", "saint"},
    {EM_TN_WORD, "jr", "junior"},
    {EM_TN_WORD, "sr", "senior"},
    {EM_TN_WORD, "ok", "okay"},
    {EM_TN_WORD, "colour", "color"},
    {EM_TN_WORD, "colours", "colors"},
    {EM_TN_WORD, "harbour", "harbor"},
    {EM_TN_WORD, "harbours", "harbors"},
    {EM_TN_WORD, "favourite", "favorite"},
    {EM_TN_WORD, "neighbour", "neighbor"},
    {EM_TN_WORD, "honour", "honor"},
    {EM_TN_WORD, "labour", "labor"},
    {EM_TN_WORD, "centre", "center"},
    {EM_TN_WORD, "metre", "meter"},
    {EM_TN_WORD, "metres", "meters"},
    {EM_TN_WORD, "theatre", "theater"},
    {EM_TN_WORD, "grey", "gray"},
    {EM_TN_WORD, "organise", "organize"},
    {EM_TN_WORD, "realise", "realize"},
    {EM_TN_WORD, "travelling", "traveling"},
    {EM_TN_WORD, "programme", "program"},
    {EM_TN_SUFFIX, "n't", " not"},
    {EM_TN_SUFFIX, "'re", " are"},
    {EM_TN_SUFFIX, "'ll", " will"},
    {EM_TN_SUFFIX, "'ve", " have"},
    {EM_TN_SUFFIX, "'d", " would"},
    {EM_TN_NUM_ONES, "zero", "0"},
    {EM_TN_NUM_ONES, "one", "1"},
    {EM_TN_NUM_ONES, "two", "2"},
    {EM_TN_NUM_ONES, "three", "3"},
    {EM_TN_NUM_ONES, "four", "4"},
    {EM_TN_NUM_ONES, "five", "5"},
    {EM_TN_NUM_ONES, "six", "6"},
    {EM_TN_NUM_ONES, "seven", "7"},
    {EM_TN_NUM_ONES, "eight", "8"},
    {EM_TN_NUM_ONES, "nine", "9"},
    {EM_TN_NUM_ONES, "ten", "10"},
    {EM_TN_NUM_ONES, "eleven", "11"},
    {EM_TN_NUM_ONES, "twelve", "12"},
    {EM_TN_NUM_ONES, "thirteen", "13"},
    {EM_TN_NUM_ONES, "fourteen", "14"},
    {EM_TN_NUM_ONES, "fifteen", "15"},
    {EM_TN_NUM_ONES, "sixteen", "16"},
    {EM_TN_NUM_ONES, "seventeen", "17"},
    {EM_TN_NUM_ONES, "eighteen", "18"},
    {EM_TN_NUM_ONES, "nineteen", "19"},
    {EM_TN_NUM_TENS, "twenty", "20"},
    {EM_TN_NUM_TENS, "thirty", "30"},
    {EM_TN_NUM_TENS, "forty", "40"},
    {EM_TN_NUM_TENS, "fifty", "50"},
    {EM_TN_NUM_TENS, "sixty", "60"},
    {EM_TN_NUM_TENS, "seventy", "70"},
    {EM_TN_NUM_TENS, "eighty", "80"},
    {EM_TN_NUM_TENS, "ninety", "90"},
    {EM_TN_NUM_SCALE, "hundred", "100"},
    {EM_TN_NUM_SCALE, "thousand", "1000"},
    {EM_TN_NUM_SCALE, "million", "1000000"},
    {EM_TN_NUM_SCALE, "billion", "1000000000"},
};

const struct em_tn_rule *em_tn_rules(size_t *n)
{
    *n = sizeof rules / sizeof *rules;
    return rules;
}

const char *em_tn_kind_name(enum em_tn_kind k)
{
    static const char *const names[] = {"FILLER", "WORD", "SUFFIX", "NUM_ONES", "NUM_TENS",
                                        "NUM_SCALE"};
    return (unsigned)k < sizeof names / sizeof *names ? names[k] : "?";
}

/* A growable output string; every append is bounded by the input size times a small
 * factor, so it cannot run away. */
struct sbuf {
    char *s;
    size_t n, cap;
    int oom;
};

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->cap ? b->cap : 64);
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static const struct em_tn_rule *find(enum em_tn_kind lo, enum em_tn_kind hi, const char *w,
                                     size_t n)
{
    for (size_t i = 0; i < sizeof rules / sizeof *rules; i++)
        if (rules[i].kind >= lo && rules[i].kind <= hi && strlen(rules[i].from) == n &&
            memcmp(rules[i].from, w, n) == 0)
            return &rules[i];
    return NULL;
}

/* Step 2 and 3 over the case-folded text t: brackets dropped, punctuation to spaces. */
static void strip_symbols(const uint8_t *t, size_t n, struct sbuf *o)
{
    int depth = 0;
    size_t i = 0;
    utf8proc_int32_t prev = ' ';
    while (i < n) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(t + i, (utf8proc_ssize_t)(n - i), &c);
        if (k <= 0) break; /* cannot happen: utf8proc produced t */
        utf8proc_int32_t next = 0;
        if ((size_t)k < n - i) utf8proc_iterate(t + i + k, (utf8proc_ssize_t)(n - i - k), &next);
        if (c == '[' || c == '(') {
            depth++;
        } else if ((c == ']' || c == ')') && depth > 0) {
            depth--;
            sb_put(o, " ", 1);
        } else if (depth == 0) {
            utf8proc_category_t cat = utf8proc_category(c);
            int digits = prev >= '0' && prev <= '9' && next >= '0' && next <= '9';
            int alnum_l = utf8proc_category(prev) <= UTF8PROC_CATEGORY_NO && prev != ' ';
            int alnum_r = utf8proc_category(next) <= UTF8PROC_CATEGORY_NO && next != 0;
            if (c == '.' && digits) {
                sb_put(o, ".", 1);
            } else if (c == ',' && digits) {
                /* thousands separator: dropped */
            } else if ((c == '\'' || c == 0x2019) && alnum_l && alnum_r) {
                sb_put(o, "'", 1);
            } else if ((c == '\'' || c == 0x2019) && alnum_l && (next == 0 || next == ' ')) {
                /* trailing apostrophe (dogs'): dropped */
            } else if (cat >= UTF8PROC_CATEGORY_PC || cat == UTF8PROC_CATEGORY_ZS ||
                       c < 0x20) {
                sb_put(o, " ", 1);
            } else {
                sb_put(o, (const char *)t + i, (size_t)k);
            }
        }
        prev = c;
        i += (size_t)k;
    }
}

/* The words of s (space-separated) after the FILLER / WORD / SUFFIX rules, into o. */
static void apply_word_rules(const char *s, struct sbuf *o)
{
    for (const char *p = s; *p;) {
        while (*p == ' ') p++;
        const char *e = p;
        while (*e && *e != ' ') e++;
        size_t n = (size_t)(e - p);
        while (n && *p == '\'') p++, n--;
        while (n && p[n - 1] == '\'') n--;
        if (n) {
            const struct em_tn_rule *r = find(EM_TN_FILLER, EM_TN_WORD, p, n);
            const struct em_tn_rule *suf = NULL;
            for (size_t i = 0; !r && i < sizeof rules / sizeof *rules; i++) {
                size_t m = strlen(rules[i].from);
                if (rules[i].kind == EM_TN_SUFFIX && n > m && memcmp(p + n - m, rules[i].from, m) == 0) {
                    suf = &rules[i];
                    break;
                }
            }
            if (r && r->kind == EM_TN_FILLER) {
                /* dropped */
            } else if (r) {
                sb_put(o, " ", 1);
                sb_put(o, r->to, strlen(r->to));
            } else if (suf) {
                sb_put(o, " ", 1);
                sb_put(o, p, n - strlen(suf->from));
                sb_put(o, suf->to, strlen(suf->to));
            } else {
                sb_put(o, " ", 1);
                sb_put(o, p, n);
            }
        }
        p = e;
    }
}

/* Step 5: runs of number words to digits; other words copied. */
struct numrun {
    uint64_t total, cur;
    enum { NR_NONE, NR_ONES, NR_TENS, NR_SCALE } last;
    int active;
};

static void num_flush(struct numrun *nr, struct sbuf *o)
{
    if (!nr->active) return;
    char d[32];
    int k = snprintf(d, sizeof d, " %llu", (unsigned long long)(nr->total + nr->cur));
    sb_put(o, d, (size_t)k);
    memset(nr, 0, sizeof *nr);
}

static void fold_numbers(const char *s, struct sbuf *o)
{
    struct numrun nr = {0};
    for (const char *p = s; *p;) {
        while (*p == ' ') p++;
        if (!*p) break;
        const char *e = p;
        while (*e && *e != ' ') e++;
        size_t n = (size_t)(e - p);
        const struct em_tn_rule *r = find(EM_TN_NUM_ONES, EM_TN_NUM_SCALE, p, n);
        uint64_t v = r ? strtoull(r->to, NULL, 10) : 0;
        if (!r && nr.active && nr.last == NR_SCALE && n == 3 && memcmp(p, "and", 3) == 0) {
            /* "hundred and five": "and" joins the run when a ones or tens word follows */
            const char *q = e;
            while (*q == ' ') q++;
            const char *qe = q;
            while (*qe && *qe != ' ') qe++;
            if (find(EM_TN_NUM_ONES, EM_TN_NUM_TENS, q, (size_t)(qe - q))) {
                p = e;
                continue;
            }
        }
        if (r && r->kind == EM_TN_NUM_ONES) {
            int joins = nr.last == NR_NONE || nr.last == NR_SCALE || (nr.last == NR_TENS && v < 10 && v > 0);
            if (!joins) num_flush(&nr, o);
            nr.cur += v;
            nr.last = NR_ONES;
            nr.active = 1;
        } else if (r && r->kind == EM_TN_NUM_TENS) {
            if (nr.last == NR_ONES || nr.last == NR_TENS || (nr.last == NR_SCALE && nr.cur % 100))
                num_flush(&nr, o);
            nr.cur += v;
            nr.last = NR_TENS;
            nr.active = 1;
        } else if (r) { /* scale: multiplies the group before it ("two hundred") */
            if (!nr.active || nr.cur == 0 || (v == 100 && nr.cur >= 100)) {
                num_flush(&nr, o);
                sb_put(o, " ", 1);
                sb_put(o, p, n); /* "hundred" with no number before it stays a word */
            } else if (v == 100) {
                nr.cur *= 100;
                nr.last = NR_SCALE;
            } else {
                nr.total += nr.cur * v;
                nr.cur = 0;
                nr.last = NR_SCALE;
            }
        } else {
            num_flush(&nr, o);
            sb_put(o, " ", 1);
            sb_put(o, p, n);
        }
        p = e;
    }
    num_flush(&nr, o);
}

em_err em_textnorm(const char *s, size_t len, char **out, struct em_errbuf *eb)
{
    *out = NULL;
    if (len > EM_TEXTNORM_MAX)
        return em_errf(eb, EM_E_TOO_LONG, "text of %zu bytes (limit %u)", len, EM_TEXTNORM_MAX);
    utf8proc_uint8_t *folded = NULL;
    utf8proc_ssize_t fn = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len,
                                       &folded,
                                       UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT |
                                           UTF8PROC_CASEFOLD | UTF8PROC_STRIPMARK);
    if (fn < 0) {
        free(folded);
        return fn == UTF8PROC_ERROR_NOMEM ? em_errf(eb, EM_E_NOMEM, "out of memory")
                                          : em_errf(eb, EM_E_FORMAT, "text is not valid UTF-8: %s",
                                                    utf8proc_errmsg(fn));
    }
    struct sbuf a = {0}, b = {0}, c = {0};
    sb_put(&a, "", 0);
    sb_put(&b, "", 0);
    sb_put(&c, "", 0);
    strip_symbols(folded, (size_t)fn, &a);
    free(folded);
    if (!a.oom) apply_word_rules(a.s, &b);
    if (!b.oom) fold_numbers(b.s, &c);
    free(a.s);
    free(b.s);
    if (a.oom || b.oom || c.oom) {
        free(c.s);
        return em_errf(eb, EM_E_NOMEM, "out of memory");
    }
    /* fold_numbers writes " w1 w2": drop the leading space */
    size_t skip = c.n && c.s[0] == ' ';
    memmove(c.s, c.s + skip, c.n - skip + 1);
    *out = c.s;
    return EM_OK;
}
