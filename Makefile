# tide: build, test, asan, bench, install, run, deps.
# `make run` and `make test` set everything up on a fresh Debian 12 machine.

PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc
BUILD   ?= build

PKGS     = lua5.4 libuv libedit openssl
DEPS     = gcc make pkg-config liblua5.4-dev libuv1-dev libedit-dev lua5.4 lua-busted valgrind tmux \
           python3 curl libcurl4-openssl-dev nginx openssl libhttp-parser-dev libssl-dev wrk \
           redis-server lua-redis lua-socket luarocks lua-sec
BENCHDEPS = nodejs python3 lua-cqueues lua-luv valgrind time wrk nginx libnginx-mod-http-lua \
            python3-aiohttp lua-http redis-tools

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
UV_LIBS    := $(shell pkg-config --libs libuv 2>/dev/null)
LUA_LIBS   := $(shell pkg-config --libs lua5.4 2>/dev/null)
EDIT_LIBS  := $(shell pkg-config --libs libedit 2>/dev/null)
# tide loads OpenSSL on the first use of tide.tls (bindings/tls_load.c):
# only the fuzzers link it
SSL_LIBS   := $(shell pkg-config --libs openssl 2>/dev/null)

# The command links Lua and libuv in (as lua5.4 links Lua) where their
# static archives are installed, all of each, for the C modules it loads;
# a shared libuv is bound at startup (BIND_NOW), which costs more than the
# rest of an empty run. libedit is loaded by the prompt (repl.c), by the
# soname it has here.
LUA_A   := $(wildcard $(shell pkg-config --variable=libdir lua5.4 2>/dev/null)/liblua5.4.a)
UV_A    := $(firstword $(wildcard $(addprefix \
             $(shell pkg-config --variable=libdir libuv 2>/dev/null)/,libuv_a.a libuv.a)))
UV_PRIV := $(filter-out -luv,$(shell pkg-config --libs --static libuv 2>/dev/null))
EDIT_SONAME := $(shell objdump -p $$(pkg-config --variable=libdir libedit \
             2>/dev/null)/libedit.so 2>/dev/null | awk '$$1 == "SONAME" { print $$2 }')
CMD_LIBS = $(if $(LUA_A)$(UV_A),-Wl$(comma)--whole-archive $(LUA_A) $(UV_A) \
             -Wl$(comma)--no-whole-archive) \
           $(if $(LUA_A),,$(LUA_LIBS)) $(if $(UV_A),$(UV_PRIV),$(UV_LIBS)) -ldl -lm

OPT     ?= -O2 -g
WARN     = -Wall -Wextra -Werror
CFLAGS  += $(OPT) $(WARN) -fPIC -Iruntime $(PKG_CFLAGS) $(SAN)
LDFLAGS += $(SAN)

CORE     = sched task wait report timer coro debug handle runtime lazy interrupt where \
           pool alloc watch lock queue require future
BINDINGS = stream server dns tcp pipe udp signal process process_stdio fs fs_path \
           fs_file fs_read fs_dir fs_result fs_watch work tty \
           http_client http_client_error http_client_multi http_client_curl \
           http_server http_server_parser \
           tls tls_context tls_engine tls_error tls_load socket workers \
           stream_read stream_write stream_layer \
           transport transport_net transport_udp
BINDINGS += transport_process
OBJS     = $(CORE:%=$(BUILD)/obj/%.o) $(BINDINGS:%=$(BUILD)/obj/%.o) \
           $(BUILD)/obj/tide_lua.o $(BUILD)/obj/http_parser.o
HEADERS  = runtime/tide.h runtime/tide_int.h bindings/process.h bindings/fs.h \
           bindings/http_client.h bindings/http_transfer.h bindings/tls.h \
           bindings/tls_api.h
HEADERS += runtime/sync.h bindings/http_server.h
HEADERS += bindings/stream.h bindings/transport.h

# Outside the dynamic linker's own directories, programs built with
# `pkg-config --libs tide` find libtide.so through an rpath.
RPATH     = $(if $(filter /usr /usr/local,$(PREFIX)),,-Wl$(comma)-rpath$(comma)$(PREFIX)/lib)
comma     = ,

VERSION   = 0.1.0
SOVERSION = 0
LUAMODDIR = $(PREFIX)/lib/lua/5.4

.PHONY: all deps run test asan bench install uninstall clean

all: $(BUILD)/tide $(BUILD)/libtide.a $(BUILD)/libtide.so $(BUILD)/tide.so

$(BUILD)/obj/%.o: runtime/%.c $(HEADERS) | $(BUILD)/obj
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/obj/%.o: bindings/%.c $(HEADERS) | $(BUILD)/obj
	$(CC) $(CFLAGS) -c -o $@ $<

# http-parser (Debian's libhttp-parser-dev, position-independent) goes in
# as the object of its archive: every program and library built from OBJS
# has it, and nothing loads it at startup.
HP_A := $(firstword $(wildcard $(shell pkg-config --variable=libdir lua5.4 \
          2>/dev/null)/libhttp_parser.a) /usr/lib/$(shell $(CC) -dumpmachine \
          2>/dev/null)/libhttp_parser.a)

$(BUILD)/obj/http_parser.o: | $(BUILD)/obj
	cd $(BUILD)/obj && ar x $(HP_A) http_parser.o

# The Lua-side library, in load order. The files of one tide name run on
# its first use, each from the first index of the name in the one listed
# before it, so the last listed runs its code first: http_server_message.lua
# before http_server.lua; socket.lua, then socket_openresty.lua, then
# socket_module.lua.
LUALIB   = tide sync net process fs http http_server http_server_message tls
LUALIB  += socket_module socket_openresty socket ssl luasocket
LUALIB  += workers

$(BUILD)/tide_lua.c: $(LUALIB:%=runtime/lua/%.lua) runtime/lua/embed.lua | $(BUILD)/obj
	lua5.4 runtime/lua/embed.lua $@ tide__luasources \
	  $(foreach m,$(LUALIB),$(m)=runtime/lua/$(m).lua)

# The interactive prompt, part of the command only.
$(BUILD)/repl_lua.c: runtime/lua/repl.lua runtime/lua/embed.lua | $(BUILD)/obj
	lua5.4 runtime/lua/embed.lua $@ tide__replsources repl=runtime/lua/repl.lua

$(BUILD)/obj/repl.o: CFLAGS += $(if $(EDIT_SONAME),-DTIDE_EDITLIB='"$(EDIT_SONAME)"')

$(BUILD)/obj/repl_lua.o: $(BUILD)/repl_lua.c runtime/tide_int.h
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/obj/tide_lua.o: $(BUILD)/tide_lua.c runtime/tide_int.h
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/obj:
	mkdir -p $@

# The command exports the tide and Lua API to the C modules it loads.
CMDOBJS  = main heap repl repl_lua
$(BUILD)/tide: $(CMDOBJS:%=$(BUILD)/obj/%.o) $(OBJS)
	$(CC) $(LDFLAGS) -Wl,-E -Wl,-O1 -Wl,--as-needed -o $@ $^ $(CMD_LIBS)

$(BUILD)/libtide.a: $(OBJS)
	rm -f $@
	ar rcs $@ $^

# Both stay loaded once loaded (nodelete): a pool thread may still run
# their code, and unloading libuv with them would wait for that thread;
# lua_close unloads the C modules it loaded.
$(BUILD)/libtide.so: $(OBJS)
	$(CC) $(LDFLAGS) -shared -Wl,-z,nodelete -Wl,-soname,libtide.so.$(SOVERSION) \
	  -o $@ $^ $(LUA_LIBS) $(UV_LIBS) -lm
	ln -sf libtide.so $(BUILD)/libtide.so.$(SOVERSION)   # what a host linked here loads

# The Lua C module: lua_* symbols come from the interpreter that loads it.
$(BUILD)/tide.so: $(OBJS)
	$(CC) $(LDFLAGS) -shared -Wl,-z,nodelete -o $@ $^ $(UV_LIBS) -lm

# Install missing Debian packages (as root), or say what to run.
deps:
	@sh tools/deps.sh $(DEPS)

run: deps
	@$(MAKE) --no-print-directory all
	$(BUILD)/tide scripts/hello.lua

test: deps
	@$(MAKE) --no-print-directory all
	@sh spec/run.sh $(BUILD)

# The whole suite again with AddressSanitizer and UndefinedBehaviorSanitizer.
asan: deps
	@$(MAKE) --no-print-directory all BUILD=build/asan OPT="-O1 -g" \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
	@ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$(CURDIR)/spec/lsan.supp \
	  sh spec/run.sh build/asan

# Running out of memory: spec/oom.sh fails each allocation of a run of
# spec/embed/oom.lua in turn, with the plain build, then the sanitized one;
# it prints how many runs it tried and how many ended cleanly.
.PHONY: oomtest
oomtest: deps
	@$(MAKE) --no-print-directory all
	@sh spec/oom.sh $(BUILD)
	@$(MAKE) --no-print-directory all BUILD=build/asan OPT="-O1 -g" \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
	@ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$(CURDIR)/spec/lsan.supp \
	  sh spec/oom.sh build/asan

bench: deps
	@sh tools/deps.sh $(BENCHDEPS)
	@$(MAKE) --no-print-directory all
	@sh bench/run.sh $(BUILD)

# libFuzzer harnesses (spec/fuzz/*.c) over the library built with clang and
# the sanitizers, FUZZ_S seconds each (0: the corpus only) on the corpus in
# spec/fuzz/<name>/; not part of `make test`. FUZZ_MERGE=1 keeps new
# inputs in that corpus.
FUZZDEPS  = clang libclang-rt-14-dev
FUZZ_S   ?= 60
FUZZERS   = stream streambuf work cli http_server tls
FUZZSAN   = -fsanitize=address,undefined -fno-omit-frame-pointer \
            -fno-sanitize-recover=all
.PHONY: fuzz fuzzers

fuzz: deps
	@sh tools/deps.sh $(FUZZDEPS)
	@$(MAKE) --no-print-directory fuzzers BUILD=build/fuzz CC=clang \
	  OPT="-O1 -g" SAN="$(FUZZSAN) -fsanitize=fuzzer-no-link"
	@sh spec/fuzz/run.sh build/fuzz $(FUZZ_S) $(FUZZERS)

fuzzers: $(FUZZERS:%=$(BUILD)/fuzz_%)

# A harness may include the file it tests (for its static functions).
$(BUILD)/fuzz_%: spec/fuzz/%.c spec/fuzz/fuzz.h bindings/stream_read.c bindings/stream.h \
                 bindings/work.c bindings/http_server_parser.c runtime/main.c $(BUILD)/libtide.a \
                 $(BUILD)/obj/heap.o $(BUILD)/obj/repl.o $(BUILD)/obj/repl_lua.o
	$(CC) $(CFLAGS) -fsanitize=fuzzer -o $@ $< $(BUILD)/obj/heap.o \
	  $(BUILD)/obj/repl.o $(BUILD)/obj/repl_lua.o $(BUILD)/libtide.a \
	  $(LUA_LIBS) $(UV_LIBS) $(SSL_LIBS) $(EDIT_LIBS) -lm

# Mixed load in one process for SOAK_S seconds (tools/soak.lua, with a
# python3 peer): fails if RSS, fds, tasks or handles grow past their
# warm-up level, or if any data is lost.
SOAK_S ?= 600
.PHONY: soak
soak: deps
	@$(MAKE) --no-print-directory all
	@SOAK_S=$(SOAK_S) $(BUILD)/tide tools/soak.lua

# The command, the library (static and shared, with its soname), the header,
# the pkg-config file and the Lua module; DESTDIR is honoured.
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	  $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(LUAMODDIR)
	install -m 755 $(BUILD)/tide $(DESTDIR)$(PREFIX)/bin/tide
	install -m 644 $(BUILD)/libtide.a $(DESTDIR)$(PREFIX)/lib/libtide.a
	install -m 755 $(BUILD)/libtide.so \
	  $(DESTDIR)$(PREFIX)/lib/libtide.so.$(VERSION)
	ln -sf libtide.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libtide.so.$(SOVERSION)
	ln -sf libtide.so.$(SOVERSION) $(DESTDIR)$(PREFIX)/lib/libtide.so
	install -m 644 runtime/tide.h $(DESTDIR)$(PREFIX)/include/tide.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' \
	  -e 's|@RPATH@|$(RPATH)|' tools/tide.pc.in \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/tide.pc
	install -m 755 $(BUILD)/tide.so $(DESTDIR)$(LUAMODDIR)/tide.so
	@if [ -z "$(DESTDIR)$(RPATH)" ] && [ "$$(id -u)" = 0 ]; then ldconfig; fi

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/tide $(DESTDIR)$(PREFIX)/lib/libtide.a \
	  $(DESTDIR)$(PREFIX)/lib/libtide.so $(DESTDIR)$(PREFIX)/lib/libtide.so.$(SOVERSION) \
	  $(DESTDIR)$(PREFIX)/lib/libtide.so.$(VERSION) \
	  $(DESTDIR)$(PREFIX)/include/tide.h $(DESTDIR)$(PREFIX)/lib/pkgconfig/tide.pc \
	  $(DESTDIR)$(LUAMODDIR)/tide.so

clean:
	rm -rf build
