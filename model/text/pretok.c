/* model/text/pretok.c - the Qwen2 pre-tokenizer regex as a hand-written scanner.
 *
 * Each alternative of the regex is one branch below, tried in the regex's order; the
 * backtracking of the greedy quantifiers is resolved in closed form (comments per branch).
 * Classes come from model/text/unicode_tables.c, measured on the reference tokenizer itself
 * (tests/golden/gen_unicode.py), so they follow its regex engine's Unicode version (16.0
 * today) rather than libutf8proc's (15.0 on Debian 12: 5004 code points differ). */
#include "model/text/pretok.h"

#include <utf8proc.h>

#include "model/text/unicode_tables.h"

static bool in_ranges(const uint32_t (*r)[2], size_t n, uint32_t cp)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < r[mid][0]) hi = mid;
        else if (cp > r[mid][1]) lo = mid + 1;
        else return true;
    }
    return false;
}

enum em_pretok_class em_pretok_classify(int32_t cp)
{
    if (cp == '\r' || cp == '\n') return EM_PRETOK_NEWLINE;
    if (cp < 0) return EM_PRETOK_OTHER;
    if (cp < 0x80) {
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return EM_PRETOK_LETTER;
        if (cp >= '0' && cp <= '9') return EM_PRETOK_NUMBER;
        return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) ? EM_PRETOK_SPACE : EM_PRETOK_OTHER;
    }
    uint32_t c = (uint32_t)cp;
    if (in_ranges(em_uni_letter, em_uni_n_letter, c)) return EM_PRETOK_LETTER;
    if (in_ranges(em_uni_number, em_uni_n_number, c)) return EM_PRETOK_NUMBER;
    if (in_ranges(em_uni_space, em_uni_n_space, c)) return EM_PRETOK_SPACE;
    return EM_PRETOK_OTHER;
}

/* Decodes the code point at s[pos..len); *cp = -1 for an invalid byte (width 1) and
 * at the end of the text (width 0). Returns the width in bytes. */
static size_t cp_at(const char *s, size_t len, size_t pos, int32_t *cp)
{
    if (pos >= len) {
        *cp = -1;
        return 0;
    }
    utf8proc_int32_t c;
    utf8proc_ssize_t w = utf8proc_iterate((const utf8proc_uint8_t *)s + pos,
                                          (utf8proc_ssize_t)(len - pos), &c);
    if (w <= 0) {
        *cp = -1;
        return 1;
    }
    *cp = c;
    return (size_t)w;
}

static enum em_pretok_class class_at(const char *s, size_t len, size_t pos, size_t *w)
{
    int32_t cp;
    *w = cp_at(s, len, pos, &cp);
    if (*w == 0) return EM_PRETOK_OTHER; /* callers test pos < len first */
    return em_pretok_classify(cp);
}

/* End of the run of characters of class k (or, with k2, of either class) from pos. */
static size_t run_of(const char *s, size_t len, size_t pos, enum em_pretok_class k,
                     enum em_pretok_class k2)
{
    while (pos < len) {
        size_t w;
        enum em_pretok_class c = class_at(s, len, pos, &w);
        if (c != k && c != k2) break;
        pos += w;
    }
    return pos;
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d): returns the match length or 0. U+017F (long s) folds to s. */
static size_t contraction(const char *s, size_t len, size_t pos)
{
    int32_t a, b;
    size_t w1 = cp_at(s, len, pos + 1, &a);
    if (w1 == 0) return 0;
    if (a == 0x17F) a = 's';
    if (a >= 'A' && a <= 'Z') a += 'a' - 'A';
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 1 + w1;
    if (a != 'r' && a != 'v' && a != 'l') return 0;
    size_t w2 = cp_at(s, len, pos + 1 + w1, &b);
    if (w2 == 0) return 0;
    if (b >= 'A' && b <= 'Z') b += 'a' - 'A';
    if ((a == 'l' && b == 'l') || (a != 'l' && b == 'e')) return 1 + w1 + w2;
    return 0;
}

size_t em_pretok_next(const char *s, size_t len, size_t pos)
{
    size_t w0, w1;
    enum em_pretok_class c0 = class_at(s, len, pos, &w0);
    if (s[pos] == '\'') {
        size_t m = contraction(s, len, pos);
        if (m) return pos + m;
    }
    /* [^\r\n\p{L}\p{N}]?\p{L}+ : the optional char never is a letter, so either the piece
     * starts with letters or with one non-letter/number/newline followed by letters */
    if (c0 == EM_PRETOK_LETTER) return run_of(s, len, pos, EM_PRETOK_LETTER, EM_PRETOK_LETTER);
    enum em_pretok_class c1 = pos + w0 < len ? class_at(s, len, pos + w0, &w1) : EM_PRETOK_NEWLINE;
    if ((c0 == EM_PRETOK_OTHER || c0 == EM_PRETOK_SPACE) && pos + w0 < len &&
        c1 == EM_PRETOK_LETTER)
        return run_of(s, len, pos + w0, EM_PRETOK_LETTER, EM_PRETOK_LETTER);
    /* \p{N} : one number character */
    if (c0 == EM_PRETOK_NUMBER) return pos + w0;
    /* ' ?[^\s\p{L}\p{N}]+[\r\n]*' */
    if (c0 == EM_PRETOK_OTHER || (s[pos] == ' ' && pos + w0 < len && c1 == EM_PRETOK_OTHER)) {
        size_t p = c0 == EM_PRETOK_OTHER ? pos : pos + w0;
        p = run_of(s, len, p, EM_PRETOK_OTHER, EM_PRETOK_OTHER);
        return run_of(s, len, p, EM_PRETOK_NEWLINE, EM_PRETOK_NEWLINE);
    }
    /* c0 is whitespace. Scan the run, remembering the end of its last \r/\n and the start
     * of its last character. */
    size_t p = pos, last_nl_end = 0, last_start = pos, nchars = 0;
    while (p < len) {
        size_t w;
        enum em_pretok_class c = class_at(s, len, p, &w);
        if (c != EM_PRETOK_SPACE && c != EM_PRETOK_NEWLINE) break;
        last_start = p;
        p += w;
        nchars++;
        if (c == EM_PRETOK_NEWLINE) last_nl_end = p;
    }
    /* \s*[\r\n]+ : greedy \s* backs off to the last newline of the run */
    if (last_nl_end) return last_nl_end;
    /* \s+(?!\S) : the whole run at the end of text, else all but its last character */
    if (p == len) return p;
    if (nchars >= 2) return last_start;
    /* \s+ */
    return p;
}
