-- Time stamps and the context object ($$) of an execution.

local json = require "emrflow.json"

local M = {}

local floor = math.floor
local object_of = json.object_of

-- Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local function days_in_month(y, m)
  if m == 2 then
    local leap = (y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0
    return leap and 29 or 28
  end
  return (m == 4 or m == 6 or m == 9 or m == 11) and 30 or 31
end

-- Parses an ISO-8601 extended offset date-time ("2016-03-14T01:59:00Z",
-- "2016-03-14T01:59:00.123+02:00"). Returns Unix seconds (float) or nil.
function M.parse_timestamp(s)
  if type(s) ~= "string" then return nil end
  local y, mo, d, h, mi, rest = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d)(.*)$")
  if not y then return nil end
  local sec, frac = 0, 0
  local ss, tail = rest:match("^:(%d%d)(.*)$")
  if ss then
    sec = tonumber(ss)
    rest = tail
    local f, tail2 = rest:match("^%.(%d+)(.*)$")
    if f then
      if #f > 9 then return nil end
      frac = tonumber("0." .. f)
      rest = tail2
    end
  end
  local offset
  if rest == "Z" then
    offset = 0
  else
    local sign, oh, om = rest:match("^([+-])(%d%d):(%d%d)$")
    if not sign then return nil end
    oh, om = tonumber(oh), tonumber(om)
    if oh > 18 or om > 59 then return nil end
    offset = (oh * 3600 + om * 60) * (sign == "-" and -1 or 1)
  end
  y, mo, d, h, mi = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi)
  if mo < 1 or mo > 12 or d < 1 or d > days_in_month(y, mo) or h > 23 or mi > 59 or sec > 59 then
    return nil
  end
  return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec + frac - offset
end

-- "2019-03-26T20:14:13.192Z" for Unix seconds t. The last answer is remembered: under the
-- virtual clock, and for the states of one instant, t repeats.
local last_t, last_text
function M.iso8601(t)
  if t == last_t then return last_text end
  local whole = floor(t)
  local ms = floor((t - whole) * 1000 + 0.5)
  if ms >= 1000 then whole, ms = whole + 1, ms - 1000 end
  local text = os.date("!%Y-%m-%dT%H:%M:%S", whole) .. string.format(".%03dZ", ms)
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
