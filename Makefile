# emrflow — build, test and tooling.  Every tool and path is overridable.
LUA        ?= lua5.4
CC         ?= cc
PKG_CONFIG ?= pkg-config
BUSTED     ?= $(LUA) /usr/bin/busted
LUACHECK   ?= luacheck
CPPCHECK   ?= cppcheck

PKGS        = lua5.4 libcurl libcjson libcrypto sqlite3
DEP_CFLAGS ?= $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
DEP_LIBS   ?= $(shell $(PKG_CONFIG) --libs libcurl libcjson libcrypto sqlite3 2>/dev/null)

WARN    = -Wall -Wextra -Werror -pedantic -Wshadow -Wmissing-prototypes \
          -Wstrict-prototypes -Wcast-qual -Wwrite-strings
CFLAGS ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L -fPIC $(WARN) $(CFLAGS) $(DEP_CFLAGS) -Isrc
LIBFLAG ?= -shared

BUILD  ?= build
SRCS    = $(sort $(wildcard src/*.c))
OBJS    = $(SRCS:src/%.c=$(BUILD)/obj/%.o)
CORE_SO = $(BUILD)/emrflow/core.so
CORE_OBJS = $(filter-out $(BUILD)/obj/lua_%.o $(BUILD)/obj/l_%.o,$(OBJS))
CTESTS  = $(patsubst spec/c/%.c,$(BUILD)/ctest/%,$(sort $(wildcard spec/c/test_*.c)))

INST_PREFIX ?= /usr/local
INST_LIBDIR ?= $(INST_PREFIX)/lib/lua/5.4
INST_LUADIR ?= $(INST_PREFIX)/share/lua/5.4
INST_BINDIR ?= $(INST_PREFIX)/bin

export LUA_PATH  := $(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/spec/?.lua;;
export LUA_CPATH := $(CURDIR)/$(BUILD)/?.so;;

.PHONY: all deps test ctest spec demo bench conformance asan lint docs clean print install

all: $(CORE_SO)

deps:
	@sh tools/deps.sh

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*.h) | $(BUILD)/obj
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(CORE_SO): $(OBJS) | $(BUILD)/emrflow
	$(CC) $(LIBFLAG) $(CFLAGS) $(LDFLAGS) -o $@ $(OBJS) $(DEP_LIBS)

$(BUILD)/ctest/%: spec/c/%.c $(CORE_OBJS) | $(BUILD)/ctest
	$(CC) $(ALL_CFLAGS) -o $@ $< $(CORE_OBJS) $(DEP_LIBS) -lm $(LDFLAGS)

$(BUILD)/obj $(BUILD)/emrflow $(BUILD)/ctest:
	mkdir -p $@

# C unit tests write their counts; the busted summary handler adds them.
ctest: $(CTESTS)
	@$(LUA) tools/run-ctests.lua $(BUILD)/ctest.counts $(CTESTS)

spec: $(CORE_SO)
	@$(BUSTED) -o spec/support/summary.lua $(SPEC)

test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory ctest; c=$$?; \
	  EMRFLOW_CTEST_COUNTS=$(BUILD)/ctest.counts $(BUSTED) -o spec/support/summary.lua $(SPEC); \
	  b=$$?; [ $$c = 0 ] && [ $$b = 0 ]

demo: deps
	@$(MAKE) --no-print-directory all
	$(LUA) bin/emrflow run examples/emr-eks-pipeline.json --local --progress

bench: all
	$(LUA) bench/run.lua

conformance: all
	$(LUA) tools/conformance.lua $(CONFORMANCE_ARGS)

ASAN_FLAGS = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan CFLAGS="$(ASAN_FLAGS)" LDFLAGS="-fsanitize=address,undefined" all
	@$(MAKE) --no-print-directory BUILD=build-asan CFLAGS="$(ASAN_FLAGS)" LDFLAGS="-fsanitize=address,undefined" ctest; c=$$?; \
	LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tools/lsan.supp:print_suppressions=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  EMRFLOW_BUILD=build-asan LUA_CPATH="$(CURDIR)/build-asan/?.so;;" \
	  EMRFLOW_CTEST_COUNTS=build-asan/ctest.counts $(BUSTED) -o spec/support/summary.lua $(SPEC); \
	  b=$$?; [ $$c = 0 ] && [ $$b = 0 ]

lint:
	$(LUACHECK) lua bin spec bench tools examples
	$(CPPCHECK) --quiet --error-exitcode=1 --enable=warning,performance,portability \
	  --std=c11 --inline-suppr -Isrc src spec/c

docs:
	ldoc -c config.ld .

install: all
	mkdir -p $(INST_LIBDIR)/emrflow $(INST_LUADIR) $(INST_BINDIR)
	cp $(CORE_SO) $(INST_LIBDIR)/emrflow/
	cp -R lua/emrflow $(INST_LUADIR)/
	cp bin/emrflow $(INST_BINDIR)/

clean:
	rm -rf build build-asan

print:
	@echo "CC=$(CC) LUA=$(LUA)"; echo "DEP_CFLAGS=$(DEP_CFLAGS)"; echo "DEP_LIBS=$(DEP_LIBS)"
	@echo "SRCS=$(SRCS)"
