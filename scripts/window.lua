-- window.lua: at most 4 jobs at a time. Eight jobs of 1, 2, 3, 1, 2, 3, 1
-- and 2 seconds each take a token before they start and give it back when
-- they end: first with a Queue holding 4 tokens, then with a Semaphore(4).
-- Each run prints a timeline (a row per second, a column per job, a mark
-- while the job runs) and its total: 5 s, where one job after another
-- would take 15 s.
-- Run: tide scripts/window.lua [SECONDS_PER_UNIT]   (default 1)
local unit = tonumber(arg and arg[1]) or 1
local durations = { 1, 2, 3, 1, 2, 3, 1, 2 }

-- Run the jobs, each between take() and give(); return when each job
-- started and ended, in units from the start.
local function run (take, give)
  local start, spans, jobs = tide.now(), {}, {}
  local function at () return (tide.now() - start) / unit end
  for j, d in ipairs(durations) do
    jobs[j] = tide.spawn(function ()
      local token = take()
      local from = at()
      tide.sleep(d * unit)
      spans[j] = { from, at() }
      give(token)
    end)
  end
  for _, job in ipairs(jobs) do job:await() end
  return spans, at()
end

local function timeline (title, spans, total)
  print(title)
  local head = { "time " }
  for j in ipairs(durations) do head[#head + 1] = ("%4s"):format("j" .. j) end
  print(table.concat(head))
  for s = 0, math.ceil(total - 0.5) - 1 do
    local row = { ("%-5s"):format(("%d-%d"):format(s, s + 1)) }
    for j in ipairs(durations) do
      local from, to = spans[j][1], spans[j][2]
      row[#row + 1] = (from < s + 0.5 and to > s + 0.5) and "  ##" or "   ."
    end
    print(table.concat(row))
  end
  local sum = 0
  for _, d in ipairs(durations) do sum = sum + d end
  print(("total %.1f s (the jobs add up to %g s)\n")
        :format(total * unit, sum * unit))
end

-- A window of 4 tokens in a queue: take one to start, put it back at the end.
local window = tide.Queue()
for t = 1, 4 do window:put("token" .. t) end
timeline("Queue of 4 tokens:", run(
  function () return window:get() end,
  function (token) window:put(token) end))

-- The same limit with a semaphore.
local sem = tide.Semaphore(4)
timeline("Semaphore(4):", run(
  function () sem:acquire() end,
  function () sem:release() end))
