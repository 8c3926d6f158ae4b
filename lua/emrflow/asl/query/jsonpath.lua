-- emrflow.asl.query.jsonpath: the JSONPath query language of the interpreter (see
-- ARCHITECTURE.md, "Query-language interface"): paths (InputPath, ItemsPath, SecondsPath, ...),
-- payload templates (Parameters, ResultSelector, ItemSelector, Assign, Credentials) and
-- intrinsic functions. Reference paths are read with emrflow.asl.paths; other JSONPath with
-- emrflow.asl.jsonpath.

local jsonpath = require "emrflow.asl.jsonpath"
local payload = require "emrflow.asl.payload"
local intrinsics = require "emrflow.asl.intrinsics"
local common = require "emrflow.asl.common"
local paths = require "emrflow.asl.paths"

local M = {}

M.name = "JSONPath"

local fmt = string.format
local runtime, show = common.runtime, common.show
local parse_ref, ref_get, normalized = paths.parse_ref, paths.ref_get, paths.normalized
local split_root, root_value = paths.split_root, paths.root_value

-- Compiles a Path field (InputPath, OutputPath, ItemsPath, SecondsPath, ...) into
-- get(input, env) --> value; a definite path that matches nothing raises States.Runtime
-- through on_missing(text, segs, input).
local function compile_path(text, on_missing)
  if text == "$" then return function(input) return input end end
  local kind, name, rest = split_root(text)
  local segs = parse_ref(rest)
  if segs then
    return function(input, env)
      local root = root_value(kind, name, input, env)
      local v = root
      if #segs > 0 then v = ref_get(segs, root) end
      if v == nil then return on_missing(text, segs, input, env) end
      return v
    end
  end
  local compiled, msg = jsonpath.compile(text)
  if not compiled then error(fmt("invalid JSONPath %q: %s", text, tostring(msg)), 0) end
  return function(input, env)
    local v, err = jsonpath.get(compiled, input, env)
    if v == nil then return on_missing(text, nil, input, env, err) end
    return v
  end
end
M.compile_path = compile_path

local function missing_io_path(text, segs, _, _, err)
  if type(err) == "table" then error(err, 0) end
  if segs then
    runtime(fmt("Invalid path '%s' : No results for path: %s", text, normalized(segs)))
  end
  runtime(type(err) == "string" and err or fmt("Invalid path '%s' : No results for path", text))
end

local function field_missing(field)
  return function(text, _, input, _, err)
    if type(err) == "table" and err.Error ~= "States.Runtime" then error(err, 0) end
    runtime(fmt("The JSONPath '%s' specified for the field '%s' could not be found in the input '%s'",
      text, field, show(input)))
  end
end

M.compile_path = compile_path
M.missing_io_path = missing_io_path
M.field_missing = field_missing

--- Interface: compile(text, where) --> compiled | nil, message. A path ("$...", "$$...",
-- "$var...") or an intrinsic function call ("States.Format(...)").
function M.compile(text, where)
  if type(text) ~= "string" then return nil, "must be a JSONPath string" end
  if text:match("^States%.") then
    local fn, msg = intrinsics.compile(text)
    if not fn then return nil, msg end
    return { intrinsic = fn }
  end
  local ok, get = pcall(compile_path, text, field_missing(where and where.field or "?"))
  if not ok then return nil, get end
  return { get = get }
end

--- Interface: evaluate(compiled, env) --> value (raises an ASL error).
function M.evaluate(compiled, env)
  if compiled.intrinsic then return compiled.intrinsic(env) end
  return compiled.get(env.input, env)
end

--- Interface: compile_template(value, where) --> compiled | nil, message (payload templates).
function M.compile_template(value, where)
  return payload.compile(value, where and where.field or "Parameters")
end

--- Interface: evaluate_template(compiled, env) --> value.
function M.evaluate_template(compiled, env)
  return compiled(env)
end

--- Interface: JSONPath has no expression strings of its own in plain fields.
function M.is_expression()
  return false
end

M.jsonpath = jsonpath

return M
