-- emrflow.cli: the `emrflow` command.
--
--   emrflow run DEFINITION [--input JSON | --input-file FILE] [--name NAME]
--               [--local] [--scenario FILE] [--poll-rate N] [--region R] [--endpoint-url URL]
--               [--result-file FILE] [--events] [--clock virtual|real]
--   emrflow validate DEFINITION
--   emrflow export DEFINITION.lua
--
-- DEFINITION is an ASL .json file or a .lua file returning a definition table. Exit codes:
-- 0 succeeded, 2 the execution failed (FAILED, TIMED_OUT, ABORTED), 1 emrflow could not run.
-- Progress goes to stderr; on success stdout gets the output JSON.
--
-- Options are data: M.options[command] lists { name =, arg = METAVAR | nil, help = } and
-- M.start_hooks are called as hook(opts, start_opts, io) before an execution starts, so an
-- integration can add its own options (see the EMR on EKS ones below) without touching the
-- parser. M.integrations lists modules required (when present) to register Task resources.

local core = require "emrflow.core"
local json = require "emrflow.json"
local asl = require "emrflow.asl"

local M = {}

local EXIT_OK, EXIT_INTERNAL, EXIT_FAILED = 0, 1, 2

M.options = {
  run = {
    { name = "input", arg = "JSON", help = "execution input as JSON text (default {})" },
    { name = "input-file", arg = "FILE", help = "read the execution input from FILE" },
    { name = "name", arg = "NAME", help = "execution name" },
    { name = "result-file", arg = "FILE",
      help = "write {\"status\":...,\"output\"|\"error\",\"cause\"} to FILE" },
    { name = "clock", arg = "virtual|real", help = "clock for Wait states and back-off (default real)" },
    { name = "local", help = "run EMR on EKS calls against the built-in emulator (virtual clock)" },
    { name = "scenario", arg = "FILE", help = "emulator scenario (JSON) for --local" },
    { name = "poll-rate", arg = "N", help = ".sync polling: requests per second per endpoint" },
    { name = "region", arg = "R", help = "AWS region for integrations" },
    { name = "endpoint-url", arg = "URL", help = "endpoint override for integrations" },
    { name = "events", help = "print history events to stderr as they happen" },
  },
  validate = {},
  export = {
    { name = "compact", help = "print compact JSON" },
    { name = "placeholder-arns", help = "emit a placeholder ARN for Lua function resources" },
  },
}

M.usage = [[
usage: emrflow run DEFINITION [--input JSON | --input-file FILE] [--name NAME]
                   [--local] [--scenario FILE] [--poll-rate N] [--region R] [--endpoint-url URL]
                   [--result-file FILE] [--events] [--clock virtual|real]
       emrflow validate DEFINITION
       emrflow export DEFINITION.lua [--compact] [--placeholder-arns]
]]

-- Modules that register Task resource integrations when required (missing ones are skipped).
M.integrations = { "emrflow.emr.integration", "emrflow.emr.tasks" }

local function fail(msg)
  error({ cli = true, message = msg }, 0)
end

--- Parses argv for one command. Returns opts (name -> value | true), positional list.
function M.parse(command, argv, first)
  local specs = M.options[command]
  if not specs then fail("unknown command '" .. tostring(command) .. "'") end
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
    if name then
      local spec = by_name[name]
      if not spec then fail("unknown option --" .. name .. " for '" .. command .. "'") end
      if spec.arg then
        local v = inline
        if v == nil then
          i = i + 1
          v = argv[i]
          if v == nil then fail("option --" .. name .. " needs a value (" .. spec.arg .. ")") end
        end
        opts[name] = v
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

local function read_file(path, what)
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

local function load_integrations()
  for _, name in ipairs(M.integrations) do
    local ok, err = pcall(require, name)
    if not ok and not tostring(err):find("module '" .. name .. "' not found", 1, true) then
      fail("cannot load integration " .. name .. ": " .. tostring(err))
    end
  end
end

--- Reads a definition file: .lua files run and return a table; anything else is ASL JSON.
function M.read_definition(path)
  if not path then fail("missing DEFINITION") end
  if path:sub(-4) == ".lua" then
    local chunk, err = loadfile(path, "t")
    if not chunk then fail("cannot load " .. path .. ": " .. tostring(err)) end
    local ok, def = pcall(chunk)
    if not ok then fail(path .. " raised: " .. tostring(def)) end
    if type(def) ~= "table" then fail(path .. " must return a definition table, got " .. type(def)) end
    return def
  end
  return read_file(path, "definition " .. path)
end

-- Hooks that turn CLI options into machine:start options.
M.start_hooks = {
  function(opts, start)
    if opts.clock then
      if opts.clock ~= "virtual" and opts.clock ~= "real" then fail("--clock must be virtual or real") end
      start.clock = opts.clock
    end
    if opts.region then start.region = opts.region end
    if opts["endpoint-url"] then start.endpoint_url = opts["endpoint-url"] end
    if opts["poll-rate"] then
      local n = tonumber(opts["poll-rate"])
      if not n or n <= 0 then fail("--poll-rate must be a positive number") end
      start.poll = { rate = n }
    end
  end,
  function(opts, start)
    if opts.scenario and not opts["local"] then fail("--scenario needs --local") end
    if not opts["local"] then return end
    local ok, emulator = pcall(require, "emrflow.emulator")
    if not ok then fail("--local needs the emrflow.emulator module: " .. tostring(emulator)) end
    local scenario = {}
    if opts.scenario then
      local lok, sc = pcall(emulator.load_scenario, opts.scenario)
      if not lok then fail(tostring(sc)) end
      scenario = sc
    end
    local eok, emu = pcall(emulator.new, scenario, { region = start.region })
    if not eok then fail(tostring(emu)) end
    start.emr = emu
    start.clock = start.clock or "virtual"
  end,
  function(opts, start, stderr)
    if not opts.events then return end
    start.on_event = function(ev)
      local parts = { string.format("[%d] %s", ev.id, ev.type) }
      for k, v in pairs(ev) do
        if type(v) == "table" and k:sub(-12) == "EventDetails" then
          if v.name then parts[#parts + 1] = v.name end
          if v.error then parts[#parts + 1] = "error=" .. tostring(v.error) end
        end
      end
      stderr:write(table.concat(parts, " "), "\n")
    end
  end,
}

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

--- Drives an execution to its end. SIGINT / SIGTERM abort it: exec:stop() cancels
-- every running job, and the execution ends ABORTED. Returns the final status.
function M.drive(x, stderr)
  local signal = core.signal
  signal.watch()
  local ok, err = pcall(function()
    local stopping = false
    while x:step(0.25) do
      local sig = signal.pending()
      if sig and not stopping then
        stopping = true
        stderr:write("emrflow: ", sig, " received: stopping the execution\n")
        x:stop("States.Aborted", "stopped by " .. sig)
      end
    end
  end)
  signal.unwatch()
  if not ok then error(err, 0) end
  return (x:wait())
end

local function cmd_run(argv, stdout, stderr)
  local opts, pos = M.parse("run", argv, 2)
  if #pos ~= 1 then fail("run takes one DEFINITION") end
  if opts.input and opts["input-file"] then fail("give --input or --input-file, not both") end
  local input = json.object {}
  local input_text = opts.input or (opts["input-file"] and read_file(opts["input-file"], "input file"))
  if input_text then
    local ok, v = pcall(json.decode, input_text)
    if not ok then fail("the input is not valid JSON: " .. tostring(v)) end
    input = v
  end
  if opts["result-file"] then
    -- find out before running (a job could take hours) that the result cannot be written
    local f, err = io.open(opts["result-file"], "ab")
    if not f then fail("cannot write --result-file: " .. tostring(err)) end
    f:close()
  end
  load_integrations()
  local def = M.read_definition(pos[1])
  local base = pos[1]:match("([^/]*)$"):gsub("%.%w+$", ""):gsub("[^%w%-_]", "-")
  if base == "" then base = "emrflow-machine" end
  local ok, machine = pcall(asl.load, def, { name = base:sub(1, 80), region = opts.region })
  if not ok then fail(tostring(machine)) end
  if opts.name ~= nil and (#opts.name < 1 or utf8.len(opts.name) == nil or utf8.len(opts.name) > 80) then
    fail("--name must be 1 to 80 characters")
  end
  local start = { name = opts.name }
  for _, hook in ipairs(M.start_hooks) do hook(opts, start, stderr) end
  local sok, x = pcall(machine.start, machine, input, start)
  if not sok then fail((tostring(x):gsub("^[^\n]-%.lua:%d+: ", ""))) end
  stderr:write(string.format("emrflow: started %s\n", x.arn))
  local wok, status = pcall(M.drive, x, stderr)
  if not wok then fail("the execution crashed: " .. tostring(status)) end
  if opts["result-file"] then write_result_file(opts["result-file"], status, x) end
  if status == "SUCCEEDED" then
    stderr:write("emrflow: SUCCEEDED\n")
    stdout:write(json.encode(x.output), "\n")
    return EXIT_OK
  end
  stderr:write(string.format("emrflow: %s%s%s\n", status,
    x.error and (" error=" .. x.error) or "", x.cause and (" cause=" .. x.cause) or ""))
  return EXIT_FAILED
end

local function cmd_validate(argv, stdout, stderr)
  local _, pos = M.parse("validate", argv, 2)
  if #pos ~= 1 then fail("validate takes one DEFINITION") end
  load_integrations()
  local def = M.read_definition(pos[1])
  local problems = asl.validate(def)
  if #problems == 0 then
    stdout:write(pos[1] .. ": valid\n")
    return EXIT_OK
  end
  stderr:write(asl.format_problems(problems):gsub("^emrflow%.asl: ", pos[1] .. ": ") .. "\n")
  return EXIT_INTERNAL
end

local function cmd_export(argv, stdout)
  local opts, pos = M.parse("export", argv, 2)
  if #pos ~= 1 then fail("export takes one DEFINITION") end
  load_integrations()
  local def = M.read_definition(pos[1])
  local ok, machine = pcall(asl.load, def)
  if not ok then fail(tostring(machine)) end
  local eok, text = pcall(machine.to_json, machine,
    { compact = opts.compact, placeholder_arns = opts["placeholder-arns"] })
  if not eok then fail(tostring(text)) end
  stdout:write(text, "\n")
  return EXIT_OK
end

local commands = { run = cmd_run, validate = cmd_validate, export = cmd_export }

--- Runs the command line; returns the exit code. io_ = { stdout =, stderr = } for tests.
function M.execute(argv, io_)
  io_ = io_ or {}
  local stdout, stderr = io_.stdout or io.stdout, io_.stderr or io.stderr
  local cmd = argv[1]
  if cmd == nil or cmd == "-h" or cmd == "--help" or cmd == "help" then
    (cmd == nil and stderr or stdout):write(M.usage)
    return cmd == nil and EXIT_INTERNAL or EXIT_OK
  end
  local fn = commands[cmd]
  if not fn then
    stderr:write("emrflow: unknown command '" .. tostring(cmd) .. "'\n" .. M.usage)
    return EXIT_INTERNAL
  end
  local ok, code = pcall(fn, argv, stdout, stderr)
  if ok then return code end
  if type(code) == "table" and code.cli then
    stderr:write("emrflow: ", code.message, "\n")
  else
    stderr:write("emrflow: internal error: ", tostring(code), "\n", debug.traceback(), "\n")
  end
  return EXIT_INTERNAL
end

--- Entry point of bin/emrflow: exits with the command's code.
function M.main(argv)
  local code = M.execute(argv or {})
  io.stdout:flush()
  os.exit(code)
end

require("emrflow.progress").install_cli(M)

return M
