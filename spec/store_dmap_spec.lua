-- Distributed Map child executions in the store: each child is an execution of its own (its
-- row, history and effects), the parent keeps the Map Run events; resume and redrive go one
-- child at a time: a child that had SUCCEEDED never runs again, a redrive re-runs only the
-- children that had not succeeded.
local store = require "emrflow.store"
local asl = require "emrflow.asl"
local json = require "emrflow.json"
local scheduler = require "emrflow.scheduler"
local su = require "support.store_util"

local LAMBDA = "arn:aws:states:::lambda:invoke"

-- Items -> a Distributed Map (opts: MaxConcurrency, ToleratedFailureCount) whose child runs
-- Prep (Pass) -> T (a Lua handler Task) -> Done (Pass).
local function definition(opts)
  local m = { Type = "Map", ItemsPath = "$.items", ResultPath = "$.out", End = true,
    ItemProcessor = { ProcessorConfig = { Mode = "DISTRIBUTED", ExecutionType = "STANDARD" },
      StartAt = "Prep", States = {
        Prep = { Type = "Pass", Parameters = { ["v.$"] = "$" }, Next = "T" },
        T = { Type = "Task", Resource = LAMBDA, Parameters = { ["v.$"] = "$.v" }, ResultPath = "$.t",
          Next = "Done" },
        Done = { Type = "Pass", Parameters = { ["v.$"] = "$.v", ["sq.$"] = "$.t.sq" }, End = true } } } }
  for k, v in pairs(opts or {}) do m[k] = v end
  return { StartAt = "M", States = { M = m } }
end

local function items(n)
  local list = {}
  for i = 1, n do list[i] = i end
  return { items = list }
end

-- A handler recording its calls (v) and ClientToken seeds; block(v) makes a call never
-- return (the process "dies" there), fail(v) makes it fail.
local function handler(block, fail)
  local r = { calls = {}, seeds = {} }
  r.opts = { clock = "virtual", handlers = { [LAMBDA] = function(input, ctx)
    local v = input.v
    r.calls[#r.calls + 1] = v
    r.seeds[v] = ctx.client_token_seed
    if block and block(v) then scheduler.event():wait() end
    if fail and fail(v) then error({ Error = "Item.Failed", Cause = "item " .. v }, 0) end
    return { sq = v * v }
  end } }
  return r
end

local function sorted(list)
  local copy = {}
  for i, v in ipairs(list) do copy[i] = v end
  table.sort(copy)
  return copy
end

local function assert_chain(events, why)
  for i, e in ipairs(events) do
    assert.equal(i, e.id, why)
    assert.is_true(e.previousEventId < e.id, why)
  end
end

-- The child executions of execution x's only Map Run, by index (0-based): their
-- ListExecutions items.
local function children_of(s, x)
  local runs = assert(s:map_runs(x))
  assert.equal(1, #runs)
  local by_index = {}
  for _, c in ipairs(assert(s:executions { map_run = runs[1].mapRunArn })) do
    by_index[tonumber(c.name:match("%-(%d+)$"))] = c
  end
  return by_index, runs[1]
end

local function expected_output(n, opts)
  local status, out = asl.load(definition(opts), { name = "demo" }):run(items(n), handler().opts)
  assert.equal("SUCCEEDED", status)
  return out
end

describe("Distributed Map child executions in the store", function()
  after_each(su.cleanup)

  it("records each child execution with its own history; the parent keeps the Map Run events", function()
    local s = assert(store.open(su.tmpdir() .. "/x.db"))
    local r = handler()
    r.opts.store, r.opts.name = s, "dm"
    local status, out = asl.load(definition { MaxConcurrency = 2 }, { name = "demo" })
      :start(items(3), r.opts):wait()
    assert.equal("SUCCEEDED", status)
    assert.same({ { v = 1, sq = 1 }, { v = 2, sq = 4 }, { v = 3, sq = 9 } }, out.out)
    -- the parent: no child event in its history, one Map Run
    local h = assert(s:history("dm"))
    assert_chain(h)
    local types = {}
    for _, e in ipairs(h) do types[#types + 1] = e.type end
    assert.same({ "ExecutionStarted", "MapStateEntered", "MapStateStarted", "MapRunStarted",
      "MapRunSucceeded", "MapStateSucceeded", "MapStateExited", "ExecutionSucceeded" }, types)
    -- executions lists the parent only, as ListExecutions without a Map Run
    local listed = assert(s:executions())
    assert.equal(1, #listed)
    assert.equal("dm", listed[1].name)
    -- its children are newer rows: a limit still finds it
    assert.equal("dm", assert(s:executions { limit = 1 })[1].name)
    local children, run = children_of(s, "dm")
    assert.equal(h[4].mapRunStartedEventDetails.mapRunArn, run.mapRunArn)
    assert.equal(h[1].timestamp, run.startDate)
    assert.is_number(run.stopDate)
    for i = 0, 2 do
      local c = children[i]
      assert.equal("SUCCEEDED", c.status)
      assert.equal("arn:aws:states:us-east-1:123456789012:stateMachine:demo/M", c.stateMachineArn)
      local ch = assert(s:history(c.executionArn))
      assert_chain(ch)
      assert.equal("ExecutionStarted", ch[1].type)
      assert.equal(tostring(i + 1), ch[1].executionStartedEventDetails.input)
      assert.equal("ExecutionSucceeded", ch[#ch].type)
      local d = assert(s:describe(c.executionArn))
      assert.equal(run.mapRunArn, d.mapRunArn)
      assert.same({ v = i + 1, sq = (i + 1) ^ 2 // 1 }, json.decode(d.output))
    end
    -- the Task's request was recorded (an effect) in the child, before it was sent
    local effects = assert(s:effects(children[0].executionArn))
    local kinds = {}
    for _, e in pairs(effects) do kinds[#kinds + 1] = e.kind end
    assert.same({ "task" }, kinds)
    -- a child is not resumed or redriven by itself: its parent is
    local x, err = s:resume(children[0].executionArn)
    assert.is_nil(x)
    assert.equal("child_execution", err.code)
    assert.matches("execution:demo:dm", err.message, 1, true)
    s:close()
  end)

  it("a resume does not run a child that had SUCCEEDED; the others continue, the output is the same",
    function()
      local expected = expected_output(6, { MaxConcurrency = 3 })
      local s = assert(store.open(su.tmpdir() .. "/x.db"))
      local m = asl.load(definition { MaxConcurrency = 3 }, { name = "demo" })
      -- items 2 and 5 never return: the process "dies" with children 1, 3, 4, 6 done
      local first = handler(function(v) return v == 2 or v == 5 end)
      first.opts.store, first.opts.name = s, "dm"
      local x = m:start(items(6), first.opts)
      for _ = 1, 200 do x:step(0) end
      assert.equal("RUNNING", x.status)
      local children = children_of(s, "dm")
      local done = {}
      for i, c in pairs(children) do if c.status == "SUCCEEDED" then done[#done + 1] = i + 1 end end
      assert.same({ 1, 3, 4, 6 }, sorted(done))
      local again = handler()
      local y = assert(s:resume("dm", again.opts))
      local status, out = y:wait()
      assert.equal("SUCCEEDED", status)
      assert.same(expected, out)
      -- 2 and 5 run again with the same ClientToken seed (re-attached); 1, 3, 4, 6 do not
      assert.same({ 2, 5 }, sorted(again.calls))
      assert.equal(first.seeds[2], again.seeds[2])
      assert.equal(first.seeds[5], again.seeds[5])
      local h = assert(s:history("dm"))
      assert_chain(h)
      assert.equal("ExecutionSucceeded", h[#h].type)
      children = children_of(s, "dm")
      for i = 0, 5 do
        local ch = assert(s:history(children[i].executionArn))
        assert_chain(ch, "child " .. i)
        local started = 0
        for _, e in ipairs(ch) do
          if e.type == "ExecutionStarted" then started = started + 1 end
        end
        assert.equal(1, started, "child " .. i .. ": no event recorded twice")
        assert.equal("ExecutionSucceeded", ch[#ch].type)
      end
      s:close()
    end)

  it("children that only compute are written together; lost with the process, they are computed again",
    function()
      local def = { StartAt = "M", States = { M = { Type = "Map", End = true, ItemProcessor = {
        ProcessorConfig = { Mode = "DISTRIBUTED", ExecutionType = "STANDARD" }, StartAt = "C", States = {
          C = { Type = "Choice", Choices = { { Variable = "$", NumericEquals = 3, Next = "T" } },
            Default = "P" },
          T = { Type = "Task", Resource = LAMBDA, Parameters = { ["v.$"] = "$" }, End = true },
          P = { Type = "Pass", Parameters = { ["v.$"] = "$" }, End = true } } } } } }
      local m = asl.load(def, { name = "demo" })
      local n = 600 -- more than one batch (M.CHILD_BATCH)
      local list = {}
      for i = 1, n do list[i] = i end
      local expected_status, expected = m:run(list, handler().opts)
      assert.equal("SUCCEEDED", expected_status)
      local s = assert(store.open(su.tmpdir() .. "/x.db"))
      -- item 3's Task never returns: the process "dies" with the other children computed
      local first = handler(function(v) return v == 3 end)
      first.opts.store, first.opts.name = s, "pure"
      local x = m:start(list, first.opts)
      for _ = 1, 200 do x:step(0) end
      assert.equal("RUNNING", x.status)
      local runs = assert(s:map_runs("pure"))
      local written = #assert(s:executions { map_run = runs[1].mapRunArn })
      -- full batches were written; item 3's child was written before its Task started
      assert.is_true(written >= 256 and written < n, "written: " .. written)
      local again = handler()
      local status, out = assert(s:resume("pure", again.opts)):wait()
      assert.equal("SUCCEEDED", status)
      assert.same(expected, out)
      assert.same({ 3 }, again.calls)
      local children = assert(s:executions { map_run = runs[1].mapRunArn })
      assert.equal(n, #children)
      for _, c in ipairs(children) do
        assert.equal("SUCCEEDED", c.status)
        local ch = assert(s:history(c.executionArn))
        assert_chain(ch, c.name)
        assert.equal("ExecutionSucceeded", ch[#ch].type)
      end
      s:close()
    end)

  it("redrive re-runs only the failed child executions (and those that never ran)", function()
    local opts = { MaxConcurrency = 1, ToleratedFailureCount = 1 }
    local expected = expected_output(6, opts)
    local s = assert(store.open(su.tmpdir() .. "/x.db"))
    local m = asl.load(definition(opts), { name = "demo" })
    -- one at a time: 1 ok, 2 fails (tolerated), 3 ok, 4 fails: over the threshold
    local first = handler(nil, function(v) return v % 2 == 0 end)
    first.opts.store, first.opts.name = s, "rd"
    local status, err = m:start(items(6), first.opts):wait()
    assert.equal("FAILED", status)
    assert.equal("States.ExceedToleratedFailureThreshold", err.Error)
    assert.same({ 1, 2, 3, 4 }, first.calls)
    local before = children_of(s, "rd")
    assert.equal("REDRIVABLE_BY_MAP_RUN", assert(s:describe(before[1].executionArn)).redriveStatus)
    local again = handler()
    local y = assert(s:redrive("rd", again.opts))
    local rstatus, out = y:wait()
    assert.equal("SUCCEEDED", rstatus)
    assert.same(expected, out)
    assert.same({ 2, 4, 5, 6 }, again.calls)
    -- a redriven child's Task has a ClientToken of the new generation (a new job)
    assert.are_not.equal(first.seeds[2], again.seeds[2])
    local children = children_of(s, "rd")
    for i = 0, 5 do
      local c = children[i]
      assert.equal("SUCCEEDED", c.status)
      local redriven = (i == 1 or i == 3) and 1 or 0
      assert.equal(redriven, c.redriveCount, "child " .. i)
      local ch = assert(s:history(c.executionArn))
      assert_chain(ch, "child " .. i)
      local n = 0
      for _, e in ipairs(ch) do if e.type == "ExecutionRedriven" then n = n + 1 end end
      assert.equal(redriven, n, "child " .. i)
    end
    assert.equal(1, assert(s:describe("rd")).redriveCount)
    s:close()
  end)

  it("redrive from a state after the Map: the Map Run had ended, none of its children runs again",
    function()
      local def = definition { ToleratedFailureCount = 1 }
      def.States.M.End, def.States.M.Next = nil, "After"
      def.States.After = { Type = "Task", Resource = LAMBDA, Parameters = { v = 100 }, ResultPath = "$.after",
        End = true }
      local s = assert(store.open(su.tmpdir() .. "/x.db"))
      local m = asl.load(def, { name = "demo" })
      -- child 2 fails (tolerated: the Map succeeds), then After fails
      local first = handler(nil, function(v) return v == 2 or v == 100 end)
      first.opts.store, first.opts.name = s, "after"
      local status, err = m:start(items(3), first.opts):wait()
      assert.equal("FAILED", status)
      assert.equal("item 100", err.Cause)
      local again = handler()
      local y = assert(s:redrive("after", again.opts))
      local rstatus, out = y:wait()
      assert.equal("SUCCEEDED", rstatus)
      assert.same({ 100 }, again.calls)
      -- the Map's output as recorded: the tolerated failure stays a failure
      assert.same({ Error = "Item.Failed", Cause = "item 2" }, out.out[2])
      assert.same({ v = 3, sq = 9 }, out.out[3])
      local children = children_of(s, "after")
      assert.equal("FAILED", children[1].status)
      assert.equal(0, children[1].redriveCount)
      s:close()
    end)

  it("redrive re-runs a child ABORTED when a sibling failed, not the ones that succeeded", function()
    local s = assert(store.open(su.tmpdir() .. "/x.db"))
    local m = asl.load(definition { MaxConcurrency = 3 }, { name = "demo" })
    -- 1 and 4 succeed, 2 fails after a second while 3 is still running: 3 is aborted
    local first = handler(nil, function(v) return v == 2 end)
    local inner = first.opts.handlers[LAMBDA]
    first.opts.handlers[LAMBDA] = function(input, ctx)
      if input.v == 2 then scheduler.sleep(1) end
      if input.v == 3 then scheduler.sleep(60) end
      return inner(input, ctx)
    end
    first.opts.store, first.opts.name = s, "ab"
    -- no tolerance given: a Distributed Map tolerates 0, so the one failure is over it
    local fstatus, err = m:start(items(4), first.opts):wait()
    assert.equal("FAILED", fstatus)
    assert.equal("States.ExceedToleratedFailureThreshold", err.Error)
    assert.equal("The specified tolerated failure threshold was exceeded", err.Cause)
    local before = children_of(s, "ab")
    assert.equal("SUCCEEDED", before[0].status)
    assert.equal("FAILED", before[1].status)
    assert.equal("ABORTED", before[2].status)
    assert.equal("SUCCEEDED", before[3].status)
    local again = handler()
    local status, out = assert(s:redrive("ab", again.opts)):wait()
    assert.equal("SUCCEEDED", status)
    assert.same(expected_output(4, { MaxConcurrency = 3 }), out)
    assert.same({ 2, 3 }, sorted(again.calls))
    s:close()
  end)
end)

describe("emrflow executions --machine-name <machine>/<label>, history CHILD", function()
  local ext = require "emrflow.cli.store"
  local cli = { fail = function(message) error({ cli = true, message = message }, 0) end }
  after_each(su.cleanup)

  -- Runs one command of the store's CLI extension: exit code, the lines of stdout as JSON.
  local function run(name, opts, positional)
    local buf = {}
    local out = { write = function(self, ...)
      for _, t in ipairs { ... } do buf[#buf + 1] = t end
      return self
    end }
    local code = ext.commands[name].run(opts, positional or {}, cli,
      { stdout = out, stderr = out, stdin = io.stdin })
    local list = {}
    for line in table.concat(buf):gmatch("[^\n]+") do list[#list + 1] = json.decode(line) end
    return code, list
  end

  it("lists the executions started, a Map's children (by status) and shows a child's history", function()
    local path = su.tmpdir() .. "/x.db"
    local s = assert(store.open(path))
    local r = handler(nil, function(v) return v == 2 end)
    r.opts.store, r.opts.name = s, "cli"
    local status = asl.load(definition { ToleratedFailureCount = 1 }, { name = "demo" })
      :start(items(3), r.opts):wait()
    assert.equal("SUCCEEDED", status)
    local run_arn = assert(s:map_runs("cli"))[1].mapRunArn
    s:close()
    local code, list = run("executions", { store = path })
    assert.equal(0, code)
    assert.equal(1, #list)
    assert.equal("cli", list[1].name)
    local children
    code, children = run("executions", { store = path, ["machine-name"] = "demo/M" })
    assert.equal(0, code)
    assert.equal(3, #children)
    local failed
    code, failed = run("executions", { store = path, ["machine-name"] = "demo/M", status = "FAILED" })
    assert.equal(0, code)
    assert.equal(1, #failed)
    assert.matches("%-1$", failed[1].name)
    local events
    code, events = run("history", { store = path }, { failed[1].name })
    assert.equal(0, code)
    assert.equal("ExecutionStarted", events[1].type)
    assert.equal("ExecutionFailed", events[#events].type)
    assert.equal("item 2", events[#events].executionFailedEventDetails.cause)
    local _, d = run("describe", { store = path }, { failed[1].executionArn })
    assert.equal(run_arn, d[1].mapRunArn)
    assert.equal("REDRIVABLE_BY_MAP_RUN", d[1].redriveStatus)
    local ok, err = store.open(path):executions { map_run = "nightly" }
    assert.is_nil(ok)
    assert.matches("not a Map Run ARN", err.message, 1, true)
  end)
end)

-- The kill -9 test: a process runs a recorded Distributed Map with the real clock (each
-- child's Task takes a moment) and is killed at a seeded moment; the resumed process is killed
-- too, and resumed again until the execution ends. Every Task call is appended to a log.
local SCRIPT = [[
local store = require "emrflow.store"
local asl = require "emrflow.asl"
local json = require "emrflow.json"
local scheduler = require "emrflow.scheduler"
local mode, path, name, log = arg[1], arg[2], arg[3], arg[4]
print("pid " .. io.open("/proc/self/stat"):read("l"):match("^(%d+)"))
io.stdout:flush()
local LAMBDA = "arn:aws:states:::lambda:invoke"
local def = { StartAt = "M", States = { M = { Type = "Map", ItemsPath = "$.items", MaxConcurrency = 3,
  End = true, ItemProcessor = { ProcessorConfig = { Mode = "DISTRIBUTED", ExecutionType = "STANDARD" },
    StartAt = "T", States = {
      T = { Type = "Task", Resource = LAMBDA, Parameters = { ["v.$"] = "$" }, Next = "Done" },
      Done = { Type = "Pass", Parameters = { ["sq.$"] = "$.sq" }, End = true } } } } } }
local items = {}
for i = 1, 12 do items[i] = i end
local opts = { clock = "real", handlers = { [LAMBDA] = function(input)
  local f = assert(io.open(log, "a"))
  f:write(input.v, "\n")
  f:close()
  scheduler.sleep(0.15)
  return { sq = input.v * input.v }
end } }
local s = assert(store.open(path))
local m = asl.load(def, { name = "kill" })
local x
if mode == "run" then
  opts.store, opts.name = s, name
  x = m:start({ items = items }, opts)
else
  x = assert(s:resume(name, opts))
end
print("started " .. mode)
io.stdout:flush()
local status, out = x:wait()
print("status " .. status)
print("output " .. json.encode(out))
io.stdout:flush()
]]

-- Calls per item in the log.
local function calls_in(log)
  local n = {}
  for v in (su.read(log) or ""):gmatch("%d+") do n[tonumber(v)] = (n[tonumber(v)] or 0) + 1 end
  return n
end

-- Runs the script (run | resume); kills it kill_after seconds after it started, or lets it end.
local function step(mode, path, name, log, kill_after)
  return su.run_or_kill(SCRIPT, { mode, path, name, log }, kill_after)
end

-- The items whose child execution had SUCCEEDED in the store at path.
local function succeeded_in(path, name)
  local s = assert(store.open(path))
  local done = {}
  local runs = s:map_runs(name)
  if runs and runs[1] then
    for _, c in ipairs(assert(s:executions { map_run = runs[1].mapRunArn, status = "SUCCEEDED" })) do
      done[#done + 1] = tonumber(c.name:match("%-(%d+)$")) + 1
    end
  end
  s:close()
  return done
end

describe("Distributed Map resume after kill -9 (real clock)", function()
  after_each(su.cleanup)

  it("a child that had SUCCEEDED is never run again; the output is an uninterrupted run's", function()
    local seed = tonumber(os.getenv("EMRFLOW_KILL_SEED") or "") or 20261207
    math.randomseed(seed)
    local dir = su.tmpdir()
    local status, expected = step("run", dir .. "/plain.db", "plain", dir .. "/plain.log")
    assert.equal("SUCCEEDED", status)
    for v, n in pairs(calls_in(dir .. "/plain.log")) do assert.equal(1, n, "item " .. v) end
    local protected_total = 0
    for round = 1, 3 do
      local path, log, name = dir .. "/r" .. round .. ".db", dir .. "/r" .. round .. ".log", "r" .. round
      local k1, k2 = 0.2 + math.random() * 0.5, 0.1 + math.random() * 0.4
      local why = string.format("round %d (seed %d, kills after %.2f/%.2f s)", round, seed, k1, k2)
      -- after each kill: the items done so far, and their calls then
      local protected = {}
      local function note_kill()
        local calls = calls_in(log)
        for _, v in ipairs(succeeded_in(path, name)) do protected[v] = calls[v] or 0 end
      end
      local st, out = step("run", path, name, log, k1)
      if st == nil then
        note_kill()
        st, out = step("resume", path, name, log, k2)
        if st == nil then note_kill() end
      end
      local resumes = 0
      while st == nil and resumes < 5 do
        resumes = resumes + 1
        st, out = step("resume", path, name, log)
      end
      assert.equal("SUCCEEDED", st, why)
      assert.same(expected, out, why)
      local calls = calls_in(log)
      for v, n in pairs(protected) do
        assert.equal(n, calls[v], why .. ": item " .. v .. " had SUCCEEDED, it ran again")
        protected_total = protected_total + 1
      end
      local s = assert(store.open(path))
      assert.is_true(s:integrity_check())
      assert_chain(assert(s:history(name)), why)
      local runs = assert(s:map_runs(name))
      local children = assert(s:executions { map_run = runs[1].mapRunArn })
      assert.equal(12, #children, why)
      for _, c in ipairs(children) do
        assert.equal("SUCCEEDED", c.status, why)
        assert_chain(assert(s:history(c.executionArn)), why .. ": " .. c.name)
      end
      s:close()
    end
    -- the kills fell while the Map ran: some children had ended before one of them
    assert.is_true(protected_total > 0, "no kill fell after a child had ended")
  end)
end)

-- The same with EMR on EKS jobs against the fake emr-containers server (HTTP, real clock):
-- every child's job is started once, however often the process dies.
local EMR_SCRIPT = [[
local store = require "emrflow.store"
local asl = require "emrflow.asl"
local emr = require "emrflow.emr"
local json = require "emrflow.json"
require "emrflow.emr.tasks"
local mode, path, url, name = arg[1], arg[2], arg[3], arg[4]
print("pid " .. io.open("/proc/self/stat"):read("l"):match("^(%d+)"))
io.stdout:flush()
local client = emr.client { region = "us-east-1", endpoint_url = url,
  credentials = { access_key_id = "AKIDEXAMPLE",
    secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" },
  env = { HOME = "/nonexistent", AWS_CONFIG_FILE = "/nonexistent/config",
    AWS_SHARED_CREDENTIALS_FILE = "/nonexistent/credentials", AWS_EC2_METADATA_DISABLED = "true" } }
local job = { Type = "Task", Resource = "arn:aws:states:::emr-containers:startJobRun.sync", End = true,
  Parameters = { ["Name.$"] = "States.Format('part-{}', $.part)", ["VirtualClusterId.$"] = "$.vc",
    ExecutionRoleArn = "arn:aws:iam::123456789012:role/job-execution-role", ReleaseLabel = "emr-6.2.0-latest",
    JobDriver = { SparkSubmitJobDriver = { EntryPoint = "s3://my-bucket/jobs/part.py" } } },
  ResultSelector = { ["Name.$"] = "$.Name", ["State.$"] = "$.State" } }
local def = { StartAt = "Parts", States = { Parts = { Type = "Map", ItemsPath = "$.parts", MaxConcurrency = 3,
  ItemSelector = { ["part.$"] = "$$.Map.Item.Value", ["vc.$"] = "$.vc" }, End = true,
  ItemProcessor = { ProcessorConfig = { Mode = "DISTRIBUTED", ExecutionType = "STANDARD" },
    StartAt = "Job", States = { Job = job } } } } }
local s = assert(store.open(path))
local opts = { emr = client, clock = "real", poll = { initial = 0.05, factor = 1.5, max = 0.2 } }
local x
if mode == "run" then
  local vc = assert(client:create_virtual_cluster { Name = "vc-" .. name,
    ContainerProvider = { Id = "eks", Type = "EKS" } }).Id
  opts.name = name
  x = s:start(asl.load(def, { name = "emr-dmap" }), { vc = vc, parts = { 1, 2, 3, 4, 5, 6 } }, opts)
else
  x = assert(s:resume(name, opts))
end
print("started " .. mode)
io.stdout:flush()
local status, out = x:wait()
print("status " .. status)
print("output " .. json.encode(out))
io.stdout:flush()
]]

describe("Distributed Map of EMR on EKS jobs resumed after kill -9 (fake emr-containers, HTTP)", function()
  local have_fake, fake = pcall(require, "support.fake")
  local srv
  after_each(function()
    if srv then srv:stop() end
    srv = nil
    su.cleanup()
  end)

  local function emr_step(mode, path, name, kill_after)
    return su.run_or_kill(EMR_SCRIPT, { mode, path, srv.url, name }, kill_after)
  end

  it("one job per child, the uninterrupted output, every round", function()
    if not have_fake then pending("needs spec/support/fake.lua") return end
    srv = fake.start("fake_emr", { job_seconds = 0.3 })
    local dir = su.tmpdir()
    local status, expected = emr_step("run", dir .. "/plain.db", "plain")
    assert.equal("SUCCEEDED", status)
    assert.equal(6, srv:stats().job_runs)
    local seed = tonumber(os.getenv("EMRFLOW_KILL_SEED") or "") or 20261207
    math.randomseed(seed + 1)
    for round = 1, 2 do
      srv:reset()
      local path, name = dir .. "/r" .. round .. ".db", "emr-" .. round
      local k1, k2 = 0.3 + math.random() * 0.8, 0.2 + math.random() * 0.6
      local why = string.format("round %d (seed %d, kills after %.2f/%.2f s)", round, seed, k1, k2)
      local st, out = emr_step("run", path, name, k1)
      if st == nil then st, out = emr_step("resume", path, name, k2) end
      local resumes = 0
      while st == nil and resumes < 5 do
        resumes = resumes + 1
        st, out = emr_step("resume", path, name)
      end
      assert.equal("SUCCEEDED", st, why)
      assert.same(expected, out, why)
      local stats = srv:stats()
      assert.equal(6, stats.job_runs, why .. ": one job per child's Task attempt")
      assert.equal(1, stats.virtual_clusters, why)
      local s = assert(store.open(path))
      assert.is_true(s:integrity_check())
      local runs = assert(s:map_runs(name))
      for _, c in ipairs(assert(s:executions { map_run = runs[1].mapRunArn })) do
        assert.equal("SUCCEEDED", c.status, why)
        local started = 0
        for _, e in ipairs(assert(s:history(c.executionArn))) do
          if e.type == "TaskStarted" then started = started + 1 end
        end
        assert.equal(1, started, why .. ": " .. c.name)
      end
      s:close()
    end
  end)
end)
