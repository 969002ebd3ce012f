# milua: build, test, install, benchmarks. `make check` is what CI runs.
CC      ?= cc
BUILD   ?= build
OPT     ?= -O3
SAN     ?=
LUAINC  ?= /usr/include/lua5.4
# -Wno-psabi: GCC notes that passing 32-byte vectors by value changed ABI in GCC 4.6. The
# only such values are the static helpers of nn/core/fastmath.h, whose callers are always in
# the same translation unit and compiled by the same compiler, so no call crosses the two
# ABIs. (A #pragma in the header cannot silence it: GCC emits the note from the back end.)
CFLAGS  += $(OPT) $(DEFS) -g -std=gnu11 -fno-math-errno -Wall -Wextra -Wno-unused-parameter -Wno-psabi -fopenmp -Inn -I$(LUAINC) $(SAN)
LDLIBS  += -llua5.4 -lopenblas -ldnnl -lpng -lreadline -lm
LDFLAGS += -fopenmp $(SAN)
PREFIX  ?= /usr/local

NN_SRC   := $(wildcard nn/*/*.c)
BIND_SRC := $(wildcard bindings/*.c)
VM_SRC   := $(wildcard vm/*.c)
NN_OBJ   := $(NN_SRC:%.c=$(BUILD)/%.o)
BIND_OBJ := $(BIND_SRC:%.c=$(BUILD)/%.o)
VM_OBJ   := $(VM_SRC:%.c=$(BUILD)/%.o)
CTESTS   := $(patsubst tests/c/%.c,$(BUILD)/tests/%,$(wildcard tests/c/*.c))
DEPS     := liblua5.4-dev libopenblas-dev libdnnl-dev libpng-dev libreadline-dev perl python3-numpy parallel
# only for make bench: the PyTorch reference it times milua against
BENCH_DEPS := python3-torch
# only for make test-slurm: a single-node Slurm brought up by the test
SLURM_DEPS := slurm-wlm munge

.PHONY: all deps bench-deps slurm-deps check test test-asan test-slurm demo bench soak pin install clean fuzz fuzz-deps
all: milua milua-sweep

deps:
	@missing=""; for p in $(DEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

# replaced by rename, so that a running ./milua does not block the update
milua: $(BUILD)/milua
	cp $< $@.tmp && mv -f $@.tmp $@

# the sweep command: a launcher that runs the milua.sweep module with the milua beside it
milua-sweep: $(BUILD)/milua-sweep
	cp $< $@.tmp && mv -f $@.tmp $@

$(BUILD)/milua-sweep: vm/milua-sweep.sh
	@mkdir -p $(dir $@)
	install -m 755 $< $@

$(BUILD)/milua: $(VM_OBJ) $(BIND_OBJ) $(NN_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c $(wildcard nn/*/*.h bindings/*.h vm/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DMILUA_SRCDIR='"$(CURDIR)"' -c -o $@ $<

# single-GEMM throughput of each engine on given shapes (bench/gemm.c; make bench runs it)
$(BUILD)/bench-gemm: bench/gemm.c $(NN_OBJ)
	$(CC) $(CFLAGS) -o $@ $< $(NN_OBJ) $(LDFLAGS) $(LDLIBS)

$(BUILD)/tests/%: tests/c/%.c tests/c/tap.h $(wildcard tests/fuzz/*.c) $(NN_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(NN_OBJ) $(LDFLAGS) $(LDLIBS)

TESTS = $(wildcard tests/c/*.c) $(wildcard tests/lua/*.lua) $(wildcard tests/experiments/*.lua)

# one OpenBLAS/OpenMP thread per test: prove runs two tests at once on two cores
test: $(BUILD)/milua $(BUILD)/milua-sweep $(CTESTS)
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MILUA_BUILD=$(BUILD) prove -j2 -e 'sh tests/run' $(TESTS)

# allocator_may_return_null: a request larger than the sanitizer serves (a 2^40-element
# tensor) returns NULL as malloc does, so the core's out-of-memory errors are tested too
test-asan:
	$(MAKE) BUILD=build-asan OPT=-O1 SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  build-asan/milua build-asan/milua-sweep $(CTESTS:$(BUILD)/%=build-asan/%)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:allocator_may_return_null=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 MILUA_SANITIZED=1 \
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MILUA_BUILD=build-asan prove -j2 -e 'sh tests/run' $(TESTS)

check: deps
	$(MAKE) all
	$(MAKE) test-asan
	$(MAKE) test

# a single-node Slurm (munge, slurmctld, slurmd) configured in a temporary directory runs a small
# sweep as a job array; needs root, not part of check (tests/slurm/run says what it does)
slurm-deps:
	@missing=""; for p in $(SLURM_DEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

test-slurm: deps slurm-deps
	$(MAKE) all
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MILUA_BUILD=$(BUILD) prove -v -e 'sh tests/slurm/run' tests/slurm/sweep.lua

# the headline experiment: LEGO from random init, its accuracy by depth and its association heads
demo: deps
	$(MAKE) all
	./milua experiments/lego_assoc.lua --out out/lego_assoc

bench-deps:
	@missing=""; for p in $(BENCH_DEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

# the benchmark compares against a build with the hook points compiled out, and times each
# product of the models alone (bench-gemm); bench.lua sets each side's threads itself. Then the
# time budgets of the experiments' --quick runs and readouts (bench/experiments.lua)
bench: deps bench-deps all $(BUILD)/bench-gemm
	$(MAKE) BUILD=build-nohooks DEFS=-DMILUA_NO_HOOKS build-nohooks/milua
	OPENBLAS_NUM_THREADS=1 ./milua bench/bench.lua --gemm $(BUILD)/bench-gemm
	./milua bench/experiments.lua

# the experiment tests' pinned results (tests/experiments/pinned/), made anew from --quick runs
# at one thread: after a deliberate change of results, then read the diff
pin: deps all
	./milua tests/experiments/pinned/pin.lua

# 10^5 training steps with hooks and caches in use, memory sampled: flat after warm-up (not in check)
soak: deps all
	OPENBLAS_NUM_THREADS=1 ./milua bench/soak.lua --out out/soak

# libFuzzer harnesses (tests/fuzz/*.c) of every reader of outside bytes, under ASan+UBSan.
# FUZZ_SECONDS per harness; crashes land in tests/fuzz/corpus/<harness>/ as crash-*, which
# make check replays (tests/c/fuzz_replay.c). New interesting inputs go to build-fuzz/corpus.
FUZZ_SECONDS ?= 60
FUZZ_DEPS    := clang libclang-rt-14-dev libomp-14-dev
FUZZ_CFLAGS  := -O1 -g -Wno-psabi -fopenmp -Inn -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_SRC     := $(wildcard nn/core/*.c nn/io/*.c)

fuzz-deps:
	@missing=""; for p in $(FUZZ_DEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

build-fuzz/%: tests/fuzz/%.c $(FUZZ_SRC) $(wildcard nn/*/*.h)
	@mkdir -p build-fuzz
	clang $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_SRC) -lopenblas -ldnnl -lm

fuzz: fuzz-deps build-fuzz/safetensors build-fuzz/json
	@for h in safetensors json; do \
	  mkdir -p build-fuzz/corpus/$$h; \
	  echo "fuzzing $$h for $(FUZZ_SECONDS) s"; \
	  build-fuzz/$$h -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 -print_final_stats=1 \
	    -artifact_prefix=tests/fuzz/corpus/$$h/ build-fuzz/corpus/$$h tests/fuzz/corpus/$$h 2>&1 | \
	    grep -E '^(stat::number_of_executed_units|stat::new_units_added|==.*ERROR|SUMMARY)' || true; \
	done
	$(MAKE) BUILD=build-asan OPT=-O1 SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" build-asan/milua
	@echo "fuzzing the bindings for $(FUZZ_SECONDS) s (a crash: the last 'sequence N' line names it)"
	@first=$$(date +%s); ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 OMP_NUM_THREADS=1 build-asan/milua tests/fuzz/bindings.lua \
	  --seconds $(FUZZ_SECONDS) --first $$first > build-fuzz/bindings.log 2>&1 || \
	  { tail -20 build-fuzz/bindings.log; echo "add the sequence to tests/fuzz/corpus/bindings.txt"; exit 1; }; \
	tail -1 build-fuzz/bindings.log

# installs the executables, the generic stdlib and the man pages; the papers' code stays in
# experiments/ (entry scripts and their helper folders), run from a checkout
install: milua milua-sweep
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/milua/milua/data $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man3
	install -m 755 milua $(DESTDIR)$(PREFIX)/bin/milua
	install -m 755 milua-sweep $(DESTDIR)$(PREFIX)/bin/milua-sweep
	cp -r stdlib/milua/. $(DESTDIR)$(PREFIX)/share/milua/milua/
	install -m 644 man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 man/*.3 $(DESTDIR)$(PREFIX)/share/man/man3/ 2>/dev/null || true

clean:
	rm -rf build build-asan build-nohooks build-fuzz milua milua-sweep
