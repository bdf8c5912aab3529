-- robot.lua: starts a small HTTP server whose pages take 0.1 to 0.5 s to
-- answer, then fetches 50 of them at once, one task per page. The total
-- time is that of the slowest page, not the sum of all of them.
-- Run: tide scripts/robot.lua
local server = assert(tide.tcp.serve("127.0.0.1", 0, function (s)
  local request = s:read_until("\r\n\r\n")
  if not request then return end
  local n = tonumber(request:match("^GET /page/(%d+)")) or 0
  tide.sleep(0.1 + (n % 5) * 0.1)            -- a slow page
  local body = ("page %d\n"):format(n)
  s:write("HTTP/1.1 200 OK\r\nContent-Length: ", #body,
          "\r\nConnection: close\r\n\r\n", body)
end))
local _, port = server:getsockname()

-- GET path from the server: the body and the time it took.
local function fetch (path)
  local start = tide.now()
  local s = assert(tide.tcp.connect("127.0.0.1", port))
  s:write("GET ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
  local head = assert(s:read_until("\r\n\r\n"))
  local body = s:read_exactly(tonumber(head:match("Content%-Length: (%d+)")))
  s:close()
  return body, tide.now() - start
end

local start = tide.now()
local tasks = {}
for i = 1, 50 do tasks[i] = tide.spawn(fetch, "/page/" .. i) end
local sum = 0
for i = 1, 50 do
  local body, took = tasks[i]:await()
  assert(body == ("page %d\n"):format(i))
  sum = sum + took
end
print(("50 pages in %.2f s; one after the other they would take %.2f s")
      :format(tide.now() - start, sum))
server:close()
