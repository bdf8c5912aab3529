-- Echo server under tide: tide.tcp.serve runs a task per connection that
-- reads what is there (all that is buffered) and writes it back.
-- Usage: tide echo_server.lua; prints "port\t<n>" once listening.
local serving = assert(tide.tcp.serve("127.0.0.1", 0, function (stream)
  while true do
    local data = stream:read()
    if not data then return end
    stream:write(data)
  end
end))
local _, port = serving:getsockname()
io.stdout:write(string.format("port\t%d\n", port))
io.stdout:flush()
serving:wait()
