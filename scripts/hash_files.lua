-- hash_files.lua: hashes files on the thread pool with tide.work while the
-- loop stays free: a progress line on stderr is redrawn ten times a second
-- (files done, bytes hashed, elapsed time) as the hashes come in. The hash
-- is 32-bit FNV-1a in plain Lua, computed in a Lua state of its own on a
-- pool thread, which reads the file itself; at most as many files as the
-- pool has threads (UV_THREADPOOL_SIZE, 4 by default) are hashed at once.
-- Run: tide scripts/hash_files.lua FILE...
--      UV_THREADPOOL_SIZE=8 tide scripts/hash_files.lua /usr/bin/*
local files = { ... }
if #files == 0 then
  io.stderr:write("usage: tide scripts/hash_files.lua FILE...\n")
  os.exit(2)
end

-- Runs in the worker's state: FNV-1a over the file's bytes, and its size.
-- It has no upvalues (only globals), as tide.work requires.
local function fnv1a (path)
  local f, err = io.open(path, "rb")
  if not f then error(err, 0) end
  local byte, h, size = string.byte, 0x811c9dc5, 0
  while true do
    local block, rerr = f:read(65536)
    if not block then
      if rerr then f:close() error(path .. ": " .. rerr, 0) end  -- a directory
      break
    end
    size = size + #block
    for i = 1, #block do
      h = ((h ~ byte(block, i)) * 16777619) & 0xffffffff
    end
  end
  f:close()
  return ("%08x"):format(h), size
end

local slots = tide.Semaphore(tonumber(os.getenv("UV_THREADPOOL_SIZE")) or 4)
local done, bytes, failed, start = 0, 0, 0, tide.now()
local err_out = tide.stderr or io.stderr
local tty = tostring(tide.stderr):match("%(tty%)") ~= nil

local function progress (final)
  local line = ("[%d/%d] %.1f MB hashed, %.1f s")
               :format(done, #files, bytes / 1e6, tide.now() - start)
  if tty then err_out:write("\r\27[K" .. line .. (final and "\n" or ""))
  elseif final then err_out:write(line .. "\n") end
end

local ticker = tide.spawn(function ()
  while true do
    progress(false)
    tide.sleep(0.1)
  end
end)

local results = {}
local tasks = {}
for i, path in ipairs(files) do
  tasks[i] = tide.spawn(function ()
    local _ <close> = slots:hold()
    local ok, hash, size = pcall(tide.work, fnv1a, path)
    if ok then
      results[i] = hash .. "  " .. path
      bytes = bytes + size
    else
      results[i] = false
      failed = failed + 1
      if tty then err_out:write("\r\27[K") end
      err_out:write("hash_files.lua: " .. tostring(hash) .. "\n")
    end
    done = done + 1
  end)
end
for _, t in ipairs(tasks) do t:await() end
ticker:cancel()
progress(true)
for i = 1, #files do
  if results[i] then print(results[i]) end
end
if failed > 0 then os.exit(1) end
