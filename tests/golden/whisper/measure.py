#!/usr/bin/env python3
"""tests/golden/whisper/measure.py - word error rate and real-time factor of Whisper tiny.en on
the golden clips, earmark beside ctranslate2 in the same run (run by hand; figures go to
docs/whisper.md; nothing here is asserted):

    make build/earmark && python3 tests/golden/whisper/measure.py [--repeat N]

earmark: `build/earmark annotate --model DIR --task transcript CLIP` (timestamps on, greedy);
model time = the record's timings.encode_s + generate_s (log-mel, encoder, decoder).
ctranslate2 (requirements.txt): Whisper.generate on the same log-mel (make_whisper_golden's
numpy log_mel, not timed), float32 or int8, beam 1, timestamps on, intra_threads = the CPUs;
its time covers the encoder and the decoder only.
WER: words after a simplified English normalisation (lower case, punctuation removed, digits
kept, whitespace collapsed; not Whisper's full EnglishTextNormalizer) against the sentence
espeak-ng spoke. Best of --repeat runs per clip for the times.
"""
import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import ctranslate2

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, HERE)
from make_whisper_golden import log_mel, read_clip  # noqa: E402


def norm(t):
    t = t.lower().replace("-", " ")
    t = re.sub(r"[^a-z0-9' ]", " ", t)
    return t.split()


def edits(a, b):
    d = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(b) + 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (a[i - 1] != b[j - 1]))
            prev, d[j] = d[j], cur
    return d[len(b)]


def main():
    repeat = int(sys.argv[sys.argv.index("--repeat") + 1]) if "--repeat" in sys.argv else 3
    model_dir = os.environ.get("EM_WHISPER_DIR") or os.path.expanduser("~/.cache/earmark/whisper-tiny.en")
    index = json.load(open(os.path.join(HERE, "data", "index.json")))
    ncpu = os.cpu_count()
    cts = {ct: ctranslate2.models.Whisper(model_dir, device="cpu", compute_type=ct,
                                          inter_threads=1, intra_threads=ncpu)
           for ct in ("float32", "int8")}
    vocab = [l.rstrip("\n") for l in open(os.path.join(model_dir, "vocabulary.txt"), encoding="utf-8")]
    sot = vocab.index("<|startoftranscript|>")
    tot = {"words": 0, "em": 0, "float32": 0, "int8": 0}
    secs = {"audio": 0.0, "em": 0.0, "float32": 0.0, "int8": 0.0}
    print("| clip | audio s | earmark s | ct2 float32 s | ct2 int8 s | earmark WER | ct2 f32 WER | ct2 int8 WER |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, rec in index["clips"].items():
        clip = os.path.join(HERE, "clips", name + ".ogg")
        ref = norm(rec["text"])
        best, text = 1e9, ""
        for _ in range(repeat):
            out = subprocess.run([os.path.join(ROOT, "build", "earmark"), "annotate", "--model", model_dir,
                                  "--task", "transcript", clip], check=True, capture_output=True, text=True).stdout
            r = json.loads(out)
            best = min(best, r["timings"]["encode_s"] + r["timings"]["generate_s"])
            text = r["transcript"]["text"]
        row = {"em": (best, text)}
        feats = ctranslate2.StorageView.from_array(log_mel(read_clip(name))[None])
        for ct, m in cts.items():
            b, ids = 1e9, []
            for _ in range(repeat):
                t0 = time.perf_counter()
                res = m.generate(feats, [[sot]], beam_size=1)[0]
                b = min(b, time.perf_counter() - t0)
                ids = [i for i in res.sequences_ids[0] if i < 50257]
            txt = "".join(vocab[i] for i in ids)
            # GPT-2 byte-level tokens: map the byte alphabet back to text
            bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
            cs = bs[:]
            n = 0
            for x in range(256):
                if x not in bs:
                    bs.append(x)
                    cs.append(256 + n)
                    n += 1
            dec = {chr(c): b_ for b_, c in zip(bs, cs)}
            txt = bytes(dec[ch] for ch in txt if ch in dec).decode("utf-8", "replace")
            row[ct] = (b, txt)
        dur = rec["samples"] / 16000
        secs["audio"] += dur
        wers = {}
        for k, (t, txt) in row.items():
            secs[k] += t
            e = edits(ref, norm(txt)) if ref else len(norm(txt))
            if ref:  # the silent clip has no words to score: its column shows inserted words
                tot[k] += e
            wers[k] = e / len(ref) if ref else float(len(norm(txt)))
        tot["words"] += len(ref)
        print("| %s | %.2f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f |" % (
            name, dur, row["em"][0], row["float32"][0], row["int8"][0], wers["em"], wers["float32"], wers["int8"]))
    print("\ncorpus WER (speech clips): earmark %.3f, ct2 float32 %.3f, ct2 int8 %.3f over %d words" % (
        tot["em"] / tot["words"], tot["float32"] / tot["words"], tot["int8"] / tot["words"], tot["words"]))
    print("RTF (model seconds / audio seconds): earmark %.4f, ct2 float32 %.4f, ct2 int8 %.4f" % (
        secs["em"] / secs["audio"], secs["float32"] / secs["audio"], secs["int8"] / secs["audio"]))


if __name__ == "__main__":
    main()
