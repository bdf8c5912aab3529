-- net.lua: tide.tcp.connect, listen and serve: name resolution, trying each
-- address, the connect timeout, and one task per connection, on top of the
-- numeric primitives of bindings/tcp.c.
local tide, sched = ...

local tcp, dns = tide.tcp, tide.dns
local connect, listen = tcp._connect, tcp._listen
tcp._connect, tcp._listen = nil, nil

local error, pairs, tostring, type = error, pairs, tostring, type

local function isnumeric (host)
  return host:match("^%d+%.%d+%.%d+%.%d+$") or host:find(":", 1, true)
end

-- The addresses of host, numeric ones as they are.
local function addresses (host, family)
  if isnumeric(host) then return { { addr = host } } end
  return dns.resolve(host, family and { family = family })
end

local function checkhostport (fname, host, port)
  if type(host) ~= "string" then
    error(("bad argument #1 to '%s' (string expected, got %s)"):format(fname, type(host)), 3)
  end
  if math.type(port) ~= "integer" or port < 0 or port > 65535 then
    error(("bad argument #2 to '%s' (port expected)"):format(fname), 3)
  end
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
  checkhostport("connect", host, port)
  opts = opts or {}
  if not opts.timeout then return connect_any(host, port, opts) end
  local s, err, code = tide.timeout(opts.timeout, connect_any, host, port, opts)
  if s == nil and err == "timeout" then
    return nil, ("%s:%d: connection timed out"):format(host, port), "ETIMEDOUT"
  end
  return s, err, code
end

-- tide.tcp.listen(host, port [, {backlog =, reuseport =, ipv6only =}]) ->
-- Server | nil, msg, code. Port 0 picks a free port (server:getsockname()).
function tcp.listen (host, port, opts)
  checkhostport("listen", host, port)
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
local Serving = {}
Serving.__index = Serving

function Serving:getsockname () return self.server:getsockname() end

-- Wait until the server has closed (server:close, or an accept error).
function Serving:wait () return self.loop:await() end

-- Stop accepting; let the connections' handlers finish for grace seconds
-- (default 0), then cancel those still running. Returns once all ended.
function Serving:close (grace)
  if self.closed then return end
  self.closed = true
  self.server:close()
  pcall(self.loop.await, self.loop)
  local handlers = {}
  for t in pairs(self.handlers) do handlers[#handlers + 1] = t end
  if #handlers == 0 then return end
  if grace and grace > 0 then
    tide.timeout(grace, function ()
      for i = 1, #handlers do pcall(sched.shieldawait, handlers[i]) end
    end)
  end
  for i = 1, #handlers do handlers[i]:cancel() end
  for i = 1, #handlers do pcall(sched.shieldawait, handlers[i]) end
end

Serving.__close = Serving.close

local function handle (self, s, handler)
  local ok, err = pcall(handler, s)
  s:close()
  if not ok and not tide.iscancelled(err) then
    io.stderr:write("tide.tcp.serve: error in a connection handler: ",
                    tostring(err), "\n")
  end
end

local function accept_loop (self, handler, max)
  while true do
    while self.count >= max do
      self.me, self.gen = sched.token()
      sched.suspend()
    end
    local s, err, code = self.server:accept()
    if not s then
      if code == "ECANCELED" then return end          -- closed
      io.stderr:write("tide.tcp.serve: accept: ", err, "\n")
      tide.sleep(0.1)                                 -- EMFILE: let it pass
    else
      self.count = self.count + 1
      local t = tide.spawn(handle, self, s, handler)
      self.handlers[t] = true
      t:on_done(function ()
        self.handlers[t] = nil
        self.count = self.count - 1
        if self.me then sched.wake(self.me, self.gen) end
      end)
    end
  end
end

-- tide.tcp.serve(host, port, handler [, opts]) -> server | nil, msg, code.
-- handler(stream) runs in a task of its own for each connection; its errors
-- are reported and the server goes on; the stream is closed when it
-- returns. opts: those of listen, plus max_connections.
function tcp.serve (host, port, handler, opts)
  checkhostport("serve", host, port)
  if type(handler) ~= "function" then
    error("bad argument #3 to 'serve' (function expected)", 2)
  end
  local server, err, code = tcp.listen(host, port, opts)
  if not server then return nil, err, code end
  local self = setmetatable({ server = server, handlers = {}, count = 0 }, Serving)
  local max = opts and opts.max_connections or math.huge
  self.loop = tide.spawn(accept_loop, self, handler, max)
  return self
end
