-- luacheck: no max line length
-- A seeded fuzzer for the ASL interpreter: it generates state machines (valid-ish, then
-- mutated: random types and fields, deep nesting, odd paths, intrinsics, regexes, unicode,
-- broken JSON text), puts each through asl.validate, asl.load and, for machines without Task
-- states, a run on the virtual clock, and reports every outcome a user should never see:
-- a Lua "file.lua:N" text, an error that is not an ASL error, a table address in a message,
-- output that is not JSON, a validate/load disagreement, or a run over its instruction budget.
--
--   local fuzz = require "support.fuzz"
--   local case = fuzz.case(seed, i)      --> { def = table | JSON text, input = value }
--   local failure = fuzz.check(case)     --> nil | { kind =, message = }
--   local report = fuzz.run{ seed =, n =, seconds = }  --> { cases =, failures = { [signature] = {...} } }
--   fuzz.shrink(case, signature)         --> a smaller case failing the same way
--   fuzz.signature(failure)              --> the failure's cause with its varying details blanked
local json = require "emrflow.json"
local asl = require "emrflow.asl"

local M = {}

local sformat, concat = string.format, table.concat

---------------------------------------------------------------------------------------------
-- Random numbers: xorshift64*, independent of math.random (which the engine itself uses)
---------------------------------------------------------------------------------------------

local Rng = {}
Rng.__index = Rng

function M.rng(seed)
  local s = (seed * 0x9E3779B97F4A7C15 + 0x2545F4914F6CDD1D) | 1
  return setmetatable({ s = s }, Rng)
end

function Rng:next()
  local x = self.s
  x = x ~ (x >> 12)
  x = x ~ (x << 25)
  x = x ~ (x >> 27)
  self.s = x
  return (x * 0x2545F4914F6CDD1D) >> 1
end

function Rng:int(lo, hi) return lo + self:next() % (hi - lo + 1) end
function Rng:chance(p) return self:next() % 1000 < p * 1000 end
function Rng:pick(list) return list[self:int(1, #list)] end

---------------------------------------------------------------------------------------------
-- Vocabulary
---------------------------------------------------------------------------------------------

local NAMES = { "A", "B", "C", "Start", "Étape", "x y", "Done", "状态", "", "a.b", "$x", "{}" }
local TYPES = { "Pass", "Pass", "Pass", "Choice", "Succeed", "Fail", "Wait", "Parallel", "Map" }
local ODD_TYPES = { "Task", "pass", "Bogus", "", "Parallel", "Map" }

local PATHS = {
  "$", "$.a", "$.a.b", "$.items", "$.items[0]", "$.items[-1]", "$.items[1:3]", "$.items[::2]",
  "$.items[*].x", "$..x", "$.items[?(@.x > 1)]", "$.items[?(@.s == 'a')]", "$.items[?(@.s =~ /a.*b/)]",
  "$.items[?(@.s =~ /[a%]/)]", "$.items[?(@.s =~ /(a+)+$/)]", "$['a b']", "$.n", "$.s", "$.u",
  "$$.Execution.Name", "$$.Execution.Input", "$$.State.Name", "$$.Map.Item.Value", "$$.Map.Item.Index",
  "$v", "$v.a", "$.a[", "$.a.", "$..", "$[", "$.a['x", "$.€", "$.items.length()", "$[0][0][0]",
  "$.items[(@.length-1)]", "$.a[?(@ =~ /\\d+/)]", "$.a\0b", "$.a[9223372036854775807]",
  "$.items[-9223372036854775808:]", "$.s[?(@)]",
}

local FUNCS = {
  "States.Format", "States.StringToJson", "States.JsonToString", "States.Array",
  "States.ArrayPartition", "States.ArrayContains", "States.ArrayRange", "States.ArrayGetItem",
  "States.ArrayLength", "States.ArrayUnique", "States.Base64Encode", "States.Base64Decode",
  "States.Hash", "States.JsonMerge", "States.MathRandom", "States.MathAdd", "States.StringSplit",
  "States.UUID", "States.Nope",
}

local NUMBERS = { "0", "1", "-1", "3", "1.5", "-2.5", "1e400", "2147483648", "9223372036854775807",
  "-9223372036854775808", "99999999999999999999", "1e-320", "0.1", "1000", "1001" }

local STRINGS = { "", "a", "a,b,,c", "{}", "{} {}", "\\'", "\\{\\}", "/w==", "RGF0YQ==", "MD5",
  "SHA-256", "SHA-3", "é€😀", "\\\\", "[1,2]", "{\"k\":1}", "  ", "null" }

local OPS = { "StringEquals", "StringLessThan", "StringGreaterThanEquals", "StringMatches",
  "NumericEquals", "NumericLessThan", "NumericGreaterThanPath", "BooleanEquals", "TimestampEquals",
  "TimestampLessThanPath", "IsPresent", "IsNull", "IsString", "IsNumeric", "IsTimestamp",
  "StringEqualsPath", "Bogus" }

local TIMESTAMPS = { "2024-01-02T03:04:05Z", "2024-02-30T00:00:00Z", "2024-01-02T03:04:05.123456789+05:30",
  "2024-01-02", "x", "9999-12-31T23:59:59Z", "2024-01-02T24:00:00Z" }

---------------------------------------------------------------------------------------------
-- Values
---------------------------------------------------------------------------------------------

local gen_value

local function gen_string(r)
  local k = r:int(1, 6)
  if k == 1 then return r:pick(STRINGS) end
  if k == 2 then return r:pick(PATHS) end
  if k == 3 then return r:pick(TIMESTAMPS) end
  if k == 4 then -- random code points, some unusual
    local cps = {}
    for i = 1, r:int(0, 8) do
      cps[i] = r:pick({ 0x41 + r:int(0, 25), 0x20, 0x22, 0x5C, 0x7F, 0xE9, 0x20AC, 0xFFFD, 0x1F600, 0x10FFFF,
        0x2028, 0x1 })
    end
    return utf8.char(table.unpack(cps))
  end
  if k == 5 then return r:pick({ "a", "b", "ab", "aab", "x" }) end
  return tostring(r:int(-5, 5))
end

gen_value = function(r, depth)
  depth = depth or 0
  local k = r:int(1, depth > 3 and 5 or 8)
  if k == 1 then return json.null end
  if k == 2 then return r:chance(0.5) end
  if k == 3 then
    return r:pick({ 0, 1, -1, 2.5, 1e300, -0.0, math.maxinteger, math.mininteger, 3, 1000, 0.1 })
  end
  if k <= 5 then return gen_string(r) end
  if k == 6 then
    local a = json.array({})
    for i = 1, r:int(0, 4) do a[i] = gen_value(r, depth + 1) end
    return a
  end
  local o = json.object({})
  for _ = 1, r:int(0, 4) do
    json.set(o, r:pick({ "a", "b", "s", "n", "x", "items", "u", "k" }), gen_value(r, depth + 1))
  end
  return o
end

local function gen_input(r)
  local items = json.array({})
  for i = 1, r:int(0, 5) do
    items[i] = json.object({ x = r:int(-2, 4), s = r:pick({ "a", "ab", "aab", "b", "aaaaaaaaab" }) })
  end
  local input = json.object({ a = json.object({ b = gen_value(r) }), items = items, n = r:int(-3, 20),
    s = gen_string(r), u = "é€😀" })
  if r:chance(0.2) then return gen_value(r) end
  return input
end

---------------------------------------------------------------------------------------------
-- Intrinsic calls and payload templates
---------------------------------------------------------------------------------------------

local gen_call

local function gen_arg(r, depth)
  local k = r:int(1, 7)
  if k == 1 then return "'" .. r:pick(STRINGS) .. "'" end
  if k == 2 then return r:pick(NUMBERS) end
  if k == 3 then return r:pick(PATHS) end
  if k == 4 and depth < 12 then return gen_call(r, depth + 1) end
  if k == 5 then return r:pick({ "true", "false", "null" }) end
  if k == 6 then return r:pick({ "'unterminated", "$.a\"", "$.a'", "(", ")", ",", "'{}'", "@" }) end
  return "'" .. gen_string(r):gsub("[\\']", "") .. "'"
end

gen_call = function(r, depth)
  depth = depth or 1
  local args = {}
  for i = 1, r:int(0, 4) do args[i] = gen_arg(r, depth) end
  local text = r:pick(FUNCS) .. "(" .. concat(args, r:pick({ ", ", ",", " , " })) .. ")"
  if r:chance(0.1) then text = text:sub(1, r:int(0, #text)) end -- cut short
  return text
end

local function gen_template(r, depth)
  depth = depth or 0
  local t = json.object({})
  for _ = 1, r:int(0, 4) do
    local k = r:int(1, 5)
    if k == 1 then
      json.set(t, r:pick({ "p.$", "q.$", "$", ".$", "x.$" }), r:pick(PATHS))
    elseif k == 2 then
      json.set(t, r:pick({ "f.$", "g.$" }), gen_call(r))
    elseif k == 3 and depth < 3 then
      json.set(t, r:pick({ "nested", "o" }), gen_template(r, depth + 1))
    else
      json.set(t, r:pick({ "lit", "c", "n" }), gen_value(r))
    end
  end
  return t
end

---------------------------------------------------------------------------------------------
-- Machines
---------------------------------------------------------------------------------------------

local gen_machine

local function gen_rule(r, names, depth)
  local k = r:int(1, depth > 2 and 3 or 5)
  if k == 4 then
    local list = json.array({})
    for i = 1, r:int(0, 3) do list[i] = gen_rule(r, names, depth + 1) end
    local rule = json.object({ [r:pick({ "And", "Or" })] = list })
    return rule
  elseif k == 5 then
    return json.object({ Not = gen_rule(r, names, depth + 1) })
  end
  local op = r:pick(OPS)
  local rule = json.object({ Variable = r:pick(PATHS) })
  local v
  if op:find("Path$") then v = r:pick(PATHS)
  elseif op:find("^String") then v = r:chance(0.3) and r:pick({ "*a*", "a\\*b", "**", "\\" }) or gen_string(r)
  elseif op:find("^Numeric") then v = r:pick({ 1, 2.5, -1, 1e300, 0 })
  elseif op:find("^Timestamp") then v = r:pick(TIMESTAMPS)
  else v = r:chance(0.8) or gen_value(r) end
  json.set(rule, op, v)
  return rule
end

local function next_or_end(r, st, names, i)
  if i < #names and r:chance(0.85) then
    json.set(st, "Next", names[r:int(i + 1, #names)])
  elseif r:chance(0.05) then
    json.set(st, "Next", r:pick(names)) -- a loop, or a dangling name
  else
    json.set(st, "End", true)
  end
end

local function gen_state(r, names, i, depth)
  local ty = r:pick(TYPES)
  if depth > 1 and (ty == "Map" or ty == "Parallel") then ty = "Pass" end
  local st = json.object({ Type = ty })
  if ty == "Pass" then
    if r:chance(0.5) then json.set(st, "Parameters", gen_template(r)) end
    if r:chance(0.2) then json.set(st, "Result", gen_value(r)) end
    if r:chance(0.3) then json.set(st, "ResultPath", r:pick(PATHS)) end
    if r:chance(0.2) then json.set(st, "InputPath", r:pick(PATHS)) end
    if r:chance(0.2) then json.set(st, "OutputPath", r:pick(PATHS)) end
    if r:chance(0.2) then json.set(st, "Assign", json.object({ v = gen_value(r), ["w.$"] = r:pick(PATHS) })) end
    next_or_end(r, st, names, i)
  elseif ty == "Choice" then
    local choices = json.array({})
    for k = 1, r:int(1, 3) do
      local rule = gen_rule(r, names, 0)
      json.set(rule, "Next", r:pick(names))
      choices[k] = rule
    end
    json.set(st, "Choices", choices)
    if r:chance(0.7) then json.set(st, "Default", names[#names]) end
  elseif ty == "Fail" then
    if r:chance(0.5) then json.set(st, "Error", gen_string(r)) end
    if r:chance(0.3) then json.set(st, "CausePath", r:chance(0.5) and r:pick(PATHS) or gen_call(r)) end
  elseif ty == "Wait" then
    local k = r:int(1, 4)
    if k == 1 then json.set(st, "Seconds", r:pick({ 0, 1, 5, -1, 99999999, 1.5 }))
    elseif k == 2 then json.set(st, "Timestamp", r:pick(TIMESTAMPS))
    elseif k == 3 then json.set(st, "SecondsPath", r:pick(PATHS))
    else json.set(st, "TimestampPath", r:pick(PATHS)) end
    next_or_end(r, st, names, i)
  elseif ty == "Parallel" then
    local branches = json.array({})
    for k = 1, r:int(1, 2) do branches[k] = gen_machine(r, depth + 1) end
    json.set(st, "Branches", branches)
    if r:chance(0.3) then json.set(st, "ResultSelector", gen_template(r)) end
    next_or_end(r, st, names, i)
  elseif ty == "Map" then
    json.set(st, r:chance(0.7) and "ItemProcessor" or "Iterator", gen_machine(r, depth + 1))
    if r:chance(0.6) then json.set(st, "ItemsPath", r:pick(PATHS)) end
    if r:chance(0.3) then json.set(st, "ItemSelector", gen_template(r)) end
    if r:chance(0.2) then json.set(st, "MaxConcurrency", r:pick({ 0, 1, 40, -1, 2.5 })) end
    next_or_end(r, st, names, i)
  end
  if r:chance(0.1) then json.set(st, "Comment", r:chance(0.8) and gen_string(r) or gen_value(r)) end
  return st
end

gen_machine = function(r, depth)
  depth = depth or 0
  local names = {}
  local used = {}
  for _ = 1, r:int(1, depth > 0 and 3 or 6) do
    local n = r:pick(NAMES)
    if r:chance(0.3) or used[n] then n = n .. #names end
    if not used[n] then used[n] = true; names[#names + 1] = n end
  end
  local states = json.object({})
  for i, n in ipairs(names) do json.set(states, n, gen_state(r, names, i, depth)) end
  local m = json.object({ StartAt = names[1], States = states })
  if depth == 0 and r:chance(0.1) then json.set(m, "Comment", gen_value(r)) end
  if depth == 0 and r:chance(0.05) then json.set(m, "TimeoutSeconds", r:pick({ 1, 0, -5, 1.5 })) end
  return m
end

---------------------------------------------------------------------------------------------
-- Mutations
---------------------------------------------------------------------------------------------

-- The JSON keys of an object ({} for a Lua-only table whose keys are not all strings).
local function keys_of(t)
  local ok, keys = pcall(json.keys, t)
  return ok and keys or {}
end

-- Every table inside v (objects and arrays), with its parent, in a stable order.
local function tables_of(v, out)
  out = out or {}
  if type(v) == "table" and v ~= json.null then
    out[#out + 1] = v
    if json.is_array(v) then
      for i = 1, #v do tables_of(v[i], out) end
    else
      for _, k in ipairs(keys_of(v)) do tables_of(v[k], out) end
    end
  end
  return out
end

local function deep(r, n)
  local v = json.null
  for _ = 1, n do
    if r:chance(0.5) then v = json.array({ v }) else v = json.object({ a = v }) end
  end
  return v
end

local function mutate(r, m)
  local all = tables_of(m)
  local t = all[r:int(1, #all)]
  local keys = json.is_array(t) and {} or keys_of(t)
  local k = r:int(1, 10)
  if k == 9 then -- Lua-only shapes: keys that are not strings, values that are not JSON
    local key = r:pick({ 1.5, true, 0, -1, 100 })
    t[key] = r:pick({ "x", print, json.null })
    if r:chance(0.2) and #keys > 0 then t[r:pick(keys)] = print end
    return true
  elseif k == 10 and #keys > 0 and r:chance(0.05) then -- a very deep plain Lua table
    local v = {}
    for _ = 1, r:chance(0.2) and 100000 or 300 do v = { v } end
    json.set(t, r:pick(keys), v)
    return true
  end
  if k == 1 and #keys > 0 then
    json.set(t, r:pick(keys), nil)                               -- drop a field
  elseif k == 2 and #keys > 0 then
    json.set(t, r:pick(keys), gen_value(r))                      -- a random value of any type
  elseif k == 3 then
    if json.is_array(t) then t[#t + 1] = gen_value(r)            -- an unexpected item
    else json.set(t, r:pick({ "Bogus", "Type", "Next", "End", "Resource", "QueryLanguage", "Arguments",
      "Output", "Retry", "Catch", "ItemReader", "Items" }), gen_value(r)) end
  elseif k == 4 and #keys > 0 then
    json.set(t, r:pick(keys), deep(r, r:int(20, r:chance(0.1) and 3000 or 200))) -- deep nesting
  elseif k == 5 and #keys > 0 then
    json.set(t, r:pick(keys), r:pick(ODD_TYPES))
  elseif k == 6 and #keys > 0 then
    json.set(t, r:pick(keys), gen_call(r))
  elseif k == 7 and #keys > 0 then
    json.set(t, r:pick(keys), r:pick(PATHS))
  elseif k == 8 and #keys > 0 then
    json.set(t, r:pick(keys), json.array({}))
  end
end

-- JSON text with a few bytes changed (a definition read from a broken file).
local function mutate_text(r, text)
  for _ = 1, r:int(1, 3) do
    local i = r:int(1, #text + 1)
    local k = r:int(1, 4)
    if k == 1 then text = text:sub(1, i - 1) .. text:sub(i + 1)
    elseif k == 2 then text = text:sub(1, i - 1) .. r:pick({ "{", "}", "[", "]", ",", ":", "\"", "\\", "\255",
      "\0", "1e999", "nul", "\"\\ud800\"" }) .. text:sub(i)
    elseif k == 3 then text = text:sub(1, i)
    else text = text:sub(1, i - 1) .. text:sub(i, i):upper() .. text:sub(i + 1) end
  end
  return text
end

--- Case i of a seed: { def = table | JSON text, input = value, text = bool }.
function M.case(seed, i)
  local r = M.rng(seed * 1000003 + i)
  local m = gen_machine(r, 0)
  local mutations = r:chance(0.4) and 0 or r:int(1, 3)
  local lua_only = false
  for _ = 1, mutations do lua_only = mutate(r, m) or lua_only end
  local case = { def = m, input = gen_input(r), seed = seed, index = i, lua_only = lua_only }
  if r:chance(0.1) then
    local ok, text = pcall(json.encode, m)
    if ok then case.def = r:chance(0.5) and mutate_text(r, text) or text end
  end
  return case
end

---------------------------------------------------------------------------------------------
-- Checking one case
---------------------------------------------------------------------------------------------

M.INSTRUCTION_BUDGET = 100000000 -- Lua VM instructions for one case (a hang, not a timing test)
M.HISTORY_LIMIT = 2000

-- Runs fn() with a budget of VM instructions. debug.sethook is per coroutine (a new one has
-- no hook function of its own), so coroutine.create is wrapped meanwhile to hook every task
-- the scheduler starts. Once over budget the hook raises at every tick, so no pcall inside
-- can swallow it for long.
local function budgeted(fn)
  local used, over = 0, false
  local TICK = 10000
  local function hook()
    used = used + TICK
    if used > M.INSTRUCTION_BUDGET then over = true end
    if over then error("fuzz: over the instruction budget", 0) end
  end
  local create = coroutine.create
  coroutine.create = function(f) -- luacheck: ignore 122
    local co = create(f)
    debug.sethook(co, hook, "", TICK)
    return co
  end
  debug.sethook(hook, "", TICK)
  local res = table.pack(pcall(fn))
  debug.sethook()
  coroutine.create = create -- luacheck: ignore 122
  return over, table.unpack(res, 1, res.n)
end

local LUA_LOCATION = "[%w_%-%./]+%.lua:%d+"
local LUA_ERRORS = { "attempt to call a", "attempt to index a", "attempt to perform arithmetic",
  "attempt to compare", "attempt to concatenate", "stack overflow", "bad argument #", "malformed pattern",
  "number has no integer representation", "invalid UTF-8 code", "C stack overflow" }

-- A text a user may see: no Lua location, no table/function address --> nil | what is wrong.
local function bad_text(s)
  if type(s) ~= "string" then return "not a string: " .. type(s) end
  local loc = s:match(LUA_LOCATION)
  if loc then return "a Lua location (" .. loc .. ")" end
  if s:find("0x%x%x%x%x") then return "an address" end
  if s:find("stack traceback", 1, true) then return "a traceback" end
  -- Lua's own runtime error texts, with or without their location stripped
  for _, text in ipairs(LUA_ERRORS) do
    if s:find(text, 1, true) then return "a Lua runtime error (" .. text .. ")" end
  end
  return nil
end
M.bad_text = bad_text

-- asl.load raises "<caller>:N: emrflow.asl: ..." (level 2, the caller's own location: this
-- file); that prefix is the calling code's, not a leak, so it is cut before checking.
local function load_message(err)
  if type(err) ~= "string" then return err end
  return (err:gsub("^[^\n]-fuzz%.lua:%d+: ", ""))
end

local function has_task(v)
  for _, t in ipairs(tables_of(v)) do
    if t.Type ~= nil and t.Type ~= "Pass" and t.Type ~= "Choice" and t.Type ~= "Succeed" and t.Type ~= "Fail"
        and t.Type ~= "Wait" and t.Type ~= "Parallel" and t.Type ~= "Map" then
      return true
    end
  end
  return false
end

local function failure(kind, message) return { kind = kind, message = message } end

local function check_run(machine, input)
  local over, ok, status, result = budgeted(function()
    local x = machine:start(input, { clock = "virtual", history_limit = M.HISTORY_LIMIT })
    local st, res = x:wait()
    -- the output and every history event must be JSON a user can read
    if st == "SUCCEEDED" then json.encode(res) end
    for _, ev in ipairs(x:history()) do json.encode(ev) end
    return st, res
  end)
  if over then return failure("hang", "a Pass-only run went over the instruction budget") end
  if not ok then
    local why = bad_text(status)
    if type(status) == "string" and not status:find("^emrflow") and not why then
      why = "an error outside the ASL model"
    end
    if why or type(status) ~= "string" then
      return failure("run raised", tostring(status) .. (why and (" [" .. why .. "]") or ""))
    end
    return nil
  end
  if status ~= "SUCCEEDED" then
    -- a Fail state without Error fails the execution with no error name, as AWS does
    if type(result) ~= "table" or (result.Error ~= nil and type(result.Error) ~= "string") then
      return failure("run result", "a failed run's error is not an ASL error: " .. type(result))
    end
    local why = (result.Error ~= nil and bad_text(result.Error)) or (result.Cause ~= nil and bad_text(result.Cause))
    if why then
      return failure("run error", tostring(result.Error) .. ": " .. tostring(result.Cause) .. " [" .. why .. "]")
    end
  end
  return nil
end

--- nil when the case behaves, else { kind =, message = }.
function M.check(case)
  local over, ok, problems = budgeted(function() return asl.validate(case.def) end)
  if over then return failure("hang", "asl.validate went over the instruction budget") end
  if not ok then return failure("validate raised", tostring(problems)) end
  if type(problems) ~= "table" then return failure("validate result", "not a list: " .. type(problems)) end
  for _, p in ipairs(problems) do
    if type(p) ~= "table" or type(p.path) ~= "string" then
      return failure("validate result", "a problem without a path")
    end
    local why = bad_text(p.message)
    if why then
      local f = failure("validate problem", tostring(p.message) .. " [" .. why .. "]")
      f.path = p.path
      return f
    end
  end
  local machine
  over, ok, machine = budgeted(function() return asl.load(case.def, { name = "fuzz" }) end)
  if over then return failure("hang", "asl.load went over the instruction budget") end
  if not ok then
    local msg = load_message(machine)
    local why = bad_text(msg)
    if why then return failure("load error", tostring(msg) .. " [" .. why .. "]") end
    if #problems == 0 then return failure("load/validate", "validate found no problem, load raised: " .. msg) end
    return nil
  end
  if #problems > 0 then
    return failure("load/validate", "load accepted what validate refused: " .. problems[1].message)
  end
  if has_task(case.def) then return nil end
  return check_run(machine, case.input)
end

---------------------------------------------------------------------------------------------
-- Signatures, shrinking and the loop
---------------------------------------------------------------------------------------------

--- The failure's cause with the details that vary between cases blanked out.
function M.signature(f)
  local msg = f.message:gsub("0x%x+", "0x_"):gsub("/States/[^:]*: ", "/States/_: "):gsub("state '[^']*' %(entered at the event id #%d+%)", "state"):gsub("'[^']*'", "'_'"):gsub('"[^"]*"', '"_"'):gsub("%d+", "N")
  return f.kind .. ": " .. msg:sub(1, 160)
end

-- Candidates one step smaller than v: each field dropped, each subtree replaced by null.
local function smaller(v)
  local out = {}
  for _, t in ipairs(tables_of(v)) do
    if json.is_array(t) then
      for i = #t, 1, -1 do out[#out + 1] = { t, i, "remove" } end
    else
      for _, k in ipairs(keys_of(t)) do
        out[#out + 1] = { t, k, "drop" }
        if type(t[k]) == "table" then out[#out + 1] = { t, k, "null" } end
      end
    end
  end
  return out
end

local function copy(v)
  if type(v) ~= "table" or v == json.null then return v end
  local c = json.is_array(v) and json.array({}) or json.object({})
  if json.is_array(v) then
    for i = 1, #v do c[i] = copy(v[i]) end
  else
    for _, k in ipairs(keys_of(v)) do json.set(c, k, copy(v[k])) end
    for k, x in pairs(v) do -- Lua-only keys, kept as they are
      if type(k) ~= "string" then c[k] = copy(x) end
    end
  end
  return c
end

--- A smaller case with the same failure signature (greedy; bounded).
function M.shrink(case, signature, max_tries)
  local def = case.def
  if type(def) == "string" then -- JSON text: shrink its value when it still fails the same way
    local ok, v = pcall(json.decode, def)
    if not ok then return case end
    local f = M.check({ def = v, input = case.input })
    if not f or M.signature(f) ~= signature then return case end
    def = v
  end
  if #tables_of(def) > 3000 then return case end -- too big to shrink quickly (deep nesting)
  local cok, start = pcall(copy, def)
  if not cok then return case end
  local best = { def = start, input = case.input, lua_only = case.lua_only }
  local tries = 0
  local progress = true
  local deadline = os.clock() + 2 -- a shrink is a courtesy: never more than 2 s of CPU
  while progress and tries < (max_tries or 400) and os.clock() < deadline do
    progress = false
    for _, c in ipairs(smaller(best.def)) do
      tries = tries + 1
      if tries >= (max_tries or 400) or os.clock() > deadline then break end
      local trial = copy(best.def)
      -- find the same spot in the copy: walk both trees in step
      local src, dst = tables_of(best.def), tables_of(trial)
      local spot
      for i, t in ipairs(src) do if t == c[1] then spot = dst[i] break end end
      if spot then
        if c[3] == "remove" then table.remove(spot, c[2])
        elseif c[3] == "drop" then json.set(spot, c[2], nil)
        else json.set(spot, c[2], json.null) end
        local f = M.check({ def = trial, input = best.input, lua_only = best.lua_only })
        if f and M.signature(f) == signature then
          best.def = trial
          progress = true
          break
        end
      end
    end
  end
  return best
end

--- Runs cases seed/1.. until n cases or the time is up (os.clock seconds, whichever first).
function M.run(opts)
  local seed, n, seconds = opts.seed or 1, opts.n or 1000, opts.seconds or 3
  local start = os.clock()
  local report = { cases = 0, failures = {}, order = {} }
  for i = 1, n do
    if os.clock() - start > seconds then break end
    local case = M.case(seed, i)
    local f = M.check(case)
    report.cases = i
    if f then
      local sig = M.signature(f)
      local entry = report.failures[sig]
      if not entry then
        entry = { failure = f, case = case, count = 0 }
        report.failures[sig] = entry
        report.order[#report.order + 1] = sig
      end
      entry.count = entry.count + 1
    end
  end
  return report
end

-- A Lua constructor for v (for definitions JSON cannot show: non-string keys, functions).
local function lua_repr(v, depth)
  depth = depth or 0
  if type(v) == "string" then return sformat("%q", v) end
  if v == json.null then return "json.null" end
  if type(v) ~= "table" then return type(v) == "function" and "print" or tostring(v) end
  if depth > 40 then return "<nested deeper>" end
  local parts = {}
  for k, x in pairs(v) do
    local key = type(k) == "string" and sformat("[%q]", k) or ("[" .. tostring(k) .. "]")
    parts[#parts + 1] = key .. " = " .. lua_repr(x, depth + 1)
  end
  table.sort(parts)
  return (json.is_array(v) and "json.array{ " or "{ ") .. concat(parts, ", ") .. " }"
end

--- The repro of a case as text (JSON of the definition, or the broken text itself, or a Lua
-- constructor when the definition is a Lua-only table).
function M.repro(case)
  local def = case.def
  local ok, text = pcall(json.encode, def)
  if type(def) == "string" then text = sformat("%q", def)
  elseif not ok or case.lua_only then text = "(Lua) " .. lua_repr(def) end
  local iok, input = pcall(json.encode, case.input)
  return sformat("definition %s\ninput %s", text, iok and input or "<not JSON>")
end

return M
