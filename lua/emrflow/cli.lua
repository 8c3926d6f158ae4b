--- emrflow.cli: the `emrflow` command line.
--
--   emrflow run DEFINITION [--input JSON | --input-file FILE] [--name NAME] [--local [--scenario FILE]] ...
--   emrflow validate DEFINITION [--strict] [--remote]
--   emrflow export DEFINITION.lua
--   emrflow graph DEFINITION [--format mermaid|dot|svg] [--execution EXECUTION [--store PATH]]
--   emrflow --help | --version;  emrflow COMMAND --help
--
-- DEFINITION is an ASL .json file or a .lua file returning a definition table; `-` reads it
-- from standard input, as `--input -` reads the input. Exit codes: 0 succeeded, 2 the
-- execution failed (FAILED, TIMED_OUT, ABORTED), 1 emrflow could not run. Progress goes to
-- stderr; on success stdout gets the output JSON (pretty on a terminal, compact otherwise).
--
-- Extensions (`M.EXTENSIONS`, loaded when present) add commands, `run` options and start
-- hooks; each is a module returning `{ commands =, run_options =, start_hook = }`. The
-- commands of the durable store and of the AWS Step Functions path come that way; when their
-- module is absent they are listed and say "not available in this build".
-- @module emrflow.cli
local core = require "emrflow.core"
local json = require "emrflow.json"
local asl = require "emrflow.asl"
local asl_common = require "emrflow.asl.common"
local progress = require "emrflow.progress"
local version = require "emrflow.version"

local M = {}

local EXIT_OK, EXIT_INTERNAL, EXIT_FAILED = 0, 1, 2
M.EXIT_OK, M.EXIT_INTERNAL, M.EXIT_FAILED = EXIT_OK, EXIT_INTERNAL, EXIT_FAILED

--- Extension modules, loaded in this order when present.
M.EXTENSIONS = { "emrflow.cli.mocks", "emrflow.cli.store", "emrflow.cli.remote" }

--- Modules that register Task resource integrations when required (missing ones are skipped).
M.integrations = { "emrflow.emr.integration", "emrflow.emr.tasks" }

-- The commands emrflow promises whose implementation comes from an extension module.
local PROMISED = {
  { name = "resume", module = "emrflow.cli.store", usage = "emrflow resume EXECUTION [--store PATH]",
    summary = "continue an execution after a crash or kill, re-attaching to running jobs" },
  { name = "redrive", module = "emrflow.cli.store", usage = "emrflow redrive EXECUTION [--store PATH]",
    summary = "re-run a FAILED, ABORTED or TIMED_OUT execution from where it failed" },
  { name = "executions", module = "emrflow.cli.store",
    usage = "emrflow executions [--store PATH] [--status S] [--machine-name M]",
    summary = "list the stored executions, newest first, one JSON object per line" },
  { name = "describe", module = "emrflow.cli.store", usage = "emrflow describe EXECUTION [--store PATH]",
    summary = "a stored execution as JSON, shaped like DescribeExecution" },
  { name = "history", module = "emrflow.cli.store", usage = "emrflow history EXECUTION [--store PATH]",
    summary = "a stored execution's events as JSON lines, shaped like GetExecutionHistory" },
  { name = "deploy", module = "emrflow.cli.remote",
    usage = "emrflow deploy DEFINITION --name NAME --role-arn ARN [--type STANDARD|EXPRESS] [--publish]"
      .. " [--alias NAME]",
    summary = "create or update the state machine on AWS Step Functions" },
  { name = "policy", module = "emrflow.cli.remote", usage = "emrflow policy DEFINITION",
    summary = "print the IAM policy the execution role needs for the integrations used" },
  { name = "start", module = "emrflow.cli.remote",
    usage = "emrflow start STATE_MACHINE --remote [--input JSON | --input-file FILE] [--name NAME] [--wait]",
    summary = "start an execution on AWS Step Functions" },
  { name = "stop", module = "emrflow.cli.remote", usage = "emrflow stop EXECUTION_ARN --remote",
    summary = "stop an execution on AWS Step Functions" },
}

-- ------------------------------------------------------------------------
-- Errors and small helpers
-- ------------------------------------------------------------------------

local CliError = { __name = "emrflow.CliError" }
CliError.__tostring = function(e) return "emrflow: " .. e.message end

-- Lua source locations ("/x/y/emrflow/foo.lua:12: ") are for emrflow's developers, not its
-- users: they are taken out of every message the command prints.
local function without_source_paths(msg)
  msg = tostring(msg)
  msg = msg:gsub("[%w%./_%-]*emrflow/[%w_/]+%.lua:%d+: ", "")
  msg = msg:gsub("%[C%]: in %?", "")
  return msg
end
M.without_source_paths = without_source_paths

--- Raises a command-line error: emrflow prints "emrflow: message" and exits 1.
-- @string message what is wrong, for the user
function M.fail(message)
  error(setmetatable({ cli = true, message = without_source_paths(message) }, CliError), 0)
end
local fail = M.fail

local function is_cli_error(e)
  return type(e) == "table" and e.cli == true
end

local function streams(io_)
  io_ = io_ or {}
  return { stdin = io_.stdin or io.stdin, stdout = io_.stdout or io.stdout, stderr = io_.stderr or io.stderr }
end

local function read_all(path, what, io_)
  if path == "-" then
    local s = streams(io_).stdin:read("a")
    if s == nil then fail("cannot read " .. what .. " from standard input") end
    return s
  end
  local f, err = io.open(path, "rb")
  if not f then fail("cannot read " .. what .. ": " .. tostring(err)) end
  local s, rerr = f:read("a")
  f:close()
  -- io.open succeeds on a directory; reading it fails
  if s == nil then
    fail("cannot read " .. what .. ": " .. path .. ": " .. tostring(rerr or "not a regular file"))
  end
  return s
end

-- "emrflow.json: what at line L, column C (byte N)" -> "what at line L, column C (byte N)"
local function json_reason(err)
  return (tostring(err):gsub("^emrflow%.json: ", ""))
end

--- Decodes JSON text, failing with a message that names where it came from.
function M.decode_json(text, source)
  local ok, v = pcall(json.decode, text)
  if not ok then fail(source .. " is not valid JSON: " .. json_reason(v)) end
  return v
end

-- ------------------------------------------------------------------------
-- Options
-- ------------------------------------------------------------------------

--- The options of `run` (extensions and progress add theirs).
M.run_options = {
  { name = "input", arg = "JSON",
    help = "execution input as JSON text (default {}); - reads standard input" },
  { name = "input-file", arg = "FILE", help = "read the execution input from FILE (- is standard input)" },
  { name = "name", arg = "NAME", help = "execution name (1 to 80 characters; default: a generated one)" },
  { name = "result-file", arg = "FILE",
    help = "write {\"status\":...,\"output\"} or {\"status\":...,\"error\":...,\"cause\":...} to FILE" },
  { name = "local", help = "run EMR on EKS calls against the built-in emulator (no AWS; virtual clock)" },
  { name = "scenario", arg = "FILE", help = "emulator scenario (JSON) for --local" },
  { name = "clock", arg = "virtual|real",
    help = "clock for Wait states and back-off (default real; virtual with --local)" },
  { name = "poll-rate", arg = "N",
    help = ".sync polling: requests per second per endpoint, all jobs together" },
  { name = "region", arg = "R", help = "AWS region for integrations (default: AWS_REGION, the profile)" },
  { name = "endpoint-url", arg = "URL",
    help = "emr-containers endpoint (default: AWS_ENDPOINT_URL..., the region's)" },
  { name = "profile", arg = "NAME", help = "AWS profile of the shared config files (default: AWS_PROFILE)" },
  { name = "events", help = "write the history events as JSON lines on stderr as they happen" },
  { name = "progress", help = "show progress on stderr even when it is not a terminal" },
  { name = "quiet", help = "no progress on stderr" },
  { name = "compact",
    help = "print the output JSON on one line (the default when stdout is not a terminal)" },
}

local HELP_OPTION = { name = "help", help = "show this help" }

local state = { loaded = nil, warnings = {} }

-- Every option `run` takes: its own, then each extension's run_options.
local function all_run_options()
  local list, seen = {}, {}
  local function add(o)
    if not seen[o.name] then
      seen[o.name] = true
      list[#list + 1] = o
    end
  end
  for _, o in ipairs(M.run_options) do add(o) end
  for _, ext in ipairs(state.loaded or {}) do
    for _, o in ipairs(ext.module.run_options or {}) do add(o) end
  end
  return list
end
M.all_run_options = all_run_options

--- Parses argv[first..] against a list of option specs (or a command name).
-- Returns opts (name -> string | true, or a list for `repeated` options) and the positional
-- arguments. `--help` / `-h` gives opts.help = true. `command` names the command in errors.
function M.parse(specs, argv, first, command)
  if type(specs) == "string" then
    command = specs
    local cmd = M.commands[command]
    if not cmd then fail("unknown command '" .. command .. "'") end
    specs = cmd.options
  end
  local by_name = {}
  for _, s in ipairs(specs) do by_name[s.name] = s end
  local opts, positional = {}, {}
  local i = first or 1
  while i <= #argv do
    local a = argv[i]
    if a == "--" then
      for j = i + 1, #argv do positional[#positional + 1] = argv[j] end
      break
    end
    local name, inline = a:match("^%-%-([%w%-]+)=(.*)$")
    if not name then name = a:match("^%-%-([%w%-]+)$") end
    if a == "-h" then name = "help" end
    if name then
      local spec = by_name[name] or (name == "help" and HELP_OPTION) or nil
      if not spec then
        fail("unknown option --" .. name .. (command and (" for '" .. command .. "'") or "")
          .. " (see emrflow " .. (command or "COMMAND") .. " --help)")
      end
      if spec.arg then
        local v = inline
        if v == nil then
          i = i + 1
          v = argv[i]
          if v == nil then fail("option --" .. name .. " needs a value (" .. spec.arg .. ")") end
        end
        if spec.repeated then
          opts[name] = opts[name] or {}
          table.insert(opts[name], v)
        else
          opts[name] = v
        end
      else
        if inline ~= nil then fail("option --" .. name .. " takes no value") end
        opts[name] = true
      end
    elseif a:sub(1, 1) == "-" and #a > 1 then
      fail("unknown option " .. a)
    else
      positional[#positional + 1] = a
    end
    i = i + 1
  end
  return opts, positional
end

-- ------------------------------------------------------------------------
-- Reading definitions and inputs
-- ------------------------------------------------------------------------

local function load_integrations()
  for _, name in ipairs(M.integrations) do
    local ok, err = pcall(require, name)
    if not ok and not tostring(err):find("module '" .. name .. "' not found", 1, true) then
      fail("cannot load integration " .. name .. ": " .. tostring(err))
    end
  end
end

local function run_lua_definition(chunk, where)
  local ok, def = pcall(chunk)
  if not ok then
    local why = def
    if type(def) == "table" then
      why = def.Cause or def.message or def.Error
      if why == nil then
        local jok, text = pcall(json.encode, def)
        why = jok and text or "an error value that is not a message"
      end
    end
    fail(where .. " raised: " .. tostring(why))
  end
  if type(def) ~= "table" then fail(where .. " must return a definition table, got " .. type(def)) end
  return def
end

-- The state machine's name from a file name: without directory and extension; characters
-- a Step Functions name may not hold (blanks, brackets, wildcards, " # % \ ^ | ~ ` $ & , ; : /,
-- control characters) become "-".
local function machine_name_of(path)
  if path == "-" then return "emrflow-machine" end
  local base = path:match("([^/]*)$"):gsub("%.[^.]*$", ""):gsub("[%s<>{}%[%]%?%*\"#%%\\%^|~`%$&,;:/%c]", "-")
  if base == "" then base = "emrflow-machine" end
  return base:sub(1, 80)
end

--- Reads a definition: a .lua file runs and returns a table; anything else is ASL JSON
-- (checked here, so a syntax error names the file, line and column). `-` reads standard
-- input (JSON when it starts with `{`, else Lua).
-- @string path a file, or "-" for standard input
-- @tab[opt] io_ { stdin = } (default io.stdin)
-- @return definition (table or JSON text), machine name, source text
function M.read_definition(path, io_)
  if not path then fail("missing DEFINITION (an ASL .json file, a .lua file, or - for standard input)") end
  local where = path == "-" and "the definition on standard input" or path
  local text = read_all(path, path == "-" and "the definition" or ("definition " .. path), io_)
  local is_lua = path:sub(-4) == ".lua" or (path == "-" and not text:match("^%s*[{%[]"))
  if is_lua then
    load_integrations()
    -- a "#!" first line is skipped as lua does (the newline stays: line numbers hold)
    local chunk, err = load((text:gsub("^#[^\n]*", "")), "=" .. (path == "-" and "stdin" or path), "t")
    if not chunk then fail("cannot load " .. where .. ": " .. tostring(err)) end
    return run_lua_definition(chunk, where), machine_name_of(path), text
  end
  M.decode_json(text, where)
  return text, machine_name_of(path), text
end

--- The execution input from --input JSON, --input-file FILE (`-` = standard input); default {}.
-- @tab opts the parsed options
-- @tab[opt] io_ { stdin = }
-- @return the input value
function M.read_input(opts, io_)
  if opts.input and opts["input-file"] then fail("give --input or --input-file, not both") end
  if opts.input == "-" or opts["input-file"] == "-" then
    return M.decode_json(read_all("-", "the input", io_), "the input on standard input")
  end
  if opts.input then return M.decode_json(opts.input, "--input") end
  local path = opts["input-file"]
  if path then return M.decode_json(read_all(path, "input file", io_), "--input-file " .. path) end
  return json.object {}
end

-- ------------------------------------------------------------------------
-- Extensions
-- ------------------------------------------------------------------------

local function check_extension(name, ext)
  if type(ext) ~= "table" then return "does not return a table" end
  if ext.commands ~= nil and type(ext.commands) ~= "table" then return "commands is not a table" end
  for cname, c in pairs(ext.commands or {}) do
    if type(cname) ~= "string" or type(c) ~= "table" or type(c.run) ~= "function" then
      return "command " .. tostring(cname) .. " has no run function"
    end
  end
  if ext.start_hook ~= nil and type(ext.start_hook) ~= "function" then
    return "start_hook is not a function"
  end
  if ext.run_options ~= nil and type(ext.run_options) ~= "table" then return "run_options is not a list" end
  return nil, name
end

--- Loads the extension modules (once). A missing module is skipped; a broken one is
-- skipped with a warning on stderr, so the rest of emrflow keeps working.
function M.load_extensions()
  if state.loaded then return state.loaded end
  state.loaded = {}
  for _, name in ipairs(M.EXTENSIONS) do
    local ok, ext = pcall(require, name)
    if ok then
      local problem = check_extension(name, ext)
      if problem then
        state.warnings[#state.warnings + 1] = "extension " .. name .. " ignored: " .. problem
      else
        state.loaded[#state.loaded + 1] = { name = name, module = ext }
      end
    elseif not tostring(ext):find("module '" .. name .. "' not found", 1, true) then
      state.warnings[#state.warnings + 1] = "extension " .. name .. " failed to load: "
        .. tostring(ext):gsub("^[^\n]-%.lua:%d+: ", "")
    end
  end
  return state.loaded
end

--- Forgets the loaded extensions (for tests that preload fake ones).
function M.reset_extensions()
  state.loaded, state.warnings = nil, {}
end

-- ------------------------------------------------------------------------
-- Start options, pre-flight, finishing an execution
-- ------------------------------------------------------------------------

-- The EMR on EKS jobs of the running execution, from the integration's events:
-- id -> { id =, name =, virtual_cluster_id =, state = }.
local function job_tracker()
  local jobs, order = {}, {}
  local tracker = { jobs = jobs, order = order }
  function tracker.on_emr_event(ev)
    if ev.kind ~= "job_submitted" and ev.kind ~= "job_state" then return end
    if ev.id == nil then return end
    local j = jobs[ev.id]
    if not j then
      j = { id = ev.id, name = ev.name, virtual_cluster_id = ev.virtual_cluster_id, state = "SUBMITTED" }
      jobs[ev.id] = j
      order[#order + 1] = j
    end
    if ev.state then j.state = ev.state end
  end
  function tracker.running()
    local out = {}
    for _, j in ipairs(order) do
      if j.state ~= "COMPLETED" and j.state ~= "FAILED" and j.state ~= "CANCELLED" then out[#out + 1] = j end
    end
    return out
  end
  return tracker
end

-- The job tracker of each start options table (kept out of the table itself, which reaches
-- the integrations and the store).
local trackers = setmetatable({}, { __mode = "k" })
-- the progress reporter of start options (see M.reporter_of)
local reporters = setmetatable({}, { __mode = "k" })

--- The progress reporter start_options made for start, or nil (none wanted).
function M.reporter_of(start)
  return reporters[start]
end
-- ... and of its final on_emr_event hook: the store runs an execution with a copy of the
-- start options, which keeps that hook
local trackers_by_hook = setmetatable({}, { __mode = "k" })

local function chain_emr_event(start, fn)
  local prev = start.on_emr_event
  start.on_emr_event = prev and function(ev) prev(ev); fn(ev) end or fn
end

local function chain_event(start, fn)
  local prev = start.on_event
  start.on_event = prev and function(ev) prev(ev); fn(ev) end or fn
end

local function new_emulator(emulator, scenario, region, where)
  local ok, emu = pcall(emulator.new, scenario, { region = region })
  if not ok then fail(where .. ": " .. (tostring(emu):gsub("^emrflow%.emulator: ", ""))) end
  return emu
end

-- A resumed or redriven --local execution: the virtual clusters its record made exist in the
-- new emulator too (unless the scenario lists them), and the emulator's ids (deterministic
-- from start_id) start from this process's start time in microseconds, past any an earlier
-- process could have made: a cluster or job made now never takes a recorded one's id.
local function with_recorded_clusters(scenario, recorded)
  if type(recorded) ~= "table" then return scenario end
  if type(scenario) ~= "table" or json.is_array(scenario) then return scenario end
  local listed = scenario.virtual_clusters
  -- a list that is not one is left as it is: the emulator says what is wrong with it
  if listed ~= nil and (type(listed) ~= "table" or json.is_object(listed)) then return scenario end
  local out, seen = json.object {}, {}
  for _, k in ipairs(json.keys(scenario)) do json.set(out, k, scenario[k]) end
  local vcs = json.array {}
  for _, vc in ipairs(listed or {}) do
    vcs[#vcs + 1] = vc
    if type(vc) == "table" then seen[vc.id] = true end
  end
  for _, vc in ipairs(recorded) do
    if not seen[vc.id] then
      vcs[#vcs + 1] = json.object_of("id", vc.id, "name", vc.name or vc.id, "state", vc.state)
    end
  end
  json.set(out, "virtual_clusters", vcs)
  if out.start_id == nil then json.set(out, "start_id", math.floor(core.now() * 1e6)) end
  return out
end

local function local_emulator(opts, start)
  if opts.scenario and not opts["local"] then fail("--scenario needs --local") end
  if not opts["local"] then return end
  local ok, emulator = pcall(require, "emrflow.emulator")
  if not ok then fail("--local needs the emrflow.emulator module: " .. tostring(emulator)) end
  local scenario, where = json.object {}, "the scenario"
  if opts.scenario then
    where = "scenario " .. opts.scenario
    scenario = M.decode_json(read_all(opts.scenario, "scenario file " .. opts.scenario), where)
  end
  scenario = with_recorded_clusters(scenario, opts.recorded_clusters)
  start.emr = new_emulator(emulator, scenario, start.region, where)
  start.clock = start.clock or "virtual"
end

local function progress_wanted(opts, io_)
  local env = os.getenv("EMRFLOW_PROGRESS")
  if opts.quiet or env == "0" then return false end
  if opts.progress or env == "1" then return true end
  if opts.events then return false end
  return io_.stderr == io.stderr and progress.is_terminal(2)
end

--- The machine:start options `run` builds from its options: name, clock, region, endpoint,
-- profile, poll, the emulator for --local, progress and --events, then every extension's
-- start_hook. With opts.definition (the DEFINITION path, as `run` sets it), start gets
-- definition_path and machine_name (the file name without extension) for the hooks.
-- @tab opts the parsed options of `run` (or of resume / redrive)
-- @tab[opt] io_ { stdin =, stdout =, stderr = }
-- @return the options table for machine:start
function M.start_options(opts, io_)
  io_ = streams(io_)
  M.load_extensions()
  local start = { name = opts.name }
  -- for the extensions: the definition's path and the machine name it gives (`run` puts the
  -- DEFINITION in opts.definition)
  if type(opts.definition) == "string" then
    start.definition_path = opts.definition
    start.machine_name = machine_name_of(opts.definition)
  end
  -- Step Functions' rule for execution names (so a local name also works on AWS)
  local name = opts.name
  local problem = name ~= nil and asl_common.name_problem(name)
  if problem then
    fail(string.format("--name must be %s, got '%s' (it %s)", asl_common.NAME_RULE, name, problem))
  end
  if opts.clock then
    if opts.clock ~= "virtual" and opts.clock ~= "real" then fail("--clock must be virtual or real") end
    start.clock = opts.clock
  end
  if opts.region then start.region = opts.region end
  if opts["endpoint-url"] then start.endpoint_url = opts["endpoint-url"] end
  if opts.profile then start.profile = opts.profile end
  if opts["poll-rate"] then
    local n = tonumber(opts["poll-rate"])
    if not n or n <= 0 then fail("--poll-rate must be a positive number") end
    start.poll = { rate = n }
  end
  local_emulator(opts, start)
  local tracker = job_tracker()
  trackers[start] = tracker
  chain_emr_event(start, tracker.on_emr_event)
  if opts.events then chain_event(start, progress.events_writer(io_.stderr, true)) end
  if progress_wanted(opts, io_) then
    local rep = progress.new { stream = io_.stderr, enabled = true, virtual = start.clock == "virtual" }
    reporters[start] = rep
    chain_event(start, rep:on_event())
    chain_emr_event(start, rep:on_emr_event())
  end
  for _, ext in ipairs(M.load_extensions()) do
    if ext.module.start_hook then ext.module.start_hook(opts, start, M, io_) end
  end
  trackers_by_hook[start.on_emr_event] = tracker
  return start
end

-- The Task states of a definition, nested ones included: list of { name =, resource = }.
local function task_states(def, out)
  out = out or {}
  local states = type(def) == "table" and def.States
  if type(states) ~= "table" then return out end
  for name, st in pairs(states) do
    if type(st) == "table" then
      if st.Type == "Task" and type(st.Resource) == "string" then
        out[#out + 1] = { name = name, resource = st.Resource }
      elseif st.Type == "Parallel" and type(st.Branches) == "table" then
        for _, b in ipairs(st.Branches) do task_states(b, out) end
      elseif st.Type == "Map" then
        task_states(st.ItemProcessor or st.Iterator, out)
      end
    end
  end
  return out
end

-- The Task states in reading order (as `emrflow graph` lays them out: StartAt first, then as
-- reached), so messages list them as a reader meets them.
local function task_states_in_order(def)
  local tasks = task_states(def)
  local rank = {}
  local ok, m = pcall(require("emrflow.graph").model, def)
  if ok then
    for i, n in ipairs(m.nodes) do rank[n.name] = rank[n.name] or i end
  end
  table.sort(tasks, function(a, b)
    local ra, rb = rank[a.name] or math.huge, rank[b.name] or math.huge
    if ra ~= rb then return ra < rb end
    return a.name < b.name
  end)
  return tasks
end
M.task_states = task_states_in_order

local function is_emr_resource(r)
  return r:match("^arn:[%w%-]+:states:::emr%-containers:") ~= nil
    or r:match("^arn:[%w%-]+:states:::aws%-sdk:emrcontainers:") ~= nil
end

local function glob_match(glob, s)
  if glob == s then return true end
  if not glob:find("*", 1, true) then return false end
  local pat = "^" .. glob:gsub("[%^%$%(%)%%%.%[%]%+%-%?]", "%%%0"):gsub("%*", ".*") .. "$"
  return s:match(pat) ~= nil
end

local function handled(handlers, resource)
  if type(handlers) ~= "table" then return false end
  for k in pairs(handlers) do
    if type(k) == "string" and glob_match(k, resource) then return true end
  end
  return false
end

-- The states a mock configuration mocks for its test case (state name -> true), read
-- from the MockConfigFile shape; nil when there is none or it cannot be read (the
-- execution then reports that problem itself).
local function mocked_states(mocks, machine)
  if type(mocks) ~= "table" or mocks.config == nil then return nil end
  local config = mocks.config
  if type(config) == "string" then
    local f = io.open(config, "rb")
    if not f then return nil end
    local ok, v = pcall(json.decode, f:read("a") or "")
    f:close()
    if not ok then return nil end
    config = v
  end
  local sm = type(config) == "table" and type(config.StateMachines) == "table"
    and config.StateMachines[mocks.machine_name or machine.name]
  local cases = type(sm) == "table" and sm.TestCases
  local case = type(cases) == "table" and cases[mocks.test_case]
  if type(case) ~= "table" then return nil end
  local out = {}
  for name in pairs(case) do out[name] = true end
  return out
end

-- The Task states that will call AWS for real.
local function aws_tasks(machine, start)
  if start.emr ~= nil then return {} end
  local mocked = mocked_states(start.mocks, machine) or {}
  local out = {}
  for _, t in ipairs(task_states_in_order(machine.definition)) do
    if is_emr_resource(t.resource) and not mocked[t.name] and not handled(start.handlers, t.resource) then
      out[#out + 1] = t
    end
  end
  return out
end

local function names_of(tasks)
  local names = {}
  for i, t in ipairs(tasks) do names[i] = t.name end
  if #names > 3 then names = { names[1], names[2], names[3], "..." } end
  return table.concat(names, ", ")
end

local function check_secret_text(c, source)
  local fields = { { "access_key_id", "access key id" }, { "secret_access_key", "secret access key" },
                   { "session_token", "session token" } }
  for _, f in ipairs(fields) do
    local v = c[f[1]]
    if v ~= nil and (type(v) ~= "string" or v:find("[%c ]")) then
      fail(string.format("the AWS %s from %s contains a line break, space or control character "
        .. "(check how it was copied)", f[2], source))
    end
  end
end

--- Checks, before anything runs, that the AWS integrations the definition will really call
-- (not with --local, not mocked, not handled) can be called: region, endpoint URL, profile,
-- credentials. Fails (exit 1) with a clear message otherwise: such a problem must never
-- become a Task error that a Catch could swallow. Returns the Task states that call AWS.
function M.preflight(machine, start)
  load_integrations()
  local missing = type(machine.unresolved) == "function" and machine:unresolved(start) or {}
  if #missing > 0 then
    local lines = {}
    for _, u in ipairs(missing) do
      lines[#lines + 1] = string.format("  %s: %s", u.state, tostring(u.resource))
    end
    fail("nothing runs these Task states' resources:\n" .. table.concat(lines, "\n")
      .. "\nprovide each one either as a Lua handler (machine:start option handlers = "
      .. "{ [resource] = function(input, context) ... end }) or as a mock "
      .. "(--mock-config FILE --test-case NAME)")
  end
  local tasks = aws_tasks(machine, start)
  if #tasks == 0 then return tasks end
  local what = "the EMR on EKS calls of " .. names_of(tasks)
  if start.endpoint_url ~= nil and not tostring(start.endpoint_url):match("^https?://[^/?#%s]+") then
    fail(string.format("--endpoint-url '%s' is not an http:// or https:// URL", tostring(start.endpoint_url)))
  end
  local config = require "emrflow.config"
  local ok, cfg, err = pcall(config.resolve, { region = start.region, endpoint_url = start.endpoint_url,
                                                profile = start.profile })
  if not ok then fail(tostring(cfg):gsub("^emrflow%.config%.resolve: option '(%w+)'", "%1")) end
  if not cfg then
    -- the configuration module speaks to Lua callers; here the option is --region
    local why = tostring(err and err.message or err):gsub("pass region=,", "pass --region,")
    fail("cannot configure " .. what .. ": " .. why)
  end
  local credentials = require "emrflow.credentials"
  local provider = credentials.chain { profile = start.profile, config = cfg }
  local cok, c, cerr = pcall(provider.get, provider)
  if not cok then fail("cannot get AWS credentials for " .. what .. ": " .. tostring(c)) end
  if not c then
    fail("cannot get AWS credentials for " .. what .. ": " .. tostring(cerr and cerr.message or cerr))
  end
  check_secret_text(c, rawget(c, "source") and tostring(rawget(c, "source")) or "the credential chain")
  -- one client for the execution, with the credentials just fetched
  local eok, emr = pcall(require, "emrflow.emr")
  if eok and type(emr.client) == "function" then
    local mok, client = pcall(emr.client, { region = cfg.region, profile = start.profile,
      endpoint_url = start.endpoint_url or cfg.endpoint_url, credentials = provider })
    if mok then start.emr = client end
  end
  return tasks
end

local function write_result_file(path, status, x)
  local r = json.object {}
  json.set(r, "status", status)
  if status == "SUCCEEDED" then
    json.set(r, "output", x.output)
  else
    json.set(r, "error", x.error == nil and json.null or x.error)
    json.set(r, "cause", x.cause == nil and json.null or x.cause)
  end
  local f, err = io.open(path, "wb")
  if not f then fail("cannot write --result-file: " .. tostring(err)) end
  f:write(json.encode(r), "\n")
  f:close()
end

--- Fails now (before a job that could take hours) when --result-file cannot be written.
function M.check_result_file(opts)
  if not opts["result-file"] then return end
  local path = opts["result-file"]
  local existed = io.open(path, "rb")
  if existed then existed:close() end
  local f, err = io.open(path, "ab")
  if not f then fail("cannot write --result-file: " .. tostring(err)) end
  f:close()
  if not existed then os.remove(path) end
end

local function job_list(jobs)
  local parts = {}
  for _, j in ipairs(jobs) do
    parts[#parts + 1] = string.format("%s (%s%s, %s)", tostring(j.id),
      j.name and (tostring(j.name) .. ", ") or "",
      j.virtual_cluster_id and ("virtual cluster " .. tostring(j.virtual_cluster_id)) or "virtual cluster ?",
      tostring(j.state))
  end
  return table.concat(parts, "; ")
end

-- What the execution still waits for after a stop, in words.
local function waiting_for(x)
  local tracker = x.options and (trackers[x.options] or trackers_by_hook[x.options.on_emr_event])
  local running = tracker and tracker.running() or {}
  if #running == 0 then
    return "the execution to finish stopping (no EMR on EKS job is running)", running
  end
  return string.format("%d job%s to reach CANCELLED: %s", #running, #running == 1 and "" or "s",
    job_list(running)), running
end

--- Drives an execution to its end. The first SIGINT / SIGTERM stops it (exec:stop cancels
-- every running job); a second says what the stop still waits for; a third returns at once
-- with status "ABORTED" and `left` = the jobs left running.
-- @return status, left (list of jobs, only when a third signal cut the wait short)
function M.drive(x, stderr)
  stderr = stderr or io.stderr
  local signal = core.signal
  signal.watch()
  local ok, status, left, sig = pcall(function()
    local signals, first = 0, nil
    while x:step(0.25) do
      local sig = signal.pending()
      if sig then
        signals = signals + 1
        if signals == 1 then
          first = sig
          stderr:write("emrflow: ", sig,
            " received: stopping the execution (Ctrl-C again to see what it waits for)\n")
          x:stop("States.Aborted", "stopped by " .. sig)
        elseif signals == 2 then
          stderr:write("emrflow: still stopping: waiting for ", (waiting_for(x)),
            " (Ctrl-C again to exit at once)\n")
        else
          local _, running = waiting_for(x)
          if #running > 0 then
            stderr:write("emrflow: exiting without waiting; left running: ", job_list(running), "\n")
          else
            stderr:write("emrflow: exiting without waiting\n")
          end
          return "ABORTED", running, first
        end
      end
    end
    return nil
  end)
  signal.unwatch()
  if not ok then error(status, 0) end
  if status then
    x.status, x.error = "ABORTED", x.error or "States.Aborted"
    x.cause = x.cause or string.format("stopped by %s; emrflow exited before the execution had stopped"
      .. " (jobs left running: %s)", tostring(sig), #left > 0 and job_list(left) or "none")
    return status, left
  end
  return (x:wait())
end

local function stdout_is_terminal(io_)
  return io_.stdout == io.stdout and progress.is_terminal(1)
end

--- Prints a JSON value on stdout: pretty on a terminal, compact when piped or with --compact.
function M.print_json(value, opts, io_)
  io_ = streams(io_)
  local pretty = not opts.compact and (opts.pretty or stdout_is_terminal(io_))
  io_.stdout:write(pretty and json.pretty(value) or json.encode(value), "\n")
end

--- Drives an execution to its end with the progress display, writes --result-file, prints
-- the output JSON on success. Returns the exit code: 0 SUCCEEDED, 2 FAILED/TIMED_OUT/ABORTED.
-- `x` is what machine:start returns, or anything shaped alike (a remote execution, say):
-- x:step(max_wait_s) --> true while running; x:stop(error, cause); x:wait() --> status;
-- x.output on success, x.error and x.cause otherwise.
-- @param x the execution
-- @tab opts the parsed options (result-file, compact)
-- @tab[opt] io_ { stdout =, stderr = }
-- @treturn int the exit code
function M.finish(x, opts, io_)
  io_ = streams(io_)
  local ok, status = pcall(M.drive, x, io_.stderr)
  if not ok then
    if is_cli_error(status) then error(status, 0) end
    fail("the execution crashed: " .. tostring(status))
  end
  if opts["result-file"] then write_result_file(opts["result-file"], status, x) end
  if status == "SUCCEEDED" then
    io_.stderr:write("emrflow: SUCCEEDED\n")
    M.print_json(x.output, opts, io_)
    return EXIT_OK
  end
  local parts = { "emrflow: " .. tostring(status) }
  if x.error ~= nil then parts[#parts + 1] = "error=" .. tostring(x.error) end
  if x.cause ~= nil then parts[#parts + 1] = "cause=" .. tostring(x.cause) end
  io_.stderr:write(table.concat(parts, " "), "\n")
  return EXIT_FAILED
end

-- ------------------------------------------------------------------------
-- Built-in commands
-- ------------------------------------------------------------------------

local function one_definition(pos, command)
  if #pos ~= 1 then fail(command .. " takes one DEFINITION (see emrflow " .. command .. " --help)") end
  return pos[1]
end

local function load_machine(def, name, region)
  local ok, machine = pcall(asl.load, def, { name = name, region = region })
  if not ok then fail(machine) end
  return machine
end

local function shell_word(s)
  s = tostring(s)
  if s:match("^[%w%-_%./:=@]+$") then return s end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function absolute(path)
  if path:sub(1, 1) == "/" then return path end
  local cwd = os.getenv("PWD")
  return cwd and (cwd .. "/" .. path:gsub("^%./", "")) or path
end

-- After a recorded run stopped by a signal: how to run it on (the command line, with the
-- execution's name). A stop that ended it (ABORTED) is redriven; one that left it running
-- (a third signal) is resumed.
local function resume_hint(x, io_)
  if x.status ~= "ABORTED" then return end
  local command = x:done() and "redrive" or "resume"
  io_.stderr:write(string.format("emrflow: to continue this execution: emrflow %s %s --store %s\n",
    command, shell_word(x.name), shell_word(absolute(x.store.path))))
end

local function cmd_run(opts, pos, cli, io_)
  local path = one_definition(pos, "run")
  if path == "-" and (opts.input == "-" or opts["input-file"] == "-") then
    fail("standard input can be read once: DEFINITION and the input cannot both be -")
  end
  cli.check_result_file(opts)
  opts.definition = path
  local input = cli.read_input(opts, io_)
  local def, name = cli.read_definition(path, io_)
  local machine = load_machine(def, name, opts.region)
  local start = cli.start_options(opts, io_)
  cli.preflight(machine, start)
  local sok, x = pcall(machine.start, machine, input, start)
  if not sok then
    if is_cli_error(x) then error(x, 0) end
    -- an emrflow error (ExecutionAlreadyExists ...): its code and message, once
    if type(x) == "table" and x.message ~= nil then
      fail((x.aws_code and (x.aws_code .. ": ") or "") .. tostring(x.message))
    end
    fail(x)
  end
  io_.stderr:write(string.format("emrflow: started %s\n", x.arn))
  local code = cli.finish(x, opts, io_)
  if x.store then resume_hint(x, io_) end
  return code
end

local function remote_module()
  for _, ext in ipairs(M.load_extensions()) do
    if ext.name == "emrflow.cli.remote" then return ext.module end
  end
  return nil
end

local function cmd_validate(opts, pos, cli, io_)
  local path = one_definition(pos, "validate")
  local def, _, text = cli.read_definition(path, io_)
  if opts.remote then
    local remote = remote_module()
    if not remote or type(remote.validate_remote) ~= "function" then
      fail("validate --remote is not available in this build (it comes with the emrflow.cli.remote module)")
    end
    if type(def) == "table" then
      local machine = load_machine(def, nil, nil)
      local eok, exported = pcall(machine.to_json, machine)
      if not eok then fail(exported) end
      text = exported
    end
    opts.definition = path
    return remote.validate_remote(text, opts, cli, io_)
  end
  local problems = asl.validate(def)
  local errors, warnings = {}, {}
  for _, p in ipairs(problems) do
    local warning = p.severity == "warning" or p.level == "warning" or p.warning == true
    if warning and not opts.strict then warnings[#warnings + 1] = p
    else errors[#errors + 1] = p end
  end
  local where = path == "-" and "stdin" or path
  for _, w in ipairs(warnings) do
    io_.stderr:write(string.format("%s: warning: %s: %s\n", where, w.path == "" and "/" or w.path, w.message))
  end
  if #errors == 0 then
    io_.stdout:write(where .. ": valid\n")
    return EXIT_OK
  end
  io_.stderr:write((asl.format_problems(errors):gsub("^emrflow%.asl: ", where .. ": ")) .. "\n")
  return EXIT_INTERNAL
end

local function cmd_export(opts, pos, cli, io_)
  local path = one_definition(pos, "export")
  local def = cli.read_definition(path, io_)
  local machine = load_machine(def)
  local eok, text = pcall(machine.to_json, machine,
    { compact = opts.compact, placeholder_arns = opts["placeholder-arns"] })
  if not eok then
    -- the Lua API's option, as the command line spells it
    fail((tostring(text):gsub("{ placeholder_arns = true }", "--placeholder-arns")))
  end
  io_.stdout:write(text, "\n")
  return EXIT_OK
end

local function cmd_graph(opts, pos, cli, io_)
  local path = one_definition(pos, "graph")
  local graph = require "emrflow.graph"
  local def, name = cli.read_definition(path, io_)
  local machine = load_machine(def, name)
  local format = opts.format or "mermaid"
  if format ~= "mermaid" and format ~= "dot" and format ~= "svg" then
    fail("--format must be mermaid, dot or svg, got '" .. format .. "'")
  end
  local events
  if opts.history and opts.execution then fail("give --execution or --history, not both") end
  if opts.store and not opts.execution then fail("--store needs --execution") end
  if opts.history then
    local ok, evs = pcall(graph.read_history, read_all(opts.history, "history file", io_), opts.history)
    if not ok then fail(evs) end
    events = evs
  elseif opts.execution then
    events = graph.history_from_store(opts.execution, opts.store, fail)
  end
  local ok, text = pcall(graph.render, machine.definition, { format = format, events = events, title = name })
  if not ok then fail(text) end
  io_.stdout:write(text, text:sub(-1) == "\n" and "" or "\n")
  return EXIT_OK
end

local BUILTIN = {
  run = {
    summary = "run a state machine to its end (exit 0 succeeded, 2 failed)",
    usage = "emrflow run DEFINITION [--input JSON | --input-file FILE] [--name NAME]"
      .. " [--local [--scenario FILE]]\n"
      .. "                   [--region R] [--endpoint-url URL] [--profile P] [--result-file FILE]\n"
      .. "                   [--events] [--progress | --quiet] [--compact]",
    options = nil,        -- all_run_options() at the time of use
    run = cmd_run,
  },
  validate = {
    summary = "check a definition and list every problem with its JSON pointer",
    usage = "emrflow validate DEFINITION [--strict] [--remote]",
    options = {
      { name = "strict", help = "treat warnings (values EMR would reject at run time) as errors: exit 1" },
      { name = "remote", help = "ask AWS Step Functions (ValidateStateMachineDefinition) instead" },
      { name = "region", arg = "R", help = "AWS region for --remote" },
      { name = "endpoint-url", arg = "URL", help = "Step Functions endpoint for --remote" },
      { name = "profile", arg = "NAME", help = "AWS profile for --remote" },
    },
    run = cmd_validate,
  },
  export = {
    summary = "print the definition as ASL JSON that AWS Step Functions accepts",
    usage = "emrflow export DEFINITION.lua [--compact] [--placeholder-arns]",
    options = {
      { name = "compact", help = "print compact JSON" },
      { name = "placeholder-arns", help = "emit a placeholder ARN for Lua function resources" },
    },
    run = cmd_export,
  },
  graph = {
    summary = "draw the state machine (and what an execution did) as mermaid, dot or svg",
    usage = "emrflow graph DEFINITION [--format mermaid|dot|svg] [--execution EXECUTION [--store PATH]]\n"
      .. "                     [--history FILE]",
    options = {
      { name = "format", arg = "mermaid|dot|svg",
        help = "output format (default mermaid; svg needs graphviz's dot)" },
      { name = "execution", arg = "EXECUTION", help = "colour each state by what this stored execution did" },
      { name = "store", arg = "PATH", help = "the execution store to read --execution from" },
      { name = "history", arg = "FILE",
        help = "colour by this history: JSON lines (emrflow run --events, emrflow history) or "
          .. "GetExecutionHistory's JSON ({\"events\":[...]}); - reads standard input" },
    },
    run = cmd_graph,
  },
}

local BUILTIN_ORDER = { "run", "validate", "export", "graph" }

-- The command table: built-ins, then the extensions' commands, then the promised ones that
-- no extension provides (they say so when invoked).
local function build_commands()
  local cmds, order = {}, {}
  for _, name in ipairs(BUILTIN_ORDER) do
    cmds[name] = BUILTIN[name]
    order[#order + 1] = name
  end
  cmds.run.options = all_run_options()
  for _, ext in ipairs(M.load_extensions()) do
    local names = {}
    for name in pairs(ext.module.commands or {}) do names[#names + 1] = name end
    table.sort(names)
    for _, name in ipairs(names) do
      if not cmds[name] then
        local c = ext.module.commands[name]
        -- options = "run": the command takes run's options (resume, redrive)
        local options = c.options == "run" and all_run_options() or c.options or {}
        cmds[name] = { summary = c.summary or "", usage = c.usage or ("emrflow " .. name),
                       options = options, run = c.run, extension = ext.name }
        order[#order + 1] = name
      end
    end
  end
  for _, p in ipairs(PROMISED) do
    if not cmds[p.name] then
      cmds[p.name] = {
        summary = p.summary .. " (not available in this build)", usage = p.usage, options = {},
        unavailable = p.module,
        run = function()
          fail("'" .. p.name .. "' is not available in this build (it comes with the "
            .. p.module .. " module)")
        end,
      }
      order[#order + 1] = p.name
    end
  end
  return cmds, order
end

M.commands = setmetatable({}, { __index = function(_, name)
  local cmds = build_commands()
  return cmds[name]
end })

-- ------------------------------------------------------------------------
-- Help
-- ------------------------------------------------------------------------

local function option_lines(options)
  local rows, width = {}, 0
  for _, o in ipairs(options) do
    local left = "--" .. o.name .. (o.arg and (" " .. o.arg) or "")
    rows[#rows + 1] = { left, o.help or "" }
    if #left > width then width = #left end
  end
  rows[#rows + 1] = { "-h, --help", "show this help" }
  width = math.max(width, 10)
  local out = {}
  for _, r in ipairs(rows) do
    out[#out + 1] = "  " .. r[1] .. string.rep(" ", width - #r[1] + 2) .. r[2]
  end
  return table.concat(out, "\n")
end

--- The text of `emrflow --help`.
function M.usage()
  local cmds, order = build_commands()
  local width = 0
  for _, name in ipairs(order) do width = math.max(width, #name) end
  local lines = {
    "usage: emrflow COMMAND [ARGS...] [OPTIONS]",
    "       emrflow run DEFINITION [--input JSON | --input-file FILE] [--local] [--result-file FILE]",
    "       emrflow --help | --version | COMMAND --help",
    "",
    "Runs AWS Step Functions state machines (ASL JSON or Lua) here, with Amazon EMR on EKS.",
    "",
    "commands:",
  }
  for _, name in ipairs(order) do
    lines[#lines + 1] = "  " .. name .. string.rep(" ", width - #name + 2) .. cmds[name].summary
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "DEFINITION is an ASL .json file, a .lua file returning a definition table,"
    .. " or - (standard input)."
  lines[#lines + 1] = "Exit codes: 0 succeeded, 2 the execution failed, 1 emrflow could not run."
  lines[#lines + 1] = "emrflow COMMAND --help describes a command's options;"
    .. " emrflow --version prints the version."
  return table.concat(lines, "\n") .. "\n"
end

--- The text of `emrflow CMD --help`.
function M.command_help(name)
  local c = build_commands()[name]
  local text = "usage: " .. c.usage .. "\n\n" .. c.summary .. "\n"
  if c.unavailable then return text end
  return text .. "\noptions:\n" .. option_lines(c.options or {}) .. "\n"
end

-- ------------------------------------------------------------------------
-- Entry points
-- ------------------------------------------------------------------------

local function dispatch(argv, io_)
  local cmd = argv[1]
  if cmd == nil then
    io_.stderr:write(M.usage())
    return EXIT_INTERNAL
  end
  if cmd == "-h" or cmd == "--help" or cmd == "help" then
    if cmd == "help" and argv[2] then
      if not build_commands()[argv[2]] then fail("unknown command '" .. argv[2] .. "'") end
      io_.stdout:write(M.command_help(argv[2]))
    else
      io_.stdout:write(M.usage())
    end
    return EXIT_OK
  end
  if cmd == "--version" or cmd == "-V" then
    io_.stdout:write("emrflow ", version.version, "\n")
    return EXIT_OK
  end
  local cmds = build_commands()
  local c = cmds[cmd]
  if not c then
    io_.stderr:write("emrflow: unknown command '", tostring(cmd), "'\n", M.usage())
    return EXIT_INTERNAL
  end
  if c.unavailable then
    for i = 2, #argv do
      if argv[i] == "--help" or argv[i] == "-h" then
        io_.stdout:write(M.command_help(cmd))
        return EXIT_OK
      end
    end
    return c.run()
  end
  local opts, pos = M.parse(c.options or {}, argv, 2, cmd)
  if opts.help then
    io_.stdout:write(M.command_help(cmd))
    return EXIT_OK
  end
  load_integrations()
  local code = c.run(opts, pos, M, io_)
  if math.type(code) ~= "integer" then code = code and EXIT_OK or EXIT_INTERNAL end
  return code
end

--- Runs the command line; returns the exit code. io_ = { stdin =, stdout =, stderr = } for tests.
function M.execute(argv, io_)
  io_ = streams(io_)
  M.load_extensions()
  for _, w in ipairs(state.warnings) do io_.stderr:write("emrflow: warning: ", w, "\n") end
  state.warnings = {}
  local trace
  local ok, code = xpcall(dispatch, function(e)
    if not is_cli_error(e) and os.getenv("EMRFLOW_DEBUG") then trace = debug.traceback(tostring(e), 2) end
    return e
  end, argv, io_)
  if ok then return code end
  if is_cli_error(code) then
    io_.stderr:write("emrflow: ", code.message, "\n")
  else
    io_.stderr:write("emrflow: internal error: ", without_source_paths(code), "\n")
    if trace then io_.stderr:write(trace, "\n") end
  end
  return EXIT_INTERNAL
end

--- Entry point of bin/emrflow: exits with the command's code.
function M.main(argv)
  local code = M.execute(argv or {})
  io.stdout:flush()
  os.exit(code)
end

return M
