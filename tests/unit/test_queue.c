/* tests/unit/test_queue.c - coordinator/queue against a real redis-server: submit-side
 * writes, coordinator-side reads, settle-once + ack, re-reading own pending entries after a
 * "crash", autoclaim by another consumer, malformed entries, rows for manifest.jsonl. */
#include <CUnit/CUnit.h>
#include <hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/queue.h"
#include "tests/helpers/servers.h"

static struct th_server redis;
static struct em_queue *q;

static int init(void)
{
    if (th_redis_start(&redis) != 0) return 1;
    return em_queue_open(redis.url, &q, NULL) != EM_OK;
}

static int clean(void)
{
    em_queue_close(q);
    th_server_stop(&redis);
    return 0;
}

static void raw(const char *fmt, const char *a, const char *b)
{
    redisContext *c = redisConnect("127.0.0.1", redis.port);
    CU_ASSERT_FATAL(c && !c->err);
    redisReply *r = redisCommand(c, fmt, a, b);
    CU_ASSERT_PTR_NOT_NULL(r);
    if (r) freeReplyObject(r);
    redisFree(c);
}

static void make_batch(const char *id, unsigned total)
{
    struct em_batch_info b = {0};
    snprintf(b.id, sizeof b.id, "%s", id);
    b.prompts_json = "[{\"name\":\"caption\",\"text\":\"\"}]";
    b.out = "file:///tmp/out";
    b.model = "m";
    b.producer_hash = "ph";
    b.max_attempts = 3;
    b.total = total;
    b.created_ms = 1000;
    CU_ASSERT_EQUAL_FATAL(em_queue_batch_create(q, &b, NULL), EM_OK);
}

static void bad_urls_are_refused(void)
{
    struct em_queue *x = NULL;
    CU_ASSERT_EQUAL(em_queue_open("redis://", &x, NULL), EM_E_ARG);
    CU_ASSERT_EQUAL(em_queue_open("redis://h:99999", &x, NULL), EM_E_ARG);
    CU_ASSERT_EQUAL(em_queue_open("", &x, NULL), EM_E_ARG);
    CU_ASSERT_PTR_NULL(x);
    /* nothing listens on port 1 */
    CU_ASSERT_EQUAL(em_queue_open("redis://127.0.0.1:1", &x, NULL), EM_E_REDIS);
}

static void batch_hash_round_trips(void)
{
    make_batch("b-hash", 7);
    struct em_batch_info b;
    CU_ASSERT_EQUAL_FATAL(em_queue_batch_get(q, "b-hash", &b, NULL), EM_OK);
    CU_ASSERT_STRING_EQUAL(b.state, "submitting");
    CU_ASSERT_EQUAL(b.total, 7);
    CU_ASSERT_EQUAL(b.max_attempts, 3);
    CU_ASSERT_STRING_EQUAL(b.out, "file:///tmp/out");
    CU_ASSERT_STRING_EQUAL(b.producer_hash, "ph");
    em_batch_info_clear(&b);
    CU_ASSERT_EQUAL(em_queue_batch_open(q, "b-hash", NULL), EM_OK);
    char **ids;
    size_t n;
    CU_ASSERT_EQUAL_FATAL(em_queue_active(q, &ids, &n, NULL), EM_OK);
    int seen = 0;
    for (size_t i = 0; i < n; i++) seen += strcmp(ids[i], "b-hash") == 0;
    CU_ASSERT_EQUAL(seen, 1);
    em_queue_strv_free(ids, n);
    CU_ASSERT_EQUAL(em_queue_batch_complete(q, "b-hash", NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_queue_batch_get(q, "b-hash", &b, NULL), EM_OK);
    CU_ASSERT_STRING_EQUAL(b.state, "complete");
    CU_ASSERT_TRUE(b.completed_ms > 0);
    em_batch_info_clear(&b);
    CU_ASSERT_EQUAL_FATAL(em_queue_active(q, &ids, &n, NULL), EM_OK);
    for (size_t i = 0; i < n; i++) CU_ASSERT_STRING_NOT_EQUAL(ids[i], "b-hash");
    em_queue_strv_free(ids, n);
    CU_ASSERT_EQUAL(em_queue_batch_get(q, "b-nope", &b, NULL), EM_E_NOTFOUND);
}

/* Reads everything new for consumer (loops over COUNT-sized reads). */
static size_t read_all(const char *consumer, int pending, struct em_queue_entry **out)
{
    size_t n = 0;
    CU_ASSERT_EQUAL(em_queue_read(q, consumer, pending ? "0" : NULL, 1000, out, &n, NULL, NULL),
                    EM_OK);
    return n;
}

static void submit_read_settle_ack(void)
{
    CU_ASSERT_EQUAL_FATAL(em_queue_ensure_group(q, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_queue_ensure_group(q, NULL), EM_OK); /* exists: still ok */
    make_batch("b-flow", 3);
    struct em_queue_item it[3] = {
        {"i1", "file:///a.wav", "{\"k\":1}", "ref-a"},
        {"i2", "file:///b c.wav", NULL, NULL},
        {"i3", "s3://bk/c.wav", NULL, NULL},
    };
    CU_ASSERT_EQUAL_FATAL(em_queue_add_items(q, "b-flow", it, 3, NULL), EM_OK);
    CU_ASSERT_EQUAL(em_queue_batch_open(q, "b-flow", NULL), EM_OK);
    long long lag = -2;
    CU_ASSERT_EQUAL(em_queue_lag(q, &lag, NULL), EM_OK);
    CU_ASSERT_EQUAL(lag, 3);

    struct em_queue_entry *e;
    size_t n = read_all("c1", 0, &e);
    CU_ASSERT_EQUAL_FATAL(n, 3);
    CU_ASSERT_STRING_EQUAL(e[0].batch, "b-flow");
    CU_ASSERT_STRING_EQUAL(e[0].item, "i1");
    CU_ASSERT_STRING_EQUAL(e[0].meta_json, "{\"k\":1}");
    CU_ASSERT_STRING_EQUAL(e[0].ref, "ref-a");
    CU_ASSERT_STRING_EQUAL(e[1].source, "file:///b c.wav");
    CU_ASSERT_STRING_EQUAL(e[1].meta_json, "");

    /* nothing new for anyone now */
    struct em_queue_entry *e2;
    CU_ASSERT_EQUAL(read_all("c1", 0, &e2), 0);
    em_queue_entries_free(e2, 0);

    /* settle i1 ok with ack; a duplicate result counts once */
    int first = -1;
    CU_ASSERT_EQUAL(em_queue_settle(q, "b-flow", "i1", 1, e[0].stream_id, &first, NULL), EM_OK);
    CU_ASSERT_EQUAL(first, 1);
    CU_ASSERT_EQUAL(em_queue_settle(q, "b-flow", "i1", 1, e[0].stream_id, &first, NULL), EM_OK);
    CU_ASSERT_EQUAL(first, 0);
    /* a late failure for an ok item changes nothing */
    CU_ASSERT_EQUAL(em_queue_settle(q, "b-flow", "i1", 0, NULL, &first, NULL), EM_OK);
    CU_ASSERT_EQUAL(first, 0);
    CU_ASSERT_EQUAL(em_queue_settle(q, "b-flow", "i2", 0, e[1].stream_id, &first, NULL), EM_OK);
    CU_ASSERT_EQUAL(first, 1);
    char st[16];
    CU_ASSERT_EQUAL(em_queue_item_status(q, "b-flow", "i1", st, NULL), EM_OK);
    CU_ASSERT_STRING_EQUAL(st, "ok");
    CU_ASSERT_EQUAL(em_queue_item_status(q, "b-flow", "i2", st, NULL), EM_OK);
    CU_ASSERT_STRING_EQUAL(st, "failed");
    CU_ASSERT_EQUAL(em_queue_item_status(q, "b-flow", "i3", st, NULL), EM_E_NOTFOUND);

    struct em_batch_info b;
    CU_ASSERT_EQUAL_FATAL(em_queue_batch_get(q, "b-flow", &b, NULL), EM_OK);
    CU_ASSERT_EQUAL(b.done, 1);
    CU_ASSERT_EQUAL(b.failed, 1);
    em_batch_info_clear(&b);

    /* "crash": c1 restarts and re-reads its own pending entries: only i3 is left */
    struct em_queue_entry *p;
    size_t np = read_all("c1", 1, &p);
    CU_ASSERT_EQUAL_FATAL(np, 1);
    CU_ASSERT_STRING_EQUAL(p[0].item, "i3");
    CU_ASSERT_STRING_EQUAL(p[0].stream_id, e[2].stream_id);
    em_queue_entries_free(p, np);

    /* another consumer claims it once idle long enough (0 ms here), then c1 has none */
    size_t nc = 0;
    CU_ASSERT_EQUAL(em_queue_autoclaim(q, "c2", 0, 100, &p, &nc, NULL, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(nc, 1);
    CU_ASSERT_STRING_EQUAL(p[0].item, "i3");
    CU_ASSERT_STRING_EQUAL(p[0].source, "s3://bk/c.wav");
    em_queue_entries_free(p, nc);
    CU_ASSERT_EQUAL(read_all("c1", 1, &p), 0);
    em_queue_entries_free(p, 0);
    /* a long idle bar claims nothing */
    CU_ASSERT_EQUAL(em_queue_autoclaim(q, "c1", 3600000, 100, &p, &nc, NULL, NULL), EM_OK);
    CU_ASSERT_EQUAL(nc, 0);
    em_queue_entries_free(p, nc);
    /* c1 renews it back (lease renewal), then c2 has nothing pending */
    char *ids[1] = {e[2].stream_id};
    CU_ASSERT_EQUAL(em_queue_touch(q, "c1", ids, 1, NULL), EM_OK);
    CU_ASSERT_EQUAL(read_all("c2", 1, &p), 0);
    em_queue_entries_free(p, 0);
    CU_ASSERT_EQUAL(read_all("c1", 1, &p), 1);
    em_queue_entries_free(p, 1);
    CU_ASSERT_EQUAL(em_queue_settle(q, "b-flow", "i3", 1, e[2].stream_id, &first, NULL), EM_OK);
    CU_ASSERT_EQUAL(read_all("c1", 1, &p), 0);
    em_queue_entries_free(p, 0);
    em_queue_entries_free(e, n);

    /* manifest rows in order, with statuses */
    struct em_queue_row *rows;
    size_t nr;
    CU_ASSERT_EQUAL_FATAL(em_queue_rows(q, "b-flow", 0, 100, &rows, &nr, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(nr, 3);
    CU_ASSERT_STRING_EQUAL(rows[0].item, "i1");
    CU_ASSERT_STRING_EQUAL(rows[1].source, "file:///b c.wav");
    CU_ASSERT_STRING_EQUAL(rows[1].status, "failed");
    CU_ASSERT_STRING_EQUAL(rows[2].status, "ok");
    CU_ASSERT_STRING_EQUAL(rows[2].output, "");
    em_queue_rows_free(rows, nr);
    CU_ASSERT_EQUAL_FATAL(em_queue_rows(q, "b-flow", 2, 100, &rows, &nr, NULL), EM_OK);
    CU_ASSERT_EQUAL(nr, 1);
    em_queue_rows_free(rows, nr);
}

static void skipped_items_count_as_done_once(void)
{
    make_batch("b-skip", 2);
    CU_ASSERT_EQUAL(em_queue_add_skipped(q, "b-skip", "s1", "file:///x.wav", "file:///o/old.json",
                                         NULL),
                    EM_OK);
    struct em_batch_info b;
    CU_ASSERT_EQUAL_FATAL(em_queue_batch_get(q, "b-skip", &b, NULL), EM_OK);
    CU_ASSERT_EQUAL(b.done, 1);
    CU_ASSERT_EQUAL(b.skipped, 1);
    em_batch_info_clear(&b);
    int first = -1;
    CU_ASSERT_EQUAL(em_queue_settle(q, "b-skip", "s1", 1, NULL, &first, NULL), EM_OK);
    CU_ASSERT_EQUAL(first, 0);
    struct em_queue_row *rows;
    size_t nr;
    CU_ASSERT_EQUAL_FATAL(em_queue_rows(q, "b-skip", 0, 10, &rows, &nr, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(nr, 1);
    CU_ASSERT_STRING_EQUAL(rows[0].status, "ok");
    CU_ASSERT_STRING_EQUAL(rows[0].output, "file:///o/old.json");
    em_queue_rows_free(rows, nr);
}

static void tries_and_dead_letters(void)
{
    struct em_queue_tries t;
    CU_ASSERT_EQUAL(em_queue_tries_get(q, "b-t", "i", &t, NULL), EM_OK);
    CU_ASSERT_EQUAL(t.attempts, 0);
    CU_ASSERT_EQUAL(t.lost, 0);
    CU_ASSERT_EQUAL(em_queue_tries_set(q, "b-t", "i", 2, NULL), EM_OK);
    CU_ASSERT_EQUAL(em_queue_tries_fail(q, "b-t", "i", 1, "EM_E_LOST", "worker w1 lost", NULL),
                    EM_OK);
    CU_ASSERT_EQUAL(em_queue_tries_fail(q, "b-t", "i", 0, "EM_E_STORAGE", "503 from s3", NULL),
                    EM_OK);
    CU_ASSERT_EQUAL(em_queue_tries_get(q, "b-t", "i", &t, NULL), EM_OK);
    CU_ASSERT_EQUAL(t.attempts, 2);
    CU_ASSERT_EQUAL(t.lost, 1);
    CU_ASSERT_EQUAL(t.fails, 2);
    CU_ASSERT_STRING_EQUAL(t.err_class, "EM_E_STORAGE");
    CU_ASSERT_STRING_EQUAL(t.err_msg, "503 from s3");
    CU_ASSERT_EQUAL(em_queue_dead(q, "b-t", "i", "file:///x", 3, "EM_E_CRASH", "quarantined", NULL),
                    EM_OK);
    redisContext *c = redisConnect("127.0.0.1", redis.port);
    CU_ASSERT_FATAL(c && !c->err);
    redisReply *r = redisCommand(c, "XLEN %s", EM_QUEUE_DEAD);
    CU_ASSERT_TRUE(r && r->type == REDIS_REPLY_INTEGER && r->integer >= 1);
    if (r) freeReplyObject(r);
    redisFree(c);
}

static void malformed_entries_are_acked_and_counted(void)
{
    raw("XADD " EM_QUEUE_STREAM " * batch %s item %s", "b-x", "no-source");
    raw("XADD " EM_QUEUE_STREAM " * batch %s item %s source x", "../../etc", "i");
    struct em_queue_entry *e;
    size_t n = 0, bad = 0;
    CU_ASSERT_EQUAL(em_queue_read(q, "c3", NULL, 100, &e, &n, &bad, NULL), EM_OK);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(bad, 2);
    em_queue_entries_free(e, n);
    /* acked: nothing pending for c3 */
    CU_ASSERT_EQUAL(read_all("c3", 1, &e), 0);
    em_queue_entries_free(e, 0);
}

static void reconnects_after_redis_restart(void)
{
    CU_ASSERT_EQUAL_FATAL(th_server_restart(&redis), 0);
    /* the old connection is dead; the call reconnects once */
    CU_ASSERT_EQUAL(em_queue_ensure_group(q, NULL), EM_OK);
    make_batch("b-after", 1);
    struct em_batch_info b;
    CU_ASSERT_EQUAL(em_queue_batch_get(q, "b-after", &b, NULL), EM_OK);
    em_batch_info_clear(&b);
}

static CU_TestInfo tests[] = {
    {"bad_urls_are_refused", bad_urls_are_refused},
    {"batch_hash_round_trips", batch_hash_round_trips},
    {"submit_read_settle_ack", submit_read_settle_ack},
    {"skipped_items_count_as_done_once", skipped_items_count_as_done_once},
    {"tries_and_dead_letters", tries_and_dead_letters},
    {"malformed_entries_are_acked_and_counted", malformed_entries_are_acked_and_counted},
    {"reconnects_after_redis_restart", reconnects_after_redis_restart},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_queue = {"queue", init, clean, NULL, NULL, tests};
