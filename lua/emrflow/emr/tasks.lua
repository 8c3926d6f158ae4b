-- emrflow.emr.tasks: the Amazon EMR on EKS Task integration.
--
-- Builders (they only build ordinary ASL Task state tables):
--   tasks.create_virtual_cluster{ Name =, ContainerProvider =, ..., Next = | End =, ... }
--   tasks.start_job_run{ sync = true, Name =, ["VirtualClusterId.$"] = "$.VirtualClusterId", ... }
--   tasks.delete_virtual_cluster{ sync = true, ["Id.$"] = "$.VirtualClusterId", End = true }
--   tasks.sdk("listJobRuns", { ... })       -- arn:aws:states:::aws-sdk:emrcontainers:listJobRuns
-- Keys spelled like Task state fields (Next, End, ResultPath, ResultSelector, Retry, Catch,
-- TimeoutSeconds, ...) go to the state; `Parameters = {...}` gives the parameters whole;
-- every other PascalCase key is an API parameter. `sync = true` picks the `.sync` resource,
-- `partition = "aws-cn"` another partition.
--
-- Resources (registered with emrflow.asl by tasks.register(asl)):
--   arn:<partition>:states:::emr-containers:createVirtualCluster
--   arn:<partition>:states:::emr-containers:deleteVirtualCluster[.sync]
--   arn:<partition>:states:::emr-containers:startJobRun[.sync]
--   arn:<partition>:states:::aws-sdk:emrcontainers:<action>      (every operation)
--
-- Execution options read (machine:start(input, opts)):
--   emr            the backend: an emrflow.emr client or an emrflow.emulator (default: a
--                  client from region / endpoint_url / profile); an emulator is called
--                  through its client (emu:client()), over the REST wire form, as AWS is
--   poll           { initial = 2, factor = 1.5, max = 30, rate = 10 } or "aws"
--   error_prefix   "EmrContainers." (API errors become <prefix><ErrorCode>)
--   cancel_on_timeout  true: a Task TimeoutSeconds also cancels its job run
--   cancel_wait_s  60: how long an abort waits for CANCELLED after CancelJobRun
--   on_emr_event   fn(event): job and cluster state changes, cancels (progress reporting)
--
-- Behaviour (the README's EMR on EKS table): results are PascalCase API responses; startJobRun.sync gives
-- the final JobRun, deleteVirtualCluster.sync the final VirtualCluster (TERMINATED); a job
-- ending FAILED or CANCELLED fails with States.TaskFailed and the JobRun as JSON in Cause
-- (CANCEL_PENDING is not final); API errors are <prefix><ErrorCode> with the service message;
-- abort (stop, failed sibling) and TimeoutSeconds cancel the job run, then wait for it; each
-- answered poll counts as a heartbeat for HeartbeatSeconds (and polls come at least every
-- HeartbeatSeconds / 2, whatever the schedule); results over 262,144 bytes fail
-- with States.DataLimitExceeded. Requiring this module registers it with emrflow.asl.
local json = require "emrflow.json"
local sigv4 = require "emrflow.sigv4"
local scheduler = require "emrflow.scheduler"
local model = require "emrflow.emr.model"
local validate = require "emrflow.emr.validate"
local sync = require "emrflow.emr.sync"
local client = require "emrflow.emr.client"

local M = {}

M.PAYLOAD_LIMIT = 262144
M.DEFAULT_ERROR_PREFIX = "EmrContainers."
M.DEFAULT_CANCEL_WAIT_S = 60

local fmt = string.format
local encode = json.encode

-- Optimized-integration actions: operation, whether .sync is allowed.
local OPTIMIZED = {
  createVirtualCluster = { op = "CreateVirtualCluster", sync = false },
  deleteVirtualCluster = { op = "DeleteVirtualCluster", sync = true },
  startJobRun = { op = "StartJobRun", sync = true },
}

local JOB_FINAL = { COMPLETED = true, FAILED = true, CANCELLED = true }
local CLUSTER_FINAL = { TERMINATED = true, ARRESTED = true }

---------------------------------------------------------------------------
-- Resource parsing
---------------------------------------------------------------------------

--- Parses a Resource ARN. Returns { kind = "optimized" | "sdk", action =, op =, suffix = } or nil.
function M.parse_resource(resource)
  if type(resource) ~= "string" then return nil end
  local action, suffix = resource:match("^arn:aws[%w%-]*:states:::emr%-containers:(%a+)(.*)$")
  if action then
    local info = OPTIMIZED[action]
    return { kind = "optimized", action = action, suffix = suffix, op = info and info.op,
             info = info, service = "emr-containers" }
  end
  action, suffix = resource:match("^arn:aws[%w%-]*:states:::aws%-sdk:emrcontainers:(%a+)(.*)$")
  if action then
    local op = action:sub(1, 1):upper() .. action:sub(2)
    return { kind = "sdk", action = action, suffix = suffix, op = model.operations[op] and op or nil,
             service = "aws-sdk:emrcontainers" }
  end
  return nil
end

local function matches(resource)
  return M.parse_resource(resource) ~= nil
end

---------------------------------------------------------------------------
-- Load-time validation
---------------------------------------------------------------------------

local DYN = "\0emrflow-dynamic\0"

-- Copies Parameters for the model check: "K.$" keys become "K" with a placeholder value
-- (their paths recorded as dynamic); JSONata "{% ... %}" strings count as dynamic too.
local function static_copy(v, path, dyn)
  if type(v) ~= "table" then
    if type(v) == "string" and v:match("^%s*{%%.*%%}%s*$") then
      dyn[path] = true
      return DYN
    end
    return v
  end
  if json.is_array(v) or (not json.is_object(v) and #v > 0) then
    local out = json.array({})
    for i = 1, #v do out[i] = static_copy(v[i], path .. "[" .. (i - 1) .. "]", dyn) end
    return out
  end
  local out = json.object({})
  for k, x in pairs(v) do
    if type(k) == "string" and k:sub(-2) == ".$" then
      local name = k:sub(1, -3)
      local p = path == "" and name or (path .. "." .. name)
      dyn[p] = true
      out[name] = DYN
    elseif type(k) == "string" then
      out[k] = static_copy(x, path == "" and k or (path .. "." .. k), dyn)
    end
  end
  return out
end

local function under_dynamic(path, dyn)
  if dyn[path] then return true end
  for p in pairs(dyn) do
    local n = #p
    if path:sub(1, n) == p and (path:sub(n + 1, n + 1) == "." or path:sub(n + 1, n + 1) == "[") then
      return true
    end
  end
  return false
end

-- "JobDriver.SparkSubmitJobDriver.EntryPointArguments[0]" --> "/JobDriver/.../EntryPointArguments/0"
local function pointer(dotted, dyn_key)
  if dotted == "" then return "" end
  local out = {}
  for part in dotted:gmatch("[^%.]+") do
    local name, rest = part:match("^([^%[]*)(.*)$")
    if name ~= "" then out[#out + 1] = (name:gsub("~", "~0"):gsub("/", "~1")) end
    for idx in rest:gmatch("%[(%d+)%]") do out[#out + 1] = idx end
  end
  local s = "/" .. table.concat(out, "/")
  if dyn_key then s = s .. ".$" end
  return s
end

-- The model's problem messages that break a value constraint (pattern, length, range, enum),
-- as opposed to structure (unknown member, wrong JSON type, missing required member).
local VALUE_CONSTRAINT = { "does not match the pattern", "is not one of", "must be at least",
  "must be at most", "not valid UTF%-8" }

--- Is a model problem message a value constraint (a run-time matter) rather than structure?
function M.is_value_constraint(message)
  for _, pat in ipairs(VALUE_CONSTRAINT) do
    if message:find(pat) then return true end
  end
  return false
end

--- Load-time check of a Task state using one of these resources (impl.validate).
function M.validate_state(state, path, problems)
  local r = M.parse_resource(state.Resource)
  local function add(p, msg, value_constraint)
    -- value constraints are the service's business (the API model checks rule, README): warnings
    -- here, EmrContainers.ValidationException at run time
    problems[#problems + 1] = { path = p, message = msg, severity = value_constraint and "warning" or nil }
  end
  local rpath = path .. "/Resource"
  if r.kind == "optimized" then
    if not r.info then
      add(rpath, fmt("emr-containers:%s is not an optimized EMR on EKS integration (use "
        .. "createVirtualCluster, deleteVirtualCluster[.sync], startJobRun[.sync], or "
        .. "arn:aws:states:::aws-sdk:emrcontainers:%s)", r.action, r.action))
      return
    end
    if r.suffix == ".waitForTaskToken" then
      add(rpath, fmt("emr-containers:%s does not support .waitForTaskToken", r.action))
      return
    elseif r.suffix == ".sync" and not r.info.sync then
      add(rpath, fmt("emr-containers:%s does not support .sync (request-response only)", r.action))
      return
    elseif r.suffix ~= "" and r.suffix ~= ".sync" then
      add(rpath, fmt("unknown integration pattern %q for emr-containers:%s", r.suffix, r.action))
      return
    end
  else
    if not r.op then
      add(rpath, fmt("aws-sdk:emrcontainers:%s is not an emr-containers API action", r.action))
      return
    end
    if r.suffix ~= "" then
      add(rpath, fmt("aws-sdk:emrcontainers:%s supports request-response only, not %s", r.action, r.suffix))
      return
    end
  end
  local field = state.Parameters ~= nil and "Parameters" or (state.Arguments ~= nil and "Arguments" or nil)
  if not field then return end
  local params = state[field]
  if type(params) ~= "table" or json.is_array(params) then
    if type(params) == "string" and params:match("^%s*{%%.*%%}%s*$") then return end
    add(path .. "/" .. field, field .. " of an emr-containers Task must be an object")
    return
  end
  local dyn = {}
  local p = static_copy(params, "", dyn)
  local tm
  local shape = model.shapes[model.operations[r.op].input]
  for _, m in ipairs(shape and shape.members or {}) do
    if m.idempotency_token then tm = m.pascal end
  end
  if tm and p[tm] == nil then p[tm] = "emrflow-load-time-check" end
  local ok, err = validate.check(r.op, p)
  if ok then return end
  for _, pr in ipairs(err.problems or { { path = "", message = err.message } }) do
    local is_unknown = pr.message:find("^unknown parameter") ~= nil
    if is_unknown or not under_dynamic(pr.path, dyn) then
      local dkey = is_unknown and dyn[pr.path]
      add(path .. "/" .. field .. pointer(pr.path, dkey),
        fmt("%s: %s", r.op, pr.message), M.is_value_constraint(pr.message))
    end
  end
end

---------------------------------------------------------------------------
-- Running
---------------------------------------------------------------------------

local clients = setmetatable({}, { __mode = "k" })

--- The backend of an execution: options.emr, else a client made (once per options
-- table) from options.region / endpoint_url / profile.
function M.backend(ctx)
  local o = ctx.options or {}
  if o.emr ~= nil then
    if type(o.emr) ~= "table" or type(o.emr.call) ~= "function" then
      error({ Error = "States.Runtime",
              Cause = "emrflow: the emr option must be an emrflow.emr client or an emulator" }, 0)
    end
    -- an emulator answers through a client, on the wire: --local runs the AWS code path
    local emulator = package.loaded["emrflow.emulator"]
    if emulator and emulator.is_emulator(o.emr) and o.emr.wire then return o.emr:client() end
    return o.emr
  end
  local c = clients[o]
  if not c then
    c = client.new{ region = o.region, endpoint_url = o.endpoint_url, profile = o.profile }
    clients[o] = c
  end
  return c
end

--- True when the Task runs inside a Map iteration (its state path goes through an
-- ItemProcessor or Iterator; the context object of an iteration's states has no Map).
function M.in_map(ctx)
  local p = ctx and ctx.state_path
  if type(p) == "string" and (p:find("/ItemProcessor/", 1, true) or p:find("/Iterator/", 1, true)) then
    return true
  end
  local c = ctx and ctx.context
  return type(c) == "table" and c.Map ~= nil
end

local function notify(ctx, ev)
  local o = ctx.options
  local fn = o and o.on_emr_event
  if type(fn) == "function" then
    ev.state_name = ctx.state_name
    ev.at = ev.at or scheduler.now()
    ev.in_map = M.in_map(ctx)
    pcall(fn, ev)
  end
end

-- ASL error of an API failure: <prefix><ErrorCode>, Cause the service message.
function M.api_error(err, ctx, op)
  local prefix = ctx and ctx.options and ctx.options.error_prefix or M.DEFAULT_ERROR_PREFIX
  if type(err) == "table" and err.Error and not getmetatable(err) then return err end
  if type(err) ~= "table" then
    return { Error = "States.TaskFailed", Cause = tostring(err) }
  end
  local code = err.aws_code
  if not code then
    -- No answer from the service (network, credentials, configuration).
    return { Error = "States.TaskFailed", Cause = fmt("%s failed: %s", op or "emr-containers call",
      tostring(err.message or err.code)) }
  end
  local cause = err.message or code
  if code == "ValidationException" and op == "StartJobRun" and type(err.message) == "string" then
    local m = err.message:lower()
    if m:find("queue", 1, true) and (m:find("full", 1, true) or m:find("exceed", 1, true)
        or m:find("maximum", 1, true) or m:find("limit", 1, true)) then
      cause = "The virtual cluster's job queue is full; StartJobRun was refused and can be "
        .. "retried later. " .. err.message
    end
  end
  return { Error = prefix .. code, Cause = cause }
end

local counters = setmetatable({}, { __mode = "k" })

--- The ClientToken of a call: derived from the execution name, the state's path, the Map
-- iteration, the attempt and how many times this state ran, so HTTP retries reuse it (no
-- second job) while an ASL Retry or a new visit of the state starts a fresh job run.
function M.client_token(ctx)
  local x = ctx.execution or {}
  local c = ctx.context
  local idx = ""
  if type(c) == "table" and type(c.Map) == "table" and type(c.Map.Item) == "table" then
    idx = tostring(c.Map.Item.Index)
  end
  local per = counters[x]
  if not per then
    per = {}
    counters[x] = per
  end
  -- counted per thread of control (the seed holds the state path, the branch / iteration key
  -- and the attempt), so concurrent Map iterations never shift each other's counts and a
  -- resumed execution finds the same tokens whatever order its iterations run in
  local key = ctx.client_token_seed or (tostring(ctx.state_path or ctx.state_name) .. "#" .. idx)
  local n = (per[key] or 0) + 1
  per[key] = n
  local name = x.name or (type(c) == "table" and c.Execution and c.Execution.Name) or ""
  -- the execution's unique id + state path (+ branch / iteration) + attempt (README, EMR on EKS:
  -- ClientToken), and how many times this state ran (a loop visits a state again)
  local seed = table.concat({ ctx.client_token_seed or tostring(x.id or x.arn or name), key,
    tostring(ctx.attempt or 0), tostring(n) }, "\n")
  return "emrflow-" .. sigv4.payload_hash(seed):sub(1, 56)
end

local function call(backend, ctx, op, params, opts)
  local out, err = backend:call(op, params, opts)
  if out == nil then error(M.api_error(err, ctx, op), 0) end
  return out
end

local function check_size(result)
  if type(result) == "table" then
    local ok, text = pcall(encode, result)
    if ok and #text > M.PAYLOAD_LIMIT then
      error({ Error = "States.DataLimitExceeded",
              Cause = "The state/task 'emr-containers' returned a result with a size exceeding "
                .. "the maximum number of bytes service limit." }, 0)
    end
  end
  return result
end

local function params_of(input, op)
  if input == nil or input == json.null then return json.object({}) end
  if type(input) ~= "table" or json.is_array(input) then
    error({ Error = "States.Runtime", Cause = op .. " parameters must be a JSON object" }, 0)
  end
  return input
end

local function should_cancel(e, ctx)
  if type(e) ~= "table" then return false end
  if e.aborted then return true end
  if e.Error == "States.Timeout" or e.Error == "States.HeartbeatTimeout" then
    local o = ctx.options
    return not (o and o.cancel_on_timeout == false)
  end
  return false
end

-- Best effort: CancelJobRun, then wait (bounded) until the job run is final.
local function cancel_job(backend, ctx, vc_id, id, name, reason, schedule)
  notify(ctx, { kind = "cancel", id = id, name = name, virtual_cluster_id = vc_id, reason = reason })
  local ok, perr = pcall(function()
    local out, err = backend:call("CancelJobRun", { VirtualClusterId = vc_id, Id = id })
    if not out then
      -- A job run that already ended cannot be cancelled: report its final state, not a failure.
      local d = backend:call("DescribeJobRun", { VirtualClusterId = vc_id, Id = id })
      local job = type(d) == "table" and d.JobRun or nil
      if type(job) == "table" and JOB_FINAL[job.State] then
        notify(ctx, { kind = "job_state", id = id, name = name, state = job.State, job = job })
        return
      end
      notify(ctx, { kind = "cancel_failed", id = id, name = name, error = tostring(err) })
      return
    end
    local o = ctx.options or {}
    local wait_s = o.cancel_wait_s or M.DEFAULT_CANCEL_WAIT_S
    local final = sync.wait{
      backend = backend, operation = "DescribeJobRun",
      params = { VirtualClusterId = vc_id, Id = id }, unwrap = "JobRun", final = JOB_FINAL,
      schedule = schedule, deadline = scheduler.now() + wait_s,
      on_state = function(job, state, prev, at)
        notify(ctx, { kind = "job_state", id = id, name = name, state = state, previous = prev, at = at,
                      job = job })
      end,
    }
    if not final then
      notify(ctx, { kind = "cancel_timeout", id = id, name = name, wait_s = wait_s })
    end
  end)
  if not ok then
    notify(ctx, { kind = "cancel_failed", id = id, name = name, error = tostring(
      type(perr) == "table" and (perr.Cause or perr.message or perr.Error) or perr) })
  end
end

-- With HeartbeatSeconds, each answered poll is the Task's heartbeat: poll at least twice
-- per heartbeat period, so a healthy job never misses one because of the poll schedule.
local function heartbeat_opts(ctx)
  local hb = ctx.heartbeat_s
  local beat = type(ctx.heartbeat) == "function" and function() ctx.heartbeat() end or nil
  if type(hb) == "number" and hb > 0 then return beat, hb / 2 end
  return beat, nil
end

local function submitted(ctx, r, out)
  if ctx.events and ctx.events.add then
    ctx.events:add("TaskSubmitted", { resourceType = r.service, resource = r.action .. r.suffix,
                                      output = out })
  end
end

-- The job run an earlier process started with this ClientToken, found by ListJobRuns (by
-- name and since the execution started), or nil. A resumed Task (ctx.recorded_attempt: its
-- attempt was recorded, so its StartJobRun may have gone out) looks before asking again:
-- the service forgets tokens after a while, and StartJobRun would then start a second job.
local function recorded_job(backend, ctx, params, token)
  local q = { VirtualClusterId = params.VirtualClusterId, Name = params.Name, MaxResults = 50 }
  local c = ctx.context
  local started = type(c) == "table" and type(c.Execution) == "table"
    and sync.unix_seconds(c.Execution.StartTime)
  if started then q.CreatedAfter = math.floor(started) - 300 end
  for _ = 1, 1000 do
    local out = backend:call("ListJobRuns", q)
    if type(out) ~= "table" then return nil end
    for _, j in ipairs(type(out.JobRuns) == "table" and out.JobRuns or {}) do
      if type(j) == "table" and j.ClientToken == token and type(j.Id) == "string" then
        return json.object_of("Id", j.Id, "Name", j.Name, "Arn", j.Arn,
                              "VirtualClusterId", j.VirtualClusterId or params.VirtualClusterId)
      end
    end
    if type(out.NextToken) ~= "string" or out.NextToken == "" then return nil end
    q.NextToken = out.NextToken
  end
  return nil
end

-- StartJobRun, or on resume the job run the recorded attempt had started.
local function start_job(backend, ctx, params, token)
  if ctx.recorded_attempt and type(params.VirtualClusterId) == "string" then
    local found = recorded_job(backend, ctx, params, params.ClientToken or token)
    if found then return found end
  end
  return call(backend, ctx, "StartJobRun", params, { client_token = token })
end

-- The Task's last look at its job run when its TimeoutSeconds falls (ctx.last_look, called by
-- the Task's watchdog at the deadline, before States.Timeout): one DescribeJobRun, so a job
-- that ended in time (between the last scheduled poll and the deadline) is reported by its
-- real state. nil (the time is up) when the job runs on, or ended after the deadline (a
-- resumed Task whose deadline passed while no process watched it).
local function job_last_look(backend, ctx, vc_id, job_id, name)
  return function(deadline)
    local out = backend:call("DescribeJobRun", { VirtualClusterId = vc_id, Id = job_id })
    local job = type(out) == "table" and out.JobRun or nil
    if type(job) ~= "table" or not JOB_FINAL[job.State] then return nil end
    local finished = sync.unix_seconds(job.FinishedAt)
    if finished and finished > deadline then return nil end
    notify(ctx, { kind = "job_state", id = job_id, name = name, state = job.State, job = job })
    if job.State ~= "COMPLETED" then
      return false, { Error = "States.TaskFailed", Cause = encode(job) }
    end
    return true, check_size(job)
  end
end

local function run_start_job_run(r, input, ctx)
  local backend = M.backend(ctx)
  local params = params_of(input, "StartJobRun")
  local token = params.ClientToken == nil and M.client_token(ctx) or nil
  local is_sync = r.suffix == ".sync"
  if not is_sync then
    return check_size(start_job(backend, ctx, params, token))
  end
  local schedule = sync.schedule((ctx.options or {}).poll)
  local beat, max_interval = heartbeat_opts(ctx)
  local job_id, vc_id, name
  local starting = false
  local ok, res = pcall(function()
    starting = true
    local out = start_job(backend, ctx, params, token)
    starting = false
    job_id, vc_id, name = out.Id, out.VirtualClusterId or params.VirtualClusterId, out.Name or params.Name
    submitted(ctx, r, out)
    notify(ctx, { kind = "job_submitted", id = job_id, name = name, virtual_cluster_id = vc_id })
    ctx.last_look = job_last_look(backend, ctx, vc_id, job_id, name)
    local job = sync.wait{
      backend = backend, operation = "DescribeJobRun", schedule = schedule,
      params = { VirtualClusterId = vc_id, Id = job_id }, unwrap = "JobRun", final = JOB_FINAL,
      on_state = function(j, state, prev, at)
        notify(ctx, { kind = "job_state", id = job_id, name = name, state = state, previous = prev,
                      at = at, job = j })
      end,
      on_error = function(err, n)
        notify(ctx, { kind = "poll_error", id = job_id, name = name, error = tostring(err), count = n })
      end,
      -- each answered poll is a heartbeat: HeartbeatSeconds bounds the silence of the service
      on_poll = beat, max_interval = max_interval,
    }
    return job
  end)
  if not ok then
    local e = res
    if not job_id and starting and should_cancel(e, ctx) then
      -- Aborted while StartJobRun was in flight: the job run may exist. Asking again with
      -- the same token returns it (or starts it), so it can be cancelled: no orphan. (A
      -- resumed attempt looks for the job its earlier process started first.)
      local rok, out = pcall(start_job, backend, ctx, params, token)
      if rok and type(out) == "table" and out.Id then
        job_id, vc_id, name = out.Id, out.VirtualClusterId or params.VirtualClusterId, out.Name or params.Name
      end
    end
    if job_id and should_cancel(e, ctx) then
      cancel_job(backend, ctx, vc_id, job_id, name, e.aborted and "aborted" or e.Error, schedule)
    end
    if type(e) == "table" and getmetatable(e) ~= nil and e.Error == nil then
      e = M.api_error(e, ctx, "DescribeJobRun")
    end
    error(e, 0)
  end
  local job = res
  if job.State ~= "COMPLETED" then
    error({ Error = "States.TaskFailed", Cause = encode(job) }, 0)
  end
  return check_size(job)
end

-- The Task's last look at a virtual cluster being deleted when its TimeoutSeconds falls (as
-- job_last_look): one DescribeVirtualCluster, so a cluster terminated between the last poll
-- and the deadline is reported as it is. A resumed attempt (ctx.recorded_attempt) gets none:
-- a cluster tells no time of its end, so whether it ended in time cannot be known.
local function cluster_last_look(backend, ctx, id, last)
  return function()
    if ctx.recorded_attempt then return nil end
    local ok, out = pcall(backend.call, backend, "DescribeVirtualCluster", { Id = id })
    local vc = ok and type(out) == "table" and out.VirtualCluster or nil
    if not ok then
      if not (type(out) == "table" and out.aws_code == "ResourceNotFoundException") then return nil end
      vc = json.object({})                      -- gone: deleted (as sync.wait's `gone`)
      for k, x in pairs(last() or {}) do vc[k] = x end
      vc.Id, vc.State = id, "TERMINATED"
    end
    if type(vc) ~= "table" or not CLUSTER_FINAL[vc.State] then return nil end
    notify(ctx, { kind = "cluster_state", id = id, name = vc.Name, state = vc.State })
    if vc.State ~= "TERMINATED" then
      return false, { Error = "States.TaskFailed", Cause = encode(vc) }
    end
    return true, check_size(vc)
  end
end

local function run_delete_virtual_cluster(r, input, ctx)
  local backend = M.backend(ctx)
  local params = params_of(input, "DeleteVirtualCluster")
  local out = call(backend, ctx, "DeleteVirtualCluster", params)
  if r.suffix ~= ".sync" then return check_size(out) end
  submitted(ctx, r, out)
  local id = out.Id or params.Id
  local last
  ctx.last_look = cluster_last_look(backend, ctx, id, function() return last end)
  local beat, max_interval = heartbeat_opts(ctx)
  local vc = sync.wait{
    backend = backend, operation = "DescribeVirtualCluster",
    schedule = sync.schedule((ctx.options or {}).poll),
    on_poll = beat, max_interval = max_interval,
    params = { Id = id }, unwrap = "VirtualCluster", final = CLUSTER_FINAL,
    on_state = function(v, state, prev, at)
      last = v
      notify(ctx, { kind = "cluster_state", id = id, name = v.Name, state = state, previous = prev, at = at })
    end,
    gone = function(err)
      if err and err.aws_code == "ResourceNotFoundException" then
        local v = json.object({})
        if last then for k, x in pairs(last) do v[k] = x end end
        v.Id, v.State = id, "TERMINATED"
        return v
      end
      return nil
    end,
  }
  if vc.State ~= "TERMINATED" then
    error({ Error = "States.TaskFailed", Cause = encode(vc) }, 0)
  end
  return check_size(vc)
end

local function run_plain(r, input, ctx)
  local backend = M.backend(ctx)
  local params = params_of(input, r.op)
  local opts
  if (r.op == "CreateVirtualCluster" or r.op == "StartJobRun" or r.op == "CreateJobTemplate"
      or r.op == "CreateManagedEndpoint" or r.op == "CreateSecurityConfiguration")
      and params.ClientToken == nil then
    opts = { client_token = M.client_token(ctx) }
  end
  if r.op == "StartJobRun" then
    return check_size(start_job(backend, ctx, params, opts and opts.client_token))
  end
  return check_size(call(backend, ctx, r.op, params, opts))
end

--- Runs a parsed resource (M.parse_resource) with the Task's effective parameters.
function M.run(r, input, ctx)
  if r.kind == "optimized" and r.action == "startJobRun" then return run_start_job_run(r, input, ctx) end
  if r.kind == "optimized" and r.action == "deleteVirtualCluster" then
    return run_delete_virtual_cluster(r, input, ctx)
  end
  if not r.op then
    error({ Error = "States.Runtime", Cause = "emrflow: unsupported EMR on EKS resource" }, 0)
  end
  return run_plain(r, input, ctx)
end

---------------------------------------------------------------------------
-- Registration with emrflow.asl
---------------------------------------------------------------------------

local function escape(s) return (s:gsub("%W", "%%%0")) end

-- The impl of one resource form (partition-independent).
local function impl_of(r)
  return {
    validate = function(state, path, problems) return M.validate_state(state, path, problems) end,
    run = function(input, ctx) return M.run(r, input, ctx) end,
    emr = r,
  }
end

--- Every (pattern, impl) pair of the integration: one per resource form, so each impl
-- knows its resource (the engine resolves a state's Resource once, when compiling).
function M.resources()
  local list = {}
  -- Catch-all first (later registrations win): unknown actions and patterns get a
  -- load-time problem from validate_state.
  list[#list + 1] = { matches, impl_of({ kind = "unknown" }) }
  local prefix = "^arn:aws[%w%-]*:states:::"
  for action, info in pairs(OPTIMIZED) do
    for _, suffix in ipairs(info.sync and { "", ".sync" } or { "" }) do
      local r = M.parse_resource("arn:aws:states:::emr-containers:" .. action .. suffix)
      list[#list + 1] = { prefix .. "emr%-containers:" .. escape(action .. suffix) .. "$", impl_of(r) }
    end
  end
  for op in pairs(model.operations) do
    local action = op:sub(1, 1):lower() .. op:sub(2)
    local r = M.parse_resource("arn:aws:states:::aws-sdk:emrcontainers:" .. action)
    list[#list + 1] = { prefix .. "aws%-sdk:emrcontainers:" .. escape(action) .. "$", impl_of(r) }
  end
  return list
end

local registered = setmetatable({}, { __mode = "k" })

--- Registers the integration with an emrflow.asl module (idempotent). Returns the entries.
function M.register(asl)
  if registered[asl] then return registered[asl] end
  local entries = {}
  for _, pr in ipairs(M.resources()) do
    entries[#entries + 1] = asl.register_resource(pr[1], pr[2])
  end
  registered[asl] = entries
  return entries
end

--- Undoes register (for specs).
function M.unregister(asl)
  local entries = registered[asl]
  if not entries then return false end
  for _, e in ipairs(entries) do asl.unregister_resource(e) end
  registered[asl] = nil
  return true
end

M.matches = matches

---------------------------------------------------------------------------
-- Builders
---------------------------------------------------------------------------

local STATE_FIELDS = {}
for f in ([[Comment Next End InputPath OutputPath ResultPath ResultSelector Retry Catch TimeoutSeconds
  TimeoutSecondsPath HeartbeatSeconds HeartbeatSecondsPath Credentials Assign Output Arguments
  QueryLanguage Parameters]]):gmatch("%S+") do
  STATE_FIELDS[f] = true
end
local ORDER = { "Type", "Comment", "QueryLanguage", "Resource", "Parameters", "Arguments", "InputPath",
  "ResultSelector", "ResultPath", "OutputPath", "Output", "Assign", "Credentials", "TimeoutSeconds",
  "TimeoutSecondsPath", "HeartbeatSeconds", "HeartbeatSecondsPath", "Retry", "Catch", "Next", "End" }

local function build(fn_name, action, sync_ok, spec)
  if type(spec) ~= "table" then
    error(fmt("emr.tasks.%s: expected a table of fields, got %s", fn_name, type(spec)), 3)
  end
  local partition = spec.partition or "aws"
  if type(partition) ~= "string" or not partition:match("^aws[%w%-]*$") then
    error(fmt("emr.tasks.%s: partition must be like \"aws\", \"aws-cn\", \"aws-us-gov\"", fn_name), 3)
  end
  if spec.sync ~= nil and type(spec.sync) ~= "boolean" then
    error(fmt("emr.tasks.%s: sync must be true or false", fn_name), 3)
  end
  if spec.sync and not sync_ok then
    error(fmt("emr.tasks.%s: %s has no .sync form (request-response only)", fn_name, action), 3)
  end
  local fields, params = {}, nil
  for k, v in pairs(spec) do
    if type(k) ~= "string" then
      error(fmt("emr.tasks.%s: field names must be strings", fn_name), 3)
    end
    if STATE_FIELDS[k] then
      fields[k] = v
    elseif k:match("^%u") then
      params = params or {}
      params[k] = v
    elseif k ~= "sync" and k ~= "partition" then
      error(fmt("emr.tasks.%s: unknown field %q (Task fields and API parameters are PascalCase; "
        .. "options are sync and partition)", fn_name, k), 3)
    end
  end
  if params and fields.Parameters ~= nil then
    error(fmt("emr.tasks.%s: give the API parameters either as Parameters = {...} or as fields, not both",
      fn_name), 3)
  end
  if params then fields.Parameters = params end
  if fields.Next == nil and fields.End == nil then fields.End = true end
  fields.Type = "Task"
  fields.Resource = fmt("arn:%s:states:::emr-containers:%s%s", partition, action, spec.sync and ".sync" or "")
  local state = json.object({})
  for _, k in ipairs(ORDER) do
    if fields[k] ~= nil then json.set(state, k, fields[k]) end
  end
  return state
end

--- A createVirtualCluster Task state (request-response only).
function M.create_virtual_cluster(spec)
  return build("create_virtual_cluster", "createVirtualCluster", false, spec)
end
--- A startJobRun Task state; sync = true waits for the job run to finish.
function M.start_job_run(spec) return build("start_job_run", "startJobRun", true, spec) end
--- A deleteVirtualCluster Task state; sync = true waits for TERMINATED.
function M.delete_virtual_cluster(spec)
  return build("delete_virtual_cluster", "deleteVirtualCluster", true, spec)
end

--- An AWS SDK integration Task state: arn:aws:states:::aws-sdk:emrcontainers:<action>.
function M.sdk(action, spec)
  if type(action) ~= "string" or not action:match("^%l%a*$") then
    error("emr.tasks.sdk: action must be a camelCase API action like \"listJobRuns\"", 2)
  end
  local op = action:sub(1, 1):upper() .. action:sub(2)
  if not model.operations[op] then
    error(fmt("emr.tasks.sdk: %s is not an emr-containers API action", action), 2)
  end
  spec = spec or {}
  if spec.sync then error("emr.tasks.sdk: AWS SDK integrations are request-response only", 2) end
  local state = build("sdk", action, false, spec)
  local partition = spec.partition or "aws"
  state.Resource = fmt("arn:%s:states:::aws-sdk:emrcontainers:%s", partition, action)
  return state
end

-- Registered when required (emrflow.cli lists this module among its integrations), and
-- `emrflow run` gets the progress options when the CLI is what loaded us.
M.register(require "emrflow.asl")
if package.loaded["emrflow.cli"] then
  require("emrflow.progress").install_cli(package.loaded["emrflow.cli"])
end

return M
