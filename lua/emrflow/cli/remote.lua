-- emrflow.cli.remote: the commands that reach AWS Step Functions (a CLI extension, contracts §1).
--
--   emrflow deploy DEFINITION --name NAME --role-arn ARN [--type STANDARD|EXPRESS] [--publish]
--                  [--alias NAME] [--tag KEY=VALUE ...] [--logging-level L --log-group-arn ARN]
--                  [--tracing]
--   emrflow policy DEFINITION [--region R] [--role-arn ARN]
--   emrflow validate DEFINITION --remote        (emrflow.cli calls M.validate_remote)
--   emrflow start STATE_MACHINE --remote [--input JSON | --input-file FILE] [--name NAME] [--wait]
--   emrflow stop EXECUTION_ARN --remote
--
-- Every command takes --region, --endpoint-url and --profile for the Step Functions client
-- (emrflow.sfn). `deploy` prints one JSON object {"stateMachineArn", "stateMachineVersionArn",
-- "created", "updated"} (plus "stateMachineAliasArn" with --alias). `start --wait` follows
-- the execution through DescribeExecution / GetExecutionHistory and ends as `run` does
-- (cli.finish: progress, --result-file, exit 0 / 2); Ctrl-C stops the remote execution.
local json = require "emrflow.json"
local sfn = require "emrflow.sfn"
local policy = require "emrflow.policy"
local scheduler = require "emrflow.scheduler"
local core = require "emrflow.core"
local asl_common = require "emrflow.asl.common"

local M = {}

local fmt = string.format

local CLIENT_OPTIONS = {
  { name = "region", arg = "R", help = "AWS region (default: AWS_REGION, the profile's)" },
  { name = "endpoint-url", arg = "URL",
    help = "Step Functions endpoint (default: AWS_ENDPOINT_URL_SFN, AWS_ENDPOINT_URL, the profile's)" },
  { name = "profile", arg = "NAME", help = "AWS profile of the shared config files (default: AWS_PROFILE)" },
}

local function with_client_options(list)
  for _, o in ipairs(CLIENT_OPTIONS) do list[#list + 1] = o end
  return list
end

-- "X (HTTP 400): message [request id]" (cli.fail adds "emrflow: "); configuration and
-- credential problems as their message alone, in the command line's words.
local function describe(err)
  if type(err) == "table" and (err.code == "config" or err.code == "credentials") and err.message then
    return (err.message:gsub("pass region=", "pass --region"))
  end
  return (tostring(err):gsub("^emrflow: ", ""))
end

local function client_for(opts, cli)
  local ok, client = pcall(sfn.client, { region = opts.region, endpoint_url = opts["endpoint-url"],
                                         profile = opts.profile })
  if not ok then
    cli.fail((tostring(client):gsub("^emrflow%.sfn%.client: option 'endpoint_url'", "--endpoint-url")))
  end
  return client
end

-- Calls an operation; a failure ends the command (exit 1) naming the operation.
local function must(cli, client, operation, params)
  local out, err = client:call(operation, params)
  if not out then cli.fail(operation .. ": " .. describe(err)) end
  return out
end

-- Step Functions names (state machines, executions): 1 to 80 characters, none of them blank,
-- a bracket, a wildcard, one of " # % \ ^ | ~ ` $ & , ; : / or a control character.
-- State machine and execution names follow one rule (emrflow.asl.common, as machine:start).
local function check_name(cli, option, name)
  local problem = asl_common.name_problem(name)
  if problem then
    cli.fail(fmt("%s must be %s, got '%s' (it %s)", option, asl_common.NAME_RULE, name, problem))
  end
end

local function uuid4()
  local f = assert(io.open("/dev/urandom", "rb"))
  local b = { f:read(16):byte(1, 16) }
  f:close()
  b[7] = (b[7] & 0x0F) | 0x40
  b[9] = (b[9] & 0x3F) | 0x80
  return fmt("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", table.unpack(b))
end

-- ----------------------------------------------------------------------------
-- Definitions
-- ----------------------------------------------------------------------------

-- "a Lua function (pipeline.lua:12)"
local function function_label(fn)
  local info = debug.getinfo(fn, "S")
  if info and info.short_src and info.linedefined and info.linedefined > 0 then
    return fmt("a Lua function (%s:%d)", info.short_src, info.linedefined)
  end
  return "a Lua function"
end

-- Refuses a definition with Lua-function resources, naming each state and function.
local function refuse_lua_functions(def, cli, what)
  local found = {}
  policy.walk(def, "", function(st, where)
    if st.Type == "Task" and type(st.Resource) == "function" then
      found[#found + 1] = where .. " has Resource = " .. function_label(st.Resource)
    end
  end)
  if #found == 0 then return end
  cli.fail(fmt("%s: Lua-function resources run only in emrflow and cannot be deployed to AWS Step "
    .. "Functions: %s. Give those states an ASL resource ARN (for example a Lambda function)",
    what, table.concat(found, "; ")))
end

-- The ASL JSON text to send: a JSON file's own text (Step Functions validates it; `emrflow
-- validate` is the local check); a Lua definition exported.
local function definition_text(path, cli, io_)
  local def, _, text = cli.read_definition(path, io_)
  if type(def) ~= "table" then return text end
  refuse_lua_functions(def, cli, path == "-" and "the definition" or path)
  local asl = require "emrflow.asl"
  local ok, machine = pcall(asl.load, def)
  if not ok then cli.fail(machine) end
  local eok, exported = pcall(machine.to_json, machine)
  if not eok then cli.fail(exported) end
  return exported
end

-- ----------------------------------------------------------------------------
-- deploy
-- ----------------------------------------------------------------------------

local LOG_LEVELS = { ALL = true, ERROR = true, FATAL = true, OFF = true }

local function list_of(v)
  if v == nil then return {} end
  if type(v) == "table" then return v end
  return { v }
end

local function tags_of(opts, cli)
  local tags = json.array {}
  for _, kv in ipairs(list_of(opts.tag)) do
    local k, v = kv:match("^([^=]+)=(.*)$")
    if not k then cli.fail("--tag takes KEY=VALUE, got '" .. kv .. "'") end
    tags[#tags + 1] = json.object_of("key", k, "value", v)
  end
  return tags
end

-- deploy is declarative: the machine gets the logging and tracing its command line says
-- (no --logging-level: OFF; no --tracing: off), whatever it had.
local function logging_of(opts, cli)
  local level, group = opts["logging-level"], opts["log-group-arn"]
  level = level and level:upper() or (group and "ALL" or "OFF")
  if not LOG_LEVELS[level] then cli.fail("--logging-level must be ALL, ERROR, FATAL or OFF") end
  if level ~= "OFF" and not group then
    cli.fail("--logging-level " .. level
      .. " needs --log-group-arn (a CloudWatch Logs log group ARN ending in :*)")
  end
  local cfg = json.object_of("level", level, "includeExecutionData", false)
  if group then
    json.set(cfg, "destinations", json.array {
      json.object_of("cloudWatchLogsLogGroup", json.object_of("logGroupArn", group)) })
  end
  return cfg
end

local function tracing_of(opts)
  return json.object_of("enabled", opts.tracing == true)
end

local function log_group_of(cfg)
  local d = type(cfg) == "table" and type(cfg.destinations) == "table" and cfg.destinations[1]
  return d and type(d.cloudWatchLogsLogGroup) == "table" and d.cloudWatchLogsLogGroup.logGroupArn or nil
end

local function same_logging(want, have)
  if want == nil then return true end
  have = type(have) == "table" and have or {}
  return (have.level or "OFF") == want.level
    and (have.includeExecutionData == true) == want.includeExecutionData
    and log_group_of(have) == log_group_of(want)
end

local function same_tracing(want, have)
  if want == nil then return true end
  return (type(have) == "table" and have.enabled == true) == want.enabled
end

-- What differs between the deployed machine and the one asked for (list of words).
local function changes(current, want)
  local out = {}
  if current.definition ~= want.definition then out[#out + 1] = "definition" end
  if current.roleArn ~= want.roleArn then out[#out + 1] = "role" end
  if not same_logging(want.loggingConfiguration, current.loggingConfiguration) then
    out[#out + 1] = "logging"
  end
  if not same_tracing(want.tracingConfiguration, current.tracingConfiguration) then
    out[#out + 1] = "tracing"
  end
  return out
end

-- The version of the current revision: the newest version when it holds the same revision
-- (or the same definition and role), else a new one.
local function version_of_current(cli, client, arn, current)
  local page = must(cli, client, "ListStateMachineVersions", { stateMachineArn = arn, maxResults = 1 })
  local newest = type(page.stateMachineVersions) == "table" and page.stateMachineVersions[1]
  if newest then
    local v = must(cli, client, "DescribeStateMachine", { stateMachineArn = newest.stateMachineVersionArn })
    local same_revision = type(v.revisionId) == "string" and v.revisionId == current.revisionId
    if same_revision or (v.definition == current.definition and v.roleArn == current.roleArn) then
      return newest.stateMachineVersionArn
    end
  end
  local out = must(cli, client, "PublishStateMachineVersion",
    { stateMachineArn = arn, revisionId = current.revisionId })
  return out.stateMachineVersionArn
end

local function alias_name_of(arn)
  return arn:match(":([^:]+)$")
end

-- Points alias `name` at version_arn (100 %), creating it when needed. Returns its ARN.
local function point_alias(cli, client, sm_arn, name, version_arn)
  local routing = json.array { json.object_of("stateMachineVersionArn", version_arn, "weight", 100) }
  local aliases, err = client:list_all("ListStateMachineAliases", { stateMachineArn = sm_arn })
  if not aliases then cli.fail("ListStateMachineAliases: " .. describe(err)) end
  for _, a in ipairs(aliases) do
    if alias_name_of(a.stateMachineAliasArn) == name then
      local d = must(cli, client, "DescribeStateMachineAlias",
        { stateMachineAliasArn = a.stateMachineAliasArn })
      local r = type(d.routingConfiguration) == "table" and d.routingConfiguration or {}
      if not (#r == 1 and r[1].stateMachineVersionArn == version_arn) then
        must(cli, client, "UpdateStateMachineAlias",
          { stateMachineAliasArn = a.stateMachineAliasArn, routingConfiguration = routing })
      end
      return a.stateMachineAliasArn
    end
  end
  return must(cli, client, "CreateStateMachineAlias", { name = name, routingConfiguration = routing })
    .stateMachineAliasArn
end

local function check_deploy_options(opts, pos, cli)
  if #pos ~= 1 then cli.fail("deploy takes one DEFINITION (see emrflow deploy --help)") end
  if not opts.name then cli.fail("deploy needs --name NAME (the state machine's name)") end
  check_name(cli, "--name", opts.name)
  if not opts["role-arn"] then
    cli.fail("deploy needs --role-arn ARN (the IAM role the state machine runs as)")
  end
  if not opts["role-arn"]:match("^arn:[%w%-]+:iam::%d*:role/.+") then
    cli.fail("--role-arn must be an IAM role ARN (arn:aws:iam::123456789012:role/NAME), got '"
      .. opts["role-arn"] .. "'")
  end
  if opts.type and opts.type:upper() ~= "STANDARD" and opts.type:upper() ~= "EXPRESS" then
    cli.fail("--type must be STANDARD or EXPRESS")
  end
  -- alias names: letters, digits, '-', '_' and '.', not only digits (AWS's pattern), up to 80
  if opts.alias and (not opts.alias:match("^[%w%-_%.]+$") or not opts.alias:match("[%a%-_%.]")
                     or #opts.alias > 80) then
    cli.fail("--alias must be up to 80 letters, digits, '-', '_' or '.', not only digits")
  end
end

local function cmd_deploy(opts, pos, cli, io_)
  check_deploy_options(opts, pos, cli)
  local text = definition_text(pos[1], cli, io_)
  local want = { definition = text, roleArn = opts["role-arn"],
                 loggingConfiguration = logging_of(opts, cli), tracingConfiguration = tracing_of(opts) }
  local tags = tags_of(opts, cli)
  local publish = opts.publish == true or opts.alias ~= nil
  local client = client_for(opts, cli)
  local found, ferr = client:find_state_machine(opts.name)
  if ferr then cli.fail("ListStateMachines: " .. describe(ferr)) end

  local arn, version_arn, created, updated
  if not found then
    local params = { name = opts.name, definition = text, roleArn = want.roleArn,
                     type = opts.type and opts.type:upper() or "STANDARD", publish = publish or nil,
                     loggingConfiguration = want.loggingConfiguration,
                     tracingConfiguration = want.tracingConfiguration, tags = #tags > 0 and tags or nil }
    local out = must(cli, client, "CreateStateMachine", params)
    arn, version_arn, created, updated = out.stateMachineArn, out.stateMachineVersionArn, true, false
  else
    arn, created = found.stateMachineArn, false
    local current = must(cli, client, "DescribeStateMachine", { stateMachineArn = arn })
    if opts.type and current.type and current.type ~= opts.type:upper() then
      cli.fail(fmt("state machine %s is %s: the type of a state machine cannot change (delete it, or "
        .. "deploy under another --name)", opts.name, current.type))
    end
    local diff = changes(current, want)
    updated = #diff > 0
    if updated then
      local out = must(cli, client, "UpdateStateMachine", {
        stateMachineArn = arn, definition = text, roleArn = want.roleArn, publish = publish or nil,
        loggingConfiguration = want.loggingConfiguration, tracingConfiguration = want.tracingConfiguration })
      version_arn = out.stateMachineVersionArn
      io_.stderr:write(fmt("emrflow: updated %s (%s)\n", arn, table.concat(diff, ", ")))
    else
      io_.stderr:write(fmt("emrflow: %s is unchanged\n", arn))
      if publish then version_arn = version_of_current(cli, client, arn, current) end
    end
    if #tags > 0 then must(cli, client, "TagResource", { resourceArn = arn, tags = tags }) end
  end

  local result = json.object_of("stateMachineArn", arn, "stateMachineVersionArn", version_arn or json.null,
                                "created", created, "updated", updated)
  if opts.alias then
    json.set(result, "stateMachineAliasArn", point_alias(cli, client, arn, opts.alias, version_arn))
  end
  io_.stdout:write(json.encode(result), "\n")
  return 0
end

-- ----------------------------------------------------------------------------
-- policy
-- ----------------------------------------------------------------------------

local function cmd_policy(opts, pos, cli, io_)
  if #pos ~= 1 then cli.fail("policy takes one DEFINITION (see emrflow policy --help)") end
  -- the account of the role the policy is for fills the ARNs' account
  local account
  if opts["role-arn"] then
    account = opts["role-arn"]:match("^arn:[%w%-]+:iam::(%d%d%d%d%d%d%d%d%d%d%d%d):role/")
    if not account then
      cli.fail("--role-arn must be an IAM role ARN (arn:aws:iam::123456789012:role/NAME), got '"
        .. opts["role-arn"] .. "'")
    end
  end
  local def = cli.read_definition(pos[1], io_)
  if type(def) == "string" then def = json.decode(def) end
  local doc, notes = policy.for_definition(def, { region = opts.region, account = account })
  for _, n in ipairs(notes) do io_.stderr:write("emrflow: note: ", n, "\n") end
  local pretty = not opts.compact and json.pretty
  io_.stdout:write(pretty and json.pretty(doc) or json.encode(doc), "\n")
  return 0
end

-- ----------------------------------------------------------------------------
-- validate --remote
-- ----------------------------------------------------------------------------

--- ValidateStateMachineDefinition's diagnostics for the ASL JSON text; exit 0 when AWS says
-- OK (warnings are printed; --strict makes them fail), 1 otherwise.
function M.validate_remote(text, opts, cli, io_)
  local client = client_for(opts, cli)
  local out = must(cli, client, "ValidateStateMachineDefinition",
    { definition = text, type = opts.type and opts.type:upper() or nil })
  local where = opts.definition and opts.definition ~= "-" and opts.definition or "the definition"
  local errors = 0
  for _, d in ipairs(type(out.diagnostics) == "table" and out.diagnostics or {}) do
    local severity = tostring(d.severity or "ERROR")
    if severity ~= "WARNING" or opts.strict then errors = errors + 1 end
    io_.stderr:write(fmt("%s: %s: %s%s: %s\n", where, severity:lower(),
      d.location and (tostring(d.location) .. ": ") or "", tostring(d.code or "?"),
      tostring(d.message or "")))
  end
  if out.truncated == true then io_.stderr:write(where, ": (AWS truncated the list of diagnostics)\n") end
  if out.result == "OK" and errors == 0 then
    io_.stdout:write(where, ": valid (AWS Step Functions)\n")
    return 0
  end
  return 1
end

-- ----------------------------------------------------------------------------
-- start, stop
-- ----------------------------------------------------------------------------

local function need_remote(opts, cli, command)
  if not opts.remote then
    cli.fail(command .. " acts on AWS Step Functions: add --remote "
      .. "(to run a definition here, use emrflow run)")
  end
end

local function state_machine_arn(target, client, cli)
  if target:match("^arn:") then return target end
  local found, err = client:find_state_machine(target)
  if err then cli.fail("ListStateMachines: " .. describe(err)) end
  if not found then
    cli.fail(fmt("no state machine named '%s' at %s (deploy it with emrflow deploy, or give its ARN)",
      target, client.endpoint or "?"))
  end
  return found.stateMachineArn
end

-- A remote execution shaped as cli.finish expects: step / stop / wait, status, output,
-- error, cause. It polls DescribeExecution and GetExecutionHistory, with a growing interval.
local Remote = {}
Remote.__index = Remote

local POLL_FIRST, POLL_FACTOR, POLL_MAX = 0.2, 1.5, 5

local function new_remote(client, arn, on_event, cli)
  return setmetatable({ client = client, arn = arn, on_event = on_event, cli = cli, status = "RUNNING",
                        last_id = 0, interval = POLL_FIRST, next_poll = core.monotonic() }, Remote)
end

function Remote:_fail(operation, err)
  self.cli.fail(fmt("following %s: %s: %s (the execution goes on in AWS Step Functions)", self.arn,
    operation, describe(err)))
end

-- Delivers the history events not seen yet (pages resume from the last incomplete one; an
-- expired page token starts over, skipping what was delivered). Returns true, or nil, err.
function Remote:_history()
  while true do
    local page, err = self.client:call("GetExecutionHistory",
      { executionArn = self.arn, nextToken = self.page_token })
    if not page and self.page_token and err.code == "InvalidToken" then
      self.page_token = nil
      page, err = self.client:call("GetExecutionHistory", { executionArn = self.arn })
    end
    if not page then return nil, err end
    for _, ev in ipairs(type(page.events) == "table" and page.events or {}) do
      if type(ev.id) == "number" and ev.id > self.last_id then
        self.last_id = ev.id
        if self.on_event then self.on_event(ev) end
      end
    end
    if type(page.nextToken) ~= "string" or page.nextToken == "" then return true end
    self.page_token = page.nextToken
  end
end

-- Polls that may fail in a row (throttling, network: each already retried) before giving up.
local MAX_FAILED_POLLS = 10

-- One poll: true while the execution runs. A retryable failure waits for the next poll.
function Remote:_poll()
  local d, err = self.client:call("DescribeExecution", { executionArn = self.arn })
  local operation = "DescribeExecution"
  if d then
    local ok
    ok, err = self:_history()
    if not ok then d, operation = nil, "GetExecutionHistory" end
  end
  if not d then
    self.failed_polls = (self.failed_polls or 0) + 1
    if not err.retryable or self.failed_polls >= MAX_FAILED_POLLS then self:_fail(operation, err) end
    return true
  end
  self.failed_polls = 0
  if d.status == "RUNNING" or d.status == "PENDING_REDRIVE" then return true end
  self.status = d.status
  if d.status == "SUCCEEDED" then
    local ok, v = pcall(json.decode, type(d.output) == "string" and d.output or "null")
    self.output = ok and v or d.output
  else
    self.error, self.cause = d.error, d.cause
  end
  return false
end

--- Waits up to max_wait_s for the next poll; true while the execution runs.
function Remote:step(max_wait_s)
  if self.status ~= "RUNNING" then return false end
  local left = self.next_poll - core.monotonic()
  if left > 0 then
    scheduler.sleep(math.min(left, max_wait_s or left))
    return true
  end
  local running = self:_poll()
  self.interval = math.min(self.interval * POLL_FACTOR, POLL_MAX)
  self.next_poll = core.monotonic() + self.interval
  return running
end

function Remote:stop(error_code, cause)
  local _, err = self.client:call("StopExecution",
    { executionArn = self.arn, error = error_code, cause = cause })
  if err then self:_fail("StopExecution", err) end
  self.next_poll = core.monotonic()
end

function Remote:wait()
  while self:step(1) do end
  return self.status
end

local function progress_wanted(opts, io_, progress)
  local env = os.getenv("EMRFLOW_PROGRESS")
  if opts.quiet or env == "0" then return false end
  if opts.progress or env == "1" then return true end
  if opts.events then return false end
  return io_.stderr == io.stderr and progress.is_terminal(2)
end

-- The history-event consumer: --events JSON lines and/or the progress display (as `run`).
local function event_sink(opts, io_)
  local progress = require "emrflow.progress"
  local sinks = {}
  if opts.events then sinks[#sinks + 1] = progress.events_writer(io_.stderr) end
  if progress_wanted(opts, io_, progress) then
    sinks[#sinks + 1] = progress.new{ stream = io_.stderr, enabled = true }:on_event()
  end
  if #sinks == 0 then return nil end
  return function(ev)
    for _, s in ipairs(sinks) do s(ev) end
  end
end

local function cmd_start(opts, pos, cli, io_)
  need_remote(opts, cli, "start")
  if #pos ~= 1 then cli.fail("start takes one STATE_MACHINE (a name or an ARN)") end
  if opts.name then check_name(cli, "--name", opts.name) end
  if opts.wait and cli.check_result_file then cli.check_result_file(opts) end
  if opts["result-file"] and not opts.wait then cli.fail("--result-file needs --wait") end
  local input = cli.read_input(opts, io_)
  local client = client_for(opts, cli)
  local arn = state_machine_arn(pos[1], client, cli)
  -- with --wait, a SIGINT / SIGTERM from now on stops the remote execution: caught, not fatal,
  -- even before cli.finish watches for it (else it would kill emrflow and leave the execution
  -- running with no result file)
  if opts.wait then core.signal.watch() end
  local out = must(cli, client, "StartExecution",
    { stateMachineArn = arn, name = opts.name or uuid4(), input = json.encode(input) })
  if not opts.wait then
    local started = json.object_of("executionArn", out.executionArn, "startDate", out.startDate)
    io_.stdout:write(json.encode(started), "\n")
    return 0
  end
  io_.stderr:write(fmt("emrflow: started %s\n", out.executionArn))
  if out.executionArn:match("^arn:[%w%-]+:states:[^:]*:[^:]*:express:") then
    cli.fail("--wait cannot follow an EXPRESS execution: Step Functions keeps no history for them "
      .. "(it goes to the state machine's CloudWatch Logs); the execution runs on")
  end
  local x = new_remote(client, out.executionArn, event_sink(opts, io_), cli)
  local sig = core.signal.pending()
  if sig then
    io_.stderr:write("emrflow: ", sig, " received: stopping the execution\n")
    x:stop("States.Aborted", "stopped by " .. sig)
  end
  return cli.finish(x, opts, io_)
end

local function cmd_stop(opts, pos, cli, io_)
  need_remote(opts, cli, "stop")
  if #pos ~= 1 or not pos[1]:match("^arn:[%w%-]+:states:[^:]*:%d*:execution:") then
    cli.fail("stop takes one EXECUTION_ARN (arn:aws:states:REGION:ACCOUNT:execution:MACHINE:NAME)")
  end
  local client = client_for(opts, cli)
  local out = must(cli, client, "StopExecution",
    { executionArn = pos[1] })
  io_.stdout:write(json.encode(json.object_of("executionArn", pos[1], "stopDate", out.stopDate)), "\n")
  return 0
end

-- ----------------------------------------------------------------------------
-- The extension
-- ----------------------------------------------------------------------------

M.commands = {
  deploy = {
    summary = "create or update the state machine on AWS Step Functions",
    usage = "emrflow deploy DEFINITION --name NAME --role-arn ARN [--type STANDARD|EXPRESS] [--publish]"
      .. " [--alias NAME]\n                      [--tag KEY=VALUE ...]"
      .. " [--logging-level LEVEL --log-group-arn ARN]"
      .. " [--tracing]",
    options = with_client_options {
      { name = "name", arg = "NAME", help = "the state machine's name (found by name when it exists)" },
      { name = "role-arn", arg = "ARN",
        help = "the IAM role the state machine runs as (see emrflow policy)" },
      { name = "type", arg = "STANDARD|EXPRESS",
        help = "workflow type of a new state machine (default STANDARD)" },
      { name = "publish",
        help = "publish a version (none is made when nothing changed: the latest is reported)" },
      { name = "alias", arg = "NAME", help = "point this alias at the version (implies --publish)" },
      { name = "tag", arg = "KEY=VALUE", repeated = true, help = "tag the state machine (repeat for more)" },
      { name = "logging-level", arg = "LEVEL", help = "ALL, ERROR, FATAL or OFF (CloudWatch Logs)" },
      { name = "log-group-arn", arg = "ARN", help = "the CloudWatch Logs log group ARN (ending in :*)" },
      { name = "tracing", help = "turn AWS X-Ray tracing on" },
    },
    run = cmd_deploy,
  },
  policy = {
    summary = "print the IAM policy the state machine's role needs for the integrations used",
    usage = "emrflow policy DEFINITION [--region R] [--role-arn ARN] [--compact]",
    options = {
      { name = "region", arg = "R", help = "the region in resource ARNs (default *)" },
      { name = "role-arn", arg = "ARN",
        help = "the role the policy is for: its account fills the resource ARNs (default *)" },
      { name = "compact", help = "print the policy on one line" },
    },
    run = cmd_policy,
  },
  start = {
    summary = "start an execution on AWS Step Functions (--wait follows it as run does)",
    usage = "emrflow start STATE_MACHINE --remote [--input JSON | --input-file FILE] [--name NAME] [--wait]",
    options = with_client_options {
      { name = "remote", help = "start it on AWS Step Functions (required)" },
      { name = "input", arg = "JSON",
        help = "execution input as JSON text (default {}); - reads standard input" },
      { name = "input-file", arg = "FILE",
        help = "read the execution input from FILE (- is standard input)" },
      { name = "name", arg = "NAME", help = "execution name (default: a generated one)" },
      { name = "wait", help = "follow the execution to its end; exit 0 succeeded, 2 failed" },
      { name = "result-file", arg = "FILE", help = "with --wait: write the result as run does" },
      { name = "events", help = "with --wait: write the history events as JSON lines on stderr" },
      { name = "progress", help = "with --wait: show progress even when stderr is not a terminal" },
      { name = "quiet", help = "with --wait: no progress" },
      { name = "compact", help = "print the output JSON on one line" },
    },
    run = cmd_start,
  },
  stop = {
    summary = "stop an execution on AWS Step Functions",
    usage = "emrflow stop EXECUTION_ARN --remote",
    options = with_client_options {
      { name = "remote", help = "the execution runs on AWS Step Functions (required)" },
    },
    run = cmd_stop,
  },
}

M.Remote = Remote
M.new_remote = new_remote

return M
