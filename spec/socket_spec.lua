-- socket_spec.lua: tide.socket (runtime/lua/socket.lua), LuaSocket's core
-- API on tide's loop: receive patterns and their exact results, send's
-- indexes, timeouts of each kind, the peer closing mid-receive,
-- cancellation, options and names, udp, dns, select, and the same calls
-- outside any task (blocking, as LuaSocket's). Peers are tide servers on
-- 127.0.0.1.
local socket = require "tide.socket"
local H = dofile("spec/socket_helper.lua")

-- A tide server whose handler(stream) runs per connection; fn(port).
local function serving (handler, fn)
  local sv = assert(tide.tcp.serve("127.0.0.1", 0, handler))
  local _, port = sv:getsockname()
  local ok, err = pcall(fn, port)
  sv:close()
  assert(ok, err)
end

-- A connected client to a server that sends out (a string or a function
-- of the stream) and then holds the connection until the client closes.
local function peer (out, fn)
  serving(function (s)
    if type(out) == "function" then out(s) else s:write(out) end
    s:read()
  end, function (port)
    local c = assert(socket.connect("127.0.0.1", port))
    local ok, err = pcall(fn, c)
    c:close()
    assert(ok, err)
  end)
end

-- A python3 listener whose backlog is full (the kernel drops new SYNs, so
-- a connect waits), for about 3 s; its port and a function waiting for it.
local function hole ()
  return python([[
import socket, sys, time
hole = socket.socket()
hole.bind(("127.0.0.1", 0))
hole.listen(0)
fill = []
for _ in range(64):
    c = socket.socket()
    c.settimeout(1.0)
    try:
        c.connect(hole.getsockname())
    except OSError:
        c.close()
        break
    fill.append(c)
print(hole.getsockname()[1], flush=True)
time.sleep(3)
]])
end

local function results (...)
  return table.pack(...)
end

describe("tide.socket tcp", function ()
  it("connects with connect() and tcp():connect() and returns 1.0", async(function ()
    serving(function (s) s:read() end, function (port)
      local c = socket.tcp()
      assert.equal("tcp{master}", c:getclass())
      assert.equal(1.0, c:connect("127.0.0.1", port))
      assert.equal("tcp{client}", c:getclass())
      assert.truthy(tostring(c):match("^tcp{client}: 0x"))
      c:close()
      local c2 = assert(socket.connect("127.0.0.1", port))
      c2:close()
    end)
  end))

  it("returns nil and 'connection refused' when nothing listens", async(function ()
    local port = H.freeport()
    assert.same({ nil, "connection refused" },
                { socket.connect("127.0.0.1", port) })
  end))

  it("returns LuaSocket's message for an unknown host", async(function ()
    local c, err = socket.connect("nonexistent.invalid", 80)
    assert.is_nil(c)
    assert.equal("host or service not provided, or not known", err)
  end))

  it("receives lines without CR, byte counts, and all, as data, nil, nil", async(function ()
    peer("one\r\ntw\ro\nthree bytes and the rest", function (c)
      local r = results(c:receive())
      assert.same({ n = 3, "one" }, r)
      assert.same({ n = 3, "two" }, results(c:receive("*l")))
      assert.same({ n = 3, "three" }, results(c:receive(5)))
      assert.same({ n = 3, " bytes" }, results(c:receive("6")))
      c:shutdown("send")
    end)
  end))

  it("takes the 'l' and 'a' spellings and a prefix", async(function ()
    serving(function (s) s:write("ab\ncdef") s:close() end, function (port)
      local c = assert(socket.connect("127.0.0.1", port))
      assert.equal("xab", c:receive("l", "x"))
      assert.equal("pre", c:receive(2, "pre"))       -- the prefix counts
      assert.equal("precd", c:receive(5, "pre"))
      assert.equal("ef", c:receive("a"))
      c:close()
    end)
  end))

  it("raises for an invalid pattern", async(function ()
    peer("", function (c)
      assert.has_error(function () c:receive("*x") end,
                       "bad argument #1 to 'receive' (invalid receive pattern)")   -- LuaSocket's words
    end)
  end))

  it("returns nil, 'closed' and the partial data when the peer closes mid-receive", async(function ()
    for _, case in ipairs {
      { "*l", "no newline\r", "no newline" },
      { 100, "short", "short" },
    } do
      serving(function (s) s:write(case[2]) s:close() end, function (port)
        local c = assert(socket.connect("127.0.0.1", port))
        assert.same({ n = 3, nil, "closed", case[3] },
                    results(c:receive(case[1])))
        assert.same({ n = 3, nil, "closed", "" }, results(c:receive()))
        c:close()
      end)
    end
  end))

  it("receives '*a' to the end; at once closed gives nil, 'closed', ''", async(function ()
    serving(function (s) s:write("all of it") s:close() end, function (port)
      local c = assert(socket.connect("127.0.0.1", port))
      assert.same({ n = 3, "all of it" }, results(c:receive("*a")))
      assert.same({ n = 3, nil, "closed", "" }, results(c:receive("*a")))
      c:close()
    end)
  end))

  it("sends data[i..j] and returns the last index as a float", async(function ()
    local got = tide.Queue()
    serving(function (s) got:put(readall(s)) end, function (port)
      local c = assert(socket.connect("127.0.0.1", port))
      assert.same({ n = 3, 5.0 }, results(c:send("hello")))
      assert.equal("float", math.type((c:send("hello"))))
      assert.same({ n = 3, 4.0 }, results(c:send("abcdef", 2, 4)))
      assert.same({ n = 3, 6.0 }, results(c:send("abcdef", -2)))
      assert.same({ n = 3, 4.0 }, results(c:send("x", 5)))   -- nothing
      c:close()
      assert.equal("hellohellobcdef", got:get())
    end)
  end))

  it("returns nil, 'closed' and the last index sent once closed", async(function ()
    peer("", function (c)
      c:close()
      assert.same({ n = 3, nil, "closed", 0.0 }, results(c:send("x")))
      assert.same({ n = 3, nil, "closed", "" }, results(c:receive()))
    end)
  end))

  describe("timeouts", function ()
    it("settimeout returns 1.0 and a block timeout gives nil, 'timeout', partial", async(function ()
      peer("part", function (c)
        assert.equal(1.0, c:settimeout(0.05))
        local t0 = tide.now()
        assert.same({ n = 3, nil, "timeout", "part" }, results(c:receive("*l")))
        assert.is_true(tide.now() - t0 >= 0.04)
        assert.same({ n = 3, nil, "timeout", "" }, results(c:receive(3)))
      end)
    end))

    it("a total timeout counts from the start of the call", async(function ()
      peer(function (s)
        for i = 1, 10 do s:write("x") tide.sleep(0.03) end
      end, function (c)
        c:settimeout(0.1, "t")
        local t0 = tide.now()
        local data, err, partial = c:receive(100)
        assert.is_nil(data)
        assert.equal("timeout", err)
        assert.is_true(#partial >= 1 and #partial < 10, partial)
        assert.is_true(tide.now() - t0 < 1)
      end)
    end))

    it("a block timeout lets data arriving within it through", async(function ()
      peer(function (s)
        for i = 1, 5 do s:write("y") tide.sleep(0.02) end
        s:write("\n")
      end, function (c)
        c:settimeout(0.5)
        assert.equal("yyyyy", c:receive())
      end)
    end))

    it("connect times out with nil, 'timeout' (a listener whose backlog is full)", async(function ()
      local port, wait = hole()
      local c = socket.tcp()
      c:settimeout(0.2)
      local t0 = tide.now()
      assert.same({ nil, "timeout" }, { c:connect("127.0.0.1", port) })
      assert.is_true(tide.now() - t0 < 1.5)
      c:close()
      -- settimeouts' connect timeout, in milliseconds
      c = socket.tcp()
      c:settimeouts(100, 1000, 1000)
      assert.same({ nil, "timeout" }, { c:connect("127.0.0.1", port) })
      c:close()
      wait()
    end))

    it("accept times out with nil, 'timeout'", async(function ()
      local srv = assert(socket.bind("127.0.0.1", 0))
      srv:settimeout(0.05)
      assert.same({ nil, "timeout" }, { srv:accept() })
      srv:close()
    end))

    it("send times out with nil, 'timeout' and the last index sent", async(function ()
      serving(function (s) tide.sleep(5) end, function (port)
        local c = assert(socket.connect("127.0.0.1", port))
        c:settimeout(0.1)
        local big = ("z"):rep(1 << 20)
        local err, last
        for i = 1, 64 do
          local ok
          ok, err, last = c:send(big)
          if not ok then break end
        end
        assert.equal("timeout", err)
        assert.equal(0.0, last)
        c:close()
      end)
    end))

    it("settimeouts takes milliseconds for connect, send and read (OpenResty)", async(function ()
      peer("", function (c)
        assert.equal(1, c:settimeouts(1000, 1000, 30))
        local t0 = tide.now()
        assert.same({ n = 3, nil, "timeout", "" }, results(c:receive()))
        assert.is_true(tide.now() - t0 < 1)
      end)
    end))

    it("rejects a bad mode", async(function ()
      assert.has_error(function () socket.tcp():settimeout(1, "x") end)
    end))
  end)

  it("leaves the socket usable when a task is cancelled in receive", async(function ()
    local go = tide.Event()
    peer(function (s) go:wait() s:write("later\n") end, function (c)
      local t = tide.spawn(function () return c:receive() end)
      tide.sleep(0.02)
      t:cancel()
      assert.has_error(function () t:await() end)
      go:set()
      assert.equal("later", c:receive())
    end)
  end))

  it("loses nothing when a receive of a count or of all is cancelled part-way", async(function ()
    local go = tide.Event()
    peer(function (s)
      s:write("first part")
      go:wait()
      s:write(" and the rest\n")
    end, function (c)
      for _, pattern in ipairs { 100, "*a" } do
        local t = tide.spawn(function () return c:receive(pattern) end)
        tide.sleep(0.05)
        t:cancel()
        assert.is_true(tide.iscancelled(select(2, pcall(t.await, t))))
      end
      assert.is_true(c:dirty())
      go:set()
      assert.equal("first part and the rest", c:receive())
    end)
  end))

  it("cancels a connect and an accept", async(function ()
    local srv = assert(socket.bind("127.0.0.1", 0))
    local t = tide.spawn(function () return srv:accept() end)
    tide.sleep(0.01)
    t:cancel()
    assert.is_true(tide.iscancelled(select(2, pcall(t.await, t))))
    local ip, port = srv:getsockname()
    local c = assert(socket.connect(ip, port))
    local a = assert(srv:accept())
    a:close() c:close() srv:close()
  end))

  it("cancels a connect, a send held by backpressure, select, receiveuntil, receiveany, sslhandshake, sleep and a udp receive", async(function ()
    local port, wait = hole()
    local function cancelled (f)
      local t = tide.spawn(f)
      tide.sleep(0.05)
      t:cancel()
      local ok, err = pcall(t.await, t)
      assert.is_false(ok)
      assert.is_true(tide.iscancelled(err), tostring(err))
    end
    cancelled(function () socket.tcp():connect("127.0.0.1", port) end)
    serving(function (s) tide.sleep(5) end, function (p)
      local c = assert(socket.connect("127.0.0.1", p))
      cancelled(function ()
        local big = ("z"):rep(1 << 20)
        for _ = 1, 64 do c:send(big) end
      end)
      cancelled(function () socket.select({ c }, nil, 5) end)
      cancelled(function () c:receiveuntil("--")() end)
      cancelled(function () c:receiveany(10) end)
      cancelled(function () c:sslhandshake(nil, "localhost", false) end)
      c:close()
    end)
    cancelled(function () socket.sleep(5) end)
    local u = socket.udp()
    u:setsockname("127.0.0.1", 0)
    cancelled(function () u:receive() end)
    u:close()
    wait()
  end))

  it("sets and gets options", async(function ()
    peer("", function (c)
      assert.equal(1.0, c:setoption("tcp-nodelay", true))
      assert.is_true(c:getoption("tcp-nodelay"))
      assert.is_false(c:getoption("keepalive"))
      assert.equal(1.0, c:setoption("keepalive", true))
      assert.equal(1.0, c:setoption("linger", { on = true, timeout = 2 }))
      assert.same({ on = true, timeout = 2 }, c:getoption("linger"))
      assert.equal(1.0, c:setoption("reuseaddr", true))
      assert.has_error(function () c:setoption("bogus", 1) end)
      assert.has_error(function () c:setoption("tcp-nodelay", nil) end)
    end)
  end))

  it("gives names, stats and dirty", async(function ()
    peer("abc\ndef", function (c)
      local ip, port, family = c:getpeername()
      assert.equal("127.0.0.1", ip)
      assert.equal("number", type(port))
      assert.equal("inet", family)
      assert.equal("127.0.0.1", (c:getsockname()))
      assert.equal("abc", c:receive())
      assert.is_true(c:dirty())
      c:send("12")
      local r, s, age = c:getstats()
      assert.equal(7.0, r)
      assert.equal(2.0, s)
      assert.is_true(age >= 0)
      local fd = c:getfd()
      assert.equal("float", math.type(fd))
      assert.is_true(fd > 2)
    end)
  end))

  it("binds, listens and accepts; '*' is any address", async(function ()
    local m = socket.tcp()
    assert.equal(1.0, m:bind("*", 0))
    assert.equal(1.0, m:listen(8))
    assert.equal("tcp{server}", m:getclass())
    local _, port = m:getsockname()
    local c = assert(socket.connect("127.0.0.1", port))
    local a = assert(m:accept())
    a:send("hi\n")
    assert.equal("hi", c:receive())
    a:close() c:close() m:close()
  end))

  it("shuts down the sending side", async(function ()
    local got = tide.Queue()
    serving(function (s) got:put(readall(s)) s:write("bye") end, function (port)
      local c = assert(socket.connect("127.0.0.1", port))
      c:send("data")
      assert.equal(1.0, c:shutdown("send"))
      assert.equal("data", got:get())
      assert.equal("bye", c:receive("*a"))
      c:close()
    end)
  end))

  it("raises when a method meets the wrong kind of object", async(function ()
    assert.has_error(function () socket.tcp():receive() end,
                     "calling 'receive' on bad self (tcp{client} expected)")
  end))
end)

describe("tide.socket OpenResty additions", function ()
  it("receiveany returns what is there, at most max", async(function ()
    peer("0123456789", function (c)
      tide.sleep(0.02)
      assert.equal("0123", c:receiveany(4))
      assert.equal("456789", c:receiveany(100))
    end)
  end))

  it("receiveuntil returns the data before the pattern, then the next", async(function ()
    peer("a--b--c--", function (c)
      local it = c:receiveuntil("--")
      assert.equal("a", it())
      assert.equal("b", it())
      local inc = c:receiveuntil("--", { inclusive = true })
      assert.equal("c--", inc())
    end)
  end))

  it("receiveuntil with a size returns pieces, then nil at the pattern", async(function ()
    peer("hello world\r\n\r\nrest", function (c)
      local it = c:receiveuntil("\r\n\r\n")
      local parts = {}
      while true do
        local d, err = it(4)
        if not d then assert.is_nil(err) break end
        parts[#parts + 1] = d
      end
      assert.equal("hello world", table.concat(parts))
      assert.equal("rest", c:receive(4))
    end)
  end))

  it("receiveuntil gives nil, 'closed' and the partial data at the end", async(function ()
    serving(function (s) s:write("no end") s:close() end, function (port)
      local c = assert(socket.connect("127.0.0.1", port))
      assert.same({ nil, "closed", "no end" }, { c:receiveuntil("--")() })
      c:close()
    end)
  end))

  describe("setkeepalive", function ()
    -- A server counting connections; each echoes lines.
    local function counting (fn)
      local accepted, ended = 0, 0
      serving(function (s)
        accepted = accepted + 1
        while true do
          local l = s:read_until("\n")
          if not l then break end
          s:write(l)
        end
        ended = ended + 1
      end, function (port)
        fn(port, function () return accepted, ended end)
      end)
    end

    it("reuses a pooled connection and counts reuses", async(function ()
      counting(function (port, counts)
        local c = socket.tcp()
        assert(c:connect("127.0.0.1", port))
        assert.equal(0, c:getreusedtimes())
        c:send("a\n")
        assert.equal("a", c:receive())
        assert.equal(1, c:setkeepalive(1000, 10))
        assert.same({ nil, "closed" }, { c:getreusedtimes() })
        local d = socket.tcp()
        assert(d:connect("127.0.0.1", port))
        assert.equal(1, d:getreusedtimes())
        d:send("b\n")
        assert.equal("b", d:receive())
        assert.equal(1, (counts()))
        d:close()
      end)
    end))

    it("refuses to pool a connection with unread data", async(function ()
      peer("unread", function (c)
        c:receiveany(1)
        assert.same({ nil, "unread data in buffer" }, { c:setkeepalive() })
      end)
    end))

    it("evicts the least recently used past the pool size", async(function ()
      counting(function (port, counts)
        local a, b = socket.tcp(), socket.tcp()
        assert(a:connect("127.0.0.1", port, { pool = "evict" }))
        assert(b:connect("127.0.0.1", port, { pool = "evict" }))
        assert(a:setkeepalive(0, 1))
        assert(b:setkeepalive(0, 1))
        local t0 = tide.now()
        while select(2, counts()) < 1 do
          assert.is_true(tide.now() - t0 < 5)
          tide.sleep(0.01)
        end
        local c = socket.tcp()
        assert(c:connect("127.0.0.1", port, { pool = "evict" }))
        assert.equal(1, c:getreusedtimes())
        c:close()
      end)
    end))

    it("closes a pooled connection past its idle timeout at the next use", async(function ()
      counting(function (port, counts)
        local c = socket.tcp()
        assert(c:connect("127.0.0.1", port, { pool = "idle" }))
        assert(c:setkeepalive(30))
        tide.sleep(0.1)
        local d = socket.tcp()
        assert(d:connect("127.0.0.1", port, { pool = "idle" }))
        assert.equal(0, d:getreusedtimes())
        local t0 = tide.now()
        while select(2, counts()) < 1 do
          assert.is_true(tide.now() - t0 < 5)
          tide.sleep(0.01)
        end
        d:close()
      end)
    end))

    it("does not reuse a pooled connection the peer has closed", async(function ()
      local n = 0
      serving(function (s) n = n + 1 end, function (port)
        local c = socket.tcp()
        assert(c:connect("127.0.0.1", port, { pool = "peerclose" }))
        assert(c:setkeepalive())
        tide.sleep(0.1)                  -- the peer's close arrives
        local d = socket.tcp()
        assert(d:connect("127.0.0.1", port, { pool = "peerclose" }))
        assert.equal(0, d:getreusedtimes())
        assert.equal(0, #socket._pools.peerclose)
        d:close()
      end)
    end))

    it("keeps the program from waiting at its end (no task per pooled connection)", function ()
      local script = tmpfile([[
        local socket = require "tide.socket"
        local srv = assert(socket.bind("127.0.0.1", 0))
        local c = socket.tcp()
        assert(c:connect(srv:getsockname()))
        assert(c:setkeepalive(20000))
      ]])
      local t0 = os.time()
      local out, code = sh(("%s %s"):format(TIDE, script))
      os.remove(script)
      assert.equal(0, code, out)
      assert.equal("", out)
      assert.is_true(os.time() - t0 < 10)
    end)
  end)
end)

describe("tide.socket udp", function ()
  it("sends and receives datagrams", async(function ()
    local a, b = socket.udp(), socket.udp()
    assert.equal(1.0, a:setsockname("127.0.0.1", 0))
    local ip, port = a:getsockname()
    assert.equal(5.0, b:sendto("hello", ip, port))
    local data, fip, fport = a:receivefrom()
    assert.equal("hello", data)
    assert.equal("127.0.0.1", fip)
    assert.equal(1.0, b:setpeername(ip, port))
    b:send("again")
    assert.equal("again", a:receive())
    a:settimeout(0.02)
    assert.same({ nil, "timeout" }, { a:receive() })
    a:close() b:close()
  end))
end)

describe("tide.socket functions", function ()
  it("resolves names", async(function ()
    local ip, info = socket.dns.toip("localhost")
    assert.equal("127.0.0.1", ip)
    assert.equal("localhost", info.name)
    assert.equal("string", type(socket.dns.gethostname()))
    local list = socket.dns.getaddrinfo("127.0.0.1")
    assert.same({ { family = "inet", addr = "127.0.0.1" } }, list)
  end))

  it("sleeps, and gives the time since the epoch", async(function ()
    local t0 = socket.gettime()
    assert.is_true(math.abs(t0 - os.time()) <= 1)
    assert.is_true(t0 ~= math.floor(t0) or socket.gettime() ~= t0)
    socket.sleep(0.02)
    assert.is_true(socket.gettime() - t0 >= 0.015)
  end))

  it("selects sockets with data to read", async(function ()
    peer(function (s) tide.sleep(0.05) s:write("ping\n") end, function (c)
      local r, w, err = socket.select({ c }, nil, 0.01)
      assert.same({}, r)
      assert.equal("timeout", err)
      r, w, err = socket.select({ c }, { c }, 2)
      assert.equal(c, w[1])
      r, w, err = socket.select({ c }, nil, 2)
      assert.equal(c, r[1])
      assert.equal(1, r[c])
      assert.is_nil(err)
      assert.equal("ping", c:receive())
    end)
  end))

  it("protects and tries as LuaSocket's except does", function ()
    local f = socket.protect(function (x)
      local try = socket.newtry(function () end)
      try(x, "failed")
      return "ok"
    end)
    assert.same({ nil, "failed" }, { f(nil) })
    assert.equal("ok", f(true))
    assert.equal(2, socket.skip(1, 1, 2, 3))
  end)
end)

describe("tide.socket outside any task", function ()
  it("blocks as LuaSocket does (stock lua5.4 with the C module)", function ()
    local script = tmpfile([[
      package.cpath = os.getenv("BUILD") .. "/?.so;" .. package.cpath
      local tide = require "tide"
      local socket = require "tide.socket"
      local srv = assert(socket.bind("127.0.0.1", 0))
      local ip, port = srv:getsockname()
      local c = assert(socket.connect(ip, port))
      local a = assert(srv:accept())
      assert(c:send("line\r\nrest"))
      print(a:receive(), a:receive(2))
      a:settimeout(0.05)
      print(a:receive())
      c:close()
      print(a:receive())
      socket.sleep(0.01)
      a:close() srv:close()
    ]])
    local out, code = sh(("LD_PRELOAD=\"$TIDE_PRELOAD\" BUILD=%s lua5.4 %s"):format(BUILD, script))
    os.remove(script)
    assert.equal(0, code, out)
    assert.equal("line\tre\tnil\tnil\n" ..
                 "nil\ttimeout\tst\n" ..
                 "nil\tclosed\t\n", out)
  end)

  it("raises wrong use of receive and send at the caller's line there too", function ()
    local script = tmpfile([[
      package.cpath = os.getenv("BUILD") .. "/?.so;" .. package.cpath
      local socket = require "tide.socket"
      local srv = assert(socket.bind("127.0.0.1", 0))
      local c = assert(socket.connect("127.0.0.1", select(2, srv:getsockname())))
      print(select(2, pcall(function () return c:receive("*x") end)))
      print(select(2, pcall(function () c:send() end)))
      print(select(2, pcall(function () return c:receive({}) end)))
      c:close() srv:close()
    ]])
    local out, code = sh(("LD_PRELOAD=\"$TIDE_PRELOAD\" BUILD=%s lua5.4 %s"):format(BUILD, script))
    assert.equal(0, code, out)
    local name = script:match("[^/]*$")
    for line in out:gmatch("[^\n]+") do
      assert.truthy(line:find(name .. ":%d+: bad argument #1 to '%a+' %("), out)
    end
    os.remove(script)
  end)
end)

-- What a user met comparing tide.socket with LuaSocket 3.1.0 (Debian's).
describe("tide.socket as LuaSocket", function ()
  -- The message of the error f raises.
  local function raised (f)
    local ok, err = pcall(f)
    assert.is_false(ok)
    return err
  end
  local here = debug.getinfo(1, "S").short_src

  it("counts a block timeout from the start of the call (a trickling peer cannot hold receive)", async(function ()
    peer(function (s)
      for _, b in ipairs({ "a", "b", "c", "d" }) do s:write(b) tide.sleep(0.15) end
    end, function (c)
      c:settimeout(0.2)
      local t0 = tide.now()
      assert.same({ n = 3, nil, "timeout", "ab" }, results(c:receive(4)))
      assert.is_true(tide.now() - t0 < 0.45)
    end)
  end))

  it("accept on a closed server gives nil, 'closed'", async(function ()
    local srv = assert(socket.bind("127.0.0.1", 0))
    srv:close()
    assert.same({ n = 2, nil, "closed" }, results(srv:accept()))
  end))

  it("settimeouts raises for a non-number", async(function ()
    local c = socket.tcp()
    assert.matches("bad argument #1 to 'settimeouts' %(number expected, got string%)",
                   raised(function () c:settimeouts("a") end))
    assert.matches("bad argument #3 to 'settimeouts' %(number expected, got table%)",
                   raised(function () c:settimeouts(1, 2, {}) end))
    assert.equal(1, c:settimeouts(nil, 100, nil))
  end))

  it("an object given to setkeepalive acts as a closed one", async(function ()
    serving(function (s) s:read() end, function (port)
      local c = assert(socket.connect("127.0.0.1", port))
      assert.equal(1, c:setkeepalive())
      assert.same({ n = 3, nil, "closed", "" }, results(c:receive()))
      assert.same({ nil, "closed", 0.0 }, { c:send("x") })
      assert.same({ nil, "closed" }, { c:setkeepalive() })
      socket._pools[c.poolkey] = nil
    end)
  end))

  it("raises wrong use as LuaSocket, at the caller's line, also in a tail call", async(function ()
    peer("", function (c)
      local line = debug.getinfo(1, "l").currentline
      assert.equal(("%s:%d: bad argument #1 to 'receive' (invalid receive pattern)")
                   :format(here, line + 3),
                   raised(function () return c:receive("*x") end))
      assert.equal(("%s:%d: bad argument #1 to 'receive' (string expected, got table)")
                   :format(here, line + 6),
                   raised(function () c:receive({}) end))
      assert.matches("bad argument #1 to 'receive' %(invalid receive pattern%)",
                     raised(function () return c:receive(-1) end))
      assert.equal(("%s:%d: bad argument #1 to 'send' (string expected, got no value)")
                   :format(here, line + 11),
                   raised(function () return c:send() end))
      assert.matches("bad argument #1 to 'settimeout' %(number expected, got string%)",
                     raised(function () return c:settimeout("abc") end))
      assert.matches("bad argument #1 to 'shutdown' %(invalid option 'sideways'%)",
                     raised(function () return c:shutdown("sideways") end))
      assert.equal(("%s:%d: calling 'accept' on bad self (tcp{server} expected)")
                   :format(here, line + 18),
                   raised(function () return c:accept() end))
      assert.matches("bad argument #1 to 'connect' %(string expected, got no value%)",
                     raised(function () return socket.connect() end))
      assert.matches("bad argument #2 to 'connect' %(string expected, got no value%)",
                     raised(function () return socket.connect("127.0.0.1") end))
    end)
  end))

  it("gives getsockname's port as a string, tcp and udp", async(function ()
    local srv = assert(socket.bind("127.0.0.1", 0))
    local _, port = srv:getsockname()
    assert.equal("string", type(port))
    local c = assert(socket.connect("127.0.0.1", port))
    assert.equal("string", type(select(2, c:getsockname())))
    assert.equal("number", type(select(2, c:getpeername())))
    c:close() srv:close()
    local u = socket.udp()
    u:setsockname("127.0.0.1", 0)
    assert.equal("string", type(select(2, u:getsockname())))
    u:close()
  end))

  it("udp:receive gives the data only; receivefrom the address too", async(function ()
    local a, b = socket.udp(), socket.udp()
    a:setsockname("127.0.0.1", 0)
    local ip, port = a:getsockname()
    a:settimeout(2)
    b:sendto("one", ip, port)
    assert.same({ n = 1, "one" }, results(a:receive()))
    b:sendto("twothree", ip, port)
    assert.same({ n = 1, "two" }, results(a:receive(3)))
    b:sendto("four", ip, port)
    local r = results(a:receivefrom())
    assert.equal("four", r[1])
    assert.equal("127.0.0.1", r[2])
    a:close() b:close()
    assert.same({ nil, "closed" }, { a:receive() })
  end))

  it("has _DATAGRAMSIZE; select skips closed sockets and raises for a non-socket", async(function ()
    assert.equal(8192, socket._DATAGRAMSIZE)
    local c = socket.tcp()
    c:close()
    local r, w, err = socket.select({ c }, nil, 0.05)
    assert.same({}, r)
    assert.same({}, w)
    assert.equal("timeout", err)
    assert.matches("attempt to index a number value",
                   raised(function () socket.select({ 1 }, nil, 0.01) end))
  end))

  it("connect takes ports as LuaSocket: a name fails, 70000 wraps", async(function ()
    assert.same({ nil, "service not supported for socket type" },
                { socket.connect("127.0.0.1", "abc") })
    local srv = assert(socket.bind("127.0.0.1", 0))
    local _, port = srv:getsockname()
    local c = assert(socket.connect("127.0.0.1", tonumber(port) + 65536))
    c:close() srv:close()
    assert.same({ nil, "host not found" }, { socket.dns.toip("no.such.host.invalid") })
  end))
end)
