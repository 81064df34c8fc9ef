/* coordinator/dispatch.c - the ROUTER side of the protocol (ARCHITECTURE.md §5).
 *
 * [routing id][Envelope] in; anything else (frame count, undecodable, wrong version) is
 * counted in earmark_frames_dropped_total{reason} and dropped. A routing id is one
 * connection (workers leave it to the ROUTER). Hello -> Welcome; Ready adds credits (the
 * first Ready after a Welcome replaces them); a Task goes out only against a credit, with a
 * lease token; Result and Heartbeat go through lease.c; any message refreshes the worker's
 * lease. A message from a peer we do not know (we restarted, or declared it lost) gets a
 * Welcome, to which the worker answers with Ready(free credits).
 * Worker ids are unique per live connection: a Hello naming the id of another connection
 * is checked by sending that one a Welcome; if it is still there the newcomer is refused
 * (everything it sends is dropped as id_clash, and it is not counted in earmark_workers),
 * else the old connection is removed (its tasks fail as lost) and the newcomer takes the
 * id. Goodbye (a draining worker) stops dispatch to it at once. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/clock.h"
#include "common/log.h"
#include "coordinator/coord.h"
#include "proto/wire.h"
#include "storage/storage.h"

#define MAX_CREDITS 1024u /* per worker, whatever it announces */
#define MAX_WORKERS 4096u /* peers tracked at once; more are dropped until leases expire */

static struct em_worker *worker_find(struct em_coord *c, const uint8_t *rid, size_t len)
{
    for (size_t i = 0; i < c->nworkers; i++)
        if (c->workers[i]->rid_len == len && memcmp(c->workers[i]->rid, rid, len) == 0)
            return c->workers[i];
    return NULL;
}

static void printable_id(const uint8_t *rid, size_t len, char *out, size_t cap)
{
    int ok = len > 0 && rid[0] != 0;
    for (size_t i = 0; ok && i < len; i++)
        ok = rid[i] > 0x20 && rid[i] < 0x7f && rid[i] != '"';
    if (ok) {
        snprintf(out, cap, "%.*s", (int)len, (const char *)rid);
        return;
    }
    size_t o = 0;
    for (size_t i = 0; i < len && o + 3 < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%02x", rid[i]);
    if (o == 0 && cap) out[0] = 0;
}

/* earmark_workers: connections that may be sent tasks (refused ones are not). */
static void update_gauge(struct em_coord *c)
{
    int_fast64_t n = 0;
    for (size_t i = 0; i < c->nworkers; i++) n += !c->workers[i]->refused;
    atomic_store(&c->m->workers, n);
}

static struct em_worker *worker_add(struct em_coord *c, const uint8_t *rid, size_t len)
{
    if (c->nworkers >= MAX_WORKERS) return NULL;
    if (c->nworkers == c->capworkers) {
        size_t nc = c->capworkers ? c->capworkers * 2 : 8;
        struct em_worker **v = realloc(c->workers, nc * sizeof *v);
        if (!v) return NULL;
        c->workers = v;
        c->capworkers = nc;
    }
    struct em_worker *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    memcpy(w->rid, rid, len);
    w->rid_len = len;
    printable_id(rid, len, w->id, sizeof w->id);
    w->last_seen_ms = em_now_ms();
    c->workers[c->nworkers++] = w;
    update_gauge(c);
    return w;
}

static unsigned worker_running(const struct em_coord *c, const struct em_worker *w)
{
    unsigned n = 0;
    for (size_t i = 0; i < c->njobs; i++) {
        const struct em_job *j = c->jobs[i];
        n += j->state == EM_JOB_RUNNING && j->rid_len == w->rid_len &&
             memcmp(j->rid, w->rid, w->rid_len) == 0;
    }
    return n;
}

/* Fails every job running on w (lost worker). */
static void fail_jobs_of(struct em_coord *c, const struct em_worker *w, const char *why)
{
    char msg[200];
    snprintf(msg, sizeof msg, "worker %s %s", w->id, why);
    for (size_t i = 0; i < c->njobs;) {
        struct em_job *j = c->jobs[i];
        if (j->state == EM_JOB_RUNNING && j->rid_len == w->rid_len &&
            memcmp(j->rid, w->rid, w->rid_len) == 0) {
            em_coord_job_failed(c, j, 1, "EM_E_LOST", msg); /* may remove j from jobs */
            i = 0;                                          /* rescan: the array changed */
            continue;
        }
        i++;
    }
}

static void worker_remove(struct em_coord *c, struct em_worker *w, const char *why)
{
    unsigned running = worker_running(c, w);
    /* a refused peer, or one that said goodbye and finished, is gone, not lost */
    if (running || !(w->refused || w->leaving)) {
        em_warn("worker=%s msg=\"worker lost\" reason=\"%s\" running=%u", w->id, why, running);
        atomic_fetch_add(&c->m->lost_workers, 1);
        fail_jobs_of(c, w, why);
    } else {
        em_info("worker=%s msg=\"worker left\" reason=\"%s\"", w->id, why);
    }
    for (size_t i = 0; i < c->nworkers; i++)
        if (c->workers[i] == w) {
            c->workers[i] = c->workers[--c->nworkers];
            break;
        }
    update_gauge(c);
    free(w);
}

/* 0 sent; -1 peer gone (EHOSTUNREACH); -2 would block or other error. */
static int send_to(struct em_coord *c, const uint8_t *rid, size_t len, const uint8_t *buf, size_t n)
{
    if (zmq_send(c->zsock, rid, len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return errno == EHOSTUNREACH ? -1 : -2;
    if (zmq_send(c->zsock, buf, n, ZMQ_DONTWAIT) < 0) return errno == EHOSTUNREACH ? -1 : -2;
    return 0;
}

/* As send_to. */
static int send_welcome(struct em_coord *c, struct em_worker *w)
{
    uint8_t *buf;
    size_t n;
    if (em_wire_welcome(c->cfg.heartbeat_ms, c->cfg.lease_ms, &buf, &n, NULL) != EM_OK) return -2;
    int s = send_to(c, w->rid, w->rid_len, buf, n);
    free(buf);
    w->reset_credits = 1;
    w->credits = 0;
    return s;
}

/* Another connection that said Hello with this worker id, or NULL. */
static struct em_worker *worker_by_id(struct em_coord *c, const char *id, const struct em_worker *w)
{
    for (size_t i = 0; i < c->nworkers; i++) {
        struct em_worker *o = c->workers[i];
        if (o != w && o->hello && !o->refused && strcmp(o->id, id) == 0) return o;
    }
    return NULL;
}

/* 1 when w's Hello claims the id of a live connection (w is then refused). A connection
 * that is gone (the worker restarted) is removed, and w takes its id. */
static int id_clash(struct em_coord *c, struct em_worker *w, const char *id)
{
    struct em_worker *o = worker_by_id(c, id, w);
    if (!o) return 0;
    if (send_welcome(c, o) == -1) { /* its connection is closed */
        worker_remove(c, o, "reconnected");
        return 0;
    }
    if (!w->refused)
        em_warn("worker=%s msg=\"hello refused: a live connection holds this worker id\"", id);
    w->refused = 1;
    w->credits = 0;
    atomic_fetch_add(&c->m->dropped[EM_DROP_ID_CLASH], 1);
    update_gauge(c);
    return 1;
}

static void on_hello(struct em_coord *c, struct em_worker *w, const Earmark__Hello *h)
{
    if (h->worker_id[0] && id_clash(c, w, h->worker_id)) return;
    if (w->refused) {
        w->refused = 0;
        update_gauge(c);
    }
    w->hello = 1;
    w->leaving = 0;
    if (h->worker_id[0]) snprintf(w->id, sizeof w->id, "%s", h->worker_id);
    snprintf(w->model, sizeof w->model, "%s", h->model);
    em_coord_worker_caps(w, h);
    w->capacity = h->capacity > MAX_CREDITS ? MAX_CREDITS : h->capacity;
    char q1[64], q2[64];
    em_info("worker=%s msg=\"hello\" version=\"%s\" backend=\"%s\" capacity=%u pid=%u "
            "family=\"%s\"", w->id, em_log_q(q1, sizeof q1, h->version),
            em_log_q(q2, sizeof q2, h->backend), h->capacity, h->pid, w->family);
    em_page_hello(c->page, w->id, h->model, h->backend);
    send_welcome(c, w);
}

static void on_ready(struct em_coord *c, struct em_worker *w, const Earmark__Ready *r)
{
    if (w->leaving) return; /* said goodbye: credits it offers are not used */
    unsigned n = r->credits > MAX_CREDITS ? MAX_CREDITS : r->credits;
    unsigned running = worker_running(c, w);
    if (w->reset_credits) {
        w->credits = n;
        w->reset_credits = 0;
        if (w->capacity == 0 || w->capacity < n + running) w->capacity = n + running;
    } else {
        w->credits += n;
    }
    /* Never more than the worker said it can hold. */
    unsigned room = w->capacity > running ? w->capacity - running : 0;
    if (w->capacity && w->credits > room) w->credits = room;
    if (w->credits > MAX_CREDITS) w->credits = MAX_CREDITS;
}

static void on_goodbye(struct em_coord *c, struct em_worker *w)
{
    em_info("worker=%s msg=\"goodbye: draining; no more tasks for it\" running=%u", w->id,
            worker_running(c, w));
    if (!w->leaving) atomic_fetch_add(&c->m->goodbyes, 1);
    w->leaving = 1;
    w->credits = 0;
}

static void on_envelope(struct em_coord *c, const uint8_t *rid, size_t rlen,
                        const Earmark__Envelope *env)
{
    struct em_worker *w = worker_find(c, rid, rlen);
    int known = w != NULL;
    if (!w && !(w = worker_add(c, rid, rlen))) {
        atomic_fetch_add(&c->m->dropped[EM_DROP_UNEXPECTED], 1);
        return;
    }
    w->last_seen_ms = em_now_ms();
    if (env->body_case == EARMARK__ENVELOPE__BODY_HELLO) {
        on_hello(c, w, env->hello);
        return;
    }
    if (w->refused) {
        atomic_fetch_add(&c->m->dropped[EM_DROP_ID_CLASH], 1);
        return;
    }
    switch (env->body_case) {
    case EARMARK__ENVELOPE__BODY_READY:
        if (known) on_ready(c, w, env->ready);
        break;
    case EARMARK__ENVELOPE__BODY_RESULT: em_coord_on_result(c, w, env->result); break;
    case EARMARK__ENVELOPE__BODY_HEARTBEAT: em_coord_on_heartbeat(c, w, env->heartbeat); break;
    case EARMARK__ENVELOPE__BODY_GOODBYE: on_goodbye(c, w); break;
    case EARMARK__ENVELOPE__BODY_PROGRESS: break;
    default: atomic_fetch_add(&c->m->dropped[EM_DROP_UNEXPECTED], 1); break;
    }
    if (!known) {
        em_info("worker=%s msg=\"unknown peer; sending welcome\" kind=%s", w->id,
                em_wire_kind(env->body_case));
        send_welcome(c, w);
    }
}

/* Receives one whole message; returns 0 when none is waiting. */
static int recv_one(struct em_coord *c)
{
    uint8_t rid[EM_COORD_MAX_RID];
    size_t rlen = 0, frames = 0;
    zmq_msg_t body;
    zmq_msg_init(&body);
    int more = 1, have_body = 0;
    while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, c->zsock, frames ? 0 : ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part);
            zmq_msg_close(&body);
            return frames ? 1 : 0;
        }
        more = zmq_msg_more(&part);
        if (frames == 0) {
            rlen = zmq_msg_size(&part) > sizeof rid ? sizeof rid : zmq_msg_size(&part);
            memcpy(rid, zmq_msg_data(&part), rlen);
            zmq_msg_close(&part);
        } else if (frames == 1) {
            zmq_msg_move(&body, &part);
            zmq_msg_close(&part);
            have_body = 1;
        } else {
            zmq_msg_close(&part);
        }
        frames++;
    }
    if (frames != 2 || !have_body) {
        atomic_fetch_add(&c->m->dropped[EM_DROP_FRAMES], 1);
        em_debug("msg=\"dropped message\" reason=frames frames=%zu", frames);
    } else {
        Earmark__Envelope *env = NULL;
        struct em_errbuf eb = {{0}};
        if (em_wire_unpack(zmq_msg_data(&body), zmq_msg_size(&body), &env, &eb) != EM_OK) {
            atomic_fetch_add(&c->m->dropped[EM_DROP_MALFORMED], 1);
            char id[80];
            printable_id(rid, rlen, id, sizeof id);
            em_debug("peer=%s msg=\"dropped frame\" reason=malformed detail=\"%s\"", id, eb.msg);
        } else {
            on_envelope(c, rid, rlen, env);
            em_wire_free(env);
        }
    }
    zmq_msg_close(&body);
    return 1;
}

void em_coord_recv_all(struct em_coord *c)
{
    /* Bounded so timers still run under a flood. */
    for (int i = 0; i < 10000 && recv_one(c); i++) {
    }
}

unsigned em_coord_free_credits(const struct em_coord *c)
{
    unsigned n = 0;
    for (size_t i = 0; i < c->nworkers; i++)
        n += c->workers[i]->credits;
    return n;
}

size_t em_coord_count_jobs(const struct em_coord *c, enum em_job_state s)
{
    size_t n = 0;
    for (size_t i = 0; i < c->njobs; i++)
        n += c->jobs[i]->state == s;
    return n;
}

/* Per dispatch round: what each worker (by index) runs, so picking is O(workers). */
struct load {
    unsigned running, suspects;
};

static void measure(const struct em_coord *c, struct load *ld)
{
    memset(ld, 0, c->nworkers * sizeof *ld);
    for (size_t i = 0; i < c->njobs; i++) {
        const struct em_job *j = c->jobs[i];
        if (j->state != EM_JOB_RUNNING) continue;
        for (size_t k = 0; k < c->nworkers; k++)
            if (c->workers[k]->rid_len == j->rid_len &&
                memcmp(c->workers[k]->rid, j->rid, j->rid_len) == 0) {
                ld[k].running++;
                ld[k].suspects += j->lost > 0;
                break;
            }
    }
}

/* Index of the worker with most credits that can serve b (route.c), or -1. An item that was on a worker that died
 * (lost > 0) is a suspect: it runs alone on an idle worker, and nothing joins it there, so
 * a crash is charged to the input that causes it and not to the items that happened to
 * share the worker (which would otherwise be quarantined with it). */
static long pick_worker(const struct em_coord *c, const struct load *ld, int suspect,
                        const struct em_cbatch *b)
{
    long best = -1;
    for (size_t i = 0; i < c->nworkers; i++) {
        const struct em_worker *w = c->workers[i];
        if (!w->credits || (best >= 0 && w->credits <= c->workers[best]->credits)) continue;
        if (suspect ? ld[i].running != 0 : ld[i].suspects != 0) continue;
        if (!em_coord_can_serve(w, b)) continue; /* not its model, or a prompt it cannot do */
        best = (long)i;
    }
    return best;
}

/* Sends j to w. 0 sent, -1 worker gone, -2 not now. */
static int send_task(struct em_coord *c, struct em_job *j, struct em_worker *w)
{
    unsigned attempt = j->attempts + 1;
    char task_id[EM_COORD_MAX_TASK_ID + 1], name[EM_QUEUE_MAX_ITEM_ID + 8],
        lease[EM_COORD_LEASE_HEX + 1];
    if (em_wire_task_id(j->e.batch, j->e.item, attempt, task_id, sizeof task_id) != EM_OK ||
        em_coord_lease_new(lease) != 0)
        return -2;
    struct em_errbuf eb = {{0}};
    /* Recorded before sending, so a restart never reuses an attempt number, and the lease
     * can be proven after one. */
    if (em_queue_tries_set(c->q, j->e.batch, j->e.item, attempt, lease, &eb) != EM_OK) return -2;
    snprintf(name, sizeof name, "%s.json", j->e.item);
    char *out = em_storage_join(j->b->info.out, name);
    if (!out) return -2;
    Earmark__Task t;
    earmark__task__init(&t);
    t.task_id = task_id;
    t.batch_id = j->e.batch;
    t.item_id = j->e.item;
    t.source = j->e.source;
    t.out_uri = out;
    t.n_prompts = j->b->n_prompts;
    t.prompts = j->b->prompts;
    t.gen = &j->b->gen;
    t.attempt = attempt;
    int64_t deadline = em_wall_ms() + c->cfg.task_timeout_ms;
    t.deadline_ms = (uint64_t)deadline;
    t.meta_json = j->e.meta_json;
    t.producer_hash = j->b->info.producer_hash ? j->b->info.producer_hash : "";
    t.lease_token = lease;
    uint8_t *buf = NULL;
    size_t n = 0;
    em_err rc = em_wire_task(&t, &buf, &n, &eb);
    free(out);
    if (rc != EM_OK) {
        /* Cannot be sent at all (e.g. meta too large): a permanent failure of the item. */
        snprintf(j->err_class, sizeof j->err_class, "%s", em_err_name(rc));
        snprintf(j->err_msg, sizeof j->err_msg, "%s", em_errbuf_msg(&eb, rc));
        j->attempts = attempt;
        j->fails = j->b->info.max_attempts;
        em_coord_job_finalize(c, j);
        return 0;
    }
    int s = send_to(c, w->rid, w->rid_len, buf, n);
    free(buf);
    if (s != 0) return s;
    j->attempts = attempt;
    j->state = EM_JOB_RUNNING;
    memcpy(j->rid, w->rid, w->rid_len);
    j->rid_len = w->rid_len;
    snprintf(j->task_id, sizeof j->task_id, "%s", task_id);
    snprintf(j->lease, sizeof j->lease, "%s", lease);
    j->dispatched_ms = em_now_ms();
    j->deadline_wall_ms = deadline;
    em_coord_job_ran_on(j, w);
    w->credits--;
    atomic_fetch_add(&c->m->in_flight, 1);
    em_debug("worker=%s batch=%s item=%s attempt=%u msg=\"dispatched\"", w->id, j->e.batch,
             j->e.item, attempt);
    return 0;
}

void em_coord_dispatch(struct em_coord *c, int64_t now_ms)
{
    if (now_ms < c->grace_until_ms) return; /* let workers report what they hold first */
    em_coord_route_check(c);
    if (em_coord_free_credits(c) == 0) return;
    struct load *ld = calloc(c->nworkers, sizeof *ld);
    if (!ld) return;
    measure(c, ld);
    for (size_t i = 0; i < c->njobs; i++) {
        struct em_job *j = c->jobs[i];
        if (j->state != EM_JOB_WAITING || j->not_before_ms > now_ms) continue;
        if (j->b->stall_until_ms > now_ms) continue; /* its output is stalled: paused */
        long k = pick_worker(c, ld, j->lost > 0, j->b);
        if (k < 0) continue;
        struct em_worker *w = c->workers[k];
        size_t before = c->njobs;
        int s = send_task(c, j, w);
        if (s == -1) {
            worker_remove(c, w, "unreachable");
            break; /* workers and jobs changed; next round */
        }
        if (s == -2 || c->njobs != before) break; /* not now, or finalized and removed */
        ld[k].running++;
        ld[k].suspects += j->lost > 0;
    }
    free(ld);
}

void em_coord_check_leases(struct em_coord *c, int64_t now_ms)
{
    for (size_t i = 0; i < c->nworkers;) {
        struct em_worker *w = c->workers[i];
        if (now_ms - w->last_seen_ms > (int64_t)c->cfg.lease_ms) {
            char why[64];
            snprintf(why, sizeof why, "silent for %lld ms", (long long)(now_ms - w->last_seen_ms));
            worker_remove(c, w, why);
            i = 0;
            continue;
        }
        i++;
    }
    int64_t wall = em_wall_ms();
    for (size_t i = 0; i < c->njobs; i++) {
        struct em_job *j = c->jobs[i];
        if (j->state != EM_JOB_RUNNING || wall <= j->deadline_wall_ms + (int64_t)c->cfg.lease_ms)
            continue;
        uint8_t *buf;
        size_t n;
        if (em_wire_cancel(j->task_id, &buf, &n, NULL) == EM_OK) {
            send_to(c, j->rid, j->rid_len, buf, n);
            free(buf);
        }
        em_coord_job_failed(c, j, 0, "EM_E_TIMEOUT", "task passed its deadline");
        return; /* jobs may have changed; the rest next round */
    }
}
