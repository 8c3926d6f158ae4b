-- A new user's journeys through the command line: each test is something the README or
-- DESIGN.md promises that was found broken (or easy to break) while trying emrflow.
local json = require "emrflow.json"

local sh = require "support.sh"

local function emrflow(args)
  return sh("lua5.4 bin/emrflow " .. args)
end

-- The progress lines of stderr, without their "[virtual hh:mm:ss +N.Ns] " stamp.
local function progress_lines(err)
  local lines = {}
  for line in err:gmatch("[^\n]+") do
    local text = line:match("^%[[^%]]*%] (.*)$")
    if text then lines[#lines + 1] = text end
  end
  return lines
end

local function index_of(list, value)
  for i, v in ipairs(list) do
    if v == value then return i end
  end
  return nil
end

describe("qa journeys", function()
  local files = {}
  local function file(content, suffix)
    local name = os.tmpname() .. (suffix or "")
    local f = assert(io.open(name, "w"))
    f:write(content)
    f:close()
    files[#files + 1] = name
    return name
  end
  teardown(function()
    for _, f in ipairs(files) do os.remove(f) end
  end)

  describe("progress after a Map", function()
    it("shows the Map state left and every state after it", function()
      local def = file([[{"StartAt":"M","States":{
        "M":{"Type":"Map","ItemsPath":"$.items",
             "ItemProcessor":{"StartAt":"I","States":{"I":{"Type":"Pass","End":true}}},"Next":"W"},
        "W":{"Type":"Wait","Seconds":3,"Next":"Done"},
        "Done":{"Type":"Succeed"}}}]], ".json")
      local code, out, err = emrflow("run " .. def
        .. [[ --input '{"items":[1,2,3]}' --clock virtual --progress]])
      assert.are.equal(0, code)
      assert.are.same({ 1, 2, 3 }, json.decode(out))
      local lines = progress_lines(err)
      for _, want in ipairs { "> M", "< M", "> W", "< W", "> Done" } do
        assert.is_truthy(index_of(lines, want), want .. " missing from:\n" .. err)
      end
      assert.is_true(index_of(lines, "< M") < index_of(lines, "> W"))
      assert.is_nil(index_of(lines, "> I"), "states inside the Map's iterations are summarised")
    end)

    it("shows the state a Catch on a failed Map goes to, and a retried Map under its own name", function()
      local def = file([[{"StartAt":"M","States":{
        "M":{"Type":"Map","ItemsPath":"$.items",
             "ItemProcessor":{"StartAt":"F","States":{"F":{"Type":"Fail","Error":"Item.Bad"}}},
             "Retry":[{"ErrorEquals":["Item.Bad"],"MaxAttempts":1,"IntervalSeconds":1}],
             "Catch":[{"ErrorEquals":["States.ALL"],"Next":"Handle"}],"End":true},
        "Handle":{"Type":"Pass","End":true}}}]], ".json")
      local code, _, err = emrflow("run " .. def .. [[ --input '{"items":[1,2]}' --clock virtual --progress]])
      assert.are.equal(0, code)
      local lines = progress_lines(err)
      assert.is_truthy(index_of(lines, "> Handle"), err)
      assert.is_truthy(index_of(lines, "< Handle"), err)
      local maps = 0
      for _, l in ipairs(lines) do
        if l:match("^%s*Map M: 2 iterations$") then maps = maps + 1 end
        assert.is_nil(l:match("^%s*Map F:"), "a Map is named by its own state: " .. l)
      end
      assert.are.equal(2, maps, "the first run and the retry each announce the Map:\n" .. err)
    end)

    it("nested Maps: the outer Map's summary continues after an inner Map ends", function()
      local def = file([[{"StartAt":"Outer","States":{
        "Outer":{"Type":"Map","ItemsPath":"$.rows",
          "ItemProcessor":{"StartAt":"Inner","States":{
            "Inner":{"Type":"Map","ItemsPath":"$",
                     "ItemProcessor":{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}},
                     "End":true}}},
          "Next":"After"},
        "After":{"Type":"Pass","End":true}}}]], ".json")
      local code, _, err = emrflow("run " .. def
        .. [=[ --input '{"rows":[[1],[2,3]]}' --clock virtual --progress]=])
      assert.are.equal(0, code)
      local lines = progress_lines(err)
      assert.is_truthy(index_of(lines, "  Map Outer: 2/2 iterations done"), err)
      assert.is_truthy(index_of(lines, "< Outer"), err)
      assert.is_truthy(index_of(lines, "> After"), err)
      assert.is_nil(index_of(lines, "> Inner"), "states inside the outer Map stay summarised:\n" .. err)
    end)
  end)

  describe("from a local pipeline to its IAM policy", function()
    it("policy covers every service the example pipeline calls; notes go to stderr", function()
      local code, out, err = emrflow("policy examples/nightly-report.json --region us-east-1"
        .. " --role-arn arn:aws:iam::123456789012:role/sfn --compact")
      assert.are.equal(0, code, err)
      assert.are.equal(1, select(2, out:gsub("\n", "")), "one line with --compact")
      local doc = json.decode(out)
      assert.are.equal("2012-10-17", doc.Version)
      local by_action = {}
      for _, st in ipairs(doc.Statement) do
        local actions = type(st.Action) == "table" and st.Action or { st.Action }
        for _, a in ipairs(actions) do by_action[a] = st end
      end
      assert.are.same({ "arn:aws:lambda:us-east-1:123456789012:function:nightly-arguments",
                        "arn:aws:lambda:us-east-1:123456789012:function:nightly-arguments:*" },
        by_action["lambda:InvokeFunction"].Resource)
      assert.are.equal("arn:aws:sns:us-east-1:123456789012:nightly-report", by_action["sns:Publish"].Resource)
      assert.are.equal("arn:aws:emr-containers:us-east-1:123456789012:/virtualclusters/*",
        by_action["emr-containers:StartJobRun"].Resource)
      assert.is_table(by_action["emr-containers:DescribeJobRun"])
      assert.is_table(by_action["emr-containers:CancelJobRun"])
      assert.are.equal("arn:aws:iam::123456789012:role/job-execution-role",
        by_action["iam:PassRole"].Resource)
      assert.matches("VirtualClusterId is dynamic", err, 1, true)
    end)
  end)
end)
