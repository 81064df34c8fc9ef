/* worker/loop.h - the worker's socket loop: a ZeroMQ DEALER connected to the coordinator's
 * ROUTER (which names each connection; the worker id travels in Hello), and a pool of
 * pipeline threads.
 *
 * Protocol (each message one frame = one protobuf Envelope, proto/wire.h;
 * frames over EM_WIRE_MAX_FRAME are refused by ZMQ_MAXMSGSIZE):
 *   on every (re)connection  worker -> Hello{worker_id, version, backend "cpu", model,
 *                                            capacity, pid, family, tasks,
 *                                            free_text} (from the model: routing)
 *   coordinator -> Welcome{heartbeat_ms, lease_ms}; worker -> Ready{credits = free slots}
 *     (on EVERY Welcome, also an unexpected one from a restarted coordinator)
 *   coordinator -> Task; a pipeline thread runs it; worker -> Result (with the Task's
 *     lease token), then Ready{1}
 *   worker -> Heartbeat{task ids held, their lease tokens} every heartbeat_ms, busy or idle
 *   coordinator -> Cancel{task_id}: a task not yet started is answered EM_E_CANCELLED
 *   coordinator -> Drain, or SIGTERM/SIGINT: worker -> Goodbye, so the coordinator stops
 *     dispatching to it at once; stop taking tasks (a Task arriving now is
 *     answered retryable, EM_E_LOST), finish the ones held and send their results, return.
 *     Whatever is not finished within drain_ms is answered retryable (EM_E_LOST) instead,
 *     and em_loop_run returns EM_E_TIMEOUT.
 * Only the thread in em_loop_run touches the socket; pipeline threads (worker/pool.h) hand
 * finished jobs back through their state and a wake-up pipe polled with the socket. Malformed or
 * oversized frames from the coordinator are logged, counted and dropped.
 *
 * Thread-safety: one em_loop_run per process (it installs SIGTERM/SIGINT handlers). */
#ifndef EM_LOOP_H
#define EM_LOOP_H

#include <stdint.h>

#include "common/curve.h"
#include "common/err.h"
#include "model/model.h"
#include "storage/storage.h"
#include "worker/metrics.h"

#define EM_LOOP_MAX_THREADS 256
#define EM_LOOP_MAX_ID 200               /* bytes of a worker id */
#define EM_LOOP_MAX_CAPACITY 1024        /* tasks held at once */
#define EM_LOOP_MAX_TASK_ID 256          /* bytes; a Task with a longer (or empty) id is dropped */
/* Tasks beyond capacity (a coordinator that over-counts credits) are still queued up to
 * 2 * capacity + 16, then refused (Result retryable, EM_E_LOST). With the limits above a
 * Heartbeat listing every held task stays far below EM_WIRE_MAX_FRAME. */
#define EM_LOOP_DEFAULT_HEARTBEAT_MS 1000
#define EM_LOOP_MIN_HEARTBEAT_MS 20      /* a Welcome asking for less is clamped */
#define EM_LOOP_MAX_HEARTBEAT_MS 60000
#define EM_LOOP_HELLO_RETRY_MS 5000      /* re-Hello while connected but not welcomed */

struct em_loop_opts {
    const char *endpoint;  /* tcp://host:port, required */
    const char *worker_id; /* required, 1..EM_LOOP_MAX_ID bytes */
    const char *model;     /* identity sent in Hello and records; NULL: "none" */
    const struct em_model *rt; /* loaded runtime shared by the pipeline threads; NULL: none */
    struct em_engine *engine;  /* rt's engine (em_model_engine_new), shared likewise; NULL: none */
    unsigned threads;      /* pipeline threads, 1..EM_LOOP_MAX_THREADS */
    unsigned capacity;     /* tasks held at once (queued + running), 1..EM_LOOP_MAX_CAPACITY */
    int drain_ms;          /* bound on finishing held tasks after SIGTERM/Drain */
    struct em_storage_opts storage; /* each pipeline thread opens its own handle */
    /* CURVE (both or neither): own key pair, and the coordinator's public key (Z85); the
     * connection is refused unless the server proves it holds that key. Borrowed. */
    const struct em_curve_pair *curve;
    const char *server_key;
    const struct em_source_policy *sources; /* worker/source.h; NULL: no local sources */
    struct em_wmetrics *metrics; /* worker/metrics.h, fed by the loop; NULL: none */
};

/* threads 1, capacity 0 (= threads), drain_ms 30000, storage defaults. */
struct em_loop_opts em_loop_opts_default(void);

/* Counters of one run, for logs and tests. */
struct em_loop_stats {
    uint64_t tasks;        /* Task messages accepted */
    uint64_t ok, failed;   /* results sent */
    uint64_t dropped;      /* malformed / unexpected frames dropped */
    uint64_t welcomes;
};

/* Runs until SIGTERM/SIGINT or a Drain, then drains (see above). Returns EM_OK after a
 * clean drain; EM_E_ARG for bad options, EM_E_IO when the socket cannot be set up, or the
 * storage error of a pipeline thread's handle. stats may be NULL. */
em_err em_loop_run(const struct em_loop_opts *o, struct em_loop_stats *stats,
                   struct em_errbuf *eb);

#endif
