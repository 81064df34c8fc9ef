/* model/kernels/cpu/cpufeat.c - CPUID + XGETBV detection, once per process.
 * ref: Intel SDM vol. 1 §14.3 and §15.2 (software must check OSXSAVE and XCR0 before using
 * AVX / AVX-512 state; CPUID alone is not enough, the caveat noted in ggml's cpu-feats.cpp). */
#include "model/kernels/cpu/cpufeat.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define EM_X86 1
#endif

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int supported = EM_CPU_GENERIC;
static int chosen = EM_CPU_GENERIC;
static bool has_bf16 = false;

#ifdef EM_X86
static uint64_t xcr0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static void detect_x86(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    const bool osxsave = c & (1u << 27), avx = c & (1u << 28);
    const bool fma = c & (1u << 12), f16c = c & (1u << 29);
    if (!osxsave || !avx) return;
    const uint64_t x = xcr0();
    const bool os_avx = (x & 0x6) == 0x6;       /* XMM and YMM state */
    const bool os_avx512 = (x & 0xE6) == 0xE6;  /* + opmask, ZMM_Hi256, Hi16_ZMM */
    if (!os_avx) return;
    if (__get_cpuid_max(0, NULL) < 7) return;
    __cpuid_count(7, 0, a, b, c, d);
    const bool avx2 = b & (1u << 5);
    const bool f = b & (1u << 16), dq = b & (1u << 17), bw = b & (1u << 30), vl = b & (1u << 31);
    const bool vnni = c & (1u << 11);
    const unsigned max_sub = a;
    bool bf16 = false;
    if (max_sub >= 1) {
        __cpuid_count(7, 1, a, b, c, d);
        bf16 = a & (1u << 5);
    }
    if (!(avx2 && fma && f16c)) return;
    supported = EM_CPU_AVX2;
    if (!(os_avx512 && f && dq && bw && vl && vnni)) return;
    supported = EM_CPU_AVX512;
    has_bf16 = bf16;
}
#endif

static void detect(void)
{
#ifdef EM_X86
    detect_x86();
#endif
    chosen = supported;
    const int cap = em_cpu_level_parse(getenv("EARMARK_CPU"));
    if (cap >= 0 && cap < chosen) chosen = cap;
}

int em_cpu_level_parse(const char *s)
{
    if (!s) return -1;
    if (strcmp(s, "generic") == 0) return EM_CPU_GENERIC;
    if (strcmp(s, "avx2") == 0) return EM_CPU_AVX2;
    if (strcmp(s, "avx512") == 0) return EM_CPU_AVX512;
    return -1;
}

int em_cpu_level(void)
{
    pthread_once(&once, detect);
    return chosen;
}

int em_cpu_level_supported(void)
{
    pthread_once(&once, detect);
    return supported;
}

bool em_cpu_has_avx512bf16(void)
{
    pthread_once(&once, detect);
    return has_bf16;
}

const char *em_cpu_level_name(int level)
{
    switch (level) {
    case EM_CPU_GENERIC: return "generic";
    case EM_CPU_AVX2: return "avx2";
    case EM_CPU_AVX512: return "avx512";
    default: return "?";
    }
}
