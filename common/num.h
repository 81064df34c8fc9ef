/* common/num.h - bounded decimal parsing of flags and environment values. Thread-safe. */
#ifndef EM_NUM_H
#define EM_NUM_H

/* s as a whole decimal long (strtol syntax: leading blanks and a sign allowed) in [lo, hi],
 * with 0 <= lo <= hi; -1 for NULL, empty, trailing characters, overflow or out of range. */
long em_num_parse(const char *s, long lo, long hi);
#endif
