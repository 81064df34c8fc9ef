/* tests/unit/test_wire.c - proto/wire: round trips, and every way a frame can be refused. */
#include <CUnit/CUnit.h>
#include <stdlib.h>
#include <string.h>

#include "proto/wire.h"

static void hello_round_trips(void)
{
    uint8_t *b = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(em_wire_hello("w1", "0.1.0", "cpu", "none", 4, 99, &b, &n, NULL), EM_OK);
    Earmark__Envelope *e = NULL;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL_FATAL(em_wire_unpack(b, n, &e, &eb), EM_OK);
    CU_ASSERT_EQUAL(e->version, EM_WIRE_VERSION);
    CU_ASSERT_EQUAL_FATAL(e->body_case, EARMARK__ENVELOPE__BODY_HELLO);
    CU_ASSERT_STRING_EQUAL(e->hello->worker_id, "w1");
    CU_ASSERT_STRING_EQUAL(e->hello->backend, "cpu");
    CU_ASSERT_EQUAL(e->hello->capacity, 4);
    CU_ASSERT_EQUAL(e->hello->pid, 99);
    em_wire_free(e);
    free(b);
}

static void every_kind_round_trips(void)
{
    uint8_t *b;
    size_t n;
    Earmark__Envelope *e;
    const char *ids[] = {"b-1/i/1", "b-1/j/2"};

    CU_ASSERT_EQUAL_FATAL(em_wire_welcome(500, 3000, &b, &n, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_wire_unpack(b, n, &e, NULL), EM_OK);
    CU_ASSERT_EQUAL(e->body_case, EARMARK__ENVELOPE__BODY_WELCOME);
    CU_ASSERT_EQUAL(e->welcome->heartbeat_ms, 500);
    CU_ASSERT_EQUAL(e->welcome->lease_ms, 3000);
    em_wire_free(e);
    free(b);

    CU_ASSERT_EQUAL_FATAL(em_wire_ready(0, &b, &n, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_wire_unpack(b, n, &e, NULL), EM_OK);
    CU_ASSERT_EQUAL(e->body_case, EARMARK__ENVELOPE__BODY_READY);
    CU_ASSERT_EQUAL(e->ready->credits, 0);
    em_wire_free(e);
    free(b);

    CU_ASSERT_EQUAL_FATAL(em_wire_heartbeat(ids, NULL, 2, &b, &n, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_wire_unpack(b, n, &e, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(e->heartbeat->n_task_ids, 2);
    CU_ASSERT_STRING_EQUAL(e->heartbeat->task_ids[1], "b-1/j/2");
    em_wire_free(e);
    free(b);

    CU_ASSERT_EQUAL_FATAL(em_wire_heartbeat(NULL, NULL, 0, &b, &n, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_wire_unpack(b, n, &e, NULL), EM_OK);
    CU_ASSERT_EQUAL(e->body_case, EARMARK__ENVELOPE__BODY_HEARTBEAT);
    CU_ASSERT_EQUAL(e->heartbeat->n_task_ids, 0);
    em_wire_free(e);
    free(b);

    Earmark__Task t;
    earmark__task__init(&t);
    Earmark__Prompt p0, p1, *ps[2] = {&p0, &p1};
    earmark__prompt__init(&p0);
    earmark__prompt__init(&p1);
    p0.name = "caption";
    p1.name = "free1";
    p1.text = "is there a dog?";
    t.task_id = "b-1/abc/2";
    t.batch_id = "b-1";
    t.item_id = "abc";
    t.source = "file:///a.wav";
    t.out_uri = "file:///out/abc.json";
    t.n_prompts = 2;
    t.prompts = ps;
    t.attempt = 2;
    t.deadline_ms = 1234567890123ull;
    t.meta_json = "{\"k\":1}";
    t.producer_hash = "ff";
    CU_ASSERT_EQUAL_FATAL(em_wire_task(&t, &b, &n, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_wire_unpack(b, n, &e, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(e->body_case, EARMARK__ENVELOPE__BODY_TASK);
    CU_ASSERT_STRING_EQUAL(e->task->source, "file:///a.wav");
    CU_ASSERT_EQUAL_FATAL(e->task->n_prompts, 2);
    CU_ASSERT_STRING_EQUAL(e->task->prompts[1]->text, "is there a dog?");
    CU_ASSERT_EQUAL(e->task->deadline_ms, 1234567890123ull);
    CU_ASSERT_EQUAL(e->task->attempt, 2);
    em_wire_free(e);
    free(b);

    Earmark__Result r;
    earmark__result__init(&r);
    r.task_id = "b-1/abc/2";
    r.batch_id = "b-1";
    r.item_id = "abc";
    r.ok = 0;
    r.error_class = "EM_E_AUDIO";
    r.error_message = "no audio stream";
    r.attempt = 2;
    CU_ASSERT_EQUAL_FATAL(em_wire_result(&r, &b, &n, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_wire_unpack(b, n, &e, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(e->body_case, EARMARK__ENVELOPE__BODY_RESULT);
    CU_ASSERT_FALSE(e->result->ok);
    CU_ASSERT_STRING_EQUAL(e->result->error_class, "EM_E_AUDIO");
    CU_ASSERT_EQUAL(e->result->attempt, 2);
    em_wire_free(e);
    free(b);

    CU_ASSERT_EQUAL_FATAL(em_wire_progress("t", "decode", 0.5f, &b, &n, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_wire_unpack(b, n, &e, NULL), EM_OK);
    CU_ASSERT_STRING_EQUAL(e->progress->phase, "decode");
    em_wire_free(e);
    free(b);

    CU_ASSERT_EQUAL_FATAL(em_wire_cancel("t", &b, &n, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_wire_unpack(b, n, &e, NULL), EM_OK);
    CU_ASSERT_EQUAL(e->body_case, EARMARK__ENVELOPE__BODY_CANCEL);
    em_wire_free(e);
    free(b);

    CU_ASSERT_EQUAL_FATAL(em_wire_drain(&b, &n, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(em_wire_unpack(b, n, &e, NULL), EM_OK);
    CU_ASSERT_EQUAL(e->body_case, EARMARK__ENVELOPE__BODY_DRAIN);
    CU_ASSERT_STRING_EQUAL(em_wire_kind(e->body_case), "drain");
    em_wire_free(e);
    free(b);
}

static void empty_and_garbage_are_refused(void)
{
    Earmark__Envelope *e = (Earmark__Envelope *)&e; /* must be reset to NULL */
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL(em_wire_unpack((const uint8_t *)"", 0, &e, &eb), EM_E_PROTO);
    CU_ASSERT_PTR_NULL(e);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "empty"));
    /* 0xff... is a varint that never ends */
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    CU_ASSERT_EQUAL(em_wire_unpack(junk, sizeof junk, &e, &eb), EM_E_PROTO);
    CU_ASSERT_PTR_NULL(e);
    /* deterministic pseudo-random garbage never crashes and never yields a body-less env */
    uint32_t x = 12345;
    uint8_t buf[64];
    for (int round = 0; round < 2000; round++) {
        size_t n = 1 + (size_t)(round % 64);
        for (size_t i = 0; i < n; i++) {
            x = x * 1103515245u + 12345u;
            buf[i] = (uint8_t)(x >> 16);
        }
        em_err rc = em_wire_unpack(buf, n, &e, NULL);
        if (rc == EM_OK) {
            CU_ASSERT_EQUAL(e->version, EM_WIRE_VERSION);
            CU_ASSERT_NOT_EQUAL(e->body_case, EARMARK__ENVELOPE__BODY__NOT_SET);
            em_wire_free(e);
        } else {
            CU_ASSERT_EQUAL(rc, EM_E_PROTO);
            CU_ASSERT_PTR_NULL(e);
        }
    }
}

static void truncated_frames_are_refused(void)
{
    Earmark__Task t;
    earmark__task__init(&t);
    t.task_id = "b-1/abcdef/1";
    t.source = "s3://bucket/some/long/key.flac";
    uint8_t *b;
    size_t n;
    CU_ASSERT_EQUAL_FATAL(em_wire_task(&t, &b, &n, NULL), EM_OK);
    int refused = 0;
    for (size_t cut = 1; cut < n; cut++) {
        Earmark__Envelope *e = NULL;
        em_err rc = em_wire_unpack(b, cut, &e, NULL);
        if (rc != EM_OK)
            refused++;
        else
            em_wire_free(e);
    }
    /* every cut inside the task body leaves a length-delimited field short */
    CU_ASSERT_EQUAL(refused, (int)n - 1);
    free(b);
}

static void wrong_version_is_refused(void)
{
    /* version = 2 (field 1 varint), ready {credits = 1} (field 4, length 2) */
    const uint8_t v2[] = {0x08, 0x02, 0x22, 0x02, 0x08, 0x01};
    const uint8_t v1[] = {0x08, 0x01, 0x22, 0x02, 0x08, 0x01};
    const uint8_t v0[] = {0x22, 0x02, 0x08, 0x01};
    Earmark__Envelope *e = NULL;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL(em_wire_unpack(v2, sizeof v2, &e, &eb), EM_E_PROTO);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "version 2"));
    CU_ASSERT_EQUAL(em_wire_unpack(v0, sizeof v0, &e, &eb), EM_E_PROTO);
    CU_ASSERT_EQUAL_FATAL(em_wire_unpack(v1, sizeof v1, &e, &eb), EM_OK);
    CU_ASSERT_EQUAL(e->ready->credits, 1);
    em_wire_free(e);
}

static void unknown_oneof_is_refused(void)
{
    /* version = 1, then field 15 (not in this version), length-delimited, empty */
    const uint8_t f[] = {0x08, 0x01, 0x7a, 0x00};
    /* version only */
    const uint8_t g[] = {0x08, 0x01};
    Earmark__Envelope *e = NULL;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL(em_wire_unpack(f, sizeof f, &e, &eb), EM_E_PROTO);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "no body"));
    CU_ASSERT_EQUAL(em_wire_unpack(g, sizeof g, &e, &eb), EM_E_PROTO);
    CU_ASSERT_PTR_NULL(e);
}

static void oversized_is_refused_both_ways(void)
{
    size_t big = EM_WIRE_MAX_FRAME + 16;
    uint8_t *raw = calloc(1, big);
    CU_ASSERT_PTR_NOT_NULL_FATAL(raw);
    Earmark__Envelope *e = NULL;
    struct em_errbuf eb = {{0}};
    CU_ASSERT_EQUAL(em_wire_unpack(raw, big, &e, &eb), EM_E_PROTO);
    CU_ASSERT_PTR_NOT_NULL(strstr(eb.msg, "exceeds"));
    /* a task whose meta alone is over the limit cannot be packed */
    memset(raw, 'a', big - 1);
    raw[big - 1] = 0;
    Earmark__Task t;
    earmark__task__init(&t);
    t.meta_json = (char *)raw;
    uint8_t *b = (uint8_t *)raw;
    size_t n = 7;
    CU_ASSERT_EQUAL(em_wire_task(&t, &b, &n, &eb), EM_E_PROTO);
    CU_ASSERT_PTR_NULL(b);
    CU_ASSERT_EQUAL(n, 0);
    free(raw);
}

static void pack_without_body_is_refused(void)
{
    Earmark__Envelope env;
    earmark__envelope__init(&env);
    uint8_t *b;
    size_t n;
    CU_ASSERT_EQUAL(em_wire_pack(&env, &b, &n, NULL), EM_E_PROTO);
}

static void task_ids_round_trip(void)
{
    char id[128], batch[32], item[40];
    unsigned a = 0;
    CU_ASSERT_EQUAL_FATAL(em_wire_task_id("b-0011", "abcd", 3, id, sizeof id), EM_OK);
    CU_ASSERT_STRING_EQUAL(id, "b-0011/abcd/3");
    CU_ASSERT_EQUAL_FATAL(em_wire_task_id_parse(id, batch, sizeof batch, item, sizeof item, &a),
                          EM_OK);
    CU_ASSERT_STRING_EQUAL(batch, "b-0011");
    CU_ASSERT_STRING_EQUAL(item, "abcd");
    CU_ASSERT_EQUAL(a, 3);
    CU_ASSERT_EQUAL(em_wire_task_id("b", "i", 1, id, 4), EM_E_TOO_LONG);
    const char *bad[] = {"",
                         "b",
                         "b/i",
                         "b/i/",
                         "/i/1",
                         "b//1",
                         "b/i/0",
                         "b/i/x",
                         "b/i/1x",
                         "b/i/-1",
                         "b/i/99999999999999999999",
                         NULL};
    for (int i = 0; bad[i]; i++)
        CU_ASSERT_EQUAL(em_wire_task_id_parse(bad[i], batch, sizeof batch, item, sizeof item, &a),
                        EM_E_FORMAT);
    CU_ASSERT_EQUAL(em_wire_task_id_parse("bbbbbbbb/i/1", batch, 4, item, sizeof item, &a),
                    EM_E_FORMAT);
    CU_ASSERT_EQUAL(em_wire_task_id_parse(NULL, batch, 4, item, sizeof item, &a), EM_E_FORMAT);
}

static CU_TestInfo tests[] = {
    {"hello_round_trips", hello_round_trips},
    {"every_kind_round_trips", every_kind_round_trips},
    {"empty_and_garbage_are_refused", empty_and_garbage_are_refused},
    {"truncated_frames_are_refused", truncated_frames_are_refused},
    {"wrong_version_is_refused", wrong_version_is_refused},
    {"unknown_oneof_is_refused", unknown_oneof_is_refused},
    {"oversized_is_refused_both_ways", oversized_is_refused_both_ways},
    {"pack_without_body_is_refused", pack_without_body_is_refused},
    {"task_ids_round_trip", task_ids_round_trip},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_wire = {"wire", NULL, NULL, NULL, NULL, tests};
