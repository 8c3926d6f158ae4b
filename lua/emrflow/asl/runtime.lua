-- emrflow.asl.runtime: frames (one thread of control: an execution, a Parallel branch, a Map
-- iteration), entering and leaving states, events, and running programs and child tasks.

local scheduler = require "emrflow.scheduler"
local context = require "emrflow.asl.context"
local common = require "emrflow.asl.common"

local normalize = common.normalize

local M = {}

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
-- events, env = the environment its states evaluate in (env.consts: the execution's constant
-- template objects, see payload.lua) }. One frame runs one state at a
-- time, so its env table is reused from state to state (enter resets it).
-- Every field a frame gets is in its constructor, so that it never grows (a rehash each
-- time it would, for every Map iteration): state_name / entered_id (the state running, for
-- error causes), started (a Map or Parallel has started), so / sn and ro / rn (the sizes the
-- fast Pass remembers), ko (its last output made by json.copy_shallow, a JSON object).
-- up, kind, index: where this thread of control is (a Parallel's branch "b" or a Map's
-- iteration "i" of its parent frame `up`); frame_key gives it as text ("/b1/i7"), built only
-- when asked (idempotency tokens), not for every iteration.
local function new_frame(x, vars, prev, quiet, up, kind, index)
  return { x = x, vars = vars, prev = prev, quiet = quiet or false,
    env = { input = false, vars = vars, consts = x.consts or false },
    state_name = false, entered_id = 0, started = false, so = false, sn = 0, ro = false, rn = 0,
    ko = false,
    up = up or false, kind = kind or false, index = index or 0 }
end

--- "" for the execution's frame, "/b1" for a Parallel's second branch, "/b1/i7" for the eighth
-- iteration of a Map inside it.
local function frame_key(frame)
  if not frame.kind then return "" end
  return frame_key(frame.up) .. "/" .. frame.kind .. frame.index
end

-- A child thread of control. Its variables: a scope of their own reading through to the
-- parent's (vars_mt = { __index = parent vars }, shared by siblings), or, when the child's
-- program never assigns any (vars_mt == nil), the parent's table itself.
local function child_frame(frame, quiet, vars_mt, kind, index)
  local vars = frame.vars
  if vars_mt ~= false then
    vars = setmetatable({}, vars_mt or { __index = frame.vars })
  end
  return new_frame(frame.x, vars, frame.prev, quiet or frame.quiet, kind and frame, kind, index)
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

-- A JSONata evaluation failure is announced once, where it happened, by an EvaluationFailed
-- event before the state's failure (AWS records it; reference asl-semantics §11.5).
local QUERY_EVALUATION_ERROR = "States.QueryEvaluationError"
local function evaluation_failed(frame, err)
  if type(err) ~= "table" or err.Error ~= QUERY_EVALUATION_ERROR or err.evaluation_reported then
    return false
  end
  err.evaluation_reported = true
  emit(frame, "EvaluationFailed", "evaluationFailedEventDetails",
    { error = err.Error, cause = err.Cause, state = frame.state_name or nil })
  return true
end

local function exit_state(frame, st, output, assigned)
  if frame.quiet then return end
  frame.prev = frame.x.rec:add_event(st.exited_desc, frame.prev, output, assigned)
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
  if not ok then
    local err = normalize(out, frame)
    evaluation_failed(frame, err)
    error(err, 0)
  end
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

M.emit = emit
M.new_frame = new_frame
M.child_frame = child_frame
M.YIELD_EVERY = YIELD_EVERY
M.enter = enter
M.exit_state = exit_state
M.evaluation_failed = evaluation_failed
M.run_states = run_states
M.run_program = run_program
M.run_children = run_children

M.frame_key = frame_key

return M
