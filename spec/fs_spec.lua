-- fs_spec.lua: files and directories (bindings/fs*.c, runtime/lua/fs.lua)
-- against a temporary directory, and the scripts built on them. The
-- standard streams are in stdio_spec.lua.

local fs = tide.fs

-- A new temporary directory, removed at the end of the test.
local function tmpdir ()
  local d = assert(fs.mkdtemp())
  finally(function () os.execute("rm -rf '" .. d .. "'") end)
  return d
end

-- Write s to path with plain io (the reference the specs compare to).
local function put (path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

local function get (path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local PID = (function ()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("n")
  f:close()
  return pid
end)()

-- The count of this process's fds open on path (a file, a directory or a
-- FIFO), whatever else the process opens meanwhile.
local function fds_on (path)
  local n, tail = 0, " -> " .. path
  local p = assert(io.popen("ls -l /proc/" .. PID .. "/fd"))
  for line in p:lines() do
    if line:sub(-#tail) == tail then n = n + 1 end
  end
  p:close()
  return n
end

-- s as a pattern that matches it literally.
local function lit (s)
  return (s:gsub("%p", "%%%0"))
end

-- The names in a directory, sorted.
local function names (dir)
  local list = {}
  for name in fs.scandir(dir) do list[#list + 1] = name end
  table.sort(list)
  return list
end

local function fail (code, ...)
  local r = table.pack(...)
  assert.is_nil(r[1])
  assert.is_string(r[2])
  assert.equal(code, r[3])
  return r[2]
end

describe("tide.fs.read_file and write_file", function ()
  it("round-trip binary data", async(function ()
    local d = tmpdir()
    local data = ("\0\1\2\255 text\n"):rep(1000)
    assert.is_true(fs.write_file(d .. "/f", data))
    assert.equal(data, get(d .. "/f"))
    assert.equal(data, fs.read_file(d .. "/f"))
    assert.is_true(fs.write_file(d .. "/empty", ""))
    assert.equal("", fs.read_file(d .. "/empty"))
  end))

  it("read_file reads files whose size stat does not tell", async(function ()
    local s = assert(fs.read_file("/proc/self/status"))
    assert.matches("Name:", s)
  end))

  it("read_file returns nil, message, code for a missing file or a directory", async(function ()
    local d = tmpdir()
    assert.matches("^" .. lit(d) .. "/nope: no such file", fail("ENOENT", fs.read_file(d .. "/nope")))
    fail("EISDIR", fs.read_file(d))
  end))

  it("write_file replaces the file whole, leaving no temporary file", async(function ()
    local d = tmpdir()
    put(d .. "/f", "old content")
    assert.is_true(fs.write_file(d .. "/f", "new"))
    assert.equal("new", get(d .. "/f"))
    assert.same({ "f" }, names(d))
  end))

  it("write_file keeps an existing file's mode, or sets the one given", async(function ()
    local d = tmpdir()
    put(d .. "/f", "x")
    assert(fs.chmod(d .. "/f", "640"))
    assert.is_true(fs.write_file(d .. "/f", "y"))
    assert.equal(tonumber("640", 8), fs.stat(d .. "/f").mode)
    assert.is_true(fs.write_file(d .. "/g", "z", tonumber("600", 8)))
    assert.equal(tonumber("600", 8), fs.stat(d .. "/g").mode)
  end))

  it("write_file fails with nil, message, code and leaves the directory as it was", async(function ()
    local d = tmpdir()
    local msg = fail("ENOENT", fs.write_file(d .. "/missing/f", "x"))
    assert.matches("^" .. lit(d) .. "/missing/f: ", msg)
    assert(fs.mkdir(d .. "/sub"))
    fail("EISDIR", fs.write_file(d .. "/sub", "x"))
    assert.same({ "sub" }, names(d))
  end))

  it("write_file fails with EACCES in a directory it may not write", async(function ()
    local d = tmpdir()
    assert(fs.mkdir(d .. "/ro", "555"))
    if io.popen("id -u"):read("n") ~= 0 then
      fail("EACCES", fs.write_file(d .. "/ro/f", "x"))
      return
    end
    -- root may write anywhere: the call runs in a child as nobody
    assert(fs.chmod(d, "755"))
    local out = sh("setpriv --reuid=65534 --regid=65534 --clear-groups " .. TIDE ..
                   " -e 'print(select(3, tide.fs.write_file(\"" .. d .. "/ro/f\", \"x\")))'")
    assert.equal("EACCES\n", out)
    assert.same({}, names(d .. "/ro"))
  end))

  it("write_file cancelled leaves the old content and no temporary file", async(function ()
    local d = tmpdir()
    put(d .. "/f", "old")
    local big = ("x"):rep(64 * 1024 * 1024)
    local t = tide.spawn(fs.write_file, d .. "/f", big)
    tide.sleep(0.002)
    t:cancel()
    assert.has_error(function () t:await() end)
    assert.is_true(t:cancelled())
    holdpool(tmpdir(), finally)()    -- an open it cancelled is undone once ended
    assert.equal("old", get(d .. "/f"))
    assert.same({ "f" }, names(d))
  end))

  it("write_file cancelled at any point leaves the whole file or none, and no temporary", async(function ()
    local d = tmpdir()
    local n, tasks = 600, {}
    for i = 1, n do tasks[i] = tide.spawn(fs.write_file, d .. "/f" .. i, "data " .. i) end
    for i = 1, n do                  -- each at another step of its work
      tasks[i]:cancel()
      if i % 3 == 0 then tide.sleep(0.0005) else tide.yield() end
    end
    for i = 1, n do pcall(tasks[i].await, tasks[i]) end
    local release = holdpool(d, finally) -- every request still queued has ended
    release()
    for name in fs.scandir(d) do
      if name ~= "gate" then
        local i = assert(tonumber(name:match("^f(%d+)$")), "a stray file: " .. name)
        assert.equal("data " .. i, get(d .. "/" .. name))
      end
    end
  end))

  it("raise on wrong arguments, naming the function", async(function ()
    assert.has_error(function () fs.read_file(1) end,
      "bad argument #1 to 'read_file' (string expected, got number)")
    assert.has_error(function () fs.write_file("x", {}) end,
      "bad argument #2 to 'write_file' (string expected, got table)")
    assert.has_error(function () fs.write_file("x", "", "8") end,
      'bad argument #3 to \'write_file\' (mode expected (an integer or octal digits), got "8")')
    assert.has_error(function () fs.mkdir("x", { mode = 8 ^ 5 }) end,
      "bad argument #2 to 'mkdir' (mode expected (an integer or octal digits), got number)")
    assert.has_error(function () fs.mkdir("x", 4096) end,
      "bad argument #2 to 'mkdir' (mode out of range)")
    local ok, err = pcall(fs.stat)
    assert.is_false(ok)
    assert.equal("bad argument #1 to 'tide.fs.stat' (string expected, got no value)", err)
  end))

  it("raise outside a task and inside a C call, naming the function", async(function ()
    local errs = {}
    local t = tide.spawn(function () end)
    t:await()
    t:on_done(function ()             -- callbacks run outside tasks
      for _, f in ipairs({ "read_file", "write_file", "mkdir", "exists", "scandir", "readdir", "mkdtemp" }) do
        errs[f] = select(2, pcall(fs[f], "/tmp/x", f == "write_file" and "data" or nil))
      end
    end)
    for f, err in pairs(errs) do
      assert.equal("'tide.fs." .. f .. "' must be called inside a task (use tide.run or tide.spawn)", err)
    end
    local ok, err = pcall(table.sort, { 1, 2 }, function () return fs.exists("/") end)
    assert.is_false(ok)
    assert.matches("'tide.fs.exists' cannot wait inside a C call", err, 1, true)
  end))

  it("1,000 concurrent read_file calls each get their file", async(function ()
    local d = tmpdir()
    for i = 1, 100 do put(d .. "/" .. i, ("file %d\n"):format(i):rep(i)) end
    local tasks = {}
    for i = 1, 1000 do
      local k = i % 100 + 1
      tasks[i] = tide.spawn(function ()
        return fs.read_file(d .. "/" .. k) == ("file %d\n"):format(k):rep(k)
      end)
    end
    for i = 1, 1000 do assert.is_true(tasks[i]:await()) end
  end))
end)

describe("tide.fs.open and File", function ()
  it("reads and writes at the position or at an offset, seeks and truncates", async(function ()
    local d = tmpdir()
    local f <close> = assert(fs.open(d .. "/f", "w+"))
    assert.equal(f, f:write("hello world"))
    assert.equal(11, f:seek())
    assert.equal(0, f:seek("set"))
    assert.equal("hello", f:read(5))
    assert.equal(" world", f:read())
    assert.is_nil(f:read(10))                        -- end of file
    assert.equal("", f:read(0))
    assert.equal("world", f:read(100, 6))
    assert.equal(f, f:write("J", 6))
    assert.equal("hello Jorld", f:read(100, 0))
    assert.equal(8, f:seek("end", -3))
    assert.is_true(f:sync())
    assert.is_true(f:sync(true))
    assert.is_true(f:truncate(5))
    assert.equal(5, f:stat().size)
    assert.is_true(f:close())
    assert.equal("hello", get(d .. "/f"))
  end))

  it("opens with io.open's modes and O_* flags", async(function ()
    local d = tmpdir()
    put(d .. "/f", "abc")
    local a <close> = assert(fs.open(d .. "/f", "a"))
    a:write("def")
    a:close()
    assert.equal("abcdef", get(d .. "/f"))
    fail("EEXIST", fs.open(d .. "/f", "wx"))
    local r <close> = assert(fs.open(d .. "/f", "rb"))
    fail("EBADF", r:write("x"))
    local w <close> = assert(fs.open(d .. "/f", "w"))
    assert.equal("", get(d .. "/f"))
    fail("EBADF", w:read(1))
    local n <close> = assert(fs.open(d .. "/new", 66, "600"))  -- O_RDWR|O_CREAT
    assert.equal(tonumber("600", 8), n:stat().mode)
  end))

  it("fails with nil, message, code", async(function ()
    local d = tmpdir()
    assert.matches("^" .. lit(d) .. "/nope: no such file",
                   fail("ENOENT", fs.open(d .. "/nope")))
    fail("EISDIR", fs.open(d, "w"))
    fail("ENOTDIR", fs.open("/etc/passwd/x"))
  end))

  it("raises on a bad mode and a closed file; waits through coroutine.wrap", async(function ()
    local d = tmpdir()
    assert.has_error(function () fs.open(d .. "/f", "q") end,
      "bad argument #2 to 'open' (invalid mode)")
    assert.has_error(function () fs.open(d .. "/f", "w", "9") end,
      "bad argument #3 to 'open' (octal digits expected)")
    local f = assert(fs.open(d .. "/f", "w"))
    assert.is_true(f:close())
    assert.is_true(f:close())                         -- harmless twice
    assert.has_error(function () f:read(1) end, "File:read: attempt to use a closed file")
    assert.matches("closed", tostring(f))
    local co = coroutine.wrap(function () return pcall(fs.stat, "/") end)
    assert.is_true((co()))                            -- waits pass through
  end))

  it("closes its fd with <close> and when collected", async(function ()
    local d = fs.realpath(tmpdir())
    put(d .. "/f", "x")
    do
      local f <close> = assert(fs.open(d .. "/f"))
      assert.equal(1, fds_on(d .. "/f"))
    end
    assert.equal(0, fds_on(d .. "/f"))
    local g = assert(fs.open(d .. "/f"))
    assert.matches("tide.File %(" .. lit(d) .. "/f%)", tostring(g))
    assert.equal(1, fds_on(d .. "/f"))
    g = nil                                           -- luacheck: ignore
    collectgarbage()
    collectgarbage()
    assert.equal(0, fds_on(d .. "/f"))
  end))

  it("seek and truncate fail with nil, message, code", async(function ()
    local d = tmpdir()
    put(d .. "/f", "abc")
    local f <close> = assert(fs.open(d .. "/f"))
    fail("EINVAL", f:seek("set", -1))
    assert.equal(0, f:seek())
    local r = table.pack(f:truncate(1))               -- not open for writing
    assert.is_nil(r[1])
    assert.truthy(r[3] == "EINVAL" or r[3] == "EBADF", r[3])
    assert.has_error(function () f:truncate(-1) end,
      "bad argument #1 to 'truncate' (non-negative size expected)")
    assert.has_error(function () f:read(-1) end,
      "bad argument #1 to 'read' (size out of range)")
  end))

  it("keeps its fd for a read in flight when closed, then closes it", async(function ()
    local d = fs.realpath(tmpdir())
    put(d .. "/f", "abc")
    local f = assert(fs.open(d .. "/f"))
    local release = holdpool(d, finally)
    local t = tide.spawn(f.read, f, 10)
    tide.sleep(0.01)
    assert.is_true(f:close())
    assert.equal(1, fds_on(d .. "/f"))       -- the read still has the fd
    release()
    assert.equal("abc", t:await())
    assert.equal(0, fds_on(d .. "/f"))
  end))

  it("a cancelled read leaves the file usable", async(function ()
    local d = tmpdir()
    put(d .. "/f", "abc")
    local f <close> = assert(fs.open(d .. "/f"))
    local release = holdpool(d, finally)
    local t = tide.spawn(f.read, f, 10, 0)
    tide.sleep(0.01)
    t:cancel()
    assert.has_error(function () t:await() end)
    release()
    assert.equal("abc", f:read(10, 0))
  end))

  it("lines gives each line without its newline, long ones too", async(function ()
    local d = tmpdir()
    local long = ("y"):rep(200000)
    put(d .. "/f", "a\n\nb\n" .. long .. "\nlast")
    local f <close> = assert(fs.open(d .. "/f"))
    local got = {}
    for line in f:lines() do got[#got + 1] = line end
    assert.same({ "a", "", "b", long, "last" }, got)
    put(d .. "/e", "")
    local e <close> = assert(fs.open(d .. "/e"))
    assert.is_nil(e:lines()())
  end))

  it("lines raises on a read error", async(function ()
    local d = tmpdir()
    local f <close> = assert(fs.open(d .. "/f", "w"))
    assert.has_error(function () for _ in f:lines() do end end)
  end))

  it("copies a 256 MiB file through read and write, identical by sha256sum", async(function ()
    local d = tmpdir()
    assert(os.execute(("head -c %d /dev/urandom > '%s/src'"):format(256 * 1024 * 1024, d)))
    local src <close> = assert(fs.open(d .. "/src"))
    local dst <close> = assert(fs.open(d .. "/dst", "w"))
    local total = 0
    while true do
      local chunk, err = src:read(1024 * 1024)
      assert.is_nil(err)
      if chunk == nil then break end
      assert.equal(dst, dst:write(chunk))
      total = total + #chunk
    end
    assert.is_true(dst:close())
    assert.equal(256 * 1024 * 1024, total)
    local sums = sh(("cd '%s' && sha256sum src dst | cut -d' ' -f1 | uniq | wc -l"):format(d))
    assert.equal("1", sums:match("%d+"))
  end))

  it("a cancelled open leaves no fd open, even when the open had begun", async(function ()
    local fifo = fs.realpath(tmpdir()) .. "/fifo"
    assert(os.execute("mkfifo '" .. fifo .. "'"))
    local t = tide.spawn(fs.open, fifo, "r")       -- blocks on a pool thread
    tide.sleep(0.05)
    t:cancel()
    assert.has_error(function () t:await() end)
    local w = io.open(fifo, "w")                    -- the open completes now
    tide.sleep(0.05)
    for _ = 1, 200 do                               -- w's fd, and the open's
      if fds_on(fifo) == 1 then break end           -- until it is closed
      tide.sleep(0.01)
    end
    assert.equal(1, fds_on(fifo))
    w:close()
    assert.equal(0, fds_on(fifo))
  end))

  it("a pending call is cancelled before it runs", async(function ()
    local d = tmpdir()
    local release = holdpool(d, finally)
    local t = tide.spawn(fs.mkdir, d .. "/never")
    tide.sleep(0.01)
    assert.equal("waiting", t:state())
    t:cancel()
    assert.has_error(function () t:await() end)
    release()
    assert.is_true(t:cancelled())
    assert.is_false(fs.exists(d .. "/never"))
    assert.is_true(fs.mkdir(d .. "/now"))            -- the pool goes on
  end))
end)

describe("a File read in whole reads of one size", function ()
  local N = 4096

  -- count chunks of N bytes, each of its own digits.
  local function chunks (count)
    local parts = {}
    for i = 1, count do parts[i] = ("%08d"):format(i):rep(N // 8) end
    return parts
  end

  -- A new file of count chunks and tail, open (mode), and its chunks.
  local function chunkfile (count, tail, mode)
    local path = tmpdir() .. "/f"
    local parts = chunks(count)
    put(path, table.concat(parts) .. (tail or ""))
    return assert(fs.open(path, mode)), parts
  end

  it("reads ahead without moving the position or serving stale data", async(function ()
    local f <close>, parts = chunkfile(12, "tail", "r+")
    for i = 1, 4 do
      assert.equal(parts[i], f:read(N))
      assert.equal(i * N, f:seek())
    end
    tide.sleep(0.01)                                 -- what was read ahead is there
    assert.equal(parts[5], f:read(N))
    assert.equal(parts[1], f:read(N, 0))             -- at an offset: aside
    assert.equal(parts[6], f:read(N))
    assert.equal(f, f:write(("x"):rep(N), 7 * N))    -- a write: stale
    assert.equal(parts[7], f:read(N))
    assert.equal(("x"):rep(N), f:read(N))
    assert.equal(N, f:seek("set", N))                -- a seek: stale
    for i = 2, 4 do assert.equal(parts[i], f:read(N)) end
    assert.equal(parts[5]:sub(1, 100), f:read(100))  -- another size
    assert.equal(4 * N + 100, f:seek())
    assert.equal(parts[5]:sub(101), f:read(N - 100))
    assert.equal(parts[6], f:read(N))
    assert.is_true(f:truncate(7 * N + 10))           -- a truncate: stale
    assert.equal(parts[7], f:read(N))
    assert.equal(("x"):rep(10), f:read(N))
    assert.is_nil(f:read(N))
    assert.equal(7 * N + 10, f:seek())
  end))

  it("gives every byte up to the end, a short last read included", async(function ()
    for _, tail in ipairs({ "", "end" }) do
      local f <close>, parts = chunkfile(20, tail)
      local got = {}
      while true do
        local s = f:read(N)
        if s == nil then break end
        got[#got + 1] = s
      end
      if tail ~= "" then parts[#parts + 1] = tail end
      assert.same(parts, got)
      assert.is_nil(f:read(N))
    end
  end))

  it("shares the bytes between tasks reading at the position, each once", async(function ()
    local f <close>, parts = chunkfile(64)
    local got = {}
    local function reader ()
      while true do
        local s = f:read(N)
        if s == nil then return end
        got[#got + 1] = s
      end
    end
    tide.gather(reader, reader, reader)
    table.sort(got)
    assert.same(parts, got)
  end))

  it("a cancelled read waiting on a read ahead leaves the position", async(function ()
    local f <close>, parts = chunkfile(8)
    assert.equal(parts[1], f:read(N))
    assert.equal(parts[2], f:read(N))                -- reads 3 and 4 ahead
    tide.sleep(0.01)
    local release = holdpool(tmpdir(), finally)
    assert.equal(parts[3], f:read(N))                -- 5 and 6 wait for the pool
    assert.equal(parts[4], f:read(N))
    local t = tide.spawn(f.read, f, N)
    tide.sleep(0.01)
    assert.equal("waiting", t:state())
    t:cancel()
    assert.has_error(function () t:await() end)
    assert.equal(4 * N, f:seek())
    release()
    for i = 5, 8 do assert.equal(parts[i], f:read(N)) end
    assert.is_nil(f:read(N))
  end))

  it("reads a FIFO as asked, never ahead", async(function ()
    local fifo = tmpdir() .. "/fifo"
    assert(os.execute("mkfifo '" .. fifo .. "'"))
    local f <close> = assert(fs.open(fifo, "r+"))
    assert.equal(f, f:write("aabbccdd"))
    for _, s in ipairs({ "aa", "bb", "cc", "dd" }) do assert.equal(s, f:read(2)) end
  end))

  it("closes its fd once what it read ahead has ended", async(function ()
    local d = fs.realpath(tmpdir())
    put(d .. "/f", table.concat(chunks(8)))
    for _, drop in ipairs({ "close", "collect" }) do
      local f = assert(fs.open(d .. "/f"))
      for _ = 1, 3 do assert(f:read(N)) end
      if drop == "close" then assert.is_true(f:close()) end
      f = nil                                        -- luacheck: ignore
      collectgarbage()
      for _ = 1, 100 do
        if fds_on(d .. "/f") == 0 then break end
        tide.sleep(0.01)
      end
      assert.equal(0, fds_on(d .. "/f"))
    end
  end))
end)

describe("tide.fs paths", function ()
  it("stat and lstat give a table; links are told apart", async(function ()
    local d = tmpdir()
    put(d .. "/f", "12345")
    assert(fs.symlink("f", d .. "/l"))
    local st = assert(fs.stat(d .. "/l"))
    assert.equal("file", st.type)
    assert.equal(5, st.size)
    assert.equal(1, st.nlink)
    assert.is_number(st.mtime)
    assert.is_true(math.abs(st.mtime - os.time()) < 60)
    for _, k in ipairs({ "mode", "uid", "gid", "dev", "ino", "blksize", "blocks" }) do
      assert.is_number(st[k], k)
    end
    assert.equal("link", fs.lstat(d .. "/l").type)
    assert.equal("directory", fs.stat(d).type)
    assert.equal("char", fs.stat("/dev/null").type)
    fail("ENOENT", fs.stat(d .. "/nope"))
    fail("ENOENT", fs.lstat(d .. "/nope"))
    assert.has_error(function () fs.stat() end)
  end))

  it("exists says whether a path exists", async(function ()
    local d = tmpdir()
    put(d .. "/f", "")
    assert.is_true(fs.exists(d .. "/f"))
    assert.is_false(fs.exists(d .. "/nope"))
    assert.is_false(fs.exists(d .. "/f/under"))
    assert(fs.symlink("loop", d .. "/loop"))
    fail("ELOOP", fs.exists(d .. "/loop"))            -- neither yes nor no
  end))

  it("mkdir makes one level, or every missing parent", async(function ()
    local d = tmpdir()
    assert.is_true(fs.mkdir(d .. "/a"))
    fail("EEXIST", fs.mkdir(d .. "/a"))
    fail("ENOENT", fs.mkdir(d .. "/x/y"))
    assert.is_true(fs.mkdir(d .. "/x/y/z/", { parents = true }))
    assert.equal("directory", fs.stat(d .. "/x/y/z").type)
    assert.is_true(fs.mkdir(d .. "/x/y", { parents = true }))   -- exists: fine
    put(d .. "/file", "")
    fail("EEXIST", fs.mkdir(d .. "/file", { parents = true }))
    fail("ENOTDIR", fs.mkdir(d .. "/file/sub", { parents = true }))
    assert.is_true(fs.mkdir(d .. "/m", { mode = tonumber("700", 8) }))
    assert.equal(tonumber("700", 8), fs.stat(d .. "/m").mode)
  end))

  it("rmdir, unlink and rename, with their failures", async(function ()
    local d = tmpdir()
    assert(fs.mkdir(d .. "/a/b", { parents = true }))
    fail("ENOTEMPTY", fs.rmdir(d .. "/a"))
    assert.is_true(fs.rmdir(d .. "/a/b"))
    fail("ENOENT", fs.rmdir(d .. "/a/b"))
    put(d .. "/f", "x")
    fail("ENOTDIR", fs.rmdir(d .. "/f"))
    fail("EISDIR", fs.unlink(d .. "/a"))
    assert.is_true(fs.rename(d .. "/f", d .. "/a/g"))
    assert.equal("x", get(d .. "/a/g"))
    fail("ENOENT", fs.rename(d .. "/f", d .. "/h"))
    assert.is_true(fs.unlink(d .. "/a/g"))
    fail("ENOENT", fs.unlink(d .. "/a/g"))
  end))

  it("copyfile copies, and refuses to overwrite when exclusive", async(function ()
    local d = tmpdir()
    put(d .. "/f", "data")
    assert.is_true(fs.copyfile(d .. "/f", d .. "/g"))
    assert.equal("data", get(d .. "/g"))
    put(d .. "/f", "more data")
    assert.is_true(fs.copyfile(d .. "/f", d .. "/g"))
    assert.equal("more data", get(d .. "/g"))
    fail("EEXIST", fs.copyfile(d .. "/f", d .. "/g", true))
    fail("ENOENT", fs.copyfile(d .. "/nope", d .. "/h"))
  end))

  it("symlink, readlink and realpath", async(function ()
    local d = tmpdir()
    put(d .. "/f", "")
    assert.is_true(fs.symlink("f", d .. "/l"))
    assert.equal("f", fs.readlink(d .. "/l"))
    local real = assert(fs.realpath(d))
    assert.equal(real .. "/f", fs.realpath(d .. "/l"))
    assert.equal(real .. "/f", fs.realpath(d .. "/./l"))
    assert.matches("^" .. lit(d) .. "/l: ", fail("EEXIST", fs.symlink("f", d .. "/l")))
    fail("EINVAL", fs.readlink(d .. "/f"))
    fail("ENOENT", fs.readlink(d .. "/nope"))
    assert(fs.symlink("dangling", d .. "/bad"))
    fail("ENOENT", fs.realpath(d .. "/bad"))
  end))

  it("chmod takes an integer or octal digits", async(function ()
    local d = tmpdir()
    put(d .. "/f", "")
    assert.is_true(fs.chmod(d .. "/f", tonumber("751", 8)))
    assert.equal(tonumber("751", 8), fs.stat(d .. "/f").mode)
    assert.is_true(fs.chmod(d .. "/f", "0600"))
    assert.equal(tonumber("600", 8), fs.stat(d .. "/f").mode)
    fail("ENOENT", fs.chmod(d .. "/nope", "600"))
    assert.has_error(function () fs.chmod(d .. "/f", "rwx") end)
    assert.has_error(function () fs.chmod(d .. "/f", 99999) end)
    assert.has_error(function () fs.chmod(d .. "/f") end)
  end))

  it("utime sets the access and modification times", async(function ()
    local d = tmpdir()
    put(d .. "/f", "")
    assert.is_true(fs.utime(d .. "/f", 1000000000, 1500000000.5))
    local st = fs.stat(d .. "/f")
    assert.equal(1000000000, st.atime)
    assert.equal(1500000000.5, st.mtime)
    fail("ENOENT", fs.utime(d .. "/nope", 0, 0))
  end))

  it("mkdtemp makes a new private directory each time", async(function ()
    local d = tmpdir()
    local a = assert(fs.mkdtemp(d .. "/t-"))
    local b = assert(fs.mkdtemp(d .. "/t-XXXXXX"))
    assert.not_equal(a, b)
    assert.matches("^" .. lit(d) .. "/t%-......$", a)
    assert.equal(tonumber("700", 8), fs.stat(a).mode)
    fail("ENOENT", fs.mkdtemp(d .. "/missing/t-"))
  end))
end)

describe("tide.fs directories", function ()
  it("scandir and readdir give each entry with its type", async(function ()
    local d = tmpdir()
    put(d .. "/f", "")
    assert(fs.mkdir(d .. "/sub"))
    assert(fs.symlink("f", d .. "/l"))
    for _, list in ipairs({ fs.scandir, fs.readdir }) do
      local got = {}
      for name, type in list(d) do got[name] = type end
      assert.same({ f = "file", sub = "directory", l = "link" }, got)
    end
  end))

  it("readdir reads a large directory in batches and closes it after a break", async(function ()
    local d = tmpdir()
    assert(os.execute(("cd '%s' && touch $(seq 1 1000)"):format(d)))
    local seen, n = {}, 0
    for name, type in fs.readdir(d) do
      assert.equal("file", type)
      assert.is_nil(seen[name])
      seen[name], n = true, n + 1
    end
    assert.equal(1000, n)
    d = fs.realpath(d)
    for _ in fs.readdir(d) do
      assert.equal(1, fds_on(d))
      break
    end
    assert.equal(0, fds_on(d))
  end))

  it("scandir and readdir fail with nil, message, code", async(function ()
    local d = tmpdir()
    put(d .. "/f", "")
    fail("ENOENT", fs.scandir(d .. "/nope"))
    fail("ENOTDIR", fs.scandir(d .. "/f"))
    fail("ENOENT", fs.readdir(d .. "/nope"))
    fail("ENOTDIR", fs.readdir(d .. "/f"))
    for _ in fs.scandir(tmpdir()) do error("an empty directory has entries") end
  end))
end)

describe("tide.fs.watch", function ()
  it("reports changes in a directory, waiting for them", async(function ()
    local d = tmpdir()
    local w <close> = assert(fs.watch(d))
    local t = tide.spawn(function ()
      tide.sleep(0.02)
      assert(fs.write_file(d .. "/f", "x"))
    end)
    local seen = {}
    while not seen.f do
      local name, event = tide.timeout(5, w.read, w)
      assert.is_string(name, "no event within 5 s")
      assert.truthy(event == "rename" or event == "change")
      seen[name] = true
    end
    t:await()
  end))

  it("loops with for, which ends when the watcher is closed", async(function ()
    local d = tmpdir()
    local w = assert(fs.watch(d))
    tide.spawn(function ()
      put(d .. "/a", "1")
      tide.sleep(0.05)
      w:close()
    end)
    local n = 0
    for name in w do
      assert.equal("a", name)
      n = n + 1
    end
    assert.is_true(n >= 1)
    assert.same({ nil, "watcher closed", "ECANCELED" }, { w:read() })
  end))

  it("reports changes to a file and its renaming", async(function ()
    local d = tmpdir()
    put(d .. "/f", "x")
    local w <close> = assert(fs.watch(d .. "/f"))
    tide.spawn(function ()
      tide.sleep(0.02)
      local f = io.open(d .. "/f", "a")
      f:write("more")
      f:close()
      tide.sleep(0.02)
      os.rename(d .. "/f", d .. "/g")
    end)
    local seen = {}
    while not seen.rename do
      local name, event = tide.timeout(5, w.read, w)
      assert.equal("f", name, "no event within 5 s")
      seen[event] = true
    end
    assert.is_true(seen.change)
  end))

  it("a cancelled read leaves the watcher usable; one reader at a time", async(function ()
    local d = tmpdir()
    local w <close> = assert(fs.watch(d))
    local t = tide.spawn(w.read, w)
    tide.sleep(0.01)
    assert.has_error(function () w:read() end,
      "Watcher:read: another task is already reading this watcher")
    t:cancel()
    assert.has_error(function () t:await() end)
    tide.spawn(function () tide.sleep(0.01) put(d .. "/new", "") end)
    local name = tide.timeout(5, w.read, w)
    assert.equal("new", name)
  end))

  it("lives while a task reads it, however it was dropped", async(function ()
    local d = tmpdir()
    local w = assert(fs.watch(d))
    local t = tide.spawn(w.read, w)
    tide.sleep(0.01)
    w = nil                                           -- luacheck: ignore
    collectgarbage()
    collectgarbage()
    tide.spawn(function () tide.sleep(0.01) put(d .. "/new", "") end)
    assert.same({ "new", "rename" }, { tide.timeout(5, t.await, t) })
  end))

  it("wakes a waiting reader with nil, message, code when closed", async(function ()
    local w = assert(fs.watch(tmpdir()))
    local t = tide.spawn(w.read, w)
    tide.sleep(0.01)
    w:close()
    assert.same({ nil, "watcher closed", "ECANCELED" }, { t:await() })
    assert.matches("closed", tostring(w))
  end))

  it("fails with nil, message, code for a missing path or an unsupported option", async(function ()
    local d = tmpdir()
    fail("ENOENT", fs.watch(d .. "/nope"))
    local os_name = sh("uname -s"):match("%S+")
    if os_name ~= "Darwin" then
      fail("ENOTSUP", fs.watch(d, { recursive = true }))
    end
    assert.has_error(function () fs.watch() end,
      "bad argument #1 to 'watch' (string expected, got nil)")
  end))
end)

describe("scripts/du.lua and scripts/hash_files.lua", function ()
  it("du.lua -k agrees with du -sk, counting hard links once", async(function ()
    local d = tmpdir()
    assert(fs.mkdir(d .. "/a/b/c", { parents = true }))
    for i = 1, 30 do put(("%s/a/b/f%d"):format(d, i), ("x"):rep(i * 1000)) end
    put(d .. "/a/big", ("y"):rep(300000))
    assert(os.execute(("ln '%s/a/big' '%s/a/b/c/hard' && ln -s big '%s/a/link'"):format(d, d, d)))
    local out = sh(("(%s scripts/du.lua -j 3 -k '%s' 2>/dev/null)"):format(TIDE, d))
    local ref = sh(("du -sk '%s'"):format(d))
    assert.equal(ref, out)
  end))

  it("hash_files.lua prints FNV-1a hashes and reports unreadable files", async(function ()
    local d = tmpdir()
    put(d .. "/empty", "")
    put(d .. "/a", "a")
    put(d .. "/foobar", "foobar")
    local out, code = sh(("(%s scripts/hash_files.lua %s/empty %s/a %s/foobar %s/nope 2>/dev/null)")
                         :format(TIDE, d, d, d, d))
    assert.equal(("811c9dc5  %s/empty\ne40c292c  %s/a\nbf9cf968  %s/foobar\n"):format(d, d, d), out)
    assert.equal(1, code)
  end))
end)
