/* coordinator/tls_relay.c - the OpenSSL relay behind rediss:// (see tls_relay.h). */
#include "coordinator/tls_relay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"

#define WRITE_TIMEOUT_MS 10000 /* a server that takes no bytes this long is gone */

struct em_tls_relay {
    SSL_CTX *ctx;
    SSL *ssl;
    int tcp, mine; /* the TCP socket, and the relay's end of the socketpair */
    pthread_t th;
    int started;
    atomic_int stop;
};

/* The first OpenSSL error queued, as text (and the queue cleared). */
static const char *ssl_why(char *buf, size_t cap)
{
    unsigned long e = ERR_get_error();
    if (!e) snprintf(buf, cap, "connection closed");
    else ERR_error_string_n(e, buf, cap);
    ERR_clear_error();
    return buf;
}

/* Waits for events on fd until deadline (monotonic ms). 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - em_now_ms();
        if (left <= 0) return 0;
        struct pollfd p = {fd, events, 0};
        int r = poll(&p, 1, left > 1000 ? 1000 : (int)left);
        if (r > 0) return 1;
        if (r < 0 && errno != EINTR) return -1;
    }
}

static em_err tcp_connect(const char *host, int port, int64_t deadline, int *out,
                          struct em_errbuf *eb)
{
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int g = getaddrinfo(host, ps, &hints, &ai);
    if (g != 0) return em_errf(eb, EM_E_ARG, "redis %s:%d: %s", host, port, gai_strerror(g));
    em_err rc = em_errf(eb, EM_E_IO, "redis %s:%d: no address", host, port);
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) continue;
        int r = connect(fd, a->ai_addr, a->ai_addrlen);
        int err = r == 0 ? 0 : errno;
        if (err == EINPROGRESS) {
            socklen_t l = sizeof err;
            int w = wait_fd(fd, POLLOUT, deadline);
            if (w <= 0) err = w == 0 ? ETIMEDOUT : errno;
            else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0) err = errno;
        }
        if (err == 0) {
            *out = fd;
            rc = EM_OK;
            break;
        }
        close(fd);
        rc = em_errf(eb, err == ETIMEDOUT ? EM_E_TIMEOUT : EM_E_IO, "redis %s:%d: %s", host, port,
                     strerror(err));
    }
    freeaddrinfo(ai);
    return rc;
}

static em_err handshake(struct em_tls_relay *r, const char *host, int port, const char *ca,
                        int64_t deadline, struct em_errbuf *eb)
{
    char why[256];
    if (!(r->ctx = SSL_CTX_new(TLS_client_method())))
        return em_errf(eb, EM_E_NOMEM, "redis %s:%d: TLS: %s", host, port,
                       ssl_why(why, sizeof why));
    SSL_CTX_set_min_proto_version(r->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(r->ctx, SSL_VERIFY_PEER, NULL);
    int loaded = ca ? SSL_CTX_load_verify_locations(r->ctx, ca, NULL)
                    : SSL_CTX_set_default_verify_paths(r->ctx);
    if (loaded != 1)
        return em_errf(eb, EM_E_ARG, "redis %s:%d: cannot load CA %s: %s", host, port,
                       ca ? ca : "(system store)", ssl_why(why, sizeof why));
    if (!(r->ssl = SSL_new(r->ctx)))
        return em_errf(eb, EM_E_NOMEM, "redis %s:%d: TLS: %s", host, port,
                       ssl_why(why, sizeof why));
    unsigned char ip[16];
    int is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
    if (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(r->ssl), host) != 1
              : SSL_set1_host(r->ssl, host) != 1 || SSL_set_tlsext_host_name(r->ssl, host) != 1)
        return em_errf(eb, EM_E_ARG, "redis %s:%d: TLS name check: %s", host, port,
                       ssl_why(why, sizeof why));
    SSL_set_fd(r->ssl, r->tcp);
    for (;;) {
        int k = SSL_connect(r->ssl);
        if (k == 1) return EM_OK;
        int e = SSL_get_error(r->ssl, k);
        int w = e == SSL_ERROR_WANT_READ    ? wait_fd(r->tcp, POLLIN, deadline)
                : e == SSL_ERROR_WANT_WRITE ? wait_fd(r->tcp, POLLOUT, deadline)
                                            : -2;
        if (w == 1) continue;
        if (w == 0)
            return em_errf(eb, EM_E_TIMEOUT, "redis %s:%d: TLS handshake timed out", host, port);
        long v = SSL_get_verify_result(r->ssl);
        if (v != X509_V_OK)
            return em_errf(eb, EM_E_AUTH, "redis %s:%d: server certificate refused: %s", host, port,
                           X509_verify_cert_error_string(v));
        return em_errf(eb, EM_E_AUTH, "redis %s:%d: TLS handshake failed: %s", host, port,
                       ssl_why(why, sizeof why));
    }
}

/* Writes all of buf through TLS; 0 or -1. */
static int tls_write_all(struct em_tls_relay *r, const char *buf, size_t n)
{
    int64_t deadline = em_now_ms() + WRITE_TIMEOUT_MS;
    while (n) {
        int k = SSL_write(r->ssl, buf, (int)n);
        if (k > 0) {
            buf += k;
            n -= (size_t)k;
            continue;
        }
        int e = SSL_get_error(r->ssl, k);
        int w = e == SSL_ERROR_WANT_WRITE  ? wait_fd(r->tcp, POLLOUT, deadline)
                : e == SSL_ERROR_WANT_READ ? wait_fd(r->tcp, POLLIN, deadline)
                                           : -1;
        if (w != 1) return -1;
    }
    return 0;
}

static int plain_write_all(int fd, const char *buf, size_t n)
{
    while (n) {
        ssize_t k = write(fd, buf, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        buf += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Everything TLS has for us, to the app end. 0 while the connection lives, -1 when not. */
static int drain_tls(struct em_tls_relay *r, char *buf)
{
    for (;;) {
        int k = SSL_read(r->ssl, buf, EM_TLS_RELAY_BUF);
        if (k > 0) {
            if (plain_write_all(r->mine, buf, (size_t)k) != 0) return -1;
            continue;
        }
        int e = SSL_get_error(r->ssl, k);
        if (e == SSL_ERROR_WANT_READ) return 0;
        int64_t deadline = em_now_ms() + WRITE_TIMEOUT_MS;
        if (e == SSL_ERROR_WANT_WRITE && wait_fd(r->tcp, POLLOUT, deadline) == 1) continue;
        return -1;
    }
}

static void *run(void *arg)
{
    struct em_tls_relay *r = arg;
    char *buf = malloc(EM_TLS_RELAY_BUF);
    while (buf && !atomic_load(&r->stop)) {
        struct pollfd p[2] = {{r->tcp, POLLIN, 0}, {r->mine, POLLIN, 0}};
        if (SSL_pending(r->ssl) > 0) {
            p[0].revents = POLLIN;
        } else {
            int k = poll(p, 2, 200);
            if (k < 0 && errno != EINTR) break;
            if (k <= 0) continue;
        }
        if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = read(r->mine, buf, EM_TLS_RELAY_BUF);
            if (n <= 0 || tls_write_all(r, buf, (size_t)n) != 0) break;
        }
        if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) && drain_tls(r, buf) != 0) break;
    }
    free(buf);
    shutdown(r->mine, SHUT_RDWR); /* hiredis sees the connection end */
    return NULL;
}

em_err em_tls_relay_open(const char *host, int port, const char *ca_file, int timeout_ms,
                         int *app_fd, struct em_tls_relay **out, struct em_errbuf *eb)
{
    *out = NULL;
    *app_fd = -1;
    struct em_tls_relay *r = calloc(1, sizeof *r);
    if (!r) return em_errf(eb, EM_E_NOMEM, "redis TLS: out of memory");
    r->tcp = r->mine = -1;
    int sv[2] = {-1, -1};
    int64_t deadline = em_now_ms() + timeout_ms;
    em_err rc = tcp_connect(host, port, deadline, &r->tcp, eb);
    if (rc == EM_OK) rc = handshake(r, host, port, ca_file, deadline, eb);
    if (rc == EM_OK && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        rc = em_errf(eb, EM_E_IO, "redis TLS: socketpair: %s", strerror(errno));
    if (rc == EM_OK) {
        r->mine = sv[1];
        if (pthread_create(&r->th, NULL, run, r) != 0) {
            rc = em_errf(eb, EM_E_INTERNAL, "redis TLS: cannot start the relay thread");
        } else {
            r->started = 1;
            *app_fd = sv[0];
            *out = r;
            return EM_OK;
        }
    }
    if (sv[0] >= 0) close(sv[0]);
    em_tls_relay_close(r);
    return rc;
}

void em_tls_relay_close(struct em_tls_relay *r)
{
    if (!r) return;
    atomic_store(&r->stop, 1);
    if (r->mine >= 0) shutdown(r->mine, SHUT_RDWR);
    if (r->started) pthread_join(r->th, NULL);
    if (r->ssl) SSL_free(r->ssl);
    if (r->ctx) SSL_CTX_free(r->ctx);
    if (r->tcp >= 0) close(r->tcp);
    if (r->mine >= 0) close(r->mine);
    free(r);
}
