/* common/usage.h - the one shape of a subcommand's usage error: first the line
 * "earmark CMD: what was wrong", then the command's usage text, both on stderr, exit 2.
 * Messages passed in never carry the "earmark CMD:" prefix themselves. Thread-unsafe only
 * in that it writes stderr. */
#ifndef EM_USAGE_H
#define EM_USAGE_H
#include <stdio.h>

/* Prints a command's usage text to f. */
typedef void em_usage_fn(FILE *f);

/* "earmark CMD: <fmt...>\n" then usage(stderr) when usage is non-NULL. Returns 2. */
int em_usage_error(const char *cmd, em_usage_fn *usage, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "earmark CMD: FLAG is required" (FLAG as the user types it, e.g. "--out"; alt, when
 * non-NULL, names another way to give it, e.g. "or EARMARK_REDIS_URL"), then usage.
 * Returns 2. */
int em_usage_required(const char *cmd, em_usage_fn *usage, const char *flag, const char *alt);

/* For a getopt_long loop run with opterr = 0 and an optstring starting with ':': c is what
 * getopt returned (':' a value is missing, anything else an unknown option), argv[optind-1]
 * the offending word. Prints what was wrong, then usage. Returns 2. */
int em_usage_bad_option(const char *cmd, em_usage_fn *usage, int c, char *const *argv,
                        int optind_now);
/* msg past a leading "earmark CMD: " or "CMD: " (a library message that already names the
 * command, e.g. model.c's "annotate: ..."), so that the caller's own "earmark CMD: " prefix
 * is never doubled; msg itself otherwise. */
const char *em_usage_unprefixed(const char *cmd, const char *msg);
#endif
