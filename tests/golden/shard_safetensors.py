#!/usr/bin/env python3
"""tests/golden/shard_safetensors.py DIR N - splits DIR/model.safetensors into N shards
model-0000i-of-0000N.safetensors (tensors in name order, about equal bytes each) and writes
model.safetensors.index.json ({"metadata": {"total_size": ...}, "weight_map": {name: shard}}),
as transformers' save_pretrained(max_shard_size=...) lays out openai/whisper-large-v3 and
Qwen2-Audio-7B; then removes model.safetensors. Needs only the standard library."""
import json
import os
import struct
import sys


def main():
    d, n = sys.argv[1], int(sys.argv[2])
    src = os.path.join(d, "model.safetensors")
    b = open(src, "rb").read()
    hl, = struct.unpack_from("<Q", b, 0)
    head = json.loads(b[8:8 + hl])
    meta = head.pop("__metadata__", None)
    base = 8 + hl
    names = sorted(head)
    total = sum(head[k]["data_offsets"][1] - head[k]["data_offsets"][0] for k in names)
    groups, cur, acc = [], [], 0
    for k in names:
        cur.append(k)
        acc += head[k]["data_offsets"][1] - head[k]["data_offsets"][0]
        if acc >= total * (len(groups) + 1) / n and len(groups) < n - 1:
            groups.append(cur)
            cur = []
    groups.append(cur)
    wmap = {}
    for i, g in enumerate(groups):
        fname = "model-%05d-of-%05d.safetensors" % (i + 1, len(groups))
        h, off, parts = {}, 0, []
        for k in g:
            s, e = head[k]["data_offsets"]
            h[k] = {"dtype": head[k]["dtype"], "shape": head[k]["shape"], "data_offsets": [off, off + e - s]}
            parts.append(b[base + s:base + e])
            off += e - s
            wmap[k] = fname
        if meta is not None:
            h["__metadata__"] = meta
        hj = json.dumps(h, separators=(",", ":")).encode()
        hj += b" " * (-len(hj) % 8)
        with open(os.path.join(d, fname), "wb") as f:
            f.write(struct.pack("<Q", len(hj)) + hj)
            for p in parts:
                f.write(p)
    json.dump({"metadata": {"total_size": total}, "weight_map": wmap},
              open(os.path.join(d, "model.safetensors.index.json"), "w"), indent=1)
    os.remove(src)


if __name__ == "__main__":
    main()
