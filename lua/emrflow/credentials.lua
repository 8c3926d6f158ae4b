--- AWS credentials: the providers and the default chain, in the AWS SDKs' order.
--
--   local creds = require "emrflow.credentials"
--   local provider = creds.chain{ credentials =, profile =, env =, config = cfg }
--   local c, err = provider:get()
--     --> credentials { access_key_id, secret_access_key, session_token, expiration } | nil, err
--
-- The chain, first hit wins (cheapest first, network only when configured, IMDS last):
--   1. explicit credentials passed in code (creds.static);
--   2. the environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
--      (skipped when a profile is named in code, as botocore does);
--   3. web identity (IRSA): AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN [+ AWS_ROLE_SESSION_NAME]
--      through STS AssumeRoleWithWebIdentity; the token file is re-read on every fetch;
--   4. the shared files (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE) for the profile
--      (a profile named in code comes before web identity, like it displaces step 2)
--      (profile=, AWS_PROFILE, AWS_DEFAULT_PROFILE, "default"): role_arn with source_profile
--      (chains of any length, cycles refused) or credential_source (Environment,
--      Ec2InstanceMetadata, EcsContainer) or web_identity_token_file, through STS; else static
--      keys; else credential_process (run synchronously through /bin/sh). SSO and mfa_serial
--      are not supported: such a profile fails with a message saying so (not skipped silently);
--   5. container credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (ECS, 169.254.170.2) or
--      AWS_CONTAINER_CREDENTIALS_FULL_URI (EKS Pod Identity; plain http only to loopback,
--      169.254.170.2, 169.254.170.23 or fd00:ec2::23), Authorization from
--      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (re-read on every fetch, wins) or
--      AWS_CONTAINER_AUTHORIZATION_TOKEN;
--   6. EC2 instance metadata, IMDSv2 (token first; the token is reused for its TTL), unless
--      AWS_EC2_METADATA_DISABLED=true; endpoint AWS_EC2_METADATA_SERVICE_ENDPOINT.
-- A provider that is configured but fails ends the chain (as in the SDKs: no silent fall-back
-- to another identity); one that is not configured is skipped. The error lists every provider
-- with "skipped", "failed" or "not tried" and why. Once a provider has succeeded, the chain
-- keeps using it for refreshes.
--
-- Caching: every provider caches its credentials; temporary ones are refreshed when within
-- refresh_window_s (default 300) of expiry, or half-way through their life when that is later;
-- if a refresh fails while the cached ones are still valid, they are kept (retried after 30 s).
-- Concurrent get() calls from scheduler tasks share one fetch (single flight: the others wait
-- on a scheduler event). The clock is `now` (default: the real wall clock, also under a
-- virtual scheduler, because expirations are real instants).
--
-- Secrets: credentials objects keep secret_access_key and session_token out of tostring,
-- pairs and JSON (see credentials/common.lua); errors never contain them. Lua strings cannot
-- be wiped in place: on refresh the cached object is dropped, so the old secrets become garbage
-- and nothing in emrflow refers to them any more.
--
-- HTTP goes through scheduler.http (yields in a task, blocks outside); `http` replaces it.
-- @module emrflow.credentials
local config = require "emrflow.config"
local common = require "emrflow.credentials.common"
local sts = require "emrflow.credentials.sts"
local scheduler = require "emrflow.scheduler"
local core = require "emrflow.core"

local M = {}

M.new_credentials = common.new_credentials
M.is_credentials = common.is_credentials
M.parse_time = common.parse_time

local DEFAULT_REFRESH_WINDOW_S = 300
local FAILED_REFRESH_RETRY_S = 30

-- ------------------------------------------------------------------------
-- Provider base: caching, single flight, errors
-- ------------------------------------------------------------------------

local Provider = {}
Provider.__index = Provider
Provider.__name = "emrflow.CredentialsProvider"
Provider.__tostring = function(p) return "emrflow.CredentialsProvider(" .. p.name .. ")" end

local COMMON_OPTS = { env = true, config = true, http = true, now = true, sleep = true,
                      sign_time = true, refresh_window_s = true, profile = true }

local function check_opts(where, opts, extra)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(where .. ": expected a table of options, got " .. type(opts), 3)
  end
  for k in pairs(opts) do
    if not COMMON_OPTS[k] and not (extra and extra[k]) then
      error(where .. ": unknown option '" .. tostring(k) .. "'", 3)
    end
  end
  if opts.env ~= nil and type(opts.env) ~= "table" then
    error(where .. ": option 'env' must be a table", 3)
  end
  if opts.config ~= nil and type(opts.config) ~= "table" then
    error(where .. ": option 'config' must be a table from emrflow.config.resolve", 3)
  end
  for _, k in ipairs { "http", "now", "sleep", "sign_time" } do
    if opts[k] ~= nil and type(opts[k]) ~= "function" then
      error(where .. ": option '" .. k .. "' must be a function", 3)
    end
  end
  local w = opts.refresh_window_s
  if w ~= nil and (type(w) ~= "number" or w < 0) then
    error(where .. ": option 'refresh_window_s' must be a number of seconds >= 0", 3)
  end
  if opts.profile ~= nil and (type(opts.profile) ~= "string" or opts.profile == "") then
    error(where .. ": option 'profile' must be a non-empty string", 3)
  end
  return opts
end

-- The context every fetch uses: environment, clock, HTTP, configuration.
local function make_ctx(opts)
  local ctx = {}
  if opts.env then
    ctx.getenv = config.make_getenv(opts.env)
  else
    ctx.getenv = opts.config and config.getenv_of(opts.config) or config.make_getenv(nil)
  end
  ctx.http = opts.http or scheduler.http
  ctx.sleep = opts.sleep or scheduler.sleep
  -- expirations are wall-clock instants, so the default clock is the real one even under a
  -- virtual scheduler (whose time may have jumped far ahead); specs inject `now`
  ctx.now = opts.now or core.now
  ctx.sign_time = opts.sign_time or os.time
  ctx.config = function()
    if opts.config then return opts.config end
    return config.resolve { env = opts.env, profile = opts.profile, require_region = false }
  end
  return ctx
end

local function new_provider(name, label, fetch, opts, fields)
  local p = setmetatable({
    name = name, label = label, fetch_fn = fetch, opts = opts, ctx = make_ctx(opts),
    refresh_window_s = opts.refresh_window_s or DEFAULT_REFRESH_WINDOW_S,
    cached = nil, refresh_at = nil, inflight = nil, fetches = 0,
  }, Provider)
  for k, v in pairs(fields or {}) do p[k] = v end
  return p
end
M.new_provider = new_provider

--- Fetches afresh, bypassing the cache: credentials | nil, status ("skipped"|"failed"), reason, tried.
function Provider:fetch()
  return self.fetch_fn(self)
end

local function format_tried(tried)
  local lines = {}
  for i, t in ipairs(tried) do
    lines[#lines + 1] = string.format("  %d. %s: %s%s", i, t.label, t.status,
                                      t.reason and (" (" .. t.reason .. ")") or "")
  end
  return table.concat(lines, "\n")
end
M.format_tried = format_tried

function Provider:make_error(status, reason, tried)
  if tried then
    local any_failed
    for _, t in ipairs(tried) do if t.status == "failed" then any_failed = true end end
    local head = any_failed and "could not get AWS credentials" or "no AWS credentials found"
    return common.error(head .. "; tried, in order:\n" .. format_tried(tried), { tried = tried })
  end
  return common.error(string.format("%s: %s%s", self.label, status or "failed",
    reason and (" (" .. reason .. ")") or ""),
    { tried = { { provider = self.name, label = self.label, status = status, reason = reason } } })
end

local function store(self, c, now)
  self.cached = c
  local exp = rawget(c, "expiration")
  if exp then
    self.refresh_at = math.max(exp - self.refresh_window_s, now + (exp - now) / 2)
  else
    self.refresh_at = nil
  end
end

function Provider:_fetch_store()
  local now = self.ctx.now()
  self.fetches = self.fetches + 1
  local c, status, reason, tried = self:fetch()
  if c and rawget(c, "expiration") and rawget(c, "expiration") <= now then
    reason = string.format("the credentials it returned expired at %s (clock now %s)",
                           common.iso8601(c.expiration), common.iso8601(now))
    c, status = nil, "failed"
    if tried then tried[#tried].status, tried[#tried].reason = status, reason end
  end
  if c then
    store(self, c, now)
    return c
  end
  local old = self.cached
  if old and (not rawget(old, "expiration") or now < rawget(old, "expiration")) then
    -- advisory refresh failed: keep the valid ones for now
    self.refresh_at = math.min(now + FAILED_REFRESH_RETRY_S, rawget(old, "expiration") or math.huge)
    return old
  end
  self.cached, self.refresh_at = nil, nil
  return nil, self:make_error(status, reason, tried)
end

function Provider:_refresh()
  local ev
  if scheduler.current() then
    ev = scheduler.event()
    self.inflight = ev
  end
  local ok, c, err = pcall(self._fetch_store, self)
  if ev then
    if self.inflight == ev then self.inflight = nil end
    ev:set({ ok = ok, creds = ok and c or nil, err = ok and err or nil })
  end
  if not ok then error(c, 0) end
  return c, err
end

--- The cached credentials, refreshed when needed: credentials | nil, err.
function Provider:get()
  while true do
    local c = self.cached
    if c and (not self.refresh_at or self.ctx.now() < self.refresh_at) then return c end
    local ev = self.inflight
    if ev and scheduler.current() then
      local r = ev:wait()
      if r.ok then
        if r.creds then return r.creds end
        return nil, r.err
      end
      -- the task that fetched ended abnormally (cancelled): fetch ourselves
    else
      return self:_refresh()
    end
  end
end

--- Drops the cached credentials (the next get() fetches).
function Provider:invalidate()
  self.cached, self.refresh_at = nil, nil
end

function Provider:stats()
  return { fetches = self.fetches }
end

-- ------------------------------------------------------------------------
-- 1. Static (explicit) credentials
-- ------------------------------------------------------------------------

--- creds.static{ access_key_id =, secret_access_key =, session_token =, expiration = }
function M.static(t)
  local given = common.check_static(t, "emrflow.credentials.static")
  local c = given or common.new_credentials {
    access_key_id = t.access_key_id, secret_access_key = t.secret_access_key,
    session_token = t.session_token, expiration = t.expiration, source = "static",
  }
  return new_provider("static", "explicit credentials", function() return c end, {})
end

-- ------------------------------------------------------------------------
-- 2. Environment
-- ------------------------------------------------------------------------

local function fetch_env(ctx)
  local getenv = ctx.getenv
  local id, secret = getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY")
  if not id and not secret then
    return nil, "skipped", "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set"
  elseif not id then
    return nil, "failed", "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not"
  elseif not secret then
    return nil, "failed", "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"
  end
  local exp
  local raw = getenv("AWS_CREDENTIAL_EXPIRATION")
  if raw then
    exp = common.parse_time(raw)
    if not exp then return nil, "failed", "AWS_CREDENTIAL_EXPIRATION is not an ISO 8601 time" end
  end
  return common.new_credentials {
    access_key_id = id, secret_access_key = secret,
    session_token = getenv("AWS_SESSION_TOKEN") or getenv("AWS_SECURITY_TOKEN"),
    expiration = exp, source = "environment", account_id = getenv("AWS_ACCOUNT_ID"),
  }
end

--- creds.env{ env = } : AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN.
function M.env(opts)
  opts = check_opts("emrflow.credentials.env", opts)
  return new_provider("environment", "environment (AWS_ACCESS_KEY_ID)", function(self)
    return fetch_env(self.ctx)
  end, opts)
end

-- ------------------------------------------------------------------------
-- 4. Web identity (defined before the profile provider, which uses it)
-- ------------------------------------------------------------------------

local function read_token_file(path, what)
  local f, err = io.open(path, "rb")
  if not f then return nil, string.format("cannot read %s %s: %s", what, path, tostring(err)) end
  local t = f:read("a") or ""
  f:close()
  t = t:gsub("^%s+", ""):gsub("%s+$", "")
  if t == "" then return nil, string.format("%s %s is empty", what, path) end
  return t
end

local function session_name(ctx)
  return "emrflow-session-" .. string.format("%d", math.floor(ctx.sign_time()))
end

local function web_identity_call(ctx, o, source)
  local token, terr = read_token_file(o.token_file, "web identity token file")
  if not token then return nil, "failed", terr end
  local cfg, cerr = ctx.config()
  if not cfg then return nil, "failed", cerr.message end
  local c, why = sts.assume_role_with_web_identity(ctx, cfg, {
    role_arn = o.role_arn, role_session_name = o.role_session_name or session_name(ctx),
    token = token, duration_seconds = o.duration_seconds, source = source,
  })
  if not c then return nil, "failed", why end
  return c
end

local function fetch_web_identity(self)
  local ctx, o = self.ctx, self.wi
  local token_file = o.token_file or ctx.getenv("AWS_WEB_IDENTITY_TOKEN_FILE")
  local role_arn = o.role_arn or ctx.getenv("AWS_ROLE_ARN")
  if not token_file then
    return nil, "skipped", "AWS_WEB_IDENTITY_TOKEN_FILE is not set"
  end
  if not role_arn then
    return nil, "failed", "AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not"
  end
  return web_identity_call(ctx, {
    token_file = token_file, role_arn = role_arn,
    role_session_name = o.role_session_name or ctx.getenv("AWS_ROLE_SESSION_NAME"),
    duration_seconds = o.duration_seconds,
  }, "web-identity")
end

--- creds.web_identity{ role_arn =, token_file =, role_session_name =, duration_seconds =, env =,
---                     config =, http =, now = } (role and file default to AWS_ROLE_ARN and
--- AWS_WEB_IDENTITY_TOKEN_FILE).
function M.web_identity(opts)
  opts = check_opts("emrflow.credentials.web_identity", opts,
    { role_arn = true, token_file = true, role_session_name = true, duration_seconds = true })
  for _, k in ipairs { "role_arn", "token_file", "role_session_name" } do
    if opts[k] ~= nil and (type(opts[k]) ~= "string" or opts[k] == "") then
      error("emrflow.credentials.web_identity: option '" .. k .. "' must be a non-empty string", 2)
    end
  end
  return new_provider("web_identity", "web identity (AWS_WEB_IDENTITY_TOKEN_FILE)", fetch_web_identity,
    opts, { wi = { role_arn = opts.role_arn, token_file = opts.token_file,
                   role_session_name = opts.role_session_name, duration_seconds = opts.duration_seconds } })
end

-- ------------------------------------------------------------------------
-- 5. Container credentials (ECS, EKS Pod Identity)
-- ------------------------------------------------------------------------

local ECS_HOST = "http://169.254.170.2"

local ALLOWED_HTTP_HOSTS = {
  ["localhost"] = true, ["169.254.170.2"] = true, ["169.254.170.23"] = true,
  ["::1"] = true, ["fd00:ec2::23"] = true,
}

-- Scheme and host (lower-cased, without userinfo, port or brackets) of an URL.
local function url_host(url)
  local scheme, authority = url:match("^(%a[%w+.-]*)://([^/?#]*)")
  if not scheme then return nil end
  authority = authority:gsub("^.*@", "")
  local host = authority:match("^%[(.-)%]") or authority:gsub(":%d*$", "")
  return scheme:lower(), host:lower()
end
M.url_host = url_host

local function full_uri_allowed(url)
  local scheme, host = url_host(url)
  if not scheme or host == "" then return false, "is not an absolute http(s) URL" end
  if scheme == "https" then return true end
  if scheme ~= "http" then return false, "must use http or https" end
  if ALLOWED_HTTP_HOSTS[host] or host:match("^127%.%d+%.%d+%.%d+$") then return true end
  return false, "uses plain http to host '" .. host .. "'; only loopback, 169.254.170.2, " ..
    "169.254.170.23 and fd00:ec2::23 may be used without https"
end

local json_mod
local function json_decode(text)
  json_mod = json_mod or require "emrflow.json"
  local ok, v = pcall(json_mod.decode, text)
  if ok and type(v) == "table" then return v end
  return nil
end

-- Builds credentials from a container / IMDS JSON document.
local function creds_from_json(doc, source)
  local function str(k) local v = doc[k]; if type(v) == "string" and v ~= "" then return v end end
  local id, secret, token = str("AccessKeyId"), str("SecretAccessKey"), str("Token")
  if not id or not secret then return nil, "the reply has no AccessKeyId / SecretAccessKey" end
  local exp
  if doc.Expiration ~= nil then
    exp = common.parse_time(doc.Expiration)
    if not exp then return nil, "the reply's Expiration is not an ISO 8601 time" end
  end
  local account = str("AccountId")
  if not account and type(doc.RoleArn) == "string" then
    account = doc.RoleArn:match("^arn:[^:]+:iam::(%d+):")
  end
  return common.new_credentials {
    access_key_id = id, secret_access_key = secret, session_token = token, expiration = exp,
    source = source, account_id = account,
  }
end

local function remote_error_text(resp, secrets)
  local doc = json_decode(resp.body or "")
  local s
  if doc then
    local code = doc.code or doc.Code
    local msg = doc.message or doc.Message
    if code or msg then s = tostring(code or "error") .. (msg and (": " .. tostring(msg)) or "") end
  end
  s = s or (resp.body and resp.body ~= "" and resp.body) or "empty body"
  return common.redact(s, secrets, 200)
end

local function fetch_container(ctx)
  local getenv = ctx.getenv
  local rel = getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
  local full = getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI")
  local url
  if rel then
    if rel:sub(1, 1) ~= "/" then rel = "/" .. rel end
    url = ECS_HOST .. rel
  elseif full then
    local ok, why = full_uri_allowed(full)
    if not ok then return nil, "failed", "AWS_CONTAINER_CREDENTIALS_FULL_URI " .. why end
    url = full
  else
    return nil, "skipped",
      "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and AWS_CONTAINER_CREDENTIALS_FULL_URI are not set"
  end
  local headers = { { "Accept", "application/json" } }
  local token
  local token_file = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
  if token_file then
    local t, terr = read_token_file(token_file, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
    if not t then return nil, "failed", terr end
    token = t
  else
    token = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN")
  end
  if token then
    if token:find("[\r\n]") then
      return nil, "failed", "the container authorization token contains a line break"
    end
    headers[#headers + 1] = { "Authorization", token }
  end
  local cfg = ctx.config()
  local resp, err = common.send(ctx, {
    method = "GET", url = url, headers = headers, timeout_ms = 2000, connect_timeout_ms = 1000,
    ca_bundle = cfg and cfg.ca_bundle or nil,
  }, 3)
  if not resp then
    return nil, "failed", "no reply from " .. url .. ": " .. common.describe_neterr(err)
  end
  if resp.status ~= 200 then
    return nil, "failed", string.format("%s replied HTTP %d: %s", url, resp.status,
                                        remote_error_text(resp, { token }))
  end
  local doc = json_decode(resp.body or "")
  if not doc then return nil, "failed", url .. " replied with something that is not a JSON object" end
  local c, why = creds_from_json(doc, "container")
  if not c then return nil, "failed", url .. ": " .. why end
  return c
end

--- creds.container{ env =, http =, now = }
function M.container(opts)
  opts = check_opts("emrflow.credentials.container", opts)
  return new_provider("container", "container credentials (ECS / EKS Pod Identity)", function(self)
    return fetch_container(self.ctx)
  end, opts)
end

-- ------------------------------------------------------------------------
-- 6. EC2 instance metadata (IMDSv2)
-- ------------------------------------------------------------------------

local IMDS_TOKEN_TTL_S = 21600
local IMDS_CREDS_PATH = "/latest/meta-data/iam/security-credentials/"

local function fetch_imds(self)
  local ctx = self.ctx
  local cfg, cerr = ctx.config()
  if not cfg then return nil, "failed", cerr.message end
  if cfg.imds_disabled then
    return nil, "skipped", "AWS_EC2_METADATA_DISABLED is true"
  end
  local base = cfg.imds_endpoint or "http://169.254.169.254"
  local timeout_ms = math.floor((cfg.imds_timeout_s or 1) * 1000)
  local attempts = cfg.imds_attempts or 1
  local st = self.imds_state

  local function req(method, path, headers)
    return common.send(ctx, { method = method, url = base .. path, headers = headers,
                              timeout_ms = timeout_ms, connect_timeout_ms = timeout_ms }, attempts)
  end
  local function get_token()
    local now = ctx.now()
    if st.token and now < st.token_expiry then return st.token end
    st.token = nil
    local resp, err = req("PUT", "/latest/api/token",
                          { { "X-aws-ec2-metadata-token-ttl-seconds", tostring(IMDS_TOKEN_TTL_S) } })
    if not resp then
      return nil, "no reply from " .. base .. " (not on EC2?): " .. common.describe_neterr(err)
    end
    if resp.status == 200 and resp.body and resp.body ~= "" then
      st.token, st.token_expiry = resp.body, now + IMDS_TOKEN_TTL_S - 60
      return st.token
    end
    if (resp.status == 404 or resp.status == 405) and not cfg.imds_v1_disabled then
      return false -- IMDSv1 fallback
    end
    return nil, string.format("the IMDSv2 token request to %s replied HTTP %d", base, resp.status)
  end

  local function get(path)
    for _ = 1, 2 do
      local token, terr = get_token()
      if token == nil then return nil, terr end
      local headers = {}
      if token then headers[1] = { "X-aws-ec2-metadata-token", token } end
      local resp, err = req("GET", path, headers)
      if not resp then return nil, "no reply from " .. base .. ": " .. common.describe_neterr(err) end
      if resp.status == 401 and token then
        st.token = nil -- expired or revoked: fetch a new one, once
      else
        return resp
      end
    end
    return nil, "IMDS refused a fresh token (HTTP 401)"
  end

  local role = self.role
  if not role then
    local resp, err = get(IMDS_CREDS_PATH)
    if not resp then return nil, "failed", err end
    if resp.status == 404 then return nil, "failed", "no IAM role is attached to this instance (HTTP 404)" end
    if resp.status ~= 200 then
      return nil, "failed", string.format("%s%s replied HTTP %d", base, IMDS_CREDS_PATH, resp.status)
    end
    role = (resp.body or ""):match("^%s*([^\r\n%s]+)")
    if not role then return nil, "failed", "IMDS listed no IAM role" end
    if not role:match("^[%w+=,.@_-]+$") then return nil, "failed", "IMDS returned an invalid role name" end
  end
  local resp, err = get(IMDS_CREDS_PATH .. role)
  if not resp then return nil, "failed", err end
  if resp.status == 404 and self.role then
    self.role = nil -- the role changed: list again next time
    return nil, "failed", "the instance's IAM role '" .. role .. "' is gone (HTTP 404)"
  end
  if resp.status ~= 200 then
    return nil, "failed", string.format("%s%s%s replied HTTP %d", base, IMDS_CREDS_PATH, role, resp.status)
  end
  local doc = json_decode(resp.body or "")
  if not doc then return nil, "failed", "IMDS returned credentials that are not a JSON object" end
  if doc.Code ~= nil and doc.Code ~= "Success" then
    return nil, "failed", "IMDS credentials for role '" .. role .. "' have Code " .. tostring(doc.Code)
  end
  local c, why = creds_from_json(doc, "imds")
  if not c then return nil, "failed", "IMDS: " .. why end
  self.role = role
  return c
end

--- creds.imds{ env =, config =, http =, now = }
function M.imds(opts)
  opts = check_opts("emrflow.credentials.imds", opts)
  return new_provider("imds", "EC2 instance metadata (IMDSv2)", fetch_imds, opts, { imds_state = {} })
end

-- ------------------------------------------------------------------------
-- 3. Shared config and credentials files
-- ------------------------------------------------------------------------

local SOURCE_KINDS = { Environment = true, Ec2InstanceMetadata = true, EcsContainer = true }

local function static_from(p, name, files)
  local id, secret = p.aws_access_key_id, p.aws_secret_access_key
  if id and id ~= "" and secret and secret ~= "" then
    return common.new_credentials {
      access_key_id = id, secret_access_key = secret,
      session_token = (p.aws_session_token ~= "" and p.aws_session_token) or
        (p.aws_security_token ~= "" and p.aws_security_token) or nil,
      source = "profile:" .. name,
    }
  end
  if (id and id ~= "") or (secret and secret ~= "") then
    return nil, string.format("profile '%s' (%s / %s) has %s but not %s", name, files.config_file,
      files.credentials_file, (id and id ~= "") and "aws_access_key_id" or "aws_secret_access_key",
      (id and id ~= "") and "aws_secret_access_key" or "aws_access_key_id")
  end
  return false
end

-- credential_process: runs the command (through /bin/sh, from the user's own config file),
-- reads its JSON {Version = 1, AccessKeyId, SecretAccessKey, SessionToken?, Expiration?}.
-- It runs synchronously (it blocks the scheduler while it runs; fetches are rare). Neither the
-- command's output nor the command line goes into an error (either may hold a secret).
local function credential_process(cmd, name)
  local f, oerr = io.popen(cmd, "r")
  if not f then
    return nil, "failed",
      string.format("profile '%s': cannot run credential_process: %s", name, tostring(oerr))
  end
  local out = f:read("a") or ""
  local ok, how, code = f:close()
  if not ok then
    return nil, "failed", string.format("profile '%s': credential_process %s %s", name,
      how == "signal" and "was killed by signal" or "exited with status", tostring(code))
  end
  local doc = json_decode(out)
  if not doc then
    return nil, "failed", string.format("profile '%s': credential_process did not print a JSON object", name)
  end
  if doc.Version ~= 1 then
    return nil, "failed", string.format("profile '%s': credential_process printed Version %s, expected 1",
      name, tostring(doc.Version))
  end
  local t = {}
  for k, v in pairs(doc) do t[k] = v end
  t.Token = doc.SessionToken
  local c, why = creds_from_json(t, "process:" .. name)
  if not c then return nil, "failed", string.format("profile '%s': credential_process: %s", name, why) end
  return c
end

local resolve_profile

local function assume_role_profile(self, files, name, p, visited, path)
  local ctx = self.ctx
  if p.mfa_serial then
    return nil, "failed", string.format("profile '%s' uses mfa_serial, which emrflow does not support", name)
  end
  if p.source_profile and p.credential_source then
    return nil, "failed", string.format("profile '%s' has both source_profile and credential_source", name)
  end
  local src, why, _
  if p.source_profile then
    local sname = p.source_profile
    if sname == name then
      src, why = static_from(p, name, files)
      if not src then
        return nil, "failed", why or string.format("profile '%s' is its own source_profile but has no " ..
          "aws_access_key_id / aws_secret_access_key", name)
      end
    else
      if visited[sname] then
        return nil, "failed", "source_profile cycle: " .. table.concat(path, " -> ") .. " -> " .. sname
      end
      src, _, why = resolve_profile(self, files, sname, visited, path, true)
      if not src then
        return nil, "failed", string.format("source_profile '%s' of profile '%s': %s", sname, name, why)
      end
    end
  elseif p.credential_source then
    local kind = p.credential_source
    if not SOURCE_KINDS[kind] then
      return nil, "failed", string.format("profile '%s': credential_source '%s' is not one of " ..
        "Environment, Ec2InstanceMetadata, EcsContainer", name, kind)
    end
    if kind == "Environment" then
      src, _, why = fetch_env(ctx)
    elseif kind == "EcsContainer" then
      src, _, why = fetch_container(ctx)
    else
      self.sub_imds = self.sub_imds or { ctx = ctx, imds_state = {} }
      src, _, why = fetch_imds(self.sub_imds)
    end
    if not src then
      return nil, "failed", string.format("credential_source %s of profile '%s': %s", kind, name, why)
    end
  elseif p.web_identity_token_file then
    return web_identity_call(ctx, { token_file = p.web_identity_token_file, role_arn = p.role_arn,
      role_session_name = p.role_session_name, duration_seconds = tonumber(p.duration_seconds) },
      "profile:" .. name)
  else
    return nil, "failed", string.format("profile '%s' has role_arn but neither source_profile nor " ..
      "credential_source", name)
  end
  local duration
  if p.duration_seconds then
    duration = math.tointeger(tonumber(p.duration_seconds))
    if not duration or duration < 900 then
      return nil, "failed",
        string.format("profile '%s': duration_seconds must be a whole number >= 900", name)
    end
  end
  local cfg, cerr = ctx.config()
  if not cfg then return nil, "failed", cerr.message end
  local c, err = sts.assume_role(ctx, cfg, {
    role_arn = p.role_arn, role_session_name = p.role_session_name or session_name(ctx),
    external_id = p.external_id, duration_seconds = duration, source_credentials = src,
    source = "profile:" .. name,
  })
  if not c then return nil, "failed", string.format("profile '%s': %s", name, err) end
  return c
end

-- Credentials of profile `name`: creds | nil, status, reason.
resolve_profile = function(self, files, name, visited, path, explicit)
  local conf, cred = files.profiles[name], files.credentials[name]
  if not conf and not cred then
    local why = string.format("no profile '%s' in %s or %s", name, files.config_file, files.credentials_file)
    return nil, explicit and "failed" or "skipped", why
  end
  local p = {}
  for k, v in pairs(conf or {}) do p[k] = v end
  for k, v in pairs(cred or {}) do p[k] = v end
  visited[name] = true
  path[#path + 1] = name
  if p.role_arn then
    return assume_role_profile(self, files, name, p, visited, path)
  end
  if p.web_identity_token_file then
    return nil, "failed", string.format("profile '%s' has web_identity_token_file but no role_arn", name)
  end
  local c, why = static_from(p, name, files)
  if c then return c end
  if why then return nil, "failed", why end
  if p.credential_process then
    return credential_process(p.credential_process, name)
  end
  if p.sso_session or p.sso_start_url then
    return nil, "failed", string.format("profile '%s' uses IAM Identity Center (SSO), which emrflow does " ..
      "not support; use `aws configure export-credentials` or another source", name)
  end
  return nil, explicit and "failed" or "skipped", string.format("profile '%s' has no credentials " ..
    "(no aws_access_key_id, role_arn or web_identity_token_file)", name)
end

local function fetch_profile(self)
  local cfg, cerr = self.ctx.config()
  if not cfg then return nil, "failed", cerr.message end
  local name = self.opts.profile or cfg.profile or "default"
  local explicit = self.opts.profile ~= nil or cfg.profile_source ~= nil
  local files, ferr = config.load_files(cfg.config_file, cfg.credentials_file)
  if not files then return nil, "failed", ferr.message end
  return resolve_profile(self, files, name, {}, {}, explicit)
end

--- creds.profile{ profile =, env =, config =, http =, now = }
function M.profile(opts)
  opts = check_opts("emrflow.credentials.profile", opts)
  return new_provider("profile", "shared config/credentials files", fetch_profile, opts)
end

-- ------------------------------------------------------------------------
-- The chain
-- ------------------------------------------------------------------------

local function fetch_chain(self)
  if self.winner then
    local c, status, reason = self.winner:fetch()
    if c then return c end
    return nil, status, reason, { { provider = self.winner.name, label = self.winner.label .. " (refresh)",
                                    status = status, reason = reason } }
  end
  local tried = {}
  local providers = self.providers
  for i, p in ipairs(providers) do
    local c, status, reason
    if p.skip_reason then
      status, reason = "skipped", p.skip_reason
    else
      c, status, reason = p:fetch()
    end
    if c then
      self.winner = p
      return c
    end
    tried[#tried + 1] = { provider = p.name, label = p.label, status = status or "failed", reason = reason }
    if status ~= "skipped" and not p.continue_on_failure then
      for j = i + 1, #providers do
        tried[#tried + 1] = { provider = providers[j].name, label = providers[j].label, status = "not tried",
                              reason = "an earlier provider is configured but failed" }
      end
      break
    end
  end
  return nil, "failed", nil, tried
end

--- creds.chain{ credentials =, profile =, env =, config =, http =, now =, refresh_window_s =,
---              providers = { provider, ... } (replaces the default list) }
function M.chain(opts)
  opts = check_opts("emrflow.credentials.chain", opts, { credentials = true, providers = true })
  local sub = {}
  for k, v in pairs(opts) do
    if k ~= "credentials" and k ~= "providers" and k ~= "refresh_window_s" then sub[k] = v end
  end
  local providers
  if opts.providers then
    if type(opts.providers) ~= "table" or #opts.providers == 0 then
      error("emrflow.credentials.chain: option 'providers' must be a non-empty list of providers", 2)
    end
    for i, p in ipairs(opts.providers) do
      if getmetatable(p) ~= Provider then
        error("emrflow.credentials.chain: providers[" .. i .. "] is not a credentials provider", 2)
      end
    end
    providers = opts.providers
  else
    local explicit
    if opts.credentials ~= nil then
      common.check_static(opts.credentials, "emrflow.credentials.chain")
      explicit = M.static(opts.credentials)
    else
      explicit = new_provider("static", "explicit credentials", function() end, {},
                              { skip_reason = "none passed in code" })
    end
    local env = M.env(sub)
    if opts.profile then
      env.skip_reason = "a profile ('" .. opts.profile .. "') was named in code"
    end
    local prof = M.profile(sub)
    local imds = M.imds(sub)
    imds.continue_on_failure = true
    -- Web identity from the environment (IRSA) comes before the shared files, as in
    -- the SDKs (ecosystem.md (c)): a pod with a stray ~/.aws/credentials keeps its role.
    -- A profile named in code is the caller's explicit choice: it goes first, as it
    -- also displaces the environment.
    local web = M.web_identity(sub)
    if opts.profile then
      providers = { explicit, env, prof, web, M.container(sub), imds }
    else
      providers = { explicit, env, web, prof, M.container(sub), imds }
    end
  end
  local chain = new_provider("chain", "credential chain", fetch_chain, opts, { providers = providers })
  -- invalidating a chain (e.g. after an ExpiredToken reply) also forgets which provider won,
  -- so the next get() walks the whole chain again
  chain.invalidate = function(self)
    Provider.invalidate(self)
    self.winner = nil
  end
  chain.make_error = function(self, status, reason, tried)
    if self.winner and not tried then
      tried = { { provider = self.winner.name, label = self.winner.label .. " (refresh)", status = status,
                  reason = reason } }
    end
    if self.winner and tried and #tried == 1 then
      return common.error("refreshing AWS credentials failed: " .. tried[1].label .. ": " ..
        tostring(status) .. (reason and (" (" .. reason .. ")") or ""), { tried = tried })
    end
    return Provider.make_error(self, status, reason, tried)
  end
  return chain
end

return M
