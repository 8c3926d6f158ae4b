-- The emr-containers client: requests, signing, errors, pagination; and every operation,
-- fault and bad input against the fake emr-containers server (spec/support/fake_emr.py).
local json = require "emrflow.json"
local emr = require "emrflow.emr"
local client_mod = require "emrflow.emr.client"
local errors = require "emrflow.errors"
local scheduler = require "emrflow.scheduler"
local core = require "emrflow.core"

local CREDS = { access_key_id = "AKIDEXAMPLE",
                secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" }
local SECRET = CREDS.secret_access_key
local T0 = 1440938160   -- 20150830T123600Z

local function header(headers, name)
  name = name:lower()
  for _, h in ipairs(headers) do
    if h[1]:lower() == name then return h[2] end
  end
  return nil
end

local function offline(opts)
  local o = { region = "us-east-1", credentials = CREDS, env = {}, dry_run = true,
              time = function() return T0 end }
  for k, v in pairs(opts or {}) do o[k] = v end
  return emr.client(o)
end

local ROLE = "arn:aws:iam::123456789012:role/job-role"
local function start_params(vc, extra)
  local p = {
    VirtualClusterId = vc, Name = "nightly", ExecutionRoleArn = ROLE, ReleaseLabel = "emr-6.15.0-latest",
    JobDriver = { SparkSubmitJobDriver = { EntryPoint = "s3://my-bucket/main.py",
                                           EntryPointArguments = { "--date", "2015-08-30" },
                                           SparkSubmitParameters = "--conf spark.executor.instances=2" } },
    ConfigurationOverrides = {
      ApplicationConfiguration = { { Classification = "spark-defaults",
                                     Properties = { ["spark.executor.memory"] = "2G" } } },
      MonitoringConfiguration = { PersistentAppUI = "ENABLED",
                                  S3MonitoringConfiguration = { LogUri = "s3://my-bucket/logs/" } },
    },
    Tags = { ["team.name"] = "data" },
  }
  for k, v in pairs(extra or {}) do p[k] = v end
  return p
end

describe("emr client (offline)", function()
  it("signs like botocore (reference A10 vectors 1 and 2)", function()
    local c = offline{ credentials = { access_key_id = CREDS.access_key_id, secret_access_key = SECRET,
                                       session_token = "SESSIONTOKEN" } }
    local r = assert(c:list_tags_for_resource{
      ResourceArn = "arn:aws:emr-containers:us-east-1:123456789012:/virtualclusters/abc" })
    assert.equal("GET", r.method)
    assert.equal("https://emr-containers.us-east-1.amazonaws.com/tags/"
                 .. "arn%3Aaws%3Aemr-containers%3Aus-east-1%3A123456789012%3A%2Fvirtualclusters%2Fabc", r.url)
    local auth = header(r.headers, "Authorization")
    assert.truthy(auth:find("SignedHeaders=host;x-amz-date;x-amz-security-token,", 1, true), auth)
    assert.truthy(auth:find("Signature=b482da71b1623c17f19d707eb326328ed828f6454b62969d9b0c895649e7b312",
                            1, true), auth)
    assert.equal("20150830T123600Z", header(r.headers, "X-Amz-Date"))
    assert.equal("SESSIONTOKEN", header(r.headers, "X-Amz-Security-Token"))
    assert.is_nil(header(r.headers, "Content-Type"))
    assert.equal("", r.body)

    r = assert(c:list_job_runs({ VirtualClusterId = "abc123", States = { "RUNNING", "PENDING" },
                                 Name = "a b/c", MaxResults = 10 }, { validate = false }))
    auth = header(r.headers, "Authorization")
    assert.truthy(auth:find("Signature=359e77356e88bb9ab2bed79f54594471618606f395f774877b034f45da2a4728",
                            1, true), auth)
  end)

  it("sends a camelCase JSON body with Content-Type on POST, none on DELETE", function()
    local c = offline()
    local r = assert(c:start_job_run(start_params("abc123"), { client_token = "tok-2" }))
    assert.equal("POST", r.method)
    assert.equal("https://emr-containers.us-east-1.amazonaws.com/virtualclusters/abc123/jobruns", r.url)
    assert.equal("application/json", header(r.headers, "Content-Type"))
    local body = json.decode(r.body)
    assert.equal("tok-2", body.clientToken)
    assert.equal("s3://my-bucket/main.py", body.jobDriver.sparkSubmitJobDriver.entryPoint)
    assert.same({ ["team.name"] = "data" }, body.tags)
    assert.is_nil(body.virtualClusterId)
    assert.truthy(header(r.headers, "Authorization")
                    :find("SignedHeaders=content-type;host;x-amz-date,", 1, true))
    assert.matches("^emrflow/", header(r.headers, "User-Agent"))

    r = assert(c:cancel_job_run{ VirtualClusterId = "abc123", Id = "jr0xyz" })
    assert.equal("DELETE", r.method)
    assert.equal("https://emr-containers.us-east-1.amazonaws.com/virtualclusters/abc123/jobruns/jr0xyz",
                 r.url)
    assert.equal("", r.body)
    assert.is_nil(header(r.headers, "Content-Type"))
    assert.equal("0", header(r.headers, "Content-Length"))
    assert.is_nil(header(assert(c:list_virtual_clusters{}).headers, "Content-Length"))
  end)

  it("resolves the endpoint: region, FIPS, explicit URL with a path", function()
    assert.equal("https://emr-containers.eu-west-1.amazonaws.com/virtualclusters",
                 offline{ region = "eu-west-1" }:list_virtual_clusters{}.url)
    assert.equal("https://emr-containers-fips.us-east-1.amazonaws.com/virtualclusters",
                 offline{ env = { AWS_USE_FIPS_ENDPOINT = "true" } }:list_virtual_clusters{}.url)
    -- a legacy pseudo-region: the FIPS host, signed with the real region
    local r = offline{ region = "fips-us-east-1" }:list_virtual_clusters{}
    assert.equal("https://emr-containers-fips.us-east-1.amazonaws.com/virtualclusters", r.url)
    assert.truthy(header(r.headers, "Authorization"):find("/20150830/us-east-1/emr-containers/", 1, true))
    assert.equal("http://127.0.0.1:9/base/virtualclusters",
                 offline{ endpoint_url = "http://127.0.0.1:9/base/" }:list_virtual_clusters{}.url)
    assert.equal("http://localhost:1/virtualclusters",
                 offline{ env = { AWS_ENDPOINT_URL_EMR_CONTAINERS = "http://localhost:1" } }
                   :list_virtual_clusters{}.url)
  end)

  it("validates before anything is sent", function()
    local sent = 0
    local c = emr.client{ region = "us-east-1", credentials = CREDS, env = {},
                          transport = function() sent = sent + 1 end }
    local p = start_params("abc123")
    p.JobDriver.SparkSubmitJobDriver.EntryPoint = nil
    local out, err = c:start_job_run(p)
    assert.is_nil(out)
    assert.equal("validation", err.code)
    assert.equal("ValidationException", err.aws_code)
    assert.equal("JobDriver.SparkSubmitJobDriver.EntryPoint", err.field)
    assert.truthy(err.message:find("JobDriver.SparkSubmitJobDriver.EntryPoint", 1, true))
    assert.equal(0, sent)
  end)

  it("raises on misuse", function()
    local c = offline()
    assert.has_error(function() c:call("NoSuchOperation", {}) end,
                     "emrflow.emr: unknown emr-containers operation 'NoSuchOperation'")
    assert.has_error(function() c:start_job_run("x") end)
    assert.has_error(function() c:start_job_run({}, { client_token = 5 }) end)
    assert.has_error(function() emr.client{ bogus = 1 } end, "emrflow.emr.client: unknown option 'bogus'")
    assert.has_error(function() emr.client{ max_attempts = 0 } end)
    assert.has_error(function() emr.client{ endpoint_url = "ftp://x" } end)
    assert.has_error(function() emr.client{ credentials = { access_key_id = "x" } } end)
    assert.has_error(function() c:paginate("DescribeJobRun", {}) end)
  end)

  it("returns configuration problems from each call", function()
    local c = emr.client{ credentials = CREDS, env = { HOME = "/nonexistent" } }
    local out, err = c:list_virtual_clusters{}
    assert.is_nil(out)
    assert.equal("config", err.code)
    assert.matches("region", err.message)
  end)

  it("returns credential problems without sending", function()
    local sent = 0
    local provider = { get = function()
      return nil, errors.new{ code = "credentials", message = "none found" }
    end }
    local c = emr.client{ region = "us-east-1", env = {}, transport = function() sent = sent + 1 end,
                          credentials = provider }
    local out, err = c:list_virtual_clusters{}
    assert.is_nil(out)
    assert.equal("credentials", err.code)
    assert.equal(0, sent)
  end)

  it("takes credentials and region from the environment (emrflow.credentials chain)", function()
    local c = emr.client{ dry_run = true, time = function() return T0 end,
                          env = { AWS_REGION = "eu-west-1", AWS_ACCESS_KEY_ID = "AKIDENV",
                                  AWS_SECRET_ACCESS_KEY = "envsecret", AWS_SESSION_TOKEN = "envtoken",
                                  HOME = "/nonexistent" } }
    local r = assert(c:list_virtual_clusters{})
    local auth = header(r.headers, "Authorization")
    assert.truthy(auth:find("Credential=AKIDENV/20150830/eu-west-1/emr-containers/aws4_request", 1, true),
                  auth)
    assert.equal("envtoken", header(r.headers, "X-Amz-Security-Token"))
    assert.is_nil(auth:find("envsecret", 1, true))
  end)

  it("makes RFC 4122 version 4 UUIDs", function()
    local seen = {}
    for _ = 1, 200 do
      local u = emr.uuid4()
      assert.matches("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$", u)
      assert.is_nil(seen[u])
      seen[u] = true
    end
  end)
end)

describe("emr client replies (scripted)", function()
  local function with_reply(status, body)
    return emr.client{ region = "us-east-1", credentials = CREDS, env = {}, max_attempts = 1,
                       transport = function()
                         return { status = status, headers = { { "X-Amzn-RequestId", "rid-9" } },
                                  body = body }
                       end }
  end

  it("turns an empty 200 body into an empty result", function()
    local out = assert(with_reply(200, ""):tag_resource{
      ResourceArn = "arn:aws:emr-containers:us-east-1:123456789012:/virtualclusters/abc",
      Tags = { a = "b" } })
    assert.same({}, out)
    assert.equal("{}", json.encode(out))
  end)

  it("reports a 200 reply that is not a JSON object", function()
    for _, body in ipairs{ "not json", "[1,2]", '"text"' } do
      local out, err = with_reply(200, body):list_virtual_clusters{}
      assert.is_nil(out)
      assert.equal("json", err.code)
      assert.equal("rid-9", err.request_id)
      assert.is_false(err.retryable)
      assert.matches("ListVirtualClusters", err.message)
    end
  end)

  it("reports a 200 reply without the result's id: never a success without an Id", function()
    local start = start_params("vc0abc")
    local CASES = {
      { "StartJobRun", start, "", "empty body" },
      { "StartJobRun", start, "   ", "empty body" },
      { "StartJobRun", start, "{}", "no 'id' string" },
      { "StartJobRun", start, '{"id": 7}', "no 'id' string" },
      { "DescribeJobRun", { VirtualClusterId = "vc0abc", Id = "job1" }, "", "empty body" },
      { "DescribeJobRun", { VirtualClusterId = "vc0abc", Id = "job1" }, "{}", "no 'jobRun' object" },
      { "CreateVirtualCluster", { Name = "x", ContainerProvider = { Id = "e", Type = "EKS" } }, "null",
        "not a JSON object" },
      { "CancelJobRun", { VirtualClusterId = "vc0abc", Id = "job1" }, "[]", "not a JSON object" },
      { "ListJobRuns", { VirtualClusterId = "vc0abc" }, "", "empty body" },
    }
    for _, c in ipairs(CASES) do
      local out, err = with_reply(200, c[3]):call(c[1], c[2])
      assert.is_nil(out, c[1] .. " " .. c[3])
      assert.equal("json", err.code)
      assert.is_false(err.retryable)
      assert.equal(200, err.status)
      assert.matches(c[1], err.message, 1, true)
      assert.matches(c[4], err.message, 1, true)
    end
    -- the same replies with their key member are results
    assert.equal("j1", assert(with_reply(200, '{"id":"j1"}'):call("StartJobRun", start)).Id)
    assert.same({}, assert(with_reply(200, '{}'):list_job_runs{ VirtualClusterId = "vc0abc" }))
  end)

  it("keeps the request id of the last reply", function()
    local c = with_reply(200, '{"virtualClusters":[]}')
    assert(c:list_virtual_clusters{})
    assert.equal("rid-9", c.last_request_id)
  end)
end)

describe("emrflow.errors", function()
  it("makes error objects sharing the C core's metatable", function()
    local e = errors.new{ code = "aws", aws_code = "ThrottlingException", status = 400,
                          message = "Rate exceeded", request_id = "r1", retryable = true }
    assert.equal(core.error_mt, getmetatable(e))
    assert.is_true(errors.is_error(e))
    assert.is_true(errors.is(e, "ThrottlingException"))
    assert.is_true(errors.is(e, "aws"))
    assert.is_false(errors.is(e, "ValidationException"))
    assert.is_false(errors.is("x", "aws"))
    assert.equal("emrflow: ThrottlingException (HTTP 400): Rate exceeded [request r1]", tostring(e))
    local w = errors.wrap(e, "StartJobRun")
    assert.equal("StartJobRun: Rate exceeded", w.message)
    assert.equal("ThrottlingException", w.aws_code)
    assert.equal("Rate exceeded", e.message)
    assert.same({ code = "aws", message = "Rate exceeded", status = 400, aws_code = "ThrottlingException",
                  request_id = "r1", retryable = true }, errors.fields(e))
    assert.equal("error", errors.new{}.code)
    assert.is_false(errors.new{ code = "x" }.retryable)
    assert.has_error(function() errors.new("x") end)
  end)

  it("exposes the Task helpers lazily as emr.tasks", function()
    local ok, tasks = pcall(function() return emr.tasks end)
    if not ok then pending("emrflow.emr.tasks is not available: " .. tostring(tasks)) return end
    assert.is_table(tasks)
    assert.equal(tasks, require("emrflow.emr.tasks"))
  end)
end)

describe("emr client error parsing", function()
  local function resp(status, body, headers)
    local hs = {}
    for k, v in pairs(headers or {}) do hs[#hs + 1] = { k, v } end
    return { status = status, body = body, headers = hs }
  end
  local CASES = {
    { "x-amzn-ErrorType header (before the colon)",
      resp(400, '{"message":"bad"}', { ["x-amzn-ErrorType"] = "ValidationException:http://internal/",
                                       ["x-amzn-RequestId"] = "rid-1" }),
      "ValidationException", "bad", "rid-1", false },
    { "header wins over the body", resp(400, '{"__type":"a#Other","message":"m"}',
                                        { ["X-Amzn-Errortype"] = "ResourceNotFoundException" }),
      "ResourceNotFoundException", "m", nil, false },
    { "body code", resp(400, '{"code":"ThrottlingException","Message":"Rate exceeded"}'),
      "ThrottlingException", "Rate exceeded", nil, true },
    { "body __type after #", resp(500, '{"__type":"com.amazonaws.emrcontainers#InternalServerException",'
                                       .. '"message":"oops"}'),
      "InternalServerException", "oops", nil, true },
    { "no code: the status", resp(503, ""), "503", "HTTP 503", nil, true },
    { "not JSON: the text", resp(502, "<html>Bad Gateway</html>"), "502", "<html>Bad Gateway</html>", nil,
      true },
    { "429 without a known code is throttling", resp(429, '{"message":"slow down"}'), "429", "slow down", nil,
      true },
  }
  for _, c in ipairs(CASES) do
    it(c[1], function()
      local e = client_mod.parse_error(c[2], "DescribeJobRun")
      assert.is_true(errors.is_error(e))
      assert.equal("aws", e.code)
      assert.equal(c[3], e.aws_code)
      assert.equal(c[2].status, e.status)
      assert.equal(c[4], e.message)
      assert.equal(c[5], e.request_id)
      assert.equal(c[6], e.retryable)
      assert.is_true(errors.is(e, c[3]))
      assert.matches("^emrflow: ", tostring(e))
    end)
  end
end)

describe("emr client pagination (scripted)", function()
  it("iterates every page and stops at the last", function()
    local pages = {
      { jobRuns = { { id = "a" }, { id = "b" } }, nextToken = "t1" },
      { jobRuns = { { id = "c" } }, nextToken = "t2" },
      { jobRuns = json.array({}) },
    }
    local queries = {}
    local c = emr.client{ region = "us-east-1", credentials = CREDS, env = {},
                          transport = function(req)
                            queries[#queries + 1] = req.url:match("%?(.*)$") or ""
                            return { status = 200, headers = {}, body = json.encode(pages[#queries]) }
                          end }
    local ids = {}
    for page, err in c:paginate("ListJobRuns", { VirtualClusterId = "vc1", MaxResults = 2 }) do
      assert.is_nil(err)
      for _, jr in ipairs(page.JobRuns) do ids[#ids + 1] = jr.Id end
    end
    assert.same({ "a", "b", "c" }, ids)
    assert.same({ "maxResults=2", "maxResults=2&nextToken=t1", "maxResults=2&nextToken=t2" }, queries)
    queries = {}
    local all = assert(c:list_all("ListJobRuns", { VirtualClusterId = "vc1", MaxResults = 2 }))
    assert.equal(3, #all)
    assert.equal("c", all[3].Id)
  end)

  it("hands a failed page to the loop, then stops", function()
    local n = 0
    local c = emr.client{ region = "us-east-1", credentials = CREDS, env = {}, max_attempts = 1,
                          transport = function()
                            n = n + 1
                            if n == 1 then
                              return { status = 200, headers = {},
                                       body = '{"virtualClusters":[],"nextToken":"x"}' }
                            end
                            return { status = 400,
                                     headers = { { "x-amzn-ErrorType", "ValidationException" } },
                                     body = '{"message":"bad token"}' }
                          end }
    local seen = {}
    for page, err in c:paginate("ListVirtualClusters", {}) do
      seen[#seen + 1] = page and "page" or err.aws_code
    end
    assert.same({ "page", "ValidationException" }, seen)
    local all, err = c:list_all("ListVirtualClusters", {})
    assert.is_nil(all)
    assert.equal("ValidationException", err.aws_code)
  end)
end)

------------------------------------------------------------------------------
-- Against the fake server
------------------------------------------------------------------------------

local have_http = type(core.http) == "table" and core.http.poller ~= nil
local have_fake, fake = pcall(require, "support.fake")

local function live(name, fn)
  if not have_http or not have_fake then
    it(name, function() pending("needs core.http and spec/support/fake.lua") end)
  else
    it(name, fn)
  end
end

describe("emr client against fake_emr", function()
  local srv, client

  local function new_client(opts)
    local o = { region = "us-east-1", endpoint_url = srv.url, credentials = CREDS, env = {},
                timeout_ms = 2000, connect_timeout_ms = 1000, random = function() return 0.01 end }
    for k, v in pairs(opts or {}) do o[k] = v end
    return emr.client(o)
  end

  local function faults(list) return srv:control("POST", "/__fake/faults", { faults = list }) end
  local function requests() return srv:control("GET", "/__fake/requests").requests end
  local function state() return srv:control("GET", "/__fake/state") end

  local function make_cluster(name)
    local vc = assert(client:create_virtual_cluster{
      Name = name or "vc1",
      ContainerProvider = { Id = "my-eks", Type = "EKS", Info = { EksInfo = { Namespace = "spark" } } },
      Tags = { ["team.name"] = "data" },
    })
    return vc
  end

  setup(function()
    if have_http and have_fake then
      srv = fake.start("fake_emr", { "--job-seconds", "0.1", "--cancel-seconds", "0.1",
                                     "--terminate-seconds", "0.1", "--page-size", "2" })
    end
  end)
  teardown(function()
    if client then client:close() end
    if srv then srv:stop() end
  end)
  before_each(function()
    if srv then
      srv:control("POST", "/__fake/reset", {})
      if client then client:close() end
      client = new_client()
    end
  end)

  live("runs the virtual-cluster lifecycle", function()
    local vc = make_cluster()
    assert.matches("^[0-9a-z]+$", vc.Id)
    assert.equal("vc1", vc.Name)
    assert.matches(":/virtualclusters/" .. vc.Id .. "$", vc.Arn)
    local d = assert(client:describe_virtual_cluster{ Id = vc.Id })
    assert.equal("RUNNING", d.VirtualCluster.State)
    assert.equal("spark", d.VirtualCluster.ContainerProvider.Info.EksInfo.Namespace)
    assert.same({ ["team.name"] = "data" }, d.VirtualCluster.Tags)
    local list = assert(client:list_virtual_clusters{ States = { "RUNNING" },
                                                      ContainerProviderId = "my-eks" })
    assert.equal(1, #list.VirtualClusters)
    assert.equal(vc.Id, list.VirtualClusters[1].Id)
    assert.same({ Id = vc.Id }, assert(client:delete_virtual_cluster{ Id = vc.Id }))
    assert.equal("TERMINATING", assert(client:describe_virtual_cluster{ Id = vc.Id }).VirtualCluster.State)
    scheduler.sleep(0.25)
    assert.equal("TERMINATED", assert(client:describe_virtual_cluster{ Id = vc.Id }).VirtualCluster.State)
  end)

  live("runs a job to COMPLETED and lists it", function()
    local vc = make_cluster()
    local run = assert(client:start_job_run(start_params(vc.Id)))
    assert.equal(vc.Id, run.VirtualClusterId)
    assert.equal("nightly", run.Name)
    local d = assert(client:describe_job_run{ VirtualClusterId = vc.Id, Id = run.Id })
    assert.equal("PENDING", d.JobRun.State)
    assert.equal("s3://my-bucket/main.py", d.JobRun.JobDriver.SparkSubmitJobDriver.EntryPoint)
    assert.same({ ["spark.executor.memory"] = "2G" },
                d.JobRun.ConfigurationOverrides.ApplicationConfiguration[1].Properties)
    scheduler.sleep(0.4)
    d = assert(client:describe_job_run{ VirtualClusterId = vc.Id, Id = run.Id })
    assert.equal("COMPLETED", d.JobRun.State)
    assert.is_string(d.JobRun.FinishedAt)
    local l = assert(client:list_job_runs{ VirtualClusterId = vc.Id, States = { "COMPLETED" } })
    assert.equal(run.Id, l.JobRuns[1].Id)
  end)

  live("cancels a job and reports scripted failures", function()
    local vc = make_cluster()
    local run = assert(client:start_job_run(start_params(vc.Id)))
    srv:control("POST", "/__fake/jobs/" .. run.Id .. "/state", { state = "RUNNING" })
    assert.same({ Id = run.Id, VirtualClusterId = vc.Id },
                assert(client:cancel_job_run{ VirtualClusterId = vc.Id, Id = run.Id }))
    scheduler.sleep(0.25)
    local d = assert(client:describe_job_run{ VirtualClusterId = vc.Id, Id = run.Id })
    assert.equal("CANCELLED", d.JobRun.State)
    local out, err = client:cancel_job_run{ VirtualClusterId = vc.Id, Id = run.Id }
    assert.is_nil(out)
    assert.equal("ValidationException", err.aws_code)

    local run2 = assert(client:start_job_run(start_params(vc.Id)))
    srv:control("POST", "/__fake/jobs/" .. run2.Id .. "/state",
                { state = "FAILED", failureReason = "USER_ERROR", stateDetails = "Exit code 1" })
    d = assert(client:describe_job_run{ VirtualClusterId = vc.Id, Id = run2.Id })
    assert.equal("FAILED", d.JobRun.State)
    assert.equal("USER_ERROR", d.JobRun.FailureReason)
    assert.equal("Exit code 1", d.JobRun.StateDetails)
  end)

  live("paginates every List call", function()
    local vc = make_cluster()
    for _ = 1, 5 do assert(client:start_job_run(start_params(vc.Id))) end
    local pages, ids = 0, {}
    for page, err in client:paginate("ListJobRuns", { VirtualClusterId = vc.Id }) do
      assert.is_nil(err)
      pages = pages + 1
      for _, jr in ipairs(page.JobRuns) do ids[jr.Id] = true end
    end
    assert.equal(3, pages)                             -- page size 2
    local n = 0
    for _ in pairs(ids) do n = n + 1 end
    assert.equal(5, n)
    assert.equal(5, #assert(client:list_all("ListJobRuns", { VirtualClusterId = vc.Id })))
  end)

  live("manages job templates and tags", function()
    local t = assert(client:create_job_template{
      Name = "tpl", JobTemplateData = {
        ExecutionRoleArn = ROLE, ReleaseLabel = "emr-6.15.0-latest",
        JobDriver = { SparkSubmitJobDriver = { EntryPoint = "s3://my-bucket/${Script}" } },
        ParameterConfiguration = { Script = { Type = "STRING", DefaultValue = "main.py" } },
      } })
    assert.matches("^[0-9a-z]+$", t.Id)
    local d = assert(client:describe_job_template{ Id = t.Id })
    assert.equal("STRING", d.JobTemplate.JobTemplateData.ParameterConfiguration.Script.Type)
    assert.equal(1, #assert(client:list_job_templates{}).Templates)
    local vc = make_cluster()
    local run = assert(client:start_job_run{ VirtualClusterId = vc.Id, Name = "from-template",
                                             JobTemplateId = t.Id,
                                             JobTemplateParameters = { Script = "x.py" } })
    assert.is_string(run.Id)
    assert(client:tag_resource{ ResourceArn = vc.Arn, Tags = { a = "1", ["b c"] = "2" } })
    assert(client:untag_resource{ ResourceArn = vc.Arn, TagKeys = { "b c" } })
    assert.same({ ["team.name"] = "data", a = "1" },
                assert(client:list_tags_for_resource{ ResourceArn = vc.Arn }).Tags)
    assert.same({ Id = t.Id }, assert(client:delete_job_template{ Id = t.Id }))
    local out, err = client:describe_job_template{ Id = t.Id }
    assert.is_nil(out)
    assert.equal("ResourceNotFoundException", err.aws_code)
  end)

  live("manages endpoints", function()
    local vc = make_cluster()
    local e = assert(client:create_managed_endpoint{
      VirtualClusterId = vc.Id, Name = "ep", Type = "JUPYTER_ENTERPRISE_GATEWAY",
      ReleaseLabel = "emr-6.15.0-latest", ExecutionRoleArn = ROLE })
    assert.equal("ACTIVE", assert(client:describe_managed_endpoint{ VirtualClusterId = vc.Id, Id = e.Id })
      .Endpoint.State)
    assert.equal(1, #assert(client:list_managed_endpoints{ VirtualClusterId = vc.Id }).Endpoints)
    assert(client:delete_managed_endpoint{ VirtualClusterId = vc.Id, Id = e.Id })
  end)

  live("returns AWS errors with code, message, status and request id", function()
    local out, err = client:describe_job_run{ VirtualClusterId = "nosuchvc", Id = "nosuchjob" }
    assert.is_nil(out)
    assert.equal("aws", err.code)
    assert.equal("ResourceNotFoundException", err.aws_code)
    assert.equal(400, err.status)
    assert.matches("doesn't exist", err.message)
    assert.matches("^%x+%-", err.request_id)
    assert.is_false(err.retryable)
    assert.equal(1, #requests())
  end)

  live("is rejected by the fake with wrong credentials (the fake checks every signature)", function()
    local bad = new_client{ credentials = { access_key_id = CREDS.access_key_id,
                                            secret_access_key = "wrong" } }
    local out, err = bad:list_virtual_clusters{}
    bad:close()
    assert.is_nil(out)
    assert.equal("InvalidSignatureException", err.aws_code)
    assert.equal(403, err.status)
    assert.is_nil(tostring(err):find("wrong", 1, true))
    assert.equal(1, srv:control("GET", "/__fake/stats").signature_failures)
  end)

  -- faults: each call succeeds after retries
  local FAULTS = {
    { "429 throttling", { kind = "status", status = 429 } },
    { "429 EKSRequestThrottledException",
      { kind = "status", status = 429, code = "EKSRequestThrottledException" } },
    { "500", { kind = "status", status = 500 } },
    { "503", { kind = "status", status = 503 } },
    { "throttling in body __type",
      { kind = "status", status = 400, code = "ThrottlingException", style = "type" } },
    { "a reset connection", { kind = "reset" } },
    { "a reply slower than the timeout", { kind = "slow", seconds = 1.5 } },
    { "a truncated body", { kind = "truncate" } },
  }
  for _, f in ipairs(FAULTS) do
    live("recovers from " .. f[1], function()
      local vc = make_cluster()
      local c = new_client{ timeout_ms = 700 }
      f[2].match = { method = "GET", path_prefix = "/virtualclusters/" .. vc.Id }
      f[2].count = 2
      faults({ f[2] })
      local out, err = c:describe_virtual_cluster{ Id = vc.Id }
      c:close()
      assert.is_nil(err)
      assert.equal(vc.Id, out.VirtualCluster.Id)
      local gets = 0
      for _, r in ipairs(requests()) do
        if r.method == "GET" then gets = gets + 1 end
      end
      assert.equal(3, gets)
    end)
  end

  live("does not start a second job when the reply is lost", function()
    local vc = make_cluster()
    faults({ { kind = "lose_reply",
               match = { method = "POST", path_prefix = "/virtualclusters/" .. vc.Id } } })
    local run, err = client:start_job_run(start_params(vc.Id))
    assert.is_nil(err)
    local st = state()
    assert.equal(1, #st.jobRuns)
    assert.equal(run.Id, st.jobRuns[1].id)
    local bodies = {}
    for _, r in ipairs(requests()) do
      if r.method == "POST" and r.path:find("/jobruns", 1, true) then
        bodies[#bodies + 1] = json.decode(r.body)
      end
    end
    assert.equal(2, #bodies)
    assert.equal(bodies[1].clientToken, bodies[2].clientToken)
  end)

  live("gives up after max_attempts on persistent faults", function()
    faults({ { kind = "status", status = 503, count = 10 } })
    local out, err = client:list_virtual_clusters{}
    assert.is_nil(out)
    assert.equal(503, err.status)
    assert.equal(3, err.attempts)
    assert.equal(3, #requests())
  end)

  live("reports a 200 with an empty body from the server as a protocol error", function()
    local vc = make_cluster()
    for _, body in ipairs{ "", "{}", "[]" } do
      srv:reset()
      faults({ { kind = "status", status = 200, body = body,
                 match = { method = "POST", path_prefix = "/virtualclusters/" .. vc.Id } } })
      local out, err = client:start_job_run(start_params(vc.Id))
      assert.is_nil(out)
      assert.equal("json", err.code)
      assert.is_false(err.retryable)
      assert.equal(1, #requests())
    end
  end)

  live("reports reply headers over the limit clearly, without retrying", function()
    -- one header line over libcurl's 100 KB, and all of them over its 300 KB
    local big_one = { { "X-Big", string.rep("a", 120000) } }
    local big_all = {}
    for i = 1, 8 do big_all[i] = { "X-Big-" .. i, string.rep("b", 60000) } end
    for _, hs in ipairs{ big_one, big_all } do
      srv:reset()
      faults({ { kind = "status", status = 200, headers = hs, body = "{}", count = 5 } })
      local out, err = client:list_virtual_clusters{}
      assert.is_nil(out)
      assert.equal("http", err.code)
      assert.is_false(err.retryable)
      assert.matches("headers are over the size limit", err.message, 1, true)
      assert.equal(1, #requests())
    end
  end)

  -- libcurl re-sends a request by itself when a reused keep-alive connection turns out
  -- dead before any reply byte; POSTs go out with no_resend, so that re-send becomes a
  -- "reset" our retry loop counts, and the server sees exactly max_attempts requests.
  for _, inside in ipairs{ false, true } do
    local where = inside and " (Lua path, in a scheduler task)" or " (C client)"
    live("caps the requests the server sees at max_attempts, "
         .. "libcurl's silent re-send included" .. where, function()
      local function create()
        return client:create_virtual_cluster{
          Name = "x",
          ContainerProvider = { Id = "e", Type = "EKS", Info = { EksInfo = { Namespace = "n" } } } }
      end
      local function attempt()
        assert(client:list_virtual_clusters{})        -- a keep-alive connection to reuse
        faults({ { kind = "reset", silent = true, count = 10, match = { method = "POST" } } })
        return create()
      end
      local out, err
      if inside then
        local s = scheduler.new{}
        local t = s:spawn(attempt)
        s:run()
        s:close()
        local ok
        ok, out, err = t:result()
        assert.is_true(ok)
      else
        out, err = attempt()
      end
      assert.is_nil(out)
      assert.equal(3, err.attempts)
      local posts = 0
      for _, r in ipairs(requests()) do
        if r.method == "POST" then posts = posts + 1 end
      end
      assert.equal(3, posts)
    end)
  end

  live("sends nothing for bad input", function()
    local vc = make_cluster()
    local before = #requests()
    local BAD = {
      { "StartJobRun", start_params(vc.Id, { Name = "bad name!" }), "Name" },
      { "StartJobRun", start_params(vc.Id, { ExecutionRoleArn = "arn:aws:iam::<accountId>:role/x" }),
        "ExecutionRoleArn" },
      { "DescribeJobRun", { VirtualClusterId = vc.Id }, "Id" },
      { "CreateVirtualCluster", { Name = "x", ContainerProvider = { Id = "e", Type = "ECS" } },
        "ContainerProvider.Type" },
      { "ListJobRuns", { VirtualClusterId = vc.Id, MaxResults = "10" }, "MaxResults" },
    }
    for _, b in ipairs(BAD) do
      local out, err = client:call(b[1], b[2])
      assert.is_nil(out)
      assert.equal("validation", err.code)
      assert.equal(b[3], err.field)
    end
    assert.equal(before, #requests())
  end)

  live("is checked by the fake's model validation too", function()
    -- a request that passes our model but not the service: the fake answers ValidationException
    local vc = make_cluster()
    local out, err = client:start_job_run{ VirtualClusterId = vc.Id, Name = "no-driver" }
    assert.is_nil(out)
    assert.equal("ValidationException", err.aws_code)
    assert.equal(400, err.status)
  end)

  live("reuses one connection for many calls", function()
    local vc = make_cluster()
    for _ = 1, 20 do assert(client:describe_virtual_cluster{ Id = vc.Id }) end
    assert.equal(1, srv:control("GET", "/__fake/stats").connections)
  end)

  live("yields inside scheduler tasks, running calls concurrently", function()
    local vc = make_cluster()
    local s = scheduler.new{}
    local tasks = {}
    for i = 1, 4 do
      tasks[i] = s:spawn(function() return client:start_job_run(start_params(vc.Id)) end)
    end
    s:run()
    local ids = {}
    for i = 1, 4 do
      local ok, out = tasks[i]:result()
      assert.is_true(ok)
      assert.is_string(out.Id)
      ids[out.Id] = true
    end
    local n = 0
    for _ in pairs(ids) do n = n + 1 end
    assert.equal(4, n)
    s:close()
  end)
end)

-- The client memoizes validated requests for repeated parameter sets (what .sync polling
-- sends again and again); the memo must never change what is sent or what is refused.
describe("emr client request memo", function()
  local function url_of(c, id)
    local req = assert(c:describe_job_run{ VirtualClusterId = "vc0abc", Id = id })
    return req.url
  end

  it("gives the same request for repeated parameters, and the right one for each of many", function()
    local c = offline()
    local first = url_of(c, "jr0001")
    for _ = 1, 3 do assert.equal(first, url_of(c, "jr0001")) end
    for round = 1, 2 do
      for i = 1, 12 do   -- more ids than the memo keeps
        local id = string.format("jr%04d", i)
        assert.equal("https://emr-containers.us-east-1.amazonaws.com/virtualclusters/vc0abc/jobruns/" .. id,
          url_of(c, id), "round " .. round)
      end
    end
  end)

  it("still refuses an unknown member or a bad value after the good request was memoized", function()
    local c = offline()
    assert.truthy(c:describe_job_run{ VirtualClusterId = "vc0abc", Id = "jr0001" })
    local res, err = c:describe_job_run{ VirtualClusterId = "vc0abc", Id = "jr0001", Bogus = "x" }
    assert.is_nil(res)
    assert.equal("ValidationException", err.aws_code)
    assert.truthy(err.message:find("Bogus", 1, true))
    res, err = c:describe_job_run{ VirtualClusterId = "vc0abc", Id = "" }
    assert.is_nil(res)
    assert.equal("ValidationException", err.aws_code)
    res, err = c:describe_job_run{ VirtualClusterId = "vc0abc", Id = "" }
    assert.is_nil(res)
    assert.equal("ValidationException", err.aws_code)
  end)
end)
