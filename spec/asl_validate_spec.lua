-- Static validation: every problem located by a JSON pointer; nothing AWS accepts is rejected.
local asl = require "emrflow.asl"
local json = require "emrflow.json"

local null = json.null

local function machine(states, extra)
  local def = { StartAt = "A", States = states }
  for k, v in pairs(extra or {}) do def[k] = v end
  return def
end

local function pass(extra)
  local s = { Type = "Pass", End = true }
  for k, v in pairs(extra or {}) do s[k] = v end
  return s
end

local function has_problem(problems, path, text)
  for _, p in ipairs(problems) do
    if p.path == path and (not text or p.message:find(text, 1, true)) then return true end
  end
  return false
end

local function dump(problems)
  local t = {}
  for _, p in ipairs(problems) do t[#t + 1] = p.path .. ": " .. p.message end
  return table.concat(t, "\n")
end

describe("emrflow.asl validation", function()
  local invalid = {
    { "unknown state type", machine { A = { Type = "Bogus" } }, "/States/A/Type", "unknown state type" },
    { "missing Type", machine { A = { End = true } }, "/States/A/Type", "is required" },
    { "missing Next and End", machine { A = { Type = "Pass" } }, "/States/A", "needs Next or End" },
    { "both Next and End", machine { A = pass { Next = "A" } }, "/States/A", "both Next and End" },
    { "dangling Next", machine { A = { Type = "Pass", Next = "Nowhere" } }, "/States/A/Next",
      "no state named" },
    { "StartAt missing from States", { StartAt = "X", States = { A = pass() } }, "/StartAt",
      "no state named" },
    { "unreachable state", machine { A = pass(), B = pass() }, "/States/B", "not reachable" },
    { "field not allowed in that state", machine { A = pass { Resource = "x" } }, "/States/A/Resource",
      "not allowed in a Pass state" },
    { "JSONata-only field in a JSONPath state", machine { A = pass { Output = 1 } }, "/States/A/Output",
      "JSONata-only" },
    { "unknown top-level field", machine({ A = pass() }, { Foo = 1 }), "/Foo", "not allowed" },
    { "bad JSONPath in InputPath", machine { A = pass { InputPath = "$.a[" } }, "/States/A/InputPath",
      "invalid JSONPath" },
    { "ResultPath must be a reference path", machine { A = pass { ResultPath = "$.a[*]" } },
      "/States/A/ResultPath", "reference path" },
    { "bad intrinsic in Parameters", machine { A = pass { Parameters = { ["x.$"] = "States.Nope(1)" } } },
      "/States/A/Parameters/x.$", "invalid intrinsic" },
    { "a .$ value that is not a path", machine { A = pass { Parameters = { ["x.$"] = "plain" } } },
      "/States/A/Parameters/x.$", "neither a JSONPath" },
    { "a .$ value that is not a string", machine { A = pass { Parameters = { ["x.$"] = 3 } } },
      "/States/A/Parameters/x.$", "must be a string" },
    { "bad variable name in Assign", machine { A = pass { Assign = { ["1x"] = 1 } } }, "/States/A/Assign/1x",
      "invalid variable name" },
    { "Choice without Choices", machine { A = { Type = "Choice" } }, "/States/A/Choices", "non-empty" },
    { "Choice rule with two operators", machine { A = { Type = "Choice", Choices = { { Variable = "$.a",
      StringEquals = "x", NumericEquals = 1, Next = "B" } } }, B = pass() }, "/States/A/Choices/0",
      "exactly one operator" },
    { "Choice rule operand of the wrong type", machine { A = { Type = "Choice",
      Choices = { { Variable = "$.a",
      NumericEquals = "1", Next = "B" } } }, B = pass() }, "/States/A/Choices/0/NumericEquals",
        "takes a number" },
    { "nested Choice rule with Next", machine { A = { Type = "Choice", Choices = { { Not = { Variable = "$.a",
      IsNull = true, Next = "B" }, Next = "B" } } }, B = pass() }, "/States/A/Choices/0/Not/Next",
      "not allowed" },
    { "Choice Default to nowhere", machine { A = { Type = "Choice", Choices = { { Variable = "$.a",
      IsNull = true, Next = "B" } }, Default = "Z" }, B = pass() }, "/States/A/Default", "no state named" },
    { "Wait with two timing fields", machine { A = pass { Type = "Wait", Seconds = 1, SecondsPath = "$.s" } },
      "/States/A", "exactly one of" },
    { "Wait with a bad Timestamp", machine { A = pass { Type = "Wait", Timestamp = "2016-03-14 01:59" } },
      "/States/A/Timestamp", "ISO-8601" },
    { "Fail with Error and ErrorPath", machine { A = { Type = "Fail", Error = "E", ErrorPath = "$.e" } },
      "/States/A/ErrorPath", "cannot both be set" },
    { "Task without Resource", machine { A = { Type = "Task", End = true } }, "/States/A/Resource",
      "is required" },
    { "a Task resource that is not an ARN", machine { A = { Type = "Task", Resource = "no-such-thing",
      End = true } },
      "/States/A/Resource", "not a resource ARN" },
    { "HeartbeatSeconds not below TimeoutSeconds", machine { A = { Type = "Task", Resource = function() end,
      TimeoutSeconds = 5, HeartbeatSeconds = 5, End = true } }, "/States/A/HeartbeatSeconds", "smaller" },
    { "Retry with States.ALL not alone", machine { A = { Type = "Task", Resource = function() end, End = true,
      Retry = { { ErrorEquals = { "States.ALL", "X" } } } } }, "/States/A/Retry/0/ErrorEquals/0", "alone" },
    { "Retry with States.ALL not last", machine { A = { Type = "Task", Resource = function() end, End = true,
      Retry = { { ErrorEquals = { "States.ALL" } }, { ErrorEquals = { "X" } } } } },
      "/States/A/Retry/0/ErrorEquals", "last" },
    { "Retry BackoffRate below 1", machine { A = { Type = "Task", Resource = function() end, End = true,
      Retry = { { ErrorEquals = { "X" }, BackoffRate = 0.5 } } } }, "/States/A/Retry/0/BackoffRate", "1.0" },
    { "Retry with a bad JitterStrategy", machine { A = { Type = "Task", Resource = function() end, End = true,
      Retry = { { ErrorEquals = { "X" }, JitterStrategy = "HALF" } } } }, "/States/A/Retry/0/JitterStrategy",
      "FULL" },
    { "Catch Next to nowhere", machine { A = { Type = "Task", Resource = function() end, End = true,
      Catch = { { ErrorEquals = { "X" }, Next = "Z" } } } }, "/States/A/Catch/0/Next", "no state named" },
    { "Parallel with no branches", machine { A = pass { Type = "Parallel", Branches = {} } },
      "/States/A/Branches", "non-empty" },
    { "a branch's Next may not leave the branch", machine { A = pass { Type = "Parallel", Branches = {
      { StartAt = "B", States = { B = { Type = "Pass", Next = "A" } } } } } },
      "/States/A/Branches/0/States/B/Next", "no state named" },
    { "duplicate state names across branches", machine { A = pass { Type = "Parallel", Branches = {
      { StartAt = "A", States = { A = pass() } } } } }, "/States/A/Branches/0/States/A", "already used" },
    { "Map without ItemProcessor", machine { A = pass { Type = "Map" } }, "/States/A/ItemProcessor",
      "is required" },
    { "Map with a bad ProcessorConfig Mode", machine { A = pass { Type = "Map", ItemProcessor = {
      ProcessorConfig = { Mode = "FAST" }, StartAt = "P", States = { P = pass() } } } },
      "/States/A/ItemProcessor/ProcessorConfig/Mode", "INLINE" },
    { "ToleratedFailurePercentage over 100", machine { A = pass { Type = "Map",
      ToleratedFailurePercentage = 101,
      ItemProcessor = { StartAt = "P", States = { P = pass() } } } }, "/States/A/ToleratedFailurePercentage",
      "between 0 and 100" },
    { "negative MaxConcurrency", machine { A = pass { Type = "Map", MaxConcurrency = -1,
      ItemProcessor = { StartAt = "P", States = { P = pass() } } } }, "/States/A/MaxConcurrency",
      "non-negative" },
    { "state names escape in pointers", { StartAt = "a/b~c", States = { ["a/b~c"] = { Type = "Pass" } } },
      "/States/a~1b~0c", "needs Next or End" },
  }
  for _, c in ipairs(invalid) do
    it("reports " .. c[1] .. " at " .. c[3], function()
      local problems = asl.validate(c[2])
      assert.is_true(has_problem(problems, c[3], c[4]), "problems were:\n" .. dump(problems))
      local ok, err = pcall(asl.load, c[2])
      assert.is_false(ok)
      assert.truthy(tostring(err):find(c[3] .. ": ", 1, true))
    end)
  end

  it("reports every problem at once", function()
    local problems = asl.validate(machine { A = { Type = "Pass", Next = "Z" }, B = { Type = "Nope" } })
    assert.is_true(has_problem(problems, "/States/A/Next"))
    assert.is_true(has_problem(problems, "/States/B/Type"))
  end)

  local valid = {
    { "a minimal machine", machine { A = pass() } },
    { "null InputPath, OutputPath and ResultPath", machine { A = pass { InputPath = null, OutputPath = null,
      ResultPath = null } } },
    { "Comment keys inside Parameters", machine { A = pass { Parameters = { Comment = "data",
      ["a.$"] = "$" } } } },
    { "context and variable paths", machine { A = pass { Parameters = { ["a.$"] = "$$.Execution.Id",
      ["b.$"] = "$v.x" }, Assign = { v = 1 } } } },
    { "Choice rules on $$ and variables", machine { A = { Type = "Choice",
      Choices = { { Variable = "$$.State.Name",
      StringEquals = "A", Next = "B" } } }, B = pass() } },
    { "a JSONata machine", { QueryLanguage = "JSONata", StartAt = "A", States = { A = pass {
      Output = "{% $states.input %}" } } } },
    { "a fractional ToleratedFailurePercentage", machine { A = pass { Type = "Map",
      ToleratedFailurePercentage = 0.5,
      ItemProcessor = { StartAt = "P", States = { P = pass() } } } } },
    { "a legacy Iterator with Parameters", machine { A = pass { Type = "Map",
      Parameters = { ["i.$"] = "$$.Map.Item.Value" },
      Iterator = { StartAt = "P", States = { P = pass() } } } } },
  }
  for _, c in ipairs(valid) do
    it("accepts " .. c[1], function()
      local problems = asl.validate(c[2])
      assert.are.same({}, problems, dump(problems))
    end)
  end

  it("accepts every definition of the conformance corpus (no false rejections)", function()
    local shared = os.getenv("EMRFLOW_SHARED") or "../shared"
    local dir = shared .. "/conformance/asl"
    local readme = io.open(dir .. "/README.md")
    if not readme then
      pending("conformance corpus not found at " .. dir)
      return
    end
    readme:close()
    local p = io.popen("ls " .. dir .. "/*/*.json")
    local n, rejected = 0, {}
    for file in p:lines() do
      local f = assert(io.open(file))
      local data = json.decode(f:read("a"))
      f:close()
      n = n + 1
      local problems = asl.validate(data.definition)
      if #problems > 0 then rejected[#rejected + 1] = file .. "\n" .. dump(problems) end
    end
    p:close()
    assert.are.equal(865, n)
    assert.are.same({}, rejected)
  end)
end)
