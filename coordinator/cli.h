/* coordinator/cli.h - what the coordinator-side subcommands (coordinator, submit, status)
 * share: number flags, the Redis URL, bounded file reads, batch progress arithmetic. */
#ifndef EM_CLI_H
#define EM_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "coordinator/queue.h"

#define EM_CLI_MAX_MANIFEST (512u * 1024u * 1024u) /* bytes read from --manifest */

/* Parses a decimal in [lo, hi] from s (whole string). 0 on success, -1 otherwise. */
int em_cli_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out);
/* A duration "N" (seconds) or "N" followed by s, m, h or d, into *ms; 1..max_ms. 0 or -1. */
int em_cli_duration_ms(const char *s, int64_t max_ms, int64_t *ms);
/* --redis if set, else $EARMARK_REDIS_URL, else NULL. */
const char *em_cli_redis_url(const char *flag);
#define EM_CLI_MAX_URL 4095 /* bytes of a URL read from a file */
/* --redis URL as given in argv: when it carries a password, copies it (one static copy per
 * process: the caller may zero it when done), overwrites the password in arg itself with
 * 'x' so that ps and /proc/PID/cmdline stop showing it, warns once, and returns the copy;
 * otherwise returns arg. Every command that takes --redis passes its argument through this. */
const char *em_cli_redis_arg(char *arg);
/* --redis-ca FILE: exported as EARMARK_REDIS_CA, which em_queue_open reads (the CA that
 * signs a rediss:// server's certificate). 0, or -1 for an empty path. */
int em_cli_redis_ca(const char *path);
/* The first non-empty line of a file that holds a secret (a URL with a password), trimmed,
 * into out (cap bytes). The file must be a regular file no one but its owner can read
 * (EM_E_AUTH otherwise, with the chmod to run). Errors: EM_E_IO, EM_E_AUTH, EM_E_TOO_LONG,
 * EM_E_FORMAT (empty). */
em_err em_cli_secret_line(const char *path, char *out, size_t cap, struct em_errbuf *eb);
/* Reads a whole file ("-" = stdin), at most max bytes. On EM_OK *data is malloc'd and
 * NUL-terminated (caller frees). Errors: EM_E_IO, EM_E_TOO_LONG, EM_E_NOMEM. */
em_err em_cli_read_file(const char *path, size_t max, uint8_t **data, size_t *len,
                        struct em_errbuf *eb);

/* Progress of a batch at wall time now_ms: counts as stored, plus derived numbers. */
struct em_progress {
    uint64_t total, done, failed, skipped, in_flight, pending, dead, cancelled;
    double rate;  /* items/s settled by workers since the batch was created (skips left out) */
    double eta_s; /* pending / rate; -1 when unknown */
    int complete; /* state "complete" or "cancelled": nothing more will happen */
    int stalled;  /* open, and its output stalled (an infrastructure fault): rate 0, ETA unknown */
};
void em_progress_of(const struct em_batch_info *b, uint64_t in_flight, uint64_t dead,
                    int64_t now_ms, struct em_progress *p);
/* `[#####.....] 37/50 done 2 failed 4.1 items/s ETA 3s` (bar width 20), NUL-terminated. */
void em_progress_line(const struct em_progress *p, char *out, size_t cap);

#endif
