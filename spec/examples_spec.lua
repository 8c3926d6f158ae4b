-- The examples: the three Task states of the Step Functions page "Call Amazon EMR on EKS
-- with AWS Step Functions", joined into one pipeline, as ASL JSON and as Lua; they run on
-- the emulator and against the fake server with the same output; `emrflow run` shows
-- progress and writes the history as JSON lines.
local asl = require "emrflow.asl"
local json = require "emrflow.json"
local emulator = require "emrflow.emulator"
local tasks = require "emrflow.emr.tasks"
local progress = require "emrflow.progress"
local core = require "emrflow.core"

tasks.register(asl)

local JSON_PATH = "examples/emr-eks-pipeline.json"
local LUA_PATH = "examples/emr-eks-pipeline.lua"
local T0 = 1700000000

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- The page's three Task states, as published (placeholders included).
-- luacheck: push ignore 631
local PAGE = [[{
"Create_Virtual_Cluster": {
  "Type": "Task",
  "Resource": "arn:aws:states:::emr-containers:createVirtualCluster",
  "Parameters": {
    "Name": "MyVirtualCluster",
    "ContainerProvider": {
      "Id": "EKSClusterName",
      "Type": "EKS",
      "Info": {
        "EksInfo": {
          "Namespace": "Namespace"
        }
      }
    }
  },
  "End": true
},
"Submit_Job": {
  "Type": "Task",
  "Resource": "arn:aws:states:::emr-containers:startJobRun.sync",
  "Parameters": {
    "Name": "MyJobName",
    "VirtualClusterId.$": "$.VirtualClusterId",
    "ExecutionRoleArn": "arn:aws:iam::<accountId>:role/job-execution-role",
    "ReleaseLabel": "emr-6.2.0-latest",
    "JobDriver": {
      "SparkSubmitJobDriver": {
        "EntryPoint": "s3://<mybucket>/jobs/trip-count.py",
        "EntryPointArguments": [
          "60"
        ],
        "SparkSubmitParameters": "--conf spark.driver.cores=2 --conf spark.executor.instances=10 --conf spark.kubernetes.pyspark.pythonVersion=3 --conf spark.executor.memory=10G --conf spark.driver.memory=10G --conf spark.executor.cores=1 --conf spark.dynamicAllocation.enabled=false"
      }
    },
    "ConfigurationOverrides": {
      "ApplicationConfiguration": [
        {
          "Classification": "spark-defaults",
          "Properties": {
            "spark.executor.instances": "2",
            "spark.executor.memory": "2G"
          }
        }
      ],
      "MonitoringConfiguration": {
        "PersistentAppUI": "ENABLED",
        "CloudWatchMonitoringConfiguration": {
          "LogGroupName": "MyLogGroupName",
          "LogStreamNamePrefix": "MyLogStreamNamePrefix"
        },
        "S3MonitoringConfiguration": {
          "LogUri": "s3://<mylogsbucket>"
        }
      }
    }
  },
  "End": true
},
"Delete_Virtual_Cluster": {
  "Type": "Task",
  "Resource": "arn:aws:states:::emr-containers:deleteVirtualCluster.sync",
  "Parameters": {
    "Id.$": "$.VirtualClusterId"
  },
  "End": true
}
}]]
-- luacheck: pop

-- The substitutions the examples make (the design: placeholders fail the model's patterns;
-- a Kubernetes namespace is lower-case, so "Namespace" fails its pattern too).
local function substitute(v)
  if type(v) == "string" then
    return (v:gsub("<accountId>", "123456789012"):gsub("<mybucket>", "my-bucket"))
  end
  if type(v) ~= "table" then return v end
  local out = json.is_array(v) and json.array({}) or json.object({})
  for k, x in pairs(v) do out[k] = substitute(x) end
  if out.Namespace == "Namespace" then out.Namespace = "namespace" end
  return out
end

-- Plain Lua copy (marks and order dropped) for deep comparison.
local function plain(v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = plain(x) end
  return t
end

local JOINING = { Next = true, End = true, ResultSelector = true, ResultPath = true }

local function run_cli(args, env)
  local out = os.tmpname()
  local err = os.tmpname()
  local cmd = (env or "") .. " lua5.4 bin/emrflow run " .. args .. " >" .. out .. " 2>" .. err
  local _, _, code = os.execute(cmd)
  local o, e = read(out), read(err)
  os.remove(out)
  os.remove(err)
  return code, o, e
end

describe("examples/emr-eks-pipeline", function()
  it("holds the page's three Task states verbatim, joined with Next/ResultSelector/ResultPath", function()
    local page = json.decode(PAGE)
    local def = json.decode(read(JSON_PATH))
    assert.are.equal("Create_Virtual_Cluster", def.StartAt)
    assert.are.same({ "Create_Virtual_Cluster", "Submit_Job", "Delete_Virtual_Cluster" },
      json.keys(def.States))
    for name, want in pairs(page) do
      local got = def.States[name]
      local trimmed = {}
      for k, v in pairs(got) do if not JOINING[k] then trimmed[k] = v end end
      local expected = {}
      for k, v in pairs(substitute(want)) do if not JOINING[k] then expected[k] = v end end
      assert.are.same(plain(expected), plain(trimmed), name)
      -- key order of the page kept too
      assert.are.same(json.keys(want.Parameters), json.keys(got.Parameters), name)
    end
    assert.are.equal("Submit_Job", def.States.Create_Virtual_Cluster.Next)
    assert.are.equal("Delete_Virtual_Cluster", def.States.Submit_Job.Next)
    assert.is_true(def.States.Delete_Virtual_Cluster.End)
  end)

  it("is valid, and the page's own placeholders are not (they fail the model's patterns)", function()
    assert.are.same({}, asl.validate(read(JSON_PATH)))
    local raw = json.decode(PAGE)
    raw.Submit_Job.Parameters["VirtualClusterId.$"] = nil
    raw.Submit_Job.Parameters.VirtualClusterId = "abc"
    local problems = asl.validate({ StartAt = "Submit_Job", States = { Submit_Job = raw.Submit_Job } })
    local paths = {}
    for _, p in ipairs(problems) do paths[#paths + 1] = p.path end
    table.sort(paths)
    assert.are.same({ "/States/Submit_Job/Parameters/ExecutionRoleArn" }, paths)
  end)

  it("the Lua script builds the same state machine as the JSON", function()
    local from_lua = asl.load(dofile(LUA_PATH))
    local from_json = asl.load(read(JSON_PATH))
    assert.are.same(plain(json.decode(from_json:to_json())), plain(json.decode(from_lua:to_json())))
  end)

  it("runs on the emulator: each Task state's exact request, and the same output from both", function()
    local outputs = {}
    for _, path in ipairs{ JSON_PATH, LUA_PATH } do
      local def = path:match("%.lua$") and dofile(path) or read(path)
      local emu = emulator.new()
      local calls = {}
      local backend = setmetatable({
        call = function(_, op, params, opts)
          calls[#calls + 1] = { op = op, params = json.decode(json.encode(params)) }
          return emu:call(op, params, opts)
        end,
        endpoint_key = emu,
      }, { __index = emu })
      local x = asl.load(def):start({}, { emr = backend, clock = "virtual", start_time = T0, name = "demo" })
      local status, out = x:wait()
      assert.are.equal("SUCCEEDED", status)
      outputs[#outputs + 1] = json.encode(out)
      -- the requests, in order: the page's Parameters with the paths resolved
      local ops = {}
      for _, c in ipairs(calls) do if c.op ~= "DescribeJobRun" and c.op ~= "DescribeVirtualCluster" then
        ops[#ops + 1] = c.op
      end end
      assert.are.same({ "CreateVirtualCluster", "StartJobRun", "DeleteVirtualCluster" }, ops)
      local page = substitute(json.decode(PAGE))
      assert.are.same(plain(page.Create_Virtual_Cluster.Parameters), plain(calls[1].params))
      local start = plain(page.Submit_Job.Parameters)
      start["VirtualClusterId.$"] = nil
      start.VirtualClusterId = out.VirtualClusterId
      assert.are.same(start, plain(calls[2].params))
      for _, c in ipairs(calls) do
        if c.op == "DeleteVirtualCluster" then
          assert.are.same({ Id = out.VirtualClusterId }, plain(c.params))
        end
      end
      assert.are.equal("COMPLETED", out.JobRun.State)
      assert.are.equal("TERMINATED", out.VirtualCluster.State)
    end
    -- each execution has its own unique id, so its own ClientToken; everything else is equal
    local a, b = json.decode(outputs[1]), json.decode(outputs[2])
    assert.are_not.equal(a.JobRun.ClientToken, b.JobRun.ClientToken)
    a.JobRun.ClientToken, b.JobRun.ClientToken = nil, nil
    assert.are.same(plain(a), plain(b))
  end)

  it("emrflow run --local gives the same stdout for both, exit 0, and a result file", function()
    local rf = os.tmpname()
    local c1, o1 = run_cli(JSON_PATH .. " --local --name same --result-file " .. rf, "")
    assert.are.equal(0, c1)
    local c2, o2 = run_cli(LUA_PATH .. " --local --name same", "")
    assert.are.equal(0, c2)
    -- Same name and same second: identical (ids are deterministic, times virtual from "now")
    local a, b = json.decode(o1), json.decode(o2)
    a.JobRun.CreatedAt, a.JobRun.FinishedAt, a.VirtualCluster.CreatedAt = nil, nil, nil
    b.JobRun.CreatedAt, b.JobRun.FinishedAt, b.VirtualCluster.CreatedAt = nil, nil, nil
    a.JobRun.ClientToken, b.JobRun.ClientToken = nil, nil  -- unique per execution
    assert.are.same(plain(a), plain(b))
    local result = json.decode(read(rf))
    os.remove(rf)
    assert.are.equal("SUCCEEDED", result.status)
    assert.are.equal("COMPLETED", result.output.JobRun.State)
  end)

  it("shows progress on stderr when asked: states, job state changes with times, the end", function()
    local code, out, err = run_cli(JSON_PATH .. " --local", "EMRFLOW_PROGRESS=1")
    assert.are.equal(0, code)
    assert.is_table(json.decode(out))
    for _, want in ipairs{ "> Create_Virtual_Cluster", "< Create_Virtual_Cluster", "> Submit_Job",
                           "PENDING -> SUBMITTED", "SUBMITTED -> RUNNING", "RUNNING -> COMPLETED",
                           "> Delete_Virtual_Cluster", "TERMINATING -> TERMINATED",
                           "execution SUCCEEDED" } do
      assert.is_truthy(err:find(want, 1, true), want .. " in:\n" .. err)
    end
    -- each line carries the clock and the elapsed execution time, marked virtual (--local)
    assert.matches("\n%[virtual %d%d:%d%d:%d%d %+%d+%.%ds%]     job MyJobName %w+ RUNNING %-> COMPLETED", err)
    -- quiet when stderr is not a terminal
    local _, _, quiet = run_cli(JSON_PATH .. " --local", "")
    assert.is_nil(quiet:find("> Submit_Job", 1, true))
  end)

  it("--events writes the history as JSON lines", function()
    local code, _, err = run_cli(JSON_PATH .. " --local --events", "")
    assert.are.equal(0, code)
    local types = {}
    for line in err:gmatch("[^\n]+") do
      if line:sub(1, 1) == "{" then
        local ev = json.decode(line)
        assert.is_number(ev.id)
        types[#types + 1] = ev.type
        if ev.type == "TaskSubmitted" then assert.is_string(ev.taskSubmittedEventDetails.output) end
      end
    end
    assert.are.equal("ExecutionStarted", types[1])
    assert.are.equal("ExecutionSucceeded", types[#types])
    assert.is_true(#types >= 19)
  end)

  it("--scenario scripts the outcome: a FAILED job fails the run with exit code 2", function()
    local sc = os.tmpname()
    local f = assert(io.open(sc, "w"))
    f:write('{"jobs":[{"match":"My*","final_state":"FAILED","failure_reason":"USER_ERROR",'
      .. '"state_details":"Exit code 1"}]}')
    f:close()
    local rf = os.tmpname()
    local code = run_cli(JSON_PATH .. " --local --scenario " .. sc .. " --result-file " .. rf, "")
    assert.are.equal(2, code)
    local result = json.decode(read(rf))
    assert.are.equal("FAILED", result.status)
    assert.are.equal("States.TaskFailed", result.error)
    assert.are.equal("Exit code 1", json.decode(result.cause).StateDetails)
    -- a bad scenario is emrflow's own error: exit 1, and the message names the field
    f = assert(io.open(sc, "w"))
    f:write('{"jobs":[{"match":"x","final_state":"DONE"}]}')
    f:close()
    local code2, _, err2 = run_cli(JSON_PATH .. " --local --scenario " .. sc, "")
    assert.are.equal(1, code2)
    assert.matches("scenario.jobs%[1%].final_state", err2)
    os.remove(sc)
    os.remove(rf)
  end)

  it("the reporter summarizes a Map instead of printing every iteration", function()
    local lines = {}
    local stream = { write = function(_, ...) lines[#lines + 1] = table.concat({ ... }) end }
    local rep = progress.new{ stream = stream, enabled = true }
    local items = {}
    for i = 1, 100 do items[i] = i end
    local def = { StartAt = "M", States = { M = { Type = "Map", ItemsPath = "$.items",
      ItemProcessor = { StartAt = "P", States = { P = { Type = "Pass", End = true } } }, End = true } } }
    local x = asl.load(def):start({ items = items }, { clock = "virtual", on_event = rep:on_event() })
    assert.are.equal("SUCCEEDED", (x:wait()))
    local text = table.concat(lines)
    assert.matches("Map M: 100 iterations", text)
    assert.matches("Map M: 50/100 iterations done", text)
    assert.matches("Map M: 100/100 iterations done", text)
    assert.is_true(#lines < 30, #lines .. " lines")
  end)
end)

local have_http = type(core.http) == "table" and core.http.poller ~= nil
local have_fake, fake = pcall(require, "support.fake")

describe("examples against the fake server", function()
  local srv
  setup(function()
    if have_http and have_fake then
      srv = fake.start("fake_emr", { "--job-seconds", "0.2", "--terminate-seconds", "0.2" })
    end
  end)
  teardown(function() if srv then srv:stop() end end)

  local function it_live(name, fn)
    if srv or (have_http and have_fake) then it(name, fn) else
      it(name, function() pending("needs core.http and spec/support/fake.lua") end)
    end
  end

  it_live("both examples send the page's payloads and give the emulator's output", function()
    local emr = require "emrflow.emr"
    local creds = { access_key_id = "AKIDEXAMPLE",
                    secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" }
    local function normalize(o)
      local t = plain(o)
      t.VirtualClusterId = "ID"
      for _, k in ipairs{ "Id", "Arn", "VirtualClusterId", "CreatedAt", "FinishedAt", "CreatedBy",
                          "ClientToken" } do
        if t.JobRun[k] then t.JobRun[k] = k end
        if t.VirtualCluster[k] then t.VirtualCluster[k] = k end
      end
      return t
    end
    local results = {}
    for _, path in ipairs{ JSON_PATH, LUA_PATH } do
      srv:control("POST", "/__fake/reset", {})
      local def = path:match("%.lua$") and dofile(path) or read(path)
      local c = emr.client{ region = "us-east-1", endpoint_url = srv.url, credentials = creds, env = {} }
      local x = asl.load(def):start({}, { emr = c, clock = "real", name = "demo",
                                         poll = { initial = 0.1, factor = 1.5, max = 0.3 } })
      local status, out = x:wait()
      c:close()
      assert.are.equal("SUCCEEDED", status, json.encode(out))
      results[#results + 1] = normalize(out)
      local reqs = srv:control("GET", "/__fake/requests?method=POST").requests
      local page = substitute(json.decode(PAGE))
      local create = json.decode(reqs[1].body)
      assert.are.equal(page.Create_Virtual_Cluster.Parameters.Name, create.name)
      assert.are.equal("namespace", create.containerProvider.info.eksInfo.namespace)
      local start = json.decode(reqs[2].body)
      assert.are.equal("MyJobName", start.name)
      assert.are.equal("s3://my-bucket/jobs/trip-count.py", start.jobDriver.sparkSubmitJobDriver.entryPoint)
      local conf = start.configurationOverrides.applicationConfiguration[1]
      assert.are.equal("2G", conf.properties["spark.executor.memory"])
      assert.matches("^emrflow%-", start.clientToken)
    end
    assert.are.same(results[1], results[2])
    local x = asl.load(read(JSON_PATH)):start({}, { emr = emulator.new(), clock = "virtual" })
    local _, local_out = x:wait()
    local l = normalize(local_out)
    l.JobRun.CreatedBy, results[1].JobRun.CreatedBy = nil, nil
    assert.are.same(l, results[1])
  end)
end)

describe("examples/emr-eks-job with existing-cluster.scenario", function()
  local VC = "cszt6tqby98mea88f1u26cob2"

  it("runs the page's job on a virtual cluster given as input, locally", function()
    local code, out, err = run_cli("examples/emr-eks-job.json --local --scenario "
      .. "examples/existing-cluster.scenario.json --input '{\"VirtualClusterId\":\"" .. VC .. "\"}'")
    assert.are.equal(0, code, err)
    local o = json.decode(out)
    assert.are.equal(VC, o.VirtualClusterId)
    assert.are.equal("COMPLETED", o.JobRun.State)
    assert.are.equal(VC, o.JobRun.VirtualClusterId)
  end)

  it("keeps the page's job parameters", function()
    -- the same Parameters as the pipeline's Submit_Job (the page's, with its placeholders filled)
    local pipeline = json.decode(read(JSON_PATH)).States.Submit_Job
    local job = json.decode(read("examples/emr-eks-job.json")).States.Submit_Job
    assert.are.equal(pipeline.Resource, job.Resource)
    assert.are.same(pipeline.Parameters, job.Parameters)
    assert.are.equal("$.VirtualClusterId", job.Parameters["VirtualClusterId.$"])
  end)
end)

describe("examples/nightly-report: EMR on EKS locally, the other services mocked", function()
  local VC = "cszt6tqby98mea88f1u26cob2"
  local BASE = "examples/nightly-report.json --local --mock-config examples/nightly-report.mocks.json"
    .. " --input '{\"VirtualClusterId\":\"" .. VC .. "\"}' --quiet"

  it("HappyPath: the Lambda's date names the job and reaches it; the success is notified", function()
    local code, out, err = run_cli(BASE .. " --scenario examples/existing-cluster.scenario.json"
      .. " --test-case HappyPath --events")
    assert.are.equal(0, code, err)
    local o = json.decode(out)
    assert.are.same({ Date = "2024-01-01" }, o.Arguments)
    assert.are.equal("COMPLETED", o.JobRun.State)
    assert.is_nil(o.Failure)
    -- the job was started with the Lambda's date, through States.Format and States.Array
    local params
    for line in err:gmatch("[^\n]+") do
      local ok, ev = pcall(json.decode, line)
      if ok and type(ev) == "table" and ev.type == "TaskScheduled"
          and ev.taskScheduledEventDetails.resourceType == "emr-containers" then
        params = json.decode(ev.taskScheduledEventDetails.parameters)
      end
    end
    assert.is_table(params, err)
    assert.are.equal("nightly-report-2024-01-01", params.Name)
    assert.are.same({ "--date", "2024-01-01" }, params.JobDriver.SparkSubmitJobDriver.EntryPointArguments)
  end)

  it("ThrottledLambda: two throttled invocations are retried, then the run succeeds", function()
    local code, out, err = run_cli(BASE .. " --scenario examples/existing-cluster.scenario.json"
      .. " --test-case ThrottledLambda --events")
    assert.are.equal(0, code, err)
    assert.are.equal("COMPLETED", json.decode(out).JobRun.State)
    local scheduled = 0
    for line in err:gmatch("[^\n]+") do
      local ok, ev = pcall(json.decode, line)
      if ok and type(ev) == "table" and ev.type == "TaskScheduled"
          and ev.taskScheduledEventDetails.resourceType == "lambda" then
        scheduled = scheduled + 1
      end
    end
    assert.are.equal(3, scheduled)
  end)

  it("JobFails: the failed job is caught, notified, and the execution fails (exit 2)", function()
    local result = os.tmpname()
    local code, out, err = run_cli(BASE .. " --scenario examples/nightly-report.failing.scenario.json"
      .. " --test-case JobFails --result-file " .. result)
    assert.are.equal(2, code, err)
    assert.are.equal("", out)
    local r = json.decode(read(result))
    os.remove(result)
    assert.are.same({ status = "FAILED", error = "NightlyReportFailed",
                      cause = "the Spark job did not complete; see the notification" }, r)
  end)
end)
