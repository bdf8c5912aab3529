-- fs.lua: the parts of tide.fs that are compositions of bindings/fs*.c's
-- calls: read_file, write_file (a temporary file renamed over the target),
-- mkdir with parents, exists, mkdtemp's default template, the scandir and
-- readdir iterators, File:lines and watch; and tide.stdin, tide.stdout and
-- tide.stderr, made on first use (bindings/tty.c).
local tide, sched = ...

local fs = tide.fs
local open, stat, rename, chmod = fs.open, fs.stat, fs.rename, fs.chmod
local c_mkdir, c_mkdtemp, c_scandir, c_opendir, c_watch =
      fs._mkdir, fs._mkdtemp, fs._scandir, fs._opendir, fs._watch
fs._mkdir, fs._mkdtemp, fs._scandir, fs._opendir, fs._watch =
      nil, nil, nil, nil, nil
local File, WatcherMeta, stdio = sched.File, sched.WatcherMeta, sched.stdio
-- Wrong use: see tide.lua.
local argerror, typeerror = sched.argerror, sched.typeerror
local checkself, checkwait = sched.checkself, sched.checkwait

local error, rawequal, setmetatable, type = error, rawequal, setmetatable, type
local concat = table.concat
local mathtype = math.type

local CHUNK = 64 * 1024
local BIG = 1 << 30                -- the most read_file asks for at once
local min = math.min

-- A string argument (i, default 1).
local function checkpath (path, i)
  if type(path) ~= "string" then typeerror(i or 1, "string", path) end
end

-- A mode argument (nil, an integer or a string of octal digits), checked
-- here before the calls inside see it.
local function checkmode (i, mode)
  if mode == nil then return end
  local m = mode
  if type(m) == "string" then m = m:match("^[0-7]+$") and tonumber(m, 8) end
  if mathtype(m) == "integer" and (m < 0 or m > 4095) then
    argerror(i, "mode out of range")
  elseif mathtype(m) ~= "integer" then
    argerror(i, "mode expected (an integer or octal digits), got "
             .. (type(mode) == "string" and ("%q"):format(mode) or type(mode)))
  end
end

-- ---- Whole files ---------------------------------------------------------------

-- tide.fs.read_file(path) -> data | nil, msg, code
function fs.read_file (path)
  checkpath(path)
  checkwait()
  local f <close>, err, code = open(path, "r")
  if not f then return nil, err, code end
  local st
  st, err, code = f:stat()
  if not st then return nil, err, code end
  local size = st.type == "file" and st.size or 0
  local parts, n, got = {}, 0, 0
  while size == 0 or got < size do
    local data
    data, err, code = f:read(size > 0 and min(size - got, BIG) or CHUNK)
    if data == nil then
      if err then return nil, err, code end
      break
    end
    n, got = n + 1, got + #data
    parts[n] = data
  end
  f:close()
  if n == 1 then return parts[1] end
  return concat(parts, "", 1, n)
end

local seq = 0

-- A name for a temporary file beside path.
local function tmpname (path)
  local dir, base = path:match("^(.*/)([^/]*)$")
  if not dir then dir, base = "", path end
  seq = seq + 1
  return ("%s.%s.tide-%x-%x%04x"):format(dir, base, seq, tide.hrtime() % 0x10000000,
                                        math.random(0, 0xffff))
end

-- The message of a failure on the temporary file, said of path.
local function said_of (path, tmp, err)
  if err and err:sub(1, #tmp + 2) == tmp .. ": " then
    return path .. ": " .. err:sub(#tmp + 3)
  end
  return err
end

-- Write data to tmp (made beside path), sync it, and rename it over path.
local function replace (path, tmp, f, data, keepmode)
  local ok, err, code = f:write(data)
  if ok then ok, err, code = f:sync() end
  if ok and keepmode then ok, err, code = chmod(tmp, keepmode) end
  if ok then ok, err, code = f:close() end
  if ok then ok, err, code = rename(tmp, path) end
  return ok, err, code
end

-- tide.fs.write_file(path, data [, mode]) -> true | nil, msg, code. The
-- data goes to a temporary file in the same directory, which is synced and
-- then renamed over path: path has the old content or the new, never a
-- part. mode: for a new file (default 0666, less the umask); an existing
-- file keeps its mode when none is given.
function fs.write_file (path, data, mode)
  checkpath(path)
  checkpath(data, 2)
  checkmode(3, mode)
  checkwait()
  local keepmode
  if mode == nil then
    local st = stat(path)
    keepmode = st and st.mode
  end
  local tmp, f, err, code
  for _ = 1, 10 do
    tmp = tmpname(path)
    f, err, code = open(tmp, "wx", mode or 438)
    if code ~= "EEXIST" then break end
  end
  if not f then return nil, said_of(path, tmp, err), code end
  local done = false
  local _ <close> = setmetatable({}, { __close = function ()
    f:close()
    if not done then os.remove(tmp) end     -- never waits: runs on cancel too
  end })
  local ok
  ok, err, code = replace(path, tmp, f, data, keepmode)
  if not ok then return nil, said_of(path, tmp, err), code end
  done = true
  return true
end

-- ---- Directories -----------------------------------------------------------------

local function isdir (path)
  local st = stat(path)
  return st ~= nil and st.type == "directory"
end

-- tide.fs.mkdir(path [, mode | {mode =, parents =}]) -> true | nil, msg,
-- code. With parents, missing parents are made too, and a directory that
-- exists is no error (mkdir -p).
function fs.mkdir (path, opts)
  checkpath(path)
  local mode, parents = opts, false
  if type(opts) == "table" then mode, parents = opts.mode, opts.parents end
  checkmode(2, mode)
  checkwait()
  local ok, err, code = c_mkdir(path, mode)
  if ok or not parents then return ok, err, code end
  if code == "EEXIST" then
    if isdir(path) then return true end
    return nil, err, code
  end
  local parent = path:match("^(.*[^/])/+[^/]+/*$")
  if code ~= "ENOENT" or not parent then return nil, err, code end
  local pok, perr, pcode = fs.mkdir(parent, { mode = mode, parents = true })
  if not pok then return nil, perr, pcode end
  ok, err, code = c_mkdir(path, mode)
  if not ok and code == "EEXIST" and isdir(path) then return true end
  return ok, err, code
end

-- tide.fs.exists(path) -> boolean | nil, msg, code (other failures than
-- "no such file", such as EACCES). Follows links.
function fs.exists (path)
  checkpath(path)
  checkwait()
  local st, err, code = stat(path)
  if st then return true end
  if code == "ENOENT" or code == "ENOTDIR" then return false end
  return nil, err, code
end

-- tide.fs.mkdtemp([prefix]) -> path of a new directory | nil, msg, code.
-- prefix: a path to which six random characters are added (default
-- $TMPDIR/tide- or /tmp/tide-).
function fs.mkdtemp (prefix)
  if prefix == nil then prefix = (os.getenv("TMPDIR") or "/tmp") .. "/tide-" end
  checkpath(prefix)
  checkwait()
  if prefix:sub(-6) ~= "XXXXXX" then prefix = prefix .. "XXXXXX" end
  return c_mkdtemp(prefix)
end

-- for name, type in tide.fs.scandir(path) do ... end: the entries (not "."
-- and ".."), read in one go; type is "file", "directory", "link", "fifo",
-- "socket", "char", "block" or "unknown". nil, msg, code on failure.
function fs.scandir (path)
  checkpath(path)
  checkwait()
  local list, err, code = c_scandir(path)
  if not list then return nil, err, code end
  local i = -1
  return function ()
    i = i + 2
    return list[i], list[i + 1]
  end
end

-- for name, type in tide.fs.readdir(path) do ... end: as scandir, but read
-- a batch at a time (for huge directories); the directory is closed at the
-- end of the loop, a break included. Read errors raise.
function fs.readdir (path)
  checkpath(path)
  checkwait()
  local d, err, code = c_opendir(path)
  if not d then return nil, err, code end
  local batch, i = nil, 0
  return function ()
    if batch == nil or i >= #batch then
      local b, rerr = d:read()
      if b == nil then
        d:close()
        if rerr then error(rerr, 2) end
        return nil
      end
      batch, i = b, 0
    end
    i = i + 2
    return batch[i - 1], batch[i]
  end, nil, nil, d
end

-- ---- Files -------------------------------------------------------------------------

-- for line in f:lines() do ... end: the lines from the file position on,
-- without "\n" (the last may lack it). It reads ahead 64 KiB at a time.
-- Read errors raise.
function File.lines (f)
  checkself(f, "tide.File")
  local buf, pos, eof = "", 1, false
  return function ()
    local parts, n = nil, 0          -- a line longer than what is buffered
    while true do
      local nl = buf:find("\n", pos, true)
      if nl then
        local line = buf:sub(pos, nl - 1)
        pos = nl + 1
        if n == 0 then return line end
        parts[n + 1] = line
        return concat(parts, "", 1, n + 1)
      end
      if eof then
        local rest = buf:sub(pos)
        pos = #buf + 1
        if n > 0 then
          parts[n + 1] = rest
          return concat(parts, "", 1, n + 1)
        end
        if rest ~= "" then return rest end
        return nil
      end
      if pos <= #buf then
        parts = parts or {}
        n = n + 1
        parts[n] = buf:sub(pos)
      end
      local data, err = f:read(CHUNK)
      if data == nil then
        if err then error(err, 2) end
        eof, buf = true, ""
      else
        buf = data
      end
      pos = 1
    end
  end
end

-- ---- Watching ----------------------------------------------------------------------

-- for name, event in watcher do ... end: waits for each event; ends once
-- the watcher is closed. Errors raise.
function WatcherMeta.__call (w)
  checkself(w, WatcherMeta)
  local name, event, code = w:read()
  if name == nil and code ~= "ECANCELED" then error(event, 2) end
  return name, event
end

-- tide.fs.watch(path [, {recursive =}]) -> Watcher | nil, msg, code: the
-- events ("rename" or "change", with the name of the entry concerned) on
-- path, a file or a directory. w:read() waits for the next one;
-- `for name, event in tide.fs.watch(path)` loops over them and closes the
-- watcher when the loop ends.
function fs.watch (path, opts)
  checkpath(path)
  if opts ~= nil and type(opts) ~= "table" then typeerror(2, "table", opts) end
  local w, err, code = c_watch(path, opts and opts.recursive)
  if not w then return nil, err, code end
  return w, nil, nil, w
end

-- ---- Standard streams --------------------------------------------------------------

-- tide.stdin, tide.stdout, tide.stderr: made on first use (a Stream on a
-- terminal, pipe or socket; a File on a file), nil when the fd is closed.
-- Also defines: tide.stdin tide.stdout tide.stderr (for the loader, which
-- runs this file on first use of a name it defines: see embed.lua).
local stdfds = { stdin = 0, stdout = 1, stderr = 2 }
local mt = getmetatable(tide) or {}
local index = mt.__index
mt.__index = function (t, k)
  if not rawequal(t, tide) then typeerror(1, "the tide module", t) end
  local fd = stdfds[k]
  if fd == nil then
    if type(index) == "function" then return index(t, k) end
    return index and index[k]
  end
  local s = stdio(fd)
  rawset(t, k, s)
  return s
end
setmetatable(tide, mt)
