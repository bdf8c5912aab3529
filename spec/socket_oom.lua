-- socket_oom.lua: what spec/embed/oom.c runs for spec/socket_oom_spec.lua
-- while its allocator fails: tide.socket's tcp (connect, send, the receive
-- patterns, a timeout, select, accept), udp and
-- wrong use raising, each part ending quickly whatever allocation fails.
local tide = tide
local socket = require "tide.socket"

local srv = assert(socket.bind("127.0.0.1", 0))
local _, port = srv:getsockname()
local server = tide.spawn(function ()
  while true do
    local a = srv:accept()
    if not a then return end
    tide.spawn(function ()
      a:settimeout(2)
      while true do
        local l = a:receive()
        if not l then break end
        a:send(l .. "\r\n")
      end
      a:close()
    end)
  end
end)

local function client ()
  local c <close> = assert(socket.connect("127.0.0.1", port))
  c:settimeout(2)
  assert(c:send("one\ntwo\n") == 8.0)
  assert(c:receive() == "one")
  assert(c:receive(3) == "two")
  assert(c:receive("*l") == "")
  local r = socket.select({ c }, nil, 0.01)
  assert(#r == 0)
  c:settimeout(0.01)
  local d, err = c:receive(10)
  assert(d == nil and err == "timeout")
  assert(not pcall(c.receive, c, "*x"))
  c:settimeout(2)
  c:send("again\n")
  assert(c:receive() == "again")
end
client()

local a, b = socket.udp(), socket.udp()
assert(a:setsockname("127.0.0.1", 0))
local ip, uport = a:getsockname()
a:settimeout(2)
assert(b:sendto("dgram", ip, uport) == 5.0)
assert(a:receive() == "dgram")
a:close()
b:close()

srv:close()
server:await()
return "done"
