-- workers.lua: a pool of 3 workers drains a queue of URL-like work items;
-- the main task waits with join() until every item is dealt with, then
-- closes the queue so that the workers' loops end.
-- Run: tide scripts/workers.lua
local urls = {}
for i = 1, 10 do urls[i] = ("https://example.com/page/%d"):format(i) end

local q = tide.Queue(4)              -- bounded: the main task waits for room
local start = tide.now()
local done = {}

local function worker (name)
  for url in q:iter() do
    tide.sleep(0.05 * (1 + url:match("%d+$") % 3))  -- stands for a fetch
    done[#done + 1] = url
    print(("%.2f s  %s fetched %s"):format(tide.now() - start, name, url))
    q:task_done()
  end
end

local workers = {}
for w = 1, 3 do workers[w] = tide.spawn(worker, "worker" .. w) end

for _, url in ipairs(urls) do q:put(url) end
q:join()                             -- every item has been task_done
print(("all %d fetched in %.2f s by %d workers")
      :format(#done, tide.now() - start, #workers))

q:close()
for _, w in ipairs(workers) do w:await() end
