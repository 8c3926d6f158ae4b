-- The DESIGN.md contract as a checker reads it: each test is a promise of DESIGN.md (or of the
-- README / doc/ page that spells it out) that was found to differ while walking it section by
-- section, and now holds.
local json = require "emrflow.json"
local asl = require "emrflow.asl"

local sh = require "support.sh"

-- busted with the project's summary handler, without make test's C test counts
local BUSTED = "env -u EMRFLOW_CTEST_COUNTS lua5.4 /usr/bin/busted -o spec/support/summary.lua "

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

describe("DESIGN audit", function()
  local files = {}
  local function tmp(suffix)
    local name = os.tmpname() .. (suffix or "")
    files[#files + 1] = name
    return name
  end
  teardown(function()
    for _, f in ipairs(files) do os.remove(f) end
  end)

  describe("make test's closing line", function()
    -- "`make test` ... ends with `N passed, N failed`": a skipped test (an absent corpus or
    -- tool) must not change the last line's form.
    it("is exactly 'N passed, N failed' even when a test is skipped", function()
      local spec = tmp("_spec.lua")
      write(spec, [[
describe("x", function()
  it("passes", function() assert.is_true(true) end)
  it("is skipped", function() pending("no corpus here") end)
end)
]])
      local code, out = sh(BUSTED .. spec)
      assert.are.equal(0, code, out)
      local last = out:match("([^\n]*)\n*$")
      assert.are.equal("1 passed, 0 failed", last)
      assert.truthy(out:find("1 skipped", 1, true), out)
    end)

    it("counts failures in the same closing line", function()
      local spec = tmp("_spec.lua")
      write(spec, [[
describe("x", function()
  it("fails", function() assert.are.equal(1, 2) end)
end)
]])
      local code, out = sh(BUSTED .. spec)
      assert.are_not.equal(0, code)
      assert.are.equal("0 passed, 1 failed", out:match("([^\n]*)\n*$"))
    end)
  end)

  describe("a Task's Lua function(input, context)", function()
    -- DESIGN: a Resource may be `function(input, context)`; the context a Step Functions user
    -- knows is the Context object ($$): Execution, State, StateMachine.
    it("reads the Context object's members from a Lua function Resource", function()
      local m = asl.load{ StartAt = "T", States = {
        T = { Type = "Task", End = true, Resource = function(_, context)
          return { execution = context.Execution.Name, state = context.State.Name,
                   machine = context.StateMachine.Name, own = context.state_name }
        end },
      } }
      local status, out = m:start({}, { clock = "virtual", name = "ctx-1" }):wait()
      assert.are.equal("SUCCEEDED", status, json.encode(out))
      assert.are.same({ execution = "ctx-1", state = "T", machine = "emrflow-machine", own = "T" }, out)
    end)

    it("reads them from a handler too, RetryCount while retrying", function()
      local calls = 0
      local m = asl.load({ StartAt = "Notify", States = {
        Notify = { Type = "Task", Resource = "arn:aws:states:::sns:publish", End = true,
                   Retry = { { ErrorEquals = { "Flaky" }, IntervalSeconds = 1 } } },
      } }, { name = "pipeline" })
      local status, out = m:start({}, { clock = "virtual", name = "ctx-2", handlers = {
        ["arn:aws:states:::sns:*"] = function(_, context)
          calls = calls + 1
          if calls == 1 then error({ Error = "Flaky", Cause = "once" }, 0) end
          return { id = context.Execution.Id, state = context.State.Name,
                   retry = context.State.RetryCount }
        end,
      } }):wait()
      assert.are.equal("SUCCEEDED", status, json.encode(out))
      assert.are.same({ id = "arn:aws:states:us-east-1:123456789012:execution:pipeline:ctx-2",
                        state = "Notify", retry = 1 }, out)
    end)
  end)

  describe("the store commands' help", function()
    -- the README's synopsis: `emrflow describe EXECUTION [--store PATH] [--compact]`
    it("shows describe's --compact in its usage line, as the README does", function()
      local code, out = sh("lua5.4 bin/emrflow describe --help")
      assert.are.equal(0, code)
      assert.are.equal("usage: emrflow describe EXECUTION [--store PATH] [--compact]", out:match("^[^\n]*"))
    end)
  end)

  describe("an empty store path or EXECUTION", function()
    -- DESIGN: bad arguments are exit 1 with a clear message, never an internal error
    local function emrflow(args)
      return sh("EMRFLOW_STORE=" .. tmp(".db") .. " lua5.4 bin/emrflow " .. args)
    end

    it("--store '' is a usage error for run, the reading commands, resume and redrive", function()
      for _, args in ipairs { "run examples/emr-eks-pipeline.json --local --store ''",
                              "executions --store ''", "describe x --store ''",
                              "history x --store ''", "redrive x --store ''" } do
        local code, out, err = emrflow(args)
        assert.are.equal(1, code, args)
        assert.are.equal("", out, args)
        assert.are.equal("emrflow: --store needs a PATH (the execution store's file)\n", err, args)
      end
    end)

    it("an empty EXECUTION is a usage error, not an internal one", function()
      for _, command in ipairs { "describe", "history", "resume", "redrive" } do
        local code, _, err = emrflow(command .. " ''")
        assert.are.equal(1, code, command)
        assert.are.equal("emrflow: " .. command .. " takes one EXECUTION (an execution ARN or name)\n",
          err, command)
      end
    end)
  end)

  describe("a Lua definition's strings", function()
    -- ASL is JSON, whose strings are Unicode text: a Lua definition holding other bytes is a
    -- located problem of asl.load / asl.validate / emrflow run, never an internal error once
    -- the execution has run and its output is printed.
    it("must be UTF-8 text: a located problem at load, for values and keys", function()
      local bad_value = { StartAt = "P", States = { P = { Type = "Pass", Result = "caf\xE9", End = true } } }
      local problems = asl.validate(bad_value)
      assert.are.equal(1, #problems)
      assert.are.equal("/States/P/Result", problems[1].path)
      assert.are.equal('is not UTF-8 text: "caf\\xE9"', problems[1].message)
      local ok, err = pcall(asl.load, bad_value)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("/States/P/Result: is not UTF-8 text", 1, true), tostring(err))

      local bad_key = { StartAt = "P", States = { P = { Type = "Pass", End = true,
        Parameters = { ["na\xEFve"] = 1 } } } }
      problems = asl.validate(bad_key)
      assert.are.equal(1, #problems)
      assert.are.equal("/States/P/Parameters", problems[1].path)
      assert.truthy(problems[1].message:find('"na\\xEFve"', 1, true), problems[1].message)
    end)

    it("emrflow run refuses such a .lua definition with exit 1 before anything runs", function()
      local def = tmp(".lua")
      write(def, 'return { StartAt = "P", States = { P = { Type = "Pass", Result = "\\255", End = true } } }')
      local code, out, err = sh("lua5.4 bin/emrflow run " .. def .. " --no-store")
      assert.are.equal(1, code, err)
      assert.are.equal("", out)
      assert.truthy(err:find("/States/P/Result: is not UTF-8 text", 1, true), err)
      assert.is_nil(err:find("internal error", 1, true), err)
      assert.is_nil(err:find("started", 1, true), err)
    end)
  end)
end)
