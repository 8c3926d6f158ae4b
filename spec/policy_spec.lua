-- emrflow.policy: the IAM policy document for the integrations a definition uses.
-- EMR on EKS statements are checked against AWS's page "IAM policies for Amazon EMR on EKS"
-- (reference/emr-containers-and-step-functions.md B8).
local policy = require "emrflow.policy"
local json = require "emrflow.json"

local ROLE = "arn:aws:iam::123456789012:role/job-execution-role"
local CTX = { region = "us-east-1", account = "123456789012" }
local SYNC = "arn:aws:states:::emr-containers:startJobRun.sync"

local function task(resource, params, extra)
  local t = { Type = "Task", Resource = resource, Parameters = params, End = true }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

local function machine(states)
  local first
  for name in pairs(states) do first = first or name end
  return { StartAt = first, States = states }
end

-- The policy's statements as plain tables (through JSON: what a user gets).
local function statements(def, opts)
  local doc, notes = policy.for_definition(def, opts or CTX)
  local plain = require("cjson").decode(json.encode(doc))
  assert.equal("2012-10-17", plain.Version)
  return plain.Statement, notes
end

local function find(sts, action)
  for _, st in ipairs(sts) do
    local actions = type(st.Action) == "table" and st.Action or { st.Action }
    for _, a in ipairs(actions) do
      if a == action then return st end
    end
  end
end

describe("emrflow.policy: EMR on EKS", function()
  it("startJobRun.sync with static ids: StartJobRun on the cluster with the role condition, "
    .. "DescribeJobRun + CancelJobRun on its job runs, iam:PassRole", function()
    local sts, notes = statements(machine{
      Submit = task("arn:aws:states:::emr-containers:startJobRun.sync",
        { VirtualClusterId = "abc123", ExecutionRoleArn = ROLE, Name = "n" }) })
    assert.same({
      { Effect = "Allow", Action = "emr-containers:StartJobRun",
        Resource = "arn:aws:emr-containers:us-east-1:123456789012:/virtualclusters/abc123",
        Condition = { StringEquals = { ["emr-containers:ExecutionRoleArn"] = { ROLE } } } },
      { Effect = "Allow", Action = { "emr-containers:DescribeJobRun", "emr-containers:CancelJobRun" },
        Resource = "arn:aws:emr-containers:us-east-1:123456789012:/virtualclusters/abc123/jobruns/*" },
      { Effect = "Allow", Action = "iam:PassRole", Resource = ROLE },
    }, sts)
    assert.same({}, notes)
  end)

  it("startJobRun (request/response) with a dynamic cluster: /virtualclusters/*, no .sync actions",
    function()
    local sts, notes = statements(machine{
      Submit = task("arn:aws:states:::emr-containers:startJobRun",
        { ["VirtualClusterId.$"] = "$.id", ExecutionRoleArn = ROLE }) })
    local st = find(sts, "emr-containers:StartJobRun")
    assert.equal("arn:aws:emr-containers:us-east-1:123456789012:/virtualclusters/*", st.Resource)
    assert.is_nil(find(sts, "emr-containers:DescribeJobRun"))
    assert.matches("VirtualClusterId is dynamic", notes[1])
  end)

  it("a dynamic ExecutionRoleArn: no condition, no PassRole, and a note saying so", function()
    local sts, notes = statements(machine{
      Submit = task("arn:aws:states:::emr-containers:startJobRun.sync",
        { VirtualClusterId = "abc", ["ExecutionRoleArn.$"] = "$.role" }) })
    assert.is_nil(find(sts, "emr-containers:StartJobRun").Condition)
    assert.is_nil(find(sts, "iam:PassRole"))
    assert.matches("ExecutionRoleArn is dynamic", table.concat(notes, "\n"))
  end)

  it("deleteVirtualCluster: .sync adds DescribeVirtualCluster; static Id narrows the resource", function()
    local sync = statements(machine{ D = task("arn:aws:states:::emr-containers:deleteVirtualCluster.sync",
      { Id = "vc1" }) })
    assert.same({ "emr-containers:DeleteVirtualCluster", "emr-containers:DescribeVirtualCluster" },
      sync[1].Action)
    assert.equal("arn:aws:emr-containers:us-east-1:123456789012:/virtualclusters/vc1", sync[1].Resource)
    local rr = statements(machine{ D = task("arn:aws:states:::emr-containers:deleteVirtualCluster",
      { ["Id.$"] = "$.id" }) })
    assert.same({ "emr-containers:DeleteVirtualCluster" }, { rr[1].Action })
    assert.equal("arn:aws:emr-containers:us-east-1:123456789012:/virtualclusters/*", rr[1].Resource)
  end)

  it("createVirtualCluster: CreateVirtualCluster on * and the service-linked role", function()
    local sts = statements(machine{ C = task("arn:aws:states:::emr-containers:createVirtualCluster",
      { Name = "c" }) })
    assert.same({ Effect = "Allow", Action = "emr-containers:CreateVirtualCluster", Resource = "*" }, sts[1])
    assert.equal("iam:CreateServiceLinkedRole", sts[2].Action)
    assert.equal("arn:aws:iam::123456789012:role/aws-service-role/emr-containers.amazonaws.com/"
      .. "AWSServiceRoleForAmazonEMRContainers", sts[2].Resource)
    assert.same({ StringLike = { ["iam:AWSServiceName"] = "emr-containers.amazonaws.com" } },
      sts[2].Condition)
  end)

  it("leaves region and account as * when not given, and keeps the resource's partition", function()
    local sts = statements(machine{
      S = task("arn:aws-cn:states:::emr-containers:startJobRun", { VirtualClusterId = "v" }) }, {})
    assert.equal("arn:aws-cn:emr-containers:*:*:/virtualclusters/v",
      find(sts, "emr-containers:StartJobRun").Resource)
  end)

  it("merges tasks on the same cluster and keeps different roles apart", function()
    local other = "arn:aws:iam::123456789012:role/other"
    local sts = statements(machine{
      A = task(SYNC, { VirtualClusterId = "v", ExecutionRoleArn = ROLE }),
      B = task(SYNC, { VirtualClusterId = "v", ExecutionRoleArn = ROLE }),
      C = task(SYNC, { VirtualClusterId = "w", ExecutionRoleArn = other }),
    })
    local starts, passes = 0, find(sts, "iam:PassRole")
    for _, st in ipairs(sts) do
      if st.Action == "emr-containers:StartJobRun" then starts = starts + 1 end
    end
    assert.equal(2, starts)
    assert.same({ ROLE, other }, passes.Resource)
  end)
end)

describe("emrflow.policy: other integrations", function()
  it("aws-sdk:<service>:<action> gives the service's IAM action", function()
    local sts = statements(machine{
      A = task("arn:aws:states:::aws-sdk:emrcontainers:listJobRuns", {}),
      B = task("arn:aws:states:::aws-sdk:s3:getObject", {}),
      C = task("arn:aws:states:::aws-sdk:sfn:describeExecution.waitForTaskToken", {}),
    })
    assert.truthy(find(sts, "emr-containers:ListJobRuns"))
    assert.truthy(find(sts, "s3:GetObject"))
    assert.truthy(find(sts, "states:DescribeExecution"))
  end)

  it("Lambda: lambda:invoke with a static or dynamic function, and function ARNs", function()
    local sts = statements(machine{
      A = task("arn:aws:states:::lambda:invoke", { FunctionName = "resize" }),
      B = task("arn:aws:lambda:us-east-1:123456789012:function:direct"),
    })
    local st = find(sts, "lambda:InvokeFunction")
    assert.same({ "arn:aws:lambda:us-east-1:123456789012:function:resize",
                  "arn:aws:lambda:us-east-1:123456789012:function:resize:*",
                  "arn:aws:lambda:us-east-1:123456789012:function:direct" }, st.Resource)
    local dyn = statements(machine{ A = task("arn:aws:states:::lambda:invoke.waitForTaskToken",
      { ["FunctionName.$"] = "$.fn" }) })
    assert.equal("arn:aws:lambda:us-east-1:123456789012:function:*", dyn[1].Resource)
  end)

  it("SNS, SQS and Step Functions .sync as AWS documents them", function()
    local sts = statements(machine{
      N = task("arn:aws:states:::sns:publish", { TopicArn = "arn:aws:sns:us-east-1:123456789012:t" }),
      Q = task("arn:aws:states:::sqs:sendMessage",
        { QueueUrl = "https://sqs.us-east-1.amazonaws.com/123456789012/q" }),
      S = task("arn:aws:states:::states:startExecution.sync:2",
        { StateMachineArn = "arn:aws:states:us-east-1:123456789012:stateMachine:child" }),
    })
    assert.equal("arn:aws:sns:us-east-1:123456789012:t", find(sts, "sns:Publish").Resource)
    assert.equal("arn:aws:sqs:us-east-1:123456789012:q", find(sts, "sqs:SendMessage").Resource)
    assert.equal("arn:aws:states:us-east-1:123456789012:stateMachine:child",
      find(sts, "states:StartExecution").Resource)
    assert.equal("arn:aws:states:us-east-1:123456789012:execution:child:*",
      find(sts, "states:DescribeExecution").Resource)
    assert.equal("arn:aws:events:us-east-1:123456789012:rule/"
      .. "StepFunctionsGetEventsForStepFunctionsExecutionRule", find(sts, "events:PutRule").Resource)
  end)

  it("a child state machine elsewhere: its executions are in its own region and account", function()
    local sts = statements(machine{
      S = task("arn:aws:states:::states:startExecution.sync",
        { StateMachineArn = "arn:aws:states:eu-west-1:210987654321:stateMachine:child" }) },
      { region = "*", account = "*" })
    assert.equal("arn:aws:states:eu-west-1:210987654321:execution:child:*",
      find(sts, "states:DescribeExecution").Resource)
  end)

  it("http:invoke: RetrieveConnectionCredentials on the static Authentication.ConnectionArn", function()
    local conn = "arn:aws:events:us-east-1:123456789012:connection/api/0a1b"
    local sts = statements(machine{ H = task("arn:aws:states:::http:invoke",
      { ApiEndpoint = "https://api.example.com/x", Method = "GET",
        Authentication = { ConnectionArn = conn } }) })
    assert.equal(conn, find(sts, "events:RetrieveConnectionCredentials").Resource)
    local dyn = statements(machine{ H = task("arn:aws:states:::http:invoke",
      { ApiEndpoint = "https://api.example.com/x", Method = "GET",
        Authentication = { ["ConnectionArn.$"] = "$.conn" } }) })
    assert.equal("*", find(dyn, "events:RetrieveConnectionCredentials").Resource)
  end)

  it("an integration it has no template for: the action the ARN names, and a note", function()
    local sts, notes = statements(machine{ G = task("arn:aws:states:::glue:startJobRun.sync", {}) })
    assert.same({ Effect = "Allow", Action = "glue:StartJobRun", Resource = "*" }, sts[1])
    assert.matches("no IAM template", notes[1])
  end)

  it("walks Parallel branches and Map iterations; JSONata Arguments count as static unless {% %}", function()
    local def = machine{
      P = { Type = "Parallel", End = true, Branches = {
        machine{ A = task("arn:aws:states:::sns:publish", { TopicArn = "arn:aws:sns:us-east-1:1:a" }) } } },
      M = { Type = "Map", End = true, ItemProcessor = machine{
        B = { Type = "Task", Resource = "arn:aws:states:::emr-containers:startJobRun", End = true,
              Arguments = { VirtualClusterId = "{% $states.input.id %}", ExecutionRoleArn = ROLE } } } },
    }
    local sts, notes = statements(def)
    assert.equal("arn:aws:sns:us-east-1:1:a", find(sts, "sns:Publish").Resource)
    assert.equal("arn:aws:emr-containers:us-east-1:123456789012:/virtualclusters/*",
      find(sts, "emr-containers:StartJobRun").Resource)
    assert.matches("state M, iteration: state B", table.concat(notes, "\n"))
  end)

  it("takes ASL JSON text, names Lua-function resources in a note, says when nothing is needed",
    function()
    local sts, notes = statements('{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}')
    assert.same({}, sts)
    assert.matches("needs no permission", notes[1])
    local _, lua_notes = statements(machine{ F = { Type = "Task", Resource = function() end, End = true } })
    assert.matches("state F: a Lua function resource", lua_notes[1])
    local lua_def = machine{ F = { Type = "Task", Resource = print, End = true } }
    assert.same({ "state F" }, policy.lua_functions(lua_def))
    assert.has_error(function() policy.for_definition("{bad", {}) end)
  end)
end)

describe("emrflow.policy: Distributed Map and cross-account tasks", function()
  it("a Distributed Map starts child executions and reads and writes S3 as its fields say", function()
    local sts, notes = statements(machine{
      M = { Type = "Map", End = true,
            ItemReader = { Resource = "arn:aws:states:::s3:getObject",
                           Parameters = { Bucket = "in-bucket", Key = "items.json" } },
            ResultWriter = { Resource = "arn:aws:states:::s3:putObject",
                             Parameters = { Bucket = "out-bucket", Prefix = "results" } },
            ItemProcessor = { ProcessorConfig = { Mode = "DISTRIBUTED", ExecutionType = "STANDARD" },
                              StartAt = "P", States = { P = { Type = "Pass", End = true } } } } })
    assert.equal("arn:aws:states:us-east-1:123456789012:stateMachine:*",
      find(sts, "states:StartExecution").Resource)
    assert.truthy(find(sts, "states:StopExecution"))
    assert.equal("arn:aws:s3:::in-bucket/items.json", find(sts, "s3:GetObject").Resource)
    assert.equal("arn:aws:s3:::out-bucket/results/*", find(sts, "s3:PutObject").Resource)
    assert.matches("Distributed Map runs child executions", table.concat(notes, "\n"))
    local inline = statements(machine{ M = { Type = "Map", End = true, ItemProcessor = machine{
      P = { Type = "Pass", End = true } } } })
    assert.same({}, inline)
  end)

  it("a Task with Credentials needs sts:AssumeRole on that role; the call's needs are that role's", function()
    local target = "arn:aws:iam::210987654321:role/cross-account"
    local sts, notes = statements(machine{ T = task("arn:aws:states:::sns:publish",
      { TopicArn = "arn:aws:sns:us-east-1:210987654321:t" }, { Credentials = { RoleArn = target } }) })
    assert.equal(target, find(sts, "sts:AssumeRole").Resource)
    -- Step Functions publishes with the assumed role's credentials: not this role's permission
    assert.is_nil(find(sts, "sns:Publish"))
    assert.equal(1, #sts)
    local said = table.concat(notes, "\n")
    assert.matches("state T: runs with the credentials of " .. target:gsub("%p", "%%%0")
      .. ", which needs %(not this role%): sns:Publish on arn:aws:sns:us%-east%-1:210987654321:t", said)
  end)

  it("a Task with dynamic Credentials: sts:AssumeRole on every role, the call's needs in a note", function()
    local sts, notes = statements(machine{ T = task("arn:aws:states:::lambda:invoke",
      { FunctionName = "arn:aws:lambda:us-east-1:210987654321:function:f" },
      { Credentials = { ["RoleArn.$"] = "$.role" } }) })
    assert.equal("*", find(sts, "sts:AssumeRole").Resource)
    assert.is_nil(find(sts, "lambda:InvokeFunction"))
    assert.matches("runs with the credentials of the assumed role, which needs %(not this role%): "
      .. "lambda:InvokeFunction on arn:aws:lambda:us%-east%-1:210987654321:function:f",
      table.concat(notes, "\n"))
  end)
end)
