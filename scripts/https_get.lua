-- https_get.lua: an HTTPS GET by hand: tide.tls.connect (verified against
-- the system's trust store, or --cafile), an HTTP/1.1 request written on
-- the Stream, the response read with read_until and read_exactly (a
-- Content-Length, chunks, or up to the end), what TLS agreed on printed.
-- Run: tide scripts/https_get.lua https://HOST[:PORT][/PATH] [--cafile FILE | --insecure]
-- Without the internet, a local HTTPS server does, for instance openssl's:
--   openssl s_server -accept 8443 -www -cert CERT -key KEY
--   tide scripts/https_get.lua https://localhost:8443/ --cafile CERT
local url, flag, value = arg[1], arg[2], arg[3]
local host, port, path = (url or ""):match("^https://([^/:]+):?(%d*)(/?.*)$")
if not host then
  io.stderr:write("usage: tide scripts/https_get.lua https://HOST[:PORT][/PATH] ",
                  "[--cafile FILE | --insecure]\n")
  os.exit(2)
end
local opts = { timeout = 10, alpn = { "http/1.1" } }
if flag == "--cafile" then opts.cafile = value
elseif flag == "--insecure" then opts.verify = false end

local s <close>, err, code = tide.tls.connect(host, tonumber(port) or 443, opts)
if not s then
  io.stderr:write(("%s: %s (%s)\n"):format(url, err, code))
  os.exit(1)
end
local info = s:tlsinfo()
io.stderr:write(("%s, %s, verified: %s, certificate of %s by %s\n"):format(
  info.protocol, info.cipher, tostring(info.verified),
  info.peer.subject, info.peer.issuer))

s:write("GET ", path == "" and "/" or path, " HTTP/1.1\r\nHost: ", host,
        "\r\nUser-Agent: tide\r\nConnection: close\r\n\r\n")
local head = assert(s:read_until("\r\n\r\n", 1 << 20))
io.stderr:write(head)
local length = head:match("\r\n[Cc]ontent%-[Ll]ength: *(%d+)")
if length then
  io.write(assert(s:read_exactly(tonumber(length))))
elseif head:lower():find("\r\ntransfer%-encoding: *chunked") then
  while true do                      -- size in hex, the chunk, CRLF
    local size = tonumber(assert(s:read_until("\r\n")):match("^%x+"), 16)
    if size == 0 then break end
    io.write(assert(s:read_exactly(size)))
    s:read_exactly(2)
  end
else
  while true do                      -- the body ends with the connection
    local data, e = s:read()
    if not data then
      if e then io.stderr:write("\n", e, "\n") end
      break
    end
    io.write(data)
  end
end
