-- Runs the ASL conformance corpus (../shared/conformance/asl, or $EMRFLOW_SHARED/conformance/asl)
-- against emrflow.asl and prints pass counts per group.
--
--   lua5.4 tools/conformance.lua [--group NAME] [--case SUBSTRING] [--diff] [--list]
--                                [--no-report] [--corpus DIR]
--
-- Comparison follows the corpus README: status must match; outputs compare as JSON values
-- (object key order ignored, numbers by value) after removing ignore_output_paths; error and
-- cause compare exactly (null = absent), or as patterns where <...> matches any text when
-- cause_is_pattern / error_is_pattern is set. A case whose definition uses QueryLanguage
-- JSONata is expected to fail with the "JSONata is not supported yet" error and is counted
-- apart. Writes bench/CONFORMANCE.md (the failing cases and why) unless --no-report.

local script = arg and arg[0] or "tools/conformance.lua"
local ROOT = script:match("^(.*)/tools/[^/]*$") or "."
package.path = ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;" .. package.path
package.cpath = ROOT .. "/build/?.so;" .. package.cpath

local json = require "emrflow.json"
local asl = require "emrflow.asl"
local paths = require "emrflow.asl.paths"

local C = {}

local NULL = json.null

---------------------------------------------------------------------------
-- Corpus access
---------------------------------------------------------------------------

function C.corpus_dir(explicit)
  if explicit then return explicit end
  local shared = os.getenv("EMRFLOW_SHARED") or (ROOT .. "/../shared")
  return shared .. "/conformance/asl"
end

local function read(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("a")
  f:close()
  return s
end

-- { { group =, name =, file = } ... } sorted by group then name.
function C.list(dir)
  local p = io.popen("ls -1 '" .. dir .. "' 2>/dev/null")
  local groups = {}
  for line in p:lines() do
    if not line:find("%.") then groups[#groups + 1] = line end
  end
  p:close()
  table.sort(groups)
  local cases = {}
  for _, g in ipairs(groups) do
    local q = io.popen("ls -1 '" .. dir .. "/" .. g .. "' 2>/dev/null")
    local names = {}
    for line in q:lines() do
      if line:sub(-5) == ".json" then names[#names + 1] = line:sub(1, -6) end
    end
    q:close()
    table.sort(names)
    for _, n in ipairs(names) do
      cases[#cases + 1] = { group = g, name = n, file = dir .. "/" .. g .. "/" .. n .. ".json" }
    end
  end
  return cases
end

---------------------------------------------------------------------------
-- Comparison
---------------------------------------------------------------------------

local function kind(v)
  if v == NULL then return "null" end
  local t = type(v)
  if t ~= "table" then return t end
  if json.is_array(v) then return "array" end
  if json.is_object(v) then return "object" end
  return v[1] ~= nil and "array" or "object"
end

local function equal(a, b)
  local ka, kb = kind(a), kind(b)
  if ka ~= kb then return false end
  if ka == "array" then
    if #a ~= #b then return false end
    for i = 1, #a do
      if not equal(a[i], b[i]) then return false end
    end
    return true
  elseif ka == "object" then
    for k, v in pairs(a) do
      if b[k] == nil or not equal(v, b[k]) then return false end
    end
    for k in pairs(b) do
      if a[k] == nil then return false end
    end
    return true
  end
  return a == b
end
C.equal = equal

-- Removes the value at a JSONPath (as the corpus writes them) from v, in place.
local function remove_path(v, path)
  local key_only = false
  if path:sub(-6) == " (key)" then
    path = path:sub(1, -7)
    key_only = true
  end
  local segs = paths.parse_ref(path)
  if not segs or #segs == 0 then return v end
  local parent = v
  for i = 1, #segs - 1 do
    local s = segs[i]
    if type(parent) ~= "table" then return v end
    parent = type(s) == "number" and parent[s + 1] or parent[s]
  end
  if type(parent) ~= "table" then return v end
  local last = segs[#segs]
  if type(last) == "number" then
    if parent[last + 1] ~= nil then parent[last + 1] = "<ignored>" end
  elseif key_only then
    -- a redacted key: drop every key of the parent that is not literally expected
    parent[last] = nil
  else
    if parent[last] ~= nil then parent[last] = "<ignored>" end
  end
  return v
end

-- A recorded string with <...> placeholders as an anchored Lua pattern.
local function placeholder_pattern(s)
  local parts = {}
  local i = 1
  while i <= #s do
    local a, b = s:find("<[^<>]*>", i)
    if not a then
      parts[#parts + 1] = s:sub(i):gsub("%W", "%%%0")
      break
    end
    parts[#parts + 1] = s:sub(i, a - 1):gsub("%W", "%%%0")
    parts[#parts + 1] = ".-"
    i = b + 1
  end
  return "^" .. table.concat(parts) .. "$"
end

local function string_matches(expected, actual, is_pattern)
  if expected == NULL then expected = nil end
  if expected == nil or actual == nil then return expected == actual end
  if is_pattern then return actual:find(placeholder_pattern(expected)) ~= nil end
  return expected == actual
end

local function multiset_equal(a, b)
  if #a ~= #b then return false end
  local count = {}
  for _, x in ipairs(a) do count[x] = (count[x] or 0) + 1 end
  for _, x in ipairs(b) do
    if not count[x] or count[x] == 0 then return false end
    count[x] = count[x] - 1
  end
  return true
end

local function short(v, n)
  local ok, s = pcall(json.encode, v)
  s = ok and s or tostring(v)
  n = n or 300
  if #s > n then s = s:sub(1, n) .. "..." end
  return s
end

local function uses_jsonata(v)
  if type(v) == "table" then
    if v.QueryLanguage == "JSONata" then return true end
    for _, x in pairs(v) do
      if uses_jsonata(x) then return true end
    end
  end
  return false
end

-- Runs one case. Returns a result table:
--   { ok = bool, jsonata = bool, reason = text, events_ok = bool }
function C.run_case(case)
  local text = assert(read(case.file))
  local data = json.decode(text)
  local res = { group = case.group, name = case.name, jsonata = uses_jsonata(data.definition) }
  local def_text = json.encode(data.definition)
  local lok, machine = pcall(asl.load, def_text, { name = "conformance", type = data.state_machine_type })
  if not lok then
    res.reason = "rejected at load: " .. tostring(machine)
    return res
  end
  -- the virtual clock starts when AWS ran the case ("13-12-2023, 07:09:17")
  local start
  local d, mo, y, h, mi, sec = tostring(data.source and data.source.recorded_date or "")
    :match("^(%d+)-(%d+)-(%d+), (%d+):(%d+):(%d+)$")
  if d then
    local context = require "emrflow.asl.context"
    start = context.parse_timestamp(string.format("%04d-%02d-%02dT%02d:%02d:%02dZ", y, mo, d, h, mi, sec))
  end
  local ok, x = pcall(machine.start, machine, data.input, { clock = "virtual", start_time = start,
    name = "conformance-exec" })
  if not ok then
    res.reason = "start raised: " .. tostring(x)
    return res
  end
  local wok, status, out = pcall(x.wait, x)
  if not wok then
    res.reason = "crashed: " .. tostring(status)
    return res
  end
  res.status, res.output = status, out
  local want = data.status
  if status ~= want then
    if status == "SUCCEEDED" then
      res.reason = string.format("status %s, expected %s (%s / %s); output %s", status, want,
        tostring(data.error), tostring(data.cause), short(out))
    else
      res.reason = string.format("status %s (%s: %s), expected %s", status, tostring(x.error),
        short(x.cause, 400), want)
    end
    return res
  end
  if want == "SUCCEEDED" then
    local expected, actual = json.copy(data.output), json.copy(out)
    for _, p in ipairs(data.ignore_output_paths or {}) do
      expected = remove_path(expected, p)
      actual = remove_path(actual, p)
    end
    res.ok = equal(expected, actual)
    if not res.ok then
      res.reason = "output differs"
      res.diff = { expected = short(expected, 2000), actual = short(actual, 2000) }
    end
  else
    local eok = string_matches(data.error, x.error, data.error_is_pattern)
    local cok = string_matches(data.cause, x.cause, data.cause_is_pattern)
    res.ok = eok and cok
    if not res.ok then
      res.reason = "error/cause differ"
      res.diff = {
        expected = tostring(data.error) .. " | " .. tostring(data.cause),
        actual = tostring(x.error) .. " | " .. tostring(x.cause),
      }
    end
  end
  if data.events then
    local got = x:event_types()
    res.events_ok = multiset_equal(got, data.events)
    res.events_strict = res.events_ok and equal(json.array(got), data.events)
  end
  return res
end

-- Runs the corpus. opts: dir, group, case (substring). Returns summary.
function C.run(opts)
  opts = opts or {}
  local dir = C.corpus_dir(opts.dir)
  local cases = C.list(dir)
  local summary = { groups = {}, order = {}, results = {}, total = 0, passed = 0,
    jsonpath_total = 0, jsonpath_passed = 0, jsonata_total = 0, jsonata_passed = 0,
    events_ok = 0, events_total = 0, dir = dir }
  for _, case in ipairs(cases) do
    if (not opts.group or case.group == opts.group)
        and (not opts.case or case.name:find(opts.case, 1, true)) then
      local ok, r = pcall(C.run_case, case)
      if not ok then
        r = { group = case.group, name = case.name, reason = "runner error: " .. tostring(r) }
      end
      summary.results[#summary.results + 1] = r
      local g = summary.groups[case.group]
      if not g then
        g = { total = 0, passed = 0, jsonata = 0, jsonata_passed = 0 }
        summary.groups[case.group] = g
        summary.order[#summary.order + 1] = case.group
      end
      g.total = g.total + 1
      summary.total = summary.total + 1
      if r.ok then summary.passed = summary.passed + 1 end
      if r.jsonata then
        g.jsonata = g.jsonata + 1
        summary.jsonata_total = summary.jsonata_total + 1
        if r.ok then
          g.jsonata_passed = g.jsonata_passed + 1
          summary.jsonata_passed = summary.jsonata_passed + 1
        end
      else
        summary.jsonpath_total = summary.jsonpath_total + 1
        if r.ok then
          g.passed = g.passed + 1
          summary.jsonpath_passed = summary.jsonpath_passed + 1
        end
      end
      if r.events_ok ~= nil then
        summary.events_total = summary.events_total + 1
        if r.events_ok then summary.events_ok = summary.events_ok + 1 end
      end
    end
  end
  return summary
end

function C.report(summary, out)
  out = out or io.stdout
  out:write(string.format("%-22s %9s %9s\n", "group", "JSONPath", "JSONata"))
  for _, name in ipairs(summary.order) do
    local g = summary.groups[name]
    local jp = g.total - g.jsonata
    out:write(string.format("%-22s %4d/%-4d %4s\n", name, g.passed, jp,
      g.jsonata > 0 and string.format("%d/%d", g.jsonata_passed, g.jsonata) or "-"))
  end
  out:write(string.format("\nJSONPath cases passed strictly: %d/%d\n", summary.jsonpath_passed,
    summary.jsonpath_total))
  out:write(string.format("JSONata cases passed strictly: %d/%d\n", summary.jsonata_passed,
    summary.jsonata_total))
  out:write(string.format("All cases: %d/%d\n", summary.passed, summary.total))
  out:write(string.format("History event types matching (cases with events): %d/%d\n",
    summary.events_ok, summary.events_total))
end

function C.write_markdown(summary, path)
  local f = assert(io.open(path, "w"))
  f:write("# ASL conformance\n\n")
  f:write("Produced by `make conformance` (`lua5.4 tools/conformance.lua`) against the corpus in\n")
  f:write("`../shared/conformance/asl` (recorded from AWS Step Functions).\n\n")
  f:write("| group | JSONPath passed | JSONata passed |\n| --- | --- | --- |\n")
  for _, name in ipairs(summary.order) do
    local g = summary.groups[name]
    f:write(string.format("| %s | %d/%d | %s |\n", name, g.passed, g.total - g.jsonata,
      g.jsonata > 0 and string.format("%d/%d", g.jsonata_passed, g.jsonata) or "-"))
  end
  f:write(string.format("\n**JSONPath: %d/%d pass strictly** (output, or error and cause). ",
    summary.jsonpath_passed, summary.jsonpath_total))
  f:write(string.format("**JSONata: %d/%d pass strictly.** ", summary.jsonata_passed, summary.jsonata_total))
  f:write(string.format("History event types match in %d/%d cases that record them.\n\n",
    summary.events_ok, summary.events_total))
  local failing = {}
  for _, r in ipairs(summary.results) do
    if not r.ok then failing[#failing + 1] = r end
  end
  f:write("## Failing cases\n\n")
  if #failing == 0 then f:write("None.\n") end
  for _, r in ipairs(failing) do
    f:write(string.format("- `%s/%s`: %s\n", r.group, r.name, (tostring(r.reason):gsub("\n", " "))))
    if r.diff then
      f:write(string.format("  - expected: `%s`\n  - actual: `%s`\n", r.diff.expected:sub(1, 300),
        r.diff.actual:sub(1, 300)))
    end
  end
  f:close()
end

local function main(argv)
  local opts = {}
  local i = 1
  local show_diff, list, write = false, false, true
  while i <= #argv do
    local a = argv[i]
    if a == "--group" then opts.group = argv[i + 1]; i = i + 1
    elseif a == "--case" then opts.case = argv[i + 1]; i = i + 1
    elseif a == "--corpus" then opts.dir = argv[i + 1]; i = i + 1
    elseif a == "--diff" then show_diff = true
    elseif a == "--list" then list = true
    elseif a == "--no-report" then write = false
    elseif a == "-h" or a == "--help" then
      io.write("usage: lua5.4 tools/conformance.lua [--group NAME] [--case SUBSTRING] [--diff] [--list]\n"
        .. "                                 [--no-report] [--corpus DIR]\n")
      return 0
    else
      io.stderr:write("conformance: unknown option " .. a .. "\n")
      return 1
    end
    i = i + 1
  end
  local dir = C.corpus_dir(opts.dir)
  if not read(dir .. "/README.md") then
    io.stderr:write("conformance: corpus not found at " .. dir .. " (set EMRFLOW_SHARED)\n")
    return 1
  end
  local t0 = os.clock()
  local summary = C.run(opts)
  if list or show_diff then
    for _, r in ipairs(summary.results) do
      if not r.ok then
        io.write(string.format("FAIL %s/%s: %s\n", r.group, r.name, tostring(r.reason)))
        if show_diff and r.diff then
          io.write("  expected: " .. r.diff.expected .. "\n  actual:   " .. r.diff.actual .. "\n")
        end
      end
    end
    io.write("\n")
  end
  C.report(summary)
  io.write(string.format("(%.2f s CPU)\n", os.clock() - t0))
  if write and not opts.group and not opts.case then
    C.write_markdown(summary, ROOT .. "/bench/CONFORMANCE.md")
    io.write("wrote " .. ROOT .. "/bench/CONFORMANCE.md\n")
  end
  return 0
end

if (...) == "--library" then return C end
os.exit(main(arg or {}))
