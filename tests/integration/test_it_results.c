/* tests/integration/test_it_results.c - the users' tools on batches, through the binary:
 *   - synthetic records (tests/results/make-records.py, 300 items, references in meta.ref):
 *     `earmark eval --json --items` recomputed independently (tests/results/check-eval.py:
 *     jiwer, Counter, sums); `earmark diff` of a run with itself (no change, gate passes)
 *     and with a copy where one item's transcript is emptied (that item listed as changed,
 *     exit 3 under --gate wer:0, 0 under a loose gate); `earmark report` rendered in
 *     headless Chromium (tests/results/check-report.py: no console error, plots hold the
 *     records' numbers); `earmark export` read by Hugging Face datasets
 *     (tests/results/check-export.py); `earmark index` twice (the second adds nothing) and
 *     `earmark search`.
 *   - a real batch: the demo corpus (deploy/make-corpus.sh) with references from its
 *     spoken sentences (tests/results/refs-manifest.py) annotated by two workers running the
 *     random-weight demo model behind a coordinator; the same checks on its records (the
 *     WER is high; what is asserted is that every number equals the independent one).
 *   - records read from S3 (SeaweedFS) through manifest.jsonl give the same numbers. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/helpers/clips.h"
#include "tests/helpers/cluster.h"
#include "tests/helpers/proc.h"
#include "tests/helpers/servers.h"

#define SYNTH_ITEMS 300
#define DEMO_CLIPS 8
#define DEMO_NEW_TOKENS 16 /* per prompt and window: keeps the batch short under ASan */

static struct th_cluster c;
static struct em_storage *st;
static char tmp[512], model_env[700];
static int clean(void);

static int start(void)
{
    if (th_tmpdir(tmp, sizeof tmp) != 0) return 1;
    return th_cluster_start_demo(&c, 2, tmp, model_env, sizeof model_env, &st) != 0;
}

static int init(void) { return th_suite_init(start, clean); }

static int clean(void)
{
    th_cluster_stop_storage(&c, &st);
    th_rmrf(tmp);
    return 0;
}

/* eval, report, export and index checks on the records in out_dir (a local directory). */
static void check_tools(const char *out_dir, const char *tag)
{
    const char *bin = th_bin(), *root = th_root();
    char w[700];
    snprintf(w, sizeof w, "%s/%s", tmp, tag);
    CU_ASSERT_EQUAL_FATAL(th_sh("mkdir -p '%s'", w), 0);
    CU_ASSERT_EQUAL(th_sh("'%s' eval '%s' --json --items > '%s/eval.json'", bin, out_dir, w), 0);
    CU_ASSERT_EQUAL(th_sh("python3 '%s/tests/results/check-eval.py' '%s' '%s/eval.json'", root,
                          out_dir, w), 0);
    CU_ASSERT_EQUAL(th_sh("'%s' report '%s' -o '%s/report.html'", bin, out_dir, w), 0);
    CU_ASSERT_EQUAL(th_sh("python3 '%s/tests/results/check-report.py' '%s/report.html' '%s' "
                          "'%s/eval.json' '%s/report.png'", root, w, out_dir, w, w), 0);
    CU_ASSERT_EQUAL(th_sh("'%s' export '%s' -o '%s/items.jsonl' 2>/dev/null && "
                          "'%s' export '%s' --segments -o '%s/segments.jsonl' 2>/dev/null && "
                          "'%s' export '%s' --format csv -o '%s/items.csv' 2>/dev/null",
                          bin, out_dir, w, bin, out_dir, w, bin, out_dir, w), 0);
    CU_ASSERT_EQUAL(th_sh("python3 '%s/tests/results/check-export.py' '%s' '%s/items.jsonl' "
                          "'%s/segments.jsonl' '%s/items.csv' 2>&1 | grep -v '^Generating\\|it/s'",
                          root, out_dir, w, w, w), 0);
    /* index twice: the second run finds every record unchanged */
    CU_ASSERT_EQUAL(th_sh("'%s' index '%s' --db '%s/c.sqlite' > '%s/index1.txt'", bin, out_dir, w, w), 0);
    CU_ASSERT_EQUAL(th_sh("'%s' index '%s' --db '%s/c.sqlite' > '%s/index2.txt'", bin, out_dir, w, w), 0);
    CU_ASSERT_EQUAL(th_sh("n=$(ls '%s'/*.json | wc -l); grep -q \" $n added, 0 updated, 0 unchanged\" '%s/index1.txt' && "
                          "grep -q \" 0 added, 0 updated, $n unchanged\" '%s/index2.txt'", out_dir, w, w), 0);
    /* search: a word of some record's transcript or caption finds that record */
    CU_ASSERT_EQUAL(th_sh("python3 - '%s' > '%s/probe.txt' <<'EOF'\n"
                          "import glob, json, re, sys\n"
                          "for p in sorted(glob.glob(sys.argv[1] + '/*.json')):\n"
                          "    r = json.load(open(p))\n"
                          "    for f in ('transcript', 'caption'):\n"
                          "        m = re.findall(r'\\b[a-z]{4,12}\\b', (r.get(f) or '').lower())\n"
                          "        if m: print(m[0], r['id']); sys.exit(0)\n"
                          "sys.exit(1)\nEOF", out_dir, w), 0);
    CU_ASSERT_EQUAL(th_sh("set -- $(cat '%s/probe.txt'); '%s' search --db '%s/c.sqlite' --json --limit 10000 \"$1\" "
                          "| python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if \"'$2'\" in [x[\"id\"] for x in d] else 1)'",
                          w, bin, w), 0);
}

static void synthetic_batch(void)
{
    char a[700], b[700];
    snprintf(a, sizeof a, "%s/synth-a", tmp);
    snprintf(b, sizeof b, "%s/synth-b", tmp);
    CU_ASSERT_EQUAL_FATAL(th_sh("python3 '%s/tests/results/make-records.py' '%s' %d", th_root(), a,
                                SYNTH_ITEMS), 0);
    check_tools(a, "synth");
    /* B: a copy of A (listed by directory) with the transcript of its first ok item emptied */
    CU_ASSERT_EQUAL_FATAL(th_sh("cp -r '%s' '%s' && rm '%s/manifest.jsonl' && python3 - '%s' <<'EOF'\n"
                                "import glob, json, sys\n"
                                "for p in sorted(glob.glob(sys.argv[1] + '/*.json')):\n"
                                "    r = json.load(open(p))\n"
                                "    if r['status'] == 'ok':\n"
                                "        r['transcript'] = ''; json.dump(r, open(p, 'w')); print(r['source']); break\n"
                                "EOF", a, b, b, b), 0);
    CU_ASSERT_EQUAL(th_sh("'%s' diff '%s' '%s' --gate wer:0 --gate event_f1:0 --json > '%s/same.json'",
                          th_bin(), a, a, tmp), 0);
    CU_ASSERT_EQUAL(th_sh("python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); m=d[\"metrics\"][\"wer\"]; "
                          "sys.exit(0 if d[\"changed\"] == [] and d[\"paired\"] == %d and m[\"delta\"] == 0 and m[\"ci95\"] == [0, 0] else 1)' '%s/same.json'",
                          SYNTH_ITEMS, tmp), 0);
    CU_ASSERT_EQUAL(th_sh("'%s' diff '%s' '%s' --gate wer:0 --json > '%s/worse.json'", th_bin(), a, b, tmp), 3);
    CU_ASSERT_EQUAL(th_sh("python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); m=d[\"metrics\"][\"wer\"]; "
                          "sys.exit(0 if len(d[\"changed\"]) == 1 and \"transcript\" in d[\"changed\"][0][\"fields\"] "
                          "and m[\"delta\"] > 0 and m[\"ci95\"][0] >= 0 and m[\"ci95\"][1] >= m[\"delta\"] "
                          "and d[\"gates\"][0][\"verdict\"] == \"regressed\" else 1)' '%s/worse.json'", tmp), 0);
    CU_ASSERT_EQUAL(th_sh("'%s' diff '%s' '%s' --gate wer:0.5 > /dev/null", th_bin(), a, b), 0);
    CU_ASSERT_EQUAL(th_sh("'%s' diff '%s' '%s' --gate nonsense:1 2> /dev/null", th_bin(), a, b), 2);
}

static void demo_batch(void)
{
    char corpus[700], manifest[760], out_dir[700], out[760];
    snprintf(corpus, sizeof corpus, "%s/corpus", c.dir);
    snprintf(manifest, sizeof manifest, "%s/refs.jsonl", c.dir);
    snprintf(out_dir, sizeof out_dir, "%s/out", c.dir);
    snprintf(out, sizeof out, "file://%s", out_dir);
    CU_ASSERT_EQUAL_FATAL(th_make_corpus(corpus, DEMO_CLIPS, 0), 0);
    CU_ASSERT_EQUAL_FATAL(th_sh("python3 '%s/tests/results/refs-manifest.py' '%s/manifest.txt' '%s'",
                                th_root(), corpus, manifest), 0);
    CU_ASSERT_EQUAL_FATAL(th_sh("'%s' submit --redis '%s' --manifest '%s' --out '%s' "
                                "--prompts caption,transcript,events --max-new-tokens %d > '%s/batch.txt' "
                                "2>> '%s/submit.log'",
                                th_bin(), c.redis.url, manifest, out, DEMO_NEW_TOKENS, c.dir, c.dir), 0);
    char bpath[760];
    snprintf(bpath, sizeof bpath, "%s/batch.txt", c.dir);
    char *bt = th_slurp(bpath, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bt);
    snprintf(c.batch, sizeof c.batch, "%.*s", (int)strcspn(bt, "\r\n"), bt);
    free(bt);
    CU_ASSERT_EQUAL_FATAL(th_cluster_wait(&c, st, out, TH_CLUSTER_WAIT_MS, NULL, NULL), 0);
    check_tools(out_dir, "demo");
    /* the batch id resolves through Redis to the same records */
    CU_ASSERT_EQUAL(th_sh("'%s' eval '%s' --redis '%s' --json > '%s/by-id.json' && "
                          "python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); "
                          "sys.exit(0 if a[\"metrics\"] == b[\"metrics\"] and a[\"with_refs\"][\"transcript\"] == 2 else 1)' "
                          "'%s/by-id.json' '%s/demo/eval.json'",
                          th_bin(), c.batch, c.redis.url, tmp, tmp, tmp), 0);
    CU_ASSERT_EQUAL(th_cluster_sanitizer_reports(&c), 0);
}

/* The same records read from S3 (SeaweedFS): uploaded with a manifest.jsonl of s3://
 * outputs, they give eval the same numbers as from the directory; without a manifest an
 * s3:// prefix is an error that names it. */
static void records_from_s3(void)
{
    static struct th_server s3;
    char dir[700], uri[700];
    snprintf(dir, sizeof dir, "%s/s3-recs", tmp);
    CU_ASSERT_EQUAL_FATAL(th_sh("python3 '%s/tests/results/make-records.py' '%s' 40 --no-manifest",
                                th_root(), dir), 0);
    CU_ASSERT_EQUAL_FATAL(th_weed_start(&s3, "AK", "SK"), 0);
    CU_ASSERT_EQUAL_FATAL(th_s3_mkbucket(&s3, "bkt", "AK", "SK"), 0);
    th_s3_env_set(s3.endpoint, "AK", "SK");
    struct em_storage *s3st = NULL;
    struct em_storage_opts so = em_storage_opts_default();
    CU_ASSERT_EQUAL_FATAL(em_storage_open(&so, &s3st, NULL), EM_OK);
    char *names = NULL;
    CU_ASSERT_EQUAL(th_sh("cd '%s' && ls *.json > '%s/names.txt'", dir, tmp), 0);
    snprintf(uri, sizeof uri, "%s/names.txt", tmp);
    names = th_slurp(uri, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(names);
    char *manifest = calloc(1, strlen(names) * 4 + 1024);
    CU_ASSERT_PTR_NOT_NULL_FATAL(manifest);
    int put_bad = 0;
    for (char *n = strtok(names, "\n"); n; n = strtok(NULL, "\n")) {
        char path[800], key[200];
        size_t len = 0;
        snprintf(path, sizeof path, "%s/%s", dir, n);
        snprintf(key, sizeof key, "s3://bkt/run/%s", n);
        char *body = th_slurp(path, &len);
        put_bad += !body || em_storage_put(s3st, key, body, len, "application/json", NULL) != EM_OK;
        free(body);
        snprintf(manifest + strlen(manifest), 256, "{\"status\":\"ok\",\"output\":\"%s\"}\n", key);
    }
    CU_ASSERT_EQUAL(put_bad, 0);
    CU_ASSERT_EQUAL(th_sh("'%s' eval s3://bkt/run 2>&1 | grep -q 'no manifest.jsonl'", th_bin()), 0);
    CU_ASSERT_EQUAL(em_storage_put(s3st, "s3://bkt/run/manifest.jsonl", manifest, strlen(manifest),
                                   NULL, NULL), EM_OK);
    CU_ASSERT_EQUAL(th_sh("'%s' eval s3://bkt/run --json > '%s/s3.json' && '%s' eval '%s' --json > '%s/dir.json' && "
                          "python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); "
                          "sys.exit(0 if a[\"metrics\"] == b[\"metrics\"] and a[\"items\"] == 40 else 1)' '%s/s3.json' '%s/dir.json'",
                          th_bin(), tmp, th_bin(), dir, tmp, tmp, tmp), 0);
    CU_ASSERT_EQUAL(th_sh("'%s' index s3://bkt/run --db '%s/s3.sqlite' | grep -q ' 40 added'", th_bin(), tmp), 0);
    CU_ASSERT_EQUAL(th_sh("test $('%s' export s3://bkt/run 2>/dev/null | wc -l) -eq 40", th_bin()), 0);
    free(manifest);
    free(names);
    em_storage_close(s3st);
    th_s3_env_restore();
    th_server_stop(&s3);
}

static CU_TestInfo tests[] = {
    {"synthetic_batch", synthetic_batch},
    {"records_from_s3", records_from_s3},
    {"demo_batch", demo_batch},
    CU_TEST_INFO_NULL,
};
const CU_SuiteInfo suite_it_results = {"it_results", init, clean, NULL, NULL, tests};
