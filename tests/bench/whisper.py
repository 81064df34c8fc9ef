#!/usr/bin/env python3
"""tests/bench/whisper.py - Whisper real-time factor per clip, earmark beside faster-whisper
(CTranslate2) in the same run, at the same precision and beam size (run by `make bench`;
nothing here is asserted; figures go to docs/bench-model.md).

    make build/earmark && python3 tests/bench/whisper.py [--repeat N] [--bin EARMARK]
        [--models DIR,...] [--clips a,b] [--precisions f32,int8] [--beams 1,5]

Models: ~/.cache/earmark/whisper-tiny.en and, when present, ~/.cache/earmark/whisper-base
(or --models). Clips: tests/golden/whisper/clips (espeak-ng speech, 3-18 s), decoded once
with sox to 16 kHz mono f32 for faster-whisper; earmark reads the .ogg itself.

Per model, clip, precision and beam, the two runtimes alternate (earmark first on even
rounds, faster-whisper first on odd ones) --repeat times, and the best time of each is kept,
so load from other users of a shared machine falls on both sides alike.
  earmark: `earmark annotate --model DIR --task transcript [--greedy] [--weights q8_0] CLIP`,
    time = the record's timings.model_s (log-mel, encoder, decoder, the long-form loop; not
    the process start, the model load or the audio decode).
  faster-whisper: WhisperModel(DIR, device="cpu", compute_type="float32"|"int8",
    cpu_threads=CPUs).transcribe(pcm, beam_size=B, vad_filter=False), segments consumed,
    time = that call (its log-mel, encoder, decoder and loop; audio decoded beforehand).
  Both: timestamps on, temperature fallback 0, 0.2, ... 1.0 on the same thresholds, best_of 5.
  f32: earmark computes in f32 on the file's f16 weights widened; faster-whisper float32.
  int8: earmark quantizes every linear weight to q8_0 at load (`--weights q8_0`);
    faster-whisper quantizes to int8 at load (compute_type int8).
Output text is compared after collapsing whitespace ("same" column).
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
GOLD = os.path.join(ROOT, "tests", "golden", "whisper")


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def read_clip(path):
    import numpy as np
    raw = subprocess.run(["sox", path, "-t", "raw", "-e", "signed-integer", "-b", "16", "-c", "1",
                          "-r", "16000", "-"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0


def norm_text(t):
    return " ".join(t.split())


def run_earmark(binary, model, clip, beam, prec):
    cmd = [binary, "annotate", "--model", model, "--task", "transcript"]
    if beam == 1:
        cmd.append("--greedy")
    if prec == "int8":
        cmd += ["--weights", "q8_0"]
    out = subprocess.run(cmd + [clip], check=True, capture_output=True, text=True).stdout
    r = json.loads(out)
    t = r["timings"]
    return t["model_s"], r["transcript"]["text"]


def run_fw(fw, pcm, beam):
    t0 = time.perf_counter()
    segs, _ = fw.transcribe(pcm, beam_size=beam, vad_filter=False, without_timestamps=False)
    text = "".join(s.text for s in segs)
    return time.perf_counter() - t0, text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "earmark"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--models", default="")
    ap.add_argument("--clips", default="")
    ap.add_argument("--precisions", default="f32,int8")
    ap.add_argument("--beams", default="1,5")
    a = ap.parse_args()
    try:
        from faster_whisper import WhisperModel
        import faster_whisper
        import ctranslate2
    except ImportError as e:
        print("bench whisper: faster-whisper is not installed (deploy/install-deps.sh): %s" % e)
        return 0
    cache = os.path.expanduser("~/.cache/earmark")
    models = [m for m in a.models.split(",") if m] or [
        os.environ.get("EM_WHISPER_DIR") or os.path.join(cache, "whisper-tiny.en"),
        os.path.join(cache, "whisper-base")]
    models = [m for m in models if os.path.isfile(os.path.join(m, "model.bin")) or
              os.path.isfile(os.path.join(m, "model.safetensors"))]
    if not models:
        print("bench whisper: no Whisper model in %s (deploy/fetch-whisper.sh)" % cache)
        return 0
    index = json.load(open(os.path.join(GOLD, "data", "index.json")))
    clips = [c for c in (a.clips.split(",") if a.clips else index["clips"].keys())]
    precs = a.precisions.split(",")
    beams = [int(b) for b in a.beams.split(",")]
    ncpu = os.cpu_count()
    try:
        load = "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        load = "?"
    print("## Whisper: earmark beside faster-whisper %s (ctranslate2 %s)" %
          (faster_whisper.__version__, ctranslate2.__version__))
    print("CPU: %s, %d CPUs; load average at start %s; %d alternated rounds, best kept" %
          (cpu_model(), ncpu, load, a.repeat))
    pcm = {c: read_clip(os.path.join(GOLD, "clips", c + ".ogg")) for c in clips}
    for model in models:
        name = os.path.basename(model.rstrip("/"))
        fws = {p: WhisperModel(model, device="cpu", compute_type="float32" if p == "f32" else p,
                               cpu_threads=ncpu, num_workers=1) for p in precs}
        cols = [(p, b) for p in precs for b in beams]
        first = pcm[clips[0]]
        for p in precs:  # warm-up: first-call allocations and thread start on both sides
            run_fw(fws[p], first, 1)
            run_earmark(a.bin, model, os.path.join(GOLD, "clips", clips[0] + ".ogg"), 1, p)
        print("\n### %s\n" % name)
        print("| clip | audio s | " + " | ".join(
            "%s beam %d: earmark RTF / fw RTF / ratio / same" % c for c in cols) + " |")
        print("| --- " * (2 + len(cols)) + "|")
        tot = {c: [0.0, 0.0, 0] for c in cols}
        audio_s = 0.0
        for clip in clips:
            dur = len(pcm[clip]) / 16000.0
            audio_s += dur
            path = os.path.join(GOLD, "clips", clip + ".ogg")
            cells = []
            for c in cols:
                p, b = c
                best_em = best_fw = 1e9
                t_em = t_fw = ""
                for r in range(a.repeat):
                    for side in (("em", "fw") if r % 2 == 0 else ("fw", "em")):
                        if side == "em":
                            s, t_em = run_earmark(a.bin, model, path, b, p)
                            best_em = min(best_em, s)
                        else:
                            s, t_fw = run_fw(fws[p], pcm[clip], b)
                            best_fw = min(best_fw, s)
                same = norm_text(t_em) == norm_text(t_fw)
                tot[c][0] += best_em
                tot[c][1] += best_fw
                tot[c][2] += same
                cells.append("%.3f / %.3f / %.2f / %s" % (best_em / dur, best_fw / dur,
                                                           best_em / best_fw, "yes" if same else "no"))
                if not same:
                    print("  [%s %s beam %d %s] earmark: %r\n  faster-whisper: %r" %
                          (name, p, b, clip, t_em, t_fw), file=sys.stderr)
            print("| %s | %.2f | %s |" % (clip, dur, " | ".join(cells)))
        print("| all | %.2f | %s |" % (audio_s, " | ".join(
            "%.3f / %.3f / %.2f / %d of %d" % (tot[c][0] / audio_s, tot[c][1] / audio_s,
                                               tot[c][0] / tot[c][1], tot[c][2], len(clips))
            for c in cols)))
    try:
        print("\nload average at end %.2f %.2f %.2f (the machine is shared: compare ratios, "
              "not absolute times)" % os.getloadavg())
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
