-- Subprocesses under tide: spawn `true` N times (1,000), 50 at a time,
-- waiting for every exit; then MIB MiB (100) through `cat`, written and read
-- at once over its stdin and stdout pipes.
-- Usage: tide bench/process.lua [N [MIB]]. Prints spawn1000_s and
-- cat100m_mb_per_s (MB = 10^6 bytes).
local n = tonumber(arg[1]) or 1000
local mib = tonumber(arg[2]) or 100
local P = tide.process

local function spawner (first)
  for _ = first, n, 50 do
    local p <close> = assert(P.spawn { "true" })
    assert(p:wait() == 0)
  end
end

local t0 = tide.hrtime()
local jobs = {}
for i = 1, 50 do jobs[i] = function () spawner(i) end end
tide.gather(table.unpack(jobs))
print(("spawn1000_s\t%.3f"):format((tide.hrtime() - t0) / 1e9))

local chunk = ("x"):rep(64 * 1024)
local total = mib * 1024 * 1024
t0 = tide.hrtime()
local p <close> = assert(P.spawn { "cat", stdin = "pipe", stdout = "pipe" })
local writer = tide.spawn(function ()
  for _ = 1, total // #chunk do assert(p.stdin:write(chunk)) end
  p.stdin:close()
end)
local got = 0
while true do
  local data = p.stdout:read()
  if not data then break end
  got = got + #data
end
writer:await()
assert(got == total and p:wait() == 0)
print(("cat100m_mb_per_s\t%.1f"):format(total / 1e6 / ((tide.hrtime() - t0) / 1e9)))
