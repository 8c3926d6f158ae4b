-- emrflow.asl.engine: compiles a validated ASL definition into closures and runs executions.
--
-- A definition is compiled once: every state becomes a table whose `exec(frame, input, st)`
-- returns the next compiled state (nil or false at the end) and the state's output, or
-- raises an ASL error { Error =, Cause = }. A frame is one thread of control (the execution,
-- a Parallel branch, a Map iteration): it holds the variables in scope, the id of the last
-- history event it wrote and the environment its states evaluate in (one table, reused).
-- Executions, branches and iterations are scheduler tasks.
--
-- Data discipline (what makes sharing safe): a value is never modified once it has been
-- made. States build their outputs from new tables that share everything they do not change
-- (ResultPath copies only the objects along the path, json.copy_shallow), history events
-- refer to the same values, and a Task's Lua result is copied once into JSON data.
--
-- The hot path: the common Pass state (Parameters and a "$", null or "$.name" ResultPath,
-- nothing else) runs one shared exec, fast_pass_exec, reading what it needs from the state's
-- array part; payload templates and intrinsic calls are generated code shared by shape; the
-- history keeps no table per event. Long chains of states do not fit in the CPU caches, so
-- the number of distinct objects an evaluation touches is what counts.

local json = require "emrflow.json"
local scheduler = require "emrflow.scheduler"
local jsonpath = require "emrflow.asl.jsonpath"
local intrinsics = require "emrflow.asl.intrinsics"
local payload = require "emrflow.asl.payload"
local choice = require "emrflow.asl.choice"
local errors = require "emrflow.asl.errors"
local history = require "emrflow.asl.history"
local context = require "emrflow.asl.context"

local M = {}

local NULL = json.null
local PAYLOAD_LIMIT = 262144

--- Events a Standard execution may have (asl-semantics.md §12); machine:start option
-- history_limit = N | false overrides it.
M.HISTORY_LIMIT = 25000
local MAX_WAIT = 2147483647        -- about 24855 days: AWS's longest Wait
local DEFAULT_TASK_TIMEOUT = 99999999
local INLINE_MAP_LIMIT = 40        -- AWS runs at most 40 inline iterations at once

local type, pairs, ipairs, tostring, pcall, error, setmetatable = type, pairs, ipairs, tostring, pcall,
  error, setmetatable
local encode, is_array_marked, is_object_marked = json.encode, json.is_array, json.is_object
local copy_shallow, json_size, new_object = json.copy_shallow, json.size, json.object
local fmt = string.format

---------------------------------------------------------------------------
-- Small helpers
---------------------------------------------------------------------------

local function raise(name, cause)
  error({ Error = name, Cause = cause }, 0)
end

local function runtime(cause)
  error({ Error = "States.Runtime", Cause = cause }, 0)
end

local function is_array(v)
  if type(v) ~= "table" then return false end
  if is_array_marked(v) then return true end
  if is_object_marked(v) then return false end
  return v[1] ~= nil
end

local function is_object(v)
  return type(v) == "table" and not is_array(v)
end

-- A value as AWS prints it inside error causes: strings raw, numbers plain, the rest JSON.
local function show(v)
  if type(v) == "string" then return v end
  if math.type(v) == "float" and v == math.floor(v) and v > -1e15 and v < 1e15 then
    return fmt("%d", v) .. ".0"
  end
  if type(v) == "number" then return tostring(v) end
  local ok, s = pcall(encode, v)
  return ok and s or tostring(v)
end

-- Errors that AWS reports with "An error occurred while executing the state ...".
local PREFIXED = {
  ["States.Runtime"] = true,
  ["States.QueryEvaluationError"] = true,
  ["States.IntrinsicFailure"] = true,
  ["States.ParameterPathFailure"] = true,
}

-- Turns whatever was raised into an ASL error, adding the state prefix where AWS does.
local function normalize(err, frame)
  if type(err) ~= "table" then
    err = { Error = "States.Runtime", Cause = tostring(err) }
  elseif err.aborted or err.timed_out then
    return err
  elseif err.Error ~= nil and type(err.Error) ~= "string" then
    err = { Error = "States.Runtime", Cause = "invalid error value: " .. show(err.Error) }
  end
  if frame and not err.located then
    local out = { Error = err.Error, Cause = err.Cause, located = true, retryable = err.retryable }
    if PREFIXED[err.Error] and frame.state_name
        and not (type(err.Cause) == "string" and err.Cause:find("^An error occurred while executing")) then
      out.Cause = errors.state_prefix(frame.state_name, frame.entered_id) .. (err.Cause or "")
    end
    out.from_task = err.from_task
    return out
  end
  return err
end

local function size_check(name, v)
  local t = type(v)
  if t == "table" or (t == "string" and #v > PAYLOAD_LIMIT // 6) then
    local n = json_size(v, PAYLOAD_LIMIT)
    if n and n > PAYLOAD_LIMIT then
      raise("States.DataLimitExceeded", fmt(
        "The state/task '%s' returned a result with a size exceeding the maximum number of bytes "
        .. "service limit.", name))
    end
  end
end

-- Deep-copies a Lua value into JSON data (marked arrays/objects); raises on non-JSON.
local function to_data(v, where)
  local ok, res = pcall(function() return json.decode(encode(v)) end)
  if not ok then
    raise("States.Runtime", fmt("%s is not JSON data: %s", where, tostring(res)))
  end
  return res
end
M.to_data = to_data

-- Does a definition fragment mention the context object ("$$") anywhere?
local function walk_mentions_context(v)
  if type(v) == "string" then return v:find("$$", 1, true) ~= nil end
  if type(v) == "table" then
    for k, x in pairs(v) do
      if walk_mentions_context(k) or walk_mentions_context(x) then return true end
    end
  end
  return false
end

-- Does a definition fragment hold the key `key` anywhere (at any depth)?
local function mentions_key(v, key)
  if type(v) ~= "table" then return false end
  for k, x in pairs(v) do
    if k == key or mentions_key(x, key) then return true end
  end
  return false
end

local function mentions_context(v)
  local ok, text = pcall(encode, v)
  if ok then return text:find("$$", 1, true) ~= nil end
  return walk_mentions_context(v)
end

---------------------------------------------------------------------------
-- Paths
---------------------------------------------------------------------------

-- Parses a reference path ("$.a['b'][0]") into segments: strings (keys) and integers
-- (0-based indexes). Returns nil for anything with wildcards, filters, slices or unions.
local function parse_ref(text)
  if type(text) ~= "string" or text:sub(1, 1) ~= "$" then return nil end
  local segs, i, n = {}, 2, #text
  while i <= n do
    local c = text:sub(i, i)
    if c == "." then
      local name = text:match("^[^%.%[%]%*%?%(%)@,:'\" ]+", i + 1)
      if not name then return nil end
      segs[#segs + 1] = name
      i = i + 1 + #name
    elseif c == "[" then
      local num = text:match("^%[(%d+)%]", i)
      if num then
        segs[#segs + 1] = math.tointeger(tonumber(num))
        i = i + #num + 2
      else
        local q = text:sub(i + 1, i + 1)
        if q ~= "'" and q ~= '"' then return nil end
        local j, buf = i + 2, {}
        while true do
          local ch = text:sub(j, j)
          if ch == "" then return nil end
          if ch == "\\" then
            buf[#buf + 1] = text:sub(j + 1, j + 1)
            j = j + 2
          elseif ch == q then
            break
          else
            buf[#buf + 1] = ch
            j = j + 1
          end
        end
        if text:sub(j + 1, j + 1) ~= "]" then return nil end
        segs[#segs + 1] = table.concat(buf)
        i = j + 2
      end
    else
      return nil
    end
  end
  return segs
end
M.parse_ref = parse_ref

local function ref_get(segs, v)
  for i = 1, #segs do
    if type(v) ~= "table" then return nil end
    local s = segs[i]
    if type(s) == "number" then
      if not is_array(v) then return nil end
      v = v[s + 1]
    else
      if is_array(v) then return nil end
      v = v[s]
    end
    if v == nil then return nil end
  end
  return v
end

-- "$['a']['b'][0]": how Jayway prints a path in "No results for path" messages.
local function normalized(segs)
  local parts = { "$" }
  for i = 1, #segs do
    local s = segs[i]
    parts[#parts + 1] = type(s) == "number" and ("[" .. s .. "]") or ("['" .. s .. "']")
  end
  return table.concat(parts)
end

-- The root a path reads from: "input", "context" ($$) or a variable ($name).
local function split_root(text)
  if text:sub(1, 2) == "$$" then return "context", nil, "$" .. text:sub(3) end
  local name = text:match("^%$([%a_][%w_]*)")
  if name then return "var", name, "$" .. text:sub(#name + 2) end
  return "input", nil, text
end

local function root_value(kind, name, input, env)
  if kind == "input" then return input end
  if kind == "context" then return env and env.context end
  local vars = env and env.vars
  return vars and vars[name]
end

-- Compiles a Path field (InputPath, OutputPath, ItemsPath, SecondsPath, ...) into
-- get(input, env) --> value; a definite path that matches nothing raises States.Runtime
-- through on_missing(text, segs, input).
local function compile_path(text, on_missing)
  if text == "$" then return function(input) return input end end
  local kind, name, rest = split_root(text)
  local segs = parse_ref(rest)
  if segs then
    return function(input, env)
      local root = root_value(kind, name, input, env)
      local v = root
      if #segs > 0 then v = ref_get(segs, root) end
      if v == nil then return on_missing(text, segs, input, env) end
      return v
    end
  end
  local compiled, msg = jsonpath.compile(text)
  if not compiled then error(fmt("invalid JSONPath %q: %s", text, tostring(msg)), 0) end
  return function(input, env)
    local v, err = jsonpath.get(compiled, input, env)
    if v == nil then return on_missing(text, nil, input, env, err) end
    return v
  end
end
M.compile_path = compile_path

local function missing_io_path(text, segs, _, _, err)
  if type(err) == "table" then error(err, 0) end
  if segs then
    runtime(fmt("Invalid path '%s' : No results for path: %s", text, normalized(segs)))
  end
  runtime(type(err) == "string" and err or fmt("Invalid path '%s' : No results for path", text))
end

local function field_missing(field)
  return function(text, _, input, _, err)
    if type(err) == "table" and err.Error ~= "States.Runtime" then error(err, 0) end
    runtime(fmt("The JSONPath '%s' specified for the field '%s' could not be found in the input '%s'",
      text, field, show(input)))
  end
end

-- Copies an object shallowly, keeping its key order (json.copy_shallow, in C). Unmarked
-- tables (Lua values that never went through emrflow.json) get their keys recorded in
-- json.keys order, as a marked object would list them.
local function copy_object(o)
  if is_object_marked(o) then return copy_shallow(o) end
  local c = new_object {}
  local keys = json.keys(o)
  for i = 1, #keys do
    local k = keys[i]
    json.set(c, k, o[k])
  end
  return c
end

local function result_path_failure(text, target)
  raise("States.ResultPathMatchFailure", fmt("Unable to apply ReferencePath %s to input %s",
    text, show(target)))
end

-- A copy of node with value written at segs[i..] (intermediate objects made); the copies are
-- shallow, so everything off the path is shared.
local function ref_put(segs, i, node, value, target, text)
  local s = segs[i]
  local last = i == #segs
  if type(s) == "number" then
    if not is_array(node) or node[s + 1] == nil then result_path_failure(text, target) end
    local c = copy_shallow(node)
    c[s + 1] = last and value or ref_put(segs, i + 1, node[s + 1], value, target, text)
    return c
  end
  if node == nil or node == NULL then node = new_object {} end
  if not is_object(node) then result_path_failure(text, target) end
  local v = last and value or ref_put(segs, i + 1, node[s], value, target, text)
  if is_object_marked(node) then return copy_shallow(node, s, v) end
  local c = copy_object(node)
  json.set(c, s, v)
  return c
end

-- ResultPath: a copy of `target` with `value` written at segs (intermediate objects made).
local function ref_set(segs, target, value, text)
  if #segs == 0 then return value end
  return ref_put(segs, 1, target, value, target, text)
end

---------------------------------------------------------------------------
-- Compilation
---------------------------------------------------------------------------

local Builder = {}
Builder.__index = Builder

local function compile_template(tpl, where)
  local fn, msg = payload.compile(tpl, where)
  if not fn then error(msg, 0) end
  return fn
end

-- IO fields common to most states.
local function io_fields(st, def)
  if def.InputPath == NULL then
    st.input_null = true
  elseif def.InputPath ~= nil and def.InputPath ~= "$" then
    st.input_path = compile_path(def.InputPath, missing_io_path)
  end
  if def.OutputPath == NULL then
    st.output_null = true
  elseif def.OutputPath ~= nil and def.OutputPath ~= "$" then
    st.output_path = compile_path(def.OutputPath, missing_io_path)
  end
  if def.ResultPath == NULL then
    st.result_discard = true
  elseif def.ResultPath ~= nil and def.ResultPath ~= "$" then
    local kind, _, rest = split_root(def.ResultPath)
    st.result_segs = kind == "input" and parse_ref(rest) or nil
    if not st.result_segs then
      error("ResultPath must be a reference path: " .. tostring(def.ResultPath), 0)
    end
    st.result_text = def.ResultPath
  end
  if def.Parameters ~= nil then
    local fn, shape, R = payload.compile_shape(def.Parameters, "Parameters")
    if not fn then error(shape, 0) end
    st.parameters, st.parameters_shape, st.parameters_R = fn, shape, R
  end
  if def.ResultSelector ~= nil then
    st.result_selector = compile_template(def.ResultSelector, "ResultSelector")
  end
  if def.Assign ~= nil then st.assign = compile_template(def.Assign, "Assign") end
end

local function effective_input(st, input, env)
  if st.input_null then return new_object {} end
  if st.input_path then return st.input_path(input, env) end
  return input
end

local function apply_result_path(st, raw, result)
  if st.result_discard then return raw end
  if st.result_segs then return ref_set(st.result_segs, raw, result, st.result_text) end
  return result
end

local function apply_output_path(st, out, env)
  if st.output_null then return new_object {} end
  if st.output_path then return st.output_path(out, env) end
  return out
end

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

local function compile_catchers(list)
  if list == nil then return nil end
  local out = {}
  for i, c in ipairs(list) do
    local rule = compile_retriers({ { ErrorEquals = c.ErrorEquals } })[1]
    rule.next_name = c.Next
    local pseudo = {}
    if c.ResultPath ~= nil then
      io_fields(pseudo, { ResultPath = c.ResultPath })
    end
    rule.io = pseudo
    if c.Assign ~= nil then rule.assign = compile_template(c.Assign, "Assign") end
    out[i] = rule
  end
  return out
end

-- Does a retrier/catcher match this error? States.ALL never matches States.Runtime
-- (AWS fails the execution); States.TaskFailed matches Task errors except States.Timeout.
local function matches(rule, err)
  local name = err.Error
  if name ~= nil and rule.names[name] then return true end
  if name == "States.Runtime" then return false end
  if rule.all then return true end
  if rule.task_failed and err.from_task and name ~= "States.Timeout" then return true end
  return false
end

---------------------------------------------------------------------------
-- Frames, events and environments
---------------------------------------------------------------------------

local function emit(frame, etype, key, details)
  if frame.quiet then return 0 end
  local id = frame.x.rec:add(etype, frame.prev, key, details)
  frame.prev = id
  return id
end

-- A frame: { x = execution, vars = variables in scope, prev = last event id, quiet = no
-- events, env = the environment its states evaluate in }. One frame runs one state at a
-- time, so its env table is reused from state to state (enter resets it).
-- Every field a frame gets is in its constructor, so that it never grows (a rehash each
-- time it would, for every Map iteration): state_name / entered_id (the state running, for
-- error causes), started (a Map or Parallel has started), so / sn and ro / rn (the sizes the
-- fast Pass remembers).
local function new_frame(x, vars, prev, quiet)
  return { x = x, vars = vars, prev = prev, quiet = quiet or false, env = { input = false, vars = vars },
    state_name = false, entered_id = 0, started = false, so = false, sn = 0, ro = false, rn = 0 }
end

-- A child thread of control. Its variables: a scope of their own reading through to the
-- parent's (vars_mt = { __index = parent vars }, shared by siblings), or, when the child's
-- program never assigns any (vars_mt == nil), the parent's table itself.
local function child_frame(frame, quiet, vars_mt)
  local vars = frame.vars
  if vars_mt ~= false then
    vars = setmetatable({}, vars_mt or { __index = frame.vars })
  end
  return new_frame(frame.x, vars, frame.prev, quiet or frame.quiet)
end

-- Every so many state entries an execution lets the scheduler run, so a loop of
-- states that never wait cannot starve the host (signals, other executions, step()).
local YIELD_EVERY = 1024

-- Enters a state: the Entered event, the frame's current state, the environment.
local function enter(frame, st, input, retry_count)
  local x0 = frame.x
  local n = x0.entries + 1
  x0.entries = n
  if n % YIELD_EVERY == 0 then scheduler.yield() end
  local id = 0
  if not frame.quiet then
    id = frame.x.rec:add_event(st.entered_desc, frame.prev, input)
    frame.prev = id
  end
  frame.state_name = st.name
  frame.entered_id = id
  local env = frame.env
  env.input = input
  if st.needs_context then
    local x = frame.x
    env.context = context.object(x, st.name, x.s:now(), retry_count, nil)
  else
    env.context = nil
  end
  return env
end

local function exit_state(frame, st, output, assigned)
  if frame.quiet then return end
  frame.prev = frame.x.rec:add_event(st.exited_desc, frame.prev, output, assigned)
end

-- Each assigned value, and all values of one Assign together, are at most 256 KiB.
local function apply_assign(frame, values)
  if values == nil then return end
  local total = 0
  for _, v in pairs(values) do
    local n = json_size(v, PAYLOAD_LIMIT)
    if n then
      total = total + n
      if total > PAYLOAD_LIMIT then
        raise("States.DataLimitExceeded", fmt("The variables assigned by the state '%s' exceed the maximum "
          .. "number of bytes service limit.", tostring(frame.state_name)))
      end
    end
  end
  local vars = frame.vars
  for k, v in pairs(values) do vars[k] = v end
end

---------------------------------------------------------------------------
-- Running programs (the execution's states, a branch, an item processor)
---------------------------------------------------------------------------

-- exec(frame, input, st): st is passed too, so that one function can serve many states.
local function run_states(frame, st, input)
  while st do
    st, input = st.exec(frame, input, st)
  end
  return input
end

local function run_program(frame, prog, input)
  local ok, out = pcall(run_states, frame, prog.start, input)
  if not ok then error(normalize(out, frame), 0) end
  return out
end

-- Runs fns as child tasks; returns their results in order. The first failure cancels
-- the others (they see an aborted error), waits for them, and is re-raised. If the
-- caller itself is cancelled meanwhile, the children are cancelled with the same error.
local function run_children(fns)
  local s = scheduler.current()
  local tasks = {}
  for i = 1, #fns do tasks[i] = s:spawn(fns[i]) end
  local pending = {}
  for i = 1, #tasks do pending[i] = tasks[i] end
  local failure
  local ok, err = pcall(function()
    while #pending > 0 do
      local t = scheduler.wait_any(pending)
      for i = #pending, 1, -1 do
        if pending[i] == t then table.remove(pending, i) end
      end
      local tok, terr = t:result()
      if not tok then
        failure = terr
        break
      end
    end
  end)
  if not ok or failure then
    local reason = ok and { Error = "States.Aborted", Cause = "a sibling failed", aborted = true } or err
    for i = 1, #pending do s:cancel(pending[i], reason) end
    local jok, jerr = pcall(scheduler.join, pending)
    if not ok then error(err, 0) end
    if not jok then error(jerr, 0) end
    error(failure, 0)
  end
  local results = {}
  for i = 1, #tasks do
    local _, v = tasks[i]:result()
    results[i] = v
  end
  return results
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
      if st.failed_event and frame.started then emit(frame, st.failed_event) end
      frame.started = false
      if st.catch then
        for _, c in ipairs(st.catch) do
          if matches(c, err) then
            local eo = json.object {}
            if err.Error ~= nil then json.set(eo, "Error", err.Error) end
            if err.Cause ~= nil then json.set(eo, "Cause", err.Cause) end
            local assigned
            if c.assign then
              assigned = c.assign({ input = eo, context = env.context, vars = frame.vars })
            end
            local output = apply_result_path(c.io, input, eo)
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

---------------------------------------------------------------------------
-- State types
---------------------------------------------------------------------------

local compilers = {}

-- Result processing shared by Pass, Task, Parallel and Map:
-- ResultSelector -> Assign -> ResultPath -> OutputPath, size check, Assign applied, Exited.
local function finish(frame, st, raw, env, result)
  if st.result_selector then
    env.input = result
    result = st.result_selector(env)
  end
  local assigned
  if st.assign then
    env.input = result
    assigned = st.assign(env)
  end
  local out = apply_result_path(st, raw, result)
  out = apply_output_path(st, out, env)
  size_check(st.name, out)
  apply_assign(frame, assigned)
  exit_state(frame, st, out, assigned)
  return out
end

local add_event = history.Recorder.add_event

-- The common Pass: Parameters (or the input itself), then ResultPath "$", null or "$.name";
-- no InputPath, OutputPath, Result or Assign. The same steps as the general exec below
-- (enter, Parameters, ResultPath, size check, exit) with no call that has nothing to do.
-- What it needs sits in the array part of st (one closure upvalue, one contiguous array),
-- since a long chain of states does not stay in the CPU caches.
local P_NAME, P_ENTERED, P_EXITED, P_SHAPE, P_R = 1, 2, 3, 4, 5
local P_KEY, P_MODE, P_SEGS, P_TEXT, P_NEXT, P_KEYLEN = 6, 7, 8, 9, 10, 11
assert(P_KEYLEN <= payload.SHAPE_BASE)
local MODE_KEY, MODE_DISCARD, MODE_WHOLE = 1, 2, 3

-- exec of the common Pass; P is the state (its array part, set by fast_pass).
local function fast_pass_exec(frame, input, P)
  local quiet = frame.quiet
  local x = frame.x
  local id, t = 0, nil
  if not quiet then
    -- a Pass does not wait: its two events share one instant
    t = x.s:now()
    id = add_event(x.rec, P[P_ENTERED], frame.prev, input, nil, t)
    frame.prev = id
  end
  local name = P[P_NAME]
  frame.state_name = name
  frame.entered_id = id
  local r = input
  local shape = P[P_SHAPE]
  if shape then
    local env = frame.env
    env.input = input
    env.context = nil
    r = shape(env, P)
  end
  -- The output's encoded size (the 256 KiB check). The frame remembers the size of the last
  -- output it made (so) and of the last Parameters result it put at the key (ro); values are
  -- never changed once made, so when this input is that output, the new size follows from
  -- the part that changes, without walking the rest (a large payload carried down a chain
  -- is not re-measured at every state).
  local out, size
  local m = P[P_MODE]
  if m == MODE_KEY then
    if is_object_marked(input) then
      local key = P[P_KEY]
      out = copy_shallow(input, key, r)
      if input == frame.so then
        local rn = json_size(r, PAYLOAD_LIMIT)
        if rn then
          local old = input[key]
          if old == nil then
            local sn = frame.sn
            size = sn + (sn > 2 and 1 or 0) + P[P_KEYLEN] + 1 + rn
          else
            local on
            if old == frame.ro then on = frame.rn else on = json_size(old, PAYLOAD_LIMIT) end
            if on then size = frame.sn - on + rn end
          end
          frame.ro, frame.rn = r, rn
        end
      end
    else
      out = ref_set(P[P_SEGS], input, r, P[P_TEXT])
    end
  elseif m == MODE_DISCARD then
    out = input
    if input == frame.so then size = frame.sn end
  else
    out = r
  end
  if size == nil then size = json_size(out, PAYLOAD_LIMIT) end
  if size and size > PAYLOAD_LIMIT then size_check(name, out) end
  frame.so, frame.sn = size and out or false, size or 0
  if not quiet then
    frame.prev = add_event(x.rec, P[P_EXITED], frame.prev, out, nil, t)
  end
  return P[P_NEXT], out
end

-- Sets st up for fast_pass_exec and returns it, or nil when st is not the common Pass.
local function fast_pass(st, def)
  local key = st.result_segs and #st.result_segs == 1 and type(st.result_segs[1]) == "string"
    and st.result_segs[1] or nil
  local mode = key and MODE_KEY or st.result_discard and MODE_DISCARD
    or (st.result_segs == nil and MODE_WHOLE) or nil
  if def.Result ~= nil or st.input_null or st.input_path or st.output_null or st.output_path
      or st.assign or st.result_selector or st.needs_context or not mode then
    return nil
  end
  -- the template's values go after the fields, where its shape function reads them
  local shape, R = false, false
  if st.parameters then
    if st.parameters_shape then
      shape, R = st.parameters_shape, st.parameters_R
      for k = 1, #R do st[payload.SHAPE_BASE + k] = R[k] end
      st.parameters_R = nil
    else
      shape, R = function(env, P) return P[P_R](env) end, st.parameters
    end
  end
  st[P_NAME], st[P_ENTERED], st[P_EXITED] = st.name, st.entered_desc, st.exited_desc
  st[P_SHAPE], st[P_R], st[P_KEY], st[P_MODE] = shape, R, key or false, mode
  st[P_SEGS], st[P_TEXT], st[P_NEXT] = st.result_segs or false, st.result_text or false, false
  st[P_KEYLEN] = key and json_size(key) or 0
  st.link_next = true -- st[P_NEXT] = st.next once the states are linked
  return fast_pass_exec
end

function compilers.Pass(st, def)
  io_fields(st, def)
  local result = def.Result
  local parameters = st.parameters
  st.exec = fast_pass(st, def)
  if st.exec then return end
  st.exec = function(frame, input)
    local env = enter(frame, st, input)
    local r
    if result ~= nil then
      r = result
    else
      r = effective_input(st, input, env)
      if parameters then
        env.input = r
        r = parameters(env)
      end
    end
    return st.next, finish(frame, st, input, env, r)
  end
end

function compilers.Succeed(st, def)
  io_fields(st, def)
  st.exec = function(frame, input)
    local env = enter(frame, st, input)
    local out = apply_output_path(st, effective_input(st, input, env), env)
    exit_state(frame, st, out, nil)
    return nil, out
  end
end

local function string_or_path(def, field, path_field)
  local literal = def[field]
  local path = def[path_field]
  if path == nil then return nil, literal end
  if type(path) == "string" and path:match("^States%.") then
    local fn, msg = intrinsics.compile(path)
    if not fn then error(fmt("invalid intrinsic in %s: %s", path_field, tostring(msg)), 0) end
    return fn
  end
  local get = compile_path(path, field_missing(path_field))
  return function(env) return get(env.input, env) end
end

function compilers.Fail(st, def)
  local error_fn, error_lit = string_or_path(def, "Error", "ErrorPath")
  local cause_fn, cause_lit = string_or_path(def, "Cause", "CausePath")
  st.exec = function(frame, input)
    local env = enter(frame, st, input)
    local e, c = error_lit, cause_lit
    if error_fn then e = error_fn(env) end
    if cause_fn then c = cause_fn(env) end
    if e ~= nil and type(e) ~= "string" then e = show(e) end
    if c ~= nil and type(c) ~= "string" then c = show(c) end
    error({ Error = e, Cause = c, located = true }, 0)
  end
end

function compilers.Choice(st, def, b)
  io_fields(st, def)
  local rules = {}
  for i, r in ipairs(def.Choices) do
    rules[i] = {
      test = choice.compile(r),
      next_name = r.Next,
      assign = r.Assign ~= nil and compile_template(r.Assign, "Assign") or nil,
    }
  end
  st.rules = rules
  st.default_name = def.Default
  b.links[#b.links + 1] = function(states)
    for _, r in ipairs(rules) do r.next = states[r.next_name] end
    if st.default_name then st.default = states[st.default_name] end
  end
  st.exec = function(frame, input)
    local env = enter(frame, st, input)
    local eff = effective_input(st, input, env)
    env.input = eff
    local target, rule
    for i = 1, #rules do
      if rules[i].test(env) then
        rule = rules[i]
        target = rule.next
        break
      end
    end
    if not target then
      target = st.default
      if not target then
        raise("States.NoChoiceMatched", fmt("No Matches!"))
      end
    end
    local assigned
    if st.assign or (rule and rule.assign) then
      assigned = st.assign and st.assign(env) or nil
      if rule and rule.assign then
        local more = rule.assign(env)
        if assigned then
          for k, v in pairs(more) do assigned[k] = v end
        else
          assigned = more
        end
      end
    end
    local out = apply_output_path(st, eff, env)
    apply_assign(frame, assigned)
    exit_state(frame, st, out, assigned)
    return target, out
  end
end

local function integer_value(v)
  if math.type(v) == "integer" then return v end
  if type(v) == "string" and v:match("^%s*[+-]?%d+%s*$") then return math.tointeger(tonumber(v)) end
  if math.type(v) == "float" and v == math.floor(v) and v > -2^63 and v < 2^63 then
    return math.tointeger(v)
  end
  return nil
end

function compilers.Wait(st, def)
  io_fields(st, def)
  local seconds = def.Seconds
  local timestamp = def.Timestamp ~= nil and context.parse_timestamp(def.Timestamp) or nil
  local seconds_path = def.SecondsPath and compile_path(def.SecondsPath, missing_io_path)
  local ts_path = def.TimestampPath and compile_path(def.TimestampPath, missing_io_path)
  st.exec = function(frame, input)
    local env = enter(frame, st, input)
    local eff = effective_input(st, input, env)
    local now = frame.x.s:now()
    local delay
    if seconds ~= nil then
      delay = seconds
    elseif timestamp then
      delay = timestamp - now
    elseif seconds_path then
      local v = seconds_path(eff, env)
      local n = integer_value(v)
      if not n then
        runtime(fmt("The SecondsPath parameter cannot be parsed as a long value: %s == %s",
          def.SecondsPath, show(v)))
      end
      if n < 0 then
        runtime(fmt("The SecondsPath parameter references a negative value: %s == %s", def.SecondsPath,
          show(v)))
      end
      delay = n
    else
      local v = ts_path(eff, env)
      local t = context.parse_timestamp(v)
      if not t then
        runtime(fmt("The TimestampPath parameter does not reference a valid ISO-8601 extended offset "
          .. "date-time format string: %s == %s", def.TimestampPath, show(v)))
      end
      delay = t - now
    end
    if delay > MAX_WAIT then runtime("Wait state delay is too long.") end
    if delay > 0 then scheduler.sleep(delay) end
    local out = apply_output_path(st, eff, env)
    local assigned
    if st.assign then
      env.input = eff
      assigned = st.assign(env)
    end
    apply_assign(frame, assigned)
    exit_state(frame, st, out, assigned)
    return st.next, out
  end
end

-- Task -------------------------------------------------------------------

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
        st.def[field]))
    end
    return n
  end
  return fixed
end

-- Calls impl.run(input, ctx) inside the current task, or in a child task bounded by the

-- The exec function of a state with Retry/Catch (Task, Parallel, Map): enter, then run
-- work(frame, env) under the state's error handlers, env.raw holding the raw input.
local function handled(st, work)
  return function(frame, input)
    local env = enter(frame, st, input)
    env.raw = input
    return with_handlers(frame, st, input, env, work)
  end
end

-- timeout / heartbeat. The child is cancelled with States.Timeout when time runs out.
local function invoke(impl, input, ctx, timeout, heartbeat)
  if timeout >= DEFAULT_TASK_TIMEOUT and not heartbeat then
    return impl.run(input, ctx)
  end
  local s = scheduler.current()
  local beat = scheduler.now()
  ctx.heartbeat = function() beat = scheduler.now() end
  local child = s:spawn(function() return impl.run(input, ctx) end)
  local deadline = scheduler.now() + timeout
  local ok, err = pcall(function()
    while not child:done() do
      local now = scheduler.now()
      local limit = deadline - now
      local hb_left
      if heartbeat then
        hb_left = beat + heartbeat - now
        if hb_left < limit then limit = hb_left end
      end
      if limit <= 0 or not scheduler.wait_any({ child }, limit) then
        now = scheduler.now()
        if now >= deadline then
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
    error(err, 0)
  end
  local res = table.pack(child:result())
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

function compilers.Task(st, def, b)
  io_fields(st, def)
  st.retry = compile_retriers(def.Retry)
  st.catch = compile_catchers(def.Catch)
  st.needs_context = true
  local resource = def.Resource
  local impl = b.resolve(resource)
  if not impl then error("no implementation for resource " .. tostring(resource), 0) end
  local rtype, rname = resource_parts(resource)
  local timeout_path = def.TimeoutSecondsPath and compile_path(def.TimeoutSecondsPath, missing_io_path)
  local hb_path = def.HeartbeatSecondsPath and compile_path(def.HeartbeatSecondsPath, missing_io_path)
  local credentials = def.Credentials ~= nil and compile_template(def.Credentials, "Credentials") or nil
  local state_path = b.prefix .. "/States/" .. st.name

  local function work(frame, env, attempt)
    local x = frame.x
    local input = env.raw
    local eff = effective_input(st, input, env)
    env.input = eff
    local params = eff
    if st.parameters then params = st.parameters(env) end
    local timeout = task_timeout(st, eff, env, def.TimeoutSeconds or DEFAULT_TASK_TIMEOUT, timeout_path,
      "TimeoutSecondsPath")
    local heartbeat = task_timeout(st, eff, env, def.HeartbeatSeconds, hb_path, "HeartbeatSecondsPath")
    emit(frame, "TaskScheduled", "taskScheduledEventDetails", x.keep and {
      resourceType = rtype, resource = rname, region = x.region, parameters = params,
      timeoutInSeconds = def.TimeoutSeconds or def.TimeoutSecondsPath and timeout or nil,
      heartbeatInSeconds = heartbeat,
    } or nil)
    emit(frame, "TaskStarted", "taskStartedEventDetails",
      x.keep and { resourceType = rtype, resource = rname } or nil)
    local ctx = {
      execution = x.handle, state_name = st.name, state_path = state_path, attempt = attempt,
      context = env.context, scheduler = x.s, options = x.options, timeout_s = timeout,
      heartbeat_s = heartbeat, region = x.region,
      credentials = credentials and credentials(env) or nil,
      events = {
        add = function(_, etype, details)
          emit(frame, etype, etype:sub(1, 1):lower() .. etype:sub(2) .. "EventDetails", details)
        end,
      },
    }
    local ok, result = pcall(invoke, impl, params, ctx, timeout, heartbeat)
    if not ok then
      local err = result
      if type(err) ~= "table" or (err.Error == nil and not err.aborted) then
        err = { Error = "States.TaskFailed", Cause = tostring(err) }
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
    if impl.lua then result = to_data(result, "the result of Task state '" .. st.name .. "'") end
    if result == nil then result = NULL end
    -- the 256 KiB quota holds for the task's result itself, before ResultSelector shrinks it
    size_check(st.name, result)
    emit(frame, "TaskSucceeded", "taskSucceededEventDetails",
      x.keep and { resourceType = rtype, resource = rname, output = result } or nil)
    return finish(frame, st, input, env, result)
  end

  st.exec = handled(st, work)
end

-- Parallel ---------------------------------------------------------------

function compilers.Parallel(st, def, b)
  io_fields(st, def)
  st.retry = compile_retriers(def.Retry)
  st.catch = compile_catchers(def.Catch)
  st.failed_event = "ParallelStateFailed"
  local branches = {}
  for i, br in ipairs(def.Branches) do
    branches[i] = b:program(br, b.prefix .. "/States/" .. st.name .. "/Branches/" .. (i - 1))
  end

  local function work(frame, env)
    local input = env.raw
    local eff = effective_input(st, input, env)
    env.input = eff
    local params = eff
    if st.parameters then params = st.parameters(env) end
    emit(frame, "ParallelStateStarted")
    frame.started = true
    local fns = {}
    local frames = {}
    for i, prog in ipairs(branches) do
      local f = child_frame(frame, nil, not prog.assigns and false or nil)
      frames[i] = f
      fns[i] = function() return run_program(f, prog, params) end
    end
    local results = run_children(fns)
    local last = frame.prev
    for _, f in ipairs(frames) do
      if f.prev > last then last = f.prev end
    end
    frame.prev = last
    frame.started = false
    local arr = json.array {}
    for i = 1, #branches do arr[i] = results[i] end
    return finish(frame, st, input, env, arr)
  end

  st.exec = handled(st, work)
end

-- Map --------------------------------------------------------------------

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

function compilers.Map(st, def, b)
  io_fields(st, def)
  st.retry = compile_retriers(def.Retry)
  st.catch = compile_catchers(def.Catch)
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
  local has_tolerance = def.ToleratedFailureCount ~= nil or def.ToleratedFailurePercentage ~= nil
    or tfc_path ~= nil or tfp_path ~= nil
  local label = def.Label or st.name
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
      runtime(fmt("Map state input must be an array but was: %s", show(items)))
    end
    local max_conc = def.MaxConcurrency or 0
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
    if selector then
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
    local tol_count = def.ToleratedFailureCount
    if tfc_path then
      tol_count = path_integer("ToleratedFailureCountPath", def.ToleratedFailureCountPath, tfc_path(eff, env))
    end
    if tol_count and tol_count < 0 then runtime("ToleratedFailureCount cannot be negative.") end
    local tol_pct = def.ToleratedFailurePercentage
    if tfp_path then
      tol_pct = path_integer("ToleratedFailurePercentagePath", def.ToleratedFailurePercentagePath,
        tfp_path(eff, env), "float")
    end
    if tol_pct and (tol_pct < 0 or tol_pct > 100) then
      runtime("ToleratedFailurePercentage must be between 0 and 100.")
    end

    frame.started = true
    if distributed then
      emit(frame, "MapRunStarted", "mapRunStartedEventDetails",
        x.keep and { mapRunArn = x.machine.arn:gsub(":stateMachine:", ":mapRun:") .. "/" .. label } or nil)
    end

    local results = json.array {}
    local failures = 0
    local next_i = 0
    local failure
    local last_prev = frame.prev
    local vars_mt = proc.assigns and { __index = frame.vars } or false
    local rec = x.rec
    local function iteration(i)
      local f = child_frame(frame, distributed, vars_mt)
      if not f.quiet then
        f.prev = add_event(rec, iter_started, f.prev, i - 1)
      end
      local ok, out = pcall(run_program, f, proc, inputs[i])
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
        local exceeded
        if has_tolerance then
          exceeded = (tol_count == nil or failures > tol_count)
            and (tol_pct == nil or failures * 100 > tol_pct * n)
          if exceeded then
            err = { Error = "States.ExceedToleratedFailureThreshold",
              Cause = "The specified tolerated failure threshold was exceeded", located = true }
          end
        else
          exceeded = true
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
        iteration(i)
      end
    end
    local pool = (max_conc > 0 and max_conc < INLINE_MAP_LIMIT) and max_conc or INLINE_MAP_LIMIT
    if pool > n then pool = n end
    if pool > 0 then
      local fns = {}
      for i = 1, pool do fns[i] = worker end
      local ok, err = pcall(run_children, fns)
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

---------------------------------------------------------------------------
-- Building programs
---------------------------------------------------------------------------

local EVENT_PREFIX = {
  Pass = "Pass", Task = "Task", Choice = "Choice", Wait = "Wait", Succeed = "Succeed",
  Fail = "Fail", Parallel = "Parallel", Map = "Map",
}

-- Compiles { StartAt, States } into { start = <compiled state>, states = { name -> st } }.
function Builder:program(def, prefix)
  local saved = self.prefix
  self.prefix = prefix or ""
  local states = {}
  local links = {}
  local saved_links = self.links
  self.links = links
  for name, sdef in pairs(def.States) do
    local st = {
      -- room in the array part for fast_pass's fields and a template's values
      false, false, false, false, false, false, false, false, false, false, false, false, false, false, false,
      false,
      name = name, type = sdef.Type, def = sdef,
      entered_desc = history.descriptor(EVENT_PREFIX[sdef.Type] .. "StateEntered", "stateEnteredEventDetails",
        name),
      exited_desc = history.descriptor(EVENT_PREFIX[sdef.Type] .. "StateExited", "stateExitedEventDetails",
        name),
      next_name = sdef.Next,
      needs_context = mentions_context(sdef),
    }
    local ok, err = pcall(compilers[sdef.Type], st, sdef, self)
    if not ok then
      error(fmt("%s/States/%s: %s", self.prefix, name, tostring(err)), 0)
    end
    states[name] = st
  end
  for _, st in pairs(states) do
    if st.next_name then st.next = states[st.next_name] end
    if st.link_next then st[P_NEXT] = st.next or false end
    if st.catch then
      for _, c in ipairs(st.catch) do c.next = states[c.next_name] end
    end
  end
  for _, link in ipairs(links) do link(states) end
  self.links = saved_links
  self.prefix = saved
  return { start = states[def.StartAt], states = states, assigns = mentions_key(def.States, "Assign") }
end

-- compile(def, { resolve = fn(resource) -> impl }) --> program
function M.compile(def, opts)
  local b = setmetatable({ resolve = opts.resolve, prefix = "", links = {} }, Builder)
  return b:program(def, "")
end

---------------------------------------------------------------------------
-- Executions
---------------------------------------------------------------------------

local Execution = {}
Execution.__index = Execution
M.Execution = Execution

local counter = 0
local function new_name()
  counter = counter + 1
  return fmt("exec-%d-%04d-%d", os.time(), math.random(0, 9999), counter)
end

local function uses_jsonata(def)
  if def.QueryLanguage == "JSONata" then return "the state machine" end
  local function scan(states)
    for name, s in pairs(states) do
      if type(s) == "table" then
        if s.QueryLanguage == "JSONata" then return "state '" .. name .. "'" end
        local subs = {}
        if s.Branches then for _, br in ipairs(s.Branches) do subs[#subs + 1] = br end end
        if s.ItemProcessor then subs[#subs + 1] = s.ItemProcessor end
        if s.Iterator then subs[#subs + 1] = s.Iterator end
        for _, sub in ipairs(subs) do
          local found = type(sub.States) == "table" and scan(sub.States)
          if found then return found end
        end
      end
    end
    return nil
  end
  return scan(def.States)
end
M.uses_jsonata = uses_jsonata

local function finish_execution(x, status, output, err)
  x.status = status
  x.stop_time = x.s:now()
  local frame = x.frame
  if status == "SUCCEEDED" then
    x.output = output
    emit(frame, "ExecutionSucceeded", "executionSucceededEventDetails",
      x.keep and { output = output } or nil)
  else
    x.error = err and err.Error
    x.cause = err and err.Cause
    local etype = status == "FAILED" and "ExecutionFailed" or status == "ABORTED" and "ExecutionAborted"
      or "ExecutionTimedOut"
    local key = etype:sub(1, 1):lower() .. etype:sub(2) .. "EventDetails"
    emit(frame, etype, key, x.keep and { error = x.error, cause = x.cause } or nil)
  end
end

local function run_execution(x)
  local frame = x.frame
  emit(frame, "ExecutionStarted", "executionStartedEventDetails",
    x.keep and { input = x.input, roleArn = x.role_arn } or nil)
  if x.stop_requested then
    return finish_execution(x, "ABORTED", nil, x.stop_requested)
  end
  local watchdog
  local timeout = x.machine.timeout_s
  if timeout then
    local me = select(2, scheduler.current())
    watchdog = x.s:spawn(function()
      scheduler.sleep(timeout)
      if not me:done() then
        x.s:cancel(me, { Error = "States.Timeout", timed_out = true })
      end
    end)
  end
  local ok, res = pcall(function()
    if x.machine.jsonata then
      raise("States.Runtime", "JSONata is not supported yet (" .. x.machine.jsonata
        .. " uses QueryLanguage JSONata)")
    end
    if x.input_error then error(x.input_error, 0) end
    local out = run_program(frame, x.machine.program, x.input)
    if type(out) == "table" or type(out) == "string" then
      local eok, text = pcall(encode, out)
      if eok and #text > PAYLOAD_LIMIT then
        raise("States.DataLimitExceeded",
          "The execution output exceeds the maximum number of bytes service limit.")
      end
    end
    return out
  end)
  if watchdog and not watchdog:done() then x.s:cancel(watchdog, { aborted = true }) end
  if ok then
    finish_execution(x, "SUCCEEDED", res)
  else
    local err = normalize(res)
    if err.timed_out then
      finish_execution(x, "TIMED_OUT", nil, nil)
    elseif err.aborted then
      finish_execution(x, "ABORTED", nil, err)
    else
      finish_execution(x, "FAILED", nil, err)
    end
  end
end

-- start(machine, input, opts) --> execution
function M.start(machine, input, opts)
  opts = opts or {}
  local s = opts.scheduler
  local clock = opts.clock
  if type(clock) == "table" then s, clock = clock, nil end
  if not s then
    if clock ~= nil and clock ~= "virtual" and clock ~= "real" then
      error("emrflow.asl: clock must be 'virtual', 'real' or a scheduler, got " .. tostring(clock), 3)
    end
    s = scheduler.new { clock = clock or "real", start = opts.start_time }
  end
  local name = opts.name or new_name()
  if type(name) ~= "string" or #name < 1 or #name > 80 then
    error("emrflow.asl: execution name must be a string of 1 to 80 characters", 3)
  end
  if input == nil then input = json.object {} end
  local x = setmetatable({
    machine = machine, s = s, name = name, status = "RUNNING",
    options = opts, region = machine.region, entries = 0,
    role_arn = opts.role_arn or machine.role_arn,
  }, Execution)
  if machine.express then
    x.arn = machine.arn:gsub(":stateMachine:", ":express:") .. ":" .. name .. ":"
      .. fmt("%08x-%04x-4%03x-a%03x-%012x",
      math.random(0, 0xffffffff), math.random(0, 0xffff), math.random(0, 0xfff), math.random(0, 0xfff),
      math.random(0, 0xffffffffffff))
  else
    x.arn = machine.arn:gsub(":stateMachine:", ":execution:") .. ":" .. name
  end
  x.handle = x
  local ok, data = pcall(to_data, input, "the execution input")
  if ok then
    x.input = data
    local text = encode(data)
    if #text > PAYLOAD_LIMIT then
      x.input_error = { Error = "States.DataLimitExceeded",
        Cause = "The execution input exceeds the maximum number of bytes service limit." }
    end
  else
    error("emrflow.asl: " .. tostring(type(data) == "table" and data.Cause or data), 3)
  end
  x.start_time = s:now()
  local keep = opts.history ~= false
  local limit = opts.history_limit
  if limit == nil then limit = (not machine.express) and M.HISTORY_LIMIT or false end
  if limit ~= false and (math.type(limit) ~= "integer" or limit < 1) then
    error("emrflow.asl: history_limit must be a positive integer or false", 3)
  end
  x.rec = history.new { enabled = keep, now = function() return s:now() end, on_event = opts.on_event,
    limit = limit or nil }
  x.keep = keep or opts.on_event ~= nil
  x.ctx_execution, x.ctx_machine = context.execution(x)
  x.frame = new_frame(x, {}, 0, false)
  x.task = s:spawn(run_execution, x)
  return x
end

local function result_of(x)
  if x.status == "SUCCEEDED" then return x.status, x.output end
  return x.status, { Error = x.error, Cause = x.cause }
end

--- Drives the scheduler until the execution ends. Returns status, output | {Error=, Cause=}.
function Execution:wait()
  if self.task:done() then return result_of(self) end
  if scheduler.current() == self.s then
    scheduler.join({ self.task })
  else
    self.s:run_until(self.task)
  end
  local ok, err = self.task:result()
  if not ok then error(err, 0) end
  return result_of(self)
end

--- One scheduler step (for hosts with their own loop). Returns true while running.
function Execution:step(max_wait_s)
  if not self.task:done() then self.s:step(max_wait_s or 0) end
  return not self.task:done()
end

function Execution:done()
  return self.task:done()
end

--- Aborts the execution: in-flight work sees the error and runs its cleanup.
function Execution:stop(err, cause)
  if self.task:done() then return false end
  local e = { Error = err, Cause = cause, aborted = true }
  if not self.task.started then
    self.stop_requested = e
    return true
  end
  self.s:cancel(self.task, e)
  return true
end

--- The history as GetExecutionHistory shapes it (payloads as JSON text), or with
-- { raw = true } with payloads as Lua values.
function Execution:history(opts)
  if opts and opts.raw then return self.rec:expanded() end
  return self.rec:materialize()
end

function Execution:event_types()
  return self.rec:types()
end

function Execution:describe()
  local d = { executionArn = self.arn, name = self.name, status = self.status,
    startDate = self.start_time, stopDate = self.stop_time, input = self.input }
  if self.status == "SUCCEEDED" then d.output = self.output else
    d.error, d.cause = self.error, self.cause
  end
  return d
end

return M
