-- SIGINT / SIGTERM to `emrflow run` abort the execution: ABORTED, exit code 2.
local json = require "emrflow.json"

local function tmp(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

local function read(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- `emrflow run` records in the default execution store: these runs use a throwaway one
local STORE = os.tmpname()
os.remove(STORE)
local STORE_ENV = "export EMRFLOW_STORE=" .. STORE .. ".db; "
teardown(function()
  for _, suffix in ipairs { ".db", ".db-wal", ".db-shm" } do os.remove(STORE .. suffix) end
end)

describe("emrflow run and signals", function()
  for _, sig in ipairs{ "INT", "TERM" } do
    it("SIG" .. sig .. " stops a running execution: ABORTED in the result file, exit 2", function()
      local def = tmp('{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":600,"End":true}}}')
      local result = os.tmpname()
      local cmd = string.format(
        STORE_ENV .. "lua5.4 bin/emrflow run %s --result-file %s 2>/dev/null & pid=$!; sleep 0.7; " ..
        "kill -%s $pid; wait $pid; echo \"exit=$?\"", def, result, sig)
      local t0 = os.time()
      local p = io.popen(cmd)
      local out = p:read("a")
      p:close()
      assert.matches("exit=2", out)
      assert.is_true(os.time() - t0 < 20, "stopped promptly, not after the Wait")
      local r = json.decode(assert(read(result)))
      assert.equal("ABORTED", r.status)
      assert.equal("stopped by SIG" .. sig, r.cause)
      os.remove(def)
      os.remove(result)
    end)
  end
end)

-- Issue #14 item 5: during cancellation a second Ctrl-C says what emrflow waits for, a third
-- exits at once listing the job ids left running.
describe("emrflow run and repeated Ctrl-C", function()
  it("second SIGINT: what it waits for; third: exits at once, listing the jobs left running", function()
    local vc = "abcdefghij0123456789abcde"
    local def = tmp([[{"StartAt":"Submit","States":{"Submit":{"Type":"Task",
      "Resource":"arn:aws:states:::emr-containers:startJobRun.sync",
      "Parameters":{"VirtualClusterId.$":"$.vc","Name":"nightly",
        "ExecutionRoleArn":"arn:aws:iam::123456789012:role/r","ReleaseLabel":"emr-6.2.0-latest",
        "JobDriver":{"SparkSubmitJobDriver":{"EntryPoint":"s3://my-bucket/x.py"}}},"End":true}}}]])
    -- real clock, and a job that takes an hour to run and as long to cancel
    local sc = tmp('{"defaults":{"running_seconds":3600,"cancel_seconds":3600},"virtual_clusters":[{"id":"'
      .. vc .. '"}]}')
    local err, result = os.tmpname(), os.tmpname()
    os.remove(result)
    local cmd = string.format(
      STORE_ENV .. "lua5.4 bin/emrflow run %s --local --clock real --progress --scenario %s --result-file %s "
      .. "--input '{\"vc\":\"%s\"}' 2>%s & pid=$!; "
      .. "for i in $(seq 1 300); do grep -q submitted %s && break; sleep 0.1; done; "
      .. "kill -INT $pid; "
      .. "for i in $(seq 1 300); do grep -q 'cancelling job' %s && break; sleep 0.1; done; "
      .. "kill -INT $pid; "
      .. "for i in $(seq 1 300); do grep -q 'still stopping' %s && break; sleep 0.1; done; "
      .. "kill -INT $pid; wait $pid; echo \"exit=$?\"", def, sc, result, vc, err, err, err, err)
    local t0 = os.time()
    local p = io.popen(cmd)
    local out = p:read("a")
    p:close()
    local text = read(err) or ""
    assert.matches("exit=2", out, 1, true)
    assert.is_true(os.time() - t0 < 60, "exited at once, not after the cancel wait")
    local job = text:match("job nightly (%w+) submitted")
    assert.is_string(job, text)
    assert.matches("emrflow: SIGINT received: stopping the execution", text, 1, true)
    assert.matches("emrflow: still stopping: waiting for 1 job to reach CANCELLED: " .. job, text, 1, true)
    assert.matches("emrflow: exiting without waiting; left running: " .. job .. " (nightly, virtual cluster "
      .. vc, text, 1, true)
    local r = json.decode(assert(read(result)))
    assert.are.equal("ABORTED", r.status)
    assert.matches("stopped by SIGINT", r.cause, 1, true)
    assert.matches(job, r.cause, 1, true)
    for _, f in ipairs { def, sc, err, result } do os.remove(f) end
  end)
end)
