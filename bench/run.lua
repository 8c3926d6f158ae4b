-- make bench: runs every benchmark (each writes bench/RESULTS.<part>.md), then
-- joins them into bench/RESULTS.md under one header (command, machine, date).
-- capture: the part prints its figures instead of writing its RESULTS file; they go
-- into RESULTS.md as this run's figures, above the part's own notes.
local parts = {
  { "json", "bench/json_bench.lua", capture = true },
  { "sigv4", "bench/sigv4_bench.lua" },
  { "client", "bench/client_bench.lua --calls 10000 --rounds 5 --write bench/RESULTS.client.md" },
  { "asl", "bench/asl_bench.lua" },
  { "emr", "bench/emr_map_bench.lua" },
}

local only = arg[1]
local failed = {}
local captured = {}
for _, p in ipairs(parts) do
  local name, script = p[1], p[2]
  if (not only or only == name) and io.open((script:match("^%S+"))) then
    io.stderr:write("== bench ", name, "\n")
    local ok
    if p.capture then
      local h = io.popen("lua5.4 " .. script)
      local text = h:read("a")
      ok = h:close()
      io.stdout:write(text)
      captured[name] = { text = text, date = os.date("!%Y-%m-%d %H:%M UTC"), command = "lua5.4 " .. script }
    else
      ok = os.execute("lua5.4 " .. script)
    end
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
-- A captured part's figures are kept in bench/RESULTS.<part>.latest.txt so a run of
-- another part alone does not lose them.
for _, p in ipairs(parts) do
  local c = captured[p[1]]
  local latest = "bench/RESULTS." .. p[1] .. ".latest.txt"
  if c then
    local f = assert(io.open(latest, "w"))
    f:write("Latest run: `", c.command, "`, ", c.date, "\n\n```\n", c.text, "```\n")
    f:close()
  end
  local s = slurp("bench/RESULTS." .. p[1] .. ".md")
  if s then
    local l = slurp(latest)
    if l then
      s = s:gsub("\n", "\n\n" .. l .. "\nEarlier runs and notes:\n", 1)
    end
    out[#out + 1] = s
  end
end
local f = assert(io.open("bench/RESULTS.md", "w"))
f:write(table.concat(out, "\n"), "\n")
f:close()
if #failed > 0 then
  io.stderr:write("benchmarks failed: ", table.concat(failed, ", "), "\n")
  os.exit(1)
end
