-- core.signal: SIGINT / SIGTERM as a flag polled between scheduler steps.
local core = require "emrflow.core"

local function own_pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("a"):match("^(%d+)")
  f:close()
  return pid
end

describe("core.signal", function()
  after_each(function() core.signal.unwatch() end)

  it("reports a caught SIGTERM once", function()
    core.signal.watch()
    assert.is_true(os.execute("kill -TERM " .. own_pid()))
    assert.are.equal("SIGTERM", core.signal.pending())
    assert.is_nil(core.signal.pending())
  end)

  it("watching again keeps a signal caught in between (it is not lost)", function()
    core.signal.watch()
    -- (SIGTERM: system(), behind os.execute, ignores SIGINT in the caller while it waits)
    assert.is_true(os.execute("kill -TERM " .. own_pid()))
    core.signal.watch() -- e.g. the execution is driven after it was started
    assert.are.equal("SIGTERM", core.signal.pending())
  end)

  it("a first watch starts clean", function()
    core.signal.watch()
    assert.is_true(os.execute("kill -TERM " .. own_pid()))
    core.signal.unwatch()
    core.signal.watch()
    assert.is_nil(core.signal.pending())
  end)
end)
