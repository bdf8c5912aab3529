-- gather_spec.lua: gather, settle, race, timeout, shield, group
-- (runtime/lua/tide.lua).

local function after (s, v)
  return function () tide.sleep(s) return v end
end

local function fails (s, msg)
  return function () tide.sleep(s) error(msg, 0) end
end

describe("tide.gather", function ()
  it("returns the first result of each, in argument order", async(function ()
    local a, b, c = tide.gather(after(0.02, "a"), after(0.01, "b"), after(0, "c"))
    assert.same({ "a", "b", "c" }, { a, b, c })
  end))

  it("takes tasks as well as functions, and keeps nil results in place", async(function ()
    local t = tide.spawn(after(0.01, 1))
    local r = table.pack(tide.gather(t, after(0, nil), after(0.005, 3)))
    assert.equal(3, r.n)
    assert.same({ 1, nil, 3 }, { r[1], r[2], r[3] })
  end))

  it("takes no time at all for no arguments", async(function ()
    assert.equal(0, select("#", tide.gather()))
  end))

  it("raises the first error and cancels the others", async(function ()
    local slow = tide.spawn(after(10, "never"))
    local t0 = tide.now()
    local ok, err = pcall(tide.gather, slow, fails(0.01, "first"), fails(0.02, "second"))
    assert.is_false(ok)
    assert.equal("first", err)
    assert.is_true(tide.now() - t0 < 5)
    assert.has_error(function () slow:await() end)
    assert.is_true(slow:cancelled())
  end))

  it("cancels its children when the gathering task is cancelled", async(function ()
    local child = tide.spawn(after(10))
    local g = tide.spawn(tide.gather, child)
    tide.sleep(0.001)
    g:cancel()
    assert.has_error(function () g:await() end)
    assert.has_error(function () child:await() end)
    assert.is_true(child:cancelled())
  end))

  it("raises on an argument that is neither a function nor a task", async(function ()
    local ok, err = pcall(tide.gather, after(0, 1), 42)
    assert.is_false(ok)
    assert.matches("bad argument #2 to 'tide.gather'", err)
  end))
end)

describe("tide.settle", function ()
  it("waits for all and reports each outcome in order", async(function ()
    local r = tide.settle(after(0.01, "x"), fails(0, "bad"), function () return 1, 2 end)
    assert.same({ ok = true, n = 1, "x" }, r[1])
    assert.same({ ok = false, err = "bad" }, r[2])
    assert.same({ ok = true, n = 2, 1, 2 }, r[3])
  end))

  it("reports a cancelled task as an error", async(function ()
    local t = tide.spawn(after(10))
    tide.call_soon(function () t:cancel() end)
    local r = tide.settle(t)
    assert.is_false(r[1].ok)
    assert.is_true(tide.iscancelled(r[1].err))
  end))
end)

describe("tide.race", function ()
  it("returns the results of the first to end and cancels the rest", async(function ()
    local slow = tide.spawn(after(10, "slow"))
    local a, b = tide.race(slow, function () tide.sleep(0.01) return "fast", 2 end)
    assert.same({ "fast", 2 }, { a, b })
    assert.has_error(function () slow:await() end)
    assert.is_true(slow:cancelled())
  end))

  it("raises the error of the first to end", async(function ()
    assert.has_error(function () tide.race(after(1), fails(0.01, "lost")) end, "lost")
  end))

  it("raises with nothing to race", async(function ()
    assert.has_error(function () tide.race() end)
  end))
end)

describe("tide.timeout", function ()
  it("returns the results when the work ends in time", async(function ()
    assert.same({ "ok", 2 }, { tide.timeout(1, function () tide.sleep(0.01) return "ok", 2 end) })
  end))

  it("returns nil, 'timeout' and cancels the work when time is up", async(function ()
    local closed = false
    local r = table.pack(tide.timeout(0.02, function ()
      local _ <close> = setmetatable({}, { __close = function () closed = true end })
      tide.sleep(10)
    end))
    assert.same({ n = 2, nil, "timeout" }, r)
    assert.is_true(closed)            -- the work has ended on return
  end))

  it("passes arguments to the function and takes a task", async(function ()
    assert.equal(5, tide.timeout(1, function (a, b) return a + b end, 2, 3))
    local t = tide.spawn(after(10))
    assert.same({ nil, "timeout" }, { tide.timeout(0.01, t) })
    assert.is_true(t:cancelled())
  end))

  it("raises the work's error", async(function ()
    assert.has_error(function () tide.timeout(1, fails(0, "inner")) end, "inner")
  end))

  it("cancels the work when the caller is cancelled", async(function ()
    local work = tide.spawn(after(10))
    local caller = tide.spawn(tide.timeout, 5, work)
    tide.sleep(0.001)
    caller:cancel()
    assert.has_error(function () caller:await() end)
    assert.is_true(work:cancelled())
  end))

  it("raises on a bad duration", async(function ()
    assert.has_error(function () tide.timeout(-1, after(0)) end)
    assert.has_error(function () tide.timeout(1, 3) end)
  end))
end)

describe("tide.shield", function ()
  it("lets the task go on when the awaiting task is cancelled", async(function ()
    local inner = tide.spawn(after(0.02, "kept"))
    local outer = tide.spawn(tide.shield, inner)
    tide.sleep(0.001)
    outer:cancel()
    assert.has_error(function () outer:await() end)
    assert.equal("kept", inner:await())
  end))

  it("returns the results of a function it spawns", async(function ()
    assert.equal(9, tide.shield(function (x) return x * 3 end, 3))
  end))
end)

describe("tide.group", function ()
  it("returns the block's results once every child has ended", async(function ()
    local done = {}
    local r = tide.group(function (g)
      for i = 1, 3 do g:spawn(function () tide.sleep(0.01 * i); done[#done + 1] = i end) end
      return "block"
    end)
    assert.equal("block", r)
    assert.same({ 1, 2, 3 }, done)
  end))

  it("cancels the siblings and the block on a child's error, then raises it", async(function ()
    local sibling, blockcancelled
    local ok, err = pcall(tide.group, function (g)
      sibling = g:spawn(after(10))
      g:spawn(fails(0.01, "child failed"))
      local ok2, e = pcall(tide.sleep, 10)
      blockcancelled = not ok2 and tide.iscancelled(e)
      error(e, 0)
    end)
    assert.is_false(ok)
    assert.equal("child failed", err)
    assert.is_true(sibling:cancelled())
    assert.is_true(blockcancelled)
  end))

  it("cancels the children on an error in the block", async(function ()
    local child
    local ok, err = pcall(tide.group, function (g)
      child = g:spawn(after(10))
      error("block failed", 0)
    end)
    assert.same({ false, "block failed" }, { ok, err })
    assert.is_true(child:cancelled())
  end))

  it("cancels everything and waits for it when its task is cancelled", async(function ()
    local child, closed = nil, false
    local t = tide.spawn(tide.group, function (g)
      child = g:spawn(function ()
        local _ <close> = setmetatable({}, { __close = function () closed = true end })
        tide.sleep(10)
      end)
      tide.sleep(10)
    end)
    tide.sleep(0.001)
    t:cancel()
    assert.has_error(function () t:await() end)
    assert.is_true(t:cancelled())
    assert.is_true(child:done() and closed)
  end))

  it("refuses to spawn after it has ended", async(function ()
    local saved
    tide.group(function (g) saved = g end)
    assert.has_error(function () saved:spawn(after(0)) end)
  end))
end)

describe("the combinators outside any task", function ()
  it("raise, naming the call, and start nothing", async(function ()
    local t = tide.spawn(function () end)
    t:await()
    local results, before = {}, nil
    t:on_done(function ()                 -- callbacks run outside tasks
      before = #tide.tasks()
      for _, name in ipairs({ "gather", "settle", "race", "shield", "group" }) do
        results[name] = select(2, pcall(tide[name], function () end))
      end
      results.timeout = select(2, pcall(tide.timeout, 1, function () end))
    end)
    for _, name in ipairs({ "gather", "settle", "race", "timeout", "shield", "group" }) do
      assert.matches("'tide%." .. name .. "' must be called inside a task", results[name])
    end
    assert.equal(before, #tide.tasks())
  end))
end)
