-- The ASL interpreter: states, data flow, errors, Retry/Catch, timeouts, Parallel/Map,
-- variables, the context object, history, stop, to_json.
local asl = require "emrflow.asl"
local json = require "emrflow.json"
local scheduler = require "emrflow.scheduler"

local null = json.null

local function run(def, input, opts)
  opts = opts or {}
  opts.clock = opts.clock or "virtual"
  local m = asl.load(def, opts.load)
  local start = {}
  for k, v in pairs(opts) do
    if k ~= "load" then start[k] = v end
  end
  local x = m:start(input, start)
  local status, res = x:wait()
  return status, res, x
end

local function pass_chain(n)
  local states = {}
  for i = 1, n do
    states["S" .. i] = { Type = "Pass", Parameters = { ["v.$"] = "$.v", i = i }, ResultPath = "$.last",
      OutputPath = "$.last", Next = i < n and ("S" .. (i + 1)) or nil, End = i == n or nil }
  end
  return { StartAt = "S1", States = states }
end

describe("emrflow.asl engine", function()
  describe("data flow (JSONPath)", function()
    local cases = {
      { "Parameters with .$ paths and ResultPath into the raw input",
        { StartAt = "A", States = { A = { Type = "Pass", InputPath = "$.in", Parameters = { ["x.$"] = "$.a" },
          ResultPath = "$.out", End = true } } },
        { ["in"] = { a = 1 } }, { ["in"] = { a = 1 }, out = { x = 1 } } },
      { "Pass Result is literal: .$ keys are not evaluated",
        { StartAt = "A", States = { A = { Type = "Pass", Result = { ["k.$"] = "$$" }, End = true } } },
        { a = 1 }, { ["k.$"] = "$$" } },
      { "InputPath null gives {} and OutputPath null gives {}",
        { StartAt = "A", States = { A = { Type = "Pass", InputPath = null, ResultPath = "$.r",
          Next = "B" }, B = { Type = "Pass", OutputPath = null, End = true } } },
        { a = 1 }, {} },
      { "ResultPath null keeps the raw input",
        { StartAt = "A", States = { A = { Type = "Pass", Result = 5, ResultPath = null, End = true } } },
        { a = 1 }, { a = 1 } },
      { "ResultPath creates intermediate objects",
        { StartAt = "A", States = { A = { Type = "Pass", Result = 5, ResultPath = "$.x.y.z", End = true } } },
        {}, { x = { y = { z = 5 } } } },
      { "intrinsics in Parameters",
        { StartAt = "A", States = { A = { Type = "Pass",
          Parameters = { ["s.$"] = "States.Format('{} and {}', $.a, $.b)" }, End = true } } },
        { a = "x", b = 2 }, { s = "x and 2" } },
      { "Choice picks the first matching rule and passes its input through",
        { StartAt = "C", States = {
          C = { Type = "Choice", Choices = {
            { Variable = "$.n", NumericGreaterThan = 10, Next = "Big" },
            { Variable = "$.n", NumericGreaterThan = 1, Next = "Mid" } }, Default = "Small" },
          Big = { Type = "Pass", Result = "big", End = true },
          Mid = { Type = "Pass", Result = "mid", End = true },
          Small = { Type = "Pass", Result = "small", End = true } } },
        { n = 5 }, "mid" },
      { "Succeed passes its input (after InputPath/OutputPath)",
        { StartAt = "S", States = { S = { Type = "Succeed", InputPath = "$.a" } } }, { a = { b = 1 } },
          { b = 1 } },
    }
    for _, c in ipairs(cases) do
      it(c[1], function()
        local status, out = run(c[2], c[3])
        assert.are.equal("SUCCEEDED", status)
        assert.are.same(c[4], out)
      end)
    end

    it("fails with AWS's cause when an InputPath matches nothing", function()
      local status, err = run({ StartAt = "P", States = { P = { Type = "Pass", InputPath = "$.nope",
        End = true } } }, { a = 1 })
      assert.are.equal("FAILED", status)
      assert.are.equal("States.Runtime", err.Error)
      assert.are.equal("An error occurred while executing the state 'P' (entered at the event id #2). "
        .. "Invalid path '$.nope' : No results for path: $['nope']", err.Cause)
    end)

    it("raises States.NoChoiceMatched without a Default", function()
      local status, err = run({ StartAt = "C", States = { C = { Type = "Choice", Choices = {
        { Variable = "$.n", NumericEquals = 1, Next = "E" } } }, E = { Type = "Succeed" } } }, { n = 2 })
      assert.are.equal("FAILED", status)
      assert.are.equal("States.NoChoiceMatched", err.Error)
    end)

    it("Fail uses Error/Cause, the Path forms, and leaves both absent when unset", function()
      local s1, e1 = run({ StartAt = "F", States = { F = { Type = "Fail", Error = "E", Cause = "C" } } })
      assert.are.same({ "FAILED", "E", "C" }, { s1, e1.Error, e1.Cause })
      local s2, e2 = run({ StartAt = "F", States = { F = { Type = "Fail", ErrorPath = "$.e",
        CausePath = "States.Format('because {}', $.c)" } } }, { e = "Oops", c = "x" })
      assert.are.same({ "FAILED", "Oops", "because x" }, { s2, e2.Error, e2.Cause })
      local s3, e3 = run({ StartAt = "F", States = { F = { Type = "Fail" } } })
      assert.are.equal("FAILED", s3)
      assert.is_nil(e3.Error)
      assert.is_nil(e3.Cause)
    end)

    it("the context object carries Execution, StateMachine and State", function()
      local status, out, x = run({ StartAt = "A", States = { A = { Type = "Pass", Parameters = {
        ["name.$"] = "$$.Execution.Name", ["state.$"] = "$$.State.Name", ["input.$"] = "$$.Execution.Input",
        ["sm.$"] = "$$.StateMachine.Name", ["id.$"] = "$$.Execution.Id" }, End = true } } },
        { k = 1 }, { name = "my-exec", load = { name = "my-machine" } })
      assert.are.equal("SUCCEEDED", status)
      assert.are.same({ name = "my-exec", state = "A", input = { k = 1 }, sm = "my-machine", id = x.arn },
        out)
      assert.truthy(x.arn:find(":execution:my%-machine:my%-exec$"))
    end)

    it("States.DataLimitExceeded over 262,144 bytes: terminal for States.ALL, caught by name", function()
      local big = string.rep("a", 262144)
      local status, err = run({ StartAt = "A", States = { A = { Type = "Pass", Result = big, End = true } } })
      assert.are.equal("FAILED", status)
      assert.are.equal("States.DataLimitExceeded", err.Error)
      assert.are.equal("The state/task 'A' returned a result with a size exceeding the maximum number of "
        .. "bytes service limit.", err.Cause)
      local function catching(names)
        return { StartAt = "T", States = {
          T = { Type = "Task", Resource = function() return big end, End = true,
            Retry = { { ErrorEquals = { "States.ALL" }, MaxAttempts = 2 } },
            Catch = { { ErrorEquals = names, Next = "C" } } },
          C = { Type = "Pass", End = true } } }
      end
      local s1, e1 = run(catching { "States.ALL" })
      assert.are.equal("FAILED", s1)
      assert.are.equal("States.DataLimitExceeded", e1.Error)
      local s2, out = run(catching { "States.DataLimitExceeded" })
      assert.are.equal("SUCCEEDED", s2)
      assert.are.equal("States.DataLimitExceeded", out.Error)
    end)
  end)

  describe("Task, Retry and Catch", function()
    it("calls Lua function resources with the effective input and a context", function()
      local seen
      local status, out = run({ StartAt = "T", States = { T = { Type = "Task",
        Resource = function(input, ctx) seen = ctx; return { got = input.x } end,
        Parameters = { ["x.$"] = "$.a" }, ResultSelector = { ["v.$"] = "$.got" }, ResultPath = "$.r",
        End = true } } }, { a = 7 })
      assert.are.equal("SUCCEEDED", status)
      assert.are.same({ a = 7, r = { v = 7 } }, out)
      assert.are.equal("T", seen.state_name)
      assert.are.equal("/States/T", seen.state_path)
      assert.are.equal(0, seen.attempt)
      assert.are.equal("T", seen.context.State.Name)
    end)

    it("retries with back-off on the virtual clock, then catches", function()
      local calls, times = 0, {}
      local status, out, x = run({ StartAt = "T", States = {
        T = { Type = "Task", Resource = function()
          calls = calls + 1
          times[#times + 1] = scheduler.now()
          error({ Error = "Boom", Cause = "try " .. calls }, 0)
        end, Retry = { { ErrorEquals = { "Boom" }, IntervalSeconds = 2, MaxAttempts = 3, BackoffRate = 3 } },
        Catch = { { ErrorEquals = { "States.ALL" }, ResultPath = "$.err", Next = "Done" } }, End = true },
        Done = { Type = "Pass", End = true } } }, { k = 1 })
      assert.are.equal("SUCCEEDED", status)
      assert.are.equal(4, calls)
      assert.are.same({ k = 1, err = { Error = "Boom", Cause = "try 4" } }, out)
      assert.are.same({ 2, 6, 18 }, { times[2] - times[1], times[3] - times[2], times[4] - times[3] })
      local types = x:event_types()
      assert.are.equal("TaskStateExited", types[#types - 3])
    end)

    it("caps back-off with MaxDelaySeconds and keeps FULL jitter within the interval", function()
      local times = {}
      run({ StartAt = "T", States = { T = { Type = "Task", Resource = function()
        times[#times + 1] = scheduler.now()
        error({ Error = "E" }, 0)
      end, Retry = { { ErrorEquals = { "E" }, IntervalSeconds = 10, MaxAttempts = 3, BackoffRate = 10,
        MaxDelaySeconds = 15, JitterStrategy = "FULL" } }, End = true } } })
      assert.are.equal(4, #times)
      for i = 2, 4 do
        local d = times[i] - times[i - 1]
        assert.is_true(d >= 0 and d <= 15, "delay " .. d)
      end
    end)

    it("MaxAttempts 0 never retries; States.TaskFailed matches task errors", function()
      local calls = 0
      local status, out = run({ StartAt = "T", States = {
        T = { Type = "Task", Resource = function() calls = calls + 1; error("plain lua error") end,
          Retry = { { ErrorEquals = { "States.ALL" }, MaxAttempts = 0 } },
          Catch = { { ErrorEquals = { "States.TaskFailed" }, Next = "C" } }, End = true },
        C = { Type = "Pass", End = true } } })
      assert.are.equal("SUCCEEDED", status)
      assert.are.equal(1, calls)
      assert.are.equal("States.TaskFailed", out.Error)
      assert.truthy(out.Cause:find("plain lua error", 1, true))
    end)

    it("States.ALL does not catch States.Runtime", function()
      local status, err = run({ StartAt = "T", States = {
        T = { Type = "Task", Resource = function() return {} end, OutputPath = "$.missing",
          Catch = { { ErrorEquals = { "States.ALL" }, Next = "C" } }, End = true },
        C = { Type = "Pass", End = true } } })
      assert.are.equal("FAILED", status)
      assert.are.equal("States.Runtime", err.Error)
    end)

    it("TimeoutSeconds raises States.Timeout and lets the task clean up", function()
      local cleaned
      local status, out = run({ StartAt = "T", States = {
        T = { Type = "Task", TimeoutSeconds = 5, Resource = function()
          local ok, e = pcall(scheduler.sleep, 60)
          if not ok then cleaned = e.Error; error(e, 0) end
          return "late"
        end, Catch = { { ErrorEquals = { "States.Timeout" }, Next = "C" } }, End = true },
        C = { Type = "Pass", End = true } } })
      assert.are.equal("SUCCEEDED", status)
      assert.are.equal("States.Timeout", out.Error)
      assert.are.equal("States.Timeout", cleaned)
    end)

    it("HeartbeatSeconds raises States.HeartbeatTimeout unless the task beats", function()
      local function task(beat)
        return function(_, ctx)
          for _ = 1, 4 do
            scheduler.sleep(3)
            if beat then ctx.heartbeat() end
          end
          return "done"
        end
      end
      local s1, e1 = run({ StartAt = "T", States = { T = { Type = "Task", HeartbeatSeconds = 5,
        TimeoutSeconds = 100, Resource = task(false), End = true } } })
      assert.are.same({ "FAILED", "States.HeartbeatTimeout" }, { s1, e1.Error })
      local s2, o2 = run({ StartAt = "T", States = { T = { Type = "Task", HeartbeatSeconds = 5,
        TimeoutSeconds = 100, Resource = task(true), End = true } } })
      assert.are.same({ "SUCCEEDED", "done" }, { s2, o2 })
    end)

    it("the machine's TimeoutSeconds ends the execution TIMED_OUT", function()
      local status, _, x = run({ TimeoutSeconds = 5, StartAt = "W", States = {
        W = { Type = "Wait", Seconds = 60, End = true } } })
      assert.are.equal("TIMED_OUT", status)
      local types = x:event_types()
      assert.are.equal("ExecutionTimedOut", types[#types])
    end)

    it("uses registered resources and machine-local resources", function()
      local entry = asl.register_resource("^arn:aws:states:::test:echo$", {
        options = { "flavour" },   -- its own machine:start option
        run = function(input, ctx) return { echoed = input, opt = ctx.options.flavour } end,
      })
      local status, out = run({ StartAt = "T", States = { T = { Type = "Task",
        Resource = "arn:aws:states:::test:echo", End = true } } }, { a = 1 }, { flavour = "x" })
      asl.unregister_resource(entry)
      assert.are.equal("SUCCEEDED", status)
      assert.are.same({ echoed = { a = 1 }, opt = "x" }, out)
      local s2, o2 = run(
        [[{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:local:fn","End":true}}}]],
        nil, { load = { resources = { ["arn:local:fn"] = function() return 3 end } } })
      assert.are.same({ "SUCCEEDED", 3 }, { s2, o2 })
    end)
  end)

  describe("Wait, clock and stop", function()
    it("a one-hour Wait finishes at once under virtual time", function()
      local t0 = os.clock()
      local status, _, x = run({ StartAt = "W", States = { W = { Type = "Wait", Seconds = 3600,
        End = true } } })
      assert.are.equal("SUCCEEDED", status)
      assert.is_true(os.clock() - t0 < 1)
      assert.is_true(x.s:now() - x.start_time >= 3600)
    end)

    it("Wait SecondsPath rejects non-integers and negatives with AWS's causes", function()
      local def = { StartAt = "W", States = { W = { Type = "Wait", SecondsPath = "$.s", End = true } } }
      local _, e1 = run(def, { s = 1.5 })
      assert.are.equal("An error occurred while executing the state 'W' (entered at the event id #2). "
        .. "The SecondsPath parameter cannot be parsed as a long value: $.s == 1.5", e1.Cause)
      local _, e2 = run(def, { s = -1 })
      assert.truthy(e2.Cause:find("references a negative value: $.s == -1", 1, true))
    end)

    it("TimestampPath waits until the time and rejects zone-less stamps", function()
      local def = { StartAt = "W", States = { W = { Type = "Wait", TimestampPath = "$.t", End = true } } }
      local status, _, x = run(def, { t = "2030-01-01T00:00:00Z" }, { start_time = 1893456000 - 100 })
      assert.are.equal("SUCCEEDED", status)
      assert.are.equal(1893456000, x.s:now())
      local s2, e2 = run(def, { t = "2030-01-01T00:00:00" })
      assert.are.equal("FAILED", s2)
      assert.truthy(e2.Cause:find("does not reference a valid ISO-8601", 1, true))
    end)

    it("stop() aborts an execution and in-flight tasks run their cleanup", function()
      local m = asl.load({ StartAt = "T", States = { T = { Type = "Task", Resource = function()
        local ok, e = pcall(scheduler.sleep, 1000)
        if not ok then _G.__emrflow_cleanup = e.Error; error(e, 0) end
      end, End = true } } })
      local x = m:start({}, { clock = "virtual" })
      x:step()
      assert.is_true(x:stop("UserAbort", "stopped by test"))
      local status, err = x:wait()
      assert.are.equal("ABORTED", status)
      assert.are.same({ Error = "UserAbort", Cause = "stopped by test" }, err)
      assert.are.equal("UserAbort", _G.__emrflow_cleanup)
      _G.__emrflow_cleanup = nil
      local h = x:history()
      assert.are.equal("ExecutionAborted", h[#h].type)
      assert.are.equal("UserAbort", h[#h].executionAbortedEventDetails.error)
    end)

    it("executions share one scheduler and can be stepped by a host loop", function()
      local s = scheduler.new { clock = "virtual" }
      local m = asl.load({ StartAt = "W", States = { W = { Type = "Wait", Seconds = 10, End = true } } })
      local a = m:start({ n = 1 }, { scheduler = s })
      local b = m:start({ n = 2 }, { scheduler = s })
      local steps = 0
      while a:step() or b:step() do steps = steps + 1 end
      assert.are.same({ "SUCCEEDED", { n = 1 } }, { a:wait() })
      assert.are.same({ "SUCCEEDED", { n = 2 } }, { b:wait() })
      assert.is_true(steps < 10)
      assert.are.equal(a.start_time + 10, s:now())
    end)
  end)

  describe("Parallel and Map", function()
    it("Parallel returns branch outputs in branch order", function()
      local status, out = run({ StartAt = "P", States = { P = { Type = "Parallel", End = true, Branches = {
        { StartAt = "A", States = { A = { Type = "Wait", Seconds = 5, Next = "A2" },
          A2 = { Type = "Pass", Result = "a", End = true } } },
        { StartAt = "B", States = { B = { Type = "Pass", Result = "b", End = true } } } } } } })
      assert.are.equal("SUCCEEDED", status)
      assert.are.same({ "a", "b" }, out)
    end)

    it("a failing branch fails the Parallel and stops its siblings", function()
      local stopped
      local status, err = run({ StartAt = "P", States = { P = { Type = "Parallel", End = true, Branches = {
        { StartAt = "Slow", States = { Slow = { Type = "Task", End = true, Resource = function()
          local ok, e = pcall(scheduler.sleep, 100)
          if not ok then stopped = true; error(e, 0) end
        end } } },
        { StartAt = "F", States = { F = { Type = "Fail", Error = "Bad", Cause = "branch 2" } } } } } } })
      assert.are.same({ "FAILED", "Bad", "branch 2" }, { status, err.Error, err.Cause })
      assert.is_true(stopped)
    end)

    it("Map runs ItemSelector with $$.Map.Item and keeps item order", function()
      local status, out = run({ StartAt = "M", States = { M = { Type = "Map", ItemsPath = "$.items",
        ItemSelector = { ["i.$"] = "$$.Map.Item.Index", ["v.$"] = "$$.Map.Item.Value", ["k.$"] = "$.k" },
        ItemProcessor = { StartAt = "P", States = { P = { Type = "Pass", End = true } } }, End = true } } },
        { items = { "a", "b", "c" }, k = 0 })
      assert.are.equal("SUCCEEDED", status)
      assert.are.same({ { i = 0, v = "a", k = 0 }, { i = 1, v = "b", k = 0 }, { i = 2, v = "c", k = 0 } },
        out)
    end)

    it("Map honours MaxConcurrency", function()
      local running, peak = 0, 0
      local items = {}
      for i = 1, 12 do items[i] = i end
      local status = run({ StartAt = "M", States = { M = { Type = "Map", MaxConcurrency = 3, End = true,
        ItemProcessor = { StartAt = "T", States = { T = { Type = "Task", End = true, Resource = function(v)
          running = running + 1
          if running > peak then peak = running end
          scheduler.sleep(1)
          running = running - 1
          return v
        end } } } } } }, items)
      assert.are.equal("SUCCEEDED", status)
      assert.are.equal(3, peak)
    end)

    it("Map tolerates failures up to ToleratedFailureCount, then fails", function()
      local function def(n)
        return { StartAt = "M", States = { M = { Type = "Map", ToleratedFailureCount = n, End = true,
          ItemProcessor = { ProcessorConfig = { Mode = "DISTRIBUTED", ExecutionType = "STANDARD" },
            StartAt = "C", States = {
              C = { Type = "Choice", Choices = { { Variable = "$", NumericEquals = 2, Next = "F" } },
                Default = "P" },
              F = { Type = "Fail", Error = "Two" }, P = { Type = "Pass", End = true } } } } } }
      end
      local s1, o1 = run(def(1), { 1, 2, 3 })
      assert.are.equal("SUCCEEDED", s1)
      assert.are.same({ 1, { Error = "Two" }, 3 }, o1)
      local s2, e2 = run(def(0), { 1, 2, 3 })
      assert.are.same({ "FAILED", "States.ExceedToleratedFailureThreshold" }, { s2, e2.Error })
    end)

    it("ItemReader, ResultWriter and ItemBatcher fail clearly, never silently", function()
      for _, f in ipairs { "ItemReader", "ResultWriter", "ItemBatcher" } do
        local st = { Type = "Map", End = true,
          ItemProcessor = { StartAt = "P", States = { P = { Type = "Pass", End = true } } } }
        st[f] = { MaxItemsPerBatch = 2 }
        local status, err = run({ StartAt = "M", States = { M = st } }, { 1 })
        assert.are.equal("FAILED", status)
        assert.truthy(err.Cause:find(f .. " is not supported yet", 1, true), err.Cause)
      end
    end)
  end)

  describe("variables", function()
    it("Assign sees the state's result and values from before the state", function()
      local status, out = run({ StartAt = "A", States = {
        A = { Type = "Pass", Result = { answer = 42 }, Assign = { ["x.$"] = "$.answer", y = "lit" },
          Next = "B" },
        B = { Type = "Pass", Assign = { ["x.$"] = "States.MathAdd($x, 1)", ["old.$"] = "$x" },
          Next = "C" },
        C = { Type = "Pass", Parameters = { ["x.$"] = "$x", ["y.$"] = "$y", ["old.$"] = "$old" },
          End = true } } })
      assert.are.equal("SUCCEEDED", status)
      assert.are.same({ x = 43, y = "lit", old = 42 }, out)
    end)

    it("assignments inside a Map iteration stay inside it", function()
      local status, out = run({ StartAt = "A", States = {
        A = { Type = "Pass", Assign = { outer = 1 }, Next = "M" },
        M = { Type = "Map", ItemsPath = "$.items", ResultPath = "$.m", Next = "After",
          ItemProcessor = { StartAt = "In", States = {
            In = { Type = "Pass", Assign = { inner = "x" }, Parameters = { ["o.$"] = "$outer" },
              End = true } } } },
        After = { Type = "Pass", Parameters = { ["o.$"] = "$outer", ["m.$"] = "$.m" }, Next = "Leak" },
        Leak = { Type = "Pass", Parameters = { ["i.$"] = "$inner" }, End = true } } },
        { items = { 1, 2 } })
      assert.are.equal("FAILED", status)
      assert.are.equal("States.Runtime", out.Error)
      assert.truthy(out.Cause:find("$inner", 1, true), out.Cause)
      local m = asl.load({ StartAt = "A", States = {
        A = { Type = "Pass", Assign = { outer = 1 }, Next = "M" },
        M = { Type = "Map", ItemsPath = "$.items", End = true,
          ItemProcessor = { StartAt = "In", States = {
            In = { Type = "Pass", Assign = { inner = "x" }, Parameters = { ["o.$"] = "$outer" },
              End = true } } } } } })
      local s2, o2 = m:run({ items = { 1, 2 } }, { clock = "virtual" })
      assert.are.same({ "SUCCEEDED", { { o = 1 }, { o = 1 } } }, { s2, o2 })
    end)

    it("records assignedVariables on the StateExited event", function()
      local _, _, x = run({ StartAt = "A", States = { A = { Type = "Pass", Assign = { v = 1 },
        End = true } } })
      local h = x:history()
      assert.are.same({ v = "1" }, h[3].stateExitedEventDetails.assignedVariables)
    end)
  end)

  describe("history", function()
    it("names and shapes events like GetExecutionHistory", function()
      local _, _, x = run({ StartAt = "T", States = { T = { Type = "Task",
        Resource = function(i) return i end,
        End = true } } }, { a = 1 })
      local h = x:history()
      local types = {}
      for i, e in ipairs(h) do
        types[i] = e.type
        assert.are.equal(i, e.id)
        assert.is_number(e.timestamp)
      end
      assert.are.same({ "ExecutionStarted", "TaskStateEntered", "TaskScheduled", "TaskStarted",
        "TaskSucceeded",
        "TaskStateExited", "ExecutionSucceeded" }, types)
      assert.are.equal('{"a":1}', h[1].executionStartedEventDetails.input)
      assert.are.equal("T", h[2].stateEnteredEventDetails.name)
      assert.are.equal(2, h[3].previousEventId)
      assert.are.equal('{"a":1}', h[3].taskScheduledEventDetails.parameters)
      assert.are.equal('{"a":1}', h[7].executionSucceededEventDetails.output)
    end)

    it("gives a string payload as JSON text, as GetExecutionHistory does", function()
      local _, _, x = run({ StartAt = "P", States = { P = { Type = "Pass", Result = "3",
        End = true } } }, "in")
      local h = x:history()
      assert.are.equal('"in"', h[1].executionStartedEventDetails.input)
      assert.are.equal('"in"', h[2].stateEnteredEventDetails.input)
      assert.are.equal('"3"', h[3].stateExitedEventDetails.output)
      assert.are.same({ truncated = false }, h[3].stateExitedEventDetails.outputDetails)
      assert.are.equal('"3"', h[4].executionSucceededEventDetails.output)
    end)

    it("keeps no events with history = false, and ids still count", function()
      local status, err, x = run({ StartAt = "P", States = { P = { Type = "Pass", Next = "Q" },
        Q = { Type = "Pass", InputPath = "$.x", End = true } } }, {}, { history = false })
      assert.are.equal("FAILED", status)
      assert.are.same({}, x:history())
      assert.truthy(err.Cause:find("entered at the event id #4", 1, true))
    end)

    it("memory stays flat over a long chain without history", function()
      local m = asl.load(pass_chain(2000))
      collectgarbage("collect")
      local x = m:start({ v = 1 }, { clock = "virtual", history = false })
      x:wait()
      collectgarbage("collect")
      local kb = collectgarbage("count")
      local y = m:start({ v = 1 }, { clock = "virtual", history = false })
      y:wait()
      collectgarbage("collect")
      assert.is_true(collectgarbage("count") - kb < 200)
    end)
  end)

  describe("definitions", function()
    it("to_json gives ASL that loads back to the same machine", function()
      local def = { Comment = "c", StartAt = "A", States = {
        A = { Type = "Pass", Parameters = { ["x.$"] = "$.a", list = json.array {} }, Next = "B" },
        B = { Type = "Choice", Choices = { { Variable = "$.x", IsPresent = true, Next = "C" } },
          Default = "C" },
        C = { Type = "Succeed" } } }
      local m = asl.load(def)
      local text = m:to_json()
      local m2 = asl.load(text)
      assert.are.equal(text, m2:to_json())
      assert.are.same(json.decode(m:to_json { compact = true }), json.decode(text))
      local s1, o1 = m:run({ a = 1 }, { clock = "virtual" })
      local s2, o2 = m2:run({ a = 1 }, { clock = "virtual" })
      assert.are.same({ s1, o1 }, { s2, o2 })
    end)

    it("to_json refuses Lua function resources unless asked for placeholders", function()
      local m = asl.load({ StartAt = "T", States = { T = { Type = "Task", Resource = function() end,
        End = true } } })
      assert.has_error(function() m:to_json() end)
      local ok, err = pcall(m.to_json, m)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("/States/T/Resource is a Lua function", 1, true))
      assert.truthy(m:to_json { placeholder_arns = true }:find(
        '"arn:aws:lambda:us-east-1:123456789012:function:emrflow-T"', 1, true))
    end)

    it("a resource that is not an ARN fails at load time", function()
      local ok, err = pcall(asl.load, { StartAt = "T", States = { T = { Type = "Task",
        Resource = "nope:thing", End = true } } })
      assert.is_false(ok)
      assert.truthy(tostring(err):find("/States/T/Resource: \"nope:thing\" is not a resource ARN", 1, true),
        tostring(err))
    end)

    it("a resource of any service loads; with no implementation its Task fails (States.Runtime)", function()
      local m = asl.load({ StartAt = "T", States = { T = { Type = "Task",
        Resource = "arn:aws:states:::sns:publish", End = true } } })
      local status, err = m:run({}, { clock = "virtual" })
      assert.are.equal("FAILED", status)
      assert.are.equal("States.Runtime", err.Error)
      assert.truthy(err.Cause:find("arn:aws:states:::sns:publish", 1, true), err.Cause)
      assert.truthy(err.Cause:find("state 'T'", 1, true), err.Cause)
    end)

    it("JSONata machines run; a failed evaluation records EvaluationFailed (QueryEvaluationError)", function()
      local status, out = run({ QueryLanguage = "JSONata", StartAt = "A", States = {
        A = { Type = "Pass", Output = "{% 1 + 1 %}", End = true } } })
      assert.are.equal("SUCCEEDED", status)
      assert.are.equal(2, out)
      local m = asl.load({ QueryLanguage = "JSONata", StartAt = "A", States = {
        A = { Type = "Pass", Output = "{% $states.input.missing.deeper %}", End = true } } })
      local x = m:start({}, { clock = "virtual" })
      local st, err = x:wait()
      assert.are.equal("FAILED", st)
      assert.are.equal("States.QueryEvaluationError", err.Error)
      assert.are.same({ "ExecutionStarted", "PassStateEntered", "EvaluationFailed", "ExecutionFailed" },
        x:event_types())
    end)

    it("rejects bad ASL JSON text with the byte offset", function()
      local ok, err = pcall(asl.load, '{"StartAt": ')
      assert.is_false(ok)
      assert.truthy(tostring(err):find("not valid JSON", 1, true))
    end)
  end)
end)
