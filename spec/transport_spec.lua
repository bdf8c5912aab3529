-- transport_spec.lua: the callback layer (bindings/transport.c,
-- transport_net.c): tide.tcp.create_server / create_connection and
-- tide.pipe's, Transport and Protocol as asyncio has them, against tide's
-- streams and python3 as peers.

-- Wait (in a task) until cond() is true, at most secs seconds.
local function waitfor (cond, secs)
  local start = tide.now()
  while not cond() do
    assert(tide.now() - start < (secs or 10), "timed out waiting")
    tide.sleep(0.005)
  end
end

local protocols = setmetatable({}, { __mode = "k" })   -- by log

-- A factory of protocols that log their callbacks in log (and keep their
-- transport as .t); extra methods override theirs.
local function recorder (log, extra)
  return function ()
    local p = {}
    function p:connection_made (t)
      self.t = t
      log[#log + 1] = "made"
    end
    function p:data_received (d) log[#log + 1] = "data:" .. d end
    function p:eof_received () log[#log + 1] = "eof" end
    function p:connection_lost (err, code)
      log[#log + 1] = "lost:" .. tostring(err) .. (code and ":" .. code or "")
    end
    for k, v in pairs(extra or {}) do p[k] = v end
    protocols[log] = p
    return p
  end
end

local function last (log) return log[#log] end

-- An echo protocol class, as asyncio's docs write it.
local Echo = {}
Echo.__index = Echo
function Echo:connection_made (t) self.t = t end
function Echo:data_received (d) self.t:write(d) end

local function echo_factory () return setmetatable({}, Echo) end

local function port_of (server)
  local _, port = server:getsockname()
  return port
end

describe("tide.tcp.create_server", function ()
  it("calls connection_made, data_received, eof_received, connection_lost in order", async(function ()
    local log = {}
    local srv <close> = assert(tide.tcp.create_server("127.0.0.1", 0, recorder(log)))
    assert.is_true(srv:is_serving())
    local c <close> = assert(tide.tcp.connect("127.0.0.1", port_of(srv)))
    c:write("hello")
    waitfor(function () return log[2] end)
    c:shutdown()
    waitfor(function () return log[4] end)
    assert.same({ "made", "data:hello", "eof", "lost:nil" }, { log[1], log[2], log[3], log[4] })
    assert.is_nil(c:read())                  -- closed after eof_received
  end))

  it("echoes with a class-style protocol, many connections at once", async(function ()
    local srv <close> = assert(tide.tcp.create_server("127.0.0.1", 0, echo_factory))
    local port = port_of(srv)
    local tasks = {}
    for i = 1, 20 do
      tasks[i] = tide.spawn(function ()
        local c <close> = assert(tide.tcp.connect("127.0.0.1", port))
        for j = 1, 10 do
          local msg = ("%d-%d\n"):format(i, j)
          c:write(msg)
          assert.equal(msg, c:read_until("\n"))
        end
        return true
      end)
    end
    for i = 1, 20 do assert.is_true(tasks[i]:await()) end
  end))

  it("serves a python3 client", async(function ()
    local srv <close> = assert(tide.tcp.create_server("127.0.0.1", 0, echo_factory))
    local done = background(("python3 -c '%s' %d"):format(
      "import socket,sys; s=socket.create_connection((\"127.0.0.1\", int(sys.argv[1])));"
      .. " s.sendall(b\"x\" * 100000); s.shutdown(socket.SHUT_WR);"
      .. " n=0\nwhile True:\n  d=s.recv(65536)\n  if not d: break\n  n+=len(d)\nprint(n)",
      port_of(srv)))
    assert.equal("100000\n", done())
  end))

  it("keeps the write side open when eof_received returns true", async(function ()
    local log = {}
    local srv <close> = assert(tide.tcp.create_server("127.0.0.1", 0, recorder(log, {
      eof_received = function (self)
        log[#log + 1] = "eof"
        self.t:write("bye")
        self.t:close()
        return true
      end })))
    local c <close> = assert(tide.tcp.connect("127.0.0.1", port_of(srv)))
    c:write("hi")
    c:shutdown()
    assert.equal("bye", readall(c))
    waitfor(function () return last(log) == "lost:nil" end)
    assert.same({ "made", "data:hi", "eof", "lost:nil" }, log)
  end))

  it("sends what is queued before close() closes, then calls connection_lost", async(function ()
    local log, big = {}, ("0123456789abcdef"):rep(256 * 1024)   -- 4 MiB
    local srv <close> = assert(tide.tcp.create_server("127.0.0.1", 0, recorder(log, {
      connection_made = function (self, t)
        log[#log + 1] = "made"
        t:write(big)
        assert.is_true(t:get_write_buffer_size() > 0)
        t:close()
        assert.is_true(t:is_closing())
        t:write("ignored")                  -- after close: dropped
      end })))
    local c <close> = assert(tide.tcp.connect("127.0.0.1", port_of(srv)))
    local got = readall(c)
    assert.equal(#big, #got)
    assert.is_true(got == big)
    waitfor(function () return last(log) == "lost:nil" end)
    assert.same({ "made", "lost:nil" }, log)
  end))

  it("abort() closes at once, dropping what is queued", async(function ()
    local log, big = {}, ("x"):rep(8 * 1024 * 1024)
    local srv <close> = assert(tide.tcp.create_server("127.0.0.1", 0, recorder(log, {
      connection_made = function (self, t)
        log[#log + 1] = "made"
        t:write(big)
        t:abort()
        assert.is_true(t:is_closing())
        assert.equal(0, t:get_write_buffer_size())
      end })))
    local c <close> = assert(tide.tcp.connect("127.0.0.1", port_of(srv)))
    local n = 0
    while true do
      local d = c:read()
      if not d then break end
      n = n + #d
    end
    assert.is_true(n < #big)
    waitfor(function () return last(log) == "lost:nil" end)
    assert.same({ "made", "lost:nil" }, log)
  end))

  it("calls pause_writing above the high mark and resume_writing below the low one", async(function ()
    local log, chunk, written, maxbuf = {}, ("y"):rep(16 * 1024), 0, 0
    local total = 8 * 1024 * 1024
    local P = {}
    P.__index = P
    function P:connection_made (t)
      self.t = t
      t:set_write_buffer_limits(128 * 1024, 32 * 1024)
      assert.same({ 32 * 1024, 128 * 1024 }, { t:get_write_buffer_limits() })
      self:fill()
    end
    function P:fill ()                      -- write until paused or done
      while not self.paused and written < total do
        self.t:write(chunk)
        written = written + #chunk
        maxbuf = math.max(maxbuf, self.t:get_write_buffer_size())
      end
      if written >= total then self.t:close() end
    end
    function P:pause_writing ()
      log[#log + 1] = "pause"
      self.paused = true
    end
    function P:resume_writing ()
      log[#log + 1] = "resume"
      assert.is_true(self.t:get_write_buffer_size() <= 32 * 1024)
      self.paused = false
      self:fill()
    end
    function P:connection_lost () log[#log + 1] = "lost" end
    local srv <close> = assert(tide.tcp.create_server("127.0.0.1", 0, function ()
      return setmetatable({}, P)
    end))
    local c <close> = assert(tide.tcp.connect("127.0.0.1", port_of(srv)))
    tide.sleep(0.1)                          -- a slow reader: nothing read yet
    assert.equal("pause", log[1])
    assert.is_true(written < total)
    local n = 0
    while true do
      local d = c:read()
      if not d then break end
      n = n + #d
      if n < 1024 * 1024 then tide.sleep(0.001) end
    end
    assert.equal(total, n)
    waitfor(function () return last(log) == "lost" end)
    assert.equal("resume", log[2])
    -- bounded: never more queued than the high mark and one chunk
    assert.is_true(maxbuf <= 128 * 1024 + #chunk, tostring(maxbuf))
  end))

  it("pause_reading() stops data_received until resume_reading()", async(function ()
    local log = {}
    local srv <close> = assert(tide.tcp.create_server("127.0.0.1", 0, recorder(log, {
      connection_made = function (self, t)
        self.t = t
        log[#log + 1] = "made"
        t:pause_reading()
        assert.is_false(t:is_reading())
      end })))
    local c <close> = assert(tide.tcp.connect("127.0.0.1", port_of(srv)))
    c:write("early")
    tide.sleep(0.05)
    assert.same({ "made" }, log)
    protocols[log].t:resume_reading()
    assert.is_true(protocols[log].t:is_reading())
    waitfor(function () return log[2] end)
    assert.equal("data:early", log[2])
  end))

  it("pauses reading at once, inside data_received", async(function ()
    local log = {}
    local srv <close> = assert(tide.tcp.create_server("127.0.0.1", 0, recorder(log, {
      data_received = function (self, d)
        log[#log + 1] = "data:" .. d
        self.t:pause_reading()
      end })))
    local c <close> = assert(tide.tcp.connect("127.0.0.1", port_of(srv)))
    c:write("one")
    waitfor(function () return log[2] end)
    c:write("two")
    tide.sleep(0.05)
    assert.same({ "made", "data:one" }, log)
    protocols[log].t:resume_reading()
    waitfor(function () return log[3] end)
    assert.equal("data:two", log[3])
  end))

  it("reports an error in a callback and aborts only that connection", async(function ()
    local log = {}
    local srv <close> = assert(tide.tcp.create_server("127.0.0.1", 0, function ()
      return setmetatable({
        data_received = function (self, d)
          if d == "boom" then error("exploded") end
          self.t:write(d)
        end,
        connection_lost = function (self, err) log[#log + 1] = tostring(err) end,
      }, Echo)
    end))
    local port = port_of(srv)
    local good <close> = assert(tide.tcp.connect("127.0.0.1", port))
    local bad <close> = assert(tide.tcp.connect("127.0.0.1", port))
    bad:write("boom")
    assert.is_nil(bad:read())
    waitfor(function () return log[1] end)
    assert.matches("exploded", log[1])
    good:write("still")
    assert.equal("still", good:read())
  end))

  it("reports the error with its traceback on stderr", function ()
    local path = tmpfile([[
local srv = assert(tide.tcp.create_server("127.0.0.1", 0, function ()
  return { data_received = function () error("exploded here") end }
end))
local _, port = srv:getsockname()
local c = assert(tide.tcp.connect("127.0.0.1", port))
c:write("x")
assert(c:read() == nil)
srv:close()
print("served on")
]])
    local out, code = sh(TIDE .. " " .. path)
    os.remove(path)
    assert.equal(0, code, out)             -- reported; the exit status is the program's
    assert.matches("tide: error in a Protocol callback %(data_received%): [^\n]*exploded here", out)
    assert.matches("stack traceback", out)
    assert.matches("served on", out)
  end)

  it("reports a server factory that returns no protocol, and closes that "
     .. "connection", function ()
    local path = tmpfile([[
local srv = assert(tide.tcp.create_server("127.0.0.1", 0, function () end))
local _, port = srv:getsockname()
local c = assert(tide.tcp.connect("127.0.0.1", port))
assert(c:read() == nil)
srv:close()
print("served on")
]])
    local out, code = sh(TIDE .. " " .. path)
    os.remove(path)
    assert.equal(0, code, out)
    assert.matches("tide: error in a Protocol callback %(factory%): the protocol "
                   .. "factory returned nil, not a protocol", out)
    assert.matches("served on", out)
  end)

  it("takes any callable as a factory, and write takes several strings",
     async(function ()
    local factory = setmetatable({}, { __call = function () return echo_factory() end })
    local srv <close> = assert(tide.tcp.create_server("127.0.0.1", 0, factory))
    local buf, want, got = "", nil, nil
    local t = assert(tide.tcp.create_connection("127.0.0.1", port_of(srv),
      setmetatable({}, { __call = function ()
        return { data_received = function (_, d)
          buf = buf .. d
          if #buf >= #want then got:set_result(buf) end
        end }
      end })))
    local function echoed (...)
      buf, want, got = "", table.concat({ ... }), tide.Future()
      t:write(...)
      return got:await()
    end
    assert.equal("ab3", echoed("a", "b", 3))
    local many = {}
    for i = 1, 20 do many[i] = tostring(i % 10) end
    assert.equal(table.concat(many), echoed(table.unpack(many)))
    assert.has_error(function () t:write("a", {}) end)
    assert.has_error(function () t:write() end)
    t:close()
  end))

  it("refuses to wait inside a callback, saying why", async(function ()
    local log = {}
    local srv <close> = assert(tide.tcp.create_server("127.0.0.1", 0, recorder(log, {
      data_received = function () tide.sleep(0) end })))
    local c <close> = assert(tide.tcp.connect("127.0.0.1", port_of(srv)))
    c:write("x")
    assert.is_nil(c:read())
    waitfor(function () return last(log) and last(log):match("^lost") end)
    assert.matches("must be called inside a task", last(log))
  end))

  it("lets a callback spawn a task that finishes the work", async(function ()
    local srv <close> = assert(tide.tcp.create_server("127.0.0.1", 0, function ()
      return {
        connection_made = function (self, t) self.t = t end,
        data_received = function (self, d)
          tide.spawn(function ()
            tide.sleep(0.01)
            self.t:write(d:upper())
            self.t:close()
          end)
        end,
      }
    end))
    local c <close> = assert(tide.tcp.connect("127.0.0.1", port_of(srv)))
    c:write("later")
    assert.equal("LATER", readall(c))
  end))

  it("reports a failing factory and closes that connection", async(function ()
    local n = 0
    local srv <close> = assert(tide.tcp.create_server("127.0.0.1", 0, function ()
      n = n + 1
      if n == 1 then error("no protocol today") end
      return echo_factory()
    end))
    local port = port_of(srv)
    local c1 <close> = assert(tide.tcp.connect("127.0.0.1", port))
    assert.is_nil(c1:read())
    local c2 <close> = assert(tide.tcp.connect("127.0.0.1", port))
    c2:write("ok")
    assert.equal("ok", c2:read())
  end))

  it("writes with writelines and ends the write side with write_eof", async(function ()
    local srv <close> = assert(tide.tcp.create_server("127.0.0.1", 0, function ()
      return {
        connection_made = function (_, t)
          assert.is_true(t:can_write_eof())
          t:writelines({ "a", "b", "c" })
          local many = {}
          for i = 1, 40 do many[i] = tostring(i % 10) end
          t:writelines(many)
          t:write_eof()
          assert.has_error(function () t:write("x") end, nil)
        end,
      }
    end))
    local c <close> = assert(tide.tcp.connect("127.0.0.1", port_of(srv)))
    assert.equal("abc" .. ("1234567890"):rep(4), readall(c))
  end))

  it("gives peername, sockname and socket by get_extra_info", async(function ()
    local info
    local srv <close> = assert(tide.tcp.create_server("127.0.0.1", 0, function ()
      return {
        connection_made = function (_, t)
          info = {
            peer = { t:get_extra_info("peername") },
            sock = { t:get_extra_info("sockname") },
            fd = t:get_extra_info("socket"),
            none = t:get_extra_info("nothing", "dflt"),
          }
        end,
      }
    end))
    local port = port_of(srv)
    local c <close> = assert(tide.tcp.connect("127.0.0.1", port))
    waitfor(function () return info end)
    assert.same({ c:getsockname() }, info.peer)
    assert.same({ "127.0.0.1", port }, info.sock)
    assert.is_true(math.type(info.fd) == "integer" and info.fd >= 0)
    assert.equal("dflt", info.none)
  end))

  it("fails as tide.tcp.listen does, and raises on bad arguments", async(function ()
    local srv <close> = assert(tide.tcp.create_server("127.0.0.1", 0, echo_factory))
    local s, err, code = tide.tcp.create_server("127.0.0.1", port_of(srv), echo_factory)
    assert.is_nil(s)
    assert.matches("127.0.0.1:%d+", err)
    assert.equal("EADDRINUSE", code)
    assert.has_error(function () tide.tcp.create_server("127.0.0.1", 0) end)
    assert.has_error(function () tide.tcp.create_server("127.0.0.1", 70000, echo_factory) end)
    assert.has_error(function () tide.tcp.create_server("127.0.0.1", 0, echo_factory, 5) end)
  end))

  it("serves until closed, and wait() returns once it is", async(function ()
    local srv = assert(tide.tcp.create_server("127.0.0.1", 0, echo_factory))
    local w = tide.spawn(srv.wait, srv)
    tide.sleep(0.01)
    assert.is_false(w:done())
    collectgarbage()                         -- anchored while it serves
    assert.is_true(srv:is_serving())
    srv:close()
    w:await()
    assert.is_false(srv:is_serving())
    srv:close()                              -- twice is harmless
    assert.equal("tide.ProtocolServer (closed)", tostring(srv))
  end))
end)

describe("what keeps the tide command running", function ()
  it("is not a ProtocolServer nobody waits on, as with tide.tcp.listen's server", function ()
    local sock = os.tmpname()
    os.remove(sock)
    local out, code = sh(("timeout 20 %s -e %s"):format(TIDE, ("'"
      .. "local s = assert(tide.tcp.create_server(\"127.0.0.1\", 0, function () return {} end)) "
      .. "local p = assert(tide.pipe.create_server(\"%s\", function () return {} end)) "
      .. "print(s:is_serving(), p:is_serving())'"):format(sock)))
    assert.equal(0, code, out)
    assert.equal("true\ttrue\n", out)
    assert.is_nil(io.open(sock))             -- closed at the end: its file removed
  end)

  it("is a task in server:wait(), until the server is closed", function ()
    local path = tmpfile([[
local s = assert(tide.tcp.create_server("127.0.0.1", 0, function () return {} end))
tide.spawn(function () tide.sleep(0.2) s:close() end)
local t0 = tide.now()
s:wait()
print("waited", tide.now() - t0 >= 0.15)
local s2 = assert(tide.tcp.create_server("127.0.0.1", 0, function () return {} end))
local w = tide.spawn(function () s2:wait() end)
tide.sleep(0.01)
w:cancel()                     -- nobody waits any more: nothing holds the program
]])
    local out, code = sh("timeout 20 " .. TIDE .. " " .. path)
    os.remove(path)
    assert.equal(0, code, out)
    assert.equal("waited\ttrue\n", out)
  end)
end)

describe("tide.tcp.create_connection", function ()
  it("connects, returns transport and protocol after connection_made", async(function ()
    local port, done = python([[
import socket
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
print(srv.getsockname()[1])
c, _ = srv.accept()
c.sendall(b"hello")
data = b""
while True:
    d = c.recv(100)
    if not d: break
    data += d
c.sendall(b"got " + data)
c.close()
]])
    local log = {}
    local t, p = tide.tcp.create_connection("127.0.0.1", port, recorder(log))
    assert.equal("made", log[1])
    assert.equal(protocols[log], p)
    assert.equal(t, p.t)
    assert.matches("^tide.Transport", tostring(t))
    t:write("ping")
    t:write_eof()
    waitfor(function () return last(log) == "lost:nil" end)
    assert.equal("made", log[1])
    assert.equal("eof", log[#log - 1])
    local data = {}
    for i = 2, #log - 2 do data[#data + 1] = log[i]:sub(6) end
    assert.equal("hellogot ping", table.concat(data))
    done()
  end))

  it("resolves localhost", async(function ()
    local srv <close> = assert(tide.tcp.create_server("127.0.0.1", 0, echo_factory))
    local log = {}
    local t = assert(tide.tcp.create_connection("localhost", port_of(srv), recorder(log)))
    t:write("x")
    waitfor(function () return log[2] end)
    assert.equal("data:x", log[2])
    t:close()
    waitfor(function () return last(log) == "lost:nil" end)
  end))

  it("returns nil, message, code when refused, calling no factory", async(function ()
    local srv = assert(tide.tcp.create_server("127.0.0.1", 0, echo_factory))
    local port = port_of(srv)
    srv:close()
    local called = false
    local t, err, code = tide.tcp.create_connection("127.0.0.1", port, function ()
      called = true
      return {}
    end)
    assert.is_nil(t)
    assert.matches("refused", err)
    assert.equal("ECONNREFUSED", code)
    assert.is_false(called)
  end))

  it("fails at once where the system refuses to start the connect",
     async(function ()
    local t, err, code = tide.tcp.create_connection("255.255.255.255", 80,
                                                    echo_factory)
    assert.is_nil(t)
    assert.equal("255.255.255.255: network is unreachable", err)
    assert.equal("ENETUNREACH", code)
  end))

  it("is cancelled cleanly while connecting", async(function ()
    local called = false
    local srv <close> = assert(tide.tcp.create_server("127.0.0.1", 0, echo_factory))
    local t = tide.spawn(tide.tcp.create_connection, "127.0.0.1", port_of(srv), function ()
      called = true
      return {}
    end)
    tide.yield()
    t:cancel()
    local ok, tr = pcall(t.await, t)
    assert.is_true(t:done())
    if t:cancelled() then assert.is_false(called)
    elseif ok and tr then tr:close() end
    t = tide.spawn(tide.tcp.create_connection, "localhost", 9, echo_factory)
    t:cancel()
    assert.has_error(function () t:await() end)
  end))

  it("raises the factory's error, and outside a task", async(function ()
    local srv <close> = assert(tide.tcp.create_server("127.0.0.1", 0, echo_factory))
    local named = tide.Future()
    local f = tide.Future()
    f:on_done(function ()                    -- outside any task: no resolver
      named:set_result(pcall(tide.tcp.create_server, "localhost", 0, echo_factory))
    end)
    f:set_result()
    local nok, nerr = named:await()
    assert.is_false(nok)
    assert.matches("tide.tcp.create_server: a host name is resolved in a task only",
                   nerr, 1, true)
    assert.has_error(function ()
      tide.tcp.create_connection("127.0.0.1", port_of(srv), function () error("nope") end)
    end, nil)
    local ok, err = pcall(tide.tcp.create_connection, "127.0.0.1", port_of(srv),
                          function () return 42 end)
    assert.is_false(ok)
    assert.matches("returned number, not a protocol", err)
    local t = tide.spawn(function ()
      return pcall(function ()
        local co = coroutine.wrap(function ()
          return table.sort({ 2, 1 }, function ()
            tide.tcp.create_connection("127.0.0.1", 1, echo_factory)
          end)
        end)
        co()
      end)
    end)
    local ok2, err2 = t:await()
    assert.is_false(ok2)
    assert.matches("create_connection", err2)
  end))
end)

describe("tide.pipe.create_server and create_connection", function ()
  it("serve and connect over a Unix socket, removing the file at close", async(function ()
    local path = os.tmpname()
    os.remove(path)
    path = path .. ".sock"
    local srv = assert(tide.pipe.create_server(path, echo_factory))
    assert.equal(path, srv:getsockname())
    local log = {}
    local t = assert(tide.pipe.create_connection(path, recorder(log)))
    assert.equal(path, t:get_extra_info("peername"))
    t:write("over unix")
    waitfor(function () return log[2] end)
    assert.equal("data:over unix", log[2])
    t:close()
    waitfor(function () return last(log) == "lost:nil" end)
    srv:close()
    assert.is_false(os.execute("test -S " .. path) == true)
    local t2, err, code = tide.pipe.create_connection(path, echo_factory)
    assert.is_nil(t2)
    assert.matches(path, err, 1, true)
    assert.equal("ENOENT", code)
  end))
end)

describe("scripts/pingpong_protocol.lua", function ()
  it("plays ping-pong with a Protocol", function ()
    local out, code = sh(TIDE .. " scripts/pingpong_protocol.lua 3")
    assert.equal(0, code, out)
    assert.matches("ping 1.*pong 1.*ping 3.*pong 3", out)
  end)
end)
