-- emrflow.sfn: the Step Functions client, on the wire (spec/support/fake_sfn.py) and against
-- an independent implementation (moto's server, skipped with a notice when absent).
local sfn = require "emrflow.sfn"
local json = require "emrflow.json"
local fake = require "support.fake"
local moto = require "support.moto"

local CREDS = { access_key_id = "AKIDSFNEXAMPLE", secret_access_key = "sfn-secret-KEY-do-not-print" }
local ROLE = "arn:aws:iam::123456789012:role/sfn-role"
local DEF = '{"StartAt":"P","States":{"P":{"Type":"Pass","Result":{"x":1},"End":true}}}'
local NO_FILES = { AWS_CONFIG_FILE = "/nonexistent/config",
                   AWS_SHARED_CREDENTIALS_FILE = "/nonexistent/creds" }

local function env(extra)
  local t = {}
  for k, v in pairs(NO_FILES) do t[k] = v end
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

local function header(req, name)
  for _, h in ipairs(req.headers) do
    if h[1]:lower() == name:lower() then return h[2] end
  end
end

describe("emrflow.sfn endpoint resolution", function()
  it("uses https://states.<region>.amazonaws.com by default", function()
    local c = sfn.client{ region = "eu-west-1", credentials = CREDS, env = env() }
    assert.equal("https://states.eu-west-1.amazonaws.com", c.endpoint)
  end)

  it("prefers AWS_ENDPOINT_URL_SFN to AWS_ENDPOINT_URL, and endpoint_url to both", function()
    local e = env{ AWS_REGION = "us-east-2", AWS_ENDPOINT_URL = "http://127.0.0.1:1",
                   AWS_ENDPOINT_URL_SFN = "http://127.0.0.1:2/" }
    assert.equal("http://127.0.0.1:2", sfn.client{ credentials = CREDS, env = e }.endpoint)
    e.AWS_ENDPOINT_URL_SFN = nil
    assert.equal("http://127.0.0.1:1", sfn.client{ credentials = CREDS, env = e }.endpoint)
    assert.equal("http://127.0.0.1:3",
      sfn.client{ credentials = CREDS, env = e, endpoint_url = "http://127.0.0.1:3" }.endpoint)
  end)

  it("returns a config error from every call when there is no region, and raises on misuse", function()
    local c = sfn.client{ credentials = CREDS, env = env() }
    local out, err = c:list_state_machines()
    assert.is_nil(out)
    assert.equal("config", err.code)
    assert.matches("region", err.message)
    assert.has_error(function() sfn.client{ regoin = "x" } end, "emrflow.sfn.client: unknown option 'regoin'")
    assert.has_error(function() c:call("NoSuchOperation", {}) end)
  end)
end)

describe("emrflow.sfn on the wire (fake_sfn)", function()
  local srv, client

  setup(function()
    srv = fake.start("fake_sfn", { page_size = 2 })
  end)
  teardown(function()
    if client then client:close() end
    if srv then srv:stop() end
  end)
  before_each(function()
    srv:reset()
    client = sfn.client{ region = "us-east-1", endpoint_url = srv.url, credentials = CREDS,
                         env = env(), random = function() return 0 end }
  end)

  it("speaks awsJson1_0: POST /, X-Amz-Target, the JSON content type, SigV4 for service states", function()
    local out, err = client:create_state_machine{ name = "wire", definition = DEF, roleArn = ROLE }
    assert.is_nil(err)
    assert.equal("arn:aws:states:us-east-1:123456789012:stateMachine:wire", out.stateMachineArn)
    local req = srv:requests()[1]
    assert.equal("POST", req.method)
    assert.equal("/", req.path)
    assert.equal("AWSStepFunctions.CreateStateMachine", header(req, "X-Amz-Target"))
    assert.equal("application/x-amz-json-1.0", header(req, "Content-Type"))
    assert.matches("^AWS4%-HMAC%-SHA256 Credential=AKIDSFNEXAMPLE/%d+/us%-east%-1/states/aws4_request",
      header(req, "Authorization"))
    local body = json.decode(req.body)
    assert.equal("wire", body.name)
    assert.equal(DEF, body.definition)
  end)

  it("returns AWS errors with code, message, status and request id, and no secret", function()
    local out, err = client:describe_state_machine{
      stateMachineArn = "arn:aws:states:us-east-1:123456789012:stateMachine:none" }
    assert.is_nil(out)
    assert.equal("StateMachineDoesNotExist", err.code)
    assert.equal(400, err.status)
    assert.matches("Does Not Exist", err.message)
    assert.is_string(err.request_id)
    assert.is_false(err.retryable)
    local text = tostring(err)
    assert.matches("StateMachineDoesNotExist %(HTTP 400%)", text)
    assert.not_matches("sfn%-secret", text)
    assert.equal(1, #srv:requests())        -- not retried
  end)

  it("checks required members before sending anything", function()
    local out, err = client:create_state_machine{ name = "x", definition = DEF }
    assert.is_nil(out)
    assert.equal("validation", err.code)
    assert.matches("roleArn", err.message)
    assert.equal(0, #srv:requests())
  end)

  it("retries throttling and 5xx replies, then succeeds", function()
    srv:faults{
      { kind = "status", status = 400, count = 1, headers = { ["x-amzn-ErrorType"] = "ThrottlingException" },
        body = { __type = "ThrottlingException", message = "Rate exceeded" } },
      { kind = "status", status = 503, count = 1, body = { message = "busy" } },
    }
    local out, err = client:list_state_machines()
    assert.is_nil(err)
    assert.same({}, out.stateMachines)
    assert.equal(3, #srv:requests())
    assert.equal(2, client.stats.retries)
  end)

  it("gives up after max_attempts with the last error", function()
    local c = sfn.client{ region = "us-east-1", endpoint_url = srv.url, credentials = CREDS, env = env(),
                          max_attempts = 2, random = function() return 0 end }
    srv:faults{ { kind = "status", status = 500, count = 5, body = { message = "broken" } } }
    local out, err = c:list_state_machines()
    assert.is_nil(out)
    assert.equal(500, err.status)
    assert.equal(2, err.attempts)
    assert.equal(2, #srv:requests())
    c:close()
  end)

  it("follows nextToken: paginate and list_all", function()
    for i = 1, 5 do
      assert(client:create_state_machine{ name = "m" .. i, definition = DEF, roleArn = ROLE })
    end
    local pages = 0
    for page, err in client:paginate("ListStateMachines") do
      assert.is_nil(err)
      assert.truthy(page)
      pages = pages + 1
    end
    assert.equal(3, pages)
    local all = assert(client:list_all("ListStateMachines"))
    assert.equal(5, #all)
    assert.equal("m4", client:find_state_machine("m4").name)
    assert.is_nil(client:find_state_machine("absent"))
  end)

  it("pages GetExecutionHistory", function()
    local sm = assert(client:create_state_machine{ name = "h", definition = DEF, roleArn = ROLE })
    local x = assert(client:start_execution{ stateMachineArn = sm.stateMachineArn, name = "run1",
                                             input = "{}" })
    srv:control("POST", "finish", { executionArn = x.executionArn, status = "SUCCEEDED", output = '{"x":1}',
                                    states = { "P" } })
    local events = assert(client:list_all("GetExecutionHistory", { executionArn = x.executionArn }))
    local types = {}
    for i, ev in ipairs(events) do types[i] = ev.type end
    assert.same({ "ExecutionStarted", "PassStateEntered", "PassStateExited", "ExecutionSucceeded" }, types)
    local history_calls = 0
    for _, req in ipairs(srv:requests()) do
      if header(req, "X-Amz-Target") == "AWSStepFunctions.GetExecutionHistory" then
        history_calls = history_calls + 1
      end
    end
    assert.equal(2, history_calls)          -- 4 events, 2 a page
  end)

  it("runs inside scheduler tasks: calls yield, several at once, back-off on the task's clock", function()
    local scheduler = require "emrflow.scheduler"
    local s = scheduler.new{ clock = "virtual" }
    local c = sfn.client{ region = "us-east-1", endpoint_url = srv.url, credentials = CREDS, env = env(),
                          random = function() return 0.99 end }
    srv:faults{ { kind = "status", status = 503, count = 1, body = { message = "busy" },
                  match = { body_contains = '"name":"t1"' } },
                { kind = "slow", seconds = 1.5, match = { body_contains = '"name":"t1"' } } }
    local tasks, finished = {}, {}
    for i = 1, 3 do
      tasks[i] = s:spawn(function()
        local out = assert(c:create_state_machine{ name = "t" .. i, definition = DEF, roleArn = ROLE })
        finished[#finished + 1] = i
        return out
      end)
    end
    for i = 1, 3 do
      s:run_until(tasks[i])
      local ok, out = tasks[i]:result()
      assert.is_true(ok, tostring(out))
      assert.equal("arn:aws:states:us-east-1:123456789012:stateMachine:t" .. i, out.stateMachineArn)
    end
    assert.equal(1, c.stats.retries)
    -- t1's slow retry did not hold the others up (t2 and t3 finish in either order)
    assert.equal(1, finished[3])
    assert.same({ 2, 3 }, { math.min(finished[1], finished[2]), math.max(finished[1], finished[2]) })
    assert.equal(3, #assert(c:list_all("ListStateMachines")))
    c:close()
    s:close()
  end)

  it("reports transport failures as retryable errors", function()
    local c = sfn.client{ region = "us-east-1", endpoint_url = "http://127.0.0.1:1", credentials = CREDS,
                          env = env(), max_attempts = 1, connect_timeout_ms = 2000 }
    local out, err = c:list_state_machines()
    assert.is_nil(out)
    assert.equal("connect", err.code)
    assert.is_true(err.retryable)
  end)
end)

describe("emrflow.sfn against moto", function()
  local srv, why, client

  setup(function()
    srv, why = moto.start{ execute = true }
    if srv then
      client = sfn.client{ region = "us-east-1", endpoint_url = srv.url, credentials = moto.credentials,
                           env = env() }
    end
  end)
  teardown(function()
    if client then client:close() end
    if srv then srv:stop() end
  end)

  local function needs_moto()
    if not srv then
      print("\nnotice: skipping the moto specs: " .. tostring(why))
      return false
    end
    return true
  end

  it("creates, describes, updates and finds a state machine", function()
    if not needs_moto() then return pending(why) end
    local out = assert(client:create_state_machine{ name = "moto-crud", definition = DEF, roleArn = ROLE })
    local arn = out.stateMachineArn
    local d = assert(client:describe_state_machine{ stateMachineArn = arn })
    assert.equal(DEF, d.definition)
    assert.equal("STANDARD", d.type)
    local def2 = DEF:gsub('"x":1', '"x":2')
    assert(client:update_state_machine{ stateMachineArn = arn, definition = def2 })
    assert.equal(def2, assert(client:describe_state_machine{ stateMachineArn = arn }).definition)
    assert.equal(arn, client:find_state_machine("moto-crud").stateMachineArn)
    local tags = { json.object_of("key", "team", "value", "data") }
    assert(client:tag_resource{ resourceArn = arn, tags = tags })
  end)

  it("starts an execution that moto runs, and reads its result and history", function()
    if not needs_moto() then return pending(why) end
    local sm = assert(client:create_state_machine{ name = "moto-run", roleArn = ROLE, definition =
      '{"StartAt":"Greet","States":{"Greet":{"Type":"Pass","Parameters":{"hello.$":"$.who"},"End":true}}}' })
    local x = assert(client:start_execution{ stateMachineArn = sm.stateMachineArn, name = "first",
                                             input = '{"who":"moto"}' })
    local d
    for _ = 1, 100 do
      d = assert(client:describe_execution{ executionArn = x.executionArn })
      if d.status ~= "RUNNING" then break end
      require("emrflow.scheduler").sleep(0.1)
    end
    assert.equal("SUCCEEDED", d.status)
    assert.same({ hello = "moto" }, json.decode(d.output))
    local events = assert(client:list_all("GetExecutionHistory", { executionArn = x.executionArn }))
    assert.equal("ExecutionStarted", events[1].type)
    assert.equal("ExecutionSucceeded", events[#events].type)
  end)

  it("reports moto's errors with their AWS code", function()
    if not needs_moto() then return pending(why) end
    local out, err = client:describe_execution{
      executionArn = "arn:aws:states:us-east-1:123456789012:execution:none:none" }
    assert.is_nil(out)
    assert.equal("ExecutionDoesNotExist", err.code)
    assert.equal(400, err.status)
  end)
end)
