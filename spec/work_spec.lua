-- work_spec.lua: tide.work (bindings/work.c): Lua functions run in a state
-- of their own on the thread pool, with copied arguments and results.

-- Busy for s seconds of wall time (in the worker: no tide there).
local function spin (s)
  local t = os.time() + 0.0
  local c = os.clock()
  local n = 0
  while os.clock() - c < s and os.time() - t < s + 2 do n = n + 1 end
  return n
end

-- A new temporary directory, removed at the end of the test.
local function tmpdir ()
  local d = assert(tide.fs.mkdtemp())
  finally(function () os.execute("rm -rf '" .. d .. "'") end)
  return d
end

describe("tide.work", function ()
  it("returns the results of a function run in another Lua state", async(function ()
    local a, b, c, d = tide.work(function (x, y)
      return x + y, x .. y, nil, tide == nil
    end, 20, 22)
    assert.same({ 42, "2022", nil, true }, { a, b, c, d })
    assert.equal(0, select("#", tide.work(function () end)))
  end))

  it("copies nil, booleans, integers, floats, strings and nested tables both ways", async(function ()
    local input = {
      1, 2.5, "three", true, false, { nested = { deeper = { 1, 2, 3 } } },
      [10] = "sparse", key = "value", [2.5] = "float key", [true] = "bool key",
      bin = "\0\1\255", big = math.maxinteger, tiny = math.mininteger,
      neg = -0.5, huge = math.huge,
    }
    local out, t1, t2 = tide.work(function (t, n, s)
      return t, math.type(n), math.type(s)
    end, input, 3, 3.0)
    assert.same(input, out)
    assert.equal("integer", t1)
    assert.equal("float", t2)
    assert.equal(math.maxinteger, out.big)
    assert.not_equal(input, out)                      -- a copy
  end))

  it("passes nils among the arguments and results", async(function ()
    local r = table.pack(tide.work(function (...)
      return select("#", ...), ...
    end, nil, 2, nil))
    assert.same({ n = 4, 3, nil, 2, nil }, r)
  end))

  it("copies arguments: the function's changes do not reach the caller", async(function ()
    local t = { n = 1 }
    local r = tide.work(function (x) x.n = 2 return x end, t)
    assert.equal(1, t.n)
    assert.equal(2, r.n)
  end))

  it("raises the function's error with its message", async(function ()
    local ok, err = pcall(tide.work, function () error("boom") end)
    assert.is_false(ok)
    assert.matches("work_spec.lua:%d+: boom$", err)
    ok, err = pcall(tide.work, function () error({ code = 7 }) end)
    assert.is_false(ok)
    assert.same({ code = 7 }, err)
    ok, err = pcall(tide.work, function () local x = nil; return x.y end)
    assert.is_false(ok)
    assert.matches("attempt to index a nil value", err)
  end))

  it("gives the function its own globals and standard libraries", async(function ()
    _G.work_spec_global = "caller's"
    local g, s, got = tide.work(function ()
      local before = work_spec_global             -- luacheck: ignore
      work_spec_global = "worker's"               -- luacheck: ignore
      return before, string.rep("ab", 2), type(io.open) == "function"
    end)
    assert.same({ nil, "abab", true }, { g, s, got })
    assert.equal("caller's", _G.work_spec_global)
    _G.work_spec_global = nil
  end))

  it("raises, naming tide.work, for what cannot be copied", async(function ()
    local function check (msg, fn, ...)
      local ok, err = pcall(tide.work, fn, ...)
      assert.is_false(ok)
      assert.matches("tide.work", err)
      assert.matches(msg, err, 1, true)
    end
    local id = function (...) return ... end
    check("cannot copy a function (argument #3)", id, 1, print)
    check("cannot copy a userdata (argument #2)", id, io.stdout)
    check("cannot copy a thread (argument #2)", id, coroutine.create(id))
    local cyc = {}
    cyc.self = cyc
    check("a table that contains itself cannot be copied (argument #2)", id, cyc)
    check("cannot copy a function (result #2)", function () return 1, print end)
    local up = 1
    check("uses 'up', a local variable of an enclosing function", function () return up end)
    local ok, err = pcall(tide.work, print)
    assert.is_false(ok)
    assert.equal("bad argument #1 to 'tide.work' (Lua function expected, got a C function)", err)
    assert.has_error(function () tide.work(42) end)
  end))

  it("copies shared subtables as separate copies, and deep ones up to a limit", async(function ()
    local shared = { 1 }
    local r = tide.work(function (t) return t end, { a = shared, b = shared })
    assert.same({ 1 }, r.a)
    assert.same({ 1 }, r.b)
    local deep = {}
    for _ = 1, 200 do deep = { deep } end
    local ok, err = pcall(tide.work, function (t) return t end, deep)
    assert.is_false(ok)
    assert.matches("tables nested too deeply", err)
  end))

  it("raises outside any task, naming it", async(function ()
    local ok, err
    local t = tide.spawn(function () end)
    t:await()
    t:on_done(function ()                 -- callbacks run outside tasks
      ok, err = pcall(tide.work, function () end)
    end)
    assert.is_false(ok)
    assert.matches("'tide.work' must be called inside a task", err, 1, true)
  end))

  it("leaves the loop free: a ticker keeps its rhythm while work computes", async(function ()
    local ticks, gaps, last = 0, 0, tide.now()
    local ticker = tide.spawn(function ()
      while true do
        tide.sleep(0.01)
        local now = tide.now()
        gaps = math.max(gaps, now - last)
        last, ticks = now, ticks + 1
      end
    end)
    local n = tide.work(spin, 0.5)
    ticker:cancel()
    pcall(ticker.await, ticker)
    assert.is_true(n > 0)
    assert.is_true(ticks >= 10, "only " .. ticks .. " ticks in 0.5 s")
    assert.is_true(gaps < 0.25, "a gap of " .. gaps .. " s between ticks")
  end))

  it("runs several calls at once on the pool", async(function ()
    local r = { tide.gather(
      function () return tide.work(function (x) return x * 2 end, 1) end,
      function () return tide.work(function (x) return x * 2 end, 2) end,
      function () return tide.work(function (x) return x * 2 end, 3) end) }
    assert.same({ 2, 4, 6 }, r)
    -- Two calls that can only end together: each opens one end of a FIFO,
    -- which blocks until the other end is opened.
    local fifo = tmpdir() .. "/fifo"
    assert(os.execute("mkfifo '" .. fifo .. "'"))
    local function meet (path, mode)
      local f = io.open(path, mode)
      f:close()
      return mode
    end
    local pair = tide.spawn(tide.gather,
      function () return tide.work(meet, fifo, "r") end,
      function () return tide.work(meet, fifo, "w") end)
    local ok = tide.timeout(5, pair.await, pair)
    if not ok then                   -- unblock the one that waits, then fail
      local f = io.open(fifo, "r+")
      tide.sleep(0.1)
      f:close()
      pair:cancel()
    end
    assert.equal("r", ok, "the two calls did not run at the same time")
  end))

  it("has UV_THREADPOOL_SIZE threads", function ()
    -- A child starts 8 calls that each leave a mark and wait at a FIFO of
    -- their own, counts the marks (the calls running at once), then lets
    -- each marked one go, until all have run. No tide.fs call: they would
    -- queue behind the waiting calls.
    local src = [[
local d = assert(io.popen("mktemp -d")):read("l")
local tasks = {}
for i = 1, 8 do
  assert(os.execute("mkfifo " .. d .. "/" .. i))
  tasks[i] = tide.spawn(tide.work, function (path)
    io.open(path .. ".mark", "w"):close()
    local f = io.open(path, "r")
    f:read("a")
    f:close()
  end, d .. "/" .. i)
end
local done, ndone = {}, 0
local function marks ()
  local n = 0
  for i = 1, 8 do
    local m = io.open(d .. "/" .. i .. ".mark")
    if m then m:close() n = n + 1 end
  end
  return n
end
local running, since, start = -1, tide.now(), tide.now()
repeat                               -- until the count has held for 0.3 s
  tide.sleep(0.05)
  local n = marks()
  if n ~= running then running, since = n, tide.now() end
until (running > 0 and tide.now() - since >= 0.3) or tide.now() - start > 20
for _ = 1, 500 do
  for i = 1, 8 do
    local m = not done[i] and io.open(d .. "/" .. i .. ".mark")
    if m then
      m:close()
      io.open(d .. "/" .. i, "w"):close()      -- its reader is there: EOF
      done[i], ndone = true, ndone + 1
    end
  end
  if ndone == 8 then break end
  tide.sleep(0.05)
end
for i = 1, 8 do tasks[i]:await() end
os.execute("rm -rf " .. d)
print(running)
]]
    local path = tmpfile(src)
    finally(function () os.remove(path) end)
    assert.equal("2\n", sh(("UV_THREADPOOL_SIZE=2 timeout 60 %s %s"):format(TIDE, path)))
    assert.equal("5\n", sh(("UV_THREADPOOL_SIZE=5 timeout 60 %s %s"):format(TIDE, path)))
  end)

  it("stops a call cancelled while it runs, even one that catches errors", async(function ()
    local d = tmpdir()
    local t = tide.spawn(tide.work, function (path)
      io.open(path, "w"):close()
      while true do pcall(function () while true do end end) end
    end, d .. "/started")
    while not io.open(d .. "/started") do tide.sleep(0.005) end
    local started = tide.now()
    t:cancel()
    local ok, err = pcall(t.await, t)
    assert.is_false(ok)
    assert.is_true(tide.iscancelled(err))
    assert.is_true(t:cancelled())
    assert.is_true(tide.now() - started < 0.2)        -- not waiting for it
    holdpool(d, finally)()         -- its thread is free again: every one is
  end))

  it("stops a cancelled call in the coroutines that run in it", async(function ()
    local function loop_in (how)
      return tide.work(function (kind)
        if kind == "wrap" then
          coroutine.wrap(function () while true do end end)()
        else
          local co = coroutine.create(function () while true do pcall(error) end end)
          while true do coroutine.resume(co) end
        end
      end, how)
    end
    for _, how in ipairs({ "wrap", "resume", "wrap", "resume", "wrap" }) do
      assert.same({ nil, "timeout" }, { tide.timeout(0.05, loop_in, how) })
    end
    holdpool(tmpdir(), finally)()  -- every thread is free again
  end))

  it("keeps coroutine.resume and coroutine.wrap working as Lua's", async(function ()
    local a, b, c, d, e = tide.work(function ()
      local gen = coroutine.wrap(function (x) local y = coroutine.yield(x + 1) return y * 2 end)
      local co = coroutine.create(function (x) coroutine.yield(x) error("boom") end)
      local r = { gen(1), gen(5) }
      local ok1, v = coroutine.resume(co, 7)
      local ok2, msg = coroutine.resume(co)
      local ok3, werr = pcall(coroutine.wrap(function () error("inner") end))
      return r, { ok1, v }, { ok2, msg }, { ok3, werr }, select("#", coroutine.resume(co))
    end)
    assert.same({ 2, 10 }, a)
    assert.same({ true, 7 }, b)
    assert.is_false(c[1])
    assert.matches("boom$", c[2])
    assert.is_false(d[1])
    assert.matches("inner$", d[2])
    assert.equal(2, e)                             -- false, "cannot resume dead coroutine"
    local ok, err = pcall(tide.work, function () return coroutine.resume(42) end)
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'resume' %(coroutine expected", err)
  end))

  it("leaves a cancelled call blocked in a C function to end on its thread", async(function ()
    local d = tmpdir()
    local fifo = d .. "/fifo"
    assert(os.execute("mkfifo '" .. fifo .. "'"))
    local t = tide.spawn(tide.work, function (path)
      io.open(path .. ".mark", "w"):close()
      io.open(path, "r"):close()                   -- blocks until a writer opens
      return "done"
    end, fifo)
    while not io.open(fifo .. ".mark") do tide.sleep(0.005) end
    t:cancel()
    assert.has_error(function () t:await() end)
    assert.is_true(t:cancelled())
    local w = io.open(fifo, "w")                   -- lets it end: it frees only
    w:close()
    holdpool(d, finally)()
  end))

  it("drops a cancelled call before it starts", async(function ()
    local d = tmpdir()
    local release = holdpool(d, finally)
    local t = tide.spawn(tide.work, function (path)
      io.open(path, "w"):close()
    end, d .. "/ran")
    tide.sleep(0.01)
    assert.equal("waiting", t:state())             -- queued behind the holders
    t:cancel()
    assert.has_error(function () t:await() end)
    assert.is_true(t:cancelled())
    release()
    assert.equal(2, tide.work(function () return 2 end))
    assert.is_nil(io.open(d .. "/ran"))              -- it never ran
  end))

  it("copies megabyte strings both ways", async(function ()
    local big = ("x"):rep(1000000)
    assert.equal(1000000, tide.work(function (s) return #s end, big))
    assert.equal(big, tide.work(function (s) return s end, big))
  end))
end)
