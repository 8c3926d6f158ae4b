-- A resumed Task keeps the deadline its TimeoutSeconds gave the interrupted run: counted from
-- the recorded TaskStarted, not from the resume (virtual and real clock).
local store = require "emrflow.store"
local asl = require "emrflow.asl"
local emulator = require "emrflow.emulator"
local scheduler = require "emrflow.scheduler"
local su = require "support.store_util"
require "emrflow.emr"

local LAMBDA = "arn:aws:states:::lambda:invoke"
local SYNC = "arn:aws:states:::emr-containers:startJobRun.sync"
local VC = "cszt6tqby98mea88f1u26cob2"

local function machine(resource, parameters)
  return asl.load({ StartAt = "T", States = { T = { Type = "Task", Resource = resource,
    Parameters = parameters, TimeoutSeconds = 100, End = true } } }, { name = "demo" })
end

-- Steps x until its history holds an event of type etype (the process "dies" there).
local function step_until(s, x, name, etype)
  for _ = 1, 500 do
    for _, e in ipairs(s:history(name) or {}) do if e.type == etype then return e end end
    x:step(0)
  end
  error("no " .. etype .. " recorded")
end

local function last_of(s, name, etype)
  local found
  for _, e in ipairs(s:history(name)) do if e.type == etype then found = e end end
  return found
end

describe("resume and a Task's TimeoutSeconds", function()
  after_each(su.cleanup)

  it("times out at the interrupted run's deadline on the virtual clock", function()
    local s = assert(store.open(su.tmpdir() .. "/x.db"))
    local x = machine(LAMBDA):start({}, { store = s, name = "t", clock = "virtual",
      handlers = { [LAMBDA] = function() scheduler.event():wait() end } })
    local started = step_until(s, x, "t", "TaskStarted").timestamp
    -- resumed 90 s after the Task started; it needs 20 s more: past its 100 s
    local y = assert(s:resume("t", { clock = "virtual", start_time = started + 90,
      handlers = { [LAMBDA] = function()
        scheduler.sleep(20)
        return { late = true }
      end } }))
    local status, err = y:wait()
    assert.equal("FAILED", status)
    assert.equal("States.Timeout", err.Error)
    assert.near(started + 100, last_of(s, "t", "TaskTimedOut").timestamp, 0.01)
    s:close()
  end)

  it("times out at once on the real clock when the deadline passed while no process ran", function()
    local s = assert(store.open(su.tmpdir() .. "/x.db"))
    -- the interrupted run started its Task an hour ago
    local x = machine(LAMBDA):start({}, { store = s, name = "r", clock = "virtual",
      start_time = os.time() - 3600, handlers = { [LAMBDA] = function() scheduler.event():wait() end } })
    step_until(s, x, "r", "TaskStarted")
    local cleaned
    local y = assert(s:resume("r", { clock = "real", handlers = { [LAMBDA] = function()
      local ok, e = pcall(scheduler.sleep, 5)
      if not ok then cleaned = e.Error; error(e, 0) end
      return { late = true }
    end } }))
    local status, err = y:wait()
    assert.equal("FAILED", status)
    assert.equal("States.Timeout", err.Error)
    assert.equal("States.Timeout", cleaned)
    s:close()
  end)

  -- A .sync job of running_seconds started by a run that "dies" once it is submitted; the
  -- execution resumed `later` seconds after: status, result, the emulator's calls by operation,
  -- when the job was cancelled, when the Task started.
  local function resumed_sync_job(running_seconds, later)
    local s = assert(store.open(su.tmpdir() .. "/x.db"))
    local emu = emulator.new{ virtual_clusters = { { id = VC, name = "prod" } },
      defaults = { running_seconds = running_seconds } }
    local params = { Name = "long", VirtualClusterId = VC, ReleaseLabel = "emr-6.2.0-latest",
      ExecutionRoleArn = "arn:aws:iam::123456789012:role/job-role",
      JobDriver = { SparkSubmitJobDriver = { EntryPoint = "s3://my-bucket/job.py" } } }
    local x = machine(SYNC, params):start({}, { store = s, name = "j", clock = "virtual", emr = emu })
    local started = step_until(s, x, "j", "TaskSubmitted").timestamp
    local cancelled_at
    local y = assert(s:resume("j", { clock = "virtual", start_time = started + later, emr = emu,
      on_emr_event = function(ev) if ev.kind == "cancel" then cancelled_at = ev.at end end }))
    local status, res = y:wait()
    local timed_out = last_of(s, "j", "TaskTimedOut")
    s:close()
    return status, res, emu:stats().by_operation, cancelled_at, started, timed_out
  end

  it("a resumed .sync job is found again and cancelled at the recorded deadline", function()
    local status, err, ops, cancelled_at, started, timed_out = resumed_sync_job(1000, 90)
    assert.equal("FAILED", status)
    assert.equal("States.Timeout", err.Error)
    -- cancelled at the deadline (TaskTimedOut follows once the job is CANCELLED)
    assert.near(started + 100, cancelled_at, 0.01)
    assert.truthy(timed_out)
    assert.equal(1, ops.StartJobRun)
    assert.equal(1, ops.CancelJobRun)
  end)

  it("resumed after its deadline, a .sync Task times out at once and its job is cancelled", function()
    local status, err, ops, cancelled_at, started = resumed_sync_job(1000, 200)
    assert.equal("FAILED", status)
    assert.equal("States.Timeout", err.Error)
    assert.near(started + 200, cancelled_at, 0.01)
    assert.equal(1, ops.StartJobRun)
    assert.equal(1, ops.CancelJobRun)
  end)

  it("resumed after its deadline, a job that had ended before it is reported as it ended", function()
    -- the job ends 15 + 50 s after its start, before the Task's 100 s were up
    local status, out, ops = resumed_sync_job(50, 200)
    assert.equal("SUCCEEDED", status)
    assert.equal("COMPLETED", out.State)
    assert.equal(1, ops.StartJobRun)
    assert.is_nil(ops.CancelJobRun)
    -- the job ended at 165 s, after the deadline: the Task had timed out by then
    local status2, err2 = resumed_sync_job(150, 200)
    assert.equal("FAILED", status2)
    assert.equal("States.Timeout", err2.Error)
  end)
end)
