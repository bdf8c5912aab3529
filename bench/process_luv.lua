-- Subprocesses under luv (lua5.4 + lua-luv), callbacks on libuv: spawn
-- `true` N times (1,000), 50 at a time, waiting for every exit; then MIB MiB
-- (100) through `cat`, written and read at once over its pipes.
-- Usage: lua5.4 bench/process_luv.lua [N [MIB]]. Prints spawn1000_s and
-- cat100m_mb_per_s (MB = 10^6 bytes).
local uv = require "luv"
local n = tonumber(arg[1]) or 1000
local mib = tonumber(arg[2]) or 100

local started, exited = 0, 0
local function one ()
  started = started + 1
  local h
  h = assert(uv.spawn("true", { stdio = { 0, 1, 2 } }, function (code)
    assert(code == 0)
    h:close()
    exited = exited + 1
    if started < n then one() end
  end))
end

local t0 = uv.hrtime()
for _ = 1, math.min(50, n) do one() end
uv.run()
assert(exited == n)
print(("spawn1000_s\t%.3f"):format((uv.hrtime() - t0) / 1e9))

local chunk = ("x"):rep(64 * 1024)
local total = mib * 1024 * 1024
local chunks, written, got = total // #chunk, 0, 0
t0 = uv.hrtime()
local stdin, stdout = uv.new_pipe(false), uv.new_pipe(false)
local h
h = assert(uv.spawn("cat", { stdio = { stdin, stdout, 2 } }, function (code)
  assert(code == 0)
  h:close()
end))
-- Write a chunk at a time, the next once the queue has drained below 256 KiB.
local function pump ()
  while written < chunks and stdin:get_write_queue_size() < 256 * 1024 do
    written = written + 1
    stdin:write(chunk, written % 4 == 0 and pump or nil)
  end
  if written == chunks and not stdin:is_closing() then
    stdin:shutdown(function () stdin:close() end)
  end
end
pump()
stdout:read_start(function (err, data)
  assert(not err, err)
  if data then got = got + #data else stdout:close() end
end)
uv.run()
assert(got == total)
print(("cat100m_mb_per_s\t%.1f"):format(total / 1e6 / ((uv.hrtime() - t0) / 1e9)))
