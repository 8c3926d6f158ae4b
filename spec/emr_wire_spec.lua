-- The emulator on the wire: emu:serve answers the REST form emr-containers answers over
-- HTTP, and an execution (or `emrflow run --local`) given an emulator calls it through a
-- real emrflow.emr client (signing, marshalling, checks, retries, batched .sync polling).
-- Everything runs on a virtual clock.
local asl = require "emrflow.asl"
local json = require "emrflow.json"
local scheduler = require "emrflow.scheduler"
local emulator = require "emrflow.emulator"
local validate = require "emrflow.emr.validate"
require "emrflow.emr"

local T0 = 1700000000
local ROLE = "arn:aws:iam::123456789012:role/job-execution-role"
local SYNC = "arn:aws:states:::emr-containers:startJobRun.sync"
local CLUSTER = { Name = "vc-wire", ContainerProvider = { Id = "eks", Type = "EKS" } }

local function on_virtual_clock(fn, start)
  local s = scheduler.new{ clock = "virtual", start = start or T0 }
  local t = s:spawn(fn)
  s:run_until(t)
  local res = table.pack(t:result())
  assert(res[1], tostring(res[2]))
  return table.unpack(res, 2, res.n)
end

local function job_params(vc, name)
  return { VirtualClusterId = vc, Name = name or "wire-job", ExecutionRoleArn = ROLE,
           ReleaseLabel = "emr-6.2.0-latest",
           JobDriver = { SparkSubmitJobDriver = { EntryPoint = "s3://my-bucket/x.py",
                                                  EntryPointArguments = { "60" } } } }
end

local function header(resp, name)
  for _, h in ipairs(resp.headers) do
    if h[1]:lower() == name:lower() then return h[2] end
  end
  return nil
end

-- The signed request the emulator's client sends for (operation, params).
local function signed(emu, op, params)
  return assert(emu:client():call(op, params, { dry_run = true }))
end

local function one_job_machine(params)
  return asl.load{ StartAt = "Job", States = { Job = { Type = "Task", Resource = SYNC,
    Parameters = params or { Name = "one", ["VirtualClusterId.$"] = "$.vc", ExecutionRoleArn = ROLE,
      ReleaseLabel = "emr-6.2.0-latest",
      JobDriver = { SparkSubmitJobDriver = { EntryPoint = "s3://my-bucket/x.py" } } },
    End = true } } }
end

describe("emulator:serve (the REST wire form)", function()
  it("answers StartJobRun and DescribeJobRun in camelCase JSON with a request id", function()
    local emu = emulator.new()
    local vc = on_virtual_clock(function() return assert(emu:create_virtual_cluster(CLUSTER)).Id end)
    local req = signed(emu, "StartJobRun", job_params(vc))
    assert.equal("POST", req.method)
    assert.matches("/virtualclusters/" .. vc .. "/jobruns$", req.url)
    local resp = on_virtual_clock(function() return emu:serve(req) end)
    assert.equal(200, resp.status)
    assert.is_string(header(resp, "x-amzn-RequestId"))
    local body = json.decode(resp.body)
    assert.is_string(body.id)
    assert.equal(vc, body.virtualClusterId)
    assert.is_nil(body.Id)
    -- 100 s later the job is over; the wire view is the direct view, spelled for the wire
    local d = on_virtual_clock(function()
      return emu:serve(signed(emu, "DescribeJobRun", { VirtualClusterId = vc, Id = body.id }))
    end, T0 + 100)
    assert.equal(200, d.status)
    local wire = json.decode(d.body)
    assert.equal("COMPLETED", wire.jobRun.state)
    assert.same({ "60" }, wire.jobRun.jobDriver.sparkSubmitJobDriver.entryPointArguments)
    local direct = on_virtual_clock(function()
      return assert(emu:describe_job_run{ VirtualClusterId = vc, Id = body.id })
    end, T0 + 100)
    assert.same(json.decode(json.encode(direct)),
      json.decode(json.encode(validate.from_wire("DescribeJobRun", wire))))
  end)

  it("answers errors as the service does: status, x-amzn-ErrorType, a message body", function()
    local emu = emulator.new()
    local vc = on_virtual_clock(function() return assert(emu:create_virtual_cluster(CLUSTER)).Id end)
    local resp = on_virtual_clock(function()
      return emu:serve(signed(emu, "DescribeJobRun", { VirtualClusterId = vc, Id = "nope" }))
    end)
    assert.equal(400, resp.status)
    assert.matches("^ResourceNotFoundException:", header(resp, "x-amzn-ErrorType"))
    assert.matches("doesn't exist", json.decode(resp.body).message)
    -- unsigned: refused before anything else
    local req = signed(emu, "DescribeJobRun", { VirtualClusterId = vc, Id = "nope" })
    local unsigned = { method = req.method, url = req.url, headers = {}, body = req.body }
    local r2 = on_virtual_clock(function() return emu:serve(unsigned) end)
    assert.equal(403, r2.status)
    assert.matches("^MissingAuthenticationTokenException:", header(r2, "x-amzn-ErrorType"))
    -- no such operation
    local r3 = on_virtual_clock(function()
      return emu:serve{ method = "PATCH", url = req.url, headers = req.headers, body = "" }
    end)
    assert.equal(404, r3.status)
    assert.matches("^UnknownOperationException:", header(r3, "x-amzn-ErrorType"))
    -- a body that is not a JSON object
    local start = signed(emu, "StartJobRun", job_params(vc))
    local r4 = on_virtual_clock(function()
      return emu:serve{ method = "POST", url = start.url, headers = start.headers, body = "[1]" }
    end)
    assert.equal(400, r4.status)
    assert.matches("^SerializationException:", header(r4, "x-amzn-ErrorType"))
    -- the service's own model checks (a client may skip its own)
    local bad = job_params(vc)
    bad.ReleaseLabel = ""
    local r5 = on_virtual_clock(function()
      return emu:serve(assert(emu:client():call("StartJobRun", bad, { dry_run = true, validate = false })))
    end)
    assert.equal(400, r5.status)
    assert.matches("^ValidationException:", header(r5, "x-amzn-ErrorType"))
    assert.equal(0, #emu.job_list)
    -- not a request at all: a clear error naming what is expected
    local okx, e = pcall(emu.serve, emu, { method = "GET" })
    assert.is_false(okx)
    assert.matches("serve expects a request", tostring(e))
  end)

  it("reads ListJobRuns' query string: repeated states, createdAfter, maxResults and nextToken", function()
    local emu = emulator.new{ jobs = { { match = "bad-*", final_state = "FAILED" } } }
    local vc = on_virtual_clock(function()
      local id = assert(emu:create_virtual_cluster(CLUSTER)).Id
      for i = 1, 5 do assert(emu:start_job_run(job_params(id, (i % 2 == 0 and "bad-" or "good-") .. i))) end
      return id
    end)
    local seen, token, pages = {}, nil, 0
    repeat
      local resp = on_virtual_clock(function()
        return emu:serve(signed(emu, "ListJobRuns", { VirtualClusterId = vc,
          States = { "COMPLETED", "FAILED" }, CreatedAfter = T0 - 10, MaxResults = 2, NextToken = token }))
      end, T0 + 100)
      assert.equal(200, resp.status, resp.body)
      local body = json.decode(resp.body)
      pages = pages + 1
      for _, j in ipairs(body.jobRuns) do seen[#seen + 1] = j.name .. ":" .. j.state end
      token = body.nextToken
    until not token
    assert.equal(3, pages)
    assert.same({ "good-1:COMPLETED", "bad-2:FAILED", "good-3:COMPLETED", "bad-4:FAILED",
                  "good-5:COMPLETED" }, seen)
    local later = on_virtual_clock(function()
      return emu:serve(signed(emu, "ListJobRuns", { VirtualClusterId = vc, States = { "FAILED" },
        CreatedAfter = T0 + 1 }))
    end, T0 + 100)
    assert.same({}, json.decode(later.body).jobRuns)
  end)
end)

describe("an execution given an emulator", function()
  local function cluster(emu)
    return on_virtual_clock(function() return assert(emu:create_virtual_cluster(CLUSTER)).Id end)
  end

  it("calls it through one emrflow.emr client: every call a signed HTTP-shaped request", function()
    local emu = emulator.new()
    local vc = cluster(emu)
    local before = emu:stats().requests
    local x = one_job_machine():start({ vc = vc }, { emr = emu, clock = "virtual", start_time = T0 })
    local status, out = x:wait()
    assert.equal("SUCCEEDED", status)
    assert.equal("COMPLETED", out.State)
    local st = emu:stats()
    assert.is_true(st.requests - before >= 3)                 -- StartJobRun and the polls
    assert.equal(st.requests - before, emu:client().stats.attempts)
    assert.equal(1, st.by_operation.StartJobRun)
    assert.is_true(tostring(emu:client()):find("emulator", 1, true) ~= nil)
  end)

  it("polls a Map of 100 jobs on one virtual cluster with ListJobRuns, not 100 polls an interval", function()
    local n = 100
    local emu = emulator.new()
    local vc = cluster(emu)
    local names = json.array({})
    for i = 1, n do names[i] = "map-" .. i end
    local m = asl.load{ StartAt = "M", States = { M = { Type = "Map", MaxConcurrency = 0,
      ItemsPath = "$.names",
      ItemSelector = { ["vc.$"] = "$.vc", ["name.$"] = "$$.Map.Item.Value" },
      ItemProcessor = { StartAt = "Job", States = { Job = { Type = "Task", Resource = SYNC,
        Parameters = { ["Name.$"] = "$.name", ["VirtualClusterId.$"] = "$.vc", ExecutionRoleArn = ROLE,
          ReleaseLabel = "emr-6.2.0-latest",
          JobDriver = { SparkSubmitJobDriver = { EntryPoint = "s3://my-bucket/x.py" } } },
        ResultSelector = { ["State.$"] = "$.State" }, End = true } } }, End = true } } }
    local status, out = m:start({ vc = vc, names = names }, { emr = emu, clock = "virtual",
      start_time = T0 }):wait()
    assert.equal("SUCCEEDED", status)
    for i = 1, n do assert.equal("COMPLETED", out[i].State) end
    local by = emu:stats().by_operation
    assert.equal(n, by.StartJobRun)
    assert.is_true((by.ListJobRuns or 0) >= 1, "listed " .. tostring(by.ListJobRuns))
    -- a describe when a job is first watched and one when a listing shows it over (per job
    -- polling needs 8 a job for 75 s jobs on the default schedule)
    assert.is_true(by.DescribeJobRun <= 2 * n + 10, by.DescribeJobRun .. " DescribeJobRun")
  end)

  it("retries throttling in the client only: api_errors count n fails exactly n requests", function()
    local emu = emulator.new{ api_errors = { { operation = "StartJobRun", code = "ThrottlingException",
                                               count = 2 } } }
    local vc = cluster(emu)
    local status = one_job_machine():start({ vc = vc },
      { emr = emu, clock = "virtual", start_time = T0 }):wait()
    assert.equal("SUCCEEDED", status)
    assert.equal(3, emu:stats().by_operation.StartJobRun)
    assert.equal(2, emu:client().stats.retries)
    assert.equal(1, #emu.job_list)
    -- as many throttles as the client's attempts (3): the Task fails after 3 requests, not 9
    local emu2 = emulator.new{ api_errors = { { operation = "StartJobRun", code = "ThrottlingException",
                                                count = 3 } } }
    local vc2 = cluster(emu2)
    local st2, err = one_job_machine():start({ vc = vc2 }, { emr = emu2, clock = "virtual",
      start_time = T0 }):wait()
    assert.equal("FAILED", st2)
    assert.equal("EmrContainers.ThrottlingException", err.Error)
    assert.equal(3, emu2:stats().by_operation.StartJobRun)
    assert.equal(0, #emu2.job_list)
  end)

  it("is called directly when made with wire = false", function()
    local emu = emulator.new(nil, { wire = false })
    local vc = cluster(emu)
    local status = one_job_machine():start({ vc = vc },
      { emr = emu, clock = "virtual", start_time = T0 }):wait()
    assert.equal("SUCCEEDED", status)
    assert.equal(0, emu:stats().requests)
    assert.is_nil(rawget(emu, "wire_client"))
  end)

  it("emrflow run --local: the run's emulator answers the example pipeline through the client", function()
    local cli = require "emrflow.cli"
    local sink = { write = function() end }
    local start = cli.start_options({ ["local"] = true }, { stdin = io.stdin, stdout = sink, stderr = sink })
    assert.is_true(emulator.is_emulator(start.emr))
    local f = assert(io.open("examples/emr-eks-pipeline.json"))
    local def = f:read("a")
    f:close()
    local status, out = asl.load(def):start(json.object({}), start):wait()
    assert.equal("SUCCEEDED", status, json.encode(out))
    local st = start.emr:stats()
    assert.is_true(st.requests > 0)
    assert.equal(st.requests, start.emr:client().stats.attempts)
    for _, op in ipairs{ "CreateVirtualCluster", "StartJobRun", "DescribeJobRun", "DeleteVirtualCluster",
                         "DescribeVirtualCluster" } do
      assert.is_true((st.by_operation[op] or 0) >= 1, op)
    end
  end)
end)
