-- pargrep.lua: a parallel grep. Each file is searched by its own `grep`
-- process, at most JOBS at once (a Semaphore holds the others back);
-- matches are printed per file as each search finishes. The exit status
-- is grep's: 0 if a line matched, 1 if none, 2 on an error.
-- Run: tide scripts/pargrep.lua [-j JOBS] PATTERN FILE...
--      tide scripts/pargrep.lua -j 4 tide_wait runtime/*.c bindings/*.c
local args, jobs = { ... }, 8
if args[1] == "-j" then
  jobs = math.tointeger(tonumber(args[2]))
  if not jobs or jobs < 1 then
    io.stderr:write("pargrep: -j needs a positive number\n")
    os.exit(2)
  end
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
local matched, failed = 0, false

local function search (file)
  local _ <close> = slots:hold()           -- released when this returns
  running = running + 1
  most = math.max(most, running)
  local out, err, code = tide.process.exec({ "grep", "-n", "--", pattern, file })
  running = running - 1
  if code == 0 then
    matched = matched + 1
    for line in out:gmatch("[^\n]+") do print(file .. ":" .. line) end
  elseif code ~= 1 then                     -- 1: no match; else a failure
    failed = true
    io.stderr:write(out == nil and ("pargrep: " .. err .. "\n") or err)
  end
end

local searches = {}
for i, file in ipairs(args) do
  searches[i] = function () search(file) end
end
tide.gather(table.unpack(searches))
io.stderr:write(("%d of %d files match; at most %d greps ran at once\n")
  :format(matched, #args, most))
os.exit(failed and 2 or matched > 0 and 0 or 1)
