-- du.lua: disk usage of directory trees, like `du -s`, walked concurrently:
-- JOBS worker tasks take paths from a queue, lstat them and put the entries
-- of each directory back in the queue, so at most JOBS calls are on the
-- thread pool at a time however wide the tree. Hard links count once;
-- symbolic links are not followed.
-- Run: tide scripts/du.lua [-j JOBS] [-k] [-b] [PATH...]
--      -k: sizes in KiB (as du -sk); -b: apparent sizes in bytes (du -sb);
--      otherwise human-readable disk usage. PATH defaults to ".".
local fs = tide.fs

local args, jobs, unit = { ... }, 16, "human"
while args[1] and args[1]:sub(1, 1) == "-" do
  local opt = table.remove(args, 1)
  if opt == "-j" then
    jobs = math.tointeger(tonumber(table.remove(args, 1)))
    if not jobs or jobs < 1 then
      io.stderr:write("du.lua: -j needs a positive number\n")
      os.exit(2)
    end
  elseif opt == "-k" or opt == "-b" then
    unit = opt
  else
    io.stderr:write("usage: tide scripts/du.lua [-j JOBS] [-k] [-b] [PATH...]\n")
    os.exit(2)
  end
end
if #args == 0 then args[1] = "." end

local sizes, seen, found = {}, {}, {}
local files, dirs, errors = 0, 0, 0
local queue = tide.Queue()

local function warn (msg)
  errors = errors + 1
  io.stderr:write("du.lua: ", msg, "\n")
end

-- Count one path (of root i); queue a directory's entries.
local function visit (path, i)
  local st, err = fs.lstat(path)
  if not st then return warn(err) end
  found[i] = true
  local key = st.dev .. ":" .. st.ino
  if st.nlink > 1 and st.type ~= "directory" then
    if seen[key] then return end
    seen[key] = true
  end
  sizes[i] = sizes[i] + (unit == "-b" and st.size or st.blocks * 512)
  if st.type ~= "directory" then
    files = files + 1
    return
  end
  dirs = dirs + 1
  local entries, derr = fs.scandir(path)
  if not entries then return warn(derr) end
  for name in entries do queue:put({ path .. "/" .. name, i }) end
end

local function worker ()
  while true do
    local item = queue:get()
    if item == nil then return end             -- closed: all done
    visit(item[1], item[2])
    queue:task_done()
  end
end

local function human (n)
  local units = { "", "K", "M", "G", "T" }
  local k = 1
  while n >= 1024 and k < #units do n, k = n / 1024, k + 1 end
  if k == 1 then return tostring(n) end
  return (n < 10 and "%.1f%s" or "%.0f%s"):format(n, units[k])
end

local start = tide.now()
local workers = {}
for w = 1, jobs do workers[w] = tide.spawn(worker) end
for i, root in ipairs(args) do
  sizes[i] = 0
  queue:put({ (root:gsub("(.)/+$", "%1")), i })
end
queue:join()
queue:close()
for _, w in ipairs(workers) do w:await() end

for i, root in ipairs(args) do
  local n = sizes[i]
  if unit == "-k" then n = (n + 1023) // 1024
  elseif unit == "human" then n = human(n) end
  if found[i] then print(("%s\t%s"):format(n, root)) end
end
io.stderr:write(("%d files, %d directories in %.2f s, %d at a time\n")
                :format(files, dirs, tide.now() - start, jobs))
if errors > 0 then os.exit(1) end
