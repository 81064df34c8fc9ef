/* tests/helpers/peer.c - see peer.h. */
#include "tests/helpers/peer.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "common/clock.h"

int th_peer_open(struct th_peer *p, const char *endpoint, const struct em_curve_pair *pair,
                 const char *server_pub, const char *routing_id)
{
    memset(p, 0, sizeof *p);
    if (!(p->ctx = zmq_ctx_new()) || !(p->sock = zmq_socket(p->ctx, ZMQ_DEALER))) return -1;
    int linger = 0;
    zmq_setsockopt(p->sock, ZMQ_LINGER, &linger, sizeof linger);
    if (routing_id) zmq_setsockopt(p->sock, ZMQ_ROUTING_ID, routing_id, strlen(routing_id));
    if (pair && server_pub &&
        (zmq_setsockopt(p->sock, ZMQ_CURVE_SERVERKEY, server_pub, EM_CURVE_Z85) != 0 ||
         zmq_setsockopt(p->sock, ZMQ_CURVE_PUBLICKEY, pair->pub, EM_CURVE_Z85) != 0 ||
         zmq_setsockopt(p->sock, ZMQ_CURVE_SECRETKEY, pair->sec, EM_CURVE_Z85) != 0))
        return -1;
    return zmq_connect(p->sock, endpoint) == 0 ? 0 : -1;
}

void th_peer_close(struct th_peer *p)
{
    if (p->sock) zmq_close(p->sock);
    if (p->ctx) zmq_ctx_term(p->ctx);
    p->sock = p->ctx = NULL;
}

int th_peer_send(struct th_peer *p, em_err rc, uint8_t *buf, size_t n)
{
    if (rc != EM_OK) return -1;
    /* never blocks: a peer the coordinator refused has no connection to queue on forever */
    int r = zmq_send(p->sock, buf, n, ZMQ_DONTWAIT) == (int)n ? 0 : -1;
    free(buf);
    return r;
}

int th_peer_hello_ready(struct th_peer *p, const char *worker_id, unsigned credits)
{
    uint8_t *b = NULL;
    size_t n = 0;
    em_err rc = em_wire_hello(worker_id, "test", "cpu", "none", credits, (uint32_t)getpid(), &b,
                              &n, NULL);
    if (th_peer_send(p, rc, b, n) != 0) return -1;
    rc = em_wire_ready(credits, &b, &n, NULL);
    return th_peer_send(p, rc, b, n);
}

int th_peer_result(struct th_peer *p, const Earmark__Task *t, bool ok, bool retryable,
                   const char *lease_token)
{
    Earmark__Result r;
    earmark__result__init(&r);
    r.task_id = t->task_id;
    r.batch_id = t->batch_id;
    r.item_id = t->item_id;
    r.attempt = t->attempt;
    r.ok = ok;
    r.retryable = !ok && retryable;
    r.error_class = (char *)(ok ? "" : "EM_E_STORAGE");
    r.error_message = (char *)(ok ? "" : "forged failure");
    r.output_uri = t->out_uri;
    r.lease_token = (char *)(lease_token ? lease_token : "");
    uint8_t *b = NULL;
    size_t n = 0;
    em_err rc = em_wire_result(&r, &b, &n, NULL);
    return th_peer_send(p, rc, b, n);
}

int th_peer_heartbeat(struct th_peer *p)
{
    uint8_t *b = NULL;
    size_t n = 0;
    em_err rc = em_wire_heartbeat(NULL, NULL, 0, &b, &n, NULL);
    return th_peer_send(p, rc, b, n);
}

Earmark__Envelope *th_peer_recv(struct th_peer *p, int timeout_ms)
{
    zmq_pollitem_t it = {p->sock, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, timeout_ms) <= 0) return NULL;
    zmq_msg_t m;
    zmq_msg_init(&m);
    Earmark__Envelope *e = NULL;
    if (zmq_msg_recv(&m, p->sock, 0) >= 0 &&
        em_wire_unpack(zmq_msg_data(&m), zmq_msg_size(&m), &e, NULL) == EM_OK &&
        e->body_case == EARMARK__ENVELOPE__BODY_TASK)
        p->tasks++;
    zmq_msg_close(&m);
    return e;
}

Earmark__Envelope *th_peer_expect(struct th_peer *p, Earmark__Envelope__BodyCase kind,
                                  int timeout_ms)
{
    int64_t until = em_now_ms() + timeout_ms;
    while (em_now_ms() < until) {
        Earmark__Envelope *e = th_peer_recv(p, 100);
        th_peer_heartbeat(p);
        if (!e) continue;
        if (e->body_case == kind) return e;
        em_wire_free(e);
    }
    return NULL;
}
