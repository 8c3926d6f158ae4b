-- The interpreter's fast paths (common Pass, Pass with Result, constant objects inside
-- templates, inline Map iterations) give the same results, events and sharing rules as the
-- general path, and still let the host run every so many states. No timing here: speed is
-- measured in bench/asl_bench.lua and ../shared/bench/asl.
local asl = require "emrflow.asl"
local json = require "emrflow.json"
local runtime = require "emrflow.asl.runtime"
local payload = require "emrflow.asl.payload"

local function chain(n, state)
  local states = {}
  for i = 1, n do
    local s = {}
    for k, v in pairs(state) do s[k] = v end
    if i < n then s.Next = "S" .. (i + 1) else s.End = true end
    states["S" .. i] = s
  end
  return { StartAt = "S1", States = states }
end

local function steps_until_done(x)
  local steps = 0
  while x:step() do steps = steps + 1 end
  return steps
end

describe("ASL fast paths", function()
  it("a long chain of common Pass states lets the host run every YIELD_EVERY states", function()
    local n = runtime.YIELD_EVERY * 3
    local m = asl.load(chain(n, { Type = "Pass", Parameters = { ["v.$"] = "$.v" }, ResultPath = "$.r" }))
    local x = m:start({ v = 1 }, { clock = "virtual", history = false })
    assert.is_true(steps_until_done(x) >= 2)
    local status, out = x:wait()
    assert.are.equal("SUCCEEDED", status)
    assert.are.same({ v = 1, r = { v = 1 } }, out)
  end)

  it("consecutive Pass states setting keys keep each output's key order and leave their inputs alone",
      function()
    local m = asl.load({ StartAt = "A", States = {
      A = { Type = "Pass", Parameters = { ["n.$"] = "$.v" }, ResultPath = "$.r", Next = "B" },
      B = { Type = "Pass", Parameters = { ["m.$"] = "$.r.n" }, ResultPath = "$.s", Next = "C" },
      C = { Type = "Pass", Parameters = { k = 3 }, ResultPath = "$.r", End = true },
    } })
    local x = m:start(json.decode('{"v":1,"w":2}'), { clock = "virtual" })
    local status, out = x:wait()
    assert.are.equal("SUCCEEDED", status)
    assert.are.equal('{"v":1,"w":2,"r":{"k":3},"s":{"m":1}}', json.encode(out))
    local outputs = {}
    for _, e in ipairs(x:history({ raw = true })) do
      if e.type == "PassStateExited" then
        outputs[#outputs + 1] = json.encode(e.stateExitedEventDetails.output)
      end
    end
    assert.are.same({ '{"v":1,"w":2,"r":{"n":1}}', '{"v":1,"w":2,"r":{"n":1},"s":{"m":1}}',
      '{"v":1,"w":2,"r":{"k":3},"s":{"m":1}}' }, outputs)
  end)

  it("a Pass with Result gives the Result at its ResultPath, with both events", function()
    local m = asl.load({ StartAt = "A", States = {
      A = { Type = "Pass", Result = { k = "v" }, ResultPath = "$.r", Next = "B" },
      B = { Type = "Pass", Result = "low", End = true },
    } })
    local x = m:start({ a = 1 }, { clock = "virtual" })
    local status, out = x:wait()
    assert.are.equal("SUCCEEDED", status)
    assert.are.equal("low", out)
    local h = x:history({ raw = true })
    local types = {}
    for i, e in ipairs(h) do types[i] = e.type end
    assert.are.same({ "ExecutionStarted", "PassStateEntered", "PassStateExited", "PassStateEntered",
      "PassStateExited", "ExecutionSucceeded" }, types)
    assert.are.equal('{"a":1,"r":{"k":"v"}}', json.encode(h[3].stateExitedEventDetails.output))
    assert.are.equal("low", h[5].stateExitedEventDetails.output)
    assert.are.equal(h[3].stateExitedEventDetails.output, h[4].stateEnteredEventDetails.input)
  end)

  it("constant objects inside Parameters are made for each execution, in template order", function()
    local def = json.decode([[{"StartAt": "A", "States": {"A": {"Type": "Pass", "Parameters":
      {"flags": {"z": true, "a": {"y": null, "b": [1, {"q": 2}]}}, "v.$": "$.v"}, "End": true}}}]])
    local m = asl.load(def)
    local _, out1 = m:start({ v = 1 }, { clock = "virtual" }):wait()
    assert.are.equal('{"flags":{"z":true,"a":{"y":null,"b":[1,{"q":2}]}},"v":1}', json.encode(out1))
    -- a caller changing one output does not change the next execution's
    json.set(out1.flags, "z", false)
    out1.flags.a.b[2].q = 3
    json.set(out1.flags.a, "new", 1)
    local _, out2 = m:start({ v = 2 }, { clock = "virtual" }):wait()
    assert.are.equal('{"flags":{"z":true,"a":{"y":null,"b":[1,{"q":2}]}},"v":2}', json.encode(out2))
    assert.are_not.equal(out1.flags, out2.flags)
  end)

  it("an inline Map with a Choice inside gives each iteration's result and its events", function()
    local m = asl.load({ StartAt = "M", States = { M = { Type = "Map", ItemsPath = "$.items",
      ItemSelector = { ["n.$"] = "$$.Map.Item.Value" },
      ItemProcessor = { StartAt = "C", States = {
        C = { Type = "Choice", Choices = { { Variable = "$.n", NumericGreaterThan = 1, Next = "H" } },
          Default = "L" },
        H = { Type = "Pass", Result = "high", End = true },
        L = { Type = "Pass", Result = "low", End = true },
      } }, ResultPath = "$.r", End = true } } })
    local x = m:start({ items = json.array { 0, 1, 2, 3 } }, { clock = "virtual" })
    local status, out = x:wait()
    assert.are.equal("SUCCEEDED", status)
    assert.are.same({ "low", "low", "high", "high" }, out.r)
    local counts = {}
    for _, e in ipairs(x:history()) do counts[e.type] = (counts[e.type] or 0) + 1 end
    assert.are.equal(4, counts.MapIterationStarted)
    assert.are.equal(4, counts.MapIterationSucceeded)
    assert.are.equal(4, counts.ChoiceStateEntered)
    assert.are.equal(4, counts.PassStateExited)
  end)

  it("a template result's size, from its evaluated members, is json.size of the result", function()
    local tpl = json.decode([[{"s": "q\"uo\u00e9te\n", "i": 12, "f": 1.5, "z": null, "b": false,
      "nested": {"a": [1, "x", {"k": -0.0}], "e": {}, "t": true}, "arr": [], "x.$": "$.x",
      "y.$": "$.y", "fmt.$": "States.Format('{}-{}', $.x, $.y)", "all.$": "$"}]])
    local fn, _, _, sizes = payload.compile_shape(tpl, "Parameters")
    assert.is_table(sizes)
    for _, input in ipairs({ { x = 1, y = "two" }, { x = json.array { 1, 2.25 }, y = "\1\t\"" },
      { x = json.object { k = json.null }, y = string.rep("w", 300) } }) do
      local r = fn({ input = json.decode(json.encode(input)) })
      assert.are.equal(#json.encode(r), payload.size(r, sizes))
    end
    -- a member that is left out: not known, so json.size is asked
    local r = json.object_of("s", "v")
    assert.is_nil(payload.size(r, sizes))
  end)

  it("a Parameters result past 256 KiB still fails the state with States.DataLimitExceeded", function()
    local function def(second_path)
      return { StartAt = "A", States = {
        A = { Type = "Pass", Parameters = { ["p.$"] = "$.pad", k = "v" }, ResultPath = "$.a", Next = "B" },
        B = { Type = "Pass", Parameters = { ["p.$"] = "$.pad", k = "v" }, ResultPath = second_path,
          End = true },
      } }
    end
    local input = { pad = string.rep("p", 100000) }
    -- B replaces A's result: the same size, under the quota
    assert.are.equal("SUCCEEDED", (asl.load(def("$.a")):start(input, { clock = "virtual" }):wait()))
    -- B adds a third copy of the pad: over it
    local status, err = asl.load(def("$.b")):start(input, { clock = "virtual" }):wait()
    assert.are.equal("FAILED", status)
    assert.are.equal("States.DataLimitExceeded", err.Error)
  end)

  it("templates whose keys hold NUL characters keep their own keys", function()
    local a = payload.compile(json.decode([[{"a\u0000b": 1, "c.$": "$.v"}]]))
    local b = payload.compile(json.decode([[{"a": 1, "b\u0000c.$": "$.v"}]]))
    assert.are.equal('{"a\\u0000b":1,"c":2}', json.encode(a({ input = { v = 2 } })))
    assert.are.equal('{"a":1,"b\\u0000c":2}', json.encode(b({ input = { v = 2 } })))
  end)

  it("an ItemSelector reading $$.Map.Item gives each item's index and value, with or without "
    .. "the rest of the context object", function()
    local function run(selector)
      local m = asl.load({ StartAt = "M", States = { M = { Type = "Map", ItemsPath = "$.items",
        ItemSelector = selector,
        ItemProcessor = { StartAt = "P", States = { P = { Type = "Pass", End = true } } },
        End = true } } })
      local status, out = m:start({ items = json.array { "a", json.null, 7 }, l = "L" }, { clock = "virtual",
        name = "run1" }):wait()
      assert.are.equal("SUCCEEDED", status)
      return json.encode(out)
    end
    assert.is_true(payload.reads_only_map_item({ ["v.$"] = "$$.Map.Item.Value",
      ["i.$"] = "$$.Map.Item.Index" }))
    assert.are.equal('[{"v":"a","i":0,"l":"L"},{"v":null,"i":1,"l":"L"},{"v":7,"i":2,"l":"L"}]',
      run(json.decode('{"v.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index", "l.$": "$.l"}')))
    -- other reads of the context object: the whole context object is made
    local other = json.decode('{"v.$": "$$.Map.Item.Value", "n.$": "$$.Execution.Name"}')
    assert.is_false(payload.reads_only_map_item(other))
    assert.are.equal('[{"v":"a","n":"run1"},{"v":null,"n":"run1"},{"v":7,"n":"run1"}]', run(other))
    local nested = json.decode('{"a": [{"i.$": "States.Format(\'{}\', $$.Map.Item.Index)"}]}')
    assert.is_false(payload.reads_only_map_item(nested))
    assert.are.equal('[{"a":[{"i":"0"}]},{"a":[{"i":"1"}]},{"a":[{"i":"2"}]}]', run(nested))
  end)
end)
