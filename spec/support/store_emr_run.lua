-- A recorded execution against the fake emr-containers server, for spec/store_kill_spec.lua:
-- Prep (Pass) -> Run (startJobRun.sync) -> Done (Pass), recorded in STORE. Prints its pid,
-- then runs until the job ends (or it is killed).
--
--   lua5.4 spec/support/store_emr_run.lua STORE ENDPOINT_URL NAME
local store = require "emrflow.store"
local asl = require "emrflow.asl"
local emr = require "emrflow.emr"
require "emrflow.emr.tasks"

local path, url, name = arg[1], arg[2], arg[3]
local pid = io.open("/proc/self/stat"):read("l"):match("^(%d+)")
print("pid " .. pid)
io.stdout:flush()

local client = emr.client { region = "us-east-1", endpoint_url = url,
  credentials = { access_key_id = "AKIDEXAMPLE",
    secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" },
  env = { HOME = "/nonexistent", AWS_CONFIG_FILE = "/nonexistent/config",
    AWS_SHARED_CREDENTIALS_FILE = "/nonexistent/credentials", AWS_EC2_METADATA_DISABLED = "true" } }
local vc = assert(client:create_virtual_cluster { Name = "vc-" .. name,
  ContainerProvider = { Id = "eks", Type = "EKS" } }).Id

local def = { StartAt = "Prep", States = {
  Prep = { Type = "Pass", Next = "Run" },
  Run = { Type = "Task", Resource = "arn:aws:states:::emr-containers:startJobRun.sync", Next = "Done",
    Parameters = { Name = "job-" .. name, ["VirtualClusterId.$"] = "$.VirtualClusterId",
      ExecutionRoleArn = "arn:aws:iam::123456789012:role/job-execution-role",
      ReleaseLabel = "emr-6.2.0-latest",
      JobDriver = { SparkSubmitJobDriver = { EntryPoint = "s3://my-bucket/jobs/trip-count.py" } } } },
  Done = { Type = "Pass", End = true },
} }
local s = assert(store.open(path))
local x = s:start(asl.load(def, { name = "emr-pipeline" }), { VirtualClusterId = vc },
  { name = name, emr = client, clock = "real", poll = { initial = 0.05, factor = 1.5, max = 0.2 } })
print("started " .. x.arn)
io.stdout:flush()
print("status " .. (x:wait()))
