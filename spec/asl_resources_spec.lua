-- emrflow.asl.resources: every Task resource form Step Functions accepts is parsed, and a
-- malformed one is refused with a problem text that names the ARN and what is wrong.
local resources = require "emrflow.asl.resources"

describe("emrflow.asl.resources", function()
  describe("optimized integrations", function()
    local cases = {
      { "arn:aws:states:::sns:publish", "sns", "publish", "" },
      { "arn:aws:states:::lambda:invoke", "lambda", "invoke", "" },
      { "arn:aws:states:::lambda:invoke.waitForTaskToken", "lambda", "invoke", ".waitForTaskToken" },
      { "arn:aws:states:::ecs:runTask.sync", "ecs", "runTask", ".sync" },
      { "arn:aws:states:::states:startExecution.sync:2", "states", "startExecution", ".sync:2" },
      { "arn:aws:states:::emr-containers:startJobRun.sync", "emr-containers", "startJobRun", ".sync" },
      { "arn:aws:states:::emr-serverless:startJobRun", "emr-serverless", "startJobRun", "" },
      { "arn:aws:states:::glue:startJobRun.sync", "glue", "startJobRun", ".sync" },
      { "arn:aws:states:::sqs:sendMessage.waitForTaskToken", "sqs", "sendMessage", ".waitForTaskToken" },
    }
    for _, c in ipairs(cases) do
      it("parses " .. c[1], function()
        local info, why = resources.parse(c[1])
        assert.is_nil(why)
        assert.same({ kind = "optimized", partition = "aws", service = c[2], api = c[3], suffix = c[4],
          region = "", account = "" }, info)
        assert.is_nil(resources.check(c[1]))
      end)
    end

    it("accepts every partition and names the partition", function()
      for _, p in ipairs({ "aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b" }) do
        local info = assert(resources.parse("arn:" .. p .. ":states:::batch:submitJob.sync"))
        assert.equal(p, info.partition)
        assert.equal("batch", info.service)
      end
    end)
  end)

  describe("aws-sdk integrations", function()
    it("parses service and action, with or without .waitForTaskToken", function()
      assert.same({ kind = "aws-sdk", partition = "aws", service = "s3", api = "getObject", suffix = "",
        region = "", account = "" }, resources.parse("arn:aws:states:::aws-sdk:s3:getObject"))
      local info = assert(resources.parse(
        "arn:aws-cn:states:::aws-sdk:emrcontainers:listJobRuns.waitForTaskToken"))
      assert.equal("emrcontainers", info.service)
      assert.equal("listJobRuns", info.api)
      assert.equal(".waitForTaskToken", info.suffix)
    end)

    it("refuses .sync and .sync:2, which AWS SDK integrations do not have", function()
      for _, s in ipairs({ ".sync", ".sync:2" }) do
        local arn = "arn:aws:states:::aws-sdk:s3:getObject" .. s
        local info, why = resources.parse(arn)
        assert.is_nil(info)
        assert.matches("is not a resource ARN Step Functions accepts", why, 1, true)
        assert.matches("no " .. s .. " form", why, 1, true)
        assert.equal(why, resources.check(arn))
      end
    end)

    it("refuses a missing action", function()
      assert.matches("aws%-sdk:<service>:<action>", resources.check("arn:aws:states:::aws-sdk:s3"))
      assert.matches("not an action name", resources.check("arn:aws:states:::aws-sdk:s3:"))
    end)
  end)

  describe("HTTP Task", function()
    it("parses http:invoke", function()
      local info = assert(resources.parse("arn:aws-us-gov:states:::http:invoke"))
      assert.equal("http", info.kind)
      assert.equal("aws-us-gov", info.partition)
    end)

    it("refuses other http APIs and suffixes", function()
      assert.matches("exactly arn:<partition>:states:::http:invoke",
        resources.check("arn:aws:states:::http:invoke.sync"), 1, true)
      assert.matches("exactly", resources.check("arn:aws:states:::http:get"), 1, true)
    end)
  end)

  describe("Lambda function ARNs", function()
    it("parses unqualified, version and alias forms", function()
      local info = assert(resources.parse("arn:aws:lambda:us-east-1:123456789012:function:my-fn_1"))
      assert.equal("lambda", info.kind)
      assert.equal("my-fn_1", info.function_name)
      assert.is_nil(info.qualifier)
      assert.equal("us-east-1", info.region)
      assert.equal("123456789012", info.account)
      assert.equal("7", resources.parse("arn:aws:lambda:eu-west-3:123456789012:function:f:7").qualifier)
      local prod = resources.parse("arn:aws:lambda:us-gov-west-1:123456789012:function:f:prod")
      assert.equal("prod", prod.qualifier)
      local latest = resources.parse("arn:aws:lambda:cn-north-1:123456789012:function:f:$LATEST")
      assert.equal("$LATEST", latest.qualifier)
    end)

    it("refuses a malformed Lambda ARN", function()
      assert.matches("region and a 12%-digit account",
        resources.check("arn:aws:lambda:us-east-1:1234:function:f"))
      assert.matches("region and a 12%-digit account",
        resources.check("arn:aws:lambda::123456789012:function:f"))
      assert.matches("function:<name>", resources.check("arn:aws:lambda:us-east-1:123456789012:layer:f"))
      assert.matches("not a Lambda function name",
        resources.check("arn:aws:lambda:us-east-1:123456789012:function:bad name"))
      assert.matches("not a Lambda version or alias",
        resources.check("arn:aws:lambda:us-east-1:123456789012:function:f:"))
      assert.matches("not a Lambda version or alias",
        resources.check("arn:aws:lambda:us-east-1:123456789012:function:f:a:b"))
    end)
  end)

  describe("activity ARNs", function()
    it("parses an activity ARN", function()
      local info = assert(resources.parse("arn:aws:states:us-east-1:123456789012:activity:approve-order"))
      assert.same({ kind = "activity", partition = "aws", service = "states", api = "activity", suffix = "",
        region = "us-east-1", account = "123456789012", activity_name = "approve-order" }, info)
    end)

    it("refuses bad activity names and missing region or account", function()
      assert.matches("not an activity name",
        resources.check("arn:aws:states:us-east-1:123456789012:activity:a b"))
      assert.matches("not an activity name",
        resources.check("arn:aws:states:us-east-1:123456789012:activity:" .. string.rep("x", 81)))
      assert.matches("not an activity name",
        resources.check("arn:aws:states:us-east-1:123456789012:activity:"))
      assert.matches("12%-digit account", resources.check("arn:aws:states:us-east-1::activity:a"))
      assert.matches("activity:<name>",
        resources.check("arn:aws:states:us-east-1:123456789012:stateMachine:a"))
    end)
  end)

  describe("malformed resources", function()
    it("refuses text that is no ARN, naming the expected shape", function()
      for _, arn in ipairs({ "", "sns:publish", "arn:aws:states", "arn:aws:states:::" }) do
        local why = resources.check(arn)
        assert.is_string(why)
        local quoted = '"' .. arn:gsub("%p", "%%%0") .. '"'
        assert.matches(quoted .. " is not a resource ARN Step Functions accepts: ", why)
      end
    end)

    it("refuses an unknown partition, listing the known ones", function()
      local why = resources.check("arn:aws-mars:states:::sns:publish")
      assert.matches("unknown partition 'aws-mars'", why, 1, true)
      assert.matches("aws-iso-b", why, 1, true)
    end)

    it("refuses ARNs of other services", function()
      assert.matches("not a 's3' ARN", resources.check("arn:aws:s3:::my-bucket"), 1, true)
    end)

    it("refuses bad service and API names", function()
      assert.matches("not a service name", resources.check("arn:aws:states:::SNS:publish"))
      assert.matches("not an API name", resources.check("arn:aws:states:::sns:pub-lish"))
      assert.matches("not an API name", resources.check("arn:aws:states:::sns:.sync"))
    end)

    it("refuses a non-string resource without raising", function()
      for _, v in ipairs({ 42, true, {} }) do
        local info, why = resources.parse(v)
        assert.is_nil(info)
        assert.matches("must be an ARN string", why, 1, true)
      end
    end)
  end)
end)
