/* coordinator/queue.c - connection, batches, submit-side writes and manifest rows for the
 * layout in queue.h (stream reading and settling: queue_stream.c).
 * Every command goes through em_qi_cmd(), which reconnects once on a lost connection and turns
 * error replies into EM_E_REDIS with Redis's text. */
#include "coordinator/queue.h"

#include <hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "coordinator/queue_impl.h"
#include "coordinator/tls_relay.h"

/* KEYS items list, status, batch, output; ARGV item, "item\tsource", output */
static const char *SKIP_LUA = "redis.call('RPUSH', KEYS[1], ARGV[2])\n"
                              "if redis.call('HSETNX', KEYS[2], ARGV[1], 'ok') == 1 then\n"
                              "  redis.call('HINCRBY', KEYS[3], 'done', 1)\n"
                              "  redis.call('HINCRBY', KEYS[3], 'skipped', 1)\n"
                              "end\n"
                              "redis.call('HSET', KEYS[4], ARGV[1], ARGV[3])\n"
                              "return 1\n";

/* AUTH (ACL user + password, or password) and SELECT on a fresh connection. */
static em_err hello(struct em_queue *q, struct em_errbuf *eb)
{
    const struct em_redis_url *u = &q->url;
    redisReply *r = NULL;
    if (u->password[0]) {
        const char *argv[3] = {"AUTH", u->user[0] ? u->user : u->password, u->password};
        r = redisCommandArgv(q->c, u->user[0] ? 3 : 2, argv, NULL);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            em_errf(eb, EM_E_AUTH, "redis %s:%d: AUTH refused%s%s", u->host, u->port,
                    u->user[0] ? " for user " : "", u->user);
            if (r) freeReplyObject(r);
            return EM_E_AUTH;
        }
        freeReplyObject(r);
    }
    if (u->db) {
        r = redisCommand(q->c, "SELECT %d", u->db);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            em_errf(eb, EM_E_REDIS, "redis %s:%d: SELECT %d refused", u->host, u->port, u->db);
            if (r) freeReplyObject(r);
            return EM_E_REDIS;
        }
        freeReplyObject(r);
    }
    return EM_OK;
}

em_err em_qi_connect(struct em_queue *q, struct em_errbuf *eb)
{
    const struct em_redis_url *u = &q->url;
    if (q->c) redisFree(q->c);
    q->c = NULL;
    em_tls_relay_close(q->relay); /* after redisFree: the app end is closed */
    q->relay = NULL;
    struct timeval tv = {EM_QUEUE_TIMEOUT_MS / 1000, (EM_QUEUE_TIMEOUT_MS % 1000) * 1000};
    if (u->tls) {
        int fd = -1;
        em_err rc = em_tls_relay_open(u->host, u->port, q->ca[0] ? q->ca : NULL,
                                      EM_QUEUE_TIMEOUT_MS, &fd, &q->relay, eb);
        if (rc != EM_OK) return rc;
        q->c = redisConnectFd(fd);
        if (!q->c) close(fd);
    } else {
        q->c = redisConnectWithTimeout(u->host, u->port, tv);
    }
    if (!q->c) return em_errf(eb, EM_E_NOMEM, "redis: cannot allocate a context");
    if (q->c->err)
        return em_errf(eb, EM_E_REDIS, "redis %s:%d: %s", u->host, u->port, q->c->errstr);
    redisSetTimeout(q->c, tv);
    return hello(q, eb);
}

em_err em_queue_open(const char *url, struct em_queue **out, struct em_errbuf *eb)
{
    const char *ca = getenv("EARMARK_REDIS_CA");
    return em_queue_open_tls(url, ca && *ca ? ca : NULL, out, eb);
}

em_err em_queue_open_tls(const char *url, const char *ca_file, struct em_queue **out,
                         struct em_errbuf *eb)
{
    em_err rc;
    struct em_queue *q = calloc(1, sizeof *q);
    *out = NULL;
    if (!q) return em_errf(eb, EM_E_NOMEM, "redis: out of memory");
    if (!url || !*url) {
        rc = em_errf(eb, EM_E_ARG, "no redis url (--redis or EARMARK_REDIS_URL)");
        goto fail;
    }
    if ((rc = em_redis_url_parse(url, &q->url, eb)) != EM_OK) goto fail;
    if (ca_file && snprintf(q->ca, sizeof q->ca, "%s", ca_file) >= (int)sizeof q->ca) {
        rc = em_errf(eb, EM_E_ARG, "redis CA file path too long");
        goto fail;
    }
    if ((rc = em_qi_connect(q, eb)) != EM_OK) goto fail;
    *out = q;
    return EM_OK;
fail:
    em_queue_close(q);
    return rc;
}

void em_queue_close(struct em_queue *q)
{
    if (!q) return;
    if (q->c) redisFree(q->c);
    em_tls_relay_close(q->relay);
    memset(q, 0, sizeof *q); /* the password */
    free(q);
}

/* One command; NULL on failure with eb filled. Reconnects once. */
redisReply *em_qi_cmdv(struct em_queue *q, struct em_errbuf *eb, int argc, const char **argv,
                       const size_t *lens)
{
    for (int tries = 0; tries < 2; tries++) {
        if ((!q->c || q->c->err) && em_qi_connect(q, eb) != EM_OK) return NULL;
        redisReply *r = redisCommandArgv(q->c, argc, argv, lens);
        if (!r) {
            em_errf(eb, EM_E_REDIS, "redis %s: %s", argv[0], q->c->errstr);
            continue;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            em_errf(eb, EM_E_REDIS, "redis %s: %.*s", argv[0], (int)r->len, r->str);
            freeReplyObject(r);
            return NULL;
        }
        return r;
    }
    return NULL;
}

/* Variadic form: every argument a NUL-terminated string, list ends with NULL. */
redisReply *em_qi_cmd(struct em_queue *q, struct em_errbuf *eb, ...)
{
    const char *argv[64];
    int argc = 0;
    va_list ap;
    va_start(ap, eb);
    for (const char *s; argc < 64 && (s = va_arg(ap, const char *));)
        argv[argc++] = s;
    va_end(ap);
    return em_qi_cmdv(q, eb, argc, argv, NULL);
}

em_err em_qi_ok(struct em_queue *q, struct em_errbuf *eb, redisReply *r)
{
    (void)q;
    (void)eb; /* filled by em_qi_cmd() already */
    if (!r) return EM_E_REDIS;
    freeReplyObject(r);
    return EM_OK;
}

void em_qi_key(char *out, size_t cap, const char *batch, const char *suffix)
{
    snprintf(out, cap, "earmark:batch:%s%s", batch, suffix);
}

em_err em_qi_hset_num(struct em_queue *q, const char *batch, const char *suffix,
                      const char *field, uint64_t n, struct em_errbuf *eb)
{
    char k[128], v[24];
    em_qi_key(k, sizeof k, batch, suffix);
    snprintf(v, sizeof v, "%llu", (unsigned long long)n);
    return em_qi_ok(q, eb, em_qi_cmd(q, eb, "HSET", k, field, v, (const char *)NULL));
}

/* ---- batches ---- */

void em_batch_info_clear(struct em_batch_info *b)
{
    if (!b) return;
    free(b->prompts_json);
    free(b->gen_json);
    free(b->out);
    free(b->model);
    free(b->producer_hash);
    free(b->stalled);
    free(b->want);
    free(b->waiting);
    memset(b, 0, sizeof *b);
}

em_err em_queue_batch_create(struct em_queue *q, const struct em_batch_info *b,
                             struct em_errbuf *eb)
{
    char k[128], ma[16], tot[32], cr[32], dl[32];
    em_qi_key(k, sizeof k, b->id, "");
    snprintf(dl, sizeof dl, "%lld", (long long)b->deadline_ms);
    snprintf(ma, sizeof ma, "%u", b->max_attempts);
    snprintf(tot, sizeof tot, "%llu", (unsigned long long)b->total);
    snprintf(cr, sizeof cr, "%lld", (long long)b->created_ms);
    return em_qi_ok(q, eb,
                    em_qi_cmd(q, eb, "HSET", k, "prompts", b->prompts_json ? b->prompts_json : "[]",
                              "gen", b->gen_json ? b->gen_json : "{}", "out", b->out ? b->out : "",
                              "max_attempts", ma, "model", b->model ? b->model : "",
                              "producer_hash", b->producer_hash ? b->producer_hash : "", "total",
                              tot, "created", cr, "state", "submitting", "done", "0", "failed", "0",
                              "skipped", "0", "deadline", dl, "want", b->want ? b->want : "",
                              (const char *)NULL));
}

em_err em_queue_batch_waiting(struct em_queue *q, const char *batch, const char *msg,
                              struct em_errbuf *eb)
{
    char k[128];
    em_qi_key(k, sizeof k, batch, "");
    if (!msg) return em_qi_ok(q, eb, em_qi_cmd(q, eb, "HDEL", k, "waiting", (const char *)NULL));
    return em_qi_ok(q, eb, em_qi_cmd(q, eb, "HSET", k, "waiting", msg, (const char *)NULL));
}

em_err em_queue_batch_stalled(struct em_queue *q, const char *batch, const char *reason,
                              struct em_errbuf *eb)
{
    char k[128];
    em_qi_key(k, sizeof k, batch, "");
    if (!reason)
        return em_qi_ok(q, eb, em_qi_cmd(q, eb, "HDEL", k, "stalled", (const char *)NULL));
    return em_qi_ok(q, eb, em_qi_cmd(q, eb, "HSET", k, "stalled", reason, (const char *)NULL));
}

em_err em_queue_batch_open(struct em_queue *q, const char *batch, struct em_errbuf *eb)
{
    char k[128];
    em_qi_key(k, sizeof k, batch, "");
    em_err rc = em_qi_ok(q, eb, em_qi_cmd(q, eb, "HSET", k, "state", "open", (const char *)NULL));
    if (rc != EM_OK) return rc;
    return em_qi_ok(q, eb, em_qi_cmd(q, eb, "SADD", EM_QUEUE_ACTIVE, batch, (const char *)NULL));
}

char *em_qi_rdup(const redisReply *r)
{
    char *s = malloc(r->len + 1);
    if (s) {
        memcpy(s, r->str, r->len);
        s[r->len] = 0;
    }
    return s;
}

uint64_t em_qi_rnum(const redisReply *r)
{
    char tmp[32];
    size_t n = r->len < sizeof tmp - 1 ? r->len : sizeof tmp - 1;
    memcpy(tmp, r->str, n);
    tmp[n] = 0;
    return strtoull(tmp, NULL, 10);
}

em_err em_queue_batch_get(struct em_queue *q, const char *batch, struct em_batch_info *b,
                          struct em_errbuf *eb)
{
    char k[128];
    memset(b, 0, sizeof *b);
    if (strlen(batch) > EM_QUEUE_MAX_BATCH_ID)
        return em_errf(eb, EM_E_ARG, "batch id of %zu bytes is too long", strlen(batch));
    em_qi_key(k, sizeof k, batch, "");
    redisReply *r = em_qi_cmd(q, eb, "HGETALL", k, (const char *)NULL);
    if (!r) return EM_E_REDIS;
    em_err rc = EM_OK;
    if (r->type != REDIS_REPLY_ARRAY) {
        rc = em_errf(eb, EM_E_FORMAT, "redis HGETALL %s: unexpected reply type %d", k, r->type);
        goto out;
    }
    if (r->elements == 0) {
        rc = em_errf(eb, EM_E_NOTFOUND, "batch %s not found", batch);
        goto out;
    }
    snprintf(b->id, sizeof b->id, "%s", batch);
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *f = r->element[i], *v = r->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) continue;
        char **sp = NULL;
        if (strcmp(f->str, "prompts") == 0)
            sp = &b->prompts_json;
        else if (strcmp(f->str, "gen") == 0)
            sp = &b->gen_json;
        else if (strcmp(f->str, "out") == 0)
            sp = &b->out;
        else if (strcmp(f->str, "model") == 0)
            sp = &b->model;
        else if (strcmp(f->str, "producer_hash") == 0)
            sp = &b->producer_hash;
        else if (strcmp(f->str, "stalled") == 0)
            sp = &b->stalled;
        else if (strcmp(f->str, "want") == 0 && v->len > 0)
            sp = &b->want;
        else if (strcmp(f->str, "waiting") == 0)
            sp = &b->waiting;
        else if (strcmp(f->str, "deadline") == 0)
            b->deadline_ms = (int64_t)em_qi_rnum(v);
        else if (strcmp(f->str, "max_attempts") == 0)
            b->max_attempts = (unsigned)em_qi_rnum(v);
        else if (strcmp(f->str, "total") == 0)
            b->total = em_qi_rnum(v);
        else if (strcmp(f->str, "done") == 0)
            b->done = em_qi_rnum(v);
        else if (strcmp(f->str, "failed") == 0)
            b->failed = em_qi_rnum(v);
        else if (strcmp(f->str, "cancelled") == 0)
            b->cancelled = em_qi_rnum(v);
        else if (strcmp(f->str, "cancel") == 0)
            b->cancel = em_qi_rnum(v) != 0;
        else if (strcmp(f->str, "skipped") == 0)
            b->skipped = em_qi_rnum(v);
        else if (strcmp(f->str, "dead") == 0)
            b->dead = em_qi_rnum(v);
        else if (strcmp(f->str, "created") == 0)
            b->created_ms = (int64_t)em_qi_rnum(v);
        else if (strcmp(f->str, "completed") == 0)
            b->completed_ms = (int64_t)em_qi_rnum(v);
        else if (strcmp(f->str, "state") == 0)
            snprintf(b->state, sizeof b->state, "%s", v->str);
        if (sp && !*sp && !(*sp = em_qi_rdup(v))) {
            rc = em_errf(eb, EM_E_NOMEM, "batch %s: out of memory", batch);
            goto out;
        }
    }
    if (!b->out || !b->prompts_json)
        rc = em_errf(eb, EM_E_FORMAT, "batch %s: hash lacks out/prompts", batch);
out:
    freeReplyObject(r);
    if (rc != EM_OK) em_batch_info_clear(b);
    return rc;
}

em_err em_queue_batch_complete(struct em_queue *q, const char *batch, struct em_errbuf *eb)
{
    char k[128], now[32];
    em_qi_key(k, sizeof k, batch, "");
    snprintf(now, sizeof now, "%lld", (long long)em_wall_ms());
    em_err rc = em_qi_ok(
        q, eb,
        em_qi_cmd(q, eb, "HSET", k, "state", "complete", "completed", now, (const char *)NULL));
    if (rc != EM_OK) return rc;
    return em_qi_ok(q, eb, em_qi_cmd(q, eb, "SREM", EM_QUEUE_ACTIVE, batch, (const char *)NULL));
}

void em_queue_strv_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

em_err em_queue_active(struct em_queue *q, char ***ids, size_t *n, struct em_errbuf *eb)
{
    *ids = NULL;
    *n = 0;
    redisReply *r = em_qi_cmd(q, eb, "SMEMBERS", EM_QUEUE_ACTIVE, (const char *)NULL);
    if (!r) return EM_E_REDIS;
    em_err rc = EM_OK;
    char **v = calloc(r->elements + 1, sizeof *v);
    if (!v) rc = em_errf(eb, EM_E_NOMEM, "active batches: out of memory");
    for (size_t i = 0; v && i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING || r->element[i]->len > EM_QUEUE_MAX_BATCH_ID)
            continue;
        if (!(v[*n] = em_qi_rdup(r->element[i]))) {
            rc = em_errf(eb, EM_E_NOMEM, "active batches: out of memory");
            break;
        }
        (*n)++;
    }
    freeReplyObject(r);
    if (rc != EM_OK) {
        em_queue_strv_free(v, *n);
        *n = 0;
        return rc;
    }
    *ids = v;
    return EM_OK;
}

/* ---- submit side ---- */

em_err em_queue_add_items(struct em_queue *q, const char *batch, const struct em_queue_item *it,
                          size_t n, struct em_errbuf *eb)
{
    char lk[128];
    em_qi_key(lk, sizeof lk, batch, ":items");
    /* Pipelined in chunks: one round trip per chunk, not per item. */
    for (size_t base = 0; base < n; base += 256) {
        size_t m = n - base < 256 ? n - base : 256, sent = 0;
        em_err rc = EM_OK;
        if ((!q->c || q->c->err) && (rc = em_qi_connect(q, eb)) != EM_OK) return rc;
        for (size_t i = 0; i < m; i++) {
            const struct em_queue_item *x = &it[base + i];
            if (redisAppendCommand(q->c, "RPUSH %s %s\t%s", lk, x->item_id, x->source) !=
                    REDIS_OK ||
                redisAppendCommand(q->c,
                                   "XADD " EM_QUEUE_STREAM " * batch %s item %s source %s meta %s "
                                   "ref %s attempt 1",
                                   batch, x->item_id, x->source, x->meta_json ? x->meta_json : "",
                                   x->ref ? x->ref : "") != REDIS_OK)
                return em_errf(eb, EM_E_NOMEM, "redis: cannot queue command");
            sent += 2;
        }
        for (size_t i = 0; i < sent; i++) {
            void *rep = NULL;
            if (redisGetReply(q->c, &rep) != REDIS_OK || !rep)
                return em_errf(eb, EM_E_REDIS, "redis pipeline: %s", q->c->errstr);
            redisReply *r = rep;
            if (r->type == REDIS_REPLY_ERROR && rc == EM_OK)
                rc = em_errf(eb, EM_E_REDIS, "redis: %.*s", (int)r->len, r->str);
            freeReplyObject(r);
        }
        if (rc != EM_OK) return rc;
    }
    return EM_OK;
}

em_err em_queue_add_skipped(struct em_queue *q, const char *batch, const char *item_id,
                            const char *source, const char *output, struct em_errbuf *eb)
{
    char lk[128], sk[128], bk[128], ok[128];
    em_qi_key(lk, sizeof lk, batch, ":items");
    em_qi_key(sk, sizeof sk, batch, ":status");
    em_qi_key(bk, sizeof bk, batch, "");
    em_qi_key(ok, sizeof ok, batch, ":output");
    size_t rl = strlen(item_id) + strlen(source) + 2;
    char *row = malloc(rl);
    if (!row) return em_errf(eb, EM_E_NOMEM, "redis: out of memory");
    snprintf(row, rl, "%s\t%s", item_id, source);
    em_err rc = em_qi_ok(q, eb,
                         em_qi_cmd(q, eb, "EVAL", SKIP_LUA, "4", lk, sk, bk, ok, item_id, row,
                                   output, (const char *)NULL));
    free(row);
    return rc;
}

em_err em_queue_inflight_set(struct em_queue *q, const char *batch, const char *consumer,
                             uint64_t n, struct em_errbuf *eb)
{
    return em_qi_hset_num(q, batch, ":inflight", consumer, n, eb);
}

em_err em_queue_inflight_sum(struct em_queue *q, const char *batch, uint64_t *n,
                             struct em_errbuf *eb)
{
    char k[128];
    em_qi_key(k, sizeof k, batch, ":inflight");
    *n = 0;
    redisReply *r = em_qi_cmd(q, eb, "HVALS", k, (const char *)NULL);
    if (!r) return EM_E_REDIS;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING) *n += em_qi_rnum(r->element[i]);
    freeReplyObject(r);
    return EM_OK;
}

void em_queue_rows_free(struct em_queue_row *r, size_t n)
{
    for (size_t i = 0; r && i < n; i++) {
        free(r[i].item);
        free(r[i].source);
        free(r[i].status);
        free(r[i].output);
    }
    free(r);
}

/* HMGET hash items...; fills field (status or output) of rows, "" where absent. */
static em_err hmget_rows(struct em_queue *q, const char *hash, struct em_queue_row *rows, size_t n,
                         int which, struct em_errbuf *eb)
{
    const char **argv = malloc((n + 2) * sizeof *argv);
    if (!argv) return em_errf(eb, EM_E_NOMEM, "redis: out of memory");
    argv[0] = "HMGET";
    argv[1] = hash;
    for (size_t i = 0; i < n; i++)
        argv[i + 2] = rows[i].item;
    redisReply *r = em_qi_cmdv(q, eb, (int)n + 2, argv, NULL);
    free(argv);
    if (!r) return EM_E_REDIS;
    em_err rc = EM_OK;
    for (size_t i = 0; i < n && rc == EM_OK; i++) {
        const redisReply *e =
            (r->type == REDIS_REPLY_ARRAY && i < r->elements) ? r->element[i] : NULL;
        char *s = (e && e->type == REDIS_REPLY_STRING) ? em_qi_rdup(e) : strdup("");
        if (!s)
            rc = em_errf(eb, EM_E_NOMEM, "redis: out of memory");
        else if (which == 0)
            rows[i].status = s;
        else
            rows[i].output = s;
    }
    freeReplyObject(r);
    return rc;
}

em_err em_queue_rows(struct em_queue *q, const char *batch, size_t start, size_t count,
                     struct em_queue_row **rows, size_t *n, struct em_errbuf *eb)
{
    char lk[128], sk[128], ok[128], a[24], b[24];
    em_qi_key(lk, sizeof lk, batch, ":items");
    em_qi_key(sk, sizeof sk, batch, ":status");
    em_qi_key(ok, sizeof ok, batch, ":output");
    *rows = NULL;
    *n = 0;
    if (count == 0) return EM_OK;
    snprintf(a, sizeof a, "%zu", start);
    snprintf(b, sizeof b, "%zu", start + count - 1);
    redisReply *r = em_qi_cmd(q, eb, "LRANGE", lk, a, b, (const char *)NULL);
    if (!r) return EM_E_REDIS;
    em_err rc = EM_OK;
    size_t m = 0;
    struct em_queue_row *v = r->elements ? calloc(r->elements, sizeof *v) : NULL;
    if (r->elements && !v) rc = em_errf(eb, EM_E_NOMEM, "redis: out of memory");
    for (size_t i = 0; rc == EM_OK && i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_STRING) continue;
        const char *tab = memchr(e->str, '\t', e->len);
        if (!tab) continue;
        size_t il = (size_t)(tab - e->str);
        v[m].item = malloc(il + 1);
        v[m].source = strdup(tab + 1);
        if (!v[m].item || !v[m].source) {
            m++;
            rc = em_errf(eb, EM_E_NOMEM, "redis: out of memory");
            break;
        }
        memcpy(v[m].item, e->str, il);
        v[m].item[il] = 0;
        m++;
    }
    freeReplyObject(r);
    if (rc == EM_OK && m) rc = hmget_rows(q, sk, v, m, 0, eb);
    if (rc == EM_OK && m) rc = hmget_rows(q, ok, v, m, 1, eb);
    if (rc != EM_OK) {
        em_queue_rows_free(v, m);
        return rc;
    }
    *rows = v;
    *n = m;
    return EM_OK;
}

em_err em_queue_lag(struct em_queue *q, long long *lag, struct em_errbuf *eb)
{
    *lag = -1;
    redisReply *r = em_qi_cmd(q, eb, "XINFO", "GROUPS", EM_QUEUE_STREAM, (const char *)NULL);
    if (!r) return EM_E_REDIS;
    for (size_t g = 0; r->type == REDIS_REPLY_ARRAY && g < r->elements; g++) {
        const redisReply *e = r->element[g];
        int ours = 0;
        long long l = -1;
        for (size_t i = 0; e->type == REDIS_REPLY_ARRAY && i + 1 < e->elements; i += 2) {
            const redisReply *f = e->element[i], *v = e->element[i + 1];
            if (f->type != REDIS_REPLY_STRING) continue;
            if (strcmp(f->str, "name") == 0 && v->type == REDIS_REPLY_STRING)
                ours = strcmp(v->str, EM_QUEUE_GROUP) == 0;
            if (strcmp(f->str, "lag") == 0 && v->type == REDIS_REPLY_INTEGER) l = v->integer;
        }
        if (ours) *lag = l;
    }
    freeReplyObject(r);
    return EM_OK;
}

em_err em_queue_dead_len(struct em_queue *q, long long *n, struct em_errbuf *eb)
{
    *n = 0;
    redisReply *r = em_qi_cmd(q, eb, "XLEN", EM_QUEUE_DEAD, (const char *)NULL);
    if (!r) return EM_E_REDIS;
    em_err rc = EM_OK;
    if (r->type == REDIS_REPLY_INTEGER) *n = r->integer;
    else rc = em_errf(eb, EM_E_REDIS, "redis XLEN %s: unexpected reply type %d", EM_QUEUE_DEAD,
                      r->type);
    freeReplyObject(r);
    return rc;
}
