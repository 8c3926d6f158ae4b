-- emrflow.asl.states.map: the Map state: its fields, its checks and its execution.

local json = require "emrflow.json"
local history = require "emrflow.asl.history"
local context = require "emrflow.asl.context"
local common = require "emrflow.asl.common"
local qjsonpath = require "emrflow.asl.query.jsonpath"
local rt = require "emrflow.asl.runtime"
local pipeline = require "emrflow.asl.pipeline"
local payload = require "emrflow.asl.payload"
local handlers = require "emrflow.asl.handlers"
local digest = require "emrflow.digest"

local add_event = history.Recorder.add_event
local INLINE_MAP_LIMIT = 40        -- AWS runs at most 40 inline iterations at once
local is_object_marked = json.is_object
local fmt = string.format
local runtime = common.runtime
local raise = common.raise
local is_array = common.is_array
local show = common.show
local normalize = common.normalize
local integer_value = common.integer_value
local compile_path = qjsonpath.compile_path
local missing_io_path = qjsonpath.missing_io_path
local emit = rt.emit
local child_frame = rt.child_frame
local new_frame = rt.new_frame
local run_program = rt.run_program
local run_states = rt.run_states
local run_children = rt.run_children
local compile_template = pipeline.compile_template
local io_fields = pipeline.io_fields
local effective_input = pipeline.effective_input
local finish = pipeline.finish
local compile_retriers = handlers.compile_retriers
local compile_catchers = handlers.compile_catchers
local handled = handlers.handled
local is_jsonata_expr = common.is_jsonata_expr
local is_object = common.is_object
local join = common.join
local words = common.words

local M = {}


-- Whether `failures` failed items out of `n` are over the tolerance (count and/or percentage,
-- either may be nil). AWS Developer Guide, "Using Map state in Distributed mode", section
-- "Setting failure thresholds" (state-map-distributed.html#maprun-fail-threshold): the Map Run
-- fails when the failures exceed the tolerated count or percentage, and when both are given it
-- fails as soon as either one is exceeded. Exceeding means strictly over: a count of 2
-- tolerates 2 failures; a percentage is of all the items (0 items: nothing can fail). With
-- neither given a Distributed Map tolerates 0 (the caller passes count 0).
local function exceeds_tolerance(failures, n, count, pct)
  if count ~= nil and failures > count then return true end
  return pct ~= nil and failures * 100 > pct * n
end

local function path_integer(field, text, v, kind)
  local n = integer_value(v)
  if kind == "float" then
    n = nil
    if type(v) == "number" then
      n = v
    elseif type(v) == "string" and v:match("^%s*[+-]?%d*%.?%d+%s*$") then
      n = tonumber(v)
    end
  end
  if n == nil then
    runtime(fmt("The %s field refers to value \"%s\" which is not a valid %s: %s", field, show(v),
      kind or "integer", text))
  end
  return n
end

-- A Distributed Map's run: its ARN (AWS's shape: mapRun:<machine>/<label>:<id>) and the prefix
-- of its child executions' ARNs. The id is derived from where the run happens (the execution,
-- the thread of control, the Map state and how many times that thread entered it), never from
-- chance or the clock, so that a resumed or redriven execution meets the same run again and
-- finds its child executions in the store.
local function map_run(frame, st_name, label)
  local x = frame.x
  local seen = rawget(x, "map_runs_entered")
  if not seen then
    seen = {}
    rawset(x, "map_runs_entered", seen)
  end
  local where = rt.frame_key(frame) .. "\n" .. st_name
  local n = (seen[where] or 0) + 1
  seen[where] = n
  local h = digest.hex("SHA-256", x.arn .. "\n" .. where .. "\n" .. n)
  local id = fmt("%s-%s-%s-%s-%s", h:sub(1, 8), h:sub(9, 12), h:sub(13, 16), h:sub(17, 20), h:sub(21, 32))
  local machine_arn = x.machine.arn
  return {
    id = id, label = label,
    arn = machine_arn:gsub(":stateMachine:", ":mapRun:") .. "/" .. label .. ":" .. id,
    execution_prefix = machine_arn:gsub(":stateMachine:", ":execution:") .. "/" .. label .. ":",
  }
end

-- A Distributed Map iteration runs as a child execution of its own, as on AWS: its own id,
-- ARN, context object and history (ExecutionStarted ... ExecutionSucceeded | Failed), its own
-- variables (none of the parent's), so the parent's history gets only the Map Run events and
-- a 10,000-item Map stays far from the parent's 25,000-event quota. Once it ends only a summary
-- stays in x.map_runs[arn]; machine:start option on_child_execution(child) sees it whole first.
-- The execution's child_store (set by emrflow.store.recorder) records it in the store, or
-- gives its recorded end when it had ended before (resume, redrive): then it does not run.
local function child_execution(x, run, index, input, proc_def, frame)
  local c = setmetatable({}, { __index = x })
  c.parent, c.entries, c.input = x, 0, input
  c.name = run.id .. "-" .. index
  c.id = x.id .. "/" .. run.id .. "/" .. index
  c.arn = run.execution_prefix .. c.name
  c.map_run_arn, c.index = run.arn, index
  c.start_time = x.s:now()
  c.status = "RUNNING"
  c.rec = history.new { enabled = x.keep, now = function() return x.s:now() end, limit = x.rec.limit }
  c.replay = false -- the parent's replay does not hold this child's events
  c.handle = c
  local hook = x.child_store
  local recorded = hook and hook:begin(c, run, proc_def, frame)
  c.ctx_execution, c.ctx_machine = context.execution(c)
  local redrives = rawget(c, "redrive_count")
  if redrives and redrives > 0 then json.set(c.ctx_execution, "RedriveCount", redrives) end
  return c, recorded
end

-- Runs the child execution of item i (or takes its recorded end); returns what run_program
-- would: ok, output | error.
local function run_child(c, f, proc, input, recorded)
  if recorded then
    c.status, c.output, c.error, c.cause = recorded.status, recorded.output, recorded.error, recorded.cause
    if recorded.status == "SUCCEEDED" then return true, recorded.output end
    return false, { Error = recorded.error, Cause = recorded.cause }
  end
  -- as the parent's: a child execution runs with the state machine's role (AWS)
  emit(f, "ExecutionStarted", "executionStartedEventDetails",
    c.keep and { input = input, roleArn = c.role_arn } or nil)
  local ok, out = pcall(run_program, f, proc, input)
  if ok then
    c.status, c.output = "SUCCEEDED", out
    emit(f, "ExecutionSucceeded", "executionSucceededEventDetails", c.keep and { output = out } or nil)
  elseif type(out) == "table" and (out.aborted or out.timed_out) then
    c.status = "ABORTED"
    emit(f, "ExecutionAborted", "executionAbortedEventDetails")
  else
    local err = normalize(out, f)
    c.status, c.error, c.cause = "FAILED", err.Error, err.Cause
    emit(f, "ExecutionFailed", "executionFailedEventDetails", c.keep and { error = err.Error,
      cause = err.Cause } or nil)
  end
  return ok, out
end

local function child_iteration(frame, proc, run, i, input, proc_def)
  local x = frame.x
  local c, recorded = child_execution(x, run, i - 1, input, proc_def, frame)
  local f = new_frame(c, {}, 0, false, frame, "i", i - 1)
  local ok, out = run_child(c, f, proc, input, recorded)
  c.stop_time = x.s:now()
  local on_child = x.options.on_child_execution
  if on_child then on_child(c) end
  local runs = x.map_runs
  if not runs then
    runs = {}
    rawset(x, "map_runs", runs)
  end
  local list = runs[run.arn]
  if not list then
    list = {}
    runs[run.arn] = list
  end
  -- (its ARN is the run's execution_prefix .. name: not kept, 10,000 of them add up)
  list[i] = { name = c.name, status = c.status, events = c.rec.n }
  -- the parent's frame is quiet about iterations: a stand-in that the caller's bookkeeping reads
  return { quiet = true, prev = 0 }, ok, out
end

function M.compile(st, def, b)
  io_fields(st, def)
  st.retry = compile_retriers(def.Retry)
  st.catch = compile_catchers(def.Catch, st)
  st.failed_event = "MapStateFailed"
  for _, f in ipairs { "ItemReader", "ResultWriter", "ItemBatcher" } do
    if def[f] ~= nil then st.unsupported = f end
  end
  local proc_def = def.ItemProcessor or def.Iterator
  local cfg = proc_def.ProcessorConfig
  local distributed = cfg ~= nil and cfg.Mode == "DISTRIBUTED"
  local proc = b:program(proc_def, b.prefix .. "/States/" .. st.name
    .. (def.ItemProcessor and "/ItemProcessor" or "/Iterator"))
  local selector_tpl = def.ItemSelector
  if selector_tpl == nil and def.Parameters ~= nil then selector_tpl = def.Parameters end
  st.parameters = nil
  local selector = selector_tpl ~= nil and compile_template(selector_tpl, "ItemSelector") or nil
  local items_path = def.ItemsPath and def.ItemsPath ~= "$" and compile_path(def.ItemsPath, missing_io_path)
  local mc_path = def.MaxConcurrencyPath and compile_path(def.MaxConcurrencyPath, missing_io_path)
  local tfc_path = def.ToleratedFailureCountPath
    and compile_path(def.ToleratedFailureCountPath, missing_io_path)
  local tfp_path = def.ToleratedFailurePercentagePath
    and compile_path(def.ToleratedFailurePercentagePath, missing_io_path)
  local mc_static, tfc_static, tfp_static = def.MaxConcurrency, def.ToleratedFailureCount,
    def.ToleratedFailurePercentage
  if st.jsonata then
    -- JSONata: Items (the input by default) and ItemSelector in the state's language; the
    -- numbers may be expressions, evaluated like the JSONPath *Path fields
    if def.Items ~= nil then
      local items_fn = pipeline.field(st, def, "Items")
      items_path = function(_, env) return items_fn(env) end
    end
    selector = pipeline.field(st, def, "ItemSelector")
    local function expression(name)
      if not is_jsonata_expr(def[name]) then return nil end
      local fn = pipeline.field(st, def, name)
      return function(_, env) return fn(env) end
    end
    mc_path, tfc_path, tfp_path = expression("MaxConcurrency"), expression("ToleratedFailureCount"),
      expression("ToleratedFailurePercentage")
    if mc_path then mc_static = nil end
    if tfc_path then tfc_static = nil end
    if tfp_path then tfp_static = nil end
  end
  -- a Distributed Map always has a tolerance (0 by default): its failures are
  -- States.ExceedToleratedFailureThreshold; an inline Map without one fails with the item's error
  local has_tolerance = distributed or tfc_static ~= nil or tfp_static ~= nil
    or tfc_path ~= nil or tfp_path ~= nil
  local label = def.Label or st.name
  local item_only = not st.jsonata and selector_tpl ~= nil and payload.reads_only_map_item(selector_tpl)
  local iter_started = history.descriptor("MapIterationStarted", "mapIterationStartedEventDetails", st.name)
  local iter_succeeded = history.descriptor("MapIterationSucceeded", "mapIterationSucceededEventDetails",
    st.name)
  local iter_failed = history.descriptor("MapIterationFailed", "mapIterationFailedEventDetails", st.name)

  local function work(frame, env)
    local x = frame.x
    local input = env.raw
    if st.unsupported then
      runtime(fmt("Map %s is not supported yet by emrflow (state '%s')", st.unsupported, st.name))
    end
    local eff = effective_input(st, input, env)
    env.input = eff
    local items = eff
    if items_path then items = items_path(eff, env) end
    if not is_array(items) and (type(items) ~= "table" or is_object_marked(items) or next(items) ~= nil) then
      if st.jsonata then
        -- JSONata states: a query evaluation error showing the value as JSON (as AWS records)
        raise("States.QueryEvaluationError", fmt("Map state input must be an array but was: %s",
          json.encode(items == nil and json.null or items)))
      end
      runtime(fmt("Map state input must be an array but was: %s", show(items)))
    end
    local max_conc = mc_static or 0
    if mc_path then
      max_conc = path_integer("MaxConcurrencyPath", def.MaxConcurrencyPath, mc_path(eff, env))
      if max_conc < 0 then
        runtime(fmt("The MaxConcurrencyPath field refers to value \"%s\" which is not a valid integer: %s",
          show(max_conc), def.MaxConcurrencyPath))
      end
    end
    local n = #items
    -- Iteration inputs: the item, or the ItemSelector evaluated with $$.Map.Item.
    local inputs = {}
    if selector and item_only then
      -- no context object per item: the selector reads these two (payload.reads_only_map_item)
      local senv = { input = eff, vars = frame.vars, map_index = 0, map_value = false }
      for i = 1, n do
        senv.map_index, senv.map_value = i - 1, items[i]
        inputs[i] = selector(senv)
      end
    elseif selector then
      local senv = { input = eff, vars = frame.vars }
      local base = context.object(x, st.name, x.s:now(), nil, nil)
      local with_map_item = context.with_map_item
      for i = 1, n do
        senv.context = with_map_item(base, i - 1, items[i])
        inputs[i] = selector(senv)
      end
    else
      for i = 1, n do inputs[i] = items[i] end
    end

    emit(frame, "MapStateStarted", "mapStateStartedEventDetails", x.keep and { length = n } or nil)
    -- AWS checks the tolerated failure settings once the Map has started
    local tol_count = tfc_static
    if tfc_path then
      tol_count = path_integer("ToleratedFailureCountPath", def.ToleratedFailureCountPath, tfc_path(eff, env))
    end
    if tol_count and tol_count < 0 then runtime("ToleratedFailureCount cannot be negative.") end
    local tol_pct = tfp_static
    if tfp_path then
      tol_pct = path_integer("ToleratedFailurePercentagePath", def.ToleratedFailurePercentagePath,
        tfp_path(eff, env), "float")
    end
    if tol_pct and (tol_pct < 0 or tol_pct > 100) then
      runtime("ToleratedFailurePercentage must be between 0 and 100.")
    end
    if distributed and tol_count == nil and tol_pct == nil then tol_count = 0 end

    frame.started = true
    local run = distributed and map_run(frame, st.name, label)
    if run then
      emit(frame, "MapRunStarted", "mapRunStartedEventDetails", x.keep and { mapRunArn = run.arn } or nil)
    end

    local results = json.array {}
    local failures = 0
    local next_i = 0
    local failure
    local last_prev = frame.prev
    local vars_mt = proc.assigns and { __index = frame.vars } or false
    local rec = x.rec
    local function iteration(i)
      if run then return child_iteration(frame, proc, run, i, inputs[i], proc_def) end
      local f = child_frame(frame, false, vars_mt, "i", i - 1)
      if not f.quiet then
        f.prev = add_event(rec, iter_started, f.prev, i - 1)
      end
      -- run_states under one pcall: settle normalizes the error as run_program would
      local ok, out = pcall(run_states, f, proc.start, inputs[i])
      return f, ok, out
    end
    local function settle(i, f, ok, out)
      if ok then
        results[i] = out
        if not f.quiet then
          f.prev = add_event(rec, iter_succeeded, f.prev, i - 1)
        end
      else
        local err = normalize(out, f)
        if err.aborted or err.timed_out then error(err, 0) end
        if not f.quiet then
          f.prev = add_event(rec, iter_failed, f.prev, i - 1)
        end
        failures = failures + 1
        local eo = json.object {}
        if err.Error ~= nil then json.set(eo, "Error", err.Error) end
        if err.Cause ~= nil then json.set(eo, "Cause", err.Cause) end
        results[i] = eo
        local exceeded = true
        if has_tolerance then
          exceeded = exceeds_tolerance(failures, n, tol_count, tol_pct)
          if exceeded then
            err = { Error = "States.ExceedToleratedFailureThreshold",
              Cause = "The specified tolerated failure threshold was exceeded", located = true }
          end
        end
        if exceeded then
          failure = failure or err
          error(err, 0)
        end
      end
      if f.prev > last_prev then last_prev = f.prev end
    end
    local function worker()
      while failure == nil do
        next_i = next_i + 1
        local i = next_i
        if i > n then return end
        settle(i, iteration(i))
      end
    end
    local pool = (max_conc > 0 and max_conc < INLINE_MAP_LIMIT) and max_conc or INLINE_MAP_LIMIT
    if pool > n then pool = n end
    if pool > 0 then
      local fns = {}
      for i = 1, pool do fns[i] = worker end
      local ok, err = pcall(run_children, fns)
      -- store hook: the children that only computed are written now that the run has ended
      if run and x.child_store then x.child_store:flush() end
      frame.prev = math.max(frame.prev, last_prev)
      if not ok then
        if distributed and not (type(err) == "table" and (err.aborted or err.timed_out)) then
          emit(frame, "MapRunFailed", "mapRunFailedEventDetails",
            x.keep and { error = err.Error, cause = err.Cause } or nil)
        end
        error(err, 0)
      end
    end
    frame.started = false
    if distributed then emit(frame, "MapRunSucceeded") end
    emit(frame, "MapStateSucceeded")
    return finish(frame, st, input, env, results)
  end

  st.exec = handled(st, work)
end


M.path_integer = path_integer


-- The fields of a Map state in each query language (besides Type, Comment, QueryLanguage).
M.fields = {
  JSONPath = words [[
    Next End ItemProcessor Iterator ItemsPath ItemSelector Parameters MaxConcurrency
    MaxConcurrencyPath ToleratedFailureCount ToleratedFailureCountPath
    ToleratedFailurePercentage ToleratedFailurePercentagePath ItemReader ItemBatcher
    ResultWriter Label InputPath OutputPath ResultSelector ResultPath Retry Catch Assign]],
  JSONata = words [[
    Next End ItemProcessor Iterator Items ItemSelector MaxConcurrency ToleratedFailureCount
    ToleratedFailurePercentage ItemReader ItemBatcher ResultWriter Label Output Retry Catch
    Assign Arguments]],
}

-- Load-time checks of the fields (validate.lua calls it with its checker `c`).
function M.check(c, def, path, _, lang)
  local proc_field = def.ItemProcessor ~= nil and "ItemProcessor" or "Iterator"
  c:exclusive(def, path, "ItemProcessor", "Iterator")
  c:exclusive(def, path, "ItemSelector", "Parameters")
  c:exclusive(def, path, "MaxConcurrency", "MaxConcurrencyPath")
  c:exclusive(def, path, "ToleratedFailureCount", "ToleratedFailureCountPath")
  c:exclusive(def, path, "ToleratedFailurePercentage", "ToleratedFailurePercentagePath")
  local proc = def[proc_field]
  if proc == nil then
    c:add(join(path, "ItemProcessor"), "is required")
  else
    local pp = join(path, proc_field)
    local cfg = is_object(proc) and proc.ProcessorConfig
    -- a distributed Map's child executions do not see the parent's variables
    local isolated = is_object(cfg) and cfg.Mode == "DISTRIBUTED"
    c:nested(function() c:machine(proc, pp, c.PROCESSOR_FIELDS, lang) end, isolated)
    if cfg ~= nil and cfg ~= false then
      if not is_object(cfg) then
        c:add(join(pp, "ProcessorConfig"), "must be an object")
      else
        if cfg.Mode ~= nil and cfg.Mode ~= "INLINE" and cfg.Mode ~= "DISTRIBUTED" then
          c:add(join(join(pp, "ProcessorConfig"), "Mode"), "Mode must be \"INLINE\" or \"DISTRIBUTED\"")
        end
        local et = cfg.ExecutionType
        if et ~= nil and et ~= "STANDARD" and et ~= "EXPRESS" then
          c:add(join(join(pp, "ProcessorConfig"), "ExecutionType"),
            "ExecutionType must be \"STANDARD\" or \"EXPRESS\"")
        end
      end
    end
  end
  local jsonata = lang == "JSONata"
  if def.ItemsPath ~= nil then c:path(def.ItemsPath, join(path, "ItemsPath")) end
  if def.MaxConcurrency ~= nil and not (jsonata and is_jsonata_expr(def.MaxConcurrency)) then
    c:positive_int(def.MaxConcurrency, join(path, "MaxConcurrency"), true)
  end
  if def.ToleratedFailureCount ~= nil and not (jsonata and is_jsonata_expr(def.ToleratedFailureCount)) then
    c:positive_int(def.ToleratedFailureCount, join(path, "ToleratedFailureCount"), true)
  end
  local pct = def.ToleratedFailurePercentage
  if pct ~= nil and not (jsonata and is_jsonata_expr(pct)) then
    if type(pct) ~= "number" or pct < 0 or pct > 100 then
      c:add(join(path, "ToleratedFailurePercentage"), "must be a number between 0 and 100")
    end
  end
  local path_fields = { "MaxConcurrencyPath", "ToleratedFailureCountPath", "ToleratedFailurePercentagePath" }
  for _, f in ipairs(path_fields) do
    if def[f] ~= nil then c:path(def[f], join(path, f)) end
  end
end

return M
