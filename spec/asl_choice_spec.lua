-- emrflow.asl.choice: every operator, type mismatches, Is*, And/Or/Not, timestamps,
-- StringMatches, and the corpus's 472 choice_operators cases.
local json = require "emrflow.json"
local choice = require "emrflow.asl.choice"

local corpus = require "support.corpus"

local INPUT = [[{
  "s": "beta", "s2": "beta", "n": 5, "f": 5.0, "z": 0, "b": true, "nul": null, "arr": [], "obj": {},
  "ts": "2024-01-02T03:04:05Z", "ts_off": "2024-01-02T05:04:05+02:00", "ts_frac": "2024-01-02T03:04:05.5Z",
  "ts_late": "2024-01-02T03:04:06Z", "ts_nozone": "2024-01-02T03:04:05", "date": "2024-01-02",
  "numstr": "5", "file": "log-2024.txt", "star": "a*b", "bs": "a\\b"
}]]

local env = {
  input = json.decode(INPUT),
  context = json.decode([[{"Execution": {"Input": {"k": 3}}}]]),
  vars = { limit = 5, name = "beta" },
}

local function eval(rule)
  local fn, msg = choice.compile(json.decode(rule))
  assert(fn, msg)
  return fn(env)
end

describe("emrflow.asl.choice", function()
  local cases = {
    -- strings
    { '{"Variable": "$.s", "StringEquals": "beta"}', true },
    { '{"Variable": "$.s", "StringEquals": "Beta"}', false },
    { '{"Variable": "$.n", "StringEquals": "5"}', false },
    { '{"Variable": "$.s", "StringLessThan": "gamma"}', true },
    { '{"Variable": "$.s", "StringLessThan": "beta"}', false },
    { '{"Variable": "$.s", "StringLessThanEquals": "beta"}', true },
    { '{"Variable": "$.s", "StringGreaterThan": "alpha"}', true },
    { '{"Variable": "$.s", "StringGreaterThanEquals": "beta"}', true },
    { '{"Variable": "$.s", "StringGreaterThanEquals": "c"}', false },
    { '{"Variable": "$.s", "StringEqualsPath": "$.s2"}', true },
    { '{"Variable": "$.s", "StringEqualsPath": "$name"}', true },
    { '{"Variable": "$.s", "StringEqualsPath": "$.n"}', false },
    { '{"Variable": "$.s", "StringLessThanPath": "$.ts"}', false },
    { '{"Variable": "$.file", "StringMatches": "log-*.txt"}', true },
    { '{"Variable": "$.file", "StringMatches": "*.csv"}', false },
    { '{"Variable": "$.file", "StringMatches": "*"}', true },
    { '{"Variable": "$.file", "StringMatches": "log*2024*"}', true },
    { '{"Variable": "$.file", "StringMatches": "log-2024.txt"}', true },
    { '{"Variable": "$.star", "StringMatches": "a\\\\*b"}', true },
    { '{"Variable": "$.file", "StringMatches": "log\\\\*"}', false },
    { '{"Variable": "$.bs", "StringMatches": "a\\\\\\\\b"}', true },
    { '{"Variable": "$.n", "StringMatches": "*"}', false },
    -- numbers
    { '{"Variable": "$.n", "NumericEquals": 5}', true },
    { '{"Variable": "$.f", "NumericEquals": 5}', true },
    { '{"Variable": "$.n", "NumericEquals": 5.0}', true },
    { '{"Variable": "$.z", "NumericEquals": 0.0}', true },
    { '{"Variable": "$.numstr", "NumericEquals": 5}', false },
    { '{"Variable": "$.nul", "NumericEquals": 0}', false },
    { '{"Variable": "$.b", "NumericEquals": 1}', false },
    { '{"Variable": "$.arr", "NumericEquals": 0}', false },
    { '{"Variable": "$.n", "NumericLessThan": 5.5}', true },
    { '{"Variable": "$.n", "NumericGreaterThan": 4}', true },
    { '{"Variable": "$.n", "NumericLessThanEquals": 5}', true },
    { '{"Variable": "$.n", "NumericGreaterThanEquals": 6}', false },
    { '{"Variable": "$.n", "NumericEqualsPath": "$limit"}', true },
    { '{"Variable": "$.n", "NumericGreaterThanPath": "$$.Execution.Input.k"}', true },
    { '{"Variable": "$.n", "NumericEqualsPath": "$.numstr"}', false },
    { '{"Variable": "$$.Execution.Input.k", "NumericLessThanEquals": 3}', true },
    -- booleans
    { '{"Variable": "$.b", "BooleanEquals": true}', true },
    { '{"Variable": "$.b", "BooleanEquals": false}', false },
    { '{"Variable": "$.n", "BooleanEquals": true}', false },
    { '{"Variable": "$.b", "BooleanEqualsPath": "$.b"}', true },
    { '{"Variable": "$.b", "BooleanEqualsPath": "$.s"}', false },
    -- timestamps
    { '{"Variable": "$.ts", "TimestampEquals": "2024-01-02T03:04:05Z"}', true },
    { '{"Variable": "$.ts_off", "TimestampEquals": "2024-01-02T03:04:05Z"}', true },
    { '{"Variable": "$.ts", "TimestampEquals": "2024-01-02T03:04:05.000Z"}', true },
    { '{"Variable": "$.ts_frac", "TimestampGreaterThan": "2024-01-02T03:04:05Z"}', true },
    { '{"Variable": "$.ts", "TimestampLessThan": "2024-01-02T03:04:05.001Z"}', true },
    { '{"Variable": "$.ts", "TimestampLessThanEquals": "2024-01-02T03:04:05Z"}', true },
    { '{"Variable": "$.ts", "TimestampGreaterThanEquals": "2024-01-02T03:04:06Z"}', false },
    { '{"Variable": "$.ts_nozone", "TimestampEquals": "2024-01-02T03:04:05Z"}', false },
    { '{"Variable": "$.date", "TimestampEquals": "2024-01-02T00:00:00Z"}', false },
    { '{"Variable": "$.n", "TimestampEquals": "2024-01-02T03:04:05Z"}', false },
    { '{"Variable": "$.ts", "TimestampLessThanPath": "$.ts_late"}', true },
    { '{"Variable": "$.ts", "TimestampEqualsPath": "$.ts_off"}', true },
    { '{"Variable": "$.ts", "TimestampEqualsPath": "$.s"}', false },
    -- Is*
    { '{"Variable": "$.nul", "IsNull": true}', true },
    { '{"Variable": "$.s", "IsNull": true}', false },
    { '{"Variable": "$.s", "IsNull": false}', true },
    { '{"Variable": "$.nul", "IsPresent": true}', true },
    { '{"Variable": "$.missing", "IsPresent": true}', false },
    { '{"Variable": "$.missing", "IsPresent": false}', true },
    { '{"Variable": "$.a.b.c", "IsPresent": false}', true },
    { '{"Variable": "$nosuchvar", "IsPresent": true}', false },
    { '{"Variable": "$.z", "IsNumeric": true}', true },
    { '{"Variable": "$.numstr", "IsNumeric": true}', false },
    { '{"Variable": "$.numstr", "IsNumeric": false}', true },
    { '{"Variable": "$.ts", "IsString": true}', true },
    { '{"Variable": "$.obj", "IsString": true}', false },
    { '{"Variable": "$.b", "IsBoolean": true}', true },
    { '{"Variable": "$.s", "IsBoolean": false}', true },
    { '{"Variable": "$.ts", "IsTimestamp": true}', true },
    { '{"Variable": "$.ts_frac", "IsTimestamp": true}', true },
    { '{"Variable": "$.ts_nozone", "IsTimestamp": true}', false },
    { '{"Variable": "$.date", "IsTimestamp": false}', true },
    -- composites
    { '{"And": [{"Variable": "$.n", "NumericEquals": 5}, '
      .. '{"Variable": "$.s", "StringEquals": "beta"}]}', true },
    { '{"And": [{"Variable": "$.n", "NumericEquals": 5}, {"Variable": "$.s", "StringEquals": "x"}]}', false },
    { '{"Or": [{"Variable": "$.n", "NumericEquals": 1}, '
      .. '{"Variable": "$.s", "StringEquals": "beta"}]}', true },
    { '{"Or": [{"Variable": "$.n", "NumericEquals": 1}, {"Variable": "$.s", "StringEquals": "x"}]}', false },
    { '{"Not": {"Variable": "$.n", "NumericEquals": 1}}', true },
    { '{"Not": {"Not": {"Variable": "$.b", "BooleanEquals": true}}}', true },
    { '{"And": [{"Not": {"Variable": "$.x", "IsPresent": true}}, '
      .. '{"Or": [{"Variable": "$.z", "IsNull": true}, '
      .. '{"Variable": "$.z", "NumericLessThan": 1}]}], "Next": "N", "Comment": "c"}', true },
    -- short circuit: the missing path in the second test is never read
    { '{"Or": [{"Variable": "$.b", "BooleanEquals": true}, '
      .. '{"Variable": "$.missing", "StringEquals": "x"}]}', true },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      assert.equal(c[2], eval(c[1]))
    end)
  end

  local runtime = {
    { '{"Variable": "$.missing", "StringEquals": "x"}', "$.missing" },
    { '{"Variable": "$.missing", "IsNull": false}', "$.missing" },
    { '{"Variable": "$.n", "NumericEqualsPath": "$.missing"}', "$.missing" },
    { '{"Variable": "$nosuchvar", "IsString": true}', "$nosuchvar" },
  }
  for _, c in ipairs(runtime) do
    it("a path that matches nothing is States.Runtime: " .. c[1], function()
      local ok, err = pcall(eval, c[1])
      assert.is_false(ok)
      assert.same({ Error = "States.Runtime", Cause = "Invalid path '" .. c[2]
        .. "': The choice state's condition path references an invalid value." }, err)
    end)
  end

  local bad = {
    { '{"Condition": "{% $x > 1 %}", "Next": "A"}', "JSONata is not supported" },
    { '{"Variable": "$.n", "Next": "A"}', "needs And, Or, Not, or Variable" },
    { '{"NumericEquals": 1}', "needs a Variable" },
    { '{"Variable": "$.n", "NumericEquals": 1, "StringEquals": "a"}', "exactly one comparison operator" },
    { '{"Variable": "$.n", "NumericEquals": "1"}', "must be a number" },
    { '{"Variable": "$.n", "StringEquals": 1}', "must be a string" },
    { '{"Variable": "$.n", "BooleanEquals": "true"}', "must be a boolean" },
    { '{"Variable": "$.n", "IsNull": "yes"}', "must be true or false" },
    { '{"Variable": "$.n", "TimestampEquals": "2024-01-02"}', "ISO-8601 extended offset date-time" },
    { '{"Variable": "n", "IsNull": true}', "must start with '$'" },
    { '{"Variable": "$.n", "NumericEqualsPath": 3}', "must be a path string" },
    { '{"And": []}', "non-empty array" },
    { '{"Or": {"Variable": "$.n", "IsNull": true}}', "non-empty array" },
    { '{"Not": [1]}', "must be an object" },
    { '{"Variable": "$.n", "IsNull": true, "Bogus": 1}', "unknown field 'Bogus'" },
    { '"rule"', "must be an object" },
  }
  for _, c in ipairs(bad) do
    it("rejects " .. c[1], function()
      local fn, msg = choice.compile(json.decode(c[1]), "/States/C/Choices/0")
      assert.is_nil(fn)
      assert.matches(c[2], msg, 1, true)
      assert.matches("^/States/C/Choices/0", msg)
    end)
  end

  describe("parse_timestamp", function()
    local ts = {
      { "1970-01-01T00:00:00Z", 0, 0 },
      { "1970-01-01T00:00:00.123456789Z", 0, 123456789 },
      { "2016-03-14T01:59:00Z", 1457920740, 0 },
      { "2016-03-14T01:59Z", 1457920740, 0 },
      { "2016-03-14T03:59:00+02:00", 1457920740, 0 },
      { "2016-03-13T20:59:00-05:00", 1457920740, 0 },
      { "2016-03-14t01:59:00z", 1457920740, 0 },
      { "2024-02-29T00:00:00Z", 1709164800, 0 },
      { "1969-12-31T23:59:59Z", -1, 0 },
      { "2016-03-14T01:59:00.00Z", 1457920740, 0 },
    }
    for _, c in ipairs(ts) do
      it("parses " .. c[1], function()
        local s, n = choice.parse_timestamp(c[1])
        assert.equal(c[2], s)
        assert.equal(c[3], n)
      end)
    end
    local invalid = {
      "2016-13-05T21:29:29Z", "2016-12-05T25:29:29Z", "2016-12-05T21:29:29", "2016-12-05 21:29:29Z",
      "05-12-2016T21:29:29Z", "2023-02-29T00:00:00Z", "2024-04-31T00:00:00Z", "2024-01-01T00:60:00Z",
      "2024-01-01T00:00:60Z", "2024-01-01T00:00:00.1234567890Z", "2024-01-01T00:00:00+2:00",
      "2024-01-01T00:00:00+19:00", "2024-01-01", "", "2024-01-01T00:00:00ZZ",
    }
    for _, s in ipairs(invalid) do
      it("rejects " .. s, function()
        assert.is_nil(choice.parse_timestamp(s))
      end)
    end
  end)
end)

describe("the choice_operators corpus", function()
  local files, dir = corpus.files("choice_operators")
  if #files == 0 then
    it("needs the shared conformance corpus", function()
      pending("no " .. dir .. " (set EMRFLOW_SHARED); corpus cases skipped")
    end)
    return
  end
  for _, f in ipairs(files) do
    it(f, function()
      local fh = assert(io.open(dir .. "/" .. f))
      local case = json.decode(fh:read("a"))
      fh:close()
      -- Each case is a Choice whose branches are Pass states returning {"TestResult.$": <branch>}.
      local st = case.definition.States[case.definition.StartAt]
      assert.equal("Choice", st.Type)
      local e = { input = case.input, context = {}, vars = {} }
      local taken = st.Default
      for i, rule in ipairs(st.Choices) do
        local fn = assert(choice.compile(rule, "/States/CheckValues/Choices/" .. (i - 1)))
        if fn(e) then
          taken = rule.Next
          break
        end
      end
      assert.equal("SUCCEEDED", case.status)
      assert.equal(case.output["TestResult.$"], case.definition.States[taken].Result["TestResult.$"])
    end)
  end
end)
