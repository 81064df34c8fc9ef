/* model/text/answer.c - events answer -> tags, answer text tidying (model/text/answer.h).
 *
 *   text[len] --utf8proc_iterate, lower case--> code points cp[n] (invalid bytes dropped)
 *     --split on separators--> pieces --strip numbering, quotes, punctuation, collapse
 *     spaces--> UTF-8 tag (<= EM_ANSWER_MAX_TAG_BYTES) --dedup--> em_tags */
#include "model/text/answer.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <utf8proc.h>

static bool is_space(int32_t c)
{
    if (c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == 0xA0 || c == 0x3000) return true;
    return c > 0x7F && utf8proc_category(c) == UTF8PROC_CATEGORY_ZS;
}

/* ',' ';' '|' newlines, and the CJK commas U+FF0C, U+3001, U+FF1B. */
static bool is_sep(int32_t c)
{
    return c == ',' || c == ';' || c == '|' || c == '\n' || c == '\r' || c == 0xFF0C ||
           c == 0x3001 || c == 0xFF1B;
}

/* Quotes and punctuation that never belong at either end of a tag. */
static bool is_edge_punct(int32_t c)
{
    switch (c) {
    case '"': case '\'': case '`': case '.': case '!': case '?': case ':': case '-': case '*':
    case 0x2022: /* bullet */
    case 0x201C: case 0x201D: case 0x2018: case 0x2019: case 0xAB: case 0xBB: /* curly, guillemets */
    case 0x3002: /* ideographic full stop */
        return true;
    default:
        return false;
    }
}

static int32_t closer_of(int32_t c)
{
    return c == '(' ? ')' : c == '[' ? ']' : c == '{' ? '}' : 0;
}

static bool has_cp(const int32_t *cp, size_t s, size_t e, int32_t c)
{
    for (size_t i = s; i < e; i++)
        if (cp[i] == c) return true;
    return false;
}

/* Narrows [*s, *e) past whitespace, unbalanced brackets and edge punctuation. */
static void strip_edges(const int32_t *cp, size_t *s, size_t *e)
{
    bool changed = true;
    while (changed && *s < *e) {
        changed = false;
        int32_t a = cp[*s], z = cp[*e - 1];
        if (is_space(a) || is_edge_punct(a) ||
            (closer_of(a) && !has_cp(cp, *s + 1, *e, closer_of(a)))) {
            (*s)++;
            changed = true;
        } else if (is_space(z) || is_edge_punct(z) ||
                   ((z == ')' || z == ']' || z == '}') &&
                    !has_cp(cp, *s, *e - 1, z == ')' ? '(' : z == ']' ? '[' : '{'))) {
            (*e)--;
            changed = true;
        } else if (closer_of(a) && z == closer_of(a)) { /* "(dog barking)" */
            (*s)++;
            (*e)--;
            changed = true;
        }
    }
}

/* Skips a leading list number "12." / "3)" followed by a space or the end. */
static void strip_numbering(const int32_t *cp, size_t *s, size_t e)
{
    size_t i = *s;
    while (i < e && is_space(cp[i])) i++;
    size_t d = i;
    while (i < e && cp[i] >= '0' && cp[i] <= '9' && i - d < 4) i++;
    if (i > d && i < e && (cp[i] == '.' || cp[i] == ')') && (i + 1 == e || is_space(cp[i + 1])))
        *s = i + 1;
}

/* Encodes cp[s..e) with whitespace runs collapsed, into out (cap >= MAX_TAG_BYTES + 1),
 * stopping before a character that would pass EM_ANSWER_MAX_TAG_BYTES. Returns the length. */
static size_t encode_tag(const int32_t *cp, size_t s, size_t e, char *out)
{
    size_t n = 0;
    bool space = false;
    for (size_t i = s; i < e; i++) {
        if (is_space(cp[i])) {
            space = true;
            continue;
        }
        uint8_t buf[8];
        size_t k = (size_t)utf8proc_encode_char(cp[i], buf);
        if (n + (space ? 1 : 0) + k > EM_ANSWER_MAX_TAG_BYTES) break;
        if (space && n) out[n++] = ' ';
        space = false;
        memcpy(out + n, buf, k);
        n += k;
    }
    while (n && out[n - 1] == ' ') n--;
    out[n] = '\0';
    return n;
}

static em_err add_one(struct em_tags *t, const char *tag, size_t len)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->v[i], tag) == 0) return EM_OK;
    if (t->n >= EM_ANSWER_MAX_TAGS) {
        t->dropped++;
        return EM_OK;
    }
    char **v = realloc(t->v, (t->n + 1) * sizeof *v);
    if (!v) return EM_E_NOMEM;
    t->v = v;
    if (!(v[t->n] = malloc(len + 1))) return EM_E_NOMEM;
    memcpy(v[t->n], tag, len + 1);
    t->n++;
    return EM_OK;
}

/* The word "and" between whitespace at i (cp is lower-cased). */
static bool is_and(const int32_t *cp, size_t n, size_t i)
{
    return i > 0 && i + 3 < n && is_space(cp[i - 1]) && cp[i] == 'a' && cp[i + 1] == 'n' &&
           cp[i + 2] == 'd' && is_space(cp[i + 3]);
}

em_err em_tags_add(struct em_tags *t, const char *text, size_t len)
{
    if (!text) return EM_OK;
    if (len > EM_ANSWER_MAX_INPUT) len = EM_ANSWER_MAX_INPUT;
    int32_t *cp = malloc((len ? len : 1) * sizeof *cp);
    if (!cp) return EM_E_NOMEM;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        int32_t c;
        utf8proc_ssize_t k =
            utf8proc_iterate((const uint8_t *)text + i, (utf8proc_ssize_t)(len - i), &c);
        if (k <= 0) { /* invalid byte: dropped */
            i++;
            continue;
        }
        i += (size_t)k;
        if (c == 0 || (c < 0x20 && c != '\n' && c != '\r' && c != '\t')) continue;
        cp[n++] = utf8proc_tolower(c);
    }
    em_err rc = EM_OK;
    char tag[EM_ANSWER_MAX_TAG_BYTES + 1];
    for (size_t s = 0, i = 0; rc == EM_OK && i <= n; i++) {
        bool word = i < n && is_and(cp, n, i);
        if (i < n && !is_sep(cp[i]) && !word) continue;
        size_t a = s, z = i;
        strip_numbering(cp, &a, z);
        strip_edges(cp, &a, &z);
        size_t k = a < z ? encode_tag(cp, a, z, tag) : 0;
        if (k) rc = add_one(t, tag, k);
        s = word ? i + 3 : i + 1;
        if (word) i += 2;
    }
    free(cp);
    return rc;
}

void em_tags_free(struct em_tags *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->n; i++) free(t->v[i]);
    free(t->v);
    memset(t, 0, sizeof *t);
}

#define PREAMBLE "the original content of this audio is:"

/* Length of the quote character at s[0..n) if it is one, else 0; *close gets its partner. */
static size_t quote_at(const char *s, size_t n, const char **close)
{
    if (n >= 1 && (s[0] == '"' || s[0] == '\'')) {
        *close = s[0] == '"' ? "\"" : "'";
        return 1;
    }
    if (n >= 3 && !memcmp(s, "\xE2\x80\x9C", 3)) { /* U+201C -> U+201D */
        *close = "\xE2\x80\x9D";
        return 3;
    }
    if (n >= 3 && !memcmp(s, "\xE2\x80\x98", 3)) { /* U+2018 -> U+2019 */
        *close = "\xE2\x80\x99";
        return 3;
    }
    return 0;
}

static void trim(const char **s, size_t *n)
{
    while (*n && isspace((unsigned char)**s)) (*s)++, (*n)--;
    while (*n && isspace((unsigned char)(*s)[*n - 1])) (*n)--;
}

char *em_answer_text(const char *text, size_t len)
{
    const char *s = text ? text : "";
    size_t n = text ? strnlen(text, len) : 0;
    trim(&s, &n);
    if (n >= sizeof PREAMBLE - 1 && strncasecmp(s, PREAMBLE, sizeof PREAMBLE - 1) == 0) {
        s += sizeof PREAMBLE - 1;
        n -= sizeof PREAMBLE - 1;
        trim(&s, &n);
    }
    const char *close;
    size_t q = quote_at(s, n, &close), cl = q ? strlen(close) : 0;
    if (q && n >= q + cl && memcmp(s + n - cl, close, cl) == 0) {
        s += q;
        n -= q + cl;
        trim(&s, &n);
    }
    char *out = malloc(n + 1);
    if (!out) return NULL;
    memcpy(out, s, n);
    out[n] = '\0';
    return out;
}
