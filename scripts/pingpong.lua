-- pingpong.lua: a whole server in five lines: read, write back, close.
-- Each connection is a task, written as plain sequential code.
-- Run: tide scripts/pingpong.lua
-- then: echo ping | tide scripts/echo_client.lua 7001
tide.tcp.serve("127.0.0.1", 7001, function (s)
  local line = s:read_until("\n")
  if line then s:write("pong: ", line) end
end):wait()
