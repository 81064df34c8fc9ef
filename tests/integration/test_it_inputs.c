/* tests/integration/test_it_inputs.c - what a submitter may make a worker read, and where
 * records may go (issue 10, items 4, 5, 6, 12, 14), on a real cluster: redis-server, the
 * coordinator, two workers with --source-root = the cluster's temp dir, file:// outputs.
 *   fifo:      FIFOs as sources get error records and never block a worker; the batch and
 *              a later one complete;
 *   roots:     /etc/passwd (outside the roots), a missing path outside them and a symlink
 *              inside a root pointing out of it give one and the same message;
 *   hls:       a file:// HLS playlist pointing at a loopback listener the test runs gets an
 *              error record, and no connection ever reaches the listener;
 *   bad out:   ftp://, http://, s3:// without credentials, /proc/nope, a relative path: each
 *              fails `submit` with exit 2 and a one-line reason, and nothing is queued;
 *   refused:   an S3 output whose every record PUT is answered 403 (a scripted stub after
 *              the submit probe): workers report it permanent, the coordinator does not
 *              retry its error records or the manifest forever, and the batch completes;
 *   resubmit:  a batch with a failure, resubmitted with --skip-done after the cause is
 *              fixed, leaves exactly one object per item; manifest ids are the item ids
 *              (the same URI under two ids is two items);
 *   cut mp3:   an mp3 cut mid-frame is ok with audio.decode_errors > 0 by default, and a
 *              failed item (EM_E_AUDIO, naming --strict-audio) under submit --strict-audio. */
#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/helpers/clips.h"
#include "tests/helpers/cluster.h"
#include "tests/helpers/proc.h"

static struct th_cluster c;
static struct em_storage *st;

static int clean(void)
{
    th_cluster_stop_storage(&c, &st);
    return 0;
}

static int init(void)
{
    struct th_cluster_opts o = {.workers = 2, .threads = 1};
    return th_cluster_start_storage(&c, &o, NULL, &st) != 0;
}

/* c.dir/<name>, created; path into out. */
static int subdir(const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", c.dir, name);
    return mkdir(out, 0755) == 0 ? 0 : -1;
}

static int tone(const char *dir, const char *name)
{
    char p[900];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return th_make_tone(p, 440, 0.3, 1.0, 16000, 1);
}

/* Writes lines (NULL-terminated) to path, one per line. */
static int write_lines(const char *path, const char *const *lines)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    for (size_t i = 0; lines[i]; i++) fprintf(f, "%s\n", lines[i]);
    return fclose(f);
}

/* The record at <out>/<name>.json, or NULL. */
static json_t *record_named(const char *out, const char *name)
{
    char key[1000];
    snprintf(key, sizeof key, "%s/%s.json", out, name);
    uint8_t *d = NULL;
    size_t n = 0;
    json_t *j = em_storage_get(st, key, &d, &n, NULL) == EM_OK ? json_loadb((char *)d, n, 0, NULL)
                                                               : NULL;
    free(d);
    return j;
}

/* ---- fifo ---- */

static void fifo_source_never_stalls_a_worker(void)
{
    char d[700], m[800], out[800], f1[800], f2[800], s[4][900];
    CU_ASSERT_EQUAL_FATAL(subdir("fifo", d, sizeof d), 0);
    CU_ASSERT_EQUAL_FATAL(tone(d, "good1.wav") | tone(d, "good2.wav"), 0);
    snprintf(f1, sizeof f1, "%s/pipe1.wav", d);
    snprintf(f2, sizeof f2, "%s/pipe2.wav", d);
    CU_ASSERT_EQUAL_FATAL(mkfifo(f1, 0644) | mkfifo(f2, 0644), 0);
    /* two FIFOs: before the fix each blocked one worker's thread in open() for good */
    snprintf(s[0], sizeof s[0], "file://%s", f1);
    snprintf(s[1], sizeof s[1], "file://%s/good1.wav", d);
    snprintf(s[2], sizeof s[2], "file://%s", f2);
    snprintf(s[3], sizeof s[3], "file://%s/good2.wav", d);
    const char *lines[] = {s[0], s[1], s[2], s[3], NULL};
    snprintf(m, sizeof m, "%s/manifest.txt", d);
    CU_ASSERT_EQUAL_FATAL(write_lines(m, lines), 0);
    snprintf(out, sizeof out, "file://%s/out-fifo", c.dir);
    CU_ASSERT_EQUAL_FATAL(th_cluster_submit(&c, m, out, 2), 0);
    CU_ASSERT_EQUAL_FATAL(th_cluster_wait(&c, st, out, TH_CLUSTER_WAIT_MS, NULL, NULL), 0);
    for (int i = 0; i < 4; i++) {
        json_t *r = th_record_get(st, out, c.batch, s[i]);
        int bad = i % 2 == 0 ? th_record_check_failed(r, s[i], "EM_E_ARG", "not a regular file")
                             : th_record_check_ok(r, s[i], c.batch);
        CU_ASSERT_EQUAL(bad, 0);
        json_decref(r);
    }
    /* the workers are free: a later batch completes too */
    const char *later[] = {s[1], s[3], NULL};
    snprintf(m, sizeof m, "%s/later.txt", d);
    CU_ASSERT_EQUAL_FATAL(write_lines(m, later), 0);
    snprintf(out, sizeof out, "file://%s/out-fifo-later", c.dir);
    CU_ASSERT_EQUAL_FATAL(th_cluster_submit(&c, m, out, 2), 0);
    CU_ASSERT_EQUAL(th_cluster_wait(&c, st, out, TH_CLUSTER_WAIT_MS, NULL, NULL), 0);
    for (int i = 1; i < 4; i += 2) {
        json_t *r = th_record_get(st, out, c.batch, s[i]);
        CU_ASSERT_EQUAL(th_record_check_ok(r, s[i], c.batch), 0);
        json_decref(r);
    }
}

/* ---- roots ---- */

/* error.message after the "<name>: " the pipeline puts first. */
static const char *after_name(const json_t *r)
{
    const char *msg = th_jstr(r, "error", "message"), *p = strstr(msg, ": ");
    return p ? p + 2 : msg;
}

static void outside_roots_one_message(void)
{
    char d[700], m[800], out[800], link[800], s[4][900];
    CU_ASSERT_EQUAL_FATAL(subdir("roots", d, sizeof d), 0);
    CU_ASSERT_EQUAL_FATAL(tone(d, "inside.wav"), 0);
    snprintf(link, sizeof link, "%s/escape.wav", d);
    CU_ASSERT_EQUAL_FATAL(symlink("/etc/passwd", link), 0);
    snprintf(s[0], sizeof s[0], "file:///etc/passwd");
    snprintf(s[1], sizeof s[1], "file:///earmark-no-such-dir/passwd");
    snprintf(s[2], sizeof s[2], "file://%s", link);
    snprintf(s[3], sizeof s[3], "file://%s/inside.wav", d);
    const char *lines[] = {s[0], s[1], s[2], s[3], NULL};
    snprintf(m, sizeof m, "%s/manifest.txt", d);
    CU_ASSERT_EQUAL_FATAL(write_lines(m, lines), 0);
    snprintf(out, sizeof out, "file://%s/out-roots", c.dir);
    CU_ASSERT_EQUAL_FATAL(th_cluster_submit(&c, m, out, 2), 0);
    CU_ASSERT_EQUAL_FATAL(th_cluster_wait(&c, st, out, TH_CLUSTER_WAIT_MS, NULL, NULL), 0);
    json_t *r[4];
    for (int i = 0; i < 4; i++) r[i] = th_record_get(st, out, c.batch, s[i]);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(th_record_check_failed(r[i], s[i], "EM_E_NOTFOUND", NULL), 0);
    CU_ASSERT_EQUAL(th_record_check_ok(r[3], s[3], c.batch), 0);
    /* an existing file and a missing one outside the roots: byte-identical errors */
    CU_ASSERT_STRING_EQUAL(th_jstr(r[0], "error", "message"), th_jstr(r[1], "error", "message"));
    CU_ASSERT_STRING_EQUAL(after_name(r[0]), after_name(r[2]));
    CU_ASSERT_PTR_NULL(strstr(th_jstr(r[0], "error", "message"), "format"));
    CU_ASSERT_PTR_NULL(strstr(th_jstr(r[1], "error", "message"), "No such file"));
    for (int i = 0; i < 4; i++) json_decref(r[i]);
}

/* ---- hls ---- */

static void hls_playlist_opens_no_connection(void)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_TRUE_FATAL(ls >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    CU_ASSERT_EQUAL_FATAL(bind(ls, (struct sockaddr *)&a, sizeof a), 0);
    CU_ASSERT_EQUAL_FATAL(listen(ls, 16), 0);
    CU_ASSERT_EQUAL_FATAL(getsockname(ls, (struct sockaddr *)&a, &al), 0);
    int port = ntohs(a.sin_port);

    char d[700], m[800], out[800], pl[800], s[900];
    CU_ASSERT_EQUAL_FATAL(subdir("hls", d, sizeof d), 0);
    snprintf(pl, sizeof pl, "%s/list.m3u8", d);
    FILE *f = fopen(pl, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fprintf(f, "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
               "#EXTINF:2.0,\nhttp://127.0.0.1:%d/seg0.ts\n#EXTINF:2.0,\n"
               "http://127.0.0.1:%d/seg1.ts\n#EXT-X-ENDLIST\n",
            port, port);
    fclose(f);
    snprintf(s, sizeof s, "file://%s", pl);
    const char *lines[] = {s, NULL};
    snprintf(m, sizeof m, "%s/manifest.txt", d);
    CU_ASSERT_EQUAL_FATAL(write_lines(m, lines), 0);
    snprintf(out, sizeof out, "file://%s/out-hls", c.dir);
    CU_ASSERT_EQUAL_FATAL(th_cluster_submit(&c, m, out, 2), 0);
    CU_ASSERT_EQUAL(th_cluster_wait(&c, st, out, TH_CLUSTER_WAIT_MS, NULL, NULL), 0);
    json_t *r = th_record_get(st, out, c.batch, s);
    CU_ASSERT_EQUAL(th_record_check_failed(r, s, "EM_E_AUDIO", NULL), 0);
    json_decref(r);
    /* the item is settled, so the worker is done with it: nothing may be waiting */
    struct pollfd p = {.fd = ls, .events = POLLIN};
    CU_ASSERT_EQUAL(poll(&p, 1, 0), 0);
    close(ls);
}

/* ---- bad out ---- */

/* Batches in the cluster's Redis plus entries in the items stream (what a submit adds),
 * -1 on error. */
static int redis_queued(void)
{
    char path[700];
    snprintf(path, sizeof path, "%s/queued.txt", c.dir);
    if (th_sh("(redis-cli -u '%s' --scan --pattern 'earmark:batch:*' | grep -c '^earmark:batch:[^:]*$';"
              " redis-cli -u '%s' XLEN earmark:items) > '%s'",
              c.redis.url, c.redis.url, path) > 1)
        return -1;
    size_t n = 0;
    char *t = th_slurp(path, &n);
    long a = -1, b = -1;
    if (t && sscanf(t, "%ld %ld", &a, &b) != 2) a = b = -1;
    free(t);
    return a < 0 || b < 0 ? -1 : (int)(a + b);
}

static void bad_out_fails_submit_and_queues_nothing(void)
{
    char d[700], m[800], s[900];
    CU_ASSERT_EQUAL_FATAL(subdir("badout", d, sizeof d), 0);
    CU_ASSERT_EQUAL_FATAL(tone(d, "a.wav"), 0);
    snprintf(s, sizeof s, "file://%s/a.wav", d);
    const char *lines[] = {s, NULL};
    snprintf(m, sizeof m, "%s/manifest.txt", d);
    CU_ASSERT_EQUAL_FATAL(write_lines(m, lines), 0);
    static const char *const outs[] = {"ftp://x/y", "http://127.0.0.1:9/out", "s3://earmark-nocreds/out",
                                       "/proc/nope", "file:///proc/nope", "relative/out"};
    char bin[4096];
    CU_ASSERT_PTR_NOT_NULL_FATAL(realpath(th_bin(), bin)); /* submit runs from d below */
    int keys0 = redis_queued();
    CU_ASSERT_TRUE_FATAL(keys0 >= 0);
    for (size_t i = 0; i < sizeof outs / sizeof *outs; i++) {
        char so[800], se[800];
        snprintf(so, sizeof so, "%s/stdout-%zu", d, i);
        snprintf(se, sizeof se, "%s/stderr-%zu", d, i);
        int rc = th_sh("cd '%s' && env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "
                       "AWS_ENDPOINT_URL=http://127.0.0.1:9 '%s' submit --redis '%s' "
                       "--manifest '%s' --out '%s' > '%s' 2> '%s'",
                       d, bin, c.redis.url, m, outs[i], so, se);
        CU_ASSERT_EQUAL(rc, 2);
        size_t no = 0, ne = 0;
        char *o = th_slurp(so, &no), *e = th_slurp(se, &ne);
        CU_ASSERT_EQUAL(no, 0); /* no batch id */
        int nl = 0;
        for (size_t k = 0; e && k < ne; k++) nl += e[k] == '\n';
        CU_ASSERT_EQUAL(nl, 1); /* one line */
        CU_ASSERT_PTR_NOT_NULL(e ? strstr(e, "--out") : NULL);
        if (rc != 2 || nl != 1) fprintf(stderr, "out %s: rc %d, stderr: %s\n", outs[i], rc, e);
        free(o);
        free(e);
        CU_ASSERT_EQUAL(redis_queued(), keys0); /* nothing queued */
    }
    char rel[800];
    snprintf(rel, sizeof rel, "%s/relative", d);
    CU_ASSERT_NOT_EQUAL(access(rel, F_OK), 0); /* nothing written beside submit either */
}

/* ---- refused ---- */

static const char *const ok_put = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
static const char *const ok_del =
    "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
static const char *const denied =
    "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: 61\r\n"
    "Connection: close\r\n\r\n<Error><Code>AccessDenied</Code><Message>no</Message></Error>\n";

static void refused_puts_are_final_not_endless(void)
{
    const char *responses[] = {ok_put, ok_del, denied}; /* the probe passes, then 403 */
    struct th_stub *sb = th_stub_start(responses, 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sb);
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", th_stub_port(sb));
    char d[700], m[800], s[2][900], log[800];
    CU_ASSERT_EQUAL_FATAL(subdir("refused", d, sizeof d), 0);
    CU_ASSERT_EQUAL_FATAL(tone(d, "a.wav") | tone(d, "b.wav"), 0);
    snprintf(s[0], sizeof s[0], "file://%s/a.wav", d);
    snprintf(s[1], sizeof s[1], "file://%s/b.wav", d);
    const char *lines[] = {s[0], s[1], NULL};
    snprintf(m, sizeof m, "%s/manifest.txt", d);
    CU_ASSERT_EQUAL_FATAL(write_lines(m, lines), 0);
    /* the workers and the coordinator take their endpoint from the environment they were
     * started with, so this cluster's own processes are restarted with it */
    th_s3_env_set(ep, "AK", "SK");
    th_cluster_coord_kill(&c, SIGTERM);
    for (int i = 0; i < c.nworkers; i++) th_cluster_worker_kill(&c, i, SIGTERM);
    int up = th_cluster_coord_start(&c) == 0;
    for (int i = 0; up && i < c.nworkers; i++) up = th_cluster_worker_start(&c, i) == 0;
    CU_ASSERT_TRUE(up);
    snprintf(log, sizeof log, "%s/refused-submit.log", d);
    int rc = up ? th_sh("timeout 100 '%s' submit --redis '%s' --manifest '%s' --out "
                        "s3://earmark-refused/out --max-attempts 3 --wait > /dev/null 2> '%s'",
                        th_bin(), c.redis.url, m, log)
                : -1;
    CU_ASSERT_EQUAL(rc, 1); /* completed, with failed items; 124 would be the timeout */
    /* probe (2) + per item a worker PUT and a coordinator PUT + manifest: nothing repeated */
    size_t n = th_stub_count(sb);
    CU_ASSERT_TRUE(n >= 5 && n <= 8);
    if (n > 8) fprintf(stderr, "refused: %zu requests reached the stub\n", n);
    char pattern[64];
    snprintf(pattern, sizeof pattern, "err=EM_E_AUTH retryable=0");
    CU_ASSERT_EQUAL(th_sh("grep -q '%s' '%s'/worker*.log", pattern, c.dir), 0);
    CU_ASSERT_NOT_EQUAL(
        th_sh("grep -q 'will retry' '%s/coordinator-%d.log'", c.dir, c.coord_runs), 0);
    th_s3_env_restore();
    th_cluster_coord_kill(&c, SIGTERM);
    for (int i = 0; i < c.nworkers; i++) th_cluster_worker_kill(&c, i, SIGTERM);
    CU_ASSERT_EQUAL(th_cluster_coord_start(&c), 0);
    for (int i = 0; i < c.nworkers; i++) CU_ASSERT_EQUAL(th_cluster_worker_start(&c, i), 0);
    th_stub_stop(sb);
}

/* ---- resubmit ---- */

static void resubmission_leaves_one_object_per_source(void)
{
    char d[700], m[800], outdir[800], out[820], s[4][900], late[800];
    CU_ASSERT_EQUAL_FATAL(subdir("resub", d, sizeof d), 0);
    CU_ASSERT_EQUAL_FATAL(tone(d, "a.wav") | tone(d, "b.wav") | tone(d, "c.wav"), 0);
    snprintf(late, sizeof late, "%s/late.wav", d);
    snprintf(s[0], sizeof s[0], "file://%s/a.wav", d);
    snprintf(s[1], sizeof s[1], "file://%s/b.wav", d);
    snprintf(s[2], sizeof s[2], "file://%s", late); /* missing at first */
    snprintf(s[3], sizeof s[3], "file://%s/c.wav", d);
    char j1[1000], j2[1000];
    /* the same URI under two ids is two items, named by their ids */
    snprintf(j1, sizeof j1, "{\"uri\": \"%s\", \"id\": \"take-1\"}", s[3]);
    snprintf(j2, sizeof j2, "{\"uri\": \"%s\", \"id\": \"take-2\", \"meta\": {\"n\": 2}}", s[3]);
    const char *lines[] = {s[0], s[1], s[2], j1, j2, NULL};
    snprintf(m, sizeof m, "%s/manifest.txt", d);
    CU_ASSERT_EQUAL_FATAL(write_lines(m, lines), 0);
    snprintf(outdir, sizeof outdir, "%s/out-resub", c.dir);
    snprintf(out, sizeof out, "file://%s", outdir);
    CU_ASSERT_EQUAL_FATAL(th_cluster_submit(&c, m, out, 2), 0);
    CU_ASSERT_EQUAL_FATAL(th_cluster_wait(&c, st, out, TH_CLUSTER_WAIT_MS, NULL, NULL), 0);
    char first[64];
    snprintf(first, sizeof first, "%s", c.batch);
    CU_ASSERT_EQUAL(th_count_json(outdir), 5);
    json_t *r = th_record_get(st, out, first, s[2]);
    CU_ASSERT_EQUAL(th_record_check_failed(r, s[2], "EM_E_NOTFOUND", NULL), 0);
    json_decref(r);

    /* the cause fixed, the same manifest again to the same output */
    char a[800];
    snprintf(a, sizeof a, "%s/a.wav", d);
    CU_ASSERT_EQUAL_FATAL(th_sh("cp '%s' '%s'", a, late), 0);
    CU_ASSERT_EQUAL_FATAL(th_cluster_submit_with(&c, m, out, 2, "--skip-done --wait"), 0);
    const char *second = c.batch;
    CU_ASSERT_STRING_NOT_EQUAL(second, first);

    CU_ASSERT_EQUAL(th_count_json(outdir), 5); /* exactly one object per item */
    r = th_record_get(st, out, second, s[2]);
    CU_ASSERT_EQUAL(th_record_check_ok(r, s[2], second), 0); /* the batch id is inside */
    json_decref(r);
    r = th_record_get(st, out, first, s[0]); /* skipped: the first batch's record stands */
    CU_ASSERT_EQUAL(th_record_check_ok(r, s[0], first), 0);
    json_decref(r);
    json_t *t1 = record_named(out, "take-1"), *t2 = record_named(out, "take-2");
    CU_ASSERT_STRING_EQUAL(th_jstr(t1, "id", NULL), "take-1");
    CU_ASSERT_STRING_EQUAL(th_jstr(t2, "id", NULL), "take-2");
    CU_ASSERT_STRING_EQUAL(th_jstr(t1, "source", NULL), s[3]);
    CU_ASSERT_STRING_EQUAL(th_jstr(t2, "source", NULL), s[3]);
    CU_ASSERT_STRING_EQUAL(th_jstr(t1, "status", NULL), "ok");
    json_decref(t1);
    json_decref(t2);
    /* manifest.jsonl: five lines, the ids among them */
    char mf[900];
    snprintf(mf, sizeof mf, "%s/manifest.jsonl", outdir);
    CU_ASSERT_EQUAL(th_cluster_sanitizer_reports(&c), 0);
    CU_ASSERT_EQUAL(th_sh("test $(grep -c . '%s') -eq 5 && grep -q '\"id\":\"take-1\"' '%s' && "
                          "grep -q '\"id\":\"take-2\"' '%s' && ! grep -q pending '%s'",
                          mf, mf, mf, mf),
                    0);
}

/* ---- cut mp3 ---- */

static void cut_mp3_counted_and_strict_fails(void)
{
    char d[700], whole[800], cut[800], m[800], out[800], s[2][900];
    CU_ASSERT_EQUAL_FATAL(subdir("cutmp3", d, sizeof d), 0);
    snprintf(whole, sizeof whole, "%s/whole.mp3", d);
    snprintf(cut, sizeof cut, "%s/cut.mp3", d);
    CU_ASSERT_EQUAL_FATAL(th_make_cut_mp3(whole, cut, NULL), 0);
    snprintf(s[0], sizeof s[0], "file://%s", whole);
    snprintf(s[1], sizeof s[1], "file://%s", cut);
    const char *lines[] = {s[0], s[1], NULL};
    snprintf(m, sizeof m, "%s/manifest.txt", d);
    CU_ASSERT_EQUAL_FATAL(write_lines(m, lines), 0);
    for (int strict = 0; strict < 2; strict++) {
        snprintf(out, sizeof out, "file://%s/out-cut%d", c.dir, strict);
        CU_ASSERT_EQUAL_FATAL(
            th_cluster_submit_with(&c, m, out, 1, strict ? "--strict-audio" : NULL), 0);
        CU_ASSERT_EQUAL_FATAL(th_cluster_wait(&c, st, out, TH_CLUSTER_WAIT_MS, NULL, NULL), 0);
        json_t *w = th_record_get(st, out, c.batch, s[0]), *r = th_record_get(st, out, c.batch, s[1]);
        CU_ASSERT_EQUAL(th_record_check_ok(w, s[0], c.batch), 0);
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_object_get(w, "audio"),
                                                           "decode_errors")), 0);
        json_t *de = json_object_get(json_object_get(r, "audio"), "decode_errors");
        CU_ASSERT_TRUE(json_is_integer(de) && json_integer_value(de) > 0);
        if (!strict) {
            CU_ASSERT_EQUAL(th_record_check_ok(r, s[1], c.batch), 0);
        } else {
            CU_ASSERT_EQUAL(th_record_check_failed(r, s[1], "EM_E_AUDIO", "--strict-audio"), 0);
            CU_ASSERT_PTR_NOT_NULL(strstr(th_jstr(r, "error", "message"), "decode errors"));
        }
        json_decref(w);
        json_decref(r);
    }
}

static CU_TestInfo tests[] = {
    {"fifo_source_never_stalls_a_worker", fifo_source_never_stalls_a_worker},
    {"outside_roots_one_message", outside_roots_one_message},
    {"hls_playlist_opens_no_connection", hls_playlist_opens_no_connection},
    {"bad_out_fails_submit_and_queues_nothing", bad_out_fails_submit_and_queues_nothing},
    {"refused_puts_are_final_not_endless", refused_puts_are_final_not_endless},
    {"resubmission_leaves_one_object_per_source", resubmission_leaves_one_object_per_source},
    {"cut_mp3_counted_and_strict_fails", cut_mp3_counted_and_strict_fails},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_it_inputs = {"it_inputs", init, clean, NULL, NULL, tests};
