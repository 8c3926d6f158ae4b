-- emrflow.asl.states.succeed: the Succeed state: its fields, its checks and its execution.

local rt = require "emrflow.asl.runtime"
local pipeline = require "emrflow.asl.pipeline"
local common = require "emrflow.asl.common"

local enter = rt.enter
local exit_state = rt.exit_state
local io_fields = pipeline.io_fields
local effective_input = pipeline.effective_input
local apply_output_path = pipeline.apply_output_path
local words = common.words

local M = {}

function M.compile(st, def)
  io_fields(st, def)
  st.exec = function(frame, input)
    local env = enter(frame, st, input)
    local out = apply_output_path(st, effective_input(st, input, env), env)
    exit_state(frame, st, out, nil)
    return nil, out
  end
end




-- The fields of a Succeed state in each query language (besides Type, Comment, QueryLanguage).
M.fields = {
  JSONPath = words [[InputPath OutputPath]],
  JSONata = words [[Output]],
}

return M
