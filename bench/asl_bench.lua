-- ASL interpreter throughput: state transitions per second, emrflow against the npm package
-- aws-local-stepfunctions (the best open interpreter) on the same definitions and inputs,
-- side by side in one run.
--
--   lua5.4 bench/asl_bench.lua [--rounds N] [--runs K] [--cases abc] [--no-node] [--no-memory]
--                              [--no-write] [--regen]
--
-- Cases (definitions generated into bench/asl/ at every run; --regen rewrites them anyway):
--   (a) pass_chain_10000   a chain of 10,000 Pass states with Parameters and ResultPath
--   (b) map_choice_10000   a Map over 10,000 items with an ItemSelector and a Choice inside
--   (c) intrinsics_1000    1,000 Pass states whose Parameters are heavy with intrinsic functions
--
-- Fairness: both sides run the same definition file on the same input file. Both are timed in
-- process, per run, with a monotonic clock: emrflow from machine:start() until x:wait()
-- returns, aws-local-stepfunctions from machine.run() until its result resolves. Outside the
-- timing on both sides: process start and module loading, and loading the definition
-- (emrflow's asl.load validates and compiles; the StateMachine constructor validates), both
-- reported apart. Both keep the execution's history (emrflow's default; the other side queues
-- every event in its EventLogger). A full GC runs before every run on both sides
-- (collectgarbage / node --expose-gc). The first run of each side is a warm-up and is not
-- counted (node's JIT). The sides alternate: each round runs emrflow K times, then one node
-- process that runs K times after its warm-up; N rounds. Best and median over all counted
-- runs are reported, since the machine is shared. Every run's final output is compared with
-- the other side's (same JSON value, and the same text); a difference stops the bench with
-- exit status 1.
--
-- Memory: bytes per history event on (a), and the heap over a 100,000-transition loop with
-- history = false (sampled after a full GC every so many VM instructions) and with history.
-- Writes bench/RESULTS.asl.md unless --no-write.

local script = arg and arg[0] or "bench/asl_bench.lua"
local ROOT = script:match("^(.*)/bench/[^/]*$") or "."
package.path = ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;" .. package.path
package.cpath = (os.getenv("EMRFLOW_BUILD") or (ROOT .. "/build")) .. "/?.so;" .. package.cpath

local json = require "emrflow.json"
local asl = require "emrflow.asl"
local core = require "emrflow.core"

local DIR = ROOT .. "/bench/asl"
local fmt = string.format
local coro = coroutine

local now = core.monotonic or core.now or os.clock

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

local function shell_line(cmd)
  local p = io.popen(cmd)
  if not p then return nil end
  local line = p:read("l")
  p:close()
  return line
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

-- The Map's output is its results (about 240 KB of JSON, under the 256 KiB payload limit), so
-- the output check covers every iteration.
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
        "$.value" } } }, { "End", true } } },
      { "Low", ordered { { "Type", "Pass" }, { "Parameters", ordered { { "band", "low" }, { "v.$",
        "$.value" } } }, { "End", true } } },
    } },
  }
  local def = ordered { { "Comment", "a Map over 10,000 items with an ItemSelector and a Choice inside" },
    { "StartAt", "Fan" }, { "States", ordered {
      { "Fan", ordered { { "Type", "Map" }, { "ItemsPath", "$.items" }, { "MaxConcurrency", 0 },
        { "ItemSelector", ordered { { "value.$", "$$.Map.Item.Value" }, { "index.$", "$$.Map.Item.Index" },
          { "tag.$", "$.tag" } } },
        { "ItemProcessor", processor }, { "End", true } } } } } }
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
        -- one delimiter character: aws-local-stepfunctions splits on the whole delimiter string,
        -- AWS (and emrflow) on any of its characters, so ',; ' would make the outputs differ
        { "words.$", "States.StringSplit('a,b,c,d', ',')" },
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
    gen = function() return pass_chain(10000) end },
  { id = "b", name = "map_choice_10000", title = "Map over 10,000 items, ItemSelector + Choice",
    gen = function() return map_choice(10000) end },
  { id = "c", name = "intrinsics_1000", title = "1,000 Pass states heavy with intrinsics",
    gen = function() return intrinsics_chain(1000) end },
}

-- Writes the case's definition and input files unless they already hold exactly what the
-- generator makes (so files left by an older version of this bench are never used).
local function ensure_files(case, regen)
  local def_path = DIR .. "/" .. case.name .. ".json"
  local input_path = DIR .. "/" .. case.name .. ".input.json"
  local def, input = case.gen()
  local files = { [def_path] = json.encode(def) .. "\n", [input_path] = json.encode(input) .. "\n" }
  for path, text in pairs(files) do
    local f = io.open(path, "rb")
    local old = f and f:read("a")
    if f then f:close() end
    if regen or old ~= text then write(path, text) end
  end
  return def_path, input_path
end

---------------------------------------------------------------------------
-- Comparing outputs
---------------------------------------------------------------------------

-- Same JSON value (objects regardless of key order, numbers by value); nil or the first
-- difference as "path: what".
local function differ(a, b, path)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return fmt("%s: %s vs %s", path, ta, tb) end
  if ta ~= "table" then
    if a ~= b then return fmt("%s: %s vs %s", path, tostring(a), tostring(b)) end
    return nil
  end
  if json.is_array(a) ~= json.is_array(b) then return path .. ": array vs object" end
  if json.is_array(a) then
    if #a ~= #b then return fmt("%s: %d items vs %d", path, #a, #b) end
    for i = 1, #a do
      local d = differ(a[i], b[i], fmt("%s[%d]", path, i - 1))
      if d then return d end
    end
    return nil
  end
  for k, v in pairs(a) do
    if b[k] == nil then return fmt("%s.%s: only on the emrflow side", path, k) end
    local d = differ(v, b[k], path .. "." .. k)
    if d then return d end
  end
  for k in pairs(b) do
    if a[k] == nil then return fmt("%s.%s: only on the aws-local-stepfunctions side", path, k) end
  end
  return nil
end

---------------------------------------------------------------------------
-- Runners
---------------------------------------------------------------------------

local function sorted(t)
  local c = {}
  for i, v in ipairs(t) do c[i] = v end
  table.sort(c)
  return c
end

local function median(t)
  local c = sorted(t)
  local n = #c
  if n == 0 then return nil end
  if n % 2 == 1 then return c[(n + 1) // 2] end
  return (c[n // 2] + c[n // 2 + 1]) / 2
end

local function best(t)
  return sorted(t)[1]
end

-- One timed emrflow run: ms, the output, the execution.
local function emrflow_run(machine, input, history)
  collectgarbage("collect")
  local t = now()
  local x = machine:start(input, { clock = "virtual", history = history, history_limit = false })
  local status, output = x:wait()
  local ms = (now() - t) * 1000
  if status ~= "SUCCEEDED" then
    error(fmt("emrflow bench run ended %s: %s", status, tostring(x.cause)), 0)
  end
  return ms, output, x
end

local function node_ready()
  if exists(DIR .. "/node_modules/aws-local-stepfunctions/package.json") then return true end
  io.stderr:write("bench: installing aws-local-stepfunctions into bench/asl (npm, the version in its "
    .. "package-lock.json)\n")
  local ok = os.execute("npm ci --silent --no-audit --no-fund --prefix '" .. DIR .. "' >&2")
    or os.execute("npm install --silent --no-audit --no-fund --prefix '" .. DIR
      .. "' aws-local-stepfunctions >&2")
  return ok and exists(DIR .. "/node_modules/aws-local-stepfunctions/package.json")
end

local function run_node(def_path, input_path, runs)
  local cmd = fmt("node --expose-gc '%s/als_runner.mjs' '%s' '%s' %d 1 2>&1", DIR, def_path, input_path, runs)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  local ok, res = pcall(json.decode, out)
  if not ok or type(res) ~= "table" or not res.ok then
    return nil, "aws-local-stepfunctions failed: " .. out:sub(1, 2000)
  end
  return res
end

local function die(msg)
  io.stderr:write("bench: FAILED: " .. msg .. "\n")
  os.exit(1)
end

local function run_case(case, opts)
  local def_path, input_path = ensure_files(case, opts.regen)
  local t0 = now()
  local machine = asl.load(read(def_path), { name = "bench" })
  local load_ms = (now() - t0) * 1000
  local input = json.decode(read(input_path))
  local row = { case = case, load_ms = load_ms, lua = {}, lua_nohist = {}, node = {} }

  -- Warm-up (not counted), and the transition count from its history.
  local _, ref_output, x = emrflow_run(machine, input, true)
  local transitions = 0
  for _, t in ipairs(x:event_types()) do
    if t:sub(-12) == "StateEntered" then transitions = transitions + 1 end
  end
  row.transitions, row.events = transitions, #x:event_types()
  x = nil -- luacheck: ignore
  local ref_text = json.encode(ref_output)

  for _ = 1, opts.rounds do
    for _ = 1, opts.runs do
      local ms, out = emrflow_run(machine, input, true)
      row.lua[#row.lua + 1] = ms
      local text = json.encode(out)
      if text ~= ref_text then die(fmt("(%s) emrflow's output changed between runs", case.id)) end
    end
    if opts.node then
      local n, err = run_node(def_path, input_path, opts.runs)
      if not n then die(fmt("(%s) %s", case.id, err)) end
      row.node_construct_ms = n.construct_ms
      for _, ms in ipairs(n.runs) do row.node[#row.node + 1] = ms end
      local d = differ(ref_output, n.output, "$")
      if d then die(fmt("(%s) the outputs differ at %s", case.id, d)) end
      row.same_text = json.encode(n.output) == ref_text
      row.checked = true
    end
  end
  for _ = 1, opts.runs do
    row.lua_nohist[#row.lua_nohist + 1] = emrflow_run(machine, input, false)
  end
  local function stats(list)
    if #list == 0 then return nil end
    local b, m = best(list), median(list)
    return { best = b, median = m, best_tps = transitions / (b / 1000), median_tps = transitions / (m / 1000),
      n = #list }
  end
  row.s_lua, row.s_nohist, row.s_node = stats(row.lua), stats(row.lua_nohist), stats(row.node)
  if row.s_node then
    row.ratio_best = row.s_node.best / row.s_lua.best
    row.ratio_median = row.s_node.median / row.s_lua.median
  end
  return row
end

---------------------------------------------------------------------------
-- Memory
---------------------------------------------------------------------------

local function kib() return collectgarbage("count") end

-- Bytes per history event on the 10,000-state chain: the heap kept by an execution with
-- history, minus the same execution without, per event; and how much of that is the
-- payloads the events refer to (each state's output, shared with the data, not copied).
local function memory_per_event(def_path, input_path)
  local machine = asl.load(read(def_path), { name = "bench" })
  local input = json.decode(read(input_path))
  collectgarbage("collect")
  local x = machine:start(input, { clock = "virtual", history = false, history_limit = false })
  x:wait()
  collectgarbage("collect")
  local base = kib()
  x = nil -- luacheck: ignore
  collectgarbage("collect")
  local y = machine:start(input, { clock = "virtual", history_limit = false })
  y:wait()
  collectgarbage("collect")
  local with_hist = kib()
  local n = #y:event_types()
  -- The payloads alone: keep them in a plain list, drop the execution, measure again.
  local seen, list = {}, {}
  for _, e in ipairs(y:history { raw = true }) do
    local d = e.stateEnteredEventDetails or e.stateExitedEventDetails
    local p = d and (d.input or d.output)
    if type(p) == "table" and not seen[p] then
      seen[p] = true
      list[#list + 1] = p
    end
  end
  seen = nil -- luacheck: ignore
  y = nil -- luacheck: ignore
  collectgarbage("collect")
  collectgarbage("collect")
  local payloads_kib = kib() - base - (#list * 16) / 1024
  local total = (with_hist - base) * 1024 / n
  local payload = payloads_kib * 1024 / n
  return { events = n, bytes_per_event = total, payload_per_event = payload,
    record_per_event = total - payload, distinct_payloads = #list }
end

local LOOP_N = 50000

local function loop_definition()
  return json.encode(ordered { { "StartAt", "Inc" }, { "States", ordered {
    { "Inc", ordered { { "Type", "Pass" }, { "Parameters", ordered { { "i.$", "States.MathAdd($.i, 1)" },
      { "n.$", "$.n" } } }, { "Next", "Check" } } },
    { "Check", ordered { { "Type", "Choice" }, { "Choices", json.array { ordered { { "Variable", "$.i" },
      { "NumericLessThanPath", "$.n" }, { "Next", "Inc" } } } }, { "Default", "Done" } } },
    { "Done", ordered { { "Type", "Succeed" } } },
  } } })
end

-- The heap over a run of 2 * LOOP_N + 1 transitions, sampled after a full GC every `every` VM
-- instructions of the execution's coroutine: { first, min, max, last } in KiB above the heap
-- before the start, and the transitions run.
local function heap_over_loop(history, every, loops)
  loops = loops or LOOP_N
  local machine = asl.load(loop_definition(), { name = "loop" })
  local input = json.decode(fmt('{"i":0,"n":%d}', loops))
  local samples = {}
  local base
  local function sample()
    collectgarbage("collect")
    samples[#samples + 1] = kib() - base
  end
  local create = coro.create
  rawset(coro, "create", function(f) -- the hook goes on the execution's task
    local co = create(f)
    debug.sethook(co, sample, "", every)
    return co
  end)
  collectgarbage("collect")
  base = kib()
  local ok, x = pcall(function()
    local ex = machine:start(input, { clock = "virtual", history = history, history_limit = false })
    local status = ex:wait()
    assert(status == "SUCCEEDED", "loop run " .. tostring(status))
    return ex
  end)
  rawset(coro, "create", create)
  if not ok then error(x, 0) end
  collectgarbage("collect")
  local after = kib() - base
  local events = x.rec:count()
  local lo, hi = math.huge, -math.huge
  for _, s in ipairs(samples) do
    if s < lo then lo = s end
    if s > hi then hi = s end
  end
  return { first = samples[1], last = samples[#samples], min = lo, max = hi, n = #samples,
    transitions = 2 * loops + 1, after = after, events = events }
end

---------------------------------------------------------------------------
-- Main
---------------------------------------------------------------------------

local function machine_line()
  local model = "?"
  local f = io.open("/proc/cpuinfo")
  if f then
    for line in f:lines() do
      local m = line:match("^model name%s*:%s*(.-)%s*$")
      if m then model = m break end
    end
    f:close()
  end
  return fmt("%s CPUs (nproc), %s", shell_line("nproc") or "?", model)
end

local function parse_args(argv)
  local opts = { rounds = 3, runs = 3, cases = "abc", node = true, memory = true, write = true,
    regen = false }
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--rounds" then opts.rounds = tonumber(argv[i + 1]) or opts.rounds; i = i + 1
    elseif a == "--runs" then opts.runs = tonumber(argv[i + 1]) or opts.runs; i = i + 1
    elseif a == "--cases" then opts.cases = argv[i + 1] or opts.cases; i = i + 1
    elseif a == "--no-node" then opts.node = false
    elseif a == "--no-memory" then opts.memory = false
    elseif a == "--no-write" then opts.write = false
    elseif a == "--regen" then opts.regen = true
    else
      return nil
    end
    i = i + 1
  end
  return opts
end

local function report_row(r)
  io.write(fmt("(%s) %-44s %6d transitions  emrflow best %7.1f ms (%8.0f tr/s) median %7.1f ms",
    r.case.id, r.case.title, r.transitions, r.s_lua.best, r.s_lua.best_tps, r.s_lua.median))
  local n = r.s_node
  if n then
    io.write(fmt("  |  aws-local-stepfunctions best %7.1f ms (%7.0f tr/s) median %7.1f ms", n.best,
      n.best_tps, n.median))
    io.write(fmt("  |  x%.1f best, x%.1f median%s", r.ratio_best, r.ratio_median,
      r.same_text and "" or "  (outputs equal as JSON, key order differs)"))
  end
  io.write("\n")
  io.flush()
end

local function list_of(rows, each)
  local t = {}
  for _, r in ipairs(rows) do t[#t + 1] = each(r) end
  return table.concat(t, ", ")
end

local function markdown(opts, started, rows, mem, flat, grow)
  local als_version = "?"
  pcall(function()
    als_version = json.decode(read(DIR .. "/node_modules/aws-local-stepfunctions/package.json")).version
  end)
  local L = {
    "# ASL interpreter benchmark",
    "",
    fmt("Command: `lua5.4 bench/asl_bench.lua --rounds %d --runs %d` (from the repository root, "
      .. "after `make`).", opts.rounds, opts.runs),
    fmt("Date: %s. Machine: %s; %s (the standalone interpreter, whose default GC mode is "
      .. "generational; emrflow sets no GC parameter); node %s; aws-local-stepfunctions %s.", started,
      machine_line(), _VERSION, shell_line("node --version 2>/dev/null") or "?", als_version),
    "The machine is shared with other jobs, so timings are noisy: best and median are both given.",
    "",
    "How it is measured (see the header of bench/asl_bench.lua): the same definition and input files",
    "on both sides; in-process timing per run on both sides (emrflow: `machine:start` until",
    "`x:wait()` returns; aws-local-stepfunctions: `machine.run()` until its result resolves);",
    "process start, module load and definition load/validation excluded on both sides (shown",
    "apart); history kept on both sides; a full GC before every run on both sides; one uncounted",
    fmt("warm-up run per side; the sides alternate over %d rounds of %d runs each; every output is",
      opts.rounds, opts.runs),
    "compared with the other side's. A transition is one state entered (the unit AWS bills).",
    "",
    "| case | transitions | emrflow best ms (tr/s) | emrflow median ms "
      .. "| aws-local-stepfunctions best ms (tr/s) | its median ms | ratio best | ratio median | outputs |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  }
  for _, r in ipairs(rows) do
    local n = r.s_node
    L[#L + 1] = fmt("| (%s) %s | %d | %.1f (%.0f) | %.1f | %s | %s | %s | %s | %s |", r.case.id,
      r.case.title, r.transitions, r.s_lua.best, r.s_lua.best_tps, r.s_lua.median,
      n and fmt("%.1f (%.0f)", n.best, n.best_tps) or "n/a", n and fmt("%.1f", n.median) or "n/a",
      r.ratio_best and fmt("**%.1fx**", r.ratio_best) or "n/a",
      r.ratio_median and fmt("**%.1fx**", r.ratio_median) or "n/a",
      r.checked and (r.same_text and "identical" or "equal JSON") or "not compared")
  end
  L[#L + 1] = ""
  L[#L + 1] = "emrflow with `history = false`, best (median) ms: "
    .. list_of(rows, function(r) return fmt("(%s) %.1f (%.1f)", r.case.id, r.s_nohist.best,
      r.s_nohist.median) end) .. "."
  L[#L + 1] = "Definition load, not timed above: emrflow `asl.load` (validate + compile) "
    .. list_of(rows, function(r) return fmt("(%s) %.0f ms", r.case.id, r.load_ms) end)
    .. "; the aws-local-stepfunctions constructor "
    .. list_of(rows, function(r)
      return fmt("(%s) %s", r.case.id, r.node_construct_ms and fmt("%.0f ms", r.node_construct_ms) or "n/a")
    end) .. "."
  if mem then
    L[#L + 1] = ""
    L[#L + 1] = "## Memory"
    L[#L + 1] = ""
    L[#L + 1] = fmt("- (a) keeps %d events at **%.0f bytes per event** of Lua heap: %.0f bytes for the "
      .. "event record itself (a descriptor shared by all events of its kind and a payload reference, in "
      .. "two parallel arrays grown by doubling; previous id, timestamp and assigned variables only where "
      .. "they are not implied) and %.0f bytes for the payload it refers to (each state's output object, "
      .. "%d distinct, shared with the data the execution produced, not copied).", mem.events,
      mem.bytes_per_event, mem.record_per_event, mem.payload_per_event, mem.distinct_payloads)
    L[#L + 1] = fmt("- A loop of %d transitions (Pass with States.MathAdd, Choice back, Succeed) with "
      .. "`history = false`: the heap after a full GC, sampled %d times over the run, stays within "
      .. "%.1f KiB of the first sample (%+.1f KiB at the last); run 4 times as long (%d transitions) it "
      .. "ends %+.1f KiB from its first sample: the heap does not grow with the length of the run.",
      flat.transitions, flat.n, flat.max - flat.min, flat.last - flat.first, flat.long.transitions,
      flat.long.last - flat.long.first)
    L[#L + 1] = fmt("- The same loop with history: %.0f KiB more after the run (execution still held) than "
      .. "at the first sample, for %d events: %.0f bytes per event, each Pass output a new 2-key object "
      .. "the events keep.", grow.after - grow.first, grow.events,
      (grow.after - grow.first) * 1024 / grow.events)
  end
  L[#L + 1] = ""
  L[#L + 1] = "## Notes"
  L[#L + 1] = ""
  L[#L + 1] = "- (b): the Map's output is its results (about 240 KB of JSON), so the output comparison "
    .. "covers all 10,000 iterations."
  L[#L + 1] = "- (c): StringSplit gets a one-character delimiter. aws-local-stepfunctions splits on the "
    .. "whole delimiter string, AWS (as the conformance corpus records) and emrflow on any of its "
    .. "characters, so a longer delimiter would make the outputs differ."
  L[#L + 1] = "- (c): three of the nine calls have only constant arguments. emrflow evaluates such calls "
    .. "of pure functions once, when it compiles them, and memoizes compiled calls by their text, so the "
    .. "1,000 identical states share them; aws-local-stepfunctions evaluates every call in every state."
  L[#L + 1] = "- Neither interpreter enforces AWS's quota of 25,000 history events per Standard execution; "
    .. "(b) records 60,006 events and the memory loop 200,004."
  L[#L + 1] = ""
  return table.concat(L, "\n")
end

local function main(argv)
  local opts = parse_args(argv)
  if not opts then
    io.stderr:write("usage: lua5.4 bench/asl_bench.lua [--rounds N] [--runs K] [--cases abc] [--no-node] "
      .. "[--no-memory] [--no-write] [--regen]\n")
    return 2
  end
  if opts.node and not node_ready() then
    io.stderr:write("bench: aws-local-stepfunctions is not available; running emrflow only\n")
    opts.node = false
  end
  local started = os.date("!%Y-%m-%d %H:%M UTC")
  local rows = {}
  for _, case in ipairs(CASES) do
    if opts.cases:find(case.id, 1, true) then
      local r = run_case(case, opts)
      rows[#rows + 1] = r
      report_row(r)
    end
  end
  local mem, flat, grow
  if opts.memory then
    local chain_def, chain_input = ensure_files(CASES[1], false)
    mem = memory_per_event(chain_def, chain_input)
    io.write(fmt("memory: (a) keeps %d events at %.0f bytes each: %.0f for the event record, %.0f for "
      .. "the payload it refers to\n", mem.events, mem.bytes_per_event, mem.record_per_event,
      mem.payload_per_event))
    flat = heap_over_loop(false, 200000)
    flat.long = heap_over_loop(false, 800000, 4 * LOOP_N)
    io.write(fmt("memory: %d transitions with history = false: %d heap samples within %.1f KiB of the "
      .. "first (%+.1f KiB at the last); %d transitions: %+.1f KiB at the last\n", flat.transitions, flat.n,
      flat.max - flat.min, flat.last - flat.first, flat.long.transitions, flat.long.last - flat.long.first))
    grow = heap_over_loop(true, 200000)
    io.write(fmt("memory: the same with history: +%.0f KiB after the run for %d events, %.0f bytes each\n",
      grow.after - grow.first, grow.events, (grow.after - grow.first) * 1024 / grow.events))
  end
  if opts.write then
    write(ROOT .. "/bench/RESULTS.asl.md", markdown(opts, started, rows, mem, flat, grow))
    io.write("wrote " .. ROOT .. "/bench/RESULTS.asl.md\n")
  end
  for _, r in ipairs(rows) do
    if r.ratio_best and r.ratio_best < 5 then
      io.write(fmt("note: (%s) is under the 5x goal at best (x%.1f)\n", r.case.id, r.ratio_best))
    end
  end
  return 0
end

os.exit(main(arg or {}))
