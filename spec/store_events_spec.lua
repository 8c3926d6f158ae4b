-- emrflow.store.events: the compact group format reads back exactly what was recorded.
local events = require "emrflow.store.events"
local history = require "emrflow.asl.history"
local json = require "emrflow.json"

local T0 = 1733560000

local function state_event(id, etype, key, name, field, payload, assigned, t, prev)
  local d = json.object_of("name", name, field, payload, "assignedVariables", assigned)
  local e = { id = id, previousEventId = prev or (id - 1), timestamp = t or T0, type = etype }
  e[key] = d
  return e
end

local function entered(id, name, input, t) return state_event(id, "PassStateEntered",
  "stateEnteredEventDetails", name, "input", input, nil, t) end
local function exited(id, name, output, assigned, t) return state_event(id, "PassStateExited",
  "stateExitedEventDetails", name, "output", output, assigned, t) end

-- A group of the compact format holding list, and its bytes.
local function compact(list)
  local g = events.group()
  for _, e in ipairs(list) do g:add(e) end
  return g:bytes(), g
end

-- What the store reads back, as one JSON text (key order included).
local function read_back(bytes, after) return json.encode(events.decode(bytes, after)) end

-- The reference: the same events written in the first format.
local function reference(list, after) return read_back((events.encode(list)), after) end

describe("emrflow.store.events", function()
  it("reads back a group exactly as the first format does", function()
    local p0 = json.object_of("value", 42, "payload", json.object_of("a", 1, "b", "two"))
    local p1 = json.copy_shallow(p0, "last", json.object_of("step", 1))
    local p2 = json.copy_shallow(p1, "last", json.object_of("step", 2))
    local list = {
      { id = 1, previousEventId = 0, timestamp = T0, type = "ExecutionStarted",
        executionStartedEventDetails = json.object_of("input", p0, "roleArn", "arn:r") },
      entered(2, "A", p0), exited(3, "A", p1),
      entered(4, "B", p1, T0 + 0.25), exited(5, "B", p2, json.object_of("x", json.array { 1 })),
      entered(6, "C", false), exited(7, "C", json.null),
      state_event(8, "PassStateExited", "stateExitedEventDetails", "D", "output", nil,
        json.object_of("v", 1)),
      { id = 9, previousEventId = 4, timestamp = T0 + 1, type = "MapIterationStarted",
        mapIterationStartedEventDetails = json.object_of("name", "M", "index", 3) },
      { id = 10, previousEventId = 9, timestamp = T0 + 1, type = "WaitStateAborted" },
      { id = 11, previousEventId = 10, timestamp = T0 + 2, type = "ExecutionSucceeded",
        executionSucceededEventDetails = json.object_of("output", p2) },
    }
    local bytes, g = compact(list)
    assert.same({ 11, 1, 11 }, { g.n, g.first, g.last })
    assert.equal(0, string.unpack("<I4", bytes))      -- the compact format's mark
    assert.equal(reference(list), read_back(bytes))
    assert.equal(reference(list, 6), read_back(bytes, 6))
    local h = events.decode(bytes)
    assert.equal('{"value":42,"payload":{"a":1,"b":"two"},"last":{"step":2}}',
      h[5].stateExitedEventDetails.output)
    assert.same({ x = "[1]" }, h[5].stateExitedEventDetails.assignedVariables)
    assert.equal(4, h[9].previousEventId)
    assert.equal(T0 + 0.25, h[4].timestamp)
  end)

  it("keeps key order and members exactly, whatever way a payload was changed", function()
    local base = json.object_of("a", 1, "b", json.object_of("c", 2, "k", "kept"), "d", "x")
    local replaced = json.copy_shallow(base, "b", 3)
    local appended = json.copy_shallow(replaced, "e", true)
    local removed = json.copy_shallow(appended, "a", nil)
    local raw = json.copy_shallow(removed)
    raw.z = "set without json.set"                  -- encoded after the recorded keys
    local same_keys = json.copy_shallow(raw)
    -- members of members: a copy of the member with one of its own replaced, or not
    local deep = json.copy_shallow(base, "b", json.copy_shallow(base.b, "c", json.array { 3 }))
    local deeper = json.copy_shallow(deep, "b", json.copy_shallow(deep.b, "c", json.array { 4 }))
    local odd_member = json.copy_shallow(deeper.b)
    odd_member.y = "set without json.set"
    local odd = json.copy_shallow(deeper, "b", odd_member)
    -- tables of another metatable (encoded with their keys sorted), and arrays
    local class = {}
    local plain1 = setmetatable({ z = 1, a = json.array { 1 }, m = "same" }, class)
    local plain2 = setmetatable({ z = 2, a = plain1.a, m = "same" }, class)
    local list, id = {}, 0
    for i, p in ipairs { base, replaced, appended, removed, raw, same_keys, replaced, base,
      deep, deeper, odd, deeper, plain1, plain2, json.array { 1, 2 }, json.array { 1, 3 } } do
      id = id + 1
      list[id] = entered(id, "S" .. i, p)
      id = id + 1
      list[id] = exited(id, "S" .. i, p)
    end
    local bytes = compact(list)
    assert.equal(reference(list), read_back(bytes))
    local h = events.decode(bytes)
    assert.equal('{"b":3,"d":"x","e":true,"z":"set without json.set"}',
      h[11].stateEnteredEventDetails.input)
    assert.equal('{"a":1,"b":{"c":[4],"k":"kept"},"d":"x"}', h[19].stateEnteredEventDetails.input)
    assert.equal('{"a":1,"b":{"c":[4],"k":"kept","y":"set without json.set"},"d":"x"}',
      h[21].stateEnteredEventDetails.input)
    assert.equal('{"a":[1],"m":"same","z":2}', h[27].stateEnteredEventDetails.input)
    assert.equal("[1,3]", h[31].stateEnteredEventDetails.input)
  end)

  it("keeps a chain of states small: a record of a few bytes, a payload as what changed", function()
    -- as Pass states with Parameters and a ResultPath make them: objects of one shape
    local shape = json.keyset("value", "step", "label")
    local list, p = {}, json.object_of("value", 42, "payload", json.object_of("a", 1, "b", "two"),
      "last", json.object_from(shape, 42, 0, "step"))
    for i = 1, 500 do
      list[#list + 1] = entered(#list + 1, "S" .. i, p)
      p = json.copy_shallow(p, "last", json.object_from(shape, 42, i, "step"))
      list[#list + 1] = exited(#list + 1, "S" .. i, p)
    end
    local bytes = compact(list)
    assert.equal(reference(list), read_back(bytes))
    local first_format = events.encode(list)
    assert.is_true(#bytes * 5 < #first_format, #bytes .. " bytes, first format " .. #first_format)
    assert.is_true(#bytes < 1000 * 20, #bytes .. " bytes for 1000 events")
  end)

  it("refuses ids that are not consecutive, and values JSON cannot hold when written", function()
    local g = events.group()
    g:add(entered(1, "A", 1))
    assert.has_error(function() g:add(exited(3, "A", 2)) end,
      "emrflow.store: events must come with consecutive ids (3 after 1)")
    assert.equal(1, g.n)
    g:add(exited(2, "A", function() end))
    assert.has_error(function() g:texts() end)
    g:reset()
    assert.equal(0, g.n)
    g:add({ id = 5, previousEventId = 4, timestamp = "later", type = "PassStateEntered" })
    local ok, err = pcall(g.texts, g)
    assert.is_false(ok)
    assert.matches("timestamp of event 5 is not a number", err)
  end)

  describe("sink", function()
    -- Events as emrflow.asl.history hands them to a sink, and the same events expanded.
    local function chain(n)
      local calls, list, p = {}, {}, json.object_of("n", 0)
      local function add(desc, payload, t)
        local id = #calls + 1
        calls[id] = { desc, id, id - 1, payload, nil, t }
        local e = { id = id, previousEventId = id - 1, timestamp = t, type = desc.etype }
        if desc.field then
          e[desc.key] = json.object_of("name", desc.name, desc.field, payload)
        elseif desc.key and payload ~= false then
          e[desc.key] = payload
        end
        list[id] = e
      end
      add(history.descriptor("ExecutionStarted", "executionStartedEventDetails"),
        json.object_of("input", p), T0)
      for i = 1, n do
        add(history.descriptor("PassStateEntered", "stateEnteredEventDetails", "S" .. i), p, T0 + i)
        p = json.copy_shallow(p, "n", i)
        add(history.descriptor("PassStateExited", "stateExitedEventDetails", "S" .. i), p, T0 + i)
      end
      add(history.descriptor("MapIterationStarted", "mapIterationStartedEventDetails", "M"), 7, T0 + n)
      add(history.descriptor("ExecutionSucceeded", "executionSucceededEventDetails"),
        json.object_of("output", p), T0 + n)
      return calls, list
    end

    it("packs each event as the expanded event would be, hands notable ones to Lua", function()
      local calls, list = chain(5)
      local g = events.group()
      local owner, slow, full = { enabled = true }, {}, 0
      local sink = events.sink(g, owner, { ExecutionSucceeded = true },
        function(desc, id) slow[#slow + 1] = desc.etype .. "#" .. id end,
        function() full = full + 1 end, 4)
      for i = 1, #calls - 1 do sink(table.unpack(calls[i], 1, 6)) end
      sink(table.unpack(calls[#calls], 1, 6))
      assert.same({ "ExecutionSucceeded#" .. #calls }, slow)
      assert.equal(#calls - 1, g.n)
      assert.equal(#calls - 1 - 3, full)            -- from the 4th event on, each one
      local packed = table.move(list, 1, #list - 1, 1, {})
      assert.equal(reference(packed), read_back(g:bytes()))
      -- switched off: events are ignored
      owner.enabled = false
      sink(table.unpack(calls[1], 1, 6))
      assert.equal(#calls - 1, g.n)
    end)

    it("packs events of descriptors made as plain tables as those of history.descriptor", function()
      -- history.descriptor files its fields in C when it makes one; a table made otherwise is
      -- read by the sink when first met
      local calls = chain(50)
      local function packed(copy)
        local g = events.group()
        local sink = events.sink(g, { enabled = true }, {}, error, function() end, 1e6)
        for _, c in ipairs(calls) do
          local desc = c[1]
          if copy then
            desc = { etype = desc.etype, key = desc.key, name = desc.name, field = desc.field }
          end
          sink(desc, c[2], c[3], c[4], c[5], c[6])
        end
        return g:bytes()
      end
      assert.equal(read_back(packed(false)), read_back(packed(true)))
      assert.equal(packed(false), packed(true))
    end)

    it("packs the same events alike run after run, however many descriptors it has met", function()
      -- a machine run again meets its descriptors again (kept in C by address); past
      -- some tens of thousands the cache starts over
      local calls, list = chain(30000)
      for _ = 1, 2 do
        local g = events.group()
        local groups = {}
        local sink = events.sink(g, { enabled = true }, {}, error, function()
          groups[#groups + 1] = g:bytes()
          g:reset()
        end, 1000)
        for i = 1, #calls do sink(table.unpack(calls[i], 1, 6)) end
        groups[#groups + 1] = g:bytes()
        assert.equal(#calls, 60003)
        local back = json.array {}
        for _, bytes in ipairs(groups) do events.decode(bytes, 0, back) end
        assert.equal(#list, #back)
        for _, i in ipairs { 1, 2, 3, 29999, 30000, 59999, 60000, #list - 1, #list } do
          assert.equal(json.encode(events.decode((events.encode({ list[i] })))[1]),
            json.encode(back[i]))
        end
      end
    end)

    -- A chain of n Pass states (every third with a long name, more than a descriptor keeps
    -- inline), state i made by pattern(i).
    local function pass_chain(n, pattern)
      local function name(i) return (i % 3 == 0) and ("AStateNameLongerThanTwentyTwo" .. i) or ("S" .. i) end
      local states = {}
      for i = 1, n do
        local st = pattern(i)
        st.Type = "Pass"
        if i < n then st.Next = name(i + 1) else st.End = true end
        states[name(i)] = st
      end
      return { StartAt = "S1", States = states }
    end

    -- The groups a run of m on input records through the store's sink (written every 7
    -- events; the owner turns the sink off after off_after groups), the events handed to
    -- Lua, and the execution. wrap: the engine is given a Lua function calling the sink.
    local function record(m, input, wrap, off_after)
      local g = events.group()
      local owner, groups, slow = { enabled = true }, {}, {}
      local sink = events.sink(g, owner, { ExecutionSucceeded = true },
        function(desc, id) slow[#slow + 1] = desc.etype .. "#" .. id end,
        function()
          groups[#groups + 1] = g:bytes()
          g:reset()
          if #groups == off_after then owner.enabled = false end
        end, 7)
      local es = sink
      if wrap then es = function(...) return sink(...) end end
      local x = m:start(json.decode(input), { clock = "virtual", start_time = T0, event_sink = es })
      assert.equal("SUCCEEDED", (x:wait()))
      if g.n > 0 then groups[#groups + 1] = g:bytes() end
      return groups, slow, x
    end

    it("packs what the ASL engine's loop of Pass states hands it in C as calls of it pack", function()
      -- the interpreter's C loop (src/l_asl.c) recognises this sink and adds events to its
      -- group without calling it (and tells it which member a ResultPath replaced); a Lua
      -- function around the sink takes the called path, which compares every member
      local asl = require "emrflow.asl"
      local cases = {
        { 60, '{"value":42}', function(i) return { ResultPath = "$.r",
          Parameters = { step = i, flags = { a = true, n = i % 2 }, ["value.$"] = "$.value" } } end },
        -- r the only member (a delta needs another that stays); a result equal to the old one
        { 20, '{}', function(i) return { ResultPath = "$.r", Result = { a = i % 2 } } end },
        { 20, '{"v":1}', function(i) return { ResultPath = "$.r",
          Result = (i % 4 < 2) and "same" or { a = i } } end },
        -- members added, a null result, results that are not objects, the whole input kept
        { 24, '{"v":[1,2]}', function(i)
          local k = i % 6
          if k == 0 then return { ResultPath = "$.k" .. i, Result = i } end
          if k == 1 then return { ResultPath = "$.r", Parameters = { ["x.$"] = "$.v" } } end
          if k == 2 then return { ResultPath = "$.v", Result = { i, i + 1 } } end
          if k == 3 then return { ResultPath = json.null } end
          if k == 4 then return { ResultPath = "$.r", Parameters = { ["v.$"] = "$.v" } } end
          return { ResultPath = "$.r", Result = json.null }
        end },
      }
      for _, case in ipairs(cases) do
        local n, input = case[1], case[2]
        local m = asl.load(pass_chain(n, case[3]))
        local direct, slow_d, x = record(m, input, false)
        local called, slow_c = record(m, input, true)
        assert.same(called, direct)
        assert.same(slow_c, slow_d)
        assert.same({ "ExecutionSucceeded#" .. (2 * n + 2) }, slow_d)
        -- and the groups read back as the engine's history (but the last event, notable)
        local back = json.array {}
        for _, bytes in ipairs(direct) do events.decode(bytes, 0, back) end
        local h = x:history()
        assert.equal(#h - 1, #back)
        for i = 1, #back do
          assert.same(json.decode(json.encode(h[i])), json.decode(json.encode(back[i])))
        end
        -- switched off by its owner mid-chain: the events after are left out alike
        local d2 = record(m, input, false, 3)
        local c2 = record(m, input, true, 3)
        assert.equal(3, #d2)
        assert.same(c2, d2)
      end
    end)
  end)
end)
