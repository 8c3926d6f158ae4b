-- kill -9 of a process writing to the store, at random moments: the database passes
-- PRAGMA integrity_check and holds every event whose append had returned.
local store = require "emrflow.store"
local su = require "support.store_util"

local ROUNDS = 10

-- Starts the writer in the background; returns its pid and its output file.
local function start_writer(path, seed, max_events, name)
  local out = os.tmpname()
  local cmd = string.format("%s EMRFLOW_STORE=/dev/null/no-store lua5.4 spec/support/store_writer.lua "
    .. "%s %d %d %s > %s 2>&1 & echo $!", su.lua_env(), su.quote(path), seed, max_events or 200000,
    su.quote(name or "victim"), su.quote(out))
  local p = io.popen(cmd)
  local pid = tonumber(p:read("l"))
  p:close()
  return pid, out
end

local wait_dead = su.wait_dead

local function last_number(text, word)
  local n
  for v in text:gmatch(word .. " (%d+)") do n = tonumber(v) end
  return n
end

describe("the store under kill -9", function()
  after_each(su.cleanup)

  it("keeps every acknowledged event and stays consistent, over " .. ROUNDS .. " kills", function()
    local path = su.tmpdir() .. "/kill.db"
    local total_acked, kills, checked = 0, 0, 0
    for round = 1, ROUNDS do
      local seed = 1000 + round
      math.randomseed(seed)
      local pid, out = start_writer(path, seed)
      -- let it start, then kill it at a random moment of its writing
      local t0 = os.time()
      repeat su.sleep(0.05) until (su.read(out) or ""):find("start") or os.time() - t0 > 20
      su.sleep(0.05 + math.random() * 0.4)
      os.execute("kill -9 " .. pid .. " 2>/dev/null")
      wait_dead(pid)
      kills = kills + 1
      local text = su.read(out) or ""
      os.remove(out)
      assert.matches("^start %d+", text)
      local acked = last_number(text, "ack") or tonumber(text:match("^start (%d+)"))
      local effect = last_number(text, "effect")

      local s = assert(store.open(path))
      assert.is_true(s:integrity_check())
      local last = assert(s:last_event_id("victim"))
      assert.is_true(last >= acked, "round " .. round .. ": acknowledged event " .. acked
        .. " lost (the store holds up to " .. last .. ")")
      -- the events form one unbroken chain: no gap, no half-written group (the events
      -- before `checked` were checked in the earlier rounds)
      local h = assert(s:history("victim", { after = checked }))
      assert.equal(last - checked, #h)
      for i, e in ipairs(h) do
        local want = checked + i
        if e.id ~= want or e.previousEventId ~= want - 1 then
          error("round " .. round .. ": event " .. want .. " is " .. tostring(e.id))
        end
      end
      checked = last
      if effect then assert.truthy(s:effect("victim", "effect-" .. effect)) end
      s:close()
      total_acked = acked
    end
    assert.equal(ROUNDS, kills)
    assert.is_true(total_acked > 0, "the writer acknowledged events before being killed")
  end)
end)

describe("two processes writing to one store at once", function()
  after_each(su.cleanup)

  it("both finish: the busy timeout serialises their transactions, nothing is lost", function()
    local path = su.tmpdir() .. "/shared.db"
    assert(store.open(path)):close()
    local a_pid, a_out = start_writer(path, 7, 4000, "alpha")
    local b_pid, b_out = start_writer(path, 8, 4000, "beta")
    for _, pid in ipairs { a_pid, b_pid } do wait_dead(pid, 60) end
    local s = assert(store.open(path))
    assert.is_true(s:integrity_check())
    for _, w in ipairs { { "alpha", a_out }, { "beta", b_out } } do
      local text = su.read(w[2]) or ""
      os.remove(w[2])
      assert.matches("\ndone\n$", text)
      local last = assert(s:last_event_id(w[1]))
      assert.is_true(last >= 4000)
      assert.equal(last, last_number(text, "ack"))
      assert.equal(last, #assert(s:history(w[1])))
    end
    s:close()
  end)
end)

describe("a recorded execution killed while its EMR job runs (fake emr-containers, HTTP)", function()
  local have_fake, fake = pcall(require, "support.fake")
  local srv
  after_each(function()
    if srv then srv:stop() end
    srv = nil
    su.cleanup()
  end)

  it("had recorded the job's request before the service saw it, and stays consistent", function()
    if not have_fake then pending("needs spec/support/fake.lua") return end
    srv = fake.start("fake_emr", { job_seconds = 5 })
    local path = su.tmpdir() .. "/emr.db"
    local child = su.spawn(su.read("spec/support/store_emr_run.lua"), { path, srv.url, "night-1" })
    local pid = tonumber(child:wait_line("^pid (%d+)$"))
    -- the moment the service has the job, its request must already be in the store
    local deadline = os.time() + 30
    repeat su.sleep(0.05) until srv:stats().job_runs >= 1 or os.time() > deadline
    assert.equal(1, srv:stats().job_runs)
    local s = assert(store.open(path))
    local _, effects = assert(s:effects("night-1"))
    assert.equal(1, #effects)
    assert.equal("task", effects[1].kind)
    os.execute("kill -9 " .. pid)
    wait_dead(pid)
    local lines = child:finish()
    for _, l in ipairs(lines) do assert.not_matches("^status", l) end

    assert.is_true(s:integrity_check())
    local row = assert(s:find("night-1"))
    assert.equal("RUNNING", row.status)
    local request = srv:requests { method = "POST", path_prefix = "/virtualclusters/" }
    local starts = {}
    for _, r in ipairs(request) do
      if r.path:find("/jobruns$") then starts[#starts + 1] = r end
    end
    assert.equal(1, #starts, "one StartJobRun for the one Task attempt")
    local effect = effects[1].data
    assert.equal("job-night-1", effect.parameters.Name)
    assert.equal(row.uid, effect.executionUid)
    assert.equal("arn:aws:states:::emr-containers:startJobRun.sync",
      "arn:aws:states:::" .. effect.resourceType .. ":" .. effect.resource)
    -- the history holds everything up to the Task's start, in order
    local types = {}
    for i, e in ipairs(assert(s:history("night-1"))) do types[i] = e.type end
    assert.same({ "ExecutionStarted", "PassStateEntered", "PassStateExited", "TaskStateEntered",
      "TaskScheduled", "TaskStarted" }, { table.unpack(types, 1, 6) })
    s:close()
  end)
end)
