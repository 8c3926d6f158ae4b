-- The EMR on EKS Task integration: resources, .sync polling, results, errors, ClientToken,
-- abort and timeout handling, the shared rate limit; on the emulator (virtual clock) and
-- against the fake HTTP server.
local asl = require "emrflow.asl"
local json = require "emrflow.json"
local scheduler = require "emrflow.scheduler"
local emulator = require "emrflow.emulator"
local tasks = require "emrflow.emr.tasks"
local sync = require "emrflow.emr.sync"
local core = require "emrflow.core"

tasks.register(asl)

local T0 = 1700000000
local ROLE = "arn:aws:iam::123456789012:role/job-execution-role"

-- StartJobRun parameters; extra overrides, drop lists members to leave out.
local function job_params(extra, drop)
  local p = {
    Name = "MyJobName",
    ["VirtualClusterId.$"] = "$.VirtualClusterId",
    ExecutionRoleArn = ROLE,
    ReleaseLabel = "emr-6.2.0-latest",
    JobDriver = { SparkSubmitJobDriver = { EntryPoint = "s3://my-bucket/jobs/trip-count.py" } },
  }
  for k, v in pairs(extra or {}) do p[k] = v end
  for _, k in ipairs(drop or {}) do p[k] = nil end
  return p
end

local function machine(states, start_at)
  return { StartAt = start_at or next(states), States = states }
end

local function one_task(resource, params, extra)
  local st = { Type = "Task", Resource = resource, Parameters = params, End = true }
  for k, v in pairs(extra or {}) do st[k] = v end
  return machine({ T = st }, "T")
end

-- A backend that records every call (operation and virtual time) in front of an emulator.
local function recorder(emu)
  local log = {}
  return setmetatable({
    log = log,
    endpoint_key = emu,
    call = function(_, op, params, opts)
      log[#log + 1] = { op = op, at = scheduler.now(), params = params }
      return emu:call(op, params, opts)
    end,
  }, { __index = emu }), log
end

local function count(log, op)
  local n = 0
  for _, e in ipairs(log) do if e.op == op then n = n + 1 end end
  return n
end

-- Runs a definition on a fresh emulator (or the one given) with a virtual clock.
local function run(def, input, opts)
  opts = opts or {}
  local emu = opts.emu or emulator.new(opts.scenario)
  local backend, log = recorder(emu)
  local m = asl.load(def)
  local start = { emr = backend, clock = "virtual", start_time = T0 }
  for k, v in pairs(opts.start or {}) do start[k] = v end
  local x = m:start(input, start)
  local status, res = x:wait()
  return status, res, { x = x, emu = emu, log = log }
end

local function new_cluster(emu)
  local s = scheduler.new{ clock = "virtual", start = T0 }
  local t = s:spawn(function()
    return assert(emu:create_virtual_cluster{ Name = "vc", ContainerProvider = { Id = "eks", Type = "EKS" } })
  end)
  local _, vc = s:run_until(t)
  return vc.Id
end

local SYNC = "arn:aws:states:::emr-containers:startJobRun.sync"

describe("emr.tasks builders", function()
  it("build ordinary Task state tables", function()
    local cases = {
      { tasks.create_virtual_cluster{ Name = "vc", Next = "B" },
        "arn:aws:states:::emr-containers:createVirtualCluster", { Name = "vc" }, "B" },
      { tasks.start_job_run{ sync = true, ["VirtualClusterId.$"] = "$.Id", End = true },
        "arn:aws:states:::emr-containers:startJobRun.sync", { ["VirtualClusterId.$"] = "$.Id" } },
      { tasks.start_job_run{ Parameters = { Name = "x" } },
        "arn:aws:states:::emr-containers:startJobRun", { Name = "x" } },
      { tasks.delete_virtual_cluster{ sync = true, ["Id.$"] = "$.Id", partition = "aws-cn" },
        "arn:aws-cn:states:::emr-containers:deleteVirtualCluster.sync", { ["Id.$"] = "$.Id" } },
      { tasks.sdk("listJobRuns", { VirtualClusterId = "abc" }),
        "arn:aws:states:::aws-sdk:emrcontainers:listJobRuns", { VirtualClusterId = "abc" } },
    }
    for _, c in ipairs(cases) do
      local st = c[1]
      assert.are.equal("Task", st.Type)
      assert.are.equal(c[2], st.Resource)
      assert.are.same(c[3], st.Parameters)
      if c[4] then assert.are.equal(c[4], st.Next) else assert.is_true(st.End) end
    end
    -- Type and Resource come first when exported
    assert.are.same({ "Type", "Resource", "Parameters", "ResultPath", "Next" },
      json.keys(tasks.start_job_run{ Name = "x", ResultPath = "$.job", Next = "N" }))
  end)

  it("reject misuse with a clear message", function()
    local cases = {
      { function() tasks.create_virtual_cluster{ sync = true } end, "no .sync form" },
      { function() tasks.start_job_run{ resultPath = "$" } end, 'unknown field "resultPath"' },
      { function() tasks.start_job_run("x") end, "expected a table" },
      { function() tasks.start_job_run{ Name = "a", Parameters = {} } end, "not both" },
      { function() tasks.sdk("launchRocket") end, "not an emr-containers API action" },
      { function() tasks.start_job_run{ partition = "azure" } end, "partition" },
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(c[1])
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find(c[2], 1, true), tostring(err))
    end
  end)
end)

describe("emr-containers resources at load time", function()
  local function problems(resource, params)
    return asl.validate(one_task(resource, params))
  end

  it("accepts the five optimized resources in any partition and the aws-sdk actions", function()
    for _, r in ipairs{
      "arn:aws:states:::emr-containers:createVirtualCluster",
      "arn:aws:states:::emr-containers:deleteVirtualCluster",
      "arn:aws:states:::emr-containers:deleteVirtualCluster.sync",
      "arn:aws:states:::emr-containers:startJobRun",
      "arn:aws-us-gov:states:::emr-containers:startJobRun.sync",
      "arn:aws:states:::aws-sdk:emrcontainers:listVirtualClusters",
      "arn:aws-cn:states:::aws-sdk:emrcontainers:describeJobRun",
    } do
      assert.are.same({}, problems(r, nil), r)
    end
  end)

  it("rejects unsupported patterns and actions, at /States/T/Resource", function()
    local cases = {
      { "arn:aws:states:::emr-containers:createVirtualCluster.sync", "does not support .sync" },
      { "arn:aws:states:::emr-containers:startJobRun.waitForTaskToken",
        "does not support .waitForTaskToken" },
      { "arn:aws:states:::emr-containers:listJobRuns", "not an optimized EMR on EKS integration" },
      { "arn:aws:states:::aws-sdk:emrcontainers:launchRocket", "not an emr-containers API action" },
      { "arn:aws:states:::aws-sdk:emrcontainers:startJobRun.sync", "request-response only" },
    }
    for _, c in ipairs(cases) do
      local p = problems(c[1], nil)
      assert.are.equal(1, #p, c[1])
      assert.are.equal("/States/T/Resource", p[1].path)
      assert.is_truthy(p[1].message:find(c[2], 1, true), p[1].message)
    end
  end)

  it("checks static parameters against the model and locates each problem", function()
    local p = problems(SYNC, job_params{
      Bogus = 1,
      ["Nope.$"] = "$.x",
      ExecutionRoleArn = "arn:aws:iam::<accountId>:role/job-execution-role",
      ConfigurationOverrides = { MonitoringConfiguration = { PersistentAppUI = "ON" } },
      JobDriver = { SparkSubmitJobDriver = { EntryPointArguments = { "60" } } },
    })
    local by_path = {}
    for _, pr in ipairs(p) do by_path[pr.path] = pr.message end
    assert.matches("unknown parameter", by_path["/States/T/Parameters/Bogus"])
    assert.matches("unknown parameter", by_path["/States/T/Parameters/Nope.$"])
    assert.matches("does not match the pattern", by_path["/States/T/Parameters/ExecutionRoleArn"])
    assert.matches("ENABLED, DISABLED",
      by_path["/States/T/Parameters/ConfigurationOverrides/MonitoringConfiguration/PersistentAppUI"])
    assert.matches("missing required",
      by_path["/States/T/Parameters/JobDriver/SparkSubmitJobDriver/EntryPoint"])
    assert.are.equal(5, #p)
  end)

  it("value constraints are warnings at load time, EmrContainers.ValidationException at run time", function()
    -- the page's own "Namespace": "Namespace": valid ASL, rejected by EMR (upper case)
    local def = one_task("arn:aws:states:::emr-containers:createVirtualCluster", {
      Name = "vc", ContainerProvider = { Id = "eks", Type = "EKS",
        Info = { EksInfo = { Namespace = "Namespace" } } } })
    local p = asl.validate(def)
    assert.are.equal(1, #p)
    assert.are.equal("/States/T/Parameters/ContainerProvider/Info/EksInfo/Namespace", p[1].path)
    assert.are.equal("warning", p[1].severity)
    def.States.T.Catch = { { ErrorEquals = { "EmrContainers.ValidationException" }, Next = "Caught" } }
    def.States.Caught = { Type = "Pass", End = true }
    local status, out = run(def, {}, { emu = emulator.new() })
    assert.are.equal("SUCCEEDED", status)
    assert.are.equal("EmrContainers.ValidationException", out.Error)
    assert.matches("Namespace", out.Cause)
  end)

  it("structure problems (unknown member, wrong type, missing required) stay errors", function()
    local p = problems(SYNC, job_params{ Bogus = 1, JobDriver = { SparkSubmitJobDriver = {
      EntryPointArguments = "60" } } })
    assert.is_true(#p >= 3)
    for _, pr in ipairs(p) do assert.is_nil(pr.severity, pr.path .. ": " .. pr.message) end
    assert.has_error(function() asl.load(one_task(SYNC, job_params{ Bogus = 1 })) end)
  end)

  it("leaves dynamic members to run time, and fills ClientToken itself", function()
    assert.are.same({}, problems(SYNC, job_params({ ["JobDriver.$"] = "$.driver" }, { "JobDriver" })))
    assert.are.same({}, problems("arn:aws:states:::emr-containers:deleteVirtualCluster.sync",
      { ["Id.$"] = "$.VirtualClusterId" }))
    local p = problems("arn:aws:states:::emr-containers:deleteVirtualCluster", {})
    assert.are.equal("/States/T/Parameters/Id", p[1].path)
    assert.matches("missing required", p[1].message)
  end)
end)

describe("emr-containers Task states on the emulator", function()
  local function pipeline_input(emu)
    return { VirtualClusterId = new_cluster(emu) }
  end

  describe("startJobRun.sync", function()
    local outcomes = {
      { final = "COMPLETED" },
      { final = "FAILED", reason = "USER_ERROR", details = "Exit code 1" },
      { final = "CANCELLED" },
    }
    for _, o in ipairs(outcomes) do
      it("ends " .. o.final .. " the way Step Functions does", function()
        local emu = emulator.new{ defaults = { final_state = o.final, failure_reason = o.reason,
                                               state_details = o.details } }
        local status, res, r = run(one_task(SYNC, job_params()), pipeline_input(emu), { emu = emu })
        if o.final == "COMPLETED" then
          assert.are.equal("SUCCEEDED", status)
          -- the final DescribeJobRun JobRun, unwrapped, PascalCase
          assert.are.equal("COMPLETED", res.State)
          assert.are.equal("MyJobName", res.Name)
          assert.is_string(res.FinishedAt)
          assert.is_nil(res.JobRun)
        else
          assert.are.equal("FAILED", status)
          assert.are.equal("States.TaskFailed", res.Error)
          local job = json.decode(res.Cause)
          assert.are.equal(o.final, job.State)
          assert.are.equal("MyJobName", job.Name)
          if o.reason then
            assert.are.equal(o.reason, job.FailureReason)
            assert.are.equal(o.details, job.StateDetails)
          end
        end
        -- one StartJobRun; polls until final; no cancel
        assert.are.equal(1, count(r.log, "StartJobRun"))
        assert.are.equal(0, count(r.log, "CancelJobRun"))
        assert.is_true(count(r.log, "DescribeJobRun") >= 4)
      end)
    end

    it("records TaskSubmitted with the StartJobRun response, then TaskSucceeded", function()
      local emu = emulator.new()
      local _, _, r = run(one_task(SYNC, job_params()), pipeline_input(emu), { emu = emu })
      local seq = {}
      local want = { TaskScheduled = true, TaskStarted = true, TaskSubmitted = true, TaskSucceeded = true }
      for _, t in ipairs(r.x:event_types()) do if want[t] then seq[#seq + 1] = t end end
      assert.are.same({ "TaskScheduled", "TaskStarted", "TaskSubmitted", "TaskSucceeded" }, seq)
      for _, e in ipairs(r.x:history()) do
        if e.type == "TaskSubmitted" then
          local d = e.taskSubmittedEventDetails
          assert.are.equal("emr-containers", d.resourceType)
          assert.are.equal("startJobRun.sync", d.resource)
          assert.is_string(json.decode(d.output).Id)
        end
      end
    end)

    it("treats CANCEL_PENDING as not final: a job cancelled elsewhere fails when CANCELLED", function()
      local emu = emulator.new{ defaults = { cancel_seconds = 40 } }
      local input = pipeline_input(emu)
      local m = asl.load(one_task(SYNC, job_params()))
      local seen = {}
      local s = scheduler.new{ clock = "virtual", start = T0 }
      local x = m:start(input, { emr = emu, scheduler = s,
        on_emr_event = function(ev) if ev.kind == "job_state" then seen[#seen + 1] = ev.state end end })
      s:spawn(function()
        scheduler.sleep(20)
        local list = emu:list_job_runs{ VirtualClusterId = input.VirtualClusterId }
        assert(emu:cancel_job_run{ VirtualClusterId = input.VirtualClusterId, Id = list.JobRuns[1].Id })
      end)
      local status, res = x:wait()
      assert.are.equal("FAILED", status)
      assert.are.equal("States.TaskFailed", res.Error)
      assert.are.equal("CANCELLED", json.decode(res.Cause).State)
      assert.are.same({ "PENDING", "SUBMITTED", "RUNNING", "CANCEL_PENDING", "CANCELLED" }, seen)
    end)

    it("polls initial=2 s, growing by 1.5 up to 30 s; or AWS's 60 s / 300 s cadence", function()
      local long = { defaults = { pending_seconds = 0, submitted_seconds = 0, running_seconds = 720 } }
      local emu = emulator.new(long)
      local vc = pipeline_input(emu)
      local _, _, r = run(one_task(SYNC, job_params()), vc, { emu = emu })
      local times = {}
      for _, e in ipairs(r.log) do
        if e.op == "DescribeJobRun" then times[#times + 1] = e.at - T0 end
      end
      local expect, t, iv = {}, 0, 2
      while true do
        t = t + iv
        expect[#expect + 1] = t
        if t >= 720 then break end
        iv = math.min(30, iv * 1.5)
      end
      assert.are.equal(#expect, #times)
      for i = 1, #expect do assert.is_true(math.abs(expect[i] - times[i]) < 0.01, i) end

      local emu2 = emulator.new(long)
      local _, _, r2 = run(one_task(SYNC, job_params()), pipeline_input(emu2),
        { emu = emu2, start = { poll = "aws" } })
      local t2 = {}
      for _, e in ipairs(r2.log) do
        if e.op == "DescribeJobRun" then t2[#t2 + 1] = math.floor(e.at - T0 + 0.5) end
      end
      assert.are.same({ 60, 120, 180, 240, 300, 360, 420, 480, 540, 600, 900 }, t2)
    end)

    it("rejects bad poll options with a located cause", function()
      local emu = emulator.new()
      local status, res = run(one_task(SYNC, job_params()), pipeline_input(emu),
        { emu = emu, start = { poll = { rate = 0 } } })
      assert.are.equal("FAILED", status)
      assert.are.equal("States.Runtime", res.Error)
      assert.matches("poll.rate", res.Cause)
    end)
  end)

  describe("API errors", function()
    it("become EmrContainers.<ErrorCode> with the service message as Cause", function()
      local emu = emulator.new()
      local status, res = run(one_task(SYNC, job_params()), { VirtualClusterId = "doesnotexist" },
        { emu = emu })
      assert.are.equal("FAILED", status)
      assert.are.equal("EmrContainers.ResourceNotFoundException", res.Error)
      assert.matches("doesnotexist", res.Cause)
    end)

    it("use the configured prefix", function()
      local emu = emulator.new()
      local _, res = run(one_task(SYNC, job_params()), { VirtualClusterId = "nope" },
        { emu = emu, start = { error_prefix = "EMRContainers." } })
      assert.are.equal("EMRContainers.ResourceNotFoundException", res.Error)
    end)

    it("report run-time parameter problems (after Parameters) as ValidationException", function()
      local emu = emulator.new()
      local _, res = run(one_task(SYNC, job_params({ ["ReleaseLabel.$"] = "$.label" }, { "ReleaseLabel" })),
        { VirtualClusterId = new_cluster(emu), label = "bad label!" }, { emu = emu })
      assert.are.equal("EmrContainers.ValidationException", res.Error)
      assert.matches("ReleaseLabel", res.Cause)
    end)

    it("throttled, then fine: the client-level retries reuse the ClientToken (one job run)", function()
      local emu = emulator.new{ api_errors = {
        { operation = "StartJobRun", code = "ThrottlingException", count = 2 },
        { operation = "DescribeJobRun", code = "ThrottlingException", count = 3 },
      } }
      local input = pipeline_input(emu)
      local status, res, r = run(one_task(SYNC, job_params()), input, { emu = emu })
      assert.are.equal("SUCCEEDED", status)
      assert.are.equal("COMPLETED", res.State)
      assert.are.equal(1, #emu:list_job_runs{ VirtualClusterId = input.VirtualClusterId }.JobRuns)
      assert.are.equal(1, count(r.log, "StartJobRun"))
      assert.matches("^emrflow%-%x+$", res.ClientToken)
      assert.is_true(#res.ClientToken <= 64)
    end)

    it("tell a full job queue apart in the Cause", function()
      local emu = emulator.new{ queue = { max_concurrent_job_runs = 0, max_in_queue_job_runs = 0 } }
      local _, res = run(one_task(SYNC, job_params()), pipeline_input(emu), { emu = emu })
      assert.are.equal("EmrContainers.ValidationException", res.Error)
      assert.matches("^The virtual cluster's job queue is full", res.Cause)
      assert.matches("Job run queue is full", res.Cause)
      -- an ordinary ValidationException keeps the plain message
      local _, res2 = run(one_task(SYNC, job_params()), { VirtualClusterId = new_cluster(emu) },
        { emu = emulator.new() })
      assert.is_nil(res2.Cause:find("job queue is full", 1, true))
    end)
  end)

  describe("Retry and Catch", function()
    it("an ASL Retry starts a fresh job run (new ClientToken); Catch gets Error and Cause", function()
      local emu = emulator.new{ jobs = { { match = "*", final_state = "FAILED" } } }
      local input = pipeline_input(emu)
      local def = machine({
        Job = { Type = "Task", Resource = SYNC, Parameters = job_params(),
                Retry = { { ErrorEquals = { "States.TaskFailed" }, MaxAttempts = 2, IntervalSeconds = 1 } },
                Catch = { { ErrorEquals = { "States.ALL" }, ResultPath = "$.error", Next = "Parse" } },
                End = true },
        Parse = { Type = "Pass", Parameters = { ["job.$"] = "States.StringToJson($.error.Cause)",
                                                ["error.$"] = "$.error.Error" }, End = true },
      }, "Job")
      local status, out = run(def, input, { emu = emu })
      assert.are.equal("SUCCEEDED", status)
      assert.are.equal("States.TaskFailed", out.error)
      assert.are.equal("FAILED", out.job.State)
      local runs = emu:list_job_runs{ VirtualClusterId = input.VirtualClusterId }.JobRuns
      assert.are.equal(3, #runs)
      local tokens = {}
      for _, j in ipairs(runs) do tokens[j.ClientToken] = true end
      local n = 0
      for _ in pairs(tokens) do n = n + 1 end
      assert.are.equal(3, n)
    end)

    it("uses the user's ClientToken when given: a Retry then finds the same job run", function()
      local emu = emulator.new{ jobs = { { match = "*", final_state = "FAILED" } } }
      local input = pipeline_input(emu)
      local def = one_task(SYNC, job_params{ ClientToken = "my-token" },
        { Retry = { { ErrorEquals = { "States.TaskFailed" }, MaxAttempts = 1 } } })
      local status, res = run(def, input, { emu = emu })
      assert.are.equal("FAILED", status)
      assert.are.equal("my-token", json.decode(res.Cause).ClientToken)
      assert.are.equal(1, #emu:list_job_runs{ VirtualClusterId = input.VirtualClusterId }.JobRuns)
    end)

    it("Retry on an API error, then success", function()
      local emu = emulator.new{ api_errors = {
        { operation = "StartJobRun", code = "AccessDeniedException", count = 1 } } }
      local def = one_task(SYNC, job_params(),
        { Retry = { { ErrorEquals = { "EmrContainers.AccessDeniedException" } } } })
      local status, res = run(def, pipeline_input(emu), { emu = emu })
      assert.are.equal("SUCCEEDED", status)
      assert.are.equal("COMPLETED", res.State)
    end)
  end)

  describe("timeout and stop", function()
    it("TimeoutSeconds fails with States.Timeout and cancels the job run", function()
      local emu = emulator.new()
      local input = pipeline_input(emu)
      local status, res, r = run(one_task(SYNC, job_params(), { TimeoutSeconds = 30 }), input, { emu = emu })
      assert.are.equal("FAILED", status)
      assert.are.equal("States.Timeout", res.Error)
      assert.are.equal(1, count(r.log, "CancelJobRun"))
      local job = emu:list_job_runs{ VirtualClusterId = input.VirtualClusterId }.JobRuns[1]
      assert.are.equal("CANCELLED", job.State)
      assert.is_true(r.x:event_types()[#r.x:event_types()] == "ExecutionFailed")
    end)

    it("HeartbeatSeconds counts each answered poll as a heartbeat", function()
      local emu = emulator.new()
      local status, res = run(one_task(SYNC, job_params(), { HeartbeatSeconds = 40 }),
        pipeline_input(emu), { emu = emu })
      assert.are.equal("SUCCEEDED", status)
      assert.are.equal("COMPLETED", res.State)
    end)

    it("cancel_on_timeout = false leaves the job running", function()
      local emu = emulator.new()
      local input = pipeline_input(emu)
      local _, res, r = run(one_task(SYNC, job_params(), { TimeoutSeconds = 30 }), input,
        { emu = emu, start = { cancel_on_timeout = false } })
      assert.are.equal("States.Timeout", res.Error)
      assert.are.equal(0, count(r.log, "CancelJobRun"))
    end)

    it("exec:stop() aborts: CancelJobRun, a wait for CANCELLED, status ABORTED", function()
      local emu = emulator.new()
      local input = pipeline_input(emu)
      local m = asl.load(one_task(SYNC, job_params()))
      local s = scheduler.new{ clock = "virtual", start = T0 }
      local backend, log = recorder(emu)
      local x = m:start(input, { emr = backend, scheduler = s })
      s:spawn(function()
        scheduler.sleep(20)
        x:stop("Stopped", "by the test")
      end)
      local status = x:wait()
      assert.are.equal("ABORTED", status)
      assert.are.equal(1, count(log, "CancelJobRun"))
      local job = emu:list_job_runs{ VirtualClusterId = input.VirtualClusterId }.JobRuns[1]
      assert.are.equal("CANCELLED", job.State)
      -- the wait for CANCELLED polled after the cancel
      assert.are.equal("DescribeJobRun", log[#log].op)
    end)
  end)

  it("a stop while StartJobRun is being retried still cancels the job run it started", function()
    local emu = emulator.new{ api_errors = {
      { operation = "StartJobRun", code = "ThrottlingException", count = 1 } } }
    local input = pipeline_input(emu)
    local m = asl.load(one_task(SYNC, job_params()))
    local s = scheduler.new{ clock = "virtual", start = T0 }
    local x = m:start(input, { emr = emu, scheduler = s })
    s:spawn(function()
      scheduler.yield()
      x:stop("Stopped", "during the back-off")
    end)
    assert.are.equal("ABORTED", (x:wait()))
    local runs = emu:list_job_runs{ VirtualClusterId = input.VirtualClusterId }.JobRuns
    assert.are.equal(1, #runs)
    assert.are.equal("CANCELLED", runs[1].State)
  end)

  describe("a Map of many startJobRun.sync iterations", function()
    local function map_def(n)
      local items = {}
      for i = 1, n do items[i] = { name = "job-" .. i } end
      return machine({
        Fan = { Type = "Map", MaxConcurrency = 0, ItemsPath = "$.items",
                ItemSelector = { ["VirtualClusterId.$"] = "$.VirtualClusterId",
                                 ["name.$"] = "$$.Map.Item.Value.name" },
                ItemProcessor = { StartAt = "Job", States = {
                  Job = { Type = "Task", Resource = SYNC,
                          Parameters = job_params({ ["Name.$"] = "$.name" }, { "Name" }),
                          ResultSelector = { ["State.$"] = "$.State" }, End = true } } },
                End = true },
      }, "Fan"), items
    end

    it("polls under one shared rate limit however many jobs run", function()
      local n = 200
      local emu = emulator.new{ defaults = { pending_seconds = 1, submitted_seconds = 1,
                                             running_seconds = 30 } }
      local def, items = map_def(n)
      local rate = 10
      local status, out, r = run(def, { VirtualClusterId = new_cluster(emu), items = items },
        { emu = emu, start = { poll = { rate = rate } } })
      assert.are.equal("SUCCEEDED", status)
      assert.are.equal(n, #out)
      for i = 1, n do assert.are.equal("COMPLETED", out[i].State) end
      -- every job started once; polls never closer than 1/rate s apart: no second holds more
      -- than `rate` of them
      assert.are.equal(n, count(r.log, "StartJobRun"))
      local polls = {}
      for _, e in ipairs(r.log) do if e.op == "DescribeJobRun" then polls[#polls + 1] = e.at end end
      table.sort(polls)
      for i = rate + 1, #polls do
        assert.is_true(polls[i] - polls[i - rate] >= 1, "more than rate polls in 1 s at " .. i)
      end
      for i = 2, #polls do assert.is_true(polls[i] - polls[i - 1] >= 1 / rate - 1e-6) end
    end)

    it("when the execution is stopped, every job still running is cancelled", function()
      local n = 60
      local emu = emulator.new{ defaults = { running_seconds = 600 } }
      local def, items = map_def(n)
      local vc = new_cluster(emu)
      local m = asl.load(def)
      local s = scheduler.new{ clock = "virtual", start = T0 }
      local x = m:start({ VirtualClusterId = vc, items = items }, { emr = emu, scheduler = s })
      s:spawn(function()
        scheduler.sleep(100)
        x:stop("Stopped", "enough")
      end)
      assert.are.equal("ABORTED", (x:wait()))
      -- inline Map iterations run 40 at a time (as on AWS): those started are all cancelled
      local runs = emu:list_job_runs{ VirtualClusterId = vc, MaxResults = 1000 }.JobRuns
      assert.is_true(#runs >= 40 and #runs <= n)
      for _, j in ipairs(runs) do assert.are.equal("CANCELLED", j.State) end
    end)
  end)

  describe("virtual clusters", function()
    it("createVirtualCluster gives {Id, Name, Arn}; deleteVirtualCluster.sync the TERMINATED one", function()
      local emu = emulator.new{ defaults = { terminating_seconds = 45 } }
      local def = machine({
        Create = tasks.create_virtual_cluster{ Name = "vc", ContainerProvider = { Id = "eks", Type = "EKS" },
                                               ResultPath = "$.cluster", Next = "Delete" },
        Delete = tasks.delete_virtual_cluster{ sync = true, ["Id.$"] = "$.cluster.Id",
                                               ResultPath = "$.deleted" },
      }, "Create")
      local status, out, r = run(def, {}, { emu = emu })
      assert.are.equal("SUCCEEDED", status)
      assert.are.same({ "Arn", "Id", "Name" }, json.keys(out.cluster))
      assert.are.equal("TERMINATED", out.deleted.State)
      assert.are.equal(out.cluster.Id, out.deleted.Id)
      assert.are.equal("vc", out.deleted.Name)
      assert.is_true(r.log[#r.log].at - T0 >= 45)
    end)

    it("deleteVirtualCluster (request-response) returns {Id}", function()
      local emu = emulator.new()
      local id = new_cluster(emu)
      local status, out = run(one_task("arn:aws:states:::emr-containers:deleteVirtualCluster",
        { ["Id.$"] = "$.id" }), { id = id }, { emu = emu })
      assert.are.equal("SUCCEEDED", status)
      assert.are.same({ Id = id }, out)
    end)

    it("startJobRun (request-response) returns the StartJobRun response", function()
      local emu = emulator.new()
      local status, out = run(one_task("arn:aws:states:::emr-containers:startJobRun", job_params()),
        pipeline_input(emu), { emu = emu })
      assert.are.equal("SUCCEEDED", status)
      assert.are.same({ "Arn", "Id", "Name", "VirtualClusterId" }, json.keys(out))
    end)

    it("aws-sdk:emrcontainers actions call the operation", function()
      local emu = emulator.new()
      local id = new_cluster(emu)
      local status, out = run(one_task("arn:aws:states:::aws-sdk:emrcontainers:describeVirtualCluster",
        { ["Id.$"] = "$.id" }), { id = id }, { emu = emu })
      assert.are.equal("SUCCEEDED", status)
      assert.are.equal("RUNNING", out.VirtualCluster.State)
      local _, err = run(one_task("arn:aws:states:::aws-sdk:emrcontainers:describeVirtualCluster",
        { Id = "nope" }), {}, { emu = emu })
      assert.are.equal("EmrContainers.ResourceNotFoundException", err.Error)
    end)
  end)

  describe("the 256 KiB payload quota", function()
    -- Overrides that keep the input (and the Parameters) just under the quota, so only the
    -- JobRun, which adds its own fields to them, goes over.
    local function big_input(vc)
      local classes = {}
      for c = 1, 3 do
        local props = {}
        for i = 1, 100 do props["spark.key." .. i] = string.rep("v", 1000) end
        classes[c] = { Classification = "c" .. c, Properties = props }
      end
      local input = { VirtualClusterId = vc, overrides = { ApplicationConfiguration = classes } }
      local over = #json.encode(input) - (262144 - 300)
      local victim = classes[3].Properties
      for i = 1, 100 do
        if over <= 0 then break end
        local cut = math.min(999, over)
        victim["spark.key." .. i] = string.rep("v", 1000 - cut)
        over = over - cut
      end
      assert(#json.encode(input) < 262144 - 250)
      return input
    end

    it("a JobRun over 262,144 bytes fails with States.DataLimitExceeded, caught only by name", function()
      local emu = emulator.new()
      local input = big_input(new_cluster(emu))
      local params = job_params{ ["ConfigurationOverrides.$"] = "$.overrides" }
      local status, res = run(one_task(SYNC, params), input, { emu = emu })
      assert.are.equal("FAILED", status)
      assert.are.equal("States.DataLimitExceeded", res.Error)
      assert.matches("'emr%-containers' returned a result with a size exceeding", res.Cause)
      local function caught(names)
        return machine({
          T = { Type = "Task", Resource = SYNC, Parameters = params, ResultPath = json.null,
                Catch = { { ErrorEquals = names, ResultPath = "$.err", Next = "Done" } },
                End = true },
          Done = { Type = "Pass", Parameters = { ["e.$"] = "$.err.Error" }, End = true },
        }, "T")
      end
      assert.are.equal("FAILED", (run(caught { "States.ALL" }, input, { emu = emu })))
      local st2, out2 = run(caught { "States.DataLimitExceeded" }, input, { emu = emu })
      assert.are.equal("SUCCEEDED", st2)
      assert.are.equal("States.DataLimitExceeded", out2.e)
    end)
  end)

  it("reports job state changes to on_emr_event", function()
    local emu = emulator.new()
    local seen = {}
    run(one_task(SYNC, job_params()), pipeline_input(emu), { emu = emu, start = {
      on_emr_event = function(ev) seen[#seen + 1] = ev.kind .. (ev.state and (":" .. ev.state) or "") end } })
    assert.are.same({ "job_submitted", "job_state:PENDING", "job_state:SUBMITTED", "job_state:RUNNING",
                      "job_state:COMPLETED" }, seen)
  end)
end)

describe("emr.sync", function()
  it("spaces polls of one endpoint 1/rate apart across tasks", function()
    local s = scheduler.new{ clock = "virtual", start = T0 }
    local stamps = {}
    for _ = 1, 50 do
      s:spawn(function()
        local lim = sync.limiter("endpoint-a", 5)
        local at = lim:take()
        stamps[#stamps + 1] = at
      end)
    end
    s:run()
    table.sort(stamps)
    assert.are.equal(50, #stamps)
    for i = 2, #stamps do assert.is_true(stamps[i] - stamps[i - 1] >= 0.2 - 1e-9) end
    assert.is_true(stamps[#stamps] - stamps[1] < 10)
  end)

  it("validates poll options", function()
    local bads = { { initial = -1 }, { factor = 0.5 }, { max = 0 }, { rate = "x" }, { speed = 1 }, 7 }
    for _, bad in ipairs(bads) do
      local ok, err = pcall(sync.schedule, bad)
      assert.is_false(ok)
      assert.are.equal("States.Runtime", err.Error)
      assert.matches("invalid poll option", err.Cause)
    end
    local sch = sync.schedule{ initial = 1, factor = 2, max = 5 }
    assert.are.same({ 1, 2, 4, 5, 5 },
      { sch:first(), sch:next(1, 0), sch:next(2, 0), sch:next(4, 0), sch:next(5, 0) })
  end)
end)

------------------------------------------------------------------------------
-- Against the fake HTTP server
------------------------------------------------------------------------------

local have_http = type(core.http) == "table" and core.http.poller ~= nil
local have_fake, fake = pcall(require, "support.fake")
local CREDS = { access_key_id = "AKIDEXAMPLE",
                secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" }

local function live(name, fn)
  if have_http and have_fake then it(name, fn) else
    it(name, function() pending("needs core.http and spec/support/fake.lua") end)
  end
end

describe("emr-containers Task states against the fake server", function()
  local srv

  setup(function()
    if have_http and have_fake then
      srv = fake.start("fake_emr", { "--job-seconds", "0.2", "--cancel-seconds", "0.2",
                                     "--terminate-seconds", "0.2" })
    end
  end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function() if srv then srv:control("POST", "/__fake/reset", {}) end end)

  local function client()
    local emr = require "emrflow.emr"
    return emr.client{ region = "us-east-1", endpoint_url = srv.url, credentials = CREDS, env = {},
                       timeout_ms = 5000, random = function() return 0.01 end }
  end

  local FAST = { initial = 0.1, factor = 1.5, max = 0.3, rate = 50 }

  local function run_http(def, input, start)
    local c = client()
    local o = { emr = c, clock = "real", poll = FAST }
    for k, v in pairs(start or {}) do o[k] = v end
    local x = asl.load(def):start(input, o)
    local status, res = x:wait()
    c:close()
    return status, res, x
  end

  local function fake_cluster()
    local c = client()
    local vc = assert(c:create_virtual_cluster{ Name = "vc-" .. math.random(1e9),
      ContainerProvider = { Id = "eks", Type = "EKS", Info = { EksInfo = { Namespace = "spark" } } } })
    c:close()
    return vc.Id
  end

  local function reqs(path_prefix)
    local q = path_prefix and ("?path_prefix=" .. path_prefix) or ""
    return srv:control("GET", "/__fake/requests" .. q).requests
  end

  live("runs each resource", function()
    local def = machine({
      Create = tasks.create_virtual_cluster{ Name = "vc-http",
                                             ContainerProvider = { Id = "eks", Type = "EKS" },
                                             ResultSelector = { ["VirtualClusterId.$"] = "$.Id" },
                                             Next = "Start" },
      Start = tasks.start_job_run{ Parameters = job_params(), ResultPath = "$.started", Next = "Sync" },
      Sync = tasks.start_job_run{ sync = true, Parameters = job_params(), ResultPath = "$.job",
                                  Next = "Sdk" },
      Sdk = tasks.sdk("listJobRuns", { ["VirtualClusterId.$"] = "$.VirtualClusterId", ResultPath = "$.list",
                                      Next = "Delete" }),
      Delete = tasks.delete_virtual_cluster{ sync = true, ["Id.$"] = "$.VirtualClusterId",
                                             ResultPath = "$.deleted" },
    }, "Create")
    local status, out = run_http(def, {})
    assert.are.equal("SUCCEEDED", status, json.encode(out))
    assert.is_string(out.started.Id)
    assert.are.equal("COMPLETED", out.job.State)
    assert.are.equal(2, #out.list.JobRuns)
    assert.are.equal("TERMINATED", out.deleted.State)
  end)

  live("FAILED and CANCELLED fail the Task with the JobRun as Cause", function()
    for _, final in ipairs{ "FAILED", "CANCELLED" } do
      local vc = fake_cluster()
      local s = scheduler.new{ clock = "real" }
      local c = client()
      local x = asl.load(one_task(SYNC, job_params())):start({ VirtualClusterId = vc },
        { emr = c, scheduler = s, poll = FAST })
      s:spawn(function()
        scheduler.sleep(0.3)
        local jobs = c:list_job_runs{ VirtualClusterId = vc }.JobRuns
        srv:control("POST", "/__fake/jobs/" .. jobs[1].Id .. "/state", { state = final })
      end)
      local status, res = x:wait()
      c:close()
      assert.are.equal("FAILED", status)
      assert.are.equal("States.TaskFailed", res.Error)
      assert.are.equal(final, json.decode(res.Cause).State)
    end
  end)

  live("API errors, throttled then fine, and Retry/Catch", function()
    local status, res = run_http(one_task(SYNC, job_params()), { VirtualClusterId = "nope" })
    assert.are.equal("FAILED", status)
    assert.are.equal("EmrContainers.ResourceNotFoundException", res.Error)
    local caught = machine({
      T = { Type = "Task", Resource = SYNC, Parameters = job_params(), End = true,
            Catch = { { ErrorEquals = { "EmrContainers.ResourceNotFoundException" }, ResultPath = "$.err",
                        Next = "Fallback" } } },
      Fallback = { Type = "Pass", Parameters = { ["error.$"] = "$.err.Error" }, End = true },
    }, "T")
    local cst, cout = run_http(caught, { VirtualClusterId = "nope" })
    assert.are.equal("SUCCEEDED", cst)
    assert.are.equal("EmrContainers.ResourceNotFoundException", cout.error)
    local vc = fake_cluster()
    srv:control("POST", "/__fake/faults", { faults = {
      { kind = "status", status = 429, count = 2,
        match = { method = "POST", path_prefix = "/virtualclusters/" } } } })
    local st2, out2 = run_http(one_task(SYNC, job_params()), { VirtualClusterId = vc })
    assert.are.equal("SUCCEEDED", st2, json.encode(out2))
    -- the two 429s were retried by the client with the same ClientToken: one job run
    local c = client()
    assert.are.equal(1, #c:list_job_runs{ VirtualClusterId = vc }.JobRuns)
    c:close()
    local posts = 0
    for _, r in ipairs(reqs("/virtualclusters/" .. vc .. "/jobruns")) do
      if r.method == "POST" then posts = posts + 1 end
    end
    assert.are.equal(3, posts)
    srv:control("POST", "/__fake/faults", { faults = {
      { kind = "status", status = 400, code = "ValidationException", count = 1,
        message = "Job run queue is full: maximum number of queued job runs exceeded",
        match = { method = "POST", path_prefix = "/virtualclusters/" } } } })
    local def = one_task(SYNC, job_params(), {
      Retry = { { ErrorEquals = { "EmrContainers.ValidationException" }, IntervalSeconds = 1,
                  MaxAttempts = 1 } } })
    local st3, out3 = run_http(def, { VirtualClusterId = vc })
    assert.are.equal("SUCCEEDED", st3, json.encode(out3))
  end)

  -- Runs one startJobRun.sync on the current fake; `act(x, client)` runs in a task beside it
  -- once the job run exists. Returns status, result, the job run as the fake has it, its cluster.
  local function held_job(def_extra, act)
    local vc = fake_cluster()
    local s = scheduler.new{ clock = "real" }
    local c = client()
    local x = asl.load(one_task(SYNC, job_params(), def_extra)):start({ VirtualClusterId = vc },
      { emr = c, scheduler = s, poll = FAST })
    s:spawn(function()
      local jobs
      repeat
        scheduler.sleep(0.05)
        jobs = c:list_job_runs{ VirtualClusterId = vc }.JobRuns
      until #jobs > 0
      if act then act(x, c) end
    end)
    local status, res = x:wait()
    local job = c:list_job_runs{ VirtualClusterId = vc }.JobRuns[1]
    c:close()
    return status, res, job, vc
  end

  local function cancels(vc)
    local n = 0
    for _, r in ipairs(reqs("/virtualclusters/" .. vc .. "/jobruns/")) do
      if r.method == "DELETE" then n = n + 1 end
    end
    return n
  end

  live("timeout and stop cancel the job run", function()
    srv:control("POST", "/__fake/reset", {})
    local slow = fake.start("fake_emr", { "--running-seconds", "30", "--pending-seconds", "0.05",
                                          "--submitted-seconds", "0.05", "--cancel-seconds", "0.2" })
    local saved = srv
    srv = slow
    local ok, err = pcall(function()
      local status, res, job, vc = held_job({ TimeoutSeconds = 1 })
      assert.are.equal("FAILED", status)
      assert.are.equal("States.Timeout", res.Error)
      assert.are.equal(1, cancels(vc))
      assert.are.equal("CANCELLED", job.State)
      local st2, _, job2, vc2 = held_job(nil, function(x)
        scheduler.sleep(0.3)
        x:stop("Stopped", "by the test")
      end)
      assert.are.equal("ABORTED", st2)
      assert.are.equal(1, cancels(vc2))
      assert.are.equal("CANCELLED", job2.State)
    end)
    srv = saved
    slow:stop()
    if not ok then error(err, 0) end
  end)

  live("the 256 KiB quota on a large JobRun result", function()
    local vc = fake_cluster()
    local classes = {}
    for cidx = 1, 3 do
      local props = {}
      for i = 1, 100 do props["spark.key." .. i] = string.rep("v", 1000) end
      classes[cidx] = { Classification = "c" .. cidx, Properties = props }
    end
    local status, res = run_http(one_task(SYNC, job_params{ ["ConfigurationOverrides.$"] = "$.o" }),
      { VirtualClusterId = vc, o = { ApplicationConfiguration = classes } })
    assert.are.equal("FAILED", status)
    assert.are.equal("States.DataLimitExceeded", res.Error)
  end)
end)
