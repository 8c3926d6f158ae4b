-- emrflow.emr.sync: the shared `.sync` poller of the EMR on EKS integration.
--
-- Every `.sync` Task of every execution on one scheduler polls through here. Each
-- poller sleeps on the scheduler's clock (a timer, not a thread), and every Describe
-- call first takes a slot from the one rate limiter of its endpoint, so a Map of
-- 1,000 jobs never sends more than `rate` polls a second, however many jobs run.
--
-- Job runs awaited through an HTTP client (DescribeJobRun, no deadline, no heartbeat
-- cap) are polled in batches by the C core's plan (src/ef_emr_sync.c): one ListJobRuns
-- per virtual cluster and interval (final states, createdAfter), DescribeJobRun only when
-- a job starts being watched and when it is over; a cluster with one watched job left has that
-- job described in the listing's place. `batch = false` keeps one poll per job. An emulator is
-- polled the same way through its client (emu:client()); a plain backend table per job.
--
--   local sync = require "emrflow.emr.sync"
--   local sched = sync.schedule(poll)     -- poll: nil | "aws" | { initial =, factor =, max =, rate = }
--   sched:first() --> seconds before the first poll; sched:next(interval, elapsed) --> the next
--   local lim = sync.limiter(key [, rate])  -- the limiter of (current scheduler, endpoint key)
--   lim:take()                            -- waits for a slot (yields inside a task)
--   lim:reserve(t) --> the first free slot at or after t (taken; no waiting)
--   local obj = sync.wait{ backend =, operation = "DescribeJobRun", params = {...},
--                          unwrap = "JobRun", final = { COMPLETED = true, ... },
--                          poll = ..., key = ..., deadline = unix_s | nil,
--                          on_state = fn(obj, state, previous_state, at) | nil,
--                          on_error = fn(err, consecutive) | nil, on_poll = fn(obj) | nil,
--                          error_limit = 5, gone = fn(err) --> obj | nil,
--                          max_interval = s | nil,    -- never wait longer than this between polls
--                          batch = true | false }     -- false: one DescribeJobRun per job per interval
--     --> the final object (e.g. the JobRun), or nil, "deadline" when the deadline passed
--     raises the API error (an emrflow error object) when polling cannot go on.
--
-- Schedules: the default waits `initial` (2 s) before the first poll, then grows the
-- interval by `factor` (1.5) up to `max` (30 s); `rate` (10) is requests per second per
-- endpoint, shared by every poller. A job run polled in a batch is the exception, on purpose:
-- the plan describes it at once when it starts being watched (+0 s: its state, and the
-- creation time its cluster's listings filter on), and `initial` is the wait before the
-- next look (the cluster's first listing, or that job's second describe). "aws" is Step
-- Functions' documented cadence: every 60 s for the first 10 minutes, then every 300 s
-- (rate 10).
local scheduler = require "emrflow.scheduler"
local retry = require "emrflow.emr.retry"

local M = {}

M.DEFAULT = { initial = 2, factor = 1.5, max = 30, rate = 10 }

local Schedule = {}
Schedule.__index = Schedule

local function poll_error(msg)
  error({ Error = "States.Runtime", Cause = "emrflow: invalid poll option: " .. msg }, 0)
end

--- Checks poll options and returns a schedule. Raises a States.Runtime error naming the
-- bad field (an execution option, so it surfaces where the Task runs).
function M.schedule(poll)
  if poll == nil then poll = {} end
  if poll == "aws" then
    return setmetatable({ aws = true, rate = M.DEFAULT.rate }, Schedule)
  end
  if type(poll) ~= "table" then
    poll_error("poll must be a table { initial =, factor =, max =, rate = } or \"aws\", got " .. type(poll))
  end
  local s = { initial = M.DEFAULT.initial, factor = M.DEFAULT.factor, max = M.DEFAULT.max,
              rate = M.DEFAULT.rate }
  for k, v in pairs(poll) do
    if s[k] == nil and k ~= "schedule" then poll_error("unknown field poll." .. tostring(k)) end
    if k == "schedule" then
      if v ~= "aws" and v ~= "default" then poll_error("poll.schedule must be \"aws\" or \"default\"") end
      s.aws = v == "aws"
    else
      if type(v) ~= "number" or v ~= v or v == math.huge then
        poll_error("poll." .. k .. " must be a finite number, got " .. tostring(v))
      end
      s[k] = v
    end
  end
  if s.initial < 0 then poll_error("poll.initial must be >= 0 seconds") end
  if s.factor < 1 then poll_error("poll.factor must be >= 1") end
  if s.max <= 0 then poll_error("poll.max must be > 0 seconds") end
  if s.rate <= 0 then poll_error("poll.rate must be > 0 requests per second") end
  if s.initial > s.max then s.initial = s.max end
  return setmetatable(s, Schedule)
end

--- Seconds to wait before the first poll.
function Schedule:first()
  if self.aws then return 60 end
  return self.initial
end

--- The interval after one of `interval` seconds, `elapsed` seconds after the job started.
function Schedule:next(interval, elapsed)
  if self.aws then
    if elapsed < 600 then return 60 end
    return 300
  end
  if interval <= 0 then return math.min(self.max, 1) end
  return math.min(self.max, interval * self.factor)
end

---------------------------------------------------------------------------
-- Rate limiter: one per (scheduler, endpoint), slots spaced 1/rate apart
---------------------------------------------------------------------------

local Limiter = {}
Limiter.__index = Limiter

-- scheduler -> { [key] = limiter } (weak on the scheduler: it goes when the scheduler goes)
local limiters = setmetatable({}, { __mode = "k" })

--- The limiter of `key` (an endpoint: a URL string or a backend object) on the current
-- scheduler. `rate` (requests per second) updates it when given.
function M.limiter(key, rate)
  local s = scheduler.current()
  local owner = s or M
  local per = limiters[owner]
  if not per then
    per = setmetatable({}, { __mode = "k" })
    limiters[owner] = per
  end
  local lim = per[key]
  if not lim then
    lim = setmetatable({ rate = rate or M.DEFAULT.rate, next_free = -math.huge, taken = 0 }, Limiter)
    per[key] = lim
  elseif rate then
    lim.rate = rate
  end
  return lim
end

--- Reserves the first free slot at or after time t (no waiting); returns its time.
function Limiter:reserve(t)
  local slot = self.next_free
  if slot < t then slot = t end
  self.next_free = slot + 1 / self.rate + 1e-6
  self.taken = self.taken + 1
  return slot
end

--- Waits for the next free slot. Slots are handed out in arrival order; no two are closer
-- than 1/rate seconds, so no window of T seconds holds more than T*rate + 1 requests.
function Limiter:take()
  local now = scheduler.now()
  local slot = self.next_free
  if slot < now then slot = now end
  -- a hair over 1/rate (clock values near 1.7e9 s have a resolution of 2.4e-7 s), so
  -- rounding never lets rate + 1 slots into one second
  self.next_free = slot + 1 / self.rate + 1e-6
  self.taken = self.taken + 1
  if slot > now then scheduler.sleep(slot - now) end
  return slot
end

---------------------------------------------------------------------------
-- The poll loop
---------------------------------------------------------------------------

--- The rate-limit key of a backend: its endpoint URL when it has one (clients of the
-- same endpoint share it), else the backend itself (an emulator).
function M.key_of(backend)
  if type(backend) == "table" then
    if backend.endpoint_key ~= nil then return backend.endpoint_key end
    local ep = rawget(backend, "endpoint")
    if type(ep) == "table" and ep.base then return ep.base end
  end
  return backend
end

---------------------------------------------------------------------------
-- Batched polling: the C core's plan (src/ef_emr_sync.c) for HTTP clients
---------------------------------------------------------------------------

-- Job runs watched through one plan per (scheduler, endpoint): a new job is described
-- once, then each virtual cluster is listed (ListJobRuns by final state and creation
-- time) on the back-off schedule, and a job the listing shows final is described once
-- more. Requests per interval grow with the virtual clusters, not with the jobs. One
-- pump task per plan makes the calls (through the client, so through the scheduler's
-- HTTP poller) and sleeps on the scheduler until the plan's next deadline.
local emr_core = require("emrflow.core").emr

local FINAL_LIST = { "COMPLETED", "FAILED", "CANCELLED" }
local JOB_FINAL = { COMPLETED = true, FAILED = true, CANCELLED = true }
local plans = setmetatable({}, { __mode = "k" })   -- scheduler -> key -> batch

local function days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

local function parse_seconds(v)
  local y, mo, d, h, mi, se = v:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)")
  if not y then return nil end
  local t = days_from_civil(tonumber(y), tonumber(mo), tonumber(d)) * 86400
  t = t + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(se)
  local sign, oh, om = v:match("([%+%-])(%d%d):?(%d%d)$")
  if sign then
    local off = tonumber(oh) * 3600 + tonumber(om) * 60
    t = sign == "+" and t - off or t + off
  end
  return t
end
-- Unix seconds of a wire timestamp (ISO 8601 text or a number); nil when unreadable.
-- The last text read is kept: the jobs of a Map are mostly created in the same second.
local last_text, last_seconds
local function unix_seconds(v)
  if type(v) == "number" then return v end
  if type(v) ~= "string" then return nil end
  if v == last_text then return last_seconds end
  local t = parse_seconds(v)
  last_text, last_seconds = v, t
  return t
end

M.unix_seconds = unix_seconds

local function deliver(w, update)
  w.updates[#w.updates + 1] = update
  if w.ev then w.ev:set(true) end
end

local function wake(b)
  if b.wake then b.wake:set(true) end
end

local function pump_once(b)
  local now = scheduler.now()
  local kind, a1, a2, a3, a4 = b.plan:next(now)
  if kind == "idle" then
    if b.count == 0 then return end
    b.wake = scheduler.event()
    if a1 == math.huge then b.wake:wait() else b.wake:wait(math.max(0, a1 - now)) end
    b.wake = nil
  elseif kind == "describe" then
    local h = a1
    local out, err = b.backend:call("DescribeJobRun", { VirtualClusterId = a2, Id = a3 })
    local job = type(out) == "table" and out.JobRun or nil
    local w = b.waiters[h]
    if type(job) == "table" then
      local state = tostring(job.State)
      -- a final job is done: its creation time no longer matters to the plan
      b.plan:described(h, scheduler.now(), state, not JOB_FINAL[state] and unix_seconds(job.CreatedAt) or nil)
      if w then deliver(w, { obj = job }) end
    elseif w then
      deliver(w, { err = err or { Error = "States.TaskFailed",
                                  Cause = "DescribeJobRun returned no JobRun" } })
    end
  else
    local vc = a1
    local out = b.backend:call("ListJobRuns", { VirtualClusterId = vc, States = FINAL_LIST,
                                                CreatedAfter = a2, NextToken = a3, MaxResults = a4 })
    if type(out) == "table" then
      local items = {}
      for _, j in ipairs(type(out.JobRuns) == "table" and out.JobRuns or {}) do
        if type(j) == "table" and type(j.Id) == "string" and type(j.State) == "string" then
          items[#items + 1] = { j.Id, j.State }
        end
      end
      b.plan:listed(vc, scheduler.now(), items, type(out.NextToken) == "string" and out.NextToken or nil)
    else
      b.plan:list_failed(vc, scheduler.now())
    end
  end
end

local function pump(b)
  local ok, err = pcall(function()
    while b.count > 0 do pump_once(b) end
  end)
  b.pump = nil
  if not ok then
    -- a broken pump must not leave its waiters hanging: each gets the error
    for _, w in pairs(b.waiters) do deliver(w, { err = err, fatal = true }) end
  end
end

local function batch_of(key, backend, sched)
  local s = scheduler.current()
  local per = plans[s]
  if not per then
    per = setmetatable({}, { __mode = "k" })
    plans[s] = per
  end
  local b = per[key]
  if not b then
    b = { plan = emr_core.sync_plan{ initial = sched.initial, factor = sched.factor, max = sched.max,
                                     rate = sched.rate },
          backend = backend, waiters = {}, count = 0 }
    per[key] = b
  end
  return b
end

--- The batch (plan, backend) of an endpoint on the current scheduler, when one exists.
function M.batch(key)
  local per = plans[scheduler.current() or M]
  return per and per[key]
end

local function batchable(spec, backend, sched)
  local p = spec.params
  return spec.operation == "DescribeJobRun" and spec.unwrap == "JobRun" and spec.batch ~= false
    and not spec.deadline and not spec.max_interval and not spec.on_poll and not sched.aws
    and type(backend) == "table" and rawget(backend, "endpoint") ~= nil and scheduler.current() ~= nil
    and type(p) == "table" and type(p.VirtualClusterId) == "string" and type(p.Id) == "string"
end

local function batch_wait(spec, backend, sched)
  local key = spec.key or M.key_of(backend)
  local b = batch_of(key, backend, sched)
  local h = b.plan:watch(spec.params.VirtualClusterId, spec.params.Id, scheduler.now())
  local w = { updates = {} }
  b.waiters[h] = w
  b.count = b.count + 1
  if not b.pump then
    b.pump = scheduler.current():spawn(pump, b)
  else
    wake(b)
  end
  local final, error_limit = spec.final, spec.error_limit or 5
  local ok, res = pcall(function()
    local last_state, failures = nil, 0
    while true do
      local u = table.remove(w.updates, 1)
      if not u then
        w.ev = scheduler.event()
        w.ev:wait()
        w.ev = nil
        u = table.remove(w.updates, 1)
      end
      if u and u.obj then
        failures = 0
        local state = u.obj.State
        if state ~= last_state then
          if spec.on_state then spec.on_state(u.obj, state, last_state, scheduler.now()) end
          last_state = state
        end
        if final[state] then return u.obj end
      elseif u then
        local err = u.err
        if u.fatal then error(err, 0) end
        local gone = spec.gone and spec.gone(err)
        if gone then return gone end
        failures = failures + 1
        if spec.on_error then spec.on_error(err, failures) end
        -- throttling and transient errors (already retried by the client) do not end the
        -- wait: describe again after the schedule's interval, up to error_limit in a row
        if not retry.classify(err) or failures >= error_limit then error(err, 0) end
        scheduler.sleep(sched:first())
        b.plan:redescribe(h)
        if not b.pump then b.pump = scheduler.current():spawn(pump, b) else wake(b) end
      end
    end
  end)
  b.plan:unwatch(h)
  b.waiters[h] = nil
  b.count = b.count - 1
  if b.count == 0 then wake(b) end
  if not ok then error(res, 0) end
  return res
end

function M.wait(spec)
  local backend = spec.backend
  local sched = spec.schedule or M.schedule(spec.poll)
  if batchable(spec, backend, sched) then return batch_wait(spec, backend, sched) end
  local lim = M.limiter(spec.key or M.key_of(backend), sched.rate)
  local final = spec.final
  local started = scheduler.now()
  local cap = spec.max_interval
  local function capped(v)
    if cap and v > cap then return cap end
    return v
  end
  local interval = capped(sched:first())
  local last_state
  local failures = 0
  local error_limit = spec.error_limit or 5
  while true do
    local wait_s = interval
    if spec.deadline then
      local left = spec.deadline - scheduler.now()
      if left <= 0 then return nil, "deadline" end
      if left < wait_s then wait_s = left end
    end
    local now = scheduler.now()
    if spec.deadline and now + wait_s >= spec.deadline then
      scheduler.sleep(wait_s)
      if scheduler.now() >= spec.deadline then return nil, "deadline" end
      lim:take()
    else
      -- the poll's slot is reserved now: one timer covers the interval and the rate limit
      scheduler.sleep(lim:reserve(now + wait_s) - now)
    end
    local out, err = backend:call(spec.operation, spec.params)
    if out then
      failures = 0
      local obj = out
      if spec.unwrap then obj = out[spec.unwrap] end
      if type(obj) ~= "table" then
        error({ Error = "States.TaskFailed",
                Cause = spec.operation .. " returned no " .. tostring(spec.unwrap) }, 0)
      end
      if spec.on_poll then spec.on_poll(obj) end
      local state = obj.State
      if state ~= last_state then
        if spec.on_state then spec.on_state(obj, state, last_state, scheduler.now()) end
        last_state = state
      end
      if final[state] then return obj end
    else
      local gone = spec.gone and spec.gone(err)
      if gone then return gone end
      failures = failures + 1
      if spec.on_error then spec.on_error(err, failures) end
      -- Throttling and transient errors (already retried by the client) do not end the
      -- wait: poll again at the next interval, up to error_limit times in a row.
      if not retry.classify(err) or failures >= error_limit then error(err, 0) end
    end
    interval = capped(sched:next(interval, scheduler.now() - started))
  end
end

return M
