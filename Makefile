# libsegidx — build, test, install.
#
#   make            libsegidx.a, libsegidx.so and pkgconfig/libsegidx.pc, and
#                   the same three of libsegidx_lmdb (the LMDB adapter) and
#                   of libsegidx_pg (the PostgreSQL store)
#   make check      unit tests, fuzz-corpus replay, ABI, install and CLI
#                   checks, 5 SIGKILL trials of the demo writer
#   make check-long the slow trials (50 SIGKILLs of a durable LMDB writer,
#                   200 of the demo writer, each followed by segidx compact
#                   and segidx gc killed too; DEMO_LONG_TRIALS=N for more)
#   make check-crash  DEMO_TRIALS (5) SIGKILL trials of `segidx demo`,
#                   `segidx compact` and `segidx gc`
#   make check-s3   the S3 example against a local s3rver (part of check)
#   make asan       the unit tests under ASan+UBSan
#   make tsan       the unit tests under ThreadSanitizer
#   make valgrind   the unit tests under valgrind memcheck
#   make check-st   the unit tests of a SEGIDX_SINGLE_THREADED=1 build
#   make bench      benchmark figures, one line each
#   make bench-long the checkpoint figures at 100k and 1M commits, the
#                   compaction figures at 4000 rounds and gc at 1M (minutes)
#   make fuzz       libFuzzer targets (clang)
#   make static-roaring  CRoaring built from its source (Debian's croaring
#                   source package, or ROARING_SRC=dir) into
#                   $(BUILD)/roaring/libroaring.a and its headers, for
#                   fully static programs (Debian ships no libroaring.a)
#   make check-static  a -static program over libsegidx.a and that archive
#                   (part of check)
#   make cross      libsegidx.a and .so for armhf and aarch64 with Debian's
#                   cross compilers, warnings as errors, CRoaring built for
#                   each; the tests compiled, the static program run under
#                   qemu-user, and for armhf the unit tests without LMDB or
#                   PostgreSQL run there too (CROSS_TARGETS="armhf aarch64",
#                   CROSS_TEST_TARGETS="armhf")
#   make install / uninstall   PREFIX, DESTDIR, LIBDIR, INCLUDEDIR, PKGCONFIGDIR
#
# Your CFLAGS, CPPFLAGS and LDFLAGS are added to ours, never replaced.
# WERROR=1 makes warnings errors (CI sets it). STATIC_ROARING=1 builds
# CRoaring from source (as static-roaring) and links that archive, into
# libsegidx.so too, instead of the system's -lroaring.
#
# `make`, `make lib` and `make install` need a C compiler and the CRoaring
# and xxHash headers; they install no package. The LMDB and PostgreSQL
# adapters (and the command, which needs both) are built where LMDB's and
# libpq's headers are found, and left out with a message where not. The test targets (check, check-*, asan, tsan, valgrind,
# fuzz, bench, demo, cross) first run scripts/deps.sh, which as root
# installs what is missing with apt-get.

.DEFAULT_GOAL := all

# The version lives in include/segidx.h; read it from there.
version_part = $(shell sed -n 's/^\#define SEGIDX_VERSION_$(1)  *\([0-9][0-9]*\).*/\1/p' include/segidx.h)
MAJOR   := $(call version_part,MAJOR)
MINOR   := $(call version_part,MINOR)
PATCH   := $(call version_part,PATCH)
VERSION := $(MAJOR).$(MINOR).$(PATCH)

PREFIX       ?= /usr/local
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
BINDIR       ?= $(PREFIX)/bin
MANDIR       ?= $(PREFIX)/share/man
DESTDIR      ?=

CC      ?= cc
NM      ?= nm
CFLAGS  ?= -O2 -g
RUN     ?=
STATIC_ROARING ?= 0
CMOCKA_LIBS    ?= -lcmocka
TEST_LDFLAGS   ?=
BUILD   ?= build
SEGIDX_SINGLE_THREADED ?= 0

WARN := -std=c11 -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes \
        -Wmissing-prototypes
ifeq ($(WERROR),1)
WARN += -Werror
endif

ifeq ($(SEGIDX_SINGLE_THREADED),1)
THREAD_CPPFLAGS := -DSEGIDX_SINGLE_THREADED=1
THREAD_LIBS     :=
else
THREAD_CPPFLAGS :=
THREAD_LIBS     := -pthread
endif

ALL_CPPFLAGS = -Iinclude -D_POSIX_C_SOURCE=200809L $(THREAD_CPPFLAGS) $(ROARING_CPPFLAGS) $(CPPFLAGS)
LIB_CFLAGS   = $(WARN) $(CFLAGS) -fPIC -fvisibility=hidden -DSEGIDX_BUILDING
DEP_LIBS     = $(ROARING_LIBS) $(THREAD_LIBS)

LIB_SRC := $(wildcard src/*.c)
LIB_OBJ := $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o)
STATIC  := $(BUILD)/libsegidx.a
SHARED  := $(BUILD)/libsegidx.so.$(VERSION)
SONAME  := libsegidx.so.$(MAJOR)
PC      := pkgconfig/libsegidx.pc

# libsegidx_lmdb: the LMDB adapter, its own library so that the core needs
# no database. It uses only libsegidx's types, so it links liblmdb alone.
LMDB_SRC    := $(wildcard src/lmdb/*.c)
LMDB_OBJ    := $(LMDB_SRC:src/%.c=$(BUILD)/obj/%.o)
LMDB_STATIC := $(BUILD)/libsegidx_lmdb.a
LMDB_SHARED := $(BUILD)/libsegidx_lmdb.so.$(VERSION)
LMDB_SONAME := libsegidx_lmdb.so.$(MAJOR)
LMDB_PC     := pkgconfig/libsegidx_lmdb.pc
LMDB_LIBS   := -llmdb

# libsegidx_pg: the PostgreSQL-protocol store, its own library like the
# LMDB one. It uses only libsegidx's types, so it links libpq alone.
PG_SRC    := $(wildcard src/pg/*.c)
PG_OBJ    := $(PG_SRC:src/%.c=$(BUILD)/obj/%.o)
PG_STATIC := $(BUILD)/libsegidx_pg.a
PG_SHARED := $(BUILD)/libsegidx_pg.so.$(VERSION)
PG_SONAME := libsegidx_pg.so.$(MAJOR)
PG_PC     := pkgconfig/libsegidx_pg.pc
PG_CFLAGS := $(shell pkg-config --cflags libpq 2>/dev/null || \
                 { d=$$(pg_config --includedir 2>/dev/null) && echo "-I$$d"; })
PG_LIBS   := $(shell pkg-config --libs libpq 2>/dev/null || echo -lpq)

TEST_SRC  := $(wildcard tests/test_*.c)
TEST_BIN  := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_HDR  := $(wildcard tests/*.h tests/support/*.h)
# Tests that open LMDB stores link libsegidx_lmdb and liblmdb too: those
# named test_lmdb* or test_kv_lmdb*, and any other added here by name.
LMDB_TESTS := $(filter $(BUILD)/tests/test_lmdb% $(BUILD)/tests/test_kv_lmdb% \
                $(BUILD)/tests/test_alloc_fail,$(TEST_BIN))
FUZZ_SRC  := $(wildcard fuzz/*_fuzz.c)
REPLAY_BIN := $(FUZZ_SRC:fuzz/%.c=$(BUILD)/fuzz/%_replay)
FUZZ_BIN  := $(FUZZ_SRC:fuzz/%.c=$(BUILD)/fuzz/%)
BENCH_SRC := $(wildcard bench/bench_*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
# Tests that open PostgreSQL stores (and start a server of their own):
# those named test_pg* or test_kv_pg*.
PG_TESTS := $(filter $(BUILD)/tests/test_pg% $(BUILD)/tests/test_kv_pg%,$(TEST_BIN))
# Benchmarks that open LMDB stores, linked like LMDB_TESTS.
LMDB_BENCHES := $(filter $(BUILD)/bench/bench_volume_index $(BUILD)/bench/bench_checkpoint \
                  $(BUILD)/bench/bench_compact $(BUILD)/bench/bench_group_commit %lmdb,$(BENCH_BIN))
# Benchmarks that open PostgreSQL stores (against LMDB baselines).
PG_BENCHES := $(filter %_pg,$(BENCH_BIN))
# The segidx command, linked statically against the three libraries.
TOOL_SRC := $(wildcard tools/*.c)
TOOL_HDR := $(wildcard tools/*.h)
CLI      := $(BUILD)/segidx

.PHONY: all lib lmdb pg deps check check-long check-unit check-replay check-abi check-install \
        check-st asan tsan valgrind fuzz fuzz-run bench install install-static install-shared \
        install-includes install-pc install-bin uninstall clean demo bench-readme bench-long FORCE \
        check-cli check-crash check-s3 static-roaring check-static check-deps check-minimal cross cross-lib \
        cross-syntax cross-unit test-bins

lib: $(STATIC) $(SHARED)
lmdb: $(LMDB_STATIC) $(LMDB_SHARED)
pg: $(PG_STATIC) $(PG_SHARED)

deps:
	@sh scripts/deps.sh

# Only the goals that test need the test dependencies: they are installed
# before anything compiles, the library alone never asks for them.
DEPS_GOALS := check check-% test-bins demo bench bench-% asan tsan valgrind fuzz fuzz-run
ifneq ($(filter $(DEPS_GOALS),$(MAKECMDGOALS)),)
NEED_DEPS := deps
endif

# The adapters need LMDB's and libpq's headers, and the command both.
# `make` and `make install` build and install them where those headers
# are found and say what they left out where not, so that the library
# itself needs only CRoaring and xxHash; the test goals install every
# dependency first and always build them. WITH_LMDB=1/0, WITH_PG=1/0
# decide instead of the probe.
have_header = $(shell printf '\#include <$(1)>\n' | $(CC) $(2) -E -x c - >/dev/null 2>&1 && echo 1)
ifeq ($(origin WITH_LMDB),undefined)
WITH_LMDB := $(if $(NEED_DEPS),1,$(call have_header,lmdb.h,$(CPPFLAGS)))
endif
ifeq ($(origin WITH_PG),undefined)
WITH_PG := $(if $(NEED_DEPS),1,$(call have_header,libpq-fe.h,$(PG_CFLAGS) $(CPPFLAGS)))
endif
override WITH_LMDB := $(filter 1,$(WITH_LMDB))
override WITH_PG := $(filter 1,$(WITH_PG))
WITH_CLI := $(and $(WITH_LMDB),$(WITH_PG))

all: lib $(PC) $(if $(WITH_LMDB),lmdb $(LMDB_PC)) $(if $(WITH_PG),pg $(PG_PC)) \
     $(if $(WITH_CLI),$(CLI))
	@$(if $(WITH_LMDB),,echo "make: libsegidx_lmdb left out: no lmdb.h (Debian: liblmdb-dev)";) \
	 $(if $(WITH_PG),,echo "make: libsegidx_pg left out: no libpq-fe.h (Debian: libpq-dev)";) \
	 $(if $(WITH_CLI),,echo "make: the segidx command left out: it needs both";) true

# ------------------------------------------------------------------ CRoaring

# CRoaring from source: ROARING_SRC names an unpacked source tree, else
# scripts/debian_source.sh fetches Debian's (once, into build/src).
ROARING_SRC   ?=
ROARING_BUILD := $(BUILD)/roaring
ROARING_A     := $(ROARING_BUILD)/libroaring.a
ROARING_LIBS  := -lroaring
ifeq ($(STATIC_ROARING),1)
ROARING_LIBS  := $(ROARING_A)
ROARING_CPPFLAGS := -I$(ROARING_BUILD)/include
$(LIB_OBJ): | $(ROARING_A)
$(SHARED): $(ROARING_A)
endif

static-roaring: $(ROARING_A)

$(ROARING_A): scripts/static_roaring.sh scripts/debian_source.sh
	@src="$(ROARING_SRC)"; \
	if [ -z "$$src" ]; then src=$$(sh scripts/debian_source.sh croaring build/src) || exit 1; fi; \
	CC="$(CC)" AR="$(AR)" CFLAGS="$(CFLAGS)" sh scripts/static_roaring.sh "$$src" $(ROARING_BUILD)

check-static: $(STATIC)
	@BUILD=$(BUILD) CC="$(CC)" CFLAGS="$(CFLAGS)" RUN="$(RUN)" ROARING_SRC="$(ROARING_SRC)" \
	    MAKE="$(MAKE)" sh tests/static_test.sh

# scripts/deps.sh's decisions, against a fake dpkg and apt.
check-deps:
	@sh tests/deps_test.sh

# make and make install where LMDB, libpq, cmocka and apt are out of reach.
check-minimal:
	@CC="$(CC)" MAKE="$(MAKE)" sh tests/minimal_build_test.sh

# ------------------------------------------------------------------ library

$(BUILD)/obj/%.o: src/%.c src/internal.h include/segidx.h | $(NEED_DEPS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) $(LIB_CFLAGS) -MMD -MP -c $< -o $@

-include $(LIB_OBJ:.o=.d) $(LMDB_OBJ:.o=.d)

$(STATIC): $(LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

$(SHARED): $(LIB_OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -shared -Wl,-soname,$(SONAME) -o $@ $^ $(DEP_LIBS)
	ln -sf libsegidx.so.$(VERSION) $(BUILD)/$(SONAME)
	ln -sf libsegidx.so.$(VERSION) $(BUILD)/libsegidx.so

$(LMDB_OBJ): include/segidx_lmdb.h

$(LMDB_STATIC): $(LMDB_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

$(LMDB_SHARED): $(LMDB_OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -shared -Wl,-soname,$(LMDB_SONAME) -o $@ $^ $(LMDB_LIBS)
	ln -sf libsegidx_lmdb.so.$(VERSION) $(BUILD)/$(LMDB_SONAME)
	ln -sf libsegidx_lmdb.so.$(VERSION) $(BUILD)/libsegidx_lmdb.so

# ------------------------------------------------------------------ pg

$(PG_OBJ): ALL_CPPFLAGS += $(PG_CFLAGS)
$(PG_OBJ): include/segidx_pg.h

-include $(PG_OBJ:.o=.d)

$(PG_STATIC): $(PG_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

$(PG_SHARED): $(PG_OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -shared -Wl,-soname,$(PG_SONAME) -o $@ $^ $(PG_LIBS) $(THREAD_LIBS)
	ln -sf libsegidx_pg.so.$(VERSION) $(BUILD)/$(PG_SONAME)
	ln -sf libsegidx_pg.so.$(VERSION) $(BUILD)/libsegidx_pg.so

$(PG_PC): PC_LIBS_PRIVATE = $(PG_LIBS) $(THREAD_LIBS)
$(PG_PC): pkgconfig/%.pc: pkgconfig/%.pc.in include/segidx.h FORCE
	@sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	     -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	     -e 's|@LIBS_PRIVATE@|$(PC_LIBS_PRIVATE)|' $< > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; echo "  GEN $@"; fi

$(PG_TESTS): TEST_LIBS = $(PG_STATIC) $(STATIC) $(CMOCKA_LIBS) $(PG_LIBS) $(DEP_LIBS)
$(PG_TESTS): ALL_CPPFLAGS += $(PG_CFLAGS)
$(PG_TESTS): $(PG_STATIC) include/segidx_pg.h
# The volume index and processes tests over PostgreSQL are the same files,
# built again.
$(BUILD)/tests/test_pg_volume_index: tests/test_volume_index.c
$(BUILD)/tests/test_pg_processes: tests/test_lmdb_processes.c

$(PG_BENCHES): BENCH_LIBS = $(PG_STATIC) $(LMDB_STATIC) $(STATIC) $(PG_LIBS) $(LMDB_LIBS) $(DEP_LIBS)
$(PG_BENCHES): $(PG_STATIC) $(LMDB_STATIC) include/segidx_pg.h include/segidx_lmdb.h tests/pgserver.h

# ------------------------------------------------------------------ pkg-config

# Rewritten only when its text changes, so PREFIX and friends take effect
# without needless rebuilds.
$(PC): PC_LIBS_PRIVATE = $(DEP_LIBS)
$(LMDB_PC): PC_LIBS_PRIVATE = $(LMDB_LIBS)
$(PC) $(LMDB_PC): pkgconfig/%.pc: pkgconfig/%.pc.in include/segidx.h FORCE
	@sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	     -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	     -e 's|@LIBS_PRIVATE@|$(PC_LIBS_PRIVATE)|' $< > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; echo "  GEN $@"; fi

# ------------------------------------------------------------------ tests

TEST_LIBS = $(STATIC) $(CMOCKA_LIBS) $(DEP_LIBS)

$(BUILD)/tests/%: tests/%.c $(TEST_HDR) src/segment_format.h $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) -Isrc -Itests/support $(WARN) $(CFLAGS) $< -o $@ $(LDFLAGS) $(TEST_LDFLAGS) \
	    $(TEST_LIBS) -lm

$(LMDB_TESTS): TEST_LIBS = $(LMDB_STATIC) $(STATIC) $(CMOCKA_LIBS) $(LMDB_LIBS) $(DEP_LIBS)
$(LMDB_TESTS): $(LMDB_STATIC) include/segidx_lmdb.h

# The allocation-failure sweep fails allocations through the linker's
# --wrap, which reaches the calls in the static libraries it links.
ALLOC_WRAP := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=free
$(BUILD)/tests/test_alloc_fail: TEST_LIBS = $(ALLOC_WRAP) $(LMDB_STATIC) $(STATIC) $(CMOCKA_LIBS) \
                                            $(LMDB_LIBS) $(DEP_LIBS)
# The checkpoint tests refuse any allocation too large for them (malloc,
# calloc and realloc wrapped the same way; tests/test_checkpoint.c).
CKPT_WRAP := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc
$(BUILD)/tests/test_checkpoint: TEST_LIBS = $(CKPT_WRAP) $(STATIC) $(CMOCKA_LIBS) $(DEP_LIBS)
$(BUILD)/tests/test_lmdb_checkpoint: TEST_LIBS = $(CKPT_WRAP) $(LMDB_STATIC) $(STATIC) $(CMOCKA_LIBS) \
                                                 $(LMDB_LIBS) $(DEP_LIBS)

# Every test program and corpus replay driver, built and not run.
test-bins: $(TEST_BIN) $(REPLAY_BIN)

# UNIT_SKIP: tests left out (names as in build/tests), for the variant
# builds that say why.
UNIT_SKIP ?=
check-unit: $(TEST_BIN)
	@set -e; for t in $(filter-out $(addprefix $(BUILD)/tests/,$(UNIT_SKIP)),$(TEST_BIN)); do \
	    echo "== $$t"; $$t 2>&1; done

$(BUILD)/fuzz/%_replay: fuzz/%.c fuzz/replay.c fuzz/fuzz_check.h tests/support/splitmix64.h $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) $(WARN) $(CFLAGS) $< fuzz/replay.c -o $@ $(LDFLAGS) $(STATIC) $(DEP_LIBS)

check-replay: $(REPLAY_BIN)
	@set -e; for r in $(REPLAY_BIN); do \
	    name=$$(basename $$r _fuzz_replay); $$r fuzz/corpus/$$name; done

# Nothing but segidx_* may leave the shared libraries.
ABI_LIBS ?= $(SHARED) $(LMDB_SHARED) $(PG_SHARED)
check-abi: $(ABI_LIBS)
	@for lib in $(ABI_LIBS); do \
	    bad=$$($(NM) -D --defined-only $$lib | awk '{print $$3}' | grep -v '^segidx_' || true); \
	    if [ -n "$$bad" ]; then echo "check-abi: $$lib exports symbols outside segidx_:"; echo "$$bad"; exit 1; fi; \
	    echo "check-abi: $$(basename $$lib): $$($(NM) -D --defined-only $$lib | wc -l) symbols, all segidx_*"; \
	done

check-install: all
	@sh tests/install_test.sh

check-cli: $(CLI)
	@sh tests/cli_test.sh $(CLI)

# SIGKILL trials of `segidx demo`: after each, every acknowledged commit
# must read back and every segment the index names must verify. Not a
# tests/test_*.c, as it runs the command and takes a number of trials.
DEMO_CRASH  := $(BUILD)/tests/demo_crash
DEMO_TRIALS ?= 5
$(DEMO_CRASH): tests/demo_crash.c tools/demo_page.h tests/support/splitmix64.h examples/segment_files.h include/segidx.h \
               include/segidx_lmdb.h $(STATIC) $(LMDB_STATIC)
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) $(WARN) $(CFLAGS) $< -o $@ $(LDFLAGS) \
	    $(LMDB_STATIC) $(STATIC) $(LMDB_LIBS) $(DEP_LIBS)

check-crash: $(DEMO_CRASH) $(CLI)
	$(DEMO_CRASH) $(CLI) $(DEMO_TRIALS)

check: all check-deps check-minimal check-unit check-replay check-abi check-install check-cli check-crash check-s3 \
       check-static

# The slow trials: 50 SIGKILLs of a durable LMDB writer and 200 of the demo
# writer (make check runs 5 of each).
CRASH_TRIALS ?= 50
DEMO_LONG_TRIALS ?= 200
check-long: $(BUILD)/tests/test_lmdb_crash $(DEMO_CRASH) $(CLI)
	SEGIDX_CRASH_TRIALS=$(CRASH_TRIALS) $(BUILD)/tests/test_lmdb_crash 2>&1
	$(DEMO_CRASH) $(CLI) $(DEMO_LONG_TRIALS)

# The LMDB runs of the volume index tests are the same files, built again.
$(BUILD)/tests/test_lmdb_volume_index: tests/test_volume_index.c
$(BUILD)/tests/test_lmdb_vi_stress: tests/test_vi_stress.c
$(BUILD)/tests/test_lmdb_checkpoint: tests/test_checkpoint.c
$(BUILD)/tests/test_lmdb_read_pages: tests/test_read_pages.c

# The same tests, another build: each variant gets its own build folder.
# Its programs are built first (in parallel under make -jN), then run one
# at a time.
ASAN_VARS = BUILD=build/asan LDFLAGS="-fsanitize=address,undefined" \
            CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer $(CFLAGS_EXTRA)"
# ASan runs every case and every corpus; SEGIDX_TEST_QUICK=models shrinks
# the repetitions of random models that run on one thread (make check runs
# them whole, and the fuzz targets, built with ASan, hammer the decoders).
asan:
	$(MAKE) $(ASAN_VARS) test-bins
	SEGIDX_TEST_QUICK=models $(MAKE) -j1 $(ASAN_VARS) check-unit check-replay

# Every unit test, not only the threaded ones: a race may sit anywhere that
# locks. SEGIDX_TEST_QUICK=models shrinks the repetitions that run on one
# thread (random models, damage sweeps), where TSan checks only how they
# lock; the rounds in which threads or processes meet run whole
# (tests/testutil.h). Two tests are left out: the checkpoint and read_pages
# files built over LMDB start no thread, and TSan sees nothing inside LMDB;
# the same files run here over the in-memory store. A report fails the run
# (TSan's exit code, 66).
TSAN_VARS = BUILD=build/tsan LDFLAGS="-fsanitize=thread" \
            CFLAGS="-O1 -g -fsanitize=thread -fno-omit-frame-pointer $(CFLAGS_EXTRA)"
tsan:
	$(MAKE) $(TSAN_VARS) test-bins
	SEGIDX_TEST_QUICK=models $(MAKE) -j1 $(TSAN_VARS) \
	    UNIT_SKIP="test_lmdb_checkpoint test_lmdb_read_pages" check-unit

# Every test and corpus replay under valgrind's memcheck: any error or
# definite/indirect leak fails the run. No suppressions. SEGIDX_TEST_QUICK
# shrinks the heaviest repetitions (tests/testutil.h says which). Valgrind
# runs one thread at a time; --fair-sched=yes hands the turn round in
# order, where its default let threads that spin on reads starve a writer
# for many minutes.
VALGRIND ?= valgrind --quiet --fair-sched=yes --error-exitcode=99 --leak-check=full \
            --errors-for-leak-kinds=definite,indirect
# The tests that are another test's file built over another store
# (STORE_VARIANTS) are left out: under valgrind their file runs over the
# in-memory store and the adapters' code runs in their own tests
# (test_kv_lmdb, test_kv_pg); the variants run in full in make check,
# asan and tsan.
STORE_VARIANTS := $(addprefix $(BUILD)/tests/,test_lmdb_volume_index test_lmdb_vi_stress \
                    test_lmdb_checkpoint test_lmdb_read_pages test_pg_volume_index)
valgrind: $(TEST_BIN) $(REPLAY_BIN)
	@set -e; for t in $(filter-out $(STORE_VARIANTS),$(TEST_BIN)); do echo "== valgrind $$t"; \
	    SEGIDX_TEST_QUICK=1 SEGIDX_CRASH_TRIALS=2 $(VALGRIND) $$t 2>&1; done
	@set -e; for r in $(REPLAY_BIN); do name=$$(basename $$r _fuzz_replay); \
	    echo "== valgrind $$r"; $(VALGRIND) $$r fuzz/corpus/$$name; done

# The single-threaded build, every test at its quick repetitions: what it
# checks is that the library builds and behaves without threads; make check
# runs the full repetitions of the same code.
check-st:
	$(MAKE) BUILD=build/st SEGIDX_SINGLE_THREADED=1 test-bins
	SEGIDX_TEST_QUICK=1 $(MAKE) -j1 BUILD=build/st SEGIDX_SINGLE_THREADED=1 check-unit check-replay

# ------------------------------------------------------------------ cross

# Each target in build/cross/ARCH: libsegidx.a and libsegidx.so (with
# CRoaring built for it inside), their exports checked, every unit test
# compiled, tests/static_check.c linked -static and run under qemu-user,
# and the unit tests that need neither LMDB nor PostgreSQL linked -static
# (cmocka built for the target from Debian's source too) and run under
# qemu-user. The adapters are left out: liblmdb and libpq are not
# installed for the targets. The unit tests run for the targets in
# CROSS_TEST_TARGETS (armhf, the 32-bit one: about 3 minutes under qemu).
CROSS_TARGETS      ?= armhf aarch64
CROSS_TEST_TARGETS ?= armhf
CROSS_PACKAGES := gcc-arm-linux-gnueabihf libc6-dev-armhf-cross gcc-aarch64-linux-gnu \
                  libc6-dev-arm64-cross qemu-user

cross:
	@sh scripts/deps.sh $(CROSS_PACKAGES)
	@src="$(ROARING_SRC)"; \
	if [ -z "$$src" ]; then src=$$(sh scripts/debian_source.sh croaring build/src) || exit 1; fi; \
	cm="$(CMOCKA_SRC)"; \
	if [ -z "$$cm" ] && [ -n "$(CROSS_TEST_TARGETS)" ]; then \
	    cm=$$(sh scripts/debian_source.sh cmocka build/src) || exit 1; fi; \
	for a in $(CROSS_TARGETS); do \
	    case $$a in \
	    armhf) t=arm-linux-gnueabihf q=qemu-arm ;; \
	    aarch64) t=aarch64-linux-gnu q=qemu-aarch64 ;; \
	    *) echo "cross: unknown target $$a (armhf, aarch64)" >&2; exit 1 ;; \
	    esac; \
	    echo "== cross $$a ($$t-gcc)"; \
	    $(MAKE) --no-print-directory BUILD=build/cross/$$a CC=$$t-gcc AR=$$t-ar NM=$$t-nm \
	        STATIC_ROARING=1 ROARING_SRC="$$src" CMOCKA_SRC="$$cm" CROSS=1 CROSS_ARCH=$$a \
	        'ABI_LIBS=$$(SHARED)' RUN="$$q -L /usr/$$t" cross-lib || exit 1; \
	done

CROSS_LIB_GOALS := lib check-abi cross-syntax check-static
ifneq ($(filter $(CROSS_ARCH),$(CROSS_TEST_TARGETS)),)
CROSS_LIB_GOALS += cross-unit
endif
cross-lib: $(CROSS_LIB_GOALS)

SYNTAX_OK := $(TEST_SRC:tests/%.c=$(BUILD)/syntax/%.ok)
cross-syntax: $(SYNTAX_OK)
	@echo "cross: $(words $(SYNTAX_OK)) unit tests compile with $(CC)"

$(BUILD)/syntax/%.ok: tests/%.c $(TEST_HDR) src/segment_format.h include/segidx.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) $(PG_CFLAGS) -Isrc -Itests/support $(WARN) $(CFLAGS) -fsyntax-only $<
	@touch $@

# cmocka for the target: its one source file, with the configuration
# its cmake would find on Linux with glibc. The tests keep the installed
# cmocka.h (Debian's, the same version with its patches applied).
CMOCKA_SRC ?=
CMOCKA_A   := $(BUILD)/cmocka/libcmocka.a
CMOCKA_DEFS := -D_GNU_SOURCE -DHAVE_SIGNAL_H=1 -DHAVE_STRINGS_H=1 -DHAVE_INTTYPES_H=1 \
               -DHAVE_MALLOC_H=1 -DHAVE_SIGLONGJMP=1 -DHAVE_STRSIGNAL=1 -DHAVE_STRUCT_TIMESPEC=1 \
               -DHAVE_CLOCK_REALTIME=1 -DHAVE_GCC_THREAD_LOCAL_STORAGE=1 -DHAVE_SNPRINTF=1 \
               -DHAVE_VSNPRINTF=1
$(CMOCKA_A): scripts/debian_source.sh
	@src="$(CMOCKA_SRC)"; \
	if [ -z "$$src" ]; then src=$$(sh scripts/debian_source.sh cmocka build/src) || exit 1; fi; \
	mkdir -p $(@D) && \
	$(CC) -std=gnu99 $(CFLAGS) $(CMOCKA_DEFS) -I"$$src/include" -c "$$src/src/cmocka.c" \
	    -o $(@D)/cmocka.o && \
	$(AR) rcs $@ $(@D)/cmocka.o && echo "cross: $@ ($(CC))"

# The unit tests that run on a target: no LMDB, no PostgreSQL.
CROSS_UNIT := $(filter-out $(LMDB_TESTS) $(PG_TESTS),$(TEST_BIN))
ifeq ($(CROSS),1)
CMOCKA_LIBS  := $(CMOCKA_A)
TEST_LDFLAGS := -static
$(TEST_BIN): $(CMOCKA_A)
endif

cross-unit: $(CROSS_UNIT)
	@set -e; for t in $(CROSS_UNIT); do echo "== $(RUN) $$t"; \
	    SEGIDX_TEST_QUICK=1 $(RUN) $$t 2>&1; done

# ------------------------------------------------------------------ fuzz

FUZZ_CC ?= clang
FUZZ_FLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_TIME ?= 60

$(BUILD)/fuzz/%_fuzz: fuzz/%_fuzz.c fuzz/fuzz_check.h tests/support/splitmix64.h $(LIB_SRC) src/internal.h include/segidx.h | $(NEED_DEPS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(ALL_CPPFLAGS) -DSEGIDX_BUILDING $(FUZZ_FLAGS) $< $(LIB_SRC) -o $@ $(DEP_LIBS)

fuzz: $(FUZZ_BIN)

# Each target for FUZZ_TIME seconds from its committed corpus; new inputs
# land in a scratch folder, not in the repository.
fuzz-run: fuzz
	@set -e; for f in $(FUZZ_BIN); do \
	    name=$$(basename $$f _fuzz); mkdir -p $(BUILD)/fuzz/new_$$name; \
	    $$f -max_total_time=$(FUZZ_TIME) -print_final_stats=1 \
	        $(BUILD)/fuzz/new_$$name fuzz/corpus/$$name; done

# ------------------------------------------------------------------ bench

BENCH_LIBS = $(STATIC) $(DEP_LIBS)

$(BUILD)/bench/%: bench/%.c bench/bench.h bench/kv.h $(wildcard tests/support/*.h) $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) -Isrc -Itests/support $(WARN) $(CFLAGS) $< -o $@ $(LDFLAGS) $(BENCH_LIBS) -lm

$(LMDB_BENCHES): BENCH_LIBS = $(LMDB_STATIC) $(STATIC) $(LMDB_LIBS) $(DEP_LIBS)
$(LMDB_BENCHES): $(LMDB_STATIC) include/segidx_lmdb.h

bench: $(BENCH_BIN)
	@for b in $(BENCH_BIN); do $$b || exit 1; done

# The checkpoint figures over longer histories: H = 100k and 1M commits;
# compaction over 4000 rounds of 8 volumes, and gc at 1M commits (minutes;
# progress on stderr).
bench-long: $(BUILD)/bench/bench_checkpoint $(BUILD)/bench/bench_compact
	$(BUILD)/bench/bench_checkpoint 100000 1000000
	$(BUILD)/bench/bench_compact 4000 1000000

# Rewrite the README's benchmark block with what `make bench` prints now.
bench-readme:
	@sh scripts/bench_readme.sh

# ------------------------------------------------------------------ segidx

$(CLI): $(TOOL_SRC) $(TOOL_HDR) tests/support/splitmix64.h examples/segment_files.h include/segidx.h include/segidx_lmdb.h \
        include/segidx_pg.h include/segidx_kvcheck.h $(STATIC) $(LMDB_STATIC) $(PG_STATIC)
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) $(WARN) $(CFLAGS) $(TOOL_SRC) -o $@ $(LDFLAGS) \
	    $(LMDB_STATIC) $(PG_STATIC) $(STATIC) $(LMDB_LIBS) $(PG_LIBS) $(DEP_LIBS) -lm

# ------------------------------------------------------------------ install

# What `make` built (see WITH_LMDB and WITH_PG) is what is installed.
INSTALL_STATIC := $(STATIC) $(if $(WITH_LMDB),$(LMDB_STATIC)) $(if $(WITH_PG),$(PG_STATIC))
INSTALL_SHARED := $(SHARED) $(if $(WITH_LMDB),$(LMDB_SHARED)) $(if $(WITH_PG),$(PG_SHARED))
INSTALL_HDRS   := include/segidx.h include/segidx_kvcheck.h \
                  $(if $(WITH_LMDB),include/segidx_lmdb.h) $(if $(WITH_PG),include/segidx_pg.h)
INSTALL_PCS    := $(PC) $(if $(WITH_LMDB),$(LMDB_PC)) $(if $(WITH_PG),$(PG_PC))

install: install-static install-shared install-includes install-pc $(if $(WITH_CLI),install-bin)

install-static: $(INSTALL_STATIC)
	install -d $(DESTDIR)$(LIBDIR)
	install -m 644 $(INSTALL_STATIC) $(DESTDIR)$(LIBDIR)/

install-shared: $(INSTALL_SHARED)
	install -d $(DESTDIR)$(LIBDIR)
	install -m 755 $(INSTALL_SHARED) $(DESTDIR)$(LIBDIR)/
	ln -sf libsegidx.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf libsegidx.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libsegidx.so
	$(if $(WITH_LMDB),ln -sf libsegidx_lmdb.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(LMDB_SONAME))
	$(if $(WITH_LMDB),ln -sf libsegidx_lmdb.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libsegidx_lmdb.so)
	$(if $(WITH_PG),ln -sf libsegidx_pg.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(PG_SONAME))
	$(if $(WITH_PG),ln -sf libsegidx_pg.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libsegidx_pg.so)

install-includes:
	install -d $(DESTDIR)$(INCLUDEDIR)
	install -m 644 $(INSTALL_HDRS) $(DESTDIR)$(INCLUDEDIR)/

install-pc: $(INSTALL_PCS)
	install -d $(DESTDIR)$(PKGCONFIGDIR)
	install -m 644 $(INSTALL_PCS) $(DESTDIR)$(PKGCONFIGDIR)/

install-bin: $(CLI)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1
	install -m 755 $(CLI) $(DESTDIR)$(BINDIR)/
	install -m 644 man/segidx.1 $(DESTDIR)$(MANDIR)/man1/

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libsegidx.a $(DESTDIR)$(LIBDIR)/libsegidx.so \
	      $(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libsegidx.so.$(VERSION) \
	      $(DESTDIR)$(INCLUDEDIR)/segidx.h $(DESTDIR)$(INCLUDEDIR)/segidx_kvcheck.h \
	      $(DESTDIR)$(PKGCONFIGDIR)/libsegidx.pc
	rm -f $(DESTDIR)$(LIBDIR)/libsegidx_lmdb.a $(DESTDIR)$(LIBDIR)/libsegidx_lmdb.so \
	      $(DESTDIR)$(LIBDIR)/$(LMDB_SONAME) $(DESTDIR)$(LIBDIR)/libsegidx_lmdb.so.$(VERSION) \
	      $(DESTDIR)$(INCLUDEDIR)/segidx_lmdb.h $(DESTDIR)$(PKGCONFIGDIR)/libsegidx_lmdb.pc
	rm -f $(DESTDIR)$(LIBDIR)/libsegidx_pg.a $(DESTDIR)$(LIBDIR)/libsegidx_pg.so \
	      $(DESTDIR)$(LIBDIR)/$(PG_SONAME) $(DESTDIR)$(LIBDIR)/libsegidx_pg.so.$(VERSION) \
	      $(DESTDIR)$(INCLUDEDIR)/segidx_pg.h $(DESTDIR)$(PKGCONFIGDIR)/libsegidx_pg.pc
	rm -f $(DESTDIR)$(BINDIR)/segidx $(DESTDIR)$(MANDIR)/man1/segidx.1

clean:
	rm -rf build $(PC) $(LMDB_PC) $(PG_PC)

FORCE:

# ------------------------------------------------------------------ S3 example

# examples/s3_example: segments as S3 objects through libcurl's SigV4
# signing (examples/s3_segments.h over examples/segment_ranges.h). Not in
# `all`: the libraries need no libcurl. check-s3 runs it against a local
# s3rver (npm), installed under $(BUILD)/s3rver on first use; without node
# it skips, or fails when CI is set (tests/s3_test.sh).
S3_EXAMPLE := $(BUILD)/examples/s3_example
S3_HDR     := examples/s3_segments.h examples/segment_ranges.h
S3_LIBS    := -lcurl

$(S3_EXAMPLE): examples/s3_example.c $(S3_HDR) include/segidx.h $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) $(WARN) $(CFLAGS) $< -o $@ $(LDFLAGS) $(STATIC) $(DEP_LIBS) $(S3_LIBS)

check-s3: $(S3_EXAMPLE)
	@sh tests/s3_test.sh $(S3_EXAMPLE) $(BUILD)

# The range policy's bytes, counted over an in-memory object: no libcurl.
$(BUILD)/bench/bench_segment_ranges: examples/segment_ranges.h

# ------------------------------------------------------------------ demo

$(BUILD)/examples/%: examples/%.c $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) $(WARN) $(CFLAGS) $< -o $@ $(LDFLAGS) $(STATIC) $(DEP_LIBS)

# `segidx demo` in a fresh directory, removed afterwards.
demo: all
	@dir=$$(mktemp -d) || exit 1; \
	$(CLI) demo "$$dir"; rc=$$?; rm -rf "$$dir"; exit $$rc
