-- echo_client.lua: sends each line typed (or piped) to the echo server and
-- prints what comes back.
-- Run: tide scripts/echo_client.lua [port]
local port = tonumber(arg[1]) or 7000
local s, err = tide.tcp.connect("127.0.0.1", port, { timeout = 5 })
if not s then
  io.stderr:write("echo_client: ", err, "\n")
  os.exit(1)
end
for line in io.lines() do                    -- blocks the loop: fine here,
  s:write(line, "\n")                        -- this task is the only one
  io.write("echo: ", s:read_until("\n"))
end
s:close()
