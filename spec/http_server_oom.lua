-- http_server_oom.lua: what spec/embed/oom.c runs for
-- spec/http_server_oom_spec.lua while its allocator fails: tide.http.serve
-- (http-parser's buffers, the request tables, the responses built in C)
-- against raw tide.tcp clients: a GET, a POST whose body the handler
-- reads, a chunked response, two pipelined requests (the second's target
-- absolute, with a fragment), a handler that
-- raises, a malformed request, then a graceful close; each ending quickly
-- whatever part fails.
local tide = tide

local sv = assert(tide.http.serve("127.0.0.1", 0, function (req, res)
  if req.path == "/body" then
    return 200, { ["X-Len"] = #assert(req:body()) }, "ok"
  elseif req.path == "/chunked" then
    res:header("Content-Type", "text/plain")
    assert(res:write("hel"))
    assert(res:write("lo"))
    return res:finish()
  elseif req.path == "/raise" then
    error("boom")
  end
  return 200, { ["Content-Type"] = "text/plain" }, "hello " .. req.query.a
end, { header_timeout = 1, idle_timeout = 1, body_timeout = 1 }))
local _, port = sv:getsockname()

-- Send data on a new connection; what comes back until the server closes
-- it, or until n responses' worth of "\r\n\r\n" heads have come.
local function exchange (data, heads)
  local c <close> = assert(tide.tcp.connect("127.0.0.1", port))
  assert(c:write(data))
  local got, seen = {}, 0
  while seen < heads do
    local s = c:read()
    if not s then break end
    got[#got + 1] = s
    local _, k = table.concat(got):gsub("\r\n\r\n", "")
    seen = k
  end
  return table.concat(got)
end

local function run ()
  local r = exchange("GET /?a=1 HTTP/1.1\r\nHost: x\r\n\r\n", 1)
  assert(r:find("^HTTP/1.1 200") and r:find("hello 1"), r)
  r = exchange("POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabcde", 1)
  assert(r:find("X%-Len: 5"), r)
  r = exchange("GET /chunked HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 99)
  assert(r:find("Transfer%-Encoding: chunked"), r)
  r = exchange("GET /?a=2 HTTP/1.1\r\nHost: x\r\n\r\n"
               .. "GET http://x/?a=3#f HTTP/1.1\r\nHost: y\r\n\r\n", 2)
  assert(r:find("hello 2") and r:find("hello 3"), r)
  r = exchange("GET /raise HTTP/1.1\r\nHost: x\r\n\r\n", 1)
  assert(r:find("^HTTP/1.1 500"), r)
  r = exchange("GET / HTTP/1.1\r\nHost x\r\n\r\n", 1)
  assert(r:find("^HTTP/1.1 400"), r)
  return true
end

-- A server task that ran out of memory may answer no more: the time-out
-- ends the run then.
local ok, err = pcall(tide.timeout, 3, run)
sv:close(0.1)
if not ok then error(err, 0) end
if err == nil then error("timeout", 0) end
return "done"
