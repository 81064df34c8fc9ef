"""tests/deploy/prom_scrape.py COORD_PORT WORKER_PORT... - the running fleet's endpoints
as Prometheus sees them (run by the it_metrics suite once a batch has completed):
  1. every endpoint: /healthz and /readyz answer 200, /metrics passes
     `promtool check metrics` and holds its families;
  2. a real Prometheus (Debian `prometheus`) on a free loopback port scrapes them every
     second; once every target is up, its HTTP API returns each family, and the values
     say the batch ran (items done, audio seconds, clips);
  3. every metric the Grafana dashboard and alerts.yml name is a family some endpoint
     serves, and Prometheus parses every dashboard query.
Prints each problem on stderr and exits 1 if there is any. Every wait is bounded."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
WAIT_S = 90  # bound on Prometheus start and first scrapes (a loaded 2-core machine)

COORD_FAMILIES = ["earmark_items_done_total", "earmark_items_failed_total", "earmark_workers",
                  "earmark_in_flight", "earmark_queue_depth", "earmark_item_latency_seconds_bucket",
                  "earmark_redis_up", "earmark_dead_letters", "earmark_batches_open"]
WORKER_FAMILIES = ["earmark_worker_info", "earmark_worker_clips_total",
                   "earmark_worker_audio_seconds_total", "earmark_worker_busy_seconds_total",
                   "earmark_worker_stage_seconds_total", "earmark_worker_generated_tokens_total",
                   "earmark_worker_tokens_per_second", "earmark_worker_real_time_factor",
                   "earmark_worker_errors_total", "earmark_worker_queue_wait_seconds_bucket",
                   "earmark_worker_connected", "earmark_worker_ready", "earmark_worker_tasks_held",
                   "earmark_worker_capacity", "earmark_worker_threads"]

probs = []


def get(url, timeout=10):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, OSError) as e:
        return 0, str(e)


def families(text):
    return {l.split()[2] for l in text.splitlines() if l.startswith("# TYPE ")}


def check_endpoint(name, port, want):
    base = f"http://127.0.0.1:{port}"
    for path in ("/healthz", "/readyz"):
        st, body = get(base + path)
        if st != 200:
            probs.append(f"{name} {path}: {st} {body.strip()}")
    st, text = get(base + "/metrics")
    if st != 200:
        probs.append(f"{name} /metrics: {st} {text.strip()[:200]}")
        return set()
    pc = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                        capture_output=True)
    if pc.returncode != 0:
        probs.append(f"{name}: promtool check metrics: {pc.stdout}{pc.stderr}")
    fams = families(text)
    for f in want:
        base_name = re.sub(r"_bucket$", "", f)
        if base_name not in fams:
            probs.append(f"{name}: family {base_name} missing from /metrics")
    return fams


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def query(port, q):
    st, body = get(f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": q}))
    try:
        return st, json.loads(body)
    except ValueError:
        return st, {"status": "error", "error": body[:200]}


def value(port, q):
    st, r = query(port, q)
    res = r.get("data", {}).get("result", []) if r.get("status") == "success" else []
    return float(res[0]["value"][1]) if res else None


def run_prometheus(coord, workers, tmp):
    port = free_port()
    targets_w = ", ".join(f'"127.0.0.1:{p}"' for p in workers)
    cfg = os.path.join(tmp, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write(f"""global:
  scrape_interval: 1s
  scrape_timeout: 1s
rule_files: ["{ROOT}/deploy/prometheus/alerts.yml"]
scrape_configs:
  - job_name: earmark-coordinator
    static_configs: [{{targets: ["127.0.0.1:{coord}"]}}]
  - job_name: earmark-worker
    static_configs: [{{targets: [{targets_w}]}}]
""")
    log = open(os.path.join(tmp, "prometheus.log"), "w")
    proc = subprocess.Popen(["prometheus", f"--config.file={cfg}",
                             f"--storage.tsdb.path={tmp}/data",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    return proc, port


def main():
    coord, workers = int(sys.argv[1]), [int(p) for p in sys.argv[2:]]
    served = check_endpoint("coordinator", coord, COORD_FAMILIES)
    for i, p in enumerate(workers):
        served |= check_endpoint(f"worker{i}", p, [f for f in WORKER_FAMILIES
                                                   if f != "earmark_worker_errors_total"])
    tmp = tempfile.mkdtemp(prefix="em-prom.")
    proc, port = run_prometheus(coord, workers, tmp)
    try:
        deadline = time.time() + WAIT_S
        up = None
        while time.time() < deadline and proc.poll() is None:
            up = value(port, "sum(up)")
            if up == 1 + len(workers):
                break
            time.sleep(0.5)
        if up != 1 + len(workers):
            probs.append(f"Prometheus: {up} of {1 + len(workers)} targets up after {WAIT_S} s")
            print(open(os.path.join(tmp, "prometheus.log")).read()[-3000:], file=sys.stderr)
            return
        time.sleep(2.5)  # a couple more scrapes so every family has samples
        for fam in COORD_FAMILIES + WORKER_FAMILIES:
            st, r = query(port, fam)
            if r.get("status") != "success" or not r["data"]["result"]:
                probs.append(f"Prometheus API: no series for {fam} ({st} {r.get('error', '')})")
        for q, lo in (("sum(earmark_items_done_total)", 1),
                      ("sum(earmark_worker_clips_total{status=\"ok\"})", 1),
                      ("sum(earmark_worker_audio_seconds_total)", 0.1),
                      ("sum(earmark_worker_generated_tokens_total)", 1),
                      ("sum(earmark_worker_stage_seconds_total{stage=\"generate\"})", 1e-6),
                      ("sum(earmark_worker_errors_total)", 1),
                      ("count(earmark_worker_info)", len(workers)),
                      ("sum(earmark_worker_ready)", len(workers)),
                      ("max(earmark_redis_up)", 1)):
            v = value(port, q)
            if v is None or v < lo:
                probs.append(f"Prometheus API: {q} = {v}, want >= {lo}")
        # what the dashboard and the alerts name must exist, and the queries must parse
        dash = json.load(open(os.path.join(ROOT, "deploy/grafana/earmark.json")))
        exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
        alerts = open(os.path.join(ROOT, "deploy/prometheus/alerts.yml")).read()
        named = set(re.findall(r"\bearmark_[a-z_]+", " ".join(exprs) + alerts))
        for n in sorted(named):
            if re.sub(r"_(bucket|sum|count)$", "", n) not in served and n not in served:
                probs.append(f"dashboard/alerts name {n}, which no endpoint serves")
        for e in exprs:
            st, r = query(port, e)
            if r.get("status") != "success":
                probs.append(f"dashboard query rejected: {e}: {r.get('error')}")
        st, r = (lambda s_b: (s_b[0], json.loads(s_b[1])))(get(f"http://127.0.0.1:{port}/api/v1/rules"))
        n_rules = sum(len(g["rules"]) for g in r["data"]["groups"])
        if n_rules < 4:
            probs.append(f"Prometheus loaded {n_rules} alert rules from alerts.yml")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
    for p in probs:
        print("prom_scrape:", p, file=sys.stderr)
    sys.exit(1 if probs else 0)
