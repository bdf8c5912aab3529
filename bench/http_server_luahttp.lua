-- http_server_luahttp.lua: lua-http (Debian's lua-http, on cqueues)
-- answering 13 bytes, for wrk (bench/run.sh's http_server section). Debian
-- ships lua-http's pure Lua modules for Lua 5.1 to 5.3 only: they are
-- found there, cqueues for 5.4.
--   lua5.4 bench/http_server_luahttp.lua PORT | check
package.path = "/usr/share/lua/5.4/?.lua;/usr/share/lua/5.4/?/init.lua;"
  .. "/usr/share/lua/5.3/?.lua;/usr/share/lua/5.3/?/init.lua;"
  .. "/usr/share/lua/5.2/?.lua;/usr/share/lua/5.2/?/init.lua;" .. package.path
local server = require "http.server"
local headers = require "http.headers"
if arg[1] == "check" then return end     -- bench/run.sh: can it load?

local srv = assert(server.listen {
  host = "127.0.0.1", port = tonumber(arg[1]) or 8080,
  connection_setup_timeout = 60, intra_stream_timeout = 60,
  onstream = function (_, stream)
    assert(stream:get_headers())
    local h = headers.new()
    h:append(":status", "200")
    h:append("content-length", "13")
    assert(stream:write_headers(h, false))
    assert(stream:write_chunk("Hello, World!", true))
  end,
  onerror = function () end,
})
assert(srv:loop())
