-- `emrflow graph --execution` after a redrive: the colours are those of the execution's latest
-- attempt (a state that failed, then succeeded on redrive, is succeeded).
local graph = require "emrflow.graph"
local su = require "support.store_util"

-- A history event: id, previous id, type and (for state events) the state's name.
local function ev(id, prev, etype, name)
  local e = { id = id, previousEventId = prev, type = etype, timestamp = 1700000000 + id }
  if name and etype:sub(-7) == "Entered" then
    e.stateEnteredEventDetails = { name = name, input = "{}" }
  elseif name then
    e.stateExitedEventDetails = { name = name, output = "{}" }
  end
  return e
end

-- Prep (Pass) succeeds, Job (Task) fails, the execution fails: the first attempt.
local function failed_attempt()
  return {
    ev(1, 0, "ExecutionStarted"),
    ev(2, 1, "PassStateEntered", "Prep"), ev(3, 2, "PassStateExited", "Prep"),
    ev(4, 3, "TaskStateEntered", "Job"), ev(5, 4, "TaskScheduled"), ev(6, 5, "TaskStarted"),
    ev(7, 6, "TaskFailed"), ev(8, 7, "ExecutionFailed"),
  }
end

local function add(list, ...)
  for _, e in ipairs { ... } do list[#list + 1] = e end
  return list
end

describe("graph.state_status of a redriven execution", function()
  it("shows a state that failed and then succeeded on redrive as succeeded", function()
    local h = add(failed_attempt(), ev(9, 8, "ExecutionRedriven"),
      ev(10, 3, "TaskStateEntered", "Job"), ev(11, 10, "TaskScheduled"), ev(12, 11, "TaskStarted"),
      ev(13, 12, "TaskSucceeded"), ev(14, 13, "TaskStateExited", "Job"),
      ev(15, 14, "ExecutionSucceeded"))
    assert.same({ Prep = "succeeded", Job = "succeeded" }, graph.state_status(h))
  end)

  it("keeps the state failed when the redrive fails it again, and running while it runs", function()
    local again = add(failed_attempt(), ev(9, 8, "ExecutionRedriven"),
      ev(10, 3, "TaskStateEntered", "Job"), ev(11, 10, "TaskScheduled"), ev(12, 11, "TaskStarted"),
      ev(13, 12, "TaskFailed"), ev(14, 13, "ExecutionFailed"))
    assert.same({ Prep = "succeeded", Job = "failed" }, graph.state_status(again))
    local running = add(failed_attempt(), ev(9, 8, "ExecutionRedriven"),
      ev(10, 3, "TaskStateEntered", "Job"), ev(11, 10, "TaskScheduled"))
    assert.same({ Prep = "succeeded", Job = "running" }, graph.state_status(running))
    -- redriven, not yet entered again: the earlier attempt's failure is what is known
    local just = add(failed_attempt(), ev(9, 8, "ExecutionRedriven"))
    assert.same({ Prep = "succeeded", Job = "failed" }, graph.state_status(just))
  end)

  it("colours a Map by its latest attempt, as the states inside it", function()
    local h = {
      ev(1, 0, "ExecutionStarted"), ev(2, 1, "MapStateEntered", "M"), ev(3, 2, "MapStateStarted"),
      ev(4, 3, "TaskStateEntered", "T"), ev(5, 4, "TaskFailed"),
      ev(6, 5, "MapStateFailed"), ev(7, 6, "ExecutionFailed"), ev(8, 7, "ExecutionRedriven"),
      ev(9, 1, "MapStateEntered", "M"), ev(10, 9, "MapStateStarted"),
      ev(11, 10, "TaskStateEntered", "T"), ev(12, 11, "TaskSucceeded"), ev(13, 12, "TaskStateExited", "T"),
      ev(14, 13, "MapStateSucceeded"), ev(15, 14, "MapStateExited", "M"), ev(16, 15, "ExecutionSucceeded"),
    }
    assert.same({ M = "succeeded", T = "succeeded" }, graph.state_status(h))
  end)
end)

describe("emrflow graph --execution --store after a successful redrive", function()
  after_each(su.cleanup)

  local function emrflow(args)
    return su.sh("EMRFLOW_STORE=/dev/null/no-store lua5.4 bin/emrflow " .. args .. " 2>&1; echo exit=$?")
  end

  it("colours the redriven Task succeeded", function()
    local dir = su.tmpdir()
    local path = dir .. "/x.db"
    local cluster = '"virtual_clusters":[{"id":"cszt6tqby98mea88f1u26cob2","name":"prod"}]'
    su.write(dir .. "/fail.json",
      "{" .. cluster .. ',"defaults":{"final_state":"FAILED","running_seconds":5}}')
    su.write(dir .. "/ok.json", "{" .. cluster .. ',"defaults":{"running_seconds":5}}')
    local input = su.quote('{"VirtualClusterId":"cszt6tqby98mea88f1u26cob2"}')
    local _, out = emrflow("run examples/emr-eks-job.json --local --name j1 --input " .. input
      .. " --scenario " .. su.quote(dir .. "/fail.json") .. " --store " .. su.quote(path))
    assert.matches("exit=2", out)
    _, out = emrflow("graph examples/emr-eks-job.json --execution j1 --store " .. su.quote(path))
    assert.matches("class s1 failed", out, 1, true)
    _, out = emrflow("redrive j1 --scenario " .. su.quote(dir .. "/ok.json") .. " --store " .. su.quote(path))
    assert.matches("exit=0", out)
    _, out = emrflow("graph examples/emr-eks-job.json --execution j1 --store " .. su.quote(path))
    assert.matches("exit=0", out)
    assert.matches("class s1 succeeded", out, 1, true)
    assert.matches("%% execution: succeeded 1", out, 1, true)
    assert.is_nil(out:find("class s1 failed", 1, true))
  end)
end)
