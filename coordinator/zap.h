/* coordinator/zap.h - who may talk to the coordinator's ROUTER: CURVE server setup, a ZAP
 * handler (ZeroMQ RFC 27) that accepts only allowed worker keys, and a count of refusals.
 *
 * The handler is a thread of its own with two sockets in the ROUTER's context: a REP bound
 * at inproc://zeromq.zap.01 that answers libzmq's authentication requests (200 for a CURVE
 * client key in the allow list, 400 otherwise), and a PAIR on the ROUTER's monitor that
 * counts failed handshakes in earmark_auth_refused_total: refused keys (ZAP 400), peers
 * that speak no CURVE at all (mechanism mismatch) and other broken handshakes. Refusals are logged with the peer's
 * address and key, at most EM_ZAP_LOG_BURST of them, then every EM_ZAP_LOG_EVERY-th.
 * A refused peer never reaches the ROUTER: it gets no Welcome and no task.
 *
 * Thread-safety: em_zap_start and em_zap_stop on the thread that owns the ROUTER. */
#ifndef EM_ZAP_H
#define EM_ZAP_H

#include "common/curve.h"
#include "common/err.h"
#include "coordinator/metrics.h"

#define EM_ZAP_LOG_BURST 20
#define EM_ZAP_LOG_EVERY 100

struct em_zap;

/* Makes router a CURVE server with the secret key of pair, binds the ZAP handler in ctx,
 * watches router's handshakes and starts the thread. allow and m are borrowed and must
 * outlive the handler. Call before zmq_bind(router). On EM_OK the caller owns *out
 * (em_zap_stop). Errors: EM_E_IO (a socket call failed), EM_E_INTERNAL (no CURVE). */
em_err em_zap_start(void *ctx, void *router, const struct em_curve_pair *pair,
                    const struct em_curve_allow *allow, struct em_metrics *m, struct em_zap **out,
                    struct em_errbuf *eb);
/* Stops the thread and closes its sockets; call before closing router. NULL is a no-op. */
void em_zap_stop(struct em_zap *z);

#endif
