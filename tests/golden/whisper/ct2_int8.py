#!/usr/bin/env python3
"""tests/golden/whisper/ct2_int8.py CT2_DIR OUT_DIR - rewrites a CTranslate2 Whisper model
(model.bin, config.json, tokenizer.json, vocabulary.txt) as ct2-transformers-converter
--quantization int8 writes it: the variables go into ctranslate2's own WhisperSpec and its
optimize("int8") quantizes them (int8 weights + float32 per-row "<name>_scale"), then save()
writes model.bin. config.json and the tokenizer files are copied. Used by the whisper_q8
suite (ctranslate2 from deploy/install-deps.sh)."""
import os
import shutil
import sys

from ctranslate2.specs import model_spec, whisper_spec

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ct2_to_hf import read_ct2  # noqa: E402


def main():
    src, dst = sys.argv[1], sys.argv[2]
    v = read_ct2(os.path.join(src, "model.bin"))
    enc = sum(1 for k in v if k.startswith("encoder/layer_") and k.endswith("ffn/linear_0/weight"))
    dec = sum(1 for k in v if k.startswith("decoder/layer_") and k.endswith("ffn/linear_0/weight"))
    spec = whisper_spec.WhisperSpec(enc, int(v["encoder/num_heads"]), dec, int(v["decoder/num_heads"]))
    v["decoder/projection/weight"] = v["decoder/embeddings/weight"]  # an alias in the file
    for name, a in v.items():
        scope, attr = name.rsplit("/", 1)
        layer = model_spec.index_spec(spec, scope)
        if a.ndim == 0:
            a = a.dtype.type(a)
        setattr(layer, attr, a)
    vocab = [l.rstrip("\n") for l in open(os.path.join(src, "vocabulary.txt"), encoding="utf-8")]
    spec.register_vocabulary(vocab)
    spec.validate()
    spec.optimize(quantization="int8")
    os.makedirs(dst, exist_ok=True)
    spec._serialize(os.path.join(dst, "model.bin"))
    for f in ("config.json", "tokenizer.json", "vocabulary.txt"):
        if os.path.exists(os.path.join(src, f)):
            shutil.copy(os.path.join(src, f), os.path.join(dst, f))


if __name__ == "__main__":
    main()
