# earmark - one binary, `earmark`, plus the CUnit runner.
#   make            build build/earmark
#   make test       unit + integration suites (SAN=1: ASan+UBSan)
#   make demo       the main job end to end on the embedded default
#   make bench      benchmarks (no assertions)
#   make deps       install every Debian and PyPI package (deploy/install-deps.sh)
# Development: make check ONLY="storage" TESTS="tests/unit/test_storage*.c" builds a runner
# from common/ + the listed dirs + the listed test files only.

# Parallel by default (one job per core, set once at the top level so sub-makes share its
# jobserver); an explicit -jN on the command line wins.
ifeq ($(MAKELEVEL)$(filter -j%,$(MAKEFLAGS)),0)
MAKEFLAGS += -j$(shell nproc 2>/dev/null || echo 2)
endif

BUILD   ?= build
SAN     ?= 0
CC      ?= cc
VERSION := 0.1.0

PKGS    := libzmq libprotobuf-c hiredis jansson libavformat libavcodec libswresample libavutil \
           libcurl openblas libcrypto libutf8proc libmicrohttpd libssl sqlite3 zlib
CPPFLAGS += -I. -I$(BUILD)/gen -D_GNU_SOURCE -DEM_VERSION='"$(VERSION)"' \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -MMD -MP -pthread
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm -pthread
ifeq ($(SAN),1)
CFLAGS  += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -O1
LDFLAGS += -fsanitize=address,undefined
override BUILD := $(BUILD)-san
endif
# CUDA=1: the same binary with the cuda backend (model/kernels/cuda/*.cu through nvcc, cuBLAS)
# in place of model/kernels/cuda_stub.c, built in $(BUILD)-cuda. `make cuda-check` is that
# build, and fails when nvcc is missing.
CUDA    ?= 0
NVCC    ?= $(or $(shell command -v nvcc 2>/dev/null),/usr/local/cuda/bin/nvcc)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_ARCH ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=[sm_90,compute_90]
NVCCFLAGS ?= -O2 -g -std=c++17 $(CUDA_ARCH) -Werror all-warnings -Xcompiler -Wall,-Wextra,-Werror
ifeq ($(CUDA),1)
override BUILD := $(BUILD)-cuda
LDLIBS  += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart -lstdc++
endif

# Source folders of the library; each folder's *.c is compiled (main.c is the program).
DIRS    ?= common proto storage model model/audio model/text model/qwen2audio model/gen model/tools \
           model/loader model/kernels model/kernels/cpu model/whisper worker coordinator \
           results
ifdef ONLY
DIRS    := common proto $(ONLY)
endif
LIB_SRC := $(filter-out common/main.c,$(foreach d,$(DIRS),$(wildcard $(d)/*.c)))
GEN_SRC := $(BUILD)/gen/proto/earmark.pb-c.c
GEN_HDR := $(BUILD)/gen/proto/earmark.pb-c.h
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o) $(GEN_SRC:.c=.o)

ifeq ($(CUDA),1)
CU_SRC  := $(wildcard model/kernels/cuda/*.cu)
LIB_OBJ := $(filter-out $(BUILD)/model/kernels/cuda_stub.o,$(LIB_OBJ)) $(CU_SRC:%.cu=$(BUILD)/%.o)
endif

TESTS   ?= $(wildcard tests/unit/*.c tests/integration/*.c)
TEST_SRC := tests/main.c $(wildcard tests/helpers/*.c) $(TESTS)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)

BIN     := $(BUILD)/earmark
RUNNER  := $(BUILD)/earmark-tests

.PHONY: all test run-tests check unit demo bench deps clean format-check fuzz
all: $(BIN)

$(BIN): $(BUILD)/common/main.o $(LIB_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(RUNNER): $(TEST_OBJ) $(LIB_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcunit

$(GEN_SRC) $(GEN_HDR): proto/earmark.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --c_out=$(BUILD)/gen $<

# The suite list is generated from the test files, so adding a suite is adding a file.
$(BUILD)/gen/suites.h: $(TESTS) $(BUILD)/.tests Makefile
	@mkdir -p $(dir $@)
	@grep -ho 'const CU_SuiteInfo suite_[a-z0-9_]*' $(TESTS) /dev/null | \
	  sed 's/const CU_SuiteInfo \(.*\)/EM_SUITE(\1)/' > $@.tmp && mv $@.tmp $@

$(BUILD)/tests/main.o: $(BUILD)/gen/suites.h

$(BUILD)/%.o: %.c $(BUILD)/.flags | $(GEN_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

# SIMD kernels: a file named *_avx2.c or *_avx512.c is compiled for that ISA and only
# called after a run-time CPUID check (model/kernels/cpu/cpufeat.c).
$(BUILD)/%_avx2.o: CFLAGS += -mavx2 -mfma -mf16c
$(BUILD)/%_avx512.o: CFLAGS += -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq \
                               -mavx512vnni -mavx512bf16

$(BUILD)/%.o: %.cu $(BUILD)/.flags
	@mkdir -p $(dir $@)
	$(NVCC) -I. $(NVCCFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/gen/%.o: $(BUILD)/gen/%.c
	$(CC) $(CPPFLAGS) $(filter-out -Wshadow -Wstrict-prototypes,$(CFLAGS)) -c -o $@ $<

# Rebuild everything when the flags change (e.g. SAN=1 vs not).
$(BUILD)/.flags: FORCE
	@mkdir -p $(BUILD)
	@echo '$(CC) $(CPPFLAGS) $(CFLAGS)' | cmp -s - $@ || echo '$(CC) $(CPPFLAGS) $(CFLAGS)' > $@
$(BUILD)/.tests: FORCE
	@mkdir -p $(BUILD)
	@echo '$(TESTS)' | cmp -s - $@ || echo '$(TESTS)' > $@
FORCE:

# Integration suites find the binary and the tree through these.
export EM_TEST_BIN = $(abspath $(BIN))
export EM_TEST_ROOT = $(abspath .)

# `test` and `demo` first make sure every package is there (idempotent, seconds when it is).
test: deps
	@$(MAKE) --no-print-directory run-tests

run-tests: $(BIN) $(RUNNER)
	$(RUNNER)

check: $(RUNNER)
	$(RUNNER)

unit: $(BIN) $(RUNNER)
	EM_TEST_ONLY_UNIT=1 $(RUNNER)

demo: deps
	@$(MAKE) --no-print-directory $(BIN)
	deploy/demo.sh $(BIN)

bench: $(BIN)
	deploy/bench-dispatch.sh $(BIN)
	$(BIN) bench model
	python3 tests/golden/whisper/measure.py --bin $(BIN)
	python3 tests/bench/whisper.py --bin $(BIN)

deps:
	deploy/install-deps.sh

# Every .cu file through nvcc -Werror and a linked CUDA=1 earmark (no GPU needed).
.PHONY: cuda-check
cuda-check:
	@test -x '$(NVCC)' || { echo "cuda-check: nvcc not found (tried $(NVCC)); install the CUDA toolkit or set NVCC=" >&2; exit 1; }
	@$(MAKE) --no-print-directory CUDA=1 build-cuda/earmark

# libFuzzer targets (clang), each run for FUZZ_SECONDS.
FUZZ_SECONDS ?= 20
fuzz:
	tests/fuzz/run.sh $(FUZZ_SECONDS)

format-check:
	clang-format --dry-run --Werror $(shell git ls-files '*.c' '*.h')

clean:
	rm -rf build build-san build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# make install [PREFIX=/usr/local] [DESTDIR=] [SYSCONFDIR=/etc] [SYSTEMDUNITDIR=...]:
# binary, man pages from --help, schema, systemd units, env example (deploy/install.sh).
PREFIX  ?= /usr/local
SYSCONFDIR ?= /etc
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
.PHONY: install uninstall
install: $(BIN)
	DESTDIR='$(DESTDIR)' PREFIX='$(PREFIX)' SYSCONFDIR='$(SYSCONFDIR)' \
	  SYSTEMDUNITDIR='$(SYSTEMDUNITDIR)' deploy/install.sh install $(BIN)
uninstall:
	DESTDIR='$(DESTDIR)' PREFIX='$(PREFIX)' SYSCONFDIR='$(SYSCONFDIR)' \
	  SYSTEMDUNITDIR='$(SYSTEMDUNITDIR)' deploy/install.sh uninstall
