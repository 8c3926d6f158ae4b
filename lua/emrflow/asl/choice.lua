-- emrflow.asl.choice: JSONPath Choice rules compiled to closures.
--
--   choice.compile(rule [, where]) --> fn | nil, message
--       rule: one element of a Choice state's Choices (its Next, Comment, Assign and Output
--       fields are ignored here) or a nested rule of And/Or/Not.  `where` (for example
--       "/States/C/Choices/0") prefixes error messages.  A JSONata rule (Condition) is
--       rejected with a message saying so.
--   fn(env) --> boolean
--       env = { input = <$>, context = <$$>, vars = { name = value } }.
--       A comparison whose value has the wrong type is false, never an error (AWS).  When
--       Variable (or a ...Path operand) matches nothing, IsPresent is false; every other test
--       raises States.Runtime "Invalid path '<path>': The choice state's condition path
--       references an invalid value."
--   choice.OPERATORS               -- operator name -> { type =, path = bool }
--   choice.parse_timestamp(s)      --> seconds, nanos | nil   (ISO-8601 extended offset
--                                      date-time, as java.time.OffsetDateTime parses it)
--   choice.string_matcher(pattern) --> fn(s) --> boolean   (StringMatches: * wildcard,
--                                      \* a literal star, \\ a literal backslash)
--
-- Operators: String/Numeric/Timestamp Equals, LessThan, GreaterThan, LessThanEquals,
-- GreaterThanEquals, BooleanEquals, each also as ...Path (the operand is a path: $, $$ or
-- $var); StringMatches; IsNull, IsPresent, IsNumeric, IsString, IsBoolean, IsTimestamp;
-- And, Or, Not.
local json = require "emrflow.json"
local time = require "emrflow.time"
local jsonpath = require "emrflow.asl.jsonpath"
local errors = require "emrflow.asl.errors"

local M = {}

local null = json.null
local type, sformat, sfind, ssub = type, string.format, string.find, string.sub

---------------------------------------------------------------------------------------------
-- Timestamps
---------------------------------------------------------------------------------------------

-- Seconds and nanoseconds of an ISO-8601 extended offset date-time as Step Functions parses
-- it (emrflow.time, the one timestamp parser), or nil.
function M.parse_timestamp(s)
  if type(s) ~= "string" then return nil end
  local ms, sub_ms = time.parse_iso(s)
  if not ms then return nil end
  return ms // 1000, (ms % 1000) * 1000000 + sub_ms
end

local function ts_compare(a, b)
  local sa, na = M.parse_timestamp(a)
  if not sa then return nil end
  local sb, nb = M.parse_timestamp(b)
  if not sb then return nil end
  if sa ~= sb then return sa < sb and -1 or 1 end
  if na ~= nb then return na < nb and -1 or 1 end
  return 0
end

---------------------------------------------------------------------------------------------
-- StringMatches
---------------------------------------------------------------------------------------------

function M.string_matcher(pattern)
  local pieces, cur, i, n = {}, {}, 1, #pattern
  while i <= n do
    local c = ssub(pattern, i, i)
    if c == "\\" and i < n then
      cur[#cur + 1] = ssub(pattern, i + 1, i + 1)
      i = i + 2
    elseif c == "*" then
      pieces[#pieces + 1] = table.concat(cur)
      cur = {}
      i = i + 1
    else
      cur[#cur + 1] = c
      i = i + 1
    end
  end
  pieces[#pieces + 1] = table.concat(cur)
  if #pieces == 1 then
    local lit = pieces[1]
    return function(s) return s == lit end
  end
  local first, last = pieces[1], pieces[#pieces]
  return function(s)
    if #s < #first + #last then return false end
    if ssub(s, 1, #first) ~= first then return false end
    if last ~= "" and ssub(s, -#last) ~= last then return false end
    local pos, limit = #first + 1, #s - #last
    for k = 2, #pieces - 1 do
      local p = pieces[k]
      if p ~= "" then
        local a, b = sfind(s, p, pos, true)
        if not a or b > limit then return false end
        pos = b + 1
      end
    end
    return true
  end
end

---------------------------------------------------------------------------------------------
-- Operators
---------------------------------------------------------------------------------------------

local function num_cmp(a, b)
  if a < b then return -1 elseif a > b then return 1 end
  return 0
end

local function str_cmp(a, b)
  if a == b then return 0 end
  return a < b and -1 or 1
end

local CMP = {
  Equals = function(c) return c == 0 end,
  LessThan = function(c) return c == -1 end,
  GreaterThan = function(c) return c == 1 end,
  LessThanEquals = function(c) return c == -1 or c == 0 end,
  GreaterThanEquals = function(c) return c == 1 or c == 0 end,
}

-- type: the operand's JSON kind; test(v, operand) --> boolean, given v of any kind.
local FAMILIES = {
  String = { kind = "string", test = function(rel)
    return function(v, x) return type(v) == "string" and rel(str_cmp(v, x)) end
  end },
  Numeric = { kind = "number", test = function(rel)
    return function(v, x) return type(v) == "number" and rel(num_cmp(v, x)) end
  end },
  Timestamp = { kind = "timestamp", test = function(rel)
    return function(v, x)
      if type(v) ~= "string" then return false end
      local c = ts_compare(v, x)
      return c ~= nil and rel(c)
    end
  end },
}

M.OPERATORS = {}
local TESTS = {}
for fam, spec in pairs(FAMILIES) do
  for rel, relf in pairs(CMP) do
    local name = fam .. rel
    local t = spec.test(relf)
    M.OPERATORS[name] = { type = spec.kind, path = false }
    M.OPERATORS[name .. "Path"] = { type = spec.kind, path = true }
    TESTS[name] = t
    TESTS[name .. "Path"] = t
  end
end
M.OPERATORS.BooleanEquals = { type = "boolean", path = false }
M.OPERATORS.BooleanEqualsPath = { type = "boolean", path = true }
local function bool_eq(v, x) return type(v) == "boolean" and v == x end
TESTS.BooleanEquals, TESTS.BooleanEqualsPath = bool_eq, bool_eq
M.OPERATORS.StringMatches = { type = "string", path = false, matches = true }

local IS = {
  IsNull = function(v) return v == null end,
  IsPresent = function(v) return v ~= nil end,
  IsNumeric = function(v) return type(v) == "number" end,
  IsString = function(v) return type(v) == "string" end,
  IsBoolean = function(v) return type(v) == "boolean" end,
  IsTimestamp = function(v) return type(v) == "string" and M.parse_timestamp(v) ~= nil end,
}
for name in pairs(IS) do M.OPERATORS[name] = { type = "boolean", path = false, is = true } end

local IGNORED = { Next = true, Comment = true, Assign = true, Output = true, Variable = true }

local function invalid_path(text)
  errors.runtime(sformat("Invalid path '%s': The choice state's condition path references an "
    .. "invalid value.", text))
end

local function compile_path(text, where, field)
  if type(text) ~= "string" then
    return nil, sformat("%s/%s: must be a path string", where, field)
  end
  local p, msg = jsonpath.compile(text)
  if not p then return nil, sformat("%s/%s: %s", where, field, msg) end
  return p.eval
end

local compile

local function compile_list(list, where, field)
  if jsonpath.kind(list) ~= "array" or #list == 0 then
    return nil, sformat("%s/%s: must be a non-empty array of rules", where, field)
  end
  local fns = {}
  for i = 1, #list do
    local f, msg = compile(list[i], sformat("%s/%s/%d", where, field, i - 1))
    if not f then return nil, msg end
    fns[i] = f
  end
  return fns
end

compile = function(rule, where)
  where = where or "Choices"
  if jsonpath.kind(rule) ~= "object" then
    return nil, sformat("%s: a choice rule must be an object", where)
  end
  if rule.Condition ~= nil then
    return nil, sformat("%s: 'Condition' is a JSONata choice rule; JSONata is not supported "
      .. "(use Variable with a comparison operator)", where)
  end
  if rule.And ~= nil or rule.Or ~= nil then
    local field = rule.And ~= nil and "And" or "Or"
    if rule.And ~= nil and rule.Or ~= nil then
      return nil, sformat("%s: a rule cannot have both And and Or", where)
    end
    local fns, msg = compile_list(rule[field], where, field)
    if not fns then return nil, msg end
    local n = #fns
    if field == "And" then
      return function(env)
        for i = 1, n do
          if not fns[i](env) then return false end
        end
        return true
      end
    end
    return function(env)
      for i = 1, n do
        if fns[i](env) then return true end
      end
      return false
    end
  end
  if rule.Not ~= nil then
    local f, msg = compile(rule.Not, where .. "/Not")
    if not f then return nil, msg end
    return function(env) return not f(env) end
  end
  -- A data test: Variable and exactly one operator.
  local op
  for key in pairs(rule) do
    if M.OPERATORS[key] then
      if op then
        return nil, sformat("%s: a rule must have exactly one comparison operator (found %s and %s)",
          where, op, key)
      end
      op = key
    elseif not IGNORED[key] then
      return nil, sformat("%s: unknown field '%s' in a choice rule", where, tostring(key))
    end
  end
  if not op then
    return nil, sformat("%s: a choice rule needs And, Or, Not, or Variable with a comparison operator",
      where)
  end
  if rule.Variable == nil then
    return nil, sformat("%s: the operator %s needs a Variable", where, op)
  end
  local var_text = rule.Variable
  local var, msg = compile_path(var_text, where, "Variable")
  if not var then return nil, msg end
  local spec, operand = M.OPERATORS[op], rule[op]

  if spec.is then
    if type(operand) ~= "boolean" then
      return nil, sformat("%s/%s: must be true or false", where, op)
    end
    local test = IS[op]
    if op == "IsPresent" then
      return function(env)
        return test(var(env.input, env)) == operand
      end
    end
    return function(env)
      local v = var(env.input, env)
      if v == nil then invalid_path(var_text) end
      return test(v) == operand
    end
  end

  if spec.matches then
    if type(operand) ~= "string" then
      return nil, sformat("%s/StringMatches: must be a string", where)
    end
    local m = M.string_matcher(operand)
    return function(env)
      local v = var(env.input, env)
      if v == nil then invalid_path(var_text) end
      return type(v) == "string" and m(v)
    end
  end

  local test = TESTS[op]
  if spec.path then
    local other, pmsg = compile_path(operand, where, op)
    if not other then return nil, pmsg end
    local want = spec.type
    return function(env)
      local v = var(env.input, env)
      if v == nil then invalid_path(var_text) end
      local x = other(env.input, env)
      if x == nil then invalid_path(operand) end
      if want == "timestamp" then
        if type(x) ~= "string" then return false end
      elseif jsonpath.kind(x) ~= want then
        return false
      end
      return test(v, x)
    end
  end

  -- literal operand: check its type now
  if spec.type == "timestamp" then
    if type(operand) ~= "string" or not M.parse_timestamp(operand) then
      return nil, sformat("%s/%s: must be an ISO-8601 extended offset date-time string, got %s",
        where, op, jsonpath.encode(operand))
    end
  elseif spec.type == "number" then
    if type(operand) ~= "number" then
      return nil, sformat("%s/%s: must be a number, got %s", where, op, jsonpath.encode(operand))
    end
  elseif jsonpath.kind(operand) ~= spec.type then
    return nil, sformat("%s/%s: must be a %s, got %s", where, op, spec.type, jsonpath.encode(operand))
  end
  return function(env)
    local v = var(env.input, env)
    if v == nil then invalid_path(var_text) end
    return test(v, operand)
  end
end

M.compile = compile


return M
