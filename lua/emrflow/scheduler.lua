-- emrflow.scheduler: one thread, many coroutines, one wait point.
--
-- Every execution, Parallel branch and Map iteration runs as a task (a coroutine).
-- A task that needs time or I/O yields a small request; the scheduler keeps one
-- timer heap and one HTTP poller (core.http, libcurl multi) and waits in one place
-- for whichever comes first. With a virtual clock, time jumps to the next timer
-- whenever nothing else can run, so long Waits and back-offs finish at once.
--
--   local s = scheduler.new{ clock = "virtual" | "real", start = unix_seconds }
--   local t = s:spawn(fn, ...)      -- runs on the next s:step()
--   s:run_until(t); t:result()      --> ok, ...
--
-- Inside a task: scheduler.sleep(s), scheduler.http(req), scheduler.join(tasks),
-- scheduler.wait_any(tasks, timeout), scheduler.event(), scheduler.yield().
-- scheduler.http and scheduler.sleep also work outside any task: they block.
--
-- A host with its own event loop (doc/embedding.md) never blocks in here: it waits on
-- s:sockets() and s:timeout() itself and calls s:step(0), which runs what is ready now.
-- Several schedulers may live in one Lua state: all their state is in the scheduler object
-- (task_of below only maps a coroutine to its own task).
local core = require "emrflow.core"

local M = {}

local Scheduler = {}
Scheduler.__index = Scheduler

local Task = {}
Task.__index = Task

local Event = {}
Event.__index = Event

-- The task owning each running coroutine (weak: finished coroutines go away).
local task_of = setmetatable({}, { __mode = "k" })

-- Resume marker meaning "your wait was cancelled: raise the error given".
local CANCEL = setmetatable({}, { __name = "emrflow.scheduler.CANCEL" })

local cyield, crunning, cresume = coroutine.yield, coroutine.running, coroutine.resume

---------------------------------------------------------------------------
-- Timer heap: entries { at = seconds, seq = n, task = t, token = n }
---------------------------------------------------------------------------

local function heap_less(a, b)
  if a.at ~= b.at then return a.at < b.at end
  return a.seq < b.seq
end

local function heap_push(h, e)
  local n = #h + 1
  h[n] = e
  while n > 1 do
    local p = n // 2
    if heap_less(h[n], h[p]) then
      h[n], h[p] = h[p], h[n]
      n = p
    else
      break
    end
  end
end

local function heap_pop(h)
  local n = #h
  local top = h[1]
  h[1] = h[n]
  h[n] = nil
  n = n - 1
  local i = 1
  while true do
    local l, r, m = 2 * i, 2 * i + 1, i
    if l <= n and heap_less(h[l], h[m]) then m = l end
    if r <= n and heap_less(h[r], h[m]) then m = r end
    if m == i then break end
    h[i], h[m] = h[m], h[i]
    i = m
  end
  return top
end

---------------------------------------------------------------------------
-- Scheduler
---------------------------------------------------------------------------

--- Creates a scheduler. opts.clock: "real" (default) or "virtual";
-- opts.start: the virtual clock's start (Unix seconds); opts.http: options
-- for the HTTP poller (max_connections, ...).
function M.new(opts)
  opts = opts or {}
  local clock = opts.clock or "real"
  if clock ~= "real" and clock ~= "virtual" then
    error("emrflow.scheduler: clock must be 'real' or 'virtual', got " .. tostring(clock), 2)
  end
  if opts.start ~= nil and type(opts.start) ~= "number" then
    error("emrflow.scheduler: start must be a number of seconds", 2)
  end
  local s = setmetatable({
    virtual = clock == "virtual",
    vnow = opts.start or core.now(),
    ready = {},        -- queue of { task, n, ... } to resume
    later = {},        -- tasks that yielded: they run on the next step, after the host
    timers = {},
    seq = 0,
    http_opts = opts.http,
    poller = nil,
    inflight = {},     -- poller id -> { task, token }
    ninflight = 0,
    alive = 0,         -- tasks not yet done
    running = false,
    wakeup = nil,      -- set_wakeup's function
  }, Scheduler)
  return s
end

function Scheduler:now()
  if self.virtual then return self.vnow end
  return core.now()
end

function Scheduler:is_virtual()
  return self.virtual
end

local function enqueue(s, task, ...)
  local q = s.ready
  q[#q + 1] = table.pack(task, ...)
  -- Work made ready from outside a step (a host callback): tell the host loop.
  if not s.running and s.wakeup and #q == 1 then s.wakeup() end
end

local function finish(s, task, ok, ...)
  task.state = "done"
  task.results = table.pack(ok, ...)
  if not ok then
    task.traceback = debug.traceback(task.co, tostring((...)))
  end
  s.alive = s.alive - 1
  local cbs = task.on_done
  task.on_done = nil
  if cbs then
    for i = 1, #cbs do cbs[i](task) end
  end
end

local function poller_of(s)
  if not s.poller then
    s.poller = core.http.poller(s.http_opts or {})
  end
  return s.poller
end

-- Handles what a task yielded: sets up its wait.
local function arm(s, task, req)
  task.token = task.token + 1
  local op = req and req.op
  if op == "sleep" then
    task.state = "timer"
    s.seq = s.seq + 1
    heap_push(s.timers, { at = req.at, seq = s.seq, task = task, token = task.token })
  elseif op == "http" then
    task.state = "http"
    local ok, id = pcall(poller_of(s).add, s.poller, req.req)
    if ok then
      s.inflight[id] = { task = task, token = task.token }
      s.ninflight = s.ninflight + 1
      task.http_id = id
    else
      -- Misuse (a bad request table): raise it inside the task.
      task.state = "ready"
      enqueue(s, task, CANCEL, id)
    end
  elseif op == "park" then
    task.state = "park"
    if req.at then
      s.seq = s.seq + 1
      heap_push(s.timers, { at = req.at, seq = s.seq, task = task, token = task.token,
                            timeout = true })
    end
  elseif op == "yield" then
    -- Runs again on the next step: a long chain of states gives the host its turn.
    task.state = "ready"
    s.later[#s.later + 1] = { task, n = 1 }
  else
    -- A bare coroutine.yield: nothing will ever resume it properly, so it ends.
    finish(s, task, false, "emrflow.scheduler: a task yielded outside the scheduler's API ("
      .. tostring(req) .. "); use scheduler.sleep/http/event, not coroutine.yield")
  end
end

-- coroutine.resume hands back what the body returns; tasks run through this
-- wrapper so every return value survives as one packed table.
local function task_body(fn)
  return function(...)
    return table.pack(fn(...))
  end
end

--- Starts fn(...) as a new task; it first runs on the next step().
function Scheduler:spawn(fn, ...)
  if type(fn) ~= "function" then
    error("emrflow.scheduler: spawn expects a function", 2)
  end
  local task = setmetatable({
    sched = self,
    co = coroutine.create(task_body(fn)),
    state = "ready",
    token = 0,
  }, Task)
  task_of[task.co] = task
  self.alive = self.alive + 1
  enqueue(self, task, ...)
  return task
end

local function resume(s, task, ...)
  if task.state == "done" then return end
  local cancel = task.cancel_err
  local ok, req
  if cancel ~= nil then
    task.cancel_err = nil
    if task.started then
      ok, req = cresume(task.co, CANCEL, cancel)
    else
      -- Never ran: it ends with the error, without running.
      finish(s, task, false, cancel)
      return
    end
  else
    task.started = true
    ok, req = cresume(task.co, ...)
  end
  if coroutine.status(task.co) == "dead" then
    if ok then
      finish(s, task, true, table.unpack(req, 1, req.n))
    else
      finish(s, task, false, req)
    end
    return
  end
  if not ok then
    finish(s, task, false, req)
    return
  end
  arm(s, task, req)
end

local function run_ready(s)
  while true do
    local q = s.ready
    if #q == 0 then break end
    s.ready = {}
    for i = 1, #q do
      local e = q[i]
      resume(s, e[1], table.unpack(e, 2, e.n))
    end
  end
end

local function fire_timers(s, now)
  local h = s.timers
  while h[1] and h[1].at <= now do
    local e = heap_pop(h)
    local task = e.task
    if task.token == e.token and task.state ~= "done" then
      task.state = "ready"
      task.token = task.token + 1
      if e.timeout then
        enqueue(s, task, false, "timeout")
      else
        enqueue(s, task)
      end
    end
  end
end

-- Drops cancelled timers from the top of the heap.
local function next_deadline(s)
  local h = s.timers
  while h[1] do
    local e = h[1]
    if e.task.token == e.token and e.task.state ~= "done" then return e.at end
    heap_pop(h)
  end
  return nil
end

-- Drives the poller for up to wait_s seconds (0: only what is ready now) and makes the
-- tasks whose requests finished ready.
local function poll_http(s, wait_s)
  local ms = 0
  if wait_s and wait_s > 0 then ms = math.min(math.ceil(wait_s * 1000), 3600000) end
  local done = s.poller:step(ms)
  for i = 1, #done do
    local c = done[i]
    local w = s.inflight[c.id]
    if w then
      s.inflight[c.id] = nil
      s.ninflight = s.ninflight - 1
      local task = w.task
      if task.token == w.token and task.state == "http" then
        task.state = "ready"
        task.token = task.token + 1
        task.http_id = nil
        if c.err then enqueue(s, task, nil, c.err) else enqueue(s, task, c.response) end
      end
    end
  end
end

-- Nothing is ready: waits (at most max_wait_s, nil = as long as needed) for I/O or the
-- nearest timer, then makes ready what finished or fell due. Virtual time jumps to the
-- nearest timer when no I/O is in flight.
local function wait_for_work(s, max_wait_s)
  local deadline = next_deadline(s)
  if s.ninflight > 0 then
    -- I/O in flight: wait for it (virtual time stands still meanwhile).
    local wait = 1
    if deadline and not s.virtual then wait = math.max(0, deadline - core.now()) end
    if max_wait_s then wait = math.min(wait, max_wait_s) end
    poll_http(s, wait)
    if not s.virtual then fire_timers(s, core.now()) end
  elseif deadline then
    if s.virtual then
      s.vnow = math.max(s.vnow, deadline)
      fire_timers(s, s.vnow)
    else
      local wait = deadline - core.now()
      if max_wait_s then wait = math.min(wait, max_wait_s) end
      if wait > 0 then
        poller_of(s)
        poll_http(s, wait)
      end
      fire_timers(s, core.now())
    end
  end
end

-- Tasks are ready: collects finished I/O and due real-clock timers without waiting, so a
-- long run of ready work cannot starve them.
local function collect_now(s)
  if s.ninflight > 0 then poll_http(s, 0) end
  if not s.virtual and s.timers[1] then fire_timers(s, core.now()) end
end

local function step_once(s, max_wait_s)
  local later = s.later
  if #later > 0 then
    s.later = {}
    local q = s.ready
    for i = 1, #later do q[#q + 1] = later[i] end
  end
  if s.alive > 0 then
    if #s.ready == 0 then wait_for_work(s, max_wait_s) else collect_now(s) end
  end
  run_ready(s)
end

--- Waits, when nothing is ready, for I/O or the nearest timer (at most max_wait_s
-- seconds; nil = as long as needed; 0 = never blocks), then runs everything that is ready.
-- Returns true while tasks remain alive.
function Scheduler:step(max_wait_s)
  if self.running then
    error("emrflow.scheduler: step() called from inside step()", 2)
  end
  if max_wait_s ~= nil and (type(max_wait_s) ~= "number" or max_wait_s ~= max_wait_s) then
    error("emrflow.scheduler: step expects a number of seconds or nil", 2)
  end
  self.running = true
  local ok, err = pcall(step_once, self, max_wait_s)
  self.running = false
  if not ok then error(err, 0) end
  return self.alive > 0
end

--- Seconds until step(0) has work to do: 0 = now, nil = nothing to wait for (no task
-- alive, or every task waits on something only the host can do, such as exec:stop()).
-- Changes after every step and after every call into emrflow.
function Scheduler:timeout()
  if #self.ready > 0 or #self.later > 0 then return 0 end
  if self.alive == 0 then return nil end
  local t
  local deadline = next_deadline(self)
  if deadline then
    if self.virtual then
      if self.ninflight == 0 then return 0 end  -- virtual time jumps at once
    else
      t = math.max(0, deadline - core.now())
    end
  end
  if self.ninflight > 0 and self.poller then
    local ms = self.poller:timeout()
    if ms and (not t or ms / 1000 < t) then t = ms / 1000 end
  end
  return t
end

--- The sockets to watch now, as libcurl asked for them:
-- { { fd = 7, read = true, write = false, gen = 3 }, ... }. gen changes whenever libcurl
-- starts watching a descriptor anew (a closed and reused number is a new socket).
function Scheduler:sockets()
  if self.ninflight == 0 or not self.poller then return {} end
  return self.poller:sockets()
end

--- fn() is called when work becomes ready while no step runs (a host callback stopped
-- an execution, set an event or started one), so a host loop that sleeps can arm a
-- step(0). fn must not step the scheduler itself. nil removes it.
function Scheduler:set_wakeup(fn)
  if fn ~= nil and type(fn) ~= "function" then
    error("emrflow.scheduler: set_wakeup expects a function or nil", 2)
  end
  self.wakeup = fn
end

--- True when no task can ever make progress (all wait for events nobody sets).
function Scheduler:stuck()
  return #self.ready == 0 and #self.later == 0 and self.ninflight == 0 and next_deadline(self) == nil
    and self.alive > 0
end

--- Steps until task is done. Raises if nothing can make progress.
function Scheduler:run_until(task)
  while task.state ~= "done" do
    if self:stuck() then
      error("emrflow.scheduler: deadlock: every task waits on an event that nothing will set", 2)
    end
    self:step()
  end
  return task:result()
end

--- Steps until no task is alive.
function Scheduler:run()
  while self.alive > 0 do
    if self:stuck() then
      error("emrflow.scheduler: deadlock: every task waits on an event that nothing will set", 2)
    end
    self:step()
  end
end

--- Cancels a task: its pending wait raises err inside it (so cleanup code in
-- pcall can run, and may wait again), or, if it never ran, it ends with err.
function Scheduler:cancel(task, err)
  if task.state == "done" then return false end
  if err == nil then err = { Error = "States.Cancelled", Cause = "cancelled" } end
  task.cancel_err = err
  local st = task.state
  if st == "http" and task.http_id then
    self.inflight[task.http_id] = nil
    self.ninflight = self.ninflight - 1
    self.poller:cancel(task.http_id)
    task.http_id = nil
  end
  if st ~= "ready" then
    task.token = task.token + 1
    task.state = "ready"
    enqueue(self, task)
  end
  return true
end

--- Frees the poller. The scheduler must not be used afterwards.
function Scheduler:close()
  if self.poller then
    self.poller:close()
    self.poller = nil
  end
end

---------------------------------------------------------------------------
-- Task
---------------------------------------------------------------------------

function Task:done()
  return self.state == "done"
end

function Task:result()
  local r = self.results
  if not r then return nil end
  return table.unpack(r, 1, r.n)
end

local function add_on_done(task, cb)
  local cbs = task.on_done
  if not cbs then
    cbs = {}
    task.on_done = cbs
  end
  cbs[#cbs + 1] = cb
end

---------------------------------------------------------------------------
-- Inside a task
---------------------------------------------------------------------------

--- The scheduler and task running the caller, or nil outside any task.
function M.current()
  local co = crunning()
  local task = task_of[co]
  if task then return task.sched, task end
  return nil
end

local function wait(req)
  local a, b, c = cyield(req)
  if a == CANCEL then error(b, 0) end
  return a, b, c
end

--- Seconds since the epoch on the current scheduler's clock.
function M.now()
  local s = M.current()
  if s then return s:now() end
  return core.now()
end

-- Outside any task, blocking calls share one poller, so plain-Lua callers keep
-- their connections alive from one call to the next.
local blocking

--- The poller used by blocking calls made outside any scheduler task.
function M.blocking_poller()
  if not blocking then blocking = core.http.poller({}) end
  return blocking
end

--- Blocks the current task for seconds (virtual time jumps).
function M.sleep(seconds)
  if type(seconds) ~= "number" or seconds ~= seconds then
    error("emrflow.scheduler: sleep expects a number of seconds", 2)
  end
  local s = M.current()
  if s then
    wait({ op = "sleep", at = s:now() + math.max(0, seconds) })
    return
  end
  if seconds <= 0 then return end
  local p = M.blocking_poller()
  local deadline = core.now() + seconds
  while true do
    local left = deadline - core.now()
    if left <= 0 then break end
    p:step(math.ceil(left * 1000))
  end
end

--- Lets other tasks run before continuing.
function M.yield()
  if M.current() then wait({ op = "yield" }) end
end

--- Sends one HTTP request (core.http request table).
-- Returns response | nil, errobj. Inside a task it yields; outside it blocks.
function M.http(req)
  if type(req) ~= "table" then
    error("emrflow.scheduler: http expects a request table", 2)
  end
  if M.current() then
    return wait({ op = "http", req = req })
  end
  return M.exchange(M.blocking_poller(), req)
end

--- One blocking HTTP exchange on poller p (outside any task): response | nil, errobj.
function M.exchange(p, req)
  local id = p:add(req)
  while true do
    local done = p:step(1000)
    for i = 1, #done do
      local c = done[i]
      if c.id == id then
        if c.err then return nil, c.err end
        return c.response
      end
    end
  end
end

--- A one-shot event: ev:set(v) wakes every waiter; ev:wait(timeout) --> v | nil, "timeout".
function M.event()
  return setmetatable({ is_set = false, value = nil, waiters = {} }, Event)
end

function Event:set(v)
  if self.is_set then return false end
  self.is_set, self.value = true, v
  local ws = self.waiters
  self.waiters = {}
  for i = 1, #ws do
    local w = ws[i]
    local task = w.task
    if task.token == w.token and task.state == "park" then
      task.state = "ready"
      task.token = task.token + 1
      enqueue(task.sched, task, true, v)
    end
  end
  return true
end

function Event:wait(timeout_s)
  if self.is_set then return self.value end
  local s, task = M.current()
  if not s then
    error("emrflow.scheduler: event:wait() outside a scheduler task", 2)
  end
  local at = timeout_s and (s:now() + math.max(0, timeout_s)) or nil
  -- arm() bumps the token before parking: register with the token it will have.
  self.waiters[#self.waiters + 1] = { task = task, token = task.token + 1 }
  local ok, v = wait({ op = "park", at = at })
  if ok then return v end
  return nil, "timeout"
end

--- Waits until every task of the list is done.
function M.join(tasks)
  for i = 1, #tasks do
    local t = tasks[i]
    if t.state ~= "done" then
      local ev = M.event()
      add_on_done(t, function() ev:set(true) end)
      ev:wait()
    end
  end
end

--- Waits until one task of the list is done and returns it (nil on timeout).
function M.wait_any(tasks, timeout_s)
  for i = 1, #tasks do
    if tasks[i].state == "done" then return tasks[i] end
  end
  local ev = M.event()
  for i = 1, #tasks do
    add_on_done(tasks[i], function(t) ev:set(t) end)
  end
  return (ev:wait(timeout_s))
end

--- Calls cb(task) when task ends (from the scheduler, not inside the task).
function M.on_done(task, cb)
  if task.state == "done" then cb(task) else add_on_done(task, cb) end
end

return M
