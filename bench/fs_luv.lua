-- Files under luv (lua5.4 + lua-luv), callbacks on libuv's thread pool:
-- read N small files (10,000 of 1 KiB), 64 at a time, each as Node's
-- readFile does (open, fstat, read, close); then read one MIB MiB file (256)
-- from start to end in 1 MiB reads. The files are made in DIR (default
-- $TMPDIR/tide-bench-fs) on the first run and shared with bench/fs.lua,
-- bench/fs.js and bench/fs.py.
-- Usage: lua5.4 bench/fs_luv.lua [DIR [N [MIB]]]. Prints small_files_per_s
-- and bigfile_mb_per_s (MB = 10^6 bytes).
local uv = require "luv"
local dir = arg[1] or (os.getenv("TMPDIR") or "/tmp") .. "/tide-bench-fs"
local n = tonumber(arg[2]) or 10000
local mib = tonumber(arg[3]) or 256

-- The files, made with plain io the first time (not measured).
local function setup ()
  local ready = ("%s/ready-%d-%d"):format(dir, n, mib)
  if io.open(ready) then return end
  assert(os.execute(("mkdir -p '%s/small'"):format(dir)))
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
  if next_file >= n then return end
  local i = next_file
  next_file = i + 1
  uv.fs_open(("%s/small/%d"):format(dir, i), "r", 0, function (err, fd)
    assert(not err, err)
    uv.fs_fstat(fd, function (err2, st)
      assert(not err2, err2)
      uv.fs_read(fd, st.size, -1, function (err3, data)
        assert(not err3, err3)
        bytes = bytes + #data
        uv.fs_close(fd, function (err4)
          assert(not err4, err4)
          reader()
        end)
      end)
    end)
  end)
end

local t0 = uv.hrtime()
for _ = 1, 64 do reader() end
uv.run()
assert(bytes == n * 1024)
print(("small_files_per_s\t%.0f"):format(n / ((uv.hrtime() - t0) / 1e9)))

local total = 0
t0 = uv.hrtime()
uv.fs_open(dir .. "/big", "r", 0, function (err, fd)
  assert(not err, err)
  local function more ()
    uv.fs_read(fd, 1024 * 1024, -1, function (err2, data)
      assert(not err2, err2)
      if #data == 0 then
        uv.fs_close(fd, function () end)
        return
      end
      total = total + #data
      more()
    end)
  end
  more()
end)
uv.run()
assert(total == mib * 1024 * 1024)
print(("bigfile_mb_per_s\t%.1f"):format(total / 1e6 / ((uv.hrtime() - t0) / 1e9)))
