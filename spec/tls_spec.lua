-- tls_spec.lua: tide.tls (bindings/tls*.c, the layer in stream.c,
-- runtime/lua/tls.lua) against real peers on 127.0.0.1: openssl s_server
-- and s_client, python3's ssl module, curl, and tide itself. The
-- certificates are made at run time (spec/tls_certs.lua).

local sanitized = BUILD:match("asan") ~= nil

local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p " .. dir))
local C = dofile("spec/tls_certs.lua")(dir)
local CA = C.ca

teardown(function () os.execute("rm -rf " .. dir) end)

-- ---- Peers -----------------------------------------------------------------

local PRE = ([[
import hashlib, os, random, selectors, socket, ssl, sys, threading, time
D = %q
def sctx(name="server"):
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    c.load_cert_chain(D + "/" + name + ".pem", D + "/" + name + ".key")
    return c
def cctx(ca="ca"):
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.load_verify_locations(D + "/" + ca + ".pem")
    return c
def listen():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    print(s.getsockname()[1], flush=True)
    return s
def recvall(s):
    out = b""
    while True:
        d = s.recv(65536)
        if not d: return out
        out += d
]]):format(dir)

local function pyserver (src) return python(PRE .. src) end

-- A python3 client of port, run in the background; returns a function
-- that waits (in a task) for its output.
local function pyclient (src, port)
  local path = tmpfile(PRE .. "PORT = " .. port .. "\n" .. src)
  local wait = background("python3 -u " .. path)
  return function ()
    local out = wait()
    os.remove(path)
    return out
  end
end

-- openssl s_server with args, on a free port: the port, and a function
-- that stops it and returns its output.
local function s_server (args)
  local srv = assert(tide.tcp.listen("127.0.0.1", 0))
  local _, port = srv:getsockname()
  srv:close()
  local out = os.tmpname()
  os.execute(("cd %s && (env -u LD_PRELOAD timeout 30 openssl s_server " ..
              "-accept 127.0.0.1:%d %s > %s 2>&1 & echo $! > %s.pid)")
    :format(dir, port, args, out, out))
  local function output ()
    local f = io.open(out)
    local s = f and f:read("a") or ""
    if f then f:close() end
    return s
  end
  local start = tide.now()
  while not output():find("ACCEPT", 1, true) do
    assert(tide.now() - start < 10, "s_server did not start: " .. output())
    tide.sleep(0.01)
  end
  return port, function ()
    local f = io.open(out .. ".pid")
    local pid = f:read("l")
    f:close()
    os.execute("kill " .. pid .. " 2>/dev/null")
    local s = output()
    os.remove(out)
    os.remove(out .. ".pid")
    return s
  end
end

local function server_opts (extra)
  local o = { cert = C.server.cert, key = C.server.key }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

-- A tide TLS echo server (one task per connection).
local function echo_server (opts)
  return assert(tide.tls.serve("127.0.0.1", 0, function (s)
    while true do
      local d = s:read()
      if not d then return end
      s:write(d)
    end
  end, server_opts(opts)))
end

local function port_of (srv) return select(2, srv:getsockname()) end

-- A plain TCP server whose connections handler(s) takes.
local function tcp_server (handler)
  return assert(tide.tcp.serve("127.0.0.1", 0, handler))
end

-- The handles of tide's objects open now, once those closing are gone
-- (and those of objects already dropped are collected).
local function handles ()
  collectgarbage()
  tide.sleep(0.01)
  return (tide.handles())
end

describe("tide.tls.connect", function ()

  it("verifies openssl s_server against cafile and exchanges data", async(function ()
    local port, stop = s_server(("-cert %s -key %s -rev"):format(C.server.cert, C.server.key))
    local s <close> = assert(tide.tls.connect("localhost", port, { cafile = CA }))
    assert.equal(s, s:write("hello\n"))
    assert.equal("olleh\n", s:read_until("\n"))
    local info = s:tlsinfo()
    assert.equal("TLSv1.3", info.protocol)
    assert.is_true(info.verified)
    assert.is_false(info.resumed)
    assert.equal("localhost", info.servername)
    assert.equal("CN=localhost", info.peer.subject)
    assert.equal("CN=tide test CA", info.peer.issuer)
    assert.same({ "localhost", "127.0.0.1" }, info.peer.san)
    assert.is_true(info.peer.not_before <= os.time() and os.time() < info.peer.not_after)
    assert.is_string(info.cipher)
    s:close()
    stop()
  end))

  it("checks an IP address against the certificate's IP names, sends no SNI for it", async(function ()
    local port, done = pyserver([[
srv = listen()
ctx = sctx()
names = []
ctx.sni_callback = lambda s, name, c: names.append(name)
c = ctx.wrap_socket(srv.accept()[0], server_side=True)
c.sendall(b"hi")
c.unwrap()
print("sni", names)
]])
    local s <close> = assert(tide.tls.connect("127.0.0.1", port, { cafile = CA }))
    assert.equal("hi", s:read())
    assert.is_nil(s:read())                -- the peer's close_notify: EOF
    assert.is_nil(s:tlsinfo().servername)
    s:close()
    assert.matches("sni %[None%]", done())
  end))

  it("fails a self-signed certificate, an expired one, an unknown issuer", async(function ()
    local cases = {
      { C.selfsigned, { cafile = CA }, "certificate verify failed: self%-signed certificate" },
      { C.expired, { cafile = CA }, "certificate verify failed: certificate has expired" },
      { C.server, { cafile = C.otherca }, "certificate verify failed: unable to get local issuer certificate" },
    }
    for _, case in ipairs(cases) do
      local srv <close> = assert(tide.tls.serve("127.0.0.1", 0, function () end,
        { cert = case[1].cert, key = case[1].key }))
      local s, err, code = tide.tls.connect("localhost", port_of(srv), case[2])
      assert.is_nil(s)
      assert.matches("^" .. case[3] .. "$", err)
      assert.equal("ETLSVERIFY", code)
    end
  end))

  it("fails a certificate for another host name, saying both names", async(function ()
    local srv <close> = echo_server { cert = C.wronghost.cert, key = C.wronghost.key }
    local s, err, code = tide.tls.connect("localhost", port_of(srv), { cafile = CA })
    assert.is_nil(s)
    assert.equal("host name mismatch: expected localhost; the certificate is for example.org", err)
    assert.equal("ETLSHOSTNAME", code)
    -- servername names the host to expect (and to send as SNI)
    s = assert(tide.tls.connect("127.0.0.1", port_of(srv),
                                { cafile = CA, servername = "example.org" }))
    s:close()
    s, err, code = tide.tls.connect("127.0.0.1", port_of(srv), { cafile = CA })
    assert.equal("host name mismatch: expected 127.0.0.1; the certificate is for example.org", err)
    assert.equal("ETLSHOSTNAME", code)
  end))

  it("verifies against the system store: SSL_CERT_FILE and SSL_CERT_DIR are honoured, and an empty store is an error", async(function ()
    local srv <close> = echo_server()
    local script = tmpfile(([[
      local s, err, code = tide.tls.connect("localhost", %d)
      print(s and "ok" or err, code)
    ]]):format(port_of(srv)))
    local function run (env)
      local p = tide.process.spawn { TIDE, script, env = env, stdout = "pipe" }
      local out = readall(p.stdout)
      p:wait()
      return out
    end
    local base = { PATH = os.getenv("PATH") }
    local function with (t)
      local e = {}
      for k, v in pairs(base) do e[k] = v end
      for k, v in pairs(t) do e[k] = v end
      return e
    end
    assert.matches("certificate verify failed: unable to get local issuer certificate\tETLSVERIFY",
                   run(base))
    assert.matches("^ok", run(with { SSL_CERT_FILE = CA }))
    local hashdir = dir .. "/hashed"
    os.execute(("mkdir -p %s && cp %s %s/ && openssl rehash %s 2>/dev/null || " ..
                "c_rehash %s >/dev/null 2>&1"):format(hashdir, CA, hashdir, hashdir, hashdir))
    assert.matches("^ok", run(with { SSL_CERT_FILE = "/nonexistent", SSL_CERT_DIR = hashdir }))
    local out = run(with { SSL_CERT_FILE = "/nonexistent", SSL_CERT_DIR = "/nonexistent" })
    assert.matches("no trusted certificates: none in /nonexistent nor in /nonexistent", out)
    assert.matches("ETLSCONFIG", out)
    os.remove(script)
  end))

  it("connects with verify = false, and tlsinfo says it was not verified", async(function ()
    local srv <close> = echo_server { cert = C.selfsigned.cert, key = C.selfsigned.key }
    local s <close> = assert(tide.tls.connect("127.0.0.1", port_of(srv), { verify = false }))
    s:write("x")
    assert.equal("x", s:read())
    assert.is_false(s:tlsinfo().verified)
  end))

  it("sends SNI: the host, or servername", async(function ()
    local port, done = pyserver([[
srv = listen()
ctx = sctx()
names = []
ctx.sni_callback = lambda s, name, c: names.append(name)
for i in range(2):
    c = ctx.wrap_socket(srv.accept()[0], server_side=True)
    c.unwrap()
print("sni", names)
]])
    local a = assert(tide.tls.connect("localhost", port, { cafile = CA }))
    assert.is_nil(a:read())
    a:close()
    local b = assert(tide.tls.connect("127.0.0.1", port, { verify = false, servername = "other.test" }))
    assert.is_nil(b:read())
    b:close()
    assert.matches("sni %['localhost', 'other.test'%]", done())
  end))

  it("offers ALPN and tells what the server chose", async(function ()
    local port, done = pyserver([[
srv = listen()
ctx = sctx()
ctx.set_alpn_protocols(["h2", "http/1.1"])
for i in range(2):
    c = ctx.wrap_socket(srv.accept()[0], server_side=True)
    print("chose", c.selected_alpn_protocol())
    c.unwrap()
]])
    local s = assert(tide.tls.connect("localhost", port, { cafile = CA, alpn = { "http/1.1", "x" } }))
    assert.equal("http/1.1", s:tlsinfo().alpn)
    assert.is_nil(s:read())
    s:close()
    s = assert(tide.tls.connect("localhost", port, { cafile = CA, alpn = { "spdy/1" } }))
    assert.is_nil(s:tlsinfo().alpn)
    assert.is_nil(s:read())
    s:close()
    local out = done()
    assert.matches("chose http/1.1\nchose None", out)
  end))

  it("refuses a server below min_version, and a server with no cipher in common", async(function ()
    local srv <close> = echo_server { max_version = "1.2" }
    local s, err, code = tide.tls.connect("localhost", port_of(srv), { cafile = CA, min_version = "1.3" })
    assert.is_nil(s)
    assert.equal("ETLSALERT", code)
    assert.matches("protocol version", err)
    local srv2 <close> = echo_server { max_version = "1.2", ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256" }
    s, err, code = tide.tls.connect("localhost", port_of(srv2), { cafile = CA,
      max_version = "1.2", ciphers = "ECDHE-ECDSA-CHACHA20-POLY1305" })
    assert.is_nil(s)
    assert.equal("ETLSALERT", code)
    assert.matches("handshake failure", err)
  end))

  it("times the connect and the handshake out under one timeout", async(function ()
    local before = handles()
    local held = {}
    local srv <close> = tcp_server(function (c)   -- accepts, never answers
      held[#held + 1] = c
      tide.sleep(5)
    end)
    local t0 = tide.now()
    local s, err, code = tide.tls.connect("127.0.0.1", port_of(srv), { cafile = CA, timeout = 0.2 })
    assert.is_nil(s)
    assert.equal(("127.0.0.1:%d: handshake timed out"):format(port_of(srv)), err)
    assert.equal("ETIMEDOUT", code)
    assert.is_true(tide.now() - t0 < 1)
    srv:close()
    assert.is_true(handles() <= before)   -- nothing of ours left open
  end))

  it("fails cleanly on garbage instead of a handshake", async(function ()
    local srv <close> = tcp_server(function (c)
      c:read()
      c:write("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
      c:read()
    end)
    local s, err, code = tide.tls.connect("127.0.0.1", port_of(srv), { cafile = CA })
    assert.is_nil(s)
    assert.equal("ETLSHANDSHAKE", code)
    assert.matches("^handshake failed: .* %(the peer does not speak TLS%?%)$", err)
  end))

  it("fails cleanly when the peer closes during the handshake", async(function ()
    local srv <close> = tcp_server(function (c) c:read() end)
    local s, err, code = tide.tls.connect("127.0.0.1", port_of(srv), { cafile = CA })
    assert.is_nil(s)
    assert.equal("ETLSHANDSHAKE", code)
    assert.equal("handshake failed: the connection closed", err)
  end))

  it("reads the data, then an error, when the peer closes without close_notify", async(function ()
    local port, done = pyserver([[
srv = listen()
c = sctx().wrap_socket(srv.accept()[0], server_side=True)
c.sendall(b"partial")
c.close()
]])
    local s <close> = assert(tide.tls.connect("localhost", port, { cafile = CA }))
    assert.equal("partial", s:read_exactly(7))
    local d, err, code = s:read()
    assert.is_nil(d)
    assert.equal("the connection closed without close_notify (the data may be truncated)", err)
    assert.equal("ETLSTRUNCATED", code)
    assert.same({ nil, err, code }, { s:read() })   -- and so on
    done()
  end))

  -- A TCP proxy between a client and the tide server at port that passes
  -- the server's first keep bytes, then closes (cut) or changes the next
  -- byte and goes on (flip).
  local function proxy (port, keep, how)
    return tcp_server(function (c)
      local up <close> = assert(tide.tcp.connect("127.0.0.1", port))
      local t = tide.spawn(pcall, function ()   -- up may close first
        while true do
          local d = c:read()
          if not d then up:shutdown() return end
          up:write(d)
        end
      end)
      local passed = 0
      while true do
        local d = up:read()
        if not d then break end
        if passed <= keep and passed + #d > keep then
          local i = keep - passed
          if how == "cut" then
            c:write(d:sub(1, i))
            break
          end
          d = d:sub(1, i) .. string.char((d:byte(i + 1) + 1) % 256) .. d:sub(i + 2)
        end
        c:write(d)
        passed = passed + #d
      end
      c:close()
      t:cancel()
      pcall(t.await, t)
    end)
  end

  local function big_server ()
    return assert(tide.tls.serve("127.0.0.1", 0, function (s)
      s:read()
      s:write(("x"):rep(1 << 20))
      s:read()
    end, server_opts()))
  end

  it("fails a truncated record as truncated, never hangs", async(function ()
    local srv <close> = big_server()
    local px <close> = proxy(port_of(srv), 100000, "cut")
    local s <close> = assert(tide.tls.connect("localhost", port_of(px), { cafile = CA }))
    s:write("go")
    local n, d, err, code = 0, nil, nil, nil
    repeat
      d, err, code = s:read()
      n = n + (d and #d or 0)
    until not d
    assert.is_true(n > 50000 and n < 100000)
    assert.equal("ETLSTRUNCATED", code)
  end))

  it("fails a corrupted record as a broken record", async(function ()
    local srv <close> = big_server()
    local px <close> = proxy(port_of(srv), 100000, "flip")
    local s <close> = assert(tide.tls.connect("localhost", port_of(px), { cafile = CA }))
    s:write("go")
    local d, err, code
    repeat d, err, code = s:read() until not d
    assert.equal("ETLSPROTOCOL", code)
    assert.matches("^broken TLS record: ", err)
  end))

  it("resumes sessions with a context that caches them", async(function ()
    local srv <close> = echo_server()
    local ctx = assert(tide.tls.context { cafile = CA })
    local resumed = {}
    for i = 1, 3 do
      local s = assert(tide.tls.connect("localhost", port_of(srv), { context = ctx }))
      s:write("x")
      assert.equal("x", s:read())       -- the session tickets come with it
      resumed[i] = s:tlsinfo().resumed
      s:close()
    end
    assert.same({ false, true, true }, resumed)
    local nocache = assert(tide.tls.context { cafile = CA, session_cache = false })
    for i = 1, 2 do
      local s = assert(tide.tls.connect("localhost", port_of(srv), { context = nocache }))
      s:write("x")
      assert.equal("x", s:read())
      resumed[i] = s:tlsinfo().resumed
      s:close()
    end
    assert.same({ false, false }, { resumed[1], resumed[2] })
  end))

  it("sends close_notify on close: the peer reads a clean end", async(function ()
    local port, done = pyserver([[
srv = listen()
c = sctx().wrap_socket(srv.accept()[0], server_side=True)
print("got", recvall(c))
]])
    local s = assert(tide.tls.connect("localhost", port, { cafile = CA }))
    s:write("bye")
    s:close()
    assert.matches("got b'bye'", done())
  end))

  it("shuts down the write side with close_notify and reads on", async(function ()
    local port, done = pyserver([[
srv = listen()
c = sctx().wrap_socket(srv.accept()[0], server_side=True)
data = recvall(c)
c.sendall(data.upper())
c.unwrap()
]])
    local s <close> = assert(tide.tls.connect("localhost", port, { cafile = CA }))
    s:write("abc")
    assert.is_true(s:shutdown())
    assert.equal("ABC", readall(s))
    done()
  end))
end)

describe("tide.tls with 64 MiB each way", function ()
  it("carries them intact, full duplex, hash-checked (python3 peer)", async(function ()
    local size = (sanitized and 16 or 64) * 1024 * 1024
    local file = dir .. "/random"
    assert(os.execute(("head -c %d /dev/urandom > %s"):format(size, file)))
    local sum = sh("sha256sum " .. file):match("^(%x+)")
    local port, done = pyserver(([[
N = %d
srv = listen()
s = sctx().wrap_socket(srv.accept()[0], server_side=True)
s.setblocking(False)
sel = selectors.DefaultSelector()
sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
rx, tx, got, sent, pending, rnd = hashlib.sha256(), hashlib.sha256(), 0, 0, b"", random.Random(7)
while got < N or sent < N:
    for key, ev in sel.select():
        if ev & selectors.EVENT_READ:
            try:
                while True:
                    d = s.recv(1 << 20)
                    if not d: raise SystemExit("early eof")
                    rx.update(d); got += len(d)
            except ssl.SSLWantReadError: pass
        if ev & selectors.EVENT_WRITE and sent < N:
            if not pending:
                pending = rnd.randbytes(min(N - sent, 1 << 18)); tx.update(pending)
            try:
                n = s.send(pending); pending = pending[n:]; sent += n
            except ssl.SSLWantWriteError: pass
            if sent >= N: sel.modify(s, selectors.EVENT_READ)
print("rx", rx.hexdigest(), got)
print("tx", tx.hexdigest(), sent)
]]):format(size))
    local s <close> = assert(tide.tls.connect("localhost", port, { cafile = CA }))
    local writer = tide.spawn(function ()
      local f <close> = assert(io.open(file, "rb"))
      while true do
        local chunk = f:read(1 << 20)
        if not chunk then break end
        assert(s:write(chunk))
      end
      assert(s:drain())
    end)
    local p = tide.process.spawn { "sha256sum", stdin = "pipe", stdout = "pipe" }
    local got = 0
    while got < size do
      local d = assert(s:read())
      got = got + #d
      p.stdin:write(d)
    end
    p.stdin:close()
    local mine = readall(p.stdout):match("^(%x+)")
    p:wait()
    writer:await()
    s:close()
    local out = done()
    assert.equal(("rx %s %d"):format(sum, size), out:match("rx %x+ %d+"))
    assert.equal(("tx %s %d"):format(mine, size), out:match("tx %x+ %d+"))
    os.remove(file)
  end))

  it("carries 4 MiB tide to tide both ways at once", async(function ()
    local srv <close> = echo_server()
    local s <close> = assert(tide.tls.connect("localhost", port_of(srv), { cafile = CA }))
    local parts = {}
    for i = 1, 4096 do parts[i] = ("%08d"):format(i) .. ("."):rep(1015) .. "\n" end
    local data = table.concat(parts)
    local w = tide.spawn(function () s:write(data) s:shutdown() end)
    assert.equal(data, readall(s))
    w:await()
  end))
end)

describe("tide.tls backpressure and cancellation", function ()
  it("makes a writer wait while the peer does not read, and loses nothing", async(function ()
    local go = tide.Event()
    local received = tide.Queue()
    local srv <close> = assert(tide.tls.serve("127.0.0.1", 0, function (s)
      go:wait()
      received:put(#readall(s))
    end, server_opts()))
    local s <close> = assert(tide.tls.connect("localhost", port_of(srv), { cafile = CA }))
    local total, chunk = 64 << 20, ("y"):rep(64 * 1024)
    local written = 0
    local w = tide.spawn(function ()
      while written < total do
        s:write(chunk)
        written = written + #chunk
      end
      s:shutdown()
    end)
    tide.sleep(0.3)
    assert.is_false(w:done())
    assert.is_true(written < total / 2, written)  -- held back, not buffered
    go:set()
    w:await()
    assert.equal(total, received:get())
  end))

  it("is cancelled cleanly during the handshake, leaving nothing open", async(function ()
    local before = handles()
    local srv <close> = tcp_server(function (c) c:read() tide.sleep(5) end)
    local t = tide.spawn(tide.tls.connect, "127.0.0.1", port_of(srv), { cafile = CA })
    tide.sleep(0.05)
    t:cancel()
    assert.has_error(function () t:await() end)
    assert.is_true(t:cancelled())
    srv:close()
    assert.is_true(handles() <= before)   -- nothing of ours left open
  end))

  it("stays usable after a read is cancelled, losing no data", async(function ()
    local srv <close> = echo_server()
    local s <close> = assert(tide.tls.connect("localhost", port_of(srv), { cafile = CA }))
    local r = tide.spawn(s.read, s)
    tide.sleep(0.02)
    r:cancel()
    assert.has_error(function () r:await() end)
    s:write("after")
    assert.equal("after", s:read_exactly(5))
  end))

  it("cancels a write waiting on backpressure: it wrote nothing, the stream goes on", async(function ()
    local go = tide.Event()
    local srv <close> = assert(tide.tls.serve("127.0.0.1", 0, function (s)
      go:wait()
      local data = readall(s)
      s:write(tostring(#data))
    end, server_opts()))
    local s <close> = assert(tide.tls.connect("localhost", port_of(srv), { cafile = CA }))
    local chunk = ("z"):rep(1 << 20)
    local sent = 0
    local w = tide.spawn(function ()
      while true do
        s:write(chunk)
        sent = sent + #chunk
      end
    end)
    tide.sleep(0.3)
    w:cancel()
    assert.has_error(function () w:await() end)
    go:set()
    s:write("tail")
    s:shutdown()
    assert.equal(tostring(sent + 4), readall(s))
  end))

  it("cancels a shutdown and a server's handshake cleanly", async(function ()
    local before = handles()
    local srv <close> = assert(tide.tls.listen("127.0.0.1", 0, server_opts()))
    local acc = tide.spawn(srv.accept, srv)
    local raw = assert(tide.tcp.connect("127.0.0.1", port_of(srv)))
    tide.sleep(0.05)
    acc:cancel()                       -- waiting for the client hello
    assert.has_error(function () acc:await() end)
    raw:close()
    local echo <close> = echo_server()
    local s = assert(tide.tls.connect("localhost", port_of(echo), { cafile = CA }))
    local t = tide.spawn(s.shutdown, s)
    t:cancel()
    pcall(t.await, t)
    s:close()
    srv:close()
    echo:close()
    assert.is_true(handles() <= before)   -- nothing of ours left open
  end))
end)

describe("tide.tls.wrap", function ()
  it("upgrades a client stream after a plaintext exchange (STARTTLS)", async(function ()
    local port, done = pyserver([[
srv = listen()
c = srv.accept()[0]
f = c.makefile("rb")
assert f.readline() == b"STARTTLS\n"
c.sendall(b"220 go ahead\n")
s = sctx().wrap_socket(c, server_side=True)
s.sendall(b"secret")
s.unwrap()
]])
    local s <close> = assert(tide.tcp.connect("127.0.0.1", port))
    s:write("STARTTLS\n")
    assert.equal("220 go ahead\n", s:read_until("\n"))
    assert.is_nil(s:tlsinfo())
    assert.equal(s, tide.tls.wrap(s, { cafile = CA, servername = "localhost" }))
    assert.equal("secret", readall(s))
    assert.equal("TLSv1.3", s:tlsinfo().protocol)
    s:close()                          -- python's unwrap waits for it
    done()
  end))

  it("upgrades a server stream with the client's hello already buffered", async(function ()
    local srv <close> = tcp_server(function (c)
      tide.sleep(0.3)                  -- the command and the hello arrive
      assert.equal("STARTTLS\n", c:read_until("\n"))
      assert(tide.tls.wrap(c, server_opts { server = true }))
      c:write("over tls: ", c:read_until("\n"))
      c:shutdown()
      c:read()
    end)
    local out = pyclient([[
c = socket.create_connection(("127.0.0.1", PORT))
c.sendall(b"STARTTLS\n")
s = cctx().wrap_socket(c, server_hostname="localhost")
s.sendall(b"ping\n")
print(recvall(s))
]], port_of(srv))()
    assert.matches("b'over tls: ping\\n'", out)
  end))

  it("raises on wrong use", async(function ()
    local srv <close> = echo_server()
    local s <close> = assert(tide.tcp.connect("127.0.0.1", port_of(srv)))
    for _, opts in ipairs { { cafile = CA }, { cafile = CA, timeout = 1 } } do
      local ok, err = pcall(tide.tls.wrap, s, opts)
      assert.is_false(ok)
      assert.matches("bad argument #2 to 'tide.tls.wrap' ('servername' expected: the name "
        .. "the peer's certificate must have (or verify = false))", err, 1, true)
    end
    local r = tide.spawn(s.read, s)
    tide.yield()
    assert.has_error(function () tide.tls.wrap(s, { servername = "localhost", cafile = CA }) end)
    r:cancel()
    pcall(r.await, r)
    assert(tide.tls.wrap(s, { servername = "localhost", cafile = CA }))
    assert.has_error(function () tide.tls.wrap(s, { servername = "localhost", cafile = CA }) end)
    assert.has_error(function () tide.tls.wrap(s, 1) end)
    assert.has_error(function () tide.tls.wrap(s, { server = true }) end)
  end))
end)

describe("tide.tls servers", function ()
  it("serve: openssl s_client, python3 and curl are served", async(function ()
    local srv <close> = assert(tide.tls.serve("127.0.0.1", 0, function (s)
      local line = s:read_until("\n")
      if line:match("^GET ") then
        repeat local l = s:read_until("\n") until l == "\r\n"
        s:write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
      else
        s:write(line:upper())
      end
      s:shutdown()
      s:read()
    end, server_opts { alpn = { "http/1.1" } }))
    local port = port_of(srv)
    local out = background(("echo hi | openssl s_client -connect 127.0.0.1:%d " ..
      "-CAfile %s -verify_return_error -verify_hostname localhost -quiet"):format(port, CA))()
    assert.matches("HI", out)
    out = background(("curl -sS --cacert %s https://localhost:%d/"):format(CA, port))()
    assert.equal("hello", out)
    out = pyclient([[
s = cctx().wrap_socket(socket.create_connection(("127.0.0.1", PORT)), server_hostname="localhost")
s.sendall(b"py\n")
print(recvall(s), s.version())
]], port)()
    assert.matches("b'PY\\n' TLSv1.3", out)
  end))

  it("listen: accept gives handshaken streams, a failed handshake its error", async(function ()
    local srv <close> = assert(tide.tls.listen("127.0.0.1", 0, server_opts { handshake_timeout = 2 }))
    local c = tide.spawn(function ()
      local s = assert(tide.tls.connect("localhost", port_of(srv), { cafile = CA }))
      s:write("one")
      return s:read()
    end)
    local s <close> = assert(srv:accept())
    assert.equal("one", s:read())
    s:write("two")
    assert.equal("two", c:await())
    local raw <close> = assert(tide.tcp.connect("127.0.0.1", port_of(srv)))
    raw:write("garbage garbage garbage\r\n\r\n")
    local bad, err, code = srv:accept()
    assert.is_nil(bad)
    assert.equal("ETLSHANDSHAKE", code)
    assert.matches("peer does not speak TLS", err)
  end))

  it("times a server's handshake out", async(function ()
    local srv <close> = assert(tide.tls.listen("127.0.0.1", 0, server_opts { handshake_timeout = 0.1 }))
    local raw <close> = assert(tide.tcp.connect("127.0.0.1", port_of(srv)))
    local s, err, code = srv:accept()
    assert.is_nil(s)
    -- as tide.tcp.connect's messages: the peer's address first
    assert.equal(("127.0.0.1:%d: handshake timed out"):format(select(2, raw:getsockname())), err)
    assert.equal("ETIMEDOUT", code)
  end))

  it("times wrap's handshake out, naming the peer as connect does", async(function ()
    local held = {}
    local srv <close> = tcp_server(function (c)   -- accepts, never answers
      held[#held + 1] = c
      tide.sleep(5)
    end)
    local raw = assert(tide.tcp.connect("127.0.0.1", port_of(srv)))
    local s, err, code = tide.tls.wrap(raw, { cafile = CA, servername = "localhost", timeout = 0.1 })
    assert.is_nil(s)
    assert.equal(("127.0.0.1:%d: handshake timed out"):format(port_of(srv)), err)
    assert.equal("ETIMEDOUT", code)
    -- a refused connect is tide.tcp.connect's error as it is
    local lsn = assert(tide.tcp.listen("127.0.0.1", 0))
    local port = port_of(lsn)
    lsn:close()
    local _, terr, tcode = tide.tcp.connect("127.0.0.1", port)
    s, err, code = tide.tls.connect("127.0.0.1", port, { cafile = CA })
    assert.is_nil(s)
    assert.equal(terr, err)
    assert.equal(tcode, code)
  end))

  it("chooses a certificate per server name (SNI)", async(function ()
    local srv <close> = assert(tide.tls.serve("127.0.0.1", 0, function (s)
      s:write(s:tlsinfo().servername or "none")
      s:shutdown()
      s:read()
    end, server_opts { servernames = {
      ["alpha.test"] = { cert = C.alpha.cert, key = C.alpha.key },
      ["*.beta.test"] = assert(tide.tls.context { cert = C.beta.cert, key = C.beta.key }),
    } }))
    local function get (name)
      local s <close> = assert(tide.tls.connect("127.0.0.1", port_of(srv),
        { cafile = CA, servername = name }))
      return readall(s), s:tlsinfo().peer.subject
    end
    assert.same({ "alpha.test", "CN=alpha.test" }, { get("alpha.test") })
    assert.same({ "www.beta.test", "CN=beta.test" }, { get("www.beta.test") })
    assert.same({ "localhost", "CN=localhost" }, { get("localhost") })
  end))

  it("gives a servernames entry made of fields the top level's settings; a context keeps its own", async(function ()
    local srv <close> = assert(tide.tls.serve("127.0.0.1", 0, function (s)
      local info = s:tlsinfo()
      s:write(("%s %s %s"):format(info.servername, info.alpn or "-",
                                  info.peer and info.peer.subject or "anonymous"))
      s:shutdown()
      s:read()
    end, server_opts { alpn = { "h2" }, verify = true, cafile = CA, servernames = {
      ["alpha.test"] = { cert = C.alpha.cert, key = C.alpha.key },
      ["*.beta.test"] = assert(tide.tls.context { cert = C.beta.cert, key = C.beta.key }),
    } }))
    local out = pyclient([[
for name, cert in (("alpha.test", True), ("alpha.test", False), ("www.beta.test", False), ("localhost", True)):
    ctx = cctx()
    ctx.set_alpn_protocols(["h2"])
    if cert: ctx.load_cert_chain(D + "/client.pem", D + "/client.key")
    try:
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", PORT)), server_hostname=name)
        print(recvall(s).decode(), s.selected_alpn_protocol())
    except (ssl.SSLError, OSError) as e:
        print(name, "refused", type(e).__name__)
]], port_of(srv))()
    assert.equal(table.concat({
      "alpha.test h2 CN=tide client h2",           -- alpn, verify, cafile inherited
      "alpha.test refused SSLError",               -- a certificate is required there too
      "www.beta.test - anonymous None",            -- a context: none of them
      "localhost h2 CN=tide client h2",
    }, "\n") .. "\n", out)
  end))

  it("selects ALPN: the server's first that the client offers, or none", async(function ()
    local srv <close> = assert(tide.tls.serve("127.0.0.1", 0, function (s)
      s:write(s:tlsinfo().alpn or "none")
      s:shutdown()
      s:read()
    end, server_opts { alpn = { "h2", "http/1.1" } }))
    local out = pyclient([[
for offer in (["http/1.1", "h2"], ["http/1.1"], ["foo"]):
    ctx = cctx()
    ctx.set_alpn_protocols(offer)
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", PORT)), server_hostname="localhost")
    print(recvall(s), s.selected_alpn_protocol())
]], port_of(srv))()
    assert.matches("b'h2' h2\nb'http/1.1' http/1.1\nb'none' None", out)
  end))

  it("requires client certificates when verify = true", async(function ()
    local results = tide.Queue()
    local srv <close> = assert(tide.tls.listen("127.0.0.1", 0, server_opts { verify = true, cafile = CA }))
    local acceptor = tide.spawn(function ()
      for _ = 1, 3 do
        local s, err, code = srv:accept()
        if s then
          results:put(s:tlsinfo().peer.subject)
          s:write("welcome")
          s:shutdown()
          s:read()
          s:close()
        else
          results:put(err .. " " .. code)
        end
      end
    end)
    local port = port_of(srv)
    local s = assert(tide.tls.connect("localhost", port, { cafile = CA,
      cert = C.client.cert, key = C.client.key }))
    assert.equal("welcome", readall(s))
    s:close()
    assert.equal("CN=tide client", results:get())
    -- without a certificate: TLS 1.3 clients hear of it at their first read
    s = assert(tide.tls.connect("localhost", port, { cafile = CA }))
    local d, err, code = s:read()
    assert.is_nil(d)
    assert.equal("ETLSALERT", code)
    assert.equal("the peer sent an alert: certificate required (give a client certificate: cert and key)", err)
    s:close()
    assert.equal("certificate verify failed: the peer sent no certificate (one is required) ETLSVERIFY",
                 results:get())
    s = assert(tide.tls.connect("localhost", port, { cafile = CA,
      cert = C.stranger.cert, key = C.stranger.key }))
    d, err, code = s:read()
    assert.is_nil(d)
    assert.equal("ETLSALERT", code)
    s:close()
    assert.equal("certificate verify failed: unable to get local issuer certificate ETLSVERIFY",
                 results:get())
    acceptor:await()
  end))

  it("asks for a client certificate without requiring it when verify = \"optional\"", async(function ()
    local srv <close> = assert(tide.tls.serve("127.0.0.1", 0, function (s)
      local peer = s:tlsinfo().peer
      s:write(peer and peer.subject or "anonymous")
      s:shutdown()
      s:read()
    end, server_opts { verify = "optional", cafile = CA }))
    local a <close> = assert(tide.tls.connect("localhost", port_of(srv), { cafile = CA }))
    assert.equal("anonymous", readall(a))
    local b <close> = assert(tide.tls.connect("localhost", port_of(srv), { cafile = CA,
      cert = C.client.cert, key = C.client.key }))
    assert.equal("CN=tide client", readall(b))
  end))

  it("keeps the first error: a read, a write and shutdown after an alert give it again", async(function ()
    local srv <close> = assert(tide.tls.serve("127.0.0.1", 0, function (s)
      s:read()
    end, server_opts { verify = true, cafile = CA }))
    local s <close> = assert(tide.tls.connect("localhost", port_of(srv), { cafile = CA }))
    local msg = "the peer sent an alert: certificate required (give a client certificate: cert and key)"
    assert.same({ nil, msg, "ETLSALERT" }, { s:read() })
    assert.same({ nil, msg, "ETLSALERT" }, { s:write("more") })
    assert.same({ nil, msg, "ETLSALERT" }, { s:read() })
    assert.same({ nil, msg, "ETLSALERT" }, { s:shutdown() })
    assert.same({ nil, msg, "ETLSALERT" }, { s:read_until("\n") })
  end))

  it("says a client certificate may be wanted when a TLS 1.2 server refuses the handshake", async(function ()
    -- python3 reads what the client sent after the alert: no reset
    local port, done = pyserver([[
srv = listen()
ctx = sctx()
ctx.verify_mode = ssl.CERT_REQUIRED
ctx.load_verify_locations(D + "/ca.pem")
c, _ = srv.accept()
raw = c.dup()
try:
    ctx.wrap_socket(c, server_side=True)
except ssl.SSLError as e:
    print(e.reason)
raw.shutdown(socket.SHUT_WR)
raw.settimeout(5)
recvall(raw)
]])
    local s, err, code = tide.tls.connect("localhost", port, { cafile = CA, max_version = "1.2" })
    assert.is_nil(s)
    assert.equal("ETLSALERT", code)
    assert.equal("the peer sent an alert: handshake failure (a client certificate required? "
                 .. "or no protocol version, cipher or key type in common)", err)
    assert.matches("PEER_DID_NOT_RETURN_A_CERTIFICATE", done())
  end))

  it("gives a client certificate to openssl s_server, which requires one", async(function ()
    local port, stop = s_server(("-cert %s -key %s -Verify 1 -CAfile %s -verify_return_error -rev")
      :format(C.server.cert, C.server.key, CA))
    local s <close> = assert(tide.tls.connect("localhost", port, { cafile = CA,
      cert = C.client.cert, key = C.client.key }))
    s:write("abc\n")
    assert.equal("cba\n", s:read_until("\n"))
    stop()
  end))
end)

describe("tide.tls.context", function ()
  it("takes certificates and keys as PEM text as well as paths", async(function ()
    local srv <close> = echo_server { cert = C.read(C.server.cert), key = C.read(C.server.key) }
    local s <close> = assert(tide.tls.connect("localhost", port_of(srv), { cafile = C.read(CA) }))
    s:write("pem")
    assert.equal("pem", s:read())
  end))

  it("returns nil, message, ETLSCONFIG for files that will not load", function ()
    local c, err, code = tide.tls.context { cert = "/nonexistent.pem", key = C.server.key }
    assert.is_nil(c)
    assert.equal("ETLSCONFIG", code)
    assert.equal("cert /nonexistent.pem: no such file", err)
    local E = C.encrypted
    assert.same({ nil, "key " .. E.key .. ": not a PEM private key, or an encrypted one (give password)", "ETLSCONFIG" },
                { tide.tls.context { cert = E.cert, key = E.key } })
    assert.same({ nil, "key " .. E.key .. ": bad password, or not a PEM private key", "ETLSCONFIG" },
                { tide.tls.context { cert = E.cert, key = E.key, password = "wrong" } })
    assert.same({ nil, "key (PEM): bad password, or not a PEM private key", "ETLSCONFIG" },
                { tide.tls.context { cert = E.cert, key = C.read(E.key), password = "wrong" } })
    assert.truthy(tide.tls.context { cert = E.cert, key = E.key, password = E.password })
    assert.same({ nil, "cert " .. CA:gsub("%.pem$", ".key") .. ": no PEM certificate in it", "ETLSCONFIG" },
                { tide.tls.context { cert = CA:gsub("%.pem$", ".key"), key = C.server.key } })
    assert.same({ nil, "cafile /nonexistent.pem: no such file", "ETLSCONFIG" },
                { tide.tls.context { cafile = "/nonexistent.pem" } })
    assert.same({ nil, "capath /nonexistent: no such file", "ETLSCONFIG" },
                { tide.tls.context { capath = "/nonexistent" } })
    c, err, code = tide.tls.context { cert = C.server.cert, key = C.client.key }
    assert.is_nil(c)
    assert.equal("key: it does not match the certificate", err)
    c, err, code = tide.tls.context { cafile = "/nonexistent.pem" }
    assert.is_nil(c)
    assert.equal("ETLSCONFIG", code)
    c, err, code = tide.tls.context { ciphers = "NO-SUCH-CIPHER" }
    assert.is_nil(c)
    assert.matches("^ciphers NO%-SUCH%-CIPHER: ", err)
  end)

  it("raises on wrong fields", function ()
    local bad = {
      { { alpn = "h2" }, "'alpn': list of strings expected" },
      { { alpn = {} }, "'alpn': empty list" },
      { { verify = 1 }, "'verify': boolean or \"optional\" expected" },
      { { min_version = "1.4" }, "'min_version': \"1.0\", \"1.1\", \"1.2\" or \"1.3\" expected" },
      { { key = C.server.key }, "'cert': cert and key go together" },
      { { cert = C.server.cert }, "'key': cert and key go together" },
      { { servernames = { x = 1 } }, "'servernames'" },
      { { session_cache = "yes" }, "'session_cache': boolean expected" },
    }
    for _, case in ipairs(bad) do
      local ok, err = pcall(tide.tls.context, case[1])
      assert.is_false(ok)
      assert.matches(case[2], err, 1, true)
    end
    assert.has_error(function () tide.tls.context() end)
  end)

  it("raises on wrong use of connect, listen and serve", async(function ()
    assert.has_error(function () tide.tls.connect(1, 2) end)
    assert.has_error(function () tide.tls.connect("localhost", 443, { context = {} }) end)
    assert.has_error(function ()
      tide.tls.connect("localhost", 443, { context = tide.tls.context {}, cafile = CA })
    end)
    local ok, err = pcall(tide.tls.listen, "127.0.0.1", 0, {})
    assert.is_false(ok)
    assert.matches("bad argument #3 to 'tide.tls.listen' ('cert' and 'key' (or 'context') "
      .. "expected for a server)", err, 1, true)
    assert.has_error(function () tide.tls.serve("127.0.0.1", 0, function () end) end)
    local plain <close> = assert(tide.tcp.listen("127.0.0.1", 0))
    local s <close> = assert(tide.tcp.connect("127.0.0.1", port_of(plain)))
    assert.is_nil(s:tlsinfo())
  end))
end)
