-- ASL interpreter throughput: state transitions per second, emrflow against the npm package
-- aws-local-stepfunctions on the same definitions, side by side in one run.
--
--   lua5.4 bench/asl_bench.lua [--runs N] [--no-node] [--no-write] [--regen]
--
-- Cases (definitions generated into bench/asl/ when missing):
--   (a) pass_chain_10000   a chain of 10,000 Pass states with Parameters and ResultPath
--   (b) map_choice_10000   a Map over 10,000 items with an ItemSelector and a Choice inside
--   (c) intrinsics_1000    1,000 Pass states whose Parameters are heavy with intrinsic functions
-- A transition is one state entered (the unit AWS bills). emrflow runs on a virtual clock
-- with history kept (the default); the "no history" column runs with history = false.
-- Also measures memory per history event. Writes bench/RESULTS.asl.md unless --no-write.

local script = arg and arg[0] or "bench/asl_bench.lua"
local ROOT = script:match("^(.*)/bench/[^/]*$") or "."
package.path = ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;" .. package.path
package.cpath = ROOT .. "/build/?.so;" .. package.cpath

local json = require "emrflow.json"
local asl = require "emrflow.asl"
local core = require "emrflow.core"

local DIR = ROOT .. "/bench/asl"

local function now()
  return core.now and core.now() or os.clock()
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

---------------------------------------------------------------------------
-- Definitions
---------------------------------------------------------------------------

local function ordered(pairs_list)
  local o = json.object {}
  for _, kv in ipairs(pairs_list) do json.set(o, kv[1], kv[2]) end
  return o
end

local function pass_chain(n)
  local states = json.object {}
  for i = 1, n do
    local st = ordered {
      { "Type", "Pass" },
      { "Parameters", ordered { { "value.$", "$.value" }, { "step", i }, { "label", "step" } } },
      { "ResultPath", "$.last" },
    }
    if i < n then json.set(st, "Next", "S" .. (i + 1)) else json.set(st, "End", true) end
    json.set(states, "S" .. i, st)
  end
  return ordered { { "Comment", "10,000 Pass states with Parameters and ResultPath" }, { "StartAt", "S1" },
    { "States", states } }, ordered { { "value", 42 }, { "payload", ordered { { "a", 1 }, { "b", "two" } } } }
end

local function map_choice(n)
  local items = json.array {}
  for i = 1, n do items[i] = i - 1 end
  local processor = ordered {
    { "ProcessorConfig", ordered { { "Mode", "INLINE" } } },
    { "StartAt", "Route" },
    { "States", ordered {
      { "Route", ordered { { "Type", "Choice" }, { "Choices", json.array {
        ordered { { "Variable", "$.value" }, { "NumericGreaterThanEquals", n // 2 }, { "Next", "High" } },
      } }, { "Default", "Low" } } },
      { "High", ordered { { "Type", "Pass" }, { "Parameters", ordered { { "band", "high" }, { "v.$",
        "$.value" } } },
        { "End", true } } },
      { "Low", ordered { { "Type", "Pass" }, { "Parameters", ordered { { "band", "low" }, { "v.$",
        "$.value" } } },
        { "End", true } } },
    } },
  }
  local def = ordered { { "Comment", "a Map over 10,000 items with an ItemSelector and a Choice inside" },
    { "StartAt", "Fan" }, { "States", ordered {
      { "Fan", ordered { { "Type", "Map" }, { "ItemsPath", "$.items" }, { "MaxConcurrency", 0 },
        { "ItemSelector", ordered { { "value.$", "$$.Map.Item.Value" }, { "index.$", "$$.Map.Item.Index" },
          { "tag.$", "$.tag" } } },
        { "ItemProcessor", processor }, { "ResultPath", json.null }, { "End", true } } } } } }
  return def, ordered { { "tag", "bench" }, { "items", items } }
end

local function intrinsics_chain(n)
  local states = json.object {}
  for i = 1, n do
    local st = ordered {
      { "Type", "Pass" },
      { "Parameters", ordered {
        { "n.$", "States.MathAdd($.n, 1)" },
        { "text.$", "States.Format('step {} of {} for {}', $.n, " .. n .. ", $.obj.name)" },
        { "len.$", "States.ArrayLength(States.Array($.n, 'x', true, null))" },
        { "json.$", "States.JsonToString($.obj)" },
        { "obj.$", "States.StringToJson(States.JsonToString($.obj))" },
        { "parts.$", "States.ArrayPartition(States.ArrayRange(0, 9, 1), 4)" },
        { "has.$", "States.ArrayContains(States.Array(1, 2, 3), 2)" },
        { "b64.$", "States.Base64Encode($.obj.name)" },
        { "words.$", "States.StringSplit('a,b;c d', ',; ')" },
      } },
    }
    if i < n then json.set(st, "Next", "I" .. (i + 1)) else json.set(st, "End", true) end
    json.set(states, "I" .. i, st)
  end
  return ordered { { "Comment", "1,000 Pass states heavy with intrinsic functions" }, { "StartAt", "I1" },
    { "States", states } }, ordered { { "n", 0 }, { "obj", ordered { { "name", "bench" }, { "list",
      json.array { 1, 2, 3 } } } } }
end

local CASES = {
  { id = "a", name = "pass_chain_10000", title = "10,000 Pass states, Parameters + ResultPath",
    gen = function()
    return pass_chain(10000) end },
  { id = "b", name = "map_choice_10000", title = "Map over 10,000 items, ItemSelector + Choice",
    gen = function()
    return map_choice(10000) end },
  { id = "c", name = "intrinsics_1000", title = "1,000 Pass states heavy with intrinsics", gen = function()
    return intrinsics_chain(1000) end },
}

local function ensure_files(case, regen)
  local def_path = DIR .. "/" .. case.name .. ".json"
  local input_path = DIR .. "/" .. case.name .. ".input.json"
  if regen or not exists(def_path) or not exists(input_path) then
    local def, input = case.gen()
    write(def_path, json.encode(def) .. "\n")
    write(input_path, json.encode(input) .. "\n")
  end
  return def_path, input_path
end

---------------------------------------------------------------------------
-- Runners
---------------------------------------------------------------------------

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function median(t)
  local c = {}
  for i, v in ipairs(t) do c[i] = v end
  table.sort(c)
  return c[(#c + 1) // 2]
end

local function run_emrflow(def_path, input_path, runs, history)
  local t0 = now()
  local machine = asl.load(read(def_path), { name = "bench" })
  local load_ms = (now() - t0) * 1000
  local input = json.decode(read(input_path))
  local times, transitions, events = {}, 0, 0
  for _ = 1, runs do
    collectgarbage("collect")
    local t1 = now()
    local x = machine:start(input, { clock = "virtual", history = history })
    local status = x:wait()
    times[#times + 1] = (now() - t1) * 1000
    assert(status == "SUCCEEDED", "emrflow bench run " .. status .. " " .. tostring(x.cause))
    if history then
      local n = 0
      local types = x:event_types()
      for _, t in ipairs(types) do
        if t:sub(-12) == "StateEntered" then n = n + 1 end
      end
      transitions, events = n, #types
    end
  end
  return { times = times, load_ms = load_ms, transitions = transitions, events = events }
end

local function node_ready()
  if exists(DIR .. "/node_modules/aws-local-stepfunctions/package.json") then return true end
  io.stderr:write("bench: installing aws-local-stepfunctions into bench/asl (npm)\n")
  local ok = os.execute("npm install --silent --no-audit --no-fund --prefix '" .. DIR
    .. "' aws-local-stepfunctions >&2")
  return ok and exists(DIR .. "/node_modules/aws-local-stepfunctions/package.json")
end

local function run_node(def_path, input_path, runs)
  local cmd = string.format("node '%s/als_runner.mjs' '%s' '%s' %d 2>/dev/null", DIR, def_path, input_path,
    runs)
  local p = io.popen(cmd)
  local out = p:read("a")
  p:close()
  local ok, res = pcall(json.decode, out)
  if not ok or type(res) ~= "table" or not res.ok then return nil,
    "aws-local-stepfunctions failed: " .. out end
  return res
end

-- Bytes of Lua memory per history event on the 10,000-state chain.
local function memory_per_event(def_path, input_path)
  local machine = asl.load(read(def_path), { name = "bench" })
  local input = json.decode(read(input_path))
  collectgarbage("collect")
  local base = collectgarbage("count")
  local x = machine:start(input, { clock = "virtual", history = false })
  x:wait()
  x = nil -- luacheck: ignore
  collectgarbage("collect")
  local after_nohist = collectgarbage("count")
  local y = machine:start(input, { clock = "virtual" })
  y:wait()
  collectgarbage("collect")
  local with_hist = collectgarbage("count")
  local n = #y:event_types()
  return {
    events = n,
    kb_no_history = after_nohist - base,
    bytes_per_event = (with_hist - after_nohist) * 1024 / n,
  }
end

---------------------------------------------------------------------------
-- Main
---------------------------------------------------------------------------

local function main(argv)
  local runs, use_node, write_md, regen = 3, true, true, false
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--runs" then runs = tonumber(argv[i + 1]) or runs; i = i + 1
    elseif a == "--no-node" then use_node = false
    elseif a == "--no-write" then write_md = false
    elseif a == "--regen" then regen = true
    else
      io.stderr:write("usage: lua5.4 bench/asl_bench.lua [--runs N] [--no-node] [--no-write] [--regen]\n")
      return 1
    end
    i = i + 1
  end
  if use_node and not node_ready() then
    io.stderr:write("bench: aws-local-stepfunctions is not available; running emrflow only\n")
    use_node = false
  end
  local rows = {}
  for _, case in ipairs(CASES) do
    local def_path, input_path = ensure_files(case, regen)
    local e = run_emrflow(def_path, input_path, runs, true)
    local e_nohist = run_emrflow(def_path, input_path, runs, false)
    local row = { case = case, transitions = e.transitions, events = e.events, load_ms = e.load_ms,
      ms = median(e.times), ms_nohist = median(e_nohist.times) }
    row.tps = row.transitions / (row.ms / 1000)
    row.tps_nohist = row.transitions / (row.ms_nohist / 1000)
    if use_node then
      local n, err = run_node(def_path, input_path, runs)
      if n then
        row.node_ms = median(n.runs)
        row.node_tps = row.transitions / (row.node_ms / 1000)
        row.ratio = row.tps / row.node_tps
      else
        row.node_err = err
      end
    end
    rows[#rows + 1] = row
    io.write(string.format("(%s) %-44s %6d transitions  emrflow %8.1f ms %10.0f tr/s "
      .. "(no history %10.0f tr/s)",
      case.id, case.title, row.transitions, row.ms, row.tps, row.tps_nohist))
    if row.node_ms then
      io.write(string.format("  aws-local-stepfunctions %8.1f ms %10.0f tr/s  x%.1f", row.node_ms,
        row.node_tps,
        row.ratio))
    elseif row.node_err then
      io.write("  " .. row.node_err)
    end
    io.write("\n")
    io.flush()
  end
  local chain_def, chain_input = ensure_files(CASES[1], false)
  local mem = memory_per_event(chain_def, chain_input)
  io.write(string.format("memory: %d events kept, %.0f bytes per event; history = false keeps %.0f KiB "
    .. "after the run\n",
    mem.events, mem.bytes_per_event, math.max(0, mem.kb_no_history)))
  if write_md then
    local lines = {
      "# ASL interpreter benchmark",
      "",
      "Command: `lua5.4 bench/asl_bench.lua` (from the repository root, after `make`; runs "
        .. runs .. " times per case, median shown).",
      "Machine: " .. (io.popen("nproc"):read("l") or "?") .. " cores; " .. _VERSION .. "; node "
        .. ((io.popen("node --version 2>/dev/null"):read("l")) or "?") .. "; aws-local-stepfunctions "
        .. (function()
          local ok, pkg = pcall(function()
            return json.decode(read(DIR .. "/node_modules/aws-local-stepfunctions/package.json")).version
          end)
          return ok and pkg or "?"
        end)() .. ".",
      "",
      "A transition is one state entered. emrflow runs on a virtual clock with history kept;",
      "aws-local-stepfunctions runs the same definition and input (its definition validated once",
      "beforehand, like emrflow's load, which is timed apart).",
      "",
      "| case | transitions | emrflow ms | emrflow tr/s | no history tr/s | aws-local-stepfunctions ms "
        .. "| its tr/s | ratio |",
      "| --- | --- | --- | --- | --- | --- | --- | --- |",
    }
    for _, r in ipairs(rows) do
      lines[#lines + 1] = string.format("| (%s) %s | %d | %.1f | %.0f | %.0f | %s | %s | %s |", r.case.id,
        r.case.title,
        r.transitions, r.ms, r.tps, r.tps_nohist, r.node_ms and string.format("%.1f", r.node_ms) or "n/a",
        r.node_tps and string.format("%.0f", r.node_tps) or "n/a",
        r.ratio and string.format("**%.1fx**", r.ratio) or "n/a")
    end
    lines[#lines + 1] = ""
    lines[#lines + 1] = string.format("Load (validate + compile) times: %s.", (function()
      local t = {}
      for _, r in ipairs(rows) do t[#t + 1] = string.format("(%s) %.0f ms", r.case.id, r.load_ms) end
      return table.concat(t, ", ")
    end)())
    lines[#lines + 1] = ""
    lines[#lines + 1] = string.format("Memory: the 10,000-state chain keeps %d events at about %.0f bytes "
      .. "each "
      .. "(Lua heap growth with history, payload values shared, not copied); with `history = false` the heap "
      .. "after the run is back to %.0f KiB above the start.", mem.events, mem.bytes_per_event,
      math.max(0, mem.kb_no_history))
    lines[#lines + 1] = ""
    write(ROOT .. "/bench/RESULTS.asl.md", table.concat(lines, "\n"))
    io.write("wrote " .. ROOT .. "/bench/RESULTS.asl.md\n")
  end
  return 0
end

os.exit(main(arg or {}))
