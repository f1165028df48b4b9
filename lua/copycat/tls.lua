--- copycat.tls: TLS settings of servers and clients (docs/tls.md).
---
--- A setting is a table { ca = FILE, cert = FILE, key = FILE,
--- require_client_cert = boolean }: the cluster's CA certificate, and this
--- side's certificate and key (a server's is its member certificate; a
--- client's is optional). context() turns it into the core's context,
--- which connections and listeners use.
local core = require("copycat.core")

local tls = {}

---@class copycat.TlsOptions
---@field ca string PEM file of the cluster's CA certificate
---@field cert string|nil PEM certificate of this side
---@field key string|nil its private key
---@field require_client_cert boolean|nil servers: refuse clients without a certificate

--- Checks a setting; returns nil when it is fine, else a sentence.
---@param t any
---@return string|nil
function tls.check(t)
  if type(t) ~= "table" then return "tls must be a table { ca = FILE, cert = FILE, key = FILE }" end
  for k in pairs(t) do
    if k ~= "ca" and k ~= "cert" and k ~= "key" and k ~= "require_client_cert" then
      return ("unknown tls option '%s' (expected ca, cert, key, require_client_cert)"):format(tostring(k))
    end
  end
  if type(t.ca) ~= "string" or t.ca == "" then return "tls.ca (the CA certificate file) is required" end
  if (t.cert == nil) ~= (t.key == nil) then return "give tls.cert and tls.key together" end
  if t.cert ~= nil and (type(t.cert) ~= "string" or type(t.key) ~= "string") then
    return "tls.cert and tls.key must be file names"
  end
  return nil
end

--- Loads a setting's files into a context; nil and a sentence on failure.
---@param t copycat.TlsOptions
---@return userdata|nil, string|nil
function tls.context(t)
  local bad = tls.check(t)
  if bad then return nil, bad end
  return core.tls.context(t)
end

--- True if only this machine can reach address (a Unix socket, 127.x, ::1).
---@param address string
---@return boolean
function tls.is_loopback(address)
  return core.net.is_loopback(address)
end

return tls
