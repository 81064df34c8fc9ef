#!/usr/bin/env python3
"""tests/results/check-eval.py OUT_DIR EVAL_JSON: recomputes what `earmark eval --json
--items` printed, independently of results/ (jiwer for edit distances, collections.Counter
for caption overlap, a few lines for tags and sums), from the records under OUT_DIR and the
normalised texts eval reports per item. Prints every mismatch; exit 0 when none."""
import collections, datetime, glob, json, math, os, sys

import jiwer

TOL = 1e-9

def tag_norm(t):
    t = " ".join(t.replace("_", " ").replace("-", " ").split())
    t = "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in t)
    return " ".join(singular(w) for w in t.split(" ")) if t else t

def singular(w):
    m = len(w)
    if m > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if any(w.endswith(s) and m > len(s) for s in ("sses", "ches", "shes", "xes", "zes")):
        return w[:-2]
    if m > 3 and w.endswith("s") and not any(w.endswith(s) for s in ("ss", "us", "is")):
        return w[:-1]
    return w

def tags(lst):
    out = []
    for e in lst or []:
        s = e if isinstance(e, str) else (e or {}).get("label")
        if isinstance(s, str):
            n = tag_norm(s)
            if n and n not in out:
                out.append(n)
    return out

def edits(ref, hyp, chars):
    if not ref.strip():
        return len(hyp.replace(" ", "") if chars else hyp.split()), 0  # all insertions
    o = jiwer.process_characters(ref, hyp) if chars else jiwer.process_words(ref, hyp if hyp else "")
    return o.substitutions + o.deletions + o.insertions, o.substitutions + o.deletions + o.hits

def f1(h, r):
    h, r = h.split(), r.split()
    if not h and not r:
        return 1.0
    common = sum((collections.Counter(h) & collections.Counter(r)).values())
    return 2.0 * common / (len(h) + len(r))

def close(a, b):
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= TOL * max(1.0, abs(a), abs(b))

def main():
    out_dir, ev = sys.argv[1], json.load(open(sys.argv[2]))
    recs = {}
    for p in glob.glob(os.path.join(out_dir, "*.json")):
        r = json.load(open(p))
        recs[r["id"]] = r
    bad = []
    if ev["items"] != len(recs):
        bad.append("items %s != %d records" % (ev["items"], len(recs)))
    we = wr = ce = cr = tp = npred = nref = 0
    caps, tot, dur, failed, nev = [], 0.0, 0.0, 0, 0
    starts, ends = [], []
    for it in ev["per_item"]:
        r = recs.get(it["id"])
        if r is None:
            bad.append("%s: no record" % it["id"]); continue
        ok = r["status"] == "ok"
        failed += not ok
        ref = ((r.get("meta") or {}).get("ref") or {}) if isinstance(r.get("meta"), dict) else {}
        if "ref_transcript_norm" in it:
            hyp = it["transcript_norm"] or ""
            e, n = edits(it["ref_transcript_norm"], hyp, False)
            c, cn = edits(" ".join(it["ref_transcript_norm"].split()), " ".join(hyp.split()), True)
            if (e, n) != (it["word_errors"], it["ref_words"]):
                bad.append("%s: words %s/%s, jiwer %d/%d" % (it["id"], it["word_errors"], it["ref_words"], e, n))
            if (c, cn) != (it["char_errors"], it["ref_chars"]):
                bad.append("%s: chars %s/%s, jiwer %d/%d" % (it["id"], it["char_errors"], it["ref_chars"], c, cn))
            we += e; wr += n; ce += c; cr += cn
        if isinstance(ref.get("events"), list):
            p, q = tags(r.get("events") if ok else []), tags(ref["events"])
            t = len([x for x in p if x in q])
            if (t, len(p), len(q)) != (it["event_tp"], it["event_pred"], it["event_ref"]):
                bad.append("%s: events %s/%s/%s, expected %d/%d/%d" % (it["id"], it["event_tp"], it["event_pred"], it["event_ref"], t, len(p), len(q)))
            tp += t; npred += len(p); nref += len(q); nev += 1
        if "ref_caption_norm" in it:
            v = f1(it["caption_norm"] or "", it["ref_caption_norm"] or "")
            if not close(v, it["caption_f1"]):
                bad.append("%s: caption_f1 %s, expected %s" % (it["id"], it["caption_f1"], v))
            caps.append(v)
        a, t_ = (r.get("audio") or {}).get("duration_s"), (r.get("timings") or {}).get("total_s")
        if ok and isinstance(a, (int, float)) and a > 0 and isinstance(t_, (int, float)) and t_ >= 0:
            tot += t_; dur += a
        ts = datetime.datetime.strptime(r["created_at"].rstrip("Z")[:23], "%Y-%m-%dT%H:%M:%S.%f" if "." in r["created_at"] else "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc).timestamp()
        ts = round(ts * 1000)  # created_at has millisecond resolution; so do the spans
        ends.append(ts); starts.append(ts - (round(t_ * 1000) if isinstance(t_, (int, float)) and t_ > 0 else 0))
    m = ev["metrics"]
    want = {
        "wer": we / wr if wr else None, "cer": ce / cr if cr else None,
        "event_precision": (tp / npred if npred else float(nref == 0)) if nev else None,
        "event_recall": (tp / nref if nref else float(npred == 0)) if nev else None,
        "caption_f1": sum(caps) / len(caps) if caps else None,
        "rtf": tot / dur if dur else None,
        "failed_rate": failed / len(ev["per_item"]) if ev["per_item"] else None,
    }
    if nev:
        p_, r_ = want["event_precision"], want["event_recall"]
        want["event_f1"] = 2 * p_ * r_ / (p_ + r_) if p_ + r_ > 0 else 0.0
    for k, v in want.items():
        if not close(m.get(k), v):
            bad.append("metric %s: eval %s, expected %s" % (k, m.get(k), v))
    span = (max(ends) - min(starts)) / 1000 if ends else 0
    if span > 0 and not (abs(ev["throughput"]["items_per_s"] - len(ev["per_item"]) / span) <= 1e-9 * ev["throughput"]["items_per_s"]):
        bad.append("items_per_s %s, expected %s" % (ev["throughput"]["items_per_s"], len(ev["per_item"]) / span))
    for b in bad[:40]:
        print(b)
    print("check-eval: %d items, %d mismatches (wer %s, cer %s)" % (len(ev["per_item"]), len(bad), want["wer"], want["cer"]))
    sys.exit(1 if bad else 0)

main()
