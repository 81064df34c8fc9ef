#!/usr/bin/env python3
"""tests/results/check-export.py OUT_DIR ITEMS.jsonl SEGMENTS.jsonl ITEMS.csv

Loads `earmark export` files with Hugging Face datasets (PyPI `datasets`), the way a user
would: load_dataset("json", data_files=...) and load_dataset("csv", ...), then checks the
row counts (one per record; one per segment), the column names and order, and that each
row's values are its record's. Exit 0 when all hold."""
import glob, json, os, sys

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import datasets  # noqa: E402

ITEM_COLS = ["id", "batch_id", "source", "status", "duration_s", "sample_rate", "channels",
             "model", "worker", "created_at", "caption", "transcript", "events", "answers",
             "total_s", "rtf", "error_class", "error_message"]
SEG_COLS = ["id", "segment", "source", "start_s", "end_s", "caption", "transcript", "events",
            "answers"]

def main():
    out_dir, items, segs, csv = sys.argv[1:5]
    cache = os.path.join(os.path.dirname(os.path.abspath(items)), "hf-cache")
    recs = {}
    for p in glob.glob(os.path.join(out_dir, "*.json")):
        r = json.load(open(p)); recs[r["id"]] = r
    bad = []
    di = datasets.load_dataset("json", data_files=items, split="train", cache_dir=cache)
    ds = datasets.load_dataset("json", data_files=segs, split="train", cache_dir=cache)
    dc = datasets.load_dataset("csv", data_files=csv, split="train", cache_dir=cache)
    if di.num_rows != len(recs): bad.append("json items: %d rows, %d records" % (di.num_rows, len(recs)))
    if dc.num_rows != len(recs): bad.append("csv items: %d rows, %d records" % (dc.num_rows, len(recs)))
    nseg = sum(len(r.get("segments") or []) for r in recs.values())
    if ds.num_rows != nseg: bad.append("segments: %d rows, %d segments" % (ds.num_rows, nseg))
    if di.column_names != ITEM_COLS: bad.append("item columns %s" % di.column_names)
    if dc.column_names != ITEM_COLS: bad.append("csv columns %s" % dc.column_names)
    if ds.num_rows and ds.column_names != SEG_COLS: bad.append("segment columns %s" % ds.column_names)
    for row in di:
        r = recs.get(row["id"])
        if r is None: bad.append("row %s: no record" % row["id"]); continue
        want = {"source": r["source"], "status": r["status"], "worker": r["worker"],
                "transcript": r.get("transcript"), "caption": r.get("caption"),
                "events": [e if isinstance(e, str) else e.get("label") for e in r.get("events") or []],
                "duration_s": (r.get("audio") or {}).get("duration_s"),
                "error_class": (r.get("error") or {}).get("class")}
        for k, v in want.items():
            got = row[k]
            if isinstance(v, (int, float)) and got is not None: ok = abs(got - v) < 1e-9
            else: ok = got == v
            if not ok: bad.append("row %s: %s = %r, record %r" % (row["id"], k, got, v))
        answers = {a["prompt"]: a["text"] for a in row["answers"] or []}
        want_a = {k: (v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))) for k, v in (r.get("answers") or {}).items()}
        if answers != want_a: bad.append("row %s: answers %r, record %r" % (row["id"], answers, want_a))
    for row in ds:
        seg = recs[row["id"]]["segments"][row["segment"]]
        if abs(row["start_s"] - seg["start_s"]) > 1e-9 or abs(row["end_s"] - seg["end_s"]) > 1e-9:
            bad.append("segment %s/%d: %s-%s, record %s-%s" % (row["id"], row["segment"], row["start_s"], row["end_s"], seg["start_s"], seg["end_s"]))
        if row["transcript"] != (seg.get("answers") or {}).get("transcript"):
            bad.append("segment %s/%d: transcript differs" % (row["id"], row["segment"]))
    for b in bad[:40]: print(b)
    print("check-export: %d items, %d segments, %d problems" % (di.num_rows, ds.num_rows, len(bad)))
    sys.exit(1 if bad else 0)

main()
