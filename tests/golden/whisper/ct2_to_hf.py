#!/usr/bin/env python3
"""tests/golden/whisper/ct2_to_hf.py CT2_DIR OUT_DIR - rewrites a CTranslate2 Whisper model
(model.bin, config.json, tokenizer.json) in the Hugging Face layout transformers'
WhisperForConditionalGeneration uses: model.safetensors (float32: the f16 values widened
exactly, so both layouts hold the same numbers), config.json (model_type "whisper"),
generation_config.json (suppress_tokens, begin_suppress_tokens) and tokenizer.json. The fused
q|k|v and k|v of CTranslate2 are split again; their key biases are all zero (Whisper's k_proj
has none) and are dropped, which the script checks. Used by the "whisper" suite to load the
same weights through both layouts; needs only numpy."""
import json
import os
import shutil
import struct
import sys

import numpy as np

DT = {0: "<f4", 1: "i1", 2: "<i2", 3: "<i4", 4: "<f2"}


def read_ct2(path):
    b = open(path, "rb").read()
    o = 0

    def u(fmt):
        nonlocal o
        v = struct.unpack_from(fmt, b, o)
        o += struct.calcsize(fmt)
        return v

    def s():
        nonlocal o
        n, = u("<H")
        t = b[o:o + n]
        o += n
        return t.rstrip(b"\0").decode()

    u("<I"), s(), u("<I")
    n, = u("<I")
    out = {}
    for _ in range(n):
        name = s()
        rank, = u("<B")
        dims = u("<%dI" % rank)
        dt, = u("<B")
        nb, = u("<I")
        out[name] = np.frombuffer(b[o:o + nb], dtype=DT[dt]).reshape(dims)
        o += nb
    return out


def main():
    src, dst = sys.argv[1], sys.argv[2]
    v = read_ct2(os.path.join(src, "model.bin"))
    cfg = json.load(open(os.path.join(src, "config.json")))
    d = v["decoder/embeddings/weight"].shape[1]
    t = {}

    def put(name, a):
        t[name] = np.ascontiguousarray(a, dtype=np.float32)

    def norm(dst_, src_):
        put(dst_ + ".weight", v[src_ + "/gamma"])
        put(dst_ + ".bias", v[src_ + "/beta"])

    def lin(dst_, src_, rows=None):
        w, bias = v[src_ + "/weight"], v[src_ + "/bias"]
        if rows is not None:
            w, bias = w[rows[0]:rows[1]], bias[rows[0]:rows[1]]
        put(dst_ + ".weight", w)
        if dst_.endswith("k_proj"):
            assert not np.any(bias), src_ + ": a non-zero key bias cannot be dropped"
        else:
            put(dst_ + ".bias", bias)

    for side in ("encoder", "decoder"):
        n = 0
        while "%s/layer_%d/ffn/linear_0/weight" % (side, n) in v:
            n += 1
        for i in range(n):
            c, h = "%s/layer_%d/" % (side, i), "model.%s.layers.%d." % (side, i)
            norm(h + "self_attn_layer_norm", c + "self_attention/layer_norm")
            for k, r in (("q", (0, d)), ("k", (d, 2 * d)), ("v", (2 * d, 3 * d))):
                lin(h + "self_attn.%s_proj" % k, c + "self_attention/linear_0", r)
            lin(h + "self_attn.out_proj", c + "self_attention/linear_1")
            if side == "decoder":
                norm(h + "encoder_attn_layer_norm", c + "attention/layer_norm")
                lin(h + "encoder_attn.q_proj", c + "attention/linear_0")
                lin(h + "encoder_attn.k_proj", c + "attention/linear_1", (0, d))
                lin(h + "encoder_attn.v_proj", c + "attention/linear_1", (d, 2 * d))
                lin(h + "encoder_attn.out_proj", c + "attention/linear_2")
            norm(h + "final_layer_norm", c + "ffn/layer_norm")
            lin(h + "fc1", c + "ffn/linear_0")
            lin(h + "fc2", c + "ffn/linear_1")
        norm("model.%s.layer_norm" % side, side + "/layer_norm")
        put("model.%s.embed_positions.weight" % side, v[side + "/position_encodings/encodings"])
        if side == "encoder":
            for k in ("conv1", "conv2"):
                put("model.encoder.%s.weight" % k, v["encoder/%s/weight" % k])
                put("model.encoder.%s.bias" % k, v["encoder/%s/bias" % k])
    put("model.decoder.embed_tokens.weight", v["decoder/embeddings/weight"])

    os.makedirs(dst, exist_ok=True)
    header, off = {}, 0
    for name in sorted(t):
        nb = t[name].nbytes
        header[name] = {"dtype": "F32", "shape": list(t[name].shape), "data_offsets": [off, off + nb]}
        off += nb
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(os.path.join(dst, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for name in sorted(t):
            f.write(t[name].tobytes())
    n_enc = sum(1 for k in t if k.startswith("model.encoder.layers.") and k.endswith(".fc1.weight"))
    n_dec = sum(1 for k in t if k.startswith("model.decoder.layers.") and k.endswith(".fc1.weight"))
    heads = int(v["encoder/num_heads"])
    json.dump({"model_type": "whisper", "num_mel_bins": int(v["encoder/conv1/weight"].shape[1]),
               "d_model": d, "encoder_layers": n_enc, "decoder_layers": n_dec,
               "encoder_attention_heads": heads, "decoder_attention_heads": int(v["decoder/num_heads"]),
               "encoder_ffn_dim": int(v["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
               "decoder_ffn_dim": int(v["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
               "vocab_size": int(v["decoder/embeddings/weight"].shape[0]),
               "max_source_positions": 1500, "max_target_positions": int(v["decoder/position_encodings/encodings"].shape[0])},
              open(os.path.join(dst, "config.json"), "w"), indent=1)
    gen = {"suppress_tokens": cfg["suppress_ids"], "begin_suppress_tokens": cfg["suppress_ids_begin"]}
    if len(cfg.get("lang_ids", [])) and int(v["decoder/embeddings/weight"].shape[0]) >= 51865:
        gen["lang_to_id"] = {"<|%d|>" % i: i for i in cfg["lang_ids"]}
    json.dump(gen, open(os.path.join(dst, "generation_config.json"), "w"), indent=1)
    shutil.copy(os.path.join(src, "tokenizer.json"), os.path.join(dst, "tokenizer.json"))


if __name__ == "__main__":
    main()
