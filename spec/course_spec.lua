-- course_spec.lua: the course's examples in scripts/, each run as a user
-- would: two tasks with gather, the famine, the producer and consumer (under
-- the tide command, and run forever under stock Lua until tide.stop()), the
-- window of four tokens over eight jobs, ping-pong with Streams, and the
-- Future bridge.

local P = tide.process
local LIMIT = 60

local function tidecmd (...)
  local out, err, code = P.exec({ TIDE, ... }, { timeout = LIMIT })
  assert(out, "the script did not end within " .. LIMIT .. " s")
  return out, err, code
end

describe("the course's examples in scripts/", function ()
  it("two_coroutines.lua: two tasks under gather take as long as the slower", async(function ()
    local out, err, code = tidecmd("scripts/two_coroutines.lua", "0.05")
    assert.equal(0, code, err)
    local lines = {}
    for name, what in out:gmatch("s\t(%a+)\t(%a+)") do lines[#lines + 1] = name .. " " .. what end
    assert.same({ "first starts", "second starts", "first ends", "second ends" }, lines)
    assert.matches("first done\tsecond done\n$", out)
  end))

  it("famine.lua: the blocker starves the ticker, and TIDE_DEBUG names it", async(function ()
    local out, err, code = P.exec({ "env", "TIDE_DEBUG=1", TIDE, "scripts/famine.lua" },
                                  { timeout = LIMIT })
    assert.equal(0, code, err)
    assert.matches("blocker: done", out)
    assert.matches("famine.lua:%d+", err)
    local gaps = 0
    local last
    for at in out:gmatch("tick %d at (%d+%.%d) s") do
      at = tonumber(at)
      if last and at - last > 0.5 then gaps = gaps + 1 end
      last = at
    end
    assert.equal(1, gaps, out)
  end))

  it("producer_consumer.lua: the consumer gets each tick in turn", async(function ()
    local out, err, code = tidecmd("scripts/producer_consumer.lua", "2")
    assert.equal(0, code, err)
    assert.matches("got tick1\n.*got tick2\n$", out)
  end))

  it("run_forever.lua: stock Lua runs the loop until tide.stop(), cleanup included", async(function ()
    local cmd = ("exec env LUA_CPATH='%s/?.so;;' LD_PRELOAD='%s' lua5.4 scripts/run_forever.lua 3 0.01")
      :format(BUILD, os.getenv("TIDE_PRELOAD") or "")
    local out, err, code = P.exec(cmd, { timeout = LIMIT })
    assert.equal(0, code, err)
    assert.equal("got tick1\ngot tick2\ngot tick3\nconsumer: cancelled, cleaning up\nstopped\n", out)
  end))

  it("run_forever.lua: and until Ctrl-C", async(function ()
    local p = assert(P.spawn { "env", "LUA_CPATH=" .. BUILD .. "/?.so;;",
      "LD_PRELOAD=" .. (os.getenv("TIDE_PRELOAD") or ""), "lua5.4",
      "scripts/run_forever.lua", stdout = "pipe" })
    assert.equal("got tick1\n", tide.timeout(LIMIT, p.stdout.read_until, p.stdout, "\n"))
    p:kill("SIGINT")
    local out = tide.timeout(LIMIT, readall, p.stdout)
    assert.equal("consumer: cancelled, cleaning up\nstopped by SIGINT\n", out)
    assert.same({ 0 }, { p:wait() })
  end))

  it("window.lua: at most four jobs at a time, 5 units in all", async(function ()
    local out, err, code = tidecmd("scripts/window.lua", "0.05")
    assert.equal(0, code, err)
    local totals = {}
    for t in out:gmatch("total (%d+%.%d) s") do totals[#totals + 1] = tonumber(t) end
    assert.equal(2, #totals, out)
    for _, t in ipairs(totals) do assert.is_true(t >= 0.2 and t < 0.5, out) end
    for row in out:gmatch("\n%d+%-%d+ +([ .#]+)") do
      local _, running = row:gsub("##", "")
      assert.is_true(running <= 4, out)
    end
  end))

  it("pingpong_streams.lua: each ping gets its pong", async(function ()
    local out, err, code = tidecmd("scripts/pingpong_streams.lua", "3")
    assert.equal(0, code, err)
    assert.equal("client sent ping 1, got pong 1\nclient sent ping 2, got pong 2\n"
      .. "client sent ping 3, got pong 3\n", out)
  end))

  it("future.lua: a callback's future wakes every reader", async(function ()
    local out, err, code = tidecmd("scripts/future.lua")
    assert.equal(0, code, err)
    assert.equal("reader 1 got 42\nreader 2 got 42\nreader 3 got 42\n"
      .. "1 done, 1 pending after 0.1 s\nnever:\tcancelled\n", out)
  end))
end)
