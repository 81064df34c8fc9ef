/* coordinator/cli.c - shared helpers of the coordinator-side subcommands. */
#include "coordinator/cli.h"

#include "common/log.h"
#include "common/smallfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int em_cli_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    if (!s || !*s || *s == '-' || *s == '+' || *s == ' ') return -1;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int em_cli_duration_ms(const char *s, int64_t max_ms, int64_t *ms)
{
    static const struct {
        char suffix;
        int64_t ms;
    } units[] = {{'s', 1000}, {'m', 60000}, {'h', 3600000}, {'d', 86400000}};
    char num[32];
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n >= sizeof num) return -1;
    int64_t unit = 1000;
    memcpy(num, s, n + 1);
    for (size_t i = 0; i < sizeof units / sizeof *units; i++)
        if (num[n - 1] == units[i].suffix) {
            unit = units[i].ms;
            num[n - 1] = 0;
        }
    uint64_t v;
    if (em_cli_u64(num, 1, (uint64_t)(max_ms / unit), &v) != 0) return -1;
    *ms = (int64_t)v * unit;
    return 0;
}

const char *em_cli_redis_url(const char *flag)
{
    if (flag && *flag) return flag;
    const char *e = getenv("EARMARK_REDIS_URL");
    return (e && *e) ? e : NULL;
}

em_err em_cli_read_file(const char *path, size_t max, uint8_t **data, size_t *len,
                        struct em_errbuf *eb)
{
    *data = NULL;
    *len = 0;
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) return em_errf(eb, EM_E_IO, "%s: %s", path, strerror(errno));
    em_err rc = EM_OK;
    size_t cap = 65536, n = 0;
    uint8_t *b = malloc(cap + 1);
    while (b) {
        if (n == cap) {
            if (cap >= max) {
                rc = em_errf(eb, EM_E_TOO_LONG, "%s: larger than %zu bytes", path, max);
                break;
            }
            size_t nc = cap * 2 > max ? max : cap * 2;
            uint8_t *nb = realloc(b, nc + 1);
            if (!nb) break;
            b = nb;
            cap = nc;
        }
        size_t got = fread(b + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) rc = em_errf(eb, EM_E_IO, "%s: read error", path);
            goto done;
        }
    }
    if (rc == EM_OK) rc = em_errf(eb, EM_E_NOMEM, "%s: out of memory", path);
done:
    if (f != stdin) fclose(f);
    if (rc != EM_OK) {
        free(b);
        return rc;
    }
    b[n] = 0;
    *data = b;
    *len = n;
    return EM_OK;
}

void em_progress_of(const struct em_batch_info *b, uint64_t in_flight, uint64_t dead,
                    int64_t now_ms, struct em_progress *p)
{
    memset(p, 0, sizeof *p);
    p->total = b->total;
    p->done = b->done;
    p->failed = b->failed;
    p->skipped = b->skipped;
    p->dead = dead;
    p->cancelled = b->cancelled;
    p->complete = strcmp(b->state, "complete") == 0 || strcmp(b->state, "cancelled") == 0;
    uint64_t settled = b->done + b->failed + b->cancelled;
    uint64_t left = settled >= b->total ? 0 : b->total - settled;
    p->in_flight = in_flight > left ? left : in_flight;
    p->pending = left - p->in_flight;
    int64_t end = p->complete && b->completed_ms > b->created_ms ? b->completed_ms : now_ms;
    double el = (double)(end - b->created_ms) / 1000.0;
    uint64_t worked = b->done + b->failed > b->skipped ? b->done + b->failed - b->skipped : 0;
    p->rate = el > 0.001 ? (double)worked / el : 0.0;
    p->eta_s = left == 0 ? 0.0 : (p->rate > 0 ? (double)left / p->rate : -1.0);
    if (!p->complete && b->stalled && *b->stalled) { /* nothing moves: no rate, no ETA */
        p->stalled = 1;
        p->rate = 0.0;
        p->eta_s = -1.0;
    }
}

void em_progress_line(const struct em_progress *p, char *out, size_t cap)
{
    char bar[21];
    uint64_t settled = p->done + p->failed;
    size_t fill = p->total ? (size_t)(settled * 20 / p->total) : 20;
    if (fill > 20) fill = 20;
    for (size_t i = 0; i < 20; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[20] = 0;
    char eta[32];
    if (p->eta_s < 0)
        snprintf(eta, sizeof eta, "?");
    else
        snprintf(eta, sizeof eta, "%.0fs", p->eta_s);
    snprintf(out, cap, "[%s] %llu/%llu done %llu failed %.1f items/s ETA %s%s", bar,
             (unsigned long long)p->done, (unsigned long long)p->total,
             (unsigned long long)p->failed, p->rate, eta, p->stalled ? " (stalled)" : "");
}

em_err em_cli_secret_line(const char *path, char *out, size_t cap, struct em_errbuf *eb)
{
    char *text = NULL;
    mode_t mode = 0;
    out[0] = 0;
    em_err rc = em_smallfile_read(path, cap * 4, &text, &mode, eb);
    if (rc == EM_OK) rc = em_smallfile_private(path, mode, "Redis URL", eb);
    if (rc == EM_OK) {
        const char *p = text;
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
        size_t n = strcspn(p, "\r\n");
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
        if (n == 0) {
            rc = em_errf(eb, EM_E_FORMAT, "%s: empty", path);
        } else if (n >= cap) {
            rc = em_errf(eb, EM_E_TOO_LONG, "%s: first line longer than %zu", path, cap - 1);
        } else {
            memcpy(out, p, n);
            out[n] = 0;
        }
    }
    if (text) {
        memset(text, 0, strlen(text));
        free(text);
    }
    return rc;
}

const char *em_cli_redis_arg(char *arg)
{
    static char copy[EM_CLI_MAX_URL + 1]; /* the coordinator zeroes it when it returns */
    struct em_redis_url u;
    if (!arg || em_redis_url_parse(arg, &u, NULL) != EM_OK || !u.password[0]) return arg;
    memset(&u, 0, sizeof u);
    snprintf(copy, sizeof copy, "%s", arg);
    char *at = strrchr(arg, '@'), *start = strstr(arg, "://");
    start = start && start < at ? start + 3 : arg;
    char *colon = memchr(start, ':', (size_t)(at - start)); /* user:password, or password */
    for (char *p = colon ? colon + 1 : start; p < at; p++) *p = 'x';
    em_warn("msg=\"--redis carries a password, which ps showed until now; give the URL in "
            "EARMARK_REDIS_URL or --redis-url-file (coordinator) instead\"");
    return copy;
}

int em_cli_redis_ca(const char *path)
{
    if (!path || !*path) return -1;
    return setenv("EARMARK_REDIS_CA", path, 1) == 0 ? 0 : -1;
}
