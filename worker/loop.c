/* worker/loop.c - the DEALER socket loop (protocol in loop.h).
 *
 * Ownership: a job is created here when a Task arrives and lives in `held` until its
 * Result is sent; worker/pool.c runs it in a pipeline thread and flips its state. This
 * thread alone frees jobs and alone touches the socket. */
#include "worker/loop.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/sig.h"
#include "model/family.h"
#include "model/model.h"
#include "proto/wire.h"
#include "worker/pipeline.h"
#include "worker/pool.h"

struct loop {
    const struct em_loop_opts *o;
    struct em_pipe_env env;
    void *ctx, *sock, *mon;
    int wake[2]; /* pipeline threads write a byte to wake[1] when a job is done */
    struct em_pool *pool;
    struct em_job **held;      /* queued, running or done but unanswered */
    const char **hb_ids, **hb_tokens; /* heartbeat scratch, maxheld entries each */
    unsigned nheld, maxheld;
    bool welcomed;
    uint64_t auth_failures; /* handshakes the coordinator refused */
    int heartbeat_ms;
    int64_t next_hb, hello_at;
    struct em_loop_stats stats;
};

static volatile sig_atomic_t stop_signal;
static void on_signal(int sig) { stop_signal = sig; }

/* ---- sending (proto/wire.h builds each frame) ---- */

/* Sends a frame built by an em_wire_* builder (rc, buf, len); frees buf. 0 when queued. */
static int send_frame(struct loop *l, em_err rc, uint8_t *buf, size_t len,
                      const struct em_errbuf *eb)
{
    if (rc != EM_OK) {
        em_error("msg=\"cannot encode a frame\" err=%s detail=\"%s\"", em_err_name(rc),
                 em_errbuf_msg(eb, rc));
        return -1;
    }
    int r = zmq_send(l->sock, buf, len, ZMQ_DONTWAIT) < 0 ? -1 : 0;
    if (r != 0) em_warn("msg=\"send failed\" err=\"%s\"", zmq_strerror(errno));
    free(buf);
    return r;
}

static void send_hello(struct loop *l)
{
    uint8_t *b = NULL;
    size_t n = 0;
    struct em_errbuf eb = {{0}};
    /* the model's family and tasks, so that the coordinator sends only what it can do */
    struct em_wire_caps caps = {0};
    const char *fam = l->o->rt ? em_model_family(l->o->rt) : NULL;
    for (const struct em_family *f = em_families; fam && f->name; f++)
        if (!strcmp(f->name, fam)) {
            caps.family = f->name;
            caps.tasks = (const char *const *)f->tasks;
            while (f->tasks[caps.ntasks]) caps.ntasks++;
            caps.free_text = f->free_text;
        }
    em_err rc = em_wire_hello_caps(l->o->worker_id, EM_VERSION, "cpu",
                                   l->o->model ? l->o->model : "none", &caps, l->o->capacity,
                                   (uint32_t)getpid(), &b, &n, &eb);
    send_frame(l, rc, b, n, &eb);
    l->hello_at = em_now_ms();
}

/* Tells the coordinator we are draining, so it sends nothing more. */
static void send_goodbye(struct loop *l, const char *why)
{
    uint8_t *b = NULL;
    size_t n = 0;
    struct em_errbuf eb = {{0}};
    em_err rc = em_wire_goodbye(why, &b, &n, &eb);
    send_frame(l, rc, b, n, &eb);
}

static void send_ready(struct loop *l, unsigned credits)
{
    uint8_t *b = NULL;
    size_t n = 0;
    struct em_errbuf eb = {{0}};
    em_err rc = em_wire_ready(credits, &b, &n, &eb);
    send_frame(l, rc, b, n, &eb);
}

static void send_heartbeat(struct loop *l)
{
    for (unsigned i = 0; i < l->nheld; i++) {
        l->hb_ids[i] = l->held[i]->task_id;
        l->hb_tokens[i] = l->held[i]->lease_token;
    }
    uint8_t *b = NULL;
    size_t n = 0;
    struct em_errbuf eb = {{0}};
    em_err rc = em_wire_heartbeat(l->hb_ids, l->hb_tokens, l->nheld, &b, &n, &eb);
    send_frame(l, rc, b, n, &eb);
}

/* Result for a job (run or not). Returns 0 when queued on the socket. */
static int send_result(struct loop *l, const struct em_job *j, const struct em_pipe_result *r)
{
    Earmark__Result m;
    earmark__result__init(&m);
    m.task_id = j->task_id;
    m.batch_id = j->batch_id;
    m.item_id = j->item_id;
    m.attempt = j->attempt;
    m.lease_token = (char *)j->lease_token;
    m.ok = r->err == EM_OK;
    m.error_class = (char *)(r->err == EM_OK ? "" : em_err_name(r->err));
    m.error_message = (char *)(r->err == EM_OK ? "" : r->msg);
    m.retryable = r->err != EM_OK && r->retryable;
    m.output_uri = r->wrote_record ? j->out_uri : (char *)"";
    m.duration_s = r->duration_s;
    m.elapsed_s = r->elapsed_s;
    uint8_t *b = NULL;
    size_t n = 0;
    struct em_errbuf eb = {{0}};
    em_err rc = em_wire_result(&m, &b, &n, &eb);
    return send_frame(l, rc, b, n, &eb);
}

/* ---- jobs ---- */

static void held_remove(struct loop *l, unsigned i)
{
    l->held[i] = l->held[--l->nheld];
}

/* Sends a result that is not the pipeline's (cancelled, handed back, over capacity). */
static void answer_unrun(struct loop *l, const struct em_job *j, em_err err, bool retryable,
                         const char *why)
{
    struct em_pipe_result r;
    memset(&r, 0, sizeof r);
    r.err = err;
    r.retryable = retryable;
    snprintf(r.msg, sizeof r.msg, "%s", why);
    send_result(l, j, &r);
    l->stats.failed++;
}

/* ---- main-thread handlers ---- */

static unsigned free_slots(const struct loop *l)
{
    return l->nheld >= l->o->capacity ? 0 : l->o->capacity - l->nheld;
}

static void on_task(struct loop *l, const Earmark__Task *t, bool draining)
{
    size_t idl = t->task_id ? strlen(t->task_id) : 0;
    size_t tokl = t->lease_token ? strlen(t->lease_token) : 0;
    if (idl == 0 || idl > EM_LOOP_MAX_TASK_ID || tokl > EM_JOB_MAX_LEASE) {
        l->stats.dropped++;
        em_warn("msg=\"task with an empty or oversized id dropped\" bytes=%zu token_bytes=%zu",
                idl, tokl);
        return;
    }
    for (unsigned i = 0; i < l->nheld; i++)
        if (strcmp(l->held[i]->task_id, t->task_id) == 0) {
            /* sent twice (e.g. re-read after a coordinator restart): one run, one result */
            em_warn("msg=\"duplicate task ignored\" task=%s", t->task_id);
            return;
        }
    struct em_pipe_task pt = {
        .task_id = t->task_id, .batch_id = t->batch_id, .item_id = t->item_id,
        .source = t->source, .out_uri = t->out_uri, .meta_json = t->meta_json,
        .producer_hash = t->producer_hash, .attempt = t->attempt, .deadline_ms = t->deadline_ms,
    };
    struct em_model_prompt prompts[EM_MODEL_MAX_PROMPTS];
    if (t->n_prompts > EM_MODEL_MAX_PROMPTS) {
        l->stats.dropped++;
        em_warn("msg=\"task with too many prompts refused\" task=%s prompts=%zu", t->task_id,
                t->n_prompts);
        return; /* malformed: the coordinator never sends more; its lease settles the item */
    }
    for (size_t i = 0; i < t->n_prompts; i++) {
        const Earmark__Prompt *q = t->prompts[i];
        bool builtin = !q->text || !*q->text; /* built-in tasks travel by name only */
        prompts[i] = (struct em_model_prompt){q->name && *q->name ? q->name : NULL,
                                              builtin ? q->name : NULL, builtin ? NULL : q->text};
    }
    pt.prompts = prompts;
    pt.n_prompts = t->n_prompts;
    if (t->gen) {
        const Earmark__Generation *g = t->gen;
        pt.gen = (struct em_gen_params_override){
            .max_new_tokens = g->max_new_tokens <= EM_MODEL_MAX_NEW_TOKENS ? (int)g->max_new_tokens : 0,
            .greedy = g->greedy, .temperature = g->temperature, .top_k = (int)g->top_k,
            .top_p = g->top_p, .repetition_penalty = g->repetition_penalty,
            .set_seed = g->seed != 0, .seed = g->seed,
        };
        pt.strict_audio = g->strict_audio;
    }
    struct em_job *j = em_job_new(&pt);
    if (!j) {
        em_error("msg=\"out of memory taking a task\"");
        return; /* the coordinator's lease re-dispatches it */
    }
    memcpy(j->lease_token, t->lease_token ? t->lease_token : "", tokl + 1);
    l->stats.tasks++;
    if (draining || l->nheld >= l->maxheld) {
        em_warn("msg=\"task refused\" task=%s why=%s", j->task_id,
                draining ? "draining" : "over-capacity");
        answer_unrun(l, j, EM_E_LOST, true, draining ? "worker is draining" : "worker over capacity");
        em_job_free(j);
        return;
    }
    em_info("msg=\"task\" task=%s item=%s attempt=%u", j->task_id, j->item_id, j->attempt);
    l->held[l->nheld++] = j;
    em_pool_push(l->pool, j);
}

static void on_cancel(struct loop *l, const char *task_id, bool draining)
{
    for (unsigned i = 0; i < l->nheld; i++) {
        struct em_job *j = l->held[i];
        if (strcmp(j->task_id, task_id ? task_id : "") != 0) continue;
        if (!em_pool_unqueue(l->pool, j)) return; /* running or done: its result will say what happened */
        answer_unrun(l, j, EM_E_CANCELLED, false, "cancelled before it started");
        held_remove(l, i);
        em_job_free(j);
        if (!draining) send_ready(l, 1);
        return;
    }
}

/* Returns true when the loop should start draining (Drain). */
static bool on_frame(struct loop *l, zmq_msg_t *m, bool draining)
{
    Earmark__Envelope *e = NULL;
    struct em_errbuf eb = {{0}};
    em_err rc = em_wire_unpack(zmq_msg_data(m), zmq_msg_size(m), &e, &eb);
    if (rc != EM_OK) {
        l->stats.dropped++;
        char q[300];
        em_warn("msg=\"malformed frame dropped\" err=%s detail=\"%s\" dropped=%llu",
                em_err_name(rc), em_log_q(q, sizeof q, em_errbuf_msg(&eb, rc)),
                (unsigned long long)l->stats.dropped);
        return false;
    }
    bool drain = false;
    switch (e->body_case) {
    case EARMARK__ENVELOPE__BODY_WELCOME: {
        uint32_t hb = e->welcome->heartbeat_ms ? e->welcome->heartbeat_ms
                                               : EM_LOOP_DEFAULT_HEARTBEAT_MS;
        if (hb < EM_LOOP_MIN_HEARTBEAT_MS) hb = EM_LOOP_MIN_HEARTBEAT_MS;
        if (hb > EM_LOOP_MAX_HEARTBEAT_MS) hb = EM_LOOP_MAX_HEARTBEAT_MS;
        l->heartbeat_ms = (int)hb;
        if (l->next_hb > em_now_ms() + hb) l->next_hb = em_now_ms() + hb;
        l->welcomed = true;
        em_wmetrics_connected(l->o->metrics, true);
        l->stats.welcomes++;
        em_info("msg=\"welcome\" heartbeat_ms=%d lease_ms=%u held=%u", l->heartbeat_ms,
                e->welcome->lease_ms, l->nheld);
        send_ready(l, draining ? 0 : free_slots(l));
        if (draining) send_goodbye(l, "draining"); /* a coordinator that just met us */
        break;
    }
    case EARMARK__ENVELOPE__BODY_TASK: on_task(l, e->task, draining); break;
    case EARMARK__ENVELOPE__BODY_CANCEL: on_cancel(l, e->cancel->task_id, draining); break;
    case EARMARK__ENVELOPE__BODY_DRAIN: drain = true; break;
    default:
        l->stats.dropped++;
        em_warn("msg=\"unexpected message dropped\" body=%d", (int)e->body_case);
        break;
    }
    em_wire_free(e);
    return drain;
}

static void on_monitor(struct loop *l)
{
    zmq_msg_t ev, addr;
    zmq_msg_init(&ev);
    zmq_msg_init(&addr);
    if (zmq_msg_recv(&ev, l->mon, ZMQ_DONTWAIT) >= 0) {
        uint16_t event = 0;
        if (zmq_msg_size(&ev) >= 2) memcpy(&event, zmq_msg_data(&ev), 2);
        if (zmq_msg_more(&ev)) zmq_msg_recv(&addr, l->mon, 0);
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            em_info("msg=\"connected\" endpoint=%s", l->o->endpoint);
            l->welcomed = false;
            send_hello(l);
        } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ||
                   event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
            /* libzmq retries the connection; say why, without a line per retry */
            if (l->auth_failures++ % 100 == 0)
                em_error("msg=\"coordinator refused the connection (key not allowed, or CURVE "
                         "on one side only)\" endpoint=%s failures=%llu",
                         l->o->endpoint, (unsigned long long)l->auth_failures);
        } else if (event == ZMQ_EVENT_DISCONNECTED) {
            em_warn("msg=\"disconnected\" endpoint=%s held=%u", l->o->endpoint, l->nheld);
            l->welcomed = false;
            em_wmetrics_connected(l->o->metrics, false);
        }
    }
    zmq_msg_close(&ev);
    zmq_msg_close(&addr);
}

/* Sends the results of finished jobs and frees them. */
static void flush_done(struct loop *l, bool draining)
{
    char buf[256];
    while (read(l->wake[0], buf, sizeof buf) > 0) {
    }
    for (unsigned i = 0; i < l->nheld;) {
        struct em_job *j = l->held[i];
        if (em_pool_state(l->pool, j) != EM_JOB_DONE) {
            i++;
            continue;
        }
        if (send_result(l, j, &j->res) != 0) {
            i++; /* retried on the next tick */
            continue;
        }
        em_wmetrics_task(l->o->metrics, &j->res, (double)(j->started_ms - j->accepted_ms) / 1e3);
        if (j->res.err == EM_OK) {
            l->stats.ok++;
            em_info("msg=\"done\" item=%s task=%s duration_s=%.3f elapsed_s=%.3f", j->item_id,
                    j->task_id, j->res.duration_s, j->res.elapsed_s);
        } else {
            l->stats.failed++;
            char q[300];
            em_warn("msg=\"failed\" item=%s task=%s err=%s retryable=%d detail=\"%s\"",
                    j->item_id, j->task_id, em_err_name(j->res.err), j->res.retryable,
                    em_log_q(q, sizeof q, j->res.msg));
        }
        held_remove(l, i);
        em_job_free(j);
        if (!draining) send_ready(l, 1);
    }
}

/* Hands back every job that has not started (drain bound reached). */
static void hand_back_queued(struct loop *l)
{
    for (unsigned i = 0; i < l->nheld;) {
        struct em_job *j = l->held[i];
        if (!em_pool_unqueue(l->pool, j)) {
            i++;
            continue;
        }
        answer_unrun(l, j, EM_E_LOST, true, "worker stopped before starting it");
        held_remove(l, i);
        em_job_free(j);
    }
}

/* ---- setup / teardown ---- */

static em_err open_socket(struct loop *l, struct em_errbuf *eb)
{
    l->ctx = zmq_ctx_new();
    if (!l->ctx) return em_errf(eb, EM_E_IO, "zmq context: %s", zmq_strerror(errno));
    l->sock = zmq_socket(l->ctx, ZMQ_DEALER);
    if (!l->sock) return em_errf(eb, EM_E_IO, "zmq socket: %s", zmq_strerror(errno));
    int64_t maxmsg = EM_WIRE_MAX_FRAME;
    int linger = 2000, ivl = 100, ivlmax = 2000;
    /* No ZMQ_ROUTING_ID: the ROUTER names each connection itself, so a second process
     * using our worker id cannot take over our connection's routing (see dispatch.c). */
    zmq_setsockopt(l->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    zmq_setsockopt(l->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(l->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(l->sock, ZMQ_RECONNECT_IVL_MAX, &ivlmax, sizeof ivlmax);
    if (l->o->curve &&
        (zmq_setsockopt(l->sock, ZMQ_CURVE_SERVERKEY, l->o->server_key, EM_CURVE_Z85) != 0 ||
         zmq_setsockopt(l->sock, ZMQ_CURVE_PUBLICKEY, l->o->curve->pub, EM_CURVE_Z85) != 0 ||
         zmq_setsockopt(l->sock, ZMQ_CURVE_SECRETKEY, l->o->curve->sec, EM_CURVE_Z85) != 0))
        return em_errf(eb, EM_E_ARG, "CURVE keys refused by libzmq: %s", zmq_strerror(errno));
    char mon[64];
    snprintf(mon, sizeof mon, "inproc://em-worker-mon-%p", (void *)l);
    int events = ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED |
                 ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL;
    if (zmq_socket_monitor(l->sock, mon, events) != 0)
        return em_errf(eb, EM_E_IO, "zmq monitor: %s", zmq_strerror(errno));
    l->mon = zmq_socket(l->ctx, ZMQ_PAIR);
    if (!l->mon || zmq_connect(l->mon, mon) != 0)
        return em_errf(eb, EM_E_IO, "zmq monitor connect: %s", zmq_strerror(errno));
    if (zmq_connect(l->sock, l->o->endpoint) != 0)
        return em_errf(eb, EM_E_ARG, "connect %s: %s", l->o->endpoint, zmq_strerror(errno));
    return EM_OK;
}

/* join: wait for every thread and free everything, l included. Without join (drain bound
 * passed) the threads, their handles, the jobs and l itself stay alive until exit. */
static void teardown(struct loop *l, bool join)
{
    em_pool_stop(l->pool, join);
    if (join) {
        for (unsigned i = 0; i < l->nheld; i++) em_job_free(l->held[i]);
        free(l->held);
        free(l->hb_ids);
        free(l->hb_tokens);
        if (l->wake[0] >= 0) close(l->wake[0]);
        if (l->wake[1] >= 0) close(l->wake[1]);
    }
    if (l->mon) zmq_close(l->mon);
    if (l->sock) {
        zmq_socket_monitor(l->sock, NULL, 0);
        zmq_close(l->sock);
    }
    if (l->ctx) zmq_ctx_term(l->ctx);
    if (join) free(l);
}

static em_err check_opts(const struct em_loop_opts *o, struct em_errbuf *eb)
{
    if (!o->endpoint || !*o->endpoint) return em_errf(eb, EM_E_ARG, "no --connect endpoint");
    size_t idl = o->worker_id ? strlen(o->worker_id) : 0;
    if (idl == 0 || idl > EM_LOOP_MAX_ID)
        return em_errf(eb, EM_E_ARG, "worker id must be 1..%d bytes", EM_LOOP_MAX_ID);
    if (o->threads < 1 || o->threads > EM_LOOP_MAX_THREADS)
        return em_errf(eb, EM_E_ARG, "threads %u outside 1..%d", o->threads, EM_LOOP_MAX_THREADS);
    if (o->capacity < 1 || o->capacity > EM_LOOP_MAX_CAPACITY)
        return em_errf(eb, EM_E_ARG, "capacity %u outside 1..%d", o->capacity,
                       EM_LOOP_MAX_CAPACITY);
    return EM_OK;
}

struct em_loop_opts em_loop_opts_default(void)
{
    struct em_loop_opts o;
    memset(&o, 0, sizeof o);
    o.threads = 1;
    o.capacity = 0;
    o.drain_ms = 30000;
    o.storage = em_storage_opts_default();
    return o;
}

/* ---- the loop ---- */

static int poll_timeout(const struct loop *l, int64_t now)
{
    int64_t t = l->next_hb - now;
    if (t > 100) t = 100; /* check the signal flag often */
    return t < 0 ? 0 : (int)t;
}

static void tick(struct loop *l, int64_t now)
{
    em_wmetrics_held(l->o->metrics, l->nheld);
    if (now >= l->next_hb) {
        send_heartbeat(l);
        l->next_hb = now + l->heartbeat_ms;
    }
    /* connected but no Welcome: the coordinator may have missed the Hello */
    if (!l->welcomed && l->hello_at && now - l->hello_at >= EM_LOOP_HELLO_RETRY_MS) send_hello(l);
}

static em_err run(struct loop *l, struct em_errbuf *eb)
{
    bool draining = false;
    int64_t drain_until = 0;
    l->heartbeat_ms = EM_LOOP_DEFAULT_HEARTBEAT_MS;
    l->next_hb = em_now_ms() + l->heartbeat_ms;
    for (;;) {
        zmq_pollitem_t it[3] = {
            {l->sock, 0, ZMQ_POLLIN, 0},
            {l->mon, 0, ZMQ_POLLIN, 0},
            {NULL, l->wake[0], ZMQ_POLLIN, 0},
        };
        int64_t now = em_now_ms();
        int rc = zmq_poll(it, 3, poll_timeout(l, now));
        if (rc < 0 && errno != EINTR) return em_errf(eb, EM_E_IO, "zmq_poll: %s", zmq_strerror(errno));
        if (rc > 0 && (it[1].revents & ZMQ_POLLIN)) on_monitor(l);
        if (rc > 0 && (it[0].revents & ZMQ_POLLIN)) {
            for (int k = 0; k < 64; k++) {
                zmq_msg_t m;
                zmq_msg_init(&m);
                if (zmq_msg_recv(&m, l->sock, ZMQ_DONTWAIT) < 0) {
                    zmq_msg_close(&m);
                    break;
                }
                if (zmq_msg_more(&m)) { /* protocol is one frame per message */
                    l->stats.dropped++;
                    em_warn("msg=\"multi-frame message dropped\"");
                    zmq_msg_close(&m);
                    while (1) { /* swallow the rest of it */
                        zmq_msg_init(&m);
                        int more = zmq_msg_recv(&m, l->sock, ZMQ_DONTWAIT) >= 0 && zmq_msg_more(&m);
                        zmq_msg_close(&m);
                        if (!more) break;
                    }
                    continue;
                }
                if (on_frame(l, &m, draining) && !draining) stop_signal = SIGTERM;
                zmq_msg_close(&m);
            }
        }
        flush_done(l, draining);
        now = em_now_ms();
        if (!draining && stop_signal) {
            draining = true;
            drain_until = now + l->o->drain_ms;
            em_info("msg=\"draining\" signal=%d held=%u", (int)stop_signal, l->nheld);
            send_goodbye(l, "draining");
        }
        if (draining && l->nheld == 0) return EM_OK;
        if (draining && now >= drain_until) {
            hand_back_queued(l);
            for (unsigned i = 0; i < l->nheld; i++)
                answer_unrun(l, l->held[i], EM_E_LOST, true, "worker stopped before finishing it");
            em_warn("msg=\"drain bound reached\" unfinished=%u", l->nheld);
            return EM_E_TIMEOUT;
        }
        tick(l, now);
    }
}

em_err em_loop_run(const struct em_loop_opts *o, struct em_loop_stats *stats,
                   struct em_errbuf *eb)
{
    em_err rc = check_opts(o, eb);
    if (rc != EM_OK) return rc;
    /* heap, not stack: after a drain timeout, threads still running keep using it */
    struct loop *l = calloc(1, sizeof *l);
    if (!l) return em_errf(eb, EM_E_NOMEM, "worker loop");
    l->o = o;
    l->wake[0] = l->wake[1] = -1;
    l->env.worker_id = o->worker_id;
    l->env.model = o->model;
    l->env.rt = o->rt;
    l->env.engine = o->engine;
    l->env.sources = o->sources;
    em_pipe_env_from_environ(&l->env);
    if (l->env.fault_crash_on || l->env.fault_delay_ms)
        em_warn("msg=\"TEST-ONLY fault hooks active\" crash_on=%s delay_ms=%d",
                l->env.fault_crash_on ? "set" : "unset", l->env.fault_delay_ms);
    l->maxheld = 2 * o->capacity + 16;
    l->held = calloc(l->maxheld, sizeof *l->held);
    l->hb_ids = calloc(l->maxheld, sizeof *l->hb_ids);
    l->hb_tokens = calloc(l->maxheld, sizeof *l->hb_tokens);
    bool joined_ok = true;
    if (!l->held || !l->hb_ids || !l->hb_tokens) {
        rc = em_errf(eb, EM_E_NOMEM, "job table");
        goto out;
    }
    if (pipe2(l->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
        rc = em_errf(eb, EM_E_IO, "pipe: %s", strerror(errno));
        goto out;
    }
    em_sig_on_stop(on_signal); /* no SA_RESTART: zmq_poll returns EINTR */
    if ((rc = open_socket(l, eb)) != EM_OK) goto out;
    if ((rc = em_pool_start(o->threads, &o->storage, &l->env, l->wake[1], &l->pool, eb)) != EM_OK)
        goto out;
    em_info("msg=\"worker started\" id=%s endpoint=%s threads=%u capacity=%u", o->worker_id,
            o->endpoint, o->threads, o->capacity);
    rc = run(l, eb);
    if (rc == EM_E_TIMEOUT) {
        joined_ok = false;
        rc = em_errf(eb, EM_E_TIMEOUT, "drain took longer than %d ms", o->drain_ms);
    }
out:
    if (stats) *stats = l->stats;
    em_info("msg=\"worker stopped\" tasks=%llu ok=%llu failed=%llu dropped=%llu",
            (unsigned long long)l->stats.tasks, (unsigned long long)l->stats.ok,
            (unsigned long long)l->stats.failed, (unsigned long long)l->stats.dropped);
    teardown(l, joined_ok);
    return rc;
}
