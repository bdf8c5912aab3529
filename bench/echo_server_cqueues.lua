-- Echo server under cqueues (lua5.4 + lua-cqueues): a coroutine per
-- connection reads what is there (up to 64 KiB) and writes it back. With
-- TCP_NODELAY: without it, 16 KiB echoes stall on Nagle's algorithm here.
-- Usage: lua5.4 echo_server_cqueues.lua; prints "port\t<n>" once listening.
local cqueues = require "cqueues"
local socket = require "cqueues.socket"

local cq = cqueues.new()
local server = socket.listen { host = "127.0.0.1", port = 0 }
assert(server:listen())
local _, _, port = server:localname()
io.stdout:write(string.format("port\t%d\n", port))
io.stdout:flush()

local function echo(con)
  con:setmode("bn", "bn")  -- binary, unbuffered output
  -- cqueues raises on a connection reset by the client; that ends the echo.
  pcall(function ()
    while true do
      local data = con:read(-65536)
      if not data then break end
      if not con:write(data) then break end
    end
  end)
  con:close()
end

cq:wrap(function ()
  for con in server:clients({ nodelay = true }) do
    cq:wrap(echo, con)
  end
end)
assert(cq:loop())
