-- The issue's kill -9 test: an EMR on EKS pipeline (one virtual cluster, a Map of three jobs,
-- one more job) recorded in a store, against the fake emr-containers server over HTTP with a
-- real clock and jobs of about a second per state. Each round kills the run with kill -9 at a
-- seeded moment, resumes it, kills the resumed process too, and resumes until it ends: every
-- round ends SUCCEEDED with exactly one job per Task attempt and one virtual cluster, the
-- output of an uninterrupted run, an unbroken history and a consistent database.
local store = require "emrflow.store"
local su = require "support.store_util"

local ROUNDS = 4
local SEED = tonumber(os.getenv("EMRFLOW_KILL_SEED") or "") or 20261207
local SCRIPT = "spec/support/store_emr_pipeline.lua"
local JOBS = 4 -- one per Task attempt: three Map iterations and the report

-- Runs the pipeline (mode run | resume); kills it kill_after seconds after it started, or
-- lets it end. Returns its status and output when it ended by itself.
local function step(mode, path, url, name, kill_after, variant)
  return su.run_or_kill(su.read(SCRIPT), { mode, path, url, name, variant }, kill_after)
end

describe("resume after kill -9 (fake emr-containers over HTTP, real clock)", function()
  local have_fake, fake = pcall(require, "support.fake")
  local srv
  after_each(function()
    if srv then srv:stop() end
    srv = nil
    su.cleanup()
  end)

  it("every round ends SUCCEEDED: one job per Task attempt, one cluster, the uninterrupted output", function()
    if not have_fake then pending("needs spec/support/fake.lua") return end
    srv = fake.start("fake_emr", { job_seconds = 0.3 })
    local dir = su.tmpdir()
    local status, expected = step("run", dir .. "/plain.db", srv.url, "plain")
    assert.equal("SUCCEEDED", status)
    assert.equal(JOBS, srv:stats().job_runs)
    math.randomseed(SEED)
    local kills, interrupted = {}, 0
    for round = 1, ROUNDS do
      srv:reset()
      local path = dir .. "/round" .. round .. ".db"
      local name = "round-" .. round
      local k1, k2 = 0.1 + math.random() * 2.4, 0.1 + math.random() * 1.5
      kills[#kills + 1] = string.format("%.2f/%.2f", k1, k2)
      local st, out = step("run", path, srv.url, name, k1)
      if st == nil then
        interrupted = interrupted + 1
        st, out = step("resume", path, srv.url, name, k2)
      end
      local resumes = 0
      while st == nil and resumes < 5 do
        resumes = resumes + 1
        st, out = step("resume", path, srv.url, name)
      end
      local why = "round " .. round .. " (seed " .. SEED .. ", kills after " .. kills[#kills] .. " s)"
      assert.equal("SUCCEEDED", st, why)
      assert.same(expected, out, why)
      local stats = srv:stats()
      assert.equal(JOBS, stats.job_runs, why .. ": one job per Task attempt")
      assert.equal(1, stats.virtual_clusters, why .. ": one virtual cluster")
      local s = assert(store.open(path))
      assert.is_true(s:integrity_check())
      assert.equal("SUCCEEDED", s:describe(name).status)
      local h = assert(s:history(name))
      local started = 0
      for i, e in ipairs(h) do
        assert.equal(i, e.id, why)
        assert.is_true(e.previousEventId < e.id, why)
        if e.type == "TaskStarted" then started = started + 1 end
      end
      assert.equal(JOBS + 1, started, why .. ": one TaskStarted per Task attempt")
      s:close()
    end
    -- the kills fell while the pipeline ran (it takes about 3 s uninterrupted)
    assert.is_true(interrupted >= ROUNDS // 2, "only " .. interrupted .. " rounds were interrupted")
  end)

  it("a Task killed during its retry re-attaches to the retry's job: one job per attempt", function()
    if not have_fake then pending("needs spec/support/fake.lua") return end
    srv = fake.start("fake_emr", { job_seconds = 1 })
    local dir = su.tmpdir()
    local path = dir .. "/retry.db"
    local child = su.spawn(su.read(SCRIPT), { "run", path, srv.url, "retried", "retry" })
    local pid = tonumber(child:wait_line("^pid (%d+)$"))
    local function wait_jobs(n)
      for _ = 1, 600 do
        local jobs = srv:control("GET", "/__fake/state").jobRuns
        if #jobs >= n then return jobs end
        su.sleep(0.05)
      end
      error("the fake never had " .. n .. " job runs")
    end
    -- the first attempt's job fails; the Retry starts a second one, then the process dies
    local first = wait_jobs(1)[1]
    srv:control("POST", "/__fake/jobs/" .. first.id .. "/state", { state = "FAILED" })
    wait_jobs(2)
    os.execute("kill -9 " .. pid)
    su.wait_dead(pid)
    child:finish()
    local status, out = step("resume", path, srv.url, "retried", nil, "retry")
    assert.equal("SUCCEEDED", status)
    assert.same({ State = "COMPLETED" }, out)
    assert.equal(2, srv:stats().job_runs, "one job per Task attempt")
    local s = assert(store.open(path))
    local failed, started = 0, 0
    for _, e in ipairs(assert(s:history("retried"))) do
      if e.type == "TaskFailed" then failed = failed + 1 end
      if e.type == "TaskStarted" then started = started + 1 end
    end
    assert.same({ 1, 2 }, { failed, started })
    s:close()
  end)
end)
