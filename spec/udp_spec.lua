-- udp_spec.lua: datagram sockets (bindings/udp.c, runtime/lua/net.lua) on
-- 127.0.0.1, against tide itself and python3 as a peer.

-- Two sockets, closed at the end of the test (busted's finally), and ports.
local function pair ()
  local a = assert(tide.udp.bind("127.0.0.1", 0))
  local b = assert(tide.udp.bind("127.0.0.1", 0))
  finally(function () a:close() b:close() end)
  return a, b, select(2, a:getsockname()), select(2, b:getsockname())
end

describe("tide.udp", function ()
  it("sends and receives datagrams with the sender's address", async(function ()
    local a, b, pa, pb = pair()
    assert.is_true(a:send("hello", "127.0.0.1", pb))
    assert.same({ "hello", "127.0.0.1", pa }, { b:recv() })
    assert.is_true(b:send("", "localhost", pa))      -- empty, by name
    assert.same({ "", "127.0.0.1", pb }, { a:recv() })
  end))

  it("keeps datagram boundaries and order", async(function ()
    local a, b, _, pb = pair()
    for i = 1, 50 do a:send(("x"):rep(i), "127.0.0.1", pb) end
    for i = 1, 50 do assert.equal(i, #b:recv()) end
  end))

  it("carries a datagram of 60,000 bytes", async(function ()
    local a, b, _, pb = pair()
    local big = ("0123456789"):rep(6000)
    assert.is_true(a:send(big, "127.0.0.1", pb))
    assert.equal(big, (b:recv()))
  end))

  it("sends to the connected peer without an address", async(function ()
    local a, b, pa, pb = pair()
    assert.is_true(a:connect("127.0.0.1", pb))
    assert.same({ "127.0.0.1", pb }, { a:getpeername() })
    assert.is_true(a:send("to b"))
    assert.same({ "to b", "127.0.0.1", pa }, { b:recv() })
  end))

  it("raises when sending without an address on an unconnected socket", async(function ()
    local a <close> = assert(tide.udp.bind("127.0.0.1", 0))
    assert.has_error(function () a:send("x") end)
    assert.has_error(function () a:send("x", "127.0.0.1", 70000) end,
      "bad argument #3 to 'send' (port out of range)")
  end))

  it("exchanges datagrams with python3", async(function ()
    local a <close> = assert(tide.udp.bind("127.0.0.1", 0))
    local _, pa = a:getsockname()
    local peer = background(("python3 -c '%s' %d"):format(
      "import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n" ..
      "s.settimeout(10)\ns.sendto(b\"ping\",(\"127.0.0.1\",int(sys.argv[1])))\n" ..
      "d,a=s.recvfrom(100)\ns.sendto(d+b\"!\",a)", pa))
    local data, host, port = a:recv()
    assert.equal("ping", data)
    assert.equal("127.0.0.1", host)
    a:send("pong", host, port)
    assert.equal("pong!", (a:recv()))
    assert.equal("", peer())
  end))

  it("wakes a waiting recv with nil, 'socket closed' when closed", async(function ()
    local a = assert(tide.udp.bind("127.0.0.1", 0))
    local r = tide.spawn(a.recv, a)
    tide.sleep(0.005)
    a:close()
    assert.same({ nil, "socket closed", "ECANCELED" }, { r:await() })
    assert.has_error(function () a:recv() end, "UdpSocket:recv: attempt to use a closed socket")
  end))

  it("stays usable after a recv is cancelled, by cancel or timeout", async(function ()
    local a, b, _, pb = pair()
    local r = tide.spawn(b.recv, b)
    tide.sleep(0.005)
    r:cancel()
    assert.has_error(function () r:await() end)
    assert.same({ nil, "timeout" }, { tide.timeout(0.01, b.recv, b) })
    a:send("still here", "127.0.0.1", pb)
    assert.equal("still here", (b:recv()))
  end))

  it("raises when two tasks receive at once", async(function ()
    local a <close> = assert(tide.udp.bind("127.0.0.1", 0))
    local r = tide.spawn(a.recv, a)
    tide.yield()
    assert.has_error(function () a:recv() end,
      "UdpSocket:recv: another task is already receiving on this socket")
    r:cancel()
    pcall(r.await, r)
  end))

  it("returns EADDRINUSE for a port in use, unless reuseaddr", async(function ()
    local a <close> = assert(tide.udp.bind("127.0.0.1", 0, { reuseaddr = true }))
    local _, port = a:getsockname()
    local b, _, code = tide.udp.bind("127.0.0.1", port)
    assert.is_nil(b)
    assert.equal("EADDRINUSE", code)
    local c <close> = assert(tide.udp.bind("127.0.0.1", port, { reuseaddr = true }))
  end))

  it("sets broadcast, ttl and multicast options and joins a group", async(function ()
    local a <close> = assert(tide.udp.bind("0.0.0.0", 0))
    assert.is_true(a:setoption("broadcast", true))
    assert.is_true(a:setoption("ttl", 8))
    assert.is_true(a:setoption("multicast_ttl", 1))
    assert.is_true(a:setoption("multicast_loop", true))
    local ok, _, code = a:join("239.255.0.77")
    if ok then                               -- needs a multicast route
      assert.is_true(a:leave("239.255.0.77"))
    else
      assert.is_string(code)
    end
    local _, _, bad = a:join("not an address")
    assert.equal("EINVAL", bad)
    assert.has_error(function () a:setoption("nosuch", 1) end)
  end))

  it("returns an error for a name that does not resolve", async(function ()
    local a <close> = assert(tide.udp.bind("127.0.0.1", 0))
    local ok, err, code = a:send("x", "no-such-host.invalid", 9)
    assert.is_nil(ok)
    assert.is_string(err)
    assert.is_string(code)
  end))
end)
