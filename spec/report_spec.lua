-- report_spec.lua: errors nobody observed are reported once the loop has
-- run what was ready, and make the tide command exit with 1; tasks that
-- never started are reported when the runtime closes (runtime/report.c).

local P = tide.process
local LUA = "lua5.4"
local luaenv = ("env LUA_CPATH='%s/?.so;;' LD_PRELOAD='%s' "):format(
  BUILD, os.getenv("TIDE_PRELOAD") or "")

-- Run a script under cmd (TIDE, or stock Lua); collect each line of its
-- stderr with the time it arrived (s since the start). Returns the lines,
-- their times, stdout and the exit code.
local function run (cmd, script)
  local path = tmpfile(script)
  local start = tide.now()
  local p <close> = assert(P.spawn { "sh", "-c", cmd .. " " .. path,
                                     stdout = "pipe", stderr = "pipe" })
  local lines, times = {}, {}
  local out = tide.spawn(readall, p.stdout)
  for line in p.stderr:lines() do
    lines[#lines + 1] = line
    times[#times + 1] = tide.now() - start
  end
  local code = p:wait()
  os.remove(path)
  return lines, times, out:await() or "", code
end

local function find (lines, pattern)
  for i, l in ipairs(lines) do
    if l:match(pattern) then return i end
  end
end

describe("an error nobody observed", function ()
  it("is reported as soon as the loop has run what was ready, not at the end", async(function ()
    local lines, times, out, code = run(TIDE, [[
tide.spawn(function () tide.sleep(0.1); error("boom") end)
tide.sleep(1.5)
print("end")]])
    local i = find(lines, "error in a task nobody awaited: .*:1: boom")
    assert.truthy(i, table.concat(lines, "\n"))
    assert.is_true(times[i] < 1.0, "reported after " .. times[i] .. " s")
    assert.truthy(find(lines, "stack traceback:"))
    assert.equal("end\n", out)
    assert.equal(1, code)
  end))

  it("is reported once for each task, at its own time", async(function ()
    local lines, times, _, code = run(TIDE, [[
local q = tide.Queue(4)
for i = 1, 8 do tide.spawn(function () tide.sleep(i * 0.05); q:put(nil) end) end
tide.sleep(1)]])
    local n = 0
    for i, l in ipairs(lines) do
      if l:match("nobody awaited: .*put") then
        n = n + 1
        assert.is_true(times[i] < 0.9)
      end
    end
    assert.equal(8, n)
    assert.equal(1, code)
  end))

  it("is still returned to a later await, and the exit status is then 0", async(function ()
    local lines, _, out, code = run(TIDE, [[
local t = tide.spawn(function () error("late") end)
tide.sleep(0.05)
print(pcall(t.await, t))]])
    assert.truthy(find(lines, "nobody awaited: .*late"))
    assert.matches("^false\t.*late\n$", out)
    assert.equal(0, code)
  end))

  it("is not reported when observed: await, on_done, result, gather, group", async(function ()
    local lines, _, out, code = run(TIDE, [[
local a = tide.spawn(function () error("a") end)
print(pcall(a.await, a))
local b = tide.spawn(function () error("b") end)
b:on_done(function () end)            -- the way to ignore a task's error
local c = tide.spawn(function () error("c") end)
c:on_done(function (t) print(t:result()) end)
print(pcall(tide.gather, function () error("g") end, function () tide.sleep(1) end))
print(pcall(tide.group, function (g) g:spawn(error, "in group") end))
local d = tide.spawn(tide.sleep, 10)
tide.sleep(0.01)
d:cancel()                            -- a cancelled task is no error
tide.sleep(0.05)]])
    assert.same({}, lines)
    assert.equal(0, code)
    assert.matches("g\n", out)
  end))

  it("of a task that ended before tide.run returned is reported in stock Lua", async(function ()
    local lines, _, out, code = run(luaenv .. LUA, [[
local tide = require "tide"
tide.run(function ()
  tide.spawn(function () error("stock") end)
  tide.sleep(0.05)
  print("main ends")
end)]])
    assert.truthy(find(lines, "nobody awaited: .*stock"), table.concat(lines, "\n"))
    assert.equal("main ends\n", out)
    assert.equal(0, code)                  -- lua5.4 decides its exit status
  end))

  it("shows above the prompt at once in the REPL, which then exits 0", async(function ()
    local lines, _, out, code = run("printf '%s\\n' 'tide.spawn(error, \"bg\")' "
      .. "'tide.sleep(0.05)' 'print(\"after\")' | " .. TIDE .. " -i", "")
    assert.truthy(find(lines, "nobody awaited: bg"), table.concat(lines, "\n"))
    assert.matches("after", out)
    assert.equal(0, code)
  end))
end)

describe("a task that never started", function ()
  it("is reported when stock Lua closes the runtime", async(function ()
    local lines, _, _, code = run(luaenv .. LUA, [[
local tide = require "tide"
tide.run(function () end)
tide.spawn(function () print("never") end)]])
    assert.truthy(find(lines, "never started %(function at .*:3%)"),
                  table.concat(lines, "\n"))
    assert.equal(0, code)
  end))

  it("runs when the loop next runs, as asyncio's ensure_future", async(function ()
    local _, _, out = run(luaenv .. LUA, [[
local tide = require "tide"
local q = tide.Queue()
tide.spawn(function () for i = 1, 3 do q:put(i) end q:put(nil) end)
tide.run(function ()
  while true do
    local v = q:get()
    if v == nil then break end
    io.write(v, " ")
  end
end)]])
    assert.equal("1 2 3 ", out)
  end))
end)
