/* coordinator/cmd.c - `earmark coordinator`: the poll loop.
 *
 * start: consumer group, then every entry still pending for this consumer id (a previous
 * run that died) is taken back. loop: poll ROUTER (<= 100 ms) -> handle messages -> leases
 * -> error records due -> read new entries while workers have spare credits -> dispatch;
 * every lease/3 the held entries' idle time is reset (XCLAIM), every lease the entries other
 * coordinators left idle are XAUTOCLAIMed and this consumer's pending list is re-scanned;
 * every second: batch completion, in-flight counts, queue depth.
 * SIGTERM/SIGINT: stop reading, wait (bounded) for running tasks, exit 0; entries not
 * settled stay pending in Redis for the next run.
 *
 * Knobs (environment): EARMARK_REDIS_URL (for --redis), EARMARK_RETRY_BASE_MS (200; retry n
 * waits base * 2^(n-1)), EARMARK_RETRY_MAX_MS (30000, the cap), EARMARK_TASK_TIMEOUT_MS
 * (3600000; a task's deadline), EARMARK_DRAIN_MS (30000; bound on the SIGTERM drain),
 * EARMARK_REDIS_WAIT_MS (10000; how long to wait for Redis at start), EARMARK_TRIM_EVERY_MS
 * (60000; how often settled stream entries are trimmed), EARMARK_RETENTION (for
 * --retention), EARMARK_STALL_MS (300000; coordinator/health.h). --lease-ms defaults to
 * 5 x --heartbeat-ms (1000). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "common/clock.h"
#include "common/cmd.h"
#include "common/usage.h"
#include "common/log.h"
#include "common/sig.h"
#include "coordinator/cli.h"
#include "coordinator/coord.h"
#include "coordinator/health.h"
#include "coordinator/zap.h"
#include "proto/wire.h"
#include "storage/storage.h"

#define READ_MAX 100 /* entries per XREADGROUP */

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static int64_t env_ms(const char *name, int64_t def, int64_t lo, int64_t hi)
{
    const char *v = getenv(name);
    uint64_t x;
    if (!v || !*v) return def;
    if (em_cli_u64(v, (uint64_t)lo, (uint64_t)hi, &x) != 0) {
        em_warn("msg=\"ignoring bad %s\" value=\"%s\"", name, v);
        return def;
    }
    return (int64_t)x;
}

struct copts {
    const char *redis, *bind, *metrics, *id;
    const char *curve_secret, *allow_keys; /* CURVE: own secret key file, allowed worker keys */
    int insecure;                          /* no CURVE on a non-loopback bind, knowingly */
    const char *redis_ca, *redis_url_file; /* rediss:// CA; URL (with password) from a file */
    int redis_owned; /* redis is our copy of a secret URL: wiped once connected */
    unsigned heartbeat_ms, lease_ms;
    int64_t retention_ms;
};

static const char *env_str(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* Only this host can reach it: 127.0.0.0/8, ::1, localhost, ipc://, inproc://. */
static int bind_is_loopback(const char *ep)
{
    static const char *const ok[] = {"tcp://127.", "tcp://localhost:", "tcp://[::1]:",
                                     "ipc://", "inproc://"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (strncmp(ep, ok[i], strlen(ok[i])) == 0) return 1;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: earmark coordinator --redis URL --bind ENDPOINT [--metrics HOST:PORT]\n"
               "         [--heartbeat-ms N] [--lease-ms N] [--id NAME] [--retention 7d]\n"
               "         [--curve-secret FILE --allow-keys DIR|FILE | --insecure]\n"
               "         [--redis-ca FILE] [--redis-url-file FILE]\n"
               "  --heartbeat-ms  worker heartbeat interval (1000)\n"
               "  --lease-ms      a worker silent this long is lost (5 x heartbeat)\n"
               "  --id            consumer name in Redis, stable across restarts (hostname)\n"
               "  --retention     finished batches' keys expire after this (EARMARK_RETENTION;\n"
               "                  default: kept until `earmark delete`)\n"
               "  --curve-secret  own CURVE secret key file, mode 0600 (earmark keygen)\n"
               "  --allow-keys    worker public keys allowed: a directory of *.pub or a file\n"
               "  --insecure      allow a non-loopback --bind without CURVE\n"
               "  --redis-ca      CA file for a rediss:// server's certificate\n"
               "  --redis-url-file  read the Redis URL (with its password) from a file that\n"
               "                  only its owner can read, so it is not on the command line\n"
               "env: EARMARK_REDIS_URL EARMARK_RETRY_BASE_MS EARMARK_RETRY_MAX_MS\n"
               "     EARMARK_TASK_TIMEOUT_MS EARMARK_DRAIN_MS EARMARK_REDIS_WAIT_MS\n"
               "     EARMARK_CURVE_SECRET EARMARK_ALLOW_KEYS EARMARK_REDIS_CA\n"
               "     EARMARK_REDIS_URL_FILE EARMARK_RETENTION EARMARK_TRIM_EVERY_MS\n"
               "     EARMARK_STALL_MS (a batch settling nothing this long is stalled, 300000)\n"
               "--metrics serves /metrics, /healthz (loop alive), /readyz (Redis answers)\n");
}

static int parse_args(int argc, char **argv, struct copts *o)
{
    static const struct option lo[] = {
        {"redis", required_argument, 0, 'r'},    {"bind", required_argument, 0, 'b'},
        {"metrics", required_argument, 0, 'm'},  {"heartbeat-ms", required_argument, 0, 'H'},
        {"lease-ms", required_argument, 0, 'L'}, {"id", required_argument, 0, 'i'},
        {"help", no_argument, 0, 'h'},           {"curve-secret", required_argument, 0, 'S'},
        {"allow-keys", required_argument, 0, 'A'}, {"insecure", no_argument, 0, 'I'},
        {"redis-ca", required_argument, 0, 'C'},   {"redis-url-file", required_argument, 0, 'U'},
        {"retention", required_argument, 0, 'R'},  {0, 0, 0, 0},
    };
    memset(o, 0, sizeof *o);
    o->heartbeat_ms = 1000;
    o->lease_ms = 0;
    const char *ret = getenv("EARMARK_RETENTION");
    if (ret && *ret && em_cli_duration_ms(ret, 3650LL * 86400000, &o->retention_ms) != 0) {
        fprintf(stderr, "earmark coordinator: EARMARK_RETENTION must be N[s|m|h|d]\n");
        return 2;
    }
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":h", lo, NULL)) != -1;) {
        uint64_t v;
        switch (c) {
        case 'r':
            o->redis = em_cli_redis_arg(optarg);
            o->redis_owned = o->redis != optarg;
            break;
        case 'b': o->bind = optarg; break;
        case 'm': o->metrics = optarg; break;
        case 'i': o->id = optarg; break;
        case 'S': o->curve_secret = optarg; break;
        case 'A': o->allow_keys = optarg; break;
        case 'I': o->insecure = 1; break;
        case 'C': o->redis_ca = optarg; break;
        case 'U': o->redis_url_file = optarg; break;
        case 'R':
            if (em_cli_duration_ms(optarg, 3650LL * 86400000, &o->retention_ms) != 0) {
                fprintf(stderr, "earmark coordinator: --retention must be N[s|m|h|d] (e.g. 7d)\n");
                return 2;
            }
            break;
        case 'H':
        case 'L':
            if (em_cli_u64(optarg, 10, 3600000, &v) != 0) {
                fprintf(stderr, "earmark coordinator: --%s must be 10..3600000\n",
                        c == 'H' ? "heartbeat-ms" : "lease-ms");
                return 2;
            }
            *(c == 'H' ? &o->heartbeat_ms : &o->lease_ms) = (unsigned)v;
            break;
        case 'h':
            usage(stdout);
            return -1;
        default: return em_usage_bad_option("coordinator", usage, c, argv, optind);
        }
    }
    if (!o->redis_url_file) o->redis_url_file = env_str("EARMARK_REDIS_URL_FILE");
    if (!o->redis_ca) o->redis_ca = env_str("EARMARK_REDIS_CA");
    if (o->redis_url_file && !o->redis) {
        static char url[EM_CLI_MAX_URL + 1]; /* zeroed when the coordinator returns */
        struct em_errbuf eb = {{0}};
        em_err rc = em_cli_secret_line(o->redis_url_file, url, sizeof url, &eb);
        if (rc != EM_OK) {
            fprintf(stderr, "earmark coordinator: %s\n", em_errbuf_msg(&eb, rc));
            return 2;
        }
        o->redis = url;
        o->redis_owned = 1;
    }
    o->redis = em_cli_redis_url(o->redis);
    if (!o->redis)
        return em_usage_required("coordinator", usage, "--redis",
                                 "or EARMARK_REDIS_URL, or --redis-url-file");
    if (!o->bind) return em_usage_required("coordinator", usage, "--bind", NULL);
    if (optind != argc)
        return em_usage_error("coordinator", usage, "unexpected argument '%.80s'", argv[optind]);
    if (!o->curve_secret) o->curve_secret = env_str("EARMARK_CURVE_SECRET");
    if (!o->allow_keys) o->allow_keys = env_str("EARMARK_ALLOW_KEYS");
    if (!o->curve_secret != !o->allow_keys) {
        fprintf(stderr, "earmark coordinator: --curve-secret and --allow-keys go together\n");
        return 2;
    }
    if (!o->curve_secret && !o->insecure && !bind_is_loopback(o->bind)) {
        fprintf(stderr,
                "earmark coordinator: refusing to bind %s without CURVE: anyone who can reach "
                "it could take tasks and report fake results. Give --curve-secret and "
                "--allow-keys (earmark keygen), bind to 127.0.0.1, or pass --insecure\n",
                o->bind);
        return 2;
    }
    if (!o->lease_ms) o->lease_ms = o->heartbeat_ms * 5;
    if (o->lease_ms <= o->heartbeat_ms) {
        fprintf(stderr, "earmark coordinator: --lease-ms must exceed --heartbeat-ms\n");
        return 2;
    }
    return 0;
}

static int held(const struct em_coord *c, const char *stream_id)
{
    for (size_t i = 0; i < c->njobs; i++)
        if (strcmp(c->jobs[i]->e.stream_id, stream_id) == 0) return 1;
    return 0;
}

/* Turns one stream entry into a held job (ownership of e's strings moves). */
static void intake(struct em_coord *c, struct em_queue_entry *e)
{
    struct em_errbuf eb = {{0}};
    struct em_cbatch *b = NULL;
    char st[16], q[300];
    if (held(c, e->stream_id)) return;
    em_err rc = em_coord_batch(c, e->batch, &b, &eb);
    if (rc == EM_E_NOTFOUND || rc == EM_E_FORMAT) {
        em_error("batch=%s item=%s err=%s msg=\"entry of an unusable batch; dead-lettered\" "
                 "detail=\"%s\"",
                 e->batch, e->item, em_err_name(rc), em_log_q(q, sizeof q, em_errbuf_msg(&eb, rc)));
        em_queue_dead(c->q, "", e->item, e->source, 0, em_err_name(rc), em_errbuf_msg(&eb, rc),
                      &eb);
        em_queue_ack(c->q, e->stream_id, &eb);
        return;
    }
    if (rc != EM_OK) return; /* Redis trouble: the entry stays pending; re-scanned later */
    rc = em_queue_item_status(c->q, e->batch, e->item, st, &eb);
    if (rc == EM_OK) { /* settled already (duplicate entry, or a result beat us) */
        em_queue_ack(c->q, e->stream_id, &eb);
        em_coord_batch_check(c, e->batch);
        return;
    }
    if (rc != EM_E_NOTFOUND) return;
    struct em_queue_tries t;
    if (em_queue_tries_get(c->q, e->batch, e->item, &t, &eb) != EM_OK) return;
    if (c->njobs == c->capjobs) {
        size_t nc = c->capjobs ? c->capjobs * 2 : 64;
        struct em_job **v = realloc(c->jobs, nc * sizeof *v);
        if (!v) return;
        c->jobs = v;
        c->capjobs = nc;
    }
    struct em_job *j = calloc(1, sizeof *j);
    if (!j) return;
    j->e = *e;
    memset(e, 0, sizeof *e); /* strings moved */
    j->b = b;
    j->state = EM_JOB_WAITING;
    j->attempts = t.attempts;
    j->fails = t.fails;
    j->lost = t.lost;
    snprintf(j->err_class, sizeof j->err_class, "%s", t.err_class);
    snprintf(j->err_msg, sizeof j->err_msg, "%s", t.err_msg);
    snprintf(j->lease, sizeof j->lease, "%s", t.lease); /* a worker may still hold it */
    j->not_before_ms = em_now_ms();
    c->jobs[c->njobs++] = j;
    if (j->fails >= b->info.max_attempts) em_coord_job_finalize(c, j);
}

static void take_entries(struct em_coord *c, struct em_queue_entry *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        intake(c, &v[i]);
    em_queue_entries_free(v, n);
}

/* Every entry pending for this consumer that is not held yet. */
static void adopt_own_pending(struct em_coord *c)
{
    char after[48] = "0";
    for (;;) {
        struct em_queue_entry *v = NULL;
        size_t n = 0;
        struct em_errbuf eb = {{0}};
        if (em_queue_read(c->q, c->cfg.id, after, READ_MAX, &v, &n, NULL, &eb) != EM_OK) {
            if (!em_coord_recover_nogroup(c, &eb))
                em_warn("err=EM_E_REDIS msg=\"reading own pending entries\" detail=\"%s\"",
                        eb.msg);
            return;
        }
        if (n) snprintf(after, sizeof after, "%s", v[n - 1].stream_id);
        take_entries(c, v, n);
        if (n < READ_MAX) return;
    }
}

static void read_new(struct em_coord *c)
{
    size_t waiting = em_coord_count_jobs(c, EM_JOB_WAITING);
    unsigned credits = em_coord_free_credits(c);
    if (credits <= waiting) return;
    size_t want = credits - waiting > READ_MAX ? READ_MAX : credits - waiting;
    struct em_queue_entry *v = NULL;
    size_t n = 0, bad = 0;
    struct em_errbuf eb = {{0}};
    if (em_queue_read(c->q, c->cfg.id, NULL, want, &v, &n, &bad, &eb) != EM_OK) {
        if (!em_coord_recover_nogroup(c, &eb))
            em_warn("err=EM_E_REDIS msg=\"reading new entries\" detail=\"%s\"", eb.msg);
        return;
    }
    if (bad) em_warn("msg=\"malformed stream entries dead-lettered\" count=%zu", bad);
    take_entries(c, v, n);
}

static void renew_and_claim(struct em_coord *c, int claim)
{
    struct em_errbuf eb = {{0}};
    if (c->njobs) {
        char **ids = malloc(c->njobs * sizeof *ids);
        if (ids) {
            for (size_t i = 0; i < c->njobs; i++)
                ids[i] = c->jobs[i]->e.stream_id;
            em_err rc = em_queue_touch(c->q, c->cfg.id, ids, c->njobs, &eb);
            free(ids);
            if (rc != EM_OK && !em_coord_recover_nogroup(c, &eb))
                em_warn("err=EM_E_REDIS msg=\"lease renewal failed\" detail=\"%s\"", eb.msg);
        }
    }
    if (!claim) return;
    struct em_queue_entry *v = NULL;
    size_t n = 0;
    if (em_queue_autoclaim(c->q, c->cfg.id, (int64_t)c->cfg.lease_ms, READ_MAX, &v, &n, NULL,
                           &eb) == EM_OK) {
        if (n) em_info("msg=\"claimed idle entries\" count=%zu", n);
        take_entries(c, v, n);
    } else {
        em_coord_recover_nogroup(c, &eb);
    }
    adopt_own_pending(c);
}

static void finalize_due(struct em_coord *c, int64_t now)
{
    for (size_t i = 0; i < c->njobs; i++) {
        struct em_job *j = c->jobs[i];
        if (j->state == EM_JOB_FINALIZING && j->not_before_ms <= now) {
            em_coord_job_finalize(c, j);
            return; /* the array may have changed */
        }
    }
}

static int run(struct em_coord *c)
{
    int64_t now = em_now_ms(), next_tick = now, next_renew = now + c->cfg.lease_ms / 3,
            next_claim = now + c->cfg.lease_ms, drain_until = 0;
    /* Entries held before a restart may still be running on workers: give those a couple
     * of heartbeats to say so (and be adopted) before anything is dispatched again. */
    c->grace_until_ms = now + 2 * (int64_t)c->cfg.heartbeat_ms + 100;
    adopt_own_pending(c);
    renew_and_claim(c, 1);
    while (1) {
        zmq_pollitem_t it = {c->zsock, 0, ZMQ_POLLIN, 0};
        zmq_poll(&it, 1, 100);
        em_coord_recv_all(c);
        now = em_now_ms();
        if (stop_flag && !c->stopping) {
            c->stopping = 1;
            drain_until = now + c->cfg.drain_ms;
            em_info("msg=\"stopping: no new entries; waiting for running tasks\" running=%zu",
                    em_coord_count_jobs(c, EM_JOB_RUNNING));
        }
        em_coord_check_leases(c, now);
        finalize_due(c, now);
        if (!c->stopping) {
            read_new(c);
            if (now >= next_renew) {
                int claim = now >= next_claim;
                renew_and_claim(c, claim);
                next_renew = now + c->cfg.lease_ms / 3;
                if (claim) next_claim = now + c->cfg.lease_ms;
            }
            em_coord_dispatch(c, now);
        }
        if (now >= next_tick) {
            em_coord_batches_tick(c, now);
            if (c->health) em_chealth_tick(c->health, c, now);
            em_page_workers(c->page, c->workers, c->nworkers);
            next_tick = now + 1000;
        }
        if (c->stopping && (em_coord_count_jobs(c, EM_JOB_RUNNING) == 0 || now >= drain_until))
            break;
    }
    em_info("msg=\"stopped\" running=%zu held=%zu", em_coord_count_jobs(c, EM_JOB_RUNNING),
            c->njobs);
    /* What is still held stays pending in Redis for the next run; status stops counting it. */
    while (c->njobs)
        em_coord_job_drop(c, c->jobs[c->njobs - 1]);
    em_coord_batches_tick(c, em_now_ms());
    return 0;
}

/* Redis may come up after us (service start order): retry for EARMARK_REDIS_WAIT_MS. */
static em_err connect_redis(struct em_coord *c, const char *url, const char *ca,
                            struct em_errbuf *eb)
{
    int64_t until = em_now_ms() + env_ms("EARMARK_REDIS_WAIT_MS", 10000, 0, 3600000);
    for (;;) {
        em_err rc = c->q ? EM_OK : em_queue_open_tls(url, ca, &c->q, eb);
        if (rc == EM_OK) rc = em_queue_ensure_group(c->q, eb);
        if (rc == EM_OK || rc == EM_E_ARG || rc == EM_E_AUTH || em_now_ms() >= until || stop_flag)
            return rc;
        em_sleep_ms(200);
    }
}

static void cleanup(struct em_coord *c)
{
    while (c->njobs)
        em_coord_job_drop(c, c->jobs[c->njobs - 1]);
    free(c->jobs);
    for (size_t i = 0; i < c->nworkers; i++)
        free(c->workers[i]);
    free(c->workers);
    em_coord_batches_free(c);
}

int em_cmd_coordinator(int argc, char **argv)
{
    struct copts o;
    int prc = parse_args(argc, argv, &o);
    if (prc) return prc < 0 ? 0 : prc;
    static struct em_metrics metrics;
    struct em_coord c = {0};
    struct em_errbuf eb = {{0}};
    struct em_httpd *web = NULL;
    struct em_curve_allow *allow = NULL;
    struct em_zap *zap = NULL;
    void *ctx = NULL;
    char host[128];
    int status = 1;
    em_err rc;
    if (!o.id) {
        if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "coordinator");
        host[sizeof host - 1] = 0;
        o.id = host;
    }
    c.cfg = (struct em_coord_cfg){
        .id = o.id,
        .heartbeat_ms = o.heartbeat_ms,
        .lease_ms = o.lease_ms,
        .retry_base_ms = env_ms("EARMARK_RETRY_BASE_MS", 200, 1, 3600000),
        .retry_max_ms = env_ms("EARMARK_RETRY_MAX_MS", 30000, 1, 86400000),
        .task_timeout_ms = env_ms("EARMARK_TASK_TIMEOUT_MS", 3600000, 100, 7 * 86400000LL),
        .drain_ms = env_ms("EARMARK_DRAIN_MS", 30000, 0, 3600000),
        .retention_ms = o.retention_ms,
        .trim_every_ms = env_ms("EARMARK_TRIM_EVERY_MS", 60000, 100, 86400000),
    };
    c.m = &metrics;
    struct em_curve_pair pair = {{0}, {0}};
    /* keys first: a bad key file fails at once, not after waiting for Redis */
    if (o.curve_secret && ((rc = em_curve_load_pair(o.curve_secret, &pair, &eb)) != EM_OK ||
                           (rc = em_curve_allow_load(o.allow_keys, &allow, &eb)) != EM_OK))
        goto fail;
    struct em_storage_opts so = em_storage_opts_default();
    so.retries = 1; /* the loop retries on its own schedule; never block it for long */
    so.timeout_ms = 10000;
    /* before the first Redis call: a Redis that refuses us (protected mode, restart) closes
     * the connection, and the retry's write must fail with EPIPE, not kill us by SIGPIPE;
     * SIGTERM while waiting for Redis stops the wait */
    em_sig_on_stop(on_signal);
    rc = connect_redis(&c, o.redis, o.redis_ca, &eb);
    /* the status page reads batch progress over its own connection (HTTP thread) */
    if (rc == EM_OK && o.metrics) rc = em_page_new(o.redis, o.redis_ca, &c.page, &eb);
    if (o.redis_owned) memset((char *)o.redis, 0, strlen(o.redis)); /* c.q has its own copy */
    if (rc != EM_OK) goto fail;
    if ((rc = em_storage_open(&so, &c.st, &eb)) != EM_OK) goto fail;
    rc = EM_E_IO;
    int64_t maxsz = EM_WIRE_MAX_FRAME;
    int one = 1, linger = 1000;
    if (!(ctx = zmq_ctx_new()) || !(c.zsock = zmq_socket(ctx, ZMQ_ROUTER)) ||
        zmq_setsockopt(c.zsock, ZMQ_MAXMSGSIZE, &maxsz, sizeof maxsz) != 0 ||
        zmq_setsockopt(c.zsock, ZMQ_ROUTER_MANDATORY, &one, sizeof one) != 0 ||
        zmq_setsockopt(c.zsock, ZMQ_LINGER, &linger, sizeof linger) != 0) {
        em_errf(&eb, EM_E_IO, "zmq socket: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (o.curve_secret) {
        rc = em_zap_start(ctx, c.zsock, &pair, allow, c.m, &zap, &eb);
        memset(&pair, 0, sizeof pair);
        if (rc != EM_OK) goto fail;
        em_info("msg=\"CURVE on\" allowed_keys=%zu", em_curve_allow_count(allow));
        rc = EM_E_IO;
    } else if (!bind_is_loopback(o.bind)) {
        em_warn("msg=\"--insecure: no CURVE on a non-loopback bind; anyone who reaches %s can "
                "take tasks\"",
                o.bind);
    }
    if (zmq_bind(c.zsock, o.bind) != 0) {
        em_errf(&eb, EM_E_IO, "cannot bind %s: %s", o.bind, zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (o.metrics &&
        ((rc = em_chealth_new(c.m, env_ms("EARMARK_STALL_MS", EM_CHEALTH_DEFAULT_STALL_MS, 1000,
                                          7 * 86400000LL), &c.health)) != EM_OK ||
         (rc = em_httpd_new(&web)) != EM_OK ||
         (rc = em_chealth_routes(c.health, web, &eb)) != EM_OK ||
         (rc = em_httpd_route(web, "/", em_page_http, c.page, &eb)) != EM_OK ||
         (rc = em_httpd_route(web, "/batches/", em_page_http, c.page, &eb)) != EM_OK ||
         (rc = em_httpd_start(web, "--metrics", o.metrics, &eb)) != EM_OK))
        goto fail;
    em_info("msg=\"coordinator up\" id=%s bind=%s heartbeat_ms=%u lease_ms=%u retry_base_ms=%lld",
            o.id, o.bind, o.heartbeat_ms, o.lease_ms, (long long)c.cfg.retry_base_ms);
    status = run(&c);
    goto out;
fail:
    memset(&pair, 0, sizeof pair);
    fprintf(stderr, "earmark coordinator: %s\n", em_errbuf_msg(&eb, rc));
    status = 1;
out:
    em_httpd_free(web);
    em_zap_stop(zap);
    em_curve_allow_free(allow);
    em_chealth_free(c.health);
    em_page_free(c.page);
    cleanup(&c);
    if (c.zsock) zmq_close(c.zsock);
    if (ctx) zmq_ctx_term(ctx);
    em_storage_close(c.st);
    em_queue_close(c.q);
    return status;
}
