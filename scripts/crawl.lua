-- crawl.lua: a web crawler on tide.http. It fetches the pages given, then
-- the pages they link to on the same host, down to a depth, at most N at
-- once (N worker tasks taking URLs from one queue); it prints each page's
-- status, size and time, a progress line on a terminal, and totals at the
-- end. HTTPS is verified against the system's certificates (SSL_CERT_FILE
-- and SSL_CERT_DIR too); -k turns verification off.
-- Run: tide scripts/crawl.lua https://www.lua.org/ -j 8 -d 2
local usage = "usage: tide scripts/crawl.lua URL... [-j N] [-d DEPTH] [-k]"

local seeds, jobs, maxdepth, verify = {}, 8, 1, true
do
  local i = 1
  while i <= #arg do
    local a = arg[i]
    if a == "-j" or a == "-d" then
      local n = math.tointeger(tonumber(arg[i + 1]))
      if not n or n < (a == "-j" and 1 or 0) then
        io.stderr:write(usage, "\n")
        os.exit(2)
      end
      if a == "-j" then jobs = n else maxdepth = n end
      i = i + 1
    elseif a == "-k" then
      verify = false
    elseif a:match("^https?://") then
      seeds[#seeds + 1] = a
    else
      io.stderr:write(usage, "\n")
      os.exit(2)
    end
    i = i + 1
  end
  if #seeds == 0 then
    io.stderr:write(usage, "\n")
    os.exit(2)
  end
end

-- ---- URLs ---------------------------------------------------------------------

local function host (url)
  return url:match("^https?://([^/?#]+)"):lower()
end

-- Remove the "." and ".." segments of an absolute path.
local function normalise (path)
  local out = {}
  for seg in path:gmatch("[^/]*") do
    if seg == ".." then out[#out] = nil
    elseif seg ~= "." and seg ~= "" then out[#out + 1] = seg end
  end
  local tail = (path:match("/%.?%.?$") and #out > 0) and "/" or ""
  return "/" .. table.concat(out, "/") .. tail
end

-- The absolute URL of link as found on the page at base, or nil for one
-- that is not http(s).
local function resolve (base, link)
  link = link:gsub("#.*", ""):gsub("&amp;", "&")
  if link == "" then return nil end
  if link:match("^%a[%w+.-]*:") then
    return link:match("^https?://") and link or nil
  end
  local scheme, authority, path = base:match("^(https?)://([^/?#]*)([^?#]*)")
  if link:sub(1, 2) == "//" then return scheme .. ":" .. link end
  if link:sub(1, 1) == "?" then
    return scheme .. "://" .. authority .. (path ~= "" and path or "/") .. link
  end
  local query = link:match("%?.*$") or ""
  local rel = link:sub(1, #link - #query)
  local full = rel:sub(1, 1) == "/" and rel
               or (path:match("^(.*/)") or "/") .. rel
  return scheme .. "://" .. authority .. normalise(full) .. query
end

-- The links (href attributes) of an HTML page.
local function links (html)
  return coroutine.wrap(function ()
    for q, v in html:gmatch("[Hh][Rr][Ee][Ff]%s*=%s*([\"'])(.-)%1") do
      coroutine.yield(v)
    end
  end)
end

-- ---- Crawling ---------------------------------------------------------------------

local hosts, seen = {}, {}
for _, url in ipairs(seeds) do hosts[host(url)] = true end

local queue = tide.Queue()
local stats = { pages = 0, errors = 0, bytes = 0, active = 0, statuses = {} }
local start = tide.now()
local tty = tostring(tide.stderr):find("tty") ~= nil

local function progress (final)
  local line = ("[%d done, %d errors, %d active, %d queued] %.1f KiB in %.1f s")
    :format(stats.pages, stats.errors, stats.active, queue:size(),
            stats.bytes / 1024, tide.now() - start)
  if tty then io.stderr:write("\r\27[K", line, final and "\n" or "")
  elseif final or stats.pages % 10 == 0 then io.stderr:write(line, "\n") end
end

local function say (s)
  if tty then io.stderr:write("\r\27[K") end
  print(s)
end

local function enqueue (url, depth)
  if seen[url] then return end
  seen[url] = true
  queue:put({ url = url, depth = depth })
end

-- Fetch one page; queue its links on the same hosts if it is deep enough.
local function visit (page)
  local t0 = tide.now()
  local res, err = tide.http.get(page.url, { timeout = 30, connect_timeout = 10,
                                             verify = verify })
  local body
  if res then body, err = res:body() end
  local took = tide.now() - t0
  if not body then
    stats.errors = stats.errors + 1
    say(("ERR %-10s %7.3f s  %s: %s"):format("", took, page.url, err))
    return
  end
  stats.pages = stats.pages + 1
  stats.bytes = stats.bytes + #body
  stats.statuses[res.status] = (stats.statuses[res.status] or 0) + 1
  say(("%3d %10d B %7.3f s  %s"):format(res.status, #body, took, page.url))
  local ctype = res.headers["content-type"] or ""
  if page.depth < maxdepth and ctype:find("html") then
    for link in links(body) do
      local url = resolve(res.url, link)
      if url and hosts[host(url)] then enqueue(url, page.depth + 1) end
    end
  end
end

local function worker ()
  for page in queue:iter() do
    stats.active = stats.active + 1
    progress()
    visit(page)
    stats.active = stats.active - 1
    progress()
    queue:task_done()
  end
end

for _, url in ipairs(seeds) do enqueue(url, 0) end
local workers = {}
for i = 1, jobs do workers[i] = tide.spawn(worker) end
queue:join()                 -- every page queued has been dealt with
queue:close()                -- the workers' loops end
for _, w in ipairs(workers) do w:await() end
progress(true)

local took = tide.now() - start
local codes = {}
for status, n in pairs(stats.statuses) do codes[#codes + 1] = ("%d: %d"):format(status, n) end
table.sort(codes)
print(("%d pages, %d errors, %.1f KiB in %.2f s (%.1f pages/s) with %d at once; %s")
      :format(stats.pages, stats.errors, stats.bytes / 1024, took,
              stats.pages / took, jobs, table.concat(codes, ", ")))
