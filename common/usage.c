/* common/usage.c - usage errors of the subcommands (see usage.h). */
#include <stdarg.h>
#include <string.h>

#include "common/usage.h"

int em_usage_error(const char *cmd, em_usage_fn *usage, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "earmark %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (usage) usage(stderr);
    return 2;
}

int em_usage_required(const char *cmd, em_usage_fn *usage, const char *flag, const char *alt)
{
    if (alt) return em_usage_error(cmd, usage, "%s is required (%s)", flag, alt);
    return em_usage_error(cmd, usage, "%s is required", flag);
}

int em_usage_bad_option(const char *cmd, em_usage_fn *usage, int c, char *const *argv,
                        int optind_now)
{
    const char *word = optind_now > 0 ? argv[optind_now - 1] : "?";
    if (c == ':') return em_usage_error(cmd, usage, "option '%.80s' needs a value", word);
    return em_usage_error(cmd, usage, "unknown option '%.80s'", word);
}

const char *em_usage_unprefixed(const char *cmd, const char *msg)
{
    size_t n = strlen(cmd);
    if (!msg) return "";
    if (strncmp(msg, "earmark ", 8) == 0 && strncmp(msg + 8, cmd, n) == 0 &&
        strncmp(msg + 8 + n, ": ", 2) == 0)
        return msg + 8 + n + 2;
    if (strncmp(msg, cmd, n) == 0 && strncmp(msg + n, ": ", 2) == 0) return msg + n + 2;
    return msg;
}
