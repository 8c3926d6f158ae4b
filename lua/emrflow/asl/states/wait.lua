-- emrflow.asl.states.wait: the Wait state: its fields, its checks and its execution.

local scheduler = require "emrflow.scheduler"
local context = require "emrflow.asl.context"
local common = require "emrflow.asl.common"
local qjsonpath = require "emrflow.asl.query.jsonpath"
local rt = require "emrflow.asl.runtime"
local pipeline = require "emrflow.asl.pipeline"

local MAX_WAIT = 2147483647        -- about 24855 days: AWS's longest Wait
local fmt = string.format
local runtime = common.runtime
local show = common.show
local integer_value = common.integer_value
local compile_path = qjsonpath.compile_path
local missing_io_path = qjsonpath.missing_io_path
local enter = rt.enter
local exit_state = rt.exit_state
local io_fields = pipeline.io_fields
local effective_input = pipeline.effective_input
local apply_output_path = pipeline.apply_output_path
local apply_assign = pipeline.apply_assign
local is_jsonata_expr = common.is_jsonata_expr
local join = common.join
local words = common.words
local raise = common.raise

local M = {}


function M.compile(st, def)
  io_fields(st, def)
  local seconds = def.Seconds
  local timestamp = def.Timestamp ~= nil and context.parse_timestamp(def.Timestamp) or nil
  -- JSONata: Seconds and Timestamp may be expressions
  local seconds_fn = st.jsonata and is_jsonata_expr(seconds) and pipeline.field(st, def, "Seconds")
  local ts_fn = st.jsonata and is_jsonata_expr(def.Timestamp) and pipeline.field(st, def, "Timestamp")
  if seconds_fn then seconds = nil end
  local seconds_path = def.SecondsPath and compile_path(def.SecondsPath, missing_io_path)
  local ts_path = def.TimestampPath and compile_path(def.TimestampPath, missing_io_path)
  st.exec = function(frame, input)
    local env = enter(frame, st, input)
    local eff = effective_input(st, input, env)
    local now = frame.x.s:now()
    local delay
    if seconds_fn then
      local v = seconds_fn(env)
      local n = integer_value(v)
      if not n or n < 0 then
        raise("States.QueryEvaluationError", fmt("The Seconds field of state '%s' must evaluate to a "
          .. "non-negative integer, got %s", st.name, show(v)))
      end
      delay = n
    elseif ts_fn then
      local v = ts_fn(env)
      local t = context.parse_timestamp(v)
      if not t then
        raise("States.QueryEvaluationError", "The Timestamp field cannot be parsed as an ISO-8601 "
          .. "extended offset date-time format string: " .. show(v))
      end
      delay = t - now
    elseif seconds ~= nil then
      delay = seconds
    elseif timestamp then
      delay = timestamp - now
    elseif seconds_path then
      local v = seconds_path(eff, env)
      local n = integer_value(v)
      if not n then
        runtime(fmt("The SecondsPath parameter cannot be parsed as a long value: %s == %s",
          def.SecondsPath, show(v)))
      end
      if n < 0 then
        runtime(fmt("The SecondsPath parameter references a negative value: %s == %s", def.SecondsPath,
          show(v)))
      end
      delay = n
    else
      local v = ts_path(eff, env)
      local t = context.parse_timestamp(v)
      if not t then
        runtime(fmt("The TimestampPath parameter does not reference a valid ISO-8601 extended offset "
          .. "date-time format string: %s == %s", def.TimestampPath, show(v)))
      end
      delay = t - now
    end
    if delay > MAX_WAIT then runtime("Wait state delay is too long.") end
    -- store hook: a resumed execution keeps the recorded deadline (none once it had passed)
    if frame.x.replay then delay = frame.x.replay:wait(frame, delay, not (timestamp or ts_fn or ts_path)) end
    if delay > 0 then scheduler.sleep(delay) end
    local out = apply_output_path(st, eff, env)
    local assigned
    if st.assign then
      env.input = eff
      assigned = st.assign(env)
    end
    apply_assign(frame, assigned)
    exit_state(frame, st, out, assigned)
    return st.next, out
  end
end




-- The fields of a Wait state in each query language (besides Type, Comment, QueryLanguage).
M.fields = {
  JSONPath = words [[Next End Seconds Timestamp SecondsPath TimestampPath InputPath OutputPath Assign]],
  JSONata = words [[Next End Seconds Timestamp Output Assign]],
}

-- Load-time checks of the fields (validate.lua calls it with its checker `c`).
function M.check(c, def, path, _, lang)
  local n = 0
  for _, f in ipairs { "Seconds", "Timestamp", "SecondsPath", "TimestampPath" } do
    if def[f] ~= nil then n = n + 1 end
  end
  if n ~= 1 then
    c:add(path, "a Wait state needs exactly one of Seconds, Timestamp, SecondsPath or TimestampPath")
  end
  local jsonata = lang == "JSONata"
  if def.Seconds ~= nil and not (jsonata and is_jsonata_expr(def.Seconds)) then
    c:positive_int(def.Seconds, join(path, "Seconds"), true)
  end
  if def.Timestamp ~= nil and not (jsonata and is_jsonata_expr(def.Timestamp)) then
    if not context.parse_timestamp(def.Timestamp) then
      c:add(join(path, "Timestamp"),
        "must be an ISO-8601 extended offset date-time (2016-03-14T01:59:00Z)")
    end
  end
  if def.SecondsPath ~= nil then c:path(def.SecondsPath, join(path, "SecondsPath")) end
  if def.TimestampPath ~= nil then c:path(def.TimestampPath, join(path, "TimestampPath")) end
end

return M
