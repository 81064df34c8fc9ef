/* tests/helpers/peer.h - a hand-driven worker for attack tests: a real libzmq DEALER that
 * speaks the earmark protocol one message at a time, with or without CURVE keys, so a
 * suite can play an intruder, an impostor or a forger against a real coordinator.
 * Test-only code; not thread-safe; every wait is bounded. */
#ifndef EM_TH_PEER_H
#define EM_TH_PEER_H

#include <stdbool.h>
#include <stddef.h>

#include "common/curve.h"
#include "proto/wire.h"

struct th_peer {
    void *ctx, *sock;
    int tasks;                         /* Task messages received so far */
};

/* Connects to endpoint. pair and server_pub (Z85) NULL: no CURVE. routing_id NULL: the
 * ROUTER names the connection. 0 on success. */
int th_peer_open(struct th_peer *p, const char *endpoint, const struct em_curve_pair *pair,
                 const char *server_pub, const char *routing_id);
void th_peer_close(struct th_peer *p); /* idempotent */
/* Sends one frame built by an em_wire_* builder (rc, buf, n); frees buf. 0 when queued. */
int th_peer_send(struct th_peer *p, em_err rc, uint8_t *buf, size_t n);
/* Hello (worker_id, capacity) then Ready(credits). */
int th_peer_hello_ready(struct th_peer *p, const char *worker_id, unsigned credits);
/* A Result for task: ok or a failure (retryable), with the given lease token (NULL: none). */
int th_peer_result(struct th_peer *p, const Earmark__Task *task, bool ok, bool retryable,
                   const char *lease_token);
/* Heartbeat naming no task (keeps the lease alive). */
int th_peer_heartbeat(struct th_peer *p);
/* Next envelope within timeout_ms (NULL if none); counts tasks. Caller em_wire_free()s. */
Earmark__Envelope *th_peer_recv(struct th_peer *p, int timeout_ms);
/* Receives until an envelope of kind arrives (others dropped; heartbeats sent meanwhile so
 * the coordinator keeps the peer), or NULL after timeout_ms. */
Earmark__Envelope *th_peer_expect(struct th_peer *p, Earmark__Envelope__BodyCase kind,
                                  int timeout_ms);

#endif
