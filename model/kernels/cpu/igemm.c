/* model/kernels/cpu/igemm.c - em_igemm's portable entry: argument checks, the CPU level
 * check, then the AVX-512 body (igemm_avx512.c). Compiled without SIMD flags, so the checks
 * run on any x86-64 (or other) CPU before an AVX-512 instruction can. */
#include "model/kernels/cpu/igemm.h"

#include "model/kernels/cpu/cpufeat.h"
#include "model/kernels/cpu/qmatmul.h"
#include "model/kernels/quant.h"

int em_igemm_available(int level)
{
#if defined(__x86_64__)
    return level >= EM_CPU_AVX512 && em_cpu_level_supported() >= EM_CPU_AVX512;
#else
    (void)level;
    return 0;
#endif
}

size_t em_igemm_scratch_bytes(int n, int in)
{
    if (n <= 0 || in <= 0) return 0;
    const size_t np = ((size_t)n + EM_IGEMM_TN - 1) / EM_IGEMM_TN * EM_IGEMM_TN;
    const size_t nb = (size_t)in / EM_QK;
    const size_t tile = nb * (EM_IGEMM_TR * (EM_QK + sizeof(float)));
    return np * (size_t)in + 2 * np * nb * sizeof(float) + (size_t)em_qmm_threads() * tile;
}

em_err em_igemm(float *y, const float *x, int n, int in, int out, int wtype, const void *w,
                int threads)
{
    if (n < 0 || in <= 0 || out < 0 || in % EM_QK != 0) return EM_E_ARG;
    if (wtype != EM_WT_Q8_0 && wtype != EM_WT_Q4_0) return EM_E_UNSUPPORTED;
    if (n == 0 || out == 0) return EM_OK;
    if (!y || !x || !w) return EM_E_ARG;
    if (!em_igemm_available(em_cpu_level())) return EM_E_UNSUPPORTED;
#if defined(__x86_64__)
    return em_igemm_avx512(y, x, n, in, out, wtype, w, threads);
#else
    (void)threads;
    return EM_E_UNSUPPORTED;
#endif
}
