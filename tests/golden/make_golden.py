#!/usr/bin/env python3
"""tests/golden/make_golden.py - builds the tiny Qwen2-Audio checkpoints and the reference
records the C tests compare against (see README.md). Run by hand in tests/golden/.venv:

    tests/golden/.venv/bin/python tests/golden/make_golden.py [--remake-clips]

Writes, under tests/golden/:
  clips/*.flac                  16 kHz mono s16 inputs (made once with espeak-ng / sox; kept
                                unless --remake-clips, so the committed input is exact)
  tiny-bf16.tar.xz              sharded bf16 checkpoint (model-0000{1,2}-of-00002 + index)
  tiny-f32.tar.xz               single-file f32 checkpoint (model.safetensors)
  data.tar.xz                   records: raw little-endian .bin files + index.json
  tiny-q.tar.xz, data-q.tar.xz  the quantization-accuracy checkpoint and its records
                                (--only-q makes just these two)
  tiny-t.tar.xz, data-t.tar.xz  the same geometry with a trained text decoder (t_train:
                                ~5 min of CPU) and its records (--only-t: just these two)

The reference always computes in float32 (bf16 weights widened exactly), eager attention,
which is what the C code does; only the stored weight dtype differs.
"""
import argparse
import functools
import json
import math
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

import numpy as np
import torch
import transformers
from safetensors.torch import save_file
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import (Qwen2AudioConfig, Qwen2AudioForConditionalGeneration,
                          Qwen2AudioProcessor, Qwen2TokenizerFast, WhisperFeatureExtractor)
from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode

HERE = os.path.dirname(os.path.abspath(__file__))
RATE = 16000
SPECIAL = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645,
           "<|AUDIO|>": 151646, "<|audio_bos|>": 151647, "<|audio_eos|>": 151648}
PRETOK = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
          r"|\s*[\r\n]+|\s+(?!\S)|\s+")
DISTINCT_ROWS = 4096   # embed/lm_head rows >= this repeat row (id % 4096), specials excepted
LOGIT_TAIL_FROM = 151600  # logits kept for ids [0, 4096) and [151600, vocab)

# Built-in task prompts (model-b's model/text/prompt.c table): base form and Instruct chat form.
TASKS = {
    "caption": ("Generate the caption in English:", "Describe this audio in one sentence."),
    "transcript": ("Detect the language and recognize the speech: <|en|>",
                   "Transcribe the speech exactly."),
    "events": ("Classify the sound events in English:",
               "List the sound events you hear, separated by commas."),
}
AUDIO_SLOT = "<|audio_bos|><|AUDIO|><|audio_eos|>"

CHECKPOINTS = {
    # name: storage dtype, sharded, audio geometry, text geometry
    "tiny-bf16": dict(dtype=torch.bfloat16, sharded=True, seed=11,
                      audio=dict(d_model=60, encoder_layers=2, encoder_attention_heads=3,
                                 encoder_ffn_dim=88),
                      text=dict(hidden_size=48, intermediate_size=72, num_hidden_layers=2,
                                num_attention_heads=3, num_key_value_heads=3,
                                vocab_size=151680)),
    "tiny-f32": dict(dtype=torch.float32, sharded=False, seed=23,
                     audio=dict(d_model=36, encoder_layers=3, encoder_attention_heads=2,
                                encoder_ffn_dim=50),
                     text=dict(hidden_size=40, intermediate_size=56, num_hidden_layers=3,
                               num_attention_heads=5, num_key_value_heads=1,
                               vocab_size=151656)),
}

# tiny-q: the quantization-accuracy checkpoint (suite qaccuracy, docs/accuracy.md). Every
# linear has an input dim that is a multiple of 32 (so `earmark convert --type q8_0/q4_0`
# quantizes all of them, model/tools/convert.h), widths are not powers of two, and the linear
# weights are gaussian at a realistic scale (std 1/sqrt(fan_in)) rounded to bf16 - the
# published checkpoint's dtype - instead of a coarse grid, so q8_0/q4_0 rounding really
# changes them. Kept apart from CHECKPOINTS (own archive, own records data-q.tar.xz) so the
# two checkpoints above and data.tar.xz stay byte-identical.
Q_CHECKPOINTS = {
    "tiny-q": dict(dtype=torch.bfloat16, sharded=False, seed=37,
                   audio=dict(d_model=96, encoder_layers=2, encoder_attention_heads=3,
                              encoder_ffn_dim=160),
                   text=dict(hidden_size=96, intermediate_size=224, num_hidden_layers=2,
                             num_attention_heads=3, num_key_value_heads=3,
                             vocab_size=151680)),
}
Q_DISTINCT_ROWS = 1024  # tiny-q: embed/lm_head row i equals row i % 1024, specials excepted
Q_CLIPS = ("speech",)   # clips whose prompts are recorded for tiny-q

CLIPS = {
    # name: (how it is made, whether logits are recorded for it)
    "speech": "espeak-ng 'The quick brown fox jumps over the lazy dog.' (~2.5 s)",
    "tone": "sox sine 440 Hz + 1250 Hz, 1.337 s (n not a multiple of 160)",
    "blip": "sox sine 900 Hz, 810 samples (L=6, one audio token)",
    "long": "sox 40 s: sweep 150-3000 Hz with tremolo (two 30 s windows)",
}


def sh(*cmd):
    subprocess.run(cmd, check=True)


def make_clips(outdir):
    os.makedirs(outdir, exist_ok=True)
    with tempfile.TemporaryDirectory() as td:
        raw = os.path.join(td, "speech22k.wav")
        sh("espeak-ng", "-v", "en-us", "-s", "165", "-w", raw,
           "The quick brown fox jumps over the lazy dog.")
        sh("sox", raw, "-r", "16000", "-c", "1", "-b", "16", os.path.join(outdir, "speech.flac"))
    sh("sox", "-n", "-r", "16000", "-c", "1", "-b", "16", os.path.join(outdir, "tone.flac"),
       "synth", "1.337", "sine", "440", "sine", "1250", "remix", "1,2", "vol", "0.4")
    sh("sox", "-n", "-r", "16000", "-c", "1", "-b", "16", os.path.join(outdir, "blip.flac"),
       "synth", "0.050625", "sine", "900", "vol", "0.5")
    sh("sox", "-n", "-r", "16000", "-c", "1", "-b", "16", os.path.join(outdir, "long.flac"),
       "synth", "40", "sine", "150-3000", "tremolo", "3", "60", "vol", "0.3")


def read_clip(path):
    """16 kHz mono s16 -> float32 / 32768 (what the C test does through the same sox call)."""
    raw = subprocess.run(["sox", path, "-t", "raw", "-e", "signed-integer", "-b", "16",
                          "-c", "1", "-r", "16000", "-"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0


def grid(t, step, lim):
    """Rounds onto a coarse grid exactly representable in bf16 (|k| <= 255 steps)."""
    return torch.clamp(torch.round(t / step), -lim, lim) * step


def init_weights(model, seed):
    g = torch.Generator().manual_seed(seed)
    sd = model.state_dict()
    for name, p in sd.items():
        if name.endswith("embed_positions.weight"):
            n, d = p.shape
            half = d // 2
            inc = math.log(10000.0) / (half - 1)
            inv = torch.exp(-inc * torch.arange(half, dtype=torch.float64))
            ang = torch.arange(n, dtype=torch.float64)[:, None] * inv[None, :]
            v = torch.cat([torch.sin(ang), torch.cos(ang)], dim=1).float()
            v = grid(v, 1 / 64, 64)
        elif name.endswith("embed_tokens.weight") or name.endswith("lm_head.weight"):
            vocab, d = p.shape
            base = grid(torch.randn(DISTINCT_ROWS, d, generator=g) * 0.5, 1 / 16, 32)
            idx = torch.arange(vocab) % DISTINCT_ROWS
            v = base[idx].clone()
            for tid in SPECIAL.values():
                v[tid] = grid(torch.randn(d, generator=g) * 0.5, 1 / 16, 32)
        elif "norm" in name and name.endswith("weight"):
            v = grid(1.0 + 0.2 * torch.randn(p.shape, generator=g), 1 / 64, 127)
        elif name.endswith("bias"):
            v = grid(0.1 * torch.randn(p.shape, generator=g), 1 / 128, 127)
        else:
            fan_in = p[0].numel() if p.dim() > 1 else p.numel()
            v = grid(torch.randn(p.shape, generator=g) * (1.2 / math.sqrt(fan_in)), 1 / 128, 255)
        with torch.no_grad():
            p.copy_(v.to(p.dtype))


def is_linear(name, p):
    """The tensors model/tools/convert.h quantizes: 2-D q/k/v/o (out_proj), gate/up/down, fc1/fc2
    of every layer, and lm_head."""
    if p.dim() != 2:
        return False
    if name.endswith("lm_head.weight"):
        return True
    return ".layers." in name and name.endswith(("q_proj.weight", "k_proj.weight",
                                                 "v_proj.weight", "o_proj.weight",
                                                 "out_proj.weight", "gate_proj.weight",
                                                 "up_proj.weight", "down_proj.weight",
                                                 "fc1.weight", "fc2.weight"))


def init_weights_q(model, seed):
    """tiny-q: as init_weights, except that the linears (is_linear) are gaussian with std
    1/sqrt(fan_in) rounded to bf16 (not a grid), lm_head repeating Q_DISTINCT_ROWS rows, and
    embed_tokens repeats Q_DISTINCT_ROWS grid rows (it is not quantized)."""
    g = torch.Generator().manual_seed(seed)
    sd = model.state_dict()
    for name, p in sd.items():
        if name.endswith("embed_positions.weight"):
            n, d = p.shape
            half = d // 2
            inc = math.log(10000.0) / (half - 1)
            inv = torch.exp(-inc * torch.arange(half, dtype=torch.float64))
            ang = torch.arange(n, dtype=torch.float64)[:, None] * inv[None, :]
            v = torch.cat([torch.sin(ang), torch.cos(ang)], dim=1).float()
            v = grid(v, 1 / 64, 64)
        elif name.endswith("embed_tokens.weight") or name.endswith("lm_head.weight"):
            vocab, d = p.shape
            if name.endswith("lm_head.weight"):
                base = (torch.randn(Q_DISTINCT_ROWS, d, generator=g) / math.sqrt(d))
                base = base.to(torch.bfloat16).float()
            else:
                base = grid(torch.randn(Q_DISTINCT_ROWS, d, generator=g) * 0.5, 1 / 16, 32)
            idx = torch.arange(vocab) % Q_DISTINCT_ROWS
            v = base[idx].clone()
            for tid in SPECIAL.values():
                if name.endswith("lm_head.weight"):
                    v[tid] = (torch.randn(d, generator=g) / math.sqrt(d)).to(torch.bfloat16).float()
                else:
                    v[tid] = grid(torch.randn(d, generator=g) * 0.5, 1 / 16, 32)
        elif "norm" in name and name.endswith("weight"):
            v = grid(1.0 + 0.2 * torch.randn(p.shape, generator=g), 1 / 64, 127)
        elif name.endswith("bias"):
            v = grid(0.1 * torch.randn(p.shape, generator=g), 1 / 128, 127)
        elif is_linear(name, p):
            v = (torch.randn(p.shape, generator=g) / math.sqrt(p.shape[1])).to(torch.bfloat16).float()
        else:
            fan_in = p[0].numel() if p.dim() > 1 else p.numel()
            v = grid(torch.randn(p.shape, generator=g) * (1.2 / math.sqrt(fan_in)), 1 / 128, 255)
        with torch.no_grad():
            p.copy_(v.to(p.dtype))


# ---- tiny-t: a TRAINED tiny checkpoint (suite qaccuracy, docs/accuracy.md) -------------------
# A random model's next-token distributions are nearly flat, so it cannot show whether a real
# model's margins survive q8_0/q4_0 rounding. tiny-t has tiny-q's geometry, tiny-q's kind of
# random audio tower (frozen), and a text decoder TRAINED for a few CPU minutes as a byte-level
# language model (the stand-in tokenizer: byte b is id b) on a generic corpus: the license
# texts of /usr/share/common-licenses (Debian base-files). Nothing of the golden prompts is
# in the corpus (checked below), and the golden clip is not used in training: the audio rows
# in training come from synthetic noise / tone / chirp clips made here with a seeded RNG.
T_CORPUS = "/usr/share/common-licenses"
T_LIVE = list(range(256)) + sorted(SPECIAL.values())  # ids the byte tokenizer can produce
T_SEQ, T_BATCH, T_STEPS, T_LR = 224, 16, 400, 3e-3

T_CHECKPOINTS = {
    "tiny-t": dict(dtype=torch.bfloat16, sharded=False, seed=41,
                   audio=dict(d_model=96, encoder_layers=2, encoder_attention_heads=3,
                              encoder_ffn_dim=160),
                   text=dict(hidden_size=96, intermediate_size=224, num_hidden_layers=2,
                             num_attention_heads=3, num_key_value_heads=3,
                             vocab_size=151680)),
}


def t_corpus():
    """The training text: every distinct regular file of T_CORPUS (symlinks resolved, sorted
    by real path), as bytes, each followed by <|endoftext|>. Refuses a corpus that contains a
    golden prompt's text."""
    paths = sorted({os.path.realpath(os.path.join(T_CORPUS, f)) for f in os.listdir(T_CORPUS)})
    ids, names = [], []
    for p in paths:
        if not os.path.isfile(p):
            continue
        with open(p, "rb") as f:
            data = f.read()
        for t, (b, q) in TASKS.items():
            for s in (b, q, "You are a helpful assistant", "Audio 1:"):
                assert s.encode() not in data, ("golden prompt text in the corpus", p, s)
        ids.extend(data)
        ids.append(SPECIAL["<|endoftext|>"])
        names.append(os.path.basename(p))
    return np.array(ids, dtype=np.int64), names


def t_synthetic_clips(rng, n=12):
    """Seeded training audio, unrelated to the golden clips: white/pink-ish noise, tones,
    chirps, 1.0-3.5 s, random level."""
    out = []
    for i in range(n):
        dur = rng.uniform(1.0, 3.5)
        t = np.arange(int(dur * RATE)) / RATE
        kind = i % 3
        if kind == 0:
            x = rng.standard_normal(len(t))
            x = np.convolve(x, np.ones(int(rng.integers(1, 8))) / 4, mode="same")
        elif kind == 1:
            x = sum(np.sin(2 * np.pi * rng.uniform(100, 3000) * t + rng.uniform(0, 6))
                    for _ in range(int(rng.integers(1, 4))))
        else:
            f0, f1 = rng.uniform(100, 1000), rng.uniform(1000, 6000)
            x = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * dur)))
        x = x / (np.abs(x).max() + 1e-9) * rng.uniform(0.1, 0.6)
        out.append(np.round(x * 32767).astype(np.float32) / 32768.0)  # s16 like a clip
    return out


def t_batch(rng, corpus, lines, audio_pool, byte_ids):
    """T_BATCH sequences of T_SEQ + 1 ids (audio slots as runs of <|AUDIO|>) and, for each,
    the index of its audio pool entry (-1: none). Mix: 40 % plain text windows, 30 % an audio
    slot then text, 30 % a generic chat exchange (system / user / assistant turns from corpus
    lines, half with an audio slot in the user turn)."""
    S = SPECIAL
    seqs, which = [], []
    for _ in range(T_BATCH):
        r = rng.random()
        a = -1
        if r < 0.4:
            s = []
        elif r < 0.7:
            a = int(rng.integers(len(audio_pool)))
            s = [S["<|audio_bos|>"]] + [S["<|AUDIO|>"]] * len(audio_pool[a]) + [S["<|audio_eos|>"]]
        else:
            def line():
                return list(lines[int(rng.integers(len(lines)))])
            s = [S["<|im_start|>"]] + byte_ids(b"system\n") + line() + [S["<|im_end|>"]] + \
                byte_ids(b"\n") + [S["<|im_start|>"]] + byte_ids(b"user\n")
            if rng.random() < 0.5:
                a = int(rng.integers(len(audio_pool)))
                s += [S["<|audio_bos|>"]] + [S["<|AUDIO|>"]] * len(audio_pool[a]) + \
                     [S["<|audio_eos|>"]] + byte_ids(b"\n")
            s += line() + [S["<|im_end|>"]] + byte_ids(b"\n") + [S["<|im_start|>"]] + \
                byte_ids(b"assistant\n")
            s += line() + line() + [S["<|im_end|>"]] + byte_ids(b"\n")
        need = T_SEQ + 1 - len(s)
        if need > 0:
            o = int(rng.integers(0, len(corpus) - need))
            s = s + corpus[o:o + need].tolist()
        seqs.append(s[:T_SEQ + 1])
        which.append(a)
    return torch.tensor(seqs, dtype=torch.long), which


def t_train(model, proc, seed):
    """Trains model's text decoder in place (f32, seeded, one thread; about 5 min of CPU).
    The audio tower and projector stay as initialised (frozen). Only T_LIVE ids carry
    meaning: embed_tokens / lm_head are trained as len(T_LIVE) + 1 rows, the last one
    standing for every other id (151418 of them; the loss counts its multiplicity, so it is
    the full-vocabulary softmax of the exported model), and written back that way."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    corpus, names = t_corpus()
    print("tiny-t corpus: %d bytes from %d files of %s" % (len(corpus), len(names), T_CORPUS))
    lines = [ln.strip() for ln in bytes(int(c) for c in corpus if c < 256).split(b"\n")]
    lines = [ln for ln in lines if 12 <= len(ln) <= 72]
    lut = np.full(max(SPECIAL.values()) + 1, -1, dtype=np.int64)
    for i, tid in enumerate(T_LIVE):
        lut[tid] = i
    n_live = len(T_LIVE)
    n_dead = model.config.text_config.vocab_size - n_live
    # audio rows of the synthetic clips through the (frozen) tower + projector
    pool = []
    for wav in t_synthetic_clips(rng):
        inp = proc(text=AUDIO_SLOT, audio=[wav], sampling_rate=RATE, return_tensors="pt")
        caught = {}
        h = model.multi_modal_projector.register_forward_hook(
            lambda m, a, o: caught.__setitem__("proj", o.detach().clone()))
        with torch.no_grad():
            model(**inp)
        h.remove()
        n_tok = int((inp["input_ids"][0] == SPECIAL["<|AUDIO|>"]).sum())
        pool.append(caught["proj"][0, :n_tok].float())
    lm = model.language_model
    body = lm.model
    emb = torch.nn.Parameter(body.embed_tokens.weight.detach()[T_LIVE + [256]].float().clone())
    head = torch.nn.Parameter(lm.lm_head.weight.detach()[T_LIVE + [256]].float().clone())
    params = [p for n, p in body.named_parameters() if not n.startswith("embed_tokens")]
    opt = torch.optim.AdamW(params + [emb, head], lr=T_LR, betas=(0.9, 0.98), weight_decay=0.01)
    log_mult = torch.zeros(n_live + 1)
    log_mult[n_live] = math.log(n_dead)
    body.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: float sums in a fixed order, so the run is byte-stable
    for step in range(T_STEPS):
        lr = T_LR * min(1.0, (step + 1) / 50) * 0.5 * (1 + math.cos(math.pi * step / T_STEPS))
        for grp in opt.param_groups:
            grp["lr"] = lr
        ids, which = t_batch(rng, corpus, lines, pool, lambda b: list(b))
        live = torch.from_numpy(lut[ids.numpy()])
        x = emb[live[:, :-1]]
        for b, a in enumerate(which):
            if a >= 0:
                pos = (ids[b, :-1] == SPECIAL["<|AUDIO|>"]).nonzero()[:, 0]
                x = x.index_put((torch.full_like(pos, b), pos), pool[a][:len(pos)])
        h = body(inputs_embeds=x).last_hidden_state
        logits = h @ head.t() + log_mult
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, n_live + 1),
                                                 live[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params + [emb, head], 1.0)
        opt.step()
        if step % 100 == 0 or step == T_STEPS - 1:
            print("tiny-t step %4d loss %.4f (nats/token) lr %.2e" % (step, loss.item(), lr),
                  flush=True)
    body.eval()
    torch.set_num_threads(threads)
    with torch.no_grad():
        V = model.config.text_config.vocab_size
        idx = torch.full((V,), n_live, dtype=torch.long)
        idx[T_LIVE] = torch.arange(n_live)
        body.embed_tokens.weight.copy_(emb.detach()[idx])
        lm.lm_head.weight.copy_(head.detach()[idx])
    return names


def init_weights_t(model, seed, proc=None, info=None):
    """tiny-t: tiny-q's initialisation (seeded), then t_train on the text decoder."""
    init_weights_q(model, seed)
    names = t_train(model, proc, seed)
    if info is not None:
        info["corpus_files"] = names


def make_tokenizer():
    """Stand-in byte-level BPE with the real Qwen2 pre-tokenizer and special ids: byte b has
    id b (no merges), special tokens at their real ids 151643..151648."""
    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    vocab.update(SPECIAL)
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOK), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tk.decoder = decoders.ByteLevel()
    tok = Qwen2TokenizerFast(tokenizer_object=tk, unk_token=None, bos_token=None,
                             eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tok.add_special_tokens({"additional_special_tokens": [k for k in SPECIAL if k != "<|endoftext|>"]})
    for k, v in SPECIAL.items():
        assert tok.convert_tokens_to_ids(k) == v, (k, tok.convert_tokens_to_ids(k))
    return tok


def gen_config_dict():
    return {"bos_token_id": 151643, "pad_token_id": 151643, "eos_token_id": [151645, 151643],
            "do_sample": True, "top_k": 20, "top_p": 0.5, "temperature": 0.7,
            "repetition_penalty": 1.1, "transformers_version": transformers.__version__}


def build_checkpoint(name, spec, outdir, tok, init=init_weights):
    audio = dict(num_mel_bins=128, max_source_positions=1500, activation_function="gelu",
                 scale_embedding=False, **spec["audio"])
    text = dict(model_type="qwen2", max_position_embeddings=8192, rope_theta=10000.0,
                rms_norm_eps=1e-5, tie_word_embeddings=False, hidden_act="silu",
                use_sliding_window=False, sliding_window=32768, bos_token_id=151643,
                eos_token_id=151645, **spec["text"])
    cfg = Qwen2AudioConfig(audio_config=audio, text_config=text, audio_token_index=151646)
    cfg._attn_implementation = "eager"
    torch.manual_seed(spec["seed"])
    model = Qwen2AudioForConditionalGeneration(cfg).eval()
    init(model, spec["seed"])
    os.makedirs(outdir, exist_ok=True)
    cfg.torch_dtype = "bfloat16" if spec["dtype"] == torch.bfloat16 else "float32"
    cfg.vocab_size = text["vocab_size"]
    cfg.save_pretrained(outdir)
    with open(os.path.join(outdir, "generation_config.json"), "w") as f:
        json.dump(gen_config_dict(), f, indent=2)
    sd = {k: v.detach().to(spec["dtype"]).contiguous() for k, v in model.state_dict().items()}
    meta = {"format": "pt"}
    if spec["sharded"]:
        names = sorted(sd)
        second = [n for n in names if n.startswith("language_model.")]
        first = [n for n in names if n not in second]
        shards = [first, second]
        wmap, total = {}, 0
        for i, part in enumerate(shards):
            fn = "model-%05d-of-%05d.safetensors" % (i + 1, len(shards))
            save_file({n: sd[n] for n in part}, os.path.join(outdir, fn), metadata=meta)
            for n in part:
                wmap[n] = fn
                total += sd[n].numel() * sd[n].element_size()
        with open(os.path.join(outdir, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": wmap}, f, indent=2)
    else:
        save_file(sd, os.path.join(outdir, "model.safetensors"), metadata=meta)
    fe = WhisperFeatureExtractor(feature_size=128, sampling_rate=RATE, hop_length=160,
                                 chunk_length=30, n_fft=400, padding_value=0.0,
                                 return_attention_mask=True)
    proc = Qwen2AudioProcessor(feature_extractor=fe, tokenizer=tok)
    proc.save_pretrained(outdir)
    # Reload from disk, widened to f32: the reference runs on exactly the stored weights.
    ref = Qwen2AudioForConditionalGeneration.from_pretrained(
        outdir, torch_dtype=torch.float32, attn_implementation="eager").eval()
    return ref, proc


class Records:
    def __init__(self, root):
        self.root = root
        self.index = {}
        os.makedirs(root, exist_ok=True)

    def add(self, key, arr, dtype):
        arr = np.ascontiguousarray(np.asarray(arr).astype(dtype))
        fn = key.replace("/", "__") + ".bin"
        arr.astype(arr.dtype.newbyteorder("<")).tofile(os.path.join(self.root, fn))
        self.index[key] = {"file": fn, "dtype": "f32" if dtype == np.float32 else "i32",
                           "shape": list(arr.shape)}

    def load(self, key):
        e = self.index[key]
        return np.fromfile(os.path.join(self.root, e["file"]), dtype="<f4").reshape(e["shape"])

    def meta(self, key, value):
        self.index[key] = value

    def save(self):
        with open(os.path.join(self.root, "index.json"), "w") as f:
            json.dump(self.index, f, indent=1, sort_keys=True)


def chat_prompt(question):
    return ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
            "Audio 1: " + AUDIO_SLOT + "\n" + question + "<|im_end|>\n<|im_start|>assistant\n")


def run_model(model, proc, wav, prompt):
    inp = proc(text=prompt, audio=[wav], sampling_rate=RATE, return_tensors="pt")
    caught = {}
    h1 = model.audio_tower.register_forward_hook(
        lambda m, a, o: caught.__setitem__("enc", o.last_hidden_state.detach().clone()))
    h2 = model.multi_modal_projector.register_forward_hook(
        lambda m, a, o: caught.__setitem__("proj", o.detach().clone()))
    with torch.no_grad():
        out = model(**inp)
    h1.remove()
    h2.remove()
    return inp, caught, out.logits[0].float()


def record_audio(rec, key, clipkey, inp, caught, n_samples):
    L = int(inp["feature_attention_mask"][0].sum())
    assert L == min(3000, -(-n_samples // 160)), (L, n_samples)
    feat_len = (L - 1) // 2 + 1
    n_tok = (feat_len - 2) // 2 + 1
    mel = inp["input_features"][0].numpy()  # [128, 3000]
    mk = "mel/" + clipkey  # the features do not depend on the checkpoint
    if mk + "/mel_head" not in rec.index:
        head = min(L + 4, 3000, 600)
        rec.add(mk + "/mel_head", mel[:, :head], np.float32)
        rec.add(mk + "/mel_tail", mel[:, 2950:], np.float32)
        rec.meta(mk + "/mel_pad", float(mel[0, 2999]))
        rec.meta(mk + "/mel_len", L)
        rec.meta(mk + "/n_samples", n_samples)
    else:
        assert np.array_equal(rec.load(mk + "/mel_head"), mel[:, :rec.index[mk + "/mel_head"]["shape"][1]])
    rec.meta(key + "/audio_tokens", n_tok)
    rec.add(key + "/encoder_out", caught["enc"][0, :n_tok].numpy(), np.float32)
    rec.add(key + "/audio_embeds", caught["proj"][0, :n_tok].numpy(), np.float32)
    assert int((inp["input_ids"][0] == 151646).sum()) == n_tok


def record_logits(rec, key, inp, logits, slices, lo_rows=DISTINCT_ROWS):
    ids = inp["input_ids"][0].numpy()
    rec.add(key + "/input_ids", ids, np.int32)
    lg = logits.numpy()
    vocab = lg.shape[1]
    if slices:  # the logits themselves only for one clip, to stay small
        last = lg[-3:]
        rec.add(key + "/logits_last_lo", last[:, :lo_rows], np.float32)
        rec.add(key + "/logits_last_hi", last[:, LOGIT_TAIL_FROM:], np.float32)
    rec.add(key + "/argmax", lg.argmax(axis=1), np.int32)
    rec.add(key + "/max_logit", lg.max(axis=1), np.float32)
    rec.add(key + "/max_abs_logit", np.abs(lg).max(axis=1), np.float32)
    rec.meta(key + "/vocab", vocab)


def record_generate(rec, key, model, inp):
    for tag, rp in (("greedy_rp1", 1.0), ("greedy_rp_default", None)):
        kw = dict(max_new_tokens=32, do_sample=False, top_k=None, top_p=None, temperature=None)
        if rp is not None:
            kw["repetition_penalty"] = rp
        with torch.no_grad():
            out = model.generate(**inp, **kw)
        rec.add(key + "/" + tag, out[0, inp["input_ids"].shape[1]:].numpy(), np.int32)
    torch.manual_seed(1234)
    with torch.no_grad():
        out = model.generate(**inp, max_new_tokens=16, do_sample=True, temperature=0.7,
                             top_k=20, top_p=0.5, repetition_penalty=1.1)
    rec.add(key + "/sampled_seed1234", out[0, inp["input_ids"].shape[1]:].numpy(), np.int32)
    rec.meta(key + "/sampled_settings", {"seed": 1234, "temperature": 0.7, "top_k": 20,
                                         "top_p": 0.5, "repetition_penalty": 1.1,
                                         "max_new_tokens": 16, "rng": "torch.manual_seed"})


def tar_xz(src_dir, out_path, arcname):
    with tarfile.open(out_path, "w:xz", preset=9) as t:
        for fn in sorted(os.listdir(src_dir)):
            info = t.gettarinfo(os.path.join(src_dir, fn), arcname=arcname + "/" + fn)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with open(os.path.join(src_dir, fn), "rb") as f:
                t.addfile(info, f)


def record_prompts(rec, ck, model, proc, clips, show_top1=False):
    """For each clip of Q_CLIPS: the audio tower output and projected rows, then for every
    task x form the full-prompt records and the logsumexp over the vocab at every position
    (make_q and make_t)."""
    for c in Q_CLIPS:
        wav = clips[c]
        inp, caught, _ = run_model(model, proc, wav, AUDIO_SLOT + TASKS["caption"][0])
        n_tok = int((inp["input_ids"][0] == 151646).sum())
        rec.meta("%s/%s/audio_tokens" % (ck, c), n_tok)
        rec.add("%s/%s/encoder_out" % (ck, c), caught["enc"][0, :n_tok].numpy(), np.float32)
        rec.add("%s/%s/audio_embeds" % (ck, c), caught["proj"][0, :n_tok].numpy(), np.float32)
        for t, (base, q) in TASKS.items():
            for form, prompt in (("base", AUDIO_SLOT + base), ("chat", chat_prompt(q))):
                key = "%s/%s/%s/%s" % (ck, c, t, form)
                inp, caught, logits = run_model(model, proc, wav, prompt)
                record_logits(rec, key, inp, logits, True, lo_rows=Q_DISTINCT_ROWS)
                rec.add(key + "/logsumexp", torch.logsumexp(logits.double(), dim=1).numpy(),
                        np.float32)
                if show_top1:
                    p = torch.softmax(logits.double(), dim=1)
                    print("%s %s/%s: mean top-1 prob %.3f" % (ck, t, form,
                                                           p.max(dim=1).values.mean()))


def make_q(clips, tok, work, versions):
    """tiny-q.tar.xz + data-q.tar.xz (top folder data-q/): for the speech clip, the audio
    tower output and projected rows, and for every task x form the full-prompt records
    (input_ids, argmax, max_logit, max_abs_logit, logsumexp over the vocab at every
    position; logits of the last 3 positions for ids [0, Q_DISTINCT_ROWS) and [151600, V))."""
    rec = Records(os.path.join(work, "data-q"))
    rec.meta("versions", versions)
    rec.meta("tasks", {t: {"base": AUDIO_SLOT + b, "chat": chat_prompt(q)}
                       for t, (b, q) in TASKS.items()})
    rec.meta("logits_layout", {"positions": "last 3", "lo": [0, Q_DISTINCT_ROWS],
                               "hi_from": LOGIT_TAIL_FROM,
                               "note": "embed/lm_head row i equals row i %% %d except the "
                                       "special ids 151643..151648" % Q_DISTINCT_ROWS})
    for ck, spec in Q_CHECKPOINTS.items():
        ckdir = os.path.join(work, ck)
        model, proc = build_checkpoint(ck, spec, ckdir, tok, init=init_weights_q)
        rec.meta(ck + "/config", {"audio": spec["audio"], "text": spec["text"],
                                  "dtype": str(spec["dtype"]), "sharded": spec["sharded"],
                                  "linear_init": "gaussian std 1/sqrt(fan_in), bf16-rounded",
                                  "distinct_rows": Q_DISTINCT_ROWS})
        record_prompts(rec, ck, model, proc, clips)
        tar_xz(ckdir, os.path.join(HERE, ck + ".tar.xz"), ck)
        print("checkpoint", ck, os.path.getsize(os.path.join(HERE, ck + ".tar.xz")), "bytes")
    rec.save()
    tar_xz(rec.root, os.path.join(HERE, "data-q.tar.xz"), "data-q")
    print("records", os.path.getsize(os.path.join(HERE, "data-q.tar.xz")), "bytes")


def make_processor(tok):
    fe = WhisperFeatureExtractor(feature_size=128, sampling_rate=RATE, hop_length=160,
                                 chunk_length=30, n_fft=400, padding_value=0.0,
                                 return_attention_mask=True)
    return Qwen2AudioProcessor(feature_extractor=fe, tokenizer=tok)


def make_t(clips, tok, work, versions):
    """tiny-t.tar.xz + data-t.tar.xz (top folder data-t/): the trained checkpoint and the
    same records as make_q (speech clip; 3 tasks x base/chat; logits of the last 3 positions
    for ids [0, Q_DISTINCT_ROWS) and [151600, V))."""
    rec = Records(os.path.join(work, "data-t"))
    rec.meta("versions", versions)
    rec.meta("tasks", {t: {"base": AUDIO_SLOT + b, "chat": chat_prompt(q)}
                       for t, (b, q) in TASKS.items()})
    rec.meta("logits_layout", {"positions": "last 3", "lo": [0, Q_DISTINCT_ROWS],
                               "hi_from": LOGIT_TAIL_FROM,
                               "note": "embed/lm_head rows of ids outside 0..255 and "
                                       "151643..151648 are all equal (one trained row)"})
    for ck, spec in T_CHECKPOINTS.items():
        ckdir = os.path.join(work, ck)
        info = {}
        init = functools.partial(init_weights_t, proc=make_processor(tok), info=info)
        model, proc = build_checkpoint(ck, spec, ckdir, tok, init=init)
        rec.meta(ck + "/config", {"audio": spec["audio"], "text": spec["text"],
                                  "dtype": str(spec["dtype"]), "sharded": spec["sharded"],
                                  "training": {"corpus": T_CORPUS,
                                               "files": info.get("corpus_files"),
                                               "seq": T_SEQ, "batch": T_BATCH,
                                               "steps": T_STEPS, "lr": T_LR,
                                               "seed": spec["seed"]},
                                  "live_ids": "0..255 and 151643..151648"})
        record_prompts(rec, ck, model, proc, clips, show_top1=True)
        tar_xz(ckdir, os.path.join(HERE, ck + ".tar.xz"), ck)
        print("checkpoint", ck, os.path.getsize(os.path.join(HERE, ck + ".tar.xz")), "bytes")
    rec.save()
    tar_xz(rec.root, os.path.join(HERE, "data-t.tar.xz"), "data-t")
    print("records", os.path.getsize(os.path.join(HERE, "data-t.tar.xz")), "bytes")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--remake-clips", action="store_true")
    ap.add_argument("--keep", help="also leave the unpacked checkpoints and records here")
    ap.add_argument("--only-q", action="store_true",
                    help="only (re)make tiny-q.tar.xz and data-q.tar.xz")
    ap.add_argument("--only-t", action="store_true",
                    help="only (re)make tiny-t.tar.xz and data-t.tar.xz (trains, ~5 min)")
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    transformers.logging.set_verbosity_error()  # the stand-in vocab's id gap is intended
    clipdir = os.path.join(HERE, "clips")
    if args.remake_clips or not all(os.path.exists(os.path.join(clipdir, c + ".flac"))
                                    for c in CLIPS):
        make_clips(clipdir)
    clips = {c: read_clip(os.path.join(clipdir, c + ".flac")) for c in CLIPS}
    tok = make_tokenizer()
    work = args.keep or tempfile.mkdtemp(prefix="golden-")
    versions = {"torch": torch.__version__, "transformers": transformers.__version__,
                "numpy": np.__version__}
    if args.only_t:
        make_t(clips, tok, work, versions)
        if not args.keep:
            shutil.rmtree(work)
        return 0
    make_q(clips, tok, work, versions)
    if args.only_q:
        if not args.keep:
            shutil.rmtree(work)
        return 0
    make_t(clips, tok, work, versions)
    rec = Records(os.path.join(work, "data"))
    rec.meta("versions", versions)
    rec.meta("clips", {c: {"made_by": CLIPS[c], "n_samples": int(len(w))}
                       for c, w in clips.items()})
    rec.meta("tasks", {t: {"base": AUDIO_SLOT + b, "chat": chat_prompt(q)}
                       for t, (b, q) in TASKS.items()})
    rec.meta("logits_layout", {"positions": "last 3", "lo": [0, DISTINCT_ROWS],
                               "hi_from": LOGIT_TAIL_FROM,
                               "note": "embed/lm_head row i equals row i %% %d except the "
                                       "special ids 151643..151648" % DISTINCT_ROWS})
    for ck, spec in CHECKPOINTS.items():
        ckdir = os.path.join(work, ck)
        model, proc = build_checkpoint(ck, spec, ckdir, tok)
        rec.meta(ck + "/config", {"audio": spec["audio"], "text": spec["text"],
                                  "dtype": str(spec["dtype"]), "sharded": spec["sharded"]})
        for c, wav in clips.items():
            if c == "long":
                for i, s in enumerate(range(0, len(wav), 30 * RATE)):
                    part = wav[s:s + 30 * RATE]
                    inp, caught, _ = run_model(model, proc, part, AUDIO_SLOT)
                    record_audio(rec, "%s/long/chunk%d" % (ck, i), "long/chunk%d" % i, inp, caught,
                                 len(part))
                continue
            inp, caught, logits = run_model(model, proc, wav, AUDIO_SLOT + TASKS["caption"][0])
            record_audio(rec, "%s/%s" % (ck, c), c, inp, caught, len(wav))
            if c == "blip":
                continue
            for t, (base, q) in TASKS.items():
                for form, prompt in (("base", AUDIO_SLOT + base), ("chat", chat_prompt(q))):
                    key = "%s/%s/%s/%s" % (ck, c, t, form)
                    inp, caught, logits = run_model(model, proc, wav, prompt)
                    record_logits(rec, key, inp, logits, c == "speech")
                    if c == "speech":
                        record_generate(rec, key, model, inp)
        tar_xz(ckdir, os.path.join(HERE, ck + ".tar.xz"), ck)
        print("checkpoint", ck, os.path.getsize(os.path.join(HERE, ck + ".tar.xz")), "bytes")
    rec.save()
    tar_xz(rec.root, os.path.join(HERE, "data.tar.xz"), "data")
    print("records", os.path.getsize(os.path.join(HERE, "data.tar.xz")), "bytes")
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    sys.exit(main())
