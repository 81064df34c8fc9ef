/* common/log.c - the one logger. */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum em_log_level em_log_min = EM_LOG_INFO;
static const char *comp_name = "earmark";

void em_log_set_level(enum em_log_level lv) { em_log_min = lv; }
void em_log_set_comp(const char *comp) { comp_name = comp ? comp : "earmark"; }

void em_log_init_env(void)
{
    static const char *names[] = {"debug", "info", "warn", "error", "off"};
    const char *v = getenv("EARMARK_LOG");
    for (unsigned i = 0; v && i < sizeof names / sizeof *names; i++)
        if (strcmp(v, names[i]) == 0) em_log_min = (enum em_log_level)i;
}

void em_log_write(enum em_log_level lv, const char *fmt, ...)
{
    static const char *lvn[] = {"debug", "info", "warn", "error", "off"};
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s comp=%s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, lvn[lv > EM_LOG_OFF ? EM_LOG_OFF : lv], comp_name);
    if (n < 0) return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2) len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

const char *em_log_q(char *out, unsigned cap, const char *s)
{
    unsigned j = 0;
    if (!cap) return out;
    for (; s && *s && j + 3 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[j++] = '\\';
            out[j++] = (char)c;
        } else if (c < 0x20) {
            out[j++] = ' ';
        } else {
            out[j++] = (char)c;
        }
    }
    out[j] = 0;
    return out;
}
