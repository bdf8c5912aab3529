-- tls_certs.lua: certificates for the TLS specs, made at run time with
-- openssl req / x509 (no key is committed): a test CA, a server
-- certificate for localhost and 127.0.0.1 signed by it, an expired one, one
-- for another host, a self-signed one, a second CA, a client certificate,
-- one per server name for SNI, and the server's key encrypted. Every key is ECDSA P-256.
--   local certs = dofile("spec/tls_certs.lua")(dir)
--   certs.ca, certs.server.cert, certs.server.key, certs.read(path) ...

local function run (cmd)
  local f = assert(io.popen(cmd .. " 2>&1"))
  local out = f:read("a")
  local ok = f:close()
  if not ok then error("openssl failed: " .. cmd .. "\n" .. out, 2) end
end

local function write (path, s)
  local f = assert(io.open(path, "w"))
  f:write(s)
  f:close()
end

local KEY = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"

return function (dir)
  local c = { dir = dir }
  local function p (name) return dir .. "/" .. name end

  -- A CA: name.pem and name.key.
  local function ca (name, cn)
    run(("openssl req -x509 %s -keyout %s.key -out %s.pem -days 30 " ..
         "-subj '/CN=%s' -addext basicConstraints=critical,CA:TRUE " ..
         "-addext keyUsage=critical,keyCertSign,cRLSign")
      :format(KEY, p(name), p(name), cn))
    return p(name .. ".pem")
  end

  -- A certificate signed by the CA named by, for the alternative names
  -- san, valid for days (negative: expired).
  local function cert (name, cn, san, by, days, usage)
    local ext = p(name .. ".ext")
    write(ext, ("subjectAltName=%s\nextendedKeyUsage=%s\n" ..
                "basicConstraints=CA:FALSE\n"):format(san, usage or "serverAuth"))
    run(("openssl req -new %s -keyout %s.key -out %s.csr -subj '/CN=%s'")
      :format(KEY, p(name), p(name), cn))
    run(("openssl x509 -req -in %s.csr -CA %s.pem -CAkey %s.key " ..
         "-CAcreateserial -days %d -extfile %s -out %s.pem")
      :format(p(name), p(by), p(by), days or 30, ext, p(name)))
    return { cert = p(name .. ".pem"), key = p(name .. ".key") }
  end

  c.ca = ca("ca", "tide test CA")
  c.otherca = ca("otherca", "another test CA")
  c.server = cert("server", "localhost", "DNS:localhost,IP:127.0.0.1", "ca")
  c.expired = cert("expired", "localhost", "DNS:localhost,IP:127.0.0.1", "ca", -1)
  c.wronghost = cert("wronghost", "example.org", "DNS:example.org", "ca")
  c.client = cert("client", "tide client", "DNS:client.test", "ca", 30, "clientAuth")
  c.stranger = cert("stranger", "stranger", "DNS:client.test", "otherca", 30,
                    "clientAuth")
  c.alpha = cert("alpha", "alpha.test", "DNS:alpha.test", "ca")
  c.beta = cert("beta", "beta.test", "DNS:beta.test,DNS:*.beta.test", "ca")
  run(("openssl req -x509 %s -keyout %s -out %s -days 30 -subj '/CN=localhost' " ..
       "-addext subjectAltName=DNS:localhost,IP:127.0.0.1")
    :format(KEY, p("self.key"), p("self.pem")))
  c.selfsigned = { cert = p("self.pem"), key = p("self.key") }
  -- the server's key, encrypted with the password "secret"
  run(("openssl pkey -in %s -aes128 -passout pass:secret -out %s")
    :format(c.server.key, p("encrypted.key")))
  c.encrypted = { cert = c.server.cert, key = p("encrypted.key"),
                  password = "secret" }

  function c.read (path)
    local f = assert(io.open(path))
    local s = f:read("a")
    f:close()
    return s
  end
  return c
end
