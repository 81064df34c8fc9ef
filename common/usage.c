/* common/usage.c - usage errors of the subcommands (see usage.h). */
#include <stdarg.h>

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
