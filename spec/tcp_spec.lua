-- tcp_spec.lua: TCP connections and servers, streams and DNS on 127.0.0.1
-- (bindings/tcp.c, stream.c, dns.c, runtime/lua/net.lua), against tide
-- itself and against python3 as a peer.

local function echo_server (opts)
  return assert(tide.tcp.serve("127.0.0.1", 0, function (s)
    while true do
      local data = s:read()
      if not data then return end
      s:write(data)
    end
  end, opts))
end

describe("tide.tcp.connect", function ()
  it("connects to a python3 server and exchanges lines", async(function ()
    local port, done = python([[
import socket
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
print(srv.getsockname()[1])
c, _ = srv.accept()
f = c.makefile("rwb")
line = f.readline()
f.write(b"got " + line); f.flush()
c.close()
]])
    local s <close> = assert(tide.tcp.connect("127.0.0.1", port))
    assert.equal(s, s:write("ping", "\n"))
    assert.equal("got ping\n", s:read_until("\n"))
    assert.is_nil(s:read())                -- the peer closed: EOF
    assert.is_nil(s:read())
    done()
  end))

  it("resolves host names (localhost)", async(function ()
    local srv <close> = echo_server()
    local _, port = srv:getsockname()
    local s <close> = assert(tide.tcp.connect("localhost", port))
    s:write("x")
    assert.equal("x", s:read())
  end))

  it("returns nil, message and ECONNREFUSED when nothing listens", async(function ()
    local srv = assert(tide.tcp.listen("127.0.0.1", 0))
    local _, port = srv:getsockname()
    srv:close()
    local s, err, code = tide.tcp.connect("127.0.0.1", port)
    assert.is_nil(s)
    assert.equal("ECONNREFUSED", code)
    assert.matches("connection refused", err)
  end))

  it("returns a resolver error for an unknown host name", async(function ()
    local s, err, code = tide.tcp.connect("no-such-host.invalid", 80)
    assert.is_nil(s)
    assert.matches("^EAI_", code)
    assert.matches("no%-such%-host%.invalid", err)
  end))

  it("raises on bad arguments", async(function ()
    assert.has_error(function () tide.tcp.connect(1, 2) end)
    assert.has_error(function () tide.tcp.connect("127.0.0.1", 70000) end)
    assert.has_error(function () tide.tcp.connect("127.0.0.1") end)
  end))

  it("is cancelled cleanly while resolving or connecting", async(function ()
    local t = tide.spawn(tide.tcp.connect, "localhost", 9)
    t:cancel()
    assert.has_error(function () t:await() end)
    local srv <close> = echo_server()
    local _, port = srv:getsockname()
    t = tide.spawn(tide.tcp.connect, "127.0.0.1", port)
    tide.yield()
    t:cancel()
    pcall(t.await, t)
    assert.is_true(t:done())
  end))
end)

describe("tide.Stream", function ()
  it("reads exactly n bytes across several segments", async(function ()
    local srv <close> = echo_server()
    local _, port = srv:getsockname()
    local s <close> = assert(tide.tcp.connect("127.0.0.1", port))
    local w = tide.spawn(function ()
      for i = 1, 10 do s:write(("%03d"):format(i)); tide.sleep(0.001) end
    end)
    assert.equal("001002003004005006007008009010", s:read_exactly(30))
    w:await()
    assert.equal("", s:read_exactly(0))
  end))

  it("reads until a separator, keeping it, within a limit", async(function ()
    local srv <close> = echo_server()
    local _, port = srv:getsockname()
    local s <close> = assert(tide.tcp.connect("127.0.0.1", port))
    s:write("a,b,,c")
    assert.equal("a,", s:read_until(","))
    assert.equal("b,", s:read_until(","))
    assert.equal(",", s:read_until(","))
    s:write(("x"):rep(100))
    local v, err, code = s:read_until("\n", 50)
    assert.same({ nil, "line too long", "E2BIG" }, { v, err, code })
    assert.equal("c" .. ("x"):rep(9), s:read(10))   -- nothing was lost
  end))

  it("reads all that is buffered in one string, and at most n with read(n)", async(function ()
    local srv <close> = assert(tide.tcp.listen("127.0.0.1", 0))
    local _, port = srv:getsockname()
    local w <close> = assert(tide.tcp.connect("127.0.0.1", port))
    local r <close> = assert(srv:accept())
    local parts = {}
    for i = 1, 100 do parts[i] = ("%04d"):format(i):rep(250) end
    for i = 1, 100 do assert(w:write(parts[i])) end    -- 100 KB in 100 writes
    assert(w:shutdown())
    local all = table.concat(parts)
    assert.equal("0001", r:read(4))
    tide.sleep(0.05)                         -- the read-ahead takes in the rest
    assert.equal(all:sub(5, 14), r:read(10))
    assert.equal(all:sub(15), r:read())      -- one string, however it came
    assert.is_nil(r:read())
  end))

  it("writes several strings in order, queueing what the socket does not take", async(function ()
    local srv <close> = assert(tide.tcp.listen("127.0.0.1", 0))
    local _, port = srv:getsockname()
    local w <close> = assert(tide.tcp.connect("127.0.0.1", port))
    local r <close> = assert(srv:accept())
    assert(w:setoption("sndbuf", 16384))    -- the socket takes little
    assert(r:setoption("rcvbuf", 16384))
    local parts = {}
    for i = 1, 40 do parts[i] = string.char(64 + i):rep(50000 + i) end
    parts[20] = ""
    assert.equal(w, w:write(table.unpack(parts)))   -- 2 MB: queued, no wait
    -- Over the high-water mark a write waits; cancelled, it wrote nothing.
    local late = tide.spawn(function () return w:write("late", ("!"):rep(100000)) end)
    tide.sleep(0.02)
    assert.is_false(late:done())
    late:cancel()
    assert.has_error(function () late:await() end)
    local reader = tide.spawn(function ()
      local got = {}
      while true do
        local data = r:read()
        if not data then return table.concat(got) end
        got[#got + 1] = data
      end
    end)
    assert.equal(w, w:write("small", "", "end"))      -- waits, then goes on
    assert(w:shutdown())
    local got = reader:await()
    assert.equal(#table.concat(parts) + #"smallend", #got)
    assert.is_true(got == table.concat(parts) .. "smallend")
  end))

  it("iterates lines; the last one may lack a newline", async(function ()
    local port, done = python([[
import socket
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
print(srv.getsockname()[1])
c, _ = srv.accept()
c.sendall(b"one\ntwo\n\nthree")
c.close()
]])
    local s <close> = assert(tide.tcp.connect("127.0.0.1", port))
    local lines = {}
    for line in s:lines() do lines[#lines + 1] = line end
    assert.same({ "one", "two", "", "three" }, lines)
    done()
  end))

  it("reports EOF before the count in read_exactly and keeps the data", async(function ()
    local port, done = python([[
import socket
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
print(srv.getsockname()[1])
c, _ = srv.accept()
c.sendall(b"abc"); c.close()
]])
    local s <close> = assert(tide.tcp.connect("127.0.0.1", port))
    local v, err, code = s:read_exactly(10)
    assert.same({ nil, "unexpected end of stream", "EOF" }, { v, err, code })
    assert.equal("abc", s:read())
    assert.is_nil(s:read_until("\n"))
    done()
  end))

  it("carries 16 MiB both ways intact, with backpressure", async(function ()
    local srv <close> = echo_server()
    local _, port = srv:getsockname()
    local s <close> = assert(tide.tcp.connect("127.0.0.1", port))
    local chunk = ("0123456789abcdef"):rep(4096)    -- 64 KiB
    local n = 256
    local writer = tide.spawn(function ()
      for i = 1, n do assert(s:write(chunk)) end
      assert(s:drain())
      assert(s:shutdown())
    end)
    local got, total = 0, 0
    while true do
      local data = s:read()
      if not data then break end
      total = total + #data
      got = got + select(2, data:gsub("f", ""))
    end
    writer:await()
    assert.equal(n * #chunk, total)
    assert.equal(n * 4096, got)
  end))

  it("round-trips 64 MiB through a python3 asyncio echo server intact", async(function ()
    local port, done = python([[
import asyncio
async def echo(r, w):
    while data := await r.read(65536):
        w.write(data)
        await w.drain()
    w.close()
async def main():
    srv = await asyncio.start_server(echo, "127.0.0.1", 0)
    print(srv.sockets[0].getsockname()[1])
    async with srv:
        await asyncio.sleep(60)
asyncio.run(main())
]])
    local s <close> = assert(tide.tcp.connect("127.0.0.1", port))
    -- 64 chunks of 1 MiB, each different, so that misplaced data shows
    local function chunk (i)
      return (string.pack(">I4", i * 2654435761 % 2^32) .. "tide"):rep(131072)
    end
    local writer = tide.spawn(function ()
      for i = 1, 64 do assert(s:write(chunk(i))) end
      assert(s:shutdown())
    end)
    for i = 1, 64 do
      assert.is_true(s:read_exactly(1048576) == chunk(i), "chunk " .. i)
    end
    assert.is_nil(s:read())
    writer:await()
    done()
  end))

  it("keeps a fast writer's memory bounded while the reader is slow", async(function ()
    local srv <close> = assert(tide.tcp.listen("127.0.0.1", 0))
    local _, port = srv:getsockname()
    local w <close> = assert(tide.tcp.connect("127.0.0.1", port))
    local r <close> = assert(srv:accept())
    local chunk = ("z"):rep(65536)
    local accepted = 0
    local writer = tide.spawn(function ()
      for _ = 1, 1024 do                     -- 64 MiB
        assert(w:write(chunk))
        accepted = accepted + #chunk
      end
      assert(w:shutdown())
    end)
    tide.sleep(0.3)                          -- the reader reads nothing yet
    local before = collectgarbage("count")
    assert.is_true(accepted < 32 * 1048576, "write took " .. accepted .. " bytes")
    local total = 0
    while true do
      local data = r:read()
      if not data then break end
      total = total + #data
    end
    writer:await()
    assert.equal(64 * 1048576, total)
    assert.is_true(collectgarbage("count") - before < 64 * 1024)  -- KiB
  end))

  it("still sends what was written when closed at once, then EOF", async(function ()
    local chunk = ("x"):rep(1024 * 1024)
    local srv <close> = assert(tide.tcp.serve("127.0.0.1", 0, function (s)
      for _ = 1, 4 do s:write(chunk) end     -- queued: the reader is asleep
    end))                                    -- the handler returns: closed
    local _, port = srv:getsockname()
    local s <close> = assert(tide.tcp.connect("127.0.0.1", port))
    tide.sleep(0.05)
    collectgarbage()                         -- the server's stream is garbage
    local total = 0
    while true do
      local data = s:read()
      if not data then break end
      total = total + #data
    end
    assert.equal(4 * #chunk, total)
  end))

  it("wakes a blocked reader with nil, 'stream closed' when closed", async(function ()
    local srv <close> = echo_server()
    local _, port = srv:getsockname()
    local s = assert(tide.tcp.connect("127.0.0.1", port))
    local r = tide.spawn(function () return s:read() end)
    tide.sleep(0.01)
    s:close()
    assert.same({ nil, "stream closed", "ECANCELED" }, { r:await() })
    s:close()                                -- harmless twice
    assert.has_error(function () s:read() end, "Stream:read: attempt to use a closed stream")
    assert.matches("closed", tostring(s))
  end))

  it("raises when two tasks read at once", async(function ()
    local srv <close> = echo_server()
    local _, port = srv:getsockname()
    local s <close> = assert(tide.tcp.connect("127.0.0.1", port))
    local r = tide.spawn(s.read, s)
    tide.yield()
    assert.has_error(function () s:read() end)
    s:write("z")
    assert.equal("z", r:await())
  end))

  it("stays usable after a read is cancelled", async(function ()
    local srv <close> = echo_server()
    local _, port = srv:getsockname()
    local s <close> = assert(tide.tcp.connect("127.0.0.1", port))
    local r = tide.spawn(s.read, s)
    tide.sleep(0.005)
    r:cancel()
    assert.has_error(function () r:await() end)
    s:write("after")
    assert.equal("after", s:read_exactly(5))
  end))

  it("returns an error when writing to a peer that reset", async(function ()
    local port, done = python([[
import socket, struct
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
print(srv.getsockname()[1])
c, _ = srv.accept()
c.recv(2)
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
c.close()
]])
    local s <close> = assert(tide.tcp.connect("127.0.0.1", port))
    s:write("go")                            -- connected: now reset it
    done()
    local ok, err, code
    for _ = 1, 100 do
      ok, err, code = s:write(("x"):rep(65536))
      if not ok then break end
      tide.sleep(0.001)
    end
    assert.is_nil(ok)
    assert.is_truthy(code == "ECONNRESET" or code == "EPIPE", code)
    local v, _, rcode = s:read()
    assert.is_true(v == nil and (rcode == nil or rcode == "ECONNRESET"))
  end))

  it("tells addresses and sets options", async(function ()
    local srv <close> = echo_server()
    local _, port = srv:getsockname()
    local s <close> = assert(tide.tcp.connect("127.0.0.1", port, { nodelay = true }))
    local h, p = s:getpeername()
    assert.same({ "127.0.0.1", port }, { h, p })
    local lh, lp = s:getsockname()
    assert.equal("127.0.0.1", lh)
    assert.is_true(lp > 0)
    assert.is_true(s:setoption("keepalive", true))
    assert.is_true(s:setoption("sndbuf", 65536))
    assert.has_error(function () s:setoption("nosuch", 1) end)
  end))
end)

describe("tide.tcp.listen", function ()
  it("accepts connections from python3 clients", async(function ()
    local srv <close> = assert(tide.tcp.listen("127.0.0.1", 0))
    local _, port = srv:getsockname()
    local _, done = python(([[
import socket
print(0)
s = socket.create_connection(("127.0.0.1", %d))
s.sendall(b"from python")
s.close()
]]):format(port))
    local c <close> = assert(srv:accept())
    assert.equal("from python", c:read_exactly(11))
    done()
  end))

  it("returns EADDRINUSE for a port in use", async(function ()
    local a <close> = assert(tide.tcp.listen("127.0.0.1", 0))
    local _, port = a:getsockname()
    local b, err, code = tide.tcp.listen("127.0.0.1", port)
    assert.is_nil(b)
    assert.equal("EADDRINUSE", code)
    assert.matches(tostring(port), err)
  end))

  it("shares a port with reuseport", async(function ()
    local a <close> = assert(tide.tcp.listen("127.0.0.1", 0, { reuseport = true }))
    local _, port = a:getsockname()
    local b <close> = assert(tide.tcp.listen("127.0.0.1", port, { reuseport = true }))
    assert.equal(port, select(2, b:getsockname()))
  end))

  it("wakes a waiting accept with an error when closed, and cancels cleanly", async(function ()
    local srv = assert(tide.tcp.listen("127.0.0.1", 0))
    local t = tide.spawn(srv.accept, srv)
    tide.sleep(0.005)
    srv:close()
    assert.same({ nil, "server closed", "ECANCELED" }, { t:await() })
    local srv2 <close> = assert(tide.tcp.listen("127.0.0.1", 0))
    local t2 = tide.spawn(srv2.accept, srv2)
    tide.sleep(0.005)
    t2:cancel()
    assert.has_error(function () t2:await() end)
  end))

  it("listens on IPv6 loopback where the machine has it", async(function ()
    local srv, _, code = tide.tcp.listen("::1", 0)
    if not srv then
      assert.equal("EADDRNOTAVAIL", code)     -- no IPv6 here: a clear error
      return
    end
    local _, port = srv:getsockname()
    local c <close> = assert(tide.tcp.connect("::1", port))
    local a <close> = assert(srv:accept())
    c:write("v6")
    assert.equal("v6", a:read_exactly(2))
    srv:close()
  end))
end)

describe("tide.tcp.serve", function ()
  it("returns EMFILE from connect when descriptors run out, and recovers", function ()
    local script = tmpfile([[
local srv = assert(tide.tcp.serve("127.0.0.1", 0, function (s) s:write(s:read() or "") end))
local _, port = srv:getsockname()
local conns = {}
while #conns < 1000 do
  local s, err, code = tide.tcp.connect("127.0.0.1", port)
  if not s then print(code, err) break end
  conns[#conns + 1] = s
end
for _, s in ipairs(conns) do s:close() end
local s = assert(tide.tcp.connect("127.0.0.1", port))
s:write("again")
print(s:read())
srv:close()
]])
    local out, code = sh("ulimit -n 64; " .. TIDE .. " " .. script)
    os.remove(script)
    assert.equal(0, code, out)
    assert.matches("^EMFILE\t127.0.0.1: too many open files\nagain\n$", out)
  end)

  it("closed by the <close> of a task that failed, cancels its handlers and ends", function ()
    for _, mod in ipairs { "tcp", "http" } do
      local script = tmpfile(([[
tide.run(function ()
  local srv <close> = assert(tide.%s.serve("127.0.0.1", 0, function (s) tide.sleep(30) end))
  local c <close> = assert(tide.tcp.connect("127.0.0.1", select(2, srv:getsockname())))
  c:write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
  tide.sleep(0.05)                       -- the handler is running
  error("boom")
end)
]]):format(mod))
      local out, code = sh("timeout 10 " .. TIDE .. " " .. script .. " 2>&1")
      os.remove(script)
      assert.equal(1, code, out)               -- not 124: it ended
      assert.matches("boom", out)
    end
  end)

  it("keeps serving when accept runs out of descriptors", function ()
    local server = tmpfile([[
local srv = assert(tide.tcp.serve("127.0.0.1", 0, function (s) s:write(s:read() or "") end))
print(select(2, srv:getsockname()))
io.stdout:flush()
tide.sleep(4)
srv:close()
]])
    local client = tmpfile(([[
import socket, subprocess, sys
p = subprocess.Popen(["sh", "-c", "ulimit -n 32; exec %s %s"], stdout=subprocess.PIPE)
port = int(p.stdout.readline())
socks = [socket.create_connection(("127.0.0.1", port)) for i in range(100)]
echoed = closed = 0
for s in socks:
    s.settimeout(5)
    try:
        s.sendall(b"x")
        if s.recv(1) == b"x": echoed += 1
        else: closed += 1
    except OSError:
        closed += 1
    s.close()
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"alive")
print(echoed > 0, closed > 0, echoed + closed, s.recv(10).decode())
p.wait()
]]):format(TIDE, server))
    local out, code = sh("env -u LD_PRELOAD timeout 60 python3 " .. client)
    os.remove(server)
    os.remove(client)
    assert.equal(0, code, out)
    assert.equal("True True 100 alive\n", out)
  end)

  it("serves 1,000 concurrent connections, one task each", async(function ()
    local srv <close> = echo_server()
    local _, port = srv:getsockname()
    local clients = {}
    for i = 1, 1000 do
      clients[i] = tide.spawn(function ()
        local s <close> = assert(tide.tcp.connect("127.0.0.1", port))
        s:write("msg" .. i)
        return s:read_exactly(#("msg" .. i))
      end)
    end
    for i = 1, 1000 do assert.equal("msg" .. i, clients[i]:await()) end
  end))

  it("answers curl as a tiny HTTP server", async(function ()
    local srv <close> = assert(tide.tcp.serve("127.0.0.1", 0, function (s)
      local request = s:read_until("\r\n\r\n")
      local path = request:match("^GET (%S+)")
      local body = "you asked for " .. path
      s:write("HTTP/1.1 200 OK\r\nContent-Length: ", #body,
              "\r\nConnection: close\r\n\r\n", body)
      s:drain()
    end))
    local _, port = srv:getsockname()
    local curl = background(("curl -s -m 20 http://127.0.0.1:%d/hello"):format(port))
    local body = curl()
    assert.equal("you asked for /hello", body)
  end))

  it("reports a handler's error and keeps serving", async(function ()
    local calls = 0
    local srv <close> = assert(tide.tcp.serve("127.0.0.1", 0, function (s)
      calls = calls + 1
      if calls == 1 then error("handler failed") end
      s:write("ok")
    end))
    local _, port = srv:getsockname()
    local a <close> = assert(tide.tcp.connect("127.0.0.1", port))
    assert.is_nil(a:read())                  -- closed by the failing handler
    local b <close> = assert(tide.tcp.connect("127.0.0.1", port))
    assert.equal("ok", b:read())
  end))

  it("caps concurrent connections", async(function ()
    local live, peak = 0, 0
    local srv <close> = assert(tide.tcp.serve("127.0.0.1", 0, function (s)
      live = live + 1
      peak = math.max(peak, live)
      tide.sleep(0.02)
      s:write("done")
      live = live - 1
    end, { max_connections = 2 }))
    local _, port = srv:getsockname()
    local ts = {}
    for i = 1, 6 do
      ts[i] = tide.spawn(function ()
        local s <close> = assert(tide.tcp.connect("127.0.0.1", port))
        return s:read()
      end)
    end
    for i = 1, 6 do assert.equal("done", ts[i]:await()) end
    assert.equal(2, peak)
  end))

  it("closes gracefully: handlers get the grace period, then are cancelled", async(function ()
    local finished, cancelled = 0, 0
    local srv = assert(tide.tcp.serve("127.0.0.1", 0, function (s)
      local ok, err = pcall(tide.sleep, s:read() == "quick" and 0.01 or 10)
      if ok then finished = finished + 1
      elseif tide.iscancelled(err) then cancelled = cancelled + 1; error(err, 0) end
    end))
    local _, port = srv:getsockname()
    local a <close> = assert(tide.tcp.connect("127.0.0.1", port))
    local b <close> = assert(tide.tcp.connect("127.0.0.1", port))
    a:write("quick")
    b:write("slow")
    tide.sleep(0.005)
    local t0 = tide.now()
    srv:close(0.1)
    assert.is_true(tide.now() - t0 < 5)
    assert.same({ 1, 1 }, { finished, cancelled })
    local c = tide.tcp.connect("127.0.0.1", port)
    assert.is_nil(c)                         -- no longer accepting
  end))
end)

describe("tide.dns", function ()
  it("resolves localhost to loopback addresses with their family", async(function ()
    local addrs = assert(tide.dns.resolve("localhost"))
    assert.is_true(#addrs >= 1)
    local seen = {}
    for _, a in ipairs(addrs) do seen[a.addr] = a.family end
    assert.is_true(seen["127.0.0.1"] == "inet" or seen["::1"] == "inet6")
    local v4 = assert(tide.dns.resolve("localhost", { family = "inet" }))
    for _, a in ipairs(v4) do assert.equal("inet", a.family) end
  end))

  it("returns nil, message, code for a name that does not exist", async(function ()
    local r, err, code = tide.dns.resolve("no-such-host.invalid")
    assert.is_nil(r)
    assert.matches("^EAI_", code)
    assert.matches("no%-such%-host", err)
  end))

  it("maps an address back to a name", async(function ()
    local name = assert(tide.dns.reverse("127.0.0.1"))
    assert.equal("string", type(name))
    assert.has_error(function () tide.dns.reverse("not an address") end)
  end))
end)
