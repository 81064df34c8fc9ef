/* model/gen/engine.c - see engine.h. A clip's thread runs its window's admission and
 * prefills and hands its sequences over; the engine thread steps every live sequence until
 * it ends and tells the owner when its last one did. */
#include "model/gen/engine.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "model/gen/gen_seq.h"
#include "model/qwen2audio/decoder.h"

/* One em_engine_generate call's sequences while the engine steps them. */
struct job {
    int remaining;       /* sequences not finished (under the engine's mutex) */
    em_err rc;           /* first error of a step or a pick */
    struct em_errbuf eb; /* its detail */
};

struct eng_seq {
    struct em_gen_seq q;
    struct job *job;
    struct eng_seq *next; /* pending list */
};

struct em_engine {
    const struct em_dec *d;
    struct em_kvpool *pool;
    int n_layers, kv_dim;
    enum em_kv_type type;
    pthread_t th;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    pthread_mutex_t compute; /* one heavy phase at a time: a step, a prefill, an encoder run */
    bool stop;
    struct eng_seq *pending, **pending_tail; /* joined since the last step (under mu) */
    /* the engine thread's own */
    struct eng_seq **live;
    int n_live, cap_live;
    float *logits; /* [em_dec_max_batch, V] */
    struct em_engine_stats st; /* under mu */
};

struct em_engine_opts em_engine_opts_default(void)
{
    return (struct em_engine_opts){.kv_budget = EM_KVPOOL_UNLIMITED};
}

static void fail_seq(struct eng_seq *s, em_err rc, const struct em_errbuf *eb)
{
    if (s->job->rc == EM_OK) {
        s->job->rc = rc;
        if (eb) s->job->eb = *eb;
    }
    s->q.done = true;
    em_kv_free(s->q.kv);
    s->q.kv = NULL;
}

/* Moves the pending sequences into the live set (mutex held); one that finds no room (out
 * of memory) fails and is finished at once. */
static void admit(struct em_engine *e)
{
    for (struct eng_seq *s = e->pending; s; s = s->next) {
        if (e->n_live == e->cap_live) {
            int cap = e->cap_live ? 2 * e->cap_live : 64;
            struct eng_seq **nl = realloc(e->live, (size_t)cap * sizeof *nl);
            if (!nl) {
                fail_seq(s, EM_E_NOMEM, NULL);
                if (--s->job->remaining == 0) pthread_cond_broadcast(&e->done);
                continue;
            }
            e->live = nl;
            e->cap_live = cap;
        }
        e->live[e->n_live++] = s;
    }
    e->pending = NULL;
    e->pending_tail = &e->pending;
}

/* One step of every live sequence, em_dec_max_batch at a time. */
static void step(struct em_engine *e)
{
    const size_t V = (size_t)em_dec_vocab(e->d);
    const int mb = em_dec_max_batch(e->d);
    for (int g = 0; g < e->n_live; g += mb) {
        const int n = e->n_live - g < mb ? e->n_live - g : mb;
        struct em_kv *kv[EM_DEC_MAX_BATCH];
        int32_t ids[EM_DEC_MAX_BATCH];
        for (int j = 0; j < n; j++) {
            struct em_gen_seq *q = &e->live[g + j]->q;
            kv[j] = q->kv;
            ids[j] = q->ids[q->n - 1];
        }
        struct em_errbuf eb = {{0}};
        em_engine_compute_begin(e);
        em_err rc = em_dec_step_batch(e->d, kv, ids, n, e->logits, &eb);
        em_engine_compute_end(e);
        for (int j = 0; j < n; j++) {
            struct eng_seq *s = e->live[g + j];
            if (rc != EM_OK) {
                fail_seq(s, rc, &eb);
                continue;
            }
            struct em_errbuf eb1 = {{0}};
            em_err rc1 = em_gen_seq_take(&s->q, e->logits + (size_t)j * V, &eb1);
            if (rc1 != EM_OK) fail_seq(s, rc1, &eb1);
        }
    }
}

static void *engine_main(void *arg)
{
    struct em_engine *e = arg;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        while (!e->stop && !e->pending && e->n_live == 0) pthread_cond_wait(&e->work, &e->mu);
        if (e->stop && !e->pending && e->n_live == 0) break;
        admit(e);
        if (e->n_live == 0) continue;
        if (e->n_live > e->st.max_live) e->st.max_live = e->n_live;
        e->st.steps++;
        e->st.rows += (uint64_t)e->n_live;
        pthread_mutex_unlock(&e->mu);
        step(e);
        pthread_mutex_lock(&e->mu);
        int kept = 0;
        for (int i = 0; i < e->n_live; i++) {
            struct eng_seq *s = e->live[i];
            if (!s->q.done) {
                e->live[kept++] = s;
                continue;
            }
            if (--s->job->remaining == 0) pthread_cond_broadcast(&e->done);
        }
        e->n_live = kept;
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

em_err em_engine_new(const struct em_dec *d, const struct em_engine_opts *o, struct em_engine **out,
                     struct em_errbuf *eb)
{
    *out = NULL;
    const struct em_engine_opts def = em_engine_opts_default();
    if (!o) o = &def;
    struct em_engine *e = calloc(1, sizeof *e);
    if (!e) return EM_E_NOMEM;
    const struct em_qa_text_config *c = em_dec_config(d);
    e->d = d;
    e->n_layers = c->num_hidden_layers;
    e->kv_dim = c->num_key_value_heads * c->head_dim;
    e->type = em_dec_kv_type(d);
    e->pending_tail = &e->pending;
    em_err rc = em_kvpool_new(em_dec_backend(d), e->n_layers, e->kv_dim, e->type == EM_KV_F16 ? 2 : 4, o->kv_budget,
                              &e->pool, eb);
    if (rc != EM_OK) {
        free(e);
        return rc;
    }
    rc = EM_E_NOMEM;
    if (!(e->logits = malloc((size_t)em_dec_max_batch(d) * (size_t)em_dec_vocab(d) * sizeof *e->logits)))
        goto fail;
    if (pthread_mutex_init(&e->mu, NULL) != 0) goto fail;
    if (pthread_mutex_init(&e->compute, NULL) != 0) {
        pthread_mutex_destroy(&e->mu);
        goto fail;
    }
    if (pthread_cond_init(&e->work, NULL) != 0 || pthread_cond_init(&e->done, NULL) != 0) goto fail;
    if (pthread_create(&e->th, NULL, engine_main, e) != 0) {
        rc = em_errf(eb, EM_E_INTERNAL, "engine: cannot start its thread");
        goto fail;
    }
    e->started = true;
    *out = e;
    return EM_OK;
fail:
    em_kvpool_free(e->pool);
    free(e->logits);
    free(e);
    return rc;
}

void em_engine_free(struct em_engine *e)
{
    if (!e) return;
    if (e->started) {
        pthread_mutex_lock(&e->mu);
        e->stop = true;
        pthread_cond_signal(&e->work);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->th, NULL);
        pthread_cond_destroy(&e->work);
        pthread_cond_destroy(&e->done);
        pthread_mutex_destroy(&e->mu);
        pthread_mutex_destroy(&e->compute);
    }
    em_kvpool_free(e->pool);
    free(e->live);
    free(e->logits);
    free(e);
}

void em_engine_compute_begin(struct em_engine *e)
{
    if (e) pthread_mutex_lock(&e->compute);
}

void em_engine_compute_end(struct em_engine *e)
{
    if (e) pthread_mutex_unlock(&e->compute);
}

struct em_engine_stats em_engine_stats(struct em_engine *e)
{
    pthread_mutex_lock(&e->mu);
    struct em_engine_stats s = e->st;
    pthread_mutex_unlock(&e->mu);
    s.kv = em_kvpool_stats(e->pool);
    s.page_bytes = em_kvpool_page_bytes(e->pool);
    return s;
}

/* ---- one window ---------------------------------------------------------------------------- */

static em_err paged(struct em_engine *e, const struct em_kv *base, int n, int cap,
                    struct em_kv **out, struct em_errbuf *eb)
{
    if (cap > EM_DEC_MAX_TOKENS)
        return em_errf(eb, EM_E_TOO_LONG, "engine: %d positions, limit %d", cap, EM_DEC_MAX_TOKENS);
    return em_kv_new_paged(e->pool, e->n_layers, e->kv_dim, e->type, base, n, cap, out, eb);
}

/* Pages of the window: the prefix, and each prompt's own positions (its tail and new ids). */
static size_t window_pages(int k, const size_t *n_ids, size_t shared, const struct em_gen_params *p)
{
    size_t pages = em_kvpool_pages_for(0, (int)shared);
    for (int i = 0; i < k; i++)
        pages += em_kvpool_pages_for((int)shared, (int)(n_ids[i] + (size_t)p[i].max_new_tokens));
    return pages;
}

static em_err check_args(int k, const int32_t *const *ids, const size_t *n_ids, size_t shared,
                         const struct em_gen_params *p, struct em_errbuf *eb)
{
    if (k < 1 || k > EM_GEN_MAX_BATCH || !ids || !n_ids || !p)
        return em_errf(eb, EM_E_ARG, "engine: %d prompts, expected 1..%d", k, EM_GEN_MAX_BATCH);
    for (int i = 0; i < k; i++) {
        em_err rc = em_gen_check(n_ids[i], &p[i], eb);
        if (rc != EM_OK) return rc;
        if (shared && shared > n_ids[i] - 1)
            return em_errf(eb, EM_E_ARG, "engine: %zu shared positions, prompt %d has %zu ids",
                           shared, i, n_ids[i]);
    }
    return EM_OK;
}

/* The prefix, then every prompt's cache and own prefill and first id (as em_generate_batch
 * orders them: hook, start, and the tails of each em_dec_max_batch prompts together). */
static em_err prefill(struct em_engine *e, int k, const int32_t *const *ids, const size_t *n_ids,
                      size_t shared, const float *audio, int n_audio, const struct em_gen_params *p,
                      const struct em_gen_hook *hook, struct eng_seq *s, struct em_kv **prefix,
                      size_t *rest, float *logits, struct em_engine_times *t, struct em_errbuf *eb)
{
    em_err rc = EM_OK;
    double t0 = em_now_s();
    if (shared) {
        if ((rc = paged(e, NULL, 0, (int)shared, prefix, eb)) != EM_OK) return rc;
        rc = em_dec_forward(e->d, *prefix, ids[0], (int)shared, audio, n_audio, EM_DEC_LOGITS_NONE,
                            NULL, eb);
        t->prefill_s += em_now_s() - t0;
    }
    for (int i = 0; rc == EM_OK && i < k; i++) {
        struct em_gen_seq *q = &s[i].q;
        if (hook && hook->before_prompt && (rc = hook->before_prompt(hook->ctx, i, eb)) != EM_OK)
            break;
        if ((rc = em_gen_seq_init(e->d, q, ids[i], n_ids[i], &p[i], shared, &rest[i], eb)) != EM_OK)
            break;
        if (!shared) { /* the whole prompt, audio rows spliced, as em_generate */
            if ((rc = paged(e, NULL, 0, (int)q->cap, &q->kv, eb)) == EM_OK &&
                (rc = em_dec_forward(e->d, q->kv, ids[i], (int)n_ids[i], audio, n_audio,
                                     EM_DEC_LOGITS_LAST, logits, eb)) == EM_OK)
                rc = em_gen_seq_take(q, logits, eb);
            continue;
        }
        if ((rc = em_gen_check_tail(e->d, ids[i], n_ids[i], rest[i], eb)) != EM_OK ||
            (rc = paged(e, *prefix, (int)rest[i], (int)q->cap, &q->kv, eb)) != EM_OK)
            break;
        const int mb = em_dec_max_batch(e->d);
        if ((i + 1) % mb != 0 && i + 1 != k) continue;
        const int i0 = i - i % mb;
        struct em_gen_seq group[EM_DEC_MAX_BATCH];
        for (int j = i0; j <= i; j++) group[j - i0] = s[j].q;
        rc = em_gen_seq_prefill(e->d, group, rest + i0, i + 1 - i0, logits, eb);
        for (int j = i0; j <= i; j++) s[j].q = group[j - i0];
    }
    return rc;
}

/* Hands the unfinished sequences of s[k] to the engine and waits for the last one. */
static em_err decode(struct em_engine *e, struct eng_seq *s, int k, struct em_errbuf *eb)
{
    struct job job = {.rc = EM_OK};
    pthread_mutex_lock(&e->mu);
    for (int i = 0; i < k; i++) {
        if (s[i].q.done) continue;
        s[i].job = &job;
        s[i].next = NULL;
        *e->pending_tail = &s[i];
        e->pending_tail = &s[i].next;
        job.remaining++;
    }
    if (job.remaining) pthread_cond_signal(&e->work);
    while (job.remaining > 0) pthread_cond_wait(&e->done, &e->mu);
    pthread_mutex_unlock(&e->mu);
    if (job.rc != EM_OK) {
        if (eb) *eb = job.eb;
        if (!job.eb.msg[0]) em_errf(eb, job.rc, "engine: decode step failed");
    }
    return job.rc;
}

em_err em_engine_generate(struct em_engine *e, int k, const int32_t *const *ids,
                          const size_t *n_ids, size_t shared, const float *audio, int n_audio,
                          const struct em_gen_params *p, const struct em_gen_hook *hook,
                          struct em_gen_result *res, struct em_engine_times *times,
                          struct em_errbuf *eb)
{
    struct em_engine_times tm = {0};
    em_err rc = check_args(k, ids, n_ids, shared, p, eb);
    if (rc != EM_OK) return rc;
    memset(res, 0, (size_t)k * sizeof *res);
    const size_t pages = window_pages(k, n_ids, shared, p);
    char what[96];
    snprintf(what, sizeof what, "engine: a window of %d prompts over %zu shared positions", k, shared);
    double t0 = em_now_s();
    if ((rc = em_kvpool_reserve(e->pool, pages, what, eb)) != EM_OK) return rc;
    tm.wait_s = em_now_s() - t0;
    struct eng_seq *s = calloc((size_t)k, sizeof *s);
    size_t *rest = calloc((size_t)k, sizeof *rest);
    float *logits = malloc((size_t)em_dec_max_batch(e->d) * (size_t)em_dec_vocab(e->d) * sizeof *logits);
    struct em_kv *prefix = NULL;
    rc = EM_E_NOMEM;
    if (!s || !rest || !logits) goto done;
    em_engine_compute_begin(e);
    rc = prefill(e, k, ids, n_ids, shared, audio, n_audio, p, hook, s, &prefix, rest, logits, &tm, eb);
    em_engine_compute_end(e);
    double t1 = em_now_s();
    if (rc == EM_OK) rc = decode(e, s, k, eb);
    for (int i = 0; rc == EM_OK && i < k; i++) rc = em_gen_seq_result(&s[i].q, &res[i]);
    tm.decode_s += em_now_s() - t1 + (t1 - t0 - tm.wait_s - tm.prefill_s);
done:
    if (rc != EM_OK) {
        for (int i = 0; i < k; i++) free(res[i].ids);
        memset(res, 0, (size_t)k * sizeof *res);
    }
    for (int i = 0; s && i < k; i++) em_gen_seq_release(&s[i].q);
    em_kv_free(prefix);
    em_kvpool_unreserve(e->pool, pages);
    free(s);
    free(rest);
    free(logits);
    if (times) {
        times->wait_s += tm.wait_s;
        times->prefill_s += tm.prefill_s;
        times->decode_s += tm.decode_s;
    }
    return rc;
}
