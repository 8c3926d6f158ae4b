-- emrflow.sfn: the AWS Step Functions client (protocol awsJson1_0).
--
--   local sfn = require "emrflow.sfn"
--   local client = sfn.client{
--     region = "us-east-1", endpoint_url = nil, profile = nil,
--     credentials = nil,          -- { access_key_id =, secret_access_key =, session_token = }
--                                 -- or a provider with :get(); default: emrflow.credentials' chain
--     max_attempts = nil,         -- else AWS_MAX_ATTEMPTS / the profile (default 3)
--     env = nil,                  -- table read instead of os.getenv (specs)
--     timeout_ms = 60000, connect_timeout_ms = 10000, ca_bundle = nil,
--     random = nil,               -- function() --> [0,1): back-off jitter (specs)
--     transport = nil,            -- function(request) --> response | nil, err (specs)
--   }
--   local out, err = client:create_state_machine{ name = "n", definition = "{...}", roleArn = "arn:..." }
--   client:call("DescribeExecution", { executionArn = arn })      -- the same, by operation name
--   for page, err in client:paginate("GetExecutionHistory", { executionArn = arn }) do ... end
--   client:list_all("ListStateMachines")   --> every item of every page | nil, err
--
-- Parameters and results are the API's JSON members, camelCase as AWS spells them
-- (stateMachineArn, roleArn, ...); timestamps come back as epoch seconds. Every call
-- returns result | nil, err; err = { code =, message =, status =, request_id =, retryable = }
-- with __tostring (code is the AWS error code, such as "StateMachineDoesNotExist", or the
-- transport's: "connect", "timeout", ...). No error ever holds a secret.
--
-- Endpoint: endpoint_url=, AWS_ENDPOINT_URL_SFN, AWS_ENDPOINT_URL, the profile's
-- ([services] sfn, endpoint_url), else https://states.<region>.amazonaws.com.
-- Retries: the SDKs' standard mode through emrflow.emr.retry (throttling, 5xx and network
-- errors; at most max_attempts attempts; full-jitter back-off capped at 20 s; retry quota).
-- Inside a scheduler task HTTP yields (scheduler.http); outside, it blocks on the client's
-- own poller, which keeps its connections alive.
local json = require "emrflow.json"
local sigv4 = require "emrflow.sigv4"
local scheduler = require "emrflow.scheduler"
local core = require "emrflow.core"
local errors = require "emrflow.errors"
local config = require "emrflow.config"
local retry = require "emrflow.emr.retry"

local M = {}

local fmt = string.format

M.TARGET_PREFIX = "AWSStepFunctions."
M.CONTENT_TYPE = "application/x-amz-json-1.0"
M.SIGNING_NAME = "states"

-- Operations: the members a request must have (checked before anything is sent), and for
-- paginated ones the list member of a page.
M.operations = {
  CreateStateMachine = { required = { "name", "definition", "roleArn" } },
  UpdateStateMachine = { required = { "stateMachineArn" } },
  DescribeStateMachine = { required = { "stateMachineArn" } },
  DeleteStateMachine = { required = { "stateMachineArn" } },
  ListStateMachines = { required = {}, items = "stateMachines" },
  PublishStateMachineVersion = { required = { "stateMachineArn" } },
  ListStateMachineVersions = { required = { "stateMachineArn" }, items = "stateMachineVersions" },
  CreateStateMachineAlias = { required = { "name", "routingConfiguration" } },
  UpdateStateMachineAlias = { required = { "stateMachineAliasArn" } },
  DescribeStateMachineAlias = { required = { "stateMachineAliasArn" } },
  ListStateMachineAliases = { required = { "stateMachineArn" }, items = "stateMachineAliases" },
  ValidateStateMachineDefinition = { required = { "definition" } },
  StartExecution = { required = { "stateMachineArn" } },
  DescribeExecution = { required = { "executionArn" } },
  ListExecutions = { required = {}, items = "executions" },
  GetExecutionHistory = { required = { "executionArn" }, items = "events" },
  StopExecution = { required = { "executionArn" } },
  TagResource = { required = { "resourceArn", "tags" } },
  ListTagsForResource = { required = { "resourceArn" } },
}

-- "CreateStateMachine" --> "create_state_machine"
function M.snake_case(name)
  return (name:gsub("(%l)(%u)", "%1_%2"):lower())
end

M.methods = {}
for name in pairs(M.operations) do M.methods[M.snake_case(name)] = name end

local Client = {}
Client.__index = Client

local OPTIONS = {
  region = "string", endpoint_url = "string", profile = "string", credentials = "table",
  max_attempts = "number", env = "table", timeout_ms = "number", connect_timeout_ms = "number",
  ca_bundle = "string", random = "function", transport = "function", retry_quota = "number",
  user_agent = "string",
}

local function check_options(opts)
  config.check_options("emrflow.sfn.client", OPTIONS, opts, 3)
  if opts.endpoint_url and not opts.endpoint_url:match("^https?://[^/?#%s]+[^?#%s]*$") then
    error("emrflow.sfn.client: option 'endpoint_url' must be an http:// or https:// URL", 3)
  end
end

-- Region, endpoint and retry settings. Problems of the environment (no region, a bad
-- profile) are kept and returned by every call, as the emr-containers client does.
local function configure(self, opts)
  local cfg, err = config.resolve{ region = opts.region, profile = opts.profile, env = opts.env,
                                   max_attempts = opts.max_attempts, ca_bundle = opts.ca_bundle,
                                   require_region = opts.endpoint_url == nil }
  if not cfg then
    self.config_error = err
    return nil
  end
  self.region = cfg.region or "us-east-1"
  local url = opts.endpoint_url
  if not url then
    url, err = config.endpoint_for("states", cfg)
    if not url then
      self.config_error = err
      return cfg
    end
  end
  self.endpoint = url:gsub("/+$", "")
  self.ca_bundle = opts.ca_bundle or cfg.ca_bundle
  return cfg
end

local function credentials_provider(opts, cfg)
  local c = opts.credentials
  if not c then
    return require("emrflow.credentials").chain{ profile = opts.profile, env = opts.env, config = cfg }
  end
  if type(c.get) == "function" then return c end
  if type(c.access_key_id) == "string" and type(c.secret_access_key) == "string" then
    return { get = function() return c end }
  end
  error("emrflow.sfn.client: option 'credentials' needs access_key_id and secret_access_key "
        .. "(or a provider with a get method)", 3)
end

--- sfn.client(opts): a Step Functions client. Misuse raises; a missing region or a bad
-- profile is returned by every call as nil, err.
function M.client(opts)
  opts = opts or {}
  check_options(opts)
  local self = setmetatable({
    timeout_ms = opts.timeout_ms or 60000,
    connect_timeout_ms = opts.connect_timeout_ms or 10000,
    transport = opts.transport,
    user_agent = opts.user_agent or ("emrflow lua/" .. _VERSION:match("%d+%.%d+")),
    stats = { calls = 0, attempts = 0, retries = 0 },
  }, Client)
  local ok, cfg = pcall(configure, self, opts)
  if not ok then error(cfg, 2) end
  if cfg and not self.config_error then
    self.provider = credentials_provider(opts, cfg)
  end
  self.retry = retry.new{ max_attempts = opts.max_attempts or (cfg and cfg.max_attempts) or 3,
                          random = opts.random, quota = opts.retry_quota }
  self.signer = sigv4.signer{ service = M.SIGNING_NAME }
  return self
end
M.new = M.client

-- ----------------------------------------------------------------------------
-- Replies
-- ----------------------------------------------------------------------------

local function header(resp, name)
  for _, h in ipairs(resp.headers or {}) do
    if h[1]:lower() == name then return h[2] end
  end
  return nil
end

local function request_id(resp)
  return header(resp, "x-amzn-requestid") or header(resp, "x-amz-request-id")
end

-- An HTML page where Step Functions answers JSON (a proxy, a load balancer, a server that
-- is not Step Functions): a short message with the page's title instead of its markup.
local function html_message(body, status)
  if not body:match("^%s*<") then return nil end
  local title = body:match("<[Tt][Ii][Tt][Ll][Ee][^>]*>%s*(.-)%s*</")
  title = title and title:gsub("%s+", " "):sub(1, 120)
  return ("the endpoint answered HTTP %d with an HTML page%s instead of Step Functions' JSON "
    .. "(is it a Step Functions endpoint?)"):format(status, (title and title ~= "")
      and (' ("' .. title .. '")') or "")
end

-- The error of a reply with status >= 300: the code from x-amzn-ErrorType, else the
-- body's __type (after the last '#'), else code/Code, else the status; the message from
-- message/Message.
function M.parse_error(resp, operation)
  local body = resp.body or ""
  local doc
  if body ~= "" then
    local ok, v = pcall(json.decode, body)
    if ok and type(v) == "table" and not json.is_array(v) then doc = v end
  end
  local code = header(resp, "x-amzn-errortype")
  code = code and code:match("^([^:]+)")
  if not code and doc then
    local t = doc.__type or doc.code or doc.Code
    if type(t) == "string" and t ~= "" then code = t:match("([^#]*)$") end
  end
  code = code or tostring(resp.status)
  local message = doc and (doc.message or doc.Message)
  if type(message) ~= "string" then
    if body ~= "" and not doc then
      message = html_message(body, resp.status) or body:gsub("%s+", " "):sub(1, 200)
    else
      message = "HTTP " .. resp.status
    end
  end
  local e = errors.new{ code = code, aws_code = code, status = resp.status, message = message,
                        request_id = request_id(resp), operation = operation }
  e.retryable = retry.classify(e) ~= nil
  return e
end

local function decode_result(resp, operation)
  local body = resp.body or ""
  if body == "" then return json.object {} end
  local ok, v = pcall(json.decode, body)
  if ok and type(v) == "table" and not json.is_array(v) then return v end
  return nil, errors.new{ code = "json", status = resp.status, request_id = request_id(resp),
                          operation = operation, retryable = false,
                          message = operation .. ": the reply is not a JSON object" }
end

local function transport_error(err, operation)
  local e = {}
  if type(err) == "table" then
    for k, v in pairs(err) do e[k] = v end
  else
    e.code, e.message = "http", tostring(err)
  end
  e.code = e.code or "http"
  e.operation = operation
  e = errors.new(e)
  e.retryable = retry.classify(e) ~= nil
  return e
end

-- ----------------------------------------------------------------------------
-- Sending
-- ----------------------------------------------------------------------------

function Client:_send(req)
  if self.transport then return self.transport(req) end
  if scheduler.current() then return scheduler.http(req) end
  if not self.poller then self.poller = core.http.poller{ max_connections = 4 } end
  return scheduler.exchange(self.poller, req)
end

function Client:close()
  if self.poller then
    self.poller:close()
    self.poller = nil
  end
end
Client.__close = Client.close

function Client:_credentials()
  local c, err = self.provider:get()
  if c then return c end
  if type(err) ~= "table" then
    err = errors.new{ code = "credentials", retryable = false, message = tostring(err or "no credentials") }
  end
  return nil, err
end

local function check_params(operation, params)
  local op = M.operations[operation]
  if not op then error(fmt("emrflow.sfn: unknown Step Functions operation '%s'", tostring(operation)), 3) end
  if params == nil then return json.object {} end
  if type(params) ~= "table" then
    error(fmt("emrflow.sfn: %s parameters must be a table, got %s", operation, type(params)), 3)
  end
  return params
end

local function missing_member(operation, params)
  for _, name in ipairs(M.operations[operation].required) do
    local v = params[name]
    if v == nil or v == json.null then
      return errors.new{ code = "validation", retryable = false, operation = operation,
                         message = fmt("%s: missing required parameter '%s' (nothing was sent)",
                                       operation, name) }
    end
  end
  return nil
end

local function build(self, operation, params)
  return {
    method = "POST", url = self.endpoint .. "/", body = json.encode(params),
    headers = { { "Content-Type", M.CONTENT_TYPE }, { "X-Amz-Target", M.TARGET_PREFIX .. operation } },
  }
end

local function signed_request(self, req, creds, payload_hash)
  local s = self.signer:sign{ method = req.method, url = req.url, headers = req.headers, body = req.body,
                              region = self.region, credentials = creds, payload_hash = payload_hash }
  local hs = s.headers
  hs[#hs + 1] = { "User-Agent", self.user_agent }
  return { method = req.method, url = req.url, headers = hs, body = req.body,
           timeout_ms = self.timeout_ms, connect_timeout_ms = self.connect_timeout_ms,
           ca_bundle = self.ca_bundle }, s.payload_hash
end

--- client:call(operation, params) --> result | nil, err
function Client:call(operation, params)
  params = check_params(operation, params)
  if self.config_error then return nil, self.config_error end
  local err = missing_member(operation, params)
  if err then return nil, err end
  local req = build(self, operation, params)
  self.stats.calls = self.stats.calls + 1
  local attempt, last_cost, payload_hash = 0, nil, nil
  while true do
    attempt = attempt + 1
    self.stats.attempts = self.stats.attempts + 1
    local creds
    creds, err = self:_credentials()     -- each attempt: refreshed credentials, fresh X-Amz-Date
    if not creds then return nil, err end
    local http
    http, payload_hash = signed_request(self, req, creds, payload_hash)
    local resp, terr = self:_send(http)
    if resp and resp.status >= 200 and resp.status < 300 then
      self.retry:on_success(last_cost)
      self.last_request_id = request_id(resp)
      return decode_result(resp, operation)
    end
    err = resp and M.parse_error(resp, operation) or transport_error(terr, operation)
    local delay, cost = self.retry:should_retry(err, attempt)
    if not delay then
      err.attempts = attempt
      return nil, err
    end
    last_cost = cost
    self.stats.retries = self.stats.retries + 1
    if delay > 0 then scheduler.sleep(delay) end
  end
end

for snake, operation in pairs(M.methods) do
  Client[snake] = function(self, params) return self:call(operation, params) end
end

-- ----------------------------------------------------------------------------
-- Pagination
-- ----------------------------------------------------------------------------

local function items_of(operation)
  local op = M.operations[operation]
  if not op then error(fmt("emrflow.sfn: unknown Step Functions operation '%s'", tostring(operation)), 3) end
  if not op.items then error(fmt("emrflow.sfn: %s is not a paginated operation", operation), 3) end
  return op.items
end

--- for page, err in client:paginate(operation, params) do ... end
-- Pages follow nextToken; a failed page is `false, err` and ends the loop.
function Client:paginate(operation, params)
  items_of(operation)
  local base = {}
  for k, v in pairs(params or {}) do base[k] = v end
  local finished, seen = false, {}
  return function()
    if finished then return nil end
    local page, err = self:call(operation, base)
    if not page then
      finished = true
      return false, err
    end
    local nxt = page.nextToken
    if type(nxt) ~= "string" or nxt == "" or seen[nxt] then
      finished = true
    else
      seen[nxt] = true
      base.nextToken = nxt
    end
    return page
  end
end

--- Every item of every page | nil, err.
function Client:list_all(operation, params)
  local key = items_of(operation)
  local all = json.array {}
  for page, err in self:paginate(operation, params) do
    if not page then return nil, err end
    for _, item in ipairs(type(page[key]) == "table" and page[key] or {}) do all[#all + 1] = item end
  end
  return all
end

--- The state machine named `name` (a ListStateMachines item) | nil (none) | nil, err.
function Client:find_state_machine(name)
  for page, err in self:paginate("ListStateMachines") do
    if not page then return nil, err end
    for _, sm in ipairs(type(page.stateMachines) == "table" and page.stateMachines or {}) do
      if sm.name == name then return sm end
    end
  end
  return nil
end

function Client:__tostring()
  return fmt("emrflow.sfn.client(%s)", self.endpoint or "unconfigured")
end

M.Client = Client
return M
