--- AWS client configuration: region, endpoints, retry settings, file locations.
--
-- Sources, highest first, for each setting: the argument passed to resolve{}, the environment
-- (read when resolve is called, through `env` when given, never at require time), then the
-- selected profile of the shared config file (and, for keys botocore reads there too, the
-- shared credentials file). Every variable and key is listed once, in SETTINGS below.
--
-- Errors (decided):
--   * caller misuse (wrong argument types, unknown option names, a bad value passed in code)
--     raises, with the option's name;
--   * problems of the environment or files (no region anywhere, a named profile that does not
--     exist, an unparsable file, a bad AWS_MAX_ATTEMPTS) return nil, err with err.code =
--     "config" and a message naming the variable, file and key; unless `require_region = false`
--     is passed, in which case a missing region leaves region and endpoint_url nil.
--   * Secrets from the files are never copied into the result (only file paths are kept; the
--     credential providers read the files themselves).
-- @module emrflow.config
local ini = require "emrflow.ini"

local M = {}

local core_ok, core = pcall(require, "emrflow.core")
local ERROR_MT = core_ok and core.error_mt or {
  __name = "emrflow.Error",
  __tostring = function(e) return "emrflow: " .. tostring(e.code) .. ": " .. tostring(e.message) end,
}

local function fail(message)
  return nil, setmetatable({ code = "config", message = message, retryable = false }, ERROR_MT)
end

-- Every setting: argument name, environment variables (first set wins), profile key, kind.
local SETTINGS = {
  region         = { env = { "AWS_REGION", "AWS_DEFAULT_REGION" }, key = "region", kind = "string" },
  max_attempts   = { env = { "AWS_MAX_ATTEMPTS" }, key = "max_attempts", kind = "integer", default = 3 },
  retry_mode     = { env = { "AWS_RETRY_MODE" }, key = "retry_mode", kind = "enum",
                     values = { legacy = true, standard = true, adaptive = true }, default = "standard" },
  ca_bundle      = { env = { "AWS_CA_BUNDLE" }, key = "ca_bundle", kind = "string" },
  use_fips       = { env = { "AWS_USE_FIPS_ENDPOINT" }, key = "use_fips_endpoint", kind = "boolean",
                     default = false },
  use_dualstack  = { env = { "AWS_USE_DUALSTACK_ENDPOINT" }, key = "use_dualstack_endpoint",
                     kind = "boolean", default = false },
  ignore_configured_endpoint_urls = { env = { "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS" },
                     key = "ignore_configured_endpoint_urls", kind = "boolean", default = false },
  sts_regional_endpoints = { env = { "AWS_STS_REGIONAL_ENDPOINTS" }, key = "sts_regional_endpoints",
                     kind = "enum", values = { regional = true, legacy = true }, default = "regional" },
  -- as botocore: only "true" (any case) disables IMDS; any other value leaves it on
  imds_disabled  = { env = { "AWS_EC2_METADATA_DISABLED" }, kind = "flag", default = false },
  imds_v1_disabled = { env = { "AWS_EC2_METADATA_V1_DISABLED" }, key = "ec2_metadata_v1_disabled",
                     kind = "boolean", default = false },
  imds_endpoint_mode = { env = { "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE" },
                     key = "ec2_metadata_service_endpoint_mode", kind = "enum",
                     values = { ipv4 = true, ipv6 = true }, default = "ipv4", lower = true },
  imds_endpoint  = { env = { "AWS_EC2_METADATA_SERVICE_ENDPOINT" }, key = "ec2_metadata_service_endpoint",
                     kind = "url" },
  imds_timeout_s = { env = { "AWS_METADATA_SERVICE_TIMEOUT" }, key = "metadata_service_timeout",
                     kind = "number", default = 1 },
  imds_attempts  = { env = { "AWS_METADATA_SERVICE_NUM_ATTEMPTS" }, key = "metadata_service_num_attempts",
                     kind = "integer", default = 1 },
}
M.SETTINGS = SETTINGS

-- Services this module knows endpoints for: endpoint prefix, the service-id form used in
-- AWS_ENDPOINT_URL_<X> and in [services] sections.
local SERVICES = {
  ["emr-containers"] = { prefix = "emr-containers", env = "EMR_CONTAINERS", key = "emr_containers" },
  sts                = { prefix = "sts", env = "STS", key = "sts" },
  states             = { prefix = "states", env = "SFN", key = "sfn" },
}
SERVICES.sfn = SERVICES.states
SERVICES["emr_containers"] = SERVICES["emr-containers"]
M.SERVICES = SERVICES

-- Regions of STS's legacy global endpoint (sts_regional_endpoints = legacy).
local STS_LEGACY_GLOBAL = {}
for r in ([[ap-northeast-1 ap-south-1 ap-southeast-1 ap-southeast-2 aws-global ca-central-1
  eu-central-1 eu-north-1 eu-west-1 eu-west-2 eu-west-3 sa-east-1 us-east-1 us-east-2 us-west-1
  us-west-2]]):gmatch("%S+") do STS_LEGACY_GLOBAL[r] = true end

local private = setmetatable({}, { __mode = "k" })

local function partition_of(region)
  if region:match("^cn%-") then
    return { name = "aws-cn", dns = "amazonaws.com.cn", dualstack = "api.amazonwebservices.com.cn" }
  elseif region:match("^us%-gov%-") then
    return { name = "aws-us-gov", dns = "amazonaws.com", dualstack = "api.aws" }
  elseif region:match("^us%-isob%-") then
    return { name = "aws-iso-b", dns = "sc2s.sgov.gov" }
  elseif region:match("^us%-isof%-") then
    return { name = "aws-iso-f", dns = "csp.hci.ic.gov" }
  elseif region:match("^eu%-isoe%-") then
    return { name = "aws-iso-e", dns = "cloud.adc-e.uk" }
  elseif region:match("^us%-iso%-") then
    return { name = "aws-iso", dns = "c2s.ic.gov" }
  end
  return { name = "aws", dns = "amazonaws.com", dualstack = "api.aws" }
end
M.partition_of = partition_of

local function make_getenv(env)
  if env == nil then
    return function(name)
      local v = os.getenv(name)
      if v == "" then return nil end
      return v
    end
  end
  return function(name)
    local v = env[name]
    if v == nil or v == "" then return nil end
    return tostring(v)
  end
end
M.make_getenv = make_getenv

local function expand_home(path, getenv)
  if path:sub(1, 1) == "~" and (path:sub(2, 2) == "/" or #path == 1) then
    local h = getenv("HOME")
    if h then return h .. path:sub(2) end
  end
  return path
end

local function valid_url(u)
  return type(u) == "string" and u:match("^[hH][tT][tT][pP][sS]?://[^/%s]+") ~= nil and not u:find("%s")
end

-- Converts a raw string (from env or a file) to the setting's kind. Returns value or nil, why.
local function convert(spec, raw)
  if spec.kind == "string" then
    return raw
  elseif spec.kind == "boolean" then
    local l = raw:lower()
    if l == "true" then return true elseif l == "false" then return false end
    return nil, "must be true or false"
  elseif spec.kind == "flag" then
    return raw:lower() == "true"
  elseif spec.kind == "integer" then
    local n = tonumber(raw)
    if not n or math.type(n) ~= "integer" and n ~= math.floor(n) or n < 1 then
      return nil, "must be a whole number >= 1"
    end
    return math.tointeger(n)
  elseif spec.kind == "number" then
    local n = tonumber(raw)
    if not n or n <= 0 then return nil, "must be a number > 0" end
    return n
  elseif spec.kind == "enum" then
    local v = spec.lower and raw:lower() or raw
    if not spec.values[v] then
      local names = {}
      for k in pairs(spec.values) do names[#names + 1] = k end
      table.sort(names)
      return nil, "must be one of " .. table.concat(names, ", ")
    end
    return v
  elseif spec.kind == "url" then
    if not valid_url(raw) then return nil, "must be an http:// or https:// URL" end
    return raw
  end
  error("unknown setting kind " .. tostring(spec.kind))
end

-- Checks a value passed in code (misuse raises).
local function check_arg(name, spec, v)
  local k = spec.kind
  local ok
  if k == "string" then ok = type(v) == "string" and v ~= ""
  elseif k == "boolean" or k == "flag" then ok = type(v) == "boolean"
  elseif k == "integer" then ok = math.type(v) == "integer" and v >= 1
  elseif k == "number" then ok = type(v) == "number" and v > 0
  elseif k == "enum" then ok = type(v) == "string" and spec.values[spec.lower and v:lower() or v]
  elseif k == "url" then ok = valid_url(v)
  end
  if not ok then
    local _, why = convert(spec, type(v) == "string" and v or "")
    error(string.format("emrflow.config.resolve: option '%s' %s (got %s)", name,
      why or ("must be a " .. k), type(v) == "string" and ("'" .. v .. "'") or type(v)), 3)
  end
  if k == "enum" and spec.lower then return v:lower() end
  return v
end

--- Loads the profile data of the config and credentials files. Returns a table
--- `{ profiles = {name = {...}}, credentials = {name = {...}}, services = {...},
---    config_file =, credentials_file = }` or nil, err. Missing files count as empty.
function M.load_files(config_file, credentials_file)
  local out = { profiles = {}, credentials = {}, services = {}, sso_sessions = {},
                config_file = config_file, credentials_file = credentials_file }
  local sections, order, kind = ini.read_file(config_file)
  if sections then
    out.profiles, out.services, out.sso_sessions = ini.config_profiles(sections, order)
  elseif kind ~= "missing" then
    return fail("cannot use the AWS config file (AWS_CONFIG_FILE): " .. order)
  end
  sections, order, kind = ini.read_file(credentials_file)
  if sections then
    out.credentials = sections
  elseif kind ~= "missing" then
    return fail("cannot use the AWS shared credentials file (AWS_SHARED_CREDENTIALS_FILE): " .. order)
  end
  return out
end

--- The file locations and profile name, from arguments and the environment.
function M.locate(args, getenv)
  local config_file = args.config_file or getenv("AWS_CONFIG_FILE") or "~/.aws/config"
  local credentials_file = args.credentials_file or getenv("AWS_SHARED_CREDENTIALS_FILE")
    or "~/.aws/credentials"
  local profile, profile_source
  if args.profile then
    profile, profile_source = args.profile, "the profile option"
  elseif getenv("AWS_PROFILE") then
    profile, profile_source = getenv("AWS_PROFILE"), "AWS_PROFILE"
  elseif getenv("AWS_DEFAULT_PROFILE") then
    profile, profile_source = getenv("AWS_DEFAULT_PROFILE"), "AWS_DEFAULT_PROFILE"
  else
    profile = "default"
  end
  return expand_home(config_file, getenv), expand_home(credentials_file, getenv), profile, profile_source
end

local KNOWN_ARGS = {
  region = true, endpoint_url = true, profile = true, env = true, config_file = true,
  credentials_file = true, require_region = true, files = true,
}
for k in pairs(SETTINGS) do KNOWN_ARGS[k] = true end

-- Host of a service in a region with the variants.
local function default_endpoint(service, region, use_fips, use_dualstack)
  local part = partition_of(region)
  local prefix = service.prefix .. (use_fips and "-fips" or "")
  local suffix = part.dns
  if use_dualstack then
    if not part.dualstack then
      return nil, string.format("dual-stack endpoints are not available in partition %s (region %s)",
                                part.name, region)
    end
    suffix = part.dualstack
  end
  return string.format("https://%s.%s.%s", prefix, region, suffix)
end

local function strip_slash(u)
  return (u:gsub("/+$", ""))
end

--- resolve{ region=, endpoint_url=, profile=, env=, config_file=, credentials_file=,
---          max_attempts=, retry_mode=, ca_bundle=, use_fips=, use_dualstack=, require_region= }
--- Returns the configuration table (see the module header) or nil, err.
function M.resolve(args)
  args = args or {}
  if type(args) ~= "table" then
    error("emrflow.config.resolve: expected a table of options, got " .. type(args), 2)
  end
  for k in pairs(args) do
    if not KNOWN_ARGS[k] then
      error("emrflow.config.resolve: unknown option '" .. tostring(k) .. "'", 2)
    end
  end
  if args.env ~= nil and type(args.env) ~= "table" then
    error("emrflow.config.resolve: option 'env' must be a table, got " .. type(args.env), 2)
  end
  for _, k in ipairs { "profile", "config_file", "credentials_file" } do
    if args[k] ~= nil and (type(args[k]) ~= "string" or args[k] == "") then
      error("emrflow.config.resolve: option '" .. k .. "' must be a non-empty string", 2)
    end
  end
  if args.endpoint_url ~= nil and not valid_url(args.endpoint_url) then
    error("emrflow.config.resolve: option 'endpoint_url' must be an http:// or https:// URL", 2)
  end

  local getenv = make_getenv(args.env)
  local config_file, credentials_file, profile, profile_source = M.locate(args, getenv)
  local files = args.files
  if not files then
    local err
    files, err = M.load_files(config_file, credentials_file)
    if not files then return nil, err end
  end
  local prof = files.profiles[profile]
  local cprof = files.credentials[profile]
  if profile_source and not prof and not cprof then
    return fail(string.format("profile '%s' (from %s) is not in %s nor in %s", profile,
                              profile_source, config_file, credentials_file))
  end
  -- as botocore's full_config: the credentials file's keys of the same profile count too
  -- (they win); secret keys are dropped from the copy kept for endpoint_for
  local merged = {}
  for k, v in pairs(prof or {}) do merged[k] = v end
  for k, v in pairs(cprof or {}) do merged[k] = v end
  for _, k in ipairs { "aws_access_key_id", "aws_secret_access_key", "aws_session_token",
                       "aws_security_token" } do merged[k] = nil end
  prof = merged

  local cfg = { profile = profile, profile_source = profile_source, config_file = config_file,
                credentials_file = credentials_file }
  for name, spec in pairs(SETTINGS) do
    local v = args[name]
    if v ~= nil then
      v = check_arg(name, spec, v)
    else
      for _, var in ipairs(spec.env) do
        local raw = getenv(var)
        if raw then
          local cv, why = convert(spec, raw)
          if cv == nil then return fail(string.format("%s=%s: %s", var, raw, why)) end
          v = cv
          break
        end
      end
      if v == nil and spec.key then
        local raw = prof[spec.key]
        if type(raw) == "string" and raw ~= "" then
          local cv, why = convert(spec, raw)
          if cv == nil then
            return fail(string.format("%s, profile '%s', key '%s': %s", config_file, profile, spec.key, why))
          end
          v = cv
        end
      end
      if v == nil then v = spec.default end
    end
    cfg[name] = v
  end

  -- legacy FIPS pseudo-regions: fips-us-east-1 / us-east-1-fips sign with the real region
  if cfg.region then
    local real = cfg.region:match("^fips%-(.+)$") or cfg.region:match("^(.+)%-fips$")
    if real then cfg.region, cfg.use_fips = real, true end
    if not cfg.region:match("^[a-z][a-z0-9%-]*[a-z0-9]$") then
      return fail(string.format("region '%s' is not a valid region name", cfg.region))
    end
  end

  private[cfg] = { getenv = getenv, profile = prof, services = files.services }

  if args.endpoint_url then
    cfg.endpoint_url = strip_slash(args.endpoint_url)
  end
  if not cfg.region and args.require_region ~= false then
    return fail(string.format(
      "no AWS region: pass region=, or set AWS_REGION or AWS_DEFAULT_REGION, or set 'region' in " ..
      "profile '%s' of %s", profile, config_file))
  end

  -- without a region (require_region = false) only configured endpoints resolve
  local err
  if not cfg.endpoint_url then
    cfg.endpoint_url, err = M.endpoint_for("emr-containers", cfg)
    if err and cfg.region then return nil, err end
  end
  cfg.sts_endpoint, err = M.endpoint_for("sts", cfg)
  if err and cfg.region then return nil, err end
  if not cfg.imds_endpoint then
    cfg.imds_endpoint = cfg.imds_endpoint_mode == "ipv6" and "http://[fd00:ec2::254]"
      or "http://169.254.169.254"
  end
  cfg.imds_endpoint = strip_slash(cfg.imds_endpoint)
  return cfg
end

--- The endpoint of `service` ("emr-containers", "sts", "states"/"sfn", or any endpoint prefix)
--- for cfg: a configured endpoint (AWS_ENDPOINT_URL_<SERVICE>, AWS_ENDPOINT_URL, the profile's
--- services section, the profile's endpoint_url, unless ignore_configured_endpoint_urls), else
--- the regional default with the FIPS / dual-stack variants. Returns url or nil, err.
function M.endpoint_for(service, cfg)
  if type(service) ~= "string" or service == "" then
    error("emrflow.config.endpoint_for: service must be a non-empty string", 2)
  end
  if type(cfg) ~= "table" then
    error("emrflow.config.endpoint_for: cfg must be a table from config.resolve", 2)
  end
  local svc = SERVICES[service] or {
    prefix = service, env = service:upper():gsub("[%- ]", "_"), key = service:lower():gsub("[%- ]", "_"),
  }
  local p = private[cfg]
  if p and not cfg.ignore_configured_endpoint_urls then
    local u = p.getenv("AWS_ENDPOINT_URL_" .. svc.env)
    if u then
      if not valid_url(u) then return fail("AWS_ENDPOINT_URL_" .. svc.env .. " must be an http(s):// URL") end
      return strip_slash(u)
    end
    u = p.getenv("AWS_ENDPOINT_URL")
    if u then
      if not valid_url(u) then return fail("AWS_ENDPOINT_URL must be an http(s):// URL") end
      return strip_slash(u)
    end
    local sname = p.profile.services
    local section = type(sname) == "string" and p.services[sname]
    local sub = section and section[svc.key]
    if type(sub) == "table" and sub.endpoint_url then
      if not valid_url(sub.endpoint_url) then
        return fail(string.format("%s, [services %s] %s.endpoint_url must be an http(s):// URL",
                                  cfg.config_file, sname, svc.key))
      end
      return strip_slash(sub.endpoint_url)
    end
    u = p.profile.endpoint_url
    if type(u) == "string" and u ~= "" then
      if not valid_url(u) then
        return fail(string.format("%s, profile '%s', key 'endpoint_url' must be an http(s):// URL",
                                  cfg.config_file, cfg.profile))
      end
      return strip_slash(u)
    end
  end
  local region = cfg.region
  if not region then
    return fail("no AWS region to build the " .. service .. " endpoint from")
  end
  if svc.prefix == "sts" and cfg.sts_regional_endpoints == "legacy" and STS_LEGACY_GLOBAL[region]
      and not cfg.use_fips and not cfg.use_dualstack then
    return "https://sts.amazonaws.com"
  end
  local u, err = default_endpoint(svc, region, cfg.use_fips, cfg.use_dualstack)
  if not u then return fail(err) end
  return u
end

--- The environment lookup function cfg was resolved with (nil for a hand-made cfg).
--- Checks a client's options table (caller misuse raises, naming `who`): a table, no unknown
-- option, each of the type `allowed[name]` says, max_attempts an integer >= 1. `level` is
-- error()'s level as seen from the function calling this one.
function M.check_options(who, allowed, opts, level)
  level = (level or 1) + 1
  if type(opts) ~= "table" then
    error(string.format("%s: expected an options table, got %s", who, type(opts)), level)
  end
  for k, v in pairs(opts) do
    local want = allowed[k]
    if not want then error(string.format("%s: unknown option '%s'", who, tostring(k)), level) end
    if type(v) ~= want then
      error(string.format("%s: option '%s' must be a %s, got %s", who, k, want, type(v)), level)
    end
  end
  if opts.max_attempts and (math.type(opts.max_attempts) ~= "integer" or opts.max_attempts < 1) then
    error(who .. ": option 'max_attempts' must be an integer >= 1", level)
  end
end

function M.getenv_of(cfg)
  local p = private[cfg]
  return p and p.getenv
end

--- The host part of an URL ("https://h:1/x" --> "h:1").
function M.host_of(url)
  return url:match("^%a+://([^/?#]+)")
end

return M
