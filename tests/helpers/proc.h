/* tests/helpers/proc.h - what test suites share: temp dirs, free ports, child processes.
 * Test-only code; failures here abort the suite's init (return non-zero). */
#ifndef EM_TH_PROC_H
#define EM_TH_PROC_H
#include <stddef.h>
#include <sys/types.h>

/* A fresh directory under $TMPDIR (or /tmp); path written to out. 0 on success. */
int th_tmpdir(char *out, size_t cap);
/* rm -rf path (refuses anything outside /tmp-like prefixes). */
void th_rmrf(const char *path);
/* A TCP port on 127.0.0.1 that was free a moment ago. */
int th_free_port(void);
/* Polls until something accepts on 127.0.0.1:port, or timeout. 0 when up. */
int th_wait_port(int port, int timeout_ms);
/* fork+exec argv (NULL-terminated). env: extra "K=V" strings (NULL-terminated, may be NULL).
 * stdout/stderr go to log_path (appended) when non-NULL. Returns pid or -1.
 * The child is in its own process group. */
pid_t th_spawn(char *const argv[], char *const env[], const char *log_path);
/* Sends sig to the child and reaps it within timeout_ms (then SIGKILL). Returns exit status
 * as from waitpid, or -1. */
int th_stop(pid_t pid, int sig, int timeout_ms);
/* Waits up to timeout_ms for the child to exit; returns its exit code (0..255), 128+signal,
 * or -1 on timeout (the child is left running). */
int th_wait(pid_t pid, int timeout_ms);
/* Runs this test binary again (/proc/self/exe) with env (NULL-terminated "K=V" strings,
 * e.g. EM_TEST_SUITE=x and a CPU cap), its output in a temp dir's log; waits up to
 * timeout_ms (then kills it). Returns the child's exit code (th_wait's), after printing its
 * log under `what` when that is not 0. */
int th_run_self(char *const env[], int timeout_ms, const char *what);
/* A TCP connection to 127.0.0.1:port from source address src ("127.0.0.1", "127.0.0.2":
 * any loopback address, so a test can be several clients); -1 on failure. */
int th_dial_from(const char *src, int port);
/* Sends the whole HTTP request req from src to 127.0.0.1:port and reads the reply until the
 * server closes (send "Connection: close"), all within timeout_ms. The reply's start (at
 * most cap - 1 bytes, NUL-terminated) goes to out; *ms (may be NULL) gets the time taken.
 * Returns the status code, or -1 when no complete reply came in time. */
int th_http_exchange(const char *src, int port, const char *req, char *out, size_t cap,
                     int timeout_ms, double *ms);
/* Runs a shell command line; returns its exit status (0..255) or -1. */
int th_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Reads a whole file (malloc'd, NUL-terminated); NULL if missing. */
char *th_slurp(const char *path, size_t *len);
/* Path of the earmark binary under test ($EM_TEST_BIN) and the source tree ($EM_TEST_ROOT). */
const char *th_bin(void);
const char *th_root(void);
#endif
