--- emrflow.asl.query.jsonata: JSONata as the query language of Step Functions states
-- (QueryLanguage "JSONata"), on top of emrflow.jsonata. The interface is ARCHITECTURE.md's
-- "Query-language interface" (compile, compile_template, evaluate, evaluate_template,
-- is_expression).
--
-- As Step Functions defines it:
--   * a string that is exactly "{% expr %}" is an expression; any other string is literal;
--     templates (objects, arrays) hold expressions at any depth;
--   * $states = { input, result (Task, Parallel, Map results), errorOutput (in a Catch),
--     context }; workflow variables are $name;
--   * Step Functions' functions $partition, $range, $hash, $random, $uuid, $parse are added
--     and $eval is not there; the JSONata 2.1 operators ?: and ?? are refused (Step Functions
--     runs JSONata 2.0);
--   * every expression is parsed at load time: compile errors are messages for a located
--     validation problem;
--   * a failing expression, one that returns nothing (undefined) or a function raises
--     States.QueryEvaluationError.
local json = require "emrflow.json"
local jsonata = require "emrflow.jsonata"
local digest = require "emrflow.digest"

local M = {}

M.name = "JSONata"

local fmt = string.format
local floor = math.floor

-- Evaluations in a state are bounded: no state can hang on a runaway expression.
local LIMITS = { time_limit_ms = 10000 }

local function query_error(cause)
  error({ Error = "States.QueryEvaluationError", Cause = cause }, 0)
end

--------------------------------------------------------------------------------------------
-- Step Functions' functions
--------------------------------------------------------------------------------------------

local function integer_arg(v, what)
  if type(v) ~= "number" or v ~= floor(v) then jsonata.raise("D3137", what .. " must be an integer") end
  return math.tointeger(v) or v
end

-- A seeded generator for $random(seed): xorshift64*, so one seed always gives one number.
local function seeded_random(seed)
  local x = math.tointeger(floor(seed)) or 0
  x = x ~ 0x2545F4914F6CDD1D
  if x == 0 then x = 1 end
  x = x ~ (x >> 12)
  x = x ~ (x << 25)
  x = x ~ (x >> 27)
  local r = (x * 0x2545F4914F6CDD1D) >> 11
  return r / 9007199254740992.0
end

local function uuid()
  local b = {}
  for i = 1, 16 do b[i] = math.random(0, 255) end
  b[7] = (b[7] & 0x0F) | 0x40
  b[9] = (b[9] & 0x3F) | 0x80
  local h = {}
  for i = 1, 16 do h[i] = fmt("%02x", b[i]) end
  local s = table.concat(h)
  return table.concat({ s:sub(1, 8), s:sub(9, 12), s:sub(13, 16), s:sub(17, 20), s:sub(21) }, "-")
end

local SF_FUNCTIONS = {
  eval = false, -- not in Step Functions
  partition = jsonata.native("partition", "<an:a>", function(a)
    local arr, size = a[1], a[2]
    if arr == nil then return nil end
    size = integer_arg(size, "$partition: the chunk size")
    if size < 1 then jsonata.raise("D3137", "$partition: the chunk size must be at least 1") end
    local out = json.array()
    for i = 1, #arr do
      local c = (i - 1) // size + 1
      out[c] = out[c] or json.array()
      local chunk = out[c]
      chunk[#chunk + 1] = arr[i]
    end
    return out
  end),
  range = jsonata.native("range", "<nnn?:a>", function(a)
    local first, last, step = a[1], a[2], a[3]
    first = integer_arg(first, "$range: the start")
    last = integer_arg(last, "$range: the end")
    step = step == nil and 1 or integer_arg(step, "$range: the step")
    if step == 0 then jsonata.raise("D3137", "$range: the step must not be 0") end
    local out = jsonata.sequence()
    local count = (last - first) // step + 1
    if count > 1e7 then jsonata.raise("D2014", "$range: the sequence would hold " .. count .. " numbers") end
    for i = 0, count - 1 do out[#out + 1] = first + i * step end
    return out
  end),
  hash = jsonata.native("hash", "<s-s:s>", function(a)
    local data, alg = a[1], a[2]
    if data == nil then return nil end
    local ok, hex = pcall(digest.hex, alg, data)
    if not ok then jsonata.raise("D3137", "$hash: unsupported algorithm " .. tostring(alg)
      .. " (MD5, SHA-1, SHA-256, SHA-384, SHA-512)") end
    return hex
  end),
  random = jsonata.native("random", "<n?:n>", function(a)
    if a[1] ~= nil then return seeded_random(a[1]) end
    return math.random()
  end),
  uuid = jsonata.native("uuid", "<:s>", function() return uuid() end),
  parse = jsonata.native("parse", "<s-:j>", function(a)
    local text = a[1]
    if text == nil then return nil end
    local ok, v = pcall(json.decode, text)
    if not ok then
      jsonata.raise("D3137", "$parse: not a JSON text: " .. tostring(v):gsub("^emrflow%.json: ", ""))
    end
    return v
  end),
}

local environment = jsonata.environment(SF_FUNCTIONS)

--------------------------------------------------------------------------------------------
-- Expressions
--------------------------------------------------------------------------------------------

--- Is v an expression ("{% ... %}", exactly)?
function M.is_expression(v)
  return type(v) == "string" and #v >= 4 and v:sub(1, 2) == "{%" and v:sub(-2) == "%}"
end
local is_expression = M.is_expression

-- The operators of JSONata 2.1 that Step Functions (JSONata 2.0) does not have.
local function refused_operator(node)
  if type(node) ~= "table" then return nil end
  if node.type == "condition" and node.operator then return node.operator end
  for k, v in pairs(node) do
    if type(v) == "table" and k ~= "slot" and k ~= "ancestor" and k ~= "seekingParent" then
      local op = refused_operator(v)
      if op then return op end
    end
  end
  return nil
end

--- Interface: compile(text, where) --> compiled | nil, message.
function M.compile(text, where)
  if not is_expression(text) then return nil, "must be a {% JSONata %} expression" end
  local body = text:sub(3, -3)
  local source = body:match("^%s*(.-)%s*$")
  if source == "" then return nil, "the expression is empty" end
  local ok, expr = pcall(jsonata.compile, source)
  if not ok then
    local e = expr
    if type(e) == "table" and e.code then
      return nil, fmt("%s: %s (at position %s of '%s')", e.code, tostring(e.message), tostring(e.position),
        source)
    end
    return nil, tostring(e)
  end
  local op = refused_operator(expr:tree())
  if op then
    return nil, fmt("the operator %s is not supported in Step Functions (JSONata 2.0) in '%s'", op, source)
  end
  return { expr = expr, source = source, field = where and where.field or "?" }
end

-- The $states object of one evaluation.
local function states_of(env)
  return json.object_of("input", env.input, "result", env.result, "errorOutput", env.errorOutput,
    "context", env.context)
end

local function variable_reader(env, states)
  local vars = env.vars
  return function(name)
    if name == "states" then return states end
    if vars then return vars[name] end
    return nil
  end
end

local function run(compiled, field, env, states)
  local ok, v = pcall(compiled.expr.evaluate_in, compiled.expr, environment, variable_reader(env, states),
    nil, nil, LIMITS)
  if not ok then
    local e = v
    local detail = type(e) == "table" and e.code and fmt("%s: %s", e.code, tostring(e.message)) or tostring(e)
    query_error(fmt("The JSONata expression '%s' specified for the field '%s' threw an error: %s",
      compiled.source, field, detail))
  end
  if v == nil then
    query_error(fmt("The JSONata expression '%s' specified for the field '%s' returned nothing (undefined).",
      compiled.source, field))
  end
  if jsonata.is_function(v) then
    query_error(fmt("The JSONata expression '%s' specified for the field '%s' returned an unsupported "
      .. "result type.", compiled.source, field))
  end
  return v
end

--- Interface: evaluate(compiled, env) --> value, or raises States.QueryEvaluationError.
function M.evaluate(compiled, env)
  return run(compiled, compiled.field, env, states_of(env))
end

--------------------------------------------------------------------------------------------
-- Templates: JSON values with expressions at any depth
--------------------------------------------------------------------------------------------

-- A template node: { value = v } (constant) | { expr = compiled } | { object = keys, parts }
-- | { array = parts }; `path` is the field path used in messages ("Output/result").
local function compile_node(v, path, where)
  if is_expression(v) then
    local c, msg = M.compile(v, where)
    if not c then return nil, msg end
    return { expr = c, path = path }
  end
  if type(v) ~= "table" then return { value = v } end
  if json.is_array(v) then
    local parts, constant = {}, true
    for i = 1, #v do
      local p, msg = compile_node(v[i], path .. "/" .. (i - 1), where)
      if not p then return nil, msg end
      parts[i] = p
      if p.value == nil or p.value ~= v[i] then constant = false end
    end
    if constant then return { value = v } end
    return { array = parts, n = #v }
  end
  local keys = json.keys(v)
  local parts, constant = {}, true
  for i, k in ipairs(keys) do
    local p, msg = compile_node(v[k], path .. "/" .. k, where)
    if not p then return nil, msg end
    parts[i] = p
    if p.value == nil or p.value ~= v[k] then constant = false end
  end
  if constant then return { value = v } end
  return { object = keys, parts = parts }
end

--- Interface: compile_template(value, where) --> compiled | nil, message. A value without
-- expressions compiles to itself. Optional where.expect ("array", "object", "string",
-- "number", "boolean"): an expression for the whole field must give that type, else
-- States.QueryEvaluationError worded as Step Functions words it. A Map's Items must give an
-- array whether or not where.expect says so.
local EXPECT = { Items = "array" }

function M.compile_template(value, where)
  local field = where and where.field or "?"
  local node, msg = compile_node(value, field, where)
  if not node then return nil, msg end
  local expect = where and (where.expect or EXPECT[field])
  if node.expr and expect then node.expect = expect end
  return node
end

local function type_name(v)
  if v == json.null then return "null" end
  if type(v) == "table" then return json.is_array(v) and "array" or "object" end
  return type(v)
end

local function check_type(node, v)
  local got = type_name(v)
  if got ~= node.expect then
    local ok, text = pcall(json.encode, v)
    query_error(fmt("The JSONata expression '%s' specified for the field '%s' returned an unexpected result "
      .. "type. Expected '%s', but was '%s' for value: %s", node.expr.source, node.path, node.expect, got,
      ok and text or tostring(v)))
  end
  return v
end

local function eval_node(node, env, states)
  if node.expr then
    local v = run(node.expr, node.path, env, states)
    if node.expect then return check_type(node, v) end
    return v
  end
  if node.value ~= nil then return node.value end
  if node.array then
    local out = json.array()
    for i = 1, node.n do out[i] = eval_node(node.array[i], env, states) end
    return out
  end
  local out = json.object()
  for i, k in ipairs(node.object) do json.set(out, k, eval_node(node.parts[i], env, states)) end
  return out
end

--- Interface: evaluate_template(compiled, env) --> value, or raises States.QueryEvaluationError.
function M.evaluate_template(compiled, env)
  if compiled.value ~= nil then return compiled.value end
  return eval_node(compiled, env, states_of(env))
end

return M
