-- Chains of common Pass states run in C (core.asl, src/l_asl.c) and must behave exactly as the
-- Lua path does: the same output, the same history (ids, previous ids, timestamps, payloads),
-- the same sink calls, the same errors at the same event, every YIELD_EVERY states a turn for
-- the host. An execution with an on_event callback always takes the Lua path, so each case
-- runs both ways and compares. No timing here (bench/asl_bench.lua, ../shared/bench/asl).
local asl = require "emrflow.asl"
local json = require "emrflow.json"
local runtime = require "emrflow.asl.runtime"

-- A chain S1 -> S2 -> ... of copies of the states in `pattern` (cycled), n states long
-- (names prefixed by `prefix`, default "S").
local function chain(n, pattern, prefix)
  prefix = prefix or "S"
  local states = {}
  for i = 1, n do
    local s = {}
    for k, v in pairs(pattern[(i - 1) % #pattern + 1]) do s[k] = v end
    if i < n then s.Next = prefix .. (i + 1) else s.End = true end
    states[prefix .. i] = s
  end
  return { StartAt = prefix .. "1", States = states }
end

-- Counts the calls Lua makes to the exec of each state of machine m (a chain) while fn runs.
local function exec_calls(m, fn)
  local calls = 0
  local st = m.program.start
  while st do
    local exec = st.exec
    st.exec = function(...) calls = calls + 1 return exec(...) end
    st = st.next
  end
  fn()
  return calls
end

-- Runs def on input (JSON text) with opts; the result as comparable text.
local function run(def, input, opts)
  local m = asl.load(def)
  local sunk = {}
  local o = { clock = "virtual", name = "x", start_time = 1700000000 }
  for k, v in pairs(opts or {}) do o[k] = v end
  if o.sink then
    o.sink = nil
    o.event_sink = function(desc, id, prev, payload, assigned, t)
      sunk[#sunk + 1] = table.concat({ desc.etype, tostring(desc.name), id, prev, json.encode(payload),
        tostring(assigned), tostring(t) }, " ")
    end
  end
  local x = m:start(json.decode(input), o)
  local status, out = x:wait()
  local events = {}
  for i, e in ipairs(x:history()) do events[i] = json.encode(e) end
  return { status = status, out = json.encode(out), events = events, sunk = sunk, n = x.rec:count() }
end

-- The same run on the Lua path (an on_event callback keeps it there) and on the C path.
local function both(def, input, opts)
  local seen = 0
  local lua_opts = { on_event = function() seen = seen + 1 end }
  for k, v in pairs(opts or {}) do lua_opts[k] = v end
  local by_lua, by_c = run(def, input, lua_opts), run(def, input, opts)
  assert.is_true(seen > 0)
  assert.are.same(by_lua, by_c)
  return by_c
end

local TEMPLATE = { Type = "Pass", ResultPath = "$.r", Parameters = {
  step = 1, kind = "k", flags = { a = true, b = "x" }, list = { 1, 2 }, ["value.$"] = "$.value",
  ["n.$"] = "States.MathAdd($.value, 1)" } }

describe("ASL: chains of Pass states in C", function()
  it("give the Lua path's output, history and sink calls, for every kind of Pass", function()
    local pattern = {
      TEMPLATE,
      { Type = "Pass", Result = { fixed = true }, ResultPath = "$.res" },
      { Type = "Pass", ResultPath = json.null },
      { Type = "Pass", Parameters = { [1] = "not", [2] = "an object" }, ResultPath = "$.arr" },
      { Type = "Pass" },
      { Type = "Pass", Parameters = { ["value.$"] = "$.value", ["payload.$"] = "$.payload" } },
      { Type = "Pass", Result = "plain", ResultPath = "$.s" },
    }
    local r = both(chain(40, pattern), '{"value":41,"payload":"xyz"}', { sink = true })
    assert.are.equal("SUCCEEDED", r.status)
    assert.are.equal(2 * 40 + 2, #r.events)
    assert.are.equal(#r.events, #r.sunk)
    local last = json.decode(r.out)
    assert.are.equal(41, last.value)
    assert.are.equal("plain", last.s)
  end)

  it("run in C: one Lua call for a whole chain, one per state with on_event", function()
    local m = asl.load(chain(100, { TEMPLATE }))
    local in_c = exec_calls(m, function()
      assert(m:run({ value = 1 }, { clock = "virtual" }) == "SUCCEEDED")
    end)
    local in_lua = exec_calls(m, function()
      assert(m:run({ value = 1 }, { clock = "virtual", on_event = function() end }) == "SUCCEEDED")
    end)
    assert.are.equal(1, in_c)
    assert.are.equal(100, in_lua)
  end)

  it("keep the key order of each output and leave each input unchanged", function()
    local def = chain(5, { { Type = "Pass", Parameters = { ["v.$"] = "$.v" }, ResultPath = "$.r" },
      { Type = "Pass", Result = 7, ResultPath = "$.w" } })
    local r = both(def, '{"w":1,"v":2}')
    assert.are.equal('{"w":7,"v":2,"r":{"v":2}}', r.out)
    assert.are.equal('{"w":1,"v":2}', json.decode(r.events[2]).stateEnteredEventDetails.input)
    assert.are.equal('{"w":1,"v":2,"r":{"v":2}}', json.decode(r.events[3]).stateExitedEventDetails.output)
    assert.are.equal('{"w":7,"v":2,"r":{"v":2}}', json.decode(r.events[5]).stateExitedEventDetails.output)
  end)

  it("fail at the same state with the same error when a path is missing mid-chain", function()
    local def = chain(6, { { Type = "Pass", Parameters = { ["v.$"] = "$.v" }, ResultPath = "$.r" } })
    def.States.S4.Parameters = { ["v.$"] = "$.missing" }
    local r = both(def, '{"v":1}')
    assert.are.equal("FAILED", r.status)
    local final = json.decode(r.events[#r.events])
    assert.are.equal("States.Runtime", final.executionFailedEventDetails.error)
    assert.matches("$.missing", final.executionFailedEventDetails.cause, 1, true)
    -- the failure follows S4's Entered event
    assert.are.equal("S4", json.decode(r.events[final.previousEventId]).stateEnteredEventDetails.name)
  end)

  it("fail as the Lua path does on a ResultPath '$.key' over an input that is not an object", function()
    local def = chain(4, { { Type = "Pass", Result = { 1, 2 }, ResultPath = "$" },
      { Type = "Pass", Result = 1, ResultPath = "$.k" } })
    local r = both(def, '{}')
    assert.are.equal("FAILED", r.status)
    assert.matches("ResultPathMatchFailure", r.events[#r.events], 1, true)
  end)

  it("fail on the 256 KiB limit at the same state", function()
    local big = string.rep("x", 100 * 1024)
    local def = chain(5, { { Type = "Pass", Parameters = { ["p.$"] = "$.p" }, ResultPath = "$.a" },
      { Type = "Pass", Parameters = { ["p.$"] = "$.p" }, ResultPath = "$.b" },
      { Type = "Pass", Parameters = { ["p.$"] = "$.p" }, ResultPath = "$.c" } })
    local r = both(def, json.encode({ p = big }))
    assert.are.equal("FAILED", r.status)
    assert.matches("States.DataLimitExceeded", r.events[#r.events], 1, true)
    assert.matches("S2", r.events[#r.events], 1, true)
  end)

  it("stop at the history limit with the same error and event count", function()
    local def = chain(50, { TEMPLATE })
    for _, limit in ipairs({ 7, 8, 60 }) do
      local r = both(def, '{"value":1}', { history_limit = limit })
      assert.are.equal("FAILED", r.status)
      assert.are.equal(limit, r.n)
      assert.matches("exceed the limit of " .. limit .. " events", r.events[#r.events], 1, true)
    end
  end)

  it("keep no events with history = false and still count them", function()
    local def = chain(30, { TEMPLATE })
    local r = both(def, '{"value":1}', { history = false })
    assert.are.equal("SUCCEEDED", r.status)
    assert.are.same({}, r.events)
    assert.are.equal(2 * 30 + 2, r.n)
  end)

  it("run inside Map iterations and Parallel branches as on the Lua path", function()
    local pattern = { TEMPLATE, { Type = "Pass", Result = "done", ResultPath = "$.d" } }
    local def = { StartAt = "P", States = {
      P = { Type = "Parallel", Branches = { chain(4, pattern, "A"), chain(5, pattern, "B") }, Next = "M" },
      M = { Type = "Map", ItemsPath = "$", ItemProcessor = chain(3, pattern, "C"), End = true },
    } }
    local r = both(def, '{"value":3}', { sink = true })
    assert.are.equal("SUCCEEDED", r.status)
    assert.are.equal(2, #json.decode(r.out))
  end)

  it("run chains entered again by a loop, and chains that join, as on the Lua path", function()
    local def = { StartAt = "Init", States = {
      Init = { Type = "Pass", Result = 0, ResultPath = "$.i", Next = "A1" },
      A1 = { Type = "Pass", Parameters = { ["v.$"] = "States.MathAdd($.i, 1)" }, ResultPath = "$.n",
        Next = "A2" },
      A2 = { Type = "Pass", Parameters = { ["v.$"] = "$.n.v" }, ResultPath = "$.m", Next = "A3" },
      A3 = { Type = "Pass", InputPath = "$", Parameters = { ["i.$"] = "$.m.v" }, ResultPath = "$.c",
        Next = "Bump" },
      Bump = { Type = "Pass", Parameters = { ["i.$"] = "$.c.i" }, ResultPath = "$.k", Next = "Copy" },
      Copy = { Type = "Pass", InputPath = "$.k", ResultPath = "$.k2", Next = "Back" },
      Back = { Type = "Pass", Parameters = { ["i.$"] = "$.k2.i", ["k2.$"] = "$.k2" }, ResultPath = "$.j",
        Next = "Loop" },
      Loop = { Type = "Choice", Choices = {
        { Variable = "$.j.i", NumericLessThan = 5, Next = "Again" } }, Default = "J1" },
      Again = { Type = "Pass", Parameters = { ["i.$"] = "$.j.i" }, ResultPath = "$.w", Next = "Set" },
      Set = { Type = "Pass", InputPath = "$.w", Next = "A1" },
      J1 = { Type = "Pass", Result = "end", ResultPath = "$.e", Next = "J2" },
      J2 = { Type = "Pass", ResultPath = json.null, End = true },
    } }
    local r = both(def, '{"x":1}', { sink = true })
    assert.are.equal("SUCCEEDED", r.status)
    assert.are.equal("end", json.decode(r.out).e)
  end)

  it("let the host run every YIELD_EVERY states along a chain", function()
    local n = runtime.YIELD_EVERY * 2 + 5
    local m = asl.load(chain(n, { TEMPLATE }))
    local x = m:start({ value = 1 }, { clock = "virtual" })
    local steps = 0
    while x:step() do steps = steps + 1 end
    assert.is_true(steps >= 2)
    local status, out = x:wait()
    assert.are.equal("SUCCEEDED", status)
    assert.are.equal(2, out.r.n)
    assert.are.equal(2 * n + 2, x.rec:count())
  end)
end)
