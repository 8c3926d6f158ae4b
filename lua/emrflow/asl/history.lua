-- Execution history, shaped like Step Functions' GetExecutionHistory.
--
-- Events are expanded on demand to
--   { type = "PassStateEntered", id = 2, previousEventId = 1, timestamp = <unix seconds>,
--     stateEnteredEventDetails = { name = "A", input = <Lua value> } }
-- Payloads stay Lua values while recorded (the engine never mutates data it has passed on);
-- `materialize` turns them into the JSON strings GetExecutionHistory returns.
-- With `enabled = false` nothing is kept, but event ids still count, because AWS's error
-- causes quote them ("entered at the event id #4").
--
-- Storage (what one event costs): no table per event. Two parallel arrays hold, for event id
-- i, a descriptor and a payload. The descriptor is shared by every event of its kind: the
-- type, the details member and, for a state's Entered/Exited and a map iteration's events,
-- the state's name (the engine makes one per compiled state and event type; `add` keeps one
-- per type and member). The payload is the state's input or output, the iteration index, or
-- the details table of other events, shared with the data the execution produced (never
-- copied). So an event costs two array slots (32 bytes) plus what it refers to. What is
-- usually implied is kept only where it is not: previousEventId (when it is not id - 1),
-- assignedVariables, and the timestamp (once per change of the clock: a run of events at the
-- same instant, the norm under the virtual clock, costs one entry).
--
--   history.new{ enabled = true, now = fn() --> seconds, on_event = fn(event) | nil,
--                size_hint = events expected | nil (room made at once, not by doublings) }
--   history.descriptor(etype, details_key, name) --> desc (for add_event)
--   rec:add_event(desc, prev, payload [, assigned [, t]]) --> id   (t: the time, else now())
--   rec:add_state(etype, prev, details_key, name, payload [, assigned]) --> id
--   rec:add_iteration(etype, prev, details_key, name, index) --> id
--   rec:add(etype, prev, details_key, details) --> id
--   rec:event(id), rec:count(), rec:types(), rec:expanded(), rec:materialize()

local core = require "emrflow.core"
local json = require "emrflow.json"

local M = {}

local new_array = core.asl.array
-- { etype =, key =, name =, field = }, its fields also filed as C data (src/l_hdesc.h)
local new_descriptor = core.history.descriptor
local MAX_HINT = 1 << 16

local Recorder = {}
Recorder.__index = Recorder

-- How a descriptor's events keep their details: the payload is the state's input, its output,
-- a map iteration's index, or (false) the details table itself.
local FIELD_OF = setmetatable({}, { __index = function(t, key)
  local f = false
  if key == "stateEnteredEventDetails" then f = "input"
  elseif key == "stateExitedEventDetails" then f = "output"
  elseif key:find("^mapIteration") then f = "index" end
  t[key] = f
  return f
end })

--- The descriptor of events of type etype whose details member is details_key (or nil), for
-- the state (or map state) `name` (nil for events whose details are a table of their own).
function M.descriptor(etype, details_key, name)
  local field = false
  if name ~= nil and details_key ~= nil then field = FIELD_OF[details_key] or "output" end
  return new_descriptor(etype, details_key, name, field)
end
local descriptor = M.descriptor

function M.new(opts)
  opts = opts or {}
  local hint = opts.enabled ~= false and math.min(math.tointeger(opts.size_hint) or 0, MAX_HINT) or 0
  if hint < 0 then hint = 0 end
  return setmetatable({
    enabled = opts.enabled ~= false,
    -- AWS fails a Standard execution whose history would go over 25,000 events
    -- (asl-semantics.md §12); limit = nil means no limit (Express, or by option).
    limit = opts.limit,
    now = opts.now or os.time,
    on_event = opts.on_event,
    n = 0,
    descs = new_array(hint),
    payloads = new_array(hint),
    prevs = {},    -- id -> previousEventId, where it is not id - 1
    assigned = {}, -- id -> assignedVariables
    t_ids = {},    -- ids at which the clock changed ...
    t_vals = {},   -- ... and its value from there on
    t_last = nil,
    cache = {},    -- descriptors of add / add_state / add_iteration calls
  }, Recorder)
end

-- The timestamp of event id (binary search over the clock changes).
local function time_of(self, id)
  local ids = self.t_ids
  local lo, hi = 1, #ids
  if hi == 0 then return nil end
  while lo < hi do
    local mid = (lo + hi + 1) // 2
    if ids[mid] <= id then lo = mid else hi = mid - 1 end
  end
  return self.t_vals[lo]
end

local function details_of(desc, payload, assigned)
  local field = desc.field
  if field == "index" then return { name = desc.name, index = payload } end
  if field then return { name = desc.name, [field] = payload, assignedVariables = assigned } end
  if payload == false then return nil end
  return payload
end

local function expand(self, id, t)
  local desc = self.descs[id]
  local e = { type = desc.etype, id = id, previousEventId = self.prevs[id] or (id - 1),
    timestamp = t or time_of(self, id) }
  if desc.key then e[desc.key] = details_of(desc, self.payloads[id], self.assigned[id]) end
  return e
end

--- Adds an event of descriptor desc; returns its id. t is the event's time when the caller
-- has it (for example both events of a state that did not wait), else now() is asked.
function Recorder:add_event(desc, prev, payload, assigned, t)
  local id = self.n + 1
  local limit = self.limit
  if limit and id >= limit then
    -- The last place is kept for the event that ends the execution; raised once.
    self.limit = nil
    error({ Error = "States.Runtime", history_limit = true,
      Cause = "The execution history would exceed the limit of " .. limit .. " events." }, 0)
  end
  self.n = id
  if self.enabled then
    self.descs[id] = desc
    self.payloads[id] = payload
    if prev ~= id - 1 then self.prevs[id] = prev end
    if assigned ~= nil then self.assigned[id] = assigned end
    if t == nil then t = self.now() end
    if t ~= self.t_last then
      local k = #self.t_ids + 1
      self.t_ids[k] = id
      self.t_vals[k] = t
      self.t_last = t
    end
    -- store hook: a sink takes each event as its parts, without a table per event
    if self.sink then self.sink(desc, id, prev, payload, assigned, t) end
    if self.on_event then self.on_event(expand(self, id)) end
  elseif self.on_event then
    local e = { type = desc.etype, id = id, previousEventId = prev, timestamp = t or self.now() }
    if desc.key then e[desc.key] = details_of(desc, payload, assigned) end
    self.on_event(e)
  end
  return id
end
local add_event = Recorder.add_event

local function cached(self, etype, key, name)
  local by_type = self.cache[etype]
  if not by_type then
    by_type = {}
    self.cache[etype] = by_type
  end
  local by_key = by_type[key or false]
  if not by_key then
    by_key = {}
    by_type[key or false] = by_key
  end
  local d = by_key[name or false]
  if not d then
    d = descriptor(etype, key, name)
    by_key[name or false] = d
  end
  return d
end

-- Adds an event and returns its id. `details_key` names the *EventDetails member (or nil).
function Recorder:add(etype, prev, details_key, details)
  if details == nil then details = false end
  return add_event(self, cached(self, etype, details_key, nil), prev or 0, details)
end

-- A map iteration event: details { name = name, index = index }, stored without a table.
function Recorder:add_iteration(etype, prev, details_key, name, index)
  return add_event(self, cached(self, etype, details_key, name), prev, index)
end

-- A ...StateEntered / ...StateExited event: details { name, input | output, assignedVariables }.
function Recorder:add_state(etype, prev, details_key, name, payload, assigned)
  return add_event(self, cached(self, etype, details_key, name), prev, payload, assigned)
end

--- The event with that id, as a table with Lua values (payloads not encoded).
function Recorder:event(id)
  if self.descs[id] == nil then return nil end
  return expand(self, id)
end

function Recorder:count()
  return self.n
end

-- Members whose values are JSON documents in GetExecutionHistory (strings there), and the
-- member saying whether each was truncated, where the API model has one: every event with an
-- input or output has inputDetails / outputDetails, TaskScheduled's parameters has none.
local JSON_MEMBERS = { input = "inputDetails", output = "outputDetails", parameters = false }

local function copy_details(d)
  local out = {}
  for k, v in pairs(d) do
    local flag = JSON_MEMBERS[k]
    if flag ~= nil then
      out[k] = json.encode(v)
      if flag then out[flag] = { truncated = false } end
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

-- Calls fn(id, timestamp) for every kept event in order (walking the clock changes once).
local function each(self, fn)
  local ids, vals = self.t_ids, self.t_vals
  local k, t = 0, nil
  for id = 1, #self.descs do
    while ids[k + 1] and ids[k + 1] <= id do
      k = k + 1
      t = vals[k]
    end
    fn(id, t)
  end
end

-- The events as GetExecutionHistory returns them: payload members as JSON text.
function Recorder:materialize()
  local list = {}
  each(self, function(i, t)
    local ev = expand(self, i, t)
    local e = {}
    for k, v in pairs(ev) do
      if type(v) == "table" and k:sub(-12) == "EventDetails" then
        e[k] = copy_details(v)
      else
        e[k] = v
      end
    end
    list[i] = e
  end)
  return list
end

-- The event types in order (what the conformance corpus records).
function Recorder:types()
  local t = {}
  local descs = self.descs
  for i = 1, #descs do t[i] = descs[i].etype end
  return t
end

--- The events as tables with Lua values (payloads not encoded).
function Recorder:expanded()
  local list = {}
  each(self, function(i, t) list[i] = expand(self, i, t) end)
  return list
end

M.Recorder = Recorder

return M
