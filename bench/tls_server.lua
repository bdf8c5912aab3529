-- TLS echo server under tide: tide.tls.serve runs a task per connection
-- (its handshake, then the echo): it reads what is there (up to 64 KiB)
-- and writes it back.
-- Usage: tide tls_server.lua CERT KEY; prints "port\t<n>" once listening.
local serving = assert(tide.tls.serve("127.0.0.1", 0, function (stream)
  while true do
    local data = stream:read()
    if not data then return end
    stream:write(data)
  end
end, { cert = arg[1], key = arg[2] }))
local _, port = serving:getsockname()
io.stdout:write(string.format("port\t%d\n", port))
io.stdout:flush()
serving:wait()
