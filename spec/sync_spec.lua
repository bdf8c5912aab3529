-- sync_spec.lua: Queue, LifoQueue, PriorityQueue (runtime/queue.c), Lock
-- (runtime/lock.c), Event, Condition, Semaphore, BoundedSemaphore, Barrier
-- (runtime/lua/sync.lua).

-- Let the other ready tasks run (each until its next wait).
local function pass (n)
  for _ = 1, n or 3 do tide.yield() end
end

-- Run fn(...) outside any task (in an on_done callback); its pcall results.
local function outside (fn, ...)
  local args, r = table.pack(...), nil
  local t = tide.spawn(function () end)
  t:on_done(function () r = table.pack(pcall(fn, table.unpack(args, 1, args.n))) end)
  t:await()
  return table.unpack(r, 1, r.n)
end

-- The error a task ended with (it must have failed).
local function failure (t)
  local ok, err = pcall(t.await, t)
  assert.is_false(ok)
  return err
end

local function cancelled (t)
  return tide.iscancelled(failure(t))
end

-- The error message fn(...) raises.
local function errorof (fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok)
  return tostring(err)
end

describe("tide.Queue", function ()
  it("passes items first in, first out", async(function ()
    local q = tide.Queue()
    for i = 1, 5 do q:put(i) end
    local got = {}
    for i = 1, 5 do got[i] = q:get() end
    assert.same({ 1, 2, 3, 4, 5 }, got)
  end))

  it("returns the item alone from a get that waited", async(function ()
    for _, q in ipairs { tide.Queue(), tide.LifoQueue(), tide.PriorityQueue() } do
      tide.spawn(function () tide.sleep(0.001) q:put("x") end)
      assert.same({ n = 1, "x" }, table.pack(q:get()))
    end
  end))

  it("reports its size, emptiness and fullness", async(function ()
    local q = tide.Queue(2)
    assert.same({ 0, true, false, 2 }, { q:size(), q:empty(), q:full(), q:maxsize() })
    q:put("a")
    q:put("b")
    assert.same({ 2, false, true }, { q:size(), q:empty(), q:full() })
    assert.matches("tide.Queue %(2/2%)", tostring(q))
  end))

  it("is unbounded with maxsize 0 or none", async(function ()
    for _, q in ipairs { tide.Queue(), tide.Queue(0) } do
      for i = 1, 1000 do assert.is_true(q:put_nowait(i)) end
      assert.is_false(q:full())
      assert.equal(0, q:maxsize())
      assert.equal(1000, q:size())
    end
  end))

  it("returns nil, 'full' and nil, 'empty' from the nowait forms", async(function ()
    local q = tide.Queue(1)
    assert.is_true(q:put_nowait("x"))
    assert.same({ nil, "full" }, { q:put_nowait("y") })
    assert.equal("x", q:get_nowait())
    assert.same({ nil, "empty" }, { q:get_nowait() })
  end))

  it("makes get wait for a put", async(function ()
    local q = tide.Queue()
    local getter = tide.spawn(function () return q:get() end)
    pass()
    assert.equal("waiting", getter:state())
    q:put("item")
    assert.equal("item", getter:await())
  end))

  it("makes put wait while the queue is full", async(function ()
    local q = tide.Queue(1)
    q:put(1)
    local putter = tide.spawn(function () q:put(2) return "put" end)
    pass()
    assert.equal("waiting", putter:state())
    assert.equal(1, q:get())
    assert.equal("put", putter:await())
    assert.equal(2, q:get())
  end))

  it("moves a waiting putter's item in when get_nowait makes room", async(function ()
    local q = tide.Queue(1)
    q:put(1)
    local putter = tide.spawn(function () q:put(2) end)
    pass()
    assert.equal(1, q:get_nowait())
    assert.equal(1, q:size())
    putter:await()
    assert.equal(2, q:get_nowait())
  end))

  it("serves waiting getters first come, first served", async(function ()
    local q, got = tide.Queue(), {}
    local ts = {}
    for i = 1, 3 do
      ts[i] = tide.spawn(function ()
        local v = q:get()
        got[#got + 1] = i .. ":" .. v
      end)
      pass(1)
    end
    for _, v in ipairs { "a", "b", "c" } do q:put(v) end
    for i = 1, 3 do ts[i]:await() end
    assert.same({ "1:a", "2:b", "3:c" }, got)
  end))

  it("serves waiting putters first come, first served", async(function ()
    local q = tide.Queue(1)
    q:put(0)
    local ts = {}
    for i = 1, 3 do
      ts[i] = tide.spawn(function () q:put(i) end)
      pass(1)
    end
    local got = {}
    for i = 1, 4 do got[i] = q:get() end
    for i = 1, 3 do ts[i]:await() end
    assert.same({ 0, 1, 2, 3 }, got)
  end))

  it("lets no new getter take an item handed to a waiting one", async(function ()
    local q = tide.Queue()
    local getter = tide.spawn(function () return q:get() end)
    pass()
    q:put("mine")
    assert.same({ nil, "empty" }, { q:get_nowait() })
    assert.equal(0, q:size())
    assert.equal("mine", getter:await())
  end))

  it("keeps order and loses nothing between a producer and a consumer", async(function ()
    for _, size in ipairs { 1, 2, 7, 100 } do
      local q, n = tide.Queue(size), 5000
      local consumer = tide.spawn(function ()
        local prev, count = 0, 0
        for _ = 1, n do
          local v = q:get()
          assert(v == prev + 1, "out of order")
          prev, count = v, count + 1
        end
        return count
      end)
      for i = 1, n do q:put(i) end
      assert.equal(n, consumer:await())
      assert.is_true(q:empty())
    end
  end))

  it("keeps each producer's order for each consumer", async(function ()
    local q, got = tide.Queue(3), { {}, {} }
    local producers, consumers = {}, {}
    for p = 1, 3 do
      producers[p] = tide.spawn(function ()
        for i = 1, 200 do
          q:put(p * 1000 + i)
          if i % 7 == 0 then tide.yield() end
        end
      end)
    end
    for c = 1, 2 do
      consumers[c] = tide.spawn(function ()
        for v in q:iter() do
          got[c][#got[c] + 1] = v
          if v % 5 == 0 then tide.yield() end
        end
      end)
    end
    for p = 1, 3 do producers[p]:await() end
    q:close()
    for c = 1, 2 do consumers[c]:await() end
    assert.equal(600, #got[1] + #got[2])
    assert.is_true(#got[1] > 0 and #got[2] > 0)
    for c = 1, 2 do
      local last = {}
      for _, v in ipairs(got[c]) do
        local p = v // 1000
        assert.is_true((last[p] or 0) < v)
        last[p] = v
      end
    end
  end))

  it("works from a coroutine.wrap generator inside a task", async(function ()
    local q = tide.Queue()
    local gen = coroutine.wrap(function ()
      for _ = 1, 3 do coroutine.yield(q:get()) end
    end)
    local producer = tide.spawn(function ()
      for i = 1, 3 do q:put(i) tide.sleep(0.001) end
    end)
    assert.same({ 1, 2, 3 }, { gen(), gen(), gen() })
    producer:await()
  end))

  it("keeps first in, first out as its items wrap around and it grows", async(function ()
    local q, got, want = tide.Queue(), {}, {}
    for i = 1, 3 do q:put(i) end
    got[1], got[2] = q:get(), q:get()
    for i = 4, 40 do q:put(i) end        -- grows twice with items wrapped
    while not q:empty() do got[#got + 1] = q:get() end
    for i = 1, 40 do want[i] = i end
    assert.same(want, got)
    local b = tide.Queue(3)
    for i = 1, 100 do
      b:put(i)
      if i > 2 then assert.equal(i - 2, b:get()) end
    end
    assert.same({ 99, 100 }, { b:get(), b:get() })
  end))

  it("moves in the item of a putter waiting inside a coroutine.wrap generator", async(function ()
    local q = tide.Queue(1)
    q:put("first")
    local putter = tide.spawn(function ()
      local gen = coroutine.wrap(function ()
        q:put("second")
        coroutine.yield("put")
      end)
      return gen()
    end)
    pass()
    assert.equal("waiting", putter:state())
    assert.equal("first", q:get())
    assert.equal("put", putter:await())
    assert.equal("second", q:get())
  end))

  describe("task_done and join", function ()
    it("makes join wait until every item is marked done", async(function ()
      local q = tide.Queue()
      for i = 1, 3 do q:put(i) end
      local joined = false
      local joiner = tide.spawn(function () q:join() joined = true end)
      for _ = 1, 3 do
        q:get()
        pass()
        assert.is_false(joined)
        q:task_done()
      end
      joiner:await()
      assert.is_true(joined)
    end))

    it("returns at once from join when nothing is unfinished", async(function ()
      local q = tide.Queue()
      q:join()
      q:put(1)
      q:get()
      q:task_done()
      q:join()
    end))

    it("counts items handed to a waiting getter and moved in from a putter", async(function ()
      local q = tide.Queue(1)
      local getter = tide.spawn(function () return q:get() end)
      pass()
      q:put("handed")                  -- straight to the getter
      q:put("stored")
      local putter = tide.spawn(function () q:put("moved") end)
      pass()
      assert.equal("handed", getter:await())
      assert.equal("stored", q:get())  -- moves "moved" in
      putter:await()
      assert.equal("moved", q:get())
      for _ = 1, 3 do q:task_done() end
      q:join()
      assert.matches("called more times than items were put", errorof(q.task_done, q))
    end))

    it("raises on more task_done calls than items", async(function ()
      local q = tide.Queue()
      assert.equal("Queue:task_done: called more times than items were put",
                   errorof(q.task_done, q):gsub("^.-:%d+: ", ""))
    end))

    it("lets a cancelled join go", async(function ()
      local q = tide.Queue()
      q:put(1)
      local joiner = tide.spawn(q.join, q)
      pass()
      joiner:cancel()
      assert.is_true(cancelled(joiner))
      q:get()
      q:task_done()
      q:join()
    end))
  end)

  describe("close", function ()
    it("makes put raise, and getters drain what is left then get nil, 'closed'", async(function ()
      local q = tide.Queue()
      q:put(1)
      q:put(2)
      q:close()
      assert.matches("Queue:put: the queue is closed", errorof(q.put, q, 3))
      assert.matches("Queue:put_nowait: the queue is closed", errorof(q.put_nowait, q, 3))
      assert.is_true(q:is_closed())
      assert.equal(1, q:get())
      assert.equal(2, q:get_nowait())
      assert.same({ nil, "closed" }, { q:get() })
      assert.same({ nil, "closed" }, { q:get_nowait() })
      q:close()                          -- twice is harmless
    end))

    it("wakes waiting getters with nil, 'closed'", async(function ()
      local q = tide.Queue()
      local ts = {}
      for i = 1, 2 do ts[i] = tide.spawn(function () return table.pack(q:get()) end) end
      pass()
      q:close()
      for i = 1, 2 do assert.same({ n = 2, nil, "closed" }, ts[i]:await()) end
    end))

    it("makes waiting putters raise, their items not put", async(function ()
      local q = tide.Queue(1)
      q:put("in")
      local putter = tide.spawn(function () q:put("out") end)
      pass()
      q:close()
      assert.matches("the queue is closed", tostring(failure(putter)))
      assert.equal("in", q:get())
      assert.same({ nil, "closed" }, { q:get() })
    end))

    it("ends a for loop over iter", async(function ()
      local q = tide.Queue(2)
      tide.spawn(function ()
        for i = 1, 5 do q:put(i) end
        q:close()
      end)
      local got = {}
      for v in q:iter() do got[#got + 1] = v end
      assert.same({ 1, 2, 3, 4, 5 }, got)
    end))
  end)

  describe("cancellation", function ()
    it("gives the item of a getter cancelled while waiting to the next getter", async(function ()
      local q = tide.Queue()
      local a = tide.spawn(function () return q:get() end)
      local b = tide.spawn(function () return q:get() end)
      pass()
      a:cancel()
      q:put("x")
      assert.equal("x", b:await())
      assert.is_true(cancelled(a))
    end))

    it("keeps the item in the queue when the cancelled getter was the only one", async(function ()
      local q = tide.Queue()
      local a = tide.spawn(function () return q:get() end)
      pass()
      a:cancel()
      q:put("x")
      assert.equal(1, q:size())
      assert.is_true(cancelled(a))
      assert.equal("x", q:get())
    end))

    it("delivers an item handed to a getter cancelled before it ran", async(function ()
      local q = tide.Queue()
      local a = tide.spawn(function () return q:get() end)
      pass()
      q:put("x")                         -- handed to a
      a:cancel()
      assert.equal("x", a:await())
      assert.equal(0, q:size())
    end))

    it("keeps the item when tide.timeout cancels the getter", async(function ()
      local q = tide.Queue()
      assert.same({ nil, "timeout" }, { tide.timeout(0.01, q.get, q) })
      q:put("x")
      assert.equal(1, q:size())
      assert.equal("x", q:get())
    end))

    it("does not store the item of a putter cancelled while waiting", async(function ()
      local q = tide.Queue(1)
      q:put(1)
      local p = tide.spawn(function () q:put(2) end)
      local r = tide.spawn(function () q:put(3) end)
      pass()
      p:cancel()
      assert.is_true(cancelled(p))
      assert.equal(1, q:get())
      r:await()
      assert.equal(3, q:get())
      assert.is_true(q:empty())
    end))

    it("lets a putter cancelled after its item went in return normally", async(function ()
      local q = tide.Queue(1)
      q:put(1)
      local p = tide.spawn(function () q:put(2) return "done" end)
      pass()
      assert.equal(1, q:get())           -- moves 2 in, wakes p
      p:cancel()
      assert.equal("done", p:await())
      assert.equal(2, q:get())
    end))

    it("does not store the item when tide.timeout cancels the putter", async(function ()
      local q = tide.Queue(1)
      q:put(1)
      assert.same({ nil, "timeout" }, { tide.timeout(0.01, q.put, q, 2) })
      assert.equal(1, q:get())
      assert.is_true(q:empty())
      q:put(3)
      assert.equal(3, q:get())
    end))

    it("does not pile up entries for getters that time out", async(function ()
      local q = tide.Queue()
      for _ = 1, 50 do tide.timeout(0.001, q.get, q) end
      local getter = tide.spawn(function () return q:get() end)
      pass()
      q:put("x")
      assert.equal("x", getter:await())
      assert.is_true(q:empty())
    end))

    it("raises Cancelled in a getter cancelled before it waits", async(function ()
      local q = tide.Queue()
      local a = tide.spawn(function () tide.sleep(0.001) return q:get() end)
      tide.sleep(0.005)
      a:cancel()
      q:put("x")
      assert.is_true(cancelled(a))
      assert.equal("x", q:get())
    end))
  end)

  describe("wrong use", function ()
    it("raises on a bad maxsize", async(function ()
      assert.matches("bad argument #1 to 'tide.Queue' %(non%-negative integer expected%)",
                     errorof(tide.Queue, -1))
      assert.matches("bad argument #1 to 'tide.Queue'", errorof(tide.Queue, 1.5))
      assert.matches("bad argument #1 to 'tide.LifoQueue'", errorof(tide.LifoQueue, "x"))
      assert.matches("bad argument #1 to 'tide.PriorityQueue'", errorof(tide.PriorityQueue, -2))
    end))

    it("raises on a nil item", async(function ()
      local q = tide.Queue()
      assert.matches("bad argument #2 to 'Queue:put' %(value expected%)", errorof(q.put, q, nil))
      assert.matches("bad argument #2 to 'Queue:put_nowait'", errorof(q.put_nowait, q))
    end))

    it("raises when it must wait outside any task", async(function ()
      local q = tide.Queue(1)
      local ok, err = outside(q.get, q)
      assert.is_false(ok)
      assert.matches("'Queue:get' must be called inside a task", err)
      assert.is_true(outside(q.put, q, 1))      -- no wait: fine anywhere
      ok, err = outside(q.put, q, 2)
      assert.is_false(ok)
      assert.matches("'Queue:put' must be called inside a task", err)
      assert.equal(1, q:get_nowait())
    end))
  end)
end)

describe("tide.LifoQueue", function ()
  it("passes items last in, first out", async(function ()
    local q = tide.LifoQueue()
    for i = 1, 4 do q:put(i) end
    assert.same({ 4, 3, 2, 1 }, { q:get(), q:get(), q:get(), q:get() })
  end))

  it("waits while full and empty, like Queue", async(function ()
    local q = tide.LifoQueue(2)
    local getter = tide.spawn(function () return q:get() end)
    pass()
    q:put("first")
    assert.equal("first", getter:await())
    q:put(1)
    q:put(2)
    local putter = tide.spawn(function () q:put(3) end)
    pass()
    assert.equal("waiting", putter:state())
    assert.equal(2, q:get())
    putter:await()
    assert.same({ 3, 1 }, { q:get(), q:get() })
    assert.same({ nil, "empty" }, { q:get_nowait() })
  end))

  it("drains then reports closed", async(function ()
    local q = tide.LifoQueue()
    q:put(1)
    q:put(2)
    q:close()
    local got = {}
    for v in q:iter() do got[#got + 1] = v end
    assert.same({ 2, 1 }, got)
  end))
end)

describe("tide.PriorityQueue", function ()
  it("gives the least item first", async(function ()
    local q = tide.PriorityQueue()
    for _, v in ipairs { 5, 3, 8, 1, 9, 2, 7 } do q:put(v) end
    local got = {}
    while not q:empty() do got[#got + 1] = q:get() end
    assert.same({ 1, 2, 3, 5, 7, 8, 9 }, got)
  end))

  it("orders by the priority given to put, stable for equal priorities", async(function ()
    local q = tide.PriorityQueue()
    local items = {}
    for i = 1, 40 do
      local p = (i * 7) % 4
      items[#items + 1] = { p = p, i = i }
      q:put("item" .. i, p)
    end
    table.sort(items, function (a, b) return a.p < b.p or (a.p == b.p and a.i < b.i) end)
    for _, it in ipairs(items) do assert.equal("item" .. it.i, q:get()) end
  end))

  it("orders by a comparator, stable for equal ones", async(function ()
    local q = tide.PriorityQueue(function (a, b) return a.rank > b.rank end)
    local a1, b, a2, c = { rank = 1 }, { rank = 2 }, { rank = 1 }, { rank = 3 }
    for _, v in ipairs { a1, b, a2, c } do q:put(v) end
    assert.same({ c, b, a1, a2 }, { q:get(), q:get(), q:get(), q:get() })
    local bounded = tide.PriorityQueue(2, function (x, y) return x > y end)
    bounded:put(1)
    bounded:put(5)
    assert.same({ nil, "full" }, { bounded:put_nowait(3) })
    assert.equal(5, bounded:get())
  end))

  it("keeps a waiting putter's priority", async(function ()
    local q = tide.PriorityQueue(2)
    q:put("b", 2)
    q:put("c", 3)
    local putter = tide.spawn(function () q:put("a", 1) end)
    pass()
    assert.equal("b", q:get())         -- moves "a" in
    putter:await()
    assert.same({ "a", "c" }, { q:get(), q:get() })
  end))

  it("hands an item to a waiting getter", async(function ()
    local q = tide.PriorityQueue()
    local getter = tide.spawn(function () return q:get() end)
    pass()
    q:put("x", 10)
    assert.equal("x", getter:await())
  end))

  it("keeps its order when a priority cannot be compared", async(function ()
    local q = tide.PriorityQueue()
    q:put(2)
    q:put(1)
    assert.has_error(function () q:put({}) end)
    assert.equal(2, q:size())
    assert.same({ 1, 2 }, { q:get(), q:get() })
    local full = tide.PriorityQueue(1)
    full:put(1)
    assert.has_error(function () full:put("one") end)   -- before it waits
    q:put(3)
    for _ = 1, 3 do q:task_done() end  -- 2, 1 and 3: the refused one not counted
    assert.has_error(function () q:task_done() end)
  end))

  it("is left as it was when the comparator raises", async(function ()
    local boom = false
    local q = tide.PriorityQueue(3, function (a, b)
      if boom then error("boom") end
      return a < b
    end)
    for _, v in ipairs { 5, 3, 8 } do q:put(v) end
    local putter = tide.spawn(function () q:put(1) end)
    pass()
    boom = true
    assert.matches("boom", errorof(q.get, q))
    assert.matches("boom", errorof(q.get_nowait, q))
    assert.equal(3, q:size())
    assert.equal("waiting", putter:state())
    boom = false
    assert.equal(3, q:get())           -- moves 1 in
    putter:await()
    assert.same({ 1, 5, 8 }, { q:get(), q:get(), q:get() })
  end))

  it("raises on a comparator that is not a function", async(function ()
    assert.matches("bad argument #2 to 'tide.PriorityQueue' %(function expected, got string%)",
                   errorof(tide.PriorityQueue, 3, "x"))
  end))
end)

describe("tide.Lock", function ()
  it("is held by one task at a time", async(function ()
    local lock, inside, most = tide.Lock(), 0, 0
    local ts = {}
    for i = 1, 5 do
      ts[i] = tide.spawn(function ()
        lock:acquire()
        inside = inside + 1
        most = math.max(most, inside)
        tide.sleep(0.001)
        inside = inside - 1
        lock:release()
      end)
    end
    for i = 1, 5 do ts[i]:await() end
    assert.equal(1, most)
    assert.is_false(lock:locked())
  end))

  it("reports whether it is locked", async(function ()
    local lock = tide.Lock()
    assert.is_false(lock:locked())
    assert.is_true(lock:acquire())
    assert.is_true(lock:locked())
    assert.equal("tide.Lock (locked)", tostring(lock))
    lock:release()
    assert.is_false(lock:locked())
  end))

  it("serves waiters first come, first served", async(function ()
    local lock, order = tide.Lock(), {}
    lock:acquire()
    local ts = {}
    for i = 1, 4 do
      ts[i] = tide.spawn(function ()
        lock:acquire()
        order[#order + 1] = i
        lock:release()
      end)
      pass(1)
    end
    lock:release()
    for i = 1, 4 do ts[i]:await() end
    assert.same({ 1, 2, 3, 4 }, order)
  end))

  it("hands the lock to the first waiter: the releaser cannot take it back at once", async(function ()
    local lock, order = tide.Lock(), {}
    lock:acquire()
    local waiter = tide.spawn(function ()
      lock:acquire()
      order[#order + 1] = "waiter"
      lock:release()
    end)
    pass()
    lock:release()
    lock:acquire()                       -- waits behind the waiter
    order[#order + 1] = "releaser"
    lock:release()
    waiter:await()
    assert.same({ "waiter", "releaser" }, order)
  end))

  it("releases through a <close> guard, on error too", async(function ()
    local lock = tide.Lock()
    do
      local _ <close> = lock:hold()
      assert.is_true(lock:locked())
    end
    assert.is_false(lock:locked())
    assert.has_error(function ()
      local _ <close> = lock:hold()
      error("boom")
    end)
    assert.is_false(lock:locked())
  end))

  it("is released by the guard of a task that ends with an error", async(function ()
    local lock = tide.Lock()
    local t = tide.spawn(function ()
      local _ <close> = lock:hold()
      tide.yield()
      error("boom")
    end)
    assert.matches("boom", tostring(failure(t)))
    assert.is_false(lock:locked())
    assert.is_true(lock:acquire())
    lock:release()
  end))

  it("stays held by a task that ended holding it", async(function ()
    local lock = tide.Lock()
    tide.spawn(function () lock:acquire() end):await()
    assert.is_true(lock:locked())
    local waiter = tide.spawn(function () return lock:acquire() end)
    pass()
    assert.equal("waiting", waiter:state())
    assert.matches("Lock:release: lock held by another task", errorof(lock.release, lock))
    assert.is_true(outside(lock.release, lock))   -- for the holder
    assert.is_true(waiter:await())
    assert.is_true(lock:locked())                 -- the waiter ended holding it
  end))

  describe("cancellation", function ()
    it("does not give the lock to an acquirer cancelled while waiting", async(function ()
      local lock = tide.Lock()
      lock:acquire()
      local a = tide.spawn(function () lock:acquire() end)
      local b = tide.spawn(function () lock:acquire() return "got it" end)
      pass()
      a:cancel()
      assert.is_true(cancelled(a))
      lock:release()
      assert.equal("got it", b:await())
      assert.is_true(lock:locked())    -- b holds it (and ended)
    end))

    it("is left free when the only waiter was cancelled", async(function ()
      local lock = tide.Lock()
      lock:acquire()
      local a = tide.spawn(function () lock:acquire() end)
      pass()
      a:cancel()
      lock:release()
      assert.is_false(lock:locked())
      assert.is_true(cancelled(a))
    end))

    it("is released by the guard of a task cancelled right after it got the lock", async(function ()
      local lock = tide.Lock()
      lock:acquire()
      local a = tide.spawn(function ()
        local _ <close> = lock:hold()
        tide.sleep(10)
      end)
      pass()
      lock:release()                     -- handed to a
      a:cancel()
      assert.is_true(cancelled(a))
      assert.is_false(lock:locked())
    end))

    it("is left free when tide.timeout cancels the acquirer", async(function ()
      local lock = tide.Lock()
      lock:acquire()
      assert.same({ nil, "timeout" }, { tide.timeout(0.01, lock.acquire, lock) })
      lock:release()
      assert.is_false(lock:locked())
      assert.same({ nil, "timeout" }, { tide.timeout(0.01, function ()
        local _ <close> = lock:hold()
        tide.sleep(10)
      end) })
      assert.is_false(lock:locked())
    end))
  end)

  describe("wrong use", function ()
    it("raises on a release of a lock not held", async(function ()
      local lock = tide.Lock()
      assert.equal("Lock:release: lock not held", errorof(lock.release, lock))
    end))

    it("raises on a release by another task", async(function ()
      local lock = tide.Lock()
      lock:acquire()
      local other = tide.spawn(lock.release, lock)
      assert.matches("Lock:release: lock held by another task", tostring(failure(other)))
      lock:release()
    end))

    it("raises on a second acquire by the holder", async(function ()
      local lock = tide.Lock()
      lock:acquire()
      assert.matches("Lock:acquire: lock already held by this task",
                     errorof(lock.acquire, lock))
      lock:release()
    end))

    it("raises on acquire outside any task", async(function ()
      local lock = tide.Lock()
      local ok, err = outside(lock.acquire, lock)
      assert.is_false(ok)
      assert.matches("'Lock:acquire' must be called inside a task", err)
    end))
  end)
end)

describe("tide.Event", function ()
  it("makes wait wait until set, and wakes every waiter", async(function ()
    local ev = tide.Event()
    local ts = {}
    for i = 1, 3 do ts[i] = tide.spawn(function () return ev:wait() end) end
    pass()
    for i = 1, 3 do assert.equal("waiting", ts[i]:state()) end
    assert.is_false(ev:is_set())
    ev:set()
    assert.is_true(ev:is_set())
    for i = 1, 3 do assert.is_true(ts[i]:await()) end
  end))

  it("returns at once while set, and waits again once cleared", async(function ()
    local ev = tide.Event()
    ev:set()
    assert.is_true(ev:wait())
    ev:clear()
    assert.is_false(ev:is_set())
    local t = tide.spawn(ev.wait, ev)
    pass()
    assert.equal("waiting", t:state())
    ev:set()
    t:await()
  end))

  it("wakes the others when a waiter was cancelled", async(function ()
    local ev = tide.Event()
    local a = tide.spawn(ev.wait, ev)
    local b = tide.spawn(ev.wait, ev)
    pass()
    a:cancel()
    ev:set()
    assert.is_true(b:await())
    assert.is_true(cancelled(a))
  end))

  it("is waited for under tide.timeout", async(function ()
    local ev = tide.Event()
    assert.same({ nil, "timeout" }, { tide.timeout(0.01, ev.wait, ev) })
    tide.spawn(function () tide.sleep(0.005) ev:set() end)
    assert.is_true(tide.timeout(5, ev.wait, ev))
  end))
end)

describe("tide.Condition", function ()
  it("lets a task wait for a notification while others change the state", async(function ()
    local cond, items = tide.Condition(), {}
    local consumer = tide.spawn(function ()
      local _ <close> = cond:hold()
      while #items == 0 do cond:wait() end
      assert.is_true(cond:locked())
      return table.remove(items, 1)
    end)
    pass()
    cond:acquire()
    items[1] = "x"
    assert.equal(1, cond:notify())
    cond:release()
    assert.equal("x", consumer:await())
  end))

  it("waits for a predicate with wait_for", async(function ()
    local cond, n = tide.Condition(), 0
    local waiter = tide.spawn(function ()
      cond:acquire()
      local r = cond:wait_for(function () return n >= 3 and n end)
      cond:release()
      return r
    end)
    for _ = 1, 3 do
      pass()
      cond:acquire()
      n = n + 1
      cond:notify_all()
      cond:release()
    end
    assert.equal(3, waiter:await())
  end))

  it("wakes n waiters with notify(n), first come first, and all with notify_all", async(function ()
    local cond, order = tide.Condition(), {}
    local ts = {}
    for i = 1, 4 do
      ts[i] = tide.spawn(function ()
        cond:acquire()
        cond:wait()
        order[#order + 1] = i
        cond:release()
      end)
      pass(1)
    end
    pass()
    cond:acquire()
    assert.equal(2, cond:notify(2))
    cond:release()
    pass()
    assert.same({ 1, 2 }, order)
    cond:acquire()
    assert.equal(2, cond:notify_all())
    assert.equal(0, cond:notify())
    cond:release()
    for i = 1, 4 do ts[i]:await() end
    assert.same({ 1, 2, 3, 4 }, order)
  end))

  it("shares the lock it is given", async(function ()
    local lock = tide.Lock()
    local a, b = tide.Condition(lock), tide.Condition(lock)
    a:acquire()
    assert.is_true(lock:locked() and b:locked())
    b:release()
    assert.is_false(a:locked())
  end))

  describe("cancellation", function ()
    it("takes the lock back before raising in a cancelled wait", async(function ()
      local cond = tide.Condition()
      local seen
      local waiter = tide.spawn(function ()
        cond:acquire()
        local ok, err = pcall(cond.wait, cond)
        seen = { ok = ok, cancelled = tide.iscancelled(err), held = cond:locked() }
        cond:release()                 -- raises unless this task holds it
        error(err, 0)
      end)
      pass()
      cond:acquire()                     -- the waiter released it
      waiter:cancel()
      pass()
      assert.is_nil(seen)                -- still waiting for the lock
      cond:release()
      assert.is_true(cancelled(waiter))
      assert.same({ ok = false, cancelled = true, held = true }, seen)
      assert.is_false(cond:locked())
    end))

    it("does not let a cancelled waiter take a notification", async(function ()
      local cond = tide.Condition()
      local function waiter ()
        local _ <close> = cond:hold()
        cond:wait()
        return "notified"
      end
      local a, b = tide.spawn(waiter), tide.spawn(waiter)
      pass()
      a:cancel()
      cond:acquire()
      assert.equal(1, cond:notify())
      cond:release()
      assert.equal("notified", b:await())
      assert.is_true(cancelled(a))
      assert.is_false(cond:locked())
    end))

    it("leaves no waiter behind when cancelled before it waits", async(function ()
      local cond = tide.Condition()
      local w = tide.spawn(function ()
        cond:acquire()
        tide.yield()                     -- the main task queues for the lock
        tide.current():cancel()
        local ok, err = pcall(cond.wait, cond)   -- gives the lock away, raises
        assert(not ok and tide.iscancelled(err) and cond:locked())
        cond:release()
        error(err, 0)
      end)
      pass(1)
      cond:acquire()                     -- handed over by w's wait
      assert.equal(0, cond:notify())     -- w is not waiting for one
      pass()
      assert.equal("waiting", w:state()) -- but for the lock
      cond:release()
      assert.is_true(cancelled(w))
      assert.is_false(cond:locked())
    end))

    it("leaves the lock free when tide.timeout cancels the wait", async(function ()
      local cond = tide.Condition()
      assert.same({ nil, "timeout" }, { tide.timeout(0.01, function ()
        local _ <close> = cond:hold()
        cond:wait()
      end) })
      assert.is_false(cond:locked())
    end))
  end)

  describe("wrong use", function ()
    it("raises on wait and notify without the lock", async(function ()
      local cond = tide.Condition()
      assert.matches("Condition:wait: lock not held", errorof(cond.wait, cond))
      assert.matches("Condition:notify: lock not held", errorof(cond.notify, cond))
      assert.matches("Condition:notify_all: lock not held", errorof(cond.notify_all, cond))
      assert.matches("Condition:wait_for: lock not held",
                     errorof(cond.wait_for, cond, function () return true end))
    end))

    it("raises on a lock that is not a tide.Lock", async(function ()
      assert.matches("bad argument #1 to 'tide.Condition' %(tide.Lock expected, got table%)",
                     errorof(tide.Condition, {}))
    end))
  end)
end)

describe("tide.Semaphore", function ()
  it("lets n tasks in at once", async(function ()
    local sem, inside, most = tide.Semaphore(3), 0, 0
    local ts = {}
    for i = 1, 10 do
      ts[i] = tide.spawn(function ()
        local _ <close> = sem:hold()
        inside = inside + 1
        most = math.max(most, inside)
        tide.sleep(0.001)
        inside = inside - 1
      end)
    end
    for i = 1, 10 do ts[i]:await() end
    assert.equal(3, most)
    assert.equal(3, sem:value())
  end))

  it("counts permits, and starts with one", async(function ()
    local sem = tide.Semaphore()
    assert.equal(1, sem:value())
    sem:acquire()
    assert.is_true(sem:locked())
    sem:release()
    sem:release()                        -- a plain Semaphore can grow
    assert.equal(2, sem:value())
  end))

  it("hands a released permit to the first waiter", async(function ()
    local sem, order = tide.Semaphore(0), {}
    local ts = {}
    for i = 1, 3 do
      ts[i] = tide.spawn(function ()
        sem:acquire()
        order[#order + 1] = i
        sem:release()
      end)
      pass(1)
    end
    sem:release()
    sem:acquire()                        -- the releaser waits behind them
    order[#order + 1] = "releaser"
    for i = 1, 3 do ts[i]:await() end
    assert.same({ 1, 2, 3, "releaser" }, order)
  end))

  it("does not leak a permit to an acquirer cancelled while waiting", async(function ()
    local sem = tide.Semaphore(0)
    local a = tide.spawn(sem.acquire, sem)
    pass()
    a:cancel()
    sem:release()
    assert.equal(1, sem:value())
    assert.is_true(cancelled(a))
  end))

  it("does not leak a permit when tide.timeout cancels the acquirer", async(function ()
    local sem = tide.Semaphore(0)
    assert.same({ nil, "timeout" }, { tide.timeout(0.01, sem.acquire, sem) })
    sem:release()
    assert.equal(1, sem:value())
  end))

  it("raises on a bad count", async(function ()
    assert.equal("bad argument #1 to 'tide.Semaphore' (non-negative integer expected)",
                 errorof(tide.Semaphore, -1):gsub("^.-:%d+: ", ""))
    assert.matches("bad argument #1 to 'tide.Semaphore'", errorof(tide.Semaphore, 0.5))
    assert.matches("bad argument #1 to 'tide.BoundedSemaphore'", errorof(tide.BoundedSemaphore, "x"))
    assert.equal(2, tide.BoundedSemaphore("2"):value())    -- as Lua takes numbers
  end))
end)

describe("tide.BoundedSemaphore", function ()
  it("raises when released more times than acquired", async(function ()
    local sem = tide.BoundedSemaphore(2)
    sem:acquire()
    sem:release()
    assert.matches("BoundedSemaphore:release: released more times than acquired",
                   errorof(sem.release, sem))
    assert.equal(2, sem:value())
  end))

  it("hands permits over like Semaphore", async(function ()
    local sem = tide.BoundedSemaphore(1)
    sem:acquire()
    local t = tide.spawn(function () local _ <close> = sem:hold() return "in" end)
    pass()
    sem:release()
    assert.equal("in", t:await())
    assert.equal(1, sem:value())
  end))
end)

describe("tide.Barrier", function ()
  it("lets n parties go on together, each with its arrival index", async(function ()
    local b, passed = tide.Barrier(3), 0
    local ts = {}
    for i = 1, 3 do
      ts[i] = tide.spawn(function ()
        tide.sleep(0.001 * i)
        local k = b:wait()
        passed = passed + 1
        return k
      end)
      if i < 3 then
        tide.sleep(0.0015 * i)
        assert.equal(0, passed)
      end
    end
    local got = {}
    for i = 1, 3 do got[i] = ts[i]:await() end
    table.sort(got)
    assert.same({ 1, 2, 3 }, got)
    assert.equal(3, b:parties())
    assert.equal(0, b:n_waiting())
  end))

  it("can be used again for the next round", async(function ()
    local b, rounds = tide.Barrier(2), {}
    local function party (name)
      for r = 1, 3 do
        b:wait()
        rounds[#rounds + 1] = name .. r
      end
    end
    local x, y = tide.spawn(party, "x"), tide.spawn(party, "y")
    x:await()
    y:await()
    table.sort(rounds)
    assert.same({ "x1", "x2", "x3", "y1", "y2", "y3" }, rounds)
  end))

  it("breaks when a waiting party is cancelled: the others raise", async(function ()
    local b = tide.Barrier(3)
    local a = tide.spawn(b.wait, b)
    local c = tide.spawn(b.wait, b)
    pass()
    assert.equal(2, b:n_waiting())
    a:cancel()
    assert.is_true(cancelled(a))
    assert.matches("Barrier:wait: the barrier is broken", tostring(failure(c)))
    assert.is_true(b:is_broken())
    assert.matches("the barrier is broken", errorof(b.wait, b))
    b:reset()
    assert.is_false(b:is_broken())
  end))

  it("breaks when tide.timeout cancels a party", async(function ()
    local b = tide.Barrier(2)
    assert.same({ nil, "timeout" }, { tide.timeout(0.01, b.wait, b) })
    assert.is_true(b:is_broken())
  end))

  it("makes waiting parties raise on abort", async(function ()
    local b = tide.Barrier(2)
    local a = tide.spawn(b.wait, b)
    pass()
    b:abort()
    assert.matches("the barrier is broken", tostring(failure(a)))
  end))

  it("raises on a bad party count", async(function ()
    assert.matches("bad argument #1 to 'tide.Barrier' %(positive integer expected%)",
                   errorof(tide.Barrier, 0))
    assert.matches("bad argument #1 to 'tide.Barrier'", errorof(tide.Barrier))
  end))
end)
