-- Execution history, shaped like Step Functions' GetExecutionHistory.
--
-- Events are recorded as compact tables in one array and expanded on demand to
--   { type = "PassStateEntered", id = 2, previousEventId = 1, timestamp = <unix seconds>,
--     stateEnteredEventDetails = { name = "A", input = <Lua value> } }
-- Payloads stay Lua values while recorded (the engine never mutates data it has passed on);
-- `materialize` turns them into the JSON strings GetExecutionHistory returns.
-- With `enabled = false` nothing is kept, but event ids still count, because AWS's error
-- causes quote them ("entered at the event id #4").

local json = require "emrflow.json"

local M = {}

local Recorder = {}
Recorder.__index = Recorder

-- new{ enabled = true, now = function() return seconds end, on_event = fn(event) | nil }
function M.new(opts)
  opts = opts or {}
  return setmetatable({
    enabled = opts.enabled ~= false,
    now = opts.now or os.time,
    on_event = opts.on_event,
    n = 0,
    events = {},
  }, Recorder)
end

-- Events are stored compactly, one table each:
--   { type, previousEventId, timestamp, details_key, details }              (add)
--   { type, previousEventId, timestamp, details_key, name, payload, vars }  (add_state)
-- and expanded to GetExecutionHistory's shape by `event(i)` / `materialize`.

local function expand(self, id, ev)
  local e = { type = ev[1], id = id, previousEventId = ev[2], timestamp = ev[3] }
  local key = ev[4]
  if key then
    local d = ev[5]
    if type(d) == "string" then
      local payload_name = key == "stateEnteredEventDetails" and "input" or "output"
      d = { name = ev[5], [payload_name] = ev[6], assignedVariables = ev[7] }
    end
    e[key] = d
  end
  local _ = self
  return e
end

-- Adds an event and returns its id. `details_key` names the *EventDetails member (or nil).
function Recorder:add(etype, prev, details_key, details)
  local id = self.n + 1
  self.n = id
  if self.enabled or self.on_event then
    local ev = { etype, prev or 0, self.now(), details_key, details }
    if self.enabled then self.events[id] = ev end
    if self.on_event then self.on_event(expand(self, id, ev)) end
  end
  return id
end

-- A ...StateEntered / ...StateExited event: details { name, input | output, assignedVariables }.
function Recorder:add_state(etype, prev, details_key, name, payload, assigned)
  local id = self.n + 1
  self.n = id
  if self.enabled or self.on_event then
    local ev = { etype, prev, self.now(), details_key, name, payload, assigned }
    if self.enabled then self.events[id] = ev end
    if self.on_event then self.on_event(expand(self, id, ev)) end
  end
  return id
end

--- The event with that id, as a table with Lua values (payloads not encoded).
function Recorder:event(id)
  local ev = self.events[id]
  return ev and expand(self, id, ev)
end

function Recorder:count()
  return self.n
end

-- Members whose values are JSON documents in GetExecutionHistory (strings there).
local JSON_MEMBERS = { input = true, output = true, parameters = true }

local function copy_details(d)
  local out = {}
  for k, v in pairs(d) do
    if JSON_MEMBERS[k] and type(v) ~= "string" then
      out[k] = json.encode(v)
      out[k .. "Details"] = { truncated = false }
    elseif k == "assignedVariables" then
      local vars = {}
      for name, value in pairs(v) do vars[name] = json.encode(value) end
      out[k] = vars
      out.assignedVariablesDetails = { truncated = false }
    else
      out[k] = v
    end
  end
  return out
end

-- The events as GetExecutionHistory returns them: payload members as JSON text.
function Recorder:materialize()
  local list = {}
  for i = 1, #self.events do
    local ev = expand(self, i, self.events[i])
    local e = {}
    for k, v in pairs(ev) do
      if type(v) == "table" and k:sub(-12) == "EventDetails" then
        e[k] = copy_details(v)
      else
        e[k] = v
      end
    end
    list[i] = e
  end
  return list
end

-- The event types in order (what the conformance corpus records).
function Recorder:types()
  local t = {}
  for i, ev in ipairs(self.events) do t[i] = ev[1] end
  return t
end

--- The events as tables with Lua values (payloads not encoded).
function Recorder:expanded()
  local list = {}
  for i = 1, #self.events do list[i] = expand(self, i, self.events[i]) end
  return list
end

return M
