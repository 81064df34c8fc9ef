/* worker/pool.c - pipeline threads over a mutex-guarded FIFO (see pool.h). */
#include "worker/pool.h"

#include "common/clock.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct em_pool {
    struct em_pipe_env env;
    int wake_fd;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct em_job *qhead, *qtail; /* waiting jobs; guarded by mu */
    bool stop;                    /* guarded by mu */
    unsigned nthreads, started;
    pthread_t *tids;
    struct em_storage **st; /* [nthreads] */
};

struct em_job *em_job_new(const struct em_pipe_task *t)
{
    struct em_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
#define DUP(f) j->f = strdup(t->f ? t->f : "")
    DUP(task_id);
    DUP(batch_id);
    DUP(item_id);
    DUP(source);
    DUP(out_uri);
    DUP(meta_json);
    DUP(producer_hash);
#undef DUP
    j->attempt = t->attempt;
    j->deadline_ms = t->deadline_ms;
    j->accepted_ms = em_now_ms();
    j->gen = t->gen;
    j->strict_audio = t->strict_audio;
    if (t->n_prompts > EM_MODEL_MAX_PROMPTS) {
        em_job_free(j);
        return NULL;
    }
    for (size_t i = 0; i < t->n_prompts; i++) {
        const struct em_model_prompt *q = &t->prompts[i];
        struct em_model_prompt *d = &j->prompts[j->n_prompts++];
        d->name = q->name ? strdup(q->name) : NULL;
        d->task = q->task ? strdup(q->task) : NULL;
        d->text = q->text ? strdup(q->text) : NULL;
        if ((q->name && !d->name) || (q->task && !d->task) || (q->text && !d->text)) {
            em_job_free(j);
            return NULL;
        }
    }
    if (!j->task_id || !j->batch_id || !j->item_id || !j->source || !j->out_uri ||
        !j->meta_json || !j->producer_hash) {
        em_job_free(j);
        return NULL;
    }
    return j;
}

void em_job_free(struct em_job *j)
{
    if (!j) return;
    free(j->task_id);
    free(j->batch_id);
    free(j->item_id);
    free(j->source);
    free(j->out_uri);
    free(j->meta_json);
    free(j->producer_hash);
    for (size_t i = 0; i < j->n_prompts; i++) {
        free((char *)j->prompts[i].name);
        free((char *)j->prompts[i].task);
        free((char *)j->prompts[i].text);
    }
    free(j);
}

struct thread_arg {
    struct em_pool *p;
    unsigned idx;
};

static void *pipeline_thread(void *arg)
{
    struct thread_arg *a = arg;
    struct em_pool *p = a->p;
    struct em_storage *st = p->st[a->idx];
    free(a);
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->qhead && !p->stop) pthread_cond_wait(&p->cv, &p->mu);
        struct em_job *j = p->stop ? NULL : p->qhead;
        if (!j) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        p->qhead = j->next;
        if (!p->qhead) p->qtail = NULL;
        j->next = NULL;
        j->state = EM_JOB_RUNNING;
        j->started_ms = em_now_ms();
        pthread_mutex_unlock(&p->mu);

        struct em_pipe_task t = {
            .task_id = j->task_id, .batch_id = j->batch_id, .item_id = j->item_id,
            .source = j->source, .out_uri = j->out_uri, .meta_json = j->meta_json,
            .producer_hash = j->producer_hash, .attempt = j->attempt,
            .deadline_ms = j->deadline_ms, .prompts = j->prompts, .n_prompts = j->n_prompts,
            .gen = j->gen, .strict_audio = j->strict_audio,
        };
        struct em_pipe_result r;
        em_pipe_run(&p->env, st, &t, &r);

        pthread_mutex_lock(&p->mu);
        j->res = r;
        j->state = EM_JOB_DONE;
        pthread_mutex_unlock(&p->mu);
        char b = 1;
        ssize_t wr;
        do wr = write(p->wake_fd, &b, 1);
        while (wr < 0 && errno == EINTR); /* EAGAIN: a full pipe already wakes the loop */
    }
    return NULL;
}

em_err em_pool_start(unsigned threads, const struct em_storage_opts *so,
                     const struct em_pipe_env *env, int wake_fd, struct em_pool **out,
                     struct em_errbuf *eb)
{
    em_err rc = EM_E_NOMEM;
    struct em_pool *p = calloc(1, sizeof *p);
    if (!p) return em_errf(eb, EM_E_NOMEM, "worker pool");
    p->env = *env;
    p->wake_fd = wake_fd;
    p->nthreads = threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->tids = calloc(threads, sizeof *p->tids);
    p->st = calloc(threads, sizeof *p->st);
    if (!p->tids || !p->st) {
        rc = em_errf(eb, EM_E_NOMEM, "worker pool of %u threads", threads);
        goto fail;
    }
    for (unsigned i = 0; i < threads; i++)
        if ((rc = em_storage_open(so, &p->st[i], eb)) != EM_OK) goto fail;
    for (unsigned i = 0; i < threads; i++) {
        struct thread_arg *a = malloc(sizeof *a);
        if (!a) {
            rc = em_errf(eb, EM_E_NOMEM, "thread argument");
            goto fail;
        }
        a->p = p;
        a->idx = i;
        if (pthread_create(&p->tids[i], NULL, pipeline_thread, a) != 0) {
            free(a);
            rc = em_errf(eb, EM_E_INTERNAL, "pthread_create failed after %u threads", i);
            goto fail;
        }
        p->started++;
    }
    *out = p;
    return EM_OK;
fail:
    em_pool_stop(p, true);
    return rc;
}

void em_pool_push(struct em_pool *p, struct em_job *j)
{
    pthread_mutex_lock(&p->mu);
    j->state = EM_JOB_QUEUED;
    j->next = NULL;
    if (p->qtail) p->qtail->next = j;
    else p->qhead = j;
    p->qtail = j;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

bool em_pool_unqueue(struct em_pool *p, struct em_job *j)
{
    bool found = false;
    pthread_mutex_lock(&p->mu);
    struct em_job **pp = &p->qhead, *prev = NULL;
    for (; j->state == EM_JOB_QUEUED && *pp; prev = *pp, pp = &(*pp)->next)
        if (*pp == j) {
            *pp = j->next;
            if (p->qtail == j) p->qtail = prev;
            j->next = NULL;
            found = true;
            break;
        }
    pthread_mutex_unlock(&p->mu);
    return found;
}

enum em_job_state em_pool_state(struct em_pool *p, const struct em_job *j)
{
    pthread_mutex_lock(&p->mu);
    enum em_job_state s = j->state;
    pthread_mutex_unlock(&p->mu);
    return s;
}

void em_pool_stop(struct em_pool *p, bool join)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (!join) return; /* see pool.h: left to the process exit */
    for (unsigned i = 0; i < p->started; i++) pthread_join(p->tids[i], NULL);
    for (unsigned i = 0; p->st && i < p->nthreads; i++) em_storage_close(p->st[i]);
    free(p->st);
    free(p->tids);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}
