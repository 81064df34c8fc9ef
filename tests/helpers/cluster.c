/* tests/helpers/cluster.c - see cluster.h. */
#include "tests/helpers/cluster.h"

#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/id.h"
#include "tests/helpers/clips.h"
#include "tests/helpers/proc.h"

#define START_WAIT_MS 30000
#define STOP_WAIT_MS 10000
#define METRICS_MAX (1024 * 1024)

/* Builds "K=V" env arrays: base entries then extra (NULL-terminated). */
static void env_join(char **out, size_t cap, const char *const *base, const char *const *extra)
{
    size_t k = 0;
    for (size_t i = 0; base && base[i] && k + 1 < cap; i++) out[k++] = (char *)base[i];
    for (size_t i = 0; extra && extra[i] && k + 1 < cap; i++) out[k++] = (char *)extra[i];
    out[k] = NULL;
}

/* The URL every process gets, through EARMARK_REDIS_URL (never argv: it may hold a
 * password). */
static const char *redis_url(const struct th_cluster *c)
{
    return c->o.redis_url ? c->o.redis_url : c->redis.url;
}

int th_cluster_coord_start(struct th_cluster *c)
{
    char bind[64], metrics[64], hb[16], lease[16], log[700];
    snprintf(bind, sizeof bind, "tcp://127.0.0.1:%d", c->coord_port);
    snprintf(metrics, sizeof metrics, "127.0.0.1:%d", c->metrics_port);
    snprintf(hb, sizeof hb, "%d", TH_CLUSTER_HEARTBEAT_MS);
    snprintf(lease, sizeof lease, "%d", TH_CLUSTER_LEASE_MS);
    snprintf(log, sizeof log, "%s/coordinator-%d.log", c->dir, ++c->coord_runs);
    char key[700], allow[700];
    snprintf(key, sizeof key, "%s/coord.key", c->keys);
    snprintf(allow, sizeof allow, "%s/allowed", c->keys);
    char *argv[] = {(char *)th_bin(), "coordinator", "--bind", bind, "--heartbeat-ms", hb,
                    "--lease-ms", lease, "--metrics", metrics, "--curve-secret", key,
                    "--allow-keys", allow, NULL};
    if (c->o.plain) argv[10] = NULL;
    static char url_env[600];
    snprintf(url_env, sizeof url_env, "EARMARK_REDIS_URL=%s", redis_url(c));
    const char *const base[] = {"EARMARK_LOG=info", "EARMARK_RETRY_BASE_MS=50", url_env, NULL};
    char *env[2 * TH_CLUSTER_MAX_ENV + 4];
    env_join(env, sizeof env / sizeof *env, base, c->o.coord_env);
    c->coord = th_spawn(argv, env, log);
    if (c->coord < 0) return -1;
    /* short port probes so that a coordinator that exits at once fails fast */
    for (int waited = 0; waited < START_WAIT_MS; waited += 250) {
        if (th_wait_port(c->metrics_port, 200) == 0 && th_wait_port(c->coord_port, 200) == 0)
            return 0;
        int st = th_wait(c->coord, 0);
        if (st != -1) {
            fprintf(stderr, "cluster: coordinator exited (status %d), log %s\n", st, log);
            c->coord = -1;
            return -1;
        }
    }
    fprintf(stderr, "cluster: coordinator did not listen (log %s)\n", log);
    return -1;
}

void th_cluster_coord_kill(struct th_cluster *c, int sig)
{
    if (c->coord > 0) th_stop(c->coord, sig, STOP_WAIT_MS);
    c->coord = -1;
}

int th_cluster_worker_start(struct th_cluster *c, int i)
{
    if (i < 0 || i >= TH_CLUSTER_MAX_WORKERS) return -1;
    char id[32], threads[16], log[700];
    snprintf(id, sizeof id, "w%d", i);
    snprintf(threads, sizeof threads, "%d", c->o.threads > 0 ? c->o.threads : 1);
    snprintf(log, sizeof log, "%s/worker%d-%d.log", c->dir, i, ++c->worker_runs[i]);
    char key[700], pub[700], mport[32];
    snprintf(key, sizeof key, "%s/worker.key", c->keys);
    snprintf(pub, sizeof pub, "%s/coord.pub", c->keys);
    /* local sources only under the cluster's temp dir, where suites make their corpora */
    char *argv[] = {(char *)th_bin(), "worker", "--connect", c->coord_ep, "--id", id,
                    "--threads", threads, "--drain-ms", "5000", "--source-root", c->dir,
                    NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    int k = 12;
    if (c->o.worker_metrics) {
        if (!c->worker_metrics_port[i]) c->worker_metrics_port[i] = th_free_port();
        snprintf(mport, sizeof mport, "127.0.0.1:%d", c->worker_metrics_port[i]);
        argv[k++] = "--metrics";
        argv[k++] = mport;
    }
    if (!c->o.plain) {
        argv[k++] = "--curve-key";
        argv[k++] = key;
        argv[k++] = "--coordinator-key";
        argv[k++] = pub;
    }
    static const char *const base[] = {"EARMARK_LOG=info", NULL};
    char *env[2 * TH_CLUSTER_MAX_ENV + 4];
    env_join(env, sizeof env / sizeof *env, base, c->o.worker_env);
    size_t ne = 0;
    while (env[ne]) ne++;
    if (c->o.worker_env_each[i] && ne + 1 < sizeof env / sizeof *env) {
        env[ne++] = (char *)c->o.worker_env_each[i];
        env[ne] = NULL;
    }
    c->worker[i] = th_spawn(argv, env, log);
    return c->worker[i] > 0 ? 0 : -1;
}

void th_cluster_worker_kill(struct th_cluster *c, int i, int sig)
{
    if (i < 0 || i >= c->nworkers || c->worker[i] <= 0) return;
    th_stop(c->worker[i], sig, STOP_WAIT_MS);
    c->worker[i] = -1;
}

int th_cluster_supervise(struct th_cluster *c)
{
    int n = 0;
    for (int i = 0; i < c->nworkers; i++) {
        if (c->worker[i] > 0 && th_wait(c->worker[i], 0) == -1) continue; /* still running */
        c->worker[i] = -1;
        if (th_cluster_worker_start(c, i) == 0) n++;
    }
    c->restarts += n;
    return n;
}

/* Keys for the coordinator and the workers, made by `earmark keygen` (the CLI is what an
 * operator runs), and the allow list holding the workers' public key. */
static int make_keys(struct th_cluster *c)
{
    snprintf(c->keys, sizeof c->keys, "%s/keys", c->dir);
    if (c->o.plain) return 0;
    if (th_sh("mkdir -m 0755 '%s' '%s/allowed' && '%s' keygen -o '%s/coord' >/dev/null && "
              "'%s' keygen -o '%s/worker' >/dev/null && cp '%s/worker.pub' '%s/allowed/'",
              c->keys, c->keys, th_bin(), c->keys, th_bin(), c->keys, c->keys, c->keys) != 0)
        return -1;
    char path[700];
    snprintf(path, sizeof path, "%s/worker.key", c->keys);
    if (em_curve_load_pair(path, &c->worker_pair, NULL) != EM_OK) return -1;
    snprintf(path, sizeof path, "%s/coord.pub", c->keys);
    return em_curve_load_pub(path, c->coord_pub, NULL) == EM_OK ? 0 : -1;
}

int th_cluster_start(struct th_cluster *c, const struct th_cluster_opts *o)
{
    memset(c, 0, sizeof *c);
    c->o = *o;
    c->coord = -1;
    c->redis.pid = -1;
    for (int i = 0; i < TH_CLUSTER_MAX_WORKERS; i++) c->worker[i] = -1;
    c->failures_at_start = CU_get_number_of_failures();
    c->started = true;
    if (o->workers < 0 || o->workers > TH_CLUSTER_MAX_WORKERS) return -1;
    if (th_tmpdir(c->dir, sizeof c->dir) != 0) return -1;
    if (make_keys(c) != 0) goto fail;
    if (th_redis_start_args(&c->redis, o->redis_args) != 0) goto fail;
    c->coord_port = th_free_port();
    c->metrics_port = th_free_port();
    while (c->metrics_port == c->coord_port) c->metrics_port = th_free_port();
    snprintf(c->coord_ep, sizeof c->coord_ep, "tcp://127.0.0.1:%d", c->coord_port);
    if (th_cluster_coord_start(c) != 0) goto fail;
    c->nworkers = o->workers;
    for (int i = 0; i < o->workers; i++)
        if (th_cluster_worker_start(c, i) != 0) goto fail;
    return 0;
fail:
    th_cluster_dump_logs(c);
    c->failures_at_start = ~0u; /* logs already shown */
    th_cluster_stop(c);
    return -1;
}

int th_cluster_submit(struct th_cluster *c, const char *manifest, const char *out_uri,
                      int max_attempts)
{
    return th_cluster_submit_with(c, manifest, out_uri, max_attempts, NULL);
}

int th_cluster_copy_corpus(struct th_cluster *c, const char *src_dir, const char *const *names,
                           size_t n, const char *ext, char *manifest, size_t cap)
{
    snprintf(manifest, cap, "%s/manifest.txt", c->dir);
    FILE *f = fopen(manifest, "w");
    if (!f) return -1;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        bad |= th_sh("cp '%s/%s%s' '%s/'", src_dir, names[i], ext, c->dir);
        fprintf(f, "file://%s/%s%s\n", c->dir, names[i], ext);
    }
    return (fclose(f) != 0) | bad;
}

int th_cluster_tones(struct th_cluster *c, const char *name, int n, char *manifest, size_t cap,
                     struct th_uris *u)
{
    char d[700];
    snprintf(d, sizeof d, "%s/%s", c->dir, name);
    if (th_sh("mkdir -p '%s'", d) != 0) return -1;
    snprintf(manifest, cap, "%s/manifest.txt", d);
    FILE *f = fopen(manifest, "w");
    if (!f) return -1;
    int bad = 0;
    for (int i = 0; i < n; i++) {
        char p[800];
        snprintf(p, sizeof p, "%s/t%d.wav", d, i);
        bad |= th_make_tone(p, 300 + 40 * i, 0.3, 0.5, 16000, 1);
        fprintf(f, "file://%s\n", p);
    }
    bad |= fclose(f);
    return bad || th_uris_load(manifest, u);
}

int th_cluster_submit_with(struct th_cluster *c, const char *manifest, const char *out_uri,
                           int max_attempts, const char *flags)
{
    char out[700];
    snprintf(out, sizeof out, "%s/batch.txt", c->dir);
    /* bounded: with --wait a batch that never completes must not hang the suite */
    int rc = th_sh("EARMARK_REDIS_URL='%s' timeout 200 '%s' submit --manifest '%s' --out '%s' "
                   "--max-attempts %d %s > '%s' 2>> '%s/submit.log'",
                   redis_url(c), th_bin(), manifest, out_uri, max_attempts, flags ? flags : "",
                   out, c->dir);
    size_t n = 0;
    char *b = th_slurp(out, &n);
    c->batch[0] = 0;
    if (b) {
        while (n > 0 && (b[n - 1] == '\n' || b[n - 1] == '\r' || b[n - 1] == ' ')) b[--n] = 0;
        const char *last = strrchr(b, '\n'); /* the id is the last line */
        snprintf(c->batch, sizeof c->batch, "%s", last ? last + 1 : b);
        free(b);
    }
    if (rc != 0 || !c->batch[0]) {
        fprintf(stderr, "cluster: submit failed (rc %d), see %s/submit.log\n", rc, c->dir);
        th_sh("tail -n 20 '%s/submit.log' >&2", c->dir);
        return -1;
    }
    return 0;
}

int th_cluster_corpus(struct th_cluster *c, const char *name, int n, char *manifest, char *out,
                      size_t cap)
{
    char d[700];
    snprintf(d, sizeof d, "%s/%s", c->dir, name);
    snprintf(manifest, cap, "%s/manifest.txt", d);
    snprintf(out, cap, "file://%s/out-%s", c->dir, name);
    return th_make_corpus(d, n, 0);
}

int th_cluster_wait(struct th_cluster *c, struct em_storage *st, const char *out_uri,
                    int timeout_ms, void (*tick)(struct th_cluster *, void *), void *arg)
{
    char *m = em_storage_join(out_uri, "manifest.jsonl");
    if (!m) return -1;
    int64_t until = em_now_ms() + timeout_ms;
    int rc = -1;
    while (em_now_ms() < until) {
        if (em_storage_exists(st, m, NULL) == EM_OK) {
            rc = 0;
            break;
        }
        if (tick) tick(c, arg);
        em_sleep_ms(200);
    }
    free(m);
    if (rc != 0) {
        fprintf(stderr, "cluster: batch %s not complete after %d ms; status:\n", c->batch,
                timeout_ms);
        th_sh("EARMARK_REDIS_URL='%s' '%s' status '%s' --json >&2", redis_url(c), th_bin(),
              c->batch);
    }
    return rc;
}

json_t *th_cluster_status(struct th_cluster *c)
{
    char out[700];
    snprintf(out, sizeof out, "%s/status.json", c->dir);
    if (th_sh("EARMARK_REDIS_URL='%s' '%s' status '%s' --json > '%s' 2>> '%s/submit.log'",
              redis_url(c), th_bin(), c->batch, out, c->dir) != 0)
        return NULL;
    return json_load_file(out, 0, NULL);
}

int th_cluster_wait_waiting(struct th_cluster *c, const char *part, int timeout_ms)
{
    int64_t until = em_now_ms() + timeout_ms;
    for (;;) {
        json_t *s = th_cluster_status(c);
        const char *w = th_jstr(s, "waiting", NULL);
        int found = strstr(w, part) != NULL;
        if (found || em_now_ms() >= until) {
            if (!found) {
                char *txt = s ? json_dumps(s, JSON_COMPACT) : NULL;
                fprintf(stderr, "cluster: batch %s never said \"%s\"; status %s\n", c->batch,
                        part, txt ? txt : "(none)");
                free(txt);
            }
            json_decref(s);
            return found ? 0 : -1;
        }
        json_decref(s);
        em_sleep_ms(200);
    }
}

/* GET /metrics; malloc'd body or NULL. */
static char *metrics_get(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return NULL;
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char *buf = NULL;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) goto out;
    static const char req[] = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) goto out;
    buf = malloc(METRICS_MAX + 1);
    if (!buf) goto out;
    size_t n = 0;
    ssize_t r;
    while (n < METRICS_MAX && (r = read(fd, buf + n, METRICS_MAX - n)) > 0) n += (size_t)r;
    buf[n] = 0;
out:
    close(fd);
    return buf;
}

/* Sum of the samples whose name contains name_part (exact: equals it) and whose line
 * contains label (NULL: any); -1 as th_cluster_metric. */
static double metric_sum(struct th_cluster *c, const char *name_part, bool exact,
                         const char *label)
{
    char *resp = metrics_get(c->metrics_port);
    if (!resp) return -1;
    char *body = strstr(resp, "\r\n\r\n");
    body = body ? body + 4 : resp;
    double sum = 0;
    int found = 0;
    for (char *line = body, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        if (line[0] == '#' || !line[0]) continue;
        size_t nl = strcspn(line, "{ ");
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(nl < 255 ? nl : 255), line);
        if (exact ? strcmp(name, name_part) != 0 : !strstr(name, name_part)) continue;
        if (label && !strstr(line, label)) continue;
        const char *v = strrchr(line, ' ');
        if (!v) continue;
        char *end = NULL;
        double d = strtod(v + 1, &end);
        if (end == v + 1) continue;
        sum += d;
        found = 1;
    }
    free(resp);
    return found ? sum : -1;
}

double th_cluster_metric(struct th_cluster *c, const char *name_part)
{
    return metric_sum(c, name_part, false, NULL);
}

double th_cluster_metric_exact(struct th_cluster *c, const char *name, const char *label)
{
    return metric_sum(c, name, true, label);
}

int th_cluster_sanitizer_reports(const struct th_cluster *c)
{
    if (!c->dir[0]) return 0;
    int rc = th_sh("cd '%s' && ! grep -H -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "
                   "*.log >&2",
                   c->dir);
    return rc == 0 ? 0 : 1;
}

void th_cluster_dump_logs(const struct th_cluster *c)
{
    if (!c->dir[0]) return;
    th_sh("for f in '%s'/*.log '%s'; do [ -f \"$f\" ] || continue; echo \"----- $f (tail)\"; "
          "tail -n 40 \"$f\"; done >&2",
          c->dir, c->redis.log);
}

int th_suite_init(int (*start)(void), int (*clean)(void))
{
    if (start() == 0) return 0;
    clean();
    return 1;
}

int th_cluster_start_storage(struct th_cluster *c, const struct th_cluster_opts *o,
                             const struct em_storage_opts *so, struct em_storage **st)
{
    *st = NULL;
    struct em_storage_opts dflt = em_storage_opts_default();
    if (th_cluster_start(c, o) == 0 && em_storage_open(so ? so : &dflt, st, NULL) == EM_OK)
        return 0;
    th_cluster_stop_storage(c, st);
    return -1;
}

int th_cluster_start_demo(struct th_cluster *c, int workers, const char *tmp, char *env,
                          size_t envcap, struct em_storage **st)
{
    char model[700];
    *st = NULL;
    snprintf(model, sizeof model, "%s/demo-model", tmp);
    if (th_make_demo_model(model, NULL) != 0) return -1;
    snprintf(env, envcap, "EARMARK_MODEL=%s", model);
    struct th_cluster_opts o = {.workers = workers, .threads = 1, .worker_env = {env, NULL}};
    return th_cluster_start_storage(c, &o, NULL, st);
}

void th_cluster_stop_storage(struct th_cluster *c, struct em_storage **st)
{
    em_storage_close(*st);
    *st = NULL;
    th_cluster_stop(c);
}

void th_cluster_stop(struct th_cluster *c)
{
    if (!c->started) return;
    if (CU_get_number_of_failures() > c->failures_at_start) th_cluster_dump_logs(c);
    for (int i = 0; i < TH_CLUSTER_MAX_WORKERS; i++)
        if (c->worker[i] > 0) {
            th_stop(c->worker[i], SIGKILL, STOP_WAIT_MS);
            c->worker[i] = -1;
        }
    th_cluster_coord_kill(c, SIGKILL);
    th_server_stop(&c->redis);
    if (c->dir[0]) th_rmrf(c->dir);
    c->dir[0] = 0;
    c->started = false;
}

static const char *const s3_vars[] = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION",
                                      "AWS_ENDPOINT_URL"};
static char *s3_saved[4];
static bool s3_env_saved;

void th_s3_env_set(const char *endpoint, const char *access, const char *secret)
{
    if (!s3_env_saved) {
        for (size_t i = 0; i < 4; i++) {
            const char *v = getenv(s3_vars[i]);
            s3_saved[i] = v ? strdup(v) : NULL;
        }
        s3_env_saved = true;
    }
    const char *val[4] = {access, secret, "us-east-1", endpoint};
    for (size_t i = 0; i < 4; i++) setenv(s3_vars[i], val[i], 1);
}

void th_s3_env_restore(void)
{
    if (!s3_env_saved) return;
    for (size_t i = 0; i < 4; i++) {
        if (s3_saved[i]) setenv(s3_vars[i], s3_saved[i], 1);
        else unsetenv(s3_vars[i]);
        free(s3_saved[i]);
        s3_saved[i] = NULL;
    }
    s3_env_saved = false;
}

/* ---- outputs ---- */

int th_uris_load(const char *path, struct th_uris *u)
{
    memset(u, 0, sizeof *u);
    size_t len = 0;
    char *text = th_slurp(path, &len);
    if (!text) return -1;
    size_t cap = 1;
    for (size_t i = 0; i < len; i++) cap += text[i] == '\n';
    u->v = calloc(cap, sizeof *u->v);
    if (!u->v) {
        free(text);
        return -1;
    }
    for (char *s = text; *s;) {
        size_t l = strcspn(s, "\r\n");
        if (l > 0 && u->n < cap) u->v[u->n++] = strndup(s, l);
        s += l;
        while (*s == '\r' || *s == '\n') s++;
    }
    free(text);
    return 0;
}

void th_uris_free(struct th_uris *u)
{
    for (size_t i = 0; i < u->n; i++) free(u->v[i]);
    free(u->v);
    memset(u, 0, sizeof *u);
}

int th_uris_find(const struct th_uris *u, const char *suffix)
{
    size_t sl = strlen(suffix);
    for (size_t i = 0; i < u->n; i++) {
        size_t l = strlen(u->v[i]);
        if (l >= sl && strcmp(u->v[i] + l - sl, suffix) == 0) return (int)i;
    }
    return -1;
}

const char *th_jstr(const json_t *o, const char *a, const char *b)
{
    json_t *v = json_object_get(o, a);
    if (b) v = json_object_get(v, b);
    return json_is_string(v) ? json_string_value(v) : "";
}

/* <out>/<item-id>.json of a manifest line without an id (malloc'd; NULL on failure). Keys
 * do not depend on the batch; the record names it inside. */
static char *record_key(const char *out_uri, const char *uri)
{
    char id[EM_ID_LEN + 1], name[EM_ID_LEN + 8];
    em_id_item(uri, id);
    snprintf(name, sizeof name, "%s.json", id);
    return em_storage_join(out_uri, name);
}

json_t *th_record_get(struct em_storage *st, const char *out_uri, const char *batch,
                      const char *uri)
{
    (void)batch;
    char *key = record_key(out_uri, uri);
    if (!key) return NULL;
    uint8_t *data = NULL;
    size_t len = 0;
    struct em_errbuf eb = {{0}};
    em_err rc = em_storage_get(st, key, &data, &len, &eb);
    json_t *j = NULL;
    if (rc != EM_OK) {
        fprintf(stderr, "record of %s (%s): %s\n", uri, key, em_errbuf_msg(&eb, rc));
    } else {
        json_error_t je;
        j = json_loadb((const char *)data, len, 0, &je);
        if (!j) fprintf(stderr, "record of %s (%s): not JSON: %s\n", uri, key, je.text);
    }
    free(data);
    free(key);
    return j;
}

int th_record_exists(struct em_storage *st, const char *out_uri, const char *batch,
                     const char *uri)
{
    (void)batch;
    char *key = record_key(out_uri, uri);
    int yes = key && em_storage_exists(st, key, NULL) == EM_OK;
    free(key);
    return yes;
}

int th_record_check_ok(const json_t *rec, const char *uri, const char *batch)
{
    const char *why = NULL;
    double d = json_number_value(json_object_get(json_object_get(rec, "audio"), "duration_s"));
    if (!rec) why = "no record";
    else if (strcmp(th_jstr(rec, "status", NULL), "ok") != 0) why = "status is not ok";
    else if (strcmp(th_jstr(rec, "source", NULL), uri) != 0) why = "source differs";
    else if (strcmp(th_jstr(rec, "batch_id", NULL), batch) != 0) why = "batch_id differs";
    else if (!(d > 0)) why = "audio.duration_s is not > 0";
    if (!why) return 0;
    char *text = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
    fprintf(stderr, "record of %s: %s: %.600s\n", uri, why, text ? text : "");
    free(text);
    return 1;
}

int th_records_check_ok(struct em_storage *st, const char *out_uri, const char *batch,
                        const struct th_uris *u)
{
    int bad = 0;
    for (size_t i = 0; i < u->n; i++) {
        json_t *r = th_record_get(st, out_uri, batch, u->v[i]);
        bad += th_record_check_ok(r, u->v[i], batch);
        json_decref(r);
    }
    return bad;
}

int th_record_check_failed(const json_t *rec, const char *uri, const char *cls,
                           const char *mention)
{
    const char *why = NULL;
    const char *rc = th_jstr(rec, "error", "class"), *msg = th_jstr(rec, "error", "message");
    if (!rec) why = "no record";
    else if (strcmp(th_jstr(rec, "status", NULL), "failed") != 0) why = "status is not failed";
    else if (strcmp(th_jstr(rec, "source", NULL), uri) != 0) why = "source differs";
    else if (!*rc || (cls && strcmp(rc, cls) != 0)) why = "error.class differs";
    else if (mention && !strstr(msg, mention) && !strstr(rc, mention))
        why = "error does not mention the cause";
    if (!why) return 0;
    char *text = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
    fprintf(stderr, "record of %s: %s (want class %s, mention %s): %.600s\n", uri, why,
            cls ? cls : "any", mention ? mention : "-", text ? text : "");
    free(text);
    return 1;
}

int th_manifest_check(struct em_storage *st, const char *out_uri, const char *batch,
                      const struct th_uris *u)
{
    (void)batch; /* ids do not depend on the batch */
    char *key = em_storage_join(out_uri, "manifest.jsonl");
    uint8_t *data = NULL;
    size_t len = 0;
    struct em_errbuf eb = {{0}};
    em_err rc = key ? em_storage_get(st, key, &data, &len, &eb) : EM_E_NOMEM;
    free(key);
    if (rc != EM_OK) {
        fprintf(stderr, "manifest.jsonl: %s\n", em_errbuf_msg(&eb, rc));
        return 1;
    }
    int problems = 0;
    char (*ids)[EM_ID_LEN + 1] = calloc(u->n + 1, sizeof *ids);
    int *seen = calloc(u->n + 1, sizeof *seen);
    if (!ids || !seen) problems++;
    for (size_t i = 0; ids && i < u->n; i++) em_id_item(u->v[i], ids[i]);
    size_t lines = 0;
    for (char *s = (char *)data; ids && seen && s && *s;) {
        char *nl = strchr(s, '\n');
        size_t l = nl ? (size_t)(nl - s) : strlen(s);
        if (l > 0) {
            lines++;
            json_t *j = json_loadb(s, l, 0, NULL);
            const char *id = th_jstr(j, "id", NULL);
            size_t k = 0;
            while (k < u->n && strcmp(ids[k], id) != 0) k++;
            if (!j || k == u->n) {
                fprintf(stderr, "manifest.jsonl: line %zu names no item of the batch: %.*s\n",
                        lines, (int)(l < 300 ? l : 300), s);
                problems++;
            } else {
                if (seen[k]++) {
                    fprintf(stderr, "manifest.jsonl: item %s (%s) listed twice\n", id, u->v[k]);
                    problems++;
                }
                if (!*th_jstr(j, "status", NULL) || !*th_jstr(j, "output", NULL)) {
                    fprintf(stderr, "manifest.jsonl: line %zu lacks status or output\n", lines);
                    problems++;
                }
            }
            json_decref(j);
        }
        s = nl ? nl + 1 : NULL;
    }
    for (size_t k = 0; ids && seen && k < u->n; k++)
        if (!seen[k]) {
            fprintf(stderr, "manifest.jsonl: item %s (%s) missing\n", ids[k], u->v[k]);
            problems++;
        }
    free(ids);
    free(seen);
    free(data);
    return problems;
}

int th_count_json(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || l < 6 || strcmp(e->d_name + l - 5, ".json") != 0) continue;
        n++;
    }
    closedir(d);
    return n;
}
