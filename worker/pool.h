/* worker/pool.h - the worker's pipeline threads: a FIFO of jobs run by N threads, each
 * thread with its own storage handle (storage handles are not thread-safe).
 *
 * Ownership: jobs belong to the caller (the socket loop), which creates them with
 * em_job_new, hands them to em_pool_push and frees them with em_job_free once they are
 * done or taken back with em_pool_unqueue. The pool only moves a job through its states
 * under its lock and, when a job finishes, writes one byte to wake_fd (a non-blocking pipe
 * the caller polls). Thread-safety: every em_pool_* call is from one thread (the loop). */
#ifndef EM_POOL_H
#define EM_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "storage/storage.h"
#include "worker/pipeline.h"

enum em_job_state { EM_JOB_QUEUED, EM_JOB_RUNNING, EM_JOB_DONE };

#define EM_JOB_MAX_LEASE 64 /* bytes of a lease token; a Task with a longer one is dropped */

struct em_job {
    struct em_job *next; /* the pool's queue link */
    /* owned copies of the task's strings (never NULL; "" when absent) */
    char *task_id, *batch_id, *item_id, *source, *out_uri, *meta_json, *producer_hash;
    unsigned attempt;
    uint64_t deadline_ms;
    char lease_token[EM_JOB_MAX_LEASE + 1]; /* the Task's, echoed in Result and Heartbeat */
    /* owned copies of the prompts (names and texts); tasks and unset texts are NULL */
    struct em_model_prompt prompts[EM_MODEL_MAX_PROMPTS];
    size_t n_prompts;
    struct em_gen_params_override gen;
    bool strict_audio; /* em_pipe_task.strict_audio */
    enum em_job_state state;   /* read with em_pool_state while the pool may run it */
    struct em_pipe_result res; /* valid once state is EM_JOB_DONE */
    int64_t accepted_ms, started_ms; /* monotonic: em_job_new, a thread took it (0: not yet) */
};

/* Deep copy of t (NULL strings become ""); NULL when out of memory or when t has more than
 * EM_MODEL_MAX_PROMPTS prompts. */
struct em_job *em_job_new(const struct em_pipe_task *t);
void em_job_free(struct em_job *j); /* NULL is a no-op */

struct em_pool;

/* Opens one storage handle per thread from so and starts the threads. env is copied (its
 * strings are borrowed and must outlive the pool). On EM_OK the caller owns *out and stops
 * it with em_pool_stop. Errors: the storage open error, EM_E_NOMEM, EM_E_INTERNAL. */
em_err em_pool_start(unsigned threads, const struct em_storage_opts *so,
                     const struct em_pipe_env *env, int wake_fd, struct em_pool **out,
                     struct em_errbuf *eb);
/* Queues j (state EM_JOB_QUEUED) behind the jobs already waiting. */
void em_pool_push(struct em_pool *p, struct em_job *j);
/* Takes j back if no thread has started it; true when it did (the caller owns j again). */
bool em_pool_unqueue(struct em_pool *p, struct em_job *j);
enum em_job_state em_pool_state(struct em_pool *p, const struct em_job *j);
/* Threads finish the job in hand and exit; jobs still queued are not started (they stay
 * the caller's). join: wait for the threads and free the pool. !join (a drain bound passed): the
 * running threads, their handles and the pool stay alive until the process exits. */
void em_pool_stop(struct em_pool *p, bool join);

#endif
