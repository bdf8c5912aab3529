-- tide as a rock: the module for stock Lua 5.4 (tide.so) and the tide
-- command. `luarocks --lua-version=5.4 make` in the source tree builds them
-- with the Makefile, which finds Lua 5.4's headers and libuv through
-- pkg-config as `make` does; `luarocks install` fetches the source archive
-- that source.url names and does the same.
rockspec_format = "3.0"
package = "tide"
version = "0.1.0-1"

source = {
   -- The release archive (git archive --prefix=tide-0.1.0/ -o
   -- tide-0.1.0.tar.gz v0.1.0), beside this file for `luarocks install
   -- ./tide-0.1.0-1.rockspec`; the copy of the rockspec put on a rocks
   -- server names the archive's address there. `luarocks make` builds the
   -- tree it runs in and needs none.
   url = "tide-0.1.0.tar.gz",
   dir = "tide-0.1.0",
}

description = {
   summary = "An embeddable async runtime for Lua 5.4 on libuv",
   detailed = [[
Lua code runs in tasks (coroutines); a call that would block (a sleep, a
socket read, a child process, an HTTP request) suspends only its task.
`require "tide"` from stock Lua 5.4, or the `tide` command, a superset of
the `lua` command whose script is already a task.
]],
   license = "MIT",
   labels = { "async", "libuv", "coroutines", "networking" },
}

dependencies = {
   "lua >= 5.4, < 5.5",
}

-- What the build needs besides Lua (Debian 12: libuv1-dev, libedit-dev,
-- libhttp-parser-dev, libssl-dev, libcurl4-openssl-dev, pkg-config).
-- OpenSSL and libcurl are loaded when tide.tls and tide.http are first
-- used, but their headers are needed to build (and the Makefile asks
-- pkg-config for openssl's flags).
external_dependencies = {
   LIBUV = { header = "uv.h" },
   LIBEDIT = { header = "editline/readline.h" },
   HTTP_PARSER = { header = "http_parser.h" },
   OPENSSL = { header = "openssl/ssl.h" },
   -- Debian keeps curl/curl.h under include/<multiarch>, where LuaRocks
   -- does not look for headers; libcurl.so is libcurl4-openssl-dev's too
   LIBCURL = { library = "curl" },
}

-- The rock builds in a directory of its own (build/rock), so LuaRocks'
-- CFLAGS apply even in a tree where `make` already built build/.
build = {
   type = "make",
   build_target = "all",
   build_variables = {
      OPT = "$(CFLAGS)",
      BUILD = "build/rock",
   },
   install_pass = false,
   install = {
      lib = { tide = "build/rock/tide.so" },
      bin = { tide = "build/rock/tide" },
   },
}
