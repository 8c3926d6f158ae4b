-- JSONata's own test suite (../shared/conformance/jsonata, format in its TESTSUITE.md) run
-- against emrflow.jsonata: at least 99% of the cases pass, and every case that does not is
-- listed with its reason in doc/JSONATA-EXCLUSIONS.md (and every listed case still fails
-- or cannot be loaded, so the list never goes stale).
local json = require "emrflow.json"
local jsonata = require "emrflow.jsonata"
local value = require "emrflow.jsonata.value"

local SHARED = os.getenv("EMRFLOW_SHARED") or "../shared"
local ROOT = SHARED .. "/conformance/jsonata"
local EXCLUSIONS = "doc/JSONATA-EXCLUSIONS.md"

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

--- Every case of the suite: { name = "group/case001.json" or "group/file.json#2", case = table }
local function load_cases()
  local list = {}
  local p = assert(io.popen("cd '" .. ROOT .. "/groups' && find . -name '*.json' | LC_ALL=C sort"))
  for line in p:lines() do
    local rel = line:sub(3)
    local dir = rel:match("^(.*)/")
    local text = read(ROOT .. "/groups/" .. rel)
    local ok, t = pcall(json.decode, text)
    if not ok then
      -- a lone surrogate (\uD800) has no UTF-8 form: hand it to JSONata as its own escape
      -- sequence, which its string literals read the same way
      ok, t = pcall(json.decode, (text:gsub("\\u([dD][89abAB]%x%x)", "\\\\u%1")))
    end
    if not ok then
      list[#list + 1] = { name = rel, broken = "not loadable: " .. tostring(t) }
    elseif json.is_array(t) then
      for i, c in ipairs(t) do list[#list + 1] = { name = rel .. "#" .. i, case = c, dir = dir } end
    else
      list[#list + 1] = { name = rel, case = t, dir = dir }
    end
  end
  p:close()
  return list
end

local datasets = {}
local function dataset(name)
  if datasets[name] == nil then
    datasets[name] = json.decode(assert(read(ROOT .. "/datasets/" .. name .. ".json")))
  end
  return datasets[name]
end

--- Run one case: true, or false and why.
local function run_case(entry)
  if entry.broken then return false, entry.broken end
  local c = entry.case
  local expr = c.expr
  if expr == nil and c["expr-file"] then
    expr = read(ROOT .. "/groups/" .. entry.dir .. "/" .. c["expr-file"])
  end
  local input
  if c.data ~= nil then
    input = c.data
  elseif c.dataset ~= nil and c.dataset ~= json.null then
    input = dataset(c.dataset)
  end
  local bindings = {}
  if type(c.bindings) == "table" then
    for k, v in pairs(c.bindings) do bindings[k] = v end
  end
  local opts = { time_limit_ms = c.timelimit, max_depth = c.depth }
  local ok, r = pcall(jsonata.evaluate, expr, input, bindings, opts)
  local code = c.code or (type(c.error) == "table" and c.error.code)
  local token = c.token or (type(c.error) == "table" and c.error.token) or nil
  if code then
    if ok then return false, "expected error " .. code .. ", got a result" end
    if type(r) ~= "table" or r.code ~= code then
      return false, "expected " .. code .. ", got " .. tostring(r)
    end
    if token and r.token ~= token then
      return false, "expected token " .. token .. ", got " .. tostring(r.token)
    end
    return true
  end
  if not ok then return false, "error " .. tostring(r) end
  if c.undefinedResult then
    if r ~= nil then return false, "expected undefined" end
    return true
  end
  if not value.deep_equal(r, c.result) then
    local shown = pcall(json.encode, r) and json.encode(r) or tostring(r)
    return false, "expected " .. json.encode(c.result) .. ", got " .. shown
  end
  return true
end

local function load_exclusions()
  local text = read(EXCLUSIONS) or ""
  local list = {}
  for name, reason in text:gmatch("\n%- `([^`]+)`[^\n]-: ([^\n]+)") do list[name] = reason end
  return list
end

describe("JSONata test suite", function()
  local present = read(ROOT .. "/TESTSUITE.md") ~= nil

  it("passes at least 99% of the suite, and every case not listed as excluded", function()
    if not present then
      pending("JSONata suite not found at " .. ROOT .. " (set EMRFLOW_SHARED)")
      return
    end
    local excluded = load_exclusions()
    local cases = load_cases()
    local passed, unexpected, stale = 0, {}, {}
    for _, entry in ipairs(cases) do
      local ok, why = run_case(entry)
      if ok then
        passed = passed + 1
        if excluded[entry.name] then stale[#stale + 1] = entry.name end
      elseif not excluded[entry.name] then
        unexpected[#unexpected + 1] = entry.name .. ": " .. tostring(why)
      end
    end
    assert.is_true(#cases >= 1400, "suite has " .. #cases .. " cases")
    assert.are.same({}, unexpected)
    assert.are.same({}, stale)
    assert.is_true(passed >= 0.99 * #cases, passed .. " of " .. #cases .. " passed")
  end)

  it("lists every excluded case with a reason", function()
    local excluded = load_exclusions()
    for name, reason in pairs(excluded) do
      assert.is_truthy(name:match("^[%w%-]+/[%w%-]+%.json"), name)
      assert.is_true(#reason > 10, name .. " needs a reason")
    end
  end)
end)
