-- sync.lua: synchronisation primitives (Queue, LifoQueue, PriorityQueue,
-- Lock, Event, Condition, Semaphore, BoundedSemaphore, Barrier), written
-- on the scheduler's token/suspend/wake calls (see sched.c).
local tide, sched = ...

local error, getmetatable, ipairs, pcall, setmetatable, tonumber, type =
      error, getmetatable, ipairs, pcall, setmetatable, tonumber, type
local tointeger, huge, move = math.tointeger, math.huge, table.move

local current = tide.current
local token, suspend, wake, shield = sched.token, sched.suspend, sched.wake,
                                     sched.shield
-- Wrong use: see tide.lua.
local argerror, typeerror = sched.argerror, sched.typeerror
local checkself, raise, checkwait = sched.checkself, sched.error,
                                    sched.checkwait
local classof, new = sched.classof, sched.new

-- A count (argument i): an integer of at least min, default when nil.
local function checkcount (i, n, min, default)
  if n == nil then return default end
  local k = tonumber(n)
  k = k and tointeger(k)
  if not k or k < min then
    argerror(i, min == 0 and "non-negative integer expected"
                          or "positive integer expected")
  end
  return k
end

-- A class: a metatable that is its own method table, named for tostring
-- and, being in the registry, in messages ("Queue:put").
local function class (name, tostr)
  local c = sched.newclass("tide." .. name)
  c.__index = c
  c.__tostring = function (self)
    if classof[self] ~= c then checkself(self, c) end
    return ("tide.%s (%s)"):format(name, tostr(self))
  end
  return c
end

---------------------------------------------------------------------------
-- Waiter lists. A list holds the tasks waiting on one thing, first come
-- first served, as entries of four slots from index h up to t - 1: the
-- task, the generation of its wait (sched.token), and two values the
-- waiter leaves for whoever wakes it (a putter's item and priority).
-- Entries are dropped lazily: a waker skips a task that is no longer in
-- that wait (wake returns false), and a waiter whose wait ends with an
-- error blanks its own entry, trimming the tail. A waker calls wake before
-- it takes the entry out: if the call runs out of memory, the entry stays.
---------------------------------------------------------------------------

local function waiters ()
  return { h = 1, t = 1 }
end

-- Blank the entry at i if it is still the one (me, gen) left there.
local function drop (f, i, me, gen)
  if f[i] ~= me or f[i + 1] ~= gen then return end
  f[i], f[i + 2], f[i + 3] = false, nil, nil
  local h, t = f.h, f.t
  while t > h and f[t - 4] == false do
    t = t - 4
    f[t], f[t + 1] = nil, nil
  end
  if t == h then f.h, f.t = 1, 1 else f.t = t end
end

-- Wait at the end of f until a waker takes the entry; return what it
-- passed. If the wait ends with an error (tide.Cancelled), the entry is
-- dropped and the error raised again. check: whether the caller may wait
-- is still to be checked.
local function park (f, check, a, b)
  if check then checkwait() end
  local me, gen = token()
  local i = f.t
  f[i], f[i + 1], f[i + 2], f[i + 3] = me, gen, a, b
  f.t = i + 4
  local ok, x, y = pcall(suspend)
  if ok then return x, y end
  drop(f, i, me, gen)
  error(x, 0)
end

-- Wake the first task of f still in its wait, passing it x, y; return
-- that task and the two values it left, or nil if nobody is waiting.
local function wakefirst (f, x, y)
  local h, t = f.h, f.t
  while h < t do
    local task, gen, a, b = f[h], f[h + 1], f[h + 2], f[h + 3]
    local woken = task and wake(task, gen, x, y)
    f[h], f[h + 2], f[h + 3] = nil, nil, nil    -- (a stale gen holds nothing)
    h = h + 4
    if h == t then f.h, f.t = 1, 1 else f.h = h end
    if woken then return task, a, b end
  end
  return nil
end

-- Wake every task now in f, passing each x, y; return how many were woken.
-- Tasks that join f meanwhile wait for the next time.
local function wakeall (f, x, y)
  local h, t, n = f.h, f.t, 0
  for i = h, t - 1, 4 do
    local task, gen = f[i], f[i + 1]
    if task and wake(task, gen, x, y) then n = n + 1 end
    f[i], f[i + 2], f[i + 3] = nil, nil, nil
    f.h = i + 4
  end
  if f.h == f.t then f.h, f.t = 1, 1 end
  return n
end

local function haswaiters (f)
  return f.h < f.t
end

---------------------------------------------------------------------------
-- Queues. The hot paths hand an item straight to a waiting getter and move
-- a waiting putter's item straight in, so a producer and a consumer switch
-- less often than items pass. Queue keeps its items in its own array part,
-- at q[qh .. qt - 1]; LifoQueue and PriorityQueue keep n items in q[1 ..
-- n], stored by a push and a pop of their own.
--
-- Fields every queue has: cap (maxsize, math.huge when unbounded), max
-- (cap, or -1 once closed, so that one test sends put to its slow path),
-- the waiter lists getters, putters and joiners, done (task_done calls) and
-- gone + qt - 1 (items ever put), whose difference join waits on.
---------------------------------------------------------------------------

local closedmsg = "%s: the queue is closed"

-- The methods every kind of queue shares, for the class Q.
local function queuebase (Q)
  function Q:maxsize ()
    if classof[self] ~= Q then checkself(self, Q) end
    return self.cap < huge and self.cap or 0
  end

  function Q:is_closed ()
    if classof[self] ~= Q then checkself(self, Q) end
    return self.closed
  end

  -- q:task_done(): an item taken by get is dealt with (for join).
  function Q:task_done ()
    if classof[self] ~= Q then checkself(self, Q) end
    local done = self.done + 1
    local left = self.gone + self.qt - 1 - done
    if left < 0 then raise("%s: called more times than items were put") end
    self.done = done
    if left == 0 then wakeall(self.joiners) end
  end

  -- q:join(): wait until every item put has been marked task_done.
  function Q:join ()
    if classof[self] ~= Q then checkself(self, Q) end
    if self.gone + self.qt - 1 > self.done then park(self.joiners, true) end
  end

  -- q:close(): no more puts (they raise, and so do those waiting now);
  -- getters drain what is left and then get nil, "closed".
  function Q:close ()
    if classof[self] ~= Q then checkself(self, Q) end
    if self.closed then return end
    self.closed, self.max = true, -1
    wakeall(self.putters, closedmsg)
    wakeall(self.getters, nil, "closed")
  end

  -- for item in q:iter() do ... end: get until the queue is closed and empty.
  function Q:iter ()
    if classof[self] ~= Q then checkself(self, Q) end
    return self.get, self
  end
end

-- Raise for a put that cannot be done: a nil item, or a closed queue.
local function badput (v)
  if v == nil then argerror(2, "value expected") end
  raise(closedmsg)
end

local function queuetostring (q)
  return ("%d/%s%s"):format(q:size(), q.cap == huge and "inf" or q.cap,
                            q.closed and ", closed" or "")
end

local function newqueue (Q, maxsize)
  local cap = maxsize == 0 and huge or maxsize
  return new(Q, {
    qh = 1, qt = 1, n = 0, cap = cap, max = cap, closed = false,
    gone = 0, done = 0,
    getters = waiters(), putters = waiters(), joiners = waiters(),
  })
end

-- Queue ------------------------------------------------------------------

local Queue = class("Queue", queuetostring)
queuebase(Queue)

function tide.Queue (maxsize)
  local q = newqueue(Queue, checkcount(1, maxsize, 0, 0))
  q.put, q.get = Queue.put, Queue.get  -- own fields: one lookup less a call
  return q
end

-- Give v to the first getter still waiting, if any, counting it as gone
-- through the queue.
local function handoff (q, v)
  local g = q.getters
  if g.h == g.t or not wakefirst(g, v) then return false end
  q.gone = q.gone + 1
  return true
end

-- q:put(v): store v, waiting while the queue is full.
function Queue:put (v)
  if classof[self] ~= Queue then checkself(self, Queue) end
  local h, t = self.qh, self.qt
  if v ~= nil and t - h < self.max then
    if t == h and handoff(self, v) then return end
    self[t] = v
    self.qt = t + 1
    return
  end
  if v == nil or self.closed then badput(v) end
  local e = park(self.putters, true, v)  -- a getter moves v in
  if e then raise(e) end
end

-- q:put_nowait(v) -> true | nil, "full"
function Queue:put_nowait (v)
  if classof[self] ~= Queue then checkself(self, Queue) end
  local h, t = self.qh, self.qt
  if v == nil or self.closed then badput(v) end
  if t - h >= self.max then return nil, "full" end
  if not (t == h and handoff(self, v)) then
    self[t] = v
    self.qt = t + 1
  end
  return true
end

-- The queue was full: move the item of the first putter still waiting
-- into slot t of q (before the putter can run); return the new end. The
-- slot is filled first: if that runs out of memory, the putter still waits.
local function refill (q, t)
  local f = q.putters
  local h, ft = f.h, f.t
  while h < ft do
    local task, gen, v = f[h], f[h + 1], f[h + 2]
    local woken = false
    if task then
      q[t] = v
      woken = wake(task, gen)
      if not woken then q[t] = nil end
    end
    f[h], f[h + 2], f[h + 3] = nil, nil, nil
    h = h + 4
    if h == ft then f.h, f.t = 1, 1 else f.h = h end
    if woken then
      q.qt = t + 1
      return t + 1
    end
  end
  return t
end

-- Move the items q[h .. t - 1] down to 1, once the slots left empty below
-- them outnumber them, so that indices stay small.
local function compact (q, h, t)
  local n = t - h
  if h <= n then
    q.qh = h
    return
  end
  move(q, h, t - 1, 1)
  for i = n + 1, t - 1 do q[i] = nil end
  q.gone = q.gone + h - 1
  q.qh, q.qt = 1, n + 1
end

-- The first item, from the non-empty q[h .. t - 1].
local function fifo_take (q, h, t)
  local v = q[h]
  q[h] = nil
  if t - h == q.max then t = refill(q, t) end
  h = h + 1
  if h == t then                         -- empty: start again at 1
    q.gone = q.gone + t - 1
    q.qh, q.qt = 1, 1
  elseif h < 1024 then
    q.qh = h
  else
    compact(q, h, t)
  end
  return v
end

-- q:get() -> item, waiting while the queue is empty; nil, "closed" once
-- it is closed and empty.
function Queue:get ()
  if classof[self] ~= Queue then checkself(self, Queue) end
  local h, t = self.qh, self.qt
  if h == t then
    if self.closed then return nil, "closed" end
    local v, e = park(self.getters, true)
    if v == nil then return nil, e end   -- closed
    return v
  end
  local v = self[h]                      -- fifo_take, inlined
  self[h] = nil
  if t - h == self.max then t = refill(self, t) end
  h = h + 1
  if h == t then
    self.gone = self.gone + t - 1
    self.qh, self.qt = 1, 1
  elseif h < 1024 then
    self.qh = h
  else
    compact(self, h, t)
  end
  return v
end

-- q:get_nowait() -> item | nil, "empty" | nil, "closed"
function Queue:get_nowait ()
  if classof[self] ~= Queue then checkself(self, Queue) end
  local h, t = self.qh, self.qt
  if h < t then return fifo_take(self, h, t) end
  return nil, self.closed and "closed" or "empty"
end

function Queue:size ()
  if classof[self] ~= Queue then checkself(self, Queue) end
  return self.qt - self.qh
end

function Queue:empty ()
  if classof[self] ~= Queue then checkself(self, Queue) end
  return self.qt == self.qh
end

function Queue:full ()
  if classof[self] ~= Queue then checkself(self, Queue) end
  return self.qt - self.qh >= self.cap
end

-- LifoQueue and PriorityQueue ----------------------------------------------

-- LIFO: the last item first.
local function lifo_push (q, n, v)
  q[n] = v
end

local function lifo_pop (q, n)
  local v = q[n]
  q[n] = nil
  return v
end

-- Priority: a binary heap of items, with their priorities in q.pr and
-- their arrival numbers in q.sq (for stability). An item's priority is the
-- one given to put, else the item itself; the least comes first, by
-- q.cmp(a, b) if given, else by a < b.
local function before (cmp, pa, sa, pb, sb)
  if cmp then
    if cmp(pa, pb) then return true end
    if cmp(pb, pa) then return false end
  else
    if pa < pb then return true end
    if pb < pa then return false end
  end
  return sa < sb
end

local function heap_push (q, n, v, p)
  if p == nil then p = v end
  local pr, sq, cmp = q.pr, q.sq, q.cmp
  local s = q.seq + 1
  local i = n
  while i > 1 do
    local up = i // 2
    if not before(cmp, p, s, pr[up], sq[up]) then break end
    q[i], pr[i], sq[i] = q[up], pr[up], sq[up]
    i = up
  end
  q[i], pr[i], sq[i] = v, p, s
  q.seq = s
end

local function heap_pop (q, n)
  local pr, sq, cmp = q.pr, q.sq, q.cmp
  local top, v, p, s = q[1], q[n], pr[n], sq[n]
  q[n], pr[n], sq[n] = nil, nil, nil
  n = n - 1
  if n == 0 then return top end
  local i = 1
  while true do
    local c = 2 * i
    if c > n then break end
    if c < n and before(cmp, pr[c + 1], sq[c + 1], pr[c], sq[c]) then
      c = c + 1
    end
    if not before(cmp, pr[c], sq[c], p, s) then break end
    q[i], pr[i], sq[i] = q[c], pr[c], sq[c]
    i = c
  end
  q[i], pr[i], sq[i] = v, p, s
  return top
end

-- A queue class named name whose n items are kept by push(q, n, v, p)
-- (store v, of priority p, as the nth) and pop(q, n) (remove the first).
-- check(q, v, p), if given, raises for an item that push would refuse,
-- before its putter waits.
local function stackclass (name, push, pop, check)
  local Q = class(name, queuetostring)
  queuebase(Q)

  -- The item has room: give it to a waiting getter or store it.
  local function enter (q, n, v, p)
    if n == 0 and haswaiters(q.getters) then
      q.gone = q.gone + 1
      if wakefirst(q.getters, v) then return end
      q.gone = q.gone - 1
    end
    push(q, n + 1, v, p)               -- may raise: nothing changed then
    q.n, q.gone = n + 1, q.gone + 1
  end

  -- q:put(v [, priority]): store v, waiting while the queue is full.
  function Q:put (v, p)
    if classof[self] ~= Q then checkself(self, Q) end
    local n = self.n
    if v ~= nil and n < self.max then return enter(self, n, v, p) end
    if v == nil or self.closed then badput(v) end
    if check then check(self, v, p) end
    local e = park(self.putters, true, v, p)
    if e then raise(e) end
  end

  -- q:put_nowait(v [, priority]) -> true | nil, "full"
  function Q:put_nowait (v, p)
    if classof[self] ~= Q then checkself(self, Q) end
    local n = self.n
    if v == nil or self.closed then badput(v) end
    if n >= self.max then return nil, "full" end
    enter(self, n, v, p)
    return true
  end

  -- Take the first of the n items; a waiting putter's item takes its place.
  local function take (q, n)
    local v = pop(q, n)
    if n == q.max and haswaiters(q.putters) then
      local task, a, b = wakefirst(q.putters)
      if task then
        q.gone = q.gone + 1
        push(q, n, a, b)
        return v
      end
    end
    q.n = n - 1
    return v
  end

  function Q:get ()
    if classof[self] ~= Q then checkself(self, Q) end
    local n = self.n
    if n > 0 then return take(self, n) end
    if self.closed then return nil, "closed" end
    local v, e = park(self.getters, true)
    if v == nil then return nil, e end
    return v
  end

  function Q:get_nowait ()
    if classof[self] ~= Q then checkself(self, Q) end
    local n = self.n
    if n > 0 then return take(self, n) end
    return nil, self.closed and "closed" or "empty"
  end

  function Q:size ()
    if classof[self] ~= Q then checkself(self, Q) end
    return self.n
  end

  function Q:empty ()
    if classof[self] ~= Q then checkself(self, Q) end
    return self.n == 0
  end

  function Q:full ()
    if classof[self] ~= Q then checkself(self, Q) end
    return self.n >= self.cap
  end
  return Q
end

local LifoQueue = stackclass("LifoQueue", lifo_push, lifo_pop)
-- A priority that cannot be compared raises now, not in a later get.
local function heap_check (q, v, p)
  if p == nil then p = v end
  before(q.cmp, p, 0, q.pr[1], 0)
end

local PriorityQueue = stackclass("PriorityQueue", heap_push, heap_pop,
                                 heap_check)

function tide.LifoQueue (maxsize)
  return newqueue(LifoQueue, checkcount(1, maxsize, 0, 0))
end

-- tide.PriorityQueue([maxsize] [, cmp])
function tide.PriorityQueue (maxsize, cmp)
  if type(maxsize) == "function" and cmp == nil then
    maxsize, cmp = nil, maxsize
  end
  if cmp ~= nil and type(cmp) ~= "function" then
    typeerror(2, "function", cmp)
  end
  local q = newqueue(PriorityQueue, checkcount(1, maxsize, 0, 0))
  q.pr, q.sq, q.seq, q.cmp = {}, {}, 0, cmp
  return q
end

---------------------------------------------------------------------------
-- Guards: x:hold() acquires and returns an object whose __close releases,
-- one per lock or semaphore, made on first use.
---------------------------------------------------------------------------

local Guard = sched.newclass("tide.Guard")

function Guard.__close (g)
  if classof[g] ~= Guard then checkself(g, Guard) end
  g[1]:release()
end

local function guard (x)
  local g = x.guard
  if not g then
    g = new(Guard, { x })
    x.guard = g
  end
  return g
end

---------------------------------------------------------------------------
-- Lock: held by one task at a time. release hands the lock straight to the
-- first waiter, so nobody can take it in between.
---------------------------------------------------------------------------

local Lock = class("Lock", function (l)
  return l.owner and "locked" or "unlocked"
end)

function tide.Lock ()
  return new(Lock, { owner = false, waiting = waiters() })
end

-- lock:acquire() -> true, waiting while another task holds it.
function Lock:acquire ()
  if classof[self] ~= Lock then checkself(self, Lock) end
  local me, owner = current(), self.owner
  if not owner and me then
    self.owner = me
    return true
  end
  checkwait()
  if owner == me then raise("%s: lock already held by this task") end
  park(self.waiting, false)          -- the releaser made us the owner
  return true
end
local acquire = Lock.acquire

-- Give the lock to the first waiter, or leave it free.
local function handover (l)
  l.owner = wakefirst(l.waiting) or false
end

-- lock:release(): hand the lock to the first waiter, or leave it free.
-- Outside any task it releases for the holder: the <close> variables of a
-- task that ends with an error are closed once it is no longer current.
function Lock:release ()
  if classof[self] ~= Lock then checkself(self, Lock) end
  local owner, me = self.owner, current()
  if not owner or (owner ~= me and me) then
    raise(owner and "%s: lock held by another task" or "%s: lock not held")
  end
  local waiting = self.waiting
  if waiting.h == waiting.t then self.owner = false
  else self.owner = wakefirst(waiting) or false end
end
local release = Lock.release

function Lock:locked ()
  if classof[self] ~= Lock then checkself(self, Lock) end
  return self.owner ~= false
end

-- local _ <close> = lock:hold(): acquire, released when the scope ends.
function Lock:hold ()
  if classof[self] ~= Lock then checkself(self, Lock) end
  acquire(self)
  return guard(self)
end

---------------------------------------------------------------------------
-- Event: a flag tasks can wait for.
---------------------------------------------------------------------------

local Event = class("Event", function (e)
  return e.flag and "set" or "clear"
end)

function tide.Event ()
  return new(Event, { flag = false, waiting = waiters() })
end

-- event:set(): set the flag and wake every waiter.
function Event:set ()
  if classof[self] ~= Event then checkself(self, Event) end
  if self.flag then return end
  self.flag = true
  wakeall(self.waiting)
end

function Event:clear ()
  if classof[self] ~= Event then checkself(self, Event) end
  self.flag = false
end

function Event:is_set ()
  if classof[self] ~= Event then checkself(self, Event) end
  return self.flag
end

-- event:wait() -> true, once the flag is set.
function Event:wait ()
  if classof[self] ~= Event then checkself(self, Event) end
  if not self.flag then park(self.waiting, true) end
  return true
end

---------------------------------------------------------------------------
-- Condition: waiting for a notification while holding a lock, which wait
-- gives up and takes back.
---------------------------------------------------------------------------

local Condition = class("Condition", function (c)
  return c.lock.owner and "locked" or "unlocked"
end)

function tide.Condition (lock)
  if lock == nil then lock = tide.Lock()
  elseif getmetatable(lock) ~= Lock then
    typeerror(1, "tide.Lock", lock)
  end
  return new(Condition, { lock = lock, waiting = waiters() })
end

function Condition:acquire ()
  if classof[self] ~= Condition then checkself(self, Condition) end
  return (acquire(self.lock))           -- no tail call: see tide.lua
end

function Condition:release ()
  if classof[self] ~= Condition then checkself(self, Condition) end
  release(self.lock)
end

function Condition:locked ()
  if classof[self] ~= Condition then checkself(self, Condition) end
  return self.lock.owner ~= false
end

function Condition:hold ()
  if classof[self] ~= Condition then checkself(self, Condition) end
  return (self.lock:hold())
end

-- Check the self of a method that needs the lock held by the caller.
local function checkheld (c)
  if classof[c] ~= Condition then checkself(c, Condition) end
  local owner = c.lock.owner
  if not owner or owner ~= current() then raise("%s: lock not held") end
end

-- Take the lock back after a wait, whatever ended it: cancellation is held
-- back meanwhile, so the caller always leaves wait holding the lock.
local function reacquire (l)
  shield(1)
  local ok, e = pcall(acquire, l)
  shield(-1)
  if not ok then error(e, 0) end
end

-- cond:wait() -> true: release the lock, wait for a notify, take the lock
-- back. If cancelled, the lock is taken back before tide.Cancelled is
-- raised.
function Condition:wait ()
  checkheld(self)
  checkwait()
  local l = self.lock
  handover(l)
  local ok, e = pcall(park, self.waiting, false)
  reacquire(l)
  if not ok then error(e, 0) end
  return true
end

-- cond:wait_for(pred) -> pred's first true result, waiting until it comes.
function Condition:wait_for (pred)
  if classof[self] ~= Condition then checkself(self, Condition) end
  if type(pred) ~= "function" then typeerror(2, "function", pred) end
  checkheld(self)
  local r = pred()
  while not r do
    self:wait()
    r = pred()
  end
  return r
end

-- cond:notify([n]) -> how many waiters were woken (at most n, default 1).
function Condition:notify (n)
  if classof[self] ~= Condition then checkself(self, Condition) end
  n = checkcount(2, n, 0, 1)
  checkheld(self)
  local woken = 0
  while woken < n and wakefirst(self.waiting) do woken = woken + 1 end
  return woken
end

function Condition:notify_all ()
  checkheld(self)
  return wakeall(self.waiting)
end

---------------------------------------------------------------------------
-- Semaphore: a count of permits. release hands a permit straight to the
-- first waiter; a BoundedSemaphore raises when released more times than it
-- was acquired.
---------------------------------------------------------------------------

local function semtostring (s) return ("%d"):format(s.permits) end
local Semaphore = class("Semaphore", semtostring)
local BoundedSemaphore = class("BoundedSemaphore", semtostring)

local function newsem (mt, n)
  n = checkcount(1, n, 0, 1)
  return new(mt, { permits = n, bound = n, waiting = waiters() })
end

-- (No tail calls into code that raises for wrong use: see tide.lua.)
function tide.Semaphore (n) return (newsem(Semaphore, n)) end
function tide.BoundedSemaphore (n) return (newsem(BoundedSemaphore, n)) end

for _, S in ipairs { Semaphore, BoundedSemaphore } do
  local bounded = S == BoundedSemaphore

  -- sem:acquire() -> true, waiting while no permit is left.
  function S:acquire ()
    if classof[self] ~= S then checkself(self, S) end
    local p = self.permits
    if p > 0 then
      self.permits = p - 1
      return true
    end
    park(self.waiting, true)         -- the releaser handed us its permit
    return true
  end
  local acquire = S.acquire

  -- sem:release(): give a permit back (to the first waiter, if any).
  function S:release ()
    if classof[self] ~= S then checkself(self, S) end
    if wakefirst(self.waiting) then return end
    local p = self.permits
    if bounded and p >= self.bound then
      raise("%s: released more times than acquired")
    end
    self.permits = p + 1
  end

  function S:locked ()
    if classof[self] ~= S then checkself(self, S) end
    return self.permits == 0
  end

  function S:value ()
    if classof[self] ~= S then checkself(self, S) end
    return self.permits
  end

  -- local _ <close> = sem:hold(): acquire, released when the scope ends.
  function S:hold ()
    if classof[self] ~= S then checkself(self, S) end
    acquire(self)
    return guard(self)
  end
end

---------------------------------------------------------------------------
-- Barrier: n parties wait for each other, then all go on; it is then ready
-- for the next round. A party cancelled while waiting breaks it: the
-- others raise, as does every wait until reset().
---------------------------------------------------------------------------

local Barrier = class("Barrier", function (b)
  return b.broken and "broken" or ("%d/%d"):format(b.arrived, b.size)
end)

local brokenmsg = "%s: the barrier is broken"

function tide.Barrier (n)
  if n == nil then argerror(1, "positive integer expected") end
  n = checkcount(1, n, 1)
  return new(Barrier, { size = n, arrived = 0, round = 0, broken = false,
                        waiting = waiters() })
end

-- barrier:wait() -> the arrival index (1 for the first, n for the last
-- party, which releases the others).
function Barrier:wait ()
  if classof[self] ~= Barrier then checkself(self, Barrier) end
  if self.broken then raise(brokenmsg) end
  checkwait()
  local k = self.arrived + 1
  if k == self.size then
    self.arrived, self.round = 0, self.round + 1
    wakeall(self.waiting)
    return k
  end
  self.arrived = k
  local round = self.round
  local ok, e = pcall(park, self.waiting, false)
  if not ok then
    if self.round == round then self:abort() end
    error(e, 0)
  end
  if e == "broken" then raise(brokenmsg) end
  return k
end

-- barrier:abort(): break it; waiting parties raise, and so will later ones.
function Barrier:abort ()
  if classof[self] ~= Barrier then checkself(self, Barrier) end
  self.broken, self.arrived = true, 0
  self.round = self.round + 1
  wakeall(self.waiting, "broken")
end

-- barrier:reset(): back to empty and unbroken; waiting parties raise.
function Barrier:reset ()
  if classof[self] ~= Barrier then checkself(self, Barrier) end
  self.round = self.round + 1
  wakeall(self.waiting, "broken")
  self.broken, self.arrived = false, 0
end

function Barrier:is_broken ()
  if classof[self] ~= Barrier then checkself(self, Barrier) end
  return self.broken
end

function Barrier:n_waiting ()
  if classof[self] ~= Barrier then checkself(self, Barrier) end
  return self.arrived
end

function Barrier:parties ()
  if classof[self] ~= Barrier then checkself(self, Barrier) end
  return self.size
end
