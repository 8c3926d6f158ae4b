-- emrflow.policy: the IAM policy a state machine's role needs for the integrations it uses.
--
--   local policy = require "emrflow.policy"
--   local doc, notes = policy.for_definition(definition, { region = "*", account = "*" })
--   -- definition: a Lua table or ASL JSON text; doc: the policy document (JSON-ready, key
--   -- order kept); notes: list of strings about what could not be narrowed or is not known
--
-- Resources are narrowed where the definition makes them static (a Parameters member without
-- ".$", an Arguments value that is not a JSONata "{% %}" expression); dynamic ones get the
-- wildcard AWS's templates use. `region` and `account` fill AWS's {{region}} / {{accountId}}
-- (default "*"); the partition is the resource ARN's.
--
-- EMR on EKS follows AWS's page "IAM policies for Amazon EMR on EKS" (Step Functions
-- Developer Guide, emr-eks-iam): createVirtualCluster, deleteVirtualCluster[.sync],
-- startJobRun[.sync] with its emr-containers:ExecutionRoleArn condition and, for .sync,
-- DescribeJobRun + CancelJobRun on the cluster's job runs (no events permissions: .sync is
-- polled). Two deliberate differences: iam:PassRole is added for each static
-- ExecutionRoleArn, and the service-linked role is AWSServiceRoleForAmazonEMRContainers (the
-- role's real name; the page spells it "AnAWSServiceRoleFor...").
-- Also: Lambda (lambda:invoke and function ARNs), SNS publish, SQS sendMessage, DynamoDB item
-- calls, Step Functions startExecution[.sync[:2]], HTTPS endpoints (http:invoke), aws-sdk:*
-- (the service's action on "*"), a Task's Credentials (sts:AssumeRole only: the call itself is
-- made with the assumed role, whose needs are given as a note), Distributed Map child
-- executions and its S3 ItemReader / ResultWriter; any other optimized integration gets the
-- action its ARN names, with a note. Map and Parallel states are walked.
local json = require "emrflow.json"

local M = {}

local fmt = string.format

-- aws-sdk service names whose IAM prefix differs.
local SDK_PREFIX = {
  emrcontainers = "emr-containers", sfn = "states", emrserverless = "emr-serverless",
  cloudwatchlogs = "logs", eventbridge = "events", elasticloadbalancingv2 = "elasticloadbalancing",
  elasticloadbalancing = "elasticloadbalancing", sagemakerruntime = "sagemaker",
  apigatewayv2 = "apigateway", dynamodbstreams = "dynamodb", iotdata = "iot",
  lexruntime = "lex", lexruntimev2 = "lex", efs = "elasticfilesystem", mediapackagevod = "mediapackage-vod",
  cognitoidentityprovider = "cognito-idp", cognitoidentity = "cognito-identity",
}

local function upper_first(s)
  return (s:gsub("^%l", string.upper))
end

-- ----------------------------------------------------------------------------
-- Collecting statements
-- ----------------------------------------------------------------------------

-- A builder keeps one statement per (actions, condition); resources are merged into it.
local function new_builder()
  return { order = {}, by_key = {}, notes = {}, noted = {} }
end

local function note(b, text)
  if not b.noted[text] then
    b.noted[text] = true
    b.notes[#b.notes + 1] = text
  end
end

local function allow(b, actions, resources, condition)
  if type(actions) == "string" then actions = { actions } end
  if type(resources) == "string" then resources = { resources } end
  local key = table.concat(actions, ",") .. "|" .. (condition and json.encode(condition) or "")
  local st = b.by_key[key]
  if not st then
    st = { actions = actions, resources = {}, seen = {}, condition = condition }
    b.by_key[key] = st
    b.order[#b.order + 1] = st
  end
  for _, r in ipairs(resources) do
    if not st.seen[r] then
      st.seen[r] = true
      st.resources[#st.resources + 1] = r
    end
  end
end

-- A statement's Resource: "*" alone when any resource is "*".
local function resource_value(st)
  for _, r in ipairs(st.resources) do
    if r == "*" then return "*" end
  end
  if #st.resources == 1 then return st.resources[1] end
  return json.array(st.resources)
end

local function document(b)
  local statements = json.array {}
  for _, st in ipairs(b.order) do
    local s = json.object {}
    json.set(s, "Effect", "Allow")
    json.set(s, "Action", #st.actions == 1 and st.actions[1] or json.array(st.actions))
    json.set(s, "Resource", resource_value(st))
    if st.condition then json.set(s, "Condition", st.condition) end
    statements[#statements + 1] = s
  end
  local doc = json.object {}
  json.set(doc, "Version", "2012-10-17")
  json.set(doc, "Statement", statements)
  return doc
end

-- ----------------------------------------------------------------------------
-- Parameters: static or dynamic
-- ----------------------------------------------------------------------------

-- The static string value of member `name` of a Task's Parameters / Arguments, or nil
-- (absent, a path "name.$", a JSONata expression, not a string).
-- More names go down nested objects: static(task, "Authentication", "ConnectionArn").
local function static(task, name, ...)
  local inner = { ... }
  for _, field in ipairs { "Parameters", "Arguments" } do
    local v = type(task[field]) == "table" and task[field][name]
    for _, k in ipairs(inner) do v = type(v) == "table" and v[k] end
    if type(v) == "string" and not v:match("^%s*{%%.*%%}%s*$") then return v end
  end
  return nil
end

local function condition_equals(key, values)
  local inner = json.object {}
  json.set(inner, key, json.array(values))
  local c = json.object {}
  json.set(c, "StringEquals", inner)
  return c
end

-- ----------------------------------------------------------------------------
-- Integrations
-- ----------------------------------------------------------------------------

local function emr_containers(b, ctx, api, suffix, task, where)
  local p, r, a = ctx.partition, ctx.region, ctx.account
  local vc_base = fmt("arn:%s:emr-containers:%s:%s:/virtualclusters/", p, r, a)
  if api == "createVirtualCluster" then
    allow(b, { "emr-containers:CreateVirtualCluster" }, "*")
    local c = json.object {}
    local inner = json.object {}
    json.set(inner, "iam:AWSServiceName", "emr-containers.amazonaws.com")
    json.set(c, "StringLike", inner)
    allow(b, "iam:CreateServiceLinkedRole", fmt("arn:%s:iam::%s:role/aws-service-role/"
      .. "emr-containers.amazonaws.com/AWSServiceRoleForAmazonEMRContainers", p, a), c)
  elseif api == "deleteVirtualCluster" then
    local id = static(task, "Id")
    if not id then
      note(b, where .. ": the virtual cluster Id is dynamic: allowed on every virtual cluster")
    end
    local actions = { "emr-containers:DeleteVirtualCluster" }
    if suffix == ".sync" then actions[2] = "emr-containers:DescribeVirtualCluster" end
    allow(b, actions, vc_base .. (id or "*"))
  elseif api == "startJobRun" then
    local id = static(task, "VirtualClusterId")
    if not id then note(b, where .. ": VirtualClusterId is dynamic: allowed on every virtual cluster") end
    local role = static(task, "ExecutionRoleArn")
    local condition
    if role then
      condition = condition_equals("emr-containers:ExecutionRoleArn", { role })
    else
      note(b, where .. ": ExecutionRoleArn is dynamic: no emr-containers:ExecutionRoleArn condition "
        .. "and no iam:PassRole could be written for it")
    end
    allow(b, "emr-containers:StartJobRun", vc_base .. (id or "*"), condition)
    if suffix == ".sync" then
      allow(b, { "emr-containers:DescribeJobRun", "emr-containers:CancelJobRun" },
        id and (vc_base .. id .. "/jobruns/*") or (vc_base .. "*"))
    end
    if role then allow(b, "iam:PassRole", role) end
  else
    allow(b, "emr-containers:" .. upper_first(api), "*")
    note(b, where .. ": emr-containers:" .. api .. " is not an optimized EMR on EKS integration")
  end
end

local function lambda_function_arn(ctx, name)
  if name:match("^arn:") then return name end
  return fmt("arn:%s:lambda:%s:%s:function:%s", ctx.partition, ctx.region, ctx.account, name)
end

local function lambda(b, ctx, task, where)
  local fn = static(task, "FunctionName")
  if fn then
    local arn = lambda_function_arn(ctx, fn)
    local unqualified = arn:match("^(arn:[^:]+:lambda:[^:]*:[^:]*:function:[^:]+)") or arn
    allow(b, "lambda:InvokeFunction", { unqualified, unqualified .. ":*" })
  else
    note(b, where .. ": FunctionName is dynamic: allowed on every function")
    allow(b, "lambda:InvokeFunction",
      fmt("arn:%s:lambda:%s:%s:function:*", ctx.partition, ctx.region, ctx.account))
  end
end

local function sqs_arn(ctx, url)
  local region, account, name = url:match("^https?://sqs%.([^.]+)%.[^/]+/(%d+)/([^/?]+)$")
  if not region then
    account, name = url:match("^https?://[^/]+/(%d+)/([^/?]+)$")
    region = ctx.region
  end
  if not name then return nil end
  return fmt("arn:%s:sqs:%s:%s:%s", ctx.partition, region, account, name)
end

local function step_functions(b, ctx, suffix, task, where)
  local p, r, a = ctx.partition, ctx.region, ctx.account
  local sm = static(task, "StateMachineArn")
  if not sm then note(b, where .. ": StateMachineArn is dynamic: allowed on every state machine") end
  allow(b, "states:StartExecution", sm or fmt("arn:%s:states:%s:%s:stateMachine:*", p, r, a))
  if suffix == ".sync" or suffix == ".sync:2" then
    -- the child's executions live in the child's region and account
    local sm_region, sm_account, name =
      (sm or ""):match("^arn:[%w%-]+:states:([^:]*):([^:]*):stateMachine:([^:]+)")
    allow(b, { "states:DescribeExecution", "states:StopExecution" }, fmt("arn:%s:states:%s:%s:execution:%s",
      p, sm_region or r, sm_account or a, name and (name .. ":*") or "*"))
    allow(b, { "events:PutTargets", "events:PutRule", "events:DescribeRule" },
      fmt("arn:%s:events:%s:%s:rule/StepFunctionsGetEventsForStepFunctionsExecutionRule", p, r, a))
  end
end

local DYNAMODB = { getItem = true, putItem = true, updateItem = true, deleteItem = true }

local function optimized(b, ctx, service, api, suffix, task, where)
  if service == "emr-containers" then return emr_containers(b, ctx, api, suffix, task, where) end
  if service == "lambda" and api == "invoke" then return lambda(b, ctx, task, where) end
  if service == "sns" and api == "publish" then
    local topic = static(task, "TopicArn")
    if not topic then note(b, where .. ": the topic is dynamic: sns:Publish allowed on every topic") end
    return allow(b, "sns:Publish", topic or "*")
  end
  if service == "sqs" and api == "sendMessage" then
    local url = static(task, "QueueUrl")
    local arn = url and sqs_arn(ctx, url)
    if not arn then note(b, where .. ": the queue is dynamic: sqs:SendMessage allowed on every queue") end
    return allow(b, "sqs:SendMessage", arn or "*")
  end
  if service == "dynamodb" and DYNAMODB[api] then
    local table_name = static(task, "TableName")
    return allow(b, "dynamodb:" .. upper_first(api),
      fmt("arn:%s:dynamodb:%s:%s:table/%s", ctx.partition, ctx.region, ctx.account, table_name or "*"))
  end
  if service == "states" and api == "startExecution" then
    return step_functions(b, ctx, suffix, task, where)
  end
  if service == "http" and api == "invoke" then
    allow(b, "states:InvokeHTTPEndpoint", "*")
    local conn = static(task, "Authentication", "ConnectionArn")
    allow(b, "events:RetrieveConnectionCredentials", conn or "*")
    return allow(b, { "secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret" },
      fmt("arn:%s:secretsmanager:*:*:secret:events!connection/*", ctx.partition))
  end
  allow(b, service .. ":" .. upper_first(api), "*")
  note(b, fmt("%s: %s:%s: emrflow knows no IAM template for this integration: the action its ARN "
    .. "names is allowed on \"*\"%s; check AWS's IAM page for the service", where, service, api,
    (suffix or ""):match("^%.sync") and " (.sync usually also needs events:PutTargets, PutRule, DescribeRule)"
      or ""))
end

-- A Task's Credentials (cross-account): the role it assumes.
local function credentials_permissions(b, task, where)
  local c = task.Credentials
  if type(c) ~= "table" then return end
  local role = c.RoleArn
  if type(role) == "string" and not role:match("^%s*{%%") then
    allow(b, "sts:AssumeRole", role)
  else
    note(b, where .. ": Credentials.RoleArn is dynamic: sts:AssumeRole allowed on every role")
    allow(b, "sts:AssumeRole", "*")
  end
end

-- What a Task's resource needs, whoever calls it.
local function resource_permissions(b, ctx, task, where)
  local resource = task.Resource
  if type(resource) == "function" then
    note(b, where .. ": a Lua function resource: it runs only in emrflow and cannot be deployed")
    return
  end
  if type(resource) ~= "string" then return end
  local partition, rest = resource:match("^arn:([%w%-]+):states:::(.+)$")
  if partition then
    local c = { partition = partition, region = ctx.region, account = ctx.account }
    local sdk_service, sdk_action = rest:match("^aws%-sdk:([%w%-]+):([%w]+)")
    if sdk_service then
      local prefix = SDK_PREFIX[sdk_service] or sdk_service
      return allow(b, prefix .. ":" .. upper_first(sdk_action), "*")
    end
    local service, api, suffix = rest:match("^([%w%-]+):([%w]+)(.*)$")
    if not service then
      note(b, where .. ": resource " .. resource .. " is not a service integration emrflow knows")
      return
    end
    return optimized(b, c, service, api, suffix ~= "" and suffix or nil, task, where)
  end
  if resource:match("^arn:[%w%-]+:lambda:[^:]*:[^:]*:function:") then
    return allow(b, "lambda:InvokeFunction", resource)
  end
  if resource:match("^arn:[%w%-]+:states:[^:]*:[^:]*:activity:") then
    note(b, where .. ": activity tasks need no permission on the role (workers poll the activity)")
    return
  end
  note(b, where .. ": resource " .. resource .. " is not one emrflow knows")
end

-- "a:X, a:Y on r1, r2" for each statement of a builder (for notes).
local function summary(tb)
  local parts = {}
  for _, st in ipairs(tb.order) do
    parts[#parts + 1] = table.concat(st.actions, ", ") .. " on " .. table.concat(st.resources, ", ")
      .. (st.condition and (" if " .. json.encode(st.condition)) or "")
  end
  return table.concat(parts, "; ")
end

-- One Task state's permissions. With Credentials, Step Functions calls the resource with
-- the assumed role's credentials: this role needs only sts:AssumeRole, and what the call
-- needs is the assumed role's business (said in a note).
local function task_permissions(b, ctx, task, where)
  if type(task.Credentials) ~= "table" then return resource_permissions(b, ctx, task, where) end
  credentials_permissions(b, task, where)
  local tb = new_builder()
  resource_permissions(tb, ctx, task, where)
  for _, text in ipairs(tb.notes) do note(b, text) end
  if #tb.order > 0 then
    local role = type(task.Credentials.RoleArn) == "string" and task.Credentials.RoleArn or "the assumed role"
    note(b, fmt("%s: runs with the credentials of %s, which needs (not this role): %s", where, role,
      summary(tb)))
  end
end

-- A Map state's own permissions: a Distributed Map starts child executions; ItemReader and
-- ResultWriter read from and write to Amazon S3.
local function map_permissions(b, ctx, map, where)
  local reader = type(map.ItemReader) == "table" and map.ItemReader or nil
  local writer = type(map.ResultWriter) == "table" and map.ResultWriter or nil
  local function partition_of(r)
    local resource = type(r) == "table" and r.Resource
    return type(resource) == "string" and resource:match("^arn:([%w%-]+):") or "aws"
  end
  local processor = type(map.ItemProcessor) == "table" and map.ItemProcessor.ProcessorConfig
  if type(processor) == "table" and processor.Mode == "DISTRIBUTED" then
    local p = partition_of(reader or writer)
    allow(b, "states:StartExecution", fmt("arn:%s:states:%s:%s:stateMachine:*", p, ctx.region, ctx.account))
    allow(b, { "states:DescribeExecution", "states:StopExecution" },
      fmt("arn:%s:states:%s:%s:execution:*", p, ctx.region, ctx.account))
    note(b, where .. ": a Distributed Map runs child executions of its own state machine: "
      .. "stateMachine:* can be narrowed to the state machine's ARN once it is deployed")
  end
  if reader and type(reader.Resource) == "string" then
    local p, api = partition_of(reader), reader.Resource:match(":s3:(%w+)$")
    local bucket, key = static(reader, "Bucket"), static(reader, "Key")
    if api == "getObject" then
      allow(b, "s3:GetObject", fmt("arn:%s:s3:::%s/%s", p, bucket or "*", bucket and key or "*"))
    elseif api == "listObjectsV2" then
      allow(b, "s3:ListBucket", fmt("arn:%s:s3:::%s", p, bucket or "*"))
    else
      task_permissions(b, ctx, reader, where .. " ItemReader")
    end
    if not bucket then note(b, where .. ": the ItemReader bucket is dynamic: allowed on every bucket") end
  end
  if writer and type(writer.Resource) == "string" then
    local p, bucket, prefix = partition_of(writer), static(writer, "Bucket"), static(writer, "Prefix")
    allow(b, { "s3:PutObject", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload" },
      fmt("arn:%s:s3:::%s/%s*", p, bucket or "*", bucket and prefix and (prefix:gsub("/*$", "/")) or ""))
  end
end

--- Every state, nested ones included: calls fn(state, where) with a readable location.
local function walk(def, prefix, fn)
  if type(def) ~= "table" or type(def.States) ~= "table" then return end
  local names = {}
  for name in pairs(def.States) do names[#names + 1] = name end
  table.sort(names, function(x, y) return tostring(x) < tostring(y) end)
  for _, name in ipairs(names) do
    local st = def.States[name]
    local where = prefix .. "state " .. tostring(name)
    if type(st) == "table" then
      fn(st, where)
      if st.Type == "Parallel" and type(st.Branches) == "table" then
        for i, branch in ipairs(st.Branches) do walk(branch, fmt("%s, branch %d: ", where, i), fn) end
      elseif st.Type == "Map" then
        walk(st.ItemProcessor or st.Iterator, where .. ", iteration: ", fn)
      end
    end
  end
end
M.walk = walk

--- The states whose Resource is a Lua function: list of locations ("state A", "state P, branch 1: state B").
function M.lua_functions(def)
  local out = {}
  walk(def, "", function(st, where)
    if st.Type == "Task" and type(st.Resource) == "function" then out[#out + 1] = where end
  end)
  return out
end

--- policy.for_definition(definition, opts) --> document, notes
function M.for_definition(definition, opts)
  opts = opts or {}
  if type(definition) == "string" then
    local ok, v = pcall(json.decode, definition)
    if not ok then error("emrflow.policy: the definition is not valid JSON: " .. tostring(v), 2) end
    definition = v
  end
  if type(definition) ~= "table" then
    error("emrflow.policy: expected a definition table or ASL JSON text, got " .. type(definition), 2)
  end
  local ctx = { region = opts.region or "*", account = opts.account or "*" }
  local b = new_builder()
  walk(definition, "", function(st, where)
    if st.Type == "Task" then task_permissions(b, ctx, st, where) end
    if st.Type == "Map" then map_permissions(b, ctx, st, where) end
  end)
  if #b.order == 0 then
    note(b, "no state calls an AWS service: the role needs no permission for integrations")
  end
  return document(b), b.notes
end

return M
