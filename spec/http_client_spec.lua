-- http_client_spec.lua: tide.http, the client (bindings/http_client*.c,
-- runtime/lua/http.lua), against real peers on 127.0.0.1: python3
-- (spec/http_client_peer.py: an origin server, a proxy, a listener that
-- never accepts), nginx (TLS with a CA made here, HTTP/2, many connections)
-- and curl as a cross-check.
local http = tide.http

local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p " .. dir))

local peer = {}

local function url (path)
  return ("http://127.0.0.1:%d%s"):format(peer.origin, path)
end

-- A field of the JSON object the origin's /echo answers with.
local function echoed (body, name)
  return body:match('"' .. name:gsub("%-", "%%-") .. '": "(.-)"')
end

local function waitfile (path)
  for _ = 1, 200 do
    local f = io.open(path)
    if f then
      local s = f:read("a")
      f:close()
      return s
    end
    os.execute("sleep 0.05")
  end
  error("no " .. path .. " after 10 s")
end

-- The resident set of this process, in KiB.
local function rss ()
  local f = assert(io.open("/proc/self/status"))
  local kb = f:read("a"):match("VmRSS:%s*(%d+)")
  f:close()
  return tonumber(kb)
end

setup(function ()
  local ports = dir .. "/ports"
  os.execute(("env -u LD_PRELOAD timeout 600 python3 spec/http_client_peer.py %s "
              .. ">%s/peer.log 2>&1 &"):format(ports, dir))
  local o, p, h, pid = waitfile(ports):match("(%d+) (%d+) (%d+) (%d+)")
  peer.origin, peer.proxy, peer.hole, peer.pid =
    tonumber(o), tonumber(p), tonumber(h), pid
end)

teardown(function ()
  if peer.pid then os.execute("kill " .. peer.pid) end
  os.execute("rm -rf " .. dir)
end)

describe("tide.http.get", function ()
  it("returns the status, reason, headers, version, url and body", async(function ()
    local res = assert(http.get(url("/hello")))
    assert.equal(200, res.status)
    assert.equal("OK", res.reason)
    assert.equal("1.1", res.version)
    assert.equal(url("/hello"), res.url)
    assert.equal("text/plain", res.headers["content-type"])
    assert.equal("text/plain", res.headers["Content-Type"])
    assert.equal("5", res.headers["CONTENT-LENGTH"])
    assert.equal("hello", res:body())
    assert.equal("tide.http.Response (200 OK)", tostring(res))
  end))

  it("keeps repeated header fields: the first by name, all with getall", async(function ()
    local res = assert(http.get(url("/headers")))
    assert.equal("a=1", res.headers["set-cookie"])
    assert.same({ "a=1", "b=2" }, res:getall("Set-Cookie"))
    assert.same({ "one", "two" }, res:getall("x-multi"))
    assert.same({}, res:getall("x-none"))
  end))

  it("gives an HTTP error status as a response, not an error", async(function ()
    local res = assert(http.get(url("/status?code=503")))
    assert.equal(503, res.status)
    assert.equal("Service Unavailable", res.reason)
    assert.equal("status 503", res:body())
    res = assert(http.get(url("/nowhere")))
    assert.equal(404, res.status)
  end))

  it("reuses the connection of an earlier request", async(function ()
    local a = assert(http.get(url("/port"))):body()
    local b = assert(http.get(url("/port"))):body()
    assert.equal(a, b)
  end))

  it("decodes gzip (Accept-Encoding from curl), or not with decompress = false", async(function ()
    local res = assert(http.get(url("/gzip")))
    assert.equal("gzip", res.headers["content-encoding"])
    assert.equal(("hello gzip\n"):rep(1000), res:body())
    res = assert(http.get(url("/gzip"), { decompress = false }))
    local raw = res:body()
    assert.equal("\31\139", raw:sub(1, 2))
    assert.is_true(#raw < 200)
  end))
end)

describe("tide.http.request", function ()
  it("sends the method, headers and a string body", async(function ()
    local res = assert(http.request{
      url = url("/echo"), method = "PUT", body = "some data",
      headers = { ["X-One"] = "1", ["X-Two"] = { "a", "b" }, ["X-Empty"] = "" },
    })
    local body = res:body()
    assert.equal("PUT", echoed(body, "method"))
    assert.equal("some data", echoed(body, "body"))
    assert.equal("9", echoed(body, "content-length"))
    assert.equal("1", echoed(body, "x-one"))
    assert.equal("a, b", echoed(body, "x-two"))
    assert.equal("", echoed(body, "x-empty"))
    assert.matches("^tide/", echoed(body, "user-agent"))
    assert.is_nil(echoed(body, "content-type"))     -- none of curl's own
    assert.is_nil(echoed(body, "expect"))
  end))

  it("streams a body from a function, chunked when its length is unknown", async(function ()
    local parts = { "one,", "two,", "three" }
    local i = 0
    local res = assert(http.post(url("/echo"), function ()
      i = i + 1
      tide.sleep(0.001)                  -- the producer may wait
      return parts[i]
    end))
    local body = res:body()
    assert.equal("one,two,three", echoed(body, "body"))
    assert.matches('"chunked": true', body)
    i = 0
    res = assert(http.post(url("/echo"), function ()
      i = i + 1
      return parts[i]
    end, { size = 13 }))
    body = res:body()
    assert.equal("one,two,three", echoed(body, "body"))
    assert.equal("13", echoed(body, "content-length"))
  end))

  it("raises when a body function gives more or fewer bytes than its size, and the next request is sound", async(function ()
    local function source (parts)
      local i = 0
      return function () i = i + 1 return parts[i] end
    end
    local ok, err = pcall(http.post, url("/echo"), source { "a", "bb", "ccc" }, { size = 4 })
    assert.is_false(ok)
    assert.matches("'body': it gave more than its 4 bytes %('size'%)", err)
    ok, err = pcall(http.post, url("/echo"), source { "abc" }, { size = 10, timeout = 5 })
    assert.is_false(ok)
    assert.matches("'body': it ended after 3 of its 10 bytes %('size'%)", err)
    local res = assert(http.get(url("/echo")))
    assert.equal(200, res.status)
    assert.equal("GET", echoed(res:body(), "method"))
  end))

  it("sends a file by path or a tide File, with its length", async(function ()
    local path = dir .. "/upload"
    local f = assert(io.open(path, "w"))
    f:write(("0123456789"):rep(20000))
    f:close()
    local res = assert(http.request{ url = url("/echo"), file = path })
    local body = res:body()
    assert.equal("POST", echoed(body, "method"))
    assert.equal("200000", echoed(body, "content-length"))
    assert.equal(200000, #echoed(body, "body"))
    local file <close> = assert(tide.fs.open(path))
    res = assert(http.post(url("/echo"), file, { method = "PUT" }))
    body = res:body()
    assert.equal("PUT", echoed(body, "method"))
    assert.equal("200000", echoed(body, "content-length"))
    local none, msg, code = http.request{ url = url("/echo"), file = dir .. "/none" }
    assert.is_nil(none)
    assert.matches("no such file", msg)
    assert.equal("ENOENT", code)
  end))

  it("posts a file given by path with a nil body, as request does", async(function ()
    local path = dir .. "/upload-post"
    local f = assert(io.open(path, "w"))
    f:write(("abcdefghij"):rep(1000))
    f:close()
    local res = assert(http.post(url("/echo"), nil, { file = path }))
    local body = res:body()
    assert.equal("POST", echoed(body, "method"))
    assert.equal("10000", echoed(body, "content-length"))
    assert.equal(("abcdefghij"):rep(1000), echoed(body, "body"))
    res = assert(http.post(url("/echo"), nil, { file = path, method = "PUT" }))
    assert.equal("PUT", echoed(res:body(), "method"))
    assert.has_error(function () http.post(url("/echo"), nil) end,
      "bad argument #2 to 'post' (string, function or tide.File expected, got nil)")
    assert.has_error(function () http.post(url("/echo"), "x", { file = path }) end,
      "bad argument #3 to 'post' ('file': a body is given)")
    os.remove(path)
  end))

  it("asks HEAD without a body", async(function ()
    local res = assert(http.request{ url = url("/hello"), method = "HEAD" })
    assert.equal(200, res.status)
    assert.equal("5", res.headers["content-length"])
    assert.equal("", res:body())
  end))

  it("raises on wrong use, naming the function", async(function ()
    assert.has_error(function () http.request("x") end,
      "bad argument #1 to 'request' (table expected, got string)")
    assert.has_error(function () http.get(1) end,
      "bad argument #1 to 'get' (string expected, got number)")
    assert.has_error(function () http.get(url("/"), { timeout = -1 }) end,
      "bad argument #2 to 'get' ('timeout': non-negative number expected)")
    assert.has_error(function ()
      http.request{ url = url("/"), headers = { X = "a\r\nB: c" } }
    end, "bad argument #1 to 'request' ('headers': line break in the value of X)")
    assert.has_error(function () http.post(url("/"), 5) end,
      "bad argument #2 to 'post' (string, function or tide.File expected, got number)")
    assert.has_error(function () http.get(url("/"), { tiemout = 1 }) end,
      "bad argument #2 to 'get' ('tiemout': unknown option)")
    assert.has_error(function () http.request{ url = url("/"), version = "3" } end,
      "bad argument #1 to 'request' ('version': \"1.0\", \"1.1\" or \"2\" expected)")
  end))

  it("raises outside a task", async(function ()
    local t = tide.spawn(function () end)
    t:await()
    local err
    t:on_done(function () err = select(2, pcall(http.get, url("/hello"))) end)
    assert.equal("'tide.http.get' must be called inside a task "
                 .. "(use tide.run or tide.spawn)", err)
  end))
end)

describe("redirects", function ()
  it("are followed, up to 5 by default; res.url is where they led", async(function ()
    local res = assert(http.get(url("/redirect?n=3")))
    assert.equal(200, res.status)
    assert.equal("arrived", res:body())
    assert.equal(url("/redirect?n=0&code=302"), res.url)
    res = assert(http.get(url("/redirect?n=2&code=308")))
    assert.equal("arrived", res:body())
  end))

  it("are not followed with follow = false", async(function ()
    local res = assert(http.get(url("/redirect?n=1"), { follow = false }))
    assert.equal(302, res.status)
    assert.equal("/redirect?n=0&code=302", res.headers.location)
    assert.equal("moved", res:body())
  end))

  it("fail past max_redirects, and in a loop", async(function ()
    local res, msg, code = http.get(url("/redirect?n=3"), { max_redirects = 2 })
    assert.is_nil(res)
    assert.matches("^too many redirects", msg)
    assert.equal("ETOOMANYREDIRECTS", code)
    res, msg, code = http.get(url("/loop"))
    assert.is_nil(res)
    assert.matches("^too many redirects %(maximum %(5%) redirects followed%)", msg)
    assert.equal("ETOOMANYREDIRECTS", code)
  end))
end)

describe("a streamed response", function ()
  it("reads as it comes: read(n), lines()", async(function ()
    local res = assert(http.get(url("/chunked"), { stream = true }))
    assert.equal(200, res.status)
    assert.equal("on", res:read(2))
    local lines = {}
    for l in res:lines() do lines[#lines + 1] = l end
    assert.same({ "e", "two", "three" }, lines)
    assert.is_nil(res:read())
  end))

  it("holds curl back while the task does not read: memory stays bounded", async(function ()
    local n = 64 * 1024 * 1024
    local before = rss()
    local res <close> = assert(http.get(url("/big?n=" .. n), { stream = true }))
    tide.sleep(0.3)                      -- the server sends as fast as it can
    local grown = rss() - before
    assert.is_true(grown < 8 * 1024, "grew by " .. grown .. " KiB")
    local total, peak = 0, 0
    while true do
      local s = res:read()
      if not s then break end
      total = total + #s
      if total % (4 * 1024 * 1024) < #s then peak = math.max(peak, rss() - before) end
    end
    assert.equal(n, total)
    if not BUILD:match("asan") then      -- its quarantine keeps what was freed
      assert.is_true(peak < 16 * 1024, "grew by " .. peak .. " KiB")
    end
  end))

  it("is read by one task at a time: a second raises", async(function ()
    local res <close> = assert(http.get(url("/trickle?n=5&delay=0.05&first=0.2"),
                                        { stream = true }))
    local first = tide.spawn(function () return res:read() end)
    tide.sleep(0.01)
    local ok, err = pcall(res.read, res)
    assert.is_false(ok)
    assert.matches("another task is reading this response", err)
    assert.equal("x", first:await())
  end))

  it("reads the whole rest with body()", async(function ()
    local res = assert(http.get(url("/big?n=1000000"), { stream = true }))
    local first = res:read(10)
    assert.equal("0123456789", first)
    assert.equal(1000000 - 10, #res:body())
  end))

  it("closed before its end cuts the transfer, and its connection is not reused", async(function ()
    local p1 = assert(http.get(url("/port"))):body()
    local res = assert(http.get(url("/trickle?n=50&delay=0.02"), { stream = true }))
    assert.equal("x", res:read(1))
    res:close()
    res:close()                          -- harmless twice
    local p2 = assert(http.get(url("/port"))):body()
    assert.are_not.equal(p1, p2)
  end))
end)

describe("cancellation", function ()
  it("removes the transfer at once while waiting for headers", async(function ()
    local t = tide.spawn(http.get, url("/slow?s=5"))
    tide.sleep(0.05)
    local t0 = tide.now()
    t:cancel()
    assert.has_error(function () t:await() end)
    assert.is_true(t:cancelled())
    assert.is_true(tide.now() - t0 < 0.5)
    assert.equal("hello", assert(http.get(url("/hello"))):body())
  end))

  it("mid-body removes the transfer; its half-read connection is not reused", async(function ()
    local p1 = assert(http.get(url("/port"))):body()
    local res = assert(http.get(url("/trickle?n=100&delay=0.02"), { stream = true }))
    local reader = tide.spawn(function () return res:body() end)
    tide.sleep(0.1)
    reader:cancel()
    assert.has_error(function () reader:await() end)
    local none, msg, code = res:read()
    assert.is_nil(none)
    assert.equal("the transfer was cancelled", msg)
    assert.equal("ECANCELED", code)
    local p2 = assert(http.get(url("/port"))):body()
    assert.are_not.equal(p1, p2)
  end))

  it("of a request streaming its body stops the producer", async(function ()
    local calls = 0
    local t = tide.spawn(http.post, url("/echo"), function ()
      calls = calls + 1
      tide.sleep(0.05)
      return "x"
    end)
    tide.sleep(0.2)
    t:cancel()
    assert.has_error(function () t:await() end)
    local seen = calls
    tide.sleep(0.1)
    assert.equal(seen, calls)
  end))
end)

describe("timeouts", function ()
  it("timeout bounds the whole transfer", async(function ()
    local t0 = tide.now()
    local res, msg, code = http.get(url("/slow?s=3"), { timeout = 0.3 })
    assert.is_nil(res)
    assert.equal("timed out after 0.3 s", msg)
    assert.equal("ETIMEDOUT", code)
    assert.is_true(tide.now() - t0 < 1.5)
  end))

  it("connect_timeout bounds the connect only", async(function ()
    local t0 = tide.now()
    -- https: the TLS handshake is part of the connect, so it times out the
    -- same whether the hole's full queue drops the SYN or (as seen now and
    -- then) the kernel completes the TCP handshake
    local res, msg, code = http.get(("https://127.0.0.1:%d/"):format(peer.hole),
                                    { connect_timeout = 0.3, timeout = 5 })
    assert.is_nil(res)
    assert.equal("connect timed out after 0.3 s", msg)
    assert.equal("ETIMEDOUT", code)
    assert.is_true(tide.now() - t0 < 1.5)
    res = assert(http.get(url("/slow?s=0.5"), { connect_timeout = 0.3 }))
    assert.equal("slow", res:body())
  end))

  it("requests at once to an https origin that never answers fail together, "
     .. "not one connect_timeout after another", async(function ()
    local t0, ts = tide.now(), {}
    for i = 1, 6 do
      ts[i] = tide.spawn(http.get, ("https://127.0.0.1:%d/%d"):format(peer.hole, i),
                         { connect_timeout = 1 })
    end
    for _, t in ipairs(ts) do
      local res, msg, code = t:await()
      assert.is_nil(res)
      assert.equal("connect timed out after 1 s", msg)
      assert.equal("ETIMEDOUT", code)
    end
    -- one after another: 6 s; together: the first connect, then the rest
    assert.is_true(tide.now() - t0 < 4, tostring(tide.now() - t0))
  end))

  it("the low-speed limit ends a transfer that crawls", async(function ()
    local res, msg, code = http.get(url("/trickle?n=100&delay=0.3"),
                                    { low_speed_limit = 100, low_speed_time = 1 })
    assert.is_nil(res)
    assert.equal("too slow: less than 100 bytes/s for 1 s", msg)
    assert.equal("ETIMEDOUT", code)
  end))
end)

describe("errors", function ()
  it("come as nil, message, code", async(function ()
    local cases = {
      { "http://127.0.0.1:1/", "^connection refused: 127.0.0.1 port 1$", "ECONNREFUSED" },
      { "http://x.invalid/", "^could not resolve host: x.invalid$", "EAI_NONAME" },
      { url("/half"), "^transfer closed with 90 bytes remaining to read$", "EPROTO" },
      { url("/empty"), "^empty reply from server$", "EPROTO" },
      { "http://[::1", "", "EINVAL" },
      { "ftp://127.0.0.1/", "", "EINVAL" },
    }
    for _, c in ipairs(cases) do
      local res, msg, code = http.get(c[1])
      assert.is_nil(res, c[1])
      assert.matches(c[2], msg)
      assert.equal(c[3], code, c[1] .. ": " .. msg)
    end
  end))
end)

describe("proxies", function ()
  it("take http:// requests as the proxy option says", async(function ()
    local proxy = ("http://127.0.0.1:%d"):format(peer.proxy)
    local res = assert(http.get(url("/echo"), { proxy = proxy }))
    assert.equal("1.1 spec-proxy", echoed(res:body(), "via"))
  end))

  it("come from the environment (http_proxy), as curl takes them", function ()
    local out = sh(("http_proxy=http://127.0.0.1:%d %s -e 'print(tide.http.get(%q):body())'")
      :format(peer.proxy, TIDE, url("/echo")))
    assert.equal("1.1 spec-proxy", echoed(out, "via"))
    out = sh(("http_proxy=http://127.0.0.1:%d no_proxy=127.0.0.1 %s -e 'print(tide.http.get(%q):body())'")
      :format(peer.proxy, TIDE, url("/echo")))
    assert.is_nil(echoed(out, "via"))
  end)

  it("a CONNECT refused by the proxy is an error", async(function ()
    local proxy = ("http://127.0.0.1:%d"):format(peer.proxy)
    local res, msg, code = http.get("https://x.invalid/", { proxy = proxy })
    assert.is_nil(res)
    assert.equal("proxy: CONNECT tunnel failed, response 403", msg)
    assert.equal("EPROXY", code)
  end))
end)

describe("with nginx", function ()
  local nginx = {}

  local function run (cmd)
    local out, code = sh("env -u LD_PRELOAD " .. cmd)
    assert(code == 0, cmd .. ": " .. out)
    return out
  end

  -- A free port on 127.0.0.1 (free when asked).
  local function freeport ()
    return tide.run(function ()
      local s <close> = assert(tide.tcp.listen("127.0.0.1", 0))
      local _, port = s:getsockname()
      return port
    end)
  end

  setup(function ()
    local d = dir .. "/nginx"
    nginx.dir = d
    run(("mkdir -p %s/www %s/tmp && cd %s && "
         .. "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
         .. "-keyout ca.key -out ca.pem -days 2 -subj /CN=spec-ca 2>&1 && "
         .. "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
         .. "-keyout srv.key -out srv.csr -subj /CN=localhost 2>&1 && "
         .. "printf 'subjectAltName=DNS:localhost\\n' > ext && "
         .. "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
         .. "-out srv.pem -days 2 -extfile ext 2>&1"):format(d, d, d))
    local f = assert(io.open(d .. "/www/page.txt", "w"))
    f:write(("nginx page\n"):rep(500))
    f:close()
    nginx.port, nginx.tls, nginx.h2 = freeport(), freeport(), freeport()
    f = assert(io.open(d .. "/nginx.conf", "w"))
    f:write(([[
daemon off; master_process off; worker_processes 1;
pid %s/nginx.pid; error_log %s/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %s/tmp; proxy_temp_path %s/tmp;
  fastcgi_temp_path %s/tmp; uwsgi_temp_path %s/tmp; scgi_temp_path %s/tmp;
  keepalive_requests 100000;
  gzip on; gzip_types text/plain; gzip_min_length 0;
  log_format conns '$connection $server_protocol $status';
  server {
    listen 127.0.0.1:%d ssl http2;
    access_log %s/h2.log conns;
    ssl_certificate %s/srv.pem; ssl_certificate_key %s/srv.key;
    root %s/www;
    default_type text/plain;
  }
  server {
    listen 127.0.0.1:%d;
    listen 127.0.0.1:%d ssl http2;
    ssl_certificate %s/srv.pem; ssl_certificate_key %s/srv.key;
    root %s/www;
    default_type text/plain;
  }
}
]]):gsub("%%s", d):format(nginx.h2, nginx.port, nginx.tls))
    f:close()
    os.execute(("env -u LD_PRELOAD timeout 600 nginx -p %s -c %s/nginx.conf -e %s/error.log "
                .. ">%s/out.log 2>&1 &"):format(d, d, d, d))
    waitfile(d .. "/nginx.pid")
    tide.run(function ()                 -- until it listens
      for _ = 1, 100 do
        local s = tide.tcp.connect("127.0.0.1", nginx.tls)
        if s then s:close() return end
        tide.sleep(0.05)
      end
    end)
  end)

  teardown(function ()
    local f = io.open(nginx.dir .. "/nginx.pid")
    if f then
      os.execute("kill " .. f:read("a"):match("%d+"))
      f:close()
    end
  end)

  local function plain (path)
    return ("http://127.0.0.1:%d%s"):format(nginx.port, path)
  end

  local function tls (path)
    return ("https://localhost:%d%s"):format(nginx.tls, path)
  end

  it("gives what curl gives", async(function ()
    local res = assert(http.get(plain("/page.txt")))
    assert.equal(200, res.status)
    local body = res:body()
    assert.equal(body, sh("env -u LD_PRELOAD curl -s --compressed " .. plain("/page.txt")))
    assert.equal("gzip", res.headers["content-encoding"])
  end))

  it("speaks HTTP/2 over TLS, verified against cafile", async(function ()
    local res = assert(http.get(tls("/page.txt"), { cafile = nginx.dir .. "/ca.pem" }))
    assert.equal(200, res.status)
    assert.equal("2", res.version)
    assert.equal("OK", res.reason)
    assert.equal(("nginx page\n"):rep(500), res:body())
    res = assert(http.get(tls("/page.txt"), { cafile = nginx.dir .. "/ca.pem",
                                              version = "1.1" }))
    assert.equal("1.1", res.version)
  end))

  it("fails verification against the system store, unless verify = false", async(function ()
    local res, msg, code = http.get(tls("/page.txt"))
    assert.is_nil(res)
    assert.equal("certificate verify failed: unable to get local issuer certificate", msg)
    assert.equal("ECERT", code)
    res = assert(http.get(tls("/page.txt"), { verify = false }))
    assert.equal(200, res.status)
  end))

  it("checks the host name", async(function ()
    local res, msg, code = http.get(("https://127.0.0.1:%d/"):format(nginx.tls),
                                    { cafile = nginx.dir .. "/ca.pem" })
    assert.is_nil(res)
    assert.matches("^certificate verify failed: .*127.0.0.1", msg)
    assert.equal("ECERT", code)
  end))

  it("takes the CA from SSL_CERT_FILE, as OpenSSL does", function ()
    local out = sh(("SSL_CERT_FILE=%s/ca.pem %s -e 'print(tide.http.get(%q).status)'")
      :format(nginx.dir, TIDE, tls("/page.txt")))
    assert.equal("200\n", out)
  end)

  it("tunnels HTTPS through a proxy with CONNECT", async(function ()
    local proxy = ("http://127.0.0.1:%d"):format(peer.proxy)
    local stats = function ()
      return tonumber(assert(http.get(url("/stats"))):body():match('"connects": (%d+)'))
    end
    local before = stats()
    local res = assert(http.get(tls("/page.txt"), { proxy = proxy,
                                                   cafile = nginx.dir .. "/ca.pem" }))
    assert.equal(200, res.status)
    assert.equal(before + 1, stats())
  end))

  it("is crawled by scripts/crawl.lua over HTTPS, verified, to a depth", function ()
    local site = nginx.dir .. "/www/site"
    assert(os.execute("mkdir -p " .. site))
    local pages = {
      ["index.html"] = '<a href="a.html">a</a> <a href=\'/site/b.html#top\'>b</a>',
      ["a.html"] = '<a href="c.html">c</a> <a href="missing.html">gone</a>',
      ["b.html"] = '<a href="./c.html">c</a> <a href="https://elsewhere.invalid/">out</a>'
                   .. ' <a href="mailto:x@y">mail</a>',
      ["c.html"] = '<a href="d.html">too deep</a>',
      ["d.html"] = 'deep',
    }
    for name, html in pairs(pages) do
      local f = assert(io.open(site .. "/" .. name, "w"))
      f:write("<html><body>", html, "</body></html>")
      f:close()
    end
    local out, code = sh(("SSL_CERT_FILE=%s/ca.pem %s scripts/crawl.lua %s -j 4 -d 2 2>/dev/null")
      :format(nginx.dir, TIDE, tls("/site/index.html")))
    assert.equal(0, code, out)
    for _, page in ipairs { "index", "a", "b", "c" } do
      assert.matches("\n?200 +%d+ B +[%d.]+ s  " .. tls("/site/" .. page .. ".html"):gsub("%p", "%%%0"), out)
    end
    assert.matches("404 +%d+ B +[%d.]+ s  " .. tls("/site/missing.html"):gsub("%p", "%%%0"), out)
    assert.is_nil(out:find("d.html", 1, true))
    assert.is_nil(out:find("elsewhere", 1, true))
    assert.matches("5 pages, 0 errors, [%d.]+ KiB in [%d.]+ s %([%d.]+ pages/s%) with 4 at once; 200: 4, 404: 1\n$", out)
    out = sh(("%s scripts/crawl.lua %s -d 0 2>/dev/null"):format(TIDE, tls("/site/index.html")))
    assert.matches("certificate verify failed", out)
    assert.matches("0 pages, 1 errors", out)
  end)

  it("sends plain HTTP requests at once, each on a connection of its own, from the first", function ()
    -- A fresh program: no connection to the host yet.
    local out, code = sh(("%s -e 'local t0 = tide.now() local fns = {} "
      .. "for i = 1, 4 do fns[i] = function () return tide.http.get(%q):body() end end "
      .. "tide.gather(table.unpack(fns)) print(tide.now() - t0)'")
      :format(TIDE, url("/slow?s=0.5")))
    assert.equal(0, code, out)
    local took = tonumber(out:match("^(%S+)"))
    assert.is_true(took >= 0.5 and took < 0.95, out)   -- not 1 s or more
  end)

  it("multiplexes 300 requests at once to an HTTP/2 origin on one connection", function ()
    -- A fresh program (no connection to the origin yet) starts them all at
    -- once; nginx logs each request with the number of its connection.
    -- (curl alone opened a connection for each request past its 100
    -- streams, and often for each one while the first was being made.)
    local log = nginx.dir .. "/h2.log"
    local script = nginx.dir .. "/mux.lua"
    local f = assert(io.open(script, "w"))
    f:write([[
local url, cafile = ...
local fns = {}
for i = 1, 300 do
  fns[i] = function ()
    local res = assert(tide.http.get(url, { cafile = cafile }))
    assert(res.version == "2", res.version)
    return #res:body()
  end
end
local sizes = { tide.gather(table.unpack(fns)) }
assert(#sizes == 300)
for i = 1, 300 do assert(sizes[i] == 5500) end
print("ok")
]])
    f:close()
    assert(io.open(log, "w")):close()
    local out, code = sh(("%s %s %s %s"):format(TIDE, script,
      ("https://localhost:%d/page.txt"):format(nginx.h2), nginx.dir .. "/ca.pem"))
    assert.equal(0, code, out)
    assert.matches("ok", out)
    local conns, n = {}, 0
    for line in io.lines(log) do
      local conn, proto, status = line:match("^(%d+) (%S+) (%d+)$")
      assert.equal("HTTP/2.0", proto, line)
      assert.equal("200", status, line)
      conns[conn] = true
      n = n + 1
    end
    assert.equal(300, n)
    local count = 0
    for _ in pairs(conns) do count = count + 1 end
    assert.equal(1, count)
  end)

  it("runs 200 requests at once", async(function ()
    local fns = {}
    for i = 1, 200 do
      fns[i] = function ()
        local res = assert(http.get(i % 2 == 0 and plain("/page.txt")
                                    or tls("/page.txt"),
                                    { cafile = nginx.dir .. "/ca.pem" }))
        return #res:body()
      end
    end
    local sizes = { tide.gather(table.unpack(fns)) }
    assert.equal(200, #sizes)
    for i = 1, 200 do assert.equal(5500, sizes[i]) end
  end))
end)

describe("the runtime", function ()
  it("closes with transfers still going, leaving nothing behind", function ()
    local out, code = sh(("%s -e 'local r = tide.http.get(%q, {stream = true}) "
      .. "print(r.status) tide.spawn(tide.http.get, %q) tide.sleep(0.05)'")
      :format(TIDE, url("/trickle?n=100&delay=0.05"), url("/slow?s=3")))
    assert.equal(0, code, out)
    assert.matches("^200\n", out)
  end)
end)

-- What the README says of the client, on a tide.http.serve of this process.
describe("as documented", function ()
  local function serving (handler, fn)
    local sv = assert(http.serve("127.0.0.1", 0, handler))
    local _, port = sv:getsockname()
    local ok, err = pcall(fn, port)
    sv:close()
    assert(ok, err)
  end

  it("takes a URL without a scheme as http://, as curl guesses", async(function ()
    serving(function (req) return 200, nil, req.path end, function (port)
      local r = assert(http.get(("127.0.0.1:%d/x"):format(port)))
      assert.same({ 200, "/x", ("http://127.0.0.1:%d/x"):format(port) },
                  { r.status, r:body(), r.url })
      local _, err, code = http.get("ftp.invalid/x")
      assert.equal("EINVAL", code, err)
    end)
  end))

  it("gives a body once, then \"\"; keeps the \\r of CRLF lines", async(function ()
    serving(function () return 200, nil, "a\r\nb\r\n" end, function (port)
      local u = ("http://127.0.0.1:%d/"):format(port)
      local r = assert(http.get(u))
      assert.equal("a\r\nb\r\n", r:body())
      assert.equal("", r:body())
      r = assert(http.get(u, { stream = true }))
      local lines = {}
      for l in r:lines() do lines[#lines + 1] = l end
      assert.same({ "a\r", "b\r" }, lines)
    end)
  end))

  it("raises the error of a body function that raises", async(function ()
    serving(function (req) return 200, nil, req:body() end, function (port)
      local u = ("http://127.0.0.1:%d/"):format(port)
      local ok, err = pcall(http.post, u, function () error("boom", 0) end)
      assert.same({ false, "boom" }, { ok, err })
      assert.equal("next", assert(http.post(u, "next")):body())
    end)
  end))

  it("is crawled by scripts/crawl.lua with a progress line each 10 pages off a terminal", async(function ()
    serving(function (req)
      if req.path == "/" then
        local links = {}
        for i = 1, 24 do links[i] = ('<a href="/p%d">%d</a>'):format(i, i) end
        return 200, { ["Content-Type"] = "text/html" }, table.concat(links)
      end
      return 200, { ["Content-Type"] = "text/plain" }, "page"
    end, function (port)
      local out = background(("%s scripts/crawl.lua http://127.0.0.1:%d/ -j 4 2>&1 >/dev/null")
                             :format(TIDE, port))()
      local lines = {}
      for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
      assert.equal(3, #lines, out)
      assert.matches("^%[10 done", lines[1])
      assert.matches("^%[20 done", lines[2])
      assert.matches("^%[25 done, 0 errors, 0 active, 0 queued%]", lines[3])
    end)
  end))
end)
