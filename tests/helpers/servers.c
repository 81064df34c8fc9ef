/* tests/helpers/servers.c - see servers.h. */
#include "tests/helpers/servers.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tests/helpers/proc.h"

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static void nap(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

__attribute__((format(printf, 2, 3))) static void arg(struct th_server *s, const char *fmt, ...)
{
    if (s->nargs >= TH_MAX_ARGS - 1) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->args[s->nargs++], sizeof s->args[0], fmt, ap);
    va_end(ap);
}

static void kill_group(struct th_server *s)
{
    if (s->pid <= 0) return;
    kill(-s->pid, SIGTERM);
    if (th_wait(s->pid, 10000) == -1) {
        kill(-s->pid, SIGKILL);
        th_wait(s->pid, 5000);
    }
    s->pid = -1;
}

static int spawn(struct th_server *s)
{
    char *argv[TH_MAX_ARGS + 1];
    for (int i = 0; i < s->nargs; i++) argv[i] = s->args[i];
    argv[s->nargs] = NULL;
    s->pid = th_spawn(argv, NULL, s->log);
    return s->pid > 0 ? 0 : -1;
}

/* 1 if the child already exited (it then cannot become ready). */
static int died(struct th_server *s)
{
    if (s->pid <= 0) return 1;
    if (th_wait(s->pid, 0) != -1) {
        s->pid = -1;
        return 1;
    }
    return 0;
}

static int redis_ping(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char buf[64] = {0};
    int ok = 0;
    if (fd < 0) return 0;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 && write(fd, "PING\r\n", 6) == 6) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 2000) == 1 && read(fd, buf, sizeof buf - 1) > 0)
            ok = strncmp(buf, "+PONG", 5) == 0;
    }
    close(fd);
    return ok;
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p, (void)ud;
    return size * n;
}

/* Signed S3 request with an empty body; returns the HTTP status or 0 on no reply. */
static long s3_call(const char *endpoint, const char *method, const char *path,
                    const char *access, const char *secret)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", endpoint, path);
    CURL *h = curl_easy_init();
    if (!h) return 0;
    struct curl_slist *hd = curl_slist_append(NULL, "x-amz-content-sha256: " EMPTY_SHA256);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, "aws:amz:us-east-1:s3");
    curl_easy_setopt(h, CURLOPT_USERNAME, access);
    curl_easy_setopt(h, CURLOPT_PASSWORD, secret);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    if (strcmp(method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)0);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    }
    long status = 0;
    if (curl_easy_perform(h) == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hd);
    curl_easy_cleanup(h);
    return status;
}

/* Set when the last wait_ready() failed because the server exited (e.g. its port was
 * taken), as opposed to never answering: only the former is worth another attempt. */
static int exited_early;

/* Polls until the server is ready (per kind) or the timeout passes. 0 when ready. */
static int wait_ready(struct th_server *s)
{
    long deadline = now_ms() + TH_START_TIMEOUT_MS;
    exited_early = 0;
    while (now_ms() < deadline) {
        if (died(s)) {
            exited_early = 1;
            return -1;
        }
        int ok = 0;
        switch (s->kind) {
        case TH_REDIS:
            ok = redis_ping(s->port);
            break;
        case TH_MOTO:
            ok = s3_call(s->endpoint, "GET", "/", "x", "y") == 200;
            break;
        case TH_WEED:
            ok = s3_call(s->endpoint, "GET", "/", s->access, s->secret) == 200;
            break;
        }
        if (ok) return 0;
        nap(100);
    }
    return -1;
}

static int fail(struct th_server *s, const char *what)
{
    fprintf(stderr, "servers: %s did not start on port %d (log: %s)\n", what, s->port, s->log);
    th_sh("tail -n 15 '%s' >&2", s->log);
    kill_group(s);
    return -1;
}

static int prepare(struct th_server *s, enum th_kind kind)
{
    memset(s, 0, sizeof *s);
    s->pid = -1;
    s->kind = kind;
    if (th_tmpdir(s->dir, sizeof s->dir) != 0) {
        fprintf(stderr, "servers: cannot create a temp dir\n");
        return -1;
    }
    snprintf(s->log, sizeof s->log, "%s/server.log", s->dir);
    s->port = th_free_port();
    if (s->port <= 0) {
        fprintf(stderr, "servers: no free port\n");
        return -1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return 0;
}

static int redis_once(struct th_server *s, const char *const *extra)
{
    if (prepare(s, TH_REDIS) != 0) return -1;
    snprintf(s->url, sizeof s->url, "redis://127.0.0.1:%d", s->port);
    arg(s, "redis-server");
    arg(s, "--port");
    arg(s, "%d", s->port);
    arg(s, "--bind");
    arg(s, "127.0.0.1");
    arg(s, "--save");
    arg(s, "%s", "");
    arg(s, "--appendonly");
    arg(s, "no");
    arg(s, "--dir");
    arg(s, "%s", s->dir);
    for (size_t i = 0; extra && extra[i]; i++) arg(s, "%s", extra[i]);
    if (spawn(s) != 0 || wait_ready(s) != 0) return fail(s, "redis-server");
    return 0;
}

static int moto_once(struct th_server *s)
{
    if (prepare(s, TH_MOTO) != 0) return -1;
    snprintf(s->endpoint, sizeof s->endpoint, "http://127.0.0.1:%d", s->port);
    snprintf(s->url, sizeof s->url, "%s", s->endpoint);
    arg(s, "moto_server");
    arg(s, "-H");
    arg(s, "127.0.0.1");
    arg(s, "-p");
    arg(s, "%d", s->port);
    if (spawn(s) != 0 || wait_ready(s) != 0) return fail(s, "moto_server");
    return 0;
}

static int weed_once(struct th_server *s, const char *access, const char *secret)
{
    if (prepare(s, TH_WEED) != 0) return -1;
    snprintf(s->endpoint, sizeof s->endpoint, "http://127.0.0.1:%d", s->port);
    snprintf(s->url, sizeof s->url, "%s", s->endpoint);
    snprintf(s->access, sizeof s->access, "%s", access);
    snprintf(s->secret, sizeof s->secret, "%s", secret);
    char cfg[300];
    snprintf(cfg, sizeof cfg, "%s/s3.json", s->dir);
    FILE *f = fopen(cfg, "w");
    if (!f) return fail(s, "weed (s3.json)");
    fprintf(f,
            "{\"identities\":[{\"name\":\"admin\",\"credentials\":[{\"accessKey\":\"%s\","
            "\"secretKey\":\"%s\"}],\"actions\":[\"Admin\",\"Read\",\"Write\",\"List\","
            "\"Tagging\"]}]}\n",
            access, secret);
    fclose(f);
    /* every listener on its own free port: weed's defaults (9333, 8888, 8333, +10000 for
     * gRPC, 23646 admin) would collide with a second instance */
    static const char *const ports[] = {
        "master.port", "master.port.grpc", "filer.port", "filer.port.grpc", "volume.port",
        "volume.port.grpc", "s3.port.grpc", "admin.port", "admin.port.grpc"};
    arg(s, "weed");
    arg(s, "mini");
    arg(s, "-dir=%s/data", s->dir);
    arg(s, "-ip=127.0.0.1");
    arg(s, "-ip.bind=127.0.0.1");
    arg(s, "-s3.port=%d", s->port);
    for (size_t i = 0; i < sizeof ports / sizeof *ports; i++) {
        int p = th_free_port();
        if (p <= 0) return fail(s, "weed (ports)");
        arg(s, "-%s=%d", ports[i], p);
    }
    arg(s, "-s3.config=%s", cfg);
    arg(s, "-admin.ui=false");
    arg(s, "-webdav=false");
    arg(s, "-s3.port.iceberg=0");
    arg(s, "-s3.port.lance=0");
    arg(s, "-master.telemetry=false");
    arg(s, "-master.volumeSizeLimitMB=64");
    th_sh("mkdir -p '%s/data'", s->dir);
    if (spawn(s) != 0 || wait_ready(s) != 0) return fail(s, "weed mini");
    return 0;
}

/* A free port can be taken by someone else between th_free_port() and the server's bind;
 * the server then exits at once. Such a start is retried with fresh ports. */
#define START_ATTEMPTS 3

/* 0: started; 1: try again (it exited at once); -1: give up. */
static int outcome(struct th_server *s, int rc, int attempt)
{
    if (rc == 0) return 0;
    int again = exited_early && attempt + 1 < START_ATTEMPTS;
    if (again) {
        fprintf(stderr, "servers: retrying with fresh ports\n");
        if (s->dir[0]) th_rmrf(s->dir);
        s->kind = 0;
    }
    return again ? 1 : -1;
}

int th_redis_start(struct th_server *s) { return th_redis_start_args(s, NULL); }

int th_redis_start_args(struct th_server *s, const char *const *extra)
{
    int r = 1;
    for (int i = 0; r == 1; i++) r = outcome(s, redis_once(s, extra), i);
    return r;
}

int th_moto_start(struct th_server *s)
{
    int r = 1;
    for (int i = 0; r == 1; i++) r = outcome(s, moto_once(s), i);
    return r;
}

int th_weed_start(struct th_server *s, const char *access, const char *secret)
{
    int r = 1;
    for (int i = 0; r == 1; i++) r = outcome(s, weed_once(s, access, secret), i);
    return r;
}

void th_server_pause(struct th_server *s)
{
    kill_group(s);
}

int th_server_resume(struct th_server *s)
{
    if (s->nargs == 0) return -1;
    if (s->pid > 0) return 0;
    /* the old listeners may linger a moment after exit */
    long deadline = now_ms() + 10000;
    while (th_wait_port(s->port, 0) == 0 && now_ms() < deadline) nap(100);
    if (spawn(s) != 0 || wait_ready(s) != 0) return fail(s, s->args[0]);
    return 0;
}

int th_server_restart(struct th_server *s)
{
    th_server_pause(s);
    return th_server_resume(s);
}

void th_server_stop(struct th_server *s)
{
    if (!s || !s->kind) return;
    kill_group(s);
    if (s->dir[0]) th_rmrf(s->dir);
    s->dir[0] = 0;
    s->kind = 0;
}

int th_s3_mkbucket(const struct th_server *s, const char *bucket, const char *access,
                   const char *secret)
{
    char path[128];
    snprintf(path, sizeof path, "/%s", bucket);
    long st = 0, deadline = now_ms() + 30000;
    while (now_ms() < deadline) {
        st = s3_call(s->endpoint, "PUT", path, access, secret);
        if (st == 200 || st == 409) {
            /* 409 BucketAlreadyOwnedByYou / Exists: fine if we can see it */
            if (st == 200 || s3_call(s->endpoint, "HEAD", path, access, secret) == 200) return 0;
        }
        if (st == 403 || st == 400) break;
        nap(200);
    }
    fprintf(stderr, "servers: creating bucket %s at %s failed: HTTP %ld\n", bucket, s->endpoint,
            st);
    return -1;
}

/* ---- scripted HTTP stub ---- */

struct th_stub {
    int fd;
    int port;
    pthread_t thr;
    int stop_pipe[2];
    const char *const *resp;
    size_t nresp;
    pthread_mutex_t mu;
    size_t count;
    struct th_stub_req reqs[TH_STUB_MAX_REQS];
};

/* Reads until the end of headers, then Content-Length bytes of body. -1 on error. */
static int read_request(int c, struct th_stub_req *r)
{
    size_t n = 0;
    char *end = NULL;
    while (!end) {
        if (n + 1 >= sizeof r->head) return -1;
        struct pollfd p = {.fd = c, .events = POLLIN};
        if (poll(&p, 1, 10000) != 1) return -1;
        ssize_t k = read(c, r->head + n, sizeof r->head - 1 - n);
        if (k <= 0) return -1;
        n += (size_t)k;
        r->head[n] = 0;
        end = strstr(r->head, "\r\n\r\n");
    }
    size_t hlen = (size_t)(end - r->head) + 4;
    size_t have = n - hlen;
    char cl[32];
    size_t want = 0;
    if (th_stub_header(r, "Content-Length", cl, sizeof cl) == 0) want = strtoull(cl, NULL, 10);
    if (want > 64u * 1024 * 1024) return -1;
    r->body = malloc(want + 1);
    if (!r->body) return -1;
    size_t got = have < want ? have : want;
    memcpy(r->body, r->head + hlen, got);
    while (got < want) {
        struct pollfd p = {.fd = c, .events = POLLIN};
        if (poll(&p, 1, 10000) != 1) return -1;
        ssize_t k = read(c, r->body + got, want - got);
        if (k <= 0) return -1;
        got += (size_t)k;
    }
    r->body_len = want;
    r->head[hlen - 2] = 0; /* keep the last header's \r\n, drop the blank line */
    return 0;
}

static void *stub_main(void *ud)
{
    struct th_stub *st = ud;
    for (;;) {
        struct pollfd p[2] = {{.fd = st->fd, .events = POLLIN},
                              {.fd = st->stop_pipe[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0 && errno != EINTR) break;
        if (p[1].revents) break;
        if (!(p[0].revents & POLLIN)) continue;
        int c = accept(st->fd, NULL, NULL);
        if (c < 0) continue;
        pthread_mutex_lock(&st->mu);
        size_t i = st->count;
        pthread_mutex_unlock(&st->mu);
        if (i < TH_STUB_MAX_REQS && read_request(c, &st->reqs[i]) == 0) {
            /* counted before replying, so a client that got its reply sees its request */
            pthread_mutex_lock(&st->mu);
            st->count++;
            pthread_mutex_unlock(&st->mu);
            const char *resp = st->resp[i < st->nresp ? i : st->nresp - 1];
            size_t len = strlen(resp), off = 0;
            while (off < len) {
                ssize_t k = write(c, resp + off, len - off);
                if (k <= 0) break;
                off += (size_t)k;
            }
        } else if (i < TH_STUB_MAX_REQS) {
            free(st->reqs[i].body);
            st->reqs[i].body = NULL;
        }
        shutdown(c, SHUT_WR);
        close(c);
    }
    return NULL;
}

struct th_stub *th_stub_start(const char *const *responses, size_t n)
{
    if (!responses || n == 0) return NULL;
    signal(SIGPIPE, SIG_IGN);
    struct th_stub *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    st->resp = responses;
    st->nresp = n;
    pthread_mutex_init(&st->mu, NULL);
    st->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    if (st->fd < 0 || bind(st->fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(st->fd, 16) != 0 || getsockname(st->fd, (struct sockaddr *)&a, &l) != 0 ||
        pipe(st->stop_pipe) != 0) {
        if (st->fd >= 0) close(st->fd);
        free(st);
        return NULL;
    }
    st->port = ntohs(a.sin_port);
    if (pthread_create(&st->thr, NULL, stub_main, st) != 0) {
        close(st->fd);
        close(st->stop_pipe[0]);
        close(st->stop_pipe[1]);
        free(st);
        return NULL;
    }
    return st;
}

int th_stub_port(const struct th_stub *st)
{
    return st->port;
}

size_t th_stub_count(struct th_stub *st)
{
    pthread_mutex_lock(&st->mu);
    size_t n = st->count;
    pthread_mutex_unlock(&st->mu);
    return n;
}

const struct th_stub_req *th_stub_req(struct th_stub *st, size_t i)
{
    return i < th_stub_count(st) ? &st->reqs[i] : NULL;
}

int th_stub_header(const struct th_stub_req *r, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
        const char *h = p + 2;
        if (strncasecmp(h, name, nl) == 0 && h[nl] == ':') {
            const char *v = h + nl + 1;
            while (*v == ' ') v++;
            size_t vn = strcspn(v, "\r\n");
            if (vn >= cap) return -1;
            memcpy(out, v, vn);
            out[vn] = 0;
            return 0;
        }
    }
    return -1;
}

void th_stub_stop(struct th_stub *st)
{
    if (!st) return;
    if (write(st->stop_pipe[1], "x", 1) != 1) {
        /* the thread then only stops at exit; nothing better to do in a test helper */
    }
    pthread_join(st->thr, NULL);
    close(st->fd);
    close(st->stop_pipe[0]);
    close(st->stop_pipe[1]);
    for (size_t i = 0; i < st->count && i < TH_STUB_MAX_REQS; i++) free(st->reqs[i].body);
    pthread_mutex_destroy(&st->mu);
    free(st);
}
