-- tide.lua: the parts of the tide module written in Lua: run, the
-- combinators (gather, settle, race, timeout, shield, group, wait,
-- as_completed), call_soon and call_later, on top of the scheduler's few C
-- calls (see sched.c). Wherever one is awaited, a task or a tide.Future will
-- do.
local tide, sched = ...

local error, getmetatable, pcall, select, setmetatable, tonumber, type =
      error, getmetatable, pcall, select, setmetatable, tonumber, type
local tostring = tostring
local unpack, tointeger = table.unpack, math.tointeger

local spawn, current, sleep = tide.spawn, tide.current, tide.sleep
local shield, watch = sched.shield, sched.watch
local Task, Cancelled = sched.Task, tide.Cancelled
local Future, fshieldawait
tide.Future, Future, fshieldawait = sched.openfuture()   -- see future.c
local tshieldawait = sched.shieldawait

-- Wrong use raises as Lua's own library does, naming the function the user
-- called at the user's line, however deep in the library it is found (see
-- where.c): argerror(i, msg), typeerror(i, tname, x), checkself(x, class),
-- raise(msg) ("%s" in msg: the function's name). i counts self in methods.
-- The function the user called must still be on the stack: it may not
-- tail-call Lua code that raises so (return (f(...)) is no tail call).
local argerror, typeerror = sched.argerror, sched.typeerror
local checkself, raise = sched.checkself, sched.error

-- The objects of the Lua-side classes (Queue, Lock, Group...), each with its
-- class: a method checks its self with a lookup, cheaper than the call to
-- getmetatable that checkself makes (which then raises):
--   if classof[self] ~= C then checkself(self, C) end
-- new(C, t) makes t an object of C.
local classof = setmetatable({}, { __mode = "k" })
local function new (class, t)
  classof[t] = class
  return setmetatable(t, class)
end
sched.classof, sched.new = classof, new

-- Raise, naming the call, where the caller could not wait.
local function checkwait ()
  if not current() then
    raise("'%s' must be called inside a task (use tide.run or tide.spawn)")
  end
  if not sched.canwait() then
    raise("'%s' cannot wait inside a C call such as table.sort, "
          .. "string.gsub or require, nor in a __close run by an error or "
          .. "a cancellation")
  end
end
sched.checkwait = checkwait

-- Numbers as luaL_checknumber and luaL_checkinteger take them: numbers in
-- strings are numbers.
local function checknumber (i, x)
  local n = tonumber(x)
  if n == nil then typeerror(i, "number", x) end
  return n
end
sched.checknumber = checknumber

function sched.checkinteger (i, x)
  local n = checknumber(i, x)
  local k = tointeger(n)
  if k == nil then argerror(i, "number has no integer representation") end
  return k
end

-- A task or a future: what the combinators await.
local function istask (x)
  local mt = getmetatable(x)
  return mt == Task or mt == Future
end

-- Await t (a task or a future); if the caller is cancelled, t goes on.
local function shieldawait (t)
  if getmetatable(t) == Future then return fshieldawait(t) end
  return tshieldawait(t)
end

local function iscancelled (e)
  return getmetatable(e) == Cancelled
end
tide.iscancelled = iscancelled

local function checkfunction (i, f)
  if type(f) ~= "function" then typeerror(i, "function", f) end
end

-- A duration in seconds, as tide.sleep takes it.
local function checkduration (i, s)
  s = checknumber(i, s)
  if not (s >= 0) then argerror(i, "negative duration") end
  return s
end

-- tide.run(fn, ...): fn as the main task; its results, or its error raised.
-- Inside a task it is the same as spawn(fn, ...):await(), once it is sure
-- the await can wait (else fn would run with nobody to see its end).
-- tide.run() with no function runs the loop until tide.stop(), a signal
-- or until nothing is left (see runtime.c's runforever).
function tide.run (fn, ...)
  if fn == nil and select("#", ...) == 0 then
    if current() then raise("%s: cannot run the loop inside a task") end
    return sched.runforever()
  end
  checkfunction(1, fn)
  if current() then
    checkwait()
    return spawn(fn, ...):await()
  end
  return sched.runmain(fn, ...)
end

function tide.call_soon (fn, ...)
  checkfunction(1, fn)
  return spawn(fn, ...)
end

function tide.call_later (s, fn, ...)
  s = checkduration(1, s)
  checkfunction(2, fn)
  return spawn(function (...) sleep(s) return fn(...) end, ...)
end

-- A list of tasks from the arguments: functions are spawned, tasks kept.
local function tasklist (...)
  local n = select("#", ...)
  for i = 1, n do
    local x = select(i, ...)
    if not istask(x) and type(x) ~= "function" then
      typeerror(i, "function, task or future", x)
    end
  end
  local ts = { n = n }
  for i = 1, n do
    local x = select(i, ...)
    ts[i] = istask(x) and x or spawn(x)
  end
  return ts
end

-- Cancel the tasks of ts that have not ended, and wait until they have.
local function stop (ts)
  for i = 1, ts.n do ts[i]:cancel() end
  shield(1)
  for i = 1, ts.n do pcall(shieldawait, ts[i]) end
  shield(-1)
end

-- Suspend until enough(ended, t) is true, where ended counts the tasks of
-- ts that have ended and t is the latest of them; return t. If the caller
-- is cancelled meanwhile (or runs out of memory), the tasks are stopped and
-- the error raised. The news of their ends comes through a watch (see
-- watch.c), which cannot lose it for lack of memory.
local function waitfor (ts, enough)
  local ok, w = pcall(watch, ts)
  if not ok then
    stop(ts)
    error(w, 0)
  end
  local _ <close> = w
  local ended, last = 0, nil
  while not enough(ended, last) do
    local t
    ok, t = pcall(w.wait, w)
    if not ok then
      stop(ts)
      error(t, 0)
    end
    ended, last = ended + 1, t
  end
  return last
end

local function failed (t)
  local s = t:state()
  return s == "failed" or s == "cancelled"
end

-- tide.gather(f_or_task, ...) -> the first result of each, in order. The
-- first error cancels the others and is raised once they have ended.
function tide.gather (...)
  checkwait()
  local ts = tasklist(...)
  local n, bad = ts.n, nil
  waitfor(ts, function (ended, t)
    if t and failed(t) then bad = bad or t end
    return ended == n or bad ~= nil
  end)
  if bad then
    stop(ts)
    bad:await()
  end
  local r = {}
  for i = 1, n do r[i] = ts[i]:await() end
  return unpack(r, 1, n)
end

-- tide.settle(f_or_task, ...) -> { {ok = true, n = k, ...results} |
-- {ok = false, err = e} }, in order, once every one has ended.
function tide.settle (...)
  checkwait()
  local ts = tasklist(...)
  local n = ts.n
  waitfor(ts, function (ended) return ended == n end)
  local r = {}
  for i = 1, n do
    local res = table.pack(ts[i]:result())
    if res[1] then
      r[i] = { ok = true, n = res.n - 1, select(2, unpack(res, 1, res.n)) }
    else
      r[i] = { ok = false, err = res[2] }
    end
  end
  return r
end

-- tide.race(f_or_task, ...) -> the results of the first to end (or its error
-- raised); the others are cancelled and have ended on return.
function tide.race (...)
  checkwait()
  local ts = tasklist(...)
  if ts.n == 0 then
    argerror(1, "function, task or future expected, got no value")
  end
  local first = waitfor(ts, function (ended) return ended > 0 end)
  stop(ts)
  return first:await()
end

-- tide.timeout(s, f_or_task, ...) -> its results, or nil, "timeout" once s
-- seconds have passed (it is then cancelled, and has ended on return).
function tide.timeout (s, f, ...)
  checkwait()
  s = checkduration(1, s)
  local t <close> = istask(f) and f or
    (type(f) == "function" and spawn(f, ...)) or
    typeerror(2, "function, task or future", f)
  local w <close> = watch(t)
  if w:wait(s) then return t:await() end
  t:cancel()
  shield(1)
  pcall(shieldawait, t)
  shield(-1)
  if not t:cancelled() then return t:await() end  -- it ended first after all
  return nil, "timeout"
end

-- Let the tasks of watch w run for grace seconds (0: none), then cancel
-- those left and wait until all have ended (what closing a server does
-- with its handlers). Where nothing can wait (the <close> of a task that
-- ended with an error runs outside it), they are cancelled, not waited for.
function sched.endall (w, grace)
  if w:live() == 0 then return end
  local canwait = current() and sched.canwait()
  if grace > 0 and canwait then
    tide.timeout(grace, function ()
      while w:live() > 0 do w:wait() end
    end)
  end
  w:cancel()
  if not canwait then return end
  shield(1)
  while w:live() > 0 do pcall(w.wait, w) end
  shield(-1)
end

-- tide.shield(f_or_task) -> its results; if the caller is cancelled, the
-- task goes on.
function tide.shield (f, ...)
  checkwait()
  if type(f) == "function" then f = spawn(f, ...)
  elseif not istask(f) then typeerror(1, "function, task or future", f) end
  return shieldawait(f)
end

-- tide.group(function (g) g:spawn(fn, ...) end): the block (a task of its
-- own) and its children are one unit: it returns the block's results when
-- every child has ended; the first error of the block or a child cancels
-- the others and is raised once they have all ended. The children are
-- spawned on a watch (see watch.c), which tells the group of their ends.
local Group = sched.newclass("tide.Group")
Group.__index = Group

function Group:spawn (fn, ...)
  if classof[self] ~= Group then checkself(self, Group) end
  if self.closed then raise("%s: the group has ended") end
  checkfunction(2, fn)
  return self.w:spawn(fn, ...)
end

function Group:cancel ()
  if classof[self] ~= Group then checkself(self, Group) end
  self.cancelling = true
  self.w:cancel()
end

-- Take the children as they end, until none is left; the first to fail
-- (unless the group is being cancelled) cancels the others.
local function waitchildren (g)
  local w = g.w
  while w:live() > 0 do
    local t = w:wait()
    if t:state() == "failed" and not g.err and not g.cancelling then
      g.err = { select(2, t:result()) }
      g:cancel()
    end
  end
end

function tide.group (body)
  checkwait()
  checkfunction(1, body)
  local g = new(Group, { w = watch() })
  local _ <close> = g.w
  local b = g:spawn(body, g)
  local ok, e = pcall(waitchildren, g)
  if not ok then                     -- cancelled while waiting: stop all
    g:cancel()
    shield(1)
    waitchildren(g)
    shield(-1)
    g.closed = true
    error(e, 0)
  end
  g.closed = true
  if g.err then error(g.err[1], 0) end
  return b:await()
end

-- The list of tasks and futures that wait and as_completed take (as a
-- sequence, or n of them), as a list with its n for watch; functions are
-- refused: nobody would hold the tasks made of them.
local function checklist (i, list)
  if type(list) ~= "table" then typeerror(i, "table", list) end
  local n = list.n or #list
  if n == 0 and list.n == nil and next(list) ~= nil then   -- a set: {[t] = true}
    argerror(i, "a list of tasks and futures expected, got a table with "
             .. "no list part")
  end
  for k = 1, n do
    if not istask(list[k]) then
      argerror(i, ("task or future expected at [%d], got %s")
               :format(k, type(list[k])))
    end
  end
  return { n = n, unpack(list, 1, n) }
end

local whens = { first = true, first_error = true, all = true }

-- tide.wait(list [, {return_when = "first" | "first_error" | "all",
-- timeout = s}]) -> done, pending: the tasks and futures of list that have
-- ended and those that have not, once return_when is met (asyncio's
-- FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED; "all" by default) or
-- timeout seconds have passed. Nothing is cancelled. Each of done and
-- pending is a list in the order of list that also answers membership:
-- done[t] is true for each t in it. An empty list gives two empty lists at
-- once (asyncio raises ValueError: here nothing is wrong with waiting for
-- none, as gather() of nothing gives nothing).
function tide.wait (list, opts)
  checkwait()
  local ts = checklist(1, list)
  local n, when, s = ts.n, "all", nil
  if opts ~= nil then
    if type(opts) ~= "table" then typeerror(2, "table", opts) end
    for k in pairs(opts) do
      if k ~= "return_when" and k ~= "timeout" then
        argerror(2, "unknown option " .. tostring(k))
      end
    end
    when = opts.return_when or "all"
    if not whens[when] then
      argerror(2, "return_when: 'first', 'first_error' or 'all' expected, "
               .. "got " .. tostring(when))
    end
    if opts.timeout ~= nil then          -- named, as return_when is
      s = tonumber(opts.timeout)
      if s == nil then
        argerror(2, "timeout: number expected, got " .. type(opts.timeout))
      end
      if not (s >= 0) then argerror(2, "timeout: negative duration") end
    end
  end
  local w <close> = watch(ts)
  local deadline = s and tide.now() + s
  local ended = 0
  while ended < n do
    local left = deadline and deadline - tide.now()
    if left and left < 0 then left = 0 end
    local t = w:wait(left)
    if t == nil then break end       -- timeout
    ended = ended + 1
    if when == "first" then break end
    if when == "first_error" and t:state() == "failed" then break end
  end
  local done, pending = {}, {}
  for k = 1, n do
    local t = ts[k]
    local into = t:done() and done or pending
    if not into[t] then
      into[#into + 1], into[t] = t, true
    end
  end
  return done, pending
end

-- for t in tide.as_completed(list [, timeout]) do ... end: each task or
-- future of list as it ends (its outcome: t:await() or t:result()). After
-- timeout seconds the loop ends; nothing is cancelled. A negative timeout
-- raises, as in tide.sleep and tide.timeout (asyncio times out at once).
function tide.as_completed (list, s)
  checkwait()
  local ts = checklist(1, list)
  if s ~= nil then s = checkduration(2, s) end
  local w = watch(ts)
  local deadline = s and tide.now() + s
  local left = ts.n
  local function nextone ()
    if left == 0 then return nil end
    local wait = deadline and deadline - tide.now()
    if wait and wait < 0 then wait = 0 end
    local t = w:wait(wait)
    if t == nil then
      left = 0
      w:close()
      return nil
    end
    left = left - 1
    return t
  end
  return nextone, nil, nil, w        -- w: the loop's closing value
end
