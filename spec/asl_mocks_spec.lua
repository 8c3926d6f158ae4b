-- emrflow.asl.mocks: Step Functions Local mock configurations, loaded from a table, a file or
-- SFN_MOCK_CONFIG; responses looked up per invocation; every malformed configuration refused
-- with a message naming the file and what is wrong.
local json = require "emrflow.json"
local mocks = require "emrflow.asl.mocks"

local CONFIG = [[{
  "StateMachines": {
    "Pipeline": {
      "TestCases": {
        "HappyPath": { "Notify": "SnsOk", "Submit": "JobFlaky" },
        "AllFail": { "Submit": "JobDown" }
      }
    },
    "Other": { "TestCases": { "T": {} } }
  },
  "MockedResponses": {
    "SnsOk": { "0": { "Return": { "MessageId": "m-1" } } },
    "JobFlaky": {
      "0": { "Throw": { "Error": "EmrContainers.InternalServerException", "Cause": "try again" } },
      "1-2": { "Return": { "Id": "job-2", "State": "COMPLETED" } },
      "4": { "Return": null }
    },
    "JobDown": { "0-99": { "Throw": { "Error": "States.TaskFailed" } } }
  }
}]]

local function config() return json.decode(CONFIG) end

local function tmpfile(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

-- The message of the error mocks.new raises for cfg.
local function load_error(cfg, case, machine)
  local ok, err = pcall(mocks.new, cfg, case or "HappyPath", machine or "Pipeline")
  assert.is_false(ok)
  assert.equal("mock_config", err.code)
  return err.message
end

describe("emrflow.asl.mocks", function()
  describe("lookup", function()
    local m
    before_each(function() m = mocks.new(config(), "HappyPath", "Pipeline") end)

    it("returns the mocked Return for a single-invocation key", function()
      assert.same({ Return = { MessageId = "m-1" } }, m:lookup("Notify", 0))
    end)

    it("returns a Throw, then a range's Return, invocation by invocation", function()
      assert.same({ Throw = { Error = "EmrContainers.InternalServerException", Cause = "try again" } },
        m:lookup("Submit", 0))
      assert.same({ Return = { Id = "job-2", State = "COMPLETED" } }, m:lookup("Submit", 1))
      assert.same({ Return = { Id = "job-2", State = "COMPLETED" } }, m:lookup("Submit", 2))
      assert.equal(json.null, m:lookup("Submit", 4).Return)
    end)

    it("returns nil for a state the test case does not mock", function()
      assert.is_nil(m:lookup("NotMocked", 0))
      assert.is_false(m:mocks("NotMocked"))
      assert.is_true(m:mocks("Submit"))
    end)

    it("returns false and a message naming state, invocation and keys when no key covers it", function()
      local r, msg = m:lookup("Submit", 3)
      assert.is_false(r)
      assert.matches("state 'Submit'", msg, 1, true)
      assert.matches("invocation 3", msg, 1, true)
      assert.matches("keys: 0, 1-2, 4", msg, 1, true)
      r, msg = m:lookup("Notify", 1)
      assert.is_false(r)
      assert.matches("'SnsOk'", msg, 1, true)
    end)

    it("keeps the machine name, test case and source", function()
      assert.equal("Pipeline", m.machine_name)
      assert.equal("HappyPath", m.test_case)
      assert.equal("mock configuration table", m.source)
    end)

    it("selects another test case of the same file", function()
      local all = mocks.new(config(), "AllFail", "Pipeline")
      assert.same({ Throw = { Error = "States.TaskFailed" } }, all:lookup("Submit", 57))
      assert.is_nil(all:lookup("Notify", 0))
    end)

    it("accepts a Lua table written by hand", function()
      local t = mocks.new({
        StateMachines = { M = { TestCases = { T = { S = "R" } } } },
        MockedResponses = { R = { ["0"] = { Return = "done" }, ["1-3"] = { Return = 42 } } },
      }, "T", "M")
      assert.equal("done", t:lookup("S", 0).Return)
      assert.equal(42, t:lookup("S", 3).Return)
    end)
  end)

  describe("loading from a file", function()
    it("reads the JSON file and names it in errors", function()
      local path = tmpfile(CONFIG)
      local m = mocks.new(path, "HappyPath", "Pipeline")
      assert.equal(path, m.source)
      assert.same({ Return = { MessageId = "m-1" } }, m:lookup("Notify", 0))
      local msg = load_error(path, "HappyPath", "Nope")
      assert.matches(path, msg, 1, true)
      os.remove(path)
    end)

    it("refuses a missing file, naming it", function()
      local msg = load_error("/nonexistent/mocks.json")
      assert.matches("/nonexistent/mocks.json", msg, 1, true)
    end)

    it("refuses invalid JSON with the file name and the byte offset", function()
      local path = tmpfile('{"StateMachines": {,}}')
      local msg = load_error(path)
      assert.matches("mock config " .. path .. ": invalid JSON", msg, 1, true)
      assert.matches("byte", msg, 1, true)
      os.remove(path)
    end)

    it("reads SFN_MOCK_CONFIG when no configuration is given", function()
      local path = tmpfile(CONFIG)
      local script = tmpfile([[
        local m = require("emrflow.asl.mocks").new(nil, "HappyPath", "Pipeline")
        io.write(m.source, " ", m:lookup("Notify", 0).Return.MessageId)
      ]])
      local p = assert(io.popen("SFN_MOCK_CONFIG='" .. path .. "' lua5.4 " .. script .. " 2>&1"))
      local out = p:read("a")
      p:close()
      assert.equal(path .. " m-1", out)
      p = assert(io.popen("env -u SFN_MOCK_CONFIG lua5.4 " .. script .. " 2>&1"))
      out = p:read("a")
      p:close()
      assert.matches("SFN_MOCK_CONFIG", out, 1, true)
      os.remove(path)
      os.remove(script)
    end)
  end)

  describe("refuses a malformed configuration", function()
    it("an unknown state machine, listing the known ones", function()
      local msg = load_error(config(), "HappyPath", "Pipe")
      assert.matches("unknown state machine 'Pipe'", msg, 1, true)
      assert.matches("'Other', 'Pipeline'", msg, 1, true)
    end)

    it("an unknown test case, listing the known ones", function()
      local msg = load_error(config(), "Sad", "Pipeline")
      assert.matches("unknown test case 'Sad' for state machine 'Pipeline'", msg, 1, true)
      assert.matches("'AllFail', 'HappyPath'", msg, 1, true)
    end)

    it("a state mapped to an unknown response", function()
      local cfg = config()
      cfg.StateMachines.Pipeline.TestCases.HappyPath.Notify = "SnsOK"
      local msg = load_error(cfg)
      assert.matches("state 'Notify' of test case 'HappyPath' uses the unknown response 'SnsOK'", msg,
        1, true)
    end)

    it("bad invocation keys", function()
      for _, key in ipairs({ "1-", "-1", "a", "2-1", "1.5", " 1", "1 - 2", "" }) do
        local cfg = config()
        cfg.MockedResponses.SnsOk[key] = { Return = 1 }
        local msg = load_error(cfg)
        assert.matches("MockedResponses.SnsOk has a bad invocation key '" .. key .. "'", msg, 1, true)
      end
    end)

    it("overlapping keys", function()
      local cfg = config()
      cfg.MockedResponses.JobFlaky["2-3"] = { Return = 1 }
      assert.matches("the keys '1-2' and '2-3' overlap", load_error(cfg), 1, true)
    end)

    it("a response without exactly one of Return and Throw", function()
      local cfg = config()
      cfg.MockedResponses.SnsOk["1"] = {}
      assert.matches('MockedResponses.SnsOk."1" must have exactly one of', load_error(cfg), 1, true)
      cfg.MockedResponses.SnsOk["1"] = { Return = 1, Throw = { Error = "E" } }
      assert.matches("exactly one of", load_error(cfg), 1, true)
      cfg.MockedResponses.SnsOk["1"] = { Returns = 1 }
      assert.matches("unknown field 'Returns'", load_error(cfg), 1, true)
      cfg.MockedResponses.SnsOk["1"] = "ok"
      assert.matches("must be an object", load_error(cfg), 1, true)
    end)

    it("a Throw without a string Error, or with a non-string Cause", function()
      local cfg = config()
      cfg.MockedResponses.SnsOk["0"] = { Throw = { Cause = "c" } }
      assert.matches('"Throw" must be an object with a string "Error"', load_error(cfg), 1, true)
      cfg.MockedResponses.SnsOk["0"] = { Throw = { Error = "E", Cause = 5 } }
      assert.matches('"Cause" must be a string', load_error(cfg), 1, true)
      cfg.MockedResponses.SnsOk["0"] = { Throw = { Error = "E", Reason = "x" } }
      assert.matches("unknown field 'Reason'", load_error(cfg), 1, true)
    end)

    it("a response with no keys, or given as an array", function()
      local cfg = config()
      cfg.MockedResponses.SnsOk = json.object({})
      assert.matches("MockedResponses.SnsOk has no responses", load_error(cfg), 1, true)
      cfg.MockedResponses.SnsOk = json.array({ { Return = 1 } })
      assert.matches("must be an object of invocation keys", load_error(cfg), 1, true)
    end)

    it("missing top-level blocks and a non-object configuration", function()
      assert.matches('"MockedResponses" must be an object',
        load_error({ StateMachines = {} }), 1, true)
      assert.matches('"StateMachines" must be an object',
        load_error({ MockedResponses = {} }), 1, true)
      local path = tmpfile("[1]")
      assert.matches("must be a JSON object", load_error(path), 1, true)
      os.remove(path)
      assert.matches("a table or a file path", load_error(42), 1, true)
    end)

    it("a missing test case or machine name", function()
      local ok, err = pcall(mocks.new, config(), nil, "Pipeline")
      assert.is_false(ok)
      assert.matches("no test case given", err.message, 1, true)
      ok, err = pcall(mocks.new, config(), "HappyPath", nil)
      assert.is_false(ok)
      assert.matches("no state machine name given", err.message, 1, true)
    end)

    it("prints as its message", function()
      local ok, err = pcall(mocks.new, config(), "Nope", "Pipeline")
      assert.is_false(ok)
      assert.matches("unknown test case 'Nope'", tostring(err), 1, true)
    end)
  end)
end)

-- The CLI extension: options to start options, checked before any state runs.
describe("emrflow.cli.mocks", function()
  local ext = require "emrflow.cli.mocks"
  -- cli.fail as the contract defines it: raises, emrflow prints it and exits 1
  local cli = { fail = function(msg) error({ cli_fail = msg }, 0) end }

  local function hook(opts, env, start)
    start = start or {}
    local io_ = { getenv = function(k) return env and env[k] end }
    local ok, err = pcall(ext.start_hook, opts, start, cli, io_)
    if not ok then
      assert.is_table(err, tostring(err))
      return nil, err.cli_fail
    end
    return start
  end

  local path
  before_each(function() path = tmpfile(CONFIG) end)
  after_each(function() os.remove(path) end)

  it("declares its run options", function()
    local names = {}
    for _, o in ipairs(ext.run_options) do names[#names + 1] = o.name end
    assert.same({ "mock-config", "test-case", "machine-name" }, names)
  end)

  it("adds nothing without mock options", function()
    assert.same({}, hook({}, { SFN_MOCK_CONFIG = path }))
  end)

  it("builds start_opts.mocks from --mock-config, --test-case and --machine-name", function()
    local start = hook({ ["mock-config"] = path, ["test-case"] = "HappyPath", ["machine-name"] = "Pipeline" })
    assert.same({ config = path, test_case = "HappyPath", machine_name = "Pipeline" }, start.mocks)
  end)

  it("takes the machine name from the definition file's name without extension", function()
    local start = hook({ ["mock-config"] = path, ["test-case"] = "AllFail",
      definition = "flows/Pipeline.json" })
    assert.equal("Pipeline", start.mocks.machine_name)
    start = hook({ ["mock-config"] = path, ["test-case"] = "T" }, nil, { definition_path = "x/Other.lua" })
    assert.equal("Other", start.mocks.machine_name)
  end)

  it("leaves the name to asl.load for a definition on stdin", function()
    local start = hook({ ["mock-config"] = path, ["test-case"] = "HappyPath", definition = "-" })
    assert.same({ config = path, test_case = "HappyPath" }, start.mocks)
  end)

  it("falls back to SFN_MOCK_CONFIG for the file", function()
    local start = hook({ ["test-case"] = "HappyPath", ["machine-name"] = "Pipeline" },
      { SFN_MOCK_CONFIG = path })
    assert.equal(path, start.mocks.config)
  end)

  it("fails before the run on a broken configuration, naming the file and the problem", function()
    local start, msg = hook({ ["mock-config"] = path, ["test-case"] = "Nope", ["machine-name"] = "Pipeline" })
    assert.is_nil(start)
    assert.matches(path, msg, 1, true)
    assert.matches("unknown test case 'Nope'", msg, 1, true)
    start, msg = hook({ ["mock-config"] = "/nonexistent.json", ["test-case"] = "T", ["machine-name"] = "M" })
    assert.is_nil(start)
    assert.matches("/nonexistent.json", msg, 1, true)
  end)

  it("fails on options that cannot work alone", function()
    local _, msg = hook({ ["mock-config"] = path })
    assert.equal("--mock-config needs --test-case NAME", msg)
    _, msg = hook({ ["machine-name"] = "Pipeline" })
    assert.equal("--machine-name needs --test-case NAME", msg)
    _, msg = hook({ ["test-case"] = "HappyPath" })
    assert.equal("--test-case needs a mock configuration: --mock-config FILE or SFN_MOCK_CONFIG", msg)
    _, msg = hook({ ["mock-config"] = true, ["test-case"] = "HappyPath" })
    assert.equal("--mock-config needs a value", msg)
  end)
end)

-- End to end: the engine resolves Tasks through the mocks (interp's side) and `emrflow run`
-- takes the options (cli's side). Each test is pending until its side is merged.
describe("mocks end to end", function()
  local asl = require "emrflow.asl"

  local PIPELINE = [[{
    "StartAt": "Notify",
    "States": {
      "Notify": { "Type": "Task", "Resource": "arn:aws:states:::sns:publish", "ResultPath": "$.sns",
                  "Next": "Submit" },
      "Submit": { "Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:submit",
                  "Retry": [ { "ErrorEquals": ["EmrContainers.InternalServerException"],
                               "IntervalSeconds": 1 } ],
                  "ResultPath": "$.job", "End": true }
    }
  }]]

  local function load_pipeline()
    local ok, m = pcall(asl.load, PIPELINE, { name = "Pipeline" })
    if not ok and tostring(m):find("no integration is registered", 1, true) then
      pending("the engine side of mocks (interp) is not merged: sns:publish is still refused at load")
      return nil
    end
    assert(ok, tostring(m))
    return m
  end

  it("runs a machine against its mocks, retries counted as invocations", function()
    local m = load_pipeline()
    if not m then return end
    local x = m:start(json.object({}), { clock = "virtual",
      mocks = { config = config(), test_case = "HappyPath" } })
    local status, out = x:wait()
    assert.equal("SUCCEEDED", status, json.encode(out))
    assert.same({ MessageId = "m-1" }, out.sns)
    -- invocation 0 threw, the retry was invocation 1
    assert.same({ Id = "job-2", State = "COMPLETED" }, out.job)
  end)

  it("fails the Task with States.Runtime when no key covers the invocation", function()
    local m = load_pipeline()
    if not m then return end
    local cfg = config()
    cfg.MockedResponses.SnsOk = json.decode([[{ "1": { "Return": 1 } }]])
    local status, err = m:start(json.object({}), { clock = "virtual",
      mocks = { config = cfg, test_case = "HappyPath" } }):wait()
    assert.equal("FAILED", status)
    assert.equal("States.Runtime", err.Error)
    assert.matches("Notify", err.Cause, 1, true)
    assert.matches("invocation 0", err.Cause, 1, true)
  end)

  it("emrflow run --mock-config --test-case prints the mocked output", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    local def = dir .. "/Pipeline.json"
    local f = assert(io.open(def, "wb"))
    f:write(PIPELINE)
    f:close()
    local mocks_file = dir .. "/mocks.json"
    f = assert(io.open(mocks_file, "wb"))
    f:write(CONFIG)
    f:close()
    local p = assert(io.popen(string.format(
      "bin/emrflow run %s --mock-config %s --test-case HappyPath 2>&1; echo rc=$?", def, mocks_file)))
    local out = p:read("a")
    p:close()
    os.execute("rm -rf " .. dir)
    if out:find("unknown option --mock-config", 1, true) then
      pending("the CLI side of mocks (extension loading) is not merged")
      return
    end
    if out:find("no integration is registered", 1, true) then
      pending("the engine side of mocks (interp) is not merged")
      return
    end
    assert.matches("rc=0", out, 1, true)
    assert.matches('"MessageId"%s*:%s*"m%-1"', out)
  end)
end)
