/* model/kernels/cpu/peak.c - see peak.h. Twelve independent accumulators per loop (more
 * than the latency x throughput of either instruction on current cores), written out one
 * by one so that they stay in registers at -O2. The accumulators start from different
 * values and pass through an empty asm once, so the compiler cannot tell that they hold the
 * same chain and compute it once (which reports 3x the real rate); the asm in the loop keeps
 * it from folding the loop. */
#include "model/kernels/cpu/peak.h"

#include <immintrin.h>
#include <pthread.h>
#include <time.h>

#include "model/kernels/cpu/cpufeat.h"

#define ITERS 2000000L /* loop iterations per timing check: 24 M instructions */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

#define STEP12(OP)                                                                             \
    do {                                                                                       \
        a0 = OP(a0);  a1 = OP(a1);  a2 = OP(a2);  a3 = OP(a3);                                 \
        a4 = OP(a4);  a5 = OP(a5);  a6 = OP(a6);  a7 = OP(a7);                                 \
        a8 = OP(a8);  a9 = OP(a9);  a10 = OP(a10); a11 = OP(a11);                              \
    } while (0)

#define OPAQUE12(C)                                                                            \
    __asm__ volatile("" : "+" C(a0), "+" C(a1), "+" C(a2), "+" C(a3), "+" C(a4), "+" C(a5),      \
                     "+" C(a6), "+" C(a7), "+" C(a8), "+" C(a9), "+" C(a10), "+" C(a11))

/* Each returns the instructions executed in about `seconds` and a value to keep. */
__attribute__((target("avx512f,avx512vnni"))) static double run_vnni(double seconds, float *keep)
{
    __m512i a0 = _mm512_set1_epi32(0), a1 = _mm512_set1_epi32(1), a2 = _mm512_set1_epi32(2),
            a3 = _mm512_set1_epi32(3), a4 = _mm512_set1_epi32(4), a5 = _mm512_set1_epi32(5),
            a6 = _mm512_set1_epi32(6), a7 = _mm512_set1_epi32(7), a8 = _mm512_set1_epi32(8),
            a9 = _mm512_set1_epi32(9), a10 = _mm512_set1_epi32(10), a11 = _mm512_set1_epi32(11);
    __m512i x = _mm512_set1_epi8(3), w = _mm512_set1_epi8(-5);
    OPAQUE12("v");
    double n = 0;
    const double t0 = now_s();
    do {
        for (long i = 0; i < ITERS; i++) {
#define VNNI(a) _mm512_dpbusd_epi32(a, x, w)
            STEP12(VNNI);
#undef VNNI
            __asm__ volatile("" : "+v"(x), "+v"(w));
        }
        n += 12.0 * ITERS;
    } while (now_s() - t0 < seconds);
    a0 = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)),
                          _mm512_add_epi32(_mm512_add_epi32(a4, a5), _mm512_add_epi32(a6, a7)));
    a0 = _mm512_add_epi32(a0, _mm512_add_epi32(_mm512_add_epi32(a8, a9),
                                               _mm512_add_epi32(a10, a11)));
    *keep = (float)_mm512_reduce_add_epi32(a0);
    return n;
}

__attribute__((target("avx512f"))) static double run_fma512(double seconds, float *keep)
{
    __m512 a0 = _mm512_set1_ps(0.50f), a1 = _mm512_set1_ps(0.51f), a2 = _mm512_set1_ps(0.52f),
           a3 = _mm512_set1_ps(0.53f), a4 = _mm512_set1_ps(0.54f), a5 = _mm512_set1_ps(0.55f),
           a6 = _mm512_set1_ps(0.56f), a7 = _mm512_set1_ps(0.57f), a8 = _mm512_set1_ps(0.58f),
           a9 = _mm512_set1_ps(0.59f), a10 = _mm512_set1_ps(0.60f), a11 = _mm512_set1_ps(0.61f);
    __m512 x = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    OPAQUE12("v");
    double n = 0;
    const double t0 = now_s();
    do {
        for (long i = 0; i < ITERS; i++) {
#define FMA(a) _mm512_fmadd_ps(a, x, c)
            STEP12(FMA);
#undef FMA
            __asm__ volatile("" : "+v"(x), "+v"(c));
        }
        n += 12.0 * ITERS;
    } while (now_s() - t0 < seconds);
    a0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                       _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    a0 = _mm512_add_ps(a0, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    *keep = _mm512_reduce_add_ps(a0);
    return n;
}

__attribute__((target("avx2,fma"))) static double run_fma256(double seconds, float *keep)
{
    __m256 a0 = _mm256_set1_ps(0.50f), a1 = _mm256_set1_ps(0.51f), a2 = _mm256_set1_ps(0.52f),
           a3 = _mm256_set1_ps(0.53f), a4 = _mm256_set1_ps(0.54f), a5 = _mm256_set1_ps(0.55f),
           a6 = _mm256_set1_ps(0.56f), a7 = _mm256_set1_ps(0.57f), a8 = _mm256_set1_ps(0.58f),
           a9 = _mm256_set1_ps(0.59f), a10 = _mm256_set1_ps(0.60f), a11 = _mm256_set1_ps(0.61f);
    __m256 x = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    OPAQUE12("x");
    double n = 0;
    const double t0 = now_s();
    do {
        for (long i = 0; i < ITERS; i++) {
#define FMA(a) _mm256_fmadd_ps(a, x, c)
            STEP12(FMA);
#undef FMA
            __asm__ volatile("" : "+x"(x), "+x"(c));
        }
        n += 12.0 * ITERS;
    } while (now_s() - t0 < seconds);
    a0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                       _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    a0 = _mm256_add_ps(a0, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float v[8];
    _mm256_storeu_ps(v, a0);
    *keep = v[0];
    return n;
}

enum kind { K_VNNI, K_FMA512, K_FMA256 };

struct th {
    enum kind k;
    double seconds, instr, t_end;
    float keep;
};

static void *run_one(void *arg)
{
    struct th *t = arg;
    switch (t->k) {
    case K_VNNI: t->instr = run_vnni(t->seconds, &t->keep); break;
    case K_FMA512: t->instr = run_fma512(t->seconds, &t->keep); break;
    case K_FMA256: t->instr = run_fma256(t->seconds, &t->keep); break;
    }
    t->t_end = now_s();
    return NULL;
}

/* Instructions per second over all T threads: total instructions / the slowest wall time. */
static double rate(enum kind k, int T, double seconds)
{
    if (T < 1) T = 1;
    if (T > EM_PEAK_MAX_THREADS) T = EM_PEAK_MAX_THREADS;
    if (!(seconds > 0)) seconds = 0.1;
    double best = 0;
    for (int pass = 0; pass < 2; pass++) { /* the first warms clocks and threads */
        pthread_t id[EM_PEAK_MAX_THREADS];
        struct th t[EM_PEAK_MAX_THREADS];
        char started[EM_PEAK_MAX_THREADS] = {0};
        const double t0 = now_s();
        for (int i = 0; i < T; i++) t[i] = (struct th){.k = k, .seconds = seconds};
        for (int i = 1; i < T; i++) started[i] = pthread_create(&id[i], NULL, run_one, &t[i]) == 0;
        run_one(&t[0]);
        for (int i = 1; i < T; i++) {
            if (started[i]) pthread_join(id[i], NULL);
            else run_one(&t[i]);
        }
        double n = 0, end = t0;
        for (int i = 0; i < T; i++) {
            n += t[i].instr;
            if (t[i].t_end > end) end = t[i].t_end;
        }
        volatile float sink = t[0].keep;
        (void)sink;
        if (end > t0 && n / (end - t0) > best) best = n / (end - t0);
    }
    return best;
}

double em_peak_fma_gflops(int T, double seconds)
{
    const int level = em_cpu_level();
    if (level >= EM_CPU_AVX512) return rate(K_FMA512, T, seconds) * 16 * 2 / 1e9;
    if (level >= EM_CPU_AVX2) return rate(K_FMA256, T, seconds) * 8 * 2 / 1e9;
    return 0;
}

double em_peak_vnni_gops(int T, double seconds)
{
    if (em_cpu_level() < EM_CPU_AVX512) return 0;
    return rate(K_VNNI, T, seconds) * 64 * 2 / 1e9;
}
