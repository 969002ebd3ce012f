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
LDLIBS  += -llua5.4 -lopenblas -lpng -lreadline -lm
LDFLAGS += -fopenmp $(SAN)
PREFIX  ?= /usr/local

NN_SRC   := $(wildcard nn/*/*.c)
BIND_SRC := $(wildcard bindings/*.c)
VM_SRC   := $(wildcard vm/*.c)
NN_OBJ   := $(NN_SRC:%.c=$(BUILD)/%.o)
BIND_OBJ := $(BIND_SRC:%.c=$(BUILD)/%.o)
VM_OBJ   := $(VM_SRC:%.c=$(BUILD)/%.o)
CTESTS   := $(patsubst tests/c/%.c,$(BUILD)/tests/%,$(wildcard tests/c/*.c))
DEPS     := liblua5.4-dev libopenblas-dev libpng-dev libreadline-dev perl python3-numpy

.PHONY: all deps check test test-asan demo bench install clean
all: milua

deps:
	@missing=""; for p in $(DEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

# replaced by rename, so that a running ./milua does not block the update
milua: $(BUILD)/milua
	cp $< $@.tmp && mv -f $@.tmp $@

$(BUILD)/milua: $(VM_OBJ) $(BIND_OBJ) $(NN_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c $(wildcard nn/*/*.h bindings/*.h vm/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DMILUA_SRCDIR='"$(CURDIR)"' -c -o $@ $<

$(BUILD)/tests/%: tests/c/%.c tests/c/tap.h $(NN_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(NN_OBJ) $(LDFLAGS) $(LDLIBS)

TESTS = $(wildcard tests/c/*.c) $(wildcard tests/lua/*.lua) $(wildcard tests/experiments/*.lua)

# one OpenBLAS/OpenMP thread per test: prove runs two tests at once on two cores
test: $(BUILD)/milua $(CTESTS)
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MILUA_BUILD=$(BUILD) prove -j2 -e 'sh tests/run' $(TESTS)

test-asan:
	$(MAKE) BUILD=build-asan OPT=-O1 SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  build-asan/milua $(CTESTS:$(BUILD)/%=build-asan/%)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 MILUA_SANITIZED=1 \
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MILUA_BUILD=build-asan prove -j2 -e 'sh tests/run' $(TESTS)

check: deps
	$(MAKE) all
	$(MAKE) test-asan
	$(MAKE) test

# the headline experiment: LEGO from random init, its accuracy by depth and its association heads
demo: deps
	$(MAKE) all
	./milua experiments/lego_assoc.lua --out out/lego_assoc

# the benchmark compares against a build with the hook points compiled out
bench: deps all
	$(MAKE) BUILD=build-nohooks DEFS=-DMILUA_NO_HOOKS build-nohooks/milua
	OPENBLAS_NUM_THREADS=1 ./milua bench/bench.lua

install: milua
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/milua/milua/data $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man3
	install -m 755 milua $(DESTDIR)$(PREFIX)/bin/milua
	cp -r stdlib/milua/. $(DESTDIR)$(PREFIX)/share/milua/milua/
	install -m 644 man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 man/*.3 $(DESTDIR)$(PREFIX)/share/man/man3/ 2>/dev/null || true

clean:
	rm -rf build build-asan build-nohooks milua
