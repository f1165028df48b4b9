# copycat-lua build. `make help` lists the targets.
#
# Layout of what is built (all under $(BUILD)/):
#   copycat-lua          the program (app/main.c + everything else)
#   libcopycat.a         every C module except main.c, compiled -fPIC
#   copycat/core.so      the C module `copycat.core` for plain lua5.4/busted
#   test/<path>          one binary per spec/**/*_test.c (C unit tests)
#   sim                  the deterministic cluster simulator (sim/*.c)
#   test/fuzz/<name>     each fuzz target (fuzz/<name>.c) with the standalone
#                        driver (fuzz/driver.c): run briefly by `make test`
#   libfuzzer/<name>     the same targets linked with libFuzzer (`make fuzz`)

BUILD    ?= build
CC       ?= cc
PKGS     := lua5.4 libuv msgpack openssl libxxhash libh2o jansson
SAN      ?=
OPT      ?= -O2 -g

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
            -Wmissing-prototypes -Wpointer-arith -Wformat=2 -Wvla \
            -Wundef -Wcast-qual -Wwrite-strings -Wno-unused-parameter
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
UV_LIBS    = $(shell pkg-config --libs libuv msgpack openssl libxxhash libh2o jansson 2>/dev/null) -lpthread -lm
LUA_LIBS   = $(shell pkg-config --libs lua5.4 2>/dev/null)
# Short-lived msgpack buffers (one per reply or proposal) start small: the
# library's 8 KiB first block is a "large" malloc that makes glibc
# consolidate its fast bins on every request.
CFLAGS_ALL = -std=c11 -D_GNU_SOURCE -DMSGPACK_SBUFFER_INIT_SIZE=256 $(OPT) $(WARN) -fPIC $(SAN) \
             -Ihost -Imachine -Ibindings -Iapp -I$(BUILD)/gen $(PKG_CFLAGS) $(CFLAGS)
LDFLAGS_ALL = $(SAN) $(LDFLAGS)

LIB_SRCS  := $(wildcard host/*.c host/*/*.c machine/*.c bindings/*.c)
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
LUA_SRCS  := $(sort $(wildcard lua/copycat/*.lua lua/copycat/*/*.lua))
CTEST_SRCS := $(shell find spec -name '*_test.c' 2>/dev/null | sort)
CTEST_BINS := $(CTEST_SRCS:spec/%.c=$(BUILD)/test/%)
CTOOL_SRCS := $(shell find spec -name '*_tool.c' 2>/dev/null | sort)
CTOOL_BINS := $(CTOOL_SRCS:spec/%.c=$(BUILD)/tool/%)
FUZZ_SRCS := $(filter-out fuzz/driver.c,$(wildcard fuzz/*.c))
FUZZ_BINS := $(FUZZ_SRCS:fuzz/%.c=$(BUILD)/test/fuzz/%)
BENCH_SRCS := $(wildcard bench/*.c)
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)
SIM_SRCS  := $(wildcard sim/*.c)
SIM_OBJS  := $(SIM_SRCS:%.c=$(BUILD)/obj/%.o)
BIN       := $(BUILD)/copycat-lua
CORE_SO   := $(BUILD)/copycat/core.so
BUGS_BIN  := $(BUILD)/copycat-lua-bugs

.PHONY: all deps test asan lint format bench bench-etcd sim crash run clean help check-deps fuzz snapshot-big \
        install uninstall rock install-lua deb chaos
all: check-deps $(BIN) $(CORE_SO) $(CTEST_BINS) $(CTOOL_BINS) $(FUZZ_BINS) $(BENCH_BINS) $(if $(SIM_SRCS),$(BUILD)/sim $(BUGS_BIN))

help:
	@echo "make deps    install missing Debian packages (apt-get; root)"
	@echo "make         build $(BIN), $(CORE_SO), C tests, simulator"
	@echo "make run     build and start a local 3-node kv cluster on 127.0.0.1:5001-5003, data in data/"
	@echo "             (other ports and data: make run BASE_PORT=6001 DATA=data6001)"
	@echo "make test    deps + build + every suite; ends with 'tests: N passed, N failed'"
	@echo "make asan    the same suites under AddressSanitizer + UBSan"
	@echo "make lint    luacheck + C warnings + layer includes (+ clang-format check)"
	@echo "make sim     run the simulator: make sim SEEDS=10000 STEPS=20000"
	@echo "make fuzz    fuzz every decoder under ASan+UBSan: make fuzz FUZZ_SECONDS=60"
	@echo "             (libFuzzer with clang; else the standalone driver, FUZZ_ITERATIONS)"
	@echo "make crash   the storage SIGKILL test at length: make crash RUNS=2000"
	@echo "make snapshot-big  a 1 GiB state snapshotted, sent to a new member, installed; memory"
	@echo "             figures (SNAPSHOT_MIB=1024; needs ~4 GiB of memory and disk)"
	@echo "make chaos   the fault suite (root): make chaos NEMESIS=mix DURATION=60 SEED=1 (docs/faults.md)"
	@echo "make bench   benchmarks (codec, storage, core, kv cluster; etcd comparison if etcd is installed)"
	@echo "make bench-etcd  install etcd + python3-grpcio + wrk (apt-get), compare a 3-node kv cluster with 3-node etcd"
	@echo "             (native clients, then the HTTP gateways under wrk)"
	@echo "make install install the program, the Lua library, scripts, examples, docs, man page:"
	@echo "             make install PREFIX=/usr/local DESTDIR=  (make uninstall: the same variables)"
	@echo "make deb     build $(BUILD)/copycat-lua_VERSION_ARCH.deb (dpkg-deb)"

deps:
	@tools/deps.sh

# A friendlier failure than a wall of missing-header errors.
check-deps:
	@pkg-config --exists $(PKGS) || { echo "missing libraries: run 'make deps' (as root) first" >&2; exit 1; }

$(BUILD)/obj/%.o: %.c | check-deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

# Lua modules are compiled into the binary (see tools/embed.lua).
$(BUILD)/gen/lua_modules.c: $(LUA_SRCS) tools/embed.lua
	@mkdir -p $(dir $@)
	lua5.4 tools/embed.lua $@ $(LUA_SRCS)

$(BUILD)/obj/gen/lua_modules.o: $(BUILD)/gen/lua_modules.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Wno-overlength-strings -c $< -o $@

$(BUILD)/libcopycat.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(BUILD)/obj/app/main.o $(BUILD)/obj/gen/lua_modules.o $(BUILD)/libcopycat.a
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LUA_LIBS) $(UV_LIBS) -Wl,-E

# The loadable module takes Lua's symbols from the interpreter that loads it.
$(CORE_SO): $(BUILD)/libcopycat.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -shared -o $@ -Wl,--whole-archive $< -Wl,--no-whole-archive $(UV_LIBS)

$(BUILD)/test/%: spec/%.c $(BUILD)/libcopycat.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Ispec/c -o $@ $< $(BUILD)/libcopycat.a $(LUA_LIBS) $(UV_LIBS)

# Helper programs that specs start as child processes (not run as tests).
$(BUILD)/tool/%: spec/%.c $(BUILD)/libcopycat.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Ispec/c -o $@ $< $(BUILD)/libcopycat.a $(LUA_LIBS) $(UV_LIBS)

# Fuzz targets (fuzz/*.c, see fuzz/fuzz.h) with the standalone driver: they
# land in test/ so that tools/run-tests.sh runs each briefly.
$(BUILD)/test/fuzz/%: fuzz/%.c fuzz/driver.c fuzz/fuzz.h $(BUILD)/libcopycat.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Ifuzz -o $@ fuzz/driver.c $< $(BUILD)/libcopycat.a $(LUA_LIBS) $(UV_LIBS)

# The same targets linked with libFuzzer (clang; SAN must hold
# -fsanitize=fuzzer-no-link so that the library is instrumented for it).
$(BUILD)/libfuzzer/%: fuzz/%.c fuzz/fuzz.h $(BUILD)/libcopycat.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -fsanitize=fuzzer -Ifuzz -o $@ $< $(BUILD)/libcopycat.a $(LUA_LIBS) $(UV_LIBS)

$(BUILD)/bench/%: bench/%.c $(BUILD)/libcopycat.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(BUILD)/libcopycat.a $(LUA_LIBS) $(UV_LIBS)

# The simulator links its own copy of the Raft core built with
# -DRAFT_BUGS=1, so that deliberate bugs can be switched on in it while the
# product (libcopycat.a) never contains them.
SIM_RAFT_OBJS := $(patsubst host/raft/%.c,$(BUILD)/obj/sim-raft/%.o,$(wildcard host/raft/*.c))
$(BUILD)/obj/sim-raft/%.o: host/raft/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -DRAFT_BUGS=1 -MMD -MP -c $< -o $@

$(BUILD)/sim: $(SIM_OBJS) $(SIM_RAFT_OBJS)
	$(CC) $(LDFLAGS_ALL) -o $@ $^

# The fault suite's deliberately breakable server: the program with that
# same -DRAFT_BUGS=1 core (its objects come first, so the archive's raft
# objects are never pulled in). It runs bugs named by
# COPYCAT_TEST_RAFT_BUGS; the product refuses that variable. Never installed.
$(BUGS_BIN): $(BUILD)/obj/app/main.o $(BUILD)/obj/gen/lua_modules.o $(SIM_RAFT_OBJS) $(BUILD)/libcopycat.a
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LUA_LIBS) $(UV_LIBS) -Wl,-E

test: deps
	@$(MAKE) --no-print-directory all
	@tools/run-tests.sh $(BUILD)

asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
	  SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" all
	@ASAN=1 tools/run-tests.sh build-asan

lint: check-deps
	luacheck -q $(wildcard lua spec examples scripts tools bench types tests)
	@tools/layers.sh && echo "layers: clean"
	@$(MAKE) --no-print-directory BUILD=build-lint all
	@if command -v clang-format >/dev/null; then \
	  clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h') && echo "clang-format: clean"; fi

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

SEEDS ?= 10000
STEPS ?= 10000
sim: all
	$(BUILD)/sim --seeds $(SEEDS) --steps $(STEPS)

# The storage crash test at length: RUNS SIGKILLs of a child appending to a
# store, every acknowledged entry checked after each restart.
RUNS ?= 2000
crash: all
	STORAGE_CRASH_RUNS=$(RUNS) COPYCAT_BUILD=$(BUILD) $(BUILD)/test/storage/crash_test

# A large state (SNAPSHOT_MIB, default 1 GiB) snapshotted, sent to a new
# member and installed, with both servers' memory (bench/snapshot_big.sh).
SNAPSHOT_MIB ?= 1024
snapshot-big: all
	sh bench/snapshot_big.sh $(BUILD) $(SNAPSHOT_MIB)

# The fault suite (tests/faults/, docs/faults.md; root: network namespaces
# and nftables): one run of NEMESIS (partition, kill, pause, membership,
# mix, none, partition-KIND) for DURATION seconds with SEED; CHAOS_RUNS=N runs
# N seeds from SEED on. A failing run keeps its directory under
# $(BUILD)/faults/ and prints the smallest anomaly.
NEMESIS  ?= mix
DURATION ?= 60
SEED     ?= 1
CHAOS_RUNS ?= 1
chaos: all
	@set -e; s=$(SEED); end=$$(($(SEED) + $(CHAOS_RUNS))); while [ $$s -lt $$end ]; do \
	  COPYCAT_BIN=$(BIN) lua5.4 tests/faults/run.lua --nemesis $(NEMESIS) --seed $$s \
	    --duration $(DURATION) --out $(BUILD)/faults/$(NEMESIS)-$$s $(CHAOS_FLAGS); s=$$((s + 1)); done

# Every fuzz target for FUZZ_SECONDS each under ASan+UBSan (tools/fuzz.sh).
FUZZ_SECONDS ?= 60
fuzz: check-deps
	@FUZZ_SECONDS=$(FUZZ_SECONDS) tools/fuzz.sh $(FUZZ_SRCS:fuzz/%.c=%)

bench: deps
	@$(MAKE) --no-print-directory all
	@tools/bench.sh $(BUILD)

# Installs etcd and Python's gRPC (tools/deps.sh --etcd) only here: make deps,
# make test and make bench never do.
bench-etcd: deps
	@tools/deps.sh --etcd
	@$(MAKE) --no-print-directory check-deps $(BIN)
	@bench/etcd_compare.sh $(BUILD)
	@bench/http_compare.sh $(BUILD)

run: deps
	@$(MAKE) --no-print-directory check-deps $(BIN)
	@BIN=$(BIN) examples/kv/cluster.sh

# ---- Installation -------------------------------------------------------
# `make install PREFIX=/usr/local DESTDIR=` installs what INSTALL_FILES
# lists, and `make uninstall` removes exactly that (then the directories of
# our own it leaves empty). The Lua library goes where Debian's lua5.4
# looks under PREFIX (share/lua/5.4, lib/lua/5.4), so plain lua5.4 can
# `require "copycat"`. `make deb` builds a Debian package of the same files.
PREFIX   ?= /usr/local
DESTDIR  ?=
BINDIR   ?= $(PREFIX)/bin
LUA_LDIR ?= $(PREFIX)/share/lua/5.4
LUA_CDIR ?= $(PREFIX)/lib/lua/5.4
DATADIR  ?= $(PREFIX)/share/copycat-lua
DOCDIR   ?= $(PREFIX)/share/doc/copycat-lua
MANDIR   ?= $(PREFIX)/share/man
UNIT     := $(BUILD)/copycat-lua@.service
# Every installed file, as MODE:SOURCE:DESTINATION.
INSTALL_FILES = 755:$(BIN):$(BINDIR)/copycat-lua \
  644:$(CORE_SO):$(LUA_CDIR)/copycat/core.so \
  $(foreach f,$(LUA_SRCS),644:$(f):$(LUA_LDIR)/$(f:lua/%=%)) \
  $(foreach f,$(sort $(wildcard scripts/*.lua)),644:$(f):$(DATADIR)/$(f)) \
  $(foreach f,$(sort $(wildcard examples/*/*.lua)),644:$(f):$(DATADIR)/$(f)) \
  755:examples/kv/cluster.sh:$(DATADIR)/examples/kv/cluster.sh \
  $(foreach f,$(sort $(wildcard types/*.lua)),644:$(f):$(DATADIR)/$(f)) \
  $(foreach f,README.md $(sort $(wildcard docs/*.md)),644:$(f):$(DOCDIR)/$(f:docs/%=%)) \
  644:docs/openapi.yaml:$(DOCDIR)/openapi.yaml \
  644:clients/python/copycat.py:$(DATADIR)/clients/python/copycat.py \
  644:$(UNIT):$(DOCDIR)/examples/copycat-lua@.service \
  644:docs/copycat-lua.1:$(MANDIR)/man1/copycat-lua.1
# Directories that are ours alone: uninstall removes them once empty.
INSTALL_OWN_DIRS = $(LUA_LDIR)/copycat $(LUA_CDIR)/copycat $(DATADIR) $(DOCDIR)

$(UNIT): dist/copycat-lua@.service.in Makefile
	@mkdir -p $(dir $@)
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@DATADIR@|$(DATADIR)|g' $< >$@

install: check-deps $(BIN) $(CORE_SO) $(UNIT)
	@set -e; n=0; for f in $(INSTALL_FILES); do \
	  mode=$${f%%:*}; rest=$${f#*:}; src=$${rest%%:*}; dst="$(DESTDIR)$${rest#*:}"; \
	  install -D -m "$$mode" "$$src" "$$dst"; n=$$((n + 1)); done; \
	  echo "installed $$n files under $(DESTDIR)$(PREFIX)"

uninstall:
	@set -e; n=0; for f in $(INSTALL_FILES); do \
	  dst="$(DESTDIR)$${f#*:*:}"; \
	  if [ -e "$$dst" ] || [ -L "$$dst" ]; then rm -f "$$dst"; n=$$((n + 1)); fi; done; \
	  for d in $(INSTALL_OWN_DIRS); do \
	    if [ -d "$(DESTDIR)$$d" ]; then find "$(DESTDIR)$$d" -depth -type d -empty -delete; fi; done; \
	  echo "removed $$n files under $(DESTDIR)$(PREFIX)"

# For `luarocks make` (copycat-lua-dev-1.rockspec): the C module, and what
# the busted specs run (`luarocks test`); install-lua installs the Lua
# library alone into LUA_LDIR and LUA_CDIR.
rock: check-deps $(CORE_SO) $(BIN) $(if $(SIM_SRCS),$(BUILD)/sim)
install-lua: check-deps $(CORE_SO)
	@set -e; for f in $(LUA_SRCS); do install -D -m 644 "$$f" "$(LUA_LDIR)/$${f#lua/}"; done
	install -D -m 644 $(CORE_SO) $(LUA_CDIR)/copycat/core.so

deb: check-deps $(BIN) $(CORE_SO)
	@BUILD=$(BUILD) tools/deb.sh

clean:
	rm -rf build build-asan build-lint build-fuzz

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
