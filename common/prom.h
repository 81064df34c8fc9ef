/* common/prom.h - writing Prometheus text exposition (format 0.0.4) into a caller's buffer:
 * HELP/TYPE lines once per family, escaped label values, and a cap that is never passed
 * silently (em_prom_end says when the text was cut). Pure: no I/O, no allocation; one
 * writer per struct em_prom. */
#ifndef EM_PROM_H
#define EM_PROM_H

#include <stdbool.h>
#include <stddef.h>

#define EM_PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct em_prom {
    char *out;
    size_t cap, n;
    bool cut; /* something did not fit */
};

/* out[cap] is borrowed for the writer's life; cap >= 1. */
void em_prom_init(struct em_prom *p, char *out, size_t cap);
void em_prom_printf(struct em_prom *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "# HELP name help\n# TYPE name type\n"; help must not hold a newline or a backslash. */
void em_prom_family(struct em_prom *p, const char *name, const char *type, const char *help);
/* A label value with \\, \" and \n escaped (the caller writes the quotes around it). */
void em_prom_label(struct em_prom *p, const char *value);
/* One unlabelled sample of a new family. */
void em_prom_counter(struct em_prom *p, const char *name, const char *help, unsigned long long v);
void em_prom_gauge(struct em_prom *p, const char *name, const char *help, double v);
/* The text's length, or p->cap when it was cut (out is NUL-terminated either way). */
size_t em_prom_end(const struct em_prom *p);

#endif
