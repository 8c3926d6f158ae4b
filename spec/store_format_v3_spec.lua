-- The compact group format, version 3 (src/ef_store.h): a member replaced by an integer or
-- a boolean is kept in the record's delta shape, not among the group's JSON values. Groups
-- of version 2, in stores written before, read back as they did.
local events = require "emrflow.store.events"
local json = require "emrflow.json"

local T0 = 1733560000

local function state_event(id, etype, key, field, payload)
  local e = { id = id, previousEventId = id - 1, timestamp = T0, type = etype }
  e[key] = json.object_of("name", "S", field, payload)
  return e
end
local function entered(id, input)
  return state_event(id, "PassStateEntered", "stateEnteredEventDetails", "input", input)
end
local function exited(id, output)
  return state_event(id, "PassStateExited", "stateExitedEventDetails", "output", output)
end

-- What the store reads back of a group, as one JSON text (key order included).
local function read_back(bytes) return json.encode(events.decode(bytes)) end

-- A group's version and its values' JSON text.
local function version_and_values(bytes)
  local _, version, _, ns, nv, pos = string.unpack("<I4Bi8I4I4", bytes)
  return version, bytes:sub(pos + ns, pos + ns + nv - 1)
end

describe("emrflow.store.events: group format 3", function()
  it("keeps integers and booleans replaced in a payload in the records, and reads them back", function()
    local p = json.decode('{"a":1,"r":{"n":0,"f":true,"x":1.5,"s":"s","z":null},"t":"keep"}')
    local list = { entered(1, p) }
    local changes = {
      { "n", 1 }, { "n", -1 }, { "n", math.maxinteger }, { "n", math.mininteger }, { "n", 0 },
      { "f", false }, { "f", true }, { "x", 2.5 }, { "x", 3 }, { "s", "t" }, { "z", 7 },
      { "z", json.null }, { "n", json.object_of("deep", 1) }, { "n", 300 }, { "n", 2 ^ 53 },
    }
    for i, c in ipairs(changes) do
      p = json.copy_shallow(p, "r", json.copy_shallow(p.r, c[1], c[2]))
      list[#list + 1] = exited(i + 1, p)
    end
    p = json.copy_shallow(p, "a", false)   -- a member of the payload itself
    list[#list + 1] = exited(#list + 1, p)
    local g = events.group()
    for _, e in ipairs(list) do g:add(e) end
    local bytes = g:bytes()
    local version, values = version_and_values(bytes)
    assert.equal(3, version)
    -- the first payload, then only what is neither an integer nor a boolean
    assert.equal('[{"a":1,"r":{"n":0,"f":true,"x":1.5,"s":"s","z":null},"t":"keep"},2.5,"t",null,'
      .. '{"deep":1},9007199254740992.0]', values)
    -- read back exactly as the first format keeps the same events
    assert.equal(read_back((events.encode(list))), read_back(bytes))
    local back = events.decode(bytes)
    assert.equal(math.mininteger, json.decode(back[5].stateExitedEventDetails.output).r.n)
    assert.equal(math.type(3), math.type(json.decode(back[10].stateExitedEventDetails.output).r.x))
  end)

  it("reads a group of version 2 (the shapes of stores written before) as it was", function()
    -- hand-made: Entered with a payload in full; Exited with r.n replaced (a nested delta:
    -- code 1 + 1 members in version 2, which means true in version 3); Exited with a = true
    local strings = json.encode(json.array { "PassStateEntered", "stateEnteredEventDetails",
      "PassStateExited", "stateExitedEventDetails", "r", "n", "a" })
    local values = '[{"a":1,"r":{"n":1,"f":true}},2,true]'
    local function record(flags, kind, etype, key, rest)
      return string.pack("BBBB", flags, kind, etype, key) .. rest
    end
    local body = record(0x19, 1, 1, 2, string.pack("<d", T0) .. "\2S1")
      .. record(0x23, 2, 3, 4, "\1\5\2\6\0")
      .. record(0x23, 2, 3, 4, "\1\7\0")
    local bytes = string.pack("<I4Bi8I4I4", 0, 2, 1, #strings, #values) .. strings .. values .. body
    local back = events.decode(bytes)
    assert.equal(3, #back)
    assert.equal('{"a":1,"r":{"n":1,"f":true}}', back[1].stateEnteredEventDetails.input)
    assert.equal('{"a":1,"r":{"n":2,"f":true}}', back[2].stateExitedEventDetails.output)
    assert.equal('{"a":true,"r":{"n":2,"f":true}}', back[3].stateExitedEventDetails.output)
    assert.equal("S1", back[3].stateExitedEventDetails.name)
    assert.same({ 1, 2, 3 }, { back[1].id, back[2].id, back[3].id })
  end)

  it("refuses a group of a version it does not know", function()
    local g = events.group()
    g:add(entered(1, json.object_of("a", 1)))
    local bytes = g:bytes()
    local ok, err = pcall(events.decode, bytes:sub(1, 4) .. "\4" .. bytes:sub(6))
    assert.is_false(ok)
    assert.matches("unknown format %(version 4%)", err)
  end)
end)
