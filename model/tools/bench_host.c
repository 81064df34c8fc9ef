/* model/tools/bench_host.c - see bench_host.h. */
#include "model/tools/bench_host.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CPUINFO_PATH "/proc/cpuinfo"
#define CPUINFO_LINE 512   /* longer lines are skipped */
#define BUSY_INNER 4096    /* arithmetic steps between looks at the stop flag */

/* The value after "key<spaces/tabs>:" in line, or NULL. */
static const char *field(const char *line, const char *key)
{
    const size_t n = strlen(key);
    if (strncmp(line, key, n) != 0) return NULL;
    const char *p = line + n;
    while (*p == ' ' || *p == '\t') p++;
    if (*p != ':') return NULL;
    p++;
    while (*p == ' ') p++;
    return p;
}

void em_bench_cpu_model(char *out, size_t cap)
{
    if (!out || cap == 0) return;
    snprintf(out, cap, "unknown");
    FILE *f = fopen(CPUINFO_PATH, "r");
    if (!f) return;
    char line[CPUINFO_LINE], name[EM_BENCH_CPU_MODEL_MAX] = "", fam[16] = "", mod[16] = "";
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        const char *v;
        if (!name[0] && (v = field(line, "model name"))) snprintf(name, sizeof name, "%s", v);
        else if (!fam[0] && (v = field(line, "cpu family"))) snprintf(fam, sizeof fam, "%s", v);
        else if (!mod[0] && (v = field(line, "model"))) snprintf(mod, sizeof mod, "%s", v);
        if (line[0] == '\0' && name[0]) break; /* the first processor's block is enough */
    }
    fclose(f);
    if (!name[0]) return;
    if (fam[0] && mod[0]) snprintf(out, cap, "%s (family %s model %s)", name, fam, mod);
    else snprintf(out, cap, "%s", name);
}

struct em_bench_busy {
    pthread_t t;
    atomic_int stop;
    unsigned long long rounds;
};

static void *spin(void *arg)
{
    struct em_bench_busy *b = arg;
    uint64_t z = 1;
    unsigned long long n = 0;
    while (!atomic_load_explicit(&b->stop, memory_order_relaxed)) {
        for (int i = 0; i < BUSY_INNER; i++) z = z * 6364136223846793005ull + 1442695040888963407ull;
        __asm__ volatile("" : "+r"(z)); /* keep the loop */
        n++;
    }
    b->rounds = n;
    return NULL;
}

em_err em_bench_busy_start(struct em_bench_busy **out, struct em_errbuf *eb)
{
    struct em_bench_busy *b = calloc(1, sizeof *b);
    if (!b) return em_errf(eb, EM_E_NOMEM, "bench: no memory for the busy thread");
    atomic_init(&b->stop, 0);
    if (pthread_create(&b->t, NULL, spin, b) != 0) {
        free(b);
        return em_errf(eb, EM_E_INTERNAL, "bench: cannot start the busy thread");
    }
    *out = b;
    return EM_OK;
}

unsigned long long em_bench_busy_stop(struct em_bench_busy *b)
{
    if (!b) return 0;
    atomic_store(&b->stop, 1);
    pthread_join(b->t, NULL);
    const unsigned long long n = b->rounds;
    free(b);
    return n;
}
