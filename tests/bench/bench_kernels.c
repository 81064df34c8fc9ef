/* tests/bench/bench_kernels.c - decode matvec throughput of em_qmatmul on 7B decoder shapes,
 * next to the machine's measured memory read bandwidth, in one run. No assertions.
 *
 * Build and run (from the repository root; tests/bench/run.sh does exactly this):
 *   tests/bench/run.sh [-t threads] [-s seconds_per_case]
 * EARMARK_CPU=generic|avx2|avx512 caps the kernel level as in the library.
 *
 * What it measures:
 *   bandwidth  T threads each summing a disjoint part of a 512 MiB buffer (>> LLC), best of
 *              5 passes, measured at the start and again right before every kernel case (the
 *              machine may be shared: %bw compares each case with the bandwidth of its moment);
 *   kernels    y[n, out] = x[n, in] @ W^T for W in q8_0, q4_0, bf16 and (out, in) =
 *              4096x4096 (q/k/v/o), 11008x4096 (gate/up), 4096x11008 (down), n = 1, 4, 8.
 *              Each case cycles through enough copies of W to total >= 512 MiB, so every
 *              call streams W from DRAM as a real decode step does (a 4096x4096 q4_0 matrix
 *              alone would sit in a 32 MiB LLC). Calls are timed one by one; the fastest is
 *              reported (like the best-of bandwidth: the speed when the cores are ours) with
 *              the median beside it. Reported: GB/s of W bytes, that as % of the bandwidth
 *              measured just before, and the decoder's matmul-only tokens/s at that speed
 *              (32 layers x (4 x 4096x4096 + 2 x 11008x4096 + 4096x11008), n tokens per
 *              step; attention, norms and lm_head excluded). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/kernels/cpu/cpufeat.h"
#include "model/kernels/cpu/membw.h"
#include "model/kernels/cpu/qmatmul.h"
#include "model/quant.h"

#define BW_BYTES (512ull << 20)
#define W_TOTAL (512ull << 20)

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Best of reps passes over buf with T threads; GB/s (model/kernels/cpu/membw.h). */
static double bandwidth(const uint64_t *buf, size_t words, int T, int reps)
{
    return em_membw_read(buf, words, T, reps);
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Times single calls for about secs seconds, cycling through copies of W; returns the
 * fastest call (the machine's speed when nobody else holds the cores) and *median. */
static double time_case(int wtype, int out, int in, int n, int threads, double secs,
                        size_t *wbytes, double *median)
{
    const size_t rs = em_wtype_row_size(wtype, in), msize = rs * out;
    size_t copies = (W_TOTAL + msize - 1) / msize;
    if (copies < 2) copies = 2;
    uint8_t *w = malloc(msize * copies);
    float *x = malloc(sizeof(float) * n * in), *y = malloc(sizeof(float) * n * out);
    float *row = malloc(sizeof(float) * in);
    enum { MAX_CALLS = 20000 };
    double *t = malloc(sizeof(double) * MAX_CALLS);
    if (!w || !x || !y || !row || !t) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    uint32_t s = 7;
    for (int r = 0; r < out; r++) {
        for (int i = 0; i < in; i++) {
            s = s * 1664525u + 1013904223u;
            row[i] = (float)((int)(s >> 8) % 2001 - 1000) * 1e-4f;
        }
        em_quantize_row(wtype, row, w + rs * r, in);
    }
    for (size_t c = 1; c < copies; c++) memcpy(w + msize * c, w, msize);
    for (int i = 0; i < n * in; i++) x[i] = (float)(i % 97) * 0.01f - 0.5f;
    const struct em_qmm_opts o = {.level = -1, .threads = threads};
    for (size_t c = 0; c < copies; c++) /* warm: pages, pool, branch predictors */
        em_qmatmul_ex(&o, y, x, n, in, out, wtype, w + msize * c, NULL);
    int calls = 0;
    size_t c = 0;
    const double t0 = now();
    while (calls < MAX_CALLS && (now() - t0 < secs || calls < 5)) {
        const double t1 = now();
        em_qmatmul_ex(&o, y, x, n, in, out, wtype, w + msize * c, NULL);
        t[calls++] = now() - t1;
        c = c + 1 == copies ? 0 : c + 1;
    }
    qsort(t, calls, sizeof *t, cmp_double);
    const double best = t[0];
    *median = t[calls / 2];
    free(w);
    free(x);
    free(y);
    free(row);
    free(t);
    *wbytes = msize;
    return best;
}

int main(int argc, char **argv)
{
    int threads = 0;
    double secs = 0.6;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "-t") == 0) threads = (int)strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "-s") == 0) secs = strtod(argv[i + 1], NULL);
    }
    const int T = threads > 0 && threads < em_qmm_threads() ? threads : em_qmm_threads();
    uint64_t *buf = aligned_alloc(64, BW_BYTES);
    if (!buf) return 1;
    memset(buf, 1, BW_BYTES);
    const size_t words = BW_BYTES / 8;
    const double bw1 = bandwidth(buf, words, 1, 8);
    const double bwT = bandwidth(buf, words, T, 8);
    printf("cpu level %s (avx512bf16 %s), threads %d\n", em_cpu_level_name(em_cpu_level()),
           em_cpu_has_avx512bf16() ? "yes" : "no", T);
    printf("memory read bandwidth: %.1f GB/s (1 thread), %.1f GB/s (%d threads)\n\n", bw1, bwT,
           T);
    static const int types[] = {EM_WT_Q8_0, EM_WT_Q4_0, EM_WT_BF16};
    static const int shapes[][3] = {{4096, 4096, 4}, {11008, 4096, 2}, {4096, 11008, 1}};
    static const int ns[] = {1, 4, 8};
    printf("%-5s %-11s %2s %9s %8s %8s %5s %9s\n", "type", "out x in", "n", "best ms", "W GB/s",
           "bw GB/s", "%bw", "median ms");
    for (int t = 0; t < 3; t++) {
        double step[3] = {0}, bytes = 0, bwsum[3] = {0};
        for (int s = 0; s < 3; s++)
            for (int k = 0; k < 3; k++) {
                size_t wb;
                const double bw = bandwidth(buf, words, T, 4);
                double med;
                const double sec = time_case(types[t], shapes[s][0], shapes[s][1], ns[k], T,
                                             secs, &wb, &med);
                const double gbs = wb / sec / 1e9;
                printf("%-5s %5dx%-5d %2d %9.3f %8.1f %8.1f %4.0f%% %9.3f\n",
                       em_wtype_name(types[t]), shapes[s][0], shapes[s][1], ns[k], sec * 1e3,
                       gbs, bw, 100 * gbs / bw, med * 1e3);
                fflush(stdout);
                step[k] += 32 * sec * shapes[s][2];
                bwsum[k] += bw * shapes[s][2];
                if (k == 0) bytes += 32.0 * wb * shapes[s][2];
            }
        /* decoder-weighted: W bytes of one step over its time, vs the mean bandwidth */
        const double bw_mean = bwsum[0] / 7;
        printf("%-5s decoder matmuls (32 layers): n=1 %.2f tok/s, %.1f GB/s = %.0f%% of %.1f GB/s;"
               " n=4 %.2f tok/s (x%.2f); n=8 %.2f tok/s (x%.2f)\n\n",
               em_wtype_name(types[t]), 1 / step[0], bytes / step[0] / 1e9,
               100 * bytes / step[0] / 1e9 / bw_mean, bw_mean, 4 / step[1],
               (4 / step[1]) / (1 / step[0]), 8 / step[2], (8 / step[2]) / (1 / step[0]));
    }
    free(buf);
    return 0;
}
