-- emrflow.asl.engine: compiles a validated ASL definition into a program.
--
-- Every state becomes a table whose `exec(frame, input, st)` returns the next compiled state
-- (nil or false at the end) and the state's output, or raises an ASL error { Error =, Cause = }.
-- The state types live in emrflow.asl.states.<type> (each: fields, checks, compile); the
-- input/output pipeline in emrflow.asl.pipeline, Retry/Catch in emrflow.asl.handlers, frames
-- and events in emrflow.asl.runtime, the execution lifecycle in emrflow.asl.execution.
--
-- Data discipline (what makes sharing safe): a value is never modified once it has been
-- made. States build their outputs from new tables that share everything they do not change
-- (ResultPath copies only the objects along the path, json.copy_shallow), history events
-- refer to the same values, and a Task's Lua result is copied once into JSON data.

local history = require "emrflow.asl.history"
local common = require "emrflow.asl.common"
local paths = require "emrflow.asl.paths"
local query = require "emrflow.asl.query"

local M = {}

local fmt = string.format
local mentions_context, mentions_key = common.mentions_context, common.mentions_key

--- The state types: Type -> module { compile = fn(st, def, builder), ... }.
M.STATES = {
  Pass = require "emrflow.asl.states.pass",
  Task = require "emrflow.asl.states.task",
  Choice = require "emrflow.asl.states.choice",
  Wait = require "emrflow.asl.states.wait",
  Succeed = require "emrflow.asl.states.succeed",
  Fail = require "emrflow.asl.states.fail",
  Parallel = require "emrflow.asl.states.parallel",
  Map = require "emrflow.asl.states.map",
}

-- A builder compiles one definition; states with sub-programs (Parallel, Map) call
-- builder:program(def, prefix), and builder.links collects fix-ups run once a scope's
-- states all exist (Choice targets).
local Builder = {}
Builder.__index = Builder

-- The names of a scope's states in the order a run meets them: from StartAt along Next, a
-- Choice's and a Catch's targets after the path they leave, then the states no path reaches
-- (by name). Compiled in this order, a chain's states and their history descriptors lie in
-- memory as a run reads them, so that a first run reads them sequentially, not at random.
local function run_order(states_def, start)
  local order, seen, later = {}, {}, { start }
  while #later > 0 do
    local name = table.remove(later)
    while type(name) == "string" and not seen[name] and type(states_def[name]) == "table" do
      seen[name] = true
      order[#order + 1] = name
      local sdef = states_def[name]
      local branches = {}
      if type(sdef.Choices) == "table" then
        for _, c in ipairs(sdef.Choices) do
          if type(c) == "table" then branches[#branches + 1] = c.Next end
        end
      end
      branches[#branches + 1] = sdef.Default
      if type(sdef.Catch) == "table" then
        for _, c in ipairs(sdef.Catch) do
          if type(c) == "table" then branches[#branches + 1] = c.Next end
        end
      end
      for i = #branches, 1, -1 do later[#later + 1] = branches[i] end
      name = sdef.Next
    end
  end
  local rest = {}
  for name in pairs(states_def) do
    if not seen[name] then rest[#rest + 1] = name end
  end
  table.sort(rest, function(a, b) return tostring(a) < tostring(b) end)
  table.move(rest, 1, #rest, #order + 1, order)
  return order
end

-- Compiles { StartAt, States } into { start = <compiled state>, states = { name -> st } }.
function Builder:program(def, prefix)
  local saved, saved_lang = self.prefix, self.lang
  self.prefix = prefix or ""
  local lang = def.QueryLanguage or self.lang or "JSONPath"
  local states = {}
  local links = {}
  local saved_links = self.links
  self.links = links
  for _, name in ipairs(run_order(def.States, def.StartAt)) do
    local sdef = def.States[name]
    local st = {
      -- room in the array part for fast_pass's fields and a template's values
      false, false, false, false, false, false, false, false, false, false, false, false, false, false, false,
      false,
      name = name, type = sdef.Type, def = sdef,
      entered_desc = history.descriptor(sdef.Type .. "StateEntered", "stateEnteredEventDetails",
        name),
      exited_desc = history.descriptor(sdef.Type .. "StateExited", "stateExitedEventDetails",
        name),
      next_name = sdef.Next,
      needs_context = mentions_context(sdef),
    }
    -- the state's query language (ARCHITECTURE.md): its own QueryLanguage, else its scope's
    local slang = sdef.QueryLanguage or lang
    if slang == "JSONata" then
      st.jsonata = true
      st.q = query.get(slang) or false -- false: not available; running such a state fails
      st.needs_context = true           -- $states.context
    end
    self.lang = slang
    local ok, err = pcall(M.STATES[sdef.Type].compile, st, sdef, self)
    if not ok then
      error(fmt("%s/States/%s: %s", self.prefix, name, tostring(err)), 0)
    end
    states[name] = st
  end
  for _, st in pairs(states) do
    if st.next_name then st.next = states[st.next_name] end
    if st.on_link then st.on_link(st) end
    if st.catch then
      for _, c in ipairs(st.catch) do c.next = states[c.next_name] end
    end
  end
  for _, link in ipairs(links) do link(states) end
  self.links = saved_links
  self.prefix, self.lang = saved, saved_lang
  return { start = states[def.StartAt], states = states, assigns = mentions_key(def.States, "Assign") }
end

-- compile(def, { resolve = fn(resource) -> impl }) --> program
function M.compile(def, opts)
  local b = setmetatable({ resolve = opts.resolve, prefix = "", links = {} }, Builder)
  return b:program(def, "")
end

-- Kept for tools and specs that parse reference paths.
M.parse_ref = paths.parse_ref
M.compile_path = paths.compile_path
M.to_data = common.to_data

return M
