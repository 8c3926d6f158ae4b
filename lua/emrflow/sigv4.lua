--- emrflow.sigv4: AWS Signature Version 4 (AWS4-HMAC-SHA256) header signing.
--
--   local sigv4 = require "emrflow.sigv4"
--   local s = sigv4.sign{
--     method = "POST", url = "https://host/path?query",
--     headers = { {"Content-Type", "application/json"} },  -- ordered pairs
--     body = "...", region = "us-east-1", service = "emr-containers",
--     credentials = { access_key_id = "...", secret_access_key = "...", session_token = nil },
--     time = 1440938160,          -- Unix seconds (UTC); default os.time()
--     normalize_path = true, double_encode = true,      -- false for S3
--     sign_body = false,          -- add and sign X-Amz-Content-Sha256
--     unsigned_payload = false,   -- payload hash "UNSIGNED-PAYLOAD"
--     omit_session_token = false, -- send X-Amz-Security-Token unsigned
--     payload_hash = nil,         -- a precomputed hash (s.payload_hash of an earlier signing)
--   }
--   s.headers            -- request headers + X-Amz-Date, X-Amz-Security-Token,
--                        -- X-Amz-Content-Sha256 (sign_body), Authorization
--   s.authorization, s.signature, s.canonical_request, s.string_to_sign, s.amz_date,
--   s.payload_hash, s.signed_headers, s.credential_scope
--
-- Host is signed from the URL (default port omitted) unless a Host header is
-- given; it is not added to s.headers (libcurl sends the same value).
-- X-Amz-Date, Authorization, X-Amz-Security-Token and X-Amz-Content-Sha256 belong
-- to the signer: copies in `headers` are dropped and regenerated, so signing
-- s.headers again (a retry) is fine. To re-sign without hashing the body again,
-- pass `payload_hash = s.payload_hash`.
--
-- A signer object caches derived signing keys per (secret, date, region, service)
-- and takes defaults for any field a request leaves out:
--   local signer = sigv4.signer{ region = "us-east-1", service = "emr-containers",
--                                credentials = creds }
--   local s = signer:sign{ method = "GET", url = "https://..." }
--
-- Bad input raises an error naming the field; no error ever contains a secret
-- key, a session token, a header value or a signature.
-- @module emrflow.sigv4
local core = require "emrflow.core"

local M = {}

local csigv4 = core.sigv4
local os_time = os.time
local type, error, setmetatable, pairs = type, error, setmetatable, pairs

-- The module's shared signer (and key cache), made on first use.
local default_signer

local DEFAULT_FIELDS = {
  method = "string", url = "string", headers = "table", body = "string",
  region = "string", service = "string", credentials = "table", time = "number",
  normalize_path = "boolean", double_encode = "boolean", sign_body = "boolean",
  unsigned_payload = "boolean", omit_session_token = "boolean",
}

-- A request's fields: the defaults' plus the body's hash of an earlier attempt.
local REQUEST_FIELDS = { payload_hash = "string" }
for k, v in pairs(DEFAULT_FIELDS) do REQUEST_FIELDS[k] = v end

-- A misspelt option (normalise_path, unsigned_body) would silently sign the wrong request.
local function check_fields(req)
  for k in pairs(req) do
    if not REQUEST_FIELDS[k] then
      error("emrflow.sigv4.sign: unknown field '" .. tostring(k) .. "'", 3)
    end
  end
end

--- Signs one request with the module's shared signer.
function M.sign(req)
  if type(req) ~= "table" then
    error("emrflow.sigv4.sign: expected a request table, got " .. type(req), 2)
  end
  check_fields(req)
  local s = default_signer
  if not s then
    s = csigv4.new()
    default_signer = s
  end
  -- level 2: errors point at our caller
  return s:sign(req, req.time == nil and os_time() or nil, 2)
end

--- Hex SHA-256 of a body, as used for the payload hash.
function M.payload_hash(body)
  if type(body) ~= "string" then
    error("emrflow.sigv4.payload_hash: expected a string, got " .. type(body), 2)
  end
  if not default_signer then default_signer = csigv4.new() end
  return default_signer:hash(body)
end

local Signer = {}
Signer.__index = Signer


--- A signer with its own key cache and defaults for any request field.
function M.signer(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("emrflow.sigv4.signer: expected an options table, got " .. type(opts), 2)
  end
  local defaults = {}
  for k, v in pairs(opts or {}) do
    local want = DEFAULT_FIELDS[k]
    if not want then
      error("emrflow.sigv4.signer: unknown option '" .. tostring(k) .. "'", 2)
    end
    if type(v) ~= want then
      error("emrflow.sigv4.signer: option '" .. k .. "' must be a " .. want .. ", got " .. type(v), 2)
    end
    defaults[k] = v
  end
  return setmetatable({ _c = csigv4.new(defaults) }, Signer)
end

function Signer:sign(req)
  if type(req) ~= "table" then
    error("emrflow.sigv4.sign: expected a request table, got " .. type(req), 2)
  end
  check_fields(req)
  return self._c:sign(req, os_time(), 2)
end

--- Hex SHA-256 of a body (counted in stats().body_hashes).
function Signer:payload_hash(body)
  if type(body) ~= "string" then
    error("emrflow.sigv4.payload_hash: expected a string, got " .. type(body), 2)
  end
  return self._c:hash(body)
end

--- { key_hits =, key_misses =, body_hashes = }
function Signer:stats()
  return self._c:stats()
end

--- Forgets (and wipes) the cached signing keys.
function Signer:clear_cache()
  self._c:clear_cache()
end

--- Wipes the cache and frees the signer; later use raises.
function Signer:close()
  self._c:close()
end
Signer.__close = Signer.close

Signer.__tostring = function() return "emrflow.sigv4.Signer" end

return M
