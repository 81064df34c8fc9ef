/* tests/integration/test_it_worker.c - one real `earmark worker` process against a fake
 * coordinator (a ROUTER socket in this test): the handshake, credits, results and records
 * for good, bad, missing and unstorable inputs, heartbeats while busy, dropped garbage,
 * Cancel of a queued task and the SIGTERM drain. file:// storage only, no Redis.
 * The worker runs with the test-only EARMARK_FAULT_DELAY_MS so a task is in flight long
 * enough to be seen in a heartbeat; nothing asserts on timing. */
#include <CUnit/CUnit.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/clock.h"
#include "proto/wire.h"
#include "tests/helpers/proc.h"

#define WID "wtest"
#define WAIT_MS 20000 /* bound on any single expected message */

static char dir[512], log_path[600], good[600], bad[600];
static void *ctx, *router;
static pid_t wpid = -1;
static int seen_hb_for; /* set when a heartbeat lists want_hb_id */
static char want_hb_id[128];

/* 0.5 s 440 Hz sine, 16 kHz mono s16le WAV. */
static int write_wav(const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    const uint32_t rate = 16000, n = 8000, bytes = n * 2;
    uint8_t h[44];
    memcpy(h, "RIFF", 4);
    uint32_t v = 36 + bytes;
    memcpy(h + 4, &v, 4);
    memcpy(h + 8, "WAVEfmt ", 8);
    v = 16;
    memcpy(h + 16, &v, 4);
    uint16_t fmt = 1, ch = 1, align = 2, bits = 16;
    memcpy(h + 20, &fmt, 2);
    memcpy(h + 22, &ch, 2);
    memcpy(h + 24, &rate, 4);
    v = rate * 2;
    memcpy(h + 28, &v, 4);
    memcpy(h + 32, &align, 2);
    memcpy(h + 34, &bits, 2);
    memcpy(h + 36, "data", 4);
    memcpy(h + 40, &bytes, 4);
    fwrite(h, 1, sizeof h, f);
    for (uint32_t i = 0; i < n; i++) {
        int16_t s = (int16_t)(12000.0 * sin(2.0 * M_PI * 440.0 * i / rate));
        fwrite(&s, 2, 1, f);
    }
    return fclose(f);
}

static void dump_log(void)
{
    th_sh("echo '--- worker log (tail)'; tail -n 40 '%s' >&2", log_path);
}

/* The worker's connection as the ROUTER names it (workers set no routing id): learnt from
 * every message received. */
static uint8_t peer[256];
static size_t peer_len;

static int send_frame(uint8_t *buf, size_t len)
{
    int rc = -1;
    if (peer_len && zmq_send(router, peer, peer_len, ZMQ_SNDMORE) >= 0 &&
        zmq_send(router, buf, len, 0) >= 0)
        rc = 0;
    free(buf);
    return rc;
}

/* Receives frames until one of kind `want` (or `also`) arrives (heartbeats are noted and
 * skipped unless wanted). Returns it (caller frees with em_wire_free) or NULL after WAIT_MS. */
static Earmark__Envelope *expect_either(Earmark__Envelope__BodyCase want,
                                        Earmark__Envelope__BodyCase also)
{
    int64_t until = em_now_ms() + WAIT_MS;
    while (em_now_ms() < until) {
        zmq_pollitem_t it = {router, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 100) <= 0) continue;
        uint8_t id[256];
        uint8_t buf[65536];
        int idn = zmq_recv(router, id, sizeof id, 0);
        int n = zmq_recv(router, buf, sizeof buf, 0);
        if (idn <= 0 || idn > (int)sizeof id || n < 0 || n > (int)sizeof buf) continue;
        memcpy(peer, id, (size_t)idn);
        peer_len = (size_t)idn;
        Earmark__Envelope *e = NULL;
        if (em_wire_unpack(buf, (size_t)n, &e, NULL) != EM_OK) continue;
        if (e->body_case == EARMARK__ENVELOPE__BODY_HEARTBEAT)
            for (size_t i = 0; i < e->heartbeat->n_task_ids; i++)
                if (strcmp(e->heartbeat->task_ids[i], want_hb_id) == 0) seen_hb_for = 1;
        if (e->body_case == want || e->body_case == also) return e;
        em_wire_free(e);
    }
    dump_log();
    return NULL;
}

static Earmark__Envelope *expect(Earmark__Envelope__BodyCase want)
{
    return expect_either(want, want);
}

static void send_task_dl(const char *task_id, const char *item, const char *source,
                         const char *out, uint64_t deadline_ms)
{
    Earmark__Task t;
    earmark__task__init(&t);
    t.task_id = (char *)task_id;
    t.batch_id = (char *)"b-test";
    t.item_id = (char *)item;
    t.source = (char *)source;
    t.out_uri = (char *)out;
    t.attempt = 2;
    t.meta_json = (char *)"{\"k\":1}";
    t.producer_hash = (char *)"ph";
    t.deadline_ms = deadline_ms;
    uint8_t *b;
    size_t n;
    CU_ASSERT_EQUAL_FATAL(em_wire_task(&t, &b, &n, NULL), EM_OK);
    CU_ASSERT_EQUAL(send_frame(b, n), 0);
}

static void send_task(const char *task_id, const char *item, const char *source, const char *out)
{
    send_task_dl(task_id, item, source, out, 0);
}

static json_t *load_record(const char *item)
{
    char p[700];
    snprintf(p, sizeof p, "%s/out/%s.json", dir, item);
    json_error_t je;
    json_t *j = json_load_file(p, 0, &je);
    if (!j) fprintf(stderr, "record %s: %s\n", p, je.text);
    return j;
}

static const char *jstr(json_t *o, const char *a, const char *b)
{
    json_t *v = json_object_get(o, a);
    if (b) v = json_object_get(v, b);
    return json_is_string(v) ? json_string_value(v) : "";
}

static int init(void)
{
    if (th_tmpdir(dir, sizeof dir) != 0) return 1;
    snprintf(log_path, sizeof log_path, "%s/worker.log", dir);
    snprintf(good, sizeof good, "%s/tone.wav", dir);
    snprintf(bad, sizeof bad, "%s/notes.wav", dir);
    if (write_wav(good) != 0) return 1;
    if (th_sh("echo 'this is text, not audio' > '%s' && mkdir -p '%s/out'", bad, dir) != 0) return 1;
    ctx = zmq_ctx_new();
    router = zmq_socket(ctx, ZMQ_ROUTER);
    int one = 1, linger = 0;
    zmq_setsockopt(router, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt(router, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(router, "tcp://127.0.0.1:*") != 0) return 1;
    char ep[128];
    size_t epl = sizeof ep;
    zmq_getsockopt(router, ZMQ_LAST_ENDPOINT, ep, &epl);
    char *argv[] = {(char *)th_bin(), "worker", "--connect", ep, "--id", WID, "--threads", "1",
                    "--capacity", "2", "--drain-ms", "20000", "--source-root", dir, NULL};
    static char *env[] = {"EARMARK_FAULT_DELAY_MS=300", "EARMARK_LOG=debug", NULL};
    wpid = th_spawn(argv, env, log_path);
    return wpid > 0 ? 0 : 1;
}

static int clean(void)
{
    if (wpid > 0) th_stop(wpid, SIGKILL, 5000);
    if (router) zmq_close(router);
    if (ctx) zmq_ctx_term(ctx);
    th_rmrf(dir);
    return 0;
}

static void hello_then_ready(void)
{
    Earmark__Envelope *e = expect(EARMARK__ENVELOPE__BODY_HELLO);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_STRING_EQUAL(e->hello->worker_id, WID);
    CU_ASSERT_STRING_EQUAL(e->hello->backend, "cpu");
    CU_ASSERT_STRING_EQUAL(e->hello->version, EM_VERSION);
    CU_ASSERT_STRING_EQUAL(e->hello->model, "none");
    CU_ASSERT_EQUAL(e->hello->capacity, 2);
    CU_ASSERT_EQUAL(e->hello->pid, (uint32_t)wpid);
    em_wire_free(e);
    uint8_t *b;
    size_t n;
    CU_ASSERT_EQUAL_FATAL(em_wire_welcome(50, 1000, &b, &n, NULL), EM_OK);
    CU_ASSERT_EQUAL_FATAL(send_frame(b, n), 0);
    e = expect(EARMARK__ENVELOPE__BODY_READY);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->ready->credits, 2);
    em_wire_free(e);
}

/* Garbage, a wrong protocol version and a Task without an id are dropped; the worker then still
 * answers an unexpected Welcome with its free credits. */
static void garbage_dropped_and_rewelcome(void)
{
    static const char junk[] = "\xff\xff\xff garbage!!!";
    uint8_t *g = malloc(sizeof junk);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    memcpy(g, junk, sizeof junk);
    CU_ASSERT_EQUAL(send_frame(g, sizeof junk), 0);
    uint8_t *b;
    size_t n;
    CU_ASSERT_EQUAL_FATAL(em_wire_ready(3, &b, &n, NULL), EM_OK);
    b[1] = 7; /* Envelope.version = 7 (field 1 varint is the first two bytes) */
    CU_ASSERT_EQUAL(send_frame(b, n), 0);
    Earmark__Task t; /* a task without an id cannot be answered: dropped, slot not taken */
    earmark__task__init(&t);
    t.item_id = (char *)"x";
    CU_ASSERT_EQUAL_FATAL(em_wire_task(&t, &b, &n, NULL), EM_OK);
    CU_ASSERT_EQUAL(send_frame(b, n), 0);
    CU_ASSERT_EQUAL_FATAL(em_wire_welcome(50, 1000, &b, &n, NULL), EM_OK);
    CU_ASSERT_EQUAL(send_frame(b, n), 0);
    Earmark__Envelope *e = expect(EARMARK__ENVELOPE__BODY_READY);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->ready->credits, 2);
    em_wire_free(e);
    size_t len = 0;
    char *logtext = th_slurp(log_path, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(logtext);
    CU_ASSERT_PTR_NOT_NULL(strstr(logtext, "malformed frame dropped"));
    CU_ASSERT_PTR_NOT_NULL(strstr(logtext, "task with an empty or oversized id dropped"));
    free(logtext);
}

static Earmark__Envelope *expect_result(const char *task_id)
{
    for (int k = 0; k < 8; k++) {
        Earmark__Envelope *e = expect(EARMARK__ENVELOPE__BODY_RESULT);
        if (!e) return NULL;
        if (strcmp(e->result->task_id, task_id) == 0) return e;
        em_wire_free(e);
    }
    return NULL;
}

static void good_clip_is_annotated(void)
{
    char src[700], out[700];
    snprintf(src, sizeof src, "file://%s", good);
    snprintf(out, sizeof out, "file://%s/out/item-good.json", dir);
    snprintf(want_hb_id, sizeof want_hb_id, "t-good");
    seen_hb_for = 0;
    send_task("t-good", "item-good", src, out);
    Earmark__Envelope *e = expect_result("t-good");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_TRUE(seen_hb_for); /* heartbeats flow while the task runs */
    CU_ASSERT_TRUE(e->result->ok);
    CU_ASSERT_STRING_EQUAL(e->result->item_id, "item-good");
    CU_ASSERT_STRING_EQUAL(e->result->batch_id, "b-test");
    CU_ASSERT_EQUAL(e->result->attempt, 2);
    CU_ASSERT_STRING_EQUAL(e->result->output_uri, out);
    CU_ASSERT_DOUBLE_EQUAL(e->result->duration_s, 0.5, 0.02);
    em_wire_free(e);
    e = expect(EARMARK__ENVELOPE__BODY_READY);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->ready->credits, 1);
    em_wire_free(e);
    json_t *r = load_record("item-good");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_STRING_EQUAL(jstr(r, "status", NULL), "ok");
    CU_ASSERT_STRING_EQUAL(jstr(r, "source", NULL), src);
    CU_ASSERT_STRING_EQUAL(jstr(r, "worker", NULL), WID);
    CU_ASSERT_STRING_EQUAL(jstr(r, "batch_id", NULL), "b-test");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(r, "attempt")), 2);
    double d = json_number_value(json_object_get(json_object_get(r, "audio"), "duration_s"));
    CU_ASSERT_DOUBLE_EQUAL(d, 0.5, 0.02);
    json_decref(r);
}

/* Permanent failures: an error record naming the cause, retryable=false. */
static void check_permanent(const char *task, const char *item, const char *src, const char *cls,
                            const char *mention)
{
    char out[700];
    snprintf(out, sizeof out, "file://%s/out/%s.json", dir, item);
    send_task(task, item, src, out);
    Earmark__Envelope *e = expect_result(task);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_FALSE(e->result->ok);
    CU_ASSERT_FALSE(e->result->retryable);
    CU_ASSERT_STRING_EQUAL(e->result->error_class, cls);
    CU_ASSERT_PTR_NOT_NULL(strstr(e->result->error_message, mention));
    CU_ASSERT_STRING_EQUAL(e->result->output_uri, out);
    em_wire_free(e);
    json_t *r = load_record(item);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_STRING_EQUAL(jstr(r, "status", NULL), "failed");
    CU_ASSERT_STRING_EQUAL(jstr(r, "error", "class"), cls);
    CU_ASSERT_PTR_NOT_NULL(strstr(jstr(r, "error", "message"), mention));
    CU_ASSERT_STRING_EQUAL(jstr(r, "source", NULL), src);
    json_decref(r);
}

static void text_named_wav_gets_error_record(void)
{
    char src[700];
    snprintf(src, sizeof src, "file://%s", bad);
    check_permanent("t-bad", "item-bad", src, "EM_E_AUDIO", "notes.wav");
}

static void missing_source_gets_notfound_record(void)
{
    char src[700];
    snprintf(src, sizeof src, "file://%s/nope.wav", dir);
    check_permanent("t-missing", "item-missing", src, "EM_E_NOTFOUND", "nope.wav");
}

/* A record that cannot be stored is a retryable failure and names no output. */
static void unstorable_output_is_retryable(void)
{
    char src[700], out[700];
    snprintf(src, sizeof src, "file://%s", good);
    snprintf(out, sizeof out, "file://%s/tone.wav/sub/x.json", dir); /* parent is a file */
    send_task("t-unstorable", "item-unstorable", src, out);
    Earmark__Envelope *e = expect_result("t-unstorable");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_FALSE(e->result->ok);
    CU_ASSERT_TRUE(e->result->retryable);
    CU_ASSERT_STRING_EQUAL(e->result->output_uri, "");
    CU_ASSERT_STRING_NOT_EQUAL(e->result->error_class, "");
    em_wire_free(e);
}

/* A task whose deadline passed before it started is not run: retryable, no record. */
static void past_deadline_is_not_run(void)
{
    char src[700], out[700], path[700];
    snprintf(src, sizeof src, "file://%s", good);
    snprintf(out, sizeof out, "file://%s/out/item-late.json", dir);
    snprintf(path, sizeof path, "%s/out/item-late.json", dir);
    send_task_dl("t-late", "item-late", src, out, (uint64_t)(em_wall_ms() - 60000));
    Earmark__Envelope *e = expect_result("t-late");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_FALSE(e->result->ok);
    CU_ASSERT_TRUE(e->result->retryable);
    CU_ASSERT_STRING_EQUAL(e->result->error_class, "EM_E_TIMEOUT");
    CU_ASSERT_STRING_EQUAL(e->result->output_uri, "");
    em_wire_free(e);
    CU_ASSERT_PTR_NULL(th_slurp(path, NULL));
}

/* With one thread and capacity 2, the second task waits; a Cancel answers it unrun. A
 * repeated task id is not run twice. */
static void cancel_of_queued_task(void)
{
    char src[700], out1[700], out2[700];
    snprintf(src, sizeof src, "file://%s", good);
    snprintf(out1, sizeof out1, "file://%s/out/item-c1.json", dir);
    snprintf(out2, sizeof out2, "file://%s/out/item-c2.json", dir);
    send_task("t-c1", "item-c1", src, out1);
    send_task("t-c1", "item-c1", src, out1); /* a duplicate is ignored: one result */
    send_task("t-c2", "item-c2", src, out2);
    uint8_t *b;
    size_t n;
    CU_ASSERT_EQUAL_FATAL(em_wire_cancel("t-c2", &b, &n, NULL), EM_OK);
    CU_ASSERT_EQUAL(send_frame(b, n), 0);
    int got1 = 0, got2 = 0;
    for (int k = 0; k < 2; k++) {
        Earmark__Envelope *e = expect(EARMARK__ENVELOPE__BODY_RESULT);
        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        if (strcmp(e->result->task_id, "t-c1") == 0) {
            got1 = 1;
            CU_ASSERT_TRUE(e->result->ok);
        } else if (strcmp(e->result->task_id, "t-c2") == 0) {
            /* the cancel may lose the race with the thread picking t-c2 up */
            got2 = 1;
            CU_ASSERT_TRUE(e->result->ok || strcmp(e->result->error_class, "EM_E_CANCELLED") == 0);
        }
        em_wire_free(e);
    }
    CU_ASSERT_TRUE(got1 && got2);
    size_t len = 0;
    char *logtext = th_slurp(log_path, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(logtext);
    CU_ASSERT_PTR_NOT_NULL(strstr(logtext, "duplicate task ignored"));
    free(logtext);
}

/* SIGTERM while one task runs and another waits: the worker says Goodbye (so the
 * coordinator sends it nothing more), both tasks still finish and are answered, then the
 * worker exits 0. */
static void sigterm_finishes_held_tasks(void)
{
    char src[700], out[700], out2[700];
    snprintf(src, sizeof src, "file://%s", good);
    snprintf(out, sizeof out, "file://%s/out/item-term.json", dir);
    snprintf(out2, sizeof out2, "file://%s/out/item-term2.json", dir);
    snprintf(want_hb_id, sizeof want_hb_id, "t-term2");
    seen_hb_for = 0;
    send_task("t-term", "item-term", src, out);
    send_task("t-term2", "item-term2", src, out2);
    for (int k = 0; k < 50 && !seen_hb_for; k++) {
        Earmark__Envelope *h = expect(EARMARK__ENVELOPE__BODY_HEARTBEAT);
        CU_ASSERT_PTR_NOT_NULL_FATAL(h);
        em_wire_free(h);
    }
    CU_ASSERT_TRUE_FATAL(seen_hb_for); /* the worker holds both */
    kill(wpid, SIGTERM);
    int ok = 0, results = 0, goodbyes = 0;
    for (int k = 0; k < 200 && (results < 2 || !goodbyes); k++) {
        Earmark__Envelope *e =
            expect_either(EARMARK__ENVELOPE__BODY_RESULT, EARMARK__ENVELOPE__BODY_GOODBYE);
        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        if (e->body_case == EARMARK__ENVELOPE__BODY_GOODBYE) {
            goodbyes++;
        } else {
            results++;
            ok += (strcmp(e->result->task_id, "t-term") == 0 ||
                   strcmp(e->result->task_id, "t-term2") == 0) &&
                  e->result->ok;
        }
        em_wire_free(e);
    }
    CU_ASSERT_EQUAL(ok, 2);
    CU_ASSERT_EQUAL(goodbyes, 1);
    int rc = th_wait(wpid, WAIT_MS);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc >= 0) wpid = -1;
    json_t *r = load_record("item-term2");
    CU_ASSERT_PTR_NOT_NULL(r);
    json_decref(r);
    char *logtext = th_slurp(log_path, NULL); /* SAN=1: no report on any path taken */
    CU_ASSERT_PTR_NOT_NULL_FATAL(logtext);
    CU_ASSERT_PTR_NULL(strstr(logtext, "runtime error:"));
    CU_ASSERT_PTR_NULL(strstr(logtext, "Sanitizer"));
    free(logtext);
}

static CU_TestInfo tests[] = {
    {"hello_then_ready", hello_then_ready},
    {"garbage_dropped_and_rewelcome", garbage_dropped_and_rewelcome},
    {"good_clip_is_annotated", good_clip_is_annotated},
    {"text_named_wav_gets_error_record", text_named_wav_gets_error_record},
    {"missing_source_gets_notfound_record", missing_source_gets_notfound_record},
    {"unstorable_output_is_retryable", unstorable_output_is_retryable},
    {"past_deadline_is_not_run", past_deadline_is_not_run},
    {"cancel_of_queued_task", cancel_of_queued_task},
    {"sigterm_finishes_held_tasks", sigterm_finishes_held_tasks},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_it_worker = {"it_worker", init, clean, NULL, NULL, tests};
