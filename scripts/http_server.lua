-- http_server.lua: a small HTTP server with tide.http.serve.
--   tide scripts/http_server.lua [PORT]
--   curl localhost:8080/hello; curl localhost:8080/add?a=1&b=2
--   curl --data-binary @file localhost:8080/echo     (streamed back)
-- Ctrl-C ends it.
local port = tonumber(arg[1]) or 8080

local function handler (req, res)
  if req.path == "/hello" then
    return 200, { ["Content-Type"] = "text/plain" }, "Hello, World!\n"
  elseif req.path == "/add" then
    local a, b = tonumber(req.query.a), tonumber(req.query.b)
    if not (a and b) then return 400, nil, "a and b, numbers\n" end
    return 200, nil, ("%s\n"):format(a + b)
  elseif req.path == "/echo" and req.method == "POST" then
    res:header("Content-Type", req.headers["content-type"] or "application/octet-stream")
    while true do                          -- chunked, as it comes
      local data, err = req:read()
      if not data then
        if err then print("echo: " .. err) end
        break
      end
      res:write(data)
    end
    return res:finish()
  end
  return 404, nil, "no " .. req.path .. "\n"
end

local sv = assert(tide.http.serve("127.0.0.1", port, handler))
print(("listening on http://127.0.0.1:%d/"):format(select(2, sv:getsockname())))
sv:wait()
