-- http_client.lua URL N CONC: N GETs of URL by CONC tasks at once, each
-- task's requests one after the other (so CONC connections, reused);
-- prints requests/s. tide.http (libcurl on tide's loop).
local url, n, conc = arg[1], tonumber(arg[2]) or 20000, tonumber(arg[3]) or 50
local get = tide.http.get

local function worker (count)
  local bytes = 0
  for _ = 1, count do
    local res = assert(get(url))
    assert(res.status == 200)
    bytes = bytes + #res:body()
  end
  return bytes
end

get(url):body()                        -- libcurl loaded, a first connection
local start = tide.hrtime()
local tasks = {}
for i = 1, conc do
  tasks[i] = tide.spawn(worker, n // conc + (i <= n % conc and 1 or 0))
end
for i = 1, conc do tasks[i]:await() end
local s = (tide.hrtime() - start) / 1e9
print(("http_client_per_s\t%.0f"):format(n / s))
print(("http_client_wall_s\t%.3f"):format(s))
