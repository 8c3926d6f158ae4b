-- The differences the DESIGN audit found (brief "qafix"), each pinned by what a user sees:
-- redrive's --events, history members, execution names and start options, export's
-- placeholder ARNs, scenario durations, the .sync poll schedule and the README's package list.
local json = require "emrflow.json"
local asl = require "emrflow.asl"
local store = require "emrflow.store"
local emulator = require "emrflow.emulator"
local su = require "support.store_util"
local sh = require "support.sh"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  return text
end

local function emrflow(args)
  return sh("EMRFLOW_STORE=/dev/null/no-store lua5.4 bin/emrflow " .. args)
end

local function json_lines(text)
  local list = {}
  for line in text:gmatch("[^\n]+") do
    if line:sub(1, 1) == "{" then list[#list + 1] = json.decode(line) end
  end
  return list
end

-- A job that fails on the emulator the first time, and completes on a redrive.
local CLUSTER = '"virtual_clusters":[{"id":"cszt6tqby98mea88f1u26cob2","name":"prod"}]'
local JOB_INPUT = su.quote('{"VirtualClusterId":"cszt6tqby98mea88f1u26cob2"}')

describe("qafix", function()
  after_each(su.cleanup)

  describe("redrive --events", function()
    it("shows the events `emrflow history` shows from the redrive on, with the same ids", function()
      local dir = su.tmpdir()
      local path = dir .. "/x.db"
      su.write(dir .. "/fail.json",
        "{" .. CLUSTER .. ',"defaults":{"final_state":"FAILED","running_seconds":5}}')
      su.write(dir .. "/ok.json", "{" .. CLUSTER .. ',"defaults":{"running_seconds":5}}')
      local code = emrflow("run examples/emr-eks-job.json --local --name r1 --input " .. JOB_INPUT
        .. " --scenario " .. su.quote(dir .. "/fail.json") .. " --store " .. su.quote(path))
      assert.equal(2, code)
      local c2, _, err = emrflow("redrive r1 --events --scenario " .. su.quote(dir .. "/ok.json")
        .. " --store " .. su.quote(path))
      assert.equal(0, c2, err)
      local shown = json_lines(err)
      local c3, out = emrflow("history r1 --store " .. su.quote(path))
      assert.equal(0, c3)
      local history = json_lines(out)
      local first
      for i, e in ipairs(history) do
        if e.type == "ExecutionRedriven" then first = i end
      end
      assert.is_not_nil(first, "no ExecutionRedriven in the history")
      local want = {}
      for i = first, #history do
        local e = history[i]
        want[#want + 1] = { id = e.id, previousEventId = e.previousEventId, type = e.type }
      end
      local got = {}
      for _, e in ipairs(shown) do
        got[#got + 1] = { id = e.id, previousEventId = e.previousEventId, type = e.type }
      end
      assert.same(want, got)
      assert.equal("ExecutionRedriven", got[1].type)
      assert.equal("ExecutionSucceeded", got[#got].type)
    end)
  end)

  describe("history members", function()
    -- Every *EventDetails member of the API model's HistoryEvent, from botocore (an oracle
    -- independent of emrflow); nil when Debian's python3-botocore is missing.
    local function model_members()
      local code, out = sh([[python3 -c "
import json, botocore.session
m = botocore.session.get_session().get_service_model('stepfunctions')
he = m.shape_for('HistoryEvent')
print(json.dumps({n: list(s.members) for n, s in he.members.items() if hasattr(s, 'members')}))"]])
      if code ~= 0 then return nil end
      return json.decode(out)
    end

    local function check_members(model, events, where)
      assert.is_true(#events > 0, where)
      for _, e in ipairs(events) do
        for k, d in pairs(e) do
          if type(k) == "string" and k:sub(-12) == "EventDetails" then
            local allowed = {}
            for _, m in ipairs(model[k] or {}) do allowed[m] = true end
            for member in pairs(d) do
              assert.is_true(allowed[member] == true,
                string.format("%s: %s.%s is not a GetExecutionHistory member", where, k, member))
            end
          end
        end
      end
    end

    local def = { StartAt = "T", States = { T = { Type = "Task", Resource = "arn:aws:states:::test:qafix",
      Parameters = { ["v.$"] = "$.v" }, End = true } } }
    local handlers = { ["arn:aws:states:::test:qafix"] = function(input) return { got = input.v } end }

    it("TaskScheduled has parameters but no parametersDetails; inputs and outputs have theirs", function()
      local m = asl.load(def)
      local x = m:start({ v = 1 }, { clock = "virtual", handlers = handlers })
      assert.equal("SUCCEEDED", (x:wait()))
      local seen = {}
      for _, e in ipairs(x:history()) do
        seen[e.type] = e
      end
      local scheduled = seen.TaskScheduled.taskScheduledEventDetails
      assert.equal('{"v":1}', scheduled.parameters)
      assert.is_nil(scheduled.parametersDetails)
      assert.same({ truncated = false }, seen.TaskSucceeded.taskSucceededEventDetails.outputDetails)
      assert.same({ truncated = false }, seen.TaskStateEntered.stateEnteredEventDetails.inputDetails)
      assert.same({ truncated = false }, seen.ExecutionStarted.executionStartedEventDetails.inputDetails)
    end)

    it("exec:history() and the store give the model's members only, and the same ones", function()
      local model = model_members()
      if not model then return pending("python3-botocore is not installed") end
      local m = asl.load(def)
      local x = m:start({ v = 2 }, { clock = "virtual", handlers = handlers })
      x:wait()
      check_members(model, x:history(), "exec:history()")
      local s = assert(store.open(su.tmpdir() .. "/h.db"))
      local rx = m:start({ v = 2 }, { clock = "virtual", handlers = handlers, store = s, name = "h1" })
      rx:wait()
      local stored = assert(s:history("h1"))
      check_members(model, stored, "the store")
      local mine = x:history()
      assert.equal(#mine, #stored)
      for i, e in ipairs(mine) do
        for k, d in pairs(e) do
          if type(k) == "string" and k:sub(-12) == "EventDetails" then
            local a, b = {}, {}
            for member in pairs(d) do a[#a + 1] = member end
            for member in pairs(stored[i][k]) do b[#b + 1] = member end
            table.sort(a)
            table.sort(b)
            assert.same(a, b, e.type)
          end
        end
      end
      s:close()
    end)
  end)

  describe("execution names and start options", function()
    local m = asl.load({ StartAt = "P", States = { P = { Type = "Pass", End = true } } })

    it("machine:start refuses a name AWS refuses, naming the bad character", function()
      for _, case in ipairs {
        { "a b", "a space at character 2" }, { "a:b", "':' at character 2" }, { "x/y", "'/' at character 2" },
        { "tab\there", "control character U+0009 at character 4" }, { "[x]", "'[' at character 1" },
        { "", "is empty" }, { string.rep("n", 81), "has 81 characters" },
      } do
        local ok, err = pcall(m.start, m, {}, { name = case[1], clock = "virtual" })
        assert.is_false(ok, case[1])
        assert.truthy(tostring(err):find("execution name must be 1 to 80 characters", 1, true), tostring(err))
        assert.truthy(tostring(err):find(case[2], 1, true), tostring(err))
      end
      local status = m:start({}, { name = "nightly-2024.06_01", clock = "virtual" }):wait()
      assert.equal("SUCCEEDED", status)
    end)

    it("the CLI's --name check is the same rule, and names the bad character", function()
      local code, out, err = emrflow("run examples/emr-eks-pipeline.json --local --name 'a;b'")
      assert.equal(1, code)
      assert.equal("", out)
      assert.truthy(err:find("--name must be 1 to 80 characters", 1, true), err)
      assert.truthy(err:find("';' at character 2", 1, true), err)
    end)

    it("an unknown option is an error naming it (a typo is not a run on the default clock)", function()
      local ok, err = pcall(m.start, m, {}, { clokc = "virtual" })
      assert.is_false(ok)
      assert.truthy(tostring(err):find("unknown machine:start option 'clokc'", 1, true), tostring(err))
      assert.truthy(tostring(err):find("did you mean 'clock'", 1, true), tostring(err))
      ok, err = pcall(m.start, m, {}, { clock = "virtual", zzz_qafix = 1 })
      assert.is_false(ok)
      assert.truthy(tostring(err):find("'zzz_qafix'", 1, true), tostring(err))
    end)

    it("an integration's own options are accepted when it names them (impl.options)", function()
      local entry = asl.register_resource("^arn:aws:states:::test:flavoured$", {
        options = { "flavour" },
        run = function(_, ctx) return ctx.options.flavour end,
      })
      local fm = asl.load({ StartAt = "T", States = { T = { Type = "Task",
        Resource = "arn:aws:states:::test:flavoured", End = true } } })
      local ok, status, out = pcall(function()
        return fm:start({}, { clock = "virtual", flavour = "mint" }):wait()
      end)
      local ok2, err2 = pcall(m.start, m, {}, { clock = "virtual", flavour = "mint" })
      asl.unregister_resource(entry)
      assert.is_true(ok, tostring(status))
      assert.same({ "SUCCEEDED", "mint" }, { status, out })
      -- a machine without that integration does not take it
      assert.is_false(ok2)
      assert.truthy(tostring(err2):find("'flavour'", 1, true))
    end)
  end)

  describe("export --placeholder-arns", function()
    it("writes a Lambda function ARN per state that emrflow validate accepts", function()
      local dir = su.tmpdir()
      su.write(dir .. "/f.lua", [[return { StartAt = "Load data", States = {
        ["Load data"] = { Type = "Task", Resource = function() return 1 end, Next = "Each" },
        Each = { Type = "Map", ItemsPath = "$.xs", ItemProcessor = { StartAt = "One", States = {
          One = { Type = "Task", Resource = function() return 2 end, End = true } } }, End = true } } }]])
      local code, out, err = emrflow("export " .. su.quote(dir .. "/f.lua") .. " --placeholder-arns")
      assert.equal(0, code, err)
      local def = json.decode(out)
      assert.equal("arn:aws:lambda:us-east-1:123456789012:function:emrflow-Load-data",
        def.States["Load data"].Resource)
      assert.equal("arn:aws:lambda:us-east-1:123456789012:function:emrflow-One",
        def.States.Each.ItemProcessor.States.One.Resource)
      su.write(dir .. "/f.json", out)
      assert.same({}, asl.validate(out))
      local c2, vout, verr = emrflow("validate " .. su.quote(dir .. "/f.json") .. " --strict")
      assert.equal(0, c2, verr)
      assert.truthy(vout:find("valid", 1, true))
    end)

    it("keeps a long or odd state name within Lambda's 64-character rule", function()
      local name = "état " .. string.rep("x", 70)
      local m = asl.load({ StartAt = name, States = { [name] = { Type = "Task",
        Resource = function() end, End = true } } })
      local arn = json.decode(m:to_json { placeholder_arns = true, region = "eu-west-1",
        account = "210987654321" }).States[name].Resource
      local fn = arn:match("^arn:aws:lambda:eu%-west%-1:210987654321:function:(.+)$")
      assert.truthy(fn, arn)
      assert.truthy(#fn <= 64 and fn:match("^[%w%-_]+$"), fn)
      assert.same({}, asl.validate(m:to_json { placeholder_arns = true }))
    end)
  end)

  describe("scenario durations", function()
    it("a duration over one year is refused with the field and the maximum", function()
      for _, sc in ipairs {
        { defaults = { running_seconds = 1e308 } },
        { jobs = { { match = "*", pending_seconds = 31536001 } } },
      } do
        local ok, err = pcall(emulator.new, sc)
        assert.is_false(ok)
        assert.truthy(tostring(err):find("at most 31536000 seconds", 1, true), tostring(err))
        assert.truthy(tostring(err):find("_seconds", 1, true), tostring(err))
      end
      assert.is_truthy(emulator.new { defaults = { running_seconds = 31536000 } })
    end)

    it("emrflow run --local says so (exit 1) instead of polling for ever", function()
      local dir = su.tmpdir()
      su.write(dir .. "/huge.json", '{"defaults":{"running_seconds":1e308}}')
      local code, _, err = emrflow("run examples/emr-eks-pipeline.json --local --scenario "
        .. su.quote(dir .. "/huge.json"))
      assert.equal(1, code)
      assert.truthy(err:find("running_seconds", 1, true), err)
      assert.truthy(err:find("at most 31536000 seconds", 1, true), err)
    end)

    it("the README documents the maximum in its scenario section", function()
      local readme = read("README.md")
      local section = readme:match("### The emulator and its scenarios(.-)\n## ")
      assert.truthy(section)
      assert.truthy(section:find("31,536,000", 1, true))
    end)
  end)

  describe(".sync schedule", function()
    -- the first DescribeJobRun of a batched job goes out when the job starts (the plan needs
    -- its creation time), then the next look comes `initial` seconds later
    it("a job run is described at +0 s, its next poll `initial` seconds later", function()
      local vc = "cszt6tqby98mea88f1u26cob2"
      local emu = emulator.new { virtual_clusters = { { id = vc, name = "prod" } },
        defaults = { pending_seconds = 30, submitted_seconds = 0, running_seconds = 0 } }
      local m = asl.load({ StartAt = "J", States = { J = { Type = "Task",
        Resource = "arn:aws:states:::emr-containers:startJobRun.sync", Parameters = {
          VirtualClusterId = vc, Name = "j", ExecutionRoleArn = "arn:aws:iam::123456789012:role/r",
          ReleaseLabel = "emr-6.2.0-latest",
          JobDriver = { SparkSubmitJobDriver = { EntryPoint = "s3://b/e.py" } } }, End = true } } })
      local seen = {}
      local x = m:start({}, { clock = "virtual", emr = emu, poll = { initial = 4, factor = 1, max = 4 },
        on_emr_event = function(ev) if ev.kind == "job_state" then seen[#seen + 1] = ev.at end end })
      local started = x.start_time
      assert.equal("SUCCEEDED", (x:wait()))
      assert.is_true(#seen >= 2)
      assert.is_true(math.abs(seen[1] - started) < 0.5, "first state seen at +" .. (seen[1] - started))
      -- then every 4 s: the final state is seen on the first poll at or after 30 s
      assert.is_true(seen[#seen] - started >= 30 and seen[#seen] - started < 30 + 4 + 1,
        "final state seen at +" .. (seen[#seen] - started))
    end)
  end)

  describe("README installation", function()
    it("lists exactly the Debian packages tools/deps.sh installs", function()
      local deps = read("tools/deps.sh"):match('PKGS="(.-)"')
      assert.truthy(deps)
      local want = {}
      for p in deps:gmatch("%S+") do want[#want + 1] = p end
      table.sort(want)
      local readme = read("README.md")
      local para = readme:match("Both install only the Debian packages that are missing(.-)"
        .. "%(the list is in `tools/deps.sh`%)")
      assert.truthy(para)
      local got = {}
      for quoted in para:gmatch("`([^`]+)`") do
        if not quoted:find("apt-get", 1, true) then
          for p in quoted:gmatch("%S+") do got[#got + 1] = p end
        end
      end
      table.sort(got)
      assert.same(want, got)
    end)
  end)
end)

describe("asl.load's options", function()
  it("are a table: anything else is a clear error naming the call, not a Lua index error", function()
    local def = '{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}'
    local ok, err = pcall(asl.load, def, 1)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("emrflow.asl.load: options must be a table, got a number", 1, true),
      tostring(err))
    assert.is_nil(tostring(err):find("attempt to index", 1, true))
    assert.equal("SUCCEEDED", (asl.load(def, nil):start({}):wait()))
  end)
end)

describe("machine:to_json's placeholder ARNs", function()
  it("are in the machine's region and account unless the call names others", function()
    local m = asl.load({ StartAt = "Fn", States = { Fn = { Type = "Task", End = true,
      Resource = function(x) return x end } } }, { region = "eu-west-1", account = "210987654321" })
    local def = json.decode(m:to_json { placeholder_arns = true })
    assert.equal("arn:aws:lambda:eu-west-1:210987654321:function:emrflow-Fn", def.States.Fn.Resource)
    def = json.decode(m:to_json { placeholder_arns = true, region = "us-west-2" })
    assert.equal("arn:aws:lambda:us-west-2:210987654321:function:emrflow-Fn", def.States.Fn.Resource)
  end)
end)
