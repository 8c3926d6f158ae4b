-- emrflow.cli.store: the executions / describe / history commands and run's store options.
local store = require "emrflow.store"
local json = require "emrflow.json"
local ext = require "emrflow.cli.store"
local su = require "support.store_util"

-- The real CLI module when it offers the extension interface (contracts §1), else the one
-- function of it these commands use.
local cli = require "emrflow.cli"
local extensions_loaded = type(cli.fail) == "function" and type(cli.load_extensions) == "function"
if not extensions_loaded then
  cli = { fail = function(message) error({ cli = true, message = message }, 0) end }
end

local function sink()
  local buf = {}
  return { write = function(self, ...)
    for _, s in ipairs { ... } do buf[#buf + 1] = s end
    return self
  end, text = function() return table.concat(buf) end }
end

-- Runs one extension command: exit code, stdout, the error message (exit 1).
local function run(name, opts, positional)
  local out, err = sink(), sink()
  local ok, code = pcall(ext.commands[name].run, opts, positional or {}, cli,
    { stdout = out, stderr = err, stdin = io.stdin })
  if ok then return code, out:text(), err:text() end
  if type(code) == "table" and code.cli then return 1, out:text(), code.message end
  error(code, 0)
end

local function lines(text)
  local list = {}
  for line in text:gmatch("[^\n]+") do list[#list + 1] = json.decode(line) end
  return list
end

-- A store holding three executions of two state machines, one of them with a history.
local function sample_store()
  local path = su.tmpdir() .. "/executions.db"
  local s = assert(store.open(path))
  for n = 1, 2 do assert(s:create_execution(su.sample_execution(n))) end
  local x = assert(s:create_execution(su.sample_execution(3, "weekly")))
  assert(s:append_events(x, {
    { id = 1, previousEventId = 0, timestamp = 1733560000, type = "ExecutionStarted",
      executionStartedEventDetails = { input = json.object {}, roleArn = "arn:aws:iam::1:role/r" } },
    { id = 2, previousEventId = 1, timestamp = 1733560001, type = "PassStateEntered",
      stateEnteredEventDetails = json.object_of("name", "A", "input", json.object {}) },
  }))
  assert(s:set_status("run-1", "FAILED", { error = "States.TaskFailed", cause = "job failed" }))
  s:close()
  return path
end

describe("emrflow executions / describe / history", function()
  after_each(su.cleanup)

  it("executions prints one ListExecutions item per line, newest first, with filters", function()
    local path = sample_store()
    local code, out = run("executions", { store = path })
    assert.equal(0, code)
    local items = lines(out)
    assert.same({ "run-3", "run-2", "run-1" }, { items[1].name, items[2].name, items[3].name })
    assert.equal("arn:aws:states:us-east-1:123456789012:execution:weekly:run-3", items[1].executionArn)
    assert.is_number(items[1].startDate)
    code, out = run("executions", { store = path, status = "FAILED" })
    assert.equal(0, code)
    assert.equal(1, #lines(out))
    code, out = run("executions", { store = path, ["machine-name"] = "nightly", limit = "1" })
    assert.equal(0, code)
    assert.same({ "run-2" }, { lines(out)[1].name })
    local bad_code, _, msg = run("executions", { store = path, status = "DONE" })
    assert.equal(1, bad_code)
    assert.matches("unknown status 'DONE'", msg)
    bad_code, _, msg = run("executions", { store = path, limit = "0" })
    assert.equal(1, bad_code)
    assert.matches("%-%-limit", msg)
  end)

  it("describe prints DescribeExecution's shape for an ARN or a name", function()
    local path = sample_store()
    local code, out = run("describe", { store = path, compact = true }, { "run-1" })
    assert.equal(0, code)
    local d = json.decode(out)
    assert.equal("FAILED", d.status)
    assert.equal("States.TaskFailed", d.error)
    assert.equal("REDRIVABLE", d.redriveStatus)
    code, out = run("describe", { store = path, compact = true }, { d.executionArn })
    assert.equal(0, code)
    assert.equal("run-1", json.decode(out).name)
  end)

  it("history prints GetExecutionHistory events as JSON lines", function()
    local path = sample_store()
    local code, out = run("history", { store = path }, { "run-3" })
    assert.equal(0, code)
    local events = lines(out)
    assert.equal(2, #events)
    assert.equal("PassStateEntered", events[2].type)
    assert.equal("A", events[2].stateEnteredEventDetails.name)
    assert.equal("{}", events[2].stateEnteredEventDetails.input)
    code, out = run("history", { store = path, reverse = true }, { "run-3" })
    assert.equal(0, code)
    assert.equal(2, lines(out)[1].id)
  end)

  it("an unknown execution, a missing argument or a missing store: exit 1, a clear message", function()
    local path = sample_store()
    local code, _, msg = run("describe", { store = path }, { "run-9" })
    assert.equal(1, code)
    assert.matches("Execution Does Not Exist: 'run%-9'", msg)
    code, _, msg = run("history", { store = path }, {})
    assert.equal(1, code)
    assert.matches("one EXECUTION", msg)
    local missing = su.tmpdir() .. "/none.db"
    code, _, msg = run("executions", { store = missing })
    assert.equal(1, code)
    assert.matches("no execution store at " .. missing, msg, 1, true)
    assert.is_nil(su.read(missing))
  end)

  it("a bad store file: exit 1, the reason, the file unchanged", function()
    local path = su.tmpdir() .. "/executions.db"
    su.write(path, "not a database\n")
    for _, c in ipairs { { "executions", {} }, { "describe", { "x" } }, { "history", { "x" } } } do
      local code, _, msg = run(c[1], { store = path }, c[2])
      assert.equal(1, code)
      assert.matches("is not an SQLite database", msg)
    end
    assert.equal("not a database\n", su.read(path))
  end)
end)

describe("run's store options (start_hook)", function()
  after_each(su.cleanup)

  local function hook(opts)
    local start = {}
    local ok, err = pcall(ext.start_hook, opts, start, cli, { stderr = sink() })
    if not ok then return nil, err end
    if start.store then start.store:close() end
    return start
  end

  it("--store PATH records there; --local alone and --no-store do not record", function()
    local path = su.tmpdir() .. "/a/b/executions.db"
    local start = assert(hook { store = path })
    assert.truthy(start.store)
    assert.truthy(su.read(path), "the store and its directories are created")
    assert.is_nil(assert(hook { ["local"] = true }).store)
    assert.is_nil(assert(hook { ["no-store"] = true }).store)
    local lstart = assert(hook { ["local"] = true, store = path })
    assert.truthy(lstart.store)
    assert.is_true(lstart.store_options["local"])
  end)

  it("--store with --no-store, or a bad store, stops before the run", function()
    local _, err = hook { store = "/tmp/x.db", ["no-store"] = true }
    assert.matches("not both", err.message)
    local path = su.tmpdir() .. "/executions.db"
    su.write(path, "text")
    _, err = hook { store = path }
    assert.matches("is not an SQLite database", err.message)
    assert.equal("text", su.read(path))
  end)

  it("no default store and none can be made: a warning, and the run goes on unrecorded", function()
    local real = store.default_path
    store.default_path = function() return "/dev/null/emrflow/executions.db" end
    local start, stderr = {}, sink()
    local ok, err = pcall(ext.start_hook, {}, start, cli, { stderr = stderr })
    store.default_path = real
    assert.is_true(ok, err and err.message)
    assert.is_nil(start.store)
    assert.matches("warning: this run is not recorded: execution store /dev/null/emrflow", stderr:text(),
      1, false)
    assert.matches("%-%-no%-store", stderr:text())
  end)

  it("an existing default store that is bad stops the run, unchanged", function()
    local path = su.tmpdir() .. "/executions.db"
    su.write(path, "not a database")
    local real = store.default_path
    store.default_path = function() return path end
    local _, err = hook {}
    store.default_path = real
    assert.matches("is not an SQLite database", err.message)
    assert.matches("%-%-no%-store", err.message)
    assert.equal("not a database", su.read(path))
  end)
end)

describe("emrflow executions through bin/emrflow", function()
  after_each(su.cleanup)

  it("lists, describes and prints history; exit 1 on a bad store", function()
    if not extensions_loaded then
      pending("emrflow.cli does not load extensions yet (contracts §1)")
      return
    end
    local path = sample_store()
    local ok, out = su.sh("lua5.4 bin/emrflow executions --store " .. su.quote(path))
    assert.is_truthy(ok)
    assert.equal(3, #lines(out))
    ok, out = su.sh("lua5.4 bin/emrflow describe run-3 --compact --store " .. su.quote(path))
    assert.is_truthy(ok)
    assert.equal("RUNNING", json.decode(out).status)
    local bad = su.tmpdir() .. "/bad.db"
    su.write(bad, "x")
    local code_ok, msg = su.sh("lua5.4 bin/emrflow history run-3 --store " .. su.quote(bad)
      .. " 2>&1; echo exit=$?")
    assert.is_truthy(code_ok)
    assert.matches("exit=1", msg)
    assert.matches("emrflow: execution store .* is not an SQLite database", msg)
  end)
end)

describe("emrflow run records in the store", function()
  local asl = require "emrflow.asl"
  after_each(su.cleanup)

  -- machine:start hands an execution to the store when given { store = s } (the one-line
  -- dispatch in emrflow.asl's Machine:start); until then these specs wait.
  local function run_records()
    local s = assert(store.open(su.tmpdir() .. "/probe.db"))
    local m = asl.load('{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}', { name = "probe" })
    local ok = pcall(function() m:start({}, { store = s, name = "probe" }):wait() end)
    local recorded = ok and s:find("probe") ~= nil
    s:close()
    return recorded
  end

  local function emrflow(args)
    return su.sh("lua5.4 bin/emrflow " .. args .. " 2>&1; echo exit=$?")
  end

  local DEF = "examples/emr-eks-pipeline.json"

  it("records a run; the same --name again is ExecutionAlreadyExists, exit 1", function()
    if not extensions_loaded or not run_records() then
      pending("machine:start does not hand { store = s } to the store yet")
      return
    end
    local path = su.tmpdir() .. "/executions.db"
    local _, out = emrflow("run " .. DEF .. " --local --compact --name nightly --store " .. su.quote(path))
    assert.matches("exit=0", out)
    local s = assert(store.open(path))
    local d = assert(s:describe("nightly"))
    assert.equal("SUCCEEDED", d.status)
    assert.equal("ExecutionSucceeded", s:history("nightly")[#s:history("nightly")].type)
    s:close()
    _, out = emrflow("run " .. DEF .. " --local --name nightly --store " .. su.quote(path))
    assert.matches("ExecutionAlreadyExists", out)
    assert.matches("exit=1", out)
  end)

  it("--local runs are not recorded without --store; --no-store runs never are", function()
    if not extensions_loaded or not run_records() then
      pending("machine:start does not hand { store = s } to the store yet")
      return
    end
    local dir = su.tmpdir()
    local env = "EMRFLOW_STORE=" .. su.quote(dir .. "/default.db") .. " "
    local _, out = su.sh(env .. "lua5.4 bin/emrflow run " .. DEF .. " --local --name a 2>&1; echo exit=$?")
    assert.matches("exit=0", out)
    assert.is_nil(su.read(dir .. "/default.db"))
    _, out = emrflow("run " .. DEF .. " --local --no-store --store " .. su.quote(dir .. "/x.db"))
    assert.matches("not both", out)
    assert.matches("exit=1", out)
  end)
end)

describe("emrflow resume and redrive", function()
  after_each(su.cleanup)

  local function emrflow(args)
    return su.sh("EMRFLOW_STORE=/dev/null/no-store lua5.4 bin/emrflow " .. args .. " 2>&1; echo exit=$?")
  end

  local function wait_for(pred, seconds)
    local deadline = os.time() + (seconds or 20)
    repeat
      if pred() then return true end
      su.sleep(0.05)
    until os.time() > deadline
    return false
  end

  it("resume continues a run killed by kill -9 during a Wait, to the same output", function()
    local dir = su.tmpdir()
    local path, def = dir .. "/x.db", dir .. "/waits.json"
    su.write(def, [[{"StartAt":"A","States":{
      "A":{"Type":"Pass","Result":{"x":1},"Next":"W"},
      "W":{"Type":"Wait","Seconds":2,"Next":"B"},
      "B":{"Type":"Pass","Parameters":{"y.$":"$.x"},"End":true}}}]])
    local p = io.popen(string.format("%s EMRFLOW_STORE=/dev/null/no-store lua5.4 bin/emrflow run %s "
      .. "--name w1 --compact --store %s > %s 2>&1 & echo $!", su.lua_env(), su.quote(def),
      su.quote(path), su.quote(dir .. "/out")))
    local pid = tonumber(p:read("l"))
    p:close()
    -- killed once the Wait has been entered (recorded before its timer is set)
    assert.is_true(wait_for(function()
      local s = store.open(path)
      if not s then return false end
      local h = s:history("w1")
      s:close()
      return h and h[#h] and h[#h].type == "WaitStateEntered"
    end))
    os.execute("kill -9 " .. pid)
    su.sleep(0.2)
    assert.matches("continue it with: emrflow resume w1 %-%-store", su.read(dir .. "/out"))
    local _, out = emrflow("resume w1 --compact --store " .. su.quote(path))
    assert.matches("exit=0", out)
    assert.matches('{"y":1}', out, 1, true)
    local s = assert(store.open(path))
    local h = s:history("w1")
    local types = {}
    for i, e in ipairs(h) do
      assert.equal(i, e.id)
      types[i] = e.type
    end
    assert.same({ "ExecutionStarted", "PassStateEntered", "PassStateExited", "WaitStateEntered",
      "WaitStateExited", "PassStateEntered", "PassStateExited", "ExecutionSucceeded" }, types)
    s:close()
    -- an ended execution is not resumed
    _, out = emrflow("resume w1 --store " .. su.quote(path))
    assert.matches("cannot resume execution 'w1'.*SUCCEEDED", out)
    assert.matches("exit=1", out)
    _, out = emrflow("resume w1 --input {} --store " .. su.quote(path))
    assert.matches("exit=1", out)
    assert.matches("recorded input", out)
  end)

  -- Starts `emrflow run ARGS` in the background; kills it with kill -9 once its Wait state
  -- has been entered (recorded before its timer is set). Returns what it printed.
  local function run_and_kill_in_wait(args, path, name, dir)
    local p = io.popen(string.format("cd %s && %s EMRFLOW_STORE=/dev/null/no-store lua5.4 %s/bin/emrflow "
      .. "run %s > out 2>&1 & echo $!", su.quote(dir), su.lua_env(), su.quote(os.getenv("PWD") or "."),
      args))
    local pid = tonumber(p:read("l"))
    p:close()
    assert.is_true(wait_for(function()
      local s = store.open(path)
      if not s then return false end
      local h = s:history(name)
      s:close()
      return h and h[#h] and h[#h].type == "WaitStateEntered"
    end))
    os.execute("kill -9 " .. pid)
    su.sleep(0.2)
    return su.read(dir .. "/out")
  end

  it("resume loads a .lua definition again for its functions, and refuses a changed one", function()
    local dir = su.tmpdir()
    local path = dir .. "/x.db"
    local flow = [[return { StartAt = "Add", States = {
      Add = { Type = "Task", Resource = function(input) return { n = input.n + 1 } end, Next = "W" },
      W = { Type = "Wait", Seconds = 2, Next = "Double" },
      Double = { Type = "Task", Resource = function(input) return { n = input.n * 2 } end, End = true } } }]]
    su.write(dir .. "/flow.lua", flow)
    local input = "--input '{\"n\":4}' --store x.db"
    local printed = run_and_kill_in_wait("flow.lua --name l1 " .. input, path, "l1", dir)
    -- the hint names the store by its absolute path: it works from any directory
    assert.matches("emrflow resume l1 %-%-store " .. dir:gsub("%p", "%%%0") .. "/x.db", printed)
    local _, out = emrflow("resume l1 --compact --store " .. su.quote(path))
    assert.matches("exit=0", out)
    assert.matches('{"n":10}', out, 1, true)
    run_and_kill_in_wait("flow.lua --name l2 " .. input, path, "l2", dir)
    su.write(dir .. "/flow.lua", (flow:gsub("Seconds = 2", "Seconds = 3")))
    _, out = emrflow("resume l2 --store " .. su.quote(path))
    assert.matches("exit=1", out)
    assert.matches("definition of execution 'l2' %(.*flow%.lua%) has changed", out)
    local s = assert(store.open(path))
    assert.equal("RUNNING", s:describe("l2").status)
    s:close()
  end)

  it("redrive runs a FAILED job again (with run's options), counts it, adds ExecutionRedriven", function()
    local dir = su.tmpdir()
    local path = dir .. "/x.db"
    local cluster = '"virtual_clusters":[{"id":"cszt6tqby98mea88f1u26cob2","name":"prod"}]'
    su.write(dir .. "/fail.json",
      '{' .. cluster .. ',"defaults":{"final_state":"FAILED","running_seconds":5}}')
    su.write(dir .. "/ok.json", '{' .. cluster .. ',"defaults":{"running_seconds":5}}')
    local input = su.quote('{"VirtualClusterId":"cszt6tqby98mea88f1u26cob2"}')
    local _, out = emrflow("run examples/emr-eks-job.json --local --name j1 --input " .. input
      .. " --scenario " .. su.quote(dir .. "/fail.json") .. " --store " .. su.quote(path))
    assert.matches("exit=2", out)
    _, out = emrflow("redrive j1 --compact --scenario " .. su.quote(dir .. "/ok.json")
      .. " --store " .. su.quote(path))
    assert.matches("exit=0", out)
    assert.matches('"State":"COMPLETED"', out, 1, true)
    local s = assert(store.open(path))
    local d = s:describe("j1")
    assert.equal("SUCCEEDED", d.status)
    assert.equal(1, d.redriveCount)
    local n = 0
    for _, e in ipairs(s:history("j1")) do if e.type == "ExecutionRedriven" then n = n + 1 end end
    assert.equal(1, n)
    s:close()
    _, out = emrflow("redrive j1 --store " .. su.quote(path))
    assert.matches("ExecutionNotRedrivable", out)
    assert.matches("exit=1", out)
  end)

  it("a run stopped by SIGTERM says how to run it on", function()
    local dir = su.tmpdir()
    local path, def = dir .. "/x.db", dir .. "/long.json"
    su.write(def, '{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":60,"End":true}}}')
    local p = io.popen(string.format("%s EMRFLOW_STORE=/dev/null/no-store lua5.4 bin/emrflow run %s "
      .. "--name 'long(one)' --store %s > %s 2>&1 & echo $!", su.lua_env(), su.quote(def),
      su.quote(path), su.quote(dir .. "/out")))
    local pid = tonumber(p:read("l"))
    p:close()
    assert.is_true(wait_for(function() return (su.read(dir .. "/out") or ""):find("started", 1, true) end))
    os.execute("kill -TERM " .. pid)
    assert.is_true(wait_for(function()
      return (su.read(dir .. "/out") or ""):find("to continue this execution", 1, true)
    end))
    assert.matches("emrflow redrive 'long%(one%)' %-%-store", su.read(dir .. "/out"))
  end)
end)
