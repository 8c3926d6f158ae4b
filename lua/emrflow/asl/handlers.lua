-- emrflow.asl.handlers: Retry and Catch.
--
-- Matching follows AWS: States.ALL matches neither States.Runtime nor States.DataLimitExceeded
-- (terminal errors; a rule naming them explicitly does match), States.TaskFailed matches
-- Task errors except States.Timeout.

local json = require "emrflow.json"
local scheduler = require "emrflow.scheduler"
local context = require "emrflow.asl.context"
local common = require "emrflow.asl.common"
local rt = require "emrflow.asl.runtime"
local pipeline = require "emrflow.asl.pipeline"

local normalize = common.normalize
local emit = rt.emit
local enter = rt.enter
local exit_state = rt.exit_state
local compile_template = pipeline.compile_template
local io_fields = pipeline.io_fields
local apply_result_path = pipeline.apply_result_path
local apply_assign = pipeline.apply_assign

local M = {}


local function compile_retriers(list)
  if list == nil then return nil end
  local out = {}
  for i, r in ipairs(list) do
    local names, all, task_failed = {}, false, false
    for _, e in ipairs(r.ErrorEquals) do
      names[e] = true
      if e == "States.ALL" then all = true end
      if e == "States.TaskFailed" then task_failed = true end
    end
    out[i] = {
      names = names, all = all, task_failed = task_failed,
      interval = r.IntervalSeconds or 1,
      max = r.MaxAttempts == nil and 3 or r.MaxAttempts,
      backoff = r.BackoffRate or 2.0,
      max_delay = r.MaxDelaySeconds,
      jitter = r.JitterStrategy == "FULL",
    }
  end
  return out
end

-- Catchers of state st. JSONPath: ResultPath and Assign (on the error output); JSONata: Output
-- (the error output by default) and Assign, with $states.errorOutput.
local function compile_catchers(list, st)
  if list == nil then return nil end
  local out = {}
  for i, c in ipairs(list) do
    local rule = compile_retriers({ { ErrorEquals = c.ErrorEquals } })[1]
    rule.next_name = c.Next
    local pseudo = {}
    if st and st.jsonata then
      rule.jsonata = true
      rule.output = pipeline.field(st, c, "Output")
      if c.Assign ~= nil then rule.assign = pipeline.assign_field(st, c.Assign) end
    else
      if c.ResultPath ~= nil then
        io_fields(pseudo, { ResultPath = c.ResultPath })
      end
      if c.Assign ~= nil then rule.assign = compile_template(c.Assign, "Assign") end
    end
    rule.io = pseudo
    out[i] = rule
  end
  return out
end

-- Does a retrier/catcher match this error? States.ALL never matches the terminal errors
-- States.Runtime and States.DataLimitExceeded (AWS Developer Guide, "Handling errors"); a rule
-- naming one explicitly does. States.TaskFailed matches Task errors except States.Timeout.
local TERMINAL = { ["States.Runtime"] = true, ["States.DataLimitExceeded"] = true }

local function matches(rule, err)
  local name = err.Error
  if name ~= nil and rule.names[name] then return true end
  if TERMINAL[name] then return false end
  if rule.all then return true end
  if rule.task_failed and err.from_task and name ~= "States.Timeout" then return true end
  return false
end

---------------------------------------------------------------------------
-- Retry and Catch around a state's work
---------------------------------------------------------------------------

local function backoff_delay(r, attempt)
  local d = r.interval * r.backoff ^ (attempt - 1)
  if r.max_delay and d > r.max_delay then d = r.max_delay end
  if r.jitter then d = math.random() * d end
  return d
end

-- work(frame, env, retry_count) --> output; handles Retry and Catch for st.
-- Returns next_state, output.
local function with_handlers(frame, st, input, env, work)
  local counts
  local retry_count = 0
  while true do
    local ok, out = pcall(work, frame, env, retry_count)
    if ok then return st.next, out end
    local err = normalize(out, frame)
    if err.aborted or err.timed_out then error(err, 0) end
    local evaluation = rt.evaluation_failed(frame, err)
    local retried = false
    if st.retry then
      for i, r in ipairs(st.retry) do
        if matches(r, err) then
          counts = counts or {}
          local n = (counts[i] or 0) + 1
          if n <= r.max then
            counts[i] = n
            retry_count = retry_count + 1
            local delay = backoff_delay(r, n)
            -- store hook: a resumed execution keeps the recorded back-off deadline
            if frame.x.replay then delay = frame.x.replay:backoff(frame, delay) end
            if delay > 0 then scheduler.sleep(delay) end
            if st.needs_context then
              env.context = context.object(frame.x, st.name, frame.x.s:now(), retry_count, nil)
            end
            retried = true
          end
          break
        end
      end
    end
    if not retried then
      if st.failed_event and (frame.started or evaluation) then emit(frame, st.failed_event) end
      frame.started = false
      if st.catch then
        for _, c in ipairs(st.catch) do
          if matches(c, err) then
            local eo = json.object {}
            if err.Error ~= nil then json.set(eo, "Error", err.Error) end
            if err.Cause ~= nil then json.set(eo, "Cause", err.Cause) end
            local assigned, output
            if c.jsonata then
              local cenv = { input = input, errorOutput = eo, context = env.context, vars = frame.vars }
              if c.assign then assigned = c.assign(cenv) end
              output = eo
              if c.output then output = c.output(cenv) end
            else
              if c.assign then
                assigned = c.assign({ input = eo, context = env.context, vars = frame.vars })
              end
              output = apply_result_path(c.io, input, eo)
            end
            apply_assign(frame, assigned)
            exit_state(frame, st, output, assigned)
            return c.next, output
          end
        end
      end
      error(err, 0)
    end
  end
end

-- The exec function of a state with Retry/Catch (Task, Parallel, Map): enter, then run
-- work(frame, env) under the state's error handlers, env.raw holding the raw input.
local function handled(st, work)
  return function(frame, input)
    local env = enter(frame, st, input)
    env.raw = input
    return with_handlers(frame, st, input, env, work)
  end
end


M.compile_retriers = compile_retriers
M.compile_catchers = compile_catchers
M.matches = matches
M.backoff_delay = backoff_delay
M.with_handlers = with_handlers
M.handled = handled

return M
