local scheduler = require "emrflow.scheduler"

describe("emrflow.scheduler", function()
  local function virtual()
    return scheduler.new{ clock = "virtual", start = 1000 }
  end

  it("runs a task and keeps every return value", function()
    local s = virtual()
    local t = s:spawn(function(a, b) return a + b, "x", nil end, 2, 3)
    local ok, v, x, z = s:run_until(t)
    assert.is_true(ok)
    assert.equal(5, v)
    assert.equal("x", x)
    assert.is_nil(z)
    assert.is_true(t:done())
  end)

  it("reports a task's error as ok = false with the error value", function()
    local s = virtual()
    local e = { Error = "States.TaskFailed", Cause = "boom" }
    local t = s:spawn(function() error(e, 0) end)
    local ok, err = s:run_until(t)
    assert.is_false(ok)
    assert.equal(e, err)
  end)

  it("jumps virtual time to the nearest timer: an hour passes at once", function()
    local s = virtual()
    local seen
    local t = s:spawn(function()
      scheduler.sleep(3600)
      seen = scheduler.now()
    end)
    local c0 = os.clock()
    s:run_until(t)
    assert.equal(1000 + 3600, seen)
    assert.is_true(os.clock() - c0 < 0.5)
  end)

  it("wakes sleepers in deadline order, ties in arrival order", function()
    local s = virtual()
    local order = {}
    for _, d in ipairs{ 30, 10, 20, 10 } do
      s:spawn(function()
        scheduler.sleep(d)
        order[#order + 1] = d .. "@" .. (scheduler.now() - 1000)
      end)
    end
    s:run()
    assert.same({ "10@10", "10@10", "20@20", "30@30" }, order)
  end)

  it("events wake every waiter with the value, and time out", function()
    local s = virtual()
    local ev = scheduler.event()
    local got = {}
    s:spawn(function() table.insert(got, (ev:wait())) end)
    s:spawn(function() table.insert(got, (ev:wait())) end)
    local timed = s:spawn(function() return scheduler.event():wait(5) end)
    s:spawn(function()
      scheduler.sleep(1)
      ev:set("v")
    end)
    s:run()
    assert.same({ "v", "v" }, got)
    local ok, v, why = timed:result()
    assert.is_true(ok)
    assert.is_nil(v)
    assert.equal("timeout", why)
  end)

  it("join waits for all, wait_any returns the first to finish", function()
    local s = virtual()
    local first, all_at
    local main = s:spawn(function()
      local a = s:spawn(function() scheduler.sleep(5) end)
      local b = s:spawn(function() scheduler.sleep(2) end)
      first = scheduler.wait_any({ a, b })
      assert(first == b)
      scheduler.join({ a, b })
      all_at = scheduler.now() - 1000
    end)
    s:run_until(main)
    assert.is_true(main:result())
    assert.equal(5, all_at)
  end)

  it("cancel raises inside the waiting task, whose cleanup can still wait", function()
    local s = virtual()
    local log = {}
    local t = s:spawn(function()
      local ok, err = pcall(scheduler.sleep, 100)
      log[#log + 1] = ok and "slept" or ("cancelled:" .. err.Error)
      scheduler.sleep(1)              -- cleanup may wait again
      log[#log + 1] = "cleaned@" .. (scheduler.now() - 1000)
      error(err, 0)
    end)
    s:spawn(function()
      scheduler.sleep(3)
      s:cancel(t, { Error = "States.Aborted", Cause = "stop" })
    end)
    s:run()
    assert.same({ "cancelled:States.Aborted", "cleaned@4" }, log)
    local ok, err = t:result()
    assert.is_false(ok)
    assert.equal("States.Aborted", err.Error)
  end)

  it("a task cancelled before it ran ends with the error without running", function()
    local s = virtual()
    local ran = false
    local t = s:spawn(function() ran = true end)
    s:cancel(t, "stopped")
    s:run()
    assert.is_false(ran)
    assert.same({ false, "stopped" }, { t:result() })
  end)

  it("detects a deadlock instead of hanging", function()
    local s = virtual()
    local t = s:spawn(function() scheduler.event():wait() end)
    assert.has_error(function() s:run_until(t) end,
      "emrflow.scheduler: deadlock: every task waits on an event that nothing will set")
  end)

  it("refuses a bare coroutine.yield with a clear error inside the task", function()
    local s = virtual()
    local t = s:spawn(function() coroutine.yield("nope") end)
    local ok, err = s:run_until(t)
    assert.is_false(ok)
    assert.matches("yielded outside the scheduler's API", err)
  end)

  it("rejects bad arguments", function()
    assert.has_error(function() scheduler.new{ clock = "fast" } end)
    assert.has_error(function() virtual():spawn(42) end)
    assert.has_error(function() scheduler.sleep("1") end)
    assert.has_error(function() scheduler.event():wait() end)
  end)

  it("blocking http outside a task works and keeps one connection alive across calls", function()
    local fake = require "support.fake"
    local srv = fake.start("fake_echo", {})
    for i = 1, 5 do
      local res, err = scheduler.http{ method = "GET", url = srv.url .. "/n/" .. i }
      assert.is_nil(err)
      assert.equal(200, res.status)
    end
    local stats = srv:stats()
    srv:stop()
    assert.equal(5, stats.requests)
    assert.equal(1, stats.connections)
  end)

  it("keeps many tasks cheap: 10,000 sleeping tasks under virtual time", function()
    local s = virtual()
    local n = 0
    for i = 1, 10000 do
      s:spawn(function()
        scheduler.sleep(i % 97)
        n = n + 1
      end)
    end
    s:run()
    assert.equal(10000, n)
    assert.equal(1000 + 96, s:now())
  end)
  describe("for a host's own loop", function()
    local core = require "emrflow.core"

    it("step(0) never blocks; timeout() tells when the next step is due", function()
      local s = scheduler.new{ clock = "real" }
      assert.is_nil(s:timeout())                           -- nothing pending
      local t = s:spawn(function() scheduler.sleep(30) return "slept" end)
      assert.equal(0, s:timeout())                         -- ready to run now
      local t0 = core.now()
      assert.is_true(s:step(0))                            -- runs it up to its sleep
      assert.is_false(t:done())
      local left = s:timeout()
      assert.is_true(left > 25 and left <= 30, tostring(left))
      for _ = 1, 100 do s:step(0) end
      assert.is_true(core.now() - t0 < 10)                 -- far below the 30 s sleep
      s:cancel(t)
      assert.equal(0, s:timeout())
      s:step(0)
      assert.is_true(t:done())
      assert.is_nil(s:timeout())
      assert.same({}, s:sockets())
    end)

    it("under a virtual clock a pending timer is due at once", function()
      local s = virtual()
      local t = s:spawn(function() scheduler.sleep(3600) end)
      s:step(0)
      assert.equal(0, s:timeout())
      s:step(0)
      assert.is_true(t:done())
      assert.equal(1000 + 3600, s:now())
    end)

    it("lists the sockets of HTTP requests in flight, and completes them through step(0)", function()
      local fake = require "support.fake"
      local srv = fake.start("fake_echo", {})
      local s = scheduler.new{ clock = "real" }
      local t = s:spawn(function() return scheduler.http{ method = "GET", url = srv.url .. "/sleep/300" } end)
      for _ = 1, 5 do s:step(0) end
      assert.is_false(t:done())                            -- step(0) did not wait for the reply
      local seen, t0 = {}, core.now()
      local sleeper <close> = core.http.poller()           -- stands for the host's own wait
      while not t:done() and core.now() - t0 < 20 do
        for _, sk in ipairs(s:sockets()) do
          assert.is_number(sk.fd)
          assert.is_true(sk.read or sk.write)
          seen[#seen + 1] = sk
        end
        local wait = s:timeout()
        assert.is_truthy(wait or #s:sockets() > 0)         -- always something to wait for
        s:step(0)
        sleeper:step(math.min(20, math.ceil((wait or 0.02) * 1000)))
      end
      srv:stop()
      local _, res = t:result()
      assert.equal(200, res.status)
      assert.is_true(#seen > 0)
      assert.same({}, s:sockets())
      assert.is_nil(s:timeout())
    end)

    it("calls the wakeup when host code makes work ready between steps, never inside a step", function()
      local s = virtual()
      local woken = 0
      s:set_wakeup(function() woken = woken + 1 end)
      local ev = scheduler.event()
      local t = s:spawn(function() return ev:wait() end)   -- from outside a step
      assert.equal(1, woken)
      s:step(0)
      assert.equal(1, woken)                               -- the step itself does not call it
      ev:set("go")                                         -- host code
      assert.equal(2, woken)
      s:step(0)
      assert.same({ true, "go" }, { t:result() })
      s:set_wakeup(nil)
      s:spawn(function() end)
      assert.equal(2, woken)
      assert.has_error(function() s:set_wakeup(42) end)
    end)

    it("a task that yields runs again on the next step, so a long loop lets the host in", function()
      local s = virtual()
      local n = 0
      local t = s:spawn(function()
        for _ = 1, 5 do n = n + 1 scheduler.yield() end
      end)
      s:step(0)
      assert.equal(1, n)
      assert.equal(0, s:timeout())
      s:step(0)
      assert.equal(2, n)
      s:run_until(t)
      assert.equal(5, n)
    end)

    it("keeps several schedulers in one Lua state apart", function()
      local a, b = virtual(), scheduler.new{ clock = "virtual", start = 5000 }
      local ta = a:spawn(function() scheduler.sleep(10) return scheduler.now() end)
      local tb = b:spawn(function() scheduler.sleep(20) return scheduler.now() end)
      b:step(0)
      a:run_until(ta)
      assert.is_false(tb:done())
      b:run_until(tb)
      assert.same({ true, 1010 }, { ta:result() })
      assert.same({ true, 5020 }, { tb:result() })
    end)

    it("rejects a bad step argument", function()
      assert.has_error(function() virtual():step("soon") end,
        "emrflow.scheduler: step expects a number of seconds or nil")
    end)
  end)
end)
