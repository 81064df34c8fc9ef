/* proto/wire.c - Envelope pack/unpack with size, version and body checks.
 * frame bytes --protobuf_c unpack--> Envelope --checks--> caller; and the reverse. */
#include "proto/wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *s_or_empty(const char *s) { return (char *)(s ? s : ""); }

em_err em_wire_unpack(const uint8_t *buf, size_t len, Earmark__Envelope **out, struct em_errbuf *eb)
{
    *out = NULL;
    if (!buf || len == 0) return em_errf(eb, EM_E_PROTO, "empty frame");
    if (len > EM_WIRE_MAX_FRAME)
        return em_errf(eb, EM_E_PROTO, "frame of %zu bytes exceeds the %u-byte limit", len,
                       EM_WIRE_MAX_FRAME);
    Earmark__Envelope *env = earmark__envelope__unpack(NULL, len, buf);
    if (!env) return em_errf(eb, EM_E_PROTO, "frame of %zu bytes is not a valid Envelope", len);
    if (env->version != EM_WIRE_VERSION) {
        em_errf(eb, EM_E_PROTO, "protocol version %u, expected %u", env->version, EM_WIRE_VERSION);
        em_wire_free(env);
        return EM_E_PROTO;
    }
    if (env->body_case == EARMARK__ENVELOPE__BODY__NOT_SET) {
        em_wire_free(env);
        return em_errf(eb, EM_E_PROTO, "envelope has no body this version knows");
    }
    /* A oneof member that is a message can still decode as NULL in degenerate encodings;
     * callers then may dereference it without checking. */
    if (!env->hello) {
        em_wire_free(env);
        return em_errf(eb, EM_E_PROTO, "envelope body '%s' is empty", em_wire_kind(env->body_case));
    }
    *out = env;
    return EM_OK;
}

void em_wire_free(Earmark__Envelope *env)
{
    if (env) earmark__envelope__free_unpacked(env, NULL);
}

em_err em_wire_pack(const Earmark__Envelope *env, uint8_t **buf, size_t *len, struct em_errbuf *eb)
{
    *buf = NULL;
    *len = 0;
    if (!env || env->body_case == EARMARK__ENVELOPE__BODY__NOT_SET || !env->hello)
        return em_errf(eb, EM_E_PROTO, "envelope to send has no body");
    Earmark__Envelope copy = *env;
    copy.version = EM_WIRE_VERSION;
    size_t n = earmark__envelope__get_packed_size(&copy);
    if (n > EM_WIRE_MAX_FRAME)
        return em_errf(eb, EM_E_PROTO, "%s message of %zu bytes exceeds the %u-byte limit",
                       em_wire_kind(env->body_case), n, EM_WIRE_MAX_FRAME);
    uint8_t *b = malloc(n ? n : 1);
    if (!b) return em_errf(eb, EM_E_NOMEM, "packing a %zu-byte frame", n);
    size_t w = earmark__envelope__pack(&copy, b);
    if (w != n) {
        free(b);
        return em_errf(eb, EM_E_INTERNAL, "packed %zu bytes, expected %zu", w, n);
    }
    *buf = b;
    *len = n;
    return EM_OK;
}

const char *em_wire_kind(Earmark__Envelope__BodyCase c)
{
    switch (c) {
    case EARMARK__ENVELOPE__BODY_HELLO: return "hello";
    case EARMARK__ENVELOPE__BODY_WELCOME: return "welcome";
    case EARMARK__ENVELOPE__BODY_READY: return "ready";
    case EARMARK__ENVELOPE__BODY_TASK: return "task";
    case EARMARK__ENVELOPE__BODY_PROGRESS: return "progress";
    case EARMARK__ENVELOPE__BODY_RESULT: return "result";
    case EARMARK__ENVELOPE__BODY_HEARTBEAT: return "heartbeat";
    case EARMARK__ENVELOPE__BODY_CANCEL: return "cancel";
    case EARMARK__ENVELOPE__BODY_DRAIN: return "drain";
    case EARMARK__ENVELOPE__BODY_GOODBYE: return "goodbye";
    default: return "none";
    }
}

/* Wraps one body message (a pointer to the generated struct) and packs it. */
static em_err pack_body(Earmark__Envelope__BodyCase c, void *msg, uint8_t **buf, size_t *len,
                        struct em_errbuf *eb)
{
    Earmark__Envelope env;
    earmark__envelope__init(&env);
    env.version = EM_WIRE_VERSION;
    env.body_case = c;
    env.hello = msg; /* all body members share the union's storage */
    return em_wire_pack(&env, buf, len, eb);
}

em_err em_wire_hello(const char *worker_id, const char *version, const char *backend,
                     const char *model, uint32_t capacity, uint32_t pid, uint8_t **buf, size_t *len,
                     struct em_errbuf *eb)
{
    return em_wire_hello_caps(worker_id, version, backend, model, NULL, capacity, pid, buf, len,
                              eb);
}

em_err em_wire_hello_caps(const char *worker_id, const char *version, const char *backend,
                          const char *model, const struct em_wire_caps *caps, uint32_t capacity,
                          uint32_t pid, uint8_t **buf, size_t *len, struct em_errbuf *eb)
{
    Earmark__Hello m;
    earmark__hello__init(&m);
    m.worker_id = s_or_empty(worker_id);
    m.version = s_or_empty(version);
    m.backend = s_or_empty(backend);
    m.model = s_or_empty(model);
    m.capacity = capacity;
    m.pid = pid;
    if (caps) {
        m.family = s_or_empty(caps->family);
        m.n_tasks = caps->ntasks;
        m.tasks = (char **)caps->tasks;
        m.free_text = caps->free_text;
    }
    return pack_body(EARMARK__ENVELOPE__BODY_HELLO, &m, buf, len, eb);
}

em_err em_wire_welcome(uint32_t heartbeat_ms, uint32_t lease_ms, uint8_t **buf, size_t *len,
                       struct em_errbuf *eb)
{
    Earmark__Welcome m;
    earmark__welcome__init(&m);
    m.heartbeat_ms = heartbeat_ms;
    m.lease_ms = lease_ms;
    return pack_body(EARMARK__ENVELOPE__BODY_WELCOME, &m, buf, len, eb);
}

em_err em_wire_ready(uint32_t credits, uint8_t **buf, size_t *len, struct em_errbuf *eb)
{
    Earmark__Ready m;
    earmark__ready__init(&m);
    m.credits = credits;
    return pack_body(EARMARK__ENVELOPE__BODY_READY, &m, buf, len, eb);
}

em_err em_wire_heartbeat(const char *const *task_ids, const char *const *tokens, size_t n,
                         uint8_t **buf, size_t *len, struct em_errbuf *eb)
{
    Earmark__Heartbeat m;
    earmark__heartbeat__init(&m);
    m.n_task_ids = n;
    m.task_ids = (char **)task_ids;
    m.n_lease_tokens = tokens ? n : 0;
    m.lease_tokens = (char **)tokens;
    for (size_t i = 0; i < n; i++)
        if (!task_ids[i] || (tokens && !tokens[i]))
            return em_errf(eb, EM_E_ARG, "heartbeat task id or token %zu is NULL", i);
    return pack_body(EARMARK__ENVELOPE__BODY_HEARTBEAT, &m, buf, len, eb);
}

em_err em_wire_task(const Earmark__Task *task, uint8_t **buf, size_t *len, struct em_errbuf *eb)
{
    return pack_body(EARMARK__ENVELOPE__BODY_TASK, (void *)task, buf, len, eb);
}

em_err em_wire_result(const Earmark__Result *result, uint8_t **buf, size_t *len,
                      struct em_errbuf *eb)
{
    return pack_body(EARMARK__ENVELOPE__BODY_RESULT, (void *)result, buf, len, eb);
}

em_err em_wire_progress(const char *task_id, const char *phase, float fraction, uint8_t **buf,
                        size_t *len, struct em_errbuf *eb)
{
    Earmark__Progress m;
    earmark__progress__init(&m);
    m.task_id = s_or_empty(task_id);
    m.phase = s_or_empty(phase);
    m.fraction = fraction;
    return pack_body(EARMARK__ENVELOPE__BODY_PROGRESS, &m, buf, len, eb);
}

em_err em_wire_cancel(const char *task_id, uint8_t **buf, size_t *len, struct em_errbuf *eb)
{
    Earmark__Cancel m;
    earmark__cancel__init(&m);
    m.task_id = s_or_empty(task_id);
    return pack_body(EARMARK__ENVELOPE__BODY_CANCEL, &m, buf, len, eb);
}

em_err em_wire_drain(uint8_t **buf, size_t *len, struct em_errbuf *eb)
{
    Earmark__Drain m;
    earmark__drain__init(&m);
    return pack_body(EARMARK__ENVELOPE__BODY_DRAIN, &m, buf, len, eb);
}

em_err em_wire_goodbye(const char *reason, uint8_t **buf, size_t *len, struct em_errbuf *eb)
{
    Earmark__Goodbye m;
    earmark__goodbye__init(&m);
    m.reason = s_or_empty(reason);
    return pack_body(EARMARK__ENVELOPE__BODY_GOODBYE, &m, buf, len, eb);
}

em_err em_wire_task_id(const char *batch_id, const char *item_id, unsigned attempt, char *out,
                       size_t cap)
{
    int n = snprintf(out, cap, "%s/%s/%u", batch_id, item_id, attempt);
    if (n < 0 || (size_t)n >= cap) return EM_E_TOO_LONG;
    return EM_OK;
}

em_err em_wire_task_id_parse(const char *task_id, char *batch, size_t bcap, char *item, size_t icap,
                             unsigned *attempt)
{
    const char *s1 = task_id ? strchr(task_id, '/') : NULL;
    const char *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
    if (!s2 || s1 == task_id || s2 == s1 + 1 || !s2[1]) return EM_E_FORMAT;
    size_t bl = (size_t)(s1 - task_id), il = (size_t)(s2 - s1 - 1);
    if (bl >= bcap || il >= icap) return EM_E_FORMAT;
    char *end = NULL;
    errno = 0;
    unsigned long a = strtoul(s2 + 1, &end, 10);
    if (errno || *end || a == 0 || a > 1000000 || s2[1] < '0' || s2[1] > '9') return EM_E_FORMAT;
    memcpy(batch, task_id, bl);
    batch[bl] = 0;
    memcpy(item, s1 + 1, il);
    item[il] = 0;
    *attempt = (unsigned)a;
    return EM_OK;
}
