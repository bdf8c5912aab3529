-- tls.lua: tide.tls as users see it: connect (the TCP connect and the
-- handshake under one timeout), wrap (STARTTLS on an open Stream), context,
-- and listen / serve with a handshake per connection, on top of the C side
-- in bindings/tls.c (a TLS layer under a Stream, and its handshake).
local tide, sched = ...

local tls, tcp = tide.tls, tide.tcp
local newcontext, iscontext = tls._context, tls._iscontext
local wrap, handshake = tls._wrap, tls._handshake
tls._context, tls._iscontext, tls._wrap, tls._handshake = nil, nil, nil, nil

local pairs, pcall, setmetatable, tonumber, type =
      pairs, pcall, setmetatable, tonumber, type

-- Wrong use: see tide.lua.
local argerror, typeerror, checkself = sched.argerror, sched.typeerror,
                                       sched.checkself
local checkinteger, checkwait = sched.checkinteger, sched.checkwait
local classof, new = sched.classof, sched.new

local HANDSHAKE_TIMEOUT = 30     -- s, a server's default per connection

-- The fields of a context, which opts may give instead of a context.
local FIELDS = { "cert", "key", "password", "cafile", "capath", "verify",
                 "alpn", "min_version", "max_version", "ciphers",
                 "ciphersuites", "session_cache", "servernames" }

local function checkhostport (i, host, port)
  if type(host) ~= "string" then typeerror(i, "string", host) end
  port = checkinteger(i + 1, port)
  if port < 0 or port > 65535 then argerror(i + 1, "port out of range") end
  return port
end

local function checkopts (i, opts)
  if opts ~= nil and type(opts) ~= "table" then typeerror(i, "table", opts) end
  return opts
end

-- A timeout field of opts (argument i): seconds or nil.
local function checktimeout (i, opts, field)
  local v = opts[field]
  local s = v and tonumber(v)
  if v ~= nil and not (s and s >= 0) then
    argerror(i, ("'%s': non-negative number expected"):format(field))
  end
  return s
end

-- What a servernames entry given as fields (cert and key) takes from the
-- top level when it does not say: all but the certificate, its key and
-- password, and servernames.
local INHERITED = { "cafile", "capath", "verify", "alpn", "min_version",
                    "max_version", "ciphers", "ciphersuites", "session_cache" }

-- A context made of the fields of opts (argument i); per-name contexts
-- given as tables are made first, inheriting the top level's settings.
local function build (opts, i)
  local names = opts.servernames
  if type(names) == "table" then
    local t, o = {}, {}
    for name, v in pairs(names) do
      if type(v) == "table" then
        local e = {}
        for k, x in pairs(v) do e[k] = x end
        for j = 1, #INHERITED do
          local f = INHERITED[j]
          if e[f] == nil then e[f] = opts[f] end
        end
        local c, err, code = newcontext(e, i)
        if not c then
          return nil, ("servernames[%q]: %s"):format(name, err), code
        end
        v = c
      end
      t[name] = v
    end
    for k, v in pairs(opts) do o[k] = v end
    o.servernames = t
    opts = o
  end
  return newcontext(opts, i)
end

local function hasfields (opts)
  for j = 1, #FIELDS do
    if opts[FIELDS[j]] ~= nil then return true end
  end
  return false
end

-- The client context of connections made without one: verified against
-- the system's store, caching sessions.
local default

-- The context that opts (argument i) gives: opts.context, or one made of
-- its fields, or for a client without any the default one.
local function contextof (opts, i, server)
  local c = opts.context
  if c ~= nil then
    if not iscontext(c) then
      argerror(i, "'context': tide.tls.context expected")
    end
    if hasfields(opts) then
      argerror(i, "'context' given with fields of a context (cert, key...)")
    end
    return c
  end
  if server and opts.cert == nil then
    argerror(i, "'cert' and 'key' (or 'context') expected for a server")
  end
  if not server and not hasfields(opts) then
    default = default or newcontext({}, i)
    return default
  end
  return build(opts, i)
end

local function checkname (i, opts)
  local name = opts.servername
  if name ~= nil and type(name) ~= "string" then
    argerror(i, "'servername': string expected")
  end
  return name
end

-- "addr:port: " of s's peer, as tide.tcp.connect's messages begin (or
-- "" where it has none: a pipe, a peer gone).
local function peerof (s)
  local ok, host, port = pcall(s.getpeername, s)
  if not ok or type(host) ~= "string" then return "" end
  return port and ("%s:%s: "):format(host, port) or host .. ": "
end

-- Put TLS under s and wait for the handshake, within timeout seconds (nil:
-- none): s, or nil, msg, code with s closed; s is closed as well if the
-- wait is cancelled. Wrong use (opts: argument i) raises here, in the
-- caller's task, with s untouched; only the handshake is timed.
local function secure (timeout, i, s, ctx, server, name, key)
  local armed = false              -- the guard is made first (it needs memory)
  local _ <close> = setmetatable({}, { __close = function ()
    if armed then s:close() end
  end })
  local ok, err, code = wrap(s, ctx, server, name, key, i)
  armed = true
  if not ok then return nil, err, code end
  if timeout then
    ok, err, code = tide.timeout(timeout, handshake, s)
    if ok == nil and err == "timeout" then
      return nil, peerof(s) .. "handshake timed out", "ETIMEDOUT"
    end
  else
    ok, err, code = handshake(s)
  end
  if not ok then return nil, err, code end
  armed = false
  return s
end

-- tide.tls.context(opts) -> context | nil, msg, code
function tls.context (opts)
  if type(opts) ~= "table" then typeerror(1, "table", opts) end
  local c, err, code = build(opts, 1)
  return c, err, code
end

-- tide.tls.connect(host, port [, opts]) -> Stream | nil, msg, code. opts:
-- timeout (s: the connect and the handshake), servername, context or its
-- fields, family, nodelay, keepalive.
function tls.connect (host, port, opts)
  port = checkhostport(1, host, port)
  opts = checkopts(3, opts) or {}
  local timeout = checktimeout(3, opts, "timeout")
  local name = checkname(3, opts) or host
  local ctx, err, code = contextof(opts, 3, false)
  if not ctx then return nil, err, code end
  checkwait()
  local tcpopts = { family = opts.family, nodelay = opts.nodelay,
                    keepalive = opts.keepalive }
  local key = name .. ":" .. port
  local phase = "connection"
  local function run ()
    local s, e, c = tcp.connect(host, port, tcpopts)
    if not s then return nil, e, c end
    phase = "handshake"
    local r
    r, e, c = secure(nil, 3, s, ctx, false, name, key)
    return r, e, c
  end
  if not timeout then
    local s, e, c = run()
    return s, e, c
  end
  local s, e, c = tide.timeout(timeout, run)
  if s == nil and e == "timeout" then
    return nil, ("%s:%d: %s timed out"):format(host, port, phase), "ETIMEDOUT"
  end
  return s, e, c
end

-- tide.tls.wrap(stream [, opts]) -> stream | nil, msg, code (the stream is
-- then closed). opts: server, servername, timeout, context or its fields.
function tls.wrap (stream, opts)
  opts = checkopts(2, opts) or {}
  local server = opts.server and true or false
  local timeout = checktimeout(2, opts, "timeout")
  local name = checkname(2, opts)
  local ctx, err, code = contextof(opts, 2, server)
  if not ctx then return nil, err, code end
  checkwait()
  local s, e, c = secure(timeout, 2, stream, ctx, server, name,
                                name and not server and name or nil)
  return s, e, c
end

-- ---- Servers ----------------------------------------------------------------

local TlsServer = sched.newclass("tide.TlsServer")
TlsServer.__index = TlsServer

-- server:accept() -> Stream | nil, msg, code: the next connection, its
-- handshake done (a failed one is returned as its error).
function TlsServer:accept ()
  if classof[self] ~= TlsServer then checkself(self, TlsServer) end
  local s, err, code = self.server:accept()
  if not s then return nil, err, code end
  local r
  r, err, code = secure(self.timeout, 3, s, self.context, true)
  return r, err, code
end

function TlsServer:getsockname ()
  if classof[self] ~= TlsServer then checkself(self, TlsServer) end
  return self.server:getsockname()
end

function TlsServer:close ()
  if classof[self] ~= TlsServer then checkself(self, TlsServer) end
  self.server:close()
end

TlsServer.__close = TlsServer.close

function TlsServer:__tostring ()
  if classof[self] ~= TlsServer then checkself(self, TlsServer) end
  return "tide.TlsServer: " .. tostring(self.server)
end

-- The context and the handshake timeout of a server's opts (argument i),
-- or nil, msg, code.
local function serveropts (i, opts)
  if type(opts) ~= "table" then typeerror(i, "table", opts) end
  local timeout = checktimeout(i, opts, "handshake_timeout") or HANDSHAKE_TIMEOUT
  local ctx, err, code = contextof(opts, i, true)
  if not ctx then return nil, err, code end
  return ctx, timeout
end

-- tide.tls.listen(host, port, opts) -> server | nil, msg, code. opts: the
-- context (or its fields: cert and key at least), handshake_timeout, and
-- those of tide.tcp.listen.
function tls.listen (host, port, opts)
  port = checkhostport(1, host, port)
  local ctx, timeout, code = serveropts(3, opts)
  if not ctx then return nil, timeout, code end
  local server, err, code = tcp.listen(host, port, opts)
  if not server then return nil, err, code end
  return new(TlsServer, { server = server, context = ctx, timeout = timeout })
end

-- tide.tls.serve(host, port, handler, opts) -> Serving | nil, msg, code:
-- as tide.tcp.serve, each connection's handshake done in its own task
-- before handler(stream); one that fails is dropped.
function tls.serve (host, port, handler, opts)
  port = checkhostport(1, host, port)
  if type(handler) ~= "function" then typeerror(3, "function", handler) end
  local ctx, timeout, code = serveropts(4, opts)
  if not ctx then return nil, timeout, code end
  local server, err, code = tcp.listen(host, port, opts)
  if not server then return nil, err, code end
  return sched.serve(server, function (s)
    if secure(timeout, 4, s, ctx, true) then return handler(s) end
  end, opts, "tide.tls.serve")
end
