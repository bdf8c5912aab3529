-- Queues and locks under tide: N integers through a Queue(1) and a
-- Queue(100) from a producer task to a consumer task; N uncontended Lock
-- acquire/release pairs in one task; N contended pairs shared by 4 tasks
-- that each yield while holding the lock.
-- Usage: tide queue.lua [N]   (default 1000000). Prints <metric>\t<value>.
local N = math.tointeger(tonumber(arg and arg[1])) or 1000000

local function seconds (t0) return (tide.hrtime() - t0) / 1e9 end

local function queue (size)
  local q = tide.Queue(size)
  local t0 = tide.hrtime()
  local consumer = tide.spawn(function ()
    local sum = 0
    for _ = 1, N do sum = sum + q:get() end
    return sum
  end)
  for i = 1, N do q:put(i) end
  assert(consumer:await() == N * (N + 1) // 2)
  return N / seconds(t0)
end

local function uncontended ()
  local lock = tide.Lock()
  local t0 = tide.hrtime()
  for _ = 1, N do
    lock:acquire()
    lock:release()
  end
  return N / seconds(t0)
end

local function contended ()
  local lock, tasks, each = tide.Lock(), {}, N // 4
  local t0 = tide.hrtime()
  for i = 1, 4 do
    tasks[i] = tide.spawn(function ()
      for _ = 1, each do
        lock:acquire()
        tide.yield()                 -- the others queue up meanwhile
        lock:release()
      end
    end)
  end
  for i = 1, 4 do tasks[i]:await() end
  return 4 * each / seconds(t0)
end

print(("queue1_items_per_s\t%.0f"):format(queue(1)))
print(("queue100_items_per_s\t%.0f"):format(queue(100)))
print(("lock_uncontended_per_s\t%.0f"):format(uncontended()))
print(("lock_contended_per_s\t%.0f"):format(contended()))
