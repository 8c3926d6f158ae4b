-- Time stamps and the context object ($$) of an execution.

local json = require "emrflow.json"
local time = require "emrflow.time"

local M = {}

local floor = math.floor
local object_of = json.object_of

-- Parses an ISO-8601 extended offset date-time ("2016-03-14T01:59:00Z",
-- "2016-03-14T01:59:00.123+02:00") as Step Functions does (emrflow.time). Returns Unix
-- seconds (float) or nil.
function M.parse_timestamp(s)
  if type(s) ~= "string" then return nil end
  local ms, sub_ms = time.parse_iso(s)
  if not ms then return nil end
  return ms / 1000 + sub_ms / 1e9
end

-- "2019-03-26T20:14:13.192Z" for Unix seconds t. The last answer is remembered: under the
-- virtual clock, and for the states of one instant, t repeats.
local last_t, last_text
function M.iso8601(t)
  if t == last_t then return last_text end
  local text = time.format_iso(floor(t * 1000 + 0.5))
  last_t, last_text = t, text
  return text
end

-- The immutable parts of $$ for one execution.
function M.execution(x)
  local e = json.object {}
  json.set(e, "Id", x.arn)
  json.set(e, "Input", x.input)
  json.set(e, "StartTime", M.iso8601(x.start_time))
  json.set(e, "Name", x.name)
  json.set(e, "RoleArn", x.role_arn)
  if not x.machine.express then json.set(e, "RedriveCount", 0) end
  local sm = json.object {}
  json.set(sm, "Id", x.machine.arn)
  json.set(sm, "Name", x.machine.name)
  return e, sm
end

-- The whole context object as seen by one state. Its parts are shared, never modified:
-- Execution and StateMachine with the execution, the rest with whoever passes them in.
function M.object(x, state_name, entered_time, retry_count, map_item)
  local st = object_of("Name", state_name, "EnteredTime", M.iso8601(entered_time),
    "RetryCount", (retry_count and retry_count > 0) and retry_count or nil)
  return object_of("Execution", x.ctx_execution, "StateMachine", x.ctx_machine, "State", st,
    "Map", map_item)
end

-- The context object of an ItemSelector for item `index` (0-based) holding `value`:
-- `base` (from M.object) with Map.Item = { Index, Value }. Shares base's parts.
function M.with_map_item(base, index, value)
  return object_of("Execution", base.Execution, "StateMachine", base.StateMachine, "State", base.State,
    "Map", object_of("Item", object_of("Index", index, "Value", value)))
end

return M
