-- make bench: runs every benchmark (each writes bench/RESULTS.<part>.md), then
-- joins them into bench/RESULTS.md under one header (command, machine, date).
local parts = {
  { "json", "bench/json_bench.lua" },
  { "sigv4", "bench/sigv4_bench.lua" },
  { "client", "bench/client_bench.lua" },
  { "asl", "bench/asl_bench.lua" },
  { "emr", "bench/emr_map_bench.lua" },
}

local only = arg[1]
local failed = {}
for _, p in ipairs(parts) do
  local name, script = p[1], p[2]
  if (not only or only == name) and io.open(script) then
    io.stderr:write("== bench ", name, "\n")
    local ok = os.execute("lua5.4 " .. script)
    if not ok then failed[#failed + 1] = name end
  end
end

local function slurp(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function cmd(c)
  local p = io.popen(c)
  local s = p:read("a"):gsub("%s+$", "")
  p:close()
  return s
end

local out = {
  "# Benchmark results",
  "",
  "Produced by `make bench` (each part alone: `lua5.4 bench/run.lua PART`).",
  "Latest full run: " .. os.date("!%Y-%m-%d %H:%M UTC") .. " on " ..
    cmd("nproc") .. " cores, " ..
    cmd("grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'") .. ", " ..
    cmd(". /etc/os-release; echo $PRETTY_NAME") .. ".",
  "",
}
for _, p in ipairs(parts) do
  local s = slurp("bench/RESULTS." .. p[1] .. ".md")
  if s then out[#out + 1] = s end
end
local f = assert(io.open("bench/RESULTS.md", "w"))
f:write(table.concat(out, "\n"), "\n")
f:close()
if #failed > 0 then
  io.stderr:write("benchmarks failed: ", table.concat(failed, ", "), "\n")
  os.exit(1)
end
