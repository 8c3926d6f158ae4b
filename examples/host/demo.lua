-- Run by emrflow-host (make demo): two executions share one scheduler while the host's own
-- 100 ms timer ticks; the host waits in poll() on what the scheduler asks for.
local asl = require "emrflow.asl"
local scheduler = require "emrflow.scheduler"

local s = scheduler.new{ clock = "real" }

local wait = asl.load{ StartAt = "Wait", States = {
  Wait = { Type = "Wait", Seconds = 2, Next = "Done" },
  Done = { Type = "Pass", Parameters = { ["job.$"] = "$.job", status = "waited" }, End = true },
} }:start({ job = "nightly" }, { scheduler = s })

local count = asl.load{ StartAt = "Count", States = {
  Count = { Type = "Pass", Parameters = { ["n.$"] = "States.MathAdd($.n, 1)" }, Next = "More" },
  More = { Type = "Choice", Default = "Count",
           Choices = { { Variable = "$.n", NumericGreaterThanEquals = 1000, Next = "End" } } },
  End = { Type = "Succeed" },
} }:start({ n = 0 }, { scheduler = s })

local ticks = 0
return {
  scheduler = s,
  interval_ms = 100,
  tick = function()
    ticks = ticks + 1
    return not (wait:done() and count:done())
  end,
  finish = function()
    local json = require "emrflow.json"
    local code = 0
    for _, x in ipairs{ wait, count } do
      local status, out = x:wait()
      print(x.name, status, json.encode(out))
      if status ~= "SUCCEEDED" then code = 2 end
    end
    print(("host ticks while they ran: %d"):format(ticks))
    return code
  end,
}
