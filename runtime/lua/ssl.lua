-- ssl.lua: tide.ssl, LuaSec's ssl.wrap, ssl.newcontext, conn:dohandshake()
-- and conn:getpeercertificate() basics, over tide.tls under a
-- tide.socket tcp object (LuaSec itself cannot run on a stream tide owns).
local tide, sched = ...

local M = {}
tide.ssl = M

local pairs, setmetatable, tostring, type = pairs, setmetatable, tostring, type
local format, gmatch = string.format, string.gmatch
local argerror, typeerror = sched.argerror, sched.typeerror

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
  local mode = params.mode
  if mode ~= "client" and mode ~= "server" then
    argerror(1, "'mode': \"client\" or \"server\" expected")
  end
  local proto = params.protocol
  if proto ~= nil and proto ~= "any" and PROTOCOLS[proto] == nil then
    return nil, format("invalid protocol (%s)", tostring(proto))
  end
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
local Conn = {}
Conn.__index = Conn
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

-- The context that verifies the chain only (no name to check: LuaSec's
-- behaviour without sni()): tide.tls verifies a chain against a name, so
-- the handshake runs unverified with the same trust and the verification
-- result is checked after it.
local function chainonly (ctx)
  if ctx.chainctx then return ctx.chainctx end
  local fields = {}
  for k, v in pairs(ctx.opts) do if k ~= "server" then fields[k] = v end end
  fields.verify = false
  local ok, c = pcall(tide.tls.context, fields)
  if not ok then return nil, tostring(c) end
  ctx.chainctx = c
  return c
end

-- LuaSec's message for a failed verification (tide's adds the reason).
local function lsmessage (err)
  if type(err) == "string" and err:find("^certificate verify failed") then
    return "certificate verify failed"
  end
  return err
end

local function dohandshake (self)
  if self.handshaken then return true end
  local s = self.stream
  if s == nil then return false, "closed" end
  local o = {}
  for k, v in pairs(self.ctx.opts) do o[k] = v end
  o.context = self.ctx.context
  o.cert, o.key, o.password, o.cafile, o.capath, o.verify = nil
  o.ciphers, o.ciphersuites, o.alpn, o.min_version = nil
  o.servername = self.servername
  local chain = not o.server and self.ctx.opts.verify == true
                and o.servername == nil
  if chain then
    local c, err = chainonly(self.ctx)
    if c == nil then
      self.stream = nil
      s:close()
      return false, err
    end
    o.context = c
  end
  self.start = tide.now()
  local t = self.block >= 0 and self.block or nil
  local ok, err
  if t then
    ok, err = tide.timeout(t, tide.tls.wrap, s, o)
  else
    ok, err = tide.tls.wrap(s, o)
  end
  if ok and chain then
    local info = s:tlsinfo()
    if not info or not info.peer or info.verify_error then
      ok, err = nil, "certificate verify failed"
    end
  end
  if not ok then
    self.stream = nil
    s:close()
    return false, lsmessage(err)
  end
  self.handshaken = true
  return true
end
Conn.dohandshake = function (self)
  if tide.current() then return dohandshake(self) end
  return tide.run(dohandshake, self)
end

-- LuaSec's names of the attributes (OpenSSL's long names and OIDs).
local ATTRS = {
  CN = { "commonName", "2.5.4.3" }, C = { "countryName", "2.5.4.6" },
  L = { "localityName", "2.5.4.7" }, ST = { "stateOrProvinceName", "2.5.4.8" },
  O = { "organizationName", "2.5.4.10" },
  OU = { "organizationalUnitName", "2.5.4.11" },
  STREET = { "streetAddress", "2.5.4.9" }, DC = { "domainComponent",
  "0.9.2342.19200300.100.1.25" }, UID = { "userId", "0.9.2342.19200300.100.1.1" },
  emailAddress = { "emailAddress", "1.2.840.113549.1.9.1" },
  serialNumber = { "serialNumber", "2.5.4.5" }, title = { "title", "2.5.4.12" },
  GN = { "givenName", "2.5.4.42" }, SN = { "surname", "2.5.4.4" },
}

-- A certificate's names as LuaSec gives them: { {name =, oid =, value =},
-- ... }, in the certificate's order (RFC 2253 lists them backwards).
local function names (rfc2253)
  local list = {}
  for k, v in gmatch(rfc2253 or "", "([^,=]+)=([^,]*)") do
    local a = ATTRS[k]
    table.insert(list, 1, { name = a and a[1] or k, oid = a and a[2] or k,
                            value = v })
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
  local san = { name = "X509v3 Subject Alternative Name" }
  if #dns > 0 then san.dNSName = dns end
  if #ip > 0 then san.iPAddress = ip end
  return { ["2.5.29.17"] = san }
end

-- conn:getpeercertificate() -> cert | nil
function Conn:getpeercertificate ()
  local info = self.stream and self.stream:tlsinfo()
  if info == nil or info.peer == nil then return nil end
  return setmetatable({ peer = info.peer }, Cert)
end

-- conn:getpeerverification() -> true | false, why (LuaSec without
-- verifyext): the chain's verification, whatever verify was.
function Conn:getpeerverification ()
  local info = self.stream and self.stream:tlsinfo()
  if info == nil then return false, "closed" end
  if info.peer == nil then return false, "no peer certificate" end
  if info.verify_error then return false, info.verify_error end
  return true
end

-- conn:info([field]) -> { protocol =, cipher = } | value
function Conn:info (field)
  local info = self.stream and self.stream:tlsinfo()
  if info == nil then return nil end
  local t = { protocol = info.protocol, cipher = info.cipher }
  if field then return t[field] end
  return t
end

-- A read or write that timed out gives LuaSec's "wantread"/"wantwrite".
local function want (what, data, err, ...)
  if err == "timeout" then err = what end
  return data, err, ...
end
function Conn:receive (pattern, prefix)
  return want("wantread", TCP.receive(self, pattern, prefix))
end
function Conn:send (data, i, j)
  return want("wantwrite", TCP.send(self, data, i, j))
end

-- conn:close(): nothing returned, as LuaSec's.
function Conn:close ()
  TCP.close(self)
end
Conn.__close = Conn.close

function Conn:getalpn ()
  local info = self.stream and self.stream:tlsinfo()
  return info and info.alpn
end

-- Every method of the tcp object is in Conn itself, as LuaSec's are in
-- its __index (ssl.https copies them with pairs).
for k, v in pairs(Conn) do
  if type(v) == "function" and k:sub(1, 2) ~= "__" then Conn[k] = sched.entry(v) end
end
for k, v in pairs(TCP) do
  if Conn[k] == nil then Conn[k] = v end
end

return M
