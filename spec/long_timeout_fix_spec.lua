-- Very long emulated jobs on the virtual clock: the clock jumps from one poll to the next (no
-- work per simulated second: the requests made are the poll schedule's), and a Task's own
-- TimeoutSeconds holds however large it is (it used to be ignored from 99999999 s up).
local asl = require "emrflow.asl"
local emulator = require "emrflow.emulator"
local sync = require "emrflow.emr.sync"
require "emrflow.emr"

local SYNC = "arn:aws:states:::emr-containers:startJobRun.sync"
local VC = "cszt6tqby98mea88f1u26cob2"
local T0 = 1733000000
local POLL = { max = 1e6 }

local function run(running_seconds, timeout)
  -- jobs longer than the scenario's one-year maximum: raised for this study
  local emu = emulator.new({ virtual_clusters = { { id = VC, name = "prod" } },
    defaults = { running_seconds = running_seconds } }, { max_duration_seconds = 1e10 })
  local def = { StartAt = "Job", States = { Job = { Type = "Task", Resource = SYNC, End = true,
    TimeoutSeconds = timeout,
    Parameters = { Name = "forever", VirtualClusterId = VC, ReleaseLabel = "emr-6.2.0-latest",
      ExecutionRoleArn = "arn:aws:iam::123456789012:role/job-role",
      JobDriver = { SparkSubmitJobDriver = { EntryPoint = "s3://my-bucket/job.py" } } } } } }
  local cancelled_at
  local x = asl.load(def):start({}, { emr = emu, clock = "virtual", start_time = T0, poll = POLL,
    on_emr_event = function(ev) if ev.kind == "cancel" then cancelled_at = ev.at end end })
  local status, res = x:wait()
  return status, res, emu:stats().by_operation, cancelled_at
end

-- How many polls the schedule makes in `seconds` (the first after first(), then growing).
local function planned_polls(seconds)
  local sched = sync.schedule(POLL)
  local interval = sched:first()
  local t, n = interval, 0
  while t <= seconds do
    n = n + 1
    interval = sched:next(interval, t)
    t = t + interval
  end
  return n
end

describe("a job running 2e9 s on the virtual clock", function()
  it("times out at a TimeoutSeconds of 1e9, having polled as the schedule says", function()
    local status, res, ops, cancelled_at = run(2e9, 1e9)
    assert.equal("FAILED", status)
    assert.equal("States.Timeout", res.Error)
    assert.near(T0 + 1e9, cancelled_at, 1e-3)
    assert.equal(1, ops.CancelJobRun)
    -- the schedule's polls up to the deadline, the last look at it, and the cancel's wait
    -- for CANCELLED (a few polls): nothing per simulated second
    local planned = planned_polls(1e9)
    assert.is_true(ops.DescribeJobRun >= planned, ops.DescribeJobRun .. " < " .. planned)
    assert.is_true(ops.DescribeJobRun <= planned + 10, ops.DescribeJobRun .. " > " .. planned .. " + 10")
  end)

  it("succeeds within a TimeoutSeconds of 3e9, still polling as the schedule says", function()
    local status, res, ops = run(2e9, 3e9)
    assert.equal("SUCCEEDED", status)
    assert.equal("COMPLETED", res.State)
    local planned = planned_polls(2e9 + 15)
    assert.is_true(ops.DescribeJobRun >= planned and ops.DescribeJobRun <= planned + 5,
      ops.DescribeJobRun .. " polls for " .. planned .. " planned")
  end)
end)
