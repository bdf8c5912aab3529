-- socket_module.lua: tide.socket, continued (socket.lua,
-- socket_openresty.lua): the module's functions, dns, udp, select, and
-- the entry points of all of them.
local tide, sched = ...

local M = tide.socket                   -- runs socket_openresty.lua first
local S = sched.socket
local TCP, TIMEDOUT, anyhost, checkself, familyof, lserror, newtcp, retry,
      settimeout, waits, wallclock, within =
      S.TCP, S.TIMEDOUT, S.anyhost, S.checkself, S.familyof, S.lserror,
      S.newtcp, S.retry, S.settimeout, S.waits, S.wallclock, S.within

local error, pcall, select, setmetatable, tonumber, tostring, type =
      error, pcall, select, setmetatable, tonumber, tostring, type
local find, sub, format = string.find, string.sub, string.format
local pack, unpack = table.pack, table.unpack

local spawn, now = tide.spawn, tide.now
local timeout, sleep = tide.timeout, tide.sleep

local argerror, typeerror, raise = sched.argerror, sched.typeerror, sched.error

-- ---- Module functions -------------------------------------------------------

-- socket.connect(host, port [, locaddr, locport [, family]])
function M.connect (...)
  local host, port, _, _, family = ...
  if type(host) ~= "string" then
    if select("#", ...) == 0 then typeerror(1, "string") end   -- "no value"
    typeerror(1, "string", host)
  end
  if port == nil then typeerror(2, "string") end
  if family ~= nil and family ~= "inet" and family ~= "inet6" then
    argerror(5, "invalid family")
  end
  local c = newtcp("master", family)
  local ok, err = c:connect(host, port)
  if not ok then return nil, err end
  return c
end

-- socket.bind(host, port [, backlog]): Debian's socket.lua defines its
-- own, through dns.getaddrinfo, bind and listen.
function M.bind (host, port)
  if type(host) ~= "string" then typeerror(1, "string", host) end
  if tonumber(port) == nil then typeerror(2, "number", port) end
  local c = newtcp("master")
  c:setoption("reuseaddr", true)
  local ok, err = c:bind(host, port)
  if not ok then return nil, err end
  c:listen()
  return c
end

-- socket.gettime(): seconds since the epoch, to the microsecond.
M.gettime = wallclock

M.sleep = waits(function (s)
  s = tonumber(s) or typeerror(1, "number", s)
  if s < 0 then s = 0 end
  sleep(s)
end)

-- try and protect (LuaSocket's except.c).
function M.newtry (finalizer)
  return function (...)
    if not (...) then
      if finalizer then pcall(finalizer) end
      error({ (select(2, ...)) }, 0)
    end
    return ...
  end
end

local function unwrap (ok, ...)
  if ok then return ... end
  local e = ...
  if type(e) == "table" and getmetatable(e) == nil and e[1] ~= nil then
    return nil, e[1]
  end
  error(e, 0)
end

function M.protect (f)
  return function (...)
    return unwrap(pcall(f, ...))
  end
end

function M.skip (d, ...)
  d = sched.checkinteger(1, d)
  if d < 0 then argerror(1, "non-negative number expected") end
  return select(d + 1, ...)
end

function M.__unload () end

-- ---- dns ---------------------------------------------------------------------

local dns = {}
M.dns = dns

local function isnumeric (host)
  return find(host, "^%d+%.%d+%.%d+%.%d+$") or find(host, ":", 1, true)
end

local function resolve (name, family)
  if isnumeric(name) then return { { addr = name } } end
  local list, err, code = tide.dns.resolve(name, family and { family = family })
  if list == nil or #list == 0 then
    return nil, lserror(err, code or "EAI_NONAME")
  end
  return list
end

dns.toip = waits(function (name)
  if type(name) ~= "string" then typeerror(1, "string", name) end
  local list = resolve(name, "inet")
  if list == nil then return nil, "host not found" end
  local ips = {}
  for k = 1, #list do ips[k] = list[k].addr end
  return ips[1], { name = name, alias = {}, ip = ips }
end)

dns.tohostname = waits(function (addr)
  if type(addr) ~= "string" then typeerror(1, "string", addr) end
  local name = tide.dns.reverse(addr)
  if name == nil then return nil, "host not found" end
  return name, { name = name, alias = {}, ip = { addr } }
end)

dns.getaddrinfo = waits(function (host)
  if type(host) ~= "string" then typeerror(1, "string", host) end
  local list, err = resolve(host)
  if list == nil then return nil, err end
  local out = {}
  for k = 1, #list do
    out[k] = { family = familyof(list[k].addr), addr = list[k].addr }
  end
  return out
end)

dns.getnameinfo = waits(function (host, port)
  if host ~= nil and type(host) ~= "string" then typeerror(1, "string", host) end
  local name, err, code
  if host then
    name, err, code = tide.dns.reverse(host)
    if name == nil then return nil, lserror(err, code) end
  end
  return name, port and tostring(port) or nil
end)

function dns.gethostname ()
  local f = io.open("/proc/sys/kernel/hostname")
  local name = f and f:read("l")
  if f then f:close() end
  return name or os.getenv("HOSTNAME") or "localhost"
end

-- ---- udp -------------------------------------------------------------------

local UDP = {}
UDP.__index = UDP
M.UDP = UDP

local function newudp (family)
  return setmetatable({ kind = "unconnected", family = family or "inet",
    block = -1, total = -1, start = 0, opts = {} }, UDP)
end
M.udp = function () return newudp("inet") end
M.udp4 = M.udp
M.udp6 = function () return newudp("inet6") end

function UDP:__tostring ()
  return format("udp{%s}: %p", self.kind, self)
end

UDP.settimeout = settimeout

local function udpsock (self, host)
  if self.sock then return self.sock end
  local any = self.family == "inet6" or (host and find(host, ":", 1, true))
  local s, err, code = tide.udp.bind(any and "::" or "0.0.0.0", 0)
  if s == nil then return nil, lserror(err, code) end
  self.sock = s
  return s
end

UDP.setsockname = waits(function (self, host, port)
  if self.sock then return nil, "already bound" end
  host = anyhost(host)
  local addrs, err = resolve(host)
  if addrs == nil then return nil, err end
  local s, e, code = tide.udp.bind(addrs[1].addr, tonumber(port) or 0,
                                   { reuseaddr = self.opts.reuseaddr })
  if s == nil then return nil, lserror(e, code) end
  self.sock = s
  return 1.0
end)

UDP.setpeername = waits(function (self, host, port)
  if host == "*" then
    self.kind = "unconnected"
    return 1.0
  end
  local addrs, err = resolve(host)
  if addrs == nil then return nil, err end
  local s, e = udpsock(self, addrs[1].addr)
  if s == nil then return nil, e end
  local ok, msg, code = s:connect(addrs[1].addr, tonumber(port))
  if not ok then return nil, lserror(msg, code) end
  self.kind = "connected"
  return 1.0
end)

UDP.sendto = waits(function (self, data, host, port)
  local addrs, err = resolve(host)
  if addrs == nil then return nil, err end
  local s, e = udpsock(self, addrs[1].addr)
  if s == nil then return nil, e end
  local ok, msg, code = s:send(data, addrs[1].addr, tonumber(port))
  if not ok then return nil, lserror(msg, code) end
  return #data + 0.0
end)

UDP.send = waits(function (self, data)
  if self.kind ~= "connected" then
    raise("calling 'send' on bad self (udp{connected} expected)")
  end
  local ok, msg, code = self.sock:send(data)
  if not ok then return nil, lserror(msg, code) end
  return #data + 0.0
end)

local function udprecv (self, size)
  if self.kind == "closed" then return nil, "closed" end
  local s, e = udpsock(self)
  if s == nil then return nil, e end
  local p = self.pending
  if p then
    self.pending = nil
    return unpack(p)
  end
  self.start = now()
  local data, host, port = within(retry(self, "tread"), s.recv, s)
  if data == TIMEDOUT then return nil, "timeout" end
  if data == nil then return nil, lserror(host, port) end
  size = tonumber(size) or 8192
  if #data > size then data = sub(data, 1, size) end
  return data, host, port
end

UDP.receive = waits(function (self, size)
  local data, err = udprecv(self, size)
  if data == nil then return nil, err end
  return data
end)

UDP.receivefrom = waits(function (self, size)
  local data, host, port = udprecv(self, size)
  if data == nil then return nil, host end
  return data, host, port
end)

function UDP:getsockname ()
  if self.sock == nil then return nil, "closed" end
  local host, port = self.sock:getsockname()
  return host, tostring(port), familyof(host)
end

function UDP:getpeername ()
  if self.kind ~= "connected" then return nil, "closed" end
  local host, port = self.sock:getpeername()
  return host, port, familyof(host)
end

local UDPOPTS = { broadcast = "broadcast", ["ip-multicast-ttl"] = "multicast_ttl",
  ["ip-multicast-loop"] = "multicast_loop",
  ["ip-multicast-if"] = "multicast_interface" }

function UDP:setoption (name, value)
  self.opts[name] = value
  if name == "ip-add-membership" or name == "ip-drop-membership" then
    local s, e = udpsock(self)
    if s == nil then return nil, e end
    local f = name == "ip-add-membership" and s.join or s.leave
    local ok, msg, code = f(s, value.multiaddr, value.interface ~= "*" and
                            value.interface or nil)
    if not ok then return nil, lserror(msg, code) end
  elseif UDPOPTS[name] and self.sock then
    self.sock:setoption(UDPOPTS[name], value)
  elseif UDPOPTS[name] then
    local s, e = udpsock(self)
    if s == nil then return nil, e end
    s:setoption(UDPOPTS[name], value)
  elseif name ~= "reuseaddr" and name ~= "reuseport" and name ~= "dontroute" then
    argerror(2, format("unsupported option `%.35s'", tostring(name)))
  end
  return 1.0
end

function UDP:getoption (name)
  return self.opts[name]
end

function UDP:close ()
  if self.sock then self.sock:close() end
  self.sock, self.kind = nil, "closed"
  return 1.0
end
UDP.__close = UDP.close

function UDP:dirty () return self.pending ~= nil end
function UDP:getfd () return -1.0 end
function UDP:getfamily () return self.family end

checkself(UDP, "udp{any}")

-- ---- select -------------------------------------------------------------------

-- Wait until one object of recvt can be read without waiting: a tcp
-- client with buffered data or at its end, a server with a connection to
-- accept, a udp socket with a datagram. Every object of sendt counts as
-- writable at once (tide queues writes). The objects are tide.socket's.
local function ready (o)
  if o.closed or o.kind == "closed" then return false end
  if getmetatable(o) == TCP then
    if o.kind == "server" then return o.pending ~= nil end
    return o.buf ~= "" or o.eof ~= nil or o.stream == nil
  end
  if getmetatable(o) == UDP then return o.pending ~= nil end
  return false
end

-- Read one thing into o, for ready to see; nothing is lost if cancelled.
local function prime (o, ev)
  if getmetatable(o) == TCP then
    if o.kind == "server" then
      local s = o.server:accept()
      if s then o.pending = s end
    elseif o.stream then
      local data = o.stream:read()
      if data then
        o.received = o.received + #data
        o.buf = o.buf .. data
      else
        o.eof = o.eof or "closed"
      end
    end
  elseif getmetatable(o) == UDP and o.sock then
    o.pending = pack(o.sock:recv())
  end
  ev:set()
end

local function collect (list, pred)
  local out = {}
  for _, o in ipairs(list or {}) do
    if pred(o) then
      out[#out + 1] = o
      out[o] = #out
    end
  end
  return out
end

local function always () return true end

local function checklist (i, list)
  if list ~= nil and type(list) ~= "table" then typeerror(i, "table", list) end
  for _, o in ipairs(list or {}) do       -- LuaSocket calls o:getfd()
    local mt = getmetatable(o)
    if mt ~= TCP and mt ~= UDP and (mt == nil or mt.__index == nil
                                     or type(o.getfd) ~= "function") then
      raise(format("attempt to index a %s value", type(o)))
    end
  end
end

-- Tasks cancelled when the scope ends, also by an error or cancellation.
local CANCELALL = { __close = function (tasks)
  for _, task in ipairs(tasks) do task:cancel() end
end }

local function sel (recvt, sendt, t)
  t = tonumber(t)
  if t and t < 0 then t = nil end
  local r, w = collect(recvt, ready), collect(sendt, always)
  if #r > 0 or #w > 0 then return r, w, nil end
  if t == 0 or not recvt or #recvt == 0 then
    if t and t > 0 then sleep(t) end
    return r, w, "timeout"
  end
  local ev = tide.Event()
  local tasks <close> = setmetatable({}, CANCELALL)
  for _, o in ipairs(recvt) do
    if not (o.closed or o.kind == "closed") then
      tasks[#tasks + 1] = spawn(prime, o, ev)
    end
  end
  if #tasks == 0 then
    if t then sleep(t) else ev:wait() end
    return r, w, "timeout"
  end
  if t then timeout(t, ev.wait, ev) else ev:wait() end
  for _, task in ipairs(tasks) do task:cancel() end
  for _, task in ipairs(tasks) do pcall(task.await, task) end
  r = collect(recvt, ready)
  return r, w, #r == 0 and "timeout" or nil
end
local select_waiting = waits(sel)
function M.select (recvt, sendt, t)
  checklist(1, recvt)
  checklist(2, sendt)
  if t ~= nil and tonumber(t) == nil then typeerror(3, "number", t) end
  return select_waiting(recvt, sendt, t)
end

-- ---- sources and sinks on tide.socket alone ----------------------------------

M.BLOCKSIZE = 2048

-- ---- Entry points --------------------------------------------------------------

-- What the user calls is a C function calling the Lua one (sched.entry):
-- a C function keeps its caller's frame in a tail call, so a wrong use
-- raises at the user's line, naming the function, as LuaSocket's do.
local entry = sched.entry
local function entries (t)
  for k, f in pairs(t) do
    if type(f) == "function" and (type(k) ~= "string" or sub(k, 1, 2) ~= "__")
    then
      t[k] = entry(f)
    end
  end
end
entries(TCP)
entries(UDP)
entries(dns)
for _, k in ipairs({ "connect", "bind", "sleep", "select", "skip" }) do
  M[k] = entry(M[k])
end

return M
