--- emrflow.store.recorder: records a running execution in the store, as an observer of its
-- history events (machine:start's on_event), so that the engine needs to know nothing of
-- the store.
--
-- Grouping: events of states without external effects are written together, in one
-- transaction, when one of them announces an effect, and never later: a TaskStarted event
-- (emitted right before the Task's request is sent) commits every earlier event together
-- with the effect's record (the resource and parameters of the request); a Wait state's
-- WaitStateEntered commits before the timer is set; the execution's last event commits
-- together with its final status; a Task's outcome (TaskSucceeded, TaskFailed, TaskTimedOut) is
-- written at once. Between those points the execution only computes, so the
-- events that a crash could lose there are the ones a resume computes again. A group is
-- also written once it holds GROUP_LIMIT events, to bound the memory it takes.

local json = require "emrflow.json"
local errors = require "emrflow.errors"
local core = require "emrflow.core"
local context = require "emrflow.asl.context"
local events = require "emrflow.store.events"
local replay = require "emrflow.store.replay"

-- Now in epoch seconds, to the millisecond.
local function now_s()
  return math.floor(core.now() * 1000 + 0.5) / 1000
end

local M = {}

M.GROUP_LIMIT = 1000

-- Events after which the group is written: an external effect starts right after them.
local BEFORE_EFFECT = {
  TaskStarted = "task", WaitStateEntered = "timer", MapRunStarted = "map_run",
  ActivityScheduled = "activity", LambdaFunctionScheduled = "lambda",
}
-- Events that report what an effect produced: written at once (a Task's outcome, so that a
-- resume neither calls it again nor loses a Retry back-off's start).
local EFFECT_RESULT = { TaskSubmitted = true, TaskSucceeded = true, TaskFailed = true,
  TaskTimedOut = true }

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

-- A child execution's record is created with its first write (self.pending: the fields of
-- create_execution), in the same transaction, so that a child that only computes costs one.
local function create_then_append(self, group, with)
  local row, err = self.s:create_execution(self.pending)
  if not row then return nil, err end
  local ok, aerr = self.s:append_events(row, group, with)
  if not ok then return nil, aerr end
  return row
end

-- Writes the group (and `with`'s extra writes) in one transaction. A failure is kept in
-- self.error and raised as an ASL error, so the state that needed the write fails.
function Recorder:write(with)
  local group = self.group
  local ok, err
  if self.pending then
    ok, err = self.s:transaction(create_then_append, self, group, with)
    if ok then self.rec, self.pending = ok, nil end
  else
    ok, err = self.s:append_events(self.rec, group, with)
  end
  group:reset()
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
      "executionUid", (self.rec or self.pending).uid) }
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
    local with = { status = { status = final, stop_date = ev.timestamp,
      output = d.output, error = d.error, cause = d.cause } }
    self.enabled = false
    if self.pending and self.batch then
      -- a child execution that only computed: written with others (Children:flush)
      return self.batch:defer(self, with)
    end
    pcall(self.write, self, with)
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

-- Events the recorder looks at (the others, most of them, only join the group).
local NOTABLE = { TaskScheduled = true }
for k in pairs(BEFORE_EFFECT) do NOTABLE[k] = true end
for k in pairs(EFFECT_RESULT) do NOTABLE[k] = true end
for k in pairs(FINAL) do NOTABLE[k] = true end

--- The event sink (machine:start's event_sink, emrflow.asl.history): takes each event as
-- its parts and packs it in C (emrflow.store.events.sink), so that recording runs no Lua
-- and builds no table per event. A notable event (an effect, the end) is expanded and
-- handled as add() handles it.
function Recorder:sink()
  local function expanded(desc, id, prev, payload, assigned, t)
    local ev = { type = desc.etype, id = id, previousEventId = prev, timestamp = t }
    local field = desc.field
    if field then
      ev[desc.key] = { name = desc.name, [field] = payload, assignedVariables = assigned }
    elseif desc.key and payload ~= false then
      ev[desc.key] = payload
    end
    return self:add(ev)
  end
  return events.sink(self.group, self, NOTABLE, expanded, function() self:write() end,
    M.GROUP_LIMIT)
end

--- Writes what is pending (events of computation since the last write).
function Recorder:flush()
  if self.enabled and self.group.n > 0 then
    local ok, err = pcall(self.write, self)
    if not ok then return nil, self.error or err end
  end
  return true
end

-- The definition as ASL JSON text: the text it was loaded from, as it is (AWS too keeps a
-- definition as given; encoding ten thousand states again would cost more than their first
-- run); else encoded directly, or, when it holds Lua-function resources, exported with
-- placeholders for them (the functions are loaded again from the definition's file on
-- resume). Kept per machine: a machine's definition never changes once loaded.
local definition_texts = setmetatable({}, { __mode = "k" })

-- The definition of machine encoded (what was recorded before texts were kept as given).
local function encoded_definition(machine)
  local ok, encoded = pcall(json.encode, machine.definition)
  return ok and encoded or nil
end

local function definition_text(machine)
  local text = definition_texts[machine] or machine.source_text
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

-- s as one word of a shell command line.
local function shell_word(s)
  if s:match("^[%w%-_%./:=@]+$") then return s end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- The process running an execution: its pid, its start time (in clock ticks since boot) and
-- the boot's id, so that a pid reused after a reboot or by another process is not mistaken
-- for it. nil where /proc does not tell.
local function read_line(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local line = f:read("l")
  f:close()
  return line
end

-- The start time and state of a process from its stat line.
local function parse_stat(stat)
  -- the command name (in parentheses) may hold spaces: fields are counted after it
  local rest = stat and stat:match("^%d+ %b() (.*)$")
  if not rest then return nil end
  local fields = {}
  for w in rest:gmatch("%S+") do fields[#fields + 1] = w end
  return fields[20], fields[1] -- start time (field 22 of stat), state
end

local function process_of(pid)
  return parse_stat(read_line("/proc/" .. pid .. "/stat"))
end

local boot_id   -- the same for the life of the process

local function this_process()
  local stat = read_line("/proc/self/stat")
  local pid = stat and stat:match("^(%d+)")
  local start = parse_stat(stat)
  boot_id = boot_id or read_line("/proc/sys/kernel/random/boot_id")
  if not (pid and start and boot_id) then return nil end
  return json.object_of("pid", tonumber(pid), "start", start, "boot", boot_id)
end

-- The options recorded with an execution, with the process that runs it.
local function with_owner(options)
  local out = json.object {}
  if type(options) == "table" then
    for k, v in pairs(options) do out[k] = v end
  end
  out.owner = this_process()
  return out
end

-- The pid of another process of this machine still running the execution, or nil.
local function live_owner(options)
  local owner = type(options) == "table" and options.owner
  if type(owner) ~= "table" or type(owner.pid) ~= "number" then return nil end
  local me = this_process()
  if not me or me.boot ~= owner.boot or me.pid == owner.pid then return nil end
  local start, state = process_of(math.tointeger(owner.pid))
  if start ~= owner.start or state == "Z" then return nil end
  return math.tointeger(owner.pid)
end

-- path made absolute (the resume command line may be typed in another directory).
local function absolute(path)
  if path:sub(1, 1) == "/" then return path end
  local cwd = os.getenv("PWD")
  return cwd and (cwd .. "/" .. path:gsub("^%./", "")) or path
end

local NOT_FOR_ENGINE = { store = true, store_notice = true, store_options = true, source_path = true,
  machine = true }

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
  -- made before the execution (its record is set once created), so that the engine calls
  -- the recorder's sink directly
  local recorder = M.new(s, nil)
  if opts.history == false then
    -- no history kept: the events come one by one to on_event
    local user_on_event = opts.on_event
    start_opts.on_event = function(ev)
      recorder:add(ev)
      if user_on_event then user_on_event(ev) end
    end
  else
    start_opts.event_sink = recorder:sink()
  end
  -- machine:start only schedules the execution: nothing has run (or been recorded) yet
  local x = machine:start(input, start_opts)
  local rec, err = s:create_execution {
    arn = x.arn, uid = uid, name = x.name, machine_name = machine.name, machine_arn = machine.arn,
    definition = definition_text(machine), source_path = opts.source_path,
    input = x.input, start_date = x.start_time, region = x.region,
    endpoint = opts.endpoint_url, options = with_owner(opts.store_options),
  }
  if not rec then
    recorder.enabled = false
    x:stop("States.Runtime", "not started: " .. tostring(err.message))
    error(err, 0)
  end
  recorder.rec = rec
  x.store, x.store_record, x.store_recorder = s, rec, recorder
  x.child_store = M.children(s, 0, true)
  if opts.store_notice then
    opts.store_notice:write(string.format("emrflow: recording execution %s in %s (if this process "
      .. "dies, continue it with: emrflow resume %s --store %s)\n", x.name, s.path,
      shell_word(x.name), shell_word(absolute(s.path))))
  end
  return x
end

-- Why row cannot be resumed (resume) or redriven (redrive); nil when it can.
local function refusal(s, row, options, redrive)
  local what = "execution '" .. row.name .. "' (" .. row.arn .. ")"
  if type(options) == "table" and options.parent then
    return errors.new { code = "child_execution", message = "cannot " .. (redrive and "redrive" or "resume")
      .. " " .. what .. " by itself: it is a child execution of the Map Run " .. tostring(options.mapRunArn)
      .. "; " .. (redrive and "redrive" or "resume") .. " its parent execution " .. tostring(options.parent)
      .. " (its child executions " .. (redrive and "that failed run again" or "go on with it") .. ")" }
  end
  if redrive then
    local status, reason = redrive(row, os.time())
    if status ~= "REDRIVABLE" then
      return errors.new { code = "ExecutionNotRedrivable", aws_code = "ExecutionNotRedrivable",
        message = "Execution Not Redrivable: " .. what .. ": " .. reason
          .. (row.status == "RUNNING" and "; if its process is gone, resume it" or "") }
    end
  elseif row.status ~= "RUNNING" then
    return errors.new { code = "not_resumable", message = "cannot resume " .. what .. ": it is "
      .. row.status .. (row.status ~= "SUCCEEDED" and "; redrive it to run it again from the "
      .. "state that failed" or "") .. " (execution store " .. s.path .. ")" }
  end
  return nil
end

-- Whether machine's definition is the recorded text: the same text, or (a JSON text
-- recorded as given, or encoded by an earlier version) the same definition once decoded.
local function same_definition(machine, recorded)
  local text = definition_text(machine)
  if text == recorded then return true end
  local mine = encoded_definition(machine)
  if mine == nil then return false end
  if mine == recorded then return true end
  local ok, data = pcall(require("emrflow.asl.definition").decode, recorded)
  if not ok then return false end
  local eok, theirs = pcall(json.encode, data)
  return eok and theirs == mine
end

-- The machine to run row with: opts.machine (checked against the record: a .lua definition
-- loaded again from its file for its functions), else the recorded definition.
local function machine_for(row, opts)
  local machine = opts.machine
  if machine then
    if not same_definition(machine, row.definition) then
      return nil, errors.new { code = "definition_changed", message = "the definition of execution '"
        .. row.name .. "'" .. (row.source_path and (" (" .. row.source_path .. ")") or "")
        .. " has changed since it started: it can be resumed or redriven only with the "
        .. "definition it was recorded with" }
    end
    return machine
  end
  local ok, m = pcall(require("emrflow.asl").load, row.definition,
    { name = row.machine_name, region = row.region })
  if not ok then
    return nil, errors.new { code = "definition_changed", message = "the recorded definition of "
      .. "execution '" .. row.name .. "' cannot be loaded: " .. tostring(m) }
  end
  return m
end

-- Tasks of an integration that counts its calls per state (EMR on EKS's ClientTokens) are
-- counted for an attempt whose outcome was replayed too, so that the next attempt's token
-- is the one the interrupted run used. The integration is asked only when already loaded.
local function count_replayed(ctx)
  local tasks = package.loaded["emrflow.emr.tasks"]
  if type(tasks) == "table" and type(tasks.client_token) == "function" then
    pcall(tasks.client_token, ctx)
  end
end

---------------------------------------------------------------------------
-- Distributed Map child executions
---------------------------------------------------------------------------
-- Each child execution of a Distributed Map is an execution of its own in the store, as on
-- AWS: its row (state machine "<machine>/<label>", options naming its parent, Map Run and
-- index), its history and its effects, written by a recorder of its own with the same rules
-- as the parent's. The parent's history keeps only the Map Run events. When the parent is
-- resumed or redriven, each child is looked up as the Map meets it again (its ARN is derived
-- from where the Map Run happens, see states/map.lua):
--   * SUCCEEDED: its recorded output is taken; it does not run;
--   * FAILED during the parent's current redrive generation: its recorded error is taken;
--   * RUNNING (the process died): resumed one state at a time, as the parent is;
--   * FAILED in an earlier generation, ABORTED or TIMED_OUT: redriven (an ExecutionRedriven
--     event, from the state that failed); the parent's redrive re-runs only these;
--   * not recorded: runs, recorded from its first write.

local Children = {}
Children.__index = Children

-- Child executions that only computed (no external effect, hence nothing written yet) are
-- written together, this many in one transaction, or when their Map Run ends: a crash loses
-- at most computation that a resume does again, and a 10,000-item Map of Pass states costs
-- a few transactions, not 10,000.
M.CHILD_BATCH = 256

--- The child-execution hook (an execution's child_store, read by states/map.lua) of an
-- execution recorded in s, in redrive generation `generation`; fresh: the execution has just
-- started, so none of its children can be in the store yet.
function M.children(s, generation, fresh)
  return setmetatable({ s = s, generation = generation, fresh = fresh,
    texts = setmetatable({}, { __mode = "k" }), deferred = {}, error = nil }, Children)
end

-- Keeps the whole record of child recorder rec (its events and end, `with`) for flush.
function Children:defer(rec, with)
  local list = self.deferred
  list[#list + 1] = { rec = rec, with = with }
  if #list >= M.CHILD_BATCH then self:flush() end
end

local function write_deferred(list)
  for _, d in ipairs(list) do
    local ok, err = create_then_append(d.rec, d.rec.group, d.with)
    if not ok then return nil, err end
  end
  return true
end

--- Writes the deferred child executions in one transaction (the Map calls it when its run
-- ends). A failure is kept in self.error: those children are computed again on resume.
function Children:flush()
  local list = self.deferred
  if #list == 0 then return true end
  self.deferred = {}
  local ok, err = self.s:transaction(write_deferred, list)
  if not ok then self.error = self.error or err end
  return ok, err
end

-- The ItemProcessor's definition as JSON text, the child executions' definition (kept once
-- per Map state); one with Lua functions is held by the parent's definition only.
function Children:definition(proc_def)
  local text = self.texts[proc_def]
  if not text then
    local ok, encoded = pcall(json.encode, proc_def)
    text = ok and encoded or json.encode(json.object_of("StartAt", proc_def.StartAt,
      "Comment", "holds Lua functions: see the parent execution's definition"))
    self.texts[proc_def] = text
  end
  return text
end

local function store_failure(err)
  error({ Error = "States.Runtime", Cause = "cannot read the execution store: "
    .. tostring(err and err.message or err) }, 0)
end

-- Makes c's events go to recorder (through replay rp when it has a record).
local function attach(c, recorder, rp)
  local rec = c.rec
  if rp then
    c.replay = rp
    rec.on_event = function(ev)
      local out = rp:translate(ev)
      if out then recorder:add(out) end
    end
  elseif rec.enabled then
    rec.sink = recorder:sink()
  else
    rec.on_event = function(ev) recorder:add(ev) end
  end
  c.store_recorder = recorder
end

-- The writes of a child's redrive, in one transaction.
local function redrive_child(s, row, event, options)
  local ok, err = s:append_events(row, { event })
  if ok then ok, err = s:mark_redriven(row) end
  if ok then ok, err = s:set_options(row, options) end
  if not ok then return nil, err end
  return true
end

-- Continues the recorded child c (row): resumed, or redriven when `redrive`.
function Children:continue(c, row, options, proc_def, redrive)
  local s = self.s
  local recorded, err = s:history(row)
  if not recorded then store_failure(err) end
  local last = #recorded > 0 and recorded[#recorded].id or 0
  local rp = replay.new(recorded, proc_def, last)
  if redrive then
    local id = rp:redrive()
    options.generation = self.generation
    local ok, rerr = s:transaction(redrive_child, s, row, { id = id, previousEventId = last,
      timestamp = now_s(), type = "ExecutionRedriven",
      executionRedrivenEventDetails = json.object_of("redriveCount", rp.redrives) }, options)
    if not ok then store_failure(rerr) end
  end
  c.start_time, c.redrive_count = row.start_date, rp.redrives
  rp.x, rp.on_replayed_task = c, count_replayed
  attach(c, M.new(s, row), rp)
  return nil
end

-- How the Map Run had ended in the parent's record: false when it runs on (interrupted, or
-- cut by a redrive), else { error =, cause = } of its MapRunFailed, or {} (MapRunSucceeded).
local function settled(x, frame)
  local rp = x.replay
  local ended = rp and rp:map_run_end(frame)
  if not ended then return false end
  local d = ended.mapRunFailedEventDetails or {}
  return { error = d.error, cause = d.cause }
end

--- Called by the Map (its frame) for each child execution c before it runs: returns its
-- recorded end ({ status =, output = | error =, cause = }) when it stands (the child does not
-- run), or nil once c is set to record (and, when it had started, to replay) its events.
-- A Map Run that had ended in the record (a redrive from a later state) is replayed as it
-- was: its children's ends stand, whatever their generation.
function Children:begin(c, run, proc_def, frame)
  local s = self.s
  if run.settled == nil then run.settled = not self.fresh and settled(c.parent, frame) end
  local ended = run.settled
  local row
  if not self.fresh then
    local err
    row, err = s:find(c.arn)
    if not row and err.code ~= "ExecutionDoesNotExist" then store_failure(err) end
  end
  if not row then
    local recorder = M.new(s, nil)
    local machine = c.machine
    recorder.pending = {
      arn = c.arn, uid = c.id, name = c.name, machine_name = machine.name .. "/" .. run.label,
      machine_arn = machine.arn .. "/" .. run.label, definition = self:definition(proc_def),
      input = c.input, start_date = c.start_time, region = c.region,
      options = json.object_of("parent", c.parent.arn, "mapRunArn", run.arn, "index", c.index,
        "generation", self.generation),
    }
    recorder.batch = self
    attach(c, recorder, nil)
    return nil
  end
  local options = row.options and json.decode(row.options) or json.object {}
  local status = row.status
  if status == "SUCCEEDED" then
    local out = row.output and json.decode(row.output)
    if out == nil then out = json.null end
    return { status = status, output = out }
  elseif status == "FAILED" and (ended or (options.generation or 0) >= self.generation) then
    return { status = status, error = row.error, cause = row.cause }
  elseif ended and status ~= "RUNNING" then
    -- stopped when the run failed: the run's failure is what the Map met
    return { status = status, error = ended.error, cause = ended.cause }
  end
  return self:continue(c, row, options, proc_def, status ~= "RUNNING")
end

--- Continues the recorded execution x of store s (resume), or runs it again from the state
-- that failed (redrive = true): see emrflow.store.replay. opts: machine:start's options,
-- plus machine (the loaded machine: needed for a .lua definition's functions). redrive is
-- emrflow.store's redrive_status(row, now) for a redrive, nil for a resume. Returns the
-- execution, or nil, err.
function M.resume(s, x, opts, redrive)
  opts = opts or {}
  local row, err = s:find(x)
  if not row then return nil, err end
  local options = row.options and json.decode(row.options) or nil
  local why = refusal(s, row, options, redrive)
  if why then return nil, why end
  local pid = not redrive and live_owner(options)
  if pid then
    return nil, errors.new { code = "still_running", message = "execution '" .. row.name
      .. "' is still running in process " .. pid .. " of this machine: resume it once that "
      .. "process has ended (or stop it)" }
  end
  local machine, merr = machine_for(row, opts)
  if not machine then return nil, merr end
  -- nothing would run these Tasks (a .lua definition's functions without opts.machine, a
  -- handler not given again): refused before anything runs, not failed half-way
  local missing = machine:unresolved(opts)
  if #missing > 0 then
    local list = {}
    for i, u in ipairs(missing) do list[i] = u.state .. " (" .. tostring(u.resource) .. ")" end
    return nil, errors.new { code = "unresolved", message = "cannot " .. (redrive and "redrive" or "resume")
      .. " execution '" .. row.name .. "': nothing runs the Task states " .. table.concat(list, ", ")
      .. (row.source_path and ("; give the machine loaded from " .. row.source_path) or
        "; give the handlers or mocks it ran with") }
  end
  local recorded, herr = s:history(row)
  if not recorded then return nil, herr end
  local last = #recorded > 0 and recorded[#recorded].id or 0
  local rp = replay.new(recorded, machine.definition, last)
  if redrive then
    local id = rp:redrive()
    -- on the virtual clock the record may run ahead of the wall clock: the redrive comes after it
    local at = now_s()
    local recorded_at = last > 0 and recorded[#recorded].timestamp
    if type(recorded_at) == "number" and recorded_at > at then at = recorded_at end
    local redriven = { id = id, previousEventId = last, timestamp = at, type = "ExecutionRedriven",
      executionRedrivenEventDetails = json.object_of("redriveCount", rp.redrives) }
    local ok, rerr = s:append_events(row, { redriven })
    if ok then ok, rerr = s:mark_redriven(row) end
    if not ok then return nil, rerr end
    -- the caller's observer (--events) sees the history as the store keeps it, from here on
    if opts.on_event then opts.on_event(redriven) end
  end
  local start_opts = {}
  for k, v in pairs(opts) do
    if not NOT_FOR_ENGINE[k] then start_opts[k] = v end
  end
  start_opts.name = row.name
  -- each redrive is a new generation of ClientTokens: a redriven Task starts a new job
  start_opts.execution_id = rp.redrives == 0 and row.uid or (row.uid .. "/redrive-" .. rp.redrives)
  start_opts.start_time = start_opts.start_time or row.start_date
  -- this process runs it now
  local ok, oerr = s:set_options(row, with_owner(options))
  if not ok then return nil, oerr end
  local recorder = M.new(s, row)
  local user_on_event = opts.on_event
  -- the caller's observer gets the new events only, with the ids the store gives them (a
  -- replayed event is already in the history: it is neither recorded nor shown again)
  start_opts.on_event = function(ev)
    local out = rp:translate(ev)
    if out then
      recorder:add(out)
      if user_on_event then user_on_event(out) end
    end
  end
  local input = json.decode(row.input)
  local ex = machine:start(input, start_opts)
  -- the same execution: its ARN and start time as recorded (nothing has run yet)
  ex.arn, ex.start_time = row.arn, row.start_date
  ex.ctx_execution, ex.ctx_machine = context.execution(ex)
  if rp.redrives > 0 and not machine.express then
    json.set(ex.ctx_execution, "RedriveCount", rp.redrives)
  end
  rp.x, rp.on_replayed_task = ex, count_replayed
  ex.replay = rp
  ex.child_store = M.children(s, rp.redrives, false)
  -- its history is the recorded one (the engine's own numbers the replayed events again);
  -- { raw = true } still gives the engine's, with Lua values
  local engine_history = ex.history
  ex.history = function(self, hopts)
    if hopts and hopts.raw then return engine_history(self, hopts) end
    recorder:flush()
    return assert(s:history(row))
  end
  ex.store, ex.store_record, ex.store_recorder = s, row, recorder
  if opts.store_notice then
    opts.store_notice:write(string.format("emrflow: %s execution %s from %s\n",
      redrive and "redriving" or "resuming", row.name, s.path))
  end
  return ex
end

M.Recorder = Recorder

return M
