-- Resume after the service forgot the ClientToken: a Task whose StartJobRun was recorded by
-- the process that died finds its job run by ListJobRuns (matched on the token) instead of
-- starting a second one (issue 11, item 3). The emulator forgets tokens after
-- client_token_ttl_seconds, as EMR on EKS does after a while.
local asl = require "emrflow.asl"
local json = require "emrflow.json"
local scheduler = require "emrflow.scheduler"
local emulator = require "emrflow.emulator"
require "emrflow.emr"

local ok_store, store = pcall(require, "emrflow.store")
local su = ok_store and require "support.store_util" or nil

local T0 = 1700000000
local ROLE = "arn:aws:iam::123456789012:role/job-execution-role"

local function definition(resource)
  return json.encode{ StartAt = "Job", States = { Job = { Type = "Task", Resource = resource,
    Parameters = { Name = "nightly", ["VirtualClusterId.$"] = "$.vc", ExecutionRoleArn = ROLE,
      ReleaseLabel = "emr-6.2.0-latest",
      JobDriver = { SparkSubmitJobDriver = { EntryPoint = "s3://b/x.py" } } },
    End = true } } }
end

local function cluster(emu)
  local s = scheduler.new{ clock = "virtual", start = T0 }
  local t = s:spawn(function() return assert(emu:create_virtual_cluster{ Name = "vc",
    ContainerProvider = { Id = "eks", Type = "EKS" } }).Id end)
  s:run_until(t)
  return select(2, t:result())
end

-- Starts the execution; the process "dies" once the emulator has started the job run, before
-- its answer arrives (the request never returns; the execution is dropped, the store closed).
local function run_until_submitted(path, emu, vc, resource)
  local s = assert(store.open(path))
  emu.serve = function(self, req)
    local resp = emulator.Emulator.serve(self, req)
    if req.method == "POST" and req.url:find("/jobruns$") then scheduler.event():wait() end
    return resp
  end
  local x = asl.load(definition(resource), { name = "resume-wire" }):start({ vc = vc }, {
    store = s, name = "r", emr = emu, clock = "virtual", start_time = T0 })
  for _ = 1, 500 do
    if #emu.job_list > 0 then break end
    x:step(0)
  end
  emu.serve = nil
  assert.equal(1, #emu.job_list)
  assert.equal("RUNNING", x.status)
  s:close()
  return emu.job_list[1]
end

local describe_store = ok_store and describe or pending

describe_store("resume of a Task whose StartJobRun was recorded", function()
  after_each(function() if su then su.cleanup() end end)

  for _, resource in ipairs{ "arn:aws:states:::emr-containers:startJobRun.sync",
                             "arn:aws:states:::emr-containers:startJobRun" } do
    it(resource:match("[^:]+$") .. ": after the token TTL, one job run, not two", function()
      local emu = emulator.new{ client_token_ttl_seconds = 600 }
      local vc = cluster(emu)
      local path = su.tmpdir() .. "/x.db"
      local first = run_until_submitted(path, emu, vc, resource)
      -- an hour later: the service has forgotten the token
      local s = assert(store.open(path))
      local x = assert(s:resume("r", { emr = emu, clock = "virtual", start_time = T0 + 3600 }))
      local status, out = x:wait()
      assert.equal("SUCCEEDED", status, json.encode(out))
      assert.equal(first.id, out.Id)
      assert.equal(1, #emu.job_list, "a second job run was started")
      assert.is_true((emu:stats().by_operation.ListJobRuns or 0) >= 1)
      s:close()
      -- the lookup is what kept it at one: StartJobRun with that token now starts another
      local again = scheduler.new{ clock = "virtual", start = T0 + 3600 }
      local t = again:spawn(function()
        return assert(emu:start_job_run{ VirtualClusterId = vc, Name = "nightly", ExecutionRoleArn = ROLE,
          ReleaseLabel = "emr-6.2.0-latest", ClientToken = first.client_token,
          JobDriver = { SparkSubmitJobDriver = { EntryPoint = "s3://b/x.py" } } }).Id
      end)
      again:run_until(t)
      assert.are_not.equal(first.id, select(2, t:result()))
    end)
  end

  it("within the TTL the recorded job is found too, and an unrecorded attempt never lists", function()
    local emu = emulator.new()
    local vc = cluster(emu)
    local path = su.tmpdir() .. "/x.db"
    local first = run_until_submitted(path, emu, vc, "arn:aws:states:::emr-containers:startJobRun.sync")
    assert.is_nil(emu:stats().by_operation.ListJobRuns)
    local s = assert(store.open(path))
    local status, out = assert(s:resume("r", { emr = emu, clock = "virtual", start_time = T0 + 30 })):wait()
    assert.equal("SUCCEEDED", status)
    assert.equal(first.id, out.Id)
    assert.equal(1, #emu.job_list)
    s:close()
  end)
end)
