--- emrflow.digest: message digests through OpenSSL (the C core).
--
--   digest.hex("SHA-256", "abc") --> "ba7816bf..."   (lower-case hex)
--   digest.raw("md5", data)      --> 16 raw bytes
--
-- Algorithms (case-insensitive): MD5, SHA-1, SHA-256, SHA-384, SHA-512. An
-- unknown algorithm raises an emrflow error (code "digest") naming it.
local core = require "emrflow.core"
local errors = require "emrflow.errors"

local M = {}

local function compute(alg, data)
  if type(alg) ~= "string" then
    error(errors.new { code = "digest", message = "the algorithm must be a string, got " .. type(alg) }, 0)
  end
  if type(data) ~= "string" then
    error(errors.new { code = "digest", message = "the data must be a string, got " .. type(data) }, 0)
  end
  local raw, message = core.digest(alg, data)
  if not raw then error(errors.new { code = "digest", message = message }, 0) end
  return raw
end

--- The digest of `data` as raw bytes.
function M.raw(alg, data)
  return compute(alg, data)
end

--- The digest of `data` in lower-case hexadecimal.
function M.hex(alg, data)
  return (compute(alg, data):gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

return M
