-- timer_spec.lua: sleep, yield, now, hrtime, call_soon, call_later
-- (runtime/timer.c, runtime/lua/tide.lua).

describe("tide.sleep", function ()
  it("suspends only the calling task", async(function ()
    local order = {}
    local a = tide.spawn(function () tide.sleep(0.02); order[#order + 1] = "a" end)
    local b = tide.spawn(function () order[#order + 1] = "b" end)
    a:await(); b:await()
    assert.same({ "b", "a" }, order)
  end))

  it("waits at least the time asked, fractions of a second included", async(function ()
    local t0 = tide.hrtime()
    tide.sleep(0.015)
    local waited = (tide.hrtime() - t0) / 1e9
    assert.is_true(waited >= 0.014, "waited " .. waited)
    assert.is_true(waited < 2, "waited " .. waited)   -- generous: shared machine
  end))

  it("wakes sleepers in deadline order, equal deadlines in arrival order", async(function ()
    local order = {}
    local ts = {}
    for i, d in ipairs({ 0.03, 0.01, 0.02, 0.01, 0.01 }) do
      ts[i] = tide.spawn(function () tide.sleep(d); order[#order + 1] = i end)
    end
    for _, t in ipairs(ts) do t:await() end
    assert.same({ 2, 4, 5, 3, 1 }, order)
  end))

  it("with 0 lets the other ready tasks run first", async(function ()
    local order = {}
    local t = tide.spawn(function () order[#order + 1] = "other" end)
    tide.sleep(0)
    order[#order + 1] = "me"
    t:await()
    assert.same({ "other", "me" }, order)
  end))

  it("raises on a negative, NaN or non-number duration", async(function ()
    assert.has_error(function () tide.sleep(-1) end)
    assert.has_error(function () tide.sleep(0 / 0) end)
    assert.has_error(function () tide.sleep("soon") end)
    local ok, err = pcall(tide.sleep, -1)
    assert.is_false(ok)
    assert.matches("negative duration", err)
    assert.matches("duration is NaN", select(2, pcall(tide.sleep, 0 / 0)))
  end))

  it("with math.huge waits until cancelled", async(function ()
    local t = tide.spawn(tide.sleep, math.huge)
    tide.sleep(0.01)
    assert.is_false(t:done())
    t:cancel()
    assert.has_error(function () t:await() end)
    assert.is_true(t:cancelled())
  end))

  it("is cancelled without waking later, and its timer is removed", async(function ()
    local woke = false
    local t = tide.spawn(function () tide.sleep(0.02); woke = true end)
    tide.sleep(0.001)
    t:cancel()
    assert.has_error(function () t:await() end)
    tide.sleep(0.04)
    assert.is_false(woke)
  end))

  it("keeps order after many cancellations in the middle of the heap", async(function ()
    local order, ts = {}, {}
    for i = 1, 50 do
      ts[i] = tide.spawn(function () tide.sleep(0.001 * i); order[#order + 1] = i end)
    end
    tide.yield()
    for i = 2, 50, 2 do ts[i]:cancel() end
    for i = 1, 50 do pcall(ts[i].await, ts[i]) end
    local expect = {}
    for i = 1, 50, 2 do expect[#expect + 1] = i end
    assert.same(expect, order)
  end))
end)

describe("tide.yield", function ()
  it("lets the other ready tasks run and comes back", async(function ()
    local n = 0
    local t = tide.spawn(function () for _ = 1, 3 do n = n + 1; tide.yield() end end)
    tide.yield()
    assert.equal(1, n)
    t:await()
    assert.equal(3, n)
  end))

  it("is a cancellation point", async(function ()
    local t = tide.spawn(function () while true do tide.yield() end end)
    tide.yield()
    t:cancel()
    assert.has_error(function () t:await() end)
    assert.is_true(t:cancelled())
  end))
end)

describe("tide.now and tide.hrtime", function ()
  it("advance with time: now in seconds, hrtime in nanoseconds", async(function ()
    local n0, h0 = tide.now(), tide.hrtime()
    assert.equal("number", math.type(n0) and "number")
    assert.equal("integer", math.type(h0))
    tide.sleep(0.02)
    assert.is_true(tide.now() - n0 >= 0.015)
    assert.is_true(tide.hrtime() - h0 >= 15e6)
  end))

  it("now reads the clock while a task blocks the loop", async(function ()
    local a = tide.now()
    os.execute("sleep 0.2")
    assert.is_true(tide.now() - a >= 0.15)
    local b = tide.now()
    local x = 0
    while tide.now() - b < 0.05 do x = x + 1 end  -- ends: the clock moves
    assert.is_true(x > 0)
  end))
end)

-- A duration past what the timer can represent means "until cancelled",
-- never "at once": each call that takes one is still waiting 50 ms later.
describe("huge durations", function ()
  local huge = { 2^40, 2^53, 1e18, 1e300, math.maxinteger }

  local function pending (f, ...)
    local t = tide.spawn(f, ...)
    tide.sleep(0.05)
    local state = t:state()
    t:cancel()
    pcall(t.await, t)
    return state
  end

  it("tide.sleep waits until cancelled", async(function ()
    for _, s in ipairs(huge) do
      assert.equal("waiting", pending(tide.sleep, s), tostring(s))
    end
  end))

  it("tide.timeout never times out early", async(function ()
    for _, s in ipairs(huge) do
      assert.equal("ok", tide.timeout(s, function () tide.sleep(0.02) return "ok" end))
      assert.equal("waiting", pending(tide.timeout, s, tide.sleep, math.huge))
    end
  end))

  it("tide.call_later does not call early", async(function ()
    for _, s in ipairs(huge) do
      local ran = false
      local h = tide.call_later(s, function () ran = true end)
      tide.sleep(0.05)
      assert.is_false(ran, tostring(s))
      h:cancel()
      pcall(h.await, h)
    end
  end))

  it("the timeout options of exec and tcp.connect do not fire early", async(function ()
    for _, s in ipairs(huge) do
      assert.equal("x\n", tide.process.exec("sleep 0.05; echo x", { timeout = s }))
      local server <close> = assert(tide.tcp.listen("127.0.0.1", 0))
      local _, port = server:getsockname()
      local c <close> = assert(tide.tcp.connect("127.0.0.1", port, { timeout = s }))
    end
  end))
end)

describe("tide.call_soon", function ()
  it("runs the function with its arguments in a task", async(function ()
    local got
    local t = tide.call_soon(function (a, b) got = a .. b end, "x", "y")
    t:await()
    assert.equal("xy", got)
  end))

  it("can be cancelled before it runs", async(function ()
    local ran = false
    local h = tide.call_soon(function () ran = true end)
    h:cancel()
    tide.sleep(0.001)
    assert.is_false(ran)
    assert.is_true(h:cancelled())
  end))
end)

describe("tide.call_later", function ()
  it("runs the function after the delay", async(function ()
    local t0, at = tide.now(), nil
    local h = tide.call_later(0.02, function (v) at = tide.now(); return v end, 7)
    assert.equal(7, h:await())
    assert.is_true(at - t0 >= 0.015)
  end))

  it("returns a handle whose cancel stops the call", async(function ()
    local ran = false
    local h = tide.call_later(0.01, function () ran = true end)
    h:cancel()
    tide.sleep(0.03)
    assert.is_false(ran)
  end))

  it("raises on a bad delay or function", function ()
    assert.has_error(function () tide.call_later(-1, print) end)
    assert.has_error(function () tide.call_later(1, 2) end)
  end)
end)
