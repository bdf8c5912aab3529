-- pipe_spec.lua: Unix domain sockets (bindings/pipe.c, server.c,
-- runtime/lua/net.lua), against tide itself and python3 as a peer.

local function sockpath ()
  local p = os.tmpname()
  os.remove(p)
  return p .. ".sock"
end

local function exists (path)
  return os.execute("test -S " .. path) == true
end

describe("tide.pipe", function ()
  it("serves and connects over a Unix socket", async(function ()
    local path = sockpath()
    local srv <close> = assert(tide.pipe.serve(path, function (s)
      for line in s:lines() do s:write(line:upper(), "\n") end
    end))
    assert.equal(path, srv:getsockname())
    local c <close> = assert(tide.pipe.connect(path))
    c:write("hello\nworld\n")
    assert.equal("HELLO", c:read_until("\n"):sub(1, -2))
    assert.equal("WORLD\n", c:read_until("\n"))
    assert.equal(path, c:getpeername())
  end))

  it("removes its socket file when the server closes", async(function ()
    local path = sockpath()
    local srv = assert(tide.pipe.listen(path))
    assert.is_true(exists(path))
    srv:close()
    assert.is_false(exists(path))
  end))

  it("replaces a stale socket file nobody listens on", async(function ()
    local path = sockpath()
    local out, code = sh(("env -u LD_PRELOAD python3 -c '%s' %s"):format(
      "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])",
      path))
    assert.equal(0, code, out)
    assert.is_true(exists(path))             -- left behind by python3
    local srv <close> = assert(tide.pipe.listen(path))
    local c <close> = assert(tide.pipe.connect(path))
    local a <close> = assert(srv:accept())
    c:write("x")
    assert.equal("x", a:read())
  end))

  it("replaces a stale socket file for create_server too, never another file",
     async(function ()
    local path = sockpath()
    local out, code = sh(("env -u LD_PRELOAD python3 -c '%s' %s"):format(
      "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])",
      path))
    assert.equal(0, code, out)
    local srv = assert(tide.pipe.create_server(path, function () return {} end))
    srv:close()
    local f = assert(io.open(path, "w"))     -- a plain file at the path
    f:write("keep me")
    f:close()
    local s, err, ecode = tide.pipe.create_server(path, function () return {} end)
    assert.is_nil(s)
    assert.equal("EADDRINUSE", ecode, err)
    s, err, ecode = tide.pipe.listen(path)
    assert.is_nil(s)
    assert.equal("EADDRINUSE", ecode, err)
    f = assert(io.open(path))
    assert.equal("keep me", f:read("a"))
    f:close()
    os.remove(path)
  end))

  it("refuses a path too long for a Unix socket, where the system would cut it",
     async(function ()
    local long = "/tmp/" .. ("x"):rep(120) .. ".sock"
    local calls = {
      function () return tide.pipe.listen(long) end,
      function () return tide.pipe.connect(long) end,
      function () return tide.pipe.create_server(long, function () return {} end) end,
      function () return tide.pipe.create_connection(long, function () return {} end) end,
    }
    for _, call in ipairs(calls) do
      local s, err, code = call()
      assert.is_nil(s)
      assert.equal(long .. ": name too long", err)
      assert.equal("ENAMETOOLONG", code)
    end
    assert.is_nil(io.open(("/tmp/" .. ("x"):rep(120)):sub(1, 107)))
  end))

  it("returns EADDRINUSE when a live server has the path", async(function ()
    local path = sockpath()
    local a <close> = assert(tide.pipe.listen(path))
    local b, err, code = tide.pipe.listen(path)
    assert.is_nil(b)
    assert.equal("EADDRINUSE", code)
    assert.matches(path, err, 1, true)
  end))

  it("returns ENOENT for a path nobody listens on", async(function ()
    local s, err, code = tide.pipe.connect("/nonexistent/dir/x.sock")
    assert.is_nil(s)
    assert.equal("ENOENT", code)
    assert.matches("x.sock", err, 1, true)
  end))

  it("talks to a python3 client", async(function ()
    local path = sockpath()
    local srv <close> = assert(tide.pipe.serve(path, function (s)
      s:write("got ", s:read_until("\n"))
    end))
    local client = background(("python3 -c '%s' %s"):format(
      "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\n" ..
      "s.sendall(b\"ping\\n\")\nprint(s.makefile().readline(), end=\"\")", path))
    local got = client()
    assert.equal("got ping\n", got)
  end))

  it("is cancelled cleanly in accept and read", async(function ()
    local path = sockpath()
    local srv <close> = assert(tide.pipe.listen(path))
    local t = tide.spawn(srv.accept, srv)
    tide.sleep(0.005)
    t:cancel()
    assert.has_error(function () t:await() end)
    local c <close> = assert(tide.pipe.connect(path))
    local a <close> = assert(srv:accept())  -- the server still works
    local r = tide.spawn(a.read, a)
    tide.sleep(0.005)
    r:cancel()
    assert.has_error(function () r:await() end)
    c:write("after")
    assert.equal("after", a:read())          -- and so does the stream
  end))

  it("raises on bad arguments", async(function ()
    assert.has_error(function () tide.pipe.connect(42) end,
      "bad argument #1 to 'connect' (string expected, got number)")
    assert.has_error(function () tide.pipe.serve("/tmp/x.sock") end,
      "bad argument #2 to 'serve' (function expected, got nil)")
  end))
end)
