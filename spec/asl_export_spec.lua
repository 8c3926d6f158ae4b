-- machine:to_json writes a readable definition: StartAt first, then states as they are reached,
-- every state's fields in one order; asl.null / asl.array / asl.object for Lua definitions.
local asl = require "emrflow.asl"
local json = require "emrflow.json"

-- The keys of an object member of `text`'s JSON in the order the text lists them.
local function key_order(text, pattern)
  local out = {}
  for k in text:gmatch(pattern) do out[#out + 1] = k end
  return out
end

describe("emrflow.asl export", function()
  it("lists StartAt's state first, then states in the order they are reached", function()
    local text = asl.load([[{"States": {
      "Z": {"Type": "Succeed"},
      "Fallback": {"Type": "Fail", "Error": "E"},
      "B": {"Next": "Z", "Type": "Pass"},
      "A": {"Type": "Choice", "Default": "Fallback",
            "Choices": [{"Variable": "$.x", "IsPresent": true, "Next": "B"}]}},
      "StartAt": "A"}]]):to_json()
    assert.are.same({ "A", "B", "Z", "Fallback" }, key_order(text, '\n    "(%w+)": {'))
    assert.truthy(text:find('^{\n  "StartAt": "A",\n  "States": {'), text)
  end)

  it("writes every state type's fields in the same order, whatever order they came in", function()
    local text = asl.load {
      StartAt = "T", States = {
        T = { End = true, Retry = { { ErrorEquals = { "X" } } }, ResultPath = "$.r",
          Parameters = { b = 1, a = 2 },
          Resource = "arn:aws:states:::sns:publish", Comment = "c", Type = "Task" },
      } }:to_json()
    assert.are.same({ "Type", "Comment", "Resource", "Parameters", "ResultPath", "Retry", "End" },
      key_order(text, '\n      "(%w+)":'))
    local m = asl.load(text)
    assert.are.equal(text, m:to_json())
  end)

  it("keeps a payload's own key order", function()
    local text = asl.load([[{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true,
      "Parameters": {"zeta": 1, "alpha": 2}}}}]]):to_json()
    assert.truthy(text:find('"zeta": 1,%s*"alpha": 2'), text)
  end)

  it("re-exports emrflow.json's null, array and object", function()
    assert.are.equal(json.null, asl.null)
    local m = asl.load { StartAt = "P", States = { P = { Type = "Pass", End = true,
      Result = { empty_list = asl.array {}, empty_map = asl.object {}, none = asl.null } } } }
    local status, out = m:run({}, { clock = "virtual" })
    assert.are.equal("SUCCEEDED", status)
    assert.are.equal('{"empty_list":[],"empty_map":{},"none":null}', json.encode(out))
  end)
end)
