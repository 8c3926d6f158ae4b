-- Journeys through this session's new features (store, redrive, resume, the emulator's wire
-- path), as a user meets them on the command line: each test is something README.md,
-- doc/store.md or DESIGN.md promises that was found broken while trying emrflow.
local json = require "emrflow.json"

local sh = require "support.sh"

local function emrflow(args)
  return sh("lua5.4 bin/emrflow " .. args)
end

local function history(name, db)
  local code, out, err = emrflow("history " .. name .. " --store " .. db)
  assert.are.equal(0, code, err)
  local events = {}
  for line in out:gmatch("[^\n]+") do events[#events + 1] = json.decode(line) end
  return events
end

-- Every event's timestamp is at or after the one before it (GetExecutionHistory's order).
local function assert_in_time_order(events)
  for i = 2, #events do
    local a, b = events[i - 1], events[i]
    assert.is_true(b.timestamp >= a.timestamp, string.format(
      "event %d %s at %.3f comes before event %d %s at %.3f", b.id, b.type, b.timestamp,
      a.id, a.type, a.timestamp))
  end
end

local function wait_for_file(path, seconds)
  for _ = 1, seconds * 20 do
    local f = io.open(path)
    if f then f:close() return true end
    os.execute("sleep 0.05")
  end
  return false
end

describe("qa2 journeys", function()
  local files = {}
  local function tmp(suffix)
    local name = os.tmpname() .. (suffix or "")
    files[#files + 1] = name
    return name
  end
  local function file(content, suffix)
    local name = tmp(suffix)
    local f = assert(io.open(name, "w"))
    f:write(content)
    f:close()
    return name
  end
  teardown(function()
    for _, f in ipairs(files) do
      os.remove(f)
      os.remove(f .. "-wal")
      os.remove(f .. "-shm")
    end
  end)

  local CLUSTER = [=["virtual_clusters":[{"id":"cszt6tqby98mea88f1u26cob2","name":"prod",
    "state":"RUNNING","container_provider_id":"eks"}]]=]

  describe("a Distributed Map's child execution on the command line", function()
    it("resume and redrive of a child alone are refused naming its parent, not an internal error", function()
      local def = file([[{"StartAt":"Parts","States":{"Parts":{"Type":"Map","ItemsPath":"$.items",
        "ItemProcessor":{"ProcessorConfig":{"Mode":"DISTRIBUTED","ExecutionType":"STANDARD"},
          "StartAt":"Check","States":{"Check":{"Type":"Choice",
            "Choices":[{"Variable":"$","NumericEquals":2,"Next":"Bad"}],"Default":"Good"},
            "Bad":{"Type":"Fail","Error":"Item.Bad"},"Good":{"Type":"Succeed"}}},
        "End":true}}}]], ".json")
      local db = tmp(".db")
      local code, _, err = emrflow("run " .. def .. [[ --input '{"items":[1,2,3]}' --store ]] .. db
        .. " --name parent1")
      assert.are.equal(2, code, err)
      local machine = def:match("([^/]+)%.json$")
      local out
      code, out, err = emrflow("executions --store " .. db .. " --machine-name " .. machine
        .. "/Parts --status FAILED")
      assert.are.equal(0, code, err)
      local child = json.decode(out:match("[^\n]+")).name
      for _, command in ipairs { "resume", "redrive" } do
        code, out, err = emrflow(command .. " " .. child .. " --store " .. db)
        assert.are.equal(1, code, err)
        assert.are.equal("", out)
        assert.matches("child execution", err, 1, true)
        assert.matches(command .. " its parent execution arn:aws:states:us-east-1:123456789012:execution:"
          .. machine .. ":parent1", err, 1, true)
        assert.is_nil(err:find("internal error", 1, true), err)
      end
    end)
  end)

  describe("run --events", function()
    it("gives the same events as the store's history, a string payload as JSON text", function()
      local def = file([[{"StartAt":"A","States":{
        "A":{"Type":"Pass","Result":["x",1],"Next":"M"},
        "M":{"Type":"Map","ItemProcessor":{"StartAt":"I","States":{
          "I":{"Type":"Pass","End":true}}},"End":true}}}]], ".json")
      local db = tmp(".db")
      local code, out, err = emrflow("run " .. def .. " --store " .. db .. " --name ev1 --events --compact")
      assert.are.equal(0, code, err)
      assert.are.same({ "x", 1 }, json.decode(out))
      local live = {}
      for line in err:gmatch("[^\n]+") do
        if line:sub(1, 1) == "{" then
          local e = json.decode(line)
          e.timestamp = nil
          live[#live + 1] = e
        end
      end
      local stored = history("ev1", db)
      for _, e in ipairs(stored) do e.timestamp = nil end
      assert.are.same(stored, live)
      local entered
      for _, e in ipairs(live) do
        local d = e.stateEnteredEventDetails
        if d and d.name == "I" and not entered then entered = d end
      end
      assert.are.equal('"x"', entered.input)
      assert.are.same({ truncated = false }, entered.inputDetails)
    end)
  end)

  describe("Ctrl-C of a recorded run (--store)", function()
    it("the second Ctrl-C names the jobs still cancelling, the third lists them as left running", function()
      local def = file([[{"StartAt":"Submit","States":{"Submit":{"Type":"Task",
        "Resource":"arn:aws:states:::emr-containers:startJobRun.sync",
        "Parameters":{"VirtualClusterId":"cszt6tqby98mea88f1u26cob2","Name":"nightly",
          "ExecutionRoleArn":"arn:aws:iam::123456789012:role/r","ReleaseLabel":"emr-6.2.0-latest",
          "JobDriver":{"SparkSubmitJobDriver":{"EntryPoint":"s3://my-bucket/x.py"}}},"End":true}}}]], ".json")
      -- real clock, a job that takes an hour to run and as long to cancel
      local sc = file("{" .. CLUSTER .. [[,"defaults":{"running_seconds":3600,
        "cancel_seconds":3600}}]], ".json")
      local db, errf = tmp(".db"), tmp(".err")
      local cmd = string.format("lua5.4 bin/emrflow run %s --local --clock real --progress --scenario %s"
        .. " --store %s --name sig1 2>%s & pid=$!; "
        .. "for i in $(seq 1 300); do grep -q submitted %s && break; sleep 0.1; done; "
        .. "kill -INT $pid; "
        .. "for i in $(seq 1 300); do grep -q 'cancelling job' %s && break; sleep 0.1; done; "
        .. "kill -INT $pid; "
        .. "for i in $(seq 1 300); do grep -q 'still stopping' %s && break; sleep 0.1; done; "
        .. "kill -INT $pid; wait $pid; echo \"exit=$?\"", def, sc, db, errf, errf, errf, errf)
      local p = io.popen(cmd)
      local out = p:read("a")
      p:close()
      local f = assert(io.open(errf))
      local text = f:read("a")
      f:close()
      assert.matches("exit=2", out, 1, true)
      local job = text:match("job nightly (%w+) submitted")
      assert.is_string(job, text)
      assert.matches("emrflow: still stopping: waiting for 1 job to reach CANCELLED: " .. job, text, 1, true)
      assert.matches("emrflow: exiting without waiting; left running: " .. job
        .. " (nightly, virtual cluster cszt6tqby98mea88f1u26cob2", text, 1, true)
    end)
  end)

  describe("resume of a --local run after kill -9", function()
    it("the virtual cluster the run had created still exists for the jobs resumed", function()
      local sc = file([[{"defaults":{"pending_seconds":1,"submitted_seconds":1,"running_seconds":3,
        "terminating_seconds":1}}]], ".json")
      local db, errf = tmp(".db"), tmp(".err")
      local cmd = string.format("lua5.4 bin/emrflow run examples/emr-eks-pipeline.json --local --clock real"
        .. " --progress --scenario %s --store %s --name pipe1 >/dev/null 2>%s & pid=$!; "
        .. "for i in $(seq 1 300); do grep -q submitted %s && break; sleep 0.1; done; "
        .. "kill -9 $pid; wait $pid; echo \"exit=$?\"", sc, db, errf, errf)
      local p = io.popen(cmd)
      local out = p:read("a")
      p:close()
      assert.matches("exit=137", out, 1, true)
      local code, result, err = emrflow("resume pipe1 --store " .. db)
      assert.are.equal(0, code, err)
      assert.are.equal("COMPLETED", json.decode(result).JobRun.State)
      local events = history("pipe1", db)
      assert.are.equal("ExecutionSucceeded", events[#events].type)
    end)
  end)

  describe("resume of a --local Distributed Map of EMR jobs after kill -9", function()
    it("every item reports a job of its own (no job id given twice)", function()
      local def = file([[{"StartAt":"Parts","States":{"Parts":{"Type":"Map","ItemsPath":"$.items",
        "MaxConcurrency":2,"ItemProcessor":{
          "ProcessorConfig":{"Mode":"DISTRIBUTED","ExecutionType":"STANDARD"},
          "StartAt":"J","States":{"J":{"Type":"Task",
            "Resource":"arn:aws:states:::emr-containers:startJobRun.sync",
            "Parameters":{"Name.$":"States.Format('part-{}', $)",
              "VirtualClusterId":"cszt6tqby98mea88f1u26cob2",
              "ExecutionRoleArn":"arn:aws:iam::123456789012:role/r","ReleaseLabel":"emr-6.2.0-latest",
              "JobDriver":{"SparkSubmitJobDriver":{"EntryPoint":"s3://b/x.py"}}},
            "ResultSelector":{"Id.$":"$.Id"},"End":true}}},"End":true}}}]], ".json")
      local sc = file("{" .. CLUSTER .. [[,"defaults":{"pending_seconds":1,"submitted_seconds":1,
        "running_seconds":2}}]], ".json")
      local db, errf = tmp(".db"), tmp(".err")
      local cmd = string.format("lua5.4 bin/emrflow run %s --local --clock real --progress --scenario %s"
        .. [[ --store %s --name dm1 --input '{"items":[0,1,2,3]}' >/dev/null 2>%s & pid=$!; ]]
        .. "for i in $(seq 1 600); do grep -q 'job part-3 .* submitted' %s && break; sleep 0.1; done; "
        .. "kill -9 $pid; wait $pid; echo \"exit=$?\"", def, sc, db, errf, errf)
      local p = io.popen(cmd)
      local out = p:read("a")
      p:close()
      assert.matches("exit=137", out, 1, true)
      local code, result, err = emrflow("resume dm1 --store " .. db)
      assert.are.equal(0, code, err)
      local items, seen = json.decode(result), {}
      assert.are.equal(4, #items)
      for i, item in ipairs(items) do
        assert.is_nil(seen[item.Id], "items " .. tostring(seen[item.Id]) .. " and " .. i .. " report job "
          .. item.Id .. ": " .. result)
        seen[item.Id] = i
      end
    end)
  end)

  describe("redrive from another directory", function()
    it("finds the --scenario the run was given by a relative path", function()
      local root = assert(os.getenv("PWD"))
      local dir = tmp(".d")
      os.remove(dir)
      assert(os.execute("mkdir " .. dir))
      local def = file([[{"StartAt":"J","States":{"J":{"Type":"Task",
        "Resource":"arn:aws:states:::emr-containers:startJobRun.sync",
        "Parameters":{"Name":"nightly","VirtualClusterId":"cszt6tqby98mea88f1u26cob2",
          "ExecutionRoleArn":"arn:aws:iam::123456789012:role/r","ReleaseLabel":"emr-6.2.0-latest",
          "JobDriver":{"SparkSubmitJobDriver":{"EntryPoint":"s3://b/x.py"}}},"End":true}}}]], ".json")
      local f = assert(io.open(dir .. "/sc.json", "w"))
      f:write("{" .. CLUSTER .. [[,"api_errors":[{"operation":"StartJobRun","code":"AccessDeniedException",
        "count":1}]}]])
      f:close()
      local db = tmp(".db")
      local code, _, err = sh("cd " .. dir .. " && lua5.4 " .. root .. "/bin/emrflow run " .. def
        .. " --local --scenario sc.json --store " .. db .. " --name rel1")
      assert.are.equal(2, code, err)
      assert.matches("AccessDeniedException", err, 1, true)
      -- from the project's directory: the recorded scenario is still found (its error was used
      -- up by the run, but a new emulator answers it again: the redrive fails the same way)
      code, _, err = emrflow("redrive rel1 --store " .. db)
      os.remove(dir .. "/sc.json")
      os.remove(dir)
      assert.are.equal(2, code, err)
      assert.matches("AccessDeniedException", err, 1, true)
      assert.is_nil(err:find("cannot read scenario", 1, true), err)
    end)
  end)

  describe("the emulator's existing virtual clusters", function()
    local JOB = [[{"StartAt":"J","States":{"J":{"Type":"Task",
      "Resource":"arn:aws:states:::emr-containers:startJobRun.sync",
      "Parameters":{"Name":"nightly","VirtualClusterId":"cszt6tqby98mea88f1u26cob2",
        "ExecutionRoleArn":"arn:aws:iam::123456789012:role/r","ReleaseLabel":"emr-6.2.0-latest",
        "JobDriver":{"SparkSubmitJobDriver":{"EntryPoint":"s3://b/x.py"}}},"End":true}}}]]

    it("emulator.new takes the README's scenario with virtual_clusters (Lua API)", function()
      local emulator = require "emrflow.emulator"
      local emu = emulator.new { virtual_clusters = { { id = "cszt6tqby98mea88f1u26cob2", name = "prod" } } }
      local machine = require("emrflow.asl").load(JOB)
      local status, out = machine:start({}, { emr = emu, clock = "virtual" }):wait()
      assert.are.equal("SUCCEEDED", status, json.encode(out))
      assert.are.equal("COMPLETED", out.State)
      assert.are.equal("cszt6tqby98mea88f1u26cob2", out.VirtualClusterId)
    end)

    it("a job queue limit on an existing cluster runs the job (no Lua error as the Cause)", function()
      local def = file(JOB, ".json")
      local sc = file("{" .. CLUSTER .. [[,"queue":{"max_concurrent_job_runs":1}}]], ".json")
      local code, out, err = emrflow("run " .. def .. " --local --scenario " .. sc)
      assert.are.equal(0, code, err)
      assert.are.equal("COMPLETED", json.decode(out).State)
    end)
  end)

  describe("the history of a continued execution on the virtual clock", function()
    it("redrive: the events after ExecutionRedriven come after the recorded ones", function()
      -- a Wait puts the failed job 100 s (virtual) after the start: the redrive's events
      -- must not go back to the start time
      local def = file([[{"StartAt":"W","States":{
        "W":{"Type":"Wait","Seconds":100,"Next":"J"},
        "J":{"Type":"Task","Resource":"arn:aws:states:::emr-containers:startJobRun.sync",
          "Parameters":{"Name.$":"$.name","VirtualClusterId":"cszt6tqby98mea88f1u26cob2",
            "ExecutionRoleArn":"arn:aws:iam::123456789012:role/r","ReleaseLabel":"emr-6.2.0-latest",
            "JobDriver":{"SparkSubmitJobDriver":{"EntryPoint":"s3://b/x.py"}}},"End":true}}}]], ".json")
      local failing = file("{" .. CLUSTER .. [[,"jobs":[{"match":"*","final_state":"FAILED"}]}]], ".json")
      local passing = file("{" .. CLUSTER .. "}", ".json")
      local db = tmp(".db")
      local code, _, err = emrflow("run " .. def .. [[ --input '{"name":"nightly"}' --local --scenario ]]
        .. failing .. " --store " .. db .. " --name r1")
      assert.are.equal(2, code, err)
      code, _, err = emrflow("redrive r1 --store " .. db .. " --scenario " .. passing)
      assert.are.equal(0, code, err)
      local events = history("r1", db)
      local redriven
      for i, e in ipairs(events) do
        if e.type == "ExecutionRedriven" then redriven = i end
      end
      assert.is_truthy(redriven, "an ExecutionRedriven event")
      local failed_at = events[redriven - 1].timestamp
      assert.is_true(events[redriven].timestamp >= failed_at, string.format(
        "ExecutionRedriven at %.3f comes before the recorded failure at %.3f",
        events[redriven].timestamp, failed_at))
      for i = redriven + 1, #events do
        assert.is_true(events[i].timestamp >= failed_at, string.format(
          "event %d %s at %.3f comes before the recorded failure at %.3f",
          events[i].id, events[i].type, events[i].timestamp, failed_at))
      end
      assert.are.equal("ExecutionSucceeded", events[#events].type)
    end)

    it("resume after kill -9: the events after the last recorded one come after it", function()
      local marker = tmp(".started")
      os.remove(marker)
      local def = file([[return { StartAt = "W", States = {
        W = { Type = "Wait", Seconds = 100, Next = "T" },
        T = { Type = "Task", End = true, Resource = function()
          local f = io.open("]] .. marker .. [[", "w") f:close()
          os.execute("sleep 1")
          return { done = true }
        end } } }]], ".lua")
      local db = tmp(".db")
      local pidfile = tmp(".pid")
      os.execute("lua5.4 bin/emrflow run " .. def .. " --clock virtual --store " .. db
        .. " --name k1 >/dev/null 2>&1 & echo $! >" .. pidfile)
      assert.is_true(wait_for_file(marker, 60), "the Task started")
      local f = assert(io.open(pidfile))
      local pid = assert(tonumber(f:read("l")))
      f:close()
      os.execute("kill -9 " .. pid)
      os.execute("sleep 0.2")
      local code, out, err = emrflow("resume k1 --store " .. db)
      assert.are.equal(0, code, err)
      assert.are.same({ done = true }, json.decode(out))
      local events = history("k1", db)
      assert.are.equal("ExecutionSucceeded", events[#events].type)
      assert_in_time_order(events)
    end)
  end)
end)
