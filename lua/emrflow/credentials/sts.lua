--- AWS STS over its Query API: AssumeRole (SigV4-signed with the source credentials) and
-- AssumeRoleWithWebIdentity (unsigned). POST form-encoded Action=...&Version=2011-06-15,
-- XML reply; only the few fields needed are read.
-- @module emrflow.credentials.sts
local common = require "emrflow.credentials.common"

local M = {}

local VERSION = "2011-06-15"

local function form(params)
  local parts = {}
  for _, kv in ipairs(params) do
    if kv[2] ~= nil then
      parts[#parts + 1] = common.urlencode(kv[1]) .. "=" .. common.urlencode(kv[2])
    end
  end
  return table.concat(parts, "&")
end
M.form = form

-- Parses a successful reply: returns a credentials object or nil, why.
local function parse_credentials(body, result_tag, source)
  local _, start = body:find("<" .. result_tag .. "[%s>]")
  if not start then return nil, "the reply has no <" .. result_tag .. "> element" end
  local _, cstart = body:find("<Credentials[%s>]", start)
  if not cstart then return nil, "the reply has no <Credentials> element" end
  local out = {}
  for _, f in ipairs { { "AccessKeyId", "access_key_id" }, { "SecretAccessKey", "secret_access_key" },
                       { "SessionToken", "session_token" }, { "Expiration", "expiration" } } do
    local v = common.xml_text(body, f[1], cstart)
    if not v or v == "" then return nil, "the reply's <Credentials> has no <" .. f[1] .. ">" end
    out[f[2]] = v
  end
  local exp = common.parse_time(out.expiration)
  if not exp then return nil, "the reply's <Expiration> is not an ISO 8601 time" end
  out.expiration = exp
  local arn = common.xml_text(body, "Arn", start)
  if arn then out.account_id = arn:match("^arn:[^:]+:sts::(%d+):") end
  out.source = source
  return common.new_credentials(out)
end

-- Describes an error reply without any secret: "AccessDenied: message (HTTP 403)".
local function describe_error(resp, secrets)
  local body = resp.body or ""
  local code = common.xml_text(body, "Code")
  local msg = common.xml_text(body, "Message")
  local rid = common.xml_text(body, "RequestId")
  local s
  if code then
    s = code .. (msg and (": " .. msg) or "")
  else
    s = "unexpected reply"
  end
  s = common.redact(s, secrets) .. string.format(" (HTTP %d)", resp.status)
  if rid then s = s .. " [request " .. common.redact(rid, nil, 80) .. "]" end
  return s, code
end

--- The STS endpoint and signing region for ctx: returns url, region.
function M.endpoint(cfg)
  local region = cfg and cfg.region or "us-east-1"
  local url = cfg and cfg.sts_endpoint
  if not url then
    -- no region anywhere: the global endpoint, signed for us-east-1 (as botocore does)
    url = "https://sts.amazonaws.com"
  end
  return url, region
end

local function call(ctx, cfg, params, signer_creds, result_tag, secrets, source)
  local url, region = M.endpoint(cfg)
  url = url:gsub("/+$", "") .. "/"
  local body = form(params)
  local host = url:match("^%a+://([^/?#]+)")
  local headers = {
    { "Host", host },
    { "Content-Type", "application/x-www-form-urlencoded; charset=utf-8" },
  }
  if signer_creds then
    local sigv4 = require "emrflow.sigv4"
    local ok, signed = pcall(sigv4.sign, {
      method = "POST", url = url, headers = headers, body = body, region = region, service = "sts",
      credentials = signer_creds, time = ctx.sign_time(),
    })
    if not ok then
      return nil, "cannot sign the STS request: " .. common.redact(signed, secrets)
    end
    headers = signed.headers
  end
  local req = { method = "POST", url = url, headers = headers, body = body,
                timeout_ms = ctx.sts_timeout_ms or 10000, connect_timeout_ms = 5000,
                ca_bundle = cfg and cfg.ca_bundle or nil }
  local attempts = cfg and cfg.max_attempts or 3
  local resp, err = common.send(ctx, req, attempts)
  if not resp then
    return nil, "STS " .. params[1][2] .. " at " .. url .. " failed: " .. common.describe_neterr(err)
  end
  if resp.status ~= 200 then
    local why = describe_error(resp, secrets)
    return nil, "STS " .. params[1][2] .. " at " .. url .. " failed: " .. why
  end
  local c, why = parse_credentials(resp.body or "", result_tag, source)
  if not c then return nil, "STS " .. params[1][2] .. " at " .. url .. ": " .. why end
  return c
end

--- AssumeRole. cfg: from config.resolve (region, sts_endpoint, ca_bundle, max_attempts) or nil;
--- o: role_arn, role_session_name, external_id?, duration_seconds?, source_credentials, source?.
--- Returns credentials | nil, why.
function M.assume_role(ctx, cfg, o)
  local src = o.source_credentials
  return call(ctx, cfg, {
    { "Action", "AssumeRole" }, { "Version", VERSION },
    { "RoleArn", o.role_arn }, { "RoleSessionName", o.role_session_name },
    { "ExternalId", o.external_id }, { "DurationSeconds", o.duration_seconds },
  }, src, "AssumeRoleResult",
  { src.secret_access_key, src.session_token, o.external_id }, o.source or "assume-role")
end

--- AssumeRoleWithWebIdentity. o: role_arn, role_session_name, token, duration_seconds?.
function M.assume_role_with_web_identity(ctx, cfg, o)
  return call(ctx, cfg, {
    { "Action", "AssumeRoleWithWebIdentity" }, { "Version", VERSION },
    { "RoleArn", o.role_arn }, { "RoleSessionName", o.role_session_name },
    { "WebIdentityToken", o.token }, { "DurationSeconds", o.duration_seconds },
  }, nil, "AssumeRoleWithWebIdentityResult", { o.token }, o.source or "web-identity")
end

return M
