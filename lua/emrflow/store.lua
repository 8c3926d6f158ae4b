--- emrflow.store: the execution store, durable executions in one SQLite file.
--
--   local store = require "emrflow.store"
--   local s, err = store.open([path [, { busy_timeout = ms }]])  -- nil, err on a bad store
--   local x, err = s:create_execution{ arn =, name =, machine_name =, machine_arn =,
--                                      definition =, input =, ... }  -- ExecutionAlreadyExists
--   s:append_events(x, events)       -- one transaction
--   s:record_effect(x, key, kind, data); s:complete_effect(x, key, result); s:effects(x)
--   s:set_status(x, status, { output =, error =, cause =, stop_date = })
--   s:executions{ status =, machine_name =, limit = }   -- ListExecutions items, newest first
--   s:describe(x)                    -- DescribeExecution's shape
--   s:history(x [, { after =, limit = }])  -- GetExecutionHistory events
--   s:close()
--
-- x is an execution: the record create_execution returned, its ARN, its unique id, or its
-- name (unique within the store). Failures of the outside world (a locked, damaged or newer
-- store, a duplicate name, an unknown execution) return nil, err (an emrflow error whose
-- message names the store); misuse raises. Dates are epoch seconds (numbers), as AWS's JSON
-- protocol sends them; payloads are stored as JSON text.

local core = require "emrflow.core"
local json = require "emrflow.json"
local errors = require "emrflow.errors"
local events = require "emrflow.store.events"
-- loaded with the store (not at the first start, where a run would pay for it)
local recorder = require "emrflow.store.recorder"
local digest_hex = require("emrflow.digest").hex

local M = {}

M.SCHEMA_VERSION = core.store.schema_version

-- A redrive is allowed within 14 days of the stop (AWS RedriveExecution).
M.REDRIVE_WINDOW = 14 * 24 * 3600

local REDRIVABLE = { FAILED = true, ABORTED = true, TIMED_OUT = true }

--- The store used when none is named: $EMRFLOW_STORE, else
-- $XDG_DATA_HOME/emrflow/executions.db, else ~/.local/share/emrflow/executions.db.
-- getenv (default os.getenv) is for tests.
function M.default_path(getenv)
  getenv = getenv or os.getenv
  local explicit = getenv("EMRFLOW_STORE")
  if explicit and explicit ~= "" then return explicit end
  local xdg = getenv("XDG_DATA_HOME")
  if xdg and xdg ~= "" then return xdg .. "/emrflow/executions.db" end
  local home = getenv("HOME")
  if not home or home == "" then
    return nil, errors.new { code = "cannot_open",
      message = "no execution store: set EMRFLOW_STORE, XDG_DATA_HOME or HOME" }
  end
  return home .. "/.local/share/emrflow/executions.db"
end

local Store = {}
Store.__index = Store

-- The C error, its message prefixed with the store's path.
local function store_error(self_or_path, err)
  local path = type(self_or_path) == "table" and self_or_path.path or self_or_path
  return errors.new { code = err.code, message = "execution store " .. path .. " " .. err.message,
    path = path }
end

--- Opens (creating when needed, with its directories) the store at path (default:
-- M.default_path()). opts.busy_timeout: milliseconds to wait for another process's lock
-- (default 5000). Returns the store, or nil, err.
function M.open(path, opts)
  opts = opts or {}
  if path == nil then
    local derr
    path, derr = M.default_path(opts.getenv)
    if not path then return nil, derr end
  end
  if type(path) ~= "string" or path == "" then
    error("emrflow.store.open: path must be a non-empty string", 2)
  end
  local ok, err = core.store.make_parent_dirs(path)
  if not ok then return nil, store_error(path, err) end
  local db, oerr = core.store.open(path, opts.busy_timeout or 5000)
  if not db then return nil, store_error(path, oerr) end
  return setmetatable({ db = db, path = path }, Store)
end

-- Runs a catalogue statement; rows, changes, last rowid or nil, err (the error names the
-- store).
local function query(self, name, ...)
  local rows, changes, rowid = self.db:query(name, ...)
  if not rows then return nil, store_error(self, changes) end
  return rows, changes, rowid
end

-- A JSON value as the JSON text stored for it (a Lua string is a JSON string).
local function encode_value(v)
  if v == nil then return nil end
  return json.encode(v)
end

-- The definition: ASL JSON text as it is, or a table encoded.
local function definition_text(d)
  if type(d) == "string" then return d end
  return json.encode(d)
end

local function decode_text(text)
  if text == nil then return nil end
  return json.decode(text)
end

-- A random unique id (RFC 4122 version 4 form) from the system's random source.
local function new_uid()
  local f = io.open("/dev/urandom", "rb")
  local bytes = f and f:read(16)
  if f then f:close() end
  if not bytes or #bytes < 16 then
    local t = {}
    for i = 1, 16 do t[i] = string.char(math.random(0, 255)) end
    bytes = table.concat(t)
  end
  local b = { bytes:byte(1, 16) }
  b[7] = (b[7] & 0x0f) | 0x40
  b[9] = (b[9] & 0x3f) | 0x80
  return string.format("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
    table.unpack(b))
end
M.new_uid = new_uid

-- Dates are kept to the millisecond, as Step Functions gives them.
local function ms(t)
  return math.floor(t * 1000 + 0.5) / 1000
end

local function now()
  return ms(core.now())
end

-- The stored row of x (a record, an ARN, a unique id or a name); nil, err when none.
function Store:find(x)
  local rows, err
  if type(x) == "table" and x.seq then
    rows, err = query(self, "execution_by_seq", x.seq)
  elseif type(x) ~= "string" or x == "" then
    error("emrflow.store: an execution is its record, ARN, unique id or name", 2)
  elseif x:find("^arn:") then
    rows, err = query(self, "execution_by_arn", x)
  else
    rows, err = query(self, "executions_by_name", x)
    if rows and #rows > 1 then
      local arns = {}
      for i, r in ipairs(rows) do arns[i] = r.arn end
      return nil, errors.new { code = "ambiguous", message = "the name '" .. x
        .. "' belongs to executions of " .. #rows .. " state machines; give its ARN: "
        .. table.concat(arns, ", ") }
    end
    if rows and #rows == 0 then
      rows, err = query(self, "execution_by_uid", x)
    end
  end
  if not rows then return nil, err end
  if #rows == 0 then
    local what = type(x) == "table" and (x.arn or tostring(x.seq)) or x
    return nil, errors.new { code = "ExecutionDoesNotExist", aws_code = "ExecutionDoesNotExist",
      message = "Execution Does Not Exist: '" .. what .. "' in the execution store " .. self.path }
  end
  return rows[1]
end

-- The seq of x, looking it up unless x is a record.
local function seq_of(self, x)
  if type(x) == "table" and x.seq then return x.seq end
  local row, err = self:find(x)
  if not row then return nil, err end
  return row.seq
end

-- The id of a definition text in the definitions table, adding it when it is new (in the
-- caller's transaction). A text is found by its content key (its length and a 64-bit
-- hash: core.store.content_key, a few times cheaper than SHA-256 on a big definition) and
-- compared with the stored one; a text whose key another text holds goes by its SHA-256.
-- The key of the last text is kept, and so is the id of the last text this store recorded
-- in a transaction of its own (definitions are never deleted): a user's store records run
-- after run of one machine, whose text is the same string.
local last_text, last_key

local function definition_id(self, text)
  if text == self.known_text then return self.known_id end
  local key = last_key
  if text ~= last_text then
    key = core.store.content_key(text)
    last_text, last_key = text, key
  end
  local rows, err = query(self, "definition_by_digest", key, text)
  if not rows then return nil, err end
  if rows[1] and rows[1].same ~= 1 then
    key = digest_hex("SHA-256", text)
    rows, err = query(self, "definition_by_digest", key, text)
    if not rows then return nil, err end
  end
  if rows[1] then return rows[1].id end
  local inserted, changes, id = query(self, "insert_definition", key, text)
  if not inserted then return nil, changes end
  return id
end

--- Records a new execution. Fields: arn, name, machine_name, machine_arn, definition (text
-- or table), input (a JSON value) required; uid (default: a new one), source_path,
-- start_date (default now), endpoint, region, options (table), status (default RUNNING).
-- Returns the stored record, or nil, err (code ExecutionAlreadyExists for a name already
-- used by this state machine).
-- The writes of create_execution, in its transaction.
local function insert_execution(self, r)
  local text = definition_text(r.definition)
  local def_id, derr = definition_id(self, text)
  if not def_id then return nil, derr end
  self.pending_text, self.pending_id = text, def_id
  local rows, err = self.db:query("insert_execution", r.arn, r.uid or new_uid(), r.name,
    r.machine_name, r.machine_arn, def_id, r.source_path,
    encode_value(r.input), r.status or "RUNNING", r.start_date or now(), r.endpoint, r.region,
    encode_value(r.options))
  if rows then return text end
  if err.code == "constraint" then
    return nil, errors.new { code = "ExecutionAlreadyExists", aws_code = "ExecutionAlreadyExists",
      message = "Execution Already Exists: '" .. r.arn .. "' (names are unique per state machine "
        .. "in the execution store " .. self.path .. ")" }
  end
  return nil, store_error(self, err)
end

function Store:create_execution(r)
  for _, k in ipairs { "arn", "name", "machine_name", "machine_arn" } do
    if type(r[k]) ~= "string" or r[k] == "" then
      error("emrflow.store: create_execution needs " .. k .. " (a string)", 2)
    end
  end
  if r.definition == nil or r.input == nil then
    error("emrflow.store: create_execution needs definition and input", 2)
  end
  local outer = self.db:in_transaction()
  local text, err = self:transaction(insert_execution, self, r)
  if not text then return nil, err end
  if not outer then   -- committed: the definition's row is there for good
    self.known_text, self.known_id = self.pending_text, self.pending_id
  end
  self.pending_text, self.pending_id = nil, nil
  -- the record as find() reads it, but for the definition's text, already at hand (reading a
  -- big definition back would cost as much as a run)
  local rows, ferr = query(self, "execution_by_arn_no_text", r.arn)
  if not rows then return nil, ferr end
  local row = rows[1]
  if not row then return self:find(r.arn) end
  row.definition = text
  return row
end

-- Inserts events (a list, or an emrflow.store.events group) as one group row; the caller
-- holds the transaction. True or nil, err. The group must continue the recorded history:
-- its first id follows the last recorded one (its ids are consecutive), so no event is ever
-- recorded twice or skipped.
local function insert_events(self, seq, list)
  local group = list
  if getmetatable(list) ~= events.Group then
    if #list == 0 then return true end
    group = events.group()
    for i = 1, #list do
      if math.type(list[i].id) ~= "integer" then
        error("emrflow.store: append_events takes events with integer ids", 4)
      end
      group:add(list[i])
    end
  end
  if group.n == 0 then return true end
  local rows, err = query(self, "last_event", seq)
  if not rows then return nil, err end
  local last = rows[1].id or 0
  local first = group.first
  if first ~= last + 1 then
    return nil, errors.new { code = first <= last and "duplicate_event" or "event_gap",
      message = "execution store " .. self.path .. ": event " .. first
        .. (first <= last and " is already recorded" or " does not follow the last recorded event")
        .. " (the history holds events 1 to " .. last .. ")" }
  end
  -- the group's bytes are packed in C memory handed to SQLite (no copy on the Lua heap)
  local ok, strings, values = pcall(group.texts, group)
  local done, ierr
  if ok then
    ok, done, ierr = pcall(self.db.insert_group, self.db, seq, first, group.last, strings, values,
      group.fields, group.n)
  else
    done = strings
  end
  if not ok then
    return nil, errors.new { code = "validation",
      message = "execution store: an event cannot be recorded: " .. tostring(done) }
  end
  if not done then return nil, store_error(self, ierr) end
  return true
end

--- Runs fn(...) inside one transaction (or inside the caller's, when one is open): committed
-- when fn returns a true value, rolled back when it returns nil, err or raises.
function Store:transaction(fn, ...)
  if self.db:in_transaction() then return fn(...) end
  local ok, err = query(self, "begin")
  if not ok then return nil, err end
  local pok, res, ferr = pcall(fn, ...)
  if pok and res then
    local cok, cerr = query(self, "commit")
    if not cok then
      self.db:query("rollback")
      return nil, cerr
    end
    return res
  end
  self.db:query("rollback")
  if not pok then error(res, 0) end
  return nil, ferr
end

-- The writes of one append_events call, in its transaction.
local function write_group(self, seq, list, with)
  local ok, err = insert_events(self, seq, list)
  if not ok then return nil, err end
  local effect = with and with.effect
  if effect then
    ok, err = query(self, "put_effect", seq, effect.key, effect.kind, encode_value(effect.data), now())
    if not ok then return nil, err end
  end
  local st = with and with.status
  if st then
    ok, err = query(self, "set_status", seq, st.status, st.stop_date or now(), encode_value(st.output),
      st.error, st.cause)
    if not ok then return nil, err end
  end
  return true
end

--- Appends history events (as the engine's history gives them: id, previousEventId,
-- timestamp, type, <type>EventDetails with JSON values; a list, or a group
-- made with emrflow.store.events.group()) in one transaction.
-- with (optional) adds writes to the same transaction: with.effect = { key, kind, data }
-- (record_effect's), with.status = { status, stop_date, output, error, cause } (the end of
-- the execution). Returns true once all is committed, or nil, err (and nothing is recorded).
function Store:append_events(x, list, with)
  local seq, err = seq_of(self, x)
  if not seq then return nil, err end
  return self:transaction(write_group, self, seq, list, with)
end

--- The id of the last recorded event of x (0 when none).
function Store:last_event_id(x)
  local seq, err = seq_of(self, x)
  if not seq then return nil, err end
  local rows, qerr = query(self, "last_event", seq)
  if not rows then return nil, qerr end
  return rows[1].id or 0
end

--- Records an external effect before it happens: key identifies it within the execution
-- (a Task attempt's path, a timer), kind says what it is ("task", "timer", ...), data is a
-- JSON value (a request with its ClientToken, a deadline). Recording the same key
-- again replaces it.
function Store:record_effect(x, key, kind, data)
  local seq, err = seq_of(self, x)
  if not seq then return nil, err end
  local rows, qerr = query(self, "put_effect", seq, key, kind, encode_value(data), now())
  if not rows then return nil, qerr end
  return true
end

--- Records what an effect produced (a job's id ...) once it is known.
function Store:complete_effect(x, key, result)
  local seq, err = seq_of(self, x)
  if not seq then return nil, err end
  local rows, qerr = query(self, "complete_effect", seq, key, encode_value(result))
  if not rows then return nil, qerr end
  return true
end

local function effect_of(row)
  return { key = row.key, kind = row.kind, data = decode_text(row.data),
    result = decode_text(row.result), created = row.created }
end

--- The effects of x: a table key -> { key, kind, data, result, created }, and their list
-- in the order they were recorded.
function Store:effects(x)
  local seq, err = seq_of(self, x)
  if not seq then return nil, err end
  local rows, qerr = query(self, "effects", seq)
  if not rows then return nil, qerr end
  local by_key, list = {}, {}
  for i, row in ipairs(rows) do
    local e = effect_of(row)
    by_key[e.key] = e
    list[i] = e
  end
  return by_key, list
end

--- One effect of x by key, or nil (and no error) when none was recorded.
function Store:effect(x, key)
  local seq, err = seq_of(self, x)
  if not seq then return nil, err end
  local rows, qerr = query(self, "effect", seq, key)
  if not rows then return nil, qerr end
  return rows[1] and effect_of(rows[1]) or nil
end

local FINAL = { SUCCEEDED = true, FAILED = true, TIMED_OUT = true, ABORTED = true }

--- Sets the status of x. A final status (SUCCEEDED, FAILED, TIMED_OUT, ABORTED) records
-- the stop date (opts.stop_date, default now) and opts.output or opts.error / opts.cause.
function Store:set_status(x, status, opts)
  if type(status) ~= "string" or not (FINAL[status] or status == "RUNNING") then
    error("emrflow.store: unknown execution status " .. tostring(status), 2)
  end
  opts = opts or {}
  local seq, err = seq_of(self, x)
  if not seq then return nil, err end
  local stop = FINAL[status] and (opts.stop_date or now()) or nil
  local rows, qerr = query(self, "set_status", seq, status, stop, encode_value(opts.output),
    opts.error, opts.cause)
  if not rows then return nil, qerr end
  return true
end

--- Marks x as redriven: RUNNING again, redriveCount + 1, redriveDate = date (default now).
function Store:mark_redriven(x, date)
  local seq, err = seq_of(self, x)
  if not seq then return nil, err end
  local rows, qerr = query(self, "set_redriven", seq, date or now())
  if not rows then return nil, qerr end
  return true
end

--- Replaces the options recorded with x (a JSON value).
function Store:set_options(x, options)
  local seq, err = seq_of(self, x)
  if not seq then return nil, err end
  local rows, qerr = query(self, "set_options", seq, encode_value(options))
  if not rows then return nil, qerr end
  return true
end

-- A ListExecutions item (AWS's member order).
local function list_item(row)
  return json.object_of(
    "executionArn", row.arn,
    "stateMachineArn", row.machine_arn,
    "name", row.name,
    "status", row.status,
    "startDate", row.start_date,
    "stopDate", row.stop_date,
    "redriveCount", row.redrive_count,
    "redriveDate", row.redrive_date)
end

-- A Distributed Map's child executions belong to the state machine "<machine>/<label>" (a
-- state machine's own name never holds a "/", as on AWS).
local function is_child(row)
  return row.machine_name:find("/", 1, true) ~= nil
end

-- The rows list_executions gives that keep(row) accepts, at most limit of them: asked for in
-- growing batches, so that a limit is met however many rows keep skips.
local function list_kept(self, status, machine_name, limit, keep)
  local fetch = limit
  while true do
    local rows, err = query(self, "list_executions", status, machine_name, fetch)
    if not rows then return nil, err end
    local list = json.array {}
    for _, row in ipairs(rows) do
      if keep(row) then
        list[#list + 1] = list_item(row)
        if limit and #list >= limit then return list end
      end
    end
    if not fetch or #rows < fetch then return list end
    fetch = fetch * 4
  end
end

--- Executions newest first, as ListExecutions items. filter: status (RUNNING, SUCCEEDED,
-- FAILED, TIMED_OUT, ABORTED), machine_name, limit, map_run (a Map Run's ARN: its child
-- executions; without it, as on AWS, child executions are not listed).
function Store:executions(filter)
  filter = filter or {}
  if filter.status ~= nil and not (FINAL[filter.status] or filter.status == "RUNNING") then
    return nil, errors.new { code = "validation", message = "unknown status '"
      .. tostring(filter.status) .. "': RUNNING, SUCCEEDED, FAILED, TIMED_OUT or ABORTED" }
  end
  local machine_name, keep = filter.machine_name
  if filter.map_run ~= nil then
    local run = filter.map_run
    machine_name = type(run) == "string" and run:match(":mapRun:(.+):[^:]+$")
    if not machine_name then
      return nil, errors.new { code = "validation", message = "'" .. tostring(run)
        .. "' is not a Map Run ARN (arn:...:mapRun:<state machine>/<label>:<id>)" }
    end
    local prefix = run:gsub(":mapRun:", ":execution:", 1) .. "-"
    keep = function(row) return row.arn:sub(1, #prefix) == prefix end
  elseif machine_name == nil then
    keep = function(row) return not is_child(row) end
  else
    keep = function() return true end
  end
  return list_kept(self, filter.status, machine_name, filter.limit, keep)
end

--- The Map Runs of execution x (its Distributed Map states' runs), oldest first, as
-- ListMapRuns items: executionArn, mapRunArn, stateMachineArn, startDate, stopDate. Read
-- from x's history: each MapRunStarted, and the event that ended the run (it follows the
-- MapRunStarted event directly: the child executions' events are in their own histories).
function Store:map_runs(x)
  local row, err = self:find(x)
  if not row then return nil, err end
  local events_list, herr = self:history(row)
  if not events_list then return nil, herr end
  local list, by_arn, by_event = json.array {}, {}, {}
  for _, e in ipairs(events_list) do
    local d = e.mapRunStartedEventDetails
    if e.type == "MapRunStarted" and d and d.mapRunArn then
      local item = by_arn[d.mapRunArn]
      if not item then
        item = json.object_of("executionArn", row.arn, "mapRunArn", d.mapRunArn,
          "stateMachineArn", (d.mapRunArn:gsub(":mapRun:", ":stateMachine:", 1):gsub(":[^:]*$", "")),
          "startDate", e.timestamp)
        by_arn[d.mapRunArn] = item
        list[#list + 1] = item
      end
      item.stopDate = nil -- a redrive runs it again
      by_event[e.id] = item
    elseif e.type:match("^MapRun") and by_event[e.previousEventId] then
      by_event[e.previousEventId].stopDate = e.timestamp
    end
  end
  return list
end

-- Why x can or cannot be redriven (DescribeExecution's redriveStatus and its reason).
local function redrive_status(row, at)
  if not REDRIVABLE[row.status] then
    return "NOT_REDRIVABLE", "Execution is " .. row.status .. " and cannot be redriven"
  end
  if row.stop_date and at - row.stop_date > M.REDRIVE_WINDOW then
    return "NOT_REDRIVABLE", "Execution stopped more than 14 days ago and cannot be redriven"
  end
  return "REDRIVABLE"
end
M.redrive_status = redrive_status

local INCLUDED = json.object_of("included", true)

-- The Map Run a child execution belongs to (recorded in its options), or nil.
local function map_run_of(row)
  if not (row.options and is_child(row)) then return nil end
  local ok, options = pcall(json.decode, row.options)
  return ok and type(options) == "table" and options.mapRunArn or nil
end

--- x as DescribeExecution shows it; also returns the stored record.
function Store:describe(x)
  local row, err = self:find(x)
  if not row then return nil, err end
  local rstatus, reason = redrive_status(row, now())
  local map_run = map_run_of(row)
  if map_run and rstatus == "REDRIVABLE" then
    -- as on AWS: a child execution runs again when its parent (its Map Run) is redriven
    rstatus, reason = "REDRIVABLE_BY_MAP_RUN", "redrive its parent execution to run it again"
  end
  local d = json.object_of(
    "executionArn", row.arn,
    "stateMachineArn", row.machine_arn,
    "name", row.name,
    "status", row.status,
    "startDate", row.start_date,
    "stopDate", row.stop_date,
    "input", row.input,
    "inputDetails", INCLUDED,
    "output", row.output,
    "outputDetails", row.output and INCLUDED or nil,
    "mapRunArn", map_run,
    "error", row.error,
    "cause", row.cause,
    "redriveCount", row.redrive_count,
    "redriveDate", row.redrive_date,
    "redriveStatus", rstatus,
    "redriveStatusReason", reason)
  return d, row
end

--- The events of x as GetExecutionHistory gives them, oldest first. opts.after: only the
-- events after that id; opts.limit: at most that many.
function Store:history(x, opts)
  opts = opts or {}
  local seq, err = seq_of(self, x)
  if not seq then return nil, err end
  local after = opts.after or 0
  local rows, qerr = query(self, "events", seq, after)
  if not rows then return nil, qerr end
  local list = json.array {}
  for _, r in ipairs(rows) do
    local ok, derr = pcall(events.decode, r.data, after, list)
    if not ok then
      return nil, errors.new { code = "corrupt", message = "execution store " .. self.path
        .. ": events " .. r.first_id .. " to " .. r.last_id .. " cannot be read: " .. tostring(derr) }
    end
    if opts.limit and #list >= opts.limit then break end
  end
  if opts.limit then
    for i = #list, opts.limit + 1, -1 do list[i] = nil end
  end
  return list
end

--- Starts an execution of machine recorded in this store: machine:start(input, opts)'s
-- execution, its events, effects and end written here as it runs (emrflow.store.recorder).
-- Raises ExecutionAlreadyExists when opts.name is taken for this state machine.
function Store:start(machine, input, opts)
  return recorder.start(self, machine, input, opts)
end

-- On the virtual clock, a resumed or redriven execution goes on from the time its record
-- had reached (a redrive: from now, if later), not from its start, so that its new events
-- never come before the recorded ones. Recorded deadlines (Wait, back-off) still hold: they
-- are absolute. opts as given when the caller chose the start or brings its own scheduler.
local function clock_from_record(self, x, opts, redrive)
  if type(opts) ~= "table" or opts.clock ~= "virtual" or opts.start_time or opts.scheduler then
    return opts
  end
  local last = self:last_event_id(x)
  if not last or last == 0 then return opts end
  local tail = self:history(x, { after = last - 1 })
  local at = tail and tail[1] and tail[1].timestamp
  if type(at) ~= "number" then return opts end
  -- a millisecond after now: the ExecutionRedriven event, stamped now, comes first
  if redrive then at = math.max(at, math.ceil(now() * 1000) / 1000 + 0.001) end
  local copy = {}
  for k, v in pairs(opts) do copy[k] = v end
  copy.start_time = at
  return copy
end

--- Continues a recorded execution whose process is gone (crashed, killed): completed states
-- are not run again, a Task whose request was recorded is re-attached (same ClientToken),
-- Waits keep their deadlines; the history continues. x: its ARN, name or unique id. opts:
-- machine:start's options, plus machine (the loaded machine, for a .lua definition's Lua
-- functions; default: the recorded definition). Returns the execution, or nil, err.
function Store:resume(x, opts)
  return recorder.resume(self, x, clock_from_record(self, x, opts, false), nil)
end

--- RedriveExecution: runs a FAILED, ABORTED or TIMED_OUT execution (stopped within 14 days)
-- again from the state that failed; in a Map or Parallel only the failed iterations or
-- branches. Adds an ExecutionRedriven event, counts the redrive. Same arguments as resume.
function Store:redrive(x, opts)
  return recorder.resume(self, x, clock_from_record(self, x, opts, true),
    redrive_status)
end

Store.new_uid = new_uid

--- PRAGMA integrity_check: true, or nil, err naming the first problem.
function Store:integrity_check()
  local ok, err = self.db:integrity_check()
  if not ok then return nil, store_error(self, err) end
  return true
end

--- Closes the store (also done when it is collected, or at the end of a <close> variable).
function Store:close()
  self.db:close()
end

Store.__close = Store.close
M.Store = Store

return M
