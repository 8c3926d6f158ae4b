-- emrflow.asl.common: small helpers shared by the interpreter's modules: ASL errors,
-- value tests, error normalization and the payload size quota.

local json = require "emrflow.json"
local errors = require "emrflow.asl.errors"

local PAYLOAD_LIMIT = 262144
local encode = json.encode
local is_array_marked = json.is_array
local is_object_marked = json.is_object
local json_size = json.size
local fmt = string.format

local M = {}

--- A raised Lua value as a message for users: its text without the "file.lua:N: " location
-- Lua adds (users see ASL errors, never the interpreter's source positions).
function M.plain_message(e)
  local text = tostring(e)
  -- the Lua position error() adds: "file.lua:12: ", "[string \"...\"]:3: ", "stdin:1: "
  text = text:gsub("^[^\n]-%.lua:%d+: ", "", 1)
  text = text:gsub('^%[string ".-"%]:%d+: ', "", 1)
  text = text:gsub("^stdin:%d+: ", "", 1)
  return text
end

---------------------------------------------------------------------------
-- Small helpers
---------------------------------------------------------------------------

local function raise(name, cause)
  error({ Error = name, Cause = cause }, 0)
end

local function runtime(cause)
  error({ Error = "States.Runtime", Cause = cause }, 0)
end

local function is_array(v)
  if type(v) ~= "table" then return false end
  if is_array_marked(v) then return true end
  if is_object_marked(v) then return false end
  return v[1] ~= nil
end

local function is_object(v)
  return type(v) == "table" and not is_array(v)
end

-- A value as AWS prints it inside error causes: strings raw, numbers plain, the rest JSON.
local function show(v)
  if type(v) == "string" then return v end
  if math.type(v) == "float" and v == math.floor(v) and v > -1e15 and v < 1e15 then
    return fmt("%d", v) .. ".0"
  end
  if type(v) == "number" then return tostring(v) end
  local ok, s = pcall(encode, v)
  return ok and s or tostring(v)
end

-- Errors that AWS reports with "An error occurred while executing the state ...".
local PREFIXED = {
  ["States.Runtime"] = true,
  ["States.QueryEvaluationError"] = true,
  ["States.IntrinsicFailure"] = true,
  ["States.ParameterPathFailure"] = true,
}

-- Turns whatever was raised into an ASL error, adding the state prefix where AWS does.
local function normalize(err, frame)
  if type(err) ~= "table" then
    err = { Error = "States.Runtime", Cause = M.plain_message(err) }
  elseif err.aborted or err.timed_out then
    return err
  elseif err.Error ~= nil and type(err.Error) ~= "string" then
    err = { Error = "States.Runtime", Cause = "invalid error value: " .. show(err.Error) }
  end
  if frame and not err.located then
    local out = { Error = err.Error, Cause = err.Cause, located = true, retryable = err.retryable }
    if PREFIXED[err.Error] and frame.state_name
        and not (type(err.Cause) == "string" and err.Cause:find("^An error occurred while executing")) then
      out.Cause = errors.state_prefix(frame.state_name, frame.entered_id) .. (err.Cause or "")
    end
    out.from_task = err.from_task
    return out
  end
  return err
end

local function size_check(name, v)
  local t = type(v)
  if t == "table" or (t == "string" and #v > PAYLOAD_LIMIT // 6) then
    local n = json_size(v, PAYLOAD_LIMIT)
    if n and n > PAYLOAD_LIMIT then
      raise("States.DataLimitExceeded", fmt(
        "The state/task '%s' returned a result with a size exceeding the maximum number of bytes "
        .. "service limit.", name))
    end
  end
end

-- Deep-copies a Lua value into JSON data (marked arrays/objects); raises on non-JSON.
local function to_data(v, where)
  local ok, res = pcall(function() return json.decode(encode(v)) end)
  if not ok then
    raise("States.Runtime", fmt("%s is not JSON data: %s", where, tostring(res)))
  end
  return res
end
M.to_data = to_data

-- Does a definition fragment mention the context object ("$$") anywhere?
local function walk_mentions_context(v)
  if type(v) == "string" then return v:find("$$", 1, true) ~= nil end
  if type(v) == "table" then
    for k, x in pairs(v) do
      if walk_mentions_context(k) or walk_mentions_context(x) then return true end
    end
  end
  return false
end

-- Does a definition fragment hold the key `key` anywhere (at any depth)?
local function mentions_key(v, key)
  if type(v) ~= "table" then return false end
  for k, x in pairs(v) do
    if k == key or mentions_key(x, key) then return true end
  end
  return false
end

local function mentions_context(v)
  local ok, text = pcall(encode, v)
  if ok then return text:find("$$", 1, true) ~= nil end
  return walk_mentions_context(v)
end
local function integer_value(v)
  if math.type(v) == "integer" then return v end
  if type(v) == "string" and v:match("^%s*[+-]?%d+%s*$") then return math.tointeger(tonumber(v)) end
  if math.type(v) == "float" and v == math.floor(v) and v > -2^63 and v < 2^63 then
    return math.tointeger(v)
  end
  return nil
end

M.raise = raise
M.runtime = runtime
M.is_array = is_array
M.is_object = is_object
M.show = show
M.PREFIXED = PREFIXED
M.normalize = normalize
M.size_check = size_check
M.to_data = to_data
M.walk_mentions_context = walk_mentions_context
M.mentions_key = mentions_key
M.mentions_context = mentions_context
M.integer_value = integer_value

---------------------------------------------------------------------------
-- Load-time checks (shared by validate.lua and the state modules' checks)
---------------------------------------------------------------------------

-- A JSON pointer step: path .. "/" .. key, escaped as RFC 6901 says.
local function join(path, key)
  local k = tostring(key)
  if k:find("[~/]") then k = k:gsub("~", "~0"):gsub("/", "~1") end
  return path .. "/" .. k
end

local function is_int(v)
  return math.type(v) == "integer"
    or (math.type(v) == "float" and v == math.floor(v) and v > -2 ^ 53 and v < 2 ^ 53)
end

-- A JSONata expression field: a string "{% ... %}".
local function is_jsonata_expr(v)
  return type(v) == "string" and v:match("^%s*{%%.*%%}%s*$") ~= nil
end

M.join, M.is_int, M.is_jsonata_expr = join, is_int, is_jsonata_expr

--- "a b c" --> { "a", "b", "c" } (field lists).
function M.words(text)
  local out = {}
  for w in text:gmatch("%S+") do out[#out + 1] = w end
  return out
end

M.PAYLOAD_LIMIT = PAYLOAD_LIMIT

---------------------------------------------------------------------------
-- Names (the one rule the engine and the command line share)
---------------------------------------------------------------------------

--- Step Functions' rule for an execution name, as a message says it.
M.NAME_RULE = "1 to 80 characters without blanks, brackets, wildcards, control characters "
  .. "or any of \" # % \\ ^ | ~ ` $ & , ; : /"

-- Brackets, wildcards and the special characters AWS's execution names may not hold.
local NAME_SPECIALS = {}
for c in ("<>{}[]?*\"#%\\^|~`$&,;:/"):gmatch(".") do NAME_SPECIALS[c:byte()] = true end

-- What a character (code point cp) that an execution name may not hold is, or nil.
local function bad_name_char(cp)
  if cp == 0x20 then return "a space" end
  if cp < 0x20 or (cp >= 0x7F and cp <= 0x9F) then return fmt("the control character U+%04X", cp) end
  if NAME_SPECIALS[cp] then return fmt("'%s'", utf8.char(cp)) end
  return nil
end

--- Checks an execution name against Step Functions' rule (M.NAME_RULE): 1 to 80 characters,
-- none of them whitespace, a bracket < > { } [ ], a wildcard ? *, one of " # % \ ^ | ~ ` $ &
-- , ; : / or a control character (U+0000-001F, U+007F-009F). Returns nil when it follows the
-- rule, else what is wrong ("has a space at character 2").
function M.name_problem(name)
  if type(name) ~= "string" then return "is a " .. type(name) .. ", not a string" end
  local n = utf8.len(name)
  if not n then return "is not UTF-8 text" end
  if n < 1 then return "is empty" end
  if n > 80 then return fmt("has %d characters", n) end
  local i = 0
  for _, cp in utf8.codes(name) do
    i = i + 1
    local what = bad_name_char(cp)
    if what then return fmt("has %s at character %d", what, i) end
  end
  return nil
end

return M
