-- A `.sync` job that ends between the last scheduled poll and the Task's TimeoutSeconds is
-- reported by its real state: one last DescribeJobRun at the deadline, before States.Timeout.
local asl = require "emrflow.asl"
local emulator = require "emrflow.emulator"
local scheduler = require "emrflow.scheduler"
require "emrflow.emr"

local SYNC = "arn:aws:states:::emr-containers:startJobRun.sync"
local T0 = 1733000000
local VC = "cszt6tqby98mea88f1u26cob2"
local TIMEOUT = 100

local function task(extra)
  local st = { Type = "Task", Resource = SYNC, TimeoutSeconds = TIMEOUT, End = true,
    Parameters = { Name = "late-job", VirtualClusterId = VC, ReleaseLabel = "emr-6.2.0-latest",
      ExecutionRoleArn = "arn:aws:iam::123456789012:role/job-role",
      JobDriver = { SparkSubmitJobDriver = { EntryPoint = "s3://my-bucket/job.py" } } } }
  for k, v in pairs(extra or {}) do st[k] = v end
  return { StartAt = "Job", States = { Job = st } }
end

-- Runs the Task on the emulator (virtual clock from T0): status, result, the calls made
-- ({ op =, at = }), and the job's end (virtual seconds after T0).
local function run(profile, extra)
  profile.pending_seconds, profile.submitted_seconds = 5, 10
  local emu = emulator.new{ virtual_clusters = { { id = VC, name = "prod" } }, defaults = profile }
  local log = {}
  local backend = setmetatable({
    endpoint_key = emu,
    call = function(_, op, params, opts)
      log[#log + 1] = { op = op, at = scheduler.now() - T0 }
      return emu:call(op, params, opts)
    end,
  }, { __index = emu })
  local x = asl.load(task(extra)):start({}, { emr = backend, clock = "virtual", start_time = T0 })
  local status, res = x:wait()
  return status, res, log, 15 + profile.running_seconds
end

local function calls(log, op)
  local list = {}
  for _, c in ipairs(log) do if c.op == op then list[#list + 1] = c.at end end
  return list
end

-- The running time that makes a job end halfway between the last poll before the deadline
-- and the deadline, found from a run that polls past it.
local function between_polls()
  local _, _, log = run({ running_seconds = 10 * TIMEOUT }, { TimeoutSeconds = 10 * TIMEOUT })
  local last
  for _, at in ipairs(calls(log, "DescribeJobRun")) do
    if at < TIMEOUT then last = at end
  end
  assert.is_true(TIMEOUT - last > 1, "the schedule polls just before the deadline")
  return (last + TIMEOUT) / 2 - 15
end

describe("a .sync job ending between the last poll and the Task's deadline", function()
  it("is reported COMPLETED after one last DescribeJobRun at the deadline", function()
    local running = between_polls()
    local status, res, log, ends = run({ running_seconds = running })
    assert.equal("SUCCEEDED", status)
    assert.equal("COMPLETED", res.State)
    local polls = calls(log, "DescribeJobRun")
    -- the poll before the last saw it running; the last one is the deadline's
    assert.is_true(polls[#polls - 1] < ends and ends < TIMEOUT)
    assert.near(TIMEOUT, polls[#polls], 1e-3)
    assert.equal(0, #calls(log, "CancelJobRun"))
  end)

  it("is reported by its real state when it failed in time: States.TaskFailed, not States.Timeout", function()
    local status, res, log = run({ running_seconds = between_polls(), final_state = "FAILED" })
    assert.equal("FAILED", status)
    assert.equal("States.TaskFailed", res.Error)
    assert.matches('"State":"FAILED"', res.Cause, 1, true)
    assert.equal(0, #calls(log, "CancelJobRun"))
  end)

  it("still times out (and cancels the job) when the job runs past the deadline", function()
    local status, res, log = run({ running_seconds = 10 * TIMEOUT })
    assert.equal("FAILED", status)
    assert.equal("States.Timeout", res.Error)
    local polls = calls(log, "DescribeJobRun")
    local at_deadline = 0
    for _, at in ipairs(polls) do if math.abs(at - TIMEOUT) < 1e-3 then at_deadline = at_deadline + 1 end end
    assert.equal(1, at_deadline)   -- the one last look
    assert.equal(1, #calls(log, "CancelJobRun"))
  end)

  it("makes no extra request when the job ends well before the deadline", function()
    local _, res, log = run({ running_seconds = 30 })
    assert.equal("COMPLETED", res.State)
    local polls = calls(log, "DescribeJobRun")
    -- every poll is the schedule's: the last one is the first to see the job over
    assert.is_true(polls[#polls - 1] < 45 and polls[#polls] >= 45 and polls[#polls] < TIMEOUT)
  end)
end)
