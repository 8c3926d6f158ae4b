-- A deleteVirtualCluster.sync whose cluster terminates between the last scheduled poll and the
-- Task's TimeoutSeconds is reported TERMINATED: one last DescribeVirtualCluster at the deadline,
-- before States.Timeout (as startJobRun.sync's last look at its job).
local asl = require "emrflow.asl"
local emulator = require "emrflow.emulator"
local scheduler = require "emrflow.scheduler"
require "emrflow.emr"

local DELETE = "arn:aws:states:::emr-containers:deleteVirtualCluster.sync"
local T0 = 1733000000
local VC = "cszt6tqby98mea88f1u26cob2"
local TIMEOUT = 100

-- Deletes the scenario's cluster (terminating for `terminating` virtual seconds) under a Task
-- TimeoutSeconds of `timeout`: status, result and the virtual times of DescribeVirtualCluster.
local function run(terminating, timeout)
  local emu = emulator.new{ virtual_clusters = { { id = VC, name = "prod" } },
    defaults = { terminating_seconds = terminating } }
  local polls = {}
  local backend = setmetatable({
    endpoint_key = emu,
    call = function(_, op, params, opts)
      if op == "DescribeVirtualCluster" then polls[#polls + 1] = scheduler.now() - T0 end
      return emu:call(op, params, opts)
    end,
  }, { __index = emu })
  local def = { StartAt = "Delete", States = { Delete = { Type = "Task", Resource = DELETE,
    TimeoutSeconds = timeout, Parameters = { Id = VC }, End = true } } }
  local status, res = asl.load(def):start({}, { emr = backend, clock = "virtual", start_time = T0 }):wait()
  return status, res, polls
end

describe("a deleteVirtualCluster.sync cluster terminating just before the Task's deadline", function()
  it("is reported TERMINATED after one last DescribeVirtualCluster at the deadline", function()
    -- the schedule's polls, from a cluster that terminates long after the deadline
    local status, res, polls = run(10 * TIMEOUT, TIMEOUT)
    assert.equal("FAILED", status)
    assert.equal("States.Timeout", res.Error)
    local last_before
    for _, at in ipairs(polls) do
      if at < TIMEOUT - 1e-6 then last_before = at end
    end
    assert.is_true(TIMEOUT - last_before > 1, "the schedule polls just before the deadline")
    assert.equal(TIMEOUT, polls[#polls])                  -- the last look, at the deadline
    -- a cluster terminating halfway between that poll and the deadline
    status, res, polls = run((last_before + TIMEOUT) / 2, TIMEOUT)
    assert.equal("SUCCEEDED", status, res and res.Cause)
    assert.equal("TERMINATED", res.State)
    assert.equal(VC, res.Id)
    assert.equal(TIMEOUT, polls[#polls])
  end)

  it("still times out when the cluster is still terminating at the deadline", function()
    local status, res = run(TIMEOUT + 50, TIMEOUT)
    assert.equal("FAILED", status)
    assert.equal("States.Timeout", res.Error)
  end)

  it("makes no extra request when the cluster terminates well before the deadline", function()
    local status, res, polls = run(3, TIMEOUT)
    assert.equal("SUCCEEDED", status)
    assert.equal("TERMINATED", res.State)
    assert.is_true(polls[#polls] < TIMEOUT)
  end)
end)
