/* model/kernels/cpu/cpufeat.h - which x86 SIMD level the CPU kernels may use.
 *
 * A level is usable when the CPU reports every instruction set it needs (CPUID) AND the OS
 * saves the matching register state across context switches (XGETBV: XMM|YMM for AVX2,
 * plus opmask|ZMM_Hi256|Hi16_ZMM for AVX-512). Kernels compiled for a level (files named
 * *_avx2.c, *_avx512.c) are only ever called when em_cpu_level() >= that level.
 *
 *   EM_CPU_AVX2    AVX2 + FMA + F16C
 *   EM_CPU_AVX512  the above + AVX-512 F, BW, VL, DQ and VNNI (BF16 is reported separately:
 *                  em_cpu_has_avx512bf16() selects vdpbf16ps for bf16 rows)
 *
 * The environment variable EARMARK_CPU=generic|avx2|avx512 caps the level (it never raises it
 * above what the machine supports; an unknown value is ignored). Read once.
 * Thread-safe: detection runs once (pthread_once); the getters are pure afterwards. */
#ifndef EM_CPUFEAT_H
#define EM_CPUFEAT_H

#include <stdbool.h>

enum em_cpu_level {
    EM_CPU_GENERIC = 0,
    EM_CPU_AVX2 = 1,
    EM_CPU_AVX512 = 2,
};

int em_cpu_level(void);            /* the chosen level: min(supported, EARMARK_CPU) */
int em_cpu_level_supported(void);  /* what the CPU and OS allow, ignoring EARMARK_CPU */
bool em_cpu_has_avx512bf16(void);  /* AVX512_BF16 usable (implies level AVX512 supported) */
const char *em_cpu_level_name(int level); /* "generic", "avx2", "avx512"; "?" otherwise */

/* Parses "generic" | "avx2" | "avx512"; returns -1 for anything else (NULL included). */
int em_cpu_level_parse(const char *s);

#endif
