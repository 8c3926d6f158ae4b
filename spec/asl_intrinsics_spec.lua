-- emrflow.asl.intrinsics: every States.* function, the argument grammar, AWS's recorded
-- results, and the corpus's intrinsic_functions group run through payload templates.
-- luacheck: ignore 631 (the hash digests and recorded context texts are long)
local json = require "emrflow.json"
local intrinsics = require "emrflow.asl.intrinsics"
local payload = require "emrflow.asl.payload"
local jsonpath = require "emrflow.asl.jsonpath"

local corpus = require "support.corpus"

local INPUT = [[{
  "s": "Hello World", "n": 5, "f": 1.5, "arr": [1, 2, 2, 3, [1], [1], {"a": 1}, {"a": 1}],
  "obj": {"Arg1": 1, "Arg2": [], "Arg3": {"x": "y"}, "Arg4": null, "Arg5": 1.0},
  "json": "{\"k\": [1, 2]}", "csv": "a,b,,c", "b64": "SGVsbG8gV29ybGQ=",
  "m1": {"a": {"a1": 1}, "b": 2}, "m2": {"a": {"a3": 1}, "c": 3}
}]]

local env = {
  input = json.decode(INPUT),
  context = json.decode([[{"Execution": {"Name": "exec-7"}, "StateMachine": {"Id": "arn:sm", "Name": "sm-a-b"}}]]),
  vars = { v = "var-value", list = json.decode("[3, 1, 2]") },
}

local function run(text)
  local fn, msg = intrinsics.compile(text, "r.$")
  assert(fn, msg)
  return fn(env)
end

-- text evaluated with $ = input
local function run_on(text, input)
  local fn, msg = intrinsics.compile(text, "r.$")
  assert(fn, msg)
  return fn({ input = input, context = env.context, vars = env.vars })
end

describe("emrflow.asl.intrinsics", function()
  local cases = {
    -- States.Format
    { "States.Format('plain')", '"plain"' },
    { "States.Format('{} and {}', $.s, $.n)", '"Hello World and 5"' },
    { "States.Format('{}', $.f)", '"1.5"' },
    { "States.Format('{}', 1.0)", '"1.0"' },
    { "States.Format('{}', 1e7)", '"1.0E7"' },
    { "States.Format('{}', 0.0001)", '"1.0E-4"' },
    { "States.Format('{}', 123456.75)", '"123456.75"' },
    { "States.Format('{}', null)", '"null"' },
    { "States.Format('{}', true)", '"true"' },
    { "States.Format('obj={}', $.obj)", '"obj={Arg1=1, Arg2=[], Arg3={x=y}, Arg4=null, Arg5=1.0}"' },
    { "States.Format('{}', $.arr)", '"[1, 2, 2, 3, [1], [1], {a=1}, {a=1}]"' },
    { "States.Format('\\{\\} is {}', 'x')", '"{} is x"' },
    { "States.Format('it\\'s {}', $.n)", '"it\'s 5"' },
    { "States.Format('back\\\\slash {}', 1)", '"back\\\\slash 1"' },
    { "States.Format($.s)", '"Hello World"' },
    { "States.Format('{}-{}', $$.Execution.Name, $v)", '"exec-7-var-value"' },
    -- JSON
    { "States.StringToJson($.json)", '{"k":[1,2]}' },
    { "States.StringToJson('')", "null" },
    { "States.StringToJson('  ')", "null" },
    { "States.StringToJson('-0')", "0" },
    { "States.StringToJson('\"x\"')", '"x"' },
    { "States.JsonToString($.obj)", [["{\"Arg1\":1,\"Arg2\":[],\"Arg3\":{\"x\":\"y\"},\"Arg4\":null,\"Arg5\":1.0}"]] },
    { "States.JsonToString('HelloWorld')", [["\"HelloWorld\""]] },
    { "States.JsonToString(null)", '"null"' },
    { "States.JsonMerge($.m1, $.m2, false)", '{"a":{"a3":1},"b":2,"c":3}' },
    { "States.JsonMerge(States.StringToJson('{\"x\": 1}'), $.m2, false)", '{"x":1,"a":{"a3":1},"c":3}' },
    -- arrays
    { "States.Array()", "[]" },
    { "States.Array(1, 'two', null, true, $.n, States.Array())", '[1,"two",null,true,5,[]]' },
    { "States.ArrayPartition(States.Array(0, 1, 2), 2)", "[[0,1],[2]]" },
    { "States.ArrayPartition(States.Array(), 3)", "[]" },
    { "States.ArrayContains($.arr, 3)", "true" },
    { "States.ArrayContains($.arr, States.Array(1))", "true" },
    { "States.ArrayContains($.arr, States.StringToJson('{\"a\":1}'))", "true" },
    { "States.ArrayContains($.arr, 9)", "false" },
    { "States.ArrayContains(States.Array(), States.Array())", "false" },
    { "States.ArrayRange(0, 10, 3)", "[0,3,6,9]" },
    { "States.ArrayRange(1, 9, 9)", "[1]" },
    { "States.ArrayRange(5, 1, -2)", "[5,3,1]" },
    { "States.ArrayRange(5, 1, 2)", "[]" },
    { "States.ArrayGetItem($.arr, 3)", "3" },
    { "States.ArrayGetItem($list, 0)", "3" },
    { "States.ArrayLength($.arr)", "8" },
    { "States.ArrayUnique($.arr)", '[1,2,3,[1],{"a":1}]' },
    { "States.ArrayUnique(States.Array(1, 1.0, '1', null, null))", '[1,"1",null]' },
    -- encoding, hashing
    { "States.Base64Encode($.s)", '"SGVsbG8gV29ybGQ="' },
    { "States.Base64Decode($.b64)", '"Hello World"' },
    { "States.Base64Encode('')", '""' },
    { "States.Base64Encode('ab')", '"YWI="' },
    { "States.Base64Decode('YWI=')", '"ab"' },
    { "States.Hash('input data', 'MD5')", '"812f45842bc6d66ee14572ce20db8e86"' },
    { "States.Hash('input data', 'SHA-1')", '"aaff4a450a104cd177d28d18d74485e8cae074b7"' },
    { "States.Hash('input data', 'SHA-256')", '"b4a697a057313163aee33cd8d40c66e9f0f177e00cac2de32475ffff6169c3e3"' },
    { "States.Hash('Hash this string', 'SHA-256')",
      '"1cac63f39fd68d8c531f27b807610fb3d50f0fc3f186995767fb6316e7200a3e"' },
    { "States.Hash('input data', 'SHA-384')",
      '"d28a7d5cf25a74f11a50a18452b75e04bb3d70c9dd0510d6123aa008c756511b87525bdc835ebb27e1fb9e9374a15562"' },
    { "States.Hash('input data', 'SHA-512')",
      '"6ce4adb348546d4f449c4d25aad9a7c9cb711d9e91982d3f0b29ca2f3f47d4ce2deba23bf2954f0f1d593fc50283731a533d30d425402d4f91316d871303aac4"' },
    { "States.Hash('', 'SHA-512')",
      '"cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"' },
    -- math
    { "States.MathAdd(1.49, 1.5)", "3" },
    { "States.MathAdd(1.5, 1.51)", "4" },
    { "States.MathAdd(-1.49, -1.5)", "-2" },
    { "States.MathAdd(-0.5, 0)", "0" },
    { "States.MathAdd(-2.5, 0)", "-2" },
    { "States.MathAdd(2.5, 0)", "3" },
    { "States.MathAdd($.n, -7)", "-2" },
    { "States.MathRandom(7, 7)", "7" },
    -- strings
    { "States.StringSplit($.csv, ',')", '["a","b","c"]' },
    { "States.StringSplit(',,,,', ',')", "[]" },
    { "States.StringSplit(', , ,', ',')", '[" "," "]' },
    { "States.StringSplit('This.is+a,test=string', '.+,=')", '["This","is","a","test","string"]' },
    { "States.StringSplit('a\u{e9}b\u{e9}c', '\u{e9}')", '["a","b","c"]' },
    { "States.StringSplit('1%2]3^4-5.6[7', '%]^-.[')", '["1","2","3","4","5","6","7"]' },
    { "States.StringSplit('n\u{e9},\u{e9}', ',')", '["n\u{e9}","\u{e9}"]' },
    -- nesting
    { "States.ArrayGetItem(States.StringSplit($$.StateMachine.Name, '-'), "
      .. "States.MathAdd(States.ArrayLength(States.StringSplit($$.StateMachine.Name, '-')), -1))", '"b"' },
    { "  States.ArrayLength( States.Array( 1 , 2 ) )  ", "2" },
    { "States.ArrayLength($.arr[?(@ == 2)])", "2" },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      assert.equal(c[2], json.encode(run(c[1])))
    end)
  end

  it("States.UUID returns a version 4 UUID", function()
    local a, b = run("States.UUID()"), run("States.UUID()")
    assert.matches("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$", a)
    assert.not_equal(a, b)
  end)

  it("States.MathRandom stays within its bounds and is deterministic with a seed", function()
    for _ = 1, 200 do
      local v = run("States.MathRandom(-3, 4)")
      assert.is_true(math.type(v) == "integer" and v >= -3 and v <= 4)
    end
    local s1, s2 = run("States.MathRandom(0, 999, 3)"), run("States.MathRandom(0, 999, 3)")
    assert.equal(s1, s2)
    assert.is_true(s1 >= 0 and s1 <= 999)
    assert.not_equal(run("States.MathRandom(0, 1000000, 1)"), run("States.MathRandom(0, 1000000, 2)"))
  end)

  it("uses the injected random source", function()
    intrinsics.set_random(function(lo) return lo end)
    assert.equal(10, run("States.MathRandom(10, 20)"))
    assert.equal("00000000-0000-4000-8000-000000000000", run("States.UUID()"))
    intrinsics.set_random(nil)
  end)

  local failures = {
    { "States.Format('{} {}', 1)", "does not match the number of placeholders" },
    { "States.StringToJson('{bad')", "not valid JSON" },
    { "States.StringToJson(1)", "must be a string" },
    { "States.ArrayLength($.s)", "must be an array, but was string" },
    { "States.ArrayGetItem($.arr, 99)", "out of bounds" },
    { "States.ArrayGetItem($.arr, 1.5)", "must be an integer" },
    { "States.ArrayPartition($.arr, 0)", "greater than 0" },
    { "States.ArrayRange(0, 10, 0)", "must not be 0" },
    { "States.ArrayRange(0, 2000, 1)", "more than the limit of 1000" },
    { "States.JsonMerge($.m1, $.m2, true)", "shallow merge" },
    { "States.JsonMerge($.m1, $.arr, false)", "must be an object" },
    { "States.MathAdd($.s, 1)", "must be a number" },
    { "States.MathAdd(2147483648, 1)", "between -2147483648 and 2147483647" },
    { "States.Hash('x', 'SHA-3')", "not supported" },
    { "States.Hash('x', 'sha-256')", "not supported" },
    { "States.Hash($.n, 'MD5')", "must be a string, but was number" },
    { "States.Base64Decode('!!!!')", "not valid base64" },
    { "States.MathRandom(5, 1)", "must not be greater" },
  }
  for _, c in ipairs(failures) do
    it("fails with States.IntrinsicFailure: " .. c[1], function()
      local ok, err = pcall(run, c[1])
      assert.is_false(ok)
      assert.equal("States.IntrinsicFailure", err.Error)
      assert.matches(c[2], err.Cause, 1, true)
    end)
  end

  it("fails States.Base64Encode on more than 10,000 characters", function()
    local fn = assert(intrinsics.compile("States.Base64Encode($.big)"))
    local ok, err = pcall(fn, { input = { big = string.rep("x", 10001) } })
    assert.is_false(ok)
    assert.matches("10000 characters", err.Cause, 1, true)
  end)

  it("a path argument that matches nothing is States.Runtime with AWS's text", function()
    local ok, err = pcall(run, "States.Format('{}', $.nope)")
    assert.is_false(ok)
    assert.equal("States.Runtime", err.Error)
    assert.matches("^The JSONPath '%$%.nope' specified for the field 'r%.%$' could not be found in the input '{",
      err.Cause)
  end)

  local bad = {
    { "Format('x')", "expected States." },
    { "States.Nope(1)", "unknown intrinsic function States.Nope" },
    { "States.Format('x'", "expected ',' or ')'" },
    { "States.Format('x)", "unterminated string literal" },
    { "States.Format('\\a')", "must escape one of" },
    { "States.ArrayLength()", "takes 1 arguments, got 0" },
    { "States.UUID(1)", "takes 0 arguments, got 1" },
    { "States.Array(foo)", "expected an argument" },
    { "States.Array($.a[)", "missing ']'" },
    { "States.Array(1) x", "unexpected text after the call" },
    { string.rep("States.Array(", 11) .. string.rep(")", 11), "nest at most 10 deep" },
  }
  for _, c in ipairs(bad) do
    it("rejects at compile time: " .. c[1]:sub(1, 40), function()
      local fn, msg = intrinsics.compile(c[1])
      assert.is_nil(fn)
      assert.matches(c[2], msg, 1, true)
    end)
  end

  it("accepts 10 levels of nesting", function()
    assert.is_function(intrinsics.compile(string.rep("States.Array(", 10) .. string.rep(")", 10)))
  end)

  it("is_call recognises calls only", function()
    assert.is_true(intrinsics.is_call("States.Format('x')"))
    assert.is_false(intrinsics.is_call("$.a"))
    assert.is_false(intrinsics.is_call("States.Format"))
  end)
end)

-- The corpus: each JSONPath case of intrinsic_functions is one Pass state whose Parameters
-- call an intrinsic; run InputPath/Parameters/ResultPath/OutputPath here and compare outputs.

local function run_pass(name, st, input)
  local ctx = corpus.context(name, input)
  local e = { input = input, context = ctx, vars = {} }
  local eff = input
  if st.InputPath then eff = assert(jsonpath.get(st.InputPath, input, e)) end
  if st.Parameters then
    e.input = eff
    eff = assert(payload.compile(st.Parameters))(e)
  end
  local out = eff
  if st.ResultPath then out = assert(jsonpath.set(st.ResultPath, input, eff)) end
  if st.OutputPath then out = assert(jsonpath.get(st.OutputPath, out, e)) end
  return out
end

describe("the intrinsic_functions corpus", function()
  local files, dir = corpus.files("intrinsic_functions")
  if #files == 0 then
    it("needs the shared conformance corpus", function()
      pending("no " .. dir .. " (set EMRFLOW_SHARED); corpus cases skipped")
    end)
    return
  end
  for _, f in ipairs(files) do
    local fh = assert(io.open(dir .. "/" .. f))
    local case = json.decode(fh:read("a"))
    fh:close()
    local def = case.definition
    local st = def.States[def.StartAt]
    if #json.keys(def.States) == 1 and st.Type == "Pass" and not def.QueryLanguage and not st.QueryLanguage then
      it(f, function()
        local out = run_pass(def.StartAt, st, case.input)
        local expected = case.output
        -- Redacted outputs: random numbers are checked against their bounds; the context
        -- values are the corpus's placeholders, so those outputs must match exactly.
        local call = tostring(st.Parameters and st.Parameters["FunctionResult.$"])
        if call:find("MathRandom", 1, true) then
          local got = out.FunctionResult
          assert.equal("integer", math.type(got), call)
          local lo = math.floor(case.input.FunctionInput.fst + 0.5)
          local hi = math.floor(case.input.FunctionInput.snd + 0.5)
          assert.is_true(got >= lo and got <= hi)
          expected = assert(jsonpath.set("$.FunctionResult", expected, "<ignored>"))
          out = assert(jsonpath.set("$.FunctionResult", out, "<ignored>"))
        end
        assert.is_true(jsonpath.deep_equal(expected, out),
          "expected " .. json.encode(expected) .. " got " .. json.encode(out))
      end)
    end
  end
end)

-- Robustness (issue #9 item 4): every bad call ends in a located parse problem or an ASL
-- error, never a Lua error text; huge ranges fail without being built.
describe("intrinsics on hostile input", function()
  local asl = require "emrflow.asl"

  local function asl_error(text, input)
    local fn, msg = intrinsics.compile(text, "r.$")
    assert(fn, msg)
    local ok, err = pcall(fn, { input = input or env.input, context = env.context, vars = env.vars })
    assert.is_false(ok, "expected a failure")
    assert.is_table(err, tostring(err))
    return err
  end

  local function pass_machine(params)
    return { StartAt = "A", States = { A = { Type = "Pass", Parameters = params, End = true } } }
  end

  it("reports an unterminated quote after a path argument with its position", function()
    for _, text in ipairs({ [[States.Array($.a")]], [[States.Array($.a')]], [[States.Format('{}', $['x)]] }) do
      local fn, msg = intrinsics.compile(text)
      assert.is_nil(fn)
      assert.matches("unterminated quote in the path argument that starts at position", msg, 1, true)
    end
  end)

  it("lets asl.validate return that problem, located, instead of raising", function()
    local ok, problems = pcall(asl.validate, pass_machine({ ["x.$"] = [[States.Array($.a")]] }))
    assert.is_true(ok, tostring(problems))
    assert.equal(1, #problems)
    local p = problems[1]
    assert.equal("/States/A/Parameters/x.$", p.path)
    assert.matches("unterminated quote", p.message, 1, true)
  end)

  it("refuses a number literal beyond the doubles, which JSON cannot hold", function()
    for _, text in ipairs({ "States.Array(1e400)", "States.MathAdd(-1e999, 1)" }) do
      local fn, msg = intrinsics.compile(text)
      assert.is_nil(fn, text)
      assert.matches("is out of range (JSON has no infinity)", msg, 1, true)
    end
  end)

  it("reports text ending inside a call", function()
    for _, text in ipairs({ "States.Array(", "States.Array(  ", "States.Format('{}',", "States.Array($.a," }) do
      local fn, msg = intrinsics.compile(text)
      assert.is_nil(fn, text)
      assert.matches("at position %d+", msg)
    end
  end)

  it("fails States.MathRandom cleanly on bounds beyond Java's int", function()
    for _, text in ipairs({ "States.MathRandom(-1e300, 1e300)", "States.MathRandom(0, 9223372036854775807)",
        "States.MathRandom(0, 1e19, 3)", "States.MathRandom(-2147483649, 0)" }) do
      local err = asl_error(text)
      assert.equal("States.IntrinsicFailure", err.Error)
      assert.matches("must be between %-2147483648 and 2147483647", err.Cause)
    end
  end)

  it("draws seeded numbers over the whole int range without looping", function()
    local a = run("States.MathRandom(-2147483648, 2147483647, 7)")
    assert.equal(a, run("States.MathRandom(-2147483648, 2147483647, 7)"))
    assert.is_true(a >= -2147483648 and a <= 2147483647)
  end)

  it("fails States.ArrayRange over 1,000 items even when the count overflows", function()
    for _, text in ipairs({ "States.ArrayRange(0, 9223372036854775807, 1)",
        "States.ArrayRange(-9223372036854775807, 9223372036854775807, 2)",
        "States.ArrayRange(9223372036854775807, -9223372036854775807, -1)", "States.ArrayRange(0, 1000, 1)" }) do
      local err = asl_error(text)
      assert.equal("States.IntrinsicFailure", err.Error)
      assert.matches("more than the limit of 1000 items", err.Cause, 1, true)
    end
    assert.equal(1000, #run("States.ArrayRange(1, 1000, 1)"))
  end)

  it("ends States.ArrayRange at the edge of the integers", function()
    assert.same({ 9223372036854775800, 9223372036854775803, 9223372036854775806 },
      run("States.ArrayRange(9223372036854775800, 9223372036854775807, 3)"))
    assert.same({ -9223372036854775807, -9223372036854775808 },
      run("States.ArrayRange(-9223372036854775807, -9223372036854775808, -1)"))
  end)

  it("splits text that is not UTF-8 on bytes", function()
    local bytes = { s = "a\255b,c\200", d = ",\255" }
    assert.same({ "a", "b", "c\200" }, run_on("States.StringSplit($.s, $.d)", bytes))
    assert.same({ "a", "b", "c", "d", "e\255f", "g" },
      run_on("States.StringSplit($.s, $.d)", { s = "a%b]c^d-e\255f.g", d = "%]^-." }))
    assert.same({ "a", "b", "cé" }, run_on("States.StringSplit($.s, $.d)", { s = "añb,cé", d = "ñ," }))
  end)

  it("decodes base64 of bytes that are not UTF-8 to text with U+FFFD", function()
    assert.equal("\u{FFFD}", run("States.Base64Decode('/w==')"))
    local enc = intrinsics.base64_encode("a\xE2\x82b\u{1F600}\xC0")
    assert.equal("a\u{FFFD}b\u{1F600}\u{FFFD}", run_on("States.Base64Decode($.e)", { e = enc }))
  end)

  it("runs Base64Decode('/w==') then JsonToString($) to a clean SUCCEEDED", function()
    local m = asl.load({ StartAt = "A", States = {
      A = { Type = "Pass", Parameters = { ["d.$"] = "States.Base64Decode('/w==')" }, Next = "B" },
      B = { Type = "Pass", Parameters = { ["s.$"] = "States.JsonToString($)" }, End = true } } })
    local status, out = m:start(json.object({}), { clock = "virtual" }):wait()
    assert.equal("SUCCEEDED", status)
    assert.equal('{"d":"\u{FFFD}"}', out.s)
    assert.equal('{"s":"{\\"d\\":\\"\u{FFFD}\\"}"}', json.encode(out))
  end)

  it("never encodes a value as a Lua address in States.JsonToString", function()
    local err = asl_error("States.JsonToString($.v)", { v = { k = "\255" } })
    assert.equal("States.IntrinsicFailure", err.Error)
    assert.matches("cannot be encoded as JSON", err.Cause, 1, true)
    assert.not_matches("0x%x+", err.Cause)
    err = asl_error("States.JsonToString($.v)", { v = { f = print } })
    assert.not_matches("0x%x+", err.Cause)
    err = asl_error("States.Format('{}', $.v)", { v = print })
    assert.equal("States.IntrinsicFailure", err.Error)
    assert.equal("States.Format cannot print a function value", err.Cause)
  end)
end)
