#!/usr/bin/env bash
# tests/fuzz/run.sh - builds each libFuzzer target with clang and runs it for a bounded time.
#   tests/fuzz/run.sh [seconds per target (default 20)] [target ...]
# Targets: fuzz_safetensors fuzz_qa_config fuzz_tokenizer fuzz_wire fuzz_gguf fuzz_redis_url
# fuzz_results fuzz_ct2
# (the default: all).
# A new target adds its sources to srcs() below and its name to the default list.
# Binaries and corpora go to build-fuzz/ (git-ignored). Exit status: non-zero if a target
# fails to build or finds a crash.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-20}
shift || true
OUT=build-fuzz
mkdir -p "$OUT"
CFLAGS="-g -O1 -std=c11 -D_GNU_SOURCE -I. -I$OUT/gen -fsanitize=fuzzer,address,undefined"

# Sources (besides the target) and libraries for each target.
# GGUF reader + earmark's GGUF keys (config, tokenizer); em_ckpt_open reads .gguf files too.
GGUF_SRCS="model/loader/gguf.c model/loader/mapfile.c model/loader/gguf_write.c model/loader/ckpt_gguf.c model/kernels/quant.c model/text/tokenizer.c model/text/tokenizer_load.c model/text/pretok.c model/text/unicode_tables.c"
srcs() {
  case "$1" in
    fuzz_safetensors) echo "model/loader/safetensors.c model/loader/tensor.c model/loader/tensors.c model/qwen2audio/config.c $GGUF_SRCS common/err.c -ljansson -lutf8proc -lpthread" ;;
    fuzz_gguf) echo "$GGUF_SRCS model/qwen2audio/config.c model/loader/tensor.c common/err.c -ljansson -lutf8proc -lpthread" ;;
    fuzz_qa_config) echo "model/qwen2audio/config.c common/err.c -ljansson" ;;
    fuzz_tokenizer) echo "model/text/tokenizer.c model/text/tokenizer_load.c model/text/pretok.c model/text/unicode_tables.c common/err.c -ljansson -lutf8proc -lpthread" ;;
    fuzz_wire) echo "proto/wire.c $OUT/gen/proto/earmark.pb-c.c common/err.c -lprotobuf-c" ;;
    fuzz_redis_url) echo "coordinator/redis_url.c common/err.c" ;;
    fuzz_results) echo "results/textnorm.c results/wer.c results/evtags.c common/err.c -lutf8proc" ;;
    fuzz_ct2) echo "model/loader/ct2.c model/loader/mapfile.c model/loader/tensor.c model/kernels/quant.c common/err.c" ;;
    *) echo "unknown target $1" >&2; return 1 ;;
  esac
}

targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(fuzz_safetensors fuzz_qa_config fuzz_tokenizer fuzz_wire fuzz_gguf fuzz_redis_url
                                      fuzz_results fuzz_ct2)
status=0
for t in "${targets[@]}"; do
  [ -f "tests/fuzz/$t.c" ] || { echo "fuzz: no tests/fuzz/$t.c, skipped"; continue; }
  if [ "$t" = fuzz_wire ] && [ ! -f "$OUT/gen/proto/earmark.pb-c.c" ]; then
    mkdir -p "$OUT/gen" && protoc-c --c_out="$OUT/gen" proto/earmark.proto
  fi
  # shellcheck disable=SC2046
  clang $CFLAGS -o "$OUT/$t" "tests/fuzz/$t.c" $(srcs "$t") || { status=1; continue; }
  mkdir -p "$OUT/corpus-$t"
  extra=()
  if [ "$t" = fuzz_qa_config ]; then
    extra=(-dict=tests/fuzz/model.dict)
    printf '%s' '{"model_type":"qwen2_audio","text_config":{"hidden_size":48,"num_attention_heads":3,"num_key_value_heads":1},"audio_config":{"d_model":60,"encoder_attention_heads":3},"eos_token_id":[1,2]}' \
      >"$OUT/corpus-$t/seed-valid"
  fi
  if [ "$t" = fuzz_safetensors ]; then
    extra=(-dict=tests/fuzz/model.dict)
    # seed: a valid two-tensor file (header length 128, then 16 data bytes)
    h='{"a":{"dtype":"F32","shape":[2,1],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[4],"data_offsets":[8,16]}}'
    h=$(printf '%-128s' "$h")
    { printf '\x80\x00\x00\x00\x00\x00\x00\x00'; printf '%s' "$h"; printf '0123456789abcdef'; } \
      >"$OUT/corpus-$t/seed-valid"
  fi
  if [ "$t" = fuzz_gguf ]; then
    # seed: GGUF v3, general.alignment = 32 (u32), one F32 tensor "a" of 2 values at offset 0
    python3 -c 'import struct,sys
s=lambda b: struct.pack("<Q",len(b))+b
h=b"GGUF"+struct.pack("<IQQ",3,1,1)+s(b"general.alignment")+struct.pack("<II",4,32)
h+=s(b"a")+struct.pack("<IQIQ",1,2,0,0)
h+=bytes(-len(h)%32)+struct.pack("<2f",1.5,-2.0)
sys.stdout.buffer.write(h)' >"$OUT/corpus-$t/seed-valid"
    # seed: earmark's keys (ckpt_gguf.c): a config and a gpt2 tokenizer (256 byte tokens, a special, one merge), no tensors
    python3 -c 'import struct,sys
s=lambda b: struct.pack("<Q",len(b))+b
kv=lambda k,t,v: s(k)+struct.pack("<I",t)+v
keep=[b for b in range(256) if 0x21<=b<=0x7e or 0xa1<=b<=0xac or b>=0xae]
m={b:(chr(b) if b in keep else chr(256+[c for c in range(256) if c not in keep].index(b))) for b in range(256)}
toks=b"".join(s(m[b].encode()) for b in range(256))+s(b"<|e|>")+s(m[32].encode()+b"t")
ps=[kv(b"general.architecture",8,s(b"qwen2audio")),kv(b"qwen2audio.text.hidden_size",4,struct.pack("<I",48)),
 kv(b"qwen2audio.text.num_attention_heads",4,struct.pack("<I",3)),kv(b"qwen2audio.text.vocab_size",4,struct.pack("<I",151680)),
 kv(b"qwen2audio.gen.eos_token_id",9,struct.pack("<IQ",5,2)+struct.pack("<2i",151645,151643)),
 kv(b"tokenizer.ggml.model",8,s(b"gpt2")),kv(b"tokenizer.ggml.tokens",9,struct.pack("<IQ",8,258)+toks),
 kv(b"tokenizer.ggml.token_type",9,struct.pack("<IQ",5,258)+struct.pack("<258i",*([1]*256+[3,1]))),
 kv(b"tokenizer.ggml.merges",9,struct.pack("<IQ",8,1)+s(m[32].encode()+b" t"))]
sys.stdout.buffer.write(b"GGUF"+struct.pack("<IQQ",3,0,len(ps))+b"".join(ps))' >"$OUT/corpus-$t/seed-keys"
  fi
  if [ "$t" = fuzz_ct2 ]; then
    # seed: version 6, spec "S" rev 1, an f32 [2] "w", an int16 scalar "n", alias "p" -> "w"
    python3 -c 'import struct,sys
s=lambda b: struct.pack("<H",len(b)+1)+b+b"\0"
h=struct.pack("<I",6)+s(b"S")+struct.pack("<II",1,2)
h+=s(b"w")+struct.pack("<BIBI",1,2,0,8)+struct.pack("<2f",1.5,-2.0)
h+=s(b"n")+struct.pack("<BBIh",0,2,2,6)
h+=struct.pack("<I",1)+s(b"p")+s(b"w")
sys.stdout.buffer.write(h)' >"$OUT/corpus-$t/seed-valid"
  fi
  echo "fuzz: $t for ${SECS}s"
  "$OUT/$t" "${extra[@]}" -max_total_time="$SECS" -max_len=4096 -print_final_stats=1 "$OUT/corpus-$t" \
    >"$OUT/$t.log" 2>&1 || { status=1; tail -40 "$OUT/$t.log"; }
  grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "$OUT/$t.log" || true
done
exit $status
