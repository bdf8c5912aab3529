-- http_client_oom.lua: what spec/embed/oom.c runs for
-- spec/http_client_oom_spec.lua while its allocator fails: tide.http (and
-- libcurl, whose memory comes from tide's allocator) against a tide.tcp
-- server of its own: a request, a streamed response, a streamed upload, a
-- cancelled request, each ending quickly whatever part fails.
local tide = tide

local srv <close> = assert(tide.tcp.listen("127.0.0.1", 0))
local _, port = srv:getsockname()
local base = ("http://127.0.0.1:%d"):format(port)

-- Answer each request of a connection with "hello" (the body it sent, of
-- a Content-Length, read first).
local function answer (c)
  local _ <close> = c
  while true do
    local head = c:read_until("\r\n\r\n")
    if not head then return end
    local len = tonumber(head:match("[Cc]ontent%-[Ll]ength: *(%d+)"))
    if len and len > 0 and not c:read_exactly(len) then return end
    if head:find("^GET /slow") then tide.sleep(1) end
    c:write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
  end
end

local server = tide.spawn(function ()
  while true do
    local c = srv:accept()
    if not c then return end
    tide.spawn(answer, c)
  end
end)

-- A server task that ran out of memory accepts no more: the client's
-- timeout ends the run then.
local opts = { timeout = 1 }

local function run ()
  local res = assert(tide.http.get(base .. "/", opts))
  assert(res:body() == "hello")
  res = assert(tide.http.get(base .. "/", { stream = true, timeout = 1 }))
  assert(res:read() == "hello")
  res:close()
  local parts, i = { "a", "b", "c" }, 0
  res = assert(tide.http.post(base .. "/", function ()
    i = i + 1
    return parts[i]
  end, { size = 3, timeout = 1 }))
  assert(res.status == 200)
  local t = tide.spawn(tide.http.get, base .. "/slow", opts)
  tide.sleep(0.001)
  t:cancel()
  pcall(t.await, t)
end

local ok, err = pcall(run)
server:cancel()
srv:close()
if not ok then error(err, 0) end
return "done"
