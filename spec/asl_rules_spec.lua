-- AWS's definition rules where emrflow used to differ (issue #9, item 3), and robustness of
-- loading: every bad input is a located problem, never a Lua error text.
local asl = require "emrflow.asl"

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

describe("emrflow.asl definition rules", function()
  it("a machine with no terminal state is invalid (MISSING_END_STATE)", function()
    local problems = asl.validate { StartAt = "A", States = {
      A = { Type = "Pass", Next = "B" }, B = { Type = "Pass", Next = "A" } } }
    assert.is_true(has_problem(problems, "/States", "MISSING_END_STATE"), dump(problems))
  end)

  it("a branch with no terminal state is invalid too", function()
    local problems = asl.validate { StartAt = "P", States = { P = { Type = "Parallel", End = true,
      Branches = { { StartAt = "X", States = { X = { Type = "Wait", Seconds = 1, Next = "X" } } } } } } }
    assert.is_true(has_problem(problems, "/States/P/Branches/0/States", "MISSING_END_STATE"), dump(problems))
  end)

  it("a loop with a Choice way out to Succeed is fine", function()
    assert.are.same({}, asl.validate { StartAt = "A", States = {
      A = { Type = "Choice", Choices = { { Variable = "$.done", BooleanEquals = true, Next = "S" } },
        Default = "A" },
      S = { Type = "Succeed" } } })
  end)

  it("a Comment that is not a string is invalid, wherever it is", function()
    local problems = asl.validate { Comment = 1, StartAt = "A", States = {
      A = { Type = "Task", Resource = "arn:aws:states:::sns:publish", Comment = { x = 1 }, End = true,
        Retry = { { ErrorEquals = { "X" }, Comment = true } },
        Catch = { { ErrorEquals = { "X" }, Next = "B", Comment = 2 } } },
      B = { Type = "Succeed" } } }
    for _, p in ipairs { "/Comment", "/States/A/Comment", "/States/A/Retry/0/Comment",
      "/States/A/Catch/0/Comment" } do
      assert.is_true(has_problem(problems, p, "must be a string"), p .. " in\n" .. dump(problems))
    end
  end)

  it("reports duplicate keys in a definition's JSON (two states with one name)", function()
    local text = [[{"StartAt": "A", "States": {
      "A": {"Type": "Pass", "End": true},
      "A": {"Type": "Pass", "End": true, "Parameters": {"k": 1, "k": 2}}}}]]
    local problems = asl.validate(text)
    assert.is_true(has_problem(problems, "/States/A", "duplicate key"), dump(problems))
    assert.is_true(has_problem(problems, "/States/A/Parameters/k", "duplicate key"), dump(problems))
    local ok, err = pcall(asl.load, text)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("/States/A: duplicate key", 1, true), tostring(err))
  end)

  it("keys that only look alike (escapes, other objects) are not duplicates", function()
    assert.are.same({}, asl.validate [[{"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true,
      "Parameters": {"k": {"k": 1}, "k\"x": 2, "l": [{"k": 1}, {"k": 2}]}}}}]])
  end)

  it("no cascading 'not reachable' after a mistyped Type", function()
    local problems = asl.validate { StartAt = "A", States = {
      A = { Type = "Pas", Next = "B" }, B = { Type = "Pass", End = true } } }
    assert.is_true(has_problem(problems, "/States/A/Type", "unknown state type"), dump(problems))
    assert.are.equal(1, #problems, dump(problems))
  end)

  it("a 100,000-deep Lua-table definition is a located problem, not a Lua error", function()
    local deep = {}
    local cur = deep
    for _ = 1, 100000 do
      cur.x = {}
      cur = cur.x
    end
    local def = { StartAt = "A", States = { A = { Type = "Pass", End = true, Parameters = deep } } }
    local problems = asl.validate(def)
    assert.are.equal(1, #problems)
    assert.truthy(problems[1].path:find("^/States/A/Parameters/x/x"), problems[1].path:sub(1, 80))
    assert.truthy(problems[1].message:find("deeper than", 1, true), problems[1].message)
    local ok, err = pcall(asl.load, def)
    assert.is_false(ok)
    assert.is_nil(tostring(err):find("%.lua:%d+"), tostring(err):sub(1, 200))
  end)
end)

describe("emrflow.asl errors users see", function()
  it("a Lua handler raising a string fails the Task without the Lua file and line", function()
    local m = asl.load { StartAt = "T", States = { T = { Type = "Task", End = true,
      Resource = function() error("disk full") end } } }
    local status, err = m:run({}, { clock = "virtual" })
    assert.are.equal("FAILED", status)
    assert.are.equal("States.TaskFailed", err.Error)
    assert.are.equal("disk full", err.Cause)
  end)
end)

describe("emrflow.asl: odd definitions are located problems (fuzzing finds)", function()
  local json = require "emrflow.json"

  it("a Type that is not a string is named by its JSON type, never a Lua address", function()
    local problems = asl.validate [[{"StartAt":"A","States":{"A":{"Type":[]}}}]]
    assert.is_true(has_problem(problems, "/States/A/Type", "of JSON type array"), dump(problems))
    assert.is_nil(dump(problems):find("0x", 1, true))
  end)

  it("a Lua table with a key JSON cannot have is a located problem", function()
    for _, result in ipairs { { [1.5] = "x" }, json.array { 1, x = 2 }, { 1, 2, x = 3 } } do
      local problems = asl.validate { StartAt = "A",
        States = { A = { Type = "Pass", Result = result, End = true } } }
      assert.is_true(has_problem(problems, "/States/A/Result", "not a string"), dump(problems))
      assert.is_nil(dump(problems):find("%.lua:%d"))
    end
  end)

  it("a timestamp operand that is no date-time is a load-time problem, not a run-time crash", function()
    for _, ts in ipairs { "2024-01-02T24:00:00Z", "2024-02-30T00:00:00Z", "yesterday" } do
      local problems = asl.validate { StartAt = "C", States = {
        C = { Type = "Choice", Default = "B",
              Choices = { { Variable = "$.t", TimestampEquals = ts, Next = "B" } } },
        B = { Type = "Succeed" } } }
      assert.is_true(has_problem(problems, "/States/C/Choices/0/TimestampEquals", "ISO-8601"), dump(problems))
    end
  end)

  it("a state mocked only from its second invocation on counts as resolved", function()
    local m = asl.load({ StartAt = "T", States = {
      T = { Type = "Task", Resource = "arn:aws:states:::sns:publish", End = true } } }, { name = "m" })
    local mocks = { config = { StateMachines = { m = { TestCases = { later = { T = "R" } } } },
                               MockedResponses = { R = { ["1"] = { Return = {} } } } },
                    test_case = "later" }
    assert.are.same({}, m:unresolved { mocks = mocks })
    assert.are.equal(1, #m:unresolved {})
  end)

  it("a ResultPath writes false like any other value", function()
    local m = asl.load [[{"StartAt":"B","States":{"B":{"Type":"Pass","Result":false,"ResultPath":"$.s",
      "Next":"C"},"C":{"Type":"Pass","Result":false,"ResultPath":"$.a[0]","End":true}}}]]
    local status, out = m:run({ a = { true } }, { clock = "virtual" })
    assert.are.equal("SUCCEEDED", status)
    assert.are.equal(false, out.s)
    assert.are.equal(false, out.a[1])
  end)
end)
