-- http_server_spec.lua: tide.http.serve (runtime/lua/http_server.lua,
-- bindings/http_server*.c) against real peers on 127.0.0.1: curl, python3's
-- http.client, tide's own client, raw sockets for what clients will not
-- send (pipelining, malformed requests, slow peers), and wrk for load.
local http = tide.http

-- Serve handler on a free port for the length of fn(port, serving).
local function serving (handler, opts, fn)
  local sv = assert(http.serve("127.0.0.1", 0, handler, opts))
  local _, port = sv:getsockname()
  local ok, err = pcall(fn, port, sv)
  sv:close()
  assert(ok, err)
end

local function url (port, path)
  return ("http://127.0.0.1:%d%s"):format(port, path or "/")
end

local function connect (port)
  return assert(tide.tcp.connect("127.0.0.1", port))
end

-- Read one response from a raw stream: status, head, body (by
-- Content-Length, chunked, or to the end).
local function response (s, head_only)
  local head = s:read_until("\r\n\r\n")
  if not head then return nil end
  local status = tonumber(head:match("^HTTP/1%.1 (%d+)"))
  local len = head:match("\r\n[Cc]ontent%-[Ll]ength: (%d+)")
  if head_only or status == 100 or status == 101 or status == 204 then
    return status, head, ""
  end
  if len then return status, head, s:read_exactly(tonumber(len)) end
  if head:find("chunked", 1, true) then
    local parts = {}
    while true do
      local size = tonumber(s:read_until("\r\n"):match("%x+"), 16)
      if size == 0 then s:read_until("\r\n") break end
      parts[#parts + 1] = s:read_exactly(size)
      s:read_exactly(2)
    end
    return status, head, table.concat(parts)
  end
  return status, head, readall(s)
end

local function hello () return 200, { ["Content-Type"] = "text/plain" }, "Hello, World!" end

describe("tide.http.serve", function ()
  it("answers tide's own client with status, headers and body", async(function ()
    serving(function (req)
      return 201, { ["X-Path"] = req.path, ["X-A"] = req.query.a,
                    ["X-Host"] = req.headers.HOST, ["X-Version"] = req.version,
                    ["X-Method"] = req.method, ["X-Target"] = req.target },
             "made"
    end, nil, function (port)
      local r = assert(http.get(url(port, "/p/q?a=x%20y&b=2")))
      assert.equal(201, r.status)
      assert.equal("made", r:body())
      assert.equal("/p/q", r.headers["x-path"])
      assert.equal("x y", r.headers["x-a"])
      assert.equal("127.0.0.1:" .. port, r.headers["x-host"])
      assert.equal("1.1", r.headers["x-version"])
      assert.equal("GET", r.headers["x-method"])
      assert.equal("/p/q?a=x%20y&b=2", r.headers["x-target"])
      assert.is_truthy(r.headers.date)
    end)
  end))

  it("serves HTTPS with opts.tls (fields or a tide.tls.context) to curl and tide's client", async(function ()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    local C = dofile("spec/tls_certs.lua")(dir)
    local ok, err = pcall(function ()
      for _, t in ipairs { { cert = C.server.cert, key = C.server.key },
                           assert(tide.tls.context { cert = C.server.cert, key = C.server.key }) } do
        serving(hello, { tls = t }, function (port)
          local u = ("https://localhost:%d/"):format(port)
          local out = background(("curl -s --cacert %s %s %s"):format(C.ca, u, u))()
          assert.equal("Hello, World!Hello, World!", out)
          local res = assert(http.get(u, { cafile = C.ca }))
          assert.equal(200, res.status)
          assert.equal("Hello, World!", res:body())
          -- A client that does not trust the certificate: its handshake
          -- fails, and the server goes on.
          local r, msg, code = http.get(u)
          assert.is_nil(r)
          assert.equal("ECERT", code, msg)
          assert.equal("Hello, World!", assert(http.get(u, { cafile = C.ca })):body())
          -- Plain HTTP to the TLS port is dropped, not answered.
          r = http.get(("http://127.0.0.1:%d/"):format(port), { timeout = 5 })
          assert.is_nil(r)
        end)
      end
      assert.has_error(function () http.serve("127.0.0.1", 0, hello, { tls = 5 }) end,
        "bad argument #4 to 'serve' ('tls': tide.tls.context or a table of its fields expected)")
    end)
    os.execute("rm -rf " .. dir)
    assert(ok, err)
  end))

  it("serves HTTPS with opts.tls fields in a program that has not used tide.tls", function ()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    local C = dofile("spec/tls_certs.lua")(dir)
    local script = tmpfile(([[
local s = assert(tide.http.serve("127.0.0.1", 0, function () return 200, {}, "ok" end,
                                 { tls = { cert = %q, key = %q } }))
local _, port = s:getsockname()
local res = assert(tide.http.get(("https://localhost:%%d/"):format(port), { cafile = %q }))
print(res.status, res:body())
print(tide.http.serve("127.0.0.1", 0, print, { tls = { cert = "/nonexistent", key = "/nonexistent" } }))
print(pcall(tide.http.serve, "127.0.0.1", 0, print, { tls = {} }))
s:close()
]]):format(C.server.cert, C.server.key, C.ca))
    local out, code = sh(TIDE .. " " .. script .. " 2>&1")
    os.execute("rm -rf " .. dir)
    assert.equal(0, code, out)
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.equal("200\tok", lines[1], out)
    assert.matches("^nil\t.*/nonexistent.*\tETLSCONFIG$", lines[2])
    assert.matches("^false\t.*'tls': 'cert' and 'key'", lines[3])
  end)

  it("keeps connections alive for curl (HTTP/1.1)", async(function ()
    serving(hello, nil, function (port)
      local out = background(("curl -sv %s %s"):format(url(port), url(port, "/2")))()
      local _, n = out:gsub("Hello, World!", "")
      assert.equal(2, n, out)
      assert.matches("Re%-using existing connection", out)
    end)
  end))

  it("answers pipelined requests in order", async(function ()
    serving(function (req)
      if req.path == "/slow" then tide.sleep(0.05) end
      return 200, nil, req.path
    end, nil, function (port)
      local s = connect(port)
      s:write("GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"
              .. "POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /d HTTP/1.1\r\n\r\n")
      for _, want in ipairs { "/slow", "/b", "/c", "/d" } do
        local status, _, body = response(s)
        assert.equal(200, status)
        assert.equal(want, body)
      end
      s:close()
    end)
  end))

  it("answers 50 pipelined requests in order, a short and a slow one among them", async(function ()
    -- (answers wait while more requests are already read, and go out
    -- together: 16 at most, before any read, write or close)
    serving(function (req)
      if req.path == "/slow" then tide.sleep(0.05) end
      if req.path == "/post" then return 200, nil, "got " .. req:body() end
      return 200, nil, req.path
    end, nil, function (port)
      local s = connect(port)
      local reqs, want = {}, {}
      for i = 1, 50 do
        local path = i == 20 and "/slow" or i == 30 and "/post" or "/" .. i
        want[i] = path == "/post" and "got abc" or path
        reqs[i] = path == "/post"
          and "POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
          or ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n"):format(path)
      end
      reqs[50] = "GET /50 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
      s:write(table.concat(reqs))
      for i = 1, 50 do
        local status, _, body = response(s)
        assert.equal(200, status)
        assert.equal(want[i], body)
      end
      assert.is_nil(s:read())
      s:close()
    end)
  end))

  it("sends 100 Continue before reading a body the client waits to send", async(function ()
    serving(function (req) return 200, nil, "got " .. req:body() end, nil, function (port)
      local s = connect(port)
      s:write("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
      assert.equal(100, (response(s)))
      s:write("data")
      local status, _, body = response(s)
      assert.equal(200, status)
      assert.equal("got data", body)
      s:close()
      local out = background(("curl -s -H 'Expect: 100-continue' --data-binary hello %s")
                             :format(url(port)))()
      assert.equal("got hello", out)
    end)
  end))

  it("answers HEAD with the length and no body", async(function ()
    serving(hello, nil, function (port)
      local s = connect(port)
      s:write("HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
      local status, head = response(s, true)
      assert.equal(200, status)
      assert.matches("Content%-Length: 13", head)
      local _, _, body = response(s)
      assert.equal("Hello, World!", body)
      s:close()
    end)
  end))

  it("takes chunked uploads from curl and streams chunked responses to python3", async(function ()
    serving(function (req, res)
      if req.method == "POST" then
        local n = 0
        while true do
          local d = req:read(1000)
          if not d then break end
          n = n + #d
        end
        return 200, nil, tostring(n)
      end
      for i = 1, 3 do res:write("part" .. i .. ";") end
      res:finish()
    end, nil, function (port)
      local file = tmpfile(("x"):rep(300000))
      local out = background(("curl -s -H 'Transfer-Encoding: chunked' --data-binary @%s %s")
                             :format(file, url(port)))()
      os.remove(file)
      assert.equal("300000", out)
      out = background(("python3 -c 'import http.client as h; c = h.HTTPConnection(\"127.0.0.1\", %d); "
        .. "c.request(\"GET\", \"/\"); r = c.getresponse(); print(r.status, r.getheader(\"Transfer-Encoding\"), r.read().decode()); "
        .. "c.request(\"GET\", \"/\"); print(c.getresponse().read().decode())'"):format(port))()
      assert.equal("200 chunked part1;part2;part3;\npart1;part2;part3;\n", out)
    end)
  end))

  it("streams a large body read slowly with bounded memory", async(function ()
    local got = 0
    serving(function (req)
      while true do
        local d = req:read()
        if not d then break end
        got = got + #d
        if got % (4 * 1024 * 1024) < #d then tide.sleep(0.01) end
      end
      return 200, nil, tostring(got)
    end, { max_body = math.huge }, function (port)
      collectgarbage()
      local before = collectgarbage("count")
      local s = connect(port)
      local total = 64 * 1024 * 1024
      s:write(("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"):format(total))
      local block = ("z"):rep(256 * 1024)
      local peak = 0
      for _ = 1, total // #block do
        assert(s:write(block))
        peak = math.max(peak, collectgarbage("count") - before)
      end
      local _, _, body = response(s)
      assert.equal(tostring(total), body)
      assert.is_true(peak < 48 * 1024, "peak Lua memory " .. peak .. " KiB")
      s:close()
    end)
  end))

  it("closes a connection whose head is too slow, and an idle one", async(function ()
    serving(hello, { header_timeout = 0.2, idle_timeout = 0.3 }, function (port)
      local s = connect(port)
      local t = tide.now()
      s:write("GET / HTTP/1.1\r\n")
      assert.is_nil(s:read())
      local d = tide.now() - t
      assert.is_true(d >= 0.15 and d < 1.5, d)
      s = connect(port)
      s:write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
      assert.equal(200, (response(s)))
      t = tide.now()
      assert.is_nil(s:read())
      d = tide.now() - t
      assert.is_true(d >= 0.25 and d < 1.5, d)
    end)
  end))

  it("gives the handler a timeout when the body stops coming", async(function ()
    local seen
    serving(function (req)
      seen = { req:body() }
      return 200, nil, "late"
    end, { body_timeout = 0.2 }, function (port)
      local s = connect(port)
      s:write("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
      assert.is_nil(response(s))
      assert.same({ nil, "request body timed out", "ETIMEDOUT" }, seen)
    end)
  end))

  it("gives the handler a timeout when the client stops reading the response", async(function ()
    local seen, ended = nil, tide.Event()
    serving(function (_, res)
      local chunk = ("x"):rep(64 * 1024)
      local t0 = tide.now()
      for _ = 1, 100000 do
        local ok, err, code = res:write(chunk)
        if not ok then
          seen = { err, code, tide.now() - t0 }
          break
        end
      end
      ended:set()
    end, { write_timeout = 0.3 }, function (port)
      local s = connect(port)
      s:write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
      assert.is_truthy(tide.timeout(10, ended.wait, ended))
      assert.equal("response write timed out", seen[1])
      assert.equal("ETIMEDOUT", seen[2])
      assert.is_true(seen[3] >= 0.3, tostring(seen[3]))
      s:close()
    end)
  end))

  it("answers 400 to malformed requests, 431 to huge heads, 413 to huge bodies", async(function ()
    serving(function (req) return 200, nil, req:body() end,
            { max_header = 4096, max_body = 1000 }, function (port)
      local s = connect(port)
      s:write("GET / HTTP/1.1\r\nHost x\r\n\r\n")
      assert.equal(400, (response(s)))
      assert.is_nil(s:read())
      s = connect(port)
      s:write("BLAH\r\n\r\n")
      assert.equal(400, (response(s)))
      s = connect(port)
      s:write("GET / HTTP/1.1\r\nX-Big: " .. ("a"):rep(5000) .. "\r\n\r\n")
      assert.equal(431, (response(s)))
      s = connect(port)
      s:write("POST / HTTP/1.1\r\nContent-Length: 1001\r\n\r\n")
      assert.equal(413, (response(s)))
      s = connect(port)
      s:write("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n"
              .. ("b"):rep(1001) .. "\r\n0\r\n\r\n")
      assert.equal(413, (response(s)))
      s = connect(port)
      s:write("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
      assert.equal(400, (response(s)))
    end)
  end))

  it("serves others while slowloris clients trickle their heads", async(function ()
    serving(hello, { header_timeout = 0.5 }, function (port)
      local slow = {}
      for i = 1, 50 do
        slow[i] = tide.spawn(function ()
          local s = connect(port)
          local line = "GET / HTTP/1.1\r\nX-A: b\r\n"
          for j = 1, 1000 do
            if not s:write(line:sub(j % #line + 1, j % #line + 1)) then break end
            tide.sleep(0.05)
            if j > 100 then return "not closed" end
          end
          return "closed"
        end)
      end
      for _ = 1, 5 do
        local r = assert(http.get(url(port)))
        assert.equal("Hello, World!", r:body())
      end
      for i = 1, 50 do assert.equal("closed", slow[i]:await()) end
    end)
  end))

  it("serves 1,000 concurrent clients", async(function ()
    serving(function (req)
      tide.sleep(0.01)
      return 200, nil, req.path
    end, nil, function (port)
      local tasks = {}
      for i = 1, 1000 do
        tasks[i] = tide.spawn(function ()
          local s = connect(port)
          s:write("GET /" .. i .. " HTTP/1.1\r\nHost: x\r\n\r\n")
          local _, _, body = response(s)
          s:close()
          return body
        end)
      end
      for i = 1, 1000 do assert.equal("/" .. i, tasks[i]:await()) end
    end)
  end))

  it("answers 500 to a handler that errors, and reports the error", function ()
    local code = [[
      local sv = assert(tide.http.serve("127.0.0.1", 0, function () error("boom") end))
      local _, port = sv:getsockname()
      local r = assert(tide.http.get(("http://127.0.0.1:%d/"):format(port)))
      print(r.status)
      sv:close()
    ]]
    local out, status = sh(TIDE .. " -e '" .. code .. "'")
    assert.equal(0, status, out)
    assert.matches("500", out)
    assert.matches("tide.http.serve: error in a request handler: .*boom", out)
    assert.matches("stack traceback", out)
    code = [[
      local sv = assert(tide.http.serve("127.0.0.1", 0, function ()
        error(setmetatable({}, { __tostring = function () error("no") end }))
      end))
      local _, port = sv:getsockname()
      local r = assert(tide.http.get(("http://127.0.0.1:%d/"):format(port)))
      print(r.status)
      sv:close()
    ]]
    out, status = sh(TIDE .. " -e '" .. code .. "'")
    assert.equal(0, status, out)
    assert.matches("500", out)
    assert.matches("error in a request handler: %(error object is a table value%)", out)
  end)

  it("finishes a response the handler did not finish", async(function ()
    serving(function (_, res) res:status(204) end, nil, function (port)
      local r = assert(http.get(url(port)))
      assert.equal(204, r.status)
    end)
  end))

  it("tells the handler when the client leaves mid-body", async(function ()
    local seen = tide.Queue()
    serving(function (req)
      seen:put({ req:body() })
    end, nil, function (port)
      local s = connect(port)
      s:write("POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc")
      tide.sleep(0.05)
      s:close()
      local r = seen:get()
      assert.is_nil(r[1])
      assert.equal("EOF", r[3])
    end)
  end))

  it("closes gracefully: idle connections at once, busy ones after their response", async(function ()
    local sv = assert(http.serve("127.0.0.1", 0, function ()
      tide.sleep(0.2)
      return 200, nil, "done"
    end))
    local _, port = sv:getsockname()
    local idle = connect(port)
    idle:write("GET / HTTP/1.1\r\n\r\n")
    local busy = connect(port)
    assert.equal(200, (response(idle)))
    busy:write("GET / HTTP/1.1\r\n\r\n")
    tide.sleep(0.05)
    sv:close(2)
    assert.is_nil(idle:read())
    local status, head, body = response(busy)
    assert.equal(200, status)
    assert.equal("done", body)
    assert.matches("Connection: close", head)
    assert.is_nil(tide.tcp.connect("127.0.0.1", port))
  end))

  it("cancels the handlers still running when the grace ends", async(function ()
    local cancelled = false
    local sv = assert(http.serve("127.0.0.1", 0, function ()
      local ok, e = pcall(tide.sleep, 10)
      cancelled = not ok and tide.iscancelled(e)
      error(e, 0)
    end))
    local _, port = sv:getsockname()
    local s = connect(port)
    s:write("GET / HTTP/1.1\r\n\r\n")
    tide.sleep(0.05)
    local t = tide.now()
    sv:close(0.1)
    assert.is_true(tide.now() - t < 1)
    assert.is_true(cancelled)
    assert.is_nil(s:read())
  end))

  it("hands the raw stream to the handler after a 101", async(function ()
    serving(function (req, res)
      assert.equal("echo", req.headers.upgrade)
      res:header("Upgrade", "echo")
      local s, rest = res:upgrade()
      s:write("[" .. rest)
      s:write(s:read_exactly(3) .. "]")
    end, nil, function (port)
      local s = connect(port)
      s:write("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nhi")
      local status, head = response(s)
      assert.equal(101, status)
      assert.matches("Upgrade: echo", head)
      s:write("xyz")
      assert.equal("[hixyz]", readall(s))
    end)
  end))

  it("limits the connections it serves at once", async(function ()
    serving(function () tide.sleep(0.1) return 200, nil, "x" end,
            { max_connections = 2 }, function (port)
      local t = tide.now()
      local tasks = {}
      for i = 1, 6 do
        tasks[i] = tide.spawn(function ()
          local s = connect(port)
          s:write("GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
          return (response(s))
        end)
      end
      for i = 1, 6 do assert.equal(200, tasks[i]:await()) end
      assert.is_true(tide.now() - t >= 0.28)
    end)
  end))

  it("shares a port with opts.reuseport", async(function ()
    local a = assert(http.serve("127.0.0.1", 0, hello, { reuseport = true }))
    local _, port = a:getsockname()
    local b = assert(http.serve("127.0.0.1", port, hello, { reuseport = true }))
    a:close()
    local r = assert(http.get(url(port)))
    assert.equal("Hello, World!", r:body())
    b:close()
  end))

  it("raises on wrong use", async(function ()
    assert.has_error(function () http.serve("127.0.0.1", 0, 3) end)
    assert.has_error(function () http.serve("127.0.0.1", 0, hello, { max_body = -1 }) end)
    serving(function (_, res)
      res:write("x")
      local ok, e = pcall(res.status, res, 404)
      return nil, nil, tostring(ok) .. (ok and "" or tostring(e):match("has started") or e)
    end, nil, function (port)
      assert.equal("x", assert(http.get(url(port))):body())
    end)
  end))

  it("raises on a write past the Content-Length, sending none of it", async(function ()
    local errs = tide.Queue()
    serving(function (req, res)
      res:header("Content-Length", "3")
      if req.path == "/finish" then
        res:write("ab")
        errs:put(select(2, pcall(res.finish, res, "cd")))
        return res:finish("c")
      end
      errs:put(select(2, pcall(function () res:write("hello") end)))
      res:write("abc")
    end, nil, function (port)
      -- curl reuses the connection: the extra bytes would break the second
      local out = background(("curl -sv %s %s"):format(url(port), url(port, "/finish")))()
      assert.matches("intact\nabc%*.*intact\nabc$", out)
      assert.matches("Re%-using existing connection", out)
      assert.matches("http_server_spec%.lua:%d+: http%.ServerResponse:write: more than the 3 bytes of Content%-Length",
                     errs:get())
      assert.equal("http.ServerResponse:finish: more than the 3 bytes of Content-Length", errs:get())
    end)
  end))

  it("closes the connection after a body short of its Content-Length, and reports it", async(function ()
    local seen = {}
    local stderr = io.stderr
    io.stderr = { write = function (_, ...) seen[#seen + 1] = table.concat({ ... }) end }
    local ok, err = pcall(serving, function (req, res)
      res:header("Content-Length", "5")
      res:write("ab")
      if req.path == "/finish" then res:finish("c") end
    end, nil, function (port)
      for _, path in ipairs({ "/", "/finish" }) do
        local out = background(("python3 -c 'import http.client as h; c = h.HTTPConnection(\"127.0.0.1\", %d, timeout=5); "
          .. "c.request(\"GET\", \"%s\"); r = c.getresponse()\ntry: print(r.read())\nexcept h.IncompleteRead as e: print(\"short\", e.partial)'")
          :format(port, path))()
        assert.matches(path == "/" and "short b'ab'" or "short b'abc'", out, 1, true)
      end
    end)
    io.stderr = stderr
    assert(ok, err)
    assert.equal(2, #seen)
    assert.matches("^tide.http.serve: error in a request handler: the handler returned after 2 of the 5 bytes of Content%-Length", seen[1])
    assert.matches("http_server_spec%.lua:%d+: http%.ServerResponse:finish: finished after 3 of the 5 bytes", seen[2])
  end))

  it("reports a handler that returns short of its Content-Length with a message, not a '?:' location", async(function ()
    local seen = {}
    local stderr = io.stderr
    io.stderr = { write = function (_, ...) seen[#seen + 1] = table.concat({ ... }) end }
    local ok, err = pcall(serving, function (req, res)
      res:header("Content-Length", "4")
      if req.path == "/some" then res:write("xy") end
    end, nil, function (port)
      for _, path in ipairs({ "/none", "/some" }) do
        local out = background(("curl -s -o /dev/null -w '%%{http_code} %%{size_download}' %s; echo \" $?\"")
                               :format(url(port, path)))()
        assert.matches(path == "/none" and "200 0 18" or "200 2 18", out, 1, true)
      end
    end)
    io.stderr = stderr
    assert(ok, err)
    assert.equal(2, #seen, table.concat(seen))
    assert.equal("tide.http.serve: error in a request handler: the handler returned after 0 of the 4 bytes of Content-Length\n", seen[1])
    assert.equal("tide.http.serve: error in a request handler: the handler returned after 2 of the 4 bytes of Content-Length\n", seen[2])
  end))

  it("names a handler's error value that is not a string as lua.c does", async(function ()
    local seen = {}
    local stderr = io.stderr
    io.stderr = { write = function (_, ...) seen[#seen + 1] = table.concat({ ... }) end }
    local ok, err = pcall(serving, function (req)
      if req.path == "/table" then error({ code = 1 }) end
      if req.path == "/hidden" then error(setmetatable({}, { __metatable = false })) end
      if req.path == "/tostring" then
        error(setmetatable({}, { __tostring = function () return "custom object" end }))
      end
      if req.path == "/number" then error(42) end
      if req.path == "/bool" then error(true) end
      error(nil)
    end, nil, function (port)
      for _, path in ipairs({ "/table", "/hidden", "/tostring", "/number", "/bool", "/nil" }) do
        local r = assert(http.get(url(port, path)))
        assert.equal(500, r.status)
      end
    end)
    io.stderr = stderr
    assert(ok, err)
    assert.equal(6, #seen, table.concat(seen))
    local prefix = "^tide%.http%.serve: error in a request handler: "
    assert.matches(prefix .. "%(error object is a table value%)\nstack traceback:", seen[1])
    assert.matches(prefix .. "%(error object is a table value%)\nstack traceback:", seen[2])
    assert.matches(prefix .. "custom object\nstack traceback:", seen[3])
    assert.matches(prefix .. "42\nstack traceback:", seen[4])
    assert.matches(prefix .. "%(error object is a boolean value%)\nstack traceback:", seen[5])
    assert.matches(prefix .. "%(error object is a nil value%)\nstack traceback:", seen[6])
    for _, line in ipairs(seen) do assert.is_nil(line:match("table: 0x"), line) end
  end))

  it("takes an absolute-form target: the path and query from it, its authority as the Host", async(function ()
    serving(function (req)
      local q = {}
      for k, v in pairs(req.query) do q[#q + 1] = k .. "=" .. v end
      table.sort(q)
      return 200, nil, ("%s|%s|%s|%s"):format(req.target, req.path, table.concat(q, "&"),
                                               req.headers.host)
    end, nil, function (port)
      -- python3's http.client sends the target as given, with its own Host
      local out = background(("python3 -c 'import http.client as h; c = h.HTTPConnection(\"127.0.0.1\", %d, timeout=5)\n"
        .. "for t in (\"http://example.org:8080/path?q=1&r=a%%20b\", \"HTTP://example.org\", \"http://user@example.org/p\"):\n"
        .. " c.request(\"GET\", t, headers={\"Host\": \"other\"}); print(c.getresponse().read().decode())'")
        :format(port))()
      assert.matches("http://example.org:8080/path?q=1&r=a%20b|/path|q=1&r=a b|example.org:8080\n", out, 1, true)
      assert.matches("HTTP://example.org|/|" .. "|example.org\n", out, 1, true)
      assert.matches("http://user@example.org/p|/p||example.org\n", out, 1, true)
      -- and curl's --request-target
      out = background(("curl -s --request-target 'http://example.org/a/b?x=y' %s"):format(url(port)))()
      assert.equal("http://example.org/a/b?x=y|/a/b|x=y|example.org", out)
      -- OPTIONS with an absolute target and no path is OPTIONS * (RFC 9112 3.2.4)
      local s = connect(port)
      assert(s:write("OPTIONS http://example.org:81 HTTP/1.1\r\nHost: other\r\n\r\n"))
      local status, _, body = response(s)
      assert.equal(200, status)
      assert.equal("http://example.org:81|*||example.org:81", body)
      -- an origin-form target keeps its Host
      assert(s:write("GET /o?k=v HTTP/1.1\r\nHost: other\r\n\r\n"))
      status, _, body = response(s)
      assert.equal("/o?k=v|/o|k=v|other", body)
      s:close()
    end)
  end))

  it("drops a fragment from the path and the query", async(function ()
    serving(function (req)
      local q = {}
      for k, v in pairs(req.query) do q[#q + 1] = k .. "=" .. v end
      table.sort(q)
      return 200, nil, ("%s|%s|%s"):format(req.target, req.path, table.concat(q, "&"))
    end, nil, function (port)
      local out = background(("python3 -c 'import http.client as h; c = h.HTTPConnection(\"127.0.0.1\", %d, timeout=5)\n"
        .. "for t in (\"/x?a=1#frag\", \"/y#f?b=2\", \"http://h/z?c=3#f\"):\n"
        .. " c.request(\"GET\", t); print(c.getresponse().read().decode())'")
        :format(port))()
      assert.matches("/x?a=1#frag|/x|a=1\n", out, 1, true)
      assert.matches("/y#f?b=2|/y|\n", out, 1, true)
      assert.matches("http://h/z?c=3#f|/z|c=3\n", out, 1, true)
    end)
  end))

  it("checks what the handler returns", async(function ()
    local seen = {}
    local stderr = io.stderr
    io.stderr = { write = function (_, ...) seen[#seen + 1] = table.concat({ ... }) end }
    local ok, err = pcall(serving, function (req, res)
      if req.path == "/table" then return 200, nil, { "a", "b" } end
      if req.path == "/status" then return 700, nil, "x" end
      if req.path == "/nostatus" then return nil, nil, "body" end
      if req.path == "/set" then res:status(201) return nil, nil, "made" end
      if req.path == "/late" then res:write("x") return 404 end
      return res:finish("done")
    end, nil, function (port)
      local r = assert(http.get(url(port, "/table")))
      assert.equal(500, r.status)
      r = assert(http.get(url(port, "/status")))
      assert.equal(500, r.status)
      r = assert(http.get(url(port, "/nostatus")))
      assert.same({ 200, "body" }, { r.status, r:body() })
      r = assert(http.get(url(port, "/set")))
      assert.same({ 201, "made" }, { r.status, r:body() })
      r = assert(http.get(url(port, "/late")))
      assert.same({ 200, "x" }, { r.status, r:body() })
      r = assert(http.get(url(port, "/")))
      assert.same({ 200, "done" }, { r.status, r:body() })
    end)
    io.stderr = stderr
    assert(ok, err)
    assert.equal(3, #seen, table.concat(seen))
    assert.matches("error in a request handler: bad response returned by the handler: body of type table", seen[1], 1, true)
    assert.matches("error in a request handler: bad response returned by the handler: status 700", seen[2], 1, true)
    assert.matches("error in a request handler: the handler returned a status (404) after its response had started", seen[3], 1, true)
  end))

  it("raises on unknown options", async(function ()
    local ok, e = pcall(function () http.serve("127.0.0.1", 0, hello, { max_bdy = 1 }) end)
    assert.is_false(ok)
    assert.matches("http_server_spec%.lua:%d+: bad argument #4 to 'serve' %('max_bdy': unknown option%)", e)
  end))

  it("refuses a CR or LF in a header at res:header", async(function ()
    local errs = tide.Queue()
    serving(function (_, res)
      errs:put(select(2, pcall(function () res:header("X-A", "a\r\nX-B: b") end)))
      errs:put(select(2, pcall(function () res:header("X-A", { "a", "b\n" }) end)))
      errs:put(select(2, pcall(function () res:header("X\r\nB", "a") end)))
      return 200, nil, "ok"
    end, nil, function (port)
      local r = assert(http.get(url(port)))
      assert.same({ 200, "ok" }, { r.status, r:body() })
      assert.matches(":%d+: bad argument #2 to 'header' %(CR or LF in the value%)$", errs:get())
      assert.matches(":%d+: bad argument #2 to 'header' %(CR or LF in the value%)$", errs:get())
      assert.matches(":%d+: bad argument #1 to 'header' %(CR or LF in the name%)$", errs:get())
    end)
  end))

  it("says keep-alive to an HTTP/1.0 client that asks for it", async(function ()
    serving(hello, nil, function (port)
      local s = connect(port)
      for _ = 1, 2 do
        assert(s:write("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"))
        local status, head, body = response(s)
        assert.equal(200, status)
        assert.matches("\r\nConnection: keep%-alive\r\n", head)
        assert.equal("Hello, World!", body)
      end
      s:close()
      local out = background(("curl -sv --http1.0 -H 'Connection: keep-alive' %s %s")
                             :format(url(port), url(port)))()
      assert.matches("Re%-using existing connection", out)
      s = connect(port)
      assert(s:write("GET / HTTP/1.0\r\n\r\n"))
      local status, head = response(s)
      assert.equal(200, status)
      assert.is_nil(head:lower():match("keep%-alive"))
      s:close()
    end)
  end))

  it("stands wrk's load with no errors", async(function ()
    serving(hello, nil, function (port)
      local out = background(("wrk -t1 -c50 -d1s %s"):format(url(port)))()
      local n = tonumber(out:match("(%d+) requests in"))
      assert.is_true(n and n > 1000, out)
      assert.is_nil(out:match("Non%-2xx"), out)
      assert.is_nil(out:match("Socket errors"), out)
    end)
  end))
end)
