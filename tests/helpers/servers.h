/* tests/helpers/servers.h - real servers for integration tests (redis-server, moto_server,
 * SeaweedFS), each on free loopback ports in its own temp dir, plus a scripted HTTP stub
 * that records what a client sent. Test-only code.
 *
 * Typical use in a suite:
 *     static struct th_server s3;
 *     static int init(void)  { return th_weed_start(&s3, "AK", "SK") ||
 *                                     th_s3_mkbucket(&s3, "bkt", "AK", "SK"); }
 *     static int clean(void) { th_server_stop(&s3); return 0; }
 * then point the code under test at s3.endpoint (or s3.url for Redis).
 *
 * Every start function returns 0 when the server answers, -1 otherwise after printing one
 * line to stderr saying what failed and where its log is (s->log); on failure nothing is
 * left running (the temp dir and its log stay for inspection). A server that exits at once
 * (a free port taken meanwhile) is retried with fresh ports, up to 3 times. Readiness waits
 * are generous (TH_START_TIMEOUT_MS) for loaded machines.
 * Not thread-safe: start and stop a server from one thread. */
#ifndef EM_TH_SERVERS_H
#define EM_TH_SERVERS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define TH_START_TIMEOUT_MS 60000 /* waiting for a server to answer */
#define TH_MAX_ARGS 40

enum th_kind { TH_REDIS = 1, TH_MOTO, TH_WEED };

struct th_server {
    enum th_kind kind;
    pid_t pid;           /* -1 when stopped */
    int port;            /* the port clients use (Redis, or S3) */
    char url[64];        /* Redis: "redis://127.0.0.1:PORT"; S3 servers: same as endpoint */
    char endpoint[64];   /* S3 servers: "http://127.0.0.1:PORT"; Redis: "" */
    char dir[256];       /* temp dir holding data and the log; removed by th_server_stop */
    char log[320];       /* the server's stdout+stderr */
    char access[128], secret[128]; /* weed: the identity it accepts */
    /* the command line, kept for th_server_restart */
    char args[TH_MAX_ARGS][320];
    int nargs;
};

/* redis-server --port P --bind 127.0.0.1 --save "" --appendonly no, waits for PONG. */
int th_redis_start(struct th_server *s);
/* The same with extra arguments (NULL-terminated; e.g. --tls-port, --user), kept for
 * th_server_restart. The plain port stays up for the readiness PING, so a default user
 * that may only PING is fine. */
int th_redis_start_args(struct th_server *s, const char *const *extra);
/* moto_server -H 127.0.0.1 -p P; any credentials are accepted (moto does not verify). */
int th_moto_start(struct th_server *s);
/* SeaweedFS (`weed mini`, every port a free loopback port, data under s->dir) with an S3
 * identity access/secret allowed everything; it VERIFIES SigV4 signatures. Waits until a
 * signed ListBuckets answers 200. */
int th_weed_start(struct th_server *s, const char *access, const char *secret);
/* Stops the server (SIGTERM to its process group, SIGKILL after 10 s) and removes its
 * dir. Safe to call twice or on a zeroed struct. */
void th_server_stop(struct th_server *s);
/* Stops only the process (data dir and ports kept); th_server_resume starts it again.
 * Together they are th_server_restart, split so a test can keep it down for a while. */
void th_server_pause(struct th_server *s);
int th_server_resume(struct th_server *s);
/* Stop + start with the same ports and data dir; 0 when it answers again. */
int th_server_restart(struct th_server *s);
/* Creates a bucket (signed PUT /bucket), retrying for up to 30 s while the server warms
 * up; an existing bucket owned by the caller counts as success. 0 on success. */
int th_s3_mkbucket(const struct th_server *s, const char *bucket, const char *access,
                   const char *secret);

/* ---- scripted HTTP stub ---------------------------------------------------------------
 * Serves one connection at a time on 127.0.0.1 from a thread. The i-th request gets
 * responses[min(i, n-1)], a complete raw HTTP/1.1 response which should say
 * "Connection: close" (the stub closes after each reply). Requests are recorded. */
#define TH_STUB_MAX_REQS 64
#define TH_STUB_MAX_HEAD 16384 /* bytes of request line + headers kept */

struct th_stub_req {
    char head[TH_STUB_MAX_HEAD]; /* request line and headers, "\r\n"-separated, NUL-ended */
    uint8_t *body;               /* malloc'd copy of the body (Content-Length), or NULL */
    size_t body_len;
};
struct th_stub;

/* responses are borrowed and must outlive the stub. NULL on failure. */
struct th_stub *th_stub_start(const char *const *responses, size_t n);
int th_stub_port(const struct th_stub *st);
/* Requests completed so far (thread-safe snapshot). */
size_t th_stub_count(struct th_stub *st);
/* The i-th request (i < th_stub_count); valid until th_stub_stop. */
const struct th_stub_req *th_stub_req(struct th_stub *st, size_t i);
/* Value of header name (case-insensitive) in a recorded request, copied into out; 0 when
 * found. */
int th_stub_header(const struct th_stub_req *r, const char *name, char *out, size_t cap);
void th_stub_stop(struct th_stub *st); /* NULL is a no-op */

#endif
