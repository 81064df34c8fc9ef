#!/usr/bin/env python3
"""tests/golden/tok/make_tiny.py - writes the tiny byte-level BPE fixture of the "tokenizer"
and "prompt" suites and its reference ids.

Run by hand (needs `pip install transformers tokenizers`) from the repository root:
    python3 tests/golden/tok/make_tiny.py
Writes tests/golden/tok/tiny/{vocab.json,merges.txt,tokenizer_config.json,expected.json}
and tests/golden/tok/tiny-json/tokenizer.json (the same tokenizer saved by HF tokenizers,
which exercises the tokenizer.json reader)."""
import json
import os

from transformers import AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = os.path.join(HERE, "tiny")
TINY_JSON = os.path.join(HERE, "tiny-json")


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


MERGES = [
    ("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a"), ("e", "r"), ("Ġa", "n"),
    ("Ġan", "d"), ("o", "n"), ("Ġ", "o"), ("Ġo", "n"), ("l", "l"), ("e", "l"), ("h", "el"),
    ("hel", "l"), ("hell", "o"), ("a", "a"), ("aa", "a"), ("Ġ", "Ġ"), ("ĠĠ", "ĠĠ"), ("Ċ", "Ċ"),
    ("1", "2"), ("Ġ", "h"), ("e", "ll"), ("Ġh", "ell"), ("Ġhell", "o"), ("ä", "¸"), ("Ã", "©"),
]
ADDED = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"]
TEXTS = [
    "the hello and on", "hello hello  hello", "aaaa aaaaa a", "12 123 1212", "héllo 中文",
    "<|im_start|>user\nhi<|im_end|>\n", "<|audio_bos|><|AUDIO|><|AUDIO|><|audio_eos|>in the",
    "  \n\n  x\n", "It's 'RE 'll", "",
]


def main():
    b2u = bytes_to_unicode()
    vocab = {}
    for b in sorted(b2u, key=lambda b: ord(b2u[b])):
        vocab[b2u[b]] = len(vocab)
    for a, b in MERGES:
        assert a in vocab and b in vocab, (a, b)
        vocab.setdefault(a + b, len(vocab))
    os.makedirs(TINY, exist_ok=True)
    os.makedirs(TINY_JSON, exist_ok=True)
    with open(os.path.join(TINY, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(TINY, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in MERGES:
            f.write("%s %s\n" % (a, b))
    dec = {str(len(vocab) + i): {"content": t, "special": True} for i, t in enumerate(ADDED)}
    with open(os.path.join(TINY, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "Qwen2Tokenizer", "added_tokens_decoder": dec}, f, indent=1)
    tok = AutoTokenizer.from_pretrained(TINY)
    tok.backend_tokenizer.save(os.path.join(TINY_JSON, "tokenizer.json"))
    exp = [{"text": t, "ids": tok.encode(t, add_special_tokens=False)} for t in TEXTS]
    with open(os.path.join(TINY, "expected.json"), "w") as f:
        f.write("[\n" + ",\n".join(json.dumps(e) for e in exp) + "\n]\n")


if __name__ == "__main__":
    main()
