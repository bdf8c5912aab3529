-- interrupt_spec.lua: SIGINT and SIGTERM while a callback run outside any
-- task computes without waiting (runtime/interrupt.c, tide__outside): an
-- on_done callback of a task or a future, a Protocol's data_received. The
-- program ends as it does for Ctrl-C: 130 (143) from the tide command,
-- "interrupted!" from tide.run in stock Lua (the end by SIGTERM there);
-- the callback's error is reported as any callback error. Each program
-- runs as a child with a deadline: one that hangs is killed and fails its
-- test.

local LIMIT = 20                   -- seconds a child may take

-- The callbacks: each prints "ready", then computes without waiting.
local BUSY = [[print("ready") io.stdout:flush() while true do end]]
local cases = {
  { name = "an on_done callback", what = "an on_done callback",
    body = ([[
      tide.call_later(0.01, function () end):on_done(function () %s end)
      tide.sleep(30)
    ]]):format(BUSY) },
  { name = "a Future's on_done callback", what = "an on_done callback",
    body = ([[
      local f = tide.Future()
      f:on_done(function () %s end)
      tide.call_later(0.01, function () f:set_result(1) end)
      tide.sleep(30)
    ]]):format(BUSY) },
  { name = "a Protocol's data_received",
    what = "a Protocol callback %(data_received%)",
    body = ([[
      local srv <close> = assert(tide.tcp.create_server("127.0.0.1", 0,
        function () return { data_received = function () %s end } end))
      local c <close> = assert(tide.tcp.connect("127.0.0.1",
        select(2, srv:getsockname())))
      assert(c:write("x"))
      tide.sleep(30)
    ]]):format(BUSY) },
}

-- The tide command on the case's body, as its main chunk.
local function starttide (case)
  return startready({ TIDE }, case.body, LIMIT)
end

-- Stock lua5.4 with tide.so, the body run by tide.run.
local function startlua (case)
  local env = { LUA_CPATH = BUILD .. "/?.so;;",
                LD_PRELOAD = os.getenv("TIDE_PRELOAD") or "" }
  local argv = { "env" }
  for k, v in pairs(env) do argv[#argv + 1] = k .. "=" .. v end
  argv[#argv + 1] = "lua5.4"
  return startready(argv, "local tide = require 'tide'\n" ..
    "print(pcall(tide.run, function ()\n" .. case.body .. "\nend))\n", LIMIT)
end

for _, case in ipairs(cases) do
  describe("a busy callback outside any task, " .. case.name, function ()
    it("SIGINT ends the tide command with 130, the callback's error reported",
       async(function ()
      local p <close> = starttide(case)
      tide.sleep(0.1)
      p:kill("SIGINT")
      local out, code = finish(p, LIMIT)
      assert.equal(130, code)
      assert.matches("^tide: error in " .. case.what .. ": interrupted!\n",
                     out)
    end))

    it("SIGTERM ends the tide command with 143", async(function ()
      local p <close> = starttide(case)
      tide.sleep(0.1)
      p:kill("SIGTERM")
      assert.same({ "", 143 }, { finish(p, LIMIT) })
    end))

    it("a second SIGINT ends the tide command at once", async(function ()
      local p <close> = starttide(case)
      p:kill("SIGINT")               -- before the hook can fire
      tide.sleep(0.01)
      p:kill("SIGINT")
      assert.same({ "", 130 }, { finish(p, LIMIT) })
    end))

    it("SIGINT makes tide.run in stock Lua raise 'interrupted!'",
       async(function ()
      local p <close> = startlua(case)
      tide.sleep(0.1)
      p:kill("SIGINT")
      local out, code = finish(p, LIMIT)
      assert.equal(0, code)
      assert.matches("^tide: error in " .. case.what .. ": interrupted!\n", out)
      assert.matches("\nfalse\tinterrupted!\n$", out)
    end))

    it("SIGTERM ends stock Lua by that signal", async(function ()
      local p <close> = startlua(case)
      tide.sleep(0.1)
      p:kill("SIGTERM")
      local out, code = finish(p, LIMIT)
      assert.same({ "", 143 }, { out, code })
    end))
  end)
end
