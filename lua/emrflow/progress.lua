--- emrflow.progress: what a running execution shows on stderr.
--
--   local progress = require "emrflow.progress"
--   local rep = progress.new{ stream = io.stderr, enabled = nil, virtual = false }
--   machine:start(input, { on_event = rep:on_event(), on_emr_event = rep:on_emr_event(), ... })
--
-- It is fed by history events (the engine's on_event) and by the EMR on EKS integration
-- (on_emr_event: job submitted, job state changes, cancels), and prints one line each,
-- starting with the time and the time since the start; on the virtual clock (--local) the
-- times are simulated and marked so:
--
--   [20:26:31 +0.0s] > Create_Virtual_Cluster
--   [20:26:33 +2.0s]   job MyJobName pm0hkw4339h9d3m1dgk PENDING
--   [virtual 20:27:46 +75.0s]   job MyJobName pm0hkw4339h9d3m1dgk RUNNING -> COMPLETED
--   [virtual 20:28:32 +121.0s] execution SUCCEEDED after 121.0 s of virtual time (0.02 s CPU)
--
-- Inside Map iterations it prints a summary every tenth of the iterations and only the
-- first failures, so a Map of 1,000 jobs stays readable. "retry" is said only of a Task
-- attempt that follows a failed attempt of the same state visit (ASL Retry), never of
-- another Map iteration.
--
--   progress.events_writer(stream [, values])  --> on_event fn writing each history event as
--                                   one JSON line (values: payloads are Lua values, see materialize)
--   progress.is_terminal(fd)        --> boolean (fd 2 by default)
-- @module emrflow.progress
local core = require "emrflow.core"
local json = require "emrflow.json"

local M = {}

local Reporter = {}
Reporter.__index = Reporter

local fmt = string.format

--- True when file descriptor fd (default 2, stderr) is a terminal.
function M.is_terminal(fd)
  fd = math.tointeger(fd or 2)
  if not fd then return false end
  local ok = os.execute(fmt("test -t %d", fd))
  return ok == true or ok == 0
end

local MAP_DETAIL_LINES = 20
-- the events that end a Map state (after them, its iterations are over)
local MAP_ENDS = { MapStateSucceeded = true, MapStateFailed = true, MapStateAborted = true }
local MAP_FAILURE_LINES = 10

--- new{ stream = io.stderr, enabled = bool | nil (auto: stderr is a terminal), real_clock = fn,
-- virtual = bool (the execution runs on the virtual clock: times are marked "virtual") }
function M.new(opts)
  opts = opts or {}
  local enabled = opts.enabled
  if enabled == nil then enabled = M.is_terminal(2) end
  return setmetatable({
    stream = opts.stream or io.stderr,
    enabled = enabled,
    virtual = opts.virtual == true,
    real_clock = opts.real_clock or core.cpu,
    real_start = (opts.real_clock or core.cpu)(),
    t0 = nil,
    name_of = {},          -- event id -> state name
    in_map = {},           -- event id -> true inside a Map iteration
    failure = {},          -- event id -> true for a failed Task attempt (a TaskScheduled after it is a retry)
    maps = {},             -- id of MapStateStarted -> { name, n, done, failed }
    map_of = {},           -- event id -> map record
    map_lines = 0,
    map_failures = 0,
    jobs = {},             -- job id -> last state
    lines = 0,
  }, Reporter)
end

function Reporter:line(t, text, in_map)
  if not self.enabled or self.muted then return end
  if in_map == "failure" then
    self.map_failures = self.map_failures + 1
    if self.map_failures > MAP_FAILURE_LINES then
      if self.map_failures == MAP_FAILURE_LINES + 1 then
        text = "    (more failures of Map iterations are left out)"
      else
        return
      end
    end
  elseif in_map then
    self.map_lines = self.map_lines + 1
    if self.map_lines > MAP_DETAIL_LINES then
      if self.map_lines == MAP_DETAIL_LINES + 1 then
        text = "    (more details of Map iterations are left out)"
      else
        return
      end
    end
  end
  local t0 = self.t0 or t
  local stamp
  if t then
    stamp = fmt("[%s%s +%.1fs]", self.virtual and "virtual " or "", os.date("!%H:%M:%S", math.floor(t)),
      t - t0)
  else
    stamp = "[--:--:--]"
  end
  -- one space between the stamp and the text; the text's own leading spaces nest it
  text = tostring(text):gsub("%s+$", "")
  self.stream:write(stamp, " ", text, "\n")
  if self.stream.flush then self.stream:flush() end
  self.lines = self.lines + 1
end

local function details_of(ev)
  for k, v in pairs(ev) do
    if type(v) == "table" and type(k) == "string" and k:sub(-12) == "EventDetails" then return v end
  end
  return nil
end

local function clip(s, n)
  s = tostring(s or "")
  if #s > n then return s:sub(1, n - 3) .. "..." end
  return s
end

--- Takes in the events already recorded of an execution that goes on (resume, redrive)
-- without printing them: the states they name and the start time, for the lines after.
function Reporter:seed(events)
  self.muted = true
  local ok, err = pcall(function()
    for _, ev in ipairs(events) do self:event(ev) end
  end)
  self.muted = false
  if not ok then error(err, 0) end
end

--- Handles one history event (raw, as the engine's on_event gives it).
function Reporter:event(ev)
  local id, prev, etype = ev.id, ev.previousEventId, ev.type
  local d = details_of(ev)
  local t = ev.timestamp
  if etype == "ExecutionStarted" then
    self.t0 = t
    self:line(t, self.virtual and "execution started on the virtual clock (simulated times, nothing waits)"
      or "execution started")
    return
  end
  -- an execution that goes on without its earlier events seen: times count from here
  if self.t0 == nil then self.t0 = t end
  if etype == "ExecutionRedriven" then
    self:line(t, "execution redriven")
    return
  end
  local name = self.name_of[prev]
  if d and d.name and (etype:sub(-12) == "StateEntered" or etype:sub(-11) == "StateExited") then
    name = d.name
  end
  self.name_of[id] = name
  local in_map = self.in_map[prev] or etype == "MapIterationStarted"
  local map = self.map_of[prev]
  if map and MAP_ENDS[etype] then
    -- a Map's end follows its last iteration's event: back to where the Map state runs
    name, in_map, map = map.name, map.outer_in_map, map.outer_map
    self.name_of[id] = name
  end
  if in_map then self.in_map[id] = true end
  if map then self.map_of[id] = map end

  if etype:sub(-12) == "StateEntered" then
    if not in_map then self:line(t, "> " .. tostring(name)) end
  elseif etype:sub(-11) == "StateExited" then
    if not in_map then self:line(t, "< " .. tostring(name)) end
  elseif etype == "MapStateStarted" then
    local rec = { name = name, n = d and d.length or 0, done = 0, failed = 0,
                  outer_in_map = in_map, outer_map = map }
    self.map_of[id] = rec
    self:line(t, fmt("  Map %s: %d iterations", tostring(name), rec.n), in_map)
  elseif etype == "MapIterationSucceeded" or etype == "MapIterationFailed" then
    map = self.map_of[prev]
    if map then
      map.done = map.done + 1
      if etype == "MapIterationFailed" then map.failed = map.failed + 1 end
      local step = math.max(1, math.ceil(map.n / 10))
      if map.done % step == 0 or map.done == map.n then
        self:line(t, fmt("  Map %s: %d/%d iterations done%s", tostring(map.name), map.done, map.n,
          map.failed > 0 and fmt(" (%d failed)", map.failed) or ""))
      end
    end
  elseif etype == "TaskScheduled" then
    -- a new attempt right after a failed one of the same visit: the Retry of ASL
    if self.failure[prev] then self:line(t, "  retry " .. tostring(name), in_map) end
  elseif etype == "TaskFailed" or etype == "TaskTimedOut" then
    self.failure[id] = true
    local err = d and d.error
    local cause = d and d.cause
    self:line(t, "! " .. tostring(name) .. (etype == "TaskTimedOut" and " timed out" or " failed")
      .. ((err and err ~= "") and (": " .. tostring(err)) or "")
      .. ((cause and cause ~= "") and (" " .. clip(cause, 160)) or ""),
      in_map and "failure" or nil)
  elseif etype == "ExecutionSucceeded" or etype == "ExecutionFailed" or etype == "ExecutionAborted"
      or etype == "ExecutionTimedOut" then
    local status = ({ ExecutionSucceeded = "SUCCEEDED", ExecutionFailed = "FAILED",
                      ExecutionAborted = "ABORTED", ExecutionTimedOut = "TIMED_OUT" })[etype]
    local extra = ""
    if d and d.error then
      extra = ": " .. tostring(d.error) .. ((d.cause and d.cause ~= "") and (" " .. clip(d.cause, 200)) or "")
    end
    self:line(t, fmt("execution %s after %.1f s%s (%.2f s CPU)%s", status, t - (self.t0 or t),
      self.virtual and " of virtual time" or "", self.real_clock() - self.real_start, extra))
  end
end

--- Handles one integration event (emrflow.emr.tasks' on_emr_event).
function Reporter:emr(ev)
  local t = ev.at
  local who = fmt("job %s %s", tostring(ev.name or "-"), tostring(ev.id or "?"))
  local in_map = ev.in_map
  if ev.kind == "job_submitted" then
    self:line(t, fmt("    %s submitted to virtual cluster %s", who, tostring(ev.virtual_cluster_id)), in_map)
  elseif ev.kind == "job_state" then
    local final = ev.state == "FAILED" or ev.state == "CANCELLED"
    local text = ev.previous and fmt("    %s %s -> %s", who, ev.previous, ev.state)
      or fmt("    %s %s", who, tostring(ev.state))
    local finished_at = ev.job and ev.job.FinishedAt
    local fin = type(finished_at) == "string" and finished_at:match("T(%d%d:%d%d:%d%d)")
    if fin then text = text .. " (finished " .. (self.virtual and "virtual " or "") .. fin .. ")" end
    if final and ev.job and (ev.job.FailureReason or ev.job.StateDetails) then
      local why = {}
      if ev.job.FailureReason then why[#why + 1] = tostring(ev.job.FailureReason) end
      if ev.job.StateDetails then why[#why + 1] = clip(ev.job.StateDetails, 120) end
      text = text .. " (" .. table.concat(why, " ") .. ")"
    end
    -- inside a Map: the first failures, and a few details
    self:line(t, text, in_map and (final and "failure" or true))
  elseif ev.kind == "cluster_state" then
    self:line(t, fmt("    virtual cluster %s %s%s", tostring(ev.id),
      ev.previous and (ev.previous .. " -> ") or "", tostring(ev.state)), in_map)
  elseif ev.kind == "cancel" then
    self:line(t, fmt("    cancelling %s (%s)", who, tostring(ev.reason)), in_map)
  elseif ev.kind == "cancel_failed" then
    self:line(t, fmt("    could not cancel %s: %s", who, clip(ev.error, 160)), in_map)
  elseif ev.kind == "cancel_timeout" then
    self:line(t, fmt("    %s still not CANCELLED after %s s", who, tostring(ev.wait_s)), in_map)
  elseif ev.kind == "poll_error" then
    self:line(t, fmt("    polling %s failed (%d in a row): %s", who, ev.count or 1, clip(ev.error, 160)),
      in_map)
  end
end

--- The on_event callback for machine:start.
function Reporter:on_event()
  return function(ev) self:event(ev) end
end

--- The on_emr_event callback for machine:start.
function Reporter:on_emr_event()
  return function(ev) self:emr(ev) end
end

-- ------------------------------------------------------------------------
-- History as JSON lines
-- ------------------------------------------------------------------------

local JSON_MEMBERS = { input = true, output = true, parameters = true }

-- Event dates to the millisecond, as GetExecutionHistory (and `emrflow history`) gives them.
local function milliseconds(t)
  if type(t) ~= "number" then return t end
  return math.floor(t * 1000 + 0.5) / 1000
end

--- One raw history event shaped like GetExecutionHistory (payloads as JSON text, the
-- timestamp to the millisecond).
-- values: the payloads are Lua values (an engine's events: a string is a JSON string, not
-- JSON text); else a string payload is taken as JSON text already (a remote history's).
function M.materialize(ev, values)
  local e = json.object({})
  for _, k in ipairs{ "id", "previousEventId", "timestamp", "type" } do
    local v = ev[k]
    if k == "timestamp" then v = milliseconds(v) end
    if v ~= nil then json.set(e, k, v) end
  end
  for k, v in pairs(ev) do
    if type(v) == "table" and type(k) == "string" and k:sub(-12) == "EventDetails" then
      local d = json.object({})
      for dk, dv in pairs(v) do
        if JSON_MEMBERS[dk] and (values or type(dv) ~= "string") then
          local ok, text = pcall(json.encode, dv)
          d[dk] = ok and text or tostring(dv)
          -- as GetExecutionHistory: inputDetails and outputDetails, no other
          if dk == "input" or dk == "output" then d[dk .. "Details"] = { truncated = false } end
        elseif dk == "assignedVariables" and type(dv) == "table" then
          local vars = json.object({})
          for name, value in pairs(dv) do
            local ok, text = pcall(json.encode, value)
            vars[name] = ok and text or tostring(value)
          end
          d[dk] = vars
        else
          d[dk] = dv
        end
      end
      json.set(e, k, d)
    end
  end
  return e
end

--- An on_event callback writing each event as one JSON line to stream.
function M.events_writer(stream, values)
  return function(ev)
    local ok, text = pcall(json.encode, M.materialize(ev, values))
    if not ok then text = json.encode({ id = ev.id, type = ev.type, error = tostring(text) }) end
    stream:write(text, "\n")
    if stream.flush then stream:flush() end
  end
end

--- Kept for callers of the earlier wiring (emrflow.emr.tasks calls it when the CLI is
-- loaded): emrflow.cli now adds --progress / --quiet and the reporter itself.
function M.install_cli(_)
  return false
end

M.Reporter = Reporter

return M
