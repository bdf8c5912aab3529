-- pargrep.lua: a parallel grep. Each file is searched by its own `grep`
-- process, at most JOBS at once (a Semaphore holds the others back);
-- matches are printed per file as each search finishes.
-- Run: tide scripts/pargrep.lua [-j JOBS] PATTERN FILE...
--      tide scripts/pargrep.lua -j 4 tide runtime/*.c bindings/*.c
local args, jobs = { ... }, 8
if args[1] == "-j" then
  jobs = assert(math.tointeger(tonumber(args[2])), "-j needs a number")
  table.remove(args, 1)
  table.remove(args, 1)
end
local pattern = table.remove(args, 1)
if not pattern or #args == 0 then
  io.stderr:write("usage: tide scripts/pargrep.lua [-j JOBS] PATTERN FILE...\n")
  os.exit(2)
end

local slots = tide.Semaphore(jobs)
local running, most = 0, 0

local function search (file)
  local _ <close> = slots:hold()           -- released when this returns
  running = running + 1
  most = math.max(most, running)
  local out, err, code = tide.process.exec({ "grep", "-n", "--", pattern, file })
  running = running - 1
  if code == 0 then
    for line in out:gmatch("[^\n]+") do print(file .. ":" .. line) end
  elseif code ~= 1 then                     -- 1: no match; else a failure
    io.stderr:write(file, ": ", err or out or "grep failed", "\n")
  end
  return code == 0 and 1 or 0
end

local searches = {}
for i, file in ipairs(args) do
  searches[i] = function () return search(file) end
end
local found = { tide.gather(table.unpack(searches)) }
local files = 0
for _, n in ipairs(found) do files = files + n end
io.stderr:write(("%d of %d files match; at most %d greps ran at once\n")
  :format(files, #args, most))
