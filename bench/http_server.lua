-- http_server.lua: tide.http.serve answering 13 bytes, for wrk
-- (bench/run.sh's http_server section); idle connections kept 60 s, as
-- the peers keep them.
--   tide bench/http_server.lua PORT
local port = tonumber(arg[1]) or 8080
local sv = assert(tide.http.serve("127.0.0.1", port, function ()
  return 200, nil, "Hello, World!"
end, { idle_timeout = 60 }))
sv:wait()
