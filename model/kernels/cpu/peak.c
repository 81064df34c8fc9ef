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

/* A loop of 12 independent chains of OP (a, x, c) for about `seconds`: returns the
 * instructions executed and stores a value derived from the chains in *keep. INIT(k) gives
 * chain k's start, ADD sums two vectors, KEEP turns a vector into a float; C is the asm
 * register constraint of the vector type. */
#define PEAK_RUN(NAME, TARGET, VT, INIT, X0, C0, OP, ADD, KEEP, C)                              \
    __attribute__((target(TARGET))) static double NAME(double seconds, float *keep)           \
    {                                                                                          \
        VT a0 = INIT(0), a1 = INIT(1), a2 = INIT(2), a3 = INIT(3), a4 = INIT(4), a5 = INIT(5), \
           a6 = INIT(6), a7 = INIT(7), a8 = INIT(8), a9 = INIT(9), a10 = INIT(10),             \
           a11 = INIT(11);                                                                     \
        VT x = X0, c = C0;                                                                     \
        OPAQUE12(C);                                                                           \
        double n = 0;                                                                          \
        const double t0 = now_s();                                                             \
        do {                                                                                   \
            for (long i = 0; i < ITERS; i++) {                                                 \
                STEP12(OP);                                                                    \
                __asm__ volatile("" : "+" C(x), "+" C(c));                                     \
            }                                                                                  \
            n += 12.0 * ITERS;                                                                 \
        } while (now_s() - t0 < seconds);                                                      \
        a0 = ADD(ADD(ADD(a0, a1), ADD(a2, a3)), ADD(ADD(a4, a5), ADD(a6, a7)));                \
        a0 = ADD(a0, ADD(ADD(a8, a9), ADD(a10, a11)));                                         \
        *keep = KEEP(a0);                                                                      \
        return n;                                                                              \
    }

#define I512(k) _mm512_set1_epi32(k)
#define F512(k) _mm512_set1_ps(0.5f + 0.01f * (k))
#define F256(k) _mm256_set1_ps(0.5f + 0.01f * (k))
#define VNNI(a) _mm512_dpbusd_epi32(a, x, c)
#define FMA512(a) _mm512_fmadd_ps(a, x, c)
#define FMA256(a) _mm256_fmadd_ps(a, x, c)
/* lane 0 only: _mm512_reduce_add_epi32 adds in signed int in C (GCC), which overflows (UB)
 * on the wrapped accumulators */
#define KEEP_I512(v) ((float)_mm_cvtsi128_si32(_mm512_castsi512_si128(v)))
#define KEEP_F256(v) _mm_cvtss_f32(_mm256_castps256_ps128(v))

PEAK_RUN(run_vnni, "avx512f,avx512vnni", __m512i, I512, _mm512_set1_epi8(3),
         _mm512_set1_epi8(-5), VNNI, _mm512_add_epi32, KEEP_I512, "v")
PEAK_RUN(run_fma512, "avx512f", __m512, F512, _mm512_set1_ps(0.999999f), _mm512_set1_ps(1e-7f),
         FMA512, _mm512_add_ps, _mm512_reduce_add_ps, "v")
PEAK_RUN(run_fma256, "avx2,fma", __m256, F256, _mm256_set1_ps(0.999999f),
         _mm256_set1_ps(1e-7f), FMA256, _mm256_add_ps, KEEP_F256, "x")

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
