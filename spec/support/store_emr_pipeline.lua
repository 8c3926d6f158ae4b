-- A recorded EMR on EKS pipeline against the fake emr-containers server, for
-- spec/store_resume_kill_spec.lua: CreateCluster (createVirtualCluster) -> Jobs (Map of 3
-- startJobRun.sync, 2 at once) -> Report (startJobRun.sync) -> Done (Pass). Prints its pid,
-- then runs (run) or continues (resume) the execution NAME recorded in STORE until it ends,
-- and prints "status S" and "output <JSON>".
--
-- With a fifth argument "retry": one job (Retry: one more attempt after 1 s) on a virtual
-- cluster made first by the client, instead.
--
--   lua5.4 spec/support/store_emr_pipeline.lua run|resume STORE ENDPOINT_URL NAME [retry]
local store = require "emrflow.store"
local asl = require "emrflow.asl"
local emr = require "emrflow.emr"
local json = require "emrflow.json"
require "emrflow.emr.tasks"

local mode, path, url, name, variant = arg[1], arg[2], arg[3], arg[4], arg[5]
local pid = io.open("/proc/self/stat"):read("l"):match("^(%d+)")
print("pid " .. pid)
io.stdout:flush()

local client = emr.client { region = "us-east-1", endpoint_url = url,
  credentials = { access_key_id = "AKIDEXAMPLE",
    secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" },
  env = { HOME = "/nonexistent", AWS_CONFIG_FILE = "/nonexistent/config",
    AWS_SHARED_CREDENTIALS_FILE = "/nonexistent/credentials", AWS_EC2_METADATA_DISABLED = "true" } }

local function job(job_name)
  return { Type = "Task", Resource = "arn:aws:states:::emr-containers:startJobRun.sync",
    Parameters = { ["Name.$"] = job_name, ["VirtualClusterId.$"] = "$.vc.Id",
      ExecutionRoleArn = "arn:aws:iam::123456789012:role/job-execution-role",
      ReleaseLabel = "emr-6.2.0-latest",
      JobDriver = { SparkSubmitJobDriver = { EntryPoint = "s3://my-bucket/jobs/trip-count.py" } } },
    ResultSelector = { ["Name.$"] = "$.Name", ["State.$"] = "$.State" } }
end

local jobs_item = job("States.Format('part-{}', $.part)")
jobs_item.End = true
local report = job("$.report")
report.ResultPath, report.Next = "$.report_job", "Done"

local def = { StartAt = "CreateCluster", States = {
  CreateCluster = { Type = "Task", Resource = "arn:aws:states:::emr-containers:createVirtualCluster",
    Parameters = { Name = "pipeline-vc",
      ContainerProvider = { Id = "eks-cluster", Type = "EKS",
        Info = { EksInfo = { Namespace = "default" } } } },
    ResultSelector = { ["Id.$"] = "$.Id" }, ResultPath = "$.vc", Next = "Jobs" },
  Jobs = { Type = "Map", ItemsPath = "$.parts", MaxConcurrency = 2, ResultPath = "$.parts_done",
    ItemSelector = { ["part.$"] = "$$.Map.Item.Value", ["vc.$"] = "$.vc" },
    ItemProcessor = { StartAt = "Part", States = { Part = jobs_item } }, Next = "Report" },
  Report = report,
  Done = { Type = "Pass", Parameters = { ["parts.$"] = "$.parts_done", ["report.$"] = "$.report_job" },
    End = true },
} }

local input = { parts = { 1, 2, 3 }, report = "report" }
if variant == "retry" then
  local once = job("$.report")
  once.Retry = { { ErrorEquals = { "States.ALL" }, IntervalSeconds = 1, MaxAttempts = 1 } }
  once.End, once.ResultSelector = true, { ["State.$"] = "$.State" }
  def = { StartAt = "Once", States = { Once = once } }
  if mode == "run" then
    local vc = assert(client:create_virtual_cluster { Name = "vc-" .. name,
      ContainerProvider = { Id = "eks", Type = "EKS" } }).Id
    input = { vc = { Id = vc }, report = "once" }
  end
end

local s = assert(store.open(path))
local opts = { emr = client, clock = "real", poll = { initial = 0.05, factor = 1.5, max = 0.2 } }
local x, err
if mode == "run" then
  opts.name = name
  x = s:start(asl.load(def, { name = "emr-pipeline" }), input, opts)
else
  x, err = s:resume(name, opts)
  if not x then
    print("error " .. tostring(err.code) .. " " .. tostring(err.message))
    os.exit(1)
  end
end
print("started " .. x.arn)
io.stdout:flush()
local status, out = x:wait()
print("status " .. status)
print("output " .. json.encode(out))
