-- The built-in EMR on EKS emulator: lifecycles, scenarios, idempotency, validation,
-- injected API errors, all on the caller's clock.
local emulator = require "emrflow.emulator"
local scheduler = require "emrflow.scheduler"
local json = require "emrflow.json"
local model = require "emrflow.emr.model"

local T0 = 1700000000

-- An emulator whose clock is a variable the test moves.
local function fixture(scenario)
  local clock = { t = T0 }
  local emu = emulator.new(scenario, { now = function() return clock.t end,
                                       random = function() return 0 end })
  return emu, clock
end

local CLUSTER = { Name = "vc-1", ContainerProvider = { Id = "eks-1", Type = "EKS",
                  Info = { EksInfo = { Namespace = "spark" } } } }

local function job_params(vc, name, extra)
  local p = { VirtualClusterId = vc, Name = name, ExecutionRoleArn = "arn:aws:iam::123456789012:role/job",
              ReleaseLabel = "emr-6.2.0-latest",
              JobDriver = { SparkSubmitJobDriver = { EntryPoint = "s3://my-bucket/job.py" } } }
  for k, v in pairs(extra or {}) do p[k] = v end
  return p
end

local function new_cluster(emu, extra)
  local p = {}
  for k, v in pairs(CLUSTER) do p[k] = v end
  for k, v in pairs(extra or {}) do p[k] = v end
  return assert(emu:create_virtual_cluster(p))
end

local function state_of(emu, vc, id)
  local out = assert(emu:describe_job_run{ VirtualClusterId = vc, Id = id })
  return out.JobRun.State, out.JobRun
end

describe("emrflow.emulator", function()
  describe("job run lifecycle", function()
    it("goes PENDING, SUBMITTED, RUNNING, COMPLETED on the default durations", function()
      local emu, clock = fixture()
      local vc = new_cluster(emu)
      local job = assert(emu:start_job_run(job_params(vc.Id, "daily")))
      local cases = {
        { 0, "PENDING" }, { 4.9, "PENDING" }, { 5, "SUBMITTED" }, { 14.9, "SUBMITTED" },
        { 15, "RUNNING" }, { 74.9, "RUNNING" }, { 75, "COMPLETED" }, { 1000, "COMPLETED" },
      }
      for _, c in ipairs(cases) do
        clock.t = T0 + c[1]
        local st, jr = state_of(emu, vc.Id, job.Id)
        assert.are.equal(c[2], st, "at +" .. c[1] .. " s")
        if st == "COMPLETED" then
          assert.are.equal(emulator.timestamp(T0 + 75), jr.FinishedAt)
        else
          assert.is_nil(jr.FinishedAt)
        end
      end
    end)

    it("describes the job run with the request's fields in PascalCase", function()
      local emu = fixture()
      local vc = new_cluster(emu)
      local p = job_params(vc.Id, "shape", {
        ConfigurationOverrides = { ApplicationConfiguration = { { Classification = "spark-defaults",
          Properties = { ["spark.executor.instances"] = "2" } } } },
        Tags = { team = "data" },
      })
      local started = assert(emu:start_job_run(p, { client_token = "tok-1" }))
      assert.are.same({ "Arn", "Id", "Name", "VirtualClusterId" }, json.keys(started))
      assert.matches("^[0-9a-z]+$", started.Id)
      assert.are.equal(19, #started.Id)
      assert.are.equal(25, #vc.Id)
      assert.are.equal("arn:aws:emr-containers:us-east-1:123456789012:/virtualclusters/" .. vc.Id
        .. "/jobruns/" .. started.Id, started.Arn)
      local _, jr = state_of(emu, vc.Id, started.Id)
      assert.are.equal("tok-1", jr.ClientToken)
      assert.are.equal("spark-defaults", jr.ConfigurationOverrides.ApplicationConfiguration[1].Classification)
      local conf = jr.ConfigurationOverrides.ApplicationConfiguration[1]
      assert.are.equal("2", conf.Properties["spark.executor.instances"])
      assert.are.same({ team = "data" }, jr.Tags)
      assert.are.equal("s3://my-bucket/job.py", jr.JobDriver.SparkSubmitJobDriver.EntryPoint)
      assert.are.equal(emulator.timestamp(T0), jr.CreatedAt)
      -- results are copies: changing one does not change the emulator's state
      jr.JobDriver.SparkSubmitJobDriver.EntryPoint = "changed"
      local _, again = state_of(emu, vc.Id, started.Id)
      assert.are.equal("s3://my-bucket/job.py", again.JobDriver.SparkSubmitJobDriver.EntryPoint)
    end)

    it("takes durations and outcomes from the first matching scenario job, else the defaults", function()
      local emu, clock = fixture{
        defaults = { pending_seconds = 1, submitted_seconds = 1, running_seconds = 10 },
        jobs = {
          { match = "nightly-*", final_state = "FAILED", failure_reason = "USER_ERROR",
            state_details = "Exit code 1", running_seconds = 120 },
          { match = "nightly-x", final_state = "CANCELLED" },   -- never reached: first match wins
          { match = "q?", final_state = "CANCELLED", running_seconds = 3 },
        },
      }
      local vc = new_cluster(emu)
      local cases = {
        { name = "nightly-x", at = 122, state = "FAILED", reason = "USER_ERROR", details = "Exit code 1" },
        { name = "nightly-x", at = 121.9, state = "RUNNING" },
        { name = "q1", at = 5, state = "CANCELLED" },
        { name = "qq1", at = 12, state = "COMPLETED" },
        { name = "other", at = 11.9, state = "RUNNING" },
      }
      for i, c in ipairs(cases) do
        clock.t = T0 + i * 1000
        local job = assert(emu:start_job_run(job_params(vc.Id, c.name)))
        clock.t = clock.t + c.at
        local st, jr = state_of(emu, vc.Id, job.Id)
        assert.are.equal(c.state, st, c.name .. " at +" .. c.at)
        assert.are.equal(c.reason, jr.FailureReason)
        if c.details then assert.are.equal(c.details, jr.StateDetails) end
      end
    end)

    it("keeps each emulator's scenario: the same job name ends as each emulator's rules say", function()
      local a, clock_a = fixture{ defaults = { running_seconds = 10 } }
      local b, clock_b = fixture{ jobs = { { match = "etl-*", final_state = "FAILED" } } }
      local vca, vcb = new_cluster(a), new_cluster(b)
      local ids_a, ids_b = {}, {}
      for i = 1, 3 do
        ids_a[i] = assert(a:start_job_run(job_params(vca.Id, "etl-" .. i))).Id
        ids_b[i] = assert(b:start_job_run(job_params(vcb.Id, "etl-" .. i))).Id
      end
      clock_a.t, clock_b.t = T0 + 25, T0 + 25
      for i = 1, 3 do
        assert.are.equal("COMPLETED", state_of(a, vca.Id, ids_a[i]))
        assert.are.equal("RUNNING", state_of(b, vcb.Id, ids_b[i]))
      end
      clock_b.t = T0 + 75
      for i = 1, 3 do
        local st, jr = state_of(b, vcb.Id, ids_b[i])
        assert.are.equal("FAILED", st)
        assert.are.equal("USER_ERROR", jr.FailureReason)
      end
    end)

    it("cancels: CANCEL_PENDING, then CANCELLED after cancel_seconds; not once final", function()
      local emu, clock = fixture{ defaults = { cancel_seconds = 4 } }
      local vc = new_cluster(emu)
      local job = assert(emu:start_job_run(job_params(vc.Id, "c")))
      clock.t = T0 + 20
      local out = assert(emu:cancel_job_run{ VirtualClusterId = vc.Id, Id = job.Id })
      assert.are.same({ Id = job.Id, VirtualClusterId = vc.Id }, out)
      assert.are.equal("CANCEL_PENDING", state_of(emu, vc.Id, job.Id))
      clock.t = T0 + 23.9
      assert.are.equal("CANCEL_PENDING", state_of(emu, vc.Id, job.Id))
      clock.t = T0 + 24
      local st, jr = state_of(emu, vc.Id, job.Id)
      assert.are.equal("CANCELLED", st)
      assert.are.equal(emulator.timestamp(T0 + 24), jr.FinishedAt)
      local res, err = emu:cancel_job_run{ VirtualClusterId = vc.Id, Id = job.Id }
      assert.is_nil(res)
      assert.are.equal("ValidationException", err.aws_code)
      assert.matches("not in a cancellable state", err.message)
    end)
  end)

  describe("virtual clusters", function()
    it("go RUNNING, TERMINATING, TERMINATED and refuse new jobs once deleted", function()
      local emu, clock = fixture{ defaults = { terminating_seconds = 30 } }
      local vc = new_cluster(emu, { Tags = { env = "test" } })
      assert.are.same({ "Arn", "Id", "Name" }, json.keys(vc))
      local d = assert(emu:describe_virtual_cluster{ Id = vc.Id }).VirtualCluster
      assert.are.equal("RUNNING", d.State)
      assert.are.same({ env = "test" }, d.Tags)
      assert.are.equal("spark", d.ContainerProvider.Info.EksInfo.Namespace)
      assert.are.same({ Id = vc.Id }, assert(emu:delete_virtual_cluster{ Id = vc.Id }))
      clock.t = T0 + 29.9
      assert.are.equal("TERMINATING", emu:describe_virtual_cluster{ Id = vc.Id }.VirtualCluster.State)
      local _, err = emu:start_job_run(job_params(vc.Id, "late"))
      assert.are.equal("ValidationException", err.aws_code)
      assert.matches("TERMINATING", err.message)
      clock.t = T0 + 30
      assert.are.equal("TERMINATED", emu:describe_virtual_cluster{ Id = vc.Id }.VirtualCluster.State)
    end)

    it("answers unknown ids with the service's error codes", function()
      local emu = fixture()
      local vc = new_cluster(emu)
      local cases = {
        { "DescribeVirtualCluster", { Id = "nope" }, "ResourceNotFoundException" },
        { "DeleteVirtualCluster", { Id = "nope" }, "ValidationException" },
        { "StartJobRun", job_params("nope", "x"), "ResourceNotFoundException" },
        { "DescribeJobRun", { VirtualClusterId = vc.Id, Id = "nope" }, "ResourceNotFoundException" },
        { "CancelJobRun", { VirtualClusterId = vc.Id, Id = "nope" }, "ValidationException" },
      }
      for _, c in ipairs(cases) do
        local out, err = emu:call(c[1], c[2])
        assert.is_nil(out, c[1])
        assert.are.equal(c[3], err.aws_code, c[1])
        assert.are.equal(400, err.status, c[1])
        assert.are.equal("aws", err.code)
        assert.is_false(err.retryable)
        assert.matches("nope", tostring(err))
      end
    end)

    it("refuses a second live virtual cluster in the same namespace", function()
      local emu = fixture()
      new_cluster(emu)
      local _, err = emu:create_virtual_cluster{ Name = "vc-2",
                                                 ContainerProvider = CLUSTER.ContainerProvider }
      assert.are.equal("ValidationException", err.aws_code)
      assert.matches("already exists", err.message)
    end)
  end)

  describe("clientToken idempotency", function()
    it("returns the same job run for the same token and parameters, on the emulator's clock", function()
      local emu, clock = fixture{ client_token_ttl_seconds = 3600 }
      local vc = new_cluster(emu)
      local a = assert(emu:start_job_run(job_params(vc.Id, "idem"), { client_token = "t1" }))
      clock.t = T0 + 3599
      local b = assert(emu:start_job_run(job_params(vc.Id, "idem", { ClientToken = "t1" })))
      assert.are.equal(a.Id, b.Id)
      local list = assert(emu:list_job_runs{ VirtualClusterId = vc.Id })
      assert.are.equal(1, #list.JobRuns)
      -- another token is another job
      local c = assert(emu:start_job_run(job_params(vc.Id, "idem"), { client_token = "t2" }))
      assert.are_not.equal(a.Id, c.Id)
      -- same token, other parameters: refused like the service does
      local _, err = emu:start_job_run(job_params(vc.Id, "other"), { client_token = "t1" })
      assert.are.equal("ValidationException", err.aws_code)
      assert.matches("already used with different parameters", err.message)
      -- past the token's lifetime it starts a new job
      clock.t = T0 + 3601
      local d = assert(emu:start_job_run(job_params(vc.Id, "idem"), { client_token = "t1" }))
      assert.are_not.equal(a.Id, d.Id)
    end)

    it("fills a fresh token when none is given, so each call starts a new job run", function()
      local emu = fixture()
      local vc = new_cluster(emu)
      local a = assert(emu:start_job_run(job_params(vc.Id, "n")))
      local b = assert(emu:start_job_run(job_params(vc.Id, "n")))
      assert.are_not.equal(a.Id, b.Id)
      local _, jr = state_of(emu, vc.Id, a.Id)
      assert.matches("^%x+%-%x+%-4%x+%-%x+%-%x+$", jr.ClientToken)
    end)

    it("applies to CreateVirtualCluster too", function()
      local emu = fixture()
      local p = { Name = "vc-i", ContainerProvider = CLUSTER.ContainerProvider }
      local a = assert(emu:create_virtual_cluster(p, { client_token = "c1" }))
      local b = assert(emu:create_virtual_cluster(p, { client_token = "c1" }))
      assert.are.equal(a.Id, b.Id)
    end)
  end)

  describe("model validation", function()
    local cases = {
      { "unknown member", "StartJobRun", { Bogus = 1 }, "Bogus: unknown parameter" },
      { "missing required", "DescribeJobRun", { Id = "abc" }, "VirtualClusterId: missing required" },
      { "bad enum", "CreateVirtualCluster", { Name = "x", ContainerProvider = { Id = "e", Type = "ECS" } },
        "ContainerProvider.Type" },
      { "bad pattern", "StartJobRun", { ExecutionRoleArn = "arn:aws:iam::<accountId>:role/r" },
        "ExecutionRoleArn" },
      { "wrong type", "StartJobRun", { Name = 5 }, "Name" },
    }
    for _, c in ipairs(cases) do
      it("rejects " .. c[1] .. " with a ValidationException naming the field, before any change", function()
        local emu = fixture()
        local vc = new_cluster(emu)
        local params = c[3]
        if c[2] == "StartJobRun" then
          local p = job_params(vc.Id, "v")
          for k, v in pairs(params) do p[k] = v end
          params = p
        end
        local out, err = emu:call(c[2], params)
        assert.is_nil(out)
        assert.are.equal("ValidationException", err.aws_code)
        assert.is_truthy(err.message:find(c[4], 1, true), err.message)
        assert.are.equal(0, #assert(emu:list_job_runs{ VirtualClusterId = vc.Id }).JobRuns)
      end)
    end

    it("needs a job driver, role and release label when no job template is given", function()
      local emu = fixture()
      local vc = new_cluster(emu)
      local _, err = emu:start_job_run{ VirtualClusterId = vc.Id, Name = "bare" }
      assert.are.equal("ValidationException", err.aws_code)
      assert.matches("ExecutionRoleArn is required", err.message)
    end)

    it("raises for misuse: an unknown operation or non-table parameters", function()
      local emu = fixture()
      assert.has_error(function() emu:call("LaunchRocket", {}) end)
      assert.has_error(function() emu:call("StartJobRun", "x") end)
    end)
  end)

  describe("api_errors", function()
    it("fails the next count calls; throttling is retried like the client, on its clock", function()
      local s = scheduler.new{ clock = "virtual", start = T0 }
      local emu = emulator.new({ api_errors = { { operation = "StartJobRun", code = "ThrottlingException",
                                                 count = 2 } } }, { random = function() return 0.5 end })
      local task = s:spawn(function()
        local vc = assert(emu:create_virtual_cluster(CLUSTER))
        local t1 = scheduler.now()
        local job = assert(emu:start_job_run(job_params(vc.Id, "thr")))
        return job, scheduler.now() - t1
      end)
      local ok, job, waited = s:run_until(task)
      assert.is_true(ok)
      assert.is_string(job.Id)
      -- one CreateVirtualCluster attempt, three StartJobRun attempts (two throttled)
      assert.are.equal(4, emu:stats().attempts)
      assert.are.equal(2, emu:stats().retries)
      assert.is_true(waited > 0, "backed off on the virtual clock")
    end)

    it("returns the error once the client's attempts are spent, and counts down", function()
      local emu = fixture{ api_errors = { { operation = "DescribeVirtualCluster",
                                            code = "ThrottlingException", count = 4 } } }
      local vc = new_cluster(emu)
      local out, err = emu:describe_virtual_cluster{ Id = vc.Id }
      assert.is_nil(out)
      assert.are.equal("ThrottlingException", err.aws_code)
      assert.is_true(err.retryable)
      assert.are.equal(400, err.status)
      -- one injected failure left, then success within the retries
      assert.is_table(emu:describe_virtual_cluster{ Id = vc.Id })
    end)

    it("does not retry other codes, and takes status and message from the scenario", function()
      local emu = fixture{ api_errors = {
        { operation = "CreateVirtualCluster", code = "AccessDeniedException", count = 1,
          message = "not allowed", status = 403 },
        { operation = "DescribeJobRun", code = "InternalServerException" },
      } }
      local _, err = emu:create_virtual_cluster(CLUSTER)
      assert.are.equal("AccessDeniedException", err.aws_code)
      assert.are.equal(403, err.status)
      assert.are.equal("not allowed", err.message)
      assert.are.equal(1, emu:stats().attempts)
      local vc = new_cluster(emu)
      local job = assert(emu:start_job_run(job_params(vc.Id, "ise")))
      -- InternalServerException (500) is transient: retried, then fine
      assert.is_table(emu:describe_job_run{ VirtualClusterId = vc.Id, Id = job.Id })
    end)
  end)

  describe("job queue", function()
    it("refuses StartJobRun with a ValidationException naming the full queue", function()
      local emu, clock = fixture{ queue = { max_concurrent_job_runs = 1, max_in_queue_job_runs = 1 } }
      local vc = new_cluster(emu)
      assert(emu:start_job_run(job_params(vc.Id, "a")))
      assert(emu:start_job_run(job_params(vc.Id, "b")))
      local _, err = emu:start_job_run(job_params(vc.Id, "c"))
      assert.are.equal("ValidationException", err.aws_code)
      assert.matches("queue is full", err.message)
      clock.t = T0 + 75    -- both finished: room again
      assert.is_table(emu:start_job_run(job_params(vc.Id, "c")))
    end)

    it("counts each virtual cluster's active job runs; a cancelled one frees its place", function()
      local emu, clock = fixture{ defaults = { cancel_seconds = 4 },
                                  queue = { max_concurrent_job_runs = 1, max_in_queue_job_runs = 1 } }
      local vc = new_cluster(emu)
      local other = new_cluster(emu, { ContainerProvider = { Id = "eks-2", Type = "EKS" } })
      local a = assert(emu:start_job_run(job_params(vc.Id, "a")))
      clock.t = T0 + 10
      assert(emu:start_job_run(job_params(vc.Id, "b")))
      assert.is_table(emu:start_job_run(job_params(other.Id, "elsewhere")))
      assert(emu:cancel_job_run{ VirtualClusterId = vc.Id, Id = a.Id })
      local _, err = emu:start_job_run(job_params(vc.Id, "c"))    -- a is CANCEL_PENDING
      assert.are.equal("ValidationException", err.aws_code)
      clock.t = T0 + 14     -- a CANCELLED, b running: one place
      assert.is_table(emu:start_job_run(job_params(vc.Id, "c")))
      _, err = emu:start_job_run(job_params(vc.Id, "d"))
      assert.matches("2 job runs are active or queued", err.message)
      clock.t = T0 + 85     -- b COMPLETED, c still running: one place
      assert.is_table(emu:start_job_run(job_params(vc.Id, "d")))
    end)
  end)

  describe("lists and tags", function()
    it("pages ListJobRuns and filters by state", function()
      local emu, clock = fixture()
      local vc = new_cluster(emu)
      for i = 1, 5 do assert(emu:start_job_run(job_params(vc.Id, "j" .. i))) end
      clock.t = T0 + 6
      local seen = 0
      for page in emu:paginate("ListJobRuns", { VirtualClusterId = vc.Id, MaxResults = 2 }) do
        assert.is_true(#page.JobRuns <= 2)
        seen = seen + #page.JobRuns
      end
      assert.are.equal(5, seen)
      local sub = assert(emu:list_job_runs{ VirtualClusterId = vc.Id, States = { "SUBMITTED" } })
      assert.are.equal(5, #sub.JobRuns)
      local none = assert(emu:list_job_runs{ VirtualClusterId = vc.Id, States = { "RUNNING" } })
      assert.are.equal(0, #none.JobRuns)
      assert.is_true(json.is_array(none.JobRuns))
    end)

    it("tags and untags virtual clusters", function()
      local emu = fixture()
      local vc = new_cluster(emu)
      assert(emu:tag_resource{ ResourceArn = vc.Arn, Tags = { a = "1", b = "2" } })
      assert(emu:untag_resource{ ResourceArn = vc.Arn, TagKeys = { "a" } })
      assert.are.same({ b = "2" }, assert(emu:list_tags_for_resource{ ResourceArn = vc.Arn }).Tags)
    end)

    it("has a snake_case method for every operation of the model", function()
      local emu = fixture()
      for op in pairs(model.operations) do
        assert.is_function(emu[emulator.snake(op)], op)
      end
      local _, err = emu:describe_job_template{ Id = "abc" }
      assert.are.equal("UnsupportedOperation", err.aws_code)
    end)
  end)

  describe("scenarios", function()
    local bad = {
      { { nope = 1 }, 'scenario: unknown field "nope"' },
      { { defaults = { running_seconds = -1 } }, "scenario.defaults.running_seconds" },
      { { defaults = { running_seconds = "60" } }, "scenario.defaults.running_seconds: must be a number" },
      { { defaults = { final_state = "DONE" } }, "scenario.defaults.final_state" },
      { { defaults = { match = "x" } }, 'scenario.defaults: unknown field "match"' },
      { { jobs = { { final_state = "FAILED" } } }, 'scenario.jobs[1]: needs a "match"' },
      { { jobs = { { match = "a", failure_reason = "OOPS" } } }, "scenario.jobs[1].failure_reason" },
      { { jobs = { x = 1 } }, "scenario.jobs: must be an array" },
      { { api_errors = { { operation = "Nope", code = "X" } } }, "scenario.api_errors[1].operation" },
      { { api_errors = { { operation = "StartJobRun", code = "bad code" } } },
        "scenario.api_errors[1].code" },
      { { api_errors = { { operation = "StartJobRun", code = "X", count = 1.5 } } },
        "scenario.api_errors[1].count" },
      { { queue = { max_running = 3 } }, 'scenario.queue: unknown field "max_running"' },
      { "text", "scenario: must be a table" },
    }
    for _, c in ipairs(bad) do
      it("rejects a bad scenario: " .. c[2], function()
        local ok, err = pcall(emulator.new, c[1])
        assert.is_false(ok)
        assert.is_truthy(tostring(err):find(c[2], 1, true), tostring(err))
      end)
    end

    it("reads a scenario file, and names the file when it is wrong", function()
      local path = os.tmpname()
      local f = assert(io.open(path, "w"))
      f:write('{"defaults":{"running_seconds":1},"jobs":[{"match":"x*","final_state":"FAILED"}]}')
      f:close()
      local sc = emulator.load_scenario(path)
      assert.are.equal(1, sc.defaults.running_seconds)
      f = assert(io.open(path, "w"))
      f:write('{"defaults":{"running_seconds":true}}')
      f:close()
      local ok, err = pcall(emulator.load_scenario, path)
      assert.is_false(ok)
      assert.matches(path:gsub("%p", "%%%0") .. ": scenario.defaults.running_seconds", tostring(err))
      f = assert(io.open(path, "w"))
      f:write('{"defaults":')
      f:close()
      ok, err = pcall(emulator.load_scenario, path)
      assert.is_false(ok)
      assert.matches("invalid JSON", tostring(err))
      os.remove(path)
    end)
  end)

  it("never sleeps in real time: a 10-minute job finishes at once on a virtual clock", function()
    local s = scheduler.new{ clock = "virtual", start = T0 }
    local emu = emulator.new{ defaults = { running_seconds = 600 } }
    local task = s:spawn(function()
      local vc = assert(emu:create_virtual_cluster(CLUSTER))
      local job = assert(emu:start_job_run(job_params(vc.Id, "long")))
      while true do
        local st = emu:describe_job_run{ VirtualClusterId = vc.Id, Id = job.Id }.JobRun.State
        if st == "COMPLETED" then return scheduler.now() - T0 end
        scheduler.sleep(30)
      end
    end)
    local c0 = os.clock()
    local ok, elapsed = s:run_until(task)
    assert.is_true(ok)
    assert.is_true(elapsed >= 615 and elapsed < 650)
    assert.is_true(os.clock() - c0 < 1)
  end)
end)
