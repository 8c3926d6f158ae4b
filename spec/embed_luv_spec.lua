-- Embedding in a libuv loop (emrflow.luv): executions run inside the host's own loop, the
-- host keeps its rhythm, and waiting costs no CPU. Issue #15; doc/embedding.md.
local asl = require "emrflow.asl"
local core = require "emrflow.core"
local scheduler = require "emrflow.scheduler"
local has_luv, uv = pcall(require, "luv")
local has_fake, fake = pcall(require, "support.fake")
local emrluv = require "emrflow.luv"

local SYNC = "arn:aws:states:::emr-containers:startJobRun.sync"
local ROLE = "arn:aws:iam::123456789012:role/job-execution-role"
local CREDS = { access_key_id = "AKIDEXAMPLE",
                secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" }
local FAST = { initial = 0.1, factor = 1.5, max = 0.3, rate = 50 }

local function live(name, fn)
  if has_luv and has_fake then it(name, fn) else
    it(name, function() pending("needs lua-luv (tools/deps.sh) and spec/support/fake.lua") end)
  end
end

local function emr_client(srv)
  return require("emrflow.emr").client{ region = "us-east-1", endpoint_url = srv.url,
    credentials = CREDS, env = {}, timeout_ms = 5000, random = function() return 0.01 end }
end

local function new_cluster(srv)
  local c = emr_client(srv)
  local vc = assert(c:create_virtual_cluster{ Name = "vc-embed",
    ContainerProvider = { Id = "eks", Type = "EKS", Info = { EksInfo = { Namespace = "spark" } } } })
  c:close()
  return vc.Id
end

local function sync_machine()
  return asl.load{ StartAt = "Job", States = { Job = { Type = "Task", Resource = SYNC, End = true,
    Parameters = { Name = "embedded", ["VirtualClusterId.$"] = "$.vc", ExecutionRoleArn = ROLE,
      ReleaseLabel = "emr-6.2.0-latest",
      JobDriver = { SparkSubmitJobDriver = { EntryPoint = "s3://bucket/job.py" } } } } } }
end

local WAIT_2S = { StartAt = "W", States = { W = { Type = "Wait", Seconds = 2, End = true } } }

-- N Pass states in a row, each adding 1 to $.i.
local function pass_chain(n)
  local states = {}
  for i = 1, n do
    states["P" .. i] = { Type = "Pass", Parameters = { ["i.$"] = "States.MathAdd($.i, 1)" },
      Next = i < n and ("P" .. (i + 1)) or nil, End = i == n or nil }
  end
  return { StartAt = "P1", States = states }
end

-- Runs the loop with the host's own repeating timer calling tick(now) every interval_ms
-- until tick returns false. Returns the tick count and the largest gap between ticks.
local function run_host_loop(interval_ms, tick)
  local ticks, last, max_gap = 0, core.now(), 0
  local host = uv.new_timer()
  host:start(interval_ms, interval_ms, function()
    local now = core.now()
    ticks = ticks + 1
    max_gap = math.max(max_gap, now - last)
    last = now
    if tick(now) == false then host:stop() host:close() end
  end)
  uv.run()
  return ticks, max_gap
end

describe("emrflow.luv", function()
  local srv

  setup(function()
    if has_luv and has_fake then
      srv = fake.start("fake_emr", { "--job-seconds", "0.3", "--cancel-seconds", "0.1" })
    end
  end)
  teardown(function() if srv then srv:stop() end end)

  live("runs a 2 s Wait, a .sync job over HTTP and a Pass chain at once in the host's loop", function()
    local vc = new_cluster(srv)
    local s = scheduler.new{ clock = "real" }
    local att = emrluv.attach(uv, s)
    local c = emr_client(srv)
    local t0 = core.now()
    local wait_x = asl.load(WAIT_2S):start({ n = 1 }, { scheduler = s })
    local sync_x = sync_machine():start({ vc = vc }, { emr = c, scheduler = s, poll = FAST })
    local pass_x = asl.load(pass_chain(3000)):start({ i = 0 }, { scheduler = s })
    local quiet = {}            -- the phase where only the Wait is left: pure waiting
    local ticks, max_gap = run_host_loop(100, function(now)
      if not quiet.wall0 and sync_x:done() and pass_x:done() then
        quiet.wall0, quiet.cpu0 = now, os.clock()
      end
      if wait_x:done() then
        quiet.wall1, quiet.cpu1 = now, os.clock()
        return false
      end
    end)
    local elapsed = core.now() - t0
    local steps = att:stats()
    att:detach()
    c:close()

    assert.are.same({ "SUCCEEDED", { n = 1 } }, { wait_x:wait() })
    local st, job = sync_x:wait()
    assert.are.equal("SUCCEEDED", st)
    assert.are.equal("COMPLETED", job.State)
    assert.are.same({ "SUCCEEDED", { i = 3000 } }, { pass_x:wait() })
    assert.is_true(elapsed >= 2)                            -- a real-clock Wait
    assert.is_true(steps.socket > 0)                        -- HTTP replies woke the loop
    -- the host's 100 ms timer kept its rhythm (loose bounds for a loaded machine)
    assert.is_true(ticks >= 15, "ticks: " .. ticks)
    assert.is_true(max_gap < 1, "largest gap between ticks: " .. max_gap)
    -- only the Wait left: the process sleeps (CPU under 5% of wall time)
    local wall = quiet.wall1 - quiet.wall0
    local cpu = quiet.cpu1 - quiet.cpu0
    if os.getenv("EMRFLOW_EMBED_FIGURES") then
      io.stderr:write(("\nluv: %.2f s total, %d ticks, largest gap %.3f s, waiting %.3f s "
        .. "wall / %.4f s CPU (%.2f%%)\n"):format(elapsed, ticks, max_gap, wall, cpu, 100 * cpu / wall))
    end
    assert.is_true(wall >= 0.5, "pure waiting phase too short to measure: " .. wall)
    assert.is_true(cpu < 0.05 * wall, ("CPU %.4f s over %.3f s of waiting"):format(cpu, wall))
  end)

  live("exec:stop() from a host callback cancels the running .sync job", function()
    local slow = fake.start("fake_emr", { "--running-seconds", "30", "--pending-seconds", "0.05",
                                          "--submitted-seconds", "0.05", "--cancel-seconds", "0.1" })
    local ok, err = pcall(function()
      local vc = new_cluster(slow)
      local s = scheduler.new{ clock = "real" }
      local att = emrluv.attach(uv, s)
      local c = emr_client(slow)
      local x = sync_machine():start({ vc = vc }, { emr = c, scheduler = s, poll = FAST })
      local stopped_at
      run_host_loop(50, function(now)
        if not stopped_at then
          for _, e in ipairs(x:history()) do
            if e.type == "TaskSubmitted" then
              stopped_at = now
              assert.is_true(x:stop("Host.Stop", "stopped from the host loop"))
            end
          end
        end
        return not x:done()
      end)
      att:detach()
      assert.is_truthy(stopped_at)
      assert.are.same({ "ABORTED", { Error = "Host.Stop", Cause = "stopped from the host loop" } },
        { x:wait() })
      local deletes = 0
      for _, r in ipairs(slow:requests{ method = "DELETE" }) do
        if r.path:find("/virtualclusters/" .. vc .. "/jobruns/", 1, true) then deletes = deletes + 1 end
      end
      assert.are.equal(1, deletes)                          -- CancelJobRun
      assert.are.equal("CANCELLED", c:list_job_runs{ VirtualClusterId = vc }.JobRuns[1].State)
      c:close()
    end)
    slow:stop()
    if not ok then error(err, 0) end
  end)

  live("an error inside a Lua handler is a Task error, never an error in the host loop", function()
    local s = scheduler.new{ clock = "real" }
    local errors = {}
    local att = emrluv.attach(uv, s, { on_error = function(e) errors[#errors + 1] = e end })
    -- The handler is given both ways the API has had: at load (resources) and at start
    -- (handlers, DESIGN "Resources, handlers and mocks").
    local R = "arn:aws:states:::lambda:invoke"
    local function handler(input)
      scheduler.sleep(0.05)                                 -- yields inside the host loop first
      if input.kind == "table" then error({ Error = "Custom.Error", Cause = "handler said no" }) end
      error("plain Lua error in a handler")
    end
    local m = asl.load({ StartAt = "T", States = {
      T = { Type = "Task", Resource = R, End = true,
            Catch = { { ErrorEquals = { "Custom.Error" }, Next = "Caught", ResultPath = "$.err" } } },
      Caught = { Type = "Pass", End = true } } }, { resources = { [R] = handler } })
    local caught = m:start({ kind = "table" }, { scheduler = s, handlers = { [R] = handler } })
    local failed = m:start({ kind = "string" }, { scheduler = s, handlers = { [R] = handler } })
    local ok = pcall(run_host_loop, 20, function() return not (caught:done() and failed:done()) end)
    att:detach()
    assert.is_true(ok)                                      -- uv.run() returned normally
    assert.are.same({}, errors)
    local st1, out1 = caught:wait()
    assert.are.equal("SUCCEEDED", st1)
    assert.are.same({ Error = "Custom.Error", Cause = "handler said no" }, out1.err)
    local st2, err2 = failed:wait()
    assert.are.equal("FAILED", st2)
    assert.are.equal("States.TaskFailed", err2.Error)
    assert.matches("plain Lua error in a handler", err2.Cause, 1, true)
  end)

  live("starting an execution after attach wakes the loop; idle handles let uv.run() return", function()
    local s = scheduler.new{ clock = "real" }
    local att = emrluv.attach(uv, s)
    uv.run()                                                -- nothing to do: returns at once
    local x = asl.load(WAIT_2S):start({}, { scheduler = s, name = "late" })
    local m = asl.load{ StartAt = "W", States = { W = { Type = "Wait", Seconds = 1, End = true } } }
    local y = m:start({ k = "v" }, { scheduler = s })
    x:stop("Stop", "not needed")                            -- from host code, between steps
    uv.run()                                                -- runs until both are done
    att:detach()
    assert.are.equal("ABORTED", (x:wait()))
    assert.are.same({ "SUCCEEDED", { k = "v" } }, { y:wait() })
  end)

  live("two schedulers in one Lua state, each on its own attachment", function()
    local s1, s2 = scheduler.new{ clock = "real" }, scheduler.new{ clock = "real" }
    local a1, a2 = emrluv.attach(uv, s1), emrluv.attach(uv, s2)
    local m = asl.load{ StartAt = "W", States = { W = { Type = "Wait", Seconds = 1, Next = "P" },
      P = { Type = "Pass", Parameters = { ["n.$"] = "States.MathAdd($.n, 1)" }, End = true } } }
    local x1, x2 = m:start({ n = 1 }, { scheduler = s1 }), m:start({ n = 10 }, { scheduler = s2 })
    uv.run()
    a1:detach()
    a2:detach()
    assert.are.same({ "SUCCEEDED", { n = 2 } }, { x1:wait() })
    assert.are.same({ "SUCCEEDED", { n = 11 } }, { x2:wait() })
  end)

  it("rejects what is not a luv loop or a scheduler, and a second attachment", function()
    local s = scheduler.new{ clock = "real" }
    assert.has_error(function() emrluv.attach({}, s) end,
      "emrflow.luv.attach: expects the luv module (require \"luv\") as the loop")
    if not has_luv then return end
    assert.has_error(function() emrluv.attach(uv, {}) end,
      "emrflow.luv.attach: expects an emrflow scheduler (emrflow.scheduler.new)")
    local a = emrluv.attach(uv, s)
    assert.has_error(function() emrluv.attach(uv, s) end,
      "emrflow.luv.attach: this scheduler already has a wakeup (attached twice?)")
    a:detach()
    a:detach()                                              -- idempotent
    emrluv.attach(uv, s):detach()                           -- free again after detach
  end)
end)
