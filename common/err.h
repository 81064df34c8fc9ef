/* common/err.h - error codes, their messages and retry class, and a detail buffer.
 * The codes come from err.def (X-macro) so enum, names, messages and classes agree.
 * Thread-safe: everything here is pure except em_errf, which writes only *eb. */
#ifndef EM_ERR_H
#define EM_ERR_H

#include <stdbool.h>

typedef enum em_err {
#define EM_ERR(code, cls, msg) code,
#include "common/err.def"
#undef EM_ERR
    EM_ERR_COUNT
} em_err;

/* Detail of the last failure: one line naming the item, the cause and the numbers. */
struct em_errbuf {
    char msg[256];
};

const char *em_err_str(em_err e);  /* human message, "unknown error" if out of range */
const char *em_err_name(em_err e); /* "EM_E_AUDIO" */
bool em_err_retryable(em_err e);   /* class RETRY or INFRA: worth another try */
/* class INFRA: storage unreachable or full, not the item's fault; retried without
 * spending the item's attempts while dispatch to the output pauses. */
bool em_err_infra(em_err e);
/* Looks a name up ("EM_E_AUDIO"); returns EM_E_INTERNAL when unknown. */
em_err em_err_from_name(const char *name);

/* Formats the detail into eb (may be NULL) and returns code, so callers write
 * `return em_errf(eb, EM_E_FORMAT, "%s: ...", file);`. */
em_err em_errf(struct em_errbuf *eb, em_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The detail if set, else the code's message. Never NULL. */
const char *em_errbuf_msg(const struct em_errbuf *eb, em_err code);

#endif
