#!/usr/bin/env python3
"""tests/results/page-dom.py URL: loads a page in headless Chromium (Debian `chromium`) and
prints what it rendered as one JSON object, for a test to assert on:
  {"console": [console messages / failed loads], "refresh": <meta refresh seconds or null>,
   "title": ..., "batches": [{batch, total, done, failed, state}], "workers":
   [{worker, done, model, backend}], "failures": [class...], "scripts": <number of <script>>}
Uses --dump-dom (the DOM after parsing) and --enable-logging=stderr --v=0 for the console."""
import html.parser, json, subprocess, sys, tempfile

class Dom(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.out = {"refresh": None, "title": "", "batches": [], "workers": [], "failures": [], "scripts": 0}
        self.row = None; self.cells = []; self.in_title = False; self.cell = None
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "meta" and a.get("http-equiv") == "refresh": self.out["refresh"] = int(a["content"])
        if tag == "script": self.out["scripts"] += 1
        if tag == "title": self.in_title = True
        if tag == "tr" and "class" in a: self.row = a; self.cells = []
        if tag == "td" and self.row is not None: self.cell = ""
    def handle_data(self, d):
        if self.in_title: self.out["title"] += d
        if self.cell is not None: self.cell += d
    def handle_endtag(self, tag):
        if tag == "title": self.in_title = False
        if tag == "td" and self.cell is not None: self.cells.append(self.cell); self.cell = None
        if tag == "tr" and self.row is not None:
            a, c = self.row, self.cells
            if a["class"] == "batch":
                self.out["batches"].append({"batch": a["data-batch"], "total": int(a["data-total"]),
                    "done": int(a["data-done"]), "failed": int(a["data-failed"]), "state": a["data-state"]})
            elif a["class"] == "worker":
                self.out["workers"].append({"worker": a["data-worker"], "done": int(a["data-done"]),
                    "model": c[1] if len(c) > 1 else "", "backend": c[2] if len(c) > 2 else ""})
            elif a["class"] == "failure":
                self.out["failures"].append(a["data-class"])
            self.row = None

with tempfile.TemporaryDirectory() as prof:
    p = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--disable-extensions", "--disable-background-networking",
                        "--enable-logging=stderr", "--v=0", "--user-data-dir=" + prof,
                        "--dump-dom", sys.argv[1]], capture_output=True, text=True, timeout=60)
d = Dom(); d.feed(p.stdout)
d.out["console"] = [l for l in p.stderr.splitlines()
                    if "CONSOLE" in l or "Uncaught" in l or "Failed to load resource" in l]
print(json.dumps(d.out))
