/* common/err.c - tables generated from err.def. */
#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum { CLS_NONE, CLS_RETRY, CLS_PERM, CLS_INFRA };

static const struct {
    const char *name;
    const char *msg;
    int cls;
} table[] = {
#define EM_ERR(code, cls, msg) {#code, msg, CLS_##cls},
#include "common/err.def"
#undef EM_ERR
};

const char *em_err_str(em_err e)
{
    if ((unsigned)e >= EM_ERR_COUNT) return "unknown error";
    return table[e].msg;
}

const char *em_err_name(em_err e)
{
    if ((unsigned)e >= EM_ERR_COUNT) return "EM_E_UNKNOWN";
    return table[e].name;
}

bool em_err_retryable(em_err e)
{
    return (unsigned)e < EM_ERR_COUNT && (table[e].cls == CLS_RETRY || table[e].cls == CLS_INFRA);
}

bool em_err_infra(em_err e)
{
    return (unsigned)e < EM_ERR_COUNT && table[e].cls == CLS_INFRA;
}

em_err em_err_from_name(const char *name)
{
    for (unsigned i = 0; name && i < EM_ERR_COUNT; i++)
        if (strcmp(table[i].name, name) == 0) return (em_err)i;
    return EM_E_INTERNAL;
}

em_err em_errf(struct em_errbuf *eb, em_err code, const char *fmt, ...)
{
    if (eb) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(eb->msg, sizeof eb->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

const char *em_errbuf_msg(const struct em_errbuf *eb, em_err code)
{
    if (eb && eb->msg[0]) return eb->msg;
    return em_err_str(code);
}
