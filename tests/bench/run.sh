#!/bin/sh
# tests/bench/run.sh - builds tests/bench/bench_kernels.c with the kernels (each *_avx2.c and
# *_avx512.c with its ISA flags, as the Makefile does) into ${BUILD:-build-bench} and runs it.
# Arguments go to the benchmark: -t threads, -s seconds per case, -m decode|gemm|all,
# -r rounds per gemm variant.
set -eu
cd "$(dirname "$0")/../.."
B=${BUILD:-build-bench}/bench
mkdir -p "$B"
CC=${CC:-cc}
CF="-O2 -g -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -I. -pthread $(pkg-config --cflags openblas)"
AVX2="-mavx2 -mfma -mf16c"
AVX512="$AVX2 -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16"
K=model/kernels/cpu
$CC $CF -c model/kernels/quant.c -o "$B/quant.o"
for f in cpufeat membw qdot_generic qmatmul igemm; do $CC $CF -c "$K/$f.c" -o "$B/$f.o"; done
$CC $CF $AVX2 -c "$K/qdot_avx2.c" -o "$B/qdot_avx2.o"
$CC $CF $AVX512 -c "$K/qdot_avx512.c" -o "$B/qdot_avx512.o"
$CC $CF $AVX512 -c "$K/igemm_avx512.c" -o "$B/igemm_avx512.o"
$CC $CF -c tests/bench/bench_kernels.c -o "$B/bench_kernels.o"
$CC -pthread -o "$B/bench_kernels" "$B"/*.o $(pkg-config --libs openblas) -lm
exec "$B/bench_kernels" "$@"
