-- Acceptance tests of emrflow.asl, written black-box from the documents:
--   DESIGN.md ("Public Lua API", "EMR on EKS integration: decided behaviour", "Concurrency model")
--   reference/asl-semantics.md (cited below as "ref §N")
-- Every expected value comes from those documents (or from the AWS recordings they cite),
-- never from what the implementation happens to print. Time-based behaviour runs on the
-- virtual clock and is checked through history timestamps or $$ values.
local asl = require "emrflow.asl"
local json = require "emrflow.json"
local scheduler = require "emrflow.scheduler"

local null = json.null
local T0 = 1700000000 -- 2023-11-14T22:13:20Z, the virtual clock's start in these tests

---------------------------------------------------------------------------
-- helpers
---------------------------------------------------------------------------

local function start(def, input, opts)
  opts = opts or {}
  local load_opts = opts.load
  opts.load = nil
  opts.clock = opts.clock or "virtual"
  if opts.start_time == nil then opts.start_time = T0 end
  local m = asl.load(def, load_opts)
  return m:start(input, opts), m
end

local function run(def, input, opts)
  local x = start(def, input, opts)
  local status, res = x:wait()
  return status, res, x
end

local function events_of(x, etype)
  local out = {}
  for _, e in ipairs(x:history()) do
    if e.type == etype then out[#out + 1] = e end
  end
  return out
end

local function types_of(x)
  local out = {}
  for _, e in ipairs(x:history()) do out[#out + 1] = e.type end
  return out
end

local function has_problem(problems, path)
  for _, p in ipairs(problems) do
    if p.path == path then return true end
  end
  return false
end

local function dump(problems)
  local t = {}
  for _, p in ipairs(problems) do t[#t + 1] = tostring(p.path) .. ": " .. tostring(p.message) end
  return table.concat(t, "\n")
end

-- End = true unless the extra fields give a Next
local function pass(extra)
  local s = { Type = "Pass", End = true }
  for k, v in pairs(extra or {}) do s[k] = v end
  if s.Next ~= nil then s.End = nil end
  return s
end

local function one(state, extra)
  local def = { StartAt = "A", States = { A = state } }
  for k, v in pairs(extra or {}) do def[k] = v end
  return def
end

local function task(fn, extra)
  local s = { Type = "Task", Resource = fn, End = true }
  for k, v in pairs(extra or {}) do s[k] = v end
  if s.Next ~= nil then s.End = nil end
  return s
end

local function ok_fn() return "ok" end

-- a Lua task that fails with these errors in turn, then returns "done"
local function failing(seq, calls)
  return function()
    calls.n = (calls.n or 0) + 1
    local e = seq[calls.n]
    if e then error({ Error = e, Cause = "attempt " .. calls.n }, 0) end
    return "done"
  end
end

-- Runs fn: a behaviour once reported as a bug (the description says what was wrong) and
-- since fixed; it must keep holding, so a failure fails the test.
local function known_bug(description, fn)
  assert(type(description) == "string")
  fn()
end

local ISO_MS = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"

describe("acceptance: emrflow.asl", function()

  -------------------------------------------------------------------------
  -- Validation (ref §1, §2, §4, §9; the issue: "reports every problem with its JSON pointer")
  -------------------------------------------------------------------------
  describe("validation", function()
    local M = function(states, extra)
      local def = { StartAt = "A", States = states }
      for k, v in pairs(extra or {}) do def[k] = v end
      return def
    end
    local choice_to_b = function(rule)
      return M { A = { Type = "Choice", Choices = { rule }, Default = "B" }, B = { Type = "Succeed" } }
    end
    local wf = function(f) return f end -- a Lua function resource, always registered

    -- { title, definition, JSON pointer that must be reported }
    local invalid = {
      -- top level (ref §1)
      { "StartAt missing", { States = { A = pass() } }, "/StartAt" },
      { "States missing", { StartAt = "A" }, "/States" },
      { "StartAt names no state", { StartAt = "Z", States = { A = pass() } }, "/StartAt" },
      { "Version other than 1.0", M({ A = pass() }, { Version = "2.0" }), "/Version" },
      { "TimeoutSeconds not a positive integer", M({ A = pass() }, { TimeoutSeconds = "10" }),
        "/TimeoutSeconds" },
      { "unknown top-level field", M({ A = pass() }, { Bogus = true }), "/Bogus" },
      { "top-level QueryLanguage not JSONPath/JSONata", M({ A = pass() }, { QueryLanguage = "XPath" }),
        "/QueryLanguage" },
      -- states (ref §1, §2)
      { "unknown state type", M { A = { Type = "Lambda", End = true } }, "/States/A/Type" },
      { "Type missing", M { A = { End = true } }, "/States/A/Type" },
      { "neither Next nor End", M { A = { Type = "Pass" } }, "/States/A" },
      { "Next to a state that does not exist", M { A = { Type = "Pass", Next = "Nowhere" } },
        "/States/A/Next" },
      { "unreachable state", M { A = pass(), B = pass() }, "/States/B" },
      { "state name longer than 80 characters",
        { StartAt = string.rep("n", 81), States = { [string.rep("n", 81)] = pass() } },
        "/States/" .. string.rep("n", 81) },
      { "duplicate state name across a Parallel branch (names are machine-wide)",
        M { A = { Type = "Parallel", End = true, Branches = { { StartAt = "A",
          States = { A = pass() } } } } },
        "/States/A/Branches/0/States/A" },
      { "Next in a Fail state", M { A = { Type = "Fail", Next = "A" } }, "/States/A/Next" },
      { "End in a Succeed state", M { A = { Type = "Succeed", End = true } }, "/States/A/End" },
      { "Next in a Choice state", M { A = { Type = "Choice", Next = "B", Choices = {
        { Variable = "$.a", IsPresent = true, Next = "B" } } }, B = { Type = "Succeed" } },
          "/States/A/Next" },
      -- fields allowed per state type (ref §2 table)
      { "Resource in a Pass state", M { A = pass { Resource = "arn:aws:states:::x" } },
        "/States/A/Resource" },
      { "Result in a Task state", M { A = task(ok_fn, { Result = 1 }) }, "/States/A/Result" },
      { "ResultSelector in a Pass state", M { A = pass { ResultSelector = { a = 1 } } },
        "/States/A/ResultSelector" },
      { "Parameters in a Wait state", M { A = { Type = "Wait", Seconds = 1, End = true, Parameters = {} } },
        "/States/A/Parameters" },
      { "Retry in a Pass state", M { A = pass { Retry = { { ErrorEquals = { "States.ALL" } } } } },
        "/States/A/Retry" },
      { "Catch in a Choice state", M { A = { Type = "Choice", Default = "B", Catch = {},
        Choices = { { Variable = "$.a", IsPresent = true, Next = "B" } } }, B = { Type = "Succeed" } },
        "/States/A/Catch" },
      { "InputPath in a Fail state", M { A = { Type = "Fail", InputPath = "$.a" } }, "/States/A/InputPath" },
      { "Assign in a Succeed state", M { A = { Type = "Succeed", Assign = { x = 1 } } }, "/States/A/Assign" },
      { "Assign in a Fail state", M { A = { Type = "Fail", Assign = { x = 1 } } }, "/States/A/Assign" },
      { "Arguments (JSONata-only) in a JSONPath Task", M { A = task(ok_fn, { Arguments = { a = 1 } }) },
        "/States/A/Arguments" },
      { "Output (JSONata-only) in a JSONPath Pass", M { A = pass { Output = 1 } }, "/States/A/Output" },
      { "InputPath (JSONPath-only) in a JSONata state", M({ A = pass { InputPath = "$.a" } },
        { QueryLanguage = "JSONata" }), "/States/A/InputPath" },
      { "a JSONata machine cannot mark a state JSONPath (ref §1)",
        M({ A = pass { QueryLanguage = "JSONPath" } }, { QueryLanguage = "JSONata" }),
          "/States/A/QueryLanguage" },
      -- paths and templates (ref §4)
      { "bad JSONPath in InputPath", M { A = pass { InputPath = "$.a[" } }, "/States/A/InputPath" },
      { "bad JSONPath in OutputPath", M { A = pass { OutputPath = "$.a b" } }, "/States/A/OutputPath" },
      { "ResultPath with a wildcard (must be a reference path)", M { A = pass { ResultPath = "$.a[*]" } },
        "/States/A/ResultPath" },
      { "ResultPath into the context object", M { A = pass { ResultPath = "$$.Execution" } },
        "/States/A/ResultPath" },
      { "a .$ value that is not a string", M { A = pass { Parameters = { ["x.$"] = 5 } } },
        "/States/A/Parameters/x.$" },
      { "a .$ value that is neither a path nor an intrinsic",
        M { A = pass { Parameters = { ["x.$"] = "x" } } },
        "/States/A/Parameters/x.$" },
      { "nested .$ with a bad path", M { A = pass { Parameters = { o = { ["y.$"] = "$.[" } } } },
        "/States/A/Parameters/o/y.$" },
      { ".$ inside an array of a template", M { A = pass { Parameters = { l = { { ["y.$"] = 1 } } } } },
        "/States/A/Parameters/l/0/y.$" },
      { "unknown intrinsic", M { A = pass { Parameters = { ["x.$"] = "States.Nope(1)" } } },
        "/States/A/Parameters/x.$" },
      { "intrinsic with the wrong number of arguments", M { A = pass { Parameters = {
        ["x.$"] = "States.ArrayRange(1, 2)" } } }, "/States/A/Parameters/x.$" },
      { "intrinsics nested more than 10 deep (ref §7)", M { A = pass { Parameters = {
        ["x.$"] = string.rep("States.Array(", 11) .. string.rep(")", 11) } } }, "/States/A/Parameters/x.$" },
      { "bad path in ResultSelector", M { A = task(ok_fn, { ResultSelector = { ["x.$"] = "$.[" } }) },
        "/States/A/ResultSelector/x.$" },
      { "bad path in Credentials", M { A = task(ok_fn, { Credentials = { ["RoleArn.$"] = "$.[" } }) },
        "/States/A/Credentials/RoleArn.$" },
      { "bad variable name in Assign (ref §10)", M { A = pass { Assign = { ["9lives"] = 1 } } },
        "/States/A/Assign/9lives" },
      { "$states is reserved (ref §10)", M { A = pass { Assign = { states = 1 } } },
        "/States/A/Assign/states" },
      -- Task (ref §2)
      { "Task without Resource", M { A = { Type = "Task", End = true } }, "/States/A/Resource" },
      { "a resource that is not an ARN fails at load time",
        M { A = { Type = "Task", Resource = "nosuch-service", End = true } },
          "/States/A/Resource" },
      { "TimeoutSeconds 0", M { A = task(ok_fn, { TimeoutSeconds = 0 }) }, "/States/A/TimeoutSeconds" },
      { "TimeoutSeconds and TimeoutSecondsPath together",
        M { A = task(ok_fn, { TimeoutSeconds = 5, TimeoutSecondsPath = "$.t" }) },
          "/States/A/TimeoutSecondsPath" },
      { "HeartbeatSeconds not less than TimeoutSeconds (ref §2)",
        M { A = task(ok_fn, { TimeoutSeconds = 5, HeartbeatSeconds = 5 }) }, "/States/A/HeartbeatSeconds" },
      { "bad TimeoutSecondsPath", M { A = task(ok_fn, { TimeoutSecondsPath = "$.[" }) },
        "/States/A/TimeoutSecondsPath" },
      -- Retry / Catch (ref §8, §9)
      { "States.ALL not alone in ErrorEquals", M { A = task(ok_fn, { Retry = {
        { ErrorEquals = { "X", "States.ALL" } } } }) }, "/States/A/Retry/0/ErrorEquals/1" },
      { "States.ALL retrier not last", M { A = task(ok_fn, { Retry = {
        { ErrorEquals = { "States.ALL" } }, { ErrorEquals = { "X" } } } }) },
          "/States/A/Retry/0/ErrorEquals" },
      { "States.ALL catcher not last", M { A = task(ok_fn, { Catch = {
        { ErrorEquals = { "States.ALL" }, Next = "B" }, { ErrorEquals = { "X" }, Next = "B" } } }),
        B = { Type = "Succeed" } }, "/States/A/Catch/0/ErrorEquals" },
      { "empty ErrorEquals", M { A = task(ok_fn, { Retry = { { ErrorEquals = {} } } }) },
        "/States/A/Retry/0/ErrorEquals" },
      { "IntervalSeconds 0", M { A = task(ok_fn, { Retry = { { ErrorEquals = { "X" },
        IntervalSeconds = 0 } } }) },
        "/States/A/Retry/0/IntervalSeconds" },
      { "MaxAttempts negative", M { A = task(ok_fn, { Retry = { { ErrorEquals = { "X" },
        MaxAttempts = -1 } } }) },
        "/States/A/Retry/0/MaxAttempts" },
      { "BackoffRate below 1.0", M { A = task(ok_fn, { Retry = { { ErrorEquals = { "X" },
        BackoffRate = 0.5 } } }) },
        "/States/A/Retry/0/BackoffRate" },
      { "MaxDelaySeconds 0", M { A = task(ok_fn, { Retry = { { ErrorEquals = { "X" },
        MaxDelaySeconds = 0 } } }) },
        "/States/A/Retry/0/MaxDelaySeconds" },
      { "unknown JitterStrategy", M { A = task(ok_fn, { Retry = {
        { ErrorEquals = { "X" }, JitterStrategy = "HALF" } } }) }, "/States/A/Retry/0/JitterStrategy" },
      { "unknown field in a retrier", M { A = task(ok_fn, { Retry = { { ErrorEquals = { "X" },
        Tries = 3 } } }) },
        "/States/A/Retry/0/Tries" },
      { "catcher without Next", M { A = task(ok_fn, { Catch = { { ErrorEquals = { "X" } } } }) },
        "/States/A/Catch/0/Next" },
      { "catcher Next to a missing state", M { A = task(ok_fn, { Catch = { { ErrorEquals = { "X" },
        Next = "Z" } } }) },
        "/States/A/Catch/0/Next" },
      { "catcher ResultPath not a reference path", M { A = task(ok_fn, { Catch = {
        { ErrorEquals = { "X" }, Next = "B", ResultPath = "$..e" } } }), B = { Type = "Succeed" } },
        "/States/A/Catch/0/ResultPath" },
      -- Choice (ref §2 Choice)
      { "Choice without Choices", M { A = { Type = "Choice", Default = "B" }, B = { Type = "Succeed" } },
        "/States/A/Choices" },
      { "Choice with empty Choices", M { A = { Type = "Choice", Choices = json.array {}, Default = "B" },
        B = { Type = "Succeed" } }, "/States/A/Choices" },
      { "top-level rule without Next", M { A = { Type = "Choice", Choices = { { Variable = "$.a",
        IsNull = true } },
        Default = "B" }, B = { Type = "Succeed" } }, "/States/A/Choices/0/Next" },
      { "rule Next to a missing state", M { A = { Type = "Choice", Choices = {
        { Variable = "$.a", IsNull = true, Next = "Z" } }, Default = "B" }, B = { Type = "Succeed" } },
        "/States/A/Choices/0/Next" },
      { "Default to a missing state", M { A = { Type = "Choice", Choices = {
        { Variable = "$.a", IsNull = true, Next = "B" } }, Default = "Z" }, B = { Type = "Succeed" } },
        "/States/A/Default" },
      { "StringEquals with a number", choice_to_b { Variable = "$.a", StringEquals = 1, Next = "B" },
        "/States/A/Choices/0/StringEquals" },
      { "NumericEquals with a string", choice_to_b { Variable = "$.a", NumericEquals = "1", Next = "B" },
        "/States/A/Choices/0/NumericEquals" },
      { "IsNull with a string", choice_to_b { Variable = "$.a", IsNull = "true", Next = "B" },
        "/States/A/Choices/0/IsNull" },
      { "a ...Path operator with a bad path", choice_to_b { Variable = "$.a", StringEqualsPath = "$.[",
        Next = "B" },
        "/States/A/Choices/0/StringEqualsPath" },
      { "a comparison without Variable", choice_to_b { StringEquals = "x", Next = "B" },
        "/States/A/Choices/0/Variable" },
      { "a bad Variable path", choice_to_b { Variable = "$.[", StringEquals = "x", Next = "B" },
        "/States/A/Choices/0/Variable" },
      { "two operators in one rule", choice_to_b { Variable = "$.a", StringEquals = "x", IsNull = true,
        Next = "B" },
        "/States/A/Choices/0" },
      { "no operator in a rule", choice_to_b { Variable = "$.a", Next = "B" }, "/States/A/Choices/0" },
      { "empty And", choice_to_b { And = json.array {}, Next = "B" }, "/States/A/Choices/0/And" },
      { "Next inside a nested rule", choice_to_b { Or = { { Variable = "$.a", IsNull = true, Next = "B" } },
        Next = "B" }, "/States/A/Choices/0/Or/0/Next" },
      { "bad rule inside Not", choice_to_b { Not = { Variable = "$.a", NumericEquals = "x" }, Next = "B" },
        "/States/A/Choices/0/Not/NumericEquals" },
      -- Wait (ref §2 Wait)
      { "Wait with two of Seconds/SecondsPath", M { A = { Type = "Wait", Seconds = 1, SecondsPath = "$.s",
        End = true } }, "/States/A" },
      { "Wait with none of the four", M { A = { Type = "Wait", End = true } }, "/States/A" },
      { "Wait Seconds negative", M { A = { Type = "Wait", Seconds = -1, End = true } }, "/States/A/Seconds" },
      { "Wait Seconds as a string", M { A = { Type = "Wait", Seconds = "10", End = true } },
        "/States/A/Seconds" },
      { "Wait Timestamp not ISO-8601 with offset", M { A = { Type = "Wait",
        Timestamp = "2016-13-05T21:29:29Z",
        End = true } }, "/States/A/Timestamp" },
      { "Wait bad TimestampPath", M { A = { Type = "Wait", TimestampPath = "$.[", End = true } },
        "/States/A/TimestampPath" },
      -- Fail (ref §2 Fail)
      { "Fail with Error and ErrorPath", M { A = { Type = "Fail", Error = "E", ErrorPath = "$.e" } },
        "/States/A/ErrorPath" },
      { "Fail with a bad CausePath", M { A = { Type = "Fail", CausePath = "$.[" } }, "/States/A/CausePath" },
      { "Fail Error not a string", M { A = { Type = "Fail", Error = 5 } }, "/States/A/Error" },
      -- Parallel
      { "Parallel without Branches", M { A = { Type = "Parallel", End = true } }, "/States/A/Branches" },
      { "Parallel with empty Branches", M { A = { Type = "Parallel", End = true, Branches = json.array {} } },
        "/States/A/Branches" },
      { "branch state jumping out of its branch", M { A = { Type = "Parallel", Next = "B", Branches = {
        { StartAt = "X", States = { X = { Type = "Pass", Next = "B" } } } } }, B = { Type = "Succeed" } },
        "/States/A/Branches/0/States/X/Next" },
      { "branch without StartAt", M { A = { Type = "Parallel", End = true, Branches = {
        { States = { X = pass() } } } } }, "/States/A/Branches/0/StartAt" },
      { "bad state inside a branch", M { A = { Type = "Parallel", End = true, Branches = {
        { StartAt = "X", States = { X = { Type = "Pass" } } } } } }, "/States/A/Branches/0/States/X" },
      -- Map (ref §3)
      { "Map without ItemProcessor", M { A = { Type = "Map", End = true } }, "/States/A/ItemProcessor" },
      { "Map with ItemProcessor and Iterator", M { A = { Type = "Map", End = true,
        ItemProcessor = { StartAt = "X", States = { X = pass() } },
        Iterator = { StartAt = "Y", States = { Y = pass() } } } }, "/States/A/Iterator" },
      { "Map with ItemSelector and Parameters", M { A = { Type = "Map", End = true, ItemSelector = {},
        Parameters = {}, ItemProcessor = { StartAt = "X", States = { X = pass() } } } },
          "/States/A/Parameters" },
      { "unknown ProcessorConfig Mode", M { A = { Type = "Map", End = true, ItemProcessor = {
        ProcessorConfig = { Mode = "PARALLEL" }, StartAt = "X", States = { X = pass() } } } },
        "/States/A/ItemProcessor/ProcessorConfig/Mode" },
      { "bad ItemsPath", M { A = { Type = "Map", End = true, ItemsPath = "$.[",
        ItemProcessor = { StartAt = "X", States = { X = pass() } } } }, "/States/A/ItemsPath" },
      { "MaxConcurrency negative", M { A = { Type = "Map", End = true, MaxConcurrency = -1,
        ItemProcessor = { StartAt = "X", States = { X = pass() } } } }, "/States/A/MaxConcurrency" },
      { "ToleratedFailurePercentage over 100", M { A = { Type = "Map", End = true,
        ToleratedFailurePercentage = 100.1,
        ItemProcessor = { StartAt = "X", States = { X = pass() } } } },
          "/States/A/ToleratedFailurePercentage" },
      { "ToleratedFailureCount negative", M { A = { Type = "Map", End = true, ToleratedFailureCount = -1,
        ItemProcessor = { StartAt = "X", States = { X = pass() } } } }, "/States/A/ToleratedFailureCount" },
      { "unreachable state inside an ItemProcessor", M { A = { Type = "Map", End = true,
        ItemProcessor = { StartAt = "X", States = { X = pass(), Y = pass() } } } },
        "/States/A/ItemProcessor/States/Y" },
      { "a wf helper is only a function", M { A = task(wf(ok_fn), { Bogus = 1 }) }, "/States/A/Bogus" },
      -- variable scopes (ref §10: names in a branch/iteration must not collide with outer ones)
      { "a Parallel branch assigning a variable of the outer scope", M {
        A = pass { Assign = { x = 1 }, Next = "P" },
        P = { Type = "Parallel", End = true, Branches = { { StartAt = "B", States = {
          B = pass { Assign = { ["x.$"] = "$" } } } } } } }, "/States/P/Branches/0/States/B/Assign/x.$" },
      { "an inline Map iteration assigning a variable of the outer scope", M {
        A = { Type = "Map", End = true, Assign = { total = 0 }, ItemProcessor = { StartAt = "I", States = {
          I = pass { Assign = { total = 1 } } } } } }, "/States/A/ItemProcessor/States/I/Assign/total" },
    }
    for _, c in ipairs(invalid) do
      it("reports " .. c[1] .. " at " .. c[3], function()
        local problems = asl.validate(c[2])
        assert.is_true(has_problem(problems, c[3]),
          "expected a problem at " .. c[3] .. ", got:\n" .. dump(problems))
        for _, p in ipairs(problems) do
          assert.are.equal("string", type(p.path))
          assert.is_true(type(p.message) == "string" and #p.message > 0)
        end
        local ok, err = pcall(asl.load, c[2])
        assert.is_false(ok)
        assert.truthy(tostring(err):find(c[3], 1, true),
          "asl.load's message names " .. c[3] .. ":\n" .. tostring(err))
      end)
    end

    it("reports both StartAt and States when a definition has neither", function()
      local problems = asl.validate(json.object {})
      assert.is_true(has_problem(problems, "/StartAt"), dump(problems))
      assert.is_true(has_problem(problems, "/States"), dump(problems))
    end)

    it("uses RFC 6901 escapes (~0, ~1) for state names holding '~' or '/'", function()
      local problems = asl.validate { StartAt = "a/b", States = { ["a/b"] = { Type = "Pass",
        Next = "x~y" } } }
      assert.is_true(has_problem(problems, "/States/a~1b/Next"), dump(problems))
    end)

    it("reports every problem at once, each at its own pointer", function()
      local def = { StartAt = "A", Bogus = 1, States = {
        A = { Type = "Pass", Next = "Nope" },
        B = { Type = "Bogus" },
        C = { Type = "Wait", End = true },
        D = { Type = "Task", Resource = "nosuch:thing", End = true },
        E = { Type = "Pass", InputPath = "$.[", End = true },
      } }
      local problems = asl.validate(def)
      for _, p in ipairs { "/Bogus", "/States/A/Next", "/States/B/Type", "/States/C", "/States/D/Resource",
        "/States/E/InputPath" } do
        assert.is_true(has_problem(problems, p), "missing " .. p .. " in:\n" .. dump(problems))
      end
      local ok, err = pcall(asl.load, def)
      assert.is_false(ok)
      for _, p in ipairs { "/Bogus", "/States/A/Next", "/States/B/Type", "/States/D/Resource",
        "/States/E/InputPath" } do
        assert.truthy(tostring(err):find(p, 1, true), p)
      end
    end)

    it("validates ASL JSON text exactly like the equivalent Lua table", function()
      local text = [[{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"Nope"},"B":{"Type":"Bogus"}}}]]
      local from_text = asl.validate(text)
      local from_table = asl.validate { StartAt = "A", States = { A = { Type = "Pass", Next = "Nope" },
        B = { Type = "Bogus" } } }
      assert.is_true(has_problem(from_text, "/States/A/Next"))
      assert.is_true(has_problem(from_text, "/States/B/Type"))
      assert.are.equal(#from_table, #from_text)
    end)

    it("reports JSON that does not parse instead of raising, and asl.load raises a clear error", function()
      local problems = asl.validate('{"StartAt": "A", ')
      assert.are.equal(1, #problems)
      assert.truthy(problems[1].message:find("JSON"))
      local ok, err = pcall(asl.load, '{"StartAt": "A", ')
      assert.is_false(ok)
      assert.truthy(tostring(err):find("JSON"))
    end)

    it("rejects a definition that is neither a table nor text", function()
      assert.is_true(#asl.validate(42) > 0)
      assert.has_error(function() asl.load(42) end)
      assert.has_error(function() asl.load(nil) end)
    end)

    -- No false rejections: each of these is valid ASL (AWS accepts it); asl.validate returns {}.
    local valid = {
      { "Choice with Default and a Choices list", M { A = { Type = "Choice", Default = "B", Choices = {
        { Variable = "$.a", IsPresent = true, Next = "B" } } }, B = { Type = "Succeed" } } },
      { "Choice whose rules all go to Default's target", M { A = { Type = "Choice", Default = "C",
        Choices = { { Not = { Variable = "$.a", IsNull = true }, Next = "B" } } }, B = { Type = "Succeed" },
        C = { Type = "Fail" } } },
      { "every comparison operator, ...Path forms, And/Or/Not and Is* (ref §2)", M { A = { Type = "Choice",
        Default = "B", Choices = {
          { And = {
            { Variable = "$.s", StringEquals = "x" }, { Variable = "$.s", StringLessThan = "x" },
            { Variable = "$.s", StringGreaterThan = "x" }, { Variable = "$.s", StringLessThanEquals = "x" },
            { Variable = "$.s", StringGreaterThanEquals = "x" }, { Variable = "$.s",
              StringMatches = "log-*.\\*" },
            { Variable = "$.n", NumericEquals = 1 }, { Variable = "$.n", NumericLessThan = 1.5 },
            { Variable = "$.n", NumericGreaterThan = -1 }, { Variable = "$.n", NumericLessThanEquals = 0 },
            { Variable = "$.n", NumericGreaterThanEquals = 0 }, { Variable = "$.b", BooleanEquals = false },
            { Variable = "$.t", TimestampEquals = "2016-03-14T01:59:00Z" },
            { Variable = "$.t", TimestampLessThan = "2016-03-14T01:59:00.123+02:00" },
            { Variable = "$.t", TimestampGreaterThan = "2016-03-14T01:59:00Z" },
            { Variable = "$.t", TimestampLessThanEquals = "2016-03-14T01:59:00Z" },
            { Variable = "$.t", TimestampGreaterThanEquals = "2016-03-14T01:59:00Z" },
          }, Next = "B" },
          { Or = {
            { Variable = "$.s", StringEqualsPath = "$.o" }, { Variable = "$.s", StringLessThanPath = "$.o" },
            { Variable = "$.s", StringGreaterThanPath = "$.o" }, { Variable = "$.s",
              StringLessThanEqualsPath = "$.o" },
            { Variable = "$.s", StringGreaterThanEqualsPath = "$.o" }, { Variable = "$.n",
              NumericEqualsPath = "$.o" },
            { Variable = "$.n", NumericLessThanPath = "$.o" }, { Variable = "$.n",
              NumericGreaterThanPath = "$.o" },
            { Variable = "$.n", NumericLessThanEqualsPath = "$.o" },
            { Variable = "$.n", NumericGreaterThanEqualsPath = "$.o" }, { Variable = "$.b",
              BooleanEqualsPath = "$.o" },
            { Variable = "$.t", TimestampEqualsPath = "$.o" }, { Variable = "$.t",
              TimestampLessThanPath = "$.o" },
            { Variable = "$.t", TimestampGreaterThanPath = "$.o" },
            { Variable = "$.t", TimestampLessThanEqualsPath = "$$.Execution.StartTime" },
            { Variable = "$.t", TimestampGreaterThanEqualsPath = "$.o" },
          }, Next = "B" },
          { Not = { Variable = "$.x", IsNull = true }, Next = "B" },
          { Variable = "$.x", IsPresent = false, Next = "B" },
          { Variable = "$.x", IsNumeric = true, Next = "B" },
          { Variable = "$.x", IsString = true, Next = "B" },
          { Variable = "$.x", IsBoolean = true, Next = "B" },
          { Variable = "$.x", IsTimestamp = true, Next = "B" },
          { Variable = "$$.Execution.Input.x", IsPresent = true, Next = "B" },
          { Variable = "$myVar", IsPresent = true, Next = "B", Comment = "rules may carry a Comment" },
        } }, B = { Type = "Succeed" } } },
      { "Map with the legacy Iterator and Parameters", M { A = { Type = "Map", End = true,
        ItemsPath = "$.items",
        Parameters = { ["v.$"] = "$$.Map.Item.Value", ["i.$"] = "$$.Map.Item.Index" },
        Iterator = { StartAt = "X", States = { X = pass() } } } } },
      { "Map with ItemProcessor, ProcessorConfig and ItemSelector", M { A = { Type = "Map", End = true,
        ItemSelector = { ["v.$"] = "$$.Map.Item.Value" }, MaxConcurrency = 0, Label = "L",
        ItemProcessor = { ProcessorConfig = { Mode = "INLINE" }, StartAt = "X",
          States = { X = pass() } } } } },
      { "distributed Map with fractional ToleratedFailurePercentage (AWS accepts it, ref §14)",
        M { A = { Type = "Map", End = true, ToleratedFailurePercentage = 2.5, ToleratedFailureCount = 0,
          ItemProcessor = { ProcessorConfig = { Mode = "DISTRIBUTED", ExecutionType = "EXPRESS" },
            StartAt = "X", States = { X = pass() } } } } },
      { "Map ...Path fields and a variable as ItemsPath", M { A = { Type = "Map", End = true,
        ItemsPath = "$items",
        MaxConcurrencyPath = "$.mc", ToleratedFailureCountPath = "$.tc",
          ToleratedFailurePercentagePath = "$.tp",
        ItemProcessor = { StartAt = "X", States = { X = pass() } } } } },
      { "Parallel nested in Parallel, Map inside a branch", M { A = { Type = "Parallel", End = true,
        Branches = {
        { StartAt = "P2", States = { P2 = { Type = "Parallel", End = true, Branches = {
          { StartAt = "X", States = { X = pass() } },
          { StartAt = "Mp", States = { Mp = { Type = "Map", End = true,
            ItemProcessor = { StartAt = "Y", States = { Y = pass() } } } } } } } } },
        { StartAt = "Z", States = { Z = { Type = "Succeed" } } } } } } },
      { "Comment at every level", M({ A = { Type = "Parallel", Comment = "state", Next = "F", Branches = {
        { Comment = "branch", StartAt = "X", States = { X = pass { Comment = "inner" } } } },
        Retry = { { Comment = "retrier", ErrorEquals = { "States.ALL" } } },
        Catch = { { Comment = "catcher", ErrorEquals = { "States.ALL" }, Next = "F" } } },
        F = { Type = "Fail", Comment = "fail" } }, { Comment = "machine" }) },
      { "\"Comment\" keys inside Parameters are data (ref §1)", M { A = pass { Parameters = {
        Comment = "not a comment", nested = { Comment = 1 } } } } },
      { "Version 1.0, TimeoutSeconds and explicit QueryLanguage JSONPath",
        M({ A = pass { QueryLanguage = "JSONPath" } }, { Version = "1.0", TimeoutSeconds = 10,
          QueryLanguage = "JSONPath" }) },
      { "Task with TimeoutSecondsPath, HeartbeatSecondsPath and Credentials", M { A = task(ok_fn, {
        TimeoutSecondsPath = "$.timeout", HeartbeatSecondsPath = "$.heartbeat",
        Credentials = { ["RoleArn.$"] = "$.role" } }) } },
      { "Task with TimeoutSeconds and a smaller HeartbeatSeconds", M { A = task(ok_fn, {
        TimeoutSeconds = 10, HeartbeatSeconds = 9 }) } },
      { "Task with every Retry field and Catch with ResultPath null", M { A = task(ok_fn, {
        Retry = { { ErrorEquals = { "A", "States.TaskFailed" }, IntervalSeconds = 3, MaxAttempts = 0,
          BackoffRate = 1.5, MaxDelaySeconds = 10, JitterStrategy = "FULL" },
          { ErrorEquals = { "States.ALL" }, JitterStrategy = "NONE" } },
        Catch = { { ErrorEquals = { "States.Timeout" }, ResultPath = null, Next = "B" },
          { ErrorEquals = { "States.ALL" }, ResultPath = "$.error", Next = "B" } } }),
        B = { Type = "Succeed" } } },
      { "InputPath, OutputPath and ResultPath null", M { A = pass { InputPath = null, OutputPath = null,
        ResultPath = null } } },
      { "End false with Next", M { A = { Type = "Pass", End = false, Next = "B" },
        B = { Type = "Succeed" } } },
      { "Wait Seconds 0, Timestamp with fractions and offset", M { A = { Type = "Wait", Seconds = 0,
        Next = "B" },
        B = { Type = "Wait", Timestamp = "2016-03-14T01:59:00.000000+05:30", Next = "C" },
        C = { Type = "Wait", SecondsPath = "$.s", Next = "D" }, D = { Type = "Wait",
          TimestampPath = "$$.Execution.Input.t",
          End = true } } },
      { "Fail with nothing, and with ErrorPath/CausePath using $$ and an intrinsic (ref §2 Fail)",
        M { A = { Type = "Choice", Choices = { { Variable = "$.a", IsNull = true, Next = "B" } },
          Default = "C" },
          B = { Type = "Fail" },
          C = { Type = "Fail", ErrorPath = "$$.State.Name", CausePath = "States.Format('n={}', $.n)" } } },
      { "paths with $$, variables, wildcards, slices, filters and bracket keys (ref §4)",
        M { A = pass { Parameters = { ["a.$"] = "$$.Execution.Id", ["b.$"] = "$v.x[0]",
          ["c.$"] = "$.items[*].id",
          ["d.$"] = "$.items[1:3]", ["e.$"] = "$.items[?(@.n > 1)]", ["f.$"] = "$['key with space']",
          ["g.$"] = "$..deep", ["h.$"] = "$" } } } },
      { "intrinsics nested 10 deep and with escaped quotes (ref §7)", M { A = pass { Parameters = {
        ["a.$"] = string.rep("States.Array(", 10) .. string.rep(")", 10),
        ["b.$"] = "States.Format('it\\'s \\{\\} {}', States.ArrayLength(States.Array(1, 2)))" } } } },
      { "Assign with literals, arrays, paths and intrinsics (ref §10)", M { A = pass { Assign = {
        lit = 1, arr = { 1, 2, 3 }, obj = { k = "v" }, ["p.$"] = "$.a", ["i.$"] = "States.UUID()",
        _under = true } } } },
      { "a JSONata state inside a JSONPath machine, with Arguments and non-object Output (ref §1, §11)",
        M { A = { Type = "Task", Resource = ok_fn, QueryLanguage = "JSONata",
          Arguments = { x = "{% $states.input %}" },
          Output = 5, Next = "B" }, B = { Type = "Choice", QueryLanguage = "JSONata",
          Choices = { { Condition = true, Next = "C" } }, Default = "C" }, C = { Type = "Succeed" } } },
      { "sibling branches and nested scopes assigning their own names; a distributed Map may reuse outer "
        .. "names (its children do not see them)", M {
        A = pass { Assign = { x = 1 }, Next = "P" },
        P = { Type = "Parallel", Next = "D", Branches = {
          { StartAt = "B1", States = { B1 = pass { Assign = { local1 = 1, ["seen.$"] = "$x" } } } },
          { StartAt = "B2", States = { B2 = pass { Assign = { local1 = 2 } } } } } },
        D = { Type = "Map", End = true, ItemProcessor = { ProcessorConfig = { Mode = "DISTRIBUTED" },
          StartAt = "I", States = { I = pass { Assign = { x = 2 } } } } } } },
      { "state names with Unicode up to 80 characters", { StartAt = string.rep("é", 80),
        States = { [string.rep("é", 80)] = pass() } } },
    }
    for _, c in ipairs(valid) do
      it("accepts " .. c[1], function()
        local problems = asl.validate(c[2])
        assert.are.same({}, problems, dump(problems))
        assert.has_no.errors(function() asl.load(c[2]) end)
      end)
    end

    it("accepts the same definitions as ASL JSON text", function()
      local text = [[{
        "Comment": "all in JSON", "Version": "1.0", "TimeoutSeconds": 30, "StartAt": "P",
        "States": {
          "P": {"Type": "Pass", "Parameters": {"x.$": "$.a", "Comment": "data"}, "ResultPath": "$.p",
                "InputPath": null, "Next": "C"},
          "C": {"Type": "Choice", "Choices": [{"Variable": "$.p.x", "IsNull": false, "Next": "M"}],
                "Default": "F"},
          "M": {"Type": "Map", "ItemsPath": "$.items", "Iterator": {"StartAt": "I",
                "States": {"I": {"Type": "Pass", "End": true}}}, "ResultPath": null, "Next": "W"},
          "W": {"Type": "Wait", "Seconds": 1, "Next": "S"},
          "S": {"Type": "Succeed"},
          "F": {"Type": "Fail", "Error": "E", "Cause": "c"}
        }
      }]]
      assert.are.same({}, asl.validate(text))
    end)

    it("lets a registered integration take any ARN, and a per-machine resource too", function()
      local entry = asl.register_resource("^arn:aws:states:::acceptance:echo$",
        { run = function(i) return i end })
      local ok, err = pcall(function()
        local def = one { Type = "Task", Resource = "arn:aws:states:::acceptance:echo", End = true }
        assert.are.same({}, asl.validate(def))
        local status, out = run(def, { v = 1 })
        assert.are.equal("SUCCEEDED", status)
        assert.are.same({ v = 1 }, out)
      end)
      asl.unregister_resource(entry)
      assert(ok, err)
      local def = one { Type = "Task", Resource = "arn:aws:states:::acceptance:echo", End = true }
      -- valid ASL without an implementation: it loads, then fails at run time naming both remedies
      assert.are.same({}, asl.validate(def))
      local st, failure = run(def, { v = 2 })
      assert.are.equal("FAILED", st)
      assert.are.equal("States.Runtime", failure.Error)
      assert.truthy(failure.Cause:find("handlers", 1, true), failure.Cause)
      assert.truthy(failure.Cause:find("--mock-config", 1, true), failure.Cause)
      local status, out = run(def, { v = 2 },
        { load = { resources = { ["arn:aws:states:::acceptance:echo"] = function(i) return i.v + 1 end } } })
      assert.are.equal("SUCCEEDED", status)
      assert.are.equal(3, out)
    end)
  end)

  -------------------------------------------------------------------------
  -- Retry timing under the virtual clock (ref §9)
  -------------------------------------------------------------------------
  describe("Retry", function()
    local function scheduled_gaps(x)
      local ev = events_of(x, "TaskScheduled")
      local gaps = {}
      for i = 2, #ev do gaps[#gaps + 1] = ev[i].timestamp - ev[i - 1].timestamp end
      return gaps, #ev
    end

    it("waits IntervalSeconds x BackoffRate^(n-1), capped by MaxDelaySeconds", function()
      local calls = {}
      local status, err, x = run(one(task(failing({ "E", "E", "E", "E", "E" }, calls), {
        Retry = { { ErrorEquals = { "E" }, IntervalSeconds = 2, BackoffRate = 3, MaxAttempts = 4,
          MaxDelaySeconds = 30 } } })))
      assert.are.equal("FAILED", status)
      assert.are.same({ Error = "E", Cause = "attempt 5" }, err) -- 1 try + 4 retries
      local gaps = scheduled_gaps(x)
      assert.are.same({ 2, 6, 18, 30 }, gaps)                   -- 54 capped at 30
      local last = x:history()[#x:history()]
      assert.are.equal("ExecutionFailed", last.type)
      assert.are.equal(T0 + 56, last.timestamp)
    end)

    it("defaults to IntervalSeconds 1, MaxAttempts 3, BackoffRate 2.0", function()
      local calls = {}
      local status, _, x = run(one(task(failing({ "E", "E", "E", "E", "E" }, calls), {
        Retry = { { ErrorEquals = { "E" } } } })))
      assert.are.equal("FAILED", status)
      assert.are.equal(4, calls.n)
      assert.are.same({ 1, 2, 4 }, (scheduled_gaps(x)))
    end)

    it("succeeds on a later attempt and exposes $$.State.RetryCount", function()
      local calls = {}
      local status, out = run(one(task(function(_, ctx)
        calls.n = (calls.n or 0) + 1
        if calls.n < 3 then error({ Error = "Flaky" }, 0) end
        return ctx.context.State.RetryCount
      end, { Retry = { { ErrorEquals = { "Flaky" }, IntervalSeconds = 1 } } })))
      assert.are.equal("SUCCEEDED", status)
      assert.are.equal(2, out)
    end)

    it("MaxAttempts 0 means never retry: the next matching retrier is not consulted", function()
      local calls = {}
      local status, err = run(one(task(failing({ "E", "E", "E" }, calls), {
        Retry = { { ErrorEquals = { "E" }, MaxAttempts = 0 }, { ErrorEquals = { "States.ALL" },
          MaxAttempts = 5 } } })))
      assert.are.equal("FAILED", status)
      assert.are.equal("E", err.Error)
      assert.are.equal(1, calls.n)
    end)

    it("uses the first retrier whose ErrorEquals matches", function()
      local calls = {}
      local _, _, x = run(one(task(failing({ "E", "E" }, calls), {
        Retry = { { ErrorEquals = { "Other" }, IntervalSeconds = 100 },
          { ErrorEquals = { "E" }, IntervalSeconds = 7, BackoffRate = 1 },
          { ErrorEquals = { "States.ALL" }, IntervalSeconds = 50 } } })))
      assert.are.same({ 7, 7 }, (scheduled_gaps(x)))
    end)

    it("keeps a separate attempt count per retrier, even when errors alternate", function()
      -- A: 1 s x2^(n-1), 3 attempts; B: 10 s flat, 2 attempts.  A B A B A ok
      local calls = {}
      local status, out, x = run(one(task(failing({ "A", "B", "A", "B", "A" }, calls), {
        Retry = { { ErrorEquals = { "A" }, IntervalSeconds = 1, MaxAttempts = 3, BackoffRate = 2 },
          { ErrorEquals = { "B" }, IntervalSeconds = 10, MaxAttempts = 2, BackoffRate = 1 } } })))
      assert.are.equal("SUCCEEDED", status)
      assert.are.equal("done", out)
      assert.are.same({ 1, 10, 2, 10, 4 }, (scheduled_gaps(x)))
    end)

    it("an exhausted retrier hands the error to Catch", function()
      local calls = {}
      local status, out = run({ StartAt = "A", States = {
        A = task(failing({ "E", "E", "E" }, calls), { Next = "Done",
          Retry = { { ErrorEquals = { "E" }, MaxAttempts = 2 } },
          Catch = { { ErrorEquals = { "E" }, Next = "Caught" } } }),
        Done = { Type = "Succeed" }, Caught = { Type = "Pass", Result = "caught", End = true } } })
      assert.are.equal("SUCCEEDED", status)
      assert.are.equal("caught", out)
      assert.are.equal(3, calls.n)
    end)

    it("JitterStrategy FULL waits a random time in [0, the computed delay]", function()
      local calls = {}
      local _, _, x = run(one(task(failing({}, calls), {
        Resource = function() error({ Error = "E" }, 0) end,
        Retry = { { ErrorEquals = { "E" }, IntervalSeconds = 4, BackoffRate = 2, MaxAttempts = 12,
          MaxDelaySeconds = 20, JitterStrategy = "FULL" } } })))
      local gaps = scheduled_gaps(x)
      assert.are.equal(12, #gaps)
      local distinct = {}
      for k, g in ipairs(gaps) do
        local cap = math.min(4 * 2 ^ (k - 1), 20)
        assert.is_true(g >= 0 and g <= cap, ("retry %d waited %s, not in [0, %s]"):format(k, g, cap))
        distinct[g] = true
      end
      assert.is_true(next(distinct, next(distinct)) ~= nil, "jitter gives varying delays")
    end)

    it("States.ALL retries any error but States.Runtime (ref §8)", function()
      local calls = {}
      local status, err = run(one(task(function() calls.n = (calls.n or 0) + 1 return 1 end, {
        OutputPath = "$.missing", Retry = { { ErrorEquals = { "States.ALL" } } } })), {})
      assert.are.equal("FAILED", status)
      assert.are.equal("States.Runtime", err.Error)
      assert.are.equal(1, calls.n)
    end)

    it("States.TaskFailed retries a Lua task's error but not States.Timeout (ref §8)", function()
      local calls = {}
      local status = run(one(task(failing({ "Custom", "Custom" }, calls), {
        Retry = { { ErrorEquals = { "States.TaskFailed" }, IntervalSeconds = 1 } } })))
      assert.are.equal("SUCCEEDED", status)
      assert.are.equal(3, calls.n)
      calls = {}
      local status2, err = run(one(task(function()
        calls.n = (calls.n or 0) + 1
        scheduler.sleep(10)
      end, { TimeoutSeconds = 1, Retry = { { ErrorEquals = { "States.TaskFailed" } } } })))
      assert.are.equal("FAILED", status2)
      assert.are.equal("States.Timeout", err.Error)
      assert.are.equal(1, calls.n)
    end)

    it("re-runs a whole Parallel state on retry (ref §9)", function()
      local calls = {}
      local status, out = run(one { Type = "Parallel", End = true,
        Retry = { { ErrorEquals = { "Flaky" }, IntervalSeconds = 1 } },
        Branches = {
          { StartAt = "T", States = { T = task(failing({ "Flaky", "Flaky" }, calls)) } },
          { StartAt = "U", States = { U = pass { Result = "u" } } } } })
      assert.are.equal("SUCCEEDED", status)
      assert.are.same({ "done", "u" }, out)
      assert.are.equal(3, calls.n)
    end)
  end)

  -------------------------------------------------------------------------
  -- Catch (ref §5 "Catch output", §9)
  -------------------------------------------------------------------------
  describe("Catch", function()
    local function catching(catchers, fn)
      local states = {
        T = { Type = "Task", Resource = fn or function() error({ Error = "E1", Cause = "why" }, 0) end,
          Catch = catchers, Next = "Ok" },
        Ok = { Type = "Pass", Result = "not caught", End = true },
      }
      for _, c in ipairs(catchers) do  -- only reachable targets (unreachable states are invalid)
        if c.Next == "A" or c.Next == "B" then
          states[c.Next] = { Type = "Pass", Parameters = { via = c.Next, ["in.$"] = "$" }, End = true }
        end
      end
      return { StartAt = "T", States = states }
    end

    it("the first matching catcher wins, in order", function()
      local status, out = run(catching { { ErrorEquals = { "E0" }, Next = "A" },
        { ErrorEquals = { "E1", "E2" }, Next = "B" }, { ErrorEquals = { "States.ALL" }, Next = "A" } },
          { raw = 1 })
      assert.are.equal("SUCCEEDED", status)
      assert.are.same({ via = "B", ["in"] = { Error = "E1", Cause = "why" } }, out)
    end)

    it("default ResultPath $: the output is the error output {Error, Cause}", function()
      local _, out = run(catching { { ErrorEquals = { "States.ALL" }, Next = "A" } }, { raw = 1 })
      assert.are.same({ Error = "E1", Cause = "why" }, out["in"])
    end)

    it("ResultPath puts the error output into the raw state input (before InputPath)", function()
      local def = catching { { ErrorEquals = { "States.ALL" }, ResultPath = "$.error", Next = "A" } }
      def.States.T.InputPath = "$.sub"
      def.States.T.OutputPath = "$.sub"   -- OutputPath is not applied on a catch
      local _, out = run(def, { raw = 1, sub = { q = 1 } })
      assert.are.same({ raw = 1, sub = { q = 1 }, error = { Error = "E1", Cause = "why" } }, out["in"])
    end)

    it("ResultPath null keeps the raw input", function()
      local _, out = run(catching { { ErrorEquals = { "States.ALL" }, ResultPath = null, Next = "A" } },
        { raw = 1 })
      assert.are.same({ raw = 1 }, out["in"])
    end)

    it("an error without a Cause gives an error output without Cause", function()
      local _, out = run(catching({ { ErrorEquals = { "States.ALL" }, Next = "A" } },
        function() error({ Error = "Bare" }, 0) end), {})
      assert.are.same({ Error = "Bare" }, out["in"])
    end)

    it("States.TaskFailed catches a Lua task error; States.Timeout is not a TaskFailed (ref §8)", function()
      local _, out = run(catching { { ErrorEquals = { "States.TaskFailed" }, Next = "A" } }, {})
      assert.are.equal("A", out.via)
      local def = catching({ { ErrorEquals = { "States.TaskFailed" }, Next = "A" },
        { ErrorEquals = { "States.Timeout" }, Next = "B" } }, function() scheduler.sleep(100) end)
      def.States.T.TimeoutSeconds = 5
      local _, out2 = run(def, {})
      assert.are.equal("B", out2.via)
      assert.are.equal("States.Timeout", out2["in"].Error)
    end)

    it("States.ALL does not catch States.Runtime: the execution fails (ref §8, §13.9)", function()
      local def = { StartAt = "P", States = {
        P = { Type = "Parallel", Next = "Ok", Catch = { { ErrorEquals = { "States.ALL" }, Next = "Ok" } },
          Branches = { { StartAt = "X", States = { X = pass { InputPath = "$.missing" } } } } },
        Ok = { Type = "Succeed" } } }
      local status, err = run(def, {})
      assert.are.equal("FAILED", status)
      assert.are.equal("States.Runtime", err.Error)
    end)

    it("unmatched errors fail the execution with the original Error and Cause", function()
      local status, err = run(catching { { ErrorEquals = { "Other" }, Next = "A" } }, {})
      assert.are.equal("FAILED", status)
      assert.are.same({ Error = "E1", Cause = "why" }, err)
    end)

    it("a catcher's Assign sees the error output and sets variables for the next state (ref §10)", function()
      local def = catching { { ErrorEquals = { "States.ALL" }, Next = "V", ResultPath = null,
        Assign = { ["err.$"] = "$.Error" } } }
      def.States.V = { Type = "Pass", Parameters = { ["e.$"] = "$err" }, End = true }
      local status, out = run(def, {})
      assert.are.equal("SUCCEEDED", status)
      assert.are.same({ e = "E1" }, out)
    end)
  end)

  -------------------------------------------------------------------------
  -- Lua function tasks (DESIGN "Public Lua API": "it may raise {Error=, Cause=}")
  -------------------------------------------------------------------------
  describe("Lua function tasks", function()
    it("get the effective input and a context; their result goes through ResultSelector/ResultPath",
      function()
      local seen
      local status, out = run(one(task(function(input, ctx)
        seen = { input = input, state = ctx.context.State.Name }
        return { sum = input.a + input.b, extra = true }
      end, { Parameters = { ["a.$"] = "$.x", b = 2 }, ResultSelector = { ["total.$"] = "$.sum" },
        ResultPath = "$.r" })), { x = 40 })
      assert.are.equal("SUCCEEDED", status)
      assert.are.same({ x = 40, r = { total = 42 } }, out)
      assert.are.same({ a = 40, b = 2 }, seen.input)
      assert.are.equal("A", seen.state)
    end)

    it("raising {Error=, Cause=} fails the state with that Error and Cause", function()
      local status, err = run(one(task(function() error({ Error = "Job.Failed", Cause = "exit 1" }) end)))
      assert.are.equal("FAILED", status)
      assert.are.same({ Error = "Job.Failed", Cause = "exit 1" }, err)
    end)

    it("raising a plain string fails with States.TaskFailed and the message as Cause", function()
      local status, err = run(one(task(function() error("disk full", 0) end)))
      assert.are.equal("FAILED", status)
      assert.are.equal("States.TaskFailed", err.Error)
      assert.truthy(tostring(err.Cause):find("disk full", 1, true))
    end)

    it("may yield through the scheduler (sleep) and time advances virtually", function()
      local status, out, x = run(one(task(function()
        scheduler.sleep(3600)
        return scheduler.now()
      end)))
      assert.are.equal("SUCCEEDED", status)
      assert.are.equal(T0 + 3600, out)
      local h = x:history()
      assert.are.equal(T0 + 3600, h[#h].timestamp)
    end)
  end)

  -------------------------------------------------------------------------
  -- Timeouts (ref §1, §2 Task, §8)
  -------------------------------------------------------------------------
  describe("timeouts", function()
    local function sleeper(s) return function() scheduler.sleep(s) return "finished" end end

    it("Task TimeoutSeconds raises States.Timeout at the deadline", function()
      local status, err, x = run(one(task(sleeper(100), { TimeoutSeconds = 5 })))
      assert.are.equal("FAILED", status)
      assert.are.equal("States.Timeout", err.Error)
      local timed = events_of(x, "TaskTimedOut")
      assert.are.equal(1, #timed)
      assert.are.equal(T0 + 5, timed[1].timestamp)
    end)

    it("a Task that finishes before TimeoutSeconds succeeds", function()
      local status, out = run(one(task(sleeper(4), { TimeoutSeconds = 5 })))
      assert.are.equal("SUCCEEDED", status)
      assert.are.equal("finished", out)
    end)

    it("TimeoutSecondsPath reads the timeout from the effective input", function()
      local status, err = run(one(task(sleeper(10), { TimeoutSecondsPath = "$.t" })), { t = 3 })
      assert.are.equal("FAILED", status)
      assert.are.equal("States.Timeout", err.Error)
      assert.are.equal("SUCCEEDED", (run(one(task(sleeper(10), { TimeoutSecondsPath = "$.t" })), { t = 30 })))
    end)

    it("TimeoutSecondsPath to a non-integer is States.Runtime", function()
      local status, err = run(one(task(sleeper(1), { TimeoutSecondsPath = "$.t" })), { t = "soon" })
      assert.are.equal("FAILED", status)
      assert.are.equal("States.Runtime", err.Error)
    end)

    it("HeartbeatSeconds without a heartbeat raises States.HeartbeatTimeout", function()
      local status, err, x = run(one(task(sleeper(100), { HeartbeatSeconds = 5 })))
      assert.are.equal("FAILED", status)
      assert.are.equal("States.HeartbeatTimeout", err.Error)
      assert.are.equal(T0 + 5, x:history()[#x:history()].timestamp)
      local status2, err2 = run(one(task(sleeper(100), { HeartbeatSecondsPath = "$.h" })), { h = 2 })
      assert.are.equal("FAILED", status2)
      assert.are.equal("States.HeartbeatTimeout", err2.Error)
    end)

    it("the state machine's TimeoutSeconds ends the execution TIMED_OUT (ref §1, aws-rec:timeouts)",
      function()
      local status, _, x = run({ TimeoutSeconds = 5, StartAt = "W", States = {
        W = { Type = "Wait", Seconds = 60, Next = "P" }, P = pass() } })
      assert.are.equal("TIMED_OUT", status)
      local h = x:history()
      assert.are.equal("ExecutionTimedOut", h[#h].type)
      assert.are.equal(T0 + 5, h[#h].timestamp)
      assert.are.same({ "ExecutionStarted", "WaitStateEntered", "ExecutionTimedOut" }, types_of(x))
    end)

    it("the machine timeout also stops a running Lua task", function()
      local status = run({ TimeoutSeconds = 10, StartAt = "A", States = { A = task(sleeper(1000)) } })
      assert.are.equal("TIMED_OUT", status)
    end)

    it("a one-hour Wait finishes at once under the virtual clock", function()
      local t = os.clock()
      local status, _, x = run(one { Type = "Wait", Seconds = 3600, End = true })
      assert.are.equal("SUCCEEDED", status)
      assert.is_true(os.clock() - t < 1)
      local entered = events_of(x, "WaitStateEntered")[1]
      local exited = events_of(x, "WaitStateExited")[1]
      assert.are.equal(3600, exited.timestamp - entered.timestamp)
    end)
  end)

  -------------------------------------------------------------------------
  -- Payload quota (ref §12, §5 "Payload size"; DESIGN decided behaviour)
  -------------------------------------------------------------------------
  describe("payload quota (262,144 bytes)", function()
    -- {"s":"<n bytes>"} encodes to n + 8 bytes
    local function sized(total) return function() return { s = string.rep("a", total - 8) } end end

    it("a state output of exactly 262,144 bytes is fine", function()
      local status, out = run(one(task(sized(262144))))
      assert.are.equal("SUCCEEDED", status)
      assert.are.equal(262144, #json.encode(out))
    end)

    it("one byte more is States.DataLimitExceeded with AWS's cause", function()
      local status, err = run(one(task(sized(262145))))
      assert.are.equal("FAILED", status)
      assert.are.equal("States.DataLimitExceeded", err.Error)
      assert.are.equal("The state/task 'A' returned a result with a size exceeding the maximum number of "
        .. "bytes service limit.", err.Cause)
    end)

    it("counts UTF-8 bytes, not characters", function()
      -- 131,069 two-byte characters = 262,138 bytes + 8 = 262,146 bytes
      local status, err = run(one(task(function() return { s = string.rep("é", 131069) } end)))
      assert.are.equal("FAILED", status)
      assert.are.equal("States.DataLimitExceeded", err.Error)
    end)

    it("a Pass output over the quota fails the same way (aws-rec:error_handling/test_start_large_input)",
      function()
      local status, err, x = run({ StartAt = "State_1", States = {
        State_1 = pass { Result = { Arg1 = string.rep("a", 262144) } } } })
      assert.are.equal("FAILED", status)
      assert.are.equal("States.DataLimitExceeded", err.Error)
      assert.are.equal("The state/task 'State_1' returned a result with a size exceeding the "
        .. "maximum number of bytes service limit.", err.Cause)
      assert.are.same({ "ExecutionStarted", "PassStateEntered", "ExecutionFailed" }, types_of(x))
    end)

    it("an execution input over the quota fails with States.DataLimitExceeded", function()
      local status, err = run(one(pass()), { s = string.rep("x", 262144) })
      assert.are.equal("FAILED", status)
      assert.are.equal("States.DataLimitExceeded", err.Error)
    end)

    it("can be caught by naming States.DataLimitExceeded", function()
      local status, out = run({ StartAt = "A", States = {
        A = task(sized(300000), { Next = "Ok",
          Catch = { { ErrorEquals = { "States.DataLimitExceeded" }, Next = "Caught" } } }),
        Ok = { Type = "Succeed" }, Caught = pass { Result = "caught" } } })
      assert.are.equal("SUCCEEDED", status)
      assert.are.equal("caught", out)
    end)

    -- DESIGN (payload quota, corrected): a terminal error; States.ALL catches neither it nor
    -- States.Runtime (AWS Developer Guide, "Handling errors"), a rule naming it does.
    local function catch_all(state)
      state.Next = "Ok"
      state.End = nil
      state.Catch = { { ErrorEquals = { "States.ALL" }, Next = "Caught" } }
      return { StartAt = "A", States = { A = state, Ok = { Type = "Succeed" },
        Caught = pass { ResultPath = "$.e" } } }
    end
    local big_cases = {
      { "a Task result", task(sized(300000)) },
      { "a Parallel branch's output", { Type = "Parallel", End = true, Branches = {
        { StartAt = "B", States = { B = task(sized(300000)) } } } } },
      { "a Parallel's own Parameters", { Type = "Parallel", End = true,
        Parameters = { ["a.$"] = "$.s", ["b.$"] = "$.s" },
        Branches = { { StartAt = "B", States = { B = pass() } } } }, { s = string.rep("x", 140000) } },
      { "a Map iteration's output", { Type = "Map", End = true, ItemProcessor = { StartAt = "I",
        States = { I = task(sized(300000)) } } }, { 1 } },
    }
    for _, c in ipairs(big_cases) do
      it(c[1] .. " over the quota is not caught by States.ALL", function()
        local status, err = run(catch_all(c[2]), c[3])
        assert.are.equal("FAILED", status)
        assert.are.equal("States.DataLimitExceeded", err.Error)
      end)
    end
  end)

  -------------------------------------------------------------------------
  -- Parallel and Map (ref §2 Parallel, §3)
  -------------------------------------------------------------------------
  describe("Parallel", function()
    it("gives every branch the effective input and returns outputs in branch order", function()
      local status, out = run(one { Type = "Parallel", End = true, InputPath = "$.in", Branches = {
        { StartAt = "W", States = { W = { Type = "Wait", Seconds = 10, Next = "X" },
          X = pass { Parameters = { ["b1.$"] = "$.v" } } } },
        { StartAt = "Y", States = { Y = pass { Parameters = { ["b2.$"] = "$.v" } } } } } },
          { ["in"] = { v = 7 } })
      assert.are.equal("SUCCEEDED", status)
      assert.are.same({ { b1 = 7 }, { b2 = 7 } }, out)
    end)

    it("a failing branch fails the state with its own error and stops the others", function()
      local stopped = false
      local status, err, x = run(one { Type = "Parallel", End = true, Branches = {
        { StartAt = "Slow", States = { Slow = task(function()
          local ok, e = pcall(scheduler.sleep, 1000)
          if not ok then stopped = true error(e, 0) end
          return "slow"
        end) } },
        { StartAt = "F", States = { F = { Type = "Fail", Error = "BranchError", Cause = "branch 2" } } } } })
      assert.are.equal("FAILED", status)
      assert.are.same({ Error = "BranchError", Cause = "branch 2" }, err)
      assert.is_true(stopped)
      local h = x:history()
      assert.are.equal(T0, h[#h].timestamp) -- the slow sibling was not waited for
      assert.are.equal(1, #events_of(x, "ParallelStateFailed"))
    end)

    it("branches run concurrently on the virtual clock", function()
      local status, _, x = run(one { Type = "Parallel", End = true, Branches = {
        { StartAt = "A1", States = { A1 = { Type = "Wait", Seconds = 100, End = true } } },
        { StartAt = "B1", States = { B1 = { Type = "Wait", Seconds = 100, End = true } } } } })
      assert.are.equal("SUCCEEDED", status)
      assert.are.equal(T0 + 100, x:history()[#x:history()].timestamp)
    end)

    it("a branch reads outer variables; its own assignments stay local (ref §10)", function()
      local status, out = run({ StartAt = "S", States = {
        S = pass { Next = "P", Assign = { x = 42 } },
        P = { Type = "Parallel", Next = "After", Branches = {
          { StartAt = "B", States = { B = pass { Assign = { ["innerX.$"] = "$x" }, Next = "C" },
            C = pass { Parameters = { ["seen.$"] = "$innerX" } } } } } },
        After = { Type = "Choice", Choices = { { Variable = "$innerX", IsPresent = true, Next = "Leaked" } },
          Default = "Fine" },
        Leaked = pass { Result = "leaked" }, Fine = pass { Parameters = { ["x.$"] = "$x",
          ["r.$"] = "$" } } } })
      assert.are.equal("SUCCEEDED", status)
      assert.are.same({ x = 42, r = { { seen = 42 } } }, out)
    end)
  end)

  describe("Map", function()
    local function peak_tracker()
      local t = { active = 0, peak = 0 }
      t.fn = function(item)
        t.active = t.active + 1
        if t.active > t.peak then t.peak = t.active end
        scheduler.sleep(10)
        t.active = t.active - 1
        return item
      end
      return t
    end
    local function map(extra, proc_state)
      local s = { Type = "Map", End = true,
        ItemProcessor = { StartAt = "I", States = { I = proc_state or pass() } } }
      for k, v in pairs(extra or {}) do s[k] = v end
      return one(s)
    end

    it("returns iteration outputs in item order", function()
      local status, out = run(map({ ItemsPath = "$.xs" }, task(function(i)
        scheduler.sleep(10 - i)
        return i * 10
      end)), { xs = { 1, 2, 3, 4 } })
      assert.are.equal("SUCCEEDED", status)
      assert.are.same({ 10, 20, 30, 40 }, out)
    end)

    it("MaxConcurrency bounds the iterations running at once", function()
      local t = peak_tracker()
      local status, _, x = run(map({ MaxConcurrency = 2 }, task(t.fn)), { 1, 2, 3, 4, 5 })
      assert.are.equal("SUCCEEDED", status)
      assert.are.equal(2, t.peak)
      assert.are.equal(T0 + 30, x:history()[#x:history()].timestamp)
    end)

    it("MaxConcurrencyPath reads the bound from the input", function()
      local t = peak_tracker()
      local status = run(map({ ItemsPath = "$.items", MaxConcurrencyPath = "$.mc" }, task(t.fn)),
        { items = { 1, 2, 3, 4, 5, 6 }, mc = 3 })
      assert.are.equal("SUCCEEDED", status)
      assert.are.equal(3, t.peak)
    end)

    it("MaxConcurrency 0 is unlimited, up to the inline limit of 40 (ref §3, §12)", function()
      local t = peak_tracker()
      local items = {}
      for i = 1, 50 do items[i] = i end
      local status = run(map({ MaxConcurrency = 0 }, task(t.fn)), items)
      assert.are.equal("SUCCEEDED", status)
      assert.are.equal(40, t.peak)
    end)

    it("MaxConcurrencyPath to a non-integer is States.Runtime with AWS's cause (ref §3)", function()
      local status, err = run(map({ MaxConcurrencyPath = "$.MaxConcurrencyValue", ItemsPath = "$.items" }),
        { items = { 1 }, MaxConcurrencyValue = "NoNumber" })
      assert.are.equal("FAILED", status)
      assert.are.equal("States.Runtime", err.Error)
      assert.truthy(err.Cause:find('The MaxConcurrencyPath field refers to value "NoNumber" which is not a '
        .. 'valid integer: $.MaxConcurrencyValue', 1, true), err.Cause)
    end)

    it("ItemSelector sees $$.Map.Item.Index and .Value, and $ is the state input", function()
      local status, out = run(map { ItemsPath = "$.xs", ItemSelector = { ["i.$"] = "$$.Map.Item.Index",
        ["v.$"] = "$$.Map.Item.Value", ["k.$"] = "$.k", lit = "x" } }, { xs = { "a", "b" }, k = 9 })
      assert.are.equal("SUCCEEDED", status)
      assert.are.same({ { i = 0, v = "a", k = 9, lit = "x" }, { i = 1, v = "b", k = 9, lit = "x" } }, out)
    end)

    it("the legacy Iterator and Parameters work like ItemProcessor and ItemSelector", function()
      local status, out = run(one { Type = "Map", End = true, Parameters = { ["v.$"] = "$$.Map.Item.Value" },
        Iterator = { StartAt = "I", States = { I = pass() } } }, { 5, 6 })
      assert.are.equal("SUCCEEDED", status)
      assert.are.same({ { v = 5 }, { v = 6 } }, out)
    end)

    it("an input that is not an array is States.Runtime (ref §3)", function()
      local status, err = run(map { ItemsPath = "$.a" }, { a = { b = 1 } })
      assert.are.equal("FAILED", status)
      assert.are.equal("States.Runtime", err.Error)
    end)

    it("an empty array gives []", function()
      local status, out = run(map { ItemsPath = "$.a" }, { a = json.array {} })
      assert.are.equal("SUCCEEDED", status)
      assert.are.same({}, out)
      assert.are.equal("[]", json.encode(out))
    end)

    it("a failing iteration fails the Map with its error and stops the others", function()
      local stopped = 0
      local status, err, x = run(map({}, task(function(i)
        if i == 2 then error({ Error = "ItemError", Cause = "item 2" }, 0) end
        local ok, e = pcall(scheduler.sleep, 1000)
        if not ok then stopped = stopped + 1 error(e, 0) end
        return i
      end)), { 1, 2, 3 })
      assert.are.equal("FAILED", status)
      assert.are.same({ Error = "ItemError", Cause = "item 2" }, err)
      assert.is_true(stopped >= 1)
      assert.are.equal(T0, x:history()[#x:history()].timestamp)
      assert.are.equal(1, #events_of(x, "MapStateFailed"))
    end)

    local function flaky_items(input) if input.fail then error({ Error = "X", Cause = "bad" },
      0) end return input end

    it("ToleratedFailureCount lets that many iterations fail", function()
      local status, out = run(map({ ToleratedFailureCount = 1 }, task(flaky_items)),
        { { v = 1 }, { fail = true }, { v = 3 } })
      assert.are.equal("SUCCEEDED", status)
      assert.are.equal(3, #out)
      assert.are.same({ v = 1 }, out[1])
      assert.are.same({ v = 3 }, out[3])
    end)

    it("more failures than tolerated is States.ExceedToleratedFailureThreshold (ref §3)", function()
      local status, err = run(map({ ToleratedFailureCount = 1 }, task(flaky_items)),
        { { v = 1 }, { fail = true }, { fail = true } })
      assert.are.equal("FAILED", status)
      assert.are.equal("States.ExceedToleratedFailureThreshold", err.Error)
    end)

    it("ToleratedFailurePercentage compares the share of failed items", function()
      local input = { { v = 1 }, { fail = true }, { fail = true }, { v = 4 } }
      assert.are.equal("SUCCEEDED", (run(map({ ToleratedFailurePercentage = 50 }, task(flaky_items)), input)))
      local status, err = run(map({ ToleratedFailurePercentage = 25 }, task(flaky_items)), input)
      assert.are.equal("FAILED", status)
      assert.are.equal("States.ExceedToleratedFailureThreshold", err.Error)
    end)

    it("ToleratedFailureCountPath negative: 'ToleratedFailureCount cannot be negative.' (ref §3)", function()
      local status, err = run(map({ ToleratedFailureCountPath = "$.t", ItemsPath = "$.xs" }), { xs = { 1 },
        t = -1 })
      assert.are.equal("FAILED", status)
      assert.are.equal("States.Runtime", err.Error)
      assert.truthy(err.Cause:find("ToleratedFailureCount cannot be negative.", 1, true))
    end)

    it("runs ProcessorConfig DISTRIBUTED in-process (issue)", function()
      local status, out, x = run(one { Type = "Map", End = true, ItemProcessor = {
        ProcessorConfig = { Mode = "DISTRIBUTED", ExecutionType = "STANDARD" },
        StartAt = "I", States = { I = pass { Parameters = { ["d.$"] = "$" } } } } }, { 1, 2 })
      assert.are.equal("SUCCEEDED", status)
      assert.are.same({ { d = 1 }, { d = 2 } }, out)
      assert.are.equal(1, #events_of(x, "MapRunStarted"))
      assert.are.equal(1, #events_of(x, "MapRunSucceeded"))
    end)

    -- the issue: "ItemReader, ResultWriter and ItemBatcher fail with a clear error"
    for _, field in ipairs { "ItemReader", "ResultWriter", "ItemBatcher" } do
      it(field .. " fails with a clear error naming it", function()
        local value = field == "ItemBatcher" and { MaxItemsPerBatch = 2 }
          or { Resource = "arn:aws:states:::s3:getObject", Parameters = { Bucket = "b", Key = "k" } }
        local def = one { Type = "Map", End = true, [field] = value, ItemProcessor = {
          ProcessorConfig = { Mode = "DISTRIBUTED", ExecutionType = "STANDARD" },
          StartAt = "I", States = { I = pass() } } }
        local ok, m = pcall(asl.load, def)
        if not ok then
          assert.truthy(tostring(m):find(field, 1, true))
          return
        end
        local status, err = m:start({ 1, 2 }, { clock = "virtual" }):wait()
        assert.are.equal("FAILED", status)
        assert.truthy(tostring(err.Cause):find(field, 1, true), tostring(err.Cause))
      end)
    end

    it("iterations read outer variables; their assignments stay local (ref §10, aws-rec:BASE_SCOPE_MAP)",
      function()
      local status, out = run({ StartAt = "State0", States = {
        State0 = pass { Next = "State1", Assign = { x = 42, items = { 1, 2, 3 } } },
        State1 = { Type = "Map", ItemsPath = "$items", MaxConcurrency = 1, Next = "State2",
          ItemProcessor = { ProcessorConfig = { Mode = "INLINE" }, StartAt = "Inner",
            States = { Inner = pass { Assign = { ["innerX.$"] = "$x" } } } } },
        State2 = pass { Assign = { ["final.$"] = "$x" } } } }, { input_value = "input_value_literal" })
      assert.are.equal("SUCCEEDED", status)
      assert.are.same({ 1, 2, 3 }, out)
      local status2, err = run({ StartAt = "M", States = {
        M = { Type = "Map", Next = "Read", ItemProcessor = { StartAt = "I",
          States = { I = pass { Assign = { inner = 1 } } } } },
        Read = pass { Parameters = { ["v.$"] = "$inner" } } } }, { 1 })
      assert.are.equal("FAILED", status2)
      assert.are.equal("States.Runtime", err.Error)
    end)
  end)

  -------------------------------------------------------------------------
  -- The context object (ref §6)
  -------------------------------------------------------------------------
  describe("context object", function()
    it("has Execution.Id (an execution ARN), Name, Input, StartTime with milliseconds, StateMachine, State",
      function()
        local status, out = run(one(pass { Parameters = { ["c.$"] = "$$" } }), { a = 1 },
          { name = "run-1", start_time = T0 + 0.25, load = { name = "my-machine", region = "eu-west-1",
            account = "111122223333" } })
        assert.are.equal("SUCCEEDED", status)
        local c = out.c
        assert.are.equal("arn:aws:states:eu-west-1:111122223333:execution:my-machine:run-1", c.Execution.Id)
        assert.are.equal("run-1", c.Execution.Name)
        assert.are.same({ a = 1 }, c.Execution.Input)
        assert.are.equal("2023-11-14T22:13:20.250Z", c.Execution.StartTime)
        assert.truthy(c.Execution.StartTime:match(ISO_MS))
        assert.are.equal("string", type(c.Execution.RoleArn))
        assert.are.equal("arn:aws:states:eu-west-1:111122223333:stateMachine:my-machine", c.StateMachine.Id)
        assert.are.equal("my-machine", c.StateMachine.Name)
        assert.are.equal("A", c.State.Name)
        assert.are.equal("2023-11-14T22:13:20.250Z", c.State.EnteredTime)
      end)

    it("State.EnteredTime moves with the virtual clock; Execution.StartTime does not", function()
      local status, out = run({ StartAt = "W", States = { W = { Type = "Wait", Seconds = 90, Next = "P" },
        P = pass { Parameters = { ["entered.$"] = "$$.State.EnteredTime",
          ["start.$"] = "$$.Execution.StartTime",
          ["name.$"] = "$$.State.Name" } } } }, {})
      assert.are.equal("SUCCEEDED", status)
      assert.are.same({ entered = "2023-11-14T22:14:50.000Z", start = "2023-11-14T22:13:20.000Z",
        name = "P" }, out)
    end)

    it("is readable from InputPath, OutputPath, Choice Variable and Fail ErrorPath/CausePath", function()
      local _, out = run(one(pass { OutputPath = "$$.Execution.Input" }), { v = 0 })
      assert.are.same({ v = 0 }, out)
      local status, err = run(one { Type = "Fail", ErrorPath = "$$.State.Name",
        CausePath = "$$.StateMachine.Name" },
        {}, { load = { name = "sm" } })
      assert.are.equal("FAILED", status)
      assert.are.same({ Error = "A", Cause = "sm" }, err)
      local _, out2 = run({ StartAt = "C", States = { C = { Type = "Choice", Choices = {
        { Variable = "$$.Execution.Input.v", NumericLessThanEquals = 0, Next = "Y" } }, Default = "N" },
        Y = pass { Result = "yes" }, N = pass { Result = "no" } } }, { v = 0 })
      assert.are.equal("yes", out2)
    end)

    it("each execution gets its own default name, and the Id ends with it", function()
      local m = asl.load(one(pass { Parameters = { ["id.$"] = "$$.Execution.Id",
        ["n.$"] = "$$.Execution.Name" } }))
      local _, a = m:start({}, { clock = "virtual" }):wait()
      local _, b = m:start({}, { clock = "virtual" }):wait()
      assert.are_not.equal(a.n, b.n)
      assert.are.equal(":" .. a.n, a.id:sub(-#a.n - 1))
    end)

    it("rejects an execution name over 80 characters (ref §12)", function()
      local m = asl.load(one(pass()))
      assert.has_error(function() m:start({}, { name = string.rep("n", 81), clock = "virtual" }) end)
    end)
  end)

  -------------------------------------------------------------------------
  -- History (GetExecutionHistory shapes; ref §3 History, §8)
  -------------------------------------------------------------------------
  describe("history", function()
    it("numbers events from 1, chains previousEventId, and names them as AWS does", function()
      local status, _, x = run({ StartAt = "P", States = {
        P = pass { Next = "T", Result = { r = 1 } },
        T = task(function() return 2 end, { Next = "C" }),
        C = { Type = "Choice", Choices = { { Variable = "$", NumericEquals = 2, Next = "W" } } },
        W = { Type = "Wait", Seconds = 1, Next = "S" },
        S = { Type = "Succeed" } } }, { in1 = true })
      assert.are.equal("SUCCEEDED", status)
      assert.are.same({ "ExecutionStarted", "PassStateEntered", "PassStateExited",
        "TaskStateEntered", "TaskScheduled", "TaskStarted", "TaskSucceeded", "TaskStateExited",
        "ChoiceStateEntered", "ChoiceStateExited", "WaitStateEntered", "WaitStateExited",
        "SucceedStateEntered", "SucceedStateExited", "ExecutionSucceeded" }, types_of(x))
      local h = x:history()
      for i, e in ipairs(h) do
        assert.are.equal(i, e.id)
        assert.are.equal("number", type(e.timestamp))
        if i == 1 then assert.are.equal(0, e.previousEventId) else assert.are.equal(i - 1,
          e.previousEventId) end
      end
    end)

    it("state events carry {name, input|output} as JSON text with ...Details", function()
      local _, _, x = run(one(pass { Result = { r = 1 } }), { a = 1 })
      local h = x:history()
      local started, entered, exited, done = h[1], h[2], h[3], h[4]
      assert.are.same({ a = 1 }, json.decode(started.executionStartedEventDetails.input))
      assert.are.equal("A", entered.stateEnteredEventDetails.name)
      assert.are.same({ a = 1 }, json.decode(entered.stateEnteredEventDetails.input))
      assert.are.same({ truncated = false }, entered.stateEnteredEventDetails.inputDetails)
      assert.are.equal("A", exited.stateExitedEventDetails.name)
      assert.are.same({ r = 1 }, json.decode(exited.stateExitedEventDetails.output))
      assert.are.same({ truncated = false }, exited.stateExitedEventDetails.outputDetails)
      assert.are.equal("ExecutionSucceeded", done.type)
      assert.are.same({ r = 1 }, json.decode(done.executionSucceededEventDetails.output))
    end)

    it("a failure ends with ExecutionFailed {error, cause}; a Task failure has TaskFailed", function()
      local _, _, x = run(one(task(function() error({ Error = "E", Cause = "c" }, 0) end)))
      local failed = events_of(x, "TaskFailed")[1]
      assert.are.equal("E", failed.taskFailedEventDetails.error)
      assert.are.equal("c", failed.taskFailedEventDetails.cause)
      local h = x:history()
      assert.are.equal("ExecutionFailed", h[#h].type)
      assert.are.same({ error = "E", cause = "c" }, h[#h].executionFailedEventDetails)
    end)

    it("a Fail state without Error or Cause leaves both absent (ref §2 Fail, §13.7)", function()
      local status, err, x = run(one { Type = "Fail" })
      assert.are.equal("FAILED", status)
      assert.is_nil(err.Error)
      assert.is_nil(err.Cause)
      local d = x:history()[#x:history()].executionFailedEventDetails
      assert.is_nil(d and d.error)
      assert.is_nil(d and d.cause)
    end)

    it("inline Map emits MapStateEntered/Started, MapIteration*, MapStateSucceeded/Exited (ref §3)",
      function()
      local _, _, x = run(one { Type = "Map", End = true, MaxConcurrency = 1,
        ItemProcessor = { StartAt = "I", States = { I = pass() } } }, { 1 })
      assert.are.same({ "ExecutionStarted", "MapStateEntered", "MapStateStarted", "MapIterationStarted",
        "PassStateEntered", "PassStateExited", "MapIterationSucceeded", "MapStateSucceeded", "MapStateExited",
        "ExecutionSucceeded" }, types_of(x))
    end)

    it("Parallel emits ParallelStateEntered/Started/Succeeded/Exited around the branches", function()
      local _, _, x = run(one { Type = "Parallel", End = true,
        Branches = { { StartAt = "B", States = { B = pass() } } } })
      local t = types_of(x)
      assert.are.equal("ParallelStateEntered", t[2])
      assert.are.equal("ParallelStateStarted", t[3])
      assert.are.equal("ParallelStateExited", t[#t - 1])
    end)
  end)

  -------------------------------------------------------------------------
  -- stop() (DESIGN "Stopping")
  -------------------------------------------------------------------------
  describe("stop", function()
    it("aborts a running execution: ABORTED, ExecutionAborted, the given error and cause", function()
      local x = start(one { Type = "Wait", Seconds = 3600, End = true }, {})
      x:step(0)
      assert.is_true(x:stop("User.Stop", "enough"))
      local status, err = x:wait()
      assert.are.equal("ABORTED", status)
      assert.are.same({ Error = "User.Stop", Cause = "enough" }, err)
      local h = x:history()
      assert.are.equal("ExecutionAborted", h[#h].type)
    end)

    it("lets an in-flight Lua task clean up, and stopping a finished execution does nothing", function()
      local cleaned = false
      local x = start(one(task(function()
        local ok, e = pcall(scheduler.sleep, 1000)
        if not ok then cleaned = true error(e, 0) end
      end)), {})
      x:step(0)
      x:stop("Stop", "now")
      assert.are.equal("ABORTED", (x:wait()))
      assert.is_true(cleaned)
      assert.is_false(x:stop("again", "again"))
      assert.are.equal("ABORTED", (x:wait()))
    end)
  end)

  -------------------------------------------------------------------------
  -- to_json (DESIGN: "machine:to_json() -- ASL JSON accepted by AWS Step Functions")
  -------------------------------------------------------------------------
  describe("to_json", function()
    local def = { Comment = "round trip", TimeoutSeconds = 60, StartAt = "A", States = {
      A = { Type = "Pass", Parameters = { ["x.$"] = "$.a", list = { 1, 2 }, empty = json.object {},
        none = null },
        ResultPath = "$.p", Next = "M" },
      M = { Type = "Map", ItemsPath = "$.items", MaxConcurrency = 2, ResultPath = null,
        ItemSelector = { ["v.$"] = "$$.Map.Item.Value" },
        ItemProcessor = { ProcessorConfig = { Mode = "INLINE" }, StartAt = "I", States = { I = pass() } },
        Next = "P" },
      P = { Type = "Parallel", Next = "C", ResultPath = "$.par",
        Retry = { { ErrorEquals = { "States.ALL" }, IntervalSeconds = 2, BackoffRate = 1.5 } },
        Branches = { { StartAt = "B", States = { B = { Type = "Wait", Seconds = 1, End = true } } } } },
      C = { Type = "Choice", Choices = { { And = { { Variable = "$.p.x", NumericEquals = 1.5 },
        { Not = { Variable = "$.p.none", IsNull = false } } }, Next = "S" } }, Default = "F" },
      S = { Type = "Succeed", OutputPath = "$.p" },
      F = { Type = "Fail", Error = "E", Cause = "c" } } }

    it("gives ASL JSON that decodes, validates and loads back to the same definition", function()
      local m = asl.load(def)
      local text = m:to_json()
      local decoded = json.decode(text)
      assert.are.same({}, asl.validate(text))
      local m2 = asl.load(text)
      assert.are.same(decoded, json.decode(m2:to_json()))
      assert.are.equal(m:to_json({ compact = true }), m2:to_json({ compact = true }))
      -- JSON shapes survive: arrays stay arrays, empty objects stay objects, null stays null
      assert.is_true(json.is_array(decoded.States.C.Choices))
      assert.is_true(json.is_array(decoded.States.P.Retry[1].ErrorEquals))
      assert.is_true(json.is_object(decoded.States.A.Parameters.empty))
      assert.are.equal(null, decoded.States.A.Parameters.none)
      assert.are.equal(null, decoded.States.M.ResultPath)
      assert.are.equal(1.5, decoded.States.C.Choices[1].And[1].NumericEquals)
    end)

    it("the reloaded machine behaves the same", function()
      local input = { a = 1.5, items = { 1, 2 } }
      local s1, o1 = run(def, input)
      local s2, o2 = run(asl.load(def):to_json(), input)
      assert.are.equal("SUCCEEDED", s1)
      assert.are.equal(s1, s2)
      assert.are.same(o1, o2)
    end)

    it("keeps an ASL JSON definition's text content (load(text):to_json() decodes to the same value)",
      function()
      local text = [[{"StartAt":"A","States":{"A":{"Type":"Pass","Result":{"k.$":"$$","n":null,"e":[]},
        "End":true}},"Comment":"c"}]]
      assert.are.same(json.decode(text), json.decode(asl.load(text):to_json()))
    end)

    it("refuses to export a Lua function Resource silently: it raises naming the state", function()
      local m = asl.load(one(task(ok_fn)))
      local ok, err = pcall(m.to_json, m)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("/States/A/Resource", 1, true))
    end)

    it("has no Lua-only content: every value is JSON data", function()
      local text = asl.load(def):to_json()
      assert.is_nil(text:find("function:", 1, true))
      assert.is_nil(text:find("table:", 1, true))
      local top = json.decode(text)
      for k in pairs(top) do
        assert.truthy(({ Comment = 1, StartAt = 1, States = 1, TimeoutSeconds = 1, Version = 1,
          QueryLanguage = 1 })[k], "unexpected top-level field " .. tostring(k))
      end
    end)
  end)

  -------------------------------------------------------------------------
  -- Known engine bugs (engine.lua / history.lua are owned by someone else)
  -------------------------------------------------------------------------
  describe("quotas not yet enforced", function()
    it("a loop that never ends fails at the 25,000-event history quota instead of hanging (ref §12)",
      function()
      known_bug("engine.lua/history.lua: a Pass->Choice loop runs forever (the scheduler never gets control "
        .. "back, so even exec:step() hangs); ref §12 says the execution fails when its history would go "
        .. "over 25,000 events. Expected: FAILED with at most 25,000 events, within 10 s", function()
        local script = os.tmpname()
        local f = assert(io.open(script, "w"))
        f:write([[
          package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
          package.cpath = "build/?.so;" .. package.cpath
          local asl = require "emrflow.asl"
          local m = asl.load { StartAt = "P", States = { P = { Type = "Pass", Next = "C" },
            C = { Type = "Choice", Choices = { { Variable = "$.stop", IsPresent = true, Next = "E" } },
                  Default = "P" }, E = { Type = "Succeed" } } }
          local x = m:start({}, { clock = "virtual" })
          local status = x:wait()
          io.write(status, " ", #x:history())
        ]])
        f:close()
        local p = io.popen("timeout 10 lua5.4 " .. script .. " 2>&1")
        local out = p:read("a")
        p:close()
        os.remove(script)
        local status, n = out:match("^(%u+) (%d+)")
        assert(status, "no result within 10 s (hung): " .. out)
        assert.are.equal("FAILED", status)
        assert.is_true(tonumber(n) <= 25000)
      end)
    end)

    it("a Task result over 256 KiB fails even when ResultSelector/OutputPath shrink it (ref §12)", function()
      known_bug("engine.lua: only the state output is size-checked; ref §12 limits task results too "
        .. "(\"The state/task '<name>' returned a result with a size exceeding the maximum number of bytes "
        .. "service limit.\"). Expected: FAILED States.DataLimitExceeded for a 300,000-byte Lua task result "
        .. "reduced by ResultSelector; actual: SUCCEEDED", function()
        local status, err = run(one(task(function() return { big = string.rep("a", 300000), small = 1 } end,
          { ResultSelector = { ["s.$"] = "$.small" } })))
        assert.are.equal("FAILED", status)
        assert.are.equal("States.DataLimitExceeded", err.Error)
        assert.are.equal("The state/task 'A' returned a result with a size exceeding the maximum number of "
          .. "bytes service limit.", err.Cause)
      end)
    end)

    it("an Assign whose values together exceed 256 KiB fails the state (ref §10 Size)", function()
      known_bug("engine.lua: Assign values are not size-checked; ref §10 says each assigned value and all "
        .. "values of one Assign together are at most 256 KiB. Expected: FAILED for two 200,000-byte values "
        .. "in one Assign; actual: SUCCEEDED", function()
        local big = string.rep("a", 200000)
        local status = run(one(pass { Assign = { ["a.$"] = "$.s", ["b.$"] = "$.s" }, OutputPath = null }),
          { s = big })
        assert.are.equal("FAILED", status)
      end)
    end)
  end)
end)
