-- ssl.lua: tide.ssl, LuaSec's ssl.wrap, ssl.newcontext, conn:dohandshake()
-- and conn:getpeercertificate() basics, over tide.tls under a
-- tide.socket tcp object (LuaSec itself cannot run on a stream tide owns).
local tide, sched = ...

local M = {}
tide.ssl = M

local pairs, setmetatable, tostring, type = pairs, setmetatable, tostring, type
local format, gmatch = string.format, string.gmatch
local typeerror = sched.typeerror

M._VERSION = "1.0.2"

-- LuaSec's protocol names: the lowest version each allows.
local PROTOCOLS = { tlsv1 = "1.0", tlsv1_1 = "1.1", tlsv1_2 = "1.2",
                    tlsv1_3 = "1.3" }

-- tide.tls options of LuaSec's params.
local function options (params)
  local o = { server = params.mode == "server" }
  o.cert, o.key, o.password = params.certificate, params.key, params.password
  o.cafile, o.capath = params.cafile, params.capath
  o.ciphers, o.ciphersuites = params.ciphers, params.ciphersuites
  o.alpn = type(params.alpn) == "string" and { params.alpn } or params.alpn
  local v = params.verify
  if type(v) == "table" then v = v[1] end
  if v == "peer" or v == "fail_if_no_peer_cert" then
    o.verify = (o.server and v == "peer") and "optional" or true
  else
    o.verify = false                  -- LuaSec verifies only when asked
  end
  local p = params.protocol and PROTOCOLS[params.protocol]
  if p then o.min_version = p end
  return o
end

local Context = {}
Context.__index = Context

-- A file params names that cannot be read: LuaSec's message for it
-- (tide.tls loads the files at the first connection, LuaSec at once).
local function unreadable (path, what)
  if type(path) ~= "string" or path:find("-----BEGIN", 1, true) then return nil end
  local ok, f, err = pcall(io.open, path)
  if not ok then return ("error loading %s (%s)"):format(what, tostring(f)) end
  if f then
    f:close()
    return nil
  end
  return ("error loading %s (%s)"):format(what, (err:gsub("^.-: ", "")))
end

-- ssl.newcontext(params) -> context | nil, err
function M.newcontext (params)
  if type(params) ~= "table" then typeerror(1, "table", params) end
  local bad = unreadable(params.certificate, "certificate")
    or unreadable(params.key, "private key")
    or unreadable(params.cafile, "CA locations")
  if bad then return nil, bad end
  local o = options(params)
  local fields = {}
  for k, v in pairs(o) do if k ~= "server" then fields[k] = v end end
  local ok, ctx = pcall(tide.tls.context, fields)
  if not ok then return nil, tostring(ctx) end
  return setmetatable({ params = params, opts = o, context = ctx }, Context)
end

local TCP = tide.socket.TCP
local Conn = setmetatable({}, { __index = TCP })
Conn.__index = Conn
Conn.__close = TCP.close
M.Conn = Conn

function Conn:__tostring ()
  return format("SSL connection: %p", self)
end

-- ssl.wrap(sock, params_or_context) -> conn | nil, err: the connection
-- takes the socket's stream over (the socket is spent, as in LuaSec).
function M.wrap (sock, params)
  if getmetatable(sock) ~= TCP or sock.kind ~= "client" or not sock.stream then
    return nil, "invalid socket"
  end
  local ctx = params
  if getmetatable(params) ~= Context then
    local err
    ctx, err = M.newcontext(params or {})
    if ctx == nil then return nil, err end
  end
  local c = setmetatable({}, Conn)
  for k, v in pairs(sock) do c[k] = v end
  c.opts = {}
  for k, v in pairs(sock.opts) do c.opts[k] = v end
  c.ctx, c.kind = ctx, "client"
  sock.stream, sock.buf, sock.closed = nil, "", true
  return c
end

-- conn:sni(name): the server name to send (a client).
function Conn:sni (name)
  self.servername = name
end

local function dohandshake (self)
  if self.handshaken then return true end
  local s = self.stream
  if s == nil then return nil, "closed" end
  local o = {}
  for k, v in pairs(self.ctx.opts) do o[k] = v end
  o.context = self.ctx.context
  o.cert, o.key, o.password, o.cafile, o.capath, o.verify = nil
  o.ciphers, o.ciphersuites, o.alpn, o.min_version = nil
  o.servername = self.servername
  self.start = tide.now()
  local t = self.block >= 0 and self.block or nil
  local ok, err
  if t then
    ok, err = tide.timeout(t, tide.tls.wrap, s, o)
  else
    ok, err = tide.tls.wrap(s, o)
  end
  if not ok then
    self.stream = nil
    return nil, err
  end
  self.handshaken = true
  return true
end
Conn.dohandshake = function (self)
  if tide.current() then return dohandshake(self) end
  return tide.run(dohandshake, self)
end

-- A certificate's names as LuaSec gives them: { {name =, value =}, ... }.
local function names (rfc2253)
  local list = {}
  for k, v in gmatch(rfc2253 or "", "([^,=]+)=([^,]*)") do
    list[#list + 1] = { name = k, value = v }
  end
  return list
end

local Cert = {}
Cert.__index = Cert
function Cert:subject () return names(self.peer.subject) end
function Cert:issuer () return names(self.peer.issuer) end
function Cert:notbefore () return os.date("!%b %d %H:%M:%S %Y GMT", self.peer.not_before) end
function Cert:notafter () return os.date("!%b %d %H:%M:%S %Y GMT", self.peer.not_after) end
function Cert:extensions ()
  local dns, ip = {}, {}
  for _, n in ipairs(self.peer.san or {}) do
    if n:match("^[%d.]+$") or n:find(":", 1, true) then ip[#ip + 1] = n
    else dns[#dns + 1] = n end
  end
  return { ["2.5.29.17"] = { dNSName = dns, iPAddress = ip } }
end

-- conn:getpeercertificate() -> cert | nil
function Conn:getpeercertificate ()
  local info = self.stream and self.stream:tlsinfo()
  if info == nil or info.peer == nil then return nil end
  return setmetatable({ peer = info.peer }, Cert)
end

-- conn:getpeerverification() -> verified, {}
function Conn:getpeerverification ()
  local info = self.stream and self.stream:tlsinfo()
  if info == nil then return false, { "closed" } end
  return info.verified and true or false, {}
end

-- conn:info([field]) -> { protocol =, cipher = } | value
function Conn:info (field)
  local info = self.stream and self.stream:tlsinfo()
  if info == nil then return nil end
  local t = { protocol = info.protocol, cipher = info.cipher,
              compression = "none" }
  if field then return t[field] end
  return t
end

function Conn:getalpn ()
  local info = self.stream and self.stream:tlsinfo()
  return info and info.alpn
end

return M
