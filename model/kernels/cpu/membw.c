/* model/kernels/cpu/membw.c - see membw.h. */
#include "model/kernels/cpu/membw.h"

#include <pthread.h>
#include <time.h>

#include "model/kernels/cpu/cpufeat.h"

struct rd {
    const uint64_t *p;
    size_t n;
    uint64_t sum;
};

typedef long long v4 __attribute__((vector_size(32)));
__attribute__((target("avx2"))) static uint64_t sum_avx2(const uint64_t *p, size_t n)
{
    v4 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    for (size_t i = 0; i + 16 <= n; i += 16) {
        a0 += *(const v4 *)(p + i);
        a1 += *(const v4 *)(p + i + 4);
        a2 += *(const v4 *)(p + i + 8);
        a3 += *(const v4 *)(p + i + 12);
    }
    const v4 t = a0 + a1 + a2 + a3;
    return (uint64_t)(t[0] ^ t[1] ^ t[2] ^ t[3]);
}

static void *read_part(void *arg)
{
    struct rd *r = arg;
    if (em_cpu_level_supported() >= EM_CPU_AVX2) {
        r->sum = sum_avx2(r->p, r->n);
        return NULL;
    }
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (size_t i = 0; i + 4 <= r->n; i += 4) {
        a0 += r->p[i];
        a1 += r->p[i + 1];
        a2 += r->p[i + 2];
        a3 += r->p[i + 3];
    }
    r->sum = a0 ^ a1 ^ a2 ^ a3;
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

double em_membw_read(const uint64_t *buf, size_t words, int T, int reps)
{
    if (T < 1) T = 1;
    if (T > EM_MEMBW_MAX_THREADS) T = EM_MEMBW_MAX_THREADS;
    const size_t per = words / (size_t)T / 16 * 16;
    double best = 0;
    volatile uint64_t sink = 0;
    for (int rep = 0; rep < reps && per > 0; rep++) {
        pthread_t th[EM_MEMBW_MAX_THREADS];
        struct rd r[EM_MEMBW_MAX_THREADS];
        char started[EM_MEMBW_MAX_THREADS] = {0};
        const double t0 = now_s();
        for (int t = 1; t < T; t++) {
            r[t] = (struct rd){buf + per * (size_t)t, per, 0};
            started[t] = pthread_create(&th[t], NULL, read_part, &r[t]) == 0;
        }
        r[0] = (struct rd){buf, per, 0};
        read_part(&r[0]);
        for (int t = 1; t < T; t++) {
            if (started[t]) pthread_join(th[t], NULL);
            else read_part(&r[t]);
        }
        const double dt = now_s() - t0;
        for (int t = 0; t < T; t++) sink ^= r[t].sum;
        const double gbs = (double)(per * (size_t)T * 8) / dt / 1e9;
        if (gbs > best) best = gbs;
    }
    (void)sink;
    return best;
}
