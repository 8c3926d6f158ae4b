-- Progress of an execution that goes on (redrive, resume): it starts from the recorded
-- events (their states, the start time) without printing them again; --events has the
-- details members GetExecutionHistory has.
local sh = require "support.sh"

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local FLAKY = [[
return {
  StartAt = "First",
  States = {
    First = { Type = "Pass", Result = { a = 1 }, Next = "Flaky" },
    Flaky = { Type = "Task", Resource = function(input)
      if os.getenv("FAIL") == "1" then error({ Error = "Boom", Cause = "flaky" }) end
      return input end, Next = "Last" },
    Last = { Type = "Pass", End = true },
  },
}
]]

describe("progress of an execution that goes on", function()
  local dir
  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. q(dir)))
    local f = assert(io.open(dir .. "/flaky.lua", "w"))
    f:write(FLAKY)
    f:close()
  end)
  after_each(function() os.execute("rm -rf " .. q(dir)) end)

  local function emrflow(env, args)
    return sh(env .. " lua5.4 bin/emrflow " .. args)
  end

  it("redrive: says it is redriven, names the states it runs, none it replays", function()
    local db = q(dir .. "/x.db")
    local code = emrflow("FAIL=1", "run " .. q(dir .. "/flaky.lua") .. " --store " .. db
      .. " --name r1 --quiet")
    assert.equal(2, code)
    local _, err
    code, _, err = emrflow("FAIL=0", "redrive r1 --store " .. db .. " --progress")
    assert.equal(0, code, err)
    assert.truthy(err:find("execution redriven", 1, true), err)
    assert.truthy(err:find("> Flaky", 1, true), err)
    assert.truthy(err:find("> Last", 1, true), err)
    assert.is_nil(err:find("> First", 1, true), err)       -- replayed, not run again
    assert.is_nil(err:find("nil", 1, true), err)
    assert.truthy(err:find("execution SUCCEEDED after", 1, true), err)
  end)

  it("--events: a TaskScheduled event has no parametersDetails (not a GetExecutionHistory member)",
    function()
      local code, _, err = emrflow("FAIL=0", "run " .. q(dir .. "/flaky.lua")
        .. " --no-store --quiet --events")
      assert.equal(0, code, err)
      assert.truthy(err:find('"TaskScheduled"', 1, true), err)
      assert.is_nil(err:find("parametersDetails", 1, true), err)
      assert.truthy(err:find("inputDetails", 1, true), err)
    end)
end)
