--- emrflow.jsonata: the JSONata query and transformation language.
--
--   local jsonata = require "emrflow.jsonata"
--   local expr = jsonata.compile(text)              -- raises a JSONata error on a syntax error
--   local v = expr:evaluate(input, bindings, opts)  -- a JSON value (json.null for null); nil = undefined
--   jsonata.evaluate(text, input, bindings, opts)   -- both in one
--
-- input nil = undefined; bindings { name = value } without the leading $ (values may be Lua
-- functions: they are called with the arguments and return one value);
-- opts { time_limit_ms = N, max_depth = N }. Errors raise a table
-- { code = "T2001", position = 7, token = "+", value = ..., message = "..." } with __tostring.
local value = require "emrflow.jsonata.value"
local errors = require "emrflow.jsonata.errors"
local parser = require "emrflow.jsonata.parser"
local ev = require "emrflow.jsonata.eval"
local functions = require "emrflow.jsonata.functions"

local M = {}

local SEQ, FN = value.SEQ, value.FN

local Expr = {}
Expr.__index = Expr

local library_frame -- the frame holding the built-ins (shared, never written)

local function lua_function(f)
  return setmetatable({ kind = "native", name = "binding", nparams = 1,
    impl = function(args, n) return f(table.unpack(args, 1, n)) end }, FN)
end

local function root_frame(input, bindings, extra, base)
  local env = ev.new_frame(base or library_frame)
  if extra then
    for k, v in pairs(extra) do env[k] = v end
  end
  if bindings then
    for k, v in pairs(bindings) do
      if type(v) == "function" then v = lua_function(v) end
      env[k] = v
    end
  end
  env["$"] = input
  return env
end

local function wrap_input(input)
  if value.is_array(input) and getmetatable(input) ~= SEQ then
    return setmetatable({ input, outer = true }, SEQ)
  end
  return input
end

-- Every error leaves as a JSONata error table: runaway recursion is U1001; anything else
-- (an error raised by a bound Lua function) is U1000 with its message, without Lua's
-- "file.lua:N:" prefix.
local function normalise_error(e)
  if errors.is_error(e) then return errors.finish(e) end
  if type(e) == "string" and e:find("stack overflow", 1, true) then
    return errors.finish(errors.new("U1001"))
  end
  local message = type(e) == "string" and e:gsub("^[^\n:]*:%d+: ", "") or tostring(e)
  return errors.finish(errors.new("U1000", nil, nil, { message = message }))
end

--- Run f under the limits of opts, keeping any evaluation already in progress ($eval).
local function run(f, opts)
  local rt = ev.rt
  local saved = { rt.depth, rt.edepth, rt.max_depth, rt.deadline, rt.nsites, rt.now }
  rt.depth, rt.edepth, rt.nsites = 0, 0, 0
  rt.max_depth = (opts and opts.max_depth) or math.huge
  rt.deadline = opts and opts.time_limit_ms and (os.clock() * 1000 + opts.time_limit_ms) or nil
  local timemod = package.loaded["emrflow.time"]
  rt.now = timemod and timemod.now_ms() or math.floor(os.time() * 1000)
  local ok, r = pcall(f)
  rt.depth, rt.edepth, rt.max_depth, rt.deadline, rt.nsites, rt.now = table.unpack(saved, 1, 6)
  if not ok then error(normalise_error(r), 0) end
  return r
end

--- Compile JSONata text; raises a JSONata error (S0xxx) on a syntax error.
function M.compile(text)
  if type(text) ~= "string" then
    local e = errors.new("S0201", 0, tostring(text), { message = "expression must be a string" })
    error(errors.finish(e), 0)
  end
  local ok, ast = pcall(parser.parse, text)
  if not ok then error(normalise_error(ast), 0) end
  local ok2, f = pcall(ev.compile, ast)
  if not ok2 then error(normalise_error(f), 0) end
  return setmetatable({ text = text, ast = ast, f = f }, Expr)
end

local function evaluate_compiled(self, input, bindings, opts, extra, base)
  if bindings ~= nil and type(bindings) ~= "table" then
    local e = errors.new("U1000", nil, nil, { message = "bindings must be a table of name = value" })
    error(errors.finish(e), 0)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error(errors.finish(errors.new("U1000", nil, nil, { message = "opts must be a table" })), 0)
  end
  return run(function()
    local env = root_frame(input, bindings, extra, base)
    local f = self.f
    if opts and opts.max_depth then
      -- a depth limit counts expression nesting as JSONata does: a separately compiled copy
      self.counted = self.counted or ev.compile(self.ast, true)
      f = self.counted
    end
    local r = f(wrap_input(input), env)
    return value.to_json(r)
  end, opts)
end

--- Evaluate: input (nil = undefined), bindings { name = value }, opts { time_limit_ms, max_depth }.
function Expr:evaluate(input, bindings, opts)
  return evaluate_compiled(self, input, bindings, opts)
end

--- Evaluate in a host's environment: `base` comes from jsonata.environment (the host's set
-- of functions); `lookup(name)` (optional) reads the host's variables for any $name the
-- expression does not bind itself, before the functions (nil = not a host variable);
-- bindings and opts as for evaluate.
function Expr:evaluate_in(base, lookup, input, bindings, opts)
  local frame = base
  if lookup then
    frame = setmetatable({}, { __index = function(_, name)
      local v = lookup(name)
      if v ~= nil then return v end
      return base[name]
    end })
  end
  return evaluate_compiled(self, input, bindings, opts, nil, frame)
end

--- The processed syntax tree (for hosts that check which constructs an expression uses).
function Expr:tree()
  return self.ast
end

--- A host environment for Expr:evaluate_in: the built-in library with `functions` added or
-- replaced (name -> function value from jsonata.native, or false to remove a built-in).
function M.environment(changes)
  local lib = {}
  for name, f in pairs(library_frame) do
    if type(name) == "string" then lib[name] = f end -- the functions only, no frame internals
  end
  for name, f in pairs(changes or {}) do
    if f == false then lib[name] = nil else lib[name] = f end
  end
  return lib
end

function M.evaluate(text, input, bindings, opts)
  return M.compile(text):evaluate(input, bindings, opts)
end

--- Define a built-in function value from a Lua function impl(args, n) and a JSONata signature.
function M.native(name, sig, impl)
  local signature = require "emrflow.jsonata.signature"
  return setmetatable({ kind = "native", name = name, impl = impl,
    sig = sig and signature.parse(sig, 0) }, FN)
end

M.is_error = errors.is_error
M.is_function = value.is_function

--- Raise a JSONata error from a host function (code as JSONata's, message as given).
function M.raise(code, message)
  ev.throw(code, { message = message })
end

--- A new sequence (a host function returning one gets JSONata's singleton rule).
function M.sequence()
  return value.new_seq()
end
M.null = value.NULL

-- $eval: compile and evaluate text against the current environment.
functions.define("eval", "<sx?:x>", function(a, n, input, env)
  local text, focus = a[1], a[2]
  if text == nil then return nil end
  local ctx = input
  if n >= 2 and focus ~= nil then ctx = wrap_input(focus) end
  local ok, ast = pcall(parser.parse, text)
  if ok then ok, ast = pcall(ev.compile, ast) end
  if not ok then
    local e = normalise_error(ast)
    ev.throw("D3120", { value = type(e) == "table" and e.message or tostring(e) })
  end
  local sites = ev.rt.nsites
  local ok2, r = pcall(ast, ctx, env or library_frame)
  if not ok2 then
    ev.rt.nsites = sites -- the failed evaluation's call sites are gone
    local e = normalise_error(r)
    ev.throw("D3121", { value = type(e) == "table" and e.message or tostring(e) })
  end
  return r
end)

library_frame = {}
for name, f in pairs(functions.library()) do library_frame[name] = f end

return M
