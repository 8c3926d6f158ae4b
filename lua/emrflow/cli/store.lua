--- emrflow.cli.store: the execution store's part of the `emrflow` command (a CLI extension,
-- loaded by emrflow.cli when present).
--
--   emrflow executions [--store PATH] [--status S] [--machine-name M] [--limit N]
--       one JSON object per line, newest first, ListExecutions' item members
--   emrflow describe EXECUTION [--store PATH]     JSON shaped like DescribeExecution
--   emrflow history EXECUTION [--store PATH]      JSON lines shaped like GetExecutionHistory events
--   emrflow run ... [--store PATH | --no-store]   where `run` records its execution
--
-- EXECUTION is an execution ARN, its name (unique within the store) or its unique id. The
-- store is --store PATH, else the default (see emrflow.store.default_path). `run` records
-- in it unless --no-store; a --local run only when --store is given. When there is no
-- default store yet and none can be created (a read-only HOME), `run` warns and runs
-- without recording. Failures (no such
-- store or execution, a locked, damaged or newer store) end with exit 1.

local json = require "emrflow.json"
local store = require "emrflow.store"

local M = {}

local EXIT_OK = 0

local STORE_OPTION = { name = "store", arg = "PATH",
  help = "the execution store (default $EMRFLOW_STORE, $XDG_DATA_HOME/emrflow/executions.db, "
    .. "~/.local/share/emrflow/executions.db)" }

M.run_options = {
  STORE_OPTION,
  { name = "no-store", help = "do not record this execution in the execution store" },
}

-- An empty --store '' names no file (a variable that was not set, say): a usage error.
local function check_store_option(opts, cli)
  if opts.store == "" then cli.fail("--store needs a PATH (the execution store's file)") end
end

-- Opens the store a reading command names; a missing file is an error, not a new store.
local function open_existing(opts, cli)
  check_store_option(opts, cli)
  local path = opts.store
  if path == nil then
    local derr
    path, derr = store.default_path()
    if not path then cli.fail(derr.message) end
  end
  local f = io.open(path, "rb")
  if not f then cli.fail("no execution store at " .. path .. " (nothing has been recorded there)") end
  f:close()
  local s, err = store.open(path)
  if not s then cli.fail(err.message) end
  return s
end

local function one_execution(positional, command, cli)
  if #positional ~= 1 or positional[1] == "" then
    cli.fail(command .. " takes one EXECUTION (an execution ARN or name)")
  end
  return positional[1]
end

-- Prints one JSON value: as the CLI prints JSON when it offers that, else compact.
local function print_json(value, opts, cli, io_)
  if type(cli.print_json) == "function" then return cli.print_json(value, opts, io_) end
  io_.stdout:write(json.encode(value), "\n")
end

local function cmd_executions(opts, positional, cli, io_)
  if #positional > 0 then cli.fail("executions takes no arguments, got " .. positional[1]) end
  local limit
  if opts.limit then
    limit = math.tointeger(tonumber(opts.limit))
    if not limit or limit < 1 then cli.fail("--limit must be a positive integer") end
  end
  local s = open_existing(opts, cli)
  local list, err = s:executions { status = opts.status, machine_name = opts["machine-name"],
    limit = limit }
  s:close()
  if not list then cli.fail(err.message) end
  for _, item in ipairs(list) do io_.stdout:write(json.encode(item), "\n") end
  return EXIT_OK
end

local function cmd_describe(opts, positional, cli, io_)
  local x = one_execution(positional, "describe", cli)
  local s = open_existing(opts, cli)
  local d, err = s:describe(x)
  s:close()
  if not d then cli.fail(err.message) end
  print_json(d, opts, cli, io_)
  return EXIT_OK
end

local function cmd_history(opts, positional, cli, io_)
  local x = one_execution(positional, "history", cli)
  local s = open_existing(opts, cli)
  local events, err = s:history(x)
  s:close()
  if not events then cli.fail(err.message) end
  local out = io_.stdout
  if opts.reverse then
    for i = #events, 1, -1 do out:write(json.encode(events[i]), "\n") end
  else
    for _, e in ipairs(events) do out:write(json.encode(e), "\n") end
  end
  return EXIT_OK
end


-- The machine a .lua definition gives, loaded again from its file for its Lua functions
-- (the store checks it against the recorded definition); nil for an ASL JSON one, which the
-- store loads from the record itself.
local function lua_machine(row, cli, io_)
  if not (row.source_path and row.source_path:sub(-4) == ".lua") then return nil end
  local f = io.open(row.source_path, "rb")
  if not f then
    cli.fail("execution '" .. row.name .. "' runs the Lua definition " .. row.source_path
      .. ", which cannot be read any more")
  end
  f:close()
  local def = cli.read_definition(row.source_path, io_)
  local ok, m = pcall(require("emrflow.asl").load, def, { name = row.machine_name, region = row.region })
  if not ok then cli.fail(tostring(m)) end
  return m
end

local CLUSTER_TASKS = { createVirtualCluster = "RUNNING", deleteVirtualCluster = "TERMINATED",
  ["deleteVirtualCluster.sync"] = "TERMINATED" }

-- The virtual clusters a --local execution's record made or deleted (its Tasks' results), so
-- that the emulator of the process that continues it starts with them, as AWS would still
-- have them: { { id =, name =, state = }, ... }.
local function recorded_clusters(s, row, cli)
  local events, err = s:history(row)
  if not events then cli.fail(err.message) end
  local list, by_id = {}, {}
  for _, e in ipairs(events) do
    local d = e.taskSucceededEventDetails
    local state = d and CLUSTER_TASKS[d.resource]
    local ok, out = pcall(json.decode, d and d.output or "")
    if state and ok and type(out) == "table" and type(out.Id) == "string" then
      local vc = by_id[out.Id]
      if not vc then
        vc = { id = out.Id }
        by_id[out.Id] = vc
        list[#list + 1] = vc
      end
      if type(out.Name) == "string" then vc.name = out.Name end
      vc.state = state
    end
  end
  return list
end

-- emrflow resume | redrive EXECUTION: the recorded execution run on, with run's options
-- (what is omitted comes from the record), ending as `run` does.
local function continue(command, opts, positional, cli, io_)
  local x = one_execution(positional, command, cli)
  for _, k in ipairs { "input", "input-file", "name", "no-store" } do
    if opts[k] then
      cli.fail(command .. " runs the execution with its recorded input and name: --" .. k
        .. " does not apply")
    end
  end
  cli.check_result_file(opts)
  local s = open_existing(opts, cli)
  local row, err = s:find(x)
  if not row then cli.fail(err.message) end
  -- the options recorded at `run` fill in what this command line omits (run's options only)
  local recorded = row.options and json.decode(row.options) or {}
  if recorded.parent then
    -- a Distributed Map's child execution: the store refuses it, naming its parent, before
    -- anything is loaded (its recorded definition is the Map's processor, not a machine)
    local ex, rerr = s[command](s, row.arn)
    if not ex then cli.fail(rerr.message) end
  end
  for _, o in ipairs(cli.all_run_options()) do
    local v = recorded[o.name]
    if opts[o.name] == nil and (type(v) == "string" or v == true) then opts[o.name] = v end
  end
  if opts.region == nil and row.region then opts.region = row.region end
  opts.resuming = true -- the start hook opens no other store
  if opts["local"] then
    opts.recorded_clusters = recorded_clusters(s, row, cli)
  end
  local start = cli.start_options(opts, io_)
  -- progress goes on from the recorded events (their states, the start time), unprinted
  local rep = cli.reporter_of and cli.reporter_of(start)
  if rep then
    local recorded_events = s:history(row)
    if recorded_events then rep:seed(recorded_events) end
  end
  start.machine = lua_machine(row, cli, io_)
  start.store_notice = io_.stderr
  local machine = start.machine or require("emrflow.asl").load(row.definition,
    { name = row.machine_name, region = row.region })
  cli.preflight(machine, start)
  start.machine = machine
  local ex, rerr
  if command == "redrive" then
    ex, rerr = s:redrive(row.arn, start)
  else
    ex, rerr = s:resume(row.arn, start)
  end
  if not ex then cli.fail((rerr.aws_code and (rerr.aws_code .. ": ") or "") .. rerr.message) end
  return cli.finish(ex, opts, io_)
end

local function cmd_resume(opts, positional, cli, io_)
  return continue("resume", opts, positional, cli, io_)
end

local function cmd_redrive(opts, positional, cli, io_)
  return continue("redrive", opts, positional, cli, io_)
end

M.commands = {
  resume = {
    summary = "continue a recorded execution after a crash or kill, re-attaching to running jobs",
    usage = "emrflow resume EXECUTION [--store PATH] [run's options]",
    options = "run", -- run's options (--store among them)
    run = cmd_resume,
  },
  redrive = {
    summary = "run a FAILED, ABORTED or TIMED_OUT execution again from the state that failed",
    usage = "emrflow redrive EXECUTION [--store PATH] [run's options]",
    options = "run",
    run = cmd_redrive,
  },
  executions = {
    summary = "list the recorded executions, newest first (JSON lines)",
    usage = "emrflow executions [--store PATH] [--status S] [--machine-name M] [--limit N]",
    options = {
      STORE_OPTION,
      { name = "status", arg = "S", help = "only RUNNING, SUCCEEDED, FAILED, TIMED_OUT or ABORTED ones" },
      { name = "machine-name", arg = "M", help = "only executions of this state machine" },
      { name = "limit", arg = "N", help = "at most N executions" },
    },
    run = cmd_executions,
  },
  describe = {
    summary = "describe a recorded execution (JSON, as DescribeExecution)",
    usage = "emrflow describe EXECUTION [--store PATH] [--compact]",
    options = {
      STORE_OPTION,
      { name = "compact", help = "print compact JSON" },
    },
    run = cmd_describe,
  },
  history = {
    summary = "the history events of a recorded execution (JSON lines, as GetExecutionHistory)",
    usage = "emrflow history EXECUTION [--store PATH] [--reverse]",
    options = {
      STORE_OPTION,
      { name = "reverse", help = "newest event first" },
    },
    run = cmd_history,
  },
}

-- Options of `run` that belong to one run, not to the execution: not recorded for resume.
local NOT_RECORDED = {
  input = true, ["input-file"] = true, name = true, ["result-file"] = true, events = true,
  progress = true, quiet = true, compact = true, pretty = true, store = true, ["no-store"] = true,
  help = true, definition = true, resuming = true,
}

-- True when err says the default store could not be created: it does not exist yet and its
-- directory cannot be made or written, and EMRFLOW_STORE did not ask for it by name. A store
-- that exists but is bad (damaged, locked, newer) stops the run: nothing is overwritten.
local function cannot_make_default(err)
  local explicit = os.getenv("EMRFLOW_STORE")
  if explicit and explicit ~= "" then return false end
  if err.code ~= "cannot_open" and err.code ~= "read_only" then return false end
  local path = store.default_path()
  local f = path and io.open(path, "rb")
  if f then
    f:close()
    return false
  end
  return true
end

--- Before `run` starts an execution: opens the store it records in (start.store), per
-- DESIGN's rules: --no-store never, --store PATH always, the default store unless --local.
function M.start_hook(opts, start, cli, io_)
  if opts.resuming then return end
  if opts["no-store"] then
    if opts.store then cli.fail("give --store or --no-store, not both") end
    return
  end
  if opts["local"] and not opts.store then return end
  check_store_option(opts, cli)
  local s, err = store.open(opts.store)
  if not s then
    if not opts.store and cannot_make_default(err) then
      -- no store yet, and none can be made where the default lives (a read-only HOME in a
      -- CI job, say): run, but say that this run will not survive its process
      io_.stderr:write("emrflow: warning: this run is not recorded: ", err.message,
        "; give --store PATH to record it, or --no-store to silence this warning\n")
      return
    end
    cli.fail(err.message .. (opts.store and "" or "; give --store PATH, or --no-store to run "
      .. "without recording"))
  end
  start.store = s
  start.store_notice = io_ and io_.stderr
  -- a .lua definition is loaded again from its file on resume, for its functions
  local def = start.definition_path
  if type(def) == "string" and def:sub(-4) == ".lua" then
    start.source_path = def:sub(1, 1) == "/" and def or ((os.getenv("PWD") or ".") .. "/" .. def)
  end
  -- what resume and redrive take from the record when their command line omits it: how the
  -- execution reaches its services (--local, --scenario, --region, --endpoint-url, --profile,
  -- --poll-rate, --clock, an extension's --mock-config ...), not what is this run's own
  -- (files by their absolute path: resume may run in another directory)
  local files = {}
  for _, o in ipairs(cli.all_run_options()) do
    if o.arg == "FILE" then files[o.name] = true end
  end
  local recorded = {}
  for k, v in pairs(opts) do
    if not NOT_RECORDED[k] and (type(v) == "string" or v == true) then
      if files[k] and type(v) == "string" and v ~= "-" and v:sub(1, 1) ~= "/" then
        v = (os.getenv("PWD") or ".") .. "/" .. v
      end
      recorded[k] = v
    end
  end
  start.store_options = recorded
end

return M
