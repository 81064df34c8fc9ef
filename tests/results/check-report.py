#!/usr/bin/env python3
"""tests/results/check-report.py REPORT.html OUT_DIR EVAL_JSON SCREENSHOT.png

Renders an `earmark report` page in headless Chromium (Debian `chromium`), first checking
that the console-error detection works on a page that logs one (so a silent detector cannot
pass), then on the report: no console message of level error or warning, no failed load,
the screenshot written, and the rendered DOM (--dump-dom, i.e. after layout and parsing)
holding the batch's numbers: item/ok/failed counts, items per worker, the histogram totals,
the throughput plot's item count, failure classes, and the evaluation table equal to
`earmark eval --json`. Exit 0 when all hold; every problem is printed."""
import collections, glob, html.parser, json, os, re, subprocess, sys, tempfile

CHROMIUM = os.environ.get("CHROMIUM", "chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
         "--disable-extensions", "--disable-background-networking", "--enable-logging=stderr",
         "--v=0", "--window-size=1100,2600"]

def chromium(url, extra):
    with tempfile.TemporaryDirectory() as prof:
        p = subprocess.run([CHROMIUM, *FLAGS, "--user-data-dir=" + prof, *extra, url],
                           capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr

def console_errors(stderr):
    # chromium logs page console messages as ...:CONSOLE(line)] "text", source: url (line)
    out = []
    for line in stderr.splitlines():
        if "CONSOLE" in line or "Uncaught" in line or "Failed to load resource" in line:
            out.append(line)
    return out

class Dom(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.el = []           # (tag, attrs dict)
        self.text = {}         # id -> text
        self._cur = None
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.el.append((tag, a))
        if "id" in a:
            self._cur = a["id"]; self.text[self._cur] = ""
    def handle_data(self, d):
        if self._cur: self.text[self._cur] += d
    def handle_endtag(self, tag):
        self._cur = None

def main():
    report, out_dir, ev_path, png = sys.argv[1:5]
    bad = []
    # 1. the detector itself: a page that logs an error must be caught
    with tempfile.NamedTemporaryFile("w", suffix=".html", delete=False) as f:
        f.write("<!DOCTYPE html><title>x</title><script>console.error('earmark-probe')</script>")
        probe = f.name
    _, _, err = chromium("file://" + probe, ["--dump-dom"])
    os.unlink(probe)
    if not any("earmark-probe" in l for l in console_errors(err)):
        bad.append("console detection does not see a logged error; stderr was: " + err[-500:])
    # 2. the report: no console message, a screenshot
    rc, _, err = chromium("file://" + os.path.abspath(report), ["--screenshot=" + png])
    if rc != 0 or not os.path.getsize(png) > 1000:
        bad.append("screenshot failed (rc %d)" % rc)
    bad += ["console: " + l for l in console_errors(err)]
    rc, dom, err = chromium("file://" + os.path.abspath(report), ["--dump-dom"])
    bad += ["console: " + l for l in console_errors(err)]
    if "<script" in open(report).read().lower():
        bad.append("the report has a script")
    if re.search(r'(src|href)="(https?:)?//', open(report).read()):
        bad.append("the report refers to the network")
    d = Dom(); d.feed(dom)
    # 3. numbers, from the records
    recs = [json.load(open(p)) for p in glob.glob(os.path.join(out_dir, "*.json"))]
    ev = json.load(open(ev_path))
    ok = [r for r in recs if r["status"] == "ok"]
    def num(i):
        return float(re.sub(r"[^0-9.eE+-]", "", d.text.get(i, "")) or "nan")
    for i, want in (("n-items", len(recs)), ("n-ok", len(ok)), ("n-failed", len(recs) - len(ok))):
        if num(i) != want: bad.append("%s shows %s, records say %d" % (i, d.text.get(i), want))
    svgs = {a["id"]: a for t, a in d.el if t == "svg" and "id" in a}
    rects = collections.defaultdict(list)
    owner = None
    for t, a in d.el:
        if t == "svg": owner = a.get("id")
        if t == "rect" and "data-value" in a: rects[owner].append(a)
    workers = collections.Counter(r.get("worker") for r in recs)
    shown = {a["data-label"]: float(a["data-value"]) for a in rects["workers"]}
    if shown != {k: float(v) for k, v in workers.items()}:
        bad.append("workers plot %s, records %s" % (shown, dict(workers)))
    n_lat = sum(1 for r in ok if isinstance(r["timings"].get("total_s"), (int, float)))
    n_dur = sum(1 for r in ok if isinstance(r.get("audio", {}).get("duration_s"), (int, float)))
    for pid, want in (("latency", n_lat), ("durations", n_dur)):
        got = sum(float(a["data-value"]) for a in rects[pid])
        if got != want or float(svgs.get(pid, {}).get("data-total", -1)) != want:
            bad.append("%s histogram holds %s items, records %d" % (pid, got, want))
        if pid == "durations":
            vals = [r["audio"]["duration_s"] for r in ok]
            if rects[pid] and abs(float(rects[pid][0]["data-lo"]) - min(vals)) > 1e-9:
                bad.append("durations start at %s, shortest clip %s" % (rects[pid][0]["data-lo"], min(vals)))
    tp = [a for t, a in d.el if a.get("id") == "tp-items"]
    if not tp or int(tp[0]["data-items"]) != len(recs):
        bad.append("throughput plot counts %s items, records %d" % (tp and tp[0]["data-items"], len(recs)))
    classes = collections.Counter(r["error"]["class"] for r in recs if r["status"] == "failed")
    shown = {a["data-class"]: int(d_) for (t, a), d_ in zip([e for e in d.el if "data-class" in e[1]], re.findall(r'data-class="[^"]*">(\d+)<', dom))}
    if shown != dict(classes):
        bad.append("failure classes %s, records %s" % (shown, dict(classes)))
    for t, a in d.el:
        if "data-metric" in a:
            want = ev["metrics"].get(a["data-metric"])
            if want is None or abs(float(a["data-value"]) - want) > 1e-12 * max(1, abs(want)):
                bad.append("metric %s shows %s, eval %s" % (a["data-metric"], a["data-value"], want))
    if any(v is not None for k, v in ev["metrics"].items() if k not in ("rtf", "failed_rate")) and \
            not any("data-metric" in a for t, a in d.el):
        bad.append("eval has metrics but the report no evaluation table")
    for b in bad: print(b)
    print("check-report: %d records, %d problems" % (len(recs), len(bad)))
    sys.exit(1 if bad else 0)

main()
