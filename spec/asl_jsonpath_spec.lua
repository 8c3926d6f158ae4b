-- emrflow.asl.jsonpath: reference paths, full JSONPath, AWS's not-found texts, ResultPath.
local json = require "emrflow.json"
local jsonpath = require "emrflow.asl.jsonpath"
local errors = require "emrflow.asl.errors"

local DOC = [[{
  "a": {"b": [1, 2, {"c": 3}], "s": "x"},
  "items": [{"v": 1, "t": "a"}, {"v": 2, "t": "b"}, {"v": 3, "t": "a"}, {"v": 4}],
  "users": [{"year": 1997, "status": 0}, {"year": 1998, "status": 1}],
  "Test\\\"\"Name\"": "quoted",
  "with space": 7,
  "dash-key": "d",
  "n": null,
  "empty": [],
  "nums": [0, 1, 2, 3, 4, 5]
}]]

local function doc() return json.decode(DOC) end

local env = {
  context = json.decode([[{"Execution": {"Id": "arn:x", "Name": "exec-1", "Input": {"k": 1}},
                           "State": {"Name": "S"}}]]),
  vars = { answer = 42, obj = json.decode([[{"list": [10, 20, 30], "m": {"x": "y"}}]]) },
}

describe("emrflow.asl.jsonpath", function()
  describe("get", function()
    local cases = {
      { "root", "$", nil, "whole" },
      { "a name", "$.a.s", '"x"' },
      { "an index", "$.a.b[0]", "1" },
      { "a negative index", "$.a.b[-1]", '{"c":3}' },
      { "deep", "$.a.b[2].c", "3" },
      { "bracket name", "$['a']['s']", '"x"' },
      { "double-quoted bracket name", '$["a"]["s"]', '"x"' },
      { "bracket with a space", "$['with space']", "7" },
      { "a dash in a dot name", "$.dash-key", '"d"' },
      { "AWS's escaped bracket name", "$['Test\\\"\"Name\"']", '"quoted"' },
      { "null is a value", "$.n", "null" },
      { "wildcard on an array", "$.a.b[*]", '[1,2,{"c":3}]' },
      { "dot wildcard", "$.items.*.v", "[1,2,3,4]" },
      { "wildcard then name", "$.items[*].v", "[1,2,3,4]" },
      { "wildcard on an object", "$.a.*", '[[1,2,{"c":3}],"x"]' },
      { "slice", "$.nums[1:3]", "[1,2]" },
      { "open slice", "$.nums[4:]", "[4,5]" },
      { "slice to", "$.nums[:2]", "[0,1]" },
      { "negative slice", "$.nums[-2:]", "[4,5]" },
      { "slice with step", "$.nums[::2]", "[0,2,4]" },
      { "slice past the end", "$.nums[4:100]", "[4,5]" },
      { "index union", "$.nums[0,2,5]", "[0,2,5]" },
      { "name union at the leaf merges", "$.a['s','zz']", '{"s":"x"}' },
      { "recursive descent", "$..c", "[3]" },
      { "recursive descent on names", "$..v", "[1,2,3,4]" },
      { "filter ==", "$.users[?(@.status == 0)]", '[{"year":1997,"status":0}]' },
      { "filter > then name", "$.users[?(@.year > 1997)].year", "[1998]" },
      { "filter on strings", "$.items[?(@.t == 'a')].v", "[1,3]" },
      { "filter existence", "$.items[?(@.t)].v", "[1,2,3]" },
      { "filter negation", "$.items[?(!(@.v < 3))].v", "[3,4]" },
      { "filter && and ||", "$.items[?(@.v > 1 && @.t == 'a' || @.v == 1)].v", "[1,3]" },
      { "filter in", "$.items[?(@.v in [2, 4])].v", "[2,4]" },
      { "filter regex", "$.items[?(@.t =~ /b/)].v", "[2]" },
      { "filter against the root", "$.items[?(@.v == $.a.b[0])].t", '["a"]' },
      { "length()", "$.nums.length()", "6" },
      { "wildcard on a missing field", "$.nope[*]", "[]" },
      { "slice on a missing field", "$.nope[1:5].x", "[]" },
      { "wildcard on an empty array", "$.empty[*]", "[]" },
    }
    for _, c in ipairs(cases) do
      it(c[1] .. ": " .. c[2], function()
        local d = doc()
        local v, err = jsonpath.get(c[2], d)
        assert.is_nil(err)
        if c[4] == "whole" then
          assert.equal(d, v)
        else
          assert.equal(c[3], json.encode(v))
        end
      end)
    end

    local roots = {
      { "context root", "$$", nil },
      { "context field", "$$.Execution.Name", '"exec-1"' },
      { "context nested", "$$.Execution.Input.k", "1" },
      { "variable", "$answer", "42" },
      { "variable field", "$obj.m.x", '"y"' },
      { "variable index", "$obj.list[1]", "20" },
      { "variable slice", "$obj.list[1:]", "[20,30]" },
    }
    for _, c in ipairs(roots) do
      it(c[1] .. ": " .. c[2], function()
        local v, err = jsonpath.get(c[2], doc(), env)
        assert.is_nil(err)
        if c[3] then assert.equal(c[3], json.encode(v)) else assert.equal(env.context, v) end
      end)
    end

    it("takes $ from env.input when no value is given", function()
      assert.equal("x", jsonpath.get("$.a.s", nil, { input = doc() }))
    end)

    local missing = {
      { "$.x", "Invalid path '$.x' : No results for path: $['x']" },
      { "$.a.x", "Invalid path '$.a.x' : No results for path: $['a']['x']" },
      { "$.x.y", "Invalid path '$.x.y' : Missing property in path $['x']" },
      { "$.a.b[7]", "Invalid path '$.a.b[7]' : No results for path: $['a']['b'][7]" },
      { "$.a.s.t", "Invalid path '$.a.s.t' : No results for path: $['a']['s']['t']" },
      { "$.a[0]", "Invalid path '$.a[0]' : No results for path: $['a'][0]" },
      { "$$.Execution.Nope",
        "Invalid path '$$.Execution.Nope' : No results for path: $$['Execution']['Nope']" },
      { "$nosuch", "Invalid path '$nosuch' : No results for path: $nosuch" },
      { "$.n.x", "Invalid path '$.n.x' : No results for path: $['n']['x']" },
    }
    for _, c in ipairs(missing) do
      it("a definite path with no match is States.Runtime: " .. c[1], function()
        local v, err = jsonpath.get(c[1], doc(), env)
        assert.is_nil(v)
        assert.same({ Error = "States.Runtime", Cause = c[2] }, err)
      end)
    end
  end)

  describe("compile", function()
    local bad = {
      { "", "must start with '$'" },
      { "a.b", "must start with '$'" },
      { "$.", "expected a name" },
      { "$[", "missing ']'" },
      { "$['a", "unterminated" },
      { "$[1:2:0]", "step cannot be 0" },
      { "$[x]", "bad array index" },
      { "$[?(@.a ==)]", "expected a value" },
      { "$.a.foo()", "unsupported function" },
      { 12, "must be a string" },
    }
    for _, c in ipairs(bad) do
      it("rejects " .. tostring(c[1]) .. " with a clear message", function()
        local p, msg = jsonpath.compile(c[1])
        assert.is_nil(p)
        assert.matches(c[2], msg, 1, true)
      end)
    end

    it("memoizes by text", function()
      assert.equal(jsonpath.compile("$.a.b"), jsonpath.compile("$.a.b"))
    end)

    local kinds = {
      { "$", true, true }, { "$.a.b[0]", true, true }, { "$['a'][0]", true, true },
      { "$$.Execution.Id", true, true }, { "$var.x[1]", true, true },
      { "$.a[*]", false, false }, { "$.a[1:]", false, false }, { "$..a", false, false },
      { "$.a[?(@.x)]", false, false }, { "$.a[0,1]", false, false }, { "$.a.length()", false, true },
    }
    for _, c in ipairs(kinds) do
      it("classifies " .. c[1], function()
        assert.equal(c[2], jsonpath.is_reference(c[1]))
        assert.equal(c[3], jsonpath.is_definite(c[1]))
      end)
    end
  end)

  describe("query", function()
    it("returns every match as an array, also for a definite path", function()
      assert.equal("[1]", json.encode(jsonpath.query("$.a.b[0]", doc())))
      assert.equal("[]", json.encode(jsonpath.query("$.zz", doc())))
      assert.equal("[1,2]", json.encode(jsonpath.query("$.nums[1:3]", doc())))
    end)
  end)

  describe("set (ResultPath)", function()
    local cases = {
      { "replaces the root", "$", '{"a":1}', "5", "5" },
      { "adds a field", "$.r", '{"a":1}', '"v"', '{"a":1,"r":"v"}' },
      { "replaces a field in place", "$.a", '{"a":1,"b":2}', "9", '{"a":9,"b":2}' },
      { "creates intermediate objects", "$.x.y.z", '{"a":1}', "true", '{"a":1,"x":{"y":{"z":true}}}' },
      { "goes into an existing object", "$.o.n", '{"o":{"m":1}}', "2", '{"o":{"m":1,"n":2}}' },
      { "sets an array element", "$.l[1]", '{"l":[1,2,3]}', '"x"', '{"l":[1,"x",3]}' },
      { "sets a field inside an array element", "$.l[0].k", '{"l":[{}]}', "1", '{"l":[{"k":1}]}' },
      { "bracket names", "$['q r']", "{}", "1", '{"q r":1}' },
      { "a field under JSON null cannot be built", "$.n.x", '{"n":null}', "1", nil },
    }
    for _, c in ipairs(cases) do
      it(c[1], function()
        local target = json.decode(c[3])
        local before = json.encode(target)
        local out, err = jsonpath.set(c[2], target, json.decode(c[4]))
        if c[5] == nil then
          assert.is_nil(out)
          assert.equal("States.ResultPathMatchFailure", err.Error)
        else
          assert.is_nil(err)
          assert.equal(c[5], json.encode(out))
        end
        assert.equal(before, json.encode(target)) -- the input is never modified
      end)
    end

    local failures = {
      { "a field on a string input", "$.r", '"text"',
        'Unable to apply ReferencePath $.r to input "text"' },
      { "a field on an array input", "$.r", "[1,2]",
        "Unable to apply ReferencePath $.r to input [1,2]" },
      { "a field under a number", "$.a.b", '{"a":1}',
        'Unable to apply ReferencePath $.a.b to input {"a":1}' },
      { "an index out of range", "$.l[5]", '{"l":[1]}',
        'Unable to apply ReferencePath $.l[5] to input {"l":[1]}' },
    }
    for _, c in ipairs(failures) do
      it("fails with States.ResultPathMatchFailure: " .. c[1], function()
        local out, err = jsonpath.set(c[2], json.decode(c[3]), 1)
        assert.is_nil(out)
        assert.same({ Error = errors.RESULT_PATH_MATCH_FAILURE, Cause = c[4] }, err)
      end)
    end

    it("rejects non-reference paths", function()
      local out, err = jsonpath.set("$.a[*]", json.decode("{}"), 1)
      assert.is_nil(out)
      assert.matches("not a valid reference path", err.Cause, 1, true)
    end)
  end)

  it("names AWS's not-found text for payload fields", function()
    assert.equal("The JSONPath '$.x' specified for the field 'v.$' could not be found in the input "
      .. "'{\"a\":1}'", jsonpath.not_found_cause("$.x", "v.$", json.decode('{"a":1}')))
  end)

  it("compares JSON values deeply, numbers by value, objects unordered", function()
    assert.is_true(jsonpath.deep_equal(json.decode('{"a":[1,{"b":2}],"c":1}'),
      json.decode('{"c":1.0,"a":[1,{"b":2}]}')))
    assert.is_false(jsonpath.deep_equal(json.decode("[1,2]"), json.decode("[2,1]")))
    assert.is_false(jsonpath.deep_equal(json.decode("{}"), json.decode("[]")))
  end)

  describe("regular expression filters (=~)", function()
    local function pick(path, text)
      local c = assert(jsonpath.compile(path))
      return jsonpath.query(c, json.decode(text))
    end

    it("match the whole string, with the i flag and ECMAScript classes", function()
      local subject_doc = '{"l":[{"n":"Alpha-1"},{"n":"beta-22"},{"n":"x alpha-3"}]}'
      assert.are.same({ "Alpha-1" }, pick("$.l[?(@.n =~ /A\\w+-\\d/)].n", subject_doc))
      assert.are.same({ "Alpha-1", "beta-22" }, pick("$.l[?(@.n =~ /[a-z]+-\\d+/i)].n", subject_doc))
    end)

    it("stay linear on a pattern that backtracks exponentially elsewhere", function()
      local subject = string.rep("a", 82) .. "!"
      local subject_doc = json.encode { l = { { n = subject } } }
      -- (a+)+$ on 82 a's and a "!" takes minutes with a backtracking matcher; here it ends
      assert.are.same({}, pick("$.l[?(@.n =~ /(a+)+b/)].n", subject_doc))
    end)

    it("refuse a bad or unsupported pattern when the path is compiled (a load-time problem)", function()
      for _, bad in ipairs { "$.l[?(@.n =~ /(a/)]", "$.l[?(@.n =~ /(a)\\1/)]", "$.l[?(@.n =~ /a/q)]" } do
        local c, err = jsonpath.compile(bad)
        assert.is_nil(c, bad)
        assert.matches("invalid regular expression", tostring(err), 1, true)
      end
      local asl = require "emrflow.asl"
      local problems = asl.validate { StartAt = "P", States = { P = { Type = "Pass", End = true,
        InputPath = "$.l[?(@.n =~ /(a/)]" } } }
      assert.are.equal("/States/P/InputPath", problems[1].path)
    end)
  end)
end)
