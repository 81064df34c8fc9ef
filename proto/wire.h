/* proto/wire.h - one ZeroMQ frame <-> one earmark.Envelope (proto/earmark.proto).
 *
 * Frame layout: the protobuf-c encoding of an Envelope, nothing else (no length prefix;
 * ZeroMQ frames carry their length). A frame is accepted only if it is at most
 * EM_WIRE_MAX_FRAME bytes, decodes as an Envelope, has version == EM_WIRE_VERSION and a
 * body this version knows (an unknown oneof member decodes as "no body" and is refused).
 * Everything else is EM_E_PROTO with a detail naming the cause and the numbers.
 *
 * No I/O, no logging, no global state: thread-safe. The generated header lives in the
 * build dir (proto/earmark.pb-c.h). */
#ifndef EM_WIRE_H
#define EM_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "proto/earmark.pb-c.h"

#define EM_WIRE_VERSION 1u
#define EM_WIRE_MAX_FRAME (1024u * 1024u) /* bytes; also ZMQ_MAXMSGSIZE on both ends */

/* Decodes one frame. On EM_OK *out is a new Envelope the caller frees with em_wire_free().
 * Errors: EM_E_PROTO (empty, oversized, undecodable, wrong version, no/unknown body),
 * EM_E_NOMEM. */
em_err em_wire_unpack(const uint8_t *buf, size_t len, Earmark__Envelope **out,
                      struct em_errbuf *eb);
void em_wire_free(Earmark__Envelope *env); /* NULL is a no-op */

/* Encodes env (its version is forced to EM_WIRE_VERSION) into a malloc'd buffer the caller
 * frees. Errors: EM_E_PROTO (no body, or larger than EM_WIRE_MAX_FRAME), EM_E_NOMEM. */
em_err em_wire_pack(const Earmark__Envelope *env, uint8_t **buf, size_t *len, struct em_errbuf *eb);

/* Name of a body case ("hello", "task", ...; "none" for NOT_SET). Never NULL. */
const char *em_wire_kind(Earmark__Envelope__BodyCase c);

/* Builders: each encodes one message kind straight into a malloc'd frame (caller frees).
 * String arguments may be NULL (sent as ""). Same errors as em_wire_pack(). */
em_err em_wire_hello(const char *worker_id, const char *version, const char *backend,
                     const char *model, uint32_t capacity, uint32_t pid, uint8_t **buf, size_t *len,
                     struct em_errbuf *eb);
/* What a worker's model can do, announced in its Hello (the coordinator routes by it).
 * family "" (or caps NULL): no model. tasks: ntasks built-in prompt names, borrowed. */
struct em_wire_caps {
    const char *family;
    const char *const *tasks;
    size_t ntasks;
    bool free_text;
};
/* em_wire_hello with the model's capabilities (caps may be NULL). */
em_err em_wire_hello_caps(const char *worker_id, const char *version, const char *backend,
                          const char *model, const struct em_wire_caps *caps, uint32_t capacity,
                          uint32_t pid, uint8_t **buf, size_t *len, struct em_errbuf *eb);
em_err em_wire_welcome(uint32_t heartbeat_ms, uint32_t lease_ms, uint8_t **buf, size_t *len,
                       struct em_errbuf *eb);
em_err em_wire_ready(uint32_t credits, uint8_t **buf, size_t *len, struct em_errbuf *eb);
/* task_ids: n strings (borrowed); tokens: their n lease tokens, same order, or NULL. */
em_err em_wire_heartbeat(const char *const *task_ids, const char *const *tokens, size_t n,
                         uint8_t **buf, size_t *len, struct em_errbuf *eb);
/* task: filled by the caller (earmark__task__init first); borrowed. */
em_err em_wire_task(const Earmark__Task *task, uint8_t **buf, size_t *len, struct em_errbuf *eb);
/* result: filled by the caller (earmark__result__init first); borrowed. */
em_err em_wire_result(const Earmark__Result *result, uint8_t **buf, size_t *len,
                      struct em_errbuf *eb);
em_err em_wire_progress(const char *task_id, const char *phase, float fraction, uint8_t **buf,
                        size_t *len, struct em_errbuf *eb);
em_err em_wire_cancel(const char *task_id, uint8_t **buf, size_t *len, struct em_errbuf *eb);
em_err em_wire_drain(uint8_t **buf, size_t *len, struct em_errbuf *eb);
/* Worker -> coordinator on SIGTERM/Drain: send me nothing more. */
em_err em_wire_goodbye(const char *reason, uint8_t **buf, size_t *len, struct em_errbuf *eb);

/* Task ids are "<batch_id>/<item_id>/<attempt>". Builds one into out (cap bytes);
 * EM_E_TOO_LONG if it does not fit. */
em_err em_wire_task_id(const char *batch_id, const char *item_id, unsigned attempt, char *out,
                       size_t cap);
/* Splits a task id. batch (bcap) and item (icap) receive copies; EM_E_FORMAT when the id is
 * not of that shape (empty parts, no attempt, attempt 0 or > 1e6, parts too long). */
em_err em_wire_task_id_parse(const char *task_id, char *batch, size_t bcap, char *item, size_t icap,
                             unsigned *attempt);

#endif
