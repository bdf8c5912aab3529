-- echo_server.lua: a TCP echo server, one task per connection.
-- Run: tide scripts/echo_server.lua [port]   (then: tide scripts/echo_client.lua)
local port = tonumber(arg[1]) or 7000
local server = assert(tide.tcp.serve("127.0.0.1", port, function (s)
  local host, peer = s:getpeername()
  print(("%s:%d connected"):format(host, peer))
  while true do
    local data = s:read()
    if not data then break end               -- the client closed
    s:write(data)
  end
  print(("%s:%d gone"):format(host, peer))
end))
print(("echoing on 127.0.0.1:%d; Ctrl-C to stop"):format(select(2, server:getsockname())))
server:wait()
