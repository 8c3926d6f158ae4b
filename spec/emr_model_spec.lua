-- The emr-containers API model: generated data, validation, wire conversion.
local json = require "emrflow.json"
local emr = require "emrflow.emr"
local validate = require "emrflow.emr.validate"
local errors = require "emrflow.errors"

local model = emr.model

local DEBIAN_MODEL = "/usr/lib/python3/dist-packages/botocore/data/emr-containers/2020-10-01/service-2.json"
local PYTHON = "/usr/bin/python3"

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

-- A minimal valid StartJobRun (the Step Functions page's example, with real-looking values).
local function start_job_run_params()
  return {
    VirtualClusterId = "abc123def456", ClientToken = "tok-1", Name = "myjob",
    ExecutionRoleArn = "arn:aws:iam::123456789012:role/job-role",
    ReleaseLabel = "emr-6.2.0-latest",
    JobDriver = { SparkSubmitJobDriver = {
      EntryPoint = "s3://my-bucket/scripts/main.py",
      EntryPointArguments = { "60" },
      SparkSubmitParameters = "--conf spark.executor.instances=2 --conf spark.executor.memory=2G",
    } },
    ConfigurationOverrides = {
      ApplicationConfiguration = { {
        Classification = "spark-defaults",
        Properties = { ["spark.executor.instances"] = "2", ["spark.executor.memory"] = "2G" },
      } },
      MonitoringConfiguration = {
        PersistentAppUI = "ENABLED",
        CloudWatchMonitoringConfiguration = { LogGroupName = "emr-eks", LogStreamNamePrefix = "jobs" },
        S3MonitoringConfiguration = { LogUri = "s3://my-bucket/logs/" },
      },
    },
    Tags = { taskType = "sfn" },
  }
end

describe("emr.model (generated from botocore)", function()
  local OPS = {
    "CancelJobRun", "CreateJobTemplate", "CreateManagedEndpoint", "CreateVirtualCluster",
    "DeleteJobTemplate", "DeleteManagedEndpoint", "DeleteVirtualCluster", "DescribeJobRun",
    "DescribeJobTemplate", "DescribeManagedEndpoint", "DescribeVirtualCluster", "ListJobRuns",
    "ListJobTemplates", "ListManagedEndpoints", "ListTagsForResource", "ListVirtualClusters",
    "StartJobRun", "TagResource", "UntagResource",
    -- newer model (A9)
    "CreateSecurityConfiguration", "DescribeSecurityConfiguration", "ListSecurityConfigurations",
    "GetManagedEndpointSessionCredentials",
  }

  it("has every operation, with a snake_case client method each", function()
    local client = emr.client{ region = "us-east-1", env = {},
                               credentials = { access_key_id = "AK", secret_access_key = "SK" } }
    for _, op in ipairs(OPS) do
      assert.is_table(model.operations[op], op)
      local method = model.snake_case(op)
      assert.is_function(client[method], method)
    end
    assert.equal("start_job_run", model.snake_case("StartJobRun"))
    assert.equal("list_tags_for_resource", model.snake_case("ListTagsForResource"))
    assert.equal("get_managed_endpoint_session_credentials",
                 model.snake_case("GetManagedEndpointSessionCredentials"))
  end)

  it("carries the newer model's members (A9 drift)", function()
    local function has(shape, member)
      for _, m in ipairs(model.shapes[shape].members) do
        if m.name == member then return true end
      end
      return false
    end
    assert.is_true(has("StartJobRunRequest", "retryPolicyConfiguration"))
    assert.is_true(has("JobRun", "retryPolicyExecution"))
    assert.is_true(has("CreateVirtualClusterRequest", "securityConfigurationId"))
    assert.is_true(has("MonitoringConfiguration", "containerLogRotationConfiguration"))
    assert.equal(100, model.shapes.TemplateParameterInputMap.max)
    assert.equal(429, model.shapes.EKSRequestThrottledException.error.status)
  end)

  it("matches botocore's model for every operation and shape it has", function()
    local text = read_file(DEBIAN_MODEL)
    if not text then pending("botocore model not installed at " .. DEBIAN_MODEL) return end
    local doc = json.decode(text)
    for name, op in pairs(doc.operations) do
      local mine = model.operations[name]
      assert.is_table(mine, name)
      assert.equal(op.http.method, mine.method, name)
      assert.equal(op.http.requestUri, mine.uri, name)
      assert.equal(op.input and op.input.shape, mine.input, name)
      assert.equal(op.output and op.output.shape, mine.output, name)
    end
    -- shapes: same type, required and locations; constraints may only have been
    -- loosened by the newer model (A9)
    for name, s in pairs(doc.shapes) do
      local mine = model.shapes[name]
      assert.is_table(mine, name)
      assert.equal(s.type, mine.type, name)
      if s.type == "structure" then
        local req = {}
        for _, r in ipairs(s.required or {}) do req[#req + 1] = r end
        local mreq = {}
        for _, r in ipairs(mine.required) do mreq[#mreq + 1] = r end
        table.sort(req); table.sort(mreq)
        assert.same(req, mreq, name)
        local by = {}
        for _, m in ipairs(mine.members) do by[m.name] = m end
        for mname, m in pairs(s.members) do
          local mm = by[mname]
          assert.is_table(mm, name .. "." .. mname)
          assert.equal(m.shape, mm.shape, name .. "." .. mname)
          assert.equal(m.location, mm.location, name .. "." .. mname)
          assert.equal(m.locationName, mm.location_name, name .. "." .. mname)
          assert.equal(m.idempotencyToken == true, mm.idempotency_token == true, name .. "." .. mname)
        end
      else
        assert.equal(s.min, mine.min, name)
        if s.max and mine.max ~= s.max then assert.is_true(mine.max > s.max, name) end
        if s.enum then assert.same(s.enum, mine.enum, name) end
        if s.pattern and name ~= "KmsKeyArn" then assert.equal(s.pattern, mine.pattern, name) end
      end
    end
  end)
end)

describe("emr.model regular expressions", function()
  -- Every pattern of the model against probe values; Python's re.fullmatch decides.
  local PROBES = {
    "", "a", "abc", "ABC", "abc123", "a b", " ", "  x  ", "\t", "x\ny", "-", "_", "a.b-c_d/e#f",
    "${Param}", "${1x}", "my-namespace", "-bad-", "ns-", "arn:aws:iam::123456789012:role/job",
    "arn:aws:iam::123456789012:role/path/to/job", "arn:aws:iam::<accountId>:role/job",
    "arn:aws-cn:iam::123456789012:role/x", "arn:aws:sts::123456789012:assumed-role/r/s",
    "arn:aws:emr-containers:us-east-1:123456789012:/virtualclusters/abc",
    "arn:aws:emr-containers:us-east-1:123456789012:/virtualclusters/abc/jobruns/def",
    "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab", "s3://my-bucket/logs/", "s3://<mybucket>/x",
    "my-bucket", "xn--bucket", "bucket-s3alias", "QUJD", "QUI=", "QQ==", "QUJ", "10MB", "1.5G", "10",
    "émr", "日本", "a\u{1F600}b", "emr-6.2.0-latest", "0abc", "a_b-c",
  }

  it("agrees with Python's re.fullmatch on every model pattern", function()
    if not exists(PYTHON) then pending("no " .. PYTHON) return end
    local patterns, seen = {}, {}
    for _, s in pairs(model.shapes) do
      if s.pattern and not seen[s.pattern] then
        seen[s.pattern] = true
        patterns[#patterns + 1] = s.pattern
      end
    end
    table.sort(patterns)
    local cases = json.array({})
    for _, p in ipairs(patterns) do
      for _, v in ipairs(PROBES) do cases[#cases + 1] = json.array({ p, v }) end
    end
    local input = os.tmpname()
    local f = assert(io.open(input, "wb"))
    f:write(json.encode(cases))
    f:close()
    local script = "import json,re,sys\n" ..
      "cases=json.load(open(sys.argv[1],encoding='utf-8'))\n" ..
      "print(json.dumps([bool(re.fullmatch(p,v,re.DOTALL)) for p,v in cases]))\n"
    local pipe = assert(io.popen(PYTHON .. " -c \"" .. script .. "\" " .. input, "r"))
    local out = pipe:read("a")
    pipe:close()
    os.remove(input)
    local expected = json.decode(out)
    assert.equal(#cases, #expected)
    local mismatches = {}
    for i, c in ipairs(cases) do
      local got = validate.regex(c[1])(c[2])
      if got ~= expected[i] then
        mismatches[#mismatches + 1] = string.format("%s ~ %q: lua %s, python %s", c[1], c[2],
                                                    tostring(got), tostring(expected[i]))
      end
    end
    assert.same({}, mismatches)
  end)

  it("rejects unsupported syntax with a clear message", function()
    assert.has_error(function() validate.regex("a(b") end)
    assert.has_error(function() validate.regex("*a") end)
    local ok, err = pcall(validate.regex, "a\\q")
    assert.is_false(ok)
    assert.matches("unsupported escape", err)
  end)
end)

describe("emr.model.validate", function()
  it("accepts the Step Functions examples", function()
    assert.is_true(model.validate("StartJobRun", start_job_run_params()))
    assert.is_true(model.validate("CreateVirtualCluster", {
      Name = "MyVirtualCluster", ClientToken = "t",
      ContainerProvider = { Id = "montest-eks-cluster", Type = "EKS",
                            Info = { EksInfo = { Namespace = "spark" } } },
      Tags = { taskType = "sfn" },
    }))
    assert.is_true(model.validate("DeleteVirtualCluster", { Id = "abc123" }))
    assert.is_true(model.validate("ListVirtualClusters", {}))
    assert.is_true(model.validate("ListJobRuns", { VirtualClusterId = "abc", States = { "RUNNING", "FAILED" },
                                                   MaxResults = 10, CreatedAfter = "2015-08-30T00:00:00Z",
                                                   CreatedBefore = 1440979200 }))
  end)

  -- { description, operation, mutate(params) or params, field path, message fragment }
  local function sjr(mut)
    return function()
      local p = start_job_run_params()
      mut(p)
      return p
    end
  end
  local CASES = {
    { "missing required nested member", "StartJobRun",
      sjr(function(p) p.JobDriver.SparkSubmitJobDriver.EntryPoint = nil end),
      "JobDriver.SparkSubmitJobDriver.EntryPoint", "missing required parameter" },
    { "missing required top-level member", "StartJobRun", sjr(function(p) p.VirtualClusterId = nil end),
      "VirtualClusterId", "missing required parameter" },
    { "null counts as missing", "StartJobRun", sjr(function(p) p.VirtualClusterId = json.null end),
      "VirtualClusterId", "missing required parameter" },
    { "unknown member, camelCase hint", "StartJobRun", sjr(function(p) p.jobDriver = p.JobDriver end),
      "jobDriver", "unknown parameter (did you mean JobDriver?)" },
    { "unknown nested member", "StartJobRun",
      sjr(function(p) p.JobDriver.SparkSubmitJobDriver.Bogus = 1 end),
      "JobDriver.SparkSubmitJobDriver.Bogus", "unknown parameter" },
    { "enum", "StartJobRun",
      sjr(function(p) p.ConfigurationOverrides.MonitoringConfiguration.PersistentAppUI = "ON" end),
      "ConfigurationOverrides.MonitoringConfiguration.PersistentAppUI", "is not one of ENABLED, DISABLED" },
    { "pattern (placeholder account id)", "StartJobRun",
      sjr(function(p) p.ExecutionRoleArn = "arn:aws:iam::<accountId>:role/job" end),
      "ExecutionRoleArn", "does not match the pattern" },
    { "pattern (upper-case id)", "DescribeJobRun", { VirtualClusterId = "ABC", Id = "abc" },
      "VirtualClusterId", "does not match the pattern [0-9a-z]+" },
    { "min length", "StartJobRun", sjr(function(p) p.Name = "" end), "Name", "length must be at least 1" },
    { "max length", "StartJobRun", sjr(function(p) p.Name = string.rep("a", 65) end),
      "Name", "length must be at most 64" },
    { "list item path, 0-based", "StartJobRun",
      sjr(function(p) p.ConfigurationOverrides.ApplicationConfiguration[1].Classification = nil end),
      "ConfigurationOverrides.ApplicationConfiguration[0].Classification", "missing required parameter" },
    { "list item type", "StartJobRun",
      sjr(function(p) p.JobDriver.SparkSubmitJobDriver.EntryPointArguments = { "a", 2 } end),
      "JobDriver.SparkSubmitJobDriver.EntryPointArguments[1]", "expected a string, got integer" },
    { "list given a map", "StartJobRun",
      sjr(function(p) p.JobDriver.SparkSubmitJobDriver.EntryPointArguments = { a = "b" } end),
      "JobDriver.SparkSubmitJobDriver.EntryPointArguments", "expected a list" },
    { "map value type", "StartJobRun", sjr(function(p) p.Tags = { team = 5 } end),
      "Tags.team", "expected a string, got integer" },
    { "map key with dots", "StartJobRun",
      sjr(function(p) p.ConfigurationOverrides.ApplicationConfiguration[1].Properties["spark.x"] = "" end),
      'ConfigurationOverrides.ApplicationConfiguration[0].Properties["spark.x"]',
      "length must be at least 1" },
    { "map given a list", "StartJobRun", sjr(function(p) p.Tags = { "a" } end), "Tags", "expected a map" },
    { "structure given a string", "StartJobRun", sjr(function(p) p.JobDriver = "spark" end),
      "JobDriver", "expected an object" },
    { "union needs exactly one member", "CreateVirtualCluster",
      { Name = "vc", ClientToken = "t", ContainerProvider = { Id = "eks", Type = "EKS", Info = {} } },
      "ContainerProvider.Info", "exactly one of EksInfo must be set, got 0" },
    { "integer", "ListJobRuns", { VirtualClusterId = "abc", MaxResults = 1.5 }, "MaxResults",
      "expected an integer, got number" },
    { "list max items", "ListJobRuns",
      { VirtualClusterId = "abc", States = { "RUNNING", "RUNNING", "RUNNING", "RUNNING", "RUNNING", "RUNNING",
                                             "RUNNING", "RUNNING", "RUNNING", "RUNNING", "RUNNING" } },
      "States", "number of items must be at most 10" },
    { "list item enum", "ListJobRuns", { VirtualClusterId = "abc", States = { "DONE" } }, "States[0]",
      "is not one of" },
    { "timestamp", "ListJobRuns", { VirtualClusterId = "abc", CreatedAfter = "yesterday" }, "CreatedAfter",
      "expected a timestamp" },
    { "boolean", "ListVirtualClusters", { EksAccessEntryIntegrated = "yes" }, "EksAccessEntryIntegrated",
      "expected a boolean" },
    { "invalid UTF-8", "StartJobRun", sjr(function(p) p.Name = "\255" end), "Name", "not valid UTF-8" },
  }

  for _, c in ipairs(CASES) do
    it("rejects: " .. c[1], function()
      local params = type(c[3]) == "function" and c[3]() or c[3]
      local ok, err = model.validate(c[2], params)
      assert.is_nil(ok)
      assert.is_true(errors.is_error(err))
      assert.equal("validation", err.code)
      assert.equal("ValidationException", err.aws_code)
      assert.is_false(err.retryable)
      assert.equal(c[4], err.field)
      assert.truthy(err.message:find(c[4], 1, true), err.message)
      assert.truthy(err.message:find(c[5], 1, true), err.message)
      assert.truthy(tostring(err):find("ValidationException", 1, true))
    end)
  end

  it("lists every problem, in model order", function()
    local ok, err = model.validate("DescribeJobRun", { Id = "A", VirtualClusterId = "B", Extra = 1 })
    assert.is_nil(ok)
    local paths = {}
    for i, p in ipairs(err.problems) do paths[i] = p.path end
    assert.same({ "Id", "VirtualClusterId", "Extra" }, paths)
  end)

  it("never echoes sensitive values", function()
    local p = start_job_run_params()
    p.JobDriver.SparkSubmitJobDriver.SparkSubmitParameters = string.rep(" ", 3) -- fails .*\S.*
    p.ConfigurationOverrides.ApplicationConfiguration[1].Properties["spark.password"] = " "
    local ok, err = model.validate("StartJobRun", p)
    assert.is_nil(ok)
    assert.equal(2, #err.problems)
    for _, prob in ipairs(err.problems) do assert.matches("^value does not match", prob.message) end
  end)

  it("reports an unknown operation", function()
    local ok, err = model.validate("LaunchRocket", {})
    assert.is_nil(ok)
    assert.matches("unknown emr%-containers operation", err.message)
  end)
end)

describe("emr.model.to_wire", function()
  -- The wire botocore 1.29.27 sends (reference A3), in our model's query order.
  it("builds StartJobRun: URI label, camelCase body, map keys untouched", function()
    local w = model.to_wire("StartJobRun", start_job_run_params())
    assert.equal("POST", w.method)
    assert.equal("/virtualclusters/abc123def456/jobruns", w.path)
    assert.equal("", w.query)
    assert.is_nil(w.body.virtualClusterId)
    assert.equal("s3://my-bucket/scripts/main.py", w.body.jobDriver.sparkSubmitJobDriver.entryPoint)
    assert.same({ ["spark.executor.instances"] = "2", ["spark.executor.memory"] = "2G" },
                w.body.configurationOverrides.applicationConfiguration[1].properties)
    assert.equal("ENABLED", w.body.configurationOverrides.monitoringConfiguration.persistentAppUI)
    assert.equal("s3://my-bucket/logs/",
                 w.body.configurationOverrides.monitoringConfiguration.s3MonitoringConfiguration.logUri)
    assert.same({ taskType = "sfn" }, w.body.tags)
    assert.equal("tok-1", w.body.clientToken)
  end)

  it("escapes URI labels and query values", function()
    local w = model.to_wire("UntagResource", {
      ResourceArn = "arn:aws:emr-containers:us-east-1:123456789012:/virtualclusters/abc",
      TagKeys = { "a", "b c" } })
    assert.equal("DELETE", w.method)
    assert.equal("/tags/arn%3Aaws%3Aemr-containers%3Aus-east-1%3A123456789012%3A"
                 .. "%2Fvirtualclusters%2Fabc", w.path)
    assert.equal("tagKeys=a&tagKeys=b%20c", w.query)
    assert.is_nil(w.body)
  end)

  it("builds list queries: repeated keys, ISO 8601 timestamps, integers", function()
    local w = model.to_wire("ListJobRuns", {
      VirtualClusterId = "vc0abc", CreatedAfter = 1440892800, CreatedBefore = 1440979200.5,
      Name = "nightly", States = { "FAILED", "CANCELLED" }, MaxResults = 10 })
    assert.equal("GET", w.method)
    assert.equal("/virtualclusters/vc0abc/jobruns", w.path)
    assert.equal("createdBefore=2015-08-31T00%3A00%3A00.500000Z&createdAfter=2015-08-30T00%3A00%3A00Z"
                 .. "&name=nightly&states=FAILED&states=CANCELLED&maxResults=10", w.query)
    w = model.to_wire("ListVirtualClusters", { ContainerProviderId = "my-eks", ContainerProviderType = "EKS",
                                               States = { "RUNNING", "ARRESTED" }, MaxResults = 50,
                                               NextToken = "abc/def=" })
    assert.equal("containerProviderId=my-eks&containerProviderType=EKS&states=RUNNING&states=ARRESTED"
                 .. "&maxResults=50&nextToken=abc%2Fdef%3D", w.query)
  end)

  it("keeps empty lists and maps as [] and {}", function()
    local p = start_job_run_params()
    p.Tags = {}
    p.JobDriver.SparkSubmitJobDriver.EntryPointArguments = {}
    local w = model.to_wire("StartJobRun", p)
    local text = json.encode(w.body)
    assert.truthy(text:find('"tags":{}', 1, true), text)
    assert.truthy(text:find('"entryPointArguments":[]', 1, true), text)
  end)
end)

describe("emr.model.from_wire", function()
  it("renames structure members to PascalCase and leaves map keys alone", function()
    local body = json.decode([[{"jobRun": {"id": "jr1", "virtualClusterId": "vc1", "state": "COMPLETED",
      "arn": "arn:aws:emr-containers:us-east-1:123456789012:/virtualclusters/vc1/jobruns/jr1",
      "jobDriver": {"sparkSubmitJobDriver": {"entryPoint": "s3://b/m.py", "entryPointArguments": ["x"]}},
      "configurationOverrides": {"applicationConfiguration": [{"classification": "spark-defaults",
        "properties": {"spark.executor.memory": "2G", "camelKey": "v"},
        "configurations": [{"classification": "inner", "properties": {"innerKey": "1"}}]}],
        "monitoringConfiguration": {"persistentAppUI": "ENABLED"}},
      "tags": {"taskType": "sfn", "lowerKey": "x"}, "createdAt": "2024-01-01T00:00:00Z",
      "retryPolicyExecution": {"currentAttemptCount": 1}, "brandNewMember": {"keepMe": 1}}}]])
    local out = model.from_wire("DescribeJobRun", body)
    local jr = out.JobRun
    assert.equal("jr1", jr.Id)
    assert.equal("vc1", jr.VirtualClusterId)
    assert.equal("COMPLETED", jr.State)
    assert.equal("s3://b/m.py", jr.JobDriver.SparkSubmitJobDriver.EntryPoint)
    assert.same({ "x" }, jr.JobDriver.SparkSubmitJobDriver.EntryPointArguments)
    local ac = jr.ConfigurationOverrides.ApplicationConfiguration[1]
    assert.equal("spark-defaults", ac.Classification)
    assert.same({ ["spark.executor.memory"] = "2G", camelKey = "v" }, ac.Properties)
    assert.equal("inner", ac.Configurations[1].Classification)
    assert.same({ innerKey = "1" }, ac.Configurations[1].Properties)
    assert.equal("ENABLED", jr.ConfigurationOverrides.MonitoringConfiguration.PersistentAppUI)
    assert.same({ taskType = "sfn", lowerKey = "x" }, jr.Tags)
    assert.equal("2024-01-01T00:00:00Z", jr.CreatedAt)
    assert.equal(1, jr.RetryPolicyExecution.CurrentAttemptCount)
    assert.same({ keepMe = 1 }, jr.BrandNewMember)
    assert.is_nil(jr.id)
  end)

  it("keeps JSON shapes for re-encoding (empty maps stay objects)", function()
    local out = model.from_wire("ListTagsForResource", json.decode('{"tags": {}}'))
    assert.equal('{"Tags":{}}', json.encode(out))
    out = model.from_wire("ListJobRuns", json.decode('{"jobRuns": []}'))
    assert.equal('{"JobRuns":[]}', json.encode(out))
    out = model.from_wire("TagResource", json.decode('{}'))
    assert.equal('{}', json.encode(out))
  end)
end)

-- The C core's operation table (src/ef_emr_model.c) is generated from model.lua:
-- the committed file must be what the generator prints, so C and Lua read one model.
describe("the C model table", function()
  local core = require "emrflow.core"

  it("is what tools/gen-emr-model.lua generates from model.lua", function()
    local p = assert(io.popen("lua5.4 tools/gen-emr-model.lua lua/emrflow/emr/model.lua"))
    local generated = p:read("a")
    p:close()
    local committed = read_file("src/ef_emr_model.c")
    assert.is_truthy(committed, "src/ef_emr_model.c missing")
    assert.is_true(generated == committed,
      "src/ef_emr_model.c is stale: run lua5.4 tools/gen-emr-model.lua > src/ef_emr_model.c")
  end)

  it("knows every operation of the Lua model, and no other", function()
    local n = 0
    for name in pairs(model.operations) do
      n = n + 1
      assert.is_true(core.emr.operations[name], name)
    end
    for name in pairs(core.emr.operations) do assert.truthy(model.operations[name], name) end
    assert.is_true(n > 20)
  end)

  it("marshals a request as Step Functions spells it, onto the wire the model describes", function()
    local method, target, body = core.emr.build("ListJobRuns", {
      VirtualClusterId = "vc 1/2", States = { "RUNNING", "PENDING" }, MaxResults = 10,
      CreatedAfter = 1440938160.25, Name = "a&b" })
    assert.equal("GET", method)
    assert.equal("/virtualclusters/vc%201%2F2/jobruns?createdAfter=2015-08-30T12%3A36%3A00.250000Z"
                 .. "&name=a%26b&states=RUNNING&states=PENDING&maxResults=10", target)
    assert.is_nil(body)
    method, target, body = core.emr.build("StartJobRun", start_job_run_params())
    assert.equal("POST", method)
    assert.equal("/virtualclusters/abc123def456/jobruns", target)
    local doc = json.decode(body)
    assert.equal("tok-1", doc.clientToken)
    assert.equal("s3://my-bucket/scripts/main.py", doc.jobDriver.sparkSubmitJobDriver.entryPoint)
    assert.is_nil(doc.virtualClusterId)           -- a URI label, not a body member
    -- keys sorted at every level: the same parameters give the same bytes
    assert.equal(body, select(3, core.emr.build("StartJobRun", start_job_run_params())))
  end)

  it("refuses replies without the result and renames the others to PascalCase", function()
    local out, code, msg = core.emr.decode("DescribeJobRun", 200, "")
    assert.is_nil(out)
    assert.equal("json", code)
    assert.matches("empty body", msg, 1, true)
    out = assert(core.emr.decode("DescribeJobRun", 200,
      '{"jobRun":{"id":"j1","state":"RUNNING","tags":{"camelKey":"v"},"newMember":{"x":1}}}'))
    assert.equal("j1", out.JobRun.Id)
    assert.equal("RUNNING", out.JobRun.State)
    assert.same({ camelKey = "v" }, out.JobRun.Tags)   -- map keys are data
    assert.same({ x = 1 }, out.JobRun.NewMember)        -- newer than the model: renamed, kept
  end)
end)

-- Parameters cross into C as they are: what JSON cannot hold is named, never a crash.
describe("the C checks on Lua values", function()
  it("names functions, mixed tables and NUL-holding strings", function()
    local ok, err = validate.check("DescribeJobRun", { VirtualClusterId = function() end, Id = { 1, x = 2 } })
    assert.is_nil(ok)
    assert.equal("Id", err.field)                  -- members in model order
    assert.equal("expected a string, got table", err.problems[1].message)
    assert.equal("VirtualClusterId", err.problems[2].path)
    assert.equal("expected a string, got function", err.problems[2].message)
    ok, err = validate.check("DescribeJobRun", { VirtualClusterId = "ab\0cd", Id = "x" })
    assert.is_nil(ok)
    assert.matches('"ab\\0cd" does not match the pattern', err.message, 1, true)
  end)

  it("stops at a cycle instead of following it forever", function()
    local conf = { Classification = "spark-defaults" }
    conf.Configurations = { conf }
    local p = start_job_run_params()
    p.ConfigurationOverrides = { ApplicationConfiguration = { conf } }
    local ok, err = validate.check("StartJobRun", p)
    assert.is_nil(ok)
    assert.matches("nested too deeply", err.message, 1, true)
  end)
end)
