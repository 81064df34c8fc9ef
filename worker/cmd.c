/* worker/cmd.c - `earmark worker`: options -> em_loop_run.
 *   earmark worker --connect ENDPOINT [--model PATH] [--threads N] [--capacity N]
 *                  [--kv-budget BYTES] [--id NAME] [--drain-ms N] [--curve-key FILE --coordinator-key FILE]
 *                  [--source-root DIR]... [--metrics HOST:PORT] [--device cpu|cuda[:N]]
 *                  [--weights q8_0]
 * Environment fallbacks: EARMARK_COORDINATOR, EARMARK_MODEL, EARMARK_THREADS,
 * EARMARK_CAPACITY, EARMARK_KV_BUDGET, EARMARK_WORKER_ID, EARMARK_DRAIN_MS, EARMARK_CURVE_KEY,
 * EARMARK_COORDINATOR_KEY, EARMARK_WORKER_METRICS, EARMARK_DEVICE, EARMARK_WEIGHTS;
 * EARMARK_SOURCE_ROOTS (colon-separated)
 * adds to the --source-root flags. S3 settings: AWS_* (storage.h). The HTTP endpoint
 * (worker/metrics.h) starts before the model loads, so /healthz answers and /readyz says
 * "model not loaded yet" meanwhile.
 * With a Qwen2-Audio model the worker makes one engine (model/gen/engine.h): the clips it
 * holds (--capacity) run their front end and prefills on the pipeline threads (default: one
 * per clip held) and decode together, every live sequence of every clip in one step, their
 * KV caches under --kv-budget (admission waits for memory). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cmd.h"
#include "common/log.h"
#include "common/num.h"
#include "worker/loop.h"
#include "common/httpd.h"
#include "common/usage.h"
#include "model/kernels/backend.h"
#include "model/model.h"
#include "model/gen/engine.h"
#include "worker/metrics.h"
#include "worker/source.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: earmark worker --connect ENDPOINT [--model PATH] [--threads N]\n"
            "                      [--capacity N] [--kv-budget BYTES] [--id NAME] [--drain-ms N]\n"
            "                      [--curve-key FILE --coordinator-key FILE]\n"
            "                      [--source-root DIR]... [--metrics HOST:PORT]\n"
            "                      [--device cpu|cuda[:N]] [--weights q8_0]\n"
            "  --connect   coordinator endpoint, e.g. tcp://host:5555 (EARMARK_COORDINATOR)\n"
            "  --model     Hugging Face checkpoint directory or .gguf (EARMARK_MODEL); none: facts only\n"
            "  --threads   pipeline threads (EARMARK_THREADS, default = capacity, else 1)\n"
            "  --capacity  clips held at once, decoded together (EARMARK_CAPACITY, default = threads)\n"
            "  --kv-budget KV-cache memory for all clips held, e.g. 8GiB, 512MiB (EARMARK_KV_BUDGET;\n"
            "              default unlimited); a clip waits for memory, one that never fits fails\n"
            "  --id        worker id (EARMARK_WORKER_ID, default hostname-pid)\n"
            "  --drain-ms  bound on finishing held tasks after SIGTERM (EARMARK_DRAIN_MS, 30000)\n"
            "  --curve-key        own CURVE secret key file, mode 0600 (EARMARK_CURVE_KEY)\n"
            "  --coordinator-key  the coordinator's public key file (EARMARK_COORDINATOR_KEY)\n"
            "  --source-root DIR  local sources may be read under DIR only (repeatable; also\n"
            "              EARMARK_SOURCE_ROOTS=DIR:DIR); none: no local files, s3/http only\n"
            "  --metrics   serve /metrics, /healthz, /readyz on HOST:PORT\n"
            "              (EARMARK_WORKER_METRICS)\n"
            "  --device    cpu, cuda or cuda:N: where the model runs (EARMARK_DEVICE, default cpu)\n"
            "  --weights q8_0  Whisper: quantize the linear weights to q8_0 at load (EARMARK_WEIGHTS)\n");
}

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}

int em_cmd_worker(int argc, char **argv)
{
    const char *connect = env_or("EARMARK_COORDINATOR", NULL);
    const char *model = env_or("EARMARK_MODEL", NULL);
    const char *threads_s = env_or("EARMARK_THREADS", NULL);
    const char *capacity_s = env_or("EARMARK_CAPACITY", NULL);
    const char *budget_s = env_or("EARMARK_KV_BUDGET", NULL);
    const char *id = env_or("EARMARK_WORKER_ID", NULL);
    const char *drain_s = env_or("EARMARK_DRAIN_MS", "30000");
    const char *curve_key = env_or("EARMARK_CURVE_KEY", NULL);
    const char *coord_key = env_or("EARMARK_COORDINATOR_KEY", NULL);
    const char *roots[EM_SOURCE_MAX_ROOTS];
    size_t nroots = 0;
    const char *metrics = env_or("EARMARK_WORKER_METRICS", NULL);
    const char *device = env_or("EARMARK_DEVICE", "cpu");
    const char *weights = env_or("EARMARK_WEIGHTS", NULL);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strncmp(a, "--", 2) != 0)
            return em_usage_error("worker", usage, "unexpected argument '%.80s'", a);
        if (i + 1 >= argc)
            return em_usage_error("worker", usage, "option '%.80s' needs a value (or is unknown)",
                                  a);
        const char *v = argv[++i];
        if (strcmp(a, "--connect") == 0) connect = v;
        else if (strcmp(a, "--model") == 0) model = v;
        else if (strcmp(a, "--threads") == 0) threads_s = v;
        else if (strcmp(a, "--capacity") == 0) capacity_s = v;
        else if (strcmp(a, "--kv-budget") == 0) budget_s = v;
        else if (strcmp(a, "--id") == 0) id = v;
        else if (strcmp(a, "--drain-ms") == 0) drain_s = v;
        else if (strcmp(a, "--curve-key") == 0) curve_key = v;
        else if (strcmp(a, "--coordinator-key") == 0) coord_key = v;
        else if (strcmp(a, "--source-root") == 0 && nroots < EM_SOURCE_MAX_ROOTS)
            roots[nroots++] = v;
        else if (strcmp(a, "--metrics") == 0) metrics = v;
        else if (strcmp(a, "--device") == 0) device = v;
        else if (strcmp(a, "--weights") == 0) weights = v;
        else if (strcmp(a, "--source-root") == 0)
            return em_usage_error("worker", usage, "more than %d --source-root",
                                  EM_SOURCE_MAX_ROOTS);
        else
            return em_usage_error("worker", usage, "unknown option '%.80s'", a);
    }
    struct em_loop_opts o = em_loop_opts_default();
    long capacity = capacity_s ? em_num_parse(capacity_s, 1, EM_LOOP_MAX_CAPACITY) : 0;
    long threads = threads_s ? em_num_parse(threads_s, 1, EM_LOOP_MAX_THREADS)
                   : capacity > 0 ? (capacity < EM_LOOP_MAX_THREADS ? capacity : EM_LOOP_MAX_THREADS)
                                  : 1;
    if (!capacity_s) capacity = threads;
    uint64_t kv_budget = EM_KVPOOL_UNLIMITED;
    if (budget_s && em_kvpool_parse_bytes(budget_s, &kv_budget) != EM_OK)
        return em_usage_error("worker", usage, "--kv-budget '%.40s': expected bytes, or a number "
                              "with K, M, G or T (KiB..TiB), e.g. 8GiB", budget_s);
    long drain = em_num_parse(drain_s, 0, 3600000);
    if (!connect) return em_usage_required("worker", usage, "--connect", "or EARMARK_COORDINATOR");
    if (weights && strcmp(weights, "q8_0") != 0)
        return em_usage_error("worker", usage, "--weights %.80s: expected q8_0", weights);
    if (threads < 0 || capacity < 0 || drain < 0)
        return em_usage_error("worker", usage, "%s",
                              threads < 0    ? "--threads must be 1..256"
                              : capacity < 0 ? "--capacity must be 1..1024"
                                             : "--drain-ms must be 0..3600000");
    char idbuf[EM_LOOP_MAX_ID + 1];
    if (!id) {
        char host[128] = "worker";
        if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "worker");
        host[sizeof host - 1] = 0;
        snprintf(idbuf, sizeof idbuf, "%s-%ld", host, (long)getpid());
        id = idbuf;
    }
    struct em_errbuf eb = {{0}};
    em_err drc = em_backend_check(device, &eb);
    if (drc != EM_OK) {
        fprintf(stderr, "earmark worker: --device %s: %s\n", device, em_errbuf_msg(&eb, drc));
        return drc == EM_E_ARG ? 2 : 1;
    }
    if (!curve_key != !coord_key) {
        fprintf(stderr, "earmark worker: --curve-key and --coordinator-key go together\n");
        return 2;
    }
    struct em_curve_pair pair = {{0}, {0}};
    char server_key[EM_CURVE_Z85 + 1] = "";
    if (curve_key) {
        em_err krc = em_curve_load_pair(curve_key, &pair, &eb);
        if (krc == EM_OK) krc = em_curve_load_pub(coord_key, server_key, &eb);
        if (krc != EM_OK) {
            memset(&pair, 0, sizeof pair);
            fprintf(stderr, "earmark worker: %s\n", em_errbuf_msg(&eb, krc));
            return krc == EM_E_AUTH || krc == EM_E_FORMAT ? 2 : 1;
        }
        o.curve = &pair;
        o.server_key = server_key;
    }
    struct em_source_policy sources;
    em_err prc = em_source_policy_init(&sources, roots, nroots, false, &eb);
    if (prc == EM_OK) prc = em_source_policy_add_list(&sources, getenv("EARMARK_SOURCE_ROOTS"), &eb);
    if (prc != EM_OK) {
        memset(&pair, 0, sizeof pair);
        fprintf(stderr, "earmark worker: %s\n", em_errbuf_msg(&eb, prc));
        return 2;
    }
    if (sources.n_roots == 0)
        em_info("msg=\"no --source-root: local (file://) sources will be refused\"");
    for (size_t i = 0; i < sources.n_roots; i++)
        em_info("msg=\"source root\" dir=\"%s\"", sources.roots[i]);
    struct em_model *rt = NULL;
    struct em_engine *eng = NULL;
    struct em_wmetrics *wm = NULL;
    struct em_httpd *web = NULL;
    if (metrics) {
        struct em_wmetrics_info wi = {.worker_id = id,
                                      .backend = device,
                                      .threads = (unsigned)threads,
                                      .capacity = (unsigned)capacity,
                                      .wants_model = model != NULL};
        em_err mrc = em_wmetrics_new(&wi, &wm);
        if (mrc == EM_OK) mrc = em_wmetrics_serve(wm, metrics, &web, &eb);
        if (mrc != EM_OK) {
            fprintf(stderr, "earmark worker: %s\n", em_errbuf_msg(&eb, mrc));
            em_wmetrics_free(wm);
            memset(&pair, 0, sizeof pair);
            em_source_policy_free(&sources);
            return 1;
        }
    }
    if (model) {
        /* loaded once, before connecting: a worker that cannot run its model takes no task */
        struct em_model_opts mo = em_model_opts_default();
        mo.device = device;
        mo.weights = weights;
        em_err lrc = em_model_load(model, &mo, &rt, &eb);
        if (lrc != EM_OK) {
            fprintf(stderr, "earmark worker: --model %s: %s\n", model, em_errbuf_msg(&eb, lrc));
            memset(&pair, 0, sizeof pair);
            em_source_policy_free(&sources);
            em_httpd_free(web);
            em_wmetrics_free(wm);
            return 1;
        }
        em_wmetrics_model_loaded(wm, em_model_identity(rt), em_model_backend(rt));
        /* capacity 1 without a budget: each clip decodes on its own, as before engines */
        lrc = capacity > 1 || budget_s ? em_model_engine_new(rt, kv_budget, &eng, &eb) : EM_OK;
        if (lrc == EM_E_UNSUPPORTED) {
            em_info("msg=\"no batching engine\" reason=\"%s\"", eb.msg);
        } else if (lrc != EM_OK) {
            fprintf(stderr, "earmark worker: --kv-budget: %s\n", em_errbuf_msg(&eb, lrc));
            memset(&pair, 0, sizeof pair);
            em_source_policy_free(&sources);
            em_httpd_free(web);
            em_wmetrics_free(wm);
            em_model_free(rt);
            return lrc == EM_E_TOO_LONG || lrc == EM_E_ARG ? 2 : 1;
        }
    }
    o.endpoint = connect;
    o.worker_id = id;
    o.model = rt ? em_model_identity(rt) : NULL;
    o.rt = rt;
    o.engine = eng;
    o.threads = (unsigned)threads;
    o.capacity = (unsigned)capacity;
    o.drain_ms = (int)drain;
    o.sources = &sources;
    o.metrics = wm;
    em_err rc = em_loop_run(&o, NULL, &eb);
    em_httpd_free(web);
    memset(&pair, 0, sizeof pair);
    if (rc == EM_E_TIMEOUT) {
        rt = NULL; /* pipeline threads may still use it, the engine, the policy and wm: leave them */
        eng = NULL;
        wm = NULL;
    } else {
        em_source_policy_free(&sources);
    }
    em_wmetrics_free(wm);
    em_engine_free(eng);
    em_model_free(rt);
    if (rc != EM_OK) {
        fprintf(stderr, "earmark worker: %s\n", em_errbuf_msg(&eb, rc));
        return 1;
    }
    return 0;
}
