-- JSONata throughput: evaluations per second of emrflow.jsonata against jsonata-js 2.2.2 (npm),
-- side by side in one run, on the same expressions and the same document.
--
--   lua5.4 bench/jsonata_bench.lua [--ms N] [--rounds R] [--no-node] [--no-write]
--
-- Each expression is compiled once, evaluated a few times as a warm-up (node's JIT), then
-- evaluated over and over for at least N ms (default 500) of CPU time on each side (CPU time
-- of the process, all threads: the figures do not depend on what else the machine runs,
-- and node's background JIT and GC threads count as the work they are); the sides alternate,
-- R rounds (default 3), and each side's best round counts (the machine is shared). The figure
-- is evaluations per second, the ratio emrflow / jsonata-js per case and their geometric mean.
-- Both sides' outputs must be the same JSON value, or the bench stops with exit status 1.
-- jsonata-js is installed with npm once into ${XDG_CACHE_HOME:-~/.cache}/emrflow-bench/jsonata.
-- Writes bench/RESULTS.jsonata.md unless --no-write.

local script = arg and arg[0] or "bench/jsonata_bench.lua"
local ROOT = script:match("^(.*)/bench/[^/]*$") or "."
package.path = ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;" .. package.path
package.cpath = (os.getenv("EMRFLOW_BUILD") or (ROOT .. "/build")) .. "/?.so;" .. package.cpath

local json = require "emrflow.json"
local jsonata = require "emrflow.jsonata"
local value = require "emrflow.jsonata.value"

local fmt = string.format
-- CPU time of this process: the machine is shared, and CPU time counts the work done whatever
-- else runs (node's side counts the CPU time of all its threads)
local now = os.clock

local opts = { ms = 500, rounds = 3, node = true, write = true }
do
  local i = 1
  while arg and arg[i] do
    local a = arg[i]
    if a == "--ms" then
      i = i + 1
      opts.ms = tonumber(arg[i])
    elseif a == "--rounds" then
      i = i + 1
      opts.rounds = tonumber(arg[i])
    elseif a == "--no-node" then
      opts.node = false
    elseif a == "--no-write" then
      opts.write = false
    else
      io.stderr:write("usage: lua5.4 bench/jsonata_bench.lua [--ms N] [--rounds R] [--no-node] "
        .. "[--no-write]\n")
      os.exit(2)
    end
    i = i + 1
  end
end

-- The document: 1,000 order lines, the size of a large state input.
local function document()
  local cats = { "books", "games", "music", "tools", "garden" }
  local cities = { "Paris", "Lyon", "Nantes", "Lille", "Nice", "Brest", "Dijon" }
  local items = {}
  for i = 1, 1000 do
    items[i] = json.object_of(
      "id", i,
      "name", fmt("item %04d", (i * 7919) % 1000),
      "category", cats[i % #cats + 1],
      "price", ((i * 37) % 200) + 0.5,
      "qty", (i * 13) % 11,
      "tags", json.array { "t" .. (i % 3), "t" .. (i % 4) },
      "address", json.object_of("city", cities[i % #cities + 1], "zip", fmt("%05d", i * 11))
    )
  end
  return json.object_of("order", "A-1", "customer", json.object_of("name", "Ada", "tier", "gold"),
    "items", json.array(items))
end

local CASES = {
  { name = "path_predicate", expr = 'items[price > 150 and category = "games"].name' },
  { name = "map_lambda", expr = "$map(items, function($v) { $v.price * $v.qty })" },
  { name = "filter_lambda",
    expr = "$filter(items, function($v, $i) { $v.qty > 5 and $i % 2 = 0 }).id" },
  { name = "reduce_lambda", expr = "$reduce(items.price, function($acc, $p) { $acc + $p }, 0)" },
  { name = "group_object", expr = "items{ category: { 'count': $count(id), 'total': $sum(price) } }" },
  { name = "order_by", expr = "items^(>price, name)[[0..9]].id" },
  { name = "string_functions",
    expr = "$join(items[id < 200].($uppercase($substring(name, 0, 4)) & '-' & $string(id) & '@' & "
      .. "$lowercase(address.city)), ',')" },
  { name = "arithmetic", expr = "$sum(items.(price * qty * 1.2 - id / 4)) / $count(items)" },
  { name = "state_arguments",
    expr = "{ 'JobName': 'job-' & order, 'Customer': customer.name, 'Lines': $count(items), "
      .. "'Total': $round($sum(items.(price * qty)), 2), 'First': items[0].name, "
      .. "'Gold': customer.tier = 'gold' }" },
}

local function encode_sorted(v)
  -- JSON text with object keys sorted, for comparing both sides' outputs
  if type(v) == "table" and value.is_array(v) then
    local parts = {}
    for i = 1, #v do parts[i] = encode_sorted(v[i]) end
    return "[" .. table.concat(parts, ",") .. "]"
  elseif type(v) == "table" then
    local keys = value.keys(v)
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do parts[#parts + 1] = json.encode(k) .. ":" .. encode_sorted(v[k]) end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif type(v) == "number" then
    return fmt("%.12g", v)
  end
  return json.encode(v)
end

local function run_lua(doc)
  local results = {}
  for _, c in ipairs(CASES) do
    local expr = jsonata.compile(c.expr)
    local out
    for _ = 1, 5 do out = expr:evaluate(doc) end
    collectgarbage("collect")
    local evals, start, elapsed = 0, now(), 0
    while elapsed < opts.ms / 1000 do
      for _ = 1, 10 do out = expr:evaluate(doc) end
      evals = evals + 10
      elapsed = now() - start
    end
    results[c.name] = { evals = evals, seconds = elapsed, rate = evals / elapsed, output = out }
  end
  return results
end

local function sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

local function install_jsonata_js()
  local cache = (os.getenv("XDG_CACHE_HOME") or (os.getenv("HOME") .. "/.cache")) .. "/emrflow-bench/jsonata"
  local module = cache .. "/node_modules/jsonata"
  local f = io.open(module .. "/package.json")
  if f then
    f:close()
    return module
  end
  if not sh("command -v npm >/dev/null 2>&1") then return nil, "npm not installed" end
  if not sh(fmt("mkdir -p '%s' && cd '%s' && npm install --prefix . --no-audit --no-fund --silent "
      .. "jsonata@2.2.2 >npm.log 2>&1 </dev/null", cache, cache)) then
    return nil, "npm install jsonata@2.2.2 failed (see " .. cache .. "/npm.log)"
  end
  return module
end

local function run_node(doc_path, cases_path)
  if not sh("command -v node >/dev/null 2>&1") then return nil, "node not installed" end
  local module, why = install_jsonata_js()
  if not module then return nil, why end
  local p = io.popen(fmt("node '%s/bench/jsonata/run.mjs' '%s' '%s' '%s' %d", ROOT, cases_path, doc_path,
    module, opts.ms))
  local results = {}
  for line in p:lines() do
    local r = json.decode(line)
    results[r.name] = { evals = r.evals, seconds = r.seconds, rate = r.evals / r.seconds,
      output = r.output ~= json.null and r.output or nil }
  end
  p:close()
  return results
end

local function main()
  local doc = document()
  local tmp = os.tmpname()
  local doc_path, cases_path = tmp .. ".doc.json", tmp .. ".cases.json"
  local f = assert(io.open(doc_path, "w"))
  f:write(json.encode(doc))
  f:close()
  local list = {}
  for i, c in ipairs(CASES) do
    list[i] = json.object_of("name", c.name, "expr", c.expr, "warmup", 50, "batch", 10)
  end
  f = assert(io.open(cases_path, "w"))
  f:write(json.encode(json.array(list)))
  f:close()

  local function best(acc, r)
    if not r then return acc end
    if not acc then return r end
    for name, x in pairs(r) do
      if x.rate > acc[name].rate then acc[name] = x end
    end
    return acc
  end
  local lua_r, node_r, why
  for _ = 1, opts.rounds do
    lua_r = best(lua_r, run_lua(doc))
    if opts.node then
      local r
      r, why = run_node(doc_path, cases_path)
      node_r = best(node_r, r)
    else
      why = "--no-node"
    end
  end
  os.remove(doc_path)
  os.remove(cases_path)
  os.remove(tmp)

  local lines = {
    "| case | expression | emrflow evals/s | jsonata-js evals/s | ratio |",
    "|---|---|---:|---:|---:|",
  }
  local logsum, n, mismatch = 0, 0, false
  for _, c in ipairs(CASES) do
    local l, r = lua_r[c.name], node_r and node_r[c.name]
    local ratio = ""
    if r then
      if encode_sorted(l.output) ~= encode_sorted(r.output) then
        io.stderr:write(fmt("output differs for %s:\n  emrflow    %s\n  jsonata-js %s\n", c.name,
          encode_sorted(l.output):sub(1, 300), encode_sorted(r.output):sub(1, 300)))
        mismatch = true
      end
      ratio = fmt("%.1fx", l.rate / r.rate)
      logsum = logsum + math.log(l.rate / r.rate)
      n = n + 1
    end
    lines[#lines + 1] = fmt("| %s | `%s` | %.0f | %s | %s |", c.name, c.expr:gsub("|", "\\|"), l.rate,
      r and fmt("%.0f", r.rate) or "n/a", ratio)
  end
  local summary
  if n > 0 then
    summary = fmt("jsonata bench: geometric mean %.1fx jsonata-js 2.2.2 (goal >= 5x)", math.exp(logsum / n))
  else
    summary = "jsonata bench: jsonata-js n/a (" .. tostring(why) .. ")"
  end
  print(table.concat(lines, "\n"))
  print(summary)
  if opts.write then
    local uname = io.popen("uname -srm"):read("l") or "?"
    local cpu = io.popen("grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2"):read("l") or "?"
    local nodev = io.popen("node --version 2>/dev/null"):read("l") or "n/a"
    local out = assert(io.open(ROOT .. "/bench/RESULTS.jsonata.md", "w"))
    out:write("# JSONata: emrflow.jsonata vs jsonata-js 2.2.2\n\n",
      "Command: `lua5.4 bench/jsonata_bench.lua --ms ", opts.ms, " --rounds ", opts.rounds,
      "` (after `make`)\n\n",
      "Date: ", os.date("!%Y-%m-%d %H:%M UTC"), "; machine: ", uname, ",", cpu, "; ", _VERSION,
      "; node ", nodev, "\n\n",
      "Each expression compiled once, evaluated over the same 1,000-item document for at least ",
      opts.ms, " ms of CPU time per side after a warm-up (CPU time of the process, all threads), "
      .. "sides alternating, best of ", opts.rounds,
      " rounds per side; outputs of both sides checked equal.\n\n",
      table.concat(lines, "\n"), "\n\n", summary, "\n")
    out:close()
  end
  if mismatch then os.exit(1) end
end

main()
