#!/usr/bin/env python3
"""tests/golden/make_7b_shaped.py - writes a random checkpoint with the exact published
Qwen2-Audio-7B tensor names and shapes (spec §6: 8,397,094,912 parameters, bf16, sharded
with model.safetensors.index.json) plus the sparse config.json, generation_config.json and
preprocessor_config.json (spec sections 1, 9, 2.1; no tokenizer files: deploy/load-7b.sh
copies the real Qwen2 vocabulary in), for a load / memory test of the C loader. Not run in CI: it needs ~17 GB of disk and
writes for a few minutes. Needs only numpy (no torch):

    python3 tests/golden/make_7b_shaped.py /path/to/dir [--shards 5]

Values are small random bf16 numbers (generated per shard, in blocks, so memory stays low);
they are not a usable model.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

AUDIO = dict(d=1280, layers=32, ffn=5120, mel=128, pos=1500)
TEXT = dict(d=4096, layers=32, ffn=11008, vocab=156032)


def tensors():
    a, t = AUDIO, TEXT
    out = [("audio_tower.conv1.weight", [a["d"], a["mel"], 3]), ("audio_tower.conv1.bias", [a["d"]]),
           ("audio_tower.conv2.weight", [a["d"], a["d"], 3]), ("audio_tower.conv2.bias", [a["d"]]),
           ("audio_tower.embed_positions.weight", [a["pos"], a["d"]])]
    for i in range(a["layers"]):
        p = "audio_tower.layers.%d." % i
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            out.append((p + "self_attn.%s.weight" % n, [a["d"], a["d"]]))
            if n != "k_proj":
                out.append((p + "self_attn.%s.bias" % n, [a["d"]]))
        out += [(p + "self_attn_layer_norm.weight", [a["d"]]), (p + "self_attn_layer_norm.bias", [a["d"]]),
                (p + "fc1.weight", [a["ffn"], a["d"]]), (p + "fc1.bias", [a["ffn"]]),
                (p + "fc2.weight", [a["d"], a["ffn"]]), (p + "fc2.bias", [a["d"]]),
                (p + "final_layer_norm.weight", [a["d"]]), (p + "final_layer_norm.bias", [a["d"]])]
    out += [("audio_tower.layer_norm.weight", [a["d"]]), ("audio_tower.layer_norm.bias", [a["d"]]),
            ("multi_modal_projector.linear.weight", [t["d"], a["d"]]),
            ("multi_modal_projector.linear.bias", [t["d"]]),
            ("language_model.model.embed_tokens.weight", [t["vocab"], t["d"]])]
    for i in range(t["layers"]):
        p = "language_model.model.layers.%d." % i
        for n in ("q_proj", "k_proj", "v_proj"):
            out += [(p + "self_attn.%s.weight" % n, [t["d"], t["d"]]), (p + "self_attn.%s.bias" % n, [t["d"]])]
        out += [(p + "self_attn.o_proj.weight", [t["d"], t["d"]]),
                (p + "mlp.gate_proj.weight", [t["ffn"], t["d"]]), (p + "mlp.up_proj.weight", [t["ffn"], t["d"]]),
                (p + "mlp.down_proj.weight", [t["d"], t["ffn"]]),
                (p + "input_layernorm.weight", [t["d"]]), (p + "post_attention_layernorm.weight", [t["d"]])]
    out += [("language_model.model.norm.weight", [t["d"]]), ("language_model.lm_head.weight", [t["vocab"], t["d"]])]
    return out


def write_shard(path, items, rng):
    header, off = {}, 0
    for name, shape in items:
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [off, off + n]}
        off += n
    header["__metadata__"] = {"format": "pt"}
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for name, shape in items:
            left = int(np.prod(shape))
            while left:
                k = min(left, 1 << 24)
                v = (rng.standard_normal(k, dtype=np.float32) * 0.02).view(np.uint32)
                f.write(((v + 0x7FFF + ((v >> 16) & 1)) >> 16).astype("<u2").tobytes())
                left -= k
    return off


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--shards", type=int, default=5)
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    items = tensors()
    total = sum(int(np.prod(s)) for _, s in items)
    assert total == 8397094912, total
    per = total / args.shards
    groups, cur, acc = [], [], 0
    for it in items:
        cur.append(it)
        acc += int(np.prod(it[1]))
        if acc >= per * (len(groups) + 1) and len(groups) < args.shards - 1:
            groups.append(cur)
            cur = []
    groups.append(cur)
    rng = np.random.default_rng(7)
    wmap, size = {}, 0
    for i, g in enumerate(groups):
        fn = "model-%05d-of-%05d.safetensors" % (i + 1, len(groups))
        size += write_shard(os.path.join(args.dir, fn), g, rng)
        wmap.update({n: fn for n, _ in g})
        print(fn, len(g), "tensors", flush=True)
    with open(os.path.join(args.dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": size}, "weight_map": wmap}, f, indent=2)
    cfg = {"architectures": ["Qwen2AudioForConditionalGeneration"], "model_type": "qwen2_audio",
           "audio_token_index": 151646, "torch_dtype": "bfloat16", "vocab_size": 156032,
           "audio_config": {"model_type": "qwen2_audio_encoder", "num_mel_bins": 128,
                            "d_model": 1280, "encoder_layers": 32, "encoder_attention_heads": 20,
                            "encoder_ffn_dim": 5120, "max_source_positions": 1500,
                            "activation_function": "gelu", "scale_embedding": False},
           "text_config": {"model_type": "qwen2", "intermediate_size": 11008, "vocab_size": 156032,
                           "max_position_embeddings": 8192, "rope_theta": 10000,
                           "rms_norm_eps": 1e-05, "sliding_window": 32768, "use_mrope": False,
                           "bos_token_id": 151643, "eos_token_id": 151645}}
    with open(os.path.join(args.dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    gen = {"do_sample": True, "top_k": 20, "top_p": 0.5, "temperature": 0.7,
           "repetition_penalty": 1.1, "eos_token_id": [151645, 151643], "pad_token_id": 151643}
    with open(os.path.join(args.dir, "generation_config.json"), "w") as f:
        json.dump(gen, f, indent=2)
    pre = {"chunk_length": 30, "feature_extractor_type": "WhisperFeatureExtractor",
           "feature_size": 128, "hop_length": 160, "n_fft": 400, "n_samples": 480000,
           "nb_max_frames": 3000, "padding_side": "right", "padding_value": 0.0,
           "processor_class": "Qwen2AudioProcessor", "return_attention_mask": True,
           "sampling_rate": 16000}
    with open(os.path.join(args.dir, "preprocessor_config.json"), "w") as f:
        json.dump(pre, f, indent=2)
    print("wrote", total, "parameters,", size, "bytes")


if __name__ == "__main__":
    sys.exit(main())
