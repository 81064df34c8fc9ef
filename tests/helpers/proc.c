/* tests/helpers/proc.c */
#include "tests/helpers/proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int th_tmpdir(char *out, size_t cap)
{
    const char *t = getenv("TMPDIR");
    if (!t || !*t) t = "/tmp";
    if ((size_t)snprintf(out, cap, "%s/earmark-test-XXXXXX", t) >= cap) return -1;
    return mkdtemp(out) ? 0 : -1;
}

void th_rmrf(const char *path)
{
    if (!path || strncmp(path, "/tmp/", 5) != 0 || strstr(path, "..")) return;
    th_sh("rm -rf '%s'", path);
}

int th_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    int port = -1;
    if (fd < 0) return -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &l) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

int th_wait_port(int port, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        if (fd >= 0) close(fd);
        if (ok) return 0;
        nap_ms(50);
    }
    return -1;
}

pid_t th_spawn(char *const argv[], char *const env[], const char *log_path)
{
    pid_t pid = fork();
    if (pid != 0) return pid;
    setpgid(0, 0);
    if (log_path) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
    }
    int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0) dup2(nul, 0);
    for (size_t i = 0; env && env[i]; i++) putenv(env[i]);
    execvp(argv[0], argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

int th_wait(pid_t pid, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (r < 0) return -1;
        nap_ms(20);
    }
    return -1;
}

int th_stop(pid_t pid, int sig, int timeout_ms)
{
    if (pid <= 0) return -1;
    kill(pid, sig);
    int rc = th_wait(pid, timeout_ms);
    if (rc == -1) {
        kill(pid, SIGKILL);
        rc = th_wait(pid, 5000);
    }
    return rc;
}

int th_run_self(char *const env[], int timeout_ms, const char *what)
{
    char dir[256], log[320];
    if (th_tmpdir(dir, sizeof dir) != 0) return -1;
    snprintf(log, sizeof log, "%s/child.log", dir);
    char *argv[] = {"/proc/self/exe", NULL};
    const pid_t pid = th_spawn(argv, env, log);
    int rc = pid > 0 ? th_wait(pid, timeout_ms) : -1;
    if (rc != 0) {
        char *text = th_slurp(log, NULL);
        printf("\n    child (%s) exit %d:\n%s", what, rc, text ? text : "(no log)");
        free(text);
        if (rc < 0 && pid > 0) th_stop(pid, 9, 1000);
    }
    th_rmrf(dir);
    return rc;
}

int th_sh(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof cmd) return -1;
    int st = system(cmd);
    if (st == -1) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

char *th_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap + 1);
    size_t r;
    while (b && (r = fread(b + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            char *nb = realloc(b, 2 * cap + 1);
            if (!nb) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!b) return NULL;
    b[n] = 0;
    if (len) *len = n;
    return b;
}

const char *th_bin(void)
{
    const char *b = getenv("EM_TEST_BIN");
    return b && *b ? b : "build/earmark";
}

const char *th_root(void)
{
    const char *r = getenv("EM_TEST_ROOT");
    return r && *r ? r : ".";
}

int th_dial_from(const char *src, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET};
    if (inet_pton(AF_INET, src, &a.sin_addr) != 1 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0)
        goto fail;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) goto fail;
    return fd;
fail:
    close(fd);
    return -1;
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

int th_http_exchange(const char *src, int port, const char *req, char *out, size_t cap,
                     int timeout_ms, double *ms)
{
    double t0 = now_ms();
    int fd = th_dial_from(src, port), status = -1;
    size_t n = 0, len = strlen(req);
    char skip[4096];
    out[0] = 0;
    if (fd < 0 || write(fd, req, len) != (ssize_t)len) goto out;
    for (;;) {
        int left = timeout_ms - (int)(now_ms() - t0);
        struct pollfd p = {fd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, left) <= 0) goto out;
        /* keep the reply's start; read (and drop) the rest until the server closes */
        ssize_t r = n < cap - 1 ? read(fd, out + n, cap - 1 - n) : read(fd, skip, sizeof skip);
        if (r < 0) goto out;
        if (r == 0) break;
        if (n < cap - 1) n += (size_t)r;
        out[n] = 0;
    }
    if (sscanf(out, "HTTP/1.%*d %d", &status) != 1) status = -1;
out:
    if (ms) *ms = now_ms() - t0;
    if (fd >= 0) close(fd);
    return status;
}
