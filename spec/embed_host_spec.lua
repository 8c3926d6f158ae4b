-- Embedding in a C host's own poll() loop (examples/host): executions run between the host's
-- own work, the host keeps its rhythm, waiting costs no CPU, stop and handler errors behave
-- as in Lua. Issue #15; doc/embedding.md.
local cjson = require "cjson"
local has_fake, fake = pcall(require, "support.fake")

local function cwd()
  local p = assert(io.popen("pwd"))
  local dir = p:read("l")
  p:close()
  return dir
end
local ROOT = cwd()
local BUILD = ROOT .. "/" .. (os.getenv("EMRFLOW_BUILD") or "build")
local HOST = BUILD .. "/emrflow-host"

local function sh_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local built, build_log
local function build_host()
  if built == nil then
    -- the compiler runs without the sanitizers "make asan" preloads into the specs
    local f = io.popen(("env -u LD_PRELOAD make -s -C %s BUILD=%s 2>&1"):format(
      sh_quote(ROOT .. "/examples/host"), sh_quote(BUILD)))
    build_log = f:read("a")
    built = f:close() == true
  end
  assert(built, "examples/host did not build:\n" .. tostring(build_log))
end

-- Writes script to a temporary file, runs the host on it; returns exit code, stdout, stderr.
local function run_host(script, ...)
  build_host()
  local path = os.tmpname()
  local errpath = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(script)
  f:close()
  local args = {}
  for _, a in ipairs{ ... } do args[#args + 1] = sh_quote(a) end
  local p = io.popen(("%s %s %s 2>%s"):format(sh_quote(HOST), sh_quote(path),
    table.concat(args, " "), sh_quote(errpath)))
  local out = p:read("a")
  local _, _, code = p:close()
  local ef = io.open(errpath)
  local err = ef and ef:read("a") or ""
  if ef then ef:close() end
  os.remove(path)
  os.remove(errpath)
  return code, out, err
end

-- The script prelude: the fake's URL and a cluster id come as arguments.
local PRELUDE = [[
local url, vc = ...
local asl = require "emrflow.asl"
local core = require "emrflow.core"
local json = require "emrflow.json"
local scheduler = require "emrflow.scheduler"
local SYNC = "arn:aws:states:::emr-containers:startJobRun.sync"
local function client()
  return require("emrflow.emr").client{ region = "us-east-1", endpoint_url = url, env = {},
    credentials = { access_key_id = "AKIDEXAMPLE",
                    secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" },
    timeout_ms = 5000, random = function() return 0.01 end }
end
local function sync_machine()
  return asl.load{ StartAt = "Job", States = { Job = { Type = "Task", Resource = SYNC, End = true,
    Parameters = { Name = "embedded", ["VirtualClusterId.$"] = "$.vc",
      ExecutionRoleArn = "arn:aws:iam::123456789012:role/job-execution-role",
      ReleaseLabel = "emr-6.2.0-latest",
      JobDriver = { SparkSubmitJobDriver = { EntryPoint = "s3://bucket/job.py" } } } } } }
end
local FAST = { initial = 0.1, factor = 1.5, max = 0.3, rate = 50 }
local s = scheduler.new{ clock = "real" }
local c = client()
]]

local THREE_AT_ONCE = PRELUDE .. [[
local states = {}
for i = 1, 3000 do
  states["P" .. i] = { Type = "Pass", Parameters = { ["i.$"] = "States.MathAdd($.i, 1)" },
    Next = i < 3000 and ("P" .. (i + 1)) or nil, End = i == 3000 or nil }
end
local t0 = core.now()
local wait_x = asl.load{ StartAt = "W", States = { W = { Type = "Wait", Seconds = 2, End = true } } }
  :start({ n = 1 }, { scheduler = s })
local sync_x = sync_machine():start({ vc = vc }, { emr = c, scheduler = s, poll = FAST })
local pass_x = asl.load{ StartAt = "P1", States = states }:start({ i = 0 }, { scheduler = s })
local ticks, last, max_gap, quiet = 0, core.now(), 0, {}
return {
  scheduler = s, interval_ms = 100,
  tick = function()
    local now = core.now()
    ticks, max_gap, last = ticks + 1, math.max(max_gap, now - last), now
    if not quiet.wall0 and sync_x:done() and pass_x:done() then
      quiet.wall0, quiet.cpu0 = now, os.clock()
    end
    if wait_x:done() then
      quiet.wall1, quiet.cpu1 = now, os.clock()
      return false
    end
  end,
  finish = function()
    local r = { elapsed = core.now() - t0, ticks = ticks, max_gap = max_gap,
      wall = quiet.wall1 - quiet.wall0, cpu = quiet.cpu1 - quiet.cpu0 }
    r.wait = { wait_x:wait() }
    r.sync = { sync_x:wait() }
    r.pass = { pass_x:wait() }
    print(json.encode(r))
    c:close()
    return 0
  end,
}
]]

local STOP_FROM_HOST = PRELUDE .. [[
local x = sync_machine():start({ vc = vc }, { emr = c, scheduler = s, poll = FAST })
local stopped = false
return {
  scheduler = s, interval_ms = 50,
  tick = function()
    if not stopped then
      for _, e in ipairs(x:history()) do
        if e.type == "TaskSubmitted" then stopped = x:stop("Host.Stop", "stopped by the C host") end
      end
    end
    return not x:done()
  end,
  finish = function()
    print(json.encode{ stopped = stopped, result = { x:wait() } })
    c:close()
    return 0
  end,
}
]]

local HANDLER_ERRORS = [[
local asl = require "emrflow.asl"
local json = require "emrflow.json"
local scheduler = require "emrflow.scheduler"
local s = scheduler.new{ clock = "real" }
local R = "arn:aws:states:::lambda:invoke"
local function handler(input)
  scheduler.sleep(0.05)
  if input.kind == "table" then error({ Error = "Custom.Error", Cause = "handler said no" }) end
  error("plain Lua error in a handler")
end
-- given both ways the API has had: at load (resources) and at start (handlers)
local m = asl.load({ StartAt = "T", States = { T = { Type = "Task", Resource = R, End = true } } },
  { resources = { [R] = handler } })
local a = m:start({ kind = "table" }, { scheduler = s, handlers = { [R] = handler } })
local b = m:start({ kind = "string" }, { scheduler = s, handlers = { [R] = handler } })
return {
  scheduler = s,          -- no tick: the host ends when the scheduler has nothing left
  finish = function()
    print(json.encode{ a = { a:wait() }, b = { b:wait() } })
    return 0
  end,
}
]]

local function live(name, fn)
  if has_fake then it(name, fn) else
    it(name, function() pending("needs spec/support/fake.lua") end)
  end
end

local function new_cluster(srv)
  local c = require("emrflow.emr").client{ region = "us-east-1", endpoint_url = srv.url, env = {},
    credentials = { access_key_id = "AKIDEXAMPLE",
                    secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" } }
  local vc = assert(c:create_virtual_cluster{ Name = "vc-host",
    ContainerProvider = { Id = "eks", Type = "EKS", Info = { EksInfo = { Namespace = "spark" } } } })
  c:close()
  return vc.Id
end

describe("examples/host: a C host's own poll() loop", function()
  local srv

  setup(function()
    if has_fake then
      srv = fake.start("fake_emr", { "--job-seconds", "0.3", "--cancel-seconds", "0.1" })
    end
  end)
  teardown(function() if srv then srv:stop() end end)

  live("runs a 2 s Wait, a .sync job over HTTP and a Pass chain at once", function()
    local code, out, err = run_host(THREE_AT_ONCE, srv.url, new_cluster(srv))
    assert.are.equal(0, code, err)
    local r = cjson.decode(out)
    assert.are.same({ "SUCCEEDED", { n = 1 } }, r.wait)
    assert.are.equal("SUCCEEDED", r.sync[1])
    assert.are.equal("COMPLETED", r.sync[2].State)
    assert.are.same({ "SUCCEEDED", { i = 3000 } }, r.pass)
    assert.is_true(r.elapsed >= 2)
    assert.is_true(r.ticks >= 15, "ticks: " .. r.ticks)
    assert.is_true(r.max_gap < 1, "largest gap between ticks: " .. r.max_gap)
    assert.is_true(r.wall >= 0.5, "pure waiting phase too short to measure: " .. r.wall)
    assert.is_true(r.cpu < 0.05 * r.wall, ("CPU %.4f s over %.3f s of waiting"):format(r.cpu, r.wall))
    if os.getenv("EMRFLOW_EMBED_FIGURES") then
      io.stderr:write(("\nC host: %.2f s total, %d ticks, largest gap %.3f s, waiting %.3f s wall "
        .. "/ %.4f s CPU (%.2f%%)\n"):format(r.elapsed, r.ticks, r.max_gap, r.wall, r.cpu,
        100 * r.cpu / r.wall))
    end
  end)

  live("exec:stop() from the host's callback cancels the running .sync job", function()
    local slow = fake.start("fake_emr", { "--running-seconds", "30", "--pending-seconds", "0.05",
                                          "--submitted-seconds", "0.05", "--cancel-seconds", "0.1" })
    local ok, e = pcall(function()
      local vc = new_cluster(slow)
      local code, out, err = run_host(STOP_FROM_HOST, slow.url, vc)
      assert.are.equal(0, code, err)
      local r = cjson.decode(out)
      assert.is_true(r.stopped)
      assert.are.same({ "ABORTED", { Error = "Host.Stop", Cause = "stopped by the C host" } }, r.result)
      local deletes = 0
      for _, q in ipairs(slow:requests{ method = "DELETE" }) do
        if q.path:find("/virtualclusters/" .. vc .. "/jobruns/", 1, true) then deletes = deletes + 1 end
      end
      assert.are.equal(1, deletes)                          -- CancelJobRun
    end)
    slow:stop()
    if not ok then error(e, 0) end
  end)

  it("an error inside a Lua handler is a Task error; the host loop ends normally", function()
    local code, out, err = run_host(HANDLER_ERRORS)
    assert.are.equal(0, code, err)
    assert.are.equal("", err)
    local r = cjson.decode(out)
    assert.are.same({ "FAILED", { Error = "Custom.Error", Cause = "handler said no" } }, r.a)
    assert.are.equal("FAILED", r.b[1])
    assert.are.equal("States.TaskFailed", r.b[2].Error)
    assert.matches("plain Lua error in a handler", r.b[2].Cause, 1, true)
  end)

  it("reports a script that fails or returns no scheduler, with exit 1 and no crash", function()
    local code, out, err = run_host("error('the script broke')")
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.matches("emrflow%-host: .*the script broke", err)
    code, out, err = run_host("return { }")
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.matches("the returned table has no scheduler", err, 1, true)
    code, out, err = run_host([[
      local s = require("emrflow.scheduler").new{ clock = "real" }
      return { scheduler = s, tick = function() error("host work failed") end }]])
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.matches("emrflow%-host: tick: .*host work failed", err)
  end)
end)
