/* tests/integration/test_it_redis_trust.c - the coordinator's side of Redis as an operator
 * would secure it and as it fails, on a real cluster whose redis-server speaks TLS (a CA
 * and a server certificate made here with the openssl CLI) and has an ACL user:
 *   a. every process reaches Redis only through rediss:// as the ACL user "earmark" (the
 *      default user may only PING), with a password holding '@', ':', '%' and '/'
 *      (%-encoded in the URL); a batch completes, and no log of any process contains the
 *      password;
 *   b. a wrong CA or a wrong password fails the coordinator's start with one clear line
 *      that does not contain the password; a password given with --redis is blanked in
 *      the process's command line;
 *   c. Redis restarted empty mid-batch (no persistence): the coordinator recreates its
 *      consumer group, says the batch is lost (once), counts it, and the next batch
 *      completes without restarting the coordinator;
 *   d. the other Redis-using commands (submit, status, ls, cancel, delete, export) take
 *      --redis-ca (no EARMARK_REDIS_CA in their environment), and each blanks a password
 *      given with --redis in its own command line, seen while it waits on a Redis that
 *      never answers.
 * Nothing asserts on timing. */
#include <CUnit/CUnit.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/id.h"
#include "tests/helpers/clips.h"
#include "tests/helpers/cluster.h"
#include "tests/helpers/proc.h"

#define PASSWORD "s3cr@t:p%w/d"            /* as Redis knows it */
#define PASSWORD_URL "s3cr%40t%3Ap%25w%2Fd" /* as it stands in a URL */
#define WAIT_MS 30000

static struct th_cluster c;
static struct em_storage *st;
static char pki[512], url[256], tls_port[16], crt[600], key[600], ca[600], ca_env[640];

static int clean(void)
{
    th_cluster_stop_storage(&c, &st);
    if (pki[0]) th_rmrf(pki);
    pki[0] = 0;
    unsetenv("EARMARK_REDIS_CA");
    return 0;
}

/* A CA and a certificate for 127.0.0.1 signed by it, and an unrelated CA. */
static int make_pki(void)
{
    if (th_tmpdir(pki, sizeof pki) != 0) return -1;
    return th_sh("cd '%s' && "
                 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                 "-keyout ca.key -out ca.crt -days 2 -subj '/CN=earmark test CA' 2>/dev/null && "
                 "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                 "-keyout redis.key -out redis.csr -subj '/CN=127.0.0.1' 2>/dev/null && "
                 "printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext && "
                 "openssl x509 -req -in redis.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
                 "-out redis.crt -days 2 -extfile san.ext 2>/dev/null && "
                 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                 "-keyout other.key -out other.crt -days 2 -subj '/CN=other CA' 2>/dev/null",
                 pki);
}

static int start(void)
{
    if (make_pki() != 0) return 1;
    snprintf(tls_port, sizeof tls_port, "%d", th_free_port());
    snprintf(crt, sizeof crt, "%s/redis.crt", pki);
    snprintf(key, sizeof key, "%s/redis.key", pki);
    snprintf(ca, sizeof ca, "%s/ca.crt", pki);
    /* redis-server joins the words after an option into one config line */
    static const char *args[] = {"--tls-port", tls_port, "--tls-cert-file", crt,
                                 "--tls-key-file", key, "--tls-ca-cert-file", ca,
                                 "--tls-auth-clients", "no",
                                 /* anonymous clients may PING (readiness check), no more */
                                 "--user", "default", "on", "nopass", "-@all", "+ping",
                                 "--user", "earmark", "on", ">" PASSWORD, "~*", "&*", "+@all",
                                 NULL};
    snprintf(url, sizeof url, "rediss://earmark:%s@127.0.0.1:%s", PASSWORD_URL, tls_port);
    /* every process of the cluster (and submit) trusts the test CA */
    setenv("EARMARK_REDIS_CA", ca, 1);
    snprintf(ca_env, sizeof ca_env, "EARMARK_REDIS_CA=%s", ca);
    struct th_cluster_opts o = {
        .workers = 1,
        .threads = 1,
        .redis_args = args,
        .redis_url = url,
        .worker_env = {"EARMARK_FAULT_DELAY_MS=300", NULL},
    };
    return th_cluster_start_storage(&c, &o, NULL, &st) != 0;
}

static int init(void) { return th_suite_init(start, clean); }


/* 0 when no log in the cluster's dir (coordinator, workers, submit) holds the password,
 * raw or %-encoded. */
static int password_in_logs(void)
{
    return th_sh("cd '%s' && ! grep -l -F -e 's3cr@t' -e 's3cr%%40t' -e 'p%%w/d' *.log >&2", c.dir);
}

static void check_ok(struct th_uris *u, const char *out)
{
    CU_ASSERT_EQUAL(th_manifest_check(st, out, c.batch, u), 0);
    CU_ASSERT_EQUAL(th_records_check_ok(st, out, c.batch, u), 0);
    th_uris_free(u);
}

/* ---- a ---- */

static void tls_acl_batch_completes(void)
{
    char manifest[760], out[760];
    CU_ASSERT_EQUAL_FATAL(th_cluster_corpus(&c, "a", 4, manifest, out, sizeof manifest), 0);
    struct th_uris u;
    CU_ASSERT_EQUAL_FATAL(th_uris_load(manifest, &u), 0);
    CU_ASSERT_EQUAL_FATAL(th_cluster_submit(&c, manifest, out, 3), 0);
    CU_ASSERT_EQUAL(th_cluster_wait(&c, st, out, TH_CLUSTER_WAIT_MS, NULL, NULL), 0);
    check_ok(&u, out);
    /* plain TCP to the TLS port, or anonymous on the plain one, gets nowhere */
    CU_ASSERT_NOT_EQUAL(th_sh("EARMARK_REDIS_URL='redis://127.0.0.1:%d' '%s' status %s "
                              ">/dev/null 2>&1",
                              c.redis.port, th_bin(), c.batch),
                        0);
    CU_ASSERT_EQUAL(password_in_logs(), 0);
}

/* ---- b ---- */

/* The coordinator given url_ and ca_ exits non-zero with a line containing want and not
 * the password. */
static void start_refused(const char *url_, const char *ca_, const char *want)
{
    char log[700];
    snprintf(log, sizeof log, "%s/refused.log", c.dir);
    int rc = th_sh("EARMARK_REDIS_URL='%s' EARMARK_REDIS_CA='%s' EARMARK_REDIS_WAIT_MS=0 "
                   "timeout 30 '%s' coordinator --bind tcp://127.0.0.1:%d > '%s' 2>&1",
                   url_, ca_, th_bin(), th_free_port(), log);
    CU_ASSERT_TRUE(rc == 1 || rc == 2);
    char *text = th_slurp(log, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    if (!strstr(text, want)) fprintf(stderr, "\n  expected '%s' in: %s\n", want, text);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, want));
    CU_ASSERT_PTR_NULL(strstr(text, "s3cr"));
    CU_ASSERT_PTR_NULL(strstr(text, "wrong-pw"));
    free(text);
}

static void bad_ca_or_password_refused(void)
{
    char other[600], bad[300];
    snprintf(other, sizeof other, "%s/other.crt", pki);
    start_refused(url, other, "certificate");
    snprintf(bad, sizeof bad, "rediss://earmark:wrong-pw@127.0.0.1:%s", tls_port);
    start_refused(bad, ca, "AUTH refused");
}

/* A URL given on the command line after all: the coordinator blanks its password in argv
 * (so ps and /proc/PID/cmdline stop showing it) and says to use the environment. */
static void redis_flag_password_hidden_from_ps(void)
{
    char bind[64], log[700];
    snprintf(bind, sizeof bind, "tcp://127.0.0.1:%d", th_free_port());
    snprintf(log, sizeof log, "%s/coordinator-flag.log", c.dir);
    char *argv[] = {(char *)th_bin(), "coordinator", "--redis", url, "--bind", bind,
                    "--id", "flag-test", NULL};
    pid_t pid = th_spawn(argv, NULL, log);
    CU_ASSERT_TRUE_FATAL(pid > 0);
    int up = 0;
    for (int64_t until = em_now_ms() + WAIT_MS; !up && em_now_ms() < until; em_sleep_ms(100))
        up = th_sh("grep -q 'coordinator up' '%s'", log) == 0;
    CU_ASSERT_TRUE(up);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    size_t n = 0;
    char *cmd = th_slurp(path, &n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cmd);
    for (size_t i = 0; i < n; i++)
        if (!cmd[i]) cmd[i] = ' ';
    CU_ASSERT_PTR_NULL(strstr(cmd, "s3cr"));
    CU_ASSERT_PTR_NOT_NULL(strstr(cmd, "@127.0.0.1")); /* the rest of the URL is still there */
    free(cmd);
    CU_ASSERT_EQUAL(th_stop(pid, SIGTERM, 10000), 0);
    CU_ASSERT_EQUAL(th_sh("grep -q 'EARMARK_REDIS_URL or --redis-url-file' '%s'", log), 0);
    CU_ASSERT_EQUAL(password_in_logs(), 0);
}

/* ---- c ---- */

struct restart {
    const char *probe; /* an item whose record means the batch is under way */
    const char *out;
    int restarted;
};


static void restart_tick(struct th_cluster *cl, void *arg)
{
    struct restart *r = arg;
    (void)cl;
    if (r->restarted || !th_record_exists(st, r->out, c.batch, r->probe)) return;
    r->restarted = th_server_restart(&c.redis) == 0 ? 1 : -1;
}

static void redis_restarted_empty_next_batch_completes(void)
{
    char manifest[760], out[760];
    pid_t coord = c.coord;
    double lost0 = th_cluster_metric_exact(&c, "earmark_batches_lost_total", NULL);
    CU_ASSERT_EQUAL_FATAL(th_cluster_corpus(&c, "c1", 12, manifest, out, sizeof manifest), 0);
    struct th_uris u;
    CU_ASSERT_EQUAL_FATAL(th_uris_load(manifest, &u), 0);
    CU_ASSERT_EQUAL_FATAL(th_cluster_submit(&c, manifest, out, 3), 0);
    char lost_batch[64];
    snprintf(lost_batch, sizeof lost_batch, "%s", c.batch);
    /* Redis (no persistence) is restarted once the first record is written: the batch is
     * gone with it; its manifest.jsonl never comes */
    struct restart r = {.probe = u.v[0], .out = out};
    int64_t until = em_now_ms() + TH_CLUSTER_WAIT_MS;
    while (!r.restarted && em_now_ms() < until) {
        restart_tick(&c, &r);
        em_sleep_ms(100);
    }
    CU_ASSERT_EQUAL_FATAL(r.restarted, 1);
    th_uris_free(&u);
    until = em_now_ms() + WAIT_MS;
    while (th_cluster_metric_exact(&c, "earmark_batches_lost_total", NULL) < lost0 + 1 &&
           em_now_ms() < until)
        em_sleep_ms(100);
    CU_ASSERT_EQUAL(th_cluster_metric_exact(&c, "earmark_batches_lost_total", NULL), lost0 + 1);
    /* the next batch, same coordinator process */
    CU_ASSERT_EQUAL_FATAL(th_cluster_corpus(&c, "c2", 4, manifest, out, sizeof manifest), 0);
    CU_ASSERT_EQUAL_FATAL(th_uris_load(manifest, &u), 0);
    CU_ASSERT_EQUAL_FATAL(th_cluster_submit(&c, manifest, out, 3), 0);
    CU_ASSERT_EQUAL(th_cluster_wait(&c, st, out, TH_CLUSTER_WAIT_MS, NULL, NULL), 0);
    check_ok(&u, out);
    CU_ASSERT_EQUAL(c.coord, coord);
    CU_ASSERT_EQUAL(th_wait(c.coord, 0), -1); /* still running */
    fprintf(stderr, "\n  coordinator on the loss:\n");
    th_sh("grep -h -e 'batch lost' -e 'group made again' '%s'/coordinator-*.log | cut -c1-220 >&2",
          c.dir);
    /* said once, loudly */
    CU_ASSERT_EQUAL(th_sh("test \"$(cat '%s'/coordinator-*.log | "
                          "grep -c 'batch=%s msg=\"batch lost')\" = 1",
                          c.dir, lost_batch),
                    0);
    CU_ASSERT_EQUAL(password_in_logs(), 0);
    CU_ASSERT_EQUAL(th_cluster_sanitizer_reports(&c), 0);
}

/* ---- d ---- */

static void cli_commands_take_redis_ca(void)
{
    char manifest[760], out[760], log[700];
    CU_ASSERT_EQUAL_FATAL(th_cluster_corpus(&c, "d", 2, manifest, out, sizeof manifest), 0);
    snprintf(log, sizeof log, "%s/cli-ca.log", c.dir);
    /* submit --wait with the CA from the flag alone */
    CU_ASSERT_EQUAL_FATAL(th_sh("env -u EARMARK_REDIS_CA EARMARK_REDIS_URL='%s' '%s' submit "
                                "--redis-ca '%s' --manifest '%s' --out '%s' --wait > '%s' 2>&1",
                                url, th_bin(), ca, manifest, out, log),
                          0);
    char *text = th_slurp(log, NULL), batch[64] = "";
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    sscanf(text, "%63s", batch);
    free(text);
    CU_ASSERT_TRUE_FATAL(batch[0] != 0);
    static const char *const cmds[] = {"status --json %s", "ls", "export %s -o /dev/null",
                                       "cancel %s"};
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        char args[200];
        snprintf(args, sizeof args, cmds[i], batch);
        int with = th_sh("env -u EARMARK_REDIS_CA EARMARK_REDIS_URL='%s' '%s' %s "
                         "--redis-ca '%s' >> '%s' 2>&1",
                         url, th_bin(), args, ca, log);
        int without = th_sh("env -u EARMARK_REDIS_CA EARMARK_REDIS_URL='%s' '%s' %s >> '%s' 2>&1",
                            url, th_bin(), args, log);
        if (with != 0 || without == 0)
            fprintf(stderr, "\n  earmark %s: %d with --redis-ca, %d without\n", args, with, without);
        CU_ASSERT_EQUAL(with, 0);
        CU_ASSERT_NOT_EQUAL(without, 0); /* the CA is what made it work */
    }
    CU_ASSERT_EQUAL(th_sh("env -u EARMARK_REDIS_CA '%s' delete --redis '%s' --redis-ca '%s' "
                          "--force %s >> '%s' 2>&1",
                          th_bin(), url, ca, batch, log),
                    0);
    CU_ASSERT_EQUAL(password_in_logs(), 0);
}

/* Each command given --redis URL-with-password blanks the password in its own argv at once:
 * watched in /proc/PID/cmdline while it waits (up to its Redis timeout) on a listener that
 * accepts connections and never answers. */
static void cli_commands_hide_redis_password(void)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    CU_ASSERT_TRUE_FATAL(ls >= 0 && bind(ls, (struct sockaddr *)&a, sizeof a) == 0 &&
                         listen(ls, 16) == 0 &&
                         getsockname(ls, (struct sockaddr *)&a, &al) == 0);
    char mute[200], manifest[760], out[760];
    snprintf(mute, sizeof mute, "rediss://earmark:%s@127.0.0.1:%d", PASSWORD_URL,
             ntohs(a.sin_port));
    CU_ASSERT_EQUAL_FATAL(th_cluster_corpus(&c, "ps", 1, manifest, out, sizeof manifest), 0);
    const char *bin = th_bin();
    char *const argvs[][12] = {
        {(char *)bin, "submit", "--redis", mute, "--manifest", manifest, "--out", out, NULL},
        {(char *)bin, "status", "--redis", mute, "b1", NULL},
        {(char *)bin, "ls", "--redis", mute, NULL},
        {(char *)bin, "cancel", "--redis", mute, "b1", NULL},
        {(char *)bin, "delete", "--redis", mute, "b1", NULL},
        {(char *)bin, "export", "b1", "--redis", mute, NULL},
    };
    for (size_t i = 0; i < sizeof argvs / sizeof *argvs; i++) {
        char log[700], path[64];
        snprintf(log, sizeof log, "%s/ps-%zu.log", c.dir, i);
        pid_t pid = th_spawn(argvs[i], NULL, log);
        CU_ASSERT_TRUE_FATAL(pid > 0);
        snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
        int hidden = 0, shown = 0;
        /* until the process is gone (its Redis timeout) or its argv shows blanked */
        while (!hidden && th_wait(pid, 50) == -1) {
            size_t n = 0;
            char *cmd = th_slurp(path, &n);
            for (size_t k = 0; cmd && k < n; k++)
                if (!cmd[k]) cmd[k] = ' ';
            if (cmd && strstr(cmd, "@127.0.0.1")) {
                hidden |= !strstr(cmd, "s3cr");
                shown |= strstr(cmd, "s3cr") != NULL;
            }
            free(cmd);
        }
        if (!hidden) fprintf(stderr, "\n  earmark %s: password still in its cmdline\n", argvs[i][1]);
        CU_ASSERT_TRUE(hidden);
        th_stop(pid, SIGKILL, 10000);
        (void)shown; /* before the parse it may still show: that moment is unavoidable */
    }
    close(ls);
    CU_ASSERT_EQUAL(password_in_logs(), 0);
}

static CU_TestInfo tests[] = {
    {"tls_acl_batch_completes", tls_acl_batch_completes},
    {"bad_ca_or_password_refused", bad_ca_or_password_refused},
    {"redis_flag_password_hidden_from_ps", redis_flag_password_hidden_from_ps},
    {"redis_restarted_empty_next_batch_completes", redis_restarted_empty_next_batch_completes},
    {"cli_commands_take_redis_ca", cli_commands_take_redis_ca},
    {"cli_commands_hide_redis_password", cli_commands_hide_redis_password},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_it_redis_trust = {"it_redis_trust", init, clean, NULL, NULL, tests};
