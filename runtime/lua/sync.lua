-- sync.lua: the synchronisation primitives written in Lua (Event,
-- Condition, Semaphore, BoundedSemaphore, Barrier), on the scheduler's
-- token/suspend/wake calls (see wait.c). Queue, LifoQueue, PriorityQueue
-- (queue.c) and Lock (lock.c) are written in C.
local tide, sched = ...

local error, getmetatable, ipairs, pcall, tonumber, type =
      error, getmetatable, ipairs, pcall, tonumber, type
local tointeger = math.tointeger

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
-- and, being in the registry, in messages ("Event:wait").
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
-- waiter may leave for whoever wakes it.
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

---------------------------------------------------------------------------
-- Guards: x:hold() acquires and returns an object whose __close releases,
-- one per semaphore, made on first use (lock.c makes them).
---------------------------------------------------------------------------

local newguard = sched.newguard

local function guard (x)
  local g = x.guard
  if not g then
    g = newguard(x)
    x.guard = g
  end
  return g
end

-- The Lock (lock.c), for Condition.
local Lock, lockowned = sched.Lock, sched.lockowned
local acquire, release, locked = Lock.acquire, Lock.release, Lock.locked

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
  return locked(c.lock) and "locked" or "unlocked"
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
  return (locked(self.lock))
end

function Condition:hold ()
  if classof[self] ~= Condition then checkself(self, Condition) end
  return (self.lock:hold())
end

-- Check the self of a method that needs the lock held by the caller.
local function checkheld (c)
  if classof[c] ~= Condition then checkself(c, Condition) end
  if not lockowned(c.lock) then raise("%s: lock not held") end
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
  release(l)
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
