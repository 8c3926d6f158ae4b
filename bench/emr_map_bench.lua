-- EMR on EKS Map benchmark: a Map of N startJobRun.sync iterations (MaxConcurrency 0).
--
--   lua5.4 bench/emr_map_bench.lua [--jobs N] [--http-jobs M] [--sync-jobs 100,1000]
--                                  [--dmap-jobs 1000,3000,10000] [--no-http] [--write FILE]
--
-- 1. On the built-in emulator under virtual time: wall time, CPU, peak RSS, requests per job,
--    and the busiest one-second window of polls against the rate limit.
-- 2. Over HTTP against the fake server (spec/support/fake_emr.py, real time, short jobs):
--    requests per job, TCP connections, wall time beyond the jobs' own durations.
-- 4. A Distributed Map of N startJobRun.sync (each iteration a child execution) on the
--    emulator: CPU and peak RSS of the whole process for 1,000, 3,000, 10,000 jobs (linearity),
--    through the emulator's client (the wire path, as --local) and through emu:call, each run
--    in its own process (--dmap-child N wire|direct).
-- 3. N concurrent .sync waits on one virtual cluster over HTTP, all jobs at once: requests
--    by kind with the C core's batched plan (ListJobRuns per cluster) and with one
--    DescribeJobRun per job per interval (batch = false), side by side.
-- Goals: < 2 s CPU and < 100 MB RSS for 1,000 jobs; at most one request per poll interval
-- per job, plus two (StartJobRun and the poll that sees the end).
-- Writes bench/RESULTS.emr.md (or --write FILE).
package.path = "lua/?.lua;lua/?/init.lua;spec/?.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath

local asl = require "emrflow.asl"
local json = require "emrflow.json"
local core = require "emrflow.core"
local scheduler = require "emrflow.scheduler"
local emulator = require "emrflow.emulator"
local tasks = require "emrflow.emr.tasks"
local sync = require "emrflow.emr.sync"

tasks.register(asl)

local args = { jobs = 1000, http_jobs = 1000, http = true, write = "bench/RESULTS.emr.md",
               sync_jobs = { 100, 1000 }, dmap_jobs = { 1000, 3000, 10000 } }
do
  local i = 1
  while i <= #arg do
    local a = arg[i]
    if a == "--jobs" then args.jobs = math.tointeger(tonumber(arg[i + 1])); i = i + 1
    elseif a == "--http-jobs" then args.http_jobs = math.tointeger(tonumber(arg[i + 1])); i = i + 1
    elseif a == "--no-http" then args.http = false
    elseif a == "--dmap-jobs" then
      args.dmap_jobs = {}
      for v in arg[i + 1]:gmatch("%d+") do
        args.dmap_jobs[#args.dmap_jobs + 1] = math.tointeger(tonumber(v))
      end
      i = i + 1
    elseif a == "--sync-jobs" then
      args.sync_jobs = {}
      for v in arg[i + 1]:gmatch("%d+") do
        args.sync_jobs[#args.sync_jobs + 1] = math.tointeger(tonumber(v))
      end
      i = i + 1
    elseif a == "--write" then args.write = arg[i + 1]; i = i + 1
    elseif a == "--dmap-child" then
      args.dmap_child = { jobs = math.tointeger(tonumber(arg[i + 1])), path = arg[i + 2] }
      i = i + 2
    else error("emr_map_bench: unknown argument " .. a) end
    i = i + 1
  end
  assert(args.jobs and args.jobs > 0, "--jobs needs a positive integer")
end

local function peak_rss_kb()
  local f = io.open("/proc/self/status", "r")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmHWM:%s*(%d+)"))
end

local function now() return core.monotonic and core.monotonic() or os.time() end
local function cpu() return core.cpu and core.cpu() or os.clock() end

local ROLE = "arn:aws:iam::123456789012:role/job-execution-role"

local function map_machine()
  return asl.load{
    StartAt = "Fan",
    States = {
      Fan = {
        Type = "Map", MaxConcurrency = 0, ItemsPath = "$.items",
        ItemSelector = { ["VirtualClusterId.$"] = "$.VirtualClusterId", ["name.$"] = "$$.Map.Item.Value" },
        ItemProcessor = { StartAt = "Job", States = { Job = tasks.start_job_run{
          sync = true,
          ["Name.$"] = "$.name",
          ["VirtualClusterId.$"] = "$.VirtualClusterId",
          ExecutionRoleArn = ROLE,
          ReleaseLabel = "emr-6.2.0-latest",
          JobDriver = { SparkSubmitJobDriver = { EntryPoint = "s3://my-bucket/jobs/trip-count.py" } },
          ResultSelector = { ["State.$"] = "$.State" },
          End = true,
        } } },
        End = true,
      },
    },
  }
end

local function items(n)
  local t = json.array({})
  for i = 1, n do t[i] = "job-" .. i end
  return t
end

-- Polls the schedule allows for a job of `duration` seconds: the poll times up to and
-- including the first at or after the end.
local function schedule_polls(duration, poll)
  local sch = sync.schedule(poll)
  local t, iv, n = 0, sch:first(), 0
  while true do
    t = t + iv
    n = n + 1
    if t >= duration then return n end
    iv = sch:next(iv, t)
  end
end

---------------------------------------------------------------------------
-- 1. Emulator, virtual time
---------------------------------------------------------------------------

local function bench_emulator(n, keep_history)
  collectgarbage("collect")
  local emu = emulator.new{ defaults = { pending_seconds = 5, submitted_seconds = 10, running_seconds = 60 } }
  local log = {}
  local backend = setmetatable({
    endpoint_key = emu,
    call = function(_, op, params, opts)
      if op == "DescribeJobRun" then log[#log + 1] = scheduler.now() end
      return emu:call(op, params, opts)
    end,
  }, { __index = emu })
  local s = scheduler.new{ clock = "virtual", start = 1700000000 }
  local vc
  local t = s:spawn(function()
    vc = assert(emu:create_virtual_cluster{ Name = "bench",
                                             ContainerProvider = { Id = "eks", Type = "EKS" } })
  end)
  s:run_until(t)
  local m = map_machine()
  local w0, c0 = now(), cpu()
  local x = m:start({ VirtualClusterId = vc.Id, items = items(n) },
    { emr = backend, scheduler = s, history = keep_history })
  local status, out = x:wait()
  local wall, cputime = now() - w0, cpu() - c0
  assert(status == "SUCCEEDED", "emulator run: " .. tostring(status) .. " " .. json.encode(out))
  for i = 1, n do assert(out[i].State == "COMPLETED") end
  local st = emu:stats()
  table.sort(log)
  local busiest, j = 0, 1
  for i = 1, #log do
    while log[i] - log[j] >= 1 do j = j + 1 end
    if i - j + 1 > busiest then busiest = i - j + 1 end
  end
  local per_job = (st.by_operation.StartJobRun + st.by_operation.DescribeJobRun) / n
  return {
    jobs = n, wall = wall, cpu = cputime, rss_kb = peak_rss_kb(),
    virtual = s:now() - 1700000000,
    starts = st.by_operation.StartJobRun, polls = st.by_operation.DescribeJobRun,
    per_job = per_job, allowed = schedule_polls(75, nil) + 2,
    busiest = busiest, history = keep_history,
    events = keep_history and #x:history({ raw = true }) or 0,
  }
end

---------------------------------------------------------------------------
-- 2. HTTP against the fake server
---------------------------------------------------------------------------

local CREDS = { access_key_id = "AKIDEXAMPLE",
                secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" }
local HTTP_JOB_S = 0.3
local HTTP_RATES = { 50, 400 }

local function bench_http(n, rate)
  local poll = { initial = 0.2, factor = 1.5, max = 1, rate = rate }
  if not (type(core.http) == "table" and core.http.poller) then return nil, "core.http is not built" end
  local have_fake, fake = pcall(require, "support.fake")
  if not have_fake then return nil, "spec/support/fake.lua is missing" end
  local emr = require "emrflow.emr"
  local srv = fake.start("fake_emr", { "--job-seconds", tostring(HTTP_JOB_S), "--no-verify-signature" })
  local client = emr.client{ region = "us-east-1", endpoint_url = srv.url, credentials = CREDS, env = {} }
  local vc = assert(client:create_virtual_cluster{ Name = "bench",
                                                    ContainerProvider = { Id = "eks", Type = "EKS" } })
  local before = srv:control("GET", "/__fake/stats")
  local m = map_machine()
  local w0, c0 = now(), cpu()
  local x = m:start({ VirtualClusterId = vc.Id, items = items(n) },
    { emr = client, clock = "real", poll = poll, history = false })
  local status, out = x:wait()
  local wall, cputime = now() - w0, cpu() - c0
  local after = srv:control("GET", "/__fake/stats")
  client:close()
  srv:stop()
  assert(status == "SUCCEEDED", "http run: " .. tostring(status) .. " " .. json.encode(out))
  local requests = after.requests - before.requests
  -- inline Map iterations run 40 at a time: the jobs alone need waves x their duration
  local job_wall = math.ceil(n / 40) * 3 * HTTP_JOB_S
  return {
    jobs = n, wall = wall, cpu = cputime, requests = requests, per_job = requests / n,
    connections = after.connections_total, job_wall = job_wall, beyond = wall - job_wall,
    allowed = schedule_polls(3 * HTTP_JOB_S, poll) + 2, rate = rate,
  }
end


---------------------------------------------------------------------------
-- 4. A Distributed Map on the emulator (virtual time)
---------------------------------------------------------------------------

-- path "wire": the execution calls the emulator through its emrflow.emr client (emu:client():
-- signing, marshalling, checks, batched polling), as `--local` does; "direct": through emu:call.
local function bench_dmap(n, path)
  collectgarbage("collect")
  local emu = emulator.new({ defaults = { pending_seconds = 5, submitted_seconds = 10,
                                          running_seconds = 60 } }, { wire = path ~= "direct" })
  local s = scheduler.new{ clock = "virtual", start = 1700000000 }
  local vc
  s:run_until(s:spawn(function()
    vc = assert(emu:create_virtual_cluster{ Name = "bench",
                                             ContainerProvider = { Id = "eks", Type = "EKS" } })
  end))
  local def = { StartAt = "Fan", States = { Fan = {
    Type = "Map", MaxConcurrency = 0, ItemsPath = "$.items",
    ItemSelector = { ["VirtualClusterId.$"] = "$.VirtualClusterId", ["name.$"] = "$$.Map.Item.Value" },
    ItemProcessor = {
      ProcessorConfig = { Mode = "DISTRIBUTED", ExecutionType = "STANDARD" }, StartAt = "Job",
      States = { Job = { Type = "Task", Resource = "arn:aws:states:::emr-containers:startJobRun.sync",
        Parameters = { ["Name.$"] = "$.name", ["VirtualClusterId.$"] = "$.VirtualClusterId",
          ExecutionRoleArn = ROLE, ReleaseLabel = "emr-6.2.0-latest",
          JobDriver = { SparkSubmitJobDriver = { EntryPoint = "s3://my-bucket/jobs/trip-count.py" } } },
        ResultSelector = { ["State.$"] = "$.State" }, End = true } } },
    End = true } } }
  local ok, m = pcall(asl.load, def)
  if not ok then return nil, tostring(m) end
  collectgarbage("collect")
  local heap0 = collectgarbage("count")
  local c0 = cpu()
  local x = m:start({ VirtualClusterId = vc.Id, items = items(n) }, { emr = emu, scheduler = s })
  local status, out = x:wait()
  local cputime = cpu() - c0
  if status ~= "SUCCEEDED" then
    return nil, "run " .. tostring(status) .. ": " .. json.encode(out):sub(1, 200)
  end
  -- What the run leaves in the Lua heap while the execution and the emulator are kept: the
  -- collector walks it again in every cycle, so it costs CPU as the jobs grow.
  collectgarbage("collect")
  local kept_kb = collectgarbage("count") - heap0
  assert(x and emu)
  s:close()
  local st = emu:stats()
  return { jobs = n, path = path, cpu = cputime, rss_kb = peak_rss_kb(), virtual = s:now() - 1700000000,
           kept_kb = kept_kb, requests = (path == "direct" and st.calls or st.requests) - 1,
           lists = st.by_operation.ListJobRuns or 0 }
end

-- One (jobs, path) run in this process: its figures as one JSON line (peak RSS is then the
-- whole process's for that run alone).
if args.dmap_child then
  local r, why = bench_dmap(args.dmap_child.jobs, args.dmap_child.path)
  print(json.encode(r or { error = tostring(why) }))
  os.exit(0)
end

local function loadavg()
  local f = io.open("/proc/loadavg", "r")
  if not f then return nil end
  local s = f:read("l")
  f:close()
  return s and tonumber(s:match("^(%S+)"))
end

local dmaps, dmap_why = {}, nil
local dmap_load = { loadavg() }
for _, n in ipairs(args.dmap_jobs) do
  for _, path in ipairs{ "wire", "direct" } do
    local p = io.popen(string.format("lua5.4 bench/emr_map_bench.lua --dmap-child %d %s", n, path))
    local out = p:read("a")
    p:close()
    local ok, r = pcall(json.decode, out:match("[^\n]*$") ~= "" and out:match("[^\n]*$") or out)
    if not ok or type(r) ~= "table" or r.error then
      dmap_why = ok and type(r) == "table" and r.error or ("no result: " .. out:sub(1, 200))
      io.stderr:write("distributed map: skipped (" .. tostring(dmap_why) .. ")\n")
      break
    end
    dmaps[#dmaps + 1] = r
    io.stderr:write(string.format("distributed map: %d jobs (%s), %.2f s CPU, %.1f MB peak RSS\n", n, path,
      r.cpu, (r.rss_kb or 0) / 1024))
  end
  if dmap_why then break end
end
dmap_load[2] = loadavg()

---------------------------------------------------------------------------
-- 3. Concurrent .sync waits on one virtual cluster: batched plan vs one poll per job
---------------------------------------------------------------------------

local SYNC_JOB_S = 1.0

local function bench_sync(n, batch)
  local poll = { initial = 0.2, factor = 1.5, max = 1, rate = 1000 }
  if not (type(core.http) == "table" and core.http.poller) then return nil, "core.http is not built" end
  local have_fake, fake = pcall(require, "support.fake")
  if not have_fake then return nil, "spec/support/fake.lua is missing" end
  local emr = require "emrflow.emr"
  local srv = fake.start("fake_emr", { "--job-seconds", tostring(SYNC_JOB_S), "--no-verify-signature" })
  local client = emr.client{ region = "us-east-1", endpoint_url = srv.url, credentials = CREDS, env = {} }
  local vc = assert(client:create_virtual_cluster{ Name = "bench",
                                                    ContainerProvider = { Id = "eks", Type = "EKS" } })
  local final = { COMPLETED = true, FAILED = true, CANCELLED = true }
  local s = scheduler.new{ clock = "real" }
  local c0 = cpu()
  local ts = {}
  for i = 1, n do
    ts[i] = s:spawn(function()
      local run = assert(client:start_job_run{ VirtualClusterId = vc.Id, Name = "job-" .. i,
        ExecutionRoleArn = ROLE, ReleaseLabel = "emr-6.2.0-latest",
        JobDriver = { SparkSubmitJobDriver = { EntryPoint = "s3://my-bucket/jobs/trip-count.py" } } })
      return sync.wait{ backend = client, operation = "DescribeJobRun", poll = poll, batch = batch,
                        params = { VirtualClusterId = vc.Id, Id = run.Id }, unwrap = "JobRun",
                        final = final }
    end)
  end
  for i = 1, n do
    s:run_until(ts[i])
    local ok, job = ts[i]:result()
    assert(ok and job.State == "COMPLETED", "sync bench: " .. tostring(job))
  end
  local cputime = cpu() - c0
  local describes, lists, starts = 0, 0, 0
  for _, r in ipairs(srv:requests{}) do
    if r.method == "POST" then starts = starts + 1
    elseif r.path:find("/jobruns/", 1, true) then describes = describes + 1
    elseif r.path:find("/jobruns$") then lists = lists + 1 end
  end
  s:close()
  client:close()
  srv:stop()
  return { jobs = n, batch = batch ~= false, describes = describes, lists = lists, cpu = cputime,
           starts = starts }
end

local syncs = {}
if args.http then
  for _, n in ipairs(args.sync_jobs) do
    for _, batch in ipairs{ true, false } do
      local r, why3 = bench_sync(n, batch)
      if not r then io.stderr:write("sync: skipped (" .. tostring(why3) .. ")\n") break end
      syncs[#syncs + 1] = r
      io.stderr:write(string.format("sync: %d jobs, %s: %d DescribeJobRun, %d ListJobRuns\n", n,
        batch and "batched" or "per job", r.describes, r.lists))
    end
  end
end

---------------------------------------------------------------------------

local e = bench_emulator(args.jobs, false)
local eh = bench_emulator(args.jobs, true)
local fmt = string.format
io.stderr:write(fmt("emulator: %d jobs, %.2f s wall, %.2f s CPU, %.1f MB peak RSS, %.2f req/job\n",
  e.jobs, e.wall, e.cpu, (e.rss_kb or 0) / 1024, e.per_job))
local hs, why = {}, nil
if args.http then
  for _, rate in ipairs(HTTP_RATES) do
    local h
    h, why = bench_http(args.http_jobs, rate)
    if not h then
      io.stderr:write("http: skipped (" .. tostring(why) .. ")\n")
      break
    end
    hs[#hs + 1] = h
    io.stderr:write(fmt("http: %d jobs, rate %d/s, %.2f s wall (%.2f s beyond the jobs), %.2f req/job, "
      .. "%d conns\n",
      h.jobs, rate, h.wall, h.beyond, h.per_job, h.connections))
  end
end

local function emu_row(r)
  return fmt("| %d | %s | %.2f s | %.2f s | %.1f MB | %.0f s | %.2f | %d | %d (limit 10) |",
    r.jobs, r.history and fmt("on (%d events)", r.events) or "off", r.wall, r.cpu,
    (r.rss_kb or 0) / 1024, r.virtual, r.per_job, r.allowed, r.busiest)
end

local function met(ok) return ok and "met" or "NOT met" end

local function sh(cmd)
  local f = io.popen(cmd)
  if not f then return "?" end
  local out = f:read("l")
  f:close()
  return out or "?"
end

local lines = {
  "## EMR on EKS: a Map of startJobRun.sync jobs",
  "",
  "Command: `lua5.4 bench/emr_map_bench.lua" .. (args.jobs ~= 1000 and (" --jobs " .. args.jobs) or "")
    .. "` (also part of `make bench`).",
  "Machine: " .. sh("nproc") .. " CPUs ("
    .. sh("sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1") .. "), "
    .. sh("uname -srm") .. ", shared with other work; " .. os.date("!%Y-%m-%d") .. ".",
  "",
  "One Map state, MaxConcurrency 0 (emrflow runs inline Map iterations 40 at a time, as AWS",
  "does), each iteration a `startJobRun.sync` Task. requests/job counts StartJobRun and the",
  "DescribeJobRun polls; allowed/job is the polls the schedule allows up to the job's end, plus two.",
  "",
  "### On the built-in emulator, virtual time",
  "",
  "Jobs: 5 s PENDING, 10 s SUBMITTED, 60 s RUNNING; default polling (first poll after 2 s, x1.5,",
  "at most 30 s; 10 polls/s per endpoint). Peak RSS is the process's (VmHWM) after each run.",
  "",
  "| jobs | history | wall | CPU | peak RSS | virtual time | requests/job | allowed/job "
    .. "| busiest 1 s of polls |",
  "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  emu_row(e),
  emu_row(eh),
  "",
  fmt("Goals: CPU < 2 s (%s), RSS < 100 MB (%s), requests/job <= allowed/job (%s).",
    met(eh.cpu < 2), met((eh.rss_kb or 0) < 100 * 1024), met(e.per_job <= e.allowed)),
  "",
  "### Over HTTP against the fake server",
  "",
}
if #hs > 0 then
  local more = {
    fmt("Jobs: %.1f s in each of PENDING, SUBMITTED, RUNNING (real time); polling every 0.2 s x1.5",
      HTTP_JOB_S),
    "up to 1 s; the fake (Python) does not check signatures here. One client, one scheduler, one",
    "libcurl multi handle: connections is every TCP connection the fake accepted. With 40 jobs",
    "polling at once, the rate limit spaces their polls (40 at 50/s take 0.8 s): that is most of",
    "the time beyond the jobs' own, as the 400/s row shows.",
    "",
    "| jobs | polls/s | wall | jobs' own time (waves x duration) | beyond | CPU | requests/job "
      .. "| allowed/job | connections |",
    "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  }
  local all_ok = true
  for _, h in ipairs(hs) do
    more[#more + 1] = fmt("| %d | %d | %.2f s | %.2f s | %.2f s | %.2f s | %.2f | %d | %d |", h.jobs, h.rate,
      h.wall, h.job_wall, h.beyond, h.cpu, h.per_job, h.allowed, h.connections)
    all_ok = all_ok and h.per_job <= h.allowed
  end
  more[#more + 1] = ""
  more[#more + 1] = fmt("Goal: requests/job <= allowed/job (%s).", met(all_ok))
  for _, l in ipairs(more) do lines[#lines + 1] = l end
else
  lines[#lines + 1] = "Not run here: " .. tostring(why or "--no-http") .. "."
end
lines[#lines + 1] = ""
lines[#lines + 1] = "### A Distributed Map of startJobRun.sync on the emulator, virtual time"
lines[#lines + 1] = ""
if #dmaps > 0 then
  local more = {
    "Each iteration a child execution (ProcessorConfig Mode DISTRIBUTED), all started at once;",
    "jobs as in the first table; default polling (10 polls/s per endpoint, which is what",
    "stretches the virtual time). Each row is its own process: CPU is the run's, peak RSS the",
    "whole process's (VmHWM); kept/job is the Lua heap the run leaves while its execution and",
    "emulator are kept. Path wire: the execution calls the emulator through its emrflow.emr",
    "client, as `--local` does (SigV4 signing with dummy keys, marshalling, model checks on both",
    "sides, reply checks, retries, the batched .sync polling; the emulator answers the REST wire",
    "form). Path direct: `emulator.new(scenario, { wire = false })`, called through emu:call",
    "(one DescribeJobRun per job per interval). Requests/job counts StartJobRun and the polls.",
    "",
    "| jobs | path | CPU | CPU per job | peak RSS | kept/job | requests/job | ListJobRuns | virtual time |",
    "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  }
  local by_path = {}
  for _, r in ipairs(dmaps) do
    more[#more + 1] = fmt("| %d | %s | %.2f s | %.0f µs | %.1f MB | %.2f KB | %.2f | %d | %.0f s |", r.jobs,
      r.path, r.cpu, r.cpu / r.jobs * 1e6, (r.rss_kb or 0) / 1024, r.kept_kb / r.jobs, r.requests / r.jobs,
      r.lists, r.virtual)
    by_path[r.path] = by_path[r.path] or {}
    table.insert(by_path[r.path], r)
  end
  more[#more + 1] = ""
  for _, path in ipairs{ "wire", "direct" } do
    local rs = by_path[path]
    if rs and #rs > 1 then
      local last, first = rs[#rs], rs[1]
      more[#more + 1] = fmt("CPU per job at %d jobs / at %d jobs, %s: %.2f (1.00 = linear).", last.jobs,
        first.jobs, path, (last.cpu / last.jobs) / (first.cpu / first.jobs))
      more[#more + 1] = ""
    end
  end
  if dmap_load[1] and dmap_load[2] then
    more[#more + 1] = fmt("Load average (1 min) of the machine before and after these runs: %.2f, %.2f "
      .. "(2 CPUs shared with other work: CPU figures of the same run vary by 10-20 %%).", dmap_load[1],
      dmap_load[2])
    more[#more + 1] = ""
  end
  local wire = by_path.wire and by_path.wire[#by_path.wire]
  more[#more + 1] = fmt("Goal for 10,000 jobs on the wire path: CPU < 3 s (%s), peak RSS < 150 MB (%s).",
    wire and wire.jobs == 10000 and met(wire.cpu < 3) or "not run",
    wire and wire.jobs == 10000 and met((wire.rss_kb or 0) < 150 * 1024) or "not run")
  more[#more + 1] = ""
  for _, l in ipairs(more) do lines[#lines + 1] = l end
else
  lines[#lines + 1] = "Not run here: " .. tostring(dmap_why) .. "."
  lines[#lines + 1] = ""
end
if #syncs > 0 then
  local more = {
    "### Concurrent .sync waits on one virtual cluster, over HTTP",
    "",
    fmt("All N jobs started at once on one virtual cluster of the fake (%.1f s in each of PENDING,",
      SYNC_JOB_S),
    "SUBMITTED, RUNNING), each awaited by `sync.wait` as a `startJobRun.sync` Task does; polling",
    "every 0.2 s x1.5 up to 1 s. Batched: the C core's plan (src/ef_emr_sync.c) describes each job",
    "when it starts and when a ListJobRuns of its cluster (final states, createdAfter) shows it",
    "ended; the listings are per cluster, not per job. Per job: `batch = false`, one",
    "DescribeJobRun per job per interval. CPU is this process's, starts included.",
    "",
    "| jobs | polling | DescribeJobRun | ListJobRuns | poll requests/job | CPU |",
    "| ---: | --- | ---: | ---: | ---: | ---: |",
  }
  for _, r in ipairs(syncs) do
    more[#more + 1] = fmt("| %d | %s | %d | %d | %.2f | %.2f s |", r.jobs, r.batch and "batched" or "per job",
      r.describes, r.lists, (r.describes + r.lists) / r.jobs, r.cpu)
  end
  more[#more + 1] = ""
  for _, l in ipairs(more) do lines[#lines + 1] = l end
end

if args.write then
  local f = assert(io.open(args.write, "w"))
  f:write(table.concat(lines, "\n"))
  f:close()
end
print(table.concat(lines, "\n"))
