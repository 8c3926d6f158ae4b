-- emrflow.emr.client: the Amazon EMR on EKS (emr-containers) REST client.
--
--   local client = require("emrflow.emr.client").new{
--     region = "us-east-1", endpoint_url = nil, profile = nil,
--     credentials = nil,                     -- { access_key_id =, secret_access_key =, session_token = }
--                                            -- or a provider with :get(); default: emrflow.credentials
--     max_attempts = 3,                      -- else AWS_MAX_ATTEMPTS / the profile's max_attempts
--     env = nil,                             -- table read instead of os.getenv (specs)
--     timeout_ms = 60000, connect_timeout_ms = 10000, ca_bundle = nil, max_connections = 8,
--     dry_run = false,                       -- every call returns the signed request instead
--     retry_quota = 500, user_agent = nil, config = nil (a config.resolve result),
--     random = nil,                          -- function() --> [0,1): back-off jitter (specs)
--     time = nil,                            -- function() --> Unix seconds for signing (specs)
--     transport = nil,                       -- function(request) --> response | nil, err (specs)
--   }
--   client:call("StartJobRun", params [, { client_token =, dry_run =, validate = }])
--     --> result | nil, err
--   client:start_job_run(params [, opts])    -- one snake_case method per operation
--   for page, err in client:paginate("ListJobRuns", params) do ... end
--   client:list_all("ListJobRuns", params)   --> every item of every page | nil, err
--
-- Each call: fill the idempotency token once, check against the model (nothing
-- is sent when that fails), build the REST request (URI labels escaped, query
-- string, camelCase JSON body), sign it (SigV4), send it, retry in the SDKs'
-- standard mode, check the reply and convert it to Step Functions' PascalCase.
-- The C core does the work (src/ef_emr*.c: checks, marshalling, reply checks,
-- error parsing, retry decisions): a blocking call outside scheduler tasks runs
-- its whole exchange in the C client (its own libcurl handle, kept alive);
-- inside a task the request goes through scheduler.http (it yields). This file
-- keeps options, credentials, the retry loop's bucket and pagination.
local json = require "emrflow.json"
local sigv4 = require "emrflow.sigv4"
local scheduler = require "emrflow.scheduler"
local core = require "emrflow.core"
local errors = require "emrflow.errors"
local validate = require "emrflow.emr.validate"
local retry = require "emrflow.emr.retry"
local model = require "emrflow.emr.model"

local M = {}

M.VERSION = require("emrflow.version").version
M.USER_AGENT = "emrflow/" .. M.VERSION .. " lua/" .. _VERSION:match("%d+%.%d+")

local operations, shapes = model.operations, model.shapes
local fmt = string.format
local null = json.null

------------------------------------------------------------------------------
-- Names
------------------------------------------------------------------------------

-- "StartJobRun" --> "start_job_run", "ListTagsForResource" --> "list_tags_for_resource"
function M.snake_case(name)
  local s = name:gsub("(%u+)(%u%l)", "%1_%2"):gsub("(%l)(%u)", "%1_%2"):gsub("(%d)(%u)", "%1_%2")
  return s:lower()
end

M.methods = {}      -- snake_case --> operation name
for name in pairs(operations) do M.methods[M.snake_case(name)] = name end

-- A random UUID v4 (the C core reads /dev/urandom).
M.uuid4 = core.emr.uuid4

------------------------------------------------------------------------------
-- Construction
------------------------------------------------------------------------------

local Client = {}
Client.__index = Client

local OPTIONS = {
  region = "string", endpoint_url = "string", profile = "string", credentials = "table",
  max_attempts = "number", env = "table", timeout_ms = "number", connect_timeout_ms = "number",
  dry_run = "boolean", random = "function", time = "function", transport = "function",
  ca_bundle = "string", retry_quota = "number", max_connections = "number", user_agent = "string",
  config = "table",
}

local function parse_endpoint(url)
  local scheme, authority, path = url:match("^(https?)://([^/?#]+)([^?#]*)$")
  if not scheme then return nil end
  path = path:gsub("/+$", "")
  return { scheme = scheme, authority = authority, base = scheme .. "://" .. authority .. path }
end

local function config_error(message)
  return errors.new{ code = "config", message = message, retryable = false }
end

-- emr.client(opts): never fails for environment problems (no region, a bad
-- profile): those are returned by every call as `nil, err`. Misuse raises.
function M.new(opts)
  opts = opts or {}
  require("emrflow.config").check_options("emrflow.emr.client", OPTIONS, opts, 2)
  if opts.endpoint_url and not parse_endpoint(opts.endpoint_url) then
    error("emrflow.emr.client: option 'endpoint_url' must be an http:// or https:// URL", 2)
  end
  local self = setmetatable({
    dry_run = opts.dry_run or false,
    timeout_ms = opts.timeout_ms or 60000,
    connect_timeout_ms = opts.connect_timeout_ms or 10000,
    time = opts.time or os.time,
    transport = opts.transport,
    user_agent = opts.user_agent or M.USER_AGENT,
    max_connections = opts.max_connections or 8,
    stats = { calls = 0, attempts = 0, retries = 0 },
  }, Client)

  -- configuration: region, endpoint, max_attempts (emrflow.config when present)
  local cfg, err = opts.config, nil
  if not cfg then
    local ok, config = pcall(require, "emrflow.config")
    if ok then
      ok, cfg, err = pcall(config.resolve, {
        region = opts.region, endpoint_url = opts.endpoint_url, profile = opts.profile,
        env = opts.env, max_attempts = opts.max_attempts, ca_bundle = opts.ca_bundle,
      })
      if not ok then error(cfg, 2) end
    else
      cfg = { region = opts.region, endpoint_url = opts.endpoint_url, max_attempts = opts.max_attempts }
    end
  end
  if not cfg then
    self.config_error = err or config_error("emr-containers client: no configuration")
  else
    self.config = cfg
    -- the resolved region: config turns legacy fips-<region> pseudo-regions into the real one
    self.region = cfg.region or opts.region
    local url = opts.endpoint_url or cfg.endpoint_url
    if not self.region then
      self.config_error = config_error(
        "emr-containers client: no AWS region (pass region= or set AWS_REGION)")
    elseif not url then
      self.config_error = config_error("emr-containers client: no endpoint for region " .. self.region)
    else
      self.endpoint = parse_endpoint(url)
      if not self.endpoint then
        self.config_error = config_error("emr-containers client: bad endpoint URL " .. url)
      end
    end
    self.ca_bundle = opts.ca_bundle or cfg.ca_bundle
  end
  self.retry = retry.new{
    max_attempts = opts.max_attempts or (cfg and cfg.max_attempts) or 3,
    random = opts.random, quota = opts.retry_quota,
  }
  self.signer = sigv4.signer{ service = model.metadata.signingName or "emr-containers" }
  self._sign_req = { region = self.region }
  self.ua_header = { "User-Agent", self.user_agent }

  -- credentials: explicit table (static, or a provider with :get()), else the chain
  local c = opts.credentials
  if c then
    if type(c.get) == "function" then
      self.credentials_provider = c
    elseif type(c.access_key_id) == "string" and type(c.secret_access_key) == "string" then
      local static = c
      self.credentials_provider = { get = function() return static end }
    else
      error("emrflow.emr.client: option 'credentials' needs access_key_id and secret_access_key "
            .. "(or a provider with a get method)", 2)
    end
  else
    self.credentials_opts = { profile = opts.profile, env = opts.env, config = cfg }
  end
  return self
end

function Client:_credentials()
  local p = self.credentials_provider
  if not p then
    local ok, creds = pcall(require, "emrflow.credentials")
    if not ok then
      return nil, errors.new{ code = "credentials", retryable = false,
                              message = "no credentials given and emrflow.credentials is unavailable" }
    end
    p = creds.chain(self.credentials_opts)
    self.credentials_provider = p
  end
  local c, err = p:get()
  if not c then
    if type(err) ~= "table" then
      err = errors.new{ code = "credentials", message = tostring(err or "no credentials"), retryable = false }
    end
    return nil, err
  end
  return c
end

------------------------------------------------------------------------------
-- Request building
------------------------------------------------------------------------------

-- Per operation: its idempotency-token members (false when none), computed once.
local token_members = {}

local function tokens_of(operation, op)
  local t = token_members[operation]
  if t == nil then
    t = false
    local s = op.input and shapes[op.input]
    for _, m in ipairs(s and s.members or {}) do
      if m.idempotency_token then
        t = t or {}
        t[#t + 1] = m
      end
    end
    token_members[operation] = t
  end
  return t
end

-- Fills idempotency tokens (once per logical call). Returns a shallow copy
-- when something was filled.
local function fill_tokens(operation, op, params, token)
  local members = tokens_of(operation, op)
  if not members then return params end
  local copy
  for _, m in ipairs(members) do
    local pname = m.pascal
    local v = params[pname]
    if v == nil or v == null then
      if not copy then
        copy = {}
        for k, val in pairs(params) do copy[k] = val end
      end
      copy[pname] = token or M.uuid4()
    end
  end
  return copy or params
end

local emr_core = core.emr
local CONTENT_TYPE_JSON = { "Content-Type", "application/json" }

-- Builds the unsigned request (the C core marshals: URI labels escaped, query
-- string, camelCase JSON body): method, url, headers, body.
local function request_of(self, method, target, body)
  local headers = {}
  if body then headers[1] = CONTENT_TYPE_JSON end
  return { method = method, url = self.endpoint.base .. target, headers = headers, body = body or "" }
end

function Client:build(operation, params)
  return request_of(self, emr_core.build(operation, params))
end

------------------------------------------------------------------------------
-- Replies
------------------------------------------------------------------------------

-- An error object from an HTTP reply with status >= 300 (the C core reads,
-- in botocore's order, x-amzn-ErrorType, the body's code/Code, its __type, the status).
function M.parse_error(resp, operation)
  local code, message, request_id, retryable = emr_core.parse_error(resp.status, resp.headers, resp.body)
  return errors.new{ code = "aws", aws_code = code, status = resp.status, message = message,
                     request_id = request_id, operation = operation, retryable = retryable }
end

local function request_id(resp)
  local hs = resp.headers
  if not hs then return nil end
  for i = 1, #hs do
    local name = hs[i][1]:lower()
    if name == "x-amzn-requestid" or name == "x-amz-request-id" then return hs[i][2] end
  end
  return nil
end

-- A 2xx reply: the C core checks it is a JSON object carrying the result's key
-- member (an empty body only where the output has no members) and converts it
-- to PascalCase.
local function decode_result(self, operation, resp)
  local out, code, message = emr_core.decode(operation, resp.status, resp.body)
  local rid = request_id(resp)
  if not out then
    return nil, errors.new{ code = code, status = resp.status, request_id = rid, retryable = false,
                            operation = operation, message = message }
  end
  self.last_request_id = rid
  return out
end

------------------------------------------------------------------------------
-- Sending
------------------------------------------------------------------------------

function Client:_poller()
  local p = self.poller
  if not p then
    p = core.http.poller{ max_connections = self.max_connections }
    self.poller = p
  end
  return p
end

-- One HTTP exchange: inside a scheduler task through scheduler.http (it
-- yields); outside, on the client's own poller (blocking, keep-alive).
function Client:_send(req)
  if self.transport then return self.transport(req) end
  if scheduler.current() then return scheduler.http(req) end
  return scheduler.exchange(self:_poller(), req)
end

-- Blocking calls outside any scheduler task go through the C core's own client (one
-- libcurl handle kept alive, nothing built in Lua); calls inside tasks yield through
-- scheduler.http. Specs' transport and clock hooks keep the Lua exchange.
function Client:_fast()
  if self.transport or self.time ~= os.time or scheduler.current() then return nil end
  local f = self.fast
  if f == nil then
    f = emr_core.client{ endpoint = self.endpoint.base, region = self.region, user_agent = self.user_agent,
                         timeout_ms = self.timeout_ms, connect_timeout_ms = self.connect_timeout_ms,
                         ca_bundle = self.ca_bundle, max_connections = self.max_connections }
    self.fast = f
  end
  return f
end

function Client:close()
  if self.poller then
    self.poller:close()
    self.poller = nil
  end
  if self.fast then
    self.fast:close()
    self.fast = nil
  end
end
Client.__close = Client.close

local function sleep(s)
  if s > 0 then scheduler.sleep(s) end
end

local function describe_transport_error(err, operation)
  local e = {}
  if type(err) == "table" then
    for k, v in pairs(err) do e[k] = v end
  else
    e.code, e.message = "http", tostring(err)
  end
  e.operation = operation
  e.code = e.code or "http"
  -- libcurl ends a reply whose headers pass its limits (one line over 100 KB:
  -- "Out of memory"; all of them over 300 KB: "Too large response headers")
  -- like a reset connection; asking again would get the same reply.
  local msg = e.message or ""
  if msg:find("Too large response headers", 1, true) or (e.code == "http" and msg == "Out of memory") then
    e.code = "http"
    e.message = "the reply's headers are over the size limit (libcurl: " .. msg .. ")"
  end
  return errors.new(e)
end

local NO_OPTS = {}

-- Signs req (the signer's request table is reused: signing never yields).
local function sign(self, req, creds, payload_hash)
  local t = self._sign_req
  t.method, t.url, t.headers, t.body = req.method, req.url, req.headers, req.body
  t.credentials, t.time, t.payload_hash = creds, self.time(), payload_hash
  -- the C signer straight away: this table's fields are ours (no misspelt option to catch)
  local s = self.signer._c:sign(t, nil, 2)
  t.credentials, t.body = nil, nil
  return s
end

-- The transport's request: the signed headers plus User-Agent (not signed, as
-- botocore: proxies may rewrite it).
local CONTENT_LENGTH_0 = { "Content-Length", "0" }

local function http_request(self, req, signed)
  local hs = signed.headers            -- a fresh list from the signer: ours to extend
  hs[#hs + 1] = self.ua_header
  -- as botocore: a DELETE (or any body-less non-GET) says Content-Length: 0, unsigned
  if req.body == "" and req.method ~= "GET" and req.method ~= "HEAD" then hs[#hs + 1] = CONTENT_LENGTH_0 end
  -- a POST goes out once per attempt: libcurl's silent re-send on a dead keep-alive
  -- connection becomes a "reset" that the retry loop counts against max_attempts
  return { method = req.method, url = req.url, headers = hs, body = req.body,
           timeout_ms = self.timeout_ms, connect_timeout_ms = self.connect_timeout_ms,
           ca_bundle = self.ca_bundle, no_resend = req.method == "POST" }
end

-- client:call(operation, params [, opts]) --> result | nil, err
-- opts.client_token: the idempotency token to use when params has none;
-- opts.dry_run: return the signed request instead of sending it;
-- opts.validate = false: skip the client-side model checks (the service still checks).
function Client:call(operation, params, opts)
  local op = operations[operation]
  if not op then
    error(fmt("emrflow.emr: unknown emr-containers operation '%s'", tostring(operation)), 2)
  end
  if params == nil then params = {} end
  if type(params) ~= "table" then
    error(fmt("emrflow.emr: %s parameters must be a table, got %s", operation, type(params)), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error(fmt("emrflow.emr: %s options must be a table, got %s", operation, type(opts)), 2)
  end
  opts = opts or NO_OPTS
  if opts.client_token ~= nil and type(opts.client_token) ~= "string" then
    error("emrflow.emr: option client_token must be a string", 2)
  end
  if self.config_error then return nil, self.config_error end

  params = fill_tokens(operation, op, params, opts.client_token)
  local err
  local dry = opts.dry_run or (opts.dry_run == nil and self.dry_run)
  local fast = not dry and self:_fast()
  -- the model checks: in the C client's first attempt when it sends, else here
  local check_in_c = fast and opts.validate ~= false
  local req
  if opts.validate ~= false and not check_in_c then
    -- checked and marshalled from one conversion of the parameters
    local ok, method, target, body = emr_core.check_build(operation, params)
    if not ok then return nil, validate.error_of(operation, method, target) end
    req = request_of(self, method, target, body)
  end
  local creds
  creds, err = self:_credentials()
  if not creds then
    -- bad parameters are reported before missing credentials, whichever path checks
    if check_in_c then
      local ok, verr = validate.check(operation, params)
      if not ok then return nil, verr end
    end
    return nil, err
  end

  local signed, payload_hash
  if not fast then
    req = req or self:build(operation, params)
    signed = sign(self, req, creds, nil)
    payload_hash = signed.payload_hash
    if dry then
      local r = http_request(self, req, signed)
      r.operation = operation
      return r
    end
  end

  self.stats.calls = self.stats.calls + 1
  local policy = self.retry
  local attempt, last_cost = 0, nil
  while true do
    attempt = attempt + 1
    self.stats.attempts = self.stats.attempts + 1
    if attempt > 1 then
      -- re-sign: a fresh X-Amz-Date (and refreshed credentials), same body hash
      creds, err = self:_credentials()
      if not creds then return nil, err end
      if not fast then signed = sign(self, req, creds, payload_hash) end
    end
    if fast then
      -- the whole exchange in the C core: marshal, sign, send, decode
      local out, e, problems, message = fast:send(operation, params, creds.access_key_id,
                                                  creds.secret_access_key, creds.session_token,
                                                  check_in_c and attempt == 1)
      if e == false then
        self.stats.calls, self.stats.attempts = self.stats.calls - 1, self.stats.attempts - 1
        return nil, validate.error_of(operation, problems, message)
      end
      if out then
        policy:on_success(last_cost)
        self.last_request_id = e
        return out
      end
      e.operation = operation
      err = errors.new(e)
      if err.code == "json" then return nil, err end
    else
      local resp, terr = self:_send(http_request(self, req, signed))
      if resp and resp.status >= 200 and resp.status < 300 then
        policy:on_success(last_cost)
        return decode_result(self, operation, resp)
      end
      if resp then
        err = M.parse_error(resp, operation)
      else
        err = describe_transport_error(terr, operation)
        err.retryable = retry.classify(err) ~= nil
      end
    end
    local delay, cost = policy:should_retry(err, attempt)
    if not delay then
      err.attempts = attempt
      if cost == "retry quota exhausted" then err.quota_exhausted = true end
      return nil, err
    end
    last_cost = cost
    self.stats.retries = self.stats.retries + 1
    sleep(delay)
  end
end

-- One method per operation: client:start_job_run(params, opts) ...
for snake, operation in pairs(M.methods) do
  Client[snake] = function(self, params, opts)
    return self:call(operation, params, opts)
  end
end

------------------------------------------------------------------------------
-- Pagination
------------------------------------------------------------------------------

local function paginator_of(operation)
  local op = operations[operation]
  if not op then error(fmt("emrflow.emr: unknown emr-containers operation '%s'", tostring(operation)), 3) end
  local p = op.paginator
  if not p then error(fmt("emrflow.emr: %s is not a paginated operation", operation), 3) end
  return {
    input_token = validate.pascal(p.input_token), output_token = validate.pascal(p.output_token),
    result_key = validate.pascal(p.result_key), limit_key = p.limit_key and validate.pascal(p.limit_key),
  }
end

-- for page, err in client:paginate("ListJobRuns", params) do
--   if not page then ... err ... end           -- a failed page: page == false
-- end
-- Each page is a result table; iteration stops after the last page (no
-- NextToken) or after a failed one.
function Client:paginate(operation, params, opts)
  local p = paginator_of(operation)
  local base = {}
  for k, v in pairs(params or {}) do base[k] = v end
  local token = base[p.input_token]
  local finished = false
  local seen = {}
  return function()
    if finished then return nil end
    local q = {}
    for k, v in pairs(base) do q[k] = v end
    q[p.input_token] = token
    local page, err = self:call(operation, q, opts)
    if not page then
      finished = true
      return false, err
    end
    local nxt = page[p.output_token]
    if type(nxt) ~= "string" or nxt == "" or seen[nxt] then
      finished = true
    else
      seen[nxt] = true
      token = nxt
    end
    return page
  end
end

-- Every item of every page (the paginator's result key), or nil, err.
function Client:list_all(operation, params, opts)
  local p = paginator_of(operation)
  local all = json.array({})
  for page, err in self:paginate(operation, params, opts) do
    if not page then return nil, err end
    local items = page[p.result_key]
    if type(items) == "table" then
      for i = 1, #items do all[#all + 1] = items[i] end
    end
  end
  return all
end

function Client:__tostring()
  return fmt("emrflow.emr.client(%s)", self.endpoint and self.endpoint.base or "unconfigured")
end

M.Client = Client
return M
