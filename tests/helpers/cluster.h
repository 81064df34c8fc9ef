/* tests/helpers/cluster.h - a whole earmark cluster for integration suites: a private
 * redis-server (servers.h), one `earmark coordinator` and N `earmark worker` processes
 * (th_spawn, logs in the cluster's temp dir), submission of a manifest, a bounded wait for
 * the batch's manifest.jsonl, the coordinator's /metrics, and checks of every output.
 * Test-only code; not thread-safe. Every wait is bounded; th_cluster_stop stops every
 * process it started and removes the temp dir, and is safe after a failed start.
 *
 * Typical use:
 *     static struct th_cluster c;
 *     init:   th_cluster_start(&c, &opts)         (redis + coordinator + workers)
 *     test:   th_make_corpus(...); th_cluster_submit(&c, manifest, out, attempts);
 *             th_cluster_wait(&c, st, out, TH_CLUSTER_WAIT_MS, tick, arg);
 *             th_check_* on every item
 *     clean:  th_cluster_stop(&c)                 (prints log tails if a test failed) */
#ifndef EM_TH_CLUSTER_H
#define EM_TH_CLUSTER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/curve.h"
#include "storage/storage.h"
#include "tests/helpers/servers.h"

#define TH_CLUSTER_MAX_WORKERS 8
#define TH_CLUSTER_MAX_ENV 12
#define TH_CLUSTER_WAIT_MS 120000 /* bound on a batch in any suite (2 cores, loaded) */
#define TH_CLUSTER_HEARTBEAT_MS 200
#define TH_CLUSTER_LEASE_MS 1500

struct th_uris; /* below */

struct th_cluster_opts {
    int workers;                                    /* 0..TH_CLUSTER_MAX_WORKERS */
    int threads;                                    /* per worker; 0: 1 */
    const char *worker_env[TH_CLUSTER_MAX_ENV];     /* extra "K=V", NULL-terminated, static */
    const char *coord_env[TH_CLUSTER_MAX_ENV];      /* extra "K=V", NULL-terminated, static */
    bool plain; /* no CURVE (loopback only); by default the cluster runs with generated keys */
    const char *const *redis_args; /* extra redis-server arguments (th_redis_start_args) */
    const char *redis_url; /* what the processes are given (EARMARK_REDIS_URL); NULL: redis.url */
    bool worker_metrics;                            /* workers serve --metrics (ports below) */
    /* one more "K=V" for worker i only (e.g. its EARMARK_MODEL), NULL: none; static */
    const char *worker_env_each[TH_CLUSTER_MAX_WORKERS];
};

struct th_cluster {
    char dir[512];             /* temp dir: logs, corpora, file:// outputs */
    struct th_server redis;
    int coord_port, metrics_port;
    char coord_ep[64];         /* tcp://127.0.0.1:PORT */
    pid_t coord;               /* -1 when not running */
    int coord_runs;            /* coordinator-N.log */
    struct th_cluster_opts o;
    int nworkers;
    pid_t worker[TH_CLUSTER_MAX_WORKERS]; /* -1 when not running */
    int worker_runs[TH_CLUSTER_MAX_WORKERS];
    int worker_metrics_port[TH_CLUSTER_MAX_WORKERS]; /* 127.0.0.1; 0 without worker_metrics */
    int restarts;              /* workers restarted by th_cluster_supervise */
    char batch[64];            /* the last submitted batch id */
    /* CURVE (unless o.plain): `earmark keygen` made <dir>/keys/{coord,worker}.{key,pub}; the
     * coordinator allows <dir>/keys/allowed/ (worker.pub). Test peers that should pass the
     * ZAP handler use worker_pair and coord_pub. */
    char keys[600];
    struct em_curve_pair worker_pair;
    char coord_pub[EM_CURVE_Z85 + 1];
    unsigned failures_at_start; /* CUnit failures when started: logs are dumped if more */
    bool started;
};

/* Makes the temp dir, starts redis, the coordinator (waits for its metrics port) and
 * o->workers workers. 0 on success; on failure everything started is stopped. */
int th_cluster_start(struct th_cluster *c, const struct th_cluster_opts *o);
/* A suite's init from its start and clean: start(), and clean() as well when start fails,
 * since CUnit does not call a suite's clean after its init failed. 0, or 1 on failure. */
int th_suite_init(int (*start)(void), int (*clean)(void));
/* th_cluster_start, then opens *st (so, or em_storage_opts_default() when NULL) for the
 * suite's own reads of outputs. 0 on success; on failure the cluster is stopped and *st is
 * NULL. Pair with th_cluster_stop_storage. */
int th_cluster_start_storage(struct th_cluster *c, const struct th_cluster_opts *o,
                             const struct em_storage_opts *so, struct em_storage **st);
/* The demo model (th_make_demo_model) written to <tmp>/demo-model, then
 * th_cluster_start_storage with `workers` workers (1 thread each) running it: env[envcap]
 * receives their "EARMARK_MODEL=..." and must outlive the cluster (a static buffer).
 * 0 on success. */
int th_cluster_start_demo(struct th_cluster *c, int workers, const char *tmp, char *env,
                          size_t envcap, struct em_storage **st);
/* Closes *st (NULL afterwards) and th_cluster_stop(c). Idempotent. */
void th_cluster_stop_storage(struct th_cluster *c, struct em_storage **st);
/* Starts the coordinator again on the same ports (after a kill). 0 when it listens. */
int th_cluster_coord_start(struct th_cluster *c);
/* kill(sig) and reap (SIGKILL after 10 s). */
void th_cluster_coord_kill(struct th_cluster *c, int sig);
int th_cluster_worker_start(struct th_cluster *c, int i);
void th_cluster_worker_kill(struct th_cluster *c, int i, int sig);
/* Restarts every worker process that has exited; returns how many it restarted. */
int th_cluster_supervise(struct th_cluster *c);

/* `earmark submit` of manifest (a file) to out_uri with --max-attempts; the batch id goes
 * to c->batch. 0 on success. */
int th_cluster_submit(struct th_cluster *c, const char *manifest, const char *out_uri,
                      int max_attempts);
/* A corpus of n clips (th_make_corpus) under <dir>/name: its manifest path into manifest,
 * and file://<dir>/out-name into out (both cap bytes). 0 on success. */
int th_cluster_corpus(struct th_cluster *c, const char *name, int n, char *manifest, char *out,
                      size_t cap);
/* th_cluster_submit with more flags for `earmark submit` (e.g. "--skip-done --wait",
 * "--deadline 3s"; NULL: none). 0 when submit exited 0 and printed a batch id. */
int th_cluster_submit_with(struct th_cluster *c, const char *manifest, const char *out_uri,
                           int max_attempts, const char *flags);
/* Copies each file src_dir/names[i]ext into c->dir (where workers may read local files:
 * --source-root) and writes their file:// URIs, in order, to c->dir/manifest.txt, whose path
 * goes to manifest (cap bytes). 0 on success. */
int th_cluster_copy_corpus(struct th_cluster *c, const char *src_dir, const char *const *names,
                           size_t n, const char *ext, char *manifest, size_t cap);
/* n sine tones (0.5 s, 16 kHz mono WAV, each its own pitch) under c->dir/name and their
 * file:// URIs in name/manifest.txt; its path goes to manifest (cap bytes), the URIs to u
 * (th_uris_free). 0 on success. */
int th_cluster_tones(struct th_cluster *c, const char *name, int n, char *manifest, size_t cap,
                     struct th_uris *u);
/* Polls until <out_uri>/manifest.jsonl exists (the coordinator writes it when the batch is
 * complete), calling tick(c, arg) about every 200 ms (may be NULL). 0 when it appeared,
 * -1 after timeout_ms (then prints `earmark status --json`). */
int th_cluster_wait(struct th_cluster *c, struct em_storage *st, const char *out_uri,
                    int timeout_ms, void (*tick)(struct th_cluster *, void *), void *arg);
/* `earmark status --json` of c->batch, parsed (caller json_decref()s); NULL on failure. */
json_t *th_cluster_status(struct th_cluster *c);
/* Polls th_cluster_status until its "waiting" field contains part: 0, or -1 after
 * timeout_ms (the last status is printed). */
int th_cluster_wait_waiting(struct th_cluster *c, const char *part, int timeout_ms);
/* Sum of the coordinator's /metrics samples whose metric name contains name_part; -1 when
 * /metrics cannot be read or no such metric. */
double th_cluster_metric(struct th_cluster *c, const char *name_part);
/* Sum of the samples of exactly the metric name whose line contains label (e.g.
 * "reason=\"wrong_peer\""; NULL: every sample); -1 as above. */
double th_cluster_metric_exact(struct th_cluster *c, const char *name, const char *label);
/* 1 when a process log holds a sanitizer report (ASan, UBSan, LSan; the lines are printed),
 * else 0. Under SAN=1 a worker that trips a sanitizer dies and its task is re-dispatched,
 * which a batch check alone would not notice, so suites assert 0. */
int th_cluster_sanitizer_reports(const struct th_cluster *c);
/* Prints the last lines of every process log to stderr. */
void th_cluster_dump_logs(const struct th_cluster *c);
/* Stops everything (workers, coordinator: SIGKILL; redis), dumps logs if a CUnit test
 * failed since start, removes the temp dir. Idempotent. */
void th_cluster_stop(struct th_cluster *c);

/* Points AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION (us-east-1) and
 * AWS_ENDPOINT_URL at a test S3 server, for this process and the processes it starts
 * later; th_s3_env_restore puts back what was there before (suites share one process). */
void th_s3_env_set(const char *endpoint, const char *access, const char *secret);
void th_s3_env_restore(void);

/* ---- outputs ---- */

struct th_uris {
    char **v; /* malloc'd strings */
    size_t n;
};
/* Reads a manifest of one URI per line. 0 on success. */
int th_uris_load(const char *path, struct th_uris *u);
void th_uris_free(struct th_uris *u);
/* Index of the URI that ends with suffix, or -1. */
int th_uris_find(const struct th_uris *u, const char *suffix);

/* The record of uri in batch: <out>/<item-id>.json read back with em_storage_get and parsed.
 * NULL (with a line on stderr) when missing or not JSON. Caller json_decref()s. */
json_t *th_record_get(struct em_storage *st, const char *out_uri, const char *batch,
                      const char *uri);
/* 1 when the record of uri in batch exists at out_uri (quietly), else 0. */
int th_record_exists(struct em_storage *st, const char *out_uri, const char *batch,
                     const char *uri);
/* A good record: status ok, source == uri, audio.duration_s > 0, batch id. Returns 0 or
 * prints what is wrong and returns 1. */
int th_record_check_ok(const json_t *rec, const char *uri, const char *batch);
/* th_record_get + th_record_check_ok for every URI of u: the number of items without a good
 * record in batch at out_uri (each printed). */
int th_records_check_ok(struct em_storage *st, const char *out_uri, const char *batch,
                        const struct th_uris *u);
/* A failed record: status failed, source == uri, error.class == cls (NULL: any), and
 * error.class + error.message mention `mention` (NULL: skip). 0 or 1 as above. */
int th_record_check_failed(const json_t *rec, const char *uri, const char *cls,
                           const char *mention);
/* manifest.jsonl at out: exactly one line per URI of u (by item id), no other lines, every
 * line with a status and an output. Returns the number of problems (each printed). */
int th_manifest_check(struct em_storage *st, const char *out_uri, const char *batch,
                      const struct th_uris *u);
/* Number of regular files named *.json directly in dir (file:// outputs), -1 on error. */
int th_count_json(const char *dir);

/* JSON string at path a(.b) or "" (never NULL). */
const char *th_jstr(const json_t *o, const char *a, const char *b);

#endif
