-- tls_echo_server.lua: a TLS echo server with a certificate of its own,
-- made at start with openssl (a self-signed ECDSA P-256 certificate for
-- localhost and 127.0.0.1, in a temporary directory), one task per
-- connection; each client's name and TLS version are printed.
-- Run: tide scripts/tls_echo_server.lua [port]   (7443 by default), then
-- in a second terminal, trusting that certificate (its path is printed):
--   openssl s_client -connect 127.0.0.1:7443 -CAfile CERT -quiet
local port = tonumber(arg[1]) or 7443
local dir = tide.fs.mkdtemp("/tmp/tide-tls-")
local cert, key = dir .. "/cert.pem", dir .. "/key.pem"
local _, err, status = tide.process.exec { "openssl", "req", "-x509",
  "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
  "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
  "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1" }
assert(status == 0, err)

local server = assert(tide.tls.serve("127.0.0.1", port, function (s)
  local host, peer = s:getpeername()
  local info = s:tlsinfo()
  print(("%s:%d connected (%s, %s)"):format(host, peer, info.protocol, info.cipher))
  while true do
    local data = s:read()
    if not data then break end               -- the client closed
    s:write(data)
  end
  print(("%s:%d gone"):format(host, peer))
end, { cert = cert, key = key }))
print(("echoing TLS on 127.0.0.1:%d; certificate %s; Ctrl-C to stop")
  :format(select(2, server:getsockname()), cert))
local ok = pcall(server.wait, server)
os.remove(cert)
os.remove(key)
os.remove(dir)                     -- (no waiting: we may be cancelled)
if not ok then os.exit(130) end
