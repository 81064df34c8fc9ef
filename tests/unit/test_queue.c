/* tests/unit/test_queue.c - coordinator/queue against a real redis-server: submit-side
 * writes, coordinator-side reads, settle-once + ack, re-reading own pending entries after a
 * "crash", autoclaim by another consumer, malformed entries, rows for manifest.jsonl. */
#include <CUnit/CUnit.h>
#include <hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/clock.h"
#include "common/cmd.h"
#include "common/log.h"
#include "coordinator/cli.h"
#include "coordinator/queue.h"
#include "coordinator/submit_util.h"
#include "proto/wire.h"
#include "storage/storage.h"
#include "tests/helpers/peer.h"
#include "tests/helpers/proc.h"
#include "tests/helpers/servers.h"

static struct th_server redis;
static struct em_queue *q;

static int init(void)
{
    if (th_redis_start(&redis) != 0) return 1;
    return em_queue_open(redis.url, &q, NULL) != EM_OK;
}

static void stop_coordinator(void);

static int clean(void)
{
    stop_coordinator();
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
    for (size_t i = 0; i < n; i++)
        seen += strcmp(ids[i], "b-hash") == 0;
    CU_ASSERT_EQUAL(seen, 1);
    em_queue_strv_free(ids, n);
    CU_ASSERT_EQUAL(em_queue_batch_complete(q, "b-hash", NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_queue_batch_get(q, "b-hash", &b, NULL), EM_OK);
    CU_ASSERT_STRING_EQUAL(b.state, "complete");
    CU_ASSERT_TRUE(b.completed_ms > 0);
    em_batch_info_clear(&b);
    CU_ASSERT_EQUAL_FATAL(em_queue_active(q, &ids, &n, NULL), EM_OK);
    for (size_t i = 0; i < n; i++)
        CU_ASSERT_STRING_NOT_EQUAL(ids[i], "b-hash");
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
    CU_ASSERT_EQUAL(
        em_queue_add_skipped(q, "b-skip", "s1", "file:///x.wav", "file:///o/old.json", NULL),
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
    CU_ASSERT_EQUAL(em_queue_tries_set(q, "b-t", "i", 2, "0123abcd", NULL), EM_OK);
    CU_ASSERT_EQUAL(em_queue_tries_get(q, "b-t", "i", &t, NULL), EM_OK);
    CU_ASSERT_STRING_EQUAL(t.lease, "0123abcd");
    CU_ASSERT_EQUAL(em_queue_tries_fail(q, "b-t", "i", 1, "EM_E_LOST", "worker w1 lost", NULL),
                    EM_OK);
    CU_ASSERT_EQUAL(em_queue_tries_get(q, "b-t", "i", &t, NULL), EM_OK);
    CU_ASSERT_STRING_EQUAL(t.lease, ""); /* a failed attempt's lease ends */
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

static void producer_hash_is_canonical(void)
{
    const char *b1[] = {"caption", "events"}, *fr[] = {"is it raining?"};
    char *p1, *g1, *h1, *p2, *g2, *h2, *p3, *g3, *h3;
    CU_ASSERT_EQUAL_FATAL(em_submit_producer("m1", b1, 2, fr, 1, 0, false, &p1, &g1, &h1, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_submit_producer("m1", b1, 2, fr, 1, 0, false, &p2, &g2, &h2, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_submit_producer("m2", b1, 2, fr, 1, 0, false, &p3, &g3, &h3, NULL), EM_OK);
    CU_ASSERT_STRING_EQUAL(h1, h2);
    CU_ASSERT_STRING_NOT_EQUAL(h1, h3); /* the model is part of the producer */
    CU_ASSERT_EQUAL(strlen(h1), 64);
    CU_ASSERT_PTR_NOT_NULL(strstr(p1, "{\"name\":\"free1\",\"text\":\"is it raining?\"}"));
    CU_ASSERT_PTR_NOT_NULL(strstr(g1, "\"greedy\":true"));
    free(p2), free(g2), free(h2), free(p3), free(g3), free(h3);
    CU_ASSERT_EQUAL_FATAL(em_submit_producer("m1", b1, 1, fr, 1, 0, false, &p2, &g2, &h2, NULL), EM_OK);
    CU_ASSERT_STRING_NOT_EQUAL(h1, h2); /* prompts are part of it too */
    free(p2), free(g2), free(h2);
    CU_ASSERT_PTR_NOT_NULL(strstr(g1, "\"max_new_tokens\":256")); /* 0: the default */
    CU_ASSERT_EQUAL_FATAL(em_submit_producer("m1", b1, 2, fr, 1, 16, false, &p2, &g2, &h2, NULL), EM_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(g2, "\"max_new_tokens\":16"));
    CU_ASSERT_STRING_NOT_EQUAL(h1, h2); /* and the generation settings */
    free(p1), free(g1), free(h1), free(p2), free(g2), free(h2);
    CU_ASSERT_EQUAL(em_submit_producer("m1", b1, 1, NULL, 0, EM_SUBMIT_MAX_NEW_TOKENS + 1, false, &p1,
                                       &g1, &h1, NULL), EM_E_ARG);
    CU_ASSERT_PTR_NULL(g1);
    const char *bad[] = {"captions"};
    CU_ASSERT_EQUAL(em_submit_producer("m1", bad, 1, NULL, 0, 0, false, &p1, &g1, &h1, NULL), EM_E_ARG);
    CU_ASSERT_PTR_NULL(h1);
    CU_ASSERT_TRUE(em_submit_prompt_known("transcript"));
    CU_ASSERT_FALSE(em_submit_prompt_known("free1"));
}

static void record_currency(void)
{
    const char *ok = "{\"status\":\"ok\",\"producer\":{\"hash\":\"H\"}}";
    const char *failed = "{\"status\":\"failed\",\"producer\":{\"hash\":\"H\"}}";
    CU_ASSERT_TRUE(em_submit_record_current((const uint8_t *)ok, strlen(ok), "H"));
    CU_ASSERT_FALSE(em_submit_record_current((const uint8_t *)ok, strlen(ok), "other"));
    CU_ASSERT_FALSE(em_submit_record_current((const uint8_t *)failed, strlen(failed), "H"));
    CU_ASSERT_FALSE(em_submit_record_current((const uint8_t *)"{\"status", 8, "H"));
    CU_ASSERT_FALSE(em_submit_record_current((const uint8_t *)"[]", 2, "H"));
}

static void skip_done_finds_current_records(void)
{
    char dir[256], out[300], path[400];
    CU_ASSERT_EQUAL_FATAL(th_tmpdir(dir, sizeof dir), 0);
    snprintf(out, sizeof out, "file://%s", dir);
    const char *rec = "{\"status\":\"ok\",\"producer\":{\"hash\":\"H\"}}";
    snprintf(path, sizeof path, "%s/newid.json", dir);
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(rec, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/oldid.json", dir);
    f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(rec, f);
    fclose(f);
    char man[1024];
    snprintf(man, sizeof man,
             "{\"id\":\"oldid\",\"source\":\"s1\",\"status\":\"ok\",\"output\":\"%s/oldid.json\"}\n"
             "{\"id\":\"x\",\"source\":\"s2\",\"status\":\"failed\",\"output\":\"%s/x.json\"}\n"
             "garbage\n",
             out, out);
    snprintf(path, sizeof path, "%s/manifest.jsonl", dir);
    f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(man, f);
    fclose(f);

    struct em_storage *st = NULL;
    CU_ASSERT_EQUAL_FATAL(em_storage_open(NULL, &st, NULL), EM_OK);
    struct em_submit_prev *prev = NULL;
    em_submit_prev_load(st, out, &prev);
    CU_ASSERT_PTR_NOT_NULL_FATAL(prev);
    CU_ASSERT_PTR_NOT_NULL(em_submit_prev_output(prev, "s1"));
    CU_ASSERT_PTR_NULL(em_submit_prev_output(prev, "s2")); /* failed items are redone */
    char *uri = NULL;
    /* this batch's own key */
    CU_ASSERT_EQUAL(em_submit_find_current(st, out, prev, "newid", "s9", "H", &uri), 1);
    CU_ASSERT_PTR_NOT_NULL(uri && strstr(uri, "newid.json"));
    free(uri);
    /* an earlier batch's record for the same source */
    CU_ASSERT_EQUAL(em_submit_find_current(st, out, prev, "nope", "s1", "H", &uri), 1);
    CU_ASSERT_PTR_NOT_NULL(uri && strstr(uri, "oldid.json"));
    free(uri);
    /* a different producer redoes everything */
    CU_ASSERT_EQUAL(em_submit_find_current(st, out, prev, "newid", "s1", "H2", &uri), 0);
    CU_ASSERT_EQUAL(em_submit_find_current(st, out, prev, "nope", "s2", "H", &uri), 0);
    em_submit_prev_free(prev);
    em_storage_close(st);
    th_rmrf(dir);
}

static void progress_arithmetic(void)
{
    struct em_batch_info b = {0};
    snprintf(b.state, sizeof b.state, "open");
    b.total = 50;
    b.done = 35;
    b.failed = 2;
    b.skipped = 5;
    b.created_ms = 10000;
    struct em_progress p;
    em_progress_of(&b, 4, 1, 18000, &p); /* 8 s, 32 items worked */
    CU_ASSERT_EQUAL(p.in_flight, 4);
    CU_ASSERT_EQUAL(p.pending, 9);
    CU_ASSERT_DOUBLE_EQUAL(p.rate, 4.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(p.eta_s, 13.0 / 4.0, 1e-9);
    char line[160];
    em_progress_line(&p, line, sizeof line);
    CU_ASSERT_STRING_EQUAL(line, "[##############......] 35/50 done 2 failed 4.0 items/s ETA 3s");
    em_progress_of(&b, 100, 0, 10000, &p); /* in-flight never exceeds what is left */
    CU_ASSERT_EQUAL(p.in_flight, 13);
    CU_ASSERT_EQUAL(p.pending, 0);
    CU_ASSERT_TRUE(p.eta_s < 0);
    uint64_t v;
    CU_ASSERT_EQUAL(em_cli_u64("42", 1, 100, &v), 0);
    CU_ASSERT_EQUAL(v, 42);
    CU_ASSERT_EQUAL(em_cli_u64("101", 1, 100, &v), -1);
    CU_ASSERT_EQUAL(em_cli_u64("-1", 0, 100, &v), -1);
    CU_ASSERT_EQUAL(em_cli_u64("4x", 0, 100, &v), -1);
    CU_ASSERT_EQUAL(em_cli_u64("", 0, 100, &v), -1);
}

static void stalled_and_cancelled_progress(void)
{
    struct em_batch_info b = {0};
    snprintf(b.state, sizeof b.state, "open");
    b.total = 10;
    b.done = 4;
    b.created_ms = 10000;
    char reason[] = "EM_E_STORAGE_DOWN: s3 PUT: connection refused";
    b.stalled = reason;
    struct em_progress p;
    em_progress_of(&b, 0, 0, 14000, &p); /* stalled: nothing moves, no rate, no ETA */
    CU_ASSERT_TRUE(p.stalled);
    CU_ASSERT_DOUBLE_EQUAL(p.rate, 0.0, 1e-12);
    CU_ASSERT_TRUE(p.eta_s < 0);
    char line[160];
    em_progress_line(&p, line, sizeof line);
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "(stalled)"));
    b.stalled = NULL;
    b.cancelled = 6;
    snprintf(b.state, sizeof b.state, "cancelled");
    em_progress_of(&b, 0, 0, 14000, &p);
    CU_ASSERT_TRUE(p.complete);
    CU_ASSERT_EQUAL(p.pending, 0);
    CU_ASSERT_EQUAL(p.cancelled, 6);
    CU_ASSERT_DOUBLE_EQUAL(p.rate, 1.0, 1e-9); /* cancelled items are not work done */
}

static void durations_parse(void)
{
    int64_t ms = 0;
    CU_ASSERT_EQUAL(em_cli_duration_ms("90", 86400000, &ms), 0);
    CU_ASSERT_EQUAL(ms, 90000);
    CU_ASSERT_EQUAL(em_cli_duration_ms("3s", 86400000, &ms), 0);
    CU_ASSERT_EQUAL(ms, 3000);
    CU_ASSERT_EQUAL(em_cli_duration_ms("90m", 86400000, &ms), 0);
    CU_ASSERT_EQUAL(ms, 5400000);
    CU_ASSERT_EQUAL(em_cli_duration_ms("2h", 86400000, &ms), 0);
    CU_ASSERT_EQUAL(ms, 7200000);
    CU_ASSERT_EQUAL(em_cli_duration_ms("7d", 7LL * 86400000, &ms), 0);
    CU_ASSERT_EQUAL(ms, 7LL * 86400000);
    CU_ASSERT_EQUAL(em_cli_duration_ms("8d", 7LL * 86400000, &ms), -1); /* over the cap */
    CU_ASSERT_EQUAL(em_cli_duration_ms("0s", 86400000, &ms), -1);
    CU_ASSERT_EQUAL(em_cli_duration_ms("d", 86400000, &ms), -1);
    CU_ASSERT_EQUAL(em_cli_duration_ms("5w", 86400000, &ms), -1);
    CU_ASSERT_EQUAL(em_cli_duration_ms("-5s", 86400000, &ms), -1);
    CU_ASSERT_EQUAL(em_cli_duration_ms("", 86400000, &ms), -1);
    CU_ASSERT_EQUAL(em_cli_duration_ms(NULL, 86400000, &ms), -1);
}

/* ---- the coordinator itself, in-process, against fake workers (DEALER sockets) ---- */

struct coord_run {
    pthread_t th;
    char *argv[16];
    int argc, rc;
    int started;
};
static struct coord_run cr;

static void *coord_main(void *arg)
{
    struct coord_run *r = arg;
    r->rc = em_cmd_coordinator(r->argc, r->argv);
    return NULL;
}

static void ignore_signal(int sig) { (void)sig; }

/* SIGTERM reaches the coordinator's own handler (drain, return 0). A SIGTERM that arrives
 * before it installed one (it failed to start) hits ignore_signal instead of the runner.
 * Also called from the suite's cleanup, so a failed assertion never leaves it running. */
static void stop_coordinator(void)
{
    if (!cr.started) return;
    kill(getpid(), SIGTERM);
    pthread_join(cr.th, NULL);
    cr.started = 0;
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    em_log_set_level(EM_LOG_INFO);
}

static void *fake_worker(void *ctx, const char *id, const char *endpoint)
{
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_ROUTING_ID, id, strlen(id));
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    CU_ASSERT_EQUAL(zmq_connect(s, endpoint), 0);
    return s;
}

static void fw_send(void *s, uint8_t *buf, size_t n)
{
    CU_ASSERT_EQUAL(zmq_send(s, buf, n, 0), (int)n);
    free(buf);
}

/* Next envelope from the coordinator within timeout_ms (generous; NULL if none). */
static Earmark__Envelope *fw_recv(void *s, int timeout_ms)
{
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, timeout_ms) <= 0) return NULL;
    zmq_msg_t m;
    zmq_msg_init(&m);
    Earmark__Envelope *e = NULL;
    if (zmq_msg_recv(&m, s, 0) >= 0) em_wire_unpack(zmq_msg_data(&m), zmq_msg_size(&m), &e, NULL);
    zmq_msg_close(&m);
    return e;
}

static Earmark__Envelope *fw_expect(void *s, Earmark__Envelope__BodyCase kind)
{
    for (int i = 0; i < 50; i++) {
        Earmark__Envelope *e = fw_recv(s, 10000);
        if (!e) return NULL;
        if (e->body_case == kind) return e;
        em_wire_free(e); /* e.g. a Welcome repeated */
    }
    return NULL;
}

static void fw_result(void *s, const Earmark__Task *t, int ok)
{
    struct th_peer p = {.sock = s};
    CU_ASSERT_EQUAL(th_peer_result(&p, t, ok, false, t->lease_token), 0);
}

static void fw_hello_ready(void *s, const char *id, unsigned credits)
{
    uint8_t *b;
    size_t n;
    CU_ASSERT_EQUAL_FATAL(em_wire_hello(id, "test", "cpu", "none", credits, 1, &b, &n, NULL),
                          EM_OK);
    fw_send(s, b, n);
    Earmark__Envelope *w = fw_expect(s, EARMARK__ENVELOPE__BODY_WELCOME);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    CU_ASSERT_EQUAL(w->welcome->lease_ms, 1500);
    em_wire_free(w);
    CU_ASSERT_EQUAL_FATAL(em_wire_ready(credits, &b, &n, NULL), EM_OK);
    fw_send(s, b, n);
}

static void coordinator_protocol(void)
{
    char dir[256], out[300], bind[64], name[64];
    CU_ASSERT_EQUAL_FATAL(th_tmpdir(dir, sizeof dir), 0);
    snprintf(out, sizeof out, "file://%s", dir);
    snprintf(bind, sizeof bind, "tcp://127.0.0.1:%d", th_free_port());
    make_batch("b-proto", 3);
    struct em_batch_info bi;
    CU_ASSERT_EQUAL_FATAL(em_queue_batch_get(q, "b-proto", &bi, NULL), EM_OK);
    em_batch_info_clear(&bi);
    raw("HSET earmark:batch:b-proto out %s", out, NULL);
    struct em_queue_item it[3] = {{"p1", "file:///1.wav", NULL, NULL},
                                  {"p2", "file:///2.wav", NULL, NULL},
                                  {"p3", "file:///3.wav", NULL, NULL}};
    CU_ASSERT_EQUAL_FATAL(em_queue_add_items(q, "b-proto", it, 3, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_queue_batch_open(q, "b-proto", NULL), EM_OK);

    setenv("EARMARK_RETRY_BASE_MS", "10", 1);
    em_log_set_level(EM_LOG_ERROR);
    cr = (struct coord_run){.argv = {"coordinator", "--redis", redis.url, "--bind", bind,
                                     "--heartbeat-ms", "100", "--lease-ms", "1500", "--id", "ct"},
                            .argc = 11};
    signal(SIGTERM, ignore_signal);
    CU_ASSERT_EQUAL_FATAL(pthread_create(&cr.th, NULL, coord_main, &cr), 0);
    cr.started = 1;
    void *ctx = zmq_ctx_new();

    /* a peer that never said Hello gets a Welcome */
    void *stranger = fake_worker(ctx, "stranger", bind);
    uint8_t *b;
    size_t n;
    CU_ASSERT_EQUAL(em_wire_heartbeat(NULL, NULL, 0, &b, &n, NULL), EM_OK);
    fw_send(stranger, b, n);
    Earmark__Envelope *e = fw_expect(stranger, EARMARK__ENVELOPE__BODY_WELCOME);
    CU_ASSERT_PTR_NOT_NULL(e);
    em_wire_free(e);
    zmq_close(stranger);

    /* w1 announces one credit: exactly one task, nothing more until it asks */
    void *w1 = fake_worker(ctx, "w1", bind);
    fw_hello_ready(w1, "w1", 1);
    Earmark__Envelope *t1 = fw_expect(w1, EARMARK__ENVELOPE__BODY_TASK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t1);
    CU_ASSERT_EQUAL(t1->task->attempt, 1);
    CU_ASSERT_STRING_EQUAL(t1->task->batch_id, "b-proto");
    snprintf(name, sizeof name, "/%s.json", t1->task->item_id);
    CU_ASSERT_PTR_NOT_NULL(strstr(t1->task->out_uri, name));
    CU_ASSERT_EQUAL_FATAL(t1->task->n_prompts, 1);
    CU_ASSERT_STRING_EQUAL(t1->task->prompts[0]->name, "caption");
    CU_ASSERT_EQUAL(em_wire_heartbeat(NULL, NULL, 0, &b, &n, NULL), EM_OK);
    fw_send(w1, b, n); /* alive: a result after the lease ran out would be refused */
    CU_ASSERT_PTR_NULL(fw_recv(w1, 300)); /* no credit, no task */
    fw_result(w1, t1->task, 1);
    CU_ASSERT_EQUAL(em_wire_ready(1, &b, &n, NULL), EM_OK);
    fw_send(w1, b, n);
    Earmark__Envelope *t2 = fw_expect(w1, EARMARK__ENVELOPE__BODY_TASK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t2);
    CU_ASSERT_STRING_NOT_EQUAL(t2->task->item_id, t1->task->item_id);

    /* w1 goes silent holding t2. w2 answers every task it gets; t2's item comes to it again
     * as attempt 2 once w1's lease runs out, and runs alone there (a crash suspect). */
    void *w2 = fake_worker(ctx, "w2", bind);
    fw_hello_ready(w2, "w2", 2);
    Earmark__Envelope *re = NULL, *third = NULL;
    for (int i = 0; i < 400 && !(re && third); i++) {
        uint8_t *hb;
        size_t hn;
        em_wire_heartbeat(NULL, NULL, 0, &hb, &hn, NULL);
        fw_send(w2, hb, hn);
        Earmark__Envelope *x = fw_recv(w2, 50);
        if (!x) continue;
        if (x->body_case != EARMARK__ENVELOPE__BODY_TASK) {
            em_wire_free(x);
            continue;
        }
        int same = strcmp(x->task->item_id, t2->task->item_id) == 0;
        CU_ASSERT_FALSE(same && re);
        CU_ASSERT_FALSE(!same && third);
        fw_result(w2, x->task, 1);
        CU_ASSERT_EQUAL(em_wire_ready(1, &hb, &hn, NULL), EM_OK);
        fw_send(w2, hb, hn);
        if (same && !re)
            re = x;
        else if (!same && !third)
            third = x;
        else
            em_wire_free(x);
    }
    CU_ASSERT_PTR_NOT_NULL_FATAL(re);
    CU_ASSERT_PTR_NOT_NULL_FATAL(third);
    CU_ASSERT_EQUAL(re->task->attempt, 2);
    CU_ASSERT_STRING_NOT_EQUAL(re->task->task_id, t2->task->task_id);
    CU_ASSERT_STRING_NOT_EQUAL(third->task->item_id, t1->task->item_id);

    /* the lost worker's late result changes nothing: the item counts once */
    fw_result(w1, t2->task, 1);
    int complete = 0;
    for (int i = 0; i < 200 && !complete; i++) {
        struct em_batch_info b2;
        if (em_queue_batch_get(q, "b-proto", &b2, NULL) == EM_OK) {
            complete = strcmp(b2.state, "complete") == 0;
            if (complete) {
                CU_ASSERT_EQUAL(b2.done, 3);
                CU_ASSERT_EQUAL(b2.failed, 0);
            }
            em_batch_info_clear(&b2);
        }
        if (!complete) {
            uint8_t *hb;
            size_t hn;
            em_wire_heartbeat(NULL, NULL, 0, &hb, &hn, NULL);
            fw_send(w2, hb, hn);
            em_sleep_ms(50);
        }
    }
    CU_ASSERT_TRUE(complete);
    char path[400];
    snprintf(path, sizeof path, "%s/manifest.jsonl", dir);
    size_t ml = 0;
    char *man = th_slurp(path, &ml);
    CU_ASSERT_PTR_NOT_NULL(man);
    CU_ASSERT_PTR_NOT_NULL(
        man && strstr(man, "\"id\":\"p2\",\"source\":\"file:///2.wav\",\"status\":\"ok\""));
    free(man);
    struct em_queue_tries tr;
    CU_ASSERT_EQUAL(em_queue_tries_get(q, "b-proto", t2->task->item_id, &tr, NULL), EM_OK);
    CU_ASSERT_EQUAL(tr.lost, 1);
    CU_ASSERT_STRING_EQUAL(tr.err_class, "EM_E_LOST");

    em_wire_free(t1), em_wire_free(t2), em_wire_free(re), em_wire_free(third);
    zmq_close(w1);
    zmq_close(w2);
    zmq_ctx_term(ctx);
    stop_coordinator();
    CU_ASSERT_EQUAL(cr.rc, 0);
    th_rmrf(dir);
}

static CU_TestInfo tests[] = {
    {"bad_urls_are_refused", bad_urls_are_refused},
    {"batch_hash_round_trips", batch_hash_round_trips},
    {"submit_read_settle_ack", submit_read_settle_ack},
    {"skipped_items_count_as_done_once", skipped_items_count_as_done_once},
    {"tries_and_dead_letters", tries_and_dead_letters},
    {"malformed_entries_are_acked_and_counted", malformed_entries_are_acked_and_counted},
    {"reconnects_after_redis_restart", reconnects_after_redis_restart},
    {"producer_hash_is_canonical", producer_hash_is_canonical},
    {"record_currency", record_currency},
    {"skip_done_finds_current_records", skip_done_finds_current_records},
    {"stalled_and_cancelled_progress", stalled_and_cancelled_progress},
    {"durations_parse", durations_parse},
    {"progress_arithmetic", progress_arithmetic},
    {"coordinator_protocol", coordinator_protocol},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_queue = {"queue", init, clean, NULL, NULL, tests};
