-- gc_spec.lua: the collector's young floor (runtime/sched.c): while the
-- heap is small, a generational collector's minor collections wait for
-- more allocation than Lua's 20 % of the heap; a collector in incremental
-- mode is left so. Each case runs a script under the tide command, whose
-- heap is small (busted's is not).

-- Run the Lua source under the tide command; its output, trimmed.
local function tide_run (source)
  local path = tmpfile(source)
  local out, code = sh(("env -u LD_PRELOAD %s %s"):format(TIDE, path))
  os.remove(path)
  assert.equal(0, code, out)
  return (out:gsub("%s+$", ""))
end

-- Counts the collections (a young object whose finalizer makes the next
-- one) and the heap's peak while a task takes in n strings of 16 KiB, a
-- resume each.
local TAKE_IN = [[
local cycles, peak = 0, 0
local function sentinel ()
  setmetatable({}, { __gc = function () cycles = cycles + 1 sentinel() end })
end
sentinel()
local n = 2000
for i = 1, n do
  local s = string.rep("x", 16376) .. string.format("%08d", i)
  assert(#s == 16384)
  tide.yield()
  local kb = collectgarbage("count")
  if kb > peak then peak = kb end
end
print(cycles, peak)
]]

describe("the collector", function ()
  it("collects a small heap less often than every two 16 KiB strings", function ()
    local cycles, peak = tide_run(TAKE_IN):match("^(%d+)%s+(%S+)$")
    assert.is_not_nil(cycles)
    -- 2,000 messages of 32 KiB allocated each (the repeat and the
    -- concatenation): Lua's 20 % of a heap of about 130 KiB made a minor
    -- collection for each.
    assert.is_true(tonumber(cycles) > 0, "never collected")
    assert.is_true(tonumber(cycles) < 500, cycles .. " collections")
    assert.is_true(tonumber(peak) < 4096, "the heap peaked at " .. peak .. " KiB")
  end)

  it("stays incremental when the program chose it", function ()
    local out = tide_run('collectgarbage("incremental")\n' .. TAKE_IN
                         .. 'print(collectgarbage("incremental"))\n')
    local cycles, peak, mode = out:match("^(%d+)%s+(%S+)%s+(%a+)$")
    assert.equal("incremental", mode, out)
    assert.is_true(tonumber(peak) < 4096, "the heap peaked at " .. peak .. " KiB")
    assert.is_true(tonumber(cycles) > 0, "never collected")
  end)
end)
