-- emrflow.asl.payload: ".$" templates, literals, key order, errors, and the corpus's
-- single-Pass JSONPath cases (base, scenarios, context_object, comments) end to end.
-- luacheck: ignore 631 (the recorded context texts are long)
local json = require "emrflow.json"
local payload = require "emrflow.asl.payload"
local jsonpath = require "emrflow.asl.jsonpath"
local errors = require "emrflow.asl.errors"

local corpus = require "support.corpus"

local env = {
  input = json.decode([[{"a": 1, "b": {"c": [1, 2, 3]}, "s": "str", "n": null}]]),
  context = json.decode([[{"Execution": {"Id": "arn:e", "Input": {"x": 9}}, "Map": {"Item": {"Index": 2}}}]]),
  vars = { v = json.decode('{"deep": [true]}'), count = 3 },
}

local function eval(template)
  local fn, msg = payload.compile(json.decode(template), "/States/P/Parameters")
  assert(fn, msg)
  return json.encode(fn(env))
end

describe("emrflow.asl.payload", function()
  local cases = {
    { "literals pass through", '{"k": "v", "n": 1, "z": null, "l": [1, "$.a"], "o": {}}',
      '{"k":"v","n":1,"z":null,"l":[1,"$.a"],"o":{}}' },
    { "a path", '{"x.$": "$.a"}', '{"x":1}' },
    { "the whole input", '{"all.$": "$"}', '{"all":{"a":1,"b":{"c":[1,2,3]},"s":"str","n":null}}' },
    { "null is a value", '{"x.$": "$.n"}', '{"x":null}' },
    { "an indefinite path gives an array", '{"x.$": "$.b.c[1:]"}', '{"x":[2,3]}' },
    { "the context object", '{"id.$": "$$.Execution.Id", "i.$": "$$.Map.Item.Index"}',
      '{"id":"arn:e","i":2}' },
    { "variables", '{"d.$": "$v.deep[0]", "c.$": "$count"}', '{"d":true,"c":3}' },
    { "an intrinsic", '{"f.$": "States.Format(\'{}-{}\', $.s, $count)"}', '{"f":"str-3"}' },
    { "nested objects", '{"o": {"p": {"q.$": "$.a"}, "lit": 2}}', '{"o":{"p":{"q":1},"lit":2}}' },
    { "templates inside arrays", '{"l": [{"q.$": "$.s"}, 5]}', '{"l":[{"q":"str"},5]}' },
    { "key order is the template's", '{"z.$": "$.a", "y": 2, "x.$": "$.s", "w": 0}',
      '{"z":1,"y":2,"x":"str","w":0}' },
    { "a Comment is data", '{"Comment": "hi", "a.$": "$.a"}', '{"Comment":"hi","a":1}' },
    { "a key that is only '.$' stays literal", '{".$": "$.a"}', '{".$":"$.a"}' },
    { "a scalar template", '"just text"', '"just text"' },
    { "an array template", '[{"a.$": "$.a"}]', '[{"a":1}]' },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      assert.equal(c[3], eval(c[2]))
    end)
  end

  it("copies literals so callers may modify results", function()
    local fn = assert(payload.compile(json.decode('{"lit": {"k": [1]}, "x.$": "$.a"}')))
    local r1 = fn(env)
    r1.lit.k[1] = 99
    assert.equal(1, fn(env).lit.k[1])
    local const = assert(payload.compile(json.decode('{"lit": {"k": [1]}}')))
    const(env).lit.k[1] = 99
    assert.equal(1, const(env).lit.k[1])
  end)

  it("does not modify the input", function()
    local fn = assert(payload.compile(json.decode('{"b.$": "$.b"}')))
    fn(env).b.c[1] = 100
    -- the selected node is shared (as AWS passes values), the template output is new
    env.input.b.c[1] = 1
    assert.equal('{"b":{"c":[1,2,3]}}', json.encode(fn(env)))
  end)

  it("a path with no match is States.Runtime with AWS's text", function()
    local fn = assert(payload.compile(json.decode('{"value.$": "$.no_such_jsonpath"}')))
    local ok, err = pcall(fn, { input = json.decode('{"int-literal":0}') })
    assert.is_false(ok)
    assert.same({ Error = errors.RUNTIME, Cause = "The JSONPath '$.no_such_jsonpath' specified for the field "
      .. "'value.$' could not be found in the input '{\"int-literal\":0}'" }, err)
  end)

  local bad = {
    { '{"x.$": 5}', "must be a string holding a JSONPath" },
    { '{"x.$": "plain"}', "must be a valid JSONPath or a valid intrinsic function call" },
    { '{"x.$": "$.a[", "y": 1}', "missing ']'" },
    { '{"x.$": "States.Nope()"}', "unknown intrinsic function" },
    { '{"x.$": "$.a", "x": 1}', "the field 'x' is given twice" },
    { '{"o": {"x.$": null}}', "/States/P/Parameters/o" },
  }
  for _, c in ipairs(bad) do
    it("rejects " .. c[1], function()
      local fn, msg = payload.compile(json.decode(c[1]), "/States/P/Parameters")
      assert.is_nil(fn)
      assert.matches(c[2], msg, 1, true)
      assert.matches("^/States/P/Parameters", msg)
    end)
  end

  it("is_template finds .$ keys at any depth", function()
    assert.is_true(payload.is_template(json.decode('{"a": [{"b.$": "$"}]}')))
    assert.is_false(payload.is_template(json.decode('{"a": [{"b": "$"}]}')))
  end)
end)

-- The corpus: cases whose definition is a single JSONPath Pass state, run through InputPath,
-- Parameters, Result, ResultPath and OutputPath with these modules.

local function run_pass(name, st, input)
  local ctx = corpus.context(name, input)
  local e = { input = input, context = ctx, vars = {} }
  local function check(v, err)
    if v == nil then error(err, 0) end
    return v
  end
  local eff = input
  if st.InputPath == json.null then eff = json.object({})
  elseif st.InputPath then eff = check(jsonpath.get(st.InputPath, input, e)) end
  if st.Parameters then
    e.input = eff
    eff = assert(payload.compile(st.Parameters))(e)
  end
  local result = eff
  if st.Result ~= nil then result = st.Result end
  local out = result
  if st.ResultPath == json.null then out = input
  elseif st.ResultPath then out = check(jsonpath.set(st.ResultPath, input, result)) end
  if st.OutputPath == json.null then out = json.object({})
  elseif st.OutputPath then out = check(jsonpath.get(st.OutputPath, out, e)) end
  return out
end

-- "<...>" tokens in a recorded cause match any text.
local function cause_matches(pattern, text)
  local lua_pat = "^" .. pattern:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"):gsub("<[^<>]*>", ".*") .. "$"
  return text:find(lua_pat) ~= nil
end

describe("the single-Pass JSONPath corpus cases", function()
  local root = corpus.shared_dir() .. "/conformance/asl"
  local found = 0
  for _, group in ipairs({ "base", "scenarios", "context_object", "comments" }) do
    local list = io.popen("ls " .. root .. "/" .. group .. " 2>/dev/null")
    for f in list:lines() do
      local fh = assert(io.open(root .. "/" .. group .. "/" .. f))
      local case = json.decode(fh:read("a"))
      fh:close()
      local def = case.definition
      local st = def.States[def.StartAt]
      if #json.keys(def.States) == 1 and st.Type == "Pass" and not def.QueryLanguage
          and not st.QueryLanguage and not st.Assign then
        found = found + 1
        it(group .. "/" .. f, function()
          local ok, out = pcall(run_pass, def.StartAt, st, case.input)
          if case.status == "SUCCEEDED" then
            assert(ok, errors.is(out) and out.Cause or tostring(out))
            local expected, got = case.output, out
            for _, p in ipairs(case.ignore_output_paths or {}) do
              if jsonpath.get(p, expected) ~= nil then
                expected = assert(jsonpath.set(p, expected, "<ignored>"))
                got = assert(jsonpath.set(p, got, "<ignored>"))
              end
            end
            assert.is_true(jsonpath.deep_equal(expected, got),
              "expected " .. json.encode(expected) .. " got " .. json.encode(got))
          else
            assert.is_false(ok)
            -- the engine adds the state prefix; the event id of the first state is 2
            local e = errors.in_state(out, def.StartAt, 2)
            assert.equal(case.error, e.Error)
            if case.cause_is_pattern then
              assert.is_true(cause_matches(case.cause, e.Cause), e.Cause)
            else
              assert.equal(case.cause, e.Cause)
            end
          end
        end)
      end
    end
    list:close()
  end
  if found == 0 then
    it("needs the shared conformance corpus", function()
      pending("no " .. root .. " (set EMRFLOW_SHARED); corpus cases skipped")
    end)
  end
end)
