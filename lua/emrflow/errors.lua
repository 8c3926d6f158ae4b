-- emrflow.errors: the error objects returned as `nil, err` at every boundary.
--
-- An error is a plain table with the metatable the C core exports as
-- `core.error_mt` ("emrflow.Error"), so errors made in C and in Lua look and
-- print the same:
--   code        short stable string: "aws", "validation", "timeout", "reset", ...
--   aws_code    the AWS error code ("ThrottlingException"), when there is one
--   status      HTTP status, when there was a reply
--   message     human text; never holds a secret
--   request_id  x-amzn-RequestId of the reply, when there was one
--   retryable   boolean
local core = require "emrflow.core"

local M = {}

M.mt = core.error_mt

local FIELDS = { "code", "message", "status", "aws_code", "request_id", "retryable" }

-- errors.new{ code =, message =, status =, aws_code =, request_id =, retryable =, ... }
-- Extra fields (for example `field` on validation errors) are kept.
function M.new(fields)
  if type(fields) ~= "table" then
    error("errors.new: expected a table of fields, got " .. type(fields), 2)
  end
  local e = {}
  for k, v in pairs(fields) do e[k] = v end
  if e.code == nil then e.code = e.aws_code and "aws" or "error" end
  if type(e.code) ~= "string" then error("errors.new: code must be a string", 2) end
  if e.message ~= nil then e.message = tostring(e.message) end
  e.retryable = e.retryable == true
  return setmetatable(e, M.mt)
end

-- True for an emrflow error object (from C or Lua).
function M.is_error(v)
  return type(v) == "table" and getmetatable(v) == M.mt
end

-- errors.is(err, code): the error's AWS code or its own code equals `code`
-- (errors.is(err, "ThrottlingException"), errors.is(err, "timeout")).
function M.is(err, code)
  if type(err) ~= "table" then return false end
  return err.aws_code == code or err.code == code
end

-- A copy of `err` whose message is prefixed with `context` ("StartJobRun: ...").
-- Non-error values (strings) become errors with code "error".
function M.wrap(err, context)
  local e
  if type(err) == "table" then
    e = {}
    for k, v in pairs(err) do e[k] = v end
  else
    e = { code = "error", message = tostring(err) }
  end
  if context and context ~= "" then
    e.message = e.message and (context .. ": " .. e.message) or context
  end
  return M.new(e)
end

-- The fields of an error as a plain table (for JSON or logs).
function M.fields(err)
  local t = {}
  for _, k in ipairs(FIELDS) do t[k] = err[k] end
  return t
end

return M
