-- emrflow.asl.resources: the forms of a Task's Resource ARN that Step Functions accepts.
--
--   resources.parse(arn) --> info | nil, problem
--   resources.check(arn) --> nil | problem
--
-- Only the ARN's form is checked here; what an integration does with its parameters is the
-- integration's business (EMR on EKS: emrflow.emr.tasks). The forms:
--
--   arn:<partition>:states:::<service>:<api>[.sync|.sync:2|.waitForTaskToken]   kind "optimized"
--   arn:<partition>:states:::aws-sdk:<service>:<action>[.waitForTaskToken]     kind "aws-sdk"
--   arn:<partition>:states:::http:invoke                                       kind "http"
--   arn:<partition>:lambda:<region>:<account>:function:<name>[:<qualifier>]    kind "lambda"
--   arn:<partition>:states:<region>:<account>:activity:<name>                  kind "activity"
--
-- info = { kind =, partition =, service =, api =, suffix = "" | ".sync" | ".sync:2" |
--          ".waitForTaskToken", region =, account = } plus, for a Lambda function ARN,
-- function_name and qualifier (or nil), and for an activity, activity_name.
-- Optimized, aws-sdk and http resources have region = "" and account = "".
local M = {}

local sfind, ssub, sformat = string.find, string.sub, string.format

M.PARTITIONS = { "aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b" }
local PARTITION = {}
for _, p in ipairs(M.PARTITIONS) do PARTITION[p] = true end

-- Suffixes in the order they are tried (".sync:2" before ".sync").
local SUFFIXES = { ".sync:2", ".sync", ".waitForTaskToken" }

local function problem(arn, why)
  return sformat("%q is not a resource ARN Step Functions accepts: %s", arn, why)
end

-- "<api>[suffix]" --> api, suffix
local function split_suffix(rest)
  for _, s in ipairs(SUFFIXES) do
    if #rest > #s and ssub(rest, -#s) == s then return ssub(rest, 1, -#s - 1), s end
  end
  return rest, ""
end

local function is_region(s)
  return sfind(s, "^%l%l[%l%-]*%-%d+$") ~= nil
end

local function is_account(s)
  return sfind(s, "^%d%d%d%d%d%d%d%d%d%d%d%d$") ~= nil
end

local function is_service(s)
  return sfind(s, "^%l[%l%d%-]*$") ~= nil and ssub(s, -1) ~= "-"
end

local function is_api(s)
  return sfind(s, "^%a[%w]*$") ~= nil
end

-- arn:<p>:states:::<rest>
local function parse_integration(arn, info, rest)
  local service, tail = rest:match("^([^:]*):(.*)$")
  if not service then
    return nil, problem(arn, "expected <service>:<api> after 'states:::'")
  end
  if service == "aws-sdk" then
    local sdk_service, action_part = tail:match("^([^:]*):(.*)$")
    if not sdk_service or not is_service(sdk_service) then
      return nil, problem(arn, "expected aws-sdk:<service>:<action>, with a lowercase service name")
    end
    local action, suffix = split_suffix(action_part)
    if suffix == ".sync" or suffix == ".sync:2" then
      return nil, problem(arn, "AWS SDK integrations have no " .. suffix
        .. " form (only request-response and .waitForTaskToken)")
    end
    if not is_api(action) then
      return nil, problem(arn, sformat(
        "'%s' is not an action name (letters and digits, such as getObject)", action))
    end
    info.kind, info.service, info.api, info.suffix = "aws-sdk", sdk_service, action, suffix
    return info
  end
  if not is_service(service) then
    return nil, problem(arn, sformat(
      "'%s' is not a service name (lowercase letters, digits and '-')", service))
  end
  local api, suffix = split_suffix(tail)
  if not is_api(api) then
    return nil, problem(arn, sformat(
      "'%s' is not an API name (letters and digits, such as startJobRun)", api))
  end
  if service == "http" then
    if api ~= "invoke" or suffix ~= "" then
      return nil, problem(arn, "the HTTP Task resource is exactly arn:<partition>:states:::http:invoke")
    end
    info.kind = "http"
  else
    info.kind = "optimized"
  end
  info.service, info.api, info.suffix = service, api, suffix
  return info
end

-- arn:<p>:lambda:<region>:<account>:function:<name>[:<qualifier>]
local function parse_lambda(arn, info, region, account, rest)
  if not is_region(region) or not is_account(account) then
    return nil, problem(arn, "a Lambda function ARN needs a region and a 12-digit account id")
  end
  local name, qualifier = rest:match("^function:([^:]*):?(.*)$")
  if not name then
    return nil, problem(arn, "expected function:<name>[:<version or alias>] in a Lambda ARN")
  end
  if not sfind(name, "^[%w%-_]+$") or #name > 64 then
    return nil, problem(arn, sformat(
      "'%s' is not a Lambda function name (1 to 64 letters, digits, '-' or '_')", name))
  end
  if sfind(rest, ":$") or (qualifier ~= "" and not (sfind(qualifier, "^%$LATEST$")
      or sfind(qualifier, "^[%w%-_]+$")) or #qualifier > 128) then
    return nil, problem(arn, sformat("'%s' is not a Lambda version or alias", qualifier))
  end
  info.kind, info.service, info.api, info.suffix = "lambda", "lambda", "invoke", ""
  info.region, info.account = region, account
  info.function_name = name
  info.qualifier = qualifier ~= "" and qualifier or nil
  return info
end

-- arn:<p>:states:<region>:<account>:activity:<name>
local function parse_activity(arn, info, region, account, rest)
  local name = rest:match("^activity:(.*)$")
  if not name then
    return nil, problem(arn, "expected activity:<name> after the region and account")
  end
  if not is_region(region) or not is_account(account) then
    return nil, problem(arn, "an activity ARN needs a region and a 12-digit account id")
  end
  -- Activity names: 1-80 characters, no whitespace, wildcards, brackets, control characters.
  if name == "" or utf8.len(name) == nil or utf8.len(name) > 80
      or sfind(name, "[%s%c<>{}%[%]%?%*\"#%%\\%^|~`%$&,;:/]") then
    return nil, problem(arn, sformat("'%s' is not an activity name (1 to 80 characters, no spaces, "
      .. "brackets, wildcards or punctuation such as : / ; ,)", name))
  end
  info.kind, info.service, info.api, info.suffix = "activity", "states", "activity", ""
  info.region, info.account = region, account
  info.activity_name = name
  return info
end

function M.parse(arn)
  if type(arn) ~= "string" then
    return nil, sformat("a Task resource must be an ARN string, not %s", type(arn))
  end
  local partition, service, region, account, rest = arn:match("^arn:([^:]*):([^:]*):([^:]*):([^:]*):(.*)$")
  if not partition then
    return nil, problem(arn, "expected arn:<partition>:<service>:<region>:<account>:<resource>")
  end
  if not PARTITION[partition] then
    return nil, problem(arn, sformat("unknown partition '%s' (one of %s)", partition,
      table.concat(M.PARTITIONS, ", ")))
  end
  local info = { partition = partition, region = "", account = "", suffix = "" }
  if service == "states" then
    if region == "" and account == "" then return parse_integration(arn, info, rest) end
    return parse_activity(arn, info, region, account, rest)
  elseif service == "lambda" then
    return parse_lambda(arn, info, region, account, rest)
  end
  return nil, problem(arn, sformat(
    "a Task resource is a states, Lambda function or activity ARN, not a '%s' ARN", service))
end

function M.check(arn)
  local info, why = M.parse(arn)
  if info then return nil end
  return why
end

return M
