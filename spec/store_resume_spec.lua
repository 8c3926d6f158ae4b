-- store:resume and store:redrive (Lua API): a recorded execution continued after its process
-- stopped mid-run, and a failed one run again from where it failed.
local store = require "emrflow.store"
local asl = require "emrflow.asl"
local json = require "emrflow.json"
local scheduler = require "emrflow.scheduler"
local su = require "support.store_util"

local LAMBDA = "arn:aws:states:::lambda:invoke"

-- Prep (Pass, Assign) -> T1 -> W (Wait 30 s) -> M (Map of 3, 2 at once) -> P (Parallel of 2)
local DEF = [[{
 "StartAt": "Prep",
 "States": {
  "Prep": {"Type": "Pass", "Parameters": {"items.$": "$.items", "n": 1}, "Assign": {"base": 10},
           "Next": "T1"},
  "T1": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
         "Parameters": {"step": "t1", "v.$": "$base"}, "ResultPath": "$.t1", "Next": "W"},
  "W": {"Type": "Wait", "Seconds": 30, "Next": "M"},
  "M": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2, "ResultPath": "$.m", "Next": "P",
        "ItemProcessor": {"StartAt": "MT", "States": {"MT": {"Type": "Task",
          "Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"step": "map", "v.$": "$"},
          "End": true}}}},
  "P": {"Type": "Parallel", "ResultPath": "$.p", "End": true, "Branches": [
      {"StartAt": "B0", "States": {"B0": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
         "Parameters": {"step": "b0"}, "End": true}}},
      {"StartAt": "B1", "States": {"B1": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
         "Parameters": {"step": "b1"}, "End": true}}}]}
 }}]]
local INPUT = '{"items": [1, 2, 3]}'

-- A handler recording its calls ("step:v:attempt" and the ClientToken seed); with block_at, the
-- block_at-th call never returns (the process "dies" there); fail(key) may raise for a call.
local function recorder(block_at, fail)
  local r = { calls = {}, seeds = {} }
  r.handler = function(input, ctx)
    local key = input.step .. ":" .. tostring(input.v)
    r.calls[#r.calls + 1] = key
    r.seeds[key] = ctx.client_token_seed
    if block_at and #r.calls >= block_at then scheduler.event():wait() end
    if fail and fail(key) then error({ Error = "Job.Failed", Cause = "failed " .. key }, 0) end
    return { done = input.step, v = input.v }
  end
  r.opts = { clock = "virtual", handlers = { [LAMBDA] = r.handler } }
  return r
end

local function run_until_blocked(s, name, block_at)
  local r = recorder(block_at)
  local opts = r.opts
  opts.store, opts.name = s, name
  local x = asl.load(DEF, { name = "demo" }):start(json.decode(INPUT), opts)
  for _ = 1, 200 do x:step(0) end
  assert.equal("RUNNING", x.status)
  return r
end

local function assert_chain(events)
  for i, e in ipairs(events) do
    assert.equal(i, e.id)
    assert.is_true(e.previousEventId < e.id)
  end
end

describe("store:resume", function()
  after_each(su.cleanup)
  local expected
  setup(function()
    local r = recorder()
    local status, out = asl.load(DEF, { name = "demo" }):run(json.decode(INPUT), r.opts)
    assert.equal("SUCCEEDED", status)
    expected = out
  end)

  for _, case in ipairs {
    { block = 1, again = { "b0:nil", "b1:nil", "map:1", "map:2", "map:3", "t1:10" } },
    { block = 3, again = { "b0:nil", "b1:nil", "map:2", "map:3" } },
    { block = 6, again = { "b1:nil" } },
  } do
    it("continues after a stop at call " .. case.block .. ": only unfinished Tasks run again, "
      .. "the output and history are an uninterrupted run's", function()
      local path = su.tmpdir() .. "/x.db"
      local s = assert(store.open(path))
      local first = run_until_blocked(s, "r", case.block)
      local recorded = #assert(s:history("r"))
      s:close()
      s = assert(store.open(path))
      local r = recorder()
      local x = assert(s:resume("r", r.opts))
      local status, out = x:wait()
      assert.equal("SUCCEEDED", status)
      assert.same(expected, out)
      table.sort(r.calls)
      assert.same(case.again, r.calls)
      -- an unfinished attempt is called again with its ClientToken seed
      for _, key in ipairs(r.calls) do
        if first.seeds[key] then assert.equal(first.seeds[key], r.seeds[key]) end
      end
      local h = assert(s:history("r"))
      assert.same(h, x:history())
      assert.is_true(#h > recorded)
      assert.equal(49, #h)
      assert_chain(h)
      assert.equal("ExecutionSucceeded", h[#h].type)
      assert.equal("SUCCEEDED", s:describe("r").status)
      s:close()
    end)
  end

  it("keeps a Wait's recorded deadline, and does not wait again once it had ended", function()
    local path = su.tmpdir() .. "/x.db"
    local s = assert(store.open(path))
    run_until_blocked(s, "w", 2)  -- T1 done, the Wait passed (virtual time), the Map blocked
    local h = s:history("w")
    local exited
    for _, e in ipairs(h) do if e.type == "WaitStateExited" then exited = e end end
    assert.truthy(exited)
    -- resumed an hour later on the virtual clock: the Wait, over, is not waited again
    local start = s:describe("w").startDate
    local x = assert(s:resume("w", { clock = "virtual", start_time = start + 3600,
      handlers = { [LAMBDA] = recorder().handler } }))
    assert.equal("SUCCEEDED", (x:wait()))
    h = s:history("w")
    assert.is_true(h[#h].timestamp - start < 3601)
    s:close()
  end)

  it("a Wait interrupted while waiting ends at its recorded deadline", function()
    local path = su.tmpdir() .. "/x.db"
    local s = assert(store.open(path))
    local r = recorder()
    local opts = r.opts
    opts.store, opts.name = s, "w2"
    local x = asl.load(DEF, { name = "demo" }):start(json.decode(INPUT), opts)
    -- run until the Wait is entered (recorded before its timer is set), no further
    local entered
    for _ = 1, 200 do
      x:step(0)
      for _, e in ipairs(s:history("w2")) do if e.type == "WaitStateEntered" then entered = e end end
      if entered then break end
    end
    assert.truthy(entered)
    local x2 = assert(s:resume("w2", { clock = "virtual", start_time = entered.timestamp + 10,
      handlers = { [LAMBDA] = r.handler } }))
    assert.equal("SUCCEEDED", (x2:wait()))
    local exit_t
    for _, e in ipairs(s:history("w2")) do if e.type == "WaitStateExited" then exit_t = e.timestamp end end
    assert.near(entered.timestamp + 30, exit_t, 0.01)
    s:close()
  end)

  it("a Retry back-off interrupted while waiting ends at its recorded deadline", function()
    local path = su.tmpdir() .. "/x.db"
    local s = assert(store.open(path))
    local def = [[{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke",
      "Retry":[{"ErrorEquals":["Job.Failed"],"IntervalSeconds":60,"MaxAttempts":2}],"End":true}}}]]
    local calls = 0
    local function handler()
      calls = calls + 1
      if calls == 1 then error({ Error = "Job.Failed", Cause = "first attempt" }, 0) end
      return { ok = true }
    end
    -- a real clock, so that stepping never reaches the end of the 60 s back-off
    local x = asl.load(def, { name = "retry" }):start({}, { clock = "real", store = s, name = "b1",
      handlers = { [LAMBDA] = handler } })
    local failed
    for _ = 1, 200 do
      x:step(0)
      for _, e in ipairs(s:history("b1")) do if e.type == "TaskFailed" then failed = e end end
      if failed then break end
    end
    assert.truthy(failed)
    assert.equal(1, calls)
    local x2 = assert(s:resume("b1", { clock = "virtual", start_time = failed.timestamp + 10,
      handlers = { [LAMBDA] = handler } }))
    assert.equal("SUCCEEDED", (x2:wait()))
    assert.equal(2, calls) -- the failed attempt is not run again
    local started = {}
    for _, e in ipairs(s:history("b1")) do
      if e.type == "TaskScheduled" then started[#started + 1] = e.timestamp end
    end
    assert.equal(2, #started)
    assert.near(failed.timestamp + 60, started[2], 0.01)
    s:close()
  end)

  it("refuses an execution another live process is running, and takes it over once it has died", function()
    local path = su.tmpdir() .. "/x.db"
    local child = su.spawn([[
      local store = require "emrflow.store"
      local asl = require "emrflow.asl"
      local s = assert(store.open(arg[1]))
      local lambda = "arn:aws:states:::lambda:invoke"
      local m = asl.load({ StartAt = "T", States = { T = { Type = "Task", Resource = lambda, End = true } } },
        { name = "demo" })
      local x = m:start({}, { store = s, name = "live", handlers = { [lambda] = function()
        print("in the task")
        io.stdout:flush()
        io.read("a")   -- until the spec closes our stdin
        os.exit(1)     -- then die without ending the execution
      end } })
      x:wait()
    ]], { path })
    child:wait_line("^in the task$")
    local s = assert(store.open(path))
    local x, err = s:resume("live", { clock = "virtual", handlers = { [LAMBDA] = recorder().handler } })
    assert.is_nil(x)
    assert.equal("still_running", err.code)
    assert.matches("still running in process %d+", err.message)
    child:finish()
    local ok
    for _ = 1, 200 do
      x, err = s:resume("live", { clock = "virtual",
        handlers = { [LAMBDA] = function() return { ok = 1 } end } })
      if x then ok = true break end
      su.sleep(0.05)
    end
    assert.is_true(ok, err and err.message)
    local status, out = x:wait()
    assert.equal("SUCCEEDED", status)
    assert.same({ ok = 1 }, out)
    s:close()
  end)

  it("resumes a Distributed Map one child execution at a time: the finished ones do not run again",
    function()
    local path = su.tmpdir() .. "/x.db"
    local s = assert(store.open(path))
    local def = { StartAt = "M", States = { M = { Type = "Map", End = true, ItemsPath = "$.items",
      ItemProcessor = { ProcessorConfig = { Mode = "DISTRIBUTED", ExecutionType = "STANDARD" },
        StartAt = "T", States = { T = { Type = "Task", Resource = LAMBDA,
          Parameters = { step = "d", ["v.$"] = "$" }, End = true } } } } } }
    local m = asl.load(def, { name = "demo" })
    local first = recorder(2)
    first.opts.store, first.opts.name = s, "dm"
    local x = m:start(json.decode(INPUT), first.opts)
    for _ = 1, 200 do x:step(0) end
    assert.equal("RUNNING", x.status)
    local again = recorder()
    local y = assert(s:resume("dm", again.opts))
    local status, out = y:wait()
    assert.equal("SUCCEEDED", status)
    assert.same({ 1, 2, 3 }, { out[1].v, out[2].v, out[3].v })
    -- the first child had ended before the stop; the two stopped inside their Task re-attach
    table.sort(again.calls)
    assert.same({ "d:2", "d:3" }, again.calls)
    assert.same(first.seeds["d:2"], again.seeds["d:2"])
    local h = s:history("dm")
    assert_chain(h)
    assert.equal("ExecutionSucceeded", h[#h].type)
    for _, e in ipairs(h) do
      assert.is_nil(e.type:match("^Task"), "a child's event in the parent's history")
    end
    s:close()
  end)

  it("keeps the execution's TimeoutSeconds from its recorded start", function()
    local path = su.tmpdir() .. "/x.db"
    local s = assert(store.open(path))
    local m = asl.load({ TimeoutSeconds = 100, StartAt = "T",
      States = { T = { Type = "Task", Resource = LAMBDA, End = true } } }, { name = "demo" })
    local called = false
    local x = m:start({}, { store = s, name = "t", clock = "virtual",
      handlers = { [LAMBDA] = function()
        called = true
        scheduler.event():wait()
      end } })
    -- the process "dies" in the Task (before the virtual clock reaches the timeout)
    for _ = 1, 50 do
      if called then break end
      x:step(0)
    end
    assert.is_true(called)
    assert.equal("RUNNING", s:describe("t").status)
    local start = s:describe("t").startDate
    -- resumed 90 s after the start, the Task needs 20 s more: the execution times out at 100 s
    local y = assert(s:resume("t", { clock = "virtual", start_time = start + 90,
      handlers = { [LAMBDA] = function() scheduler.sleep(20) return {} end } }))
    assert.equal("TIMED_OUT", (y:wait()))
    local d = s:describe("t")
    assert.equal("TIMED_OUT", d.status)
    assert.near(start + 100, d.stopDate, 0.01)
    s:close()
  end)

  it("refuses an execution that has ended, a changed definition, and an unknown one", function()
    local path = su.tmpdir() .. "/x.db"
    local s = assert(store.open(path))
    local r = recorder()
    r.opts.store, r.opts.name = s, "done"
    local m = asl.load(DEF, { name = "demo" })
    assert.equal("SUCCEEDED", (m:start(json.decode(INPUT), r.opts):wait()))
    local x, err = s:resume("done")
    assert.is_nil(x)
    assert.matches("cannot resume execution 'done'.*SUCCEEDED", err.message)
    run_until_blocked(s, "half", 1)
    local other = asl.load(DEF:gsub('"Seconds": 30', '"Seconds": 31'), { name = "demo" })
    x, err = s:resume("half", { machine = other })
    assert.is_nil(x)
    assert.equal("definition_changed", err.code)
    x, err = s:redrive("half")
    assert.is_nil(x)
    assert.equal("ExecutionNotRedrivable", err.code)
    x, err = s:resume("half") -- without the handler it ran with: refused, nothing runs
    assert.is_nil(x)
    assert.equal("unresolved", err.code)
    assert.matches("nothing runs the Task states /States/", err.message)
    assert.equal("RUNNING", s:describe("half").status)
    x, err = s:resume("nope")
    assert.is_nil(x)
    assert.equal("ExecutionDoesNotExist", err.code)
    s:close()
  end)
end)

describe("store:redrive", function()
  after_each(su.cleanup)

  it("runs a failed Map again from the failed iteration only, with new ClientTokens", function()
    local path = su.tmpdir() .. "/x.db"
    local s = assert(store.open(path))
    local r = recorder(nil, function(key) return key == "map:2" end)
    r.opts.store, r.opts.name = s, "f"
    local m = asl.load(DEF, { name = "demo" })
    local status = m:start(json.decode(INPUT), r.opts):wait()
    assert.equal("FAILED", status)
    local d = s:describe("f")
    assert.equal("REDRIVABLE", d.redriveStatus)
    local before = #s:history("f")
    local again = recorder()
    local x = assert(s:redrive("f", again.opts))
    local st, out = x:wait()
    assert.equal("SUCCEEDED", st)
    assert.same({ 1, 2, 3 }, { out.m[1].v, out.m[2].v, out.m[3].v })
    table.sort(again.calls)
    -- map:1 had succeeded; map:3 may have succeeded or been cancelled by the failure
    assert.is_true(again.calls[1] == "b0:nil")
    local map_calls = {}
    for _, c in ipairs(again.calls) do if c:match("^map") then map_calls[#map_calls + 1] = c end end
    assert.is_nil(table.concat(map_calls, " "):find("map:1", 1, true))
    assert.truthy(table.concat(map_calls, " "):find("map:2", 1, true))
    assert.not_equal(r.seeds["map:2"], again.seeds["map:2"])
    local h = s:history("f")
    assert_chain(h)
    assert.equal("ExecutionRedriven", h[before + 1].type)
    assert.equal(1, h[before + 1].executionRedrivenEventDetails.redriveCount)
    assert.equal("ExecutionSucceeded", h[#h].type)
    d = s:describe("f")
    assert.equal("SUCCEEDED", d.status)
    assert.equal(1, d.redriveCount)
    assert.is_number(d.redriveDate)
    s:close()
  end)

  it("a redrive interrupted in its turn is resumed with the redrive's ClientTokens", function()
    local path = su.tmpdir() .. "/x.db"
    local s = assert(store.open(path))
    local r = recorder(nil, function(key) return key == "map:2" end)
    r.opts.store, r.opts.name = s, "g"
    assert.equal("FAILED", (asl.load(DEF, { name = "demo" }):start(json.decode(INPUT), r.opts):wait()))
    -- the redrive stops in its first call (map:2, the failed iteration)
    local redrive = recorder(1)
    local x = assert(s:redrive("g", redrive.opts))
    for _ = 1, 200 do x:step(0) end
    assert.equal("RUNNING", s:describe("g").status)
    local resumed = recorder()
    local y = assert(s:resume("g", resumed.opts))
    assert.equal("SUCCEEDED", (y:wait()))
    assert.equal(redrive.seeds["map:2"], resumed.seeds["map:2"])
    assert.not_equal(r.seeds["map:2"], resumed.seeds["map:2"])
    local h = s:history("g")
    assert_chain(h)
    local redriven = 0
    for _, e in ipairs(h) do if e.type == "ExecutionRedriven" then redriven = redriven + 1 end end
    assert.equal(1, redriven)
    assert.equal(1, s:describe("g").redriveCount)
    s:close()
  end)
end)
