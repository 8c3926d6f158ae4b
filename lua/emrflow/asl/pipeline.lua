-- emrflow.asl.pipeline: the one input/output pipeline of the states.
--
--   InputPath -> Parameters                         (effective_input, then st.parameters)
--   ResultSelector -> Assign -> ResultPath -> OutputPath, size check, Assign applied (finish)
--
-- io_fields(st, def) compiles a state's I/O fields into st; the functions below apply them.

local json = require "emrflow.json"
local payload = require "emrflow.asl.payload"
local common = require "emrflow.asl.common"
local paths = require "emrflow.asl.paths"
local qjsonpath = require "emrflow.asl.query.jsonpath"
local rt = require "emrflow.asl.runtime"

local NULL = json.null
local PAYLOAD_LIMIT = common.PAYLOAD_LIMIT
local json_size = json.size
local new_object = json.object
local fmt = string.format
local raise = common.raise
local size_check = common.size_check
local parse_ref = paths.parse_ref
local split_root = paths.split_root
local compile_path = qjsonpath.compile_path
local missing_io_path = qjsonpath.missing_io_path
local ref_set = paths.ref_set
local exit_state = rt.exit_state

local M = {}

local function compile_template(tpl, where)
  local fn, msg = payload.compile(tpl, where)
  if not fn then error(msg, 0) end
  return fn
end

---------------------------------------------------------------------------
-- JSONata states: Arguments -> (work) -> Assign and Output, both seeing $states.input,
-- $states.result (or $states.errorOutput in a Catch) and the variables as they were
---------------------------------------------------------------------------

-- A JSONata field as fn(env) --> value: an expression or a JSON value holding expressions,
-- compiled by the state's query language; a plain value stays itself. `where` names the field.
local function jsonata_field(st, value, where)
  local q = st.q
  if not q then
    return function()
      raise("States.Runtime", "JSONata is not supported yet (state '" .. st.name .. "' uses QueryLanguage "
        .. "JSONata and emrflow.asl.query.jsonata is not available)")
    end
  end
  local compiled, msg = q.compile_template(value, { field = where, state = st.name })
  if compiled == nil then error(fmt("invalid %s: %s", where, tostring(msg)), 0) end
  local evaluate = q.evaluate_template
  return function(env) return evaluate(compiled, env) end
end

--- fn(env) --> value for field `name` of a state's definition, in the state's language, or nil
-- when the field is absent. JSONPath: a literal value.
function M.field(st, def, name)
  local v = def[name]
  if v == nil then return nil end
  if st.jsonata then return jsonata_field(st, v, name) end
  return function() return v end
end

-- Assign as fn(env) --> { name -> value }.
local function assign_field(st, value)
  if st.jsonata then return jsonata_field(st, value, "Assign") end
  return compile_template(value, "Assign")
end
M.assign_field = assign_field

-- The I/O fields of a JSONata state.
local function jsonata_io(st, def)
  if def.Arguments ~= nil then st.parameters = jsonata_field(st, def.Arguments, "Arguments") end
  if def.Output ~= nil then st.output_t = jsonata_field(st, def.Output, "Output") end
  if def.Assign ~= nil then st.assign = jsonata_field(st, def.Assign, "Assign") end
end

--- A JSONata state's output: Output evaluated, else `default` (the result, or the input for
-- states without one). env.input is the state input, env.result the result if any.
function M.output(st, env, default)
  if st.output_t then return st.output_t(env) end
  return default
end

-- IO fields common to most states.
local function io_fields(st, def)
  if st.jsonata then return jsonata_io(st, def) end
  if def.InputPath == NULL then
    st.input_null = true
  elseif def.InputPath ~= nil and def.InputPath ~= "$" then
    st.input_path = compile_path(def.InputPath, missing_io_path)
  end
  if def.OutputPath == NULL then
    st.output_null = true
  elseif def.OutputPath ~= nil and def.OutputPath ~= "$" then
    st.output_path = compile_path(def.OutputPath, missing_io_path)
  end
  if def.ResultPath == NULL then
    st.result_discard = true
  elseif def.ResultPath ~= nil and def.ResultPath ~= "$" then
    local kind, _, rest = split_root(def.ResultPath)
    st.result_segs = kind == "input" and parse_ref(rest) or nil
    if not st.result_segs then
      error("ResultPath must be a reference path: " .. tostring(def.ResultPath), 0)
    end
    st.result_text = def.ResultPath
  end
  if def.Parameters ~= nil then
    local fn, shape, R, sizes, sig = payload.compile_shape(def.Parameters, "Parameters")
    if not fn then error(shape, 0) end
    st.parameters = fn
    -- for the common Pass (one field: a state's fields stay within one table size)
    if shape then st.parameters_shape = { shape, R, sizes or false, sig } end
  end
  if def.ResultSelector ~= nil then
    st.result_selector = compile_template(def.ResultSelector, "ResultSelector")
  end
  if def.Assign ~= nil then st.assign = compile_template(def.Assign, "Assign") end
end

local function effective_input(st, input, env)
  if st.input_null then return new_object {} end
  if st.input_path then return st.input_path(input, env) end
  return input
end

local function apply_result_path(st, raw, result)
  if st.result_discard then return raw end
  if st.result_segs then return ref_set(st.result_segs, raw, result, st.result_text) end
  return result
end

local function apply_output_path(st, out, env)
  if st.output_t then return st.output_t(env) end
  if st.output_null then return new_object {} end
  if st.output_path then return st.output_path(out, env) end
  return out
end
-- Each assigned value, and all values of one Assign together, are at most 256 KiB.
local function apply_assign(frame, values)
  if values == nil then return end
  local total = 0
  for _, v in pairs(values) do
    local n = json_size(v, PAYLOAD_LIMIT)
    if n then
      total = total + n
      if total > PAYLOAD_LIMIT then
        raise("States.DataLimitExceeded", fmt("The variables assigned by the state '%s' exceed the maximum "
          .. "number of bytes service limit.", tostring(frame.state_name)))
      end
    end
  end
  local vars = frame.vars
  for k, v in pairs(values) do vars[k] = v end
end

-- Result processing shared by Pass, Task, Parallel and Map:
-- ResultSelector -> Assign -> ResultPath -> OutputPath, size check, Assign applied, Exited.
local function finish(frame, st, raw, env, result)
  if st.jsonata then
    env.input, env.result = raw, result
    local assigned = st.assign and st.assign(env) or nil
    local out = result
    if st.output_t then out = st.output_t(env) end
    env.result = nil
    size_check(st.name, out)
    apply_assign(frame, assigned)
    exit_state(frame, st, out, assigned)
    return out
  end
  if st.result_selector then
    env.input = result
    result = st.result_selector(env)
  end
  local assigned
  if st.assign then
    env.input = result
    assigned = st.assign(env)
  end
  local out = apply_result_path(st, raw, result)
  out = apply_output_path(st, out, env)
  size_check(st.name, out)
  apply_assign(frame, assigned)
  exit_state(frame, st, out, assigned)
  return out
end


M.compile_template = compile_template
M.io_fields = io_fields
M.effective_input = effective_input
M.apply_result_path = apply_result_path
M.apply_output_path = apply_output_path
M.apply_assign = apply_assign
M.finish = finish

return M
