-- socket.lua: tide.socket, LuaSocket's core API (tcp, udp, dns, select,
-- gettime, sleep) on tide's streams, with OpenResty's additions on the tcp
-- object (settimeouts, sslhandshake, receiveany, receiveuntil,
-- setkeepalive with a per-runtime pool, getreusedtimes). Inside a task a
-- call that would block waits as tide calls do; outside any task it runs
-- the loop until it is done (tide.run), blocking as LuaSocket's does.
-- This file: the tcp object; socket_openresty.lua and socket_module.lua
-- the rest.
local tide, sched = ...

local M = tide.socket
local fileno, wallclock, alive = M._fileno, M._gettime, M._alive
M._fileno, M._gettime, M._alive = nil, nil, nil

local error, pcall, select, setmetatable, tonumber, tostring, type =
      error, pcall, select, setmetatable, tonumber, tostring, type
local find, sub, gsub, format = string.find, string.sub, string.gsub,
                                string.format
local concat, pack, unpack = table.concat, table.pack, table.unpack
local floor = math.floor

local current, spawn, now = tide.current, tide.spawn, tide.now
local timeout, sleep = tide.timeout, tide.sleep

local argerror, typeerror, raise = sched.argerror, sched.typeerror, sched.error

M._VERSION = "LuaSocket 3.0.0"
M._SETSIZE = 1024
M._SOCKETINVALID = -1
M._DATAGRAMSIZE = 8192

-- ---- Waiting inside and outside a task ------------------------------------

-- f(...) where it can wait: at once in a task, else as the main task of
-- the loop run until it ends (tide.run), which blocks as LuaSocket does.
local function waits (f)
  return function (...)
    if current() then return f(...) end
    return tide.run(f, ...)
  end
end

-- LuaSocket's messages for the errors it names (usocket.c socket_strerror,
-- io.c): the others are the system's.
local MESSAGES = {
  ECONNREFUSED = "connection refused", ETIMEDOUT = "timeout",
  ECONNRESET = "closed", ECONNABORTED = "closed", EPIPE = "closed",
  ECANCELED = "closed", EOF = "closed", ENOTCONN = "closed",
  EADDRINUSE = "address already in use", EACCES = "permission denied",
  EISCONN = "already connected", EAI_NONAME =
    "host or service not provided, or not known",
  ENOTFOUND = "host or service not provided, or not known",
  EAI_AGAIN = "temporary failure in name resolution",
}

local function lserror (msg, code)
  local m = code and MESSAGES[code]
  if m then return m end
  if type(msg) ~= "string" then return "closed" end
  return (gsub(msg, "^[^ ]*: ", ""))
end

-- ---- Timeouts (LuaSocket's timeout.c, OpenResty's settimeouts) -------------

-- Seconds the current wait may take (nil: no limit), as timeout.c's
-- timeout_getretry: what is left of the block timeout, counted from the
-- start of the call (a peer trickling bytes cannot hold a call longer),
-- or the block timeout within what is left of the total one. OpenResty's
-- per-kind timeouts bound each wait instead, as its cosockets do.
local function retry (self, kind)
  local k = self[kind]
  local b = k or self.block
  local t = self.total
  if t < 0 then
    if b < 0 then return nil end
    if k then return b end
    local left = b - (now() - self.start)
    if left < 0 then left = 0 end
    return left
  end
  local left = t - (now() - self.start)
  if left < 0 then left = 0 end
  if b < 0 or left < b then return left end
  return b
end

-- f(a, b) within t seconds (nil: no limit); TIMEDOUT when it ran out. A
-- zero timeout waits 1 ms: a turn of the loop, to read what the system
-- holds (libuv reads only in its poll phase, after the timers).
local TIMEDOUT = {}
local function within (t, f, a, b)
  if t == nil then return f(a, b) end
  if t < 0.001 then t = 0.001 end
  local r = pack(timeout(t, f, a, b))
  if r[1] == nil and r[2] == "timeout" and r.n == 2 then return TIMEDOUT end
  return unpack(r, 1, r.n)
end

local function settimeout (self, t, mode)
  t = t == nil and -1 or tonumber(t) or typeerror(2, "number", t)
  mode = mode or "b"
  local m = sub(tostring(mode), 1, 1)
  if m == "b" then self.block = t
  elseif m == "t" or m == "r" then self.total = t
  else argerror(3, "invalid timeout mode") end
  return 1.0
end

-- OpenResty: settimeouts(connect, send, read), each in milliseconds (nil:
-- the settimeout one).
local function settimeouts (self, c, s, r)
  local function ms (i, x)
    if x == nil then return nil end
    return (tonumber(x) or typeerror(i, "number", x)) / 1000
  end
  self.tconnect, self.tsend, self.tread = ms(2, c), ms(3, s), ms(4, r)
  return 1
end

-- ---- The tcp object --------------------------------------------------------

local TCP = {}
TCP.__index = TCP
M.TCP = TCP

local function newtcp (kind, family)
  return setmetatable({ kind = kind, family = family or "inet", buf = "",
    block = -1, total = -1, start = 0, received = 0, sent = 0,
    born = now(), opts = {}, reused = 0 }, TCP)
end

function TCP:__tostring ()
  return format("tcp{%s}: %p", self.kind, self)
end

local function checkkind (self, name, kind)
  if type(self) ~= "table" or self.kind ~= kind then
    raise(format("calling '%s' on bad self (tcp{%s} expected)", name, kind))
  end
end

local function tcp (family)
  return function () return newtcp("master", family) end
end
M.tcp, M.tcp4, M.tcp6 = tcp("inet"), tcp("inet"), tcp("inet6")

TCP.settimeout, TCP.settimeouts = settimeout, settimeouts

-- Read what arrives into self.buf; true, or nil, err (err also kept in
-- self.eof once the stream has ended).
local function fill (self, kind)
  if self.eof then return nil, self.eof end
  local s = self.stream
  if s == nil then return nil, "closed" end
  local data, err, code = within(retry(self, kind or "tread"), s.read, s)
  if data == TIMEDOUT then return nil, "timeout" end
  if data == nil then
    self.eof = err and lserror(err, code) or "closed"
    return nil, self.eof
  end
  self.received = self.received + #data
  local buf = self.buf
  self.buf = buf == "" and data or buf .. data
  return true
end

-- "*l": a line without "\n", "\r"s dropped (buffer.c recvline).
local function recvline (self, prefix)
  local from = 1
  while true do
    local buf = self.buf
    local i = find(buf, "\n", from, true)
    if i then
      local line = sub(buf, 1, i - 1)
      self.buf = sub(buf, i + 1)
      if find(line, "\r", 1, true) then line = gsub(line, "\r", "") end
      if prefix then line = prefix .. line end
      return line, nil, nil
    end
    from = #buf + 1
    local ok, err = fill(self)
    if not ok then
      local part = gsub(self.buf, "\r", "")
      self.buf = ""
      return nil, err, (prefix or "") .. part
    end
  end
end

-- A receive that gathers pieces in a list puts them back in the buffer
-- when it is cancelled (or raises), so that nothing read is lost.
local RESTORE = { __close = function (g, err)
  if err ~= nil then g.sock.buf = concat(g.parts) .. g.sock.buf end
end }

-- n bytes (buffer.c recvraw).
local function recvraw (self, n, prefix)
  local buf = self.buf
  if #buf < n then
    local parts, have = { buf }, #buf
    local _ <close> = setmetatable({ sock = self, parts = parts }, RESTORE)
    self.buf = ""
    while have < n do
      local ok, err = fill(self)
      if not ok then
        parts[#parts + 1] = self.buf
        self.buf = ""
        return nil, err, (prefix or "") .. concat(parts)
      end
      have = have + #self.buf
      parts[#parts + 1] = self.buf
      self.buf = ""
    end
    buf = concat(parts)
  end
  local data = #buf == n and buf or sub(buf, 1, n)
  self.buf = sub(buf, n + 1)
  if prefix then data = prefix .. data end
  return data, nil, nil
end

-- "*a": up to the end of the stream (buffer.c recvall).
local function recvall (self, prefix)
  local parts = { self.buf }
  local total = #self.buf
  local _ <close> = setmetatable({ sock = self, parts = parts }, RESTORE)
  self.buf = ""
  while true do
    local ok, err = fill(self)
    if not ok then
      local data = (prefix or "") .. concat(parts) .. self.buf
      total = total + #self.buf
      self.buf = ""
      if err == "closed" then
        if total > 0 then return data, nil, nil end
        return nil, "closed", data
      end
      return nil, err, data
    end
    total = total + #self.buf
    parts[#parts + 1] = self.buf
    self.buf = ""
  end
end

local function receive (self, pattern, prefix)
  checkkind(self, "receive", "client")
  self.start = now()
  if prefix == nil and (pattern == "*l" or pattern == nil) then
    return recvline(self)
  end
  if prefix ~= nil then
    if type(prefix) ~= "string" and type(prefix) ~= "number" then
      typeerror(3, "string", prefix)
    end
    prefix = tostring(prefix)
    if prefix == "" then prefix = nil end
  end
  local n = tonumber(pattern)
  if n == nil then
    local p = pattern == nil and "l" or pattern
    if type(p) ~= "string" then typeerror(2, "string", p) end
    if sub(p, 1, 1) == "*" then p = sub(p, 2) end
    p = sub(p, 1, 1)
    if p == "l" then return recvline(self, prefix) end
    if p == "a" then return recvall(self, prefix) end
    argerror(2, "invalid receive pattern")
  end
  if n < 0 then argerror(2, "invalid receive pattern") end
  n = floor(n)
  local size = prefix and #prefix or 0
  if size > 0 and n <= size then return prefix, nil, nil end
  return recvraw(self, n - size, prefix)
end
-- Outside a task the call runs in tide.run's task, where an error has no
-- caller's line: wrong use is found here first.
local function checkreceive (self, pattern, prefix)
  checkkind(self, "receive", "client")
  if prefix ~= nil and type(prefix) ~= "string" and type(prefix) ~= "number" then
    typeerror(3, "string", prefix)
  end
  if pattern == nil or tonumber(pattern) ~= nil then
    if pattern ~= nil and tonumber(pattern) < 0 then
      argerror(2, "invalid receive pattern")
    end
    return
  end
  if type(pattern) ~= "string" then typeerror(2, "string", pattern) end
  local p = sub(pattern, 1, 1) == "*" and sub(pattern, 2, 2) or sub(pattern, 1, 1)
  if p ~= "l" and p ~= "a" then argerror(2, "invalid receive pattern") end
end

function TCP.receive (self, pattern, prefix)
  if current() then return receive(self, pattern, prefix) end
  checkreceive(self, pattern, prefix)
  return tide.run(receive, self, pattern, prefix)
end

-- A number as C's (long) cast takes it: toward zero.
local function trunc (x)
  if x >= 0 then return floor(x) end
  return -floor(-x)
end

-- LuaSocket's send(data [, i [, j]]): the index of the last byte sent,
-- or nil, err, the last index sent (buffer.c buffer_meth_send).
local function send (self, data, i, j)
  checkkind(self, "send", "client")
  if type(data) ~= "string" then
    if data == nil then typeerror(2, "string") end    -- "got no value"
    if type(data) ~= "number" then typeerror(2, "string", data) end
    data = tostring(data)
  end
  local size = #data
  if i == nil and j == nil then
    i, j = 1, size
  else
    i = i == nil and 1 or tonumber(i) or typeerror(3, "number", i)
    j = j == nil and -1 or tonumber(j) or typeerror(4, "number", j)
    i, j = trunc(i), trunc(j)
    if i < 0 then i = size + i + 1 end
    if j < 0 then j = size + j + 1 end
    if i < 1 then i = 1 end
    if j > size then j = size end
  end
  self.start = now()
  if i > j then return i - 1 + 0.0, nil, nil end
  local s = self.stream
  if s == nil or self.wclosed then return nil, "closed", i - 1 + 0.0 end
  local chunk = (i == 1 and j == size) and data or sub(data, i, j)
  local ok, err, code = within(retry(self, "tsend"), s.write, s, chunk)
  if ok == TIMEDOUT then return nil, "timeout", i - 1 + 0.0 end
  if not ok then return nil, lserror(err, code), i - 1 + 0.0 end
  self.sent = self.sent + #chunk
  return j + 0.0, nil, nil
end

-- Outside a task the data is sent before send returns (the loop does not
-- run between calls there).
local function send_drain (self, ...)
  local r = pack(send(self, ...))
  if r[1] and self.stream then self.stream:drain() end
  return unpack(r, 1, r.n)
end

function TCP.send (self, data, i, j)
  if current() then return send(self, data, i, j) end
  checkkind(self, "send", "client")
  if type(data) ~= "string" and type(data) ~= "number" then
    if data == nil then typeerror(2, "string") end
    typeerror(2, "string", data)
  end
  if i ~= nil and tonumber(i) == nil then typeerror(3, "number", i) end
  if j ~= nil and tonumber(j) == nil then typeerror(4, "number", j) end
  return tide.run(send_drain, self, data, i, j)
end

-- ---- The keep-alive pool (OpenResty's setkeepalive) ------------------------

-- [key] = list of idle entries {stream, reused, tls, expires}, the most
-- recently put last; one pool per runtime (the module is per Lua state).
-- No task watches an idle connection (it would keep the program running
-- until the idle timeout, or be cancelled by tide.run outside any task):
-- a connection is checked when it is taken, and the expired ones go then.
local pools = {}
M._pools = pools

-- The most recently pooled live connection of key: a plain one first,
-- else one with TLS (sslhandshake then checks its settings). Expired and
-- dead ones are closed on the way.
local function pool_take (key)
  local list = pools[key]
  if list == nil then return nil end
  local t = now()
  for k = #list, 1, -1 do
    local e = list[k]
    if e.expires and e.expires <= t then
      table.remove(list, k)
      e.stream:close()
    end
  end
  while #list > 0 do
    local k = #list
    while k > 0 and list[k].tls do k = k - 1 end
    if k == 0 then k = #list end
    local e = table.remove(list, k)
    if alive(e.stream) then return e end
    e.stream:close()
  end
  return nil
end

-- setkeepalive([timeout [, size]]): milliseconds idle (0: no limit;
-- default 60 s), connections kept per pool (default 30).
local function setkeepalive (self, ms, size)
  checkkind(self, "setkeepalive", "client")
  local s = self.stream
  if s == nil then return nil, "closed" end
  if self.buf ~= "" then return nil, "unread data in buffer" end
  if self.eof or self.wclosed then return nil, "closed" end
  ms = ms == nil and 60000 or tonumber(ms) or typeerror(2, "number", ms)
  size = size == nil and 30 or tonumber(size) or typeerror(3, "number", size)
  if not (ms >= 0) then argerror(2, "bad \"timeout\" argument") end
  if not (size >= 1) then argerror(3, "bad \"pool_size\" option value") end
  local key = self.poolkey
  local list = pools[key]
  if list == nil then
    list = {}
    pools[key] = list
  end
  local t = now()
  for k = #list, 1, -1 do                -- the expired go
    local e = list[k]
    if e.expires and e.expires <= t then
      table.remove(list, k)
      e.stream:close()
    end
  end
  while #list >= size do                 -- the least recently used goes
    table.remove(list, 1).stream:close()
  end
  list[#list + 1] = { stream = s, reused = self.reused, tls = self.tls,
                      expires = ms > 0 and t + ms / 1000 or nil }
  self.stream, self.closed, self.buf = nil, true, ""
  return 1
end
TCP.setkeepalive = setkeepalive

function TCP:getreusedtimes ()
  if self.stream == nil and self.kind ~= "master" then return nil, "closed" end
  return self.reused
end

-- ---- connect, bind, listen, accept ------------------------------------------

local function apply (self, name, value)
  local s = self.stream
  if s == nil then return end
  if name == "tcp-nodelay" then s:setoption("nodelay", value and true or false)
  elseif name == "keepalive" then s:setoption("keepalive", value and true or false)
  end
end

-- master:connect(host, port [, opts]) (opts: OpenResty's pool, pool_size).
-- A port as LuaSocket's getaddrinfo takes it: a number (modulo 65536, as
-- the system takes "70000"), or nil, err for a name (no service names).
local function portof (i, port)
  if port == nil then typeerror(i, "string") end
  local n = tonumber(port)
  if n == nil then
    if type(port) ~= "string" then typeerror(i, "string", port) end
    return nil, "service not supported for socket type"
  end
  return floor(n) % 65536
end

local function connect (self, host, port, opts)
  checkkind(self, "connect", "master")
  if type(host) ~= "string" then typeerror(2, "string", host) end
  local err
  port, err = portof(3, port)
  if port == nil then return nil, err end
  local key = opts and opts.pool or (host .. ":" .. floor(port))
  self.poolkey, self.host, self.port = key, host, port
  local e = pool_take(key)
  if e then
    self.stream, self.kind, self.reused = e.stream, "client", e.reused + 1
    self.tls = e.tls
    return 1.0
  end
  self.start = now()
  local t = retry(self, "tconnect")
  local s, err, code = tide.tcp.connect(host, port,
    { timeout = t, family = self.family == "inet6" and "inet6" or nil })
  if s == nil then
    if code == "ETIMEDOUT" then return nil, "timeout" end
    return nil, lserror(err, code)
  end
  self.stream, self.kind, self.reused = s, "client", 0
  for name, value in pairs(self.opts) do apply(self, name, value) end
  return 1.0
end
TCP.connect = waits(connect)

local function anyhost (host)
  if host == "*" then return "0.0.0.0" end
  return host
end

local function bind (self, host, port)
  checkkind(self, "bind", "master")
  if type(host) ~= "string" then typeerror(2, "string", host) end
  port = tonumber(port) or typeerror(3, "number", port)
  local srv, err, code = tide.tcp.listen(anyhost(host), floor(port),
                                         { backlog = 32 })
  if srv == nil then return nil, lserror(err, code) end
  self.server = srv
  return 1.0
end
TCP.bind = waits(bind)

function TCP:listen (backlog)
  checkkind(self, "listen", "master")
  if self.server == nil then
    local ok, err = self:bind("0.0.0.0", 0)
    if not ok then return nil, err end
  end
  self.kind = "server"
  return 1.0
end

local function wrapstream (s)
  local c = newtcp("client")
  c.stream, c.reused = s, 0
  return c
end

local function accept (self)
  checkkind(self, "accept", "server")
  local srv = self.server
  local p = self.pending
  if srv == nil and p == nil then return nil, "closed" end
  if p then
    self.pending = nil
    return wrapstream(p)
  end
  self.start = now()
  local s, err, code = within(retry(self, "tread"), srv.accept, srv)
  if s == TIMEDOUT then return nil, "timeout" end
  if s == nil then return nil, lserror(err, code) end
  return wrapstream(s)
end
TCP.accept = waits(accept)

function TCP:close ()
  if self.stream then self.stream:close() end
  if self.server then self.server:close() end
  self.stream, self.server, self.closed = nil, nil, true
  self.buf = ""
  return 1.0
end
TCP.__close = TCP.close

local function shutdown (self, how)
  checkkind(self, "shutdown", "client")
  how = how or "both"
  if how ~= "both" and how ~= "send" and how ~= "receive" then
    argerror(2, format("invalid option '%s'", tostring(how)))
  end
  local s = self.stream
  if s == nil then return 1.0 end
  if how ~= "send" then self.eof = self.eof or "closed" end
  if how ~= "receive" and not self.wclosed then
    self.wclosed = true
    s:shutdown()
  end
  return 1.0
end
TCP.shutdown = waits(shutdown)

local BOOLOPTS = { ["tcp-nodelay"] = true, keepalive = true, reuseaddr = true,
                   reuseport = true, ["ipv6-v6only"] = true }

function TCP:setoption (name, value)
  if type(name) ~= "string" then typeerror(2, "string", name) end
  if BOOLOPTS[name] then
    if type(value) ~= "boolean" then typeerror(3, "boolean", value) end
  elseif name == "linger" then
    if type(value) ~= "table" then typeerror(3, "table", value) end
    value = { on = value.on and true or false,
              timeout = tonumber(value.timeout) or 0 }
  else
    argerror(2, format("unsupported option `%.35s'", name))
  end
  self.opts[name] = value
  apply(self, name, value)
  return 1.0
end

function TCP:getoption (name)
  if type(name) ~= "string" then typeerror(2, "string", name) end
  local v = self.opts[name]
  if name == "linger" then
    v = v or { on = false, timeout = 0 }
    return { on = v.on, timeout = v.timeout }
  end
  if BOOLOPTS[name] then return v or false end
  argerror(2, format("unsupported option `%.35s'", name))
end

local function familyof (host)
  if find(host, ":", 1, true) then return "inet6" end
  return "inet"
end

function TCP:getpeername ()
  local s = self.stream
  if s == nil then return nil, "closed" end
  local host, port = s:getpeername()
  if host == nil then return nil, lserror(port) end
  return host, port, familyof(host)
end

function TCP:getsockname ()
  local s = self.stream or self.server
  if s == nil then return nil, "closed" end
  local host, port = s:getsockname()
  if host == nil then return nil, lserror(port) end
  return host, tostring(port), familyof(host)
end

function TCP:getstats ()
  return self.received + 0.0, self.sent + 0.0, now() - self.born
end

function TCP:setstats (received, sent, age)
  self.received = tonumber(received) or self.received
  self.sent = tonumber(sent) or self.sent
  if age then self.born = now() - tonumber(age) end
  return 1.0
end

function TCP:dirty ()
  return self.buf ~= ""
end

-- The descriptor of the stream (or of a server: -1, as for a closed one).
function TCP:getfd ()
  local s = self.stream
  if s == nil then return -1.0 end
  local ok, fd = pcall(fileno, s)
  return ok and fd + 0.0 or -1.0
end

function TCP:setfd () end

function TCP:getfamily ()
  return self.family
end

function TCP:getclass ()
  return "tcp{" .. self.kind .. "}"
end

-- The rest of tide.socket runs after this file (socket_openresty.lua, then
-- socket_module.lua: see the Makefile's LUALIB) and takes these from here.
sched.socket = { TCP = TCP, TIMEDOUT = TIMEDOUT, anyhost = anyhost,
  apply = apply, checkkind = checkkind, familyof = familyof, fill = fill,
  lserror = lserror, newtcp = newtcp, retry = retry, settimeout = settimeout,
  waits = waits, wallclock = wallclock, within = within }
