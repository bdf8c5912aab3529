-- pingpong_streams.lua: ping-pong over TCP with Streams, the coroutine
-- layer: a server task answers each "ping N" line with "pong N"; a client
-- task sends ROUNDS pings, each after the previous pong. Both in one
-- script, on a free port of 127.0.0.1.
-- Run: tide scripts/pingpong_streams.lua [ROUNDS]   (default 5)
local rounds = tonumber(arg and arg[1]) or 5

local server <close> = assert(tide.tcp.listen("127.0.0.1", 0))
local _, port = server:getsockname()

local serving = tide.spawn(function ()
  local s <close> = assert(server:accept())
  for line in s:lines() do
    s:write((line:gsub("^ping", "pong")), "\n")
  end
end)

local c <close> = assert(tide.tcp.connect("127.0.0.1", port))
for i = 1, rounds do
  c:write("ping ", i, "\n")
  local reply = assert(c:read_until("\n"))
  print("client sent ping " .. i .. ", got " .. reply:sub(1, -2))
end
c:shutdown()                           -- the server's lines() ends
serving:await()
