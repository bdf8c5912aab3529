-- Files under tide (tide.fs, on libuv's thread pool): read N small files
-- (10,000 of 1 KiB) with read_file, 64 at a time; then read one MIB MiB
-- file (256) from start to end in 1 MiB reads. The files are made in DIR
-- (default $TMPDIR/tide-bench-fs) on the first run and shared with
-- bench/fs.js, bench/fs_luv.lua and bench/fs.py.
-- Usage: tide bench/fs.lua [DIR [N [MIB]]]. Prints small_files_per_s and
-- bigfile_mb_per_s (MB = 10^6 bytes).
local dir = arg[1] or (os.getenv("TMPDIR") or "/tmp") .. "/tide-bench-fs"
local n = tonumber(arg[2]) or 10000
local mib = tonumber(arg[3]) or 256
local fs = tide.fs

-- The files, made with plain io the first time (not measured).
local function setup ()
  local ready = ("%s/ready-%d-%d"):format(dir, n, mib)
  if io.open(ready) then return end
  assert(fs.mkdir(dir .. "/small", { parents = true }))
  local body = ("0123456789abcdef"):rep(64)
  for i = 0, n - 1 do
    local f = assert(io.open(("%s/small/%d"):format(dir, i), "wb"))
    f:write(body)
    f:close()
  end
  local block = ("tide bench data\n"):rep(65536)
  local f = assert(io.open(dir .. "/big", "wb"))
  for _ = 1, mib do f:write(block) end
  f:close()
  io.open(ready, "w"):close()
end
setup()

local next_file, bytes = 0, 0
local function reader ()
  while next_file < n do
    local i = next_file
    next_file = i + 1
    local data = assert(fs.read_file(("%s/small/%d"):format(dir, i)))
    bytes = bytes + #data
  end
end

local t0 = tide.hrtime()
local readers = {}
for i = 1, 64 do readers[i] = tide.spawn(reader) end
for i = 1, 64 do readers[i]:await() end
assert(bytes == n * 1024)
print(("small_files_per_s\t%.0f"):format(n / ((tide.hrtime() - t0) / 1e9)))

t0 = tide.hrtime()
local f <close> = assert(fs.open(dir .. "/big"))
local total = 0
while true do
  local data = f:read(1024 * 1024)
  if not data then break end
  total = total + #data
end
assert(total == mib * 1024 * 1024)
print(("bigfile_mb_per_s\t%.1f"):format(total / 1e6 / ((tide.hrtime() - t0) / 1e9)))
