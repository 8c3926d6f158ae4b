--- emrflow.store.replay: runs a recorded execution again up to where its record ends.
--
-- Resume (and redrive) start the machine again from the beginning with the same unique id,
-- name, ARN, start time and input. The states compute again what they computed before (they
-- are deterministic given their inputs and the Tasks' results); what reached the outside
-- world is not done again:
--   * a Task attempt whose end (TaskSucceeded / TaskFailed / TaskTimedOut) was recorded is not
--     invoked: its recorded result (or error) is taken (the `task` hook);
--   * a Task attempt whose start was recorded but not its end is invoked again with the same
--     attempt number, hence the same ClientToken: the service gives back the job it started;
--   * a Wait keeps its recorded deadline, and is not waited again once it had ended (`wait`);
--   * events already recorded are not recorded again: `translate` matches each event the run
--     emits with the recorded one at the same place, and gives the new ones the ids that
--     follow the recorded history.
--
-- "The same place" is the thread of control (frame: "" the execution, "/b1" a Parallel's
-- second branch, "/b1/i7" the eighth iteration of a Map inside it) and the position of the
-- event in that frame's sequence. Frames are worked out from the previousEventId chain, by
-- the same rules for the recorded events and for the ones the run emits, so that concurrent
-- branches and iterations may interleave differently from one run to the next.
--
-- Redrive: at each ExecutionRedriven event the record of every frame is cut before the state
-- it had not finished, so that state runs again (and in a Map or Parallel only the failed
-- iterations or branches: the others' records are complete).

local json = require "emrflow.json"

local M = {}

-- Events that end a Map or Parallel in the frame that started it (their previous event may
-- be the last one of a branch or iteration).
local CLOSING = {
  ParallelStateSucceeded = 1, ParallelStateFailed = 1, ParallelStateAborted = 1,
  MapStateSucceeded = 1, MapStateFailed = 1, MapStateAborted = 1,
  MapRunSucceeded = 0, MapRunFailed = 0, MapRunAborted = 0,
}
local OPENING = { ParallelStateStarted = true, MapStateStarted = true }
local TASK_END = { TaskSucceeded = true, TaskFailed = true, TaskTimedOut = true }
-- Events an integration may or may not emit again when it re-attaches to its job.
local OPTIONAL = { TaskSubmitted = true }

local function details_of(ev)
  local d = ev.stateEnteredEventDetails or ev.stateExitedEventDetails
  if d then return d end
  for k, v in pairs(ev) do
    if type(k) == "string" and k:sub(-12) == "EventDetails" then return v end
  end
  return nil
end

-- A space of event ids (the recorded history's, or the run's): each event's frame and type.
local function new_space()
  return { key = { [0] = "" }, type = {}, open = {} }
end

-- The frame of ev in space sp (and the space updated with it).
local function key_of(self, sp, ev)
  local prev = ev.previousEventId or 0
  local pk = sp.key[prev] or ""
  local etype = ev.type
  local key = pk
  if etype:sub(1, 9) == "Execution" then
    key = ""
  elseif etype == "MapIterationStarted" then
    local d = details_of(ev)
    key = pk .. "/i" .. tostring(math.tointeger(d and d.index) or d and d.index)
  elseif CLOSING[etype] then
    -- the innermost open Map / Parallel enclosing the previous event's frame
    local best
    for k, n in pairs(sp.open) do
      if n > 0 and (pk == k or pk:sub(1, #k + 1) == k .. "/") and (not best or #k > #best) then
        best = k
      end
    end
    key = best or pk
    if best and CLOSING[etype] == 1 then sp.open[best] = sp.open[best] - 1 end
  elseif sp.type[prev] == "ParallelStateStarted" and etype:sub(-12) == "StateEntered" then
    local d = details_of(ev)
    local b = d and self.branch_of[d.name]
    if b then key = pk .. "/b" .. b end
  end
  if OPENING[etype] then sp.open[key] = (sp.open[key] or 0) + 1 end
  sp.key[ev.id] = key
  sp.type[ev.id] = etype
  return key
end

-- Parallel branches by the name of their first state: name -> 0-based branch index.
local function branches(def, out)
  if type(def) ~= "table" or type(def.States) ~= "table" then return out end
  for _, st in pairs(def.States) do
    if type(st) == "table" then
      if type(st.Branches) == "table" then
        for i, br in ipairs(st.Branches) do
          if type(br) == "table" and br.StartAt then out[br.StartAt] = i - 1 end
          branches(br, out)
        end
      end
      branches(st.ItemProcessor or st.Iterator, out)
    end
  end
  return out
end

local Replay = {}
Replay.__index = Replay

-- Cuts every frame's record before the state it had not finished (redrive), and drops the
-- execution's end.
local function cut(self)
  for _, f in pairs(self.frames) do
    local n = f.n
    while n > 0 and f.types[n]:sub(1, 9) == "Execution" and f.types[n] ~= "ExecutionStarted" do
      n = n - 1
    end
    for i = n, 1, -1 do
      local t = f.types[i]
      if t:sub(-11) == "StateExited" then break end
      if t:sub(-12) == "StateEntered" then
        n = i - 1
        break
      end
    end
    f.n = n
  end
end

local function add_recorded(self, ev)
  local key = key_of(self, self.rec_space, ev)
  local f = self.frames[key]
  if not f then
    f = { n = 0, ids = {}, types = {}, names = {}, events = {} }
    self.frames[key] = f
  end
  -- a frame's record is what it holds up to n (a redrive cut shortens it)
  local n = f.n + 1
  f.n = n
  f.ids[n], f.types[n], f.events[n] = ev.id, ev.type, ev
  local d = details_of(ev)
  f.names[n] = d and d.name or false
end

--- A replay of the recorded history `events` (GetExecutionHistory events, oldest first) of
-- an execution of `definition` (its ASL table). `last_id`: the last recorded event id.
function M.new(events, definition, last_id)
  local self = setmetatable({
    branch_of = branches(definition, {}), rec_space = new_space(), live = new_space(),
    frames = {}, cursor = {}, diverged = {}, map = { [0] = 0 },
    next_id = last_id or 0, redrives = 0, x = false,
  }, Replay)
  for _, ev in ipairs(events) do
    if ev.type == "ExecutionRedriven" then
      self.redrives = self.redrives + 1
      cut(self)
    else
      add_recorded(self, ev)
    end
  end
  return self
end

--- Cuts the record for a redrive starting now (the ExecutionRedriven event is written by
-- the caller, with id next_id + 1).
function Replay:redrive()
  self.redrives = self.redrives + 1
  cut(self)
  self.next_id = self.next_id + 1
  return self.next_id
end

--- ev (an event the run emitted, its ids the run's) as the store records it: nil when it
-- is the replay of a recorded event, else a copy with the ids that continue the record.
function Replay:translate(ev)
  local key = key_of(self, self.live, ev)
  local f = self.frames[key]
  if f and not self.diverged[key] then
    local k = (self.cursor[key] or 0) + 1
    while k <= f.n and OPTIONAL[f.types[k]] and ev.type ~= f.types[k] do k = k + 1 end
    if k <= f.n then
      local d = details_of(ev)
      if f.types[k] == ev.type and (f.names[k] or nil) == (d and d.name or nil) then
        self.cursor[key] = k
        self.map[ev.id] = f.ids[k]
        return nil
      end
      -- the run took another path than the record (a nondeterministic state): from here
      -- this frame's events are new ones
      self.diverged[key] = true
    end
  end
  local id = self.next_id + 1
  self.next_id = id
  self.map[ev.id] = id
  local out = {}
  for k, v in pairs(ev) do out[k] = v end
  out.id = id
  out.previousEventId = self.map[ev.previousEventId or 0] or (id - 1)
  return out
end

-- The recorded frame and position of the run's event `live_id` when it was replayed.
function Replay:recorded_at(live_id)
  local key = self.live.key[live_id]
  if not key or self.diverged[key] then return nil end
  local f, k = self.frames[key], self.cursor[key]
  if not f or not k or f.ids[k] ~= self.map[live_id] then return nil end
  return f, k
end

--- The recorded event that ended the Map Run whose MapRunStarted `frame` has just emitted
-- (MapRunSucceeded / MapRunFailed), or nil when the record does not hold its end (the run
-- was interrupted, or a redrive cut it: it runs on).
function Replay:map_run_end(frame)
  if frame.x ~= self.x then return nil end
  local f, k = self:recorded_at(frame.prev)
  if not f or k >= f.n or f.types[k] ~= "MapRunStarted" then return nil end
  return f.events[k + 1]
end

--- The store hook of a Task (states/task.lua): when the attempt that has just emitted its
-- TaskStarted had ended in the record, returns true, output or false, { Error =, Cause = },
-- and skips the events the integration had emitted meanwhile; nil when it must be invoked
-- (then ctx.recorded_attempt = true and ctx.started_at = the recorded TaskStarted's time).
function Replay:task(frame, ctx)
  if frame.x ~= self.x then return nil end -- a Distributed Map's child execution
  local f, k = self:recorded_at(frame.prev)
  if not f then return nil end
  for j = k + 1, f.n do
    local t = f.types[j]
    if TASK_END[t] then
      local d = details_of(f.events[j]) or {}
      self.cursor[self.live.key[frame.prev]] = j - 1
      if self.on_replayed_task and ctx then self.on_replayed_task(ctx) end
      if t == "TaskSucceeded" then
        local out = d.output
        if type(out) == "string" then out = json.decode(out) end
        if out == nil then out = json.null end
        return true, out
      end
      return false, { Error = d.error, Cause = d.cause }
    elseif t:sub(-5) == "Entered" or t:sub(-6) == "Exited" then
      break
    end
  end
  -- an earlier process recorded this attempt's start without its outcome: its request may
  -- have gone out, so the integration looks for what it did before doing it again; its
  -- TimeoutSeconds counts from the recorded start, as it did for the interrupted run
  if ctx then
    ctx.recorded_attempt = true
    local started = f.events[k].timestamp
    if type(started) == "number" then ctx.started_at = started end
  end
  return nil
end

--- The store hook of a Wait (states/wait.lua): the delay still to wait. A Wait whose exit
-- was recorded is over; a relative one (Seconds) counts from its recorded entry.
function Replay:wait(frame, delay, relative)
  if frame.x ~= self.x then return delay end
  local f, k = self:recorded_at(frame.prev)
  if not f then return delay end
  if f.types[k + 1] == "WaitStateExited" and k + 1 <= f.n then return 0 end
  if relative then
    local entered = f.events[k].timestamp
    if type(entered) == "number" then
      local left = entered + delay - self.x.s:now()
      return left > 0 and left or 0
    end
  end
  return delay
end

--- The store hook of a Retry's back-off (handlers.lua): the delay still to wait before the
-- next attempt. None when that attempt was recorded already; else counted from the recorded
-- failure it follows.
function Replay:backoff(frame, delay)
  if frame.x ~= self.x then return delay end
  local f, k = self:recorded_at(frame.prev)
  if not f then return delay end
  if k < f.n then return 0 end -- the record goes on: the next attempt had started
  local failed = f.events[k].timestamp
  if type(failed) == "number" then
    local left = failed + delay - self.x.s:now()
    return left > 0 and left or 0
  end
  return delay
end

--- The store hook of the execution's TimeoutSeconds (execution.lua): a resumed execution
-- times out when the interrupted one would have, counted from its recorded start; a redriven
-- one has its whole TimeoutSeconds again, from the redrive.
function Replay:timeout(seconds)
  if self.redrives > 0 then return seconds end
  local left = self.x.start_time + seconds - self.x.s:now()
  return left > 0 and left or 0
end

M.Replay = Replay

return M
