#!/usr/bin/env python3
"""tests/results/jiwer-pairs.py OUT N [SEED]: N generated (reference, hypothesis) pairs and
what jiwer (PyPI) computes for them, one JSON line each:
  {"ref", "hyp", "word_errors", "ref_words", "char_errors", "ref_chars"}
and a last line {"corpus_wer", "corpus_cer"} over all pairs. test_results_wer computes the
same with results/wer.c and compares. Words come from a small vocabulary (so substitutions
and matches both happen), with some UTF-8 letters; lengths 0..30 words on each side."""
import json, random, sys

import jiwer

VOCAB = ["a", "the", "dog", "dogs", "barks", "car", "horn", "rain", "café", "naïve", "über",
         "x", "yy", "zzz", "twelve", "12", "ship", "sails", "at", "dawn", "日本", "ok"]

def words(r, n):
    return [r.choice(VOCAB) for _ in range(n)]

def main():
    out, n = sys.argv[1], int(sys.argv[2])
    r = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 11)
    refs, hyps = [], []
    with open(out, "w") as f:
        for i in range(n):
            ref = words(r, r.randint(1, 30))
            mode = i % 4
            if mode == 0:   # unrelated hypothesis, any length (also empty)
                hyp = words(r, r.randint(0, 30))
            else:           # edits of the reference
                hyp = []
                for w in ref:
                    x = r.random()
                    if x < 0.15: continue
                    hyp.append(r.choice(VOCAB) if x < 0.3 else w)
                    if r.random() < 0.1: hyp.append(r.choice(VOCAB))
            rs, hs = " ".join(ref), " ".join(hyp)
            refs.append(rs); hyps.append(hs)
            w = jiwer.process_words(rs, hs)
            c = jiwer.process_characters(rs, hs)
            f.write(json.dumps({"ref": rs, "hyp": hs,
                                "word_errors": w.substitutions + w.deletions + w.insertions,
                                "ref_words": w.substitutions + w.deletions + w.hits,
                                "char_errors": c.substitutions + c.deletions + c.insertions,
                                "ref_chars": c.substitutions + c.deletions + c.hits},
                               ensure_ascii=False) + "\n")
        f.write(json.dumps({"corpus_wer": jiwer.wer(refs, hyps), "corpus_cer": jiwer.cer(refs, hyps)}) + "\n")

main()
