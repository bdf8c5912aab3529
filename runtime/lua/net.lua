-- net.lua: tide.tcp, tide.pipe and tide.udp as users see them: name
-- resolution, trying each address, the connect timeout, and serve (one task
-- per connection), on top of the numeric primitives of bindings/tcp.c,
-- pipe.c and udp.c.
local tide, sched = ...

local tcp, pipe, udp, dns = tide.tcp, tide.pipe, tide.udp, tide.dns
local connect, listen = tcp._connect, tcp._listen
local pipe_connect, pipe_listen = pipe._connect, pipe._listen
local udp_bind = udp._bind
local Socket = sched.UdpSocket
local udp_send, udp_connect = Socket._send, Socket._connect
tcp._connect, tcp._listen, pipe._connect, pipe._listen = nil, nil, nil, nil
udp._bind, Socket._send, Socket._connect = nil, nil, nil

local pairs, tonumber, tostring, type = pairs, tonumber, tostring, type

-- Wrong use: see tide.lua.
local argerror, typeerror, checkself = sched.argerror, sched.typeerror,
                                       sched.checkself
local checknumber, checkinteger = sched.checknumber, sched.checkinteger
local checkwait = sched.checkwait
local classof, new = sched.classof, sched.new

local function isnumeric (host)
  return host:match("^%d+%.%d+%.%d+%.%d+$") or host:find(":", 1, true)
end

-- The addresses of host, numeric ones as they are.
local function addresses (host, family)
  if isnumeric(host) then return { { addr = host } } end
  return dns.resolve(host, family and { family = family })
end

-- A host (argument i) and a port (i + 1, as dns.c's tide__checkport
-- takes it); the port.
local function checkhostport (i, host, port)
  if type(host) ~= "string" then typeerror(i, "string", host) end
  port = checkinteger(i + 1, port)
  if port < 0 or port > 65535 then argerror(i + 1, "port out of range") end
  return port
end

local function checkpath (path)
  if type(path) ~= "string" then typeerror(1, "string", path) end
end

-- An options table (argument i), or nil.
local function checkopts (i, opts)
  if opts ~= nil and type(opts) ~= "table" then typeerror(i, "table", opts) end
  return opts
end

-- The timeout option of a connect (opts: argument i).
local function checktimeout (i, opts)
  local s = opts.timeout and tonumber(opts.timeout)
  if opts.timeout ~= nil and not (s and s >= 0) then
    argerror(i, "'timeout': non-negative number expected")
  end
  return s
end

-- The first address of host (of the family given, if any).
local function address (host, family)
  local addrs, err, code = addresses(host, family)
  if not addrs then return nil, err, code end
  return addrs[1].addr
end

local function setoptions (s, opts)
  if opts.nodelay ~= nil then s:setoption("nodelay", opts.nodelay) end
  if opts.keepalive ~= nil then s:setoption("keepalive", opts.keepalive) end
end

local function connect_any (host, port, opts)
  local addrs, err, code = addresses(host, opts.family)
  if not addrs then return nil, err, code end
  for i = 1, #addrs do
    local s
    s, err, code = connect(addrs[i].addr, port)
    if s then
      setoptions(s, opts)
      return s
    end
  end
  return nil, err, code
end

-- tide.tcp.connect(host, port [, {timeout =, family =, nodelay =,
-- keepalive =}]) -> Stream | nil, msg, code
function tcp.connect (host, port, opts)
  port = checkhostport(1, host, port)
  opts = checkopts(3, opts) or {}
  local timeout = checktimeout(3, opts)
  checkwait()
  if not timeout then
    local s, err, code = connect_any(host, port, opts)
    return s, err, code                  -- no tail call: see tide.lua
  end
  local s, err, code = tide.timeout(timeout, connect_any, host, port, opts)
  if s == nil and err == "timeout" then
    return nil, ("%s:%d: connection timed out"):format(host, port), "ETIMEDOUT"
  end
  return s, err, code
end

-- tide.tcp.listen(host, port [, {backlog =, reuseport =, ipv6only =}]) ->
-- Server | nil, msg, code. Port 0 picks a free port (server:getsockname()).
function tcp.listen (host, port, opts)
  port = checkhostport(1, host, port)
  checkopts(3, opts)
  local addrs, err, code = addresses(host, opts and opts.family)
  if not addrs then return nil, err, code end
  local s
  for i = 1, #addrs do
    s, err, code = listen(addrs[i].addr, port, opts)
    if s then return s end
  end
  return nil, err, code
end

-- The object tide.tcp.serve returns.
local Serving = sched.newclass("tide.Serving")
Serving.__index = Serving

function Serving:getsockname ()
  if classof[self] ~= Serving then checkself(self, Serving) end
  return self.server:getsockname()
end

-- Wait until the server has closed (server:close, or an accept error).
function Serving:wait ()
  if classof[self] ~= Serving then checkself(self, Serving) end
  return self.loop:await()
end

-- Stop accepting; let the connections' handlers finish for grace seconds
-- (default 0), then cancel those still running. Returns once all ended.
function Serving:close (grace)
  if classof[self] ~= Serving then checkself(self, Serving) end
  grace = grace ~= nil and checknumber(2, grace) or 0
  if self.closed then return end
  self.closed = true
  self.server:close()
  pcall(self.loop.await, self.loop)
  sched.endall(self.handlers, grace)
end

-- As close(), without grace (the second argument is the error, if any).
function Serving:__close ()
  if classof[self] ~= Serving then checkself(self, Serving) end
  self:close()
end

local function handle (fname, s, handler)
  local _ <close> = s              -- even if pcall cannot be called
  local ok, err = pcall(handler, s)
  s:close()
  if not ok and not tide.iscancelled(err) then
    io.stderr:write(fname, ": error in a connection handler: ",
                    tostring(err), "\n")
  end
end

-- The handlers are spawned on a watch (see watch.c): it counts those
-- running, and nothing is lost when a handler ends short of memory.
local function accept_loop (self, handler, max, fname)
  local w = self.handlers
  local _ <close> = self.server    -- if the loop dies (out of memory)
  while true do
    while w:next() do end                             -- forget those ended
    while w:live() >= max do w:wait() end
    if self.closed then return end      -- closed before this task ran
    local s, err, code = self.server:accept()
    if not s then
      if code == "ECANCELED" then return end          -- closed
      io.stderr:write(fname, ": accept: ", err, "\n")
      tide.sleep(0.1)                                 -- EMFILE: let it pass
    elseif not pcall(w.spawn, w, handle, fname, s, handler) then
      s:close()                                       -- no memory to serve it
    end
  end
end

-- Serve the connections of server with handler; fname names it in reports.
local function serve (server, handler, opts, fname)
  local self = new(Serving, { server = server, handlers = sched.watch() })
  local max = opts and opts.max_connections or math.huge
  self.loop = tide.spawn(accept_loop, self, handler, max, fname)
  sched.servings[self] = true
  return self
end
sched.serve = serve                -- for tls.lua
-- The servers serving, which a worker closes when it stops (workers.lua).
sched.servings = setmetatable({}, { __mode = "k" })

local function checkhandler (i, handler)
  if type(handler) ~= "function" then typeerror(i, "function", handler) end
end

-- tide.tcp.serve(host, port, handler [, opts]) -> server | nil, msg, code.
-- handler(stream) runs in a task of its own for each connection; its errors
-- are reported and the server goes on; the stream is closed when it
-- returns. opts: those of listen, plus max_connections.
function tcp.serve (host, port, handler, opts)
  port = checkhostport(1, host, port)
  checkhandler(3, handler)
  checkopts(4, opts)
  local server, err, code = tcp.listen(host, port, opts)
  if not server then return nil, err, code end
  return serve(server, handler, opts, "tide.tcp.serve")
end

-- ---- Unix domain sockets ---------------------------------------------------

-- tide.pipe.connect(path [, {timeout =}]) -> Stream | nil, msg, code
function pipe.connect (path, opts)
  checkpath(path)
  local timeout = checktimeout(2, checkopts(2, opts) or {})
  checkwait()
  if not timeout then return pipe_connect(path) end
  local s, err, code = tide.timeout(timeout, pipe_connect, path)
  if s == nil and err == "timeout" then
    return nil, path .. ": connection timed out", "ETIMEDOUT"
  end
  return s, err, code
end

-- tide.pipe.listen(path [, {backlog =}]) -> Server | nil, msg, code. A
-- socket file nobody listens on any more is replaced; the file is removed
-- when the server closes.
function pipe.listen (path, opts)
  checkpath(path)
  checkopts(2, opts)
  local backlog = opts and opts.backlog
  return pipe_listen(path, backlog)   -- a stale socket file is replaced
end

-- tide.pipe.serve(path, handler [, opts]) -> server | nil, msg, code, as
-- tide.tcp.serve.
function pipe.serve (path, handler, opts)
  checkpath(path)
  checkhandler(2, handler)
  checkopts(3, opts)
  local server, err, code = pipe.listen(path, opts)
  if not server then return nil, err, code end
  return serve(server, handler, opts, "tide.pipe.serve")
end

-- ---- UDP -------------------------------------------------------------------

-- tide.udp.bind(host, port [, {reuseaddr =, family =}]) -> Socket |
-- nil, msg, code. Port 0 picks a free port (sock:getsockname()).
function udp.bind (host, port, opts)
  port = checkhostport(1, host, port)
  checkopts(3, opts)
  local addr, err, code = address(host, opts and opts.family)
  if not addr then return nil, err, code end
  return udp_bind(addr, port, opts and opts.reuseaddr)
end

-- sock:send(data [, host, port]) -> true | nil, msg, code; without an
-- address, to the peer given to connect.
function Socket.send (self, data, host, port)
  checkself(self, "tide.UdpSocket")
  if host == nil then return udp_send(self, data) end
  port = checkhostport(3, host, port)
  local addr, err, code = address(host)
  if not addr then return nil, err, code end
  return udp_send(self, data, addr, port)
end

-- sock:connect(host, port) -> true | nil, msg, code
function Socket.connect (self, host, port)
  checkself(self, "tide.UdpSocket")
  port = checkhostport(2, host, port)
  local addr, err, code = address(host)
  if not addr then return nil, err, code end
  return udp_connect(self, addr, port)
end
