/* coordinator/queue_impl.h - internals shared by queue.c and queue_stream.c (not an API). */
#ifndef EM_QUEUE_IMPL_H
#define EM_QUEUE_IMPL_H

#include <hiredis.h>
#include <stdint.h>

#include "coordinator/queue.h"

struct em_tls_relay;

struct em_queue {
    redisContext *c;
    struct em_redis_url url; /* holds the password: zeroed by em_queue_close */
    char ca[4096];           /* rediss:// CA file; "" = system store */
    struct em_tls_relay *relay; /* rediss://: the TLS relay behind c */
};

/* (Re)connects q, with AUTH and SELECT as the URL says. */
em_err em_qi_connect(struct em_queue *q, struct em_errbuf *eb);
/* One command (argv strings; lens NULL = strlen); NULL on failure with eb filled.
 * Reconnects once on a lost connection; error replies become EM_E_REDIS. */
redisReply *em_qi_cmdv(struct em_queue *q, struct em_errbuf *eb, int argc, const char **argv,
                       const size_t *lens);
/* Variadic form: NUL-terminated strings, the list ends with (const char *)NULL. */
redisReply *em_qi_cmd(struct em_queue *q, struct em_errbuf *eb, ...);
/* Frees r; EM_OK unless r is NULL (then eb was filled by the command). */
em_err em_qi_ok(struct em_queue *q, struct em_errbuf *eb, redisReply *r);
/* "earmark:batch:<batch><suffix>" */
void em_qi_key(char *out, size_t cap, const char *batch, const char *suffix);
/* HSET earmark:batch:<batch><suffix> field <n in decimal>. */
em_err em_qi_hset_num(struct em_queue *q, const char *batch, const char *suffix,
                      const char *field, uint64_t n, struct em_errbuf *eb);
char *em_qi_rdup(const redisReply *r);    /* malloc'd copy of a string reply, or NULL */
uint64_t em_qi_rnum(const redisReply *r); /* decimal string reply -> number (0 if not) */

#endif
