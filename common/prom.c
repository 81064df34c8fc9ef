/* common/prom.c - Prometheus text exposition writer (see prom.h). */
#include "common/prom.h"

#include <stdarg.h>
#include <stdio.h>

void em_prom_init(struct em_prom *p, char *out, size_t cap)
{
    p->out = out;
    p->cap = cap;
    p->n = 0;
    p->cut = false;
    if (cap) out[0] = 0;
}

void em_prom_printf(struct em_prom *p, const char *fmt, ...)
{
    if (p->cut || p->cap == 0) {
        p->cut = true;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(p->out + p->n, p->cap - p->n, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= p->cap - p->n) {
        p->out[p->n] = 0; /* drop the partial line: a cut text ends on a whole line */
        p->cut = true;
        return;
    }
    p->n += (size_t)w;
}

void em_prom_family(struct em_prom *p, const char *name, const char *type, const char *help)
{
    em_prom_printf(p, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void em_prom_label(struct em_prom *p, const char *v)
{
    for (const char *s = v ? v : ""; *s; s++) {
        if (*s == '\\') em_prom_printf(p, "\\\\");
        else if (*s == '"') em_prom_printf(p, "\\\"");
        else if (*s == '\n') em_prom_printf(p, "\\n");
        else em_prom_printf(p, "%c", *s);
    }
}

void em_prom_counter(struct em_prom *p, const char *name, const char *help, unsigned long long v)
{
    em_prom_family(p, name, "counter", help);
    em_prom_printf(p, "%s %llu\n", name, v);
}

void em_prom_gauge(struct em_prom *p, const char *name, const char *help, double v)
{
    em_prom_family(p, name, "gauge", help);
    em_prom_printf(p, "%s %.17g\n", name, v);
}

size_t em_prom_end(const struct em_prom *p) { return p->cut ? p->cap : p->n; }
