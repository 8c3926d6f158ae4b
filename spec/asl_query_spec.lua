-- The query-language interface (ARCHITECTURE.md): a second language plugged in with
-- query.register drives every JSONata field of every state type. The language here is a toy
-- with JSONata's field syntax ("{% ... %}") and only references ($states.input.a, $x.b), numbers,
-- strings and booleans, so what is tested is the interpreter's side: which fields are evaluated,
-- when, with which $states, and what the outputs and variables become.
local asl = require "emrflow.asl"
local json = require "emrflow.json"
local query = require "emrflow.asl.query"

local toy = { name = "JSONata" }

local function reference(text)
  local root, rest = text:match("^%$([%a_][%w_]*)(.*)$")
  if not root then return nil end
  local steps = {}
  for step in rest:gmatch("%.([%w_]+)") do steps[#steps + 1] = step end
  return function(env)
    local v
    if root == "states" then
      v = { input = env.input, result = env.result, errorOutput = env.errorOutput, context = env.context }
    else
      v = env.vars[root]
    end
    for _, s in ipairs(steps) do
      if type(v) ~= "table" then return nil end
      v = v[tonumber(s) and tonumber(s) + 1 or s]
    end
    return v
  end
end

local function compile_expr(text)
  text = text:match("^%s*(.-)%s*$")
  if text == "true" or text == "false" then
    local b = text == "true"
    return function() return b end
  end
  if tonumber(text) then
    local n = math.tointeger(tonumber(text)) or tonumber(text)
    return function() return n end
  end
  local str = text:match("^'(.*)'$")
  if str then return function() return str end end
  local ref = reference(text)
  if ref then return ref end
  return nil, "cannot parse '" .. text .. "'"
end

function toy.compile(text)
  local body = type(text) == "string" and text:match("^%s*{%%(.*)%%}%s*$")
  if not body then return nil, "not an expression" end
  return compile_expr(body)
end

function toy.is_expression(v)
  return type(v) == "string" and v:match("^%s*{%%.*%%}%s*$") ~= nil
end

function toy.compile_template(v)
  if toy.is_expression(v) then return toy.compile(v) end
  if type(v) ~= "table" then return function() return v end end
  local parts = {}
  for k, x in pairs(v) do
    local fn, msg = toy.compile_template(x)
    if not fn then return nil, msg end
    parts[k] = fn
  end
  local array = json.is_array(v)
  return function(env)
    local out = array and json.array {} or json.object {}
    for k, fn in pairs(parts) do out[k] = fn(env) end
    return out
  end
end

function toy.evaluate(fn, env) return fn(env) end
function toy.evaluate_template(fn, env) return fn(env) end

local function run(def, input, opts)
  opts = opts or {}
  opts.clock = "virtual"
  local m = asl.load(def)
  return m:run(input or {}, opts)
end

describe("emrflow.asl query languages", function()
  setup(function() query.register("JSONata", toy) end)
  teardown(function() query.register("JSONata", nil) end)

  it("query.get gives the JSONPath language and the registered one", function()
    assert.are.equal("JSONPath", query.get("JSONPath").name)
    assert.are.equal(toy, query.get("JSONata"))
    local none, msg = query.get("XPath")
    assert.is_nil(none)
    assert.truthy(msg:find("unknown QueryLanguage", 1, true))
  end)

  it("Pass: Output (default: the input) and Assign see the same $states.input", function()
    local status, out = run({ QueryLanguage = "JSONata", StartAt = "A", States = {
      A = { Type = "Pass", Assign = { seen = "{% $states.input.v %}" }, Next = "B" },
      B = { Type = "Pass", Output = { v = "{% $seen %}", k = 1 }, End = true } } }, { v = 7 })
    assert.are.equal("SUCCEEDED", status)
    assert.are.same({ v = 7, k = 1 }, out)
  end)

  it("Task: Arguments go to the resource, Output defaults to the result, Assign sees it", function()
    local got
    local status, out = run({ QueryLanguage = "JSONata", StartAt = "T", States = {
      T = { Type = "Task", Resource = "arn:aws:states:::sns:publish",
        Arguments = { msg = "{% $states.input.text %}" },
        Assign = { r = "{% $states.result.n %}", i = "{% $states.input.text %}" }, Next = "P" },
      P = { Type = "Pass", Output = { r = "{% $r %}", i = "{% $i %}", all = "{% $states.input %}" },
        End = true } } }, { text = "hi" },
      { handlers = { ["arn:aws:states:::sns:publish"] = function(input) got = input return { n = 3 } end } })
    assert.are.equal("SUCCEEDED", status)
    assert.are.same({ msg = "hi" }, got)
    assert.are.same({ r = 3, i = "hi", all = { n = 3 } }, out)
  end)

  it("Choice: Condition picks the rule; a rule's Output and Assign apply", function()
    local status, out = run({ QueryLanguage = "JSONata", StartAt = "C", States = {
      C = { Type = "Choice", Default = "No", Choices = {
        { Condition = "{% $states.input.go %}", Next = "Yes", Assign = { via = "rule" },
          Output = { picked = "{% $states.input.name %}" } } } },
      Yes = { Type = "Pass", End = true,
        Output = { out = "{% $states.input.picked %}", via = "{% $via %}" } },
      No = { Type = "Fail", Error = "NotTaken" } } }, { go = true, name = "x" })
    assert.are.equal("SUCCEEDED", status)
    assert.are.same({ out = "x", via = "rule" }, out)
    local st2, err = run({ QueryLanguage = "JSONata", StartAt = "C", States = {
      C = { Type = "Choice", Choices = { { Condition = "{% $states.input.go %}", Next = "Y" } } },
      Y = { Type = "Succeed" } } }, { go = "yes" })
    assert.are.equal("FAILED", st2)
    assert.are.equal("States.QueryEvaluationError", err.Error)
  end)

  it("Wait: Seconds as an expression; Fail: Error and Cause as expressions", function()
    local status, err = run({ QueryLanguage = "JSONata", StartAt = "W", States = {
      W = { Type = "Wait", Seconds = "{% $states.input.s %}", Next = "F" },
      F = { Type = "Fail", Error = "{% $states.input.e %}", Cause = "{% 'why' %}" } } },
      { s = 5, e = "Oops" })
    assert.are.equal("FAILED", status)
    assert.are.same({ "Oops", "why" }, { err.Error, err.Cause })
  end)

  it("Catch: Output defaults to $states.errorOutput; Assign sees it", function()
    local status, out = run({ QueryLanguage = "JSONata", StartAt = "T", States = {
      T = { Type = "Task", Resource = "arn:aws:states:::sns:publish", End = true,
        Catch = { { ErrorEquals = { "Boom" }, Next = "P",
          Assign = { cause = "{% $states.errorOutput.Cause %}" } } } },
      P = { Type = "Pass", Output = { e = "{% $states.input.Error %}", c = "{% $cause %}" }, End = true } } },
      {}, { handlers = { ["arn:aws:states:::sns:publish"] = function()
        error({ Error = "Boom", Cause = "bad" }, 0)
      end } })
    assert.are.equal("SUCCEEDED", status)
    assert.are.same({ e = "Boom", c = "bad" }, out)
  end)

  it("Map: Items, ItemSelector with $states.context, MaxConcurrency as an expression", function()
    local status, out = run({ QueryLanguage = "JSONata", StartAt = "M", States = {
      M = { Type = "Map", Items = "{% $states.input.list %}", MaxConcurrency = "{% $states.input.mc %}",
        ItemSelector = { v = "{% $states.context.Map.Item.Value %}",
          i = "{% $states.context.Map.Item.Index %}" },
        ItemProcessor = { StartAt = "I", States = { I = { Type = "Pass", End = true } } }, End = true } } },
      { list = { "a", "b" }, mc = 1 })
    assert.are.equal("SUCCEEDED", status)
    assert.are.same({ { v = "a", i = 0 }, { v = "b", i = 1 } }, out)
  end)

  it("Parallel: Arguments are every branch's input", function()
    local status, out = run({ QueryLanguage = "JSONata", StartAt = "P", States = {
      P = { Type = "Parallel", Arguments = { x = "{% $states.input.x %}" }, End = true, Branches = {
        { StartAt = "B", States = { B = { Type = "Pass", End = true } } } } } } }, { x = 1, y = 2 })
    assert.are.equal("SUCCEEDED", status)
    assert.are.same({ { x = 1 } }, out)
  end)

  it("a JSONata state inside a JSONPath machine; JSONPath-only fields refused in it", function()
    local status, out = run({ StartAt = "A", States = {
      A = { Type = "Pass", Parameters = { ["v.$"] = "$.v" }, Next = "B" },
      B = { Type = "Pass", QueryLanguage = "JSONata", Output = "{% $states.input.v %}", End = true } } },
      { v = 4 })
    assert.are.equal("SUCCEEDED", status)
    assert.are.equal(4, out)
    local problems = asl.validate { StartAt = "B", States = {
      B = { Type = "Pass", QueryLanguage = "JSONata", Parameters = {}, End = true } } }
    assert.are.equal("/States/B/Parameters", problems[1].path)
    assert.truthy(problems[1].message:find("JSONPath-only", 1, true))
  end)

  it("an expression the language cannot compile is a located load-time problem", function()
    local problems = asl.validate { QueryLanguage = "JSONata", StartAt = "A", States = {
      A = { Type = "Pass", Output = { x = "{% 1 + %}" }, End = true } } }
    assert.are.equal(1, #problems)
    assert.are.equal("/States/A/Output", problems[1].path)
    assert.truthy(problems[1].message:find("invalid JSONata", 1, true))
  end)
end)

describe("emrflow.asl without a JSONata module", function()
  it("a JSONata machine loads, and running it fails with a clear error", function()
    if query.get("JSONata") then
      pending("emrflow.asl.query.jsonata is installed")
      return
    end
    local status, err = run({ QueryLanguage = "JSONata", StartAt = "A", States = {
      A = { Type = "Pass", Output = "{% 1 %}", End = true } } })
    assert.are.equal("FAILED", status)
    assert.truthy(err.Cause:find("JSONata is not supported yet", 1, true))
  end)
end)
