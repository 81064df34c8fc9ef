/* coordinator/redis_url.c - Redis URLs (see em_redis_url_parse in queue.h).
 *   redis[s]://[[user]:password@]host[:port][/db]   or   host[:port]
 * The userinfo ends at the LAST '@', so a password may hold '@' (or encode it as %40);
 * user and password are percent-decoded. Error messages name the part that is wrong and
 * never echo the URL, which may hold a password. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/queue.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into out (cap bytes, NUL-terminated). -1 on a bad escape, %00,
 * or when it does not fit. */
static int pct_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (n - i < 3) return -1;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi | lo) == 0) return -1;
            c = hi * 16 + lo;
            i += 2;
        }
        if (o + 1 >= cap) return -1;
        out[o++] = (char)c;
    }
    out[o] = 0;
    return 0;
}

em_err em_redis_url_parse(const char *url, struct em_redis_url *u, struct em_errbuf *eb)
{
    memset(u, 0, sizeof *u);
    u->port = 6379;
    if (!url || !*url) return em_errf(eb, EM_E_ARG, "redis url: empty");
    const char *p = url;
    if (strncmp(p, "rediss://", 9) == 0) {
        u->tls = 1;
        p += 9;
    } else if (strncmp(p, "redis://", 8) == 0) {
        p += 8;
    } else if (strstr(p, "://")) {
        return em_errf(eb, EM_E_ARG, "redis url: scheme must be redis:// or rediss://");
    }
    const char *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        if (colon && pct_decode(p, (size_t)(colon - p), u->user, sizeof u->user) != 0)
            return em_errf(eb, EM_E_ARG, "redis url: bad user name (too long or bad %%-escape)");
        if (pct_decode(pw, (size_t)(at - pw), u->password, sizeof u->password) != 0) {
            memset(u, 0, sizeof *u);
            return em_errf(eb, EM_E_ARG, "redis url: bad password (too long or bad %%-escape)");
        }
        p = at + 1;
    }
    size_t hl;
    if (*p == '[') { /* [v6 address] */
        const char *e = strchr(p, ']');
        if (!e) return em_errf(eb, EM_E_ARG, "redis url: unclosed '[' in host");
        p++;
        hl = (size_t)(e - p);
        if (hl == 0 || hl >= sizeof u->host) return em_errf(eb, EM_E_ARG, "redis url: bad host");
        memcpy(u->host, p, hl);
        p = e + 1;
    } else {
        hl = strcspn(p, ":/");
        if (hl == 0 || hl >= sizeof u->host) return em_errf(eb, EM_E_ARG, "redis url: no host");
        memcpy(u->host, p, hl);
        p += hl;
    }
    char *end;
    if (*p == ':') {
        long port = strtol(p + 1, &end, 10);
        if (end == p + 1 || port <= 0 || port > 65535 || (*end && *end != '/'))
            return em_errf(eb, EM_E_ARG, "redis url: bad port (1..65535)");
        u->port = (int)port;
        p = end;
    } else if (*p && *p != '/') {
        return em_errf(eb, EM_E_ARG, "redis url: unexpected text after the host");
    }
    if (*p == '/' && p[1]) {
        long db = strtol(p + 1, &end, 10);
        if (end == p + 1 || *end || db < 0 || db > 1000)
            return em_errf(eb, EM_E_ARG, "redis url: bad db number (0..1000)");
        u->db = (int)db;
    }
    return EM_OK;
}
