/* coordinator/queue_stream.c - the coordinator's side of the items stream: reading new and
 * pending entries, lease renewal and reclaiming, settle-once + XACK, attempt bookkeeping,
 * dead letters. Layout in queue.h. */
#include <hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/queue_impl.h"

/* status + counter set once, optional ack: KEYS status, batch, stream;
 * ARGV item, "ok"|"failed", counter field, stream id or "", group */
static const char *SETTLE_LUA =
    "if redis.call('EXISTS', KEYS[2]) == 0 then return -1 end\n" /* batch gone: write nothing */
    "local new = redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])\n"
    "if new == 1 then redis.call('HINCRBY', KEYS[2], ARGV[3], 1) end\n"
    "if ARGV[4] ~= '' then redis.call('XACK', KEYS[3], ARGV[5], ARGV[4]) end\n"
    "return new\n";

/* ---- coordinator side ---- */

void em_queue_entries_free(struct em_queue_entry *e, size_t n)
{
    for (size_t i = 0; e && i < n; i++) {
        free(e[i].source);
        free(e[i].meta_json);
        free(e[i].ref);
    }
    free(e);
}

em_err em_queue_ensure_group(struct em_queue *q, struct em_errbuf *eb)
{
    struct em_errbuf tmp = {{0}};
    redisReply *r = em_qi_cmd(q, &tmp, "XGROUP", "CREATE", EM_QUEUE_STREAM, EM_QUEUE_GROUP, "0",
                              "MKSTREAM", (const char *)NULL);
    if (r) {
        freeReplyObject(r);
        return EM_OK;
    }
    if (strstr(tmp.msg, "BUSYGROUP")) return EM_OK;
    return em_errf(eb, EM_E_REDIS, "%s", tmp.msg);
}

int em_queue_id_ok(const char *s, size_t max)
{
    return strlen(s) <= max && em_id_valid(s);
}

/* Fills e from one [id, [f, v, ...]] element. 0 ok, -1 malformed, -2 out of memory. */
static int parse_entry(const redisReply *el, struct em_queue_entry *e)
{
    memset(e, 0, sizeof *e);
    if (el->type != REDIS_REPLY_ARRAY || el->elements != 2 ||
        el->element[0]->type != REDIS_REPLY_STRING || el->element[0]->len >= sizeof e->stream_id)
        return -1;
    snprintf(e->stream_id, sizeof e->stream_id, "%s", el->element[0]->str);
    const redisReply *fv = el->element[1];
    if (fv->type != REDIS_REPLY_ARRAY) return -1; /* deleted entry: nil fields */
    for (size_t i = 0; i + 1 < fv->elements; i += 2) {
        const redisReply *f = fv->element[i], *v = fv->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) return -1;
        char **sp = NULL;
        if (strcmp(f->str, "batch") == 0) {
            if (v->len > EM_QUEUE_MAX_BATCH_ID) return -1;
            memcpy(e->batch, v->str, v->len + 1);
        } else if (strcmp(f->str, "item") == 0) {
            if (v->len > EM_QUEUE_MAX_ITEM_ID) return -1;
            memcpy(e->item, v->str, v->len + 1);
        } else if (strcmp(f->str, "source") == 0)
            sp = &e->source;
        else if (strcmp(f->str, "meta") == 0)
            sp = &e->meta_json;
        else if (strcmp(f->str, "ref") == 0)
            sp = &e->ref;
        if (sp && !*sp && !(*sp = em_qi_rdup(v))) return -2;
    }
    if (!e->meta_json && !(e->meta_json = strdup(""))) return -2;
    if (!e->ref && !(e->ref = strdup(""))) return -2;
    if (!em_queue_id_ok(e->batch, EM_QUEUE_MAX_BATCH_ID) ||
        !em_queue_id_ok(e->item, EM_QUEUE_MAX_ITEM_ID) || !e->source || !e->source[0])
        return -1;
    return 0;
}

/* Parses an array of entries; malformed ones are acked + dead-lettered and left out. */
static em_err take_entries(struct em_queue *q, const redisReply *arr, struct em_queue_entry **out,
                           size_t *n, size_t *bad, struct em_errbuf *eb)
{
    *out = NULL;
    *n = 0;
    if (!arr || arr->type != REDIS_REPLY_ARRAY || arr->elements == 0) return EM_OK;
    struct em_queue_entry *v = calloc(arr->elements, sizeof *v);
    if (!v) return em_errf(eb, EM_E_NOMEM, "redis entries: out of memory");
    for (size_t i = 0; i < arr->elements; i++) {
        int pr = parse_entry(arr->element[i], &v[*n]);
        if (pr == 0) {
            (*n)++;
            continue;
        }
        char sid[48];
        snprintf(sid, sizeof sid, "%s", v[*n].stream_id);
        free(v[*n].source);
        free(v[*n].meta_json);
        free(v[*n].ref);
        memset(&v[*n], 0, sizeof v[*n]);
        if (pr == -2) {
            em_queue_entries_free(v, *n);
            *n = 0;
            return em_errf(eb, EM_E_NOMEM, "redis entries: out of memory");
        }
        if (bad) (*bad)++;
        if (sid[0]) {
            struct em_errbuf tmp;
            em_queue_dead(q, "", "", "", 0, "EM_E_FORMAT", "malformed or deleted stream entry",
                          &tmp);
            em_queue_ack(q, sid, &tmp);
        }
    }
    *out = v;
    return EM_OK;
}

em_err em_queue_read(struct em_queue *q, const char *consumer, const char *after, size_t count,
                     struct em_queue_entry **out, size_t *n, size_t *bad, struct em_errbuf *eb)
{
    char cnt[24];
    snprintf(cnt, sizeof cnt, "%zu", count ? count : 1);
    *out = NULL;
    *n = 0;
    redisReply *r = em_qi_cmd(q, eb, "XREADGROUP", "GROUP", EM_QUEUE_GROUP, consumer, "COUNT", cnt,
                              "STREAMS", EM_QUEUE_STREAM, after ? after : ">", (const char *)NULL);
    if (!r) return EM_E_REDIS;
    em_err rc = EM_OK;
    /* RESP2: [[stream, [entries]]] or nil when nothing is new */
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1) {
        const redisReply *s = r->element[0];
        if (s->type == REDIS_REPLY_ARRAY && s->elements == 2)
            rc = take_entries(q, s->element[1], out, n, bad, eb);
        else
            rc = em_errf(eb, EM_E_FORMAT, "redis XREADGROUP: unexpected reply shape");
    }
    freeReplyObject(r);
    return rc;
}

em_err em_queue_autoclaim(struct em_queue *q, const char *consumer, int64_t min_idle_ms,
                          size_t count, struct em_queue_entry **out, size_t *n, size_t *bad,
                          struct em_errbuf *eb)
{
    char idle[24], cnt[24];
    snprintf(idle, sizeof idle, "%lld", (long long)(min_idle_ms < 0 ? 0 : min_idle_ms));
    snprintf(cnt, sizeof cnt, "%zu", count ? count : 1);
    *out = NULL;
    *n = 0;
    redisReply *r = em_qi_cmd(q, eb, "XAUTOCLAIM", EM_QUEUE_STREAM, EM_QUEUE_GROUP, consumer, idle,
                              "0-0", "COUNT", cnt, (const char *)NULL);
    if (!r) return EM_E_REDIS;
    em_err rc = EM_OK;
    /* [next cursor, [entries], [deleted ids]]; one pass of COUNT is enough: the next call
     * (the coordinator calls this periodically) continues. Deleted ids are already gone
     * from the PEL. */
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2)
        rc = take_entries(q, r->element[1], out, n, bad, eb);
    else
        rc = em_errf(eb, EM_E_FORMAT, "redis XAUTOCLAIM: unexpected reply shape");
    freeReplyObject(r);
    return rc;
}

em_err em_queue_touch(struct em_queue *q, const char *consumer, char *const *ids, size_t n,
                      struct em_errbuf *eb)
{
    for (size_t base = 0; base < n; base += 50) {
        const char *argv[64] = {"XCLAIM", EM_QUEUE_STREAM, EM_QUEUE_GROUP, consumer, "0"};
        int argc = 5;
        for (size_t i = base; i < n && i < base + 50; i++)
            argv[argc++] = ids[i];
        argv[argc++] = "JUSTID";
        em_err rc = em_qi_ok(q, eb, em_qi_cmdv(q, eb, argc, argv, NULL));
        if (rc != EM_OK) return rc;
    }
    return EM_OK;
}

em_err em_queue_settle(struct em_queue *q, const char *batch, const char *item, int ok,
                       const char *stream_id, int *first, struct em_errbuf *eb)
{
    char sk[128], bk[128];
    em_qi_key(sk, sizeof sk, batch, ":status");
    em_qi_key(bk, sizeof bk, batch, "");
    redisReply *r = em_qi_cmd(q, eb, "EVAL", SETTLE_LUA, "3", sk, bk, EM_QUEUE_STREAM, item,
                              ok ? "ok" : "failed", ok ? "done" : "failed",
                              stream_id ? stream_id : "", EM_QUEUE_GROUP, (const char *)NULL);
    if (!r) return EM_E_REDIS;
    int gone = r->type == REDIS_REPLY_INTEGER && r->integer == -1;
    if (first) *first = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    if (gone) return em_errf(eb, EM_E_NOTFOUND, "batch %s no longer exists in Redis", batch);
    return EM_OK;
}

em_err em_queue_ack(struct em_queue *q, const char *stream_id, struct em_errbuf *eb)
{
    return em_qi_ok(
        q, eb,
        em_qi_cmd(q, eb, "XACK", EM_QUEUE_STREAM, EM_QUEUE_GROUP, stream_id, (const char *)NULL));
}

em_err em_queue_item_status(struct em_queue *q, const char *batch, const char *item, char out[16],
                            struct em_errbuf *eb)
{
    char sk[128];
    em_qi_key(sk, sizeof sk, batch, ":status");
    redisReply *r = em_qi_cmd(q, eb, "HGET", sk, item, (const char *)NULL);
    if (!r) return EM_E_REDIS;
    em_err rc = EM_OK;
    if (r->type == REDIS_REPLY_STRING)
        snprintf(out, 16, "%.*s", (int)(r->len < 15 ? r->len : 15), r->str);
    else
        rc = EM_E_NOTFOUND;
    freeReplyObject(r);
    return rc;
}

em_err em_queue_tries_get(struct em_queue *q, const char *batch, const char *item,
                          struct em_queue_tries *t, struct em_errbuf *eb)
{
    char tk[128], lf[EM_QUEUE_MAX_ITEM_ID + 8], ef[EM_QUEUE_MAX_ITEM_ID + 8];
    char ff[EM_QUEUE_MAX_ITEM_ID + 8], sf[EM_QUEUE_MAX_ITEM_ID + 8];
    em_qi_key(tk, sizeof tk, batch, ":tries");
    snprintf(lf, sizeof lf, "%s:lost", item);
    snprintf(ef, sizeof ef, "%s:err", item);
    snprintf(ff, sizeof ff, "%s:fails", item);
    snprintf(sf, sizeof sf, "%s:lease", item);
    memset(t, 0, sizeof *t);
    redisReply *r = em_qi_cmd(q, eb, "HMGET", tk, item, lf, ef, ff, sf, (const char *)NULL);
    if (!r) return EM_E_REDIS;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 5) {
        const redisReply *l = r->element[4];
        if (l->type == REDIS_REPLY_STRING && l->len <= EM_QUEUE_MAX_LEASE)
            snprintf(t->lease, sizeof t->lease, "%.*s", (int)l->len, l->str);
        if (r->element[0]->type == REDIS_REPLY_STRING)
            t->attempts = (unsigned)em_qi_rnum(r->element[0]);
        if (r->element[1]->type == REDIS_REPLY_STRING)
            t->lost = (unsigned)em_qi_rnum(r->element[1]);
        if (r->element[3]->type == REDIS_REPLY_STRING)
            t->fails = (unsigned)em_qi_rnum(r->element[3]);
        const redisReply *e = r->element[2];
        if (e->type == REDIS_REPLY_STRING) {
            const char *tab = memchr(e->str, '\t', e->len);
            size_t cl = tab ? (size_t)(tab - e->str) : e->len;
            snprintf(t->err_class, sizeof t->err_class, "%.*s", (int)cl, e->str);
            if (tab) snprintf(t->err_msg, sizeof t->err_msg, "%s", tab + 1);
        }
    }
    freeReplyObject(r);
    return EM_OK;
}

em_err em_queue_tries_set(struct em_queue *q, const char *batch, const char *item,
                          unsigned attempts, const char *lease, struct em_errbuf *eb)
{
    char tk[128], sf[EM_QUEUE_MAX_ITEM_ID + 8], a[16];
    em_qi_key(tk, sizeof tk, batch, ":tries");
    snprintf(sf, sizeof sf, "%s:lease", item);
    snprintf(a, sizeof a, "%u", attempts);
    return em_qi_ok(q, eb,
                    em_qi_cmd(q, eb, "HSET", tk, item, a, sf, lease ? lease : "", (const char *)NULL));
}

em_err em_queue_tries_fail(struct em_queue *q, const char *batch, const char *item, int lost,
                           const char *err_class, const char *err_msg, struct em_errbuf *eb)
{
    char tk[128], lf[EM_QUEUE_MAX_ITEM_ID + 8], ef[EM_QUEUE_MAX_ITEM_ID + 8], ev[320];
    char ff[EM_QUEUE_MAX_ITEM_ID + 8];
    em_qi_key(tk, sizeof tk, batch, ":tries");
    snprintf(lf, sizeof lf, "%s:lost", item);
    snprintf(ef, sizeof ef, "%s:err", item);
    snprintf(ff, sizeof ff, "%s:fails", item);
    snprintf(ev, sizeof ev, "%s\t%s", err_class ? err_class : "EM_E_INTERNAL",
             err_msg ? err_msg : "");
    char sf[EM_QUEUE_MAX_ITEM_ID + 8];
    snprintf(sf, sizeof sf, "%s:lease", item);
    em_err rc = em_qi_ok(q, eb, em_qi_cmd(q, eb, "HSET", tk, ef, ev, (const char *)NULL));
    if (rc == EM_OK) rc = em_qi_ok(q, eb, em_qi_cmd(q, eb, "HDEL", tk, sf, (const char *)NULL));
    if (rc == EM_OK)
        rc = em_qi_ok(q, eb, em_qi_cmd(q, eb, "HINCRBY", tk, ff, "1", (const char *)NULL));
    if (rc == EM_OK && lost)
        rc = em_qi_ok(q, eb, em_qi_cmd(q, eb, "HINCRBY", tk, lf, "1", (const char *)NULL));
    return rc;
}

em_err em_queue_dead(struct em_queue *q, const char *batch, const char *item, const char *source,
                     unsigned attempts, const char *err_class, const char *err_msg,
                     struct em_errbuf *eb)
{
    char a[16], bk[128];
    snprintf(a, sizeof a, "%u", attempts);
    em_err rc = em_qi_ok(q, eb,
                         em_qi_cmd(q, eb, "XADD", EM_QUEUE_DEAD, "*", "batch", batch, "item", item,
                                   "source", source ? source : "", "attempts", a, "class",
                                   err_class ? err_class : "", "message", err_msg ? err_msg : "",
                                   (const char *)NULL));
    if (rc != EM_OK || !batch[0]) return rc;
    em_qi_key(bk, sizeof bk, batch, "");
    return em_qi_ok(q, eb, em_qi_cmd(q, eb, "HINCRBY", bk, "dead", "1", (const char *)NULL));
}
