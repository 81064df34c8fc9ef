#!/usr/bin/env bash
# tests/gpu/run.sh OUTDIR - everything a machine with an NVIDIA GPU checks, in one call:
#   1. make CUDA=1 (earmark and the test runner in build-cuda/, nvcc -Werror)
#   2. the backend conformance suites (backend_cpu, backend_cuda) and the model suites on
#      the CUDA build: every primitive and the whole model on the GPU against the CPU f32
#      reference and the golden checkpoints
#   3. the GPU bench: earmark bench model --device cuda (bf16, 7B shapes: encoder and prefill
#      TFLOPS, decode-step bandwidth at batch 64, clips/s, each against the card's peaks)
# Writes OUTDIR/report.md (and the raw logs beside it). Exit status: 0 when the build and
# every suite passed and backend_cuda ran (not skipped), else 1. Well under 10 minutes on an
# H100 with 16 cores (the build is most of it). Needs nvcc (PATH or /usr/local/cuda/bin) and
# the packages of deploy/install-deps.sh.
set -uo pipefail
out=${1:?usage: tests/gpu/run.sh OUTDIR}
cd "$(dirname "$0")/../.."
mkdir -p "$out"
out=$(cd "$out" && pwd)
report=$out/report.md
export PATH=$PATH:/usr/local/cuda/bin
jobs=$(nproc 2>/dev/null || echo 4)
status=0
step() { echo "== $*" | tee -a "$out/steps.log"; }

{
  echo "# earmark GPU check"
  echo
  echo "- date: $(date -u +%FT%TZ)"
  echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo "- gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo 'nvidia-smi not found')"
  echo "- nvcc: $(nvcc --version 2>/dev/null | tail -1 || echo 'not found')"
  echo
} > "$report"

step "build (make CUDA=1)"
t0=$(date +%s)
if make -j"$jobs" CUDA=1 build-cuda/earmark build-cuda/earmark-tests > "$out/build.log" 2>&1; then
  echo "- build: ok ($(( $(date +%s) - t0 )) s)" >> "$report"
else
  echo "- build: FAILED (build.log)" >> "$report"
  tail -30 "$out/build.log"
  exit 1
fi

step "suites"
export EM_TEST_BIN=$PWD/build-cuda/earmark EM_TEST_ROOT=$PWD
suites=backend_cpu,backend_cuda,backend_staged,encoder,decoder,engine,kvpool,attn,matmul,model
t0=$(date +%s)
EM_TEST_SUITE=$suites timeout 420 build-cuda/earmark-tests > "$out/suites.log" 2>&1
rc=$?
echo "- suites ($suites): exit $rc ($(( $(date +%s) - t0 )) s)" >> "$report"
[ "$rc" = 0 ] || status=1
if grep -q "backend_cuda: skipped" "$out/suites.log"; then
  echo "- backend_cuda: SKIPPED: $(grep -m1 'backend_cuda: skipped' "$out/suites.log")" >> "$report"
  status=1
else
  echo "- backend_cuda: ran" >> "$report"
fi
{
  echo
  echo '```'
  grep -E "Suite: backend_cuda" -A300 "$out/suites.log" |
    grep -E "Test:|rel |greedy|skipped|FAIL|last CUDA error" | head -150
  echo
  grep -A4 "Run Summary" "$out/suites.log"
  echo '```'
} >> "$report"

step "bench (earmark bench model --device cuda)"
t0=$(date +%s)
if timeout 240 build-cuda/earmark bench model --device cuda > "$out/bench.log" 2>&1; then
  echo >> "$report"
  echo "## GPU bench ($(( $(date +%s) - t0 )) s)" >> "$report"
  { echo '```'; cat "$out/bench.log"; echo '```'; } >> "$report"
else
  echo "- bench: FAILED (bench.log): $(tail -1 "$out/bench.log")" >> "$report"
  status=1
fi

echo "- overall: $([ $status = 0 ] && echo ok || echo FAILED)" >> "$report"
cat "$report"
exit $status
