/* common/num.c - see num.h. */
#include "common/num.h"

#include <errno.h>
#include <stdlib.h>

long em_num_parse(const char *s, long lo, long hi)
{
    if (!s || !*s) return -1;
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || !end || end == s || *end || v < lo || v > hi) return -1;
    return v;
}
