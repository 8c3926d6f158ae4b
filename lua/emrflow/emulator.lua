-- emrflow.emulator: an in-process Amazon EMR on EKS (emr-containers) service.
--
-- No network, no real sleeping: every state is computed from the time of the
-- current scheduler (scheduler.now(), the execution's clock; virtual in tests and
-- `--local` runs), so a job "runs" for 60 s while the test takes a millisecond.
--
--   local emu = require("emrflow.emulator").new(scenario [, opts])
--   local out, err = emu:call("StartJobRun", params [, { client_token = }])
--   emu:start_job_run(params), emu:describe_job_run{ VirtualClusterId =, Id = }, ...
--
-- It looks like the client (emrflow.emr): same :call and snake_case methods, PascalCase
-- parameters and results, the same error objects (code "aws", aws_code, status, message,
-- request_id, retryable), parameters checked against the API model, and throttling codes
-- retried like the client does (max_attempts, exponential back-off on the scheduler clock).
--
-- It also answers on the wire: emu:serve(request) takes the HTTP request of the REST protocol
-- (camelCase JSON, URI labels, query string, SigV4-signed) and answers as the service does
-- (status, x-amzn-RequestId, x-amzn-ErrorType, camelCase JSON); emu:client() is an emrflow.emr
-- client whose transport is emu:serve. An execution given an emulator (`emr = emu`, and
-- `emrflow run --local`) goes through that client: the code path AWS runs.
--
-- Lifecycles:
--   job run         PENDING -> SUBMITTED -> RUNNING -> COMPLETED | FAILED | CANCELLED
--                   CancelJobRun: CANCEL_PENDING for cancel_seconds, then CANCELLED
--   virtual cluster RUNNING; DeleteVirtualCluster: TERMINATING for terminating_seconds,
--                   then TERMINATED
--   managed endpoint ACTIVE; DeleteManagedEndpoint: TERMINATING, then TERMINATED (same timing)
--   security configurations and tags: stored; job templates are not emulated
--
-- Scenario (every field optional; a Lua table, or the same shape as JSON):
--   defaults   = { pending_seconds = 5, submitted_seconds = 10, running_seconds = 60,
--                  final_state = "COMPLETED", terminating_seconds = 30,
--                  cancel_seconds = 5, failure_reason = nil, state_details = nil }
--   jobs       = { { match = "nightly-*", final_state = "FAILED", failure_reason = "USER_ERROR",
--                    state_details = "Exit code 1", running_seconds = 120 }, ... }
--                  (glob on the job run Name; first match wins, else defaults)
--   api_errors = { { operation = "StartJobRun", code = "ThrottlingException", count = 2,
--                    message = nil, status = nil }, ... }
--                  (the next `count` calls of that operation fail with that code)
--   queue      = { max_concurrent_job_runs = n, max_in_queue_job_runs = m }
--                  (StartJobRun fails with a ValidationException naming the full job queue
--                   when a virtual cluster already has n + m job runs not yet finished)
--   client_token_ttl_seconds = 86400   (how long a clientToken is remembered)
--   account = "123456789012", region = "us-east-1", start_id = 1
--   virtual_clusters = { { id = "abcdefghij0123456789abcde", name = "prod", state = "RUNNING",
--                          container_provider_id = "eks-prod" }, ... }
--                  (clusters that exist before the run: state RUNNING or TERMINATED)
local scheduler = require "emrflow.scheduler"
local errors = require "emrflow.errors"
local model = require "emrflow.emr.model"
local validate = require "emrflow.emr.validate"
local retry = require "emrflow.emr.retry"
local json = require "emrflow.json"
local time = require "emrflow.time"
local md = require "emrflow.digest"

local M = {}

local Emulator = {}
Emulator.__index = Emulator

M.DEFAULTS = {
  pending_seconds = 5,
  submitted_seconds = 10,
  running_seconds = 60,
  final_state = "COMPLETED",
  terminating_seconds = 30,
  cancel_seconds = 5,
}

local FINAL_STATES = { COMPLETED = true, FAILED = true, CANCELLED = true }
local FAILURE_REASONS = { INTERNAL_ERROR = true, USER_ERROR = true, VALIDATION_ERROR = true,
                          CLUSTER_UNAVAILABLE = true }

-- HTTP status the service answers each error code with (400 when not listed).
local STATUS = {
  TooManyRequestsException = 429, EKSRequestThrottledException = 429,
  InternalServerException = 500, InternalFailure = 500, ServiceUnavailable = 503,
  RequestTimeout = 408, RequestTimeoutException = 408,
  AccessDeniedException = 403, UnrecognizedClientException = 403,
}

---------------------------------------------------------------------------
-- Small helpers
---------------------------------------------------------------------------

-- A deep copy keeping the array/object marks but not the key order: results do not depend
-- on how the request was written (a Lua table or JSON text), only on what it says.
local function copy(v)
  if type(v) ~= "table" then return v end
  if json.is_array(v) then
    local t = json.array({})
    for i = 1, #v do t[i] = copy(v[i]) end
    return t
  end
  local t = json.is_object(v) and json.object({}) or {}
  for k, x in pairs(v) do t[k] = copy(x) end
  return t
end

-- A request member kept for later views: its JSON text, one string where a copy would be a
-- tree of tables the collector walks again and again for as long as the emulator lives
-- (or a copy, for a value with no JSON form: validation may be off).
local function keep(v)
  if v == nil then return nil end
  local ok, text = pcall(json.encode, v)
  if ok then return text end
  return copy(v)
end

-- A fresh value of what keep() kept: the caller may change it.
local function unkeep(k)
  if type(k) == "string" then return json.decode(k) end
  if k == nil then return nil end
  return json.copy(k)
end

-- An object of the pairs given (k1, v1, k2, v2, ...; nil values skipped). Keys are set
-- plainly, as the client's results are, so both encode in the same (sorted) order.
local function obj(...)
  local t = json.object({})
  local a = table.pack(...)
  for i = 1, a.n, 2 do
    local v = a[i + 1]
    if v ~= nil then t[a[i]] = v end
  end
  return t
end

local arr = json.array

-- Glob ("nightly-*", "job-?") to an anchored Lua pattern.
local function glob_pattern(glob)
  local out = { "^" }
  for c in glob:gmatch(".") do
    if c == "*" then out[#out + 1] = ".*"
    elseif c == "?" then out[#out + 1] = "."
    elseif c:match("%W") then out[#out + 1] = "%" .. c
    else out[#out + 1] = c end
  end
  out[#out + 1] = "$"
  return table.concat(out)
end

--- Unix seconds to the ISO 8601 form the service sends ("2024-05-01T12:00:05Z").
function M.timestamp(t)
  return (time.format_iso(math.floor(t) * 1000, "seconds"))
end

local function snake(name)
  return (name:gsub("(%l)(%u)", "%1_%2"):gsub("(%u)(%u%l)", "%1_%2"):lower())
end

local B36_BYTES = { ("0123456789abcdefghijklmnopqrstuvwxyz"):byte(1, -1) }
local id_digits = {}

local function aws_error(code, message, status)
  local e = errors.new{ code = "aws", aws_code = code, message = message,
                        status = status or STATUS[code] or 400 }
  e.retryable = retry.classify(e) ~= nil
  return e
end

---------------------------------------------------------------------------
-- Scenario checking (bad input gets a clear error saying what and where)
---------------------------------------------------------------------------

local DURATION_FIELDS = { "pending_seconds", "submitted_seconds", "running_seconds",
                          "terminating_seconds", "cancel_seconds" }
--- The longest duration a scenario may give (one year: a Standard execution's longest run);
-- a longer one would only make a `--local` run poll for hours of CPU.
M.MAX_DURATION_SECONDS = 31536000
local PROFILE_FIELDS = { match = "string", final_state = "string", failure_reason = "string",
                         state_details = "string" }
for _, f in ipairs(DURATION_FIELDS) do PROFILE_FIELDS[f] = "number" end

local function bad(where, msg)
  error("emrflow.emulator: scenario" .. where .. ": " .. msg, 0)
end

local function check_profile(p, where, is_job, max_s)
  if type(p) ~= "table" then bad(where, "must be an object, got " .. type(p)) end
  for k, v in pairs(p) do
    local want = PROFILE_FIELDS[k]
    if type(k) ~= "string" or not want or (k == "match" and not is_job) then
      bad(where, "unknown field " .. string.format("%q", tostring(k)))
    end
    if type(v) ~= want then
      bad(where .. "." .. k, "must be a " .. want .. ", got " .. type(v))
    end
    if want == "number" and (v < 0 or v ~= v or v == math.huge) then
      bad(where .. "." .. k, "must be a finite number of seconds >= 0, got " .. tostring(v))
    end
    if want == "number" and v > max_s then
      bad(where .. "." .. k, string.format("must be at most %.0f seconds (%s), got %s", max_s,
        max_s == M.MAX_DURATION_SECONDS and "one year, the longest a Standard execution runs"
        or "the emulator's max_duration_seconds", tostring(v)))
    end
  end
  if p.final_state and not FINAL_STATES[p.final_state] then
    bad(where .. ".final_state", "must be COMPLETED, FAILED or CANCELLED, got "
      .. string.format("%q", p.final_state))
  end
  if p.failure_reason and not FAILURE_REASONS[p.failure_reason] then
    bad(where .. ".failure_reason", "must be INTERNAL_ERROR, USER_ERROR, VALIDATION_ERROR or "
      .. "CLUSTER_UNAVAILABLE, got " .. string.format("%q", p.failure_reason))
  end
  if p.state_details and (#p.state_details < 1 or #p.state_details > 256) then
    bad(where .. ".state_details", "must be 1 to 256 characters")
  end
  if is_job and p.match == nil then bad(where, "needs a \"match\" glob on the job run Name") end
end

local function is_list(t)
  if type(t) ~= "table" then return false end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n == #t
end

local TOP_FIELDS = { defaults = true, jobs = true, api_errors = true, queue = true,
                     client_token_ttl_seconds = true, account = true, region = true, start_id = true,
                     virtual_clusters = true }

local CLUSTER_FIELDS = { id = true, name = true, state = true, container_provider_id = true }

-- scenario.virtual_clusters: a checked copy (clusters that exist before the run).
local function check_virtual_clusters(vcs)
  if not is_list(vcs) or json.is_object(vcs) then bad(".virtual_clusters", "must be an array") end
  local out, seen = {}, {}
  for i, vc in ipairs(vcs) do
    local where = ".virtual_clusters[" .. i .. "]"
    if type(vc) ~= "table" or json.is_array(vc) then bad(where, "must be an object") end
    for k in pairs(vc) do
      if not CLUSTER_FIELDS[k] then bad(where, "unknown field " .. string.format("%q", tostring(k))) end
    end
    if type(vc.id) ~= "string" or not vc.id:match("^[0-9a-z]+$") or #vc.id > 64 then
      bad(where .. ".id", "must be a virtual cluster id (lower-case letters and digits, up to 64)")
    end
    if seen[vc.id] then bad(where .. ".id", vc.id .. " is listed twice") end
    seen[vc.id] = true
    if vc.state ~= nil and vc.state ~= "RUNNING" and vc.state ~= "TERMINATED" then
      bad(where .. ".state", "must be RUNNING or TERMINATED")
    end
    for _, k in ipairs { "name", "container_provider_id" } do
      if vc[k] ~= nil and (type(vc[k]) ~= "string" or vc[k] == "") then
        bad(where .. "." .. k, "must be a non-empty string")
      end
    end
    out[i] = { id = vc.id, name = vc.name, state = vc.state or "RUNNING",
               container_provider_id = vc.container_provider_id }
  end
  return out
end

--- Checks a scenario table and returns a normalized copy; raises a located error.
-- A copy without JSON nulls (a null field of a JSON scenario means "not given").
local function drop_nulls(v)
  if type(v) ~= "table" then return v end
  local t = json.is_array(v) and arr({}) or (json.is_object(v) and json.object({}) or {})
  for k, x in pairs(v) do
    if x ~= json.null then t[k] = drop_nulls(x) end
  end
  return t
end

local function whole(v)
  return math.type(v) == "integer" or (type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge
    and v == math.floor(v))
end

--- Checks a scenario (raises naming the bad field); returns the checked copy. max_s: the
-- longest duration allowed (default M.MAX_DURATION_SECONDS).
function M.check_scenario(sc, max_s)
  max_s = max_s or M.MAX_DURATION_SECONDS
  if sc == nil or sc == json.null then sc = {} end
  if type(sc) == "table" then
    if json.is_array(sc) then bad("", "must be an object, got an array") end
    sc = drop_nulls(sc)
  end
  if type(sc) ~= "table" then bad("", "must be a table (or JSON object), got " .. type(sc)) end
  for k in pairs(sc) do
    if not TOP_FIELDS[k] then bad("", "unknown field " .. string.format("%q", tostring(k))) end
  end
  local out = { defaults = {}, jobs = {}, api_errors = {} }
  for k, v in pairs(M.DEFAULTS) do out.defaults[k] = v end
  if sc.defaults ~= nil then
    if type(sc.defaults) == "table" and json.is_array(sc.defaults) then
      bad(".defaults", "must be an object, got an array")
    end
    check_profile(sc.defaults, ".defaults", false, max_s)
    for k, v in pairs(sc.defaults) do out.defaults[k] = v end
  end
  if sc.jobs ~= nil then
    if not is_list(sc.jobs) or json.is_object(sc.jobs) then bad(".jobs", "must be an array") end
    for i, j in ipairs(sc.jobs) do
      check_profile(j, ".jobs[" .. i .. "]", true, max_s)
      local p = {}
      for k, v in pairs(j) do p[k] = v end
      p.pattern = glob_pattern(j.match)
      out.jobs[i] = p
    end
  end
  if sc.api_errors ~= nil then
    if not is_list(sc.api_errors) or json.is_object(sc.api_errors) then
      bad(".api_errors", "must be an array")
    end
    for i, e in ipairs(sc.api_errors) do
      local w = ".api_errors[" .. i .. "]"
      if type(e) ~= "table" then bad(w, "must be an object") end
      for k in pairs(e) do
        if k ~= "operation" and k ~= "code" and k ~= "count" and k ~= "message" and k ~= "status" then
          bad(w, "unknown field " .. string.format("%q", tostring(k)))
        end
      end
      if type(e.operation) ~= "string" or not model.operations[e.operation] then
        bad(w .. ".operation", "must name an emr-containers operation (e.g. \"StartJobRun\"), got "
          .. string.format("%q", tostring(e.operation)))
      end
      if type(e.code) ~= "string" or not e.code:match("^%a[%w_.]*$") then
        bad(w .. ".code", "must be an error code like \"ThrottlingException\"")
      end
      local count = e.count == nil and 1 or e.count
      if not whole(count) then
        bad(w .. ".count", "must be a whole number")
      end
      if count < 0 then bad(w .. ".count", "must be >= 0") end
      if e.message ~= nil and type(e.message) ~= "string" then bad(w .. ".message", "must be a string") end
      if e.status ~= nil and (math.type(e.status) ~= "integer" or e.status < 400 or e.status > 599) then
        bad(w .. ".status", "must be an HTTP status 400..599")
      end
      out.api_errors[i] = { operation = e.operation, code = e.code, left = math.tointeger(count),
                            message = e.message, status = e.status }
    end
  end
  if sc.queue ~= nil then
    if type(sc.queue) ~= "table" then bad(".queue", "must be an object") end
    for k, v in pairs(sc.queue) do
      if k ~= "max_concurrent_job_runs" and k ~= "max_in_queue_job_runs" then
        bad(".queue", "unknown field " .. string.format("%q", tostring(k)))
      end
      if not whole(v) or v < 0 then
        bad(".queue." .. k, "must be a whole number >= 0")
      end
    end
    out.queue = { max_concurrent_job_runs = sc.queue.max_concurrent_job_runs,
                  max_in_queue_job_runs = sc.queue.max_in_queue_job_runs }
  end
  local ttl = sc.client_token_ttl_seconds
  if ttl ~= nil and (type(ttl) ~= "number" or ttl < 0) then
    bad(".client_token_ttl_seconds", "must be a number of seconds >= 0")
  end
  out.client_token_ttl_seconds = ttl or 86400
  local acct_pat = "^" .. ("%d"):rep(12) .. "$"
  if sc.account ~= nil and (type(sc.account) ~= "string" or not sc.account:match(acct_pat)) then
    bad(".account", "must be a 12-digit account id")
  end
  out.account = sc.account or "123456789012"
  if sc.region ~= nil and (type(sc.region) ~= "string" or not sc.region:match("^[%l%d%-]+$")) then
    bad(".region", "must be a region name like \"us-east-1\"")
  end
  out.region = sc.region
  if sc.start_id ~= nil and math.type(sc.start_id) ~= "integer" then
    bad(".start_id", "must be an integer")
  end
  out.start_id = sc.start_id or 1
  out.virtual_clusters = sc.virtual_clusters ~= nil and check_virtual_clusters(sc.virtual_clusters) or {}
  return out
end

--- Reads a scenario JSON file and returns the decoded table (raises with the path on error).
function M.load_scenario(path)
  local f, ferr = io.open(path, "rb")
  if not f then error("emrflow.emulator: cannot read scenario file: " .. tostring(ferr), 2) end
  local text = f:read("a")
  f:close()
  local ok, v = pcall(json.decode, text)
  if not ok then
    error("emrflow.emulator: " .. path .. ": invalid JSON: " .. tostring(v), 2)
  end
  local ok2, err = pcall(M.check_scenario, v)
  if not ok2 then
    error((tostring(err):gsub("^emrflow%.emulator: ", "emrflow.emulator: " .. path .. ": ")), 2)
  end
  return v
end

---------------------------------------------------------------------------
-- Construction
---------------------------------------------------------------------------

--- new(scenario [, opts]). opts: now = fn (default scheduler.now), region = "us-east-1",
-- max_attempts = 3 (tries per call for throttling codes, like the client's standard retry
-- mode), random = fn (the back-off jitter, default math.random),
-- validate = true (check parameters against the API model), wire = true (an execution given
-- this emulator as its `emr` option calls it through emu:client(), over the REST wire form;
-- false: through emu:call, as a plain backend), max_duration_seconds = M.MAX_DURATION_SECONDS
-- (the longest duration the scenario may give: a study of jobs longer than a year raises it,
-- knowing that the virtual clock still polls them on the poll schedule).
function M.new(scenario, opts)
  opts = opts or {}
  local max_s = opts.max_duration_seconds
  if max_s ~= nil and (type(max_s) ~= "number" or max_s ~= max_s or max_s <= 0 or max_s == math.huge) then
    error("emrflow.emulator: opts.max_duration_seconds must be a finite number of seconds > 0", 2)
  end
  local sc = M.check_scenario(scenario, max_s)
  if opts.now ~= nil and type(opts.now) ~= "function" then
    error("emrflow.emulator: opts.now must be a function", 2)
  end
  local max_attempts = opts.max_attempts or 3
  if math.type(max_attempts) ~= "integer" or max_attempts < 1 then
    error("emrflow.emulator: opts.max_attempts must be an integer >= 1", 2)
  end
  local self = setmetatable({
    scenario = sc,
    profiles = {},     -- scenario rule (or the defaults) -> its shared job profile
    now_fn = opts.now or scheduler.now,
    region = opts.region or sc.region or "us-east-1",
    account = sc.account,
    max_attempts = max_attempts,
    validate = opts.validate ~= false,
    next_id = sc.start_id,
    clusters = {}, cluster_list = {},
    jobs = {}, job_list = {},
    endpoints = {}, endpoint_list = {},
    security = {}, security_list = {},
    tokens = {},           -- "op|scope|token" -> { time, id, fingerprint } (job runs: per cluster)
    texts = {}, ntexts = 0, -- shared texts (Emulator:shared)
    tags = {},             -- arn -> TagMap
    counts = { calls = 0, attempts = 0, retries = 0, requests = 0, by_operation = {} },
    random = opts.random,
    policy = retry.new{ max_attempts = max_attempts, random = opts.random },
    requests = 0,
    endpoint_key = opts.endpoint_key,
    wire = opts.wire ~= false,
  }, Emulator)
  if not self.endpoint_key then self.endpoint_key = self end
  self.created_by = "arn:aws:iam::" .. self.account .. ":user/emrflow-local"
  self:seed_clusters(sc.virtual_clusters)
  return self
end

-- The scenario's virtual clusters, as if created before the run (a TERMINATED one long ago).
function Emulator:seed_clusters(list)
  if #list == 0 then return end
  local ok, now = pcall(self.now_fn)
  if not ok or type(now) ~= "number" then now = os.time() end
  for _, c in ipairs(list) do
    local vc = {
      id = c.id, created = now,
      params = { Name = c.name or c.id, ContainerProvider = json.object_of(
        "Id", c.container_provider_id or "eks-cluster", "Type", "EKS",
        "Info", json.object_of("EksInfo", json.object_of("Namespace", "default"))) },
      arn = string.format("arn:aws:emr-containers:%s:%s:/virtualclusters/%s", self.region, self.account,
        c.id),
      terminating = self.scenario.defaults.terminating_seconds,
      active = {}, jobs = {},
    }
    if c.state == "TERMINATED" then vc.deleted_at = -math.huge end
    self.clusters[c.id] = vc
    self.cluster_list[#self.cluster_list + 1] = vc
  end
end

function Emulator:now()
  return self.now_fn()
end

-- One copy of a text many job runs repeat (their role, their driver's JSON): 10,000 jobs of
-- a Map keep one string, not 10,000 the collector walks again and again.
function Emulator:shared(text)
  if text == nil or type(text) ~= "string" then return text end
  local texts = self.texts
  local s = texts[text]
  if s then return s end
  if self.ntexts < 1000 then          -- (bounded: distinct texts are not worth keeping)
    texts[text] = text
    self.ntexts = self.ntexts + 1
  end
  return text
end

-- Ids look like the service's (lowercase base 36, 25 characters for virtual clusters,
-- 19 for job runs) and are deterministic: the n-th id of an emulator is always the same.
function Emulator:new_id(width)
  local n = self.next_id
  self.next_id = n + 1
  local x = n * 0x9E3779B97F4A7C15 + width
  local out = id_digits          -- reused: an id is made often (one per job run)
  for i = 1, width do
    x = x ~ (x >> 29)
    x = x * 0xBF58476D1CE4E5B9
    x = x ~ (x >> 32)
    out[i] = B36_BYTES[(x >> 8) % 36 + 1]
  end
  return string.char(table.unpack(out, 1, width))
end

--- Counters: { calls =, attempts =, by_operation = { StartJobRun = n, ... } }.
function Emulator:stats()
  return self.counts
end

---------------------------------------------------------------------------
-- State computation (lazy: from timestamps and the current time)
---------------------------------------------------------------------------

-- The scenario rule (sc.jobs entry) whose pattern matches the job name, or nil.
local function rule_for(sc, name)
  if name then
    for _, j in ipairs(sc.jobs) do
      if name:match(j.pattern) then return j end
    end
  end
  return nil
end

local function profile_for(sc, p)
  local d = sc.defaults
  local function pick(k)
    if p and p[k] ~= nil then return p[k] end
    return d[k]
  end
  local final = pick("final_state")
  local r = {
    pending = pick("pending_seconds"), submitted = pick("submitted_seconds"),
    running = pick("running_seconds"), cancel = pick("cancel_seconds"),
    final_state = final,
    failure_reason = pick("failure_reason"),
    state_details = pick("state_details"),
  }
  if final == "FAILED" then
    r.failure_reason = r.failure_reason or "USER_ERROR"
    r.state_details = r.state_details or "Job run failed (emulated)."
  elseif final == "CANCELLED" then
    r.state_details = r.state_details or "Job run was cancelled."
    r.failure_reason = nil
  else
    r.failure_reason, r.state_details = nil, nil
  end
  return r
end

-- The job's state at time t, and when it finished (nil while not final).
-- The profile of a job named `name`. Profiles are read-only, so the jobs of one scenario
-- rule share one table: 10,000 live jobs are 10,000 fewer tables for the collector to walk.
function Emulator:profile_of(name)
  local sc = self.scenario
  local rule = rule_for(sc, name) or sc.defaults
  local prof = self.profiles[rule]
  if not prof then
    prof = profile_for(sc, rule ~= sc.defaults and rule or nil)
    self.profiles[rule] = prof
  end
  return prof
end

local function job_state(job, t)
  local c = job.cancel_at
  if c and t >= c then
    if t >= job.cancelled_at then return "CANCELLED", job.cancelled_at end
    return "CANCEL_PENDING"
  end
  local t0 = job.created
  local p = job.profile
  if t < t0 + p.pending then return "PENDING" end
  if t < t0 + p.pending + p.submitted then return "SUBMITTED" end
  local fin = t0 + p.pending + p.submitted + p.running
  if t < fin then return "RUNNING" end
  return p.final_state, fin
end
M.job_state = job_state

local function cluster_state(vc, t)
  if vc.deleted_at then
    if t >= vc.deleted_at + vc.terminating then return "TERMINATED" end
    return "TERMINATING"
  end
  return "RUNNING"
end

local function tag_copy(tags)
  if tags == nil then return nil end
  return json.copy(tags)     -- stored normalized: the C deep copy keeps it as it is
end

-- The text of the job's end time `at`, made once (a job ends once: at its final state's
-- time, or when its cancellation completes).
local function finished_text(job, at)
  if job.finished_at ~= at then
    job.finished_at, job.finished_text = at, M.timestamp(at)
  end
  return job.finished_text
end

function Emulator:job_view(job, t)
  local state, finished = job_state(job, t)
  local fr, sd
  if state == "FAILED" then
    fr, sd = job.profile.failure_reason, job.profile.state_details
  elseif state == "CANCELLED" then
    sd = job.cancel_at and "Job run cancelled by CancelJobRun." or job.profile.state_details
  end
  -- polled again and again: the fixed texts are made once per job
  local created_at = job.created_at_text
  if not created_at then
    created_at = M.timestamp(job.created)
    job.created_at_text = created_at
  end
  -- The members every view has, in one constructor sized for them (a 16-slot table, not
  -- the 32 slots a constructor naming all 17 members would take on every poll); the
  -- optional ones are set after.
  local v = json.object{
    Id = job.id,
    Name = job.name,
    VirtualClusterId = job.vc_id,
    Arn = job.arn,
    State = state,
    ClientToken = job.client_token,
    ExecutionRoleArn = job.role,
    ReleaseLabel = job.release,
    JobDriver = unkeep(job.driver),
    CreatedAt = created_at,
    CreatedBy = self.created_by,
    Tags = tag_copy(self.tags[job.arn]) or json.object({}),
  }
  if finished then v.FinishedAt = finished_text(job, finished) end
  if sd ~= nil then v.StateDetails = sd end
  if fr ~= nil then v.FailureReason = fr end
  if job.overrides ~= nil then v.ConfigurationOverrides = unkeep(job.overrides) end
  if job.retry_policy ~= nil then v.RetryPolicyConfiguration = unkeep(job.retry_policy) end
  return v
end

function Emulator:cluster_view(vc, t)
  return obj(
    "Id", vc.id,
    "Name", vc.params.Name,
    "Arn", vc.arn,
    "State", cluster_state(vc, t),
    "ContainerProvider", copy(vc.params.ContainerProvider),
    "CreatedAt", M.timestamp(vc.created),
    "Tags", tag_copy(self.tags[vc.arn]) or obj(),
    "SecurityConfigurationId", vc.params.SecurityConfigurationId)
end

---------------------------------------------------------------------------
-- Operations (params already validated; return result | nil, err)
---------------------------------------------------------------------------

local ops = {}

-- The request without its token: the SHA-256 of its canonical JSON (plain tables encode
-- sorted). 32 bytes are kept per token, not the request's whole text.
local function fingerprint(p)
  local t = {}
  for k, v in pairs(p) do if k ~= "ClientToken" then t[k] = v end end
  local ok, text = pcall(json.encode, t)
  return md.raw("SHA-256", ok and text or tostring(t))
end

-- Token entries are arrays { time, id, fingerprint }: one small table per token.
-- fp: the request's fingerprint when the caller has it (else computed from p).
local function remember(self, key, id, t, p, fp)
  self.tokens[key] = { t, id, fp or fingerprint(p) }
end

-- The id created earlier with this token, or nil; an error when the token was used with
-- other parameters (what the service answers).
local function recall(self, key, t, p, fp)
  local e = self.tokens[key]
  if e and t - e[1] <= self.scenario.client_token_ttl_seconds then
    if e[3] ~= (fp or fingerprint(p)) then
      return nil, aws_error("ValidationException", "The client token " .. p.ClientToken
        .. " was already used with different parameters.")
    end
    return e[2]
  end
  return nil
end

function ops.CreateVirtualCluster(self, p, t)
  local key = "CreateVirtualCluster||" .. p.ClientToken
  local prior, perr = recall(self, key, t, p)
  if perr then return nil, perr end
  if prior then
    local vc = self.clusters[prior]
    return obj("Id", vc.id, "Name", vc.params.Name, "Arn", vc.arn)
  end
  local cp = p.ContainerProvider
  local ns = cp.Info and cp.Info.EksInfo and cp.Info.EksInfo.Namespace or "default"
  for _, other in ipairs(self.cluster_list) do
    if cluster_state(other, t) ~= "TERMINATED" then
      local ocp = other.params.ContainerProvider
      local ons = ocp.Info and ocp.Info.EksInfo and ocp.Info.EksInfo.Namespace or "default"
      if ocp.Id == cp.Id and ons == ns then
        return nil, aws_error("ValidationException", string.format(
          "A virtual cluster already exists in the given namespace %s of EKS cluster %s: %s",
          ns, cp.Id, other.id))
      end
    end
  end
  local id = self:new_id(25)
  local vc = {
    id = id, params = copy(p), created = t,
    arn = string.format("arn:aws:emr-containers:%s:%s:/virtualclusters/%s", self.region, self.account, id),
    terminating = self.scenario.defaults.terminating_seconds,
    active = {},   -- its job runs not yet seen final, kept when the scenario limits the queue
    jobs = {},     -- its job runs, in creation order (ListJobRuns)
  }
  vc.params.ClientToken = nil
  vc.params.Tags = nil
  if p.Tags ~= nil then self.tags[vc.arn] = copy(p.Tags) end
  self.clusters[id] = vc
  self.cluster_list[#self.cluster_list + 1] = vc
  remember(self, key, id, t, p)
  return obj("Id", id, "Name", p.Name, "Arn", vc.arn)
end

function ops.DeleteVirtualCluster(self, p, t)
  local vc = self.clusters[p.Id]
  if not vc then
    return nil, aws_error("ValidationException", "Virtual cluster " .. p.Id .. " doesn't exist.")
  end
  if not vc.deleted_at then vc.deleted_at = t end
  return obj("Id", vc.id)
end

function ops.DescribeVirtualCluster(self, p, t)
  local vc = self.clusters[p.Id]
  if not vc then
    return nil, aws_error("ResourceNotFoundException", "Virtual cluster " .. p.Id .. " doesn't exist.")
  end
  return obj("VirtualCluster", self:cluster_view(vc, t))
end

local function page(list, p, field)
  local start = 1
  if p.NextToken ~= nil then
    start = tonumber(p.NextToken:match("^page%-(%d+)$") or "")
    if not start then
      return nil, aws_error("ValidationException", "Invalid NextToken.")
    end
  end
  local max = p.MaxResults or 50
  if max < 1 then return nil, aws_error("ValidationException", "MaxResults must be at least 1.") end
  local items = {}
  for i = start, math.min(#list, start + max - 1) do items[#items + 1] = list[i] end
  local nxt = (start + max <= #list) and ("page-" .. (start + max)) or nil
  return obj(field, arr(items), "NextToken", nxt)
end

local function in_states(states, s)
  if states == nil or #states == 0 then return true end
  for _, x in ipairs(states) do if x == s then return true end end
  return false
end

-- CreatedAfter / CreatedBefore: Unix seconds, or an ISO 8601 text (offsets honoured);
-- nil when neither.
local function parse_time(v)
  if type(v) == "number" then return v end
  if type(v) ~= "string" then return nil end
  local ms = time.parse_iso(v, "lenient")
  return ms and ms / 1000 or nil
end
M.parse_time = parse_time

local function created_ok(p, created)
  local a, b = parse_time(p.CreatedAfter), parse_time(p.CreatedBefore)
  if a and created < a then return false end
  if b and created > b then return false end
  return true
end

function ops.ListVirtualClusters(self, p, t)
  local list = {}
  for _, vc in ipairs(self.cluster_list) do
    local cp = vc.params.ContainerProvider
    if (p.ContainerProviderId == nil or p.ContainerProviderId == cp.Id)
      and (p.ContainerProviderType == nil or p.ContainerProviderType == cp.Type)
      and in_states(p.States, cluster_state(vc, t)) and created_ok(p, vc.created) then
      list[#list + 1] = self:cluster_view(vc, t)
    end
  end
  return page(list, p, "VirtualClusters")
end

-- How many of the virtual cluster's job runs are not final at time t. vc.active holds the
-- ones not yet seen final; a job run never leaves a final state, so each is dropped once
-- and a queue check costs the active job runs, not every job run ever started.
local function active_jobs(vc, t)
  local list, n = vc.active, 0
  for i = 1, #list do
    local job = list[i]
    list[i] = nil
    if not FINAL_STATES[(job_state(job, t))] then
      n = n + 1
      list[n] = job
    end
  end
  return n
end

function ops.StartJobRun(self, p, t)
  local vc = self.clusters[p.VirtualClusterId]
  if not vc then
    return nil, aws_error("ResourceNotFoundException",
      "Virtual cluster " .. p.VirtualClusterId .. " doesn't exist.")
  end
  -- the nested members as the job keeps them (JSON text, one copy of each distinct text), and
  -- the fingerprint made of them: one encoding of each, not another of the whole request
  local driver, overrides, retry_policy = self:shared(keep(p.JobDriver)),
    self:shared(keep(p.ConfigurationOverrides)), self:shared(keep(p.RetryPolicyConfiguration))
  local fp = md.raw("SHA-256", table.concat({ "StartJobRun", p.Name or "\1", p.ExecutionRoleArn or "\1",
    p.ReleaseLabel or "\1", driver or "\1", overrides or "\1", retry_policy or "\1",
    keep(p.Tags) or "\1", p.JobTemplateId or "\1", keep(p.JobTemplateParameters) or "\1" }, "\0"))
  -- the cluster's tokens lead to the job runs they started (no entry of their own per job)
  local by_token = vc.job_tokens or {}
  vc.job_tokens = by_token
  local job = by_token[p.ClientToken]
  if job and t - job.created <= self.scenario.client_token_ttl_seconds then
    if job.fp ~= fp then
      return nil, aws_error("ValidationException", "The client token " .. p.ClientToken
        .. " was already used with different parameters.")
    end
    return obj("Id", job.id, "Name", job.name, "Arn", job.arn, "VirtualClusterId", vc.id)
  end
  local vstate = cluster_state(vc, t)
  if vstate ~= "RUNNING" then
    return nil, aws_error("ValidationException", string.format(
      "Virtual cluster %s is in state %s; job runs can only be started on a RUNNING virtual cluster.",
      vc.id, vstate))
  end
  if p.JobTemplateId ~= nil then
    return nil, aws_error("ResourceNotFoundException", "Job template " .. p.JobTemplateId
      .. " doesn't exist (the emrflow emulator has no job templates).")
  end
  for _, f in ipairs{ "ExecutionRoleArn", "ReleaseLabel", "JobDriver" } do
    if p[f] == nil then
      return nil, aws_error("ValidationException", f .. " is required when no JobTemplateId is given.")
    end
  end
  local jd = p.JobDriver
  if jd.SparkSubmitJobDriver == nil and jd.SparkSqlJobDriver == nil then
    return nil, aws_error("ValidationException",
      "JobDriver needs SparkSubmitJobDriver or SparkSqlJobDriver.")
  end
  local q = self.scenario.queue
  local limited = q and (q.max_concurrent_job_runs or q.max_in_queue_job_runs)
  if limited then
    local limit = (q.max_concurrent_job_runs or 0) + (q.max_in_queue_job_runs or 0)
    local n = active_jobs(vc, t)
    if n >= limit then
      return nil, aws_error("ValidationException", string.format(
        "Job run queue is full for virtual cluster %s: %d job runs are active or queued "
        .. "(maxConcurrentJobRuns %d, maxInQueueJobRuns %d). Retry when a job run finishes.",
        vc.id, n, q.max_concurrent_job_runs or 0, q.max_in_queue_job_runs or 0))
    end
  end
  local id = self:new_id(19)
  -- One flat table per job (kept as long as the emulator): the request's members as the
  -- views need them, its nested members as JSON text.
  job = {
    id = id, vc_id = vc.id, created = t, client_token = p.ClientToken, fp = fp,
    arn = vc.arn .. "/jobruns/" .. id,
    profile = self:profile_of(p.Name),
    name = p.Name, role = self:shared(p.ExecutionRoleArn), release = p.ReleaseLabel,
    driver = driver, overrides = overrides, retry_policy = retry_policy,
  }
  if p.Tags ~= nil then self.tags[job.arn] = copy(p.Tags) end
  self.jobs[id] = job
  self.job_list[#self.job_list + 1] = job
  local of_cluster = vc.jobs or {}         -- (clusters seeded by the CLI come without the list)
  local last = of_cluster[#of_cluster]
  if last and last.created > t then vc.in_order = false end    -- callers on other clocks
  of_cluster[#of_cluster + 1] = job
  vc.jobs = of_cluster
  if limited then vc.active[#vc.active + 1] = job end
  by_token[p.ClientToken] = job
  return obj("Id", id, "Name", p.Name, "Arn", job.arn, "VirtualClusterId", vc.id)
end

local function find_job(self, p)
  local job = self.jobs[p.Id]
  if job and job.vc_id == p.VirtualClusterId then return job end
  return nil
end

-- The job run DescribeJobRun asks for (plain or wire form), or nil and the service's error.
local function described_job(self, p)
  local job = find_job(self, p)
  if job then return job end
  return nil, aws_error("ResourceNotFoundException", "Job run " .. p.Id .. " doesn't exist.")
end

function ops.DescribeJobRun(self, p, t)
  local job, err = described_job(self, p)
  if not job then return nil, err end
  return json.object{ JobRun = self:job_view(job, t) }    -- polled often: no obj() pack
end

function ops.CancelJobRun(self, p, t)
  local job = find_job(self, p)
  if not job then
    return nil, aws_error("ValidationException", "Job run " .. p.Id .. " doesn't exist.")
  end
  local state = job_state(job, t)
  if FINAL_STATES[state] then
    return nil, aws_error("ValidationException", string.format(
      "Job run %s is not in a cancellable state: it is %s.", job.id, state))
  end
  if not job.cancel_at then
    job.cancel_at = t
    job.cancelled_at = t + job.profile.cancel
  end
  return obj("Id", job.id, "VirtualClusterId", job.vc_id)
end

-- One page of the virtual cluster's job runs (in creation order): the jobs, the NextToken,
-- or nil, err. The NextToken is where the next page starts in that list, so listing every
-- page scans the list once and makes a view only of the job runs a page returns (a listing
-- of 10,000 job runs is not 200 x 10,000).
local function job_page(self, p, t)
  local vc = self.clusters[p.VirtualClusterId]
  if not vc then
    return nil, aws_error("ValidationException",
      "Virtual cluster " .. p.VirtualClusterId .. " doesn't exist.")
  end
  local i = 1
  if p.NextToken ~= nil then
    i = math.tointeger(tonumber(p.NextToken:match("^jobs%-(%d+)$") or ""))
    if not i then return nil, aws_error("ValidationException", "Invalid NextToken.") end
  end
  local max = p.MaxResults or 50
  if max < 1 then return nil, aws_error("ValidationException", "MaxResults must be at least 1.") end
  local list, name, states = vc.jobs or {}, p.Name, nil
  if p.States ~= nil and #p.States > 0 then
    states = {}
    for _, st in ipairs(p.States) do states[st] = true end
  end
  local after, before = parse_time(p.CreatedAfter), parse_time(p.CreatedBefore)
  if after and vc.in_order ~= false then
    -- created in time order (the usual case): start at the first created at or after `after`
    local lo, hi = i, #list + 1
    while lo < hi do
      local mid = (lo + hi) // 2
      if list[mid].created < after then lo = mid + 1 else hi = mid end
    end
    i = lo
  end
  local jobs, nxt = {}, nil
  while i <= #list do
    local job = list[i]
    local c = job.created
    if (name == nil or name == job.name) and (after == nil or c >= after) and (before == nil or c <= before)
        and (states == nil or states[(job_state(job, t))]) then
      if #jobs == max then
        nxt = "jobs-" .. i
        break
      end
      jobs[#jobs + 1] = job
    end
    i = i + 1
  end
  return jobs, nxt
end

function ops.ListJobRuns(self, p, t)
  local jobs, nxt = job_page(self, p, t)
  if not jobs then return nil, nxt end
  local items = arr({})
  for i = 1, #jobs do items[i] = self:job_view(jobs[i], t) end
  return obj("JobRuns", items, "NextToken", nxt)
end

local function known_arn(self, arn)
  for _, list in ipairs{ self.cluster_list, self.job_list, self.endpoint_list, self.security_list } do
    for _, x in ipairs(list) do if x.arn == arn then return true end end
  end
  return false
end

-- Managed endpoints ----------------------------------------------------------

local function endpoint_state(ep, t)
  if ep.deleted_at then
    if t >= ep.deleted_at + ep.terminating then return "TERMINATED" end
    return "TERMINATING"
  end
  return "ACTIVE"
end

function Emulator:endpoint_view(ep, t)
  local p = ep.params
  return obj(
    "Id", ep.id, "Name", p.Name, "Arn", ep.arn, "VirtualClusterId", ep.vc_id, "Type", p.Type,
    "State", endpoint_state(ep, t), "ReleaseLabel", p.ReleaseLabel, "ExecutionRoleArn", p.ExecutionRoleArn,
    "CertificateArn", p.CertificateArn,
    "ConfigurationOverrides", p.ConfigurationOverrides ~= nil and copy(p.ConfigurationOverrides) or nil,
    "ServerUrl", string.format("https://%s.emr-containers.%s.amazonaws.com", ep.id, self.region),
    "CreatedAt", M.timestamp(ep.created),
    "Tags", tag_copy(self.tags[ep.arn]) or obj())
end

function ops.CreateManagedEndpoint(self, p, t)
  local vc = self.clusters[p.VirtualClusterId]
  if not vc then
    return nil, aws_error("ResourceNotFoundException",
        "Virtual cluster " .. p.VirtualClusterId .. " doesn't exist.")
  end
  local key = "CreateManagedEndpoint|" .. vc.id .. "|" .. p.ClientToken
  local prior, perr = recall(self, key, t, p)
  if perr then return nil, perr end
  if prior then
    local ep = self.endpoints[prior]
    return obj("Id", ep.id, "Name", ep.params.Name, "Arn", ep.arn, "VirtualClusterId", vc.id)
  end
  if cluster_state(vc, t) ~= "RUNNING" then
    return nil, aws_error("ValidationException", "Virtual cluster " .. vc.id .. " is not RUNNING.")
  end
  local id = self:new_id(19)
  local ep = { id = id, vc_id = vc.id, params = copy(p), created = t, arn = vc.arn .. "/endpoints/" .. id,
               terminating = self.scenario.defaults.terminating_seconds }
  ep.params.ClientToken, ep.params.Tags, ep.params.VirtualClusterId = nil, nil, nil
  if p.Tags ~= nil then self.tags[ep.arn] = copy(p.Tags) end
  self.endpoints[id] = ep
  self.endpoint_list[#self.endpoint_list + 1] = ep
  remember(self, key, id, t, p)
  return obj("Id", id, "Name", p.Name, "Arn", ep.arn, "VirtualClusterId", vc.id)
end

local function find_endpoint(self, p)
  local ep = self.endpoints[p.Id]
  if ep and ep.vc_id == p.VirtualClusterId then return ep end
  return nil
end

function ops.DescribeManagedEndpoint(self, p, t)
  local ep = find_endpoint(self, p)
  if not ep then
    return nil, aws_error("ResourceNotFoundException", "Endpoint " .. p.Id .. " doesn't exist.")
  end
  return obj("Endpoint", self:endpoint_view(ep, t))
end

function ops.DeleteManagedEndpoint(self, p, t)
  local ep = find_endpoint(self, p)
  if not ep then
    return nil, aws_error("ValidationException", "Endpoint " .. p.Id .. " doesn't exist.")
  end
  if not ep.deleted_at then ep.deleted_at = t end
  return obj("Id", ep.id, "VirtualClusterId", ep.vc_id)
end

function ops.ListManagedEndpoints(self, p, t)
  local list = {}
  for _, ep in ipairs(self.endpoint_list) do
    if ep.vc_id == p.VirtualClusterId and in_states(p.States, endpoint_state(ep, t))
      and in_states(p.Types, ep.params.Type) and created_ok(p, ep.created) then
      list[#list + 1] = self:endpoint_view(ep, t)
    end
  end
  return page(list, p, "Endpoints")
end

-- Security configurations -----------------------------------------------------

function Emulator:security_view(sc)
  return obj("Id", sc.id, "Name", sc.params.Name, "Arn", sc.arn, "CreatedAt", M.timestamp(sc.created),
    "CreatedBy", "arn:aws:iam::" .. self.account .. ":user/emrflow-local",
    "SecurityConfigurationData", copy(sc.params.SecurityConfigurationData),
    "Tags", tag_copy(self.tags[sc.arn]) or obj())
end

function ops.CreateSecurityConfiguration(self, p, t)
  local key = "CreateSecurityConfiguration||" .. p.ClientToken
  local prior, perr = recall(self, key, t, p)
  if perr then return nil, perr end
  if prior then
    local sc = self.security[prior]
    return obj("Id", sc.id, "Name", sc.params.Name, "Arn", sc.arn)
  end
  local id = self:new_id(19)
  local sc = { id = id, params = copy(p), created = t, arn = string.format(
    "arn:aws:emr-containers:%s:%s:/securityconfigurations/%s", self.region, self.account, id) }
  sc.params.ClientToken, sc.params.Tags = nil, nil
  if p.Tags ~= nil then self.tags[sc.arn] = copy(p.Tags) end
  self.security[id] = sc
  self.security_list[#self.security_list + 1] = sc
  remember(self, key, id, t, p)
  return obj("Id", id, "Name", p.Name, "Arn", sc.arn)
end

function ops.DescribeSecurityConfiguration(self, p)
  local sc = self.security[p.Id]
  if not sc then
    return nil, aws_error("ResourceNotFoundException", "Security configuration " .. p.Id .. " doesn't exist.")
  end
  return obj("SecurityConfiguration", self:security_view(sc))
end

function ops.ListSecurityConfigurations(self, p)
  local list = {}
  for _, sc in ipairs(self.security_list) do
    if created_ok(p, sc.created) then list[#list + 1] = self:security_view(sc) end
  end
  return page(list, p, "SecurityConfigurations")
end

function ops.ListTagsForResource(self, p)
  if not known_arn(self, p.ResourceArn) then
    return nil, aws_error("ResourceNotFoundException", "Resource " .. p.ResourceArn .. " doesn't exist.")
  end
  return obj("Tags", copy(self.tags[p.ResourceArn] or obj()))
end

function ops.TagResource(self, p)
  if not known_arn(self, p.ResourceArn) then
    return nil, aws_error("ResourceNotFoundException", "Resource " .. p.ResourceArn .. " doesn't exist.")
  end
  local t = self.tags[p.ResourceArn] or obj()
  for k, v in pairs(p.Tags) do t[k] = v end
  self.tags[p.ResourceArn] = t
  return obj()
end

function ops.UntagResource(self, p)
  if not known_arn(self, p.ResourceArn) then
    return nil, aws_error("ResourceNotFoundException", "Resource " .. p.ResourceArn .. " doesn't exist.")
  end
  local t = self.tags[p.ResourceArn]
  if t then
    for _, k in ipairs(p.TagKeys) do t[k] = nil end
  end
  return obj()
end

M.operations = ops

---------------------------------------------------------------------------
-- The client-like entry point
---------------------------------------------------------------------------

local function take_injected(self, op)
  for _, e in ipairs(self.scenario.api_errors) do
    if e.operation == op and e.left > 0 then
      e.left = e.left - 1
      return aws_error(e.code, e.message or ("Injected " .. e.code .. " (emulator scenario)"),
        e.status)
    end
  end
  return nil
end

local token_members = {}     -- operation --> its idempotency-token member, or false

local function token_member(op)
  local tm = token_members[op]
  if tm == nil then
    tm = false
    local shape = model.shapes[model.operations[op].input]
    for _, m in ipairs(shape and shape.members or {}) do
      if m.idempotency_token then tm = m.pascal end
    end
    token_members[op] = tm
  end
  return tm or nil
end

-- A version 4 UUID, as the SDKs fill idempotency tokens (one per started job: kept cheap).
local function random_token()
  local rnd = math.random
  return ("%08x-%04x-4%03x-a%03x-%06x%06x"):format(rnd(0, 0xffffffff), rnd(0, 0xffff), rnd(0, 0xfff),
    rnd(0, 0xfff), rnd(0, 0xffffff), rnd(0, 0xffffff))
end

local function attempt(self, op, params, t)
  self.counts.attempts = self.counts.attempts + 1
  local injected = take_injected(self, op)
  if injected then return nil, injected end
  local impl = ops[op]
  if not impl then
    return nil, errors.new{ code = "unsupported", aws_code = "UnsupportedOperation", status = 400,
      message = "the emrflow emulator does not implement " .. op
        .. " (it emulates virtual clusters, job runs, managed endpoints, security configurations "
        .. "and tags; no job templates)" }
  end
  return impl(self, params, t)
end

--- call(operation, params [, { client_token = }]) --> result | nil, err
function Emulator:call(op, params, opts)
  if type(op) ~= "string" or not model.operations[op] then
    error("emrflow.emulator: unknown operation " .. string.format("%q", tostring(op)), 2)
  end
  if params == nil then params = {} end
  if type(params) ~= "table" then
    error("emrflow.emulator: " .. op .. " expects a table of parameters, got " .. type(params), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("emrflow.emulator: call options must be a table", 2)
  end
  self.counts.calls = self.counts.calls + 1
  self.counts.by_operation[op] = (self.counts.by_operation[op] or 0) + 1
  local p = params
  local tm = token_member(op)
  if tm and p[tm] == nil then
    p = {}
    for k, v in pairs(params) do p[k] = v end
    p[tm] = opts and opts.client_token or random_token()
  end
  if self.validate then
    local ok, err = validate.check(op, p)
    if not ok then return nil, err end
  end
  local tries = 0
  while true do
    tries = tries + 1
    local out, err = attempt(self, op, p, self:now())
    if out ~= nil then
      self.policy:on_success(self.last_cost)
      self.last_cost = nil
      return out
    end
    local delay, cost = self.policy:should_retry(err, tries)
    if not delay then return nil, err end
    self.last_cost = cost
    self.counts.retries = self.counts.retries + 1
    -- Back off on the scheduler's clock; outside any task retry at once (never block).
    if scheduler.current() then scheduler.sleep(delay) end
  end
end

--- paginate(operation, params) --> iterator over pages (result tables), like the client.
function Emulator:paginate(op, params)
  local token
  local done = false
  return function()
    if done then return nil end
    local p = {}
    for k, v in pairs(params or {}) do p[k] = v end
    p.NextToken = token
    local out, err = self:call(op, p)
    if not out then done = true return nil, err end
    token = out.NextToken
    if token == nil then done = true end
    return out
  end
end

-- Every operation of the model as a snake_case method.
for name in pairs(model.operations) do
  Emulator[snake(name)] = function(self, params, opts)
    return self:call(name, params, opts)
  end
end

---------------------------------------------------------------------------
-- The REST wire form: what emr-containers answers over HTTP
---------------------------------------------------------------------------
-- emu:serve(request) takes the request a client sends (method, url, headers, body: the
-- camelCase JSON of the REST protocol) and answers as the service does: status, headers
-- (x-amzn-RequestId; x-amzn-ErrorType on errors) and a camelCase JSON body. One request is
-- one attempt: the client's retries are the only ones (an api_errors entry of count n
-- fails the next n requests of its operation).

local ERROR_NAMESPACE = "http://internal.amazon.com/coral/com.amazon.emr.containers/"
local JSON_TYPE = { "Content-Type", "application/json" }

-- Per HTTP method: { op =, pattern = anchored Lua pattern, labels = { member entries } },
-- routes with more literal segments first.
local routes

local function route_table()
  if routes then return routes end
  routes = {}
  for name, op in pairs(model.operations) do
    local by_label = {}
    for _, e in ipairs(validate.input_members(name)) do
      if e.location == "uri" then by_label[e.location_name] = e end
    end
    local pat, labels, literals = { "^" }, {}, 0
    for seg in op.uri:gmatch("[^/]+") do
      local label = seg:match("^{([%w_]+)%+?}$")
      if label then
        pat[#pat + 1] = "/([^/]+)"
        labels[#labels + 1] = by_label[label]
      else
        pat[#pat + 1] = "/" .. seg:gsub("%W", "%%%0")
        literals = literals + 1
      end
    end
    pat[#pat + 1] = "$"
    assert(#labels <= 2, "emrflow.emulator: a route with more than two labels")
    local list = routes[op.method] or {}
    routes[op.method] = list
    list[#list + 1] = { op = name, pattern = table.concat(pat), labels = labels, literals = literals }
  end
  for _, list in pairs(routes) do
    table.sort(list, function(a, b)
      if a.literals ~= b.literals then return a.literals > b.literals end
      return a.op < b.op
    end)
  end
  return routes
end

local function percent_decode(s)
  if not s:find("%", 1, true) then return s end
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- The operation of (method, path) and its URI labels as PascalCase parameters, or nil.
local function route(method, path)
  for _, r in ipairs(route_table()[method] or {}) do
    local a, b = path:match(r.pattern)      -- (no route has more than two labels)
    if a ~= nil then
      local params, labels = {}, r.labels
      if labels[1] then params[labels[1].pascal] = percent_decode(a) end
      if labels[2] then params[labels[2].pascal] = percent_decode(b) end
      return r.op, params
    end
  end
  return nil
end

-- Query-string members (lists repeat their key; integers in decimal; timestamps as text).
local query_members = {}     -- operation --> { [query name] = member entry }

local function read_query(op, query, params)
  if query == "" then return end
  local by_name = query_members[op]
  if not by_name then
    by_name = {}
    for _, e in ipairs(validate.input_members(op)) do
      if e.location == "querystring" then by_name[e.location_name] = e end
    end
    query_members[op] = by_name
  end
  for pair in query:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    local e = by_name[percent_decode(k)]
    if e then
      v = percent_decode(v)
      local t = e.shape.type
      if t == "list" then
        local list = params[e.pascal] or arr({})
        list[#list + 1] = v
        params[e.pascal] = list
      elseif t == "integer" or t == "long" then
        params[e.pascal] = math.tointeger(tonumber(v)) or v
      else
        params[e.pascal] = v
      end
    end
  end
end

-- The value of a header (name in lower case; the client's own spelling is tried first).
local function header(headers, name, spelled)
  if not headers then return nil end
  for i = 1, #headers do
    local h = headers[i]
    local n = type(h) == "table" and h[1]
    if n == spelled or (type(n) == "string" and n:lower() == name) then return h[2] end
  end
  return nil
end

-- Request ids shaped like the service's (UUIDs): this emulator's prefix and a counter.
function Emulator:request_id()
  local n = self.requests + 1
  self.requests = n
  local prefix = self.request_prefix
  if not prefix then
    prefix = ("%08x-%04x-4%03x-8%03x-"):format(math.random(0, 0xffffffff), math.random(0, 0xffff),
      math.random(0, 0xfff), math.random(0, 0xfff))
    self.request_prefix = prefix
  end
  return prefix .. ("%012x"):format(n)
end

local function error_reply(self, err)
  local code = err.aws_code or "InternalFailure"
  local body = json.encode(json.object_of("message", tostring(err.message or code)))
  return { status = err.status or STATUS[code] or 400, body = body, headers = {
    { "x-amzn-RequestId", self:request_id() }, JSON_TYPE,
    { "x-amzn-ErrorType", code .. ":" .. ERROR_NAMESPACE } } }
end

-- The request's operation and PascalCase parameters, or nil, error.
local function read_request(req)
  local path, query = req.url:match("^https?://[^/]*([^?#]*)%??([^#]*)")
  if not path then return nil, nil, aws_error("UnknownOperationException", "Malformed request URL.") end
  local op, params = route(req.method, path)
  if not op then
    return nil, nil, aws_error("UnknownOperationException",
      "No emr-containers operation is " .. tostring(req.method) .. " " .. path .. ".", 404)
  end
  read_query(op, query, params)
  local body = req.body
  if body ~= nil and body ~= "" then
    local ok, doc = pcall(json.decode, body)
    if not ok or type(doc) ~= "table" or json.is_array(doc) then
      return nil, nil, aws_error("SerializationException", "The request body is not a JSON object.")
    end
    for k, v in pairs(validate.from_wire_shape(model.operations[op].input, doc)) do params[k] = v end
  end
  return op, params
end

-- The hot operations of a .sync wait answer with JSON text made straight from the job's
-- record (its fixed members encoded once), not through a PascalCase view and a conversion.
local encode = json.encode

local function wire_text(shape_name, kept)
  if kept == nil then return nil end
  return encode(validate.to_wire_shape(shape_name, unkeep(kept)))
end

function Emulator:job_wire(job, t, before, after)
  local state, finished = job_state(job, t)
  local fixed = job.wire_fixed
  if not fixed then
    local parts = {
      '"id":', encode(job.id), ',"name":', job.name and encode(job.name) or "null",
      ',"virtualClusterId":', encode(job.vc_id), ',"arn":', encode(job.arn),
      ',"clientToken":', encode(job.client_token), ',"executionRoleArn":', encode(job.role),
      ',"releaseLabel":', encode(job.release), ',"jobDriver":', wire_text("JobDriver", job.driver),
      ',"createdAt":', encode(M.timestamp(job.created)), ',"createdBy":', encode(self.created_by),
    }
    if job.overrides ~= nil then
      parts[#parts + 1] = ',"configurationOverrides":' .. wire_text("ConfigurationOverrides", job.overrides)
    end
    if job.retry_policy ~= nil then
      parts[#parts + 1] = ',"retryPolicyConfiguration":'
        .. wire_text("RetryPolicyConfiguration", job.retry_policy)
    end
    if job.name == nil then parts[3], parts[4] = "", "" end
    fixed = table.concat(parts)
    job.wire_fixed = fixed
  end
  local fr, sd
  if state == "FAILED" then
    fr, sd = job.profile.failure_reason, job.profile.state_details
  elseif state == "CANCELLED" then
    sd = job.cancel_at and "Job run cancelled by CancelJobRun." or job.profile.state_details
  end
  local tags = self.tags[job.arn]
  return (before or "") .. "{" .. fixed .. ',"state":"' .. state .. '"'
    .. (finished and (',"finishedAt":"' .. finished_text(job, finished) .. '"') or "")
    .. (sd and (',"stateDetails":' .. encode(sd)) or "")
    .. (fr and (',"failureReason":"' .. fr .. '"') or "")
    .. ',"tags":' .. (tags and encode(tags) or "{}") .. "}" .. (after or "")
end

local wire_ops = {}

function wire_ops.StartJobRun(self, p, t)
  local out, err = ops.StartJobRun(self, p, t)
  if not out then return nil, err end
  return '{"id":' .. encode(out.Id) .. (out.Name and (',"name":' .. encode(out.Name)) or "")
    .. ',"arn":' .. encode(out.Arn) .. ',"virtualClusterId":' .. encode(out.VirtualClusterId) .. "}"
end

function wire_ops.DescribeJobRun(self, p, t)
  local job, err = described_job(self, p)
  if not job then return nil, err end
  return self:job_wire(job, t, '{"jobRun":', "}")
end

function wire_ops.ListJobRuns(self, p, t)
  local jobs, nxt = job_page(self, p, t)
  if not jobs then return nil, nxt end
  local views = {}
  for i = 1, #jobs do views[i] = self:job_wire(jobs[i], t) end
  return '{"jobRuns":[' .. table.concat(views, ",") .. "]"
    .. (nxt and (',"nextToken":' .. encode(nxt)) or "") .. "}"
end

--- serve(request) --> response: one HTTP exchange of emr-containers' REST protocol.
-- request: { method =, url =, headers = { { name, value }, ... }, body = }; response:
-- { status =, headers = { { name, value }, ... }, body = } (camelCase JSON), as the service
-- answers, errors included. Requests must be SigV4-signed for emr-containers (any keys).
function Emulator:serve(req)
  if type(req) ~= "table" or type(req.method) ~= "string" or type(req.url) ~= "string"
      or (req.body ~= nil and type(req.body) ~= "string")
      or (req.headers ~= nil and type(req.headers) ~= "table") then
    error("emrflow.emulator: serve expects a request { method = string, url = string, "
      .. "headers = { { name, value }, ... }, body = string }", 2)
  end
  self.counts.requests = self.counts.requests + 1
  local auth = header(req.headers, "authorization", "Authorization")
  if not auth then
    return error_reply(self, aws_error("MissingAuthenticationTokenException",
      "Missing Authentication Token", 403))
  elseif not auth:find("^AWS4%-HMAC%-SHA256 Credential=[^/]+/%d+/[%w%-]+/emr%-containers/aws4_request") then
    return error_reply(self, aws_error("InvalidSignatureException",
      "The request is not signed (SigV4) for emr-containers.", 403))
  end
  local op, p, err = read_request(req)
  if not op then return error_reply(self, err) end
  self.counts.calls = self.counts.calls + 1
  self.counts.by_operation[op] = (self.counts.by_operation[op] or 0) + 1
  if self.validate then
    local ok, verr = validate.check(op, p)
    if not ok then return error_reply(self, verr) end
  end
  local body
  local direct = wire_ops[op]
  if direct then
    self.counts.attempts = self.counts.attempts + 1
    err = take_injected(self, op)
    if not err then body, err = direct(self, p, self:now()) end
  else
    local out
    out, err = attempt(self, op, p, self:now())
    if out ~= nil then body = encode(validate.to_wire_shape(model.operations[op].output, out)) end
  end
  if body == nil then return error_reply(self, err) end
  return { status = 200, headers = { { "x-amzn-RequestId", self:request_id() }, JSON_TYPE }, body = body }
end

local endpoints_made = 0

--- client([opts]) --> an emrflow.emr client whose requests this emulator serves (no network):
-- dummy credentials, SigV4 signing, marshalling, model checks, reply checks, retries on the
-- scheduler's clock and the batched .sync polling, as against AWS. Made once per emulator;
-- opts (made once too) go to emrflow.emr.client.new (max_attempts, random, retry_quota).
function Emulator:client(opts)
  local c = self.wire_client
  if c then return c end
  endpoints_made = endpoints_made + 1
  local o = { region = self.region, max_attempts = self.max_attempts, random = self.random,
              credentials = { access_key_id = "AKIDEMRFLOWEMULATOR", secret_access_key = "emulator" } }
  for k, v in pairs(opts or {}) do o[k] = v end
  -- its own endpoint: the .sync polling plans and rate limits are per endpoint
  o.endpoint_url = ("https://emr-containers.%s.emulator-%d.emrflow.invalid"):format(self.region,
    endpoints_made)
  o.config = { region = o.region, endpoint_url = o.endpoint_url, max_attempts = o.max_attempts }
  o.transport = function(req) return self:serve(req) end
  c = require("emrflow.emr.client").new(o)
  self.wire_client = c
  return c
end

--- True when x is an emulator made by new().
function M.is_emulator(x)
  return getmetatable(x) == Emulator
end

M.Emulator = Emulator
M.snake = snake

return M
