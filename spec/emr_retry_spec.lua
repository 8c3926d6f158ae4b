-- Standard-mode retries: classification, back-off, quota, and the client's retry loop
-- (driven through an injected transport; the fault-injecting server is in emr_client_spec).
local json = require "emrflow.json"
local retry = require "emrflow.emr.retry"
local emr = require "emrflow.emr"
local errors = require "emrflow.errors"
local scheduler = require "emrflow.scheduler"

local CREDS = { access_key_id = "AKIDEXAMPLE",
                secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" }

local function reply(status, body, headers)
  local hs = { { "Content-Type", "application/json" }, { "x-amzn-RequestId", "req-" .. status } }
  for _, h in ipairs(headers or {}) do hs[#hs + 1] = h end
  return { status = status, headers = hs, body = type(body) == "table" and json.encode(body) or body or "" }
end

local function aws_error(status, code, message)
  return reply(status, { message = message or code }, { { "x-amzn-ErrorType", code .. ":http://internal/" } })
end

local OK_START = reply(200, { id = "jr1", name = "j", arn = "arn", virtualClusterId = "vc1" })

-- A client whose transport plays `script` (a list of replies or {nil, err}); records requests.
local function scripted(script, opts)
  local sent = {}
  local o = { region = "us-east-1", endpoint_url = "https://emr.example", credentials = CREDS, env = {},
              random = function() return 0.5 end }
  for k, v in pairs(opts or {}) do o[k] = v end
  local n = 0
  o.transport = function(req)
    n = n + 1
    sent[#sent + 1] = req
    local r = script[n] or script[#script]
    if r.err then return nil, r.err end
    return r
  end
  return emr.client(o), sent
end

-- Runs fn inside a virtual-clock scheduler task; returns the task's values and the
-- virtual seconds that passed.
local function virtual(fn)
  local s = scheduler.new{ clock = "virtual", start = 1000 }
  local t = s:spawn(fn)
  local results = table.pack(s:run_until(t))
  assert(results[1], results[2])
  return s:now() - 1000, table.unpack(results, 2, results.n)
end

local START = { VirtualClusterId = "vc1", Name = "j", ExecutionRoleArn = "arn:aws:iam::123456789012:role/r",
                ReleaseLabel = "emr-6.2.0-latest",
                JobDriver = { SparkSubmitJobDriver = { EntryPoint = "s3://b/x.py" } } }

describe("retry.classify", function()
  local function aws(code, status) return errors.new{ code = "aws", aws_code = code, status = status } end
  local CASES = {
    { aws("ThrottlingException", 400), "throttling" },
    { aws("RequestThrottledException", 400), "throttling" },
    { aws("EKSRequestThrottledException", 429), "throttling" },
    { aws("TooManyRequestsException", 429), "throttling" },
    { aws("ProvisionedThroughputExceededException", 400), "throttling" },
    { aws("SlowDown", 503), "throttling" },
    { aws("SomethingNew", 429), "throttling" },
    { aws("InternalServerException", 500), "transient" },
    { aws("502", 502), "transient" },
    { aws("ServiceUnavailableException", 503), "transient" },
    { aws("504", 504), "transient" },
    { aws("RequestTimeout", 400), "transient" },
    { aws("RequestTimeoutException", 408), "transient" },
    { aws("PriorRequestNotComplete", 400), "transient" },
    { aws("ValidationException", 400), nil },
    { aws("ResourceNotFoundException", 400), nil },
    { aws("ValidationException", 500), nil },
    { aws("AccessDeniedException", 403), nil },
    { aws("501", 501), nil },
    { errors.new{ code = "reset" }, "transient" },
    { errors.new{ code = "connect" }, "transient" },
    { errors.new{ code = "truncated" }, "transient" },
    { errors.new{ code = "dns" }, "transient" },
    { errors.new{ code = "timeout" }, "timeout" },
    { errors.new{ code = "tls", retryable = true }, nil },
    { errors.new{ code = "json" }, nil },
    { errors.new{ code = "validation", aws_code = "ValidationException" }, nil },
  }
  for _, c in ipairs(CASES) do
    it(string.format("%s / %s / %s -> %s", c[1].code, tostring(c[1].aws_code), tostring(c[1].status),
                     tostring(c[2])), function()
      assert.equal(c[2], retry.classify(c[1]))
    end)
  end
end)

describe("retry policy", function()
  it("backs off random(0,1) * min(20, 2^i)", function()
    local p = retry.new{ max_attempts = 10, random = function() return 1 end }
    local got = {}
    for i = 0, 7 do got[#got + 1] = p:delay(i) end
    assert.same({ 1, 2, 4, 8, 16, 20, 20, 20 }, got)
    p = retry.new{ random = function() return 0.25 end }
    assert.equal(0.25, p:delay(0))
    assert.equal(0.5, p:delay(1))
  end)

  it("spends 5 tokens per retry, 10 after a timeout, and refunds on success", function()
    local p = retry.new{ max_attempts = 3, random = function() return 0 end }
    assert.equal(500, p.capacity)
    local e = errors.new{ code = "aws", aws_code = "ThrottlingException", status = 400 }
    local d, cost = p:should_retry(e, 1)
    assert.equal(0, d); assert.equal(5, cost); assert.equal(495, p.capacity)
    local _, cost2 = p:should_retry(errors.new{ code = "timeout" }, 2)
    assert.equal(10, cost2); assert.equal(485, p.capacity)
    assert.same({ nil, "max attempts" }, { p:should_retry(e, 3) })
    p:on_success(10)
    assert.equal(495, p.capacity)
    p:on_success(nil)
    assert.equal(496, p.capacity)
    for _ = 1, 10 do p:on_success(nil) end
    assert.equal(500, p.capacity)                      -- never above the maximum
    local bad = errors.new{ code = "aws", aws_code = "ValidationException", status = 400 }
    assert.same({ nil, "not retryable" }, { p:should_retry(bad, 1) })
  end)

  it("stops retrying when the quota is empty", function()
    local p = retry.new{ max_attempts = 3, quota = 12 }
    local e = errors.new{ code = "aws", aws_code = "InternalServerException", status = 500 }
    assert.truthy(p:should_retry(e, 1))
    assert.truthy(p:should_retry(e, 1))
    assert.same({ nil, "retry quota exhausted" }, { p:should_retry(e, 1) })
    assert.equal(2, p.capacity)
  end)

  it("rejects bad options", function()
    assert.has_error(function() retry.new{ max_attempts = 0 } end)
    assert.has_error(function() retry.new{ random = 3 } end)
  end)
end)

describe("client retries", function()
  it("retries throttling, then succeeds; one token, re-signed each attempt", function()
    local clock = 1440938160
    local client, sent = scripted({ aws_error(400, "ThrottlingException", "Rate exceeded"),
                                    aws_error(429, "EKSRequestThrottledException"), OK_START },
                                  { time = function() clock = clock + 1; return clock end })
    local waited, out, err = virtual(function() return client:start_job_run(START) end)
    assert.is_nil(err)
    assert.equal("jr1", out.Id)
    assert.equal(3, #sent)
    assert.equal(0.5 * 1 + 0.5 * 2, waited)
    local tokens, dates = {}, {}
    for i, r in ipairs(sent) do
      tokens[i] = json.decode(r.body).clientToken
      for _, h in ipairs(r.headers) do if h[1] == "X-Amz-Date" then dates[i] = h[2] end end
    end
    assert.matches("^%x+%-%x+%-4%x+%-[89ab]%x+%-%x+$", tokens[1])
    assert.equal(tokens[1], tokens[2])
    assert.equal(tokens[1], tokens[3])
    assert.are_not.equal(dates[1], dates[2])
    assert.are_not.equal(dates[2], dates[3])
    assert.equal(495, client.retry.capacity)           -- 2 retries cost 10, the success refunded 5
  end)

  it("gives up after max_attempts with the last error", function()
    local client, sent = scripted({ aws_error(500, "InternalServerException", "boom") })
    local _, out, err = virtual(function()
      return client:describe_job_run{ VirtualClusterId = "vc1", Id = "jr1" }
    end)
    assert.is_nil(out)
    assert.equal(3, #sent)
    assert.equal("InternalServerException", err.aws_code)
    assert.equal(500, err.status)
    assert.equal("boom", err.message)
    assert.equal("req-500", err.request_id)
    assert.is_true(err.retryable)
    assert.equal(3, err.attempts)
    assert.equal("DescribeJobRun", err.operation)
  end)

  local NEVER = {
    { "ValidationException", 400 }, { "ResourceNotFoundException", 400 }, { "AccessDeniedException", 403 },
  }
  for _, c in ipairs(NEVER) do
    it("never retries " .. c[1], function()
      local client, sent = scripted({ aws_error(c[2], c[1], "no") , OK_START })
      local _, out, err = virtual(function() return client:start_job_run(START) end)
      assert.is_nil(out)
      assert.equal(1, #sent)
      assert.equal(c[1], err.aws_code)
      assert.is_false(err.retryable)
    end)
  end

  it("retries transient network errors but not TLS failures", function()
    local client, sent = scripted({
      { err = errors.new{ code = "reset", message = "connection reset", retryable = true } },
      { err = errors.new{ code = "timeout", message = "timed out", retryable = true } },
      OK_START })
    local _, out = virtual(function() return client:start_job_run(START) end)
    assert.equal("jr1", out.Id)
    assert.equal(3, #sent)
    client, sent = scripted({
      { err = errors.new{ code = "tls", message = "certificate", retryable = true } } })
    local _, out2, err = virtual(function() return client:start_job_run(START) end)
    assert.is_nil(out2)
    assert.equal(1, #sent)
    assert.equal("tls", err.code)
  end)

  it("honours max_attempts and AWS_MAX_ATTEMPTS", function()
    local client, sent = scripted({ aws_error(503, "ServiceUnavailableException") }, { max_attempts = 5 })
    virtual(function() return client:list_virtual_clusters{} end)
    assert.equal(5, #sent)
    client, sent = scripted({ aws_error(503, "ServiceUnavailableException") },
                            { env = { AWS_MAX_ATTEMPTS = "2" } })
    virtual(function() return client:list_virtual_clusters{} end)
    assert.equal(2, #sent)
    client, sent = scripted({ aws_error(503, "ServiceUnavailableException") },
                            { env = { AWS_MAX_ATTEMPTS = "2" }, max_attempts = 4 })
    virtual(function() return client:list_virtual_clusters{} end)
    assert.equal(4, #sent)
  end)

  it("caps the back-off at 20 s", function()
    local client = scripted({ aws_error(500, "InternalServerException") },
                            { max_attempts = 8, random = function() return 1 end })
    local waited = virtual(function() return client:list_virtual_clusters{} end)
    assert.equal(1 + 2 + 4 + 8 + 16 + 20 + 20, waited)
  end)

  it("fails fast once the client's retry quota is spent, and refills on success", function()
    local client, sent = scripted({ aws_error(500, "InternalServerException") }, { retry_quota = 10 })
    virtual(function() return client:list_virtual_clusters{} end)
    assert.equal(3, #sent)                             -- two retries: 10 tokens
    local _, _, err = virtual(function() return client:list_virtual_clusters{} end)
    assert.equal(4, #sent)                             -- no retry left
    assert.is_true(err.quota_exhausted)
    assert.equal(0, client.retry.capacity)
  end)

  it("uses the caller's client_token on every attempt", function()
    local client, sent = scripted({ aws_error(500, "InternalServerException"), OK_START })
    virtual(function() return client:start_job_run(START, { client_token = "my-token" }) end)
    assert.equal("my-token", json.decode(sent[1].body).clientToken)
    assert.equal("my-token", json.decode(sent[2].body).clientToken)
    client, sent = scripted({ OK_START })
    local p = {}
    for k, v in pairs(START) do p[k] = v end
    p.ClientToken = "param-token"
    virtual(function() return client:start_job_run(p, { client_token = "ignored" }) end)
    assert.equal("param-token", json.decode(sent[1].body).clientToken)
  end)

  it("makes a fresh token for each logical call", function()
    local client, sent = scripted({ OK_START })
    virtual(function() client:start_job_run(START); return client:start_job_run(START) end)
    assert.are_not.equal(json.decode(sent[1].body).clientToken, json.decode(sent[2].body).clientToken)
  end)
end)
