-- emrflow.asl.states.choice: the Choice state: its fields, its checks and its execution.

local choice = require "emrflow.asl.choice"
local common = require "emrflow.asl.common"
local rt = require "emrflow.asl.runtime"
local pipeline = require "emrflow.asl.pipeline"

local fmt = string.format
local raise = common.raise
local enter = rt.enter
local exit_state = rt.exit_state
local io_fields = pipeline.io_fields
local effective_input = pipeline.effective_input
local apply_output_path = pipeline.apply_output_path
local apply_assign = pipeline.apply_assign
local is_array = common.is_array
local is_object = common.is_object
local join = common.join
local words = common.words

local M = {}

-- A JSONata rule's Condition as test(env) --> boolean (a boolean literal or an expression that
-- must give a boolean).
local function jsonata_condition(st, r)
  local cond = pipeline.field(st, r, "Condition")
  return function(env)
    local v = cond(env)
    if type(v) ~= "boolean" then
      raise("States.QueryEvaluationError", fmt("The Condition field of a choice rule of state '%s' "
        .. "must evaluate to a boolean", st.name))
    end
    return v
  end
end

function M.compile(st, def, b)
  io_fields(st, def)
  local rules = {}
  for i, r in ipairs(def.Choices) do
    rules[i] = {
      test = st.jsonata and jsonata_condition(st, r) or choice.compile(r),
      next_name = r.Next,
      assign = r.Assign ~= nil and pipeline.assign_field(st, r.Assign) or nil,
      output = st.jsonata and pipeline.field(st, r, "Output") or nil,
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
    local out
    if rule and rule.output then out = rule.output(env) else out = apply_output_path(st, eff, env) end
    apply_assign(frame, assigned)
    exit_state(frame, st, out, assigned)
    return target, out
  end
end




-- The fields of a Choice state in each query language (besides Type, Comment, QueryLanguage).
M.fields = {
  JSONPath = words [[Choices Default InputPath OutputPath Assign]],
  JSONata = words [[Choices Default Output Assign]],
}

-- Load-time checks of the fields (validate.lua calls it with its checker `c`).
function M.check(c, def, path, scope, lang)
  local choices = def.Choices
  if not is_array(choices) or #choices == 0 then
    c:add(join(path, "Choices"), "Choices must be a non-empty array of rules")
  else
    for i, r in ipairs(choices) do
      local p = join(join(path, "Choices"), i - 1)
      c:choice_rule(r, p, true, lang)
      if is_object(r) then
        c:target(r.Next, join(p, "Next"), scope, true)
        if r.Assign ~= nil then c:assign(r.Assign, join(p, "Assign"), lang) end
      end
    end
  end
  if def.Default ~= nil then c:target(def.Default, join(path, "Default"), scope) end
end

return M
