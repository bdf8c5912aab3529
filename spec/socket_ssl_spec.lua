-- socket_ssl_spec.lua: TLS on tide.socket: OpenResty's sslhandshake and the
-- keep-alive pool with TLS, and tide.ssl (LuaSec's wrap, dohandshake,
-- newcontext, getpeercertificate) against tide.tls peers, with the test
-- certificates of spec/tls_certs.lua.
local socket = require "tide.socket"
local ssl = require "tide.ssl"

local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p " .. dir))
local C = dofile("spec/tls_certs.lua")(dir)

teardown(function () os.execute("rm -rf " .. dir) end)

-- A tide TLS line-echo server for fn(port); counts its connections.
local function tls_echo (fn)
  local n = 0
  local sv = assert(tide.tls.serve("127.0.0.1", 0, function (s)
    n = n + 1
    while true do
      local l = s:read_until("\n")
      if not l then return end
      s:write(l)
    end
  end, { cert = C.server.cert, key = C.server.key }))
  local _, port = sv:getsockname()
  local ok, err = pcall(fn, port, function () return n end)
  sv:close()
  assert(ok, err)
end

describe("tcp:sslhandshake (OpenResty)", function ()
  it("runs TLS on a connected socket", async(function ()
    tls_echo(function (port)
      local c = socket.tcp()
      assert(c:connect("127.0.0.1", port))
      assert.is_true(c:sslhandshake(nil, "localhost", false))
      c:send("over tls\n")
      assert.equal("over tls", c:receive())
      c:close()
    end)
  end))

  it("fails verification against an untrusted certificate", async(function ()
    tls_echo(function (port)
      local c = socket.tcp()
      assert(c:connect("127.0.0.1", port))
      local ok, err = c:sslhandshake(nil, "localhost", true)
      assert.is_nil(ok)
      assert.matches("certificate verify failed", err)
      assert.same({ nil, "closed", "" }, { c:receive() })
      c:close()
    end)
  end))

  it("pools TLS connections and reuses one with the same settings", async(function ()
    tls_echo(function (port, count)
      local c = socket.tcp()
      assert(c:connect("127.0.0.1", port, { pool = "tls" }))
      assert(c:sslhandshake(nil, "localhost", false))
      assert(c:setkeepalive())
      local d = socket.tcp()
      assert(d:connect("127.0.0.1", port, { pool = "tls" }))
      assert.equal(1, d:getreusedtimes())
      assert.is_true(d:sslhandshake(nil, "localhost", false))
      d:send("again\n")
      assert.equal("again", d:receive())
      assert.equal(1, count())
      d:close()
    end)
  end))
end)

describe("tide.ssl (LuaSec)", function ()
  it("wraps a client socket, verifies the peer and gives its certificate", async(function ()
    tls_echo(function (port)
      local c = assert(socket.connect("127.0.0.1", port))
      local conn = assert(ssl.wrap(c, { mode = "client", protocol = "any",
                                        verify = "peer", cafile = C.ca }))
      conn:sni("localhost")
      assert.is_true(conn:dohandshake())
      local cert = conn:getpeercertificate()
      local cn
      for _, f in ipairs(cert:subject()) do
        if f.name == "commonName" and f.oid == "2.5.4.3" then cn = f.value end
      end
      assert.equal("localhost", cn)
      assert.truthy(cert:notafter():match("GMT$"))
      assert.is_true((conn:getpeerverification()))
      assert.truthy(conn:info().protocol:match("^TLSv1"))
      conn:send("luasec\n")
      assert.equal("luasec", conn:receive())
      conn:close()
    end)
  end))

  it("returns false and LuaSec's message for a failed handshake", async(function ()
    tls_echo(function (port)
      local c = assert(socket.connect("127.0.0.1", port))
      local conn = assert(ssl.wrap(c, { mode = "client", verify = "peer" }))
      conn:sni("localhost")
      assert.same({ false, "certificate verify failed" }, { conn:dohandshake() })
    end)
  end))

  it("verifies the chain only without sni(), and closes the connection on failure", async(function ()
    local closed = tide.Queue()
    local sv = assert(tide.tls.serve("127.0.0.1", 0, function (s)
      local l = s:read_until("\n")
      if l then s:write(l) end
      s:read()
      closed:put(true)
    end, { cert = C.server.cert, key = C.server.key }))
    local _, port = sv:getsockname()
    local ok, err = pcall(function ()
      local c = assert(socket.connect("127.0.0.1", port))
      local conn = assert(ssl.wrap(c, { mode = "client", verify = "peer", cafile = C.ca }))
      assert.is_true(conn:dohandshake())
      assert.is_true(conn:getpeerverification())
      conn:send("chain\n")
      assert.equal("chain", conn:receive())
      assert.is_nil(conn:close())                   -- LuaSec's returns nothing
      assert.is_true(closed:get())
      c = assert(socket.connect("127.0.0.1", port))
      conn = assert(ssl.wrap(c, { mode = "client", verify = "peer" }))
      assert.same({ false, "certificate verify failed" }, { conn:dohandshake() })
      assert.is_true(tide.timeout(5, closed.get, closed))   -- not left open
      -- OpenResty's sslhandshake(nil, nil, true): the chain only too
      c = socket.tcp()
      assert(c:connect("127.0.0.1", port))
      local r = { c:sslhandshake(nil, nil, true) }
      assert.is_nil(r[1])
      assert.matches("^certificate verify failed", r[2])
      assert.is_true(tide.timeout(5, closed.get, closed))
    end)
    sv:close()
    assert(ok, err)
  end))

  it("gives LuaSec's getpeerverification, certificate fields, info and wantread", async(function ()
    tls_echo(function (port)
      local c = assert(socket.connect("127.0.0.1", port))
      local conn = assert(ssl.wrap(c, { mode = "client", verify = "none" }))
      conn:sni("localhost")
      assert.is_true(conn:dohandshake())
      local v, why = conn:getpeerverification()
      assert.is_false(v)
      assert.equal("string", type(why))
      local cert = conn:getpeercertificate()
      local san = cert:extensions()["2.5.29.17"]
      assert.equal("X509v3 Subject Alternative Name", san.name)
      assert.same({ "localhost" }, san.dNSName)
      assert.is_nil(conn:info().compression)
      conn:settimeout(0.05)
      assert.same({ nil, "wantread", "" }, { conn:receive(10) })
      conn:close()
    end)
  end))

  it("refuses an unknown protocol and raises without a mode, as LuaSec", function ()
    assert.same({ nil, "invalid protocol (sslv3)" },
                { ssl.newcontext { mode = "client", protocol = "sslv3" } })
    assert.has_error(function () ssl.newcontext { protocol = "any" } end)
  end)

  it("cancels a handshake waiting for a silent peer", async(function ()
    local sv = assert(tide.tcp.serve("127.0.0.1", 0, function (s) tide.sleep(5) end))
    local _, port = sv:getsockname()
    local c = assert(socket.connect("127.0.0.1", port))
    local conn = assert(ssl.wrap(c, { mode = "client" }))
    local t = tide.spawn(function () return conn:dohandshake() end)
    tide.sleep(0.05)
    t:cancel()
    assert.is_true(tide.iscancelled(select(2, pcall(t.await, t))))
    conn:close()
    sv:close()
  end))

  it("serves TLS on an accepted socket with a context", async(function ()
    local srv = assert(socket.bind("127.0.0.1", 0))
    local _, port = srv:getsockname()
    local ctx = assert(ssl.newcontext { mode = "server", protocol = "any",
      certificate = C.server.cert, key = C.server.key })
    local server = tide.spawn(function ()
      local a = assert(srv:accept())
      local conn = assert(ssl.wrap(a, ctx))
      assert(conn:dohandshake())
      local l = conn:receive()
      conn:send(l:upper() .. "\n")
      conn:close()
    end)
    local s = assert(tide.tls.connect("127.0.0.1", port,
                                      { servername = "localhost", cafile = C.ca }))
    s:write("shout\n")
    assert.equal("SHOUT\n", s:read_until("\n"))
    s:close()
    server:await()
    srv:close()
  end))

  it("gives nil and a message for a context that will not load", function ()
    local ctx, err = ssl.newcontext { mode = "server", certificate = dir .. "/none.pem",
                                      key = dir .. "/none.key" }
    assert.is_nil(ctx)
    assert.equal("error loading certificate (No such file or directory)", err)
  end)
end)
