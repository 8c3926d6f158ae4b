-- emrflow.asl.states.task: the Task state: its fields, its checks and its execution.

local json = require "emrflow.json"
local scheduler = require "emrflow.scheduler"
local common = require "emrflow.asl.common"
local qjsonpath = require "emrflow.asl.query.jsonpath"
local rt = require "emrflow.asl.runtime"
local pipeline = require "emrflow.asl.pipeline"
local resolve = require "emrflow.asl.resolve"
local handlers = require "emrflow.asl.handlers"

local NULL = json.null
local DEFAULT_TASK_TIMEOUT = 99999999
local fmt = string.format
local runtime = common.runtime
local show = common.show
local size_check = common.size_check
local to_data = common.to_data
local integer_value = common.integer_value
local compile_path = qjsonpath.compile_path
local missing_io_path = qjsonpath.missing_io_path
local emit = rt.emit
local compile_template = pipeline.compile_template
local io_fields = pipeline.io_fields
local effective_input = pipeline.effective_input
local finish = pipeline.finish
local compile_retriers = handlers.compile_retriers
local compile_catchers = handlers.compile_catchers
local handled = handlers.handled
local is_int = common.is_int
local is_jsonata_expr = common.is_jsonata_expr
local join = common.join
local words = common.words

local M = {}


local function resource_parts(resource)
  if type(resource) == "function" then return "lua", "function" end
  local service, action = resource:match("^arn:[^:]+:states:[^:]*:[^:]*:([^:]+):(.+)$")
  if service then return service, action end
  return "unknown", resource
end

local function task_timeout(st, eff, env, fixed, path, field)
  if path then
    local v = path(eff, env)
    local n = integer_value(v)
    if not n or n < 1 then
      runtime(fmt("The %s field refers to value \"%s\" which is not a valid integer: %s", field, show(v),
        tostring(st.def[field])))
    end
    return n
  end
  return fixed
end

-- Cancels the child of a Task whose outcome the last look decided (its error is no ASL error:
-- the integration does no clean-up for it, its job having ended).
local SUPERSEDED = { superseded = true }

-- At the deadline, before States.Timeout: the impl's last look at its work (ctx.last_look,
-- set by an integration that polls a remote job), so a job that ended in time is reported by
-- its real outcome. Returns true, result | false, err, or nil when the time is up. An abort
-- of the execution (stop, its own timeout) arriving meanwhile goes on up.
local function last_look(ctx, deadline)
  if type(ctx.last_look) ~= "function" then return nil end
  local ok, done, res = pcall(ctx.last_look, deadline)
  if not ok then
    if type(done) == "table" and done.Error and not done.aborted and not done.timed_out then
      return false, done
    end
    error(done, 0)
  end
  if done == nil then return nil end
  return done, res
end

-- Calls impl.run(input, ctx) inside the current task, or in a child task bounded by the
-- timeout / heartbeat. The child is cancelled with States.Timeout when time runs out.
-- ctx.started_at (a resumed attempt: when the interrupted process started it) is when the
-- timeout counts from; a deadline already passed times out at once, once the child has had
-- its first turn (to find again what the attempt had started, so that it is cancelled).
-- bounded: the Task has a TimeoutSeconds of its own (the default one, 99999999 s, is longer
-- than a Standard execution may run: no watchdog for it).
local function invoke(impl, input, ctx, timeout, heartbeat, bounded)
  if not bounded and not heartbeat then
    return impl.run(input, ctx)
  end
  local s = scheduler.current()
  local beat = scheduler.now()
  ctx.heartbeat = function() beat = scheduler.now() end
  local child = s:spawn(function() return impl.run(input, ctx) end)
  local deadline = (ctx.started_at or scheduler.now()) + timeout
  local outcome
  local ok, err = pcall(function()
    -- late: a resumed attempt past its deadline; what its child does now is after the deadline
    local late = deadline <= scheduler.now()
    while late or not child:done() do
      local now = scheduler.now()
      local limit = deadline - now
      local hb_left
      if heartbeat then
        hb_left = beat + heartbeat - now
        if hb_left < limit then limit = hb_left end
      end
      local finished = scheduler.wait_any({ child }, math.max(0, limit))
      if late or not finished then
        now = scheduler.now()
        if now >= deadline then
          outcome = table.pack(last_look(ctx, deadline))
          if outcome[1] ~= nil then error(SUPERSEDED, 0) end
          error({ Error = "States.Timeout", from_task = true }, 0)
        elseif heartbeat and now >= beat + heartbeat then
          error({ Error = "States.HeartbeatTimeout", from_task = true }, 0)
        end
      end
    end
  end)
  if not ok then
    s:cancel(child, err)
    pcall(scheduler.join, { child })
    if err ~= SUPERSEDED then error(err, 0) end
    if not outcome[1] then error(outcome[2], 0) end
    return outcome[2]
  end
  local res = table.pack(child:result())
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

function M.compile(st, def, b)
  io_fields(st, def)
  st.retry = compile_retriers(def.Retry)
  st.catch = compile_catchers(def.Catch, st)
  st.needs_context = true
  local resource = def.Resource
  local lookup = b.resolve
  local registered = type(resource) == "string" and lookup and lookup(resource) or nil
  local rtype, rname = resource_parts(resource)
  local timeout_path = def.TimeoutSecondsPath and compile_path(def.TimeoutSecondsPath, missing_io_path)
  local hb_path = def.HeartbeatSecondsPath and compile_path(def.HeartbeatSecondsPath, missing_io_path)
  local timeout_static, hb_static = def.TimeoutSeconds, def.HeartbeatSeconds
  local credentials
  if st.jsonata then
    -- JSONata: TimeoutSeconds and HeartbeatSeconds may be expressions, Credentials holds them
    credentials = pipeline.field(st, def, "Credentials")
    if is_jsonata_expr(timeout_static) then
      local fn = pipeline.field(st, def, "TimeoutSeconds")
      timeout_path, timeout_static = function(_, env) return fn(env) end, nil
    end
    if is_jsonata_expr(hb_static) then
      local fn = pipeline.field(st, def, "HeartbeatSeconds")
      hb_path, hb_static = function(_, env) return fn(env) end, nil
    end
  else
    credentials = def.Credentials ~= nil and compile_template(def.Credentials, "Credentials") or nil
  end
  local state_path = b.prefix .. "/States/" .. st.name

  local function work(frame, env, attempt)
    local x = frame.x
    local input = env.raw
    local impl, why = resolve.task(x, st.name, resource, registered, lookup)
    if not impl then runtime(why) end
    local eff = effective_input(st, input, env)
    env.input = eff
    local params = eff
    if st.parameters then params = st.parameters(env) end
    local timeout = task_timeout(st, eff, env, timeout_static or DEFAULT_TASK_TIMEOUT, timeout_path,
      "TimeoutSecondsPath")
    local heartbeat = task_timeout(st, eff, env, hb_static, hb_path, "HeartbeatSecondsPath")
    emit(frame, "TaskScheduled", "taskScheduledEventDetails", x.keep and {
      resourceType = rtype, resource = rname, region = x.region, parameters = params,
      timeoutInSeconds = timeout_static or timeout_path and timeout or nil,
      heartbeatInSeconds = heartbeat,
    } or nil)
    emit(frame, "TaskStarted", "taskStartedEventDetails",
      x.keep and { resourceType = rtype, resource = rname } or nil)
    local ctx = {
      execution = x.handle, state_name = st.name, state_path = state_path, attempt = attempt,
      client_token_seed = x.id .. "\n" .. state_path .. rt.frame_key(frame) .. "\n" .. attempt,
      context = env.context, scheduler = x.s, options = x.options, timeout_s = timeout,
      heartbeat_s = heartbeat, region = x.region,
      credentials = credentials and credentials(env) or nil,
      events = {
        add = function(_, etype, details)
          emit(frame, etype, etype:sub(1, 1):lower() .. etype:sub(2) .. "EventDetails", details)
        end,
      },
    }
    -- store hook: a resumed execution takes the attempt's recorded outcome, else calls again
    local ok, result
    -- (a started attempt without a recorded outcome gets ctx.recorded_attempt = true)
    if x.replay then ok, result = x.replay:task(frame, ctx) end
    if ok == nil then
      ok, result = pcall(invoke, impl, params, ctx, timeout, heartbeat,
        timeout_static ~= nil or timeout_path ~= nil)
    end
    if not ok then
      local err = result
      if type(err) ~= "table" or (err.Error == nil and not err.aborted) then
        err = { Error = "States.TaskFailed", Cause = common.plain_message(err) }
      end
      if err.aborted or err.timed_out then error(err, 0) end
      local e = { Error = err.Error, Cause = err.Cause, from_task = true }
      if e.Error == "States.Timeout" or e.Error == "States.HeartbeatTimeout" then
        emit(frame, "TaskTimedOut", "taskTimedOutEventDetails",
          x.keep and { resourceType = rtype, resource = rname, error = e.Error, cause = e.Cause } or nil)
      else
        emit(frame, "TaskFailed", "taskFailedEventDetails",
          x.keep and { resourceType = rtype, resource = rname, error = e.Error, cause = e.Cause } or nil)
      end
      error(e, 0)
    end
    if impl.lua or impl.mock then result = to_data(result, "the result of Task state '" .. st.name .. "'") end
    if result == nil then result = NULL end
    -- the 256 KiB quota holds for the task's result itself, before ResultSelector shrinks it
    size_check(st.name, result)
    emit(frame, "TaskSucceeded", "taskSucceededEventDetails",
      x.keep and { resourceType = rtype, resource = rname, output = result } or nil)
    return finish(frame, st, input, env, result)
  end

  st.exec = handled(st, work)
end


M.resource_parts = resource_parts
M.task_timeout = task_timeout
M.invoke = invoke


-- The fields of a Task state in each query language (besides Type, Comment, QueryLanguage).
M.fields = {
  JSONPath = words [[
    Next End Resource InputPath OutputPath Parameters ResultSelector ResultPath Retry Catch
    TimeoutSeconds TimeoutSecondsPath HeartbeatSeconds HeartbeatSecondsPath Credentials Assign]],
  JSONata = words [[
    Next End Resource Arguments Output Retry Catch TimeoutSeconds HeartbeatSeconds Credentials
    Assign]],
}

-- The ARN grammar of every resource Step Functions accepts (emrflow.asl.resources), or,
-- until that module is there, a permissive check of the ARN's form.
local function resource_problem(arn)
  local ok, resources = pcall(require, "emrflow.asl.resources")
  if ok and type(resources) == "table" and resources.check then return resources.check(arn) end
  if not arn:match("^arn:[%w%-]+:[%w%-]+:") then
    return fmt("%q is not a resource ARN (arn:<partition>:states:::<service>:<action>, a Lambda "
      .. "function or an activity ARN)", arn)
  end
  return nil
end

-- Load-time checks of the fields (validate.lua calls it with its checker `c`).
function M.check(c, def, path, _, lang)
  local r = def.Resource
  if r == nil then
    c:add(join(path, "Resource"), "is required")
  elseif type(r) ~= "string" and type(r) ~= "function" then
    c:add(join(path, "Resource"), "must be a resource ARN (or, in a Lua-defined machine, a function)")
  else
    local impl = c.resolve and c.resolve(r)
    local problem = not impl and type(r) == "string" and resource_problem(r)
    if problem then
      c:add(join(path, "Resource"), problem)
    elseif type(impl) == "table" and impl.validate then
      local ok, err = pcall(impl.validate, def, path, c.problems)
      if not ok then c:add(join(path, "Resource"), "integration check failed: " .. tostring(err)) end
    end
  end
  c:exclusive(def, path, "TimeoutSeconds", "TimeoutSecondsPath")
  c:exclusive(def, path, "HeartbeatSeconds", "HeartbeatSecondsPath")
  local jsonata = lang == "JSONata"
  if def.TimeoutSeconds ~= nil and not (jsonata and is_jsonata_expr(def.TimeoutSeconds)) then
    c:positive_int(def.TimeoutSeconds, join(path, "TimeoutSeconds"))
  end
  if def.HeartbeatSeconds ~= nil and not (jsonata and is_jsonata_expr(def.HeartbeatSeconds)) then
    if c:positive_int(def.HeartbeatSeconds, join(path, "HeartbeatSeconds"))
        and is_int(def.TimeoutSeconds) and def.HeartbeatSeconds >= def.TimeoutSeconds then
      c:add(join(path, "HeartbeatSeconds"), "HeartbeatSeconds must be smaller than TimeoutSeconds")
    end
  end
  if def.TimeoutSecondsPath ~= nil then
    c:path(def.TimeoutSecondsPath, join(path, "TimeoutSecondsPath"))
  end
  if def.HeartbeatSecondsPath ~= nil then
    c:path(def.HeartbeatSecondsPath, join(path, "HeartbeatSecondsPath"))
  end
end

return M
