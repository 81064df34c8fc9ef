/* coordinator/zap.c - the ZAP handler thread and the handshake monitor (see zap.h).
 *
 * request (REP strips the envelope): "1.0", request id, domain, address, routing id,
 *   mechanism, credentials... (CURVE: one 32-byte client public key)
 * reply: "1.0", request id, status code, status text, user id, metadata (empty) */
#include "coordinator/zap.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/log.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_MAX_FRAMES 8
#define ZAP_MAX_FRAME 256 /* bytes kept of each request frame */

struct em_zap {
    void *rep, *mon, *router;
    const struct em_curve_allow *allow;
    struct em_metrics *m;
    pthread_t th;
    int started;
    atomic_int stop;
    uint64_t refusals; /* thread-only: for the log rate */
};

struct frame {
    size_t len;
    uint8_t b[ZAP_MAX_FRAME];
};

/* Reads one whole multi-part message; returns the number of frames (at most
 * ZAP_MAX_FRAMES kept, longer frames cut), 0 when none. */
static int recv_all(void *s, struct frame *f)
{
    int n = 0, more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s, n ? 0 : ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return n;
        }
        more = zmq_msg_more(&m);
        if (n < ZAP_MAX_FRAMES) {
            size_t l = zmq_msg_size(&m);
            f[n].len = l > ZAP_MAX_FRAME ? ZAP_MAX_FRAME : l;
            memcpy(f[n].b, zmq_msg_data(&m), f[n].len);
            n++;
        }
        zmq_msg_close(&m);
    }
    return n;
}

static int should_log(struct em_zap *z)
{
    uint64_t k = z->refusals++;
    return k < EM_ZAP_LOG_BURST || k % EM_ZAP_LOG_EVERY == 0;
}

static void answer(struct em_zap *z)
{
    struct frame f[ZAP_MAX_FRAMES];
    int n = recv_all(z->rep, f);
    if (n == 0) return;
    /* A request REP cannot answer would stall the handshake: answer every one. */
    int ok = n >= 7 && f[0].len == 3 && memcmp(f[0].b, "1.0", 3) == 0 && f[5].len == 5 &&
             memcmp(f[5].b, "CURVE", 5) == 0 && em_curve_allow_has(z->allow, f[6].b, f[6].len);
    if (!ok && should_log(z)) {
        char key[EM_CURVE_Z85 + 1] = "none", addr[64];
        if (n >= 7 && f[6].len == EM_CURVE_BIN) zmq_z85_encode(key, f[6].b, EM_CURVE_BIN);
        snprintf(addr, sizeof addr, "%.*s", n >= 4 ? (int)(f[3].len < 60 ? f[3].len : 60) : 0,
                 n >= 4 ? (const char *)f[3].b : "");
        em_warn("peer=\"%s\" key=%s msg=\"connection refused: key not in the allow list\"", addr,
                key);
    }
    const char *code = ok ? "200" : "400", *text = ok ? "OK" : "key not allowed";
    zmq_send(z->rep, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(z->rep, n >= 2 ? f[1].b : (const uint8_t *)"", n >= 2 ? f[1].len : 0, ZMQ_SNDMORE);
    zmq_send(z->rep, code, 3, ZMQ_SNDMORE);
    zmq_send(z->rep, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(z->rep, ok ? "worker" : "", ok ? 6 : 0, ZMQ_SNDMORE);
    zmq_send(z->rep, "", 0, 0);
}

/* Monitor event: [u16 event][u32 value] then the endpoint address. */
static void on_event(struct em_zap *z)
{
    struct frame f[ZAP_MAX_FRAMES];
    int n = recv_all(z->mon, f);
    if (n < 1 || f[0].len < 6) return;
    uint16_t ev;
    uint32_t val;
    memcpy(&ev, f[0].b, 2);
    memcpy(&val, f[0].b + 2, 4);
    /* every failed handshake is a peer kept out: a refused key (AUTH, logged by answer()),
     * no CURVE at all (a mechanism mismatch, or - when the peer sees the mismatch first and
     * hangs up - no detail), or bytes that are not ZMTP */
    if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
        atomic_fetch_add(&z->m->auth_refused, 1);
        return;
    }
    if (ev != ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL && ev != ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
        return;
    atomic_fetch_add(&z->m->auth_refused, 1);
    if (should_log(z))
        em_warn("msg=\"connection refused: %s\"",
                val == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH ? "peer does not speak CURVE"
                                                                   : "handshake failed");
}

static void *run(void *arg)
{
    struct em_zap *z = arg;
    while (!atomic_load(&z->stop)) {
        zmq_pollitem_t it[2] = {{z->rep, 0, ZMQ_POLLIN, 0}, {z->mon, 0, ZMQ_POLLIN, 0}};
        int r = zmq_poll(it, 2, 100);
        if (r < 0 && zmq_errno() == ETERM) break;
        if (r <= 0) continue;
        if (it[0].revents & ZMQ_POLLIN) answer(z);
        if (it[1].revents & ZMQ_POLLIN) on_event(z);
    }
    return NULL;
}

em_err em_zap_start(void *ctx, void *router, const struct em_curve_pair *pair,
                    const struct em_curve_allow *allow, struct em_metrics *m, struct em_zap **out,
                    struct em_errbuf *eb)
{
    *out = NULL;
    if (!zmq_has("curve")) return em_errf(eb, EM_E_INTERNAL, "this libzmq has no CURVE support");
    struct em_zap *z = calloc(1, sizeof *z);
    if (!z) return em_errf(eb, EM_E_NOMEM, "zap: out of memory");
    z->allow = allow;
    z->m = m;
    z->router = router;
    char mon[64];
    snprintf(mon, sizeof mon, "inproc://em-coord-mon-%p", (void *)z);
    int one = 1, linger = 0;
    if (!(z->rep = zmq_socket(ctx, ZMQ_REP)) ||
        zmq_setsockopt(z->rep, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_bind(z->rep, ZAP_ENDPOINT) != 0 ||
        zmq_socket_monitor(router, mon,
                           ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) !=
            0 ||
        !(z->mon = zmq_socket(ctx, ZMQ_PAIR)) ||
        zmq_setsockopt(z->mon, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_connect(z->mon, mon) != 0 ||
        zmq_setsockopt(router, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(router, ZMQ_CURVE_SECRETKEY, pair->sec, EM_CURVE_Z85) != 0 ||
        zmq_setsockopt(router, ZMQ_ZAP_DOMAIN, "earmark", 7) != 0) {
        em_errf(eb, EM_E_IO, "CURVE/ZAP setup: %s", zmq_strerror(zmq_errno()));
        em_zap_stop(z);
        return EM_E_IO;
    }
    if (pthread_create(&z->th, NULL, run, z) != 0) {
        em_zap_stop(z);
        return em_errf(eb, EM_E_INTERNAL, "zap: cannot start its thread");
    }
    z->started = 1;
    *out = z;
    return EM_OK;
}

void em_zap_stop(struct em_zap *z)
{
    if (!z) return;
    atomic_store(&z->stop, 1);
    if (z->started) pthread_join(z->th, NULL);
    if (z->mon) zmq_socket_monitor(z->router, NULL, 0);
    if (z->mon) zmq_close(z->mon);
    if (z->rep) zmq_close(z->rep);
    free(z);
}
