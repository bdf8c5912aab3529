-- socket_openresty.lua: tide.socket's tcp object, continued (socket.lua):
-- OpenResty's reads (receiveany, receiveuntil) and TLS on the object
-- (sslhandshake), then the check of self on its other methods.
local tide, sched = ...

local TCP = tide.socket.TCP               -- runs socket.lua first
local S = sched.socket
local TIMEDOUT, apply, checkkind, fill, lserror, retry, waits, within =
      S.TIMEDOUT, S.apply, S.checkkind, S.fill, S.lserror, S.retry, S.waits,
      S.within

local pcall, tonumber, tostring, type = pcall, tonumber, tostring, type
local find, sub, format = string.find, string.sub, string.format
local floor = math.floor

local now = tide.now

local argerror, typeerror, raise = sched.argerror, sched.typeerror, sched.error

-- ---- OpenResty's reads: receiveany, receiveuntil ---------------------------

local function receiveany (self, max)
  checkkind(self, "receiveany", "client")
  max = tonumber(max) or typeerror(2, "number", max)
  if max < 1 then argerror(2, "bad max argument") end
  max = floor(max)
  self.start = now()
  if self.buf == "" then
    local ok, err = fill(self)
    if not ok then return nil, err end
  end
  local buf = self.buf
  if #buf <= max then
    self.buf = ""
    return buf
  end
  self.buf = sub(buf, max + 1)
  return sub(buf, 1, max)
end
TCP.receiveany = waits(receiveany)

-- receiveuntil(pattern [, {inclusive =}]) -> iterator([size]): the data
-- before the next pattern (and the pattern too when inclusive); with size,
-- pieces of at most size bytes, then nil once the pattern was passed.
function TCP:receiveuntil (pattern, opts)
  checkkind(self, "receiveuntil", "client")
  if type(pattern) ~= "string" then typeerror(2, "string", pattern) end
  if pattern == "" then argerror(2, "pattern is empty") end
  local inclusive = opts and opts.inclusive and true or false
  local plen, ended = #pattern, false
  local function iter (size)
    if size ~= nil then
      size = tonumber(size) or typeerror(1, "number", size)
      size = floor(size)
    end
    if ended then
      ended = false
      return nil
    end
    self.start = now()
    local from = 1
    while true do
      local buf = self.buf
      local i = find(buf, pattern, from, true)
      if i then
        if size and i - 1 > size then
          self.buf = sub(buf, size + 1)
          return sub(buf, 1, size)
        end
        local e = i + plen - 1
        local data = sub(buf, 1, inclusive and e or i - 1)
        self.buf = sub(buf, e + 1)
        if size then ended = true end
        return data
      end
      local safe = #buf - plen + 1         -- bytes no match can start in
      if size and safe >= size then
        self.buf = sub(buf, size + 1)
        return sub(buf, 1, size)
      end
      from = safe > 1 and safe or 1
      local ok, err = fill(self)
      if not ok then
        local part = self.buf
        self.buf = ""
        return nil, err, part
      end
    end
  end
  return waits(iter)
end

-- ---- TLS on the object (OpenResty's sslhandshake) --------------------------

-- sslhandshake([reused_session [, server_name [, ssl_verify]]]): true, or
-- nil, err. tide keeps the sessions of its default context itself, so
-- reused_session is ignored and no session object is returned. A pooled
-- connection with the same server_name and ssl_verify is taken as it is;
-- one with other settings is replaced by a new connection.
-- The context of a verification without a name: unverified by tide.tls,
-- with the system's trust, the chain checked after the handshake.
local chainctx
local function chaincontext ()
  if chainctx then return chainctx end
  local fields = { verify = false }
  local file = os.getenv("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt"
  local f = io.open(file)
  if f then
    f:close()
    fields.cafile = file
  else
    fields.capath = os.getenv("SSL_CERT_DIR") or "/etc/ssl/certs"
  end
  local ok, c = pcall(tide.tls.context, fields)
  if not ok then return nil, tostring(c) end
  chainctx = c
  return c
end

local function sslhandshake (self, reused, server_name, verify)
  checkkind(self, "sslhandshake", "client")
  local tag = tostring(server_name) .. "|" .. tostring(verify and true or false)
  if self.tls == tag then return true end
  if self.buf ~= "" then return nil, "unread data in buffer" end
  self.start = now()
  if self.tls then                      -- pooled with other TLS settings
    self.stream:close()
    self.stream, self.tls, self.reused = nil, nil, 0
    local c, err, code = tide.tcp.connect(self.host, self.port,
                                          { timeout = retry(self, "tconnect") })
    if c == nil then return nil, lserror(err, code) end
    self.stream = c
    for name, value in pairs(self.opts) do apply(self, name, value) end
  end
  local s = self.stream
  local opts = { servername = server_name, verify = verify and true or false }
  local chain = verify and server_name == nil
  if chain then                         -- the chain only, as OpenResty
    local c, err = chaincontext()
    if c == nil then
      self.stream = nil
      s:close()
      return nil, err
    end
    opts.verify, opts.context = nil, c
  end
  local ok, err, code = within(retry(self, "tconnect"), tide.tls.wrap, s, opts)
  if ok == TIMEDOUT then ok, err, code = nil, "timeout", nil end
  if ok and chain then
    local info = s:tlsinfo()
    if not info or not info.peer or info.verify_error then
      ok, err = nil, "certificate verify failed: "
        .. (info and info.verify_error or "no peer certificate")
    end
  end
  if not ok then
    self.stream = nil
    s:close()
    return nil, err, code
  end
  self.tls = tag
  return true
end
TCP.sslhandshake = waits(sslhandshake)

-- Methods called on a value that is no tcp object raise as LuaSocket's do
-- (receive, send and the others that check the kind do it themselves).
local CHECKED = { receive = true, send = true, connect = true, bind = true,
  accept = true, shutdown = true, setkeepalive = true, receiveany = true,
  receiveuntil = true, sslhandshake = true, __index = true, __tostring = true,
  __close = true }

local function checkself (class, cname)
  for name, f in pairs(class) do
    if not CHECKED[name] and type(f) == "function" then
      class[name] = function (self, ...)
        if type(self) ~= "table" or self.kind == nil then
          raise(format("calling '%s' on bad self (%s expected)", name, cname))
        end
        return f(self, ...)
      end
    end
  end
end
checkself(TCP, "tcp{any}")
S.checkself = checkself                 -- for socket_module.lua
