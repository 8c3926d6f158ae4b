-- emrflow.asl.states.fail: the Fail state: its fields, its checks and its execution.

local intrinsics = require "emrflow.asl.intrinsics"
local common = require "emrflow.asl.common"
local qjsonpath = require "emrflow.asl.query.jsonpath"
local rt = require "emrflow.asl.runtime"
local pipeline = require "emrflow.asl.pipeline"

local fmt = string.format
local show = common.show
local compile_path = qjsonpath.compile_path
local field_missing = qjsonpath.field_missing
local enter = rt.enter
local join = common.join
local words = common.words
local is_jsonata_expr = common.is_jsonata_expr

local M = {}

local function string_or_path(def, field, path_field)
  local literal = def[field]
  local path = def[path_field]
  if path == nil then return nil, literal end
  if type(path) == "string" and path:match("^States%.") then
    local fn, msg = intrinsics.compile(path)
    if not fn then error(fmt("invalid intrinsic in %s: %s", path_field, tostring(msg)), 0) end
    return fn
  end
  local get = compile_path(path, field_missing(path_field))
  return function(env) return get(env.input, env) end
end

function M.compile(st, def)
  local error_fn, error_lit = string_or_path(def, "Error", "ErrorPath")
  local cause_fn, cause_lit = string_or_path(def, "Cause", "CausePath")
  if st.jsonata then -- Error and Cause may be expressions
    if is_jsonata_expr(error_lit) then error_fn, error_lit = pipeline.field(st, def, "Error"), nil end
    if is_jsonata_expr(cause_lit) then cause_fn, cause_lit = pipeline.field(st, def, "Cause"), nil end
  end
  st.exec = function(frame, input)
    local env = enter(frame, st, input)
    local e, c = error_lit, cause_lit
    if error_fn then e = error_fn(env) end
    if cause_fn then c = cause_fn(env) end
    if e ~= nil and type(e) ~= "string" then e = show(e) end
    if c ~= nil and type(c) ~= "string" then c = show(c) end
    error({ Error = e, Cause = c, located = true }, 0)
  end
end


M.string_or_path = string_or_path


-- The fields of a Fail state in each query language (besides Type, Comment, QueryLanguage).
M.fields = {
  JSONPath = words [[Error ErrorPath Cause CausePath]],
  JSONata = words [[Error Cause]],
}

-- Load-time checks of the fields (validate.lua calls it with its checker `c`).
function M.check(c, def, path)
  c:exclusive(def, path, "Error", "ErrorPath")
  c:exclusive(def, path, "Cause", "CausePath")
  for _, f in ipairs { "Error", "Cause" } do
    if def[f] ~= nil and type(def[f]) ~= "string" then c:add(join(path, f), "must be a string") end
    if def[f .. "Path"] ~= nil then
      c:path(def[f .. "Path"], join(path, f .. "Path"), { intrinsic = true })
    end
  end
end

return M
