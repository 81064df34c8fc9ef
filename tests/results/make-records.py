#!/usr/bin/env python3
"""tests/results/make-records.py DIR N [--seed S] [--no-manifest] [--variant V] [--vocab W]

Writes N synthetic earmark.annotation/v1 records to DIR/<id>.json and DIR/manifest.jsonl
(one line per item: id, source, status, output), for the results commands' tests and the
`earmark index` measurement. Deterministic for a seed. Every 10th item fails (EM_E_AUDIO,
every 20th EM_E_TIMEOUT instead); items carry meta.ref (transcript, events, caption) and 1-3
segments. --variant changes the hypotheses (a second "run" of the same manifest for diff).
--vocab W draws text from W words with Zipf frequencies (s = 1.1: the word of rank r is
about r^1.1 times rarer than the commonest), as natural text has, instead of the small
fixed vocabulary (which makes every word match a large share of the corpus); the words
are the fixed ones followed by made-up ones (consonant-vowel syllables), and their ranks
are printed to DIR/vocab.txt, so a benchmark can query words of known frequency."""
import argparse, bisect, hashlib, itertools, json, os, random

WORDS = ("the quick brown fox jumps over lazy dog please call stella ask her to bring these "
         "things seven ships sailed out of harbour at dawn it is twelve degrees and raining in "
         "city music bird song engine car horn siren water rain wind door knock").split()
TAGS = ["speech", "music", "dog barking", "car horn", "siren", "rain", "wind", "bird song",
        "engine", "door knock"]

DRAW = None  # set by --vocab: a function drawing one word

def sentence(r, n):
    if DRAW:
        return " ".join(DRAW(r) for _ in range(n))
    return " ".join(r.choice(WORDS) for _ in range(n))

def zipf_vocab(n, out_path):
    global DRAW, WORDS
    syll = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    made = ("".join(p) for k in (2, 3, 4) for p in itertools.product(syll, repeat=k))
    words = list(dict.fromkeys(WORDS))
    for w in made:
        if len(words) >= n:
            break
        words.append(w)
    cum = list(itertools.accumulate(1.0 / (i + 1) ** 1.1 for i in range(len(words))))
    DRAW = lambda r: words[bisect.bisect(cum, r.random() * cum[-1])]
    WORDS = words
    with open(out_path, "w") as f:
        f.write("\n".join("%d %s %.3g" % (i + 1, w, (1.0 / (i + 1) ** 1.1) / cum[-1]) for i, w in enumerate(words)) + "\n")

def perturb(r, words, rate):
    out = []
    for w in words:
        x = r.random()
        if x < rate / 3:
            continue                      # deletion
        if x < 2 * rate / 3:
            out.append(r.choice(WORDS))   # substitution
        else:
            out.append(w)
        if r.random() < rate / 3:
            out.append(r.choice(WORDS))   # insertion
    return out

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("n", type=int)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--variant", type=int, default=0)
    ap.add_argument("--no-manifest", action="store_true")
    ap.add_argument("--batch", default="b-synth")
    ap.add_argument("--vocab", type=int, default=0)
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    if a.vocab:
        zipf_vocab(a.vocab, os.path.join(a.dir, "vocab.txt"))
    r = random.Random(a.seed)
    hr = random.Random(a.seed * 1000 + a.variant)
    t0 = 1_780_000_000  # 2026-05-28
    lines = []
    for i in range(a.n):
        src = "file:///corpus/clip-%06d.wav" % i
        iid = hashlib.sha256((a.batch + "\0" + src).encode()).hexdigest()[:16]
        ref_words = sentence(r, r.randint(4, 14)).split()
        ref_tags = r.sample(TAGS, r.randint(1, 3))
        ref_cap = sentence(r, r.randint(5, 10))
        dur = round(r.uniform(0.5, 40.0), 3)
        failed = i % 10 == 9
        total = round(dur * r.uniform(0.2, 1.5), 4)
        created = t0 + i * 0.5 + r.random() * 0.4
        stamp = "%s.%03dZ" % (__import__("time").strftime("%Y-%m-%dT%H:%M:%S", __import__("time").gmtime(int(created))), int((created % 1) * 1000))
        rec = {
            "schema": "earmark.annotation/v1", "id": iid, "batch_id": a.batch, "source": src,
            "status": "failed" if failed else "ok", "attempt": 1, "worker": "w%d" % (i % 4),
            "created_at": stamp,
            "producer": {"hash": "p%d" % a.variant, "earmark_version": "0.1.0", "model": "demo@abc:bf16:cpu"},
            "segments": [], "caption": None, "transcript": None, "events": [], "answers": {},
            "timings": {"fetch_s": 0.01, "decode_s": 0.02, "model_s": total * 0.9, "total_s": total},
            "meta": {"ref": {"transcript": " ".join(ref_words), "events": ref_tags, "caption": ref_cap}},
        }
        if failed:
            cls = "EM_E_TIMEOUT" if i % 20 == 19 else "EM_E_AUDIO"
            rec["error"] = {"class": cls, "message": "synthetic failure %d" % i}
            rec["timings"]["total_s"] = None
        else:
            rec["audio"] = {"duration_s": dur, "sample_rate": 16000, "channels": 1, "codec": "pcm_s16le",
                            "container": "wav", "rms_dbfs": -20.0, "peak_dbfs": -3.0, "silence_ratio": 0.1}
            hyp = " ".join(perturb(hr, ref_words, 0.3))
            tags = [t for t in ref_tags if hr.random() < 0.7] + ([hr.choice(TAGS)] if hr.random() < 0.4 else [])
            cap = " ".join(perturb(hr, ref_cap.split(), 0.4))
            nseg = max(1, min(3, int(dur // 30) + 1))
            for s in range(nseg):
                rec["segments"].append({"start_s": s * 30.0, "end_s": min(dur, (s + 1) * 30.0),
                                        "answers": {"caption": cap, "transcript": hyp,
                                                    "events": ", ".join(tags), "free1": "a %s near %s" % (r.choice(WORDS), r.choice(WORDS))}})
            rec.update(caption=cap, transcript=hyp, events=sorted(set(tags)),
                       answers={"caption": cap, "transcript": hyp, "events": ", ".join(tags),
                                "free1": rec["segments"][0]["answers"]["free1"]})
        out = os.path.join(a.dir, iid + ".json")
        with open(out, "w") as f:
            json.dump(rec, f)
        lines.append(json.dumps({"id": iid, "source": src, "status": rec["status"], "output": "file://" + os.path.abspath(out)}))
    if not a.no_manifest:
        with open(os.path.join(a.dir, "manifest.jsonl"), "w") as f:
            f.write("\n".join(lines) + "\n")

main()
