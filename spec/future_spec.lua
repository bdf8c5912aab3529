-- future_spec.lua: tide.Future (runtime/future.c): setting, awaiting,
-- cancelling, on_done, result(); futures in the combinators; an error
-- nobody observed is reported; wrong use raises at the caller's line.

local P = tide.process
local LIMIT = 30

-- Run a script under the tide command: out, err, code.
local function run (script)
  local path = tmpfile(script)
  local out, err, code = P.exec({ TIDE, path }, { timeout = LIMIT })
  os.remove(path)
  assert(out, "the program did not end within " .. LIMIT .. " s")
  return out, err, code
end

local function closer (f)
  return setmetatable({}, { __close = f })
end

describe("tide.Future", function ()
  it("gives the values set_result set, to every task in await()", async(function ()
    local f = tide.Future()
    assert.equal("pending", f:state())
    local a = tide.spawn(function () return table.pack(f:await()) end)
    local b = tide.spawn(function () return table.pack(f:await()) end)
    tide.sleep(0.01)
    assert.is_false(f:done())
    f:set_result(1, nil, 3)
    assert.same({ n = 3, 1, nil, 3 }, a:await())
    assert.same({ n = 3, 1, nil, 3 }, b:await())
    assert.same({ true, 1, nil, 3 }, { f:result() })
    assert.equal(1, select("#", (f:await())))
    assert.is_true(f:done())
    assert.equal("done", f:state())
  end))

  it("wakes the tasks in await() in the order they began to wait", async(function ()
    local f, order = tide.Future(), {}
    local ts = {}
    for i = 1, 5 do
      ts[i] = tide.spawn(function () f:await() order[#order + 1] = i end)
    end
    tide.sleep(0)
    f:set_result()
    for i = 1, 5 do ts[i]:await() end
    assert.same({ 1, 2, 3, 4, 5 }, order)
  end))

  it("raises the error set_error set, and result() returns false, err", async(function ()
    local f = tide.Future()
    tide.call_later(0.01, function () f:set_error({ code = 7 }) end)
    local ok, e = pcall(f.await, f)
    assert.is_false(ok)
    assert.equal(7, e.code)
    local r, e2 = f:result()
    assert.is_false(r)
    assert.equal(e, e2)
    assert.equal("failed", f:state())
  end))

  it("is set from outside any task, from an on_done callback and before the loop runs", function ()
    local early = tide.Future()
    early:set_result("early")
    tide.run(function ()
      local f, g = tide.Future(), tide.Future()
      local t = tide.spawn(function () return "task" end)
      t:on_done(function () f:set_result("from on_done") end)
      f:on_done(function () g:set_result("chained") end)
      assert.equal("from on_done", f:await())
      assert.equal("chained", g:await())
      assert.equal("early", early:await())
    end)
  end)

  it("raises on a second set_result or set_error, naming it, at the caller's line", async(function ()
    local f = tide.Future()
    f:set_result(1)
    local ok, e = pcall(function () f:set_result(2) end)
    assert.is_false(ok)
    assert.matches("future_spec.lua:%d+: .*set_result: the future is already done", e)
    ok, e = pcall(function () f:set_error("x") end)
    assert.is_false(ok)
    assert.matches("future_spec.lua:%d+: .*set_error: the future is already done", e)
    local c = tide.Future()
    c:cancel()
    ok, e = pcall(function () c:set_result(1) end)
    assert.matches("set_result: the future is already cancelled", e)
    assert.equal(1, f:await())
  end))

  it("raises on wrong use: set_error(nil), result() while pending, await outside a task", async(function ()
    local f = tide.Future()
    local ok, e = pcall(function () f:set_error() end)
    assert.is_false(ok)
    assert.matches("future_spec.lua:%d+: bad argument #1 to 'set_error'", e)
    ok, e = pcall(function () return f:result() end)
    assert.matches("future_spec.lua:%d+: .*result: the future is not done", e)
    local done = tide.Future()           -- its callbacks run outside any task
    done:on_done(function () ok, e = pcall(function () return f:await() end) end)
    done:set_result()
    assert.matches("future_spec.lua:%d+: 'Future:await' must be called inside a task", e)
    ok, e = pcall(f.on_done, f, 42)
    assert.is_false(ok)
    assert.matches("function expected", e)
    ok, e = pcall(f.await, {})
    assert.is_false(ok)
    assert.matches("tide.Future expected", e)
  end))

  it("cancel([msg]) ends it with tide.Cancelled, once", async(function ()
    local f = tide.Future()
    local t = tide.spawn(function () return pcall(f.await, f) end)
    tide.sleep(0)
    assert.is_true(f:cancel("enough"))
    assert.is_false(f:cancel())
    local ok, e = t:await()
    assert.is_false(ok)
    assert.is_true(tide.iscancelled(e))
    assert.equal("cancelled: enough", tostring(e))
    assert.is_true(f:cancelled())
    assert.equal("cancelled", f:state())
    local r, e2 = f:result()
    assert.is_false(r)
    assert.equal(e, e2)
    local g = tide.Future()
    g:cancel()
    local _, e3 = g:result()
    assert.is_true(tide.iscancelled(e3))
    assert.equal(e3, select(2, g:result()))
  end))

  it("is cancelled with the task cancelled in its await(), whose <close> runs", async(function ()
    local f, closed = tide.Future(), false
    local t = tide.spawn(function ()
      local _ <close> = closer(function () closed = true end)
      return f:await()
    end)
    tide.sleep(0)
    t:cancel()
    local ok, e = pcall(t.await, t)
    assert.is_false(ok)
    assert.is_true(tide.iscancelled(e))
    assert.is_true(t:cancelled())
    assert.is_true(closed)
    assert.is_true(f:cancelled())
  end))

  it("goes on when a task in tide.shield(future) is cancelled", async(function ()
    local f = tide.Future()
    local t = tide.spawn(tide.shield, f)
    tide.sleep(0)
    t:cancel()
    assert.has_error(function () t:await() end)
    assert.is_false(f:done())
    f:set_result("still")
    assert.equal("still", tide.shield(f))
  end))

  it("runs on_done callbacks once, outside any task, and at once when done", async(function ()
    local f, calls = tide.Future(), {}
    f:on_done(function (x)
      calls[#calls + 1] = { x == f, tide.current() }
    end)
    -- (one that fails: below, in a program of its own, since the error
    -- makes the tide command exit 1)
    f:on_done(function () calls[#calls + 1] = "third" end)
    f:set_result(1)
    assert.same({ { true, nil }, "third" }, calls)
    f:on_done(function () calls[#calls + 1] = "late" end)
    assert.equal("late", calls[3])
  end))

  it("is cancelled by <close> when still pending", async(function ()
    local f = tide.Future()
    do
      local _ <close> = f
    end
    assert.is_true(f:cancelled())
    local g = tide.Future()
    g:set_result(1)
    do local _ <close> = g end
    assert.equal("done", g:state())
  end))

  it("waits through pcall, coroutines used as generators and metamethods", async(function ()
    local f = tide.Future()
    tide.call_later(0.01, function () f:set_result("v") end)
    local gen = coroutine.wrap(function () coroutine.yield(f:await()) end)
    assert.equal("v", gen())
    local obj = setmetatable({}, { __index = function () return f:await() end })
    assert.equal("v", obj.x)
  end))

  it("cannot wait inside table.sort", async(function ()
    local f = tide.Future()
    local ok, e = pcall(table.sort, { 1, 2 }, function () return f:await() end)
    assert.is_false(ok)
    assert.matches("cannot wait inside a C call", e)
  end))

  it("is reported, and the tide command exits 1, when its error is never observed", async(function ()
    local out, err, code = run([[
      local f = tide.Future()
      f:set_error("nobody looked")
      local g = tide.Future()
      g:set_error("looked at")
      g:on_done(function () end)
      local c = tide.Future()
      c:cancel()
    ]])
    assert.equal("", out)
    assert.matches("error in a future nobody awaited: nobody looked", err)
    assert.not_matches("looked at", err)
    assert.equal(1, code)
  end))

  it("raises in await() outside any task, done or not, as Task:await does", async(function ()
    local f, g = tide.Future(), tide.Future()
    g:set_result(1)
    local t = tide.spawn(function () return 1 end)
    t:await()
    local results = {}
    local cb = tide.Future()             -- its callbacks run outside any task
    cb:on_done(function ()
      for _, x in ipairs { f, g, t } do
        results[#results + 1] = table.pack(pcall(function () return x:await() end))
      end
    end)
    cb:set_result()
    for i, name in ipairs { "Future", "Future", "Task" } do
      assert.is_false(results[i][1])
      assert.matches("future_spec.lua:%d+: '" .. name .. ":await' must be called inside a task", results[i][2])
    end
    assert.same({ true, 1 }, { t:result() })
    assert.same({ true, 1 }, { g:result() })
  end))

  it("reports an on_done callback's error with its traceback, and the tide command exits 1", async(function ()
    local out, err, code = run([[
      local f = tide.Future()
      f:on_done(function () error("in the callback") end)
      f:on_done(function () print("the next one runs") end)
      f:set_result()
      local t = tide.spawn(function () end)
      t:on_done(function () error("in the task's callback") end)
      tide.sleep(0)
    ]])
    assert.equal("the next one runs\n", out)
    assert.matches("tide: error in an on_done callback: [^\n]*:2: in the callback\nstack traceback:", err)
    assert.matches("tide: error in an on_done callback: [^\n]*:6: in the task's callback\nstack traceback:", err)
    assert.equal(1, code)
  end))

  it("is not reported when awaited in the same turn", async(function ()
    local out, err, code = run([[
      local f = tide.Future()
      local t = tide.spawn(function () return pcall(f.await, f) end)
      tide.sleep(0)
      f:set_error("seen")
      print(t:await())
    ]])
    assert.equal("false\tseen\n", out)
    assert.equal("", err)
    assert.equal(0, code)
  end))
end)

describe("futures in the combinators", function ()
  local function later (s, ...)
    local f, args = tide.Future(), table.pack(...)
    tide.call_later(s, function () f:set_result(table.unpack(args, 1, args.n)) end)
    return f
  end
  local function failing (s, err)
    local f = tide.Future()
    tide.call_later(s, function () f:set_error(err) end)
    return f
  end

  it("gather takes futures beside tasks and functions", async(function ()
    assert.same({ 1, 2, 3 }, { tide.gather(later(0.01, 1),
      tide.spawn(function () return 2 end), function () return 3 end) })
  end))

  it("gather raises a future's error and cancels the other futures", async(function ()
    local slow = tide.Future()
    local ok, e = pcall(tide.gather, failing(0.01, "bad"), slow)
    assert.is_false(ok)
    assert.equal("bad", e)
    assert.is_true(slow:cancelled())
  end))

  it("settle gives each future's outcome", async(function ()
    local r = tide.settle(later(0, "a", "b"), failing(0, "no"))
    assert.same({ { ok = true, n = 2, "a", "b" }, { ok = false, err = "no" } }, r)
  end))

  it("race returns the first and cancels the other futures", async(function ()
    local slow = tide.Future()
    assert.equal("fast", tide.race(later(0.01, "fast"), slow))
    assert.is_true(slow:cancelled())
  end))

  it("timeout cancels a future that is too late", async(function ()
    local f = tide.Future()
    assert.same({ nil, "timeout" }, { tide.timeout(0.01, f) })
    assert.is_true(f:cancelled())
    assert.equal("in time", tide.timeout(1, later(0.01, "in time")))
  end))

  it("a task that lets out the tide.Cancelled of a future cancelled elsewhere "
     .. "ends cancelled, not failed, and is not reported", async(function ()
    local answer = tide.Future()
    local patient = tide.spawn(function () return answer:await() end)
    assert.same({ nil, "timeout" }, { tide.timeout(0.05, answer) })
    tide.sleep(0.01)
    assert.is_true(answer:cancelled())
    assert.equal("cancelled", patient:state())
    assert.is_true(patient:cancelled())
    local ok, err = pcall(patient.await, patient)
    assert.is_false(ok)
    assert.is_true(tide.iscancelled(err))
  end))

  it("a task cancelled in gather of futures cancels them", async(function ()
    local a, b = tide.Future(), tide.Future()
    local t = tide.spawn(tide.gather, a, b)
    tide.sleep(0)
    t:cancel()
    assert.has_error(function () t:await() end)
    assert.is_true(a:cancelled() and b:cancelled())
  end))
end)

describe("the C side of futures (tide.h)", function ()
  local sanitized = BUILD:match("asan") ~= nil

  it("lets a C library's libuv callback complete a Lua wait, and tide_stop end a run, leaking nothing", function ()
    local exe = os.tmpname()
    local out, code = sh(("env -u LD_PRELOAD cc -Wall -Wextra -Werror %s-Iruntime "
      .. "$(pkg-config --cflags lua5.4 libuv) -o %s spec/embed/future.c %s/libtide.a "
      .. "$(pkg-config --libs lua5.4 libuv) -lm")
      :format(sanitized and "-fsanitize=address,undefined " or "", exe, BUILD))
    assert.equal(0, code, out)
    if sanitized then
      out, code = sh("env -u LD_PRELOAD ASAN_OPTIONS=detect_leaks=1 " .. exe)
    else
      out, code = sh("valgrind -q --leak-check=full --errors-for-leak-kinds=all "
        .. "--error-exitcode=9 " .. exe)
    end
    os.remove(exe)
    assert.equal(0, code, out)
    assert.equal("hello,false boom,cancelled,g1\nok\n", out)
  end)
end)

describe("futures with an allocator that fails", function ()
  it("end each run in an error or the script's end, leaking nothing, the runtime usable again", function ()
    oomsweep("future", "spec/embed/future_oom.lua")
  end)
end)
