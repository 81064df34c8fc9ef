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
 *              step; attention, norms and lm_head excluded).
 *   gemm       the prefill / encoder matmuls (n > 8): y[n, out] = x[n, in] @ W^T at the 7B
 *              encoder FFN (n = 1500: 1280 -> 5120, 5120 -> 1280), decoder attention
 *              (n = 800: 4096 -> 4096) and decoder FFN (n = 800: 4096 -> 11008, 11008 ->
 *              4096), and two short prefills (n = 16: 4096 -> 4096; n = 24: 4096 ->
 *              11008), each through: em_igemm (int8 VNNI GEMM, model/kernels/cpu/igemm.h)
 *              on q8_0 and q4_0 W; "widen+sgemm", what em_matmul did before it (W
 *              dequantized into f32 tiles of EM_MM_TILE_BYTES, each tile multiplied with
 *              cblas_sgemm; the dequantizer here is the scalar em_dequantize_row, the
 *              library's is AVX2, so this overstates that path's time where the widening
 *              matters, i.e. at short n); and plain cblas_sgemm on an f32 W (the old path
 *              without its widening: a lower bound of its time). The variants run round-robin in one process, best of -r rounds each;
 *              GOPS = 2 * n * in * out / time. OpenBLAS threads = the qmatmul pool's.
 * Options: -m decode|gemm|all (default all), -r rounds for gemm (default 4). */
#include <cblas.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/kernels/backend.h"
#include "model/kernels/cpu/cpufeat.h"
#include "model/kernels/cpu/igemm.h"
#include "model/kernels/cpu/membw.h"
#include "model/kernels/cpu/qmatmul.h"
#include "model/kernels/quant.h"

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
    const struct em_qmm_opts o = {.level = -1, .threads = threads, .bf16_exact = EM_MM_BF16_EXACT};
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

/* ---- gemm ---- */

/* What em_matmul did at n > 8 before em_igemm: dequantize tiles of whole rows, sgemm each. */
static void widen_sgemm(float *y, const float *x, int n, int in, int out, int wtype,
                        const uint8_t *w, float *tile)
{
    const size_t rs = em_wtype_row_size(wtype, in);
    size_t rows = EM_MM_TILE_BYTES / ((size_t)in * sizeof(float));
    if (rows < 1) rows = 1;
    for (size_t r0 = 0; r0 < (size_t)out; r0 += rows) {
        const size_t tr = (size_t)out - r0 < rows ? (size_t)out - r0 : rows;
        em_dequantize_row(wtype, w + r0 * rs, tile, (int64_t)(tr * in));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, (int)tr, in, 1.0f, x, in, tile,
                    in, 0.0f, y + r0, out);
    }
}

static void gemm_section(int T, int rounds)
{
    static const struct {
        const char *what;
        int n, in, out;
    } shapes[] = {
        {"encoder fc1", 1500, 1280, 5120},     {"encoder fc2", 1500, 5120, 1280},
        {"decoder q/k/v/o", 800, 4096, 4096},  {"decoder gate/up", 800, 4096, 11008},
        {"decoder down", 800, 11008, 4096},    {"short q/k/v/o", 16, 4096, 4096},
        {"short gate/up", 24, 4096, 11008},
    };
    enum { IG_Q8, IG_Q4, WS_Q8, WS_Q4, SG_F32, NV };
    openblas_set_num_threads(T);
    printf("gemm: best of %d rounds, GOPS = 2 * n * in * out / s; threads %d (pool and "
           "OpenBLAS)\n",
           rounds, T);
    printf("%-16s %5s %6s %6s | %10s %10s %10s %10s %10s | %s\n", "shape", "n", "in", "out",
           "igemm q8", "igemm q4", "w+sg q8", "w+sg q4", "sgemm f32", "igemm q8 / sgemm f32");
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
        const int n = shapes[k].n, in = shapes[k].in, out = shapes[k].out;
        uint8_t *wq[2];
        const int wt[2] = {EM_WT_Q8_0, EM_WT_Q4_0};
        float *wf = malloc((size_t)out * in * sizeof *wf), *x = malloc((size_t)n * in * 4);
        float *y = malloc((size_t)n * out * sizeof *y);
        size_t trows = EM_MM_TILE_BYTES / ((size_t)in * sizeof(float));
        float *tile = malloc((trows < 1 ? 1 : trows) * (size_t)in * sizeof *tile);
        if (!wf || !x || !y || !tile) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
        uint32_t s = 11;
        for (size_t i = 0; i < (size_t)out * in; i++) {
            s = s * 1664525u + 1013904223u;
            wf[i] = (float)((int)(s >> 8) % 2001 - 1000) * 1e-4f;
        }
        for (int q = 0; q < 2; q++) {
            const size_t rs = em_wtype_row_size(wt[q], in);
            wq[q] = malloc(rs * out);
            if (!wq[q]) exit(1);
            for (int r = 0; r < out; r++)
                em_quantize_row(wt[q], wf + (size_t)r * in, wq[q] + rs * r, in);
        }
        for (size_t i = 0; i < (size_t)n * in; i++) x[i] = (float)(i % 97) * 0.01f - 0.5f;
        double best[NV];
        for (int v = 0; v < NV; v++) best[v] = 1e30;
        for (int r = 0; r <= rounds; r++) /* round 0 warms (pages, pools) and is not counted */
            for (int v = 0; v < NV; v++) {
                const double t0 = now();
                switch (v) {
                case IG_Q8:
                case IG_Q4:
                    if (em_igemm(y, x, n, in, out, wt[v - IG_Q8], wq[v - IG_Q8], T) != EM_OK) {
                        best[v] = -1;
                        continue;
                    }
                    break;
                case WS_Q8:
                case WS_Q4: widen_sgemm(y, x, n, in, out, wt[v - WS_Q8], wq[v - WS_Q8], tile); break;
                default:
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x,
                                in, wf, in, 0.0f, y, out);
                }
                const double dt = now() - t0;
                if (r > 0 && dt < best[v]) best[v] = dt;
            }
        const double ops = 2.0 * n * in * out;
        printf("%-16s %5d %6d %6d |", shapes[k].what, n, in, out);
        for (int v = 0; v < NV; v++) {
            if (best[v] < 0) printf(" %10s", "n/a");
            else printf(" %10.0f", ops / best[v] * 1e-9);
        }
        printf(" | x%.2f\n", best[IG_Q8] > 0 ? best[SG_F32] / best[IG_Q8] : 0.0);
        fflush(stdout);
        for (int q = 0; q < 2; q++) free(wq[q]);
        free(wf);
        free(x);
        free(y);
        free(tile);
    }
    printf("\n");
}

int main(int argc, char **argv)
{
    int threads = 0, rounds = 4;
    double secs = 0.6;
    const char *mode = "all";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "-t") == 0) threads = (int)strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "-s") == 0) secs = strtod(argv[i + 1], NULL);
        else if (strcmp(argv[i], "-m") == 0) mode = argv[i + 1];
        else if (strcmp(argv[i], "-r") == 0) rounds = (int)strtol(argv[i + 1], NULL, 10);
    }
    if (rounds < 1) rounds = 1;
    const int T = threads > 0 && threads < em_qmm_threads() ? threads : em_qmm_threads();
    if (strcmp(mode, "decode") != 0) {
        printf("cpu level %s, igemm %s\n", em_cpu_level_name(em_cpu_level()),
               em_igemm_available(em_cpu_level()) ? "yes" : "no (n/a below)");
        gemm_section(T, rounds);
        if (strcmp(mode, "gemm") == 0) return 0;
    }
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
