#!/usr/bin/env python3
"""deploy/make-demo-model.py DIR - writes earmark's embedded default model: a small
random-weight Qwen2-Audio checkpoint of the real architecture, for the demo and the
integration tests (the real 7B checkpoint is 16.8 GB and cannot be downloaded here).

    python3 deploy/make-demo-model.py DIR [--seed N] [--base]

What is real: the file layout and tensor names of a Hugging Face Qwen2-Audio checkpoint
(config.json, generation_config.json, preprocessor_config.json, model.safetensors,
vocab.json + merges.txt + tokenizer_config.json), the tokenizer (the real Qwen2 vocabulary
and merges from deploy/fetch-qwen2-vocab.sh's cache, fetched if missing, with the Qwen2-Audio
added tokens 151643..151648), 128 mel bins, 1500 audio positions, the special token ids.
What is small: audio d_model 64, 2 layers, 4 heads, ffn 128; text hidden 64, 2 layers,
4 heads (2 kv heads), ffn 128; vocab 151936 (every real token id exists). Weights are
bf16, N(0, 0.02) like transformers' initializer (norms 1, biases 0, Whisper sinusoids for
embed_positions), seeded, so the same seed writes byte-identical files. About 40 MB, a few
seconds. The text it generates is random; the code path is the real one.

By default the checkpoint is Instruct-like (a chat template, so earmark uses the ChatML
prompts); --base leaves the template out (plain base-model prompts). generation_config.json
is the Instruct one with max_new_tokens 32 so a demo run stays short.

Needs only numpy and the standard library (safetensors is written by hand: u64 little-endian
header length, JSON header, raw data).
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys

import numpy as np

AUDIO = dict(d=64, layers=2, heads=4, ffn=128, mel=128, pos=1500)
TEXT = dict(d=64, layers=2, heads=4, kv_heads=2, ffn=128, vocab=151936)
HERE = os.path.dirname(os.path.abspath(__file__))

ADDED = {151643: "<|endoftext|>", 151644: "<|im_start|>", 151645: "<|im_end|>",
         151646: "<|AUDIO|>", 151647: "<|audio_bos|>", 151648: "<|audio_eos|>"}

# The Qwen2-Audio-7B-Instruct processor's template (spec section 8.2).
CHAT_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful "
    "assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if 'audio' in content or 'audio_url' in content %}"
    "{% set audio_count.value = audio_count.value + 1 %}Audio {{ audio_count.value }}: "
    "<|audio_bos|><|AUDIO|><|audio_eos|>\n{% elif 'text' in content %}{{ content['text'] }}"
    "{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def tensors():
    """(name, shape, init) in checkpoint order; init is 'w' (random), 'one', 'zero' or 'pos'."""
    a, t = AUDIO, TEXT
    kv = t["kv_heads"] * (t["d"] // t["heads"])
    out = [("audio_tower.conv1.weight", [a["d"], a["mel"], 3], "w"),
           ("audio_tower.conv1.bias", [a["d"]], "zero"),
           ("audio_tower.conv2.weight", [a["d"], a["d"], 3], "w"),
           ("audio_tower.conv2.bias", [a["d"]], "zero"),
           ("audio_tower.embed_positions.weight", [a["pos"], a["d"]], "pos")]
    for i in range(a["layers"]):
        p = "audio_tower.layers.%d." % i
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            out.append((p + "self_attn.%s.weight" % n, [a["d"], a["d"]], "w"))
            if n != "k_proj":
                out.append((p + "self_attn.%s.bias" % n, [a["d"]], "zero"))
        out += [(p + "self_attn_layer_norm.weight", [a["d"]], "one"),
                (p + "self_attn_layer_norm.bias", [a["d"]], "zero"),
                (p + "fc1.weight", [a["ffn"], a["d"]], "w"), (p + "fc1.bias", [a["ffn"]], "zero"),
                (p + "fc2.weight", [a["d"], a["ffn"]], "w"), (p + "fc2.bias", [a["d"]], "zero"),
                (p + "final_layer_norm.weight", [a["d"]], "one"),
                (p + "final_layer_norm.bias", [a["d"]], "zero")]
    out += [("audio_tower.layer_norm.weight", [a["d"]], "one"),
            ("audio_tower.layer_norm.bias", [a["d"]], "zero"),
            ("multi_modal_projector.linear.weight", [t["d"], a["d"]], "w"),
            ("multi_modal_projector.linear.bias", [t["d"]], "zero"),
            ("language_model.model.embed_tokens.weight", [t["vocab"], t["d"]], "w")]
    for i in range(t["layers"]):
        p = "language_model.model.layers.%d." % i
        out += [(p + "self_attn.q_proj.weight", [t["d"], t["d"]], "w"),
                (p + "self_attn.q_proj.bias", [t["d"]], "zero"),
                (p + "self_attn.k_proj.weight", [kv, t["d"]], "w"),
                (p + "self_attn.k_proj.bias", [kv], "zero"),
                (p + "self_attn.v_proj.weight", [kv, t["d"]], "w"),
                (p + "self_attn.v_proj.bias", [kv], "zero"),
                (p + "self_attn.o_proj.weight", [t["d"], t["d"]], "w"),
                (p + "mlp.gate_proj.weight", [t["ffn"], t["d"]], "w"),
                (p + "mlp.up_proj.weight", [t["ffn"], t["d"]], "w"),
                (p + "mlp.down_proj.weight", [t["d"], t["ffn"]], "w"),
                (p + "input_layernorm.weight", [t["d"]], "one"),
                (p + "post_attention_layernorm.weight", [t["d"]], "one")]
    out += [("language_model.model.norm.weight", [t["d"]], "one"),
            ("language_model.lm_head.weight", [t["vocab"], t["d"]], "w")]
    return out


def sinusoids(length, channels):
    """Whisper's positional table (ref: transformers WhisperEncoder sinusoids)."""
    inc = np.log(10000) / (channels // 2 - 1)
    inv = np.exp(-inc * np.arange(channels // 2))
    t = np.arange(length)[:, None] * inv[None, :]
    return np.concatenate([np.sin(t), np.cos(t)], axis=1).astype(np.float32)


def bf16(x):
    """float32 -> bfloat16 bits, round to nearest even."""
    v = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return ((v + 0x7FFF + ((v >> 16) & 1)) >> 16).astype("<u2")


def values(shape, init, rng):
    n = int(np.prod(shape))
    if init == "one":
        return np.ones(n, np.float32)
    if init == "zero":
        return np.zeros(n, np.float32)
    if init == "pos":
        return sinusoids(*shape).reshape(-1)
    return rng.standard_normal(n, dtype=np.float32) * np.float32(0.02)


def write_safetensors(path, items, rng):
    header, blobs, off = {}, [], 0
    for name, shape, init in items:
        b = bf16(values(shape, init, rng)).tobytes()
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)


def vocab_dir():
    d = os.environ.get("EM_QWEN2_VOCAB_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "earmark", "qwen2-vocab")
    # idempotent: returns at once when the cache is complete and its checksums match
    subprocess.run([os.path.join(HERE, "fetch-qwen2-vocab.sh"), d], check=True,
                   stdout=subprocess.DEVNULL)
    return d


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--seed", type=int, default=20240801)
    ap.add_argument("--base", action="store_true", help="no chat template (base-model prompts)")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    src = vocab_dir()
    for name in ("vocab.json", "merges.txt"):
        shutil.copyfile(os.path.join(src, name), os.path.join(args.dir, name))
    tok = {"tokenizer_class": "Qwen2Tokenizer", "model_max_length": 32768,
           "errors": "replace", "bos_token": None, "eos_token": "<|im_end|>" if not args.base else "<|endoftext|>",
           "pad_token": "<|endoftext|>", "unk_token": None,
           "added_tokens_decoder": {str(i): {"content": c, "lstrip": False, "normalized": False,
                                             "rstrip": False, "single_word": False, "special": True}
                                    for i, c in ADDED.items()}}
    if not args.base:
        tok["chat_template"] = CHAT_TEMPLATE
    write_json(os.path.join(args.dir, "tokenizer_config.json"), tok)
    a, t = AUDIO, TEXT
    write_json(os.path.join(args.dir, "config.json"), {
        "architectures": ["Qwen2AudioForConditionalGeneration"], "model_type": "qwen2_audio",
        "audio_token_index": 151646, "torch_dtype": "bfloat16", "vocab_size": t["vocab"],
        "audio_config": {"model_type": "qwen2_audio_encoder", "num_mel_bins": a["mel"],
                         "d_model": a["d"], "encoder_layers": a["layers"],
                         "encoder_attention_heads": a["heads"], "encoder_ffn_dim": a["ffn"],
                         "max_source_positions": a["pos"], "activation_function": "gelu",
                         "scale_embedding": False},
        "text_config": {"model_type": "qwen2", "hidden_size": t["d"], "intermediate_size": t["ffn"],
                        "num_hidden_layers": t["layers"], "num_attention_heads": t["heads"],
                        "num_key_value_heads": t["kv_heads"], "vocab_size": t["vocab"],
                        "max_position_embeddings": 8192, "rope_theta": 10000.0,
                        "rms_norm_eps": 1e-05, "tie_word_embeddings": False, "hidden_act": "silu",
                        "bos_token_id": 151643, "eos_token_id": 151645},
        "earmark_demo": {"seed": args.seed, "note": "random weights; see deploy/make-demo-model.py"}})
    write_json(os.path.join(args.dir, "generation_config.json"), {
        "bos_token_id": 151643, "pad_token_id": 151643, "eos_token_id": [151645, 151643],
        "do_sample": True, "top_k": 20, "top_p": 0.5, "temperature": 0.7,
        "repetition_penalty": 1.1, "max_new_tokens": 32})
    write_json(os.path.join(args.dir, "preprocessor_config.json"), {
        "chunk_length": 30, "dither": 0.0, "feature_extractor_type": "WhisperFeatureExtractor",
        "feature_size": 128, "hop_length": 160, "n_fft": 400, "n_samples": 480000,
        "nb_max_frames": 3000, "padding_side": "right", "padding_value": 0.0,
        "processor_class": "Qwen2AudioProcessor", "return_attention_mask": True,
        "sampling_rate": 16000})
    write_safetensors(os.path.join(args.dir, "model.safetensors"), tensors(),
                      np.random.default_rng(args.seed))
    print("make-demo-model: wrote %s" % args.dir)


if __name__ == "__main__":
    sys.exit(main())
