/* coordinator/tls_relay.h - TLS to Redis (rediss://) for hiredis 0.14, which has no TLS of
 * its own (Debian 12 ships 0.14.1 without hiredis_ssl; no newer hiredis is packaged).
 *
 *   hiredis (redisConnectFd) <-> app end of a socketpair <-> relay thread <-> OpenSSL <-> TCP
 *
 * em_tls_relay_open connects to host:port, completes the TLS handshake (TLS 1.2 or newer,
 * the server's certificate verified against ca_file, or the system's trust store when
 * ca_file is NULL, and its name checked against host), then starts one thread that copies
 * bytes both ways. It returns the app end of the socketpair; hiredis owns and closes it.
 * When either side closes or fails, the thread closes its end, so hiredis sees the
 * connection lost and the caller reconnects (a new relay).
 * Errors are one line naming host:port and the cause (never a credential: none passes here).
 * Thread-safety: each relay is used by one caller thread plus its own thread. */
#ifndef EM_TLS_RELAY_H
#define EM_TLS_RELAY_H

#include "common/err.h"

#define EM_TLS_RELAY_BUF 16384 /* bytes copied per read */

struct em_tls_relay;

/* timeout_ms bounds the TCP connect and the handshake. On EM_OK *app_fd is the caller's
 * (hiredis') end and *out is freed with em_tls_relay_close. Errors: EM_E_ARG (host),
 * EM_E_IO (connect), EM_E_AUTH (handshake or certificate verification), EM_E_TIMEOUT,
 * EM_E_NOMEM, EM_E_INTERNAL. */
em_err em_tls_relay_open(const char *host, int port, const char *ca_file, int timeout_ms,
                         int *app_fd, struct em_tls_relay **out, struct em_errbuf *eb);
/* Stops the thread (closing its ends) and frees the relay. NULL is a no-op. Call after the
 * app end is closed (redisFree) or before; either order ends the thread. */
void em_tls_relay_close(struct em_tls_relay *r);

#endif
