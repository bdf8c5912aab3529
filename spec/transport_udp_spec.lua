-- transport_udp_spec.lua: datagram endpoints (bindings/transport_udp.c):
-- tide.udp.create_datagram_endpoint, DatagramProtocol and
-- DatagramTransport as asyncio has them, against tide's UDP sockets and
-- python3.

local function waitfor (cond, secs)
  local start = tide.now()
  while not cond() do
    assert(tide.now() - start < (secs or 10), "timed out waiting")
    tide.sleep(0.005)
  end
end

-- A protocol factory logging its callbacks in log; extra overrides.
local function recorder (log, extra)
  return function ()
    local p = {}
    function p:connection_made (t) self.t = t; log[#log + 1] = "made" end
    function p:datagram_received (d, host, port)
      log[#log + 1] = ("dgram:%s:%s:%d"):format(d, host, port)
    end
    function p:error_received (msg, code) log[#log + 1] = "error:" .. code end
    function p:connection_lost (err) log[#log + 1] = "lost:" .. tostring(err) end
    for k, v in pairs(extra or {}) do p[k] = v end
    return p
  end
end

local function last (log) return log[#log] end

describe("tide.udp.create_datagram_endpoint", function ()
  it("calls connection_made, datagram_received with the sender, connection_lost", async(function ()
    local log = {}
    local t, p = assert(tide.udp.create_datagram_endpoint("127.0.0.1", 0, recorder(log)))
    assert.equal("made", log[1])
    assert.equal(t, p.t)
    assert.matches("^tide.DatagramTransport %(udp%)", tostring(t))
    local _, port = t:get_extra_info("sockname")
    local s <close> = assert(tide.udp.bind("127.0.0.1", 0))
    local _, sport = s:getsockname()
    s:send("one", "127.0.0.1", port)
    s:send("", "127.0.0.1", port)
    waitfor(function () return log[3] end)
    assert.equal("dgram:one:127.0.0.1:" .. sport, log[2])
    assert.equal("dgram::127.0.0.1:" .. sport, log[3])
    t:sendto("back", "127.0.0.1", sport)
    assert.same({ "back", "127.0.0.1", port }, { s:recv() })
    t:close()
    assert.is_true(t:is_closing())
    waitfor(function () return last(log) == "lost:nil" end)
    assert.equal("tide.DatagramTransport (closed)", tostring(t))
  end))

  it("sends to the remote address without one, and gets ECONNREFUSED by error_received", async(function ()
    local peer <close> = assert(tide.udp.bind("127.0.0.1", 0))
    local _, pport = peer:getsockname()
    local log = {}
    local t = assert(tide.udp.create_datagram_endpoint("127.0.0.1", 0, recorder(log),
                     { remote_host = "127.0.0.1", remote_port = pport }))
    assert.same({ "127.0.0.1", pport }, { t:get_extra_info("peername") })
    t:sendto("to the remote")
    assert.equal("to the remote", (peer:recv()))
    t:sendto("named", "127.0.0.1", pport)    -- the remote address: taken
    assert.equal("named", (peer:recv()))
    local ok, err = pcall(t.sendto, t, "elsewhere", "127.0.0.1", pport + 1)
    assert.is_false(ok)                      -- another: raises, as asyncio
    assert.matches("must be nil or the remote address", err, 1, true)
    peer:close()                             -- nobody there now
    t:sendto("again")
    tide.sleep(0.02)
    t:sendto("and again")
    waitfor(function () return last(log) == "error:ECONNREFUSED" end)
    assert.is_false(t:is_closing())          -- not fatal, as in asyncio
    t:abort()
    waitfor(function () return last(log) == "lost:nil" end)
  end))

  it("echoes to a python3 peer", async(function ()
    local t = assert(tide.udp.create_datagram_endpoint("127.0.0.1", 0, function ()
      return {
        connection_made = function (self, tr) self.t = tr end,
        datagram_received = function (self, d, host, port)
          self.t:sendto(d:upper(), host, port)
        end,
      }
    end))
    local _, port = t:get_extra_info("sockname")
    local done = background(("python3 -c '%s' %d"):format(
      "import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM);"
      .. " s.settimeout(5); s.sendto(b\"quack\", (\"127.0.0.1\", int(sys.argv[1])));"
      .. " print(s.recv(100).decode())", port))
    assert.equal("QUACK\n", done())
    t:close()
  end))

  it("reports an error in a callback and aborts the endpoint; waiting is refused", async(function ()
    local log = {}
    local t = assert(tide.udp.create_datagram_endpoint("127.0.0.1", 0, recorder(log, {
      datagram_received = function () tide.sleep(0) end })))
    local _, port = t:get_extra_info("sockname")
    local s <close> = assert(tide.udp.bind("127.0.0.1", 0))
    s:send("x", "127.0.0.1", port)
    waitfor(function () return last(log) and last(log):match("^lost") end)
    assert.matches("must be called inside a task", last(log))
    assert.is_true(t:is_closing())
  end))

  it("fails with nil, message, code, raises on bad arguments", async(function ()
    local a = assert(tide.udp.create_datagram_endpoint("127.0.0.1", 0, recorder({})))
    local _, port = a:get_extra_info("sockname")
    local t, err, code = tide.udp.create_datagram_endpoint("127.0.0.1", port, recorder({}))
    assert.is_nil(t)
    assert.matches("127.0.0.1:" .. port, err, 1, true)
    assert.equal("EADDRINUSE", code)
    assert.has_error(function () tide.udp.create_datagram_endpoint("nowhere", 0, recorder({})) end)
    assert.has_error(function () tide.udp.create_datagram_endpoint("127.0.0.1", 0) end)
    assert.has_error(function ()
      tide.udp.create_datagram_endpoint("127.0.0.1", 0, recorder({}), { remote_host = "x", remote_port = 1 })
    end)
    assert.has_error(function () a:sendto(("x"):rep(70000), "127.0.0.1", 9) end)
    assert.has_error(function () a:sendto("x", "somewhere", 9) end)
    local ok, err = pcall(a.sendto, a, "x")    -- no address, no remote
    assert.is_false(ok)
    assert.matches("address expected", err, 1, true)
    assert.has_error(function ()
      tide.udp.create_datagram_endpoint("127.0.0.1", 0, function () error("nope") end)
    end)
    a:close()
    a:sendto("after close: nothing", "127.0.0.1", 9)
  end))

  it("pauses and resumes writing by the send queue's size", async(function ()
    local log = {}
    local t = assert(tide.udp.create_datagram_endpoint("127.0.0.1", 0, recorder(log, {
      pause_writing = function () log[#log + 1] = "pause" end,
      resume_writing = function () log[#log + 1] = "resume" end })))
    t:set_write_buffer_limits(0)             -- anything queued pauses
    local s <close> = assert(tide.udp.bind("127.0.0.1", 0))
    local _, sport = s:getsockname()
    for _ = 1, 2000 do
      t:sendto(("d"):rep(60000), "127.0.0.1", sport)
      if log[2] == "pause" then break end
    end
    if log[2] == "pause" then                -- the kernel's buffer filled
      waitfor(function () return log[3] == "resume" end)
    end
    t:close()
    waitfor(function () return last(log) == "lost:nil" end)
  end))
end)
