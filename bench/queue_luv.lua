-- Queues and locks on luv (lua5.4 + lua-luv) with a minimal coroutine
-- scheduler: a ready list of coroutines drained by a uv idle handle, a
-- bounded queue whose waiters sleep until the other side wakes them (then
-- look again), and a lock whose release hands it to the next waiter. N
-- integers through a Queue(1) and a Queue(100); N uncontended Lock
-- acquire/release pairs; N contended pairs shared by 4 coroutines that each
-- yield while holding the lock.
-- Usage: lua5.4 queue_luv.lua [N]   (default 1000000).
-- Prints <metric>\t<value>.
local uv = require "luv"
local N = math.tointeger(tonumber(arg[1])) or 1000000

local create, resume, running, yield =
      coroutine.create, coroutine.resume, coroutine.running, coroutine.yield

-- The scheduler: coroutines ready to run, resumed in turn by the idle handle.
local ready, rhead, rtail = {}, 1, 0
local idle = uv.new_idle()

local function drain ()
  while rhead <= rtail do
    local co = ready[rhead]
    ready[rhead] = nil
    rhead = rhead + 1
    assert(resume(co))
  end
  rhead, rtail = 1, 0
  idle:stop()
end

local function wake (co)
  if rtail < rhead then idle:start(drain) end
  rtail = rtail + 1
  ready[rtail] = co
end

local function spawn (fn) wake(create(fn)) end

local function pause ()                -- let the other ready coroutines run
  wake(running())
  yield()
end

-- A FIFO list of waiting coroutines.
local function wait (list)
  list[#list + 1] = running()
  yield()
end

local function wakeone (list)
  if #list > 0 then wake(table.remove(list, 1)) end
end

-- The bounded queue: items in items[head .. tail].
local Queue = {}
Queue.__index = Queue

local function newqueue (max)
  return setmetatable({ max = max, items = {}, head = 1, tail = 0,
                        getters = {}, putters = {} }, Queue)
end

function Queue:put (v)
  while self.tail - self.head + 1 >= self.max do wait(self.putters) end
  self.tail = self.tail + 1
  self.items[self.tail] = v
  wakeone(self.getters)
end

function Queue:get ()
  while self.tail < self.head do wait(self.getters) end
  local v = self.items[self.head]
  self.items[self.head] = nil
  self.head = self.head + 1
  if self.head > self.tail then self.head, self.tail = 1, 0 end
  wakeone(self.putters)
  return v
end

-- The lock: release hands it to the first waiter, which finds it its own.
local Lock = {}
Lock.__index = Lock

local function newlock ()
  return setmetatable({ locked = false, waiters = {} }, Lock)
end

function Lock:acquire ()
  if not self.locked then
    self.locked = true
    return
  end
  wait(self.waiters)
end

function Lock:release ()
  if #self.waiters > 0 then wake(table.remove(self.waiters, 1))
  else self.locked = false end
end

-- Run fn as a coroutine on the loop until the loop has nothing left.
local function run (fn)
  local result
  spawn(function () result = fn() end)
  uv.run()
  return result
end

local function seconds (t0) return (uv.hrtime() - t0) / 1e9 end

local function queue (size)
  return run(function ()
    local q, sum, done = newqueue(size), 0, false
    local t0 = uv.hrtime()
    spawn(function ()
      for _ = 1, N do sum = sum + q:get() end
      done = true
    end)
    for i = 1, N do q:put(i) end
    while not done do pause() end
    assert(sum == N * (N + 1) // 2)
    return N / seconds(t0)
  end)
end

local function uncontended ()
  return run(function ()
    local lock = newlock()
    local t0 = uv.hrtime()
    for _ = 1, N do
      lock:acquire()
      lock:release()
    end
    return N / seconds(t0)
  end)
end

local function contended ()
  local lock, each, t0 = newlock(), N // 4, uv.hrtime()
  for _ = 1, 4 do
    spawn(function ()
      for _ = 1, each do
        lock:acquire()
        pause()                          -- the others queue up meanwhile
        lock:release()
      end
    end)
  end
  uv.run()
  return 4 * each / seconds(t0)
end

print(("queue1_items_per_s\t%.0f"):format(queue(1)))
print(("queue100_items_per_s\t%.0f"):format(queue(100)))
print(("lock_uncontended_per_s\t%.0f"):format(uncontended()))
print(("lock_contended_per_s\t%.0f"):format(contended()))
