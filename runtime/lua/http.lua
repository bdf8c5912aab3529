-- http.lua: tide.http, the HTTP client: request, get and post, and the
-- Response they return (status, headers, the body whole or streamed), on
-- top of the transfers of bindings/http_client.c (libcurl on tide's loop).
local tide, sched = ...

local http = tide.http
local start = http._start
http._start = nil

local getmetatable, ipairs, pairs, rawget, setmetatable, tostring, type =
      getmetatable, ipairs, pairs, rawget, setmetatable, tostring, type
local concat, tointeger = table.concat, math.tointeger
local lower, find = string.lower, string.find

-- Wrong use: see tide.lua.
local argerror, typeerror = sched.argerror, sched.typeerror
local checkself, checkwait = sched.checkself, sched.checkwait
local classof, new = sched.classof, sched.new

-- "tide/0.1.0" (tide._VERSION is set once the library has loaded)
local user_agent

-- ---- Headers ------------------------------------------------------------

-- res.headers: the first value of each field by its name in lower case;
-- any case finds it.
local Headers = {}
function Headers.__index (h, name)
  if type(name) ~= "string" then return nil end
  return rawget(h, lower(name))
end

-- A phrase for the statuses whose line has none (HTTP/2 has none at all).
local reasons = {
  [100] = "Continue", [101] = "Switching Protocols", [200] = "OK",
  [201] = "Created", [202] = "Accepted", [204] = "No Content",
  [206] = "Partial Content", [301] = "Moved Permanently", [302] = "Found",
  [303] = "See Other", [304] = "Not Modified", [307] = "Temporary Redirect",
  [308] = "Permanent Redirect", [400] = "Bad Request",
  [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [408] = "Request Timeout",
  [409] = "Conflict", [410] = "Gone", [413] = "Content Too Large",
  [429] = "Too Many Requests", [500] = "Internal Server Error",
  [501] = "Not Implemented", [502] = "Bad Gateway",
  [503] = "Service Unavailable", [504] = "Gateway Timeout",
}

-- The reason phrase, the headers table and the list of { name, value }
-- (names as sent) of a header block.
local function parse_head (block, status)
  local line, rest = block:match("^([^\n]*)\n?(.*)$")
  local reason = line:match("^HTTP/%S+%s+%d+[ \t]*(.-)%s*$")
  if reason == nil or reason == "" then reason = reasons[status] or "" end
  local headers, list, n = setmetatable({}, Headers), {}, 0
  for l in rest:gmatch("[^\r\n]+") do
    local name, value = l:match("^([^:%s]+)[ \t]*:[ \t]*(.-)[ \t]*$")
    if name then
      n = n + 1
      list[n] = { name, value }
      local k = lower(name)
      if rawget(headers, k) == nil then headers[k] = value end
    elseif n > 0 and l:find("^[ \t]") then   -- obsolete line folding
      local v = list[n][2] .. " " .. l:match("^%s*(.-)%s*$")
      list[n][2] = v
      local k = lower(list[n][1])
      if headers[k] == v:sub(1, #headers[k]) then headers[k] = v end
    end
  end
  return reason, headers, list
end

-- ---- The request body ---------------------------------------------------------

local CHUNK = 64 * 1024

local function isfile (x)
  local mt = getmetatable(x)
  return type(mt) == "table" and mt.__name == "tide.File"
end

-- The length of what a File holds from its position on, or -1.
local function filesize (f)
  local st = f:stat()
  local pos = f:seek("cur")
  if st and st.size and pos and st.size > pos then return st.size - pos end
  return -1
end

-- ---- The Response --------------------------------------------------------

local Response = sched.newclass("tide.http.Response")
Response.__index = Response

-- Wait on transfer t for what ("head", "data", "done"), feeding it the
-- request body from src whenever curl asks for more.
local function pump (t, what, src)
  while true do
    local ev = t:_wait(what)
    if ev ~= "send" then return end
    local chunk = src and src()
    while chunk == "" do chunk = src() end
    if chunk ~= nil and type(chunk) ~= "string" then
      argerror(1, "'body': the function must return strings, got "
                  .. type(chunk))
    end
    t:_feed(chunk)
  end
end

local function new_response (t, src, file)
  local status, version, url, block = t:_info()
  local reason, headers, list = parse_head(block, status)
  return new(Response, {
    status = status, reason = reason, headers = headers, url = url,
    version = version, _t = t, _src = src, _file = file, _list = list,
  })
end

-- res:read([n]) -> data | nil | nil, msg, code: waits for body data, at
-- most n bytes (default: what is buffered, up to 64 KiB); nil at its end.
function Response:read (n)
  if classof[self] ~= Response then checkself(self, Response) end
  if n ~= nil then
    n = tointeger(n)
    if not n or n <= 0 then argerror(2, "positive integer expected") end
  end
  local t = self._t
  while true do
    local s = t:_read(n)
    if s then return s end
    local ok, msg, code = t:_result()
    if ok then return nil end
    if msg then return nil, msg, code end
    checkwait()
    pump(t, "data", self._src)
  end
end

-- res:body() -> the whole body (what read() has not taken) | nil, msg, code
function Response:body ()
  if classof[self] ~= Response then checkself(self, Response) end
  local parts, n, t = {}, 0, self._t
  while true do
    local s = t:_read()
    if s then
      n = n + 1
      parts[n] = s
    else
      local ok, msg, code = t:_result()
      if ok then break end
      if msg then return nil, msg, code end
      checkwait()
      pump(t, "data", self._src)
    end
  end
  return n == 1 and parts[1] or concat(parts)
end

-- for line in res:lines() do ... end: lines without "\n" (the last may
-- lack it); an error raises.
function Response:lines ()
  if classof[self] ~= Response then checkself(self, Response) end
  local buf, ended = "", false
  return function ()
    while true do
      local i = find(buf, "\n", 1, true)
      if i then
        local line = buf:sub(1, i - 1)
        buf = buf:sub(i + 1)
        return line
      end
      if ended then
        if buf == "" then return nil end
        local line = buf
        buf = ""
        return line
      end
      local s, msg = self:read()
      if s then buf = buf .. s
      elseif msg then error(msg, 2)
      else ended = true end
    end
  end
end

-- res:getall(name) -> { value, ... }: every value of a field, in order.
function Response:getall (name)
  if classof[self] ~= Response then checkself(self, Response) end
  if type(name) ~= "string" then typeerror(2, "string", name) end
  local k, all = lower(name), {}
  for _, h in ipairs(self._list) do
    if lower(h[1]) == k then all[#all + 1] = h[2] end
  end
  return all
end

-- res:close(): stop a transfer still going (a streamed body not read to
-- its end: its connection is closed, not reused); harmless twice.
function Response:close ()
  if classof[self] ~= Response then checkself(self, Response) end
  self._t:close()
  if self._file then self._file:close() end
end
Response.__close = Response.close

function Response:__tostring ()
  return ("tide.http.Response (%d %s)"):format(self.status, self.reason)
end

-- ---- Options ------------------------------------------------------------------

-- Closes what a request leaves behind when it fails, is cancelled or raises.
local Holder = { __close = function (h)
  if h.t then h.t:close() end
  if h.f then h.f:close() end
end }

local function field (i, name, msg)
  argerror(i, ("'%s': %s"):format(name, msg))
end

local function optnumber (i, opts, name)
  local v = opts[name]
  if v == nil then return nil end
  if type(v) ~= "number" or not (v >= 0) then
    field(i, name, "non-negative number expected")
  end
  return v
end

local function optstring (i, opts, name)
  local v = opts[name]
  if v ~= nil and type(v) ~= "string" then field(i, name, "string expected") end
  return v
end

local function optboolean (i, opts, name)
  local v = opts[name]
  if v ~= nil and type(v) ~= "boolean" then field(i, name, "boolean expected") end
  return v
end

-- opts.headers { name = value | { value, ... } } as "Name: value" lines;
-- whether a Content-Type, an Expect and a User-Agent are among them.
local function header_lines (i, hs)
  local lines, has = {}, {}
  if hs == nil then return lines, has end
  if type(hs) ~= "table" then field(i, "headers", "table expected") end
  for name, v in pairs(hs) do
    if type(name) ~= "string" or not name:find("^[%w!#$%%&'*+.^_`|~-]+$") then
      field(i, "headers", "bad field name " .. tostring(name))
    end
    local vs = type(v) == "table" and v or { v }
    for _, x in ipairs(vs) do
      if type(x) ~= "string" and type(x) ~= "number" then
        field(i, "headers", "string expected for " .. name)
      end
      x = tostring(x)
      if x:find("[\r\n%z]") then
        field(i, "headers", "line break in the value of " .. name)
      end
      -- "Name;" sends an empty value ("Name:" would remove curl's own)
      lines[#lines + 1] = x == "" and name .. ";" or name .. ": " .. x
    end
    has[lower(name)] = true
  end
  return lines, has
end

local versions = { ["1.0"] = true, ["1.1"] = true, ["2"] = true }

-- The table _start takes, from the user's options (argument i).
local function transfer_opts (i, opts)
  local url = opts.url
  if type(url) ~= "string" then field(i, "url", "string expected") end
  local o = {
    url = url,
    stream = optboolean(i, opts, "stream"),
    follow = optboolean(i, opts, "follow"),
    decompress = optboolean(i, opts, "decompress"),
    verify = optboolean(i, opts, "verify"),
    timeout = optnumber(i, opts, "timeout"),
    connect_timeout = optnumber(i, opts, "connect_timeout"),
    low_speed_limit = optnumber(i, opts, "low_speed_limit"),
    low_speed_time = optnumber(i, opts, "low_speed_time"),
    cafile = optstring(i, opts, "cafile"),
    capath = optstring(i, opts, "capath"),
    proxy = optstring(i, opts, "proxy"),
    noproxy = optstring(i, opts, "noproxy"),
    version = optstring(i, opts, "version"),
  }
  local mr = opts.max_redirects
  if mr ~= nil then
    mr = tointeger(mr)
    if not mr or mr < 0 then
      field(i, "max_redirects", "non-negative integer expected")
    end
    o.max_redirects = mr
  end
  if o.version and not versions[o.version] then
    field(i, "version", "\"1.0\", \"1.1\" or \"2\" expected")
  end
  local body, file = opts.body, opts.file
  if body ~= nil and type(body) ~= "string" and type(body) ~= "function"
     and not isfile(body) then
    field(i, "body", "string, function or tide.File expected")
  end
  if file ~= nil and type(file) ~= "string" then
    field(i, "file", "string expected")
  end
  if body ~= nil and file ~= nil then field(i, "file", "'body' given too") end
  local method = opts.method
  if method == nil then
    method = (body ~= nil or file ~= nil) and "POST" or "GET"
  elseif type(method) ~= "string" or not method:find("^[%w!#$%%&'*+.^_`|~-]+$")
  then
    field(i, "method", "method name expected")
  end
  o.method = method
  local lines, has = header_lines(i, opts.headers)
  if not has["user-agent"] then
    user_agent = user_agent
      or "tide/" .. (tostring(tide._VERSION):match("[%d.]+$") or "0")
    lines[#lines + 1] = "User-Agent: " .. user_agent
  end
  if body ~= nil or file ~= nil then
    -- no form type of curl's own, no Expect: 100-continue round trip
    if not has["content-type"] then lines[#lines + 1] = "Content-Type:" end
    if not has["expect"] then lines[#lines + 1] = "Expect:" end
  end
  o.headers = lines
  local size = opts.size
  if size ~= nil and (not tointeger(size) or size < 0) then
    field(i, "size", "non-negative integer expected")
  end
  return o, body, file, size
end

-- The request body as _start takes it (o.body, or o.pull and o.size) and
-- the function that pulls it; a File opened here (to close); or nil, msg,
-- code when the file cannot be opened.
local function body_source (o, body, file, size)
  if type(body) == "string" then
    o.body = body
    return nil
  end
  if type(body) == "function" then
    o.pull, o.size = true, size or -1
    return body
  end
  local opened
  if file ~= nil then
    local f, msg, code = tide.fs.open(file, "r")
    if not f then return nil, nil, msg, code end
    body, opened = f, f
  end
  if body == nil then return nil end
  o.pull, o.size = true, size or filesize(body)
  local f = body
  return function () return f:read(CHUNK) end, opened
end

-- ---- Requests ----------------------------------------------------------------

-- The request of options opts (argument i of the function the user called).
local function request (i, opts)
  if type(opts) ~= "table" then typeerror(i, "table", opts) end
  local o, body, file, size = transfer_opts(i, opts)
  checkwait()
  local src, opened, msg, code = body_source(o, body, file, size)
  if msg then return nil, msg, code end
  local hold <close> = setmetatable({ f = opened }, Holder)
  local t = start(o)
  hold.t = t
  pump(t, o.stream and "head" or "done", src)
  local ok
  ok, msg, code = t:_result()
  if ok == nil and msg then return nil, msg, code end
  local res = new_response(t, src, ok == nil and opened or nil)
  hold.t = nil
  if ok == nil then hold.f = nil end         -- a streamed body goes on
  return res
end

-- tide.http.request{ url =, method =, headers =, body =, ... } ->
-- Response | nil, msg, code
function http.request (opts)
  local res, msg, code = request(1, opts)
  return res, msg, code
end

local function with (i, url, opts)
  if type(url) ~= "string" then typeerror(1, "string", url) end
  if opts ~= nil and type(opts) ~= "table" then typeerror(i, "table", opts) end
  local o = {}
  if opts then for k, v in pairs(opts) do o[k] = v end end
  o.url = url
  return o
end

-- tide.http.get(url [, opts]) -> Response | nil, msg, code
function http.get (url, opts)
  local res, msg, code = request(2, with(2, url, opts))
  return res, msg, code
end

-- tide.http.post(url, body [, opts]) -> Response | nil, msg, code
function http.post (url, body, opts)
  local o = with(3, url, opts)
  if type(body) ~= "string" and type(body) ~= "function" and not isfile(body)
  then
    typeerror(2, "string, function or tide.File", body)
  end
  o.body = body
  o.method = o.method or "POST"
  local res, msg, code = request(3, o)
  return res, msg, code
end
