-- emrflow.asl.resolve: which implementation runs a Task's resource, at run time.
--
-- First match wins (DESIGN "Resources, handlers and mocks"):
--   1. a Lua handler given at start: opts.handlers = { [resource or glob with *] = fn(input, ctx) };
--   2. a mock: opts.mocks = an object with :lookup(state_name, invocation) (or
--      { config = <table | path>, test_case =, machine_name = } for emrflow.asl.mocks);
--   3. an integration registered with asl.register_resource (looked up by the machine's resolver);
--   4. nothing: the Task fails with States.Runtime.
-- Invocations of a state are counted per execution from 0, retries included.

local M = {}

local fmt = string.format

-- A Lua function or handler reads Step Functions' Context object through its second
-- argument as well (context.Execution.Name, context.State.Name, context.Map.Item ...), besides
-- emrflow's own fields (state_name, attempt, scheduler ...).
local CONTEXT_VIEW = { __index = function(ctx, k)
  local c = rawget(ctx, "context")
  if type(c) == "table" then return c[k] end
  return nil
end }

local function lua_impl(fn)
  return { lua = true, run = function(input, ctx)
    if type(ctx) == "table" and getmetatable(ctx) == nil then setmetatable(ctx, CONTEXT_VIEW) end
    return fn(input, ctx)
  end }
end

-- A glob ("arn:aws:states:::lambda:*") as an anchored Lua pattern.
local function glob_pattern(glob)
  return "^" .. glob:gsub("[%^%$%(%)%%%.%[%]%+%-%?]", "%%%0"):gsub("%*", ".*") .. "$"
end

--- Compiles opts.handlers into { exact = { resource -> impl }, globs = { { pattern, impl } } }.
-- Raises (caller misuse) on a handler that is not a function.
function M.handlers(map)
  if map == nil then return nil end
  if type(map) ~= "table" then error("emrflow.asl: handlers must be a table { [resource] = function }", 0) end
  local exact, globs = {}, {}
  local keys = {}
  for k in pairs(map) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(keys) do
    local fn = map[k]
    if type(k) ~= "string" or type(fn) ~= "function" then
      error(fmt("emrflow.asl: handlers[%q] must be a function keyed by a resource string", tostring(k)), 0)
    end
    if k:find("*", 1, true) then
      globs[#globs + 1] = { glob_pattern(k), lua_impl(fn) }
    else
      exact[k] = lua_impl(fn)
    end
  end
  return { exact = exact, globs = globs }
end

local function handler_for(h, resource)
  if not h or type(resource) ~= "string" then return nil end
  local impl = h.exact[resource]
  if impl then return impl end
  for _, g in ipairs(h.globs) do
    if resource:find(g[1]) then return g[2] end
  end
  return nil
end

--- The mocks object of opts.mocks (an object with :lookup, or a config for emrflow.asl.mocks).
function M.mocks(spec, machine_name)
  if spec == nil then return nil end
  if type(spec) == "table" and type(spec.lookup) == "function" then return spec end
  if type(spec) ~= "table" then
    error("emrflow.asl: mocks must be { config = <table or path>, test_case = \"...\" } or a mocks object", 0)
  end
  local ok, mocks = pcall(require, "emrflow.asl.mocks")
  if not ok then error("emrflow.asl: mocks are not available (emrflow.asl.mocks is missing)", 0) end
  local obj, err = mocks.new(spec.config, spec.test_case, spec.machine_name or machine_name)
  if not obj then error("emrflow.asl: " .. tostring(err), 0) end
  return obj
end

-- An implementation answering from a mock response.
local function mock_impl(response)
  return { mock = true, run = function()
    if response.Throw ~= nil then
      local t = response.Throw
      error({ Error = t.Error, Cause = t.Cause }, 0)
    end
    return response.Return
  end }
end

--- The implementation for one invocation of a Task state (x: the execution; st_name: the
-- state's name; resource: its Resource; registered: the load-time integration or nil;
-- lookup: fn(resource) --> registered integration, for ones registered after load).
-- Returns impl, or nil, cause.
function M.task(x, st_name, resource, registered, lookup)
  if type(resource) == "function" then return lua_impl(resource) end
  local impl = handler_for(x.handlers, resource)
  if impl then return impl end
  if x.mocks then
    local counts = x.invocations
    local n = counts[st_name] or 0
    counts[st_name] = n + 1
    local response, err = x.mocks:lookup(st_name, n)
    if response then return mock_impl(response) end
    if err then return nil, tostring(err) end
  end
  impl = registered or (lookup and lookup(resource))
  if impl then return impl end
  return nil, fmt("No implementation for the resource '%s' of state '%s': give a Lua handler "
    .. "(machine:start option handlers = { [resource] = function(input, context) ... end }) or a "
    .. "mock (--mock-config FILE --test-case NAME)", tostring(resource), tostring(st_name))
end

--- Does anything resolve `resource` for state `st_name` with these execution settings?
function M.resolvable(handlers, mocks, st_name, resource, lookup)
  if type(resource) == "function" then return true end
  if handler_for(handlers, resource) then return true end
  if mocks then
    -- a state mocked from any invocation on (not only the first) is resolved
    if type(mocks.mocks) == "function" then
      if mocks:mocks(st_name) then return true end
    elseif mocks:lookup(st_name, 0) then
      return true
    end
  end
  return lookup(resource) ~= nil
end

return M
