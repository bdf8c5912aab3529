-- tide_spec.lua: tasks: spawn, await, cancel, errors, and waiting through
-- pcall, metamethods, iterators and coroutines (runtime/sched.c, coro.c).

local function closer (f)
  return setmetatable({}, { __close = f })
end

describe("tide.spawn", function ()
  it("returns a task whose await gives the function's results", async(function ()
    local t = tide.spawn(function (a, b) tide.sleep(0.001) return a + b, "x", nil end, 2, 3)
    local a, b, c = t:await()
    assert.same({ 5, "x", nil }, { a, b, c })
    assert.is_true(t:done())
    assert.equal("done", t:state())
  end))

  it("starts the task only when the spawner waits", async(function ()
    local ran = false
    local t = tide.spawn(function () ran = true end)
    assert.is_false(ran)
    assert.equal("pending", t:state())
    tide.yield()
    assert.is_true(ran)
    t:await()
  end))

  it("keeps a task nobody references running to its end", async(function ()
    local done = tide.Event and nil
    local flag = false
    tide.spawn(function () tide.sleep(0.01); flag = true end)
    collectgarbage()
    collectgarbage()
    tide.sleep(0.03)
    assert.is_true(flag)
    assert.is_nil(done)
  end))

  it("raises on a non-function", function ()
    assert.has_error(function () tide.spawn(42) end)
  end)

  it("runs tasks in the order they were spawned", async(function ()
    local order = {}
    local ts = {}
    for i = 1, 5 do ts[i] = tide.spawn(function () order[#order + 1] = i end) end
    for i = 1, 5 do ts[i]:await() end
    assert.same({ 1, 2, 3, 4, 5 }, order)
  end))

  it("passes a thousand arguments", async(function ()
    local t = tide.spawn(function (...) return select("#", ...) end,
                         table.unpack({}, 1, 1000))
    assert.equal(1000, t:await())
  end))

  it("keeps going when a failed task's error object cannot be printed", async(function ()
    local bad = setmetatable({}, { __tostring = function () error("no") end })
    local t = tide.spawn(error, bad)
    local ok, err = pcall(t.await, t)
    assert.is_false(ok)
    assert.equal(bad, err)
    tide.sleep(0)                            -- the runtime still works
  end))

  it("looks like a main thread to coroutine.running and isyieldable", async(function ()
    local t = tide.spawn(function ()
      local co, ismain = coroutine.running()
      local inner = coroutine.wrap(function () return coroutine.isyieldable() end)()
      return type(co), ismain, coroutine.isyieldable(), inner
    end)
    assert.same({ "thread", true, false, true }, { t:await() })
  end))

  it("raises a catchable error when a task body yields itself", async(function ()
    local t = tide.spawn(function () return pcall(coroutine.yield) end)
    assert.same({ false, "attempt to yield from outside a coroutine" },
                { t:await() })
  end))

  it("runs ten thousand tasks at once", async(function ()
    local n, ts = 0, {}
    for i = 1, 10000 do
      ts[i] = tide.spawn(function () tide.sleep(0.01); n = n + 1 end)
    end
    for i = 1, #ts do ts[i]:await() end
    assert.equal(10000, n)
  end))
end)

describe("task:await", function ()
  it("raises the task's error, with its position", async(function ()
    local t = tide.spawn(function () error("boom") end)
    local ok, err = pcall(t.await, t)
    assert.is_false(ok)
    assert.matches("tide_spec.lua:%d+: boom", err)
    assert.equal("failed", t:state())
  end))

  it("raises error objects unchanged", async(function ()
    local e = { code = 7 }
    local t = tide.spawn(function () tide.sleep(0); error(e) end)
    local ok, err = pcall(t.await, t)
    assert.is_false(ok)
    assert.equal(e, err)
  end))

  it("can be called by several tasks and again after the end", async(function ()
    local t = tide.spawn(function () tide.sleep(0.01) return "v" end)
    local a = tide.spawn(function () return t:await() end)
    local b = tide.spawn(function () return t:await() end)
    assert.equal("v", a:await())
    assert.equal("v", b:await())
    assert.equal("v", t:await())
  end))

  it("raises when a task awaits itself", async(function ()
    local t
    t = tide.spawn(function () return t:await() end)
    local ok, err = pcall(t.await, t)
    assert.is_false(ok)
    assert.matches("cannot await itself", err)
  end))

  it("raises outside any task, naming the function", async(function ()
    local ok, err
    local t = tide.spawn(function () end)
    t:await()
    t:on_done(function ()                 -- callbacks run outside tasks
      ok, err = pcall(function () tide.sleep(0.01) end)
    end)
    assert.is_false(ok)
    assert.matches("sleep' must be called inside a task", err)
  end))

  it("cancels the awaited task when the awaiter is cancelled", async(function ()
    local inner = tide.spawn(function () tide.sleep(10) end)
    local outer = tide.spawn(function () inner:await() end)
    tide.sleep(0.001)
    outer:cancel()
    assert.has_error(function () outer:await() end)
    assert.has_error(function () inner:await() end)
    assert.is_true(inner:cancelled())
  end))
end)

describe("task:cancel", function ()
  it("raises Cancelled at the await point and runs <close> and pcall handlers", async(function ()
    local closed, caught = false, nil
    local t = tide.spawn(function ()
      local _ <close> = closer(function () closed = true end)
      local ok, err = pcall(tide.sleep, 10)
      caught = err
      if not ok then error(err, 0) end
    end)
    tide.sleep(0.001)
    assert.is_true(t:cancel())
    local ok, err = pcall(t.await, t)
    assert.is_false(ok)
    assert.is_true(tide.iscancelled(err))
    assert.is_true(tide.iscancelled(caught))
    assert.is_true(closed)
    assert.is_true(t:cancelled())
    assert.equal("cancelled", t:state())
    assert.equal("cancelled", tostring(err))
  end))

  it("runs the <close> variables of a failing task as that task", async(function ()
    local seen
    local t = tide.spawn(function ()
      local _ <close> = setmetatable({}, { __close = function ()
        seen = tide.current()
      end })
      error("boom")
    end)
    assert.has_error(function () t:await() end)
    assert.equal(t, seen)
  end))

  it("carries the message given to cancel", async(function ()
    local t = tide.spawn(tide.sleep, 10)
    tide.yield()
    t:cancel("shutting down")
    local _, err = pcall(t.await, t)
    assert.equal("cancelled: shutting down", tostring(err))
    assert.equal("shutting down", err.message)
  end))

  it("keeps raising at every later await once the task swallowed it", async(function ()
    local rounds = 0
    local t = tide.spawn(function ()
      while true do
        rounds = rounds + 1
        pcall(tide.sleep, 10)          -- a retry loop that swallows errors
        tide.sleep(0.001)              -- outside pcall: Cancelled ends the task
      end
    end)
    tide.yield()
    t:cancel()
    assert.has_error(function () t:await() end)
    assert.equal(1, rounds)
    assert.is_true(t:cancelled())
  end))

  it("stops a task that has not started: its function never runs", async(function ()
    local ran = false
    local t = tide.spawn(function () ran = true end)
    t:cancel()
    assert.has_error(function () t:await() end)
    assert.is_false(ran)
    assert.is_true(t:cancelled())
  end))

  it("returns false for a task that has ended", async(function ()
    local t = tide.spawn(function () return 1 end)
    t:await()
    assert.is_false(t:cancel())
    assert.is_false(t:cancelled())
  end))

  it("lets a task cancel itself at its next wait", async(function ()
    local t = tide.spawn(function ()
      tide.current():cancel()
      local x = 1 + 1                   -- runs: no wait yet
      tide.sleep(0)
      return x
    end)
    assert.has_error(function () t:await() end)
    assert.is_true(t:cancelled())
  end))

  it("delivers a value already handed over before the cancel", async(function ()
    -- t is woken with a result and cancelled before it runs: it still sees
    -- the result, and the cancel takes effect at its next wait.
    local got
    local t = tide.spawn(function ()
      got = tide.spawn(function () return "item" end):await()
      tide.sleep(10)
    end)
    tide.yield()                        -- t waits for the inner task
    tide.yield()                        -- inner ends, t becomes ready
    t:cancel()
    assert.has_error(function () t:await() end)
    assert.equal("item", got)
  end))

  it("is done by a task in a <close> variable when the scope ends", async(function ()
    local t
    do
      local c <close> = tide.spawn(tide.sleep, 10)
      t = c
      tide.yield()
    end
    assert.has_error(function () t:await() end)
    assert.is_true(t:cancelled())
  end))

  it("raises a non-string message as wrong use", async(function ()
    local t = tide.spawn(tide.sleep, 1)
    assert.has_error(function () t:cancel({}) end)
    t:cancel()
    pcall(t.await, t)
  end))
end)

describe("task:result", function ()
  it("gives true and the results, or false and the error", async(function ()
    local a = tide.spawn(function () return 1, 2 end)
    local b = tide.spawn(function () error("bad", 0) end)
    tide.sleep(0.001)
    assert.same({ true, 1, 2 }, { a:result() })
    assert.same({ false, "bad" }, { b:result() })
  end))

  it("raises for a task that has not ended", async(function ()
    local t = tide.spawn(tide.sleep, 0.01)
    assert.has_error(function () t:result() end, nil)
    t:await()
  end))
end)

describe("task:on_done", function ()
  it("calls back with the task once it ends, or now if it has", async(function ()
    local seen = {}
    local t = tide.spawn(function () tide.sleep(0.001) return 1 end)
    t:on_done(function (x) seen[#seen + 1] = x end)
    assert.same({}, seen)
    t:await()
    assert.same({ t }, seen)
    t:on_done(function (x) seen[#seen + 1] = x end)
    assert.same({ t, t }, seen)
  end))
end)

describe("tide.current", function ()
  it("is the running task, and nil outside tasks", async(function ()
    local me
    local t = tide.spawn(function () me = tide.current() end)
    t:await()
    assert.equal(t, me)
    assert.is_not_nil(tide.current())
  end))
end)

describe("awaiting", function ()
  it("works inside pcall and xpcall", async(function ()
    local ok, v = pcall(function () tide.sleep(0.001) return "p" end)
    assert.same({ true, "p" }, { ok, v })
    local ok2, v2 = xpcall(function () tide.sleep(0.001) error("x", 0) end,
                           function (m) return "handled " .. m end)
    assert.same({ false, "handled x" }, { ok2, v2 })
  end))

  it("works inside metamethods and iterators", async(function ()
    local mt = { __index = function (_, k) tide.sleep(0.001) return k .. "!" end,
                 __add = function () tide.sleep(0.001) return 42 end }
    local o = setmetatable({}, mt)
    assert.equal("a!", o.a)
    assert.equal(42, o + o)
    local function iter (_, i)
      tide.sleep(0.001)
      if i < 3 then return i + 1 end
    end
    local seen = {}
    for i in iter, nil, 0 do seen[#seen + 1] = i end
    assert.same({ 1, 2, 3 }, seen)
  end))

  it("passes through coroutine.wrap generators", async(function ()
    local gen = coroutine.wrap(function ()
      for i = 1, 3 do
        tide.sleep(0.001)
        coroutine.yield(i)
      end
    end)
    assert.same({ 1, 2, 3 }, { gen(), gen(), gen() })
  end))

  it("passes through coroutine.resume, nested two deep", async(function ()
    local inner = coroutine.create(function (a)
      local got = tide.spawn(function () tide.sleep(0.001) return a * 2 end):await()
      coroutine.yield(got)
      return "end"
    end)
    local outer = coroutine.create(function ()
      local _, v = coroutine.resume(inner, 21)
      coroutine.yield(v)
      local _, w = coroutine.resume(inner)
      return w
    end)
    assert.same({ true, 42 }, { coroutine.resume(outer) })
    assert.same({ true, "end" }, { coroutine.resume(outer) })
  end))

  it("raises Cancelled inside a generator when the task is cancelled", async(function ()
    local closed = false
    local t = tide.spawn(function ()
      local gen = coroutine.wrap(function ()
        local _ <close> = closer(function () closed = true end)
        tide.sleep(10)
      end)
      gen()
    end)
    tide.sleep(0.001)
    t:cancel()
    assert.has_error(function () t:await() end)
    assert.is_true(t:cancelled())
    assert.is_true(closed)
  end))

  it("keeps plain coroutine behaviour outside tasks", function ()
    local co = coroutine.wrap(function (a) local b = coroutine.yield(a + 1) return b * 2 end)
    assert.equal(2, co(1))
    assert.equal(10, co(5))
    local ok, err = pcall(coroutine.wrap(function () error("e") end))
    assert.is_false(ok)
    assert.matches("e$", err)
  end)

  it("raises a clear error inside table.sort", async(function ()
    local ok, err = pcall(table.sort, { 3, 1, 2 }, function (a, b)
      tide.sleep(0.001)
      return a < b
    end)
    assert.is_false(ok)
    assert.matches("cannot wait inside a C call", err)
  end))

  it("raises before starting anything when tide.run cannot wait", async(function ()
    local ran = false
    local ok, err = pcall(table.sort, { 3, 1, 2 }, function (a, b)
      tide.run(function () ran = true error("never runs", 0) end)
      return a < b
    end)
    assert.is_false(ok)
    assert.matches("'tide.run' cannot wait inside a C call", err, 1, true)
    tide.sleep(0.01)
    assert.is_false(ran)
  end))

  it("raises a clear error in a coroutine resumed inside table.sort", async(function ()
    local ok, err = pcall(table.sort, { 3, 1, 2 }, function (a, b)
      local co = coroutine.wrap(function () tide.sleep(0.001) return a < b end)
      return co()
    end)
    assert.is_false(ok)
    assert.matches("cannot wait in a coroutine resumed inside a C call", err)
  end))

  it("ends a task with an error when its body calls coroutine.yield", async(function ()
    local t = tide.spawn(function () coroutine.yield(1) end)
    local ok, err = pcall(t.await, t)
    assert.is_false(ok)
    assert.matches("attempt to yield from outside a coroutine", err)
  end))
end)

describe("tide.run", function ()
  it("returns the function's results", async(function ()
    assert.same({ 1, 2 }, { tide.run(function () tide.sleep(0) return 1, 2 end) })
  end))

  it("raises the function's error", async(function ()
    assert.has_error(function () tide.run(function () error("oops", 0) end) end, "oops")
  end))

  it("raises on a non-function", function ()
    assert.has_error(function () tide.run(1) end)
  end)
end)
