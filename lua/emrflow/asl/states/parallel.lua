-- emrflow.asl.states.parallel: the Parallel state: its fields, its checks and its execution.

local json = require "emrflow.json"
local rt = require "emrflow.asl.runtime"
local pipeline = require "emrflow.asl.pipeline"
local handlers = require "emrflow.asl.handlers"
local common = require "emrflow.asl.common"

local emit = rt.emit
local child_frame = rt.child_frame
local run_program = rt.run_program
local run_children = rt.run_children
local io_fields = pipeline.io_fields
local effective_input = pipeline.effective_input
local finish = pipeline.finish
local compile_retriers = handlers.compile_retriers
local compile_catchers = handlers.compile_catchers
local handled = handlers.handled
local is_array = common.is_array
local join = common.join
local words = common.words

local M = {}


function M.compile(st, def, b)
  io_fields(st, def)
  st.retry = compile_retriers(def.Retry)
  st.catch = compile_catchers(def.Catch, st)
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
      local f = child_frame(frame, nil, not prog.assigns and false or nil, "b", i - 1)
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




-- The fields of a Parallel state in each query language (besides Type, Comment, QueryLanguage).
M.fields = {
  JSONPath = words [[
    Next End Branches InputPath OutputPath Parameters ResultSelector ResultPath Retry Catch
    Assign]],
  JSONata = words [[Next End Branches Arguments Output Retry Catch Assign]],
}

-- Load-time checks of the fields (validate.lua calls it with its checker `c`).
function M.check(c, def, path, _, lang)
  local branches = def.Branches
  if not is_array(branches) or #branches == 0 then
    c:add(join(path, "Branches"), "Branches must be a non-empty array")
    return
  end
  for i, br in ipairs(branches) do
    c:nested(function() c:machine(br, join(join(path, "Branches"), i - 1), c.BRANCH_FIELDS, lang) end)
  end
end

return M
