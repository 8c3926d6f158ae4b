-- emrflow.asl.payload: payload templates (Parameters, ItemSelector, ResultSelector, Assign,
-- Credentials) compiled once to closures.
--
--   payload.compile(template [, where]) --> fn | nil, message
--       template: any JSON value.  In objects, a key ending in ".$" is replaced by the key
--       without the suffix, and its value (a string) is evaluated: a path ("$...", "$$...",
--       "$name...", full JSONPath allowed) or an intrinsic call ("States.Format(...)").  Other
--       keys and values are literal; objects inside arrays are templates too.  Output keys keep
--       the template's order.  `where` (for example "/States/A/Parameters") prefixes compile
--       error messages.
--   fn(env) --> value
--       env = { input = <$>, context = <$$>, vars = { name = value } }.  Literal parts are
--       copied on every call; values selected by paths are the input's own nodes (shared, not
--       copied), so treat inputs and results as immutable, as jsonpath.set does.  A path that matches nothing
--       raises States.Runtime "The JSONPath '<path>' specified for the field '<key>.$' could not
--       be found in the input '<compact json of $>'"; intrinsics raise their own ASL errors.
--   payload.is_template(v) --> true when v holds a ".$" key anywhere (false: a plain literal)
local json = require "emrflow.json"
local jsonpath = require "emrflow.asl.jsonpath"
local intrinsics = require "emrflow.asl.intrinsics"
local errors = require "emrflow.asl.errors"

local M = {}

local kind = jsonpath.kind
local copy = json.copy
local ssub, sformat = string.sub, string.format

local SUFFIX = ".$"

local function is_dynamic_key(k)
  return type(k) == "string" and #k > 2 and ssub(k, -2) == SUFFIX
end

-- Compiles the value of a ".$" key.
local function compile_expression(text, field, where)
  if type(text) ~= "string" then
    return nil, sformat("%s: the value of the field '%s' must be a string holding a JSONPath or an "
      .. "intrinsic function call, got %s", where, field, kind(text) or type(text))
  end
  if intrinsics.is_call(text) then
    local fn, msg = intrinsics.compile(text, field)
    if not fn then return nil, sformat("%s/%s: %s", where, field, msg) end
    return fn
  end
  if ssub(text, 1, 1) ~= "$" then
    return nil, sformat("%s: the value of the field '%s' must be a valid JSONPath or a valid "
      .. "intrinsic function call, got '%s'", where, field, text)
  end
  local p, msg = jsonpath.compile(text)
  if not p then return nil, sformat("%s/%s: %s", where, field, msg) end
  local eval = p.eval
  return function(env)
    local v = eval(env.input, env)
    if v == nil then
      errors.runtime(jsonpath.not_found_cause(text, field, env.input))
    end
    return v
  end
end

-- Returns { const = v } or { fn = f }.
local function compile_node(v, where)
  local k = kind(v)
  if k == "object" then
    local keys, parts, dynamic = json.keys(v), {}, false
    local seen = {}
    for idx, key in ipairs(keys) do
      local out_key, part
      if is_dynamic_key(key) then
        out_key = ssub(key, 1, -3)
        local fn, msg = compile_expression(v[key], key, where)
        if not fn then return nil, msg end
        part = { fn = fn }
        dynamic = true
      else
        out_key = key
        local sub, msg = compile_node(v[key], where .. "/" .. key)
        if not sub then return nil, msg end
        part = sub
        if sub.fn then dynamic = true end
      end
      if seen[out_key] then
        return nil, sformat("%s: the field '%s' is given twice (as '%s' and '%s')", where, out_key,
          seen[out_key], key)
      end
      seen[out_key] = key
      parts[idx] = { key = out_key, part = part }
    end
    if not dynamic then return { const = v } end
    local n = #parts
    local okeys, fns, consts = {}, {}, {}
    for idx, p in ipairs(parts) do
      okeys[idx] = p.key
      if p.part.fn then fns[idx] = p.part.fn else consts[idx] = p.part.const end
    end
    local set, object = json.set, json.object
    return { fn = function(env)
      local out = object({})
      for idx = 1, n do
        local f = fns[idx]
        local val
        if f then
          val = f(env)
        else
          val = consts[idx]
          if type(val) == "table" then val = copy(val) end
        end
        set(out, okeys[idx], val)
      end
      return out
    end }
  elseif k == "array" then
    local parts, dynamic = {}, false
    for idx = 1, #v do
      local sub, msg = compile_node(v[idx], where .. "/" .. (idx - 1))
      if not sub then return nil, msg end
      parts[idx] = sub
      if sub.fn then dynamic = true end
    end
    if not dynamic then return { const = v } end
    local n = #parts
    return { fn = function(env)
      local out = json.array({})
      for idx = 1, n do
        local p = parts[idx]
        if p.fn then
          out[idx] = p.fn(env)
        else
          local val = p.const
          if type(val) == "table" then val = copy(val) end
          out[idx] = val
        end
      end
      return out
    end }
  end
  return { const = v }
end

function M.compile(template, where)
  where = where or "Parameters"
  local node, msg = compile_node(template, where)
  if not node then return nil, msg end
  if node.fn then return node.fn end
  local const = node.const
  if type(const) == "table" then
    return function() return copy(const) end
  end
  return function() return const end
end

function M.is_template(v)
  local k = kind(v)
  if k == "object" then
    for key, sub in pairs(v) do
      if is_dynamic_key(key) or M.is_template(sub) then return true end
    end
  elseif k == "array" then
    for i = 1, #v do
      if M.is_template(v[i]) then return true end
    end
  end
  return false
end


return M
