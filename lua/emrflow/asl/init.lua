-- emrflow.asl: load, validate and run Amazon States Language state machines.
--
--   local machine = asl.load(definition [, opts])   -- Lua table or ASL JSON text; raises on problems
--   local problems = asl.validate(definition [, opts]) -- { { path = "/States/A/Next", message = } }
--   local exec = machine:start(input, { name =, clock = "virtual" | "real" | scheduler,
--                                       scheduler =, history = true, ... })
--   local status, result = exec:wait()
--   exec:stop(error, cause); exec:history(); exec:step(); machine:to_json()
--   asl.register_resource(pattern_or_fn, { run = fn(input, ctx), validate = fn(state, path, problems) })
--
-- load options: name (state machine name), type ("STANDARD" | "EXPRESS"), region, account, role_arn,
--   resources = { ["<resource ARN>"] = function(input, ctx) | impl } (per machine).

local json = require "emrflow.json"
local engine = require "emrflow.asl.engine"
local execution = require "emrflow.asl.execution"
local validate = require "emrflow.asl.validate"
local resolve = require "emrflow.asl.resolve"
local definition = require "emrflow.asl.definition"
local export = require "emrflow.asl.export"
local common = require "emrflow.asl.common"

local M = {}

M.PAYLOAD_LIMIT = 262144

--- JSON shapes for Lua-written definitions and inputs (re-exports of emrflow.json's).
M.null = json.null
M.array = json.array
M.object = json.object

---------------------------------------------------------------------------
-- Task resource registry
---------------------------------------------------------------------------

local registry = {}

--- Registers an integration: `pattern` is a Lua pattern matched against the Resource
-- string (string.find) or a function(resource) --> boolean. Later registrations win.
-- impl.run(input, ctx) runs in the execution's task; impl.validate(state, path, problems)
-- (optional) adds load-time problems.
function M.register_resource(pattern, impl)
  local match
  if type(pattern) == "string" then
    match = function(resource) return resource:find(pattern) ~= nil end
  elseif type(pattern) == "function" then
    match = pattern
  else
    error("emrflow.asl.register_resource: pattern must be a string or a function", 2)
  end
  if type(impl) ~= "table" or type(impl.run) ~= "function" then
    error("emrflow.asl.register_resource: impl must be a table with a run function", 2)
  end
  if impl.validate ~= nil and type(impl.validate) ~= "function" then
    error("emrflow.asl.register_resource: impl.validate must be a function", 2)
  end
  local entry = { match = match, impl = impl, pattern = pattern }
  table.insert(registry, 1, entry)
  return entry
end

--- Removes a registration (the value register_resource returned).
function M.unregister_resource(entry)
  for i, e in ipairs(registry) do
    if e == entry then
      table.remove(registry, i)
      return true
    end
  end
  return false
end

-- Integrations are also found by convention, so that a machine using one works without the
-- caller requiring it first: a resource of service S (the ARN's service part: "emr-containers"
-- in arn:aws:states:::emr-containers:startJobRun, "emrcontainers" in
-- arn:aws:states:::aws-sdk:emrcontainers:listJobRuns) loads the module
-- emrflow.integrations.<S> (dashes as underscores) once, when it is installed; that module
-- registers its resources. The interpreter itself names no service.
local tried = {}
local function discover(resource)
  local service = resource:match("^arn:[%w%-]+:states:::aws%-sdk:([%w%-]+):")
    or resource:match("^arn:[%w%-]+:states:::([%w%-]+):")
  if not service or tried[service] then return false end
  tried[service] = true
  local name = "emrflow.integrations." .. (service:gsub("%-", "_"))
  if not package.searchpath(name, package.path) then return false end
  return (pcall(require, name))
end

local function registered(resource)
  for _, e in ipairs(registry) do
    if e.match(resource) then return e.impl end
  end
  return nil
end

local function lua_impl(fn)
  return { lua = true, run = function(input, ctx) return fn(input, ctx) end }
end
-- fn(resource) --> the registered integration (or the machine's own, load option `resources`).
local function resolver(opts)
  local own = opts and opts.resources
  return function(resource)
    if type(resource) == "function" then return lua_impl(resource) end
    if type(resource) ~= "string" then return nil end
    if own and own[resource] ~= nil then
      local r = own[resource]
      if type(r) == "function" then return lua_impl(r) end
      return r
    end
    local impl = registered(resource)
    if impl == nil and discover(resource) then impl = registered(resource) end
    return impl
  end
end

---------------------------------------------------------------------------
-- Definitions
---------------------------------------------------------------------------

local decode_definition = definition.decode

-- Every problem of a decoded definition `d` (from `def`); never raises.
local function problems_of(def, d, opts)
  local ok, problems = pcall(validate.check, d, { resolve = resolver(opts) })
  if not ok then
    -- a checker bug must still be a located problem, not a Lua traceback
    problems = { { path = "", message = "cannot validate the definition: "
      .. tostring(type(problems) == "table" and problems.Cause or problems):gsub("^[^:]*%.lua:%d+: ", "") } }
  end
  if type(def) == "string" and definition.may_have_duplicates(def, d) then
    for _, p in ipairs(definition.duplicate_keys(def)) do problems[#problems + 1] = p end
  end
  return problems
end

local function format_problems(problems)
  local lines = { "emrflow.asl: invalid state machine definition (" .. #problems .. " problem"
    .. (#problems == 1 and "" or "s") .. "):" }
  for _, p in ipairs(problems) do
    lines[#lines + 1] = "  " .. (p.path == "" and "/" or p.path) .. ": "
      .. (p.severity == "warning" and "(warning) " or "") .. p.message
  end
  return table.concat(lines, "\n")
end
M.format_problems = format_problems

--- Validates a definition; returns the list of problems ({} when valid). A problem with
-- severity = "warning" (a value an integration's API rejects at run time, e.g. a pattern) does
-- not stop asl.load; `emrflow validate` reports it and fails only with --strict.
function M.validate(def, opts)
  local ok, d = pcall(decode_definition, def)
  if not ok then return { type(d) == "table" and d or { path = "", message = tostring(d) } } end
  return problems_of(def, d, opts)
end

---------------------------------------------------------------------------
-- Machines
---------------------------------------------------------------------------

local Machine = {}
Machine.__index = Machine
M.Machine = Machine

local function check_name(name, what)
  if type(name) ~= "string" or #name < 1 or #name > 80 then
    error("emrflow.asl: " .. what .. " must be a string of 1 to 80 characters", 3)
  end
end

--- Loads (validates, then compiles) a definition. Raises with every problem located.
function M.load(def, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("emrflow.asl.load: options must be a table, got a " .. type(opts), 2)
  end
  opts = opts or {}
  local ok, d = pcall(decode_definition, def)
  if not ok then error(type(d) == "table" and format_problems({ d }) or d, 2) end
  -- warnings (value constraints an integration checks again at run time) do not stop a load
  local problems = {}
  for _, p in ipairs(problems_of(def, d, opts)) do
    if p.severity ~= "warning" then problems[#problems + 1] = p end
  end
  if #problems > 0 then error(format_problems(problems), 2) end
  if opts.type ~= nil and opts.type ~= "STANDARD" and opts.type ~= "EXPRESS" then
    error("emrflow.asl: type must be \"STANDARD\" or \"EXPRESS\"", 2)
  end
  local name = opts.name or "emrflow-machine"
  check_name(name, "state machine name")
  local region = opts.region or "us-east-1"
  local account = opts.account or "123456789012"
  local m = setmetatable({
    definition = d,
    name = name,
    region = region,
    account = account,
    arn = string.format("arn:aws:states:%s:%s:stateMachine:%s", region, account, name),
    role_arn = opts.role_arn or string.format("arn:aws:iam::%s:role/emrflow-execution", account),
    timeout_s = d.TimeoutSeconds,
    jsonata = execution.uses_jsonata(d),
    from_json = type(def) == "string",
    -- the JSON text as given (a store records it as it is, not encoded again)
    source_text = type(def) == "string" and def or nil,
    type = opts.type or "STANDARD",
    express = opts.type == "EXPRESS",
  }, Machine)
  m.resolve = resolver(opts)
  local cok, program = pcall(engine.compile, d, { resolve = m.resolve })
  if not cok then
    error("emrflow.asl: cannot compile the definition: " .. common.plain_message(program), 2)
  end
  m.program = program
  return m
end

--- Starts an execution. Options: name, clock ("virtual" | "real" | a scheduler), scheduler
-- (to share one), history (false keeps none), start_time (virtual clock start), role_arn,
-- on_event(event); anything else (emr, poll, ...) reaches Task integrations as ctx.options.
function Machine:start(input, opts)
  -- store hook: a recorded execution is started (and recorded) by its store
  if opts and opts.store ~= nil then return opts.store:start(self, input, opts) end
  return execution.start(self, input, opts)
end

-- Calls fn(state_def, pointer) for every state of a definition, nested ones included.
local function each_state(def, path, fn)
  if type(def) ~= "table" or type(def.States) ~= "table" then return end
  for _, name in ipairs(json.keys(def.States)) do
    local st = def.States[name]
    local p = path .. "/States/" .. name
    if type(st) == "table" then
      fn(name, st, p)
      if type(st.Branches) == "table" then
        for i, br in ipairs(st.Branches) do each_state(br, p .. "/Branches/" .. (i - 1), fn) end
      end
      local proc = st.ItemProcessor and "ItemProcessor" or st.Iterator and "Iterator"
      if proc then each_state(st[proc], p .. "/" .. proc, fn) end
    end
  end
end

--- The Task states nothing resolves with these start options (handlers, mocks, registered
-- integrations): a list of { state = <JSON pointer>, resource = <ARN> }, sorted by pointer.
function Machine:unresolved(opts)
  opts = opts or {}
  local handlers = resolve.handlers(opts.handlers)
  local mocks = resolve.mocks(opts.mocks, self.name)
  local lookup = self.resolve
  local out = {}
  each_state(self.definition, "", function(name, st, p)
    if st.Type == "Task" and not resolve.resolvable(handlers, mocks, name, st.Resource, lookup) then
      out[#out + 1] = { state = p, resource = st.Resource }
    end
  end)
  table.sort(out, function(a, b) return a.state < b.state end)
  return out
end

--- Convenience: start, then wait. Returns status, output | {Error=, Cause=}, execution.
function Machine:run(input, opts)
  local x = self:start(input, opts)
  local status, res = x:wait()
  return status, res, x
end

--- The machine as ASL JSON text (pretty unless { compact = true }). A Lua function Resource
-- raises unless { placeholder_arns = true }: then a Lambda function ARN in the machine's
-- region and account (or opts.region, opts.account) takes its place.
function Machine:to_json(opts)
  local o = { region = self.region, account = self.account }
  for k, v in pairs(opts or {}) do o[k] = v end
  local ok, text = pcall(export.to_json, self.definition, o)
  if not ok then error(text, 2) end
  return text
end

--- Starts (and, by default, waits for) an execution of a definition in one call.
function M.run(def, input, opts)
  opts = opts or {}
  local m = M.load(def, opts)
  return m:run(input, opts)
end

return M
