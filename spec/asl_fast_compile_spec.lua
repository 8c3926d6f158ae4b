-- Compiling payload templates for the fast paths: templates of one form share their code,
-- keyset and size data (a definition of ten thousand states compiles ten thousand templates
-- of a few forms), constant objects inside them are made once per execution, and the checks
-- and errors stay those of the general compiler.
local json = require "emrflow.json"
local payload = require "emrflow.asl.payload"

local function template(step, extra)
  local text = '{"step":' .. step .. ',"kind":"k","flags":{"a":true,"b":"x"},"value.$":"$.value"'
  return json.decode(text .. (extra or "") .. "}")
end

describe("ASL payload templates compiled for the fast paths", function()
  it("share the shape function, keyset and size data across templates of one form", function()
    local fn1, shape1, R1, sizes1, sig1 = payload.compile_shape(template(1), "Parameters")
    local fn2, shape2, R2, sizes2, sig2 = payload.compile_shape(template(2), "Parameters")
    assert.are_not.equal(fn1, fn2)
    assert.are.equal(shape1, shape2)
    assert.are.equal(R1[1], R2[1]) -- the keyset
    assert.are.equal(sizes1, sizes2)
    assert.are.equal("ccki", sig1)
    assert.are.equal(sig1, sig2)
    local env = { input = json.decode('{"value":42}'), consts = {} }
    assert.are.equal('{"step":1,"kind":"k","flags":{"a":true,"b":"x"},"value":42}', json.encode(fn1(env)))
    assert.are.equal('{"step":2,"kind":"k","flags":{"a":true,"b":"x"},"value":42}', json.encode(fn2(env)))
  end)

  it("evaluate through shape and R as through fn, sizes included", function()
    local fn, shape, R, sizes = payload.compile_shape(template(7, ',"list":[1,{"z":null}],"o":{}'), "P")
    local P = {}
    for k = 1, #R do P[payload.SHAPE_BASE + k] = R[k] end
    local env = { input = json.decode('{"value":"v"}'), consts = {} }
    local a, b = fn(env), shape(env, P)
    assert.are.equal(json.encode(a), json.encode(b))
    assert.are.equal(#json.encode(a), payload.size(a, sizes, 262144) or json.size(a))
  end)

  it("make a constant object member once per execution, anew for the next", function()
    local fn = payload.compile_shape(template(1), "Parameters")
    local input = json.decode('{"value":1}')
    local run1, run2 = { input = input, consts = {} }, { input = input, consts = {} }
    local a, b, c = fn(run1), fn(run1), fn(run2)
    assert.are.equal(a.flags, b.flags)
    assert.are_not.equal(a.flags, c.flags)
    assert.are.same(a.flags, c.flags)
    assert.are_not.equal(fn({ input = input }).flags, fn({ input = input }).flags)
  end)

  it("evaluate large templates (beyond the generated code) and nested ones, in key order", function()
    local parts = {}
    for i = 1, 70 do
      parts[#parts + 1] = i % 7 == 0 and ('"d' .. i .. '.$":"$.v"') or ('"c' .. i .. '":{"n":' .. i .. '}')
    end
    local big = payload.compile(json.decode("{" .. table.concat(parts, ",") .. "}"), "P")
    local out = big({ input = json.decode('{"v":[1]}'), consts = {} })
    local keys = json.keys(out)
    assert.are.equal(70, #keys)
    assert.are.equal("c1", keys[1])
    assert.are.equal("d7", keys[7])
    assert.are.same({ 1 }, out.d70)
    assert.are.same({ n = 69 }, out.c69)
    local nested = payload.compile(json.decode('{"a":[{"b.$":"$.v"},2,{"c":{"d.$":"$.w"}}],"e":{}}'), "P")
    assert.are.equal('{"a":[{"b":1},2,{"c":{"d":"x"}}],"e":{}}',
      json.encode(nested({ input = json.decode('{"v":1,"w":"x"}') })))
  end)

  it("keep each member's kind when constant objects inside are compiled on the way", function()
    local t = json.decode('{"Name":"n","V.$":"$.v","J":{"S":{"E":"x9q","A":["60"]}},'
      .. '"C":{"A":[{"C":"s","P":{"a":"2"}}]},"T":[1]}')
    local fn, shape, R, _, sig = payload.compile_shape(t, "P")
    assert.are.equal("cikkt", sig)
    local P = {}
    for k = 1, #R do P[payload.SHAPE_BASE + k] = R[k] end
    local env = { input = json.decode('{"v":1}'), consts = {} }
    local want = '{"Name":"n","V":1,"J":{"S":{"E":"x9q","A":["60"]}},'
      .. '"C":{"A":[{"C":"s","P":{"a":"2"}}]},"T":[1]}'
    assert.are.equal(want, json.encode(fn(env)))
    assert.are.equal(want, json.encode(shape(env, P)))
  end)

  it("still report a field given twice and errors inside nested templates, with their place", function()
    local _, msg = payload.compile_shape(json.decode('{"a":1,"b":2,"a.$":"$.x"}'), "Parameters")
    assert.matches("Parameters: the field 'a' is given twice (as 'a' and 'a.$')", msg, 1, true)
    local keys = {}
    for i = 1, 20 do keys[#keys + 1] = '"k' .. i .. '":' .. i end
    _, msg = payload.compile_shape(json.decode("{" .. table.concat(keys, ",") .. ',"k3.$":"$.x"}'), "P")
    assert.matches("the field 'k3' is given twice", msg, 1, true)
    _, msg = payload.compile_shape(json.decode('{"o":{"p":[1,{"q.$":"nope"}]}}'), "Parameters")
    assert.matches("Parameters/o/p/1", msg, 1, true)
    assert.matches("nope", msg, 1, true)
  end)
end)
