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
-- libhttp-parser-dev, pkg-config). OpenSSL and libcurl are loaded when
-- tide.tls and tide.http are first used: no headers needed.
external_dependencies = {
   LIBUV = { header = "uv.h" },
   LIBEDIT = { header = "editline/readline.h" },
   HTTP_PARSER = { header = "http_parser.h" },
}

build = {
   type = "make",
   build_target = "all",
   build_variables = {
      OPT = "$(CFLAGS)",
   },
   install_pass = false,
   install = {
      lib = { tide = "build/tide.so" },
      bin = { tide = "build/tide" },
   },
}
