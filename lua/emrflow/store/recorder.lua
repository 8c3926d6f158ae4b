--- emrflow.store.recorder: records a running execution in the store, as an observer of its
-- history events (machine:start's on_event), so that the engine needs to know nothing of
-- the store.
--
-- Grouping: events of states without external effects are written together, in one
-- transaction, when one of them announces an effect, and never later: a TaskStarted event
-- (emitted right before the Task's request is sent) commits every earlier event together
-- with the effect's record (the resource and parameters of the request); a Wait state's
-- WaitStateEntered commits before the timer is set; the execution's last event commits
-- together with its final status. Between those points the execution only computes, so the
-- events that a crash could lose there are the ones a resume computes again. A group is
-- also written once it holds GROUP_LIMIT events, to bound the memory it takes.

local json = require "emrflow.json"
local events = require "emrflow.store.events"

local M = {}

M.GROUP_LIMIT = 1000

-- Events after which the group is written: an external effect starts right after them.
local BEFORE_EFFECT = {
  TaskStarted = "task", WaitStateEntered = "timer", MapRunStarted = "map_run",
  ActivityScheduled = "activity", LambdaFunctionScheduled = "lambda",
}
-- Events that report what an effect produced: written at once.
local EFFECT_RESULT = { TaskSubmitted = true }

local FINAL = {
  ExecutionSucceeded = "SUCCEEDED", ExecutionFailed = "FAILED",
  ExecutionAborted = "ABORTED", ExecutionTimedOut = "TIMED_OUT",
}

local Recorder = {}
Recorder.__index = Recorder

--- A recorder writing the events of the stored execution `rec` to the store `s`.
function M.new(s, rec)
  return setmetatable({ s = s, rec = rec, group = events.group(), scheduled = {}, error = nil,
    enabled = true }, Recorder)
end

local function details_of(ev)
  for k, v in pairs(ev) do
    if type(k) == "string" and k:sub(-12) == "EventDetails" then return v end
  end
  return nil
end

-- Writes the group (and `with`'s extra writes) in one transaction. A failure is kept in
-- self.error and raised as an ASL error, so the state that needed the write fails.
function Recorder:write(with)
  local group = self.group
  self.group = events.group()
  local ok, err = self.s:append_events(self.rec, group, with)
  if not ok then
    self.error = self.error or err
    self.enabled = false
    error({ Error = "States.Runtime", Cause = "cannot record the execution: " .. tostring(err.message) }, 0)
  end
end

-- The effect announced by ev: key, kind and what resume needs to find it again.
function Recorder:effect_of(ev, kind)
  local d = details_of(ev)
  if kind == "task" then
    local scheduled = self.scheduled[ev.previousEventId]
    return { key = "task:" .. ev.id, kind = kind, data = json.object_of(
      "resource", d and d.resource, "resourceType", d and d.resourceType,
      "scheduledEventId", ev.previousEventId,
      "parameters", scheduled and scheduled.parameters,
      "executionUid", self.rec.uid) }
  end
  return { key = kind .. ":" .. ev.id, kind = kind,
    data = json.object_of("eventId", ev.id, "timestamp", ev.timestamp,
      "name", d and d.name) }
end

--- The on_event observer: adds ev to the group and writes when it must.
function Recorder:add(ev)
  if not self.enabled then return end
  local group = self.group
  group:add(ev)
  local etype = ev.type
  if etype == "TaskScheduled" then
    self.scheduled[ev.id] = details_of(ev) or {}
    return
  end
  local final = FINAL[etype]
  if final then
    -- the execution has ended: a failure to record it is kept (self.error), not raised
    local d = details_of(ev) or {}
    pcall(self.write, self, { status = { status = final, stop_date = ev.timestamp,
      output = d.output, error = d.error, cause = d.cause } })
    self.enabled = false
    return
  end
  local kind = BEFORE_EFFECT[etype]
  if kind then
    local effect = self:effect_of(ev, kind)
    self.scheduled[ev.previousEventId] = nil
    self:write { effect = effect }
  elseif EFFECT_RESULT[etype] or group.n >= M.GROUP_LIMIT then
    self:write()
  end
end

--- Writes what is pending (events of computation since the last write).
function Recorder:flush()
  if self.enabled and self.group.n > 0 then
    local ok, err = pcall(self.write, self)
    if not ok then return nil, self.error or err end
  end
  return true
end

-- The definition as ASL JSON text: encoded directly (fast, even for ten thousand states),
-- or, when it holds Lua-function resources, exported with placeholders for them (the
-- functions are loaded again from the definition's file on resume). Kept per machine: a
-- machine's definition never changes once loaded.
local definition_texts = setmetatable({}, { __mode = "k" })

local function definition_text(machine)
  local text = definition_texts[machine]
  if text then return text end
  local ok, encoded = pcall(json.encode, machine.definition)
  if ok then
    text = encoded
  else
    local eok, exported = pcall(machine.to_json, machine, { compact = true, placeholder_arns = true })
    text = eok and exported or "{}"
  end
  definition_texts[machine] = text
  return text
end

local NOT_FOR_ENGINE = { store = true, store_notice = true, store_options = true, source_path = true }

--- Starts an execution of machine recorded in store s (what machine:start does with
-- { store = s }). opts are machine:start's, plus source_path (a .lua definition's file),
-- store_options (a table recorded for resume) and store_notice (a stream told where the
-- execution is recorded). Raises ExecutionAlreadyExists (an emrflow error) when the name
-- is taken, or the store's error when it cannot record.
function M.start(s, machine, input, opts)
  opts = opts or {}
  local uid = s.new_uid()
  local start_opts = {}
  for k, v in pairs(opts) do
    if not NOT_FOR_ENGINE[k] then start_opts[k] = v end
  end
  -- AWS names an execution without a name by a UUID; the unique id serves
  start_opts.name = opts.name or uid
  start_opts.execution_id = uid     -- the seed of the Tasks' ClientTokens
  local recorder
  local user_on_event = opts.on_event
  start_opts.on_event = function(ev)
    recorder:add(ev)
    if user_on_event then user_on_event(ev) end
  end
  -- machine:start only schedules the execution: nothing has run (or been recorded) yet
  local x = machine:start(input, start_opts)
  local rec, err = s:create_execution {
    arn = x.arn, uid = uid, name = x.name, machine_name = machine.name, machine_arn = machine.arn,
    definition = definition_text(machine), source_path = opts.source_path,
    input = x.input, start_date = x.start_time, region = x.region,
    endpoint = opts.endpoint_url, options = opts.store_options,
  }
  if not rec then
    recorder = { add = function() end }
    x:stop("States.Runtime", "not started: " .. tostring(err.message))
    error(err, 0)
  end
  recorder = M.new(s, rec)
  x.store, x.store_record, x.store_recorder = s, rec, recorder
  if opts.store_notice then
    opts.store_notice:write(string.format("emrflow: recording execution %s in %s\n", x.name, s.path))
  end
  return x
end

M.Recorder = Recorder

return M
