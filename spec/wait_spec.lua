-- wait_spec.lua: tide.wait and tide.as_completed (runtime/lua/tide.lua) over
-- tasks and futures; tide.run() until tide.stop() or a signal, in stock
-- Lua, and tide.stop() in the tide command (runtime/runtime.c).

local P = tide.process
local LIMIT = 30

local function later (s, ...)
  local f, args = tide.Future(), table.pack(...)
  tide.call_later(s, function () f:set_result(table.unpack(args, 1, args.n)) end)
  return f
end

-- Run script under the tide command, or under stock lua5.4 with tide.so
-- (lua = true): out, err, code.
local function run (script, lua)
  local path = tmpfile(lua and ("local tide = require 'tide'\n" .. script) or script)
  local cmd = lua and ("exec env LUA_CPATH='%s/?.so;;' LD_PRELOAD='%s' lua5.4 %s")
    :format(BUILD, os.getenv("TIDE_PRELOAD") or "", path) or { TIDE, path }
  local out, err, code = P.exec(cmd, { timeout = LIMIT })
  os.remove(path)
  assert(out, "the program did not end within " .. LIMIT .. " s")
  return out, err, code
end

describe("tide.wait", function ()
  it("waits for all by default and gives done and pending as lists and sets", async(function ()
    local a, b = later(0.02, 1), tide.spawn(function () return 2 end)
    local done, pending = tide.wait({ a, b })
    assert.equal(2, #done)
    assert.equal(0, #pending)
    assert.equal(a, done[1])
    assert.equal(b, done[2])
    assert.is_true(done[a] and done[b])
  end))

  it("returns at the first to end with return_when = 'first', cancelling nothing", async(function ()
    local slow = tide.spawn(tide.sleep, 10)
    local f = later(0.01, "x")
    local done, pending = tide.wait({ slow, f }, { return_when = "first" })
    assert.same({ f, [f] = true }, done)
    assert.same({ slow, [slow] = true }, pending)
    assert.is_false(slow:done())
    slow:cancel()
    pcall(slow.await, slow)
  end))

  it("returns at the first error with return_when = 'first_error', or when all have ended", async(function ()
    local slow = tide.Future()
    local bad = tide.spawn(function () tide.sleep(0.01) error("bad") end)
    local ok = tide.spawn(function () return 1 end)
    local done, pending = tide.wait({ slow, bad, ok }, { return_when = "first_error" })
    assert.is_true(done[bad] and done[ok])
    assert.is_true(pending[slow])
    assert.is_false(slow:done())
    slow:set_result()
    done, pending = tide.wait({ slow, ok }, { return_when = "first_error" })
    assert.equal(2, #done)
    assert.equal(0, #pending)
  end))

  it("returns after timeout seconds, with nothing cancelled", async(function ()
    local f, t = tide.Future(), tide.spawn(tide.sleep, 10)
    local done, pending = tide.wait({ f, t }, { timeout = 0.02 })
    assert.equal(0, #done)
    assert.equal(2, #pending)
    assert.is_false(f:done() or t:done())
    t:cancel()
    pcall(t.await, t)
  end))

  it("returns at once for an empty list and for what has ended", async(function ()
    local done, pending = tide.wait({})
    assert.same({}, done)
    assert.same({}, pending)
    local f = tide.Future()
    f:set_result(1)
    done = tide.wait({ f, f })
    assert.same({ f, [f] = true }, done)
  end))

  it("raises Cancelled when the waiting task is cancelled, and cancels none of the list", async(function ()
    local f, s = tide.Future(), tide.spawn(tide.sleep, 10)
    local w = tide.spawn(tide.wait, { f, s })
    tide.sleep(0)
    w:cancel()
    local ok, e = pcall(w.await, w)
    assert.is_false(ok)
    assert.is_true(tide.iscancelled(e))
    assert.is_false(f:done() or s:done())
    s:cancel()
    pcall(s.await, s)
  end))

  it("raises on wrong use at the caller's line", async(function ()
    local ok, e = pcall(function () tide.wait(42) end)
    assert.is_false(ok)
    assert.matches("wait_spec.lua:%d+: bad argument #1 to '[%w.]*wait' %(table expected", e)
    ok, e = pcall(function () tide.wait({ function () end }) end)
    assert.matches("wait_spec.lua:%d+: bad argument #1 .*task or future expected at %[1%]", e)
    ok, e = pcall(function () tide.wait({}, { return_when = "any" }) end)
    assert.matches("wait_spec.lua:%d+: bad argument #2 .*return_when", e)
    ok, e = pcall(function () tide.wait({}, { timeout = -1 }) end)
    assert.matches("wait_spec.lua:%d+: bad argument #2 to '[%w.]*wait' %(timeout: negative duration%)", e)
    ok, e = pcall(function () tide.wait({}, { timeout = "soon" }) end)
    assert.matches("wait_spec.lua:%d+: bad argument #2 to '[%w.]*wait' %(timeout: number expected, got string%)", e)
    local f = tide.Future()
    ok, e = pcall(function () tide.wait({ [f] = true }) end)   -- a set
    assert.matches("wait_spec.lua:%d+: bad argument #1 .*no list part", e)
    ok, e = pcall(function () tide.wait({ f }, { retrun_when = "first" }) end)
    assert.matches("wait_spec.lua:%d+: bad argument #2 .*unknown option retrun_when", e)
    assert.same({ {}, {} }, { tide.wait({ n = 0 }) })
  end))

  it("gives two empty lists for an empty list, at once", async(function ()
    local done, pending = tide.wait({}, { timeout = 10 })
    assert.same({ {}, {} }, { done, pending })
  end))

  it("shows no frames of tide's own library in the traceback of wrong use", async(function ()
    local out, err, code = run([[
local t = tide.spawn(function () end)
tide.wait({ t }, { timeout = "x" })
]])
    assert.equal("", out)
    assert.equal(1, code)
    assert.matches("bad argument #2 to 'wait' %(timeout: number expected, got string%)\n"
      .. "stack traceback:\n\t[^\n]*in function 'tide.wait'\n\t[^\n]*:2: in main chunk", err)
    out, err, code = run("tide.gather(42)")
    assert.equal(1, code)
    assert.matches("stack traceback:\n\t[^\n]*in function 'tide.gather'\n\t[^\n]*:1: in main chunk", err)
    assert.not_matches("argerror", err)
    assert.not_matches("typeerror", err)
    out, err, code = run("local t = tide.spawn(tide.timeout, -1, print) tide.sleep(0)")
    assert.matches("error in a task nobody awaited: bad argument #1 to 'tide.timeout' %(negative duration%)\n"
      .. "stack traceback:\n\t[^\n]*in function 'tide.timeout'", err)
    assert.not_matches("argerror", err)
  end))
end)

describe("tide.as_completed", function ()
  it("gives each task and future as it ends", async(function ()
    local a = later(0.03, "a")
    local b = tide.spawn(function () tide.sleep(0.01) return "b" end)
    local c = later(0, "c")
    local order = {}
    for t in tide.as_completed({ a, b, c }) do
      order[#order + 1] = t:await()
    end
    assert.same({ "c", "b", "a" }, order)
  end))

  it("ends the loop after timeout seconds, cancelling nothing", async(function ()
    local f, slow = later(0, 1), tide.Future()
    local seen = {}
    for t in tide.as_completed({ f, slow }, 0.02) do seen[#seen + 1] = t end
    assert.same({ f }, seen)
    assert.is_false(slow:done())
  end))

  it("can be left with break and cancelled in its wait", async(function ()
    local f = later(0, 1)
    for t in tide.as_completed({ f, tide.Future() }) do
      assert.equal(f, t)
      break
    end
    local pending = tide.Future()
    local w = tide.spawn(function ()
      for _ in tide.as_completed({ pending }) do end
    end)
    tide.sleep(0)
    w:cancel()
    assert.has_error(function () w:await() end)
    assert.is_false(pending:done())
  end))

  it("raises on wrong use", async(function ()
    local ok, e = pcall(function () for _ in tide.as_completed({ 1 }) do end end)
    assert.is_false(ok)
    assert.matches("wait_spec.lua:%d+: bad argument #1 .*task or future expected", e)
    ok, e = pcall(function () for _ in tide.as_completed({}, -1) do end end)
    assert.is_false(ok)                  -- as tide.sleep(-1) and tide.timeout(-1, f)
    assert.matches("wait_spec.lua:%d+: bad argument #2 .*negative duration", e)
  end))
end)

describe("tide.run() and tide.stop()", function ()
  it("runs until tide.stop() in stock Lua, then cancels what is left", async(function ()
    local out, err, code = run([[
      tide.spawn(function ()
        local _ <close> = setmetatable({}, { __close = function () print("closed") end })
        while true do tide.sleep(0.01) end
      end)
      tide.call_later(0.05, function () print("stop"); tide.stop() end)
      print("returned", tide.run())
      print(#tide.tasks())
    ]], true)
    assert.equal("stop\nclosed\nreturned\n0\n", out)
    assert.equal("", err)
    assert.equal(0, code)
  end))

  it("returns at once when nothing is left, and may run again", async(function ()
    local out, _, code = run([[
      print(tide.run())
      local f = tide.Future()
      tide.spawn(function () print(f:await()) tide.stop() end)
      tide.call_later(0.01, function () f:set_result("second") end)
      tide.run()
      print("end")
    ]], true)
    assert.equal("\nsecond\nend\n", out)
    assert.equal(0, code)
  end))

  it("ends on SIGINT, returning its name once the tasks have ended", async(function ()
    local path = tmpfile([[
      local tide = require "tide"
      tide.spawn(function ()
        local _ <close> = setmetatable({}, { __close = function () print("closed") end })
        io.stdout:write("ready\n") io.stdout:flush()
        tide.sleep(100)
      end)
      print(tide.run())
    ]])
    local p = assert(P.spawn { "env", "LUA_CPATH=" .. BUILD .. "/?.so;;",
      "LD_PRELOAD=" .. (os.getenv("TIDE_PRELOAD") or ""), "lua5.4", path,
      stdout = "pipe" })
    assert.equal("ready\n", tide.timeout(LIMIT, p.stdout.read_until, p.stdout, "\n"))
    p:kill("SIGINT")
    local out = tide.timeout(LIMIT, readall, p.stdout)
    os.remove(path)
    assert.equal("closed\nSIGINT\n", out)
    assert.same({ 0 }, { p:wait() })
  end))

  it("raises inside a task", async(function ()
    local ok, e = pcall(function () tide.run() end)
    assert.is_false(ok)
    assert.matches("wait_spec.lua:%d+: .*cannot run the loop inside a task", e)
  end))

  it("stop in the tide command ends the script and every task, with status 0", async(function ()
    local out, err, code = run([[
      tide.spawn(function ()
        local _ <close> = setmetatable({}, { __close = function () print("task closed") end })
        tide.sleep(100)
      end)
      tide.call_later(0.02, tide.stop)
      local _ <close> = setmetatable({}, { __close = function () print("script closed") end })
      tide.sleep(100)
      print("not reached")
    ]])
    assert.matches("task closed\n", out)
    assert.matches("script closed\n", out)
    assert.not_matches("not reached", out)
    assert.equal("", err)
    assert.equal(0, code)
  end))

  it("stop in the tide command while the script runs ends it though "
     .. "connections and timers are still open", async(function ()
    local out, err, code = run([[
      local srv = assert(tide.tcp.create_server("127.0.0.1", 0, function ()
        return {}
      end))
      local _, port = srv:getsockname()
      local idle = assert(tide.tcp.connect("127.0.0.1", port))
      local timer = tide.call_later(100, print, "not reached")
      tide.call_later(0.02, tide.stop)
      tide.sleep(100)
    ]])
    assert.equal("", out)
    assert.equal("", err)
    assert.equal(0, code)
  end))

  it("stop in the tide command after the script ended ends the tasks left", async(function ()
    local out, err, code = run([[
      tide.spawn(function () while true do tide.sleep(0.01) end end)
      tide.spawn(function () tide.sleep(0.03) print("stopping") tide.stop() end)
    ]])
    assert.equal("stopping\n", out)
    assert.equal("", err)
    assert.equal(0, code)
  end))

  it("stop makes tide.run(fn) return nothing", async(function ()
    local out, err, code = run([[
      print("results", tide.run(function ()
        tide.call_later(0.01, tide.stop)
        tide.sleep(100)
        return "never"
      end))
    ]], true)
    assert.equal("results\n", out)
    assert.equal("", err)
    assert.equal(0, code)
  end))
end)
