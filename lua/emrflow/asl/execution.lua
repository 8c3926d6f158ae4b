-- emrflow.asl.execution: the life of an execution, in one place.
--
--   start(machine, input, opts) --> execution: its id (unique), name, ARN, input checks,
--     history recorder and quota, the root frame, the scheduler task running it;
--   the run: ExecutionStarted, the machine's TimeoutSeconds watchdog, the program, the output
--     size check, the end event (ExecutionSucceeded / Failed / Aborted / TimedOut);
--   Execution methods: wait, step, done, stop, history, describe.

local json = require "emrflow.json"
local scheduler = require "emrflow.scheduler"
local history = require "emrflow.asl.history"
local context = require "emrflow.asl.context"
local common = require "emrflow.asl.common"
local rt = require "emrflow.asl.runtime"
local resolve = require "emrflow.asl.resolve"
local query = require "emrflow.asl.query"

local M = {}

--- Events a Standard execution may have (asl-semantics.md §12); machine:start option
-- history_limit = N | false overrides it.
M.HISTORY_LIMIT = 25000

local PAYLOAD_LIMIT = common.PAYLOAD_LIMIT
local fmt = string.format
local encode = json.encode
local raise, normalize, to_data = common.raise, common.normalize, common.to_data
local emit, new_frame, run_program = rt.emit, rt.new_frame, rt.run_program

local Execution = {}
Execution.__index = Execution
M.Execution = Execution

-- A UUID-like unique id (version 4 layout) from the system's random source, else math.random.
local function new_id()
  local bytes
  local f = io.open("/dev/urandom", "rb")
  if f then
    bytes = f:read(16)
    f:close()
  end
  if not bytes or #bytes ~= 16 then
    local t = {}
    for i = 1, 16 do t[i] = string.char(math.random(0, 255)) end
    bytes = table.concat(t)
  end
  local b = { bytes:byte(1, 16) }
  b[7] = (b[7] & 0x0f) | 0x40
  b[9] = (b[9] & 0x3f) | 0x80
  local hex = string.format(string.rep("%02x", 16), table.unpack(b))
  return fmt("%s-%s-%s-%s-%s", hex:sub(1, 8), hex:sub(9, 12), hex:sub(13, 16), hex:sub(17, 20), hex:sub(21))
end
M.new_id = new_id

local counter = 0
local function new_name()
  counter = counter + 1
  return fmt("exec-%d-%04d-%d", os.time(), math.random(0, 9999), counter)
end

local function uses_jsonata(def)
  if def.QueryLanguage == "JSONata" then return "the state machine" end
  local function scan(states)
    for name, s in pairs(states) do
      if type(s) == "table" then
        if s.QueryLanguage == "JSONata" then return "state '" .. name .. "'" end
        local subs = {}
        if s.Branches then for _, br in ipairs(s.Branches) do subs[#subs + 1] = br end end
        if s.ItemProcessor then subs[#subs + 1] = s.ItemProcessor end
        if s.Iterator then subs[#subs + 1] = s.Iterator end
        for _, sub in ipairs(subs) do
          local found = type(sub.States) == "table" and scan(sub.States)
          if found then return found end
        end
      end
    end
    return nil
  end
  return scan(def.States)
end
M.uses_jsonata = uses_jsonata

local function finish_execution(x, status, output, err)
  x.status = status
  x.stop_time = x.s:now()
  local frame = x.frame
  if status == "SUCCEEDED" then
    x.output = output
    emit(frame, "ExecutionSucceeded", "executionSucceededEventDetails",
      x.keep and { output = output } or nil)
  else
    x.error = err and err.Error
    x.cause = err and err.Cause
    local etype = status == "FAILED" and "ExecutionFailed" or status == "ABORTED" and "ExecutionAborted"
      or "ExecutionTimedOut"
    local key = etype:sub(1, 1):lower() .. etype:sub(2) .. "EventDetails"
    emit(frame, etype, key, x.keep and { error = x.error, cause = x.cause } or nil)
  end
end

local function run_execution(x)
  local frame = x.frame
  emit(frame, "ExecutionStarted", "executionStartedEventDetails",
    x.keep and { input = x.input, roleArn = x.role_arn } or nil)
  if x.stop_requested then
    return finish_execution(x, "ABORTED", nil, x.stop_requested)
  end
  local watchdog
  local timeout = x.machine.timeout_s
  if timeout and x.replay then timeout = x.replay:timeout(timeout) end -- store hook: from the recorded start
  if timeout then
    local me = select(2, scheduler.current())
    watchdog = x.s:spawn(function()
      scheduler.sleep(timeout)
      if not me:done() then
        x.s:cancel(me, { Error = "States.Timeout", timed_out = true })
      end
    end)
  end
  local ok, res = pcall(function()
    if x.machine.jsonata and not query.get("JSONata") then
      raise("States.Runtime", "JSONata is not supported yet (" .. x.machine.jsonata
        .. " uses QueryLanguage JSONata)")
    end
    if x.input_error then error(x.input_error, 0) end
    local out = run_program(frame, x.machine.program, x.input)
    -- json.size first: it makes no text, and stops counting past the quota
    local n = (type(out) == "table" or type(out) == "string") and json.size(out, PAYLOAD_LIMIT)
    if n and n > PAYLOAD_LIMIT then
      local eok, text = pcall(encode, out)
      if eok and #text > PAYLOAD_LIMIT then
        raise("States.DataLimitExceeded",
          "The execution output exceeds the maximum number of bytes service limit.")
      end
    end
    return out
  end)
  if watchdog and not watchdog:done() then x.s:cancel(watchdog, { aborted = true }) end
  if ok then
    finish_execution(x, "SUCCEEDED", res)
  else
    local err = normalize(res)
    if err.timed_out then
      finish_execution(x, "TIMED_OUT", nil, nil)
    elseif err.aborted then
      finish_execution(x, "ABORTED", nil, err)
    else
      finish_execution(x, "FAILED", nil, err)
    end
  end
end

-- The events a run of a program is likely to record at least (two per state and two for the
-- execution), for its recorder's arrays; kept per program.
local hints = setmetatable({}, { __mode = "k" })
local function events_hint(program)
  if type(program) ~= "table" or type(program.states) ~= "table" then return 0 end
  local n = hints[program]
  if not n then
    n = 2
    for _ in pairs(program.states) do n = n + 2 end
    hints[program] = n
  end
  return n
end

-- The options machine:start takes (doc/CONTRACTS.md, "Execution options"): a name not here
-- is refused, so that a typo (`clokc =`) is not silently a run on the default clock.
M.OPTIONS = {}
for _, k in ipairs(common.words [[
  name clock scheduler history history_limit on_event start_time role_arn handlers mocks
  on_child_execution
  execution_id event_sink store store_notice store_options source_path machine
  definition_path machine_name
  emr poll region endpoint_url profile error_prefix cancel_on_timeout cancel_wait_s on_emr_event
  type account resources]]) do
  M.OPTIONS[k] = true
end
-- The lines above: the engine's own; the store's (emrflow.store passes its hooks and keeps
-- the rest for resume); the command line's, for its extensions; the EMR on EKS
-- integration's, which every machine may be given (the CLI does); and asl.load's, which
-- asl.run passes in the same table. An integration registered with asl.register_resource
-- that reads options of its own (ctx.options.<name>) names them in impl.options = { ... }.

-- Does a registered integration one of the machine's Task states resolves to take option k?
local function integration_option(machine, k)
  local lookup = machine.resolve
  if type(lookup) ~= "function" then return false end
  local function scan(def)
    if type(def) ~= "table" or type(def.States) ~= "table" then return false end
    for _, st in pairs(def.States) do
      if type(st) == "table" then
        if st.Type == "Task" then
          local ok, impl = pcall(lookup, st.Resource)
          local names = ok and type(impl) == "table" and impl.options
          if type(names) == "table" then
            if names[k] then return true end
            for _, n in ipairs(names) do if n == k then return true end end
          end
        end
        for _, br in ipairs(type(st.Branches) == "table" and st.Branches or {}) do
          if scan(br) then return true end
        end
        if scan(st.ItemProcessor or st.Iterator) then return true end
      end
    end
    return false
  end
  return scan(machine.definition)
end

-- The edit distance of a and b (insertions, deletions, substitutions), for suggestions.
local function distance(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

-- The known option closest to k (at most 2 edits away), or nil.
local function suggestion(k)
  local best, best_d = nil, 3
  for name in pairs(M.OPTIONS) do
    local d = distance(k, name)
    if d < best_d or (d == best_d and best and name < best) then best, best_d = name, d end
  end
  return best
end

-- Raises (caller misuse) naming the first unknown option of opts, in name order.
local function check_options(machine, opts)
  local unknown = {}
  for k in pairs(opts) do
    if not M.OPTIONS[k] then unknown[#unknown + 1] = k end
  end
  if #unknown == 0 then return end
  table.sort(unknown, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(unknown) do
    if type(k) ~= "string" or not integration_option(machine, k) then
      local near = type(k) == "string" and suggestion(k)
      local hint = near and ("did you mean '" .. near .. "'?")
      if not hint then
        local known = {}
        for name in pairs(M.OPTIONS) do known[#known + 1] = name end
        table.sort(known)
        hint = "the options are " .. table.concat(known, ", ")
      end
      error(fmt("emrflow.asl: unknown machine:start option %s (%s)", type(k) == "string"
        and ("'" .. k .. "'") or tostring(k), hint), 4)
    end
  end
end

-- start(machine, input, opts) --> execution
function M.start(machine, input, opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error("emrflow.asl: machine:start options must be a table, got " .. type(opts), 3)
  end
  check_options(machine, opts)
  local s = opts.scheduler
  local clock = opts.clock
  if type(clock) == "table" then s, clock = clock, nil end
  if not s then
    if clock ~= nil and clock ~= "virtual" and clock ~= "real" then
      error("emrflow.asl: clock must be 'virtual', 'real' or a scheduler, got " .. tostring(clock), 3)
    end
    s = scheduler.new { clock = clock or "real", start = opts.start_time }
  end
  local name = opts.name or new_name()
  local problem = common.name_problem(name)
  if problem then
    error(fmt("emrflow.asl: execution name must be %s; %s %s", common.NAME_RULE,
      type(name) == "string" and ("'" .. name:gsub("%c", "?") .. "'") or "the name", problem), 3)
  end
  if input == nil then input = json.object {} end
  local id = opts.execution_id
  if id ~= nil and (type(id) ~= "string" or id == "") then
    error("emrflow.asl: execution_id must be a non-empty string", 3)
  end
  local x = setmetatable({
    machine = machine, s = s, name = name, status = "RUNNING",
    options = opts, region = machine.region, entries = 0,
    role_arn = opts.role_arn or machine.role_arn,
    id = id or new_id(),
    invocations = {},
    consts = {}, -- constant objects of its templates, made once per execution (payload.lua)
  }, Execution)
  x.handlers = resolve.handlers(opts.handlers)
  x.mocks = resolve.mocks(opts.mocks, machine.name)
  if machine.express then
    x.arn = machine.arn:gsub(":stateMachine:", ":express:") .. ":" .. name .. ":"
      .. fmt("%08x-%04x-4%03x-a%03x-%012x",
      math.random(0, 0xffffffff), math.random(0, 0xffff), math.random(0, 0xfff), math.random(0, 0xfff),
      math.random(0, 0xffffffffffff))
  else
    x.arn = machine.arn:gsub(":stateMachine:", ":execution:") .. ":" .. name
  end
  x.handle = x
  local ok, data = pcall(to_data, input, "the execution input")
  if ok then
    x.input = data
    if (json.size(data, PAYLOAD_LIMIT) or #encode(data)) > PAYLOAD_LIMIT then
      x.input_error = { Error = "States.DataLimitExceeded",
        Cause = "The execution input exceeds the maximum number of bytes service limit." }
    end
  else
    error("emrflow.asl: " .. tostring(type(data) == "table" and data.Cause or data), 3)
  end
  x.start_time = s:now()
  local keep = opts.history ~= false
  local limit = opts.history_limit
  if limit == nil then limit = (not machine.express) and M.HISTORY_LIMIT or false end
  if limit ~= false and (math.type(limit) ~= "integer" or limit < 1) then
    error("emrflow.asl: history_limit must be a positive integer or false", 3)
  end
  -- a virtual clock is read directly (one call less per event)
  local now = s.virtual and function() return s.vnow end or function() return s:now() end
  x.rec = history.new { enabled = keep, now = now, on_event = opts.on_event,
    limit = limit or nil, size_hint = events_hint(machine.program) }
  x.rec.sink = keep and opts.event_sink or nil -- store hook: events without a table each
  x.keep = keep or opts.on_event ~= nil
  x.ctx_execution, x.ctx_machine = context.execution(x)
  x.frame = new_frame(x, {}, 0, false)
  x.task = s:spawn(run_execution, x)
  return x
end

local function result_of(x)
  if x.status == "SUCCEEDED" then return x.status, x.output end
  return x.status, { Error = x.error, Cause = x.cause }
end

--- Drives the scheduler until the execution ends. Returns status, output | {Error=, Cause=}.
function Execution:wait()
  if self.task:done() then return result_of(self) end
  if scheduler.current() == self.s then
    scheduler.join({ self.task })
  else
    self.s:run_until(self.task)
  end
  local ok, err = self.task:result()
  if not ok then error(err, 0) end
  return result_of(self)
end

--- One scheduler step (for hosts with their own loop). Returns true while running.
function Execution:step(max_wait_s)
  if not self.task:done() then self.s:step(max_wait_s or 0) end
  return not self.task:done()
end

function Execution:done()
  return self.task:done()
end

--- Aborts the execution: in-flight work sees the error and runs its cleanup.
function Execution:stop(err, cause)
  if self.task:done() then return false end
  local e = { Error = err, Cause = cause, aborted = true }
  if not self.task.started then
    self.stop_requested = e
    return true
  end
  self.s:cancel(self.task, e)
  return true
end

--- The history as GetExecutionHistory shapes it (payloads as JSON text), or with
-- { raw = true } with payloads as Lua values.
function Execution:history(opts)
  if opts and opts.raw then return self.rec:expanded() end
  return self.rec:materialize()
end

function Execution:event_types()
  return self.rec:types()
end

function Execution:describe()
  local d = { executionArn = self.arn, name = self.name, status = self.status,
    startDate = self.start_time, stopDate = self.stop_time, input = self.input }
  if self.status == "SUCCEEDED" then d.output = self.output else
    d.error, d.cause = self.error, self.cause
  end
  return d
end

return M
