/* coordinator/queue_life.c - a batch's end of life in Redis: cancel (request, then the rest
 * of the items settled "cancelled"), delete, listing, retention (PEXPIRE of a finished
 * batch's keys) and stream trimming. Each change that must be atomic is one Lua script, so
 * running coordinators, `status` and these commands never see half a change. */
#include <hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "coordinator/queue_impl.h"

/* the keys of one batch, hash first: every script below takes them in this order */
static const char *const SUFFIXES[] = {"", ":items", ":status", ":output", ":inflight", ":tries"};
#define NKEYS (sizeof SUFFIXES / sizeof *SUFFIXES)

static void batch_keys(const char *batch, char k[NKEYS][128])
{
    for (size_t i = 0; i < NKEYS; i++)
        em_qi_key(k[i], sizeof k[i], batch, SUFFIXES[i]);
}

/* Runs script with the batch's keys and extra ARGV (NULL-ended). */
static redisReply *eval_batch(struct em_queue *q, const char *batch, const char *script,
                              const char *const *args, struct em_errbuf *eb)
{
    char k[NKEYS][128], nk[8];
    const char *argv[NKEYS + 8];
    size_t n = 0;
    batch_keys(batch, k);
    snprintf(nk, sizeof nk, "%zu", NKEYS);
    argv[n++] = "EVAL";
    argv[n++] = script;
    argv[n++] = nk;
    for (size_t i = 0; i < NKEYS; i++) argv[n++] = k[i];
    for (size_t i = 0; args && args[i] && n < sizeof argv / sizeof *argv; i++) argv[n++] = args[i];
    return em_qi_cmdv(q, eb, (int)n, argv, NULL);
}

static const char *CANCEL_LUA =
    "local st = redis.call('HGET', KEYS[1], 'state')\n"
    "if not st then return -1 end\n"
    "if st == 'complete' or st == 'cancelled' then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'cancel', '1')\n"
    "return 1\n";

em_err em_queue_batch_cancel(struct em_queue *q, const char *batch, int *requested,
                             struct em_errbuf *eb)
{
    redisReply *r = eval_batch(q, batch, CANCEL_LUA, NULL, eb);
    if (!r) return EM_E_REDIS;
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -2;
    freeReplyObject(r);
    if (v == -1) return em_errf(eb, EM_E_NOTFOUND, "batch %s not found", batch);
    if (v < 0) return em_errf(eb, EM_E_FORMAT, "cancel %s: unexpected reply", batch);
    *requested = v == 1;
    return EM_OK;
}

/* Every item without a status gets "cancelled"; the count goes to the hash's "cancelled". */
static const char *SETTLE_REST_LUA =
    "local rows = redis.call('LRANGE', KEYS[2], 0, -1)\n"
    "local n = 0\n"
    "for _, row in ipairs(rows) do\n"
    "  local tab = string.find(row, '\\t', 1, true)\n"
    "  if tab then\n"
    "    n = n + redis.call('HSETNX', KEYS[3], string.sub(row, 1, tab - 1), 'cancelled')\n"
    "  end\n"
    "end\n"
    "if n > 0 then redis.call('HINCRBY', KEYS[1], 'cancelled', n) end\n"
    "return n\n";

em_err em_queue_cancel_rest(struct em_queue *q, const char *batch, uint64_t *n,
                            struct em_errbuf *eb)
{
    redisReply *r = eval_batch(q, batch, SETTLE_REST_LUA, NULL, eb);
    if (!r) return EM_E_REDIS;
    *n = r->type == REDIS_REPLY_INTEGER && r->integer > 0 ? (uint64_t)r->integer : 0;
    freeReplyObject(r);
    return EM_OK;
}

static const char *DELETE_LUA =
    "local st = redis.call('HGET', KEYS[1], 'state')\n"
    "if not st then return -1 end\n"
    "if st ~= 'complete' and st ~= 'cancelled' and ARGV[2] ~= '1' then return -2 end\n"
    "for i = 1, #KEYS do redis.call('DEL', KEYS[i]) end\n"
    "redis.call('SREM', ARGV[1], ARGV[3])\n"
    "return 1\n";

em_err em_queue_batch_delete(struct em_queue *q, const char *batch, int force,
                             struct em_errbuf *eb)
{
    const char *args[] = {EM_QUEUE_ACTIVE, force ? "1" : "0", batch, NULL};
    redisReply *r = eval_batch(q, batch, DELETE_LUA, args, eb);
    if (!r) return EM_E_REDIS;
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    if (v == -1) return em_errf(eb, EM_E_NOTFOUND, "batch %s not found", batch);
    if (v == -2)
        return em_errf(eb, EM_E_ARG, "batch %s is still running; `earmark cancel %s` first",
                       batch, batch);
    return v == 1 ? EM_OK : em_errf(eb, EM_E_FORMAT, "delete %s: unexpected reply", batch);
}

static const char *FINISH_LUA =
    "redis.call('HSET', KEYS[1], 'state', ARGV[1], 'completed', ARGV[2])\n"
    "redis.call('HDEL', KEYS[1], 'stalled')\n"
    "redis.call('SREM', ARGV[3], ARGV[4])\n"
    "if tonumber(ARGV[5]) > 0 then\n"
    "  for i = 1, #KEYS do redis.call('PEXPIRE', KEYS[i], ARGV[5]) end\n"
    "end\n"
    "return 1\n";

em_err em_queue_batch_finish(struct em_queue *q, const char *batch, const char *state,
                             int64_t retention_ms, struct em_errbuf *eb)
{
    char now[32], ttl[32];
    snprintf(now, sizeof now, "%lld", (long long)em_wall_ms());
    snprintf(ttl, sizeof ttl, "%lld", (long long)(retention_ms > 0 ? retention_ms : 0));
    const char *args[] = {state, now, EM_QUEUE_ACTIVE, batch, ttl, NULL};
    return em_qi_ok(q, eb, eval_batch(q, batch, FINISH_LUA, args, eb));
}

em_err em_queue_batch_ids(struct em_queue *q, char ***ids, size_t *n, struct em_errbuf *eb)
{
    static const char prefix[] = "earmark:batch:";
    *ids = NULL;
    *n = 0;
    size_t cap = 0;
    char cursor[32] = "0";
    em_err rc = EM_OK;
    do {
        redisReply *r = em_qi_cmd(q, eb, "SCAN", cursor, "MATCH", "earmark:batch:*", "COUNT",
                                  "1000", (const char *)NULL);
        if (!r) return EM_E_REDIS;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(r);
            rc = em_errf(eb, EM_E_FORMAT, "SCAN: unexpected reply");
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        for (size_t i = 0; rc == EM_OK && i < r->element[1]->elements; i++) {
            const redisReply *k = r->element[1]->element[i];
            const char *id = k->type == REDIS_REPLY_STRING ? k->str + sizeof prefix - 1 : NULL;
            /* the batch hash only: its siblings have a ':' after the id */
            if (!id || k->len < sizeof prefix || strchr(id, ':') ||
                !em_queue_id_ok(id, EM_QUEUE_MAX_BATCH_ID))
                continue;
            if (*n == cap) {
                size_t nc = cap ? cap * 2 : 32;
                char **v = realloc(*ids, nc * sizeof *v);
                if (!v) {
                    rc = em_errf(eb, EM_E_NOMEM, "batch list: out of memory");
                    break;
                }
                *ids = v;
                cap = nc;
            }
            if (!((*ids)[*n] = strdup(id))) rc = em_errf(eb, EM_E_NOMEM, "batch list: out of memory");
            else (*n)++;
        }
        freeReplyObject(r);
    } while (rc == EM_OK && strcmp(cursor, "0") != 0);
    if (rc != EM_OK) {
        em_queue_strv_free(*ids, *n);
        *ids = NULL;
        *n = 0;
    }
    return rc;
}

/* Entries below the group's oldest pending entry and its last delivered one are settled
 * (acknowledged) or were never ours to keep: XTRIM MINID removes them. */
static const char *TRIM_LUA =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n"
    "local groups = redis.call('XINFO', 'GROUPS', KEYS[1])\n"
    "local min = nil\n"
    "for _, g in ipairs(groups) do\n"
    "  local last, name = nil, nil\n"
    "  for i = 1, #g, 2 do\n"
    "    if g[i] == 'last-delivered-id' then last = g[i + 1] end\n"
    "    if g[i] == 'name' then name = g[i + 1] end\n"
    "  end\n"
    "  local p = redis.call('XPENDING', KEYS[1], name)\n"
    "  local lo = last\n"
    "  if p[1] > 0 then lo = p[2] end\n"
    "  local function lt(a, b)\n"
    "    local am, as = string.match(a, '(%d+)-(%d+)')\n"
    "    local bm, bs = string.match(b, '(%d+)-(%d+)')\n"
    "    am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)\n"
    "    return am < bm or (am == bm and as < bs)\n"
    "  end\n"
    "  if lo and (not min or lt(lo, min)) then min = lo end\n"
    "end\n"
    "local n = 0\n"
    "if min then n = redis.call('XTRIM', KEYS[1], 'MINID', min) end\n"
    "redis.call('XTRIM', KEYS[2], 'MAXLEN', '~', ARGV[1])\n"
    "return n\n";

em_err em_queue_trim(struct em_queue *q, uint64_t *n, struct em_errbuf *eb)
{
    char dmax[32];
    snprintf(dmax, sizeof dmax, "%u", EM_QUEUE_DEAD_MAX);
    redisReply *r = em_qi_cmd(q, eb, "EVAL", TRIM_LUA, "2", EM_QUEUE_STREAM, EM_QUEUE_DEAD, dmax,
                              (const char *)NULL);
    if (!r) return EM_E_REDIS;
    *n = r->type == REDIS_REPLY_INTEGER && r->integer > 0 ? (uint64_t)r->integer : 0;
    freeReplyObject(r);
    return EM_OK;
}
