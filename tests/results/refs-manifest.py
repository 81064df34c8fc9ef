#!/usr/bin/env python3
"""tests/results/refs-manifest.py MANIFEST.txt OUT.jsonl: the demo corpus's manifest
(deploy/make-corpus.sh, one URI per line, clips named NNN-KIND-...) as JSON lines with
references in meta.ref, the way a nightly manifest carries them: ref.transcript is the
sentence a speech clip was rendered from (read from make-corpus.sh itself, so there is one
copy), ref.events and ref.caption name the clip's kind."""
import os, re, sys

here = os.path.dirname(os.path.abspath(__file__))
src = open(os.path.join(here, "..", "..", "deploy", "make-corpus.sh")).read()
block = re.search(r"sentences=\(\n(.*?)\n\)", src, re.S).group(1)
sentences = re.findall(r'"([^"]+)"', block)
KIND = {"speech": (["speech"], "a person speaking"), "tone": (["tone"], "a steady beep"),
        "chord": (["music"], "a musical chord"), "noise": (["noise"], "static noise")}

out = open(sys.argv[2], "w")
for uri in open(sys.argv[1]).read().split():
    m = re.search(r"/(\d{3})-([a-z]+)-[^/]*$", uri)
    i, kind = int(m.group(1)), m.group(2)
    ev, cap = KIND[kind]
    ref = {"events": ev, "caption": cap}
    if kind == "speech":
        ref["transcript"] = sentences[i // 4 % 4]
    out.write('{"uri": "%s", "meta": {"ref": %s}}\n' % (uri, __import__("json").dumps(ref)))
