-- transport_oom.lua: what spec/embed/oom.c runs for
-- spec/transport_oom_spec.lua while its allocator fails: the callback
-- layer (a Protocol server and client, an echo, flow control, a callback
-- that raises, close after queued data, abort), each ending quickly
-- whatever part fails.
local tide = tide

local Echo = {}
Echo.__index = Echo
function Echo:connection_made (t) self.t = t end
function Echo:data_received (d)
  if d == "boom" then error("boom") end
  self.t:write(d)
end
function Echo:pause_writing () self.t:pause_reading() end
function Echo:resume_writing () self.t:resume_reading() end

local srv = assert(tide.tcp.create_server("127.0.0.1", 0, function ()
  return setmetatable({}, Echo)
end))
local _, port = srv:getsockname()

local function run ()
  -- a client Protocol: sends, collects, closes
  local got, lost = {}, tide.Event()
  local t = assert(tide.tcp.create_connection("127.0.0.1", port, function ()
    return {
      data_received = function (_, d) got[#got + 1] = d end,
      connection_lost = function () lost:set() end,
    }
  end))
  t:writelines({ "hello", " ", "world" })
  t:set_write_buffer_limits(1024)
  t:write(("z"):rep(4096))
  while #table.concat(got) < 11 + 4096 do tide.sleep(0.001) end
  t:close()
  lost:wait()
  -- a stream client against the same server: a callback that raises
  local s <close> = assert(tide.tcp.connect("127.0.0.1", port))
  assert(s:write("boom"))
  assert(s:read() == nil)
  -- abort with data queued
  local t2 = assert(tide.tcp.create_connection("127.0.0.1", port, function ()
    return { connection_made = function (_, tr) tr:write(("q"):rep(100000)); tr:abort() end }
  end))
  assert(t2:is_closing())
  return true
end

local ok, err = pcall(tide.timeout, 3, run)
srv:close()
if not ok then error(err, 0) end
if err == nil then error("timeout", 0) end
return "done"
