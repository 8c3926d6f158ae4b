-- A small, seeded fuzz test of loading, validating and running: mutated definitions and inputs
-- must give a located problem or an ASL result, never a Lua error text ("file.lua:N") and never
-- a raise from asl.validate.
local asl = require "emrflow.asl"
local json = require "emrflow.json"

local SEED = 20261207
local ROUNDS = 4000

local BASE = [[{"Comment": "fuzz", "StartAt": "A", "States": {
  "A": {"Type": "Pass", "Parameters": {"v.$": "$.v", "n": 1, "s.$": "States.Format('x{}', $.v)"},
        "ResultPath": "$.r", "Next": "C"},
  "C": {"Type": "Choice", "Choices": [{"Variable": "$.r.v", "NumericGreaterThan": 1, "Next": "M"}],
        "Default": "W"},
  "W": {"Type": "Wait", "Seconds": 1, "Next": "M"},
  "M": {"Type": "Map", "ItemsPath": "$.l", "ItemSelector": {"i.$": "$$.Map.Item.Value"},
        "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Pass", "End": true}}},
        "ResultPath": "$.m", "Next": "P"},
  "P": {"Type": "Parallel", "Branches": [{"StartAt": "B", "States": {"B": {"Type": "Succeed"}}}],
        "OutputPath": "$[0]", "Next": "F"},
  "F": {"Type": "Fail", "Error": "E", "Cause": "c"}}}]]

-- Characters and fragments the mutations insert: JSON and JSONPath syntax, intrinsics, odd bytes.
local FRAGMENTS = { "$", "$.", "$$", "[", "]", "{", "}", "\"", "'", ",", ":", "(", ")", "*", "?", "@",
  "States.Array(", "States.MathRandom(1, 9223372036854775807)", "$[?(@.v =~ /[a%]/)]", "..", "\\",
  "\255", "0", "-1", "1e999", "null", "true", "[]", "{}", "End", "Next", "Type", "Map" }

-- The spans of BASE's quoted strings (keys and values): replacing one's content keeps the JSON
-- valid more often than byte edits do, so more mutants get past the parser into the checks.
local SPANS = {}
do
  local i = 1
  while true do
    local a = BASE:find('"', i, true)
    if not a then break end
    local b = BASE:find('"', a + 1, true)
    SPANS[#SPANS + 1] = { a + 1, b - 1 }
    i = b + 1
  end
end

local function mutate_value(text, rnd)
  local span = SPANS[rnd(1, #SPANS)]
  local parts = {}
  for k = 1, rnd(1, 3) do
    local frag = FRAGMENTS[rnd(1, #FRAGMENTS)]
    parts[k] = (frag:gsub('[\\"]', ""))
  end
  return text:sub(1, span[1] - 1) .. table.concat(parts) .. text:sub(span[2] + 1)
end

local function mutate(text, rnd)
  if rnd(1, 2) == 1 then return mutate_value(text, rnd) end
  local n = rnd(1, 2)
  for _ = 1, n do
    local at = rnd(1, #text)
    local op = rnd(1, 3)
    if op == 1 then
      text = text:sub(1, at - 1) .. text:sub(at + rnd(1, 4))
    else
      local frag = FRAGMENTS[rnd(1, #FRAGMENTS)]
      text = text:sub(1, at - 1) .. frag .. text:sub(op == 2 and at or at + 1)
    end
  end
  return text
end

local function leaks_lua(text)
  return type(text) == "string" and text:find("%.lua:%d+") ~= nil
end

describe("emrflow.asl fuzzing (seeded)", function()
  it("never raises from validate, never shows a Lua location, never hangs on the virtual clock", function()
    math.randomseed(SEED)
    local rnd = math.random
    local leaks, loaded, ran = {}, 0, 0
    for round = 1, ROUNDS do
      local text = mutate(BASE, rnd)
      local ok, problems = pcall(asl.validate, text)
      if not ok then
        leaks[#leaks + 1] = ("round %d: validate raised %s"):format(round, tostring(problems))
      else
        for _, p in ipairs(problems) do
          if leaks_lua(p.message) then leaks[#leaks + 1] = ("round %d: %s"):format(round, p.message) end
        end
      end
      local lok, m = pcall(asl.load, text)
      if not lok then
        if leaks_lua(tostring(m)) then leaks[#leaks + 1] = ("round %d: %s"):format(round, tostring(m)) end
      else
        loaded = loaded + 1
        local input = json.decode('{"v": 2, "l": [1, 2, 3]}')
        local rok, status, out = pcall(m.run, m, input, { clock = "virtual" })
        if not rok then
          leaks[#leaks + 1] = ("round %d: run raised %s"):format(round, tostring(status))
        else
          ran = ran + 1
          if status ~= "SUCCEEDED" and type(out) == "table" and leaks_lua(out.Cause) then
            leaks[#leaks + 1] = ("round %d: %s"):format(round, out.Cause)
          end
        end
      end
    end
    assert.are.same({}, leaks)
    -- the mutations are small: a good share of the machines still load and run
    assert.is_true(loaded > ROUNDS / 50, "loaded " .. loaded)
    assert.are.equal(loaded, ran)
  end)
end)
