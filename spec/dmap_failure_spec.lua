-- Distributed Map failure semantics as AWS has them: a Distributed Map tolerates no failed
-- child execution unless told otherwise, and fails with States.ExceedToleratedFailureThreshold
-- (never with the child's own error) once its tolerance is exceeded; with both a count and a
-- percentage it fails when either is exceeded. An inline Map keeps the item's own error. A
-- child execution starts with the parent's role, as AWS's child executions do.
local asl = require "emrflow.asl"
local json = require "emrflow.json"
local scheduler = require "emrflow.scheduler"

local EXCEEDED = { Error = "States.ExceedToleratedFailureThreshold",
  Cause = "The specified tolerated failure threshold was exceeded" }

-- An item processor: an item { fail = true } fails with Bad, any other passes through.
local function processor(mode)
  return { ProcessorConfig = { Mode = mode, ExecutionType = "STANDARD" }, StartAt = "Check", States = {
    Check = { Type = "Choice", Choices = { { Variable = "$.fail", IsPresent = true, Next = "Fail" } },
      Default = "Ok" },
    Fail = { Type = "Fail", Error = "Bad", Cause = "the item failed" },
    Ok = { Type = "Pass", End = true } } }
end

-- A machine whose only state is a Map (mode DISTRIBUTED unless given) with the fields in extra.
local function machine(extra, mode)
  local m = { Type = "Map", End = true, ItemProcessor = processor(mode or "DISTRIBUTED") }
  for k, v in pairs(extra or {}) do m[k] = v end
  return asl.load { StartAt = "M", States = { M = m } }
end

-- n items of which the ones at the positions in failing fail.
local function items(n, failing)
  local list = {}
  for i = 1, n do list[i] = { i = i } end
  for _, i in ipairs(failing or {}) do list[i].fail = true end
  return list
end

local function run(m, input, opts)
  opts = opts or {}
  opts.clock = opts.clock or "virtual"
  local x = m:start(input, opts)
  local status, out = x:wait()
  return status, out, x
end

local function events(x, type_name)
  local list = {}
  for _, e in ipairs(x:history()) do
    if e.type == type_name then list[#list + 1] = e end
  end
  return list
end

local function error_cause(details)
  return { Error = details.error, Cause = details.cause }
end

describe("Distributed Map failures", function()
  it("without a tolerance one failed child fails the Map with ExceedToleratedFailureThreshold", function()
    local children = {}
    local status, err, x = run(machine(), items(3, { 2 }), { on_child_execution = function(c)
      children[#children + 1] = { status = c.status, history = c:history() }
    end })
    assert.equal("FAILED", status)
    assert.same(EXCEEDED, { Error = err.Error, Cause = err.Cause })
    -- the Map Run and the execution carry it; MapStateFailed has no details (as on AWS)
    local run_failed = events(x, "MapRunFailed")
    assert.equal(1, #run_failed)
    assert.same(EXCEEDED, error_cause(run_failed[1].mapRunFailedEventDetails))
    assert.equal(1, #events(x, "MapStateFailed"))
    local h = x:history()
    assert.equal("ExecutionFailed", h[#h].type)
    assert.same(EXCEEDED, error_cause(h[#h].executionFailedEventDetails))
    assert.equal(0, #events(x, "MapStateExited"))
    -- the failed child keeps its own error in its own history
    local failed = 0
    for _, c in ipairs(children) do
      if c.status == "FAILED" then
        failed = failed + 1
        local last = c.history[#c.history]
        assert.equal("ExecutionFailed", last.type)
        assert.same({ Error = "Bad", Cause = "the item failed" },
          error_cause(last.executionFailedEventDetails))
      end
    end
    assert.equal(1, failed)
  end)

  it("a Catch on the Map sees ExceedToleratedFailureThreshold, not the child's error", function()
    local def = { StartAt = "M", States = {
      M = { Type = "Map", ItemsPath = "$.items", ResultPath = "$.out",
        ItemProcessor = processor("DISTRIBUTED"),
        Catch = {
          { ErrorEquals = { "Bad" }, ResultPath = "$.caught", Next = "Wrong" },
          { ErrorEquals = { "States.ExceedToleratedFailureThreshold" }, ResultPath = "$.caught",
            Next = "Right" } },
        End = true },
      Wrong = { Type = "Pass", Result = "wrong", ResultPath = "$.via", End = true },
      Right = { Type = "Pass", Result = "right", ResultPath = "$.via", End = true } } }
    local status, out = run(asl.load(def), { items = items(2, { 1 }) })
    assert.equal("SUCCEEDED", status)
    assert.equal("right", out.via)
    assert.same(EXCEEDED, out.caught)
    -- States.ALL catches it as well
    def.States.M.Catch = { { ErrorEquals = { "States.ALL" }, ResultPath = "$.caught", Next = "Right" } }
    def.States.Wrong = nil
    status, out = run(asl.load(def), { items = items(2, { 1 }) })
    assert.equal("SUCCEEDED", status)
    assert.same(EXCEEDED, out.caught)
  end)

  it("a count tolerates exactly that many failures; one more fails the Map", function()
    local status, out = run(machine { ToleratedFailureCount = 2 }, items(4, { 1, 3 }))
    assert.equal("SUCCEEDED", status)
    assert.same({ Error = "Bad", Cause = "the item failed" }, out[1])
    assert.same({ i = 2 }, out[2])
    assert.same({ i = 4 }, out[4])
    local err
    status, err = run(machine { ToleratedFailureCount = 2 }, items(4, { 1, 3, 4 }))
    assert.equal("FAILED", status)
    assert.same(EXCEEDED, { Error = err.Error, Cause = err.Cause })
    -- a count of 0 given explicitly is the default
    status, err = run(machine { ToleratedFailureCount = 0 }, items(2, { 2 }))
    assert.same({ "FAILED", EXCEEDED.Error }, { status, err.Error })
  end)

  it("a percentage is of all the items: exactly the share passes, above it fails; 0 items pass", function()
    -- 1 of 4 is 25 %
    local status = run(machine { ToleratedFailurePercentage = 25 }, items(4, { 2 }))
    assert.equal("SUCCEEDED", status)
    local err
    status, err = run(machine { ToleratedFailurePercentage = 25 }, items(4, { 2, 3 }))
    assert.same({ "FAILED", EXCEEDED.Error }, { status, err.Error })
    -- 1 of 3 is 33.3... %: over 33, within 33.4
    status = run(machine { ToleratedFailurePercentage = 33 }, items(3, { 1 }))
    assert.equal("FAILED", status)
    status = run(machine { ToleratedFailurePercentage = 33.4 }, items(3, { 1 }))
    assert.equal("SUCCEEDED", status)
    -- no item: nothing fails, whatever the tolerance
    local out
    for _, extra in ipairs { { ToleratedFailurePercentage = 0 }, { ToleratedFailureCount = 0 }, {} } do
      status, out = run(machine(extra), json.array {})
      assert.equal("SUCCEEDED", status)
      assert.same({}, out)
    end
  end)

  it("with both a count and a percentage, exceeding either one fails the Map", function()
    -- 2 failures of 4 (50 %)
    local cases = {
      { count = 1, pct = 100, status = "FAILED" },    -- the count is exceeded
      { count = 5, pct = 25, status = "FAILED" },     -- the percentage is exceeded
      { count = 2, pct = 50, status = "SUCCEEDED" },  -- neither is exceeded
      { count = 1, pct = 25, status = "FAILED" },     -- both are
    }
    for _, c in ipairs(cases) do
      local why = ("count %d, percentage %d"):format(c.count, c.pct)
      local status, out = run(machine { ToleratedFailureCount = c.count, ToleratedFailurePercentage = c.pct },
        items(4, { 1, 2 }))
      assert.equal(c.status, status, why)
      if status == "FAILED" then assert.equal(EXCEEDED.Error, out.Error, why) end
      -- the Path forms follow the same rule
      local input = { xs = items(4, { 1, 2 }), count = c.count, pct = c.pct }
      status = run(machine { ItemsPath = "$.xs", ToleratedFailureCountPath = "$.count",
        ToleratedFailurePercentagePath = "$.pct" }, input)
      assert.equal(c.status, status, why .. " (Path forms)")
    end
  end)

  it("an inline Map still fails with the item's own error and has no Map Run", function()
    local status, err, x = run(machine(nil, "INLINE"), items(3, { 2 }))
    assert.equal("FAILED", status)
    assert.same({ Error = "Bad", Cause = "the item failed" }, { Error = err.Error, Cause = err.Cause })
    assert.equal(0, #events(x, "MapRunFailed"))
    assert.equal(1, #events(x, "MapIterationFailed"))
    -- with a tolerance it counts its failures the same way
    status = run(machine({ ToleratedFailureCount = 1 }, "INLINE"), items(3, { 2 }))
    assert.equal("SUCCEEDED", status)
  end)

  it("a child execution's ExecutionStarted carries the parent's roleArn", function()
    for _, role in ipairs { false, "arn:aws:iam::123456789012:role/nightly" } do
      local started = {}
      local status, _, x = run(machine(), items(2), { role_arn = role or nil, on_child_execution = function(c)
        started[#started + 1] = c:history()[1]
      end })
      assert.equal("SUCCEEDED", status)
      local parent = x:history()[1]
      assert.equal("ExecutionStarted", parent.type)
      local want = parent.executionStartedEventDetails.roleArn
      assert.is_string(want)
      if role then assert.equal(role, want) end
      assert.equal(2, #started)
      for _, e in ipairs(started) do
        assert.equal("ExecutionStarted", e.type)
        assert.equal(want, e.executionStartedEventDetails.roleArn)
      end
    end
  end)

  it("a timed-out execution still ends TIMED_OUT, its Map Run without MapRunFailed", function()
    local m = asl.load { StartAt = "M", TimeoutSeconds = 5, States = { M = { Type = "Map", End = true,
      ItemProcessor = { ProcessorConfig = { Mode = "DISTRIBUTED" }, StartAt = "W",
        States = { W = { Type = "Wait", Seconds = 60, End = true } } } } } }
    local status, _, x = run(m, { 1, 2 })
    assert.equal("TIMED_OUT", status)
    assert.equal("ExecutionTimedOut", x:history()[#x:history()].type)
    assert.equal(0, #events(x, "MapRunFailed"))
  end)

  it("a stopped execution still ends ABORTED; its running children are ABORTED, not failures", function()
    local children = {}
    local m = asl.load { StartAt = "M", States = { M = { Type = "Map", End = true,
      ItemProcessor = { ProcessorConfig = { Mode = "DISTRIBUTED" }, StartAt = "W",
        States = { W = { Type = "Wait", Seconds = 60, End = true } } } } } }
    local x = m:start({ 1, 2 }, { clock = "virtual",
      on_child_execution = function(c) children[#children + 1] = c.status end })
    local s = x.s
    s:spawn(function()
      scheduler.sleep(1)
      x:stop("User", "stopped")
    end)
    local status, err = x:wait()
    assert.equal("ABORTED", status)
    assert.equal("User", err.Error)
    assert.equal(0, #events(x, "MapRunFailed"))
    assert.same({ "ABORTED", "ABORTED" }, children)
  end)
end)
