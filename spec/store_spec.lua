-- emrflow.store: the execution store's Lua API, and how it treats bad store files.
local store = require "emrflow.store"
local json = require "emrflow.json"
local su = require "support.store_util"

local function open_new(name)
  local path = su.tmpdir() .. "/" .. (name or "executions.db")
  return assert(store.open(path)), path
end

local function event(id, etype, details_key, details, prev)
  local e = { id = id, previousEventId = prev or (id - 1), timestamp = 1733560000 + id / 1000,
    type = etype }
  if details_key then e[details_key] = details end
  return e
end

describe("emrflow.store", function()
  after_each(su.cleanup)

  describe("default path", function()
    local function env(t) return function(k) return t[k] end end

    it("is $EMRFLOW_STORE, else $XDG_DATA_HOME/emrflow, else ~/.local/share/emrflow", function()
      assert.equal("/x/s.db", store.default_path(env { EMRFLOW_STORE = "/x/s.db", HOME = "/h" }))
      assert.equal("/d/emrflow/executions.db",
        store.default_path(env { XDG_DATA_HOME = "/d", HOME = "/h" }))
      assert.equal("/h/.local/share/emrflow/executions.db", store.default_path(env { HOME = "/h" }))
      local p, err = store.default_path(env {})
      assert.is_nil(p)
      assert.matches("EMRFLOW_STORE", err.message)
    end)

    it("open() without a path creates the default store and its directories", function()
      local dir = su.tmpdir()
      local s = assert(store.open(nil, { getenv = function(k)
        if k == "XDG_DATA_HOME" then return dir .. "/data" end
      end }))
      s:close()
      assert.truthy(su.read(dir .. "/data/emrflow/executions.db"))
    end)
  end)

  describe("executions", function()
    it("records an execution and describes it as DescribeExecution does", function()
      local s = open_new()
      local fields = su.sample_execution(1)
      fields.start_date = 1733560000.25
      local x = assert(s:create_execution(fields))
      assert.equal(fields.arn, x.arn)
      assert.matches("^%x+%-%x+%-4%x+%-[89ab]%x+%-%x+$", x.uid)
      local d = assert(s:describe(fields.arn))
      assert.same({ "executionArn", "stateMachineArn", "name", "status", "startDate", "input",
        "inputDetails", "redriveCount", "redriveStatus", "redriveStatusReason" }, json.keys(d))
      assert.equal("RUNNING", d.status)
      assert.equal(1733560000.25, d.startDate)
      assert.equal('{"n":1}', d.input)
      assert.equal(0, d.redriveCount)
      assert.equal("NOT_REDRIVABLE", d.redriveStatus)
      -- the record returned is the one stored, as find() reads it back
      assert.same(assert(s:find(fields.arn)), x)
      assert.equal(s:find(fields.arn).definition, x.definition)
    end)

    it("finds an execution by ARN, by name and by unique id", function()
      local s = open_new()
      local x = assert(s:create_execution(su.sample_execution(7)))
      for _, key in ipairs { x.arn, "run-7", x.uid } do
        assert.equal(x.arn, assert(s:describe(key)).executionArn)
      end
      local d, err = s:describe("run-8")
      assert.is_nil(d)
      assert.equal("ExecutionDoesNotExist", err.code)
    end)

    it("keeps names unique per state machine: ExecutionAlreadyExists", function()
      local s = open_new()
      assert(s:create_execution(su.sample_execution(1)))
      local again = su.sample_execution(1)
      again.uid = nil
      local x, err = s:create_execution(again)
      assert.is_nil(x)
      assert.equal("ExecutionAlreadyExists", err.code)
      assert.matches("run%-1", tostring(err))
      -- the same name under another state machine is a different execution
      assert(s:create_execution(su.sample_execution(1, "weekly")))
      -- ... so the bare name is ambiguous, and says which ARNs to choose from
      local d, aerr = s:describe("run-1")
      assert.is_nil(d)
      assert.equal("ambiguous", aerr.code)
      assert.matches("give its ARN", aerr.message, 1, true)
      assert.matches("execution:weekly:run-1", aerr.message, 1, true)
    end)

    it("lists executions newest first as ListExecutions items, filtered", function()
      local s = open_new()
      for n = 1, 3 do assert(s:create_execution(su.sample_execution(n))) end
      assert(s:create_execution(su.sample_execution(4, "weekly")))
      assert(s:set_status("run-2", "FAILED", { error = "States.TaskFailed", cause = "boom",
        stop_date = 1733560100 }))
      local all = assert(s:executions())
      local names = {}
      for i, item in ipairs(all) do names[i] = item.name end
      assert.same({ "run-4", "run-3", "run-2", "run-1" }, names)
      assert.same({ "executionArn", "stateMachineArn", "name", "status", "startDate",
        "redriveCount" }, json.keys(all[1]))
      local failed = assert(s:executions { status = "FAILED" })
      assert.equal(1, #failed)
      assert.equal("run-2", failed[1].name)
      assert.equal(1733560100, failed[1].stopDate)
      assert.equal(3, #assert(s:executions { machine_name = "nightly" }))
      assert.equal(2, #assert(s:executions { limit = 2 }))
      local none, err = s:executions { status = "DONE" }
      assert.is_nil(none)
      assert.matches("unknown status", err.message)
    end)

    it("records the end of an execution: output, or error and cause", function()
      local s = open_new()
      assert(s:create_execution(su.sample_execution(1)))
      assert(s:create_execution(su.sample_execution(2)))
      assert(s:set_status("run-1", "SUCCEEDED", { output = { done = true } }))
      assert(s:set_status("run-2", "FAILED", { error = "E", cause = "C" }))
      local ok = s:describe("run-1")
      assert.equal("SUCCEEDED", ok.status)
      assert.equal('{"done":true}', ok.output)
      assert.same({ included = true }, ok.outputDetails)
      assert.is_number(ok.stopDate)
      local bad = s:describe("run-2")
      assert.equal("E", bad.error)
      assert.equal("C", bad.cause)
      assert.equal("REDRIVABLE", bad.redriveStatus)
      assert.is_nil(bad.output)
      assert.has_error(function() s:set_status("run-1", "DONE") end)
    end)

    it("marks a redrive: RUNNING again, redriveCount and redriveDate", function()
      local s = open_new()
      assert(s:create_execution(su.sample_execution(1)))
      assert(s:set_status("run-1", "FAILED", { error = "E" }))
      assert(s:mark_redriven("run-1", 1733570000))
      local d = s:describe("run-1")
      assert.equal("RUNNING", d.status)
      assert.equal(1, d.redriveCount)
      assert.equal(1733570000, d.redriveDate)
      assert.is_nil(d.stopDate)
      assert.is_nil(d.error)
    end)

    it("a failed execution stays redrivable for 14 days", function()
      local row = { status = "FAILED", stop_date = 1000 }
      assert.equal("REDRIVABLE", store.redrive_status(row, 1000 + 14 * 86400 - 1))
      local st, why = store.redrive_status(row, 1000 + 14 * 86400 + 1)
      assert.equal("NOT_REDRIVABLE", st)
      assert.matches("14 days", why)
    end)
  end)

  describe("history", function()
    it("returns appended events as GetExecutionHistory events, payloads as JSON text", function()
      local s = open_new()
      local x = assert(s:create_execution(su.sample_execution(1)))
      assert(s:append_events(x, {
        event(1, "ExecutionStarted", "executionStartedEventDetails",
          { input = json.object { n = 1 }, roleArn = "arn:aws:iam::123456789012:role/r" }),
        event(2, "PassStateEntered", "stateEnteredEventDetails",
          json.object_of("name", "A", "input", json.object { n = 1 })),
        event(3, "PassStateExited", "stateExitedEventDetails",
          json.object_of("name", "A", "output", json.array { 1, 2 },
            "assignedVariables", json.object_of("v", "x"))),
      }))
      assert(s:append_events(x.arn, {
        event(4, "ExecutionSucceeded", "executionSucceededEventDetails", { output = json.array { 1, 2 } }),
      }))
      local h = assert(s:history("run-1"))
      assert.equal(4, #h)
      assert.same({ "timestamp", "type", "id", "previousEventId", "stateEnteredEventDetails" },
        json.keys(h[2]))
      assert.equal(1733560000.002, h[2].timestamp)
      assert.equal("A", h[2].stateEnteredEventDetails.name)
      assert.equal('{"n":1}', h[2].stateEnteredEventDetails.input)
      assert.same({ truncated = false }, h[2].stateEnteredEventDetails.inputDetails)
      assert.equal("[1,2]", h[3].stateExitedEventDetails.output)
      assert.same({ v = '"x"' }, h[3].stateExitedEventDetails.assignedVariables)
      assert.equal("[1,2]", h[4].executionSucceededEventDetails.output)
      assert.equal(4, s:last_event_id(x))
      local tail = assert(s:history(x, { after = 2 }))
      assert.same({ 3, 4 }, { tail[1].id, tail[2].id })
    end)

    it("appends a group of events all or nothing", function()
      local s = open_new()
      local x = assert(s:create_execution(su.sample_execution(1)))
      assert(s:append_events(x, { event(1, "ExecutionStarted"), event(2, "PassStateEntered") }))
      -- a group starting with event 2 again: none of it is kept
      local ok, err = s:append_events(x, { event(2, "X"), event(3, "PassStateExited") })
      assert.is_nil(ok)
      assert.equal("duplicate_event", err.code)
      assert.equal(2, s:last_event_id(x))
      -- a group that would leave a gap
      ok, err = s:append_events(x, { event(4, "PassStateExited") })
      assert.is_nil(ok)
      assert.equal("event_gap", err.code)
      assert.matches("events 1 to 2", err.message)
      -- ids that are not consecutive are a caller's mistake
      assert.has_error(function() s:append_events(x, { event(3, "A"), event(5, "B") }) end)
      assert.equal(2, s:last_event_id(x))
      assert.is_false(s.db:in_transaction())
    end)

    it("packs a group in the stored format (stores written before read the same)", function()
      local events = require "emrflow.store.events"
      local list = {
        event(7, "PassStateEntered", "stateEnteredEventDetails",
          json.object_of("name", "A", "input", json.object { n = 1 })),
        event(8, "PassStateExited", "stateExitedEventDetails",
          json.object_of("name", "A", "output", json.array { 2 }), 3),
      }
      local bytes, first, last = events.encode(list)
      assert.same({ 7, 8 }, { first, last })
      -- the format the store has always kept: two length-prefixed JSON arrays, then one
      -- "<i8i8dI4I4I4BI4I4" record per event
      local strings = '["A","PassStateEntered","stateEnteredEventDetails",'
        .. '"PassStateExited","stateExitedEventDetails"]'
      local values = '[{"n":1},[2]]'
      local record = "<i8i8dI4I4I4BI4I4"
      assert.equal(string.pack("<s4s4", strings, values)
        .. string.pack(record, 7, 6, 1733560000.007, 2, 3, 1, 1, 1, 0)
        .. string.pack(record, 8, 3, 1733560000.008, 4, 5, 1, 2, 2, 0), bytes)
      local back = events.decode(bytes)
      assert.same({ 7, 8 }, { back[1].id, back[2].id })
      assert.equal(3, back[2].previousEventId)
      assert.equal("[2]", back[2].stateExitedEventDetails.output)
    end)

    it("refuses an event it cannot record, naming it, and records nothing", function()
      local s = open_new()
      local x = assert(s:create_execution(su.sample_execution(1)))
      local ok, err = s:append_events(x, { event(1, "ExecutionStarted"),
        { id = 2, previousEventId = 1, timestamp = "later", type = "PassStateEntered" } })
      assert.is_nil(ok)
      assert.equal("validation", err.code)
      assert.matches("cannot be recorded", err.message)
      assert.equal(0, s:last_event_id(x))
    end)

    it("keeps the events of each execution apart", function()
      local s = open_new()
      local a = assert(s:create_execution(su.sample_execution(1)))
      local b = assert(s:create_execution(su.sample_execution(2)))
      assert(s:append_events(a, { event(1, "ExecutionStarted") }))
      assert(s:append_events(b, { event(1, "ExecutionStarted"), event(2, "PassStateEntered") }))
      assert.equal(1, #s:history(a))
      assert.equal(2, #s:history(b))
    end)
  end)

  describe("effects", function()
    it("records an effect before it happens and what it produced after", function()
      local s = open_new()
      local x = assert(s:create_execution(su.sample_execution(1)))
      assert(s:record_effect(x, "/States/Run#0", "task",
        { action = "StartJobRun", ClientToken = "tok-1" }))
      assert(s:record_effect(x, "/States/Wait", "timer", { deadline = 1733560600 }))
      local by_key, list = assert(s:effects(x))
      assert.equal(2, #list)
      assert.equal("tok-1", by_key["/States/Run#0"].data.ClientToken)
      assert.is_nil(by_key["/States/Run#0"].result)
      assert(s:complete_effect(x, "/States/Run#0", { id = "job-1" }))
      assert.equal("job-1", s:effect(x, "/States/Run#0").result.id)
      assert.is_nil(s:effect(x, "/States/Other"))
      -- effects belong to their execution
      local y = assert(s:create_execution(su.sample_execution(2)))
      assert.same({}, (s:effects(y)))
    end)
  end)

  describe("data survives", function()
    it("closing and opening the store again", function()
      local s, path = open_new()
      local x = assert(s:create_execution(su.sample_execution(1)))
      assert(s:append_events(x, { event(1, "ExecutionStarted") }))
      s:close()
      local again = assert(store.open(path))
      assert.equal(1, again:last_event_id("run-1"))
      assert.is_true(again:integrity_check())
      again:close()
    end)

    it("a closed store refuses use, and closing twice is harmless", function()
      local s = open_new()
      s:close()
      s:close()
      assert.has_error(function() s:executions() end, "attempt to use a closed store")
    end)
  end)

  describe("bad stores: a clear error, nothing overwritten", function()
    local function refused(path, code, pattern)
      local before = su.read(path)
      local s, err = store.open(path, { busy_timeout = 200 })
      assert.is_nil(s)
      assert.equal(code, err.code)
      assert.matches(path, err.message, 1, true)
      if pattern then assert.matches(pattern, err.message) end
      assert.not_matches("%.lua:%d+", err.message)
      assert.equal(before, su.read(path))
      return err
    end

    it("a file that is not SQLite", function()
      local path = su.tmpdir() .. "/notes.db"
      su.write(path, "these are my notes, please keep them\n")
      refused(path, "not_a_database", "not an SQLite database")
    end)

    it("a truncated store", function()
      local s, path = open_new()
      local x = assert(s:create_execution(su.sample_execution(1)))
      local events = {}
      for i = 1, 300 do
        events[i] = event(i, "PassStateEntered", "stateEnteredEventDetails",
          { name = "S" .. i, input = { pad = string.rep("x", 200) } })
      end
      assert(s:append_events(x, events))
      s:close()
      local full = su.read(path)
      su.write(path, full:sub(1, #full // 2))
      refused(path, "truncated", "truncated")
    end)

    it("another application's SQLite database", function()
      local path = su.tmpdir() .. "/app.db"
      assert(su.sh("python3 -c " .. su.quote("import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); "
        .. "c.execute('create table notes (t)'); c.commit()") .. " " .. su.quote(path)))
      refused(path, "not_a_store", "not an emrflow store")
    end)

    it("a store of a newer schema", function()
      local path = su.tmpdir() .. "/newer.db"
      assert(su.sh("python3 -c " .. su.quote("import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); "
        .. "c.execute('create table executions (x)'); c.execute('pragma user_version = 42'); "
        .. "c.commit()") .. " " .. su.quote(path)))
      refused(path, "newer_schema", "schema version 42")
    end)

    it("a store locked by another process", function()
      local s, path = open_new()
      s:close()
      -- a writer holding its transaction open
      local child = su.spawn([[
        local s = assert(require("emrflow.store").open(arg[1]))
        assert(s.db:query("begin"))
        print("holding")
        io.stdout:flush()
        io.read("a")
      ]], { path })
      child:wait_line("^holding$")
      local other = assert(store.open(path, { busy_timeout = 200 }))
      local x, err = other:create_execution(su.sample_execution(1))
      child:finish()
      assert.is_nil(x)
      assert.equal("locked", err.code)
      assert.matches("is locked by another process", err.message)
      -- once the other process has gone, the store works again
      assert(other:create_execution(su.sample_execution(1)))
      other:close()
    end)

    it("a store another process holds exclusively", function()
      local s, path = open_new()
      s:close()
      local child = su.spawn([[
        os.execute("python3 -c \"import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); "
          .. "c.execute('pragma locking_mode=exclusive'); c.execute('begin exclusive'); "
          .. "c.execute('create table t (x)'); print('holding', flush=True); sys.stdin.read()\" "
          .. arg[1])
      ]], { path })
      child:wait_line("^holding$")
      local other, err = store.open(path, { busy_timeout = 200 })
      child:finish()
      assert.is_nil(other)
      assert.equal("locked", err.code)
    end)

    describe("a read-only directory", function()
      -- root ignores permissions: run the check as nobody when we are root
      local function as_user(code, args)
        local ok, uid = su.sh("id -u")
        local prefix = ""
        if ok and uid:match("^0") then
          if not su.sh("command -v setpriv") then return nil end
          prefix = "setpriv --reuid=65534 --regid=65534 --clear-groups "
        end
        local quoted = {}
        for i, a in ipairs(args) do quoted[i] = su.quote(a) end
        local script = os.tmpname()
        su.write(script, code)
        os.execute("chmod 644 " .. su.quote(script))
        local ok2, out = su.sh(prefix .. "env " .. su.lua_env() .. " EMRFLOW_STORE=/dev/null/x lua5.4 "
          .. su.quote(script) .. " " .. table.concat(quoted, " "))
        os.remove(script)
        return ok2, out
      end
      local OPEN = [[
        local s, err = require("emrflow.store").open(arg[1], { busy_timeout = 200 })
        print(s and "opened" or (err.code .. ": " .. err.message))
      ]]

      it("a new store cannot be created there", function()
        local dir = su.tmpdir()
        os.execute("chmod 555 " .. su.quote(dir))
        local ok, out = as_user(OPEN, { dir .. "/executions.db" })
        if ok == nil then pending("needs setpriv to drop root") return end
        assert.matches("^cannot_open: execution store .*executions%.db cannot be opened", out)
        assert.matches("writable", out)
        assert.is_nil(su.read(dir .. "/executions.db"))
      end)

      it("an existing store there is refused, unchanged", function()
        local dir = su.tmpdir()
        local path = dir .. "/executions.db"
        local s = assert(store.open(path))
        assert(s:create_execution(su.sample_execution(1)))
        s:close()
        os.execute("chmod 777 " .. su.quote(path) .. "; chmod 555 " .. su.quote(dir))
        local before = su.read(path)
        local ok, out = as_user(OPEN, { path })
        if ok == nil then pending("needs setpriv to drop root") return end
        assert.matches("^read_only: execution store .* is read%-only", out)
        assert.matches("directory", out)
        assert.equal(before, su.read(path))
      end)
    end)
  end)
end)

describe("recording executions (store:start)", function()
  local asl = require "emrflow.asl"
  after_each(su.cleanup)

  local function chain(n)
    local states = {}
    for i = 1, n do
      states["P" .. i] = { Type = "Pass", Result = i, ResultPath = "$.last",
        Next = i < n and ("P" .. (i + 1)) or nil, End = i == n or nil }
    end
    return { StartAt = "P1", States = states }
  end

  -- The history the engine kept, as the store gives it back (compared as JSON values).
  local function same_history(x, stored)
    local kept = x:history()
    assert.equal(#kept, #stored)
    for i, e in ipairs(kept) do
      local s = stored[i]
      assert.equal(e.id, s.id)
      assert.equal(e.type, s.type)
      assert.equal(e.previousEventId, s.previousEventId)
    end
  end

  it("records the execution, every event and the output", function()
    local s = open_new()
    local machine = asl.load(chain(5), { name = "chain" })
    local x = s:start(machine, { a = 1 }, { name = "first", clock = "virtual" })
    assert.equal("SUCCEEDED", (x:wait()))
    local d = assert(s:describe("first"))
    assert.equal("SUCCEEDED", d.status)
    assert.equal(x.arn, d.executionArn)
    assert.same(json.decode(json.encode(x.output)), json.decode(d.output))
    assert.is_number(d.stopDate)
    local h = assert(s:history("first"))
    same_history(x, h)
    assert.equal("ExecutionSucceeded", h[#h].type)
    assert.equal("P3", h[6].stateEnteredEventDetails.name)
  end)

  it("a second execution with the same name: ExecutionAlreadyExists, nothing runs", function()
    local s = open_new()
    local machine = asl.load(chain(1), { name = "chain" })
    assert.equal("SUCCEEDED", (s:start(machine, {}, { name = "daily" }):wait()))
    local ran = false
    local ok, err = pcall(s.start, s, machine, {}, { name = "daily", on_event = function() ran = true end })
    assert.is_false(ok)
    assert.equal("ExecutionAlreadyExists", err.code)
    assert.is_false(ran)
    assert.equal(1, #s:executions())
    -- another state machine may use the name
    local other = asl.load(chain(1), { name = "other" })
    assert.equal("SUCCEEDED", (s:start(other, {}, { name = "daily" }):wait()))
  end)

  it("an execution without a name gets its unique id as name", function()
    local s = open_new()
    local x = s:start(asl.load(chain(1), { name = "chain" }), {})
    x:wait()
    local row = assert(s:find(x.arn))
    assert.equal(row.uid, x.name)
  end)

  it("commits the events before a Task's request, with the request as an effect", function()
    local s, path = open_new()
    local seen
    local def = { StartAt = "Prep", States = {
      Prep = { Type = "Pass", Next = "Work" },
      Work = { Type = "Task", End = true, Parameters = { ["n.$"] = "$.n" },
        Resource = function(input)
          -- another connection sees what was committed before this request was made
          local other = assert(store.open(path))
          seen = { history = assert(other:history("job")), effects = select(2, other:effects("job")) }
          other:close()
          return { doubled = input.n * 2 }
        end },
    } }
    local x = s:start(asl.load(def, { name = "tasks" }), { n = 21 }, { name = "job" })
    assert.equal("SUCCEEDED", (x:wait()))
    local types = {}
    for i, e in ipairs(seen.history) do types[i] = e.type end
    assert.same({ "ExecutionStarted", "PassStateEntered", "PassStateExited", "TaskStateEntered",
      "TaskScheduled", "TaskStarted" }, types)
    assert.equal(1, #seen.effects)
    assert.equal("task", seen.effects[1].kind)
    assert.same({ n = 21 }, seen.effects[1].data.parameters)
    assert.equal('{"doubled":42}', s:describe("job").output)
  end)

  it("records a failure: FAILED with error and cause, redrivable", function()
    local s = open_new()
    local def = { StartAt = "F", States = { F = { Type = "Fail", Error = "Oops", Cause = "bad input" } } }
    local x = s:start(asl.load(def, { name = "failing" }), {}, { name = "f1" })
    assert.equal("FAILED", (x:wait()))
    local d = s:describe("f1")
    assert.equal("FAILED", d.status)
    assert.equal("Oops", d.error)
    assert.equal("bad input", d.cause)
    assert.equal("REDRIVABLE", d.redriveStatus)
    assert.equal("ExecutionFailed", s:history("f1")[3].type)
  end)

  it("writes a long chain in groups, each one transaction", function()
    local s = open_new()
    local x = s:start(asl.load(chain(1500), { name = "long" }), {}, { name = "long", clock = "virtual" })
    assert.equal("SUCCEEDED", (x:wait()))
    local h = assert(s:history("long"))
    assert.equal(#x:history(), #h)
    for i, e in ipairs(h) do assert.equal(i, e.id) end
  end)
end)

describe("when the store cannot record", function()
  local asl = require "emrflow.asl"
  after_each(su.cleanup)

  -- The store, its append_events failing from the n-th call on (as a locked or full disk would).
  local function failing_after(s, n)
    local calls = 0
    local real = s.append_events
    s.append_events = function(self, ...)
      calls = calls + 1
      if calls >= n then
        return nil, require("emrflow.errors").new { code = "locked",
          message = "execution store " .. self.path .. " is locked by another process" }
      end
      return real(self, ...)
    end
  end

  it("no Task request is sent: the Task fails with States.Runtime naming the store", function()
    local s = open_new()
    local called = false
    local def = { StartAt = "Work", States = {
      Work = { Type = "Task", End = true, Resource = function() called = true return {} end,
        Catch = { { ErrorEquals = { "States.ALL" }, Next = "Caught" } } },
      Caught = { Type = "Succeed" },
    } }
    failing_after(s, 1)
    local x = s:start(asl.load(def, { name = "locked" }), {}, { name = "l1" })
    local status, res = x:wait()
    assert.is_false(called, "the handler never ran")
    assert.equal("FAILED", status)
    assert.equal("States.Runtime", res.Error)
    assert.matches("cannot record the execution: execution store .* is locked", res.Cause)
    assert.equal("locked", x.store_recorder.error.code)
    -- what was written before stays, marked RUNNING: resume is possible later
    assert.equal("RUNNING", s:describe("l1").status)
  end)
end)

describe("JSON values of every kind", function()
  local asl = require "emrflow.asl"
  after_each(su.cleanup)

  it("a string input and a string output stay JSON strings", function()
    local s = open_new()
    local def = { StartAt = "P", States = { P = { Type = "Pass", Result = "done", End = true } } }
    local x = s:start(asl.load(def, { name = "strings" }), "hello", { name = "s1" })
    assert.equal("SUCCEEDED", (x:wait()))
    local d = s:describe("s1")
    assert.equal('"hello"', d.input)
    assert.equal('"done"', d.output)
    assert.equal('"hello"', s:history("s1")[1].executionStartedEventDetails.input)
  end)
end)

describe("effects order", function()
  after_each(su.cleanup)
  it("lists effects in the order they were recorded", function()
    local s = open_new()
    local x = assert(s:create_execution(su.sample_execution(1)))
    for _, key in ipairs { "task:7", "task:14", "timer:3", "task:21" } do
      assert(s:record_effect(x, key, "task", {}))
    end
    assert(s:record_effect(x, "task:7", "task", { again = true }))
    local _, list = s:effects(x)
    local keys = {}
    for i, e in ipairs(list) do keys[i] = e.key end
    assert.same({ "task:7", "task:14", "timer:3", "task:21" }, keys)
    assert.is_true(list[1].data.again)
  end)
end)

describe("definitions", function()
  local asl = require "emrflow.asl"
  after_each(su.cleanup)

  it("are kept once however many executions run them, and read back with each", function()
    local s, path = open_new()
    local def = '{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}'
    local machine = asl.load(def, { name = "same" })
    for i = 1, 3 do assert.equal("SUCCEEDED", (s:start(machine, {}, { name = "r" .. i }):wait())) end
    local other = asl.load('{"StartAt":"Q","States":{"Q":{"Type":"Succeed"}}}', { name = "same" })
    assert.equal("SUCCEEDED", (s:start(other, {}, { name = "r4" }):wait()))
    assert.same(json.decode(def), json.decode(assert(s:find("r2")).definition))
    assert.equal("Q", json.decode(assert(s:find("r4")).definition).StartAt)
    s:close()
    -- python3 without the sanitizers `make asan` preloads (their report would mix with the count)
    local ok, out = su.sh("env -u LD_PRELOAD python3 -c "
      .. su.quote("import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); "
      .. "print(c.execute('select count(*) from definitions').fetchone()[0])") .. " " .. su.quote(path))
    assert.is_truthy(ok)
    assert.equal("2", out:match("%d+"))
  end)

  it("are found again by a content key, and one whose key another text holds by its SHA-256", function()
    local s, path = open_new()
    local def = '{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}'
    local impostor = '{"StartAt":"X","States":{"X":{"Type":"Succeed"}}}'
    s:close()
    -- a text already stored under the key of def (as if their 64-bit hashes collided)
    local key = require("emrflow.core").store.content_key(def)
    assert.truthy(key:match("^k1:%d+:%x+$"))
    local ok = su.sh("env -u LD_PRELOAD python3 -c " .. su.quote("import sqlite3,sys; "
      .. "c=sqlite3.connect(sys.argv[1]); c.execute('insert into definitions (digest, text) values (?, ?)', "
      .. "(sys.argv[2], sys.argv[3])); c.commit()") .. " " .. su.quote(path) .. " " .. su.quote(key)
      .. " " .. su.quote(impostor))
    assert.is_truthy(ok)
    for round = 1, 2 do   -- a new store object each round: nothing remembered in memory
      s = assert(store.open(path))
      local machine = asl.load(def, { name = "keyed" })
      assert.equal("SUCCEEDED", (s:start(machine, {}, { name = "k" .. round }):wait()))
      assert.equal(def, assert(s:find("k" .. round)).definition)
      s:close()
    end
    local out
    ok, out = su.sh("env -u LD_PRELOAD python3 -c " .. su.quote("import sqlite3,sys; "
      .. "c=sqlite3.connect(sys.argv[1]); "
      .. "print(' '.join(str(len(d)) for (d,) in c.execute('select digest from definitions order by id')))")
      .. " " .. su.quote(path))
    assert.is_truthy(ok)
    -- the impostor under def's key, def under its SHA-256 (64 hex digits), stored once
    assert.equal(#key .. " 64", out:match("[%d ]+%d"))
  end)

  -- a Wait of 30 s under the real clock: stepped without waiting, it stays RUNNING
  local WAITING = '{ "StartAt": "W",\n  "States": { "W": { "Type": "Wait", "Seconds": 30, "End": true } } }'

  local function started(s, text, name)
    local x = asl.load(text, { name = "w" }):start({ n = 1 }, { store = s, name = name,
      clock = "real" })
    for _ = 1, 20 do x:step(0) end
    assert.equal("RUNNING", x.status)
    return x
  end

  it("given as JSON text are recorded as given; a Lua table's is encoded", function()
    local s = open_new()
    started(s, WAITING, "text")
    assert.equal(WAITING, assert(s:find("text")).definition)
    local tbl = asl.load(json.decode(WAITING), { name = "w" })
    assert.equal("SUCCEEDED", (tbl:start({}, { store = s, name = "table", clock = "virtual" }):wait()))
    local stored = assert(s:find("table")).definition
    assert.equal(json.encode(json.decode(WAITING)), stored)
    s:close()
  end)

  it("resume with the same definition written otherwise, refuses another one", function()
    local s = open_new()
    started(s, WAITING, "a")
    started(s, WAITING, "b")
    -- the same definition with other spaces: the same machine
    local same = asl.load('{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":30,"End":true}}}',
      { name = "w" })
    local x = assert(s:resume("a", { machine = same, clock = "virtual" }))
    assert.equal("SUCCEEDED", (x:wait()))
    local other = asl.load(WAITING:gsub("30", "31"), { name = "w" })
    local y, err = s:resume("b", { machine = other, clock = "virtual" })
    assert.is_nil(y)
    assert.equal("definition_changed", err.code)
    assert.equal("RUNNING", s:describe("b").status)
    s:close()
  end)
end)
