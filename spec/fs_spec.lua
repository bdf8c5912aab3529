-- fs_spec.lua: files and directories (bindings/fs.c, runtime/lua/fs.lua)
-- against a temporary directory, and the standard streams (bindings/tty.c)
-- of a tide child process.

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

-- The count of this process's open fds.
local function nfds ()
  local n = 0
  local p = assert(io.popen("ls /proc/" .. PID .. "/fd"))
  for _ in p:lines() do n = n + 1 end
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

local POOL = tonumber(os.getenv("UV_THREADPOOL_SIZE")) or 4

-- Hold every thread of the pool until the returned function is called:
-- each runs a tide.work that blocks opening a FIFO for reading.
local function holdpool (dir)
  local fifo = dir .. "/gate"
  assert(os.execute("mkfifo '" .. fifo .. "'"))
  local holders = {}
  for i = 1, POOL do
    holders[i] = tide.spawn(tide.work, function (path)
      local f = io.open(path, "r")
      f:close()
      return true
    end, fifo)
  end
  tide.sleep(0.05)                 -- they have reached the open
  local released = false
  local function open_gate ()
    if released then return end
    released = true
    io.open(fifo, "w"):close()     -- the readers' open returns; they end
  end
  finally(open_gate)               -- if the test failed before
  return function ()
    open_gate()
    for i = 1, POOL do holders[i]:await() end
  end
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
    if io.popen("id -u"):read("n") == 0 then return end   -- root may write
    local d = tmpdir()
    assert(fs.mkdir(d .. "/ro", "555"))
    fail("EACCES", fs.write_file(d .. "/ro/f", "x"))
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
    assert.equal("old", get(d .. "/f"))
    assert.same({ "f" }, names(d))
  end))

  it("raises on wrong arguments", async(function ()
    assert.has_error(function () fs.read_file(1) end,
      "bad argument #1 to 'read_file' (string expected, got number)")
    assert.has_error(function () fs.write_file("x", {}) end,
      "bad argument #2 to 'write_file' (string expected, got table)")
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

  it("raises on a bad mode, a closed file and outside a task", async(function ()
    local d = tmpdir()
    assert.has_error(function () fs.open(d .. "/f", "q") end,
      "bad argument #2 to 'open' (invalid mode)")
    assert.has_error(function () fs.open(d .. "/f", "w", "9") end,
      "bad argument #3 to 'open' (octal digits expected)")
    local f = assert(fs.open(d .. "/f", "w"))
    assert.is_true(f:close())
    assert.is_true(f:close())                         -- harmless twice
    assert.has_error(function () f:read(1) end, "attempt to use a closed file")
    assert.matches("closed", tostring(f))
    local co = coroutine.wrap(function () return pcall(fs.stat, "/") end)
    assert.is_true((co()))                            -- waits pass through
  end))

  it("closes its fd with <close> and when collected", async(function ()
    local d = tmpdir()
    put(d .. "/f", "x")
    local before = nfds()
    do
      local f <close> = assert(fs.open(d .. "/f"))
      assert.equal(before + 1, nfds())
    end
    assert.equal(before, nfds())
    local g = assert(fs.open(d .. "/f"))
    assert.matches("tide.File %(" .. lit(d) .. "/f%)", tostring(g))
    g = nil                                           -- luacheck: ignore
    collectgarbage()
    collectgarbage()
    assert.equal(before, nfds())
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
    local d = tmpdir()
    local fifo = d .. "/fifo"
    assert(os.execute("mkfifo '" .. fifo .. "'"))
    local before = nfds()
    local t = tide.spawn(fs.open, fifo, "r")       -- blocks on a pool thread
    tide.sleep(0.05)
    t:cancel()
    assert.has_error(function () t:await() end)
    local w = io.open(fifo, "w")                    -- the open completes now
    for _ = 1, 200 do
      if nfds() == before + 1 then break end
      tide.sleep(0.01)
    end
    w:close()
    assert.equal(before, nfds())
  end))

  it("a pending call is cancelled before it runs", async(function ()
    local d = tmpdir()
    local release = holdpool(d)
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
    local before = nfds()
    for _ in fs.readdir(d) do
      assert.equal(before + 1, nfds())
      break
    end
    assert.equal(before, nfds())
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

  it("fails with nil, message, code for a missing path", async(function ()
    fail("ENOENT", fs.watch(tmpdir() .. "/nope"))
  end))
end)

describe("tide.stdin, tide.stdout and tide.stderr", function ()
  local function tide_e (code, redirect)
    return sh(("%s -e '%s' %s"):format(TIDE, code, redirect or ""))
  end

  it("reads piped input as a stream, line by line", function ()
    local out = sh(("printf 'one\\ntwo\\nthree' | %s -e '%s'"):format(TIDE,
      'for l in tide.stdin:lines() do print("<" .. l .. ">") end print(tostring(tide.stdin):match("%(%a+%)"))'))
    assert.equal("<one>\n<two>\n<three>\n(pipe)\n", out)
  end)

  it("is a File when redirected from a file", function ()
    local path = tmpfile("a\nb\n")
    local out = tide_e('print(tostring(tide.stdin):match("tide.File")) for l in tide.stdin:lines() do print(l) end', "< " .. path)
    os.remove(path)
    assert.equal("tide.File\na\nb\n", out)
  end)

  it("writes to stdout and stderr in order with print and io.write", function ()
    local out = sh(("%s -e '%s' 2>&1 | cat"):format(TIDE,
      'print(1) io.stdout:flush() tide.stdout:write("2\\n") io.write("3\\n") io.stdout:flush() tide.stderr:write("4\\n") print(5)'))
    assert.equal("1\n2\n3\n4\n5\n", out)
    local path = os.tmpname()
    sh(("%s -e '%s' > %s"):format(TIDE, 'io.write("a") io.stdout:flush() tide.stdout:write("b") print("c")', path))
    assert.equal("abc\n", get(path))
    os.remove(path)
  end)

  it("leave stdin to io.read when untouched, and to print when closed", function ()
    local out = sh(("printf 'abc' | %s -e '%s'"):format(TIDE,
      'tide.stdout:close() print(io.read("a"), tide.stdout)'))
    assert.matches("^abc\ttide.Stream %(closed%)\n$", out)
  end)
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
