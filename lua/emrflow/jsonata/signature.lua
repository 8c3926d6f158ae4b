--- JSONata function signatures ("<s-n?:s>"): parsing and argument validation.
--
-- Each argument's type becomes one symbol (s n b l a o f m=missing); a signature becomes a
-- Lua pattern over those symbols, one capture per parameter.
local errors = require "emrflow.jsonata.errors"

local M = {}

local ARRAY_NAMES = { a = "arrays", b = "booleans", f = "functions", n = "numbers",
  o = "objects", s = "strings" }

local Sig = {}
Sig.__index = Sig

local function closing(str, start, open, close)
  local depth, p = 1, start
  while p < #str do
    p = p + 1
    local c = str:sub(p, p)
    if c == close then
      depth = depth - 1
      if depth == 0 then break end
    elseif c == open then
      depth = depth + 1
    end
  end
  return p
end

function M.parse(sig, position)
  local params, param = {}, {}
  local prev = param
  local p = 2
  local function next_param()
    params[#params + 1] = param
    prev = param
    param = {}
  end
  while p <= #sig do
    local c = sig:sub(p, p)
    if c == ":" then break end
    if c == "s" or c == "n" or c == "b" or c == "l" or c == "o" then
      param.regex = "[" .. c .. "m]"
      param.type = c
      next_param()
    elseif c == "a" then
      param.regex = "[asnblfom]"
      param.type = "a"
      param.array = true
      next_param()
    elseif c == "f" then
      param.regex = "f"
      param.type = "f"
      next_param()
    elseif c == "j" then
      param.regex = "[asnblom]"
      param.type = "j"
      next_param()
    elseif c == "x" then
      param.regex = "[asnblfom]"
      param.type = "x"
      next_param()
    elseif c == "-" then
      prev.context = true
      prev.context_regex = "^" .. prev.regex .. "$"
      prev.regex = prev.regex .. "?"
    elseif c == "?" or c == "+" then
      prev.regex = prev.regex .. c
    elseif c == "(" then
      local e = closing(sig, p, "(", ")")
      local choice = sig:sub(p + 1, e - 1)
      if choice:find("<", 1, true) then
        errors.raise("S0402", position, nil, { value = choice })
      end
      param.regex = "[" .. choice .. "m]"
      param.type = "(" .. choice .. ")"
      p = e
      next_param()
    elseif c == "<" then
      if prev.type == "a" or prev.type == "f" then
        local e = closing(sig, p, "<", ">")
        prev.subtype = sig:sub(p + 1, e - 1)
        p = e
      else
        errors.raise("S0401", position, nil, { value = prev.type })
      end
    end
    p = p + 1
  end
  local parts = { "^" }
  for i, prm in ipairs(params) do parts[i + 1] = "(" .. prm.regex .. ")" end
  parts[#parts + 1] = "$"
  return setmetatable({ params = params, pattern = table.concat(parts), text = sig, cache = {} }, Sig)
end

local symbol -- set by M.init: value -> one-letter type symbol

function M.init(symbol_of)
  symbol = symbol_of
end

function Sig:arity()
  return #self.params
end

local function validation_error(self, args, nargs, supplied)
  local partial, good = "^", 0
  for _, prm in ipairs(self.params) do
    partial = partial .. prm.regex
    local s, e = supplied:find(partial)
    if not s then
      M.throw("T0410", { value = args[good + 1], index = good + 1 })
    end
    good = e
  end
  M.throw("T0410", { value = args[good + 1], index = good + 1 })
  return nargs
end

-- What to do with the supplied arguments for one combination of argument types, found once
-- by matching the signature's pattern and then cached: a list of steps, one per parameter
-- value passed on ({ arg = i } or { context = pattern }, with array wrapping and checks).
local function build_plan(self, args, nargs, supplied)
  local caps = { supplied:match(self.pattern) }
  if #self.params == 0 then
    if supplied ~= "" then validation_error(self, args, nargs, supplied) end
    return {}
  end
  if caps[1] == nil then validation_error(self, args, nargs, supplied) end
  local plan, ai = {}, 1
  for i, prm in ipairs(self.params) do
    local m = caps[i]
    if m == "" then
      if prm.context and prm.context_regex then
        plan[#plan + 1] = { context = prm.context_regex, index = ai }
      else
        plan[#plan + 1] = { arg = ai }
        ai = ai + 1
      end
    else
      for k = 1, #m do
        local single = m:sub(k, k)
        local step = { arg = ai }
        if prm.type == "a" then
          if single == "m" then
            step.missing = true
          else
            step.wrap = single ~= "a"
            if prm.subtype ~= nil then
              step.subtype = prm.subtype
              step.single = single
              step.match = m
            end
          end
        end
        plan[#plan + 1] = step
        ai = ai + 1
      end
    end
  end
  return plan
end

local function check_subtype(step, arg, index)
  local subtype = step.subtype
  local ok = true
  if step.single ~= "a" and step.match ~= subtype then
    ok = false
  elseif step.single == "a" and #arg > 0 then
    local item_type = symbol(arg[1])
    if item_type ~= subtype:sub(1, 1) then
      ok = false
    else
      for j = 2, #arg do
        if symbol(arg[j]) ~= item_type then
          ok = false
          break
        end
      end
    end
  end
  if not ok then
    M.throw("T0412", { value = arg, index = index, type = ARRAY_NAMES[subtype] })
  end
end

local CODES = { s = 1, n = 2, b = 3, l = 4, a = 5, o = 6, f = 7, m = 0 }

--- Validate args (1..nargs) against the signature; returns the validated list and count.
function Sig:validate(args, nargs, context)
  local key = nargs
  local cache = self.cache
  local plan
  if nargs <= 16 then
    for i = 1, nargs do
      local v = args[i]
      local tv = type(v)
      local c
      if tv == "string" then
        c = 1
      elseif tv == "number" then
        c = 2
      else
        c = CODES[symbol(v)]
      end
      key = key * 8 + c
    end
    plan = cache[key]
  end
  if plan == nil then
    local syms = {}
    for i = 1, nargs do syms[i] = symbol(args[i]) end
    plan = build_plan(self, args, nargs, table.concat(syms))
    -- the arguments pass as they are when every step takes the next one unchanged
    local identity = #plan == nargs
    for i, step in ipairs(plan) do
      if step.arg ~= i or step.wrap or step.subtype or step.missing or step.context then identity = false end
    end
    plan.identity = identity
    if nargs <= 16 then cache[key] = plan end
  end
  if plan.identity then return args, nargs end
  local out, n = {}, #plan
  for i = 1, n do
    local step = plan[i]
    if step.context then
      if not symbol(context):find(step.context) then
        M.throw("T0411", { value = context, index = step.index })
      end
      out[i] = context
    elseif step.missing then
      out[i] = nil
    else
      local arg = args[step.arg]
      if step.subtype then check_subtype(step, arg, step.arg) end
      if step.wrap then arg = M.wrap_array(arg) end
      out[i] = arg
    end
  end
  return out, n
end

--- Raises an evaluation error (the evaluator's, which adds the call site).
M.throw = errors.throw

M.wrap_array = nil -- set by the evaluator: value -> one-element array

return M
