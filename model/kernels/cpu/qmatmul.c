/* model/kernels/cpu/qmatmul.c - em_qmatmul: picks the ISA ops (qdot.h), prepares x in groups
 * of EM_QDOT_MAX_N rows, and splits W's out rows across a persistent thread pool.
 *
 * Pool: nthreads - 1 workers, started once. A job is published under the mutex (generation
 * counter + condvar broadcast); workers spin up to SPIN_NS on the generation before sleeping,
 * so back-to-back decode matmuls do not pay a futex wake each. Rows are taken in chunks from
 * an atomic counter (the caller works too), so a slowed worker takes fewer chunks.
 *
 * On shared cores a worker is often off its CPU when a job is published (another process,
 * or the worker's own mel / I/O threads, holds it). The caller then runs every chunk itself,
 * and must not wait for that worker afterwards: a worker has to enter the job (pool.inside,
 * checked against pool.open) before it takes a chunk, and the caller closes the job once
 * the chunks are gone, then waits only for the workers inside it. Before, the caller waited
 * for every worker to pass through each job: beside one busy thread on this 2-core machine
 * that was 1.4 ms per call on average, 0.07-0.25 ms after (docs/bench-model.md). The
 * entering and the closing are sequentially consistent (a worker increments inside, then
 * reads open; the caller clears open, then reads inside), so one of the two always sees the
 * other. The caller spins up to SPIN_NS on the workers inside (their last chunks), then
 * sleeps on the condvar. */
#include "model/kernels/cpu/qmatmul.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "model/kernels/cpu/cpufeat.h"
#include "model/kernels/cpu/qdot.h"
#include "model/kernels/quant.h"

/* Spin before sleeping, by the clock (a pause is 10-150 ns depending on the CPU and on
 * whether a hypervisor traps it): a worker waiting for the next job, the caller for the
 * workers still inside its job. Yielding inside the spin measured worse (docs). */
#define SPIN_NS 100000
#define SPIN_CHECK 64 /* pause loops between clock reads */

struct job {
    const struct em_qdot_ops *ops;
    int wtype;
    const struct em_qact *a;
    const uint8_t *w;
    size_t row_bytes;
    float *y;
    size_t ldy;
    int out, chunk;
    atomic_int next; /* next chunk start row (or next task, with fn) */
    void (*fn)(void *ctx, int task, int slot); /* em_qmm_parallel: tasks [0, out) */
    void *ctx;
};

static struct {
    pthread_once_t once;
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    int nthreads; /* caller included */
    atomic_uint gen;
    struct job *job; /* under mu */
    int want;          /* workers with index < want take part; under mu */
    atomic_uint inside; /* workers inside a job (entered, not yet left) */
    atomic_uint open;  /* the generation open for entry; 0: none */
    atomic_flag busy;
} pool = {
    .once = PTHREAD_ONCE_INIT,
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .work_cv = PTHREAD_COND_INITIALIZER,
    .done_cv = PTHREAD_COND_INITIALIZER,
    .nthreads = 1,
    .busy = ATOMIC_FLAG_INIT,
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Spins while (*v == x) == eq, for at most SPIN_NS. */
static void spin_while(atomic_uint *v, unsigned x, bool eq)
{
    const uint64_t t0 = now_ns();
    for (;;) {
        for (int i = 0; i < SPIN_CHECK; i++) {
            if ((atomic_load_explicit(v, memory_order_acquire) == x) != eq) return;
            cpu_relax();
        }
        if (now_ns() - t0 > SPIN_NS) return;
    }
}

static void run_chunks(struct job *jb, int slot)
{
    if (jb->fn) {
        for (;;) {
            const int t = atomic_fetch_add_explicit(&jb->next, 1, memory_order_relaxed);
            if (t >= jb->out) break;
            jb->fn(jb->ctx, t, slot);
        }
        return;
    }
    for (;;) {
        const int r0 = atomic_fetch_add_explicit(&jb->next, jb->chunk, memory_order_relaxed);
        if (r0 >= jb->out) break;
        const int r1 = jb->out - r0 < jb->chunk ? jb->out : r0 + jb->chunk;
        jb->ops->rows(jb->wtype, jb->a, jb->w, jb->row_bytes, r0, r1, jb->y, jb->ldy);
    }
}

static void *worker(void *arg)
{
    const int idx = (int)(intptr_t)arg;
    unsigned seen = 0;
    for (;;) {
        spin_while(&pool.gen, seen, true);
        pthread_mutex_lock(&pool.mu);
        while (atomic_load_explicit(&pool.gen, memory_order_relaxed) == seen)
            pthread_cond_wait(&pool.work_cv, &pool.mu);
        seen = atomic_load_explicit(&pool.gen, memory_order_relaxed);
        struct job *jb = pool.job;
        const bool mine = idx < pool.want;
        pthread_mutex_unlock(&pool.mu);
        if (!mine) continue;
        /* enter; a job already closed (its caller ran out of chunks: this worker came late,
         * or seen is a job before it) is left untouched, jb may be gone */
        atomic_fetch_add(&pool.inside, 1);
        if (atomic_load(&pool.open) == seen) run_chunks(jb, idx + 1);
        if (atomic_fetch_sub(&pool.inside, 1) == 1) {
            pthread_mutex_lock(&pool.mu);
            pthread_cond_signal(&pool.done_cv);
            pthread_mutex_unlock(&pool.mu);
        }
    }
    return NULL;
}

static void pool_start(void)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1) ncpu = 1;
    if (ncpu > EM_QMM_MAX_THREADS) ncpu = EM_QMM_MAX_THREADS;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int started = 1;
    for (long i = 0; i + 1 < ncpu; i++) {
        pthread_t t;
        if (pthread_create(&t, &attr, worker, (void *)(intptr_t)i) != 0) break;
        started++;
    }
    pthread_attr_destroy(&attr);
    pool.nthreads = started; /* fewer threads if creation failed: still correct */
}

int em_qmm_threads(void)
{
    pthread_once(&pool.once, pool_start);
    return pool.nthreads;
}

/* Runs jb on up to nthreads threads (caller included). */
static void pool_run(struct job *jb, int nthreads)
{
    const int workers = nthreads - 1;
    if (workers <= 0 || atomic_flag_test_and_set(&pool.busy)) {
        run_chunks(jb, 0);
        return;
    }
    pthread_mutex_lock(&pool.mu);
    pool.job = jb;
    pool.want = workers;
    unsigned g = atomic_load_explicit(&pool.gen, memory_order_relaxed) + 1;
    if (g == 0) g = 1; /* 0 means closed; workers start with seen = 0 */
    atomic_store(&pool.open, g);
    atomic_store_explicit(&pool.gen, g, memory_order_release);
    pthread_cond_broadcast(&pool.work_cv);
    pthread_mutex_unlock(&pool.mu);
    run_chunks(jb, 0);
    atomic_store(&pool.open, 0); /* close: no chunk is left to take */
    spin_while(&pool.inside, 0, false);
    pthread_mutex_lock(&pool.mu);
    while (atomic_load(&pool.inside) > 0) pthread_cond_wait(&pool.done_cv, &pool.mu);
    pool.job = NULL;
    pthread_mutex_unlock(&pool.mu);
    atomic_flag_clear(&pool.busy);
}

void em_qmm_parallel(void (*fn)(void *ctx, int task, int slot), void *ctx, int ntasks,
                     int threads)
{
    if (!fn || ntasks <= 0) return;
    int nthreads = em_qmm_threads();
    if (threads > 0 && threads < nthreads) nthreads = threads;
    if (nthreads > ntasks) nthreads = ntasks;
    struct job jb = {.out = ntasks, .fn = fn, .ctx = ctx};
    atomic_init(&jb.next, 0);
    pool_run(&jb, nthreads);
}

struct em_qmm_opts em_qmm_opts_default(void)
{
    return (struct em_qmm_opts){.level = -1, .threads = 0, .bf16_exact = 0};
}

em_err em_qmatmul(float *y, const float *x, int n, int in, int out, int wtype, const void *w,
                  const float *bias)
{
    const struct em_qmm_opts o = em_qmm_opts_default();
    return em_qmatmul_ex(&o, y, x, n, in, out, wtype, w, bias);
}

static const struct em_qdot_ops *ops_for(int level, int bf16_exact)
{
    switch (level) {
    case EM_CPU_AVX512: return em_qdot_avx512(!bf16_exact && em_cpu_has_avx512bf16());
    case EM_CPU_AVX2: return em_qdot_avx2();
    default: return em_qdot_generic();
    }
}

em_err em_qmatmul_ex(const struct em_qmm_opts *opts, float *y, const float *x, int n, int in,
                     int out, int wtype, const void *w, const float *bias)
{
    if (wtype < 0 || wtype >= EM_WT_COUNT) return EM_E_UNSUPPORTED;
    if (n < 0 || in <= 0 || out < 0) return EM_E_ARG;
    const size_t rs = em_wtype_row_size(wtype, in);
    if (rs == 0) return EM_E_ARG; /* block type with in % 32 != 0 */
    if (n == 0 || out == 0) return EM_OK;
    if (!y || !x || !w) return EM_E_ARG;
    int level = opts && opts->level >= 0 ? opts->level : em_cpu_level();
    if (level > em_cpu_level_supported()) return EM_E_UNSUPPORTED;
    const struct em_qdot_ops *ops = ops_for(level, opts && opts->bf16_exact);

    int nthreads = em_qmm_threads();
    if (opts && opts->threads > 0 && opts->threads < nthreads) nthreads = opts->threads;
    if ((size_t)out * rs < EM_QMM_MIN_PAR_BYTES) nthreads = 1;

    const int g = n < EM_QDOT_MAX_N ? n : EM_QDOT_MAX_N;
    const size_t ss = ops->scratch_size(wtype, g, in);
    void *scratch = NULL;
    if (ss) {
        scratch = aligned_alloc(64, (ss + 63) & ~(size_t)63);
        if (!scratch) return EM_E_NOMEM;
    }
    int chunk = out / (nthreads * 16);
    chunk = chunk < 8 ? 8 : (chunk + 7) & ~7;
    for (int j0 = 0; j0 < n; j0 += EM_QDOT_MAX_N) {
        const int gn = n - j0 < EM_QDOT_MAX_N ? n - j0 : EM_QDOT_MAX_N;
        struct em_qact a;
        ops->prep(wtype, x + (size_t)j0 * in, gn, in, scratch, &a);
        struct job jb = {
            .ops = ops, .wtype = wtype, .a = &a, .w = w, .row_bytes = rs,
            .y = y + (size_t)j0 * out, .ldy = (size_t)out, .out = out, .chunk = chunk,
        };
        atomic_init(&jb.next, 0);
        pool_run(&jb, nthreads);
    }
    free(scratch);
    if (bias)
        for (int j = 0; j < n; j++)
            for (int r = 0; r < out; r++) y[(size_t)j * out + r] += bias[r];
    return EM_OK;
}
