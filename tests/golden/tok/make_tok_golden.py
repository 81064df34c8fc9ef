#!/usr/bin/env python3
"""tests/golden/tok/make_tok_golden.py - records reference token ids for the "tokenizer" suite.

Run by hand (needs `pip install transformers tokenizers`):
    deploy/fetch-qwen2-vocab.sh /tmp/qwen2-vocab
    python3 tests/golden/tok/make_tok_golden.py /tmp/qwen2-vocab > tests/golden/tok/qwen2_golden.json

The reference is transformers' Qwen2TokenizerFast (HF tokenizers) built from the real Qwen2
vocab.json + merges.txt with the Qwen2-Audio added tokens; the slow Qwen2Tokenizer must agree
on every sample. For each sample we record the ids and HF's decode (skip_special_tokens False
and True)."""
import json
import random
import sys

from transformers import AutoTokenizer, Qwen2Tokenizer

SAMPLES = [
    "You are a helpful assistant.",
    "system", "\n", "user", "assistant", "Audio 1: ", "What's that sound?",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
    "Audio 1: <|audio_bos|><|AUDIO|><|AUDIO|><|AUDIO|><|audio_eos|>\nWhat's that sound?<|im_end|>\n"
    "<|im_start|>assistant\n",
    "<|audio_bos|><|AUDIO|><|audio_eos|>Generate the caption in English:",
    "<|audio_bos|><|AUDIO|><|audio_eos|>Detect the language and recognize the speech: <|en|>",
    "<|AUDIO|<|AUDIO|>|><|endoftext|><|im_end",
    "The quick brown fox jumps over the lazy dog. THE END!!! (really?)",
    "I'm sure they'll say we've done it, you'd think; it's HE'S, I'LL, WE'RE, 'ſ 'Ss 'x 're",
    "Numbers: 0 12 345 6789 3.14159 -42 1e10 1,000,000 ١٢٣ ⅻ ½ ²",
    "中文测试：你好，世界！今天天气很好。我们去公园吧。",
    "日本語のテキストとカタカナ、ひらがな。한국어 문장입니다.",
    "Ελληνικά, русский текст, עברית, العربية, हिन्दी, ไทย",
    "Emoji: 😀 👍🏽 👨‍👩‍👧‍👦 🇩🇪 ❤️ ✨",
    "def f(x):\n    return x**2  # square\n\n\tif x > 0:\n\t\tprint(f\"{x}\")\r\n",
    "int main(void) { int a[3] = {1, 2, 3}; return a[0] + a[2]; } // C\n",
    "   leading spaces", "trailing spaces   ", "a  b   c    d", "   ", " ", "\n\n\n", "\r\n\r\n",
    "x \n y", "x  \n\n  y", "\t\tx", " \t \n", "end with newline\n", "tabs\tand\x0bvt\x0cff",
    "nbsp\u00a0here\u3000ideographic\u2003em\u200bzwsp\x1cfs\x1dgs\x85nel",
    "combining: e\u0301 A\u030a n\u0303 \u1100\u1161\u11a8 Å",
    "Unicode 16 letters: x\u1c89y \U000105c0\U000105c1 a\ua7cbb, \U0001e5d0 end",
    "punct: ... --- !!! ??? ;;; ::: \"quoted\" 'single' `back` [x] {y} <z> @#$%^&*_+=|~",
    "mixed123abc456def 7x 8y z9 a1b2c3",
    "URL https://example.com/path?q=1&r=2#frag and email a.b@c.de",
    "long word: supercalifragilisticexpialidocious antidisestablishmentarianism",
    "".join(["ab"] * 300),
    " " * 50 + "x" + "\n" * 20 + "y",
    "Glass is breaking.", "It is the sound of glass breaking.", "cough and throat clearing.",
    "Mister Quiller is the apostle of the middle classes and we are glad to welcome his gospel.",
]


def random_text(seed, n):
    rnd = random.Random(seed)
    pools = [
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "0123456789", "      \t\n\r", ".,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`",
        "你好世界中文字符测试", "äöüßéèêçñ", "😀👍✨🎉", "αβγδεЖЗИЙ", "\u0301\u0308", "'s 're 'll ",
    ]
    out = []
    for _ in range(n):
        out.append(rnd.choice(rnd.choice(pools)))
    return "".join(out)


def main():
    d = sys.argv[1]
    fast = AutoTokenizer.from_pretrained(d)
    slow = Qwen2Tokenizer.from_pretrained(d)
    samples = SAMPLES + [random_text(s, 400) for s in range(8)]
    out = []
    for text in samples:
        ids = fast.encode(text, add_special_tokens=False)
        sids = slow.encode(text, add_special_tokens=False)
        if ids != sids:
            print("slow/fast differ on %r" % text, file=sys.stderr)
            sys.exit(1)
        out.append({
            "text": text,
            "ids": ids,
            "decoded": fast.decode(ids, skip_special_tokens=False),
            "decoded_skip": fast.decode(ids, skip_special_tokens=True),
        })
    ref = "transformers %s Qwen2TokenizerFast" % __import__("transformers").__version__
    sys.stdout.write('{"reference": %s,\n "samples": [\n' % json.dumps(ref))
    sys.stdout.write(",\n".join("  " + json.dumps(o, ensure_ascii=True) for o in out))
    sys.stdout.write("\n ]}\n")


if __name__ == "__main__":
    main()
