-- The recorded-from-AWS ASL corpus (../shared/conformance/asl): the pass count never drops.
local C = assert(loadfile("tools/conformance.lua"))("--library")

-- Achieved on the whole corpus; raise these when more cases pass, never lower them.
local JSONPATH_FLOOR = 752   -- of 752 JSONPath cases, strict (output, or error and cause)
local JSONATA_FLOOR = 113    -- of 113 JSONata cases, strict
local EVENTS_FLOOR = 390     -- of 391 cases recording history event types: the same types

describe("ASL conformance corpus", function()
  local dir = C.corpus_dir()
  local readme = io.open(dir .. "/README.md")
  if readme then readme:close() end

  it("passes at least the recorded floor", function()
    if not readme then
      pending("conformance corpus not found at " .. dir .. " (set EMRFLOW_SHARED)")
      return
    end
    local s = C.run {}
    local failing = {}
    for _, r in ipairs(s.results) do
      if not r.ok then failing[#failing + 1] = r.group .. "/" .. r.name .. ": " .. tostring(r.reason) end
    end
    local detail = table.concat(failing, "\n")
    assert.are.equal(752, s.jsonpath_total)
    assert.are.equal(113, s.jsonata_total)
    assert.is_true(s.jsonpath_passed >= JSONPATH_FLOOR, detail)
    assert.is_true(s.jsonata_passed >= JSONATA_FLOOR, detail)
    assert.is_true(s.events_ok >= EVENTS_FLOOR, ("history event types match in %d/%d cases")
      :format(s.events_ok, s.events_total))
  end)

  it("compares outputs as unordered JSON with numbers by value", function()
    local json = require "emrflow.json"
    assert.is_true(C.equal(json.decode('{"a":1,"b":[1,2.0]}'), json.decode('{"b":[1.0,2],"a":1.0}')))
    assert.is_false(C.equal(json.decode('[1,2]'), json.decode('[2,1]')))
    assert.is_false(C.equal(json.decode('{}'), json.decode('[]')))
    assert.is_false(C.equal(json.decode('{"a":null}'), json.decode('{}')))
  end)
end)
