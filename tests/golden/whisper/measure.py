#!/usr/bin/env python3
"""tests/golden/whisper/measure.py - word error rate and real-time factor of Whisper tiny.en on
the golden clips, earmark beside ctranslate2 in the same run (run by hand; figures go to
docs/whisper.md; nothing here is asserted):

    make build/earmark && python3 tests/golden/whisper/measure.py [--repeat N] [--bin EARMARK]
(`make bench` runs it.)

earmark: `build/earmark annotate --model DIR --task transcript [--greedy] CLIP` (timestamps
on; beam 5, or greedy); model time = the record's timings.encode_s + generate_s (log-mel,
encoder, decoder). ctranslate2 (requirements.txt): Whisper.generate on the same log-mel
(make_whisper_golden's numpy log_mel, not timed), float32 or int8, beam 5 or 1, timestamps
on, intra_threads = the CPUs; its time covers the encoder and the decoder only.
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


def bytes_decoder():
    """GPT-2's byte alphabet, char -> byte (ctranslate2 returns tokens in it)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for x in range(256):
        if x not in bs:
            bs.append(x)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def main():
    repeat = int(sys.argv[sys.argv.index("--repeat") + 1]) if "--repeat" in sys.argv else 3
    binary = sys.argv[sys.argv.index("--bin") + 1] if "--bin" in sys.argv else os.path.join(ROOT, "build", "earmark")
    model_dir = os.environ.get("EM_WHISPER_DIR") or os.path.expanduser("~/.cache/earmark/whisper-tiny.en")
    index = json.load(open(os.path.join(HERE, "data", "index.json")))
    ncpu = os.cpu_count()
    cts = {ct: ctranslate2.models.Whisper(model_dir, device="cpu", compute_type=ct,
                                          inter_threads=1, intra_threads=ncpu)
           for ct in ("float32", "int8")}
    vocab = [l.rstrip("\n") for l in open(os.path.join(model_dir, "vocabulary.txt"), encoding="utf-8")]
    sot = vocab.index("<|startoftranscript|>")
    dec = bytes_decoder()
    cols = [("em", 5), ("float32", 5), ("int8", 5), ("em", 1), ("float32", 1), ("int8", 1)]
    names = {"em": "earmark", "float32": "ct2 f32", "int8": "ct2 int8"}
    errs = {c: 0 for c in cols}
    secs = {c: 0.0 for c in cols}
    words, audio_s = 0, 0.0
    print("| clip | audio s | " + " | ".join("%s beam %d s" % (names[k], b) for k, b in cols) +
          " | " + " | ".join("WER %s beam %d" % (names[k], b) for k, b in cols) + " |")
    print("| --- " * (2 + 2 * len(cols)) + "|")
    for name, rec in index["clips"].items():
        clip = os.path.join(HERE, "clips", name + ".ogg")
        ref = norm(rec["text"])
        feats = ctranslate2.StorageView.from_array(log_mel(read_clip(name))[None])
        row = {}
        for k, beam in cols:
            best, text = 1e9, ""
            for _ in range(repeat):
                if k == "em":
                    cmd = [binary, "annotate", "--model", model_dir,
                           "--task", "transcript"] + (["--greedy"] if beam == 1 else []) + [clip]
                    r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
                    best = min(best, r["timings"]["encode_s"] + r["timings"]["generate_s"])
                    text = r["transcript"]["text"]
                else:
                    t0 = time.perf_counter()
                    res = cts[k].generate(feats, [[sot]], beam_size=beam)[0]
                    best = min(best, time.perf_counter() - t0)
                    toks = "".join(vocab[i] for i in res.sequences_ids[0] if i < 50257)
                    text = bytes(dec[ch] for ch in toks if ch in dec).decode("utf-8", "replace")
            row[(k, beam)] = (best, text)
        dur = rec["samples"] / 16000
        audio_s += dur
        words += len(ref)
        wer = {}
        for c, (t, text) in row.items():
            secs[c] += t
            e = edits(ref, norm(text)) if ref else len(norm(text))
            if ref:  # the silent clip has no words to score: its cells show inserted words
                errs[c] += e
            wer[c] = e / len(ref) if ref else float(e)
        print("| %s | %.2f | " % (name, dur) + " | ".join("%.3f" % row[c][0] for c in cols) + " | " +
              " | ".join("%.3f" % wer[c] for c in cols) + " |")
    print("\ncorpus WER over %d words: " % words + ", ".join(
        "%s beam %d %.3f" % (names[k], b, errs[(k, b)] / words) for k, b in cols))
    print("RTF (model s / audio s): " + ", ".join(
        "%s beam %d %.4f" % (names[k], b, secs[(k, b)] / audio_s) for k, b in cols))


if __name__ == "__main__":
    main()
